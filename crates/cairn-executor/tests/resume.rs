//! Shutdown and resume: graceful shutdown leaves a run resumable, a new executor adopts it
//! without completing anything twice, unfit state is quarantined, and phases resume by index.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
use cairn_checkpoint::{
    AuditAction, CheckpointerFactory, MemoryFactory, RunFilter, RunId, RunMeta, RunStatus,
};
use cairn_executor::{
    Disposition, Error, Executor, ExecutorConfig, Finish, Phase, Registry, RunPlan, RunSignals,
    Start, TaskFailure, handler_fn,
};
use cairn_queue::{Event, Handoff, TaskSpec};
use common::{
    Damage, Doctor, Ledger, LogBuffer, completions, plant_interrupted, recording, stored,
};
use tokio_util::sync::CancellationToken;

fn config() -> ExecutorConfig {
    ExecutorConfig::default()
        .with_concurrency(3)
        .with_shutdown_grace(Duration::from_secs(5))
}

/// A handler that records its body in `started`, and the first time the body of the task
/// whose input is `stall_on` starts triggers `shutdown` and then never finishes; otherwise it
/// records itself in `returned` and completes.
fn stalling(
    started: &Ledger,
    returned: &Ledger,
    stall_on: i64,
    shutdown: CancellationToken,
) -> impl cairn_executor::Handler {
    let (started, returned) = (started.clone(), returned.clone());
    handler_fn(move |ctx| {
        let (started, returned, shutdown) = (started.clone(), returned.clone(), shutdown.clone());
        async move {
            started.record(&ctx);
            let first_start = started.per_task().get(&ctx.task_id()) == Some(&1);
            if ctx.inputs().as_i64() == Some(stall_on) && first_start {
                shutdown.cancel();
                std::future::pending::<()>().await;
            }
            returned.record(&ctx);
            Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
        }
    })
}

/// `executor`, made to shut its fresh run down as soon as the run is begun, and the signals
/// to run it with: the run is left `running` (interrupted) with no task started. A shutdown
/// raised before a fresh run begins would refuse to begin it (`Error::ShutDownBeforeBegin`).
fn shut_down_once_begun(executor: Executor) -> (Executor, RunSignals) {
    let signals = RunSignals::default();
    let shutdown = signals.shutdown.clone();
    (executor.on_begun(move |_| shutdown.cancel()), signals)
}

fn numbered_phase(name: &str, n: i64) -> Phase {
    let mut phase = Phase::new(name);
    for i in 0..n {
        phase.task(TaskSpec::new("work").inputs(i.into()), []);
    }
    phase
}

#[tokio::test(start_paused = true)]
async fn shutdown_leaves_the_run_running_and_a_new_executor_resumes_it_without_completing_twice() {
    let store = MemoryFactory::new();
    let (started, returned) = (Ledger::default(), Ledger::default());
    let plan = RunPlan::new("wf", "scope").phase(numbered_phase("main", 12));

    let signals = RunSignals::default();
    let registry = Registry::new().with(
        "work",
        stalling(&started, &returned, 4, signals.shutdown.clone()),
    );
    let first = Executor::new(Arc::new(store.clone()), registry, config()).unwrap();
    let report = first.run(plan.clone(), Start::Auto, signals).await.unwrap();
    assert_eq!(report.disposition, Disposition::LeaveRunning);
    let run_id = report.run_id.clone();
    let meta = store.load_meta(&run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Running);
    assert!(
        !store.is_held(&run_id).await.unwrap(),
        "the writer was released"
    );
    assert!(returned.total() < 12, "the shutdown stopped the run early");

    // A new executor over a new factory handle on the same storage, as after a restart.
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let signals = RunSignals::default();
    let registry = Registry::new().with(
        "work",
        stalling(&started, &returned, 4, signals.shutdown.clone()),
    );
    let second = Executor::new(Arc::new(store.clone()), registry, config()).unwrap();
    let report = second.run(plan, Start::Auto, signals).await.unwrap();
    assert_eq!(report.disposition, Disposition::Complete);
    assert!(report.resumed);
    assert_eq!(
        report.run_id, run_id,
        "the interrupted run was adopted, not replaced"
    );
    assert_eq!(report.kept_input, None, "the same plan, the same input");

    // Each task returned once across both executors, and its completion is recorded once.
    assert_eq!(returned.total(), 12);
    assert!(returned.per_task().values().all(|&n| n == 1));
    let events = stored(&store, &run_id).await.events;
    let done = completions(&events);
    assert_eq!(done.len(), 12);
    assert!(
        done.values().all(|&n| n == 1),
        "no task completed twice: {done:?}"
    );
    // Only the stalled attempt (running at the stop) ran its body again.
    let reran: Vec<usize> = started
        .per_task()
        .values()
        .copied()
        .filter(|&n| n > 1)
        .collect();
    assert_eq!(reran, vec![2]);

    let meta = store.load_meta(&run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Completed);
    assert_eq!(meta.lease_epoch, 2, "adoption claimed a new lease epoch");
    let audit = store.read_audit(&run_id).await.unwrap();
    // The stalled attempt was released when the grace ran out (not spent, nothing left
    // running in the journal), so the resume had nothing to reset.
    let released: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::Released { attempt: 1, .. }))
        .collect();
    assert_eq!(released.len(), 1, "{released:?}");
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.action == AuditAction::TaskReset)
            .count(),
        0
    );
    assert!(audit.iter().any(|r| r.action == AuditAction::Recovered));
    assert_eq!(
        logs.lines_with("orchestrator resumed").len(),
        1,
        "logs:\n{}",
        logs.text()
    );
    assert_eq!(logs.lines_with("orchestrator task_reset").len(), 0);
    // `resumed` is emitted before any task of the resumed drive starts: every queue depth
    // report with a running task comes after it.
    let text = logs.text();
    let lines: Vec<&str> = text.lines().collect();
    let resumed_at = lines
        .iter()
        .position(|l| l.contains("orchestrator resumed"))
        .unwrap();
    let first_running = lines
        .iter()
        .position(|l| l.contains("orchestrator queue_depth") && !l.contains("running=0"))
        .expect("a batch started tasks");
    assert!(resumed_at < first_running, "logs:\n{}", logs.text());
}

#[tokio::test(start_paused = true)]
async fn a_resumed_handler_re_enqueueing_its_follow_up_does_not_duplicate_it() {
    let store = MemoryFactory::new();
    let children = Ledger::default();
    let answers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let registry = |shutdown: CancellationToken| {
        let answers = Arc::clone(&answers);
        Registry::new().with("child", recording(&children)).with(
            "parent",
            handler_fn(move |ctx| {
                let (answers, shutdown) = (Arc::clone(&answers), shutdown.clone());
                async move {
                    let child = ctx
                        .enqueue(
                            TaskSpec::new("child").inputs(serde_json::json!({ "of": "parent" })),
                        )
                        .await
                        .unwrap();
                    let first_body = {
                        let mut answers = answers.lock().unwrap();
                        answers.push((ctx.attempt(), child.existing, ctx.idempotency_key()));
                        answers.len() == 1
                    };
                    if first_body {
                        shutdown.cancel();
                        std::future::pending::<()>().await;
                    }
                    Ok(Finish::Complete(Handoff::default()))
                }
            }),
        )
    };
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("parent"), []);
    let plan = RunPlan::new("wf", "scope").phase(phase);

    let signals = RunSignals::default();
    let first = Executor::new(
        Arc::new(store.clone()),
        registry(signals.shutdown.clone()),
        config(),
    )
    .unwrap();
    let report = first.run(plan.clone(), Start::Auto, signals).await.unwrap();
    assert_eq!(report.disposition, Disposition::LeaveRunning);

    let signals = RunSignals::default();
    let second = Executor::new(
        Arc::new(store.clone()),
        registry(signals.shutdown.clone()),
        config(),
    )
    .unwrap();
    let report = second.run(plan, Start::Auto, signals).await.unwrap();
    assert_eq!(report.disposition, Disposition::Complete);
    assert!(report.resumed);

    let answers = answers.lock().unwrap().clone();
    assert_eq!(answers.len(), 2);
    assert_eq!((answers[0].0, answers[0].1), (1, false));
    assert_eq!(
        (answers[1].0, answers[1].1),
        (1, true),
        "the resumed attempt (the stopped one was not spent) found its child"
    );
    assert_eq!(
        answers[0].2, answers[1].2,
        "the idempotency key is stable across resumes"
    );
    assert_eq!(answers[0].2, format!("{}/t0", report.run_id));
    assert_eq!(children.total(), 1, "the child ran once");
    let events = stored(&store, &report.run_id).await.events;
    let enqueued = events
        .iter()
        .filter(|e| matches!(e, Event::Enqueued { kind, .. } if kind == "child"))
        .count();
    assert_eq!(enqueued, 1);
}

