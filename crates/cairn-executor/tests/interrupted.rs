//! `TaskFailure::Interrupted`: a handler whose work a shutdown's signal stopped gives its
//! attempt back when the run is shutting down, and fails retryably when it is not.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cairn_checkpoint::{AuditAction, CheckpointerFactory, MemoryFactory, RunStatus};
use cairn_executor::{
    Disposition, Executor, ExecutorConfig, Finish, Phase, Registry, RunPlan, RunSignals, Start,
    TaskFailure, handler_fn,
};
use cairn_queue::{Handoff, Status, TaskSpec};
use common::{Ledger, stored_queue};

/// One task of kind `work` allowed a single attempt, and a dependent that records itself.
fn plan() -> RunPlan {
    let mut phase = Phase::new("main");
    let work = phase.task(TaskSpec::new("work").max_attempts(1), []);
    phase.task(TaskSpec::new("after"), [work]);
    RunPlan::new("wf", "scope").phase(phase)
}

fn config() -> ExecutorConfig {
    ExecutorConfig::default().with_shutdown_grace(Duration::from_secs(60))
}

/// Mimics a service manager's stop: the handler's "child" is killed by the same stop that
/// shuts the run down, so the handler sees its work end and the shutdown requested.
#[tokio::test]
async fn an_attempt_interrupted_by_the_shutdown_is_released_not_charged() {
    let factory = MemoryFactory::new();
    let signals = RunSignals::default();
    let stop = signals.shutdown.clone();
    let ledger = Ledger::default();
    let seen = ledger.clone();
    let registry = Registry::new()
        .with(
            "work",
            handler_fn(move |ctx| {
                let (stop, seen) = (stop.clone(), seen.clone());
                async move {
                    seen.record(&ctx);
                    if ctx.attempt() == 1 && seen.total() == 1 {
                        stop.cancel();
                        ctx.shutdown().cancelled().await;
                        return Err(TaskFailure::interrupted("signal", "killed by SIGTERM"));
                    }
                    Ok(Finish::Complete(Handoff::default()))
                }
            }),
        )
        .with("after", common::recording(&ledger));
    let executor = Executor::new(Arc::new(factory.clone()), registry, config()).unwrap();

    let first = executor.run(plan(), Start::Fresh, signals).await.unwrap();
    assert_eq!(first.disposition, Disposition::LeaveRunning);
    assert_eq!(first.counts.failed, 0, "{:?}", first.counts);
    let queue = stored_queue(&factory, &first.run_id).await;
    let work = queue
        .tasks()
        .find(|task| task.kind == "work")
        .expect("the work task");
    assert_eq!(work.status, Status::Pending);
    assert_eq!(work.attempts, 0, "the interrupted attempt is not spent");
    let audit = factory.read_audit(&first.run_id).await.unwrap();
    let released: Vec<_> = audit
        .iter()
        .filter(|record| record.action == AuditAction::TaskReleased)
        .collect();
    assert_eq!(released.len(), 1, "{audit:?}");
    assert_eq!(released[0].detail["cause"], "shutdown");

    // On resume the task gets its one attempt, under the same number.
    let second = executor
        .run(plan(), Start::Auto, RunSignals::default())
        .await
        .unwrap();
    assert_eq!(second.run_id, first.run_id);
    assert_eq!(second.disposition, Disposition::Complete);
    assert_eq!(ledger.attempts(), vec![1, 1, 1], "work twice, then after");
    let meta = factory.load_meta(&first.run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Completed);
}

/// Without a shutdown nothing explains the stop: the task failed, and its single attempt
/// is spent, so the run fails instead of looping on a handler that always says so.
#[tokio::test]
async fn an_interruption_outside_a_shutdown_is_a_retryable_failure() {
    let factory = MemoryFactory::new();
    let ledger = Ledger::default();
    let seen = ledger.clone();
    let registry = Registry::new()
        .with(
            "work",
            handler_fn(move |ctx| {
                let seen = seen.clone();
                async move {
                    seen.record(&ctx);
                    Err(TaskFailure::interrupted("signal", "killed by SIGTERM"))
                }
            }),
        )
        .with("after", common::recording(&ledger));
    let executor = Executor::new(Arc::new(factory.clone()), registry, config()).unwrap();

    let report = executor
        .run(plan(), Start::Fresh, RunSignals::default())
        .await
        .unwrap();
    let Disposition::Fail(error) = &report.disposition else {
        panic!("{:?}", report.disposition);
    };
    assert!(error.message.contains("killed by SIGTERM"), "{error:?}");
    assert_eq!(ledger.total(), 1, "one attempt, nothing after it");
    let queue = stored_queue(&factory, &report.run_id).await;
    let work = queue.tasks().find(|task| task.kind == "work").unwrap();
    assert_eq!(work.status, Status::Failed);
    assert_eq!(work.attempts, 1);
    let audit = factory.read_audit(&report.run_id).await.unwrap();
    assert!(
        !audit
            .iter()
            .any(|record| record.action == AuditAction::TaskReleased),
        "{audit:?}"
    );
}
