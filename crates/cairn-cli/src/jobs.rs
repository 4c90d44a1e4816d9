//! `cairn jobs`: scheduled jobs (a workflow file run on a cron schedule, at an interval, or
//! once) kept in the state folder next to the runs, and the operator's commands on them.
//!
//! The jobs themselves are `cairn_scheduler` jobs in the adapter's job store:
//! `<state-dir>/jobs/` with the file adapter, the `cairn/job*` trees of `<state-dir>/sled`
//! with sled. `cairn scheduler` (see [`crate::scheduler`]) runs the due ones.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cairn_checkpoint::{JobAuditAction, JobId, JobStore, LeftOutJob, LeftOutPlace, RunStatus};
use cairn_checkpoint_file::FileJobStore;
use cairn_checkpoint_sled::SledJobStore;
use cairn_queue::Timestamp;
use cairn_scheduler::{
    Job, JobStatus, Jobs, NewJob, Schedule, SystemClock, UnreadableJob, Zone, what_to_do_about,
};
use clap::{Args, Subcommand};

use crate::app::{UsageError, default_state_dir, format_timestamp, print_audit_line};
use crate::cli::{EXIT_OK, EXIT_STORE, StoreArgs};
use crate::out::{cell, clip, eoutln, outln};
use crate::store::{Adapter, StateDir, absolute};
use crate::workflow;

/// The exit codes of `cairn jobs ...`.
pub const JOBS_EXIT_CODES: &str = "\
Exit codes:
  0  success
  2  bad usage: a bad workflow file, schedule, time zone or job id; an unknown job; or a job
     in the wrong state for the command (nothing was changed): resuming an active job,
     a failed job without --force, or a completed job (a one-shot job that ran, or a
     recurring one whose schedule ran out: refused even with --force)
  5  the state store failed; or `list` found jobs it cannot read: it still prints the others,
     and names each unreadable job with the reason on stderr. When only a change's audit
     record could not be written, the error says the change was made and stands
  6  `list` found stored jobs it had to leave out (damaged: moved to the quarantine folder
     by this listing, or left in place because they could be neither read nor moved; or
     written by a newer build of cairn, whose jobs this build leaves as they are and never
     runs, changes or deletes: use that build for them): it still prints the others, and
     names each one on stderr with why, where it is now and what to do (5 wins when both
     happen); or `show`, `pause`, `resume` or `rm` found the job damaged or written by a
     newer build (the same report on stderr; nothing was changed). A job found gone because
     an earlier command moved it aside is exit 2, and says where its copy is
  7  `list`, `show` or `audit` could not write its output (stdout failed, say a full disk
     behind a redirect): what it wrote is incomplete";

/// `cairn jobs list` found stored jobs the job store left out (quarantined or left in place).
pub const EXIT_JOBS_LEFT_OUT: u8 = 6;

/// `cairn jobs` subcommands.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Add a job: run a workflow file on a cron schedule, at an interval, or once.
    #[command(after_help = JOBS_EXIT_CODES)]
    Add(AddArgs),
    /// List the jobs: status, error count, next and last run, last error.
    #[command(after_help = JOBS_EXIT_CODES)]
    List(ListArgs),
    /// Show one job.
    #[command(after_help = JOBS_EXIT_CODES)]
    Show(JobRef),
    /// Pause an active job (it stops running until `resume`).
    #[command(after_help = JOBS_EXIT_CODES)]
    Pause(JobRef),
    /// Resume a paused job, or revive a failed one (circuit breaker tripped) with --force.
    #[command(after_help = JOBS_EXIT_CODES)]
    Resume(ResumeJobArgs),
    /// Delete a job (its audit records are kept). A job that cannot be read is deleted too;
    /// its stored document is kept whole in its audit log first. A job a newer build of
    /// cairn wrote is never deleted: use that build.
    #[command(visible_alias = "delete", after_help = JOBS_EXIT_CODES)]
    Rm(JobRef),
    /// Print a job's audit log (created, paused, resumed, revived, breaker tripped, ...).
    #[command(after_help = JOBS_EXIT_CODES)]
    Audit(JobRef),
}

