//! Crashes and interrupts with the real binary: `kill -9` mid-run then the same command
//! resumes; Ctrl-C (SIGINT) and SIGTERM leave the run resumable and print the resume command;
//! a second Ctrl-C stops the running commands at once (their attempts are given back), a
//! third exits at once.

mod common;

use common::{
    Sandbox, alive, assert_contains, assert_lacks, count_lines, signal, text, wait_exit, wait_for,
};

/// `a` completes, `b` records its process group and blocks until the file `release` exists,
/// `c` runs after `b`. Every task appends to `log`.
const BLOCKING: &str = r#"
name = "blocking"

[[task]]
id = "a"
run = "echo a >> log"

[[task]]
id = "b"
run = "echo $$ > b.pgid; echo b-start >> log; while ! test -f release; do sleep 0.05; done; echo b >> log"
depends_on = ["a"]

[[task]]
id = "c"
run = "echo c >> log"
depends_on = ["b"]
"#;

fn pid_of(child: &std::process::Child) -> i64 {
    i64::from(child.id())
}

/// Waits until `b` has started and returns its process group id.
fn wait_for_b(sandbox: &Sandbox) -> i64 {
    wait_for("task b to start", || {
        sandbox.read("log").contains("b-start")
    });
    wait_for("task b's pid file", || {
        !sandbox.read("b.pgid").trim().is_empty()
    });
    sandbox.read("b.pgid").trim().parse().expect("a pgid")
}

/// Runs [`BLOCKING`], kills cairn with SIGKILL while `b` runs, then kills `b`'s process group
/// too (a kill -9 cannot take it along), so nothing of the first run is left alive.
fn killed_while_b_runs() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", BLOCKING);
    let mut first = sandbox.spawn(&["run", "wf.toml"], "out1", "err1");
    let group = wait_for_b(&sandbox);
    signal(pid_of(&first), "KILL");
    wait_exit(&mut first);
    signal(-group, "KILL");
    wait_for("b's old process group to die", || !alive(-group));
    sandbox
}

#[test]
fn kill_9_then_the_same_command_resumes_without_redoing_done_tasks() {
    let sandbox = killed_while_b_runs();

    sandbox.touch("release");
    let second = sandbox.run(&["run", "wf.toml"]);
    let stdout = text(&second.stdout);
    assert_eq!(
        second.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&second.stderr)
    );
    let run_id = sandbox.only_run_id();
    assert!(
        stdout.contains(&format!(
            "resuming run {run_id}: 1 done, 1 pending, 1 reset"
        )),
        "{stdout}"
    );
    let log = sandbox.read("log");
    assert_eq!(
        count_lines(&log, "a"),
        1,
        "a completed before the crash: {log}"
    );
    assert_eq!(count_lines(&log, "b"), 1, "{log}");
    assert_eq!(count_lines(&log, "c"), 1, "{log}");
    let audit = sandbox.run(&["audit", &run_id, "--json", "--state-dir", ".cairn"]);
    let reset: Vec<serde_json::Value> = text(&audit.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|record| record["action"] == "task_reset")
        .collect();
    assert_eq!(reset.len(), 1, "{reset:?}");
    let message = reset[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("task `b` was running at attempt 1 when the run stopped"),
        "the audit calls the reset task by its workflow id: {message}"
    );
}

