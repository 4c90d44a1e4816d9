//! What an embedding host writes: handlers through `handler_fn` (cloned for several kinds)
//! and `handler_fn_with` (shared state), `?` on a refused enqueue inside a handler, the
//! re-exports and the prelude, an executor over a factory by value, and follow-ups or plan
//! tasks with an empty kind, refused as such.

use std::sync::{Arc, Mutex};

use cairn_executor::checkpoint::MemoryFactory;
use cairn_executor::prelude::*;
use cairn_executor::{Error, PlanProblem};

/// Runs `phase` fresh with `registry` on a memory store passed by value.
async fn run(registry: Registry, phase: Phase) -> RunReport {
    let executor = Executor::new(MemoryFactory::new(), registry, ExecutorConfig::default())
        .expect("a valid config");
    executor
        .run(
            RunPlan::new("wf", "scope").phase(phase),
            Start::Fresh,
            RunSignals::default(),
        )
        .await
        .expect("the run is driven")
}

/// The last error of the one task that failed the run.
fn failed_error(report: &RunReport) -> TaskError {
    let Some(cairn_executor::RunStop::TasksFailed { failed, .. }) = &report.stop else {
        panic!("the run should fail on a task: {report:?}")
    };
    assert_eq!(failed.len(), 1, "{failed:?}");
    failed[0]
        .error
        .clone()
        .expect("the failed task has an error")
}

#[tokio::test]
async fn one_cloned_fn_handler_serves_two_kinds_and_shares_its_closure() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&calls);
    let handler = handler_fn(move |ctx| {
        let seen = Arc::clone(&seen);
        async move {
            seen.lock().unwrap().push(ctx.task().kind.clone());
            Ok(Finish::Complete(Handoff::default()))
        }
    });
    let registry = Registry::new()
        .with("fetch", handler.clone())
        .with("store", handler);
    let mut phase = Phase::new("p");
    let fetch = phase.task(TaskSpec::new("fetch"), []);
    phase.task(TaskSpec::new("store"), [fetch]);
    let report = run(registry, phase).await;
    assert_eq!(report.disposition, Disposition::Complete);
    assert_eq!(*calls.lock().unwrap(), ["fetch", "store"]);
}

#[tokio::test]
async fn handler_fn_with_hands_each_attempt_the_state_and_clones_share_it() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let handler = handler_fn_with(Arc::clone(&log), |log, ctx| async move {
        log.lock()
            .unwrap()
            .push(format!("{} {}", ctx.task().kind, ctx.inputs()));
        Ok(Finish::Complete(Handoff::default()))
    });
    let registry = Registry::new()
        .with("a", handler.clone())
        .with("b", handler);
    let mut phase = Phase::new("p");
    let first = phase.task(TaskSpec::new("a").inputs(1.into()), []);
    phase.task(TaskSpec::new("b").inputs(2.into()), [first]);
    let report = run(registry, phase).await;
    assert_eq!(report.disposition, Disposition::Complete);
    assert_eq!(*log.lock().unwrap(), ["a 1", "b 2"]);
}

#[tokio::test]
async fn a_refused_enqueue_fails_the_task_permanently_through_the_question_mark() {
    let attempts = Arc::new(Mutex::new(0u32));
    let registry = Registry::new().with(
        "parent",
        handler_fn_with(Arc::clone(&attempts), |attempts, ctx| async move {
            *attempts.lock().unwrap() += 1;
            ctx.enqueue(TaskSpec::new("nobody-handles-this")).await?;
            Ok(Finish::Complete(Handoff::default()))
        }),
    );
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("parent").max_attempts(3), []);
    let report = run(registry, phase).await;
    let error = failed_error(&report);
    assert_eq!(error.kind, "unknown_kind");
    assert!(error.message.contains("nobody-handles-this"), "{error:?}");
    assert_eq!(*attempts.lock().unwrap(), 1, "permanent: not retried");
}

#[test]
fn executor_errors_map_to_permanent_failures_named_by_their_refusal() {
    let cases = [
        (
            Error::UnknownKind {
                parent: TaskId(1),
                kind: "x".to_owned(),
            },
            "unknown_kind",
        ),
        (
            Error::Enqueue {
                parent: TaskId(1),
                source: cairn_executor::queue::Error::InvalidSpec {
                    reason: "the task kind is empty".to_owned(),
                },
            },
            "enqueue",
        ),
        (Error::NotRunning { parent: TaskId(1) }, "not_running"),
        (
            Error::InvalidConfig {
                reason: "r".to_owned(),
            },
            "executor",
        ),
    ];
    for (error, kind) in cases {
        let text = error.to_string();
        let TaskFailure::Permanent(failure) = TaskFailure::from(error) else {
            panic!("{kind}: not permanent");
        };
        assert_eq!(failure.kind, kind);
        assert_eq!(failure.message, text);
    }
}