#[tokio::test]
async fn a_run_with_another_format_version_is_quarantined_not_adopted() {
    let store = MemoryFactory::new();
    let old = plant_interrupted(&store, "old-run", "wf", "scope", &[]).await;
    let mut meta = store.stored_meta(&old).unwrap();
    // An older version this build does not read (a newer one is left in place).
    meta.format_version = 0;
    store.plant_meta(&old, meta);

    let logs = LogBuffer::default();
    let _guard = logs.install();
    let ledger = Ledger::default();
    let registry = Registry::new().with("work", recording(&ledger));
    let executor = Executor::new(Arc::new(store.clone()), registry, config()).unwrap();
    let report = executor
        .run(
            RunPlan::new("wf", "scope").phase(numbered_phase("p", 2)),
            Start::Auto,
            RunSignals::default(),
        )
        .await
        .unwrap();

    assert_eq!(report.disposition, Disposition::Complete);
    assert!(!report.resumed);
    assert_ne!(report.run_id, old);
    assert!(
        store.load_meta(&old).await.unwrap().is_none(),
        "moved to quarantine"
    );
    let audit = store.read_audit(&old).await.unwrap();
    assert!(audit.iter().any(|r| r.action == AuditAction::Quarantined));
    let lines = logs.lines_with("state_quarantined");
    assert_eq!(lines.len(), 1, "logs:\n{}", logs.text());
    assert!(lines[0].contains("format version 0"));
}

/// A store failure while `Start::Auto` claims an interrupted run it found is a claim
/// failure, not an open failure (the run was never opened): `Error::Claim` with the store's
/// error as its source. Nothing runs, nothing is begun, and the run stays interrupted at its
/// lease epoch, for a later start to adopt.
#[tokio::test]
async fn a_failed_claim_in_start_auto_is_a_claim_error_and_begins_nothing() {
    let store = MemoryFactory::new();
    let run_id = plant_interrupted(&store, "stopped-run", "wf", "scope", &[]).await;
    let before = store.stored_meta(&run_id).unwrap();
    let faults = FaultPlan::new();
    faults.fail_next(FaultOp::Claim, FaultTiming::Before);
    let factory = FaultyFactory::new(store.clone(), faults.clone());
    let ledger = Ledger::default();
    let registry = Registry::new().with("work", recording(&ledger));
    let executor = Executor::new(Arc::new(factory), registry, config()).unwrap();
    let plan = RunPlan::new("wf", "scope").phase(numbered_phase("p", 2));

    let err = executor
        .run(plan.clone(), Start::Auto, RunSignals::default())
        .await
        .expect_err("the claim failed");
    assert!(
        matches!(
            &err,
            Error::Claim { run_id: failed, source: cairn_checkpoint::Error::Injected { op: "claim" } }
                if *failed == run_id
        ),
        "{err:?}"
    );
    let source = std::error::Error::source(&err).expect("the store's error is the source");
    assert!(
        source
            .downcast_ref::<cairn_checkpoint::Error>()
            .is_some_and(|e| matches!(e, cairn_checkpoint::Error::Injected { .. })),
        "{source:?}"
    );
    assert_eq!(faults.calls(FaultOp::Open), 0, "the run was not opened");
    assert_eq!(ledger.total(), 0, "no body ran");
    assert_eq!(
        store.stored_meta(&run_id),
        Some(before),
        "the run is as it was"
    );
    let runs = store.list(&RunFilter::default()).await.unwrap();
    assert_eq!(runs.len(), 1, "no fresh run began: {runs:?}");

    // With the store well again, the next start adopts it.
    let report = executor
        .run(plan, Start::Auto, RunSignals::default())
        .await
        .unwrap();
    assert!(report.resumed && report.run_id == run_id, "{report:?}");
    assert_eq!(report.disposition, Disposition::Complete);
}

/// Metadata a newer build wrote (after a rollback) is not this build's to quarantine, adopt
/// or run afresh beside: `Start::Auto` stops with the store's `NewerFormat`, begins nothing
/// and leaves the run exactly where it was, every time. (The lookup used to call it unfit,
/// quarantine it and begin a fresh run that redid every acknowledged task.)
#[tokio::test]
async fn a_run_whose_metadata_a_newer_build_wrote_is_left_in_place_and_nothing_begins() {
    let store = MemoryFactory::new();
    let newer = plant_interrupted(&store, "newer-run", "wf", "scope", &[]).await;
    let mut planted = store.stored_meta(&newer).unwrap();
    planted.format_version = cairn_checkpoint::META_FORMAT_VERSION + 1;
    store.plant_meta(&newer, planted.clone());

    let ledger = Ledger::default();
    let registry = Registry::new().with("work", recording(&ledger));
    let executor = Executor::new(Arc::new(store.clone()), registry, config()).unwrap();
    for attempt in 1..=2 {
        let err = executor
            .run(
                RunPlan::new("wf", "scope").phase(numbered_phase("p", 2)),
                Start::Auto,
                RunSignals::default(),
            )
            .await
            .expect_err("a newer build's run stops the lookup");
        assert!(
            matches!(
                &err,
                // The claim reads the metadata first, so it is the claim that refuses it.
                Error::Claim { run_id, source: cairn_checkpoint::Error::NewerFormat { .. } }
                    if *run_id == newer
            ),
            "attempt {attempt}: {err:?}"
        );
        assert_eq!(ledger.total(), 0, "no body ran");
        assert_eq!(
            store.stored_meta(&newer),
            Some(planted.clone()),
            "left in place"
        );
        assert!(store.list_quarantined().await.unwrap().is_empty());
        let runs = store.list(&RunFilter::default()).await.unwrap();
        assert_eq!(runs.len(), 1, "no fresh run began: {runs:?}");
    }
}

/// Another process that listed the run just before `Start::Auto` opened it claims it at the
/// epoch the open read: the store refuses that claim while the adoption's writer holds the
/// run, and the adoption drives it under its own claim.
#[tokio::test]
async fn a_claim_after_the_adoption_opened_the_run_is_refused_and_the_adoption_drives_it() {
    let race = auto_through(Damage {
        claimed_after_open: true,
        ..Damage::default()
    })
    .await;
    let (store, old, listed, ledger) = (race.store, race.old, race.listed, race.ledger);
    let report = race.outcome.unwrap();

    // `Start::Auto` claimed the run before it opened it, so the other process's claim,
    // which expected the epoch the open read, met the adoption's writer and was refused
    // (review 52 F3): the stored lease stayed the one the adoption drove under.
    assert!(report.resumed, "{report:?}");
    assert_eq!(report.run_id, old);
    assert_eq!(report.disposition, Disposition::Complete);
    let other = race.other_claims.lock().unwrap().clone();
    assert_eq!(other.len(), 1, "{other:?}");
    let refused = other[0].clone().expect_err("the other claim is refused");
    assert!(refused.held_by_writer(), "{refused:?}");
    assert_eq!(refused.current_epoch, listed.lease_epoch + 1);
    assert_eq!(
        refused.current_owner,
        Some(cairn_checkpoint::Owner::current())
    );
    let after = store.load_meta(&old).await.unwrap().unwrap();
    assert_eq!(after.status, RunStatus::Completed);
    assert_eq!(
        after.lease_epoch,
        listed.lease_epoch + 1,
        "only the adoption's claim counted"
    );
    assert_eq!(ledger.total(), 1);
}

/// `Start::Auto` of an interrupted run through a store that `damage` makes another claimer
/// race, with what a test checks afterwards.
struct AutoRace {
    store: MemoryFactory,
    /// The interrupted run.
    old: RunId,
    /// Its metadata as listed before the race.
    listed: RunMeta,
    /// What `Start::Auto` returned.
    outcome: Result<cairn_executor::RunReport, Error>,
    /// The bodies that ran.
    ledger: Ledger,
    /// What the other claimer's claims returned (`Doctor::other_claims`).
    other_claims: Arc<std::sync::Mutex<Vec<Result<RunMeta, cairn_checkpoint::StatusConflict>>>>,
}

async fn auto_through(damage: Damage) -> AutoRace {
    let store = MemoryFactory::new();
    let old = plant_interrupted(&store, "old-run", "wf", "scope", &[]).await;
    let listed = store.load_meta(&old).await.unwrap().unwrap();
    let doctored = Doctor::new(store.clone(), damage);
    let other_claims = Arc::clone(&doctored.other_claims);
    let ledger = Ledger::default();
    let registry = Registry::new().with("work", recording(&ledger));
    let executor = Executor::new(Arc::new(doctored), registry, config()).unwrap();
    let outcome = executor
        .run(
            RunPlan::new("wf", "scope").phase(numbered_phase("p", 1)),
            Start::Auto,
            RunSignals::default(),
        )
        .await;
    AutoRace {
        store,
        old,
        listed,
        outcome,
        ledger,
        other_claims,
    }
}

/// [`auto_through`] where `Start::Auto` is refused: the store, the run, its metadata as
/// listed, the refusal and the bodies.
async fn auto_over_a_claim(damage: Damage) -> (MemoryFactory, RunId, RunMeta, Error, Ledger) {
    let race = auto_through(damage).await;
    let refused = race.outcome.unwrap_err();
    (race.store, race.old, race.listed, refused, race.ledger)
}

