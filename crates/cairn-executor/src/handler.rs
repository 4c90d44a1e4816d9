//! Handlers: the async code that does a task's work, the context it receives, what it
//! returns, and the registry that maps task kinds to handlers.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_checkpoint::RunId;
use cairn_queue::{Enqueued, Handoff, Task, TaskError, TaskId, TaskSpec};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// How a handler finished successfully.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The task did its work; `Handoff` is what it leaves for its dependents.
    Complete(Handoff),
    /// The task judged itself unnecessary. Dependents still start, as after `Complete`.
    Skip(Handoff),
}

/// How a handler failed. The queue decides what happens next (retry or fail, block
/// dependents); the handler only says whether trying again could help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskFailure {
    /// Trying again may help (a flaky network, a busy service). Retried with backoff while
    /// the task has attempts left.
    Retryable(TaskError),
    /// Trying again cannot help. The task fails at once and its dependents are blocked.
    Permanent(TaskError),
    /// The work was stopped from outside while the run was shutting down: a service
    /// manager's stop that signals the whole service (systemd's default), not only the
    /// process driving the run, reaches the handler's child processes too, and they die
    /// with it. When the run's graceful shutdown has been requested
    /// ([`TaskContext::shutdown`] has fired) by the time the handler returns this, the
    /// attempt is released, as an attempt the end of the grace period stops: the task is
    /// pending again, the attempt is not spent, the release is audited, and the task runs
    /// again on resume. Otherwise nothing explains the stop, and it is a
    /// [`TaskFailure::Retryable`] failure with this error.
    Interrupted(TaskError),
}

impl TaskFailure {
    /// A retryable failure of the given kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_executor::TaskFailure;
    ///
    /// let failure = TaskFailure::retryable("http_503", "the service is busy");
    /// let TaskFailure::Retryable(error) = failure else { panic!("a retryable failure") };
    /// assert_eq!(error.kind, "http_503");
    /// assert_eq!(error.message, "the service is busy");
    /// ```
    ///
    /// How many attempts it gets is shown at [`TaskContext::attempt`].
    pub fn retryable(kind: impl Into<String>, message: impl Into<String>) -> TaskFailure {
        TaskFailure::Retryable(TaskError::new(kind, message))
    }

    /// A permanent failure of the given kind.
    ///
    /// # Examples
    ///
    /// A permanent failure spends no further attempt, and blocks the task's dependents:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use cairn_checkpoint::NoopFactory;
    /// use cairn_executor::RunStop;
    /// use cairn_executor::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cairn_executor::Error> {
    /// let calls = Arc::new(AtomicU32::new(0));
    /// let check = handler_fn_with(Arc::clone(&calls), |calls, _ctx| async move {
    ///     calls.fetch_add(1, Ordering::SeqCst);
    ///     Err(TaskFailure::permanent("bad_config", "no target named `prod`"))
    /// });
    /// let deploy = handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) });
    /// let registry = Registry::new().with("check", check).with("deploy", deploy);
    /// let executor = Executor::new(NoopFactory, registry, ExecutorConfig::default())?;
    /// let mut phase = Phase::new("only");
    /// let checked = phase.task(TaskSpec::new("check").max_attempts(3), []);
    /// phase.task(TaskSpec::new("deploy"), [checked]);
    /// let plan = RunPlan::new("demo", "default").phase(phase);
    /// let report = executor.run(plan, Start::Fresh, RunSignals::default()).await?;
    /// assert_eq!(calls.load(Ordering::SeqCst), 1);
    /// let Some(RunStop::TasksFailed { failed, blocked }) = &report.stop else { panic!() };
    /// assert_eq!((failed.len(), blocked.len()), (1, 1));
    /// # Ok(()) }
    /// ```
    pub fn permanent(kind: impl Into<String>, message: impl Into<String>) -> TaskFailure {
        TaskFailure::Permanent(TaskError::new(kind, message))
    }

