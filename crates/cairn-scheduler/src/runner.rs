//! The injected runner: how a due job starts its workflow run.
//!
//! The scheduler does not name the executor. A host implements [`JobRunner`] by building a
//! `RunMeta` from the [`RunRequest`], beginning the run through its
//! `Arc<dyn CheckpointerFactory>` and driving it with the executor and its handler registry
//! (the CLI does exactly this for `cairn scheduler`). A returned `Err` counts as one failed run
//! for the job's circuit breaker (unless it is `RunFailed::interrupted`); so does a panic
//! inside `run`, which the scheduler catches, and a run stopped because its state store
//! failed (`RunFailed::store_failed`), which the scheduler also remembers on the job.

use std::fmt::Debug;

use async_trait::async_trait;
use cairn_checkpoint::JobId;
use cairn_queue::Timestamp;

/// One run the scheduler wants started.
///
/// `#[non_exhaustive]`: build one with [`RunRequest::new`], then set the job's facts
/// ([`RunRequest::for_job`]) a runner needs; fields may be added in a minor release.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// When the scheduler claimed the job's tick this run is for (stored as the job's
    /// `last_run_at`, and as a one-shot job's `ClaimedRun::claimed_at`). Earlier than
    /// `started_at` for the later runs of one claim (`CatchUp::All`).
    pub claimed_at: Timestamp,
    /// When the job was created: runs in the run store from before it belong to an earlier
    /// job that had the same id, not to this one.
    pub job_created_at: Timestamp,
    /// Whether the job is one-shot (`Schedule::Once`): it must run at most once, so a
    /// runner that finds earlier runs ([`JobRunner::finds_earlier_runs`]) looks for them
    /// before it starts this one.
    pub one_shot: bool,
}

impl RunRequest {
    /// A request for a run of `job_id`'s `workflow` with `input`, for schedule time
    /// `scheduled_for`, started and claimed at `started_at`, of a repeating job created at
    /// time 0 (set the job's facts with [`RunRequest::for_job`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::JobId;
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::RunRequest;
    ///
    /// let request = RunRequest::new(JobId::new("nightly")?, "nightly", "", Timestamp(60_000), Timestamp(61_000));
    /// assert_eq!(request.claimed_at, request.started_at);
    /// assert!(!request.one_shot);
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// ```
    pub fn new(
        job_id: JobId,
        workflow: impl Into<String>,
        input: impl Into<String>,
        scheduled_for: Timestamp,
        started_at: Timestamp,
    ) -> Self {
        RunRequest {
            job_id,
            workflow: workflow.into(),
            input: input.into(),
            scheduled_for,
            started_at,
            claimed_at: started_at,
            job_created_at: Timestamp(0),
            one_shot: false,
        }
    }

    /// The same request for a job created at `job_created_at`, one-shot or not.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::JobId;
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::RunRequest;
    ///
    /// let request = RunRequest::new(JobId::new("once")?, "deploy", "", Timestamp(9), Timestamp(9))
    ///     .for_job(Timestamp(5), true);
    /// assert_eq!((request.job_created_at, request.one_shot), (Timestamp(5), true));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// ```
    #[must_use]
    pub fn for_job(mut self, job_created_at: Timestamp, one_shot: bool) -> Self {
        self.job_created_at = job_created_at;
        self.one_shot = one_shot;
        self
    }
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
    /// The run stopped because its state store failed (a full disk, a failed write or
    /// fsync), not because a task failed: it is left for a resume by id once the store is
    /// fixed. It counts against the breaker like any failure (storage trouble that keeps
    /// coming back must trip it), and the scheduler records the run on the job
    /// (`Job::store_failure`), so a later scheduler that finds it still `running` can say
    /// why instead of guessing at a kill.
    pub store_failed: bool,
}

impl RunFailed {
    /// A failure with a message and no run id.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_scheduler::RunFailed;
    ///
    /// let failed = RunFailed::new("database unreachable");
    /// assert_eq!(failed.message, "database unreachable");
    /// // Counted by the breaker; no run id.
    /// assert!(!failed.interrupted && !failed.store_failed && failed.run_id.is_none());
    /// ```
    pub fn new(message: impl Into<String>) -> Self {
        RunFailed {
            run_id: None,
            message: message.into(),
            interrupted: false,
            store_failed: false,
        }
    }

