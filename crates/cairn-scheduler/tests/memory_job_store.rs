//! The job-store conformance cases against `MemoryJobStore` (the scheduler's test store).

use std::sync::Arc;

use cairn_checkpoint::conformance::jobs::{self, ALL_JOB_CASES, JobStoreHarness};
use cairn_checkpoint::conformance::{CaseResult, Damage};
use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};

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
}

mod memory {
    cairn_checkpoint::job_store_conformance_tests!(super::MemoryJobs::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_skips_no_job_case() {
    assert_eq!(ALL_JOB_CASES.len(), 11);
    assert_eq!(
        jobs::jobs_damaged_state_is_quarantined(&MemoryJobs::default()).await,
        CaseResult::Passed
    );
    assert_eq!(
        jobs::jobs_listing_reports_a_quarantined_job_once(&MemoryJobs::default()).await,
        CaseResult::Passed
    );
    assert_eq!(
        jobs::jobs_listing_reports_a_job_left_in_place_every_time(&MemoryJobs::default()).await,
        CaseResult::Passed
    );
}
