//! The state store failing under a run (a full disk, a failed write): the run stops with exit
//! 5 and the resume command, not the failed-run choices; a task is shown done only once its
//! completion is recorded, so no task shown done runs again on resume; and a run whose end
//! could not be recorded exits 5 too.
//!
//! The journal write is made to fail without root or a small file system: the run's process
//! gets a file size limit (`ulimit -f`) with `SIGXFSZ` ignored (an ignored signal stays
//! ignored across `exec`), so the write that grows the journal past the limit fails with
//! `EFBIG`, as a full disk fails it with `ENOSPC`.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use common::{Sandbox, assert_contains, assert_lacks, text, wait_exit};

/// Tasks in the chain: enough that the journal outgrows its first preallocation mid-run.
const CHAIN: usize = 1000;
/// The file size limit in 512-byte blocks (`ulimit -f`): above the journal's first
/// preallocation for this workflow, below what the whole run writes.
const LIMIT_BLOCKS: u32 = 781;

/// A chain of tasks, each appending its id to `effects` once per run of its command.
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

/// Runs `cairn ARGS` under the file size limit; returns (exit code, stdout, stderr).
fn run_limited(sandbox: &Sandbox, args: &[&str]) -> (Option<i32>, String, String) {
    run_under_limit(sandbox, LIMIT_BLOCKS, args)
}

/// Runs `cairn ARGS` with a file size limit of `blocks` 512-byte blocks.
fn run_under_limit(sandbox: &Sandbox, blocks: u32, args: &[&str]) -> (Option<i32>, String, String) {
    let stdout = std::fs::File::create(sandbox.path("limited.out")).unwrap();
    let stderr = std::fs::File::create(sandbox.path("limited.err")).unwrap();
    let mut child = Command::new("sh")
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
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("spawn sh");
    let status = wait_exit(&mut child);
    (
        status.code(),
        sandbox.read("limited.out"),
        sandbox.read("limited.err"),
    )
}

/// How many times each task's command ran.
fn effects(sandbox: &Sandbox) -> BTreeMap<String, usize> {
    let mut runs = BTreeMap::new();
    for line in sandbox.read("effects").lines() {
        *runs.entry(line.to_owned()).or_default() += 1;
    }
    runs
}

#[test]
fn a_store_failure_mid_run_exits_5_and_no_task_shown_done_runs_again() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", &chain_workflow());
    let (code, stdout, stderr) = run_limited(&sandbox, &["run", "wf.toml"]);
    let ran = effects(&sandbox);
    assert!(
        !ran.is_empty() && ran.len() < CHAIN,
        "the journal write should fail mid-run; {} of {CHAIN} tasks ran (adjust LIMIT_BLOCKS)\n{stderr}",
        ran.len()
    );
    assert_eq!(
        code,
        Some(5),
        "stdout tail: {:?}\nstderr: {stderr}",
        stdout.lines().last()
    );
    let run_id = sandbox.only_run_id();
    assert_contains(
        &stdout,
        &format!("run {run_id} stopped: its state store failed"),
    );
    assert_contains(&stdout, "File too large");
    assert_contains(&stderr, "not because a task failed");
    assert_contains(
        &stderr,
        &format!("cairn resume {run_id} --state-dir .cairn"),
    );
    // The failed-run choices do not apply: `--force` would resume this interrupted run.
    assert_lacks(&stderr, "--force");
    assert_lacks(&stderr, "Ways forward");
    // The task whose command had exited when the write failed is named, not shown done.
    let last = ran.keys().last().unwrap().clone();
    assert_lacks(&stdout, &format!("done {last} "));
    assert_contains(
        &stdout,
        &format!("not recorded {last}: its command exited 0"),
    );

    let resumed = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    let ran = effects(&sandbox);
    assert_eq!(ran.len(), CHAIN, "every task ran");
    for (task, times) in &ran {
        if *times > 1 {
            assert_lacks(&stdout, &format!("done {task} "));
        }
    }
}

