//! [`SpanQueue`]: the span processor `init` exports through. It batches finished spans to an
//! exporter on a thread of its own, like the SDK's `BatchSpanProcessor`, and also takes the
//! executor's task attempts as compact records ([`crate::attempt`]), which it turns into
//! spans on that thread: a worker that finishes an attempt only appends a record under a
//! lock, and neither builds an SDK span nor formats an attribute.
//!
//! Spans are exported in the order they were queued, in batches of at most
//! [`SpanQueueConfig::max_export_batch_size`]: as soon as a full batch waits, else every
//! [`SpanQueueConfig::scheduled_delay`], and on [`SpanProcessor::force_flush`] and shutdown.
//! A full queue drops the new span and counts it ([`SpanQueue::dropped_spans`]) instead of
//! blocking a worker; failed exports are counted too ([`SpanQueue::failed_exports`]) and
//! reported by the next flush. An export that does not finish within
//! [`SpanQueueConfig::export_timeout`] is abandoned and counted as failed. The first failure
//! after a success is logged as a warning (target [`LOG_TARGET`]), and so is the first success
//! after failures; the failures between them are only counted, so a collector that is down
//! does not flood the log.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use opentelemetry::{Context, InstrumentationScope};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::error::Error;
use crate::task_span::FinishedAttempt;

/// The SDK's variable for the delay between two exports, in milliseconds.
pub const ENV_BSP_SCHEDULE_DELAY: &str = "OTEL_BSP_SCHEDULE_DELAY";
/// The SDK's variable for how many spans may wait for export.
pub const ENV_BSP_MAX_QUEUE_SIZE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
/// The SDK's variable for how many spans go in one export.
pub const ENV_BSP_MAX_EXPORT_BATCH_SIZE: &str = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";
/// The SDK's variable for how long one export may take, in milliseconds.
pub const ENV_BSP_EXPORT_TIMEOUT: &str = "OTEL_BSP_EXPORT_TIMEOUT";

/// The tracing target of the queue's own log lines (export failures and recoveries). It is
/// not cairn's event target, so these lines are never exported as spans themselves.
pub const LOG_TARGET: &str = "cairn_telemetry::span_queue";

/// How long [`SpanProcessor::force_flush`] waits for the export thread.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A [`SpanQueue`]'s limits and timing.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cairn_telemetry::span_queue::SpanQueueConfig;
///
/// let config = SpanQueueConfig::default()
///     .with_scheduled_delay(Duration::from_millis(500))
///     .with_max_export_batch_size(256);
/// assert_eq!(config.max_export_batch_size(), 256);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanQueueConfig {
    max_queue_size: usize,
    max_export_batch_size: usize,
    scheduled_delay: Duration,
    export_timeout: Duration,
}

impl Default for SpanQueueConfig {
    /// [`crate::SPAN_QUEUE_SIZE`] spans queued at most, batches of 512, an export at least
    /// every 5 s, 30 s for one export (the SDK's defaults, but for the larger queue).
    fn default() -> Self {
        SpanQueueConfig {
            max_queue_size: crate::SPAN_QUEUE_SIZE,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_secs(5),
            export_timeout: Duration::from_secs(30),
        }
    }
}

impl SpanQueueConfig {
    /// The defaults, overridden by the SDK's `OTEL_BSP_SCHEDULE_DELAY` (milliseconds),
    /// `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` and
    /// `OTEL_BSP_EXPORT_TIMEOUT` (milliseconds) where set.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEnv`] when one of them is set but is not a whole number (or is zero,
    /// for the sizes and the export timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = cairn_telemetry::span_queue::SpanQueueConfig::from_env()?;
    /// assert!(config.max_export_batch_size() <= config.max_queue_size());
    /// # Ok::<(), cairn_telemetry::Error>(())
    /// ```
    pub fn from_env() -> Result<Self, Error> {
        let mut config = SpanQueueConfig::default();
        if let Some(ms) = env_number(ENV_BSP_SCHEDULE_DELAY, false)? {
            config.scheduled_delay = Duration::from_millis(ms);
        }
        if let Some(size) = env_number(ENV_BSP_MAX_QUEUE_SIZE, true)? {
            config.max_queue_size = usize::try_from(size).unwrap_or(usize::MAX);
        }
        if let Some(size) = env_number(ENV_BSP_MAX_EXPORT_BATCH_SIZE, true)? {
            config.max_export_batch_size = usize::try_from(size).unwrap_or(usize::MAX);
        }
        if let Some(ms) = env_number(ENV_BSP_EXPORT_TIMEOUT, true)? {
            config.export_timeout = Duration::from_millis(ms);
        }
        Ok(config.clamped())
    }

