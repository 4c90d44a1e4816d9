//! `cairn jobs` and `cairn scheduler` with the real binary: the add/list/show/pause/resume/rm
//! round trip, refused definitions, the force-gated revive of a job whose circuit breaker
//! tripped, completed one-shot jobs, and the scheduler running due jobs and stopping on
//! SIGINT.

mod common;

use std::process::Output;

use common::{
    ECHO, Sandbox, assert_contains, assert_lacks, left_out_lines, signal, text, wait_exit, wait_for,
};

const OK: i32 = 0;
const USAGE: i32 = 2;
const INTERRUPTED: i32 = 4;
const STORE: i32 = 5;
const LEFT_OUT: i32 = 6;

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

/// Runs `cairn ARGS`, requires exit 0, and returns stdout.
fn ok(sandbox: &Sandbox, args: &[&str]) -> String {
    let output = sandbox.run(args);
    assert_eq!(
        code(&output),
        Some(OK),
        "cairn {args:?}: stdout {} stderr {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// `cairn jobs show ID --json`, or `None` when the command fails (an unknown job).
fn show(sandbox: &Sandbox, id: &str) -> Option<serde_json::Value> {
    let output = sandbox.run(&["jobs", "show", id, "--json", "--state-dir", ".cairn"]);
    if code(&output) != Some(OK) {
        return None;
    }
    Some(serde_json::from_str(text(&output.stdout).trim()).expect("show --json is one object"))
}

fn list(sandbox: &Sandbox) -> Vec<serde_json::Value> {
    ok(sandbox, &["jobs", "list", "--json"])
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

fn audit_actions(sandbox: &Sandbox, id: &str) -> Vec<String> {
    ok(sandbox, &["jobs", "audit", id, "--json"])
        .lines()
        .map(|line| {
            let record: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            record["action"].as_str().expect("action").to_owned()
        })
        .collect()
}

/// Runs each of `commands` and checks that it exits with the usage code.
fn assert_each_is_usage(sandbox: &Sandbox, commands: &[&[&str]]) {
    for args in commands {
        let output = sandbox.run(args);
        assert_eq!(
            code(&output),
            Some(USAGE),
            "{args:?}: {} {}",
            text(&output.stdout),
            text(&output.stderr)
        );
    }
}

#[test]
fn add_list_show_pause_resume_rm_round_trip() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    let added = ok(
        &sandbox,
        &[
            "jobs",
            "add",
            "echo.toml",
            "nightly",
            "--every",
            "10m",
            "--input",
            "full",
            "--max-consecutive-errors",
            "3",
        ],
    );
    assert!(added.contains("nightly"), "{added}");

    let jobs = list(&sandbox);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = &jobs[0];
    assert_eq!(job["id"], "nightly");
    assert_eq!(job["status"], "active");
    assert_eq!(job["input"], "full");
    assert_eq!(job["consecutive_errors"], 0);
    assert_eq!(job["max_consecutive_errors"], 3);
    assert_eq!(job["schedule"]["interval_ms"], 600_000);
    assert!(job["next_run_at"].is_u64(), "{job}");
    assert!(
        job["workflow"]
            .as_str()
            .is_some_and(|w| w.ends_with("echo.toml") && w.starts_with('/')),
        "the job keeps the absolute workflow path: {job}"
    );
    let table = ok(&sandbox, &["jobs", "list"]);
    assert!(
        table.contains("nightly") && table.contains("every 10m") && table.contains("0/3"),
        "{table}"
    );

    let paused = ok(&sandbox, &["jobs", "pause", "nightly", "--json"]);
    assert!(paused.contains("\"paused\""), "{paused}");
    let job = show(&sandbox, "nightly").expect("the job");
    assert_eq!(job["status"], "paused");
    assert!(job["next_run_at"].is_null(), "{job}");
    // Pausing a paused job changes nothing and is a usage error.
    assert_eq!(
        code(&sandbox.run(&["jobs", "pause", "nightly"])),
        Some(USAGE)
    );

    ok(&sandbox, &["jobs", "resume", "nightly"]);
    let job = show(&sandbox, "nightly").expect("the job");
    assert_eq!(job["status"], "active");
    assert!(job["next_run_at"].is_u64(), "{job}");
    // An active job has nothing to resume.
    let again = sandbox.run(&["jobs", "resume", "nightly"]);
    assert_eq!(code(&again), Some(USAGE), "{}", text(&again.stderr));
    assert_contains(&text(&again.stderr), "nightly");

    let human = ok(&sandbox, &["jobs", "show", "nightly"]);
    assert!(
        human.contains("active") && human.contains("every 10m"),
        "{human}"
    );

    ok(&sandbox, &["jobs", "rm", "nightly"]);
    assert!(list(&sandbox).is_empty());
    assert!(
        show(&sandbox, "nightly").is_none(),
        "a deleted job is unknown"
    );
    assert_eq!(code(&sandbox.run(&["jobs", "rm", "nightly"])), Some(USAGE));
    assert_eq!(
        audit_actions(&sandbox, "nightly"),
        ["created", "paused", "resumed", "deleted"]
    );
}

#[test]
fn add_takes_cron_with_seconds_and_an_offset_and_refuses_bad_definitions() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    ok(
        &sandbox,
        &[
            "jobs",
            "add",
            "echo.toml",
            "tick",
            "--cron",
            "*/10 * * * * *",
            "--tz",
            "+05:30",
        ],
    );
    let job = show(&sandbox, "tick").expect("the job");
    assert_eq!(job["schedule"]["kind"], "cron");
    assert_eq!(job["schedule"]["zone"], "+05:30");

    sandbox.write("bad.toml", "name = \"bad\"\n[[task]]\nid = \"a\"\n");
    let refused: [&[&str]; 9] = [
        &["jobs", "add", "echo.toml", "c", "--cron", "not a cron"],
        &[
            "jobs",
            "add",
            "echo.toml",
            "c",
            "--cron",
            "* * * * *",
            "--tz",
            "Mars/Base",
        ],
        &["jobs", "add", "echo.toml", "c", "--every", "500ms"],
        &["jobs", "add", "echo.toml", "c", "--at", "tomorrow"],
        &[
            "jobs",
            "add",
            "echo.toml",
            "c",
            "--every",
            "1m",
            "--delete-after-run",
        ],
        &["jobs", "add", "echo.toml", "c"],
        &["jobs", "add", "echo.toml", "../c", "--every", "1m"],
        &["jobs", "add", "bad.toml", "c", "--every", "1m"],
        &["jobs", "add", "echo.toml", "tick", "--every", "1m"],
    ];
    assert_each_is_usage(&sandbox, &refused);
    // The messages name what was given, quoted, in the CLI's words, once, and cut short.
    let empty = sandbox.run(&["jobs", "add", "echo.toml", "e", "--cron", ""]);
    let stderr = text(&empty.stderr);
    assert_contains(
        &stderr,
        "invalid schedule `` of job e: the cron expression is empty",
    );
    assert_lacks(&stderr, "CronPattern");
    let slash = text(
        &sandbox
            .run(&["jobs", "add", "echo.toml", "a/b", "--every", "1m"])
            .stderr,
    );
    assert_eq!(slash.matches("a/b").count(), 1, "{slash}");
    let long = "a".repeat(5_000);
    let shown = text(&sandbox.run(&["jobs", "show", &long]).stderr);
    assert!(shown.len() < 400, "{} bytes: {shown}", shown.len());
    let jobs = list(&sandbox);
    assert_eq!(jobs.len(), 1, "only the good job is stored: {jobs:?}");
    assert_eq!(
        jobs[0]["schedule"]["kind"], "cron",
        "the taken id was not overwritten"
    );
}

#[test]
fn add_takes_a_named_zone_shows_it_by_name_and_refuses_an_unknown_one() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    let added = ok(
        &sandbox,
        &[
            "jobs",
            "add",
            "echo.toml",
            "standup-reminder",
            "--cron",
            "0 9 * * 1-5",
            "--tz",
            "Europe/Berlin",
        ],
    );
    assert_contains(&added, "cron 0 9 * * 1-5 (Europe/Berlin)");
    let job = show(&sandbox, "standup-reminder").expect("the job");
    assert_eq!(job["schedule"]["zone"], "Europe/Berlin");
    // Its first run is a weekday's 09:00 in Berlin: 07:00 or 08:00 UTC, by the season.
    let next = job["next_run_at"].as_u64().expect("a next run");
    let hour_utc = next / 3_600_000 % 24;
    assert!(
        matches!(hour_utc, 7 | 8),
        "next run {next} is at {hour_utc}:00 UTC"
    );
    assert_eq!(next % 3_600_000, 0, "on the hour: {next}");

    // `list` keeps the zone even with a long expression that it has to cut.
    ok(
        &sandbox,
        &[
            "jobs",
            "add",
            "echo.toml",
            "ny",
            "--cron",
            "0 0,15,30,45 9-17 * * MON-FRI",
            "--tz",
            "America/New_York",
        ],
    );
    let table = ok(&sandbox, &["jobs", "list"]);
    assert_contains(&table, "cron 0 9 * * 1-5 (Europe/Berlin)");
    assert_contains(&table, "(America/New_York)");
    let shown = ok(&sandbox, &["jobs", "show", "standup-reminder"]);
    assert_contains(&shown, "schedule  cron 0 9 * * 1-5 (Europe/Berlin)");
    // The next run is also given on Berlin's wall clock, with the offset then in force.
    let next_line = shown
        .lines()
        .find(|line| line.starts_with("next run"))
        .unwrap_or_default();
    assert!(
        next_line.ends_with(" 09:00:00 +01:00 Europe/Berlin)")
            || next_line.ends_with(" 09:00:00 +02:00 Europe/Berlin)"),
        "{shown}"
    );
    let mut zones: Vec<String> = list(&sandbox)
        .iter()
        .map(|job| job["schedule"]["zone"].as_str().unwrap_or("?").to_owned())
        .collect();
    zones.sort();
    assert_eq!(zones, ["America/New_York", "Europe/Berlin"]);

    for (zone, offered) in [
        ("Mars/Olympus", None),
        ("europe/berlin", Some("`Europe/Berlin`")),
    ] {
        let output = sandbox.run(&[
            "jobs",
            "add",
            "echo.toml",
            "mars",
            "--cron",
            "0 9 * * *",
            "--tz",
            zone,
        ]);
        assert_eq!(code(&output), Some(USAGE), "{zone}");
        let stderr = text(&output.stderr);
        assert_contains(&stderr, &format!("invalid time zone `{zone}` of job mars"));
        if let Some(offered) = offered {
            assert_contains(&stderr, offered);
        }
    }
    assert!(
        show(&sandbox, "mars").is_none(),
        "the refused job was not stored"
    );
}

