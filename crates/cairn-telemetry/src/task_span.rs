//! The trace layer for cairn's hot span: [`names::TASK_SPAN`], one per task attempt.
//!
//! tracing-opentelemetry handles every span generically: a `SpanBuilder` and an
//! `Arc<Mutex<…>>` per span, every field formatted into a `String`, the end time read on every
//! exit. For the one span the executor opens per task attempt that cost dominated the
//! executor's own, so [`TaskSpanLayer`] takes task spans (and the events inside them) off
//! tracing-opentelemetry's hands: it reads the known fields into a fixed record with
//! pre-built keys and shared values, and builds the OpenTelemetry span once, when the span
//! closes, through the same SDK tracer (same sampler, processors and exporters).
//!
//! The exported span is the one tracing-opentelemetry would build: the span's name,
//! attributes `level`, `target` and the span's fields (integers as `i64`, `u64` as decimal
//! strings, everything else as text), the events recorded inside it as span events (named by
//! their message, with `level`, `target` and their fields; an ERROR event sets the status to
//! error), the run span (or whatever span encloses it) as its parent. While the span is
//! entered its OpenTelemetry context is the current one (`opentelemetry::Context::current()`),
//! so spans a task handler opens are its children.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{
    Event as OtelEvent, Span as _, SpanBuilder, SpanContext, SpanId, SpanKind, Status,
    TraceContextExt as _, TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::{Context, ContextGuard, InstrumentationScope, Key, KeyValue, Value};
use opentelemetry_sdk::trace::{
    IdGenerator as _, RandomIdGenerator, SdkTracer, SpanData, SpanEvents, SpanLimits, SpanLinks,
};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Span, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context as LayerContext, Filter};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::attempt::{AttemptExport, AttemptRecord, EXECUTOR_TASK_SPAN_MODULE};
use crate::link;
use crate::metrics::{KindValues, TaskMetrics};
use crate::names;
use crate::span_queue::SpanQueue;

const KEY_LEVEL: Key = Key::from_static_str("level");
const KEY_TARGET: Key = Key::from_static_str("target");
const KEY_TASK_ID: Key = Key::from_static_str("task_id");
const KEY_KIND: Key = Key::from_static_str("kind");
const KEY_TASK_NAME: Key = Key::from_static_str("task_name");
const KEY_ATTEMPT: Key = Key::from_static_str("attempt");
const KEY_OUTCOME: Key = Key::from_static_str("outcome");

/// The values task spans report as `outcome`, kept as static strings so recording one
/// allocates nothing.
const TASK_OUTCOMES: [&str; 7] = [
    "complete",
    "skip",
    "retry",
    "fail",
    "panic",
    "timeout",
    "cancelled",
];

/// The metadata of the first task span callsite seen: task spans come from one callsite
/// (the executor's) as a rule, so comparing its address is cheaper than comparing names.
static TASK_CALLSITE: OnceLock<&'static Metadata<'static>> = OnceLock::new();

fn is_task_span(meta: &Metadata<'_>) -> bool {
    let known = TASK_CALLSITE.get().is_some_and(|known| {
        std::ptr::eq(
            std::ptr::from_ref(meta).cast::<()>(),
            std::ptr::from_ref(*known).cast::<()>(),
        )
    });
    known || (meta.is_span() && meta.name() == names::TASK_SPAN)
}

/// [`is_task_span`] for a callsite's `'static` metadata, remembering the first task span
/// callsite for the fast path.
pub(crate) fn is_task_span_callsite(meta: &'static Metadata<'static>) -> bool {
    let task = is_task_span(meta);
    if task {
        let _ = TASK_CALLSITE.set(meta);
    }
    task
}

/// The executor's task span callsite, once seen (see [`is_executor_task_span`]).
static EXECUTOR_CALLSITE: OnceLock<&'static Metadata<'static>> = OnceLock::new();

/// Whether `meta` is the task span callsite of the executor, whose attempts reach the
/// exporter through [`crate::attempt::AttemptHook`] instead of a tracing span.
pub(crate) fn is_executor_task_span(meta: &Metadata<'_>) -> bool {
    let known = EXECUTOR_CALLSITE.get().is_some_and(|known| {
        std::ptr::eq(
            std::ptr::from_ref(meta).cast::<()>(),
            std::ptr::from_ref(*known).cast::<()>(),
        )
    });
    known || (meta.module_path() == Some(EXECUTOR_TASK_SPAN_MODULE) && is_task_span(meta))
}

/// [`is_executor_task_span`] for a callsite's `'static` metadata, remembering it for the
/// fast path.
fn is_executor_task_span_callsite(meta: &'static Metadata<'static>) -> bool {
    let executor = is_executor_task_span(meta);
    if executor {
        let _ = EXECUTOR_CALLSITE.set(meta);
    }
    executor
}

/// What a task span has collected between open and close.
///
/// On close [`TaskSpanLayer`] takes what the exported span needs. When it records the task
/// metrics itself (composed by [`crate::layers::layer`]) it takes everything; otherwise it
/// leaves `kind`, the outcome (`known_outcome`, or a clone of an unknown `outcome`) and
/// `opened` behind for [`crate::metrics::MetricsLayer`], which closes after it in cairn's
/// stacks and so does not read the span's fields a second time.
#[derive(Debug)]
pub(crate) struct TaskSpanRecord {
    start: SystemTime,
    opened: Instant,
    /// When `outcome` was last recorded after the open: the attempt's end, which is also
    /// the exported span's end and the measured duration's. The span itself may close later
    /// (a handle kept alive, a host that drops spans elsewhere); `None` until then, and the
    /// close is the end.
    ended: Option<Instant>,
    /// The parent's OpenTelemetry context (the run span's, as a rule).
    parent_cx: Context,
    /// Ids drawn when the span opened, so children can name it before it is built (they
    /// reach them through `own_cx`).
    trace_id: TraceId,
    span_id: SpanId,
    /// `parent_cx` with this span in it, attached while the span is entered. Built when the
    /// span opens, on the thread that also drops it at close (a free from another thread
    /// costs more in the allocator).
    own_cx: Context,
    task_id: Option<Value>,
    kind: Option<Value>,
    attempt: Option<Value>,
    outcome: Option<Value>,
    /// `outcome` when it is one of [`TASK_OUTCOMES`] (the rule), so the metrics layer labels
    /// the attempt without comparing the text again.
    known_outcome: Option<&'static str>,
    /// Fields outside cairn's schema, exported as tracing-opentelemetry would.
    extra: Vec<KeyValue>,
    events: Vec<OtelEvent>,
    status: Status,
    /// Set by a [`crate::metrics::MetricsLayer`] that sees this span too and records its
    /// task metrics: this layer then leaves them to it. Deciding per span, from what the
    /// metrics layer actually saw, keeps an attempt from being counted twice or not at all
    /// whatever the two layers' filters answered.
    metrics_elsewhere: bool,
}

