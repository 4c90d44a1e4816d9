//! Proof that the conformance suite's claim cases catch a claim that ignores the lease epoch
//! or writes when it loses. (An implementation without `claim` does not compile: the port
//! method has no provided body.)

#![cfg(feature = "conformance")]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use cairn_checkpoint::conformance::{self, ConformanceHarness};
use cairn_checkpoint::{
    CheckpointerFactory, MemoryFactory, Result, RunId, RunMeta, RunStatus, StatusConflict,
    wall_clock_now,
};
use common::{Bend, Bent, case_panicked};

/// The old way of claiming an interrupted run: a status swap, which never compares the
/// lease epoch, so every racer wins and a stale claimer moves the run on.
#[derive(Debug, Clone, Default)]
struct ClaimIgnoresEpoch(MemoryFactory);

#[async_trait]
impl Bend for ClaimIgnoresEpoch {
    fn memory(&self) -> &MemoryFactory {
        &self.0
    }

    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        _expected_epoch: u64,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        self.0
            .compare_and_swap_status(run_id, from, RunStatus::Running)
            .await
    }
}

/// Compares the epoch, but rewrites the run's metadata (with a new `updated_at`) when the
/// claim loses, as an adapter that always writes back what it read would.
#[derive(Debug, Clone, Default)]
struct ClaimWritesWhenItLoses(MemoryFactory);

#[async_trait]
impl Bend for ClaimWritesWhenItLoses {
    fn memory(&self) -> &MemoryFactory {
        &self.0
    }

    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        let outcome = self.0.claim(run_id, from, expected_epoch).await?;
        if outcome.is_err()
            && let Some(mut stored) = self.0.stored_meta(run_id)
        {
            stored.updated_at = wall_clock_now();
            self.0.plant_meta(run_id, stored);
        }
        Ok(outcome)
    }
}

struct Broken<F>(F);

impl<F: CheckpointerFactory + Clone> ConformanceHarness for Broken<F> {
    fn factory(&self) -> Arc<dyn CheckpointerFactory> {
        Arc::new(self.0.clone())
    }
}

/// Runs one claim case over `factory`; `true` when it panicked (the case failed).
async fn case_fails<F: CheckpointerFactory + Clone>(case: &'static str, factory: F) -> bool {
    let harness = Broken(factory);
    case_panicked(case, async move {
        match case {
            "claim_at_the_read_epoch_wins" => {
                conformance::claim_at_the_read_epoch_wins(&harness).await
            }
            "claim_at_a_stale_epoch_changes_nothing" => {
                conformance::claim_at_a_stale_epoch_changes_nothing(&harness).await
            }
            "claims_racing_from_threads_have_one_winner" => {
                conformance::claims_racing_from_threads_have_one_winner(&harness).await
            }
            "claim_of_a_terminal_run_changes_nothing" => {
                conformance::claim_of_a_terminal_run_changes_nothing(&harness).await
            }
            other => panic!("no case {other}"),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_a_claim_that_ignores_the_epoch() {
    for case in [
        "claim_at_a_stale_epoch_changes_nothing",
        "claims_racing_from_threads_have_one_winner",
    ] {
        assert!(
            case_fails(case, Bent(ClaimIgnoresEpoch::default())).await,
            "{case} must fail for a claim that ignores the lease epoch"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_a_claim_that_writes_when_it_loses() {
    assert!(
        case_fails(
            "claim_at_a_stale_epoch_changes_nothing",
            Bent(ClaimWritesWhenItLoses::default())
        )
        .await,
        "a lost claim that rewrites the metadata must fail the case"
    );
    assert!(
        case_fails(
            "claim_of_a_terminal_run_changes_nothing",
            Bent(ClaimWritesWhenItLoses::default())
        )
        .await,
        "a lost claim of a terminal run that rewrites it must fail the case"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_adapter_passes_the_claim_cases() {
    for case in [
        "claim_at_the_read_epoch_wins",
        "claim_at_a_stale_epoch_changes_nothing",
        "claims_racing_from_threads_have_one_winner",
        "claim_of_a_terminal_run_changes_nothing",
    ] {
        assert!(!case_fails(case, MemoryFactory::new()).await, "{case}");
    }
}
