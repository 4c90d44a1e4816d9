//! The task record and the small value types it is made of.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch, always supplied by the caller: the queue keeps no clock.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Returns this instant plus `ms` milliseconds, saturating at the far future.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::Timestamp;
    ///
    /// assert_eq!(Timestamp(1_000).plus_millis(500), Timestamp(1_500));
    /// assert_eq!(Timestamp(u64::MAX).plus_millis(1), Timestamp(u64::MAX));
    /// ```
    pub fn plus_millis(self, ms: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }
}

/// Shows the instant as `YYYY-MM-DD HH:MM:SS UTC`, the form messages use everywhere in
/// cairn; the milliseconds are left out.
///
/// # Examples
///
/// ```
/// use cairn_queue::Timestamp;
///
/// assert_eq!(Timestamp(0).to_string(), "1970-01-01 00:00:00 UTC");
/// assert_eq!(Timestamp(1_767_225_600_999).to_string(), "2026-01-01 00:00:00 UTC");
/// ```
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0 / 1000;
        let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both are small and positive by construction: a day of 1..=31, a month of 1..=12.
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A task's identity within one run: dense, assigned by the queue in creation order,
/// so ids sort by creation and never repeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl FromStr for TaskId {
    type Err = crate::Error;

    /// Parses the `Display` form, `t42`, or a bare number, `42`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || crate::Error::InvalidTaskId { text: s.to_owned() };
        let digits = s.strip_prefix('t').unwrap_or(s);
        // `u64::from_str` also takes a leading `+`; an id is digits only.
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        digits.parse::<u64>().map(TaskId).map_err(|_| invalid())
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for its dependencies, its `not_before`, or a worker.
    Pending,
    /// Claimed by a worker; its attempt counter has been incremented.
    Running,
    /// Finished successfully. Satisfies dependents.
    Done,
    /// Judged itself unnecessary. Satisfies dependents, like `Done`.
    Skipped,
    /// Failed permanently, or ran out of attempts.
    Failed,
    /// Can never run because an ancestor failed; `Task::blocked_by` names that ancestor.
    Blocked,
}

impl Status {
    /// Every status, in declaration order.
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Running,
        Status::Done,
        Status::Skipped,
        Status::Failed,
        Status::Blocked,
    ];

    /// Whether a dependency in this status lets its dependents start.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::Status;
    ///
    /// assert!(Status::Skipped.satisfies_dependents());
    /// assert!(!Status::Failed.satisfies_dependents());
    /// ```
    pub fn satisfies_dependents(self) -> bool {
        matches!(self, Status::Done | Status::Skipped)
    }

    /// Whether the task can never change again without a manual retry.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::Status;
    ///
    /// assert!(Status::Blocked.is_terminal());
    /// assert!(!Status::Running.is_terminal());
    /// ```
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Done | Status::Skipped | Status::Failed | Status::Blocked
        )
    }

    /// The lower-case name used in JSON and in messages.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::Status;
    ///
    /// assert_eq!(Status::Skipped.as_str(), "skipped");
    /// assert_eq!(serde_json::to_value(Status::Skipped)?, "skipped");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Done => "done",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::Blocked => "blocked",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who enqueued a task: the run itself, or a running task spawning follow-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnqueuedBy {
    /// The host enqueued it directly.
    Root,
    /// The handler of this task enqueued it.
    Task(TaskId),
}

/// Why a task failed: a machine-readable kind plus a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskError {
    /// A short machine-readable class, such as `timeout`, `panic` or `exit_code`.
    pub kind: String,
    /// A human-readable explanation.
    pub message: String,
}