#[test]
fn add_refuses_a_zone_without_cron_and_a_cron_that_never_fires() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    let refused: [&[&str]; 3] = [
        // The zone would be silently ignored: intervals and RFC 3339 times carry their own.
        &[
            "jobs",
            "add",
            "echo.toml",
            "c",
            "--every",
            "5m",
            "--tz",
            "+01:00",
        ],
        &[
            "jobs",
            "add",
            "echo.toml",
            "c",
            "--at",
            "2030-01-01T00:00:00Z",
            "--tz",
            "UTC",
        ],
        // February 31st never comes: the job would be active and never run.
        &["jobs", "add", "echo.toml", "c", "--cron", "0 0 31 2 *"],
    ];
    assert_each_is_usage(&sandbox, &refused);
    let stored = sandbox.run(&["jobs", "list", "--json", "--state-dir", ".cairn"]);
    assert!(
        text(&stored.stdout).trim().is_empty(),
        "no job was stored: {}",
        text(&stored.stdout)
    );
}

#[test]
fn every_refused_schedule_names_the_job() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    let job = "payroll-export";
    let refused: [&[&str]; 6] = [
        &["--every", "500ms"],
        &["--cron", "not a cron"],
        &["--cron", "* * * * *", "--tz", "+99:00"],
        &["--cron", "0 0 31 2 *"],
        &["--at", "tomorrow"],
        &["--every", "5m", "--tz", "+01:00"],
    ];
    for schedule in refused {
        let mut args = vec!["jobs", "add", "echo.toml", job];
        args.extend_from_slice(schedule);
        let output = sandbox.run(&args);
        assert_eq!(code(&output), Some(USAGE), "{args:?}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains(&format!("job {job}")),
            "{schedule:?}: the message names the job: {stderr}"
        );
    }
}

#[test]
fn an_absurd_interval_or_time_is_refused_as_usage_and_nothing_is_stored() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    let job = "typo";
    let refused: [&[&str]; 4] = [
        // Its first run would be in the year 11 million: it used to be accepted.
        &["--every", "99999999999h"],
        // Just over the longest interval allowed (36500 days).
        &["--every", "36500d1ms"],
        // Past what a millisecond count holds.
        &["--every", "99999999999999999999h"],
        // Past the last year RFC 3339 writes.
        &["--at", "10000-01-01T00:00:00Z"],
    ];
    for schedule in refused {
        let mut args = vec!["jobs", "add", "echo.toml", job];
        args.extend_from_slice(schedule);
        let output = sandbox.run(&args);
        assert_eq!(
            code(&output),
            Some(USAGE),
            "{args:?}: {} {}",
            text(&output.stdout),
            text(&output.stderr)
        );
    }
    let output = sandbox.run(&["jobs", "add", "echo.toml", job, "--every", "99999999999h"]);
    assert_contains(&text(&output.stderr), "at most 36500 days");
    assert!(show(&sandbox, job).is_none(), "no job was stored");
    // The longest interval allowed is taken.
    ok(
        &sandbox,
        &["jobs", "add", "echo.toml", job, "--every", "36500d"],
    );
}

/// Adds job `broken` (every second; its one task exits 3 and is not retried), whose circuit
/// breaker trips at its first failed run.
fn add_broken_job(sandbox: &Sandbox) {
    sandbox.write(
        "broken.toml",
        "name = \"broken\"\n[[task]]\nid = \"down\"\nrun = \"exit 3\"\nmax_attempts = 1\n",
    );
    ok(
        sandbox,
        &[
            "jobs",
            "add",
            "broken.toml",
            "broken",
            "--every",
            "1s",
            "--max-consecutive-errors",
            "1",
        ],
    );
}

