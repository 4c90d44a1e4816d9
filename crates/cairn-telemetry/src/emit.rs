//! Typed emitters for the stable events in [`crate::names`]. They need only `tracing`, so
//! library crates can call them without pulling in OpenTelemetry.

use crate::names;

/// Integer fields go out as `i64`: tracing-opentelemetry exports `i64` as an OpenTelemetry
/// integer but `u64` as a string. Counts and epochs never come near `i64::MAX`; if one ever
/// did, it saturates rather than wraps.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Fields of [`names::RUN_STARTED`].
#[derive(Debug, Clone)]
pub struct RunStarted<'a> {
    /// The run.
    pub run_id: &'a str,
    /// The workflow name.
    pub workflow: &'a str,
    /// The scope.
    pub scope: &'a str,
    /// Tasks in the queue when the run (re)started.
    pub tasks_total: u64,
    /// Whether this is a resume of an interrupted or explicitly resumed run.
    pub resumed: bool,
}

/// Fields of [`names::RESUMED`].
#[derive(Debug, Clone)]
pub struct Resumed<'a> {
    /// The run.
    pub run_id: &'a str,
    /// The lease epoch after the resume's claim.
    pub lease_epoch: u64,
    /// Pending tasks after recovery.
    pub tasks_pending: u64,
    /// Done (or skipped) tasks inherited.
    pub tasks_done: u64,
    /// Tasks reset from running to pending by recovery.
    pub tasks_reset: u64,
    /// Failed tasks inherited or failed by recovery.
    pub tasks_failed: u64,
}

/// How a run ended, as the `outcome` field spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcomeName {
    /// Every task finished.
    Complete,
    /// Shut down; the record stays `running` for a later resume.
    LeaveRunning,
    /// Failed.
    Fail,
}

impl RunOutcomeName {
    /// The field value.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::emit::RunOutcomeName;
    ///
    /// assert_eq!(RunOutcomeName::Complete.as_str(), "complete");
    /// assert_eq!(RunOutcomeName::LeaveRunning.as_str(), "leave_running");
    /// assert_eq!(RunOutcomeName::Fail.as_str(), "fail");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcomeName::Complete => "complete",
            RunOutcomeName::LeaveRunning => "leave_running",
            RunOutcomeName::Fail => "fail",
        }
    }
}

/// Fields of [`names::RUN_FINISHED`].
#[derive(Debug, Clone)]
pub struct RunFinished<'a> {
    /// The run.
    pub run_id: &'a str,
    /// How it ended.
    pub outcome: RunOutcomeName,
    /// Whether this execution was a resume.
    pub resumed: bool,
    /// Wall time of this execution.
    pub duration_ms: u64,
    /// Tasks done.
    pub tasks_done: u64,
    /// Tasks failed.
    pub tasks_failed: u64,
    /// Tasks skipped.
    pub tasks_skipped: u64,
    /// Tasks blocked.
    pub tasks_blocked: u64,
}

/// Emits [`names::RUN_STARTED`].
///
/// # Examples
///
/// ```
/// use cairn_telemetry::emit::{self, RunStarted};
/// use cairn_telemetry::{names, testing::TestTelemetry};
/// use opentelemetry::KeyValue;
///
/// // `testing` (a dev-dependency feature) records what is emitted, in memory.
/// let telemetry = TestTelemetry::new();
/// telemetry.in_scope(|| {
///     emit::run_started(&RunStarted {
///         run_id: "r1",
///         workflow: "nightly",
///         scope: "prod",
///         tasks_total: 12,
///         resumed: false,
///     });
/// });
/// let events = telemetry.events(names::RUN_STARTED);
/// assert_eq!(events.len(), 1);
/// // Counts go out as OpenTelemetry integers.
/// assert!(events[0].attributes.contains(&KeyValue::new("tasks_total", 12_i64)));
/// assert!(events[0].attributes.contains(&KeyValue::new("resumed", false)));
/// ```
pub fn run_started(f: &RunStarted<'_>) {
    tracing::info!(
        name: names::RUN_STARTED,
        target: names::TARGET,
        run_id = f.run_id,
        workflow = f.workflow,
        scope = f.scope,
        tasks_total = int(f.tasks_total),
        resumed = f.resumed,
        "{}",
        names::RUN_STARTED
    );
}

