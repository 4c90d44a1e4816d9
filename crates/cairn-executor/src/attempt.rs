//! One task attempt as it runs on a tokio worker: its body, the task span around it, and the
//! outcome label that span reports.
//!
//! The task span is opened, labelled and closed here, inside the attempt's own tokio task,
//! not on the drive task. The drive is the executor's serial path (it applies every result
//! and starts every attempt), while attempts run in parallel on the workers; building,
//! ending and queueing an exported span per attempt on the drive made telemetry cost a
//! share of the executor's whole throughput. So the attempt decides its own `outcome` from
//! what its body returned and the attempts the task has left, by the same rule the queue
//! applies when the drive records that result (see [`AttemptEnd::outcome`]).
//!
//! The drive applies every result an attempt returns, even when it stops the run (it joins
//! the stopped attempts and applies those that had already finished), so the label and the
//! journal agree. One corner remains, documented in `docs/telemetry.md`: when the drive
//! itself fails (a failed append or a queue error ends the run), attempts that finish
//! meanwhile keep the label of their handler's result though nothing records it, exactly as
//! a result applied just before a failed append always did. An attempt stopped before its
//! first poll still gets its span (labelled `cancelled`), opened when it is dropped.
//!
//! An attempt that fails (an error from its handler, a timeout, a panic) also emits
//! `orchestrator task_failed` (`cairn_telemetry::names::TASK_FAILED`) here, inside its task
//! span, with the error's kind and text and whether the task will be retried: so the event
//! is a span event of the failed attempt, and the run span does not fill up with one event
//! per failed attempt (the SDK keeps 128 events per span).

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use cairn_checkpoint::RunId;
use cairn_queue::TaskId;
use cairn_telemetry::attempt::{AttemptExport, AttemptHook, AttemptRecord};
use cairn_telemetry::emit::{self, TaskFailed};
use cairn_telemetry::names;
use tracing::{Dispatch, Span};

use crate::handler::{Finish, HandlerResult, TaskFailure};

/// How a handler attempt ended, as seen from inside its tokio task.
pub(crate) enum AttemptEnd {
    /// The handler returned this.
    Returned(HandlerResult),
    /// The handler ran longer than its limit: it was dropped at the deadline, or it returned
    /// only after it (a handler that blocks its thread cannot be dropped until it yields),
    /// in which case its result is discarded.
    TimedOut(Overrun),
    /// The handler returned [`TaskFailure::Interrupted`] once the run's shutdown had been
    /// requested: the drive releases the attempt.
    Interrupted,
}

impl AttemptEnd {
    /// The end of an attempt whose handler returned `result`, `shutdown` telling whether the
    /// run's graceful shutdown has been requested. Decided once, here, so the task span's
    /// label and the drive agree: an interruption outside a shutdown is a retryable failure.
    pub(crate) fn returned(result: HandlerResult, shutdown: bool) -> AttemptEnd {
        match result {
            Err(TaskFailure::Interrupted(_)) if shutdown => AttemptEnd::Interrupted,
            Err(TaskFailure::Interrupted(error)) => {
                AttemptEnd::Returned(Err(TaskFailure::Retryable(error)))
            }
            result => AttemptEnd::Returned(result),
        }
    }

    /// The task span's `outcome` for this end of attempt `attempt` of a task allowed
    /// `max_attempts`.
    ///
    /// A retryable failure (and a timeout, which the drive fails retryably) retries exactly
    /// when `attempt < max_attempts`, the rule of `cairn_queue::Queue::fail`; a timeout is
    /// labelled `timeout` either way.
    pub(crate) fn outcome(&self, attempt: u32, max_attempts: u32) -> &'static str {
        match self {
            AttemptEnd::Returned(Ok(Finish::Complete(_))) => "complete",
            AttemptEnd::Returned(Ok(Finish::Skip(_))) => "skip",
            AttemptEnd::Returned(Err(TaskFailure::Retryable(_))) if attempt < max_attempts => {
                "retry"
            }
            AttemptEnd::Returned(Err(_)) => "fail",
            AttemptEnd::TimedOut(_) => "timeout",
            // Released, as an attempt the drive stops.
            AttemptEnd::Interrupted => CANCELLED,
        }
    }

    /// The failure this end reports, if it is one: the error's kind and text, and whether
    /// the task gets another attempt (by the rule of [`AttemptEnd::outcome`]).
    fn failure(&self, attempt: u32, max_attempts: u32) -> Option<Failure<'_>> {
        let left = attempt < max_attempts;
        match self {
            AttemptEnd::Returned(Ok(_)) | AttemptEnd::Interrupted => None,
            AttemptEnd::Returned(Err(TaskFailure::Retryable(error))) => Some(Failure {
                kind: &error.kind,
                message: Cow::Borrowed(&error.message),
                will_retry: left,
            }),
            // Converted by `AttemptEnd::returned`; a retryable failure if ever met.
            AttemptEnd::Returned(Err(TaskFailure::Interrupted(error))) => Some(Failure {
                kind: &error.kind,
                message: Cow::Borrowed(&error.message),
                will_retry: left,
            }),
            AttemptEnd::Returned(Err(TaskFailure::Permanent(error))) => Some(Failure {
                kind: &error.kind,
                message: Cow::Borrowed(&error.message),
                will_retry: false,
            }),
            // The drive fails a timed-out attempt retryably, with kind `timeout`.
            AttemptEnd::TimedOut(overrun) => Some(Failure {
                kind: "timeout",
                message: Cow::Owned(format!("attempt {attempt} {overrun}")),
                will_retry: left,
            }),
        }
    }
}

