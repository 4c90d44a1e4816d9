//! `cairn abandon RUN [--force]` with the real binary, for a run interrupted by `kill -9`:
//! a last driver on another host is refused with a hint about `--force` and its risk, then
//! abandoned with `--force` (audited as forced); `--force` never overrides a live driver or
//! a last driver alive on this host. Exit codes as the README documents: 0 abandoned, 2
//! refused.

mod common;

use std::process::Output;

use common::{Sandbox, alive, run_to_end, signal, text, wait_exit, wait_for};

/// `a` completes, `b` records its process group and blocks until the file `release` exists.
const BLOCKING: &str = r#"
name = "blocking"

[[task]]
id = "a"
run = "echo a >> log"

[[task]]
id = "b"
run = "echo $$ > b.pgid; echo b-start >> log; while ! test -f release; do sleep 0.05; done; echo b >> log"
depends_on = ["a"]
"#;

/// The host the interrupted run's driver ran on (the one that is gone for good).
const OLD_HOST: &str = "old-host.invalid";
/// The host the operator runs `cairn abandon` on.
const THIS_HOST: &str = "this-host.invalid";

/// Runs `cairn ARGS` as if on `host` (`$CAIRN_HOST` overrides the host cairn records as a
/// run's owner).
fn run_on(sandbox: &Sandbox, host: &str, args: &[&str]) -> Output {
    let mut command = sandbox.cairn();
    command.env("CAIRN_HOST", host).args(args);
    run_to_end(command)
}

/// Starts [`BLOCKING`] on `host` and waits until `b` runs; returns the driver and `b`'s
/// process group.
fn start_on(sandbox: &Sandbox, host: &str) -> (std::process::Child, i64) {
    sandbox.write("wf.toml", BLOCKING);
    let out = std::fs::File::create(sandbox.path("out1")).expect("stdout file");
    let err = std::fs::File::create(sandbox.path("err1")).expect("stderr file");
    let driver = sandbox
        .cairn()
        .env("CAIRN_HOST", host)
        .args(["run", "wf.toml"])
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("spawn cairn");
    wait_for("task b to start", || {
        sandbox.read("log").contains("b-start")
    });
    wait_for("task b's pid file", || {
        !sandbox.read("b.pgid").trim().is_empty()
    });
    let group = sandbox.read("b.pgid").trim().parse().expect("a pgid");
    // cairn records the group just after it spawns the command, which may write its pid
    // file first: a kill before the record would leave abandon nothing to find.
    wait_for("cairn's record of b's group", || b_group_recorded(sandbox));
    (driver, group)
}

/// Whether a run's output folder holds cairn's record of `b`'s process group.
fn b_group_recorded(sandbox: &Sandbox) -> bool {
    let Ok(runs) = std::fs::read_dir(sandbox.path(".cairn/output")) else {
        return false;
    };
    runs.flatten().any(|run| {
        std::fs::read_to_string(run.path().join("b.group")).is_ok_and(|r| r.ends_with('\n'))
    })
}

/// Runs [`BLOCKING`] on `host`, kills cairn with SIGKILL while `b` runs, then `b`'s process
/// group too, so nothing of the first run is left alive. Returns the run's id.
fn interrupted_on(sandbox: &Sandbox, host: &str) -> String {
    let (mut driver, group) = start_on(sandbox, host);
    signal(i64::from(driver.id()), "KILL");
    wait_exit(&mut driver);
    signal(-group, "KILL");
    wait_for("b's process group to die", || !alive(-group));
    let run_id = sandbox.only_run_id();
    assert_eq!(sandbox.runs()[0]["status"], "running");
    run_id
}

fn status_of(sandbox: &Sandbox) -> String {
    sandbox.runs()[0]["status"]
        .as_str()
        .expect("a status")
        .to_owned()
}

