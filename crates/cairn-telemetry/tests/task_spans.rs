//! Task spans take cairn's own export path (`task_span::TaskSpanLayer`), not
//! tracing-opentelemetry's: they must still arrive with their name, fields, parent run span,
//! events and status, and spans opened inside a task must still be its children.

use cairn_telemetry::names;
use cairn_telemetry::testing::TestTelemetry;
use opentelemetry::trace::{Status, TraceContextExt as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::{BatchSpanProcessor, InMemorySpanExporter, SpanData};
use tracing_subscriber::layer::SubscriberExt as _;

fn attr<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn s(value: &str) -> Value {
    Value::from(value.to_owned())
}

fn the_span(telemetry: &TestTelemetry, name: &str) -> SpanData {
    let mut spans = telemetry.spans_named(name);
    assert_eq!(spans.len(), 1, "expected exactly one {name:?} span");
    spans.remove(0)
}

/// A task id whose `Display` is not its `Debug`, like the executor's `TaskId`.
struct Id(u64);

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t{}", self.0)
    }
}

fn task_span(id: &Id, kind: &str, attempt: u32) -> tracing::Span {
    tracing::info_span!(target: "cairn", names::TASK_SPAN,
        task_id = %id, kind = %kind, attempt = i64::from(attempt),
        outcome = tracing::field::Empty)
}

fn run_span(run_id: &str) -> tracing::Span {
    tracing::info_span!(target: "cairn", names::RUN_SPAN,
        run_id, workflow = "w", scope = "s", resumed = false)
}

#[test]
fn a_task_span_carries_its_fields_and_its_run_span_as_parent() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        let run = run_span("run-1");
        let _entered = run.enter();
        let task = task_span(&Id(42), "shell", 3);
        task.in_scope(|| {});
        task.record("outcome", "retry");
    });

    let run = the_span(&telemetry, names::RUN_SPAN);
    let task = the_span(&telemetry, names::TASK_SPAN);
    assert_eq!(task.span_context.trace_id(), run.span_context.trace_id());
    assert_eq!(task.parent_span_id, run.span_context.span_id());
    assert!(!task.parent_span_is_remote);
    assert!(task.span_context.is_sampled());
    assert_ne!(task.span_context.span_id(), run.span_context.span_id());

    let fields = &task.attributes;
    assert_eq!(attr(fields, "task_id"), Some(&s("t42")));
    assert_eq!(attr(fields, "kind"), Some(&s("shell")));
    assert_eq!(attr(fields, "attempt"), Some(&Value::I64(3)));
    assert_eq!(attr(fields, "outcome"), Some(&s("retry")));
    assert_eq!(attr(fields, "level"), Some(&s("INFO")));
    assert_eq!(attr(fields, "target"), Some(&s("cairn")));
    assert_eq!(
        fields.len(),
        6,
        "no attributes beyond the schema: {fields:?}"
    );
    assert_eq!(task.status, Status::Unset);
    assert!(task.start_time <= task.end_time);
    assert!(run.start_time <= task.start_time);
}

#[test]
fn fields_outside_the_schema_are_exported_as_tracing_opentelemetry_would() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        let run = run_span("run-2");
        let _entered = run.enter();
        let task = tracing::info_span!(target: "cairn", names::TASK_SPAN,
            task_id = "t1", kind = "http", attempt = 1u32, shard = 7i64, hot = true,
            outcome = tracing::field::Empty);
        task.record("outcome", "exploded");
    });
    let task = the_span(&telemetry, names::TASK_SPAN);
    let fields = &task.attributes;
    // tracing-opentelemetry formats `u64` through `Debug`; so does the task layer.
    assert_eq!(attr(fields, "attempt"), Some(&s("1")));
    assert_eq!(attr(fields, "shard"), Some(&Value::I64(7)));
    assert_eq!(attr(fields, "hot"), Some(&Value::Bool(true)));
    assert_eq!(attr(fields, "outcome"), Some(&s("exploded")));
}

