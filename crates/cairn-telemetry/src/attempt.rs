//! The executor's path to a task attempt's exported span and metrics without a tracing span
//! per attempt.
//!
//! A task attempt is the executor's hot path: at 100,000 attempts per second, a span in
//! tracing-subscriber's registry (opened, entered, recorded, closed, and looked up by every
//! per-layer filter) costs more than the executor's own work. So when cairn's export layers
//! are in the subscriber, they hide the executor's task span callsite from their own trace
//! half and leave an [`AttemptHook`] in the stack; the executor finds it once per run
//! ([`AttemptHook::find`]) and hands each attempt's fields to it. The exported span and the
//! task metrics are then built from those fields directly, and the registry creates a
//! tracing span for the attempt only when some other layer (a fmt layer, say) wants one.
//!
//! What gets exported does not change: the same span name, attributes, parent, events and
//! OpenTelemetry context as the traced path (`docs/telemetry.md`, "How task spans are
//! exported"); whether the span is exported is still what the trace half's filter
//! (`RUST_LOG`) answers for the executor's task span callsite.

use std::sync::Arc;

use tracing::{Dispatch, Span};

/// The module whose task span callsite the hook stands in for: the executor's.
///
/// cairn's export layers recognise that one callsite by its module path (never exported:
/// spans carry no source location) so that task spans opened anywhere else keep the traced
/// path. The executor checks in a test that its attempts open their span from this module.
pub const EXECUTOR_TASK_SPAN_MODULE: &str = "cairn_executor::attempt";

/// Builds the exported side of task attempts; see the module docs.
pub trait AttemptExport: Send + Sync + 'static {
    /// An executor found this export ([`AttemptHook::find`]) and will hand it its attempts:
    /// from now on the stack leaves them to it. Until then (no executor has looked, or the
    /// hook cannot be found because a wrapper layer hides it) the executor's task spans take
    /// the traced path, so nothing is lost when the hook is out of reach.
    fn claim(&self);

    /// The executor is about to open an attempt's task span through `tracing` on this
    /// thread, and will then call [`AttemptExport::open`]. An export that learns from the
    /// trace half's filter during that open forgets here whatever an earlier open on this
    /// thread left behind (a layer that panicked between the span and `open`), so it cannot
    /// be taken for this attempt's answer. Does nothing by default.
    fn opening(&self) {}

    /// The exported side of one attempt of task `task_id` (its text, `t<id>`), named
    /// `task_name` when it has a name, of kind `kind`, attempt number `attempt`, opened under
    /// `parent` (the run span).
    ///
    /// Call it on the attempt's thread right after opening the executor's task span through
    /// `tracing` (that is when the trace half's filter answers for it). `None` means the
    /// attempt has no exported side here: the tracing span carries it, as it does without
    /// a hook.
    fn open(
        &self,
        parent: &Span,
        task_id: &str,
        task_name: Option<&Arc<str>>,
        kind: &Arc<str>,
        attempt: u32,
    ) -> Option<Box<dyn AttemptRecord>>;
}

/// The exported side of one task attempt, owned by the attempt.
pub trait AttemptRecord: Send {
    /// The attempt is being polled on this thread: its OpenTelemetry context becomes the
    /// current one, and events outside any other span become its span events.
    fn enter(&mut self);
    /// Undoes the last [`AttemptRecord::enter`] on this thread.
    fn exit(&mut self);
    /// The attempt ended with `outcome` (one of the documented task outcomes); the span's
    /// end and the measured duration are now.
    fn set_outcome(&mut self, outcome: &'static str);
    /// Exports the span (when the trace half's filter passed it) and records the task
    /// metrics.
    fn close(self: Box<Self>);
}

/// Where the executor finds the [`AttemptExport`] of its run's subscriber: a tracing layer
/// that does nothing itself, left in the stack by cairn's export layers.
pub struct AttemptHook {
    export: Arc<dyn AttemptExport>,
}

impl std::fmt::Debug for AttemptHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttemptHook").finish_non_exhaustive()
    }
}

impl AttemptHook {
    /// A hook handing attempts to `export`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use cairn_telemetry::attempt::{AttemptExport, AttemptHook, AttemptRecord};
    /// use tracing_subscriber::layer::SubscriberExt as _;
    ///
    /// /// An export that only notes whether an executor claimed it.
    /// #[derive(Default)]
    /// struct Claimed(AtomicBool);
    ///
    /// impl AttemptExport for Claimed {
    ///     fn claim(&self) {
    ///         self.0.store(true, Ordering::SeqCst);
    ///     }
    ///
    ///     fn open(
    ///         &self,
    ///         _parent: &tracing::Span,
    ///         _task_id: &str,
    ///         _task_name: Option<&Arc<str>>,
    ///         _kind: &Arc<str>,
    ///         _attempt: u32,
    ///     ) -> Option<Box<dyn AttemptRecord>> {
    ///         None
    ///     }
    /// }
    ///
    /// let export = Arc::new(Claimed::default());
    /// let hook = AttemptHook::new(export.clone());
    /// let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(hook));
    /// // The executor finds the hook in the subscriber, which claims the export.
    /// assert!(AttemptHook::find(&dispatch).is_some());
    /// assert!(export.0.load(Ordering::SeqCst));
    /// ```
    pub fn new(export: Arc<dyn AttemptExport>) -> Self {
        AttemptHook { export }
    }

    /// The export of the hook in `dispatch`, if its subscriber has one.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::attempt::AttemptHook;
    ///
    /// // A subscriber without cairn's export layers has no hook.
    /// let dispatch = tracing::Dispatch::none();
    /// assert!(AttemptHook::find(&dispatch).is_none());
    /// ```
    pub fn find(dispatch: &Dispatch) -> Option<Arc<dyn AttemptExport>> {
        let hook = dispatch.downcast_ref::<AttemptHook>()?;
        hook.export.claim();
        Some(Arc::clone(&hook.export))
    }
}

// The hook is found by downcasting the subscriber; as a layer it does nothing.
#[cfg(feature = "export")]
impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AttemptHook {}
