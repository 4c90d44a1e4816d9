//! Review 52 F3: a run another live process has claimed for automatic recovery, but not yet
//! opened, is `Decision::Live` to every other `decide`, which changes nothing. Before the
//! fix such a second caller claimed the run over the first one's claim (it listed the epoch
//! that claim made) and both were told `Resume`.
//!
//! This target has no libtest harness (`harness = false`): `main` runs the cases one after
//! the other (libtest-mimic with one thread), because they spawn processes (see `exited_owner.rs` on why spawning beside
//! tests that hold run locks is unsafe). The first case re-executes this binary with
//! `CAIRN_RUNS_CLAIMER_ROOT` set as the claimer: it calls `decide` on the file store, prints
//! one `CLAIMED ...` line, and then stays alive without opening the run until the parent
//! writes its "go" file, as a process between its claim and its executor's open does.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_checkpoint::{AuditAction, CheckpointerFactory, MemoryFactory, Owner, ProcessStart};
use cairn_runs::{Decision, OwnerLiveness, ResumePolicy, ResumeReason, RunRequest};

use common::*;

type Store = Arc<dyn CheckpointerFactory>;

const ENV_ROOT: &str = "CAIRN_RUNS_CLAIMER_ROOT";
const ENV_GO: &str = "CAIRN_RUNS_CLAIMER_GO";
/// A liveness bound for a broken child (it never measures speed).
const HANG_LIMIT: Duration = Duration::from_secs(120);

fn main() {
    if let Ok(root) = std::env::var(ENV_ROOT) {
        claimer(Path::new(&root));
        return;
    }
    let mut trials = vec![libtest_mimic::Trial::test(
        "a_claim_by_another_live_process_is_live_to_a_second_decide",
        || {
            a_claim_by_another_live_process_is_live_to_a_second_decide();
            Ok(())
        },
    )];
    for name in ["memory", "file"] {
        trials.push(libtest_mimic::Trial::test(
            format!("a_live_owner_stops_recovery_until_it_exits::{name}"),
            move || {
                with_store(name, a_live_owner_stops_recovery_until_it_exits);
                Ok(())
            },
        ));
        trials.push(libtest_mimic::Trial::test(
            format!("owners_that_do_not_stop_recovery::{name}"),
            move || {
                with_store(name, owners_that_do_not_stop_recovery);
                Ok(())
            },
        ));
    }
    // libtest's arguments (`--list`, name filters, `--exact`, `--ignored`) work as for every
    // other target; the cases still run one after the other.
    let mut args = libtest_mimic::Arguments::from_args();
    args.test_threads = Some(1);
    libtest_mimic::run(&args, trials).exit();
}

/// Runs `case` on a fresh store of kind `name` (`memory`, or `file` in a temp dir).
fn with_store<F: std::future::Future<Output = ()>>(name: &str, case: impl FnOnce(Store) -> F) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store: Store = match name {
        "memory" => Arc::new(MemoryFactory::new()),
        _ => Arc::new(file_store(dir.path())),
    };
    runtime().block_on(case(store));
}

fn request(scope: &str) -> RunRequest {
    RunRequest::new("site", scope, "in")
}

/// An owner on this host that has exited: a pid that is gone, recorded with a start.
fn exited_owner() -> Owner {
    let mut gone = Command::new("true").spawn().expect("spawn true");
    gone.wait().expect("reap true");
    let owner = Owner {
        pid: gone.id(),
        host: Owner::current().host,
        start: Some(ProcessStart {
            boot_id: ProcessStart::current_boot_id().unwrap_or_default(),
            ticks: 1,
        }),
    };
    assert_eq!(OwnerLiveness::of(&owner), OwnerLiveness::Exited);
    owner
}

