//! A service manager's stop: systemd's default (`KillMode=control-group`) sends SIGTERM to
//! cairn and to every command it runs at once. The commands' deaths are the stop's, not
//! failures: their attempts are given back, the run is interrupted (exit 4), and a
//! scheduler's circuit breaker does not count it.

mod common;

use std::time::Duration;

use common::{Sandbox, alive, count_lines, signal, text, wait_exit, wait_for};

/// `b` records its process group and waits for the file `release`; it has one attempt.
const WAITING: &str = r#"
name = "service"

[[task]]
id = "a"
run = "echo a >> log"

[[task]]
id = "b"
run = "echo $$ > b.pgid; echo b-start >> log; while ! test -f release; do sleep 0.05; done; echo b >> log"
depends_on = ["a"]
max_attempts = 1
"#;

/// Waits until `b` has started and returns its process group id.
fn wait_for_b(sandbox: &Sandbox) -> i64 {
    wait_for("task b to start", || {
        sandbox.read("log").contains("b-start")
    });
    wait_for("task b's pid file", || {
        !sandbox.read("b.pgid").trim().is_empty()
    });
    sandbox.read("b.pgid").trim().parse().expect("a pgid")
}

/// The command's death is seen before cairn's own SIGTERM arrives (the order a cgroup-wide
/// stop can take), here 300 ms before: it is still the stop's, and the task's single attempt
/// is not spent.
#[test]
fn a_stop_signalled_to_cairn_and_its_commands_at_once_gives_the_attempt_back() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", WAITING);
    let mut first = sandbox.spawn(&["run", "wf.toml"], "out1", "err1");
    let group = wait_for_b(&sandbox);
    signal(-group, "TERM");
    wait_for("b's process group to die", || !alive(-group));
    // Give cairn time to see the death and start waiting out its 2 s `STOP_SIGNAL_WINDOW`,
    // so that this test checks the window and not only a SIGTERM that beat the command's
    // result; 300 ms leaves the window most of its length on a loaded machine.
    std::thread::sleep(Duration::from_millis(300));
    signal(i64::from(first.id()), "TERM");
    let status = wait_exit(&mut first);
    let stdout = sandbox.read("out1");
    assert_eq!(status.code(), Some(4), "{stdout}\n{}", sandbox.read("err1"));
    common::assert_contains(&stdout, "interrupted b after");
    common::assert_contains(
        &stdout,
        "`b` was stopped by SIGTERM while cairn was shutting down",
    );
    common::assert_lacks(&stdout, "FAILED");
    let run_id = sandbox.only_run_id();
    let shown = sandbox.run(&["show", &run_id]);
    let table = text(&shown.stdout);
    let row = table
        .lines()
        .find(|line| line.starts_with("b "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("pending") && row.contains("0/1"), "{table}");

    // The next run resumes it, and `b` gets its one attempt.
    sandbox.touch("release");
    let second = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(
        second.status.code(),
        Some(0),
        "{}{}",
        text(&second.stdout),
        text(&second.stderr)
    );
    let log = sandbox.read("log");
    assert_eq!(count_lines(&log, "a"), 1, "{log}");
    assert_eq!(count_lines(&log, "b"), 1, "{log}");
    assert_eq!(sandbox.runs().len(), 1, "{:?}", sandbox.runs());
}

/// The same stop under `cairn scheduler`: the run is cut short, not failed, so the job's
/// breaker (one failure allowed) does not trip and the scheduler exits 4.
#[test]
fn a_service_stop_of_the_scheduler_is_not_counted_by_the_breaker() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", WAITING);
    let added = sandbox.run(&[
        "jobs",
        "add",
        "wf.toml",
        "svc",
        "--every",
        "1s",
        "--max-consecutive-errors",
        "1",
    ]);
    assert_eq!(added.status.code(), Some(0), "{}", text(&added.stderr));
    let mut scheduler = sandbox.spawn(
        &["scheduler", "--state-dir", ".cairn", "--poll", "1s"],
        "s.out",
        "s.err",
    );
    let group = wait_for_b(&sandbox);
    signal(i64::from(scheduler.id()), "TERM");
    signal(-group, "TERM");
    let status = wait_exit(&mut scheduler);
    let (out, err) = (sandbox.read("s.out"), sandbox.read("s.err"));
    assert_eq!(status.code(), Some(4), "{out}\n{err}");
    common::assert_lacks(&out, "FAILED");
    let shown = sandbox.run(&["jobs", "show", "svc", "--json", "--state-dir", ".cairn"]);
    let job: serde_json::Value =
        serde_json::from_str(text(&shown.stdout).trim()).expect("one JSON document");
    assert_eq!(job["consecutive_errors"], 0, "{job}");
    assert_eq!(job["status"], "active", "{job}");
}