    /// An interruption by the run's shutdown, of the given kind (see
    /// [`TaskFailure::Interrupted`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_executor::{HandlerResult, TaskContext, TaskFailure};
    ///
    /// // A handler whose child process died of a signal during the shutdown gives the
    /// // attempt back instead of failing the task.
    /// fn killed(ctx: &TaskContext) -> HandlerResult {
    ///     if ctx.shutdown().is_cancelled() {
    ///         Err(TaskFailure::interrupted("signal", "stopped by SIGTERM"))
    ///     } else {
    ///         Err(TaskFailure::retryable("signal", "killed by SIGTERM"))
    ///     }
    /// }
    /// ```
    pub fn interrupted(kind: impl Into<String>, message: impl Into<String>) -> TaskFailure {
        TaskFailure::Interrupted(TaskError::new(kind, message))
    }
}

/// An executor error met inside a handler (a refused [`TaskContext::enqueue`]) fails the task
/// permanently, so `ctx.enqueue(spec).await?` works in a handler. The failure's kind names
/// the refusal: `unknown_kind` (no handler for the follow-up's kind), `enqueue` (the queue
/// refused the spec: an empty kind, a bound, an unknown dependency), `not_running` (the
/// attempt or the run has ended), or `executor` for any other error; its message is the
/// error's text. Map the error yourself for another kind, or to retry.
///
/// # Examples
///
/// ```
/// use cairn_executor::{Error, TaskFailure};
/// use cairn_queue::TaskId;
///
/// let refused = Error::NotRunning { parent: TaskId(3) };
/// let TaskFailure::Permanent(error) = TaskFailure::from(refused) else { panic!() };
/// assert_eq!(error.kind, "not_running");
/// ```
impl From<Error> for TaskFailure {
    fn from(error: Error) -> TaskFailure {
        let kind = match &error {
            Error::UnknownKind { .. } => "unknown_kind",
            Error::Enqueue { .. } => "enqueue",
            Error::NotRunning { .. } => "not_running",
            _ => "executor",
        };
        TaskFailure::permanent(kind, error.to_string())
    }
}

/// What a handler returns.
pub type HandlerResult = std::result::Result<Finish, TaskFailure>;

/// A request from a running handler to enqueue a follow-up, served by the drive loop, which
/// owns the queue.
#[derive(Debug)]
pub(crate) struct EnqueueRequest {
    pub(crate) parent: TaskId,
    pub(crate) attempt: u32,
    pub(crate) spec: TaskSpec,
    pub(crate) reply: oneshot::Sender<Result<Enqueued>>,
}

