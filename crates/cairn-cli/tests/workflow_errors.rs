//! Bad workflow files stop `cairn run` before anything starts: exit code 2 and a message
//! naming the file, line and column. One test per error kind.

mod common;

use common::{Sandbox, text};

/// Runs a bad workflow and checks exit 2, the `file:line:` location, and that no task ran
/// and no run was recorded.
fn assert_rejected(body: &str, line: usize) -> String {
    let sandbox = Sandbox::new();
    let text_with_marker = format!("{body}\n");
    sandbox.write("wf.toml", &text_with_marker);
    let output = sandbox.run(&["run", "wf.toml"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("wf.toml:{line}:")),
        "expected the location wf.toml:{line}: in {stderr:?}"
    );
    assert!(
        !sandbox.path("ran").exists(),
        "a task ran although the workflow is bad"
    );
    assert!(
        !sandbox.path(".cairn").exists(),
        "a run was recorded although the workflow is bad"
    );
    stderr
}

const GOOD_TASK: &str = "[[task]]\nid = \"ok\"\nrun = \"touch ran\"\n";

#[test]
fn unknown_dependency_is_located() {
    let body = format!(
        "name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"b\"\nrun = \"touch ran\"\ndepends_on = [\"ok\", \"missing\"]"
    );
    let stderr = assert_rejected(&body, 8);
    assert!(stderr.contains("missing"));
}

#[test]
fn cycle_is_located() {
    let body = format!(
        "name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"a\"\nrun = \"touch ran\"\ndepends_on = [\"b\"]\n[[task]]\nid = \"b\"\nrun = \"touch ran\"\ndepends_on = [\"a\"]"
    );
    let stderr = assert_rejected(&body, 8);
    assert!(stderr.contains("a -> b -> a"), "{stderr}");
}

#[test]
fn duplicate_id_is_located() {
    let body = format!("name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"ok\"\nrun = \"touch ran\"");
    assert_rejected(&body, 6);
}

#[test]
fn bad_duration_is_located() {
    let body = format!(
        "name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"slow\"\nrun = \"touch ran\"\ntimeout = \"5 parsecs\""
    );
    assert_rejected(&body, 8);
}

#[test]
fn unknown_task_key_is_located() {
    let body =
        format!("name = \"w\"\n{GOOD_TASK}[[task]]\nid = \"b\"\nrun = \"touch ran\"\nretries = 3");
    let stderr = assert_rejected(&body, 8);
    assert!(stderr.contains("retries"), "{stderr}");
}

#[test]
fn unknown_top_level_key_is_located() {
    let body = format!("name = \"w\"\nversion = 2\n{GOOD_TASK}");
    assert_rejected(&body, 2);
}

#[test]
fn missing_file_is_a_usage_error() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["run", "nope.toml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("nope.toml"));
}
