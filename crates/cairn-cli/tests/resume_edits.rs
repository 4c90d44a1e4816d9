//! A resumed run goes on with the copy of its workflow taken when it started, and says so
//! when the file on disk now differs (edited, unloadable, gone); another path to the same
//! file is not another file.

mod common;

use common::{Sandbox, assert_contains, assert_lacks, count_lines, text};

/// `a` is done before `b` fails for good with exit 7.
const FAILS: &str = r#"
name = "edits"

[[task]]
id = "a"
run = "echo a >> log"

[[task]]
id = "b"
run = "echo b-old >> log; exit 7"
depends_on = ["a"]
max_attempts = 1
"#;

/// [`FAILS`] with `b` fixed, as a user would fix it before resuming.
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

#[test]
fn resuming_a_failed_run_after_an_edit_says_the_edit_is_not_picked_up() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    let path = sandbox.root().canonicalize().unwrap().join("wf.toml");

    // Unchanged: no note, and each task is counted once in the header.
    let same = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    let stdout = text(&same.stdout);
    assert_eq!(same.status.code(), Some(1), "{stdout}");
    assert_contains(
        &stdout,
        &format!("resuming failed run {run_id}: 1 done, 0 pending, 1 failed task(s) retried"),
    );
    assert_lacks(&stdout, "note:");

    sandbox.write("wf.toml", &fixed());
    let edited = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    let stdout = text(&edited.stdout);
    assert_eq!(
        edited.status.code(),
        Some(1),
        "the old command ran: {stdout}"
    );
    assert_contains(
        &stdout,
        &format!(
            "note: the workflow file {} changed since this run started; the run goes on with the tasks it started with",
            path.display()
        ),
    );
    // It names the resume that takes the edit.
    assert_contains(
        &stdout,
        &format!("`cairn resume {run_id} --reload --state-dir "),
    );
    let log = sandbox.read("log");
    assert_eq!(count_lines(&log, "b-old"), 3, "{log}");
    assert_eq!(count_lines(&log, "b-new"), 0, "{log}");

    // With --json the note is a `workflow_file_differs` event.
    let json = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn", "--json"]);
    let events: Vec<serde_json::Value> = text(&json.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == "workflow_file_differs")
        .collect();
    assert_eq!(events.len(), 1, "{}", text(&json.stdout));
    assert_eq!(events[0]["reason"], "changed");
    assert_eq!(events[0]["run_id"], run_id.as_str());
    assert_eq!(events[0]["path"], path.display().to_string());
}

#[test]
fn resuming_a_failed_run_whose_file_is_gone_or_broken_says_so() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    sandbox.write("wf.toml", "name = \"edits\"\n[[task]]\nid = \"a\"\n");
    let broken = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    let stdout = text(&broken.stdout);
    assert_eq!(broken.status.code(), Some(1), "{stdout}");
    assert_contains(
        &stdout,
        "changed since this run started and does not load now (",
    );

    std::fs::remove_file(sandbox.path("wf.toml")).unwrap();
    let gone = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    let stdout = text(&gone.stdout);
    assert_eq!(gone.status.code(), Some(1), "{stdout}");
    assert_contains(&stdout, "wf.toml this run was started from is gone");
    assert_eq!(count_lines(&sandbox.read("log"), "b-old"), 3);
}

