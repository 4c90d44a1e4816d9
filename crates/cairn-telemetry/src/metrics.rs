//! Metrics derived from the stable events and spans by a tracing [`Layer`], so library crates
//! emit plain `tracing` data and never touch OpenTelemetry.
//!
//! The instruments and their attributes are listed in [`names`] (the `METRIC_*` constants) and
//! in `docs/telemetry.md`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use opentelemetry::metrics::{
    BoundCounter, BoundGauge, BoundHistogram, Counter, Gauge, Histogram, Meter,
};
use opentelemetry::{KeyValue, StringValue, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::emit::QueueDepth;
use crate::names;
use crate::task_span::TaskSpanRecord;

/// Outcome attribute value when a task span closes without recording `outcome`.
const UNKNOWN: &str = "unknown";

/// The statuses of [`names::METRIC_QUEUE_DEPTH`], in the order of [`QueueDepth`]'s fields.
const QUEUE_STATUSES: [&str; 6] = ["pending", "running", "done", "skipped", "failed", "blocked"];

/// Bucket bounds of [`names::METRIC_TASK_DURATION`], in seconds: from a millisecond (most
/// handlers) to an hour (a long shell task). The SDK's default bounds (0, 5, 10, 25, ...,
/// 10,000) are sized for milliseconds and would put every attempt under 5 s in one bucket.
const TASK_DURATION_BOUNDS: [f64; 20] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0, 1_800.0, 3_600.0,
];

/// Bucket bounds of [`names::METRIC_RUN_DURATION`], in seconds: from a quick scheduled job to
/// a run of a day, for the same reason as [`TASK_DURATION_BOUNDS`].
const RUN_DURATION_BOUNDS: [f64; 18] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1_800.0, 3_600.0,
    7_200.0, 14_400.0, 28_800.0, 86_400.0,
];

/// A tracing layer that turns cairn's events and spans into OpenTelemetry metrics.
///
/// It reads [`names::TASK_SPAN`] (open to close) and the events [`names::RUN_FINISHED`],
/// [`names::RESUMED`], [`names::STATE_QUARANTINED`] and [`names::QUEUE_DEPTH`]; everything else
/// passes by. [`names::QUEUE_DEPTH`] is a DEBUG event, so give this layer its own filter
/// rather than the `RUST_LOG` one (`init` does).
///
/// # Examples
///
/// ```
/// use opentelemetry::metrics::MeterProvider as _;
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let meters = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
/// let subscriber = tracing_subscriber::registry()
///     .with(cairn_telemetry::metrics::MetricsLayer::new(&meters.meter("cairn")));
/// # drop(subscriber);
/// ```
pub struct MetricsLayer {
    /// `None` when the trace layer in the same stack records the task metrics as it closes
    /// task spans ([`MetricsLayer::hand_over_task_spans`]): this layer then skips task spans.
    task: Option<Arc<TaskMetrics>>,
    run_duration: Histogram<f64>,
    resumes: Counter<u64>,
    quarantines: Counter<u64>,
    queue_depth: Gauge<u64>,
    /// [`names::METRIC_QUEUE_DEPTH`] bound to each of [`QUEUE_STATUSES`]: six values are
    /// recorded after every batch of a run, so the SDK does not hash their attributes.
    /// Bound at the first depth recorded, not before: a bound gauge is exported (at 0) even
    /// if nothing is ever recorded, and a process that recorded nothing exports nothing.
    queue_depth_by_status: OnceLock<[BoundGauge<u64>; QUEUE_STATUSES.len()]>,
    /// The last queue depth of each run in progress, so the gauge can report the sum over
    /// concurrent runs and drop a run's share when it finishes.
    depth_by_run: Mutex<HashMap<String, QueueDepth>>,
    /// `kind` attribute values seen so far, shared instead of allocated per attempt.
    kinds: KindValues,
}

/// The task instruments, [`names::METRIC_TASK_OUTCOMES`] and [`names::METRIC_TASK_DURATION`],
/// recorded once per closed task span by [`MetricsLayer`] or, when both are in one stack, by
/// [`crate::task_span::TaskSpanLayer`] (which has the span's fields in hand as it closes it).
pub(crate) struct TaskMetrics {
    outcomes: Counter<u64>,
    duration: Histogram<f64>,
    /// The two task instruments bound to each `(kind, outcome)` seen so far.
    bound: BoundTaskInstruments,
}

