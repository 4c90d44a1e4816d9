//! Metrics derived from simulated spans and events, read back from the in-memory exporter.

use cairn_telemetry::emit::{self, QueueDepth, Resumed, RunFinished, RunOutcomeName};
use cairn_telemetry::names;
use cairn_telemetry::testing::TestTelemetry;
use opentelemetry::KeyValue;

fn task(kind: &str, outcome: &str) {
    let span = tracing::info_span!(target: "cairn", names::TASK_SPAN,
        run_id = "r", task_id = "t", kind = kind, attempt = 1i64,
        outcome = tracing::field::Empty);
    let _entered = span.enter();
    span.record("outcome", outcome);
}

fn finished(run_id: &str, outcome: RunOutcomeName, resumed: bool, duration_ms: u64) {
    emit::run_finished(&RunFinished {
        run_id,
        outcome,
        resumed,
        duration_ms,
        tasks_done: 0,
        tasks_failed: 0,
        tasks_skipped: 0,
        tasks_blocked: 0,
    });
}

#[test]
fn task_outcomes_are_counted_and_timed_by_outcome_and_kind() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        task("shell", "complete");
        task("shell", "complete");
        task("shell", "retry");
        task("http", "complete");
        // A span closed without an outcome still counts, as `unknown`.
        let _ = tracing::info_span!(target: "cairn", names::TASK_SPAN, kind = "shell");
    });

    let shell_complete = [
        KeyValue::new("outcome", "complete"),
        KeyValue::new("kind", "shell"),
    ];
    assert_eq!(
        telemetry.counter(names::METRIC_TASK_OUTCOMES, &shell_complete),
        Some(2)
    );
    assert_eq!(
        telemetry.counter(
            names::METRIC_TASK_OUTCOMES,
            &[KeyValue::new("outcome", "retry")]
        ),
        Some(1)
    );
    assert_eq!(
        telemetry.counter(
            names::METRIC_TASK_OUTCOMES,
            &[
                KeyValue::new("outcome", "complete"),
                KeyValue::new("kind", "http")
            ]
        ),
        Some(1)
    );
    assert_eq!(
        telemetry.counter(
            names::METRIC_TASK_OUTCOMES,
            &[KeyValue::new("outcome", "unknown")]
        ),
        Some(1)
    );
    let durations = telemetry
        .histogram(names::METRIC_TASK_DURATION, &shell_complete)
        .expect("task duration histogram");
    assert_eq!(durations.count, 2);
    assert!(durations.sum >= 0.0);
}

#[test]
fn run_duration_resumes_and_quarantines() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        finished("a", RunOutcomeName::Complete, false, 1500);
        finished("b", RunOutcomeName::Complete, false, 500);
        finished("c", RunOutcomeName::Fail, true, 250);
        for _ in 0..3 {
            emit::resumed(&Resumed {
                run_id: "c",
                lease_epoch: 2,
                tasks_pending: 1,
                tasks_done: 0,
                tasks_reset: 1,
                tasks_failed: 0,
            });
        }
        emit::state_quarantined("d", "corrupt", "/q/d");
        // Other events do not touch the counters.
        emit::run_abandoned("d", "failed");
    });

    let complete = telemetry
        .histogram(
            names::METRIC_RUN_DURATION,
            &[
                KeyValue::new("outcome", "complete"),
                KeyValue::new("resumed", false),
            ],
        )
        .expect("run duration for complete runs");
    assert_eq!(complete.count, 2);
    assert!(
        (complete.sum - 2.0).abs() < 1e-9,
        "sum of 1.5 s and 0.5 s: {}",
        complete.sum
    );
    let failed = telemetry
        .histogram(
            names::METRIC_RUN_DURATION,
            &[
                KeyValue::new("outcome", "fail"),
                KeyValue::new("resumed", true),
            ],
        )
        .expect("run duration for failed runs");
    assert_eq!(failed.count, 1);
    assert!((failed.sum - 0.25).abs() < 1e-9);
    assert_eq!(telemetry.counter(names::METRIC_RESUMES, &[]), Some(3));
    assert_eq!(telemetry.counter(names::METRIC_QUARANTINES, &[]), Some(1));
}