/// The child: claims the interrupted run through the policy, says so, and holds on to the
/// claim (alive, the run not opened) until the parent lets it go.
fn claimer(root: &Path) {
    let go = PathBuf::from(std::env::var(ENV_GO).expect("the go file is set for the claimer"));
    let policy = ResumePolicy::new(file_store(root));
    match runtime().block_on(policy.decide(&request("default"))) {
        Ok(Decision::Resume(resumed)) => println!(
            "CLAIMED epoch={} pid={}",
            resumed.meta.lease_epoch,
            std::process::id()
        ),
        other => println!("NOT CLAIMED {other:?}"),
    }
    let started = Instant::now();
    while !go.exists() && started.elapsed() < HANG_LIMIT {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The race of review 52 F3 with its timing fixed: one process claims the interrupted run,
/// and a second `decide` lists it after that claim, before the claimer opens it.
fn a_claim_by_another_live_process_is_live_to_a_second_decide() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let root = dir.path().join("store");
    let go = dir.path().join("go");
    let store = file_store(&root);
    let rt = runtime();
    let run_id = rt
        .block_on(interrupted_owned_by(
            &store,
            "r1",
            "default",
            Some(exited_owner()),
        ))
        .run_id;

    let mut child: Child = Command::new(std::env::current_exe().expect("the test binary"))
        .env(ENV_ROOT, &root)
        .env(ENV_GO, &go)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the claimer starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("the claimer's stdout"))
        .read_line(&mut line)
        .expect("the claimer says what it did");
    assert_eq!(
        line.trim(),
        format!("CLAIMED epoch=2 pid={}", child.id()),
        "the first decide claims the run"
    );
    let claimed = rt.block_on(meta(&store, &run_id));
    assert_eq!(claimed.owner.as_ref().map(|o| o.pid), Some(child.id()));
    let audit = rt.block_on(audit_actions(&store, &run_id));

    // The second decide, while the claimer is alive and has not opened the run.
    let decision = rt.block_on(ResumePolicy::new(file_store(&root)).decide(&request("default")));
    std::fs::write(&go, b"go").expect("the go file is written");
    child.wait().expect("the claimer exits");
    let decision = decision.expect("decide answers");
    assert!(
        matches!(
            &decision,
            Decision::Live(live)
                if live.run_id == run_id
                    && live.lease_epoch == claimed.lease_epoch
                    && live.owner == claimed.owner
        ),
        "{decision:?}"
    );
    assert_eq!(
        rt.block_on(meta(&store, &run_id)),
        claimed,
        "the claim stands: no epoch bump, same owner"
    );
    assert_eq!(
        rt.block_on(audit_actions(&store, &run_id)),
        audit,
        "nothing audited"
    );
}

/// A run whose recorded owner is another live process on this host (a `sleep`, standing
/// in for a claimer that has not opened the run yet) is `Live` and left exactly as it was;
/// once that process has exited, the run is interrupted and recovered.
async fn a_live_owner_stops_recovery_until_it_exits(store: Store) {
    let mut sleeper = Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn sleep");
    let owner = Owner {
        pid: sleeper.id(),
        host: Owner::current().host,
        start: ProcessStart::of(sleeper.id()),
    };
    let before = interrupted_owned_by(&*store, "live", "live", Some(owner.clone())).await;
    let audit_before = audit_actions(&*store, &before.run_id).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let decision = policy.decide(&request("live")).await;
    let after = meta(&*store, &before.run_id).await;
    let audit = audit_actions(&*store, &before.run_id).await;
    sleeper.kill().expect("kill sleep");
    sleeper.wait().expect("reap sleep");

    let decision = decision.expect("decide answers");
    assert!(
        matches!(
            &decision,
            Decision::Live(live)
                if live.run_id == before.run_id
                    && live.owner.as_ref() == Some(&owner)
                    && live.lease_epoch == before.lease_epoch
        ),
        "{decision:?}"
    );
    assert_eq!(after, before, "nothing changed");
    assert_eq!(audit, audit_before, "nothing audited");

    // The owner is gone now: the run is interrupted, and recovered.
    assert_eq!(OwnerLiveness::of(&owner), OwnerLiveness::Exited);
    let decision = policy
        .decide(&request("live"))
        .await
        .expect("decide answers");
    assert!(
        matches!(
            &decision,
            Decision::Resume(resumed)
                if resumed.reason == ResumeReason::Interrupted
                    && resumed.meta.lease_epoch == before.lease_epoch + 1
        ),
        "{decision:?}"
    );
}

/// Owners the liveness check must not stop: this process itself (its own drive left the
/// run `running`), and an owner on another host, which cannot be checked from here (a host
/// that is gone must not strand its runs).
async fn owners_that_do_not_stop_recovery(store: Store) {
    for (run, owner) in [("own", Owner::current()), ("remote", gone_owner())] {
        let before = interrupted_owned_by(&*store, run, run, Some(owner)).await;
        let decision = ResumePolicy::new(Arc::clone(&store))
            .decide(&request(run))
            .await
            .expect("decide answers");
        assert!(
            matches!(
                &decision,
                Decision::Resume(resumed)
                    if resumed.meta.run_id == before.run_id
                        && resumed.meta.lease_epoch == before.lease_epoch + 1
            ),
            "{run}: {decision:?}"
        );
        assert!(
            audit_actions(&*store, &before.run_id)
                .await
                .contains(&AuditAction::Recovered)
        );
    }
}
