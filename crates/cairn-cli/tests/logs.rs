//! `cairn logs`: a task's saved output by run and task, the latest attempt by default, across
//! the passes of a resumed failed run, and typed refusals for what is not there.

mod common;

use common::{Sandbox, assert_contains, assert_lacks, text};

const WORKFLOW: &str = r#"
name = "logs"

[[task]]
id = "v1.build"
run = "echo building; echo careful >&2; printf 'no newline'"

[[task]]
id = "flaky"
run = "echo try $CAIRN_ATTEMPT; test -e fixed"
max_attempts = 2
"#;

/// `cairn logs ARGS` in the sandbox's state folder: exit code, stdout, stderr.
fn logs(sandbox: &Sandbox, args: &[&str]) -> (Option<i32>, String, String) {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--state-dir", ".cairn"]);
    let output = sandbox.run(&all);
    (
        output.status.code(),
        text(&output.stdout),
        text(&output.stderr),
    )
}

#[test]
fn logs_prints_a_tasks_latest_attempt_and_lists_the_rest() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", WORKFLOW);
    let run = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stdout));
    let id = sandbox.only_run_id();
    // The failed run's summary says how to read a task's output.
    assert_contains(
        &text(&run.stdout),
        &format!("(`cairn logs {id} TASK --state-dir .cairn` prints a task's)"),
    );

    // Without a task: every file, by task, in the order the attempts ran.
    let (code, listing, _) = logs(&sandbox, &[&id]);
    assert_eq!(code, Some(0), "{listing}");
    let rows: Vec<Vec<&str>> = listing
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect())
        .collect();
    let keys: Vec<(&str, &str, &str)> = rows.iter().map(|r| (r[0], r[1], r[2])).collect();
    assert_eq!(
        keys,
        [
            ("flaky", "1", "stdout"),
            ("flaky", "1", "stderr"),
            ("flaky", "2", "stdout"),
            ("flaky", "2", "stderr"),
            ("v1.build", "1", "stdout"),
            ("v1.build", "1", "stderr"),
        ],
        "{listing}"
    );

    // A task: its latest attempt, both streams under headers; a missing final newline is
    // added so the next header starts a line.
    let (code, out, _) = logs(&sandbox, &[&id, "v1.build"]);
    assert_eq!(code, Some(0));
    let expected_head = "==> v1.build attempt 1 stdout (19 bytes, ";
    assert!(out.starts_with(expected_head), "{out}");
    assert_contains(
        &out,
        "<==\nbuilding\nno newline\n==> v1.build attempt 1 stderr (8 bytes, ",
    );
    assert!(out.ends_with("<==\ncareful\n"), "{out}");
    let (_, out, _) = logs(&sandbox, &[&id, "flaky"]);
    assert_contains(&out, "==> flaky attempt 2 stdout");
    assert_contains(&out, "<==\ntry 2\n");

    // One stream of a chosen attempt, as it is.
    let (code, out, _) = logs(
        &sandbox,
        &[&id, "flaky", "--attempt", "1", "--stream", "stdout"],
    );
    assert_eq!((code, out.as_str()), (Some(0), "try 1\n"));
    let (_, out, _) = logs(&sandbox, &[&id, "v1.build", "--stream", "stdout"]);
    assert_eq!(out, "building\nno newline");

    // What is not there is exit 2, naming what is.
    let (code, _, err) = logs(&sandbox, &[&id, "nope"]);
    assert_eq!(code, Some(2), "{err}");
    assert_contains(
        &err,
        "task `nope` has no saved output in this run (tasks with saved output: flaky, v1.build)",
    );
    let (code, _, err) = logs(&sandbox, &[&id, "flaky", "--attempt", "3"]);
    assert_eq!(code, Some(2), "{err}");
    assert_contains(&err, "no saved output for attempt 3; its attempts: 1, 2");
    let (code, _, err) = logs(&sandbox, &[&id, "--attempt", "1"]);
    assert_eq!(code, Some(2), "--attempt names an attempt of a task: {err}");
    let (code, _, err) = logs(&sandbox, &["01M830RTDTQ0XMCAKV22M60N99"]);
    assert_eq!(code, Some(2), "{err}");
    assert_contains(&err, "no run 01M830RTDTQ0XMCAKV22M60N99");
}

