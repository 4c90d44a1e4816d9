//! Driving runs: happy path, retries, failures and blocking, follow-ups, panics, build errors,
//! timeouts, begin failures and executor panics.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
use cairn_checkpoint::{AuditAction, CheckpointerFactory, MemoryFactory, RunStatus};
use cairn_executor::{
    Disposition, Error, Executor, ExecutorConfig, Finish, Phase, PlanProblem, Registry,
    RetryPolicy, RunPlan, RunReport, RunSignals, RunStop, Start, TaskFailure, handler_fn,
};
use cairn_queue::{Event, Handoff, Status, TaskSpec};
use common::{
    Counter, Damage, Doctor, Ledger, LogBuffer, completions, recording, stored, stored_queue,
};

fn executor(factory: &MemoryFactory, registry: Registry, config: ExecutorConfig) -> Executor {
    Executor::new(Arc::new(factory.clone()), registry, config).unwrap()
}

/// Runs `phase` as a fresh one-phase run with the default config; the run must not error.
async fn run_phase(factory: &MemoryFactory, registry: Registry, phase: Phase) -> RunReport {
    executor(factory, registry, ExecutorConfig::default())
        .run(
            RunPlan::new("wf", "s").phase(phase),
            Start::Fresh,
            RunSignals::default(),
        )
        .await
        .unwrap()
}

fn fail_kind(disposition: &Disposition) -> Option<&str> {
    match disposition {
        Disposition::Fail(error) => Some(error.kind.as_str()),
        _ => None,
    }
}

#[tokio::test]
async fn happy_path_runs_every_task_once_and_completes_the_run() {
    let factory = MemoryFactory::new();
    let ledger = Ledger::default();
    // The sink checks that it receives both dependencies' handoffs.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen_in = Arc::clone(&seen);
    let registry = Registry::new().with("work", recording(&ledger)).with(
        "sink",
        handler_fn(move |ctx| {
            let seen = Arc::clone(&seen_in);
            async move {
                *seen.lock().unwrap() = ctx.dependencies().to_vec();
                Ok(Finish::Complete(Handoff::default()))
            }
        }),
    );
    let mut phase = Phase::new("all");
    let a = phase.task(TaskSpec::new("work").inputs(1.into()), []);
    let b = phase.task(TaskSpec::new("work").inputs(2.into()), [a]);
    let c = phase.task(TaskSpec::new("work").inputs(3.into()), [a]);
    phase.task(TaskSpec::new("sink"), [b, c]);
    let plan = RunPlan::new("wf", "scope").phase(phase);

    let report = executor(
        &factory,
        registry,
        ExecutorConfig::default().with_concurrency(4),
    )
    .run(plan, Start::Fresh, RunSignals::default())
    .await
    .unwrap();

    assert_eq!(report.disposition, Disposition::Complete);
    assert!(report.durable && !report.resumed);
    assert_eq!(report.counts.done, 4);
    assert_eq!(ledger.count("work"), 3);
    let deps = seen.lock().unwrap().clone();
    assert_eq!(deps.len(), 2, "the sink sees both dependencies' handoffs");
    assert_eq!(deps[0].1.done, vec![format!("{} done", deps[0].0)]);

    let meta = factory.load_meta(&report.run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Completed);
    let audit = factory.read_audit(&report.run_id).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.action == cairn_checkpoint::AuditAction::Finished)
    );
    let events = stored(&factory, &report.run_id).await.events;
    let done = completions(&events);
    assert_eq!(done.len(), 4);
    assert!(done.values().all(|&n| n == 1));
    // Every Completed record comes after its task's Started record.
    for (id, _) in done {
        let started = events
            .iter()
            .position(|e| matches!(e, Event::Started { id: s, .. } if *s == id));
        let completed = events
            .iter()
            .position(|e| matches!(e, Event::Completed { id: c, .. } if *c == id));
        assert!(started.unwrap() < completed.unwrap());
    }
}

#[tokio::test(start_paused = true)]
async fn a_retryable_failure_is_retried_then_succeeds() {
    let factory = MemoryFactory::new();
    let calls = Counter::default();
    let registry = Registry::new().with(
        "flaky",
        handler_fn(move |ctx| {
            let calls = calls.clone();
            async move {
                calls.bump();
                if ctx.attempt() == 1 {
                    Err(TaskFailure::retryable("network", "connection reset"))
                } else {
                    Ok(Finish::Complete(Handoff::default()))
                }
            }
        }),
    );
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("flaky").max_attempts(3), []);
    let report = run_phase(&factory, registry, phase).await;

    assert_eq!(report.disposition, Disposition::Complete);
    let queue = stored_queue(&factory, &report.run_id).await;
    let task = queue.tasks().next().unwrap();
    assert_eq!(task.status, Status::Done);
    assert_eq!(task.attempts, 2);
    let events = stored(&factory, &report.run_id).await.events;
    let retried = events.iter().any(|e| {
        matches!(e, Event::Failed { attempt: 1, retry_at: Some(_), error, .. } if error.kind == "network")
    });
    assert!(
        retried,
        "the first attempt is recorded as a retried failure"
    );
}

#[tokio::test]
async fn a_permanent_failure_blocks_dependents_while_independent_branches_finish() {
    let factory = MemoryFactory::new();
    let ledger = Ledger::default();
    let registry = Registry::new().with("ok", recording(&ledger)).with(
        "broken",
        handler_fn(|_ctx| async { Err(TaskFailure::permanent("bad_input", "no such file")) }),
    );
    let mut phase = Phase::new("p");
    let broken = phase.named_task("read config", TaskSpec::new("broken"), []);
    let after_broken = phase.task(TaskSpec::new("ok").inputs("after broken".into()), [broken]);
    let left = phase.task(TaskSpec::new("ok").inputs("left".into()), []);
    let after_left = phase.task(TaskSpec::new("ok").inputs("after left".into()), [left]);
    let report = run_phase(&factory, registry, phase).await;

    assert_eq!(fail_kind(&report.disposition), Some("task_failed"));
    let Some(RunStop::TasksFailed { failed, blocked }) = &report.stop else {
        panic!("expected TasksFailed, got {:?}", report.stop);
    };
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].error.as_ref().unwrap().kind, "bad_input");
    assert_eq!(failed[0].name.as_deref(), Some("read config"));
    assert_eq!(blocked.len(), 1);

    let queue = stored_queue(&factory, &report.run_id).await;
    let status = |pos: usize| queue.tasks().nth(pos).unwrap().status;
    assert_eq!(status(broken), Status::Failed);
    assert_eq!(status(after_broken), Status::Blocked);
    assert_eq!(status(left), Status::Done);
    assert_eq!(status(after_left), Status::Done);
    assert_eq!(
        queue.tasks().nth(broken).unwrap().attempts,
        1,
        "permanent: no retry"
    );
    assert_eq!(ledger.count("ok"), 2);
    let meta = factory.load_meta(&report.run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Failed);
    let error = meta.error.unwrap();
    assert_eq!(error.kind, "task_failed");
    let named = "`read config`: ".to_owned();
    assert!(
        error.message.contains(&named),
        "the stored error names the task as the plan does: {}",
        error.message
    );
}

