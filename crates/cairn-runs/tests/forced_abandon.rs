//! `ResumePolicy::abandon_forced`: the audited override for an interrupted run whose last
//! owner cannot be checked (another host), which still refuses every writer that can be shown
//! to be alive, and loses or wins a race with a resumer cleanly.

#[macro_use]
mod common;

use std::sync::{Arc, Barrier};

use cairn_checkpoint::{
    AuditAction, CheckpointerFactory, MemoryFactory, Owner, RunId, RunMeta, RunStatus,
};
use cairn_runs::{Decision, Error, OverriddenOwner, ResumePolicy, RunRequest};

use common::*;

type Store = Arc<dyn CheckpointerFactory>;

/// The plain abandon refuses an owner on another host; the forced one cancels the run,
/// reports and audits the owner and epoch it overrode, and releases the lock it took.
async fn forced_abandon_of_an_other_host_owner_is_audited_as_forced(store: Store) {
    let before = interrupted_owned_by(&*store, "r1", "default", Some(gone_owner())).await;
    let policy = ResumePolicy::new(Arc::clone(&store));

    let refused = policy.abandon(&before.run_id).await.unwrap_err();
    assert!(
        matches!(refused, Error::StillRunning { live: false, ref owner, .. } if *owner == Some(gone_owner())),
        "{refused:?}"
    );
    assert_eq!(meta(&*store, &before.run_id).await, before);

    let abandoned = policy.abandon_forced(&before.run_id).await.unwrap();
    assert_eq!(abandoned.previous_status, RunStatus::Running);
    assert_eq!(abandoned.meta.status, RunStatus::Cancelled);
    assert_eq!(
        abandoned.overridden,
        Some(OverriddenOwner {
            owner: Some(gone_owner()),
            lease_epoch: before.lease_epoch,
        })
    );
    assert_eq!(
        meta(&*store, &before.run_id).await.status,
        RunStatus::Cancelled
    );
    assert!(!store.is_held(&before.run_id).await.unwrap());

    let records = abandon_records(&*store, &before.run_id).await;
    assert_eq!(records.len(), 1, "{records:?}");
    let detail = &records[0].detail;
    assert_eq!(detail["forced"], true);
    assert_eq!(detail["previous_status"], "running");
    assert_eq!(detail["last_owner"]["host"], GONE_HOST);
    assert_eq!(detail["last_owner"]["pid"], 4242);
    assert_eq!(detail["last_lease_epoch"], before.lease_epoch);

    assert_abandoned_for_good(&policy, policy.abandon_forced(&before.run_id).await).await;
}
on_both_stores!(forced_abandon_of_an_other_host_owner_is_audited_as_forced);

/// A run with no recorded owner cannot be shown to be unowned either: refused plainly,
/// abandoned when forced, audited with a null owner.
async fn forced_abandon_of_a_run_without_owner(store: Store) {
    let before = interrupted_owned_by(&*store, "r1", "default", None).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let refused = policy.abandon(&before.run_id).await.unwrap_err();
    assert!(
        matches!(refused, Error::StillRunning { live: false, .. }),
        "{refused:?}"
    );
    let abandoned = policy.abandon_forced(&before.run_id).await.unwrap();
    assert_eq!(
        abandoned.overridden,
        Some(OverriddenOwner {
            owner: None,
            lease_epoch: before.lease_epoch,
        })
    );
    let records = abandon_records(&*store, &before.run_id).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].detail["forced"], true);
    assert!(records[0].detail["last_owner"].is_null());
}
on_both_stores!(forced_abandon_of_a_run_without_owner);

