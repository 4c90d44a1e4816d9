//! The commands: what `cairn run`, `runs` (and `runs prune`), `show`, `resume`, `abandon`
//! and `audit` do, and the drive of a run with its progress display and signal handling.

use std::collections::BTreeSet;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use cairn_checkpoint::{RunFilter, RunId, RunMeta, RunStatus};
use cairn_executor::{
    Disposition, Executor, ExecutorConfig, Registry, RunPlan, RunReport, RunSignals, RunStop, Start,
};
use cairn_queue::{Event, Status};
use cairn_runs::{
    Decision, FailedRunPrompt, FreshRun, OwnerLiveness, QuarantinedRunPrompt, ResumePolicy,
    RunRequest,
};
use clap::CommandFactory as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::{
    AbandonArgs, Cli, Command, EXIT_DECISION_NEEDED, EXIT_INTERRUPTED, EXIT_OK, EXIT_OUTPUT,
    EXIT_RUN_FAILED, EXIT_STORE, EXIT_USAGE, ExecArgs, LogsArgs, PruneArgs, ResumeArgs, RunArgs,
    RunRef, RunsArgs, RunsCommand, StoreArgs,
};
use crate::duration::format_duration;
use crate::out::{self, cell, clip, eout, eoutln, escape_controls, out, outln, terminal_safe};
use crate::policy;
use crate::progress::{Mode, Progress, TaskEvent};
use crate::reload::{self, Reload};
use crate::shell::{
    Leftover, ProcessGroups, Reaped, SHELL_KIND, ShellHandler, reap_leftovers, recorded_leftovers,
};
use crate::store::{Adapter, LeftInPlaceNote, StateDir, absolute};
use crate::workflow::{self, Workflow, WorkflowError};

/// A usage problem found after argument parsing (an unknown run id, a bad id).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A command about one run found its state damaged and could not move it to quarantine (the
/// state folder is read-only, or this user may not write it): nothing was done. Exit 5, as
/// the store is what has to be fixed; the text says how.
#[derive(Debug)]
pub struct RunLeftInPlace(pub LeftInPlaceNote);

impl std::fmt::Display for RunLeftInPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "nothing was done: {}", self.0)
    }
}

impl std::error::Error for RunLeftInPlace {}

/// Prints a shell completion script for `cairn`. The script is generated into memory first:
/// `clap_complete` panics when its writer fails, and stdout may be a closed pipe
/// (`cairn completions bash | head -1`), which `out!` turns into a quiet exit 0.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "cairn", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    if out::stdout_failed() {
        ExitCode::from(EXIT_OUTPUT)
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs a parsed command and returns the process exit code. The binary installs telemetry
/// before calling this (a library never installs a global subscriber).
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eoutln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_STORE);
        }
    };
    let only_reads = cli.command.only_reads();
    let result = runtime.block_on(dispatch(cli));
    match result {
        // A listing cut short by a full disk must not read as a complete one; a more
        // specific failure code is kept.
        Ok(EXIT_OK) if only_reads && out::stdout_failed() => ExitCode::from(EXIT_OUTPUT),
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            // Errors can quote stored text (a scope, a task's output): never raw.
            eoutln!("error: {}", terminal_safe(&error_text(&error)));
            if let Some(run_id) = damaged_run(&error) {
                eoutln!(
                    "hint: the stored state of run {run_id} is damaged, so it cannot be resumed; \
                     its files are left as they are for inspection. To give it up and start \
                     over: `cairn abandon {run_id}` (with the same --state-dir, if you gave \
                     one), then run the workflow again."
                );
            }
            ExitCode::from(exit_code_of(&error))
        }
    }
}

/// An error and its causes on one line, `outer: cause: root`, like `{:#}`, except that a
/// cause whose text the line already holds is left out: many library errors print their
/// source inside their own message and also return it as `source()`, which `{:#}` would
/// print twice.
///
/// # Examples
///
/// ```
/// use anyhow::Context as _;
///
/// let io = std::io::Error::other("disk on fire");
/// let error = anyhow::Error::new(io)
///     .context("write failed on /x: disk on fire")
///     .context("cannot save run r1");
/// assert_eq!(
///     cairn_cli::app::error_text(&error),
///     "cannot save run r1: write failed on /x: disk on fire"
/// );
/// ```
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

/// The store errors in `error`'s chain, including one a `cairn_runs::Error::Storage` wraps
/// (transparently, so its `source` skips it).
fn store_errors<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a cairn_checkpoint::Error> {
    std::iter::successors(Some(error), |cause| cause.source()).filter_map(|cause| {
        cause.downcast_ref::<cairn_checkpoint::Error>().or(
            match cause.downcast_ref::<cairn_runs::Error>() {
                Some(cairn_runs::Error::Storage(inner)) => Some(inner),
                _ => None,
            },
        )
    })
}

/// Whether `error` is a store's refusal of state a newer cairn build wrote: this build
/// leaves such a run as it is, so no command of this build can resume or abandon it.
fn newer_format(error: &anyhow::Error) -> bool {
    store_errors(error.as_ref())
        .any(|store| matches!(store, cairn_checkpoint::Error::NewerFormat { .. }))
}

/// The run whose stored state `error` found damaged (`Corruption`: not a torn last record,
/// which is cut, nor bad state, which is quarantined), if any.
fn damaged_run(error: &anyhow::Error) -> Option<cairn_checkpoint::RunId> {
    store_errors(error.as_ref()).find_map(|store| match store {
        cairn_checkpoint::Error::Corruption { run_id, .. } => Some(run_id.clone()),
        _ => None,
    })
}

/// Whether `error` says the store moved a run to quarantine on the way: opening or claiming
/// it met damaged or foreign state (a folder or FIFO where one of its files belongs, say).
/// The command then decides again, about the quarantined run, instead of failing.
fn quarantined_on_the_way(error: &(dyn std::error::Error + 'static)) -> bool {
    let moved = store_errors(error).any(|store| {
        matches!(
            store,
            cairn_checkpoint::Error::Unreadable { .. }
                | cairn_checkpoint::Error::VersionMismatch { .. }
                | cairn_checkpoint::Error::ForeignRun { .. }
        )
    });
    moved
        || std::iter::successors(Some(error), |cause| cause.source()).any(|cause| {
            matches!(
                cause.downcast_ref::<cairn_executor::Error>(),
                Some(cairn_executor::Error::AdoptRefused { .. })
            )
        })
}

/// Bad workflows and usage (an unknown run, a run in the wrong state for the command) are 2;
/// everything else (the store, a live writer) is 5.
fn exit_code_of(error: &anyhow::Error) -> u8 {
    let usage = error.chain().any(|cause| {
        cause.downcast_ref::<WorkflowError>().is_some()
            || cause.downcast_ref::<UsageError>().is_some()
            || cause.downcast_ref::<cairn_runs::Error>().is_some_and(|e| {
                matches!(
                    e,
                    cairn_runs::Error::NotFound { .. }
                        | cairn_runs::Error::NotResumable { .. }
                        | cairn_runs::Error::AlreadyTerminal { .. }
                        | cairn_runs::Error::StillRunning { .. }
                        | cairn_runs::Error::HeldByWriter { .. }
                        | cairn_runs::Error::ClaimedDuringAbandon { .. }
                        | cairn_runs::Error::OwnerAlive { .. }
                        | cairn_runs::Error::ApprovalMismatch { .. }
                )
            })
    });
    if usage { EXIT_USAGE } else { EXIT_STORE }
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(args) => cmd_run(args).await,
        Command::Runs(mut args) => match args.command.take() {
            Some(RunsCommand::Prune(prune)) => cmd_prune(prune).await,
            None => cmd_runs(args).await,
        },
        Command::Show(args) => cmd_show(args).await,
        Command::Resume(args) => match cmd_resume(args.clone()).await {
            // Opening the run met damaged or foreign state and moved it to quarantine: say
            // so, then answer as for any quarantined run (refused, with the ways forward).
            Err(error) if quarantined_on_the_way(error.as_ref()) => {
                eoutln!("warning: {}", terminal_safe(&format!("{error:#}")));
                cmd_resume(args).await
            }
            resumed => resumed,
        },
        Command::Abandon(args) => cmd_abandon(args).await,
        Command::Audit(args) => cmd_audit(args).await,
        Command::Logs(args) => cmd_logs(args).await,
        Command::Jobs(command) => crate::jobs::run(command).await,
        Command::Scheduler(args) => crate::scheduler::run(args).await,
        Command::Completions { .. } => Ok(EXIT_OK),
    }
}

/// Renders the exact commands the user is told to type.
#[derive(Debug, Clone)]
struct Commands {
    workflow: String,
    scope: String,
    input: String,
    state_dir: String,
    explicit_state_dir: bool,
    adapter: Adapter,
}

impl Commands {
    fn store_flags(&self, always_state_dir: bool) -> String {
        let mut out = String::new();
        if always_state_dir || self.explicit_state_dir {
            out.push_str(" --state-dir ");
            out.push_str(&shell_quote(&self.state_dir));
        }
        if self.adapter != Adapter::File {
            out.push_str(" --adapter ");
            out.push_str(self.adapter.as_str());
        }
        out
    }

    fn run(&self, force: bool) -> String {
        format!(
            "cairn run {}{}",
            shell_quote(&self.workflow),
            self.run_flags(force)
        )
    }

    /// What follows the workflow file in [`Commands::run`].
    fn run_flags(&self, force: bool) -> String {
        let mut out = String::new();
        if self.scope != "default" {
            out.push_str(" --scope ");
            out.push_str(&shell_quote(&self.scope));
        }
        if !self.input.is_empty() {
            out.push_str(" --input ");
            out.push_str(&shell_quote(&self.input));
        }
        out.push_str(&self.store_flags(false));
        if force {
            out.push_str(" --force");
        }
        out
    }

    fn resume(&self, run_id: &RunId) -> String {
        format!("cairn resume {run_id}{}", self.store_flags(true))
    }

    fn abandon(&self, run_id: &RunId) -> String {
        format!("cairn abandon {run_id}{}", self.store_flags(true))
    }

    fn logs(&self, run_id: &RunId) -> String {
        format!("cairn logs {run_id} TASK{}", self.store_flags(true))
    }

    fn ways_forward(&self, run_id: &RunId) -> [(&'static str, String); 3] {
        [
            (
                "resume it (failed tasks run again; done tasks do not)",
                self.resume(run_id),
            ),
            (
                "abandon it, then run afresh",
                format!("{} && {}", self.abandon(run_id), self.run(false)),
            ),
            ("run afresh and leave it as it is", self.run(true)),
        ]
    }
}

/// Quotes a word for a POSIX shell when it needs it.
pub(crate) fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=@%+,".contains(&b));
    if safe {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn progress_mode(json: bool) -> Mode {
    if json {
        Mode::Json
    } else if std::io::stdout().is_terminal() {
        Mode::Live
    } else {
        Mode::Plain
    }
}

fn open_state(store: &StoreArgs, default_root: PathBuf) -> anyhow::Result<StateDir> {
    let root = store.state_dir.clone().unwrap_or(default_root);
    StateDir::open(&root, store.adapter)
}

/// Opens the state folder of the commands about existing runs, which never create one.
fn open_existing_state(store: &StoreArgs) -> anyhow::Result<StateDir> {
    let root = store
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(".cairn"));
    if root.exists() && !root.is_dir() {
        // Often the workflow file itself; "no state folder" would hide the mix-up.
        return Err(UsageError(format!(
            "{} is a file, not a state folder; pass --state-dir with the folder (for `cairn run x/wf.toml` it is x/.cairn)",
            root.display()
        ))
        .into());
    }
    if !root.is_dir() {
        return Err(UsageError(format!(
            "there is no state folder at {}; pass --state-dir (for `cairn run x/wf.toml` it is x/.cairn)",
            root.display()
        ))
        .into());
    }
    StateDir::open(&root, store.adapter)
}

/// Takes the state folder's lock on a workflow and scope ([`StateDir::lock_scope`]). When
/// another process holds it, the refusal also names the run that process is driving, if it
/// has begun one, so the user can look at it.
async fn lock_scope(
    state: &StateDir,
    workflow: &str,
    scope: &str,
) -> anyhow::Result<crate::store::ScopeLock> {
    let error = match state.lock_scope(workflow, scope) {
        Ok(lock) => return Ok(lock),
        Err(error) if error.downcast_ref::<crate::store::ScopeBusy>().is_some() => error,
        Err(error) => return Err(error),
    };
    let filter = RunFilter {
        workflow: Some(workflow.to_owned()),
        scope: Some(scope.to_owned()),
        statuses: vec![RunStatus::Running],
    };
    let newest = state
        .factory
        .list(&filter)
        .await
        .ok()
        .and_then(|runs| runs.into_iter().last());
    Err(match newest {
        Some(meta) => error.context(format!(
            "run {} is the run being driven (see it with `cairn show {} --state-dir {}`)",
            meta.run_id,
            meta.run_id,
            shell_quote(&state.root.display().to_string())
        )),
        None => error,
    })
}

/// Refuses a `--scope` with control characters: the scope is shown in every listing, and an
/// escape sequence in it would drive the terminal of whoever lists the runs. Checked here
/// rather than by clap, whose error would print the value raw. An empty scope is refused
/// too: it is most often an unset variable (`--scope "$TENANT"`), which would silently
/// share one run between every caller that lacks it; and a scope is capped as a workflow's
/// name is, for the same one-line messages and tables.
fn check_scope(scope: &str) -> anyhow::Result<()> {
    if scope.is_empty() {
        return Err(UsageError(
            "--scope must not be empty (leave it out for the scope `default`); nothing was started"
                .to_owned(),
        )
        .into());
    }
    if scope.len() > workflow::MAX_NAME_BYTES {
        return Err(UsageError(format!(
            "--scope is {} bytes long; at most {} are allowed (it is printed in one-line messages and tables); nothing was started",
            scope.len(),
            workflow::MAX_NAME_BYTES
        ))
        .into());
    }
    if scope.chars().any(char::is_control) {
        return Err(UsageError(format!(
            "--scope must not contain control characters (an escape, a newline, a tab, ...); got \"{}\"; nothing was started",
            escape_controls(scope)
        ))
        .into());
    }
    Ok(())
}

fn parse_run_id(text: &str) -> anyhow::Result<RunId> {
    // The id's own error names the text already; a very long one is cut.
    RunId::new(text).map_err(|error| UsageError(clip(&error.to_string(), 300)).into())
}

async fn cmd_run(args: RunArgs) -> anyhow::Result<u8> {
    check_scope(&args.scope)?;
    crate::cli::check_input(args.input())?;
    let text = workflow::read_source(&args.workflow)?;
    let wf = workflow::parse(&args.workflow, &text)?;
    let state = open_state(&args.store, default_state_dir(&args.workflow))?;
    let commands = Commands {
        workflow: args.workflow.display().to_string(),
        scope: args.scope.clone(),
        input: args.input().to_owned(),
        state_dir: state.root.display().to_string(),
        explicit_state_dir: args.store.state_dir.is_some(),
        adapter: args.store.adapter,
    };
    let mode = progress_mode(args.store.json);
    // Held until the drive ends: another `cairn run` of this workflow and scope must not
    // decide anything between this one's decision and the start of its run.
    let _scope_lock = lock_scope(&state, &wf.name, &args.scope).await?;
    let policy = ResumePolicy::new(Arc::clone(&state.factory));
    let mut request = RunRequest::new(wf.name.clone(), args.scope.clone(), args.input().to_owned());
    if args.force {
        request = request.force();
    }
    // The policy lists this workflow's runs, and the store quarantines a damaged one it
    // meets there: say so, as `cairn runs` does.
    let before = state.quarantine_locations().await;
    let decision = match policy.decide(&request).await {
        // Claiming the run met foreign state and moved the run aside: decide again, now
        // about the quarantined run.
        Err(error) if quarantined_on_the_way(&error) => policy.decide(&request).await?,
        decided => decided?,
    };
    for note in state.newly_quarantined(&before).await {
        eoutln!("warning: {note}");
    }
    let left = state.left_in_place().await;
    for note in &left {
        eoutln!("warning: {note}");
    }
    // A run the store cannot read is not "no run": if it may be one of this workflow's, a
    // fresh run could repeat the tasks it had done, beside commands it left running.
    if matches!(decision, Decision::Fresh(_)) && !args.force {
        for note in &left {
            let id = &note.run.run_id;
            let ours = state
                .load_origin(id)
                .map_or(true, |origin| origin.name == wf.name);
            if ours {
                if mode == Mode::Json {
                    outln!(
                        "{}",
                        serde_json::json!({
                            "event": "decision_needed", "run_id": id.as_str(),
                            "status": "unreadable", "reason": note.run.reason,
                            "location": note.run.at,
                            "commands": {"force": commands.run(true)},
                        })
                    );
                }
                eoutln!(
                    "error: run {id} cannot be read ({}), and it may be a run of workflow `{}` (its recorded workflow {}), so no fresh run was started: it could repeat tasks that run had done, beside commands it may have left running. Make its files readable again ({}) and `cairn run` resumes it, or pass --force to start afresh anyway",
                    terminal_safe(&note.run.reason),
                    escape_controls(&wf.name),
                    if state.load_origin(id).is_ok() {
                        "has this name"
                    } else {
                        "cannot be read either"
                    },
                    terminal_safe(&note.run.at),
                );
                return Ok(EXIT_DECISION_NEEDED);
            }
        }
    }
    let ctx = RunContext {
        state: &state,
        wf: &wf,
        text: &text,
        args: &args,
        mode,
        commands: &commands,
        policy: &policy,
        request: &request,
    };
    ctx.act(decision, true).await
}

/// What `cairn run` acts on.
struct RunContext<'a> {
    state: &'a StateDir,
    wf: &'a Workflow,
    text: &'a str,
    args: &'a RunArgs,
    mode: Mode,
    commands: &'a Commands,
    policy: &'a ResumePolicy,
    request: &'a RunRequest,
}

