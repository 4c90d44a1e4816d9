//! Joining traces across a crash: deterministic run-span ids and the link from a resumed run
//! to the execution it resumed.
//!
//! A process killed with `kill -9` never exports the end of its run span, and the process that
//! resumes the run cannot ask the dead one for its trace id. So the ids of every
//! [`names::RUN_SPAN`] are *derived* from `(run_id, lease_epoch)` instead of drawn at random:
//! [`run_trace_id`] and [`run_span_id`] give the same answer in every process. A resumed run's
//! span carries `resumed_from_run_id` and `resumed_from_epoch`; [`RunLinkTracer`] turns them into
//! an OpenTelemetry link to [`run_span_context`] of the interrupted execution, with the
//! attributes [`names::ATTR_RUN_ID`] and [`names::ATTR_LEASE_EPOCH`].
//!
//! The SDK draws ids from the tracer provider's id generator, so the provider MUST be built
//! with [`RunIdGenerator`] (use [`tracer_provider_builder`]); with another generator the link
//! is still added but the run spans get random ids and the link points nowhere.

use std::borrow::Cow;
use std::cell::Cell;

use opentelemetry::trace::{
    Link, SpanBuilder, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracer, TracerProviderBuilder};

use crate::names;

/// FNV-1a, 128-bit: tiny, dependency-free and, unlike `std`'s hasher, fixed forever, which is
/// what ids shared between processes (and versions of cairn) need.
fn fnv1a_128(parts: &[&[u8]]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = OFFSET;
    for part in parts {
        for byte in *part {
            hash ^= u128::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
        // A separator after each part keeps ("ab", "c") and ("a", "bc") apart.
        hash ^= 0xff;
        hash = hash.wrapping_mul(PRIME);
    }
    hash
}

/// The trace id of the run span of `run_id` at `lease_epoch`. Never the invalid (zero) id.
///
/// # Examples
///
/// ```
/// use cairn_telemetry::link::run_trace_id;
///
/// assert_eq!(run_trace_id("run-1", 2), run_trace_id("run-1", 2));
/// assert_ne!(run_trace_id("run-1", 2), run_trace_id("run-1", 3));
/// ```
pub fn run_trace_id(run_id: &str, lease_epoch: u64) -> TraceId {
    let hash = fnv1a_128(&[
        b"cairn.trace",
        run_id.as_bytes(),
        &lease_epoch.to_be_bytes(),
    ]);
    TraceId::from(if hash == 0 { 1 } else { hash })
}

/// The span id of the run span of `run_id` at `lease_epoch`. Never the invalid (zero) id.
///
/// # Examples
///
/// ```
/// use cairn_telemetry::link::run_span_id;
///
/// assert_ne!(run_span_id("run-1", 1), run_span_id("run-2", 1));
/// ```
pub fn run_span_id(run_id: &str, lease_epoch: u64) -> SpanId {
    let hash = fnv1a_128(&[b"cairn.span", run_id.as_bytes(), &lease_epoch.to_be_bytes()]);
    // Fold the 128-bit hash so every input byte influences the 64-bit id.
    let folded = (hash as u64) ^ ((hash >> 64) as u64);
    SpanId::from(if folded == 0 { 1 } else { folded })
}

/// The span context of the run span of `run_id` at `lease_epoch`, as another process sees it:
/// sampled and remote. This is the target of a resumed run's link.
///
/// # Examples
///
/// ```
/// use cairn_telemetry::link::{run_span_context, run_trace_id};
///
/// let cx = run_span_context("run-1", 1);
/// assert!(cx.is_valid());
/// assert_eq!(cx.trace_id(), run_trace_id("run-1", 1));
/// ```
pub fn run_span_context(run_id: &str, lease_epoch: u64) -> SpanContext {
    SpanContext::new(
        run_trace_id(run_id, lease_epoch),
        run_span_id(run_id, lease_epoch),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    )
}

thread_local! {
    /// Ids [`RunLinkTracer`] wants the next root span on this thread to get. The SDK asks the
    /// id generator synchronously inside `build_with_context`, so a thread-local handoff is
    /// exact; the tracer clears it again right after the call.
    static PINNED_IDS: Cell<(Option<TraceId>, Option<SpanId>)> = const { Cell::new((None, None)) };
}

/// An [`IdGenerator`] that hands out the derived ids of run spans (pinned by [`RunLinkTracer`])
/// and random ids for everything else.
#[derive(Debug, Default, Clone)]
pub struct RunIdGenerator {
    random: RandomIdGenerator,
}

impl IdGenerator for RunIdGenerator {
    fn new_trace_id(&self) -> TraceId {
        let (trace, span) = PINNED_IDS.get();
        match trace {
            Some(id) => {
                PINNED_IDS.set((None, span));
                id
            }
            None => self.random.new_trace_id(),
        }
    }

    fn new_span_id(&self) -> SpanId {
        let (trace, span) = PINNED_IDS.get();
        match span {
            Some(id) => {
                PINNED_IDS.set((trace, None));
                id
            }
            None => self.random.new_span_id(),
        }
    }
}

/// Runs `build` (a call into the SDK tracer) with the next ids the provider's
/// [`RunIdGenerator`] hands out on this thread pinned to `trace` (when given) and `span`.
pub(crate) fn with_pinned_ids<T>(
    trace: Option<TraceId>,
    span: SpanId,
    build: impl FnOnce() -> T,
) -> T {
    PINNED_IDS.set((trace, Some(span)));
    let built = build();
    PINNED_IDS.set((None, None));
    built
}

/// A tracer provider builder with [`RunIdGenerator`] installed; add exporters and build.
///
/// # Examples
///
/// ```
/// let provider = cairn_telemetry::link::tracer_provider_builder().build();
/// # drop(provider);
/// ```
pub fn tracer_provider_builder() -> TracerProviderBuilder {
    opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_id_generator(RunIdGenerator::default())
}

/// The identity of one run-span execution, read from the span's attributes.
#[derive(Debug, Default)]
struct RunSpanFields {
    run_id: Option<String>,
    lease_epoch: Option<u64>,
    resumed: Option<bool>,
    resumed_from_run_id: Option<String>,
    resumed_from_epoch: Option<u64>,
}

fn value_as_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn value_as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::I64(n) => u64::try_from(*n).ok(),
        Value::String(s) => s.as_str().parse().ok(),
        _ => None,
    }
}