impl TaskSpanRecord {
    /// `kind`, `outcome` (and the known outcome it spells, if any) and how long the attempt
    /// took, for the task metrics. Once the span is closed, `outcome` is only kept when it
    /// is not a known one.
    pub(crate) fn metric_fields(
        &self,
    ) -> (
        Option<&Value>,
        Option<&Value>,
        Option<&'static str>,
        Duration,
    ) {
        (
            self.kind.as_ref(),
            self.outcome.as_ref(),
            self.known_outcome,
            self.duration(),
        )
    }

    /// From the open to the last `outcome` recorded, or to now if none was.
    fn duration(&self) -> Duration {
        match self.ended {
            Some(ended) => ended.saturating_duration_since(self.opened),
            None => self.opened.elapsed(),
        }
    }

    /// Marks this span's task metrics as recorded by a metrics layer that sees it.
    pub(crate) fn leave_metrics_elsewhere(&mut self) {
        self.metrics_elsewhere = true;
    }

    fn own_cx(&self) -> Context {
        self.own_cx.clone()
    }
}

/// The OpenTelemetry context of a span tracing-opentelemetry handles, cached in that span's
/// extensions by [`TaskSpanLayer`] so each task attempt does not look it up again.
struct CachedContext(Context);

thread_local! {
    /// Contexts attached while a task span is entered on this thread, popped on exit.
    static ENTERED: RefCell<Vec<(Id, ContextGuard)>> = const { RefCell::new(Vec::new()) };
    /// The task span this thread opened last (by layer and span id) and its context, so the
    /// attempt's first enter (right after the open, on the same thread) finds the context
    /// without looking the span up. Span ids carry the registry slot's generation, so an id
    /// is not reused while the entry could still match it.
    static JUST_OPENED: RefCell<Option<(u64, Id, Context)>> = const { RefCell::new(None) };
    /// The explicit parent (by layer and span id) of the last task span this thread opened,
    /// with its OpenTelemetry context: the attempts of a run all open under its run span,
    /// whose context never changes, so it is looked up once per thread and run rather than
    /// once per attempt (a lookup and a read lock every worker would share).
    static LAST_PARENT: RefCell<Option<(u64, Id, Context)>> = const { RefCell::new(None) };
    /// Where field values are formatted before they are copied into an attribute value or
    /// matched against a shared kind: reused, so formatting allocates nothing of its own.
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
    /// Set by a [`DirectTaskFilter`] (to its export's id) when its inner filter passed the
    /// executor's task span on this thread; taken by [`DirectExport::open`] right after.
    static DIRECT_PASSED: Cell<Option<u64>> = const { Cell::new(None) };
    /// The exported attempts ([`DirectAttempt`]) being polled on this thread, innermost last,
    /// with the events they collect meanwhile.
    static DIRECT_ENTERED: RefCell<Vec<DirectEntered>> = const { RefCell::new(Vec::new()) };
}

/// Hands `read` the `Debug` text of `value` (for `%value` fields, its `Display` text),
/// formatted into this thread's scratch buffer.
fn with_debug_text<R>(value: &dyn fmt::Debug, read: impl FnOnce(&str) -> R) -> R {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut text) => {
            text.clear();
            // Writing into a `String` only fails if the value's own `Debug` fails; keep what
            // was written, as tracing-opentelemetry does.
            let _ = write!(text, "{value:?}");
            read(&text)
        }
        // A `Debug` impl that itself emits a task span's event lands here while the buffer
        // is in use: format that one on its own.
        Err(_) => read(&format!("{value:?}")),
    })
}

/// A tracing layer that exports [`names::TASK_SPAN`] spans and the events inside them.
///
/// It is part of [`crate::layers::trace_layer`], which also keeps those spans and events away
/// from tracing-opentelemetry ([`NotTaskSpans`]); on its own it only makes sense next to a
/// tracing-opentelemetry layer filtered that way. The tracer's provider MUST be built with
/// [`crate::link::RunIdGenerator`]: the span's id is drawn when it opens (so children can
/// name it) and handed to the SDK through that generator when it closes.
pub struct TaskSpanLayer {
    /// Tells this layer's entries in the thread-local caches apart from other layers' (span
    /// ids are only unique within one subscriber).
    id: u64,
    tracer: SdkTracer,
    ids: RandomIdGenerator,
    kinds: KindValues,
    dispatch: OnceLock<WeakDispatch>,
    /// The task metrics, when this layer records them as it closes task spans that no
    /// metrics layer records (see [`crate::layers::layer`] and [`crate::handover`]).
    metrics: Option<Arc<TaskMetrics>>,
}

/// Source of [`TaskSpanLayer::id`].
static NEXT_LAYER_ID: AtomicU64 = AtomicU64::new(0);

impl fmt::Debug for TaskSpanLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSpanLayer").finish_non_exhaustive()
    }
}

impl TaskSpanLayer {
    /// Exports through `tracer`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::{link, names, task_span::TaskSpanLayer};
    /// use opentelemetry::KeyValue;
    /// use opentelemetry::trace::TracerProvider as _;
    /// use opentelemetry_sdk::trace::InMemorySpanExporter;
    /// use tracing_subscriber::layer::SubscriberExt as _;
    ///
    /// let exporter = InMemorySpanExporter::default();
    /// let provider = link::tracer_provider_builder()
    ///     .with_simple_exporter(exporter.clone())
    ///     .build();
    /// let layer = TaskSpanLayer::new(provider.tracer("cairn"));
    /// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
    ///     let task = tracing::info_span!(target: "cairn", "orchestrator task",
    ///         task_id = "t1", kind = "fetch", attempt = 1_i64, outcome = tracing::field::Empty);
    ///     task.record("outcome", "complete");
    /// });
    /// // Built when the span closes, with the outcome recorded last among its attributes.
    /// let spans = exporter.get_finished_spans().expect("spans");
    /// assert_eq!(spans[0].name, names::TASK_SPAN);
    /// assert!(spans[0].attributes.contains(&KeyValue::new("outcome", "complete")));
    /// ```
    pub fn new(tracer: SdkTracer) -> Self {
        TaskSpanLayer {
            id: NEXT_LAYER_ID.fetch_add(1, Ordering::Relaxed),
            tracer,
            ids: RandomIdGenerator::default(),
            kinds: KindValues::default(),
            dispatch: OnceLock::new(),
            metrics: None,
        }
    }