impl RunContext<'_> {
    /// Carries out the policy's decision. `may_ask` is false after the user already chose.
    async fn act(&self, decision: Decision, may_ask: bool) -> anyhow::Result<u8> {
        match decision {
            Decision::Fresh(fresh) => {
                if let Some(past) = &fresh.forced_past {
                    let text = if self.state.quarantine_of(past).await.is_some() {
                        format!(
                            "starting a fresh run past quarantined run {past}: its state stays in quarantine, its done tasks run again, and later runs no longer ask about it"
                        )
                    } else {
                        format!(
                            "starting a fresh run past run {past}, which is left as it is (resume it by id any time)"
                        )
                    };
                    self.note(&text);
                }
                drive_fresh(
                    self.state,
                    self.wf,
                    self.text,
                    self.args,
                    (self.policy, fresh),
                    self.mode,
                    self.commands,
                )
                .await
            }
            Decision::Resume(resumed) => {
                let rerun = self.commands.run(false);
                if resumed.previous_status == RunStatus::Running {
                    let yours_next = self.warn_input_not_used(&resumed.meta);
                    let driven = drive_interrupted(
                        self.state,
                        &resumed.meta,
                        Source::Given(self.wf),
                        self.mode,
                        &self.args.exec,
                        self.commands,
                        rerun,
                    )
                    .await;
                    match driven {
                        // Opening it met damaged or foreign state, now in quarantine: what
                        // to do about that is the user's choice, as for any quarantined run.
                        Err(error) if may_ask && quarantined_on_the_way(error.as_ref()) => {
                            eoutln!("warning: {}", terminal_safe(&format!("{error:#}")));
                            let again = self.policy.decide(self.request).await?;
                            Box::pin(self.act(again, false)).await
                        }
                        // The interrupted run is done; what was asked for (another input)
                        // runs now, so the exit code is that run's.
                        Ok(EXIT_OK) if yours_next => {
                            self.note(&format!(
                                "run {} (its own input) completed; now running your input",
                                resumed.meta.run_id
                            ));
                            let again = self.policy.decide(self.request).await?;
                            Box::pin(self.act(again, false)).await
                        }
                        Ok(code) if yours_next => {
                            let text = format!(
                                "warning: your input was not run: run {} did not complete, and it goes first. To run your input anyway, leaving that run as it is:\n  {}\n",
                                resumed.meta.run_id,
                                self.commands.run(true)
                            );
                            if self.mode != Mode::Json {
                                eout!("{}", terminal_safe(&text));
                            }
                            Ok(code)
                        }
                        driven => driven,
                    }
                } else {
                    // Only an approval claims a failed or paused run inside `decide`, and this
                    // CLI sends none; read what the drive needs as soon as possible anyway.
                    let failed = FailedRun::read(self.state, &resumed.meta.run_id).await?;
                    drive_failed(
                        self.state,
                        &resumed.meta,
                        resumed.previous_status,
                        failed,
                        Source::Given(self.wf),
                        self.mode,
                        &self.args.exec,
                        self.commands,
                        rerun,
                    )
                    .await
                }
            }
            Decision::FailedPrompt(prompt) if may_ask => self.ask(prompt).await,
            Decision::FailedPrompt(prompt) => anyhow::bail!(
                "run {} is still failed after the choice; nothing was started",
                prompt.run_id
            ),
            Decision::AwaitingApproval(paused) => {
                let text = format!(
                    "run {} of workflow `{}` (scope `{}`) is paused, waiting for an approval; nothing was started.\n  resume it:\n    {}\n  or run afresh and leave it as it is:\n    {}\n",
                    paused.run_id,
                    escape_controls(&paused.workflow),
                    escape_controls(&paused.scope),
                    self.commands.resume(&paused.run_id),
                    self.commands.run(true)
                );
                if self.mode == Mode::Json {
                    outln!(
                        "{}",
                        serde_json::json!({
                            "event": "decision_needed", "run_id": paused.run_id.as_str(), "status": "paused",
                            "commands": {"resume": self.commands.resume(&paused.run_id), "force": self.commands.run(true)},
                        })
                    );
                } else {
                    eout!("{}", terminal_safe(&text));
                }
                Ok(EXIT_DECISION_NEEDED)
            }
            Decision::Live(live) => Err(anyhow::anyhow!(
                "run {} of workflow `{}` (scope `{}`) is being driven right now by {}, or that process has just claimed it to drive it (lease epoch {}); a second writer is never started, even with --force",
                live.run_id,
                self.wf.name,
                escape_controls(&self.args.scope),
                live.owner
                    .map_or_else(|| "another process".to_owned(), |o| o.to_string()),
                live.lease_epoch
            )),
            Decision::QuarantinePrompt(lost) => Ok(self.lost_progress(&lost)),
            other => anyhow::bail!(
                "the resume policy returned a decision this cairn does not know: {other:?}"
            ),
        }
    }

    /// An interrupted run is resumed before anything new starts, with its own input
    /// (docs/resume-policy.md). When the request asked for another input, the user is told
    /// that it was not used, which run goes on instead, and how to run that input.
    ///
    /// Returns whether it did: a fresh run with the requested input then follows, once the
    /// interrupted run has completed.
    fn warn_input_not_used(&self, meta: &RunMeta) -> bool {
        // No `--input` asked for nothing, so nothing was left unused.
        let Some(requested) = self.args.input.as_deref() else {
            return false;
        };
        if meta.input == requested {
            return false;
        }
        let run_id = &meta.run_id;
        let shown = |input: &str| {
            if input.is_empty() {
                "(none)".to_owned()
            } else {
                input_preview(input)
            }
        };
        let after = self.commands.run(false);
        let abandon_then_run = format!("{} && {after}", self.commands.abandon(run_id));
        if self.mode == Mode::Json {
            outln!(
                "{}",
                serde_json::json!({
                    "event": "input_not_used", "run_id": run_id.as_str(),
                    "input": meta.input, "requested_input": requested,
                    "commands": {"after_this_run": after, "abandon_then_run": abandon_then_run},
                    "runs_next": true,
                })
            );
            return true;
        }
        let text = format!(
            "warning: your input is NOT used by this run. Run {run_id} of workflow `{}` (scope `{}`) was interrupted, and an interrupted run is resumed before anything new starts (even with --force). It goes on with its own input; once it has completed, a fresh run with your input starts.\n  its input (kept):       {}\n  your input (runs next): {}\nTo drop this run instead: stop it now (Ctrl-C), then\n    {abandon_then_run}\n",
            escape_controls(&meta.workflow),
            escape_controls(&meta.scope),
            shown(&meta.input),
            shown(requested),
        );
        eout!("{}", terminal_safe(&text));
        true
    }

    /// The newest run was quarantined before it finished: say what was lost and the two
    /// ways forward, start nothing, and return exit code 3.
    fn lost_progress(&self, lost: &QuarantinedRunPrompt) -> u8 {
        // Without a readable audit log an abandon could not be recorded where the next
        // lookup reads it, so only the forced run is offered then.
        let abandon_then_run = lost.audit_damage.is_none().then(|| {
            format!(
                "{} && {}",
                self.commands.abandon(&lost.run_id),
                self.commands.run(false)
            )
        });
        let force = self.commands.run(true);
        if self.mode == Mode::Json {
            outln!(
                "{}",
                serde_json::json!({
                    "event": "decision_needed", "run_id": lost.run_id.as_str(),
                    "status": "quarantined", "was": lost.status.as_str(),
                    "reason": lost.reason, "location": lost.location,
                    "quarantined_at_ms": lost.quarantined_at.0,
                    "input": lost.prior_input.text,
                    "audit_damage": lost.audit_damage,
                    "commands": {"abandon_then_run": abandon_then_run, "force": force},
                })
            );
            return EXIT_DECISION_NEEDED;
        }
        let mut text = format!(
            "The latest run of workflow `{}` (scope `{}`), {}, was quarantined while {} at {} UTC: its stored state could not be used ({}), so which of its tasks were done is unknown.\n  its state is kept at: {}\nA new run was not started: it would run every task again, including those that had finished. Choose one:\n",
            escape_controls(&lost.workflow),
            escape_controls(&lost.scope),
            lost.run_id,
            lost.status,
            format_timestamp(lost.quarantined_at.0),
            escape_controls(&lost.reason),
            escape_controls(&lost.location),
        );
        match &abandon_then_run {
            Some(command) => text.push_str(&format!(
                "  give up that run's progress (its state stays where it is), then run afresh:\n    {command}\n"
            )),
            None => text.push_str(&format!(
                "  (its audit log cannot be read: {}; so it cannot be abandoned)\n",
                escape_controls(lost.audit_damage.as_deref().unwrap_or_default())
            )),
        }
        text.push_str(&format!(
            "  run afresh and leave it as it is (later runs no longer ask about it):\n    {force}\n"
        ));
        eout!("{}", terminal_safe(&text));
        EXIT_DECISION_NEEDED
    }

    fn note(&self, text: &str) {
        if self.mode != Mode::Json {
            outln!("{text}");
        }
    }

    /// The latest run failed: ask on a terminal, else print the three ways forward and
    /// return exit code 3.
    async fn ask(&self, prompt: FailedRunPrompt) -> anyhow::Result<u8> {
        // `cairn resume` refuses a run whose workflow copy is gone (its output folder was
        // removed, or another program began it), so resuming is not offered for one.
        let copy_missing = self.state.missing_origin(&prompt.run_id);
        let ways: Vec<(char, &str, String)> = ['r', 'a', 'f']
            .into_iter()
            .zip(self.commands.ways_forward(&prompt.run_id))
            .filter(|(key, _)| *key != 'r' || copy_missing.is_none())
            .map(|(key, (what, command))| (key, what, command))
            .collect();
        let command_of = |key: char| {
            ways.iter()
                .find(|(k, ..)| *k == key)
                .map(|(.., command)| command.clone())
        };
        let not_offered = copy_missing.as_ref().map(|path| {
            format!(
                "resuming it is not offered: it has no recorded workflow ({} is missing: its output folder was removed, or it was not started by this cairn CLI), so `cairn resume` does not know its tasks' commands",
                path.display()
            )
        });
        let error = prompt
            .error
            .as_ref()
            .map_or_else(|| "(no error recorded)".to_owned(), ToString::to_string);
        let preview = if prompt.prior_input.total_chars == 0 {
            "(none)".to_owned()
        } else if prompt.prior_input.cut {
            format!(
                "{:?}… ({} characters)",
                prompt.prior_input.text, prompt.prior_input.total_chars
            )
        } else {
            format!("{:?}", prompt.prior_input.text)
        };
        let interactive = self.mode != Mode::Json
            && std::io::stdin().is_terminal()
            && std::io::stdout().is_terminal();
        if self.mode == Mode::Json {
            outln!(
                "{}",
                serde_json::json!({
                    "event": "decision_needed",
                    "run_id": prompt.run_id.as_str(),
                    "status": "failed",
                    "error": error,
                    "input": prompt.prior_input.text,
                    "commands": {
                        "resume": command_of('r'), "abandon_then_run": command_of('a'),
                        "force": command_of('f'),
                    },
                    "resume_not_offered": not_offered,
                })
            );
            return Ok(EXIT_DECISION_NEEDED);
        }
        let failed_at = prompt
            .failed_at
            .map(|t| format!(" at {} UTC", format_timestamp(t.0)))
            .unwrap_or_default();
        let mut out = format!(
            "The latest run of workflow `{}` (scope `{}`) is failed: {}{failed_at}\n  error: {error}\n  input: {preview}\n",
            escape_controls(&prompt.workflow),
            escape_controls(&prompt.scope),
            prompt.run_id,
        );
        if !interactive {
            out.push_str("A new run was not started. Choose one:\n");
            for (_, what, command) in &ways {
                out.push_str(&format!("  {what}:\n    {command}\n"));
            }
            if let Some(why) = &not_offered {
                out.push_str(&format!("  ({why})\n"));
            }
            eout!("{}", terminal_safe(&out));
            return Ok(EXIT_DECISION_NEEDED);
        }
        out.push_str("What now?\n");
        for (key, what, command) in &ways {
            out.push_str(&format!("  [{key}] {what}\n      {command}\n"));
        }
        out.push_str("  [q] quit\n");
        if let Some(why) = &not_offered {
            out.push_str(&format!("  ({why})\n"));
        }
        out!("{}", terminal_safe(&out));
        let keys: Vec<char> = ways.iter().map(|(key, ..)| *key).chain(['q']).collect();
        let listed = keys.iter().map(char::to_string).collect::<Vec<_>>();
        let choice = loop {
            // `out!` flushes, so the prompt shows before the answer is read.
            out!("Choice [{}]: ", listed.join("/"));
            let mut line = String::new();
            let read = std::io::stdin().lock().read_line(&mut line).unwrap_or(0);
            if read == 0 {
                break 'q';
            }
            let mut typed = line.trim().chars();
            match (typed.next().map(|c| c.to_ascii_lowercase()), typed.next()) {
                (Some(key), None) if keys.contains(&key) => break key,
                _ => outln!(
                    "Please type {} or q.",
                    listed[..listed.len() - 1].join(", ")
                ),
            }
        };
        let request = RunRequest::new(
            self.wf.name.clone(),
            self.args.scope.clone(),
            self.args.input().to_owned(),
        );
        match choice {
            'r' => {
                let failed = FailedRun::read(self.state, &prompt.run_id).await?;
                let resumed = self.policy.resume(&prompt.run_id).await?;
                let rerun = self.commands.resume(&prompt.run_id);
                drive_failed(
                    self.state,
                    &resumed.meta,
                    resumed.previous_status,
                    failed,
                    Source::Given(self.wf),
                    self.mode,
                    &self.args.exec,
                    self.commands,
                    rerun,
                )
                .await
            }
            'a' => {
                self.policy.abandon(&prompt.run_id).await?;
                outln!("abandoned run {}", prompt.run_id);
                let decision = self.policy.decide(&request).await?;
                Box::pin(self.act(decision, false)).await
            }
            'f' => {
                let decision = self.policy.decide(&request.force()).await?;
                Box::pin(self.act(decision, false)).await
            }
            _ => {
                outln!("Nothing was started.");
                Ok(EXIT_DECISION_NEEDED)
            }
        }
    }
}