/// Everything one task attempt gets.
///
/// # Examples
///
/// What a handler reads from its context (the getters are plain reads, shown here together):
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use cairn_checkpoint::NoopFactory;
/// use cairn_executor::prelude::*;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cairn_executor::Error> {
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let make = handler_fn_with(Arc::clone(&seen), |seen, ctx| async move {
///     // What the tasks it waited for handed off, in `after` order.
///     let before: Vec<String> =
///         ctx.dependencies().iter().flat_map(|(_, handoff)| handoff.done.clone()).collect();
///     let line = format!("{} {} {} {:?}", ctx.task_id(), ctx.task().kind, ctx.inputs(), before);
///     seen.lock().unwrap().push((ctx.run_id().clone(), line));
///     let done = vec![format!("made {}", ctx.inputs())];
///     Ok(Finish::Complete(Handoff { done, ..Handoff::default() }))
/// });
/// let registry = Registry::new().with("make", make);
/// let executor = Executor::new(NoopFactory, registry, ExecutorConfig::default())?;
/// let mut phase = Phase::new("only");
/// let first = phase.task(TaskSpec::new("make").inputs("a".into()), []);
/// phase.task(TaskSpec::new("make").inputs("b".into()), [first]);
/// let plan = RunPlan::new("demo", "default").phase(phase);
/// let report = executor.run(plan, Start::Fresh, RunSignals::default()).await?;
///
/// let seen = seen.lock().unwrap();
/// assert!(seen.iter().all(|(run_id, _)| *run_id == report.run_id));
/// let lines: Vec<&str> = seen.iter().map(|(_, line)| line.as_str()).collect();
/// assert_eq!(lines, [r#"t0 make "a" []"#, r#"t1 make "b" ["made \"a\""]"#]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// Shared by every attempt of the run: cloning it per attempt would copy the text.
    run_id: Arc<RunId>,
    task: Task,
    attempt: u32,
    dependencies: Vec<(TaskId, Handoff)>,
    cancel: CancellationToken,
    /// The run's graceful shutdown: fires when it is requested.
    shutdown: CancellationToken,
    requests: mpsc::UnboundedSender<EnqueueRequest>,
}

impl TaskContext {
    pub(crate) fn new(
        run_id: Arc<RunId>,
        task: Task,
        attempt: u32,
        dependencies: Vec<(TaskId, Handoff)>,
        cancel: CancellationToken,
        shutdown: CancellationToken,
        requests: mpsc::UnboundedSender<EnqueueRequest>,
    ) -> TaskContext {
        TaskContext {
            run_id,
            task,
            attempt,
            dependencies,
            cancel,
            shutdown,
            requests,
        }
    }

    /// The task as the queue held it when this attempt started.
    pub fn task(&self) -> &Task {
        &self.task
    }

    /// The task's id.
    pub fn task_id(&self) -> TaskId {
        self.task.id
    }

    /// The task's inputs.
    pub fn inputs(&self) -> &serde_json::Value {
        &self.task.inputs
    }

    /// This attempt's number, from 1: how many attempts the task has been charged. Attempts
    /// interrupted by a crash count too; an attempt the executor stopped itself (a shutdown's
    /// grace ran out, a cancel, the run's deadline) does not, so the attempt after it has the
    /// same number.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use cairn_checkpoint::NoopFactory;
    /// use cairn_executor::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cairn_executor::Error> {
    /// let attempts = Arc::new(Mutex::new(Vec::new()));
    /// let failing = handler_fn_with(Arc::clone(&attempts), |attempts, ctx| async move {
    ///     attempts.lock().unwrap().push(ctx.attempt());
    ///     Err(TaskFailure::retryable("busy", "try again later"))
    /// });
    /// let registry = Registry::new().with("call", failing);
    /// let executor = Executor::new(NoopFactory, registry, ExecutorConfig::default())?;
    /// let mut phase = Phase::new("only");
    /// phase.task(TaskSpec::new("call").max_attempts(3), []);
    /// // Retries at once (the default backoff starts at 100 ms).
    /// let quick = RetryPolicy { base: Duration::ZERO, ..RetryPolicy::default() };
    /// let plan = RunPlan::new("demo", "default").phase(phase).retry(quick);
    /// let report = executor.run(plan, Start::Fresh, RunSignals::default()).await?;
    /// // Each failed attempt was charged; after the third the task failed for good.
    /// assert_eq!(*attempts.lock().unwrap(), [1, 2, 3]);
    /// assert_eq!(report.counts.failed, 1);
    /// # Ok(()) }
    /// ```
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The run this task belongs to.
    pub fn run_id(&self) -> &RunId {
        &self.run_id
    }

    /// A key that is the same for every attempt of this task, across retries and resumes:
    /// `<run id>/<task id>`. Handlers pass it to external systems so that a body that runs
    /// twice (after a crash mid-attempt) has its effect only once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use cairn_checkpoint::NoopFactory;
    /// use cairn_executor::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cairn_executor::Error> {
    /// let keys = Arc::new(Mutex::new(Vec::new()));
    /// let charge = handler_fn_with(Arc::clone(&keys), |keys, ctx| async move {
    ///     // Sent with the request, so the payment service charges once however often it is asked.
    ///     keys.lock().unwrap().push(ctx.idempotency_key());
    ///     if ctx.attempt() == 1 {
    ///         return Err(TaskFailure::retryable("timeout", "no answer; did it charge?"));
    ///     }
    ///     Ok(Finish::Complete(Handoff::default()))
    /// });
    /// let registry = Registry::new().with("charge", charge);
    /// let executor = Executor::new(NoopFactory, registry, ExecutorConfig::default())?;
    /// let mut phase = Phase::new("only");
    /// phase.task(TaskSpec::new("charge").max_attempts(2), []);
    /// let quick = RetryPolicy { base: Duration::ZERO, ..RetryPolicy::default() };
    /// let plan = RunPlan::new("shop", "default").phase(phase).retry(quick);
    /// let report = executor.run(plan, Start::Fresh, RunSignals::default()).await?;
    /// let expected = format!("{}/t0", report.run_id);
    /// assert_eq!(*keys.lock().unwrap(), [expected.clone(), expected]);
    /// # Ok(()) }
    /// ```
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}", self.run_id, self.task.id)
    }

    /// The handoffs of this task's dependencies, in `depends_on` order.
    pub fn dependencies(&self) -> &[(TaskId, Handoff)] {
        &self.dependencies
    }

    /// Cancelled when the run stops this attempt (a caller cancel, the run's deadline, the
    /// end of the shutdown grace period, the future of `Executor::run` dropped), right after
    /// the attempt's body has been dropped: the body itself never sees it fire, because
    /// dropping it is the cancellation (put clean-up in a `Drop` guard). Work the handler
    /// handed to other tasks or threads, which outlives the body, should watch this token
    /// and stop when it fires. During the shutdown grace period it does not fire: running
    /// bodies are given that time to finish.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use cairn_checkpoint::NoopFactory;
    /// use cairn_executor::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cairn_executor::Error> {
    /// let signals = RunSignals::default();
    /// let handed_off = Arc::new(Mutex::new(None));
    /// let upload = handler_fn_with(
    ///     (Arc::clone(&handed_off), signals.cancel.clone()),
    ///     |(handed_off, cancel), ctx| async move {
    ///         // Work handed to another task or thread would watch this token.
    ///         *handed_off.lock().unwrap() = Some(ctx.cancellation().clone());
    ///         assert!(!ctx.cancellation().is_cancelled());
    ///         // The caller cancels the run while the attempt runs.
    ///         cancel.cancel();
    ///         std::future::pending::<HandlerResult>().await
    ///     },
    /// );
    /// let registry = Registry::new().with("upload", upload);
    /// let executor = Executor::new(NoopFactory, registry, ExecutorConfig::default())?;
    /// let mut phase = Phase::new("only");
    /// phase.task(TaskSpec::new("upload"), []);
    /// let plan = RunPlan::new("demo", "default").phase(phase);
    /// let report = executor.run(plan, Start::Fresh, signals).await?;
    /// let Disposition::Fail(error) = &report.disposition else { panic!("it was cancelled") };
    /// assert_eq!(error.kind, "cancelled");
    /// let token = handed_off.lock().unwrap().take().expect("the attempt ran");
    /// assert!(token.is_cancelled());
    /// # Ok(()) }
    /// ```
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Fires when the run's graceful shutdown is requested (`RunSignals::shutdown`, or the
    /// executor's own): no new attempts start, and running ones get the grace period. A
    /// handler whose work was stopped from outside once this has fired returns
    /// [`TaskFailure::Interrupted`] to give the attempt back.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use cairn_checkpoint::MemoryFactory;
    /// use cairn_executor::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cairn_executor::Error> {
    /// let signals = RunSignals::default();
    /// let attempts = Arc::new(Mutex::new(Vec::new()));
    /// let build = handler_fn_with(
    ///     (Arc::clone(&attempts), signals.shutdown.clone()),
    ///     |(attempts, shutdown), ctx| async move {
    ///         let first = {
    ///             let mut attempts = attempts.lock().unwrap();
    ///             attempts.push(ctx.attempt());
    ///             attempts.len() == 1
    ///         };
    ///         if first {
    ///             // A service manager's stop: the host shuts down, and this handler's child
    ///             // process is killed with it.
    ///             shutdown.cancel();
    ///             assert!(ctx.shutdown().is_cancelled());
    ///             return Err(TaskFailure::interrupted("signal", "the child died of SIGTERM"));
    ///         }
    ///         Ok(Finish::Complete(Handoff::default()))
    ///     },
    /// );
    /// let registry = Registry::new().with("build", build);
    /// let executor = Executor::new(MemoryFactory::new(), registry, ExecutorConfig::default())?;
    /// let plan = || {
    ///     let mut phase = Phase::new("only");
    ///     phase.task(TaskSpec::new("build"), []);
    ///     RunPlan::new("site", "default").phase(phase)
    /// };
    /// let stopped = executor.run(plan(), Start::Fresh, signals).await?;
    /// assert_eq!(stopped.disposition, Disposition::LeaveRunning);
    /// // The next start resumes the run, and the attempt was given back, not spent.
    /// let resumed = executor.run(plan(), Start::Auto, RunSignals::default()).await?;
    /// assert!(resumed.resumed);
    /// assert_eq!(resumed.disposition, Disposition::Complete);
    /// assert_eq!(*attempts.lock().unwrap(), [1, 1]);
    /// # Ok(()) }
    /// ```
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Enqueues a follow-up task whose `enqueued_by` is this task.
    ///
    /// The queue validates it and applies its dedup guard: enqueueing the same
    /// `(kind, inputs)` again (for example from a resumed attempt) returns the existing task
    /// with `existing: true` and creates nothing. The follow-up is recorded in the same
    /// journal batch as, or an earlier one than, this task's own completion.
    ///
    /// The returned id is provisional until this task completes. The executor answers as
    /// soon as its in-memory queue has accepted the follow-up; the `Enqueued` record is
    /// journaled later, no later than this task's completion. If the process dies in
    /// between, the follow-up was never recorded: on resume this task runs again, and ids
    /// are handed out again in whatever order requests arrive, so with concurrent handlers
    /// the same id can come to name another task. The stable identity of a follow-up is its
    /// `(kind, canonical inputs)`, through the dedup guard above. Do not store the id
    /// outside the run (in an external system, or in an idempotency key) before this task
    /// has completed; pass it on in this task's `Handoff`, which is journaled with the
    /// completion, or derive external keys from the follow-up's own
    /// [`TaskContext::idempotency_key`] once it runs.
    ///
    /// # Follow-ups do not hold back this task's dependents
    ///
    /// This task completes as soon as its body returns `Finish::Complete`, whatever its
    /// follow-ups are doing: they are tasks of their own, roots of nothing this task's
    /// dependents wait for. A task planned `after` this one ([`crate::Phase::task`]) can
    /// therefore start before the follow-ups have run. To act once they are done, enqueue
    /// that "join" task as a follow-up too, depending on the children's ids
    /// (`TaskSpec::depends_on`); the ids are provisional (above) but name the same tasks
    /// within the run, so a follow-up may depend on them. Or plan the dependents in the next
    /// [`crate::Phase`]: a phase starts only once every task of the previous one, follow-ups
    /// included, is done or skipped.
    ///
    /// # Examples
    ///
    /// A fan-out whose join waits for every child:
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use cairn_checkpoint::NoopFactory;
    /// use cairn_executor::{
    ///     Executor, ExecutorConfig, Finish, Phase, Registry, RunPlan, RunSignals, Start,
    ///     handler_fn, handler_fn_with,
    /// };
    /// use cairn_queue::{Handoff, TaskSpec};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cairn_executor::Error> {
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let logged = handler_fn_with(Arc::clone(&log), |log, ctx| async move {
    ///     log.lock().unwrap().push(ctx.task().kind.clone());
    ///     Ok(Finish::Complete(Handoff::default()))
    /// });
    /// let fanout = handler_fn(|ctx| async move {
    ///     let mut children = Vec::new();
    ///     for item in 0..3 {
    ///         // A refused enqueue fails this task permanently (`From<Error> for TaskFailure`).
    ///         children.push(ctx.enqueue(TaskSpec::new("item").inputs(item.into())).await?.id);
    ///     }
    ///     // A task planned `after` this one would not wait for the items; this join does.
    ///     ctx.enqueue(TaskSpec::new("join").depends_on(children)).await?;
    ///     Ok(Finish::Complete(Handoff::default()))
    /// });
    /// let registry = Registry::new()
    ///     .with("fanout", fanout)
    ///     .with("item", logged.clone())
    ///     .with("join", logged);
    /// let executor = Executor::new(
    ///     Arc::new(NoopFactory),
    ///     registry,
    ///     ExecutorConfig::default().with_concurrency(4),
    /// )?;
    /// let mut phase = Phase::new("fan");
    /// phase.task(TaskSpec::new("fanout"), []);
    /// let plan = RunPlan::new("demo", "default").phase(phase);
    /// executor.run(plan, Start::Fresh, RunSignals::default()).await?;
    /// assert_eq!(*log.lock().unwrap(), ["item", "item", "item", "join"]);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// `Error::UnknownKind` when no handler is registered for the spec's kind,
    /// `Error::Enqueue` when the queue refuses it (an empty kind, bounds, unknown
    /// dependencies), and
    /// `Error::NotRunning` when this attempt or the run has already ended.
    ///
    /// # Cancel safety
    ///
    /// The request is sent when the future is first polled, and the drive serves it whether
    /// or not its answer is still awaited: dropped after that, the follow-up may still be
    /// enqueued (and is then journaled like any other). Asking again with the same spec is
    /// safe under the dedup guard, which returns the task already enqueued
    /// (`existing: true`); a spec built `without_dedup` would be enqueued twice.
    pub async fn enqueue(&self, spec: TaskSpec) -> Result<Enqueued> {
        let (reply, answer) = oneshot::channel();
        let request = EnqueueRequest {
            parent: self.task.id,
            attempt: self.attempt,
            spec,
            reply,
        };
        let not_running = || Error::NotRunning {
            parent: self.task.id,
        };
        self.requests.send(request).map_err(|_| not_running())?;
        answer.await.map_err(|_| not_running())?
    }
}

/// The code that runs one kind of task.
///
/// # Examples
///
/// ```
/// use async_trait::async_trait;
/// use cairn_executor::{Finish, Handler, HandlerResult, TaskContext};
/// use cairn_queue::Handoff;
///
/// #[derive(Debug)]
/// struct Greet;
///
/// #[async_trait]
/// impl Handler for Greet {
///     async fn run(&self, ctx: TaskContext) -> HandlerResult {
///         let done = vec![format!("greeted {}", ctx.inputs())];
///         Ok(Finish::Complete(Handoff { done, ..Handoff::default() }))
///     }
/// }
/// ```
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Runs one attempt. Bodies run at least once: use `ctx.idempotency_key()` for effects
    /// that must happen once.
    ///
    /// # Cancel safety
    ///
    /// The executor stops an attempt by dropping this future at an `.await`: at its timeout
    /// (the attempt fails as `timeout`), at a caller's cancel, the run's deadline or the end
    /// of a shutdown's grace period (the attempt is given back, not spent), and when the
    /// future of `Executor::run` is itself dropped (the attempt then counts as spent, as
    /// after a crash). Nothing after that `.await` runs: put clean-up in a `Drop` guard,
    /// and make effects idempotent, since the task runs again from the start. Work the body
    /// handed to other tasks outlives the drop; it can watch [`TaskContext::cancellation`],
    /// which fires in every one of these cases.
    async fn run(&self, ctx: TaskContext) -> HandlerResult;
}

