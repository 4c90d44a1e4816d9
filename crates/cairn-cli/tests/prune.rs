//! `cairn runs prune --older-than DURATION [--dry-run]` with the real binary: old completed
//! and cancelled runs go with their output folders; failed, recent and running runs stay
//! (old failed runs are abandoned and go too with `--include-failed`);
//! `--dry-run` removes nothing; a run held by another process is skipped (exit 5) and goes
//! on the next prune; a bad duration is exit 2.
//!
//! Runs are made old by rewriting `finished_at` in the file adapter's `meta.json` (the
//! layout `cairn-checkpoint-file` documents), so no test waits on the clock.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{Sandbox, assert_contains, assert_lacks, text, wait_exit, wait_for};

const OK: &str = common::OK_WORKFLOW;
const FAILS: &str = common::FAILS_WORKFLOW;

/// Runs until the file `release` exists.
const BLOCKS: &str = r#"
name = "blocks"
[[task]]
id = "wait"
run = "echo started > started; while ! test -f release; do sleep 0.05; done"
"#;

/// 2001-09-09, long before any run of this test.
const LONG_AGO_MS: u64 = 1_000_000_000_000;

fn run_in_scope(sandbox: &Sandbox, workflow: &str, scope: &str) -> Output {
    sandbox.run(&["run", workflow, "--scope", scope])
}

/// The id of the one run of `scope`.
fn run_of_scope(sandbox: &Sandbox, scope: &str) -> String {
    let runs: Vec<_> = sandbox
        .runs()
        .into_iter()
        .filter(|run| run["scope"] == scope)
        .collect();
    assert_eq!(runs.len(), 1, "one run in scope {scope}: {runs:?}");
    runs[0]["run_id"].as_str().expect("run_id").to_owned()
}

fn run_dir(sandbox: &Sandbox, run_id: &str) -> PathBuf {
    sandbox.path(&format!(".cairn/runs/{run_id}"))
}

fn output_dir(sandbox: &Sandbox, run_id: &str) -> PathBuf {
    sandbox.path(&format!(".cairn/output/{run_id}"))
}

/// Makes a finished run look as if it finished long ago.
fn age(sandbox: &Sandbox, run_id: &str) {
    let path = run_dir(sandbox, run_id).join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("read meta.json")).expect("JSON");
    assert!(
        meta["finished_at"].is_u64(),
        "run {run_id} is finished: {meta}"
    );
    meta["finished_at"] = serde_json::json!(LONG_AGO_MS);
    std::fs::write(&path, serde_json::to_vec_pretty(&meta).unwrap()).expect("write meta.json");
}

fn status_of(sandbox: &Sandbox, run_id: &str) -> Option<String> {
    sandbox
        .runs()
        .into_iter()
        .find(|run| run["run_id"] == run_id)
        .map(|run| run["status"].as_str().expect("status").to_owned())
}

fn prune(sandbox: &Sandbox, extra: &[&str]) -> Output {
    let mut args = vec!["runs", "prune", "--state-dir", ".cairn"];
    args.extend_from_slice(extra);
    sandbox.run(&args)
}

/// The runs of one sandbox, by role.
struct Runs {
    old_completed: String,
    old_cancelled: String,
    old_failed: String,
    recent_completed: String,
    running: String,
}