#[tokio::test]
async fn follow_ups_are_enqueued_by_their_parent_and_deduplicated() {
    let factory = MemoryFactory::new();
    let ledger = Ledger::default();
    let existing = Arc::new(std::sync::Mutex::new(Vec::new()));
    let existing_in = Arc::clone(&existing);
    let registry = Registry::new().with("child", recording(&ledger)).with(
        "parent",
        handler_fn(move |ctx| {
            let existing = Arc::clone(&existing_in);
            async move {
                let spec = TaskSpec::new("child").inputs(serde_json::json!({ "n": 1 }));
                let first = ctx.enqueue(spec.clone()).await.unwrap();
                let again = ctx.enqueue(spec).await.unwrap();
                existing.lock().unwrap().push((
                    first.existing,
                    again.existing,
                    first.id == again.id,
                ));
                let unknown = ctx.enqueue(TaskSpec::new("nobody")).await;
                assert!(matches!(
                    unknown,
                    Err(cairn_executor::Error::UnknownKind { .. })
                ));
                Ok(Finish::Complete(Handoff::default()))
            }
        }),
    );
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("parent"), []);
    let report = run_phase(&factory, registry, phase).await;

    assert_eq!(report.disposition, Disposition::Complete);
    assert_eq!(*existing.lock().unwrap(), vec![(false, true, true)]);
    assert_eq!(ledger.count("child"), 1);
    let queue = stored_queue(&factory, &report.run_id).await;
    assert_eq!(queue.len(), 2);
    let parent = queue.tasks().next().unwrap().id;
    let child = queue.tasks().nth(1).unwrap();
    assert_eq!(child.enqueued_by, cairn_queue::EnqueuedBy::Task(parent));
    assert_eq!(child.status, Status::Done);
}