/// `cairn jobs add`.
#[derive(Debug, Clone, Args)]
#[command(group = clap::ArgGroup::new("when").required(true).args(["cron", "every", "at"]))]
pub struct AddArgs {
    /// The workflow file (TOML) each run starts; checked now, read again at every run.
    pub workflow: PathBuf,
    /// The job's id: ASCII letters, digits, '-' and '_'.
    pub id: String,
    /// A name for people [default: the id]; it may start with `-`.
    #[arg(long, allow_hyphen_values = true)]
    pub name: Option<String>,
    /// A cron expression: five fields, six with leading seconds (`*/10 * * * * *`), or seven
    /// with a trailing year (a job whose years run out is `completed` after its last run).
    #[arg(long, value_name = "EXPR")]
    pub cron: Option<String>,
    /// The zone the cron expression is read in [default: UTC]: an IANA tz database name
    /// such as `Europe/Berlin` or `America/New_York` (case-sensitive; follows daylight
    /// saving: a time skipped when the clocks go forward runs when the gap ends, a time
    /// that happens twice when they go back runs once; `*/15`-style expressions skip the gap
    /// and run in both passes), `UTC`, or a fixed offset such as `+05:30` (no daylight
    /// saving). Only with `--cron`: intervals and RFC 3339 times need no zone.
    // No clap default, so that a zone given without `--cron` can be told apart and refused.
    // Hyphen values: offsets west of UTC (`--tz -05:00`).
    #[arg(
        long,
        value_name = "ZONE",
        requires = "cron",
        allow_hyphen_values = true
    )]
    pub tz: Option<String>,
    /// Run at a fixed interval (at least 1s, at most 36500d): `30s`, `10m`, `1h30m`.
    #[arg(long, value_name = "DURATION", value_parser = parse_interval)]
    pub every: Option<Duration>,
    /// Run once, at an RFC 3339 time (`2026-01-01T09:00:00+01:00`); at once if it passed
    /// (with a warning when it passed more than 10 minutes ago: a typo in the date?).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// For `--at` jobs: delete the job after its successful run instead of keeping it
    /// `completed`.
    #[arg(long, requires = "at")]
    pub delete_after_run: bool,
    /// Text each run gets (stored with the run, `CAIRN_INPUT` for its commands); it may
    /// start with `-`.
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    pub input: String,
    /// Failed runs in a row that trip the job's circuit breaker (it becomes `failed`).
    #[arg(
        long,
        value_name = "N",
        default_value_t = cairn_scheduler::DEFAULT_MAX_CONSECUTIVE_ERRORS,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub max_consecutive_errors: u32,
    /// Create the job paused.
    #[arg(long)]
    pub paused: bool,
    /// Store settings [default state folder: `.cairn/` next to the workflow file].
    #[command(flatten)]
    pub store: StoreArgs,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    crate::duration::parse_duration(text).map_err(|e| e.to_string())
}

/// `cairn jobs list`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Store settings.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// A command about one job.
#[derive(Debug, Clone, Args)]
pub struct JobRef {
    /// The job id.
    pub id: String,
    /// Store settings.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `cairn jobs resume`.
#[derive(Debug, Clone, Args)]
pub struct ResumeJobArgs {
    /// The job.
    #[command(flatten)]
    pub target: JobRef,
    /// Revive a failed job (its circuit breaker tripped): resets its error count.
    #[arg(long)]
    pub force: bool,
}

/// Opens the job store of the state folder `root` with `adapter`. With sled, the database
/// is shared with any `SledFactory` this process opened over the same folder.
///
/// # Errors
///
/// When the store cannot be opened (for sled: another process holds the database).
pub fn open_job_store(root: &Path, adapter: Adapter) -> anyhow::Result<Arc<dyn JobStore>> {
    Ok(match adapter {
        Adapter::File => Arc::new(
            FileJobStore::open(root)
                .with_context(|| format!("cannot open the job store in {}", root.display()))?,
        ),
        Adapter::Sled => {
            let path = root.join("sled");
            Arc::new(
                SledJobStore::open(&path)
                    .with_context(|| format!("cannot open the sled store at {}", path.display()))?,
            )
        }
    })
}

/// The state folder of the commands about existing jobs: `--state-dir` or `./.cairn`, which
/// must exist (these commands never create one).
///
/// # Errors
///
/// A [`UsageError`] when the folder does not exist.
pub fn existing_state_root(store: &StoreArgs) -> anyhow::Result<PathBuf> {
    let root = store
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".cairn"));
    if !root.is_dir() {
        return Err(UsageError(format!(
            "there is no state folder at {}; pass --state-dir (for `cairn jobs add x/wf.toml` it is x/.cairn)",
            root.display()
        ))
        .into());
    }
    Ok(root)
}

/// Turns a scheduler error into the CLI's: a usage error (exit 2) for bad input and for a job
/// in the wrong state, keeping the library's message; otherwise a store error (exit 5).
pub fn job_error(error: cairn_scheduler::Error) -> anyhow::Error {
    use cairn_scheduler::Error as E;
    match error {
        E::InvalidJobId(_)
        | E::InvalidSchedule { .. }
        | E::InvalidZone { .. }
        | E::InvalidJob { .. }
        | E::NotFound { .. }
        | E::AlreadyExists { .. }
        | E::AlreadyActive { .. }
        | E::NeedsForce { .. }
        | E::Completed { .. }
        | E::NotActive { .. }
        | E::NotDamaged { .. } => UsageError(error.to_string()).into(),
        // Still a store failure (exit 5), but told as a change that happened: a person or
        // script told only that the store failed would take it for undone and repeat it.
        E::Unaudited { id, action, source } => {
            anyhow::Error::new(source).context(unaudited_text(&id, action))
        }
        other => anyhow::Error::new(other),
    }
}

