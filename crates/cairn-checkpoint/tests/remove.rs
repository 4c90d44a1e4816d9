//! Proof that the conformance suite's removal cases catch a removal that ignores the run's
//! status, one that ignores the writer lock, and one that deletes bad metadata; and that
//! the noop adapter has nothing to remove.

#![cfg(feature = "conformance")]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use cairn_checkpoint::conformance::{self, ConformanceHarness, Damage};
use cairn_checkpoint::{
    Checkpointer, CheckpointerFactory, Error, MemoryFactory, NoopFactory, Result, RunId, RunMeta,
};
use common::{Bend, Bent, Unbent, case_panicked};

fn not_found(run_id: &RunId) -> Error {
    Error::NotFound {
        run_id: run_id.clone(),
    }
}

/// Removes a run whatever its status (it still refuses a held run).
#[derive(Debug, Clone, Default)]
struct RemovesAnyStatus(MemoryFactory);

#[async_trait]
impl Bend for RemovesAnyStatus {
    fn memory(&self) -> &MemoryFactory {
        &self.0
    }

    async fn remove_terminal(&self, run_id: &RunId) -> Result<RunMeta> {
        if self.0.is_held(run_id).await? {
            return Err(Error::Locked {
                run_id: run_id.clone(),
                holder: "a writer".to_owned(),
            });
        }
        self.0.discard_run(run_id).ok_or_else(|| not_found(run_id))
    }
}

/// Checks the status but removes a run a writer holds, without taking its lock.
#[derive(Debug, Clone, Default)]
struct RemovesHeldRuns(MemoryFactory);

#[async_trait]
impl Bend for RemovesHeldRuns {
    fn memory(&self) -> &MemoryFactory {
        &self.0
    }

    async fn remove_terminal(&self, run_id: &RunId) -> Result<RunMeta> {
        let meta = self
            .0
            .stored_meta(run_id)
            .ok_or_else(|| not_found(run_id))?;
        if !meta.status.is_terminal() {
            return Err(Error::NotTerminal {
                run_id: run_id.clone(),
                status: meta.status,
            });
        }
        self.0.discard_run(run_id).ok_or_else(|| not_found(run_id))
    }
}

/// Checks status and lock but not whether the stored metadata is readable, so it deletes
/// state of another format version instead of leaving it to be quarantined.
#[derive(Debug, Clone, Default)]
struct RemovesBadMetadata(MemoryFactory);

#[async_trait]
impl Bend for RemovesBadMetadata {
    fn memory(&self) -> &MemoryFactory {
        &self.0
    }

    async fn remove_terminal(&self, run_id: &RunId) -> Result<RunMeta> {
        let meta = self
            .0
            .stored_meta(run_id)
            .ok_or_else(|| not_found(run_id))?;
        if self.0.is_held(run_id).await? {
            return Err(Error::Locked {
                run_id: run_id.clone(),
                holder: "a writer".to_owned(),
            });
        }
        if !meta.status.is_terminal() {
            return Err(Error::NotTerminal {
                run_id: run_id.clone(),
                status: meta.status,
            });
        }
        self.0.discard_run(run_id).ok_or_else(|| not_found(run_id))
    }
}

/// A harness over a broken wrapper; `memory` is the wrapped store, for planting damage.
struct Broken<F> {
    factory: F,
    memory: MemoryFactory,
}

impl<F: CheckpointerFactory + Clone> ConformanceHarness for Broken<F> {
    fn factory(&self) -> Arc<dyn CheckpointerFactory> {
        Arc::new(self.factory.clone())
    }

    fn plant_version_mismatch(&self, run_id: &RunId) -> Damage {
        let Some(mut meta) = self.memory.stored_meta(run_id) else {
            return Damage::Unsupported(format!("run {run_id} is not stored"));
        };
        meta.format_version = 0;
        self.memory.plant_meta(run_id, meta);
        Damage::Applied { offset: None }
    }

    fn plant_newer_format(&self, run_id: &RunId) -> Damage {
        let Some(mut meta) = self.memory.stored_meta(run_id) else {
            return Damage::Unsupported(format!("run {run_id} is not stored"));
        };
        meta.format_version += 100;
        self.memory.plant_meta(run_id, meta);
        Damage::Applied { offset: None }
    }
}

/// Runs one removal case over `harness`; `true` when it panicked (the case failed).
async fn case_fails<F: CheckpointerFactory + Clone>(
    case: &'static str,
    harness: Broken<F>,
) -> bool {
    case_panicked(case, async move {
        match case {
            "remove_completed_and_cancelled_runs" => {
                conformance::remove_completed_and_cancelled_runs(&harness).await
            }
            "remove_refuses_unfinished_runs" => {
                conformance::remove_refuses_unfinished_runs(&harness).await
            }
            "remove_refuses_a_held_run" => conformance::remove_refuses_a_held_run(&harness).await,
            "remove_refuses_bad_metadata" => {
                conformance::remove_refuses_bad_metadata(&harness).await
            }
            other => panic!("no case {other}"),
        }
    })
    .await
}

fn broken<B: Bend>(wrap: impl FnOnce(MemoryFactory) -> B) -> Broken<Bent<B>> {
    let memory = MemoryFactory::new();
    Broken {
        factory: Bent(wrap(memory.clone())),
        memory,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_a_removal_of_an_unfinished_run() {
    assert!(
        case_fails("remove_refuses_unfinished_runs", broken(RemovesAnyStatus)).await,
        "remove_refuses_unfinished_runs must fail for a removal that ignores the status"
    );
    // The same wrapper removes finished runs correctly, so only the status rule is broken.
    assert!(
        !case_fails(
            "remove_completed_and_cancelled_runs",
            broken(RemovesAnyStatus)
        )
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_a_removal_without_the_lock() {
    assert!(
        case_fails("remove_refuses_a_held_run", broken(RemovesHeldRuns)).await,
        "remove_refuses_a_held_run must fail for a removal that ignores the writer lock"
    );
    assert!(!case_fails("remove_refuses_unfinished_runs", broken(RemovesHeldRuns)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_a_removal_of_bad_metadata() {
    assert!(
        case_fails("remove_refuses_bad_metadata", broken(RemovesBadMetadata)).await,
        "remove_refuses_bad_metadata must fail for a removal that deletes bad state"
    );
    assert!(!case_fails("remove_refuses_a_held_run", broken(RemovesBadMetadata)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_adapter_passes_the_cases_the_broken_ones_fail() {
    for case in [
        "remove_completed_and_cancelled_runs",
        "remove_refuses_unfinished_runs",
        "remove_refuses_a_held_run",
        "remove_refuses_bad_metadata",
    ] {
        assert!(!case_fails(case, broken(Unbent)).await, "{case}");
    }
}

#[tokio::test]
async fn the_noop_adapter_has_nothing_to_remove() {
    let factory = NoopFactory;
    let run_id = RunId::new("r1").unwrap();
    let run = factory
        .begin(RunMeta::new(
            run_id.clone(),
            "wf",
            "scope",
            "",
            cairn_queue::Timestamp(0),
        ))
        .await
        .unwrap();
    run.complete().await.unwrap();
    let err = factory.remove_terminal(&run_id).await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { run_id: named } if *named == run_id),
        "{err:?}"
    );
}