#[tokio::test]
async fn a_handler_panic_fails_its_task_and_the_run_is_finalized_failed() {
    let factory = MemoryFactory::new();
    let ledger = Ledger::default();
    let registry = Registry::new().with("ok", recording(&ledger)).with(
        "explode",
        handler_fn(|_ctx| async {
            if true {
                panic!("kaboom in the handler");
            }
            Ok(Finish::Complete(Handoff::default()))
        }),
    );
    let mut phase = Phase::new("p");
    phase.named_task("detonate", TaskSpec::new("explode").max_attempts(3), []);
    phase.task(TaskSpec::new("ok"), []);
    let report = run_phase(&factory, registry, phase).await;

    assert_eq!(fail_kind(&report.disposition), Some("panic"));
    assert_eq!(ledger.count("ok"), 1, "the independent task still ran");
    let meta = factory.load_meta(&report.run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Failed);
    assert_eq!(meta.error.as_ref().unwrap().kind, "panic");
    let queue = stored_queue(&factory, &report.run_id).await;
    let task = queue.tasks().next().unwrap();
    assert_eq!(task.status, Status::Failed);
    assert_eq!(task.attempts, 1, "a panic is permanent: no retry");
    let error = task.error.as_ref().unwrap();
    assert_eq!(error.kind, "panic");
    assert!(error.message.contains("kaboom in the handler"));
    assert!(
        error.message.contains("task `detonate` panicked"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_handoff_too_deep_to_store_fails_its_task_and_the_run_goes_on() {
    // The journal could not read such a handoff back after a crash, so it is never recorded;
    // only the task that returned it fails.
    let factory = MemoryFactory::new();
    let ledger = Ledger::default();
    let registry = Registry::new().with("ok", recording(&ledger)).with(
        "deep",
        handler_fn(|_ctx| async {
            let mut extra = serde_json::json!(1);
            for _ in 0..=cairn_queue::MAX_VALUE_DEPTH {
                extra = serde_json::json!([extra]);
            }
            Ok::<_, TaskFailure>(Finish::Complete(Handoff {
                extra,
                ..Handoff::default()
            }))
        }),
    );
    let mut phase = Phase::new("p");
    phase.named_task("nested", TaskSpec::new("deep").max_attempts(3), []);
    phase.task(TaskSpec::new("ok"), []);
    let report = run_phase(&factory, registry, phase).await;

    assert_eq!(fail_kind(&report.disposition), Some("task_failed"));
    assert_eq!(ledger.count("ok"), 1, "the other task still ran");
    let queue = stored_queue(&factory, &report.run_id).await;
    let task = queue.tasks().next().unwrap();
    assert_eq!(task.status, Status::Failed);
    assert_eq!(task.attempts, 1, "retrying would return the same value");
    let error = task.error.as_ref().unwrap();
    assert_eq!(error.kind, "invalid_handoff");
    assert!(
        error.message.contains("nests more than 100 levels"),
        "{}",
        error.message
    );
}

/// Review 43 #10: a fresh run's plan is checked against the registry before `begin`, so an
/// unknown kind (here only in the second phase) writes nothing, and the corrected plan can
/// begin under the same fixed run id. (Before, the run was begun and then durably failed
/// with kind `build`, and the fixed id stayed taken.)
#[tokio::test]
async fn an_unknown_kind_in_a_fresh_plan_is_refused_before_anything_is_written() {
    let factory = MemoryFactory::new();
    let ledger = Ledger::default();
    let registry = Registry::new().with("ok", recording(&ledger));
    let run_id = cairn_checkpoint::RunId::new("fixed").unwrap();
    let plan_with = |kind: &str| {
        let mut first = Phase::new("first");
        first.task(TaskSpec::new("ok"), []);
        let mut second = Phase::new("second");
        second.named_task("late", TaskSpec::new(kind), []);
        RunPlan::new("wf", "s")
            .run_id(run_id.clone())
            .phase(first)
            .phase(second)
    };
    let exec = executor(&factory, registry, ExecutorConfig::default());
    let err = exec
        .run(
            plan_with("unregistered"),
            Start::Fresh,
            RunSignals::default(),
        )
        .await
        .unwrap_err();
    let Error::InvalidPlan { problems } = &err else {
        panic!("expected InvalidPlan, got {err:?}");
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    let PlanProblem::UnknownKind { at } = &problems[0] else {
        panic!("{problems:?}");
    };
    assert_eq!((at.phase, at.position), (1, 0));
    assert_eq!(at.kind, "unregistered");
    assert_eq!(at.name.as_deref(), Some("late"));
    assert!(err.to_string().contains("no run was begun"), "{err}");
    assert_eq!(ledger.total(), 0, "nothing runs");
    assert!(
        factory
            .list(&cairn_checkpoint::RunFilter::default())
            .await
            .unwrap()
            .is_empty(),
        "nothing was begun"
    );

    // The corrected plan begins under the same id.
    let report = exec
        .run(plan_with("ok"), Start::Fresh, RunSignals::default())
        .await
        .unwrap();
    assert_eq!(report.run_id, run_id);
    assert_eq!(report.disposition, Disposition::Complete);
    assert_eq!(ledger.total(), 2);
}

/// Every problem of a plan is reported at once, before `begin`, for `Start::Auto` too when
/// there is nothing to adopt: a bad `after` position, ids in `depends_on`, a task allowed
/// 0 attempts, and inputs nested deeper than the queue takes.
#[tokio::test]
async fn every_plan_problem_is_reported_before_begin() {
    let factory = MemoryFactory::new();
    let ledger = Ledger::default();
    let registry = Registry::new().with("ok", recording(&ledger));
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("ok"), [0]);
    phase.task(TaskSpec::new("ok").depends_on([cairn_queue::TaskId(0)]), []);
    phase.task(TaskSpec::new("ok").max_attempts(0), []);
    let mut deep = serde_json::json!(1);
    for _ in 0..=cairn_queue::MAX_VALUE_DEPTH {
        deep = serde_json::json!([deep]);
    }
    phase.task(TaskSpec::new("ok").inputs(deep), []);
    let plan = RunPlan::new("wf", "s").phase(phase);
    let exec = executor(&factory, registry, ExecutorConfig::default());
    for start in [Start::Fresh, Start::Auto] {
        let err = exec
            .run(plan.clone(), start, RunSignals::default())
            .await
            .unwrap_err();
        let Error::InvalidPlan { problems } = &err else {
            panic!("expected InvalidPlan, got {err:?}");
        };
        assert!(
            matches!(
                problems.as_slice(),
                [
                    PlanProblem::BadAfter { after: 0, .. },
                    PlanProblem::DependsOn { .. },
                    PlanProblem::NoAttempts { .. },
                    PlanProblem::InputsTooDeep { .. },
                ]
            ),
            "{problems:?}"
        );
    }
    assert_eq!(ledger.total(), 0);
    assert!(
        factory
            .list(&cairn_checkpoint::RunFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

/// A plan larger than the queue may hold is refused before `begin` too.
#[tokio::test]
async fn a_plan_larger_than_the_queue_is_refused_before_begin() {
    let factory = MemoryFactory::new();
    let registry = Registry::new().with("ok", recording(&Ledger::default()));
    let queue = cairn_queue::QueueConfig {
        max_tasks: 2,
        ..cairn_queue::QueueConfig::default()
    };
    let exec = executor(
        &factory,
        registry,
        ExecutorConfig::default().with_queue(queue),
    );
    let mut phase = Phase::new("p");
    for _ in 0..3 {
        phase.task(TaskSpec::new("ok"), []);
    }
    let err = exec
        .run(
            RunPlan::new("wf", "s").phase(phase),
            Start::Fresh,
            RunSignals::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::InvalidPlan { problems }
                if problems == &[PlanProblem::TooManyTasks { planned: 3, limit: 2 }]
        ),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_overruns_its_kind_timeout_fails_retryably_with_kind_timeout() {
    let factory = MemoryFactory::new();
    let registry = Registry::new()
        .with(
            "slow_once",
            handler_fn(|ctx| async move {
                if ctx.attempt() == 1 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                Ok(Finish::Complete(Handoff::default()))
            }),
        )
        .with(
            "always_slow",
            handler_fn(|_ctx| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(Finish::Complete(Handoff::default()))
            }),
        )
        .with_timeout("slow_once", Duration::from_secs(1))
        .with_timeout("always_slow", Duration::from_secs(1));
    let mut phase = Phase::new("p");
    let once = phase.task(TaskSpec::new("slow_once").max_attempts(2), []);
    let always = phase.named_task("forever", TaskSpec::new("always_slow").max_attempts(2), []);
    let report = run_phase(&factory, registry, phase).await;

    assert_eq!(fail_kind(&report.disposition), Some("task_failed"));
    let queue = stored_queue(&factory, &report.run_id).await;
    let once = queue.tasks().nth(once).unwrap();
    assert_eq!((once.status, once.attempts), (Status::Done, 2));
    assert_eq!(
        once.error.as_ref().unwrap().kind,
        "timeout",
        "the retried timeout is kept"
    );
    let always = queue.tasks().nth(always).unwrap();
    assert_eq!((always.status, always.attempts), (Status::Failed, 2));
    assert_eq!(always.error.as_ref().unwrap().kind, "timeout");
    // Messages call a task by its plan name when it has one, else by queue id and kind.
    assert_eq!(
        once.error.as_ref().unwrap().message,
        format!(
            "attempt 1 of task {} (`slow_once`) ran longer than 1s",
            once.id
        )
    );
    assert_eq!(
        always.error.as_ref().unwrap().message,
        "attempt 2 of task `forever` ran longer than 1s"
    );
}

/// Review 52 F6: a handler that blocks its thread cannot be dropped at its deadline, and
/// tokio hands back its result when it finally returns. That result is discarded: the
/// attempt ran too long, so it fails as a timeout, and only the retry's result is recorded.
/// Real time, because a thread that sleeps does not move tokio's paused clock.
#[tokio::test]
async fn a_handler_that_blocks_past_its_timeout_fails_as_a_timeout_when_it_returns() {
    let factory = MemoryFactory::new();
    let registry = Registry::new()
        .with(
            "blocks_once",
            handler_fn(|ctx| async move {
                if ctx.attempt() == 1 {
                    std::thread::sleep(Duration::from_millis(300));
                    // Not recorded: the deadline passed while this attempt held its thread.
                    return Ok(Finish::Skip(Handoff::default()));
                }
                Ok(Finish::Complete(Handoff::default()))
            }),
        )
        .with(
            "blocks_and_fails",
            handler_fn(|_ctx| async {
                std::thread::sleep(Duration::from_millis(300));
                Err::<Finish, _>(TaskFailure::permanent(
                    "late",
                    "returned after the deadline",
                ))
            }),
        )
        .with_timeout("blocks_once", Duration::from_millis(50))
        .with_timeout("blocks_and_fails", Duration::from_millis(50));
    let mut phase = Phase::new("p");
    let once = phase.named_task("once", TaskSpec::new("blocks_once").max_attempts(2), []);
    let late = phase.named_task(
        "late",
        TaskSpec::new("blocks_and_fails").max_attempts(1),
        [],
    );
    let report = run_phase(&factory, registry, phase).await;

    assert_eq!(fail_kind(&report.disposition), Some("task_failed"));
    let queue = stored_queue(&factory, &report.run_id).await;
    let once = queue.tasks().nth(once).unwrap();
    assert_eq!(
        (once.status, once.attempts),
        (Status::Done, 2),
        "the late skip of attempt 1 is discarded; attempt 2 completes"
    );
    let error = once.error.as_ref().unwrap();
    assert_eq!(error.kind, "timeout");
    assert!(
        error.message.starts_with(
            "attempt 1 of task `once` ran longer than 50ms; its handler returned only after "
        ),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("so the result was discarded")
            && error.message.contains("spawn_blocking"),
        "{}",
        error.message
    );
    // The late permanent failure is discarded too: the task fails as a timeout.
    let late = queue.tasks().nth(late).unwrap();
    assert_eq!((late.status, late.attempts), (Status::Failed, 1));
    assert_eq!(late.error.as_ref().unwrap().kind, "timeout");
}

#[tokio::test]
async fn a_begin_failure_degrades_to_non_durable_with_a_warn_naming_the_error_when_allowed() {
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let store = MemoryFactory::new();
    let factory = Doctor::new(
        store.clone(),
        Damage {
            fail_begin: true,
            ..Damage::default()
        },
    );
    let ledger = Ledger::default();
    let registry = Registry::new().with("ok", recording(&ledger));
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("ok"), []);
    // Degrading is opt-in: the default requires durability.
    let config = ExecutorConfig::default().with_require_durability(false);
    let executor = Executor::new(Arc::new(factory), registry, config).unwrap();
    let report = executor
        .run(
            RunPlan::new("wf", "s").phase(phase),
            Start::Fresh,
            RunSignals::default(),
        )
        .await
        .unwrap();

    assert_eq!(report.disposition, Disposition::Complete);
    assert!(!report.durable);
    assert_eq!(ledger.count("ok"), 1);
    assert!(
        store.load_meta(&report.run_id).await.unwrap().is_none(),
        "nothing was stored"
    );
    let warns = logs.lines_with("begin_degraded");
    assert_eq!(warns.len(), 1, "logs:\n{}", logs.text());
    assert!(warns[0].contains("WARN"));
    assert!(
        warns[0].contains("injected fault in begin"),
        "the WARN names the error: {}",
        warns[0]
    );
    assert!(warns[0].contains(report.run_id.as_str()));
}

#[tokio::test]
async fn a_begin_failure_is_a_typed_error_when_durability_is_required() {
    let factory = Doctor::new(
        MemoryFactory::new(),
        Damage {
            fail_begin: true,
            ..Damage::default()
        },
    );
    let ledger = Ledger::default();
    let registry = Registry::new().with("ok", recording(&ledger));
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("ok"), []);
    // The default: a failed begin is an error, not a silent degrade.
    let config = ExecutorConfig::default();
    assert!(config.require_durability);
    let executor = Executor::new(Arc::new(factory), registry, config).unwrap();
    let err = executor
        .run(
            RunPlan::new("wf", "s").phase(phase),
            Start::Fresh,
            RunSignals::default(),
        )
        .await
        .unwrap_err();

    assert!(matches!(
        err,
        Error::BeginFailed {
            source: cairn_checkpoint::Error::Injected { op: "begin" },
            ..
        }
    ));
    assert_eq!(ledger.total(), 0);
}

/// `on_begun` fires once a fresh run is durably begun, and never for a run that was not:
/// a failed `begin`, a plan refused first, or a run degraded to a non-durable checkpointer.
#[tokio::test]
async fn on_begun_fires_only_for_a_durably_begun_run() {
    let begun = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hooked = |executor: Executor| {
        let seen = Arc::clone(&begun);
        executor.on_begun(move |run_id| seen.lock().unwrap().push(run_id.clone()))
    };
    let registry = || Registry::new().with("ok", recording(&Ledger::default()));
    let plan = || {
        let mut phase = Phase::new("p");
        phase.task(TaskSpec::new("ok"), []);
        RunPlan::new("wf", "s").phase(phase)
    };
    let failing = || {
        Arc::new(Doctor::new(
            MemoryFactory::new(),
            Damage {
                fail_begin: true,
                ..Damage::default()
            },
        ))
    };

    let exec = hooked(Executor::new(failing(), registry(), ExecutorConfig::default()).unwrap());
    let err = exec.run(plan(), Start::Fresh, RunSignals::default()).await;
    assert!(matches!(err, Err(Error::BeginFailed { .. })), "{err:?}");
    let degraded = ExecutorConfig::default().with_require_durability(false);
    let exec = hooked(Executor::new(failing(), registry(), degraded).unwrap());
    let report = exec
        .run(plan(), Start::Fresh, RunSignals::default())
        .await
        .unwrap();
    assert!(!report.durable);
    let store = MemoryFactory::new();
    let exec = hooked(executor(&store, Registry::new(), ExecutorConfig::default()));
    let err = exec.run(plan(), Start::Fresh, RunSignals::default()).await;
    assert!(matches!(err, Err(Error::InvalidPlan { .. })), "{err:?}");
    assert!(
        begun.lock().unwrap().is_empty(),
        "nothing was durably begun"
    );

    let exec = hooked(executor(&store, registry(), ExecutorConfig::default()));
    let report = exec
        .run(plan(), Start::Fresh, RunSignals::default())
        .await
        .unwrap();
    assert_eq!(*begun.lock().unwrap(), vec![report.run_id]);
}

#[tokio::test]
async fn a_run_id_that_is_already_taken_is_refused_even_without_required_durability() {
    let store = MemoryFactory::new();
    let ledger = Ledger::default();
    let registry = Registry::new().with("ok", recording(&ledger)).with(
        "bad",
        handler_fn(|_ctx| async { Err(TaskFailure::permanent("bad", "no")) }),
    );
    let exec = executor(&store, registry, ExecutorConfig::default());
    let mut failing = Phase::new("p");
    failing.task(TaskSpec::new("bad"), []);
    let first = exec
        .run(
            RunPlan::new("wf", "s").phase(failing),
            Start::Fresh,
            RunSignals::default(),
        )
        .await
        .unwrap();
    assert!(matches!(first.disposition, Disposition::Fail(_)));

    // A plan that reuses the failed run's id, as a host that derives ids from its own keys
    // might: it must not run without a journal and report as that run.
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("ok"), []);
    let err = exec
        .run(
            RunPlan::new("wf", "s")
                .run_id(first.run_id.clone())
                .phase(phase),
            Start::Fresh,
            RunSignals::default(),
        )
        .await
        .unwrap_err();
    // It says what the existing run is and what to do about it.
    assert!(
        matches!(
            &err,
            Error::RunExists { run_id, status: RunStatus::Failed } if *run_id == first.run_id
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("already exists and is failed"),
        "{message}"
    );
    assert!(message.contains("resume it"), "{message}");
    assert!(message.contains("abandon it"), "{message}");
    assert!(message.contains("another run id"), "{message}");
    assert_eq!(ledger.total(), 0, "no task ran");
    let meta = store.load_meta(&first.run_id).await.unwrap().unwrap();
    assert_eq!(
        meta.status,
        RunStatus::Failed,
        "the stored run is untouched"
    );
}

#[tokio::test]
async fn a_panic_inside_the_executor_still_finalizes_the_run_as_failed() {
    let store = MemoryFactory::new();
    // The first append records the phase, its tasks and their starts; the second (the
    // batch of completions) panics inside the drive.
    let factory = Doctor::new(
        store.clone(),
        Damage {
            panic_on_append: Some(2),
            ..Damage::default()
        },
    );
    let ledger = Ledger::default();
    let registry = Registry::new().with("ok", recording(&ledger));
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("ok"), []);
    let executor = Executor::new(Arc::new(factory), registry, ExecutorConfig::default()).unwrap();
    let report = executor
        .run(
            RunPlan::new("wf", "s").phase(phase),
            Start::Fresh,
            RunSignals::default(),
        )
        .await
        .unwrap();

    assert!(
        matches!(&report.stop, Some(RunStop::Panicked(m)) if m.contains("doctored writer panics"))
    );
    assert_eq!(fail_kind(&report.disposition), Some("executor_panic"));
    let meta = store.load_meta(&report.run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Failed);
    assert_eq!(meta.error.unwrap().kind, "executor_panic");
}

#[tokio::test]
async fn a_caller_cancel_stops_running_attempts_and_fails_the_run() {
    let factory = MemoryFactory::new();
    let signals = RunSignals::default();
    let cancel = signals.cancel.clone();
    let registry = Registry::new().with(
        "wait",
        handler_fn(move |ctx| {
            let cancel = cancel.clone();
            async move {
                cancel.cancel();
                ctx.cancellation().cancelled().await;
                Err(TaskFailure::retryable("cancelled", "stopped"))
            }
        }),
    );
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("wait"), []);
    let report = executor(&factory, registry, ExecutorConfig::default())
        .run(RunPlan::new("wf", "s").phase(phase), Start::Fresh, signals)
        .await
        .unwrap();
    assert_eq!(fail_kind(&report.disposition), Some("cancelled"));
    let meta = factory.load_meta(&report.run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Failed);
}

/// Dropping `Executor::run`'s future aborts the drive; work an attempt handed to another
/// task is still told to stop through the attempt's cancellation token, and the run is left
/// `running` for recovery, as after a crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_run_future_fires_the_attempts_cancellation_tokens() {
    let factory = MemoryFactory::new();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let handoff = Arc::new(std::sync::Mutex::new(Some((started_tx, stopped_tx))));
    let registry = Registry::new().with(
        "hand-off",
        handler_fn(move |ctx| {
            let handoff = Arc::clone(&handoff);
            async move {
                let (started, stopped) = handoff.lock().unwrap().take().expect("one attempt");
                let token = ctx.cancellation().clone();
                // Work that outlives the body: it stops only when the token fires.
                tokio::spawn(async move {
                    token.cancelled().await;
                    let _ = stopped.send(());
                });
                let _ = started.send(());
                std::future::pending::<cairn_executor::HandlerResult>().await
            }
        }),
    );
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("hand-off"), []);
    let executor = executor(&factory, registry, ExecutorConfig::default());
    let run = executor.run(
        RunPlan::new("wf", "s").phase(phase),
        Start::Fresh,
        RunSignals::default(),
    );
    tokio::select! {
        report = run => panic!("the run ended while its attempt waited: {report:?}"),
        started = started_rx => started.expect("the attempt started"),
    }
    // The run's future is dropped here, mid-attempt.
    tokio::time::timeout(Duration::from_secs(60), stopped_rx)
        .await
        .expect("the handed-off work was told to stop")
        .expect("the handed-off work ran to its stop");
    let runs = factory
        .list(&cairn_checkpoint::RunFilter::default())
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Running, "left for recovery");
}