/// Another process that listed the run at the same epoch claims it between this lookup's
/// listing and its claim: that claim stands, this one changes nothing, and `Start::Auto`
/// begins no second run beside it.
#[tokio::test]
async fn an_interrupted_run_another_process_claims_first_is_left_to_it_and_nothing_begins() {
    let (store, old, listed, refused, ledger) = auto_over_a_claim(Damage {
        claimed_before_claim: true,
        ..Damage::default()
    })
    .await;
    assert!(
        matches!(&refused, Error::RunInProgress { run_id, why, .. }
            if *run_id == old && why.contains("another process claimed it")),
        "{refused:?}"
    );
    assert_eq!(store.list(&RunFilter::default()).await.unwrap().len(), 1);
    assert_eq!(ledger.total(), 0);
    let after = store.load_meta(&old).await.unwrap().unwrap();
    assert_eq!(after.status, RunStatus::Running);
    assert_eq!(
        after.lease_epoch,
        listed.lease_epoch + 1,
        "only the other claim counted"
    );
    assert!(
        stored(&store, &old).await.events.is_empty(),
        "nothing was written to it"
    );
}

/// A claim that overtakes `Start::Auto`'s own between its claim and its open (the other
/// process expected the epoch that claim made) is seen in what the open read: the
/// adoption lets the run go to that claimer and begins nothing.
#[tokio::test]
async fn an_interrupted_run_claimed_over_the_lookups_claim_before_its_open_is_left_to_it() {
    let (store, old, listed, refused, ledger) = auto_over_a_claim(Damage {
        claimed_before_open: true,
        ..Damage::default()
    })
    .await;
    let after = store.load_meta(&old).await.unwrap().unwrap();
    assert_eq!(
        after.lease_epoch,
        listed.lease_epoch + 2,
        "the lookup's claim, then the other one"
    );
    assert!(
        matches!(&refused, Error::RunInProgress { run_id, why, .. }
            if *run_id == old && why.contains(&format!("at epoch {} now", after.lease_epoch))),
        "{refused:?}"
    );
    // The reason is short, not a whole other error's advice nested in this one.
    let text = refused.to_string();
    assert!(!text.contains("cannot be adopted"), "{text}");
    assert_eq!(ledger.total(), 0);
    assert!(!store.is_held(&old).await.unwrap(), "the lock was let go");
    assert!(stored(&store, &old).await.events.is_empty());
}

/// An interrupted run `old-run` of `wf` in `scope`, read through a store that shows it with
/// `damage`, and an executor over that store whose `work` bodies go to the ledger.
async fn interrupted_run_behind(damage: Damage) -> (MemoryFactory, RunId, Executor, Ledger) {
    let store = MemoryFactory::new();
    let old = plant_interrupted(&store, "old-run", "wf", "scope", &[]).await;
    let ledger = Ledger::default();
    let registry = Registry::new().with("work", recording(&ledger));
    let doctored = Doctor::new(store.clone(), damage);
    let executor = Executor::new(Arc::new(doctored), registry, config()).unwrap();
    (store, old, executor, ledger)
}

/// The error of `Start::Adopt` of `old` for a one-task plan of `wf` in `scope`.
async fn adopt_error(executor: &Executor, store: &MemoryFactory, old: &RunId) -> Error {
    executor
        .run(
            RunPlan::new("wf", "scope").phase(numbered_phase("p", 1)),
            common::adopt_start(store, old.clone()).await,
            RunSignals::default(),
        )
        .await
        .unwrap_err()
}

#[tokio::test]
async fn state_naming_a_foreign_run_is_quarantined_not_adopted() {
    let (store, old, executor, _ledger) = interrupted_run_behind(Damage {
        foreign_run_id: Some("someone-else".to_owned()),
        ..Damage::default()
    })
    .await;
    let report = executor
        .run(
            RunPlan::new("wf", "scope").phase(numbered_phase("p", 1)),
            Start::Auto,
            RunSignals::default(),
        )
        .await
        .unwrap();

    assert_eq!(report.disposition, Disposition::Complete);
    assert!(!report.resumed);
    assert_ne!(report.run_id, old);
    assert!(
        store.load_meta(&old).await.unwrap().is_none(),
        "moved to quarantine"
    );
    let audit = store.read_audit(&old).await.unwrap();
    let record = audit
        .iter()
        .find(|r| r.action == AuditAction::Quarantined && r.message.contains("someone-else"));
    assert!(record.is_some(), "audit: {audit:?}");
}

/// State the executor itself finds unfit (here, a stored id naming another run) is refused
/// by `Start::Adopt` with no store error behind it: `AdoptRefused` says why in `reason`, and
/// its `source` is `None` rather than an error made up from that text.
#[tokio::test]
async fn an_adopt_refused_as_unfit_has_its_reason_and_no_store_source() {
    let (store, old, executor, ledger) = interrupted_run_behind(Damage {
        foreign_run_id: Some("someone-else".to_owned()),
        ..Damage::default()
    })
    .await;
    let err = adopt_error(&executor, &store, &old).await;
    let Error::AdoptRefused {
        ref run_id,
        ref reason,
        source: None,
        ..
    } = err
    else {
        panic!("expected AdoptRefused without a source, got {err:?}");
    };
    assert_eq!(*run_id, old);
    assert!(reason.contains("someone-else"), "{reason}");
    assert!(std::error::Error::source(&err).is_none());
    assert_eq!(ledger.total(), 0);
}

/// A journal that does not replay (a start of a task that was never enqueued) is refused by
/// `Start::Adopt` with the queue's own error as the typed `source`, not only as text.
#[tokio::test]
async fn an_adopt_refused_for_a_journal_that_does_not_replay_keeps_the_queue_error() {
    let store = MemoryFactory::new();
    let never_enqueued: cairn_queue::TaskId = "7".parse().unwrap();
    let old = plant_interrupted(
        &store,
        "old-run",
        "wf",
        "scope",
        &[Event::Started {
            id: never_enqueued,
            attempt: 1,
            at: cairn_queue::Timestamp(1),
        }],
    )
    .await;
    let ledger = Ledger::default();
    let registry = Registry::new().with("work", recording(&ledger));
    let executor = Executor::new(Arc::new(store.clone()), registry, config()).unwrap();
    let err = adopt_error(&executor, &store, &old).await;
    let Error::AdoptRefused {
        ref run_id,
        ref reason,
        ..
    } = err
    else {
        panic!("expected AdoptRefused, got {err:?}");
    };
    assert_eq!(*run_id, old);
    assert!(reason.contains("does not replay"), "{reason}");
    let source = std::error::Error::source(&err).expect("the queue's error is the source");
    let queue_error = source
        .downcast_ref::<cairn_queue::Error>()
        .expect("the source is a cairn_queue::Error");
    assert!(
        reason.contains(&queue_error.to_string()),
        "{reason} / {queue_error}"
    );
    assert_eq!(ledger.total(), 0);
    assert!(
        store.load_meta(&old).await.unwrap().is_none(),
        "moved to quarantine"
    );
}

#[tokio::test]
async fn a_failed_run_is_never_adopted_by_the_executors_own_lookup() {
    let store = MemoryFactory::new();
    let registry = Registry::new().with(
        "broken",
        handler_fn(|_ctx| async { Err(TaskFailure::permanent("bad", "always")) }),
    );
    let executor = Executor::new(Arc::new(store.clone()), registry, config()).unwrap();
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("broken"), []);
    let plan = RunPlan::new("wf", "scope").phase(phase);
    let failed = executor
        .run(plan.clone(), Start::Auto, RunSignals::default())
        .await
        .unwrap();
    assert!(matches!(failed.disposition, Disposition::Fail(_)));

    let again = executor
        .run(plan, Start::Auto, RunSignals::default())
        .await
        .unwrap();
    assert!(!again.resumed);
    assert_ne!(again.run_id, failed.run_id);
    let meta = store.load_meta(&failed.run_id).await.unwrap().unwrap();
    assert_eq!(
        meta.status,
        RunStatus::Failed,
        "the failed run is left for the resume policy"
    );
    assert_eq!(meta.lease_epoch, 1);
}

#[tokio::test(start_paused = true)]
async fn adopt_drives_a_run_the_policy_already_claimed() {
    let store = MemoryFactory::new();
    let (started, returned) = (Ledger::default(), Ledger::default());
    let plan = RunPlan::new("wf", "scope").phase(numbered_phase("main", 4));
    let signals = RunSignals::default();
    let registry = Registry::new().with(
        "work",
        stalling(&started, &returned, 1, signals.shutdown.clone()),
    );
    let executor = Executor::new(Arc::new(store.clone()), registry, config()).unwrap();
    let first = executor
        .run(plan.clone(), Start::Fresh, signals)
        .await
        .unwrap();
    assert_eq!(first.disposition, Disposition::LeaveRunning);

    // The resume policy's claim.
    let claimed = store
        .compare_and_swap_status(&first.run_id, RunStatus::Running, RunStatus::Running)
        .await
        .unwrap()
        .unwrap();
    let report = executor
        .run(
            plan.clone(),
            common::adopt_start(&store, first.run_id.clone()).await,
            RunSignals::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.disposition, Disposition::Complete);
    assert!(report.resumed);
    let meta = store.load_meta(&first.run_id).await.unwrap().unwrap();
    assert_eq!(
        meta.lease_epoch, claimed.lease_epoch,
        "Adopt does not claim again"
    );
    assert_eq!(returned.total(), 4);

    let missing = executor
        .run(
            plan,
            common::adopt_start(&store, RunId::new("no-such-run").unwrap()).await,
            RunSignals::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::AdoptNotFound { .. }));
}