/// Emits [`names::RESUMED`].
///
/// # Examples
///
/// ```
/// use cairn_telemetry::emit::{self, Resumed};
/// use cairn_telemetry::{names, testing::TestTelemetry};
/// use opentelemetry::KeyValue;
///
/// let telemetry = TestTelemetry::new();
/// telemetry.in_scope(|| {
///     emit::resumed(&Resumed {
///         run_id: "r1",
///         lease_epoch: 2,
///         tasks_pending: 4,
///         tasks_done: 7,
///         tasks_reset: 1,
///         tasks_failed: 0,
///     });
/// });
/// let events = telemetry.events(names::RESUMED);
/// assert!(events[0].attributes.contains(&KeyValue::new("lease_epoch", 2_i64)));
/// // Each resume also counts toward the resumes metric.
/// assert_eq!(telemetry.counter_total(names::METRIC_RESUMES), 1);
/// ```
pub fn resumed(f: &Resumed<'_>) {
    tracing::info!(
        name: names::RESUMED,
        target: names::TARGET,
        run_id = f.run_id,
        lease_epoch = int(f.lease_epoch),
        tasks_pending = int(f.tasks_pending),
        tasks_done = int(f.tasks_done),
        tasks_reset = int(f.tasks_reset),
        tasks_failed = int(f.tasks_failed),
        "{}",
        names::RESUMED
    );
}

/// Emits [`names::RUN_FINISHED`].
///
/// # Examples
///
/// ```
/// use cairn_telemetry::emit::{self, RunFinished, RunOutcomeName};
/// use cairn_telemetry::{names, testing::TestTelemetry};
/// use opentelemetry::KeyValue;
///
/// let telemetry = TestTelemetry::new();
/// telemetry.in_scope(|| {
///     emit::run_finished(&RunFinished {
///         run_id: "r1",
///         outcome: RunOutcomeName::LeaveRunning,
///         resumed: false,
///         duration_ms: 1_500,
///         tasks_done: 3,
///         tasks_failed: 0,
///         tasks_skipped: 0,
///         tasks_blocked: 0,
///     });
/// });
/// let events = telemetry.events(names::RUN_FINISHED);
/// assert!(events[0].attributes.contains(&KeyValue::new("outcome", "leave_running")));
/// // The run duration histogram is in seconds.
/// let outcome = KeyValue::new("outcome", "leave_running");
/// let duration = telemetry.histogram(names::METRIC_RUN_DURATION, &[outcome]).unwrap();
/// assert_eq!((duration.count, duration.sum), (1, 1.5));
/// ```
pub fn run_finished(f: &RunFinished<'_>) {
    tracing::info!(
        name: names::RUN_FINISHED,
        target: names::TARGET,
        run_id = f.run_id,
        outcome = f.outcome.as_str(),
        resumed = f.resumed,
        duration_ms = int(f.duration_ms),
        tasks_done = int(f.tasks_done),
        tasks_failed = int(f.tasks_failed),
        tasks_skipped = int(f.tasks_skipped),
        tasks_blocked = int(f.tasks_blocked),
        "{}",
        names::RUN_FINISHED
    );
}

/// Emits [`names::TASK_RESET`]. `task_name` is what people call the task (the plan's name
/// for it, a workflow file's task id), when it has one; the field is left out without one.
///
/// # Examples
///
/// ```
/// use cairn_telemetry::{emit, names, testing::TestTelemetry};
/// use opentelemetry::KeyValue;
///
/// let telemetry = TestTelemetry::new();
/// telemetry.in_scope(|| emit::task_reset("r1", "t4", None, "fetch", 2, "pending"));
/// let event = &telemetry.events(names::TASK_RESET)[0];
/// assert!(event.attributes.contains(&KeyValue::new("now", "pending")));
/// assert!(event.attributes.contains(&KeyValue::new("attempt", 2_i64)));
/// // An unnamed task's event has no `task_name` field at all.
/// assert!(event.attributes.iter().all(|kv| kv.key.as_str() != "task_name"));
/// ```
pub fn task_reset(
    run_id: &str,
    task_id: &str,
    task_name: Option<&str>,
    kind: &str,
    attempt: u32,
    now: &str,
) {
    tracing::warn!(name: names::TASK_RESET, target: names::TARGET,
        run_id, task_id, task_name, kind, attempt = i64::from(attempt), now,
        "{}", names::TASK_RESET);
}