#[test]
fn a_resume_kills_the_command_a_kill_9_left_running_before_rerunning_its_task() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", BLOCKING);
    let mut first = sandbox.spawn(&["run", "wf.toml"], "out1", "err1");
    let group = wait_for_b(&sandbox);
    signal(pid_of(&first), "KILL");
    wait_exit(&mut first);
    assert!(alive(-group), "a kill -9 leaves b's command running");

    // The resume must kill the old command before b's next attempt starts: once `release`
    // exists, the old command would otherwise log a second `b`.
    let mut second = sandbox.spawn(&["run", "wf.toml"], "out2", "err2");
    wait_for("b's old process group to be killed", || !alive(-group));
    wait_for("b's next attempt to start", || {
        count_lines(&sandbox.read("log"), "b-start") == 2
    });
    sandbox.touch("release");
    let status = wait_exit(&mut second);
    let stdout = sandbox.read("out2");
    assert_eq!(status.code(), Some(0), "{stdout}\n{}", sandbox.read("err2"));
    assert!(
        stdout.contains(&format!(
            "killed process group {group} of task `b`, left running by the interrupted run"
        )),
        "{stdout}"
    );
    let log = sandbox.read("log");
    assert_eq!(
        count_lines(&log, "b"),
        1,
        "b ran to its end exactly once: {log}"
    );
    assert_eq!(count_lines(&log, "c"), 1, "{log}");
}

#[test]
fn ctrl_c_leaves_the_run_resumable_and_prints_the_resume_command() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", BLOCKING);
    let mut first = sandbox.spawn(&["run", "wf.toml", "--grace", "200ms"], "out1", "err1");
    let group = wait_for_b(&sandbox);
    signal(pid_of(&first), "INT");
    let status = wait_exit(&mut first);
    assert_eq!(status.code(), Some(4), "{}", sandbox.read("err1"));
    let stderr = sandbox.read("err1");
    assert!(stderr.contains("left resumable"), "{stderr}");
    assert!(
        stderr.contains("Resume it with:\n  cairn run wf.toml"),
        "{stderr}"
    );
    // The grace period ended, so b's command was killed with its group, and b's start is
    // not the last word about it.
    wait_for("b's process group to be killed", || !alive(-group));
    assert_eq!(sandbox.runs()[0]["status"], "running");
    assert_contains(&sandbox.read("out1"), "interrupted b after ");

    sandbox.touch("release");
    let second = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stdout));
    assert!(text(&second.stdout).contains("resuming run"));
    let log = sandbox.read("log");
    assert_eq!(count_lines(&log, "a"), 1, "{log}");
    assert_eq!(count_lines(&log, "c"), 1, "{log}");
    assert_eq!(sandbox.runs()[0]["status"], "completed");
}

#[test]
fn sigterm_lets_running_tasks_finish_within_the_grace_period() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", BLOCKING);
    let mut first = sandbox.spawn(&["run", "wf.toml", "--grace", "10m"], "out1", "err1");
    wait_for_b(&sandbox);
    signal(pid_of(&first), "TERM");
    wait_for("cairn to acknowledge the stop", || {
        sandbox
            .read("out1")
            .contains("interrupted: no new tasks start")
    });
    // b may finish during the grace period; c must not start.
    sandbox.touch("release");
    let status = wait_exit(&mut first);
    assert_eq!(status.code(), Some(4), "{}", sandbox.read("err1"));
    let log = sandbox.read("log");
    assert_eq!(count_lines(&log, "b"), 1, "{log}");
    assert_eq!(count_lines(&log, "c"), 0, "{log}");

    let second = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stdout));
    let log = sandbox.read("log");
    assert_eq!(
        count_lines(&log, "b"),
        1,
        "b completed before the stop: {log}"
    );
    assert_eq!(count_lines(&log, "c"), 1, "{log}");
}

#[test]
fn a_second_ctrl_c_stops_the_running_commands_and_gives_their_attempts_back() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", BLOCKING);
    let mut first = sandbox.spawn(&["run", "wf.toml", "--grace", "10m"], "out1", "err1");
    let group = wait_for_b(&sandbox);
    signal(pid_of(&first), "INT");
    wait_for("cairn to acknowledge the first Ctrl-C", || {
        sandbox.read("out1").contains("Ctrl-C again stops them now")
    });
    assert!(
        alive(-group),
        "the first Ctrl-C must not kill running commands"
    );
    signal(pid_of(&first), "INT");
    let status = wait_exit(&mut first);
    assert_eq!(status.code(), Some(4), "{}", sandbox.read("err1"));
    wait_for("b's process group to be killed", || !alive(-group));
    assert_contains(&sandbox.read("out1"), "stopping running tasks now");
    let stderr = sandbox.read("err1");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(stderr.contains("cairn run wf.toml"), "{stderr}");
    // The stopped attempt was released, not charged as after a crash (before session 14 a
    // second Ctrl-C exited at once and the resume reset b as a crashed attempt).
    let run_id = sandbox.only_run_id();
    let audit = sandbox.run(&["audit", &run_id, "--state-dir", ".cairn"]);
    assert_contains(&text(&audit.stdout), "task_released");

    sandbox.touch("release");
    let second = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stdout));
    assert_lacks(&text(&second.stdout), "1 reset");
    let log = sandbox.read("log");
    assert_eq!(count_lines(&log, "a"), 1, "{log}");
    assert_eq!(count_lines(&log, "c"), 1, "{log}");
}