/// Checks that `cairn resume` of a run whose output folder was removed is refused (exit 2)
/// with the ways forward that need no copy of its workflow, and that nothing changed.
fn assert_resume_without_origin_refused(sandbox: &Sandbox, run_id: &str, status: &str) {
    std::fs::remove_dir_all(sandbox.path(&format!(".cairn/output/{run_id}"))).unwrap();
    let log_before = sandbox.read("log");
    let output = sandbox.run(&["resume", run_id, "--state-dir", ".cairn"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_contains(&stderr, &format!("run {run_id} has no recorded workflow"));
    assert_contains(&stderr, "its output folder was removed");
    assert_contains(
        &stderr,
        &format!(
            "`cairn abandon {run_id} --state-dir .cairn && cairn run <workflow file> --state-dir .cairn`"
        ),
    );
    assert_contains(
        &stderr,
        "`cairn run <workflow file> --state-dir .cairn --force`",
    );
    assert_eq!(sandbox.read("log"), log_before, "a task ran");
    let show = sandbox.run(&["show", run_id, "--state-dir", ".cairn", "--json"]);
    assert_contains(&text(&show.stdout), &format!("\"status\":\"{status}\""));
}

#[test]
fn resuming_a_failed_run_whose_output_folder_was_removed_gives_the_ways_forward() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    assert_resume_without_origin_refused(&sandbox, &run_id, "failed");
}

#[test]
fn running_the_file_again_does_not_offer_to_resume_a_failed_run_whose_copy_is_gone() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    std::fs::remove_dir_all(sandbox.path(&format!(".cairn/output/{run_id}"))).unwrap();

    let output = sandbox.run(&["run", "wf.toml"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert_contains(&stderr, &format!("is failed: {run_id}"));
    // `cairn resume` would refuse it, so it is not among the ways forward.
    assert_lacks(&stderr, &format!("cairn resume {run_id}"));
    assert_contains(
        &stderr,
        &format!("cairn abandon {run_id} --state-dir .cairn && cairn run wf.toml"),
    );
    assert_contains(&stderr, "cairn run wf.toml --force");
    assert_contains(
        &stderr,
        "resuming it is not offered: it has no recorded workflow",
    );

    let json = sandbox.run(&["run", "wf.toml", "--json"]);
    assert_eq!(json.status.code(), Some(3), "{}", text(&json.stderr));
    let event: serde_json::Value = text(&json.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["event"] == "decision_needed")
        .expect("a decision_needed event");
    assert_eq!(event["commands"]["resume"], serde_json::Value::Null);
    assert_eq!(
        event["commands"]["force"], "cairn run wf.toml --force",
        "{event}"
    );
    assert!(
        event["resume_not_offered"]
            .as_str()
            .is_some_and(|why| why.contains("no recorded workflow")),
        "{event}"
    );
    assert_eq!(
        count_lines(&sandbox.read("log"), "a"),
        1,
        "a task ran again"
    );
    assert_eq!(sandbox.runs().len(), 1);
}

/// Runs [`FAILS`] with `b` blocking until `release` exists, stopped by SIGTERM while `b`
/// runs ([`common::interrupted_in_b`]); returns the run id of the interrupted run.
fn interrupted_run(sandbox: &Sandbox) -> String {
    std::fs::create_dir_all(sandbox.path("sub")).unwrap();
    let blocking = FAILS.replace(
        "echo b-old >> log; exit 7",
        "echo $$ > b.pgid; while ! test -f release; do sleep 0.05; done; echo b-old >> log",
    );
    common::interrupted_in_b(sandbox, &blocking)
}

#[test]
fn resuming_an_interrupted_run_by_id_after_an_edit_says_so() {
    let sandbox = Sandbox::new();
    let run_id = interrupted_run(&sandbox);
    sandbox.write("wf.toml", &fixed());
    let output = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_contains(&stdout, &format!("resuming run {run_id}"));
    assert_contains(&stdout, "wf.toml changed since this run started");
    let log = sandbox.read("log");
    assert_eq!(
        count_lines(&log, "b-old"),
        1,
        "the run's own command ran: {log}"
    );
    assert_eq!(count_lines(&log, "b-new"), 0, "{log}");
}

#[test]
fn resuming_an_interrupted_run_whose_output_folder_was_removed_gives_the_ways_forward() {
    let sandbox = Sandbox::new();
    let run_id = interrupted_run(&sandbox);
    assert_resume_without_origin_refused(&sandbox, &run_id, "running");
    // The plain run of its workflow is offered too, as it picks an interrupted run up.
    let output = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    assert_contains(
        &text(&output.stderr),
        "as it was interrupted, `cairn run <workflow file> --state-dir .cairn` with its workflow file also resumes it",
    );
}

#[test]
fn another_path_to_the_same_file_is_not_another_file() {
    for given in ["./sub/../wf.toml", "link.toml"] {
        let sandbox = Sandbox::new();
        let run_id = interrupted_run(&sandbox);
        std::os::unix::fs::symlink("wf.toml", sandbox.path("link.toml")).unwrap();
        let output = sandbox.run(&["run", given]);
        let stdout = text(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{given}: {stdout}");
        assert_contains(&stdout, &format!("resuming run {run_id}"));
        assert_lacks(&stdout, "note:");
    }
    // A copy of the file elsewhere is another file, even with the same tasks.
    let sandbox = Sandbox::new();
    interrupted_run(&sandbox);
    std::fs::copy(sandbox.path("wf.toml"), sandbox.path("copy.toml")).unwrap();
    let output = sandbox.run(&["run", "copy.toml"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert_contains(&stdout, "note: this run was started from ");
    assert_lacks(&stdout, "they differ");
}