/// A scheduler error in the CLI's words: as the library says it, except that a change
/// stored without its audit record (`Unaudited`) says which change it was and that it stands.
pub fn job_error_text(error: &cairn_scheduler::Error) -> String {
    match error {
        cairn_scheduler::Error::Unaudited { id, action, source } => {
            format!("{}: {source}", unaudited_text(id, *action))
        }
        other => other.to_string(),
    }
}

/// What happened to job `id` when a change was stored but its `action` audit record was not.
fn unaudited_text(id: &JobId, action: JobAuditAction) -> String {
    let what = match action {
        JobAuditAction::Created => "added",
        JobAuditAction::Paused => "paused",
        JobAuditAction::Resumed => "resumed",
        JobAuditAction::Revived => "revived (its circuit breaker was reset)",
        JobAuditAction::BreakerTripped => "stopped by its circuit breaker (it is now failed)",
        JobAuditAction::Completed => "completed",
        JobAuditAction::Deleted => "deleted",
        _ => "changed",
    };
    format!(
        "job {id} was {what}, and that change is stored and stands (nothing needs doing again), but the job store failed to write its audit record, so `cairn jobs audit {id}` does not list it"
    )
}

/// The outcome of a command on job `id` that failed with `error`, told with the job's
/// damage when its store moved it aside (or left it in place) as damaged: reading it just now
/// did that (exit 6, the left-out report on stderr, or a `job_left_out` line there with `--json`),
/// or an earlier command did and the job is gone (a usage error saying where the copy is).
/// Any other error is [`job_error`]'s.
async fn explain_job_error(
    jobs: &Jobs,
    id: &JobId,
    store: &StoreArgs,
    error: cairn_scheduler::Error,
) -> anyhow::Result<u8> {
    use cairn_scheduler::Error as E;
    if let E::NewerFormat { detail, .. } = &error {
        // Not damage: left for the newer build, reported as `list` reports it.
        let entry = newer_entry(&existing_state_root(store)?, store.adapter, id, detail);
        if store.json {
            eoutln!("{}", left_out_json(&entry));
        } else {
            eoutln!("error: {}", left_out_text(&entry));
        }
        return Ok(EXIT_JOBS_LEFT_OUT);
    }
    let damaged_now = matches!(
        &error,
        E::Store {
            source: cairn_checkpoint::Error::Encoding { .. },
            ..
        }
    );
    if !damaged_now && !matches!(error, E::NotFound { .. }) {
        return Err(job_error(error));
    }
    // The audit log is only an explanation: if it cannot be read, the error stands as is.
    let Ok(Some(damage)) = jobs.last_damage(id).await else {
        return Err(job_error(error));
    };
    if damaged_now {
        // On stderr like `list`'s: stdout is for the job itself.
        if store.json {
            eoutln!("{}", left_out_json(&damage.entry));
        } else {
            eoutln!("error: {}", left_out_text(&damage.entry));
        }
        return Ok(EXIT_JOBS_LEFT_OUT);
    }
    Err(UsageError(format!(
        "no job {id}: its stored entry was damaged ({}) and {} at {} UTC. What to do: {}",
        damage.entry.reason,
        damage.entry.place,
        format_timestamp(damage.at.0),
        what_to_do_about(&damage.entry)
    ))
    .into())
}

/// Where job `id` is stored in the state folder `root`: its file, or its sled key.
fn job_location(root: &Path, adapter: Adapter, id: &JobId) -> String {
    match adapter {
        Adapter::File => root
            .join("jobs")
            .join(format!("{id}.json"))
            .display()
            .to_string(),
        Adapter::Sled => format!(
            "{}/{id} in {}",
            cairn_checkpoint_sled::JOBS_TREE,
            root.join("sled").display()
        ),
    }
}

/// The left-out entry of job `id`, which a newer build wrote (`detail`: what this build does
/// not read), at its place in the state folder `root`.
fn newer_entry(root: &Path, adapter: Adapter, id: &JobId, detail: &str) -> LeftOutJob {
    LeftOutJob {
        id: Some(id.clone()),
        name: id.to_string(),
        reason: format!("it was written by a newer cairn build ({detail})"),
        place: LeftOutPlace::NewerFormat {
            at: job_location(root, adapter, id),
        },
    }
}