/// A shared handler is a handler, so one instance (a connection pool, a client) can serve
/// several kinds. `H` may be unsized, so `Arc<dyn Handler>` qualifies.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use cairn_executor::{Finish, Handler, Registry, handler_fn};
/// use cairn_queue::Handoff;
///
/// let shared: Arc<dyn Handler> =
///     Arc::new(handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }));
/// let registry = Registry::new()
///     .with("fetch", Arc::clone(&shared))
///     .with("store", shared);
/// assert!(registry.contains("fetch") && registry.contains("store"));
/// ```
#[async_trait]
impl<H: Handler + ?Sized> Handler for Arc<H> {
    async fn run(&self, ctx: TaskContext) -> HandlerResult {
        (**self).run(ctx).await
    }
}

/// A boxed handler is a handler, so handlers chosen at run time (`Box<dyn Handler>`) can be
/// registered as they are.
///
/// # Examples
///
/// ```
/// use cairn_executor::{Finish, Handler, Registry, handler_fn};
/// use cairn_queue::Handoff;
///
/// let boxed: Box<dyn Handler> =
///     Box::new(handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }));
/// let registry = Registry::new().with("noop", boxed);
/// assert!(registry.contains("noop"));
/// ```
#[async_trait]
impl<H: Handler + ?Sized> Handler for Box<H> {
    async fn run(&self, ctx: TaskContext) -> HandlerResult {
        (**self).run(ctx).await
    }
}

