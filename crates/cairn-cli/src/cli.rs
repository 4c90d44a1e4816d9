//! The command line: clap definitions and the exit codes.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::store::Adapter;

/// The run (or command) succeeded, or there was nothing to do (`resume` of a completed run).
pub const EXIT_OK: u8 = 0;
/// The run failed: a task failed after its attempts (the run can be resumed by id).
pub const EXIT_RUN_FAILED: u8 = 1;
/// The request itself is wrong, so nothing was started or changed: a bad workflow file, bad
/// usage, an unknown or quarantined run id, or a run in the wrong state for the command.
pub const EXIT_USAGE: u8 = 2;
/// The latest run of this workflow and scope failed and no terminal was there to ask (the
/// three ways forward were printed), or it was quarantined before it finished (the two ways
/// forward were printed); nothing was started.
pub const EXIT_DECISION_NEEDED: u8 = 3;
/// The run was interrupted (Ctrl-C, SIGTERM) and left resumable; the resume command was
/// printed.
pub const EXIT_INTERRUPTED: u8 = 4;
/// The state store failed, or a run is held by another live process.
pub const EXIT_STORE: u8 = 5;
/// A command that only reads (`runs`, `show`, `audit`, `logs`, `jobs list|show|audit`,
/// `completions`) could not write its output: stdout failed for a reason other than a
/// closed pipe (a full disk behind a redirect), so what was written is incomplete.
pub const EXIT_OUTPUT: u8 = 7;

const EXIT_CODES: &str = "\
Exit codes:
  0  success; also `cairn resume` of a completed run (nothing to do)
  1  the run failed (a task failed after its attempts); the ways forward (resume, abandon
     and re-run, --force) are printed on stderr
  2  the request is wrong, so nothing was started or changed: a bad workflow file or bad
     usage (such as a --scope with control characters), an unknown or quarantined run id,
     or a run in the wrong state for the command (`resume` of an abandoned run, `abandon`
     of a finished one)
  3  the latest run of this workflow and scope failed and stdin/stdout is not a terminal:
     the three ways forward (resume, abandon and re-run, --force) are printed on stderr;
     or its state was quarantined before it finished, so which tasks were done is unknown:
     the two ways forward (abandon it and re-run, --force) are printed; or a run the store
     cannot read at all may be one of this workflow's (make it readable, or --force);
     nothing ran
  4  interrupted by Ctrl-C or SIGTERM; the run is left resumable and the command to resume
     it is printed
  5  the state store failed (a run it stopped mid-run, or whose end it could not record,
     is resumed with the printed `cairn resume` command once the store is fixed), or
     another live process is driving the run (run, resume)
  7  a command that only reads (runs, show, audit, logs, jobs list|show|audit, completions)
     could not write its output: stdout failed (a full disk behind a redirect), so what
     it wrote is incomplete
A closed stdout (`cairn run wf.toml | head -1`) changes nothing: the output is dropped, a
run is still driven to its end, and the exit code is the one above. Any other stdout
failure is named once on stderr; it changes the exit code of read commands only (7).
`cairn abandon`, `cairn runs prune` and `cairn jobs` list their own codes in their help.";