#[test]
fn resume_of_a_failed_job_needs_force() {
    let sandbox = Sandbox::new();
    add_broken_job(&sandbox);
    let mut scheduler = sandbox.spawn(
        &["scheduler", "--state-dir", ".cairn", "--poll", "1s"],
        "sched.out",
        "sched.err",
    );
    wait_for("the job's circuit breaker to trip", || {
        show(&sandbox, "broken").is_some_and(|job| job["status"] == "failed")
    });
    let (status, out, _) = stop_scheduler(&sandbox, &mut scheduler);
    assert_eq!(
        status.code(),
        Some(OK),
        "{out}\n{}",
        sandbox.read("sched.err")
    );
    assert!(out.contains("circuit breaker tripped"), "{out}");

    let before = show(&sandbox, "broken").expect("the job");
    assert_eq!(before["consecutive_errors"], 1);
    assert!(before["next_run_at"].is_null(), "{before}");
    assert!(before["last_error"].is_string(), "{before}");
    // While the job is failing, the table and `jobs show` name its error.
    let error_start: String = before["last_error"]
        .as_str()
        .unwrap()
        .chars()
        .take(30)
        .collect();
    assert!(ok(&sandbox, &["jobs", "list"]).contains(&error_start));
    assert!(
        ok(&sandbox, &["jobs", "show", "broken"]).contains(&format!("error     {error_start}"))
    );

    let refused = sandbox.run(&["jobs", "resume", "broken"]);
    assert_eq!(code(&refused), Some(USAGE), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("--force"),
        "the message names the way forward: {}",
        text(&refused.stderr)
    );
    assert_eq!(
        show(&sandbox, "broken").expect("the job"),
        before,
        "a refused resume changes nothing"
    );

    ok(&sandbox, &["jobs", "resume", "broken", "--force"]);
    let revived = show(&sandbox, "broken").expect("the job");
    assert_eq!(revived["status"], "active");
    assert_eq!(revived["consecutive_errors"], 0);
    // Healthy again: the table shows no error (it would read as "failing"); `jobs show`
    // keeps the old one, labelled as the last one.
    assert!(!ok(&sandbox, &["jobs", "list"]).contains(&error_start));
    assert!(ok(&sandbox, &["jobs", "show", "broken"]).contains(&format!(
        "none now (a success or a revive reset the count); the last one was: {error_start}"
    )));
    assert!(revived["next_run_at"].is_u64(), "{revived}");
    let actions = audit_actions(&sandbox, "broken");
    assert!(
        actions.contains(&"breaker_tripped".to_owned())
            && actions.last().map(String::as_str) == Some("revived"),
        "{actions:?}"
    );
    // The failed run was recorded like any `cairn run`, so it can be inspected and resumed.
    let runs = sandbox.runs();
    assert!(
        runs.iter()
            .any(|r| r["status"] == "failed" && r["scope"] == "job-broken"),
        "{runs:?}"
    );
}

#[test]
fn the_scheduler_runs_due_one_shot_jobs_and_a_completed_one_is_refused_even_with_force() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "mark.toml",
        "name = \"mark\"\n[[task]]\nid = \"touch\"\nrun = \"echo \\\"$CAIRN_INPUT\\\" >> marker\"\n",
    );
    ok(
        &sandbox,
        &[
            "jobs",
            "add",
            "mark.toml",
            "once",
            "--at",
            "2020-01-01T00:00:00Z",
            "--input",
            "first",
        ],
    );
    ok(
        &sandbox,
        &[
            "jobs",
            "add",
            "mark.toml",
            "once-gone",
            "--at",
            "2020-01-01T01:00:00+01:00",
            "--delete-after-run",
            "--input",
            "second",
        ],
    );
    let mut scheduler = sandbox.spawn(
        &["scheduler", "--state-dir", ".cairn", "--poll", "1s"],
        "sched.out",
        "sched.err",
    );
    wait_for("both one-shot jobs to run", || {
        show(&sandbox, "once").is_some_and(|job| job["status"] == "completed")
            && show(&sandbox, "once-gone").is_none()
    });
    let (status, out, _) = stop_scheduler(&sandbox, &mut scheduler);
    assert_eq!(
        status.code(),
        Some(OK),
        "{out}\n{}",
        sandbox.read("sched.err")
    );
    assert!(
        out.contains("job once: run") && out.contains("completed"),
        "{out}"
    );
    assert!(out.contains("scheduler: stopped"), "{out}");
    let mut marks: Vec<String> = sandbox.read("marker").lines().map(str::to_owned).collect();
    marks.sort();
    assert_eq!(
        marks,
        ["first", "second"],
        "each job ran once with its input"
    );

    let refused = sandbox.run(&["jobs", "resume", "once", "--force"]);
    assert_eq!(code(&refused), Some(USAGE), "{}", text(&refused.stderr));
    assert_eq!(
        show(&sandbox, "once").expect("the job")["status"],
        "completed"
    );
}

#[test]
fn sigint_during_a_run_leaves_it_resumable_and_does_not_count_as_an_error() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "slow.toml",
        "name = \"slow\"\n[[task]]\nid = \"wait\"\nrun = \"touch started && sleep 30\"\n",
    );
    ok(
        &sandbox,
        &[
            "jobs",
            "add",
            "slow.toml",
            "slow",
            "--at",
            "2020-01-01T00:00:00Z",
        ],
    );
    let mut scheduler = sandbox.spawn(
        &["scheduler", "--state-dir", ".cairn", "--grace", "100ms"],
        "sched.out",
        "sched.err",
    );
    wait_for("the run's command to start", || {
        sandbox.path("started").exists()
    });
    let (status, out, _) = stop_scheduler(&sandbox, &mut scheduler);
    assert_eq!(
        status.code(),
        Some(INTERRUPTED),
        "{out}\n{}",
        sandbox.read("sched.err")
    );
    assert!(
        out.contains("cairn resume"),
        "the resume command is printed: {out}"
    );
    let job = show(&sandbox, "slow").expect("the job");
    assert_eq!(job["consecutive_errors"], 0, "{job}");
    assert_eq!(job["status"], "active", "{job}");
    let runs = sandbox.runs();
    assert!(
        runs.iter()
            .any(|r| r["status"] == "running" && r["scope"] == "job-slow"),
        "the interrupted run is left resumable: {runs:?}"
    );
}

