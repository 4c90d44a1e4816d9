//! The file job store's floor of retired versions (`jobs/.version-floor`): a job added again
//! starts above every version an earlier job under its id had, jobs stored before the floor
//! keep their versions, and a floor that does not check is left where it is.

use cairn_checkpoint::{Error, JobId, JobStore, UNREAD_VERSION_STEP};
use cairn_checkpoint_file::FileJobStore;
use serde_json::json;

/// The path of the store's version floor file.
fn floor_path(store: &FileJobStore) -> std::path::PathBuf {
    store.dir().join(".version-floor")
}

/// Adds job `name` and rewrites its file at `version` without the envelope checksum, as an
/// older build leaves it; returns the id and the bytes written.
async fn plant_older_build_job(store: &FileJobStore, name: &str, version: u64) -> (JobId, Vec<u8>) {
    let id = JobId::new(name).unwrap();
    store
        .put(&id, None, &json!({"n": 1}))
        .await
        .unwrap()
        .unwrap();
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.job_path(&id)).unwrap()).unwrap();
    file["version"] = version.into();
    file.as_object_mut().unwrap().remove("envelope_crc32c");
    let planted = serde_json::to_vec(&file).unwrap();
    std::fs::write(store.job_path(&id), &planted).unwrap();
    (id, planted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_file_from_before_the_floor_keeps_its_version_and_is_not_met_again() {
    let root = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(root.path()).unwrap();
    // Made by this build, then rewritten at version 7 with no floor file and no envelope
    // checksum, as a build from before the floor leaves a job that was updated six times.
    let (id, _) = plant_older_build_job(&store, "old", 7).await;
    assert!(!floor_path(&store).exists());
    let store = FileJobStore::open(root.path()).unwrap();
    assert_eq!(store.get(&id).await.unwrap().unwrap().version, 7);
    assert_eq!(
        store.put(&id, Some(7), &json!({"n": 2})).await.unwrap(),
        Ok(8)
    );
    assert_eq!(store.delete(&id, 8).await.unwrap(), Ok(()));
    assert!(floor_path(&store).is_file(), "the delete wrote the floor");
    let again = store.put(&id, None, &json!({"n": 3})).await.unwrap();
    assert_eq!(again, Ok(9), "added again just above the deleted version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_file_that_no_longer_parses_raises_the_floor_by_the_unread_step() {
    let root = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(root.path()).unwrap();
    let id = JobId::new("lost").unwrap();
    store
        .put(&id, None, &json!({"n": 1}))
        .await
        .unwrap()
        .unwrap();
    std::fs::write(store.job_path(&id), b"{\"version\": 1, \"doc").unwrap();
    assert!(matches!(store.get(&id).await, Err(Error::Encoding { .. })));
    let again = store.put(&id, None, &json!({})).await.unwrap();
    assert_eq!(again, Ok(UNREAD_VERSION_STEP + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_version_floor_is_left_in_place_and_refuses_creates_and_deletes() {
    let root = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(root.path()).unwrap();
    let (gone, kept) = (JobId::new("gone").unwrap(), JobId::new("kept").unwrap());
    for id in [&gone, &kept] {
        store.put(id, None, &json!({})).await.unwrap().unwrap();
    }
    store.delete(&gone, 1).await.unwrap().unwrap();
    let text = std::fs::read_to_string(floor_path(&store)).unwrap();
    let damaged = text.replace("\"floor\": 1", "\"floor\": 0");
    assert_ne!(text, damaged, "the floor file holds floor 1: {text}");
    std::fs::write(floor_path(&store), &damaged).unwrap();
    assert!(matches!(
        store.put(&gone, None, &json!({})).await,
        Err(Error::Encoding { .. })
    ));
    assert!(matches!(
        store.delete(&kept, 1).await,
        Err(Error::Encoding { .. })
    ));
    // Updates need no floor, and nothing moved or rewrote it.
    assert_eq!(
        store.put(&kept, Some(1), &json!({"n": 2})).await.unwrap(),
        Ok(2)
    );
    assert_eq!(
        std::fs::read_to_string(floor_path(&store)).unwrap(),
        damaged
    );
    assert!(store.get(&gone).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_floor_a_newer_build_wrote_is_left_in_place() {
    let root = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(root.path()).unwrap();
    let id = JobId::new("gone").unwrap();
    store.put(&id, None, &json!({})).await.unwrap().unwrap();
    store.delete(&id, 1).await.unwrap().unwrap();
    let mut floor: serde_json::Value =
        serde_json::from_slice(&std::fs::read(floor_path(&store)).unwrap()).unwrap();
    floor["format_version"] = 2.into();
    floor["floor"] = "a shape this build does not know".into();
    let newer = serde_json::to_vec(&floor).unwrap();
    std::fs::write(floor_path(&store), &newer).unwrap();
    assert!(matches!(
        store.put(&id, None, &json!({})).await,
        Err(Error::NewerJobFormat { .. })
    ));
    assert_eq!(std::fs::read(floor_path(&store)).unwrap(), newer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_of_a_job_at_the_highest_version_is_refused_not_wrapped() {
    let root = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(root.path()).unwrap();
    // An older build's file (no envelope checksum, so its version is read as it stands) at
    // the last version there is: an update has no next version to give, and must neither
    // panic nor wrap to 0, which would reuse a version under the id.
    let (id, planted) = plant_older_build_job(&store, "top", u64::MAX).await;

    let err = store
        .put(&id, Some(u64::MAX), &json!({"n": 2}))
        .await
        .expect_err("no next version");
    assert!(matches!(&err, Error::Encoding { .. }), "{err:?}");
    assert!(err.to_string().contains("highest version"), "{err}");
    assert_eq!(
        std::fs::read(store.job_path(&id)).unwrap(),
        planted,
        "left as it was"
    );
    assert_eq!(store.get(&id).await.unwrap().unwrap().version, u64::MAX);
}
