//! The stable events reach OpenTelemetry as span events with their names and fields, inside a
//! run span and (wrapped in a span of their own) outside any span.

use cairn_telemetry::emit::{
    self, QueueDepth, Resumed, RunFinished, RunOutcomeName, RunStarted, TaskFailed,
};
use cairn_telemetry::names;
use cairn_telemetry::testing::TestTelemetry;
use opentelemetry::trace::Event;
use opentelemetry::{KeyValue, Value};

fn attr<'a>(event: &'a Event, key: &str) -> Option<&'a Value> {
    event
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn the_event(telemetry: &TestTelemetry, name: &str) -> Event {
    let mut events = telemetry.events(name);
    assert_eq!(events.len(), 1, "expected exactly one {name:?} event");
    events.remove(0)
}

fn s(value: &str) -> Value {
    Value::from(value.to_owned())
}

#[test]
fn lifecycle_events_inside_a_run_span_keep_names_and_fields() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = "run-7", workflow = "etl", scope = "daily", resumed = true,
            resumed_from_run_id = "run-7", resumed_from_epoch = 3u64);
        let _entered = run.enter();
        emit::run_started(&RunStarted {
            run_id: "run-7",
            workflow: "etl",
            scope: "daily",
            tasks_total: 5,
            resumed: true,
        });
        emit::resumed(&Resumed {
            run_id: "run-7",
            lease_epoch: 4,
            tasks_pending: 2,
            tasks_done: 2,
            tasks_reset: 1,
            tasks_failed: 0,
        });
        emit::queue_depth(
            "run-7",
            &QueueDepth {
                pending: 2,
                done: 3,
                ..QueueDepth::default()
            },
        );
        emit::run_finished(&RunFinished {
            run_id: "run-7",
            outcome: RunOutcomeName::Complete,
            resumed: true,
            duration_ms: 1500,
            tasks_done: 5,
            tasks_failed: 0,
            tasks_skipped: 0,
            tasks_blocked: 0,
        });
    });

    let runs = telemetry.spans_named(names::RUN_SPAN);
    assert_eq!(runs.len(), 1);
    let names_in_order: Vec<&str> = runs[0].events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(
        names_in_order,
        [names::RUN_STARTED, names::RESUMED, names::RUN_FINISHED],
        "queue depth feeds metrics only, never the run span"
    );

    let started = the_event(&telemetry, names::RUN_STARTED);
    assert_eq!(attr(&started, "run_id"), Some(&s("run-7")));
    assert_eq!(attr(&started, "workflow"), Some(&s("etl")));
    assert_eq!(attr(&started, "tasks_total"), Some(&Value::I64(5)));
    assert_eq!(attr(&started, "resumed"), Some(&Value::Bool(true)));

    let resumed = the_event(&telemetry, names::RESUMED);
    assert_eq!(attr(&resumed, "lease_epoch"), Some(&Value::I64(4)));
    assert_eq!(attr(&resumed, "tasks_reset"), Some(&Value::I64(1)));

    let finished = the_event(&telemetry, names::RUN_FINISHED);
    assert_eq!(attr(&finished, "outcome"), Some(&s("complete")));
    assert_eq!(attr(&finished, "resumed"), Some(&Value::Bool(true)));
    assert_eq!(attr(&finished, "duration_ms"), Some(&Value::I64(1500)));
}

