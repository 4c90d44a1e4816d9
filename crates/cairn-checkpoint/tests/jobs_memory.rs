//! The job-store conformance cases against `MemoryJobStore`, with its damage hooks, and
//! against the fault wrapper around it, plus the forwarding through `Arc` and `Box` of what a
//! listing left out.

#![cfg(feature = "conformance")]

use std::sync::Arc;

use cairn_checkpoint::conformance::jobs::{self, ALL_JOB_CASES, FaultyJobHarness, JobStoreHarness};
use cairn_checkpoint::conformance::{CaseResult, Damage};
use cairn_checkpoint::{JobAuditAction, JobId, JobStore, LeftOutPlace, MemoryJobStore};

/// One in-memory store; every `store()` is a clone sharing it, as a second process would.
#[derive(Debug, Default)]
struct MemoryJobs(MemoryJobStore);

impl JobStoreHarness for MemoryJobs {
    fn store(&self) -> Arc<dyn JobStore> {
        Arc::new(self.0.clone())
    }

    fn damage_job(&self, id: &JobId) -> Damage {
        assert!(self.0.damage_job(id), "job {id} is stored");
        Damage::Applied { offset: None }
    }

    fn damage_job_in_place(&self, id: &JobId) -> Damage {
        assert!(self.0.damage_job_in_place(id), "job {id} is stored");
        Damage::Applied { offset: None }
    }

    fn plant_newer_format(&self, id: &JobId) -> Damage {
        assert!(self.0.plant_newer_format(id), "job {id} is stored");
        Damage::Applied { offset: None }
    }
}

mod memory {
    cairn_checkpoint::job_store_conformance_tests!(super::MemoryJobs::default());
}

mod faulty_memory {
    cairn_checkpoint::job_store_conformance_tests!(
        cairn_checkpoint::conformance::jobs::FaultyJobHarness(super::MemoryJobs::default())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_job_case_is_skipped_for_memory() {
    assert_eq!(ALL_JOB_CASES.len(), 15);
    for case in [
        jobs::jobs_damaged_state_is_quarantined(&MemoryJobs::default()).await,
        jobs::jobs_listing_reports_a_quarantined_job_once(&MemoryJobs::default()).await,
        jobs::jobs_listing_reports_a_job_left_in_place_every_time(&MemoryJobs::default()).await,
        jobs::jobs_newer_format_is_left_in_place(&MemoryJobs::default()).await,
    ] {
        assert_eq!(case, CaseResult::Passed);
    }
}

/// The damage hooks reach the store under the wrapper, so no case is skipped through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_job_case_is_skipped_through_the_fault_wrapper() {
    let faulty = || FaultyJobHarness(MemoryJobs::default());
    for case in [
        jobs::jobs_damaged_state_is_quarantined(&faulty()).await,
        jobs::jobs_listing_reports_a_quarantined_job_once(&faulty()).await,
        jobs::jobs_listing_reports_a_job_left_in_place_every_time(&faulty()).await,
        jobs::jobs_newer_format_is_left_in_place(&faulty()).await,
        jobs::jobs_version_is_not_reused_after_quarantine(&faulty()).await,
    ] {
        assert_eq!(case, CaseResult::Passed);
    }
}

#[tokio::test]
async fn left_out_entries_pass_through_arc_and_box() {
    let memory = MemoryJobStore::new();
    let stuck = JobId::new("stuck").unwrap();
    memory
        .put(&stuck, None, &serde_json::json!({}))
        .await
        .unwrap()
        .unwrap();
    assert!(memory.damage_job_in_place(&stuck));
    let boxed: Box<dyn JobStore> = Box::new(memory.clone());
    let shared: Arc<Box<dyn JobStore>> = Arc::new(boxed);
    for _ in 0..2 {
        let listing = shared.listing().await.unwrap();
        assert!(listing.jobs.is_empty());
        assert_eq!(listing.left_out.len(), 1, "{listing:?}");
        assert!(matches!(
            listing.left_out[0].place,
            LeftOutPlace::LeftInPlace { .. }
        ));
        assert!(shared.list().await.unwrap().is_empty());
    }
    // Audited once, not once per listing; get, put and delete of it fail and change nothing.
    let audit = memory.read_audit(&stuck).await.unwrap();
    assert_eq!(
        audit.iter().map(|r| r.action).collect::<Vec<_>>(),
        [JobAuditAction::LeftInPlace]
    );
    assert!(memory.get(&stuck).await.is_err());
    assert!(
        memory
            .put(&stuck, Some(1), &serde_json::json!({}))
            .await
            .is_err()
    );
    assert!(memory.delete(&stuck, 1).await.is_err());
    assert_eq!(memory.listing().await.unwrap().left_out.len(), 1);
}
