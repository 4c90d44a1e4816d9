//! The failed-run decision on a terminal (under a pseudo-terminal with `rexpect`): the failed
//! run's error and input are shown with the three ways forward, and the choice is acted on.

mod common;

use common::{Sandbox, count_lines, text};
use rexpect::process::WaitStatus;

const FAILS_UNTIL_FIXED: &str = r#"
name = "fragile"

[[task]]
id = "prepare"
run = "echo prepare >> log"

[[task]]
id = "publish"
run = "if test -f fixed; then echo publish >> log; else echo 'not ready' >&2; exit 3; fi"
depends_on = ["prepare"]
permanent_exit_codes = [3]
"#;

const TIMEOUT_MS: u64 = 60_000;

/// A failed run with input "deploy v2"; returns its id.
fn failed_run(sandbox: &Sandbox) -> String {
    sandbox.write("wf.toml", FAILS_UNTIL_FIXED);
    let output = sandbox.run(&["run", "wf.toml", "--input", "deploy v2"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    sandbox.only_run_id()
}

/// Starts `cairn run wf.toml` in the sandbox on a pseudo-terminal, without colour or logs.
fn run_on_pty(sandbox: &Sandbox) -> rexpect::session::PtySession {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
    command
        .current_dir(sandbox.root())
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .args(["run", "wf.toml"]);
    rexpect::session::spawn_command(command, Some(TIMEOUT_MS)).expect("spawn on a pty")
}

/// Starts `cairn run wf.toml` on a pseudo-terminal and waits for the choice prompt, checking
/// that the failed run's error, input and the three commands are shown first.
fn prompt(sandbox: &Sandbox, run_id: &str) -> rexpect::session::PtySession {
    let mut session = run_on_pty(sandbox);
    session.exp_string(&format!("is failed: {run_id}")).unwrap();
    session.exp_string("exited with code 3").unwrap();
    session.exp_string("input: \"deploy v2\"").unwrap();
    session
        .exp_string(&format!("cairn resume {run_id}"))
        .unwrap();
    session
        .exp_string(&format!("cairn abandon {run_id}"))
        .unwrap();
    session.exp_string("cairn run wf.toml --force").unwrap();
    session.exp_string("Choice [r/a/f/q]: ").unwrap();
    session
}

fn exit_code(session: &mut rexpect::session::PtySession) -> Option<i32> {
    session.exp_eof().unwrap();
    match session.process().wait().unwrap() {
        WaitStatus::Exited(_, code) => Some(code),
        _ => None,
    }
}

#[test]
fn choosing_resume_on_a_terminal_resumes_the_failed_run() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    sandbox.touch("fixed");
    let mut session = prompt(&sandbox, &run_id);
    session.send_line("r").unwrap();
    session
        .exp_string(&format!("resuming failed run {run_id}"))
        .unwrap();
    session.exp_string("completed").unwrap();
    assert_eq!(exit_code(&mut session), Some(0));
    assert_eq!(sandbox.read("log"), "prepare\npublish\n");
    assert_eq!(sandbox.runs().len(), 1);
}

#[test]
fn choosing_abandon_on_a_terminal_abandons_and_runs_afresh() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    sandbox.touch("fixed");
    let mut session = prompt(&sandbox, &run_id);
    session.send_line("a").unwrap();
    session
        .exp_string(&format!("abandoned run {run_id}"))
        .unwrap();
    session.exp_string("completed").unwrap();
    assert_eq!(exit_code(&mut session), Some(0));
    let runs = sandbox.runs();
    assert_eq!(runs.len(), 2);
    let old = runs
        .iter()
        .find(|r| r["run_id"] == run_id.as_str())
        .unwrap();
    assert_eq!(old["status"], "cancelled");
    assert_eq!(count_lines(&sandbox.read("log"), "prepare"), 2);
}

