//! `cairn scheduler`: runs due jobs in the foreground until Ctrl-C or SIGTERM.
//!
//! Each due job's workflow file is read and parsed again ([`WorkflowFiles`], the
//! scheduler's `PlanSource`), recorded in the run's output folder like `cairn run` does (so
//! `cairn resume <run>` works on a failed scheduled run), and driven as a fresh run by the
//! scheduler's `ExecutorRunner` with the `shell` handler. Runs of job `J` use the scope
//! `job-J`, so they never mix with `cairn run`'s runs of the same workflow.
//!
//! # Jobs at once
//!
//! Due jobs run at the same time, up to `--max-running-jobs` of them (default 4; the
//! scheduler crate's "Jobs at once" has the design), so a long run no longer holds up the
//! other jobs' ticks. A job never runs twice at once: within this process the scheduler
//! passes over a job whose run goes on, and across processes the lock on the job's runs
//! (`ShellJobs::lock_job`) and the check for a run of it still driven refuse a second run
//! (`run_not_started`). `--concurrency` is per run: each run gets its own executor with that
//! many tasks at once, so up to `--max-running-jobs` times `--concurrency` commands run at
//! once, and the open-file cap is shared out among the runs
//! ([`crate::open_files::cap_concurrency_per_run`]). A shared limit would have to hold a
//! task that the executor counts as started until another run's task ends, and its timeout
//! would run out while it waited. The Ctrl-C, `--grace` and process-group handling below
//! apply to every run going on.
//!
//! # Storage trouble
//!
//! A run whose state store fails under it (a full disk, a failed write) is reported like
//! `cairn run` reports it: `job J: run R stopped: its state store failed, not a task: ...` on
//! stdout (`run_store_failed` with `--json`) and, on stderr, that no task failed and the
//! `cairn resume R` to run once the store is fixed. It counts toward the job's circuit
//! breaker, and is noted on the job, so a later scheduler that finds it still `running`
//! says that its store failed rather than asking whether it was killed. When the job store
//! fails (it cannot be written either, say), the scheduler stops as after a first Ctrl-C
//! ([`JobRunner::scheduler_failed`]): no new run starts, the runs going on get `--grace` to
//! finish their running tasks (a run cut short is left resumable, its resume command
//! printed), and then it exits 5. Dropping those runs at once instead would leave them, and
//! the commands they started, as after a crash. A run the store could not begin is a
//! counted failure that names no run (nothing was stored).
//!
//! A change the scheduler stored whose audit record cannot be written (`Unaudited`: a trip,
//! a completion, a `--delete-after-run` delete) stops the scheduler the same way, exit 5,
//! with a message that names the change and says it stands; a trip is also said at once
//! (`breaker_tripped` with `audited: false`), with its revive command. Keeping the other
//! jobs going was weighed and refused: the audit log lives in the same job store, and an
//! append that failed (often its fsync, which is never retried) means that store is
//! failing, so every further claim and outcome would be written with its record missing,
//! an audit log with silent holes. Stopping leaves one hole, named on exit. A run whose damaged state a
//! listing moved to quarantine while the scheduler ran, and a damaged run the run store could
//! not move, are each named once per scheduler process, as `cairn runs` names them.
//!
//! # Stopping
//!
//! The first Ctrl-C (or SIGTERM) stops new runs and lets the running tasks of every run going
//! on finish within `--grace`; a run cut short is left resumable (its resume command is
//! printed) and is NOT counted as a failure for the job's circuit breaker. The scheduler loop
//! is stopped only once every run has ended or been cut short, and at a point where no job
//! bookkeeping is half-written (`Quiet`). A second Ctrl-C ends the grace at once: running
//! commands are stopped and their attempts given back (they rerun under the same attempt
//! number on resume), and the scheduler stops as after the first. A third exits 4 at once,
//! leaving the runs as after a crash. After a job-store failure started the stop, the first
//! Ctrl-C counts as the second.

use std::collections::{BTreeSet, HashSet};
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use cairn_checkpoint::{
    JobAuditAction, JobAuditRecord, JobId, JobListing, JobStore, RunError, RunFilter, RunId,
    RunMeta, RunStatus, StoredJob, VersionConflict,
};
use cairn_executor::{ExecutorConfig, Registry, RunPlan, RunSignals};
use cairn_scheduler::{
    DEFAULT_MAX_RUNNING_JOBS, ExecutorRunner, Job, JobRunner, LeftOutTracker, PlanSource,
    RunFailed, RunRequest, RunSucceeded, Scheduler, SchedulerConfig, StoreFailedRun, SystemClock,
};
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

use crate::app::format_timestamp;
use crate::cli::{EXIT_INTERRUPTED, EXIT_OK, ExecArgs, StoreArgs};
use crate::duration::format_duration;
use crate::jobs::{
    adapter_flag, existing_state_root, job_error, job_error_text, left_out_json, left_out_text,
    open_job_store,
};
use crate::out::{eoutln, escape_controls, outln};
use crate::shell::{Leftover, ProcessGroups, SHELL_KIND, ShellHandler, live_leftovers};
use crate::store::{StateDir, absolute};
use crate::workflow;

/// The exit codes of `cairn scheduler`.
pub const SCHEDULER_AFTER_HELP: &str = "\
Jobs at once: due jobs run at the same time, up to --max-running-jobs of them, so a long run
does not hold up the other jobs' ticks; jobs due while every place is taken start as places
free up. A job never runs twice at once: a tick of it that comes while its own run goes on is
handled when that run ends, as after downtime (it runs once). --concurrency is per run: each
run runs up to that many tasks at once, so up to --max-running-jobs x --concurrency commands
may run at once. Ctrl-C and --grace apply to every run going on.

Exit codes:
  0  stopped by Ctrl-C or SIGTERM; no run was cut short
  2  bad usage (for example no state folder, --poll under 1s, or --max-running-jobs 0)
  4  stopped by Ctrl-C or SIGTERM while runs were going: each run cut short is left resumable
     and the command to resume it was printed (a second Ctrl-C stops running commands at once
     and also exits 4; a third exits 4 at once, leaving runs as after a crash)
  5  the job store failed (also when only the audit record of a change it stored, such as a
     breaker trip, could not be written: the change stands and is named): no new run starts,
     the runs going on are stopped as by a first Ctrl-C (their running tasks get --grace; a
     run cut short is left resumable and its resume command printed), then the scheduler
     exits 5 (start it again once the store is fixed). A
     run whose own state store failed does not stop the scheduler: it is reported with its
     resume command and counts as a failed run for the job's circuit breaker