fn parse_job_id(text: &str) -> anyhow::Result<JobId> {
    JobId::new(text)
        // The id's own error names the text already; a very long one is cut.
        .map_err(|error| UsageError(crate::out::clip(&error.to_string(), 300)).into())
}

fn jobs_in(root: &Path, adapter: Adapter) -> anyhow::Result<Jobs> {
    // As for runs: the other adapter's jobs are not these, so a listing would show none and
    // an add would start a second job store (after which nothing refuses the wrong adapter).
    crate::store::refuse_a_second_store(root, adapter)?;
    Ok(Jobs::new(
        open_job_store(root, adapter)?,
        Arc::new(SystemClock),
    ))
}

/// Runs a `cairn jobs` subcommand.
///
/// # Errors
///
/// Usage errors (exit 2) and store errors (exit 5), as [`JOBS_EXIT_CODES`] says.
pub async fn run(command: JobsCommand) -> anyhow::Result<u8> {
    match command {
        JobsCommand::Add(args) => cmd_add(args).await,
        JobsCommand::List(args) => cmd_list(args).await,
        JobsCommand::Show(args) => cmd_show(args).await,
        JobsCommand::Pause(args) => {
            let (jobs, id) = open_for(&args)?;
            let job = match jobs.pause(&id).await {
                Ok(job) => job,
                Err(error) => return explain_job_error(&jobs, &id, &args.store, error).await,
            };
            report_change(
                &args.store,
                &job,
                "paused",
                "job {id} paused; it runs again after `cairn jobs resume`",
            )
        }
        JobsCommand::Resume(args) => {
            let (jobs, id) = open_for(&args.target)?;
            let job = match jobs.resume(&id, args.force).await {
                Ok(job) => job,
                Err(error) => {
                    return explain_job_error(&jobs, &id, &args.target.store, error).await;
                }
            };
            let next = job
                .next_run_at
                .map_or_else(|| "never".to_owned(), |t| format_timestamp(t.0) + " UTC");
            let text = format!("job {{id}} is active again; next run {next}");
            report_change(&args.target.store, &job, "resumed", &text)
        }
        JobsCommand::Rm(args) => {
            let (jobs, id) = open_for(&args)?;
            match jobs.delete(&id).await {
                Ok(job) => report_change(
                    &args.store,
                    &job,
                    "deleted",
                    "job {id} deleted (its audit records are kept)",
                ),
                // The job `list` names as unreadable: `rm` is the operator's explicit way to
                // remove it, and its document is kept whole in the audit log.
                Err(cairn_scheduler::Error::BadDocument { .. }) => {
                    let gone = jobs.delete_unreadable(&id).await.map_err(job_error)?;
                    report_unreadable_deleted(&args.store, &gone)
                }
                Err(error) => explain_job_error(&jobs, &id, &args.store, error).await,
            }
        }
        JobsCommand::Audit(args) => cmd_audit(args).await,
    }
}

fn open_for(args: &JobRef) -> anyhow::Result<(Jobs, JobId)> {
    let id = parse_job_id(&args.id)?;
    let root = existing_state_root(&args.store)?;
    Ok((jobs_in(&root, args.store.adapter)?, id))
}

/// Prints what a change did: `text` (with `{id}` replaced) or, with `--json`, an event line
/// with the job as it is now.
fn report_change(store: &StoreArgs, job: &Job, event: &str, text: &str) -> anyhow::Result<u8> {
    if store.json {
        outln!(
            "{}",
            serde_json::json!({"event": event, "job": job_json(job)})
        );
    } else {
        outln!("{}", text.replace("{id}", job.id.as_str()));
    }
    Ok(EXIT_OK)
}

/// Prints what deleting an undecodable job did.
fn report_unreadable_deleted(store: &StoreArgs, gone: &UnreadableJob) -> anyhow::Result<u8> {
    if store.json {
        outln!(
            "{}",
            serde_json::json!({
                "event": "deleted",
                "job_id": gone.id,
                "unreadable": true,
                "version": gone.version,
                "reason": gone.reason,
            })
        );
    } else {
        outln!(
            "job {id} could not be read ({reason}); deleted. Its stored document (version {version}) is kept whole in its audit log: cairn jobs audit {id} --json",
            id = gone.id,
            reason = gone.reason,
            version = gone.version
        );
    }
    Ok(EXIT_OK)
}