#[test]
fn choosing_force_on_a_terminal_leaves_the_failed_run() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    sandbox.touch("fixed");
    let mut session = prompt(&sandbox, &run_id);
    session.send_line("f").unwrap();
    session.exp_string("completed").unwrap();
    assert_eq!(exit_code(&mut session), Some(0));
    let runs = sandbox.runs();
    assert_eq!(runs.len(), 2);
    let old = runs
        .iter()
        .find(|r| r["run_id"] == run_id.as_str())
        .unwrap();
    assert_eq!(old["status"], "failed");
}

#[test]
fn quitting_the_prompt_starts_nothing() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    let mut session = prompt(&sandbox, &run_id);
    session.send_line("q").unwrap();
    assert_eq!(exit_code(&mut session), Some(3));
    assert_eq!(sandbox.runs().len(), 1);
    assert_eq!(count_lines(&sandbox.read("log"), "prepare"), 1);
}

#[test]
fn the_live_display_is_gone_once_the_summary_is_printed() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"sleep 0.3\"\n",
    );
    let mut session = run_on_pty(&sandbox);
    session.exp_string("completed: 1 task(s) done").unwrap();
    let rest = session.exp_eof().unwrap();
    assert!(
        !rest.contains("tasks done"),
        "the progress bar was drawn again after the summary: {rest:?}"
    );
}

/// The live display is redrawn at a bounded rate, not once or twice per task event: a
/// 1,000-task run prints each task's `done` line, and the rest of what it writes is bounded by
/// the redraw rate (about 30 frames a second at most, 20 for the bar and 10 for the held
/// lines) times the run's length. Before the rate limit it wrote about 1,260 bytes per
/// task (2.5 MB for 2,000 tasks), well above the bound. The run's length is an input of the
/// bound (a rate is per second), not something asserted.
#[test]
fn the_live_display_is_redrawn_at_a_bounded_rate() {
    const TASKS: usize = 1000;
    let sandbox = Sandbox::new();
    let mut workflow = String::from("name = \"many\"\n");
    for i in 0..TASKS {
        workflow.push_str(&format!("[[task]]\nid = \"t{i}\"\nrun = \"true\"\n"));
    }
    sandbox.write("wf.toml", &workflow);
    let started = std::time::Instant::now();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
    command
        .current_dir(sandbox.root())
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .args(["run", "wf.toml", "--concurrency", "8"]);
    let mut session =
        rexpect::session::spawn_command(command, Some(TIMEOUT_MS)).expect("spawn on a pty");
    let all = session.exp_eof().unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        all.contains(&format!("completed: {TASKS} task(s) done")),
        "{}",
        &all[all.len().saturating_sub(2000)..]
    );
    for i in 0..TASKS {
        assert!(
            all.contains(&format!("done t{i} (")),
            "t{i} has its done line"
        );
    }
    // A done line is padded to the terminal's width (80 columns here); a frame is the bar
    // and up to 8 running tasks, 9 lines of at most 80 columns plus escapes.
    let lines = TASKS * 100;
    let frame = 9 * 100;
    let bound = lines + (seconds.ceil() as usize + 1) * 30 * frame;
    assert!(
        all.len() <= bound,
        "{} bytes for {TASKS} tasks in {seconds:.1} s; the rate limit allows {bound}",
        all.len()
    );
}

