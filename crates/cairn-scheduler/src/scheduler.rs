//! `Scheduler`: runs due jobs through the injected runner and keeps each job's circuit breaker.

use std::any::Any;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use cairn_checkpoint::{JobAuditAction, JobAuditRecord, JobId, JobStore, LeftOutJob, LeftOutPlace};
use cairn_queue::Timestamp;
use cairn_telemetry::names;
use serde_json::json;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::job::{ClaimedRun, Job, JobStatus, cap};
use crate::jobs::{Jobs, RECORD_ATTEMPTS, first_due};
use crate::left_out::{LeftOutTracker, what_to_do_about};
use crate::runner::{JobRunner, RunFailed, RunRequest, RunSucceeded};
use crate::schedule::MIN_INTERVAL;

/// What to do about schedule times missed while no scheduler was running.
///
/// A tick counts as missed when a later tick of the same job is also already due. A clock
/// that jumps forward (a long sleep, a corrected clock) looks like downtime and is caught up
/// the same way. A clock set back reruns nothing: each job waits until the clock reaches the
/// `next_run_at` it stored, so a job that ran at 10:00 with the clock then set back to 09:00
/// next runs at its first tick after 10:00. After a clock that was wrongly far ahead is
/// corrected, jobs wait for the `next_run_at` computed from the wrong time; pausing and
/// resuming a job recomputes it from now (an interval job created while the clock was wrong
/// has its grid there: create it again). Times are instants: a named zone's daylight
/// saving is applied when the next time is computed (see the `Zone` docs), so a clock
/// change is not downtime and catches nothing up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CatchUp {
    /// Run once for all the missed ticks, then continue on the schedule (the default): a
    /// job that missed a week of hourly ticks runs once, not 168 times.
    #[default]
    One,
    /// Run none of the missed ticks; continue with the next future one. A tick found late
    /// counts as missed too: one that came while the job's own run still went on, or while
    /// other jobs' runs held every place ([`SchedulerConfig::max_running_jobs`]) for longer
    /// than this job's interval.
    Skip,
    /// Run every missed tick, one after another, but at most `max` of them (at least one,
    /// and never more than 1,001: a catch-up looks at most 1,000 ticks past the first).
    /// The missed ticks beyond that are dropped, not kept for a later tick: they are counted
    /// in `TickReport::missed_not_run` (up to the same bound), and the job continues with its
    /// next future tick.
    All {
        /// The most runs one catch-up may start (0 is taken as 1).
        max: u32,
    },
}

/// The scheduler's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Missed-tick policy ([`CatchUp::One`] by default).
    pub catch_up: CatchUp,
    /// How long a failed or interrupted one-shot job waits before it is tried again (default
    /// one minute; values below [`MIN_INTERVAL`] are taken as one second, because 0 would
    /// restart an interrupted one-shot job without pause). Each failed try counts toward its
    /// circuit breaker.
    pub one_shot_retry: Duration,
    /// The longest `run_until` sleeps between ticks (default 30 s), so jobs added by
    /// another process are noticed. Values below [`MIN_INTERVAL`] are taken as one second:
    /// `run_until` wakes for each due job anyway, and 0 would list the store in a busy loop.
    pub poll_interval: Duration,
    /// The most jobs whose runs go on at once (default [`DEFAULT_MAX_RUNNING_JOBS`]; 0 is
    /// taken as 1, which runs due jobs one after another). A job never has two runs of its
    /// own at once, whatever this is: see [`Scheduler`].
    pub max_running_jobs: usize,
}

/// How many jobs' runs one scheduler lets go on at once unless told otherwise: enough that a
/// long run (a nightly backup) does not hold up a few frequent jobs, few enough that a burst
/// of due jobs does not start everything at once.
pub const DEFAULT_MAX_RUNNING_JOBS: usize = 4;

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            catch_up: CatchUp::One,
            one_shot_retry: Duration::from_secs(60),
            poll_interval: Duration::from_secs(30),
            max_running_jobs: DEFAULT_MAX_RUNNING_JOBS,
        }
    }
}

/// One run a tick started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    /// The job.
    pub job_id: JobId,
    /// The schedule time it was for.
    pub scheduled_for: Timestamp,
    /// How it ended.
    pub outcome: std::result::Result<RunSucceeded, RunFailed>,
}

/// What one `tick` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Runs started, in order.
    pub runs: Vec<RunRecord>,
    /// Jobs whose circuit breaker tripped during this tick.
    pub tripped: Vec<JobId>,
    /// Missed ticks that the catch-up policy did not run (counted up to a bound per job).
    pub missed_not_run: u64,
    /// Jobs whose stored document does not decode, with the reason; they are left alone.
    pub unreadable: Vec<(JobId, String)>,
    /// Stored entries the job store left out of its listing (moved aside, left in place
    /// because they could be neither read nor moved, or left for the newer build that wrote
    /// them), and jobs whose document a newer build wrote (`LeftOutPlace::NewerFormat`),
    /// that this scheduler had not reported
    /// before: each appears once, not in every tick while it stays, and is logged once as a
    /// WARN. (`run_until` keeps no reports: an entry it finds first is only logged.)
    pub left_out: Vec<LeftOutJob>,
    /// One-shot jobs found due with a run claimed earlier whose outcome was never recorded
    /// ([`crate::ClaimedRun`]), under a runner that cannot find earlier runs: each was set
    /// `failed`, not run, for a person to decide (see [`Scheduler`]).
    pub unrecorded: Vec<JobId>,
}

impl TickReport {
    /// Adds what one job's run did (`part`) after what this report holds.
    fn absorb(&mut self, part: TickReport) {
        self.runs.extend(part.runs);
        self.tripped.extend(part.tripped);
        self.missed_not_run += part.missed_not_run;
        self.unreadable.extend(part.unreadable);
        self.left_out.extend(part.left_out);
        self.unrecorded.extend(part.unrecorded);
    }
}

/// What a [`Scheduler::tick`] that met an error did, and the errors it met.
///
/// A tick that meets an error starts no further job, but the runs already going on end and
/// are recorded where the store still lets them; this keeps what they did, so one job's
/// store error does not hide the other jobs' runs (and trips) from the host. It is a carrier
/// of a partial result, not a second error taxonomy: its errors are the crate's [`Error`],
/// and `?` turns it into the first one (`From<TickFailed> for Error`).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use async_trait::async_trait;
/// use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyJobStore};
/// use cairn_checkpoint::{JobId, MemoryJobStore};
/// use cairn_queue::Timestamp;
/// use cairn_scheduler::*;
///
/// #[derive(Debug)]
/// struct Succeeds;
/// #[async_trait]
/// impl JobRunner for Succeeds {
///     async fn run(&self, _: &RunRequest) -> Result<RunSucceeded, RunFailed> {
///         Ok(RunSucceeded::default())
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let plan = FaultPlan::new();
/// let store = FaultyJobStore::new(MemoryJobStore::new(), plan.clone());
/// let clock = ManualClock::new(Timestamp(0));
/// let scheduler = Scheduler::new(Arc::new(store), Arc::new(Succeeds), Arc::new(clock.clone()));
/// let id = JobId::new("sync")?;
/// let every_minute = Schedule::every(Duration::from_secs(60))?;
/// scheduler.jobs().add(NewJob::new(id.clone(), "sync", every_minute, "sync.toml")).await?;
/// clock.advance(Duration::from_secs(60));
/// // The store fails as the run's outcome is recorded (the claim was put 2).
/// plan.fail_nth(FaultOp::JobPut, 3, FaultTiming::Before);
/// let failed = scheduler.tick().await.unwrap_err();
/// assert!(matches!(failed.error, Error::Store { job: Some(ref j), .. } if *j == id));
/// // The run happened, and is reported, though its outcome could not be recorded.
/// assert_eq!(failed.report.runs.len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, thiserror::Error)]
#[error("the scheduler tick stopped early{}", more_errors(.later))]
pub struct TickFailed {
    /// What the tick did: every run that ended, the failing job's run included when it ran
    /// (its outcome may not be recorded: see `error`), the trips, and the rest, in listing
    /// order.
    pub report: TickReport,
    /// The first error: after it, no job started. A store error met for one job names it.
    #[source]
    pub error: Error,
    /// Errors met after the first, by runs that were already going on, in the order met.
    pub later: Vec<Error>,
}