#[tokio::test]
async fn a_follow_up_with_an_empty_kind_is_refused_as_empty_not_as_unhandled() {
    let refused = Arc::new(Mutex::new(None));
    let registry = Registry::new().with(
        "parent",
        handler_fn_with(Arc::clone(&refused), |refused, ctx| async move {
            let answer = ctx.enqueue(TaskSpec::new("")).await;
            *refused.lock().unwrap() = answer.err();
            Ok(Finish::Complete(Handoff::default()))
        }),
    );
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("parent"), []);
    let report = run(registry, phase).await;
    assert_eq!(report.disposition, Disposition::Complete);
    let refused = refused
        .lock()
        .unwrap()
        .take()
        .expect("the enqueue is refused");
    let Error::Enqueue { source, .. } = &refused else {
        panic!("{refused:?}")
    };
    assert!(
        matches!(source, cairn_executor::queue::Error::InvalidSpec { .. }),
        "{source:?}"
    );
    assert!(
        refused.to_string().contains("the task kind is empty"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_plan_task_with_an_empty_kind_is_an_empty_kind_problem_even_if_registered() {
    let noop = handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) });
    // Even a handler registered under "" does not make the empty kind runnable.
    let registry = Registry::new().with("", noop.clone()).with("ok", noop);
    let executor =
        Executor::new(MemoryFactory::new(), registry, ExecutorConfig::default()).unwrap();
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("ok"), []);
    phase.task(TaskSpec::new(""), []);
    let plan = RunPlan::new("wf", "scope").phase(phase);
    let Err(Error::InvalidPlan { problems }) = executor.check_plan(&plan) else {
        panic!("the plan is refused")
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    let PlanProblem::EmptyKind { at } = &problems[0] else {
        panic!("{problems:?}")
    };
    assert_eq!(at.position, 1);
    assert!(problems[0].to_string().contains("the task kind is empty"));
}

#[tokio::test]
async fn an_executor_takes_a_factory_by_value_by_arc_or_as_a_shared_trait_object() {
    let store = MemoryFactory::new();
    let shared: Arc<dyn CheckpointerFactory> = Arc::new(store.clone());
    let noop = || {
        Registry::new().with(
            "step",
            handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
        )
    };
    let executors = [
        Executor::new(store.clone(), noop(), ExecutorConfig::default()).unwrap(),
        Executor::new(Arc::new(store.clone()), noop(), ExecutorConfig::default()).unwrap(),
        Executor::new(Arc::clone(&shared), noop(), ExecutorConfig::default()).unwrap(),
    ];
    let mut ids = Vec::new();
    for executor in executors {
        let mut phase = Phase::new("p");
        phase.task(TaskSpec::new("step"), []);
        let report = executor
            .run(
                RunPlan::new("wf", "scope").phase(phase),
                Start::Fresh,
                RunSignals::default(),
            )
            .await
            .unwrap();
        assert_eq!(report.disposition, Disposition::Complete);
        ids.push(report.run_id);
    }
    // All three wrote to the one store.
    let listed = shared.list(&Default::default()).await.unwrap();
    let mut stored: Vec<RunId> = listed.into_iter().map(|meta| meta.run_id).collect();
    stored.sort();
    ids.sort();
    assert_eq!(stored, ids);
}

/// A handler type of the host's own, written with the re-exported `async_trait`.
#[derive(Debug)]
struct Greet;

#[async_trait]
impl Handler for Greet {
    async fn run(&self, ctx: TaskContext) -> HandlerResult {
        let done = vec![format!("greeted {}", ctx.inputs())];
        Ok(Finish::Complete(Handoff {
            done,
            ..Handoff::default()
        }))
    }
}

#[tokio::test]
async fn a_handler_written_with_the_reexported_async_trait_runs() {
    let registry = Registry::new().with("greet", Greet);
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("greet").inputs("world".into()), []);
    let signals = RunSignals {
        shutdown: CancellationToken::new(),
        ..RunSignals::default()
    };
    let executor =
        Executor::new(MemoryFactory::new(), registry, ExecutorConfig::default()).unwrap();
    let report = executor
        .run(
            RunPlan::new("wf", "scope").phase(phase),
            Start::Fresh,
            signals,
        )
        .await
        .unwrap();
    assert_eq!(report.disposition, Disposition::Complete);
    assert_eq!(report.counts.done, 1);
}
