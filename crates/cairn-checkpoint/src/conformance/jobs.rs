//! The job-store conformance cases: every `JobStore` (memory, file, sled) runs all of them.
//!
//! An adapter's test file implements [`JobStoreHarness`] and expands
//! [`job_store_conformance_tests!`](crate::job_store_conformance_tests) once.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use cairn_checkpoint::conformance::CaseResult;
//! use cairn_checkpoint::conformance::jobs::{self, JobStoreHarness};
//! use cairn_checkpoint::{JobStore, MemoryJobStore};
//!
//! struct Memory(MemoryJobStore);
//! impl JobStoreHarness for Memory {
//!     fn store(&self) -> Arc<dyn JobStore> {
//!         Arc::new(self.0.clone())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let harness = Memory(MemoryJobStore::new());
//! assert_eq!(jobs::jobs_round_trip(&harness).await, CaseResult::Passed);
//! # });
//! ```

use std::sync::Arc;

use cairn_queue::Timestamp;
use serde_json::json;

use super::{CaseResult, Damage};
use crate::error::Error;
use crate::jobs::{
    JobAuditAction, JobAuditRecord, JobId, JobListing, JobStore, LeftOutPlace, VersionConflict,
};

/// Job storage under test. One value is one fresh, empty storage.
pub trait JobStoreHarness: Send + Sync + 'static {
    /// A NEW store over this harness's storage. Calling it twice simulates two processes (or
    /// a restart): nothing may be shared but the storage.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::conformance::jobs::JobStoreHarness;
    /// use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
    ///
    /// struct Memory(MemoryJobStore);
    /// impl JobStoreHarness for Memory {
    ///     fn store(&self) -> Arc<dyn JobStore> {
    ///         // A clone shares only the jobs, as a second process would.
    ///         Arc::new(self.0.clone())
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let harness = Memory(MemoryJobStore::new());
    /// let (first, second) = (harness.store(), harness.store());
    /// let id = JobId::new("nightly")?;
    /// first.put(&id, None, &serde_json::json!({})).await?.expect("a new job");
    /// assert_eq!(second.get(&id).await?.map(|job| job.version), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    fn store(&self) -> Arc<dyn JobStore>;

    /// Damages the stored state of job `id` so that it cannot be read back.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::conformance::jobs::{self, JobStoreHarness};
    /// use cairn_checkpoint::conformance::{CaseResult, Damage};
    /// use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
    ///
    /// struct Memory(MemoryJobStore);
    /// impl JobStoreHarness for Memory {
    ///     fn store(&self) -> Arc<dyn JobStore> {
    ///         Arc::new(self.0.clone())
    ///     }
    ///     fn damage_job(&self, id: &JobId) -> Damage {
    ///         match self.0.damage_job(id) {
    ///             true => Damage::Applied { offset: None },
    ///             false => Damage::Unsupported(format!("job {id} is not stored")),
    ///         }
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let case = jobs::jobs_damaged_state_is_quarantined(&Memory(MemoryJobStore::new())).await;
    /// assert_eq!(case, CaseResult::Passed);
    /// // Without the other hook, the case that needs it is skipped, visibly.
    /// let harness = Memory(MemoryJobStore::new());
    /// let in_place = jobs::jobs_listing_reports_a_job_left_in_place_every_time(&harness).await;
    /// assert!(matches!(in_place, CaseResult::Skipped(_)));
    /// # });
    /// ```
    fn damage_job(&self, id: &JobId) -> Damage {
        let _ = id;
        Damage::Unsupported("the harness cannot damage a stored job".to_owned())
    }

    /// Damages the stored state of job `id` so that it cannot be read back, AND makes moving
    /// it aside fail, so the store must leave it in place.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::conformance::jobs::{self, JobStoreHarness};
    /// use cairn_checkpoint::conformance::{CaseResult, Damage};
    /// use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
    ///
    /// struct Memory(MemoryJobStore);
    /// impl JobStoreHarness for Memory {
    ///     fn store(&self) -> Arc<dyn JobStore> {
    ///         Arc::new(self.0.clone())
    ///     }
    ///     fn damage_job_in_place(&self, id: &JobId) -> Damage {
    ///         match self.0.damage_job_in_place(id) {
    ///             true => Damage::Applied { offset: None },
    ///             false => Damage::Unsupported(format!("job {id} is not stored")),
    ///         }
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let harness = Memory(MemoryJobStore::new());
    /// let case = jobs::jobs_listing_reports_a_job_left_in_place_every_time(&harness).await;
    /// assert_eq!(case, CaseResult::Passed);
    /// # });
    /// ```
    fn damage_job_in_place(&self, id: &JobId) -> Damage {
        let _ = id;
        Damage::Unsupported("the harness cannot make a damaged job unmovable".to_owned())
    }

    /// Rewrites the stored state of job `id` as a newer build of cairn would write it: with
    /// a format version (of the job file or value, not of the scheduler's document) above
    /// this build's.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::conformance::jobs::{self, JobStoreHarness};
    /// use cairn_checkpoint::conformance::{CaseResult, Damage};
    /// use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
    ///
    /// struct Memory(MemoryJobStore);
    /// impl JobStoreHarness for Memory {
    ///     fn store(&self) -> Arc<dyn JobStore> {
    ///         Arc::new(self.0.clone())
    ///     }
    ///     fn plant_newer_format(&self, id: &JobId) -> Damage {
    ///         match self.0.plant_newer_format(id) {
    ///             true => Damage::Applied { offset: None },
    ///             false => Damage::Unsupported(format!("job {id} is not stored")),
    ///         }
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let harness = Memory(MemoryJobStore::new());
    /// let case = jobs::jobs_newer_format_is_left_in_place(&harness).await;
    /// assert_eq!(case, CaseResult::Passed);
    /// # });
    /// ```
    fn plant_newer_format(&self, id: &JobId) -> Damage {
        let _ = id;
        Damage::Unsupported("the harness cannot plant a newer job format version".to_owned())
    }
}