/// Fields of [`names::TASK_FAILED`].
#[derive(Debug, Clone)]
pub struct TaskFailed<'a> {
    /// The run.
    pub run_id: &'a str,
    /// The task, as `TaskId` displays it (`t42`).
    pub task_id: &'a str,
    /// What people call the task (the plan's name for it, a workflow file's task id), if it
    /// has a name; the `task_name` field is left out without one.
    pub task_name: Option<&'a str>,
    /// The task's kind.
    pub kind: &'a str,
    /// The attempt that failed, from 1.
    pub attempt: u32,
    /// The attempts the task is allowed.
    pub max_attempts: u32,
    /// The failure's kind (`TaskError::kind`: the handler's own, or cairn's `timeout`,
    /// `panic`, `invalid_handoff`).
    pub error_kind: &'a str,
    /// The failure's text.
    pub error_message: &'a str,
    /// Whether the task gets another attempt (a retryable failure with attempts left).
    pub will_retry: bool,
}

/// Emits [`names::TASK_FAILED`] at WARN, inside `parent` when one is given, else inside the
/// current span.
///
/// tracing-opentelemetry drops events that have no parent span, so an emitter that knows
/// the span the failure belongs to but does not have it entered passes it as `parent`.
///
/// # Examples
///
/// ```
/// use cairn_telemetry::emit::{TaskFailed, task_failed};
/// use cairn_telemetry::{names, testing::TestTelemetry};
/// use opentelemetry::KeyValue;
///
/// let telemetry = TestTelemetry::new();
/// telemetry.in_scope(|| {
///     task_failed(
///         None,
///         &TaskFailed {
///             run_id: "r1",
///             task_id: "t3",
///             task_name: Some("fetch-prices"),
///             kind: "fetch",
///             attempt: 1,
///             max_attempts: 3,
///             error_kind: "http",
///             error_message: "503 from upstream",
///             will_retry: true,
///         },
///     );
/// });
/// let event = &telemetry.events(names::TASK_FAILED)[0];
/// assert!(event.attributes.contains(&KeyValue::new("error.kind", "http")));
/// assert!(event.attributes.contains(&KeyValue::new("will_retry", true)));
/// ```
pub fn task_failed(parent: Option<&tracing::Span>, f: &TaskFailed<'_>) {
    match parent {
        Some(parent) => tracing::warn!(name: names::TASK_FAILED, target: names::TARGET,
            parent: parent, run_id = f.run_id, task_id = f.task_id,
            task_name = f.task_name, kind = f.kind,
            attempt = i64::from(f.attempt), max_attempts = i64::from(f.max_attempts),
            error.kind = f.error_kind, error.message = f.error_message,
            will_retry = f.will_retry, "{}", names::TASK_FAILED),
        None => tracing::warn!(name: names::TASK_FAILED, target: names::TARGET,
            run_id = f.run_id, task_id = f.task_id, task_name = f.task_name, kind = f.kind,
            attempt = i64::from(f.attempt), max_attempts = i64::from(f.max_attempts),
            error.kind = f.error_kind, error.message = f.error_message,
            will_retry = f.will_retry, "{}", names::TASK_FAILED),
    }
}

/// Emits [`names::STATE_QUARANTINED`].
///
/// # Examples
///
/// ```
/// use cairn_telemetry::{emit, names, testing::TestTelemetry};
/// use opentelemetry::KeyValue;
///
/// let telemetry = TestTelemetry::new();
/// telemetry.in_scope(|| emit::state_quarantined("r1", "bad checksum", "quarantine/r1"));
/// let event = &telemetry.events(names::STATE_QUARANTINED)[0];
/// assert!(event.attributes.contains(&KeyValue::new("location", "quarantine/r1")));
/// assert_eq!(telemetry.counter_total(names::METRIC_QUARANTINES), 1);
/// ```
pub fn state_quarantined(run_id: &str, reason: &str, location: &str) {
    tracing::warn!(name: names::STATE_QUARANTINED, target: names::TARGET,
        run_id, reason, location, "{}", names::STATE_QUARANTINED);
}

/// Emits [`names::BEGIN_DEGRADED`] at WARN.
///
/// # Examples
///
/// ```
/// use cairn_telemetry::{emit, names, testing::TestTelemetry};
/// use opentelemetry::KeyValue;
///
/// let telemetry = TestTelemetry::new();
/// telemetry.in_scope(|| emit::begin_degraded("r1", "disk full"));
/// let event = &telemetry.events(names::BEGIN_DEGRADED)[0];
/// assert!(event.attributes.contains(&KeyValue::new("level", "WARN")));
/// assert!(event.attributes.contains(&KeyValue::new("error", "disk full")));
/// ```
pub fn begin_degraded(run_id: &str, error: &str) {
    tracing::warn!(name: names::BEGIN_DEGRADED, target: names::TARGET,
        run_id, error, "{}", names::BEGIN_DEGRADED);
}

