//! `ExecutorRunner` drives real executor runs: a completed run is a success, a failed run is
//! one error for the breaker, and a plan that reuses a stored run id is refused rather than
//! run under it. Needs the `executor` feature.

#![cfg(feature = "executor")]

use std::sync::Arc;
use std::time::Duration;

use cairn_checkpoint::{
    CheckpointerFactory, JobId, MemoryFactory, MemoryJobStore, RunFilter, RunStatus,
};
use cairn_executor::{ExecutorConfig, Finish, Phase, Registry, RunPlan, TaskFailure, handler_fn};
use cairn_queue::{Handoff, TaskSpec, Timestamp};
use cairn_scheduler::{
    ExecutorRunner, JobRunner, JobStatus, ManualClock, NewJob, PlanSource, RunRequest, Schedule,
    Scheduler,
};

/// One phase with one task whose kind is the job's workflow name.
#[derive(Debug)]
struct OneTaskPlans;

impl PlanSource for OneTaskPlans {
    fn plan(&self, request: &RunRequest) -> Result<RunPlan, String> {
        if request.workflow == "missing" {
            return Err("workflow file `missing` not found".to_owned());
        }
        let mut phase = Phase::new("only");
        phase.task(TaskSpec::new(request.workflow.clone()).max_attempts(1), []);
        Ok(
            RunPlan::new(request.workflow.clone(), request.job_id.as_str())
                .input(request.input.clone())
                .phase(phase),
        )
    }
}