/// A harness whose stores are wrapped in `FaultyJobStore` with an empty plan, so the wrapper
/// itself runs the suite (as `FaultyHarness` does for runs). Damage goes to the inner
/// harness.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use cairn_checkpoint::conformance::CaseResult;
/// use cairn_checkpoint::conformance::jobs::{self, FaultyJobHarness, JobStoreHarness};
/// use cairn_checkpoint::{JobStore, MemoryJobStore};
///
/// struct Memory(MemoryJobStore);
/// impl JobStoreHarness for Memory {
///     fn store(&self) -> Arc<dyn JobStore> {
///         Arc::new(self.0.clone())
///     }
/// }
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let harness = FaultyJobHarness(Memory(MemoryJobStore::new()));
/// assert_eq!(jobs::jobs_round_trip(&harness).await, CaseResult::Passed);
/// # });
/// ```
#[derive(Debug)]
pub struct FaultyJobHarness<H>(pub H);

impl<H: JobStoreHarness> JobStoreHarness for FaultyJobHarness<H> {
    fn store(&self) -> Arc<dyn JobStore> {
        Arc::new(crate::fault::FaultyJobStore::new(
            self.0.store(),
            crate::fault::FaultPlan::new(),
        ))
    }
    fn damage_job(&self, id: &JobId) -> Damage {
        self.0.damage_job(id)
    }
    fn damage_job_in_place(&self, id: &JobId) -> Damage {
        self.0.damage_job_in_place(id)
    }
    fn plant_newer_format(&self, id: &JobId) -> Damage {
        self.0.plant_newer_format(id)
    }
}

/// The names of every case `job_store_conformance_tests!` expands, in order.
pub const ALL_JOB_CASES: &[&str] = &[
    "jobs_round_trip",
    "jobs_create_conflicts",
    "jobs_stale_update_conflicts",
    "jobs_survive_restart",
    "jobs_compare_and_swap_race",
    "jobs_delete",
    "jobs_list_ordered_by_id",
    "jobs_audit_records",
    "jobs_damaged_state_is_quarantined",
    "jobs_listing_reports_a_quarantined_job_once",
    "jobs_listing_reports_a_job_left_in_place_every_time",
    "jobs_newer_format_is_left_in_place",
    "jobs_dropped_puts_win_at_most_once",
    "jobs_version_is_not_reused_after_delete",
    "jobs_version_is_not_reused_after_quarantine",
];

/// Expands to one `#[tokio::test]` per job-store case, each over a fresh harness built by the
/// given expression. The calling crate needs `tokio` (with `macros` and `rt-multi-thread`).
///
/// ```text
/// mod memory {
///     cairn_checkpoint::job_store_conformance_tests!(crate::MemoryJobs::default());
/// }
/// ```
#[macro_export]
macro_rules! job_store_conformance_tests {
    ($make:expr) => {
        $crate::job_store_conformance_tests!(@cases $make;
            jobs_round_trip,
            jobs_create_conflicts,
            jobs_stale_update_conflicts,
            jobs_survive_restart,
            jobs_compare_and_swap_race,
            jobs_delete,
            jobs_list_ordered_by_id,
            jobs_audit_records,
            jobs_damaged_state_is_quarantined,
            jobs_listing_reports_a_quarantined_job_once,
            jobs_listing_reports_a_job_left_in_place_every_time,
            jobs_newer_format_is_left_in_place,
            jobs_dropped_puts_win_at_most_once,
            jobs_version_is_not_reused_after_delete,
            jobs_version_is_not_reused_after_quarantine,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let harness = $make;
                let result = $crate::conformance::jobs::$case(&harness).await;
                $crate::conformance::report(stringify!($case), &result);
            }
        )*
    };
}