/// cairn: durable, crash-resumable workflows of shell commands.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, after_long_help = EXIT_CODES, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a workflow file; resumes its interrupted run if there is one.
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// List runs (by default those not completed or abandoned); `cairn runs prune` removes
    /// old completed and abandoned runs.
    Runs(RunsArgs),
    /// Show a run and its task table.
    Show(RunRef),
    /// Resume a failed or interrupted run by id (failed tasks get another go).
    #[command(after_help = EXIT_CODES)]
    Resume(ResumeArgs),
    /// Abandon a failed, paused or interrupted run (it becomes cancelled; its state is kept).
    /// A run that a live process drives, or whose last driver has not exited, is refused;
    /// `--force` overrides a last driver that cannot be checked (it ran on another host).
    #[command(after_help = ABANDON_HELP)]
    Abandon(AbandonArgs),
    /// Print a run's audit log (recovery decisions).
    Audit(RunRef),
    /// Print the saved output of a task of a run (its latest attempt, stdout then stderr), or
    /// list the saved output files of every task.
    Logs(LogsArgs),
    /// Manage scheduled jobs: a workflow file run on a cron schedule, at an interval, or once.
    #[command(subcommand, after_help = crate::jobs::JOBS_EXIT_CODES)]
    Jobs(crate::jobs::JobsCommand),
    /// Run due jobs in the foreground until Ctrl-C or SIGTERM.
    #[command(after_help = crate::scheduler::SCHEDULER_AFTER_HELP)]
    Scheduler(crate::scheduler::SchedulerArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Whether the command's only product is what it prints: a listing or a report that
    /// changes nothing (`runs` without `prune`, `show`, `audit`, `logs`, `jobs list|show|audit`,
    /// `completions`). Such a command exits with [`EXIT_OUTPUT`] when its output could not
    /// be written.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_cli::cli::Cli;
    /// use clap::Parser as _;
    ///
    /// let show = Cli::parse_from(["cairn", "show", "r1"]);
    /// assert!(show.command.only_reads());
    /// let run = Cli::parse_from(["cairn", "run", "wf.toml"]);
    /// assert!(!run.command.only_reads());
    /// ```
    pub fn only_reads(&self) -> bool {
        use crate::jobs::JobsCommand;
        match self {
            Command::Runs(args) => args.command.is_none(),
            Command::Show(_)
            | Command::Audit(_)
            | Command::Logs(_)
            | Command::Completions { .. } => true,
            Command::Jobs(jobs) => matches!(
                jobs,
                JobsCommand::List(_) | JobsCommand::Show(_) | JobsCommand::Audit(_)
            ),
            Command::Run(_) | Command::Resume(_) | Command::Abandon(_) | Command::Scheduler(_) => {
                false
            }
        }
    }
}

/// Where the runs are kept.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The state folder [default for `run`: `.cairn/` next to the workflow file; for the other
    /// commands: `.cairn/` in the current folder].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// The checkpoint adapter.
    #[arg(long, value_enum, default_value_t = Adapter::File)]
    pub adapter: Adapter,
    /// Machine-readable output: JSON lines.
    #[arg(long)]
    pub json: bool,
}

/// Execution settings shared by `run` and `resume`.
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// Most tasks running at once (for `cairn scheduler`: in each run; see --max-running-jobs).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// How long running tasks may finish after Ctrl-C or SIGTERM before they are killed.
    #[arg(long, default_value = "10s", value_parser = parse_duration_arg)]
    pub grace: std::time::Duration,
}

/// A duration flag (`--grace`, `--older-than`), in `duration::parse_duration`'s format.
/// The longest `--input`: each command gets it as the environment entry
/// `CAIRN_INPUT=<input>`, which the OS takes up to `MAX_ARG_STRLEN` bytes with its NUL.
pub const MAX_INPUT_BYTES: usize =
    crate::workflow::MAX_ARG_BYTES - 1 - crate::shell::INPUT_VAR.len() - 1;

/// Refuses an `--input` the OS could not pass to the commands before anything starts:
/// every task of the run (and of every resume) would fail to start. Checked after parsing,
/// not by clap, whose error would quote the whole input.
///
/// # Errors
///
/// The input's length and the limit, as a usage error (exit 2).
pub fn check_input(input: &str) -> Result<(), crate::app::UsageError> {
    if input.len() > MAX_INPUT_BYTES {
        return Err(crate::app::UsageError(format!(
            "--input is {} bytes long; it may be at most {MAX_INPUT_BYTES} bytes: each command gets it as the environment entry `{}=...`, and the OS limit for one environment entry is {} bytes (MAX_ARG_STRLEN). Put a long input in a file and pass its path; nothing was started",
            input.len(),
            crate::shell::INPUT_VAR,
            crate::workflow::MAX_ARG_BYTES - 1
        )));
    }
    Ok(())
}

fn parse_duration_arg(text: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse_duration(text).map_err(|e| e.to_string())
}

/// `cairn run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The workflow file (TOML).
    pub workflow: PathBuf,
    /// Text stored with the run (what it is for); shown when a failed run is reported. It
    /// may start with `-` (`--input -v`), as the commands cairn prints may have it
    /// [default: none].
    // No clap default, so that "not given" can be told from an empty input: only an input
    // that was asked for can be reported as not used.
    #[arg(long, allow_hyphen_values = true)]
    pub input: Option<String>,
    /// What the run belongs to; runs of one workflow in different scopes are independent
    /// (not empty, at most 256 bytes).
    #[arg(long, default_value = "default", allow_hyphen_values = true)]
    pub scope: String,
    /// Start a fresh run even though the latest run failed (that run is left as it is).
    #[arg(long)]
    pub force: bool,
    /// Store settings.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Execution settings.
    #[command(flatten)]
    pub exec: ExecArgs,
}