/// How an attempt overran its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overrun {
    /// The timeout the attempt had.
    pub(crate) limit: Duration,
    /// When the handler returned, if it did: only after the deadline, so its result is
    /// discarded. `None` when it was dropped at the deadline.
    pub(crate) returned_after: Option<Duration>,
}

impl fmt::Display for Overrun {
    /// The end of "attempt N of TASK …": what the error of kind `timeout` says.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ran longer than {:?}", self.limit)?;
        if let Some(took) = self.returned_after {
            write!(
                f,
                "; its handler returned only after {took:.1?}, so the result was discarded (a \
                 handler that blocks its thread cannot be stopped at the deadline: run blocking \
                 work in `tokio::task::spawn_blocking`)"
            )?;
        }
        Ok(())
    }
}

/// What `orchestrator task_failed` says about a failed attempt.
struct Failure<'a> {
    kind: &'a str,
    message: Cow<'a, str>,
    will_retry: bool,
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub(crate) fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(text) = payload.downcast_ref::<&str>() {
        text
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text
    } else {
        "non-string panic payload"
    }
}

/// The outcome of an attempt whose body panicked.
const PANIC: &str = "panic";
/// The outcome of an attempt dropped before its body finished (stopped by the drive, or by
/// the runtime shutting down).
const CANCELLED: &str = "cancelled";

/// What the task span of an attempt reports, and what its outcome depends on.
#[derive(Debug, Clone)]
pub(crate) struct AttemptFields {
    pub(crate) task_id: TaskId,
    /// The task's plan name (`crate::PlannedTask::name`), if it has one: the task span's
    /// `task_name`. Shared with the drive's names, so an attempt does not copy it.
    pub(crate) task_name: Option<Arc<str>>,
    /// Shared with the registry, so an attempt does not copy it.
    pub(crate) kind: Arc<str>,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
}

/// `t<id>`, the text of a `TaskId`, formatted without `core::fmt`'s integer machinery: it is
/// written for every attempt.
struct TaskIdText {
    buf: [u8; 21],
    start: usize,
}