/// With `--json`, a task whose command the end of the grace period stopped gets a closing
/// `task_interrupted` event (its attempt is given back), so a consumer tracking task states
/// does not keep it running forever.
#[test]
fn json_closes_a_task_the_grace_period_stopped() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", BLOCKING);
    let mut first = sandbox.spawn(
        &["run", "wf.toml", "--grace", "100ms", "--json"],
        "out1",
        "err1",
    );
    wait_for_b(&sandbox);
    signal(pid_of(&first), "INT");
    assert_eq!(
        wait_exit(&mut first).code(),
        Some(4),
        "{}",
        sandbox.read("err1")
    );
    let events: Vec<serde_json::Value> = sandbox
        .read("out1")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let of_b: Vec<&serde_json::Value> = events.iter().filter(|e| e["task"] == "b").collect();
    assert_eq!(of_b.len(), 2, "{events:?}");
    assert_eq!(of_b[0]["event"], "task_started");
    assert_eq!(of_b[1]["event"], "task_interrupted");
    assert_eq!(of_b[1]["attempt"], 1);
    assert_contains(
        of_b[1]["error"].as_str().expect("error"),
        "the attempt is given back",
    );
    assert_eq!(events.last().expect("events")["event"], "run_finished");
    // Given back: b is pending with no attempt charged.
    let run_id = sandbox.only_run_id();
    let shown = sandbox.run(&["show", &run_id, "--state-dir", ".cairn", "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("show --json");
    let b = shown["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|task| task["task"] == "b")
        .expect("task b");
    assert_eq!(
        (&b["status"], &b["attempts"]),
        (&serde_json::json!("pending"), &serde_json::json!(0))
    );
    sandbox.touch("release");
}

#[test]
fn resume_by_id_finishes_an_interrupted_run() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", BLOCKING);
    let mut first = sandbox.spawn(&["run", "wf.toml", "--grace", "100ms"], "out1", "err1");
    wait_for_b(&sandbox);
    signal(pid_of(&first), "INT");
    assert_eq!(wait_exit(&mut first).code(), Some(4));
    let run_id = sandbox.only_run_id();

    sandbox.touch("release");
    let resumed = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    let stdout = text(&resumed.stdout);
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{stdout}{}",
        text(&resumed.stderr)
    );
    assert!(
        stdout.contains(&format!("resuming run {run_id}: 1 done")),
        "{stdout}"
    );
    let log = sandbox.read("log");
    assert_eq!(count_lines(&log, "a"), 1, "{log}");
    assert_eq!(count_lines(&log, "c"), 1, "{log}");
    // Completed runs are not resumed again.
    let again = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(count_lines(&sandbox.read("log"), "c"), 1);
}