impl From<TickFailed> for Error {
    /// The first error; the report and the later errors are dropped.
    fn from(failed: TickFailed) -> Self {
        failed.error
    }
}

/// ` (and N more errors)` when a tick met more than one.
fn more_errors(later: &[Error]) -> String {
    match later.len() {
        0 => String::new(),
        1 => " (and 1 more error)".to_owned(),
        n => format!(" (and {n} more errors)"),
    }
}

/// Runs due jobs. Build it with a job store, a runner and a clock; call `tick` (tests, cron
/// hosts) or `run_until` (a long-lived `cairn scheduler` process).
///
/// Due jobs run at once, up to [`SchedulerConfig::max_running_jobs`] of them: a long run (a
/// two-hour backup) delays neither the other jobs' runs nor their ticks, unless it holds the
/// last free place. Jobs due while every place is taken start, in listing order, as places
/// free up. A job never has two runs of its own at once: from its claim until its last
/// outcome is recorded, this scheduler (and every clone of it) starts nothing more of that
/// job; a tick of it that came meanwhile is handled once the run has ended, by the catch-up
/// rules ([`CatchUp`]), as after downtime. No task is spawned: the runs are polled by the
/// future of `tick` or `run_until`, so dropping it drops them all.
///
/// A due job is first claimed: its `next_run_at` moves to the next schedule time (after now,
/// and after the tick it runs for) and `last_run_at` to now, by compare-and-swap on the job as
/// stored then; a job changed, or deleted and added again, since it was listed (while it
/// waited for a place, say) is not claimed but looked at again. Only then does its run
/// start, so two schedulers over one store never start the same tick twice, and a crash
/// during a run does not rerun that tick on restart (runs are at most once per tick; the
/// workflow's own resume covers the interrupted run). A one-shot job is the exception: while
/// it runs it is due again `one_shot_retry` later, so a crash mid-run is not lost. Its claim
/// also stores the run as claimed ([`crate::ClaimedRun`], in the same compare-and-swap,
/// before the run starts), and the write that records the run's outcome (a success, a
/// failure, an interruption) clears it. So a one-shot job found due again with a claimed
/// run is one whose earlier run's outcome was never recorded (the process died first, the
/// job's future was dropped, or the store failed before the write landed; a write that
/// landed though its answer was lost does complete it, see below). That run may have
/// completed. A runner that finds earlier runs ([`JobRunner::finds_earlier_runs`]) can tell,
/// so the job is handed to it as usual: `cairn scheduler`'s runner (and an `ExecutorRunner`
/// built with `finding_earlier_runs`, whose plan source gives each job a scope of its own;
/// without that promise it cannot tell which stored runs are the job's) finds the job's
/// earlier run in the run store, reports a completed one as the run's success without running
/// anything, and refuses a fresh run beside an unfinished or failed one until a person
/// resumes or abandons it. With any other runner the scheduler cannot tell, so it does not
/// start the job again: it sets the job `failed` with no next run (audited as
/// `BreakerTripped` with `unrecorded_run: true`, logged as a WARN, and reported in
/// `TickReport::unrecorded`), and only `resume(id, force = true)`, once a person has
/// looked at that run, runs it again. (A run of another scheduler over the same store that
/// outlives `one_shot_retry` looks the same: the job is held, and that run's outcome, when
/// it ends, is still recorded on it; a success completes it.)
/// After the run, its outcome is recorded on the job, unless the job was deleted meanwhile
/// (or damaged meanwhile: it is then skipped the same way and reported, see `tick`).
/// A job deleted and created again under the same id while the run went on is a new job
/// (told apart by `created_at`, in milliseconds): the old run's outcome is not recorded on it.
/// Every write that puts back (or deletes) a job read earlier is a compare-and-swap at the
/// version read, and the job store never gives a job added again under the same id a
/// version the old one had (`JobStore`, "Versions"), so such a write can land only on the
/// job it read. Each also reads the job again first and goes on only if it is still stored
/// exactly as read (the claim, the completion of a job whose schedule ran out, the delete
/// of `delete_after_run`), which leaves a changed job to the next look without a failed
/// write, and keeps a job that a build from before that rule deleted and added again from
/// being taken for the old one.
///
/// A recurring job whose schedule has no time left after a run (a cron expression with a
/// year field, say `0 0 1 1 * 2027`) becomes `completed` once that last run's outcome is
/// recorded, whatever the outcome (unless its breaker trips: then it is `failed`), audited as
/// `Completed` with `schedule_ran_out` in the detail.
///
/// An active job found with no `next_run_at` is settled by the look that finds it, never
/// left to sit active without running. A recurring job whose schedule has no time left
/// after its last run (the process died before that run's outcome was recorded) is
/// completed, as above. Any other (a document edited by hand, or written by another tool)
/// gets the next run its schedule gives: the first time after now and after its last run
/// (the missed ticks are not run, and a clock set back reruns nothing), or for a one-shot
/// job its time, or now when that has passed. That write is audited as `Resumed` with
/// `rescheduled: true` and the new `next_run_at` in the detail, and logged as a WARN.
///
/// - success: `consecutive_errors` = 0; a one-shot job becomes `completed` (audited as
///   `Completed`), and with `delete_after_run` is then deleted, if it is still stored as
///   completed here (if that
///   delete fails, or the job changed or was replaced first, it stays as it is: a completed
///   job never runs again);
/// - failure (an `Err` that is not `RunFailed::interrupted`, or a panic in the runner):
///   `consecutive_errors` + 1 and `last_error`; when the count reaches
///   `max_consecutive_errors` the circuit breaker trips: the job becomes `failed`,
///   `next_run_at` is cleared, the trip is audited (`BreakerTripped` in the job store's
///   audit list) and emitted (`cairn_telemetry::emit::breaker_tripped`). It stays failed
///   across restarts until `resume(id, force = true)`;
/// - an outcome whose write landed though the store's answer was lost (an I/O error after
///   the write): the job is read back, and when it stands as written, its trip or
///   completion is emitted and audited as above, with `answer_lost: true` and the error in
///   the record's detail, and then the store error is returned (the store failed, so the
///   host stops as on any store error). When it cannot be read back, nobody can tell
///   whether it landed: that is logged, and the next look sees the job as it is;
/// - stopped by its state store (`RunFailed::store_failed`): counted like a failure, and the
///   run is noted in `Job::store_failed_runs` in the same write (see the crate docs);
/// - interrupted (`RunFailed::interrupted`, a shutdown cut the run short): not counted,
///   and nothing changes but a one-shot job's claimed run, which is cleared (the runner
///   said how the run ended); a recurring job waits for its next tick (the cut run is left
///   for an explicit resume by run id, never resumed by the scheduler), a one-shot job is
///   retried `one_shot_retry` later as a fresh run (a runner may decline that retry while the cut
///   run is unfinished, or report the run a person finished instead, as `cairn scheduler`
///   does, so that a one-shot job's done tasks never run twice).
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
/// #[derive(Debug)]
/// struct AlwaysDown;
/// #[async_trait]
/// impl JobRunner for AlwaysDown {
///     async fn run(&self, _: &RunRequest) -> Result<RunSucceeded, RunFailed> {
///         Err(RunFailed::new("database unreachable"))
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let clock = ManualClock::new(Timestamp(0));
/// let scheduler = Scheduler::new(
///     Arc::new(MemoryJobStore::new()),
///     Arc::new(AlwaysDown),
///     Arc::new(clock.clone()),
/// );
/// let id = JobId::new("sync")?;
/// let schedule = Schedule::every(Duration::from_secs(60))?;
/// let new = NewJob::new(id.clone(), "sync", schedule, "sync.toml").max_consecutive_errors(2);
/// scheduler.jobs().add(new).await?;
/// for _ in 0..2 {
///     clock.advance(Duration::from_secs(60));
///     scheduler.tick().await?;
/// }
/// let job = scheduler.jobs().show(&id).await?;
/// assert_eq!((job.status, job.next_run_at), (JobStatus::Failed, None));
/// assert!(matches!(scheduler.jobs().resume(&id, false).await, Err(Error::NeedsForce { .. })));
/// # Ok::<(), cairn_scheduler::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Scheduler {
    jobs: Jobs,
    runner: Arc<dyn JobRunner>,
    config: SchedulerConfig,
    left_out: Arc<LeftOutTracker>,
    /// The jobs whose runs go on now (claimed, not yet recorded), shared by the clones: none
    /// of them is started again until its run has ended.
    in_flight: Arc<Mutex<HashSet<JobId>>>,
}

