//! Executor settings: concurrency, durability requirement, retry backoff, timeouts and the
//! shutdown grace period.

use std::time::Duration;

use cairn_queue::{QueueConfig, TaskId};

/// Exponential backoff with deterministic jitter, applied through the queue's `not_before`.
///
/// The delay after attempt `n` (from 1) is `min(base * 2^(n-1), max)`, of which the upper
/// half is jittered: the result lies in `[d/2, d]`. The jitter comes from a hash of the seed,
/// the task id and the attempt, so a run is reproducible and tasks that failed together do
/// not retry in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry, before jitter.
    pub base: Duration,
    /// The longest delay, before jitter.
    pub max: Duration,
    /// Seed of the jitter.
    pub seed: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_secs(60),
            seed: 0x0ca1_2b5e_ed00_d1e5,
        }
    }
}

impl RetryPolicy {
    /// The delay before retrying `task` after its attempt `attempt` failed.
    ///
    /// Computed in nanoseconds, so a `base` under a millisecond backs off too. It never
    /// exceeds `max`, and an attempt number or a `base` large enough to overflow the
    /// doubling just yields the cap.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_executor::RetryPolicy;
    /// use cairn_queue::TaskId;
    ///
    /// let policy = RetryPolicy { base: Duration::from_millis(100), max: Duration::from_secs(1), seed: 7 };
    /// let first = policy.delay(TaskId(3), 1);
    /// assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
    /// // Capped at `max` (before jitter), however many attempts failed.
    /// assert!(policy.delay(TaskId(3), 40) <= Duration::from_secs(1));
    /// // Deterministic for a given seed.
    /// assert_eq!(policy.delay(TaskId(3), 2), policy.delay(TaskId(3), 2));
    ///
    /// // Sub-millisecond bases double like any other.
    /// let fine = RetryPolicy { base: Duration::from_micros(500), ..policy };
    /// let third = fine.delay(TaskId(3), 3);
    /// assert!(third >= Duration::from_millis(1) && third <= Duration::from_millis(2));
    /// ```
    pub fn delay(&self, task: TaskId, attempt: u32) -> Duration {
        // Nanoseconds, so that a base under a millisecond still doubles instead of being
        // truncated to zero, and in `u128`, which holds every `Duration` exactly: the cap at
        // `max` is then exact however large `base`, `max` or the attempt number are.
        let exponent = attempt.saturating_sub(1).min(127);
        let max = self.max.as_nanos();
        let full = self
            .base
            .as_nanos()
            .saturating_mul(1u128 << exponent)
            .min(max);
        let half = full / 2;
        let span = full - half;
        // Two rounds give 128 bits of noise, enough to spread over any span a `Duration`
        // can have; the modulus is never zero.
        let key = self.seed ^ task.0.rotate_left(17) ^ u64::from(attempt);
        let high = splitmix64(key);
        let noise = (u128::from(high) << 64) | u128::from(splitmix64(high));
        let jitter = noise % span.saturating_add(1);
        from_nanos_u128(half + jitter).unwrap_or(self.max)
    }
}

/// The `Duration` of `nanos` nanoseconds, or `None` when it would not fit. Every value
/// `RetryPolicy::delay` passes is at most a `Duration`'s own nanoseconds, so it fits.
fn from_nanos_u128(nanos: u128) -> Option<Duration> {
    const PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / PER_SEC).ok()?;
    // Below one second, so it fits a `u32` and never carries into `secs`.
    let subsec = u32::try_from(nanos % PER_SEC).ok()?;
    Some(Duration::new(secs, subsec))
}

/// One round of SplitMix64: a small, well-mixed hash for jitter.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// How the executor drives runs.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Most handler attempts in flight at once. The graph decides how many are runnable;
    /// this only caps them. Default 16; must be at least 1.
    pub concurrency: usize,
    /// When `true`, a failed `begin` is an error (`Error::BeginFailed`); when `false`, a WARN
    /// and a degrade to the non-durable `NoopCheckpointer` (the run goes on, nothing is
    /// recorded, and `RunReport::durable` is `false`). Default `true`: a durable toolkit
    /// fails loudly unless the host opts in to degrading. A run id that is already taken is
    /// refused either way.
    pub require_durability: bool,
    /// Retry backoff.
    pub retry: RetryPolicy,
    /// Timeout of attempts whose kind has none in the registry, enforced as
    /// [`Registry::with_timeout`](crate::Registry::with_timeout) describes. Default `None`
    /// (no limit).
    pub default_timeout: Option<Duration>,
    /// How long running attempts may go on after a shutdown before they are dropped (the run
    /// is left resumable either way). Default 30 s.
    pub shutdown_grace: Duration,
    /// Bounds and defaults of the run's queue.
    pub queue: QueueConfig,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            concurrency: 16,
            require_durability: true,
            retry: RetryPolicy::default(),
            default_timeout: None,
            shutdown_grace: Duration::from_secs(30),
            queue: QueueConfig::default(),
        }
    }
}

