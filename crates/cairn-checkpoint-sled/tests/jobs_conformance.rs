//! The job-store conformance cases against `SledJobStore`.

use std::path::PathBuf;
use std::sync::Arc;

use cairn_checkpoint::conformance::jobs::{self, JobStoreHarness};
use cairn_checkpoint::conformance::{CaseResult, Damage};
use cairn_checkpoint::{JobId, JobStore, LeftOutPlace};
use cairn_checkpoint_sled::{
    JOB_QUARANTINE_TREE, JOB_VALUE_FORMAT_VERSION, JOB_VERSIONS_TREE, JOBS_TREE, SledFactory,
    SledJobStore, layout,
};

/// Stores that open the database by path: while one is alive the others share its handle
/// (sled allows one open per process); once all are dropped the next one reopens the files,
/// as a restarted process would.
#[derive(Debug)]
struct SledJobs {
    dir: tempfile::TempDir,
}

impl SledJobs {
    fn new() -> SledJobs {
        SledJobs {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("cairn.sled")
    }
}

impl JobStoreHarness for SledJobs {
    fn store(&self) -> Arc<dyn JobStore> {
        Arc::new(SledJobStore::open(self.path()).expect("the sled database opens"))
    }

    fn damage_job(&self, id: &JobId) -> Damage {
        let store = SledJobStore::open(self.path()).expect("the sled database opens");
        let tree = store.db().open_tree(JOBS_TREE).expect("the jobs tree");
        let mut value = tree
            .get(id.as_str().as_bytes())
            .expect("read the job")
            .expect("the job is stored")
            .to_vec();
        let last = value.len() - 2;
        value[last] ^= 0x01;
        tree.insert(id.as_str().as_bytes(), value)
            .expect("rewrite the job");
        store.db().flush().expect("flush");
        Damage::Applied { offset: None }
    }