#[test]
fn decision_events_carry_their_fields() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = "run-9", workflow = "etl", scope = "daily", resumed = false);
        let _entered = run.enter();
        emit::failed_resume_prompted("run-8", "etl", "daily");
        emit::run_abandoned("run-8", "failed");
        emit::fresh_run_forced("run-9", "run-8");
        emit::state_quarantined("run-9", "corrupt_journal", "/var/cairn/quarantine/run-9");
        emit::task_reset("run-9", "t7", Some("extract"), "http", 2, "pending");
        emit::begin_degraded("run-9", "disk full");
        emit::breaker_tripped("nightly", 5, "timeout");
        emit::resumed_by_id("run-9", "paused", 6);
        emit::job_revived("nightly", true);
    });

    let cases: [(&str, &[(&str, Value)]); 9] = [
        (
            names::FAILED_RESUME_PROMPTED,
            &[
                ("run_id", s("run-8")),
                ("workflow", s("etl")),
                ("scope", s("daily")),
            ],
        ),
        (
            names::RUN_ABANDONED,
            &[("run_id", s("run-8")), ("previous_status", s("failed"))],
        ),
        (
            names::FRESH_RUN_FORCED,
            &[("run_id", s("run-9")), ("failed_run_id", s("run-8"))],
        ),
        (
            names::STATE_QUARANTINED,
            &[
                ("run_id", s("run-9")),
                ("reason", s("corrupt_journal")),
                ("location", s("/var/cairn/quarantine/run-9")),
            ],
        ),
        (
            names::TASK_RESET,
            &[
                ("run_id", s("run-9")),
                ("task_id", s("t7")),
                ("task_name", s("extract")),
                ("kind", s("http")),
                ("attempt", Value::I64(2)),
                ("now", s("pending")),
            ],
        ),
        (names::BEGIN_DEGRADED, &[("run_id", s("run-9"))]),
        (
            names::BREAKER_TRIPPED,
            &[
                ("job_id", s("nightly")),
                ("consecutive_errors", Value::I64(5)),
                ("last_error", s("timeout")),
            ],
        ),
        (
            names::RESUMED_BY_ID,
            &[
                ("run_id", s("run-9")),
                ("previous_status", s("paused")),
                ("lease_epoch", Value::I64(6)),
            ],
        ),
        (
            names::JOB_REVIVED,
            &[("job_id", s("nightly")), ("forced", Value::Bool(true))],
        ),
    ];
    for (name, fields) in cases {
        let event = the_event(&telemetry, name);
        for (key, value) in fields {
            assert_eq!(attr(&event, key), Some(value), "{name}: field {key}");
        }
    }

    // `error` is a field name tracing-opentelemetry treats specially; it must survive as a
    // plain attribute and must not rename the event or fail the run span.
    let degraded = the_event(&telemetry, names::BEGIN_DEGRADED);
    let error = attr(&degraded, "error").expect("begin_degraded keeps its error field");
    assert!(
        error.as_str().contains("disk full"),
        "error attribute: {error:?}"
    );
    let run = &telemetry.spans_named(names::RUN_SPAN)[0];
    assert_eq!(run.status, opentelemetry::trace::Status::Unset);
}

fn failure(attempt: u32, will_retry: bool) -> TaskFailed<'static> {
    TaskFailed {
        run_id: "run-4",
        task_id: "t2",
        task_name: Some("fetch-prices"),
        kind: "http",
        attempt,
        max_attempts: 3,
        error_kind: "network",
        error_message: "connection reset by peer",
        will_retry,
    }
}

#[test]
fn task_failed_keeps_its_fields_in_the_current_span_or_the_parent_it_names() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = "run-4", workflow = "etl", scope = "daily", resumed = false);
        {
            let _entered = run.enter();
            emit::task_failed(None, &failure(1, true));
        }
        // Not entered: named as the parent, as an attempt without a task span does.
        emit::task_failed(Some(&run), &failure(3, false));
    });

    let runs = telemetry.spans_named(names::RUN_SPAN);
    assert_eq!(runs.len(), 1);
    let events: Vec<&Event> = runs[0]
        .events
        .iter()
        .filter(|event| event.name == names::TASK_FAILED)
        .collect();
    assert_eq!(
        events.len(),
        2,
        "both are the run span's: {:?}",
        runs[0].events
    );
    for (event, (attempt, will_retry)) in events.iter().zip([(1, true), (3, false)]) {
        assert_eq!(attr(event, "level"), Some(&s("WARN")));
        assert_eq!(attr(event, "run_id"), Some(&s("run-4")));
        assert_eq!(attr(event, "task_id"), Some(&s("t2")));
        assert_eq!(attr(event, "task_name"), Some(&s("fetch-prices")));
        assert_eq!(attr(event, "kind"), Some(&s("http")));
        assert_eq!(attr(event, "attempt"), Some(&Value::I64(attempt)));
        assert_eq!(attr(event, "max_attempts"), Some(&Value::I64(3)));
        assert_eq!(attr(event, "error.kind"), Some(&s("network")));
        assert_eq!(
            attr(event, "error.message"),
            Some(&s("connection reset by peer"))
        );
        assert_eq!(attr(event, "will_retry"), Some(&Value::Bool(will_retry)));
    }
    assert_eq!(
        runs[0].status,
        opentelemetry::trace::Status::Unset,
        "a failed attempt does not fail the run span"
    );
}

