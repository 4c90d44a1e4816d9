//! A job's definition and state, as the scheduler stores it in the `JobStore`.

use std::fmt;

use cairn_checkpoint::{JobId, StoredJob};
use cairn_queue::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schedule::Schedule;

/// The version of the job document this build writes and reads.
pub const JOB_FORMAT_VERSION: u32 = 1;

/// How many failed runs in a row trip a job's circuit breaker unless it says otherwise.
pub const DEFAULT_MAX_CONSECUTIVE_ERRORS: u32 = 10;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Runs on its schedule.
    Active,
    /// Stopped by an operator; `resume` restarts it.
    Paused,
    /// Its circuit breaker tripped; only `resume` with `force` revives it.
    Failed,
    /// Never runs again: a one-shot job that ran successfully, or a recurring job whose
    /// schedule has no time left after its last run.
    Completed,
}

impl JobStatus {
    /// The status as the documents and the CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Active => "active",
            JobStatus::Paused => "paused",
            JobStatus::Failed => "failed",
            JobStatus::Completed => "completed",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job: what runs, when, and how it has been going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Document format version ([`JOB_FORMAT_VERSION`]).
    pub format_version: u32,
    /// The job's id.
    pub id: JobId,
    /// A name for people.
    pub name: String,
    /// When it runs.
    pub schedule: Schedule,
    /// The workflow each run starts.
    pub workflow: String,
    /// The input each run gets.
    pub input: String,
    /// Where it is in its life.
    pub status: JobStatus,
    /// Failed runs since the last success.
    pub consecutive_errors: u32,
    /// Failed runs in a row that trip the circuit breaker.
    pub max_consecutive_errors: u32,
    /// When it runs next; `None` while paused, failed or completed.
    pub next_run_at: Option<Timestamp>,
    /// When its last run started.
    pub last_run_at: Option<Timestamp>,
    /// The last failed run's message (kept after a success, for history, until the next error),
    /// cut to its first 4096 bytes (on a character boundary, marked with `…`).
    pub last_error: Option<String>,
    /// For one-shot jobs: delete the job after its successful run instead of keeping it
    /// `completed`.
    pub delete_after_run: bool,
    /// When the job was created (an interval's grid starts here).
    pub created_at: Timestamp,
    /// The store's version of this document (not stored inside it).
    #[serde(skip)]
    pub version: u64,
}

impl Job {
    /// Decodes a stored document.
    ///
    /// # Errors
    ///
    /// `Error::BadDocument` when it does not decode, has another format version, names
    /// another job, or holds a definition `Jobs::add` would refuse (a schedule that does not
    /// validate, a `max_consecutive_errors` of 0), so that such a job is reported as
    /// unreadable instead of failing every tick of the scheduler.
    pub fn from_stored(stored: StoredJob) -> Result<Job> {
        let bad = |detail: String| Error::BadDocument {
            id: stored.id.clone(),
            detail,
        };
        let mut job: Job =
            serde_json::from_value(stored.document.clone()).map_err(|e| bad(e.to_string()))?;
        if job.format_version != JOB_FORMAT_VERSION {
            return Err(bad(format!(
                "format version {} (this build reads {JOB_FORMAT_VERSION})",
                job.format_version
            )));
        }
        if job.id != stored.id {
            return Err(bad(format!("the document names job {}", job.id)));
        }
        if let Err(err) = job.schedule.validate() {
            return Err(bad(format!("its schedule is refused: {err}")));
        }
        if job.max_consecutive_errors == 0 {
            return Err(bad(
                "its max_consecutive_errors is 0 (at least 1)".to_owned()
            ));
        }
        job.version = stored.version;
        Ok(job)
    }

    /// Encodes the job as a store document.
    pub fn to_document(&self) -> serde_json::Value {
        // A struct of strings, numbers and enums always encodes.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Whether this is a one-shot job.
    pub fn is_one_shot(&self) -> bool {
        matches!(self.schedule, Schedule::Once { .. })
    }
}

/// A job to create. Built with [`NewJob::new`] and its setters.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cairn_checkpoint::JobId;
/// use cairn_scheduler::{NewJob, Schedule};
///
/// let job = NewJob::new(
///     JobId::new("backup")?,
///     "nightly backup",
///     Schedule::every(Duration::from_secs(3600))?,
///     "backup.toml",
/// )
/// .input("--full")
/// .max_consecutive_errors(3);
/// assert_eq!(job.max_consecutive_errors, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// The job's id.
    pub id: JobId,
    /// A name for people.
    pub name: String,
    /// When it runs.
    pub schedule: Schedule,
    /// The workflow each run starts.
    pub workflow: String,
    /// The input each run gets (empty by default).
    pub input: String,
    /// Failed runs in a row that trip the breaker ([`DEFAULT_MAX_CONSECUTIVE_ERRORS`]).
    pub max_consecutive_errors: u32,
    /// One-shot jobs only: delete after the successful run.
    pub delete_after_run: bool,
    /// Create the job paused.
    pub paused: bool,
}

impl NewJob {
    /// A job with default settings.
    pub fn new(
        id: JobId,
        name: impl Into<String>,
        schedule: Schedule,
        workflow: impl Into<String>,
    ) -> Self {
        NewJob {
            id,
            name: name.into(),
            schedule,
            workflow: workflow.into(),
            input: String::new(),
            max_consecutive_errors: DEFAULT_MAX_CONSECUTIVE_ERRORS,
            delete_after_run: false,
            paused: false,
        }
    }

    /// Sets the input each run gets.
    pub fn input(mut self, input: impl Into<String>) -> Self {
        self.input = input.into();
        self
    }

    /// Sets how many failed runs in a row trip the breaker (at least 1).
    pub fn max_consecutive_errors(mut self, limit: u32) -> Self {
        self.max_consecutive_errors = limit;
        self
    }

    /// Deletes a one-shot job after its successful run.
    pub fn delete_after_run(mut self, yes: bool) -> Self {
        self.delete_after_run = yes;
        self
    }

    /// Creates the job paused.
    pub fn paused(mut self, yes: bool) -> Self {
        self.paused = yes;
        self
    }
}