/// An abandon that began before the policy's claim holds the run's lock while it sees the
/// claim and refuses; the claimer's open waits for it to let go instead of failing, which
/// would leave the run claimed and undriven with both commands failed (review 46 F2). A
/// holder that never lets go still fails the adopt with `Locked`.
#[tokio::test(start_paused = true)]
async fn adopt_waits_for_a_short_lived_holder_of_the_lock_of_a_run_it_claimed() {
    let store = MemoryFactory::new();
    let (started, returned) = (Ledger::default(), Ledger::default());
    let plan = RunPlan::new("wf", "scope").phase(numbered_phase("main", 2));
    let signals = RunSignals::default();
    let registry = Registry::new().with(
        "work",
        stalling(&started, &returned, 1, signals.shutdown.clone()),
    );
    let executor = Executor::new(store.clone(), registry, config()).unwrap();
    let first = executor
        .run(plan.clone(), Start::Fresh, signals)
        .await
        .unwrap();
    assert_eq!(first.disposition, Disposition::LeaveRunning);
    store
        .compare_and_swap_status(&first.run_id, RunStatus::Running, RunStatus::Running)
        .await
        .unwrap()
        .unwrap();

    // The abandon's writer handle, let go of two seconds later.
    let held = store.open(&first.run_id).await.unwrap().unwrap();
    let releaser = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(held);
    });
    let report = executor
        .run(
            plan.clone(),
            common::adopt_start(&store, first.run_id.clone()).await,
            RunSignals::default(),
        )
        .await
        .expect("the adopt waits for the holder to let go");
    releaser.await.unwrap();
    assert_eq!(report.disposition, Disposition::Complete);
    assert_eq!(returned.total(), 2);

    // A holder that keeps the lock: the adopt gives up with `Locked`.
    let (stopping, signals) = shut_down_once_begun(executor.clone());
    let second = stopping
        .run(plan.clone(), Start::Fresh, signals)
        .await
        .unwrap();
    assert_eq!(second.disposition, Disposition::LeaveRunning);
    store
        .compare_and_swap_status(&second.run_id, RunStatus::Running, RunStatus::Running)
        .await
        .unwrap()
        .unwrap();
    let _kept = store.open(&second.run_id).await.unwrap().unwrap();
    let refused = executor
        .run(
            plan,
            common::adopt_start(&store, second.run_id.clone()).await,
            RunSignals::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            &refused,
            Error::Open {
                source: cairn_checkpoint::Error::Locked { .. },
                ..
            }
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_fresh_run_with_two_phases_of_the_same_name_runs_both() {
    let store = MemoryFactory::new();
    let ledger = Ledger::default();
    let registry = Registry::new().with("work", recording(&ledger));
    let executor = Executor::new(Arc::new(store.clone()), registry, config()).unwrap();
    // Identical phases: same name, same task kind and inputs.
    let plan = RunPlan::new("wf", "scope")
        .phase(numbered_phase("build", 1))
        .phase(numbered_phase("build", 1));
    let report = executor
        .run(plan, Start::Fresh, RunSignals::default())
        .await
        .unwrap();

    assert_eq!(report.disposition, Disposition::Complete);
    assert_eq!(
        ledger.count("work"),
        2,
        "the second phase is not deduplicated away"
    );
    let events = stored(&store, &report.run_id).await.events;
    let completed: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            Event::PhaseCompleted { index, .. } => Some(*index),
            _ => None,
        })
        .collect();
    assert_eq!(completed, vec![0, 1]);
}

#[tokio::test(start_paused = true)]
async fn a_resumed_multi_phase_run_skips_completed_phases_and_done_tasks() {
    let store = MemoryFactory::new();
    let prep = Ledger::default();
    let (started, returned) = (Ledger::default(), Ledger::default());
    let mut main = Phase::new("main");
    let a = main.task(TaskSpec::new("work").inputs(0.into()), []);
    main.task(TaskSpec::new("work").inputs(1.into()), [a]);
    let mut first_phase = Phase::new("prep");
    first_phase.task(TaskSpec::new("prep"), []);
    let plan = RunPlan::new("wf", "scope").phase(first_phase).phase(main);

    let registry = |shutdown: CancellationToken| {
        Registry::new()
            .with("prep", recording(&prep))
            .with("work", stalling(&started, &returned, 1, shutdown))
    };
    let signals = RunSignals::default();
    let executor = Executor::new(
        Arc::new(store.clone()),
        registry(signals.shutdown.clone()),
        config(),
    )
    .unwrap();
    let first = executor
        .run(plan.clone(), Start::Auto, signals)
        .await
        .unwrap();
    assert_eq!(first.disposition, Disposition::LeaveRunning);
    assert_eq!((prep.total(), returned.total()), (1, 1));

    let signals = RunSignals::default();
    let executor = Executor::new(
        Arc::new(store.clone()),
        registry(signals.shutdown.clone()),
        config(),
    )
    .unwrap();
    let second = executor.run(plan, Start::Auto, signals).await.unwrap();
    assert_eq!(second.disposition, Disposition::Complete);
    assert!(second.resumed);
    assert_eq!(prep.total(), 1, "the completed phase was skipped");
    assert_eq!(
        returned.total(),
        2,
        "the done task of the interrupted phase did not rerun"
    );
    let events = stored(&store, &second.run_id).await.events;
    let phase_starts = events
        .iter()
        .filter(|e| matches!(e, Event::PhaseStarted { .. }))
        .count();
    assert_eq!(phase_starts, 2, "each phase started once");
    let runs = store
        .list(&RunFilter {
            workflow: Some("wf".into()),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
}

/// Whether `err`'s source is the store's `Corruption` of `run`.
fn is_corruption_of(err: &Error, run: &RunId) -> bool {
    std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<cairn_checkpoint::Error>())
        .is_some_and(|source| {
            matches!(source, cairn_checkpoint::Error::Corruption { run_id, offset: 7, .. } if run_id == run)
        })
}

/// Damaged state of the workflow's own interrupted run (a bad record that is not a torn
/// tail) is an error, not a reason to start over: the executor leaves it in place and
/// begins nothing, every time, since a fresh run would redo what that run had done. Before,
/// `Start::Auto` quarantined it and began a fresh run that ran every task again.
#[tokio::test]
async fn a_corrupt_interrupted_run_is_left_in_place_and_nothing_begins() {
    let (store, old, executor, ledger) = interrupted_run_behind(Damage {
        corrupt_on_open: true,
        ..Damage::default()
    })
    .await;
    let plan = RunPlan::new("wf", "scope").phase(numbered_phase("p", 1));
    let all_runs = RunFilter {
        workflow: Some("wf".into()),
        ..RunFilter::default()
    };
    for attempt in 0..2 {
        let err = executor
            .run(plan.clone(), Start::Auto, RunSignals::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Open { ref run_id, .. } if *run_id == old),
            "call {attempt}: {err:?}"
        );
        assert!(is_corruption_of(&err, &old), "call {attempt}: {err:?}");
        let meta = store.load_meta(&old).await.unwrap().expect("left in place");
        assert_eq!(meta.status, RunStatus::Running);
        assert_eq!(
            store.list(&all_runs).await.unwrap().len(),
            1,
            "nothing began"
        );
        assert!(store.list_quarantined().await.unwrap().is_empty());
        assert_eq!(ledger.count("work"), 0, "no task ran");
    }

    // Adopting it by id is refused the same way, and it stays where it is.
    let err = executor
        .run(
            plan.clone(),
            common::adopt_start(&store, old.clone()).await,
            RunSignals::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Open { ref run_id, .. } if *run_id == old),
        "{err:?}"
    );
    assert!(is_corruption_of(&err, &old), "{err:?}");
    assert!(store.load_meta(&old).await.unwrap().is_some());

    // A fresh run is the host's explicit choice, and it is not refused.
    let report = executor
        .run(plan, Start::Fresh, RunSignals::default())
        .await
        .unwrap();
    assert_ne!(report.run_id, old);
    assert!(store.load_meta(&old).await.unwrap().is_some());
}

/// A caller's plan for another workflow or scope is the caller's mistake, not bad state:
/// adopting a sound run with it is refused, nothing runs, and the run is not quarantined.
#[tokio::test]
async fn adopting_a_sound_run_with_another_workflows_plan_leaves_the_run_in_place() {
    let store = MemoryFactory::new();
    let ledger = Ledger::default();
    let registry = Registry::new().with("work", recording(&ledger));
    let executor = Executor::new(Arc::new(store.clone()), registry, config()).unwrap();
    for (id, workflow, scope, mismatch) in [
        (
            "run-a",
            "other-wf",
            "scope",
            "workflow `wf`, expected `other-wf`",
        ),
        (
            "run-b",
            "wf",
            "other-scope",
            "scope `scope`, expected `other-scope`",
        ),
    ] {
        let run = plant_interrupted(&store, id, "wf", "scope", &[]).await;
        let bodies_before = ledger.count("work");
        let plan = RunPlan::new(workflow, scope).phase(numbered_phase("p", 1));
        let err = executor
            .run(
                plan,
                common::adopt_start(&store, run.clone()).await,
                RunSignals::default(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::AdoptOtherPlan { run_id, reason }
                if *run_id == run && reason.contains(mismatch)),
            "{err}"
        );
        let stored = store.load_meta(&run).await.unwrap().expect("left in place");
        assert_eq!(stored.status, RunStatus::Running, "still interrupted");
        assert!(store.list_quarantined().await.unwrap().is_empty());
        assert_eq!(ledger.count("work"), bodies_before, "nothing ran");
        // Adopted with its own plan, it runs.
        let own = RunPlan::new("wf", "scope").phase(numbered_phase("p", 1));
        let report = executor
            .run(
                own,
                common::adopt_start(&store, run.clone()).await,
                RunSignals::default(),
            )
            .await
            .unwrap();
        assert_eq!(report.run_id, run);
        assert_eq!(report.disposition, Disposition::Complete);
        assert_eq!(ledger.count("work"), bodies_before + 1);
    }
}

