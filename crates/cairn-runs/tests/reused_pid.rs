//! An owner is a process, not a pid: a recorded owner whose pid now belongs to a process that
//! started at another time (a reused pid), or that ran before the host last booted, has
//! exited, so its interrupted run can be abandoned without `--force`. The owner used here
//! is this test process's own pid with another start, so the pid is certainly alive.

#[macro_use]
mod common;

use std::sync::Arc;

use cairn_checkpoint::{
    AuditAction, CheckpointerFactory, MemoryFactory, Owner, ProcessStart, RunStatus,
};
use cairn_runs::{Error, OwnerLiveness, ResumePolicy};

use common::*;

type Store = Arc<dyn CheckpointerFactory>;

/// This process, as `Owner::current` records it (this host has `/proc`).
fn me() -> (Owner, ProcessStart) {
    let me = Owner::current();
    let start = me
        .start
        .clone()
        .expect("this host has /proc, so the start is recorded");
    (me, start)
}

#[test]
fn an_owner_is_alive_only_with_the_start_it_was_recorded_with() {
    let (me, start) = me();
    assert_eq!(OwnerLiveness::of(&me), OwnerLiveness::AliveHere);

    let earlier = Owner {
        start: Some(ProcessStart {
            ticks: start.ticks.saturating_sub(1),
            ..start.clone()
        }),
        ..me.clone()
    };
    assert_eq!(
        OwnerLiveness::of(&earlier),
        OwnerLiveness::Exited,
        "a reused pid"
    );

    let other_boot = Owner {
        start: Some(ProcessStart {
            boot_id: "00000000-0000-0000-0000-000000000000".to_owned(),
            ..start.clone()
        }),
        ..me.clone()
    };
    assert_eq!(
        OwnerLiveness::of(&other_boot),
        OwnerLiveness::Exited,
        "a process of an earlier boot"
    );

    // Recorded without its start (by an older build): a live pid is taken as the owner.
    let unrecorded = Owner {
        start: None,
        ..me.clone()
    };
    assert_eq!(OwnerLiveness::of(&unrecorded), OwnerLiveness::AliveHere);
}

/// The plain abandon cancels an interrupted run whose recorded owner's pid was reused; the
/// forced one refuses only the owner that is really alive.
async fn abandon_of_a_run_whose_owner_pid_was_reused(store: Store) {
    let (me, start) = me();
    let reused = Owner {
        start: Some(ProcessStart {
            ticks: start.ticks + 1,
            ..start
        }),
        ..me.clone()
    };
    let before = interrupted_owned_by(&*store, "r1", "default", Some(reused.clone())).await;
    let alive = interrupted_owned_by(&*store, "r2", "default", Some(me.clone())).await;
    let policy = ResumePolicy::new(Arc::clone(&store));

    let abandoned = policy.abandon(&before.run_id).await.unwrap();
    assert_eq!(abandoned.previous_status, RunStatus::Running);
    assert_eq!(abandoned.meta.status, RunStatus::Cancelled);
    assert_eq!(
        abandoned.overridden, None,
        "not forced: the owner has exited"
    );
    let records = abandon_records(&*store, &before.run_id).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].action, AuditAction::Abandoned);
    assert_eq!(records[0].detail["forced"], serde_json::json!(false));

    let refused = policy.abandon_forced(&alive.run_id).await.unwrap_err();
    assert!(matches!(refused, Error::OwnerAlive { .. }), "{refused:?}");
    assert_eq!(meta(&*store, &alive.run_id).await, alive);
}

on_both_stores!(abandon_of_a_run_whose_owner_pid_was_reused);
