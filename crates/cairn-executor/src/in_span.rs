//! Runs an attempt's future inside its task span and the run's subscriber.
//!
//! `tracing`'s `Instrumented` enters the span on every poll and again when it is dropped, so
//! that the future's destructor runs inside the span. A finished attempt's future has nothing
//! left to drop but its state, so that second enter (with the task's OpenTelemetry context
//! made current, and left again) was pure cost on every attempt. [`InSpan`] drops the future
//! during the poll that finishes it, still inside the span, and enters on drop only when the
//! future never finished (an aborted attempt).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::{Dispatch, Span};

/// A future polled with `dispatch` as the thread's default subscriber and `span` entered.
pub(crate) struct InSpan<F> {
    dispatch: Dispatch,
    span: Span,
    /// `None` once finished: dropped inside the span by the poll that finished it.
    future: Option<Pin<Box<F>>>,
}

impl<F: Future> InSpan<F> {
    /// Wraps `future`; `dispatch` is usually the current subscriber of the spawning task.
    pub(crate) fn new(future: F, span: Span, dispatch: Dispatch) -> InSpan<F> {
        InSpan {
            dispatch,
            span,
            future: Some(Box::pin(future)),
        }
    }
}

impl<F: Future> Future for InSpan<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        let _default = tracing::dispatcher::set_default(&this.dispatch);
        let _entered = this.span.enter();
        // Polling again after `Ready` breaks the `Future` contract; stay pending rather than
        // panic in the executor.
        let Some(future) = this.future.as_mut() else {
            return Poll::Pending;
        };
        let output = future.as_mut().poll(cx);
        if output.is_ready() {
            this.future = None;
        }
        output
    }
}

impl<F> Drop for InSpan<F> {
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            let _default = tracing::dispatcher::set_default(&self.dispatch);
            let _entered = self.span.enter();
            drop(future);
        }
    }
}

#[cfg(test)]
mod tests {
    //! `InSpan` is private to the executor; these tests drive it directly with a subscriber
    //! that writes each event with the spans it sits in.

    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use tracing::Dispatch;

    use super::InSpan;

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
                .finish(),
        )
    }

    /// Pending for `pending` polls, then ready; logs when polled and when dropped.
    struct Body {
        pending: u32,
    }

    impl Future for Body {
        type Output = u32;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            tracing::info!("body polled");
            if self.pending == 0 {
                return Poll::Ready(7);
            }
            self.pending -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
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

    #[test]
    fn a_finished_body_is_polled_and_dropped_inside_the_span_and_dispatch() {
        let lines = Lines::default();
        let dispatch = dispatch(&lines);
        let span = tracing::dispatcher::with_default(&dispatch, || {
            tracing::info_span!("attempt", task_id = "t1")
        });
        let mut wrapped = InSpan::new(Body { pending: 1 }, span, dispatch);
        assert!(poll_once(&mut wrapped).is_pending());
        assert_eq!(poll_once(&mut wrapped), Poll::Ready(7));
        assert!(
            wrapped.future.is_none(),
            "dropped by the poll that finished it"
        );
        drop(wrapped);
        let text = lines.text();
        assert_eq!(
            text.matches("attempt{task_id=\"t1\"}: ").count(),
            3,
            "{text}"
        );
        assert!(text.contains("body dropped"), "{text}");
    }

    #[test]
    fn an_unfinished_body_is_dropped_inside_the_span() {
        let lines = Lines::default();
        let dispatch = dispatch(&lines);
        let span = tracing::dispatcher::with_default(&dispatch, || {
            tracing::info_span!("attempt", task_id = "t2")
        });
        let mut wrapped = InSpan::new(Body { pending: 5 }, span, dispatch);
        assert!(poll_once(&mut wrapped).is_pending());
        drop(wrapped);
        let text = lines.text();
        let dropped = text.lines().find(|l| l.contains("body dropped"));
        assert!(
            dropped.is_some_and(|l| l.contains("attempt{task_id=\"t2\"}")),
            "{text}"
        );
    }
}