impl TaskIdText {
    fn new(id: TaskId) -> TaskIdText {
        let mut buf = [0u8; 21];
        let mut at = buf.len();
        let mut n = id.0;
        loop {
            at -= 1;
            // `n % 10` is below 10, so the cast cannot truncate.
            buf[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        at -= 1;
        buf[at] = b't';
        TaskIdText { buf, start: at }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and `t` are ever written.
        std::str::from_utf8(&self.buf[self.start..]).unwrap_or_default()
    }
}

impl std::fmt::Display for TaskIdText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every attempt of a run shares: the run's subscriber, its run span, and the
/// subscriber's direct export of attempts, if it has one (`cairn_telemetry::attempt`: cairn's
/// export layers build an attempt's exported span and metrics from its fields, without a
/// tracing span per attempt). Looked up once per run, shared by its attempts.
pub(crate) struct AttemptScope {
    /// The run, for the `run_id` of `orchestrator task_failed`.
    run_id: Arc<RunId>,
    dispatch: Dispatch,
    /// The run span, parent of every task span.
    parent: Span,
    export: Option<Arc<dyn AttemptExport>>,
}

impl AttemptScope {
    /// The scope of the attempts of run `run_id` run under `dispatch` (usually the drive's
    /// subscriber), in the run span `parent`.
    pub(crate) fn new(run_id: Arc<RunId>, dispatch: Dispatch, parent: Span) -> AttemptScope {
        let export = AttemptHook::find(&dispatch);
        AttemptScope {
            run_id,
            dispatch,
            parent,
            export,
        }
    }

    /// Opens an attempt's task span through `tracing` (a span only if some layer wants
    /// one), then its exported side, which the subscriber's filter has just decided on.
    fn open(&self, fields: &AttemptFields) -> (Span, Option<Box<dyn AttemptRecord>>) {
        let task_id = TaskIdText::new(fields.task_id);
        if let Some(export) = &self.export {
            export.opening();
        }
        let span = open_span(&self.parent, &task_id, fields);
        let direct = self.export.as_ref().and_then(|export| {
            export.open(
                &self.parent,
                task_id.as_str(),
                fields.task_name.as_ref(),
                &fields.kind,
                fields.attempt,
            )
        });
        (span, direct)
    }

    /// Emits `orchestrator task_failed` for the attempt of `fields` in `span`.
    ///
    /// The event goes where the attempt's other events go: into its tracing span when some
    /// layer opened one, else to its exported side (the direct export takes the events
    /// emitted while it is entered). With neither, nothing is entered on this worker, so the
    /// run span is named as the parent: tracing-opentelemetry drops events without one.
    fn report_failure(
        &self,
        span: &mut AttemptSpan,
        fields: &AttemptFields,
        failure: &Failure<'_>,
    ) {
        let task_id = TaskIdText::new(fields.task_id);
        let event = TaskFailed {
            run_id: self.run_id.as_str(),
            task_id: task_id.as_str(),
            task_name: fields.task_name.as_deref(),
            kind: &fields.kind,
            attempt: fields.attempt,
            max_attempts: fields.max_attempts,
            error_kind: failure.kind,
            error_message: &failure.message,
            will_retry: failure.will_retry,
        };
        if span.span.is_disabled() && span.direct.is_none() {
            emit::task_failed(Some(&self.parent), &event);
        } else {
            span.in_span(|| emit::task_failed(None, &event));
        }
    }
}

/// An attempt's task span: the tracing span and, with a direct export, its exported side.
struct AttemptSpan {
    span: Span,
    direct: Option<Box<dyn AttemptRecord>>,
}

impl AttemptSpan {
    fn record_outcome(&mut self, outcome: &'static str) {
        self.span.record("outcome", outcome);
        if let Some(direct) = self.direct.as_mut() {
            direct.set_outcome(outcome);
        }
    }

    /// Runs `f` with the span entered (and the exported side's context current).
    fn in_span<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let _entered = self.span.enter();
        if let Some(direct) = self.direct.as_mut() {
            direct.enter();
        }
        // Left again even when `f` panics, so the thread's context stack stays balanced.
        let exit = ExitOnDrop(self.direct.as_deref_mut());
        let result = f();
        drop(exit);
        result
    }

    /// Closes the span: the exported side is built and queued now, on this worker.
    fn close(self) {
        drop(self.span);
        if let Some(direct) = self.direct {
            direct.close();
        }
    }
}

/// Leaves an entered exported side when dropped.
struct ExitOnDrop<'a>(Option<&'a mut (dyn AttemptRecord + 'static)>);

impl Drop for ExitOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(direct) = self.0.as_mut() {
            direct.exit();
        }
    }
}

/// An attempt's body, polled with the run's subscriber as the thread's default and its task
/// span entered.
///
/// The span is opened on the first poll (as a child of the run span), labelled with the
/// outcome and closed by the poll that finishes the body, after dropping the body inside it.
/// A body that panics is labelled `panic` (the panic then goes on to tokio, so the drive
/// still sees it); a body dropped unfinished is dropped inside the span, which is then
/// labelled `cancelled`.
pub(crate) struct TracedAttempt<F> {
    /// Shared rather than cloned per attempt: cloning and dropping a `Span` or a `Dispatch`
    /// calls into the subscriber or counts twice, an `Arc` counts once.
    scope: Arc<AttemptScope>,
    fields: AttemptFields,
    /// `None` until the first poll, and again once closed.
    span: Option<AttemptSpan>,
    /// `None` once finished: dropped inside the span by the poll that finished it.
    body: Option<Pin<Box<F>>>,
}

