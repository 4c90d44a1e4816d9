//! The `shell` task handler: runs a task's command with `sh -c` in its own process group,
//! captures its output to files, and turns its exit into a task outcome.
//!
//! # Output capture
//!
//! Each attempt writes `<output root>/<run id>/<task>.<attempt>.stdout` and `.stderr` (with
//! `-2`, `-3`, ... after the attempt number when a resume repeats attempt numbers: existing
//! output is never overwritten), and first appends that attempt name to `<task>.starts`,
//! which gives `cairn logs` the order the attempts ran in (see `logs`). Each file keeps at
//! most [`OUTPUT_CAP`] bytes of its stream (1 MiB): all of it when it fits, else its first
//! [`OUTPUT_HEAD`] bytes and its last [`OUTPUT_TAIL`] (where test runners print why they
//! failed), with a `[cairn: N bytes dropped here; ...]` line between them. The tail is held in memory and written when the
//! stream ends, so `cairn logs --follow` shows it at the end. Apart from the files, the last
//! [`TAIL_LINES`] lines of each stream are kept in memory, so a failed task can always show
//! how its output ended even when the file was capped.
//!
//! # Outcomes
//!
//! Exit 0 completes the task. An exit code listed in `permanent_exit_codes` fails it at once;
//! any other exit code, a death by signal (named: `killed by signal 9 (SIGKILL)`) and a
//! timeout are retryable while attempts remain. A command that cannot be started fails at
//! once (the error blames the working folder only when it is missing), unless the OS was
//! only out of processes, memory or file descriptors: that start is retried like a failed
//! attempt. A command that dies of a stop signal (SIGTERM, SIGINT, SIGHUP, or the shell's
//! exit code for one) while cairn is shutting down, or within [`STOP_SIGNAL_WINDOW`] before
//! cairn's own shutdown begins, was stopped along with cairn (a service manager signals the
//! whole service at once): its attempt is [`TaskFailure::Interrupted`], given back instead of
//! failed.
//!
//! # Environment
//!
//! Besides the task's `env`, each command gets `CAIRN_RUN_ID`, `CAIRN_TASK_ID`,
//! `CAIRN_ATTEMPT`, `CAIRN_INPUT` (the run's `--input`) and `CAIRN_IDEMPOTENCY_KEY`
//! (`<run id>/t<N>`, the queue's number of the task, the same for every attempt: commands
//! run at least once, so effects that must happen once can key on it). A workflow may not
//! set names starting with `CAIRN_` (validation refuses them), so these are never replaced
//! silently.
//!
//! # Process groups
//!
//! The command is the leader of a new process group, so a terminal's Ctrl-C reaches only
//! cairn (which then decides what to stop), and a timeout, the end of the shutdown grace
//! period or a second Ctrl-C can kill the whole tree the command started.
//!
//! When the command exits by itself, whatever it left running in its group (a background
//! job, `cmd &`) is killed, as CI runners do at the end of a step, and reported
//! ([`TaskEvent::LeftoversStopped`]): a task is over when its command is, a leftover would
//! otherwise hold the output pipes open and outlive every record of it, and the group id is
//! safe to signal while a member still holds it. A process meant to outlive its task must
//! leave the group, for example with `setsid`.
//!
//! Tasks get no terminal input: stdin is `/dev/null` (once [`START_GATE`] has read cairn's
//! go-ahead from it), and the script runs behind
//! [`TERMINAL_GUARD`], which ignores SIGTTIN and SIGTTOU for it and everything it starts. A
//! command's group is never the terminal's foreground group, so a command that opens the
//! terminal itself (a `sudo` or `ssh` password prompt) would otherwise be stopped by it and
//! wait, shown as running, until its timeout or a Ctrl-C; with the signals ignored its read
//! fails at once (EIO) and the task fails with the program's own error. Ignored dispositions
//! survive `exec`, which is what carries the guard to the programs the script runs.
//!
//! # Commands left running by a crash
//!
//! A `kill -9` of cairn cannot take the commands' groups along: they keep running, and a
//! resume would start the same task again beside them. So each attempt records its group in
//! `<output root>/<run id>/<task>.group` (the group id, the leader's start time from
//! `/proc` and the boot id), and removes the file when the attempt ends. The script does not
//! start before its record is written ([`START_GATE`]), so a kill at any moment leaves no
//! command running unrecorded. Before a resumed run starts any task,
//! [`reap_leftovers`] kills every recorded group that is still alive (`cairn abandon` of an
//! interrupted run does the same). The file needs no
//! fsync: a process kill leaves the page cache intact, and a power loss leaves no process.
//! A group is only killed when `/proc` shows it is the recorded one (same boot, same leader
//! start time, or, once the leader is gone, members that started no earlier), so a reused id
//! is never hit; where `/proc` is missing nothing is killed. The boot id matters because
//! start times count from boot: after a power cut (the commands died with it) or for a record
//! written on another host sharing the state folder, an unrelated group with the same id and
//! a later start would otherwise match. Such a record is left alone and reported
//! ([`Reaped::other_boot`]). (Records written before the boot id was added are checked as before.)
//! `cairn scheduler` makes the same checks with [`live_leftovers`], which kills nothing: it
//! does not start a job's next run while a killed scheduler's commands still run, and leaves
//! stopping them to the person who resumes or abandons that run.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cairn_executor::{Finish, Handler, HandlerResult, TaskContext, TaskFailure};
use cairn_queue::{Handoff, TaskId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::progress::{AttemptOutcome, TaskEvent};

/// The queue task kind of workflow tasks.
pub const SHELL_KIND: &str = "shell";

/// Bytes of each output stream kept in its file: its first [`OUTPUT_HEAD`] bytes and its last
/// [`OUTPUT_TAIL`], with a note of what was dropped between them.
pub const OUTPUT_CAP: u64 = 1024 * 1024;

/// Bytes of the start of a stream its file keeps.
pub const OUTPUT_HEAD: u64 = OUTPUT_CAP - OUTPUT_TAIL;

/// Bytes of the end of a stream its file keeps: where test runners and builds print their
/// summary, and so why they failed. Held in memory while the command runs, and written when
/// its stream ends.
pub const OUTPUT_TAIL: u64 = 256 * 1024;

/// The text of [`START_GATE`], as a macro so that [`SCRIPT_PREFIX`] can be built from it.
macro_rules! start_gate {
    () => {
        "read -r _ || exit 125; exec </dev/null; "
    };
}

/// The text of [`TERMINAL_GUARD`], as a macro so that [`SCRIPT_PREFIX`] can be built from it.
macro_rules! terminal_guard {
    () => {
        "trap '' TTIN TTOU; "
    };
}

/// Holds the script until cairn has recorded the command's process group: the shell reads
/// one line from its stdin, a pipe cairn writes only after the record, then takes
/// `/dev/null` as stdin. A cairn killed before that closes the pipe unwritten, and the shell
/// exits 125 without running the script. See "Commands left running by a crash" above.
pub const START_GATE: &str = start_gate!();

/// Ignores SIGTTIN and SIGTTOU for the script and everything it starts: see "Process groups"
/// above.
pub const TERMINAL_GUARD: &str = terminal_guard!();

/// Put in front of every `run` script, on its first line so that the shell's line numbers in
/// error messages stay the script's own: [`START_GATE`], then [`TERMINAL_GUARD`].
pub const SCRIPT_PREFIX: &str = concat!(start_gate!(), terminal_guard!());

/// The environment variable that carries the run's input to each command.
pub const INPUT_VAR: &str = "CAIRN_INPUT";

/// Lines of each stream kept in memory to show when a task fails.
pub const TAIL_LINES: usize = 10;

/// How long to wait, in all, for a finished command's output pipes to close. What the
/// command left in its process group is killed when it exits, but a process it moved out of
/// the group (`setsid`) can still hold them open; its output after that is not captured.
const PIPE_DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// How long the output drain of a command that has exited goes on once the run is shutting
/// down: long enough to read what a command wrote before it exited (its pipes are closed by
/// then unless another process holds them), short next to any grace period.
pub const SHUTDOWN_DRAIN_LIMIT: Duration = Duration::from_millis(100);

/// How long a command that died of a stop signal (SIGTERM, SIGINT, SIGHUP, or exited with
/// 128 plus one of them) waits for cairn's own shutdown to be requested before its death is
/// judged a failure. A service manager's stop (systemd's default `KillMode=control-group`)
/// signals cairn and its commands at once, and the command's death can be seen first.
pub const STOP_SIGNAL_WINDOW: Duration = Duration::from_secs(2);

/// A shell task's definition: the queue task's inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellSpec {
    /// The task's id in the workflow file.
    pub id: String,
    /// The command, run with `sh -c`.
    pub run: String,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The working directory, relative to the workflow file's folder.
    #[serde(default)]
    pub cwd: Option<String>,
    /// The attempt timeout in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Exit codes that fail the task without a retry.
    #[serde(default)]
    pub permanent_exit_codes: Vec<i32>,
}

