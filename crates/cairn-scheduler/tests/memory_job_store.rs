//! The job-store conformance cases against `MemoryJobStore` (the scheduler's test store).

use std::sync::Arc;

use cairn_checkpoint::conformance::CaseResult;
use cairn_checkpoint::conformance::jobs::{self, ALL_JOB_CASES, JobStoreHarness};
use cairn_checkpoint::{JobStore, MemoryJobStore};

/// One in-memory store; every `store()` is a clone sharing it, as a second process would.
#[derive(Debug, Default)]
struct MemoryJobs(MemoryJobStore);

impl JobStoreHarness for MemoryJobs {
    fn store(&self) -> Arc<dyn JobStore> {
        Arc::new(self.0.clone())
    }
}

mod memory {
    cairn_checkpoint::job_store_conformance_tests!(super::MemoryJobs::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_skips_only_the_damage_case() {
    assert!(matches!(
        jobs::jobs_damaged_state_is_quarantined(&MemoryJobs::default()).await,
        CaseResult::Skipped(_)
    ));
    assert_eq!(ALL_JOB_CASES.len(), 9);
}