#[test]
fn a_second_run_of_a_live_workflow_is_refused() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", BLOCKING);
    let mut first = sandbox.spawn(&["run", "wf.toml"], "out1", "err1");
    wait_for_b(&sandbox);
    let run_id = sandbox.only_run_id();
    for args in [&["run", "wf.toml"][..], &["run", "wf.toml", "--force"][..]] {
        let second = sandbox.run(args);
        let stderr = text(&second.stderr);
        assert_eq!(second.status.code(), Some(5), "{stderr}");
        assert!(stderr.contains("being driven right now"), "{stderr}");
        assert!(
            stderr.contains(&format!("cairn show {run_id}")),
            "the refusal names the live run: {stderr}"
        );
    }
    sandbox.touch("release");
    assert_eq!(wait_exit(&mut first).code(), Some(0));
    let log = sandbox.read("log");
    assert_eq!(count_lines(&log, "a"), 1, "{log}");
    assert_eq!(count_lines(&log, "c"), 1, "{log}");
}

#[test]
fn a_run_nobody_drives_any_more_is_listed_as_interrupted() {
    let sandbox = killed_while_b_runs();
    let run_id = sandbox.only_run_id();
    let runs = sandbox.runs();
    assert_eq!(runs[0]["status"], "running", "{runs:?}");
    assert_eq!(runs[0]["live"], false, "{runs:?}");
    let listed = text(&sandbox.run(&["runs"]).stdout);
    let row = listed
        .lines()
        .find(|line| line.starts_with(&run_id))
        .unwrap_or_else(|| panic!("no row for {run_id}: {listed}"));
    assert_eq!(
        row.split_whitespace().nth(1),
        Some("interrupted"),
        "{listed}"
    );
    assert_contains(&listed, "`cairn resume RUN` goes on with it");
    let shown = text(&sandbox.run(&["show", &run_id]).stdout);
    assert_contains(
        &shown,
        &format!("status    running (interrupted: no process drives it; `cairn resume {run_id}`"),
    );
}

#[test]
fn show_of_a_live_run_reads_its_tasks_beside_the_driver() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", BLOCKING);
    let mut first = sandbox.spawn(&["run", "wf.toml"], "out1", "err1");
    wait_for_b(&sandbox);
    let run_id = sandbox.only_run_id();
    let shown = sandbox.run(&["show", &run_id]);
    let stdout = text(&shown.stdout);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    assert_contains(&stdout, "running (live)");
    let status_of = |task: &str| {
        stdout
            .lines()
            .find(|line| line.split_whitespace().next() == Some(task))
            .and_then(|line| line.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    assert_eq!(status_of("a").as_deref(), Some("done"), "{stdout}");
    assert_eq!(status_of("b").as_deref(), Some("running"), "{stdout}");
    assert_eq!(status_of("c").as_deref(), Some("pending"), "{stdout}");
    let json = sandbox.run(&["show", &run_id, "--json"]);
    let value: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("show --json prints one object");
    assert_eq!(value["live"], true);
    assert_eq!(value["tasks_error"], serde_json::Value::Null);
    let statuses: Vec<&str> = value["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["status"].as_str().expect("a status"))
        .collect();
    assert_eq!(statuses, ["done", "running", "pending"]);
    assert_eq!(sandbox.runs()[0]["live"], true);
    let listed = text(&sandbox.run(&["runs"]).stdout);
    assert_lacks(&listed, "interrupted");
    // Reading beside the driver never disturbed it.
    sandbox.touch("release");
    assert_eq!(wait_exit(&mut first).code(), Some(0));
    let log = sandbox.read("log");
    assert_eq!(count_lines(&log, "c"), 1, "{log}");
    let after = text(&sandbox.run(&["show", &run_id]).stdout);
    assert_lacks(&after, "(live)");
}

#[test]
fn two_runs_started_at_the_same_moment_never_both_run() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"race\"\n[[task]]\nid = \"a\"\nrun = \"echo a >> log; sleep 1\"\n",
    );
    // Started back to back, both look for an earlier run before either has begun one.
    let mut first = sandbox.spawn(&["run", "wf.toml"], "out1", "err1");
    let mut second = sandbox.spawn(&["run", "wf.toml"], "out2", "err2");
    let mut codes = [wait_exit(&mut first).code(), wait_exit(&mut second).code()];
    codes.sort();
    assert_eq!(
        codes,
        [Some(0), Some(5)],
        "one runs, the other is refused: {} {}",
        sandbox.read("err1"),
        sandbox.read("err2")
    );
    let refusal = format!("{}{}", sandbox.read("err1"), sandbox.read("err2"));
    assert!(refusal.contains("being driven right now"), "{refusal}");
    assert_eq!(count_lines(&sandbox.read("log"), "a"), 1);
    assert_eq!(sandbox.runs().len(), 1);
}