fn job(text: &str) -> JobId {
    JobId::new(text).expect("conformance job ids are valid")
}

async fn create(store: &dyn JobStore, id: &JobId, document: serde_json::Value) -> u64 {
    match store.put(id, None, &document).await {
        Ok(Ok(version)) => version,
        Ok(Err(conflict)) => panic!("creating job {id} conflicted: {conflict:?}"),
        Err(err) => panic!("creating job {id} failed: {err:?}"),
    }
}

async fn update(
    store: &dyn JobStore,
    id: &JobId,
    expected: u64,
    document: serde_json::Value,
) -> u64 {
    match store.put(id, Some(expected), &document).await {
        Ok(Ok(version)) => version,
        Ok(Err(conflict)) => {
            panic!("updating job {id} at version {expected} conflicted: {conflict:?}")
        }
        Err(err) => panic!("updating job {id} failed: {err:?}"),
    }
}

async fn fetch(store: &dyn JobStore, id: &JobId) -> Option<(u64, serde_json::Value)> {
    store
        .get(id)
        .await
        .unwrap_or_else(|err| panic!("get of job {id} failed: {err:?}"))
        .map(|stored| {
            assert_eq!(&stored.id, id, "get of job {id} returned job {}", stored.id);
            (stored.version, stored.document)
        })
}

async fn listed_ids(store: &dyn JobStore) -> Vec<String> {
    store
        .list()
        .await
        .unwrap_or_else(|err| panic!("list failed: {err:?}"))
        .into_iter()
        .map(|stored| stored.id.to_string())
        .collect()
}

/// A created job reads back with version 1; an update stores version 2 and the new document.
pub async fn jobs_round_trip(harness: &impl JobStoreHarness) -> CaseResult {
    let store = harness.store();
    let id = job("round-trip");
    assert_eq!(
        fetch(&*store, &id).await,
        None,
        "a fresh store knows job {id}"
    );
    let doc1 = json!({"schedule": {"every_ms": 60000}, "note": "x".repeat(300)});
    assert_eq!(
        create(&*store, &id, doc1.clone()).await,
        1,
        "a new job must have version 1"
    );
    assert_eq!(fetch(&*store, &id).await, Some((1, doc1)));
    let doc2 = json!({"schedule": {"cron": "*/5 * * * * *"}, "status": "paused"});
    assert_eq!(
        update(&*store, &id, 1, doc2.clone()).await,
        2,
        "an update must bump the version"
    );
    assert_eq!(fetch(&*store, &id).await, Some((2, doc2.clone())));
    let listed = store.list().await.expect("list");
    assert_eq!(listed.len(), 1, "list must show exactly the one job");
    assert_eq!((listed[0].version, &listed[0].document), (2, &doc2));
    CaseResult::Passed
}

/// Creating a job that exists conflicts, names the stored version and changes nothing.
pub async fn jobs_create_conflicts(harness: &impl JobStoreHarness) -> CaseResult {
    let store = harness.store();
    let id = job("created-twice");
    create(&*store, &id, json!({"n": 1})).await;
    let outcome = store.put(&id, None, &json!({"n": 2})).await.expect("put");
    assert_eq!(
        outcome,
        Err(VersionConflict {
            id: id.clone(),
            expected: None,
            current: Some(1)
        }),
        "a second create of job {id} must conflict"
    );
    assert_eq!(fetch(&*store, &id).await, Some((1, json!({"n": 1}))));
    CaseResult::Passed
}

/// An update at a version that is not stored (or of an unknown job) conflicts.
pub async fn jobs_stale_update_conflicts(harness: &impl JobStoreHarness) -> CaseResult {
    let store = harness.store();
    let id = job("stale");
    create(&*store, &id, json!({"n": 1})).await;
    update(&*store, &id, 1, json!({"n": 2})).await;
    let outcome = store
        .put(&id, Some(1), &json!({"n": 3}))
        .await
        .expect("put");
    assert_eq!(
        outcome,
        Err(VersionConflict {
            id: id.clone(),
            expected: Some(1),
            current: Some(2)
        }),
        "an update of job {id} at a stale version must conflict"
    );
    assert_eq!(fetch(&*store, &id).await, Some((2, json!({"n": 2}))));
    let unknown = job("never-created");
    let outcome = store.put(&unknown, Some(1), &json!({})).await.expect("put");
    assert_eq!(
        outcome,
        Err(VersionConflict {
            id: unknown.clone(),
            expected: Some(1),
            current: None
        }),
        "an update of an unknown job must conflict, not create it"
    );
    assert_eq!(fetch(&*store, &unknown).await, None);
    CaseResult::Passed
}

