//! The conformance cases of the epoch-checked status swap,
//! `CheckpointerFactory::compare_and_swap_status_at`: it wins only at the status and lease
//! epoch it expects, never takes the lease, and a refused swap changes nothing. These are
//! the rules that keep a late swap (a dropped abandon that lands after the run was resumed
//! and came back to the same status) from moving a run nobody decided to move.

use std::sync::Arc;
use std::time::Duration;

use super::cancel::{DROP_POINTS, poll_then_drop};
use super::cases::{CAS_THREADS, begin, claim_won, id, meta, race_from_threads, stored_meta};
use super::{CaseResult, ConformanceHarness};
use crate::error::Error;
use crate::meta::{RunError, RunId, RunMeta, RunStatus};
use crate::port::{CheckpointerFactory, StatusConflict};

/// How many times each threaded swap race is repeated.
const SWAP_ROUNDS: u64 = 16;

/// How long a case lets the clock move on, so that a write on a refused path shows in
/// `updated_at`.
const CLOCK_STEP: Duration = Duration::from_millis(5);

/// How long the dropped-swap case waits for an adapter's background work to land.
const LATE_LANDING: Duration = Duration::from_millis(30);

/// Every other one of `factories`, starting with the first in even rounds and the second
/// in odd ones. Roles are given by position, not by which thread comes first, so that the
/// first comer has either role.
fn every_other(
    factories: &[Arc<dyn CheckpointerFactory>],
    round: u64,
) -> Arc<Vec<Arc<dyn CheckpointerFactory>>> {
    let first = usize::from(round % 2 == 1);
    Arc::new(factories.iter().skip(first).step_by(2).cloned().collect())
}

/// Swaps `run_id` at `expected_epoch` and expects to win.
async fn swap_won(
    factory: &dyn CheckpointerFactory,
    run_id: &RunId,
    from: RunStatus,
    expected_epoch: u64,
    to: RunStatus,
) -> RunMeta {
    let what = format!("swap of run {run_id} from {from} at epoch {expected_epoch} to {to}");
    match factory
        .compare_and_swap_status_at(run_id, from, expected_epoch, to)
        .await
    {
        Ok(Ok(swapped)) => swapped,
        Ok(Err(conflict)) => panic!("{what} lost: {conflict:?}"),
        Err(err) => panic!("{what} failed: {err:?}"),
    }
}

/// Swaps `run_id` at `expected_epoch` and expects to lose, with a conflict value.
async fn swap_lost(
    factory: &dyn CheckpointerFactory,
    run_id: &RunId,
    from: RunStatus,
    expected_epoch: u64,
    to: RunStatus,
) -> StatusConflict {
    let what = format!("swap of run {run_id} from {from} at epoch {expected_epoch} to {to}");
    match factory
        .compare_and_swap_status_at(run_id, from, expected_epoch, to)
        .await
    {
        Ok(Err(conflict)) => conflict,
        Ok(Ok(swapped)) => panic!("{what} won: {swapped:?}"),
        Err(err) => panic!("{what} failed instead of losing: {err:?}"),
    }
}