#[test]
fn queue_depth_is_summed_over_runs_in_progress_and_dropped_when_a_run_finishes() {
    let telemetry = TestTelemetry::new();
    let status = |s: &str| [KeyValue::new("status", s.to_owned())];

    telemetry.in_scope(|| {
        emit::queue_depth(
            "a",
            &QueueDepth {
                pending: 4,
                running: 2,
                ..QueueDepth::default()
            },
        );
        emit::queue_depth(
            "b",
            &QueueDepth {
                pending: 1,
                blocked: 3,
                ..QueueDepth::default()
            },
        );
        // A newer report for the same run replaces its share.
        emit::queue_depth(
            "a",
            &QueueDepth {
                pending: 3,
                running: 2,
                done: 1,
                ..QueueDepth::default()
            },
        );
    });
    assert_eq!(
        telemetry.gauge(names::METRIC_QUEUE_DEPTH, &status("pending")),
        Some(4)
    );
    assert_eq!(
        telemetry.gauge(names::METRIC_QUEUE_DEPTH, &status("running")),
        Some(2)
    );
    assert_eq!(
        telemetry.gauge(names::METRIC_QUEUE_DEPTH, &status("done")),
        Some(1)
    );
    assert_eq!(
        telemetry.gauge(names::METRIC_QUEUE_DEPTH, &status("blocked")),
        Some(3)
    );
    assert_eq!(
        telemetry.gauge(names::METRIC_QUEUE_DEPTH, &status("failed")),
        Some(0)
    );

    telemetry.in_scope(|| finished("a", RunOutcomeName::LeaveRunning, false, 10));
    assert_eq!(
        telemetry.gauge(names::METRIC_QUEUE_DEPTH, &status("pending")),
        Some(1)
    );
    assert_eq!(
        telemetry.gauge(names::METRIC_QUEUE_DEPTH, &status("running")),
        Some(0)
    );
    assert_eq!(
        telemetry.gauge(names::METRIC_QUEUE_DEPTH, &status("blocked")),
        Some(3)
    );
}

/// Counts `cairn.task.outcomes` for `(outcome, kind)` from a meter provider's latest export.
fn exported_task_outcomes(
    exporter: &opentelemetry_sdk::metrics::InMemoryMetricExporter,
    meters: &opentelemetry_sdk::metrics::SdkMeterProvider,
    outcome: &str,
    kind: &str,
) -> Option<u64> {
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    meters.force_flush().expect("flush");
    let exported = exporter.get_finished_metrics().expect("metrics").pop()?;
    let want = [
        KeyValue::new("outcome", outcome.to_owned()),
        KeyValue::new("kind", kind.to_owned()),
    ];
    exported
        .scope_metrics()
        .flat_map(|scope| scope.metrics())
        .filter(|metric| metric.name() == names::METRIC_TASK_OUTCOMES)
        .find_map(|metric| match metric.data() {
            AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
                .data_points()
                .find(|point| {
                    let have: Vec<&KeyValue> = point.attributes().collect();
                    want.iter().all(|kv| have.contains(&kv))
                })
                .map(|point| point.value()),
            _ => None,
        })
}

/// The sum of every `cairn.task.outcomes` series in a meter provider's latest export.
fn all_task_outcomes(
    exporter: &opentelemetry_sdk::metrics::InMemoryMetricExporter,
    meters: &opentelemetry_sdk::metrics::SdkMeterProvider,
) -> u64 {
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    meters.force_flush().expect("flush");
    let Some(exported) = exporter.get_finished_metrics().expect("metrics").pop() else {
        return 0;
    };
    exported
        .scope_metrics()
        .flat_map(|scope| scope.metrics())
        .filter(|metric| metric.name() == names::METRIC_TASK_OUTCOMES)
        .map(|metric| match metric.data() {
            AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                sum.data_points().map(|point| point.value()).sum()
            }
            _ => 0,
        })
        .sum()
}

/// A meter provider whose reader exports only when flushed, into an in-memory exporter.
fn in_memory_meters() -> (
    opentelemetry_sdk::metrics::InMemoryMetricExporter,
    opentelemetry_sdk::metrics::SdkMeterProvider,
) {
    let exporter = opentelemetry_sdk::metrics::InMemoryMetricExporter::default();
    let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(exporter.clone())
        .with_interval(std::time::Duration::from_secs(3600))
        .build();
    let meters = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
        .with_reader(reader)
        .build();
    (exporter, meters)
}

