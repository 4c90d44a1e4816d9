//! `cairn jobs` and `cairn scheduler` when storage fails, with the real binary: a job write
//! on a full disk leaves no temp file (and the next write removes older ones); a scheduled
//! run stopped by its state store is reported as `cairn run` reports it, counts toward the
//! job's breaker, and is named with its cause by a later scheduler; a damaged run that cannot
//! be moved to quarantine is named once; a job id may not start with `-`.
//!
//! Writes are made to fail without root, as in `store_failure.rs`: the process gets a file
//! size limit (`ulimit -f`) with `SIGXFSZ` ignored, so a write past it fails with `EFBIG`.

mod common;

use std::process::{Child, Command, Stdio};

use common::{Sandbox, assert_contains, assert_lacks, signal, text, wait_exit, wait_for};

/// A chain of this many tasks outgrows the journal's first preallocation mid-run.
const CHAIN: usize = 1000;
/// The file size limit in 512-byte blocks for the scheduler: above the journal's first
/// preallocation and the job files, below what the chain's journal needs.
const LIMIT_BLOCKS: u32 = 781;

fn chain_workflow() -> String {
    let mut text = String::from("name = \"chain\"\n");
    for n in 0..CHAIN {
        text.push_str(&format!(
            "[[task]]\nid = \"t{n:04}\"\nrun = \"echo t{n:04} >> effects\"\n"
        ));
        if n > 0 {
            text.push_str(&format!("depends_on = [\"t{:04}\"]\n", n - 1));
        }
    }
    text
}

/// `cairn ARGS` under a file size limit of `blocks`, with its output in files.
fn spawn_limited(sandbox: &Sandbox, blocks: u32, args: &[&str], out: &str, err: &str) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {blocks}; exec \"$0\" \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .current_dir(sandbox.root())
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(sandbox.path(out)).unwrap())
        .stderr(std::fs::File::create(sandbox.path(err)).unwrap())
        .spawn()
        .expect("spawn sh")
}

fn temp_files(sandbox: &Sandbox) -> Vec<String> {
    std::fs::read_dir(sandbox.path(".cairn/jobs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".tmp-"))
        .collect()
}

#[test]
fn a_job_write_on_a_full_disk_leaves_no_temp_file_and_the_next_write_removes_old_ones() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"wf\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
    );
    let add = [
        "jobs",
        "add",
        "wf.toml",
        "j1",
        "--every",
        "1h",
        "--state-dir",
        ".cairn",
    ];
    let mut child = spawn_limited(&sandbox, 0, &add, "add.out", "add.err");
    let status = wait_exit(&mut child);
    // Its message cannot be checked: under the limit, writing it to a file fails too.
    assert_eq!(status.code(), Some(5), "{}", sandbox.read("add.err"));
    assert_eq!(temp_files(&sandbox), Vec::<String>::new());

    // One left by an earlier build, or by a write killed between create and rename.
    sandbox.write(".cairn/jobs/.tmp-j1-4242-0", "{\"half\":");
    let listed = sandbox.run(&["jobs", "list", "--state-dir", ".cairn"]);
    assert_eq!(listed.status.code(), Some(0), "{}", text(&listed.stderr));
    assert_eq!(
        temp_files(&sandbox),
        [".tmp-j1-4242-0"],
        "a read removes nothing"
    );
    let added = sandbox.run(&add);
    assert_eq!(added.status.code(), Some(0), "{}", text(&added.stderr));
    assert_eq!(temp_files(&sandbox), Vec::<String>::new());
}

/// The job `j`'s document, from `cairn jobs show j --json`.
fn job(sandbox: &Sandbox) -> serde_json::Value {
    let shown = sandbox.run(&["jobs", "show", "j", "--json", "--state-dir", ".cairn"]);
    assert_eq!(shown.status.code(), Some(0), "{}", text(&shown.stderr));
    serde_json::from_str(text(&shown.stdout).trim()).expect("one JSON document")
}

