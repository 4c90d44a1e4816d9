//! Control characters in a scope never reach the terminal: a new `--scope` with them is
//! refused (exit 2) before anything is created, and the scope of a run stored before that
//! check (or by another tool) is shown escaped in every view. An empty or overlong scope is
//! refused the same way.

mod common;

use common::{Sandbox, assert_contains, assert_lacks, text};

const ONE_TASK: &str = r#"
name = "scoped"

[[task]]
id = "only"
run = "echo only >> log"
"#;

const HOSTILE: &str = "a\u{1b}[31mred";

#[test]
fn a_scope_with_control_characters_is_refused() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", ONE_TASK);
    for scope in [HOSTILE, "two\nlines", "tab\there"] {
        let output = sandbox.run(&["run", "wf.toml", "--scope", scope]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert_contains(&stderr, "--scope must not contain control characters");
        assert_lacks(&stderr, "\u{1b}");
    }
    assert_contains(
        &text(&sandbox.run(&["run", "wf.toml", "--scope", HOSTILE]).stderr),
        "a\\u{1b}[31mred",
    );
    assert!(sandbox.read("log").is_empty(), "nothing ran");
    assert!(
        !sandbox.path(".cairn").exists(),
        "nothing was created for the refused run"
    );
}

#[test]
fn a_stored_scope_with_control_characters_is_shown_escaped() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", ONE_TASK);
    let output = sandbox.run(&["run", "wf.toml", "--scope", "plain"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let run_id = sandbox.only_run_id();
    // What a run stored before the check looks like.
    let meta_path = sandbox.path(&format!(".cairn/runs/{run_id}/meta.json"));
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).expect("meta.json"))
            .expect("meta.json is JSON");
    meta["scope"] = serde_json::json!(HOSTILE);
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).expect("write meta.json");

    for args in [
        vec!["runs", "--all", "--state-dir", ".cairn"],
        vec!["show", run_id.as_str(), "--state-dir", ".cairn"],
        vec![
            "runs",
            "prune",
            "--older-than",
            "1ms",
            "--dry-run",
            "--state-dir",
            ".cairn",
        ],
    ] {
        let output = sandbox.run(&args);
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert_lacks(&stdout, "\u{1b}");
        assert_lacks(&stderr, "\u{1b}");
        // The listing cuts the scope to its column's width.
        assert_contains(&stdout, "a\\u{1b}[31m");
    }
    let show = sandbox.run(&["show", &run_id, "--state-dir", ".cairn"]);
    assert_contains(&text(&show.stdout), "(scope a\\u{1b}[31mred)");
    // JSON keeps the exact value, escaped by JSON itself.
    let json = sandbox.run(&["runs", "--all", "--json", "--state-dir", ".cairn"]);
    assert_lacks(&text(&json.stdout), "\u{1b}");
    assert_eq!(sandbox.runs()[0]["scope"], HOSTILE);
}

#[test]
fn an_empty_or_overlong_scope_is_refused() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", ONE_TASK);
    let empty = sandbox.run(&["run", "wf.toml", "--scope", ""]);
    let stderr = text(&empty.stderr);
    assert_eq!(empty.status.code(), Some(2), "{stderr}");
    assert_contains(&stderr, "--scope must not be empty");

    let long = "s".repeat(257);
    let overlong = sandbox.run(&["run", "wf.toml", "--scope", &long]);
    let stderr = text(&overlong.stderr);
    assert_eq!(overlong.status.code(), Some(2), "{stderr}");
    assert_contains(
        &stderr,
        "--scope is 257 bytes long; at most 256 are allowed",
    );
    assert!(sandbox.read("log").is_empty(), "nothing ran");
    assert!(
        !sandbox.path(".cairn").exists(),
        "nothing was created for the refused runs"
    );

    // The longest scope allowed runs.
    let longest = "s".repeat(256);
    let output = sandbox.run(&["run", "wf.toml", "--scope", &longest]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(sandbox.read("log"), "only\n");
}