A stored job the job store had to leave out (damaged: moved to the quarantine folder, or left
in place because it could be neither read nor moved) does not run: a warning on stderr names
it, says where it is and what to do, once per job (with --json, a `job_left_out` line on
stdout). So does a job a newer build of cairn wrote: this build leaves it exactly as it is
(never runs, changes or deletes it); run the newer build's scheduler for it.";

/// `cairn scheduler`.
#[derive(Debug, Clone, Args)]
pub struct SchedulerArgs {
    /// The longest wait between looks at the jobs, so jobs added meanwhile are noticed; at
    /// least 1s.
    #[arg(long, default_value = "30s", value_name = "DURATION", value_parser = parse_poll)]
    pub poll: Duration,
    /// Most jobs whose runs go on at once (at least 1; 1 runs due jobs one after another). A
    /// job never runs twice at once. --concurrency applies to each run, so up to N x
    /// --concurrency tasks may run at once.
    #[arg(long, default_value_t = DEFAULT_MAX_RUNNING_JOBS, value_name = "N", value_parser = parse_max_running_jobs)]
    pub max_running_jobs: usize,
    /// Store settings [default state folder: `.cairn/` in the current folder].
    #[command(flatten)]
    pub store: StoreArgs,
    /// Execution settings of each run.
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// The shortest `--poll`: the scheduler floors its poll interval at one second, so a shorter
/// value would silently mean one second.
const MIN_POLL: Duration = Duration::from_secs(1);

fn parse_poll(text: &str) -> Result<Duration, String> {
    let poll = crate::duration::parse_duration(text).map_err(|e| e.to_string())?;
    if poll < MIN_POLL {
        return Err(format!(
            "{text} is shorter than the scheduler's shortest poll interval, 1s"
        ));
    }
    Ok(poll)
}

fn parse_max_running_jobs(text: &str) -> Result<usize, String> {
    let jobs: usize = text
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number of jobs"))?;
    if jobs == 0 {
        return Err(
            "the scheduler must be able to run at least one job; give 1 to run due jobs one after another"
                .to_owned(),
        );
    }
    Ok(jobs)
}

/// The scope of job `id`'s runs.
pub fn job_scope(id: &JobId) -> String {
    format!("{}{id}", crate::store::JOB_SCOPE_PREFIX)
}

/// Prints the scheduler's lines: plain text, or JSON lines with `--json`.
#[derive(Debug, Clone)]
struct Lines {
    json: bool,
    /// The `--state-dir ... [--adapter ...]` flags printed commands carry.
    store_flags: String,
}

impl Lines {
    fn say(&self, text: &str, event: serde_json::Value) {
        if self.json {
            outln!("{event}");
        } else {
            outln!("{text}");
        }
    }
}

/// Where the scheduler loop is, so it is stopped only where dropping it loses nothing: no
/// job-store operation in flight, and no run going. Runs parked after the stop (cut short, or
/// not begun) are not going: their futures wait to be dropped.
#[derive(Debug, Default)]
struct Quiet {
    state: Mutex<QuietState>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct QuietState {
    stopping: bool,
    /// Runs going on: several at once (`--max-running-jobs`).
    runs: usize,
    store_ops: usize,
    interrupted: usize,
}

impl Quiet {
    fn lock(&self) -> MutexGuard<'_, QuietState> {
        // The state is plain counters, valid even if a holder panicked.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn change(&self, f: impl FnOnce(&mut QuietState)) {
        f(&mut self.lock());
        self.changed.notify_one();
    }

    /// Completes once a stop was asked for and the loop may be dropped.
    async fn stopped(&self) {
        loop {
            {
                let s = self.lock();
                // Every run must have ended or parked: a run parked (cut short) while
                // others still had grace must not have them dropped with it.
                if s.stopping && s.runs == 0 && s.store_ops == 0 {
                    return;
                }
            }
            self.changed.notified().await;
        }
    }

    /// Never completes: a run that must not start (or whose outcome must not be recorded)
    /// waits here until the loop is dropped. It counts as no run going.
    async fn park(&self) -> Infallible {
        std::future::pending::<Infallible>().await
    }
}

/// The job store, decorated: counts operations in flight for [`Quiet`], prints the
/// circuit-breaker trips and one-shot completions the scheduler audits, and warns once about
/// each stored job a listing left out.
#[derive(Debug)]
struct WatchedJobs {
    inner: Arc<dyn JobStore>,
    quiet: Arc<Quiet>,
    lines: Lines,
    left_out: LeftOutTracker,
}

/// Counts one store operation while it is in flight.
struct InFlight<'a>(&'a Quiet);

impl<'a> InFlight<'a> {
    fn new(quiet: &'a Quiet) -> Self {
        quiet.change(|s| s.store_ops += 1);
        InFlight(quiet)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.change(|s| s.store_ops -= 1);
    }
}

#[async_trait]
impl JobStore for WatchedJobs {
    async fn get(&self, id: &JobId) -> cairn_checkpoint::Result<Option<StoredJob>> {
        let _op = InFlight::new(&self.quiet);
        self.inner.get(id).await
    }

    async fn listing(&self) -> cairn_checkpoint::Result<JobListing> {
        let _op = InFlight::new(&self.quiet);
        let listing = self.inner.listing().await?;
        // The scheduler lists every tick: say it once per entry, not every tick.
        for entry in self.left_out.news(&listing.left_out) {
            if self.lines.json {
                outln!("{}", left_out_json(&entry));
            } else {
                eoutln!("warning: {}", left_out_text(&entry));
            }
        }
        Ok(listing)
    }

    async fn put(
        &self,
        id: &JobId,
        expected: Option<u64>,
        document: &serde_json::Value,
    ) -> cairn_checkpoint::Result<Result<u64, VersionConflict>> {
        let _op = InFlight::new(&self.quiet);
        self.inner.put(id, expected, document).await
    }