    /// Exports through `tracer` and records `metrics` for the task spans it closes that no
    /// metrics layer in the stack saw.
    pub(crate) fn with_task_metrics(tracer: SdkTracer, metrics: Option<Arc<TaskMetrics>>) -> Self {
        TaskSpanLayer {
            metrics,
            ..TaskSpanLayer::new(tracer)
        }
    }

    /// The context of the explicit parent `parent_id`, if this thread's cache holds it for
    /// this layer.
    fn cached_parent(&self, parent_id: &Id) -> Option<Context> {
        cached_parent(self.id, parent_id)
    }

    /// The context of `span`'s parent, looked up, and remembered in this thread's cache when
    /// it is the explicit parent `parent_id` and its context was read from the parent itself
    /// (the fallback, the current context, may differ from one attempt to the next).
    ///
    /// The cache keeps the parent's span context and values, not its SDK span: a cache that
    /// outlives the run must not keep the run's span, and through it the tracer provider,
    /// alive. Task spans see the same parent either way (the SDK reads the parent's span
    /// context, and the sampler whether it is valid and sampled), so only a valid one is
    /// cached.
    fn look_up_parent<S>(&self, parent_id: Option<&Id>, span: &SpanRef<'_, S>) -> Context
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(cx) = span
            .parent()
            .and_then(|parent| self.parent_context(&parent))
        else {
            return Context::current();
        };
        if let Some(parent_id) = parent_id {
            cache_parent(self.id, parent_id, &cx);
        }
        cx
    }

    /// Draws the ids of a task span opening under `parent_cx` and builds its own context.
    #[inline]
    fn child_context(&self, parent_cx: &Context) -> (Context, TraceId, SpanId) {
        child_context(&self.ids, parent_cx)
    }

    /// The OpenTelemetry context of `parent`, the span a task span opens in, or `None` when
    /// no layer knows one (the caller falls back to the current context).
    fn parent_context<S>(&self, parent: &SpanRef<'_, S>) -> Option<Context>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        // The common case first, under a read lock: a run span whose context is cached.
        if let Some(cached) = parent.extensions().get::<CachedContext>() {
            return Some(cached.0.clone());
        }
        if let Some(record) = parent.extensions().get::<TaskSpanRecord>() {
            return Some(record.own_cx());
        }
        // tracing-opentelemetry owns the parent: ask it (this starts the parent's SDK span,
        // as tracing-opentelemetry itself does for a child) and remember the answer.
        let found = self
            .dispatch
            .get()
            .and_then(WeakDispatch::upgrade)
            .and_then(|dispatch| tracing_opentelemetry::get_otel_context(&parent.id(), &dispatch));
        let cx = found?;
        parent.extensions_mut().insert(CachedContext(cx.clone()));
        Some(cx)
    }
}

/// Converts a field the way tracing-opentelemetry does for span attributes (`Debug` text;
/// `%value` fields arrive here and their `Debug` is their `Display`).
fn debug_value(value: &dyn fmt::Debug) -> Value {
    // Formatted into the scratch buffer and copied once, at its exact length, instead of
    // growing a `String` piece by piece.
    with_debug_text(value, |text| Value::from(text.to_owned()))
}

/// Reads a task span's fields into its record.
struct TaskFieldVisitor<'a> {
    record: &'a mut TaskSpanRecord,
    kinds: &'a KindValues,
    /// Recording after the open: an `outcome` recorded now ends the attempt.
    ends: bool,
}

impl TaskFieldVisitor<'_> {
    /// Marks the attempt's end when an `outcome` arrives after the open.
    fn outcome_recorded(&mut self) {
        if self.ends {
            self.record.ended = Some(Instant::now());
        }
    }
}

impl TaskFieldVisitor<'_> {
    fn set(&mut self, field: &Field, value: Value) {
        let slot = match field.name() {
            "task_id" => &mut self.record.task_id,
            "kind" => &mut self.record.kind,
            "attempt" => &mut self.record.attempt,
            "outcome" => {
                self.outcome_recorded();
                self.record.known_outcome = None;
                &mut self.record.outcome
            }
            name => {
                self.record.extra.push(KeyValue::new(name, value));
                return;
            }
        };
        *slot = Some(value);
    }

    /// `kind` and `outcome` repeat on every attempt: share or borrow their values.
    fn set_text(&mut self, field: &Field, text: &str) {
        let value = match field.name() {
            "kind" => self.kinds.value(text),
            "outcome" => match TASK_OUTCOMES.iter().find(|known| **known == text) {
                Some(known) => {
                    self.outcome_recorded();
                    self.record.outcome = Some(Value::from(*known));
                    self.record.known_outcome = Some(known);
                    return;
                }
                None => Value::from(text.to_owned()),
            },
            _ => Value::from(text.to_owned()),
        };
        self.set(field, value);
    }
}

impl Visit for TaskFieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set_text(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if matches!(field.name(), "kind" | "outcome") {
            with_debug_text(value, |text| self.set_text(field, text));
        } else {
            self.set(field, debug_value(value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        // tracing-opentelemetry sends `u64` through `Debug`: decimal text.
        self.set(field, Value::from(value.to_string()));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field, Value::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, Value::Bool(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.set(field, Value::from(value.to_string()));
    }
}

/// Builds a span event from a tracing event the way tracing-opentelemetry does (cairn turns
/// off its `error` special cases, so `error` is a Debug-quoted attribute like any other).
struct EventVisitor<'a> {
    event: &'a mut OtelEvent,
}

impl EventVisitor<'_> {
    fn push(&mut self, field: &Field, value: Value) {
        self.event
            .attributes
            .push(KeyValue::new(field.name(), value));
    }
}

impl Visit for EventVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.event.name = value.to_owned().into(),
            // Before any message, tracing-opentelemetry quotes an `error` text.
            "error" if self.event.name.is_empty() => {
                self.push(field, Value::from(format!("{value:?}")))
            }
            _ => self.push(field, Value::from(value.to_owned())),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => self.event.name = format!("{value:?}").into(),
            _ => self.push(field, debug_value(value)),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::I64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, Value::from(value.to_string()));
    }
}

