//! Acceptance 7 (processes): four resumer PROCESSES on one failed run in one file store
//! give exactly one winner, 100 times over.
//!
//! This target has no libtest harness (`harness = false`): `main` is the parent test, and
//! the same binary, re-executed with `CAIRN_RUNS_CHILD_ROOT` set, is a child resumer. Each
//! child opens the store, announces it is ready, waits for the parent's "go" file, calls
//! `ResumePolicy::resume` once and prints one `OUTCOME ...` line.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_checkpoint::{AuditAction, RunStatus};
use cairn_runs::{Error, ResumePolicy};

use common::*;

const CHILDREN: usize = 4;
const REPS: usize = 100;
const ENV_ROOT: &str = "CAIRN_RUNS_CHILD_ROOT";
const ENV_RUN: &str = "CAIRN_RUNS_CHILD_RUN";
const ENV_GO: &str = "CAIRN_RUNS_CHILD_GO";
const ENV_READY: &str = "CAIRN_RUNS_CHILD_READY";
/// A liveness bound for a broken child (it never measures speed): waiting longer than this
/// for children to get ready or finish means one of them hung.
const HANG_LIMIT: Duration = Duration::from_secs(120);

fn main() {
    if let Ok(root) = std::env::var(ENV_ROOT) {
        child(Path::new(&root));
        return;
    }
    // libtest's arguments (`--list`, which runners such as nextest ask first, name filters,
    // `--exact`, `--ignored`) work as for every other target.
    let trial = libtest_mimic::Trial::test("four_processes_one_winner_100_times", || {
        parent();
        Ok(())
    });
    libtest_mimic::run(&libtest_mimic::Arguments::from_args(), vec![trial]).exit();
}

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(std::env::var(name).unwrap_or_else(|_| panic!("{name} is set for a child")))
}

fn child(root: &Path) {
    let run_id = id(&std::env::var(ENV_RUN).expect("the run id is set for a child"));
    let go = env_path(ENV_GO);
    let ready = env_path(ENV_READY);
    let rt = runtime();
    let policy = ResumePolicy::new(file_store(root));
    std::fs::write(&ready, b"ready").expect("the ready file is written");
    while !go.exists() {
        std::thread::sleep(Duration::from_micros(200));
    }
    let outcome = match rt.block_on(policy.resume(&run_id)) {
        Ok(resumed) => format!("won epoch={}", resumed.meta.lease_epoch),
        Err(Error::NotResumable {
            current: RunStatus::Running,
            ..
        }) => "lost running".to_owned(),
        Err(other) => format!("error {other:?}"),
    };
    println!("OUTCOME {outcome}");
}

fn spawn_child(root: &Path, run: &str, go: &Path, ready: &Path) -> Child {
    Command::new(std::env::current_exe().expect("the test binary path"))
        .env(ENV_ROOT, root)
        .env(ENV_RUN, run)
        .env(ENV_GO, go)
        .env(ENV_READY, ready)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("a child resumer starts")
}

fn parent() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let root = dir.path().join("store");
    let signals = dir.path().join("signals");
    std::fs::create_dir_all(&signals).expect("the signal dir is created");
    let store = file_store(&root);
    let rt = runtime();

    for rep in 0..REPS {
        let run = format!("proc-race-{rep}");
        let before = rt.block_on(failed(&store, &run, "site", "default", "input", rep as u64));
        let go = signals.join(format!("go-{rep}"));
        let ready: Vec<PathBuf> = (0..CHILDREN)
            .map(|n| signals.join(format!("ready-{rep}-{n}")))
            .collect();
        let mut children: Vec<Child> = ready
            .iter()
            .map(|ready| spawn_child(&root, &run, &go, ready))
            .collect();

        // Release all children at once, after each has its store open.
        let started = Instant::now();
        while !ready.iter().all(|path| path.exists()) {
            for child in &mut children {
                if let Some(status) = child.try_wait().expect("the child can be polled") {
                    panic!("rep {rep}: a child exited before it was ready: {status}");
                }
            }
            assert!(
                started.elapsed() < HANG_LIMIT,
                "rep {rep}: children never got ready"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::fs::write(&go, b"go").expect("the go file is written");

        let mut outcomes = Vec::new();
        for child in children {
            let output = child.wait_with_output().expect("the child finishes");
            assert!(
                output.status.success(),
                "rep {rep}: child failed: {output:?}"
            );
            let stdout = String::from_utf8(output.stdout).expect("utf-8 output");
            let outcome = stdout
                .lines()
                .find_map(|line| line.strip_prefix("OUTCOME "))
                .unwrap_or_else(|| panic!("rep {rep}: no outcome in {stdout:?}"))
                .to_owned();
            outcomes.push(outcome);
        }
        let won = outcomes.iter().filter(|o| o.starts_with("won")).count();
        let lost = outcomes.iter().filter(|o| *o == "lost running").count();
        assert_eq!(
            (won, lost),
            (1, CHILDREN - 1),
            "rep {rep}: outcomes {outcomes:?}"
        );
        assert!(
            outcomes.contains(&format!("won epoch={}", before.lease_epoch + 1)),
            "rep {rep}: outcomes {outcomes:?}"
        );

        let after = rt.block_on(meta(&store, &before.run_id));
        assert_eq!(after.status, RunStatus::Running);
        assert_eq!(
            after.lease_epoch,
            before.lease_epoch + 1,
            "rep {rep}: one claim"
        );
        let resumes = rt
            .block_on(audit_actions(&store, &before.run_id))
            .into_iter()
            .filter(|a| *a == AuditAction::ResumedById)
            .count();
        assert_eq!(resumes, 1, "rep {rep}: one audited resume");
    }
}
