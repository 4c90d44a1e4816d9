//! `take_over`: a host's preview of an adoption, on a peeked queue, matches what the
//! executor's drive then finds: the tasks it runs, and the ones that stay failed or blocked.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunFilter, RunId, RunStatus};
use cairn_executor::{
    Disposition, Executor, ExecutorConfig, Finish, Phase, Registry, RunPlan, RunSignals, Start,
    take_over,
};
use cairn_queue::{Handoff, QueueConfig, Status, TaskId, TaskSpec, Timestamp};
use common::{Ledger, recording};

/// a (one attempt) and b (two attempts) side by side, c after a.
fn plan() -> RunPlan {
    let mut phase = Phase::new("main");
    let a = phase.named_task("a", TaskSpec::new("work").max_attempts(1), []);
    phase.named_task("b", TaskSpec::new("work").max_attempts(2), []);
    phase.named_task("c", TaskSpec::new("work"), [a]);
    RunPlan::new("wf", "scope").phase(phase)
}

/// Each task's status in the run's stored queue, after `take_over` when asked.
async fn statuses(
    store: &MemoryFactory,
    run_id: &RunId,
    retry_failed: Option<bool>,
) -> BTreeMap<TaskId, Status> {
    let mut queue = store
        .peek(run_id)
        .await
        .unwrap()
        .expect("the run exists")
        .queue(&QueueConfig::default())
        .unwrap();
    if let Some(retry_failed) = retry_failed {
        take_over(&mut queue, retry_failed, Timestamp(u64::MAX / 2));
    }
    queue.tasks().map(|t| (t.id, t.status)).collect()
}

fn pending(preview: &BTreeMap<TaskId, Status>) -> Vec<TaskId> {
    preview
        .iter()
        .filter(|(_, status)| **status == Status::Pending)
        .map(|(id, _)| *id)
        .collect()
}

/// Drives `start` with bodies that complete, returning the report and the tasks that ran.
async fn drive(store: &MemoryFactory, start: Start) -> (cairn_executor::RunReport, Vec<TaskId>) {
    let ledger = Ledger::default();
    let registry = Registry::new().with("work", recording(&ledger));
    let executor = Executor::new(Arc::new(store.clone()), registry, ExecutorConfig::default())
        .expect("valid config");
    let report = executor
        .run(plan(), start, RunSignals::default())
        .await
        .expect("the drive ends");
    let mut ran: Vec<TaskId> = ledger.per_task().into_keys().collect();
    ran.sort();
    (report, ran)
}

#[tokio::test]
async fn the_preview_of_an_adoption_is_what_the_drive_finds() {
    let store = MemoryFactory::new();
    // Both first tasks start and never return; the drive is then dropped mid-flight, as a
    // killed process leaves its run: `running`, with two `running` tasks.
    let started = Ledger::default();
    let hang = {
        let started = started.clone();
        cairn_executor::handler_fn(move |ctx| {
            let started = started.clone();
            async move {
                started.record(&ctx);
                std::future::pending::<()>().await;
                Ok::<_, cairn_executor::TaskFailure>(Finish::Complete(Handoff::default()))
            }
        })
    };
    let executor = Executor::new(
        Arc::new(store.clone()),
        Registry::new().with("work", hang),
        ExecutorConfig::default(),
    )
    .unwrap();
    let killed = tokio::spawn(async move {
        executor
            .run(plan(), Start::Fresh, RunSignals::default())
            .await
    });
    while started.total() < 2 {
        tokio::task::yield_now().await;
    }
    killed.abort();
    assert!(killed.await.unwrap_err().is_cancelled());
    let run_id = store
        .list(&RunFilter::default())
        .await
        .unwrap()
        .pop()
        .expect("the run")
        .run_id;
    let before = statuses(&store, &run_id, None).await;
    assert_eq!(
        before.values().filter(|s| **s == Status::Running).count(),
        2,
        "{before:?}"
    );

    // An interrupted run continues: a, on its last attempt, fails (and blocks c); b runs.
    let preview = statuses(&store, &run_id, Some(false)).await;
    let (a, b, c) = (TaskId(0), TaskId(1), TaskId(2));
    assert_eq!(preview[&a], Status::Failed);
    assert_eq!(preview[&b], Status::Pending);
    assert_eq!(preview[&c], Status::Blocked);
    let (report, ran) = drive(&store, Start::Auto).await;
    assert!(report.resumed);
    assert_eq!(
        ran,
        pending(&preview),
        "the drive ran what the preview had pending"
    );
    assert!(matches!(report.disposition, Disposition::Fail(_)));
    let after = statuses(&store, &run_id, None).await;
    assert_eq!((after[&a], after[&c]), (Status::Failed, Status::Blocked));

    // An explicit resume of the failed run retries a, which unblocks c.
    let preview = statuses(&store, &run_id, Some(true)).await;
    assert_eq!(pending(&preview), vec![a, c], "{preview:?}");
    let meta = store.load_meta(&run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Failed);
    store
        .claim(&run_id, RunStatus::Failed, meta.lease_epoch)
        .await
        .unwrap()
        .expect("claimed");
    let (report, ran) = drive(&store, common::adopt_start(&store, run_id.clone()).await).await;
    assert_eq!(
        ran,
        pending(&preview),
        "the resume ran what the preview had pending"
    );
    assert_eq!(report.disposition, Disposition::Complete);
}