/// A tracing event as a span event, the way tracing-opentelemetry builds one: named by its
/// message (else its tracing name), with `level`, `target` and its fields.
fn span_event(event: &Event<'_>) -> (OtelEvent, bool) {
    let meta = event.metadata();
    let mut otel_event = OtelEvent::new(
        "",
        SystemTime::now(),
        vec![
            KeyValue::new(KEY_LEVEL, meta.level().as_str()),
            KeyValue::new(KEY_TARGET, meta.target()),
        ],
        0,
    );
    event.record(&mut EventVisitor {
        event: &mut otel_event,
    });
    if otel_event.name.is_empty() {
        otel_event.name = meta.name().into();
    }
    (otel_event, *meta.level() == Level::ERROR)
}

/// Adds a span event from [`span_event`]; an ERROR event sets an unset status to error.
fn add_event(events: &mut Vec<OtelEvent>, status: &mut Status, (event, error): (OtelEvent, bool)) {
    if error && *status == Status::Unset {
        *status = Status::error("");
    }
    events.push(event);
}

impl TaskSpanRecord {
    fn add_event(&mut self, event: (OtelEvent, bool)) {
        add_event(&mut self.events, &mut self.status, event);
    }
}

impl<S> Layer<S> for TaskSpanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        if !is_task_span_callsite(attrs.metadata()) {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let parent_cx = match attrs.parent().and_then(|id| self.cached_parent(id)) {
            Some(cached) => cached,
            None => self.look_up_parent(attrs.parent(), &span),
        };
        let (own_cx, trace_id, span_id) = self.child_context(&parent_cx);
        let mut record = TaskSpanRecord {
            start: SystemTime::now(),
            opened: Instant::now(),
            ended: None,
            parent_cx,
            trace_id,
            span_id,
            own_cx,
            task_id: None,
            kind: None,
            attempt: None,
            outcome: None,
            known_outcome: None,
            extra: Vec::new(),
            events: Vec::new(),
            status: Status::Unset,
            metrics_elsewhere: false,
        };
        attrs.record(&mut TaskFieldVisitor {
            record: &mut record,
            kinds: &self.kinds,
            ends: false,
        });
        let opened = (self.id, id.clone(), record.own_cx());
        span.extensions_mut().insert(record);
        JUST_OPENED.with(|last| {
            if let Ok(mut last) = last.try_borrow_mut() {
                *last = Some(opened);
            }
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if !is_task_span(span.metadata()) {
            return;
        }
        if let Some(record) = span.extensions_mut().get_mut::<TaskSpanRecord>() {
            values.record(&mut TaskFieldVisitor {
                record,
                kinds: &self.kinds,
                ends: true,
            });
        }
    }

    fn on_enter(&self, id: &Id, ctx: LayerContext<'_, S>) {
        let just_opened = JUST_OPENED.with(|last| {
            let mut last = last.try_borrow_mut().ok()?;
            match &*last {
                Some((layer, opened, _)) if *layer == self.id && opened == id => {
                    last.take().map(|(_, _, cx)| cx)
                }
                _ => None,
            }
        });
        let cx = match just_opened {
            Some(cx) => cx,
            None => {
                let Some(span) = ctx.span(id) else { return };
                if !is_task_span(span.metadata()) {
                    return;
                }
                match span.extensions().get::<TaskSpanRecord>() {
                    Some(record) => record.own_cx(),
                    None => return,
                }
            }
        };
        let guard = cx.attach();
        ENTERED.with(|entered| entered.borrow_mut().push((id.clone(), guard)));
    }

    fn on_exit(&self, id: &Id, _ctx: LayerContext<'_, S>) {
        // Only task spans are on this thread's stack; other spans need no lookup.
        let guard = ENTERED.with(|entered| {
            let mut entered = entered.borrow_mut();
            let at = entered
                .iter()
                .rposition(|(entered_id, _)| entered_id == id)?;
            Some(entered.remove(at).1)
        });
        // Dropped outside the borrow: dropping a guard detaches its context.
        drop(guard);
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let meta = event.metadata();
        if meta.name() == names::QUEUE_DEPTH {
            return;
        }
        let span = ctx.event_span(event);
        match span {
            Some(span) if is_task_span(span.metadata()) => {
                if let Some(record) = span.extensions_mut().get_mut::<TaskSpanRecord>() {
                    record.add_event(span_event(event));
                }
            }
            // An executor attempt has no span here. While one of this layer's export is
            // being polled, an event outside any span this layer sees is that attempt's, and
            // so is one whose current span is the attempt's tracing span (opened for another
            // layer, hidden here, so the nearest span seen is the run span). An event right in
            // the run span, or an explicit root, is not: tracing-opentelemetry and the
            // detached-event layer export those.
            span => {
                if event.is_root() {
                    return;
                }
                let in_hidden_task_span = span.is_some()
                    && event.is_contextual()
                    && ctx
                        .current_span()
                        .metadata()
                        .is_some_and(is_executor_task_span);
                if span.is_some() && !in_hidden_task_span {
                    return;
                }
                DIRECT_ENTERED.with(|entered| {
                    let Ok(mut entered) = entered.try_borrow_mut() else {
                        return;
                    };
                    let Some(attempt) = entered.last_mut() else {
                        return;
                    };
                    if attempt.export == self.id {
                        add_event(&mut attempt.events, &mut attempt.status, span_event(event));
                    }
                });
            }
        }
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let meta = span.metadata();
        if !is_task_span(meta) {
            return;
        }
        let mut extensions = span.extensions_mut();
        let Some(record) = extensions.get_mut::<TaskSpanRecord>() else {
            return;
        };
        // The attempt ended when its outcome was recorded (one clock read, then); a span
        // closed without one ends now.
        let elapsed = record.duration();
        let start = record.start;
        let mut attributes = Vec::with_capacity(6 + record.extra.len());
        attributes.push(KeyValue::new(KEY_LEVEL, meta.level().as_str()));
        attributes.push(KeyValue::new(KEY_TARGET, meta.target()));
        if let Some(task_id) = record.task_id.take() {
            attributes.push(KeyValue::new(KEY_TASK_ID, task_id));
        }
        // With the task metrics here, nothing reads the record after this layer: the kind
        // and the outcome move; otherwise they stay for the metrics layer, which closes
        // after this one (a known outcome reaches it as `known_outcome`, so only an unknown
        // one is cloned).
        let metrics = self
            .metrics
            .as_deref()
            .filter(|_| !record.metrics_elsewhere);
        let kind = match metrics {
            Some(_) => record.kind.take(),
            None => record.kind.clone(),
        };
        if let Some(metrics) = metrics {
            metrics.record_span(
                elapsed.as_secs_f64(),
                kind.as_ref(),
                record.outcome.as_ref(),
                record.known_outcome,
            );
        }
        if let Some(kind) = kind {
            attributes.push(KeyValue::new(KEY_KIND, kind));
        }
        if let Some(attempt) = record.attempt.take() {
            attributes.push(KeyValue::new(KEY_ATTEMPT, attempt));
        }
        let outcome = match (metrics, record.known_outcome) {
            (None, None) => record.outcome.clone(),
            _ => record.outcome.take(),
        };
        if let Some(outcome) = outcome {
            attributes.push(KeyValue::new(KEY_OUTCOME, outcome));
        }
        attributes.append(&mut record.extra);
        let finished = FinishedTaskSpan {
            start,
            elapsed,
            attributes,
            events: std::mem::take(&mut record.events),
            status: std::mem::replace(&mut record.status, Status::Unset),
            parent_cx: std::mem::take(&mut record.parent_cx),
            trace_id: record.trace_id,
            span_id: record.span_id,
        };
        let own_cx = std::mem::take(&mut record.own_cx);
        drop(extensions);
        drop(span);
        finished.export(&self.tracer);
        // Dropped here, on the thread that built it (see `TaskSpanRecord::own_cx`).
        drop(own_cx);
    }
}

/// What a finished task span exports, whichever path collected it (a tracing span through
/// [`TaskSpanLayer`], or the executor's [`DirectAttempt`]).
struct FinishedTaskSpan {
    start: SystemTime,
    /// From the start to the attempt's end, on the monotonic clock.
    elapsed: Duration,
    attributes: Vec<KeyValue>,
    events: Vec<OtelEvent>,
    status: Status,
    parent_cx: Context,
    /// The ids drawn when the span opened; the trace id is only used without a valid
    /// parent (a child of the run span is in the run's trace).
    trace_id: TraceId,
    span_id: SpanId,
}

impl FinishedTaskSpan {
    /// Builds, ends and hands the span to `tracer`'s processors.
    fn export(self, tracer: &SdkTracer) {
        let mut builder = SpanBuilder::from_name(names::TASK_SPAN);
        builder.start_time = Some(self.start);
        builder.attributes = Some(self.attributes);
        if !self.events.is_empty() {
            builder.events = Some(self.events);
        }
        let parent_valid = self.parent_cx.span().span_context().is_valid();
        let trace_id = (!parent_valid).then_some(self.trace_id);
        let mut otel_span = link::with_pinned_ids(trace_id, self.span_id, || {
            tracer.build_with_context(builder, &self.parent_cx)
        });
        if self.status != Status::Unset {
            otel_span.set_status(self.status);
        }
        // The end time follows from the start and the monotonic clock, so it never precedes
        // the start.
        otel_span.end_with_timestamp(self.start.checked_add(self.elapsed).unwrap_or(self.start));
    }
}

/// The per-layer filter cairn puts on tracing-opentelemetry: everything except
/// [`names::TASK_SPAN`] spans and the events inside them (which [`TaskSpanLayer`] exports) and
/// [`names::QUEUE_DEPTH`] events (metrics only: as span events they would fill the SDK's
/// 128-events-per-span limit on a long run).
#[derive(Debug, Clone, Copy, Default)]
pub struct NotTaskSpans;

impl NotTaskSpans {
    fn allows(meta: &Metadata<'_>) -> bool {
        !(is_task_span(meta) || (meta.is_event() && meta.name() == names::QUEUE_DEPTH))
    }
}

impl<S> Filter<S> for NotTaskSpans
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, meta: &Metadata<'_>, _cx: &LayerContext<'_, S>) -> bool {
        Self::allows(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        use tracing::subscriber::Interest;
        if is_task_span_callsite(meta) || !Self::allows(meta) {
            Interest::never()
        } else if meta.is_event() {
            // Whether an event is wanted depends on the span it is in (`event_enabled`), and
            // tracing-subscriber only expects `event_enabled` to say no within a filter pass,
            // which `sometimes` keeps.
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }

    fn event_enabled(&self, event: &Event<'_>, cx: &LayerContext<'_, S>) -> bool {
        match event.parent() {
            // This context hides the spans this filter disables: a parent it cannot see is
            // a task span.
            Some(parent) => cx.span(parent).is_some(),
            // The subscriber's current span is not filtered, unlike `lookup_current`.
            None if event.is_contextual() => cx
                .current_span()
                .metadata()
                .is_none_or(|meta| !is_task_span(meta)),
            None => true,
        }
    }
}

/// The exported side of the executor's task attempts (see [`crate::attempt`]): what
/// [`TaskSpanLayer`] builds from a task span, built from the attempt's own fields.
///
/// It shares the layer's id (its entries in the thread-local caches mean the same), tracer
/// and task metrics. [`DirectTaskFilter`] decides, per attempt, whether the span is exported;
/// the task metrics are recorded either way, since the metrics half never sees the
/// executor's task spans in a stack with this export ([`crate::handover::MetricsFilter`]).
#[derive(Debug)]
pub(crate) struct DirectExport {
    shared: Arc<DirectShared>,
}

struct DirectShared {
    id: u64,
    /// Set once an executor found this export's hook (see [`AttemptExport::claim`]); shared
    /// with the metrics half's filter, which leaves the executor's task spans to the export
    /// only from then on.
    claimed: Arc<AtomicBool>,
    claim_once: Once,
    /// The trace half's filter passes every executor task span (its interest in the
    /// callsite is `always`): the callsite is then hidden from the whole stack, unless another
    /// layer wants it, and every attempt is exported without asking.
    always: AtomicBool,
    tracer: SdkTracer,
    ids: RandomIdGenerator,
    metrics: Option<Arc<TaskMetrics>>,
    /// The queue `tracer`'s provider exports through, when the host said so
    /// ([`crate::Providers::span_queue`]): attempts then go to it as records, not SDK spans.
    queue: Option<SpanQueue>,
}

impl fmt::Debug for DirectShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectShared")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl TaskSpanLayer {
    /// The id telling this layer's entries in the thread-local caches apart.
    pub(crate) fn layer_id(&self) -> u64 {
        self.id
    }

    /// The export of the executor's attempts that goes with this layer, for an
    /// [`crate::attempt::AttemptHook`] and a [`DirectTaskFilter`] in the same stack.
    ///
    /// With `queue` (which `tracer`'s provider MUST export through), the attempts' spans are
    /// queued there as records and built on its export thread.
    pub(crate) fn direct_export(&self, queue: Option<SpanQueue>) -> Arc<DirectExport> {
        Arc::new(DirectExport {
            shared: Arc::new(DirectShared {
                id: self.id,
                claimed: Arc::new(AtomicBool::new(false)),
                claim_once: Once::new(),
                always: AtomicBool::new(false),
                tracer: self.tracer.clone(),
                ids: RandomIdGenerator::default(),
                metrics: self.metrics.clone(),
                queue,
            }),
        })
    }
}