/// A swap at the stored status and epoch wins: only the status and `updated_at` change (and
/// `finished_at`, for a terminal status or `failed`), the lease epoch and owner stay, and
/// it is stored so. It is no claim, so a writer holding the run does not refuse it.
pub async fn swap_at_the_read_epoch_wins<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("swap-at-won");
    let factory = h.factory();
    let writer = begin(&*factory, meta("swap-at-won", "wf", "scope", 1)).await;
    let read = stored_meta(h, &run_id).await;
    tokio::time::sleep(CLOCK_STEP).await;

    // The writer's owner may swap its own run (an abandon does, under the lock it opened).
    let paused = swap_won(
        &*h.factory(),
        &run_id,
        RunStatus::Running,
        read.lease_epoch,
        RunStatus::Paused,
    )
    .await;
    assert!(paused.updated_at >= read.updated_at, "{paused:?}");
    let expected = RunMeta {
        status: RunStatus::Paused,
        updated_at: paused.updated_at,
        ..read.clone()
    };
    assert_eq!(
        paused, expected,
        "a swap to paused changes only the status and updated_at: no lease, no finish"
    );
    assert_eq!(stored_meta(h, &run_id).await, paused, "the swap is stored");
    drop(writer);

    let failed = swap_won(&*factory, &run_id, RunStatus::Paused, 1, RunStatus::Failed).await;
    assert_eq!(
        (failed.lease_epoch, &failed.owner),
        (1, &read.owner),
        "a swap takes no lease"
    );
    assert_eq!(
        failed.finished_at,
        Some(failed.updated_at),
        "a swap to failed sets finished_at"
    );
    let cancelled = swap_won(
        &*h.factory(),
        &run_id,
        RunStatus::Failed,
        1,
        RunStatus::Cancelled,
    )
    .await;
    assert_eq!(
        (cancelled.status, cancelled.lease_epoch, &cancelled.owner),
        (RunStatus::Cancelled, 1, &read.owner)
    );
    assert_eq!(cancelled.finished_at, Some(cancelled.updated_at));
    assert_eq!(stored_meta(h, &run_id).await, cancelled);

    // After a claim, the swap expects the claimed epoch, and keeps it.
    let claimed_id = id("swap-at-claimed");
    drop(begin(&*factory, meta("swap-at-claimed", "wf", "scope", 2)).await);
    let claimed = claim_won(&*factory, &claimed_id, RunStatus::Running, 1).await;
    let completed = swap_won(
        &*factory,
        &claimed_id,
        RunStatus::Running,
        claimed.lease_epoch,
        RunStatus::Completed,
    )
    .await;
    assert_eq!(
        (completed.status, completed.lease_epoch, &completed.owner),
        (RunStatus::Completed, 2, &claimed.owner),
        "the epoch is not bumped"
    );
    assert!(completed.finished_at.is_some());
    assert_eq!(stored_meta(h, &claimed_id).await, completed);
    CaseResult::Passed
}

/// A swap that expects an epoch other than the stored one loses, whatever its target,
/// names the stored status, epoch and owner, and changes nothing (`updated_at` included);
/// so does one at the stored epoch that expects another status.
pub async fn swap_at_a_stale_epoch_changes_nothing<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("swap-at-stale");
    let factory = h.factory();
    drop(begin(&*factory, meta("swap-at-stale", "wf", "scope", 1)).await);
    let winner = claim_won(&*factory, &run_id, RunStatus::Running, 1).await;
    let before = stored_meta(h, &run_id).await;
    assert_eq!(before, winner);
    tokio::time::sleep(CLOCK_STEP).await;

    let loser = h.factory();
    for to in [
        RunStatus::Paused,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Completed,
    ] {
        for stale in [1, 0, 3, u64::MAX] {
            let conflict = swap_lost(&*loser, &run_id, RunStatus::Running, stale, to).await;
            assert_eq!(
                (conflict.expected, conflict.current),
                (RunStatus::Running, RunStatus::Running)
            );
            assert_eq!(
                (conflict.expected_epoch, conflict.current_epoch),
                (Some(stale), 2),
                "the loser learns the stored epoch"
            );
            assert_eq!(conflict.current_owner, winner.owner, "and who claimed it");
            assert!(conflict.claimed_by_another(), "{conflict:?}");
            assert!(!conflict.held_by_writer(), "{conflict:?}");
            assert_eq!(
                stored_meta(h, &run_id).await,
                before,
                "a swap to {to} at stale epoch {stale} changed the run"
            );
        }
    }

    // The stored epoch but another status: a status conflict, and nothing changes either.
    let conflict = swap_lost(&*loser, &run_id, RunStatus::Paused, 2, RunStatus::Cancelled).await;
    assert_eq!(
        (conflict.expected, conflict.current, conflict.current_epoch),
        (RunStatus::Paused, RunStatus::Running, 2)
    );
    assert!(!conflict.claimed_by_another(), "{conflict:?}");
    assert_eq!(stored_meta(h, &run_id).await, before);

    // The stored epoch still swaps: the losers left it as it was.
    let paused = swap_won(&*loser, &run_id, RunStatus::Running, 2, RunStatus::Paused).await;
    assert_eq!(paused.lease_epoch, 2);
    CaseResult::Passed
}

