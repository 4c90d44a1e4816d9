//! A job's definition and state, as the scheduler stores it in the `JobStore`.

use std::fmt;

use cairn_checkpoint::{JobId, StoredJob};
use cairn_queue::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schedule::Schedule;

/// The version of the job document this build writes and reads.
///
/// A field a later build adds that an older build may safely leave alone (a label, a note,
/// a record it keeps) keeps this version: an older build reads such a document, and every
/// rewrite of it keeps the fields it does not know, as they were ([`Job::unknown_fields`]).
/// A change an older build must not ignore (anything that changes when or how a job runs,
/// such as a field inside `schedule`) raises this version: an older build then refuses the
/// document (`Error::NewerFormat`, reported as left for the newer build) and never runs,
/// rewrites or deletes it. A version below this one is `Error::BadDocument` (unreadable).
pub const JOB_FORMAT_VERSION: u32 = 1;

/// How many failed runs in a row trip a job's circuit breaker unless it says otherwise.
pub const DEFAULT_MAX_CONSECUTIVE_ERRORS: u32 = 10;

/// How many runs stopped by their state store a job remembers ([`Job::store_failed_runs`]);
/// the oldest is forgotten first.
pub const MAX_STORE_FAILED_RUNS: usize = 16;

/// The longest error kept in a [`StoreFailedRun`], in bytes (before the `…` that marks a cut).
const MAX_STORE_ERROR_BYTES: usize = 1024;

/// A run of a job that stopped because its state store failed, as the scheduler recorded it
/// on the job: the run was left for a resume by id, and this says why it still reads as
/// `running`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreFailedRun {
    /// The run.
    pub run_id: String,
    /// When the scheduler recorded it.
    pub at: Timestamp,
    /// The runner's message (naming the store's error), cut to its first 1024 bytes.
    pub error: String,
}

/// A one-shot job's run that the scheduler claimed and whose outcome it has not recorded
/// yet ([`Job::claimed_run`]).
///
/// Written in the claim, before the run starts, and cleared by the write that records the
/// run's outcome. Found on a job that is due again, it says that an earlier run began and
/// its outcome was never recorded (the process died, or the job store failed, between the
/// claim and the record): that run may have completed, so the scheduler does not start the
/// job again by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimedRun {
    /// When the scheduler claimed it.
    pub claimed_at: Timestamp,
    /// The schedule time it was for.
    pub scheduled_for: Timestamp,
}

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
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_scheduler::JobStatus;
    ///
    /// assert_eq!(JobStatus::Failed.as_str(), "failed");
    /// assert_eq!(JobStatus::Completed.to_string(), "completed");
    /// ```
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
    /// When it runs next; `None` while paused, failed or completed. An active job stored
    /// without one is given one by the scheduler's next look (see [`crate::Scheduler`]).
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
    /// Its latest runs that stopped because their state store failed, oldest first, at
    /// most [`MAX_STORE_FAILED_RUNS`]. Absent from documents that have none (and from
    /// documents written before it existed, which read as empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub store_failed_runs: Vec<StoreFailedRun>,
    /// One-shot jobs only: the run claimed and not yet recorded ([`ClaimedRun`]). Absent
    /// from documents that have none (and from documents written before it existed, which
    /// read as none). An older build keeps it as a field it does not know; a one-shot job
    /// that such a build ran keeps it after its outcome, so this build may hold a job an
    /// older build failed on for a person to look at: too careful, never a run twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_run: Option<ClaimedRun>,
    /// The store's version of this document (not stored inside it).
    #[serde(skip)]
    pub version: u64,
    /// The document's top-level fields this build does not know (a later build's, at the
    /// same format version), written back as they were read: without them, this build's
    /// next write (a claim, an outcome, a pause) dropped them. Not public, so that no
    /// caller puts a field here that would shadow a known one in the document.
    #[serde(flatten)]
    pub(crate) unknown_fields: serde_json::Map<String, serde_json::Value>,
}

