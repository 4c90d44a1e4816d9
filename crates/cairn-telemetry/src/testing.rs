//! In-memory exporters behind a scoped subscriber, for tests (feature `testing`; enable it
//! from dev-dependencies only).
//!
//! [`TestTelemetry`] builds the same layers `init` uses ([`crate::layers::layer`]) over
//! in-memory span and metric exporters, without any filter, and offers lookups for what a test
//! usually asserts: spans by name, events by name, counter/gauge/histogram values.
//!
//! # Examples
//!
//! ```
//! use cairn_telemetry::{emit, names, testing::TestTelemetry};
//! use opentelemetry::KeyValue;
//!
//! let telemetry = TestTelemetry::new();
//! telemetry.in_scope(|| {
//!     let run = tracing::info_span!(target: "cairn", "orchestrator run", run_id = "r1");
//!     let _entered = run.enter();
//!     emit::run_abandoned("r1", "failed");
//! });
//! let events = telemetry.events(names::RUN_ABANDONED);
//! assert_eq!(events.len(), 1);
//! assert!(events[0].attributes.contains(&KeyValue::new("previous_status", "failed")));
//! ```

use std::fmt;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::Event;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, HistogramDataPoint, Metric, MetricData, ResourceMetrics,
};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{Layer, Registry};

use crate::Providers;
use crate::layers::layer;
use crate::link::tracer_provider_builder;
use crate::span_queue::{SpanQueue, SpanQueueConfig};

/// Count and sum of one histogram data point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistogramSummary {
    /// Recorded values.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
}

/// cairn's layers wired to in-memory exporters. Cheap to create; make one per test.
pub struct TestTelemetry {
    spans: InMemorySpanExporter,
    metrics: InMemoryMetricExporter,
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    dispatch: Dispatch,
}

impl fmt::Debug for TestTelemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestTelemetry").finish_non_exhaustive()
    }
}

impl Default for TestTelemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl TestTelemetry {
    /// Builds providers over in-memory exporters and a subscriber over them. Spans go through
    /// a [`SpanQueue`], as under `init`, and are exported when a lookup flushes it; metrics
    /// when a lookup forces a collection.
    ///
    /// # Panics
    ///
    /// When the operating system cannot start the span queue's export thread (a test helper
    /// has no caller to hand that error to).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::{names, testing::TestTelemetry};
    ///
    /// let telemetry = TestTelemetry::new();
    /// telemetry.in_scope(|| {
    ///     let run = tracing::info_span!(target: "cairn", "orchestrator run", run_id = "r1");
    ///     run.in_scope(|| {});
    /// });
    /// assert_eq!(telemetry.spans_named(names::RUN_SPAN).len(), 1);
    /// ```
    pub fn new() -> Self {
        Self::composed(layer)
    }

    /// Like [`TestTelemetry::new`], with the layers over the registry built by `compose` from
    /// the same in-memory providers: for example [`crate::export_layers`], as `init` composes
    /// them, with a fmt layer of the test's own beside them.
    ///
    /// # Panics
    ///
    /// As [`TestTelemetry::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::testing::TestTelemetry;
    ///
    /// let config = cairn_telemetry::Config::new("test").with_export(cairn_telemetry::Export::Off);
    /// let telemetry = TestTelemetry::composed(|providers| {
    ///     cairn_telemetry::export_layers(&config, providers).expect("the default filter parses")
    /// });
    /// telemetry.in_scope(|| cairn_telemetry::emit::run_abandoned("run-1", "failed"));
    /// assert_eq!(telemetry.spans_named(cairn_telemetry::names::RUN_ABANDONED).len(), 1);
    /// ```
    pub fn composed<L>(compose: impl FnOnce(&Providers) -> L) -> Self
    where
        L: Layer<Registry> + Send + Sync + 'static,
    {
        let spans = InMemorySpanExporter::default();
        let metrics = InMemoryMetricExporter::default();
        // The span queue `init` exports through; the lookups flush it.
        let queue = SpanQueue::new(spans.clone(), SpanQueueConfig::default())
            .expect("the span export thread starts");
        let tracer_provider = tracer_provider_builder()
            .with_span_processor(queue.clone())
            .build();
        // The interval is long so only the explicit flushes in the lookups export.
        let reader = PeriodicReader::builder(metrics.clone())
            .with_interval(Duration::from_secs(3600))
            .build();
        let meter_provider = SdkMeterProvider::builder().with_reader(reader).build();
        let providers = Providers::new(tracer_provider, meter_provider).with_span_queue(queue);
        let subscriber = Registry::default().with(compose(&providers));
        TestTelemetry {
            spans,
            metrics,
            tracer_provider: providers.traces,
            meter_provider: providers.metrics,
            dispatch: Dispatch::new(subscriber),
        }
    }