impl fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsLayer").finish_non_exhaustive()
    }
}

impl MetricsLayer {
    /// Creates the instruments on `meter`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::emit::{self, QueueDepth, RunFinished, RunOutcomeName};
    /// use cairn_telemetry::{metrics::MetricsLayer, names};
    /// use opentelemetry::KeyValue;
    /// use opentelemetry::metrics::MeterProvider as _;
    /// use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    /// use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
    /// use tracing_subscriber::layer::SubscriberExt as _;
    ///
    /// let exporter = InMemoryMetricExporter::default();
    /// let reader = PeriodicReader::builder(exporter.clone()).build();
    /// let meters = SdkMeterProvider::builder().with_reader(reader).build();
    /// let layer = MetricsLayer::new(&meters.meter("cairn"));
    /// let pending = |meters: &SdkMeterProvider| -> u64 {
    ///     meters.force_flush().expect("collected");
    ///     let exported = exporter.get_finished_metrics().expect("metrics");
    ///     let last = exported.last().expect("an export");
    ///     let metric = last
    ///         .scope_metrics()
    ///         .flat_map(|scope| scope.metrics())
    ///         .find(|metric| metric.name() == names::METRIC_QUEUE_DEPTH)
    ///         .expect("the queue depth gauge");
    ///     let AggregatedMetrics::U64(MetricData::Gauge(gauge)) = metric.data() else {
    ///         panic!("a u64 gauge");
    ///     };
    ///     let status = KeyValue::new("status", "pending");
    ///     let mut points = gauge.data_points();
    ///     let point = points.find(|point| point.attributes().any(|kv| *kv == status));
    ///     point.expect("a pending point").value()
    /// };
    /// let subscriber = tracing_subscriber::registry().with(layer);
    /// let _default = tracing::subscriber::set_default(subscriber);
    /// emit::queue_depth("r1", &QueueDepth { pending: 3, ..QueueDepth::default() });
    /// assert_eq!(pending(&meters), 3);
    /// // A finished run's share leaves the gauge.
    /// emit::run_finished(&RunFinished {
    ///     run_id: "r1",
    ///     outcome: RunOutcomeName::Complete,
    ///     resumed: false,
    ///     duration_ms: 20,
    ///     tasks_done: 3,
    ///     tasks_failed: 0,
    ///     tasks_skipped: 0,
    ///     tasks_blocked: 0,
    /// });
    /// assert_eq!(pending(&meters), 0);
    /// ```
    pub fn new(meter: &Meter) -> Self {
        let queue_depth = meter
            .u64_gauge(names::METRIC_QUEUE_DEPTH)
            .with_description("Queued tasks by status over the runs in progress.")
            .with_unit("{task}")
            .build();
        MetricsLayer {
            task: Some(Arc::new(TaskMetrics {
                outcomes: meter
                    .u64_counter(names::METRIC_TASK_OUTCOMES)
                    .with_description("Finished task attempts by outcome.")
                    .with_unit("{attempt}")
                    .build(),
                duration: meter
                    .f64_histogram(names::METRIC_TASK_DURATION)
                    .with_description("Duration of task attempts.")
                    .with_unit("s")
                    .with_boundaries(TASK_DURATION_BOUNDS.to_vec())
                    .build(),
                bound: BoundTaskInstruments::default(),
            })),
            run_duration: meter
                .f64_histogram(names::METRIC_RUN_DURATION)
                .with_description("Duration of run executions.")
                .with_unit("s")
                .with_boundaries(RUN_DURATION_BOUNDS.to_vec())
                .build(),
            resumes: meter
                .u64_counter(names::METRIC_RESUMES)
                .with_description("Runs resumed after an interruption or by id.")
                .with_unit("{resume}")
                .build(),
            quarantines: meter
                .u64_counter(names::METRIC_QUARANTINES)
                .with_description("Stored state moved to quarantine.")
                .with_unit("{quarantine}")
                .build(),
            queue_depth,
            queue_depth_by_status: OnceLock::new(),
            depth_by_run: Mutex::new(HashMap::new()),
            kinds: KindValues::default(),
        }
    }

    /// Takes the task instruments out of this layer, for a
    /// [`crate::task_span::TaskSpanLayer`] that sees every task span this layer sees (the
    /// two are in one stack under the same filter). This layer then ignores task spans, so
    /// a task attempt costs no span lookups here.
    pub(crate) fn hand_over_task_spans(&mut self) -> Option<Arc<TaskMetrics>> {
        self.task.take()
    }