impl TaskError {
    /// Builds an error from its kind and message.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::TaskError;
    ///
    /// let error = TaskError::new("timeout", "no answer in 30s");
    /// assert_eq!((error.kind.as_str(), error.message.as_str()), ("timeout", "no answer in 30s"));
    /// ```
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> Self {
        TaskError {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// What a finished task leaves for the tasks after it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Handoff {
    /// The goals the task worked towards.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goals: Vec<String>,
    /// What the task actually did.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub done: Vec<String>,
    /// A note addressed to whichever task comes next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_note: Option<String>,
    /// Files the task created or changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files_touched: Vec<String>,
    /// Free-form data for dependents.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub extra: serde_json::Value,
}

impl Handoff {
    /// A handoff that carries nothing.
    pub const EMPTY: Handoff = Handoff {
        goals: Vec::new(),
        done: Vec::new(),
        next_note: None,
        files_touched: Vec::new(),
        extra: serde_json::Value::Null,
    };

    /// Whether the handoff carries nothing at all (the same as `Handoff::default()`).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::Handoff;
    /// assert!(Handoff::default().is_empty());
    /// let note = Handoff { next_note: Some("check the logs".into()), ..Handoff::default() };
    /// assert!(!note.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.goals.is_empty()
            && self.done.is_empty()
            && self.next_note.is_none()
            && self.files_touched.is_empty()
            && self.extra.is_null()
    }
}

/// A task as the queue holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Unique, creation-ordered id.
    pub id: TaskId,
    /// What the task does; the executor maps it to a handler.
    pub kind: String,
    /// Where the task is in its life.
    pub status: Status,
    /// Tasks that must be `done` or `skipped` before this one starts (deduplicated, in given order).
    pub depends_on: Vec<TaskId>,
    /// The task's input, as JSON.
    pub inputs: serde_json::Value,
    /// How many times the task has been started.
    pub attempts: u32,
    /// The most starts allowed before a failure is permanent.
    pub max_attempts: u32,
    /// The run itself, or the task whose handler enqueued this one.
    pub enqueued_by: EnqueuedBy,
    /// 0 for a root task, the parent's depth plus one for a follow-up.
    pub depth: u32,
    /// When the task was enqueued.
    pub created_at: Timestamp,
    /// When the latest attempt started.
    pub started_at: Option<Timestamp>,
    /// When the task reached `done`, `skipped`, `failed` or `blocked`.
    pub finished_at: Option<Timestamp>,
    /// The latest failure, kept after a retry so people can see why it retried. Boxed, like
    /// `handoff`, because most tasks never have one and a million tasks must stay small.
    pub error: Option<Box<TaskError>>,
    /// The earliest time the task may start again (retry backoff).
    pub not_before: Option<Timestamp>,
    /// What the task left for its dependents once `done` or `skipped`; `None` before that,
    /// and also when the handoff was empty ([`Handoff::is_empty`]), which most are. Read
    /// handoffs through `Queue::dependency_handoffs`, which fills in the empty ones.
    pub handoff: Option<Box<Handoff>>,
    /// For a `blocked` task: the failed ancestor that blocks it.
    pub blocked_by: Option<TaskId>,
    /// Whether this task takes part in the dedup guard.
    pub dedup: bool,
}

/// What the caller asks to enqueue.
///
/// # Examples
///
/// ```
/// use cairn_queue::TaskSpec;
/// let spec = TaskSpec::new("fetch")
///     .inputs(serde_json::json!({ "url": "https://example.org" }))
///     .max_attempts(5);
/// assert_eq!(spec.kind, "fetch");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    /// What the task does.
    pub kind: String,
    /// The task's input.
    pub inputs: serde_json::Value,
    /// Ids that must exist already; duplicates are collapsed.
    pub depends_on: Vec<TaskId>,
    /// `None` takes `QueueConfig::default_max_attempts`.
    pub max_attempts: Option<u32>,
    /// `false` opts this call out of the dedup guard.
    pub dedup: bool,
}

impl TaskSpec {
    /// A spec with null inputs, no dependencies, the default attempts and dedup on.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::TaskSpec;
    ///
    /// let spec = TaskSpec::new("fetch");
    /// assert_eq!(spec.kind, "fetch");
    /// assert!(spec.inputs.is_null() && spec.depends_on.is_empty() && spec.dedup);
    /// assert_eq!(spec.max_attempts, None, "the queue's default applies");
    /// ```
    pub fn new(kind: impl Into<String>) -> Self {
        TaskSpec {
            kind: kind.into(),
            inputs: serde_json::Value::Null,
            depends_on: Vec::new(),
            max_attempts: None,
            dedup: true,
        }
    }

    /// Sets the inputs.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::TaskSpec;
    ///
    /// let spec = TaskSpec::new("fetch").inputs(serde_json::json!({ "url": "https://example.com" }));
    /// assert_eq!(spec.inputs["url"], "https://example.com");
    /// ```
    pub fn inputs(mut self, inputs: serde_json::Value) -> Self {
        self.inputs = inputs;
        self
    }

