//! The envelope of a job file (its `format_version`, `id` and `version`) is checksummed, not
//! only its document: a damaged version is damage, never a job's new version, since every
//! compare-and-swap on the job rests on it. Files an older build wrote (no envelope
//! checksum) still read and update, and files this build writes still pass an older build's
//! checks.

use cairn_checkpoint::{Error, JobId, JobStore, LeftOutPlace, UNREAD_VERSION_STEP};
use cairn_checkpoint_file::{FileJobStore, JOB_FILE_FORMAT_VERSION};
use serde_json::json;

/// Job `id` at version 3, with `stale` holding the version 2 a slow writer read before the
/// last update.
async fn job_at_version_3(store: &FileJobStore, id: &JobId) -> u64 {
    let first = store
        .put(id, None, &json!({"n": 1}))
        .await
        .unwrap()
        .unwrap();
    let stale = store
        .put(id, Some(first), &json!({"n": 2}))
        .await
        .unwrap()
        .unwrap();
    let now = store
        .put(id, Some(stale), &json!({"n": 3}))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first, stale, now), (1, 2, 3));
    stale
}

/// Rewrites the job file of `id` with `edit` applied to the text as stored.
fn edit_text(store: &FileJobStore, id: &JobId, edit: impl FnOnce(&str) -> String) {
    let path = store.job_path(id);
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = edit(&text);
    assert_ne!(text, edited, "the edit changed nothing in {text}");
    std::fs::write(&path, edited).unwrap();
}

/// The entries of `jobs/quarantine/`.
fn quarantined(store: &FileJobStore) -> usize {
    std::fs::read_dir(store.dir().join("quarantine"))
        .map(Iterator::count)
        .unwrap_or(0)
}

/// A store under `root` holding job `older` as the bytes `file` (an older build's file),
/// opened afresh over it. The folders are made through the store first.
async fn store_holding_older_file(root: &std::path::Path, file: &[u8]) -> (FileJobStore, JobId) {
    let store = FileJobStore::open(root).unwrap();
    let id = JobId::new("older").unwrap();
    store
        .put(&id, None, &json!({"n": 0}))
        .await
        .unwrap()
        .unwrap();
    std::fs::write(store.job_path(&id), file).unwrap();
    (FileJobStore::open(root).unwrap(), id)
}