/// A handler made from an async closure; see [`handler_fn`].
///
/// Cloning it is cheap (the closure is shared, not copied), so one closure can be
/// registered for several kinds.
///
/// # Examples
///
/// ```
/// use cairn_executor::{Finish, Registry, handler_fn};
/// use cairn_queue::Handoff;
///
/// let noop = handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) });
/// let registry = Registry::new().with("fetch", noop.clone()).with("store", noop);
/// assert!(registry.contains("fetch") && registry.contains("store"));
/// ```
pub struct FnHandler<F>(Arc<F>);

impl<F> Clone for FnHandler<F> {
    fn clone(&self) -> Self {
        FnHandler(Arc::clone(&self.0))
    }
}

impl<F> fmt::Debug for FnHandler<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnHandler")
    }
}

/// Wraps an async closure as a [`Handler`].
///
/// # Examples
///
/// ```
/// use cairn_executor::{Finish, Registry, handler_fn};
/// use cairn_queue::Handoff;
///
/// let registry = Registry::new()
///     .with("noop", handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }));
/// assert!(registry.contains("noop"));
/// ```
pub fn handler_fn<F, Fut>(f: F) -> FnHandler<F>
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    FnHandler(Arc::new(f))
}

/// A handler made from an async closure and the state it shares; see [`handler_fn_with`].
/// Cloning it clones the state and shares the closure.
pub struct FnHandlerWith<S, F> {
    state: S,
    f: Arc<F>,
}

