//! A run a newer cairn build wrote, met by this build after a rollback: `Start::Auto` stops
//! with the adapter's `NewerFormat` and begins nothing, and the run stays where it was
//! (review 52 F4: a build used to call such state corruption, quarantine it, and run every
//! acknowledged task again in a fresh run).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cairn_checkpoint::{CheckpointerFactory, RunFilter, RunId};
use cairn_checkpoint_file::FileFactory;
use cairn_executor::{
    Disposition, Executor, ExecutorConfig, Finish, Phase, Registry, RunPlan, RunReport, RunSignals,
    Start, TaskFailure, handler_fn,
};
use cairn_queue::{Handoff, TaskSpec};

/// A plan of four `work` tasks in a row.
fn plan() -> RunPlan {
    let mut phase = Phase::new("main");
    let mut previous = None;
    for i in 0..4_i64 {
        previous = Some(phase.task(TaskSpec::new("work").inputs(i.into()), previous));
    }
    RunPlan::new("etl", "nightly").phase(phase)
}

/// Counts bodies; the first body asks for a shutdown, which leaves the run running.
fn registry(bodies: &Arc<AtomicUsize>, signals: &RunSignals) -> Registry {
    let bodies = Arc::clone(bodies);
    let shutdown = signals.shutdown.clone();
    Registry::new().with(
        "work",
        handler_fn(move |_ctx| {
            let ran = bodies.fetch_add(1, Ordering::SeqCst);
            if ran == 0 {
                shutdown.cancel();
            }
            async move { Ok::<_, TaskFailure>(Finish::Complete(Handoff::default())) }
        }),
    )
}

/// Runs `plan()` over `factory` with `Start::Auto`, counting bodies in `bodies`.
async fn run_auto(
    factory: &Arc<FileFactory>,
    bodies: &Arc<AtomicUsize>,
) -> cairn_executor::Result<RunReport> {
    let signals = RunSignals::default();
    let executor = Executor::new(
        factory.clone(),
        registry(bodies, &signals),
        ExecutorConfig::default(),
    )
    .unwrap();
    executor.run(plan(), Start::Auto, signals).await
}

/// An interrupted run, stopped after its first task: its id and the bodies run so far.
async fn interrupted_run(factory: &Arc<FileFactory>, bodies: &Arc<AtomicUsize>) -> (RunId, usize) {
    let report = run_auto(factory, bodies).await.unwrap();
    assert_eq!(report.disposition, Disposition::LeaveRunning);
    let run_id = report.run_id;
    let ran_before = bodies.load(Ordering::SeqCst);
    (run_id, ran_before)
}

/// Asserts that `Start::Auto` refuses `run_id` as a newer build's, running no body and
/// beginning no fresh run.
async fn refused_as_newer(
    factory: &Arc<FileFactory>,
    bodies: &Arc<AtomicUsize>,
    run_id: &RunId,
    ran_before: usize,
) {
    let err = run_auto(factory, bodies)
        .await
        .expect_err("a newer build's run is not this build's to drive");
    // The executor's error (a claim or an open of that run) carries the adapter's
    // `NewerFormat` for that run as its source, where a host (the CLI) looks for it.
    assert!(
        matches!(
            &err,
            cairn_executor::Error::Claim { run_id: at, .. }
                | cairn_executor::Error::Open { run_id: at, .. } if at == run_id
        ),
        "{err:?}"
    );
    let chain = std::iter::successors(Some(&err as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    });
    let newer = chain
        .filter_map(|e| e.downcast_ref::<cairn_checkpoint::Error>())
        .any(|e| matches!(e, cairn_checkpoint::Error::NewerFormat { run_id: at, .. } if at == run_id));
    assert!(newer, "no NewerFormat for {run_id} in the chain: {err:?}");
    assert_eq!(bodies.load(Ordering::SeqCst), ran_before, "no body ran");
    let runs = factory.list(&RunFilter::default()).await.unwrap();
    assert_eq!(runs.len(), 1, "no fresh run began: {runs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_auto_stops_at_a_run_a_newer_build_wrote_and_begins_nothing() {
    let root = tempfile::tempdir().unwrap();
    let factory: Arc<FileFactory> = Arc::new(FileFactory::builder(root.path()).build().unwrap());
    let bodies = Arc::new(AtomicUsize::new(0));

    // An interrupted run, stopped after its first task.
    let (run_id, ran_before) = interrupted_run(&factory, &bodies).await;

    // A newer build took it over and left a snapshot of a format this build does not read.
    let dir = root.path().join("runs").join(run_id.as_str());
    let queue = serde_json::json!({
        "format_version": 999, "run_id": run_id.as_str(), "covers_seq": 0, "snapshot": {},
    });
    std::fs::write(dir.join("queue.json"), queue.to_string()).unwrap();

    for _ in 0..2 {
        refused_as_newer(&factory, &bodies, &run_id, ran_before).await;
        assert!(
            dir.join("queue.json").exists(),
            "the run stays where it was"
        );
        assert!(factory.list_quarantined().await.unwrap().is_empty());
    }
}

/// The same for a run whose metadata (`meta.json`) a newer build wrote: the lookup lists it
/// (so that it is met), and `Start::Auto` must neither quarantine it as unfit nor begin a
/// fresh run that would redo its acknowledged tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_auto_stops_at_a_run_whose_metadata_a_newer_build_wrote() {
    let root = tempfile::tempdir().unwrap();
    let factory: Arc<FileFactory> = Arc::new(FileFactory::builder(root.path()).build().unwrap());
    let bodies = Arc::new(AtomicUsize::new(0));

    let (run_id, ran_before) = interrupted_run(&factory, &bodies).await;

    let meta_path = root
        .path()
        .join("runs")
        .join(run_id.as_str())
        .join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["format_version"] = serde_json::json!(999);
    let planted = serde_json::to_vec(&meta).unwrap();
    std::fs::write(&meta_path, &planted).unwrap();

    for _ in 0..2 {
        refused_as_newer(&factory, &bodies, &run_id, ran_before).await;
        assert_eq!(
            std::fs::read(&meta_path).unwrap(),
            planted,
            "the run stays where it was, as it was"
        );
        assert!(factory.list_quarantined().await.unwrap().is_empty());
    }
}
