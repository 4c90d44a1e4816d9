//! `cairn scheduler` when a circuit-breaker trip stands but its audit record cannot be
//! written, with the real binary. The job store's audit log is made unwritable by putting a
//! folder where its file goes (the job files stay writable), so the first append fails.
//!
//! The decision this shows: the trip is said anyway (`audited: false` with `--json`), and
//! the scheduler then stops, exit 5, naming the change that stands without its record. It
//! does not keep serving the other jobs: their claims and outcomes would be written to a
//! store whose audit log just failed, each with its record missing.

mod common;

use common::{Sandbox, assert_contains, text, wait_exit};

#[test]
fn a_trip_whose_audit_record_fails_is_said_and_stops_the_scheduler_with_exit_5() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "fails.toml",
        "name = \"fails\"\n[[task]]\nid = \"down\"\nrun = \"exit 3\"\n",
    );
    let added = sandbox.run(&[
        "jobs",
        "add",
        "fails.toml",
        "j",
        "--every",
        "1s",
        "--max-consecutive-errors",
        "1",
        "--state-dir",
        ".cairn",
    ]);
    assert_eq!(added.status.code(), Some(0), "{}", text(&added.stderr));
    let audit = sandbox.path(".cairn/jobs/audit.jsonl");
    std::fs::remove_file(&audit).expect("the add wrote the audit log");
    std::fs::create_dir(&audit).unwrap();

    let mut scheduler = sandbox.spawn(
        &[
            "scheduler",
            "--poll",
            "1s",
            "--json",
            "--state-dir",
            ".cairn",
        ],
        "s.out",
        "s.err",
    );
    let status = wait_exit(&mut scheduler);
    let (stdout, stderr) = (sandbox.read("s.out"), sandbox.read("s.err"));
    assert_eq!(status.code(), Some(5), "{stdout}\n{stderr}");
    let trips: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == "breaker_tripped")
        .collect();
    assert_eq!(trips.len(), 1, "{stdout}");
    assert_eq!(trips[0]["job_id"], "j");
    assert_eq!(trips[0]["audited"], false, "{stdout}");
    assert_contains(&stderr, "job j was stopped by its circuit breaker");
    assert_contains(&stderr, "stored and stands");
    // The trip stands.
    let shown = sandbox.run(&["jobs", "show", "j", "--json", "--state-dir", ".cairn"]);
    let job: serde_json::Value = serde_json::from_str(text(&shown.stdout).trim()).unwrap();
    assert_eq!(job["status"], "failed", "{job}");
}