    async fn delete(
        &self,
        id: &JobId,
        expected: u64,
    ) -> cairn_checkpoint::Result<Result<(), VersionConflict>> {
        let _op = InFlight::new(&self.quiet);
        self.inner.delete(id, expected).await
    }

    async fn append_audit(&self, record: &JobAuditRecord) -> cairn_checkpoint::Result<()> {
        let _op = InFlight::new(&self.quiet);
        let appended = self.inner.append_audit(record).await;
        let id = &record.job_id;
        match record.action {
            // Said even when its record could not be written: the scheduler audits a trip
            // only once it is stored, so it stands, and an operator must hear of it (the
            // failed append then stops the scheduler, exit 5, saying the record is missing).
            JobAuditAction::BreakerTripped => self.lines.say(
                &format!(
                    "job {id}: {}; the job is failed until revived with: cairn jobs resume {id} --force{}{}",
                    if record.detail["unrecorded_run"] == true {
                        // Held by the scheduler, not tripped: a person checks the run first.
                        "an earlier run of this one-shot job has no recorded outcome (the scheduler stopped, or the job store failed, before recording it) and may have completed, so the job is not run again by itself: check its runs first".to_owned()
                    } else {
                        format!(
                            "circuit breaker tripped after {} failed run(s) in a row",
                            record.detail["consecutive_errors"]
                        )
                    },
                    self.lines.store_flags,
                    if appended.is_ok() {
                        ""
                    } else {
                        " (its audit record could not be written)"
                    }
                ),
                serde_json::json!({
                    "event": "breaker_tripped", "job_id": id.as_str(), "message": record.message,
                    "detail": record.detail, "audited": appended.is_ok(),
                }),
            ),
            // The other changes are said once audited, as before: a failed append stops the
            // scheduler with an error that names the change and says that it stands.
            _ if appended.is_err() => {}
            JobAuditAction::Completed if record.detail["schedule_ran_out"] == true => {
                self.lines.say(
                    &format!(
                        "job {id}: completed: its schedule has no time left after its last run"
                    ),
                    serde_json::json!({
                        "event": "job_completed", "job_id": id.as_str(), "schedule_ran_out": true,
                    }),
                )
            }
            JobAuditAction::Completed => self.lines.say(
                &format!("job {id}: one-shot job completed"),
                serde_json::json!({"event": "job_completed", "job_id": id.as_str()}),
            ),
            // A hand-edited job the scheduler repaired: say so, as the WARN is not shown.
            JobAuditAction::Resumed if record.detail["rescheduled"] == true => {
                let next = record.detail["next_run_at"]
                    .as_u64()
                    .map_or_else(|| "unknown".to_owned(), format_timestamp);
                self.lines.say(
                    &format!(
                        "job {id}: it was active with no next run time stored (its document was edited); next run set from its schedule: {next}"
                    ),
                    serde_json::json!({
                        "event": "job_rescheduled", "job_id": id.as_str(),
                        "next_run_at": record.detail["next_run_at"],
                    }),
                )
            }
            JobAuditAction::Deleted => self.lines.say(
                &format!("job {id}: deleted ({})", record.message),
                serde_json::json!({"event": "job_deleted", "job_id": id.as_str(), "message": record.message}),
            ),
            _ => {}
        }
        appended
    }

    async fn read_audit(&self, id: &JobId) -> cairn_checkpoint::Result<Vec<JobAuditRecord>> {
        let _op = InFlight::new(&self.quiet);
        self.inner.read_audit(id).await
    }
}

/// The scheduler's `PlanSource`: reads and parses the job's workflow file, gives the run a
/// fresh id, and records the workflow text with the run (as `cairn run` does) so
/// `cairn resume <run>` rebuilds the same plan.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::JobId;
/// use cairn_cli::scheduler::WorkflowFiles;
/// use cairn_cli::store::{Adapter, StateDir};
/// use cairn_queue::Timestamp;
/// use cairn_scheduler::{PlanSource, RunRequest};
///
/// let dir = tempfile::tempdir()?;
/// let file = dir.path().join("hello.toml");
/// std::fs::write(&file, "name = \"hello\"\n[[task]]\nid = \"greet\"\nrun = \"echo hi\"\n")?;
/// let state = StateDir::open(&dir.path().join(".cairn"), Adapter::File)?;
/// let plans = WorkflowFiles::new(state.clone());
/// let request = RunRequest::new(
///     JobId::new("greeter")?,
///     file.display().to_string(),
///     "weekly",
///     Timestamp(0),
///     Timestamp(0),
/// );
/// let plan = plans.plan(&request)?;
/// assert_eq!((plan.scope.as_str(), plan.input.as_str()), ("job-greeter", "weekly"));
/// // The workflow is recorded with the run, so `cairn resume <run>` rebuilds the same plan.
/// let run_id = plan.run_id.expect("a fresh run id");
/// assert_eq!(state.load_origin(&run_id)?.name, "hello");
///
/// let mut missing = request.clone();
/// missing.workflow = "/no/such/file.toml".to_owned();
/// assert!(plans.plan(&missing).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct WorkflowFiles {
    state: StateDir,
    lines: Option<Lines>,
}

impl WorkflowFiles {
    /// Plans over the runs of `state`.
    pub fn new(state: StateDir) -> Self {
        WorkflowFiles { state, lines: None }
    }
}

impl WorkflowFiles {
    /// The plan for `request`, and the line that announces its run once the run has begun.
    fn plan_announced(&self, request: &RunRequest) -> Result<(RunPlan, Announcement), String> {
        let path = Path::new(&request.workflow);
        let text = workflow::read_source(path).map_err(|error| error.to_string())?;
        let wf = workflow::parse(path, &text).map_err(|error| error.to_string())?;
        let run_id = cairn_runs::fresh_run_id();
        self.state
            .save_origin(&run_id, &wf, &text)
            .map_err(|error| crate::app::error_text(&error))?;
        let announcement = self.lines.as_ref().map(|lines| {
            let text = format!(
                "job {}: run {run_id} started (workflow `{}`, due {} UTC)",
                request.job_id,
                wf.name,
                format_timestamp(request.scheduled_for.0)
            );
            let event = serde_json::json!({
                "event": "run_started", "job_id": request.job_id.as_str(),
                "run_id": run_id.as_str(), "workflow": wf.name,
                "scheduled_for": request.scheduled_for.0,
            });
            (lines.clone(), text, event)
        });
        let plan = wf
            .plan(&job_scope(&request.job_id), &request.input)
            .run_id(run_id);
        Ok((plan, announcement))
    }
}