#[test]
fn with_json_a_store_failure_is_one_event_and_task_done_only_follows_a_record() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", &chain_workflow());
    let (code, stdout, stderr) = run_limited(&sandbox, &["run", "wf.toml", "--json"]);
    assert_eq!(code, Some(5), "{stderr}");
    assert_eq!(stderr, "", "with --json only JSON lines, on stdout");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let last = events.last().expect("events");
    assert_eq!(last["event"], "run_store_failed", "{last}");
    assert_eq!(last["status"], "running");
    let run_id = sandbox.only_run_id();
    assert_eq!(
        last["commands"]["resume"],
        format!("cairn resume {run_id} --state-dir .cairn")
    );
    assert!(!events.iter().any(|e| e["event"] == "run_finished"));
    let done: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "task_done")
        .map(|e| e["task"].as_str().unwrap())
        .collect();
    let not_recorded: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "task_not_recorded")
        .map(|e| e["task"].as_str().unwrap())
        .collect();
    assert_eq!(not_recorded.len(), 1, "{not_recorded:?}");
    assert!(!done.contains(&not_recorded[0]));
    assert_eq!(last["tasks_done"], done.len());

    let resumed = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    for (task, times) in effects(&sandbox) {
        if times > 1 {
            assert!(
                !done.contains(&task.as_str()),
                "{task} was shown done and ran again"
            );
        }
    }
}