async fn drive_fresh(
    state: &StateDir,
    wf: &Workflow,
    text: &str,
    args: &RunArgs,
    (policy, fresh): (&ResumePolicy, FreshRun),
    mode: Mode,
    commands: &Commands,
) -> anyhow::Result<u8> {
    let run_id = fresh.run_id.clone();
    let driven = async {
        state.save_origin(&run_id, wf, text)?;
        let plan = wf.plan(&args.scope, args.input()).run_id(run_id.clone());
        let header = format!(
            "run {run_id}: workflow `{}`, {} task(s)",
            wf.name,
            wf.tasks.len()
        );
        let rerun = commands.run(false);
        let drive = Drive {
            state,
            wf,
            mode,
            exec: &args.exec,
            commands,
            rerun,
            begun: Some((policy, fresh)),
            reloaded: None,
        };
        drive
            .run(plan, run_id.clone(), Start::Fresh, 0, header, false)
            .await
    }
    .await;
    // A run that never began (its workflow copy or its begin failed, say on a full disk)
    // would leave an output folder naming a run that does not exist. The id is new, so the
    // folder holds nothing but our own unacknowledged writes. Best effort: a folder that
    // cannot go now harms nothing but space.
    if matches!(state.factory.load_meta(&run_id).await, Ok(None)) {
        let _ = state.remove_run_output(&run_id);
    }
    driven
}

/// Drives an interrupted run the policy (or `cairn resume`) already claimed.
async fn drive_interrupted(
    state: &StateDir,
    meta: &RunMeta,
    source: Source<'_>,
    mode: Mode,
    exec: &ExecArgs,
    commands: &Commands,
    rerun: String,
) -> anyhow::Result<u8> {
    let run_id = meta.run_id.clone();
    let peek = policy::open_and_read(state.factory.as_ref(), &run_id).await?;
    let counts = peek.counts();
    // A task that was running on its last attempt is failed by the recovery, not reset.
    let last_attempts = peek
        .queue
        .tasks()
        .filter(|t| t.status == Status::Running && t.attempts >= t.max_attempts)
        .count();
    drop(peek);
    let wf = match (state.load_origin(&run_id), source) {
        // The reload was checked against the copy; the run takes the file's tasks.
        (Ok(_), Source::Reloaded(reload)) => reload.wf.clone(),
        (Ok(wf), _) => wf,
        // A run begun by another tool: the current file is the best guess at its plan.
        (Err(_), Source::Given(wf)) => wf.clone(),
        (Err(error), _) => return Err(error),
    };
    let done = counts.done + counts.skipped;
    let mut header = format!(
        "resuming run {run_id}: {done} done, {} pending, {} reset",
        counts.pending,
        counts.running - last_attempts
    );
    if last_attempts > 0 {
        header.push_str(&format!(
            ", {last_attempts} failed (interrupted on its last attempt)"
        ));
    }
    // The executor finishes an explicit resume a crash cut short; say so, as it reruns them.
    let owed = counts.failed > 0
        && cairn_executor::retries_owed(state.factory.as_ref(), &run_id)
            .await
            .unwrap_or(false);
    if owed {
        header.push_str(&format!(
            ", {} failed task(s) retried (finishing the resume that was interrupted)",
            counts.failed
        ));
    }
    let note = source.note(&wf);
    if let Some(FileNote::OtherFile {
        given,
        differs: true,
    }) = &note
    {
        // Two files with one `name` share their runs: going on would run the other file's
        // tasks (a staging deploy) under this one's command (a production deploy).
        let flags = commands.store_flags(true);
        if mode == Mode::Json {
            outln!(
                "{}",
                serde_json::json!({
                    "event": "decision_needed", "run_id": run_id.as_str(),
                    "status": "other_file",
                    "started_from": wf.path.display().to_string(),
                    "given": given.display().to_string(),
                    "commands": {
                        "resume": format!("cairn resume {run_id}{flags}"),
                        "abandon": format!("cairn abandon {run_id}{flags}"),
                    },
                })
            );
        }
        eoutln!(
            "error: the interrupted run {run_id} of workflow `{}` was started from {}, not {}, and its tasks differ from this file's, so nothing was run. Resume that run as it is (cairn resume {run_id}{flags}), or abandon it (cairn abandon {run_id}{flags}) and run this file again; files that are different workflows need different `name`s (or a --scope each)",
            escape_controls(&wf.name),
            escape_controls(&wf.path.display().to_string()),
            escape_controls(&given.display().to_string()),
        );
        return Ok(EXIT_DECISION_NEEDED);
    }
    source.annotate(
        note,
        &mut header,
        &run_id,
        &wf,
        mode,
        &commands.store_flags(false),
    );
    let claimed = Claimed {
        state,
        wf: &wf,
        meta,
        mode,
        exec,
        commands,
        retry_failed: false,
        reloaded: source.reloaded(),
    };
    claimed.drive(rerun, done, header).await
}

/// Where a resumed run's tasks come from, and what to compare its copy of the workflow with.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// `cairn run FILE` found the run: its copy, compared with the file given.
    Given(&'a Workflow),
    /// `cairn resume RUN`: its copy, compared with the file it was started from.
    Recorded,
    /// `cairn resume RUN --reload`: the file as it is now, checked against the copy.
    Reloaded(&'a Reload),
}

impl<'a> Source<'a> {
    fn reloaded(self) -> Option<&'a Reload> {
        match self {
            Source::Reloaded(reload) => Some(reload),
            _ => None,
        }
    }

    /// How the file stands against the run's copy `wf`; a reload has its own note.
    fn note(self, wf: &Workflow) -> Option<FileNote> {
        match self {
            Source::Given(given) => FileNote::of(wf, Some(given)),
            Source::Recorded => FileNote::of(wf, None),
            Source::Reloaded(_) => None,
        }
    }

    /// Adds the file `note` and what a reload changes to the resume `header` of the run
    /// `wf` is the copy of, and prints them as events in JSON mode.
    fn annotate(
        self,
        note: Option<FileNote>,
        header: &mut String,
        run_id: &RunId,
        wf: &Workflow,
        mode: Mode,
        flags: &str,
    ) {
        if let Some(note) = note {
            note.show(header, run_id, wf, mode, flags);
        }
        if let Source::Reloaded(reload) = self {
            header.push_str("\nnote: ");
            header.push_str(&reload.note());
            if mode == Mode::Json {
                outln!("{}", reload.event(run_id));
            }
        }
    }
}

/// Replaces run `run_id`'s copy of its workflow with the reloaded file, once the run's
/// amendments are durable. A failure is a warning: the run's tasks are amended either way,
/// and a later `--reload` saves the copy again.
fn save_reloaded_copy(
    state: &StateDir,
    run_id: &RunId,
    reload: &Reload,
    progress: Option<&Progress>,
) {
    if let Err(error) = state.save_origin(run_id, &reload.wf, &reload.text) {
        let text = format!(
            "run {run_id} took the reloaded tasks, but its copy of the workflow file could not be replaced ({error:#}); `cairn show` may list the old definitions until `cairn resume {run_id} --reload` runs again"
        );
        match progress {
            Some(progress) => progress.warn(&text),
            None => eoutln!("warning: {}", terminal_safe(&text)),
        }
    }
}

/// How the workflow file on disk stands against a resumed run's copy of it. A resume always
/// goes on with the copy taken when the run started, so a user who just fixed the file must
/// be told the fix is not in.
#[derive(Debug)]
enum FileNote {
    /// `cairn run` was given another file than the one the run was started from.
    OtherFile { given: PathBuf, differs: bool },
    /// The file the run was started from now has other tasks.
    Changed,
    /// That file no longer loads (it was edited into an invalid workflow).
    Unloadable(String),
    /// That file is gone.
    Gone,
}

impl FileNote {
    /// Compares the run's copy `wf` with `current` (the file given to `cairn run`), or, for
    /// `cairn resume` (`None`), with the file at the path the run was started from.
    fn of(wf: &Workflow, current: Option<&Workflow>) -> Option<FileNote> {
        if let Some(current) = current {
            return if !same_file(&current.path, &wf.path) {
                Some(FileNote::OtherFile {
                    given: current.path.clone(),
                    differs: current.tasks != wf.tasks,
                })
            } else if current.tasks != wf.tasks {
                Some(FileNote::Changed)
            } else {
                None
            };
        }
        match workflow::load(&wf.path) {
            Ok(disk) if disk.tasks == wf.tasks => None,
            Ok(_) => Some(FileNote::Changed),
            Err(_) if !wf.path.exists() => Some(FileNote::Gone),
            Err(error) => Some(FileNote::Unloadable(error.message)),
        }
    }

    /// Adds the note to the resume `header` (shown in text modes, with `flags` in the
    /// commands it names), and prints it as a
    /// `workflow_file_differs` event in JSON mode, where the header is not shown.
    fn show(&self, header: &mut String, run_id: &RunId, wf: &Workflow, mode: Mode, flags: &str) {
        let path = escape_controls(&wf.path.display().to_string()).into_owned();
        let goes_on = "the run goes on with the tasks it started with";
        let fresh =
            "to run the file as it is now from the start, abandon this run and start a fresh one";
        let (reason, text) = match self {
            FileNote::OtherFile { given, differs } => (
                "other_file",
                format!(
                    "this run was started from {path}, not {}; it goes on with the tasks that file had when the run started{}",
                    escape_controls(&given.display().to_string()),
                    if *differs {
                        " (they differ from this file's)"
                    } else {
                        ""
                    }
                ),
            ),
            FileNote::Changed => (
                "changed",
                format!(
                    "the workflow file {path} changed since this run started; {goes_on} (to give the tasks not done yet the file as it is now, stop this run and resume it with `cairn resume {run_id} --reload{}`; {fresh})",
                    terminal_safe(flags)
                ),
            ),
            FileNote::Unloadable(error) => (
                "unloadable",
                format!(
                    "the workflow file {path} changed since this run started and does not load now ({}); {goes_on} ({fresh})",
                    escape_controls(error)
                ),
            ),
            FileNote::Gone => (
                "gone",
                format!(
                    "the workflow file {path} this run was started from is gone; the run goes on with the copy of its tasks taken when it started"
                ),
            ),
        };
        header.push_str("\nnote: ");
        header.push_str(&text);
        if mode == Mode::Json {
            let mut event = serde_json::json!({
                "event": "workflow_file_differs", "run_id": run_id.as_str(),
                "path": wf.path, "reason": reason,
            });
            if let FileNote::OtherFile { given, differs } = self {
                event["given"] = serde_json::json!(given);
                event["tasks_differ"] = serde_json::json!(differs);
            }
            outln!("{event}");
        }
    }
}

/// Whether two paths name the same file: `../sub/./wf.toml` or a symbolic link to it is the
/// same file as `sub/wf.toml`. Compared by device and inode; when either cannot be read (a
/// file that is gone), by their absolute forms.
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => absolute(a) == absolute(b),
    }
}

/// What the drive of a failed (or paused) run needs from its state: its workflow copy and
/// its task counts. Read BEFORE the run is claimed, because a claimed run is `running`: if
/// this read failed after the claim, the run would be left looking interrupted, and the next
/// plain `cairn run` would resume it without the failed-run prompt.
struct FailedRun {
    wf: Workflow,
    counts: cairn_queue::StatusCounts,
}

impl FailedRun {
    async fn read(state: &StateDir, run_id: &RunId) -> anyhow::Result<FailedRun> {
        let wf = state.load_origin(run_id)?;
        // The executor retries the failed tasks when it adopts the run; the counts only tell
        // the user what is about to happen.
        let counts = policy::open_and_read(state.factory.as_ref(), run_id)
            .await?
            .counts();
        Ok(FailedRun { wf, counts })
    }
}

/// Drives a failed (or paused) run the policy already claimed: its failed tasks get another
/// go, done tasks stay done.
#[allow(clippy::too_many_arguments)]
async fn drive_failed(
    state: &StateDir,
    meta: &RunMeta,
    previous: RunStatus,
    failed: FailedRun,
    source: Source<'_>,
    mode: Mode,
    exec: &ExecArgs,
    commands: &Commands,
    rerun: String,
) -> anyhow::Result<u8> {
    let run_id = meta.run_id.clone();
    let FailedRun { wf, counts } = failed;
    let wf = match source {
        Source::Reloaded(reload) => reload.wf.clone(),
        _ => wf,
    };
    let done = counts.done + counts.skipped;
    // Each task is counted once: the failed ones are about to be pending again, but they are
    // listed as retried, not also as pending.
    let mut header = format!(
        "resuming {previous} run {run_id}: {done} done, {} pending, {} failed task(s) retried",
        counts.pending + counts.blocked,
        counts.failed
    );
    let note = source.note(&wf);
    source.annotate(
        note,
        &mut header,
        &run_id,
        &wf,
        mode,
        &commands.store_flags(false),
    );
    let claimed = Claimed {
        state,
        wf: &wf,
        meta,
        mode,
        exec,
        commands,
        retry_failed: true,
        reloaded: source.reloaded(),
    };
    claimed.drive(rerun, done, header).await
}