/// A run's "started" line, said once the run is durably begun (`None` when not printing).
type Announcement = Option<(Lines, String, serde_json::Value)>;

impl PlanSource for WorkflowFiles {
    fn plan(&self, request: &RunRequest) -> Result<RunPlan, String> {
        self.plan_announced(request).map(|(plan, _)| plan)
    }
}

/// The scheduler's `JobRunner`: one `ExecutorRunner` per run, whose `shell` handler resolves
/// task folders against that job's workflow folder and gives commands the job's input.
#[derive(Debug)]
struct ShellJobs {
    state: StateDir,
    plans: Arc<WorkflowFiles>,
    config: ExecutorConfig,
    signals: RunSignals,
    groups: ProcessGroups,
    quiet: Arc<Quiet>,
    lines: Lines,
    /// Stranded runs already named, so each is warned about once per scheduler process, not
    /// at every tick of its job. A run this process saw stop on a store failure is put here
    /// too: it was reported when it stopped.
    warned: Mutex<HashSet<RunId>>,
    /// The job store, read for why a stranded run stopped (`Job::store_failure`).
    jobs: Arc<dyn JobStore>,
    /// Damaged runs the run store left in place, already named (once per process).
    left_in_place: Mutex<HashSet<RunId>>,
    /// Quarantine entries already there when the scheduler started, or already named.
    quarantined: Mutex<BTreeSet<String>>,
    /// Held while quarantine entries are looked up and named: runs of several jobs check at
    /// once, and each entry is named once.
    naming_quarantined: tokio::sync::Mutex<()>,
}

/// The plan source of one [`ShellJobs`] run: hands out [`WorkflowFiles`]' plan and remembers
/// its run id, so a refusal that names another run is never taken for this call's own.
#[derive(Debug)]
struct PlannedRun {
    plans: Arc<WorkflowFiles>,
    run_id: Mutex<Option<String>>,
    /// Said by `announce` when the run has begun; a run that never began is never shown.
    announcement: Mutex<Announcement>,
}

impl PlannedRun {
    /// The run id handed out, if a plan was made.
    fn run_id(&self) -> Option<String> {
        // A plain value, valid even if a holder panicked.
        self.run_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Says the run's "started" line: called once the run is durably begun.
    fn announce(&self) {
        let announcement = self
            .announcement
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((lines, text, event)) = announcement {
            lines.say(&text, event);
        }
    }
}

impl PlanSource for PlannedRun {
    fn plan(&self, request: &RunRequest) -> Result<RunPlan, String> {
        let (plan, announcement) = self.plans.plan_announced(request)?;
        *self
            .run_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            plan.run_id.as_ref().map(ToString::to_string);
        *self
            .announcement
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = announcement;
        Ok(plan)
    }
}

/// Counts one run while it is going.
struct Going<'a>(&'a Quiet);

impl Drop for Going<'_> {
    fn drop(&mut self) {
        self.0.change(|s| s.runs -= 1);
    }
}

#[async_trait]
impl JobRunner for ShellJobs {
    async fn run(&self, request: &RunRequest) -> Result<RunSucceeded, RunFailed> {
        if self.signals.shutdown.is_cancelled() {
            // Stopping: this due run must not start, and must not count as a failure.
            match self.quiet.park().await {}
        }
        self.quiet.change(|s| s.runs += 1);
        let going = Going(&self.quiet);
        let planned = Arc::new(PlannedRun {
            plans: Arc::clone(&self.plans),
            run_id: Mutex::new(None),
            announcement: Mutex::new(None),
        });
        // Checked before any plan is made: a refused tick prints no "run started" line. The
        // job's lock is held until the run ends, so no `cairn resume` of another run of the
        // job (one a killed scheduler stranded, say) drives beside it, nor it beside one.
        let outcome = match self.lock_job(request).await {
            Ok(_job_lock) => match self.refuse_beside_other_runs(request).await {
                Ok(()) => match self.one_shot_settled(request).await {
                    Some(settled) => settled,
                    None => self.drive(request, &planned).await,
                },
                Err(refused) => Err(refused),
            },
            Err(refused) => Err(refused),
        };
        let id = &request.job_id;
        match &outcome {
            Ok(done) if done.run_id.is_some() && done.run_id != planned.run_id() => {
                // A one-shot job's earlier run, which a person finished (`one_shot_settled`).
                let run = done.run_id.clone().unwrap_or_default();
                self.lines.say(
                    &format!("job {id}: run {run} was completed by a resume; the one-shot job is done and does not run again"),
                    serde_json::json!({
                        "event": "run_finished", "job_id": id.as_str(), "run_id": run,
                        "outcome": "completed_earlier",
                    }),
                );
            }
            Ok(done) => {
                let run = done.run_id.clone().unwrap_or_default();
                self.lines.say(
                    &format!("job {id}: run {run} completed"),
                    serde_json::json!({"event": "run_finished", "job_id": id.as_str(), "run_id": run, "outcome": "completed"}),
                );
            }
            Err(failed) => {
                // Only a run this call began can have been cut short by the stop; a refusal
                // names a run another process drove.
                let ours = failed.run_id.is_some() && failed.run_id == planned.run_id();
                if ours && failed.store_failed {
                    self.store_failed(id, failed).await;
                } else if ours
                    && self.signals.shutdown.is_cancelled()
                    && self.left_running(failed).await
                {
                    let run = failed.run_id.clone().unwrap_or_default();
                    self.lines.say(
                        &format!(
                            "job {id}: run {run} interrupted; it is left resumable: cairn resume {run}{}",
                            self.lines.store_flags
                        ),
                        serde_json::json!({
                            "event": "run_finished", "job_id": id.as_str(), "run_id": run,
                            "outcome": "interrupted",
                            "resume_command": format!("cairn resume {run}{}", self.lines.store_flags),
                        }),
                    );
                    self.quiet.change(|s| s.interrupted += 1);
                    drop(going);
                    // Cut short by the stop, not failed: its outcome is not recorded, so the
                    // job's error count is untouched.
                    match self.quiet.park().await {}
                }
                if ours
                    && !failed.store_failed
                    && failed.interrupted
                    && self.signals.shutdown.is_cancelled()
                    && self.run_status(failed).await == Some(RunStatus::Cancelled)
                {
                    // Begun as the stop came, before any task started: the runner abandoned
                    // it (audited), so nothing is left to resume and nothing is counted.
                    let run = failed.run_id.clone().unwrap_or_default();
                    self.lines.say(
                        &format!(
                            "job {id}: run {run} abandoned: it was begun as the scheduler stopped, before any task started"
                        ),
                        serde_json::json!({
                            "event": "run_finished", "job_id": id.as_str(), "run_id": run,
                            "outcome": "abandoned",
                        }),
                    );
                    drop(going);
                    match self.quiet.park().await {}
                }
                if failed.interrupted && !ours && self.signals.shutdown.is_cancelled() {
                    // The stop came while the run was being prepared, and nothing was begun:
                    // as for a tick that comes after the stop, nothing is said or counted.
                    drop(going);
                    match self.quiet.park().await {}
                }
                if failed.interrupted && !ours {
                    // Refused before it began (another run of the job is still going, or
                    // the host is stopping): nothing ran and nothing failed.
                    let prefix = format!("job {id}: ");
                    let reason = failed
                        .message
                        .strip_prefix(&prefix)
                        .unwrap_or(&failed.message);
                    self.lines.say(
                        &format!("job {id}: not started: {reason}"),
                        serde_json::json!({
                            "event": "run_not_started", "job_id": id.as_str(),
                            "run_id": failed.run_id, "reason": reason,
                        }),
                    );
                } else {
                    // The runner's message names the run already when there is one.
                    let what = match &failed.run_id {
                        Some(run) if !failed.message.contains(run.as_str()) => {
                            format!("run {run} failed: {}", failed.message)
                        }
                        Some(_) => failed.message.clone(),
                        None => format!("could not start a run: {}", failed.message),
                    };
                    let error = self.run_error(failed).await;
                    let event = serde_json::json!({
                        "event": "run_finished", "job_id": id.as_str(), "run_id": failed.run_id,
                        "outcome": "failed", "error": error,
                    });
                    // `store_failed` printed this very line already, with what to do; JSON
                    // still gets the `run_finished` event every run ends with.
                    let said = ours && failed.store_failed && !self.lines.json;
                    if !said {
                        self.lines.say(&format!("job {id}: {what}"), event);
                    }
                }
            }
        }
        drop(going);
        outcome
    }