/// The process groups of running commands, so they can all be killed at once.
#[derive(Debug, Clone, Default)]
pub struct ProcessGroups {
    live: Arc<Mutex<HashSet<u32>>>,
    killing: Arc<AtomicBool>,
}

impl ProcessGroups {
    /// Kills every live command's process group and stops handlers from reporting the
    /// deaths they cause (the process is about to exit and the run stays resumable).
    pub fn kill_all(&self) {
        self.killing.store(true, Ordering::SeqCst);
        let groups: Vec<u32> = self
            .live
            .lock()
            .map(|g| g.iter().copied().collect())
            .unwrap_or_default();
        for group in groups {
            kill_group(group);
        }
    }

    /// Whether [`ProcessGroups::kill_all`] was called.
    pub fn is_killing(&self) -> bool {
        self.killing.load(Ordering::SeqCst)
    }

    fn insert(&self, group: u32) {
        if let Ok(mut live) = self.live.lock() {
            live.insert(group);
        }
    }

    fn remove(&self, group: u32) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&group);
        }
    }
}

/// Sends SIGKILL to a process group. Uses the shell's `kill` builtin because sending a
/// signal from Rust needs `unsafe` (libc), which this workspace forbids.
fn kill_group(group: u32) {
    let _ = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("kill -s KILL -- -{group} 2>/dev/null"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The file extension of an attempt's process group record.
const GROUP_RECORD: &str = "group";

/// How long a start refused for want of resources is tried again within one attempt before
/// the attempt fails (retryably, so the task's next attempt tries again after its backoff).
const START_PATIENCE: Duration = Duration::from_secs(30);

/// A started command, its output files and their paths.
type Started = (
    tokio::process::Child,
    std::io::Result<tokio::fs::File>,
    std::io::Result<tokio::fs::File>,
    PathBuf,
    PathBuf,
);

/// Why a command did not start.
struct StartRefused {
    failure: TaskFailure,
    /// The refusal was for want of resources, which may pass (see `spawn_may_pass`).
    may_pass: bool,
}

/// A live process's group id and start time (clock ticks since boot), from
/// `/proc/<pid>/stat`. A zombie counts as gone: it runs nothing and only waits to be reaped.
fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces; the fields after it are fixed.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    // After the name: state (index 0), ppid, pgrp (index 2), ..., starttime (index 19).
    if matches!(fields.first(), Some(&"Z" | &"X")) {
        return None;
    }
    Some((fields.get(2)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// Whether the recorded group still has live members: its leader with the recorded start
/// time, or, with the leader gone, members that started no earlier than it did.
fn recorded_group_alive(group: u32, leader_start: u64) -> bool {
    if let Some((pgrp, start)) = proc_stat(group) {
        return pgrp == group && start == leader_start;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_stat)
        .any(|(pgrp, start)| pgrp == group && start >= leader_start)
}

/// A command's process group that an interrupted run left running, as its record names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// The workflow task whose command it was.
    pub task: String,
    /// Its process group id.
    pub group: u32,
}

/// What [`reap_leftovers`] did with the process groups an interrupted drive recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Groups that were still alive and were killed.
    pub killed: Vec<Leftover>,
    /// Groups that were sent SIGKILL and still had live members after the wait (a process
    /// stuck in the kernel): they may still be running.
    pub survived: Vec<Leftover>,
    /// Groups that could not be checked because this host has no `/proc`: left alone (a
    /// reused id must never be hit), so they may still be running.
    pub unchecked: Vec<Leftover>,
    /// Groups recorded during another boot (they died with it) or on another host sharing
    /// the state folder (they may still run there): left alone, since their ids and start
    /// times mean nothing in this boot.
    pub other_boot: Vec<Leftover>,
}

impl Reaped {
    /// Whether some recorded group may still be running.
    pub fn any_left(&self) -> bool {
        !self.survived.is_empty() || !self.unchecked.is_empty() || !self.other_boot.is_empty()
    }
}

/// Kills the process groups that an earlier, interrupted drive of this run recorded and that
/// are still alive, and removes their records. Call it before a resumed run starts tasks,
/// and when an interrupted run is abandoned, so its commands never run beside the next
/// attempt of the same task. A group that cannot be checked (no `/proc`) or that outlives
/// its SIGKILL is reported, not silently dropped.
///
/// # Examples
///
/// ```
/// let root = std::env::temp_dir().join("cairn-doc-reap-nothing");
/// assert_eq!(
///     cairn_cli::shell::reap_leftovers(&root, "run-without-records"),
///     cairn_cli::shell::Reaped::default()
/// );
/// ```
pub fn reap_leftovers(output_root: &Path, run_id: &str) -> Reaped {
    let mut reaped = Reaped::default();
    for path in group_records(output_root, run_id) {
        match reap_record(&path) {
            Some(Reap::Killed(left)) => reaped.killed.push(left),
            Some(Reap::Survived(left)) => reaped.survived.push(left),
            Some(Reap::Unchecked(left)) => reaped.unchecked.push(left),
            Some(Reap::OtherBoot(left)) => reaped.other_boot.push(left),
            None => {}
        }
    }
    for list in [
        &mut reaped.killed,
        &mut reaped.survived,
        &mut reaped.unchecked,
        &mut reaped.other_boot,
    ] {
        list.sort_by(|a, b| a.task.cmp(&b.task));
    }
    reaped
}

/// What happened to the group one record named.
#[derive(Debug)]
enum Reap {
    Killed(Leftover),
    Survived(Leftover),
    Unchecked(Leftover),
    OtherBoot(Leftover),
}

/// What `/proc` says of a recorded group, checked without touching it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// The recorded group still has live members in this boot.
    Alive,
    /// It is gone (or its id now names another group).
    Gone,
    /// This host has no `/proc` to check it.
    Unchecked,
    /// It was recorded during another boot or on another host.
    OtherBoot,
}

/// How the group a record names stands on this host now.
fn standing(group: u32, start: u64, boot: Option<&str>) -> Standing {
    if !Path::new("/proc/self/stat").exists() {
        return Standing::Unchecked;
    }
    // Start times count from boot: a record of another boot (or host) names nothing here.
    if boot.is_some() && boot != cairn_checkpoint::ProcessStart::current_boot_id().as_deref() {
        return Standing::OtherBoot;
    }
    if recorded_group_alive(group, start) {
        Standing::Alive
    } else {
        Standing::Gone
    }
}

/// Kills the group one record names if it is still alive, then removes the record. `None`
/// when the record does not parse or its group is gone.
fn reap_record(path: &Path) -> Option<Reap> {
    let parsed = read_record(path);
    let _ = std::fs::remove_file(path);
    let (leftover, start, boot) = parsed?;
    match standing(leftover.group, start, boot.as_deref()) {
        Standing::Unchecked => return Some(Reap::Unchecked(leftover)),
        Standing::OtherBoot => return Some(Reap::OtherBoot(leftover)),
        Standing::Gone => return None,
        Standing::Alive => {}
    }
    kill_group(leftover.group);
    // Wait for the kernel to take the group down, so the task's next attempt never
    // overlaps it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while recorded_group_alive(leftover.group, start) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if recorded_group_alive(leftover.group, start) {
        Some(Reap::Survived(leftover))
    } else {
        Some(Reap::Killed(leftover))
    }
}