    /// A run cut short by a shutdown and left resumable (not counted as an error).
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
    /// /// A host that is shutting down: every run is cut short.
    /// #[derive(Debug)]
    /// struct ShuttingDown;
    /// #[async_trait]
    /// impl JobRunner for ShuttingDown {
    ///     async fn run(&self, _: &RunRequest) -> Result<RunSucceeded, RunFailed> {
    ///         Err(RunFailed::interrupted(Some("r-1".to_owned()), "interrupted by shutdown"))
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = ManualClock::new(Timestamp(0));
    /// let store = Arc::new(MemoryJobStore::new());
    /// let scheduler = Scheduler::new(store, Arc::new(ShuttingDown), Arc::new(clock.clone()));
    /// let id = JobId::new("sync")?;
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// scheduler.jobs().add(NewJob::new(id.clone(), "sync", every, "sync.toml")).await?;
    /// clock.advance(Duration::from_secs(60));
    /// scheduler.tick().await?;
    /// // Not a failure: the breaker does not count it.
    /// let job = scheduler.jobs().show(&id).await?;
    /// assert_eq!((job.consecutive_errors, job.last_error), (0, None));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn interrupted(run_id: Option<String>, message: impl Into<String>) -> Self {
        RunFailed {
            run_id,
            message: message.into(),
            interrupted: true,
            store_failed: false,
        }
    }

    /// Run `run_id` stopped because its state store failed (counted, and recorded on the
    /// job when it has a run id).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_scheduler::RunFailed;
    ///
    /// let failed = RunFailed::store_failed(
    ///     Some("01JD3ZK8Q2".to_owned()),
    ///     "run 01JD3ZK8Q2 stopped: its state store failed: No space left on device",
    /// );
    /// assert!(failed.store_failed && !failed.interrupted);
    /// ```
    pub fn store_failed(run_id: Option<String>, message: impl Into<String>) -> Self {
        RunFailed {
            run_id,
            message: message.into(),
            interrupted: false,
            store_failed: true,
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
    /// which is not counted. A run that began and then stopped because its state store
    /// failed (or whose end could not be recorded) SHOULD be `RunFailed::store_failed` with
    /// its run id: counted the same, and recorded on the job. SHOULD give each run a fresh
    /// run id, because a job runs its workflow many times. SHOULD NOT panic: a panic is
    /// caught by the scheduler and recorded as a failed run whose message starts with "the
    /// job runner panicked".
    ///
    /// Runs of different jobs go on at once (up to `SchedulerConfig::max_running_jobs`), so
    /// this is called again before an earlier call returns; never for a job whose run goes
    /// on in the same scheduler.
    ///
    /// # Cancel safety
    ///
    /// The scheduler awaits this to completion; it is dropped only when the host drops the
    /// scheduler's future, or when `run_until`'s `stop` completes while it goes on. The job's
    /// bookkeeping for this run is then skipped (see [`crate::Scheduler::tick`]).
    async fn run(&self, request: &RunRequest) -> Result<RunSucceeded, RunFailed>;

    /// Whether the host is stopping (a shutdown was asked for). While it is, the scheduler
    /// claims and starts no further run (so no tick is used up by a run that could not
    /// begin); the runs going on go on. Asked before each start. The default: never.
    fn is_stopping(&self) -> bool {
        false
    }

    /// Whether this runner looks for a one-shot job's earlier runs before it starts one, so
    /// that the scheduler may hand it a one-shot job whose earlier run was claimed and never
    /// recorded ([`crate::ClaimedRun`]). A runner that returns `true` MUST, before it starts
    /// a one-shot job's run, look for the job's runs in its run store: report a completed
    /// one as this run's success without running anything, and start nothing (answering
    /// `RunFailed::interrupted`) while one is unfinished or failed, until a person resumes
    /// or abandons it. `cairn scheduler`'s runner does. The default, `false`: the scheduler
    /// cannot tell whether that earlier run completed, so it holds the job `failed` for a
    /// person instead of starting it again (see [`crate::Scheduler`]).
    fn finds_earlier_runs(&self) -> bool {
        false
    }

    /// Called once when the scheduler meets `error` (the job store failed, say) while runs
    /// go on: it starts no further run, and returns `error` once they have ended. A runner
    /// SHOULD then end its runs soon, as on a shutdown (`cairn scheduler` does what its first
    /// Ctrl-C does), and SHOULD NOT block or panic. The default does nothing: the runs go
    /// on to their end.
    fn scheduler_failed(&self, error: &crate::Error) {
        let _ = error;
    }
}