/// `RUST_LOG` lines are coloured on a terminal, but not when `NO_COLOR` is set, and never when
/// stderr is a file or a pipe (escape codes would litter a log file).
#[test]
fn log_lines_are_coloured_only_on_a_terminal_without_no_color() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
    );
    // The level as tracing colours it: green ` INFO`, then a reset.
    let coloured_level = "\u{1b}[32m INFO\u{1b}[0m";
    let on_terminal = |no_color: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"));
        command
            .current_dir(sandbox.root())
            .env("RUST_LOG", "cairn=info")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("NO_COLOR")
            .args(["run", "wf.toml", "--force"]);
        if let Some(value) = no_color {
            command.env("NO_COLOR", value);
        }
        let mut session =
            rexpect::session::spawn_command(command, Some(TIMEOUT_MS)).expect("spawn on a pty");
        let all = session.exp_eof().unwrap();
        assert!(all.contains("completed: 1 task(s) done"), "{all:?}");
        all
    };
    let coloured = on_terminal(None);
    assert!(coloured.contains(coloured_level), "{coloured:?}");
    let plain = on_terminal(Some("1"));
    assert!(plain.contains(" INFO "), "{plain:?}");
    assert!(!plain.contains(coloured_level), "{plain:?}");

    let output = sandbox
        .cairn()
        .env("RUST_LOG", "cairn=info")
        .env_remove("NO_COLOR")
        .args(["run", "wf.toml", "--force"])
        .output()
        .expect("run cairn");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains(" INFO "), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in piped stderr: {stderr:?}"
    );
}

#[test]
fn choosing_resume_after_editing_the_file_says_the_edit_is_not_picked_up() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    sandbox.touch("fixed");
    sandbox.write(
        "wf.toml",
        &FAILS_UNTIL_FIXED.replace("echo publish >> log", "echo edited >> log"),
    );
    let mut session = prompt(&sandbox, &run_id);
    session.send_line("r").unwrap();
    session
        .exp_string(&format!(
            "resuming failed run {run_id}: 1 done, 0 pending, 1 failed task(s) retried"
        ))
        .unwrap();
    session
        .exp_string("wf.toml changed since this run started; the run goes on with the tasks it started with")
        .unwrap();
    session.exp_string("completed").unwrap();
    assert_eq!(exit_code(&mut session), Some(0));
    let log = sandbox.read("log");
    assert_eq!(
        count_lines(&log, "publish"),
        1,
        "the run's own command ran: {log}"
    );
    assert_eq!(count_lines(&log, "edited"), 0, "{log}");
}

/// A task that reads the terminal itself (a password prompt) fails with the read's own
/// error instead of being stopped by the terminal and hanging, shown as running, until a
/// timeout (review 45 F3). The session's own limit is only a hang guard: before the fix
/// this test hung into it.
#[test]
fn a_task_that_reads_the_terminal_fails_instead_of_hanging() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"prompting\"\n[[task]]\nid = \"ask\"\nrun = \"if read answer < /dev/tty; then echo \\\"got $answer\\\" > got; else exit 9; fi\"\nmax_attempts = 1\n",
    );
    let mut session = run_on_pty(&sandbox);
    session.exp_string("FAILED ask").unwrap();
    assert_eq!(exit_code(&mut session), Some(1));
    assert!(
        !sandbox.path("got").exists(),
        "the read got nothing from the terminal"
    );
    let shown = sandbox.run(&["show", &sandbox.only_run_id()]);
    let shown = text(&shown.stdout);
    assert!(
        shown
            .lines()
            .any(|l| l.contains("ask") && l.contains("failed")),
        "{shown}"
    );
}

#[test]
fn a_failed_run_whose_workflow_copy_is_gone_is_not_offered_for_resume_on_a_terminal() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    std::fs::remove_dir_all(sandbox.path(&format!(".cairn/output/{run_id}"))).unwrap();
    let mut session = run_on_pty(&sandbox);
    session.exp_string(&format!("is failed: {run_id}")).unwrap();
    session
        .exp_string("[a] abandon it, then run afresh")
        .unwrap();
    session.exp_string("[f] run afresh").unwrap();
    session
        .exp_string("resuming it is not offered: it has no recorded workflow")
        .unwrap();
    session.exp_string("Choice [a/f/q]: ").unwrap();
    // `r` is not one of the choices any more: asked again, nothing resumed.
    session.send_line("r").unwrap();
    session.exp_string("Please type a, f or q.").unwrap();
    session.send_line("q").unwrap();
    assert_eq!(exit_code(&mut session), Some(3));
    let runs = sandbox.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(count_lines(&sandbox.read("log"), "prepare"), 1);
}