/// Emits [`names::FAILED_RESUME_PROMPTED`].
///
/// # Examples
///
/// ```
/// use cairn_telemetry::{emit, names, testing::TestTelemetry};
/// use opentelemetry::KeyValue;
///
/// let telemetry = TestTelemetry::new();
/// telemetry.in_scope(|| emit::failed_resume_prompted("r1", "nightly", "prod"));
/// let event = &telemetry.events(names::FAILED_RESUME_PROMPTED)[0];
/// assert!(event.attributes.contains(&KeyValue::new("run_id", "r1")));
/// assert!(event.attributes.contains(&KeyValue::new("workflow", "nightly")));
/// ```
pub fn failed_resume_prompted(run_id: &str, workflow: &str, scope: &str) {
    tracing::info!(name: names::FAILED_RESUME_PROMPTED, target: names::TARGET,
        run_id, workflow, scope, "{}", names::FAILED_RESUME_PROMPTED);
}

/// Emits [`names::RUN_ABANDONED`] for an abandon that needed no override (`forced = false`).
///
/// # Examples
///
/// ```
/// use cairn_telemetry::{emit, names, testing::TestTelemetry};
/// use opentelemetry::KeyValue;
///
/// let telemetry = TestTelemetry::new();
/// telemetry.in_scope(|| emit::run_abandoned("r1", "failed"));
/// let event = &telemetry.events(names::RUN_ABANDONED)[0];
/// assert!(event.attributes.contains(&KeyValue::new("forced", false)));
/// assert!(event.attributes.contains(&KeyValue::new("level", "INFO")));
/// ```
pub fn run_abandoned(run_id: &str, previous_status: &str) {
    tracing::info!(name: names::RUN_ABANDONED, target: names::TARGET,
        run_id, previous_status, forced = false, "{}", names::RUN_ABANDONED);
}

/// Emits [`names::RUN_ABANDONED`] for a forced abandon (`forced = true`), at WARN: it overrode
/// `last_owner` (for example `pid 4242 on build-7`, or `none recorded`), whose lease epoch
/// was `last_lease_epoch` and which could not be shown to have exited.
///
/// # Examples
///
/// ```
/// use cairn_telemetry::{emit, names, testing::TestTelemetry};
/// use opentelemetry::KeyValue;
///
/// let telemetry = TestTelemetry::new();
/// telemetry.in_scope(|| emit::run_abandoned_forced("r1", "running", "pid 4242 on build-7", 3));
/// let event = &telemetry.events(names::RUN_ABANDONED)[0];
/// assert!(event.attributes.contains(&KeyValue::new("forced", true)));
/// assert!(event.attributes.contains(&KeyValue::new("level", "WARN")));
/// assert!(event.attributes.contains(&KeyValue::new("last_lease_epoch", 3_i64)));
/// ```
pub fn run_abandoned_forced(
    run_id: &str,
    previous_status: &str,
    last_owner: &str,
    last_lease_epoch: u64,
) {
    tracing::warn!(name: names::RUN_ABANDONED, target: names::TARGET,
        run_id, previous_status, forced = true, last_owner,
        last_lease_epoch = int(last_lease_epoch), "{}", names::RUN_ABANDONED);
}

/// Emits [`names::FRESH_RUN_FORCED`].
///
/// # Examples
///
/// ```
/// use cairn_telemetry::{emit, names, testing::TestTelemetry};
/// use opentelemetry::KeyValue;
///
/// let telemetry = TestTelemetry::new();
/// telemetry.in_scope(|| emit::fresh_run_forced("r2", "r1"));
/// let event = &telemetry.events(names::FRESH_RUN_FORCED)[0];
/// assert!(event.attributes.contains(&KeyValue::new("run_id", "r2")));
/// assert!(event.attributes.contains(&KeyValue::new("failed_run_id", "r1")));
/// ```
pub fn fresh_run_forced(run_id: &str, failed_run_id: &str) {
    tracing::info!(name: names::FRESH_RUN_FORCED, target: names::TARGET,
        run_id, failed_run_id, "{}", names::FRESH_RUN_FORCED);
}