/// A run whose tasks all finished but whose end could not be written (here the temp file
/// of `meta.json` is blocked by a folder of that name) exits 5 and says how to record it.
#[test]
fn a_run_whose_end_cannot_be_recorded_exits_5_and_a_resume_records_it() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"fin\"\n[[task]]\nid = \"a\"\nrun = \"echo a >> effects; mkdir .cairn/runs/$CAIRN_RUN_ID/meta.json.tmp\"\n",
    );
    let output = sandbox.run(&["run", "wf.toml"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    let run_id = sandbox.only_run_id();
    assert_contains(
        &stderr,
        &format!("run {run_id} ended, but recording its end failed"),
    );
    assert_contains(
        &stderr,
        &format!("cairn resume {run_id} --state-dir .cairn"),
    );
    assert_eq!(sandbox.runs()[0]["status"], "running");
    assert_contains(
        &text(&output.stdout),
        "completed: 1 task(s) done (but its end is not recorded: see below)",
    );

    std::fs::remove_dir(sandbox.path(&format!(".cairn/runs/{run_id}/meta.json.tmp"))).unwrap();
    let resumed = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    assert_eq!(sandbox.runs()[0]["status"], "completed");
    assert_eq!(effects(&sandbox)["a"], 1, "the done task did not run again");
}

/// With `--json`, the `run_finished` of a run whose end could not be recorded says
/// `"recorded": false`, so a script keyed on its outcome does not take the run for over.
#[test]
fn with_json_a_run_whose_end_is_not_recorded_says_so_in_run_finished() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"fin\"\n[[task]]\nid = \"a\"\nrun = \"mkdir .cairn/runs/$CAIRN_RUN_ID/meta.json.tmp\"\n",
    );
    let output = sandbox.run(&["run", "wf.toml", "--json"]);
    assert_eq!(output.status.code(), Some(5), "{}", text(&output.stderr));
    let events: Vec<serde_json::Value> = text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let finished = events
        .iter()
        .find(|e| e["event"] == "run_finished")
        .expect("a run_finished event");
    assert_eq!(finished["outcome"], "completed");
    assert_eq!(finished["recorded"], false, "{finished}");
    assert!(events.iter().any(|e| e["event"] == "run_end_not_recorded"));

    // A run whose end is recorded says so too.
    let other = Sandbox::new();
    other.write(
        "wf.toml",
        "name = \"ok\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
    );
    let output = other.run(&["run", "wf.toml", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    assert_contains(&text(&output.stdout), "\"recorded\":true");
}

/// Output that cannot be written (the file size limit stands in for a full disk) is reported,
/// not lost silently: a warning names the file and how much is missing. The task is still
/// done: its command ran, and failing it would run it again.
#[test]
fn output_that_cannot_be_kept_is_reported_and_the_task_stays_done() {
    let sandbox = Sandbox::new();
    let printed = 500_000;
    sandbox.write(
        "wf.toml",
        &format!(
            "name = \"loud\"\n[[task]]\nid = \"big\"\nrun = \"head -c {printed} /dev/zero | tr '\\\\0' a\"\n"
        ),
    );
    let (code, stdout, stderr) = run_limited(&sandbox, &["run", "wf.toml"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_contains(&stdout, "done big");
    let run_id = sandbox.only_run_id();
    let file = sandbox.path(&format!(".cairn/output/{run_id}/big.1.stdout"));
    let kept = std::fs::metadata(&file).unwrap().len();
    assert!(kept < printed, "the limit cut the file at {kept} bytes");
    assert_contains(
        &stderr,
        &format!(
            "warning: the stdout of big (attempt 1) is not fully kept: writing {} failed after {kept} bytes",
            file.canonicalize().unwrap().display()
        ),
    );
    assert_contains(
        &stderr,
        &format!("{} bytes of output are not kept", printed - kept),
    );

    let (_, stdout, _) = run_limited(&sandbox, &["run", "wf.toml", "--force", "--json"]);
    let lost: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|event| event["event"] == "output_not_kept")
        .collect();
    assert_eq!(lost.len(), 1, "{stdout}");
    assert_eq!(lost[0]["stream"], "stdout");
    assert_eq!(lost[0]["task"], "big");
}

#[test]
fn a_run_whose_workflow_copy_cannot_be_written_leaves_no_output_folder_behind() {
    let sandbox = Sandbox::new();
    // A workflow larger than the file size limit: its copy in the run's output folder is
    // the first file that cannot be written, before the run begins.
    let padding = "#".repeat(LIMIT_BLOCKS as usize * 512 + 4096);
    sandbox.write(
        "big.toml",
        &format!(
            "{padding}\nname = \"big\"\n[[task]]\nid = \"only\"\nrun = \"echo ran >> effects\"\n"
        ),
    );
    let (code, stdout, stderr) = run_limited(&sandbox, &["run", "big.toml"]);
    assert_eq!(code, Some(5), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_contains(&stderr, ".workflow.toml");
    assert!(
        !sandbox.path("effects").exists(),
        "no task may run when the run never began"
    );
    assert!(
        sandbox.runs().is_empty(),
        "no run was begun: {:?}",
        sandbox.runs()
    );
    let output = sandbox.path(".cairn/output");
    let left: Vec<_> = std::fs::read_dir(&output)
        .map(|entries| entries.map(|entry| entry.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "output folders of a run that never began: {left:?}"
    );

    // Without the limit the same workflow runs, and its folder is kept.
    let done = sandbox.run(&["run", "big.toml"]);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    let run_id = sandbox.only_run_id();
    assert!(
        sandbox
            .path(&format!(".cairn/output/{run_id}/.workflow.toml"))
            .exists()
    );
}

#[test]
fn a_run_that_cannot_begin_never_shows_its_id() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"small\"\n[[task]]\nid = \"only\"\nrun = \"echo ran >> effects\"\n",
    );
    // The input is stored in the run's metadata, so with a 2 KiB limit the workflow copy is
    // written and the begin itself fails.
    let input = "i".repeat(8 * 1024);
    for json in [false, true] {
        let mut args = vec!["run", "wf.toml", "--input", &input];
        if json {
            args.push("--json");
        }
        let (code, stdout, stderr) = run_under_limit(&sandbox, 4, &args);
        assert_eq!(code, Some(5), "stdout:\n{stdout}\nstderr:\n{stderr}");
        assert_contains(&stderr, "cannot begin durable run");
        assert_contains(&stderr, "meta.json");
        // A shown id must name a run `cairn show` finds: nothing was begun, so none is shown.
        assert_lacks(&stdout, "run_started");
        assert_lacks(&stdout, "workflow `small`");
        assert!(sandbox.runs().is_empty(), "{:?}", sandbox.runs());
        assert!(!sandbox.path("effects").exists(), "no task may run");
    }
}