/// The schedule `add` asks for; every refusal names job `id`.
fn schedule_of(args: &AddArgs, id: &JobId) -> anyhow::Result<Schedule> {
    let refused = |error: cairn_scheduler::Error| job_error(error.for_job(id));
    // Checked here as well as by clap's `requires`, which did not refuse `--every 5m --tz
    // +01:00` (a zone that would be silently ignored).
    if let (Some(tz), None) = (&args.tz, &args.cron) {
        return Err(UsageError(format!(
            "job {id}: --tz {tz} applies to --cron only (--every and --at need no zone; give --at an offset such as 2026-01-01T09:00:00+01:00)"
        ))
        .into());
    }
    let schedule = if let Some(expression) = &args.cron {
        let zone: Zone = args
            .tz
            .as_deref()
            .unwrap_or("UTC")
            .parse()
            .map_err(refused)?;
        let schedule = Schedule::cron(expression.clone(), zone).map_err(refused)?;
        // An expression like `0 0 31 2 *` parses but never matches: the job would look
        // active and never run.
        let now = cairn_checkpoint::wall_clock_now();
        if schedule.next_after(now, now).map_err(refused)?.is_none() {
            return Err(UsageError(format!(
                "job {id}: the cron expression `{expression}` never fires after now (no date matches it); check its day, month and year fields"
            ))
            .into());
        }
        schedule
    } else if let Some(interval) = args.every {
        Schedule::every(interval).map_err(refused)?
    } else if let Some(at) = &args.at {
        let time = parse_time(at).map_err(|error| UsageError(format!("job {id}: {error}")))?;
        // A past time runs at once, as documented; one long past is more likely a typo in
        // the date than a wish, so it is said before the job fires.
        let now = cairn_checkpoint::wall_clock_now();
        let ago = now.0.saturating_sub(time.0);
        if ago > PAST_AT_WARNING_MS {
            eoutln!(
                "warning: job {id}: --at {at} was {} ago, so the job runs at the scheduler's next tick; if the date is a typo, `cairn jobs rm {id}` and add it again",
                crate::duration::format_duration(Duration::from_millis(ago))
            );
        }
        Schedule::once(time)
    } else {
        // clap's required group makes this unreachable; say so plainly if it ever is not.
        return Err(UsageError("give one of --cron, --every or --at".to_owned()).into());
    };
    Ok(schedule)
}

/// How far in the past an `--at` time may be before `jobs add` warns (10 minutes).
const PAST_AT_WARNING_MS: u64 = 10 * 60 * 1000;

/// Parses an RFC 3339 time into milliseconds since the Unix epoch.
fn parse_time(text: &str) -> anyhow::Result<Timestamp> {
    let time = chrono::DateTime::parse_from_rfc3339(text).map_err(|error| {
        UsageError(format!(
            "`{text}` is not an RFC 3339 time ({error}); write it like 2026-01-01T09:00:00+01:00 or 2026-01-01T08:00:00Z"
        ))
    })?;
    let ms = u64::try_from(time.timestamp_millis())
        .map_err(|_| UsageError(format!("`{text}` is before 1970")))?;
    Ok(Timestamp(ms))
}

async fn cmd_add(args: AddArgs) -> anyhow::Result<u8> {
    let id = parse_job_id(&args.id)?;
    crate::cli::check_input(&args.input)?;
    let schedule = schedule_of(&args, &id)?;
    // The file is checked now so a typo fails here, not at 3 a.m.; each run reads it again.
    let wf = workflow::load(&args.workflow)?;
    let root = args
        .store
        .state_dir
        .clone()
        .unwrap_or_else(|| default_state_dir(&args.workflow));
    crate::store::create_state_root(&root)?;
    let jobs = jobs_in(&root, args.store.adapter)?;
    let workflow_path = absolute(&args.workflow);
    let new = NewJob::new(
        id,
        args.name.clone().unwrap_or_else(|| args.id.clone()),
        schedule,
        workflow_path.display().to_string(),
    )
    .input(args.input.clone())
    .max_consecutive_errors(args.max_consecutive_errors)
    .delete_after_run(args.delete_after_run)
    .paused(args.paused);
    let job = jobs.add(new).await.map_err(job_error)?;
    if args.store.state_dir.is_none() {
        warn_of_other_job_store(&root);
    }
    if args.store.json {
        outln!(
            "{}",
            serde_json::json!({"event": "added", "job": job_json(&job), "state_dir": absolute(&root)})
        );
    } else {
        let next = match job.next_run_at {
            Some(t) => format_timestamp(t.0) + " UTC" + &local_time_of(&job.schedule, t),
            None if job.status == cairn_scheduler::JobStatus::Paused => "none (paused)".to_owned(),
            None => "never".to_owned(),
        };
        outln!(
            "added job {} ({}): workflow `{}`, {}; next run {next}",
            job.id,
            crate::out::escape_controls(&job.name),
            crate::out::escape_controls(&wf.name),
            describe_schedule(&job.schedule)
        );
        outln!(
            "run due jobs with: cairn scheduler --state-dir {}{}",
            cairn_runs::shell_quote(&absolute(&root).display().to_string()),
            adapter_flag(args.store.adapter)
        );
    }
    Ok(EXIT_OK)
}

