//! `cairn scheduler` runs several jobs at once, with the real binary: a long one-shot job
//! does not hold up an every-second job; two runs going on at once are both let finish or
//! left resumable by the Ctrl-C and grace rules; a job-store failure with a run going on
//! stops the scheduler as a first Ctrl-C would, lets the run finish, and exits 5;
//! `--max-running-jobs 0` is a usage error.
//!
//! Long commands wait for a file the test creates, so nothing depends on how fast anything
//! runs; every wait is bounded (`common::WAIT_BOUND`) only to turn a hang into a failure.

mod common;

use common::{Sandbox, assert_contains, signal, text, wait_exit, wait_for};

const USAGE: i32 = 2;
const INTERRUPTED: i32 = 4;
const STORE_FAILED: i32 = 5;

/// A workflow of one task that says it started (`<name>-started`) and then waits for the
/// file `release`.
fn waiting_workflow(name: &str, release: &str) -> String {
    format!(
        "name = \"{name}\"\n[[task]]\nid = \"wait\"\nrun = \"touch {name}-started; while [ ! -e {release} ]; do sleep 0.1; done\"\n"
    )
}

fn ok(sandbox: &Sandbox, args: &[&str]) -> String {
    let output = sandbox.run(args);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{args:?}: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Adds a one-shot job `id` of `workflow`, due at once.
fn add_due_once(sandbox: &Sandbox, workflow: &str, id: &str) {
    ok(
        sandbox,
        &[
            "jobs",
            "add",
            workflow,
            id,
            "--at",
            "2020-01-01T00:00:00Z",
            "--state-dir",
            ".cairn",
        ],
    );
}

fn show(sandbox: &Sandbox, id: &str) -> serde_json::Value {
    let shown = ok(
        sandbox,
        &["jobs", "show", id, "--json", "--state-dir", ".cairn"],
    );
    serde_json::from_str(shown.trim()).expect("one JSON document")
}

/// The JSON lines of `out` whose `event` is `event`.
fn events(out: &str, event: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|value| value["event"] == event)
        .collect()
}