#[test]
fn an_interrupted_run_can_be_abandoned_and_the_next_run_starts_fresh() {
    let sandbox = killed_while_b_runs();
    let run_id = sandbox.only_run_id();

    // Its driver is gone, so it can be dropped instead of resumed (a task that hangs with no
    // timeout would otherwise pin the workflow forever).
    let abandon = sandbox.run(&["abandon", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(abandon.status.code(), Some(0), "{}", text(&abandon.stderr));
    assert!(text(&abandon.stdout).contains("(was running)"));
    assert_eq!(sandbox.runs()[0]["status"], "cancelled");

    sandbox.touch("release");
    let next = sandbox.run(&["run", "wf.toml"]);
    let stdout = text(&next.stdout);
    assert_eq!(next.status.code(), Some(0), "{stdout}");
    assert!(!stdout.contains("resuming"), "a fresh run: {stdout}");
    assert_eq!(sandbox.runs().len(), 2, "the abandoned run is kept");
    assert_eq!(
        count_lines(&sandbox.read("log"), "a"),
        2,
        "the fresh run ran `a` again"
    );
}

#[test]
fn after_ctrl_c_a_task_that_failed_permanently_is_not_run_again() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        r#"
name = "half-failed"

[[task]]
id = "bad"
run = "echo bad >> log; exit 2"
permanent_exit_codes = [2]

[[task]]
id = "b"
run = "echo $$ > b.pgid; echo b-start >> log; while ! test -f release; do sleep 0.05; done; echo b >> log"
"#,
    );
    let mut first = sandbox.spawn(&["run", "wf.toml", "--grace", "200ms"], "out1", "err1");
    wait_for_b(&sandbox);
    wait_for("bad to fail", || {
        count_lines(&sandbox.read("log"), "bad") == 1
    });
    signal(pid_of(&first), "INT");
    let status = wait_exit(&mut first);
    assert_eq!(status.code(), Some(4), "{}", sandbox.read("err1"));

    // The plain command resumes the interrupted run: `b` runs again, `bad` does not.
    sandbox.touch("release");
    let second = sandbox.run(&["run", "wf.toml"]);
    let stdout = text(&second.stdout);
    assert_eq!(
        second.status.code(),
        Some(1),
        "the run still fails on `bad`: {stdout}\n{}",
        text(&second.stderr)
    );
    let log = sandbox.read("log");
    assert_eq!(
        count_lines(&log, "bad"),
        1,
        "a permanent failure is not retried because the run was interrupted: {log}"
    );
    assert_eq!(count_lines(&log, "b"), 1, "{log}");
}

/// Runs [`BLOCKING`] with `--input`, kills cairn with SIGKILL while `b` runs, then `b`'s
/// process group too. Returns the sandbox and the run id.
fn killed_with_input(input: &str) -> (Sandbox, String) {
    killed_running(BLOCKING, input)
}

/// Runs `workflow` (whose `b` behaves as in [`BLOCKING`]) with `--input`, kills cairn with
/// SIGKILL while `b` runs, then `b`'s process group too. Returns the sandbox and the run id.
fn killed_running(workflow: &str, input: &str) -> (Sandbox, String) {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", workflow);
    let mut first = sandbox.spawn(&["run", "wf.toml", "--input", input], "out1", "err1");
    let group = wait_for_b(&sandbox);
    signal(pid_of(&first), "KILL");
    wait_exit(&mut first);
    signal(-group, "KILL");
    wait_for("b's old process group to die", || !alive(-group));
    let run_id = sandbox.only_run_id();
    (sandbox, run_id)
}