#[test]
fn help_documents_the_exit_codes_and_a_missing_state_folder_is_a_usage_error() {
    let sandbox = Sandbox::new();
    for args in [
        &["jobs", "--help"][..],
        &["jobs", "resume", "--help"][..],
        &["jobs", "add", "--help"][..],
        &["scheduler", "--help"][..],
    ] {
        let help = ok(&sandbox, args);
        assert!(help.contains("Exit codes:"), "{args:?}: {help}");
    }
    // `cairn --help` sends the reader to `cairn jobs --help` for code 6.
    assert!(ok(&sandbox, &["jobs", "--help"]).contains("  6  "));
    // Without a state folder there is nothing to list or schedule; nothing is created.
    assert_each_is_usage(
        &sandbox,
        &[&["jobs", "list"], &["scheduler", "--state-dir", "nowhere"]],
    );
    assert!(!sandbox.path("nowhere").exists() && !sandbox.path(".cairn").exists());
    let help = ok(&sandbox, &["scheduler", "--help"]);
    assert!(help.contains("  4  "), "{help}");
}

/// Stops a `cairn scheduler` started with `sandbox.spawn(.., "sched.out", "sched.err")` as
/// Ctrl-C would, and returns its exit status, stdout and stderr.
fn stop_scheduler(
    sandbox: &Sandbox,
    scheduler: &mut std::process::Child,
) -> (std::process::ExitStatus, String, String) {
    signal(i64::from(scheduler.id()), "INT");
    let status = wait_exit(scheduler);
    (status, sandbox.read("sched.out"), sandbox.read("sched.err"))
}

/// Stores `document` as job `id` under `.cairn/` as another program could: the file adapter
/// accepts it (its checksum is right), but it is no job the scheduler can decode.
fn put_raw_job(sandbox: &Sandbox, id: &str, document: serde_json::Value) {
    use cairn_checkpoint::JobStore as _;
    let store = cairn_checkpoint_file::FileJobStore::open(sandbox.path(".cairn")).unwrap();
    let id = cairn_checkpoint::JobId::new(id).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(store.put(&id, None, &document))
        .unwrap()
        .expect("a new job");
}

#[test]
fn jobs_list_prints_the_readable_jobs_and_names_an_undecodable_one() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    ok(
        &sandbox,
        &["jobs", "add", "echo.toml", "good", "--every", "10m"],
    );
    put_raw_job(&sandbox, "odd", serde_json::json!({"hello": 1}));

    let output = sandbox.run(&["jobs", "list", "--json"]);
    assert_eq!(code(&output), Some(STORE), "{}", text(&output.stderr));
    let listed: Vec<serde_json::Value> = text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], "good");
    assert_contains(&text(&output.stderr), "job odd");

    let table = sandbox.run(&["jobs", "list"]);
    assert_eq!(code(&table), Some(STORE), "{}", text(&table.stderr));
    assert_contains(&text(&table.stdout), "good");
    assert_lacks(&text(&table.stdout), "odd");
    assert_contains(&text(&table.stderr), "job odd");
}

#[test]
fn the_scheduler_starts_despite_an_undecodable_job_and_runs_the_others() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "mark.toml",
        "name = \"mark\"\n[[task]]\nid = \"touch\"\nrun = \"echo ran >> marker\"\n",
    );
    ok(
        &sandbox,
        &[
            "jobs",
            "add",
            "mark.toml",
            "once",
            "--at",
            "2020-01-01T00:00:00Z",
        ],
    );
    put_raw_job(&sandbox, "odd", serde_json::json!({"hello": 1}));
    let mut scheduler = sandbox.spawn(
        &["scheduler", "--state-dir", ".cairn", "--poll", "1s"],
        "sched.out",
        "sched.err",
    );
    wait_for("the readable job to run", || {
        show(&sandbox, "once").is_some_and(|job| job["status"] == "completed")
            || scheduler.try_wait().expect("try_wait").is_some()
    });
    let (status, out, err) = stop_scheduler(&sandbox, &mut scheduler);
    assert_eq!(status.code(), Some(OK), "{out}\n{err}");
    assert!(out.contains("watching 1 job(s)"), "{out}");
    assert!(err.contains("job odd"), "{err}");
    assert_eq!(sandbox.read("marker").trim(), "ran");
}

#[test]
fn a_poll_under_one_second_is_refused_as_usage() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    ok(
        &sandbox,
        &["jobs", "add", "echo.toml", "good", "--every", "10m"],
    );
    for poll in ["0s", "500ms"] {
        let mut scheduler = sandbox.spawn(
            &["scheduler", "--state-dir", ".cairn", "--poll", poll],
            "sched.out",
            "sched.err",
        );
        // A scheduler that started would run until stopped.
        wait_for("cairn to exit or start", || {
            sandbox.read("sched.out").contains("watching")
                || scheduler.try_wait().expect("try_wait").is_some()
        });
        if scheduler.try_wait().expect("try_wait").is_none() {
            signal(i64::from(scheduler.id()), "INT");
        }
        let status = wait_exit(&mut scheduler);
        assert_eq!(
            status.code(),
            Some(USAGE),
            "--poll {poll}: {}",
            sandbox.read("sched.out")
        );
    }
    // The refusal of a positive value (the last one tried) names the floor.
    assert_contains(&sandbox.read("sched.err"), "1s");
    let output = sandbox.run(&["scheduler", "--help"]);
    assert_contains(&text(&output.stdout), "at least 1s");
}

#[test]
fn jobs_audit_shows_an_entry_left_in_place_as_such() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    ok(
        &sandbox,
        &["jobs", "add", "echo.toml", "good", "--every", "10m"],
    );
    // A link to itself cannot be read (nor moved aside as a job file): it stays in place.
    let stray = sandbox.path(".cairn/jobs/stray.json");
    std::os::unix::fs::symlink(&stray, &stray).unwrap();
    let output = sandbox.run(&["jobs", "list", "--json"]);
    assert_eq!(code(&output), Some(LEFT_OUT), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout).lines().count(),
        1,
        "{}",
        text(&output.stdout)
    );
    assert_eq!(audit_actions(&sandbox, "stray"), ["left_in_place"]);
    let human = ok(&sandbox, &["jobs", "audit", "stray"]);
    assert!(
        human.contains("left_in_place") && !human.contains("quarantined"),
        "{human}"
    );
    assert!(
        human.contains("NOT moved aside") && human.contains(".cairn/jobs/stray.json"),
        "{human}"
    );
    assert!(std::fs::symlink_metadata(&stray).is_ok(), "left in place");
}

#[test]
fn rm_deletes_an_undecodable_job_and_keeps_its_document_in_the_audit_log() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    ok(
        &sandbox,
        &["jobs", "add", "echo.toml", "good", "--every", "10m"],
    );
    // Version 0: no build wrote it, so it is damage (a higher one is a newer build's job,
    // which `rm` refuses: tests/newer_jobs.rs).
    let document = serde_json::json!({"format_version": 0, "id": "odd", "keep": [1, "two"]});
    put_raw_job(&sandbox, "odd", document.clone());
    let listing = sandbox.run(&["jobs", "list"]);
    assert_eq!(code(&listing), Some(STORE));
    assert!(
        text(&listing.stderr).contains("cairn jobs rm odd"),
        "the listing says how to delete it: {}",
        text(&listing.stderr)
    );

    let removed = ok(&sandbox, &["jobs", "rm", "odd"]);
    assert!(
        removed.contains("odd") && removed.contains("audit"),
        "{removed}"
    );
    // The listing is clean again, and nothing else was touched.
    let jobs = list(&sandbox);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["id"], "good");
    assert_eq!(audit_actions(&sandbox, "odd"), ["quarantined", "deleted"]);
    let kept: serde_json::Value = serde_json::from_str(
        ok(&sandbox, &["jobs", "audit", "odd", "--json"])
            .lines()
            .next()
            .expect("a record"),
    )
    .unwrap();
    assert_eq!(kept["detail"]["document"], document, "kept whole");
    // Gone now: a second rm is an unknown job.
    assert_eq!(code(&sandbox.run(&["jobs", "rm", "odd"])), Some(USAGE));
    // A readable job's rm is as before: one `deleted` record, no copy of the document.
    let json = ok(&sandbox, &["jobs", "rm", "good", "--json"]);
    assert!(json.contains("\"event\":\"deleted\""), "{json}");
    assert_eq!(audit_actions(&sandbox, "good"), ["created", "deleted"]);
}