    /// At most this many spans wait for export; more are dropped and counted. At least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::span_queue::SpanQueueConfig;
    ///
    /// let config = SpanQueueConfig::default().with_max_queue_size(1_000);
    /// assert_eq!(config.max_queue_size(), 1_000);
    /// // A queue holds at least one span, and a batch never exceeds it.
    /// let tiny = SpanQueueConfig::default().with_max_queue_size(0);
    /// assert_eq!((tiny.max_queue_size(), tiny.max_export_batch_size()), (1, 1));
    /// ```
    #[must_use]
    pub fn with_max_queue_size(mut self, size: usize) -> Self {
        self.max_queue_size = size;
        self.clamped()
    }

    /// At most this many spans go in one export, and a full batch is exported at once. At
    /// least 1, at most the queue size.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::span_queue::SpanQueueConfig;
    ///
    /// let config = SpanQueueConfig::default().with_max_queue_size(100);
    /// assert_eq!(config.with_max_export_batch_size(10).max_export_batch_size(), 10);
    /// // Clamped to the queue size.
    /// assert_eq!(config.with_max_export_batch_size(500).max_export_batch_size(), 100);
    /// ```
    #[must_use]
    pub fn with_max_export_batch_size(mut self, size: usize) -> Self {
        self.max_export_batch_size = size;
        self.clamped()
    }

    /// The longest a queued span waits when no batch fills up. At least 1 ms: with no delay
    /// at all the export thread would never sleep while the queue is idle.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_telemetry::span_queue::SpanQueueConfig;
    ///
    /// assert_eq!(SpanQueueConfig::default().scheduled_delay(), Duration::from_secs(5));
    /// let config = SpanQueueConfig::default().with_scheduled_delay(Duration::from_millis(200));
    /// assert_eq!(config.scheduled_delay(), Duration::from_millis(200));
    /// // Zero (also what `OTEL_BSP_SCHEDULE_DELAY=0` asks for) is taken as 1 ms.
    /// let zero = SpanQueueConfig::default().with_scheduled_delay(Duration::ZERO);
    /// assert_eq!(zero.scheduled_delay(), Duration::from_millis(1));
    /// ```
    #[must_use]
    pub fn with_scheduled_delay(mut self, delay: Duration) -> Self {
        self.scheduled_delay = delay;
        self.clamped()
    }

    /// The longest one export may take; after it the export is abandoned (its future is
    /// dropped, which cancels an OTLP request) and counted as failed. An exporter that blocks
    /// its thread instead of returning a pending future cannot be interrupted. At least 1 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_telemetry::span_queue::SpanQueueConfig;
    ///
    /// let config = SpanQueueConfig::default().with_export_timeout(Duration::from_secs(2));
    /// assert_eq!(config.export_timeout(), Duration::from_secs(2));
    /// // Zero would abandon every export: it is taken as 1 ms.
    /// let zero = SpanQueueConfig::default().with_export_timeout(Duration::ZERO);
    /// assert_eq!(zero.export_timeout(), Duration::from_millis(1));
    /// ```
    #[must_use]
    pub fn with_export_timeout(mut self, timeout: Duration) -> Self {
        self.export_timeout = timeout;
        self.clamped()
    }

    /// See [`SpanQueueConfig::with_max_queue_size`].
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::span_queue::SpanQueueConfig;
    ///
    /// // Without the `OTEL_BSP_*` variables, the queue holds `SPAN_QUEUE_SIZE` spans.
    /// let config = SpanQueueConfig::default();
    /// assert_eq!(config.max_queue_size(), cairn_telemetry::SPAN_QUEUE_SIZE);
    /// ```
    pub fn max_queue_size(&self) -> usize {
        self.max_queue_size
    }

