//! `cairn runs --status/--workflow/--scope/--since/--limit` with the real binary: each option
//! narrows the listing, `running` and `interrupted` are told apart by the writer lock, the
//! finished statuses need no `--all`, and bad values are usage errors (exit 2). Also: every
//! `--json` line has both `error` and `earlier_error`.

mod common;

use std::collections::BTreeSet;
use std::process::Child;

use common::{Sandbox, alive, assert_contains, assert_lacks, signal, text, wait_exit, wait_for};

const OK: &str = common::OK_WORKFLOW;
const FAILS: &str = common::FAILS_WORKFLOW;

/// A workflow whose one task writes its process group id to `<name>.started` and waits for
/// `release`.
fn blocking(name: &str) -> String {
    format!(
        r#"
name = "{name}"
[[task]]
id = "wait"
run = "echo $$ > {name}.tmp; mv {name}.tmp {name}.started; while ! test -f release; do sleep 0.05; done"
"#
    )
}

/// The run ids `cairn runs --json ARGS` lists, in order, checking each line parses.
fn listed(sandbox: &Sandbox, args: &[&str]) -> Vec<String> {
    let mut all = vec!["runs", "--json", "--state-dir", ".cairn"];
    all.extend_from_slice(args);
    let output = sandbox.run(&all);
    assert_eq!(
        output.status.code(),
        Some(0),
        "cairn runs {args:?}: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            let object = value.as_object().expect("an object");
            assert!(
                object.contains_key("error") && object.contains_key("earlier_error"),
                "both error keys on every line: {line}"
            );
            value["run_id"].as_str().expect("run_id").to_owned()
        })
        .collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|id| (*id).clone()).collect()
}

fn run_of_scope(sandbox: &Sandbox, scope: &str) -> String {
    let found = listed(sandbox, &["--all", "--scope", scope]);
    assert_eq!(found.len(), 1, "one run in scope {scope}: {found:?}");
    found[0].clone()
}

struct Runs {
    completed: String,
    failed: String,
    cancelled: String,
    interrupted: String,
    live: String,
}

/// One run of each status; the live run's driver is returned.
fn make_runs(sandbox: &Sandbox) -> (Runs, Child) {
    sandbox.write("ok.toml", OK);
    sandbox.write("fails.toml", FAILS);
    sandbox.write("crashes.toml", &blocking("crashes"));
    sandbox.write("blocks.toml", &blocking("blocks"));
    let code = |args: &[&str]| sandbox.run(args).status.code();
    assert_eq!(code(&["run", "ok.toml", "--scope", "a"]), Some(0));
    assert_eq!(code(&["run", "fails.toml", "--scope", "b"]), Some(1));
    assert_eq!(code(&["run", "fails.toml", "--scope", "c"]), Some(1));
    let cancelled = run_of_scope(sandbox, "c");
    assert_eq!(
        code(&["abandon", &cancelled, "--state-dir", ".cairn"]),
        Some(0)
    );
    // Killed with SIGKILL mid-task: stored as running, and nobody holds it.
    let mut crashed = sandbox.spawn(&["run", "crashes.toml", "--scope", "d"], "d.out", "d.err");
    wait_for("the crashing run's task", || {
        sandbox.path("crashes.started").exists()
    });
    signal(i64::from(crashed.id()), "KILL");
    wait_exit(&mut crashed);
    let live = sandbox.spawn(&["run", "blocks.toml", "--scope", "e"], "e.out", "e.err");
    wait_for("the live run's task", || {
        sandbox.path("blocks.started").exists()
    });
    let runs = Runs {
        completed: run_of_scope(sandbox, "a"),
        failed: run_of_scope(sandbox, "b"),
        cancelled,
        interrupted: run_of_scope(sandbox, "d"),
        live: run_of_scope(sandbox, "e"),
    };
    (runs, live)
}

