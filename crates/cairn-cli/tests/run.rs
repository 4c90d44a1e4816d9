//! `cairn run` end to end with the real binary: completion, retries, timeouts, failed runs
//! and the ways forward (resume, abandon, --force), JSON output.

mod common;

use common::{Sandbox, alive, assert_contains, assert_lacks, count_lines, text, wait_for};

const PIPELINE: &str = r#"
name = "pipeline"

[[task]]
id = "first"
run = "echo first >> log; echo out-of-first"

[[task]]
id = "second"
run = "echo second >> log; echo $GREETING >> log; echo \"$CAIRN_TASK_ID/$CAIRN_ATTEMPT/$CAIRN_INPUT\" >> log"
depends_on = ["first"]
env = { GREETING = "hello-env" }

[[task]]
id = "third"
run = "pwd > ../where; echo third >> ../log"
depends_on = ["second"]
cwd = "sub"
"#;

#[test]
fn a_run_completes_in_dependency_order_and_captures_output() {
    let sandbox = Sandbox::new();
    std::fs::create_dir(sandbox.path("sub")).unwrap();
    sandbox.write("wf.toml", PIPELINE);
    let output = sandbox.run(&["run", "wf.toml", "--input", "ship it"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        sandbox.read("log"),
        "first\nsecond\nhello-env\nsecond/1/ship it\nthird\n"
    );
    assert!(sandbox.read("where").trim_end().ends_with("/sub"));

    let run_id = sandbox.only_run_id();
    let captured = sandbox.path(&format!(".cairn/output/{run_id}/first.1.stdout"));
    assert_eq!(std::fs::read_to_string(captured).unwrap(), "out-of-first\n");
    let runs = sandbox.runs();
    assert_eq!(runs[0]["status"], "completed");
}

#[test]
fn a_failing_attempt_is_retried_until_it_succeeds() {
    let sandbox = Sandbox::new();
    // Fails on the first attempt (no marker yet), succeeds on the second.
    sandbox.write(
        "wf.toml",
        r#"
name = "retry"
[[task]]
id = "flaky"
run = "if test -f tried; then echo ok >> log; else touch tried; exit 7; fi"
max_attempts = 3
"#,
    );
    let output = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    assert!(text(&output.stdout).contains("retry flaky"));
    let run_id = sandbox.only_run_id();
    let show = sandbox.run(&["show", &run_id, "--json", "--state-dir", ".cairn"]);
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["tasks"][0]["attempts"], 2);
    assert_eq!(shown["tasks"][0]["status"], "done");
}

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        r#"
name = "timeout"
[[task]]
id = "hang"
run = "sleep 600 & echo $! > bg.pid; wait"
timeout = "300ms"
max_attempts = 1
"#,
    );
    let output = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    assert!(text(&output.stdout).contains("timeout"));
    let pid: i64 = sandbox.read("bg.pid").trim().parse().unwrap();
    wait_for("the background sleep to be killed", || !alive(pid));
}

const FAILS_UNTIL_FIXED: &str = r#"
name = "fragile"

[[task]]
id = "prepare"
run = "echo prepare >> log"

[[task]]
id = "publish"
run = "if test -f fixed; then echo publish >> log; else echo 'not ready' >&2; exit 3; fi"
depends_on = ["prepare"]
permanent_exit_codes = [3]

[[task]]
id = "announce"
run = "echo announce >> log"
depends_on = ["publish"]
"#;

/// Runs the fragile workflow once; it fails. Returns the failed run's id.
fn failed_run(sandbox: &Sandbox) -> String {
    sandbox.write("wf.toml", FAILS_UNTIL_FIXED);
    let output = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("not ready"),
        "the failure shows the task's last output: {stdout}"
    );
    assert!(
        stdout.contains("1 task(s) failed; `publish`: "),
        "the run's error calls the task by its workflow id: {stdout}"
    );
    sandbox.only_run_id()
}

#[test]
fn a_failed_run_off_a_terminal_needs_a_decision() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    let output = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("cairn resume {run_id} --state-dir .cairn")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "cairn abandon {run_id} --state-dir .cairn && cairn run wf.toml"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("cairn run wf.toml --force"), "{stderr}");
    assert!(
        stderr.contains("1 task(s) failed; `publish`: "),
        "the stored error names the workflow's task: {stderr}"
    );
    // Nothing was started: still one run, and `prepare` ran once.
    assert_eq!(sandbox.runs().len(), 1);
    assert_eq!(count_lines(&sandbox.read("log"), "prepare"), 1);
}