#[test]
fn task_metrics_do_not_need_the_trace_layer_to_see_the_span() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    let (exporter, meters) = in_memory_meters();
    let traces = cairn_telemetry::link::tracer_provider_builder().build();
    // As `init` does under RUST_LOG=warn: the trace layer never sees INFO task spans, the
    // metrics layer (with its own filter) sees them all.
    let subscriber = tracing_subscriber::registry()
        .with(
            cairn_telemetry::layers::trace_layer(&traces)
                .with_filter(tracing_subscriber::filter::LevelFilter::WARN),
        )
        .with(cairn_telemetry::layers::metrics_layer(&meters));
    tracing::subscriber::with_default(subscriber, || {
        task("shell", "complete");
        task("shell", "fail");
        task("shell", "complete");
    });
    assert_eq!(
        exported_task_outcomes(&exporter, &meters, "complete", "shell"),
        Some(2)
    );
    assert_eq!(
        exported_task_outcomes(&exporter, &meters, "fail", "shell"),
        Some(1)
    );
}

#[test]
fn separately_composed_halves_that_both_see_a_task_span_count_it_once() {
    use tracing_subscriber::layer::SubscriberExt as _;

    let (exporter, meters) = in_memory_meters();
    let traces = cairn_telemetry::link::tracer_provider_builder().build();
    // As `init` does under its default filter: both halves see every task span, the metrics
    // layer reading the trace layer's record of its fields.
    let subscriber = tracing_subscriber::registry()
        .with(cairn_telemetry::layers::trace_layer(&traces))
        .with(cairn_telemetry::layers::metrics_layer(&meters));
    tracing::subscriber::with_default(subscriber, || {
        task("shell", "complete");
        task("shell", "complete");
        task("shell", "vanished");
    });
    assert_eq!(
        exported_task_outcomes(&exporter, &meters, "complete", "shell"),
        Some(2)
    );
    assert_eq!(
        exported_task_outcomes(&exporter, &meters, "vanished", "shell"),
        Some(1)
    );
}

#[test]
fn an_outcome_outside_the_documented_list_is_counted_and_exported_as_recorded() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        task("shell", "vanished");
        // Recorded first as a known outcome, then replaced by one outside the list: the last
        // value is the one counted and exported.
        let span = tracing::info_span!(target: "cairn", names::TASK_SPAN,
            task_id = "t2", kind = "shell", attempt = 1i64,
            outcome = tracing::field::Empty);
        span.record("outcome", "complete");
        span.record("outcome", "lost");
    });

    for outcome in ["vanished", "lost"] {
        assert_eq!(
            telemetry.counter(
                names::METRIC_TASK_OUTCOMES,
                &[
                    KeyValue::new("outcome", outcome),
                    KeyValue::new("kind", "shell")
                ]
            ),
            Some(1),
            "{outcome}"
        );
    }
    assert_eq!(
        telemetry.counter(
            names::METRIC_TASK_OUTCOMES,
            &[KeyValue::new("outcome", "complete")]
        ),
        None
    );
    let mut exported: Vec<String> = telemetry
        .spans_named(names::TASK_SPAN)
        .iter()
        .filter_map(|span| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == "outcome")
                .map(|kv| kv.value.as_str().into_owned())
        })
        .collect();
    exported.sort();
    assert_eq!(exported, ["lost", "vanished"]);
}

/// Task attempts from two callsites through `export_layers` under `filter`: three `shell`
/// attempts from [`task`] and one `web` attempt from a callsite of its own. Checks that
/// each attempt is counted exactly once, and returns how many task spans were exported.
fn task_attempts_through_export_layers(filter: &str) -> usize {
    use tracing_subscriber::layer::SubscriberExt as _;

    let (exporter, meters) = in_memory_meters();
    let spans = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let traces = cairn_telemetry::link::tracer_provider_builder()
        .with_simple_exporter(spans.clone())
        .build();
    let config = cairn_telemetry::Config::new("metrics-test")
        .with_export(cairn_telemetry::Export::Off)
        .with_default_filter(filter);
    let providers = cairn_telemetry::Providers::new(traces, meters.clone());
    let layers = cairn_telemetry::export_layers(&config, &providers).expect("layers");
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layers), || {
        task("shell", "complete");
        task("shell", "fail");
        task("shell", "complete");
        let span = tracing::info_span!(target: "cairn", names::TASK_SPAN,
            task_id = "t9", kind = "web", attempt = 1i64, outcome = tracing::field::Empty);
        span.record("outcome", "complete");
    });
    for (outcome, kind, count) in [
        ("complete", "shell", 2),
        ("fail", "shell", 1),
        ("complete", "web", 1),
    ] {
        assert_eq!(
            exported_task_outcomes(&exporter, &meters, outcome, kind),
            Some(count),
            "{outcome} {kind} under filter `{filter}`"
        );
    }
    assert_eq!(
        all_task_outcomes(&exporter, &meters),
        4,
        "attempts counted in all series under filter `{filter}`"
    );
    providers.traces.force_flush().expect("flush spans");
    spans
        .get_finished_spans()
        .expect("spans")
        .iter()
        .filter(|span| span.name == names::TASK_SPAN)
        .count()
}