/// A runner over `runs` with `registry`'s handlers, default config and [`OneTaskPlans`].
fn one_task_runner(runs: &MemoryFactory, registry: Registry) -> ExecutorRunner {
    ExecutorRunner::new(
        Arc::new(runs.clone()),
        registry,
        ExecutorConfig::default(),
        Arc::new(OneTaskPlans),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_runs_succeed_and_failed_runs_trip_the_breaker() {
    let runs = MemoryFactory::new();
    let registry = Registry::new()
        .with(
            "ok",
            handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
        )
        .with(
            "boom",
            handler_fn(|_ctx| async { Err(TaskFailure::permanent("boom", "dependency down")) }),
        );
    let runner = one_task_runner(&runs, registry);
    let clock = ManualClock::new(Timestamp(1_767_225_600_000));
    let scheduler = Scheduler::new(
        Arc::new(MemoryJobStore::new()),
        Arc::new(runner),
        Arc::new(clock.clone()),
    );
    let every = || Schedule::every(Duration::from_secs(60)).unwrap();
    for (name, limit) in [("ok", 5), ("boom", 2), ("missing", 1)] {
        scheduler
            .jobs()
            .add(
                NewJob::new(JobId::new(name).unwrap(), name, every(), name)
                    .max_consecutive_errors(limit),
            )
            .await
            .unwrap();
    }
    for _ in 0..2 {
        clock.advance(Duration::from_secs(60));
        scheduler.tick().await.unwrap();
    }
    let show = |name: &str| {
        let scheduler = scheduler.clone();
        let id = JobId::new(name).unwrap();
        async move { scheduler.jobs().show(&id).await.unwrap() }
    };
    let ok = show("ok").await;
    assert_eq!((ok.status, ok.consecutive_errors), (JobStatus::Active, 0));
    let boom = show("boom").await;
    assert_eq!(
        (boom.status, boom.consecutive_errors),
        (JobStatus::Failed, 2)
    );
    assert!(boom.last_error.unwrap().contains("failed"));
    let missing = show("missing").await;
    assert_eq!(missing.status, JobStatus::Failed);
    assert!(missing.last_error.unwrap().contains("not found"));

    // Each tick started a fresh run: two completed for `ok`, two failed for `boom`.
    let stored = runs.list(&RunFilter::default()).await.unwrap();
    let count = |workflow: &str, status: RunStatus| {
        stored
            .iter()
            .filter(|m| m.workflow == workflow && m.status == status)
            .count()
    };
    assert_eq!(count("ok", RunStatus::Completed), 2);
    assert_eq!(count("boom", RunStatus::Failed), 2);
}

/// Always plans the same run id, as a careless `PlanSource` might.
#[derive(Debug)]
struct FixedRunId(cairn_checkpoint::RunId);

impl PlanSource for FixedRunId {
    fn plan(&self, request: &RunRequest) -> Result<RunPlan, String> {
        let mut phase = Phase::new("only");
        phase.task(TaskSpec::new(request.workflow.clone()).max_attempts(1), []);
        Ok(
            RunPlan::new(request.workflow.clone(), request.job_id.as_str())
                .input(request.input.clone())
                .phase(phase)
                .run_id(self.0.clone()),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_is_never_resumed_by_a_later_tick_even_under_the_same_run_id() {
    let runs = MemoryFactory::new();
    let flips = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let registry = Registry::new().with("flaky", {
        let flips = flips.clone();
        handler_fn(move |_ctx| {
            let first = flips.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            async move {
                if first {
                    Err(TaskFailure::permanent("down", "dependency down"))
                } else {
                    Ok(Finish::Complete(Handoff::default()))
                }
            }
        })
    });
    let run_id = cairn_checkpoint::RunId::generate(1_767_225_600_000, 7);
    let runner = ExecutorRunner::new(
        Arc::new(runs.clone()),
        registry,
        ExecutorConfig::default(),
        Arc::new(FixedRunId(run_id.clone())),
    )
    .unwrap();
    let clock = ManualClock::new(Timestamp(1_767_225_600_000));
    let scheduler = Scheduler::new(
        Arc::new(MemoryJobStore::new()),
        Arc::new(runner),
        Arc::new(clock.clone()),
    );
    let id = JobId::new("flaky").unwrap();
    scheduler
        .jobs()
        .add(NewJob::new(
            id.clone(),
            "flaky",
            Schedule::every(Duration::from_secs(60)).unwrap(),
            "flaky",
        ))
        .await
        .unwrap();
    for _ in 0..2 {
        clock.advance(Duration::from_secs(60));
        let report = scheduler.tick().await.unwrap();
        assert!(report.runs[0].outcome.is_err(), "{report:?}");
    }
    // The second tick must not run under the taken id. It used to: the executor, not required
    // to be durable, drove the workflow without a journal after `begin` failed with
    // `AlreadyExists`, and the tick reported the failed run as completed.
    let meta = runs.load_meta(&run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Failed);
    assert_eq!(flips.load(std::sync::atomic::Ordering::SeqCst), 1);
    let job = scheduler.jobs().show(&id).await.unwrap();
    assert_eq!(job.consecutive_errors, 2);
    let last_error = job.last_error.unwrap();
    assert!(last_error.contains(run_id.as_str()), "{last_error}");
    assert!(last_error.contains("already exists"), "{last_error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_short_by_shutdown_is_not_counted_and_no_run_starts_once_shutting_down() {
    let runs = MemoryFactory::new();
    let signals = cairn_executor::RunSignals::default();
    let registry = Registry::new().with("slow", {
        let shutdown = signals.shutdown.clone();
        handler_fn(move |_ctx| {
            let shutdown = shutdown.clone();
            async move {
                // The host asks for a stop while the task is going.
                shutdown.cancel();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(Finish::Complete(Handoff::default()))
            }
        })
    });
    let runner = ExecutorRunner::new(
        Arc::new(runs.clone()),
        registry,
        ExecutorConfig::default().with_shutdown_grace(Duration::from_millis(10)),
        Arc::new(OneTaskPlans),
    )
    .unwrap()
    .with_signals(signals);
    let clock = ManualClock::new(Timestamp(1_767_225_600_000));
    let scheduler = Scheduler::new(
        Arc::new(MemoryJobStore::new()),
        Arc::new(runner),
        Arc::new(clock.clone()),
    );
    let id = JobId::new("slow").unwrap();
    scheduler
        .jobs()
        .add(
            NewJob::new(
                id.clone(),
                "slow",
                Schedule::every(Duration::from_secs(60)).unwrap(),
                "slow",
            )
            .max_consecutive_errors(1),
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    let report = scheduler.tick().await.unwrap();
    let cut = report.runs[0].outcome.as_ref().unwrap_err();
    assert!(cut.interrupted, "{cut:?}");
    let cut_run = cairn_checkpoint::RunId::new(cut.run_id.clone().unwrap()).unwrap();
    let job = scheduler.jobs().show(&id).await.unwrap();
    assert_eq!((job.status, job.consecutive_errors), (JobStatus::Active, 0));

    // The shutdown token stays cancelled: the next tick starts no run at all. It used to
    // begin a fresh run that was left `running` at once, one more interrupted run per tick.
    // The runner says it is stopping, so the tick is not even claimed: it is kept for the
    // next scheduler. The cut run is left as it was, for an explicit resume by id, never
    // adopted.
    clock.advance(Duration::from_secs(60));
    let due = scheduler.jobs().show(&id).await.unwrap().next_run_at;
    let report = scheduler.tick().await.unwrap();
    assert!(report.runs.is_empty(), "{report:?}");
    assert_eq!(scheduler.jobs().show(&id).await.unwrap().next_run_at, due);
    let stored = runs.list(&RunFilter::default()).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        runs.load_meta(&cut_run).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    let job = scheduler.jobs().show(&id).await.unwrap();
    assert_eq!((job.status, job.consecutive_errors), (JobStatus::Active, 0));
}

/// Plans like [`OneTaskPlans`], but the host's stop arrives while the plan is made: after the
/// runner's first look at the shutdown token and before the run is begun.
#[derive(Debug)]
struct StopWhilePlanning(cairn_executor::RunSignals);

impl PlanSource for StopWhilePlanning {
    fn plan(&self, request: &RunRequest) -> Result<RunPlan, String> {
        self.0.shutdown.cancel();
        OneTaskPlans.plan(request)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_that_comes_while_a_run_is_prepared_begins_no_run() {
    let runs = MemoryFactory::new();
    let signals = cairn_executor::RunSignals::default();
    let registry = Registry::new().with(
        "quick",
        handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
    );
    let runner = ExecutorRunner::new(
        Arc::new(runs.clone()),
        registry,
        ExecutorConfig::default(),
        Arc::new(StopWhilePlanning(signals.clone())),
    )
    .unwrap()
    .with_signals(signals);
    let (begun, runner) = counting_begun(runner);
    let refused = runner.run(&request("quick")).await.unwrap_err();
    assert!(refused.interrupted, "{refused:?}");
    assert_eq!(refused.run_id, None, "{refused:?}");
    assert!(
        refused.message.contains("no run was started"),
        "{refused:?}"
    );
    // Before, the run was begun and left `running` at once, with nothing done.
    let stored = runs.list(&RunFilter::default()).await.unwrap();
    assert!(stored.is_empty(), "{stored:?}");
    assert!(begun.lock().unwrap().is_empty());
}

/// The stop comes while `begin` writes the run, so the run exists but no task has started:
/// it is abandoned (audited), not left `running` for a person to clean up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_begun_as_the_host_stops_is_abandoned_with_no_task_started() {
    let runs = MemoryFactory::new();
    let signals = cairn_executor::RunSignals::default();
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let registry = Registry::new().with("quick", {
        let ran = Arc::clone(&ran);
        handler_fn(move |_ctx| {
            ran.store(true, std::sync::atomic::Ordering::SeqCst);
            async { Ok(Finish::Complete(Handoff::default())) }
        })
    });
    let runner = one_task_runner(&runs, registry)
        .with_signals(signals.clone())
        .on_begun({
            let signals = signals.clone();
            move |_run| signals.shutdown.cancel()
        });
    let cut = runner.run(&request("quick")).await.unwrap_err();
    assert!(cut.interrupted, "{cut:?}");
    assert!(cut.message.contains("it was abandoned"), "{cut:?}");
    let run = cairn_checkpoint::RunId::new(cut.run_id.clone().unwrap()).unwrap();
    let meta = runs.load_meta(&run).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Cancelled);
    let audit = runs.read_audit(&run).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.action == cairn_checkpoint::AuditAction::Abandoned),
        "{audit:?}"
    );
    assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
}

/// Another process still drives a run of the job (a second scheduler on the same store, whose
/// one-shot run outlived the retry time): no second run starts, the refusal is "interrupted"
/// (not one error for the breaker) and names the live run. Once that driver is gone, the
/// next request runs. Before, the second run started beside the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_second_run_starts_while_another_process_drives_the_job() {
    let runs = MemoryFactory::new();
    let registry = Registry::new().with(
        "ok",
        handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
    );
    let runner = one_task_runner(&runs, registry);
    let live_id = cairn_checkpoint::RunId::new("live").unwrap();
    let live = runs
        .begin(cairn_checkpoint::RunMeta::new(
            live_id.clone(),
            "ok",
            "nightly",
            "",
            Timestamp(1),
        ))
        .await
        .unwrap();
    let request = RunRequest::new(
        JobId::new("nightly").unwrap(),
        "ok",
        "",
        Timestamp(2),
        Timestamp(2),
    );
    let refused = cairn_scheduler::JobRunner::run(&runner, &request)
        .await
        .expect_err("a live run of the job blocks a second one");
    assert!(refused.interrupted, "{refused:?}");
    assert_eq!(refused.run_id.as_deref(), Some("live"));
    assert!(
        refused.message.contains("still being driven"),
        "{}",
        refused.message
    );
    let all = runs.list(&RunFilter::default()).await.unwrap();
    assert_eq!(all.len(), 1, "nothing was begun: {all:?}");

    drop(live);
    let ran = cairn_scheduler::JobRunner::run(&runner, &request)
        .await
        .expect("the driver is gone, so the job runs");
    assert_ne!(ran.run_id.as_deref(), Some("live"));
}

/// A runner whose run store is wrapped in a `FaultyFactory`, for the store-failure cases.
fn faulty_runner(plan: &cairn_checkpoint::fault::FaultPlan) -> (MemoryFactory, ExecutorRunner) {
    let runs = MemoryFactory::new();
    let faulty = cairn_checkpoint::fault::FaultyFactory::new(runs.clone(), plan.clone());
    let registry = Registry::new().with(
        "ok",
        handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
    );
    let runner = ExecutorRunner::new(
        Arc::new(faulty),
        registry,
        ExecutorConfig::default().with_require_durability(true),
        Arc::new(OneTaskPlans),
    )
    .unwrap();
    (runs, runner)
}

/// `runner` with an `on_begun` hook that records the ids it is called with.
fn counting_begun(runner: ExecutorRunner) -> (Arc<std::sync::Mutex<Vec<String>>>, ExecutorRunner) {
    let begun = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&begun);
    let runner = runner.on_begun(move |run_id| seen.lock().unwrap().push(run_id.to_string()));
    (begun, runner)
}

fn request(workflow: &str) -> RunRequest {
    RunRequest::new(
        JobId::new("nightly").unwrap(),
        workflow,
        "",
        Timestamp(1_767_225_600_000),
        Timestamp(1_767_225_600_000),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_journal_write_is_a_store_failure_not_a_task_failure() {
    use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming};
    let plan = FaultPlan::new();
    plan.fail_next(FaultOp::Append, FaultTiming::Before);
    let (runs, runner) = faulty_runner(&plan);
    let (begun, runner) = counting_begun(runner);
    let failed = runner.run(&request("ok")).await.unwrap_err();
    assert!(!plan.fired().is_empty(), "the append fault fired");
    assert!(failed.store_failed && !failed.interrupted, "{failed:?}");
    let run_id = failed.run_id.clone().expect("the run is named");
    assert_eq!(
        *begun.lock().unwrap(),
        vec![run_id.clone()],
        "the begun run is announced once, by its id"
    );
    assert!(
        failed
            .message
            .contains("its state store failed, not a task"),
        "{}",
        failed.message
    );
    let stored = runs
        .load_meta(&cairn_checkpoint::RunId::new(run_id).unwrap())
        .await
        .unwrap()
        .expect("the run was begun");
    // What the message says is stored matches the store.
    let says_failed = failed.message.contains("recorded as failed");
    assert_eq!(
        stored.status == RunStatus::Failed,
        says_failed,
        "{stored:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_end_cannot_be_recorded_is_a_store_failure() {
    use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming};
    let plan = FaultPlan::new();
    plan.fail_next(FaultOp::Complete, FaultTiming::Before);
    let (runs, runner) = faulty_runner(&plan);
    let failed = runner.run(&request("ok")).await.unwrap_err();
    assert!(failed.store_failed && !failed.interrupted, "{failed:?}");
    assert!(
        failed.message.contains("failed to record its end"),
        "{}",
        failed.message
    );
    let run_id = cairn_checkpoint::RunId::new(failed.run_id.unwrap()).unwrap();
    let stored = runs.load_meta(&run_id).await.unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_the_store_could_not_begin_names_no_run() {
    use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming};
    let plan = FaultPlan::new();
    plan.fail_next(FaultOp::Begin, FaultTiming::Before);
    let (runs, runner) = faulty_runner(&plan);
    let (begun, runner) = counting_begun(runner);
    let failed = runner.run(&request("ok")).await.unwrap_err();
    assert!(!plan.fired().is_empty(), "the begin fault fired");
    assert_eq!(failed.run_id, None, "{failed:?}");
    assert!(
        begun.lock().unwrap().is_empty(),
        "a run that never began is never announced"
    );
    assert!(!failed.interrupted && !failed.store_failed, "{failed:?}");
    assert!(
        failed
            .message
            .contains("was not begun: its state store failed")
            && failed.message.contains("nothing is left to resume"),
        "{}",
        failed.message
    );
    // Nothing was stored: the message's "not begun" is true.
    let stored = runs.list(&RunFilter::default()).await.unwrap();
    assert!(stored.is_empty(), "{stored:?}");
}

/// A one-shot job whose run completed but whose outcome never reached the job store: an
/// `ExecutorRunner` that finds earlier runs is handed it at the retry time, and reports the
/// earlier run as the job's success without running the workflow again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecorded_completed_one_shot_run_is_found_and_not_run_again() {
    use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyJobStore};
    let runs = MemoryFactory::new();
    let registry = Registry::new().with(
        "ok",
        handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
    );
    let runner = one_task_runner(&runs, registry).finding_earlier_runs();
    let faults = FaultPlan::new();
    let store = FaultyJobStore::new(MemoryJobStore::new(), faults.clone());
    let clock = ManualClock::new(Timestamp(1_000));
    let scheduler = Scheduler::new(Arc::new(store), Arc::new(runner), Arc::new(clock.clone()));
    let id = JobId::new("release").unwrap();
    scheduler
        .jobs()
        .add(NewJob::new(
            id.clone(),
            "release",
            Schedule::once(Timestamp(2_000)),
            "ok",
        ))
        .await
        .unwrap();
    clock.set(Timestamp(2_000));
    // The claim lands; the write recording the run's outcome does not.
    faults.fail_nth(
        FaultOp::JobPut,
        faults.calls(FaultOp::JobPut) + 2,
        FaultTiming::Before,
    );
    let err = scheduler.tick().await.unwrap_err();
    let all = RunFilter::default();
    assert_eq!(runs.list(&all).await.unwrap().len(), 1, "{err:?}");
    let job = scheduler.jobs().show(&id).await.unwrap();
    assert!(job.claimed_run.is_some());
    clock.set(job.next_run_at.expect("a retry time"));
    let report = scheduler.tick().await.unwrap();
    assert!(
        report.unrecorded.is_empty(),
        "handed to the runner, not held"
    );
    let job = scheduler.jobs().show(&id).await.unwrap();
    assert_eq!((job.status, job.claimed_run), (JobStatus::Completed, None));
    assert_eq!(
        runs.list(&all).await.unwrap().len(),
        1,
        "the workflow did not run a second time"
    );
}

/// Before a one-shot job's run, an `ExecutorRunner` that finds earlier runs starts nothing
/// beside the job's failed run (not counted), and ignores runs from before the job was created
/// (an earlier job of the same id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_earlier_one_shot_run_holds_the_job_and_older_runs_do_not_count() {
    use cairn_checkpoint::{RunId, RunMeta};
    let runs = MemoryFactory::new();
    let registry = Registry::new().with(
        "ok",
        handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
    );
    let runner = one_task_runner(&runs, registry).finding_earlier_runs();
    let store = |id: &str, created: u64, status: RunStatus| {
        let runs = runs.clone();
        let id = RunId::new(id).unwrap();
        async move {
            let meta = RunMeta::new(id.clone(), "ok", "nightly", "", Timestamp(created));
            drop(runs.begin(meta).await.unwrap());
            if status != RunStatus::Running {
                runs.compare_and_swap_status(&id, RunStatus::Running, status)
                    .await
                    .unwrap()
                    .unwrap();
            }
        }
    };
    // A completed run of an earlier job with the same id, then this job's failed run.
    store("r-old", 10, RunStatus::Completed).await;
    store("r-failed", 30, RunStatus::Failed).await;
    let request = request("ok").for_job(Timestamp(20), true);
    let held = JobRunner::run(&runner, &request)
        .await
        .expect_err("held for a person");
    assert!(held.interrupted, "not counted: {held:?}");
    assert_eq!(held.run_id.as_deref(), Some("r-failed"));
    assert_eq!(runs.list(&RunFilter::default()).await.unwrap().len(), 2);
    // A repeating job's runs are not looked at: it runs afresh.
    let repeating = request.clone().for_job(Timestamp(20), false);
    JobRunner::run(&runner, &repeating).await.expect("runs");
    assert_eq!(runs.list(&RunFilter::default()).await.unwrap().len(), 3);
}
