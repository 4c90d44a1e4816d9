//! A run of the scope that another live process on this host has claimed but not opened yet
//! blocks a fresh run like a run a writer holds, even when it is not the lookup's candidate
//! (a newer run superseded it, as when `cairn resume` takes up an old failed run by id).
//! These tests spawn a child process to stand for that claimer, so they run one at a time.

mod common;

use std::sync::{Arc, Mutex};

use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, Owner, ProcessStart, RunStatus};
use cairn_runs::{Decision, OwnerLiveness, ResumePolicy, RunRequest};

use common::*;

type Store = Arc<dyn CheckpointerFactory>;

/// Held for the whole of each test: no two of them spawn or hold locks at once (a spawned
/// child briefly inherits the run locks of concurrent tests).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Like `on_both_stores!`, with [`ONE_AT_A_TIME`] held around each test (outside the
/// async body, so no guard is held across an await).
macro_rules! serially_on_both_stores {
    ($name:ident) => {
        mod $name {
            #[test]
            fn memory() {
                let _serial = super::one_at_a_time();
                let store: super::Store = std::sync::Arc::new(super::MemoryFactory::new());
                super::common::runtime().block_on(super::$name(store));
            }

            #[test]
            fn file() {
                let _serial = super::one_at_a_time();
                let dir = tempfile::tempdir().expect("a temp dir");
                let store: super::Store =
                    std::sync::Arc::new(super::common::file_store(dir.path()));
                super::common::runtime().block_on(super::$name(store));
            }
        }
    };
}

/// A child process alive on this host, and the owner record a claim by it would leave.
fn live_claimer() -> (std::process::Child, Owner) {
    let child = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn sleep");
    let owner = Owner {
        pid: child.id(),
        host: Owner::current().host,
        start: ProcessStart::of(child.id()),
    };
    (child, owner)
}

fn stop(mut child: std::process::Child) {
    child.kill().expect("kill sleep");
    child.wait().expect("reap sleep");
}

/// `r1` is `running`, claimed by a live process that has not opened it yet, and a newer
/// completed run supersedes it. A plain request, and a forced one, must not start a second
/// driver in the scope: the lookup said `Fresh`, although the same run, once its claimer
/// opened it, makes every request `Live`.
async fn a_superseded_run_claimed_by_a_live_process_blocks_a_fresh_run(store: Store) {
    let (child, owner) = live_claimer();
    if OwnerLiveness::of(&owner) != OwnerLiveness::AliveHere {
        // No `/proc` here: liveness cannot be told, and the lookup recovers such runs.
        stop(child);
        return;
    }
    let claimed = interrupted_owned_by(&*store, "r1", "default", Some(owner.clone())).await;
    completed(&*store, "r2", "site", "default", 20).await;
    let policy = ResumePolicy::new(Arc::clone(&store));

    let plain = policy
        .decide(&RunRequest::new("site", "default", "in"))
        .await;
    let forced = policy
        .decide(&RunRequest::new("site", "default", "in").force())
        .await;
    stop(child);

    for decision in [plain.unwrap(), forced.unwrap()] {
        let Decision::Live(live) = decision else {
            panic!("a run claimed by a live process got a second driver: {decision:?}");
        };
        assert_eq!(live.run_id, claimed.run_id);
        assert_eq!(live.owner, Some(owner.clone()));
        assert_eq!(live.lease_epoch, claimed.lease_epoch);
    }
    // Nothing was claimed or changed.
    assert_eq!(meta(&*store, &claimed.run_id).await, claimed);
    assert_eq!(run_count(&*store).await, 2);
}

serially_on_both_stores!(a_superseded_run_claimed_by_a_live_process_blocks_a_fresh_run);

/// `r1` is claimed by a live process that has not opened it yet, and the scope's newest run
/// `r2` failed. A forced request goes past failed runs, never beside a run about to be
/// driven: it must be `Live` too (it was `Fresh`, forced past `r2`).
async fn a_forced_run_waits_for_an_older_run_claimed_by_a_live_process(store: Store) {
    let (child, owner) = live_claimer();
    if OwnerLiveness::of(&owner) != OwnerLiveness::AliveHere {
        stop(child);
        return;
    }
    let claimed = interrupted_owned_by(&*store, "r1", "default", Some(owner.clone())).await;
    let newer = failed(&*store, "r2", "site", "default", "in", 20).await;
    let policy = ResumePolicy::new(Arc::clone(&store));

    let forced = policy
        .decide(&RunRequest::new("site", "default", "in").force())
        .await;
    stop(child);

    let forced = forced.unwrap();
    let Decision::Live(live) = forced else {
        panic!("a forced run started beside a claimed run: {forced:?}");
    };
    assert_eq!(live.run_id, claimed.run_id);
    assert_eq!(meta(&*store, &newer.run_id).await.status, RunStatus::Failed);
    assert_eq!(meta(&*store, &claimed.run_id).await, claimed);
}

serially_on_both_stores!(a_forced_run_waits_for_an_older_run_claimed_by_a_live_process);

/// Once the claimer has exited, the superseded run no longer blocks: the newer finished run
/// decides, as before (the run itself is left as it is, resumable by id).
async fn a_superseded_run_whose_claimer_exited_does_not_block(store: Store) {
    let (child, owner) = live_claimer();
    let claimed = interrupted_owned_by(&*store, "r1", "default", Some(owner)).await;
    completed(&*store, "r2", "site", "default", 20).await;
    stop(child);
    let policy = ResumePolicy::new(Arc::clone(&store));

    let decision = policy
        .decide(&RunRequest::new("site", "default", "in"))
        .await
        .unwrap();
    assert!(
        matches!(decision, Decision::Fresh(ref fresh) if fresh.forced_past.is_none()),
        "{decision:?}"
    );
    assert_eq!(meta(&*store, &claimed.run_id).await, claimed);
}

serially_on_both_stores!(a_superseded_run_whose_claimer_exited_does_not_block);