impl ExecutorConfig {
    /// Sets the concurrency limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::time::Duration;
    /// use cairn_checkpoint::NoopFactory;
    /// use cairn_executor::Error;
    /// use cairn_executor::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// let none = ExecutorConfig::default().with_concurrency(0);
    /// let refused = Executor::new(NoopFactory, Registry::new(), none);
    /// assert!(matches!(refused, Err(Error::InvalidConfig { .. })));
    ///
    /// // Counts the attempts in flight, and the most there were at once.
    /// let flight = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    /// let step = handler_fn_with(Arc::clone(&flight), |flight, _ctx| async move {
    ///     let now = flight.0.fetch_add(1, Ordering::SeqCst) + 1;
    ///     flight.1.fetch_max(now, Ordering::SeqCst);
    ///     tokio::time::sleep(Duration::from_millis(20)).await;
    ///     flight.0.fetch_sub(1, Ordering::SeqCst);
    ///     Ok(Finish::Complete(Handoff::default()))
    /// });
    /// let config = ExecutorConfig::default().with_concurrency(2);
    /// let executor = Executor::new(NoopFactory, Registry::new().with("step", step), config)?;
    /// let mut phase = Phase::new("wide");
    /// for _ in 0..4 {
    ///     phase.task(TaskSpec::new("step"), []);
    /// }
    /// let plan = RunPlan::new("demo", "default").phase(phase);
    /// let report = executor.run(plan, Start::Fresh, RunSignals::default()).await?;
    /// assert_eq!(report.counts.done, 4);
    /// assert_eq!(flight.1.load(Ordering::SeqCst), 2);
    /// # Ok(()) }
    /// ```
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Whether a failed `begin` is an error (`true`, the default) or degrades the run to a
    /// non-durable checkpointer (`false`).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::MemoryFactory;
    /// use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
    /// use cairn_executor::Error;
    /// use cairn_executor::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Error> {
    /// // A store whose `begin` fails when told to (the `conformance` feature's fault injection).
    /// let faults = FaultPlan::new();
    /// let store = FaultyFactory::new(MemoryFactory::new(), faults.clone());
    /// let step = handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) });
    /// let registry = Registry::new().with("step", step);
    /// let plan = || {
    ///     let mut phase = Phase::new("only");
    ///     phase.task(TaskSpec::new("step"), []);
    ///     RunPlan::new("demo", "default").phase(phase)
    /// };
    ///
    /// let strict = Executor::new(store.clone(), registry.clone(), ExecutorConfig::default())?;
    /// faults.fail_next(FaultOp::Begin, FaultTiming::Before);
    /// let refused = strict.run(plan(), Start::Fresh, RunSignals::default()).await;
    /// assert!(matches!(refused, Err(Error::BeginFailed { .. })));
    ///
    /// let lenient = ExecutorConfig::default().with_require_durability(false);
    /// let degrading = Executor::new(store, registry, lenient)?;
    /// faults.fail_next(FaultOp::Begin, FaultTiming::Before);
    /// let report = degrading.run(plan(), Start::Fresh, RunSignals::default()).await?;
    /// // The run went on with nothing recorded.
    /// assert_eq!(report.disposition, Disposition::Complete);
    /// assert!(!report.durable);
    /// # Ok(()) }
    /// ```
    pub fn with_require_durability(mut self, require: bool) -> Self {
        self.require_durability = require;
        self
    }