/// Review 43 #10, the resumed side: an adopted run is not checked before it is taken over
/// (it exists already). When its registry lost a kind, it fails with kind `build` before any
/// task starts, keeping its id and progress, so it can be resumed once the handler is back.
/// `on_begun` is not called for an adopted run.
#[tokio::test]
async fn an_adopted_run_whose_kind_lost_its_handler_fails_with_kind_build() {
    let store = MemoryFactory::new();
    let ledger = Ledger::default();
    let plan = RunPlan::new("wf", "scope").phase(numbered_phase("p", 2));
    let signals = RunSignals::default();
    let shutdown = signals.shutdown.clone();
    let begun = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&begun);
    let first = Executor::new(
        Arc::new(store.clone()),
        Registry::new().with("work", recording(&ledger)),
        config(),
    )
    .unwrap()
    .on_begun(move |run_id| {
        seen.lock().unwrap().push(run_id.clone());
        shutdown.cancel();
    })
    .run(plan.clone(), Start::Auto, signals)
    .await
    .unwrap();
    assert_eq!(first.disposition, Disposition::LeaveRunning);
    assert_eq!(*begun.lock().unwrap(), vec![first.run_id.clone()]);

    let seen = Arc::clone(&begun);
    let report = Executor::new(
        Arc::new(store.clone()),
        Registry::new().with("other", recording(&ledger)),
        config(),
    )
    .unwrap()
    .on_begun(move |run_id| seen.lock().unwrap().push(run_id.clone()))
    .run(plan, Start::Auto, RunSignals::default())
    .await
    .unwrap();
    assert_eq!(
        report.run_id, first.run_id,
        "the interrupted run was adopted"
    );
    assert!(report.resumed);
    assert!(
        matches!(&report.stop, Some(cairn_executor::RunStop::Build(message)) if message.contains("`work`")),
        "{report:?}"
    );
    assert_eq!(ledger.total(), 0, "no task started");
    let meta = store.load_meta(&first.run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Failed);
    assert_eq!(meta.error.unwrap().kind, "build");
    assert_eq!(begun.lock().unwrap().len(), 1, "an adoption begins nothing");
}

/// Review 43 #8: every event the executor sends on target `cairn` carries a stable name
/// (`names`) as its tracing name, so a host can route that target by name. Its other
/// diagnostics (a shutdown, an adoption...) are on `cairn::detail`.
#[tokio::test]
async fn every_executor_event_on_the_cairn_target_has_a_stable_name() {
    use cairn_telemetry::names;
    use tracing_subscriber::layer::SubscriberExt as _;

    #[derive(Clone, Default)]
    struct Seen(Arc<std::sync::Mutex<Vec<(String, String, String)>>>);
    struct Message<'a>(&'a mut String);
    impl tracing::field::Visit for Message<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                *self.0 = format!("{value:?}");
            }
        }
    }
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let mut message = String::new();
            event.record(&mut Message(&mut message));
            let meta = event.metadata();
            self.0.lock().unwrap().push((
                meta.target().to_owned(),
                meta.name().to_owned(),
                message,
            ));
        }
    }

    // As in `LogBuffer::install`: a parallel test with no subscriber must not leave a
    // callsite cached as uninterested.
    static ANCHOR: std::sync::Once = std::sync::Once::new();
    ANCHOR.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
    let seen = Seen::default();
    let guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(seen.clone()));
    tracing::callsite::rebuild_interest_cache();

    let store = MemoryFactory::new();
    let registry = Registry::new().with("work", recording(&Ledger::default()));
    let executor = Executor::new(Arc::new(store.clone()), registry, config()).unwrap();
    let plan = RunPlan::new("wf", "scope").phase(numbered_phase("p", 2));
    let (stopping, signals) = shut_down_once_begun(executor.clone());
    let first = stopping
        .run(plan.clone(), Start::Auto, signals)
        .await
        .unwrap();
    assert_eq!(first.disposition, Disposition::LeaveRunning);
    let second = executor
        .run(plan, Start::Auto, RunSignals::default())
        .await
        .unwrap();
    assert_eq!(second.disposition, Disposition::Complete);
    drop(guard);

    let stable = [
        names::RUN_STARTED,
        names::RESUMED,
        names::RUN_FINISHED,
        names::STATE_QUARANTINED,
        names::TASK_RESET,
        names::TASK_FAILED,
        names::BEGIN_DEGRADED,
        names::QUEUE_DEPTH,
    ];
    let seen = seen.0.lock().unwrap();
    for (target, name, message) in seen.iter() {
        if target == names::TARGET {
            assert!(stable.contains(&name.as_str()), "{name}: {message}");
        }
    }
    let on = |wanted: &str| {
        seen.iter()
            .filter(|(_, _, message)| message.starts_with(wanted))
            .map(|(target, _, _)| target.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(on("adopting interrupted run"), [names::DETAIL_TARGET]);
    assert_eq!(on("shutdown requested"), [names::DETAIL_TARGET]);
    assert_eq!(on(names::RUN_FINISHED), [names::TARGET, names::TARGET]);
}

/// A shutdown raised before a fresh run is begun refuses it, writing nothing; one raised as
/// it is begun starts no task and leaves it resumable.
#[tokio::test]
async fn a_shutdown_raised_before_the_first_task_starts_none_and_leaves_the_run_resumable() {
    let store = MemoryFactory::new();
    let ledger = Ledger::default();
    let registry = Registry::new().with("work", recording(&ledger));
    let executor = Executor::new(Arc::new(store.clone()), registry, config()).unwrap();
    let plan = RunPlan::new("wf", "scope").phase(numbered_phase("p", 3));
    let early = RunSignals::default();
    early.shutdown.cancel();
    let refused = executor
        .run(plan.clone(), Start::Auto, early)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, Error::ShutDownBeforeBegin { .. }),
        "{refused:?}"
    );
    let listed = store
        .list(&cairn_checkpoint::RunFilter::default())
        .await
        .unwrap();
    assert!(listed.is_empty(), "nothing written: {listed:?}");

    let (stopping, signals) = shut_down_once_begun(executor.clone());
    let first = stopping
        .run(plan.clone(), Start::Auto, signals)
        .await
        .unwrap();
    assert_eq!(first.disposition, Disposition::LeaveRunning);
    assert_eq!(ledger.total(), 0);

    let second = executor
        .run(plan, Start::Auto, RunSignals::default())
        .await
        .unwrap();
    assert_eq!(second.run_id, first.run_id);
    assert_eq!(second.disposition, Disposition::Complete);
    assert_eq!(ledger.total(), 3);
    let audit = store.read_audit(&first.run_id).await.unwrap();
    assert!(
        !audit.iter().any(|r| r.action == AuditAction::TaskReset),
        "nothing was running, so nothing was reset"
    );
}

#[tokio::test(start_paused = true)]
async fn adopting_a_failed_run_after_an_explicit_resume_reruns_its_failed_task_and_unblocks_dependents()
 {
    let store = MemoryFactory::new();
    // The `flaky` body fails permanently the first time, as if an outage ended after it.
    let bodies = Ledger::default();
    let (executor, plan, failed) = failed_flaky_run(&store, &bodies).await;
    assert_eq!(failed.counts.failed, 1);
    assert_eq!(failed.counts.blocked, 1);
    assert_eq!(bodies.total(), 1, "the dependent never ran");

    // The resume policy's explicit resume: one claim from failed to running.
    store
        .compare_and_swap_status(&failed.run_id, RunStatus::Failed, RunStatus::Running)
        .await
        .unwrap()
        .unwrap();
    let report = executor
        .run(
            plan,
            common::adopt_start(&store, failed.run_id.clone()).await,
            RunSignals::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.disposition, Disposition::Complete);
    assert_eq!(
        report.run_id, failed.run_id,
        "the same run, not a fresh one"
    );
    assert_eq!(report.counts.done, 2);
    assert_eq!(
        bodies.total(),
        3,
        "flaky ran again and its dependent ran once"
    );
    let audit = store.read_audit(&failed.run_id).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.action == AuditAction::TaskReset && r.detail["reason"] == "explicit_resume"),
        "the retry is audited: {audit:?}"
    );
    assert_eq!(
        store
            .load_meta(&failed.run_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        RunStatus::Completed
    );
}