/// Emits [`names::RESUMED_BY_ID`].
///
/// # Examples
///
/// ```
/// use cairn_telemetry::{emit, names, testing::TestTelemetry};
/// use opentelemetry::KeyValue;
///
/// let telemetry = TestTelemetry::new();
/// telemetry.in_scope(|| emit::resumed_by_id("r1", "failed", 4));
/// let event = &telemetry.events(names::RESUMED_BY_ID)[0];
/// assert!(event.attributes.contains(&KeyValue::new("previous_status", "failed")));
/// assert!(event.attributes.contains(&KeyValue::new("lease_epoch", 4_i64)));
/// ```
pub fn resumed_by_id(run_id: &str, previous_status: &str, lease_epoch: u64) {
    tracing::info!(name: names::RESUMED_BY_ID, target: names::TARGET,
        run_id, previous_status, lease_epoch = int(lease_epoch), "{}", names::RESUMED_BY_ID);
}

/// Emits [`names::BREAKER_TRIPPED`].
///
/// # Examples
///
/// ```
/// use cairn_telemetry::{emit, names, testing::TestTelemetry};
/// use opentelemetry::KeyValue;
///
/// // Outside any span, as the scheduler emits it: exported as a span of its own.
/// let telemetry = TestTelemetry::new();
/// telemetry.in_scope(|| emit::breaker_tripped("sync", 10, "database unreachable"));
/// assert_eq!(telemetry.spans_named(names::BREAKER_TRIPPED).len(), 1);
/// let event = &telemetry.events(names::BREAKER_TRIPPED)[0];
/// assert!(event.attributes.contains(&KeyValue::new("consecutive_errors", 10_i64)));
/// ```
pub fn breaker_tripped(job_id: &str, consecutive_errors: u32, last_error: &str) {
    tracing::warn!(name: names::BREAKER_TRIPPED, target: names::TARGET,
        job_id, consecutive_errors = i64::from(consecutive_errors), last_error, "{}", names::BREAKER_TRIPPED);
}

/// Emits [`names::JOB_REVIVED`].
///
/// # Examples
///
/// ```
/// use cairn_telemetry::{emit, names, testing::TestTelemetry};
/// use opentelemetry::KeyValue;
///
/// let telemetry = TestTelemetry::new();
/// telemetry.in_scope(|| emit::job_revived("sync", true));
/// let event = &telemetry.events(names::JOB_REVIVED)[0];
/// assert!(event.attributes.contains(&KeyValue::new("job_id", "sync")));
/// assert!(event.attributes.contains(&KeyValue::new("forced", true)));
/// ```
pub fn job_revived(job_id: &str, forced: bool) {
    tracing::info!(name: names::JOB_REVIVED, target: names::TARGET,
        job_id, forced, "{}", names::JOB_REVIVED);
}

/// Fields of [`names::QUEUE_DEPTH`].
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueDepth {
    /// Pending tasks.
    pub pending: u64,
    /// Running tasks.
    pub running: u64,
    /// Done tasks.
    pub done: u64,
    /// Skipped tasks.
    pub skipped: u64,
    /// Failed tasks.
    pub failed: u64,
    /// Blocked tasks.
    pub blocked: u64,
}

/// Emits [`names::QUEUE_DEPTH`] at DEBUG (it is frequent; metrics read it).
///
/// # Examples
///
/// ```
/// use cairn_telemetry::emit::{self, QueueDepth};
/// use cairn_telemetry::{names, testing::TestTelemetry};
/// use opentelemetry::KeyValue;
///
/// let telemetry = TestTelemetry::new();
/// telemetry.in_scope(|| {
///     emit::queue_depth("r1", &QueueDepth { pending: 3, ..QueueDepth::default() });
///     emit::queue_depth("r2", &QueueDepth { pending: 2, ..QueueDepth::default() });
/// });
/// // The gauge sums the runs in progress.
/// let pending = [KeyValue::new("status", "pending")];
/// assert_eq!(telemetry.gauge(names::METRIC_QUEUE_DEPTH, &pending), Some(5));
/// ```
pub fn queue_depth(run_id: &str, d: &QueueDepth) {
    tracing::debug!(name: names::QUEUE_DEPTH, target: names::TARGET,
        run_id, pending = int(d.pending), running = int(d.running), done = int(d.done),
        skipped = int(d.skipped), failed = int(d.failed), blocked = int(d.blocked), "{}", names::QUEUE_DEPTH);
}