    /// The task instruments, shared with a [`crate::task_span::TaskSpanLayer`] that records
    /// them for the task spans this layer does not see (its filter,
    /// [`crate::handover::MetricsFilter`], leaves out the ones the trace layer is sure to
    /// see), while this layer keeps recording every task span it does see.
    pub(crate) fn share_task_spans(&self) -> Option<Arc<TaskMetrics>> {
        self.task.clone()
    }

    fn record_depth(&self, run_id: Option<String>, depth: Option<QueueDepth>) {
        let Some(run_id) = run_id else { return };
        // A poisoned map only means another thread panicked mid-update; the counts are
        // still usable, so keep reporting rather than propagate the panic.
        let mut by_run = self
            .depth_by_run
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let known = by_run.contains_key(&run_id);
        match depth {
            Some(depth) => {
                by_run.insert(run_id, depth);
            }
            None if known => {
                by_run.remove(&run_id);
            }
            // A run that never reported depth does not change the gauge.
            None => return,
        }
        let mut totals = [0u64; 6];
        for depth in by_run.values() {
            for (total, count) in totals.iter_mut().zip(depth_counts(depth)) {
                *total = total.saturating_add(count);
            }
        }
        drop(by_run);
        let gauges = self.queue_depth_by_status.get_or_init(|| {
            QUEUE_STATUSES.map(|status| self.queue_depth.bind(&[KeyValue::new("status", status)]))
        });
        for (gauge, total) in gauges.iter().zip(totals) {
            gauge.record(total);
        }
    }
}

fn depth_counts(depth: &QueueDepth) -> [u64; 6] {
    [
        depth.pending,
        depth.running,
        depth.done,
        depth.skipped,
        depth.failed,
        depth.blocked,
    ]
}

/// [`names::METRIC_TASK_OUTCOMES`] and [`names::METRIC_TASK_DURATION`] bound to one
/// `(kind, outcome)` attribute set, so recording skips the SDK's per-call attribute lookup.
struct TaskInstruments {
    outcomes: BoundCounter<u64>,
    duration: BoundHistogram<f64>,
}

/// Slot of `outcome = unknown` (no outcome recorded) after the [`TASK_OUTCOMES`].
const UNKNOWN_SLOT: usize = TASK_OUTCOMES.len();

/// The bound instruments of one kind, one slot per known outcome plus `unknown`, each bound
/// on first use.
#[derive(Default)]
struct KindInstruments([OnceLock<TaskInstruments>; TASK_OUTCOMES.len() + 1]);

/// Bound task instruments by kind. Kinds beyond [`MAX_INTERNED_KINDS`] (and outcomes outside
/// [`TASK_OUTCOMES`]) are recorded through the unbound instruments instead.
struct BoundTaskInstruments {
    /// Tells this map apart from those of other layers in the thread-local [`LAST_BOUND`].
    id: u64,
    by_kind: RwLock<HashMap<Box<str>, Arc<KindInstruments>>>,
}

/// Source of [`BoundTaskInstruments::id`].
static NEXT_BOUND_ID: AtomicU64 = AtomicU64::new(0);

impl Default for BoundTaskInstruments {
    fn default() -> Self {
        BoundTaskInstruments {
            id: NEXT_BOUND_ID.fetch_add(1, Ordering::Relaxed),
            by_kind: RwLock::default(),
        }
    }
}

/// The kind whose instruments this thread looked up last, in which map (by id).
struct LastBound {
    map: u64,
    kind: Box<str>,
    instruments: Arc<KindInstruments>,
}

thread_local! {
    /// Consecutive task spans closing on a thread are usually of one kind: comparing it is
    /// cheaper than hashing it and taking the map's lock on every close.
    static LAST_BOUND: RefCell<Option<LastBound>> = const { RefCell::new(None) };
}