    /// See [`SpanQueueConfig::with_max_export_batch_size`].
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::span_queue::SpanQueueConfig;
    ///
    /// let config = SpanQueueConfig::default().with_max_export_batch_size(64);
    /// assert_eq!(config.max_export_batch_size(), 64);
    /// ```
    pub fn max_export_batch_size(&self) -> usize {
        self.max_export_batch_size
    }

    /// See [`SpanQueueConfig::with_scheduled_delay`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_telemetry::span_queue::SpanQueueConfig;
    ///
    /// let config = SpanQueueConfig::default().with_scheduled_delay(Duration::from_millis(50));
    /// assert_eq!(config.scheduled_delay(), Duration::from_millis(50));
    /// ```
    pub fn scheduled_delay(&self) -> Duration {
        self.scheduled_delay
    }

    /// See [`SpanQueueConfig::with_export_timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_telemetry::span_queue::SpanQueueConfig;
    ///
    /// let config = SpanQueueConfig::default().with_export_timeout(Duration::from_secs(3));
    /// assert_eq!(config.export_timeout(), Duration::from_secs(3));
    /// ```
    pub fn export_timeout(&self) -> Duration {
        self.export_timeout
    }

    /// A batch never exceeds the queue (as in the SDK), and neither is empty.
    fn clamped(mut self) -> Self {
        self.max_queue_size = self.max_queue_size.max(1);
        self.max_export_batch_size = self.max_export_batch_size.clamp(1, self.max_queue_size);
        self.export_timeout = self.export_timeout.max(Duration::from_millis(1));
        // A zero delay made the export loop spin a core while idle.
        self.scheduled_delay = self.scheduled_delay.max(Duration::from_millis(1));
        self
    }
}

/// `name`'s value as a number, if set.
fn env_number(name: &'static str, nonzero: bool) -> Result<Option<u64>, Error> {
    let Ok(value) = std::env::var(name) else {
        return Ok(None);
    };
    match value.trim().parse::<u64>() {
        Ok(number) if !(nonzero && number == 0) => Ok(Some(number)),
        _ => Err(Error::InvalidEnv {
            name,
            value,
            expected: match (nonzero, name) {
                (true, ENV_BSP_EXPORT_TIMEOUT) => "a whole number of milliseconds above zero",
                (true, _) => "a whole number above zero",
                (false, _) => "a whole number of milliseconds",
            },
        }),
    }
}

/// A span waiting for export: one the SDK built (boxed: it is rare next to attempts, and twice
/// their size), or an executor attempt still to be built.
#[expect(
    clippy::large_enum_variant,
    reason = "attempts are nearly every item; boxing them would cost an allocation each"
)]
enum Queued {
    Span(Box<SpanData>),
    Attempt(FinishedAttempt),
}

impl Queued {
    fn into_span_data(self, attempt_scope: &InstrumentationScope) -> SpanData {
        match self {
            Queued::Span(span) => *span,
            Queued::Attempt(attempt) => attempt.into_span_data(attempt_scope),
        }
    }
}

/// A batch span processor that also takes the executor's attempts (see the module docs).
/// Clones share one queue and one export thread: register one clone with the tracer
/// provider and give another to [`crate::Providers`], so that the export layers hand attempts
/// to it directly. Shutting the provider down shuts the queue down.
///
/// # Examples
///
/// ```
/// use cairn_telemetry::span_queue::{SpanQueue, SpanQueueConfig};
/// use opentelemetry::trace::{Tracer as _, TracerProvider as _};
/// use opentelemetry_sdk::trace::InMemorySpanExporter;
///
/// let exporter = InMemorySpanExporter::default();
/// let queue = SpanQueue::new(exporter.clone(), SpanQueueConfig::default())?;
/// let provider = cairn_telemetry::link::tracer_provider_builder()
///     .with_span_processor(queue.clone())
///     .build();
/// provider.tracer("example").in_span("work", |_| {});
/// provider.force_flush().expect("flushed");
/// assert_eq!(exporter.get_finished_spans().expect("spans").len(), 1);
/// provider.shutdown().expect("shut down");
/// # Ok::<(), cairn_telemetry::Error>(())
/// ```
#[derive(Clone)]
pub struct SpanQueue {
    shared: Arc<Shared>,
}

