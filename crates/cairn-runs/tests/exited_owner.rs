//! Abandons whose owner is a real process that exits: these tests spawn child processes, so
//! they live in a test binary of their own and run one at a time. Spawning copies every
//! open file descriptor of the test process into the child until it execs, the run locks of
//! concurrent tests included, so a test that had just dropped its writer could briefly see
//! its run as still held (seen once as `StillRunning { live: true }` under load).

#[macro_use]
mod common;

use std::sync::{Arc, Mutex};

use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
use cairn_checkpoint::{AuditAction, CheckpointerFactory, MemoryFactory, Owner, RunStatus};
use cairn_runs::{Error, OwnerLiveness, ResumePolicy};

use common::*;

type Store = Arc<dyn CheckpointerFactory>;

/// Held for the whole of each test: no two of them spawn or hold locks at once.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An interrupted run whose last owner has exited (as after Ctrl-C or kill -9 of the
/// process that drove it) can be abandoned: it becomes cancelled, is audited, and the next
/// request for its workflow and scope starts fresh instead of resuming it.
#[test]
fn abandon_of_an_interrupted_run_whose_owner_exited_cancels_it() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store: Store = Arc::new(file_store(dir.path()));
    runtime().block_on(async {
        let before = interrupted(&*store, "i1", "site", "default", "in", 10).await;
        // The process that drove it has exited: its pid is gone from /proc.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        let meta_path = file_store(dir.path())
            .run_dir(&before.run_id)
            .join("meta.json");
        let mut stored: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
        stored["owner"]["pid"] = serde_json::json!(gone.id());
        std::fs::write(&meta_path, serde_json::to_vec(&stored).unwrap()).unwrap();

        let policy = ResumePolicy::new(Arc::clone(&store));
        let abandoned = policy.abandon(&before.run_id).await.unwrap();
        assert_eq!(abandoned.previous_status, RunStatus::Running);
        assert_eq!(abandoned.meta.status, RunStatus::Cancelled);
        assert_eq!(
            meta(&*store, &before.run_id).await.status,
            RunStatus::Cancelled
        );
        assert!(
            !store.is_held(&before.run_id).await.unwrap(),
            "the writer lock taken for the swap is released"
        );
        let audit = store.read_audit(&before.run_id).await.unwrap();
        assert!(
            audit
                .iter()
                .any(|r| r.action == AuditAction::Abandoned
                    && r.detail["previous_status"] == "running"),
            "{audit:?}"
        );
        assert_abandoned_for_good(&policy, policy.abandon(&before.run_id).await).await;
    });
}

/// Another live process on this host as owner is refused too; once it has exited, the
/// plain abandon works and its audit record says it was not forced.
async fn an_owner_on_this_host_is_refused_while_alive_and_abandoned_once_exited(store: Store) {
    let mut child = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("spawn sleep");
    let owner = Owner {
        pid: child.id(),
        host: Owner::current().host,
        start: cairn_checkpoint::ProcessStart::of(child.id()),
    };
    assert_eq!(OwnerLiveness::of(&owner), OwnerLiveness::AliveHere);
    let before = interrupted_owned_by(&*store, "r1", "default", Some(owner.clone())).await;
    let policy = ResumePolicy::new(Arc::clone(&store));

    let refused = policy.abandon_forced(&before.run_id).await;
    let plain = policy.abandon(&before.run_id).await;
    child.kill().expect("kill sleep");
    child.wait().expect("reap sleep");
    let refused = refused.unwrap_err();
    assert!(
        matches!(refused, Error::OwnerAlive { owner: ref o, .. } if *o == owner),
        "{refused:?}"
    );
    let plain = plain.unwrap_err();
    assert!(
        matches!(plain, Error::StillRunning { live: false, .. }),
        "{plain:?}"
    );
    assert_eq!(meta(&*store, &before.run_id).await, before);

    assert_eq!(OwnerLiveness::of(&owner), OwnerLiveness::Exited);
    let abandoned = policy.abandon(&before.run_id).await.unwrap();
    assert_eq!(abandoned.overridden, None);
    let records = abandon_records(&*store, &before.run_id).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].detail["forced"], false);
    assert_eq!(records[0].detail["last_owner"]["pid"], owner.pid);
}

#[test]
fn an_owner_on_this_host_is_refused_while_alive_and_abandoned_once_exited_memory() {
    let _serial = one_at_a_time();
    let store: Store = Arc::new(MemoryFactory::new());
    runtime()
        .block_on(an_owner_on_this_host_is_refused_while_alive_and_abandoned_once_exited(store));
}

#[test]
fn an_owner_on_this_host_is_refused_while_alive_and_abandoned_once_exited_file() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store: Store = Arc::new(file_store(dir.path()));
    runtime()
        .block_on(an_owner_on_this_host_is_refused_while_alive_and_abandoned_once_exited(store));
}