#[tokio::test]
async fn zero_concurrency_is_refused() {
    let err = Executor::new(
        Arc::new(MemoryFactory::new()),
        Registry::new(),
        ExecutorConfig::default().with_concurrency(0),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }));
}

#[tokio::test]
async fn handler_work_runs_inside_its_task_span_inside_the_run_span() {
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let factory = MemoryFactory::new();
    let registry = Registry::new().with(
        "traced",
        handler_fn(|_ctx| async {
            tracing::info!("handler says hello");
            Ok(Finish::Complete(Handoff::default()))
        }),
    );
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("traced"), []);
    let report = run_phase(&factory, registry, phase).await;
    let lines = logs.lines_with("handler says hello");
    assert_eq!(lines.len(), 1);
    let run_span = format!(
        "orchestrator run{{run_id={} workflow=wf scope=s resumed=false lease_epoch=1}}",
        report.run_id
    );
    assert!(lines[0].contains(&run_span), "{}", lines[0]);
    assert!(lines[0].contains(":orchestrator task{"), "{}", lines[0]);
    assert!(
        lines[0].contains("task_id=t0 kind=traced attempt=1"),
        "{}",
        lines[0]
    );
    assert_eq!(logs.lines_with("orchestrator run finished").len(), 1);
    let started = logs.lines_with("orchestrator run started");
    assert_eq!(started.len(), 1);
    assert!(started[0].contains("tasks_total=1"), "{}", started[0]);
}