impl<S: Clone, F> Clone for FnHandlerWith<S, F> {
    fn clone(&self) -> Self {
        FnHandlerWith {
            state: self.state.clone(),
            f: Arc::clone(&self.f),
        }
    }
}

impl<S, F> fmt::Debug for FnHandlerWith<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnHandlerWith")
    }
}

/// Wraps an async closure that takes shared state as a [`Handler`]: each attempt gets its
/// own clone of `state` (make it cheap to clone, an `Arc` say) and the task's context.
///
/// It saves the two clones [`handler_fn`] needs for shared state (one into the closure, one
/// into each attempt's future).
///
/// # Examples
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use cairn_executor::{Finish, Registry, handler_fn_with};
/// use cairn_queue::Handoff;
///
/// let log = Arc::new(Mutex::new(Vec::<String>::new()));
/// let registry = Registry::new().with(
///     "note",
///     handler_fn_with(Arc::clone(&log), |log, ctx| async move {
///         log.lock().unwrap().push(ctx.inputs().to_string());
///         Ok(Finish::Complete(Handoff::default()))
///     }),
/// );
/// assert!(registry.contains("note"));
/// ```
pub fn handler_fn_with<S, F, Fut>(state: S, f: F) -> FnHandlerWith<S, F>
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S, TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    FnHandlerWith {
        state,
        f: Arc::new(f),
    }
}

