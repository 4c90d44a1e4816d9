//! A run whose stored state is damaged is quarantined by the store when a command meets it;
//! the CLI says so: `cairn runs` names each run it moved (why, and where to), and `show`,
//! `audit` and `resume` of a quarantined id say it is in quarantine and where, instead of
//! "no run", and `abandon` gives up its lost progress. A run quarantined before it finished
//! makes the next `cairn run` ask instead of running every task again.

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

    for command in ["show", "resume"] {
        let output = sandbox.run(&[command, &run_id, "--state-dir", ".cairn"]);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{command}: {stderr}");
        assert_contains(&stderr, &format!("run {run_id} is in quarantine"));
        assert_contains(&stderr, &format!("quarantine/{run_id}-"));
        assert_lacks(&stderr, "no run");
    }
    // Its metadata is garbage, so it belongs to no workflow: nothing asks about it, and
    // there is nothing to abandon.
    let abandon = sandbox.run(&["abandon", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(abandon.status.code(), Some(2), "{}", text(&abandon.stderr));
    assert_contains(&text(&abandon.stderr), "there is nothing to abandon");
    assert_contains(&text(&abandon.stderr), &format!("quarantine/{run_id}-"));
    // Its audit log is still there, and is printed, with the note on stderr.
    let audit = sandbox.run(&["audit", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(audit.status.code(), Some(0), "{}", text(&audit.stderr));
    assert_contains(&text(&audit.stderr), "is in quarantine");
    assert_contains(&text(&audit.stdout), "quarantined");
}

/// A stray file where a run's folder belongs is quarantined as a file: it never had an audit
/// log, so the advice and `cairn audit` point at its quarantine record instead of promising a
/// log.
#[test]
fn a_stray_file_in_a_runs_place_is_audited_by_its_quarantine_record() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", ONE_TASK);
    assert_eq!(sandbox.run(&["run", "wf.toml"]).status.code(), Some(0));
    sandbox.write(".cairn/runs/strayrun", "junk");

    let listed = sandbox.run(&["runs", "--state-dir", ".cairn"]);
    let stderr = text(&listed.stderr);
    assert_eq!(listed.status.code(), Some(0), "{stderr}");
    assert_contains(&stderr, "a file, not a run folder");
    assert_contains(
        &stderr,
        "`cairn audit strayrun` prints what is recorded about it",
    );
    assert_lacks(&stderr, "prints its audit log");

    let audit = sandbox.run(&["audit", "strayrun", "--state-dir", ".cairn"]);
    assert_eq!(audit.status.code(), Some(0), "{}", text(&audit.stderr));
    assert_contains(&text(&audit.stderr), "run strayrun is in quarantine");
    assert_contains(&text(&audit.stderr), "quarantine/strayrun-");
    assert_contains(
        &text(&audit.stdout),
        "run strayrun has no audit log of its own; the note above is its quarantine record",
    );
    assert!(
        std::fs::read_dir(sandbox.path(".cairn/quarantine"))
            .unwrap()
            .any(|entry| entry
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("strayrun-")),
        "the stray file is kept in quarantine"
    );
}

const TWO_TASKS: &str = r#"
name = "lossy"

[[task]]
id = "first"
run = "echo first >> log"

[[task]]
id = "second"
run = "echo second >> log"
depends_on = ["first"]
"#;

/// The lines the workflow's tasks appended to `log`.
fn log_lines(sandbox: &Sandbox) -> usize {
    std::fs::read_to_string(sandbox.path("log"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// A run left `running` by a driver that is gone, whose snapshot is of an older format
/// version this build does not read: the next `cairn run` claims it to recover it, and the
/// store quarantines it.
fn interrupted_with_unusable_state(sandbox: &Sandbox) -> String {
    interrupted_with_queue_format(sandbox, 0)
}

/// A run left `running` by a driver that is gone, whose `queue.json` has format `version`.
fn interrupted_with_queue_format(sandbox: &Sandbox, version: u32) -> String {
    let run_id = interrupted_after_both_tasks(sandbox);
    let queue = serde_json::json!({
        "format_version": version, "run_id": run_id, "covers_seq": 0, "snapshot": {},
    });
    let dir = sandbox.path(&format!(".cairn/runs/{run_id}"));
    std::fs::write(dir.join("queue.json"), queue.to_string()).expect("write queue.json");
    run_id
}

/// A run of [`TWO_TASKS`] that did both tasks, then made to read as left `running` by a
/// driver that is gone.
fn interrupted_after_both_tasks(sandbox: &Sandbox) -> String {
    sandbox.write("wf.toml", TWO_TASKS);
    let output = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(log_lines(sandbox), 2);
    let run_id = sandbox.only_run_id();
    let dir = sandbox.path(&format!(".cairn/runs/{run_id}"));
    let meta_path = dir.join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).expect("meta.json")).expect("JSON");
    meta["status"] = "running".into();
    meta["finished_at"] = serde_json::Value::Null;
    std::fs::write(&meta_path, serde_json::to_vec(&meta).expect("JSON")).expect("write meta");
    run_id
}

/// A folder where one of an interrupted run's files belongs (outside damage): the first
/// `cairn run` that meets it moves the run to quarantine and asks, as for any quarantined
/// run, and an abandon settles it. Before (review 50 F2), every command failed with exit 5
/// and the bare OS error, for good.
#[test]
fn a_folder_where_a_run_file_belongs_is_quarantined_and_the_next_run_asks() {
    for file in ["journal", "lock", "meta.lock"] {
        let sandbox = Sandbox::new();
        let run_id = interrupted_after_both_tasks(&sandbox);
        let path = sandbox.path(&format!(".cairn/runs/{run_id}/{file}"));
        let _ = std::fs::remove_file(&path);
        std::fs::create_dir(&path).unwrap();

        let asked = sandbox.run(&["run", "wf.toml"]);
        let stderr = text(&asked.stderr);
        assert_eq!(asked.status.code(), Some(3), "{file}: {stderr}");
        assert_contains(
            &stderr,
            &format!("a folder stands where its {file} belongs"),
        );
        assert_contains(&stderr, &format!("{run_id}, was quarantined while running"));
        assert_contains(&stderr, &format!("cairn abandon {run_id}"));
        assert_eq!(log_lines(&sandbox), 2, "{file}: nothing ran");

        let abandon = sandbox.run(&["abandon", &run_id]);
        assert_eq!(abandon.status.code(), Some(0), "{}", text(&abandon.stderr));
        let fresh = sandbox.run(&["run", "wf.toml"]);
        assert_eq!(fresh.status.code(), Some(0), "{}", text(&fresh.stderr));
        assert_eq!(
            log_lines(&sandbox),
            4,
            "{file}: the fresh run ran both tasks"
        );
    }
}

/// `cairn abandon` and `cairn resume` meeting such a folder first: the abandon abandons the
/// run it moved to quarantine (exit 0), the resume refuses it as quarantined (exit 2).
#[test]
fn abandon_and_resume_that_meet_a_folder_in_a_run_answer_for_the_quarantined_run() {
    let sandbox = Sandbox::new();
    let run_id = interrupted_after_both_tasks(&sandbox);
    let journal = sandbox.path(&format!(".cairn/runs/{run_id}/journal"));
    std::fs::remove_file(&journal).unwrap();
    std::fs::create_dir(&journal).unwrap();
    let resumed = sandbox.run(&["resume", &run_id]);
    let stderr = text(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(2), "{stderr}");
    assert_contains(&stderr, "a folder stands where its journal belongs");
    assert_contains(&stderr, &format!("run {run_id} is in quarantine"));

    let sandbox = Sandbox::new();
    let run_id = interrupted_after_both_tasks(&sandbox);
    let lock = sandbox.path(&format!(".cairn/runs/{run_id}/lock"));
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    let abandon = sandbox.run(&["abandon", &run_id]);
    assert_eq!(abandon.status.code(), Some(0), "{}", text(&abandon.stderr));
    assert_contains(
        &text(&abandon.stderr),
        "a folder stands where its lock belongs",
    );
    assert_contains(
        &text(&abandon.stdout),
        &format!("abandoned quarantined run {run_id} (was running)"),
    );
    let fresh = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(fresh.status.code(), Some(0), "{}", text(&fresh.stderr));
}

#[test]
fn a_run_quarantined_before_it_finished_makes_the_next_run_ask() {
    let sandbox = Sandbox::new();
    let run_id = interrupted_with_unusable_state(&sandbox);

    // The recovery attempt finds the state unusable and quarantines it.
    let recovery = sandbox.run(&["run", "wf.toml"]);
    assert_ne!(
        recovery.status.code(),
        Some(0),
        "{}",
        text(&recovery.stderr)
    );
    assert_contains(&text(&recovery.stderr), "quarantine");
    assert_eq!(log_lines(&sandbox), 2, "nothing ran");

    // Before this check, this run started afresh and ran both tasks again.
    let asked = sandbox.run(&["run", "wf.toml"]);
    let stderr = text(&asked.stderr);
    assert_eq!(asked.status.code(), Some(3), "{stderr}");
    assert_contains(&stderr, &format!("{run_id}, was quarantined while running"));
    assert_contains(&stderr, &format!("quarantine/{run_id}-"));
    assert_contains(&stderr, &format!("cairn abandon {run_id}"));
    assert_contains(&stderr, "--force");
    assert_eq!(log_lines(&sandbox), 2, "nothing ran");

    let json = sandbox.run(&["run", "wf.toml", "--json"]);
    assert_eq!(json.status.code(), Some(3), "{}", text(&json.stderr));
    let line: serde_json::Value =
        serde_json::from_str(text(&json.stdout).lines().last().expect("a JSON line"))
            .expect("JSON");
    assert_eq!(line["event"], "decision_needed");
    assert_eq!(line["status"], "quarantined");
    assert_eq!(line["was"], "running");
    assert_eq!(line["run_id"], run_id.as_str());
    assert_eq!(log_lines(&sandbox), 2, "nothing ran");

    let listed = sandbox.run(&["runs", "--quarantined"]);
    assert_eq!(listed.status.code(), Some(0), "{}", text(&listed.stderr));
    let row = text(&listed.stdout)
        .lines()
        .find(|line| line.starts_with(&run_id))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("{run_id} listed: {}", text(&listed.stdout)));
    assert_contains(&row, "running");
    assert_contains(&row, "lossy");
    assert_contains(&row, "format version 0");
    assert!(row.contains("  no  "), "not settled yet: {row}");

    let abandon = sandbox.run(&["abandon", &run_id]);
    assert_eq!(abandon.status.code(), Some(0), "{}", text(&abandon.stderr));
    let json = sandbox.run(&["runs", "--quarantined", "--json"]);
    assert_eq!(json.status.code(), Some(0), "{}", text(&json.stderr));
    let entry: serde_json::Value =
        serde_json::from_str(text(&json.stdout).trim()).expect("one JSON line");
    assert_eq!(entry["run_id"], run_id.as_str());
    assert_eq!(entry["was"], "running");
    assert_eq!(entry["workflow"], "lossy");
    assert!(entry["settled_at_ms"].as_u64().is_some(), "{entry}");
    let again = sandbox.run(&["abandon", &run_id]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    assert_contains(&text(&again.stderr), "was already settled");
    assert!(
        entry["location"]
            .as_str()
            .is_some_and(|l| l.contains(&format!("quarantine/{run_id}-"))),
        "{entry}"
    );
    assert_contains(
        &text(&abandon.stdout),
        &format!("abandoned quarantined run {run_id} (was running)"),
    );
    let fresh = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(fresh.status.code(), Some(0), "{}", text(&fresh.stderr));
    assert_eq!(log_lines(&sandbox), 4, "the fresh run ran both tasks");
}

#[test]
fn force_runs_afresh_past_a_quarantined_run() {
    let sandbox = Sandbox::new();
    interrupted_with_unusable_state(&sandbox);
    let recovery = sandbox.run(&["run", "wf.toml"]);
    assert_ne!(recovery.status.code(), Some(0));
    let forced = sandbox.run(&["run", "wf.toml", "--force"]);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
    assert_eq!(log_lines(&sandbox), 4);
    assert_contains(&text(&forced.stdout), "past quarantined run");
    assert_lacks(&text(&forced.stdout), "resume it by id");
    // The forced run finished, so it supersedes the quarantined one: no question any more.
    let next = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(next.status.code(), Some(0), "{}", text(&next.stderr));
    assert_eq!(log_lines(&sandbox), 6);
}

/// A run a newer cairn build wrote (after a rollback): `cairn run` refuses with what to do,
/// leaves the run exactly where it is and begins nothing, every time (review 52 F4: a build
/// used to call such state corruption, quarantine it and run every task again).
#[test]
fn a_run_a_newer_build_wrote_is_left_in_place_and_nothing_begins() {
    let sandbox = Sandbox::new();
    let run_id = interrupted_with_queue_format(&sandbox, 999);
    for _ in 0..2 {
        let output = sandbox.run(&["run", "wf.toml"]);
        let stderr = text(&output.stderr);
        assert_ne!(output.status.code(), Some(0), "{stderr}");
        assert_contains(&stderr, "newer cairn build");
        assert_contains(&stderr, &run_id);
        assert_eq!(log_lines(&sandbox), 2, "nothing ran");
        assert_eq!(sandbox.only_run_id(), run_id, "no other run began");
    }
    let quarantined = sandbox.run(&["runs", "--quarantined"]);
    assert!(
        !text(&quarantined.stdout).contains(&run_id),
        "{}",
        text(&quarantined.stdout)
    );
    assert!(
        sandbox
            .path(&format!(".cairn/runs/{run_id}/queue.json"))
            .exists()
    );
}

/// `cairn show` and `cairn runs` do not advise `cairn resume` or `cairn abandon` for a run a
/// newer build wrote, since both refuse it: they name the newer build instead.
#[test]
fn show_and_runs_name_the_newer_build_instead_of_advising_a_resume() {
    let sandbox = Sandbox::new();
    let run_id = interrupted_with_queue_format(&sandbox, 999);
    let show = sandbox.run(&["show", &run_id]);
    assert_eq!(show.status.code(), Some(0), "{}", text(&show.stderr));
    let stdout = text(&show.stdout);
    assert_contains(&stdout, "written by a newer cairn build");
    assert_lacks(&stdout, "goes on with it");
    let resume = sandbox.run(&["resume", &run_id]);
    assert_ne!(
        resume.status.code(),
        Some(0),
        "resume refuses, as show says"
    );

    let meta_path = sandbox.path(&format!(".cairn/runs/{run_id}/meta.json"));
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).expect("meta.json")).expect("JSON");
    meta["format_version"] = 7.into();
    std::fs::write(&meta_path, serde_json::to_vec(&meta).expect("JSON")).expect("write meta");
    let runs = sandbox.run(&["runs"]);
    assert_eq!(runs.status.code(), Some(0), "{}", text(&runs.stderr));
    let stdout = text(&runs.stdout);
    let row = stdout
        .lines()
        .find(|line| line.starts_with(&run_id))
        .unwrap_or_else(|| panic!("{run_id} is listed: {stdout}"));
    assert_contains(row, "newer build");
    assert_lacks(&stdout, "interrupted");
    assert_contains(&stdout, "with that build or a later one");
}