/// Jobs written through one store are read back, and updatable, through a new one.
pub async fn jobs_survive_restart(harness: &impl JobStoreHarness) -> CaseResult {
    let id = job("durable");
    {
        let store = harness.store();
        create(
            &*store,
            &id,
            json!({"status": "active", "consecutive_errors": 3}),
        )
        .await;
        update(
            &*store,
            &id,
            1,
            json!({"status": "failed", "consecutive_errors": 10}),
        )
        .await;
    }
    let store = harness.store();
    assert_eq!(
        fetch(&*store, &id).await,
        Some((2, json!({"status": "failed", "consecutive_errors": 10}))),
        "job {id} must survive a restart with its version"
    );
    update(&*store, &id, 2, json!({"status": "active"})).await;
    drop(store);
    let store = harness.store();
    assert_eq!(
        fetch(&*store, &id).await,
        Some((3, json!({"status": "active"})))
    );
    CaseResult::Passed
}

/// Many writers race the same update through two stores: exactly one wins.
pub async fn jobs_compare_and_swap_race(harness: &impl JobStoreHarness) -> CaseResult {
    const WRITERS: usize = 8;
    let id = job("raced");
    let first = harness.store();
    let second = harness.store();
    create(&*first, &id, json!({"winner": null})).await;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = if writer % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put(&id, Some(1), &json!({"winner": writer}))
                .await
                .expect("racing put")
                .ok()
                .map(|version| (writer, version))
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(won) = task.await.expect("racing task") {
            winners.push(won);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one racing update of job {id} may win, got {winners:?}"
    );
    let (writer, version) = winners[0];
    assert_eq!(version, 2);
    assert_eq!(
        fetch(&*first, &id).await,
        Some((2, json!({"winner": writer})))
    );
    CaseResult::Passed
}

/// A put whose future is dropped part-way (see `JobStore`'s cancel safety) wins or changes
/// nothing, even when it ends after the drop: raced with an acknowledged put at the same
/// version, exactly one of the two is stored, whole.
pub async fn jobs_dropped_puts_win_at_most_once(harness: &impl JobStoreHarness) -> CaseResult {
    let store = harness.store();
    let id = job("dropped-puts");
    let mut version = create(&*store, &id, json!({"round": null})).await;
    for (round, &(polls, pause)) in super::cancel::DROP_POINTS.iter().enumerate() {
        let dropped_document = json!({"round": round, "by": "dropped"});
        let acked_document = json!({"round": round, "by": "acknowledged"});
        let dropped = super::cancel::poll_then_drop(
            store.put(&id, Some(version), &dropped_document),
            polls,
            pause,
        )
        .await;
        let dropped_won = match dropped {
            Some(Ok(Ok(stored))) => {
                assert_eq!(stored, version + 1);
                true
            }
            Some(Ok(Err(conflict))) => panic!("a lone put of job {id} conflicted: {conflict:?}"),
            Some(Err(err)) => panic!("put of job {id} failed: {err:?}"),
            None => false,
        };
        let acked = store
            .put(&id, Some(version), &acked_document)
            .await
            .unwrap_or_else(|err| panic!("put of job {id} failed: {err:?}"));
        let winner = match acked {
            Ok(stored) => {
                assert!(!dropped_won, "two puts at version {version} both won");
                assert_eq!(stored, version + 1);
                acked_document
            }
            // The dropped put won, before the acknowledged one or in the background.
            Err(conflict) => {
                assert_eq!(conflict.current, Some(version + 1), "{conflict:?}");
                dropped_document
            }
        };
        version += 1;
        // Whenever the dropped put ends, it can no longer change the job.
        assert_eq!(
            fetch(&*store, &id).await,
            Some((version, winner)),
            "exactly one put at version {} is stored",
            version - 1
        );
    }
    CaseResult::Passed
}