/// A run whose journal is damaged mid-file cannot be opened, resumed or repaired by cairn;
/// abandoning it is the way out, and it must work (it did not: the abandon's `open` failed
/// with the same corruption). The damage is named in the audit and the files stay as they are.
#[test]
fn an_interrupted_run_with_a_damaged_journal_can_still_be_abandoned() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store: Store = Arc::new(file_store(dir.path()));
    runtime().block_on(async {
        let (journal, bytes) = damaged_interrupted(&store, dir.path(), "d1").await;

        let policy = ResumePolicy::new(Arc::clone(&store));
        let abandoned = policy.abandon(&id("d1")).await.expect("abandoned");
        assert_eq!(abandoned.meta.status, RunStatus::Cancelled);
        let audit = store.read_audit(&id("d1")).await.unwrap();
        let record = audit
            .iter()
            .find(|r| r.action == AuditAction::Abandoned)
            .expect("audited");
        let damage = record.detail["state_damage"].as_str().unwrap_or_default();
        assert!(
            damage.starts_with("journal is damaged at byte"),
            "{record:?}"
        );
        assert!(record.message.contains("left as it is"), "{record:?}");
        assert_eq!(
            std::fs::read(&journal).unwrap(),
            bytes,
            "the damaged journal is kept byte for byte"
        );
        assert!(!store.is_held(&id("d1")).await.unwrap());
    });
}

/// An interrupted run `name` whose last owner has exited and whose journal is damaged in
/// its first of two batches (corruption, not a torn tail); returns the journal's path and
/// its damaged bytes.
async fn damaged_interrupted(
    store: &Store,
    dir: &std::path::Path,
    name: &str,
) -> (std::path::PathBuf, Vec<u8>) {
    let run = begin(&**store, name, "site", "default", "in", 10).await;
    let mut queue = cairn_queue::Queue::new(cairn_queue::QueueConfig::default());
    for batch in 0..2 {
        queue
            .enqueue(
                cairn_queue::TaskSpec::new("step").inputs(batch.into()),
                cairn_queue::EnqueuedBy::Root,
                cairn_queue::Timestamp(11),
            )
            .unwrap();
        run.append(&queue.take_events()).await.unwrap();
    }
    drop(run);
    let run_dir = file_store(dir).run_dir(&id(name));
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let meta_path = run_dir.join("meta.json");
    let mut stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    stored["owner"]["pid"] = serde_json::json!(gone.id());
    std::fs::write(&meta_path, serde_json::to_vec(&stored).unwrap()).unwrap();
    // One byte inside the first of two batches: not a torn tail, so corruption.
    let journal = run_dir.join("journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes[40] ^= 0xFF;
    std::fs::write(&journal, &bytes).unwrap();
    assert!(
        matches!(
            store.open(&id(name)).await,
            Err(cairn_checkpoint::Error::Corruption { .. })
        ),
        "the damage is refused on open"
    );
    (journal, bytes)
}

/// An abandon of damaged state cut off between its claim and its swap (here the swap's
/// store call fails) leaves the run `running` and claimed by this process. An abandon from
/// this process takes it back at once: nobody can open the run to drive it. It used to be
/// refused (`StillRunning`) until the process exited, which for a long-lived host (the
/// scheduler) meant a restart.
#[test]
fn an_abandon_of_damaged_state_cut_off_after_its_claim_is_done_by_the_next_abandon() {
    let _serial = one_at_a_time();
    let dir = tempfile::tempdir().expect("a temp dir");
    let store: Store = Arc::new(file_store(dir.path()));
    runtime().block_on(async {
        let (journal, bytes) = damaged_interrupted(&store, dir.path(), "d2").await;
        let before = meta(&*store, &id("d2")).await;
        let faults = FaultPlan::new();
        faults.fail_next(FaultOp::CompareAndSwapAt, FaultTiming::Before);
        let cut = ResumePolicy::new(FaultyFactory::new(Arc::clone(&store), faults.clone()));
        let err = cut.abandon(&id("d2")).await.unwrap_err();
        assert!(matches!(err, Error::Storage(_)), "{err:?}");
        assert_eq!(faults.fired().len(), 1, "the swap failed");
        let left = meta(&*store, &id("d2")).await;
        assert_eq!(left.status, RunStatus::Running);
        assert_eq!(left.lease_epoch, before.lease_epoch + 1, "the claim stands");
        assert_eq!(left.owner, Some(Owner::current()));

        let policy = ResumePolicy::new(Arc::clone(&store));
        let abandoned = policy.abandon(&id("d2")).await.expect("abandoned");
        assert_eq!(abandoned.meta.status, RunStatus::Cancelled);
        assert_eq!(meta(&*store, &id("d2")).await.status, RunStatus::Cancelled);
        let records = abandon_records(&*store, &id("d2")).await;
        assert_eq!(records.len(), 1, "{records:?}");
        assert_eq!(records[0].detail["last_lease_epoch"], left.lease_epoch);
        assert_eq!(records[0].detail["forced"], false);
        assert!(
            records[0].message.contains("this process's own"),
            "{records:?}"
        );
        assert!(records[0].detail["state_damage"].is_string(), "{records:?}");
        assert_eq!(
            std::fs::read(&journal).unwrap(),
            bytes,
            "kept byte for byte"
        );
        assert!(!store.is_held(&id("d2")).await.unwrap());
    });
}