#[test]
fn resume_reruns_the_failed_task_but_not_the_done_ones() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    sandbox.touch("fixed");
    let output = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    assert!(text(&output.stdout).contains(&format!("resuming failed run {run_id}")));
    assert_eq!(sandbox.read("log"), "prepare\npublish\nannounce\n");
    let audit = sandbox.run(&["audit", &run_id, "--json", "--state-dir", ".cairn"]);
    let retries: Vec<serde_json::Value> = text(&audit.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["action"] == "task_reset" && r["detail"]["reason"] == "explicit_resume")
        .collect();
    assert_eq!(
        retries.len(),
        1,
        "the retry of the one failed task is audited: {retries:?}"
    );
    let message = retries[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("failed task `publish` "),
        "the audit calls the task by its workflow id: {message}"
    );
    let runs = sandbox.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["status"], "completed");
}

#[test]
fn resume_keeps_the_captured_output_of_the_failed_attempts() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    let output_dir = sandbox.path(&format!(".cairn/output/{run_id}"));
    let first = std::fs::read_to_string(output_dir.join("publish.1.stderr")).unwrap();
    assert_eq!(first, "not ready\n");
    sandbox.touch("fixed");
    // The resume gives `publish` fresh attempts, so its attempt numbers start again at 1.
    let output = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    assert_eq!(
        std::fs::read_to_string(output_dir.join("publish.1.stderr")).unwrap(),
        first,
        "the failed attempt's output, the evidence of the failure, is kept"
    );
    let stderr_files: Vec<String> = std::fs::read_dir(&output_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("publish.") && name.ends_with(".stderr"))
        .collect();
    assert_eq!(
        stderr_files.len(),
        2,
        "the resumed attempt has its own files: {stderr_files:?}"
    );
}

