//! The conformance cases of `CheckpointerFactory::remove_terminal`: retention removes a run
//! finished for good and nothing else.

use std::time::Duration;

use cairn_queue::{Event, Timestamp};

use super::cases::{begin, check_invisible, sample_events, sample_snapshot};
use super::{CaseResult, ConformanceHarness, Damage};
use crate::audit::{AuditAction, AuditRecord};
use crate::error::Error;
use crate::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
use crate::meta::{RunError, RunFilter, RunId, RunMeta, RunStatus};
use crate::port::{Checkpointer, CheckpointerFactory};

fn id(text: &str) -> RunId {
    RunId::new(text).expect("conformance run ids are valid")
}

fn meta(run: &str, created_ms: u64) -> RunMeta {
    RunMeta::new(
        id(run),
        "retention",
        "scope",
        format!("input of {run}"),
        Timestamp(created_ms),
    )
}

/// Begins `run` with three events and a snapshot between them, so every kind of state
/// (metadata, snapshot, journal, audit log) is stored; returns the writer.
async fn begin_with_state(factory: &dyn CheckpointerFactory, run: &str) -> Box<dyn Checkpointer> {
    let writer = begin(factory, meta(run, 1)).await;
    writer
        .append(&sample_events(0, 2))
        .await
        .unwrap_or_else(|err| panic!("append to run {run}: {err:?}"));
    writer
        .install_snapshot(&sample_snapshot(1))
        .await
        .unwrap_or_else(|err| panic!("snapshot of run {run}: {err:?}"));
    writer
        .append(&sample_events(2, 3))
        .await
        .unwrap_or_else(|err| panic!("append to run {run}: {err:?}"));
    writer
        .audit(&AuditRecord::new(
            Timestamp(2),
            id(run),
            AuditAction::Recovered,
            FIRST_RUN_AUDIT,
        ))
        .await
        .unwrap_or_else(|err| panic!("audit of run {run}: {err:?}"));
    writer
}

/// The message of the audit record `begin_with_state` writes.
const FIRST_RUN_AUDIT: &str = "written by the first run of this id";

/// A run with state, completed and released.
async fn completed_run(factory: &dyn CheckpointerFactory, run: &str) {
    let writer = begin_with_state(factory, run).await;
    writer
        .complete()
        .await
        .unwrap_or_else(|err| panic!("complete run {run}: {err:?}"));
}

/// A run with state, cancelled by a status swap (as an abandon does) and released.
async fn cancelled_run(factory: &dyn CheckpointerFactory, run: &str) {
    drop(begin_with_state(factory, run).await);
    factory
        .compare_and_swap_status(&id(run), RunStatus::Running, RunStatus::Cancelled)
        .await
        .unwrap_or_else(|err| panic!("cancel run {run}: {err:?}"))
        .unwrap_or_else(|conflict| panic!("cancel run {run}: {conflict:?}"));
}

/// Everything the port shows of one run, to compare before and after a refused removal.
#[derive(Debug, PartialEq)]
struct Visible {
    meta: RunMeta,
    snapshot_and_events: (Option<cairn_queue::Snapshot>, Vec<Event>),
    audit: Vec<AuditRecord>,
    listed: bool,
}

/// Reads what a fresh factory (another process) sees of `run_id`. Opens the run, so no
/// writer may hold it.
async fn visible<H: ConformanceHarness>(h: &H, run_id: &RunId) -> Visible {
    let factory = h.factory();
    let opened = factory
        .open(run_id)
        .await
        .unwrap_or_else(|err| panic!("open of run {run_id} failed: {err:?}"))
        .unwrap_or_else(|| panic!("run {run_id} is not stored"));
    let recovered = opened.recovered;
    drop(opened.checkpointer);
    let meta = factory
        .load_meta(run_id)
        .await
        .unwrap_or_else(|err| panic!("load_meta of run {run_id}: {err:?}"))
        .unwrap_or_else(|| panic!("run {run_id} has no metadata"));
    assert_eq!(meta, recovered.meta, "load_meta and open agree on {run_id}");
    let audit = factory
        .read_audit(run_id)
        .await
        .unwrap_or_else(|err| panic!("read_audit of run {run_id}: {err:?}"));
    let listed = factory
        .list(&RunFilter::default())
        .await
        .expect("list")
        .iter()
        .any(|m| m.run_id == *run_id);
    Visible {
        meta,
        snapshot_and_events: (recovered.snapshot, recovered.events),
        audit,
        listed,
    }
}

/// Checks that nothing of `run_id` is visible through a fresh factory any more.
async fn check_gone<H: ConformanceHarness>(h: &H, run_id: &RunId) {
    let factory = h.factory();
    check_invisible(&*factory, run_id, "a removed run").await;
    assert!(
        !factory.is_held(run_id).await.expect("is_held"),
        "nothing holds a removed run {run_id}"
    );
    // A record that comes late (a dropped call finishing) must not start a new log that a
    // run begun later under the same id would inherit.
    let late = AuditRecord::new(Timestamp(9), run_id.clone(), AuditAction::Discarded, "late");
    let err = factory
        .append_audit(run_id, &late)
        .await
        .expect_err("a removed run takes no audit record");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(
        factory
            .read_audit(run_id)
            .await
            .expect("read_audit")
            .is_empty(),
        "a removed run {run_id} has no audit log, and a refused record is not stored"
    );
    let err = factory
        .claim(run_id, RunStatus::Completed, 1)
        .await
        .expect_err("a removed run cannot be claimed");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = factory
        .remove_terminal(run_id)
        .await
        .expect_err("a removed run cannot be removed again");
    assert!(
        matches!(&err, Error::NotFound { run_id: named } if named == run_id),
        "{err:?}"
    );
}