/// Adds a one-shot job `j` over the chain workflow, due at once (it is retried a minute
/// later, so one run fails here), and runs a scheduler under the size limit until that run
/// stops on its store and the failure is counted. Returns its stdout and stderr.
fn first_scheduler_stops_on_its_store(sandbox: &Sandbox, json: bool) -> (String, String) {
    sandbox.write("wf.toml", &chain_workflow());
    let added = sandbox.run(&[
        "jobs",
        "add",
        "wf.toml",
        "j",
        "--at",
        "2020-01-01T00:00:00Z",
        "--state-dir",
        ".cairn",
    ]);
    assert_eq!(added.status.code(), Some(0), "{}", text(&added.stderr));
    let mut args = vec!["scheduler", "--poll", "1s", "--state-dir", ".cairn"];
    if json {
        args.push("--json");
    }
    let mut first = spawn_limited(sandbox, LIMIT_BLOCKS, &args, "s1.out", "s1.err");
    wait_for("the run's store failure", || {
        sandbox.read("s1.out").contains("its state store failed")
    });
    // Its outcome is recorded (the job store's small files fit under the limit).
    wait_for("the failure counted", || {
        job(sandbox)["consecutive_errors"] == 1
    });
    signal(i64::from(first.id()), "TERM");
    let status = wait_exit(&mut first);
    let (stdout, stderr) = (sandbox.read("s1.out"), sandbox.read("s1.err"));
    assert_eq!(status.code(), Some(0), "{stdout}\n{stderr}");
    (stdout, stderr)
}

/// Makes job `j` due again at once and runs a scheduler without the limit until its tick
/// is refused: a one-shot job never begins a fresh run beside its interrupted run, which
/// would redo that run's done tasks. Returns its stdout and stderr.
fn second_scheduler_waits_for_the_stranded_run(sandbox: &Sandbox, json: bool) -> (String, String) {
    for verb in ["pause", "resume"] {
        let changed = sandbox.run(&["jobs", verb, "j", "--state-dir", ".cairn"]);
        assert_eq!(changed.status.code(), Some(0), "{}", text(&changed.stderr));
    }
    let mut args = vec!["scheduler", "--poll", "1s", "--state-dir", ".cairn"];
    if json {
        args.push("--json");
    }
    let mut second = sandbox.spawn(&args, "s2.out", "s2.err");
    wait_for("the job's tick to be refused", || {
        sandbox
            .read("s2.out")
            .contains("of this one-shot job is interrupted, not completed")
    });
    signal(i64::from(second.id()), "TERM");
    wait_exit(&mut second);
    assert_eq!(sandbox.runs().len(), 1, "{:?}", sandbox.runs());
    (sandbox.read("s2.out"), sandbox.read("s2.err"))
}

/// The JSON lines of `out` whose `event` is `event`.
fn events(out: &str, event: &str) -> Vec<serde_json::Value> {
    out.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|value| value["event"] == event)
        .collect()
}

#[test]
fn a_scheduled_run_stopped_by_its_store_is_reported_counted_and_named_after_a_restart() {
    let sandbox = Sandbox::new();
    let (stdout, stderr) = first_scheduler_stops_on_its_store(&sandbox, false);
    let run_id = sandbox.only_run_id();
    let stopped = format!("job j: run {run_id} stopped: its state store failed, not a task");
    assert_contains(&stdout, &stopped);
    // Said once: the run's generic failure line would only repeat it.
    assert_eq!(stdout.matches(&stopped).count(), 1, "{stdout}");
    assert_contains(&stdout, "File too large");
    assert_contains(&stderr, "not because a task failed");
    assert_contains(
        &stderr,
        "counts as a failed run for the job's circuit breaker",
    );
    assert_contains(&stderr, &format!("cairn resume {run_id} --state-dir "));
    assert_lacks(&stderr, "killed?");
    let noted = job(&sandbox);
    assert_eq!(
        noted["store_failed_runs"][0]["run_id"],
        run_id.as_str(),
        "{noted}"
    );

    // The new scheduler names the run it finds `running` with the cause the first one
    // recorded, and leaves it to a person (a one-shot job's run is not redone).
    let (_, stderr) = second_scheduler_waits_for_the_stranded_run(&sandbox, false);
    assert_contains(
        &stderr,
        &format!("run {run_id} of job j was left `running` by "),
    );
    assert_contains(&stderr, "which stopped it because its state store failed");
    assert_contains(&stderr, "File too large");
    assert_lacks(&stderr, "killed?");
}