/// The process groups an interrupted drive of this run recorded, read without checking or
/// touching them: for a run whose last driver ran on another host, whose process ids mean
/// nothing here.
pub fn recorded_leftovers(output_root: &Path, run_id: &str) -> Vec<Leftover> {
    let mut recorded: Vec<Leftover> = group_records(output_root, run_id)
        .iter()
        .filter_map(|path| read_record(path).map(|(leftover, _, _)| leftover))
        .collect();
    recorded.sort_by(|a, b| a.task.cmp(&b.task));
    recorded
}

/// The process groups an interrupted drive of this run recorded that `/proc` confirms are
/// still alive in this boot, read without killing them or removing their records: for a
/// caller that must not start the same work beside them but leaves stopping them to a
/// person (`cairn resume` and `cairn abandon` reap them). A group recorded in another boot
/// or on another host, or one that cannot be checked (no `/proc`), is not counted.
///
/// # Examples
///
/// ```
/// let root = std::env::temp_dir().join("cairn-doc-live-nothing");
/// assert!(cairn_cli::shell::live_leftovers(&root, "run-without-records").is_empty());
/// ```
pub fn live_leftovers(output_root: &Path, run_id: &str) -> Vec<Leftover> {
    let mut live: Vec<Leftover> = group_records(output_root, run_id)
        .iter()
        .filter_map(|path| read_record(path))
        .filter(|(leftover, start, boot)| {
            standing(leftover.group, *start, boot.as_deref()) == Standing::Alive
        })
        .map(|(leftover, _, _)| leftover)
        .collect();
    live.sort_by(|a, b| a.task.cmp(&b.task));
    live
}