#[async_trait]
impl<S, F, Fut> Handler for FnHandlerWith<S, F>
where
    S: Clone + Send + Sync + 'static,
    F: Fn(S, TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    async fn run(&self, ctx: TaskContext) -> HandlerResult {
        (self.f)(self.state.clone(), ctx).await
    }
}

#[async_trait]
impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    async fn run(&self, ctx: TaskContext) -> HandlerResult {
        (self.0)(ctx).await
    }
}

/// Maps task kinds to handlers, with an optional per-kind timeout.
#[derive(Clone, Default)]
pub struct Registry {
    /// Each kind's handler, with the kind's text shared so every attempt's task span can
    /// carry it without copying it.
    handlers: HashMap<String, (Arc<str>, Arc<dyn Handler>)>,
    timeouts: HashMap<String, Duration>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kinds: Vec<&String> = self.handlers.keys().collect();
        kinds.sort();
        f.debug_struct("Registry")
            .field("kinds", &kinds)
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_executor::Registry;
    ///
    /// let registry = Registry::new();
    /// assert!(!registry.contains("shell"));
    /// ```
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `handler` for `kind`, replacing any earlier one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use cairn_checkpoint::NoopFactory;
    /// use cairn_executor::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cairn_executor::Error> {
    /// let said = Arc::new(Mutex::new(Vec::new()));
    /// let mut registry = Registry::new();
    /// // Kinds from a table, say; a later handler for a kind replaces the earlier one.
    /// for word in ["hello", "hi"] {
    ///     let say = handler_fn_with(Arc::clone(&said), move |said, _ctx| async move {
    ///         said.lock().unwrap().push(word);
    ///         Ok(Finish::Complete(Handoff::default()))
    ///     });
    ///     registry.register("greet", say);
    /// }
    /// let executor = Executor::new(NoopFactory, registry, ExecutorConfig::default())?;
    /// let mut phase = Phase::new("only");
    /// phase.task(TaskSpec::new("greet"), []);
    /// let plan = RunPlan::new("demo", "default").phase(phase);
    /// executor.run(plan, Start::Fresh, RunSignals::default()).await?;
    /// assert_eq!(*said.lock().unwrap(), ["hi"]);
    /// # Ok(()) }
    /// ```
    pub fn register(&mut self, kind: impl Into<String>, handler: impl Handler) -> &mut Self {
        let kind = kind.into();
        let shared = Arc::from(kind.as_str());
        self.handlers.insert(kind, (shared, Arc::new(handler)));
        self
    }