#[test]
fn after_a_resume_of_a_failed_run_the_latest_pass_is_shown_and_earlier_ones_are_kept() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", WORKFLOW);
    let first = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(first.status.code(), Some(1), "{}", text(&first.stdout));
    let id = sandbox.only_run_id();
    sandbox.touch("fixed");
    let resumed = sandbox.run(&["resume", &id, "--state-dir", ".cairn"]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed.stderr));

    let (code, out, _) = logs(&sandbox, &[&id, "flaky", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let files: Vec<serde_json::Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    // The resume's first attempt is `1-2`: it ran after attempts 1 and 2 of the first pass.
    assert_eq!(files.len(), 2, "{out}");
    assert!(files.iter().all(|f| f["attempt"] == "1-2"), "{out}");
    let (_, out, _) = logs(&sandbox, &[&id, "flaky", "--stream", "stdout"]);
    assert_eq!(out, "try 1\n");
    let (_, out, _) = logs(
        &sandbox,
        &[&id, "flaky", "--attempt", "2", "--stream", "stdout"],
    );
    assert_eq!(out, "try 2\n");
    let (_, listing, _) = logs(&sandbox, &[&id, "--stream", "stdout"]);
    let attempts: Vec<&str> = listing
        .lines()
        .filter(|line| line.starts_with("flaky "))
        .filter_map(|line| line.split_whitespace().nth(1))
        .collect();
    assert_eq!(attempts, ["1", "2", "1-2"], "{listing}");
}

#[test]
fn attempts_are_ordered_by_when_they_started_when_the_file_system_keeps_it() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path("out");
    std::fs::create_dir(&dir).unwrap();
    // Files of a build that kept no start log: creation times are all there is.
    // A failed run's resume (pass 2) whose attempt 1 was given back by a Ctrl-C and run
    // again (`1-3`) before its attempt 2 (`2-2`): the names alone would put `1-3` last.
    for stem in ["t.1", "t.1-2", "t.1-3", "t.2-2"] {
        std::fs::write(dir.join(format!("{stem}.stdout")), stem).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let files = cairn_cli::logs::output_files(&dir).unwrap();
    let order: Vec<String> = files.iter().map(|f| f.attempt.clone()).collect();
    if files.iter().all(|f| f.created.is_some()) {
        assert_eq!(order, ["1", "1-2", "1-3", "2-2"]);
    } else {
        // Without creation times, the names' order: passes, then attempts.
        assert_eq!(order, ["1", "1-2", "2-2", "1-3"]);
    }
    let latest = cairn_cli::logs::select(files, Some("t"), None, None).unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].attempt, order[3]);
}