    /// Sets the retry backoff.
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
    /// let flaky = handler_fn_with(Arc::clone(&attempts), |attempts, ctx| async move {
    ///     attempts.lock().unwrap().push(ctx.attempt());
    ///     if ctx.attempt() == 1 {
    ///         return Err(TaskFailure::retryable("busy", "the service answered 503"));
    ///     }
    ///     Ok(Finish::Complete(Handoff::default()))
    /// });
    /// // Waits at most a millisecond before a retry (the default starts at 100 ms).
    /// let max = Duration::from_millis(1);
    /// let quick = RetryPolicy { base: max, max, ..RetryPolicy::default() };
    /// let config = ExecutorConfig::default().with_retry(quick);
    /// let executor = Executor::new(NoopFactory, Registry::new().with("call", flaky), config)?;
    /// let mut phase = Phase::new("only");
    /// phase.task(TaskSpec::new("call").max_attempts(3), []);
    /// let plan = RunPlan::new("demo", "default").phase(phase);
    /// let report = executor.run(plan, Start::Fresh, RunSignals::default()).await?;
    /// assert_eq!(report.disposition, Disposition::Complete);
    /// assert_eq!(*attempts.lock().unwrap(), [1, 2]);
    /// # Ok(()) }
    /// ```
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the timeout of kinds that have none in the registry.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_checkpoint::NoopFactory;
    /// use cairn_executor::RunStop;
    /// use cairn_executor::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cairn_executor::Error> {
    /// let stuck = handler_fn(|_ctx| async {
    ///     tokio::time::sleep(Duration::from_secs(3600)).await;
    ///     Ok(Finish::Complete(Handoff::default()))
    /// });
    /// let config = ExecutorConfig::default().with_default_timeout(Duration::from_millis(20));
    /// let executor = Executor::new(NoopFactory, Registry::new().with("stuck", stuck), config)?;
    /// let mut phase = Phase::new("only");
    /// phase.task(TaskSpec::new("stuck").max_attempts(1), []);
    /// let plan = RunPlan::new("demo", "default").phase(phase);
    /// let report = executor.run(plan, Start::Fresh, RunSignals::default()).await?;
    /// let Some(RunStop::TasksFailed { failed, .. }) = &report.stop else {
    ///     panic!("the attempt should have timed out");
    /// };
    /// assert_eq!(failed[0].error.as_ref().map(|e| e.kind.as_str()), Some("timeout"));
    /// # Ok(()) }
    /// ```
    pub fn with_default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = Some(timeout);
        self
    }

    /// Sets the shutdown grace period.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunStatus};
    /// use cairn_executor::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let signals = RunSignals::default();
    /// // Still working when the host shuts down (the handler asks for the shutdown itself).
    /// let slow = handler_fn_with(signals.shutdown.clone(), |shutdown, _ctx| async move {
    ///     shutdown.cancel();
    ///     tokio::time::sleep(Duration::from_secs(3600)).await;
    ///     Ok(Finish::Complete(Handoff::default()))
    /// });
    /// let store = MemoryFactory::new();
    /// let config = ExecutorConfig::default().with_shutdown_grace(Duration::from_millis(20));
    /// let executor = Executor::new(store.clone(), Registry::new().with("slow", slow), config)?;
    /// let mut phase = Phase::new("only");
    /// phase.task(TaskSpec::new("slow"), []);
    /// let plan = RunPlan::new("demo", "default").phase(phase);
    /// // After 20 ms of grace the attempt is stopped and given back; the run stays resumable.
    /// let report = executor.run(plan, Start::Fresh, signals).await?;
    /// assert_eq!(report.disposition, Disposition::LeaveRunning);
    /// assert_eq!(report.counts.pending, 1);
    /// let stored = store.load_meta(&report.run_id).await?.expect("the run exists");
    /// assert_eq!(stored.status, RunStatus::Running);
    /// # Ok(()) }
    /// ```
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Sets the queue bounds.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::NoopFactory;
    /// use cairn_executor::prelude::*;
    /// use cairn_executor::queue::QueueConfig;
    /// use cairn_executor::{Error, PlanProblem};
    ///
    /// let mut queue = QueueConfig::default();
    /// queue.max_tasks = 1;
    /// let step = handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) });
    /// let config = ExecutorConfig::default().with_queue(queue);
    /// let executor = Executor::new(NoopFactory, Registry::new().with("step", step), config)?;
    /// let mut phase = Phase::new("only");
    /// let first = phase.task(TaskSpec::new("step"), []);
    /// phase.task(TaskSpec::new("step"), [first]);
    /// let plan = RunPlan::new("demo", "default").phase(phase);
    /// let Err(Error::InvalidPlan { problems }) = executor.check_plan(&plan) else { panic!() };
    /// assert_eq!(problems, [PlanProblem::TooManyTasks { planned: 2, limit: 1 }]);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn with_queue(mut self, queue: QueueConfig) -> Self {
        self.queue = queue;
        self
    }
}