#[test]
fn a_filtered_fmt_layer_beside_the_export_layers_leaves_what_they_record_alone() {
    // `docs/telemetry.md`'s "Building your own subscriber", over in-memory exporters: the
    // filter keeps the DEBUG `queue_depth` out of the logs, not out of the metrics.
    use tracing_subscriber::Layer as _;
    let telemetry = TestTelemetry::composed(|providers| {
        let logs = tracing_subscriber::EnvFilter::new(cairn_telemetry::DEFAULT_FILTER);
        cairn_telemetry::layers::fmt_layer(cairn_telemetry::LogFormat::Human)
            .with_filter(logs)
            .and_then(cairn_telemetry::layers::layer(providers))
    });
    telemetry.in_scope(|| {
        emit::queue_depth(
            "run-5",
            &QueueDepth {
                pending: 4,
                ..QueueDepth::default()
            },
        );
    });
    assert_eq!(
        telemetry.gauge(
            names::METRIC_QUEUE_DEPTH,
            &[KeyValue::new("status", "pending")]
        ),
        Some(4)
    );
}

#[test]
fn events_outside_any_span_are_exported_in_a_span_of_their_own() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        emit::failed_resume_prompted("run-3", "etl", "daily");
        emit::breaker_tripped("nightly", 3, "boom");
        // Not a cairn event: left to the host's own instrumentation.
        tracing::info!(target: "other", "unrelated");
    });

    let spans = telemetry.spans();
    let names_seen: Vec<&str> = spans.iter().map(|span| span.name.as_ref()).collect();
    assert_eq!(
        names_seen,
        [names::FAILED_RESUME_PROMPTED, names::BREAKER_TRIPPED]
    );

    let prompted = the_event(&telemetry, names::FAILED_RESUME_PROMPTED);
    assert_eq!(attr(&prompted, "run_id"), Some(&s("run-3")));
    assert_eq!(attr(&prompted, "scope"), Some(&s("daily")));
    assert!(
        spans[0]
            .attributes
            .contains(&KeyValue::new("run_id", "run-3")),
        "the wrapping span carries the fields too"
    );
    let tripped = the_event(&telemetry, names::BREAKER_TRIPPED);
    assert_eq!(attr(&tripped, "consecutive_errors"), Some(&Value::I64(3)));
}

#[test]
fn task_spans_nest_under_the_run_span_and_record_their_outcome() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = "run-1", workflow = "w", scope = "s", resumed = false);
        let _entered = run.enter();
        let task = tracing::info_span!(target: "cairn", names::TASK_SPAN,
            run_id = "run-1", task_id = "t1", kind = "shell", attempt = 1u32,
            outcome = tracing::field::Empty);
        let entered_task = task.enter();
        emit::task_reset("run-1", "t0", None, "shell", 1, "pending");
        task.record("outcome", "complete");
        drop(entered_task);
    });

    let run = &telemetry.spans_named(names::RUN_SPAN)[0];
    let task = &telemetry.spans_named(names::TASK_SPAN)[0];
    assert_eq!(task.parent_span_id, run.span_context.span_id());
    assert_eq!(task.span_context.trace_id(), run.span_context.trace_id());
    assert!(
        task.attributes
            .contains(&KeyValue::new("outcome", "complete"))
    );
    assert!(task.attributes.contains(&KeyValue::new("task_id", "t1")));
    assert_eq!(task.events.events[0].name, names::TASK_RESET);
}

#[test]
fn tasks_spawned_on_a_current_thread_runtime_see_the_scoped_subscriber() {
    let telemetry = TestTelemetry::new();
    let _default = telemetry.set_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        use tracing::Instrument as _;
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = "run-s", workflow = "w", scope = "s", resumed = false);
        tokio::spawn(async { emit::run_abandoned("run-s", "paused") }.instrument(run))
            .await
            .expect("spawned task");
    });
    let runs = telemetry.spans_named(names::RUN_SPAN);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].events.events[0].name, names::RUN_ABANDONED);
}