/// Force never overrides a held writer lock: the run is being driven right now.
async fn forced_abandon_is_refused_while_a_writer_holds_the_lock(store: Store) {
    let writer = begin_owned_by(&*store, "r1", "default", Some(gone_owner())).await;
    let before = meta(&*store, &id("r1")).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let refused = policy.abandon_forced(&before.run_id).await.unwrap_err();
    assert!(
        matches!(refused, Error::StillRunning { live: true, .. }),
        "{refused:?}"
    );
    assert_eq!(meta(&*store, &before.run_id).await, before);
    assert!(abandon_records(&*store, &before.run_id).await.is_empty());

    // The writer is not disturbed: it can still finish the run.
    let done = writer
        .complete()
        .await
        .expect("the writer completes the run");
    assert_eq!(done.status, RunStatus::Completed);
}
on_both_stores!(forced_abandon_is_refused_while_a_writer_holds_the_lock);

/// Force never overrides a live process on this host (here: this test process, as a
/// resumer that claimed the run and has not opened it yet would be).
async fn forced_abandon_is_refused_for_an_owner_alive_on_this_host(store: Store) {
    let before = interrupted(&*store, "r1", "site", "default", "in", 10).await;
    assert_eq!(before.owner, Some(Owner::current()));
    let policy = ResumePolicy::new(Arc::clone(&store));
    let refused = policy.abandon_forced(&before.run_id).await.unwrap_err();
    assert!(
        matches!(refused, Error::OwnerAlive { ref owner, ref run_id } if *owner == Owner::current() && *run_id == before.run_id),
        "{refused:?}"
    );
    assert_eq!(meta(&*store, &before.run_id).await, before);
    assert!(abandon_records(&*store, &before.run_id).await.is_empty());
    assert!(!store.is_held(&before.run_id).await.unwrap());
}
on_both_stores!(forced_abandon_is_refused_for_an_owner_alive_on_this_host);

/// Force changes nothing for a failed run: an ordinary abandon, audited as not forced.
async fn forced_abandon_of_a_failed_run_is_an_ordinary_abandon(store: Store) {
    let before = failed(&*store, "f1", "site", "default", "in", 10).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let abandoned = policy.abandon_forced(&before.run_id).await.unwrap();
    assert_eq!(abandoned.previous_status, RunStatus::Failed);
    assert_eq!(abandoned.overridden, None);
    let records = abandon_records(&*store, &before.run_id).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].detail["forced"], false);
}
on_both_stores!(forced_abandon_of_a_failed_run_is_an_ordinary_abandon);

/// How many forced abandoners race one resumer per run.
const ABANDONERS: usize = 3;