#[test]
fn a_cron_job_whose_year_runs_out_is_completed_after_its_last_run() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "mark.toml",
        "name = \"mark\"\n[[task]]\nid = \"touch\"\nrun = \"echo ran >> marker\"\n",
    );
    // One second, a few seconds from now, in this year only: the schedule's one and last time.
    let at = chrono::Utc::now() + chrono::Duration::seconds(6);
    let cron = at.format("%-S %-M %-H %-d %-m * %Y").to_string();
    ok(
        &sandbox,
        &["jobs", "add", "mark.toml", "last", "--cron", &cron],
    );
    assert_eq!(show(&sandbox, "last").expect("the job")["status"], "active");
    let mut scheduler = sandbox.spawn(
        &["scheduler", "--state-dir", ".cairn", "--poll", "1s"],
        "sched.out",
        "sched.err",
    );
    wait_for("the job's last run to complete it", || {
        show(&sandbox, "last").is_some_and(|job| job["status"] == "completed")
    });
    signal(i64::from(scheduler.id()), "INT");
    wait_exit(&mut scheduler);
    assert_eq!(sandbox.read("marker"), "ran\n", "it ran once");
    let out = sandbox.read("sched.out");
    assert!(
        out.contains("job last: completed: its schedule has no time left"),
        "{out}"
    );

    let job = show(&sandbox, "last").expect("the job");
    assert!(job["next_run_at"].is_null(), "{job}");
    let table = ok(&sandbox, &["jobs", "list"]);
    let row = table
        .lines()
        .find(|line| line.starts_with("last "))
        .unwrap_or_default();
    assert!(row.contains("completed"), "{table}");
    assert_eq!(audit_actions(&sandbox, "last"), ["created", "completed"]);
    // Refused even with --force: its schedule has no time left.
    let refused = sandbox.run(&["jobs", "resume", "last", "--force"]);
    assert_eq!(code(&refused), Some(USAGE), "{}", text(&refused.stderr));
    assert_contains(&text(&refused.stderr), "completed");
}

/// Damages the stored file of job `id` under `.cairn/jobs/` (the file adapter's layout:
/// `<id>.json` holding a `crc32c` of the document): the checksum no longer matches.
fn damage_job_file(sandbox: &Sandbox, id: &str) {
    let path = sandbox.path(&format!(".cairn/jobs/{id}.json"));
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let crc = file["crc32c"].as_u64().expect("a crc32c field");
    file["crc32c"] = (crc ^ 1).into();
    std::fs::write(&path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
}

#[test]
fn jobs_list_names_a_damaged_job_it_quarantined_once_and_exits_6() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    for id in ["good", "broken", "broken-too"] {
        ok(
            &sandbox,
            &["jobs", "add", "echo.toml", id, "--every", "10m"],
        );
    }
    damage_job_file(&sandbox, "broken");
    damage_job_file(&sandbox, "broken-too");

    let table = sandbox.run(&["jobs", "list", "--state-dir", ".cairn"]);
    let (out, err) = (text(&table.stdout), text(&table.stderr));
    assert_eq!(code(&table), Some(LEFT_OUT), "{out}\n{err}");
    assert_contains(&out, "good");
    assert_lacks(&out, "broken");
    // Which job, why, where it is now, what to do: one line each.
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("left out")).collect();
    assert_eq!(lines.len(), 2, "{err}");
    let line = lines
        .iter()
        .find(|l| l.contains("job broken "))
        .expect("job broken is named");
    assert_contains(line, "fails its checksum");
    assert_contains(line, "quarantined to ");
    assert_contains(line, ".cairn/jobs/quarantine/broken-");
    assert_contains(line, "add the job again");
    let moved: Vec<_> = std::fs::read_dir(sandbox.path(".cairn/jobs/quarantine"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(moved.len(), 2, "{moved:?}");

    // Moved aside by that listing: the next one has nothing to report and exits 0.
    let again = sandbox.run(&["jobs", "list"]);
    assert_eq!(code(&again), Some(OK), "{}", text(&again.stderr));
    assert_lacks(&text(&again.stderr), "broken");
    assert_eq!(
        audit_actions(&sandbox, "broken").last().map(String::as_str),
        Some("quarantined")
    );

    // With --json: stdout keeps one job per line; stderr says it as a JSON line.
    damage_job_file(&sandbox, "good");
    let json = sandbox.run(&["jobs", "list", "--json"]);
    assert_eq!(code(&json), Some(LEFT_OUT), "{}", text(&json.stderr));
    assert_eq!(text(&json.stdout).trim(), "", "no job is left");
    let events = left_out_lines(&text(&json.stderr));
    assert_eq!(events.len(), 1, "{}", text(&json.stderr));
    assert_eq!(events[0]["kind"], "quarantined");
    assert_eq!(events[0]["job_id"], "good");
    let location = events[0]["location"].as_str().expect("a location");
    assert!(
        location.starts_with(".cairn/jobs/quarantine/good-"),
        "{location}"
    );
    assert!(sandbox.path(location).is_file(), "{location}");
    assert!(events[0]["what_to_do"].is_string(), "{}", events[0]);
}

#[test]
fn jobs_list_names_a_job_left_in_place_at_every_listing_and_exits_6() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    for id in ["good", "stuck"] {
        ok(
            &sandbox,
            &["jobs", "add", "echo.toml", id, "--every", "10m"],
        );
    }
    // A file where the quarantine folder belongs makes every move fail (even for root, which
    // a read-only folder would not stop): the damaged job must stay where it is.
    let qdir = sandbox.path(".cairn/jobs/quarantine");
    std::fs::remove_dir(&qdir).unwrap();
    std::fs::write(&qdir, b"not a folder").unwrap();
    damage_job_file(&sandbox, "stuck");
    // Paths are shown as the state folder was given (`.cairn` here, the default).
    let stuck = std::path::Path::new(".cairn/jobs/stuck.json");

    for _ in 0..2 {
        let table = sandbox.run(&["jobs", "list"]);
        let (out, err) = (text(&table.stdout), text(&table.stderr));
        assert_eq!(code(&table), Some(LEFT_OUT), "{out}\n{err}");
        assert_contains(&out, "good");
        assert_lacks(&out, "stuck");
        let line = err
            .lines()
            .find(|l| l.contains("job stuck "))
            .unwrap_or_else(|| panic!("{err}"));
        assert_contains(line, &format!("left in place at {}", stuck.display()));
        assert_contains(line, "moving it aside failed");
        assert_contains(line, "move it out of the job store by hand");
    }
    let json = sandbox.run(&["jobs", "list", "--json"]);
    assert_eq!(code(&json), Some(LEFT_OUT), "{}", text(&json.stderr));
    let events = left_out_lines(&text(&json.stderr));
    assert_eq!(events.len(), 1, "{}", text(&json.stderr));
    assert_eq!(events[0]["kind"], "left_in_place");
    assert_eq!(events[0]["job_id"], "stuck");
    assert_eq!(events[0]["at"], stuck.display().to_string());
    assert!(
        sandbox.path(".cairn/jobs/stuck.json").is_file(),
        "left in place"
    );
    let help = ok(&sandbox, &["jobs", "list", "--help"]);
    assert_contains(&help, "  6  ");
}

