//! The job-store conformance cases against `FileJobStore`, plus its file-level promises
//! (mode 0600, atomic replacement, torn audit lines).

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use cairn_checkpoint::conformance::jobs::{self, JobStoreHarness};
use cairn_checkpoint::conformance::{CaseResult, Damage};
use cairn_checkpoint::{JobAuditAction, JobAuditRecord, JobId, JobStore, LeftOutPlace};
use cairn_checkpoint_file::{FileJobStore, JOB_FILE_FORMAT_VERSION};
use cairn_queue::Timestamp;

/// One temporary root; each `store()` is a fresh `FileJobStore` over it.
#[derive(Debug)]
struct FileJobs {
    dir: tempfile::TempDir,
}

impl FileJobs {
    fn new() -> FileJobs {
        FileJobs {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    fn file_store(&self) -> FileJobStore {
        FileJobStore::open(self.dir.path()).expect("open the job store")
    }
}

impl JobStoreHarness for FileJobs {
    fn store(&self) -> Arc<dyn JobStore> {
        Arc::new(self.file_store())
    }

    fn damage_job(&self, id: &JobId) -> Damage {
        let path = self.file_store().job_path(id);
        let mut bytes = std::fs::read(&path).expect("the job file exists");
        // Flip a digit inside the document so the JSON still parses but the checksum fails.
        let at = bytes
            .windows(3)
            .rposition(|w| w == b"\"n\"")
            .expect("the document has field n")
            + 5;
        bytes[at] = if bytes[at] == b'7' { b'8' } else { b'7' };
        std::fs::write(&path, bytes).expect("rewrite the job file");
        Damage::Applied { offset: None }
    }

    fn damage_job_in_place(&self, id: &JobId) -> Damage {
        // A file where the quarantine folder belongs makes every move fail, even for root.
        let qdir = self.file_store().dir().join("quarantine");
        std::fs::remove_dir(&qdir).expect("the quarantine folder is empty");
        std::fs::write(&qdir, b"not a folder").expect("a file in its place");
        self.damage_job(id)
    }

    fn plant_newer_format(&self, id: &JobId) -> Damage {
        let path = self.file_store().job_path(id);
        let mut file: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("the job file exists"))
                .expect("the job file parses");
        file["format_version"] = (JOB_FILE_FORMAT_VERSION + 1).into();
        std::fs::write(&path, serde_json::to_vec_pretty(&file).expect("encodes"))
            .expect("rewrite the job file");
        Damage::Applied { offset: None }
    }
}

mod file {
    cairn_checkpoint::job_store_conformance_tests!(super::FileJobs::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_job_case_is_skipped_for_files() {
    assert_eq!(
        jobs::jobs_damaged_state_is_quarantined(&FileJobs::new()).await,
        CaseResult::Passed
    );
    assert_eq!(
        jobs::jobs_listing_reports_a_quarantined_job_once(&FileJobs::new()).await,
        CaseResult::Passed
    );
    assert_eq!(
        jobs::jobs_listing_reports_a_job_left_in_place_every_time(&FileJobs::new()).await,
        CaseResult::Passed
    );
    assert_eq!(
        jobs::jobs_newer_format_is_left_in_place(&FileJobs::new()).await,
        CaseResult::Passed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_files_are_private_and_leave_no_temp_files() {
    let harness = FileJobs::new();
    let store = harness.file_store();
    let id = JobId::new("private").unwrap();
    store
        .put(&id, None, &serde_json::json!({"a": 1}))
        .await
        .unwrap()
        .unwrap();
    store
        .put(&id, Some(1), &serde_json::json!({"a": 2}))
        .await
        .unwrap()
        .unwrap();
    let mode = std::fs::metadata(store.job_path(&id))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(store.dir()).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    let leftovers: Vec<_> = std::fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temp files left behind: {leftovers:?}"
    );
    let parsed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.job_path(&id)).unwrap()).unwrap();
    assert_eq!(parsed["version"], 2);
    assert_eq!(parsed["document"], serde_json::json!({"a": 2}));
}

/// Appends one record, then `tail` as a crash would leave it; the tail must be invisible to
/// readers and cut by the next append (which audits the cut), leaving the first record's
/// bytes as they were.
async fn a_damaged_tail_is_skipped_then_cut(tail: &[u8]) {
    let harness = FileJobs::new();
    let store = harness.file_store();
    let id = JobId::new("audited").unwrap();
    let first = JobAuditRecord::new(Timestamp(1), id.clone(), JobAuditAction::Created, "created");
    store.append_audit(&first).await.unwrap();
    let path = store.dir().join("audit.jsonl");
    let good = std::fs::read(&path).unwrap();
    let mut bytes = good.clone();
    bytes.extend_from_slice(tail);
    std::fs::write(&path, bytes).unwrap();
    assert_eq!(store.read_audit(&id).await.unwrap(), vec![first.clone()]);
    let second = JobAuditRecord::new(Timestamp(3), id.clone(), JobAuditAction::Paused, "paused");
    store.append_audit(&second).await.unwrap();
    let after = std::fs::read(&path).unwrap();
    assert_eq!(
        after[..good.len()],
        good[..],
        "the first record is kept as it was"
    );
    assert!(
        !after[good.len()..].windows(tail.len()).any(|w| w == tail),
        "the damaged tail is cut"
    );
    // The cut is audited between the two, with the cut bytes' length.
    let audit = store.read_audit(&id).await.unwrap();
    assert_eq!(audit.len(), 3, "{audit:#?}");
    assert_eq!((&audit[0], &audit[2]), (&first, &second));
    assert_eq!(audit[1].action, JobAuditAction::TornLineCut);
    assert_eq!(audit[1].detail["bytes"], tail.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_audit_line_is_cut_not_glued_to() {
    a_damaged_tail_is_skipped_then_cut(b"0badc0de {\"at\":2,\"job_id\":\"aud").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_audit_line_damaged_by_a_power_cut_is_cut_even_with_its_newline() {
    // The append's first page was lost and its second landed: zeros, a record's end, and
    // the newline.
    let mut tail = vec![0u8; 24];
    tail.extend_from_slice(b"\"paused\"}\n");
    a_damaged_tail_is_skipped_then_cut(&tail).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_audit_line_in_the_middle_is_an_error() {
    let harness = FileJobs::new();
    let store = harness.file_store();
    let id = JobId::new("audited").unwrap();
    for at in 0..3 {
        let record = JobAuditRecord::new(Timestamp(at), id.clone(), JobAuditAction::Paused, "p");
        store.append_audit(&record).await.unwrap();
    }
    let path = store.dir().join("audit.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\"p\"", "\"q\"", 1)).unwrap();
    let err = store.read_audit(&id).await.unwrap_err();
    assert!(
        matches!(err, cairn_checkpoint::Error::Encoding { .. }),
        "{err:?}"
    );
}

/// Stores jobs `a` and `c` and returns the store.
async fn two_jobs(harness: &FileJobs) -> FileJobStore {
    let store = harness.file_store();
    for name in ["a", "c"] {
        let id = JobId::new(name).unwrap();
        store
            .put(&id, None, &serde_json::json!({"name": name}))
            .await
            .unwrap()
            .unwrap();
    }
    store
}

fn listed_ids(jobs: &[cairn_checkpoint::StoredJob]) -> Vec<String> {
    jobs.iter().map(|job| job.id.to_string()).collect()
}

/// The entries of `quarantine/`.
fn quarantined(store: &FileJobStore) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(store.dir().join("quarantine"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_named_like_a_job_file_is_quarantined_and_the_listing_goes_on() {
    let harness = FileJobs::new();
    let store = two_jobs(&harness).await;
    let stray = JobId::new("b").unwrap();
    let path = store.job_path(&stray);
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("inside.txt"), b"kept").unwrap();

    let jobs = store.list().await.unwrap();
    assert_eq!(listed_ids(&jobs), ["a", "c"]);
    assert!(!path.exists(), "the folder is moved out of jobs/");
    let moved = quarantined(&store);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        std::fs::read(moved[0].join("inside.txt")).unwrap(),
        b"kept",
        "moved, never deleted"
    );
    let audit = store.read_audit(&stray).await.unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].action, JobAuditAction::Quarantined);
    assert_eq!(
        audit[0].detail["location"],
        serde_json::json!(moved[0].display().to_string())
    );
    // The job is unknown now; the next listing is the same.
    assert_eq!(store.get(&stray).await.unwrap(), None);
    assert_eq!(listed_ids(&store.list().await.unwrap()), ["a", "c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_of_a_folder_named_like_a_job_file_quarantines_it_and_is_an_encoding_error() {
    let harness = FileJobs::new();
    let store = harness.file_store();
    let stray = JobId::new("b").unwrap();
    std::fs::create_dir_all(store.dir()).unwrap();
    std::fs::create_dir(store.job_path(&stray)).unwrap();
    let err = store.get(&stray).await.unwrap_err();
    assert!(
        matches!(err, cairn_checkpoint::Error::Encoding { .. }),
        "{err:?}"
    );
    assert_eq!(quarantined(&store).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_named_like_a_job_file_is_quarantined_not_read() {
    let harness = FileJobs::new();
    let store = two_jobs(&harness).await;
    let stray = JobId::new("b").unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(store.job_path(&stray)).unwrap();
    assert_eq!(listed_ids(&store.list().await.unwrap()), ["a", "c"]);
    assert!(!store.job_path(&stray).exists());
    assert_eq!(quarantined(&store).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_entry_that_cannot_be_moved_is_left_out_with_an_audit_record() {
    let harness = FileJobs::new();
    let store = two_jobs(&harness).await;
    let stray = JobId::new("b").unwrap();
    let path = store.job_path(&stray);
    std::fs::create_dir(&path).unwrap();
    // A file where the quarantine folder belongs makes every move fail, even for root.
    let qdir = store.dir().join("quarantine");
    std::fs::remove_dir(&qdir).unwrap();
    std::fs::write(&qdir, b"not a folder").unwrap();

    for _ in 0..3 {
        let listing = store.listing().await.unwrap();
        assert_eq!(listed_ids(&listing.jobs), ["a", "c"]);
        // Reported by every listing while it stays, with where it is.
        assert_eq!(listing.left_out.len(), 1, "{listing:?}");
        assert_eq!(listing.left_out[0].id.as_ref(), Some(&stray));
        assert_eq!(
            listing.left_out[0].place,
            LeftOutPlace::LeftInPlace {
                at: path.display().to_string()
            }
        );
    }
    assert!(path.is_dir(), "left in place");
    let audit = store.read_audit(&stray).await.unwrap();
    // The move was recorded before it was tried, then its failure; later listings through
    // the same handle add nothing.
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert_eq!(audit[0].action, JobAuditAction::Quarantined);
    assert!(audit[0].detail["location"].is_string(), "{audit:?}");
    // Its own action, not a `Quarantined` record without a location.
    assert_eq!(audit[1].action, JobAuditAction::LeftInPlace);
    assert_eq!(
        audit[1].detail["path"],
        serde_json::json!(path.display().to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_cannot_be_read_is_audited_as_left_in_place() {
    let harness = FileJobs::new();
    let store = two_jobs(&harness).await;
    let stray = JobId::new("b").unwrap();
    let path = store.job_path(&stray);
    // A link to itself fails every stat with "too many levels of symbolic links".
    std::os::unix::fs::symlink(&path, &path).unwrap();
    for _ in 0..2 {
        let listing = store.listing().await.unwrap();
        assert_eq!(listed_ids(&listing.jobs), ["a", "c"]);
        assert_eq!(listing.left_out.len(), 1, "{listing:?}");
        assert_eq!(listing.left_out[0].name, "b");
        assert!(
            matches!(listing.left_out[0].place, LeftOutPlace::LeftInPlace { .. }),
            "{listing:?}"
        );
    }
    assert!(std::fs::symlink_metadata(&path).is_ok(), "left in place");
    let audit = store.read_audit(&stray).await.unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].action, JobAuditAction::LeftInPlace);
    assert_eq!(
        audit[0].detail["path"],
        serde_json::json!(path.display().to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_written_before_left_in_place_existed_still_read() {
    let harness = FileJobs::new();
    let store = harness.file_store();
    // Two lines as the build before `LeftInPlace` wrote them: `<crc32c hex> <json>`.
    let old = [
        r#"{"at":5,"job_id":"b","action":"quarantined","message":"moved","detail":{"location":"/x/quarantine/b-5.json","reason":"fails its checksum"}}"#,
        r#"{"at":6,"job_id":"b","action":"quarantined","message":"stays","detail":{"location":null,"reason":"rename failed"}}"#,
    ];
    let log: String = old
        .iter()
        .map(|json| format!("{:08x} {json}\n", crc32c::crc32c(json.as_bytes())))
        .collect();
    std::fs::create_dir_all(store.dir()).unwrap();
    std::fs::write(store.dir().join("audit.jsonl"), log).unwrap();
    let stray = JobId::new("b").unwrap();
    store
        .append_audit(&JobAuditRecord::new(
            Timestamp(7),
            stray.clone(),
            JobAuditAction::LeftInPlace,
            "stays",
        ))
        .await
        .unwrap();
    let actions: Vec<JobAuditAction> = store
        .read_audit(&stray)
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.action)
        .collect();
    assert_eq!(
        actions,
        [
            JobAuditAction::Quarantined,
            JobAuditAction::Quarantined,
            JobAuditAction::LeftInPlace
        ]
    );
    let text = std::fs::read_to_string(store.dir().join("audit.jsonl")).unwrap();
    assert!(text.contains(r#""action":"left_in_place""#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_file_name_that_is_no_job_id_is_reported_in_place_by_every_listing() {
    let harness = FileJobs::new();
    let store = two_jobs(&harness).await;
    let path = store.dir().join("my job.json");
    std::fs::write(&path, b"{}").unwrap();
    // Temp files are not named `*.json` and are not reported.
    std::fs::write(store.dir().join(".tmp-x-1-2"), b"{}").unwrap();
    for _ in 0..2 {
        let listing = store.listing().await.unwrap();
        assert_eq!(listed_ids(&listing.jobs), ["a", "c"]);
        assert_eq!(listing.left_out.len(), 1, "{listing:?}");
        let left = &listing.left_out[0];
        assert_eq!(
            (left.id.as_ref(), left.name.as_str()),
            (None, "my job.json")
        );
        assert_eq!(
            left.place,
            LeftOutPlace::LeftInPlace {
                at: path.display().to_string()
            }
        );
    }
    assert!(path.is_file(), "left in place");
}

/// Opening writes nothing: a state folder that never had a job reads as empty (so listing
/// works where the folder may not be written), and the first write makes the folders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_writes_nothing_and_the_first_write_makes_the_folders() {
    let harness = FileJobs::new();
    let store = harness.file_store();
    assert!(!store.dir().exists(), "open made {}", store.dir().display());
    let listing = store.listing().await.unwrap();
    assert!(
        listing.jobs.is_empty() && listing.left_out.is_empty(),
        "{listing:?}"
    );
    let id = JobId::new("nightly").unwrap();
    assert_eq!(store.get(&id).await.unwrap(), None);
    assert!(store.read_audit(&id).await.unwrap().is_empty());
    assert!(
        !store.dir().exists(),
        "a read made {}",
        store.dir().display()
    );

    store
        .put(&id, None, &serde_json::json!({"every_ms": 1000}))
        .await
        .unwrap()
        .expect("a new job");
    assert!(store.dir().join("quarantine").is_dir());
    let again = harness.file_store();
    assert_eq!(listed_ids(&again.list().await.unwrap()), ["nightly"]);
}