impl fmt::Debug for SpanQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanQueue")
            .field("config", &self.shared.config)
            .field("dropped_spans", &self.dropped_spans())
            .field("failed_exports", &self.failed_exports())
            .finish_non_exhaustive()
    }
}

struct Shared {
    config: SpanQueueConfig,
    state: Mutex<State>,
    /// The export thread waits here for work.
    work: Condvar,
    /// Flushes and shutdowns wait here for the export thread.
    progress: Condvar,
    dropped: AtomicU64,
    failed: AtomicU64,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// What the shutdown returned when it failed, for [`crate::Providers`] to report: the
    /// tracer provider wraps it in a list of every processor's errors.
    shutdown_error: Mutex<Option<OTelSdkError>>,
}

#[derive(Default)]
struct State {
    queued: VecDeque<Queued>,
    /// Spans ever queued, and ever taken (and exported, or failed) by the export thread.
    pushed: u64,
    exported: u64,
    /// A flush is done once `exported` reaches this.
    flush_to: u64,
    /// Failed exports not yet reported by a flush, with the last one's error.
    unreported_failure: Option<String>,
    resource: Option<Resource>,
    shutdown: bool,
    stopped: bool,
}

impl SpanQueue {
    /// Starts the export thread (named `cairn-span-export`) over `exporter`.
    ///
    /// # Errors
    ///
    /// [`Error::ExportThread`] when the thread cannot be spawned.
    ///
    /// # Examples
    ///
    /// See [`SpanQueue`].
    pub fn new<E>(exporter: E, config: SpanQueueConfig) -> Result<SpanQueue, Error>
    where
        E: SpanExporter + 'static,
    {
        let shared = Arc::new(Shared {
            config: config.clamped(),
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            progress: Condvar::new(),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            thread: Mutex::new(None),
            shutdown_error: Mutex::new(None),
        });
        let for_thread = Arc::clone(&shared);
        let handle = thread::Builder::new()
            .name("cairn-span-export".to_owned())
            .spawn(move || export_loop(&for_thread, exporter))
            .map_err(|source| Error::ExportThread { source })?;
        *lock(&shared.thread) = Some(handle);
        Ok(SpanQueue { shared })
    }