impl BoundTaskInstruments {
    /// Runs `use_bound` on the bound instruments of `kind` (found through this thread's
    /// cache of the last kind, borrowed in place), or returns `false` when the kind is past
    /// the limit and has none.
    fn with_kind(&self, kind: &str, use_bound: impl FnOnce(&KindInstruments)) -> bool {
        LAST_BOUND.with(|last| {
            // A re-entrant call (an instrument's own telemetry) finds the cache in use and
            // takes the map's path.
            let Ok(mut last) = last.try_borrow_mut() else {
                return match self.for_kind(kind) {
                    Some(found) => {
                        use_bound(&found);
                        true
                    }
                    None => false,
                };
            };
            let cached = last
                .as_ref()
                .is_some_and(|last| last.map == self.id && &*last.kind == kind);
            if !cached {
                let Some(found) = self.for_kind(kind) else {
                    return false;
                };
                *last = Some(LastBound {
                    map: self.id,
                    kind: kind.into(),
                    instruments: found,
                });
            }
            match last.as_ref() {
                Some(last) => {
                    use_bound(&last.instruments);
                    true
                }
                None => false,
            }
        })
    }

    fn for_kind(&self, kind: &str) -> Option<Arc<KindInstruments>> {
        // A poisoned lock only means another thread panicked mid-insert; the map is intact.
        let known = self
            .by_kind
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(kind)
            .cloned();
        if known.is_some() {
            return known;
        }
        let mut kinds = self
            .by_kind
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if kinds.len() >= MAX_INTERNED_KINDS && !kinds.contains_key(kind) {
            return None;
        }
        Some(Arc::clone(kinds.entry(kind.into()).or_default()))
    }
}

impl TaskMetrics {
    /// Counts a closed task span of `kind` that lasted `seconds` and reported `outcome`
    /// (`known` when the outcome is one of the documented ones, already matched).
    pub(crate) fn record_span(
        &self,
        seconds: f64,
        kind: Option<&Value>,
        outcome: Option<&Value>,
        known: Option<&'static str>,
    ) {
        let outcome = match known {
            Some(known) => Some(Label::Known(known)),
            None => outcome.map(|value| Label::from_value(value, &TASK_OUTCOMES)),
        };
        self.record(seconds, kind, outcome.as_ref());
    }

    /// Counts a closed task span and records its duration.
    fn record(&self, seconds: f64, kind: Option<&Value>, outcome: Option<&Label>) {
        let slot = match outcome {
            None => Some(UNKNOWN_SLOT),
            Some(Label::Known(known)) => TASK_OUTCOMES.iter().position(|k| k == known),
            Some(Label::Other(_)) => None,
        };
        let attributes = || {
            [
                KeyValue::new(
                    "outcome",
                    outcome.map_or(Value::from(UNKNOWN), Label::to_value),
                ),
                KeyValue::new("kind", kind.cloned().unwrap_or(Value::from(UNKNOWN))),
            ]
        };
        let recorded = slot.is_some_and(|slot| {
            let text = kind.map_or(UNKNOWN.into(), Value::as_str);
            self.bound.with_kind(&text, |kind_instruments| {
                let instruments = kind_instruments.0[slot].get_or_init(|| {
                    let attributes = attributes();
                    TaskInstruments {
                        outcomes: self.outcomes.bind(&attributes),
                        duration: self.duration.bind(&attributes),
                    }
                });
                instruments.outcomes.add(1);
                instruments.duration.record(seconds);
            })
        });
        if !recorded {
            let attributes = attributes();
            self.outcomes.add(1, &attributes);
            self.duration.record(seconds, &attributes);
        }
    }
}

/// Per-span state of an open [`names::TASK_SPAN`].
#[derive(Debug)]
struct TaskSpanState {
    opened: Instant,
    /// When `outcome` was last recorded after the open: the attempt's end, which may come
    /// well before the span closes (see `TaskSpanRecord`).
    ended: Option<Instant>,
    fields: TaskFields,
}

/// The values [`names::TASK_SPAN`] spans report as `outcome`, so the common case needs no
/// allocation per attempt.
const TASK_OUTCOMES: [&str; 7] = [
    "complete",
    "skip",
    "retry",
    "fail",
    "panic",
    "timeout",
    "cancelled",
];