#[test]
fn abandon_then_run_starts_afresh() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    let output = sandbox.run(&["abandon", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    sandbox.touch("fixed");
    let output = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    let runs = sandbox.runs();
    assert_eq!(runs.len(), 2);
    let old = runs
        .iter()
        .find(|r| r["run_id"] == run_id.as_str())
        .unwrap();
    assert_eq!(old["status"], "cancelled");
    // The fresh run ran `prepare` again; the abandoned one is never resumed.
    assert_eq!(count_lines(&sandbox.read("log"), "prepare"), 2);
    let again = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(again.status.code(), Some(2));
}

#[test]
fn force_runs_afresh_and_leaves_the_failed_run_as_it_is() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    sandbox.touch("fixed");
    let output = sandbox.run(&["run", "wf.toml", "--force"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    let runs = sandbox.runs();
    assert_eq!(runs.len(), 2);
    let old = runs
        .iter()
        .find(|r| r["run_id"] == run_id.as_str())
        .unwrap();
    assert_eq!(old["status"], "failed");
    // The forced run is audited on the failed one.
    let audit = sandbox.run(&["audit", &run_id, "--json", "--state-dir", ".cairn"]);
    assert!(text(&audit.stdout).contains("\"forced_fresh\""));
    // The latest run completed, so a plain run no longer asks.
    let output = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(output.status.code(), Some(0));
}

/// Review 44 F9: a forced run that fails before it begins (here the run's output folder
/// cannot be made, as on a full disk) leaves no `forced_fresh` record naming a run that
/// never existed, and a plain run still asks about the failed run. The force that begins is
/// recorded once.
#[test]
fn a_force_that_never_began_leaves_no_forced_fresh_record() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    let forced_records = || {
        let audit = sandbox.run(&["audit", &run_id, "--json", "--state-dir", ".cairn"]);
        assert_eq!(audit.status.code(), Some(0), "{}", text(&audit.stderr));
        text(&audit.stdout).matches("\"forced_fresh\"").count()
    };
    let output_dir = sandbox.path(".cairn/output");
    let kept = sandbox.path(".cairn/output.kept");
    std::fs::rename(&output_dir, &kept).unwrap();
    std::fs::write(&output_dir, "not a folder").unwrap();
    let output = sandbox.run(&["run", "wf.toml", "--force"]);
    let stderr = text(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    // The policy decided to force (it says so) before the run could begin.
    assert_contains(&text(&output.stdout), "starting a fresh run past run");
    assert_contains(&stderr, "cannot create");
    assert_eq!(sandbox.runs().len(), 1, "no run began");
    assert_eq!(
        forced_records(),
        0,
        "no record names a run that never began"
    );

    std::fs::remove_file(&output_dir).unwrap();
    std::fs::rename(&kept, &output_dir).unwrap();
    let output = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(output.status.code(), Some(3), "the failed run still asks");

    sandbox.touch("fixed");
    let output = sandbox.run(&["run", "wf.toml", "--force"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stdout));
    assert_eq!(forced_records(), 1);
}

#[test]
fn json_mode_prints_one_event_per_line() {
    let sandbox = Sandbox::new();
    std::fs::create_dir(sandbox.path("sub")).unwrap();
    sandbox.write("wf.toml", PIPELINE);
    let output = sandbox.run(&["run", "wf.toml", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let events: Vec<serde_json::Value> = text(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"run_started"));
    assert_eq!(names.last(), Some(&"run_finished"));
    assert_eq!(names.iter().filter(|n| **n == "task_done").count(), 3);
    assert_eq!(events.last().unwrap()["outcome"], "completed");
}

#[test]
fn the_sled_adapter_runs_a_workflow_too() {
    let sandbox = Sandbox::new();
    std::fs::create_dir(sandbox.path("sub")).unwrap();
    sandbox.write("wf.toml", PIPELINE);
    let output = sandbox.run(&["run", "wf.toml", "--adapter", "sled"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(sandbox.path(".cairn/sled").exists());
    let runs = sandbox.run(&[
        "runs",
        "--all",
        "--json",
        "--adapter",
        "sled",
        "--state-dir",
        ".cairn",
    ]);
    assert!(text(&runs.stdout).contains("\"completed\""));
}

/// A long stream keeps its head and its tail, with the bytes dropped between them counted;
/// the failure shows both streams' last lines (review 51 F14: a test runner's summary on the
/// last stdout line was in no file and not shown, behind a stderr warning).
#[test]
fn captured_output_keeps_head_and_tail_and_says_what_was_dropped() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        r#"
name = "loud"
[[task]]
id = "loud"
max_attempts = 1
run = "echo DeprecationWarning >&2; echo the-start; head -c 3000000 /dev/zero | tr '\\0' x; echo; echo 3 failed, 97 passed; exit 1"
"#,
    );
    let output = sandbox.run(&["run", "wf.toml"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert_contains(&stdout, "[stdout]");
    assert_contains(&stdout, "| 3 failed, 97 passed");
    assert_contains(&stdout, "[stderr]");
    assert_contains(&stdout, "| DeprecationWarning");
    let run_id = sandbox.only_run_id();
    let bytes =
        std::fs::read(sandbox.path(&format!(".cairn/output/{run_id}/loud.1.stdout"))).unwrap();
    let (head, tail) = (
        usize::try_from(cairn_cli::shell::OUTPUT_HEAD).unwrap(),
        usize::try_from(cairn_cli::shell::OUTPUT_TAIL).unwrap(),
    );
    let cap = usize::try_from(cairn_cli::shell::OUTPUT_CAP).unwrap();
    assert!(
        bytes.len() > cap && bytes.len() < cap + 200,
        "{} bytes",
        bytes.len()
    );
    assert!(
        bytes.starts_with(b"the-start\nxxx"),
        "the head of the stream is kept"
    );
    let end = &bytes[bytes.len() - tail..];
    assert!(
        end.ends_with(b"x\n3 failed, 97 passed\n"),
        "the tail is kept"
    );
    let between = text(&bytes[head..bytes.len() - tail]);
    // 10 + 3,000,000 + 1 + 20 bytes written; 1 MiB of them kept.
    let dropped = 10 + 3_000_000 + 1 + 20 - cap;
    assert_contains(&between, &format!("[cairn: {dropped} bytes dropped here;"));

    // Output that fits is kept whole, with no note.
    sandbox.write(
        "fits.toml",
        "name = \"fits\"\n[[task]]\nid = \"fits\"\nrun = \"head -c 1000000 /dev/zero | tr '\\\\0' y\"\n",
    );
    let fits = sandbox.run(&["run", "fits.toml"]);
    assert_eq!(fits.status.code(), Some(0), "{}", text(&fits.stderr));
    let run_id = sandbox
        .runs()
        .iter()
        .find(|run| run["workflow"] == "fits")
        .map(|run| run["run_id"].as_str().unwrap().to_owned())
        .unwrap();
    let bytes =
        std::fs::read(sandbox.path(&format!(".cairn/output/{run_id}/fits.1.stdout"))).unwrap();
    assert_eq!(bytes.len(), 1_000_000);
    assert!(bytes.iter().all(|&b| b == b'y'));
}

#[test]
fn help_documents_the_exit_codes_and_completions_are_generated() {
    let sandbox = Sandbox::new();
    let help = sandbox.run(&["run", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = text(&help.stdout);
    for code in [
        "0  success",
        "1  the run failed",
        "2  the request is wrong",
        "3  the latest run",
        "4  interrupted",
        "5  the state store",
    ] {
        assert!(help.contains(code), "--help lacks {code:?}");
    }
    let completions = sandbox.run(&["completions", "bash"]);
    assert_eq!(completions.status.code(), Some(0));
    assert!(text(&completions.stdout).contains("_cairn"));
    let usage = sandbox.run(&["run"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn commands_about_runs_need_an_existing_state_folder_and_a_known_run() {
    let sandbox = Sandbox::new();
    let output = sandbox.run(&["runs"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        !sandbox.path(".cairn").exists(),
        "a read command created a state folder"
    );

    std::fs::create_dir(sandbox.path("sub")).unwrap();
    sandbox.write("wf.toml", PIPELINE);
    assert_eq!(sandbox.run(&["run", "wf.toml"]).status.code(), Some(0));
    for command in ["show", "resume", "abandon", "audit"] {
        let output = sandbox.run(&[command, "01NOSUCHRUN", "--state-dir", ".cairn"]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{command}: {}",
            text(&output.stderr)
        );
        let bad_id = sandbox.run(&[command, "../escape", "--state-dir", ".cairn"]);
        assert_eq!(bad_id.status.code(), Some(2), "{command}");
    }
    let run_id = sandbox.only_run_id();
    let abandon_done = sandbox.run(&["abandon", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(
        abandon_done.status.code(),
        Some(2),
        "a completed run cannot be abandoned"
    );
}

#[test]
fn a_state_dir_that_is_a_file_is_a_usage_error_and_the_file_is_left_alone() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"touch ran\"\n",
    );
    sandbox.write("state", "my notes\n");
    let commands: [&[&str]; 2] = [
        &["run", "wf.toml", "--state-dir", "state"],
        &[
            "jobs",
            "add",
            "wf.toml",
            "j",
            "--every",
            "1h",
            "--state-dir",
            "state",
        ],
    ];
    for args in commands {
        let output = sandbox.run(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("state") && stderr.contains("not a folder"),
            "{stderr}"
        );
    }
    assert_eq!(sandbox.read("state"), "my notes\n");
    assert!(!sandbox.path("ran").exists());
}

#[test]
fn a_failed_task_quotes_a_short_clean_excerpt_of_its_last_output_line() {
    let sandbox = Sandbox::new();
    // One 20,000-byte line of NULs and letters, then a failure.
    sandbox.write(
        "wf.toml",
        "name = \"w\"\n[[task]]\nid = \"noisy\"\nrun = \"head -c 10000 /dev/zero; head -c 10000 /dev/zero | tr '\\\\0' x; exit 1\"\nmax_attempts = 1\n",
    );
    let output = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let runs = sandbox.runs();
    let error = runs[0]["error"].to_string();
    assert!(error.contains("exited with code 1"), "{error}");
    assert!(
        error.len() < 1_000,
        "the stored error quotes an excerpt, not the whole line: {} bytes",
        error.len()
    );
    assert!(!error.contains("\\u0000"), "no control characters: {error}");
}

#[test]
fn a_resume_that_cannot_start_leaves_the_failed_run_failed() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    // The run's copy of its workflow is damaged: the resume cannot rebuild the run's plan.
    let copy = sandbox.path(&format!(".cairn/output/{run_id}/.workflow.toml"));
    std::fs::write(&copy, "garbage = \n").unwrap();
    let resume = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    let stderr = text(&resume.stderr);
    assert_eq!(resume.status.code(), Some(5), "damaged state: {stderr}");
    assert!(
        stderr.contains(".workflow.toml"),
        "names the copy: {stderr}"
    );
    assert_eq!(
        sandbox.runs()[0]["status"],
        "failed",
        "the run was not left looking interrupted"
    );
    // So a plain run still asks instead of resuming the failed run silently.
    sandbox.touch("fixed");
    let again = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(again.status.code(), Some(3), "{}", text(&again.stdout));
    assert_eq!(count_lines(&sandbox.read("log"), "publish"), 0);
}

#[test]
fn the_help_says_exactly_what_each_exit_code_covers() {
    let sandbox = Sandbox::new();
    let help = sandbox.run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = text(&help.stdout);
    for words in [
        "`cairn resume` of a completed run (nothing to do)",
        "an unknown or quarantined run id",
        "a run in the wrong state for the command",
        "`resume` of an abandoned run",
        "the ways forward (resume, abandon\n     and re-run, --force) are printed on stderr",
    ] {
        assert!(help.contains(words), "--help lacks {words:?}: {help}");
    }
}

#[test]
fn resume_of_a_finished_run_exits_as_documented() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    sandbox.touch("fixed");
    let resumed = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));
    // Completed: nothing to do, 0.
    let again = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(text(&again.stdout).contains("already completed; nothing to resume"));

    // Abandoned: the wrong state for a resume, 2, with the way to run afresh.
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    let abandoned = sandbox.run(&["abandon", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(
        abandoned.status.code(),
        Some(0),
        "{}",
        text(&abandoned.stderr)
    );
    let refused = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("was abandoned"), "{stderr}");
    assert!(
        stderr.contains("cairn run "),
        "offers a fresh run: {stderr}"
    );
}

#[test]
fn a_failed_run_prints_its_ways_forward_on_stderr() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", FAILS_UNTIL_FIXED);
    let output = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(output.status.code(), Some(1));
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    let run_id = sandbox.only_run_id();
    // As the exit-3 prompt does: the guidance is on stderr, the progress on stdout.
    assert!(!stdout.contains("Ways forward"), "{stdout}");
    assert!(
        stdout.contains(&format!("run {run_id} failed: 1 done")),
        "{stdout}"
    );
    assert!(stderr.contains("Ways forward:"), "{stderr}");
    assert!(
        stderr.contains(&format!("cairn resume {run_id} --state-dir .cairn")),
        "{stderr}"
    );
    assert!(stderr.contains("cairn run wf.toml --force"), "{stderr}");
}

#[test]
fn an_error_a_resume_got_past_is_history_not_the_state() {
    let sandbox = Sandbox::new();
    let run_id = failed_run(&sandbox);
    sandbox.touch("fixed");
    let resumed = sandbox.run(&["resume", &run_id, "--state-dir", ".cairn"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));

    let show = sandbox.run(&["show", &run_id, "--state-dir", ".cairn"]);
    let shown = text(&show.stdout);
    let publish = shown
        .lines()
        .find(|line| line.starts_with("publish "))
        .expect("a row for publish");
    assert!(publish.contains(" done "), "{publish}");
    assert!(
        publish.contains("earlier: exit_code"),
        "a done task's error is labelled as history: {publish}"
    );

    let json = sandbox.run(&["show", &run_id, "--json", "--state-dir", ".cairn"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(json["run"]["status"], "completed");
    assert_eq!(json["run"]["error"], serde_json::Value::Null);
    assert_eq!(json["run"]["earlier_error"]["kind"], "task_failed");
    let task = json["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task"] == "publish")
        .expect("publish");
    assert_eq!(task["error"], serde_json::Value::Null);
    assert!(task["earlier_error"].as_str().is_some(), "{task}");

    let runs = sandbox.runs();
    assert_eq!(runs[0]["status"], "completed");
    assert_eq!(runs[0]["error"], serde_json::Value::Null);
    assert_eq!(runs[0]["earlier_error"]["kind"], "task_failed");
}

/// An input and a scope that start with `-` are taken as values (`--input -v`), so the
/// commands cairn prints with them work when pasted.
#[test]
fn an_input_and_a_scope_starting_with_a_dash_are_values_and_printed_commands_paste() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", FAILS_UNTIL_FIXED);
    let first = sandbox.run(&["run", "wf.toml", "--input", "-v please", "--scope", "-s"]);
    assert_eq!(first.status.code(), Some(1), "{}", text(&first.stderr));
    let runs = sandbox.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["input"], "-v please");
    assert_eq!(runs[0]["scope"], "-s");

    let asked = sandbox.run(&["run", "wf.toml", "--input", "-v please", "--scope", "-s"]);
    assert_eq!(asked.status.code(), Some(3), "{}", text(&asked.stderr));
    let stderr = text(&asked.stderr);
    let force = stderr
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("cairn run ") && line.contains("--force"))
        .unwrap_or_else(|| panic!("a --force way forward: {stderr}"));
    assert_contains(force, "-v please");
    // Pasted as printed (less the program name), it is accepted: a fresh run starts and fails
    // like the first (exit 1, not 2 for bad usage).
    let words = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "for word in {}; do printf '%s\\0' \"$word\"; done",
            force.trim_start_matches("cairn ")
        ))
        .output()
        .expect("sh splits the printed command");
    let args: Vec<String> = text(&words.stdout)
        .split('\0')
        .filter(|word| !word.is_empty())
        .map(str::to_owned)
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let pasted = sandbox.run(&args);
    assert_eq!(
        pasted.status.code(),
        Some(1),
        "{args:?}: {}",
        text(&pasted.stderr)
    );
    let runs = sandbox.runs();
    assert_eq!(runs.len(), 2, "the forced run started");
    assert!(
        runs.iter().all(|run| run["input"] == "-v please"),
        "{runs:?}"
    );
}

/// While one process has a sled state folder open, another command on it fails (exit 5) with
/// a message that says the database is in use and what to do, not sled's raw lock error.
#[test]
fn a_sled_state_folder_in_use_by_another_process_is_named_as_such() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"hold\"\n[[task]]\nid = \"wait\"\nrun = \"touch started; while ! test -f release; do sleep 0.05; done\"\n",
    );
    let mut first = sandbox.spawn(&["run", "wf.toml", "--adapter", "sled"], "out1", "err1");
    wait_for("the first run's task to start", || {
        sandbox.path("started").exists()
    });
    let second = sandbox.run(&["runs", "--adapter", "sled", "--state-dir", ".cairn"]);
    sandbox.touch("release");
    let status = first.wait().expect("the first run ends");
    let err = text(&second.stderr);
    assert_eq!(second.status.code(), Some(5), "{err}");
    assert_contains(&err, "is in use by another process");
    assert_contains(&err, "one process at a");
    assert!(
        !err.contains("WouldBlock") && !err.contains("Os {"),
        "{err}"
    );
    assert_eq!(status.code(), Some(0), "the first run was not disturbed");
}

/// A failed command's last output lines are shown escaped (they cannot drive the terminal),
/// and once: below the failure, not also quoted in its line.
#[test]
fn a_failed_tasks_last_output_is_shown_once_and_escaped() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"w\"\n[[task]]\nid = \"red\"\nrun = \"printf 'bad\\\\033[31mred\\\\n' >&2; exit 1\"\nmax_attempts = 1\n",
    );
    let output = sandbox.run(&["run", "wf.toml"]);
    let out = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{out}");
    assert!(
        !out.contains('\u{1b}'),
        "no raw escape reaches the terminal: {out:?}"
    );
    let failed = out
        .lines()
        .find(|line| line.starts_with("FAILED red"))
        .unwrap_or_else(|| panic!("a FAILED line: {out}"));
    assert!(!failed.contains("last output"), "{failed}");
    assert_contains(&out, "  | bad\\u{1b}[31mred");
}