impl<F: Future<Output = AttemptEnd>> TracedAttempt<F> {
    /// Wraps `body`, to run in `scope`.
    pub(crate) fn new(
        body: F,
        fields: AttemptFields,
        scope: Arc<AttemptScope>,
    ) -> TracedAttempt<F> {
        TracedAttempt {
            scope,
            fields,
            span: None,
            body: Some(Box::pin(body)),
        }
    }
}

/// Opens the task span of `fields` under `parent`, on the thread's default subscriber.
fn open_span(parent: &Span, task_id: &TaskIdText, fields: &AttemptFields) -> Span {
    tracing::info_span!(
        target: "cairn",
        parent: parent,
        names::TASK_SPAN,
        // No `run_id`: the task span is a child of the run span, which carries it (and each
        // execution is its own trace), so formatting it again for every attempt would only
        // cost time.
        task_id = %task_id,
        kind = %&*fields.kind,
        // Left out when the task has no name (an `Option` records only `Some`).
        task_name = fields.task_name.as_deref(),
        attempt = i64::from(fields.attempt),
        outcome = tracing::field::Empty,
    )
}

impl<F: Future<Output = AttemptEnd>> Future for TracedAttempt<F> {
    type Output = AttemptEnd;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<AttemptEnd> {
        let this = &mut *self;
        // Polling again after `Ready` breaks the `Future` contract; stay pending rather than
        // panic in the executor.
        if this.body.is_none() {
            return Poll::Pending;
        }
        let _default = tracing::dispatcher::set_default(&this.scope.dispatch);
        let span = this.span.get_or_insert_with(|| {
            let (span, direct) = this.scope.open(&this.fields);
            AttemptSpan { span, direct }
        });
        let body_slot = &mut this.body;
        let polled = span.in_span(|| {
            catch_unwind(AssertUnwindSafe(|| {
                let Some(body) = body_slot.as_mut() else {
                    return Poll::Pending;
                };
                let polled = body.as_mut().poll(cx);
                if polled.is_ready() {
                    *body_slot = None;
                }
                polled
            }))
        });
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(end)) => {
                let (attempt, max_attempts) = (this.fields.attempt, this.fields.max_attempts);
                if let Some(failure) = end.failure(attempt, max_attempts) {
                    this.scope.report_failure(span, &this.fields, &failure);
                }
                span.record_outcome(end.outcome(attempt, max_attempts));
                // Closed here, on the worker: the exported span is built and queued now.
                if let Some(span) = this.span.take() {
                    span.close();
                }
                Poll::Ready(end)
            }
            Err(payload) => {
                // The drive fails a panicked attempt permanently, with kind `panic`.
                let failure = Failure {
                    kind: "panic",
                    message: Cow::Owned(format!(
                        "handler panicked on attempt {}: {}",
                        this.fields.attempt,
                        panic_text(&*payload)
                    )),
                    will_retry: false,
                };
                this.scope.report_failure(span, &this.fields, &failure);
                span.record_outcome(PANIC);
                // The body is dropped inside the span, as after any end. A second panic from
                // its destructor is dropped: the first one is what the drive reports.
                let body = this.body.take();
                span.in_span(|| {
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(body)));
                });
                if let Some(span) = this.span.take() {
                    span.close();
                }
                resume_unwind(payload)
            }
        }
    }
}

impl<F> Drop for TracedAttempt<F> {
    fn drop(&mut self) {
        let Some(body) = self.body.take() else {
            return;
        };
        let _default = tracing::dispatcher::set_default(&self.scope.dispatch);
        // An attempt stopped before its first poll has no span yet; it was started (its
        // `Started` record is durable), so it still gets one.
        let mut span = self.span.take().unwrap_or_else(|| {
            let (span, direct) = self.scope.open(&self.fields);
            AttemptSpan { span, direct }
        });
        // A destructor that panics still leaves the attempt labelled and closed; its panic
        // goes on afterwards (to tokio, which catches it while aborting).
        let dropped = span.in_span(|| catch_unwind(AssertUnwindSafe(move || drop(body))));
        span.record_outcome(CANCELLED);
        span.close();
        if let Err(payload) = dropped
            && !std::thread::panicking()
        {
            resume_unwind(payload);
        }
    }
}

#[cfg(test)]
mod tests {
    //! `TracedAttempt` is private to the executor; these tests drive it directly with a
    //! subscriber that writes each event with the spans it sits in, and each span's close
    //! with its fields.

    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use cairn_queue::{Handoff, TaskError, TaskId};
    use tracing::Dispatch;
    use tracing_subscriber::fmt::format::FmtSpan;

