//! Proof that the conformance suite's epoch-checked swap cases catch a swap that ignores
//! the lease epoch (the plain status swap, which lets a late abandon cancel a run resumed
//! since it was read) or writes when it loses. (An implementation without
//! `compare_and_swap_status_at` does not compile: the port method has no provided body.)

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

/// The plain status swap under the new name: it never compares the lease epoch.
#[derive(Debug, Clone, Default)]
struct SwapIgnoresEpoch(MemoryFactory);

#[async_trait]
impl Bend for SwapIgnoresEpoch {
    fn memory(&self) -> &MemoryFactory {
        &self.0
    }

    async fn compare_and_swap_status_at(
        &self,
        run_id: &RunId,
        from: RunStatus,
        _expected_epoch: u64,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        self.0.compare_and_swap_status(run_id, from, to).await
    }
}

/// Compares the epoch, but rewrites the run's metadata (with a new `updated_at`) when the
/// swap loses, as an adapter that always writes back what it read would.
#[derive(Debug, Clone, Default)]
struct SwapWritesWhenItLoses(MemoryFactory);

#[async_trait]
impl Bend for SwapWritesWhenItLoses {
    fn memory(&self) -> &MemoryFactory {
        &self.0
    }

    async fn compare_and_swap_status_at(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        let outcome = self
            .0
            .compare_and_swap_status_at(run_id, from, expected_epoch, to)
            .await?;
        if outcome.is_err()
            && let Some(mut stored) = self.0.stored_meta(run_id)
        {
            stored.updated_at = wall_clock_now();
            self.0.plant_meta(run_id, stored);
        }
        Ok(outcome)
    }
}

/// Takes the lease as a swap to `running` would: refuses nothing as `ClaimRequired`.
#[derive(Debug, Clone, Default)]
struct SwapClaims(MemoryFactory);

#[async_trait]
impl Bend for SwapClaims {
    fn memory(&self) -> &MemoryFactory {
        &self.0
    }

    async fn compare_and_swap_status_at(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        if to == RunStatus::Running {
            return self.0.claim(run_id, from, expected_epoch).await;
        }
        self.0
            .compare_and_swap_status_at(run_id, from, expected_epoch, to)
            .await
    }
}

struct Broken<F>(F);

impl<F: CheckpointerFactory + Clone> ConformanceHarness for Broken<F> {
    fn factory(&self) -> Arc<dyn CheckpointerFactory> {
        Arc::new(self.0.clone())
    }
}

/// The epoch-checked swap cases, by name.
const CASES: &[&str] = &[
    "swap_at_the_read_epoch_wins",
    "swap_at_a_stale_epoch_changes_nothing",
    "swap_at_refuses_a_run_resumed_since_it_was_read",
    "swap_at_of_a_terminal_run_changes_nothing",
    "swap_at_to_running_is_refused",
    "swaps_at_one_epoch_racing_from_threads_have_one_winner",
    "swaps_at_and_claims_racing_have_one_winner",
    "dropped_swaps_at_never_land_on_a_later_epoch",
];

/// Runs one case over `factory`; `true` when it panicked (the case failed).
async fn case_fails<F: CheckpointerFactory + Clone>(case: &'static str, factory: F) -> bool {
    let harness = Broken(factory);
    case_panicked(case, async move {
        match case {
            "swap_at_the_read_epoch_wins" => {
                conformance::swap_at_the_read_epoch_wins(&harness).await
            }
            "swap_at_a_stale_epoch_changes_nothing" => {
                conformance::swap_at_a_stale_epoch_changes_nothing(&harness).await
            }
            "swap_at_refuses_a_run_resumed_since_it_was_read" => {
                conformance::swap_at_refuses_a_run_resumed_since_it_was_read(&harness).await
            }
            "swap_at_of_a_terminal_run_changes_nothing" => {
                conformance::swap_at_of_a_terminal_run_changes_nothing(&harness).await
            }
            "swap_at_to_running_is_refused" => {
                conformance::swap_at_to_running_is_refused(&harness).await
            }
            "swaps_at_one_epoch_racing_from_threads_have_one_winner" => {
                conformance::swaps_at_one_epoch_racing_from_threads_have_one_winner(&harness).await
            }
            "swaps_at_and_claims_racing_have_one_winner" => {
                conformance::swaps_at_and_claims_racing_have_one_winner(&harness).await
            }
            "dropped_swaps_at_never_land_on_a_later_epoch" => {
                conformance::dropped_swaps_at_never_land_on_a_later_epoch(&harness).await
            }
            other => panic!("no case {other}"),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_a_swap_that_ignores_the_epoch() {
    for case in [
        "swap_at_a_stale_epoch_changes_nothing",
        "swap_at_refuses_a_run_resumed_since_it_was_read",
        "swaps_at_one_epoch_racing_from_threads_have_one_winner",
    ] {
        assert!(
            case_fails(case, Bent(SwapIgnoresEpoch::default())).await,
            "{case} must fail for a swap that ignores the lease epoch"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_a_swap_that_writes_when_it_loses() {
    for case in [
        "swap_at_a_stale_epoch_changes_nothing",
        "swap_at_refuses_a_run_resumed_since_it_was_read",
        "swap_at_of_a_terminal_run_changes_nothing",
    ] {
        assert!(
            case_fails(case, Bent(SwapWritesWhenItLoses::default())).await,
            "{case} must fail for a lost swap that rewrites the metadata"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_a_swap_to_running_that_claims() {
    assert!(
        case_fails("swap_at_to_running_is_refused", Bent(SwapClaims::default())).await,
        "a swap to running must be refused, not made a claim"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_adapter_passes_the_swap_cases() {
    for case in CASES {
        assert!(!case_fails(case, MemoryFactory::new()).await, "{case}");
    }
}

#[test]
fn every_swap_case_is_in_the_suite() {
    for case in CASES {
        assert!(conformance::ALL_CASES.contains(case), "{case}");
    }
}