/// A run the policy already claimed, ready to be adopted by the executor and driven.
struct Claimed<'a> {
    state: &'a StateDir,
    wf: &'a Workflow,
    meta: &'a RunMeta,
    mode: Mode,
    exec: &'a ExecArgs,
    commands: &'a Commands,
    /// A failed (or paused) run's failed tasks get fresh attempts (`Start::Adopt`); an
    /// interrupted run only continues, so a task that failed for good stays failed
    /// (`Start::AdoptInterrupted`).
    retry_failed: bool,
    /// `cairn resume --reload`: the unfinished tasks take the file's definitions.
    reloaded: Option<&'a Reload>,
}

impl Claimed<'_> {
    /// Adopts the run and drives it with its display and signal handling.
    async fn drive(self, rerun: String, done: usize, header: String) -> anyhow::Result<u8> {
        let run_id = self.meta.run_id.clone();
        let mut plan = self
            .wf
            .plan(&self.meta.scope, &self.meta.input)
            .run_id(run_id.clone());
        let mut reloaded = self.reloaded;
        if let Some(reload) = reloaded {
            plan = plan.reload();
            // Nothing to amend (the file changed only where the run does not look, or the
            // amendments are journaled already): the copy can follow the file now.
            if reload.changes.is_empty() {
                save_reloaded_copy(self.state, &run_id, reload, None);
                reloaded = None;
            }
        }
        let drive = Drive {
            state: self.state,
            wf: self.wf,
            mode: self.mode,
            exec: self.exec,
            commands: self.commands,
            rerun,
            begun: None,
            reloaded,
        };
        drive
            .run(
                plan,
                run_id.clone(),
                // The epoch this process claimed: a claim by another process since makes the
                // executor refuse before anything runs.
                if self.retry_failed {
                    Start::Adopt {
                        run_id,
                        lease_epoch: self.meta.lease_epoch,
                    }
                } else {
                    Start::AdoptInterrupted {
                        run_id,
                        lease_epoch: self.meta.lease_epoch,
                    }
                },
                done,
                header,
                true,
            )
            .await
    }
}

/// Kills the process groups an interrupted drive of `run_id` left running (see
/// [`reap_leftovers`]): before a resumed run starts tasks, and when such a run is abandoned.
async fn reap(state: &StateDir, run_id: &RunId) -> anyhow::Result<Reaped> {
    // Reaping reads /proc and waits for groups to die: blocking work, off the runtime.
    let output_root = absolute(&state.output_root());
    let id = run_id.as_str().to_owned();
    tokio::task::spawn_blocking(move || reap_leftovers(&output_root, &id))
        .await
        .context("the leftover-command check ended abnormally")
}

/// Why a leftover process group may still be running.
#[derive(Debug, Clone, Copy)]
enum StillRunning {
    /// It outlived its SIGKILL.
    Survived,
    /// This host has no /proc to check it.
    Unchecked,
    /// It ran on another host, where nothing here can check or stop it.
    OtherHost,
    /// Its record is from another boot of this host (it died with it) or from another host.
    OtherBoot,
}

impl StillRunning {
    fn as_str(self) -> &'static str {
        match self {
            StillRunning::Survived => "survived_kill",
            StillRunning::Unchecked => "unchecked",
            StillRunning::OtherHost => "other_host",
            StillRunning::OtherBoot => "other_boot",
        }
    }
}

fn killed_line(left: &Leftover) -> String {
    format!(
        "killed process group {} of task `{}`, left running by the interrupted run",
        left.group, left.task
    )
}

fn may_still_run(reaped: &Reaped) -> impl Iterator<Item = (&Leftover, StillRunning)> {
    let survived = reaped.survived.iter().map(|l| (l, StillRunning::Survived));
    let unchecked = reaped
        .unchecked
        .iter()
        .map(|l| (l, StillRunning::Unchecked));
    let other_boot = reaped
        .other_boot
        .iter()
        .map(|l| (l, StillRunning::OtherBoot));
    survived.chain(unchecked).chain(other_boot)
}

fn may_still_run_line(left: &Leftover, why: StillRunning) -> String {
    let (group, task) = (left.group, &left.task);
    match why {
        StillRunning::Survived => format!(
            "process group {group} of task `{task}`, left running by the interrupted run, was sent SIGKILL and is still alive; its commands may still be running (check with `ps -g {group}`)"
        ),
        StillRunning::Unchecked => format!(
            "process group {group} of task `{task}` was left by the interrupted run and may still be running; this host has no /proc to check that it is the same group, so it was not killed (if `ps -g {group}` shows the task's commands, stop them with `kill -KILL -- -{group}`)"
        ),
        StillRunning::OtherBoot => format!(
            "process group {group} of task `{task}` was recorded during another boot of this host, or on another host sharing this state folder, so it was not touched: after a restart it died with that boot; on another host it may still be running there (on that host: `kill -KILL -- -{group}`)"
        ),
        StillRunning::OtherHost => format!(
            "process group {group} of task `{task}` was started by the run's last driver on another host and may still be running there; nothing here can check or stop it (on that host: `kill -KILL -- -{group}`)"
        ),
    }
}

/// One drive of a run with its display and signal handling.
struct Drive<'a> {
    state: &'a StateDir,
    wf: &'a Workflow,
    mode: Mode,
    exec: &'a ExecArgs,
    commands: &'a Commands,
    /// The command that resumes this run if it is interrupted.
    rerun: String,
    /// The policy's fresh run, for a run this drive begins: the policy records a forced
    /// run only once it has begun (`ResumePolicy::fresh_run_begun`).
    begun: Option<(&'a ResumePolicy, FreshRun)>,
    /// A reload whose amendments are not yet journaled: once they are, the run's copy of
    /// its workflow becomes the reloaded file.
    reloaded: Option<&'a Reload>,
}

impl Drive<'_> {
    /// The reload's amendments are durable: the run's copy follows the file.
    fn amendments_recorded(&mut self, run_id: &RunId, progress: &Progress) {
        if let Some(reload) = self.reloaded.take() {
            save_reloaded_copy(self.state, run_id, reload, Some(progress));
        }
    }

    /// Tells the policy that the fresh run has durably begun, so a forced run's record on
    /// the run it was forced past is written now and never for a run that did not begin.
    async fn record_begun(&self, progress: &Progress) {
        let Some((policy, fresh)) = &self.begun else {
            return;
        };
        if let (Err(error), Some(past)) = (policy.fresh_run_begun(fresh).await, &fresh.forced_past)
        {
            progress.warn(&format!(
                "run {} began, but the record of forcing it past run {past} could not be written ({error}); a later run may still ask about {past}",
                fresh.run_id
            ));
        }
    }

    async fn run(
        mut self,
        plan: RunPlan,
        run_id: RunId,
        start: Start,
        done: usize,
        header: String,
        resumed: bool,
    ) -> anyhow::Result<u8> {
        let mut progress = Progress::new(self.mode, self.wf.tasks.len(), done);
        // A fresh run's id is shown once the run is durable (`on_begun`), so a crash in
        // between never leaves a printed id that `cairn show` cannot find.
        let begins = matches!(start, Start::Fresh);
        let run_started = serde_json::json!({
            "event": "run_started", "run_id": run_id.as_str(), "workflow": self.wf.name,
            "resumed": resumed, "tasks_total": self.wf.tasks.len(), "tasks_done": done,
        });
        if !begins {
            progress.line(&header);
        }
        if resumed {
            // Commands a crash left running must die before their tasks run again.
            let reaped = reap(self.state, &run_id).await?;
            for left in &reaped.killed {
                progress.line(&killed_line(left));
                progress.json(serde_json::json!({
                    "event": "leftover_killed", "run_id": run_id.as_str(),
                    "task": left.task, "process_group": left.group,
                }));
            }
            for (left, why) in may_still_run(&reaped) {
                progress.warn(&may_still_run_line(left, why));
                progress.json(serde_json::json!({
                    "event": "leftover_may_still_run", "run_id": run_id.as_str(),
                    "task": left.task, "process_group": left.group, "reason": why.as_str(),
                }));
            }
        }
        let (events, mut event_rx) = tokio::sync::mpsc::unbounded_channel();
        let groups = ProcessGroups::default();
        let signals = RunSignals::default();
        let handler = ShellHandler::new(
            absolute(&self.wf.dir),
            absolute(&self.state.output_root()),
            plan.input.clone(),
            events.clone(),
            groups.clone(),
        )
        .with_shutdown(signals.shutdown.clone(), self.exec.grace);
        let registry = Registry::new().with(SHELL_KIND, handler);
        let (concurrency, capped) = crate::open_files::cap_concurrency(
            usize::from(self.exec.concurrency),
            self.wf.tasks.len(),
        );
        if let Some(note) = capped {
            eoutln!("{note}");
        }
        let config = ExecutorConfig::default()
            .with_concurrency(concurrency)
            .with_require_durability(true)
            .with_shutdown_grace(self.exec.grace);
        // A task is shown done once its completion is durable, not when its command exits:
        // a crash in between runs it again.
        let recorded = events.clone();
        let (begun_tx, mut begun_rx) = tokio::sync::mpsc::unbounded_channel();
        let (amended_tx, mut amended_rx) = tokio::sync::mpsc::unbounded_channel();
        let executor = Executor::new(Arc::clone(&self.state.factory), registry, config)?
            .on_acknowledged(move |_run, batch| {
                for event in batch {
                    match event {
                        Event::Completed { id, .. } | Event::Skipped { id, .. } => {
                            let _ = recorded.send(TaskEvent::Recorded { id: *id });
                        }
                        Event::Amended { .. } => {
                            let _ = amended_tx.send(());
                        }
                        _ => {}
                    }
                }
            })
            .on_begun(move |_run| {
                let _ = begun_tx.send(());
            });
        // Signal handlers are installed before any task starts, so Ctrl-C never kills cairn
        // itself mid-run; it asks for a graceful stop instead.
        let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;

        if !begins {
            progress.json(run_started.clone());
        }
        let announce_begun = |progress: &Progress| {
            progress.line(&header);
            progress.json(run_started.clone());
        };
        let mut handle = tokio::spawn({
            let signals = signals.clone();
            async move { executor.run(plan, start, signals).await }
        });
        let mut interrupts = 0u32;
        let mut flush = tokio::time::interval(Progress::FLUSH_EVERY);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let joined = loop {
            tokio::select! {
                // The begin comes before any task event, and is sent before them.
                biased;
                Some(()) = begun_rx.recv() => {
                    announce_begun(&progress);
                    self.record_begun(&progress).await;
                }
                Some(()) = amended_rx.recv() => self.amendments_recorded(&run_id, &progress),
                Some(event) = event_rx.recv() => progress.task(event),
                Some(()) = sigint.recv() => interrupts += 1,
                Some(()) = sigterm.recv() => interrupts += 1,
                joined = &mut handle => break joined,
                _ = flush.tick() => progress.flush(),
            }
            if interrupts == 1 && !signals.shutdown.is_cancelled() {
                signals.shutdown.cancel();
                progress.status("stopping");
                progress.line(&format!(
                    "interrupted: no new tasks start; running tasks get up to {} to finish (Ctrl-C again stops them now)",
                    format_duration(self.exec.grace)
                ));
                progress
                    .json(serde_json::json!({"event": "interrupted", "run_id": run_id.as_str()}));
            } else if interrupts == 2 && !signals.grace_over.is_cancelled() {
                // The grace ends now: the executor stops the running attempts and records
                // them as released, so they rerun under the same attempt number on resume
                // (a killed cairn would leave them charged, as after a crash). Their command
                // groups are killed here too, in case a command ignores its stop.
                groups.kill_all();
                signals.grace_over.cancel();
                progress.line(
                    "stopping running tasks now; they run again on resume (Ctrl-C once more exits at once)",
                );
            } else if interrupts >= 3 {
                groups.kill_all();
                progress.finish();
                self.print_interrupted(&progress, &run_id, true);
                let _ = std::io::stdout().flush();
                // The run is left as after a crash: started attempts rerun on resume, charged.
                std::process::exit(i32::from(EXIT_INTERRUPTED));
            }
        };
        if begun_rx.try_recv().is_ok() {
            announce_begun(&progress);
            self.record_begun(&progress).await;
        }
        if amended_rx.try_recv().is_ok() {
            self.amendments_recorded(&run_id, &progress);
        }
        while let Ok(event) = event_rx.try_recv() {
            progress.task(event);
        }
        progress.finish();
        let report = joined.context("the run's task ended abnormally")?;
        let (report, end_not_recorded) = match report {
            Ok(report) => (report, None),
            Err(cairn_executor::Error::Finalize { report, source }) => (*report, Some(source)),
            Err(cairn_executor::Error::ShutDownBeforeBegin { .. }) => {
                eoutln!("interrupted before the run began: nothing was started or written");
                return Ok(EXIT_INTERRUPTED);
            }
            Err(error) => {
                return Err(anyhow::Error::new(error).context(format!("cannot drive run {run_id}")));
            }
        };
        if let Some(RunStop::Checkpoint(error)) = &report.stop {
            return Ok(self.store_failed(&progress, &report, error, end_not_recorded.is_none()));
        }
        let code = self.summarize(&progress, &report, end_not_recorded.is_none());
        match end_not_recorded {
            None => Ok(code),
            Some(source) => {
                self.end_not_recorded(&progress, &report.run_id, &source);
                Ok(EXIT_STORE)
            }
        }
    }

    /// The drive stopped because the run's store refused a write (a full disk, a failed
    /// fsync): not a task's failure, so exit 5, and the way forward is a resume once the
    /// store is fixed, not the failed-run choices (`--force` would resume an interrupted run
    /// anyway).
    fn store_failed(
        &self,
        progress: &Progress,
        report: &RunReport,
        error: &cairn_checkpoint::Error,
        recorded_failed: bool,
    ) -> u8 {
        let run_id = &report.run_id;
        let resume = self.commands.resume(run_id);
        let status = if recorded_failed { "failed" } else { "running" };
        progress.json(serde_json::json!({
            "event": "run_store_failed", "run_id": run_id.as_str(), "error": error.to_string(),
            "tasks_done": report.counts.done, "status": status,
            "commands": { "resume": resume },
        }));
        if self.mode != Mode::Json {
            outln!(
                "run {run_id} stopped: its state store failed: {} ({} done)",
                terminal_safe(&error.to_string()),
                report.counts.done
            );
            let left = if recorded_failed {
                "it is recorded as failed"
            } else {
                "it is left interrupted (it still reads as running)"
            };
            eoutln!(
                "run {run_id} stopped because writing its state failed, not because a task failed; every task shown as done is recorded, and {left}. Fix the store (free space, permissions, the disk), then resume it:\n    {}",
                terminal_safe(&resume)
            );
        }
        EXIT_STORE
    }

    /// The run ended, but its end (completed or failed) could not be recorded, so the store
    /// still has it running. Exit 5: the store failed, whatever the tasks did.
    fn end_not_recorded(
        &self,
        progress: &Progress,
        run_id: &RunId,
        source: &cairn_checkpoint::Error,
    ) {
        let resume = self.commands.resume(run_id);
        progress.json(serde_json::json!({
            "event": "run_end_not_recorded", "run_id": run_id.as_str(),
            "error": source.to_string(), "commands": { "resume": resume },
        }));
        eoutln!(
            "error: run {run_id} ended, but recording its end failed: {}; the store still has it running. Fix the store (free space, permissions, the disk), then `{}` records its end (tasks recorded done do not run again)",
            terminal_safe(&source.to_string()),
            terminal_safe(&resume)
        );
    }

    fn print_interrupted(&self, progress: &Progress, run_id: &RunId, killed: bool) {
        let how = if killed {
            "running tasks were killed"
        } else {
            "running tasks finished or were stopped"
        };
        progress.json(serde_json::json!({
            "event": "run_finished", "run_id": run_id.as_str(), "outcome": "interrupted",
            "resume_command": self.rerun,
        }));
        // Guidance, like the ways forward after a failure, goes to stderr.
        if self.mode != Mode::Json {
            eoutln!(
                "run {run_id} interrupted ({how}); it is left resumable. Resume it with:\n  {}",
                terminal_safe(&self.rerun)
            );
        }
    }

    /// Reports how the drive ended. `recorded` is false when the store could not record
    /// the end (the run still reads as running): `run_finished` then says `"recorded":
    /// false`, so a script keyed on its outcome is not told a run is over that the store
    /// still holds as running; the caller names the failure next.
    fn summarize(&self, progress: &Progress, report: &RunReport, recorded: bool) -> u8 {
        let run_id = &report.run_id;
        let counts = &report.counts;
        let unrecorded = if recorded {
            ""
        } else {
            " (but its end is not recorded: see below)"
        };
        match &report.disposition {
            Disposition::Complete => {
                progress.json(serde_json::json!({
                    "event": "run_finished", "run_id": run_id.as_str(), "outcome": "completed",
                    "tasks_done": counts.done, "tasks_skipped": counts.skipped,
                    "recorded": recorded,
                }));
                progress.line(&format!(
                    "run {run_id} completed: {} task(s) done{unrecorded}",
                    counts.done + counts.skipped
                ));
                EXIT_OK
            }
            Disposition::LeaveRunning => {
                self.print_interrupted(progress, run_id, false);
                EXIT_INTERRUPTED
            }
            Disposition::Fail(error) => {
                let ways = self.commands.ways_forward(run_id);
                let output = self.state.run_output(run_id);
                progress.json(serde_json::json!({
                    "event": "run_finished", "run_id": run_id.as_str(), "outcome": "failed",
                    "error": error, "tasks_done": counts.done,
                    "tasks_failed": counts.failed, "tasks_blocked": counts.blocked,
                    "recorded": recorded,
                    "output": output, "commands": {
                        "resume": ways[0].1, "abandon_then_run": ways[1].1, "force": ways[2].1,
                    },
                }));
                if self.mode != Mode::Json {
                    // The summary ends the progress on stdout; the guidance goes to stderr,
                    // as the exit-3 prompt's does, so it is seen when stdout is a file or a
                    // pipe and a script's output is not mixed with it.
                    outln!(
                        "run {run_id} failed{unrecorded}: {} done, {} failed, {} blocked\n  {}\n  output: {} (`{}` prints a task's)",
                        counts.done,
                        counts.failed,
                        counts.blocked,
                        terminal_safe(&error.to_string()),
                        output.display(),
                        terminal_safe(&self.commands.logs(run_id)),
                    );
                    let mut text = format!("run {run_id} failed: {error}\nWays forward:\n");
                    for (what, command) in &ways {
                        text.push_str(&format!("  {what}:\n    {command}\n"));
                    }
                    eout!("{}", terminal_safe(&text));
                }
                EXIT_RUN_FAILED
            }
        }
    }
}