fn value_as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.as_str().parse().ok(),
        _ => None,
    }
}

impl RunSpanFields {
    fn read(attributes: &[KeyValue]) -> Self {
        let mut fields = RunSpanFields::default();
        for kv in attributes {
            match kv.key.as_str() {
                "run_id" => fields.run_id = value_as_string(&kv.value),
                "resumed" => fields.resumed = value_as_bool(&kv.value),
                "resumed_from_run_id" => fields.resumed_from_run_id = value_as_string(&kv.value),
                "resumed_from_epoch" => fields.resumed_from_epoch = value_as_u64(&kv.value),
                key if key == names::RUN_SPAN_LEASE_EPOCH => {
                    fields.lease_epoch = value_as_u64(&kv.value)
                }
                _ => {}
            }
        }
        fields
    }

    /// The lease epoch of this execution: given explicitly, or inferred from the resume fields
    /// (a claim raises the epoch by one; a fresh run starts at 1). `None` when it cannot be
    /// known, in which case the span keeps random ids rather than risk sharing a trace id with
    /// another execution.
    fn own_epoch(&self) -> Option<u64> {
        if let Some(epoch) = self.lease_epoch {
            return Some(epoch);
        }
        match (&self.resumed_from_run_id, self.resumed_from_epoch) {
            (from, Some(epoch)) if from.is_none() || from == &self.run_id => epoch.checked_add(1),
            (None, None) if self.resumed != Some(true) => Some(1),
            _ => None,
        }
    }
}

/// A [`Tracer`] that wraps the SDK tracer and gives [`names::RUN_SPAN`] spans their derived
/// ids, their resume link and a fresh trace. Every other span passes through untouched.
///
/// For a run span it:
/// - starts a new trace even when opened inside another span (that span becomes a link with
///   [`names::ATTR_LINK_KIND`] = [`names::LINK_KIND_PARENT`]), so the ids stay derivable;
/// - pins trace and span id to [`run_trace_id`] / [`run_span_id`] of its own
///   `(run_id, lease_epoch)` and records them as [`names::ATTR_RUN_ID`] /
///   [`names::ATTR_LEASE_EPOCH`] attributes;
/// - when `resumed_from_run_id` and `resumed_from_epoch` are set, adds a link to
///   [`run_span_context`] of those, with the same two attributes.
///
/// Fields only count if they are known when the span starts (given at creation, or recorded
/// before the span is first entered).
#[derive(Debug, Clone)]
pub struct RunLinkTracer {
    inner: SdkTracer,
}