/// The ABA the epoch closes: a run read `failed` at epoch `e` is resumed (claimed, `e + 1`)
/// and fails again. A swap that expects `failed` at `e` (an abandon decided on the first
/// failure) is refused and changes nothing, although the status is `failed` again; one that
/// expects `failed` at `e + 1` wins.
pub async fn swap_at_refuses_a_run_resumed_since_it_was_read<H: ConformanceHarness>(
    h: &H,
) -> CaseResult {
    let run_id = id("swap-at-aba");
    let factory = h.factory();
    let run = begin(&*factory, meta("swap-at-aba", "wf", "scope", 1)).await;
    let read = run
        .fail(&RunError::new("task_failed", "the first failure"))
        .await
        .expect("fail");
    drop(run);
    assert_eq!((read.status, read.lease_epoch), (RunStatus::Failed, 1));

    // Resumed by id from another process, driven, and failed again.
    let resumed = claim_won(&*h.factory(), &run_id, RunStatus::Failed, read.lease_epoch).await;
    let opened = factory
        .open(&run_id)
        .await
        .expect("open of the resumed run")
        .expect("the run exists");
    let again = opened
        .checkpointer
        .fail(&RunError::new("task_failed", "the second failure"))
        .await
        .expect("fail again");
    drop(opened);
    assert_eq!(
        (again.status, again.lease_epoch),
        (RunStatus::Failed, read.lease_epoch + 1)
    );
    let before = stored_meta(h, &run_id).await;
    tokio::time::sleep(CLOCK_STEP).await;

    let conflict = swap_lost(
        &*h.factory(),
        &run_id,
        RunStatus::Failed,
        read.lease_epoch,
        RunStatus::Cancelled,
    )
    .await;
    assert_eq!(
        (conflict.expected, conflict.current),
        (RunStatus::Failed, RunStatus::Failed),
        "the status is the one read, so only the epoch can refuse the swap"
    );
    assert_eq!(
        (conflict.expected_epoch, conflict.current_epoch),
        (Some(read.lease_epoch), read.lease_epoch + 1)
    );
    assert_eq!(
        conflict.current_owner, resumed.owner,
        "it names the resumer"
    );
    assert!(conflict.claimed_by_another(), "{conflict:?}");
    assert_eq!(
        stored_meta(h, &run_id).await,
        before,
        "a swap that read an older failure changed the run"
    );

    let cancelled = swap_won(
        &*factory,
        &run_id,
        RunStatus::Failed,
        read.lease_epoch + 1,
        RunStatus::Cancelled,
    )
    .await;
    assert_eq!(
        (cancelled.status, cancelled.lease_epoch),
        (RunStatus::Cancelled, read.lease_epoch + 1)
    );
    assert_eq!(cancelled.error, again.error, "a swap keeps the run's error");
    assert!(cancelled.finished_at.is_some());
    assert_eq!(stored_meta(h, &run_id).await, cancelled);
    CaseResult::Passed
}