#[tokio::test]
async fn a_failed_finalize_is_logged_at_warn_and_returned_with_the_report() {
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let store = MemoryFactory::new();
    let factory = Doctor::new(
        store.clone(),
        Damage {
            fail_finish: true,
            ..Damage::default()
        },
    );
    let ledger = Ledger::default();
    let registry = Registry::new().with("ok", recording(&ledger));
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("ok"), []);
    let executor = Executor::new(Arc::new(factory), registry, ExecutorConfig::default()).unwrap();
    let err = executor
        .run(
            RunPlan::new("wf", "s").phase(phase),
            Start::Fresh,
            RunSignals::default(),
        )
        .await
        .unwrap_err();

    let Error::Finalize { report, source } = err else {
        panic!("expected Finalize, got {err:?}");
    };
    assert!(matches!(
        source,
        cairn_checkpoint::Error::Injected { op: "complete" }
    ));
    assert_eq!(report.disposition, Disposition::Complete);
    assert_eq!(ledger.count("ok"), 1);
    let warns = logs.lines_with("finalizing the run failed");
    assert_eq!(warns.len(), 1, "logs:\n{}", logs.text());
    assert!(warns[0].contains("WARN") && warns[0].contains("injected fault in complete"));
    let meta = store.load_meta(&report.run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Running, "nothing was recorded");
}