impl RunLinkTracer {
    /// Wraps `inner`, which should come from a provider built by [`tracer_provider_builder`].
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::link::{self, RunLinkTracer};
    /// use cairn_telemetry::names;
    /// use opentelemetry::KeyValue;
    /// use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    /// use opentelemetry_sdk::trace::InMemorySpanExporter;
    ///
    /// let exporter = InMemorySpanExporter::default();
    /// let provider = link::tracer_provider_builder()
    ///     .with_simple_exporter(exporter.clone())
    ///     .build();
    /// let tracer = RunLinkTracer::new(provider.tracer("cairn"));
    /// // The run span of a resume of run r1, whose lease epoch was 1.
    /// let mut span = tracer
    ///     .span_builder(names::RUN_SPAN)
    ///     .with_attributes([
    ///         KeyValue::new("run_id", "r1"),
    ///         KeyValue::new("resumed_from_run_id", "r1"),
    ///         KeyValue::new("resumed_from_epoch", 1_i64),
    ///     ])
    ///     .start(&tracer);
    /// // Its ids are derived from its own epoch, 2 ...
    /// assert_eq!(span.span_context().trace_id(), link::run_trace_id("r1", 2));
    /// span.end();
    /// // ... and it links to the execution it resumed.
    /// let spans = exporter.get_finished_spans().expect("spans");
    /// let linked: Vec<_> = spans[0].links.iter().map(|link| link.span_context.clone()).collect();
    /// assert_eq!(linked, [link::run_span_context("r1", 1)]);
    /// ```
    pub fn new(inner: SdkTracer) -> Self {
        RunLinkTracer { inner }
    }

    /// The wrapped SDK tracer.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::link::{self, RunLinkTracer};
    /// use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
    ///
    /// let provider = link::tracer_provider_builder().build();
    /// let tracer = RunLinkTracer::new(provider.tracer("cairn"));
    /// // A span started on the SDK tracer itself gets no run link.
    /// let mut span = tracer.inner().start("plain");
    /// assert!(span.span_context().is_valid());
    /// span.end();
    /// # provider.shutdown().ok();
    /// ```
    pub fn inner(&self) -> &SdkTracer {
        &self.inner
    }
}

impl Tracer for RunLinkTracer {
    type Span = <SdkTracer as Tracer>::Span;

    fn build_with_context(&self, mut builder: SpanBuilder, parent_cx: &Context) -> Self::Span {
        if builder.name != Cow::Borrowed(names::RUN_SPAN) {
            return self.inner.build_with_context(builder, parent_cx);
        }
        let fields = RunSpanFields::read(builder.attributes.as_deref().unwrap_or(&[]));
        let links = builder.links.get_or_insert_with(Vec::new);

        let parent = parent_cx.span().span_context().clone();
        if parent.is_valid() {
            links.push(Link::new(
                parent.clone(),
                vec![KeyValue::new(
                    names::ATTR_LINK_KIND,
                    names::LINK_KIND_PARENT,
                )],
                0,
            ));
        }
        if let (Some(from_run), Some(from_epoch)) =
            (&fields.resumed_from_run_id, fields.resumed_from_epoch)
        {
            links.push(Link::new(
                run_span_context(from_run, from_epoch),
                vec![
                    KeyValue::new(names::ATTR_RUN_ID, from_run.clone()),
                    KeyValue::new(names::ATTR_LEASE_EPOCH, epoch_value(from_epoch)),
                    KeyValue::new(names::ATTR_LINK_KIND, names::LINK_KIND_RESUMED_FROM),
                ],
                0,
            ));
        }

        // A run span is a trace root. An empty context is the only way to drop an enclosing
        // span: the parent-based sampler would treat an invalid placeholder span as an
        // unsampled parent. Values other than the span (baggage) do not survive this.
        let empty_cx;
        let root_cx = if parent.is_valid() {
            empty_cx = Context::new();
            &empty_cx
        } else {
            parent_cx
        };
        let own = fields.run_id.as_deref().zip(fields.own_epoch());
        if let Some((run_id, epoch)) = own {
            let attributes = builder.attributes.get_or_insert_with(Vec::new);
            attributes.push(KeyValue::new(names::ATTR_RUN_ID, run_id.to_owned()));
            attributes.push(KeyValue::new(names::ATTR_LEASE_EPOCH, epoch_value(epoch)));
            PINNED_IDS.set((
                Some(run_trace_id(run_id, epoch)),
                Some(run_span_id(run_id, epoch)),
            ));
        }
        let span = self.inner.build_with_context(builder, root_cx);
        PINNED_IDS.set((None, None));
        span
    }
}

/// Epochs go out as OpenTelemetry integers; one beyond `i64::MAX` (never reached in practice)
/// goes out as its decimal string rather than wrapping.
fn epoch_value(epoch: u64) -> Value {
    match i64::try_from(epoch) {
        Ok(n) => Value::I64(n),
        Err(_) => Value::String(epoch.to_string().into()),
    }
}