    /// Spans dropped because the queue was full or shut down.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::span_queue::{SpanQueue, SpanQueueConfig};
    /// use opentelemetry::trace::{Tracer as _, TracerProvider as _};
    /// use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanProcessor as _};
    ///
    /// let queue = SpanQueue::new(InMemorySpanExporter::default(), SpanQueueConfig::default())?;
    /// let provider = cairn_telemetry::link::tracer_provider_builder()
    ///     .with_span_processor(queue.clone())
    ///     .build();
    /// assert_eq!(queue.dropped_spans(), 0);
    /// // A span that ends after the queue shut down is dropped and counted.
    /// queue.shutdown().expect("shut down");
    /// provider.tracer("example").in_span("late", |_| {});
    /// assert_eq!(queue.dropped_spans(), 1);
    /// # Ok::<(), cairn_telemetry::Error>(())
    /// ```
    pub fn dropped_spans(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Exports the exporter failed.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::span_queue::{SpanQueue, SpanQueueConfig};
    /// use opentelemetry::trace::{Tracer as _, TracerProvider as _};
    /// use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
    /// use opentelemetry_sdk::trace::{SpanData, SpanExporter};
    ///
    /// /// An exporter whose collector is down.
    /// #[derive(Debug)]
    /// struct Down;
    ///
    /// impl SpanExporter for Down {
    ///     async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
    ///         Err(OTelSdkError::InternalFailure("connection refused".to_owned()))
    ///     }
    /// }
    ///
    /// let queue = SpanQueue::new(Down, SpanQueueConfig::default())?;
    /// let provider = cairn_telemetry::link::tracer_provider_builder()
    ///     .with_span_processor(queue.clone())
    ///     .build();
    /// provider.tracer("example").in_span("work", |_| {});
    /// // The flush reports the failure, and the queue counts it.
    /// assert!(provider.force_flush().is_err());
    /// assert_eq!(queue.failed_exports(), 1);
    /// # provider.shutdown().ok();
    /// # Ok::<(), cairn_telemetry::Error>(())
    /// ```
    pub fn failed_exports(&self) -> u64 {
        self.shared.failed.load(Ordering::Relaxed)
    }

    /// The error the shutdown returned, if it failed.
    pub(crate) fn shutdown_error(&self) -> Option<OTelSdkError> {
        lock(&self.shared.shutdown_error)
            .as_ref()
            .map(crate::metric_export::copy_error)
    }

    /// Queues an executor attempt's span (built on the export thread).
    pub(crate) fn push_attempt(&self, attempt: FinishedAttempt) {
        self.push(Queued::Attempt(attempt));
    }

    fn push(&self, item: Queued) {
        let shared = &*self.shared;
        let mut state = lock(&shared.state);
        if state.shutdown || state.queued.len() >= shared.config.max_queue_size {
            drop(state);
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        state.queued.push_back(item);
        state.pushed += 1;
        // The thread is woken once per full batch, not per span.
        let wake = state.queued.len() == shared.config.max_export_batch_size;
        drop(state);
        if wake {
            shared.work.notify_one();
        }
    }

    /// Waits until `done` holds of the state or `timeout` passes.
    fn wait_for<'a>(
        &'a self,
        timeout: Duration,
        mut state: MutexGuard<'a, State>,
        done: impl Fn(&State) -> bool,
    ) -> Result<MutexGuard<'a, State>, OTelSdkError> {
        let deadline = Instant::now() + timeout;
        while !done(&state) {
            let now = Instant::now();
            if now >= deadline {
                return Err(OTelSdkError::Timeout(timeout));
            }
            state = self
                .shared
                .progress
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        Ok(state)
    }

    /// Waits for the export thread to stop, collects it and reports what failed.
    fn finish_shutdown(&self, timeout: Duration, state: MutexGuard<'_, State>) -> OTelSdkResult {
        let state = self.wait_for(timeout, state, |state| state.stopped)?;
        let failure = state.unreported_failure.clone();
        drop(state);
        if let Some(handle) = lock(&self.shared.thread).take() {
            // The thread has stopped: this only collects it.
            let _ = handle.join();
        }
        match failure {
            Some(error) => Err(OTelSdkError::InternalFailure(error)),
            None => Ok(()),
        }
    }
}

impl SpanProcessor for SpanQueue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.push(Queued::Span(Box::new(span)));
        }
    }

    /// Exports everything queued so far, and reports an export that failed since the last
    /// flush.
    fn force_flush(&self) -> OTelSdkResult {
        let mut state = lock(&self.shared.state);
        if state.stopped {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let target = state.pushed;
        state.flush_to = state.flush_to.max(target);
        self.shared.work.notify_one();
        let mut state = self.wait_for(FLUSH_TIMEOUT, state, |state| {
            state.exported >= target || state.stopped
        })?;
        match state.unreported_failure.take() {
            Some(error) => Err(OTelSdkError::InternalFailure(error)),
            None => Ok(()),
        }
    }

    /// Exports what is queued, shuts the exporter down and stops the thread. Spans that end
    /// afterwards are dropped and counted.
    ///
    /// Waits at most `timeout` for the thread: an export still running then (a collector
    /// that does not answer) is left to finish or time out on its own, and the shutdown
    /// returns [`OTelSdkError::Timeout`].
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let mut state = lock(&self.shared.state);
        if state.shutdown {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        state.shutdown = true;
        self.shared.work.notify_one();
        let result = self.finish_shutdown(timeout, state);
        if let Err(error) = &result {
            *lock(&self.shared.shutdown_error) = Some(crate::metric_export::copy_error(error));
        }
        result
    }

    fn set_resource(&mut self, resource: &Resource) {
        lock(&self.shared.state).resource = Some(resource.clone());
        self.shared.work.notify_one();
    }
}