/// The `Finished` audit record says the run's end was recorded, so it is written only after
/// the status write succeeded: a `complete` or `fail` that fails leaves no such record (it
/// used to be written first, and then claimed an end the store never recorded).
#[tokio::test]
async fn a_failed_status_write_leaves_no_finished_audit_record() {
    for (kind, op) in [("ok", FaultOp::Complete), ("broken", FaultOp::Fail)] {
        let store = MemoryFactory::new();
        let plan = FaultPlan::new();
        plan.fail_next(op, FaultTiming::Before);
        let factory = FaultyFactory::new(store.clone(), plan.clone());
        let registry = Registry::new()
            .with(
                "ok",
                handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
            )
            .with(
                "broken",
                handler_fn(|_ctx| async { Err(TaskFailure::permanent("bug", "no")) }),
            );
        let mut phase = Phase::new("p");
        phase.task(TaskSpec::new(kind), []);
        let executor =
            Executor::new(Arc::new(factory), registry, ExecutorConfig::default()).unwrap();
        let err = executor
            .run(
                RunPlan::new("wf", "s").phase(phase),
                Start::Fresh,
                RunSignals::default(),
            )
            .await
            .unwrap_err();
        let Error::Finalize { report, .. } = err else {
            panic!("{kind}: expected Finalize, got {err:?}");
        };
        let fired: Vec<FaultOp> = plan.fired().into_iter().map(|(op, _)| op).collect();
        assert_eq!(fired, vec![op], "{kind}");
        let meta = store.load_meta(&report.run_id).await.unwrap().unwrap();
        assert_eq!(
            meta.status,
            RunStatus::Running,
            "{kind}: nothing was recorded"
        );
        let audit = store.read_audit(&report.run_id).await.unwrap();
        assert!(
            audit.iter().all(|r| r.action != AuditAction::Finished),
            "{kind}: {audit:?}"
        );
    }
}

