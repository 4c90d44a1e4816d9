//! The tracing layers `init` composes, exposed one by one so hosts and tests can build their
//! own (scoped) subscribers, for example with in-memory exporters.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

use crate::Providers;
use crate::attempt::AttemptHook;
use crate::link::RunLinkTracer;
use crate::metrics::{MetricsLayer, TaskMetrics};
use crate::names;
use crate::span_queue::SpanQueue;
use crate::task_span::{DirectExport, DirectTaskFilter, NotTaskSpans, TaskSpanLayer};

/// The instrumentation scope (tracer and meter name) of everything cairn exports.
pub const SCOPE_NAME: &str = "cairn";

pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// How the fmt layer writes to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// A fmt layer writing to stderr in `format`. Human lines are coloured only when stderr is a
/// terminal and `NO_COLOR` is unset or empty.
///
/// # Examples
///
/// ```
/// use cairn_telemetry::layers::{fmt_layer, LogFormat};
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let subscriber = tracing_subscriber::registry().with(fmt_layer(LogFormat::Json));
/// # drop(subscriber);
/// ```
pub fn fmt_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync + 'static>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    match format {
        LogFormat::Human => tracing_subscriber::fmt::layer()
            .with_ansi(stderr_wants_colour())
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
    }
}

/// Whether human log lines on stderr get ANSI colours: only on a terminal, and never when
/// `NO_COLOR` is set to a non-empty value (<https://no-color.org>). Escape codes in a log file
/// or a pipe are noise for whoever reads it.
fn stderr_wants_colour() -> bool {
    use std::io::IsTerminal as _;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The trace half: [`TaskSpanLayer`] for task spans (the executor's hot path),
/// tracing-opentelemetry's layer over [`RunLinkTracer`] (derived run-span ids and the resume
/// link) for every other span, and [`DetachedEventLayer`] for cairn events outside any span.
///
/// `tracer_provider` MUST be built from [`crate::link::tracer_provider_builder`] for the run
/// span ids to be the derived ones and for task spans to keep the ids their children saw.
///
/// The layer is tuned for a span per task attempt: spans carry cairn's fields plus `level` and
/// `target`, but no source location, thread or busy/idle attributes. A task span is built
/// once, when it closes, with its outcome already among its attributes. Entering a span makes
/// its OpenTelemetry context current, so inside a task `opentelemetry::Context::current()` is
/// the task span's context and spans a handler opens are its children.
/// (`tracing_opentelemetry::OpenTelemetrySpanExt::context` still works on other spans, but
/// not on task spans, which tracing-opentelemetry never sees.)
///
/// # Examples
///
/// ```
/// use cairn_telemetry::{link, names};
/// use opentelemetry_sdk::trace::InMemorySpanExporter;
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let exporter = InMemorySpanExporter::default();
/// let provider = link::tracer_provider_builder()
///     .with_simple_exporter(exporter.clone())
///     .build();
/// let subscriber =
///     tracing_subscriber::registry().with(cairn_telemetry::layers::trace_layer(&provider));
/// tracing::subscriber::with_default(subscriber, || {
///     let run = tracing::info_span!(target: "cairn", "orchestrator run", run_id = "r1");
///     run.in_scope(|| {});
/// });
/// let spans = exporter.get_finished_spans().expect("spans");
/// assert_eq!(spans[0].name, names::RUN_SPAN);
/// // A fresh run's span has the trace id derived from its run id and lease epoch 1.
/// assert_eq!(spans[0].span_context.trace_id(), link::run_trace_id("r1", 1));
/// ```
pub fn trace_layer<S>(tracer_provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    trace_layer_recording(tracer_provider, None)
}

/// [`trace_layer`], whose [`TaskSpanLayer`] also records `task_metrics` (when given) as it
/// closes a task span that no metrics layer in the stack sees ([`crate::handover`]).
pub(crate) fn trace_layer_recording<S>(
    tracer_provider: &SdkTracerProvider,
    task_metrics: Option<Arc<TaskMetrics>>,
) -> impl Layer<S> + Send + Sync + 'static + use<S>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    trace_parts(tracer_provider, None, task_metrics).0
}

/// The trace half under `filter`, with the executor's attempts exported directly
/// ([`crate::attempt`]): `filter` decides for them as for any span, but they never become
/// tracing spans for this half; an [`AttemptHook`] in the half hands them to the export, which
/// also records their task metrics (`task_metrics`, which MUST then be the metrics half's, and
/// the metrics half MUST leave the executor's task spans out once the flag returned beside the
/// layer is set, that is once an executor has claimed the hook).
pub(crate) fn trace_half<S, F>(
    tracer_provider: &SdkTracerProvider,
    span_queue: Option<SpanQueue>,
    task_metrics: Option<Arc<TaskMetrics>>,
    filter: F,
) -> (
    impl Layer<S> + Send + Sync + 'static + use<S, F>,
    Arc<AtomicBool>,
)
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    F: Filter<S> + Send + Sync + 'static,
{
    let (layer, export) = trace_parts(tracer_provider, span_queue, task_metrics);
    let claimed = export.claimed();
    let hook = AttemptHook::new(Arc::clone(&export) as Arc<dyn crate::attempt::AttemptExport>);
    let half = layer
        .and_then(hook)
        .with_filter(DirectTaskFilter::new(filter, export));
    (half, claimed)
}

/// [`trace_layer_recording`]'s layer and the direct export of its task span layer (through
/// `span_queue` when given, which MUST be `tracer_provider`'s).
fn trace_parts<S>(
    tracer_provider: &SdkTracerProvider,
    span_queue: Option<SpanQueue>,
    task_metrics: Option<Arc<TaskMetrics>>,
) -> (
    impl Layer<S> + Send + Sync + 'static + use<S>,
    Arc<DirectExport>,
)
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let tracer = tracer_provider.tracer_with_scope(scope());
    let task_spans = TaskSpanLayer::with_task_metrics(tracer.clone(), task_metrics);
    let export = task_spans.direct_export(span_queue);
    let task_layer = task_spans.layer_id();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(RunLinkTracer::new(tracer.clone()))
        // `begin_degraded` has a field named `error` but is a warning the run survives; it must
        // keep its own name and must not mark the run span as failed.
        .with_error_events_to_status(false)
        .with_error_events_to_exceptions(false)
        .with_level(true)
        // Source location, thread name (an allocation per span) and busy/idle timings (two
        // clock reads per poll) are not part of cairn's schema, so they are not paid for.
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        // A span opened inside a task finds its parent through the current OpenTelemetry
        // context, which `TaskSpanLayer` sets while the task span is entered; without
        // activation tracing-opentelemetry would look only at spans it sees itself and skip
        // the task span. It only costs on entering the run span and a host's own spans.
        .with_context_activation(true)
        // Task spans and the events inside them go to `TaskSpanLayer`; queue depth is
        // emitted after every batch and feeds the metrics layer only.
        .with_filter(NotTaskSpans)
        .and_then(task_spans)
        .and_then(DetachedEventLayer {
            tracer,
            task_layer: Some(task_layer),
        });
    (layer, export)
}