/// The paths of a run's process group records.
fn group_records(output_root: &Path, run_id: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(output_root.join(run_id)) else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().and_then(|e| e.to_str()) == Some(GROUP_RECORD))
        .collect()
}

/// The group, its leader's start time and the boot id (absent in records written before it
/// was added) that one record names; `None` for a record that does not parse (or names group
/// 0 or 1, which are never a command's).
fn read_record(path: &Path) -> Option<(Leftover, u64, Option<String>)> {
    let record = std::fs::read_to_string(path).ok()?;
    let mut parts = record.split_whitespace();
    let group = parts.next()?.parse::<u64>().ok()?;
    let start = parts.next()?.parse::<u64>().ok()?;
    let boot = parts.next().map(str::to_owned);
    let group = u32::try_from(group).ok().filter(|g| *g > 1)?;
    let task = path.file_stem()?.to_str()?.to_owned();
    Some((Leftover { task, group }, start, boot))
}

/// Kills the group when dropped unless disarmed: an attempt that is dropped (the executor's
/// grace period ended) or timed out takes its whole process tree with it.
struct GroupGuard {
    group: u32,
    groups: ProcessGroups,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            kill_group(self.group);
        }
        self.groups.remove(self.group);
    }
}

/// The handler of `shell` tasks.
#[derive(Debug, Clone)]
pub struct ShellHandler {
    workflow_dir: PathBuf,
    output_root: PathBuf,
    input: String,
    events: UnboundedSender<TaskEvent>,
    groups: ProcessGroups,
    /// The run's graceful shutdown (Ctrl-C, SIGTERM): it cuts short the output drain of a
    /// command that has already exited (see [`ShellHandler::with_shutdown`]).
    shutdown: CancellationToken,
    /// How long a drain goes on once the shutdown is signalled.
    shutdown_drain: Duration,
}

impl ShellHandler {
    /// A handler that resolves `cwd`s against `workflow_dir`, writes output under
    /// `output_root/<run id>/`, gives commands the run's `input` as `CAIRN_INPUT`, and
    /// reports attempts on `events`.
    pub fn new(
        workflow_dir: PathBuf,
        output_root: PathBuf,
        input: String,
        events: UnboundedSender<TaskEvent>,
        groups: ProcessGroups,
    ) -> ShellHandler {
        ShellHandler {
            workflow_dir,
            output_root,
            input,
            events,
            groups,
            shutdown: CancellationToken::new(),
            shutdown_drain: SHUTDOWN_DRAIN_LIMIT,
        }
    }

    /// Watches the run's graceful `shutdown` token: once it fires, a command that has
    /// already exited waits no more for its output pipes (a process that left its group
    /// can hold them for `PIPE_DRAIN_LIMIT`), at most [`SHUTDOWN_DRAIN_LIMIT`] or a
    /// quarter of the shutdown `grace`, whichever is shorter, so its result is in before
    /// the grace runs out and the executor stops the attempt. Otherwise a command that
    /// exited 0 would not be recorded done and would run again on resume.
    #[must_use]
    pub fn with_shutdown(mut self, shutdown: CancellationToken, grace: Duration) -> ShellHandler {
        self.shutdown = shutdown;
        self.shutdown_drain = SHUTDOWN_DRAIN_LIMIT.min(grace / 4);
        self
    }
}

/// What one captured stream left behind.
#[derive(Debug, Default)]
struct Captured {
    tail: VecDeque<String>,
    partial: Vec<u8>,
}

impl Captured {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&self.partial).into_owned();
                self.partial.clear();
                self.push_line(line);
            } else if self.partial.len() < 4096 {
                self.partial.push(b);
            }
        }
    }

    fn push_line(&mut self, line: String) {
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line);
    }

    fn finish(mut self) -> Vec<String> {
        if !self.partial.is_empty() {
            let line = String::from_utf8_lossy(&self.partial).into_owned();
            self.push_line(line);
        }
        self.tail.into_iter().collect()
    }
}

/// What capturing one stream gave: its last lines, and why its file is incomplete, if it is.
#[derive(Debug, Default)]
struct Capture {
    tail: Vec<String>,
    /// Set when the file could not be created or written (a full disk): the command's output
    /// is then missing from it, which must not pass for a command that printed nothing.
    lost: Option<String>,
}

/// Copies a stream into `path`, keeping its first [`OUTPUT_HEAD`] bytes and its last
/// [`OUTPUT_TAIL`] (all of it when it fits in [`OUTPUT_CAP`]), and its last lines. The
/// stream is read to its end even when the file fails, so the command never blocks on a full
/// pipe; a failure is noted in the file when it still takes a write, and reported.
async fn capture(
    mut stream: impl AsyncRead + Unpin,
    file: std::io::Result<tokio::fs::File>,
    path: PathBuf,
) -> Capture {
    let mut lost = None;
    let mut file = match file {
        Ok(file) => Some(file),
        Err(error) => {
            lost = Some(format!("cannot create {}: {error}", path.display()));
            None
        }
    };
    let mut captured = Captured::default();
    // Bytes meant for the file's head, the end of the stream after them (at most
    // OUTPUT_TAIL), and the bytes dropped from between the two.
    let mut meant: u64 = 0;
    let mut end = std::collections::VecDeque::new();
    let mut dropped: u64 = 0;
    let mut write_error = None;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        captured.push(&buf[..n]);
        let keep = (n as u64).min(OUTPUT_HEAD.saturating_sub(meant)) as usize;
        if keep > 0
            && let Some(f) = file.as_mut()
            && let Err(error) = f.write_all(&buf[..keep]).await
        {
            write_error = Some(error);
            file = None;
        }
        meant += keep as u64;
        end.extend(&buf[keep..n]);
        let over = end.len().saturating_sub(OUTPUT_TAIL as usize);
        end.drain(..over);
        dropped += over as u64;
    }
    if let Some(f) = file.as_mut() {
        let (first, second) = end.as_slices();
        let mut rest = Vec::with_capacity(end.len() + 200);
        if dropped > 0 {
            rest.extend_from_slice(
                format!(
                    "\n[cairn: {dropped} bytes dropped here; this file keeps the first {OUTPUT_HEAD} and the last {OUTPUT_TAIL} bytes of the output]\n"
                )
                .as_bytes(),
            );
        }
        rest.extend_from_slice(first);
        rest.extend_from_slice(second);
        if let Err(error) = f.write_all(&rest).await {
            write_error = Some(error);
        }
    }
    if let Some(mut f) = file {
        // A regular file's write error may only show here (tokio writes in the background).
        if let Err(error) = f.flush().await {
            write_error = Some(error);
        }
    }
    if let Some(error) = write_error {
        // What reached the file, as the file says: tokio reports a failed write late.
        let kept = tokio::fs::metadata(&path).await.map_or(0, |m| m.len());
        let not_kept = (meant + end.len() as u64).saturating_sub(kept);
        lost = Some(format!(
            "writing {} failed after {kept} bytes: {error}; {not_kept} bytes of output are not kept",
            path.display()
        ));
        // Best effort: a short note may still fit, so the file does not pass for complete.
        if let Ok(mut f) = tokio::fs::OpenOptions::new().append(true).open(&path).await {
            let note = format!(
                "\n[cairn: writing this file failed ({error}); {not_kept} bytes of output are not kept]\n"
            );
            let _ = f.write_all(note.as_bytes()).await;
            let _ = f.flush().await;
        }
    }
    Capture {
        tail: captured.finish(),
        lost,
    }
}

