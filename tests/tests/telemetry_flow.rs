//! Telemetry of real runs: a fresh run reports `resumed=false` and no resume; a run that is
//! shut down and resumed reports exactly one `orchestrator resumed` with the inherited counts,
//! finishes with `resumed=true`, and its root span links back to the interrupted execution.
//! Each attempt's exported task span (and `cairn.task.outcomes`) carries the outcome the
//! attempt ended with, which the attempt decides itself on its worker: complete, skip, retry,
//! fail, panic, timeout, or cancelled for an attempt stopped mid-body.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_checkpoint::MemoryFactory;
use cairn_executor::{
    Disposition, Executor, ExecutorConfig, Finish, Phase, Registry, RunPlan, RunSignals, Start,
    TaskFailure, handler_fn,
};
use cairn_queue::{Handoff, TaskError, TaskSpec};
use cairn_telemetry::link::run_span_context;
use cairn_telemetry::names;
use cairn_telemetry::testing::TestTelemetry;
use opentelemetry::{KeyValue, Value};
use tracing_subscriber::Layer as _;

const TASKS: i64 = 6;

fn config() -> ExecutorConfig {
    ExecutorConfig::default()
        .with_concurrency(2)
        .with_shutdown_grace(Duration::from_secs(1))
}

fn plan() -> RunPlan {
    let mut phase = Phase::new("main");
    let mut previous = None;
    for i in 0..TASKS {
        // A chain, so the stall leaves later tasks pending and earlier ones done.
        let index = phase.task(TaskSpec::new("work").inputs(i.into()), previous);
        previous = Some(index);
    }
    RunPlan::new("etl", "nightly").phase(phase)
}

/// Completes every task, except that the first body of task `stall_on` raises the shutdown
/// and never returns (as if the process were being stopped mid-task).
fn registry(
    stall_on: Option<i64>,
    signals: &RunSignals,
    bodies: &Arc<Mutex<Vec<i64>>>,
) -> Registry {
    let shutdown = signals.shutdown.clone();
    let bodies = Arc::clone(bodies);
    Registry::new().with(
        "work",
        handler_fn(move |ctx| {
            let (shutdown, bodies) = (shutdown.clone(), Arc::clone(&bodies));
            async move {
                let input = ctx.inputs().as_i64().unwrap_or(-1);
                let first_body = {
                    let mut bodies = bodies.lock().unwrap();
                    bodies.push(input);
                    bodies.iter().filter(|&&i| i == input).count() == 1
                };
                if Some(input) == stall_on && first_body {
                    shutdown.cancel();
                    std::future::pending::<()>().await;
                }
                Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
            }
        }),
    )
}

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn int(attributes: &[KeyValue], key: &str) -> i64 {
    match attr(attributes, key) {
        Some(Value::I64(n)) => *n,
        other => panic!("field `{key}` is not an integer: {other:?}"),
    }
}

fn text(attributes: &[KeyValue], key: &str) -> String {
    match attr(attributes, key) {
        Some(Value::String(text)) => text.as_str().to_owned(),
        other => panic!("field `{key}` is not a string: {other:?}"),
    }
}

fn outcome_attrs(outcome: &str, kind: &str) -> [KeyValue; 2] {
    [
        KeyValue::new("outcome", outcome.to_owned()),
        KeyValue::new("kind", kind.to_owned()),
    ]
}

fn boolean(attributes: &[KeyValue], key: &str) -> bool {
    match attr(attributes, key) {
        Some(Value::Bool(b)) => *b,
        other => panic!("field `{key}` is not a bool: {other:?}"),
    }
}