/// The metrics half: [`MetricsLayer`] on the provider's `cairn` meter.
///
/// # Examples
///
/// ```
/// use cairn_telemetry::{emit, names};
/// use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
/// use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let exporter = InMemoryMetricExporter::default();
/// let reader = PeriodicReader::builder(exporter.clone()).build();
/// let meters = SdkMeterProvider::builder().with_reader(reader).build();
/// let subscriber =
///     tracing_subscriber::registry().with(cairn_telemetry::layers::metrics_layer(&meters));
/// tracing::subscriber::with_default(subscriber, || {
///     emit::state_quarantined("r1", "bad checksum", "quarantine/r1");
/// });
/// meters.force_flush().expect("collected");
/// let exported = exporter.get_finished_metrics().expect("metrics");
/// let metric = exported[0]
///     .scope_metrics()
///     .flat_map(|scope| scope.metrics())
///     .find(|metric| metric.name() == names::METRIC_QUARANTINES)
///     .expect("the quarantine counter");
/// let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() else {
///     panic!("a u64 counter");
/// };
/// assert_eq!(sum.data_points().map(|point| point.value()).sum::<u64>(), 1);
/// # meters.shutdown().ok();
/// ```
pub fn metrics_layer(meter_provider: &SdkMeterProvider) -> MetricsLayer {
    MetricsLayer::new(&meter_provider.meter_with_scope(scope()))
}