#[test]
fn with_json_a_run_stopped_by_its_store_and_its_cause_after_a_restart_are_events() {
    let sandbox = Sandbox::new();
    let (stdout, _) = first_scheduler_stops_on_its_store(&sandbox, true);
    let run_id = sandbox.only_run_id();
    let failed = events(&stdout, "run_store_failed");
    assert_eq!(failed.len(), 1, "{stdout}");
    let failed = &failed[0];
    assert_eq!(failed["job_id"], "j", "{failed}");
    assert_eq!(failed["run_id"], run_id.as_str(), "{failed}");
    assert_eq!(failed["counted"], true, "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("File too large"),
        "{failed}"
    );
    let resume = failed["commands"]["resume"].as_str().unwrap();
    assert!(
        resume.starts_with(&format!("cairn resume {run_id} --state-dir ")),
        "{failed}"
    );

    let (stdout, _) = second_scheduler_waits_for_the_stranded_run(&sandbox, true);
    let stranded = events(&stdout, "run_stranded");
    assert_eq!(stranded.len(), 1, "{stdout}");
    let cause = &stranded[0];
    assert_eq!(cause["run_id"], run_id.as_str(), "{cause}");
    assert!(
        cause["store_failed"]["error"]
            .as_str()
            .unwrap()
            .contains("File too large"),
        "{cause}"
    );
    assert!(cause["store_failed"]["at"].as_u64().unwrap() > 0, "{cause}");
}

/// Adds job `j` over `wf.toml`, due every second, and starts a scheduler with its output
/// in `s.out` and `s.err`.
fn every_second_under_a_scheduler(sandbox: &Sandbox) -> Child {
    let added = sandbox.run(&[
        "jobs",
        "add",
        "wf.toml",
        "j",
        "--every",
        "1s",
        "--state-dir",
        ".cairn",
    ]);
    assert_eq!(added.status.code(), Some(0), "{}", text(&added.stderr));
    sandbox.spawn(
        &["scheduler", "--poll", "1s", "--state-dir", ".cairn"],
        "s.out",
        "s.err",
    )
}

#[test]
fn the_scheduler_names_a_damaged_run_it_cannot_quarantine_once() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "damaged.toml",
        "name = \"damaged\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
    );
    sandbox.write(
        "wf.toml",
        "name = \"wf\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
    );
    let ran = sandbox.run(&["run", "damaged.toml", "--state-dir", ".cairn"]);
    assert_eq!(ran.status.code(), Some(0), "{}", text(&ran.stderr));
    let damaged = sandbox.only_run_id();
    std::fs::write(
        sandbox.path(&format!(".cairn/runs/{damaged}/meta.json")),
        b"garbage, not JSON",
    )
    .unwrap();
    // A file where the quarantine folder belongs: the move fails (whoever runs the test).
    let quarantine = sandbox.path(".cairn/quarantine");
    std::fs::remove_dir(&quarantine).unwrap();
    std::fs::write(&quarantine, b"in the way").unwrap();
    let mut scheduler = every_second_under_a_scheduler(&sandbox);
    // Each tick lists the job's runs; the runs themselves begin and complete (nothing can
    // be under a file, so no run id is taken by a quarantined one).
    wait_for("three ticks of the job", || {
        sandbox.read("s.out").matches(" started (").count() >= 3
    });
    signal(i64::from(scheduler.id()), "TERM");
    wait_exit(&mut scheduler);
    let stderr = sandbox.read("s.err");
    let named = format!("warning: run {damaged} is damaged");
    assert_eq!(stderr.matches(&named).count(), 1, "{stderr}");
    assert_contains(&stderr, &format!("left in place at .cairn/runs/{damaged}"));
    assert!(
        sandbox
            .path(&format!(".cairn/runs/{damaged}/meta.json"))
            .is_file()
    );
}

