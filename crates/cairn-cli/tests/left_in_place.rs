//! A run whose `meta.json` is damaged: a command about it moves it to quarantine first, as a
//! listing does, instead of failing with advice (`cairn abandon`) that fails the same way;
//! and one that cannot be moved is left in place, named with what to do, while everything
//! else is still listed. The move is made to fail by a file where the quarantine folder
//! belongs, not by permissions, which root (the test user in CI) ignores.

mod common;

use common::{Sandbox, assert_contains, assert_lacks, text};

const DAMAGED: &str = r#"
name = "damaged"

[[task]]
id = "only"
run = "echo only"
"#;

const HEALTHY: &str = r#"
name = "healthy"

[[task]]
id = "only"
run = "echo only"
"#;

/// Runs `damaged.toml` and `healthy.toml` once each, then overwrites the damaged run's
/// `meta.json` with garbage. Returns the ids of the damaged and the healthy run.
fn damaged_beside_healthy(sandbox: &Sandbox) -> (String, String) {
    sandbox.write("damaged.toml", DAMAGED);
    sandbox.write("healthy.toml", HEALTHY);
    for workflow in ["damaged.toml", "healthy.toml"] {
        let output = sandbox.run(&["run", workflow, "--state-dir", ".cairn"]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    let id_of = |name: &str| {
        sandbox
            .runs()
            .iter()
            .find(|run| run["workflow"] == name)
            .and_then(|run| run["run_id"].as_str())
            .expect("the run is listed")
            .to_owned()
    };
    let (damaged, healthy) = (id_of("damaged"), id_of("healthy"));
    std::fs::write(
        sandbox.path(&format!(".cairn/runs/{damaged}/meta.json")),
        b"garbage, not JSON",
    )
    .expect("damage meta.json");
    (damaged, healthy)
}

#[test]
fn a_command_about_a_run_with_damaged_metadata_moves_it_to_quarantine_first() {
    for command in ["show", "resume", "abandon", "audit"] {
        let sandbox = Sandbox::new();
        let (run_id, _) = damaged_beside_healthy(&sandbox);
        let output = sandbox.run(&[command, &run_id, "--state-dir", ".cairn"]);
        let stderr = text(&output.stderr);
        assert!(
            !sandbox.path(&format!(".cairn/runs/{run_id}")).exists(),
            "{command} moved it: {stderr}"
        );
        assert_contains(&stderr, &format!("quarantine/{run_id}-"));
        // The advice to abandon it, which could never work on damaged metadata, is gone.
        assert_lacks(&stderr, "hint:");
        match command {
            "audit" => {
                assert_eq!(output.status.code(), Some(0), "{stderr}");
                assert_contains(&text(&output.stdout), "quarantined");
            }
            "abandon" => {
                assert_eq!(output.status.code(), Some(2), "{stderr}");
                assert_contains(&stderr, "there is nothing to abandon");
            }
            _ => {
                assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
                assert_contains(&stderr, &format!("run {run_id} is in quarantine"));
            }
        }
    }
}

#[test]
fn a_damaged_run_that_cannot_be_moved_is_left_in_place_and_the_others_are_listed() {
    let sandbox = Sandbox::new();
    let (damaged, healthy) = damaged_beside_healthy(&sandbox);
    let quarantine = sandbox.path(".cairn/quarantine");
    std::fs::remove_dir(&quarantine).expect("the quarantine folder is empty");
    std::fs::write(&quarantine, b"in the way").expect("a file in its place");
    let folder = format!(".cairn/runs/{damaged}");

    let listed = sandbox.run(&["runs", "--all", "--state-dir", ".cairn"]);
    let stderr = text(&listed.stderr);
    assert_eq!(listed.status.code(), Some(0), "{stderr}");
    assert_contains(&text(&listed.stdout), &healthy);
    assert_lacks(&text(&listed.stdout), &damaged);
    assert_contains(&stderr, &format!("run {damaged} is damaged"));
    assert_contains(&stderr, &format!("left in place at {folder}"));
    assert_contains(&stderr, "by hand");
    assert!(sandbox.path(&folder).join("meta.json").is_file(), "left");

    let json = sandbox.run(&["runs", "--all", "--json", "--state-dir", ".cairn"]);
    assert_eq!(json.status.code(), Some(0), "{}", text(&json.stderr));
    let line: serde_json::Value =
        serde_json::from_str(text(&json.stderr).trim()).expect("one JSON line");
    assert_eq!(line["event"], "run_left_in_place");
    assert_eq!(line["run_id"], damaged.as_str());
    assert_eq!(line["path"], folder.as_str());

    // A command about it says what is wrong and what to do, not to abandon it.
    let show = sandbox.run(&["show", &damaged, "--state-dir", ".cairn"]);
    let stderr = text(&show.stderr);
    assert_eq!(show.status.code(), Some(5), "{stderr}");
    assert_contains(&stderr, &format!("left in place at {folder}"));
    assert_lacks(&stderr, "cairn abandon");
    // Its audit log is where it was, and is printed, with the record that it stayed.
    let audit = sandbox.run(&["audit", &damaged, "--state-dir", ".cairn"]);
    assert_eq!(audit.status.code(), Some(0), "{}", text(&audit.stderr));
    assert_contains(&text(&audit.stderr), "left in place");
    assert_contains(&text(&audit.stdout), "begun");
    assert_contains(&text(&audit.stdout), "left_in_place");
}

/// A run whose `meta.json` cannot be read at all (a folder stands where it was) is left in
/// place, unmoved, and is not "no run": a plain `cairn run` of its workflow refuses to start
/// afresh (exit 3), since the fresh run could repeat what that run had done; another
/// workflow runs, and `--force` starts afresh on purpose.
#[test]
fn an_unreadable_run_stops_a_fresh_run_of_its_workflow_until_forced() {
    let sandbox = Sandbox::new();
    let (damaged, _) = damaged_beside_healthy(&sandbox);
    let meta = sandbox.path(&format!(".cairn/runs/{damaged}/meta.json"));
    std::fs::remove_file(&meta).expect("remove meta.json");
    std::fs::create_dir(&meta).expect("a folder where meta.json was");

    let output = sandbox.run(&["run", "damaged.toml", "--state-dir", ".cairn"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert_contains(&stderr, &format!("error: run {damaged} cannot be read"));
    assert_contains(&stderr, "no fresh run was started");
    assert_contains(&stderr, "pass --force");
    // With --json the refusal is also an event on stdout, for scripts.
    let json = sandbox.run(&["run", "damaged.toml", "--state-dir", ".cairn", "--json"]);
    assert_eq!(json.status.code(), Some(3), "{}", text(&json.stderr));
    let event: serde_json::Value =
        serde_json::from_str(text(&json.stdout).trim()).expect("one JSON line");
    assert_eq!(event["event"], "decision_needed");
    assert_eq!(event["status"], "unreadable");
    assert_eq!(event["run_id"], damaged.as_str());
    assert_contains(
        event["commands"]["force"].as_str().expect("force"),
        "--force",
    );
    let healthy = sandbox.run(&["run", "healthy.toml", "--state-dir", ".cairn"]);
    assert_eq!(healthy.status.code(), Some(0), "{}", text(&healthy.stderr));
    let forced = sandbox.run(&["run", "damaged.toml", "--state-dir", ".cairn", "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
    assert_lacks(&text(&forced.stderr), "no fresh run was started");
}