/// A swap out of `completed` or `cancelled` is `Terminal` whatever the epoch and target; one
/// that expects another status is a conflict. Neither changes the run.
pub async fn swap_at_of_a_terminal_run_changes_nothing<H: ConformanceHarness>(h: &H) -> CaseResult {
    let factory = h.factory();
    let done = begin(&*factory, meta("swap-at-done", "wf", "scope", 1)).await;
    done.complete().await.expect("complete");
    drop(done);
    drop(begin(&*factory, meta("swap-at-gone", "wf", "scope", 2)).await);
    swap_won(
        &*factory,
        &id("swap-at-gone"),
        RunStatus::Running,
        1,
        RunStatus::Cancelled,
    )
    .await;
    tokio::time::sleep(CLOCK_STEP).await;
    for (name, status) in [
        ("swap-at-done", RunStatus::Completed),
        ("swap-at-gone", RunStatus::Cancelled),
    ] {
        let run_id = id(name);
        let before = stored_meta(h, &run_id).await;
        for epoch in [before.lease_epoch, before.lease_epoch + 1] {
            for to in [
                RunStatus::Paused,
                RunStatus::Failed,
                RunStatus::Completed,
                RunStatus::Cancelled,
            ] {
                let err = factory
                    .compare_and_swap_status_at(&run_id, status, epoch, to)
                    .await
                    .expect_err("a terminal run never changes");
                assert!(
                    matches!(&err, Error::Terminal { run_id: named, status: found } if *named == run_id && *found == status),
                    "{err:?}"
                );
            }
        }
        let conflict = swap_lost(
            &*factory,
            &run_id,
            RunStatus::Failed,
            before.lease_epoch,
            RunStatus::Cancelled,
        )
        .await;
        assert_eq!(
            (conflict.current, conflict.current_epoch),
            (status, before.lease_epoch)
        );
        assert_eq!(
            stored_meta(h, &run_id).await,
            before,
            "refused swaps leave run {run_id} untouched"
        );
    }
    CaseResult::Passed
}

/// A swap to `running` is `ClaimRequired` whatever is stored, an unknown run included, and
/// changes nothing: moving a run to `running` takes the lease, which only a claim does.
pub async fn swap_at_to_running_is_refused<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("swap-at-running");
    let factory = h.factory();
    drop(begin(&*factory, meta("swap-at-running", "wf", "scope", 1)).await);
    swap_won(&*factory, &run_id, RunStatus::Running, 1, RunStatus::Paused).await;
    let before = stored_meta(h, &run_id).await;
    tokio::time::sleep(CLOCK_STEP).await;
    let refused =
        |outcome: crate::Result<Result<RunMeta, StatusConflict>>, named: &RunId| match outcome {
            Err(Error::ClaimRequired { run_id }) => assert_eq!(run_id, *named),
            other => panic!("a swap of run {named} to running gave {other:?}"),
        };
    for (from, epoch) in [
        (RunStatus::Paused, 1),
        (RunStatus::Paused, 2),
        (RunStatus::Running, 1),
        (RunStatus::Failed, 1),
        (RunStatus::Completed, 1),
    ] {
        let outcome = h
            .factory()
            .compare_and_swap_status_at(&run_id, from, epoch, RunStatus::Running)
            .await;
        refused(outcome, &run_id);
        assert_eq!(stored_meta(h, &run_id).await, before);
    }
    let nobody = id("swap-at-nobody");
    let outcome = factory
        .compare_and_swap_status_at(&nobody, RunStatus::Paused, 1, RunStatus::Running)
        .await;
    refused(outcome, &nobody);
    let err = factory
        .compare_and_swap_status_at(&nobody, RunStatus::Paused, 1, RunStatus::Cancelled)
        .await
        .expect_err("an unknown run");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

    // A claim is how the run goes back to running.
    let claimed = claim_won(&*factory, &run_id, RunStatus::Paused, 1).await;
    assert_eq!(
        (claimed.status, claimed.lease_epoch),
        (RunStatus::Running, 2)
    );
    CaseResult::Passed
}