/// The terminal column where `needle` starts in `line`, counting a wide character as two.
fn column_of(line: &str, needle: &str) -> usize {
    let at = line
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} in {line}"));
    unicode_width::UnicodeWidthStr::width(&line[..at])
}

#[test]
fn the_runs_table_lines_up_with_wide_characters_in_names() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wide.toml",
        "name = \"夜間ビルド\"\n[[task]]\nid = \"only\"\nrun = \"true\"\n",
    );
    sandbox.write(
        "long.toml",
        "name = \"データベースの夜間バックアップと検証\"\n[[task]]\nid = \"only\"\nrun = \"true\"\n",
    );
    for (file, scope) in [("wide.toml", "東京"), ("long.toml", "default")] {
        let done = sandbox.run(&["run", file, "--scope", scope]);
        assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    }
    let listed = sandbox.run(&["runs", "--all", "--state-dir", ".cairn"]);
    let table = text(&listed.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    // Every row's time starts under the header's CREATED column.
    let created = column_of(lines[0], "CREATED");
    for row in &lines[1..] {
        // The created time is the first `YYYY-MM-DD HH:` in the row.
        let at = (0..row.len())
            .filter(|at| row.is_char_boundary(*at))
            .find(|at| {
                let rest = &row.as_bytes()[*at..];
                rest.len() >= 14
                    && rest[..4].iter().all(u8::is_ascii_digit)
                    && rest[4] == b'-'
                    && rest[7] == b'-'
                    && rest[10] == b' '
                    && rest[13] == b':'
            })
            .unwrap_or_else(|| panic!("no time in {row}"));
        assert_eq!(column_of(row, &row[at..at + 10]), created, "{table}");
    }
    assert_contains(&table, "データベースの夜間…");
}