impl RunArgs {
    /// The input: the `--input` given, or none (empty).
    pub fn input(&self) -> &str {
        self.input.as_deref().unwrap_or_default()
    }
}

/// A command about one run.
#[derive(Debug, Clone, Args)]
pub struct RunRef {
    /// The run id.
    pub run: String,
    /// Store settings.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// What `cairn logs` prints.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The run id.
    pub run: String,
    /// The task, by its workflow id. Without it, every saved output file of the run is
    /// listed (task, attempt, stream, size, path).
    pub task: Option<String>,
    /// The attempt, as the listing names it: `2`, or `1-2` for attempt 1 of a failed run's
    /// resume [default: the task's latest]
    #[arg(long, requires = "task")]
    pub attempt: Option<String>,
    /// Only this stream, printed as it is with no header line (for pipes)
    #[arg(long, value_enum)]
    pub stream: Option<crate::logs::Stream>,
    /// Keep printing the task's output as its command writes it, attempt after attempt,
    /// until the task is finished (done, skipped, failed or blocked) or its run stops being
    /// driven. Not with --attempt or --json.
    #[arg(long, short = 'f', requires = "task", conflicts_with = "attempt")]
    pub follow: bool,
    /// Store settings.
    #[command(flatten)]
    pub store: StoreArgs,
}

const ABANDON_HELP: &str = "\
An interrupted run (left `running` by a crash) is abandoned only when the process that last
drove it is known to have exited: it ran on this host and its pid is gone. When that cannot be
checked (it ran on another host, or this host has no /proc), the run is refused unless
--force is given. Use --force only when that host is gone for good: if the old driver is in
fact still alive, it keeps running the tasks it had started for a run that is now cancelled
(nothing resumes that run again, so no task of it completes twice). --force never overrides a
run that a live process drives, nor a last driver alive on this host (stop it first). A
forced abandon is audited (`cairn audit RUN`) with the owner and lease epoch it overrode.

The commands an interrupted run's driver left running (after a kill -9) are killed once the
run is abandoned, as a resume kills them, and each is named. A group that cannot be stopped
from here (it outlived SIGKILL, this host has no /proc, or a forced abandon's last driver ran
on another host) is named on stderr with its process group id and how to stop it.

A run whose state was quarantined (damaged, so nothing can resume it) is abandoned by giving
up its lost progress: its audit log records it, its state stays in the quarantine folder, and
the next `cairn run` of its workflow and scope starts afresh instead of asking first.

Exit codes:
  0  abandoned
  2  refused (unknown run, already finished or already abandoned, driven right now, last
     driver not shown to have exited) or bad usage; the run was not abandoned
  5  the state store failed; when only the audit record could not be written, the run IS
     abandoned (printed as such, `\"audited\": false` with --json) and stderr says so";

/// `cairn abandon`.
#[derive(Debug, Clone, Args)]
pub struct AbandonArgs {
    /// The run.
    #[command(flatten)]
    pub target: RunRef,
    /// Also abandon an interrupted run whose last driver cannot be checked from here (it ran
    /// on another host); audited as forced. Never overrides a live driver.
    #[arg(long)]
    pub force: bool,
}

/// `cairn resume`.
#[derive(Debug, Clone, Args)]
pub struct ResumeArgs {
    /// The run.
    #[command(flatten)]
    pub target: RunRef,
    /// Take the workflow file as it is now for the tasks that have not finished (a fixed
    /// command, env, timeout or max_attempts); done tasks are not run again. Refused, with
    /// nothing changed (exit 2), when tasks were added, removed, renamed or reordered, a
    /// `depends_on` changed, or a done or skipped task changed.
    #[arg(long)]
    pub reload: bool,
    /// Execution settings.
    #[command(flatten)]
    pub exec: ExecArgs,
}