#[test]
fn a_last_driver_on_another_host_is_refused_with_a_hint_then_abandoned_with_force() {
    let sandbox = Sandbox::new();
    let run_id = interrupted_on(&sandbox, OLD_HOST);

    let refused = run_on(&sandbox, THIS_HOST, &["abandon", &run_id]);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(OLD_HOST),
        "names the owner's host: {stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "cairn abandon {run_id} --force --state-dir .cairn"
        )),
        "offers --force: {stderr}"
    );
    assert!(
        stderr.contains("keeps running the tasks it had started"),
        "says what --force risks: {stderr}"
    );
    assert!(
        stderr.contains(&format!("cairn resume {run_id} --state-dir .cairn")),
        "offers resume: {stderr}"
    );
    assert_eq!(status_of(&sandbox), "running", "nothing changed");

    let forced = run_on(&sandbox, THIS_HOST, &["abandon", &run_id, "--force"]);
    let stdout = text(&forced.stdout);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
    assert!(stdout.contains("(was running)"), "{stdout}");
    assert!(
        stdout.contains("forced: overrode its last driver"),
        "{stdout}"
    );
    assert!(stdout.contains(OLD_HOST), "{stdout}");
    assert_eq!(status_of(&sandbox), "cancelled");

    let audit = run_on(&sandbox, THIS_HOST, &["audit", &run_id, "--json"]);
    assert_eq!(audit.status.code(), Some(0), "{}", text(&audit.stderr));
    let abandoned: Vec<serde_json::Value> = text(&audit.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .filter(|record: &serde_json::Value| record["action"] == "abandoned")
        .collect();
    assert_eq!(abandoned.len(), 1, "{abandoned:?}");
    assert_eq!(abandoned[0]["detail"]["forced"], true);
    assert_eq!(abandoned[0]["detail"]["last_owner"]["host"], OLD_HOST);
    assert_eq!(abandoned[0]["detail"]["last_lease_epoch"], 1);

    // Abandoned for good: another abandon is refused, and the next run starts fresh.
    let again = run_on(&sandbox, THIS_HOST, &["abandon", &run_id, "--force"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again.stderr));
    sandbox.touch("release");
    let next = run_on(&sandbox, THIS_HOST, &["run", "wf.toml"]);
    let stdout = text(&next.stdout);
    assert_eq!(
        next.status.code(),
        Some(0),
        "{stdout}{}",
        text(&next.stderr)
    );
    assert!(!stdout.contains("resuming"), "a fresh run: {stdout}");
    assert_eq!(sandbox.runs().len(), 2, "the abandoned run is kept");
}

#[test]
fn a_forced_abandon_reports_the_overridden_owner_as_json() {
    let sandbox = Sandbox::new();
    let run_id = interrupted_on(&sandbox, OLD_HOST);
    let forced = run_on(
        &sandbox,
        THIS_HOST,
        &["abandon", &run_id, "--force", "--json"],
    );
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
    let line: serde_json::Value =
        serde_json::from_str(text(&forced.stdout).trim()).expect("one JSON line");
    assert_eq!(line["event"], "abandoned");
    assert_eq!(line["run_id"], run_id.as_str());
    assert_eq!(line["previous_status"], "running");
    assert_eq!(line["status"], "cancelled");
    assert_eq!(line["forced"], true);
    assert_eq!(line["overridden_owner"]["host"], OLD_HOST);
    assert_eq!(line["overridden_lease_epoch"], 1);
}

#[test]
fn force_never_overrides_a_live_driver() {
    let sandbox = Sandbox::new();
    let (mut driver, _group) = start_on(&sandbox, OLD_HOST);
    let run_id = sandbox.only_run_id();

    let forced = run_on(&sandbox, THIS_HOST, &["abandon", &run_id, "--force"]);
    let stderr = text(&forced.stderr);
    sandbox.touch("release");
    let finished = wait_exit(&mut driver);
    assert_eq!(forced.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("being driven right now"),
        "says why: {stderr}"
    );
    assert!(stderr.contains("stop that process first"), "{stderr}");
    assert_eq!(finished.code(), Some(0), "{}", sandbox.read("err1"));
    assert_eq!(status_of(&sandbox), "completed", "the driver finished it");
}

