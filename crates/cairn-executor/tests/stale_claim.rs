//! `Start::AdoptInterrupted` and `Start::Adopt` drive a run only under the lease their caller
//! claimed (review 52 F3): when another claim has moved the lease epoch on since, the adoption
//! is refused with `Error::AdoptLeaseMoved` before any task runs, and the run stays as the
//! store has it.
//! Once the adoption holds the run, the store refuses every other claim of it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cairn_checkpoint::{
    AuditAction, CheckpointerFactory, MemoryFactory, RunId, RunMeta, RunStatus,
};
use cairn_executor::{
    CancellationToken, Disposition, Error, Executor, ExecutorConfig, Finish, Phase, Registry,
    RunPlan, RunSignals, Start, TaskFailure, handler_fn,
};
use cairn_queue::{Handoff, TaskSpec};
use common::{Damage, Doctor, Ledger, stored};

/// Two `work` tasks, the second after the first.
fn plan() -> RunPlan {
    let mut phase = Phase::new("main");
    let first = phase.task(TaskSpec::new("work"), []);
    phase.task(TaskSpec::new("work"), [first]);
    RunPlan::new("wf", "scope").phase(phase)
}

fn config() -> ExecutorConfig {
    ExecutorConfig::default().with_shutdown_grace(Duration::from_secs(60))
}

/// `work` bodies record themselves in `bodies`; with `stop`, each body also shuts the run
/// down, so the run is left `running` after its first task.
fn registry(bodies: &Ledger, stop: Option<CancellationToken>) -> Registry {
    let bodies = bodies.clone();
    Registry::new().with(
        "work",
        handler_fn(move |ctx| {
            let (bodies, stop) = (bodies.clone(), stop.clone());
            async move {
                bodies.record(&ctx);
                if let Some(stop) = stop {
                    stop.cancel();
                }
                Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
            }
        }),
    )
}

/// A run of [`plan`] left `running` with its first task done and its second pending, as a
/// shutdown leaves it; no writer holds it.
async fn interrupted_run(store: &MemoryFactory) -> RunId {
    let signals = RunSignals::default();
    let first = Ledger::default();
    let executor = Executor::new(
        Arc::new(store.clone()),
        registry(&first, Some(signals.shutdown.clone())),
        config(),
    )
    .unwrap();
    let report = executor.run(plan(), Start::Fresh, signals).await.unwrap();
    assert_eq!(report.disposition, Disposition::LeaveRunning);
    assert_eq!(first.total(), 1);
    report.run_id
}

/// What an adoption must not change: the metadata, the journal and the audit log.
async fn snapshot_of(store: &MemoryFactory, run_id: &RunId) -> (RunMeta, usize, usize) {
    let meta = store.load_meta(run_id).await.unwrap().unwrap();
    let events = stored(store, run_id).await.events.len();
    let audit = store.read_audit(run_id).await.unwrap().len();
    (meta, events, audit)
}

fn is_lease_moved(err: &Error, run_id: &RunId, ours: &RunMeta, theirs: &RunMeta) -> bool {
    matches!(
        err,
        Error::AdoptLeaseMoved { run_id: refused, claimed_epoch, lease_epoch, owner }
            if refused == run_id
                && *claimed_epoch == ours.lease_epoch
                && *lease_epoch == theirs.lease_epoch
                && *owner == theirs.owner
    )
}

/// Claims `run_id` from `from` at epoch 1 ("ours"), lets another caller claim it over that
/// ("theirs"), then drives `start(ours)`, which must run nothing and change nothing, and
/// `start(theirs)`, which finishes the run.
async fn overtaken_claim_then_the_stored_one(
    store: &MemoryFactory,
    run_id: &RunId,
    from: RunStatus,
    start: impl Fn(u64) -> Start,
) {
    let ours = store.claim(run_id, from, 1).await.unwrap().unwrap();
    let theirs = store
        .claim(run_id, RunStatus::Running, ours.lease_epoch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(theirs.lease_epoch, ours.lease_epoch + 1);
    let before = snapshot_of(store, run_id).await;

    let bodies = Ledger::default();
    let executor =
        Executor::new(Arc::new(store.clone()), registry(&bodies, None), config()).unwrap();
    let err = executor
        .run(plan(), start(ours.lease_epoch), RunSignals::default())
        .await
        .unwrap_err();
    assert!(is_lease_moved(&err, run_id, &ours, &theirs), "{err:?}");
    assert_eq!(bodies.total(), 0, "no task ran under the stale claim");
    assert_eq!(snapshot_of(store, run_id).await, before, "nothing changed");
    assert_eq!(
        store.load_meta(run_id).await.unwrap().unwrap(),
        theirs,
        "the later claim is still the stored lease"
    );

    // The caller whose claim is the stored lease adopts it and finishes the run.
    let report = executor
        .run(plan(), start(theirs.lease_epoch), RunSignals::default())
        .await
        .unwrap();
    assert_eq!(report.disposition, Disposition::Complete);
    assert_eq!(bodies.total(), 1, "only the pending task ran");
}

/// The loser of the race in review 52 F3: it claimed the run, another caller claimed it
/// over that claim before it opened it, and it then adopts with its own, stale, epoch.
#[tokio::test]
async fn an_adoption_whose_claim_was_overtaken_runs_nothing_and_changes_nothing() {
    let store = MemoryFactory::new();
    let run_id = interrupted_run(&store).await;
    let start = |lease_epoch| Start::AdoptInterrupted {
        run_id: run_id.clone(),
        lease_epoch,
    };
    overtaken_claim_then_the_stored_one(&store, &run_id, RunStatus::Running, start).await;
}

/// `Start::Adopt` (an explicit resume of a failed run) is fenced the same way: a claim that
/// overtook the caller's makes it run nothing and change nothing.
#[tokio::test]
async fn an_explicit_resume_whose_claim_was_overtaken_runs_nothing_and_changes_nothing() {
    let store = MemoryFactory::new();
    let run_id = interrupted_run(&store).await;
    store
        .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Failed)
        .await
        .unwrap()
        .unwrap();
    let start = |lease_epoch| Start::Adopt {
        run_id: run_id.clone(),
        lease_epoch,
    };
    overtaken_claim_then_the_stored_one(&store, &run_id, RunStatus::Failed, start).await;
}