/// `CAS_THREADS` OS threads, each with its own factory, swap the same run from the same
/// status: half of them at the stored epoch, half at the next one (which no claim has made
/// yet). Exactly one wins, always one at the stored epoch; every loser sees the run as it
/// is, and the epoch does not move.
pub async fn swaps_at_one_epoch_racing_from_threads_have_one_winner<H: ConformanceHarness>(
    h: &H,
) -> CaseResult {
    let run_id = id("swap-at-raced");
    let factory = h.factory();
    drop(begin(&*factory, meta("swap-at-raced", "wf", "scope", 1)).await);
    let factories: Vec<Arc<dyn CheckpointerFactory>> =
        (0..CAS_THREADS).map(|_| h.factory()).collect();
    for round in 0..SWAP_ROUNDS {
        // `begin` set epoch 1, and each round's claim adds one.
        let epoch = round + 1;
        let to = if round % 2 == 0 {
            RunStatus::Paused
        } else {
            RunStatus::Failed
        };
        let run = run_id.clone();
        // Half the threads, by position (the other half next round), expect the next epoch.
        let ahead_ones = every_other(&factories, round);
        let outcomes = race_from_threads(&factories, move |f| {
            let run = run.clone();
            let ahead = ahead_ones.iter().any(|one| Arc::ptr_eq(one, &f));
            let expected = if ahead { epoch + 1 } else { epoch };
            async move {
                let outcome = f
                    .compare_and_swap_status_at(&run, RunStatus::Running, expected, to)
                    .await;
                (expected, outcome)
            }
        })
        .await;
        let mut winners = Vec::new();
        for (expected, outcome) in outcomes {
            match outcome {
                Ok(Ok(swapped)) => {
                    assert_eq!(
                        expected, epoch,
                        "round {round}: a swap at epoch {expected} won at stored epoch {epoch}"
                    );
                    winners.push(swapped);
                }
                Ok(Err(conflict)) => {
                    assert_eq!(
                        conflict.current_epoch, epoch,
                        "round {round}: a loser sees the stored epoch"
                    );
                    assert!(
                        conflict.current == to || expected != epoch,
                        "round {round}: a loser at the stored epoch sees the winner's swap: \
                         {conflict:?}"
                    );
                    assert_eq!(conflict.expected_epoch, Some(expected));
                }
                Err(err) => panic!("round {round}: swap failed: {err:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one swap wins");
        assert_eq!(
            (winners[0].status, winners[0].lease_epoch),
            (to, epoch),
            "round {round}: the swap keeps the epoch"
        );
        assert_eq!(
            stored_meta(h, &run_id).await,
            winners[0],
            "round {round}: the stored run is the winner's, untouched by the losers"
        );
        // A claim brings the run back to `running` for the next round, one epoch on.
        claim_won(&*factory, &run_id, to, epoch).await;
    }
    CaseResult::Passed
}

/// Swaps to `cancelled` and claims of the same failed run at the same epoch race from
/// `CAS_THREADS` OS threads (an abandon against a resume): exactly one of them wins, and the
/// run is either cancelled at that epoch or running one epoch on, as the winner left it.
pub async fn swaps_at_and_claims_racing_have_one_winner<H: ConformanceHarness>(
    h: &H,
) -> CaseResult {
    let factory = h.factory();
    let factories: Vec<Arc<dyn CheckpointerFactory>> =
        (0..CAS_THREADS).map(|_| h.factory()).collect();
    for round in 0..SWAP_ROUNDS {
        let name = format!("swap-or-claim-{round}");
        let run_id = id(&name);
        let run = begin(&*factory, meta(&name, "wf", "scope", round)).await;
        let epoch = run
            .fail(&RunError::new("task_failed", "boom"))
            .await
            .expect("fail")
            .lease_epoch;
        drop(run);
        // Half the threads, by position (the other half next round), claim; the rest swap.
        let claimers = every_other(&factories, round);
        let raced = run_id.clone();
        let outcomes = race_from_threads(&factories, move |f| {
            let run = raced.clone();
            let claims = claimers.iter().any(|one| Arc::ptr_eq(one, &f));
            async move {
                let outcome = if claims {
                    f.claim(&run, RunStatus::Failed, epoch).await
                } else {
                    f.compare_and_swap_status_at(
                        &run,
                        RunStatus::Failed,
                        epoch,
                        RunStatus::Cancelled,
                    )
                    .await
                };
                (claims, outcome)
            }
        })
        .await;
        let mut winners = Vec::new();
        for (claims, outcome) in outcomes {
            match outcome {
                Ok(Ok(won)) => winners.push((claims, won)),
                Ok(Err(conflict)) => assert_ne!(
                    conflict.current,
                    RunStatus::Failed,
                    "round {round}: a loser sees the winner's move"
                ),
                Err(err) => panic!("round {round}: claims {claims}: {err:?}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one of the swaps and claims wins: {winners:?}"
        );
        let (claimed, won) = &winners[0];
        let expected = if *claimed {
            (RunStatus::Running, epoch + 1)
        } else {
            (RunStatus::Cancelled, epoch)
        };
        assert_eq!((won.status, won.lease_epoch), expected, "round {round}");
        assert_eq!(stored_meta(h, &run_id).await, *won, "round {round}");
    }
    CaseResult::Passed
}

/// A swap dropped part-way wins or changes nothing, whenever it ends, and only at its
/// epoch: a claim at the same epoch wins if it did not, and once the claimed run has
/// failed again (back to the status the swap expects, one epoch on) the dropped swap can
/// no longer move it, however late it lands.
pub async fn dropped_swaps_at_never_land_on_a_later_epoch<H: ConformanceHarness>(
    h: &H,
) -> CaseResult {
    let factory = h.factory();
    for (round, &(polls, pause)) in DROP_POINTS.iter().enumerate() {
        let name = format!("dropped-swap-at-{round}");
        let run_id = id(&name);
        let run = begin(&*factory, meta(&name, "wf", "scope", 1)).await;
        let epoch = run
            .fail(&RunError::new("task_failed", "the first failure"))
            .await
            .expect("fail")
            .lease_epoch;
        drop(run);
        let dropped = poll_then_drop(
            factory.compare_and_swap_status_at(
                &run_id,
                RunStatus::Failed,
                epoch,
                RunStatus::Cancelled,
            ),
            polls,
            pause,
        )
        .await;
        let dropped_won = match dropped {
            Some(Ok(Ok(swapped))) => {
                assert_eq!(
                    (swapped.status, swapped.lease_epoch),
                    (RunStatus::Cancelled, epoch)
                );
                true
            }
            Some(Ok(Err(conflict))) => panic!("a lone swap lost: {conflict:?}"),
            Some(Err(err)) => panic!("swap of run {run_id} failed: {err:?}"),
            None => false,
        };
        let claimed = factory
            .claim(&run_id, RunStatus::Failed, epoch)
            .await
            .unwrap_or_else(|err| panic!("claim of run {run_id} failed: {err:?}"));
        let failed_again = match claimed {
            Ok(claimed) => {
                assert!(!dropped_won, "a swap and a claim at epoch {epoch} both won");
                // The resumed run fails again: `failed`, as the dropped swap expects, but
                // one epoch on.
                let again = factory
                    .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Failed)
                    .await
                    .expect("swap running → failed")
                    .expect("no one else moves the run");
                assert_eq!(again.lease_epoch, claimed.lease_epoch);
                Some(again)
            }
            // The dropped swap won, before the claim or in the background.
            Err(conflict) => {
                assert_eq!(
                    (conflict.current, conflict.current_epoch),
                    (RunStatus::Cancelled, epoch),
                    "{conflict:?}"
                );
                None
            }
        };
        // Give a dropped swap still under way the time to land, then look.
        tokio::time::sleep(LATE_LANDING).await;
        let after = stored_meta(h, &run_id).await;
        match failed_again {
            Some(again) => assert_eq!(
                after, again,
                "round {round}: a swap dropped at epoch {epoch} moved the run at epoch {}",
                again.lease_epoch
            ),
            None => assert_eq!(
                (after.status, after.lease_epoch),
                (RunStatus::Cancelled, epoch),
                "round {round}"
            ),
        }
    }
    CaseResult::Passed
}