/// Creates an attempt's output file. `create_new`: earlier output is evidence and is never
/// truncated (see [`free_attempt_name`]).
async fn create_output(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
}

/// Removes the output files of an attempt whose command never started: they are empty and
/// this attempt's own, and a file would suggest that the command ran and printed nothing.
fn discard_unused_output(files: [(&std::io::Result<tokio::fs::File>, &PathBuf); 2]) {
    for (file, path) in files {
        if file.is_ok() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The attempt's name in its captured output's file names (`<task>.<name>.stdout`): the
/// attempt number, or, when files of that attempt number already exist, `<attempt>-2`, `-3`,
/// ... A resume of a failed run gives its failed tasks fresh attempts, numbered from 1 again,
/// and the failed attempts' output must survive it. (A task id never makes `<attempt>-<n>`
/// look like an attempt number: the part after the id's last dot is all digits only for
/// plain attempts.)
fn free_attempt_name(out_dir: &Path, task: &str, attempt: u32) -> String {
    /// Suffixes tried before giving up on a free name.
    const MAX_REPEATS: u32 = 10_000;
    let taken = |name: &str| {
        ["stdout", "stderr"].iter().any(|ext| {
            std::fs::exists(out_dir.join(format!("{task}.{name}.{ext}"))).unwrap_or(true)
        })
    };
    let plain = attempt.to_string();
    if !taken(&plain) {
        return plain;
    }
    // Bounded: a folder that cannot be read makes every name look taken, and then the plain
    // name's `create_new` fails and the output goes uncaptured rather than the search spin.
    (2u32..MAX_REPEATS)
        .map(|n| format!("{attempt}-{n}"))
        .find(|name| !taken(name))
        .unwrap_or(plain)
}

/// Reads the task's definition from its inputs.
fn spec_of(ctx: &TaskContext) -> Result<ShellSpec, TaskFailure> {
    serde_json::from_value(ctx.inputs().clone()).map_err(|error| {
        TaskFailure::permanent(
            "bad_inputs",
            format!(
                "task {} has inputs that are not a shell task definition: {error}",
                ctx.task_id()
            ),
        )
    })
}

#[async_trait]
impl Handler for ShellHandler {
    async fn run(&self, ctx: TaskContext) -> HandlerResult {
        let spec = spec_of(&ctx)?;
        let attempt = ctx.attempt();
        let max_attempts = ctx.task().max_attempts;
        let started = Instant::now();
        let _ = self.events.send(TaskEvent::Started {
            id: ctx.task_id(),
            task: spec.id.clone(),
            attempt,
            max_attempts,
        });
        let mut unfinished = Unfinished {
            events: Some(self.events.clone()),
            id: ctx.task_id(),
            task: spec.id.clone(),
            attempt,
            started,
        };
        let result = self.attempt(&ctx, &spec).await;
        if self.groups.is_killing() && result.is_err() {
            // A second Ctrl-C killed the command, whose failure is the kill's, not its own:
            // nothing is reported, and the drive stops and releases the attempt, so a resume
            // reruns it. A command that had exited 0 by itself is still reported done (it may
            // only have been waiting for its output to drain when the kill came).
            std::future::pending::<()>().await;
        }
        let outcome = match &result {
            Ok(_) => AttemptOutcome::Done,
            Err((TaskFailure::Interrupted(error), _)) => AttemptOutcome::Interrupted {
                error: error.message.clone(),
            },
            Err((failure, tail)) => {
                let (error, permanent) = match failure {
                    TaskFailure::Retryable(e) | TaskFailure::Interrupted(e) => (e, false),
                    TaskFailure::Permanent(e) => (e, true),
                };
                if !permanent && attempt < max_attempts {
                    AttemptOutcome::Retrying {
                        error: error.to_string(),
                    }
                } else {
                    AttemptOutcome::Failed {
                        error: error.to_string(),
                        tail: tail.clone(),
                    }
                }
            }
        };
        unfinished.events = None;
        let _ = self.events.send(TaskEvent::Finished {
            id: ctx.task_id(),
            task: spec.id.clone(),
            attempt,
            outcome,
            elapsed: started.elapsed(),
        });
        result.map_err(|(failure, _)| failure)
    }
}

/// Reports an attempt whose body the drive dropped before it returned (the shutdown's grace
/// ran out, a second Ctrl-C, the run's deadline): the drive releases such an attempt, so it
/// is reported interrupted. Without it the task's start would be its last event, and a
/// `--json` consumer would keep it running forever.
struct Unfinished {
    /// `None` once the attempt reported its own end.
    events: Option<UnboundedSender<TaskEvent>>,
    id: TaskId,
    task: String,
    attempt: u32,
    started: Instant,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(events) = self.events.take() {
            let _ = events.send(TaskEvent::Finished {
                id: self.id,
                task: std::mem::take(&mut self.task),
                attempt: self.attempt,
                outcome: AttemptOutcome::Interrupted {
                    error: "its command was stopped when the run stopped (the shutdown's grace \
                            period ran out, or a second Ctrl-C); the attempt is given back, and \
                            the task runs again on resume"
                        .to_owned(),
                },
                elapsed: self.started.elapsed(),
            });
        }
    }
}

impl ShellHandler {
    /// Creates an attempt's output files and starts its command.
    ///
    /// The output files are made before the command starts: a process out of file
    /// descriptors then refuses the start instead of running the command with its output
    /// lost, and a start that never happened leaves no empty files.
    async fn start(
        &self,
        ctx: &TaskContext,
        spec: &ShellSpec,
        out_dir: &Path,
        cwd: &Path,
    ) -> Result<Started, StartRefused> {
        let attempt = free_attempt_name(out_dir, &spec.id, ctx.attempt());
        // The start log, not the files' names or times, orders the attempts for `cairn logs`.
        // Without it the output is still captured; the listing then falls back to the names.
        if let Err(error) = crate::logs::record_start(out_dir, &spec.id, &attempt) {
            tracing::warn!(task = %spec.id, %error, "cannot append to the task's start log");
        }
        let stem = format!("{}.{attempt}", spec.id);
        let out_path = out_dir.join(format!("{stem}.stdout"));
        let err_path = out_dir.join(format!("{stem}.stderr"));
        let out_file = create_output(&out_path).await;
        let err_file = create_output(&err_path).await;
        if let Some(error) = [&out_file, &err_file]
            .into_iter()
            .find_map(|file| file.as_ref().err().filter(|e| out_of_descriptors(e)))
        {
            let failure = TaskFailure::retryable(
                "spawn",
                format!(
                    "task `{}` could not start: no file descriptor left for its output files ({error})",
                    spec.id
                ),
            );
            discard_unused_output([(&out_file, &out_path), (&err_file, &err_path)]);
            return Err(StartRefused {
                failure,
                may_pass: true,
            });
        }
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(format!("{SCRIPT_PREFIX}{}", spec.run))
            .envs(&spec.env)
            .env("CAIRN_RUN_ID", ctx.run_id().as_str())
            .env("CAIRN_TASK_ID", &spec.id)
            .env("CAIRN_ATTEMPT", ctx.attempt().to_string())
            .env("CAIRN_IDEMPOTENCY_KEY", ctx.idempotency_key())
            .env(INPUT_VAR, &self.input)
            .current_dir(cwd)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match command.spawn() {
            Ok(child) => Ok((child, out_file, err_file, out_path, err_path)),
            Err(error) => {
                discard_unused_output([(&out_file, &out_path), (&err_file, &err_path)]);
                let message = spawn_error(spec, cwd, &error);
                let may_pass = spawn_may_pass(&error);
                Err(StartRefused {
                    failure: if may_pass {
                        TaskFailure::retryable("spawn", message)
                    } else {
                        TaskFailure::permanent("spawn", message)
                    },
                    may_pass,
                })
            }
        }
    }

    /// Runs one attempt. A failure comes with the last output lines to show.
    async fn attempt(
        &self,
        ctx: &TaskContext,
        spec: &ShellSpec,
    ) -> Result<Finish, (TaskFailure, Vec<String>)> {
        let no_tail = |f: TaskFailure| (f, Vec::new());
        let out_dir = self.output_root.join(ctx.run_id().as_str());
        let mut builder = tokio::fs::DirBuilder::new();
        builder.recursive(true).mode(0o700);
        builder.create(&out_dir).await.map_err(|error| {
            no_tail(TaskFailure::retryable(
                "output",
                format!(
                    "cannot create the output folder {}: {error}",
                    out_dir.display()
                ),
            ))
        })?;
        let cwd = match &spec.cwd {
            Some(cwd) => self.workflow_dir.join(cwd),
            None => self.workflow_dir.clone(),
        };
        // A record left by a crashed drive of this run means its command may still run.
        let record = out_dir.join(format!("{}.{GROUP_RECORD}", spec.id));
        if std::fs::exists(&record).unwrap_or(false) {
            let stale = record.clone();
            match tokio::task::spawn_blocking(move || reap_record(&stale)).await {
                Ok(Some(Reap::Killed(left))) => tracing::warn!(
                    task = %left.task,
                    group = left.group,
                    "killed a command's process group left running by an interrupted run"
                ),
                Ok(Some(Reap::Survived(left) | Reap::Unchecked(left) | Reap::OtherBoot(left))) => {
                    tracing::warn!(
                        task = %left.task,
                        group = left.group,
                        "a command's process group left by an interrupted run may still be running"
                    )
                }
                Ok(None) | Err(_) => {}
            }
        }
        // A start refused for want of resources (file descriptors, processes, memory) is
        // tried again within the attempt for a while: such a shortage usually passes as other
        // commands end, and each failed attempt would use one of the task's few attempts.
        let patience = Instant::now() + START_PATIENCE;
        let mut pause = Duration::from_millis(10);
        let (mut child, out_file, err_file, out_path, err_path) = loop {
            let refused = match self.start(ctx, spec, &out_dir, &cwd).await {
                Ok(started) => break started,
                Err(refused) => refused,
            };
            let waited = refused.may_pass
                && Instant::now() < patience
                && tokio::select! {
                    () = tokio::time::sleep(pause) => true,
                    () = ctx.cancellation().cancelled() => false,
                    () = self.shutdown.cancelled() => false,
                };
            if !waited {
                return Err(no_tail(refused.failure));
            }
            pause = (pause * 2).min(Duration::from_millis(500));
        };
        let group = child.id().unwrap_or(0);
        self.groups.insert(group);
        // Recorded so that a resume after a crash can kill the group (see the module docs).
        if let Some((_, start)) = proc_stat(group) {
            let boot = cairn_checkpoint::ProcessStart::current_boot_id().unwrap_or_default();
            let _ = std::fs::write(&record, format!("{group} {start} {boot}\n"));
        }
        // Only now may the script run (`START_GATE`). A failed write means the shell is gone
        // already; its exit status tells what happened.
        if let Some(mut gate) = child.stdin.take() {
            let _ = gate.write_all(b"\n").await;
        }
        let mut guard = GroupGuard {
            group,
            groups: self.groups.clone(),
            armed: true,
        };
        let stdout = child
            .stdout
            .take()
            .map(|s| tokio::spawn(capture(s, out_file, out_path)));
        let stderr = child
            .stderr
            .take()
            .map(|s| tokio::spawn(capture(s, err_file, err_path)));
        let timeout = spec.timeout_ms.map(Duration::from_millis);

        enum Ended {
            Exited(std::io::Result<std::process::ExitStatus>),
            TimedOut(Duration),
            Cancelled,
        }
        let ended = tokio::select! {
            status = child.wait() => Ended::Exited(status),
            () = sleep_opt(timeout) => Ended::TimedOut(timeout.unwrap_or_default()),
            () = ctx.cancellation().cancelled() => Ended::Cancelled,
        };
        if matches!(ended, Ended::Exited(_)) {
            // The command ended by itself. Members still in its group pin the group id (no
            // new group can take it while one lives), so killing them hits only them; with
            // none left nothing is sent (the id may be reused).
            guard.armed = false;
            let stopped = tokio::task::spawn_blocking(move || {
                let left = group_has_members(group);
                if left {
                    kill_group(group);
                }
                left
            })
            .await
            .unwrap_or(false);
            if stopped {
                let _ = self.events.send(TaskEvent::LeftoversStopped {
                    task: spec.id.clone(),
                    attempt: ctx.attempt(),
                    group,
                });
            }
        } else {
            kill_group(group);
            guard.armed = false;
            let _ = child.wait().await;
        }
        drop(guard);
        let _ = std::fs::remove_file(&record);
        // A command that exited has its result; a shutdown or a stop of the attempt must not
        // wait for pipes another process holds (see `with_shutdown`). A command that was
        // stopped has been killed, group and all, so its pipes close at once anyway.
        let stop = async {
            tokio::select! {
                () = self.shutdown.cancelled() => tokio::time::sleep(self.shutdown_drain).await,
                () = ctx.cancellation().cancelled() => {}
            }
        };
        let (stdout, stderr) = join_captures(stdout, stderr, stop).await;
        for (stream, capture) in [("stdout", &stdout), ("stderr", &stderr)] {
            if let Some(why) = &capture.lost {
                let _ = self.events.send(TaskEvent::OutputLost {
                    task: spec.id.clone(),
                    attempt: ctx.attempt(),
                    stream,
                    why: why.clone(),
                });
            }
        }
        // A command that a stop signal ended while cairn is shutting down was stopped with
        // it (see `STOP_SIGNAL_WINDOW`): its attempt is given back, not failed.
        let interrupted = match &ended {
            Ended::Exited(Ok(status)) => match stop_signal(status) {
                Some(signal) => tokio::select! {
                    () = ctx.shutdown().cancelled() => Some(signal),
                    () = tokio::time::sleep(STOP_SIGNAL_WINDOW) => None,
                },
                None => None,
            },
            _ => None,
        };
        let (stdout_tail, stderr_tail) = (stdout.tail, stderr.tail);
        // The error quotes the last line of stderr (or of stdout without one); the tail shown
        // on failure has both streams' last lines, since a test runner prints its summary on
        // stdout and a warning on stderr can come after it.
        let last = stderr_tail
            .last()
            .or(stdout_tail.last())
            .map(|line| one_line_excerpt(line))
            .unwrap_or_default();
        let tail = if stderr_tail.is_empty() || stdout_tail.is_empty() {
            [stdout_tail, stderr_tail].concat()
        } else {
            let mut both = vec!["[stdout]".to_owned()];
            both.extend(stdout_tail);
            both.push("[stderr]".to_owned());
            both.extend(stderr_tail);
            both
        };
        let with_last = |message: String| {
            if last.is_empty() {
                message
            } else {
                format!("{message}; last output: {last}")
            }
        };

        if let Some(signal) = interrupted {
            return Err((
                TaskFailure::interrupted(
                    "interrupted",
                    with_last(format!(
                        "`{}` was stopped by {signal} while cairn was shutting down; the \
                         attempt is given back and the task runs again on resume",
                        spec.id
                    )),
                ),
                tail,
            ));
        }
        match ended {
            Ended::Exited(Ok(status)) => match status.code() {
                Some(0) => Ok(Finish::Complete(Handoff {
                    done: vec![format!("`{}` exited 0", spec.id)],
                    ..Handoff::default()
                })),
                Some(code) if spec.permanent_exit_codes.contains(&code) => Err((
                    TaskFailure::permanent(
                        "exit_code",
                        with_last(format!("`{}` exited with code {code} (permanent)", spec.id)),
                    ),
                    tail,
                )),
                Some(code) => Err((
                    TaskFailure::retryable(
                        "exit_code",
                        with_last(format!("`{}` exited with code {code}", spec.id)),
                    ),
                    tail,
                )),
                None => Err((
                    TaskFailure::retryable(
                        "signal",
                        with_last(format!("`{}` was {}", spec.id, killed_by(&status))),
                    ),
                    tail,
                )),
            },
            Ended::Exited(Err(error)) => Err((
                TaskFailure::retryable(
                    "wait",
                    format!("waiting for `{}` failed: {error}", spec.id),
                ),
                tail,
            )),
            Ended::TimedOut(limit) => Err((
                TaskFailure::retryable(
                    "timeout",
                    format!(
                        "`{}` ran longer than its timeout of {}; its process group was killed",
                        spec.id,
                        crate::duration::format_duration(limit)
                    ),
                ),
                tail,
            )),
            Ended::Cancelled => Err((
                TaskFailure::retryable(
                    "cancelled",
                    format!("`{}` was stopped by the run's shutdown", spec.id),
                ),
                tail,
            )),
        }
    }
}

/// Why a command could not be started, blaming the working folder only when it is missing:
/// the OS reports a missing folder and a missing `sh` with the same error.
fn spawn_error(spec: &ShellSpec, cwd: &Path, error: &std::io::Error) -> String {
    let id = &spec.id;
    if !cwd.is_dir() {
        let what = if cwd.exists() {
            "is not a folder"
        } else {
            "does not exist"
        };
        return format!(
            "task `{id}` could not start: its working folder {} {what} ({error})",
            cwd.display()
        );
    }
    let path = spec
        .env
        .get("PATH")
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    let why = match error.kind() {
        std::io::ErrorKind::NotFound => format!(
            " (`sh` is looked up in the task's PATH, `{}`)",
            path.escape_debug()
        ),
        _ if error.raw_os_error() == Some(E2BIG) => {
            " (the command and its environment together are larger than the OS takes)".to_owned()
        }
        _ => String::new(),
    };
    format!("task `{id}` could not start `sh -c`: {error}{why}")
}

/// Linux's "Argument list too long" error number.
const E2BIG: i32 = 7;
/// "Too many open files in system" and "Too many open files" (the same numbers on Linux
/// and the BSDs).
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;

/// Whether a command could not start for a reason that passes: the OS was out of processes
/// (`EAGAIN` from fork), memory or file descriptors. Such a start is retried like a failed
/// attempt; a missing `sh`, a missing folder or a command too long for the OS would fail
/// the same way every time, so those fail the task at once.
fn spawn_may_pass(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::OutOfMemory
    ) || out_of_descriptors(error)
}