    /// Sets the dependencies.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{TaskId, TaskSpec};
    ///
    /// let spec = TaskSpec::new("render").depends_on([TaskId(0), TaskId(1)]);
    /// assert_eq!(spec.depends_on, [TaskId(0), TaskId(1)]);
    /// ```
    pub fn depends_on(mut self, ids: impl IntoIterator<Item = TaskId>) -> Self {
        self.depends_on = ids.into_iter().collect();
        self
    }

    /// Sets the attempt limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::TaskSpec;
    ///
    /// assert_eq!(TaskSpec::new("fetch").max_attempts(5).max_attempts, Some(5));
    /// ```
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }

    /// Opts this task out of the dedup guard.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// let mut q = Queue::new(QueueConfig::default());
    /// let first = q.enqueue(TaskSpec::new("ping").without_dedup(), EnqueuedBy::Root, Timestamp(0))?;
    /// let second = q.enqueue(TaskSpec::new("ping").without_dedup(), EnqueuedBy::Root, Timestamp(0))?;
    /// assert!(!second.existing);
    /// assert_ne!(first.id, second.id);
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn without_dedup(mut self) -> Self {
        self.dedup = false;
        self
    }
}

/// How deep a task's inputs, or a handoff's `extra`, may nest (arrays and objects within one
/// another). The journal and snapshots store these values a few levels inside records of
/// their own, and JSON readers (serde_json among them) refuse input nested past 128 levels,
/// so a deeper value would be acknowledged and then unreadable after a crash. `enqueue`,
/// `complete`, `skip`, `amend` and `apply` refuse deeper values with a typed error instead, and
/// `Queue::from_snapshot` a snapshot that holds one.
///
/// # Examples
///
/// ```
/// use cairn_queue::{EnqueuedBy, Error, Queue, QueueConfig, TaskSpec, Timestamp, MAX_VALUE_DEPTH};
///
/// let mut deep = serde_json::json!(1);
/// for _ in 0..=MAX_VALUE_DEPTH {
///     deep = serde_json::json!([deep]);
/// }
/// let mut q = Queue::new(QueueConfig::default());
/// let refused = q.enqueue(TaskSpec::new("t").inputs(deep), EnqueuedBy::Root, Timestamp(0));
/// assert!(matches!(refused, Err(Error::InvalidSpec { .. })));
/// ```
pub const MAX_VALUE_DEPTH: usize = 100;

/// Whether `value` nests deeper than [`MAX_VALUE_DEPTH`], so that `enqueue` would refuse it
/// as a task's inputs (and `complete` as a handoff's `extra`). A caller that builds many
/// tasks before it enqueues any (a plan) checks them first with this, so that nothing is
/// begun for a task that would be refused halfway.
///
/// # Examples
///
/// ```
/// use cairn_queue::{MAX_VALUE_DEPTH, nests_too_deep};
///
/// let mut value = serde_json::json!("leaf");
/// for _ in 0..MAX_VALUE_DEPTH {
///     value = serde_json::json!({ "inner": value });
/// }
/// assert!(!nests_too_deep(&value));
/// assert!(nests_too_deep(&serde_json::json!([value])));
/// ```
#[inline]
pub fn nests_too_deep(value: &serde_json::Value) -> bool {
    too_deep(value)
}

/// Whether `value` nests deeper than [`MAX_VALUE_DEPTH`]. Inlined, so the common scalar
/// (or null) value costs a compare on the hot path.
#[inline]
pub(crate) fn too_deep(value: &serde_json::Value) -> bool {
    (value.is_array() || value.is_object())
        && nesting_depth(value, MAX_VALUE_DEPTH) > MAX_VALUE_DEPTH
}

/// How deep `value` nests, counted up to `limit + 1` at most (so a huge value is not walked
/// whole). A scalar is 0; `[1]` and `{"a": 1}` are 1. Iterative, so a deep value cannot
/// overflow the stack here.
pub(crate) fn nesting_depth(value: &serde_json::Value, limit: usize) -> usize {
    use serde_json::Value;
    // Most inputs are scalars or flat: answer those without allocating.
    let nested = |value: &Value| match value {
        Value::Array(items) => items.iter().any(|v| v.is_array() || v.is_object()),
        Value::Object(fields) => fields.values().any(|v| v.is_array() || v.is_object()),
        _ => false,
    };
    if !nested(value) {
        return usize::from(value.is_array() || value.is_object());
    }
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        if deepest > limit {
            break;
        }
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|item| (item, depth + 1))),
            Value::Object(fields) => stack.extend(fields.values().map(|field| (field, depth + 1))),
            _ => {}
        }
    }
    deepest
}