    /// Stopping from the first Ctrl-C (or a job-store failure) on: no further tick is
    /// claimed, so none is used up by a run that would only park.
    fn is_stopping(&self) -> bool {
        self.signals.shutdown.is_cancelled()
    }

    /// `run` looks for a one-shot job's earlier runs first (`one_shot_settled`), so the
    /// scheduler hands it a one-shot job whose earlier run was never recorded.
    fn finds_earlier_runs(&self) -> bool {
        true
    }

    /// The job store failed while runs went on: they are stopped as by a first Ctrl-C (their
    /// running tasks get `--grace`; one cut short is left resumable and its resume command
    /// printed), and the scheduler exits 5 once they have ended or parked.
    fn scheduler_failed(&self, error: &cairn_scheduler::Error) {
        if self.signals.shutdown.is_cancelled() {
            // Already stopping (Ctrl-C); the error is reported when the scheduler exits.
            return;
        }
        self.signals.shutdown.cancel();
        self.lines.say(
            &format!(
                "scheduler: stopping: the job store failed ({}); no new runs start; running tasks get up to {} to finish, then the scheduler exits 5 (Ctrl-C stops them now)",
                escape_controls(&job_error_text(error)),
                format_duration(self.config.shutdown_grace)
            ),
            serde_json::json!({
                "event": "stopping", "reason": "job_store_failed", "error": job_error_text(error),
            }),
        );
        self.quiet.change(|s| s.stopping = true);
    }
}

impl ShellJobs {
    /// Drives one fresh run of the job with an `ExecutorRunner` whose plans come from
    /// `planned`.
    async fn drive(
        &self,
        request: &RunRequest,
        planned: &Arc<PlannedRun>,
    ) -> Result<RunSucceeded, RunFailed> {
        let workflow_dir = absolute(Path::new(&request.workflow))
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        // Task progress is not shown: the scheduler prints one line per run.
        let (events, _) = tokio::sync::mpsc::unbounded_channel();
        let handler = ShellHandler::new(
            workflow_dir,
            absolute(&self.state.output_root()),
            request.input.clone(),
            events,
            self.groups.clone(),
        )
        .with_shutdown(self.signals.shutdown.clone(), self.config.shutdown_grace);
        let registry = Registry::new().with(SHELL_KIND, handler);
        let runner = ExecutorRunner::new(
            Arc::clone(&self.state.factory),
            registry,
            self.config.clone(),
            Arc::clone(planned) as Arc<dyn PlanSource>,
        )
        .map_err(|error| RunFailed::new(format!("cannot set up the executor: {error}")))?
        .with_signals(self.signals.clone())
        .on_begun({
            let planned = Arc::clone(planned);
            move |_run| planned.announce()
        });
        runner.run(request).await
    }

