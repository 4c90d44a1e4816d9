//! Job files a newer build wrote (a `format_version` above this build's) are left exactly
//! where they are, byte for byte: a rollback to this build must not move a newer build's
//! jobs into quarantine, where they would stop running for good. A file of an older format
//! version is damage and is still quarantined.

use cairn_checkpoint::{Error, JobAuditAction, JobId, JobStore, LeftOutPlace};
use cairn_checkpoint_file::{FileJobStore, JOB_FILE_FORMAT_VERSION};

/// A job file as a newer build might write it: a higher format version, and fields this
/// build does not know in place of the ones it does.
fn newer_job_file(id: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&serde_json::json!({
        "format_version": JOB_FILE_FORMAT_VERSION + 1,
        "id": id,
        "revision": 7,
        "sha256": "not a crc32c",
        "body": {"schedule": "every 1m"},
    }))
    .unwrap()
}

/// The entries of `jobs/quarantine/` (none when the folder is missing).
fn quarantined(store: &FileJobStore) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(store.dir().join("quarantine"))
        .map(|entries| entries.map(|entry| entry.unwrap().path()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_file_of_a_newer_format_version_is_left_byte_for_byte() {
    let root = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(root.path()).unwrap();
    let (healthy, newer) = (JobId::new("healthy").unwrap(), JobId::new("newer").unwrap());
    let doc = serde_json::json!({"n": 1});
    store.put(&healthy, None, &doc).await.unwrap().unwrap();
    let path = store.job_path(&newer);
    let bytes = newer_job_file("newer");
    std::fs::write(&path, &bytes).unwrap();

    for handle in 0..2 {
        let store = FileJobStore::open(root.path()).unwrap();
        let err = store.get(&newer).await.unwrap_err();
        assert!(
            matches!(&err, Error::NewerJobFormat { job_id, at, .. }
                if *job_id == newer && *at == path.display().to_string()),
            "handle {handle}: {err:?}"
        );
        for _ in 0..2 {
            let listing = store.listing().await.unwrap();
            let ids: Vec<&str> = listing.jobs.iter().map(|job| job.id.as_str()).collect();
            assert_eq!(ids, ["healthy"], "{listing:?}");
            assert_eq!(listing.left_out.len(), 1, "{listing:?}");
            assert_eq!(
                listing.left_out[0].place,
                LeftOutPlace::NewerFormat {
                    at: path.display().to_string()
                }
            );
        }
        let refused = [
            store.put(&newer, Some(7), &doc).await.map(|_| ()),
            store.put(&newer, None, &doc).await.map(|_| ()),
            store.delete(&newer, 7).await.map(|_| ()),
        ];
        for result in refused {
            assert!(
                matches!(result, Err(Error::NewerJobFormat { .. })),
                "{result:?}"
            );
        }
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "left byte for byte");
    assert!(quarantined(&store).is_empty(), "{:?}", quarantined(&store));
    assert!(store.read_audit(&newer).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_file_of_an_older_format_version_is_still_quarantined() {
    let root = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(root.path()).unwrap();
    let old = JobId::new("old").unwrap();
    store
        .put(&old, None, &serde_json::json!({"n": 1}))
        .await
        .unwrap()
        .unwrap();
    let path = store.job_path(&old);
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    file["format_version"] = 0.into();
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();

    let err = store.get(&old).await.unwrap_err();
    assert!(matches!(err, Error::Encoding { .. }), "{err:?}");
    assert!(!path.exists());
    assert_eq!(quarantined(&store).len(), 1);
    let audit = store.read_audit(&old).await.unwrap();
    assert_eq!(
        audit.last().map(|r| r.action),
        Some(JobAuditAction::Quarantined)
    );
}