#[test]
fn background_jobs_a_command_leaves_in_its_group_are_stopped_and_said_so() {
    let sandbox = Sandbox::new();
    // One background job keeps the output pipes open, one does not; a third leaves the
    // group with `setsid` and is not cairn's to stop.
    sandbox.write(
        "wf.toml",
        r#"
name = "spawner"

[[task]]
id = "spawn"
run = "sleep 123 & echo $! > piped.pid; sleep 124 >/dev/null 2>&1 & echo $! > quiet.pid; setsid sh -c 'echo $$ > away.pid; exec sleep 125' >/dev/null 2>&1 < /dev/null & while [ ! -s away.pid ]; do sleep 0.01; done; echo spawned"

[[task]]
id = "after"
run = "echo after"
depends_on = ["spawn"]
"#,
    );
    let out = sandbox.run(&["run", "wf.toml"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert_contains(
        &stdout,
        "note: spawn (attempt 1) left processes running in its process group ",
    );
    assert_contains(&stdout, "completed: 2 task(s) done");
    let pid = |name: &str| -> i64 { sandbox.read(name).trim().parse().expect("a pid") };
    wait_for("the background jobs to be gone", || {
        !alive(pid("piped.pid")) && !alive(pid("quiet.pid"))
    });
    let away = pid("away.pid");
    assert!(alive(away), "a process that left the group is left alone");
    let _ = std::process::Command::new("kill")
        .arg(away.to_string())
        .status();
    let output = std::fs::read_dir(sandbox.path(".cairn/output"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let captured = std::fs::read_to_string(output.join("spawn.1.stdout")).unwrap();
    assert_eq!(captured, "spawned\n");
}

#[test]
fn a_task_killed_by_a_signal_names_the_signal() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        r#"
name = "signals"

[[task]]
id = "oom"
run = "kill -s KILL $$"
max_attempts = 1

[[task]]
id = "term"
run = "kill -s TERM $$"
max_attempts = 1

[[task]]
id = "odd"
run = "kill -s 40 $$"
max_attempts = 1
"#,
    );
    let output = sandbox.run(&["run", "wf.toml"]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert_contains(&stdout, "`oom` was killed by signal 9 (SIGKILL)");
    assert_contains(&stdout, "`term` was killed by signal 15 (SIGTERM)");
    assert_contains(&stdout, "`odd` was killed by signal 40");
}

#[test]
fn a_spawn_failure_blames_the_folder_only_when_the_folder_is_missing() {
    let sandbox = Sandbox::new();
    std::fs::create_dir(sandbox.path("here")).unwrap();
    sandbox.write(
        "wf.toml",
        r#"
name = "spawns"

[[task]]
id = "nosh"
run = "true"
cwd = "here"
env = { PATH = "/nonexistent-bin" }

[[task]]
id = "nodir"
run = "true"
cwd = "missing"
"#,
    );
    let output = sandbox.run(&["run", "wf.toml"]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{stdout}{}",
        text(&output.stderr)
    );
    let line_of = |task: &str| -> String {
        stdout
            .lines()
            .find(|line| line.contains(&format!("task `{task}` could not start")))
            .unwrap_or_else(|| panic!("no spawn error for {task}: {stdout}"))
            .to_owned()
    };
    let nosh = line_of("nosh");
    assert_contains(&nosh, "could not start `sh -c`: No such file or directory");
    assert_contains(
        &nosh,
        "`sh` is looked up in the task's PATH, `/nonexistent-bin`",
    );
    assert!(!nosh.contains("folder"), "the folder exists: {nosh}");
    let nodir = line_of("nodir");
    assert_contains(&nodir, "its working folder ");
    assert_contains(&nodir, "missing does not exist");
    // Both would fail the same way again, so neither gets a second attempt.
    assert_lacks(&stdout, "(attempt 2/3)");
}

/// A workflow `name` of `count` tasks `t0`, `t1`, ... with no dependencies and one attempt
/// each; task `n` runs `run(n)` (which must not hold a double quote).
fn independent_tasks(name: &str, count: usize, run: impl Fn(usize) -> String) -> String {
    let mut workflow = format!("name = \"{name}\"\n");
    for n in 0..count {
        workflow.push_str(&format!(
            "[[task]]\nid = \"t{n}\"\nrun = \"{}\"\nmax_attempts = 1\n",
            run(n)
        ));
    }
    workflow
}

#[test]
fn a_concurrency_the_open_file_limit_cannot_take_is_capped_and_no_task_fails() {
    let sandbox = Sandbox::new();
    let workflow = independent_tasks("descriptors", 40, |n| {
        format!("echo start >> trace; echo out-{n}; sleep 0.2; echo end >> trace")
    });
    sandbox.write("wf.toml", &workflow);
    // A hundred commands at once need far more than 64 descriptors in cairn: without the
    // cap, starts were refused (EMFILE) and, once that lasted, healthy tasks failed.
    let mut command = std::process::Command::new("sh");
    command
        .current_dir(sandbox.root())
        .args(["-c", "ulimit -n 64 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_cairn"))
        .args(["run", "wf.toml", "--json", "--concurrency", "100"])
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdin(std::process::Stdio::null());
    let output = common::run_to_end(command);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    let allowed: usize = stderr
        .split("note: running at most ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no note about the cap: {stderr}"));
    assert!(allowed < 100, "{stderr}");
    assert_contains(&stderr, "ulimit -n 64");
    // Never more commands at once than the note says.
    let mut running = 0usize;
    let mut most = 0usize;
    for line in sandbox.read("trace").lines() {
        if line == "start" {
            running += 1;
            most = most.max(running);
        } else {
            running -= 1;
        }
    }
    assert!(most <= allowed, "{most} ran at once, the cap is {allowed}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert!(
        !events.iter().any(|e| e["event"] == "task_retry"),
        "no attempt was used up: {stdout}"
    );
    let done = events.iter().filter(|e| e["event"] == "task_done").count();
    assert_eq!(done, 40, "{stdout}");
    assert!(
        !events.iter().any(|e| e["event"] == "output_not_kept"),
        "a task ran without its output file: {stdout}"
    );
    let run_id = sandbox.only_run_id();
    let out_dir = sandbox.path(&format!(".cairn/output/{run_id}"));
    for n in 0..40 {
        let file = out_dir.join(format!("t{n}.1.stdout"));
        assert_eq!(
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())),
            format!("out-{n}\n")
        );
    }
}