/// Waits up to a second while another process holds the run's writer lock. An abandon
/// holds it only while it cancels the run, and a listing only while it probes it, while a
/// driver keeps it: so a resume racing an abandon reads the run as the abandon left it
/// (abandoned, and refused as such) instead of calling the abandon a driver.
/// Says whether the lock is free.
async fn wait_out_a_brief_holder(state: &StateDir, run_id: &RunId) -> anyhow::Result<bool> {
    for _ in 0..20 {
        if !state.factory.is_held(run_id).await? {
            return Ok(true);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(false)
}

async fn cmd_resume(args: ResumeArgs) -> anyhow::Result<u8> {
    let store = &args.target.store;
    let state = open_existing_state(store)?;
    let run_id = parse_run_id(&args.target.run)?;
    settle_or_refuse(&state, &run_id, store.json).await?;
    let meta = load_meta(&state, &run_id).await?;
    // One driver per workflow and scope, as for `cairn run`.
    let _scope_lock = lock_scope(&state, &meta.workflow, &meta.scope).await?;
    wait_out_a_brief_holder(&state, &run_id).await?;
    let meta = load_meta(&state, &run_id).await?;
    let mode = progress_mode(store.json);
    let mut commands = Commands {
        workflow: String::new(),
        scope: meta.scope.clone(),
        input: meta.input.clone(),
        state_dir: state.root.display().to_string(),
        // The run's workflow file may live elsewhere than this state folder's default, so
        // printed `run` commands always name the folder.
        explicit_state_dir: true,
        adapter: store.adapter,
    };
    if let Ok(wf) = state.load_origin(&run_id) {
        commands.workflow = wf.path.display().to_string();
    } else if let Some(origin) = state
        .missing_origin(&run_id)
        .filter(|_| !meta.status.is_terminal())
    {
        // Refused before any claim: the run stays as it was, and the ways that need no copy
        // of its workflow are offered instead.
        let fresh = format!("cairn run <workflow file>{}", commands.run_flags(false));
        let picked_up = if meta.status == RunStatus::Running {
            format!(
                " (as it was interrupted, `{fresh}` with its workflow file also resumes it, taking that file's commands)"
            )
        } else {
            String::new()
        };
        return Err(UsageError(format!(
            "run {run_id} has no recorded workflow ({} is missing): it was not started by this cairn CLI, or its output folder was removed, so `cairn resume` does not know its tasks' commands. Its state is intact{picked_up}. To start its workflow afresh instead, abandon it and run the file again (`{} && {fresh}`), or leave it as it is and run the file with --force (`{fresh} --force`)",
            terminal_safe(&origin.display().to_string()),
            terminal_safe(&commands.abandon(&run_id)),
        ))
        .into());
    }
    let rerun = commands.resume(&run_id);
    match meta.status {
        // Documented in the help: nothing to do is success (0); an abandoned run is in the
        // wrong state for a resume (2), like every other refusal.
        RunStatus::Completed => {
            outln!("run {run_id} is already completed; nothing to resume");
            Ok(EXIT_OK)
        }
        RunStatus::Cancelled => {
            let fresh = if commands.workflow.is_empty() {
                "`cairn run <workflow file>`".to_owned()
            } else {
                format!("`{}`", terminal_safe(&commands.run(false)))
            };
            Err(UsageError(format!(
                "run {run_id} was abandoned (it is cancelled), and an abandoned run is never resumed; start a fresh run of its workflow instead: {fresh}"
            ))
            .into())
        }
        RunStatus::Running => {
            // An interrupted run: claim it the way the policy does for `cairn run` (one claim
            // at the lease epoch read above, which bumps it), refusing a live one. A claim
            // that loses changes nothing.
            if !wait_out_a_brief_holder(&state, &run_id).await? {
                anyhow::bail!("run {run_id} is being driven right now by another process");
            }
            let now = load_meta(&state, &run_id).await?;
            if now.status != RunStatus::Running || now.lease_epoch != meta.lease_epoch {
                // An abandon (or another resume) came and went since the read above.
                let what = if now.status == RunStatus::Cancelled {
                    "was abandoned meanwhile, and an abandoned run is never resumed".to_owned()
                } else {
                    format!("changed meanwhile (it is {} now)", now.status)
                };
                return Err(UsageError(format!(
                    "run {run_id} {what}; look at it with `cairn show {run_id}`"
                ))
                .into());
            }
            // Checked before the claim: a refused reload leaves the run as it was.
            let reload = if args.reload {
                // An interrupted explicit resume's adoption finishes its retries; judge the
                // reload on the tasks as that adoption will leave them.
                let owed = cairn_executor::retries_owed(state.factory.as_ref(), &run_id).await?;
                Some(reload::prepare(&state, &run_id, &now, owed).await?)
            } else {
                None
            };
            let claimed = state
                .factory
                .claim(&run_id, RunStatus::Running, meta.lease_epoch)
                .await
                .with_context(|| format!("cannot claim run {run_id}"))?;
            match claimed {
                Ok(claimed) => {
                    let source = reload.as_ref().map_or(Source::Recorded, Source::Reloaded);
                    drive_interrupted(&state, &claimed, source, mode, &args.exec, &commands, rerun)
                        .await
                }
                Err(conflict) if conflict.claimed_by_another() => anyhow::bail!(
                    "run {run_id} was claimed by another process meanwhile ({})",
                    conflict
                        .current_owner
                        .as_ref()
                        .map_or_else(|| "owner not recorded".to_owned(), ToString::to_string)
                ),
                Err(conflict) => anyhow::bail!(
                    "run {run_id} changed to {} while resuming it; look again with `cairn show {run_id}`",
                    conflict.current
                ),
            }
        }
        _ => {
            let policy = ResumePolicy::new(Arc::clone(&state.factory));
            // Cancelled runs are refused by the policy; they need no workflow copy.
            let failed = if meta.status.is_terminal() {
                None
            } else {
                Some(FailedRun::read(&state, &run_id).await?)
            };
            let reload = match (&failed, args.reload) {
                (Some(_), true) => Some(reload::prepare(&state, &run_id, &meta, true).await?),
                _ => None,
            };
            let resumed = policy.resume(&run_id).await?;
            let Some(failed) = failed else {
                anyhow::bail!(
                    "run {run_id} is {} and was not expected to resume",
                    meta.status
                );
            };
            drive_failed(
                &state,
                &resumed.meta,
                resumed.previous_status,
                failed,
                reload.as_ref().map_or(Source::Recorded, Source::Reloaded),
                mode,
                &args.exec,
                &commands,
                rerun,
            )
            .await
        }
    }
}

async fn load_meta(state: &StateDir, run_id: &RunId) -> anyhow::Result<RunMeta> {
    match state
        .factory
        .load_meta(run_id)
        .await
        .with_context(|| format!("cannot read run {run_id}"))?
    {
        Some(meta) => Ok(meta),
        None => Err(unknown_run(state, run_id).await),
    }
}

/// The error for a run id the store does not list: it was quarantined (say where and why),
/// or there is no such run here.
async fn unknown_run(state: &StateDir, run_id: &RunId) -> anyhow::Error {
    match state.quarantine_of(run_id).await {
        Some(note) => UsageError(note.to_string()).into(),
        None => UsageError(format!(
            "no run {run_id} in {} (pass --state-dir to look elsewhere)",
            state.root.display()
        ))
        .into(),
    }
}

async fn cmd_abandon(args: AbandonArgs) -> anyhow::Result<u8> {
    let AbandonArgs { target, force } = args;
    let state = open_existing_state(&target.store)?;
    let run_id = parse_run_id(&target.run)?;
    settle_or_refuse(&state, &run_id, target.store.json).await?;
    let policy = ResumePolicy::new(Arc::clone(&state.factory));
    let outcome = if force {
        policy.abandon_forced(&run_id).await
    } else {
        policy.abandon(&run_id).await
    };
    let mut not_audited = None;
    let abandoned = match outcome {
        Ok(abandoned) => abandoned,
        // It took effect: the leftovers are handled and it is reported as done, with the
        // store failure besides (exit 5).
        Err(cairn_runs::Error::AbandonedNotAudited { abandoned, source }) => {
            not_audited = Some(source);
            *abandoned
        }
        Err(cairn_runs::Error::NotFound { .. }) => return Err(unknown_run(&state, &run_id).await),
        Err(cairn_runs::Error::Quarantined { .. }) => {
            return abandon_quarantined(&policy, &run_id, target.store.json).await;
        }
        // The abandon met damaged or foreign state and moved the run to quarantine: abandon
        // it there, which is what was asked.
        Err(error) if quarantined_on_the_way(&error) => {
            eoutln!("warning: {}", terminal_safe(&error.to_string()));
            return abandon_quarantined(&policy, &run_id, target.store.json).await;
        }
        Err(error) => {
            return Err(abandon_refusal(error, &run_id, &state, &target.store));
        }
    };
    let overridden = abandoned.overridden.as_ref();
    // The commands a crashed driver started keep running after the abandon; the next run of
    // the workflow would start the same tasks beside them. So they are killed as a resume
    // kills them, once the policy has shown the driver is gone. A forced abandon overrode a
    // driver on another host (or one not recorded): its process ids mean nothing here, so
    // its groups are only named.
    let here = cairn_checkpoint::Owner::current().host;
    let foreign =
        overridden.is_some_and(|o| o.owner.as_ref().is_none_or(|owner| owner.host != here));
    let (killed, left): (Vec<Leftover>, Vec<(Leftover, StillRunning)>) = if foreign {
        let recorded = recorded_leftovers(&absolute(&state.output_root()), run_id.as_str());
        (
            Vec::new(),
            recorded
                .into_iter()
                .map(|l| (l, StillRunning::OtherHost))
                .collect(),
        )
    } else {
        let reaped = reap(&state, &run_id).await?;
        let left = may_still_run(&reaped)
            .map(|(l, why)| (l.clone(), why))
            .collect();
        (reaped.killed, left)
    };
    for (leftover, why) in &left {
        eoutln!("warning: {}", may_still_run_line(leftover, *why));
    }
    if target.store.json {
        let owner = overridden
            .and_then(|o| o.owner.as_ref())
            .map(|o| serde_json::json!({"host": o.host, "pid": o.pid}));
        let killed_json: Vec<serde_json::Value> = killed
            .iter()
            .map(|l| serde_json::json!({"task": l.task, "process_group": l.group}))
            .collect();
        let left_json: Vec<serde_json::Value> = left
            .iter()
            .map(|(l, why)| {
                serde_json::json!({"task": l.task, "process_group": l.group, "reason": why.as_str()})
            })
            .collect();
        outln!(
            "{}",
            serde_json::json!({
                "event": "abandoned",
                "run_id": run_id.as_str(),
                "previous_status": abandoned.previous_status.as_str(),
                "status": abandoned.meta.status.as_str(),
                "forced": overridden.is_some(),
                "overridden_owner": owner,
                "overridden_lease_epoch": overridden.map(|o| o.lease_epoch),
                "leftovers_killed": killed_json,
                "leftovers_may_still_run": left_json,
                "audited": not_audited.is_none(),
            })
        );
    } else {
        outln!(
            "abandoned run {run_id} (was {}); its state is kept and it will not be resumed",
            abandoned.previous_status
        );
        for leftover in &killed {
            outln!("{}", killed_line(leftover));
        }
        if let Some(overridden) = overridden {
            let owner = overridden
                .owner
                .as_ref()
                .map_or_else(|| "none recorded".to_owned(), ToString::to_string);
            outln!(
                "forced: overrode its last driver ({owner}, lease epoch {}), which could not be checked from here; if it is still alive it keeps running the tasks it had started, but nothing resumes this run again (audited: `cairn audit {run_id}{}`)",
                overridden.lease_epoch,
                store_flags(&state, &target.store)
            );
        }
    }
    if let Some(source) = not_audited {
        eoutln!(
            "error: run {run_id} is abandoned, but its audit record could not be written: {}; fix the store (free space, permissions, the disk) so later records are kept",
            terminal_safe(&source.to_string())
        );
        return Ok(EXIT_STORE);
    }
    Ok(EXIT_OK)
}

/// `cairn abandon` of a run whose state was quarantined: gives up its lost progress, so that
/// `cairn run` starts afresh without asking. Its state stays where the quarantine put it.
async fn abandon_quarantined(
    policy: &ResumePolicy,
    run_id: &RunId,
    json: bool,
) -> anyhow::Result<u8> {
    let entry = match policy.abandon_quarantined(run_id).await {
        Ok(entry) => entry,
        Err(
            error @ (cairn_runs::Error::QuarantineAbandoned { .. }
            | cairn_runs::Error::QuarantineAuditUnreadable { .. }
            | cairn_runs::Error::QuarantineUnattributed { .. }),
        ) => {
            return Err(UsageError(error.to_string()).into());
        }
        Err(error) => return Err(error.into()),
    };
    let was = entry
        .meta
        .as_ref()
        .map_or("unknown", |meta| meta.status.as_str());
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "event": "abandoned", "run_id": run_id.as_str(), "previous_status": was,
                "status": "quarantined", "quarantined": true, "location": entry.location,
                "forced": false,
            })
        );
    } else {
        outln!(
            "abandoned quarantined run {run_id} (was {was}): its lost progress will not be recovered, and `cairn run` now starts afresh; its state stays at {}",
            escape_controls(&entry.location)
        );
    }
    Ok(EXIT_OK)
}