/// Delete honours the version, removes the job, keeps its audit, and frees the id.
pub async fn jobs_delete(harness: &impl JobStoreHarness) -> CaseResult {
    let store = harness.store();
    let id = job("deleted");
    create(&*store, &id, json!({"n": 1})).await;
    update(&*store, &id, 1, json!({"n": 2})).await;
    let audit = JobAuditRecord::new(Timestamp(7), id.clone(), JobAuditAction::Created, "made");
    store.append_audit(&audit).await.expect("append_audit");
    let outcome = store.delete(&id, 1).await.expect("delete");
    assert_eq!(
        outcome,
        Err(VersionConflict {
            id: id.clone(),
            expected: Some(1),
            current: Some(2)
        }),
        "a delete of job {id} at a stale version must conflict"
    );
    assert!(
        fetch(&*store, &id).await.is_some(),
        "a conflicting delete removed job {id}"
    );
    assert_eq!(store.delete(&id, 2).await.expect("delete"), Ok(()));
    assert_eq!(
        fetch(&*store, &id).await,
        None,
        "job {id} is still there after delete"
    );
    assert!(
        listed_ids(&*store).await.is_empty(),
        "list still shows deleted job {id}"
    );
    assert_eq!(
        store.delete(&id, 2).await.expect("delete"),
        Err(VersionConflict {
            id: id.clone(),
            expected: Some(2),
            current: None
        }),
        "deleting an unknown job must conflict"
    );
    assert_eq!(
        store.read_audit(&id).await.expect("read_audit"),
        vec![audit],
        "delete dropped the audit"
    );
    drop(store);
    let store = harness.store();
    assert_eq!(
        fetch(&*store, &id).await,
        None,
        "deleted job {id} is back after a restart"
    );
    let again = create(&*store, &id, json!({"n": 9})).await;
    assert!(
        again > 2,
        "a re-created job {id} must start above every version the deleted one had (2), got {again}"
    );
    CaseResult::Passed
}

/// `list` returns every job ordered by id.
pub async fn jobs_list_ordered_by_id(harness: &impl JobStoreHarness) -> CaseResult {
    let store = harness.store();
    for name in ["charlie", "alpha", "bravo-2", "bravo"] {
        create(&*store, &job(name), json!({"name": name})).await;
    }
    assert_eq!(
        listed_ids(&*store).await,
        ["alpha", "bravo", "bravo-2", "charlie"]
    );
    let listed = store.list().await.expect("list");
    for stored in listed {
        assert_eq!(
            stored.document,
            json!({"name": stored.id.as_str()}),
            "list mixed up documents"
        );
    }
    CaseResult::Passed
}

/// Audit records come back per job, oldest first, after a restart too.
pub async fn jobs_audit_records(harness: &impl JobStoreHarness) -> CaseResult {
    let a = job("audited-a");
    let b = job("audited-b");
    let records_a = vec![
        JobAuditRecord::new(Timestamp(1), a.clone(), JobAuditAction::Created, "created"),
        JobAuditRecord::new(
            Timestamp(5),
            a.clone(),
            JobAuditAction::BreakerTripped,
            "10 errors",
        )
        .with_detail(json!({"consecutive_errors": 10, "last_error": "exit 1"})),
        JobAuditRecord::new(Timestamp(9), a.clone(), JobAuditAction::Revived, "forced"),
        // What `Jobs::delete_unreadable` keeps: a whole document, read back exactly.
        JobAuditRecord::new(
            Timestamp(12),
            a.clone(),
            JobAuditAction::Quarantined,
            "kept",
        )
        .with_detail(json!({"version": 3, "document": {"odd": [1, "é\n", null]}})),
        JobAuditRecord::new(
            Timestamp(13),
            a.clone(),
            JobAuditAction::LeftInPlace,
            "stays",
        )
        .with_detail(json!({"path": "jobs/audited-a.json", "reason": "busy"})),
    ];
    let record_b = JobAuditRecord::new(Timestamp(3), b.clone(), JobAuditAction::Paused, "paused");
    {
        let store = harness.store();
        store
            .append_audit(&records_a[0])
            .await
            .expect("append_audit");
        store.append_audit(&record_b).await.expect("append_audit");
        store
            .append_audit(&records_a[1])
            .await
            .expect("append_audit");
        for record in &records_a[2..] {
            store.append_audit(record).await.expect("append_audit");
        }
        assert_eq!(store.read_audit(&a).await.expect("read_audit"), records_a);
    }
    let store = harness.store();
    assert_eq!(
        store.read_audit(&a).await.expect("read_audit"),
        records_a,
        "audit lost on restart"
    );
    assert_eq!(
        store.read_audit(&b).await.expect("read_audit"),
        vec![record_b]
    );
    assert!(
        store
            .read_audit(&job("nobody"))
            .await
            .expect("read_audit")
            .is_empty()
    );
    CaseResult::Passed
}