/// Copies the folder `from` to `to` as a backup restore might: each folder's entries in
/// descending name order, a pause between files so that their creation times differ.
fn copy_in_reverse(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .expect("read_dir")
        .map(|entry| entry.expect("entry").path())
        .collect();
    entries.sort_by(|a, b| b.cmp(a));
    for path in entries {
        let target = to.join(path.file_name().expect("a name"));
        if path.is_dir() {
            copy_in_reverse(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy a file");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

#[test]
fn a_copied_state_folder_lists_attempts_in_the_order_they_ran_not_the_copys() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", WORKFLOW);
    assert_eq!(sandbox.run(&["run", "wf.toml"]).status.code(), Some(1));
    let id = sandbox.only_run_id();
    let resumed = sandbox.run(&["resume", &id, "--state-dir", ".cairn"]);
    assert_eq!(resumed.status.code(), Some(1), "{}", text(&resumed.stderr));
    // The copy creates `flaky`'s files newest-named first: `2`, `2-2`, `1`, `1-2`.
    copy_in_reverse(&sandbox.path(".cairn"), &sandbox.path("restored"));

    let listed = sandbox.run(&["logs", &id, "--stream", "stdout", "--state-dir", "restored"]);
    let listing = text(&listed.stdout);
    assert_eq!(listed.status.code(), Some(0), "{listing}");
    let attempts: Vec<&str> = listing
        .lines()
        .filter(|line| line.starts_with("flaky "))
        .filter_map(|line| line.split_whitespace().nth(1))
        .collect();
    assert_eq!(attempts, ["1", "2", "1-2", "2-2"], "{listing}");
    let latest = sandbox.run(&["logs", &id, "flaky", "--state-dir", "restored"]);
    assert_contains(&text(&latest.stdout), "==> flaky attempt 2-2 stdout");
}

#[test]
fn the_start_log_orders_attempts_that_neither_names_nor_creation_times_order() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path("out");
    std::fs::create_dir(&dir).unwrap();
    // Pass 2's attempt 1 was given back and run again (`1-3`) before its attempt 2 (`2-2`),
    // and a copy created the files in yet another order.
    for attempt in ["1", "1-2", "1-3", "2-2"] {
        cairn_cli::logs::record_start(&dir, "t", attempt).unwrap();
    }
    for attempt in ["2-2", "1-3", "1", "1-2"] {
        std::fs::write(dir.join(format!("t.{attempt}.stdout")), attempt).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A line torn by a crash names no attempt.
    let log = dir.join("t.starts");
    let mut torn = std::fs::read(&log).unwrap();
    torn.extend_from_slice(b"1");
    std::fs::write(&log, torn).unwrap();

    let files = cairn_cli::logs::output_files(&dir).unwrap();
    let order: Vec<&str> = files.iter().map(|f| f.attempt.as_str()).collect();
    assert_eq!(order, ["1", "1-2", "1-3", "2-2"]);
    let latest = cairn_cli::logs::select(files, Some("t"), None, None).unwrap();
    assert_eq!(latest.len(), 1);
    assert_eq!(latest[0].attempt, "2-2");
}

/// `step` prints, then waits for `go.<attempt>` and prints again; its first attempt fails.
/// `after` waits for `release`, so the run is still driven once `step` is done.
const FOLLOWED: &str = r#"
name = "followed"

[[task]]
id = "step"
run = "echo out $CAIRN_ATTEMPT; echo err $CAIRN_ATTEMPT >&2; while ! test -f go.$CAIRN_ATTEMPT; do sleep 0.05; done; echo late $CAIRN_ATTEMPT; test $CAIRN_ATTEMPT -ge 2"
max_attempts = 3

[[task]]
id = "after"
run = "while ! test -f release; do sleep 0.05; done"
depends_on = ["step"]
"#;

#[test]
fn follow_prints_output_as_it_is_written_across_attempts_and_stops_when_the_task_is_done() {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", FOLLOWED);
    let mut run = sandbox.spawn(&["run", "wf.toml"], "run.out", "run.err");
    common::wait_for("the first attempt to start", || {
        sandbox.path(".cairn/output").is_dir() && !sandbox.runs().is_empty()
    });
    let id = sandbox.only_run_id();
    let (code, _, stderr) = logs(&sandbox, &[&id, "nosuch", "--follow"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_contains(&stderr, "has no task `nosuch`; its tasks: step, after");

    let mut follower = sandbox.spawn(
        &["logs", &id, "step", "-f", "--state-dir", ".cairn"],
        "follow.out",
        "follow.err",
    );
    // Printed while the attempt is still running: the follower does not wait for its end.
    common::wait_for("the first attempt's output", || {
        sandbox.read("follow.out").contains("out 1")
    });
    assert!(follower.try_wait().expect("try_wait").is_none());
    sandbox.touch("go.1");
    common::wait_for("the second attempt's output", || {
        sandbox.read("follow.out").contains("out 2")
    });
    sandbox.touch("go.2");
    assert_eq!(common::wait_exit(&mut follower).code(), Some(0));
    // The follower stopped at the task's end, while the run is still driven.
    assert!(
        run.try_wait().expect("try_wait").is_none(),
        "the run ended early"
    );

    let followed = sandbox.read("follow.out");
    // A header each time the source changes, as `tail -f` of several files has it.
    for header in [
        "==> step attempt 1 stdout <==",
        "==> step attempt 1 stderr <==",
        "==> step attempt 2 stdout <==",
        "==> step attempt 2 stderr <==",
    ] {
        assert_contains(&followed, header);
    }
    for line in ["out 1", "err 1", "late 1", "out 2", "err 2", "late 2"] {
        assert_eq!(
            common::count_lines(&followed, line),
            1,
            "{line}: {followed}"
        );
    }
    let first = followed.find("late 1").expect("late 1");
    let second = followed.find("out 2").expect("out 2");
    assert!(first < second, "attempts out of order: {followed}");
    assert_contains(
        &sandbox.read("follow.err"),
        "task `step` is done (attempt 2)",
    );

    sandbox.touch("release");
    assert_eq!(common::wait_exit(&mut run).code(), Some(0));
    // A finished task is followed to its end at once: its output, then the note.
    let (code, stdout, stderr) = logs(&sandbox, &[&id, "step", "-f", "--stream", "stdout"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "out 2\nlate 2\n");
    assert_contains(&stderr, "task `step` is done (attempt 2)");
}

/// A sandbox with one failed run whose output folder was removed by hand, and its id.
fn failed_run_without_its_output_folder() -> (Sandbox, String) {
    let sandbox = Sandbox::new();
    sandbox.write("wf.toml", common::FAILS_WORKFLOW);
    assert_eq!(sandbox.run(&["run", "wf.toml"]).status.code(), Some(1));
    let run_id = sandbox.only_run_id();
    std::fs::remove_dir_all(sandbox.path(&format!(".cairn/output/{run_id}")))
        .expect("remove the output folder");
    (sandbox, run_id)
}

/// A run whose output folder was removed by hand is not said to have started no task: the
/// listing says the folder is gone.
#[test]
fn a_run_whose_output_folder_was_removed_says_so() {
    let (sandbox, run_id) = failed_run_without_its_output_folder();
    let (code, stdout, stderr) = logs(&sandbox, &[&run_id]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_contains(&stdout, "its output folder");
    assert_contains(&stdout, "does not exist");
    assert!(!stdout.contains("no task of it has started"), "{stdout}");
}

/// A run the store cannot read is not "no such run": `cairn logs` of a run a newer build
/// wrote, whose output folder is gone, names the newer build (as `cairn show` does) instead
/// of sending the operator to look in another state folder.
#[test]
fn a_run_the_store_cannot_read_is_not_reported_as_unknown() {
    let (sandbox, run_id) = failed_run_without_its_output_folder();
    let meta_path = sandbox.path(&format!(".cairn/runs/{run_id}/meta.json"));
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).expect("meta.json")).expect("JSON");
    meta["format_version"] = 99.into();
    std::fs::write(&meta_path, serde_json::to_vec(&meta).expect("JSON")).expect("write meta");

    for args in [vec![run_id.as_str()], vec![run_id.as_str(), "broken", "-f"]] {
        let (code, stdout, stderr) = logs(&sandbox, &args);
        assert_eq!(code, Some(5), "{args:?}: {stdout}{stderr}");
        assert_lacks(&stderr, "no run");
        assert_contains(&stderr, &run_id);
        assert_contains(&stderr, "newer cairn build");
    }
}

/// A state folder whose store is broken (`runs` is a file) fails as a store failure naming
/// the cause, not as an unknown run id.
#[test]
fn a_broken_store_is_not_reported_as_an_unknown_run() {
    let sandbox = Sandbox::new();
    std::fs::create_dir(sandbox.path(".cairn")).expect("state folder");
    sandbox.touch(".cairn/runs");
    let (code, stdout, stderr) = logs(&sandbox, &["r1"]);
    assert_eq!(code, Some(5), "{stdout}{stderr}");
    assert_lacks(&stderr, "no run r1");
    assert_contains(&stderr, "cannot read run r1");
}

/// When `--follow` stops at a run nobody drives, the resume command it prints works as
/// typed: it names the state folder the follower was given.
#[test]
fn follow_of_an_interrupted_run_prints_a_resume_command_with_the_state_folder() {
    let sandbox = Sandbox::new();
    // The task kills the cairn process that runs it, so the run is left interrupted with
    // the task running.
    sandbox.write(
        "wf.toml",
        "name = \"killed\"\n[[task]]\nid = \"step\"\nrun = \"echo before; kill -9 $PPID; sleep 5\"\n",
    );
    std::fs::create_dir(sandbox.path("state")).expect("state folder");
    let run = sandbox.run(&["run", "wf.toml", "--state-dir", "state"]);
    assert_eq!(run.status.code(), None, "cairn was killed: {run:?}");
    let output = sandbox.run(&["runs", "--json", "--state-dir", "state"]);
    let listed = text(&output.stdout);
    let run_id = serde_json::from_str::<serde_json::Value>(
        listed
            .lines()
            .next()
            .unwrap_or_else(|| panic!("a run: {listed}")),
    )
    .expect("JSON")["run_id"]
        .as_str()
        .expect("run_id")
        .to_owned();

    let followed = sandbox.run(&["logs", &run_id, "step", "-f", "--state-dir", "state"]);
    assert_eq!(followed.status.code(), Some(0), "{followed:?}");
    let stderr = text(&followed.stderr);
    assert_contains(&stderr, "is not being driven");
    assert_contains(
        &stderr,
        &format!("`cairn resume {run_id} --state-dir state`"),
    );
}

/// The output of a quarantined run is still shown, with `--follow` too: the follower prints
/// what was saved and says why nothing more will come, instead of failing as a store error
/// with "run ... does not exist".
#[test]
fn follow_of_a_quarantined_run_prints_its_output_and_says_where_the_run_went() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"q\"\n[[task]]\nid = \"say\"\nrun = \"echo kept\"\nmax_attempts = 1\n",
    );
    assert_eq!(sandbox.run(&["run", "wf.toml"]).status.code(), Some(0));
    let run_id = sandbox.only_run_id();
    sandbox.write(&format!(".cairn/runs/{run_id}/meta.json"), "{damaged");

    // The first follow finds the state damaged and moves it; the second finds it moved.
    for _ in 0..2 {
        let (code, stdout, stderr) = logs(&sandbox, &[&run_id, "say", "-f", "--stream", "stdout"]);
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        assert_eq!(stdout, "kept\n");
        assert_lacks(&stderr, "does not exist");
        assert_contains(&stderr, &format!("run {run_id} is in quarantine"));
    }

    // Nor is an output folder whose run was removed a store failure.
    std::fs::remove_dir_all(sandbox.path(".cairn/quarantine")).expect("remove quarantine");
    let (code, stdout, stderr) = logs(&sandbox, &[&run_id, "say", "-f", "--stream", "stdout"]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout, "kept\n");
    assert_contains(&stderr, "has no stored state");
}