/// ` --state-dir D` (always) and ` --adapter A` (when not the default), for printed commands.
fn store_flags(state: &StateDir, store: &StoreArgs) -> String {
    let mut flags = format!(
        " --state-dir {}",
        shell_quote(&state.root.display().to_string())
    );
    if store.adapter != Adapter::File {
        flags.push_str(" --adapter ");
        flags.push_str(store.adapter.as_str());
    }
    flags
}

/// Explains an abandon the policy refused, and what the operator can do about it. The
/// policy's error stays in the chain, so the exit code follows its variant.
fn abandon_refusal(
    error: cairn_runs::Error,
    run_id: &RunId,
    state: &StateDir,
    store: &StoreArgs,
) -> anyhow::Error {
    let flags = store_flags(state, store);
    let resume = format!("cairn resume {run_id}{flags}");
    let hint = match &error {
        cairn_runs::Error::StillRunning {
            live: true, owner, ..
        } => {
            let owner = owner.as_ref().map_or_else(String::new, |owner| {
                format!(" (last recorded owner: {owner})")
            });
            format!(
                "run {run_id} is being driven right now by a live process{owner}; stop that process first (--force never overrides a live driver)"
            )
        }
        cairn_runs::Error::ClaimedDuringAbandon { claimer, .. } => {
            let claimer = claimer.as_ref().map_or_else(
                || "another process".to_owned(),
                |owner| format!("another process ({owner})"),
            );
            format!(
                "run {run_id} was claimed by {claimer} while it was being abandoned (a `cairn resume` started meanwhile), so it was not abandoned; that process drives it now. Look at it with `cairn show {run_id}{flags}`; to stop it, interrupt that process, then abandon the run"
            )
        }
        // The policy refused because the owner was alive here or cannot be checked. It is
        // checked again for the advice: an owner alive when the policy looked may have exited
        // since (a resumer that gave up), and telling it apart from one on another host
        // keeps `--force` advice to the case it is for.
        cairn_runs::Error::StillRunning {
            live: false, owner, ..
        } => match owner
            .as_ref()
            .map(|owner| (owner, OwnerLiveness::of(owner)))
        {
            Some((owner, OwnerLiveness::AliveHere)) => format!(
                "run {run_id} is not being driven, but the process that last owned it ({owner}) is still alive on this host, so it may be about to resume it; try again once it has exited, or resume the run with `{resume}` (--force does not override a live local process)"
            ),
            Some((owner, OwnerLiveness::Exited)) => format!(
                "run {run_id} is not being driven; the process that last owned it ({owner}) was alive on this host when the abandon checked and has exited since (a resume that gave up, say); abandon it again with `cairn abandon {run_id}{flags}`, or resume it with `{resume}`"
            ),
            _ => {
                let owner = owner.as_ref().map_or_else(
                    || "no owner was recorded".to_owned(),
                    |owner| format!("its last owner was {owner}"),
                );
                format!(
                    "run {run_id} is not being driven, but {owner}, which cannot be checked from here (another host, or no /proc), so it may still be about to resume it. Resume the run with `{resume}`, or, if that owner is gone for good, abandon it anyway with `cairn abandon {run_id} --force{flags}`. The risk: if that owner is in fact still alive, it keeps running the tasks it had started for a run that is then cancelled (nothing resumes it again, so no task completes twice)"
                )
            }
        },
        _ => return error.into(),
    };
    anyhow::Error::new(error).context(UsageError(hint))
}

async fn cmd_runs(args: RunsArgs) -> anyhow::Result<u8> {
    let state = open_existing_state(&args.store)?;
    if args.quarantined {
        return list_quarantined(&state, args.store.json).await;
    }
    let runs = list_runs(&state, args.store.json).await?;
    let (shown, live) = select_runs(&state, &runs, &args).await;
    if args.store.json {
        for (meta, live) in shown.iter().zip(&live) {
            let mut value = meta_json(meta);
            if let Some(object) = value.as_object_mut() {
                object.insert("live".to_owned(), serde_json::Value::Bool(*live));
            }
            outln!("{value}");
            if out::stdout_closed() {
                break;
            }
        }
        return Ok(EXIT_OK);
    }
    if shown.is_empty() {
        let filtered = !args.status.is_empty()
            || args.workflow.is_some()
            || args.scope.is_some()
            || args.since.is_some();
        let hint = if filtered {
            " match these options"
        } else if args.all {
            ""
        } else {
            " (--all includes completed and abandoned runs)"
        };
        outln!("no runs in {}{hint}", state.root.display());
        return Ok(EXIT_OK);
    }
    outln!(
        "{:<26}  {:<11}  {:<20}  {:<12}  {:<20}  ERROR",
        "RUN",
        "STATUS",
        "WORKFLOW",
        "SCOPE",
        "CREATED (UTC)"
    );
    let mut interrupted = 0;
    let mut newer = 0;
    for (meta, live) in shown.iter().zip(&live) {
        let error = meta
            .error
            .as_ref()
            .filter(|_| meta.status != RunStatus::Completed)
            .map(|e| clip(&e.to_string(), 60))
            .unwrap_or_default();
        // Only the metadata is read here; a newer journal or queue.json behind current
        // metadata shows at `cairn show`, which reads them.
        let status = if meta.format_version > cairn_checkpoint::META_FORMAT_VERSION {
            newer += 1;
            "newer build"
        } else if meta.status == RunStatus::Running && !live {
            interrupted += 1;
            "interrupted"
        } else {
            meta.status.as_str()
        };
        outln!(
            "{:<26}  {:<11}  {}  {}  {:<20}  {error}",
            meta.run_id.as_str(),
            status,
            cell(&meta.workflow, 20),
            cell(&meta.scope, 12),
            format_timestamp(meta.created_at.0)
        );
        if out::stdout_closed() {
            break;
        }
    }
    if interrupted > 0 {
        outln!(
            "(interrupted: stored as running, but no process drives it; `cairn resume RUN` goes on with it, `cairn abandon RUN` gives it up)"
        );
    }
    if newer > 0 {
        outln!(
            "(newer build: written by a newer cairn build than this one, which leaves it as it is; list, resume or abandon it with that build or a later one)"
        );
    }
    Ok(EXIT_OK)
}

/// The runs `cairn runs` lists, oldest first, each with whether a live process drives it:
/// by default those not completed or abandoned, narrowed by `--status`, `--workflow`,
/// `--scope`, `--since` and `--limit`.
async fn select_runs<'a>(
    state: &StateDir,
    runs: &'a [RunMeta],
    args: &RunsArgs,
) -> (Vec<&'a RunMeta>, Vec<bool>) {
    use crate::cli::StatusFilter;
    let since = args.since.map(|since| {
        let since = u64::try_from(since.as_millis()).unwrap_or(u64::MAX);
        cairn_checkpoint::wall_clock_now().0.saturating_sub(since)
    });
    let wanted = |meta: &&RunMeta| {
        let status_ok = if args.status.is_empty() {
            args.all || !meta.status.is_terminal()
        } else {
            args.status.iter().any(|wanted| match wanted {
                // Split by the lock below.
                StatusFilter::Running | StatusFilter::Interrupted => {
                    meta.status == RunStatus::Running
                }
                StatusFilter::Paused => meta.status == RunStatus::Paused,
                StatusFilter::Failed => meta.status == RunStatus::Failed,
                StatusFilter::Completed => meta.status == RunStatus::Completed,
                StatusFilter::Cancelled => meta.status == RunStatus::Cancelled,
            })
        };
        status_ok
            && args.workflow.as_ref().is_none_or(|w| *w == meta.workflow)
            && args.scope.as_ref().is_none_or(|s| *s == meta.scope)
            && since.is_none_or(|since| meta.created_at.0 >= since)
    };
    let mut shown = Vec::new();
    let mut live = Vec::new();
    for meta in runs.iter().filter(wanted) {
        // A `running` run nobody drives was interrupted: it waits for a resume, and must not
        // look like one in progress. Only running runs are asked (one lock probe each).
        let held = meta.status == RunStatus::Running
            && state.factory.is_held(&meta.run_id).await.unwrap_or(false);
        if meta.status == RunStatus::Running && !args.status.is_empty() {
            let asked = if held {
                StatusFilter::Running
            } else {
                StatusFilter::Interrupted
            };
            if !args.status.contains(&asked) {
                continue;
            }
        }
        shown.push(meta);
        live.push(held);
    }
    if let Some(limit) = args.limit {
        let skip = shown.len().saturating_sub(limit as usize);
        shown.drain(..skip);
        live.drain(..skip);
    }
    (shown, live)
}

/// `cairn runs --quarantined`: every run whose state the store moved aside. A run that was
/// not finished and not abandoned makes `cairn run` of its workflow and scope ask first.
async fn list_quarantined(state: &StateDir, json: bool) -> anyhow::Result<u8> {
    let policy = ResumePolicy::new(Arc::clone(&state.factory));
    let listed = policy
        .quarantined_runs()
        .await
        .context("cannot list the quarantined runs")?;
    if json {
        for entry in &listed {
            let meta = entry.run.meta.as_ref();
            outln!(
                "{}",
                serde_json::json!({
                    "run_id": entry.run.run_id.as_str(),
                    "was": meta.map(|m| m.status.as_str()),
                    "workflow": meta.map(|m| m.workflow.as_str()),
                    "scope": meta.map(|m| m.scope.as_str()),
                    "quarantined_at_ms": entry.run.at.0,
                    "reason": entry.run.reason,
                    "location": entry.run.location,
                    "settled_at_ms": entry.settled_at.map(|t| t.0),
                })
            );
            if out::stdout_closed() {
                break;
            }
        }
        return Ok(EXIT_OK);
    }
    if listed.is_empty() {
        outln!("no quarantined runs in {}", state.root.display());
        return Ok(EXIT_OK);
    }
    outln!(
        "{:<26}  {:<9}  {:<20}  {:<12}  {:<20}  {:<9}  WHY / WHERE",
        "RUN",
        "WAS",
        "WORKFLOW",
        "SCOPE",
        "QUARANTINED (UTC)",
        "SETTLED"
    );
    for entry in &listed {
        let meta = entry.run.meta.as_ref();
        let unknown = "?";
        outln!(
            "{:<26}  {:<9}  {}  {}  {:<20}  {:<9}  {} / {}",
            entry.run.run_id.as_str(),
            meta.map_or(unknown, |m| m.status.as_str()),
            cell(meta.map_or(unknown, |m| m.workflow.as_str()), 20),
            cell(meta.map_or(unknown, |m| m.scope.as_str()), 12),
            format_timestamp(entry.run.at.0),
            if entry.settled_at.is_some() {
                "yes"
            } else {
                "no"
            },
            escape_controls(&clip(&entry.run.reason, 60)),
            escape_controls(&entry.run.location),
        );
        if out::stdout_closed() {
            break;
        }
    }
    Ok(EXIT_OK)
}

/// A run's metadata as the JSON of `runs --json` and `show --json`. A completed run keeps
/// the error of a failure it was resumed from in its metadata; here that error is history,
/// so it moves to `earlier_error` and `error` is null: `error` is set only on a run that is
/// not completed (documented in the crate README, "Output"). Both keys are on every line.
fn meta_json(meta: &RunMeta) -> serde_json::Value {
    let mut value = serde_json::to_value(meta).unwrap_or(serde_json::Value::Null);
    if let Some(object) = value.as_object_mut() {
        // Every line has both keys, so a script can read either without checking first.
        let earlier = if meta.status == RunStatus::Completed {
            object
                .insert("error".to_owned(), serde_json::Value::Null)
                .unwrap_or(serde_json::Value::Null)
        } else {
            serde_json::Value::Null
        };
        object.insert("earlier_error".to_owned(), earlier);
    }
    value
}

/// Lists every run. The store quarantines a run with damaged or foreign metadata when a
/// listing meets it, and the run then silently drops out of the list; so each run moved to
/// quarantine meanwhile is named on stderr with why and where (a `run_quarantined` JSON line
/// on stderr with `--json`, keeping stdout to the listing).
pub(crate) async fn list_runs(state: &StateDir, json: bool) -> anyhow::Result<Vec<RunMeta>> {
    list_runs_except(state, json, None).await
}

/// [`list_runs`], leaving what is said about `except` (moved to quarantine, or left in
/// place) to the caller, which is about that run.
async fn list_runs_except(
    state: &StateDir,
    json: bool,
    except: Option<&RunId>,
) -> anyhow::Result<Vec<RunMeta>> {
    let before = state.quarantine_locations().await;
    let runs = state
        .factory
        .list(&RunFilter::default())
        .await
        .context("cannot list runs")?;
    for note in state.newly_quarantined(&before).await {
        if Some(&note.run_id) == except {
            continue;
        }
        if json {
            eoutln!("{}", note.to_json());
        } else {
            eoutln!("warning: {note}");
        }
    }
    for note in state.left_in_place().await {
        if Some(&note.run.run_id) == except {
            continue;
        }
        if json {
            eoutln!("{}", note.to_json());
        } else {
            eoutln!("warning: {note}");
        }
    }
    Ok(runs)
}