    use super::{AttemptEnd, AttemptFields, AttemptScope, TaskIdText, TracedAttempt};
    use crate::handler::{Finish, TaskFailure};

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    fn dispatch(lines: &Lines) -> Dispatch {
        let lines = lines.clone();
        Dispatch::new(
            tracing_subscriber::fmt()
                .with_writer(move || lines.clone())
                .with_ansi(false)
                .with_span_events(FmtSpan::CLOSE)
                .finish(),
        )
    }

    fn run_id() -> Arc<cairn_checkpoint::RunId> {
        Arc::new(cairn_checkpoint::RunId::new("r1").unwrap())
    }

    fn fields(attempt: u32, max_attempts: u32) -> AttemptFields {
        AttemptFields {
            task_id: TaskId(42),
            task_name: None,
            kind: Arc::from("shell"),
            attempt,
            max_attempts,
        }
    }

    /// Pending for `pending` polls, then ends with `end` (or panics when `end` is `None`);
    /// logs when polled and when dropped.
    struct Body {
        pending: u32,
        end: Option<fn() -> AttemptEnd>,
    }

    impl Future for Body {
        type Output = AttemptEnd;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<AttemptEnd> {
            tracing::info!("body polled");
            if self.pending > 0 {
                self.pending -= 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            match self.end {
                Some(end) => Poll::Ready(end()),
                None => panic!("body exploded"),
            }
        }
    }

    impl Drop for Body {
        fn drop(&mut self) {
            tracing::info!("body dropped");
        }
    }

    fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(future).poll(&mut cx)
    }

    fn complete() -> AttemptEnd {
        AttemptEnd::Returned(Ok(Finish::Complete(Handoff::default())))
    }

    fn retryable() -> AttemptEnd {
        AttemptEnd::Returned(Err(TaskFailure::Retryable(TaskError::new(
            "flaky", "again",
        ))))
    }

    /// The lines of `text` that report the task span closing.
    fn closes(text: &str) -> Vec<&str> {
        text.lines().filter(|l| l.contains(" close ")).collect()
    }