/// A claim that lands between the check before the open and the open itself is seen in
/// what the open read: the adoption is refused all the same.
#[tokio::test]
async fn a_claim_that_lands_just_before_the_open_is_seen_after_it() {
    let store = MemoryFactory::new();
    let run_id = interrupted_run(&store).await;
    let ours = store
        .claim(&run_id, RunStatus::Running, 1)
        .await
        .unwrap()
        .unwrap();
    let doctor = Doctor::new(
        store.clone(),
        Damage {
            claimed_before_open: true,
            ..Damage::default()
        },
    );
    let bodies = Ledger::default();
    let executor = Executor::new(doctor, registry(&bodies, None), config()).unwrap();
    let err = executor
        .run(
            plan(),
            Start::AdoptInterrupted {
                run_id: run_id.clone(),
                lease_epoch: ours.lease_epoch,
            },
            RunSignals::default(),
        )
        .await
        .unwrap_err();
    let theirs = store.load_meta(&run_id).await.unwrap().unwrap();
    assert_eq!(
        theirs.lease_epoch,
        ours.lease_epoch + 1,
        "the other claim landed"
    );
    assert!(is_lease_moved(&err, &run_id, &ours, &theirs), "{err:?}");
    assert_eq!(bodies.total(), 0, "no task ran under the stale claim");
    assert_eq!(theirs.status, RunStatus::Running);
    let audit = store.read_audit(&run_id).await.unwrap();
    assert!(
        !audit.iter().any(|r| r.action == AuditAction::Recovered),
        "no adoption was recorded: {audit:?}"
    );
    assert!(
        !store.is_held(&run_id).await.unwrap(),
        "the lock was let go"
    );
}

/// Review 52 F3's residual, two tasks of one process: one adopts the run under its claim and
/// drives it; another, which listed the run before that adoption opened it, claims it at the
/// epoch it read, the adoption's. The store refuses that claim while the adoption's writer
/// holds the run, names the writer, and changes nothing, so the stored lease and owner stay
/// the ones the run is driven under, to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_while_an_adoption_drives_the_run_is_refused_and_changes_nothing() {
    let store = MemoryFactory::new();
    let run_id = interrupted_run(&store).await;
    let ours = store
        .claim(&run_id, RunStatus::Running, 1)
        .await
        .unwrap()
        .unwrap();

    // The pending task says it started, then waits until it is let go.
    let (started, release) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let registry = {
        let (started, release) = (Arc::clone(&started), Arc::clone(&release));
        Registry::new().with(
            "work",
            handler_fn(move |_ctx| {
                let (started, release) = (Arc::clone(&started), Arc::clone(&release));
                async move {
                    started.notify_one();
                    release.notified().await;
                    Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
                }
            }),
        )
    };
    let executor = Executor::new(Arc::new(store.clone()), registry, config()).unwrap();
    let adoption = tokio::spawn({
        let run_id = run_id.clone();
        async move {
            executor
                .run(
                    plan(),
                    Start::AdoptInterrupted {
                        run_id,
                        lease_epoch: ours.lease_epoch,
                    },
                    RunSignals::default(),
                )
                .await
        }
    });
    started.notified().await;
    assert!(
        store.is_held(&run_id).await.unwrap(),
        "the adoption drives the run"
    );

    let before = store.load_meta(&run_id).await.unwrap().unwrap();
    let refused = store
        .claim(&run_id, RunStatus::Running, ours.lease_epoch)
        .await
        .unwrap()
        .expect_err("a claim beside the live writer is refused");
    assert!(refused.held_by_writer(), "{refused:?}");
    assert!(refused.claimed_by_another(), "{refused:?}");
    assert_eq!(
        (refused.current_epoch, &refused.current_owner),
        (ours.lease_epoch, &ours.owner)
    );
    assert_eq!(
        store.load_meta(&run_id).await.unwrap().unwrap(),
        before,
        "the refused claim changed nothing"
    );

    release.notify_one();
    let report = adoption.await.unwrap().unwrap();
    assert_eq!(report.disposition, Disposition::Complete);
    let after = store.load_meta(&run_id).await.unwrap().unwrap();
    assert_eq!(after.status, RunStatus::Completed);
    assert_eq!(
        (after.lease_epoch, &after.owner),
        (ours.lease_epoch, &ours.owner),
        "the run finished under the lease it was driven under"
    );
}