/// How many missed ticks a catch-up looks at to tell "missed" from "on time" and to count.
const MISSED_SCAN_LIMIT: usize = 1_000;

impl Scheduler {
    /// A scheduler with the default [`SchedulerConfig`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use async_trait::async_trait;
    /// use cairn_checkpoint::MemoryJobStore;
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::*;
    ///
    /// #[derive(Debug)]
    /// struct Succeeds;
    /// #[async_trait]
    /// impl JobRunner for Succeeds {
    ///     async fn run(&self, _: &RunRequest) -> Result<RunSucceeded, RunFailed> {
    ///         Ok(RunSucceeded::default())
    ///     }
    /// }
    ///
    /// let scheduler = Scheduler::new(
    ///     Arc::new(MemoryJobStore::new()),
    ///     Arc::new(Succeeds),
    ///     Arc::new(ManualClock::new(Timestamp(0))),
    /// );
    /// assert_eq!(scheduler.config(), &SchedulerConfig::default());
    /// assert_eq!(scheduler.config().max_running_jobs, DEFAULT_MAX_RUNNING_JOBS);
    /// ```
    pub fn new(
        store: Arc<dyn JobStore>,
        runner: Arc<dyn JobRunner>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::with_config(store, runner, clock, SchedulerConfig::default())
    }

