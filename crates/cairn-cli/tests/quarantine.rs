//! A run whose stored state is damaged is quarantined by the store when a command meets it;
//! the CLI says so: `cairn runs` names each run it moved (why, and where to), and `show`,
//! `audit`, `resume` and `abandon` of a quarantined id say it is in quarantine and where,
//! instead of "no run".

mod common;

use common::{Sandbox, assert_contains, assert_lacks, text};

const ONE_TASK: &str = r#"
name = "damaged"

[[task]]
id = "only"
run = "echo only >> log"
"#;

/// A completed run whose `meta.json` is then overwritten with garbage. Returns its id.
fn damaged_run(sandbox: &Sandbox) -> String {
    sandbox.write("wf.toml", ONE_TASK);
    let output = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let run_id = sandbox.only_run_id();
    std::fs::write(
        sandbox.path(&format!(".cairn/runs/{run_id}/meta.json")),
        b"garbage, not JSON",
    )
    .expect("damage meta.json");
    run_id
}

#[test]
fn runs_names_each_run_it_quarantined() {
    let sandbox = Sandbox::new();
    let run_id = damaged_run(&sandbox);

    let listed = sandbox.run(&["runs", "--state-dir", ".cairn"]);
    let stderr = text(&listed.stderr);
    assert_eq!(listed.status.code(), Some(0), "{stderr}");
    assert_contains(&stderr, &format!("run {run_id} is in quarantine"));
    assert_contains(&stderr, "meta.json");
    assert_contains(&stderr, &format!("quarantine/{run_id}-"));
    assert!(
        !sandbox.path(&format!(".cairn/runs/{run_id}")).exists(),
        "the store moved it"
    );
    // Said once, by the listing that moved it.
    let again = sandbox.run(&["runs", "--state-dir", ".cairn"]);
    assert_lacks(&text(&again.stderr), "quarantine");

    let json = sandbox.run(&["runs", "--all", "--json", "--state-dir", ".cairn"]);
    assert_eq!(json.status.code(), Some(0));
    assert!(text(&json.stdout).is_empty(), "{}", text(&json.stdout));
}

#[test]
fn runs_json_reports_a_quarantine_as_a_json_line_on_stderr() {
    let sandbox = Sandbox::new();
    let run_id = damaged_run(&sandbox);
    let listed = sandbox.run(&["runs", "--all", "--json", "--state-dir", ".cairn"]);
    assert_eq!(listed.status.code(), Some(0));
    assert!(text(&listed.stdout).is_empty(), "{}", text(&listed.stdout));
    let line: serde_json::Value =
        serde_json::from_str(text(&listed.stderr).trim()).expect("one JSON line");
    assert_eq!(line["event"], "run_quarantined");
    assert_eq!(line["run_id"], run_id.as_str());
    assert!(
        line["location"]
            .as_str()
            .is_some_and(|l| l.contains("quarantine")),
        "{line}"
    );
}

#[test]
fn commands_about_a_quarantined_run_say_where_it_went() {
    let sandbox = Sandbox::new();
    let run_id = damaged_run(&sandbox);
    let listed = sandbox.run(&["runs", "--state-dir", ".cairn"]);
    assert_eq!(listed.status.code(), Some(0));

    for command in ["show", "resume", "abandon"] {
        let output = sandbox.run(&[command, &run_id, "--state-dir", ".cairn"]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert_contains(&stderr, &format!("run {run_id} is in quarantine"));
        assert_contains(&stderr, &format!("quarantine/{run_id}-"));
        assert_lacks(&stderr, "no run");
    }
    // Its audit log is still there, and is printed, with the note on stderr.
    let audit = sandbox.run(&["audit", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(audit.status.code(), Some(0), "{}", text(&audit.stderr));
    assert_contains(&text(&audit.stderr), "is in quarantine");
    assert_contains(&text(&audit.stdout), "quarantined");
}
