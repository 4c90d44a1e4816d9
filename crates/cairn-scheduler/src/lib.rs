//! Recurring cairn jobs with a persistent circuit breaker and a force-gated resume.
//!
//! A [`Job`] runs a workflow on a [`Schedule`] (cron with optional seconds in a [`Zone`], a
//! fixed interval, or once). [`Scheduler::tick`] starts every due job through the injected
//! [`JobRunner`] (several at once, see below) and keeps the job's bookkeeping; [`Jobs`] holds
//! the operator's operations (`add`, `show`, `list`, `pause`, `resume`, `delete`,
//! `delete_unreadable`, `audit_log`). Time comes from an injected [`Clock`], so tests move a
//! [`ManualClock`] instead of sleeping.
//!
//! # Circuit breaker
//!
//! When a dependency is down, a job that fails again and again must stop. After
//! `max_consecutive_errors` failed runs in a row (default 10, per job) the job becomes
//! [`JobStatus::Failed`] and its `next_run_at` is cleared. That state is stored like any
//! other, so it survives restarts, and only `resume(id, force = true)` revives the job
//! (resetting its error count and recomputing `next_run_at`). A success resets the count.
//! Trips and revives are audited and emitted as telemetry (`breaker_tripped`,
//! `job_revived`).
//!
//! # Storage: why a sibling port
//!
//! Jobs live behind `cairn_checkpoint::JobStore`, a small port next to the run port
//! (`CheckpointerFactory`), rather than inside it: a job is one small document updated by
//! compare-and-swap on a version, with no journal or writer lock. The store keeps versioned
//! JSON documents whose schema is this crate's [`Job`] (format version
//! [`JOB_FORMAT_VERSION`]; a later build's fields at the same version are kept across this
//! build's writes, and a later version is refused, never rewritten), plus a per-job audit
//! list. Adapters: `MemoryJobStore`
//! (in `cairn-checkpoint`), `FileJobStore` (`cairn-checkpoint-file`: one JSON file per job,
//! written atomically, mode 0600) and `SledJobStore` (`cairn-checkpoint-sled`). All three
//! pass the job-store conformance cases. Audit records of jobs go to that per-job list and
//! not to the run audit (`AuditRecord` is about runs and has no breaker actions).
//!
//! # Jobs at once
//!
//! One scheduler runs several jobs at once, up to [`SchedulerConfig::max_running_jobs`]
//! (default [`DEFAULT_MAX_RUNNING_JOBS`]; 1 runs them one after another), so a two-hour
//! backup does not silence a one-minute health check. The design, kept small:
//!
//! - Each due job becomes one future: its claim (compare-and-swap on the job's version, so
//!   two schedulers never start one tick twice), its run or runs, and the recording of their
//!   outcomes. The futures are polled together by the future of `tick` or `run_until`, not
//!   spawned, so dropping that future still drops every run, as before.
//! - A job never has two runs of its own at once: the scheduler (and its clones) keeps the
//!   set of jobs whose future goes on, and a look at the jobs passes them over. A tick of
//!   such a job that came meanwhile is handled once its run has ended, by the catch-up rules,
//!   as after downtime. Across schedulers, the runner keeps one job's runs apart (the CLI
//!   holds a lock per job).
//! - [`Scheduler::tick`] starts every due job (up to the limit at once, the rest as places
//!   free up) and returns when all have ended; its report lists them in listing order.
//!   [`Scheduler::run_until`] keeps its runs going across looks: it looks at the jobs when a
//!   run ends, when the next job is due, or after the poll interval, and starts what is due
//!   while places are free.
//! - Stopping: while [`JobRunner::is_stopping`] says so, nothing new is claimed or started;
//!   the runs going on are left to the runner's shutdown (the host's `stop` decides when
//!   `run_until` drops them, as before).
//! - An error (the job store failed) starts nothing more, but does not drop the runs going
//!   on: the runner is told ([`JobRunner::scheduler_failed`]) so it may end them as on a
//!   shutdown, their outcomes are recorded where the store still lets them, and the first
//!   error is returned once they have ended. `tick` returns it as a [`TickFailed`], which
//!   also holds the tick's report (every run that ended, the failing job's included, and
//!   the trips) and the errors met after the first, so one job's store error never hides
//!   what the other jobs did.
//!
//! # Missed ticks
//!
//! After downtime a job may have many schedule times in the past. By default
//! ([`CatchUp::One`]) it runs once and then continues on its schedule; [`CatchUp::Skip`]
//! and [`CatchUp::All`] are the alternatives ([`SchedulerConfig::catch_up`]).
//!
//! # Wiring the executor
//!
//! The scheduler's core never names the executor: it calls the injected [`JobRunner`]. With
//! the `executor` feature, `ExecutorRunner` is the real one: it takes the host's
//! `Arc<dyn CheckpointerFactory>`, handler registry and executor settings plus a `PlanSource`
//! (how a job's workflow and input become a `RunPlan`; the CLI parses the workflow file),
//! and drives every run as a fresh run with a fresh run id: the scheduler never resumes a
//! failed or interrupted run (that stays an explicit `cairn resume <run>`). A run that fails
//! or cannot start returns `Err(RunFailed)`, one error for the breaker; a run a shutdown cut
//! short returns `RunFailed::interrupted`, which is not counted. A panic in a runner is
//! caught and counted as a failed run.
//!
//! # Runs stopped by their state store
//!
//! A run can stop because its run store failed under it (a full disk, a failed write or
//! fsync): the task did not fail, the store did. The design, kept small:
//!
//! - `ExecutorRunner` returns such a run as [`RunFailed::store_failed`], with the run id and
//!   a message that names the store's error and says what is stored (`failed` when the
//!   executor could record that, else still `running`). The same holds for a run whose end
//!   could not be recorded.
//! - The scheduler counts it toward the job's circuit breaker like any failed run: storage
//!   trouble that keeps coming back trips the breaker instead of going unseen.
//! - In the same job-store write that counts it, the scheduler notes the run on the job
//!   ([`Job::store_failed_runs`], the latest [`MAX_STORE_FAILED_RUNS`]), so a later scheduler
//!   that finds the run still `running` reads why ([`Job::store_failure`]) and says so,
//!   instead of guessing that its driver was killed. The run store itself is not written:
//!   it is the store that just failed.
//! - The run is never resumed by the scheduler: it waits for `cairn resume <run>` once the
//!   store is fixed, as after `cairn run` stopped the same way.
//! - When the job store cannot be written either (one full disk under both), nothing can be
//!   recorded: `tick` returns the `Store` error (in a `TickFailed`) and the host stops (`cairn scheduler` exits
//!   5 after printing the run's store failure, once the other jobs' runs going on have ended
//!   or been cut short as on a shutdown: see "Jobs at once"). The job's count does not move
//!   then, and a later scheduler can only say that the run's driver stopped without
//!   recording why.
//!
//! # Jobs the store left out
//!
//! A job store leaves damaged entries out of its listings: it moves them aside
//! (quarantined) or, when it cannot, leaves them in place (`JobListing::left_out`). Such a job
//! silently stops running, so the scheduler says so: each tick's [`TickReport::left_out`]
//! holds the entries it had not reported yet, each logged once as a WARN naming the entry,
//! where it is and what to do ([`what_to_do_about`]); [`LeftOutTracker`] is that "once".
//! [`Jobs::list_readable`] gives all of them.

mod clock;
mod error;
#[cfg(feature = "executor")]
mod executor_runner;
mod job;
mod jobs;
mod left_out;
mod runner;
mod schedule;
mod scheduler;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
#[cfg(feature = "executor")]
pub use executor_runner::{ExecutorRunner, PlanSource};
pub use job::{
    ClaimedRun, DEFAULT_MAX_CONSECUTIVE_ERRORS, JOB_FORMAT_VERSION, Job, JobStatus,
    MAX_STORE_FAILED_RUNS, NewJob, StoreFailedRun,
};
pub use jobs::{JobDamage, Jobs, MAX_NAME_BYTES, ReadableJobs, UnreadableJob};
pub use left_out::{LeftOutTracker, what_to_do_about};
pub use runner::{JobRunner, RunFailed, RunRequest, RunSucceeded};
pub use schedule::{MAX_INTERVAL, MIN_INTERVAL, NamedZone, Schedule, TZ_DATABASE_VERSION, Zone};
pub use scheduler::{
    CatchUp, DEFAULT_MAX_RUNNING_JOBS, RunRecord, Scheduler, SchedulerConfig, TickFailed,
    TickReport,
};
