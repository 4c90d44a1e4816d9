//! How a run ended: why it stopped ([`RunStop`]), what that means for its stored record
//! ([`Disposition`], decided by the pure [`classify`]), and the [`RunReport`] the host gets.

use std::fmt;

use cairn_checkpoint::{RunError, RunId};
use cairn_queue::{StatusCounts, TaskError, TaskId};

/// Why a run's drive was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelCause {
    /// The host is shutting down: the run stays `running` so a later start resumes it.
    Shutdown,
    /// The caller cancelled this run on purpose.
    Caller,
    /// The run's deadline passed.
    Deadline,
}

impl CancelCause {
    /// The lower-case name used in run errors and logs.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_executor::{CancelCause, Disposition, RunStop, classify};
    ///
    /// assert_eq!(CancelCause::Caller.as_str(), "cancelled");
    /// // It is the kind of the error a cancelled run fails with.
    /// let stop = RunStop::Cancelled(CancelCause::Deadline);
    /// let Disposition::Fail(error) = classify(Some(&stop)) else { panic!() };
    /// assert_eq!(error.kind, CancelCause::Deadline.as_str());
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            CancelCause::Shutdown => "shutdown",
            CancelCause::Caller => "cancelled",
            CancelCause::Deadline => "deadline",
        }
    }
}

/// A task that ended `failed`, with its last error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedTask {
    /// The task.
    pub id: TaskId,
    /// Its kind.
    pub kind: String,
    /// Its plan name ([`crate::PlannedTask::name`]), when it has one.
    pub name: Option<String>,
    /// Its last error, when it has one.
    pub error: Option<TaskError>,
}

impl fmt::Display for FailedTask {
    /// `` `build` `` for a named task (the queue's id is left out: beside a workflow's ids,
    /// `t3` reads as another of its tasks), `t3 (shell)` for one without a name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "`{name}`"),
            None => write!(f, "{} ({})", self.id, self.kind),
        }
    }
}

/// Why a run stopped without completing. `None` where a `RunStop` is expected means the run
/// completed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RunStop {
    /// Tasks failed and the queue drained: the run cannot complete.
    TasksFailed {
        /// The failed tasks, in id order.
        failed: Vec<FailedTask>,
        /// The dependents they blocked, in id order.
        blocked: Vec<TaskId>,
    },
    /// The drive was cancelled.
    Cancelled(CancelCause),
    /// The run could not be built: an unknown task kind, a bad dependency in the plan, a plan
    /// that does not fit the adopted run's tasks.
    Build(String),
    /// The executor itself panicked (not a handler: handler panics fail their task).
    Panicked(String),
    /// Writing to the run's checkpointer failed. The checkpointer may be poisoned.
    Checkpoint(cairn_checkpoint::Error),
    /// The queue refused a transition the executor made: a bug in the executor or the queue.
    Queue(cairn_queue::Error),
}

/// Failed tasks a run's error names one by one; the rest are counted. The error is stored
/// with the run and printed whole, so thousands of failures must not make it megabytes.
pub const LISTED_FAILURES: usize = 10;

impl fmt::Display for RunStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunStop::TasksFailed { failed, blocked } => {
                write!(f, "{} task(s) failed", failed.len())?;
                for task in failed.iter().take(LISTED_FAILURES) {
                    match &task.error {
                        Some(error) => write!(f, "; {task}: {error}")?,
                        None => write!(f, "; {task}")?,
                    }
                }
                if let Some(more) = failed.len().checked_sub(LISTED_FAILURES).filter(|n| *n > 0) {
                    write!(
                        f,
                        "; and {more} more (each task's error is in its run's task table)"
                    )?;
                }
                if !blocked.is_empty() {
                    write!(f, "; {} dependent(s) blocked", blocked.len())?;
                }
                Ok(())
            }
            RunStop::Cancelled(cause) => write!(f, "run cancelled ({})", cause.as_str()),
            RunStop::Build(reason) => write!(f, "run could not be built: {reason}"),
            RunStop::Panicked(message) => write!(f, "executor panicked: {message}"),
            RunStop::Checkpoint(error) => write!(f, "checkpoint write failed: {error}"),
            RunStop::Queue(error) => write!(f, "queue refused a transition: {error}"),
        }
    }
}

/// What happens to a run's stored record when its drive ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Mark the run `completed`.
    Complete,
    /// Leave the run `running`: it was shut down gracefully and a later start resumes it.
    LeaveRunning,
    /// Mark the run `failed` with this error.
    Fail(RunError),
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disposition::Complete => f.write_str("complete"),
            Disposition::LeaveRunning => f.write_str("leave_running"),
            Disposition::Fail(error) => write!(f, "fail ({error})"),
        }
    }
}

/// Decides a run's disposition from why it stopped. Pure: no I/O, no clock.
///
/// - No stop (`None`) → [`Disposition::Complete`].
/// - Cancelled with [`CancelCause::Shutdown`] → [`Disposition::LeaveRunning`].
/// - Anything else → [`Disposition::Fail`] whose kind says why: `task_failed`, `panic` (a
///   handler panicked and failed its task), `cancelled`, `deadline`, `build`,
///   `executor_panic`, `checkpoint` or `queue`.
///
/// # Examples
///
/// ```
/// use cairn_executor::{CancelCause, Disposition, RunStop, classify};
///
/// assert_eq!(classify(None), Disposition::Complete);
/// assert_eq!(classify(Some(&RunStop::Cancelled(CancelCause::Shutdown))), Disposition::LeaveRunning);
/// let Disposition::Fail(error) = classify(Some(&RunStop::Cancelled(CancelCause::Deadline))) else {
///     panic!("a deadline fails the run");
/// };
/// assert_eq!(error.kind, "deadline");
/// ```
pub fn classify(stop: Option<&RunStop>) -> Disposition {
    let Some(stop) = stop else {
        return Disposition::Complete;
    };
    let kind = match stop {
        RunStop::Cancelled(CancelCause::Shutdown) => return Disposition::LeaveRunning,
        RunStop::Cancelled(cause) => cause.as_str(),
        RunStop::TasksFailed { failed, .. } => {
            // A handler panic is a bug rather than an expected failure, so it gets its own kind.
            let panicked = failed
                .iter()
                .any(|t| t.error.as_ref().is_some_and(|e| e.kind == "panic"));
            if panicked { "panic" } else { "task_failed" }
        }
        RunStop::Build(_) => "build",
        RunStop::Panicked(_) => "executor_panic",
        RunStop::Checkpoint(_) => "checkpoint",
        RunStop::Queue(_) => "queue",
    };
    Disposition::Fail(RunError::new(kind, stop.to_string()))
}

/// What one call to `Executor::run` did.
#[derive(Debug)]
pub struct RunReport {
    /// The run that was driven.
    pub run_id: RunId,
    /// What was recorded for it.
    pub disposition: Disposition,
    /// Why it stopped, when it did not complete.
    pub stop: Option<RunStop>,
    /// Whether an interrupted or explicitly adopted run was resumed.
    pub resumed: bool,
    /// When the resumed run was started with another input than this plan's: the input it
    /// kept. The plan's input was not used (an adopted run continues what it was started
    /// for); a host that took the input from a person should tell them.
    pub kept_input: Option<String>,
    /// `false` when `begin` failed and the run degraded to a non-durable checkpointer.
    pub durable: bool,
    /// Task counts when the drive ended (the last counts seen, after an executor panic).
    pub counts: StatusCounts,
}