#[tokio::test]
async fn adopting_a_failed_run_nobody_claimed_is_refused_and_leaves_it_as_it_was() {
    let store = MemoryFactory::new();
    let fails = handler_fn(|_ctx| async { Err(TaskFailure::permanent("broken", "no")) });
    let registry = Registry::new().with("work", fails);
    let executor = Executor::new(Arc::new(store.clone()), registry, config()).unwrap();
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("work"), []);
    let plan = RunPlan::new("wf", "scope").phase(phase);
    let failed = executor
        .run(plan.clone(), Start::Fresh, RunSignals::default())
        .await
        .unwrap();
    assert!(matches!(failed.disposition, Disposition::Fail(_)));
    let before = store.load_meta(&failed.run_id).await.unwrap().unwrap();
    assert_eq!(before.status, RunStatus::Failed);

    // No claim first: both adopt modes refuse with the status the run is in.
    for start in [
        common::adopt_start(&store, failed.run_id.clone()).await,
        Start::AdoptInterrupted {
            run_id: failed.run_id.clone(),
            lease_epoch: before.lease_epoch,
        },
    ] {
        let err = executor
            .run(plan.clone(), start, RunSignals::default())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::AdoptNotClaimed { ref run_id, status: RunStatus::Failed }
                    if *run_id == failed.run_id
            ),
            "{err:?}"
        );
    }

    // Sound state is neither quarantined nor changed.
    assert!(store.list_quarantined().await.unwrap().is_empty());
    let after = store.load_meta(&failed.run_id).await.unwrap().unwrap();
    assert_eq!(after.status, RunStatus::Failed);
    assert_eq!(after.lease_epoch, before.lease_epoch);

    // Once claimed, the same adopt goes through.
    store
        .compare_and_swap_status(&failed.run_id, RunStatus::Failed, RunStatus::Running)
        .await
        .unwrap()
        .unwrap();
    let report = executor
        .run(
            plan,
            common::adopt_start(&store, failed.run_id.clone()).await,
            RunSignals::default(),
        )
        .await
        .unwrap();
    assert!(report.resumed);
    assert_eq!(report.run_id, failed.run_id);
}

#[tokio::test(start_paused = true)]
async fn adopting_an_interrupted_run_the_policy_claimed_keeps_a_permanently_failed_task_failed() {
    let store = MemoryFactory::new();
    let (bad_bodies, long_bodies) = (Ledger::default(), Ledger::default());
    let registry = |shutdown: CancellationToken| {
        let (bad_bodies, long_bodies) = (bad_bodies.clone(), long_bodies.clone());
        Registry::new()
            .with(
                "bad",
                handler_fn(move |ctx| {
                    let bodies = bad_bodies.clone();
                    async move {
                        bodies.record(&ctx);
                        Err::<Finish, _>(TaskFailure::permanent("bad_config", "exit 2"))
                    }
                }),
            )
            .with(
                "long",
                handler_fn(move |ctx| {
                    let (bodies, shutdown) = (long_bodies.clone(), shutdown.clone());
                    async move {
                        bodies.record(&ctx);
                        if bodies.total() == 1 {
                            // The operator's Ctrl-C lands while this runs.
                            shutdown.cancel();
                            std::future::pending::<()>().await;
                        }
                        Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
                    }
                }),
            )
            .with(
                "after",
                handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
            )
    };
    let mut phase = Phase::new("p");
    let bad = phase.task(TaskSpec::new("bad"), []);
    phase.task(TaskSpec::new("long"), []);
    phase.task(TaskSpec::new("after"), [bad]);
    let plan = RunPlan::new("wf", "scope").phase(phase);

    let signals = RunSignals::default();
    let first = Executor::new(
        Arc::new(store.clone()),
        registry(signals.shutdown.clone()),
        config(),
    )
    .unwrap();
    let interrupted = first
        .run(plan.clone(), Start::Fresh, signals)
        .await
        .unwrap();
    assert_eq!(interrupted.disposition, Disposition::LeaveRunning);
    assert_eq!(interrupted.counts.failed, 1, "`bad` failed before the stop");
    assert_eq!(bad_bodies.total(), 1);

    // The resume policy claims the interrupted run from `running`, then hands it over.
    let claimed = store
        .compare_and_swap_status(&interrupted.run_id, RunStatus::Running, RunStatus::Running)
        .await
        .unwrap()
        .unwrap();
    let signals = RunSignals::default();
    let second = Executor::new(
        Arc::new(store.clone()),
        registry(signals.shutdown.clone()),
        config(),
    )
    .unwrap();
    let report = second
        .run(
            plan,
            Start::AdoptInterrupted {
                run_id: interrupted.run_id.clone(),
                lease_epoch: claimed.lease_epoch,
            },
            signals,
        )
        .await
        .unwrap();
    assert_eq!(report.run_id, interrupted.run_id);
    assert!(report.resumed);
    assert!(
        matches!(report.disposition, Disposition::Fail(_)),
        "the permanent failure still fails the run: {:?}",
        report.disposition
    );
    assert_eq!(
        bad_bodies.total(),
        1,
        "a task that failed permanently is not run again because the run was interrupted"
    );
    assert_eq!(long_bodies.total(), 2, "the interrupted attempt ran again");
    assert_eq!(
        (
            report.counts.done,
            report.counts.failed,
            report.counts.blocked
        ),
        (1, 1, 1)
    );
    let audit = store.read_audit(&interrupted.run_id).await.unwrap();
    assert!(
        !audit.iter().any(|r| r
            .detail
            .get("reason")
            .is_some_and(|v| v == "explicit_resume")),
        "nothing was retried as an explicit resume: {audit:?}"
    );
    assert!(
        audit.iter().any(|r| r.action == AuditAction::Recovered
            && r.message.contains("after the resume policy claimed it")),
        "{audit:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_task_on_its_last_attempt_stopped_by_a_shutdown_runs_again_on_resume() {
    // The operator's Ctrl-C is not the task's failure: the attempt the grace period cut off
    // is released, not spent, so a `max_attempts = 1` task still gets its run.
    let store = MemoryFactory::new();
    let (bodies, returned) = (Ledger::default(), Ledger::default());
    let registry = |shutdown: CancellationToken| {
        Registry::new().with("once", stalling(&bodies, &returned, 0, shutdown))
    };
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("once").inputs(0.into()).max_attempts(1), []);
    let plan = RunPlan::new("wf", "scope").phase(phase);

    let signals = RunSignals::default();
    let first = Executor::new(
        Arc::new(store.clone()),
        registry(signals.shutdown.clone()),
        config(),
    )
    .unwrap();
    let interrupted = first.run(plan.clone(), Start::Auto, signals).await.unwrap();
    assert_eq!(interrupted.disposition, Disposition::LeaveRunning);
    assert_eq!(
        (interrupted.counts.pending, interrupted.counts.running),
        (1, 0),
        "released at the stop, not left running"
    );

    let signals = RunSignals::default();
    let second = Executor::new(
        Arc::new(store.clone()),
        registry(signals.shutdown.clone()),
        config(),
    )
    .unwrap();
    let report = second.run(plan, Start::Auto, signals).await.unwrap();
    assert!(report.resumed);
    assert_eq!(report.disposition, Disposition::Complete);
    assert_eq!(
        bodies.attempts(),
        [1, 1],
        "the stopped attempt was given back"
    );
    let audit = store.read_audit(&report.run_id).await.unwrap();
    let released: Vec<_> = audit
        .iter()
        .filter(|r| r.action == AuditAction::TaskReleased)
        .collect();
    assert_eq!(released.len(), 1, "{audit:?}");
    assert_eq!(released[0].detail["attempt"], 1);
    assert_eq!(released[0].detail["cause"], "shutdown");
    assert!(
        released[0].message.contains("released"),
        "{}",
        released[0].message
    );
    let events = stored(&store, &report.run_id).await.events;
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Completed { .. }))
            .count(),
        1
    );
}