impl DirectShared {
    /// The OpenTelemetry context of the run span `parent`, from this thread's cache when it
    /// holds it (see `LAST_PARENT`), else from tracing-opentelemetry, which owns it.
    fn parent_context(&self, parent: &Span) -> Context {
        let Some(parent_id) = parent.id() else {
            return Context::current();
        };
        if let Some(cx) = cached_parent(self.id, &parent_id) {
            return cx;
        }
        let found = tracing::dispatcher::get_default(|dispatch| {
            tracing_opentelemetry::get_otel_context(&parent_id, dispatch)
        });
        let Some(cx) = found else {
            return Context::current();
        };
        cache_parent(self.id, &parent_id, &cx);
        cx
    }

    fn child_context(&self, parent_cx: &Context) -> (Context, TraceId, SpanId) {
        child_context(&self.ids, parent_cx)
    }
}

/// The context this thread's cache holds for the explicit parent `parent_id` of a task span
/// of layer `layer`, if it does.
fn cached_parent(layer: u64, parent_id: &Id) -> Option<Context> {
    LAST_PARENT.with(|last| {
        let last = last.try_borrow().ok()?;
        match &*last {
            Some((cached_layer, id, cx)) if *cached_layer == layer && id == parent_id => {
                Some(cx.clone())
            }
            _ => None,
        }
    })
}

