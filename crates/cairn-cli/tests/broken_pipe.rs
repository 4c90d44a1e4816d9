//! A closed stdout (`cairn run wf.toml | head -1`, a pager quit early) never makes cairn
//! panic: `run` drives the run to its normal end with its output dropped, and the read-only
//! commands exit quietly with 0.

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

/// Runs `cairn ARGS` with stdout a pipe whose reading end is already closed, so the first
/// write fails with EPIPE whatever the timing. Returns the exit status and stderr.
fn run_with_closed_stdout(sandbox: &Sandbox, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let mut command = sandbox.cairn();
    command.args(args).stdout(Stdio::from(writer));
    let mut child = command.stderr(Stdio::piped()).spawn().expect("spawn cairn");
    common::wait_exit(&mut child);
    child.wait_with_output().expect("collect cairn's stderr")
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