#[test]
fn export_layers_count_each_attempt_once_when_the_filter_enables_task_spans() {
    let default = cairn_telemetry::Config::new("x").default_filter;
    cairn_telemetry::testing::in_child_with_filter(
        "export_layers_count_each_attempt_once_when_the_filter_enables_task_spans",
        &default,
        |filter| assert_eq!(task_attempts_through_export_layers(filter), 4),
    );
}

#[test]
fn export_layers_count_each_attempt_once_when_the_filter_drops_task_spans() {
    cairn_telemetry::testing::in_child_with_filter(
        "export_layers_count_each_attempt_once_when_the_filter_drops_task_spans",
        "warn",
        |filter| assert_eq!(task_attempts_through_export_layers(filter), 0),
    );
}

#[test]
fn export_layers_count_each_attempt_once_under_a_span_field_filter() {
    // A directive on a span field makes the filter's answer depend on the span.
    cairn_telemetry::testing::in_child_with_filter(
        "export_layers_count_each_attempt_once_under_a_span_field_filter",
        "warn,[{kind}]=debug",
        |filter| {
            task_attempts_through_export_layers(filter);
        },
    );
}

/// The bucket bounds and per-bucket counts of the `f64` histogram `name` (its only data
/// point carrying `attributes`).
fn buckets(telemetry: &TestTelemetry, name: &str, attributes: &[KeyValue]) -> (Vec<f64>, Vec<u64>) {
    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};

    let exported = telemetry.metrics().expect("an export");
    let metric = exported
        .scope_metrics()
        .flat_map(|scope| scope.metrics())
        .find(|metric| metric.name() == name)
        .expect("the histogram");
    let AggregatedMetrics::F64(MetricData::Histogram(histogram)) = metric.data() else {
        panic!("{name} is an f64 histogram");
    };
    let point = histogram
        .data_points()
        .find(|point| {
            attributes
                .iter()
                .all(|kv| point.attributes().any(|have| have == kv))
        })
        .expect("a data point");
    (point.bounds().collect(), point.bucket_counts().collect())
}

#[test]
fn run_durations_of_seconds_and_of_hours_fall_in_buckets_of_their_own() {
    let telemetry = TestTelemetry::new();
    // A quick scheduled job, a small workflow, a long batch and a nightly one.
    let durations_ms = [250, 2_000, 45 * 60 * 1_000, 5 * 3_600 * 1_000];
    telemetry.in_scope(|| {
        for (n, duration_ms) in durations_ms.into_iter().enumerate() {
            finished(
                &format!("r{n}"),
                RunOutcomeName::Complete,
                false,
                duration_ms,
            );
        }
    });
    let (bounds, counts) = buckets(
        &telemetry,
        names::METRIC_RUN_DURATION,
        &[KeyValue::new("outcome", "complete")],
    );
    // The histogram is in seconds: its buckets must tell these runs apart, not put every
    // run under five seconds in one bucket as the SDK's millisecond-sized defaults do.
    assert_eq!(counts.iter().sum::<u64>(), 4);
    assert_eq!(
        counts.iter().filter(|&&count| count == 1).count(),
        4,
        "bounds {bounds:?}, counts {counts:?}"
    );
}

#[test]
fn task_duration_buckets_resolve_attempts_of_milliseconds_up_to_an_hour() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| task("shell", "complete"));
    let (bounds, _) = buckets(
        &telemetry,
        names::METRIC_TASK_DURATION,
        &[KeyValue::new("outcome", "complete")],
    );
    // The histogram is in seconds, and most attempts take well under one: the first
    // second needs buckets of its own (the SDK's defaults start at 5), and a shell task of
    // an hour still lands below the last bound.
    let below_a_second = bounds.iter().filter(|&&bound| bound < 1.0).count();
    assert!(below_a_second >= 6, "{bounds:?}");
    assert!(
        bounds.first().is_some_and(|&first| first <= 0.005),
        "{bounds:?}"
    );
    assert!(
        bounds.last().is_some_and(|&last| last >= 3_600.0),
        "{bounds:?}"
    );
}