/// A second Ctrl-C ends the grace at once (`RunSignals::grace_over`): the attempt is stopped
/// and released as when the grace runs out, so it runs again under the same number, instead
/// of being charged as after a killed process. With an unlimited grace the drive would wait
/// for the stalled body for good; the hour-long timeout (paused clock) catches that.
#[tokio::test(start_paused = true)]
async fn grace_over_stops_a_shutdown_at_once_and_gives_the_attempt_back() {
    for with_shutdown in [true, false] {
        let store = MemoryFactory::new();
        let (bodies, returned) = (Ledger::default(), Ledger::default());
        let signals = RunSignals::default();
        let (shutdown, grace_over) = (signals.shutdown.clone(), signals.grace_over.clone());
        let first_start = Ledger::default();
        let started = first_start.clone();
        let handler = handler_fn(move |ctx| {
            let (started, shutdown, grace_over) =
                (started.clone(), shutdown.clone(), grace_over.clone());
            async move {
                started.record(&ctx);
                if with_shutdown {
                    shutdown.cancel();
                    tokio::task::yield_now().await;
                }
                grace_over.cancel();
                std::future::pending::<()>().await;
                Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
            }
        });
        let mut phase = Phase::new("p");
        phase.task(TaskSpec::new("once").inputs(0.into()).max_attempts(1), []);
        let plan = RunPlan::new("wf", "scope").phase(phase);
        let unlimited = ExecutorConfig::default().with_shutdown_grace(Duration::MAX);
        let first = Executor::new(
            Arc::new(store.clone()),
            Registry::new().with("once", handler),
            unlimited,
        )
        .unwrap();
        let stopped = tokio::time::timeout(
            Duration::from_secs(3600),
            first.run(plan.clone(), Start::Auto, signals),
        )
        .await
        .expect("grace_over ends the wait for the stalled body")
        .unwrap();
        assert_eq!(stopped.disposition, Disposition::LeaveRunning);
        assert_eq!(
            (stopped.counts.pending, stopped.counts.running),
            (1, 0),
            "released, not left running"
        );
        assert_eq!(first_start.attempts(), [1]);

        let signals = RunSignals::default();
        let second = Executor::new(
            Arc::new(store.clone()),
            Registry::new().with(
                "once",
                stalling(&bodies, &returned, 99, signals.shutdown.clone()),
            ),
            config(),
        )
        .unwrap();
        let report = second.run(plan, Start::Auto, signals).await.unwrap();
        assert!(report.resumed);
        assert_eq!(
            report.disposition,
            Disposition::Complete,
            "with_shutdown: {with_shutdown}"
        );
        assert_eq!(bodies.attempts(), [1], "the stopped attempt was given back");
        let audit = store.read_audit(&report.run_id).await.unwrap();
        assert_eq!(
            audit
                .iter()
                .filter(|r| r.action == AuditAction::TaskReleased)
                .count(),
            1,
            "{audit:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_plan_that_names_its_run_leaves_other_interrupted_runs_of_its_scope_alone() {
    // A job runner that uses its job id as the run id: job B must neither adopt nor
    // quarantine job A's interrupted run, which is sound state A's own restart will adopt.
    let store = MemoryFactory::new();
    let job_a = plant_interrupted(&store, "job-a", "wf", "scope", &[]).await;
    let ledger = Ledger::default();
    let registry = Registry::new().with("work", common::recording(&ledger));
    let plan_b = RunPlan::new("wf", "scope")
        .run_id(RunId::new("job-b").unwrap())
        .phase(numbered_phase("main", 2));
    let report = Executor::new(Arc::new(store.clone()), registry.clone(), config())
        .unwrap()
        .run(plan_b, Start::Auto, RunSignals::default())
        .await
        .unwrap();
    assert_eq!(report.run_id.as_str(), "job-b");
    assert!(!report.resumed);
    assert_eq!(report.disposition, Disposition::Complete);
    let a = store
        .load_meta(&job_a)
        .await
        .unwrap()
        .expect("job A is still there");
    assert_eq!(
        a.status,
        RunStatus::Running,
        "left interrupted for its own restart"
    );
    assert!(
        !store
            .read_audit(&job_a)
            .await
            .unwrap()
            .iter()
            .any(|r| r.action == AuditAction::Quarantined),
        "not quarantined"
    );

    // Job A's own restart adopts it.
    let plan_a = RunPlan::new("wf", "scope")
        .run_id(job_a.clone())
        .phase(numbered_phase("main", 2));
    let report = Executor::new(Arc::new(store.clone()), registry, config())
        .unwrap()
        .run(plan_a, Start::Auto, RunSignals::default())
        .await
        .unwrap();
    assert_eq!(report.run_id, job_a);
    assert!(report.resumed);
    assert_eq!(report.disposition, Disposition::Complete);
}

#[tokio::test(start_paused = true)]
async fn an_adopted_run_reports_the_input_it_kept_when_the_plan_asked_for_another() {
    // `Start::Auto` continues the interrupted run with its own input; the report says so, so
    // a host that took the new input from a person can tell them it was not used.
    let store = MemoryFactory::new();
    let (started, returned) = (Ledger::default(), Ledger::default());
    let signals = RunSignals::default();
    let registry = Registry::new().with(
        "work",
        stalling(&started, &returned, 1, signals.shutdown.clone()),
    );
    let plan = |input: &str| {
        RunPlan::new("wf", "scope")
            .input(input)
            .phase(numbered_phase("main", 3))
    };
    let first = Executor::new(Arc::new(store.clone()), registry, config())
        .unwrap()
        .run(plan("deploy A"), Start::Auto, signals)
        .await
        .unwrap();
    assert_eq!(first.disposition, Disposition::LeaveRunning);
    assert_eq!(first.kept_input, None, "a fresh run keeps nothing");

    let signals = RunSignals::default();
    let registry = Registry::new().with(
        "work",
        stalling(&started, &returned, 1, signals.shutdown.clone()),
    );
    let second = Executor::new(Arc::new(store.clone()), registry, config())
        .unwrap()
        .run(plan("deploy B"), Start::Auto, signals)
        .await
        .unwrap();
    assert!(second.resumed);
    assert_eq!(second.run_id, first.run_id);
    assert_eq!(second.kept_input.as_deref(), Some("deploy A"));
    let stored = store.load_meta(&first.run_id).await.unwrap().unwrap();
    assert_eq!(stored.input, "deploy A", "the run's input is unchanged");
}

/// Waits until no writer holds `run_id` (an aborted drive lets go of its writer when its
/// task is dropped, not at once).
async fn until_released(store: &MemoryFactory, run_id: &RunId) {
    for _ in 0..1000 {
        if !store.is_held(run_id).await.unwrap() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {run_id} is still held by a writer");
}

/// The resume policy's explicit resume of `run_id` from `previous`: its claim (one status
/// swap to `running`) and its `ResumedById` audit record, as `ResumePolicy::resume` writes
/// them before the executor opens the run.
async fn explicit_resume(store: &MemoryFactory, run_id: &RunId, previous: RunStatus) -> u64 {
    let claimed = store
        .compare_and_swap_status(run_id, previous, RunStatus::Running)
        .await
        .unwrap()
        .unwrap();
    let record = cairn_checkpoint::AuditRecord::new(
        cairn_queue::Timestamp(1),
        run_id.clone(),
        AuditAction::ResumedById,
        format!("resumed by id from {previous}"),
    )
    .with_detail(serde_json::json!({
        "previous_status": previous.as_str(),
        "lease_epoch": claimed.lease_epoch,
    }));
    store.append_audit(run_id, &record).await.unwrap();
    claimed.lease_epoch
}

/// A registry whose `flaky` tasks fail permanently on the bodies `failing` names and hang
/// forever on body `hang_on` (1-based, counted over every `flaky` body in `bodies`), and
/// otherwise complete; `after` tasks complete.
fn scripted(bodies: &Ledger, failing: &'static [usize], hang_on: Option<usize>) -> Registry {
    let flaky_bodies = bodies.clone();
    let after_bodies = bodies.clone();
    Registry::new()
        .with(
            "flaky",
            handler_fn(move |ctx| {
                let bodies = flaky_bodies.clone();
                async move {
                    bodies.record(&ctx);
                    let body = bodies.count("flaky");
                    if hang_on == Some(body) {
                        std::future::pending::<()>().await;
                    }
                    if failing.contains(&body) {
                        Err(TaskFailure::permanent("outage", "provider down"))
                    } else {
                        Ok(Finish::Complete(Handoff::default()))
                    }
                }
            }),
        )
        .with(
            "after",
            handler_fn(move |ctx| {
                let bodies = after_bodies.clone();
                async move {
                    bodies.record(&ctx);
                    Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
                }
            }),
        )
}

/// `cairn resume RUN` of the interrupted run `run_id`: the policy's claim from `running`,
/// then `Start::AdoptInterrupted`.
async fn resume_interrupted(
    executor: &Executor,
    store: &MemoryFactory,
    plan: RunPlan,
    run_id: &RunId,
) -> cairn_executor::RunReport {
    let lease_epoch = explicit_resume(store, run_id, RunStatus::Running).await;
    executor
        .run(
            plan,
            Start::AdoptInterrupted {
                run_id: run_id.clone(),
                lease_epoch,
            },
            RunSignals::default(),
        )
        .await
        .unwrap()
}

/// A run of `flaky` (fails on its first body only) and `after` (depends on it) that failed;
/// returns its executor and plan for the resume.
async fn failed_flaky_run(
    store: &MemoryFactory,
    bodies: &Ledger,
) -> (Executor, RunPlan, cairn_executor::RunReport) {
    let executor = Executor::new(
        Arc::new(store.clone()),
        scripted(bodies, &[1], None),
        config(),
    )
    .unwrap();
    let mut phase = Phase::new("p");
    let flaky = phase.task(TaskSpec::new("flaky"), []);
    phase.task(TaskSpec::new("after"), [flaky]);
    let plan = RunPlan::new("wf", "scope").phase(phase);
    let failed = executor
        .run(plan.clone(), Start::Fresh, RunSignals::default())
        .await
        .unwrap();
    assert!(matches!(failed.disposition, Disposition::Fail(_)));
    (executor, plan, failed)
}

/// Review 47 F2: a crash after an explicit resume of a failed run claimed it but before its
/// retries were journaled leaves the run `running` with the task still failed. The next
/// resume finds an interrupted run; it must finish the explicit resume (retry the failed
/// task), not fail the run again with the old error.
#[tokio::test(start_paused = true)]
async fn an_explicit_resume_interrupted_before_its_retries_were_journaled_is_finished_by_the_next()
{
    let store = MemoryFactory::new();
    let bodies = Ledger::default();
    let (executor, plan, failed) = failed_flaky_run(&store, &bodies).await;

    // `cairn resume RUN` claims the failed run and audits it, then the process dies.
    explicit_resume(&store, &failed.run_id, RunStatus::Failed).await;
    // The next `cairn resume RUN` finds it `running` (interrupted) and claims it from there.
    let report = resume_interrupted(&executor, &store, plan, &failed.run_id).await;
    assert_eq!(report.disposition, Disposition::Complete, "{report:?}");
    assert_eq!(bodies.count("flaky"), 2, "the failed task ran again");
    assert_eq!(bodies.count("after"), 1, "and its dependent ran");
    let audit = store.read_audit(&failed.run_id).await.unwrap();
    assert!(
        audit.iter().any(|r| r.action == AuditAction::Recovered
            && r.message.contains("finishing the explicit resume")
            && r.detail["failed_tasks_retried"] == true),
        "{audit:?}"
    );
}

/// The other side of the same rule: once an explicit resume's retries are journaled, a task
/// that fails again stays failed when the run is interrupted and resumed, so no task gets
/// more fresh attempts than the resumes a person asked for.
#[tokio::test(start_paused = true)]
async fn a_task_that_failed_again_after_an_explicit_resumes_retries_stays_failed_after_a_crash() {
    let store = MemoryFactory::new();
    let bodies = Ledger::default();
    // One at a time, in id order: t0 gets bodies 1 and 3 (both fail), t1 bodies 2 (fails),
    // 4 (hangs: the crash comes here) and 5.
    let executor = Executor::new(
        Arc::new(store.clone()),
        scripted(&bodies, &[1, 2, 3], Some(4)),
        ExecutorConfig::default().with_concurrency(1),
    )
    .unwrap();
    let mut phase = Phase::new("p");
    let first = phase.task(TaskSpec::new("flaky"), []);
    phase.task(TaskSpec::new("flaky").inputs(1.into()), []);
    phase.task(TaskSpec::new("after"), [first]);
    let plan = RunPlan::new("wf", "scope").phase(phase);
    let failed = executor
        .run(plan.clone(), Start::Fresh, RunSignals::default())
        .await
        .unwrap();
    assert!(matches!(failed.disposition, Disposition::Fail(_)));
    assert_eq!(bodies.count("flaky"), 2);

    // The explicit resume retries both; t0 fails again, then t1 hangs and the process dies
    // (the drive's future is dropped, as a kill stops it).
    explicit_resume(&store, &failed.run_id, RunStatus::Failed).await;
    let cut = tokio::time::timeout(
        Duration::from_secs(60),
        executor.run(
            plan.clone(),
            common::adopt_start(&store, failed.run_id.clone()).await,
            RunSignals::default(),
        ),
    )
    .await;
    assert!(cut.is_err(), "the drive hung and was cut off: {cut:?}");
    assert_eq!(bodies.count("flaky"), 4, "the explicit resume retried both");
    let meta = store.load_meta(&failed.run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Running, "left as a crash leaves it");
    // A killed process's lock goes with it; the cut drive's writer goes once its aborted
    // task is dropped. Until then the store refuses a claim (the writer still holds the run).
    until_released(&store, &failed.run_id).await;

    let report = resume_interrupted(&executor, &store, plan, &failed.run_id).await;
    assert!(
        matches!(report.disposition, Disposition::Fail(_)),
        "{report:?}"
    );
    assert_eq!(
        bodies.count("flaky"),
        5,
        "only the interrupted task ran again; the one that failed again stayed failed"
    );
    assert_eq!((report.counts.done, report.counts.failed), (1, 1));
}

/// `retries_owed` goes by lease epoch, not by the order of the audit log: a resumer that
/// lost the race may write its `ResumeRequested` after the winner's adoption journaled the
/// retries, and a request whose claim never happened owes nothing.
#[tokio::test]
async fn retries_owed_goes_by_the_epoch_each_record_names() {
    let store = MemoryFactory::new();
    let run_id = RunId::new("owed").unwrap();
    let meta = RunMeta::new(run_id.clone(), "wf", "scope", "", cairn_queue::Timestamp(0));
    let writer = store.begin(meta).await.unwrap();
    writer
        .fail(&cairn_checkpoint::RunError::new("task_failed", "boom"))
        .await
        .unwrap();
    drop(writer);
    let owed = || async { cairn_executor::retries_owed(&store, &run_id).await.unwrap() };
    let append = |action: AuditAction, detail: serde_json::Value| {
        let record = cairn_checkpoint::AuditRecord::new(
            cairn_queue::Timestamp(1),
            run_id.clone(),
            action,
            "test",
        )
        .with_detail(detail);
        let store = store.clone();
        async move { store.append_audit(&record.run_id, &record).await.unwrap() }
    };
    assert!(!owed().await, "never resumed");

    // Winner B: request, claim, confirmation. Cut off before its adoption.
    let failed_at = store.load_meta(&run_id).await.unwrap().unwrap().lease_epoch;
    let claimed = failed_at + 1;
    let request = serde_json::json!({ "previous_status": "failed", "lease_epoch": claimed });
    append(AuditAction::ResumeRequested, request.clone()).await;
    assert!(
        !owed().await,
        "requested, but the run has not reached that epoch"
    );
    let claimed = explicit_resume(&store, &run_id, RunStatus::Failed).await;
    assert_eq!(claimed, failed_at + 1);
    assert!(owed().await, "claimed, retries not journaled");
    // The policy's `Recovered` record (a claim, no `failed_tasks_retried`) settles nothing.
    append(
        AuditAction::Recovered,
        serde_json::json!({ "previous_owner": null, "lease_epoch": claimed }),
    )
    .await;
    assert!(owed().await, "a claim for recovery journals no retries");

    // An adoption at the claimed epoch journals them.
    let journaled = serde_json::json!({ "lease_epoch": claimed, "failed_tasks_retried": true });
    append(AuditAction::Recovered, journaled).await;
    assert!(!owed().await, "journaled");
    // A resume from `running` asks for no retries.
    append(
        AuditAction::ResumedById,
        serde_json::json!({ "previous_status": "running", "lease_epoch": claimed + 1 }),
    )
    .await;
    assert!(!owed().await, "a resume from running retries nothing");

    // Loser A's request for the same epoch lands after all that: it changes nothing.
    append(AuditAction::ResumeRequested, request).await;
    assert!(
        !owed().await,
        "a late request for a settled epoch is settled"
    );

    // The run fails again; a new request is owed only once its claim happened.
    store
        .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Failed)
        .await
        .unwrap()
        .unwrap();
    let next = serde_json::json!({ "previous_status": "failed", "lease_epoch": claimed + 1 });
    append(AuditAction::ResumeRequested, next).await;
    assert!(!owed().await, "the second request has not claimed yet");
    store
        .claim(&run_id, RunStatus::Failed, claimed)
        .await
        .unwrap()
        .unwrap();
    assert!(
        owed().await,
        "the second request claimed, retries not journaled"
    );
    let stale = serde_json::json!({ "lease_epoch": claimed, "failed_tasks_retried": true });
    append(AuditAction::Recovered, stale).await;
    assert!(
        owed().await,
        "an adoption at an older epoch settles only older resumes"
    );
}

/// Review 52 F1: `Start::Auto` beside a run another process drives (its writer lock held)
/// begins no second run of the same work; once the lock is let go, it adopts that run.
#[tokio::test]
async fn auto_begins_no_second_run_beside_a_run_another_process_drives() {
    let store = MemoryFactory::new();
    let (started, returned) = (Ledger::default(), Ledger::default());
    let plan = RunPlan::new("wf", "scope").phase(numbered_phase("main", 2));
    let never = CancellationToken::new();
    let registry = Registry::new().with("work", stalling(&started, &returned, -1, never));
    let executor = Executor::new(store.clone(), registry, config()).unwrap();
    let (stopping, signals) = shut_down_once_begun(executor.clone());
    let first = stopping
        .run(plan.clone(), Start::Fresh, signals)
        .await
        .unwrap();
    assert_eq!(first.disposition, Disposition::LeaveRunning);

    // Another process's writer handle on the interrupted run.
    let held = store.open(&first.run_id).await.unwrap().unwrap();
    let refused = executor
        .run(plan.clone(), Start::Auto, RunSignals::default())
        .await
        .unwrap_err();
    match &refused {
        Error::RunInProgress { run_id, why, .. } => {
            assert_eq!(run_id, &first.run_id);
            assert!(why.contains("writer lock is held"), "{why}");
        }
        other => panic!("expected RunInProgress, got {other:?}"),
    }
    assert!(
        refused.to_string().contains("no second run was begun"),
        "{refused}"
    );
    let runs = store.list(&RunFilter::default()).await.unwrap();
    assert_eq!(runs.len(), 1, "a second run was begun: {runs:?}");
    assert_eq!(returned.total(), 0);

    drop(held);
    let adopted = executor
        .run(plan, Start::Auto, RunSignals::default())
        .await
        .unwrap();
    assert_eq!(adopted.run_id, first.run_id);
    assert_eq!(adopted.disposition, Disposition::Complete);
    assert_eq!(returned.total(), 2);
}