    /// The subscriber, for `tracing::dispatcher::with_default` or
    /// `tracing::instrument::WithSubscriber::with_subscriber` on futures that hop threads.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::{emit, names, testing::TestTelemetry};
    ///
    /// let telemetry = TestTelemetry::new();
    /// // Another thread does not see `in_scope`'s default; it is handed the subscriber.
    /// let dispatch = telemetry.dispatch();
    /// std::thread::spawn(move || {
    ///     tracing::dispatcher::with_default(&dispatch, || emit::job_revived("sync", true));
    /// })
    /// .join()
    /// .expect("the thread ran");
    /// assert_eq!(telemetry.events(names::JOB_REVIVED).len(), 1);
    /// ```
    pub fn dispatch(&self) -> Dispatch {
        self.dispatch.clone()
    }

    /// Runs `f` with this subscriber as the thread's default.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::{emit, names, testing::TestTelemetry};
    ///
    /// let telemetry = TestTelemetry::new();
    /// let answer = telemetry.in_scope(|| {
    ///     emit::run_abandoned("r1", "failed");
    ///     42
    /// });
    /// assert_eq!(answer, 42);
    /// // Outside the scope, nothing reaches this subscriber.
    /// emit::run_abandoned("r2", "failed");
    /// assert_eq!(telemetry.events(names::RUN_ABANDONED).len(), 1);
    /// ```
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::dispatcher::with_default(&self.dispatch, f)
    }

    /// Makes this subscriber the thread's default until the guard drops. With a
    /// current-thread tokio runtime (the `#[tokio::test]` default) this also covers tasks the
    /// code under test spawns, since they run on the same thread; on a multi-threaded runtime
    /// spawned tasks only see it if they are wrapped with `with_current_subscriber()`.
    ///
    /// tracing caches each callsite's interest process-wide. A test on another thread with no
    /// subscriber can register a callsite as "never" while this one is being built, and then
    /// this subscriber would miss its events, so the cache is rebuilt once this subscriber is
    /// in place. A test binary that runs such tests in parallel can close the last window by
    /// holding a do-nothing global subscriber (`tracing_subscriber::registry()`) for the whole
    /// process; a library must not, so this helper does not.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::{emit, names, testing::TestTelemetry};
    ///
    /// let telemetry = TestTelemetry::new();
    /// let guard = telemetry.set_default();
    /// emit::begin_degraded("r1", "disk full");
    /// drop(guard);
    /// emit::begin_degraded("r2", "disk full");
    /// assert_eq!(telemetry.events(names::BEGIN_DEGRADED).len(), 1);
    /// ```
    pub fn set_default(&self) -> tracing::dispatcher::DefaultGuard {
        let guard = tracing::dispatcher::set_default(&self.dispatch);
        tracing::callsite::rebuild_interest_cache();
        guard
    }

    /// The tracer provider (built with [`crate::link::RunIdGenerator`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::testing::TestTelemetry;
    /// use opentelemetry::trace::{Tracer as _, TracerProvider as _};
    ///
    /// // Spans made with the OpenTelemetry API directly are exported with cairn's.
    /// let telemetry = TestTelemetry::new();
    /// telemetry.tracer_provider().tracer("handler").in_span("upload", |_| {});
    /// assert_eq!(telemetry.spans_named("upload").len(), 1);
    /// ```
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.tracer_provider
    }

    /// The meter provider.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::testing::TestTelemetry;
    /// use opentelemetry::metrics::MeterProvider as _;
    ///
    /// let telemetry = TestTelemetry::new();
    /// let uploads = telemetry.meter_provider().meter("handler").u64_counter("uploads").build();
    /// uploads.add(2, &[]);
    /// assert_eq!(telemetry.counter_total("uploads"), 2);
    /// ```
    pub fn meter_provider(&self) -> &SdkMeterProvider {
        &self.meter_provider
    }

    /// Every span ended so far, in the order they ended.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::testing::TestTelemetry;
    ///
    /// let telemetry = TestTelemetry::new();
    /// telemetry.in_scope(|| {
    ///     tracing::info_span!("outer").in_scope(|| tracing::info_span!("inner").in_scope(|| {}));
    /// });
    /// let names: Vec<_> = telemetry.spans().into_iter().map(|span| span.name).collect();
    /// assert_eq!(names, ["inner", "outer"]);
    /// ```
    pub fn spans(&self) -> Vec<SpanData> {
        // Export errors cannot happen with the in-memory exporter; an empty list would make
        // the calling test fail visibly anyway.
        let _ = self.tracer_provider.force_flush();
        self.spans.get_finished_spans().unwrap_or_default()
    }

    /// Ended spans named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::testing::TestTelemetry;
    ///
    /// let telemetry = TestTelemetry::new();
    /// telemetry.in_scope(|| {
    ///     tracing::info_span!("step").in_scope(|| {});
    ///     tracing::info_span!("step").in_scope(|| {});
    ///     tracing::info_span!("other").in_scope(|| {});
    /// });
    /// assert_eq!(telemetry.spans_named("step").len(), 2);
    /// assert!(telemetry.spans_named("missing").is_empty());
    /// ```
    pub fn spans_named(&self, name: &str) -> Vec<SpanData> {
        self.spans()
            .into_iter()
            .filter(|span| span.name == name)
            .collect()
    }

    /// Span events named `name`, over all ended spans.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::{emit, names, testing::TestTelemetry};
    ///
    /// let telemetry = TestTelemetry::new();
    /// telemetry.in_scope(|| {
    ///     let run = tracing::info_span!(target: "cairn", "orchestrator run", run_id = "r1");
    ///     run.in_scope(|| emit::state_quarantined("r1", "bad checksum", "quarantine/r1"));
    /// });
    /// // Found inside the run span, as a span event.
    /// assert_eq!(telemetry.events(names::STATE_QUARANTINED).len(), 1);
    /// ```
    pub fn events(&self, name: &str) -> Vec<Event> {
        self.spans()
            .into_iter()
            .flat_map(|span| span.events.events)
            .filter(|event| event.name == name)
            .collect()
    }

    /// Collects metrics now and returns the latest (cumulative) export.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::{emit, names, testing::TestTelemetry};
    ///
    /// let telemetry = TestTelemetry::new();
    /// telemetry.in_scope(|| emit::state_quarantined("r1", "bad checksum", "quarantine/r1"));
    /// let exported = telemetry.metrics().expect("an export");
    /// let names: Vec<_> = exported
    ///     .scope_metrics()
    ///     .flat_map(|scope| scope.metrics())
    ///     .map(|metric| metric.name().to_owned())
    ///     .collect();
    /// assert!(names.iter().any(|name| name == names::METRIC_QUARANTINES));
    /// ```
    pub fn metrics(&self) -> Option<ResourceMetrics> {
        let _ = self.meter_provider.force_flush();
        self.metrics.get_finished_metrics().ok()?.pop()
    }

    fn with_metric<T>(&self, name: &str, f: impl FnOnce(&Metric) -> Option<T>) -> Option<T> {
        let exported = self.metrics()?;
        let metric = exported
            .scope_metrics()
            .flat_map(|scope| scope.metrics())
            .find(|metric| metric.name() == name)?;
        f(metric)
    }

    /// The value of the `u64` counter `name` for the data point carrying all of `attributes`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::testing::TestTelemetry;
    /// use opentelemetry::KeyValue;
    /// use opentelemetry::metrics::MeterProvider as _;
    ///
    /// let telemetry = TestTelemetry::new();
    /// let uploads = telemetry.meter_provider().meter("handler").u64_counter("uploads").build();
    /// uploads.add(2, &[KeyValue::new("bucket", "a"), KeyValue::new("region", "eu")]);
    /// uploads.add(5, &[KeyValue::new("bucket", "b"), KeyValue::new("region", "eu")]);
    /// // The data point that carries all the given attributes (and maybe more).
    /// assert_eq!(telemetry.counter("uploads", &[KeyValue::new("bucket", "b")]), Some(5));
    /// assert_eq!(telemetry.counter("uploads", &[KeyValue::new("bucket", "c")]), None);
    /// ```
    pub fn counter(&self, name: &str, attributes: &[KeyValue]) -> Option<u64> {
        self.with_metric(name, |metric| match metric.data() {
            AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
                .data_points()
                .find(|point| has_all(point.attributes(), attributes))
                .map(|point| point.value()),
            _ => None,
        })
    }

    /// The value of the `u64` gauge `name` for the data point carrying all of `attributes`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::testing::TestTelemetry;
    /// use opentelemetry::KeyValue;
    /// use opentelemetry::metrics::MeterProvider as _;
    ///
    /// let telemetry = TestTelemetry::new();
    /// let depth = telemetry.meter_provider().meter("handler").u64_gauge("depth").build();
    /// depth.record(7, &[KeyValue::new("queue", "mail")]);
    /// depth.record(3, &[KeyValue::new("queue", "mail")]);
    /// // A gauge keeps the last value.
    /// assert_eq!(telemetry.gauge("depth", &[KeyValue::new("queue", "mail")]), Some(3));
    /// ```
    pub fn gauge(&self, name: &str, attributes: &[KeyValue]) -> Option<u64> {
        self.with_metric(name, |metric| match metric.data() {
            AggregatedMetrics::U64(MetricData::Gauge(gauge)) => gauge
                .data_points()
                .find(|point| has_all(point.attributes(), attributes))
                .map(|point| point.value()),
            _ => None,
        })
    }

    /// The sum of every data point of the `u64` counter `name`, whatever their attributes
    /// (0 when it has none).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::testing::TestTelemetry;
    /// use opentelemetry::KeyValue;
    /// use opentelemetry::metrics::MeterProvider as _;
    ///
    /// let telemetry = TestTelemetry::new();
    /// let uploads = telemetry.meter_provider().meter("handler").u64_counter("uploads").build();
    /// uploads.add(2, &[KeyValue::new("bucket", "a")]);
    /// uploads.add(5, &[KeyValue::new("bucket", "b")]);
    /// assert_eq!(telemetry.counter_total("uploads"), 7);
    /// // 0 for a counter nothing was recorded on.
    /// assert_eq!(telemetry.counter_total("downloads"), 0);
    /// ```
    pub fn counter_total(&self, name: &str) -> u64 {
        self.with_metric(name, |metric| match metric.data() {
            AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                Some(sum.data_points().map(|point| point.value()).sum())
            }
            _ => None,
        })
        .unwrap_or(0)
    }

    /// Count and sum of the `f64` histogram `name` for the data point carrying all of
    /// `attributes`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::testing::{HistogramSummary, TestTelemetry};
    /// use opentelemetry::KeyValue;
    /// use opentelemetry::metrics::MeterProvider as _;
    ///
    /// let telemetry = TestTelemetry::new();
    /// let sizes = telemetry.meter_provider().meter("handler").f64_histogram("size").build();
    /// sizes.record(1.5, &[KeyValue::new("kind", "upload")]);
    /// sizes.record(2.5, &[KeyValue::new("kind", "upload")]);
    /// let summary = telemetry.histogram("size", &[KeyValue::new("kind", "upload")]);
    /// assert_eq!(summary, Some(HistogramSummary { count: 2, sum: 4.0 }));
    /// ```
    pub fn histogram(&self, name: &str, attributes: &[KeyValue]) -> Option<HistogramSummary> {
        self.with_metric(name, |metric| match metric.data() {
            AggregatedMetrics::F64(MetricData::Histogram(histogram)) => histogram
                .data_points()
                .find(|point| has_all(point.attributes(), attributes))
                .map(|point: &HistogramDataPoint<f64>| HistogramSummary {
                    count: point.count(),
                    sum: point.sum(),
                }),
            _ => None,
        })
    }
}