/// Remembers `cx`, the context of the explicit parent `parent_id`, in this thread's cache, as
/// a detached copy and only when valid (see `TaskSpanLayer::look_up_parent`).
fn cache_parent(layer: u64, parent_id: &Id, cx: &Context) {
    let parent_sc = cx.span().span_context().clone();
    if !parent_sc.is_valid() {
        return;
    }
    let detached = cx.with_remote_span_context(parent_sc);
    LAST_PARENT.with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = Some((layer, parent_id.clone(), detached));
        }
    });
}

/// Draws the ids of a task span opening under `parent_cx` (a new trace when the parent is not
/// valid) and builds the span's own context.
fn child_context(ids: &RandomIdGenerator, parent_cx: &Context) -> (Context, TraceId, SpanId) {
    let parent_span = parent_cx.span();
    let parent_sc = parent_span.span_context();
    let span_context = if parent_sc.is_valid() {
        SpanContext::new(
            parent_sc.trace_id(),
            ids.new_span_id(),
            parent_sc.trace_flags(),
            false,
            parent_sc.trace_state().clone(),
        )
    } else {
        SpanContext::new(
            ids.new_trace_id(),
            ids.new_span_id(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        )
    };
    let (trace_id, span_id) = (span_context.trace_id(), span_context.span_id());
    (
        parent_cx.with_remote_span_context(span_context),
        trace_id,
        span_id,
    )
}

impl DirectExport {
    /// Whether an executor has claimed this export, shared with the metrics half's filter.
    pub(crate) fn claimed(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.shared.claimed)
    }

    fn is_claimed(&self) -> bool {
        self.shared.claimed.load(Ordering::Acquire)
    }
}

impl AttemptExport for DirectExport {
    fn opening(&self) {
        // Any answer still here was meant for a span whose `open` never came.
        DIRECT_PASSED.set(None);
    }

    fn claim(&self) {
        // Once per export: every filter in the process is asked again about the executor's
        // callsite, now hidden from the trace half, before any attempt of the claiming run
        // opens (the executor claims when its run starts). Other threads claiming meanwhile
        // wait here until that is done.
        self.shared.claim_once.call_once(|| {
            self.shared.claimed.store(true, Ordering::Release);
            tracing::callsite::rebuild_interest_cache();
        });
    }

    fn open(
        &self,
        parent: &Span,
        task_id: &str,
        task_name: Option<&Arc<str>>,
        kind: &Arc<str>,
        attempt: u32,
    ) -> Option<Box<dyn AttemptRecord>> {
        if !self.is_claimed() {
            return None;
        }
        let passed = DIRECT_PASSED.take() == Some(self.shared.id)
            || self.shared.always.load(Ordering::Acquire);
        if !passed && self.shared.metrics.is_none() {
            return None;
        }
        let opened = Instant::now();
        let span = passed.then(|| {
            let parent_cx = self.shared.parent_context(parent);
            let (own_cx, trace_id, span_id) = self.shared.child_context(&parent_cx);
            DirectSpan {
                start: SystemTime::now(),
                parent_cx,
                own_cx,
                trace_id,
                span_id,
                task_id: AttemptTaskId::new(task_id),
                task_name: task_name.map(Arc::clone),
                attempt: i64::from(attempt),
                events: Vec::new(),
                status: Status::Unset,
            }
        });
        Some(Box::new(DirectAttempt {
            shared: Arc::clone(&self.shared),
            span,
            opened,
            ended: None,
            kind: Value::from(Arc::clone(kind)),
            outcome: None,
        }))
    }
}

/// One executor attempt's exported side: its metrics, and its span when exported.
struct DirectAttempt {
    shared: Arc<DirectShared>,
    /// `None` when the trace half's filter did not pass the attempt: metrics only.
    span: Option<DirectSpan>,
    opened: Instant,
    ended: Option<Instant>,
    kind: Value,
    outcome: Option<&'static str>,
}

/// What an exported attempt's span collects between its open and its close.
struct DirectSpan {
    start: SystemTime,
    parent_cx: Context,
    /// `parent_cx` with this span in it, current while the attempt is polled.
    own_cx: Context,
    trace_id: TraceId,
    span_id: SpanId,
    task_id: AttemptTaskId,
    task_name: Option<Arc<str>>,
    attempt: i64,
    /// Moved to this thread's `DIRECT_ENTERED` entry while the attempt is polled.
    events: Vec<OtelEvent>,
    status: Status,
}