/// The other half: once the status write succeeded, the `Finished` record follows it, with
/// the outcome the store holds.
#[tokio::test]
async fn a_recorded_end_is_audited_as_finished_with_its_outcome() {
    for (kind, status, outcome) in [
        ("ok", RunStatus::Completed, "complete"),
        ("broken", RunStatus::Failed, "fail"),
    ] {
        let store = MemoryFactory::new();
        let registry = Registry::new()
            .with(
                "ok",
                handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
            )
            .with(
                "broken",
                handler_fn(|_ctx| async { Err(TaskFailure::permanent("bug", "no")) }),
            );
        let mut phase = Phase::new("p");
        phase.task(TaskSpec::new(kind), []);
        let report = run_phase(&store, registry, phase).await;
        let meta = store.load_meta(&report.run_id).await.unwrap().unwrap();
        assert_eq!(meta.status, status, "{kind}");
        let audit = store.read_audit(&report.run_id).await.unwrap();
        let finished: Vec<_> = audit
            .iter()
            .filter(|r| r.action == AuditAction::Finished)
            .collect();
        assert_eq!(finished.len(), 1, "{kind}: {audit:?}");
        let said = finished[0].detail["outcome"].as_str().unwrap_or_default();
        assert!(said.starts_with(outcome), "{kind}: {audit:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_past_its_deadline_stops_its_attempts_and_fails_with_kind_deadline() {
    let factory = MemoryFactory::new();
    let registry = Registry::new().with(
        "slow",
        handler_fn(|_ctx| async {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            Ok(Finish::Complete(Handoff::default()))
        }),
    );
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("slow"), []);
    let plan = RunPlan::new("wf", "s")
        .phase(phase)
        .deadline(Duration::from_secs(10));
    let report = executor(&factory, registry, ExecutorConfig::default())
        .run(plan, Start::Fresh, RunSignals::default())
        .await
        .unwrap();
    assert_eq!(fail_kind(&report.disposition), Some("deadline"));
    let meta = factory.load_meta(&report.run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Failed);
    assert_eq!(meta.error.unwrap().kind, "deadline");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wide_graph_with_follow_ups_on_many_threads_completes_each_task_once() {
    let factory = MemoryFactory::new();
    let ledger = Ledger::default();
    let fan_out = ledger.clone();
    let registry = Registry::new().with("leaf", recording(&ledger)).with(
        "root",
        handler_fn(move |ctx| {
            let ledger = fan_out.clone();
            async move {
                ledger.record(&ctx);
                // Every root enqueues the same two leaves plus one of its own.
                for n in [0, 1, ctx.inputs().as_i64().unwrap() + 100] {
                    ctx.enqueue(TaskSpec::new("leaf").inputs(n.into()))
                        .await
                        .map_err(|e| TaskFailure::permanent("enqueue", e.to_string()))?;
                }
                Ok(Finish::Complete(Handoff::default()))
            }
        }),
    );
    let mut phase = Phase::new("wide");
    let roots: Vec<usize> = (0..300)
        .map(|i| phase.task(TaskSpec::new("root").inputs(i.into()), []))
        .collect();
    phase.task(TaskSpec::new("leaf").inputs("join".into()), roots);
    let report = executor(
        &factory,
        registry,
        ExecutorConfig::default().with_concurrency(32),
    )
    .run(
        RunPlan::new("wf", "s").phase(phase),
        Start::Fresh,
        RunSignals::default(),
    )
    .await
    .unwrap();

    assert_eq!(report.disposition, Disposition::Complete);
    // 300 roots, the join, 2 shared leaves and 300 own leaves.
    assert_eq!(report.counts.done, 300 + 1 + 2 + 300);
    assert_eq!(ledger.total(), 603);
    assert!(ledger.per_task().values().all(|&n| n == 1));
    let events = stored(&factory, &report.run_id).await.events;
    let done = completions(&events);
    assert_eq!(done.len(), 603);
    assert!(done.values().all(|&n| n == 1));
}

#[tokio::test]
async fn a_started_record_is_durable_before_the_body_runs_and_batches_share_appends() {
    let factory = Doctor::new(MemoryFactory::new(), Damage::default());
    let durable = Arc::clone(&factory.durable);
    let violations = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&violations);
    let registry = Registry::new().with(
        "check",
        handler_fn(move |ctx| {
            let (durable, seen) = (Arc::clone(&durable), Arc::clone(&seen));
            async move {
                let started = Event::Started {
                    id: ctx.task_id(),
                    attempt: ctx.attempt(),
                    at: ctx.task().started_at.unwrap(),
                };
                if !durable.lock().unwrap().contains(&started) {
                    seen.lock().unwrap().push(ctx.task_id());
                }
                Ok(Finish::Complete(Handoff::default()))
            }
        }),
    );
    let mut phase = Phase::new("p");
    for i in 0..100 {
        phase.task(TaskSpec::new("check").inputs(i.into()), []);
    }
    let executor = Executor::new(
        Arc::new(factory.clone()),
        registry,
        ExecutorConfig::default().with_concurrency(100),
    )
    .unwrap();
    let report = executor
        .run(
            RunPlan::new("wf", "s").phase(phase),
            Start::Fresh,
            RunSignals::default(),
        )
        .await
        .unwrap();

    assert_eq!(report.disposition, Disposition::Complete);
    assert!(
        violations.lock().unwrap().is_empty(),
        "bodies ran before their Started record was durable: {:?}",
        violations.lock().unwrap()
    );
    // 300 transitions (enqueue, start, complete per task) plus the phase records.
    let durable = factory.durable.lock().unwrap().len();
    assert!(durable >= 302);
    assert!(
        factory.appends() <= 10,
        "{} appends for {durable} events: transitions are not batched",
        factory.appends()
    );
}

#[tokio::test(start_paused = true)]
async fn durations_too_long_to_represent_mean_no_limit_instead_of_a_panic() {
    // `Instant + Duration::MAX` overflows; a deadline or grace that large means "none".
    let factory = MemoryFactory::new();
    let ledger = Ledger::default();
    let report = executor(
        &factory,
        Registry::new().with("ok", recording(&ledger)),
        ExecutorConfig::default(),
    )
    .run(
        RunPlan::new("wf", "s")
            .deadline(Duration::MAX)
            .phase(one_task("ok")),
        Start::Fresh,
        RunSignals::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.disposition, Disposition::Complete);

    let signals = RunSignals::default();
    let shutdown = signals.shutdown.clone();
    let registry = Registry::new().with("ok", recording(&ledger)).with(
        "slow",
        handler_fn(move |_ctx| {
            let shutdown = shutdown.clone();
            async move {
                shutdown.cancel();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
            }
        }),
    );
    let report = executor(
        &factory,
        registry,
        ExecutorConfig::default().with_shutdown_grace(Duration::MAX),
    )
    .run(
        RunPlan::new("wf", "grace").phase({
            let mut phase = Phase::new("p");
            let slow = phase.task(TaskSpec::new("slow"), []);
            phase.task(TaskSpec::new("ok"), [slow]);
            phase
        }),
        Start::Fresh,
        signals,
    )
    .await
    .unwrap();
    assert_eq!(
        report.disposition,
        Disposition::LeaveRunning,
        "the shutdown still leaves the run resumable"
    );
    assert_eq!(
        (report.counts.done, report.counts.pending),
        (1, 1),
        "the running task was waited for; its dependent did not start"
    );
}

/// An attempt timeout too long to represent (`Duration::MAX`, per kind or by default) is no
/// timeout, as a deadline or grace that large is: it must not overflow `Instant + Duration`
/// inside the attempt, which would fail the task as a handler panic.
#[tokio::test(start_paused = true)]
async fn attempt_timeouts_too_long_to_represent_mean_no_limit_instead_of_a_panic() {
    for (per_kind, default) in [(true, false), (false, true)] {
        let factory = MemoryFactory::new();
        let ledger = Ledger::default();
        let mut registry = Registry::new().with("ok", recording(&ledger));
        if per_kind {
            registry = registry.with_timeout("ok", Duration::MAX);
        }
        let mut config = ExecutorConfig::default();
        if default {
            config = config.with_default_timeout(Duration::MAX);
        }
        let report = executor(&factory, registry, config)
            .run(
                RunPlan::new("wf", "s").phase(one_task("ok")),
                Start::Fresh,
                RunSignals::default(),
            )
            .await
            .unwrap();
        assert_eq!(
            report.disposition,
            Disposition::Complete,
            "per kind: {per_kind}, by default: {default}: {:?}",
            report.stop
        );
        assert_eq!(ledger.count("ok"), 1);
    }
}

fn one_task(kind: &str) -> Phase {
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new(kind), []);
    phase
}

