//! Proof that the conformance suite's claim cases catch a claim that ignores the lease epoch
//! or writes when it loses. (An implementation without `claim` does not compile: the port
//! method has no provided body.)

#![cfg(feature = "conformance")]

use std::sync::Arc;

use async_trait::async_trait;
use cairn_checkpoint::conformance::{self, CaseResult, ConformanceHarness};
use cairn_checkpoint::{
    AuditRecord, Checkpointer, CheckpointerFactory, MemoryFactory, Opened, Quarantined, Result,
    RunFilter, RunId, RunMeta, RunStatus, StatusConflict, wall_clock_now,
};

/// Implements the port for `$name` by forwarding every method but `claim` to the
/// `MemoryFactory` in field `0`, plus the methods written in the braces (which give `claim`).
macro_rules! memory_wrapper {
    ($name:ident { $($methods:tt)* }) => {
        #[async_trait]
        impl CheckpointerFactory for $name {
            $($methods)*
        async fn begin(&self, meta: RunMeta) -> Result<Box<dyn Checkpointer>> {
            self.0.begin(meta).await
        }
        async fn open(&self, run_id: &RunId) -> Result<Option<Opened>> {
            self.0.open(run_id).await
        }
        async fn load_meta(&self, run_id: &RunId) -> Result<Option<RunMeta>> {
            self.0.load_meta(run_id).await
        }
        async fn list(&self, filter: &RunFilter) -> Result<Vec<RunMeta>> {
            self.0.list(filter).await
        }
        async fn compare_and_swap_status(
            &self,
            run_id: &RunId,
            from: RunStatus,
            to: RunStatus,
        ) -> Result<Result<RunMeta, StatusConflict>> {
            self.0.compare_and_swap_status(run_id, from, to).await
        }
        async fn is_held(&self, run_id: &RunId) -> Result<bool> {
            self.0.is_held(run_id).await
        }
        async fn quarantine(&self, run_id: &RunId, reason: &str) -> Result<Quarantined> {
            self.0.quarantine(run_id, reason).await
        }
        async fn remove_terminal(&self, run_id: &RunId) -> Result<RunMeta> {
            self.0.remove_terminal(run_id).await
        }
        async fn append_audit(&self, run_id: &RunId, record: &AuditRecord) -> Result<()> {
            self.0.append_audit(run_id, record).await
        }
        async fn read_audit(&self, run_id: &RunId) -> Result<Vec<AuditRecord>> {
            self.0.read_audit(run_id).await
        }
        }
    };
}

/// The old way of claiming an interrupted run: a status swap, which never compares the
/// lease epoch, so every racer wins and a stale claimer moves the run on.
#[derive(Debug, Clone, Default)]
struct ClaimIgnoresEpoch(MemoryFactory);

memory_wrapper!(ClaimIgnoresEpoch {
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
});

/// Compares the epoch, but rewrites the run's metadata (with a new `updated_at`) when the
/// claim loses, as an adapter that always writes back what it read would.
#[derive(Debug, Clone, Default)]
struct ClaimWritesWhenItLoses(MemoryFactory);

memory_wrapper!(ClaimWritesWhenItLoses {
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
});

struct Broken<F>(F);

impl<F: CheckpointerFactory + Clone> ConformanceHarness for Broken<F> {
    fn factory(&self) -> Arc<dyn CheckpointerFactory> {
        Arc::new(self.0.clone())
    }
}

/// Runs one claim case over `factory`; `true` when it panicked (the case failed).
async fn case_fails<F: CheckpointerFactory + Clone>(case: &'static str, factory: F) -> bool {
    let harness = Broken(factory);
    let outcome = tokio::spawn(async move {
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
    .await;
    match outcome {
        Ok(result) => {
            assert_eq!(result, CaseResult::Passed, "{case}");
            false
        }
        Err(err) => err.is_panic(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_a_claim_that_ignores_the_epoch() {
    for case in [
        "claim_at_a_stale_epoch_changes_nothing",
        "claims_racing_from_threads_have_one_winner",
    ] {
        assert!(
            case_fails(case, ClaimIgnoresEpoch::default()).await,
            "{case} must fail for a claim that ignores the lease epoch"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_a_claim_that_writes_when_it_loses() {
    assert!(
        case_fails(
            "claim_at_a_stale_epoch_changes_nothing",
            ClaimWritesWhenItLoses::default()
        )
        .await,
        "a lost claim that rewrites the metadata must fail the case"
    );
    assert!(
        case_fails(
            "claim_of_a_terminal_run_changes_nothing",
            ClaimWritesWhenItLoses::default()
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