/// Damaged job state is reported by `get`, left out by `list`, moved aside and audited in
/// both cases; the job is then unknown and its id usable again.
pub async fn jobs_damaged_state_is_quarantined(harness: &impl JobStoreHarness) -> CaseResult {
    let store = harness.store();
    let bad = job("damaged");
    let listed_bad = job("damaged-listed");
    let good = job("healthy");
    create(&*store, &bad, json!({"n": 1})).await;
    create(&*store, &listed_bad, json!({"n": 4})).await;
    create(&*store, &good, json!({"n": 2})).await;
    drop(store);
    for id in [&bad, &listed_bad] {
        if let Damage::Unsupported(reason) = harness.damage_job(id) {
            return CaseResult::Skipped(reason);
        }
    }
    let store = harness.store();
    let err = match store.get(&bad).await {
        Err(err) => err,
        Ok(found) => panic!("get of damaged job {bad} must fail, got {found:?}"),
    };
    assert!(
        err.to_string().contains(bad.as_str()),
        "the error must name job {bad}: {err}"
    );
    assert_eq!(
        fetch(&*store, &bad).await,
        None,
        "damaged job {bad} was not moved aside"
    );
    // `list` meets the other damaged job first: it must leave it out, not fail.
    assert_eq!(
        listed_ids(&*store).await,
        ["healthy"],
        "list must show only the healthy job"
    );
    assert_eq!(
        fetch(&*store, &listed_bad).await,
        None,
        "list did not move {listed_bad} aside"
    );
    for id in [&bad, &listed_bad] {
        let audit = store.read_audit(id).await.expect("read_audit");
        assert!(
            audit
                .iter()
                .any(|r| r.action == JobAuditAction::Quarantined),
            "quarantining job {id} was not audited: {audit:?}"
        );
    }
    let again = create(&*store, &bad, json!({"n": 3})).await;
    assert!(
        again > 1,
        "the id must be usable again, above the version the damaged job had (1), got {again}"
    );
    CaseResult::Passed
}

async fn listing_of(store: &dyn JobStore) -> JobListing {
    store
        .listing()
        .await
        .unwrap_or_else(|err| panic!("listing failed: {err:?}"))
}

fn ids_of(listing: &JobListing) -> Vec<String> {
    listing.jobs.iter().map(|job| job.id.to_string()).collect()
}

/// Creates `healthy` and `id` (with field `n`) through a store that is dropped before the
/// harness damages anything.
async fn healthy_and(harness: &impl JobStoreHarness, id: &JobId) {
    let store = harness.store();
    create(&*store, &job("healthy"), json!({"n": 1})).await;
    create(&*store, id, json!({"n": 2})).await;
}

/// The listing that moves a damaged job aside reports it as quarantined, with the location
/// its `Quarantined` audit record names; later listings (through this store or a new one) do
/// not report it again, and the healthy job is listed throughout.
pub async fn jobs_listing_reports_a_quarantined_job_once(
    harness: &impl JobStoreHarness,
) -> CaseResult {
    let bad = job("broken");
    healthy_and(harness, &bad).await;
    if let Damage::Unsupported(reason) = harness.damage_job(&bad) {
        return CaseResult::Skipped(reason);
    }
    let store = harness.store();
    let listing = listing_of(&*store).await;
    assert_eq!(ids_of(&listing), ["healthy"], "{listing:?}");
    assert_eq!(
        listing.left_out.len(),
        1,
        "the listing that moved damaged job {bad} aside must report it: {listing:?}"
    );
    let left = &listing.left_out[0];
    assert_eq!(left.id.as_ref(), Some(&bad), "{left:?}");
    assert_eq!(left.name, bad.as_str(), "{left:?}");
    assert!(
        !left.reason.is_empty(),
        "a left-out entry must say why: {left:?}"
    );
    let LeftOutPlace::Quarantined { location } = &left.place else {
        panic!("damaged job {bad} must be reported as quarantined: {left:?}");
    };
    let audit = store.read_audit(&bad).await.expect("read_audit");
    assert!(
        audit
            .iter()
            .any(|r| r.action == JobAuditAction::Quarantined
                && r.detail["location"] == json!(location)),
        "no Quarantined record of job {bad} names {location}: {audit:?}"
    );
    let again = listing_of(&*store).await;
    assert_eq!(ids_of(&again), ["healthy"]);
    assert!(
        again.left_out.is_empty(),
        "job {bad} was moved aside by an earlier listing; it must not be reported again: {again:?}"
    );
    drop(store);
    let restarted = listing_of(&*harness.store()).await;
    assert_eq!(ids_of(&restarted), ["healthy"]);
    assert!(restarted.left_out.is_empty(), "{restarted:?}");
    CaseResult::Passed
}

