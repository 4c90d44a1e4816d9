//! The one error type of the scheduler.

use cairn_checkpoint::{InvalidJobId, JobAuditAction, JobId};

use crate::job::JobStatus;

/// Everything a scheduler operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The job store failed.
    #[error("job store{}: {source}", for_job_in_parens(.job))]
    Store {
        /// The job whose claim, record or clean-up failed, when the store failed for one
        /// job (`Scheduler::tick` sets it); `None` for a listing or a whole-store call.
        job: Option<JobId>,
        /// The port's error.
        #[source]
        source: cairn_checkpoint::Error,
    },
    /// Text offered as a job id is not one.
    #[error(transparent)]
    InvalidJobId(#[from] InvalidJobId),
    /// A schedule does not parse or is out of range.
    #[error("invalid schedule `{expression}`{}: {reason}", of_job(.job))]
    InvalidSchedule {
        /// The job it was given for, when known (`Jobs::add` and `Jobs::resume` set it).
        job: Option<JobId>,
        /// The schedule as given.
        expression: String,
        /// Why it was refused.
        reason: String,
    },
    /// A time zone does not parse.
    #[error("invalid time zone `{text}`{}: {reason}", of_job(.job))]
    InvalidZone {
        /// The job it was given for, when known (`Jobs::add` sets it).
        job: Option<JobId>,
        /// The text.
        text: String,
        /// Why it was refused.
        reason: String,
    },
    /// A job definition is inconsistent.
    #[error("job {id} is invalid: {reason}")]
    InvalidJob {
        /// The job.
        id: JobId,
        /// What is wrong.
        reason: String,
    },
    /// A stored job document does not decode.
    #[error(
        "stored job {id} does not decode ({detail}); fix it, or delete it (the deletion keeps its document in the job's audit log)"
    )]
    BadDocument {
        /// The job.
        id: JobId,
        /// The decoder's message.
        detail: String,
    },
    /// Job `id` was written by a newer build of cairn: its document's format version (or the
    /// job store's format of its file or value) is above this build's. Nothing is wrong
    /// with it, so this build leaves it exactly as it is: it never runs, rewrites or deletes
    /// it (not even `Jobs::delete_unreadable`). Use that build, or a later one.
    #[error(
        "job {id} was written by a newer cairn build ({detail}); this build leaves it as it is and does not run it: use that build or a later one"
    )]
    NewerFormat {
        /// The job.
        id: JobId,
        /// What this build does not read, and where.
        detail: String,
    },
    /// `delete_unreadable` of a job whose document decodes: nothing was changed.
    #[error("job {id} decodes fine; delete it with a plain delete")]
    NotDamaged {
        /// The job.
        id: JobId,
    },
    /// No job has this id.
    #[error("no job {id}")]
    NotFound {
        /// The job.
        id: JobId,
    },
    /// A job with this id exists already.
    #[error("job {id} already exists")]
    AlreadyExists {
        /// The job.
        id: JobId,
    },
    /// `resume` of a job that is already active: nothing was changed.
    #[error("job {id} is already active; nothing to resume")]
    AlreadyActive {
        /// The job.
        id: JobId,
    },
    /// `resume` without `force` of a job whose circuit breaker tripped: nothing was changed.
    #[error(
        "job {id} is failed: its circuit breaker tripped after {consecutive_errors} consecutive \
         failed runs (last error: {last_error}); resume it with force (`--force`) to revive it"
    )]
    NeedsForce {
        /// The job.
        id: JobId,
        /// Failed runs in a row when it tripped.
        consecutive_errors: u32,
        /// The last run's error.
        last_error: String,
    },
    /// `resume` of a completed job (a one-shot job that ran, or a recurring job whose
    /// schedule ran out), refused even with `force`.
    #[error(
        "job {id} is completed (a one-shot job that already ran, or a recurring job whose schedule has no time left); it cannot be resumed, not even with force; create a new job instead"
    )]
    Completed {
        /// The job.
        id: JobId,
    },
    /// `pause` of a job that is not active.
    #[error("job {id} is {status}, only an active job can be paused")]
    NotActive {
        /// The job.
        id: JobId,
        /// Its status.
        status: JobStatus,
    },
    /// A change to job `id` was stored, but its audit record (`action`) could not be
    /// appended: the job store failed after the change committed. The change stands (a
    /// revive revived the job, a delete deleted it), so trying the operation again finds
    /// nothing to do; only its audit record is missing.
    #[error(
        "job {id}: the change was made and stands, but its audit record (`{}`) could not be written: {source}",
        audit_action_name(*.action)
    )]
    Unaudited {
        /// The job.
        id: JobId,
        /// The record that is missing.
        action: JobAuditAction,
        /// The job store's error.
        #[source]
        source: cairn_checkpoint::Error,
    },
    /// Other writers kept changing the job; the update was given up after `attempts` tries.
    #[error("job {id} changed under every one of {attempts} update attempts; try again")]
    Contended {
        /// The job.
        id: JobId,
        /// How many compare-and-swaps were lost.
        attempts: u32,
    },
}

impl Error {
    /// Names job `id` in a definition error (`InvalidSchedule`, `InvalidZone`) or a store
    /// error (`Store`) that does not name a job yet; other errors are returned as they are.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_checkpoint::JobId;
    /// use cairn_scheduler::{Error, Schedule};
    ///
    /// let id = JobId::new("backup")?;
    /// let err = Schedule::every(Duration::from_millis(10)).unwrap_err().for_job(&id);
    /// assert!(matches!(err, Error::InvalidSchedule { job: Some(ref j), .. } if *j == id));
    /// assert!(err.to_string().contains("job backup"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn for_job(mut self, id: &JobId) -> Error {
        if let Error::InvalidSchedule { job, .. }
        | Error::InvalidZone { job, .. }
        | Error::Store { job, .. } = &mut self
        {
            job.get_or_insert_with(|| id.clone());
        }
        self
    }
}

impl From<cairn_checkpoint::Error> for Error {
    /// A store error not yet tied to a job; [`Error::for_job`] ties it. A job the store
    /// leaves for a newer build (`NewerJobFormat`) is [`Error::NewerFormat`], as a document
    /// of a newer format version is, so callers meet one error for both.
    fn from(source: cairn_checkpoint::Error) -> Self {
        match source {
            cairn_checkpoint::Error::NewerJobFormat { job_id, at, detail } => Error::NewerFormat {
                id: job_id,
                detail: format!("{at}: {detail}"),
            },
            source => Error::Store { job: None, source },
        }
    }
}

/// ` (job <id>)` when the job is known, for the store error's message.
fn for_job_in_parens(job: &Option<JobId>) -> String {
    job.as_ref()
        .map_or_else(String::new, |id| format!(" (job {id})"))
}

/// ` of job <id>` when the job is known, for the definition errors' messages.
fn of_job(job: &Option<JobId>) -> String {
    job.as_ref()
        .map_or_else(String::new, |id| format!(" of job {id}"))
}

/// Shorthand for results of scheduler operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An audit action as `cairn jobs audit` and the JSON records spell it (`breaker_tripped`),
/// not as the Rust variant.
fn audit_action_name(action: JobAuditAction) -> String {
    match serde_json::to_value(action) {
        Ok(serde_json::Value::String(name)) => name,
        _ => format!("{action:?}"),
    }
}