/// One thing the subscriber saw, by the stable name of its span or event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Opened(&'static str),
    Closed(&'static str),
    Event(&'static str),
}

/// The order in which the subscriber saw run and task spans open and close and `RESUMED`
/// events happen. Exported timestamps are wall-clock times, which can step backwards, so the
/// tests check "before" and "inside" on this sequence instead.
#[derive(Debug, Clone, Default)]
struct Sequence(Arc<Mutex<Vec<Step>>>);

impl Sequence {
    fn steps(&self) -> Vec<Step> {
        self.0.lock().unwrap().clone()
    }

    /// `TestTelemetry::new()`'s layers with this recorder beside them. The recorder's filter
    /// passes only the callsites it records; wanting the task span callsite makes the registry
    /// open the executor's task spans as tracing spans, which the export hook still exports.
    fn telemetry(&self) -> TestTelemetry {
        let recorder = self
            .clone()
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                [names::RUN_SPAN, names::TASK_SPAN, names::RESUMED].contains(&meta.name())
            }));
        TestTelemetry::composed(move |providers| {
            cairn_telemetry::layers::layer(providers).and_then(recorder)
        })
    }
}

impl<S> tracing_subscriber::Layer<S> for Sequence
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0
            .lock()
            .unwrap()
            .push(Step::Opened(attrs.metadata().name()));
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            self.0.lock().unwrap().push(Step::Closed(span.name()));
        }
    }

    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0
            .lock()
            .unwrap()
            .push(Step::Event(event.metadata().name()));
    }
}

/// Where each occurrence of `step` is in `steps`.
fn positions(steps: &[Step], step: Step) -> Vec<usize> {
    steps
        .iter()
        .enumerate()
        .filter(|(_, seen)| **seen == step)
        .map(|(at, _)| at)
        .collect()
}