/// One resumer (a plain request, which recovers the interrupted run) races `ABANDONERS`
/// forced abandoners on each run of another host's crashed driver. Exactly one of them wins
/// each run; the losers get a typed error (abandoners) or a decision other than `Resume`
/// (the resumer), and the run ends `running` (claimed once, never audited abandoned) or
/// `cancelled` (audited abandoned once, as forced). The losers' claims change nothing: the
/// stored run is exactly what the winner got back: one lease epoch after the listed one,
/// owned by the resumer, or, cancelled by an abandon, at the listed lease.
fn a_forced_abandon_racing_a_resumer_has_one_winner(store: Store, reps: usize) {
    let listed: Vec<RunMeta> = runtime().block_on(async {
        let mut listed = Vec::with_capacity(reps);
        for rep in 0..reps {
            let name = format!("race-{rep}");
            listed.push(
                interrupted_owned_by(&*store, &name, &format!("s{rep}"), Some(gone_owner())).await,
            );
        }
        listed
    });
    let ids: Vec<RunId> = listed.iter().map(|meta| meta.run_id.clone()).collect();
    let policy = ResumePolicy::new(Arc::clone(&store));
    let barrier = Barrier::new(1 + ABANDONERS);
    // Per racer, per run: what the racer got back when it won.
    let outcomes: Vec<Vec<Option<RunMeta>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..=ABANDONERS)
            .map(|thread| {
                let policy = policy.clone();
                let barrier = &barrier;
                let ids = &ids;
                scope.spawn(move || {
                    let rt = runtime();
                    ids.iter()
                        .enumerate()
                        .map(|(rep, run_id)| {
                            barrier.wait();
                            if thread == 0 {
                                let request = RunRequest::new("site", format!("s{rep}"), "in");
                                match rt.block_on(policy.decide(&request)) {
                                    Ok(Decision::Resume(resumed)) => {
                                        assert_eq!(&resumed.meta.run_id, run_id);
                                        Some(resumed.meta)
                                    }
                                    Ok(_) => None,
                                    Err(other) => panic!("decide for {run_id}: {other:?}"),
                                }
                            } else {
                                match rt.block_on(policy.abandon_forced(run_id)) {
                                    Ok(abandoned) => Some(abandoned.meta),
                                    Err(
                                        Error::AlreadyTerminal { .. }
                                        | Error::StillRunning { .. }
                                        | Error::ClaimedDuringAbandon { .. }
                                        | Error::OwnerAlive { .. },
                                    ) => None,
                                    Err(other) => panic!("abandon of {run_id}: {other:?}"),
                                }
                            }
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a racer thread panicked"))
            .collect()
    });
    runtime().block_on(async {
        let mut resumer_wins = 0;
        for (rep, before) in listed.iter().enumerate() {
            let run_id = &before.run_id;
            let winners: Vec<usize> = (0..=ABANDONERS)
                .filter(|t| outcomes[*t][rep].is_some())
                .collect();
            assert_eq!(winners.len(), 1, "run {run_id}: winners {winners:?}");
            let won = outcomes[winners[0]][rep]
                .as_ref()
                .expect("the winner's run");
            let stored = meta(&*store, run_id).await;
            let actions = audit_actions(&*store, run_id).await;
            let count = |action: AuditAction| actions.iter().filter(|a| **a == action).count();
            if winners[0] == 0 {
                resumer_wins += 1;
                assert_eq!(stored.status, RunStatus::Running, "{run_id}");
                assert_eq!(count(AuditAction::Recovered), 1, "{run_id}: {actions:?}");
                assert_eq!(count(AuditAction::Abandoned), 0, "{run_id}: {actions:?}");
            } else {
                assert_eq!(stored.status, RunStatus::Cancelled, "{run_id}");
                assert_eq!(count(AuditAction::Recovered), 0, "{run_id}: {actions:?}");
                let records = abandon_records(&*store, run_id).await;
                assert_eq!(records.len(), 1, "{run_id}: {records:?}");
                assert_eq!(records[0].detail["forced"], true);
            }
            // Only a winning resumer's claim moved the lease: one epoch on, owned by it (this
            // process, where the gone driver's host was recorded). A winning abandon takes no
            // lease (it holds the writer lock, under which the store refuses every claim), so
            // the lease is the one it checked. No loser changed it.
            let (epoch, owner) = if winners[0] == 0 {
                (before.lease_epoch + 1, Some(Owner::current()))
            } else {
                (before.lease_epoch, before.owner.clone())
            };
            assert_eq!(
                (stored.lease_epoch, &stored.owner),
                (epoch, &owner),
                "{run_id}: at most one claim, one epoch (winner {})",
                winners[0]
            );
            assert_eq!(
                &stored, won,
                "{run_id}: the stored run is what the winner got back"
            );
            assert!(!store.is_held(run_id).await.unwrap(), "{run_id}");
        }
        // Logged, not asserted: which side wins a run depends on the scheduler.
        eprintln!("resumer won {resumer_wins} of {reps} runs");
    });
}

#[test]
fn forced_abandon_races_a_resumer_memory() {
    let store: Store = Arc::new(MemoryFactory::new());
    a_forced_abandon_racing_a_resumer_has_one_winner(store, 300);
}

#[test]
fn forced_abandon_races_a_resumer_file_store() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store: Store = Arc::new(file_store(dir.path()));
    a_forced_abandon_racing_a_resumer_has_one_winner(store, 40);
}
