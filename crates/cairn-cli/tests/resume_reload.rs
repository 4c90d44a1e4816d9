//! `cairn resume RUN --reload`: the tasks that have not finished take the workflow file as it
//! is now, done tasks are not run again, and a file the run cannot take is refused with
//! nothing changed.

mod common;

use common::{Sandbox, assert_contains, assert_lacks, count_lines, text};

/// `a` is done before `b` fails for good with exit 7; `c` waits for `b`.
const FAILS: &str = r#"
name = "reload"

[[task]]
id = "a"
run = "echo a >> log"

[[task]]
id = "b"
run = "echo b-old >> log; exit 7"
depends_on = ["a"]
max_attempts = 1

[[task]]
id = "c"
run = "echo c >> log"
depends_on = ["b"]
"#;

/// [`FAILS`] with `b`'s command fixed.
fn fixed() -> String {
    FAILS.replace("echo b-old >> log; exit 7", "echo b-new >> log")
}

/// Runs [`FAILS`] to its failure and returns the run id.
fn failed_run(sandbox: &Sandbox) -> String {
    sandbox.write("wf.toml", FAILS);
    let output = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    sandbox.only_run_id()
}

/// The run's audit actions, in order.
fn audit_actions(sandbox: &Sandbox, run_id: &str) -> Vec<String> {
    let output = sandbox.run(&["audit", run_id, "--state-dir", ".cairn", "--json"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|record| record["action"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_fixed_command_runs_and_done_tasks_do_not_run_again() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    sandbox.write("wf.toml", &fixed());

    let output = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn", "--reload"]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert_contains(
        &stdout,
        "the run takes the file's definition for task `b` (pending: new command or settings)",
    );
    let log = sandbox.read("log");
    assert_eq!(count_lines(&log, "a"), 1, "a ran again: {log}");
    assert_eq!(count_lines(&log, "b-old"), 1, "{log}");
    assert_eq!(count_lines(&log, "b-new"), 1, "{log}");
    assert_eq!(count_lines(&log, "c"), 1, "{log}");
    assert!(
        audit_actions(&sandbox, &run_id).contains(&"task_amended".to_owned()),
        "no task_amended record"
    );

    // The run's copy of its workflow is the reloaded file now.
    let copy = sandbox.read(&format!(".cairn/output/{run_id}/.workflow.toml"));
    assert_contains(&copy, "echo b-new >> log");
    assert_lacks(&copy, "b-old");
}

#[test]
fn a_changed_done_task_is_refused_and_nothing_changes() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    sandbox.write(
        "wf.toml",
        &fixed().replace("echo a >> log", "echo a-changed >> log"),
    );

    let refused = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn", "--reload"]);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert_contains(&stderr, &format!("--reload: run {run_id} cannot take "));
    assert_contains(
        &stderr,
        "task `a` changed (new command or settings), but it is done and a finished task is never run again",
    );
    assert_contains(&stderr, &format!("cairn abandon {run_id}"));
    assert_eq!(
        count_lines(&sandbox.read("log"), "b-old"),
        1,
        "something ran"
    );
    assert!(!audit_actions(&sandbox, &run_id).contains(&"task_amended".to_owned()));

    // The run is still failed, and a plain resume still runs its own command.
    let plain = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(plain.status.code(), Some(1), "{}", text(&plain.stdout));
    let log = sandbox.read("log");
    assert_eq!(count_lines(&log, "b-old"), 2, "{log}");
    assert_eq!(count_lines(&log, "b-new"), 0, "{log}");
}

#[test]
fn another_shape_is_refused_with_every_problem_named() {
    let cases: [(&str, String, &str); 4] = [
        (
            "added",
            format!("{}\n[[task]]\nid = \"d\"\nrun = \"true\"\n", fixed()),
            "task(s) `d` are new",
        ),
        (
            "removed",
            fixed().replace(
                "[[task]]\nid = \"c\"\nrun = \"echo c >> log\"\ndepends_on = [\"b\"]\n",
                "",
            ),
            "task(s) `c` are gone",
        ),
        (
            "renamed",
            fixed().replace("id = \"c\"", "id = \"see\""),
            "task(s) `see` are new",
        ),
        (
            "dependencies",
            fixed().replace("depends_on = [\"b\"]", "depends_on = [\"a\"]"),
            "task `c` waits for [`a`] now, not [`b`]",
        ),
    ];
    for (what, file, problem) in cases {
        let sandbox = Sandbox::new();
        let run_id = failed_run(&sandbox);
        sandbox.write("wf.toml", &file);
        let refused = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn", "--reload"]);
        let stderr = text(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{what}: {stderr}");
        assert_contains(&stderr, problem);
        assert_eq!(count_lines(&sandbox.read("log"), "b-old"), 1, "{what}: ran");
    }
}

#[test]
fn a_file_that_does_not_load_is_refused() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    sandbox.write("wf.toml", "name = \"reload\"\n[[task]]\nid = \"a\"\n");
    let refused = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn", "--reload"]);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert_contains(&stderr, "--reload: the workflow file does not load");
    assert_eq!(count_lines(&sandbox.read("log"), "b-old"), 1);
}

#[test]
fn a_raised_attempt_limit_gives_a_failed_task_more_attempts() {
    let sandbox = Sandbox::new();
    // `b` fails twice, then succeeds; the file allowed it one attempt.
    let flaky = FAILS.replace(
        "echo b-old >> log; exit 7",
        "echo b >> log; test $(grep -c '^b$' log) -ge 3",
    );
    sandbox.write("wf.toml", &flaky);
    let first = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(first.status.code(), Some(1), "{}", text(&first.stdout));
    let run_id = sandbox.only_run_id();
    sandbox.write(
        "wf.toml",
        &flaky.replace("max_attempts = 1", "max_attempts = 5"),
    );

    let output = sandbox.run(&[
        "resume",
        &run_id,
        "--state-dir",
        ".cairn",
        "--reload",
        "--json",
    ]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    let reloaded: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == "reloaded")
        .collect();
    assert_eq!(reloaded.len(), 1, "{stdout}");
    assert_eq!(reloaded[0]["run_id"], run_id.as_str());
    assert_eq!(reloaded[0]["tasks"][0]["task"], "b");
    assert_eq!(reloaded[0]["tasks"][0]["max_attempts"][1], 5);
    assert_lacks(&stdout, "workflow_file_differs");
    assert_eq!(count_lines(&sandbox.read("log"), "b"), 3);
    assert_eq!(count_lines(&sandbox.read("log"), "c"), 1);
}

#[test]
fn an_unchanged_file_reloads_as_nothing_to_change() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    let output = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn", "--reload"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert_contains(&stdout, "nothing changes for this run");
    assert_eq!(count_lines(&sandbox.read("log"), "b-old"), 2);
}