#[test]
fn the_scheduler_warns_once_about_a_job_left_in_place_and_runs_the_others() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "mark.toml",
        "name = \"mark\"\n[[task]]\nid = \"touch\"\nrun = \"echo ran >> marker\"\n",
    );
    ok(
        &sandbox,
        &["jobs", "add", "mark.toml", "stuck", "--every", "10m"],
    );
    ok(
        &sandbox,
        &[
            "jobs",
            "add",
            "mark.toml",
            "first",
            "--at",
            "2020-01-01T00:00:00Z",
        ],
    );
    let qdir = sandbox.path(".cairn/jobs/quarantine");
    std::fs::remove_dir(&qdir).unwrap();
    std::fs::write(&qdir, b"not a folder").unwrap();
    damage_job_file(&sandbox, "stuck");
    let mut scheduler = sandbox.spawn(
        &["scheduler", "--state-dir", ".cairn", "--poll", "1s"],
        "sched.out",
        "sched.err",
    );
    wait_for("the first job to run", || {
        show(&sandbox, "first").is_some_and(|job| job["status"] == "completed")
            || scheduler.try_wait().expect("try_wait").is_some()
    });
    // A job added now is run by a later tick: by then the scheduler has listed the jobs
    // several times, each listing leaving `stuck` out again.
    ok(
        &sandbox,
        &[
            "jobs",
            "add",
            "mark.toml",
            "second",
            "--at",
            "2020-01-01T00:00:00Z",
        ],
    );
    wait_for("the second job to run", || {
        show(&sandbox, "second").is_some_and(|job| job["status"] == "completed")
            || scheduler.try_wait().expect("try_wait").is_some()
    });
    let (status, out, err) = stop_scheduler(&sandbox, &mut scheduler);
    assert_eq!(status.code(), Some(OK), "{out}\n{err}");
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("job stuck ")).collect();
    assert_eq!(warnings.len(), 1, "one warning, not one per tick: {err}");
    assert!(warnings[0].starts_with("warning: "), "{err}");
    assert_contains(warnings[0], "left in place at ");
    assert_eq!(sandbox.read("marker").lines().count(), 2, "{out}");
}

/// A job name with terminal escape sequences is shown escaped by `add`, `show` and `list`,
/// never raw (it could recolour or rewrite the operator's terminal); JSON keeps it exact.
#[test]
fn control_characters_in_a_job_name_are_escaped_on_the_terminal() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    let name = "nightly\u{1b}[2J\u{7}";
    let added = ok(
        &sandbox,
        &[
            "jobs",
            "add",
            "echo.toml",
            "n",
            "--every",
            "10m",
            "--name",
            name,
        ],
    );
    let shown = ok(&sandbox, &["jobs", "show", "n", "--state-dir", ".cairn"]);
    let listed = ok(&sandbox, &["jobs", "list", "--state-dir", ".cairn"]);
    for out in [&added, &shown, &listed] {
        assert_lacks(out, "\u{1b}");
        assert_lacks(out, "\u{7}");
    }
    assert_contains(&added, "nightly\\u{1b}[2J\\u{7}");
    assert_contains(&shown, "nightly\\u{1b}[2J\\u{7}");
    assert_eq!(show(&sandbox, "n").expect("shown")["name"], name);
}

/// A command on a job whose file is damaged says what the store did with it (exit 6, like
/// `list`), and the job found gone later says where its copy is (exit 2), until the job is
/// added again and deleted: then it is simply unknown.
#[test]
fn a_damaged_job_is_explained_by_show_pause_resume_and_rm() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    for id in ["shown", "paused", "resumed", "removed"] {
        ok(
            &sandbox,
            &["jobs", "add", "echo.toml", id, "--every", "10m"],
        );
        damage_job_file(&sandbox, id);
    }
    let commands: [&[&str]; 4] = [
        &["jobs", "show", "shown"],
        &["jobs", "pause", "paused"],
        &["jobs", "resume", "resumed"],
        &["jobs", "rm", "removed"],
    ];
    for args in commands {
        let id = args[2];
        let first = sandbox.run(args);
        let err = text(&first.stderr);
        assert_eq!(code(&first), Some(LEFT_OUT), "{args:?}: {err}");
        assert_contains(&err, &format!("job {id} "));
        assert_contains(&err, "fails its checksum");
        assert_contains(&err, &format!(".cairn/jobs/quarantine/{id}-"));
        assert_contains(&err, "add the job again");
        assert_lacks(&err, "could not encode or decode");

        let again = sandbox.run(args);
        let err = text(&again.stderr);
        assert_eq!(code(&again), Some(USAGE), "{args:?}: {err}");
        assert_contains(&err, &format!("no job {id}: its stored entry was damaged"));
        assert_contains(&err, &format!(".cairn/jobs/quarantine/{id}-"));
    }
    // With --json the report is a `job_left_out` line on stderr.
    ok(
        &sandbox,
        &["jobs", "add", "echo.toml", "json", "--every", "10m"],
    );
    damage_job_file(&sandbox, "json");
    let json = sandbox.run(&["jobs", "show", "json", "--json"]);
    assert_eq!(code(&json), Some(LEFT_OUT), "{}", text(&json.stderr));
    assert_eq!(text(&json.stdout).trim(), "");
    let events = left_out_lines(&text(&json.stderr));
    assert_eq!(events.len(), 1, "{}", text(&json.stderr));
    assert_eq!(events[0]["job_id"], "json");

    // Added again and deleted: the old damage no longer explains its absence.
    ok(
        &sandbox,
        &["jobs", "add", "echo.toml", "shown", "--every", "10m"],
    );
    ok(&sandbox, &["jobs", "rm", "shown"]);
    let gone = sandbox.run(&["jobs", "show", "shown"]);
    let err = text(&gone.stderr);
    assert_eq!(code(&gone), Some(USAGE), "{err}");
    assert_contains(&err, "no job shown");
    assert_lacks(&err, "damaged");
}

