//! Acceptance 7 (threads): concurrent resumers of one failed run; exactly one wins, every
//! loser gets `NotResumable { current: Running }`, and the run has exactly one new owner.

mod common;

use std::sync::{Arc, Barrier};

use cairn_checkpoint::{AuditAction, CheckpointerFactory, MemoryFactory, RunId, RunStatus};
use cairn_runs::{Error, ResumePolicy};

use common::*;

const RESUMERS: usize = 16;

/// Fails `reps` runs in `store` and returns their ids.
fn failed_runs(store: &Arc<dyn CheckpointerFactory>, reps: usize) -> Vec<RunId> {
    runtime().block_on(async {
        let mut ids = Vec::with_capacity(reps);
        for rep in 0..reps {
            let name = format!("race-{rep}");
            failed(&**store, &name, "site", &format!("s{rep}"), "input", 10).await;
            ids.push(id(&name));
        }
        ids
    })
}

/// Runs `RESUMERS` threads that each resume every run in `ids`, all threads starting each
/// run together, and returns per run how many won.
fn race(store: &Arc<dyn CheckpointerFactory>, ids: &[RunId]) -> Vec<usize> {
    let policy = ResumePolicy::new(Arc::clone(store));
    let barrier = Barrier::new(RESUMERS);
    let outcomes: Vec<Vec<bool>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..RESUMERS)
            .map(|_| {
                let policy = policy.clone();
                let barrier = &barrier;
                scope.spawn(move || {
                    let rt = runtime();
                    ids.iter()
                        .map(|run_id| {
                            barrier.wait();
                            match rt.block_on(policy.resume(run_id)) {
                                Ok(resumed) => {
                                    assert_eq!(resumed.meta.lease_epoch, 2);
                                    true
                                }
                                Err(Error::NotResumable {
                                    current: RunStatus::Running,
                                    run_id: lost,
                                }) => {
                                    assert_eq!(&lost, run_id);
                                    false
                                }
                                Err(other) => panic!("unexpected error for {run_id}: {other:?}"),
                            }
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a resumer thread panicked"))
            .collect()
    });
    (0..ids.len())
        .map(|rep| outcomes.iter().filter(|thread| thread[rep]).count())
        .collect()
}

fn assert_one_winner_each(store: &Arc<dyn CheckpointerFactory>, ids: &[RunId]) {
    let winners = race(store, ids);
    for (rep, count) in winners.iter().enumerate() {
        assert_eq!(*count, 1, "run {} had {count} winners", ids[rep]);
    }
    runtime().block_on(async {
        for run_id in ids {
            let stored = meta(&**store, run_id).await;
            assert_eq!(stored.status, RunStatus::Running);
            assert_eq!(stored.lease_epoch, 2, "exactly one claim of {run_id}");
            let resumes = audit_actions(&**store, run_id)
                .await
                .into_iter()
                .filter(|a| *a == AuditAction::ResumedById)
                .count();
            assert_eq!(resumes, 1, "one audited resume of {run_id}");
        }
    });
}

#[test]
fn sixteen_threads_one_winner_1000_times_memory() {
    let store: Arc<dyn CheckpointerFactory> = Arc::new(MemoryFactory::new());
    let ids = failed_runs(&store, 1000);
    assert_one_winner_each(&store, &ids);
}

#[test]
fn sixteen_threads_one_winner_file_store() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store: Arc<dyn CheckpointerFactory> = Arc::new(file_store(dir.path()));
    let ids = failed_runs(&store, 50);
    assert_one_winner_each(&store, &ids);
}

/// Resumers and abandoners racing on one failed run: exactly one of all of them succeeds,
/// and the run ends `running` or `cancelled` accordingly.
#[test]
fn resume_and_abandon_race_has_one_winner() {
    let store: Arc<dyn CheckpointerFactory> = Arc::new(MemoryFactory::new());
    let ids = failed_runs(&store, 200);
    let policy = ResumePolicy::new(Arc::clone(&store));
    let barrier = Barrier::new(RESUMERS);
    let outcomes: Vec<Vec<bool>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..RESUMERS)
            .map(|thread| {
                let policy = policy.clone();
                let barrier = &barrier;
                let ids = &ids;
                scope.spawn(move || {
                    let rt = runtime();
                    ids.iter()
                        .map(|run_id| {
                            barrier.wait();
                            if thread.is_multiple_of(2) {
                                match rt.block_on(policy.resume(run_id)) {
                                    Ok(_) => true,
                                    Err(Error::NotResumable { .. }) => false,
                                    Err(other) => panic!("resume of {run_id}: {other:?}"),
                                }
                            } else {
                                match rt.block_on(policy.abandon(run_id)) {
                                    Ok(_) => true,
                                    Err(
                                        Error::AlreadyTerminal { .. }
                                        | Error::StillRunning { .. }
                                        | Error::ClaimedDuringAbandon { .. },
                                    ) => false,
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
        for (rep, run_id) in ids.iter().enumerate() {
            let winners: Vec<usize> = (0..RESUMERS).filter(|t| outcomes[*t][rep]).collect();
            assert_eq!(winners.len(), 1, "run {run_id}: winners {winners:?}");
            let expected = if winners[0].is_multiple_of(2) {
                RunStatus::Running
            } else {
                RunStatus::Cancelled
            };
            assert_eq!(meta(&*store, run_id).await.status, expected);
        }
    });
}