/// `on_acknowledged` hears exactly the batches whose append returned `Ok`, in journal order:
/// a task whose handler returned but whose `Completed` batch failed to append is not reported
/// done (a crash there runs it again).
#[tokio::test]
async fn on_acknowledged_hears_every_acknowledged_batch_and_no_failed_one() {
    for fail_on_append in [None, Some(3)] {
        let factory = Doctor::new(
            MemoryFactory::new(),
            Damage {
                fail_on_append,
                ..Damage::default()
            },
        );
        let ledger = Ledger::default();
        let registry = Registry::new().with("ok", recording(&ledger));
        // A chain: each completion and the next start share one batch.
        let mut phase = Phase::new("p");
        let first = phase.task(TaskSpec::new("ok").inputs(1.into()), []);
        let second = phase.task(TaskSpec::new("ok").inputs(2.into()), [first]);
        phase.task(TaskSpec::new("ok").inputs(3.into()), [second]);
        let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        let executor = Executor::new(
            Arc::new(factory.clone()),
            registry,
            ExecutorConfig::default(),
        )
        .unwrap()
        .on_acknowledged(move |_run, events| sink.lock().unwrap().extend_from_slice(events));
        let report = executor
            .run(
                RunPlan::new("wf", "s").phase(phase),
                Start::Fresh,
                RunSignals::default(),
            )
            .await
            .unwrap();

        let heard = heard.lock().unwrap().clone();
        assert_eq!(
            heard,
            *factory.durable.lock().unwrap(),
            "{fail_on_append:?}"
        );
        let done = completions(&heard).len();
        match fail_on_append {
            None => {
                assert_eq!(report.disposition, Disposition::Complete);
                assert_eq!(done, 3);
            }
            Some(_) => {
                assert!(
                    matches!(report.stop, Some(RunStop::Checkpoint(_))),
                    "{:?}",
                    report.stop
                );
                // The second task's handler returned, but its completion never became
                // durable, so it is not heard as done.
                assert_eq!(ledger.total(), 2);
                assert_eq!(done, 1);
            }
        }
    }
}

/// The journaled backoff of the first retry of a task of `plan`'s single `flaky` task, in
/// milliseconds (its failure's `retry_at` less its time).
async fn first_backoff_ms(plan: RunPlan) -> u64 {
    let factory = MemoryFactory::new();
    let registry = Registry::new().with(
        "flaky",
        handler_fn(|ctx| async move {
            if ctx.attempt() == 1 {
                Err(TaskFailure::retryable("network", "connection reset"))
            } else {
                Ok(Finish::Complete(Handoff::default()))
            }
        }),
    );
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("flaky").max_attempts(2), []);
    let report = executor(&factory, registry, ExecutorConfig::default())
        .run(plan.phase(phase), Start::Fresh, RunSignals::default())
        .await
        .unwrap();
    assert_eq!(report.disposition, Disposition::Complete);
    let events = stored(&factory, &report.run_id).await.events;
    events
        .iter()
        .find_map(|e| match e {
            Event::Failed {
                retry_at: Some(retry_at),
                at,
                ..
            } => Some(retry_at.0 - at.0),
            _ => None,
        })
        .expect("a retried failure")
}

/// A plan's own backoff replaces the executor's for that run only (review 51 F10: retries
/// came back within ~0.1 s, with no way to wait longer for a slow service).
#[tokio::test(start_paused = true)]
async fn a_plans_retry_backoff_replaces_the_executors_for_its_run() {
    let slow = RetryPolicy {
        base: Duration::from_secs(20),
        max: Duration::from_secs(60),
        ..RetryPolicy::default()
    };
    let waited = first_backoff_ms(RunPlan::new("wf", "slow").retry(slow)).await;
    assert!((10_000..=20_000).contains(&waited), "{waited} ms");
    let default = first_backoff_ms(RunPlan::new("wf", "default")).await;
    assert!((50..=100).contains(&default), "{default} ms");
}

/// A runtime shut down under a run cancels its drive task. That is the host going away, not a
/// bug: the run is left `running` for a later start to resume, never failed as an executor
/// panic (a failed run would wait for a person instead of resuming).
#[test]
fn a_runtime_shutdown_under_the_drive_leaves_the_run_running() {
    let factory = MemoryFactory::new();
    let driving = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let registry = Registry::new().with(
        "hang",
        handler_fn(move |_ctx| {
            let started = started_tx.clone();
            async move {
                started.send(()).expect("the test waits for this");
                std::future::pending::<()>().await;
                Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
            }
        }),
    );
    let run = executor(&factory, registry, ExecutorConfig::default());
    let spawn_on = driving.handle().clone();
    // The run is awaited on a runtime of its own, and spawns its drive on `driving`, so
    // that `driving` can be shut down while the run's own future goes on.
    let awaiting = std::thread::spawn(move || {
        let outer = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        outer.block_on(async move {
            let _spawns_go_to_driving = spawn_on.enter();
            run.run(
                RunPlan::new("wf", "s").phase(one_task("hang")),
                Start::Fresh,
                RunSignals::default(),
            )
            .await
        })
    });
    started_rx.recv().expect("the task starts");
    drop(driving);
    let report = awaiting
        .join()
        .expect("no panic")
        .expect("the run is finalized");
    assert_eq!(report.disposition, Disposition::LeaveRunning, "{report:?}");
    assert!(
        matches!(
            report.stop,
            Some(RunStop::Cancelled(cairn_executor::CancelCause::Shutdown))
        ),
        "{:?}",
        report.stop
    );
    let outer = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let listed = outer
        .block_on(factory.list(&cairn_checkpoint::RunFilter::default()))
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, RunStatus::Running, "left for a resume");
}
