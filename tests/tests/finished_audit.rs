//! A run's `Finished` audit record on the real adapters (file and sled): it follows a status
//! write that succeeded, so the log never claims an end the store did not record. A
//! `complete` that fails leaves the run `running` with no such record, and the next
//! `Start::Auto` adopts it and finishes it, writing the one `Finished` record then.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
use cairn_checkpoint::{AuditAction, AuditRecord, CheckpointerFactory, RunId, RunStatus};
use cairn_checkpoint_file::FileFactory;
use cairn_checkpoint_sled::SledFactory;
use cairn_executor::{
    Disposition, Error, Executor, ExecutorConfig, Finish, Phase, Registry, RunPlan, RunSignals,
    Start, TaskFailure, handler_fn,
};
use cairn_queue::{Handoff, TaskSpec};

/// An executor on `store` whose `work` bodies count themselves in `bodies`, and a plan of
/// two `work` tasks in a row.
fn two_tasks(
    store: Arc<dyn CheckpointerFactory>,
    bodies: &Arc<AtomicUsize>,
) -> (Executor, RunPlan) {
    let bodies = Arc::clone(bodies);
    let registry = Registry::new().with(
        "work",
        handler_fn(move |_ctx| {
            bodies.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, TaskFailure>(Finish::Complete(Handoff::default())) }
        }),
    );
    let executor = Executor::new(store, registry, ExecutorConfig::default()).unwrap();
    let mut phase = Phase::new("main");
    let first = phase.task(TaskSpec::new("work"), []);
    phase.task(TaskSpec::new("work"), [first]);
    (executor, RunPlan::new("etl", "nightly").phase(phase))
}

/// The run's `Finished` records.
async fn finished(store: &dyn CheckpointerFactory, run_id: &RunId) -> Vec<AuditRecord> {
    store
        .read_audit(run_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|record| record.action == AuditAction::Finished)
        .collect()
}

/// The flow on one adapter; `name` says which in failure messages.
async fn a_failed_complete_is_not_audited_and_the_next_start_finishes_it(
    name: &str,
    store: Arc<dyn CheckpointerFactory>,
) {
    let bodies = Arc::new(AtomicUsize::new(0));
    let faults = FaultPlan::new();
    faults.fail_next(FaultOp::Complete, FaultTiming::Before);
    let faulty: Arc<dyn CheckpointerFactory> =
        Arc::new(FaultyFactory::new(Arc::clone(&store), faults.clone()));
    let (executor, plan) = two_tasks(faulty, &bodies);
    let err = executor
        .run(plan.clone(), Start::Fresh, RunSignals::default())
        .await
        .expect_err("the status write fails");
    let Error::Finalize { report, .. } = err else {
        panic!("{name}: expected Finalize, got {err:?}");
    };
    assert_eq!(report.disposition, Disposition::Complete, "{name}");
    assert_eq!(faults.fired().len(), 1, "{name}: {:?}", faults.fired());
    let run_id = report.run_id.clone();
    let meta = store.load_meta(&run_id).await.unwrap().unwrap();
    assert_eq!(
        meta.status,
        RunStatus::Running,
        "{name}: the end was not recorded"
    );
    assert!(
        finished(&*store, &run_id).await.is_empty(),
        "{name}: no Finished record claims the end the store did not record"
    );

    // The store is well again: the next start adopts the run, runs nothing again (both
    // tasks' completions were acknowledged) and records its end, then audits it once.
    let (executor, plan) = two_tasks(Arc::clone(&store), &bodies);
    let report = executor
        .run(plan, Start::Auto, RunSignals::default())
        .await
        .unwrap();
    assert_eq!(report.run_id, run_id, "{name}");
    assert!(report.resumed, "{name}");
    assert_eq!(report.disposition, Disposition::Complete, "{name}");
    assert_eq!(
        bodies.load(Ordering::SeqCst),
        2,
        "{name}: no body ran twice"
    );
    let meta = store.load_meta(&run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Completed, "{name}");
    let records = finished(&*store, &run_id).await;
    assert_eq!(records.len(), 1, "{name}: {records:?}");
    assert_eq!(records[0].detail["resumed"], true, "{name}: {records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_file_adapter() {
    let root = tempfile::tempdir().unwrap();
    let store: Arc<dyn CheckpointerFactory> =
        Arc::new(FileFactory::builder(root.path()).build().unwrap());
    a_failed_complete_is_not_audited_and_the_next_start_finishes_it("file", store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_sled_adapter() {
    let root = tempfile::tempdir().unwrap();
    let store: Arc<dyn CheckpointerFactory> =
        Arc::new(SledFactory::open(root.path().join("runs.sled")).unwrap());
    a_failed_complete_is_not_audited_and_the_next_start_finishes_it("sled", store).await;
}