#[test]
fn events_inside_a_task_span_become_its_span_events_and_an_error_sets_its_status() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        let run = run_span("run-3");
        let _entered = run.enter();
        let task = task_span(&Id(1), "shell", 1);
        task.in_scope(|| {
            tracing::info!(target: "handler", rows = 12i64, "fetched rows");
            tracing::error!(target: "handler", code = "E42", "write failed");
        });
        // An event with the task span as its explicit parent, emitted outside it.
        tracing::warn!(target: "handler", parent: &task, "late warning");
        task.record("outcome", "fail");
    });

    let run = the_span(&telemetry, names::RUN_SPAN);
    assert!(
        run.events.is_empty(),
        "the run span gets none of the task's events: {:?}",
        run.events.events
    );
    let task = the_span(&telemetry, names::TASK_SPAN);
    let events: Vec<&str> = task.events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(events, ["fetched rows", "write failed", "late warning"]);
    let fetched = &task.events.events[0].attributes;
    assert_eq!(attr(fetched, "rows"), Some(&Value::I64(12)));
    assert_eq!(attr(fetched, "level"), Some(&s("INFO")));
    assert_eq!(attr(fetched, "target"), Some(&s("handler")));
    assert_eq!(
        attr(&task.events.events[1].attributes, "code"),
        Some(&s("E42"))
    );
    assert_eq!(task.status, Status::error(""));
    assert_eq!(run.status, Status::Unset);
}

#[test]
fn queue_depth_inside_a_task_span_stays_out_of_its_events() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        let run = run_span("run-4");
        let _entered = run.enter();
        let task = task_span(&Id(1), "shell", 1);
        task.in_scope(|| {
            cairn_telemetry::emit::queue_depth(
                "run-4",
                &cairn_telemetry::emit::QueueDepth::default(),
            );
        });
    });
    let task = the_span(&telemetry, names::TASK_SPAN);
    assert!(task.events.is_empty(), "{:?}", task.events.events);
}

#[test]
fn inside_a_task_its_context_is_current_and_spans_opened_there_are_its_children() {
    let telemetry = TestTelemetry::new();
    let seen = telemetry.in_scope(|| {
        let run = run_span("run-5");
        let _entered = run.enter();
        let task = task_span(&Id(9), "shell", 1);
        let seen = task.in_scope(|| {
            let current = opentelemetry::Context::current()
                .span()
                .span_context()
                .clone();
            let child = tracing::info_span!(target: "handler", "fetch", url = "https://x");
            child.in_scope(|| tracing::info!(target: "handler", "inside fetch"));
            current
        });
        task.record("outcome", "complete");
        seen
    });

    let task = the_span(&telemetry, names::TASK_SPAN);
    assert_eq!(seen.span_id(), task.span_context.span_id());
    assert_eq!(seen.trace_id(), task.span_context.trace_id());
    let child = the_span(&telemetry, "fetch");
    assert_eq!(child.parent_span_id, task.span_context.span_id());
    assert_eq!(child.span_context.trace_id(), task.span_context.trace_id());
    assert_eq!(child.events.events[0].name, "inside fetch");
    assert!(
        task.events.is_empty(),
        "the child's event stays on the child"
    );
}

#[test]
fn a_task_span_without_a_run_span_is_a_root_of_its_own() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        let task = task_span(&Id(5), "shell", 1);
        task.record("outcome", "complete");
    });
    let task = the_span(&telemetry, names::TASK_SPAN);
    assert!(task.span_context.is_valid());
    assert_eq!(task.parent_span_id, opentelemetry::trace::SpanId::INVALID);
}

/// An exporter that keeps spans but holds its first export until the gate opens, so every
/// span ended meanwhile has to wait in the batch processor's queue.
#[derive(Debug, Clone, Default)]
struct GatedExporter {
    inner: InMemorySpanExporter,
    open: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl GatedExporter {
    fn open(&self) {
        let (lock, opened) = &*self.open;
        *lock.lock().unwrap() = true;
        opened.notify_all();
    }
}

impl opentelemetry_sdk::trace::SpanExporter for GatedExporter {
    async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        {
            let (lock, opened) = &*self.open;
            let mut is_open = lock.lock().unwrap();
            while !*is_open {
                is_open = opened.wait(is_open).unwrap();
            }
        }
        self.inner.export(batch).await
    }
}

