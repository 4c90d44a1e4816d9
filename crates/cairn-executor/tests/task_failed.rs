//! `orchestrator task_failed`: every failed attempt (a retryable or permanent error, a
//! timeout, a panic) emits it at WARN with the run, the task, the attempt, the error's kind
//! and text and whether the task will be retried, inside the attempt's task span, or inside
//! the run span when no task span was opened.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_checkpoint::MemoryFactory;
use cairn_executor::{
    Disposition, Executor, ExecutorConfig, Finish, Phase, Registry, RunPlan, RunReport, RunSignals,
    Start, TaskFailure, handler_fn,
};
use cairn_queue::{Handoff, TaskSpec};
use cairn_telemetry::names;
use tracing_subscriber::layer::SubscriberExt as _;

/// One `task_failed` event: its level, its fields as text, and the name of its parent span.
#[derive(Debug, Clone)]
struct Failed {
    level: tracing::Level,
    fields: BTreeMap<String, String>,
    parent: Option<String>,
}

impl Failed {
    fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no field {name}: {self:?}"))
    }
}

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Failed>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0
            .insert(field.name().to_owned(), format!("i64:{value}"));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S> tracing_subscriber::Layer<S> for Seen
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if meta.target() != names::TARGET || meta.name() != names::TASK_FAILED {
            return;
        }
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let parent = ctx.event_span(event).map(|span| span.name().to_owned());
        self.0.lock().unwrap().push(Failed {
            level: *meta.level(),
            fields,
            parent,
        });
    }
}

/// Runs `phase` fresh with `registry` under a subscriber that records every `task_failed`
/// event; with `hide_task_spans`, a global filter refuses the task spans, so none is opened.
async fn run_recording(
    registry: Registry,
    phase: Phase,
    hide_task_spans: bool,
) -> (RunReport, Vec<Failed>) {
    // As in `LogBuffer::install`: a parallel test with no subscriber must not leave a
    // callsite cached as uninterested.
    static ANCHOR: std::sync::Once = std::sync::Once::new();
    ANCHOR.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
    let seen = Seen::default();
    // A global filter: a task span it refuses is not opened at all (`Span::is_disabled`).
    let filter = tracing_subscriber::filter::filter_fn(move |meta| {
        !(hide_task_spans && meta.name() == names::TASK_SPAN)
    });
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(seen.clone());
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    let executor = Executor::new(
        Arc::new(MemoryFactory::new()),
        registry,
        ExecutorConfig::default(),
    )
    .unwrap();
    let report = executor
        .run(
            RunPlan::new("wf", "scope").phase(phase),
            Start::Fresh,
            RunSignals::default(),
        )
        .await
        .unwrap();
    drop(guard);
    let failed = seen.0.lock().unwrap().clone();
    (report, failed)
}

fn one_task(kind: &str, max_attempts: u32) -> Phase {
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new(kind).max_attempts(max_attempts), []);
    phase
}

#[tokio::test(start_paused = true)]
async fn a_retried_then_permanent_failure_emits_one_event_per_attempt_in_its_task_span() {
    let registry = Registry::new().with(
        "flaky",
        handler_fn(|ctx| async move {
            match ctx.attempt() {
                1 => Err(TaskFailure::retryable("network", "connection reset")),
                _ => Err(TaskFailure::permanent("bad_input", "no such file: a.txt")),
            }
        }),
    );
    let (report, failed) = run_recording(registry, one_task("flaky", 3), false).await;
    assert!(matches!(report.disposition, Disposition::Fail(_)));
    assert_eq!(failed.len(), 2, "{failed:?}");
    let run_id = report.run_id.as_str();
    for (event, attempt) in failed.iter().zip(1..) {
        assert_eq!(event.level, tracing::Level::WARN);
        assert_eq!(event.parent.as_deref(), Some(names::TASK_SPAN), "{event:?}");
        assert_eq!(event.field("message"), names::TASK_FAILED);
        assert_eq!(event.field("run_id"), run_id);
        assert_eq!(event.field("task_id"), "t0");
        assert_eq!(event.field("kind"), "flaky");
        assert_eq!(event.field("attempt"), format!("i64:{attempt}"));
        assert_eq!(event.field("max_attempts"), "i64:3");
    }
    let retried = &failed[0];
    assert_eq!(retried.field("error.kind"), "network");
    assert_eq!(retried.field("error.message"), "connection reset");
    assert_eq!(retried.field("will_retry"), "true");
    let permanent = &failed[1];
    assert_eq!(permanent.field("error.kind"), "bad_input");
    assert_eq!(permanent.field("error.message"), "no such file: a.txt");
    assert_eq!(permanent.field("will_retry"), "false");
}