/// Locks `mutex`; a panic elsewhere while it was held leaves nothing half-written here (every
/// critical section is a few field updates), so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The export thread: waits for a full batch, the scheduled delay, a flush or the shutdown,
/// then exports what is queued, a batch at a time.
fn export_loop<E: SpanExporter>(shared: &Shared, mut exporter: E) {
    let config = shared.config;
    let attempt_scope = crate::layers::scope();
    let mut next_export = Instant::now() + config.scheduled_delay;
    // Reused from batch to batch; only the exported `Vec` is new each time.
    let mut items: Vec<Queued> = Vec::with_capacity(config.max_export_batch_size);
    // Exports failed in a row; only the first of a streak and the recovery are logged.
    let mut failing_since: u64 = 0;
    loop {
        let mut state = lock(&shared.state);
        let export_due = loop {
            let now = Instant::now();
            let export_due = state.queued.len() >= config.max_export_batch_size
                || state.flush_to > state.exported
                || state.shutdown
                || now >= next_export;
            // A new resource is applied at once, without exporting a partial batch early.
            if export_due || state.resource.is_some() {
                break export_due;
            }
            state = shared
                .work
                .wait_timeout(state, next_export - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        };
        let resource = state.resource.take();
        let take = if export_due {
            state.queued.len().min(config.max_export_batch_size)
        } else {
            0
        };
        items.extend(state.queued.drain(..take));
        let stopping = state.shutdown && state.queued.is_empty();
        drop(state);

        if let Some(resource) = resource {
            exporter.set_resource(&resource);
        }
        let result = if items.is_empty() {
            Ok(())
        } else {
            let mut batch = Vec::with_capacity(items.len());
            batch.extend(
                items
                    .drain(..)
                    .map(|item| item.into_span_data(&attempt_scope)),
            );
            // An exporter that panics fails this export; the thread goes on, so flushes and
            // the shutdown still finish.
            std::panic::catch_unwind(AssertUnwindSafe(|| {
                block_on(exporter.export(batch), config.export_timeout)
                    .unwrap_or(Err(OTelSdkError::Timeout(config.export_timeout)))
            }))
            .unwrap_or_else(|_| {
                Err(OTelSdkError::InternalFailure(
                    "the span exporter panicked".to_owned(),
                ))
            })
        };
        // The delay runs again from an export that emptied the queue (a full batch may
        // have more behind it).
        if export_due && take < config.max_export_batch_size {
            next_export = Instant::now() + config.scheduled_delay;
        }

        let mut state = lock(&shared.state);
        state.exported += take as u64;
        let mut log_line = None;
        match result {
            Err(error) => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
                let error = crate::metric_export::failure_text(&error);
                if failing_since == 0 {
                    log_line = Some(ExportLog::Failed(error.clone(), take));
                }
                failing_since += 1;
                state.unreported_failure = Some(error);
            }
            Ok(()) if take > 0 && failing_since > 0 => {
                log_line = Some(ExportLog::Recovered(failing_since));
                failing_since = 0;
            }
            Ok(()) => {}
        }
        if let Some(line) = log_line {
            // Logged without the lock: a subscriber may queue spans of its own.
            drop(state);
            line.emit();
            state = lock(&shared.state);
        }
        if stopping {
            if let Err(error) = exporter.shutdown() {
                state.unreported_failure = Some(crate::metric_export::failure_text(&error));
            }
            state.stopped = true;
            drop(state);
            shared.progress.notify_all();
            return;
        }
        drop(state);
        shared.progress.notify_all();
    }
}

/// A log line about exports, emitted without the state lock held.
enum ExportLog {
    /// The first failure after a success: its error and the spans it lost.
    Failed(String, usize),
    /// The first success after this many failures.
    Recovered(u64),
}

impl ExportLog {
    fn emit(self) {
        match self {
            ExportLog::Failed(error, spans) => tracing::warn!(
                target: LOG_TARGET,
                %error,
                spans,
                "span export failed; the spans of that batch are lost, and further failures \
                 are only counted until an export succeeds"
            ),
            ExportLog::Recovered(failed) => tracing::warn!(
                target: LOG_TARGET,
                failed_exports = failed,
                "span export works again after {failed} failed export(s)"
            ),
        }
    }
}

/// Runs `future` on this thread until it completes (`Some`) or `timeout` passes (`None`: the
/// future is dropped). Exporters return futures that are ready at once or wake through their
/// own runtime (tonic's connection runs on the tokio runtime the exporter was built in), as
/// under the SDK's batch processor.
fn block_on<F: Future>(future: F, timeout: Duration) -> Option<F::Output> {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = TaskContext::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let deadline = Instant::now() + timeout;
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
        // A wake-up may be spurious or early: poll again and check the deadline each time.
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::park_timeout(deadline - now);
    }
}