/// Makes one run of each kind; the `blocks` run is left running (its driver is returned).
fn make_runs(sandbox: &Sandbox) -> (Runs, std::process::Child) {
    sandbox.write("ok.toml", OK);
    sandbox.write("fails.toml", FAILS);
    sandbox.write("blocks.toml", BLOCKS);
    for scope in ["old", "recent"] {
        let output = run_in_scope(sandbox, "ok.toml", scope);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    for scope in ["failed", "cancelled"] {
        let output = run_in_scope(sandbox, "fails.toml", scope);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    }
    let cancelled = run_of_scope(sandbox, "cancelled");
    let output = sandbox.run(&["abandon", &cancelled, "--state-dir", ".cairn"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let driver = sandbox.spawn(
        &["run", "blocks.toml", "--scope", "live"],
        "live.out",
        "live.err",
    );
    wait_for("the blocking task to start", || {
        sandbox.path("started").exists()
    });
    let runs = Runs {
        old_completed: run_of_scope(sandbox, "old"),
        old_cancelled: cancelled,
        old_failed: run_of_scope(sandbox, "failed"),
        recent_completed: run_of_scope(sandbox, "recent"),
        running: run_of_scope(sandbox, "live"),
    };
    assert_eq!(
        status_of(sandbox, &runs.old_cancelled).as_deref(),
        Some("cancelled")
    );
    assert_eq!(
        status_of(sandbox, &runs.old_failed).as_deref(),
        Some("failed")
    );
    assert_eq!(
        status_of(sandbox, &runs.running).as_deref(),
        Some("running")
    );
    for run_id in [&runs.old_completed, &runs.old_cancelled, &runs.old_failed] {
        age(sandbox, run_id);
    }
    (runs, driver)
}

fn release(sandbox: &Sandbox, mut driver: std::process::Child) {
    sandbox.touch("release");
    let status = wait_exit(&mut driver);
    assert_eq!(status.code(), Some(0), "{}", sandbox.read("live.err"));
}

#[test]
fn prune_removes_old_finished_runs_with_their_output_and_keeps_the_rest() {
    let sandbox = Sandbox::new();
    let (runs, driver) = make_runs(&sandbox);
    let kept = [&runs.old_failed, &runs.recent_completed, &runs.running];
    let pruned = [&runs.old_completed, &runs.old_cancelled];
    for run_id in pruned.iter().chain(&kept) {
        assert!(output_dir(&sandbox, run_id).is_dir(), "{run_id} has output");
    }

    // A dry run names what would go and removes nothing.
    let output = prune(&sandbox, &["--older-than", "1h", "--dry-run"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    for run_id in pruned {
        assert_contains(&stdout, &format!("would prune run {run_id} "));
    }
    for run_id in kept {
        assert_lacks(&stdout, run_id);
    }
    assert_contains(&stdout, "would prune 2 run(s), keep 3");
    assert_eq!(sandbox.runs().len(), 5, "a dry run removes nothing");
    for run_id in pruned.iter().chain(&kept) {
        assert!(
            run_dir(&sandbox, run_id).is_dir(),
            "{run_id} is still stored"
        );
        assert!(
            output_dir(&sandbox, run_id).is_dir(),
            "{run_id} kept its output"
        );
    }

    let output = prune(&sandbox, &["--older-than", "1d"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert_contains(
        &stdout,
        &format!(
            "pruned run {} (completed, workflow ok, scope old,",
            runs.old_completed
        ),
    );
    assert_contains(
        &stdout,
        &format!(
            "pruned run {} (cancelled, workflow fails, scope cancelled,",
            runs.old_cancelled
        ),
    );
    assert_contains(&stdout, "pruned 2 run(s), kept 3");
    for run_id in pruned {
        assert_eq!(status_of(&sandbox, run_id), None, "{run_id} is not listed");
        assert!(
            !run_dir(&sandbox, run_id).exists(),
            "{run_id}'s state is gone"
        );
        assert!(
            !output_dir(&sandbox, run_id).exists(),
            "{run_id}'s output folder is gone"
        );
        let shown = sandbox.run(&["show", run_id, "--state-dir", ".cairn"]);
        assert_eq!(shown.status.code(), Some(2), "{}", text(&shown.stderr));
    }
    for run_id in kept {
        assert!(status_of(&sandbox, run_id).is_some(), "{run_id} is kept");
        assert!(
            output_dir(&sandbox, run_id).is_dir(),
            "{run_id} kept its output"
        );
    }
    let hidden: Vec<_> = std::fs::read_dir(sandbox.path(".cairn/output"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with('.'))
        .collect();
    assert!(
        hidden.is_empty(),
        "nothing half-deleted is left: {hidden:?}"
    );

    // The running run is still driven to its end; the failed run can still be resumed.
    release(&sandbox, driver);
    assert_eq!(
        status_of(&sandbox, &runs.running).as_deref(),
        Some("completed")
    );
    let again = prune(&sandbox, &["--older-than", "1d"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_contains(&text(&again.stdout), "pruned 0 run(s), kept 3");
}

#[test]
fn include_failed_abandons_and_removes_old_failed_runs_only() {
    let sandbox = Sandbox::new();
    let (runs, driver) = make_runs(&sandbox);
    let output = run_in_scope(&sandbox, "fails.toml", "recent-failed");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let recent_failed = run_of_scope(&sandbox, "recent-failed");
    let pruned = [&runs.old_completed, &runs.old_cancelled, &runs.old_failed];
    let kept = [&recent_failed, &runs.recent_completed, &runs.running];

    // The dry run counts the old failed run as one to abandon and remove, and removes
    // nothing: its summary says `would_prune`, not `pruned`.
    let output = prune(
        &sandbox,
        &[
            "--older-than",
            "1d",
            "--include-failed",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let lines: Vec<serde_json::Value> = text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    let failed_line = lines
        .iter()
        .find(|line| line["run_id"] == runs.old_failed.as_str())
        .expect("the old failed run is named");
    assert_eq!(failed_line["event"], "would_prune");
    assert_eq!(failed_line["status"], "failed");
    assert_eq!(failed_line["abandoned"], true);
    let summary = &lines[3];
    assert_eq!(summary["event"], "summary");
    assert_eq!(
        (
            &summary["pruned"],
            &summary["would_prune"],
            &summary["kept"]
        ),
        (
            &serde_json::json!(0),
            &serde_json::json!(3),
            &serde_json::json!(3)
        )
    );
    assert_eq!(
        status_of(&sandbox, &runs.old_failed).as_deref(),
        Some("failed"),
        "a dry run abandons nothing"
    );

    let output = prune(&sandbox, &["--older-than", "1d", "--include-failed"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert_contains(
        &stdout,
        &format!(
            "pruned run {} (failed, abandoned, then removed, workflow fails, scope failed,",
            runs.old_failed
        ),
    );
    assert_contains(&stdout, "pruned 3 run(s), kept 3");
    for run_id in pruned {
        assert_eq!(status_of(&sandbox, run_id), None, "{run_id} is not listed");
        assert!(!run_dir(&sandbox, run_id).exists(), "{run_id} is gone");
        assert!(
            !output_dir(&sandbox, run_id).exists(),
            "{run_id}'s output is gone"
        );
    }
    // A failed run newer than the cutoff still waits for a decision; the live run is
    // untouched whatever the flags.
    assert_eq!(
        status_of(&sandbox, &recent_failed).as_deref(),
        Some("failed")
    );
    for run_id in kept {
        assert!(
            output_dir(&sandbox, run_id).is_dir(),
            "{run_id} kept its output"
        );
    }
    release(&sandbox, driver);
    assert_eq!(
        status_of(&sandbox, &runs.running).as_deref(),
        Some("completed")
    );
}

#[test]
fn prune_skips_a_run_another_process_holds_and_takes_it_next_time() {
    let sandbox = Sandbox::new();
    sandbox.write("ok.toml", OK);
    for scope in ["held", "free"] {
        let output = run_in_scope(&sandbox, "ok.toml", scope);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    let held = run_of_scope(&sandbox, "held");
    let free = run_of_scope(&sandbox, "free");
    age(&sandbox, &held);
    age(&sandbox, &free);

    // This test process holds the run's writer lock, as a live `cairn` process would.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(run_dir(&sandbox, &held).join("lock"))
        .expect("the run's lock file");
    lock.try_lock().expect("nobody else holds the lock");
    let output = prune(&sandbox, &["--older-than", "1h", "--json"]);
    assert_eq!(output.status.code(), Some(5), "{}", text(&output.stderr));
    assert_contains(&text(&output.stderr), &format!("skipped run {held}: "));
    let lines: Vec<serde_json::Value> = text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["event"], "pruned");
    assert_eq!(lines[0]["run_id"], free.as_str());
    assert_eq!(lines[0]["status"], "completed");
    assert_eq!(lines[0]["output_removed"], true);
    assert_eq!(lines[1]["event"], "summary");
    assert_eq!(
        (
            &lines[1]["pruned"],
            &lines[1]["would_prune"],
            &lines[1]["kept"],
            &lines[1]["skipped"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(0),
            &serde_json::json!(1),
            &serde_json::json!(1)
        )
    );
    assert_eq!(status_of(&sandbox, &held).as_deref(), Some("completed"));
    assert!(
        output_dir(&sandbox, &held).is_dir(),
        "a skipped run keeps its output"
    );

    drop(lock);
    let output = prune(&sandbox, &["--older-than", "1h"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_contains(&text(&output.stdout), &format!("pruned run {held} "));
    assert!(sandbox.runs().is_empty());
}

#[test]
fn bad_usage_exits_2_and_removes_nothing() {
    let sandbox = Sandbox::new();
    sandbox.write("ok.toml", OK);
    let output = run_in_scope(&sandbox, "ok.toml", "s");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let run_id = run_of_scope(&sandbox, "s");
    age(&sandbox, &run_id);
    for bad in ["3 weeks", "0s", "1y", "", "d"] {
        let output = prune(&sandbox, &["--older-than", bad]);
        assert_eq!(output.status.code(), Some(2), "--older-than {bad:?}");
        assert_contains(&text(&output.stderr), "--older-than");
    }
    let output = prune(&sandbox, &[]);
    assert_eq!(output.status.code(), Some(2), "--older-than is required");
    let output = sandbox.run(&["runs", "--all", "prune", "--older-than", "1d"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "runs flags do not go with prune"
    );
    let output = sandbox.run(&[
        "runs",
        "prune",
        "--older-than",
        "1d",
        "--state-dir",
        "missing",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert_eq!(status_of(&sandbox, &run_id).as_deref(), Some("completed"));
}

/// Sets `path`'s modification time to two hours ago, older than a prune's minimum age for an
/// output folder with no run.
fn make_stale(path: &std::path::Path) {
    let status = std::process::Command::new("touch")
        .args(["-d", "2 hours ago"])
        .arg(path)
        .status()
        .expect("run touch");
    assert!(status.success());
}

#[test]
fn prune_removes_output_folders_whose_run_is_gone_and_only_those() {
    let sandbox = Sandbox::new();
    sandbox.write("ok.toml", OK);
    for scope in ["orphan", "young", "kept", "damaged"] {
        let output = run_in_scope(&sandbox, "ok.toml", scope);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    }
    let orphan = run_of_scope(&sandbox, "orphan");
    let young = run_of_scope(&sandbox, "young");
    let kept = run_of_scope(&sandbox, "kept");
    let damaged = run_of_scope(&sandbox, "damaged");
    // A prune cut short between removing the runs and their folders leaves the folders.
    for run_id in [&orphan, &young] {
        std::fs::remove_dir_all(run_dir(&sandbox, run_id)).expect("remove the run's state");
    }
    // A damaged run is quarantined when the prune lists the runs: its output stays.
    std::fs::write(run_dir(&sandbox, &damaged).join("meta.json"), b"{ not json")
        .expect("damage meta.json");
    std::fs::create_dir_all(sandbox.path(".cairn/output/notes")).unwrap();
    for run_id in [&orphan, &kept, &damaged] {
        make_stale(&output_dir(&sandbox, run_id));
    }
    make_stale(&sandbox.path(".cairn/output/notes"));

    let dry = prune(&sandbox, &["--older-than", "1h", "--dry-run"]);
    let stdout = text(&dry.stdout);
    assert_eq!(dry.status.code(), Some(0), "{stdout}{}", text(&dry.stderr));
    assert_contains(
        &stdout,
        &format!("would remove output folder .cairn/output/{orphan} "),
    );
    assert_contains(&stdout, &format!("(its run {orphan} no longer exists)"));
    assert!(
        output_dir(&sandbox, &orphan).exists(),
        "a dry run removed it"
    );
    assert_lacks(&stdout, "notes");
    assert_lacks(&stdout, &young);
    assert_lacks(&stdout, &kept);

    let json = prune(&sandbox, &["--older-than", "1h", "--json"]);
    let stdout = text(&json.stdout);
    assert_eq!(
        json.status.code(),
        Some(0),
        "{stdout}{}",
        text(&json.stderr)
    );
    let removed: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == "orphaned_output_removed")
        .collect();
    assert_eq!(removed.len(), 1, "{stdout}");
    assert_eq!(removed[0]["run_id"], orphan.as_str());
    assert!(!output_dir(&sandbox, &orphan).exists(), "{stdout}");
    // A young folder may be a run that is beginning; the others have a run, or are not ours.
    for run_id in [&young, &kept, &damaged] {
        assert!(
            output_dir(&sandbox, run_id).exists(),
            "{run_id} went: {stdout}"
        );
    }
    assert!(sandbox.path(".cairn/output/notes").exists());
    assert_eq!(status_of(&sandbox, &kept).as_deref(), Some("completed"));

    // Even with a cutoff of a millisecond, a folder changed within the hour stays.
    let soon = prune(&sandbox, &["--older-than", "1ms"]);
    assert_eq!(soon.status.code(), Some(0), "{}", text(&soon.stderr));
    assert!(
        output_dir(&sandbox, &young).exists(),
        "{}",
        text(&soon.stdout)
    );
}
