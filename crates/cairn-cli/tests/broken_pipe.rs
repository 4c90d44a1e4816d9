//! A closed stdout (`cairn run wf.toml | head -1`, a pager quit early) never makes cairn
//! panic: `run` drives the run to its normal end with its output dropped, and the read-only
//! commands exit quietly with 0. A stdout that fails otherwise (a full disk behind a
//! redirect, here `/dev/full`) is named on stderr; `run` keeps its exit code, while a read
//! command, whose output is its only product, exits 7 so a script sees the listing is cut.

mod common;

use std::process::{Output, Stdio};

use common::{Sandbox, run_to_end, text};

const THREE_STEPS: &str = r#"
name = "steps"

[[task]]
id = "one"
run = "echo one >> log"

[[task]]
id = "two"
run = "echo two >> log"
depends_on = ["one"]

[[task]]
id = "three"
run = "echo three >> log"
depends_on = ["two"]
"#;

/// Runs `cairn ARGS` with the given stdout; returns the exit status and stderr.
fn run_with_stdout(sandbox: &Sandbox, args: &[&str], stdout: Stdio) -> Output {
    let mut command = sandbox.cairn();
    command.args(args).stdout(stdout);
    let mut child = command.stderr(Stdio::piped()).spawn().expect("spawn cairn");
    common::wait_exit(&mut child);
    child.wait_with_output().expect("collect cairn's stderr")
}

/// Runs `cairn ARGS` with stdout a pipe whose reading end is already closed, so the first
/// write fails with EPIPE whatever the timing.
fn run_with_closed_stdout(sandbox: &Sandbox, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    run_with_stdout(sandbox, args, Stdio::from(writer))
}

#[track_caller]
fn assert_quiet_success(output: &Output, what: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{what}: {stderr}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    assert!(!stderr.contains("Broken pipe"), "{what}: {stderr}");
}

#[test]
fn run_finishes_its_drive_when_stdout_is_closed() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", THREE_STEPS);
    let output = run_with_closed_stdout(&sandbox, &["run", "wf.toml"]);
    assert_quiet_success(&output, "cairn run");
    assert_eq!(sandbox.read("log"), "one\ntwo\nthree\n", "every task ran");
    let runs = sandbox.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        runs[0]["status"], "completed",
        "the run was not left halfway"
    );
}

#[test]
fn read_only_commands_exit_quietly_when_stdout_is_closed() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", THREE_STEPS);
    let first = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let run_id = sandbox.only_run_id();

    for args in [
        vec!["show", run_id.as_str(), "--state-dir", ".cairn"],
        vec!["show", run_id.as_str(), "--state-dir", ".cairn", "--json"],
        vec!["runs", "--all", "--state-dir", ".cairn"],
        vec!["audit", run_id.as_str(), "--state-dir", ".cairn"],
        vec!["completions", "bash"],
    ] {
        let output = run_with_closed_stdout(&sandbox, &args);
        assert_quiet_success(&output, &args.join(" "));
    }
    // The same commands still print in full to an open stdout.
    let mut command = sandbox.cairn();
    command.args(["completions", "bash"]);
    let open = run_to_end(command);
    assert!(
        text(&open.stdout).contains("cairn"),
        "{}",
        text(&open.stderr)
    );
}

/// Runs `cairn ARGS` with stdout on `/dev/full`, where every write fails with ENOSPC.
fn run_with_full_stdout(sandbox: &Sandbox, args: &[&str]) -> Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    run_with_stdout(sandbox, args, Stdio::from(full))
}

#[test]
fn a_read_command_whose_output_cannot_be_written_exits_7_and_a_run_keeps_its_code() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", THREE_STEPS);
    let run = run_with_full_stdout(&sandbox, &["run", "wf.toml"]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("cannot write to stdout"), "{stderr}");
    assert_eq!(sandbox.read("log"), "one\ntwo\nthree\n", "every task ran");
    let run_id = sandbox.only_run_id();

    for args in [
        vec!["show", run_id.as_str(), "--state-dir", ".cairn"],
        vec!["runs", "--all", "--state-dir", ".cairn", "--json"],
        vec!["audit", run_id.as_str(), "--state-dir", ".cairn"],
        vec!["logs", run_id.as_str(), "--state-dir", ".cairn"],
        vec!["jobs", "list", "--state-dir", ".cairn"],
        vec!["completions", "bash"],
    ] {
        let output = run_with_full_stdout(&sandbox, &args);
        let stderr = text(&output.stderr);
        let what = args.join(" ");
        assert_eq!(output.status.code(), Some(7), "{what}: {stderr}");
        assert!(
            stderr.contains("No space left on device"),
            "{what}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    }
    // A command that changes state keeps its own code: the change is its product.
    let pruned = run_with_full_stdout(
        &sandbox,
        &[
            "runs",
            "prune",
            "--older-than",
            "1h",
            "--state-dir",
            ".cairn",
        ],
    );
    assert_eq!(pruned.status.code(), Some(0), "{}", text(&pruned.stderr));
}
