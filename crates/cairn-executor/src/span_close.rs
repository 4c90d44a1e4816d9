//! Closes the task spans of finished attempts on a thread of the run's own, off the tokio
//! workers.
//!
//! Closing a task span is most of what telemetry costs per attempt: the subscriber builds,
//! ends and queues the exported span, records the task metrics and frees its registry slot
//! (about 4,400 instructions with `cairn_telemetry::init`'s layers). Done inside the attempt,
//! that work sits between the body's end and the drive seeing the result, and the workers it
//! runs on are the ones the drive needs next. So a finished attempt hands its span to a
//! [`SpanCloser`], whose thread drops the spans in batches while the drive goes on (often
//! while the drive waits for its next fsync, when that thread would otherwise idle).
//!
//! The thread is a plain OS thread, not one of tokio's blocking pool: a blocking task that
//! lives as long as the run would keep a paused test clock (`tokio::time::pause`) from
//! advancing, so a host's tests of timeouts and grace periods would hang.
//!
//! Nothing a subscriber reports changes: the span's outcome is recorded, and the span exited,
//! on the worker that ran the body; cairn-telemetry ends the exported span and times the
//! attempt when the outcome is recorded, not when the span closes. The drive waits for
//! [`SpanCloser::finish`] before the run is finalized, so every task span of a run is closed
//! before its `orchestrator run finished` event.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{Dispatch, Span};

/// How long the closing thread keeps looking for more spans after a batch before it sleeps
/// until woken. While attempts keep finishing, it finds them on its own and no worker pays
/// for a wake-up; an idle run costs one more check, then nothing.
const LINGER: Duration = Duration::from_millis(1);

/// What the workers and the closing thread share.
#[derive(Debug, Default)]
struct Handoff {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Spans handed over and not closed yet.
    spans: Vec<Span>,
    /// The closing thread waits for a wake-up (rather than lingering): a hand-off wakes it.
    asleep: bool,
    /// No more spans are taken: they are closed where they end.
    finished: bool,
}

/// Where finished attempts leave their task spans. Cloned into every attempt.
#[derive(Debug, Clone)]
pub(crate) struct SpanDrop {
    handoff: Arc<Handoff>,
}

impl SpanDrop {
    /// Leaves `span` to the closing thread, or closes it here once the closer has finished.
    pub(crate) fn hand(&self, span: Span) {
        let mut state = lock(&self.handoff.state);
        if state.finished {
            drop(state);
            drop(span);
            return;
        }
        state.spans.push(span);
        let wake = std::mem::take(&mut state.asleep);
        drop(state);
        if wake {
            self.handoff.wake.notify_one();
        }
    }
}

/// The closing thread of one drive and the way to stop it.
#[derive(Debug)]
pub(crate) struct SpanCloser {
    handoff: Arc<Handoff>,
    /// Closed (without a value) when the thread ends, however it ends.
    ended: Option<oneshot::Receiver<()>>,
}

impl SpanCloser {
    /// Starts the closing thread with `dispatch`, the subscriber the spans it will close
    /// were opened under, as its default; `None` when the system refuses a thread, and
    /// attempts then close their spans themselves.
    ///
    /// The default matters: the registry closes a span's parent through the thread's default
    /// subscriber, so under none a run span whose last task span closed here would stay open
    /// for good (and never be exported).
    pub(crate) fn start(dispatch: Dispatch) -> Option<SpanCloser> {
        let handoff = Arc::new(Handoff::default());
        let theirs = Arc::clone(&handoff);
        let (ending, ended) = oneshot::channel::<()>();
        // Closing used to happen on a worker: a subscriber that needs the runtime there (a
        // span processor that spawns its export, say) finds it on this thread too.
        let runtime = tokio::runtime::Handle::try_current().ok();
        std::thread::Builder::new()
            .name("cairn-span-closer".to_owned())
            .spawn(move || {
                // Dropped when the thread ends, even by a panic: that is what `finish` awaits.
                let _ending = ending;
                let _runtime = runtime.as_ref().map(tokio::runtime::Handle::enter);
                let _default = tracing::dispatcher::set_default(&dispatch);
                close_until_finished(&theirs);
            })
            .ok()?;
        Some(SpanCloser {
            handoff,
            ended: Some(ended),
        })
    }

