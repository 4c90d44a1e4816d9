//! A job store poisoned by a failed fsync writes nothing more, reads included: a `get` or
//! `listing` that meets a damaged job file must not quarantine it, audit it or raise the
//! floor of retired versions through the poisoned handle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cairn_checkpoint::{Error, JobAuditAction, JobAuditRecord, JobId, JobStore};
use cairn_checkpoint_file::FileJobStore;
use cairn_queue::Timestamp;

/// Every entry under `dir` with its text (a folder or link maps to its kind).
fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).expect("list the folder") {
            let entry = entry.expect("a folder entry");
            let path = entry.path();
            let kind = entry.file_type().expect("the entry's type");
            if kind.is_dir() {
                found.insert(path.clone(), "<folder>".to_owned());
                pending.push(path);
            } else if kind.is_symlink() {
                found.insert(path, "<link>".to_owned());
            } else {
                let bytes = std::fs::read(&path).expect("read the file");
                found.insert(path, String::from_utf8_lossy(&bytes).into_owned());
            }
        }
    }
    found
}

/// Poisons `store` through a failed fdatasync of its audit log: pointed at `/dev/null`,
/// whose fdatasync fails with EINVAL on Linux. The link is removed again afterwards.
async fn poison(store: &FileJobStore) {
    let audit = store.dir().join("audit.jsonl");
    std::os::unix::fs::symlink("/dev/null", &audit).expect("link the audit log");
    let record = JobAuditRecord::new(
        Timestamp(1),
        JobId::new("a").unwrap(),
        JobAuditAction::Quarantined,
        "poisons the store".to_owned(),
    );
    let err = store
        .append_audit(&record)
        .await
        .expect_err("the audit log's fdatasync fails");
    assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
    std::fs::remove_file(&audit).expect("remove the link");
}

/// Rewrites job `id`'s document without its checksum, so the file fails it.
fn damage(store: &FileJobStore, id: &JobId) {
    let path = store.job_path(id);
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    file["document"] = serde_json::json!({"name": "changed"});
    std::fs::write(&path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
}

async fn poisoned_store_with_a_damaged_job() -> (tempfile::TempDir, FileJobStore, JobId) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = FileJobStore::open(dir.path()).expect("open the job store");
    for name in ["a", "b"] {
        let id = JobId::new(name).unwrap();
        store
            .put(&id, None, &serde_json::json!({"name": name}))
            .await
            .unwrap()
            .unwrap();
    }
    poison(&store).await;
    let damaged = JobId::new("b").unwrap();
    damage(&store, &damaged);
    (dir, store, damaged)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_stores_get_of_a_damaged_job_writes_nothing() {
    let (dir, store, damaged) = poisoned_store_with_a_damaged_job().await;
    let before = tree(dir.path());
    let err = store
        .get(&damaged)
        .await
        .expect_err("a poisoned store cannot quarantine");
    assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
    assert_eq!(tree(dir.path()), before, "the poisoned get wrote");
    // A good job still reads: reading writes nothing.
    let good = store.get(&JobId::new("a").unwrap()).await.unwrap();
    assert!(good.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_stores_listing_with_a_damaged_job_writes_nothing() {
    let (dir, store, _) = poisoned_store_with_a_damaged_job().await;
    let before = tree(dir.path());
    let err = store
        .listing()
        .await
        .expect_err("a poisoned store cannot quarantine");
    assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
    assert_eq!(tree(dir.path()), before, "the poisoned listing wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_handle_quarantines_what_the_poisoned_one_left() {
    let (dir, store, damaged) = poisoned_store_with_a_damaged_job().await;
    let _ = store.get(&damaged).await;
    // Recovery is a reopen: the fresh handle moves the damaged file aside as usual.
    let fresh = FileJobStore::open(dir.path()).expect("open the job store again");
    let err = fresh.get(&damaged).await.expect_err("the damaged job");
    assert!(matches!(err, Error::Encoding { .. }), "{err:?}");
    assert!(!fresh.job_path(&damaged).exists(), "moved aside");
}