#[tokio::test(start_paused = true)]
async fn a_retryable_failure_on_the_last_attempt_will_not_be_retried() {
    let registry = Registry::new().with(
        "flaky",
        handler_fn(|_ctx| async { Err(TaskFailure::retryable("network", "down")) }),
    );
    let (_, failed) = run_recording(registry, one_task("flaky", 2), false).await;
    let retries: Vec<&str> = failed.iter().map(|f| f.field("will_retry")).collect();
    assert_eq!(retries, ["true", "false"], "{failed:?}");
}

#[tokio::test(start_paused = true)]
async fn timeouts_and_panics_are_reported_with_cairns_own_error_kinds() {
    let registry = Registry::new()
        .with(
            "slow",
            handler_fn(|_ctx| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                Ok(Finish::Complete(Handoff::default()))
            }),
        )
        .with_timeout("slow", Duration::from_millis(10))
        .with(
            "boom",
            handler_fn(|_ctx| async { panic!("the handler exploded") }),
        );
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("slow").max_attempts(2), []);
    phase.task(TaskSpec::new("boom").max_attempts(3), []);
    let (_, failed) = run_recording(registry, phase, false).await;

    let slow: Vec<&Failed> = failed
        .iter()
        .filter(|f| f.field("kind") == "slow")
        .collect();
    assert_eq!(slow.len(), 2, "{failed:?}");
    for (event, (attempt, will_retry)) in slow.iter().zip([("i64:1", "true"), ("i64:2", "false")]) {
        assert_eq!(event.field("attempt"), attempt);
        assert_eq!(event.field("error.kind"), "timeout");
        assert!(event.field("error.message").contains("10ms"), "{event:?}");
        assert_eq!(event.field("will_retry"), will_retry);
        assert_eq!(event.parent.as_deref(), Some(names::TASK_SPAN));
    }
    let boom: Vec<&Failed> = failed
        .iter()
        .filter(|f| f.field("kind") == "boom")
        .collect();
    assert_eq!(boom.len(), 1, "a panic is permanent: {failed:?}");
    assert_eq!(boom[0].field("error.kind"), "panic");
    assert!(
        boom[0]
            .field("error.message")
            .contains("the handler exploded"),
        "{boom:?}"
    );
    assert_eq!(boom[0].field("will_retry"), "false");
    assert_eq!(boom[0].parent.as_deref(), Some(names::TASK_SPAN));
}

#[tokio::test(start_paused = true)]
async fn without_a_task_span_the_event_is_inside_the_run_span() {
    let registry = Registry::new().with(
        "broken",
        handler_fn(|_ctx| async { Err(TaskFailure::permanent("config", "no token")) }),
    );
    let (_, failed) = run_recording(registry, one_task("broken", 1), true).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].parent.as_deref(), Some(names::RUN_SPAN));
    assert_eq!(failed[0].field("error.kind"), "config");
}

#[tokio::test(start_paused = true)]
async fn attempts_that_succeed_emit_none() {
    let registry = Registry::new().with(
        "fine",
        handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
    );
    let (report, failed) = run_recording(registry, one_task("fine", 1), false).await;
    assert_eq!(report.disposition, Disposition::Complete);
    assert!(failed.is_empty(), "{failed:?}");
}