#[test]
fn the_scheduler_names_a_run_it_moves_to_quarantine_once() {
    let sandbox = Sandbox::new();
    for name in ["old", "damaged", "wf"] {
        sandbox.write(
            &format!("{name}.toml"),
            &format!("name = \"{name}\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n"),
        );
    }
    // One run quarantined before the scheduler starts: not news, so not named.
    let ran = sandbox.run(&["run", "old.toml", "--state-dir", ".cairn"]);
    assert_eq!(ran.status.code(), Some(0), "{}", text(&ran.stderr));
    let old = sandbox.only_run_id();
    let meta = |run: &str| sandbox.path(&format!(".cairn/runs/{run}/meta.json"));
    std::fs::write(meta(&old), b"garbage, not JSON").unwrap();
    let listed = sandbox.run(&["runs", "--all", "--state-dir", ".cairn"]);
    assert_contains(
        &text(&listed.stderr),
        &format!("run {old} is in quarantine"),
    );
    let ran = sandbox.run(&["run", "damaged.toml", "--state-dir", ".cairn"]);
    assert_eq!(ran.status.code(), Some(0), "{}", text(&ran.stderr));
    let damaged = sandbox.only_run_id();
    let mut scheduler = every_second_under_a_scheduler(&sandbox);
    wait_for("a tick of the job", || {
        sandbox.read("s.out").contains(" completed")
    });
    // Damaged while the scheduler runs: the next tick's listing moves it aside.
    std::fs::write(meta(&damaged), b"garbage, not JSON").unwrap();
    wait_for("the damaged run to move to quarantine", || {
        !meta(&damaged).exists()
    });
    let ticks = sandbox.read("s.out").matches(" completed").count();
    wait_for("two more ticks", || {
        sandbox.read("s.out").matches(" completed").count() >= ticks + 2
    });
    signal(i64::from(scheduler.id()), "TERM");
    wait_exit(&mut scheduler);
    let stderr = sandbox.read("s.err");
    let named = format!("warning: run {damaged} is in quarantine");
    assert_eq!(stderr.matches(&named).count(), 1, "{stderr}");
    assert_lacks(&stderr, &format!("run {old} is in quarantine"));
}

#[test]
fn a_job_id_starting_with_a_dash_is_refused_and_a_stored_one_is_left_in_place() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"wf\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
    );
    let added = sandbox.run(&[
        "jobs",
        "add",
        "wf.toml",
        "--every",
        "1h",
        "--state-dir",
        ".cairn",
        "--",
        "-x",
    ]);
    assert_eq!(added.status.code(), Some(2), "{}", text(&added.stderr));
    assert_contains(&text(&added.stderr), "must not start with '-'");
    let shown = sandbox.run(&["jobs", "show", "--state-dir", ".cairn", "--", "-x"]);
    assert_eq!(shown.status.code(), Some(2), "{}", text(&shown.stderr));
    assert_contains(&text(&shown.stderr), "must not start with '-'");

    // A job file an earlier build wrote under that name: listed as left out, not moved.
    let good = sandbox.run(&[
        "jobs",
        "add",
        "wf.toml",
        "good",
        "--every",
        "1h",
        "--state-dir",
        ".cairn",
    ]);
    assert_eq!(good.status.code(), Some(0), "{}", text(&good.stderr));
    let bytes = std::fs::read(sandbox.path(".cairn/jobs/good.json")).unwrap();
    std::fs::write(sandbox.path(".cairn/jobs/-x.json"), &bytes).unwrap();
    let listed = sandbox.run(&["jobs", "list", "--state-dir", ".cairn"]);
    assert_contains(&text(&listed.stdout), "good");
    assert_contains(&text(&listed.stderr), "-x.json");
    assert_contains(&text(&listed.stderr), "must not start with '-'");
    assert_eq!(
        std::fs::read(sandbox.path(".cairn/jobs/-x.json")).unwrap(),
        bytes
    );
}
