//! The fault wrapper's own behaviour, and proof that the conformance suite catches a
//! broken adapter.

#![cfg(feature = "conformance")]

mod common;

use std::sync::Arc;

use async_trait::async_trait;
use cairn_checkpoint::conformance::{self, ConformanceHarness, sample_events};
use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
use cairn_checkpoint::{
    Checkpointer, CheckpointerFactory, Error, MemoryFactory, Opened, Result, RunId, RunMeta,
    RunStatus,
};
use cairn_queue::Timestamp;
use common::{Bend, Bent};

fn meta(id: &str) -> RunMeta {
    RunMeta::new(RunId::new(id).unwrap(), "wf", "s", "", Timestamp(0))
}

#[tokio::test]
async fn left_in_place_can_be_faulted() {
    let plan = FaultPlan::new();
    let factory = FaultyFactory::new(MemoryFactory::new(), plan.clone());
    plan.fail_next(FaultOp::LeftInPlace, FaultTiming::Before);
    let err = factory.left_in_place().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Injected {
                op: "left_in_place"
            }
        ),
        "{err:?}"
    );
    assert!(factory.left_in_place().await.unwrap().is_empty());
    assert_eq!(plan.calls(FaultOp::LeftInPlace), 2);
    assert_eq!(plan.fired(), vec![(FaultOp::LeftInPlace, 1)]);
}

#[tokio::test]
async fn the_nth_call_fails_and_only_it() {
    let plan = FaultPlan::new();
    let factory = FaultyFactory::new(MemoryFactory::new(), plan.clone());
    let run = factory.begin(meta("nth")).await.unwrap();
    plan.fail_nth(FaultOp::Append, 3, FaultTiming::Before);
    run.append(&sample_events(0, 1)).await.unwrap();
    run.append(&sample_events(1, 2)).await.unwrap();
    let err = run.append(&sample_events(2, 3)).await.unwrap_err();
    assert!(matches!(err, Error::Injected { op: "append" }), "{err:?}");
    run.append(&sample_events(3, 4)).await.unwrap();
    assert_eq!(plan.calls(FaultOp::Append), 4);
    assert_eq!(plan.fired(), vec![(FaultOp::Append, 3)]);
    let loaded = run.load().await.unwrap();
    let mut want = sample_events(0, 2);
    want.extend(sample_events(3, 4));
    assert_eq!(loaded.events, want, "a Before fault writes nothing");
}

#[tokio::test]
async fn an_after_fault_lets_the_effect_happen() {
    let plan = FaultPlan::new();
    let factory = FaultyFactory::new(MemoryFactory::new(), plan.clone());
    let id = RunId::new("after").unwrap();
    drop(factory.begin(meta("after")).await.unwrap());
    plan.fail_next(FaultOp::CompareAndSwap, FaultTiming::After);
    let err = factory
        .compare_and_swap_status(&id, RunStatus::Running, RunStatus::Paused)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Injected {
            op: "compare_and_swap_status"
        }
    ));
    let stored = factory.load_meta(&id).await.unwrap().unwrap();
    assert_eq!(
        stored.status,
        RunStatus::Paused,
        "the swap happened underneath"
    );
}

#[tokio::test]
async fn a_claim_fault_before_claims_nothing_and_after_claims_unacknowledged() {
    let plan = FaultPlan::new();
    let factory = FaultyFactory::new(MemoryFactory::new(), plan.clone());
    let id = RunId::new("claimed").unwrap();
    drop(factory.begin(meta("claimed")).await.unwrap());

    plan.fail_next(FaultOp::Claim, FaultTiming::Before);
    let err = factory.claim(&id, RunStatus::Running, 1).await.unwrap_err();
    assert!(matches!(err, Error::Injected { op: "claim" }), "{err:?}");
    assert_eq!(
        factory.load_meta(&id).await.unwrap().unwrap().lease_epoch,
        1
    );

    plan.fail_next(FaultOp::Claim, FaultTiming::After);
    let err = factory.claim(&id, RunStatus::Running, 1).await.unwrap_err();
    assert!(matches!(err, Error::Injected { op: "claim" }), "{err:?}");
    assert_eq!(
        factory.load_meta(&id).await.unwrap().unwrap().lease_epoch,
        2,
        "the claim happened underneath"
    );
    assert_eq!(plan.calls(FaultOp::Claim), 2);
    assert_eq!(plan.fired(), vec![(FaultOp::Claim, 1), (FaultOp::Claim, 2)]);
}

#[tokio::test]
async fn disarmed_faults_never_fire() {
    let plan = FaultPlan::new();
    let factory = FaultyFactory::new(MemoryFactory::new(), plan.clone());
    plan.fail_next(FaultOp::Begin, FaultTiming::Before);
    plan.disarm_all();
    factory.begin(meta("calm")).await.unwrap();
    assert!(plan.fired().is_empty());
    assert_eq!(plan.calls(FaultOp::Begin), 1);
}

/// An adapter with a classic bug: `open` forgets the last event appended.
#[derive(Debug, Clone, Default)]
struct ForgetsLastEvent(MemoryFactory);

#[async_trait]
impl Bend for ForgetsLastEvent {
    fn memory(&self) -> &MemoryFactory {
        &self.0
    }

    async fn open(&self, run_id: &RunId) -> Result<Option<Opened>> {
        let mut opened = self.0.open(run_id).await?;
        if let Some(opened) = &mut opened {
            opened.recovered.events.pop();
        }
        Ok(opened)
    }
}

struct ForgetfulHarness(Bent<ForgetsLastEvent>);

impl ConformanceHarness for ForgetfulHarness {
    fn factory(&self) -> Arc<dyn CheckpointerFactory> {
        Arc::new(self.0.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_catches_a_lost_event() {
    for case in ["reopen_after_drop", "reopen_after_crash", "injected_faults"] {
        let harness = ForgetfulHarness(Bent(ForgetsLastEvent::default()));
        let outcome = tokio::spawn(async move {
            match case {
                "reopen_after_drop" => conformance::reopen_after_drop(&harness).await,
                "reopen_after_crash" => conformance::reopen_after_crash(&harness).await,
                _ => conformance::injected_faults_lose_nothing_acknowledged(&harness).await,
            }
        })
        .await;
        assert!(
            outcome.is_err_and(|e| e.is_panic()),
            "{case} must fail for an adapter that loses an event"
        );
    }
}
