//! The file job store removes the temp files that failed writes left (never acknowledged
//! state) by its first write, under its lock; reads remove nothing, and nothing but regular
//! `.tmp-*` files is removed.

use cairn_checkpoint::{JobId, JobStore};
use cairn_checkpoint_file::FileJobStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_write_removes_leftover_temp_files_and_reads_do_not() {
    let root = tempfile::tempdir().unwrap();
    let id = JobId::new("nightly").unwrap();
    let store = FileJobStore::open(root.path()).unwrap();
    store
        .put(&id, None, &serde_json::json!({"n": 1}))
        .await
        .unwrap()
        .unwrap();
    drop(store);
    let dir = root.path().join("jobs");
    // What a write that died between create and rename leaves, and look-alikes that are
    // not temp files of this store.
    std::fs::write(dir.join(".tmp-nightly-4242-0"), b"{\"half\":").unwrap();
    std::fs::write(dir.join(".tmp-other-job-1-7"), b"").unwrap();
    std::fs::create_dir(dir.join(".tmp-a-folder")).unwrap();
    std::fs::write(dir.join(".keep"), b"someone else's").unwrap();

    let store = FileJobStore::open(root.path()).unwrap();
    assert_eq!(store.listing().await.unwrap().jobs.len(), 1);
    assert!(store.get(&id).await.unwrap().is_some());
    assert!(
        dir.join(".tmp-nightly-4242-0").is_file(),
        "reads remove nothing"
    );

    store
        .put(&id, Some(1), &serde_json::json!({"n": 2}))
        .await
        .unwrap()
        .unwrap();
    assert!(!dir.join(".tmp-nightly-4242-0").exists());
    assert!(!dir.join(".tmp-other-job-1-7").exists());
    assert!(dir.join(".tmp-a-folder").is_dir(), "a folder is not ours");
    assert!(dir.join(".keep").is_file());
    let leftover: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".tmp-") && name != ".tmp-a-folder")
        .collect();
    assert!(leftover.is_empty(), "{leftover:?}");
    assert_eq!(store.get(&id).await.unwrap().unwrap().version, 2);
}