    /// A scheduler with `config`.
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
    /// #[derive(Debug)]
    /// struct Succeeds;
    /// #[async_trait]
    /// impl JobRunner for Succeeds {
    ///     async fn run(&self, _: &RunRequest) -> Result<RunSucceeded, RunFailed> {
    ///         Ok(RunSucceeded::default())
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = ManualClock::new(Timestamp(0));
    /// let config = SchedulerConfig { catch_up: CatchUp::Skip, ..SchedulerConfig::default() };
    /// let scheduler = Scheduler::with_config(
    ///     Arc::new(MemoryJobStore::new()),
    ///     Arc::new(Succeeds),
    ///     Arc::new(clock.clone()),
    ///     config,
    /// );
    /// let id = JobId::new("sync")?;
    /// let every_minute = Schedule::every(Duration::from_secs(60))?;
    /// scheduler.jobs().add(NewJob::new(id.clone(), "sync", every_minute, "sync.toml")).await?;
    /// // Down for five minutes: with `CatchUp::Skip` none of the five missed ticks runs.
    /// clock.advance(Duration::from_secs(300));
    /// let report = scheduler.tick().await?;
    /// assert!(report.runs.is_empty());
    /// assert_eq!(report.missed_not_run, 5);
    /// assert_eq!(scheduler.jobs().show(&id).await?.next_run_at, Some(Timestamp(360_000)));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub fn with_config(
        store: Arc<dyn JobStore>,
        runner: Arc<dyn JobRunner>,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
    ) -> Self {
        Scheduler {
            jobs: Jobs::new(store, clock),
            runner,
            config,
            left_out: Arc::default(),
            in_flight: Arc::default(),
        }
    }

    /// The job operations (add, show, list, pause, resume, delete, audit).
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// The settings.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Runs every job that is due now and records the outcomes: up to
    /// [`SchedulerConfig::max_running_jobs`] jobs at once, the others as places free up.
    /// Returns once every run it started has ended and its outcome is recorded. A job whose
    /// run (started by another `tick` or `run_until` of this scheduler or of a clone) still
    /// goes on is left alone, as are all jobs not started yet once the runner says it is
    /// stopping ([`JobRunner::is_stopping`]).
    ///
    /// # Errors
    ///
    /// `Store` when the job store fails (a failed fsync is not retried); `Unaudited` when it
    /// failed only at the audit record of a change it had stored (a trip, whose
    /// `breaker_tripped` event is emitted all the same; a completion; a `delete_after_run`
    /// delete); `Contended` when recording an outcome lost 256 compare-and-swaps in a row (an
    /// operator's update gives up after 16). A job whose document does not decode, or no longer validates, is
    /// reported in `TickReport::unreadable`, not as an error. A runner that panics is not an
    /// error either: the panic is recorded as that run's failure. Stored jobs the job store
    /// left out of its listing are reported in `TickReport::left_out` (and logged as a WARN)
    /// once each, not by every tick while they stay. A job damaged after the listing (while
    /// its run went on, say) is not an error either: it is skipped like a job deleted
    /// meanwhile (the outcome of its run is not recorded), and reported in `left_out` when
    /// the store moved it aside (one it left in place is reported by the next listing), or in
    /// `unreadable` when it no longer decodes.
    ///
    /// After an error no further job starts. Runs going on are not dropped: the runner is
    /// told ([`JobRunner::scheduler_failed`], so it may end them soon, as on a shutdown),
    /// their outcomes are recorded where the store still lets them, and once they have all
    /// ended a [`TickFailed`] is returned: its `error` is the first error, `later` the ones
    /// that runs going on met after it, and its `report` what the tick did, as a tick without
    /// an error reports it. So the other jobs' runs (and trips) are never lost with the
    /// error, and a job whose outcome could not be recorded has its run in the report too
    /// (its error names it). `?` turns a `TickFailed` into its first error.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe. Dropping the future drops the runs it started (it polls them; they are
    /// not spawned), and their outcomes are not recorded: a failure is not counted by the
    /// breaker, a success neither resets the count nor completes a one-shot job. A claimed job
    /// stays claimed: a recurring job waits for its next tick (the dropped one is not run
    /// again), and a one-shot job, due again `one_shot_retry` after its claim, is then held
    /// `failed` for a person instead of run, unless the runner finds earlier runs (see
    /// [`Scheduler`]). The jobs are
    /// released at once, so a later `tick` of this scheduler or of a clone starts them when
    /// they are due. A drop while an outcome is being recorded may leave the job written
    /// without the audit record that follows (a trip without its `BreakerTripped` record,
    /// though its event was emitted); a store call in flight may still land after the drop, depending on the job
    /// store (see [`Jobs`]).
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
    /// #[derive(Debug)]
    /// struct Succeeds;
    /// #[async_trait]
    /// impl JobRunner for Succeeds {
    ///     async fn run(&self, _: &RunRequest) -> Result<RunSucceeded, RunFailed> {
    ///         Ok(RunSucceeded { run_id: Some("run-1".to_owned()) })
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let clock = ManualClock::new(Timestamp(0));
    /// let scheduler = Scheduler::new(
    ///     Arc::new(MemoryJobStore::new()),
    ///     Arc::new(Succeeds),
    ///     Arc::new(clock.clone()),
    /// );
    /// let id = JobId::new("sync")?;
    /// let every_minute = Schedule::every(Duration::from_secs(60))?;
    /// scheduler.jobs().add(NewJob::new(id.clone(), "sync", every_minute, "sync.toml")).await?;
    /// assert!(scheduler.tick().await?.runs.is_empty(), "nothing is due yet");
    /// // Five ticks were missed: by default (`CatchUp::One`) the job runs once for all of them.
    /// clock.advance(Duration::from_secs(300));
    /// let report = scheduler.tick().await?;
    /// assert_eq!(report.runs.len(), 1);
    /// assert_eq!(report.runs[0].scheduled_for, Timestamp(60_000));
    /// assert_eq!(report.missed_not_run, 4);
    /// // The job is claimed for its next tick, so the same moment runs nothing again.
    /// assert!(scheduler.tick().await?.runs.is_empty());
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn tick(&self) -> Result<TickReport, TickFailed> {
        let look = match self.look().await {
            Ok(look) => look,
            Err(error) => {
                return Err(TickFailed {
                    report: TickReport::default(),
                    error,
                    later: Vec::new(),
                });
            }
        };
        let mut report = look.report;
        let mut waiting = look.due.into_iter().enumerate();
        let mut runs = JobRuns::default();
        // Each job's part of the report, by the job's place in the listing, so the report
        // reads in listing order whichever run ends first. A job that met an error keeps its
        // part too: its run happened, and the other jobs' runs must not go unreported.
        let mut parts = BTreeMap::new();
        let mut errors = Vec::new();
        loop {
            while errors.is_empty()
                && runs.len() < self.max_running_jobs()
                && !self.runner.is_stopping()
            {
                let Some((order, (job, due))) = waiting.next() else {
                    break;
                };
                self.start(&mut runs, order, job, due);
            }
            let Some((order, (part, result))) = runs.next().await else {
                break;
            };
            parts.insert(order, part);
            if let Err(err) = result {
                self.on_error(errors.is_empty(), &err, &runs);
                errors.push(err);
            }
        }
        for part in parts.into_values() {
            report.absorb(part);
        }
        let mut errors = errors.into_iter();
        match errors.next() {
            None => Ok(report),
            Some(error) => Err(TickFailed {
                report,
                error,
                later: errors.collect(),
            }),
        }
    }

    /// `max_running_jobs`, with 0 taken as 1.
    fn max_running_jobs(&self) -> usize {
        self.config.max_running_jobs.max(1)
    }

    /// Lists the jobs, leaving out those whose runs go on: reports the unreadable ones and
    /// those the store left out, completes the active recurring jobs whose schedule ran out,
    /// and returns the due jobs (in listing order) and when the next one comes due.
    async fn look(&self) -> Result<Look> {
        let now = self.jobs.clock().now();
        let mut look = Look {
            now,
            ..Look::default()
        };
        let listing = self.jobs.store().listing().await?;
        let mut left_out = listing.left_out;
        for stored in listing.jobs {
            // Its run goes on: it is looked at again once the run has ended (its
            // `next_run_at` may be past by then, and is handled as a missed tick).
            if self.in_flight().contains(&stored.id) {
                continue;
            }
            let id = stored.id.clone();
            let job = match Job::from_stored(stored) {
                Ok(job) => job,
                // Left for the build that wrote it, and reported as the store's entries left
                // for a newer build are: once, not every tick.
                Err(Error::NewerFormat { detail, .. }) => {
                    left_out.push(crate::jobs::newer_document(&id, detail));
                    continue;
                }
                Err(err) => {
                    tracing::warn!(target: names::DETAIL_TARGET, job_id = %id, error = %err, "scheduler skips a job it cannot decode");
                    look.report.unreadable.push((id, err.to_string()));
                    continue;
                }
            };
            match job.next_run_at {
                Some(due) if job.status == JobStatus::Active && due <= now => {
                    look.due.push((job, due));
                }
                Some(at) if job.status == JobStatus::Active => {
                    look.next = Some(look.next.map_or(at, |next| next.min(at)));
                }
                // Active with no next run: a recurring job whose schedule ran out and whose
                // last run's outcome was never recorded (the process died during it), or a
                // document edited by hand or written by another tool. Left so, it would
                // never be due again.
                None if job.status == JobStatus::Active => {
                    self.settle_unscheduled(&job, now, &mut look)
                        .await
                        .map_err(|err| err.for_job(&job.id))?;
                }
                _ => {}
            }
        }
        left_out.sort_by(|a, b| a.name.cmp(&b.name));
        let news = self.left_out.news(&left_out);
        for entry in &news {
            warn_left_out(entry);
        }
        // Before what the loop reported (a job damaged while it was settled), as listed.
        look.report.left_out.splice(0..0, news);
        Ok(look)
    }

    /// The jobs whose runs go on now.
    fn in_flight(&self) -> MutexGuard<'_, HashSet<JobId>> {
        // A plain set, valid even if a holder panicked.
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds due job `job`'s run (its claim, its runs and their recording) to `runs`, unless
    /// a run of the job goes on already.
    fn start<'a>(&'a self, runs: &mut JobRuns<'a>, order: usize, job: Job, due: Timestamp) {
        if !self.in_flight().insert(job.id.clone()) {
            return;
        }
        let mark = InFlight {
            set: Arc::clone(&self.in_flight),
            id: job.id.clone(),
        };
        runs.push(
            order,
            Box::pin(async move {
                // Held until the run's outcome is recorded, or the future is dropped.
                let _mark = mark;
                let mut part = TickReport::default();
                // Now, not the listing's time: a job that waited for a place starts later.
                let now = self.jobs.clock().now();
                let id = job.id.clone();
                // A store error met for this job names it, so an operator knows which one.
                let result = self
                    .run_due(job, due, now, &mut part)
                    .await
                    .map_err(|err| err.for_job(&id));
                // The part is kept even after an error: it holds what this job did before.
                (part, result)
            }),
        );
    }

    /// Logs error `err` that `tick` or `run_until` met; after the `first` one no job starts,
    /// and the runner hears of it when runs go on, so it may end them soon.
    fn on_error(&self, first: bool, err: &Error, runs: &JobRuns<'_>) {
        if !first {
            tracing::warn!(target: names::DETAIL_TARGET, error = %err, "another error while the scheduler stops after an error");
            return;
        }
        if !runs.is_empty() {
            tracing::warn!(target: names::DETAIL_TARGET, error = %err, runs = runs.len(), "the scheduler stops after an error: no further run starts, and the error is returned once the runs going on have ended");
            self.runner.scheduler_failed(err);
        }
    }

    /// Keeps the first error `run_until` met (later ones are only logged); it is returned
    /// once the runs going on have ended.
    fn failed(&self, failed: &mut Option<Error>, err: Error, runs: &JobRuns<'_>) {
        self.on_error(failed.is_none(), &err, runs);
        failed.get_or_insert(err);
    }

    async fn run_due(
        &self,
        job: Job,
        due: Timestamp,
        now: Timestamp,
        report: &mut TickReport,
    ) -> Result<()> {
        // The listed job may be old (it waited for a place) and the claim writes it back
        // whole: claim only what is stored now.
        if !self.is_still_stored(&job, report).await? {
            return Ok(());
        }
        if let (true, Some(claimed)) = (job.is_one_shot(), job.claimed_run) {
            // A runner that finds the earlier run settles it (a completed one is this
            // run's success); any other runner cannot, so a person decides.
            if !self.runner.finds_earlier_runs() {
                return self.hold_unrecorded(&job, claimed, now, report).await;
            }
            tracing::warn!(target: names::DETAIL_TARGET, job_id = %job.id, claimed_at = claimed.claimed_at.0, "a one-shot job's earlier run has no recorded outcome; the runner, which finds earlier runs, settles it");
        }
        let later = job
            .schedule
            .fire_times_between(job.created_at, due, now, MISSED_SCAN_LIMIT)
            .map_err(|err| err.for_job(&job.id))?;
        // Counted once the claim stands: a claim that fails or loses its race leaves the
        // ticks to the next look, which counts them then.
        let (plan, missed): (Vec<Timestamp>, u64) = match self.config.catch_up {
            CatchUp::One => (vec![due], later.len() as u64),
            CatchUp::Skip if !later.is_empty() => (Vec::new(), later.len() as u64 + 1),
            CatchUp::Skip => (vec![due], 0),
            CatchUp::All { max } => {
                let all: Vec<Timestamp> = std::iter::once(due).chain(later).collect();
                let take = all.len().min(max.max(1) as usize);
                (all[..take].to_vec(), (all.len() - take) as u64)
            }
        };
        let next = if job.is_one_shot() {
            // A one-shot job keeps a retry time while it runs, so a crash mid-run retries it.
            let retry = self.config.one_shot_retry.max(MIN_INTERVAL);
            Some(now.plus_millis(u64::try_from(retry.as_millis()).unwrap_or(u64::MAX)))
        } else {
            // Past `due` even when the clock was set back since the look (while the job
            // waited for a place): claiming `due` again would run that tick twice.
            job.schedule
                .next_after(job.created_at, now.max(due))
                .map_err(|err| err.for_job(&job.id))?
        };
        let mut claimed = job.clone();
        claimed.next_run_at = next;
        if let Some(first) = plan.first() {
            claimed.last_run_at = Some(now);
            if job.is_one_shot() {
                // Stored with the claim, before the run starts, so a run whose outcome is
                // never recorded is not started again unseen (see `hold_unrecorded`).
                claimed.claimed_run = Some(ClaimedRun {
                    claimed_at: now,
                    scheduled_for: *first,
                });
            }
        }
        let claim = match self
            .jobs
            .store()
            .put(&job.id, Some(job.version), &claimed.to_document())
            .await
        {
            Err(err) => self.unless_damaged(&job.id, err.into(), report).await,
            Ok(claim) => Ok(claim.is_ok()),
        }?;
        if !claim {
            // Someone else (another scheduler, an operator) changed the job since we listed
            // it; the next tick looks at it again.
            tracing::debug!(target: names::DETAIL_TARGET, job_id = %job.id, "job changed before it could be claimed");
            return Ok(());
        }
        report.missed_not_run += missed;
        let runs = plan.len();
        for (index, scheduled_for) in plan.into_iter().enumerate() {
            let mut request = RunRequest::new(
                job.id.clone(),
                job.workflow.clone(),
                job.input.clone(),
                scheduled_for,
                self.jobs.clock().now(),
            )
            .for_job(job.created_at, job.is_one_shot());
            request.claimed_at = now;
            tracing::info!(target: names::DETAIL_TARGET, job_id = %job.id, scheduled_for = scheduled_for.0, "scheduler starts a run");
            let outcome = match CatchPanic(self.runner.run(&request)).await {
                Ok(outcome) => outcome,
                Err(payload) => {
                    let message = panic_message(payload.as_ref());
                    tracing::error!(target: names::DETAIL_TARGET, job_id = %job.id, panic = %message, "the job runner panicked; counted as a failed run");
                    Err(RunFailed::new(format!(
                        "the job runner panicked: {message}"
                    )))
                }
            };
            if let Err(failed) = &outcome {
                tracing::info!(target: names::DETAIL_TARGET, job_id = %job.id, error = %failed.message, "scheduled run failed");
            }
            let recorded = self
                .record(&job.id, job.created_at, &outcome, index + 1 == runs, report)
                .await;
            // Reported even when its outcome could not be recorded: the run happened.
            report.runs.push(RunRecord {
                job_id: job.id.clone(),
                scheduled_for,
                outcome,
            });
            if !recorded? {
                break;
            }
        }
        Ok(())
    }

    /// Holds one-shot job `job`, due again with run `claimed` claimed and never recorded,
    /// for a person: that run may have completed, and the scheduler cannot tell, so running
    /// the job again by itself could complete it twice. The job becomes `failed` (revived
    /// only by `resume` with `force`, as after a breaker trip) with no next run, keeping
    /// the claim as evidence; audited as `BreakerTripped` with `unrecorded_run: true` in the
    /// detail, logged as a WARN and reported in `TickReport::unrecorded`. A job that changed
    /// since it was read is left to the next look.
    async fn hold_unrecorded(
        &self,
        job: &Job,
        claimed: ClaimedRun,
        now: Timestamp,
        report: &mut TickReport,
    ) -> Result<()> {
        let message = format!(
            "its run claimed at {} ms (for {} ms) has no recorded outcome: the scheduler stopped, or the job store failed, before recording it; the run may have completed, so the one-shot job is not run again unless a person resumes it with force",
            claimed.claimed_at.0, claimed.scheduled_for.0
        );
        let mut held = job.clone();
        held.status = JobStatus::Failed;
        held.next_run_at = None;
        held.last_error = Some(capped_error(&message));
        let written = match self
            .jobs
            .store()
            .put(&job.id, Some(job.version), &held.to_document())
            .await
        {
            Err(err) => {
                self.unless_damaged(&job.id, err.into(), report).await?;
                return Ok(());
            }
            Ok(written) => written,
        };
        if written.is_err() {
            tracing::debug!(target: names::DETAIL_TARGET, job_id = %job.id, "job changed before it could be held; left to the next look");
            return Ok(());
        }
        tracing::warn!(target: names::DETAIL_TARGET, job_id = %job.id, claimed_at = claimed.claimed_at.0, "a one-shot job's earlier run has no recorded outcome; the job is set failed, not run again, until a person resumes it with force");
        report.unrecorded.push(job.id.clone());
        self.jobs
            .audit(
                JobAuditRecord::new(now, job.id.clone(), JobAuditAction::BreakerTripped, message)
                    .with_detail(json!({
                        "unrecorded_run": true,
                        "claimed_at": claimed.claimed_at.0,
                        "scheduled_for": claimed.scheduled_for.0,
                        "consecutive_errors": job.consecutive_errors,
                        "max_consecutive_errors": job.max_consecutive_errors,
                    })),
            )
            .await
    }

    /// Settles the active job `job`, listed with no `next_run_at`: it gets the next run its
    /// schedule gives, or, a recurring job whose schedule has no time left, is completed.
    /// The next run is the first schedule time after now and after its last run (as the
    /// claim of that run computed it, so a clock set back reruns nothing); a one-shot job
    /// is due at its time, or at once when that has passed (as `Jobs::resume` makes it). A
    /// rescheduled job is audited as `Resumed` with `rescheduled` in the detail, logged as a
    /// WARN, and taken into this look (due now, or the look's next wake). A job that changed
    /// since the listing is left to the next look.
    async fn settle_unscheduled(&self, job: &Job, now: Timestamp, look: &mut Look) -> Result<()> {
        let next = if job.is_one_shot() {
            first_due(job, now)?
        } else {
            let after = job.last_run_at.map_or(now, |last| last.max(now));
            job.schedule.next_after(job.created_at, after)?
        };
        // Listed a moment ago, and the write below puts the listed job back whole.
        if !self.is_still_stored(job, &mut look.report).await? {
            return Ok(());
        }
        let mut settled = job.clone();
        match next {
            Some(at) => settled.next_run_at = Some(at),
            None => settled.status = JobStatus::Completed,
        }
        let written = match self
            .jobs
            .store()
            .put(&job.id, Some(job.version), &settled.to_document())
            .await
        {
            Err(err) => {
                self.unless_damaged(&job.id, err.into(), &mut look.report)
                    .await?;
                return Ok(());
            }
            Ok(written) => written,
        };
        let Ok(version) = written else {
            return Ok(());
        };
        settled.version = version;
        let Some(at) = next else {
            return self.audit_run_out(&settled, None, None).await;
        };
        tracing::warn!(target: names::DETAIL_TARGET, job_id = %job.id, next_run_at = at.0, "an active job was stored with no next run time (an edited document?); the scheduler gave it the next one its schedule has");
        self.jobs
            .audit(
                JobAuditRecord::new(
                    now,
                    job.id.clone(),
                    JobAuditAction::Resumed,
                    "active job had no next run time (its document was edited, or written by another tool); the scheduler set it from the job's schedule",
                )
                .with_detail(json!({
                    "rescheduled": true,
                    "forced": false,
                    "next_run_at": at.0,
                    "last_run_at": job.last_run_at.map(|t| t.0),
                })),
            )
            .await?;
        if at <= now {
            look.due.push((settled, at));
        } else {
            look.next = Some(look.next.map_or(at, |next| next.min(at)));
        }
        Ok(())
    }

    /// Audits that recurring job `job` is completed because its schedule ran out;
    /// `last_run_ok` is how its last run ended, when this scheduler saw it.
    async fn audit_run_out(
        &self,
        job: &Job,
        last_run_ok: Option<bool>,
        note: Option<&serde_json::Value>,
    ) -> Result<()> {
        self.jobs
            .audit(
                JobAuditRecord::new(
                    self.jobs.clock().now(),
                    job.id.clone(),
                    JobAuditAction::Completed,
                    "recurring job completed: its schedule has no time left after its last run",
                )
                .with_detail(with_note(
                    json!({
                        "schedule": job.schedule.to_string(),
                        "schedule_ran_out": true,
                        "last_run_ok": last_run_ok,
                        "last_run_at": job.last_run_at.map(|t| t.0),
                    }),
                    note,
                )),
            )
            .await
    }

    /// Records one run's outcome on the job created at `created_at`; returns whether the job
    /// is still active afterwards. `last_of_plan`: no other run of this catch-up follows, so
    /// a recurring job with no next run is completed.
    async fn record(
        &self,
        id: &JobId,
        created_at: Timestamp,
        outcome: &std::result::Result<RunSucceeded, RunFailed>,
        last_of_plan: bool,
        report: &mut TickReport,
    ) -> Result<bool> {
        let now = self.jobs.clock().now();
        // The last write tried, before and after: when its answer is lost, a read-back
        // tells whether it landed.
        let mut attempted: Option<(Job, Job)> = None;
        let updated = self
            .jobs
            .update_with_attempts(id, RECORD_ATTEMPTS, |job| {
                let read = job.clone();
                if job.created_at != created_at {
                    // Deleted and created again while the run went on: the outcome belongs
                    // to the old job (it would complete a new one-shot job that never ran).
                    // A replacement after this read makes the write below conflict (a new
                    // job never gets a version the old one had), and the next attempt
                    // reads it here.
                    return Err(Error::NotFound { id: job.id.clone() });
                }
                // Whatever the outcome, it is recorded now: the claim is settled.
                job.claimed_run = None;
                match outcome {
                    Ok(_) => {
                        job.consecutive_errors = 0;
                        // Completed even with `delete_after_run`: if the delete below fails
                        // (or the process dies first), the job must not run a second time.
                        if job.is_one_shot() {
                            job.status = JobStatus::Completed;
                            job.next_run_at = None;
                        }
                    }
                    // Cut short by a shutdown: not a failure, so the breaker does not see it.
                    Err(failed) if failed.interrupted => {}
                    Err(failed) => {
                        job.consecutive_errors = job.consecutive_errors.saturating_add(1);
                        job.last_error = Some(capped_error(&failed.message));
                        // Kept with the count, in the same write: a later scheduler that
                        // finds the run still `running` reads why here.
                        if let (true, Some(run_id)) = (failed.store_failed, &failed.run_id) {
                            job.note_store_failure(run_id, now, &failed.message);
                        }
                        if job.consecutive_errors >= job.max_consecutive_errors
                            && matches!(job.status, JobStatus::Active | JobStatus::Paused)
                        {
                            job.status = JobStatus::Failed;
                            job.next_run_at = None;
                        }
                    }
                }
                // The claim found no schedule time after this run: it was the last one.
                // Whatever its outcome, the job can never run again, so it is completed
                // instead of staying active with no next run (a tripped breaker stays
                // `failed`, which says more).
                if last_of_plan
                    && !job.is_one_shot()
                    && job.status == JobStatus::Active
                    && job.next_run_at.is_none()
                {
                    job.status = JobStatus::Completed;
                }
                attempted = Some((read, job.clone()));
                Ok(())
            })
            .await;
        // The store error of a write that landed though its answer was lost: the write's
        // trip or completion is still emitted and audited (noting the lost answer), so it
        // leaves a trace, and the error is returned after that.
        let mut answer_lost = None;
        let (before, after) = match updated {
            Ok(pair) => pair,
            // Deleted (or replaced) while it ran: there is nothing left to record.
            Err(Error::NotFound { .. }) => return Ok(false),
            Err(err) => match self.landed(id, attempted, &err).await {
                Some(pair) => {
                    answer_lost = Some(err);
                    pair
                }
                // Damaged while it ran: as good as deleted for this run. Stopping here
                // would stop `run_until`, and with it every other job.
                None => return self.unless_damaged(id, err, report).await,
            },
        };
        let lost_note = answer_lost.as_ref().map(|err| {
            json!({
                "answer_lost": true,
                "error": err.to_string(),
            })
        });
        if after.status == JobStatus::Failed && before.status != JobStatus::Failed {
            // Reported before the record is written: the trip stands even when its record
            // cannot be written (`Unaudited`), and `TickFailed` keeps the report.
            report.tripped.push(id.clone());
            let last_error = after.last_error.clone().unwrap_or_default();
            // Emitted before the record is written, so a trip that stands is always heard
            // of, even when its record cannot be written (`Unaudited`).
            cairn_telemetry::emit::breaker_tripped(
                id.as_str(),
                after.consecutive_errors,
                &last_error,
            );
            self.jobs
                .audit(
                    JobAuditRecord::new(
                        now,
                        id.clone(),
                        JobAuditAction::BreakerTripped,
                        format!(
                            "{} failed runs in a row (limit {}): circuit breaker tripped; resume with force to revive",
                            after.consecutive_errors, after.max_consecutive_errors
                        ),
                    )
                    .with_detail(with_note(
                        json!({
                            "consecutive_errors": after.consecutive_errors,
                            "max_consecutive_errors": after.max_consecutive_errors,
                            "last_error": last_error,
                        }),
                        lost_note.as_ref(),
                    )),
                )
                .await?;
        }
        if !after.is_one_shot()
            && after.status == JobStatus::Completed
            && before.status != JobStatus::Completed
        {
            let last_run_ok = match outcome {
                Ok(_) => Some(true),
                Err(failed) if failed.interrupted => None,
                Err(_) => Some(false),
            };
            self.audit_run_out(&after, last_run_ok, lost_note.as_ref())
                .await?;
        }
        if outcome.is_ok() && after.is_one_shot() {
            // Audited before a `delete_after_run` delete too: when that delete fails, or
            // lands but its answer (or its `Deleted` record) is lost, the log still says how
            // the job ended, instead of ending at `Created` for a job that is gone.
            if before.status != JobStatus::Completed {
                let mut record = JobAuditRecord::new(
                    now,
                    id.clone(),
                    JobAuditAction::Completed,
                    "one-shot job ran successfully",
                );
                if let Some(note) = &lost_note {
                    record = record.with_detail(note.clone());
                }
                self.jobs.audit(record).await?;
            }
            // The store just failed: its error is returned before any further write.
            if let Some(err) = answer_lost {
                return Err(err);
            }
            if after.delete_after_run {
                // Only the job as recorded here: one deleted and added again since (or
                // changed) is not this run's to delete, and stays as it is.
                if self.is_still_stored(&after, report).await? {
                    let reason = "one-shot job ran successfully (delete_after_run)";
                    match self.jobs.delete_exactly(&after, reason).await {
                        Ok(_) | Err(Error::NotFound { .. }) => {}
                        Err(err) => {
                            self.unless_damaged(id, err, report).await?;
                        }
                    }
                }
                return Ok(false);
            }
        }
        match answer_lost {
            Some(err) => Err(err),
            None => Ok(after.status == JobStatus::Active),
        }
    }

    /// Whether the write `attempted` (the job as read, and as it was to be written) landed
    /// although the store answered `err`: job `id` is now stored exactly as it was to be
    /// written. Returns the pair, with the stored version, when it did; `None` when it did
    /// not, when `err` is not a plain store failure (a damaged job, say), or when the job
    /// cannot be read back (logged: nobody can tell then).
    ///
    /// The job store keeps no lock on a job (each write is a compare-and-swap), so another
    /// writer may change the job between the lost answer and this read. When the job is
    /// found at the version right after the one read, the test is exact: only one write at
    /// that version can land, and it is this one unless another writer made the same
    /// change. Found later than that, a write that landed and was then changed (an
    /// operator's pause, say) reads as not landed: its trip or completion goes unaudited,
    /// though the store error is still returned and the job stands as the later write left it.
    async fn landed(
        &self,
        id: &JobId,
        attempted: Option<(Job, Job)>,
        err: &Error,
    ) -> Option<(Job, Job)> {
        let damaged = matches!(
            err,
            Error::Store {
                source: cairn_checkpoint::Error::Encoding { .. },
                ..
            }
        );
        if damaged || !matches!(err, Error::Store { .. }) {
            return None;
        }
        let (before, mut after) = attempted?;
        match self.jobs.show(id).await {
            Ok(current) => {
                after.version = current.version;
                if current != after {
                    return None;
                }
                tracing::warn!(target: names::DETAIL_TARGET, job_id = %id, error = %err, "the job store failed to answer a write of a run's outcome that it made: the outcome stands, its trip or completion is audited, and the error is returned");
                Some((before, after))
            }
            Err(read) => {
                tracing::warn!(target: names::DETAIL_TARGET, job_id = %id, error = %err, read_back = %read, "the job store failed to answer a write of a run's outcome, and the job cannot be read back: whether the outcome (a trip, a completion) was recorded is unknown until the job is read again");
                None
            }
        }
    }

    /// Runs due jobs until `stop` completes: looks at the jobs, starts the due ones (up to
    /// [`SchedulerConfig::max_running_jobs`] runs at once, never a second run of a job whose
    /// run goes on), and looks again when a run ends, when the next job is due, or after
    /// `poll_interval`, whichever comes first. A long run holds one place and delays nothing
    /// else.
    ///
    /// It sleeps on tokio's real timer even with a `ManualClock`; tests call `tick` instead,
    /// or have runs end (each end is followed by a look).
    ///
    /// While the runner says it is stopping ([`JobRunner::is_stopping`]) no job is looked at
    /// or started; the runs going on go on. `stop` is watched throughout: when it completes
    /// while runs go on, their futures are dropped at once, exactly as if this future were
    /// dropped (see below). To let runs finish, make `stop` complete only once they have (the
    /// CLI's `cairn scheduler` waits for its runs to end or park before its `stop` completes).
    ///
    /// # Errors
    ///
    /// The first error of a look or of a job's run (as for `tick`). No job starts after it;
    /// the runs going on are not dropped: the runner is told
    /// ([`JobRunner::scheduler_failed`]), and the error is returned once they have ended, or
    /// when `stop` completes first (the host decides whether to restart).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, as [`Scheduler::tick`]: dropping it drops the runs going on, whose
    /// outcomes are then not recorded (the jobs stay claimed, so those ticks are not run
    /// again; a one-shot job is held for a person `one_shot_retry` after its claim, see
    /// [`Scheduler`]). `stop` completing
    /// does the same to the runs going on.
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
    /// use tokio::sync::Notify;
    ///
    /// /// Fails every run, and says when it has run.
    /// #[derive(Debug)]
    /// struct FailsAndTells(Arc<Notify>);
    /// #[async_trait]
    /// impl JobRunner for FailsAndTells {
    ///     async fn run(&self, _: &RunRequest) -> Result<RunSucceeded, RunFailed> {
    ///         self.0.notify_one();
    ///         Err(RunFailed::new("database unreachable"))
    ///     }
    /// }
    ///
    /// // `run_until` sleeps on tokio's timer between looks, so the runtime needs one.
    /// # let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build();
    /// # runtime.unwrap().block_on(async {
    /// let ran = Arc::new(Notify::new());
    /// let clock = ManualClock::new(Timestamp(0));
    /// let scheduler = Scheduler::new(
    ///     Arc::new(MemoryJobStore::new()),
    ///     Arc::new(FailsAndTells(Arc::clone(&ran))),
    ///     Arc::new(clock.clone()),
    /// );
    /// let id = JobId::new("sync")?;
    /// let every_minute = Schedule::every(Duration::from_secs(60))?;
    /// scheduler.jobs().add(NewJob::new(id.clone(), "sync", every_minute, "sync.toml")).await?;
    /// clock.advance(Duration::from_secs(60));
    /// // Stop once the runner has run. The memory store never makes the job's future wait, so
    /// // the failure is recorded in the same poll, before `run_until` looks at `stop` again.
    /// scheduler.run_until(ran.notified()).await?;
    /// let job = scheduler.jobs().show(&id).await?;
    /// assert_eq!(job.consecutive_errors, 1);
    /// assert_eq!(job.last_error.as_deref(), Some("database unreachable"));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn run_until(&self, stop: impl Future<Output = ()>) -> Result<()> {
        /// What woke the loop.
        enum Woken {
            Stop,
            Ended(Result<()>),
            Due,
        }
        let mut stop = std::pin::pin!(stop);
        let mut runs = JobRuns::default();
        let mut failed: Option<Error> = None;
        let mut look_now = true;
        let mut wait = Duration::ZERO;
        loop {
            let stopping = failed.is_some() || self.runner.is_stopping();
            if look_now && !stopping {
                look_now = false;
                let mut look = std::pin::pin!(self.look());
                // The runs going on are polled during the look too, so a slow listing does not
                // hold up their bookkeeping.
                let looked = loop {
                    let woken = tokio::select! {
                        biased;
                        () = &mut stop => Woken::Stop,
                        looked = &mut look => break looked,
                        Some((_, (_, result))) = runs.next(), if !runs.is_empty() => Woken::Ended(result),
                    };
                    match woken {
                        Woken::Stop => return failed.map_or(Ok(()), Err),
                        Woken::Ended(result) => {
                            if let Err(err) = result {
                                self.failed(&mut failed, err, &runs);
                            }
                            // This look may have passed over the job that ended.
                            look_now = true;
                        }
                        Woken::Due => {}
                    }
                };
                if failed.is_some() {
                    // A run's error came during the look: nothing more starts.
                    if let Err(err) = looked {
                        self.failed(&mut failed, err, &runs);
                    }
                    continue;
                }
                match looked {
                    Ok(look) => {
                        wait = look.wait(self.config.poll_interval.max(MIN_INTERVAL));
                        for (job, due) in look.due {
                            if runs.len() >= self.max_running_jobs() || self.runner.is_stopping() {
                                // Left due: looked at again when a run ends.
                                break;
                            }
                            self.start(&mut runs, 0, job, due);
                        }
                    }
                    Err(err) => self.failed(&mut failed, err, &runs),
                }
                continue;
            }
            if failed.is_some() && runs.is_empty() {
                return failed.map_or(Ok(()), Err);
            }
            let woken = tokio::select! {
                biased;
                () = &mut stop => Woken::Stop,
                Some((_, (_, result))) = runs.next(), if !runs.is_empty() => Woken::Ended(result),
                () = tokio::time::sleep(wait), if !stopping => Woken::Due,
            };
            match woken {
                Woken::Stop => return failed.map_or(Ok(()), Err),
                Woken::Ended(result) => {
                    if let Err(err) = result {
                        self.failed(&mut failed, err, &runs);
                    }
                    // A place is free, and the job that ended may be due again.
                    look_now = true;
                }
                Woken::Due => look_now = true,
            }
        }
    }

    /// Whether `job` (as listed, or as this scheduler last wrote it) is still stored exactly
    /// so, checked right before a write that puts it back whole or deletes it. A job gone
    /// or changed is `Ok(false)`, and the next look sees it as it is now; one damaged
    /// meanwhile is skipped and reported (see `unless_damaged`).
    ///
    /// The write itself is a compare-and-swap at `job.version`, and a version now names
    /// one incarnation of a job: the store never gives a job deleted and added again under
    /// the same id a version the old one had (`JobStore`, "Versions"). So a job replaced
    /// between this read and the write makes the write conflict; it can no longer overwrite
    /// (or delete) the new job in place of the old one (until that rule, the new job could
    /// stand at the very version read, and this check narrowed the gap to one store call).
    /// The check stays for what the version cannot say: a job that a build from before that
    /// rule deleted and added again, sharing the store, may still reuse a version.
    async fn is_still_stored(&self, job: &Job, report: &mut TickReport) -> Result<bool> {
        match self.jobs.show(&job.id).await {
            Ok(current) if current == *job => Ok(true),
            Ok(_) | Err(Error::NotFound { .. }) => {
                tracing::debug!(target: names::DETAIL_TARGET, job_id = %job.id, "job changed, or was deleted and added again, since the scheduler read it; left to the next look");
                Ok(false)
            }
            Err(err) => self.unless_damaged(&job.id, err, report).await,
        }
    }

    /// `Ok(false)` when `err`, met while the tick handled job `id`, says that the job was
    /// damaged after it was listed (the store moved it aside, or it no longer decodes):
    /// the job is skipped like one deleted meanwhile, and reported as a listing would
    /// report it, in `report`. Any other error is returned.
    ///
    /// A job store reports a damaged entry it met in `get` or `put` as an `Encoding` error
    /// (after auditing it as `Quarantined` or `LeftInPlace`); its audit record says where
    /// the entry went.
    async fn unless_damaged(
        &self,
        id: &JobId,
        err: Error,
        report: &mut TickReport,
    ) -> Result<bool> {
        let damaged_in_store = match &err {
            // A newer build rewrote the job meanwhile: it is left to that build, skipped like
            // a job changed meanwhile; the next look reports it.
            Error::NewerFormat { .. } => {
                tracing::warn!(target: names::DETAIL_TARGET, job_id = %id, error = %err, "a newer cairn build rewrote a job while this scheduler handled it; it is left to that build and skipped (its run's outcome, if any, is not recorded)");
                return Ok(false);
            }
            Error::BadDocument { .. } => false,
            Error::Store {
                source: cairn_checkpoint::Error::Encoding { .. },
                ..
            } => true,
            _ => return Err(err),
        };
        tracing::warn!(target: names::DETAIL_TARGET, job_id = %id, error = %err, "a job was damaged while the scheduler handled it; it is skipped (its run's outcome, if any, is not recorded) and the other jobs go on");
        let entry = if damaged_in_store {
            self.damage_audited(id).await
        } else {
            None
        };
        match entry {
            Some(entry) => {
                if matches!(entry.place, LeftOutPlace::Quarantined { .. }) {
                    warn_left_out(&entry);
                    report.left_out.push(entry);
                }
                // Left in place: every listing reports it while it stays, the next one first.
            }
            None => report.unreadable.push((id.clone(), err.to_string())),
        }
        Ok(false)
    }

    /// The left-out entry that job `id`'s audit log records as its last damage, if the log
    /// can be read and has one ([`Jobs::last_damage`]).
    async fn damage_audited(&self, id: &JobId) -> Option<LeftOutJob> {
        match self.jobs.last_damage(id).await {
            Ok(damage) => damage.map(|damage| damage.entry),
            Err(err) => {
                tracing::debug!(target: names::DETAIL_TARGET, job_id = %id, error = %err, "cannot read the damaged job's audit log");
                None
            }
        }
    }
}