/// Whether the process (`EMFILE`) or the system (`ENFILE`) has no file descriptor left.
fn out_of_descriptors(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(ENFILE | EMFILE))
}

/// How a command that died by a signal died: `killed by signal 9 (SIGKILL)`, or
/// `killed by signal 11 (SIGSEGV, core dumped)` when it left a core. The signal tells
/// out-of-memory (SIGKILL) from a crash (SIGSEGV).
fn killed_by(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    let Some(number) = status.signal() else {
        return "killed by a signal".to_owned();
    };
    let core = if status.core_dumped() {
        ", core dumped"
    } else {
        ""
    };
    match signal_name(number) {
        Some(name) => format!("killed by signal {number} ({name}{core})"),
        None if core.is_empty() => format!("killed by signal {number}"),
        None => format!("killed by signal {number} (core dumped)"),
    }
}

/// The stop signal a command died of, or whose conventional exit code (128 plus the
/// signal's number, as a shell reports a child killed by it) it exited with: SIGTERM,
/// SIGINT or SIGHUP. `None` for any other end.
fn stop_signal(status: &std::process::ExitStatus) -> Option<&'static str> {
    use std::os::unix::process::ExitStatusExt as _;
    let number = status
        .signal()
        .or_else(|| status.code().and_then(|code| code.checked_sub(128)))?;
    match number {
        1 | 2 | 15 => signal_name(number),
        _ => None,
    }
}