/// A job file as a build before the envelope checksum wrote it: the same fields, with
/// `crc32c` over the compact JSON of the document and nothing over the rest.
fn older_build_file(id: &str, version: u64, document: &serde_json::Value) -> Vec<u8> {
    let crc = crc32c::crc32c(&serde_json::to_vec(document).unwrap());
    serde_json::to_vec_pretty(&json!({
        "format_version": 1,
        "id": id,
        "version": version,
        "crc32c": crc,
        "document": document,
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_version_digit_is_damage_and_a_stale_write_does_not_land() {
    let root = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(root.path()).unwrap();
    let id = JobId::new("flipped").unwrap();
    let stale = job_at_version_3(&store, &id).await;
    // One digit of the version flips on disk: 3 reads as 2, the version a slow writer read.
    edit_text(&store, &id, |text| {
        text.replace("\"version\": 3", "\"version\": 2")
    });

    let store = FileJobStore::open(root.path()).unwrap();
    let read = store.get(&id).await;
    assert!(
        matches!(read, Err(Error::Encoding { .. })),
        "a damaged version must not read as the job's version: {read:?}"
    );
    assert_eq!(quarantined(&store), 1, "moved aside, not deleted");
    // The slow writer's compare-and-swap at the version it read finds no job.
    let late = store.put(&id, Some(stale), &json!({"n": "stale"})).await;
    assert!(
        matches!(&late, Ok(Err(conflict)) if conflict.current.is_none()),
        "{late:?}"
    );
    // The version on disk cannot be trusted, so the floor rose by the unread step.
    let again = store.put(&id, None, &json!({"n": 4})).await.unwrap();
    assert_eq!(again, Ok(UNREAD_VERSION_STEP + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_quarantines_a_job_whose_version_was_damaged() {
    let root = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(root.path()).unwrap();
    let (id, kept) = (JobId::new("flipped").unwrap(), JobId::new("kept").unwrap());
    job_at_version_3(&store, &id).await;
    store.put(&kept, None, &json!({})).await.unwrap().unwrap();
    edit_text(&store, &id, |text| {
        text.replace("\"version\": 3", "\"version\": 9")
    });

    let listing = FileJobStore::open(root.path())
        .unwrap()
        .listing()
        .await
        .unwrap();
    let ids: Vec<&str> = listing.jobs.iter().map(|job| job.id.as_str()).collect();
    assert_eq!(ids, ["kept"], "{listing:?}");
    assert_eq!(listing.left_out.len(), 1, "{listing:?}");
    assert!(
        matches!(listing.left_out[0].place, LeftOutPlace::Quarantined { .. }),
        "{listing:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_envelope_checksum_is_damage() {
    let root = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(root.path()).unwrap();
    let id = JobId::new("enveloped").unwrap();
    job_at_version_3(&store, &id).await;
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.job_path(&id)).unwrap()).unwrap();
    let crc = file["envelope_crc32c"]
        .as_u64()
        .expect("this build writes an envelope checksum");
    file["envelope_crc32c"] = (crc ^ 1).into();
    std::fs::write(
        store.job_path(&id),
        serde_json::to_vec_pretty(&file).unwrap(),
    )
    .unwrap();

    let store = FileJobStore::open(root.path()).unwrap();
    assert!(matches!(store.get(&id).await, Err(Error::Encoding { .. })));
    assert_eq!(quarantined(&store), 1);
    let again = store.put(&id, None, &json!({})).await.unwrap();
    assert_eq!(
        again,
        Ok(UNREAD_VERSION_STEP + 1),
        "the version was not trusted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_document_under_a_sound_envelope_raises_the_floor_to_its_version() {
    let root = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(root.path()).unwrap();
    let id = JobId::new("document").unwrap();
    job_at_version_3(&store, &id).await;
    edit_text(&store, &id, |text| text.replace("\"n\": 3", "\"n\": 4"));

    let store = FileJobStore::open(root.path()).unwrap();
    assert!(matches!(store.get(&id).await, Err(Error::Encoding { .. })));
    // The envelope checks, so the version it names is the job's last one.
    assert_eq!(store.put(&id, None, &json!({})).await.unwrap(), Ok(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_file_an_older_build_wrote_still_reads_updates_and_deletes() {
    let root = tempfile::tempdir().unwrap();
    let document = json!({"n": 1, "every_ms": 60000});
    let (store, id) =
        store_holding_older_file(root.path(), &older_build_file("older", 5, &document)).await;
    let read = store.get(&id).await.unwrap().expect("still stored");
    assert_eq!((read.version, &read.document), (5, &document));
    let listing = store.listing().await.unwrap();
    assert_eq!(listing.jobs.len(), 1, "{listing:?}");
    assert!(listing.left_out.is_empty(), "{listing:?}");
    assert_eq!(
        store.put(&id, Some(5), &json!({"n": 2})).await.unwrap(),
        Ok(6)
    );
    // This build's rewrite carries the envelope checksum from now on.
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.job_path(&id)).unwrap()).unwrap();
    assert!(file["envelope_crc32c"].is_u64(), "{file}");
    assert_eq!(store.delete(&id, 6).await.unwrap(), Ok(()));
    assert_eq!(store.put(&id, None, &json!({})).await.unwrap(), Ok(7));
    assert_eq!(quarantined(&store), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_job_file_an_older_build_wrote_does_not_trust_its_version() {
    let root = tempfile::tempdir().unwrap();
    let mut file: serde_json::Value =
        serde_json::from_slice(&older_build_file("older", 5, &json!({"n": 1}))).unwrap();
    file["document"]["n"] = 2.into();
    let (store, id) =
        store_holding_older_file(root.path(), &serde_json::to_vec_pretty(&file).unwrap()).await;
    assert!(matches!(store.get(&id).await, Err(Error::Encoding { .. })));
    // Nothing checked the version it names, so the floor rose by the unread step.
    let again = store.put(&id, None, &json!({})).await.unwrap();
    assert_eq!(again, Ok(UNREAD_VERSION_STEP + 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_file_this_build_writes_passes_an_older_builds_checks() {
    let root = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(root.path()).unwrap();
    let id = JobId::new("shared").unwrap();
    let document = json!({"every_ms": 60000, "name": "shared"});
    store.put(&id, None, &document).await.unwrap().unwrap();
    // What an older build checks: its fields by name (unknown ones are ignored), the format
    // version, the id, and `crc32c` over the compact JSON of the document.
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.job_path(&id)).unwrap()).unwrap();
    assert_eq!(file["format_version"], JOB_FILE_FORMAT_VERSION);
    assert_eq!(file["id"], "shared");
    assert_eq!(file["version"], 1);
    assert_eq!(file["document"], document);
    assert_eq!(
        file["crc32c"],
        crc32c::crc32c(&serde_json::to_vec(&document).unwrap())
    );
}