impl Job {
    /// Decodes a stored document.
    ///
    /// # Errors
    ///
    /// `Error::NewerFormat` when its format version is above [`JOB_FORMAT_VERSION`] (a newer
    /// build wrote it; the rest of it is not looked at). `Error::BadDocument` when it does
    /// not decode, has an older format version, names another job, or holds a definition
    /// `Jobs::add` would refuse (a schedule that does not validate, a
    /// `max_consecutive_errors` of 0), so that such a job is reported as unreadable instead
    /// of failing every tick of the scheduler.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use cairn_checkpoint::{JobId, JobStore, MemoryJobStore, StoredJob};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Error, Job, Jobs, ManualClock, NewJob, Schedule};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = Arc::new(MemoryJobStore::new());
    /// let jobs = Jobs::new(store.clone(), Arc::new(ManualClock::new(Timestamp(0))));
    /// let id = JobId::new("report")?;
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// jobs.add(NewJob::new(id.clone(), "report", every, "report.toml")).await?;
    /// let stored = store.get(&id).await?.expect("stored");
    /// let job = Job::from_stored(stored.clone())?;
    /// assert_eq!((job.name.as_str(), job.version), ("report", stored.version));
    ///
    /// // A document a newer build wrote is refused, not guessed at, and is no damage.
    /// let mut document = stored.document.clone();
    /// document["format_version"] = serde_json::json!(99);
    /// let newer = StoredJob { document, ..stored.clone() };
    /// assert!(matches!(Job::from_stored(newer), Err(Error::NewerFormat { .. })));
    /// // One of an older version than any build wrote is.
    /// let mut document = stored.document.clone();
    /// document["format_version"] = serde_json::json!(0);
    /// let older = StoredJob { document, ..stored };
    /// assert!(matches!(Job::from_stored(older), Err(Error::BadDocument { .. })));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn from_stored(stored: StoredJob) -> Result<Job> {
        let bad = |detail: String| Error::BadDocument {
            id: stored.id.clone(),
            detail,
        };
        // Read before the rest: a newer build may change any other field, and its document
        // must be left for it, never reported as damage an operator might delete.
        let version = stored
            .document
            .get("format_version")
            .and_then(serde_json::Value::as_u64);
        if let Some(found) = version.filter(|v| *v > u64::from(JOB_FORMAT_VERSION)) {
            return Err(Error::NewerFormat {
                id: stored.id.clone(),
                detail: format!(
                    "its document has format version {found}; this build reads {JOB_FORMAT_VERSION}"
                ),
            });
        }
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
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use cairn_checkpoint::{JobId, MemoryJobStore, StoredJob};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Job, Jobs, ManualClock, NewJob, Schedule};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = Arc::new(ManualClock::new(Timestamp(0)));
    /// let jobs = Jobs::new(Arc::new(MemoryJobStore::new()), clock);
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// let new = NewJob::new(JobId::new("report")?, "report", every, "report.toml");
    /// let job = jobs.add(new).await?;
    /// let document = job.to_document();
    /// assert_eq!(document["status"], "active");
    /// // The version is the store's, not part of the document.
    /// assert!(document.get("version").is_none());
    /// let stored = StoredJob { id: job.id.clone(), version: job.version, document };
    /// assert_eq!(Job::from_stored(stored)?, job);
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn to_document(&self) -> serde_json::Value {
        // A struct of strings, numbers and enums always encodes.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The fields of the stored document this build does not know, as they were read; this
    /// build writes them back unchanged with every change it makes to the job. Fields
    /// inside known ones (in `schedule`, say) are not kept: a later build adds such a field
    /// with a new format version (see [`JOB_FORMAT_VERSION`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobId, StoredJob};
    /// use cairn_scheduler::Job;
    ///
    /// // A job document a later build wrote, with a field this build does not know.
    /// let document = serde_json::json!({
    ///     "format_version": 1, "id": "report", "name": "report",
    ///     "schedule": {"kind": "every", "interval_ms": 60000},
    ///     "workflow": "report.toml", "input": "", "status": "active",
    ///     "consecutive_errors": 0, "max_consecutive_errors": 10,
    ///     "next_run_at": 60000, "last_run_at": null, "last_error": null,
    ///     "delete_after_run": false, "created_at": 0,
    ///     "labels": {"team": "ops"},
    /// });
    /// let stored = StoredJob { id: JobId::new("report")?, version: 4, document: document.clone() };
    /// let mut job = Job::from_stored(stored)?;
    /// assert_eq!(job.unknown_fields()["labels"]["team"], "ops");
    /// // A change this build makes keeps the field.
    /// job.consecutive_errors = 1;
    /// assert_eq!(job.to_document()["labels"], document["labels"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn unknown_fields(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.unknown_fields
    }

    /// Whether this is a one-shot job.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use cairn_checkpoint::{JobId, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Jobs, ManualClock, NewJob, Schedule};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = Arc::new(ManualClock::new(Timestamp(0)));
    /// let jobs = Jobs::new(Arc::new(MemoryJobStore::new()), clock);
    /// let once = Schedule::once(Timestamp(90_000));
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// let migrate = NewJob::new(JobId::new("migrate")?, "migrate", once, "m.toml");
    /// let report = NewJob::new(JobId::new("report")?, "report", every, "r.toml");
    /// let (migrate, report) = (jobs.add(migrate).await?, jobs.add(report).await?);
    /// assert!(migrate.is_one_shot());
    /// assert!(!report.is_one_shot());
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn is_one_shot(&self) -> bool {
        matches!(self.schedule, Schedule::Once { .. })
    }

    /// What the scheduler recorded when run `run_id` of this job stopped because its state
    /// store failed; `None` when it recorded no such stop (the run ended otherwise, its
    /// driver was killed, or the job store could not be written either).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use async_trait::async_trait;
    /// use cairn_checkpoint::{JobId, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::*;
    ///
    /// /// A runner whose run store is full.
    /// #[derive(Debug)]
    /// struct DiskFull;
    /// #[async_trait]
    /// impl JobRunner for DiskFull {
    ///     async fn run(&self, _: &RunRequest) -> Result<RunSucceeded, RunFailed> {
    ///         let message = "run r-7 stopped: its state store failed: No space left on device";
    ///         Err(RunFailed::store_failed(Some("r-7".to_owned()), message))
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = ManualClock::new(Timestamp(0));
    /// let store = Arc::new(MemoryJobStore::new());
    /// let scheduler = Scheduler::new(store, Arc::new(DiskFull), Arc::new(clock.clone()));
    /// let id = JobId::new("backup")?;
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// scheduler.jobs().add(NewJob::new(id.clone(), "backup", every, "backup.toml")).await?;
    /// clock.advance(Duration::from_secs(60));
    /// scheduler.tick().await?;
    /// let job = scheduler.jobs().show(&id).await?;
    /// let noted = job.store_failure("r-7").expect("noted with the failure");
    /// assert!(noted.error.contains("No space left"));
    /// assert!(job.store_failure("r-8").is_none());
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn store_failure(&self, run_id: &str) -> Option<&StoreFailedRun> {
        self.store_failed_runs
            .iter()
            .rev()
            .find(|run| run.run_id == run_id)
    }

    /// Remembers that run `run_id` stopped because its state store failed, forgetting the
    /// oldest when more than [`MAX_STORE_FAILED_RUNS`] are kept.
    pub(crate) fn note_store_failure(&mut self, run_id: &str, at: Timestamp, error: &str) {
        self.store_failed_runs.retain(|run| run.run_id != run_id);
        self.store_failed_runs.push(StoreFailedRun {
            run_id: run_id.to_owned(),
            at,
            error: cap(error, MAX_STORE_ERROR_BYTES),
        });
        let over = self
            .store_failed_runs
            .len()
            .saturating_sub(MAX_STORE_FAILED_RUNS);
        self.store_failed_runs.drain(..over);
    }
}