/// Before a command about one run: when its metadata is damaged, lists the runs as `cairn
/// runs` does, which moves it to quarantine (and says so), so that the command finds it
/// quarantined instead of failing on it, and on every later try, with advice that cannot
/// work. `Some` when it could not be moved and stays where it is.
///
/// # Errors
///
/// When the runs cannot be listed.
async fn settle_damaged(
    state: &StateDir,
    run_id: &RunId,
    json: bool,
) -> anyhow::Result<Option<LeftInPlaceNote>> {
    match state.factory.load_meta(run_id).await {
        Err(error) if error.is_bad_state() => {}
        _ => return Ok(None),
    }
    list_runs_except(state, json, Some(run_id)).await?;
    Ok(state
        .left_in_place()
        .await
        .into_iter()
        .find(|note| note.run.run_id == *run_id))
}

/// [`settle_damaged`], failing with [`RunLeftInPlace`] when the run could not be moved.
async fn settle_or_refuse(state: &StateDir, run_id: &RunId, json: bool) -> anyhow::Result<()> {
    match settle_damaged(state, run_id, json).await? {
        Some(note) => Err(RunLeftInPlace(note).into()),
        None => Ok(()),
    }
}

/// When a finished run finished: `finished_at`, or for metadata without it (written before
/// every terminal swap set it) the last update, which was the move to its final status.
fn finished_time(meta: &RunMeta) -> u64 {
    meta.finished_at.unwrap_or(meta.updated_at).0
}

/// Why `cairn runs prune` left an eligible run in place, for the line naming it on stderr.
/// `None` for an error that is not about the run but about the store (the prune stops).
fn prune_skip_reason(error: &cairn_checkpoint::Error) -> Option<String> {
    use cairn_checkpoint::Error;
    match error {
        Error::Locked { holder, .. } => Some(format!(
            "a live process holds it ({holder}); try again once it is done"
        )),
        Error::NotTerminal { status, .. } => Some(format!(
            "it changed meanwhile and is {status} now, so it is kept"
        )),
        error if error.is_bad_state() => Some(format!(
            "its stored state is damaged and is kept for inspection ({error})"
        )),
        _ => None,
    }
}

/// One line (or JSON line) about a run that prune removed or would remove. `meta` is the
/// run as listed, so a failed run that the prune abandons (or would) reads `failed`.
fn print_pruned(meta: &RunMeta, dry_run: bool, json: bool, output_removed: bool) {
    let abandons = meta.status == RunStatus::Failed;
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "event": if dry_run { "would_prune" } else { "pruned" },
                "run_id": meta.run_id.as_str(),
                "status": meta.status.as_str(),
                "abandoned": abandons,
                "workflow": meta.workflow,
                "scope": meta.scope,
                "finished_at": finished_time(meta),
                "output_removed": output_removed,
            })
        );
    } else {
        let abandoned = match (abandons, dry_run) {
            (false, _) => "",
            (true, true) => ", abandoned first",
            (true, false) => ", abandoned, then removed",
        };
        outln!(
            "{} run {} ({}{abandoned}, workflow {}, scope {}, finished {} UTC)",
            if dry_run { "would prune" } else { "pruned" },
            meta.run_id,
            meta.status,
            escape_controls(&meta.workflow),
            escape_controls(&meta.scope),
            format_timestamp(finished_time(meta))
        );
    }
}

/// What a prune that stops on a store error says it removed before the error.
fn removed_before(pruned: usize) -> String {
    match pruned {
        0 => "no run was removed before it".to_owned(),
        1 => "the 1 run counted above was removed before it".to_owned(),
        n => format!("the {n} runs counted above were removed before it"),
    }
}

/// The tallies of one prune, printed as its last line.
#[derive(Debug, Default)]
struct PruneTally {
    pruned: usize,
    kept: usize,
    skipped: usize,
}

impl PruneTally {
    fn print(&self, dry_run: bool, json: bool, cutoff_ms: u64) {
        if json {
            // A dry run removed nothing: its count is `would_prune`, never `pruned`.
            let (pruned, would_prune) = if dry_run {
                (0, self.pruned)
            } else {
                (self.pruned, 0)
            };
            outln!(
                "{}",
                serde_json::json!({
                    "event": "summary",
                    "dry_run": dry_run,
                    "cutoff": cutoff_ms,
                    "pruned": pruned,
                    "would_prune": would_prune,
                    "kept": self.kept,
                    "skipped": self.skipped,
                })
            );
        } else if dry_run {
            outln!(
                "would prune {} run(s), keep {} (dry run: nothing was removed)",
                self.pruned,
                self.kept
            );
        } else if self.skipped > 0 {
            outln!(
                "pruned {} run(s), kept {} ({} skipped, named above)",
                self.pruned,
                self.kept,
                self.skipped
            );
        } else {
            outln!("pruned {} run(s), kept {}", self.pruned, self.kept);
        }
    }
}

/// `cairn runs prune`: removes `completed` and `cancelled` runs that finished before the
/// cutoff, with their output folders (and with `--include-failed`, `failed` ones, each
/// abandoned first); everything else is kept.
async fn cmd_prune(args: PruneArgs) -> anyhow::Result<u8> {
    let state = open_existing_state(&args.store)?;
    let json = args.store.json;
    let now = cairn_checkpoint::wall_clock_now().0;
    let cutoff = now.saturating_sub(u64::try_from(args.older_than.as_millis()).unwrap_or(u64::MAX));
    let mut incomplete = false;
    if !args.dry_run {
        for left in state.sweep_removed_output() {
            eoutln!(
                "warning: could not delete {}, left by an earlier prune; it is tried again next time",
                left.display()
            );
            incomplete = true;
        }
    }
    let runs = list_runs(&state, json).await?;
    let mut tally = PruneTally {
        kept: runs.len(),
        ..PruneTally::default()
    };
    let policy = ResumePolicy::new(Arc::clone(&state.factory));
    let eligible = |meta: &&RunMeta| {
        (meta.status.is_terminal() || (args.include_failed && meta.status == RunStatus::Failed))
            && finished_time(meta) < cutoff
    };
    for meta in runs.iter().filter(eligible) {
        let run_id = &meta.run_id;
        if args.dry_run {
            print_pruned(meta, true, json, false);
            tally.pruned += 1;
            tally.kept -= 1;
            continue;
        }
        if meta.status == RunStatus::Failed {
            // Only a run still failed as listed is abandoned: one a resumer took meanwhile
            // is its, even if it has failed again since (that failure is newer than the
            // cutoff the listing was checked against).
            match policy.abandon_failed(meta).await {
                Ok(Some(_)) => {}
                Ok(None) => {
                    eoutln!(
                        "skipped run {run_id}: it is no longer failed (it changed meanwhile), so it is kept"
                    );
                    tally.skipped += 1;
                    continue;
                }
                Err(cairn_runs::Error::NotFound { .. }) => {
                    tally.kept -= 1;
                    continue;
                }
                // Abandoned, but with no record of it: kept, so the record can still follow.
                Err(error @ cairn_runs::Error::AbandonedNotAudited { .. }) => {
                    eoutln!(
                        "skipped run {run_id}: {}; it is kept",
                        terminal_safe(&error.to_string())
                    );
                    tally.skipped += 1;
                    continue;
                }
                Err(error) => {
                    let reason = match &error {
                        cairn_runs::Error::Storage(store) => prune_skip_reason(store),
                        _ => None,
                    };
                    if let Some(reason) = reason {
                        eoutln!("skipped run {run_id}: {reason}");
                        tally.skipped += 1;
                        continue;
                    }
                    tally.print(false, json, cutoff);
                    return Err(anyhow::Error::new(error).context(format!(
                        "cannot abandon failed run {run_id} to remove it; {}",
                        removed_before(tally.pruned)
                    )));
                }
            }
        }
        let removed = match state.factory.remove_terminal(run_id).await {
            Ok(removed) => removed,
            // Another prune removed it meanwhile: it is gone, as asked.
            Err(cairn_checkpoint::Error::NotFound { .. }) => {
                tally.kept -= 1;
                continue;
            }
            Err(error) => match prune_skip_reason(&error) {
                Some(reason) => {
                    eoutln!("skipped run {run_id}: {reason}");
                    tally.skipped += 1;
                    continue;
                }
                None => {
                    tally.print(false, json, cutoff);
                    return Err(anyhow::Error::new(error).context(format!(
                        "cannot remove run {run_id}; {}",
                        removed_before(tally.pruned)
                    )));
                }
            },
        };
        tally.pruned += 1;
        tally.kept -= 1;
        // The run is gone from the store; its output folder follows. A failure leaves the
        // folder (or a hidden one the next prune deletes) and is reported.
        let output_removed = match state.remove_run_output(run_id) {
            Ok(removed) => removed,
            Err(error) => {
                eoutln!(
                    "warning: run {run_id} was removed, but its output folder was not: {}",
                    error_text(&error)
                );
                incomplete = true;
                false
            }
        };
        print_pruned(
            if meta.status == RunStatus::Failed {
                meta
            } else {
                &removed
            },
            false,
            json,
            output_removed,
        );
    }
    let listed: BTreeSet<&RunId> = runs.iter().map(|meta| &meta.run_id).collect();
    incomplete |= prune_orphaned_output(&state, &listed, cutoff, args.dry_run, json).await;
    tally.print(args.dry_run, json, cutoff);
    if tally.skipped > 0 || incomplete {
        Ok(EXIT_STORE)
    } else {
        Ok(EXIT_OK)
    }
}

/// How long an output folder with no run must have been left alone before a prune removes
/// it: a run's folder is written just before the run begins, so a young one may be a run that
/// is beginning right now.
const ORPHAN_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes (or with `dry_run` lists) the output folders of runs that no longer exist: those a
/// prune cut short by a crash between removing the run and its folder. A folder is removed
/// only when the store has no such run (not listed, not quarantined, not left in place, and
/// not found when asked again) and it has not changed since before the cutoff and for
/// [`ORPHAN_MIN_AGE`]. Returns whether a folder could not be removed (named on stderr).
async fn prune_orphaned_output(
    state: &StateDir,
    listed: &BTreeSet<&RunId>,
    cutoff_ms: u64,
    dry_run: bool,
    json: bool,
) -> bool {
    let folders = state.output_folders();
    if folders.is_empty() {
        return false;
    }
    let cutoff = std::time::UNIX_EPOCH + std::time::Duration::from_millis(cutoff_ms);
    let young = std::time::SystemTime::now()
        .checked_sub(ORPHAN_MIN_AGE)
        .unwrap_or(std::time::UNIX_EPOCH);
    let mut kept: BTreeSet<RunId> = state
        .factory
        .list_quarantined()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|entry| entry.run_id)
        .collect();
    kept.extend(
        state
            .left_in_place()
            .await
            .into_iter()
            .map(|note| note.run.run_id),
    );
    let mut failed = false;
    for folder in folders {
        let run_id = &folder.run_id;
        if folder.modified >= cutoff
            || folder.modified >= young
            || listed.contains(run_id)
            || kept.contains(run_id)
            // Anything but a clear "no such run" (an error, a run begun since) keeps it.
            || !matches!(state.factory.load_meta(run_id).await, Ok(None))
        {
            continue;
        }
        let path = folder.path.display().to_string();
        if dry_run {
            if json {
                outln!(
                    "{}",
                    serde_json::json!({"event": "would_remove_orphaned_output", "run_id": run_id.as_str(), "path": path})
                );
            } else {
                outln!(
                    "would remove output folder {} (its run {run_id} no longer exists)",
                    escape_controls(&path)
                );
            }
            continue;
        }
        match state.remove_run_output(run_id) {
            Ok(_) if json => outln!(
                "{}",
                serde_json::json!({"event": "orphaned_output_removed", "run_id": run_id.as_str(), "path": path})
            ),
            Ok(_) => outln!(
                "removed output folder {} (its run {run_id} no longer exists)",
                escape_controls(&path)
            ),
            Err(error) => {
                eoutln!(
                    "warning: could not remove output folder {} of run {run_id}, which no longer exists: {}",
                    escape_controls(&path),
                    error_text(&error)
                );
                failed = true;
            }
        }
    }
    failed
}

