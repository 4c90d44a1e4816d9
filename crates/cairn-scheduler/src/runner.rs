//! The injected runner: how a due job starts its workflow run.
//!
//! The scheduler does not name the executor. A host implements [`JobRunner`] by building a
//! `RunMeta` from the [`RunRequest`], beginning the run through its
//! `Arc<dyn CheckpointerFactory>` and driving it with the executor and its handler registry
//! (the CLI does exactly this for `cairn scheduler`). A returned `Err` counts as one failed run
//! for the job's circuit breaker (unless it is `RunFailed::interrupted`); so does a panic
//! inside `run`, which the scheduler catches.

use std::fmt::Debug;

use async_trait::async_trait;
use cairn_checkpoint::JobId;
use cairn_queue::Timestamp;

/// One run the scheduler wants started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRequest {
    /// The job.
    pub job_id: JobId,
    /// The workflow to run.
    pub workflow: String,
    /// Its input, as the job stores it.
    pub input: String,
    /// The schedule time this run is for (earlier than `started_at` after downtime).
    pub scheduled_for: Timestamp,
    /// When the scheduler started it.
    pub started_at: Timestamp,
}

/// A run that finished successfully.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSucceeded {
    /// The run's id, when the runner created one.
    pub run_id: Option<String>,
}

/// A run that did not succeed: one error for the circuit breaker, unless it was only
/// interrupted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFailed {
    /// The run's id, when one was created.
    pub run_id: Option<String>,
    /// What went wrong, for people (stored as the job's `last_error`).
    pub message: String,
    /// The run was cut short by a shutdown and left resumable. It did not fail, so the
    /// scheduler does not count it against the breaker and leaves the job as it was.
    pub interrupted: bool,
}

impl RunFailed {
    /// A failure with a message and no run id.
    pub fn new(message: impl Into<String>) -> Self {
        RunFailed {
            run_id: None,
            message: message.into(),
            interrupted: false,
        }
    }

    /// A run cut short by a shutdown and left resumable (not counted as an error).
    pub fn interrupted(run_id: Option<String>, message: impl Into<String>) -> Self {
        RunFailed {
            run_id,
            message: message.into(),
            interrupted: true,
        }
    }
}

/// Starts a job's run and waits for its outcome. Object-safe; hold it as
/// `Arc<dyn JobRunner>`.
#[async_trait]
pub trait JobRunner: Send + Sync + Debug + 'static {
    /// Runs `request` to its end.
    ///
    /// MUST return `Err` when the run failed or could not start; the scheduler counts it as
    /// one consecutive error. A run a shutdown cut short MUST be `RunFailed::interrupted`,
    /// which is not counted. SHOULD give each run a fresh run id, because a job runs its
    /// workflow many times. SHOULD NOT panic: a panic is caught by the scheduler and
    /// recorded as a failed run whose message starts with "the job runner panicked".
    ///
    /// # Cancel safety
    ///
    /// The scheduler awaits this to completion; it is dropped only when the host drops the
    /// scheduler's future, in which case the job's bookkeeping for this run is skipped.
    async fn run(&self, request: &RunRequest) -> Result<RunSucceeded, RunFailed>;
}