    /// Builder form of [`Registry::register`].
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_executor::{Finish, Registry, handler_fn};
    /// use cairn_queue::Handoff;
    ///
    /// let noop = handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) });
    /// let registry = Registry::new().with("fetch", noop.clone()).with("store", noop);
    /// assert!(registry.contains("fetch") && registry.contains("store"));
    /// assert!(!registry.contains("deploy"));
    /// ```
    pub fn with(mut self, kind: impl Into<String>, handler: impl Handler) -> Self {
        self.register(kind, handler);
        self
    }

    /// Sets the timeout of every attempt of `kind`. An attempt that runs longer fails with a
    /// retryable error of kind `timeout`.
    ///
    /// The attempt is dropped at the deadline when its handler is waiting at an `.await`,
    /// like any tokio timeout. A handler that blocks its thread instead (a synchronous sleep,
    /// blocking I/O, a long computation) cannot be dropped until it returns; whatever it
    /// returns after the deadline is discarded and the attempt fails as a timeout all the
    /// same, its error saying how long the handler took. Meanwhile it holds a runtime
    /// worker thread, so run blocking work with `tokio::task::spawn_blocking` and await it:
    /// then the attempt is dropped at the deadline (the blocking thread itself still runs to
    /// its end).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_executor::prelude::*;
    ///
    /// let registry = Registry::new()
    ///     .with("fetch", handler_fn(|_ctx| async {
    ///         Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
    ///     }))
    ///     .with_timeout("fetch", Duration::from_secs(30));
    /// assert!(registry.contains("fetch"));
    /// ```
    pub fn with_timeout(mut self, kind: impl Into<String>, timeout: Duration) -> Self {
        self.timeouts.insert(kind.into(), timeout);
        self
    }

    /// Whether a handler is registered for `kind`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_executor::{Finish, Registry, handler_fn};
    /// use cairn_queue::Handoff;
    ///
    /// let noop = handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) });
    /// let registry = Registry::new().with("fetch", noop);
    /// assert!(registry.contains("fetch"));
    /// // Kinds are matched exactly.
    /// assert!(!registry.contains("Fetch"));
    /// ```
    pub fn contains(&self, kind: &str) -> bool {
        self.handlers.contains_key(kind)
    }

    /// The handler of `kind`, with the kind's shared text.
    pub(crate) fn handler(&self, kind: &str) -> Option<(Arc<str>, Arc<dyn Handler>)> {
        self.handlers.get(kind).cloned()
    }

    pub(crate) fn timeout(&self, kind: &str) -> Option<Duration> {
        self.timeouts.get(kind).copied()
    }
}