/// An exported attempt being polled on this thread.
struct DirectEntered {
    export: u64,
    /// The attempt's span id, telling its entry apart from other attempts'.
    span_id: SpanId,
    events: Vec<OtelEvent>,
    status: Status,
    guard: ContextGuard,
}

/// Whether an exported executor attempt of the task span layer `layer` is being polled on
/// this thread: events outside any span are then that attempt's span events, not detached
/// ones.
pub(crate) fn direct_attempt_entered(layer: u64) -> bool {
    DIRECT_ENTERED.with(|entered| {
        entered
            .try_borrow()
            .is_ok_and(|entered| entered.last().is_some_and(|top| top.export == layer))
    })
}

impl AttemptRecord for DirectAttempt {
    fn enter(&mut self) {
        let Some(span) = self.span.as_mut() else {
            return;
        };
        let entry = DirectEntered {
            export: self.shared.id,
            span_id: span.span_id,
            events: std::mem::take(&mut span.events),
            status: std::mem::replace(&mut span.status, Status::Unset),
            guard: span.own_cx.clone().attach(),
        };
        // The stack is only ever borrowed briefly; should it be borrowed here (a layer
        // callback polling an attempt), the attempt is polled without its context rather than
        // panic, and keeps its events.
        let refused = DIRECT_ENTERED.with(|entered| match entered.try_borrow_mut() {
            Ok(mut entered) => {
                entered.push(entry);
                None
            }
            Err(_) => Some(entry),
        });
        if let Some(entry) = refused {
            span.events = entry.events;
            span.status = entry.status;
        }
    }

    fn exit(&mut self) {
        let Some(span) = self.span.as_mut() else {
            return;
        };
        let entry = DIRECT_ENTERED.with(|entered| {
            let mut entered = entered.try_borrow_mut().ok()?;
            let at = entered.iter().rposition(|entry| {
                entry.export == self.shared.id && entry.span_id == span.span_id
            })?;
            Some(entered.remove(at))
        });
        if let Some(entry) = entry {
            span.events = entry.events;
            span.status = entry.status;
            // Dropped outside the borrow: dropping the guard detaches the context.
            drop(entry.guard);
        }
    }

    fn set_outcome(&mut self, outcome: &'static str) {
        self.ended = Some(Instant::now());
        self.outcome = Some(outcome);
    }

    fn close(self: Box<Self>) {
        let DirectAttempt {
            shared,
            span,
            opened,
            ended,
            kind,
            outcome,
        } = *self;
        let elapsed = ended
            .unwrap_or_else(Instant::now)
            .saturating_duration_since(opened);
        if let Some(metrics) = shared.metrics.as_deref() {
            metrics.record_span(elapsed.as_secs_f64(), Some(&kind), None, outcome);
        }
        let Some(span) = span else {
            return;
        };
        if let Some(queue) = shared.queue.as_ref() {
            queue_attempt(queue, span, elapsed, kind, outcome);
            return;
        }
        let attributes = attempt_attributes(
            span.task_id.into_value(),
            span.task_name,
            kind,
            span.attempt,
            outcome,
        );
        FinishedTaskSpan {
            start: span.start,
            elapsed,
            attributes,
            events: span.events,
            status: span.status,
            parent_cx: span.parent_cx,
            trace_id: span.trace_id,
            span_id: span.span_id,
        }
        .export(&shared.tracer);
        // Dropped here, on the thread that built it, as `TaskSpanRecord::own_cx`.
        drop(span.own_cx);
    }
}

/// The trace half's filter in a stack with a [`DirectExport`]: `inner` (the `RUST_LOG` or
/// default filter) for everything, except that the executor's task span never reaches the
/// trace half. When `inner` passes one, the filter tells the export instead (the executor
/// asks it right after opening the span), so the registry creates a tracing span for the
/// attempt only if another layer wants it.
pub(crate) struct DirectTaskFilter<F> {
    inner: F,
    export: Arc<DirectExport>,
}

impl<F> DirectTaskFilter<F> {
    pub(crate) fn new(inner: F, export: Arc<DirectExport>) -> Self {
        DirectTaskFilter { inner, export }
    }
}

impl<F: fmt::Debug> fmt::Debug for DirectTaskFilter<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectTaskFilter")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, F> Filter<S> for DirectTaskFilter<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    F: Filter<S>,
{
    fn enabled(&self, meta: &Metadata<'_>, cx: &LayerContext<'_, S>) -> bool {
        if self.export.is_claimed() && is_executor_task_span(meta) {
            if self.inner.enabled(meta, cx) {
                DIRECT_PASSED.set(Some(self.export.shared.id));
            }
            return false;
        }
        self.inner.enabled(meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        let inner = self.inner.callsite_enabled(meta);
        if !is_executor_task_span_callsite(meta) || !self.export.is_claimed() {
            return inner;
        }
        self.export
            .shared
            .always
            .store(inner.is_always(), Ordering::Release);
        if inner.is_sometimes() {
            // `enabled` is asked for every attempt: that is where the export learns that
            // this attempt passed.
            Interest::sometimes()
        } else {
            // Nothing to ask per attempt. `never` keeps the registry from creating a span
            // for the attempt when no other layer wants one: with per-layer filters it
            // creates a span unless every filter disabled it, and a filter this one holds
            // back (tracing-opentelemetry's) counts as enabled.
            Interest::never()
        }
    }

    fn event_enabled(&self, event: &Event<'_>, cx: &LayerContext<'_, S>) -> bool {
        self.inner.event_enabled(event, cx)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.inner.max_level_hint()
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: LayerContext<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: LayerContext<'_, S>) {
        self.inner.on_record(id, values, ctx);
    }

    fn on_enter(&self, id: &Id, ctx: LayerContext<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: LayerContext<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: LayerContext<'_, S>) {
        self.inner.on_close(id, ctx);
    }
}

/// The attributes of an executor attempt's span, in the order [`TaskSpanLayer`] records a
/// task span's (`task_name` is a field outside the fixed ones there, so it comes last).
fn attempt_attributes(
    task_id: Value,
    task_name: Option<Arc<str>>,
    kind: Value,
    attempt: i64,
    outcome: Option<&'static str>,
) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(7);
    attributes.push(KeyValue::new(KEY_LEVEL, Level::INFO.as_str()));
    attributes.push(KeyValue::new(KEY_TARGET, names::TARGET));
    attributes.push(KeyValue::new(KEY_TASK_ID, task_id));
    attributes.push(KeyValue::new(KEY_KIND, kind));
    attributes.push(KeyValue::new(KEY_ATTEMPT, attempt));
    if let Some(outcome) = outcome {
        attributes.push(KeyValue::new(KEY_OUTCOME, outcome));
    }
    if let Some(name) = task_name {
        attributes.push(KeyValue::new(KEY_TASK_NAME, Value::from(name)));
    }
    attributes
}