/// `cairn run --input new` meeting an interrupted run of another input resumes that run
/// first (with its own input), then runs the input asked for, so the exit code is the new
/// input's run's (review 51 F23: the command exited 0 with only the old input run).
#[test]
fn a_resume_that_drops_the_requested_input_says_so_and_runs_it_next() {
    let (sandbox, run_id) = killed_with_input("old job");
    sandbox.touch("release");
    let second = sandbox.run(&["run", "wf.toml", "--input", "new job"]);
    let (stdout, stderr) = (text(&second.stdout), text(&second.stderr));
    assert_eq!(second.status.code(), Some(0), "{stderr}");
    assert_contains(&stderr, "your input is NOT used by this run");
    assert_contains(&stderr, &format!("Run {run_id} of workflow `blocking`"));
    assert_contains(&stderr, "its input (kept):       \"old job\"");
    assert_contains(&stderr, "your input (runs next): \"new job\"");
    assert_contains(
        &stderr,
        &format!(
            "cairn abandon {run_id} --state-dir .cairn && cairn run wf.toml --input 'new job'"
        ),
    );
    assert_contains(
        &stdout,
        &format!("run {run_id} (its own input) completed; now running your input"),
    );
    // The run went on, to its end, with its own input; then the new input ran.
    let runs = sandbox.runs();
    assert_eq!(runs.len(), 2, "{runs:?}");
    let input_of = |input: &str| {
        runs.iter()
            .find(|run| run["input"] == input)
            .unwrap_or_else(|| panic!("a run of {input}: {runs:?}"))
    };
    assert_eq!(input_of("old job")["run_id"], run_id.as_str());
    assert_eq!(input_of("old job")["status"], "completed");
    assert_eq!(input_of("new job")["status"], "completed");
    assert_eq!(count_lines(&sandbox.read("log"), "c"), 2);

    // The same input: nothing to warn about.
    let (sandbox, _) = killed_with_input("same");
    sandbox.touch("release");
    let again = sandbox.run(&["run", "wf.toml", "--input", "same"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_lacks(&text(&again.stderr), "NOT used");

    // No `--input` at all asks for nothing, so nothing was left unused either.
    let (sandbox, _) = killed_with_input("kept");
    sandbox.touch("release");
    let plain = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(plain.status.code(), Some(0), "{}", text(&plain.stderr));
    assert_lacks(&text(&plain.stderr), "NOT used");
    assert_eq!(sandbox.runs()[0]["input"], "kept");

    // With --json the warning is one `input_not_used` line on stdout, not also the text.
    let (sandbox, _) = killed_with_input("old");
    sandbox.touch("release");
    let json = sandbox.run(&["run", "wf.toml", "--input", "new", "--json"]);
    assert_eq!(json.status.code(), Some(0), "{}", text(&json.stderr));
    assert_lacks(&text(&json.stderr), "NOT used");
    let events: Vec<serde_json::Value> = text(&json.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == "input_not_used")
        .collect();
    assert_eq!(events.len(), 1, "{}", text(&json.stdout));
    assert_eq!(events[0]["requested_input"], "new");
    assert_eq!(events[0]["runs_next"], true);
    assert_eq!(sandbox.runs().len(), 2, "{:?}", sandbox.runs());
}

/// When the interrupted run does not complete, the input asked for does not run, and the
/// command says so and exits with that run's code.
#[test]
fn an_input_left_waiting_behind_a_run_that_fails_again_is_not_run() {
    // `b` fails for good once the file `fail` exists (a resumed run goes on with its own
    // copy of the workflow, so the file cannot be edited instead).
    let workflow = BLOCKING.replace(
        "run = \"echo $$ > b.pgid;",
        "run = \"if test -f fail; then exit 1; fi; echo $$ > b.pgid;",
    );
    let (sandbox, run_id) = killed_running(&workflow, "old job");
    sandbox.touch("fail");
    let second = sandbox.run(&["run", "wf.toml", "--input", "new job"]);
    let stderr = text(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert_contains(
        &stderr,
        &format!("your input was not run: run {run_id} did not complete"),
    );
    assert_contains(&stderr, "cairn run wf.toml --input 'new job' --force");
    assert_eq!(sandbox.runs().len(), 1, "{:?}", sandbox.runs());
}

#[test]
fn another_file_with_the_same_name_and_other_tasks_does_not_resume_its_run() {
    let (sandbox, run_id) = killed_with_input("");
    // Another file with the same workflow name, in the same state folder: a copy made into
    // another workflow (a staging deploy copied into a production one) whose `name` stayed.
    sandbox.write(
        "other.toml",
        &BLOCKING.replace("echo c >> log", "echo other >> log"),
    );
    sandbox.touch("release");
    // With --json the refusal is also an event on stdout, for scripts.
    let json = sandbox.run(&["run", "other.toml", "--json"]);
    assert_eq!(json.status.code(), Some(3), "{}", text(&json.stderr));
    let event: serde_json::Value =
        serde_json::from_str(text(&json.stdout).lines().last().expect("a JSON line"))
            .expect("JSON");
    assert_eq!(
        (&event["event"], &event["status"], &event["run_id"]),
        (
            &serde_json::json!("decision_needed"),
            &serde_json::json!("other_file"),
            &serde_json::json!(run_id)
        )
    );
    assert_eq!(
        event["commands"]["resume"],
        format!("cairn resume {run_id} --state-dir .cairn").as_str()
    );
    let second = sandbox.run(&["run", "other.toml"]);
    let stderr = text(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "{stderr}");
    // Recorded absolute, from the current folder as the OS reports it (symlinks resolved).
    let started_from = sandbox.root().canonicalize().unwrap().join("wf.toml");
    assert_contains(
        &stderr,
        &format!(
            "error: the interrupted run {run_id} of workflow `blocking` was started from {}, not other.toml, and its tasks differ",
            started_from.display()
        ),
    );
    assert_contains(&stderr, &format!("cairn resume {run_id}"));
    assert_eq!(count_lines(&sandbox.read("log"), "c"), 0, "nothing ran");
    assert_eq!(count_lines(&sandbox.read("log"), "other"), 0);

    // A copy with the same tasks is the same workflow: it resumes the run, and says whose.
    sandbox.write("same.toml", BLOCKING);
    let third = sandbox.run(&["run", "same.toml"]);
    let stdout = text(&third.stdout);
    assert_eq!(third.status.code(), Some(0), "{}", text(&third.stderr));
    assert_contains(
        &stdout,
        &format!(
            "note: this run was started from {}, not same.toml",
            started_from.display()
        ),
    );
    assert_contains(&stdout, &format!("resuming run {run_id}"));
    assert_eq!(
        count_lines(&sandbox.read("log"), "c"),
        1,
        "its own tasks ran"
    );
}

#[test]
fn ctrl_c_does_not_spend_the_attempt_of_a_task_on_its_last_one() {
    // The stop was the operator's, not the task's failure: a `max_attempts = 1` task cut off
    // by Ctrl-C runs again on resume (it used to fail the resumed run at once).
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        &BLOCKING.replace(
            "depends_on = [\"a\"]",
            "depends_on = [\"a\"]\nmax_attempts = 1",
        ),
    );
    let mut first = sandbox.spawn(&["run", "wf.toml", "--grace", "200ms"], "out1", "err1");
    let group = wait_for_b(&sandbox);
    signal(pid_of(&first), "INT");
    let status = wait_exit(&mut first);
    assert_eq!(status.code(), Some(4), "{}", sandbox.read("err1"));
    wait_for("b's process group to be killed", || !alive(-group));

    sandbox.touch("release");
    let second = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}{}",
        text(&second.stdout),
        text(&second.stderr)
    );
    let log = sandbox.read("log");
    assert_eq!(count_lines(&log, "b"), 1, "{log}");
    assert_eq!(count_lines(&log, "c"), 1, "{log}");
}

