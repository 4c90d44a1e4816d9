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
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Whether a failed `begin` is an error (`true`, the default) or degrades the run to a
    /// non-durable checkpointer (`false`).
    pub fn with_require_durability(mut self, require: bool) -> Self {
        self.require_durability = require;
        self
    }

    /// Sets the retry backoff.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets the timeout of kinds that have none in the registry.
    pub fn with_default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = Some(timeout);
        self
    }

    /// Sets the shutdown grace period.
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Sets the queue bounds.
    pub fn with_queue(mut self, queue: QueueConfig) -> Self {
        self.queue = queue;
        self
    }
}