#[test]
fn force_refuses_a_last_driver_alive_on_this_host() {
    let sandbox = Sandbox::new();
    let run_id = interrupted_on(&sandbox, THIS_HOST);
    // Nobody drives the run, but its recorded owner is a live process on this host: what a
    // resumer that claimed the run and has not opened it yet looks like.
    let mut owner = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn sleep");
    let meta_path = sandbox.path(&format!(".cairn/runs/{run_id}/meta.json"));
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).expect("meta.json"))
            .expect("meta.json is JSON");
    assert_eq!(meta["owner"]["host"], THIS_HOST);
    // The owner is that process: its pid and its start (a pid alone, with the killed
    // driver's start, reads as a reused pid, which has exited).
    meta["owner"]["pid"] = serde_json::json!(owner.id());
    meta["owner"]["start"] =
        serde_json::to_value(cairn_checkpoint::ProcessStart::of(owner.id())).unwrap();
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).expect("write meta.json");

    let plain = run_on(&sandbox, THIS_HOST, &["abandon", &run_id]);
    let forced = run_on(&sandbox, THIS_HOST, &["abandon", &run_id, "--force"]);
    owner.kill().expect("kill sleep");
    owner.wait().expect("reap sleep");

    let stderr = text(&plain.stderr);
    assert_eq!(plain.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("still alive on this host"), "{stderr}");
    assert!(
        !stderr.contains("--force --state-dir"),
        "--force is not offered for a live local owner: {stderr}"
    );
    let stderr = text(&forced.stderr);
    assert_eq!(forced.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("stop that process first"), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", owner.id())),
        "names the owner: {stderr}"
    );
    assert_eq!(status_of(&sandbox), "running", "nothing changed");

    // Once that process has exited, the plain abandon works, audited as not forced.
    let plain = run_on(&sandbox, THIS_HOST, &["abandon", &run_id, "--json"]);
    assert_eq!(plain.status.code(), Some(0), "{}", text(&plain.stderr));
    let line: serde_json::Value =
        serde_json::from_str(text(&plain.stdout).trim()).expect("one JSON line");
    assert_eq!(line["forced"], false);
    assert_eq!(status_of(&sandbox), "cancelled");
}

#[test]
fn abandon_help_explains_force_and_the_exit_codes() {
    let sandbox = Sandbox::new();
    let help = run_on(&sandbox, THIS_HOST, &["abandon", "--help"]);
    let stdout = text(&help.stdout);
    assert_eq!(help.status.code(), Some(0), "{}", text(&help.stderr));
    assert!(stdout.contains("--force"), "{stdout}");
    assert!(stdout.contains("gone for good"), "{stdout}");
    assert!(stdout.contains("2  refused"), "{stdout}");
}

/// Runs [`BLOCKING`] on `host` and kills cairn with SIGKILL while `b` runs, leaving `b`'s
/// command running (a kill -9 cannot take it along). Returns the run id and `b`'s group.
fn killed_leaving_b_running(sandbox: &Sandbox, host: &str) -> (String, i64) {
    let (mut driver, group) = start_on(sandbox, host);
    signal(i64::from(driver.id()), "KILL");
    wait_exit(&mut driver);
    assert!(alive(-group), "a kill -9 leaves b's command running");
    (sandbox.only_run_id(), group)
}

#[test]
fn abandon_kills_the_commands_a_kill_9_left_running() {
    let sandbox = Sandbox::new();
    let (run_id, group) = killed_leaving_b_running(&sandbox, THIS_HOST);

    let abandon = run_on(&sandbox, THIS_HOST, &["abandon", &run_id, "--json"]);
    let stderr = text(&abandon.stderr);
    assert_eq!(abandon.status.code(), Some(0), "{stderr}");
    // Only the zombie of the killed leader can be left (reaped by init in its own time):
    // the command itself would loop until `release` exists.
    let line: serde_json::Value =
        serde_json::from_str(text(&abandon.stdout).trim()).expect("one JSON line");
    assert_eq!(line["status"], "cancelled");
    assert_eq!(line["leftovers_killed"][0]["task"], "b", "{line}");
    assert_eq!(line["leftovers_killed"][0]["process_group"], group);
    assert_eq!(line["leftovers_may_still_run"], serde_json::json!([]));
    assert!(
        !stderr.contains("warning"),
        "nothing to warn about: {stderr}"
    );
    wait_for("b's process group to be gone", || !alive(-group));

    // The old command never gets to log `b`, and a fresh run runs `b` exactly once.
    sandbox.touch("release");
    let next = run_on(&sandbox, THIS_HOST, &["run", "wf.toml"]);
    assert_eq!(next.status.code(), Some(0), "{}", text(&next.stderr));
    let log = sandbox.read("log");
    assert_eq!(log.lines().filter(|l| *l == "b").count(), 1, "{log}");
}

#[test]
fn abandon_says_which_commands_it_killed() {
    let sandbox = Sandbox::new();
    let (run_id, group) = killed_leaving_b_running(&sandbox, THIS_HOST);

    let abandon = run_on(&sandbox, THIS_HOST, &["abandon", &run_id]);
    let stdout = text(&abandon.stdout);
    assert_eq!(abandon.status.code(), Some(0), "{}", text(&abandon.stderr));
    assert!(stdout.contains("(was running)"), "{stdout}");
    assert!(
        stdout.contains(&format!("killed process group {group} of task `b`")),
        "{stdout}"
    );
    wait_for("b's process group to be gone", || !alive(-group));
}