/// `--tz -05:00` (an offset west of UTC), `--input -v` and `--name -x` are values, not flags;
/// a name longer than the limit is refused with its length, not echoed.
#[test]
fn dash_values_are_taken_and_an_overlong_name_is_refused() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    let added = ok(
        &sandbox,
        &[
            "jobs",
            "add",
            "echo.toml",
            "west",
            "--cron",
            "0 9 * * *",
            "--tz",
            "-05:00",
            "--input",
            "-v",
            "--name",
            "-x",
        ],
    );
    assert_contains(&added, "(-05:00)");
    let job = show(&sandbox, "west").expect("the job exists");
    assert_eq!(job["input"], "-v", "{job}");
    assert_eq!(job["name"], "-x", "{job}");

    let long = "n".repeat(5_000);
    let refused = sandbox.run(&[
        "jobs",
        "add",
        "echo.toml",
        "long",
        "--every",
        "1h",
        "--name",
        &long,
    ]);
    let err = text(&refused.stderr);
    assert_eq!(code(&refused), Some(USAGE), "{err}");
    assert_contains(&err, "5000 bytes long; at most 1024");
    assert!(
        err.len() < 1_000,
        "the name is not echoed: {} bytes",
        err.len()
    );
    assert!(show(&sandbox, "long").is_none());
}

/// `jobs audit` of a job that never existed is an unknown job (exit 2), while a deleted job's
/// records are still printed.
#[test]
fn audit_of_an_unknown_job_is_a_usage_error_and_a_deleted_one_keeps_its_log() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    ok(
        &sandbox,
        &["jobs", "add", "echo.toml", "gone", "--every", "1h"],
    );
    ok(&sandbox, &["jobs", "rm", "gone"]);
    assert_eq!(audit_actions(&sandbox, "gone"), ["created", "deleted"]);
    let unknown = sandbox.run(&["jobs", "audit", "never", "--state-dir", ".cairn"]);
    assert_eq!(code(&unknown), Some(USAGE), "{}", text(&unknown.stdout));
    assert_contains(&text(&unknown.stderr), "no job never");
}

/// Reading jobs writes nothing: in a state folder that never had a job, `jobs list`, `show`
/// and `audit` answer without making `jobs/`, so they also work where the folder may only be
/// read (a read-only mount, another user's state).
#[test]
fn reading_jobs_of_a_state_folder_without_any_makes_no_folder() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
    );
    ok(&sandbox, &["run", "wf.toml"]);
    assert!(list(&sandbox).is_empty());
    assert_contains(&ok(&sandbox, &["jobs", "list"]), "no jobs in .cairn");
    for command in ["show", "audit"] {
        let output = sandbox.run(&["jobs", command, "nightly"]);
        assert_eq!(
            code(&output),
            Some(2),
            "{command}: {}",
            text(&output.stderr)
        );
        assert_contains(&text(&output.stderr), "no job nightly");
    }
    assert!(
        !sandbox.path(".cairn/jobs").exists(),
        "a read made .cairn/jobs"
    );
}

/// An `--at` time long past is taken (the job runs at the next tick, as documented) but said
/// on stderr, since it is more likely a typo in the date; a future one, or one just past, is
/// taken silently.
#[test]
fn an_at_time_long_past_is_taken_with_a_warning() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "echo.toml",
        "name = \"e\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
    );
    let past = sandbox.run(&[
        "jobs",
        "add",
        "echo.toml",
        "typo",
        "--at",
        "2020-12-31T18:00:00Z",
    ]);
    assert_eq!(code(&past), Some(OK), "{}", text(&past.stderr));
    let stderr = text(&past.stderr);
    assert!(
        stderr.contains("warning: job typo: --at 2020-12-31T18:00:00Z was ")
            && stderr.contains("runs at the scheduler's next tick"),
        "{stderr}"
    );
    let just_past = chrono::Utc::now() - chrono::Duration::minutes(1);
    let just_past = just_past.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (id, at) in [
        ("later", "2999-01-01T00:00:00Z"),
        ("now", just_past.as_str()),
    ] {
        let added = sandbox.run(&["jobs", "add", "echo.toml", id, "--at", at]);
        assert_eq!(code(&added), Some(OK), "{}", text(&added.stderr));
        assert!(
            !text(&added.stderr).contains("warning"),
            "{at}: {}",
            text(&added.stderr)
        );
    }
}

/// Moves job `id`'s next run time back by `ms`, through the job store's own API (so its
/// checksum and version stay right), as if nothing had served it since.
fn make_late(sandbox: &Sandbox, id: &str, ms: u64) {
    edit_job(sandbox, id, |document| {
        let due = document["next_run_at"].as_u64().expect("a next run");
        document["next_run_at"] = (due - ms).into();
    });
}

/// Rewrites job `id`'s stored document with `edit`, as a person with an editor could.
fn edit_job(sandbox: &Sandbox, id: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let store =
        cairn_cli::jobs::open_job_store(&sandbox.path(".cairn"), cairn_cli::store::Adapter::File)
            .expect("the job store");
    let id = cairn_checkpoint::JobId::new(id).expect("a job id");
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            let stored = store.get(&id).await.unwrap().expect("the job");
            let mut document = stored.document.clone();
            edit(&mut document);
            store
                .put(&id, Some(stored.version), &document)
                .await
                .unwrap()
                .expect("no conflict");
        });
}

/// `jobs list` calls an active job overdue when it was due more than a minute ago and no run
/// of it is going (no scheduler serves the folder); a job not yet due is not.
#[test]
fn jobs_list_flags_a_job_nothing_has_served() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "echo.toml",
        "name = \"e\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
    );
    ok(
        &sandbox,
        &["jobs", "add", "echo.toml", "late", "--every", "1h"],
    );
    ok(
        &sandbox,
        &["jobs", "add", "echo.toml", "fine", "--every", "1h"],
    );
    make_late(&sandbox, "late", 2 * 3_600_000);

    let table = ok(&sandbox, &["jobs", "list"]);
    let row = |id: &str| {
        table
            .lines()
            .find(|line| line.starts_with(id))
            .unwrap_or_else(|| panic!("a row for {id}: {table}"))
            .to_owned()
    };
    assert!(row("late").contains(" overdue "), "{table}");
    assert!(row("fine").contains(" active "), "{table}");
    assert!(
        table.contains("is a `cairn scheduler --state-dir"),
        "{table}"
    );
    let json = ok(&sandbox, &["jobs", "list", "--json"]);
    for line in json.lines() {
        let job: serde_json::Value = serde_json::from_str(line).expect("JSON");
        assert_eq!(job["overdue"], job["id"] == "late", "{line}");
        assert_eq!(job["status"], "active", "the stored status is kept: {line}");
    }

    // A run of the job that a live process drives (a run longer than its interval) means
    // the job is served: not overdue.
    sandbox.write(
        "blocks.toml",
        "name = \"b\"\n[[task]]\nid = \"w\"\nrun = \"touch started; while ! test -f release; do sleep 0.05; done\"\n",
    );
    let mut driver = sandbox.spawn(
        &[
            "run",
            "blocks.toml",
            "--scope",
            "job-late",
            "--state-dir",
            ".cairn",
        ],
        "run.out",
        "run.err",
    );
    wait_for("the job's run to start", || {
        sandbox.path("started").exists()
    });
    let table = ok(&sandbox, &["jobs", "list"]);
    assert!(!table.contains("overdue"), "{table}");
    sandbox.touch("release");
    assert_eq!(
        wait_exit(&mut driver).code(),
        Some(OK),
        "{}",
        sandbox.read("run.err")
    );
}