    /// The hand-off point attempts leave their spans at.
    pub(crate) fn span_drop(&self) -> SpanDrop {
        SpanDrop {
            handoff: Arc::clone(&self.handoff),
        }
    }

    /// Closes every span handed over so far and stops the thread; spans handed over later
    /// are closed by whoever hands them. A panic in a subscriber's close is not the run's
    /// failure: the thread goes on with the next span, and a thread lost anyway is waited
    /// for all the same.
    pub(crate) async fn finish(mut self) {
        self.stop();
        if let Some(ended) = self.ended.take() {
            let _ = ended.await;
        }
    }

    fn stop(&self) {
        lock(&self.handoff.state).finished = true;
        self.handoff.wake.notify_one();
    }
}

impl Drop for SpanCloser {
    /// A drive that ends without [`SpanCloser::finish`] (it panicked) still stops the thread,
    /// which closes what it holds on its way out.
    fn drop(&mut self) {
        if self.ended.is_some() {
            self.stop();
        }
    }
}

/// The closing thread: drops handed-over spans in batches until told to finish and empty.
fn close_until_finished(handoff: &Handoff) {
    let mut batch: Vec<Span> = Vec::new();
    loop {
        {
            let mut state = lock(&handoff.state);
            if state.spans.is_empty() && !state.finished {
                state = handoff
                    .wake
                    .wait_timeout(state, LINGER)
                    .map_or_else(|poisoned| poisoned.into_inner().0, |(state, _)| state);
            }
            while state.spans.is_empty() && !state.finished {
                state.asleep = true;
                state = handoff
                    .wake
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            state.asleep = false;
            if state.spans.is_empty() {
                return;
            }
            std::mem::swap(&mut batch, &mut state.spans);
        }
        // A subscriber that panics while closing one span loses that span only.
        for span in batch.drain(..) {
            let _ = catch_unwind(AssertUnwindSafe(move || drop(span)));
        }
    }
}

/// Locks `mutex`, taking the state over from a thread that panicked while holding it: the
/// state is a list and two flags, each left whole by every step.
fn lock(mutex: &Mutex<State>) -> MutexGuard<'_, State> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    //! The closing thread closes every span handed to it, on its own thread, by `finish`.

    use std::sync::Mutex as StdMutex;
    use std::thread::ThreadId;

    use tracing::Subscriber;
    use tracing::span::{Attributes, Id};
    use tracing_subscriber::Registry;
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};

    use super::*;

    /// Remembers which thread closed each span.
    #[derive(Clone, Default)]
    struct Closes(Arc<StdMutex<Vec<ThreadId>>>);

    impl<S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>> Layer<S> for Closes {
        fn on_new_span(&self, _: &Attributes<'_>, _: &Id, _: Context<'_, S>) {}

        fn on_close(&self, _: Id, _: Context<'_, S>) {
            self.0.lock().unwrap().push(std::thread::current().id());
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_handed_span_is_closed_on_the_closing_thread_by_finish() {
        let closes = Closes::default();
        let subscriber = Registry::default().with(closes.clone());
        let dispatch = tracing::Dispatch::new(subscriber);
        let closer = SpanCloser::start(dispatch.clone()).expect("a thread");
        let drop_point = closer.span_drop();
        let here = std::thread::current().id();
        for n in 0..500u32 {
            let span =
                tracing::dispatcher::with_default(&dispatch, || tracing::info_span!("task", n = n));
            drop_point.hand(span);
            if n % 100 == 0 {
                // Let the thread fall asleep now and then, so the wake-up path runs too.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        closer.finish().await;
        let closed = closes.0.lock().unwrap().clone();
        assert_eq!(closed.len(), 500, "every span is closed by finish");
        assert!(
            closed.iter().all(|thread| *thread != here),
            "spans are closed on the closing thread"
        );

        // After finish, a hand-off closes the span on the spot.
        let span = tracing::dispatcher::with_default(&dispatch, || tracing::info_span!("late"));
        drop_point.hand(span);
        let closed = closes.0.lock().unwrap().clone();
        assert_eq!(closed.len(), 501);
        assert_eq!(closed.last(), Some(&here));
    }

    /// Panics when a span named `bad` closes.
    struct PanicsOnBad;

    impl<S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>> Layer<S>
        for PanicsOnBad
    {
        fn on_close(&self, id: Id, ctx: Context<'_, S>) {
            if ctx.span(&id).is_some_and(|span| span.name() == "bad") {
                panic!("subscriber bug");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscriber_panicking_on_one_close_loses_only_that_span() {
        let closes = Closes::default();
        let subscriber = Registry::default().with(closes.clone()).with(PanicsOnBad);
        let dispatch = tracing::Dispatch::new(subscriber);
        let closer = SpanCloser::start(dispatch.clone()).expect("a thread");
        let drop_point = closer.span_drop();
        drop_point.hand(tracing::dispatcher::with_default(&dispatch, || {
            tracing::info_span!("bad")
        }));
        // `Closes` is the inner layer, so it sees the close before `PanicsOnBad` panics:
        // once it has, the thread has taken that batch.
        for _ in 0..10_000 {
            if !closes.0.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(closes.0.lock().unwrap().len(), 1);
        // Handed after the panic: only a thread that survived it closes this one.
        drop_point.hand(tracing::dispatcher::with_default(&dispatch, || {
            tracing::info_span!("good")
        }));
        closer.finish().await;
        assert_eq!(closes.0.lock().unwrap().len(), 2);
    }

    /// Remembers, for each close, whether a tokio runtime was reachable from its thread.
    #[derive(Clone, Default)]
    struct RuntimeAtClose(Arc<StdMutex<Vec<bool>>>);

    impl<S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>> Layer<S>
        for RuntimeAtClose
    {
        fn on_close(&self, _: Id, _: Context<'_, S>) {
            let reachable = tokio::runtime::Handle::try_current().is_ok();
            self.0.lock().unwrap().push(reachable);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spans_close_inside_the_runtime_that_started_the_closer() {
        let seen = RuntimeAtClose::default();
        let dispatch = tracing::Dispatch::new(Registry::default().with(seen.clone()));
        let closer = SpanCloser::start(dispatch.clone()).expect("a thread");
        let drop_point = closer.span_drop();
        drop_point.hand(tracing::dispatcher::with_default(&dispatch, || {
            tracing::info_span!("task")
        }));
        closer.finish().await;
        assert_eq!(*seen.0.lock().unwrap(), vec![true]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_parent_whose_last_child_closes_on_the_thread_closes_too_under_a_scoped_subscriber() {
        let closes = Closes::default();
        // Scoped, never global: the closing thread has no default subscriber of its own.
        let dispatch = tracing::Dispatch::new(Registry::default().with(closes.clone()));
        let closer = SpanCloser::start(dispatch.clone()).expect("a thread");
        let drop_point = closer.span_drop();
        let (parent, child) = tracing::dispatcher::with_default(&dispatch, || {
            let parent = tracing::info_span!("run");
            let child = tracing::info_span!(parent: &parent, "task");
            (parent, child)
        });
        // The parent's own handle goes first: only the child keeps it open now.
        drop(parent);
        assert!(closes.0.lock().unwrap().is_empty());
        drop_point.hand(child);
        closer.finish().await;
        assert_eq!(
            closes.0.lock().unwrap().len(),
            2,
            "the child and then its parent"
        );
    }
}