/// `cairn runs`.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunsArgs {
    /// What to do with the runs; without a subcommand they are listed.
    #[command(subcommand)]
    pub command: Option<RunsCommand>,
    /// Include completed and abandoned runs.
    #[arg(long)]
    pub all: bool,
    /// Only runs in this status; repeat or separate with commas (`--status failed,interrupted`).
    /// `running` is a run a live process drives; `interrupted` is stored as running with no
    /// process behind it. Naming `completed` or `cancelled` needs no --all.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "STATUS")]
    pub status: Vec<StatusFilter>,
    /// Only runs of this workflow (its `name`).
    #[arg(long, value_name = "NAME")]
    pub workflow: Option<String>,
    /// Only runs in this scope (`job-<id>` for a scheduled job's runs).
    #[arg(long, value_name = "SCOPE")]
    pub scope: Option<String>,
    /// Only runs created within this long before now: a number and a unit (ms, s, m, h, d),
    /// e.g. `1d`, `90m`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
    pub since: Option<std::time::Duration>,
    /// Only the newest N of the runs the other options select (still listed oldest first).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// List the runs whose state was moved to quarantine instead: what each was, when and
    /// why it was moved, where its state is kept, and whether it was abandoned.
    #[arg(long, conflicts_with_all = ["all", "status", "workflow", "scope", "since", "limit"])]
    pub quarantined: bool,
    /// Store settings.
    #[command(flatten)]
    pub store: StoreArgs,
}

/// A status `cairn runs --status` selects. `Running` and `Interrupted` split the stored
/// `running` status by whether a live process holds the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFilter {
    /// Driven by a live process right now.
    Running,
    /// Stored as running, but no process drives it (waits for `cairn resume` or `abandon`).
    Interrupted,
    /// Waiting on an approval.
    Paused,
    /// Failed; waits for `cairn resume` or `abandon`.
    Failed,
    /// Finished successfully.
    Completed,
    /// Abandoned.
    #[value(alias = "abandoned")]
    Cancelled,
}

/// `cairn runs` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum RunsCommand {
    /// Remove completed and abandoned runs that finished longer ago than --older-than, with
    /// their captured output (failed runs too with --include-failed). Paused and running
    /// runs are never removed.
    #[command(after_help = PRUNE_HELP, after_long_help = PRUNE_HELP)]
    Prune(PruneArgs),
}

/// The help after `cairn runs prune --help`: what is removed, an example, the exit codes.
pub const PRUNE_HELP: &str = "\
Removes each `completed` or `cancelled` (abandoned) run whose finished time is older than
--older-than: its state in the store (metadata, journal, snapshot, audit log) and its folder
under <state-dir>/output/ (captured output and the workflow copy). Paused and running (or
interrupted) runs are never removed, whatever their age, nor is quarantined state. Failed runs
are kept too, unless --include-failed says to abandon and remove those that failed before the
cutoff (a failed run waits for a person's decision; a scheduled job's failed runs are
superseded by its later ticks and pile up). A removed run's id is free again. Removal is
crash-safe: a run is either whole or gone. A crash between removing a run and its output
folder leaves the folder; later prunes remove such a folder (`removed output folder ... (its
run ... no longer exists)`) once it has not changed for an hour and since before the cutoff,
and never one whose run is quarantined or damaged, or one cairn did not make.

A run that cannot be removed right now (a live process holds it, or it changed meanwhile) is
named on stderr with the reason and skipped; the others are still removed. Run the command
again later.

Example: remove what finished more than 30 days ago, after looking at the list first:
  cairn runs prune --older-than 30d --dry-run
  cairn runs prune --older-than 30d
And the failed runs of scheduled jobs older than a week with them:
  cairn runs prune --older-than 7d --include-failed

Exit codes:
  0  every eligible run was removed (or none was eligible; or --dry-run)
  2  bad usage (a bad --older-than duration, no state folder); nothing was removed
  5  the state store failed (runs before the failure were removed and printed), or some
     eligible runs were skipped or their output folder could not be deleted (each is named
     on stderr with the reason)";

/// `cairn runs prune`.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Remove runs that finished longer ago than this: a number and a unit (ms, s, m, h, d),
    /// e.g. `30d`, `12h`, `1d12h`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
    pub older_than: std::time::Duration,
    /// Also remove `failed` runs that failed longer ago than --older-than: each is abandoned
    /// (it becomes cancelled, as `cairn abandon` does), then removed. For job runs a later
    /// tick has superseded, which no one will resume. A run that changed since it was
    /// listed (being resumed, say) is skipped.
    #[arg(long)]
    pub include_failed: bool,
    /// Print what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Store settings.
    #[command(flatten)]
    pub store: StoreArgs,
}