/// What one look at the jobs found.
#[derive(Debug, Default)]
struct Look {
    /// When it looked.
    now: Timestamp,
    /// The unreadable jobs, those the store left out, and the schedules that ran out.
    report: TickReport,
    /// The due jobs, in listing order, with the time each is due for.
    due: Vec<(Job, Timestamp)>,
    /// The earliest time an active job not due yet comes due.
    next: Option<Timestamp>,
}

impl Look {
    /// How long to wait for the next job to come due, at most `poll`. Due jobs left waiting
    /// for a place, and jobs whose runs go on, are not waited for: a run's end wakes the
    /// loop.
    fn wait(&self, poll: Duration) -> Duration {
        self.next.map_or(poll, |next| {
            Duration::from_millis(next.0.saturating_sub(self.now.0)).min(poll)
        })
    }
}

/// One job's part of a tick: its claim, its runs and their recording.
type JobRun<'a> = Pin<Box<dyn Future<Output = (TickReport, Result<()>)> + Send + 'a>>;

/// The job runs going on, each with its job's place in the listing. They are polled by the
/// task that awaits `tick` or `run_until` rather than spawned, so they need not be
/// `'static`, and dropping that future drops them.
#[derive(Default)]
struct JobRuns<'a> {
    runs: Vec<(usize, JobRun<'a>)>,
}