/// Set in the child process [`in_child_with_filter`] starts, to the filter its case runs under.
const CHILD_FILTER: &str = "CAIRN_TELEMETRY_TEST_FILTER";

/// Runs `case` with `filter` in a child process of the current test binary that reruns only
/// the test named `test` (exactly) with `RUST_LOG` unset, so the filter in force is `filter`
/// whatever the caller's environment says and no other test shares the process's callsite
/// interest cache; in that child, runs `case(filter)`. For tests of [`crate::export_layers`]
/// or `init` under a given default filter (`Config::with_default_filter`).
///
/// # Panics
///
/// When the child fails, or when it did not run exactly one test (a renamed test would
/// otherwise pass by running nothing).
///
/// # Examples
///
/// Not run here: it reruns the calling test binary, so it only works from a `#[test]` whose
/// name is passed as `test`.
///
/// ```no_run
/// use cairn_telemetry::{Config, Export};
/// use cairn_telemetry::testing::in_child_with_filter;
///
/// // In `tests/quiet.rs`:
/// #[test]
/// fn quiet_by_default() {
///     in_child_with_filter("quiet_by_default", "error", |filter| {
///         let config = Config::new("test")
///             .with_default_filter(filter)
///             .with_export(Export::Off);
///         let providers = cairn_telemetry::providers(&config).expect("providers");
///         // ... compose `cairn_telemetry::export_layers(&config, &providers)` and check it.
///         providers.shutdown().expect("shutdown");
///     });
/// }
/// ```
pub fn in_child_with_filter(test: &str, filter: &str, case: impl FnOnce(&str)) {
    if let Ok(filter) = std::env::var(CHILD_FILTER) {
        case(&filter);
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", test, "--test-threads=1"])
        .env(CHILD_FILTER, filter)
        .env_remove("RUST_LOG")
        .output()
        .expect("run the child test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child failed under filter `{filter}`: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

fn has_all<'a>(have: impl Iterator<Item = &'a KeyValue>, want: &[KeyValue]) -> bool {
    let have: Vec<&KeyValue> = have.collect();
    want.iter().all(|kv| have.contains(&kv))
}