/// Review 47 F2: `cairn resume RUN` of a failed run killed after its claim (the run is
/// durably `running` again) but before the failed task's retry was journaled. The next
/// `cairn resume RUN` finds an interrupted run; it finishes that resume, so the failed task
/// runs again and the run completes, instead of failing once more with the old error.
#[test]
fn a_resume_killed_after_its_claim_is_finished_by_the_next_resume() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"fix\"\n[[task]]\nid = \"x\"\nrun = \"echo x >> ran; test -e fixed || exit 2\"\nmax_attempts = 1\n[[task]]\nid = \"after\"\nrun = \"echo after >> ran\"\ndepends_on = [\"x\"]\n",
    );
    let failed = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed.stderr));
    let run_id = sandbox.only_run_id();

    // What the killed `cairn resume` left: its claim and audit record, nothing journaled.
    let state =
        cairn_cli::store::StateDir::open(&sandbox.path(".cairn"), cairn_cli::store::Adapter::File)
            .unwrap();
    let policy = cairn_runs::ResumePolicy::new(std::sync::Arc::clone(&state.factory));
    let id = cairn_checkpoint::RunId::new(run_id.as_str()).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(policy.resume(&id))
        .expect("the claim");
    drop((policy, state));

    sandbox.touch("fixed");
    let resumed = sandbox.run(&["resume", &run_id]);
    let stdout = text(&resumed.stdout);
    assert_eq!(
        resumed.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&resumed.stderr)
    );
    assert_contains(
        &stdout,
        "1 failed task(s) retried (finishing the resume that was interrupted)",
    );
    assert_eq!(sandbox.read("ran"), "x\nx\nafter\n");
}

/// Every command starts only once its process group's record exists, so a `kill -9` of cairn
/// at any moment leaves no command that a resume would not find and kill.
#[test]
fn every_command_starts_after_its_process_group_is_recorded() {
    let sandbox = Sandbox::new();
    let workflow = independent_tasks("recorded", 24, |_| {
        "test -f .cairn/output/$CAIRN_RUN_ID/$CAIRN_TASK_ID.group".to_owned()
    });
    sandbox.write("wf.toml", &workflow);
    let out = sandbox.run(&["run", "wf.toml", "--concurrency", "8"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