#[test]
fn a_forced_abandon_names_the_commands_it_cannot_stop_on_another_host() {
    let sandbox = Sandbox::new();
    let (run_id, group) = killed_leaving_b_running(&sandbox, OLD_HOST);

    let forced = run_on(&sandbox, THIS_HOST, &["abandon", &run_id, "--force"]);
    // Its process ids belong to the other host: nothing here may kill them.
    let left_alone = alive(-group);
    signal(-group, "KILL");
    let stderr = text(&forced.stderr);
    assert_eq!(forced.status.code(), Some(0), "{stderr}");
    assert!(left_alone, "a group recorded on another host is not killed");
    assert!(
        stderr.contains(&format!("process group {group} of task `b`")),
        "names the group: {stderr}"
    );
    assert!(stderr.contains("may still be running there"), "{stderr}");
    assert!(
        stderr.contains(&format!("kill -KILL -- -{group}")),
        "says how to stop it: {stderr}"
    );
    assert_eq!(status_of(&sandbox), "cancelled");
}

#[test]
fn a_run_whose_journal_is_damaged_is_refused_with_a_way_out_and_abandon_takes_it() {
    // Damage in the middle of a journal is an error, never silently cut; the run cannot be
    // resumed, so abandoning it must work, and the refusal must say so.
    let sandbox = Sandbox::new();
    let run_id = interrupted_on(&sandbox, THIS_HOST);
    let journal = sandbox.path(&format!(".cairn/runs/{run_id}/journal"));
    let mut bytes = std::fs::read(&journal).expect("the journal");
    // Inside the first batch (after the 16-byte file header), with batches after it.
    bytes[24] ^= 0xFF;
    std::fs::write(&journal, &bytes).expect("damaged");

    let refused = run_on(&sandbox, THIS_HOST, &["run", "wf.toml"]);
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("corruption in run"), "{stderr}");
    assert!(
        stderr.contains(&format!("`cairn abandon {run_id}`")),
        "the way out is named: {stderr}"
    );

    let abandoned = run_on(&sandbox, THIS_HOST, &["abandon", &run_id]);
    assert_eq!(
        abandoned.status.code(),
        Some(0),
        "{}",
        text(&abandoned.stderr)
    );
    assert_eq!(status_of(&sandbox), "cancelled");
    assert_eq!(
        std::fs::read(&journal).expect("still there"),
        bytes,
        "the damaged journal is kept as it is"
    );
    let audit = run_on(&sandbox, THIS_HOST, &["audit", &run_id]);
    assert!(
        text(&audit.stdout).contains("could not be read (journal is damaged at byte"),
        "{}",
        text(&audit.stdout)
    );
    // And the workflow runs again, fresh.
    sandbox.write("release", "");
    let fresh = run_on(&sandbox, THIS_HOST, &["run", "wf.toml"]);
    assert_eq!(fresh.status.code(), Some(0), "{}", text(&fresh.stderr));
}

/// Review 50 (Low): an abandon that takes effect but cannot write its audit record says it
/// took effect, and exits 5 for the store failure, instead of reading as a failed abandon.
#[test]
fn an_abandon_that_cannot_write_its_audit_record_says_the_run_is_abandoned() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "wf.toml",
        "name = \"fails\"\n[[task]]\nid = \"a\"\nrun = \"exit 7\"\nmax_attempts = 1\n",
    );
    let failed = sandbox.run(&["run", "wf.toml"]);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed.stderr));
    let run_id = sandbox.only_run_id();
    let audit = sandbox.path(&format!(".cairn/runs/{run_id}/audit.jsonl"));
    std::fs::remove_file(&audit).expect("the run has an audit log");
    std::fs::create_dir(&audit).expect("a folder where the log belongs");

    let output = sandbox.run(&["abandon", &run_id, "--json"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(5), "{stderr}");
    let event: serde_json::Value =
        serde_json::from_str(text(&output.stdout).trim()).expect("one JSON line");
    assert_eq!(event["event"], "abandoned", "{event}");
    assert_eq!(event["audited"], false, "{event}");
    assert!(
        stderr.contains(&format!(
            "run {run_id} is abandoned, but its audit record could not be written"
        )),
        "{stderr}"
    );
    assert_eq!(status_of(&sandbox), "cancelled");
}