    /// Refuses the job's next run while a live process drives a run of it, names each run
    /// of the job that a process left `running` without finishing it (a killed scheduler's),
    /// once, and refuses the job's next run while the commands one of them started still
    /// run: the same tasks would run twice at once. Such a run is never
    /// resumed by the scheduler, nor are its commands killed here: `cairn resume` or
    /// `cairn abandon` of the run does both, when a person chooses.
    ///
    /// # Errors
    ///
    /// `RunFailed::interrupted` (not counted by the breaker) naming the run a live process
    /// drives or whose commands still run; a plain `RunFailed` when the run store cannot be
    /// listed.
    async fn refuse_beside_other_runs(&self, request: &RunRequest) -> Result<(), RunFailed> {
        let filter = RunFilter {
            workflow: None,
            scope: Some(job_scope(&request.job_id)),
            statuses: vec![RunStatus::Running],
        };
        let running = self.state.factory.list(&filter).await.map_err(|err| {
            RunFailed::new(format!("cannot check for runs of it left running: {err}"))
        })?;
        self.warn_newly_quarantined().await;
        self.warn_left_in_place().await;
        let mut busy: Vec<(RunId, Vec<Leftover>)> = Vec::new();
        for meta in running {
            // A live writer drives it (another scheduler on this folder): refused here, before
            // a plan is made, whatever its workflow is now called. An error reads as held, as
            // the ExecutorRunner's own check reads it.
            if self
                .state
                .factory
                .is_held(&meta.run_id)
                .await
                .unwrap_or(true)
            {
                let driver = meta.owner.as_ref().map_or_else(
                    || "another process".to_owned(),
                    |o| escape_controls(&o.to_string()).into_owned(),
                );
                return Err(RunFailed::interrupted(
                    Some(meta.run_id.to_string()),
                    format!(
                        "run {} of this job is still being driven by {driver}; no second run was started",
                        meta.run_id
                    ),
                ));
            }
            // Reading /proc is blocking work: off the runtime.
            let root = absolute(&self.state.output_root());
            let run = meta.run_id.as_str().to_owned();
            let live = tokio::task::spawn_blocking(move || live_leftovers(&root, &run))
                .await
                .unwrap_or_default();
            self.warn_stranded(&request.job_id, &meta, &live).await;
            if !live.is_empty() {
                busy.push((meta.run_id, live));
            }
        }
        let Some((first, _)) = busy.first() else {
            return Ok(());
        };
        let described: Vec<String> = busy
            .iter()
            .map(|(run, live)| {
                let groups: Vec<String> = live
                    .iter()
                    .map(|l| format!("task `{}`, process group {}", l.task, l.group))
                    .collect();
                format!(
                    "run {run}, left running by a process that stopped without finishing it, still has commands running ({}); the job's next run waits until they end, or until run {run} is resumed or abandoned",
                    groups.join("; ")
                )
            })
            .collect();
        Err(RunFailed::interrupted(
            Some(first.to_string()),
            described.join("; "),
        ))
    }

    /// Warns, once per scheduler process, that `meta`'s run was left `running` by a process
    /// that is gone; `live` are its commands still running. When the job notes that the run
    /// stopped because its state store failed, the warning says so; otherwise the process
    /// recorded no reason (it was killed, or could write neither store).
    async fn warn_stranded(&self, job: &JobId, meta: &RunMeta, live: &[Leftover]) {
        let fresh = self
            .warned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(meta.run_id.clone());
        if !fresh {
            return;
        }
        let cause = self.store_failure_of(job, &meta.run_id).await;
        let run = &meta.run_id;
        let flags = &self.lines.store_flags;
        let resume = format!("cairn resume {run}{flags}");
        let abandon = format!("cairn abandon {run}{flags}");
        let driver = meta.owner.as_ref().map_or_else(
            || "a process".to_owned(),
            |o| escape_controls(&o.to_string()).into_owned(),
        );
        if self.lines.json {
            let groups: Vec<serde_json::Value> = live
                .iter()
                .map(|l| serde_json::json!({"task": l.task, "process_group": l.group}))
                .collect();
            outln!(
                "{}",
                serde_json::json!({
                    "event": "run_stranded", "job_id": job.as_str(), "run_id": run.as_str(),
                    "owner": meta.owner.as_ref().map(|o| serde_json::json!({"host": o.host, "pid": o.pid})),
                    "commands_running": groups,
                    "store_failed": cause.as_ref().map(|c| serde_json::json!({"at": c.at.0, "error": c.error})),
                    "resume_command": resume, "abandon_command": abandon,
                })
            );
        } else {
            let why = match &cause {
                Some(cause) => format!(
                    "which stopped it because its state store failed ({} UTC: {}), not because a task failed",
                    format_timestamp(cause.at.0),
                    escape_controls(&cause.error)
                ),
                None => "which stopped without finishing it and recorded no reason (killed? interrupted? or it could write to neither store)".to_owned(),
            };
            eoutln!(
                "warning: run {run} of job {job} was left `running` by {driver}, {why}; the scheduler does not resume it. Continue it with: {resume}  or end it with: {abandon}  (either one first kills the commands it left running)"
            );
        }
    }

    /// A one-shot job runs once: when a run of it exists already (one a stop or crash cut
    /// short, or one that failed, retried now), the earlier run decides instead of a fresh
    /// one. Completed (a person resumed it): the job is done, nothing runs again. Unfinished
    /// or failed: no fresh run starts, which would redo its done tasks (a failed run is
    /// never passed over without a decision, as for `cairn run`); it waits, not counted as
    /// a failure, for that run to be resumed or abandoned. An abandoned run does not stop
    /// the retry.
    /// `None`: no such run, or not a one-shot job; drive a fresh run.
    async fn one_shot_settled(
        &self,
        request: &RunRequest,
    ) -> Option<Result<RunSucceeded, RunFailed>> {
        let stored = self.jobs.get(&request.job_id).await.ok()??;
        let job = Job::from_stored(stored).ok()?;
        if !matches!(job.schedule, cairn_scheduler::Schedule::Once { .. }) {
            return None;
        }
        let filter = RunFilter {
            workflow: None,
            scope: Some(job_scope(&request.job_id)),
            statuses: vec![
                RunStatus::Completed,
                RunStatus::Running,
                RunStatus::Paused,
                RunStatus::Failed,
            ],
        };
        let runs = match self.state.factory.list(&filter).await {
            // Runs of an earlier job that had the same id are not this job's.
            Ok(runs) => runs
                .into_iter()
                .filter(|m| m.created_at >= job.created_at)
                .collect::<Vec<_>>(),
            Err(err) => {
                return Some(Err(RunFailed::new(format!(
                    "cannot check for an earlier run of this one-shot job: {err}"
                ))));
            }
        };
        if let Some(done) = runs.iter().find(|m| m.status == RunStatus::Completed) {
            return Some(Ok(RunSucceeded {
                run_id: Some(done.run_id.to_string()),
            }));
        }
        let unfinished = runs.first()?;
        let run = &unfinished.run_id;
        let flags = &self.lines.store_flags;
        Some(Err(RunFailed::interrupted(
            Some(run.to_string()),
            format!(
                "run {run} of this one-shot job is {}, not completed; a one-shot job runs once, so no fresh run starts while it is: resume it (cairn resume {run}{flags}) or abandon it (cairn abandon {run}{flags}), and the job goes on from there",
                match unfinished.status {
                    RunStatus::Running => "interrupted".to_owned(),
                    other => other.to_string(),
                }
            ),
        )))
    }