/// A damaged job that cannot be moved aside stays in place and is reported as such by every
/// listing, through this store and a new one; it is audited as `LeftInPlace`, but not once
/// per listing.
pub async fn jobs_listing_reports_a_job_left_in_place_every_time(
    harness: &impl JobStoreHarness,
) -> CaseResult {
    const LISTINGS: usize = 3;
    let stuck = job("stuck");
    healthy_and(harness, &stuck).await;
    if let Damage::Unsupported(reason) = harness.damage_job_in_place(&stuck) {
        return CaseResult::Skipped(reason);
    }
    let mut places = Vec::new();
    for _handle in 0..2 {
        let store = harness.store();
        for round in 0..LISTINGS {
            let listing = listing_of(&*store).await;
            assert_eq!(ids_of(&listing), ["healthy"], "{listing:?}");
            assert_eq!(
                listing.left_out.len(),
                1,
                "listing {round} must report job {stuck}, still in place: {listing:?}"
            );
            let left = &listing.left_out[0];
            assert_eq!(left.id.as_ref(), Some(&stuck), "{left:?}");
            assert!(!left.reason.is_empty(), "{left:?}");
            let LeftOutPlace::LeftInPlace { at } = &left.place else {
                panic!("job {stuck} could not be moved: it must be reported in place: {left:?}");
            };
            places.push(at.clone());
        }
    }
    places.dedup();
    assert_eq!(
        places.len(),
        1,
        "job {stuck} is reported at different places: {places:?}"
    );
    let audit = harness
        .store()
        .read_audit(&stuck)
        .await
        .expect("read_audit");
    let records = audit
        .iter()
        .filter(|r| r.action == JobAuditAction::LeftInPlace)
        .count();
    assert!(
        (1..=2).contains(&records),
        "job {stuck} must be audited as left in place, at most once per store, not per listing ({} listings): {audit:?}",
        2 * LISTINGS
    );
    CaseResult::Passed
}

/// Whether `result` is the `NewerJobFormat` refusal of job `id`; panics naming `call` if not.
fn assert_newer<T: std::fmt::Debug>(call: &str, id: &JobId, result: Result<T, Error>) {
    match result {
        Err(Error::NewerJobFormat { job_id, .. }) if &job_id == id => {}
        other => panic!(
            "{call} of job {id}, which a newer build wrote, must be refused with NewerJobFormat, got {other:?}"
        ),
    }
}

/// A job a newer build wrote (a format version above this build's) is left exactly as it is:
/// `get`, `put` (at its version, and as a new job) and `delete` are refused with
/// `NewerJobFormat` every time, every listing through this store and a new one reports it
/// as [`LeftOutPlace::NewerFormat`] at one place, and nothing about it is audited. A store
/// that moved it aside, as it does damaged state, would make a rollback to an older build
/// lose every job a newer build wrote.
pub async fn jobs_newer_format_is_left_in_place(harness: &impl JobStoreHarness) -> CaseResult {
    const LISTINGS: usize = 2;
    let newer = job("newer");
    healthy_and(harness, &newer).await;
    if let Damage::Unsupported(reason) = harness.plant_newer_format(&newer) {
        return CaseResult::Skipped(reason);
    }
    let mut places = Vec::new();
    for _handle in 0..2 {
        let store = harness.store();
        for _ in 0..2 {
            assert_newer("get", &newer, store.get(&newer).await);
        }
        for round in 0..LISTINGS {
            let listing = listing_of(&*store).await;
            assert_eq!(ids_of(&listing), ["healthy"], "{listing:?}");
            assert_eq!(
                listing.left_out.len(),
                1,
                "listing {round} must report job {newer}, left for the newer build: {listing:?}"
            );
            let left = &listing.left_out[0];
            assert_eq!(left.id.as_ref(), Some(&newer), "{left:?}");
            assert_eq!(left.name, newer.as_str(), "{left:?}");
            assert!(!left.reason.is_empty(), "{left:?}");
            let LeftOutPlace::NewerFormat { at } = &left.place else {
                panic!(
                    "job {newer} was written by a newer build: it must be reported so: {left:?}"
                );
            };
            places.push(at.clone());
        }
        assert_newer(
            "put at its version",
            &newer,
            store.put(&newer, Some(1), &json!({"n": 9})).await,
        );
        assert_newer(
            "put as a new job",
            &newer,
            store.put(&newer, None, &json!({"n": 9})).await,
        );
        assert_newer("delete", &newer, store.delete(&newer, 1).await);
    }
    places.dedup();
    assert_eq!(
        places.len(),
        1,
        "job {newer} is reported at different places: {places:?}"
    );
    let store = harness.store();
    assert_newer("get after every refusal", &newer, store.get(&newer).await);
    let audit = store.read_audit(&newer).await.expect("read_audit");
    assert!(
        audit.is_empty(),
        "nothing is wrong with job {newer}: nothing may be audited about it: {audit:?}"
    );
    assert_eq!(
        fetch(&*store, &job("healthy"))
            .await
            .map(|(version, _)| version),
        Some(1),
        "the healthy job is untouched"
    );
    CaseResult::Passed
}