/// A `completed` and a `cancelled` run are removed with all their state (they are not
/// listed, `load_meta`/`open` find nothing, the audit log is empty, a second removal is
/// `NotFound`), the returned metadata is what was stored, other runs are untouched, and the
/// id can be begun again as a new run.
pub async fn remove_completed_and_cancelled_runs<H: ConformanceHarness>(h: &H) -> CaseResult {
    let factory = h.factory();
    completed_run(&*factory, "remove-done").await;
    cancelled_run(&*factory, "remove-gone").await;
    completed_run(&*factory, "remove-kept").await;
    let kept = id("remove-kept");
    let kept_before = visible(h, &kept).await;

    for (name, status) in [
        ("remove-done", RunStatus::Completed),
        ("remove-gone", RunStatus::Cancelled),
    ] {
        let run_id = id(name);
        let stored = visible(h, &run_id).await.meta;
        assert_eq!(stored.status, status);
        // Another process removes it: nothing of this factory may be needed.
        let removed = h
            .factory()
            .remove_terminal(&run_id)
            .await
            .unwrap_or_else(|err| panic!("removal of {status} run {run_id} failed: {err:?}"));
        assert_eq!(removed, stored, "the removal returns the stored metadata");
        check_gone(h, &run_id).await;
    }
    assert_eq!(
        visible(h, &kept).await,
        kept_before,
        "removing other runs left run {kept} untouched"
    );

    // The id is free again: a new run of that id starts empty.
    let reused = id("remove-done");
    let fresh = meta("remove-done", 50);
    let writer = begin(&*factory, fresh.clone()).await;
    let recovered = writer.load().await.expect("load of the new run");
    assert_eq!(recovered.meta, fresh);
    assert_eq!(recovered.snapshot, None, "the new run has no old snapshot");
    assert!(recovered.events.is_empty(), "the new run has no old events");
    writer
        .append(&sample_events(7, 8))
        .await
        .expect("append to the new run");
    drop(writer);
    let after = visible(h, &reused).await;
    assert_eq!(after.meta, fresh);
    assert_eq!(after.snapshot_and_events, (None, sample_events(7, 8)));
    assert!(
        after
            .audit
            .iter()
            .all(|record| record.message != FIRST_RUN_AUDIT),
        "the new run's audit log holds nothing of the old run: {:?}",
        after.audit
    );
    assert!(after.listed);
    CaseResult::Passed
}

/// A `running`, `paused` or `failed` run is refused with `NotTerminal` naming its status,
/// and nothing about it changes: metadata, snapshot, events, audit log, listing.
pub async fn remove_refuses_unfinished_runs<H: ConformanceHarness>(h: &H) -> CaseResult {
    let factory = h.factory();
    drop(begin_with_state(&*factory, "keep-running").await);
    drop(begin_with_state(&*factory, "keep-paused").await);
    factory
        .compare_and_swap_status(&id("keep-paused"), RunStatus::Running, RunStatus::Paused)
        .await
        .expect("cas")
        .expect("running → paused");
    let failing = begin_with_state(&*factory, "keep-failed").await;
    failing
        .fail(&RunError::new("step", "it broke"))
        .await
        .expect("fail");
    drop(failing);

    for (name, status) in [
        ("keep-running", RunStatus::Running),
        ("keep-paused", RunStatus::Paused),
        ("keep-failed", RunStatus::Failed),
    ] {
        let run_id = id(name);
        let before = visible(h, &run_id).await;
        assert_eq!(before.meta.status, status);
        // Let the clock move on, so a write on the refusing path would show in `updated_at`.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let err = h
            .factory()
            .remove_terminal(&run_id)
            .await
            .expect_err("an unfinished run is never removed");
        assert!(
            matches!(&err, Error::NotTerminal { run_id: named, status: found } if *named == run_id && *found == status),
            "removal of {status} run {run_id}: {err:?}"
        );
        assert_eq!(
            visible(h, &run_id).await,
            before,
            "a refused removal left {status} run {run_id} as it was"
        );
    }
    CaseResult::Passed
}