/// Jobs kept in two state folders need two schedulers: `jobs add` says so when a job goes
/// beside its workflow file while the current folder's `.cairn` has jobs, and a scheduler
/// watching a folder with no jobs says where jobs go by default.
#[test]
fn scattered_job_stores_are_pointed_out() {
    let sandbox = Sandbox::new();
    let workflow = "name = \"e\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n";
    sandbox.write("here.toml", workflow);
    std::fs::create_dir(sandbox.path("backup")).unwrap();
    sandbox.write("backup/wf.toml", workflow);
    let add = |args: &[&str]| {
        let output = sandbox.run(args);
        assert_eq!(code(&output), Some(OK), "{}", text(&output.stderr));
        text(&output.stderr)
    };
    // The first job store: nothing to say.
    let first = add(&["jobs", "add", "here.toml", "here", "--every", "1h"]);
    assert!(!first.contains("warning"), "{first}");
    let scattered = add(&["jobs", "add", "backup/wf.toml", "nightly", "--every", "1h"]);
    assert!(
        scattered.contains("warning: this job is kept in backup/.cairn")
            && scattered.contains("give `jobs add` and the scheduler the same --state-dir"),
        "{scattered}"
    );
    let together = add(&[
        "jobs",
        "add",
        "backup/wf.toml",
        "weekly",
        "--every",
        "1h",
        "--state-dir",
        ".cairn",
    ]);
    assert!(!together.contains("warning"), "{together}");

    std::fs::create_dir_all(sandbox.path("empty/.cairn")).unwrap();
    let mut scheduler = sandbox.spawn(
        &["scheduler", "--state-dir", "empty/.cairn"],
        "sched.out",
        "sched.err",
    );
    wait_for("the scheduler's warning", || {
        sandbox
            .read("sched.err")
            .contains("there are no jobs in empty/.cairn yet")
    });
    let (status, _, stderr) = stop_scheduler(&sandbox, &mut scheduler);
    assert_eq!(status.code(), Some(OK), "{stderr}");
}

/// A failed job run's `error` in the scheduler's `run_finished` is the run's recorded error,
/// `{kind, message}`, as `cairn runs --json` and a failed `cairn run --json` have it.
#[test]
fn a_failed_runs_error_is_the_same_object_in_every_json_stream() {
    let sandbox = Sandbox::new();
    add_broken_job(&sandbox);
    let mut scheduler = sandbox.spawn(
        &[
            "scheduler",
            "--state-dir",
            ".cairn",
            "--poll",
            "1s",
            "--json",
        ],
        "sched.out",
        "sched.err",
    );
    wait_for("the job's run to fail", || {
        sandbox.read("sched.out").contains("\"outcome\":\"failed\"")
    });
    let (_, out, _) = stop_scheduler(&sandbox, &mut scheduler);
    let finished: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == "run_finished" && event["outcome"] == "failed")
        .collect();
    assert_eq!(finished.len(), 1, "{out}");
    let runs = sandbox.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(finished[0]["error"], runs[0]["error"], "{out}");
    assert_eq!(finished[0]["error"]["kind"], "task_failed", "{out}");

    // `cairn run --json` of the same file says the same.
    let run = sandbox.run(&["run", "broken.toml", "--scope", "by-hand", "--json"]);
    let stdout = text(&run.stdout);
    let finished: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == "run_finished")
        .collect();
    assert_eq!(finished.len(), 1, "{stdout}");
    assert_eq!(finished[0]["error"]["kind"], "task_failed", "{stdout}");
    assert_contains(
        finished[0]["error"]["message"].as_str().expect("a message"),
        "`down`",
    );
}

/// An active job stored with no next run time (edited by hand) is given one by the scheduler,
/// which says so: the repair is audited, and the WARN it logs is not shown by default.
#[test]
fn the_scheduler_says_when_it_reschedules_a_job_stored_with_no_next_run() {
    let sandbox = Sandbox::new();
    sandbox.write("echo.toml", ECHO);
    ok(
        &sandbox,
        &["jobs", "add", "echo.toml", "edited", "--every", "10m"],
    );
    edit_job(&sandbox, "edited", |document| {
        document["next_run_at"] = serde_json::Value::Null;
    });
    let mut scheduler = sandbox.spawn(
        &["scheduler", "--state-dir", ".cairn", "--poll", "1s"],
        "sched.out",
        "sched.err",
    );
    wait_for("the job to be rescheduled", || {
        show(&sandbox, "edited").is_some_and(|job| job["next_run_at"].is_u64())
            || scheduler.try_wait().expect("try_wait").is_some()
    });
    let (status, out, err) = stop_scheduler(&sandbox, &mut scheduler);
    assert_eq!(status.code(), Some(OK), "{out}\n{err}");
    let line = out
        .lines()
        .find(|line| line.starts_with("job edited: "))
        .unwrap_or_else(|| panic!("no line about the job: {out}"));
    assert_contains(line, "no next run time stored");
    assert_contains(line, "next run set from its schedule: ");
    assert!(audit_actions(&sandbox, "edited").contains(&"resumed".to_owned()));
}

/// A change stored without its audit record (the audit log cannot be opened: here a folder
/// stands where `audit.jsonl` goes) is still exit 5, but says which change was made and that
/// it stands, so nobody repeats it; the job really did change.
#[test]
fn a_change_whose_audit_record_fails_says_it_was_made() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", ECHO);
    ok(
        &sandbox,
        &["jobs", "add", "wf.toml", "nightly", "--every", "1h"],
    );
    let audit = sandbox.path(".cairn/jobs/audit.jsonl");
    std::fs::remove_file(&audit).expect("remove the audit log");
    std::fs::create_dir(&audit).expect("a folder in its place");
    let steps: [(&[&str], &str, Option<&str>); 4] = [
        (&["jobs", "pause", "nightly"], "paused", Some("paused")),
        (&["jobs", "resume", "nightly"], "resumed", Some("active")),
        (&["jobs", "rm", "nightly"], "deleted", None),
        (
            &["jobs", "add", "wf.toml", "nightly", "--every", "1h"],
            "added",
            Some("active"),
        ),
    ];
    for (args, verb, status) in steps {
        let output = sandbox.run(args);
        let stderr = text(&output.stderr);
        assert_eq!(code(&output), Some(STORE), "{args:?}: {stderr}");
        assert_contains(
            &stderr,
            &format!("job nightly was {verb}, and that change is stored and stands"),
        );
        assert_contains(&stderr, "`cairn jobs audit nightly` does not list it");
        // The action in words, not as its Rust variant (`audit record (Paused)`).
        assert_lacks(&stderr, "audit record (");
        let now = show(&sandbox, "nightly").map(|job| job["status"].clone());
        assert_eq!(now, status.map(serde_json::Value::from), "{args:?}");
    }
}