/// Warns when a job went to the state folder beside its workflow file while the current
/// folder's `.cairn` holds jobs too: one scheduler watches one folder, so the two sets of
/// jobs would need two schedulers.
fn warn_of_other_job_store(root: &Path) {
    let here = PathBuf::from(".cairn");
    let same = match (root.canonicalize(), here.canonicalize()) {
        (Ok(root), Ok(here)) => root == here,
        _ => true,
    };
    let has_jobs = std::fs::read_dir(here.join("jobs")).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.path().extension().is_some_and(|ext| ext == "json"))
    });
    if !same && has_jobs {
        eoutln!(
            "warning: this job is kept in {} (beside its workflow file), but {} here has jobs too; one `cairn scheduler` watches one folder, so give `jobs add` and the scheduler the same --state-dir to keep all jobs in one place",
            root.display(),
            here.display()
        );
    }
}

/// ` (2026-03-30 09:00:00 +02:00 Europe/Berlin)`, or ` (2026-03-30 12:30:00 +05:30)` for a
/// fixed offset: time `at` on the wall clock of a cron schedule's zone, so an operator sees
/// the daylight-saving offset a run uses; empty for UTC and for schedules without a zone.
fn local_time_of(schedule: &Schedule, at: Timestamp) -> String {
    match schedule {
        Schedule::Cron { zone, .. } if *zone != Zone::Utc => {
            let name = match zone {
                Zone::Named(named) => format!(" {named}"),
                _ => String::new(),
            };
            zone.local_time(at)
                .map(|local| format!(" ({}{name})", local.format("%Y-%m-%d %H:%M:%S %:z")))
                .unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// ` --adapter sled` when it is not the default.
pub fn adapter_flag(adapter: Adapter) -> String {
    match adapter {
        Adapter::File => String::new(),
        other => format!(" --adapter {}", other.as_str()),
    }
}

async fn cmd_list(args: ListArgs) -> anyhow::Result<u8> {
    let root = existing_state_root(&args.store)?;
    let jobs = jobs_in(&root, args.store.adapter)?;
    // One undecodable job must not hide the others: print what reads, name the rest.
    let listed = jobs.list_readable().await.map_err(job_error)?;
    let (all, unreadable) = (&listed.jobs, &listed.unreadable);
    for (id, reason) in unreadable {
        eoutln!(
            "cairn: job {id} cannot be read, so it is not listed: {reason}; `cairn jobs rm {id}` deletes it"
        );
    }
    // Jobs whose document a newer build wrote are left for it, as the store's entries left
    // for a newer build are: named with where they are (the scheduler does not know).
    let newer: Vec<LeftOutJob> = listed
        .newer
        .iter()
        .map(|entry| match &entry.id {
            Some(id) => LeftOutJob {
                place: LeftOutPlace::NewerFormat {
                    at: job_location(&root, args.store.adapter, id),
                },
                ..entry.clone()
            },
            None => entry.clone(),
        })
        .collect();
    let mut left_out: Vec<&LeftOutJob> = listed.left_out.iter().chain(&newer).collect();
    left_out.sort_by(|a, b| a.name.cmp(&b.name));
    // Jobs the store itself left out no longer run: a script must notice (exit 6), and a
    // person must learn where the job is and what to do.
    for entry in &left_out {
        if args.store.json {
            eoutln!("{}", left_out_json(entry));
        } else {
            eoutln!("cairn: {}", left_out_text(entry));
        }
    }
    let code = if !unreadable.is_empty() {
        EXIT_STORE
    } else if !left_out.is_empty() {
        EXIT_JOBS_LEFT_OUT
    } else {
        EXIT_OK
    };
    let overdue = overdue_jobs(&root, &args.store, all).await;
    if args.store.json {
        for job in all {
            let mut value = job_json(job);
            if let Some(map) = value.as_object_mut() {
                map.insert("overdue".to_owned(), overdue.contains(&job.id).into());
            }
            outln!("{value}");
        }
        return Ok(code);
    }
    if all.is_empty() && unreadable.is_empty() && left_out.is_empty() {
        outln!(
            "no jobs in {} (add one with `cairn jobs add`)",
            root.display()
        );
        return Ok(EXIT_OK);
    }
    outln!(
        "{:<20}  {:<9}  {:<36}  {:<6}  {:<19}  {:<19}  LAST ERROR",
        "JOB",
        "STATUS",
        "SCHEDULE",
        "ERRORS",
        "NEXT RUN (UTC)",
        "LAST RUN (UTC)"
    );
    for job in all {
        outln!(
            "{}  {:<9}  {:<36}  {:<6}  {:<19}  {:<19}  {}",
            cell(job.id.as_str(), 20),
            if overdue.contains(&job.id) {
                "overdue"
            } else {
                job.status.as_str()
            },
            schedule_column(&job.schedule, 36),
            format!("{}/{}", job.consecutive_errors, job.max_consecutive_errors),
            job.next_run_at
                .map_or_else(|| "-".to_owned(), |t| format_timestamp(t.0)),
            job.last_run_at
                .map_or_else(|| "-".to_owned(), |t| format_timestamp(t.0)),
            // A job healthy again (no error since its last success) shows none: its old
            // error would read as "failing". `jobs show` still has it, labelled.
            job.last_error
                .as_deref()
                .filter(|_| job.consecutive_errors > 0)
                .map(|e| clip(e, 60))
                .unwrap_or_default()
        );
    }
    if !overdue.is_empty() {
        outln!(
            "(overdue: active, due more than a minute ago, and no run of it is going: is a `cairn scheduler --state-dir {}` running?)",
            root.display()
        );
    }
    Ok(code)
}

/// How long past its next run time an active job may be before `jobs list` calls it overdue.
const OVERDUE_AFTER_MS: u64 = 60_000;

/// The active jobs due more than [`OVERDUE_AFTER_MS`] ago with no run of theirs driven by a
/// live process: nothing serves them, most likely because no scheduler runs on this folder.
/// A job whose run is still going (a run longer than its interval) is not overdue. When the
/// runs cannot be read here (a store another process holds), every late job is named.
async fn overdue_jobs(root: &Path, store: &StoreArgs, jobs: &[Job]) -> HashSet<JobId> {
    let now = cairn_checkpoint::wall_clock_now().0;
    let late: Vec<&Job> = jobs
        .iter()
        .filter(|job| {
            job.status == JobStatus::Active
                && job
                    .next_run_at
                    .is_some_and(|due| due.0.saturating_add(OVERDUE_AFTER_MS) < now)
        })
        .collect();
    if late.is_empty() {
        return HashSet::new();
    }
    let Ok(state) = StateDir::open(root, store.adapter) else {
        return late.iter().map(|job| job.id.clone()).collect();
    };
    let runs = crate::app::list_runs(&state, store.json)
        .await
        .unwrap_or_default();
    let mut overdue = HashSet::new();
    for job in late {
        let scope = crate::scheduler::job_scope(&job.id);
        let mut going = false;
        for run in runs
            .iter()
            .filter(|run| run.scope == scope && run.status == RunStatus::Running)
        {
            if state.factory.is_held(&run.run_id).await.unwrap_or(false) {
                going = true;
                break;
            }
        }
        if !going {
            overdue.insert(job.id.clone());
        }
    }
    overdue
}

async fn cmd_show(args: JobRef) -> anyhow::Result<u8> {
    let (jobs, id) = open_for(&args)?;
    let job = match jobs.show(&id).await {
        Ok(job) => job,
        Err(error) => return explain_job_error(&jobs, &id, &args.store, error).await,
    };
    if args.store.json {
        outln!("{}", job_json(&job));
        return Ok(EXIT_OK);
    }
    let when =
        |t: Option<Timestamp>| t.map_or_else(|| "-".to_owned(), |t| format_timestamp(t.0) + " UTC");
    let in_zone = |t: Option<Timestamp>| match t {
        Some(t) => when(Some(t)) + &local_time_of(&job.schedule, t),
        None => when(None),
    };
    outln!(
        "job       {} ({})",
        job.id,
        crate::out::escape_controls(&job.name)
    );
    outln!("status    {}", job.status);
    outln!("schedule  {}", describe_schedule(&job.schedule));
    outln!("workflow  {}", crate::out::escape_controls(&job.workflow));
    if !job.input.is_empty() {
        outln!("input     {:?}", job.input);
    }
    outln!(
        "errors    {} in a row (the circuit breaker trips at {})",
        job.consecutive_errors,
        job.max_consecutive_errors
    );
    outln!("next run  {}", in_zone(job.next_run_at));
    outln!("last run  {}", in_zone(job.last_run_at));
    match &job.last_error {
        Some(error) if job.consecutive_errors > 0 => outln!("error     {error}"),
        Some(error) => outln!(
            "error     none now (a success or a revive reset the count); the last one was: {error}"
        ),
        None => {}
    }
    if job.delete_after_run {
        outln!("deleted after its successful run");
    }
    outln!("created   {}", when(Some(job.created_at)));
    Ok(EXIT_OK)
}

async fn cmd_audit(args: JobRef) -> anyhow::Result<u8> {
    let (jobs, id) = open_for(&args)?;
    let records = jobs.audit_log(&id).await.map_err(job_error)?;
    for record in &records {
        if args.store.json {
            outln!("{}", serde_json::to_string(record)?);
        } else {
            print_audit_line(record.at.0, &record.action, &record.message, 16);
            if record.action == JobAuditAction::LeftInPlace {
                // The one record that asks the operator to act: say so on its own line.
                let path = record.detail["path"].as_str().unwrap_or("its entry");
                outln!(
                    "{:19}  {:16}  NOT moved aside: {path} is still in the job folder, left out of listings; move or fix it by hand",
                    "",
                    ""
                );
            }
        }
    }
    if records.is_empty() {
        // Records outlive their job, so none at all and no job means it never existed.
        if let Err(error @ cairn_scheduler::Error::NotFound { .. }) = jobs.show(&id).await {
            return Err(job_error(error));
        }
        if !args.store.json {
            outln!("job {id} has no audit records");
        }
    }
    Ok(EXIT_OK)
}

/// The stderr line (without a prefix) of `jobs list` and `cairn scheduler` about a stored job the job store
/// left out: which, why, where it is now, and what to do.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{JobId, LeftOutJob, LeftOutPlace};
/// use cairn_cli::jobs::left_out_text;
///
/// let entry = LeftOutJob {
///     id: Some(JobId::new("nightly").unwrap()),
///     name: "nightly".to_owned(),
///     reason: "fails its checksum".to_owned(),
///     place: LeftOutPlace::Quarantined { location: "/s/jobs/quarantine/nightly-5.json".to_owned() },
/// };
/// let line = left_out_text(&entry);
/// assert!(line.starts_with("job nightly was left out"));
/// assert!(line.contains("quarantined to /s/jobs/quarantine/nightly-5.json"));
/// ```
pub fn left_out_text(entry: &LeftOutJob) -> String {
    let what = match &entry.id {
        Some(id) => format!("job {id}"),
        None => format!("entry `{}`", entry.name),
    };
    format!(
        "{what} was left out of the job list and does not run: {}; it is {}. What to do: {}",
        entry.reason,
        entry.place,
        what_to_do_about(entry)
    )
}

/// The `--json` form of [`left_out_text`]: `{"event": "job_left_out", "kind": "quarantined"
/// | "left_in_place" | "newer_format", "job_id", "name", "reason", "location" | "at",
/// "what_to_do"}`.
pub fn left_out_json(entry: &LeftOutJob) -> serde_json::Value {
    let mut value = serde_json::json!({
        "event": "job_left_out",
        "job_id": entry.id,
        "name": entry.name,
        "reason": entry.reason,
        "what_to_do": what_to_do_about(entry),
    });
    // The place's own fields: `kind` and `location` or `at`.
    if let (Some(map), Ok(serde_json::Value::Object(place))) =
        (value.as_object_mut(), serde_json::to_value(&entry.place))
    {
        map.extend(place);
    }
    value
}

/// A job as JSON: its stored document plus the store's version.
pub fn job_json(job: &Job) -> serde_json::Value {
    let mut value = job.to_document();
    if let Some(map) = value.as_object_mut() {
        map.insert("version".to_owned(), job.version.into());
    }
    value
}

/// A schedule for people: `cron 0 9 * * * (+02:00)`, `cron 0 9 * * 1-5 (Europe/Berlin)`,
/// `every 10m`, `once at 2026-... UTC`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cairn_cli::jobs::describe_schedule;
/// use cairn_scheduler::Schedule;
///
/// let every = Schedule::every(Duration::from_secs(600))?;
/// assert_eq!(describe_schedule(&every), "every 10m");
/// let cron = Schedule::cron("0 30 2 * * *", "+01:00".parse()?)?;
/// assert_eq!(describe_schedule(&cron), "cron 0 30 2 * * * (+01:00)");
/// let berlin = Schedule::cron("0 9 * * 1-5", "Europe/Berlin".parse()?)?;
/// assert_eq!(describe_schedule(&berlin), "cron 0 9 * * 1-5 (Europe/Berlin)");
/// # Ok::<(), cairn_scheduler::Error>(())
/// ```
pub fn describe_schedule(schedule: &Schedule) -> String {
    match schedule {
        Schedule::Cron { expression, zone } => format!("cron {expression} ({zone})"),
        Schedule::Every { interval_ms } => format!("every {}", describe_interval(*interval_ms)),
        Schedule::Once { at } => format!("once at {} UTC", format_timestamp(at.0)),
    }
}

/// The schedule column of `jobs list`, about `width` characters: a long cron expression is
/// cut, never its zone, which decides when the job runs.
fn schedule_column(schedule: &Schedule, width: usize) -> String {
    match schedule {
        Schedule::Cron { expression, zone } => {
            let zone = format!(" ({zone})");
            let room = width
                .saturating_sub("cron ".len() + zone.chars().count())
                .max(8);
            format!("cron {}{zone}", clip(expression, room))
        }
        other => clip(&describe_schedule(other), width),
    }
}

fn describe_interval(ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ];
    for (size, unit) in UNITS {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}