/// Runs [`FAILS`] with `b` blocking until `release` exists, stopped by SIGTERM while `b`
/// runs ([`common::interrupted_in_b`]); returns the run id of the interrupted run.
fn interrupted_run(sandbox: &Sandbox) -> String {
    let blocking = FAILS.replace(
        "echo b-old >> log; exit 7",
        "echo $$ > b.pgid; while ! test -f release; do sleep 0.05; done; echo b-old >> log",
    );
    common::interrupted_in_b(sandbox, &blocking)
}

#[test]
fn an_interrupted_run_takes_the_fix_and_a_refusal_leaves_it_interrupted() {
    let sandbox = Sandbox::new();
    let run_id = interrupted_run(&sandbox);

    // A refusal claims nothing: the run is still interrupted, with its lease untouched.
    sandbox.write(
        "wf.toml",
        &fixed().replace("echo a >> log", "echo a2 >> log"),
    );
    let refused = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn", "--reload"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    let listed = sandbox.run(&["runs", "--state-dir", ".cairn", "--json"]);
    let run: serde_json::Value =
        serde_json::from_str(text(&listed.stdout).trim()).expect("one run as JSON");
    assert_eq!(run["status"], "running", "{run}");
    assert_eq!(run["live"], false, "{run}");
    assert_eq!(run["lease_epoch"], 1, "claimed by a refused reload: {run}");

    sandbox.write("wf.toml", &fixed());
    let output = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn", "--reload"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_contains(&stdout, &format!("resuming run {run_id}"));
    assert_contains(&stdout, "task `b` (pending: new command or settings)");
    assert_lacks(&stdout, "changed since this run started");
    let log = sandbox.read("log");
    assert_eq!(count_lines(&log, "a"), 1, "{log}");
    assert_eq!(count_lines(&log, "b-old"), 0, "{log}");
    assert_eq!(count_lines(&log, "b-new"), 1, "{log}");
    assert_eq!(count_lines(&log, "c"), 1, "{log}");
}