/// The run of job `id` (its scope is `job-<id>`).
fn run_of(sandbox: &Sandbox, id: &str) -> serde_json::Value {
    let scope = format!("job-{id}");
    let runs: Vec<_> = sandbox
        .runs()
        .into_iter()
        .filter(|run| run["scope"] == scope.as_str())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

#[test]
fn a_long_one_shot_job_does_not_hold_up_an_every_second_job() {
    let sandbox = Sandbox::new();
    sandbox.write("long.toml", &waiting_workflow("long", "release"));
    sandbox.write(
        "tick.toml",
        "name = \"tick\"\n[[task]]\nid = \"log\"\nrun = \"echo tick >> ticks.log\"\n",
    );
    // Listed first ("long" < "tick"), so it starts first: one job at a time, the
    // every-second job would wait for it.
    add_due_once(&sandbox, "long.toml", "long");
    ok(
        &sandbox,
        &[
            "jobs",
            "add",
            "tick.toml",
            "tick",
            "--every",
            "1s",
            "--state-dir",
            ".cairn",
        ],
    );
    let mut scheduler = sandbox.spawn(
        &["scheduler", "--state-dir", ".cairn", "--poll", "1s"],
        "sched.out",
        "sched.err",
    );
    wait_for("the long job's command to start", || {
        sandbox.path("long-started").exists()
    });
    wait_for("the every-second job to run twice", || {
        sandbox.read("ticks.log").lines().count() >= 2
    });
    // The long run still goes on: its command waits for `release`, made only now.
    assert!(
        !sandbox
            .read("sched.out")
            .contains("job long: one-shot job completed"),
        "{}",
        sandbox.read("sched.out")
    );
    assert_eq!(run_of(&sandbox, "long")["status"], "running");
    sandbox.touch("release");
    wait_for("the long run to complete", || {
        sandbox
            .read("sched.out")
            .contains("job long: one-shot job completed")
    });
    signal(i64::from(scheduler.id()), "INT");
    let status = wait_exit(&mut scheduler);
    let out = sandbox.read("sched.out");
    assert_eq!(
        status.code(),
        Some(0),
        "{out}\n{}",
        sandbox.read("sched.err")
    );
    assert_eq!(show(&sandbox, "long")["status"], "completed");
    assert_eq!(show(&sandbox, "tick")["consecutive_errors"], 0);
    assert_eq!(run_of(&sandbox, "long")["status"], "completed");
}

#[test]
fn a_stop_with_two_runs_going_on_lets_one_finish_in_the_grace_and_leaves_the_other_resumable() {
    let sandbox = Sandbox::new();
    sandbox.write("a.toml", &waiting_workflow("a", "a-go"));
    sandbox.write("b.toml", &waiting_workflow("b", "b-go"));
    add_due_once(&sandbox, "a.toml", "a");
    add_due_once(&sandbox, "b.toml", "b");
    let mut scheduler = sandbox.spawn(
        &[
            "scheduler",
            "--state-dir",
            ".cairn",
            "--grace",
            "10m",
            "--json",
        ],
        "sched.out",
        "sched.err",
    );
    wait_for("both runs' commands to start", || {
        sandbox.path("a-started").exists() && sandbox.path("b-started").exists()
    });
    // The first Ctrl-C: both runs' tasks get the grace.
    signal(i64::from(scheduler.id()), "INT");
    wait_for("the stop to be acknowledged", || {
        !events(&sandbox.read("sched.out"), "stopping").is_empty()
    });
    sandbox.touch("a-go");
    wait_for("a's run to complete within the grace", || {
        events(&sandbox.read("sched.out"), "run_finished")
            .iter()
            .any(|e| e["job_id"] == "a" && e["outcome"] == "completed")
    });
    // b's run still has its grace: the scheduler waits for it, a's end did not stop it.
    assert!(
        scheduler.try_wait().expect("try_wait").is_none(),
        "{}",
        sandbox.read("sched.out")
    );
    // The second Ctrl-C ends the grace: b's command is stopped, its run left resumable.
    signal(i64::from(scheduler.id()), "INT");
    let status = wait_exit(&mut scheduler);
    let out = sandbox.read("sched.out");
    assert_eq!(
        status.code(),
        Some(INTERRUPTED),
        "{out}\n{}",
        sandbox.read("sched.err")
    );
    let b_run = run_of(&sandbox, "b");
    let b_id = b_run["run_id"].as_str().expect("run_id");
    assert_eq!(b_run["status"], "running", "{b_run}");
    let cut: Vec<_> = events(&out, "run_finished")
        .into_iter()
        .filter(|e| e["outcome"] == "interrupted")
        .collect();
    assert_eq!(cut.len(), 1, "{out}");
    assert_eq!(cut[0]["job_id"], "b");
    assert_eq!(cut[0]["run_id"], b_id);
    assert_contains(
        cut[0]["resume_command"].as_str().expect("resume_command"),
        &format!("cairn resume {b_id} --state-dir "),
    );
    assert_eq!(events(&out, "run_started").len(), 2, "{out}");
    assert_eq!(
        events(&out, "scheduler_stopped")[0]["interrupted_runs"],
        1,
        "{out}"
    );
    assert_eq!(run_of(&sandbox, "a")["status"], "completed");
    assert_eq!(show(&sandbox, "a")["status"], "completed");
    // Cut short by the stop: not a failure.
    let b = show(&sandbox, "b");
    assert_eq!(
        (&b["status"], &b["consecutive_errors"]),
        (&"active".into(), &0.into())
    );

    // The run is resumable, and finishes once its command can.
    sandbox.touch("b-go");
    let resumed = sandbox.run(&["resume", b_id, "--state-dir", ".cairn"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    assert_eq!(run_of(&sandbox, "b")["status"], "completed");
}

#[test]
fn a_job_store_failure_stops_as_a_first_ctrl_c_lets_the_run_finish_and_exits_5() {
    let sandbox = Sandbox::new();
    sandbox.write("long.toml", &waiting_workflow("long", "release"));
    add_due_once(&sandbox, "long.toml", "long");
    let mut scheduler = sandbox.spawn(
        &[
            "scheduler",
            "--state-dir",
            ".cairn",
            "--poll",
            "1s",
            "--grace",
            "10m",
        ],
        "sched.out",
        "sched.err",
    );
    wait_for("the long job's command to start", || {
        sandbox.path("long-started").exists()
    });
    // The job store breaks under the scheduler: its folder is now a file, so the next look
    // at the jobs fails while the long run goes on.
    std::fs::rename(sandbox.path(".cairn/jobs"), sandbox.path("jobs.away")).unwrap();
    sandbox.write(".cairn/jobs", "not a folder");
    wait_for("the scheduler to stop on the job store", || {
        sandbox
            .read("sched.out")
            .contains("scheduler: stopping: the job store failed")
    });
    // The run goes on within its grace; the scheduler waits for it.
    assert!(
        scheduler.try_wait().expect("try_wait").is_none(),
        "{}",
        sandbox.read("sched.err")
    );
    sandbox.touch("release");
    let status = wait_exit(&mut scheduler);
    let (out, err) = (sandbox.read("sched.out"), sandbox.read("sched.err"));
    assert_eq!(status.code(), Some(STORE_FAILED), "{out}\n{err}");
    let run = run_of(&sandbox, "long");
    assert_eq!(run["status"], "completed", "{run}");
    assert_contains(
        &out,
        &format!(
            "job long: run {} completed",
            run["run_id"].as_str().unwrap()
        ),
    );
    assert_contains(&err, "job store");
}

#[test]
fn max_running_jobs_0_is_a_usage_error_and_the_help_says_what_concurrency_means() {
    let sandbox = Sandbox::new();
    std::fs::create_dir(sandbox.path(".cairn")).unwrap();
    let refused = sandbox.run(&[
        "scheduler",
        "--state-dir",
        ".cairn",
        "--max-running-jobs",
        "0",
    ]);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(USAGE), "{stderr}");
    assert_contains(&stderr, "--max-running-jobs");
    assert_contains(&stderr, "at least one job");

    let help = ok(&sandbox, &["scheduler", "--help"]);
    assert_contains(&help, "--max-running-jobs <N>");
    assert_contains(&help, "--concurrency is per run");
}