    /// What the job notes about run `run` stopping on a store failure; `None` when it notes
    /// nothing or cannot be read.
    async fn store_failure_of(&self, job: &JobId, run: &RunId) -> Option<StoreFailedRun> {
        let stored = self.jobs.get(job).await.ok()??;
        let job = Job::from_stored(stored).ok()?;
        job.store_failure(run.as_str()).cloned()
    }

    /// Reports run `failed`, begun by this call, which stopped because its state store
    /// failed: as `cairn run` reports it, with the command to resume it once the store is
    /// fixed. It is not named again as stranded by this process.
    async fn store_failed(&self, id: &JobId, failed: &RunFailed) {
        let run = failed.run_id.clone().unwrap_or_default();
        let resume = format!("cairn resume {run}{}", self.lines.store_flags);
        let status = match RunId::new(run.as_str()) {
            Ok(run_id) => {
                self.warned
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(run_id.clone());
                match self.state.factory.load_meta(&run_id).await {
                    Ok(Some(meta)) => Some(meta.status),
                    _ => None,
                }
            }
            Err(_) => None,
        };
        if self.lines.json {
            outln!(
                "{}",
                serde_json::json!({
                    "event": "run_store_failed", "job_id": id.as_str(), "run_id": run,
                    "error": failed.message, "status": status.map(|s| s.to_string()),
                    "counted": true, "commands": { "resume": resume },
                })
            );
            return;
        }
        outln!("job {id}: {}", escape_controls(&failed.message));
        eoutln!(
            "run {run} of job {id} stopped because writing its state failed, not because a task failed; it counts as a failed run for the job's circuit breaker, and the scheduler does not resume it. Fix the store (free space, permissions, the disk), then resume it:\n    {resume}"
        );
    }

    /// Takes the lock `cairn run` and `cairn resume` take on the scope of the job's runs.
    ///
    /// # Errors
    ///
    /// `RunFailed::interrupted` (not counted) when another cairn process holds it: it is
    /// deciding about or driving a run of this job right now. A plain `RunFailed` when the
    /// lock file cannot be made or locked.
    async fn lock_job(&self, request: &RunRequest) -> Result<crate::store::ScopeLock, RunFailed> {
        let id = &request.job_id;
        let error = match self.state.lock_scope("", &job_scope(id)) {
            Ok(lock) => return Ok(lock),
            Err(error) => error,
        };
        let Some(busy) = error.downcast_ref::<crate::store::ScopeBusy>() else {
            return Err(RunFailed::new(format!(
                "job {id}: cannot take the lock on its runs: {error:#}"
            )));
        };
        // Name the run the holder drives, when it has begun one.
        let filter = RunFilter {
            workflow: None,
            scope: Some(job_scope(id)),
            statuses: vec![RunStatus::Running],
        };
        let driven = self
            .state
            .factory
            .list(&filter)
            .await
            .ok()
            .and_then(|runs| runs.into_iter().last());
        let holder = if busy.holder.is_empty() {
            "another cairn process".to_owned()
        } else {
            format!("another cairn process ({})", busy.holder)
        };
        Err(RunFailed::interrupted(
            driven.as_ref().map(|meta| meta.run_id.to_string()),
            match driven {
                Some(meta) => format!(
                    "job {id}: run {} of this job is still being driven by {holder}; no second run was started",
                    meta.run_id
                ),
                None => format!(
                    "job {id}: {holder} is driving a run of this job right now (it holds {}); no second run was started",
                    busy.lock_file.display()
                ),
            },
        ))
    }

    /// Names each run the run store moved to quarantine since the scheduler started (a
    /// listing met its damaged state), once, as `cairn runs` names it: it drops out of every
    /// listing, so this is where an operator learns of it.
    async fn warn_newly_quarantined(&self) {
        let _naming = self.naming_quarantined.lock().await;
        let known = self
            .quarantined
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for note in self.state.newly_quarantined(&known).await {
            if let Some(location) = &note.location {
                self.quarantined
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(location.clone());
            }
            if self.lines.json {
                outln!("{}", note.to_json());
            } else {
                eoutln!("warning: {note}");
            }
        }
    }

    /// Names, once per scheduler process, each damaged run the latest run listing could not
    /// move to quarantine, as `cairn runs` names it.
    async fn warn_left_in_place(&self) {
        for note in self.state.left_in_place().await {
            let fresh = self
                .left_in_place
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(note.run.run_id.clone());
            if !fresh {
                continue;
            }
            if self.lines.json {
                outln!("{}", note.to_json());
            } else {
                eoutln!("warning: {note}");
            }
        }
    }

    /// Whether the failed run is still `running` in the store: left resumable by a stop.
    async fn left_running(&self, failed: &RunFailed) -> bool {
        self.run_status(failed).await == Some(RunStatus::Running)
    }

    /// The stored status of the run a failure names, if it can be read.
    /// The failed run's error as its record has it (`{kind, message}`, as `cairn runs --json`
    /// shows it), or built from the runner's message: kind `not_begun` when no run began,
    /// `failed` when the record has none.
    async fn run_error(&self, failed: &RunFailed) -> serde_json::Value {
        let recorded = match failed.run_id.as_deref().map(RunId::new) {
            Some(Ok(run)) => match self.state.factory.load_meta(&run).await {
                Ok(Some(meta)) => meta.error,
                _ => None,
            },
            _ => None,
        };
        let error = recorded.unwrap_or_else(|| {
            let kind = if failed.run_id.is_some() {
                "failed"
            } else {
                "not_begun"
            };
            RunError::new(kind, failed.message.clone())
        });
        serde_json::json!(error)
    }

    async fn run_status(&self, failed: &RunFailed) -> Option<RunStatus> {
        let run = failed.run_id.as_deref().and_then(|r| RunId::new(r).ok())?;
        match self.state.factory.load_meta(&run).await {
            Ok(Some(meta)) => Some(meta.status),
            _ => None,
        }
    }
}