async fn cmd_show(args: RunRef) -> anyhow::Result<u8> {
    let state = open_existing_state(&args.store)?;
    let run_id = parse_run_id(&args.run)?;
    settle_or_refuse(&state, &run_id, args.store.json).await?;
    let meta = load_meta(&state, &run_id).await?;
    let held = state.factory.is_held(&run_id).await.unwrap_or(false);
    let peek = if held {
        // What the driver has written so far; an adapter that cannot read beside it says so.
        policy::peek_live(state.factory.as_ref(), &run_id)
            .await
            .map_err(|error| match error.downcast_ref::<cairn_checkpoint::Error>() {
                Some(cairn_checkpoint::Error::Locked { .. }) => anyhow::anyhow!(
                    "the run is being driven right now by another process, and the {} adapter cannot read it beside its driver",
                    state.adapter.as_str()
                ),
                _ => error,
            })
    } else {
        policy::peek(state.factory.as_ref(), &run_id).await
    };
    let rows: Vec<TaskRow> = match &peek {
        Ok(peek) => peek
            .queue
            .tasks()
            .map(|t| TaskRow {
                task: t
                    .inputs
                    .get("id")
                    .and_then(|v| v.as_str())
                    .map_or_else(|| t.id.to_string(), str::to_owned),
                status: t.status,
                attempts: t.attempts,
                max_attempts: t.max_attempts,
                duration_ms: match (t.started_at, t.finished_at) {
                    (Some(s), Some(f)) => Some(f.0.saturating_sub(s.0)),
                    _ => None,
                },
                error: t.error.as_ref().map(ToString::to_string),
                earlier: matches!(t.status, Status::Done | Status::Skipped),
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    // The rows hold all that is shown; the queue can go (a large run's is most of the memory).
    let peek = peek.map(drop);
    if args.store.json {
        let tasks: Vec<ShowTaskJson<'_>> = rows
            .iter()
            .map(|r| {
                // As for the run: a done task's error is from an attempt before the one that
                // succeeded, so it is `earlier_error`, never `error`.
                let (error, earlier_error) = if r.earlier {
                    (None, r.error.as_deref())
                } else {
                    (r.error.as_deref(), None)
                };
                ShowTaskJson {
                    attempts: r.attempts,
                    duration_ms: r.duration_ms,
                    earlier_error,
                    error,
                    max_attempts: r.max_attempts,
                    status: r.status.as_str(),
                    task: &r.task,
                }
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string(&ShowJson {
                live: held,
                output: serde_json::json!(state.run_output(&run_id)),
                run: meta_json(&meta),
                tasks,
                tasks_error: peek.as_ref().err().map(error_text),
            })?
        );
        return Ok(EXIT_OK);
    }
    outln!("run       {}", meta.run_id);
    outln!(
        "workflow  {} (scope {})",
        escape_controls(&meta.workflow),
        escape_controls(&meta.scope)
    );
    let standing = if held {
        " (live)".to_owned()
    } else if peek.as_ref().is_err_and(newer_format) {
        // Resume and abandon both refuse such a run, so advising them would send the reader
        // round in a circle.
        " (written by a newer cairn build: this build leaves it as it is; resume, abandon or remove it with that build or a later one)".to_owned()
    } else if meta.status == RunStatus::Running {
        format!(
            " (interrupted: no process drives it; `cairn resume {run_id}` goes on with it, `cairn abandon {run_id}` gives it up)"
        )
    } else {
        String::new()
    };
    outln!("status    {}{standing}", meta.status);
    outln!("created   {}", format_timestamp(meta.created_at.0));
    if let Some(finished) = meta.finished_at {
        outln!("finished  {}", format_timestamp(finished.0));
    }
    outln!("input     {}", input_preview(&meta.input));
    // A completed run can still carry the error of a failure it was resumed from.
    if let Some(error) = meta
        .error
        .as_ref()
        .filter(|_| meta.status != RunStatus::Completed)
    {
        outln!("error     {}", escape_controls(&error.to_string()));
    }
    outln!("output    {}", state.run_output(&run_id).display());
    match &peek {
        Err(error) => outln!(
            "tasks     unavailable: {}",
            escape_controls(&error_text(error))
        ),
        Ok(_) => {
            outln!();
            outln!(
                "{:<24}  {:<8}  {:<8}  {:<9}  LAST ERROR",
                "TASK",
                "STATUS",
                "ATTEMPTS",
                "DURATION"
            );
            for row in &rows {
                // A done task's error is from an attempt before the one that succeeded (or
                // from before a resume): labelled so it is not read as the task's state.
                let error = match (&row.error, row.earlier) {
                    (Some(error), true) => format!("earlier: {}", clip(error, 71)),
                    (Some(error), false) => clip(error, 80),
                    (None, _) => String::new(),
                };
                outln!(
                    "{}  {:<8}  {:<8}  {:<9}  {error}",
                    cell(&row.task, 24),
                    row.status.as_str(),
                    format!("{}/{}", row.attempts, row.max_attempts),
                    row.duration_ms
                        .map(|ms| format_duration(std::time::Duration::from_millis(ms)))
                        .unwrap_or_default(),
                );
                if out::stdout_closed() {
                    break;
                }
            }
        }
    }
    Ok(EXIT_OK)
}

fn input_preview(input: &str) -> String {
    let preview = cairn_runs::InputPreview::new(input);
    if preview.total_chars == 0 {
        "(none)".to_owned()
    } else if preview.cut {
        format!("{:?}… ({} characters)", preview.text, preview.total_chars)
    } else {
        format!("{:?}", preview.text)
    }
}

/// What `cairn show --json` prints. Its keys are in the order `serde_json::json!` printed
/// them in (sorted), and each task is written as it is serialized: a JSON value per task took
/// about a kilobyte each.
#[derive(serde::Serialize)]
struct ShowJson<'a> {
    live: bool,
    output: serde_json::Value,
    run: serde_json::Value,
    tasks: Vec<ShowTaskJson<'a>>,
    tasks_error: Option<String>,
}

/// One task of [`ShowJson`], keys sorted likewise.
#[derive(serde::Serialize)]
struct ShowTaskJson<'a> {
    attempts: u32,
    duration_ms: Option<u64>,
    earlier_error: Option<&'a str>,
    error: Option<&'a str>,
    max_attempts: u32,
    status: &'static str,
    task: &'a str,
}

struct TaskRow {
    task: String,
    status: Status,
    attempts: u32,
    max_attempts: u32,
    duration_ms: Option<u64>,
    error: Option<String>,
    /// The task is done (or skipped), so `error` is history: from an attempt before the one
    /// that succeeded.
    earlier: bool,
}

async fn cmd_logs(args: LogsArgs) -> anyhow::Result<u8> {
    use crate::logs::{output_files, print_listing, select};
    let state = open_existing_state(&args.store)?;
    let run_id = parse_run_id(&args.run)?;
    let dir = state.run_output(&run_id);
    // Output is kept beside the store, so a quarantined run's is still readable, and so is
    // the output of a run the store cannot read. An id with no output folder is looked up:
    // a store that cannot read it says why (a newer build wrote it, the store is broken)
    // rather than calling the id unknown.
    if !dir.is_dir() {
        let meta = state
            .factory
            .load_meta(&run_id)
            .await
            .with_context(|| format!("cannot read run {run_id}"))?;
        if meta.is_none() {
            return Err(unknown_run(&state, &run_id).await);
        }
    }
    if args.follow {
        if args.store.json {
            return Err(UsageError(
                "--follow prints output as it comes; it has no --json form".to_owned(),
            )
            .into());
        }
        let task = args.task.as_deref().unwrap_or_default();
        // Damaged state is moved to quarantine first, as `cairn show` and `cairn audit` do,
        // so the follower finds the run quarantined (its output is still shown) rather than
        // failing on it.
        if let Some(note) = settle_damaged(&state, &run_id, false).await? {
            eoutln!("note: {note}");
        }
        let flags = store_flags(&state, &args.store);
        return follow_logs(&state, &run_id, task, args.stream, &flags).await;
    }
    let files = output_files(&dir)
        .with_context(|| format!("cannot read the output folder {}", dir.display()))?;
    let chosen = select(
        files,
        args.task.as_deref(),
        args.attempt.as_deref(),
        args.stream,
    )
    .map_err(UsageError)?;
    if args.task.is_none() || args.store.json {
        if chosen.is_empty() && !args.store.json {
            // The folder is made when the run begins (it holds the run's workflow copy), so
            // a missing one says nothing about whether tasks started.
            if dir.is_dir() {
                outln!("run {run_id} has no saved output yet (no task of it has started)");
            } else {
                outln!(
                    "run {run_id} has no saved output: its output folder {} does not exist (it was removed, or the run was not started by the cairn command)",
                    dir.display()
                );
            }
        } else {
            print_listing(&chosen, args.store.json);
        }
        return Ok(EXIT_OK);
    }
    let headers = args.stream.is_none();
    for file in &chosen {
        if headers {
            outln!(
                "==> {} attempt {} {} ({} bytes, {}) <==",
                escape_controls(&file.task),
                file.attempt,
                file.stream.as_str(),
                file.bytes,
                escape_controls(&file.path.display().to_string())
            );
        }
        let ends_in_newline = copy_to_stdout(&file.path)
            .with_context(|| format!("cannot read {}", file.path.display()))?;
        if headers && !ends_in_newline {
            outln!();
        }
    }
    Ok(EXIT_OK)
}

/// How often `cairn logs --follow` looks for new output and for the task's end.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// Where a followed task stands.
enum FollowedTask {
    /// It may still write output: it is running, or waits to start, in a driven run.
    Going,
    /// It will write no more: finished, or its run is no longer driven.
    Over(String),
}

/// `cairn logs RUN TASK --follow`: prints the task's output as its command writes it, each
/// attempt in turn, until the task is finished or its run stops being driven. The task's
/// state is read before its files on every pass, so once it is seen finished, the pass
/// that follows reads everything it wrote (output is saved before a task's end is
/// journaled). `flags` are the store flags ([`store_flags`]) for the resume command it may
/// print.
async fn follow_logs(
    state: &StateDir,
    run_id: &RunId,
    task: &str,
    stream: Option<crate::logs::Stream>,
    flags: &str,
) -> anyhow::Result<u8> {
    use crate::logs::{Tail, output_files};
    let dir = state.run_output(run_id);
    let headers = stream.is_none();
    let mut tails: Vec<Tail> = Vec::new();
    let mut shown: Option<(String, crate::logs::Stream)> = None;
    let mut said_waiting = false;
    loop {
        let standing = followed_task(state, run_id, task, flags).await?;
        let files: Vec<_> = output_files(&dir)
            .with_context(|| format!("cannot read the output folder {}", dir.display()))?
            .into_iter()
            .filter(|f| f.task == task && stream.is_none_or(|s| s == f.stream))
            .collect();
        let latest = files.last().map(|f| f.attempt.clone());
        for file in files
            .into_iter()
            .filter(|f| Some(&f.attempt) == latest.as_ref())
        {
            if !tails.iter().any(|t| t.file.path == file.path) {
                tails.push(Tail::new(file));
            }
        }
        if latest.is_none() && !said_waiting && matches!(standing, FollowedTask::Going) {
            eoutln!("waiting for task `{}` to start…", escape_controls(task));
            said_waiting = true;
        }
        // Earlier attempts first: their files are complete once a later one exists.
        for tail in &mut tails {
            let bytes = tail
                .read_new()
                .with_context(|| format!("cannot read {}", tail.file.path.display()))?;
            if bytes.is_empty() {
                continue;
            }
            let source = (tail.file.attempt.clone(), tail.file.stream);
            if headers && shown.as_ref() != Some(&source) {
                if shown.is_some() {
                    outln!();
                }
                outln!(
                    "==> {} attempt {} {} <==",
                    escape_controls(task),
                    tail.file.attempt,
                    tail.file.stream.as_str()
                );
                shown = Some(source);
            }
            if !out::write_stdout_bytes(&bytes) {
                return Ok(EXIT_OK);
            }
        }
        tails.retain(|t| Some(&t.file.attempt) == latest.as_ref());
        if let FollowedTask::Over(why) = standing {
            eoutln!("{why}");
            return Ok(EXIT_OK);
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

/// Reads where a followed task stands: from the run as its driver has written it so far,
/// or as stored once nobody drives it. `flags` go into the resume command it names, so
/// that the command works as typed from where the follower was run.
///
/// # Errors
///
/// The run cannot be read, or has no task of that id (a usage error naming its tasks).
async fn followed_task(
    state: &StateDir,
    run_id: &RunId,
    task: &str,
    flags: &str,
) -> anyhow::Result<FollowedTask> {
    let held = state.factory.is_held(run_id).await?;
    if !held
        && state
            .factory
            .load_meta(run_id)
            .await
            .with_context(|| format!("cannot read run {run_id}"))?
            .is_none()
    {
        // Its output is kept beside the store (`cmd_logs` found its folder), so what was
        // saved is printed; nothing more will come.
        return Ok(FollowedTask::Over(
            match state.quarantine_of(run_id).await {
                Some(note) => note.to_string(),
                None => format!(
                    "run {run_id} has no stored state in {} (it was removed): only its saved output is left",
                    state.root.display()
                ),
            },
        ));
    }
    let read = if held {
        policy::peek_live(state.factory.as_ref(), run_id).await
    } else {
        policy::peek(state.factory.as_ref(), run_id).await
    };
    let peek = match read {
        Ok(peek) => peek,
        // An adapter that cannot read beside the driver: follow while it drives.
        Err(error)
            if held
                && matches!(
                    error.downcast_ref::<cairn_checkpoint::Error>(),
                    Some(cairn_checkpoint::Error::Locked { .. })
                ) =>
        {
            return Ok(FollowedTask::Going);
        }
        Err(error) => return Err(error),
    };
    let id_of = |t: &cairn_queue::Task| {
        t.inputs
            .get("id")
            .and_then(|v| v.as_str())
            .map_or_else(|| t.id.to_string(), str::to_owned)
    };
    let Some(found) = peek.queue.tasks().find(|t| id_of(t) == task) else {
        let tasks: Vec<String> = peek
            .queue
            .tasks()
            .map(|t| escape_controls(&id_of(t)).into_owned())
            .collect();
        return Err(UsageError(format!(
            "run {run_id} has no task `{}`; its tasks: {}",
            escape_controls(task),
            tasks.join(", ")
        ))
        .into());
    };
    let name = escape_controls(task);
    Ok(match found.status {
        Status::Done | Status::Skipped | Status::Failed | Status::Blocked => {
            FollowedTask::Over(format!(
                "task `{name}` is {} (attempt {})",
                found.status.as_str(),
                found.attempts
            ))
        }
        Status::Pending | Status::Running if held => FollowedTask::Going,
        Status::Pending | Status::Running => {
            let run = match peek.meta.status {
                RunStatus::Running => "was interrupted".to_owned(),
                other => format!("is {other}"),
            };
            FollowedTask::Over(format!(
                "task `{name}` is {} and run {run_id} is not being driven (it {run}); `cairn resume {run_id}{flags}` goes on with it",
                found.status.as_str(),
            ))
        }
    })
}

/// Copies a file to stdout as it is, in chunks (outputs can be large); stops early once
/// stdout has failed. Returns whether the last byte copied was a newline (or nothing was).
fn copy_to_stdout(path: &Path) -> std::io::Result<bool> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut last = b'\n';
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(last == b'\n');
        }
        last = buf[n - 1];
        if !crate::out::write_stdout_bytes(&buf[..n]) {
            return Ok(true);
        }
    }
}

async fn cmd_audit(args: RunRef) -> anyhow::Result<u8> {
    let state = open_existing_state(&args.store)?;
    let run_id = parse_run_id(&args.run)?;
    let mut quarantined = false;
    // A damaged run that stays in place still has its audit log where it was.
    let left = settle_damaged(&state, &run_id, args.store.json).await?;
    if let Some(note) = &left {
        eoutln!("note: {note}");
    }
    if left.is_none()
        && state
            .factory
            .load_meta(&run_id)
            .await
            .ok()
            .flatten()
            .is_none()
    {
        // A quarantined run's audit log is still readable, and is where the reason is.
        match state.quarantine_of(&run_id).await {
            Some(note) => {
                eoutln!("note: {note}");
                quarantined = true;
            }
            None => {
                load_meta(&state, &run_id).await?;
            }
        }
    }
    let records = state
        .factory
        .read_audit(&run_id)
        .await
        .with_context(|| format!("cannot read the audit log of run {run_id}"))?;
    for record in &records {
        if args.store.json {
            outln!("{}", serde_json::to_string(record)?);
        } else {
            print_audit_line(record.at.0, &record.action, &record.message, 24);
        }
    }
    if records.is_empty() && !args.store.json {
        if quarantined {
            // A stray file quarantined in a run's place never had a folder, so no log.
            outln!(
                "run {run_id} has no audit log of its own; the note above is its quarantine record"
            );
        } else {
            outln!("run {run_id} has no audit records");
        }
    }
    Ok(EXIT_OK)
}

/// Prints one audit record for people: time, the action's snake_case name padded to
/// `width`, and the message. Runs and jobs share it.
pub fn print_audit_line<A: serde::Serialize + std::fmt::Debug>(
    at_ms: u64,
    action: &A,
    message: &str,
    width: usize,
) {
    let name = serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{action:?}"));
    outln!("{}  {name:<width$}  {message}", format_timestamp(at_ms));
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn format_timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// The path a workflow file's default state folder has.
pub fn default_state_dir(workflow: &Path) -> PathBuf {
    match workflow.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => parent.join(".cairn"),
        None => PathBuf::from(".cairn"),
    }
}