impl<'a> JobRuns<'a> {
    fn len(&self) -> usize {
        self.runs.len()
    }

    fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    fn push(&mut self, order: usize, run: JobRun<'a>) {
        self.runs.push((order, run));
    }

    /// The next run to end, with its place; `None` at once when none goes on.
    async fn next(&mut self) -> Option<(usize, (TickReport, Result<()>))> {
        if self.runs.is_empty() {
            return None;
        }
        std::future::poll_fn(|cx| {
            // Few runs (`max_running_jobs`): polling each at every wake costs little.
            for index in 0..self.runs.len() {
                if let Poll::Ready(result) = self.runs[index].1.as_mut().poll(cx) {
                    let (order, _) = self.runs.remove(index);
                    return Poll::Ready(Some((order, result)));
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// Marks a job as having a run going on in its scheduler, until dropped: when the run's
/// outcome is recorded, or its future is dropped.
struct InFlight {
    set: Arc<Mutex<HashSet<JobId>>>,
    id: JobId,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// `detail` with the fields of `note` (an object) added, when there is one.
fn with_note(mut detail: serde_json::Value, note: Option<&serde_json::Value>) -> serde_json::Value {
    if let (Some(fields), Some(serde_json::Value::Object(extra))) = (detail.as_object_mut(), note) {
        fields.extend(extra.clone());
    }
    detail
}

/// Logs, as a WARN, that the job store left `entry` out.
fn warn_left_out(entry: &LeftOutJob) {
    tracing::warn!(
        target: names::DETAIL_TARGET,
        job = %entry.name,
        place = %entry.place,
        reason = %entry.reason,
        "the job store left job {} out of its listing ({}): {}; it does not run. {}",
        entry.name,
        entry.reason,
        entry.place,
        what_to_do_about(entry)
    );
}

/// Polls a runner's future and turns a panic inside it into `Err(payload)`, so a panicking
/// runner counts as a failed run for the breaker instead of unwinding through `tick` (which
/// left the job claimed, its outcome unrecorded, and its breaker blind to the failure).
struct CatchPanic<F>(F);

impl<F: Future + Unpin> Future for CatchPanic<F> {
    type Output = std::thread::Result<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// The longest `last_error` kept in a job, in bytes (before the `…` that marks a cut).
const MAX_LAST_ERROR_BYTES: usize = 4096;

/// A run's error message as the job keeps it: at most [`MAX_LAST_ERROR_BYTES`], cut on a
/// character boundary and marked with `…`. A runner may return a whole log as its message;
/// stored whole, it would be rewritten into the job document (and the trip's audit record
/// and the `NeedsForce` message) on every failure.
fn capped_error(message: &str) -> String {
    cap(message, MAX_LAST_ERROR_BYTES)
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}