    fn plant_newer_format(&self, id: &JobId) -> Damage {
        let store = SledJobStore::open(self.path()).expect("the sled database opens");
        let tree = store.db().open_tree(JOBS_TREE).expect("the jobs tree");
        let raw = tree
            .get(id.as_str().as_bytes())
            .expect("read the job")
            .expect("the job is stored");
        let mut value: serde_json::Value =
            serde_json::from_slice(layout::unseal(&raw).expect("intact")).expect("parses");
        value["format_version"] = (JOB_VALUE_FORMAT_VERSION + 1).into();
        let payload = serde_json::to_vec(&value).expect("encodes");
        tree.insert(id.as_str().as_bytes(), layout::seal(&payload))
            .expect("rewrite the job");
        store.db().flush().expect("flush");
        Damage::Applied { offset: None }
    }
}

mod sled_path {
    cairn_checkpoint::job_store_conformance_tests!(super::SledJobs::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_unmovable_job_case_is_skipped_for_sled() {
    assert_eq!(
        jobs::jobs_damaged_state_is_quarantined(&SledJobs::new()).await,
        CaseResult::Passed
    );
    assert_eq!(
        jobs::jobs_listing_reports_a_quarantined_job_once(&SledJobs::new()).await,
        CaseResult::Passed
    );
    assert_eq!(
        jobs::jobs_newer_format_is_left_in_place(&SledJobs::new()).await,
        CaseResult::Passed
    );
    // Moving a damaged value aside is an insert and a compare-and-swap in the same database:
    // nothing short of a failing database makes it fail.
    assert!(matches!(
        jobs::jobs_listing_reports_a_job_left_in_place_every_time(&SledJobs::new()).await,
        CaseResult::Skipped(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_is_no_job_id_is_reported_in_place_by_every_listing() {
    let harness = SledJobs::new();
    let store = SledJobStore::open(harness.path()).expect("the sled database opens");
    let good = JobId::new("good").unwrap();
    store
        .put(&good, None, &serde_json::json!({}))
        .await
        .unwrap()
        .unwrap();
    let tree = store.db().open_tree(JOBS_TREE).expect("the jobs tree");
    tree.insert(b"not a job!", b"whatever".to_vec()).unwrap();
    for _ in 0..3 {
        let listing = store.listing().await.expect("listing");
        let ids: Vec<&str> = listing.jobs.iter().map(|job| job.id.as_str()).collect();
        assert_eq!(ids, ["good"]);
        assert_eq!(listing.left_out.len(), 1, "{listing:?}");
        let left = &listing.left_out[0];
        assert_eq!((left.id.as_ref(), left.name.as_str()), (None, "not a job!"));
        assert_eq!(
            left.place,
            LeftOutPlace::LeftInPlace {
                at: format!("{JOBS_TREE}/not a job!")
            }
        );
    }
    assert!(tree.contains_key(b"not a job!").unwrap(), "left in place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_store_can_share_the_factory_database() {
    let harness = SledJobs::new();
    let factory = SledFactory::open(harness.path()).expect("the factory opens");
    let store = SledJobStore::sharing(&factory).expect("the job store shares it");
    let id = JobId::new("shared").unwrap();
    store
        .put(&id, None, &serde_json::json!({}))
        .await
        .unwrap()
        .unwrap();
    // A store opened by path while the factory lives uses the same handle (no lock error).
    let by_path = SledJobStore::open(harness.path()).expect("shares the open database");
    assert_eq!(by_path.get(&id).await.unwrap().unwrap().version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_of_a_newer_format_version_is_left_byte_for_byte() {
    let harness = SledJobs::new();
    let store = SledJobStore::open(harness.path()).expect("the sled database opens");
    let newer = JobId::new("newer").unwrap();
    let tree = store.db().open_tree(JOBS_TREE).expect("the jobs tree");
    // As a newer build might write it: a higher version, and fields this build does not know.
    let payload = serde_json::json!({
        "format_version": JOB_VALUE_FORMAT_VERSION + 1,
        "revision": 3,
        "body": {"schedule": "every 1m"},
    });
    let frame = layout::seal(&serde_json::to_vec(&payload).unwrap());
    tree.insert(newer.as_str().as_bytes(), frame.clone())
        .unwrap();
    let err = store.get(&newer).await.unwrap_err();
    assert!(
        matches!(&err, cairn_checkpoint::Error::NewerJobFormat { job_id, at, .. }
            if *job_id == newer && *at == format!("{JOBS_TREE}/newer")),
        "{err:?}"
    );
    let listing = store.listing().await.unwrap();
    assert!(listing.jobs.is_empty(), "{listing:?}");
    assert_eq!(
        listing.left_out[0].place,
        LeftOutPlace::NewerFormat {
            at: format!("{JOBS_TREE}/newer")
        }
    );
    let doc = serde_json::json!({});
    assert!(store.put(&newer, None, &doc).await.is_err());
    assert!(store.delete(&newer, 1).await.is_err());
    let stored = tree
        .get(newer.as_str().as_bytes())
        .unwrap()
        .expect("still stored");
    assert_eq!(stored.to_vec(), frame, "left byte for byte");
    let quarantine = store.db().open_tree(JOB_QUARANTINE_TREE).unwrap();
    assert!(quarantine.is_empty(), "nothing was moved aside");
    assert!(store.read_audit(&newer).await.unwrap().is_empty());
}

/// Stores `payload` as job `id`'s value in `tree`, framed as the store frames it, as another
/// build (or a hand) could.
fn plant_value(tree: &sled::Tree, id: &JobId, payload: &serde_json::Value) {
    let frame = layout::seal(&serde_json::to_vec(payload).unwrap());
    tree.insert(id.as_str().as_bytes(), frame).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_written_before_format_versions_reads_as_version_one() {
    let harness = SledJobs::new();
    let store = SledJobStore::open(harness.path()).expect("the sled database opens");
    let old = JobId::new("old").unwrap();
    let tree = store.db().open_tree(JOBS_TREE).expect("the jobs tree");
    let payload = serde_json::json!({"version": 4, "document": {"n": 1}});
    plant_value(&tree, &old, &payload);
    let stored = store.get(&old).await.unwrap().expect("reads");
    assert_eq!(
        (stored.version, stored.document),
        (4, serde_json::json!({"n": 1}))
    );
    // A value of an older format version than any build wrote is damage: moved aside.
    let zero = serde_json::json!({"format_version": 0, "version": 1, "document": {}});
    plant_value(&tree, &old, &zero);
    assert!(matches!(
        store.get(&old).await,
        Err(cairn_checkpoint::Error::Encoding { .. })
    ));
    assert!(!tree.contains_key(old.as_str().as_bytes()).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stored_before_the_version_floor_keeps_its_version_and_is_not_met_again() {
    let harness = SledJobs::new();
    let store = SledJobStore::open(harness.path()).expect("the sled database opens");
    let old = JobId::new("old").unwrap();
    // As a build from before the floor left it: no floor, a value at version 4.
    let tree = store.db().open_tree(JOBS_TREE).expect("the jobs tree");
    let payload = serde_json::json!({"version": 4, "document": {"n": 1}});
    plant_value(&tree, &old, &payload);
    let json = serde_json::json!({"n": 2});
    assert_eq!(store.put(&old, Some(4), &json).await.unwrap(), Ok(5));
    assert_eq!(store.delete(&old, 5).await.unwrap(), Ok(()));
    let again = store.put(&old, None, &json).await.unwrap();
    assert_eq!(again, Ok(6), "added again just above the deleted version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_whose_checksum_fails_raises_the_floor_by_the_unread_step() {
    let harness = SledJobs::new();
    let id = JobId::new("lost").unwrap();
    let store = harness.store();
    store
        .put(&id, None, &serde_json::json!({"n": 1}))
        .await
        .unwrap()
        .unwrap();
    drop(store);
    // The harness's damage breaks the checksum: no digit of the version can be trusted.
    assert!(matches!(harness.damage_job(&id), Damage::Applied { .. }));
    let store = harness.store();
    assert!(store.get(&id).await.is_err());
    let again = store.put(&id, None, &serde_json::json!({})).await.unwrap();
    assert_eq!(again, Ok(cairn_checkpoint::UNREAD_VERSION_STEP + 1));
}

/// Opens a job store in `harness`, adds `gone` and `kept` and deletes `gone` at version 1
/// (which writes the version floor); returns the store, both ids and its versions tree.
async fn one_kept_one_gone(harness: &SledJobs) -> (SledJobStore, JobId, JobId, sled::Tree) {
    let store = SledJobStore::open(harness.path()).expect("the sled database opens");
    let (gone, kept) = (JobId::new("gone").unwrap(), JobId::new("kept").unwrap());
    for id in [&gone, &kept] {
        store
            .put(id, None, &serde_json::json!({}))
            .await
            .unwrap()
            .unwrap();
    }
    store.delete(&gone, 1).await.unwrap().unwrap();
    let versions = store.db().open_tree(JOB_VERSIONS_TREE).unwrap();
    (store, gone, kept, versions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_floor_a_newer_build_wrote_is_left_in_place() {
    let harness = SledJobs::new();
    let (store, gone, kept, versions) = one_kept_one_gone(&harness).await;
    let doc = serde_json::json!({});
    let newer = layout::seal(
        &serde_json::to_vec(&serde_json::json!({"format_version": 2, "floors": {}})).unwrap(),
    );
    versions.insert(b"floor", newer.clone()).unwrap();
    for refused in [
        store.put(&gone, None, &doc).await.map(drop),
        store.delete(&kept, 1).await.map(drop),
    ] {
        let err = refused.expect_err("refused");
        assert!(
            matches!(&err, cairn_checkpoint::Error::NewerJobFormat { at, .. }
                if at == "cairn/job_versions/floor"),
            "{err:?}"
        );
        assert!(err.to_string().contains("format version 2"), "{err}");
    }
    assert_eq!(store.put(&kept, Some(1), &doc).await.unwrap(), Ok(2));
    assert_eq!(
        versions.get(b"floor").unwrap().unwrap().to_vec(),
        newer.to_vec()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_version_floor_is_left_in_place_and_refuses_creates_and_deletes() {
    let harness = SledJobs::new();
    let (store, gone, kept, versions) = one_kept_one_gone(&harness).await;
    let doc = serde_json::json!({});
    let mut floor = versions.get(b"floor").unwrap().expect("the floor").to_vec();
    let last = floor.len() - 2;
    floor[last] ^= 0x01;
    versions.insert(b"floor", floor.clone()).unwrap();
    assert!(matches!(
        store.put(&gone, None, &doc).await,
        Err(cairn_checkpoint::Error::Encoding { .. })
    ));
    assert!(matches!(
        store.delete(&kept, 1).await,
        Err(cairn_checkpoint::Error::Encoding { .. })
    ));
    // Updates need no floor, and nothing moved or rewrote it.
    assert_eq!(store.put(&kept, Some(1), &doc).await.unwrap(), Ok(2));
    assert_eq!(versions.get(b"floor").unwrap().unwrap().to_vec(), floor);
    assert!(store.get(&gone).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_of_a_job_at_the_highest_version_is_refused_not_wrapped() {
    // A checksummed value at u64::MAX has no next version: an update must neither panic
    // nor wrap to version 0, which would reuse a version under the id.
    let harness = SledJobs::new();
    let store = SledJobStore::open(harness.path()).expect("the sled database opens");
    let top = JobId::new("top").unwrap();
    let tree = store.db().open_tree(JOBS_TREE).expect("the jobs tree");
    let payload = serde_json::json!({"format_version": 1, "version": u64::MAX, "document": {}});
    plant_value(&tree, &top, &payload);
    let before = tree.get(top.as_str()).unwrap().expect("planted");
    let err = store
        .put(&top, Some(u64::MAX), &serde_json::json!({"n": 1}))
        .await
        .expect_err("no next version");
    assert!(
        matches!(err, cairn_checkpoint::Error::Encoding { .. }),
        "{err:?}"
    );
    assert_eq!(
        tree.get(top.as_str()).unwrap(),
        Some(before),
        "left as it was"
    );
    assert_eq!(
        store.get(&top).await.unwrap().expect("stored").version,
        u64::MAX
    );
}