/// An attribute value that is usually one of a few known strings.
#[derive(Debug)]
enum Label {
    Known(&'static str),
    Other(String),
}

impl Label {
    fn from_str(value: &str, known: &[&'static str]) -> Label {
        match known.iter().find(|k| **k == value) {
            Some(k) => Label::Known(k),
            None => Label::Other(value.to_owned()),
        }
    }

    /// The label of a recorded attribute value: one of `known` when it spells one.
    fn from_value(value: &Value, known: &[&'static str]) -> Label {
        match value {
            Value::String(text) => Label::from_str(text.as_str(), known),
            other => Label::Other(other.as_str().into_owned()),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Label::Known(s) => Value::from(*s),
            Label::Other(s) => Value::from(s.clone()),
        }
    }
}

/// Most task kinds a [`KindValues`] keeps; kinds beyond it still count, with a value
/// allocated per attempt, so a host with unbounded kinds cannot grow the layer without end.
const MAX_INTERNED_KINDS: usize = 1024;

/// Task kinds as shared attribute values. Kinds are few (one per registered handler) and
/// repeat on every attempt, so each is allocated once rather than per task span.
#[derive(Debug, Default)]
pub(crate) struct KindValues(RwLock<HashMap<Box<str>, Arc<str>>>);

thread_local! {
    /// The kind this thread resolved last. Consecutive attempts are usually of the same kind,
    /// and a string compare is cheaper than hashing it for the map.
    static LAST_KIND: std::cell::RefCell<Option<Arc<str>>> = const { std::cell::RefCell::new(None) };
}

impl KindValues {
    pub(crate) fn value(&self, kind: &str) -> Value {
        let last = LAST_KIND.with(|last| {
            last.borrow()
                .as_ref()
                .filter(|shared| &***shared == kind)
                .cloned()
        });
        if let Some(shared) = last {
            return Value::from(StringValue::from(shared));
        }
        let value = self.lookup(kind);
        if let Value::String(text) = &value {
            // Only shared values are remembered; kinds past the cache limit are not.
            if let Some(shared) = self.shared(text.as_str()) {
                LAST_KIND.with(|last| *last.borrow_mut() = Some(shared));
            }
        }
        value
    }

    fn shared(&self, kind: &str) -> Option<Arc<str>> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(kind)
            .cloned()
    }

    fn lookup(&self, kind: &str) -> Value {
        // A poisoned lock only means another thread panicked mid-insert; the map is intact.
        let known = self
            .0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(kind)
            .cloned();
        if let Some(shared) = known {
            return Value::from(StringValue::from(shared));
        }
        let mut kinds = self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if kinds.len() >= MAX_INTERNED_KINDS {
            return Value::from(kind.to_owned());
        }
        let shared = kinds
            .entry(kind.into())
            .or_insert_with(|| Arc::from(kind))
            .clone();
        Value::from(StringValue::from(shared))
    }
}

/// The two fields of a task span the metrics need. Every other field (`run_id`, `task_id`,
/// `attempt`) is skipped without being formatted: this runs once per task attempt.
#[derive(Debug, Default)]
struct TaskFields {
    kind: Option<Value>,
    outcome: Option<Label>,
}

/// Reads [`TaskFields`] from a span's fields, resolving `kind` through the layer's
/// [`KindValues`].
struct TaskFieldsVisitor<'a> {
    fields: &'a mut TaskFields,
    kinds: &'a KindValues,
    /// Whether an `outcome` was among the fields read.
    outcome_seen: bool,
}

impl TaskFieldsVisitor<'_> {
    fn set(&mut self, name: &str, value: &str) {
        match name {
            "kind" => self.fields.kind = Some(self.kinds.value(value)),
            "outcome" => {
                self.outcome_seen = true;
                self.fields.outcome = Some(Label::from_str(value, &TASK_OUTCOMES));
            }
            _ => {}
        }
    }
}

impl Visit for TaskFieldsVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // Only the two wanted fields are formatted; `%value` arrives here without quotes.
        // Short values are formatted on the stack: this runs for every task attempt.
        if matches!(field.name(), "kind" | "outcome") {
            let mut short = ShortText::default();
            if fmt::write(&mut short, format_args!("{value:?}")).is_ok() {
                self.set(field.name(), short.as_str());
            } else {
                self.set(field.name(), &format!("{value:?}"));
            }
        }
    }
}

/// A fixed-size text buffer that refuses (with `fmt::Error`) what does not fit.
pub(crate) struct ShortText {
    buf: [u8; 64],
    len: usize,
}