/// Hands a closed attempt to `queue` as a record, with what the SDK would have taken from
/// its parent: the parent's span id and trace state, and its sampling decision (an attempt
/// whose run is not sampled is not exported, as under the SDK's default parent-based
/// sampler).
fn queue_attempt(
    queue: &SpanQueue,
    span: DirectSpan,
    elapsed: Duration,
    kind: Value,
    outcome: Option<&'static str>,
) {
    let (parent_span_id, parent_span_is_remote) = {
        let parent = span.parent_cx.span();
        let parent_sc = parent.span_context();
        if parent_sc.is_valid() {
            (parent_sc.span_id(), parent_sc.is_remote())
        } else {
            (SpanId::INVALID, false)
        }
    };
    let span_context = span.own_cx.span().span_context().clone();
    if !span_context.is_sampled() {
        return;
    }
    queue.push_attempt(FinishedAttempt {
        span_context,
        parent_span_id,
        parent_span_is_remote,
        start: span.start,
        end: span.start.checked_add(elapsed).unwrap_or(span.start),
        task_id: span.task_id,
        task_name: span.task_name,
        kind,
        attempt: span.attempt,
        outcome,
        events: span.events,
        status: span.status,
    });
    // `parent_cx` and `own_cx` are dropped here, on the thread that built them, as
    // `TaskSpanRecord::own_cx`.
}

/// An executor attempt's task id, kept inline (no allocation on the worker) when short, as
/// cairn's `t<number>` ids are.
enum AttemptTaskId {
    Inline { bytes: [u8; 23], len: u8 },
    Owned(String),
}

impl AttemptTaskId {
    fn new(task_id: &str) -> AttemptTaskId {
        let mut bytes = [0u8; 23];
        match (bytes.get_mut(..task_id.len()), u8::try_from(task_id.len())) {
            (Some(prefix), Ok(len)) => {
                prefix.copy_from_slice(task_id.as_bytes());
                AttemptTaskId::Inline { bytes, len }
            }
            _ => AttemptTaskId::Owned(task_id.to_owned()),
        }
    }

    fn into_value(self) -> Value {
        match self {
            AttemptTaskId::Inline { bytes, len } => {
                let text = bytes
                    .get(..usize::from(len))
                    .and_then(|text| std::str::from_utf8(text).ok())
                    .unwrap_or_default();
                Value::from(text.to_owned())
            }
            AttemptTaskId::Owned(text) => Value::from(text),
        }
    }
}

/// A closed executor attempt waiting in a [`SpanQueue`], built into its span on the queue's
/// export thread: the same span [`FinishedTaskSpan::export`] builds through the SDK.
pub(crate) struct FinishedAttempt {
    span_context: SpanContext,
    parent_span_id: SpanId,
    parent_span_is_remote: bool,
    start: SystemTime,
    end: SystemTime,
    task_id: AttemptTaskId,
    task_name: Option<Arc<str>>,
    kind: Value,
    attempt: i64,
    outcome: Option<&'static str>,
    events: Vec<OtelEvent>,
    status: Status,
}

impl FinishedAttempt {
    /// The span, under the SDK's default limit on events per span (the first ones are kept
    /// and the rest counted as dropped, as the SDK does).
    pub(crate) fn into_span_data(self, scope: &InstrumentationScope) -> SpanData {
        let max_events =
            usize::try_from(SpanLimits::default().max_events_per_span).unwrap_or(usize::MAX);
        let mut events = SpanEvents::default();
        let dropped_events = self.events.len().saturating_sub(max_events);
        events.events = self.events;
        events.events.truncate(max_events);
        events.dropped_count = u32::try_from(dropped_events).unwrap_or(u32::MAX);
        SpanData {
            span_context: self.span_context,
            parent_span_id: self.parent_span_id,
            parent_span_is_remote: self.parent_span_is_remote,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed(names::TASK_SPAN),
            start_time: self.start,
            end_time: self.end,
            attributes: attempt_attributes(
                self.task_id.into_value(),
                self.task_name,
                self.kind,
                self.attempt,
                self.outcome,
            ),
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
            status: self.status,
            instrumentation_scope: scope.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The filter's answer travels to `DirectExport::open` through a thread-local, which no
    //! public API can leave stale on purpose; these tests set it directly.

    use std::sync::Arc;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing::Span;

    use super::{DIRECT_PASSED, TaskSpanLayer};
    use crate::attempt::AttemptExport as _;

    fn claimed_export() -> Arc<super::DirectExport> {
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(InMemorySpanExporter::default())
            .build();
        let layer = TaskSpanLayer::with_task_metrics(provider.tracer("t"), None);
        let export = layer.direct_export(None);
        // Claimed by hand: `claim` rebuilds the process's interest cache, which would race
        // the other tests of this binary that count spans on other threads.
        export
            .shared
            .claimed
            .store(true, std::sync::atomic::Ordering::Release);
        export
    }

    #[test]
    fn an_answer_left_by_an_open_that_never_came_is_forgotten_before_the_next_span() {
        let export = claimed_export();
        let kind: Arc<str> = Arc::from("work");
        // The filter passed a span on this thread, but its `open` never came (a layer
        // panicked in between).
        DIRECT_PASSED.set(Some(export.shared.id));
        export.opening();
        // This attempt's filter said nothing (it refused the span): no exported side.
        assert!(
            export.open(&Span::none(), "t1", None, &kind, 1).is_none(),
            "the stale answer was taken for this attempt's"
        );
        // An answer given for this attempt's own span still counts.
        export.opening();
        DIRECT_PASSED.set(Some(export.shared.id));
        assert!(export.open(&Span::none(), "t2", None, &kind, 1).is_some());
        assert_eq!(DIRECT_PASSED.get(), None, "the answer is taken once");
    }
}
