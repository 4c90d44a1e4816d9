//! Proof that the conformance case `list_quarantined_reports_moved_runs` catches an adapter
//! that hides quarantined runs and one that loses their metadata, and that the memory
//! adapter passes it through the same wrapper.

#![cfg(feature = "conformance")]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use cairn_checkpoint::conformance::{self, ConformanceHarness};
use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, QuarantinedRun, Result};
use common::{Bend, Bent, Unbent, case_panicked};

/// Lists nothing, as a wrapper that forgot its quarantine would.
#[derive(Debug, Clone, Default)]
struct HidesQuarantine(MemoryFactory);

#[async_trait]
impl Bend for HidesQuarantine {
    fn memory(&self) -> &MemoryFactory {
        &self.0
    }

    async fn list_quarantined(&self) -> Result<Vec<QuarantinedRun>> {
        Ok(Vec::new())
    }
}

/// Lists every quarantined run but drops the metadata it had (its workflow and scope).
#[derive(Debug, Clone, Default)]
struct ForgetsMetadata(MemoryFactory);

#[async_trait]
impl Bend for ForgetsMetadata {
    fn memory(&self) -> &MemoryFactory {
        &self.0
    }

    async fn list_quarantined(&self) -> Result<Vec<QuarantinedRun>> {
        let listed = self.0.list_quarantined().await?;
        Ok(listed
            .into_iter()
            .map(|entry| {
                QuarantinedRun::new(entry.run_id, entry.location, entry.reason, entry.at, None)
            })
            .collect())
    }
}

/// One storage: every factory is a new wrapper over the same memory store.
struct Harness<B>(B);

impl<B: Bend> ConformanceHarness for Harness<B> {
    fn factory(&self) -> Arc<dyn CheckpointerFactory> {
        Arc::new(Bent(self.0.clone()))
    }
}

/// Runs the case; `true` when it failed (panicked).
async fn case_fails<B: Bend>(bend: B) -> bool {
    let harness = Harness(bend);
    case_panicked("list_quarantined_reports_moved_runs", async move {
        conformance::list_quarantined_reports_moved_runs(&harness).await
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_a_store_that_hides_quarantined_runs() {
    assert!(case_fails(HidesQuarantine::default()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_a_store_that_loses_quarantined_metadata() {
    assert!(case_fails(ForgetsMetadata::default()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_passes_through_the_same_wrapper() {
    assert!(!case_fails(Unbent(MemoryFactory::new())).await);
}