/// A task killed with cairn on its last attempt fails on resume: the resume line counts it as
/// failed, not reset, and the failure names it by its workflow id only (the queue's own id,
/// `t1` here, is another task of this file).
#[test]
fn a_task_killed_on_its_last_attempt_is_named_by_its_own_id_and_not_counted_as_reset() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        r#"
name = "ids"

[[task]]
id = "t1"
run = "echo t1 >> log"

[[task]]
id = "t0"
run = "echo $$ > t0.pgid; echo t0-start >> log; sleep 600"
depends_on = ["t1"]
max_attempts = 1
"#,
    );
    let mut first = sandbox.spawn(&["run", "wf.toml"], "out1", "err1");
    wait_for("task t0 to start", || {
        sandbox.read("log").contains("t0-start")
    });
    wait_for("t0's pid file", || {
        !sandbox.read("t0.pgid").trim().is_empty()
    });
    let group: i64 = sandbox.read("t0.pgid").trim().parse().expect("a pgid");
    signal(pid_of(&first), "KILL");
    wait_exit(&mut first);

    let second = sandbox.run(&["run", "wf.toml"]);
    let (out, err) = (text(&second.stdout), text(&second.stderr));
    assert_eq!(second.status.code(), Some(1), "{out}\n{err}");
    assert_contains(&out, "killed process group");
    wait_for("the leftover command to be gone", || !alive(-group));
    assert_contains(
        &out,
        "1 done, 0 pending, 0 reset, 1 failed (interrupted on its last attempt)",
    );
    let all = format!("{out}\n{err}");
    assert_contains(
        &all,
        "`t0`: interrupted: it was running when the run stopped, on its last attempt (1 of 1)",
    );
    assert_lacks(&all, "t1 was running");
    assert_lacks(&all, "(t1)");
}