#[test]
fn each_option_narrows_the_listing() {
    let sandbox = Sandbox::new();
    let (runs, mut live) = make_runs(&sandbox);

    // The default hides the finished runs; --all shows every one, oldest first.
    assert_eq!(
        set(&listed(&sandbox, &[]).iter().collect::<Vec<_>>()),
        set(&[&runs.failed, &runs.interrupted, &runs.live])
    );
    let everything = listed(&sandbox, &["--all"]);
    assert_eq!(everything.len(), 5, "{everything:?}");
    assert_eq!(
        everything.last(),
        Some(&runs.live),
        "oldest first: {everything:?}"
    );

    let by = |args: &[&str]| listed(&sandbox, args);
    assert_eq!(by(&["--status", "failed"]), vec![runs.failed.clone()]);
    assert_eq!(
        by(&["--status", "interrupted"]),
        vec![runs.interrupted.clone()]
    );
    assert_eq!(by(&["--status", "running"]), vec![runs.live.clone()]);
    assert_eq!(
        set(&by(&["--status", "completed,cancelled"])
            .iter()
            .collect::<Vec<_>>()),
        set(&[&runs.completed, &runs.cancelled]),
        "finished statuses need no --all"
    );
    assert_eq!(by(&["--status", "abandoned"]), vec![runs.cancelled.clone()]);
    assert_eq!(
        set(&by(&["--status", "failed", "--status", "running"])
            .iter()
            .collect::<Vec<_>>()),
        set(&[&runs.failed, &runs.live])
    );
    assert_eq!(by(&["--workflow", "fails"]), vec![runs.failed.clone()]);
    assert_eq!(
        set(&by(&["--workflow", "fails", "--all"])
            .iter()
            .collect::<Vec<_>>()),
        set(&[&runs.failed, &runs.cancelled])
    );
    assert_eq!(by(&["--scope", "a", "--all"]), vec![runs.completed.clone()]);
    assert!(
        by(&["--scope", "a"]).is_empty(),
        "a completed run needs --all"
    );
    assert_eq!(
        by(&["--all", "--limit", "2"]),
        everything[3..].to_vec(),
        "the newest two, oldest first"
    );

    // --since counts from each run's creation: an old one drops out.
    let meta_path = sandbox.path(&format!(".cairn/runs/{}/meta.json", runs.completed));
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta["created_at"] = serde_json::json!(1_000_000_000_000u64);
    std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
    let recent = by(&["--all", "--since", "1h"]);
    assert_eq!(recent.len(), 4, "{recent:?}");
    assert!(!recent.contains(&runs.completed), "{recent:?}");

    // The table says when the options matched nothing.
    let output = sandbox.run(&["runs", "--state-dir", ".cairn", "--scope", "nope"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    // One line naming the folder, that reads as a sentence.
    assert_eq!(
        text(&output.stdout),
        "no runs in .cairn match these options\n"
    );

    sandbox.touch("release");
    let status = wait_exit(&mut live);
    assert_eq!(status.code(), Some(0), "{}", sandbox.read("e.err"));
    // The killed run's command outlived its driver; it must see `release` before the
    // sandbox (and the file) is gone, or it would loop forever.
    let group: i64 = sandbox
        .read("crashes.started")
        .trim()
        .parse()
        .expect("a process group id");
    wait_for("the killed run's command to end", || !alive(-group));
}

#[test]
fn bad_filter_values_are_usage_errors() {
    let sandbox = Sandbox::new();
    sandbox.write("ok.toml", OK);
    assert_eq!(sandbox.run(&["run", "ok.toml"]).status.code(), Some(0));
    for (args, named) in [
        (&["--status", "bogus"][..], "--status"),
        (&["--limit", "0"][..], "--limit"),
        (&["--limit=-3"][..], "--limit"),
        (&["--since", "3 weeks"][..], "--since"),
        (&["--quarantined", "--status", "failed"][..], "--status"),
    ] {
        let mut all = vec!["runs", "--state-dir", ".cairn"];
        all.extend_from_slice(args);
        let output = sandbox.run(&all);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert_contains(&text(&output.stderr), named);
    }
}

/// A `--state-dir` that names a file is said to be a file, not to be missing: the operator
/// typed an existing path (often the workflow file) and must see why it was not taken.
#[test]
fn a_state_dir_that_is_a_file_is_named_as_one() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", common::OK_WORKFLOW);
    for args in [
        vec!["runs", "--state-dir", "wf.toml"],
        vec!["logs", "r1", "--state-dir", "wf.toml"],
    ] {
        let output = sandbox.run(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = text(&output.stderr);
        assert_contains(&stderr, "wf.toml is a file, not a state folder");
        assert_lacks(&stderr, "there is no state folder");
    }
}