#[test]
fn frequent_queue_depth_events_never_crowd_run_finished_off_the_run_span() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = "long-run", workflow = "w", scope = "s", resumed = false);
        let _entered = run.enter();
        // More than the SDK's 128 events per span.
        for pending in 0..200 {
            emit::queue_depth(
                "long-run",
                &QueueDepth {
                    pending,
                    ..QueueDepth::default()
                },
            );
        }
        emit::run_finished(&RunFinished {
            run_id: "long-run",
            outcome: RunOutcomeName::Complete,
            resumed: false,
            duration_ms: 1,
            tasks_done: 200,
            tasks_failed: 0,
            tasks_skipped: 0,
            tasks_blocked: 0,
        });
    });
    let runs = telemetry.spans_named(names::RUN_SPAN);
    let names_on_span: Vec<&str> = runs[0].events.iter().map(|e| e.name.as_ref()).collect();
    assert_eq!(names_on_span, [names::RUN_FINISHED]);
}

/// What a host routing target `cairn` by name sees of one event: its target, its tracing
/// name and its message.
#[derive(Clone, Default)]
struct Routed(std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Routed {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message<'a>(&'a mut String);
        impl tracing::field::Visit for Message<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    *self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = String::new();
        event.record(&mut Message(&mut message));
        let meta = event.metadata();
        self.0
            .lock()
            .unwrap()
            .push((meta.target().to_owned(), meta.name().to_owned(), message));
    }
}

#[test]
fn every_emitter_names_its_event_by_the_stable_name_on_the_cairn_target() {
    use tracing_subscriber::layer::SubscriberExt as _;

    let routed = Routed::default();
    let subscriber = tracing_subscriber::registry().with(routed.clone());
    tracing::subscriber::with_default(subscriber, || {
        // A parallel test without a subscriber must not leave a callsite cached as unwanted.
        tracing::callsite::rebuild_interest_cache();
        emit::run_started(&RunStarted {
            run_id: "r",
            workflow: "w",
            scope: "s",
            tasks_total: 1,
            resumed: false,
        });
        emit::resumed(&Resumed {
            run_id: "r",
            lease_epoch: 2,
            tasks_pending: 1,
            tasks_done: 0,
            tasks_reset: 0,
            tasks_failed: 0,
        });
        emit::run_finished(&RunFinished {
            run_id: "r",
            outcome: RunOutcomeName::Complete,
            resumed: true,
            duration_ms: 1,
            tasks_done: 1,
            tasks_failed: 0,
            tasks_skipped: 0,
            tasks_blocked: 0,
        });
        emit::failed_resume_prompted("r", "w", "s");
        emit::run_abandoned("r", "failed");
        emit::run_abandoned_forced("r", "running", "pid 1 on host", 3);
        emit::fresh_run_forced("r2", "r");
        emit::resumed_by_id("r", "paused", 2);
        emit::state_quarantined("r", "bad checksum", "quarantine/r");
        emit::task_reset("r", "t1", None, "k", 1, "pending");
        emit::task_failed(None, &failure(1, true));
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN, run_id = "r");
        emit::task_failed(Some(&run), &failure(2, false));
        emit::begin_degraded("r", "disk full");
        emit::breaker_tripped("job", 3, "down");
        emit::job_revived("job", false);
        emit::queue_depth("r", &QueueDepth::default());
    });

    let expected = [
        names::RUN_STARTED,
        names::RESUMED,
        names::RUN_FINISHED,
        names::FAILED_RESUME_PROMPTED,
        names::RUN_ABANDONED,
        names::RUN_ABANDONED,
        names::FRESH_RUN_FORCED,
        names::RESUMED_BY_ID,
        names::STATE_QUARANTINED,
        names::TASK_RESET,
        names::TASK_FAILED,
        names::TASK_FAILED,
        names::BEGIN_DEGRADED,
        names::BREAKER_TRIPPED,
        names::JOB_REVIVED,
        names::QUEUE_DEPTH,
    ];
    let seen = routed.0.lock().unwrap().clone();
    let want: Vec<(String, String, String)> = expected
        .iter()
        .map(|name| {
            (
                names::TARGET.to_owned(),
                (*name).to_owned(),
                (*name).to_owned(),
            )
        })
        .collect();
    assert_eq!(seen, want);
}