/// A command that exited 0 while a process that left its group (`setsid`) still holds its
/// output is recorded done when the run shuts down: its drain stops at the shutdown instead
/// of outlasting the grace period, so it does not run again on resume.
#[test]
fn a_command_that_exited_0_during_the_grace_is_done_though_its_output_is_held_open() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        r#"
name = "held"

[[task]]
id = "deploy"
run = "echo started >> log; while ! test -f release; do sleep 0.05; done; echo deploy-ran >> ran.log; setsid sh -c 'echo $$ > away.pid; exec sleep 300' & while [ ! -s away.pid ]; do sleep 0.01; done; exit 0"

[[task]]
id = "next"
run = "echo next >> ran.log"
depends_on = ["deploy"]
"#,
    );
    // The grace (4 s) is shorter than the drain limit (5 s): without the cut, the drain
    // would outlast it and the attempt would be stopped and given back.
    let mut first = sandbox.spawn(&["run", "wf.toml", "--grace", "4s"], "out1", "err1");
    wait_for("deploy to start", || {
        sandbox.read("log").contains("started")
    });
    signal(pid_of(&first), "TERM");
    wait_for("cairn to acknowledge the stop", || {
        sandbox
            .read("out1")
            .contains("interrupted: no new tasks start")
    });
    sandbox.touch("release");
    let status = wait_exit(&mut first);
    let away: i64 = sandbox.read("away.pid").trim().parse().expect("a pid");
    assert!(
        alive(away),
        "the process holding the output outlives the task"
    );
    signal(away, "KILL");
    assert_eq!(status.code(), Some(4), "{}", sandbox.read("err1"));

    let run_id = sandbox.only_run_id();
    let show = sandbox.run(&["show", &run_id, "--json", "--state-dir", ".cairn"]);
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).expect("show --json");
    let deploy = shown["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["task"] == "deploy")
        .expect("deploy is listed")
        .clone();
    assert_eq!(deploy["status"], "done", "{shown}");

    let second = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stdout));
    let ran = sandbox.read("ran.log");
    assert_eq!(count_lines(&ran, "deploy-ran"), 1, "deploy ran once: {ran}");
    assert_eq!(count_lines(&ran, "next"), 1, "{ran}");
}