#[test]
fn a_burst_of_task_spans_waits_in_the_batch_queue_init_configures_instead_of_being_dropped() {
    // Far more than the SDK's default queue (2,048), well within cairn's.
    const TASKS: u64 = 20_000;
    let exporter = GatedExporter::default();
    let processor = BatchSpanProcessor::builder(exporter.clone())
        .with_batch_config(cairn_telemetry::span_batch_config())
        .build();
    let traces = cairn_telemetry::link::tracer_provider_builder()
        .with_span_processor(processor)
        .build();
    let meters = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    let providers = cairn_telemetry::Providers::new(traces, meters);
    let subscriber =
        tracing_subscriber::registry().with(cairn_telemetry::layers::layer(&providers));
    tracing::subscriber::with_default(subscriber, || {
        let run = run_span("burst");
        let _entered = run.enter();
        for n in 0..TASKS {
            let task = task_span(&Id(n), "noop", 1);
            task.record("outcome", "complete");
        }
    });
    exporter.open();
    providers.traces.force_flush().expect("flush");
    let spans = exporter.inner.get_finished_spans().expect("spans");
    let tasks = spans
        .iter()
        .filter(|span| span.name == names::TASK_SPAN)
        .count() as u64;
    assert_eq!(tasks, TASKS, "the batch processor dropped task spans");
    providers.traces.shutdown().expect("shutdown");
}

/// A task span with `run` as its explicit parent, as the executor opens them.
fn task_span_under(run: &tracing::Span, id: u64) -> tracing::Span {
    tracing::info_span!(target: "cairn", parent: run, names::TASK_SPAN,
        task_id = %Id(id), kind = "shell", attempt = 1i64,
        outcome = tracing::field::Empty)
}

#[test]
fn task_spans_opened_under_explicit_parents_belong_to_their_own_run_on_any_subscriber() {
    let first = TestTelemetry::new();
    let second = TestTelemetry::new();
    // Runs one after the other on one thread, the second on another subscriber (whose span
    // ids repeat the first one's): each task belongs to the run it was opened in.
    for (telemetry, run_id) in [(&first, "run-1"), (&second, "run-2"), (&first, "run-3")] {
        telemetry.in_scope(|| {
            let run = run_span(run_id);
            for id in 0..3 {
                let task = task_span_under(&run, id);
                task.in_scope(|| {});
                task.record("outcome", "complete");
            }
        });
    }

    for (telemetry, runs) in [(&first, 2), (&second, 1)] {
        let run_spans = telemetry.spans_named(names::RUN_SPAN);
        assert_eq!(run_spans.len(), runs);
        let tasks = telemetry.spans_named(names::TASK_SPAN);
        assert_eq!(tasks.len(), 3 * runs);
        for run in &run_spans {
            let children: Vec<&SpanData> = tasks
                .iter()
                .filter(|task| task.parent_span_id == run.span_context.span_id())
                .collect();
            assert_eq!(children.len(), 3, "{:?}", run.attributes);
            for task in children {
                assert_eq!(task.span_context.trace_id(), run.span_context.trace_id());
                assert!(!task.parent_span_is_remote);
                assert!(task.span_context.is_sampled());
            }
        }
    }
}

/// A task span's outcome is recorded when its attempt ends; the span may close later (a
/// handle kept alive elsewhere). The exported span and the task duration end at the outcome.
#[test]
fn a_task_span_ends_when_its_outcome_is_recorded_not_when_it_closes() {
    let telemetry = TestTelemetry::new();
    let before_open = std::time::Instant::now();
    let (after_outcome, took_at_most, closed_at) = telemetry.in_scope(|| {
        let task = task_span(&Id(7), "shell", 1);
        task.in_scope(|| {});
        task.record("outcome", "complete");
        let after_outcome = std::time::SystemTime::now();
        let took_at_most = before_open.elapsed();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let closed_at = std::time::SystemTime::now();
        drop(task);
        (after_outcome, took_at_most, closed_at)
    });

    let task = the_span(&telemetry, names::TASK_SPAN);
    let slack = std::time::Duration::from_millis(1);
    assert!(
        task.end_time <= after_outcome + slack,
        "ended at the outcome ({:?}), not at the close ({:?}): {:?}",
        after_outcome,
        closed_at,
        task.end_time
    );
    let duration = telemetry
        .histogram(
            names::METRIC_TASK_DURATION,
            &[KeyValue::new("outcome", "complete")],
        )
        .expect("the attempt is timed");
    assert_eq!(duration.count, 1);
    assert!(
        duration.sum <= took_at_most.as_secs_f64(),
        "timed from open to outcome (at most {took_at_most:?}), got {} s",
        duration.sum
    );
}