/// Runs `plan()` fresh on the memory adapter and checks that it completes.
async fn run_the_plan_to_completion() {
    let signals = RunSignals::default();
    let bodies = Arc::default();
    let executor = Executor::new(
        Arc::new(MemoryFactory::new()),
        registry(None, &signals, &bodies),
        config(),
    )
    .unwrap();
    let report = executor.run(plan(), Start::Auto, signals).await.unwrap();
    assert_eq!(report.disposition, Disposition::Complete);
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_fresh_run_reports_resumed_false_and_no_resume() {
    let telemetry = TestTelemetry::new();
    let _guard = telemetry.set_default();
    run_the_plan_to_completion().await;

    assert!(telemetry.events(names::RESUMED).is_empty());
    let finished = telemetry.events(names::RUN_FINISHED);
    assert_eq!(finished.len(), 1);
    let fields = &finished[0].attributes;
    assert!(!boolean(fields, "resumed"));
    assert_eq!(int(fields, "tasks_done"), TASKS);
    assert!(matches!(attr(fields, "outcome"), Some(v) if v.as_str() == "complete"));
    let runs = telemetry.spans_named(names::RUN_SPAN);
    assert_eq!(runs.len(), 1);
    assert!(runs[0].links.links.is_empty(), "a fresh run links nowhere");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_shut_down_then_resumed_run_reports_one_resume_with_counts_and_links_back() {
    let store = MemoryFactory::new();
    let bodies: Arc<Mutex<Vec<i64>>> = Arc::default();

    // The first execution is stopped while task 2 runs.
    let before = TestTelemetry::new();
    let first = {
        let _guard = before.set_default();
        let signals = RunSignals::default();
        let executor = Executor::new(
            Arc::new(store.clone()),
            registry(Some(2), &signals, &bodies),
            config(),
        )
        .unwrap();
        executor.run(plan(), Start::Auto, signals).await.unwrap()
    };
    assert_eq!(first.disposition, Disposition::LeaveRunning);
    assert!(before.events(names::RESUMED).is_empty());
    // Tasks 0 and 1 completed; task 2 was stopped mid-body when the grace period ran out.
    let mut outcomes: Vec<String> = before
        .spans_named(names::TASK_SPAN)
        .iter()
        .map(|span| text(&span.attributes, "outcome"))
        .collect();
    outcomes.sort();
    assert_eq!(outcomes, ["cancelled", "complete", "complete"]);
    assert_eq!(
        before.counter(
            names::METRIC_TASK_OUTCOMES,
            &outcome_attrs("cancelled", "work")
        ),
        Some(1)
    );
    let interrupted = before.spans_named(names::RUN_SPAN);
    assert_eq!(interrupted.len(), 1);
    let done_before = first.counts.done as i64;
    assert_eq!(done_before, 2, "tasks 0 and 1 finished before the stop");

    // A restarted process resumes it, with its own telemetry pipeline.
    let sequence = Sequence::default();
    let after = sequence.telemetry();
    let second = {
        let _guard = after.set_default();
        let signals = RunSignals::default();
        let executor = Executor::new(
            Arc::new(store.clone()),
            registry(Some(2), &signals, &bodies),
            config(),
        )
        .unwrap();
        executor.run(plan(), Start::Auto, signals).await.unwrap()
    };
    assert_eq!(second.disposition, Disposition::Complete);
    assert_eq!(second.run_id, first.run_id);

    let resumed = after.events(names::RESUMED);
    assert_eq!(resumed.len(), 1, "exactly one resume event");
    let fields = &resumed[0].attributes;
    assert!(matches!(attr(fields, "run_id"), Some(v) if v.as_str() == first.run_id.as_str()));
    assert_eq!(
        int(fields, "lease_epoch"),
        2,
        "the claim bumped epoch 1 to 2"
    );
    assert_eq!(int(fields, "tasks_done"), done_before);
    assert_eq!(
        int(fields, "tasks_reset"),
        0,
        "task 2, running at the stop, was released then: nothing was left to reset"
    );
    assert_eq!(int(fields, "tasks_pending"), TASKS - done_before);
    assert_eq!(int(fields, "tasks_failed"), 0);

    let finished = after.events(names::RUN_FINISHED);
    assert_eq!(finished.len(), 1);
    assert!(boolean(&finished[0].attributes, "resumed"));
    assert_eq!(int(&finished[0].attributes, "tasks_done"), TASKS);

    // The resume event comes before any task span of the resumed execution opens.
    let tasks = after.spans_named(names::TASK_SPAN);
    let steps = sequence.steps();
    let resumed_at = positions(&steps, Step::Event(names::RESUMED));
    let task_opens = positions(&steps, Step::Opened(names::TASK_SPAN));
    assert_eq!(resumed_at.len(), 1, "{steps:?}");
    assert_eq!(
        task_opens.len(),
        tasks.len(),
        "one open per exported task span"
    );
    assert_eq!(
        tasks.len() as i64,
        TASKS - done_before,
        "the tasks left, once each"
    );
    assert!(task_opens.iter().all(|&at| at > resumed_at[0]), "{steps:?}");

    // The resumed root span links to the span the interrupted process exported.
    let runs = after.spans_named(names::RUN_SPAN);
    assert_eq!(runs.len(), 1);
    let links = &runs[0].links.links;
    assert_eq!(links.len(), 1, "{links:?}");
    assert_eq!(
        links[0].span_context,
        run_span_context(first.run_id.as_str(), 1)
    );
    // Same ids as the span the interrupted process exported (the link's copy is marked remote).
    assert_eq!(
        links[0].span_context.trace_id(),
        interrupted[0].span_context.trace_id()
    );
    assert_eq!(
        links[0].span_context.span_id(),
        interrupted[0].span_context.span_id()
    );

    // Only the task that was running at the stop ran its body twice.
    let bodies = bodies.lock().unwrap().clone();
    let twice: BTreeSet<i64> = bodies
        .iter()
        .copied()
        .filter(|i| bodies.iter().filter(|j| *j == i).count() > 1)
        .collect();
    assert_eq!(twice, BTreeSet::from([2]));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn every_task_attempt_of_a_real_run_is_a_child_span_of_its_run_span() {
    let sequence = Sequence::default();
    let telemetry = sequence.telemetry();
    let _guard = telemetry.set_default();
    run_the_plan_to_completion().await;

    let runs = telemetry.spans_named(names::RUN_SPAN);
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    let tasks = telemetry.spans_named(names::TASK_SPAN);
    assert_eq!(tasks.len(), TASKS as usize, "one span per attempt");
    let mut task_ids = BTreeSet::new();
    for task in &tasks {
        assert_eq!(task.parent_span_id, run.span_context.span_id());
        assert_eq!(task.span_context.trace_id(), run.span_context.trace_id());
        let fields = &task.attributes;
        assert!(matches!(attr(fields, "kind"), Some(v) if v.as_str() == "work"));
        assert!(matches!(attr(fields, "outcome"), Some(v) if v.as_str() == "complete"));
        assert_eq!(int(fields, "attempt"), 1);
        let Some(Value::String(task_id)) = attr(fields, "task_id") else {
            panic!("task span without a task_id: {fields:?}");
        };
        task_ids.insert(task_id.as_str().to_owned());
        // The end is the start plus a monotonic duration, so this holds whatever the clock does.
        assert!(task.end_time >= task.start_time, "{task:?}");
    }
    assert_eq!(task_ids.len(), TASKS as usize, "distinct task ids");
    // Each task span opens after the run span and closes before it.
    let steps = sequence.steps();
    let run_open = positions(&steps, Step::Opened(names::RUN_SPAN));
    let run_close = positions(&steps, Step::Closed(names::RUN_SPAN));
    assert_eq!((run_open.len(), run_close.len()), (1, 1), "{steps:?}");
    let task_opens = positions(&steps, Step::Opened(names::TASK_SPAN));
    let task_closes = positions(&steps, Step::Closed(names::TASK_SPAN));
    assert_eq!(task_opens.len(), TASKS as usize, "{steps:?}");
    assert_eq!(task_closes.len(), TASKS as usize, "{steps:?}");
    assert!(task_opens.iter().all(|&at| at > run_open[0]), "{steps:?}");
    assert!(task_closes.iter().all(|&at| at < run_close[0]), "{steps:?}");
}

/// A handler that ends every attempt with what `end(attempt)` says.
fn ending(end: fn(u32) -> Result<Finish, TaskFailure>) -> impl cairn_executor::Handler {
    handler_fn(move |ctx| async move { end(ctx.attempt()) })
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn each_exported_task_span_carries_the_outcome_its_attempt_ended_with() {
    let telemetry = TestTelemetry::new();
    let _guard = telemetry.set_default();
    let registry = Registry::new()
        .with("ok", ending(|_| Ok(Finish::Complete(Handoff::default()))))
        .with("unneeded", ending(|_| Ok(Finish::Skip(Handoff::default()))))
        .with(
            "flaky",
            ending(|attempt| match attempt {
                1 => Err(TaskFailure::retryable("flaky", "try again")),
                _ => Ok(Finish::Complete(Handoff::default())),
            }),
        )
        .with(
            "hopeless",
            ending(|_| Err(TaskFailure::Retryable(TaskError::new("down", "still down")))),
        )
        .with(
            "broken",
            ending(|_| Err(TaskFailure::permanent("bad_input", "cannot work"))),
        )
        .with(
            "boom",
            handler_fn(|_ctx| async {
                if true {
                    panic!("the handler exploded");
                }
                Ok(Finish::Complete(Handoff::default()))
            }),
        )
        .with(
            "slow",
            handler_fn(|_ctx| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(Finish::Complete(Handoff::default()))
            }),
        )
        .with_timeout("slow", Duration::from_secs(1));
    let mut phase = Phase::new("main");
    for (kind, max_attempts) in [
        ("ok", 3),
        ("unneeded", 3),
        ("flaky", 3),
        ("hopeless", 2),
        ("broken", 3),
        ("boom", 3),
        ("slow", 1),
    ] {
        phase.task(TaskSpec::new(kind).max_attempts(max_attempts), []);
    }
    let executor = Executor::new(
        Arc::new(MemoryFactory::new()),
        registry,
        ExecutorConfig::default().with_concurrency(8),
    )
    .unwrap();
    let report = executor
        .run(
            RunPlan::new("etl", "nightly").phase(phase),
            Start::Fresh,
            RunSignals::default(),
        )
        .await
        .unwrap();
    assert!(matches!(report.disposition, Disposition::Fail(_)));

    let mut seen: Vec<(String, i64, String)> = telemetry
        .spans_named(names::TASK_SPAN)
        .iter()
        .map(|span| {
            let fields = &span.attributes;
            (
                text(fields, "kind"),
                int(fields, "attempt"),
                text(fields, "outcome"),
            )
        })
        .collect();
    seen.sort();
    let expected: Vec<(String, i64, String)> = [
        ("boom", 1, "panic"),
        ("broken", 1, "fail"),
        ("flaky", 1, "retry"),
        ("flaky", 2, "complete"),
        ("hopeless", 1, "retry"),
        ("hopeless", 2, "fail"),
        ("ok", 1, "complete"),
        ("slow", 1, "timeout"),
        ("unneeded", 1, "skip"),
    ]
    .into_iter()
    .map(|(kind, attempt, outcome)| (kind.to_owned(), attempt, outcome.to_owned()))
    .collect();
    assert_eq!(seen, expected);

    // The metrics read the same labels.
    for (kind, outcome, count) in [
        ("boom", "panic", 1),
        ("flaky", "retry", 1),
        ("flaky", "complete", 1),
        ("hopeless", "fail", 1),
        ("slow", "timeout", 1),
    ] {
        assert_eq!(
            telemetry.counter(names::METRIC_TASK_OUTCOMES, &outcome_attrs(outcome, kind)),
            Some(count),
            "{kind} {outcome}"
        );
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_result_returned_before_a_cancel_is_recorded_as_its_span_reports_it() {
    let telemetry = TestTelemetry::new();
    let _guard = telemetry.set_default();
    let signals = RunSignals::default();
    let cancel = signals.cancel.clone();
    let registry = Registry::new().with(
        "work",
        handler_fn(move |_ctx| {
            let cancel = cancel.clone();
            async move {
                // The run is cancelled while this attempt finishes: its result still counts.
                cancel.cancel();
                Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
            }
        }),
    );
    let mut phase = Phase::new("main");
    let first = phase.task(TaskSpec::new("work"), []);
    phase.task(TaskSpec::new("work"), [first]);
    let executor = Executor::new(Arc::new(MemoryFactory::new()), registry, config()).unwrap();
    let report = executor
        .run(
            RunPlan::new("etl", "nightly").phase(phase),
            Start::Fresh,
            signals,
        )
        .await
        .unwrap();
    assert!(matches!(report.disposition, Disposition::Fail(_)));
    assert_eq!(report.counts.done, 1, "the finished attempt was recorded");
    assert_eq!(report.counts.pending, 1, "its dependent never started");

    let tasks = telemetry.spans_named(names::TASK_SPAN);
    assert_eq!(tasks.len(), 1);
    assert_eq!(text(&tasks[0].attributes, "outcome"), "complete");
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_run_whose_future_is_dropped_gives_back_its_queue_depth_and_reports_leave_running() {
    let telemetry = TestTelemetry::new();
    let _guard = telemetry.set_default();
    let signals = RunSignals::default();
    let bodies = Arc::default();
    let executor = Executor::new(
        Arc::new(MemoryFactory::new()),
        // Never completes task 2, so the run is mid-way when its caller gives up on it.
        registry(Some(2), &RunSignals::default(), &bodies),
        config(),
    )
    .unwrap();
    let depth = |status: &str| {
        telemetry.gauge(
            names::METRIC_QUEUE_DEPTH,
            &[KeyValue::new("status", status.to_owned())],
        )
    };
    // Boxed, so that dropping it below drops the run future itself.
    let mut run = Box::pin(executor.run(plan(), Start::Auto, signals));
    // Drive the run until the stalled task is running, then drop it as a `select!` would.
    tokio::select! {
        _ = &mut run => panic!("the run cannot finish: task 2 never returns"),
        () = async {
            while depth("running") != Some(1) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        } => {}
    }
    assert_eq!(depth("pending"), Some(3), "tasks 3 to 5 wait on task 2");
    drop(run);
    // The aborted drive task, which holds the run span too, is dropped at the next yield.
    tokio::task::yield_now().await;

    for status in ["pending", "running", "done"] {
        assert_eq!(depth(status), Some(0), "{status} after the drop");
    }
    let finished = telemetry.events(names::RUN_FINISHED);
    assert_eq!(finished.len(), 1);
    let fields = &finished[0].attributes;
    assert!(matches!(attr(fields, "outcome"), Some(v) if v.as_str() == "leave_running"));
    assert_eq!(int(fields, "tasks_done"), 2);
}