/// `text` cut to at most `max` bytes on a character boundary, marked with `…` when cut.
pub(crate) fn cap(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
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
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_checkpoint::JobId;
    /// use cairn_scheduler::{DEFAULT_MAX_CONSECUTIVE_ERRORS, NewJob, Schedule};
    ///
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// let job = NewJob::new(JobId::new("report")?, "daily report", every, "report.toml");
    /// // The defaults: no input, the default breaker, active, kept after its runs.
    /// assert_eq!(job.input, "");
    /// assert_eq!(job.max_consecutive_errors, DEFAULT_MAX_CONSECUTIVE_ERRORS);
    /// assert!(!job.paused && !job.delete_after_run);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use async_trait::async_trait;
    /// use cairn_checkpoint::{JobId, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::*;
    ///
    /// /// Keeps the input of each run it is asked for.
    /// #[derive(Debug, Default)]
    /// struct Inputs(Mutex<Vec<String>>);
    /// #[async_trait]
    /// impl JobRunner for Inputs {
    ///     async fn run(&self, request: &RunRequest) -> Result<RunSucceeded, RunFailed> {
    ///         self.0.lock().unwrap().push(request.input.clone());
    ///         Ok(RunSucceeded::default())
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = ManualClock::new(Timestamp(0));
    /// let runner = Arc::new(Inputs::default());
    /// let store = Arc::new(MemoryJobStore::new());
    /// let scheduler = Scheduler::new(store, runner.clone(), Arc::new(clock.clone()));
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// let new = NewJob::new(JobId::new("backup")?, "backup", every, "backup.toml");
    /// scheduler.jobs().add(new.input("--full")).await?;
    /// clock.advance(Duration::from_secs(60));
    /// scheduler.tick().await?;
    /// // Every run gets it.
    /// assert_eq!(*runner.0.lock().unwrap(), ["--full"]);
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn input(mut self, input: impl Into<String>) -> Self {
        self.input = input.into();
        self
    }

    /// Sets how many failed runs in a row trip the breaker (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use cairn_checkpoint::{JobId, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{
    ///     DEFAULT_MAX_CONSECUTIVE_ERRORS, Error, Jobs, ManualClock, NewJob, Schedule,
    /// };
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = Arc::new(ManualClock::new(Timestamp(0)));
    /// let jobs = Jobs::new(Arc::new(MemoryJobStore::new()), clock);
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// let new = NewJob::new(JobId::new("sync")?, "sync", every, "sync.toml");
    /// assert_eq!(new.max_consecutive_errors, DEFAULT_MAX_CONSECUTIVE_ERRORS);
    /// // A breaker that trips before any run fails is refused.
    /// let never_runs = jobs.add(new.clone().max_consecutive_errors(0)).await;
    /// assert!(matches!(never_runs, Err(Error::InvalidJob { .. })));
    /// assert_eq!(jobs.add(new.max_consecutive_errors(3)).await?.max_consecutive_errors, 3);
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn max_consecutive_errors(mut self, limit: u32) -> Self {
        self.max_consecutive_errors = limit;
        self
    }

    /// Deletes a one-shot job after its successful run.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use cairn_checkpoint::{JobId, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Error, Jobs, ManualClock, NewJob, Schedule};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = Arc::new(ManualClock::new(Timestamp(0)));
    /// let jobs = Jobs::new(Arc::new(MemoryJobStore::new()), clock);
    /// let once = Schedule::once(Timestamp(60_000));
    /// let migrate = NewJob::new(JobId::new("migrate")?, "migrate", once, "m.toml");
    /// assert!(jobs.add(migrate.delete_after_run(true)).await?.delete_after_run);
    /// // Only for one-shot jobs: a recurring job has no last run to delete it after.
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// let report = NewJob::new(JobId::new("report")?, "report", every, "r.toml");
    /// let refused = jobs.add(report.delete_after_run(true)).await;
    /// assert!(matches!(refused, Err(Error::InvalidJob { .. })));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn delete_after_run(mut self, yes: bool) -> Self {
        self.delete_after_run = yes;
        self
    }

    /// Creates the job paused.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use cairn_checkpoint::{JobId, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{JobStatus, Jobs, ManualClock, NewJob, Schedule};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = Arc::new(ManualClock::new(Timestamp(0)));
    /// let jobs = Jobs::new(Arc::new(MemoryJobStore::new()), clock);
    /// let id = JobId::new("report")?;
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// let job = jobs.add(NewJob::new(id.clone(), "report", every, "r.toml").paused(true)).await?;
    /// // Not due until resumed.
    /// assert_eq!((job.status, job.next_run_at), (JobStatus::Paused, None));
    /// assert_eq!(jobs.resume(&id, false).await?.next_run_at, Some(Timestamp(60_000)));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn paused(mut self, yes: bool) -> Self {
        self.paused = yes;
        self
    }
}