/// Both halves, unfiltered: [`trace_layer`] and [`metrics_layer`]. Add a filter and a fmt
/// layer as the host sees fit; `cairn_telemetry::testing` (feature `testing`) wires it to in-memory
/// exporters.
///
/// # Examples
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let traces = cairn_telemetry::link::tracer_provider_builder().build();
/// let meters = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
/// let providers = cairn_telemetry::Providers::new(traces, meters);
/// let subscriber = tracing_subscriber::registry()
///     .with(cairn_telemetry::layers::layer(&providers));
/// tracing::subscriber::with_default(subscriber, || {
///     cairn_telemetry::emit::run_abandoned("run-1", "failed");
/// });
/// ```
pub fn layer<S>(providers: &Providers) -> impl Layer<S> + Send + Sync + 'static + use<S>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    // Both halves see the same spans here, so the task span layer records the task metrics
    // as it closes each task span, with the span's fields in hand, and the metrics layer
    // skips task spans (three span lookups and locks fewer per task attempt). Composed
    // separately (as `init` does, under different filters) each half does its own part.
    let mut metrics = metrics_layer(&providers.metrics);
    let task_metrics = metrics.hand_over_task_spans();
    // The metrics layer skips every task span here, so it needs no word of the claim.
    trace_half(
        &providers.traces,
        providers.span_queue.clone(),
        task_metrics,
        LevelFilter::TRACE,
    )
    .0
    .and_then(metrics)
}

/// Exports cairn events that happen outside any span (policy decisions taken before a run
/// span opens, scheduler breaker trips), which tracing-opentelemetry would drop: each becomes
/// a zero-length span named after the event, carrying the event with its fields.
#[derive(Debug)]
pub struct DetachedEventLayer {
    tracer: SdkTracer,
    /// The task span layer beside it, whose executor attempts (polled on this thread) take
    /// the events outside any span as their own.
    task_layer: Option<u64>,
}

impl DetachedEventLayer {
    /// Exports through `tracer`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::{emit, layers::DetachedEventLayer, names};
    /// use opentelemetry::trace::TracerProvider as _;
    /// use opentelemetry_sdk::trace::InMemorySpanExporter;
    /// use tracing_subscriber::layer::SubscriberExt as _;
    ///
    /// let exporter = InMemorySpanExporter::default();
    /// let provider = cairn_telemetry::link::tracer_provider_builder()
    ///     .with_simple_exporter(exporter.clone())
    ///     .build();
    /// let layer = DetachedEventLayer::new(provider.tracer("cairn"));
    /// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
    ///     emit::breaker_tripped("sync", 10, "database unreachable");
    /// });
    /// let spans = exporter.get_finished_spans().expect("spans");
    /// // A zero-length span named after the event, holding the event.
    /// assert_eq!(spans[0].name, names::BREAKER_TRIPPED);
    /// assert_eq!(spans[0].events.events[0].name, names::BREAKER_TRIPPED);
    /// ```
    pub fn new(tracer: SdkTracer) -> Self {
        DetachedEventLayer {
            tracer,
            task_layer: None,
        }
    }
}

/// Collects an event's fields as OpenTelemetry attributes, the way tracing-opentelemetry does
/// for events inside spans (without the `message`, which is the event name).
#[derive(Default)]
struct EventAttributes(Vec<KeyValue>);

impl Visit for EventAttributes {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() != "message" {
            self.0.push(KeyValue::new(field.name(), value.to_owned()));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.push(KeyValue::new(field.name(), value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.push(KeyValue::new(field.name(), value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let kv = match i64::try_from(value) {
            Ok(n) => KeyValue::new(field.name(), n),
            Err(_) => KeyValue::new(field.name(), value.to_string()),
        };
        self.0.push(kv);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.push(KeyValue::new(field.name(), value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() != "message" {
            self.0
                .push(KeyValue::new(field.name(), format!("{value:?}")));
        }
    }
}

impl<S> Layer<S> for DetachedEventLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if meta.target() != names::TARGET
            || ctx.event_span(event).is_some()
            || (!event.is_root()
                && self
                    .task_layer
                    .is_some_and(crate::task_span::direct_attempt_entered))
        {
            return;
        }
        let mut attributes = EventAttributes::default();
        event.record(&mut attributes);
        let mut attributes = attributes.0;
        attributes.push(KeyValue::new("level", meta.level().as_str()));
        attributes.push(KeyValue::new("target", meta.target()));
        let mut span = self
            .tracer
            .span_builder(meta.name())
            .with_attributes(attributes.clone())
            .start(&self.tracer);
        span.add_event(meta.name(), attributes);
        span.end();
    }
}
