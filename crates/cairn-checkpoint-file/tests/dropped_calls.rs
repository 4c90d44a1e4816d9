//! An `audit`, `complete` or `fail` whose future is dropped still writes (its blocking work
//! runs on): the run's lock must be held until that write is done, even when the writer is
//! dropped first, so no other writer opens the run while it can still change.

mod common;

use std::sync::Arc;

use cairn_checkpoint::{
    AuditAction, AuditRecord, Checkpointer, CheckpointerFactory, Durability, Error, RunId,
    RunStatus,
};
use cairn_queue::Timestamp;
use common::{FileHarness, IoPlan, meta, run_bounded};

/// Lets held calls go when dropped, so that a failing test ends instead of leaving a call
/// held for ever.
struct Released(Arc<IoPlan>);

impl Drop for Released {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Waits (a hang detector, not a speed check) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..12_000 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("gave up waiting until {what}");
}

#[test]
fn a_dropped_audit_or_finish_keeps_the_run_locked_until_its_write_is_done() {
    for call in ["audit", "complete"] {
        run_bounded(dropped_call_keeps_the_lock(call));
    }
}

/// One case: `call` (`audit` or `complete`) held inside its blocking work, its future and
/// the writer dropped.
async fn dropped_call_keeps_the_lock(call: &'static str) {
    let harness = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let _released = Released(Arc::clone(&plan));
    let held_factory = harness.failing_factory(&plan, Durability::Sync);
    let factory = harness.file_factory();
    let id = RunId::new(call).unwrap();
    let run: Arc<dyn Checkpointer> = Arc::from(held_factory.begin(meta(call)).await.unwrap());

    // Held inside the call's blocking work, just before it writes.
    let held_at = if call == "audit" {
        "audit.jsonl"
    } else {
        "meta.lock"
    };
    plan.hold("lock", held_at);
    let calling = {
        let run = Arc::clone(&run);
        let id = id.clone();
        tokio::spawn(async move {
            if call == "audit" {
                let record = AuditRecord::new(Timestamp(2), id, AuditAction::Finished, "late note");
                run.audit(&record).await
            } else {
                run.complete().await.map(|_| ())
            }
        })
    };
    until("the call is held", || plan.waiting() == 1).await;
    // The caller gives up on the call (a timeout, say), then drops the writer.
    calling.abort();
    assert!(calling.await.unwrap_err().is_cancelled());
    drop(run);

    let opened = factory.open(&id).await;
    assert!(
        matches!(opened, Err(Error::Locked { .. })),
        "{call}: the run's lock was let go while the dropped call could still write: {:?}",
        opened.map(|found| found.map(|opened| opened.recovered.meta.status))
    );

    plan.release();
    let mut reopened = None;
    for _ in 0..12_000 {
        match factory.open(&id).await {
            Err(Error::Locked { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            other => {
                reopened = Some(other.unwrap().unwrap());
                break;
            }
        }
    }
    let reopened = reopened.expect("the lock is let go once the write is done");
    if call == "audit" {
        drop(reopened);
        let audit = factory.read_audit(&id).await.unwrap();
        assert_eq!(audit.last().unwrap().message, "late note", "{audit:?}");
    } else {
        assert_eq!(reopened.recovered.meta.status, RunStatus::Completed);
    }
}