/// A finished run whose writer is still held (by `begin` or by `open`) is refused with
/// `Locked`, and is left as it was; once the writer is dropped the removal goes through.
pub async fn remove_refuses_a_held_run<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("remove-held");
    let factory = h.factory();
    let writer = begin_with_state(&*factory, "remove-held").await;
    let completed = writer.complete().await.expect("complete");
    let other = h.factory();
    for holder in ["begin", "open"] {
        let err = other
            .remove_terminal(&run_id)
            .await
            .expect_err("a held run is never removed");
        match &err {
            Error::Locked {
                run_id: named,
                holder: text,
            } => {
                assert_eq!(*named, run_id);
                assert!(!text.trim().is_empty(), "Locked names the holder");
            }
            other => panic!("removal of a run held by {holder} gave {other:?}, not Locked"),
        }
        assert_eq!(
            other.load_meta(&run_id).await.expect("load_meta"),
            Some(completed.clone()),
            "a refused removal left the run held by {holder} as it was"
        );
    }
    // The writer still owns the run: what it appends is kept.
    writer
        .append(&sample_events(3, 4))
        .await
        .expect("the writer keeps writing after a refused removal");
    drop(writer);
    let opened = factory
        .open(&run_id)
        .await
        .expect("open")
        .expect("the run is still there");
    assert_eq!(
        opened.recovered.events,
        sample_events(2, 4),
        "the journal after the snapshot is whole"
    );
    let err = other
        .remove_terminal(&run_id)
        .await
        .expect_err("a run held by open is never removed");
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    drop(opened);

    let removed = other.remove_terminal(&run_id).await.expect("removal");
    assert_eq!(removed.status, RunStatus::Completed);
    check_gone(h, &run_id).await;
    CaseResult::Passed
}

/// A quarantined run is `NotFound` to a removal, and its quarantined state and audit log
/// stay exactly as they were.
pub async fn remove_never_touches_quarantined_state<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("remove-quarantined");
    let factory = h.factory();
    completed_run(&*factory, "remove-quarantined").await;
    factory
        .quarantine(&run_id, "a person asked")
        .await
        .expect("quarantine");
    let audit = factory.read_audit(&run_id).await.expect("read_audit");
    assert!(
        audit.iter().any(|r| r.action == AuditAction::Quarantined),
        "{audit:?}"
    );
    let err = h
        .factory()
        .remove_terminal(&run_id)
        .await
        .expect_err("quarantined state is never removed");
    assert!(
        matches!(&err, Error::NotFound { run_id: named } if *named == run_id),
        "{err:?}"
    );
    assert_eq!(
        h.factory().read_audit(&run_id).await.expect("read_audit"),
        audit,
        "the quarantined run's audit log is kept"
    );
    let err = factory
        .begin(meta("remove-quarantined", 9))
        .await
        .expect_err("a quarantined id still cannot be begun again");
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    CaseResult::Passed
}

/// A finished run whose stored metadata is of another format version is refused with a
/// bad-state error and left in place, so `open` still finds and quarantines it.
pub async fn remove_refuses_bad_metadata<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("remove-bad-meta");
    let factory = h.factory();
    completed_run(&*factory, "remove-bad-meta").await;
    if let Damage::Unsupported(reason) = h.plant_version_mismatch(&run_id) {
        return CaseResult::Skipped(reason);
    }
    let err = h
        .factory()
        .remove_terminal(&run_id)
        .await
        .expect_err("bad metadata is never removed");
    assert!(err.is_bad_state(), "{err:?}");
    let err = h
        .factory()
        .open(&run_id)
        .await
        .expect_err("the bad state is still there for open to quarantine");
    assert!(matches!(err, Error::VersionMismatch { .. }), "{err:?}");
    let audit = factory.read_audit(&run_id).await.expect("read_audit");
    assert!(
        audit.iter().any(|r| r.action == AuditAction::Quarantined),
        "{audit:?}"
    );
    CaseResult::Passed
}

/// A removal failed by the fault wrapper before it reached the adapter leaves the run
/// whole; one failed after it reached the adapter reports `Injected`, but the run is gone
/// (the effect happened, the reply was lost), and a retry is `NotFound`.
pub async fn remove_terminal_with_injected_faults<H: ConformanceHarness>(h: &H) -> CaseResult {
    let plan = FaultPlan::new();
    let faulty = FaultyFactory::new(h.factory(), plan.clone());
    let injected = |err: &Error| {
        matches!(
            err,
            Error::Injected {
                op: "remove_terminal"
            }
        )
    };

    completed_run(&faulty, "remove-fault-before").await;
    let before_id = id("remove-fault-before");
    let before = visible(h, &before_id).await;
    plan.fail_next(FaultOp::RemoveTerminal, FaultTiming::Before);
    let err = faulty
        .remove_terminal(&before_id)
        .await
        .expect_err("the fault fires");
    assert!(injected(&err), "{err:?}");
    assert_eq!(
        visible(h, &before_id).await,
        before,
        "a removal refused before the adapter changed nothing"
    );

    completed_run(&faulty, "remove-fault-after").await;
    let after_id = id("remove-fault-after");
    plan.fail_next(FaultOp::RemoveTerminal, FaultTiming::After);
    let err = faulty
        .remove_terminal(&after_id)
        .await
        .expect_err("the fault fires");
    assert!(injected(&err), "{err:?}");
    check_gone(h, &after_id).await;
    assert_eq!(plan.fired().len(), 2, "each fault fired once");
    assert_eq!(plan.calls(FaultOp::RemoveTerminal), 2);
    CaseResult::Passed
}