/// Runs `cairn scheduler`.
///
/// # Errors
///
/// A usage error (exit 2) without a state folder; a store error (exit 5) when the job store
/// or the run store fails.
pub async fn run(args: SchedulerArgs) -> anyhow::Result<u8> {
    let root = existing_state_root(&args.store)?;
    let state = StateDir::open(&root, args.store.adapter)?;
    let inner = open_job_store(&root, args.store.adapter)?;
    let store_flags = format!(
        " --state-dir {}{}",
        cairn_runs::shell_quote(&absolute(&root).display().to_string()),
        adapter_flag(args.store.adapter)
    );
    let lines = Lines {
        json: args.store.json,
        store_flags,
    };
    let quiet = Arc::new(Quiet::default());
    let store: Arc<dyn JobStore> = Arc::new(WatchedJobs {
        inner: Arc::clone(&inner),
        quiet: Arc::clone(&quiet),
        lines: lines.clone(),
        left_out: LeftOutTracker::default(),
    });
    let signals = RunSignals::default();
    let groups = ProcessGroups::default();
    // Per run: each run gets its own executor, so the open-file allowance is shared out among
    // the runs that may go on at once.
    let (concurrency, capped) = crate::open_files::cap_concurrency_per_run(
        usize::from(args.exec.concurrency),
        args.max_running_jobs,
    );
    if let Some(note) = capped {
        eoutln!("{note}");
    }
    let config = ExecutorConfig::default()
        .with_concurrency(concurrency)
        .with_require_durability(true)
        .with_shutdown_grace(args.exec.grace);
    let plans = Arc::new(WorkflowFiles {
        state: state.clone(),
        lines: Some(lines.clone()),
    });
    let runner = ShellJobs {
        state: state.clone(),
        plans,
        config,
        signals: signals.clone(),
        groups: groups.clone(),
        quiet: Arc::clone(&quiet),
        lines: lines.clone(),
        warned: Mutex::default(),
        jobs: Arc::clone(&inner),
        left_in_place: Mutex::default(),
        quarantined: Mutex::new(state.quarantine_locations().await),
        naming_quarantined: tokio::sync::Mutex::default(),
    };
    let scheduler = Scheduler::with_config(
        store,
        Arc::new(runner),
        Arc::new(SystemClock),
        SchedulerConfig {
            poll_interval: args.poll,
            max_running_jobs: args.max_running_jobs,
            ..SchedulerConfig::default()
        },
    );
    // Signal handlers are installed before any run starts, so Ctrl-C never kills cairn
    // itself mid-run; it asks for a graceful stop instead.
    let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    // One undecodable job must not stop the scheduler: ticks leave it out as well.
    // Jobs the store left out are named by `WatchedJobs`, here and whenever a later listing
    // finds a new one.
    let listed = scheduler.jobs().list_readable().await.map_err(job_error)?;
    for (id, reason) in &listed.unreadable {
        eoutln!("cairn: job {id} cannot be read, so it is not scheduled: {reason}");
    }
    // Documents a newer build wrote (the store's own entries are named by `WatchedJobs`).
    for entry in &listed.newer {
        if lines.json {
            outln!("{}", left_out_json(entry));
        } else {
            eoutln!("warning: {}", left_out_text(entry));
        }
    }
    let count = listed.jobs.len();
    lines.say(
        &format!(
            "scheduler: watching {count} job(s) in {} (Ctrl-C stops)",
            root.display()
        ),
        serde_json::json!({"event": "scheduler_started", "jobs": count, "state_dir": absolute(&root)}),
    );
    if count == 0 && listed.unreadable.is_empty() {
        // `jobs add` keeps a job beside its workflow file by default (`dir/.cairn`), so jobs
        // added from elsewhere may sit in another state folder than this one.
        eoutln!(
            "warning: there are no jobs in {} yet; the scheduler keeps watching for them. A job added with `cairn jobs add dir/wf.toml ...` is kept in dir/.cairn unless `--state-dir` says otherwise: give every `jobs add` and this scheduler the same --state-dir",
            root.display()
        );
    }
    let watcher = tokio::spawn({
        let quiet = Arc::clone(&quiet);
        let signals = signals.clone();
        let lines = lines.clone();
        let grace = args.exec.grace;
        async move {
            let mut interrupts = 0u32;
            loop {
                tokio::select! {
                    Some(()) = sigint.recv() => {}
                    Some(()) = sigterm.recv() => {}
                    else => return,
                }
                // A job-store failure started the stop as a first Ctrl-C would have
                // (`scheduler_failed`): this one ends the grace.
                if interrupts == 0 && signals.shutdown.is_cancelled() {
                    interrupts = 1;
                }
                interrupts += 1;
                if interrupts == 1 {
                    signals.shutdown.cancel();
                    lines.say(
                        &format!(
                            "scheduler: stopping: no new runs start; running tasks get up to {} to finish (Ctrl-C again stops them now)",
                            format_duration(grace)
                        ),
                        serde_json::json!({"event": "stopping"}),
                    );
                    quiet.change(|s| s.stopping = true);
                } else if interrupts == 2 {
                    // The executor stops and releases the running attempts; the commands'
                    // groups are killed here too, in case one ignores its stop.
                    groups.kill_all();
                    signals.grace_over.cancel();
                    lines.say(
                        "scheduler: stopping running tasks now; they run again on resume (Ctrl-C once more exits at once)",
                        serde_json::json!({"event": "stopping_now"}),
                    );
                } else {
                    groups.kill_all();
                    lines.say(
                        "scheduler: running commands killed; their runs are left as after a crash (resume them by id)",
                        serde_json::json!({"event": "killed"}),
                    );
                    std::process::exit(i32::from(EXIT_INTERRUPTED));
                }
            }
        }
    });
    let result = scheduler.run_until(quiet.stopped()).await;
    watcher.abort();
    result.map_err(job_error)?;
    let interrupted = quiet.lock().interrupted;
    lines.say(
        "scheduler: stopped",
        serde_json::json!({"event": "scheduler_stopped", "interrupted_runs": interrupted}),
    );
    Ok(if interrupted > 0 {
        EXIT_INTERRUPTED
    } else {
        EXIT_OK
    })
}
