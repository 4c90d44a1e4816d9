//! Shared helpers for the CLI tests: a sandbox folder, running the real `cairn` binary, and
//! bounded polling for "the process reached point X".
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A workflow whose one task succeeds (`name = "ok"`).
pub(crate) const OK_WORKFLOW: &str = r#"
name = "ok"
[[task]]
id = "hello"
run = "echo hello"
"#;

/// A workflow whose one task fails for good on its only attempt (`name = "fails"`).
pub(crate) const FAILS_WORKFLOW: &str = r#"
name = "fails"
[[task]]
id = "broken"
run = "exit 3"
max_attempts = 1
"#;

/// How long any wait may take before the test fails. Generous: the machine is shared.
pub(crate) const WAIT_BOUND: Duration = Duration::from_secs(90);

/// A temporary folder holding workflow files, their `.cairn/` state and task side effects.
pub(crate) struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub(crate) fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("create a temp dir"),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write a file");
        path
    }

    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    pub(crate) fn touch(&self, name: &str) {
        std::fs::write(self.path(name), b"").expect("touch a file");
    }

    /// The `cairn` binary, run in the sandbox with a clean logging environment.
    pub(crate) fn cairn(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
        command
            .current_dir(self.root())
            .env_remove("RUST_LOG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        command
    }

    /// Runs `cairn ARGS` to completion (bounded) and returns its output.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        let mut command = self.cairn();
        command.args(args);
        run_to_end(command)
    }

    /// Spawns `cairn ARGS` with stdout and stderr going to files in the sandbox.
    pub(crate) fn spawn(&self, args: &[&str], stdout: &str, stderr: &str) -> Child {
        let out = std::fs::File::create(self.path(stdout)).expect("stdout file");
        let err = std::fs::File::create(self.path(stderr)).expect("stderr file");
        self.cairn()
            .args(args)
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn cairn")
    }

    /// The runs in the sandbox's default state folder, as JSON.
    pub(crate) fn runs(&self) -> Vec<serde_json::Value> {
        let output = self.run(&["runs", "--all", "--json", "--state-dir", ".cairn"]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "cairn runs: {}",
            text(&output.stderr)
        );
        text(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }

    /// The one run of the sandbox, or a failure if there is not exactly one.
    pub(crate) fn only_run_id(&self) -> String {
        let runs = self.runs();
        assert_eq!(runs.len(), 1, "expected one run, got {runs:?}");
        runs[0]["run_id"].as_str().expect("run_id").to_owned()
    }
}

/// Fails, showing `haystack`, unless it contains `needle`.
#[track_caller]
pub(crate) fn assert_contains(haystack: &str, needle: &str) {
    assert!(haystack.contains(needle), "{haystack}");
}

/// Fails, showing `haystack`, if it contains `needle`.
#[track_caller]
pub(crate) fn assert_lacks(haystack: &str, needle: &str) {
    assert!(!haystack.contains(needle), "{haystack}");
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Polls `done` until it holds, failing the test after [`WAIT_BOUND`].
pub(crate) fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT_BOUND, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a prepared `cairn` command to completion (bounded, as [`wait_exit`]) and returns
/// its output.
pub(crate) fn run_to_end(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cairn");
    wait_exit(&mut child);
    child.wait_with_output().expect("collect cairn's output")
}

/// Waits (bounded) for a child to exit; kills it and fails the test if it does not.
pub(crate) fn wait_exit(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > WAIT_BOUND {
            let _ = child.kill();
            panic!("cairn did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a signal by name (`INT`, `KILL`, ...) to a pid, or to a process group with a
/// negative id, through the shell's `kill` (tests forbid `unsafe` too).
pub(crate) fn signal(target: i64, name: &str) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -s {name} -- {target}"))
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s {name} {target} failed");
}

/// Whether a process (or, with a negative id, any member of a process group) is still
/// running. A zombie counts as gone: it runs nothing, and an orphan's zombie waits for init
/// to reap it, which a lazy init (as in some VMs) leaves for seconds.
pub(crate) fn alive(target: i64) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        panic!("the CLI tests need /proc");
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i64>().ok())
        .filter(|pid| target < 0 || *pid == target)
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The command name is in parentheses and may hold spaces; state and pgrp follow.
            let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
            let state = fields.next()?;
            let pgrp: i64 = fields.nth(1)?.parse().ok()?;
            let member = if target < 0 {
                pgrp == -target
            } else {
                pid == target
            };
            Some(member && state != "Z" && state != "X")
        })
        .any(|running_member| running_member)
}

/// A workflow whose one task echoes (`name = "echo"`), for jobs.
pub(crate) const ECHO: &str = "name = \"echo\"\n[[task]]\nid = \"say\"\nrun = \"echo hi\"\n";

/// The `job_left_out` JSON lines of `stderr`.
pub(crate) fn left_out_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|value| value["event"] == "job_left_out")
        .collect()
}

/// How many lines of `text` are exactly `line`.
pub(crate) fn count_lines(text: &str, line: &str) -> usize {
    text.lines().filter(|l| *l == line).count()
}

/// Runs `workflow` (whose task `b` writes its process group to `b.pgid`, then waits for the
/// file `release`) with `cairn run`, stops it with SIGTERM while `b` runs, waits for `b`'s
/// group to be killed, creates `release`, and returns the run id. The run is left
/// interrupted.
pub(crate) fn interrupted_in_b(sandbox: &Sandbox, workflow: &str) -> String {
    sandbox.write("wf.toml", workflow);
    let mut first = sandbox.spawn(&["run", "wf.toml", "--grace", "200ms"], "out1", "err1");
    wait_for("task b to start", || {
        !sandbox.read("b.pgid").trim().is_empty()
    });
    let group: i64 = sandbox.read("b.pgid").trim().parse().expect("a pgid");
    signal(i64::from(first.id()), "TERM");
    let status = wait_exit(&mut first);
    assert_eq!(status.code(), Some(4), "{}", sandbox.read("err1"));
    wait_for("b's process group to be killed", || !alive(-group));
    sandbox.touch("release");
    sandbox.only_run_id()
}