    fn run_to_end(end: Option<fn() -> AttemptEnd>, attempt: u32, max: u32) -> String {
        let lines = Lines::default();
        let dispatch = dispatch(&lines);
        let mut traced = TracedAttempt::new(
            Body { pending: 1, end },
            fields(attempt, max),
            Arc::new(AttemptScope::new(run_id(), dispatch, tracing::Span::none())),
        );
        assert!(poll_once(&mut traced).is_pending());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let polled = poll_once(&mut traced);
            assert!(polled.is_ready());
            assert!(
                traced.body.is_none(),
                "dropped by the poll that finished it"
            );
            assert!(traced.span.is_none(), "closed by the poll that finished it");
        }));
        if end.is_some() {
            result.expect("a body that ends does not panic");
        } else {
            assert!(result.is_err(), "the body's panic goes on to the caller");
        }
        drop(traced);
        lines.text()
    }

    #[test]
    fn a_finished_body_is_polled_and_dropped_inside_its_span_which_closes_with_the_outcome() {
        let text = run_to_end(Some(complete), 1, 3);
        let inside = "orchestrator task{task_id=t42 kind=shell attempt=1}: ";
        assert_eq!(text.matches(inside).count(), 3, "{text}");
        assert!(text.contains("body dropped"), "{text}");
        let closed = closes(&text);
        assert_eq!(closed.len(), 1, "{text}");
        assert!(closed[0].contains("outcome=\"complete\""), "{text}");
        // The close is the last thing: the body was dropped before it.
        assert!(text.trim_end().ends_with(closed[0]), "{text}");
    }

    #[test]
    fn a_retryable_failure_is_labelled_retry_while_attempts_are_left_and_fail_on_the_last() {
        let early = run_to_end(Some(retryable), 2, 3);
        assert!(closes(&early)[0].contains("outcome=\"retry\""), "{early}");
        let last = run_to_end(Some(retryable), 3, 3);
        assert!(closes(&last)[0].contains("outcome=\"fail\""), "{last}");
    }

    #[test]
    fn a_panicking_body_is_labelled_panic_and_dropped_inside_its_span() {
        let text = run_to_end(None, 1, 3);
        let closed = closes(&text);
        assert_eq!(closed.len(), 1, "{text}");
        assert!(closed[0].contains("outcome=\"panic\""), "{text}");
        let dropped = text.lines().find(|l| l.contains("body dropped"));
        assert!(
            dropped.is_some_and(|l| l.contains("orchestrator task{task_id=t42")),
            "{text}"
        );
    }

    #[test]
    fn an_unfinished_body_is_dropped_inside_its_span_which_closes_cancelled() {
        let lines = Lines::default();
        let dispatch = dispatch(&lines);
        let mut traced = TracedAttempt::new(
            Body {
                pending: 5,
                end: Some(complete),
            },
            fields(1, 3),
            Arc::new(AttemptScope::new(run_id(), dispatch, tracing::Span::none())),
        );
        assert!(poll_once(&mut traced).is_pending());
        drop(traced);
        let text = lines.text();
        let dropped = text.lines().find(|l| l.contains("body dropped"));
        assert!(
            dropped.is_some_and(|l| l.contains("orchestrator task{task_id=t42")),
            "{text}"
        );
        let closed = closes(&text);
        assert_eq!(closed.len(), 1, "{text}");
        assert!(closed[0].contains("outcome=\"cancelled\""), "{text}");
    }

    #[test]
    fn an_attempt_dropped_before_its_first_poll_still_reports_a_cancelled_span() {
        let lines = Lines::default();
        let dispatch = dispatch(&lines);
        let traced = TracedAttempt::new(
            Body {
                pending: 0,
                end: Some(complete),
            },
            fields(1, 3),
            Arc::new(AttemptScope::new(run_id(), dispatch, tracing::Span::none())),
        );
        drop(traced);
        let text = lines.text();
        assert!(!text.contains("body polled"), "{text}");
        let closed = closes(&text);
        assert_eq!(closed.len(), 1, "{text}");
        assert!(closed[0].contains("task_id=t42"), "{text}");
        assert!(closed[0].contains("outcome=\"cancelled\""), "{text}");
    }

    /// The module path of every task span opened under it.
    #[derive(Clone, Default)]
    struct SpanModules(Arc<Mutex<Vec<Option<&'static str>>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SpanModules {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _id: &tracing::span::Id,
            _ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let meta = attrs.metadata();
            if meta.name() == cairn_telemetry::names::TASK_SPAN {
                self.0.lock().unwrap().push(meta.module_path());
            }
        }
    }

    #[test]
    fn task_spans_open_from_the_module_cairn_telemetry_recognises_as_the_executor() {
        use tracing_subscriber::layer::SubscriberExt as _;
        // cairn's export layers tell the executor's task span callsite apart by its module
        // path: read it from a span an attempt actually opens.
        let modules = SpanModules::default();
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(modules.clone()));
        let mut traced = TracedAttempt::new(
            Body {
                pending: 0,
                end: Some(complete),
            },
            fields(1, 3),
            Arc::new(AttemptScope::new(run_id(), dispatch, tracing::Span::none())),
        );
        assert!(poll_once(&mut traced).is_ready());
        assert_eq!(
            *modules.0.lock().unwrap(),
            [Some(cairn_telemetry::attempt::EXECUTOR_TASK_SPAN_MODULE)]
        );
    }

    /// Dropped unfinished, and its destructor panics.
    struct ExplodingBody;

    impl Future for ExplodingBody {
        type Output = AttemptEnd;
        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<AttemptEnd> {
            Poll::Pending
        }
    }

    impl Drop for ExplodingBody {
        fn drop(&mut self) {
            panic!("destructor exploded");
        }
    }

    #[test]
    fn an_attempt_whose_body_panics_as_it_is_dropped_still_closes_cancelled_and_panics() {
        let lines = Lines::default();
        let dispatch = dispatch(&lines);
        let mut traced = TracedAttempt::new(
            ExplodingBody,
            fields(1, 3),
            Arc::new(AttemptScope::new(run_id(), dispatch, tracing::Span::none())),
        );
        assert!(poll_once(&mut traced).is_pending());
        let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(traced)));
        assert!(dropped.is_err(), "the destructor's panic goes on");
        let text = lines.text();
        let closed = closes(&text);
        assert_eq!(closed.len(), 1, "{text}");
        assert!(closed[0].contains("outcome=\"cancelled\""), "{text}");
    }

    #[test]
    fn task_ids_are_written_as_their_display_text() {
        for id in [0, 7, 10, 42, 1_000_003, u64::MAX] {
            assert_eq!(TaskIdText::new(TaskId(id)).as_str(), TaskId(id).to_string());
        }
    }
}