/// The name of a common signal by its number, as Linux numbers them on x86, ARM and RISC-V;
/// `None` for the others (real-time signals, and rarer ones).
fn signal_name(number: i32) -> Option<&'static str> {
    Some(match number {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => return None,
    })
}

/// Characters of a command's last output line quoted in its error message.
const LAST_LINE_CHARS: usize = 200;

/// The last output line as quoted in an error message, which is journaled, listed by
/// `cairn runs` and printed: at most [`LAST_LINE_CHARS`] characters, with control characters
/// (a binary stream's NULs, escape sequences) shown as `\u{fffd}`. The full line stays in
/// the captured output files.
fn one_line_excerpt(line: &str) -> String {
    let mut excerpt: String = line
        .chars()
        .take(LAST_LINE_CHARS)
        .map(|c| {
            if c.is_control() && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    if line.chars().nth(LAST_LINE_CHARS).is_some() {
        excerpt.push('…');
    }
    excerpt
}

async fn sleep_opt(limit: Option<Duration>) {
    match limit {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Whether any live process (not a zombie) is in process group `group`.
fn group_has_members(group: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_stat)
        .any(|(pgrp, _)| pgrp == group)
}

/// Both streams' captures, waiting for their pipes to close at most [`PIPE_DRAIN_LIMIT`] in
/// all, or until `stop` completes, whichever comes first.
async fn join_captures(
    stdout: Option<tokio::task::JoinHandle<Capture>>,
    stderr: Option<tokio::task::JoinHandle<Capture>>,
    stop: impl std::future::Future<Output = ()>,
) -> (Capture, Capture) {
    let deadline = tokio::time::Instant::now() + PIPE_DRAIN_LIMIT;
    let cut = CancellationToken::new();
    let captures = async {
        tokio::join!(
            join_capture(stdout, deadline, &cut),
            join_capture(stderr, deadline, &cut)
        )
    };
    tokio::pin!(captures);
    tokio::select! {
        // Captures first: pipes that closed in time are read to their end.
        biased;
        both = &mut captures => return both,
        () = stop => cut.cancel(),
    }
    captures.await
}

async fn join_capture(
    handle: Option<tokio::task::JoinHandle<Capture>>,
    deadline: tokio::time::Instant,
    cut: &CancellationToken,
) -> Capture {
    let Some(mut handle) = handle else {
        return Capture::default();
    };
    let joined = tokio::select! {
        biased;
        joined = tokio::time::timeout_at(deadline, &mut handle) => joined.ok(),
        () = cut.cancelled() => None,
    };
    match joined {
        Some(Ok(capture)) => capture,
        Some(Err(_)) => Capture::default(),
        None => {
            handle.abort();
            Capture {
                tail: vec![
                    "[cairn: output still open after the command exited; not captured further]"
                        .to_owned(),
                ],
                lost: None,
            }
        }
    }
}