/// Writes through `stale` that a writer holding job `id` at an `old` version would make
/// (a put at each, a delete at each): every one MUST conflict and leave `now` stored.
async fn stale_writes_are_refused(
    stale: &dyn JobStore,
    fresh: &dyn JobStore,
    id: &JobId,
    old: &[u64],
    now: (u64, &serde_json::Value),
) {
    for &version in old {
        let put = stale
            .put(id, Some(version), &json!({"stale": version}))
            .await
            .unwrap_or_else(|err| panic!("put of job {id} failed: {err:?}"));
        assert!(
            put.is_err(),
            "a put at version {version}, read from an earlier job {id}, landed on the job added again (stored at {}): {put:?}",
            now.0
        );
        let delete = stale
            .delete(id, version)
            .await
            .unwrap_or_else(|err| panic!("delete of job {id} failed: {err:?}"));
        assert!(
            delete.is_err(),
            "a delete at version {version}, read from an earlier job {id}, deleted the job added again (stored at {})",
            now.0
        );
        assert_eq!(
            fetch(fresh, id).await,
            Some((now.0, now.1.clone())),
            "a stale write at version {version} changed job {id}"
        );
    }
}

/// Adds job `id` again through `fresh` and takes it through `writes` updates beyond the
/// versions in `old`; after each write, the stale writes at every version in `old` must be
/// refused, and the new job's versions must all lie above them.
async fn re_added_job_never_meets(
    stale: &dyn JobStore,
    fresh: &dyn JobStore,
    id: &JobId,
    old: &[u64],
) {
    let highest = old.iter().copied().max().unwrap_or(0);
    let mut document = json!({"incarnation": 2, "n": 0});
    let mut version = create(fresh, id, document.clone()).await;
    // As many writes as the old job had, and more: a counter starting over would meet
    // every old version on the way.
    for n in 1..=(old.len() as u64 + 2) {
        stale_writes_are_refused(stale, fresh, id, old, (version, &document)).await;
        assert!(
            version > highest,
            "job {id} added again stands at version {version}, not above the versions {old:?} the earlier job had"
        );
        document = json!({"incarnation": 2, "n": n});
        version = update(fresh, id, version, document.clone()).await;
    }
    stale_writes_are_refused(stale, fresh, id, old, (version, &document)).await;
}

/// A job deleted and added again under the same id never stands at a version the deleted
/// one had, so a compare-and-swap at a version read before the delete (a scheduler's claim,
/// or its delete of a one-shot job) can never land on the new job: every put and delete at
/// such a version conflicts, however far the new job is updated, through the store that
/// read it and after a restart.
pub async fn jobs_version_is_not_reused_after_delete(harness: &impl JobStoreHarness) -> CaseResult {
    let id = job("added-again");
    let stale = harness.store();
    let first = create(&*stale, &id, json!({"incarnation": 1, "n": 0})).await;
    let read = update(&*stale, &id, first, json!({"incarnation": 1, "n": 1})).await;
    // Another process deletes the job at the version the stale writer read, and adds it
    // again: first through a live store, then once more after a restart.
    let other = harness.store();
    assert_eq!(other.delete(&id, read).await.expect("delete"), Ok(()));
    re_added_job_never_meets(&*stale, &*other, &id, &[first, read]).await;
    let (latest, _) = fetch(&*other, &id).await.expect("the job added again");
    drop(other);
    let restarted = harness.store();
    assert_eq!(restarted.delete(&id, latest).await.expect("delete"), Ok(()));
    drop(restarted);
    let restarted = harness.store();
    let mut old: Vec<u64> = (first..=latest).collect();
    old.dedup();
    re_added_job_never_meets(&*stale, &*restarted, &id, &old).await;
    CaseResult::Passed
}

/// A job whose stored state was damaged and moved aside, then added again under the same
/// id, never stands at a version the damaged one had (as for a delete).
pub async fn jobs_version_is_not_reused_after_quarantine(
    harness: &impl JobStoreHarness,
) -> CaseResult {
    let id = job("damaged-then-added");
    let stale = harness.store();
    let first = create(&*stale, &id, json!({"n": 1})).await;
    let read = update(&*stale, &id, first, json!({"n": 2})).await;
    drop(stale);
    if let Damage::Unsupported(reason) = harness.damage_job(&id) {
        return CaseResult::Skipped(reason);
    }
    let other = harness.store();
    assert!(
        other.get(&id).await.is_err(),
        "get of damaged job {id} must fail (and move it aside)"
    );
    assert_eq!(
        fetch(&*other, &id).await,
        None,
        "job {id} was not moved aside"
    );
    let stale = harness.store();
    re_added_job_never_meets(&*stale, &*other, &id, &[first, read]).await;
    CaseResult::Passed
}