impl Default for ShortText {
    fn default() -> Self {
        ShortText {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl ShortText {
    pub(crate) fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in, so the bytes are valid UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl fmt::Write for ShortText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The fields this layer reads from run events.
#[derive(Debug, Default)]
struct Fields {
    run_id: Option<String>,
    outcome: Option<String>,
    resumed: Option<bool>,
    duration_ms: Option<u64>,
    depth: QueueDepth,
}

impl Fields {
    fn set_str(&mut self, name: &str, value: &str) {
        match name {
            "run_id" => self.run_id = Some(value.to_owned()),
            "outcome" => self.outcome = Some(value.to_owned()),
            _ => {}
        }
    }

    fn set_u64(&mut self, name: &str, value: u64) {
        match name {
            "duration_ms" => self.duration_ms = Some(value),
            "pending" => self.depth.pending = value,
            "running" => self.depth.running = value,
            "done" => self.depth.done = value,
            "skipped" => self.depth.skipped = value,
            "failed" => self.depth.failed = value,
            "blocked" => self.depth.blocked = value,
            _ => {}
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set_str(field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set_u64(field.name(), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if let Ok(value) = u64::try_from(value) {
            self.set_u64(field.name(), value);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "resumed" {
            self.resumed = Some(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` and `?value` fields arrive here; Display-formatted strings have no quotes.
        // The message (the event's name again) is not needed.
        if matches!(field.name(), "run_id" | "outcome") {
            self.set_str(field.name(), &format!("{value:?}"));
        }
    }
}

impl<S> Layer<S> for MetricsLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if self.task.is_none() || attrs.metadata().name() != names::TASK_SPAN {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        // The trace layer already reads this span's fields; its record serves both, and
        // the trace layer leaves the task metrics to this layer.
        if let Some(record) = span.extensions_mut().get_mut::<TaskSpanRecord>() {
            record.leave_metrics_elsewhere();
            return;
        }
        let mut fields = TaskFields::default();
        attrs.record(&mut TaskFieldsVisitor {
            fields: &mut fields,
            kinds: &self.kinds,
            outcome_seen: false,
        });
        span.extensions_mut().insert(TaskSpanState {
            opened: Instant::now(),
            ended: None,
            fields,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        // Only task spans are read here: without the task instruments, nothing is.
        if self.task.is_none() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        if span.name() != names::TASK_SPAN {
            return;
        }
        if let Some(state) = span.extensions_mut().get_mut::<TaskSpanState>() {
            let mut visitor = TaskFieldsVisitor {
                fields: &mut state.fields,
                kinds: &self.kinds,
                outcome_seen: false,
            };
            values.record(&mut visitor);
            if visitor.outcome_seen {
                state.ended = Some(Instant::now());
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(task) = &self.task else { return };
        let Some(span) = ctx.span(&id) else { return };
        if span.name() != names::TASK_SPAN {
            return;
        }
        {
            // The common case first, under one read lock: the trace layer's record, read in
            // place (nothing is cloned unless a kind and outcome are bound for the first time).
            let extensions = span.extensions();
            if let Some(record) = extensions.get::<TaskSpanRecord>() {
                let (kind, outcome, known_outcome, took) = record.metric_fields();
                task.record_span(took.as_secs_f64(), kind, outcome, known_outcome);
                return;
            }
        }
        let state = span.extensions_mut().remove::<TaskSpanState>();
        if let Some(state) = state {
            let ended = state.ended.unwrap_or_else(Instant::now);
            task.record(
                ended.saturating_duration_since(state.opened).as_secs_f64(),
                state.fields.kind.as_ref(),
                state.fields.outcome.as_ref(),
            );
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let name = event.metadata().name();
        match name {
            names::RESUMED => self.resumes.add(1, &[]),
            names::STATE_QUARANTINED => self.quarantines.add(1, &[]),
            names::RUN_FINISHED => {
                let mut fields = Fields::default();
                event.record(&mut fields);
                if let Some(duration_ms) = fields.duration_ms {
                    // Milliseconds to seconds; f64 is exact for any realistic duration.
                    let seconds = duration_ms as f64 / 1000.0;
                    self.run_duration.record(
                        seconds,
                        &[
                            KeyValue::new(
                                "outcome",
                                fields.outcome.unwrap_or_else(|| UNKNOWN.to_owned()),
                            ),
                            KeyValue::new("resumed", fields.resumed.unwrap_or(false)),
                        ],
                    );
                }
                self.record_depth(fields.run_id, None);
            }
            names::QUEUE_DEPTH => {
                let mut fields = Fields::default();
                event.record(&mut fields);
                self.record_depth(fields.run_id, Some(fields.depth));
            }
            _ => {}
        }
    }
}

// Unit tests, because the stack formatting of `%kind` and the kind cache are private and the
// integration tests only ever pass kinds as short `&str`s.
#[cfg(all(test, feature = "testing"))]
mod tests {
    use opentelemetry::KeyValue;

    use crate::names;
    use crate::testing::TestTelemetry;

    fn task(kind: &dyn std::fmt::Display, outcome: &str) {
        let span = tracing::info_span!(target: "cairn", names::TASK_SPAN,
            task_id = "t", kind = %kind, attempt = 1i64, outcome = tracing::field::Empty);
        span.record("outcome", outcome);
    }

    #[test]
    fn display_kinds_of_any_length_and_unlisted_outcomes_keep_their_text() {
        let long = "k".repeat(200);
        let telemetry = TestTelemetry::new();
        telemetry.in_scope(|| {
            task(&"shell", "complete");
            task(&"shell", "complete");
            task(&long, "complete");
            task(&"shell", "exploded");
        });

        let count = |outcome: &str, kind: &str| {
            telemetry.counter(
                names::METRIC_TASK_OUTCOMES,
                &[
                    KeyValue::new("outcome", outcome.to_owned()),
                    KeyValue::new("kind", kind.to_owned()),
                ],
            )
        };
        assert_eq!(count("complete", "shell"), Some(2));
        assert_eq!(count("complete", &long), Some(1));
        assert_eq!(count("exploded", "shell"), Some(1));
    }

    #[test]
    fn task_metrics_beyond_the_bound_kind_limit_are_still_recorded() {
        let telemetry = TestTelemetry::new();
        let beyond = super::MAX_INTERNED_KINDS + 2;
        telemetry.in_scope(|| {
            for n in 0..=beyond {
                task(&format!("kind-{n}"), "complete");
            }
            // Kinds bound before the limit keep their instruments.
            task(&"kind-0", "complete");
        });
        let count = |kind: &str| {
            telemetry.counter(
                names::METRIC_TASK_OUTCOMES,
                &[
                    KeyValue::new("outcome", "complete"),
                    KeyValue::new("kind", kind.to_owned()),
                ],
            )
        };
        assert_eq!(count("kind-0"), Some(2));
        assert_eq!(count(&format!("kind-{beyond}")), Some(1));
    }

    #[test]
    fn layers_on_one_thread_count_their_own_tasks_of_the_same_kind() {
        let (first, second) = (TestTelemetry::new(), TestTelemetry::new());
        first.in_scope(|| task(&"shell", "complete"));
        second.in_scope(|| {
            task(&"shell", "complete");
            task(&"shell", "complete");
        });
        first.in_scope(|| task(&"shell", "complete"));
        let count = |telemetry: &TestTelemetry| {
            telemetry.counter(
                names::METRIC_TASK_OUTCOMES,
                &[
                    KeyValue::new("outcome", "complete"),
                    KeyValue::new("kind", "shell"),
                ],
            )
        };
        assert_eq!(count(&first), Some(2));
        assert_eq!(count(&second), Some(2));
    }

    #[test]
    fn bound_instruments_stop_at_the_kind_limit_but_keep_known_kinds() {
        let bound = super::BoundTaskInstruments::default();
        for n in 0..super::MAX_INTERNED_KINDS {
            assert!(bound.for_kind(&format!("kind-{n}")).is_some());
        }
        assert!(bound.for_kind("one-too-many").is_none());
        let first = bound
            .for_kind("kind-0")
            .expect("a kind bound before the limit");
        let again = bound.for_kind("kind-0").expect("the same kind");
        assert!(std::sync::Arc::ptr_eq(&first, &again));
    }

    #[test]
    fn kinds_beyond_the_cache_limit_are_still_reported() {
        let kinds = super::KindValues::default();
        for n in 0..super::MAX_INTERNED_KINDS + 5 {
            let kind = format!("kind-{n}");
            assert_eq!(kinds.value(&kind).as_str(), kind.as_str());
        }
        // A kind seen before the limit was reached is still shared, not duplicated.
        assert_eq!(kinds.value("kind-0").as_str(), "kind-0");
        let cached = kinds.0.read().map(|map| map.len()).unwrap_or_default();
        assert_eq!(cached, super::MAX_INTERNED_KINDS);
    }
}
