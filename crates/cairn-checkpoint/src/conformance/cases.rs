//! The conformance cases. Each takes a fresh harness and panics with a clear message on the
//! first broken contract.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};

use cairn_queue::{EnqueuedBy, Event, SNAPSHOT_FORMAT_VERSION, Snapshot, TaskId, Timestamp};

use super::{CaseResult, ConformanceHarness, Damage};
use crate::audit::{AuditAction, AuditRecord};
use crate::error::Error;
use crate::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
use crate::meta::{Owner, RunError, RunFilter, RunId, RunMeta, RunStatus};
use crate::port::{Checkpointer, CheckpointerFactory, Opened, StatusConflict};

/// How many times the threaded compare-and-swap race is repeated.
const CAS_ROUNDS: usize = 32;
/// How many OS threads race in each round.
pub(crate) const CAS_THREADS: usize = 8;
/// How many times the threaded claim race is repeated.
const CLAIM_ROUNDS: u64 = 16;

pub(crate) fn id(text: &str) -> RunId {
    RunId::new(text).expect("conformance run ids are valid")
}

pub(crate) fn meta(run: &str, workflow: &str, scope: &str, created_ms: u64) -> RunMeta {
    RunMeta::new(
        id(run),
        workflow,
        scope,
        format!("input of {run}"),
        Timestamp(created_ms),
    )
}

/// A plausible event: task `n` enqueued by the root.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::conformance::sample_event;
/// use cairn_queue::{Queue, QueueConfig, TaskId};
///
/// let event = sample_event(3);
/// assert_eq!(event.task_id(), Some(TaskId(3)));
/// // Task ids are handed out in order, so an empty queue takes task 0 but not task 3.
/// let mut queue = Queue::new(QueueConfig::default());
/// assert!(queue.apply(&event).is_err());
/// queue.apply(&sample_event(0))?;
/// assert_eq!(queue.len(), 1);
/// # Ok::<(), cairn_queue::Error>(())
/// ```
pub fn sample_event(n: u64) -> Event {
    Event::Enqueued {
        id: TaskId(n),
        kind: "step".to_owned(),
        inputs: serde_json::json!({ "n": n, "text": "x".repeat((n % 7) as usize) }),
        depends_on: Vec::new(),
        max_attempts: 3,
        enqueued_by: EnqueuedBy::Root,
        dedup: false,
        at: Timestamp(1_000 + n),
    }
}

/// Events `from..to` built by `sample_event`.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::conformance::{sample_event, sample_events};
/// use cairn_queue::{Queue, QueueConfig};
///
/// let events = sample_events(2, 5);
/// assert_eq!(events, [sample_event(2), sample_event(3), sample_event(4)]);
/// // The events replay in order onto an empty queue.
/// let queue = Queue::replay(None, &sample_events(0, 5), QueueConfig::default())?;
/// assert_eq!(queue.len(), 5);
/// # Ok::<(), cairn_queue::Error>(())
/// ```
pub fn sample_events(from: u64, to: u64) -> Vec<Event> {
    (from..to).map(sample_event).collect()
}

/// A small snapshot that differs by `marker`.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::conformance::sample_snapshot;
/// use cairn_queue::{Queue, QueueConfig};
///
/// assert_ne!(sample_snapshot(1), sample_snapshot(2));
/// // It is a valid snapshot: a queue rebuilds from it.
/// let queue = Queue::from_snapshot(sample_snapshot(2), QueueConfig::default())?;
/// assert!(queue.phase_completed(2) && !queue.phase_completed(1));
/// # Ok::<(), cairn_queue::Error>(())
/// ```
pub fn sample_snapshot(marker: u32) -> Snapshot {
    Snapshot {
        format_version: SNAPSHOT_FORMAT_VERSION,
        tasks: Vec::new(),
        phases_completed: BTreeSet::from([marker]),
        phases_started: vec![(marker, format!("phase {marker}"))],
    }
}

async fn open_existing(factory: &dyn CheckpointerFactory, run_id: &RunId) -> Opened {
    match factory.open(run_id).await {
        Ok(Some(opened)) => opened,
        Ok(None) => panic!("open of run {run_id} found nothing, but the run was begun"),
        Err(err) => panic!("open of run {run_id} failed: {err:?}"),
    }
}

pub(crate) async fn begin(
    factory: &dyn CheckpointerFactory,
    meta: RunMeta,
) -> Box<dyn Checkpointer> {
    let run_id = meta.run_id.clone();
    factory
        .begin(meta)
        .await
        .unwrap_or_else(|err| panic!("begin of run {run_id} failed: {err:?}"))
}

pub(crate) async fn append(run: &dyn Checkpointer, events: &[Event]) {
    run.append(events)
        .await
        .unwrap_or_else(|err| panic!("append to run {} failed: {err:?}", run.run_id()));
}

/// Writes, snapshots and reads back through the same writer.
pub async fn round_trip<H: ConformanceHarness>(h: &H) -> CaseResult {
    let factory = h.factory();
    let begun = meta("round-trip", "wf", "scope", 10);
    let run = begin(&*factory, begun.clone()).await;
    assert_eq!(run.run_id(), &begun.run_id, "the writer names its run");
    append(&*run, &sample_events(0, 2)).await;
    append(&*run, &[]).await;
    append(&*run, &sample_events(2, 3)).await;
    let loaded = run.load().await.expect("load after appends");
    assert_eq!(
        loaded.events,
        sample_events(0, 3),
        "events read back in order"
    );
    assert_eq!(loaded.snapshot, None, "no snapshot installed yet");
    assert_eq!(loaded.meta, begun, "meta read back as begun");
    assert_eq!(loaded.torn_tail, None);

    run.install_snapshot(&sample_snapshot(7))
        .await
        .expect("install_snapshot");
    append(&*run, &sample_events(3, 5)).await;
    let loaded = run.load().await.expect("load after snapshot");
    assert_eq!(loaded.snapshot, Some(sample_snapshot(7)), "latest snapshot");
    assert_eq!(
        loaded.events,
        sample_events(3, 5),
        "only events after the snapshot"
    );
    let stored = factory
        .load_meta(&begun.run_id)
        .await
        .expect("load_meta")
        .expect("the run exists");
    assert_eq!(stored, begun);
    CaseResult::Passed
}

/// Values nested as deep as the queue accepts ([`cairn_queue::MAX_VALUE_DEPTH`]), in task
/// inputs and a handoff, in events and in a snapshot, are read back after a reopen. (A
/// reader with a nesting limit, as serde_json has, must not turn acknowledged work into
/// unreadable state.)
pub async fn deepest_values_read_back<H: ConformanceHarness>(h: &H) -> CaseResult {
    use cairn_queue::{EnqueuedBy, Handoff, Queue, QueueConfig, TaskSpec, Timestamp};
    let mut deep = serde_json::json!("bottom");
    for level in 0..cairn_queue::MAX_VALUE_DEPTH {
        deep = if level % 2 == 0 {
            serde_json::json!([deep])
        } else {
            serde_json::json!({ "next": deep })
        };
    }
    let mut queue = Queue::new(QueueConfig::default());
    let at = Timestamp(1);
    let task = queue
        .enqueue(
            TaskSpec::new("deep").inputs(deep.clone()),
            EnqueuedBy::Root,
            at,
        )
        .expect("the queue accepts values at its depth limit")
        .id;
    let enqueued = queue.take_events();
    let with_inputs = queue.snapshot();
    queue.start(task, at).expect("start");
    queue
        .complete(
            task,
            Handoff {
                extra: deep,
                ..Handoff::default()
            },
            at,
        )
        .expect("the queue accepts a handoff at its depth limit");
    let finished = queue.take_events();
    let with_handoff = queue.snapshot();
    {
        let factory = h.factory();
        // One run holds the deep inputs in its snapshot and the deep handoff in its journal,
        // the other both in its snapshot.
        let run = begin(&*factory, meta("deep-journal", "wf", "scope", 1)).await;
        append(&*run, &enqueued).await;
        run.install_snapshot(&with_inputs)
            .await
            .expect("install_snapshot");
        append(&*run, &finished).await;
        let run = begin(&*factory, meta("deep-snapshot", "wf", "scope", 2)).await;
        append(&*run, &enqueued).await;
        append(&*run, &finished).await;
        run.install_snapshot(&with_handoff)
            .await
            .expect("install_snapshot");
    }
    let factory = h.factory();
    let journal = open_existing(&*factory, &id("deep-journal")).await;
    assert_eq!(journal.recovered.snapshot, Some(with_inputs));
    assert_eq!(
        journal.recovered.events, finished,
        "the deep handoff reads back from the journal"
    );
    let snapshot = open_existing(&*factory, &id("deep-snapshot")).await;
    assert_eq!(
        snapshot.recovered.snapshot,
        Some(with_handoff),
        "both deep values read back from the snapshot"
    );
    CaseResult::Passed
}

/// A new factory over the same storage reads back what a dropped writer wrote.
pub async fn reopen_after_drop<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("reopen");
    {
        let factory = h.factory();
        let run = begin(&*factory, meta("reopen", "wf", "scope", 1)).await;
        append(&*run, &sample_events(0, 4)).await;
        run.install_snapshot(&sample_snapshot(1))
            .await
            .expect("install_snapshot");
        append(&*run, &sample_events(4, 6)).await;
    }
    let factory = h.factory();
    let opened = open_existing(&*factory, &run_id).await;
    assert_eq!(opened.recovered.snapshot, Some(sample_snapshot(1)));
    assert_eq!(opened.recovered.events, sample_events(4, 6));
    assert_eq!(opened.recovered.meta.status, RunStatus::Running);
    assert_eq!(opened.checkpointer.run_id(), &run_id);
    // The reopened writer keeps appending after what was there.
    append(&*opened.checkpointer, &sample_events(6, 7)).await;
    drop(opened);
    let again = open_existing(&*h.factory(), &run_id).await;
    assert_eq!(again.recovered.events, sample_events(4, 7));
    CaseResult::Passed
}

/// A writer that vanished without `complete` leaves a running run with every acknowledged
/// event, and a released lock.
pub async fn reopen_after_crash<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("crashed");
    let first = h.factory();
    let run = begin(&*first, meta("crashed", "wf", "scope", 1)).await;
    for n in 0..20 {
        append(&*run, &[sample_event(n)]).await;
    }
    run.audit(&AuditRecord::new(
        Timestamp(5),
        run_id.clone(),
        AuditAction::Recovered,
        "before the crash",
    ))
    .await
    .expect("audit");
    // The process "dies": the writer and its factory are dropped without complete.
    drop(run);
    drop(first);

    let factory = h.factory();
    assert!(
        !factory.is_held(&run_id).await.expect("is_held"),
        "a dead writer holds no lock"
    );
    let stored = factory
        .load_meta(&run_id)
        .await
        .expect("load_meta")
        .expect("run exists");
    assert_eq!(stored.status, RunStatus::Running, "status stays running");
    let opened = open_existing(&*factory, &run_id).await;
    let mut events = Vec::new();
    if let Some(snapshot) = &opened.recovered.snapshot {
        panic!("no snapshot was installed by the caller, yet open returned {snapshot:?}");
    }
    events.extend(opened.recovered.events.iter().cloned());
    assert_eq!(events, sample_events(0, 20), "every acknowledged event");
    assert_eq!(opened.recovered.meta.status, RunStatus::Running);
    let audit = factory.read_audit(&run_id).await.expect("read_audit");
    assert!(
        audit.iter().any(|r| r.message == "before the crash"),
        "audit written before the crash survives: {audit:?}"
    );
    CaseResult::Passed
}

/// A torn last record is cut, reported in `Recovered::torn_tail` and audited.
pub async fn torn_tail<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("torn");
    {
        let factory = h.factory();
        let run = begin(&*factory, meta("torn", "wf", "scope", 1)).await;
        for n in 0..5 {
            append(&*run, &[sample_event(n)]).await;
        }
    }
    if let Damage::Unsupported(reason) = h.tear_last_record(&run_id) {
        return CaseResult::Skipped(reason);
    }
    let factory = h.factory();
    let opened = open_existing(&*factory, &run_id).await;
    let torn = opened
        .recovered
        .torn_tail
        .expect("open reports the torn tail it cut");
    assert!(torn.bytes > 0, "a cut removes bytes: {torn:?}");
    assert_eq!(
        opened.recovered.events,
        sample_events(0, 4),
        "every record before the torn one is kept"
    );
    append(&*opened.checkpointer, &sample_events(10, 11)).await;
    drop(opened);
    let audit = factory.read_audit(&run_id).await.expect("read_audit");
    assert!(
        audit.iter().any(|r| r.action == AuditAction::TornTailCut),
        "the cut is audited: {audit:?}"
    );
    let again = open_existing(&*h.factory(), &run_id).await;
    assert_eq!(again.recovered.torn_tail, None, "the cut happened once");
    let mut expected = sample_events(0, 4);
    expected.push(sample_event(10));
    assert_eq!(again.recovered.events, expected);
    CaseResult::Passed
}

/// A bad record followed by good ones is `Corruption` naming where; nothing is cut.
pub async fn corruption_in_the_middle<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("corrupt");
    {
        let factory = h.factory();
        let run = begin(&*factory, meta("corrupt", "wf", "scope", 1)).await;
        for n in 0..5 {
            append(&*run, &[sample_event(n)]).await;
        }
    }
    let expected_offset = match h.corrupt_middle_record(&run_id) {
        Damage::Unsupported(reason) => return CaseResult::Skipped(reason),
        Damage::Applied { offset } => offset,
    };
    for attempt in 0..2 {
        let factory = h.factory();
        match factory.open(&run_id).await {
            Err(Error::Corruption {
                run_id: named,
                offset,
                ..
            }) => {
                assert_eq!(named, run_id, "the error names the run");
                if let Some(expected) = expected_offset {
                    assert_eq!(offset, expected, "the error names the bad record's offset");
                }
            }
            Err(err) => panic!("open #{attempt} of a corrupt run gave {err:?}, not Corruption"),
            Ok(Some(opened)) => panic!(
                "open #{attempt} of a corrupt run succeeded with {} events",
                opened.recovered.events.len()
            ),
            Ok(None) => panic!("open #{attempt} of a corrupt run found nothing"),
        }
        assert!(
            factory
                .load_meta(&run_id)
                .await
                .expect("load_meta")
                .is_some(),
            "the corrupt run is still there for a person to inspect"
        );
    }
    CaseResult::Passed
}

/// Checks that `run_id` has no metadata, does not open and is not listed; `what` names the
/// run in the failure ("a quarantined run", "a removed run").
pub(super) async fn check_invisible(factory: &dyn CheckpointerFactory, run_id: &RunId, what: &str) {
    assert!(
        factory
            .load_meta(run_id)
            .await
            .expect("load_meta")
            .is_none(),
        "{what} {run_id} has no metadata"
    );
    assert!(
        factory.open(run_id).await.expect("open").is_none(),
        "{what} {run_id} does not open"
    );
    let listed = factory.list(&RunFilter::default()).await.expect("list");
    assert!(
        listed.iter().all(|m| m.run_id != *run_id),
        "{what} {run_id} is not listed: {listed:?}"
    );
}

async fn check_quarantined(factory: &dyn CheckpointerFactory, run_id: &RunId) {
    check_invisible(factory, run_id, "a quarantined run").await;
    let audit = factory.read_audit(run_id).await.expect("read_audit");
    assert!(
        audit.iter().any(|r| r.action == AuditAction::Quarantined),
        "the quarantine is audited: {audit:?}"
    );
    let listed = factory.list_quarantined().await.expect("list_quarantined");
    let entry = listed
        .iter()
        .find(|entry| entry.run_id == *run_id)
        .unwrap_or_else(|| panic!("list_quarantined names {run_id}: {listed:?}"));
    assert!(
        !entry.location.is_empty(),
        "the entry says where: {entry:?}"
    );
    assert!(!entry.reason.is_empty(), "the entry says why: {entry:?}");
    assert!(
        entry.meta.as_ref().is_none_or(|meta| meta.workflow == "wf"),
        "metadata that parses is the run's own, even of another version: {entry:?}"
    );
    let err = factory
        .begin(RunMeta::new(
            run_id.clone(),
            "wf",
            "scope",
            "",
            Timestamp(9),
        ))
        .await
        .expect_err("a quarantined id cannot be begun again");
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
}

/// State with a wrong format version is quarantined, audited and refused with a typed error.
pub async fn version_mismatch<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("old-format");
    {
        let factory = h.factory();
        let run = begin(&*factory, meta("old-format", "wf", "scope", 1)).await;
        append(&*run, &sample_events(0, 2)).await;
    }
    if let Damage::Unsupported(reason) = h.plant_version_mismatch(&run_id) {
        return CaseResult::Skipped(reason);
    }
    let factory = h.factory();
    match factory.open(&run_id).await {
        Err(Error::VersionMismatch {
            run_id: named,
            found,
            expected,
            quarantined_to,
        }) => {
            assert_eq!(named, run_id);
            assert_ne!(found, expected);
            assert!(
                !quarantined_to.is_empty(),
                "the error says where state went"
            );
        }
        Err(err) => panic!("open gave {err:?}, not VersionMismatch"),
        Ok(opened) => panic!("open of a wrong-version run gave {opened:?}"),
    }
    check_quarantined(&*factory, &run_id).await;
    CaseResult::Passed
}

/// State a newer build wrote is refused with `NewerFormat` and left exactly where it is:
/// not quarantined, not bad state, refused again on the next open, never removed (so a
/// rollback and a roll forward again find the run as it was). Metadata whose fields still
/// read is listed, so that a lookup finds the run and is refused by its `open` instead of
/// beginning a fresh run beside it.
pub async fn newer_format_is_left_in_place<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("from-a-later-build");
    {
        let factory = h.factory();
        let run = begin(&*factory, meta("from-a-later-build", "wf", "scope", 1)).await;
        append(&*run, &sample_events(0, 2)).await;
    }
    if let Damage::Unsupported(reason) = h.plant_newer_format(&run_id) {
        return CaseResult::Skipped(reason);
    }
    let factory = h.factory();
    for attempt in 1..=2 {
        match factory.open(&run_id).await {
            Err(err @ Error::NewerFormat { .. }) => {
                assert!(!err.is_bad_state(), "{err:?}");
                let Error::NewerFormat { run_id: named, .. } = &err else {
                    unreachable!()
                };
                assert_eq!(named, &run_id);
            }
            Err(err) => panic!("open {attempt} gave {err:?}, not NewerFormat"),
            Ok(opened) => panic!("open {attempt} of a newer build's run gave {opened:?}"),
        }
    }
    let listed = factory.list(&RunFilter::default()).await.expect("list");
    assert!(
        listed.iter().any(|m| m.run_id == run_id),
        "a newer build's run whose metadata reads is listed: {listed:?}"
    );
    let err = factory
        .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Paused)
        .await
        .expect_err("a newer build's metadata is not rewritten");
    assert!(matches!(err, Error::NewerFormat { .. }), "{err:?}");
    let err = factory
        .claim(&run_id, RunStatus::Running, 1)
        .await
        .expect_err("nor claimed");
    assert!(matches!(err, Error::NewerFormat { .. }), "{err:?}");
    let err = factory
        .remove_terminal(&run_id)
        .await
        .expect_err("a newer build's run is never removed");
    assert!(matches!(err, Error::NewerFormat { .. }), "{err:?}");
    let quarantined = factory.list_quarantined().await.expect("list_quarantined");
    assert!(
        quarantined.iter().all(|q| q.run_id != run_id),
        "nothing was quarantined: {quarantined:?}"
    );
    match factory.open(&run_id).await {
        Err(Error::NewerFormat { .. }) => {}
        other => panic!("after list and remove, open gave {other:?}"),
    }
    CaseResult::Passed
}

/// State that names another run is quarantined, audited and refused with a typed error.
pub async fn foreign_run<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("mine");
    let foreign = id("theirs");
    {
        let factory = h.factory();
        let run = begin(&*factory, meta("mine", "wf", "scope", 1)).await;
        append(&*run, &sample_events(0, 2)).await;
    }
    if let Damage::Unsupported(reason) = h.plant_foreign_run(&run_id, &foreign) {
        return CaseResult::Skipped(reason);
    }
    let factory = h.factory();
    match factory.open(&run_id).await {
        Err(Error::ForeignRun {
            expected,
            found,
            quarantined_to,
        }) => {
            assert_eq!(expected, run_id);
            assert_eq!(found, foreign.as_str());
            assert!(
                !quarantined_to.is_empty(),
                "the error says where state went"
            );
        }
        Err(err) => panic!("open gave {err:?}, not ForeignRun"),
        Ok(opened) => panic!("open of a foreign run gave {opened:?}"),
    }
    check_quarantined(&*factory, &run_id).await;
    CaseResult::Passed
}

/// Runs `call` once on each of `factories`, each on an OS thread of its own with its own
/// runtime, all released at once by a barrier, and returns the outcomes in factory order.
pub(crate) async fn race_from_threads<T, F, Fut>(
    factories: &[Arc<dyn CheckpointerFactory>],
    call: F,
) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Arc<dyn CheckpointerFactory>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = T>,
{
    let barrier = Arc::new(Barrier::new(factories.len()));
    let threads: Vec<_> = factories
        .iter()
        .map(|f| {
            let f = Arc::clone(f);
            let barrier = Arc::clone(&barrier);
            let call = call.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the racing thread");
                barrier.wait();
                runtime.block_on(call(f))
            })
        })
        .collect();
    tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(|t| t.join().expect("racing thread panicked"))
            .collect()
    })
    .await
    .expect("joining the racing threads")
}

/// Eight OS threads, each with its own factory, race the same swap: exactly one wins.
pub async fn compare_and_swap_from_threads<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("raced");
    let factory = h.factory();
    drop(begin(&*factory, meta("raced", "wf", "scope", 1)).await);
    let factories: Vec<Arc<dyn CheckpointerFactory>> =
        (0..CAS_THREADS).map(|_| h.factory()).collect();
    let mut epoch = 1;
    for round in 0..CAS_ROUNDS {
        let (from, to) = if round % 2 == 0 {
            (RunStatus::Running, RunStatus::Paused)
        } else {
            (RunStatus::Paused, RunStatus::Running)
        };
        let run = run_id.clone();
        let outcomes = race_from_threads(&factories, move |f| {
            let run = run.clone();
            async move { f.compare_and_swap_status(&run, from, to).await }
        })
        .await;
        let mut winners = 0;
        for outcome in outcomes {
            match outcome {
                Ok(Ok(meta)) => {
                    winners += 1;
                    assert_eq!(meta.status, to);
                }
                Ok(Err(conflict)) => {
                    assert_eq!(conflict.expected, from);
                    assert_eq!(conflict.current, to, "the loser sees the winner's status");
                }
                Err(err) => panic!("round {round}: compare_and_swap_status failed: {err:?}"),
            }
        }
        assert_eq!(winners, 1, "round {round}: exactly one thread wins");
        if to == RunStatus::Running {
            epoch += 1;
        }
        let stored = factory
            .load_meta(&run_id)
            .await
            .expect("load_meta")
            .expect("run exists");
        assert_eq!(stored.status, to, "round {round}");
        assert_eq!(
            stored.lease_epoch, epoch,
            "round {round}: one claim, one epoch"
        );
    }
    CaseResult::Passed
}

/// Claims bump the lease epoch; conflicts are values; finishing sets `finished_at`.
pub async fn claim_bumps_epoch<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("claimed");
    let factory = h.factory();
    drop(begin(&*factory, meta("claimed", "wf", "scope", 1)).await);
    let paused = factory
        .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Paused)
        .await
        .expect("cas")
        .expect("running → paused");
    assert_eq!(paused.status, RunStatus::Paused);
    assert_eq!(paused.lease_epoch, 1, "pausing is not a claim");
    let conflict = factory
        .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Completed)
        .await
        .expect("cas")
        .expect_err("the run is paused, not running");
    assert_eq!(conflict.expected, RunStatus::Running);
    assert_eq!(conflict.current, RunStatus::Paused);
    let claimed = factory
        .compare_and_swap_status(&run_id, RunStatus::Paused, RunStatus::Running)
        .await
        .expect("cas")
        .expect("paused → running");
    assert_eq!(claimed.lease_epoch, 2, "a claim bumps the epoch");
    assert!(claimed.owner.is_some(), "a claim records the owner");
    let reclaimed = h
        .factory()
        .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Running)
        .await
        .expect("cas")
        .expect("running → running is a re-claim");
    assert_eq!(reclaimed.lease_epoch, 3);
    let failed = factory
        .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Failed)
        .await
        .expect("cas")
        .expect("running → failed");
    assert!(failed.finished_at.is_some(), "failing sets finished_at");
    let stored = h
        .factory()
        .load_meta(&run_id)
        .await
        .expect("load_meta")
        .expect("run exists");
    assert_eq!(stored, failed, "the swap is stored");
    CaseResult::Passed
}

/// Loads a run's stored metadata through a fresh factory, as another process would see it.
pub(crate) async fn stored_meta<H: ConformanceHarness>(h: &H, run_id: &RunId) -> RunMeta {
    h.factory()
        .load_meta(run_id)
        .await
        .unwrap_or_else(|err| panic!("load_meta of run {run_id} failed: {err:?}"))
        .unwrap_or_else(|| panic!("run {run_id} is not stored"))
}

/// Claims `run_id` and expects to win.
pub(crate) async fn claim_won(
    factory: &dyn CheckpointerFactory,
    run_id: &RunId,
    from: RunStatus,
    expected_epoch: u64,
) -> RunMeta {
    match factory.claim(run_id, from, expected_epoch).await {
        Ok(Ok(claimed)) => claimed,
        Ok(Err(conflict)) => {
            panic!("claim of run {run_id} from {from} at epoch {expected_epoch} lost: {conflict:?}")
        }
        Err(err) => panic!("claim of run {run_id} from {from} at epoch {expected_epoch}: {err:?}"),
    }
}

/// A claim that expects the stored status and lease epoch wins: the run is `running`, one
/// epoch on, owned by the claimer, not finished, and stored so. It takes no writer lock.
pub async fn claim_at_the_read_epoch_wins<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("claim-won");
    let factory = h.factory();
    drop(begin(&*factory, meta("claim-won", "wf", "scope", 1)).await);
    let read = stored_meta(h, &run_id).await;
    assert_eq!(read.lease_epoch, 1, "begin sets epoch 1");

    let claimed = claim_won(&*h.factory(), &run_id, RunStatus::Running, 1).await;
    assert_eq!(claimed.status, RunStatus::Running);
    assert_eq!(claimed.lease_epoch, 2, "a claim bumps the epoch by one");
    assert_eq!(
        claimed.owner,
        Some(Owner::current()),
        "the claimer is the owner"
    );
    assert!(claimed.updated_at >= read.updated_at);
    assert_eq!(
        (&claimed.run_id, &claimed.workflow, claimed.created_at),
        (&read.run_id, &read.workflow, read.created_at),
        "a claim changes only the lease"
    );
    assert_eq!(
        stored_meta(h, &run_id).await,
        claimed,
        "the claim is stored"
    );

    // A paused run is claimed from `paused`.
    factory
        .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Paused)
        .await
        .expect("cas")
        .expect("running → paused");
    let resumed = claim_won(&*factory, &run_id, RunStatus::Paused, 2).await;
    assert_eq!(
        (resumed.status, resumed.lease_epoch),
        (RunStatus::Running, 3)
    );

    // A failed run is claimed from `failed`, and is no longer finished.
    let failed = factory
        .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Failed)
        .await
        .expect("cas")
        .expect("running → failed");
    assert!(failed.finished_at.is_some());
    let retried = claim_won(&*factory, &run_id, RunStatus::Failed, 3).await;
    assert_eq!(retried.lease_epoch, 4);
    assert_eq!(retried.finished_at, None, "a claimed run is not finished");

    // With no writer holding it, the run was claimed four times; a writer holding it would
    // have refused them (`claim_while_a_writer_holds_the_run_changes_nothing`).
    assert_eq!(stored_meta(h, &run_id).await, retried);
    CaseResult::Passed
}

/// A claim that expects an epoch other than the stored one loses, names the stored status,
/// epoch and owner, and changes nothing; so does one that expects another status.
pub async fn claim_at_a_stale_epoch_changes_nothing<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("claim-stale");
    let factory = h.factory();
    drop(begin(&*factory, meta("claim-stale", "wf", "scope", 1)).await);
    let winner = claim_won(&*factory, &run_id, RunStatus::Running, 1).await;
    let before = stored_meta(h, &run_id).await;
    assert_eq!(before, winner);
    // Let the clock move on, so a write on a losing path would show in `updated_at`.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let loser = h.factory();
    for stale in [1, 0, 3, u64::MAX] {
        let conflict = match loser.claim(&run_id, RunStatus::Running, stale).await {
            Ok(Err(conflict)) => conflict,
            Ok(Ok(claimed)) => panic!("a claim at stale epoch {stale} won: {claimed:?}"),
            Err(err) => panic!("a claim at stale epoch {stale} failed: {err:?}"),
        };
        assert_eq!(conflict.expected, RunStatus::Running);
        assert_eq!(conflict.current, RunStatus::Running);
        assert_eq!(conflict.expected_epoch, Some(stale));
        assert_eq!(
            conflict.current_epoch, 2,
            "the loser learns the winner's epoch"
        );
        assert_eq!(
            conflict.current_owner, winner.owner,
            "the loser learns the winner"
        );
        assert!(conflict.claimed_by_another(), "{conflict:?}");
        assert_eq!(
            stored_meta(h, &run_id).await,
            before,
            "a claim at stale epoch {stale} changed the run"
        );
    }

    // The right epoch but another status: a status conflict, and nothing changes either.
    let conflict = loser
        .claim(&run_id, RunStatus::Paused, 2)
        .await
        .expect("a mismatched status is not an error")
        .expect_err("and the claim loses");
    assert_eq!(
        (conflict.expected, conflict.current, conflict.current_epoch),
        (RunStatus::Paused, RunStatus::Running, 2)
    );
    assert!(!conflict.claimed_by_another(), "{conflict:?}");
    assert_eq!(stored_meta(h, &run_id).await, before);

    // The winner's epoch still claims: the losers left it as it was.
    let next = claim_won(&*loser, &run_id, RunStatus::Running, 2).await;
    assert_eq!(next.lease_epoch, 3);
    CaseResult::Passed
}

/// `CAS_THREADS` OS threads, each with its own factory, claim the same run at the same
/// epoch: exactly one wins, every loser names the winner's epoch, the epoch goes up by one.
pub async fn claims_racing_from_threads_have_one_winner<H: ConformanceHarness>(
    h: &H,
) -> CaseResult {
    let run_id = id("claim-raced");
    let factory = h.factory();
    drop(begin(&*factory, meta("claim-raced", "wf", "scope", 1)).await);
    let factories: Vec<Arc<dyn CheckpointerFactory>> =
        (0..CAS_THREADS).map(|_| h.factory()).collect();
    let mut epoch = 1;
    for round in 0..CLAIM_ROUNDS {
        // Odd rounds race a paused run, even rounds an interrupted (`running`) one.
        let from = if round % 2 == 1 {
            factory
                .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Paused)
                .await
                .expect("cas")
                .expect("running → paused");
            RunStatus::Paused
        } else {
            RunStatus::Running
        };
        let run = run_id.clone();
        let outcomes = race_from_threads(&factories, move |f| {
            let run = run.clone();
            async move { f.claim(&run, from, epoch).await }
        })
        .await;
        let mut winners = Vec::new();
        for outcome in outcomes {
            match outcome {
                Ok(Ok(claimed)) => winners.push(claimed),
                Ok(Err(conflict)) => {
                    assert_eq!(
                        (conflict.current, conflict.current_epoch),
                        (RunStatus::Running, epoch + 1),
                        "round {round}: a loser sees the winner's claim"
                    );
                    assert_eq!(conflict.expected_epoch, Some(epoch));
                }
                Err(err) => panic!("round {round}: claim failed: {err:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one claim wins");
        epoch += 1;
        assert_eq!(winners[0].lease_epoch, epoch, "round {round}");
        assert_eq!(
            stored_meta(h, &run_id).await,
            winners[0],
            "round {round}: the stored run is the winner's, untouched by the losers"
        );
    }
    CaseResult::Passed
}

/// A claim, or a swap to `running`, that would win is refused while a live writer holds the
/// run (from `begin` or from `open`, through this factory or another): the conflict says so
/// (`held_by_writer`, `claimed_by_another`), names the stored status, epoch and owner, and
/// nothing stored changes. Once the writer is gone, the same claim wins. This is what keeps
/// the stored lease the one the live writer drives under (review 52, F3).
pub async fn claim_while_a_writer_holds_the_run_changes_nothing<H: ConformanceHarness>(
    h: &H,
) -> CaseResult {
    let run_id = id("claim-held");
    let factory = h.factory();
    let writer = begin(&*factory, meta("claim-held", "wf", "scope", 1)).await;
    let before = stored_meta(h, &run_id).await;
    // Let the clock move on, so a write on a refused path would show in `updated_at`.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let refused =
        |outcome: crate::Result<Result<RunMeta, StatusConflict>>, what: &str| match outcome {
            Ok(Err(conflict)) => conflict,
            Ok(Ok(claimed)) => panic!("{what} won while a writer held the run: {claimed:?}"),
            Err(err) => panic!("{what} failed while a writer held the run: {err:?}"),
        };
    for claimer in [h.factory(), Arc::clone(&factory)] {
        let conflict = refused(
            claimer.claim(&run_id, RunStatus::Running, 1).await,
            "a claim from begin's writer",
        );
        assert!(conflict.held_by_writer(), "{conflict:?}");
        assert!(conflict.claimed_by_another(), "{conflict:?}");
        assert_eq!(
            (
                conflict.current,
                conflict.current_epoch,
                &conflict.current_owner
            ),
            (RunStatus::Running, 1, &before.owner),
            "the refusal names what is stored"
        );
        let swap = refused(
            claimer
                .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Running)
                .await,
            "a swap to running",
        );
        assert!(swap.held_by_writer(), "{swap:?}");
        assert_eq!(
            stored_meta(h, &run_id).await,
            before,
            "a refused claim changed the run"
        );
    }

    // A swap to another status is no claim: the holder's own pause goes through, and the
    // paused run is still not claimed from under it.
    let paused = factory
        .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Paused)
        .await
        .expect("cas")
        .expect("running → paused");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let conflict = refused(
        h.factory().claim(&run_id, RunStatus::Paused, 1).await,
        "a claim of the paused run",
    );
    assert!(conflict.held_by_writer(), "{conflict:?}");
    assert_eq!(stored_meta(h, &run_id).await, paused);

    // Once the writer is gone, the same claim wins.
    drop(writer);
    let claimed = claim_won(&*h.factory(), &run_id, RunStatus::Paused, 1).await;
    assert_eq!(
        (claimed.status, claimed.lease_epoch),
        (RunStatus::Running, 2)
    );

    // A writer from `open` holds the run the same way.
    let opened = open_existing(&*factory, &run_id).await;
    let conflict = refused(
        h.factory().claim(&run_id, RunStatus::Running, 2).await,
        "a claim beside open's writer",
    );
    assert!(conflict.held_by_writer(), "{conflict:?}");
    assert_eq!(stored_meta(h, &run_id).await, claimed);
    drop(opened);
    let next = claim_won(&*h.factory(), &run_id, RunStatus::Running, 2).await;
    assert_eq!(next.lease_epoch, 3);
    assert_eq!(stored_meta(h, &run_id).await, next);
    CaseResult::Passed
}

/// A claim out of `completed` or `cancelled` is `Terminal` whatever the epoch; one that
/// expects another status is a conflict. Neither changes the run.
pub async fn claim_of_a_terminal_run_changes_nothing<H: ConformanceHarness>(h: &H) -> CaseResult {
    let factory = h.factory();
    let done = begin(&*factory, meta("claim-done", "wf", "scope", 1)).await;
    done.complete().await.expect("complete");
    drop(done);
    drop(begin(&*factory, meta("claim-gone", "wf", "scope", 2)).await);
    factory
        .compare_and_swap_status(&id("claim-gone"), RunStatus::Running, RunStatus::Cancelled)
        .await
        .expect("cas")
        .expect("running → cancelled");
    // Let the clock move on, so a write on a losing path would show in `updated_at`.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    for (name, status) in [
        ("claim-done", RunStatus::Completed),
        ("claim-gone", RunStatus::Cancelled),
    ] {
        let run_id = id(name);
        let before = stored_meta(h, &run_id).await;
        for epoch in [before.lease_epoch, before.lease_epoch + 1] {
            let err = factory
                .claim(&run_id, status, epoch)
                .await
                .expect_err("a terminal run is never claimed");
            assert!(
                matches!(&err, Error::Terminal { run_id: named, status: found } if *named == run_id && *found == status),
                "{err:?}"
            );
        }
        let conflict = factory
            .claim(&run_id, RunStatus::Running, before.lease_epoch)
            .await
            .expect("a mismatched status is not an error")
            .expect_err("and the claim loses");
        assert_eq!(conflict.current, status);
        assert_eq!(conflict.current_epoch, before.lease_epoch);
        assert_eq!(
            stored_meta(h, &run_id).await,
            before,
            "refused claims leave run {run_id} untouched"
        );
    }
    CaseResult::Passed
}

/// A second opener is refused with `Locked` naming the holder, until the writer is dropped.
pub async fn lock_held_by_another_opener<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("locked");
    let first = h.factory();
    let second = h.factory();
    let run = begin(&*first, meta("locked", "wf", "scope", 1)).await;
    match second.open(&run_id).await {
        Err(Error::Locked {
            run_id: named,
            holder,
        }) => {
            assert_eq!(named, run_id);
            assert!(!holder.trim().is_empty(), "Locked names the holder");
        }
        Err(err) => panic!("open of a held run gave {err:?}, not Locked"),
        Ok(opened) => panic!("open of a held run succeeded: {opened:?}"),
    }
    assert!(second.is_held(&run_id).await.expect("is_held"));
    drop(run);
    assert!(!second.is_held(&run_id).await.expect("is_held"));
    let opened = open_existing(&*second, &run_id).await;
    let err = first
        .open(&run_id)
        .await
        .expect_err("the second opener holds the run now");
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    drop(opened);
    drop(open_existing(&*first, &run_id).await);
    CaseResult::Passed
}

/// `peek` reads back what `open` reads, is `None` for an unknown run, refuses a run a writer
/// holds with `Locked`, and leaves the run free for a writer once it returns.
pub async fn peek_reads_what_open_reads<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("peeked");
    let first = h.factory();
    let second = h.factory();
    let unknown = second.peek(&id("never-begun")).await.expect("peek");
    assert!(unknown.is_none(), "peek of an unknown run: {unknown:?}");
    let run = begin(&*first, meta("peeked", "wf", "scope", 1)).await;
    append(&*run, &sample_events(0, 4)).await;
    run.install_snapshot(&sample_snapshot(1))
        .await
        .expect("install_snapshot");
    append(&*run, &sample_events(4, 6)).await;
    match second.peek(&run_id).await {
        Err(Error::Locked { run_id: named, .. }) => assert_eq!(named, run_id),
        other => panic!("peek of a held run gave {other:?}, not Locked"),
    }
    drop(run);
    let peeked = second
        .peek(&run_id)
        .await
        .expect("peek")
        .expect("the run exists");
    assert_eq!(peeked.snapshot, Some(sample_snapshot(1)));
    assert_eq!(peeked.events, sample_events(4, 6));
    assert_eq!(peeked.meta.status, RunStatus::Running);
    let opened = open_existing(&*first, &run_id).await;
    assert_eq!(opened.recovered.snapshot, peeked.snapshot);
    assert_eq!(opened.recovered.events, peeked.events);
    CaseResult::Passed
}

/// `peek_live` reads a run its writer holds (every acknowledged append, the installed
/// snapshot) without disturbing the writer, and once the writer is gone reads what `peek`
/// reads. An adapter that cannot read beside a writer answers `Locked`; the case is then
/// skipped.
pub async fn peek_live_reads_beside_the_writer<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("watched");
    let first = h.factory();
    let second = h.factory();
    let unknown = second
        .peek_live(&id("never-begun"))
        .await
        .expect("peek_live");
    assert!(
        unknown.is_none(),
        "peek_live of an unknown run: {unknown:?}"
    );
    let run = begin(&*first, meta("watched", "wf", "scope", 1)).await;
    append(&*run, &sample_events(0, 4)).await;
    let live = match second.peek_live(&run_id).await {
        Ok(Some(live)) => live,
        Err(Error::Locked { run_id: named, .. }) => {
            assert_eq!(named, run_id);
            return CaseResult::Skipped("the adapter cannot read a run beside its writer".into());
        }
        other => panic!("peek_live of a held run gave {other:?}"),
    };
    assert_eq!(live.meta.status, RunStatus::Running);
    assert_eq!(live.snapshot, None);
    assert_eq!(live.events, sample_events(0, 4));
    assert_eq!(live.torn_tail, None);
    // The writer goes on as if nobody had read.
    run.install_snapshot(&sample_snapshot(1))
        .await
        .expect("install_snapshot after a live read");
    append(&*run, &sample_events(4, 6)).await;
    let live = second
        .peek_live(&run_id)
        .await
        .expect("peek_live")
        .expect("the run exists");
    assert_eq!(live.snapshot, Some(sample_snapshot(1)));
    assert_eq!(live.events, sample_events(4, 6));
    drop(run);
    let after = second
        .peek_live(&run_id)
        .await
        .expect("peek_live")
        .expect("the run exists");
    let peeked = second
        .peek(&run_id)
        .await
        .expect("peek")
        .expect("the run exists");
    assert_eq!(after.snapshot, peeked.snapshot);
    assert_eq!(after.events, peeked.events);
    let opened = open_existing(&*first, &run_id).await;
    assert_eq!(opened.recovered.events, sample_events(4, 6));
    CaseResult::Passed
}

/// `list` filters by workflow, scope and status, oldest first.
pub async fn list_filters_and_order<H: ConformanceHarness>(h: &H) -> CaseResult {
    let factory = h.factory();
    // Begun out of creation order on purpose.
    for (run, workflow, scope, created) in [
        ("c", "build", "alpha", 30),
        ("a", "build", "alpha", 10),
        ("d", "deploy", "beta", 40),
        ("b", "deploy", "alpha", 20),
        ("e", "build", "beta", 10),
    ] {
        drop(begin(&*factory, meta(run, workflow, scope, created)).await);
    }
    factory
        .compare_and_swap_status(&id("d"), RunStatus::Running, RunStatus::Paused)
        .await
        .expect("cas")
        .expect("running → paused");
    let ids = |metas: Vec<RunMeta>| -> Vec<String> {
        metas.into_iter().map(|m| m.run_id.to_string()).collect()
    };
    let all = factory.list(&RunFilter::default()).await.expect("list");
    assert_eq!(
        ids(all),
        ["a", "e", "b", "c", "d"],
        "oldest first, then by id"
    );
    let builds = RunFilter {
        workflow: Some("build".to_owned()),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(factory.list(&builds).await.expect("list")),
        ["a", "e", "c"]
    );
    let alpha = RunFilter {
        scope: Some("alpha".to_owned()),
        ..RunFilter::default()
    };
    assert_eq!(
        ids(factory.list(&alpha).await.expect("list")),
        ["a", "b", "c"]
    );
    let paused = RunFilter {
        statuses: vec![RunStatus::Paused, RunStatus::Failed],
        ..RunFilter::default()
    };
    assert_eq!(ids(factory.list(&paused).await.expect("list")), ["d"]);
    let narrow = RunFilter {
        workflow: Some("deploy".to_owned()),
        scope: Some("alpha".to_owned()),
        statuses: vec![RunStatus::Running],
    };
    assert_eq!(ids(h.factory().list(&narrow).await.expect("list")), ["b"]);
    CaseResult::Passed
}

/// Audit records from the writer and from the factory read back in order, with detail.
pub async fn audit_records<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("audited");
    let factory = h.factory();
    let run = begin(&*factory, meta("audited", "wf", "scope", 1)).await;
    let first = AuditRecord::new(Timestamp(1), run_id.clone(), AuditAction::Recovered, "one")
        .with_detail(serde_json::json!({ "tasks": [1, 2] }));
    let second = AuditRecord::new(Timestamp(2), run_id.clone(), AuditAction::TaskReset, "two");
    run.audit(&first).await.expect("audit");
    drop(run);
    factory
        .append_audit(&run_id, &second)
        .await
        .expect("append_audit");
    let read = h.factory().read_audit(&run_id).await.expect("read_audit");
    let ours: Vec<&AuditRecord> = read
        .iter()
        .filter(|r| r.message == "one" || r.message == "two")
        .collect();
    assert_eq!(ours, [&first, &second], "in order, detail intact");
    assert!(
        read.iter().all(|r| r.run_id == run_id),
        "every record names the run"
    );
    CaseResult::Passed
}

/// `complete`/`fail` set the status and are refused on terminal runs.
pub async fn complete_and_fail<H: ConformanceHarness>(h: &H) -> CaseResult {
    let factory = h.factory();
    let done = begin(&*factory, meta("done", "wf", "scope", 1)).await;
    let meta_done = done.complete().await.expect("complete");
    assert_eq!(meta_done.status, RunStatus::Completed);
    assert!(meta_done.finished_at.is_some());
    let err = done.complete().await.expect_err("already completed");
    assert!(
        matches!(
            err,
            Error::Terminal {
                status: RunStatus::Completed,
                ..
            }
        ),
        "{err:?}"
    );
    let err = done
        .fail(&RunError::new("late", "too late"))
        .await
        .expect_err("already completed");
    assert!(matches!(err, Error::Terminal { .. }), "{err:?}");
    drop(done);

    let broken = begin(&*factory, meta("broken", "wf", "scope", 2)).await;
    let error = RunError::new("task_failed", "task 3 failed");
    let meta_failed = broken.fail(&error).await.expect("fail");
    assert_eq!(meta_failed.status, RunStatus::Failed);
    assert_eq!(meta_failed.error, Some(error.clone()));
    assert!(meta_failed.finished_at.is_some());
    drop(broken);

    let other = h.factory();
    let stored = other
        .load_meta(&id("done"))
        .await
        .expect("load_meta")
        .expect("run exists");
    assert_eq!(stored.status, RunStatus::Completed, "completion is stored");
    let stored = other
        .load_meta(&id("broken"))
        .await
        .expect("load_meta")
        .expect("run exists");
    assert_eq!(stored.status, RunStatus::Failed);
    assert_eq!(stored.error, Some(error));
    let reopened = open_existing(&*other, &id("done")).await;
    assert_eq!(reopened.recovered.meta.status, RunStatus::Completed);
    let err = reopened
        .checkpointer
        .complete()
        .await
        .expect_err("terminal after reopen too");
    assert!(matches!(err, Error::Terminal { .. }), "{err:?}");
    CaseResult::Passed
}

/// `list` quarantines (and audits) runs whose metadata has another format version or names
/// another run, instead of hiding them forever; it leaves good runs alone.
pub async fn list_quarantines_unmatchable_metadata<H: ConformanceHarness>(h: &H) -> CaseResult {
    let factory = h.factory();
    drop(begin(&*factory, meta("keep", "wf", "scope", 1)).await);
    drop(begin(&*factory, meta("old-version", "wf", "scope", 2)).await);
    drop(begin(&*factory, meta("not-mine", "wf", "scope", 3)).await);
    if let Damage::Unsupported(reason) = h.plant_version_mismatch(&id("old-version")) {
        return CaseResult::Skipped(reason);
    }
    if let Damage::Unsupported(reason) = h.plant_foreign_run(&id("not-mine"), &id("someone-else")) {
        return CaseResult::Skipped(reason);
    }
    let listed = factory.list(&RunFilter::default()).await.expect("list");
    let names: Vec<&str> = listed.iter().map(|m| m.run_id.as_str()).collect();
    assert_eq!(names, vec!["keep"], "only the sound run is listed");
    for bad in ["old-version", "not-mine"] {
        let opened = factory.open(&id(bad)).await.expect("open after quarantine");
        assert!(opened.is_none(), "{bad} was moved aside by list");
    }
    let again = factory.list(&RunFilter::default()).await.expect("list");
    assert_eq!(again.len(), 1, "quarantined runs stay unlisted");
    assert!(
        factory.open(&id("keep")).await.expect("open").is_some(),
        "the sound run is untouched"
    );
    CaseResult::Passed
}

/// A status swap out of `completed` or `cancelled` is `Terminal` and changes nothing; a swap
/// whose `from` does not match is a conflict value, even on a terminal run.
pub async fn terminal_runs_never_change<H: ConformanceHarness>(h: &H) -> CaseResult {
    let factory = h.factory();
    let done = begin(&*factory, meta("finished", "wf", "scope", 1)).await;
    done.complete().await.expect("complete");
    drop(done);
    let run = id("finished");
    let before = factory
        .load_meta(&run)
        .await
        .expect("load_meta")
        .expect("run exists");
    for to in [RunStatus::Running, RunStatus::Failed, RunStatus::Cancelled] {
        let err = factory
            .compare_and_swap_status(&run, RunStatus::Completed, to)
            .await
            .expect_err("a completed run never changes");
        assert!(
            matches!(
                err,
                Error::Terminal {
                    status: RunStatus::Completed,
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let conflict = factory
        .compare_and_swap_status(&run, RunStatus::Failed, RunStatus::Running)
        .await
        .expect("a mismatched from is not an error")
        .expect_err("and it is a conflict");
    assert_eq!(conflict.current, RunStatus::Completed);
    let cancelled = factory
        .compare_and_swap_status(&run, RunStatus::Cancelled, RunStatus::Running)
        .await
        .expect("no error")
        .expect_err("conflict");
    assert_eq!(cancelled.expected, RunStatus::Cancelled);
    let after = factory
        .load_meta(&run)
        .await
        .expect("load_meta")
        .expect("run exists");
    assert_eq!(
        before, after,
        "refused swaps leave the stored meta untouched"
    );
    CaseResult::Passed
}

/// `begin` of an existing id is `AlreadyExists` and changes nothing.
pub async fn begin_existing_id<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("twice");
    let factory = h.factory();
    let original = meta("twice", "wf", "scope", 1);
    let run = begin(&*factory, original.clone()).await;
    append(&*run, &sample_events(0, 1)).await;
    drop(run);
    let err = h
        .factory()
        .begin(meta("twice", "other", "elsewhere", 5))
        .await
        .expect_err("the id exists");
    assert!(
        matches!(&err, Error::AlreadyExists { run_id: named } if *named == run_id),
        "{err:?}"
    );
    let opened = open_existing(&*factory, &run_id).await;
    assert_eq!(
        opened.recovered.meta, original,
        "the first run is untouched"
    );
    assert_eq!(opened.recovered.events, sample_events(0, 1));
    CaseResult::Passed
}

/// Unknown runs: `open`/`load_meta` find nothing; swaps (with or without an epoch), claims,
/// quarantine, removal and audit records are `NotFound`, and a refused audit record is not
/// stored.
pub async fn unknown_run<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("nobody");
    let factory = h.factory();
    let record = AuditRecord::new(
        Timestamp(1),
        run_id.clone(),
        AuditAction::Discarded,
        "stray",
    );
    let err = factory
        .append_audit(&run_id, &record)
        .await
        .expect_err("unknown run");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(factory.open(&run_id).await.expect("open").is_none());
    assert!(
        factory
            .load_meta(&run_id)
            .await
            .expect("load_meta")
            .is_none()
    );
    assert!(!factory.is_held(&run_id).await.expect("is_held"));
    assert!(
        factory
            .read_audit(&run_id)
            .await
            .expect("read_audit")
            .is_empty()
    );
    let err = factory
        .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Paused)
        .await
        .expect_err("unknown run");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = factory
        .compare_and_swap_status_at(&run_id, RunStatus::Running, 1, RunStatus::Cancelled)
        .await
        .expect_err("unknown run");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = factory
        .claim(&run_id, RunStatus::Running, 1)
        .await
        .expect_err("unknown run");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = factory
        .quarantine(&run_id, "test")
        .await
        .expect_err("unknown run");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = factory
        .remove_terminal(&run_id)
        .await
        .expect_err("unknown run");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(
        factory
            .list(&RunFilter::default())
            .await
            .expect("list")
            .is_empty()
    );
    CaseResult::Passed
}

/// An explicit quarantine moves the run aside and audits it.
pub async fn quarantine_moves_state_aside<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("aside");
    let factory = h.factory();
    let run = begin(&*factory, meta("aside", "wf", "scope", 1)).await;
    append(&*run, &sample_events(0, 3)).await;
    drop(run);
    let moved = factory
        .quarantine(&run_id, "a person asked")
        .await
        .expect("quarantine");
    assert_eq!(moved.run_id, run_id);
    assert!(!moved.location.is_empty(), "quarantine says where");
    check_quarantined(&*h.factory(), &run_id).await;
    factory
        .append_audit(
            &run_id,
            &AuditRecord::new(Timestamp(3), run_id.clone(), AuditAction::Discarded, "late"),
        )
        .await
        .expect("audit of a quarantined run is kept");
    let audit = factory.read_audit(&run_id).await.expect("read_audit");
    assert!(audit.iter().any(|r| r.action == AuditAction::Discarded));
    CaseResult::Passed
}

/// `list_quarantined` names every run moved aside, with where, why, when and the metadata
/// it had (so the resume policy can tell whose progress was lost), across a restart; it lists
/// nothing else and changes nothing.
pub async fn list_quarantined_reports_moved_runs<H: ConformanceHarness>(h: &H) -> CaseResult {
    let factory = h.factory();
    assert_eq!(
        factory.list_quarantined().await.expect("list_quarantined"),
        Vec::new(),
        "a fresh store has quarantined nothing"
    );
    for (run, workflow, scope, created) in [
        ("lost-a", "wf", "s1", 1),
        ("lost-b", "wf2", "s2", 2),
        ("sound", "wf", "s1", 3),
        ("finished", "wf", "s1", 4),
    ] {
        let writer = begin(&*factory, meta(run, workflow, scope, created)).await;
        append(&*writer, &sample_events(0, 2)).await;
        if run == "finished" {
            writer.complete().await.expect("complete");
        }
    }
    factory
        .compare_and_swap_status(&id("lost-b"), RunStatus::Running, RunStatus::Paused)
        .await
        .expect("swap")
        .expect("nothing else moved it");
    let mut moved = Vec::new();
    for (run, reason) in [("lost-a", "first reason"), ("lost-b", "second reason")] {
        let aside = factory
            .quarantine(&id(run), reason)
            .await
            .expect("quarantine");
        moved.push((run, reason, aside.location));
    }
    factory
        .remove_terminal(&id("finished"))
        .await
        .expect("a removed run is not quarantined");

    let restarted = h.factory();
    let listed = restarted
        .list_quarantined()
        .await
        .expect("list_quarantined");
    let names: Vec<&str> = listed.iter().map(|entry| entry.run_id.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        vec!["lost-a", "lost-b"],
        "exactly the moved runs: {listed:?}"
    );
    assert!(
        listed
            .windows(2)
            .all(|pair| (pair[0].at, &pair[0].location) <= (pair[1].at, &pair[1].location)),
        "oldest quarantine first: {listed:?}"
    );
    for (run, reason, location) in &moved {
        let entry = listed
            .iter()
            .find(|entry| entry.run_id.as_str() == *run)
            .expect("listed above");
        assert_eq!(
            &entry.location, location,
            "the location quarantine returned"
        );
        assert!(entry.reason.contains(reason), "{entry:?} says {reason:?}");
        assert!(entry.at > Timestamp(0), "{entry:?} says when");
        let meta = entry.meta.as_ref().expect("sound metadata is reported");
        assert_eq!(meta.run_id.as_str(), *run);
    }
    let lost_a = listed
        .iter()
        .find(|e| e.run_id.as_str() == "lost-a")
        .expect("listed");
    let lost_b = listed
        .iter()
        .find(|e| e.run_id.as_str() == "lost-b")
        .expect("listed");
    let a = lost_a.meta.as_ref().expect("checked above");
    let b = lost_b.meta.as_ref().expect("checked above");
    assert_eq!(
        (a.workflow.as_str(), a.scope.as_str(), a.status),
        ("wf", "s1", RunStatus::Running)
    );
    assert_eq!(
        (b.workflow.as_str(), b.scope.as_str(), b.status),
        ("wf2", "s2", RunStatus::Paused)
    );
    assert_eq!(
        restarted.list_quarantined().await.expect("again"),
        listed,
        "listing changes nothing"
    );
    assert!(restarted.open(&id("lost-a")).await.expect("open").is_none());
    assert!(restarted.open(&id("sound")).await.expect("open").is_some());
    CaseResult::Passed
}

/// Every fallible write, failed by the fault wrapper before or after it reached the
/// adapter, gives `Injected`; a clean factory afterwards still finds every acknowledged event.
pub async fn injected_faults_lose_nothing_acknowledged<H: ConformanceHarness>(h: &H) -> CaseResult {
    let ops = [
        FaultOp::Append,
        FaultOp::InstallSnapshot,
        FaultOp::CompareAndSwap,
        FaultOp::CompareAndSwapAt,
        FaultOp::Claim,
        FaultOp::Begin,
        FaultOp::Audit,
        FaultOp::AppendAudit,
        FaultOp::Complete,
        FaultOp::Fail,
        FaultOp::Open,
        FaultOp::Quarantine,
    ];
    for (index, op) in ops.into_iter().enumerate() {
        for timing in [FaultTiming::Before, FaultTiming::After] {
            let name = format!("fault-{index}-{}", matches!(timing, FaultTiming::After));
            check_fault(h, &name, op, timing).await;
        }
    }
    CaseResult::Passed
}

async fn check_fault<H: ConformanceHarness>(h: &H, name: &str, op: FaultOp, timing: FaultTiming) {
    let run_id = id(name);
    let plan = FaultPlan::new();
    let faulty = FaultyFactory::new(h.factory(), plan.clone());
    let context = format!("fault {op} ({timing:?}) on run {run_id}");
    let injected =
        |err: &Error| matches!(err, Error::Injected { op: named } if *named == op.name());

    if op == FaultOp::Begin {
        plan.fail_next(op, timing);
        let err = faulty
            .begin(meta(name, "wf", "scope", 1))
            .await
            .expect_err(&context);
        assert!(injected(&err), "{context}: {err:?}");
        if timing == FaultTiming::Before {
            assert!(
                h.factory()
                    .load_meta(&run_id)
                    .await
                    .expect("load_meta")
                    .is_none(),
                "{context}: a begin that never ran left nothing"
            );
        }
        return;
    }

    let mut run = faulty
        .begin(meta(name, "wf", "scope", 1))
        .await
        .expect("begin");
    run.append(&sample_events(0, 3)).await.expect("append");
    let mut acknowledged = sample_events(0, 3);
    let mut snapshot = None;
    let result: Result<(), Error> = match op {
        FaultOp::Append => {
            plan.fail_next(op, timing);
            run.append(&sample_events(3, 5)).await
        }
        FaultOp::InstallSnapshot => {
            plan.fail_next(op, timing);
            run.install_snapshot(&sample_snapshot(3)).await
        }
        FaultOp::CompareAndSwap => {
            plan.fail_next(op, timing);
            faulty
                .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Paused)
                .await
                .map(|_| ())
        }
        FaultOp::CompareAndSwapAt => {
            plan.fail_next(op, timing);
            faulty
                .compare_and_swap_status_at(&run_id, RunStatus::Running, 1, RunStatus::Paused)
                .await
                .map(|_| ())
        }
        FaultOp::Claim => {
            // A claim is refused while a writer holds the run, so the writer goes first: the
            // fault, not the lock, must be what keeps a `Before` claim from landing. The
            // later append goes through a writer opened after the claim.
            drop(run);
            plan.fail_next(op, timing);
            let claimed = faulty
                .claim(&run_id, RunStatus::Running, 1)
                .await
                .map(|_| ());
            run = open_existing(&faulty, &run_id).await.checkpointer;
            claimed
        }
        FaultOp::Audit => {
            plan.fail_next(op, timing);
            run.audit(&AuditRecord::new(
                Timestamp(1),
                run_id.clone(),
                AuditAction::Recovered,
                "x",
            ))
            .await
        }
        FaultOp::AppendAudit => {
            plan.fail_next(op, timing);
            faulty
                .append_audit(
                    &run_id,
                    &AuditRecord::new(Timestamp(1), run_id.clone(), AuditAction::Recovered, "x"),
                )
                .await
        }
        FaultOp::Complete => {
            plan.fail_next(op, timing);
            run.complete().await.map(|_| ())
        }
        FaultOp::Fail => {
            plan.fail_next(op, timing);
            run.fail(&RunError::new("injected", "x")).await.map(|_| ())
        }
        FaultOp::Quarantine => {
            // A held run is never moved, so the writer goes first: the fault, not the lock,
            // must be what keeps a `Before` quarantine from moving it.
            drop(run);
            plan.fail_next(op, timing);
            let err = faulty
                .quarantine(&run_id, "injected")
                .await
                .expect_err(&context);
            assert!(injected(&err), "{context}: {err:?}");
            assert_eq!(plan.fired().len(), 1, "{context}: the fault fired once");
            drop(faulty);
            let clean = h.factory();
            let moved = clean
                .list_quarantined()
                .await
                .expect("list_quarantined")
                .iter()
                .any(|entry| entry.run_id == run_id);
            if timing == FaultTiming::Before {
                assert!(!moved, "{context}: a refused quarantine moved nothing");
                let reopened = open_existing(&*clean, &run_id).await;
                assert_eq!(reopened.recovered.events, acknowledged, "{context}");
            } else {
                // `After` lets the move happen and loses only its reply.
                assert!(moved, "{context}: the quarantine happened");
                assert!(
                    clean.open(&run_id).await.expect("open").is_none(),
                    "{context}: the run is gone from where runs are"
                );
            }
            return;
        }
        FaultOp::Open => {
            drop(run);
            plan.fail_next(op, timing);
            let err = faulty.open(&run_id).await.expect_err(&context);
            assert!(injected(&err), "{context}: {err:?}");
            let reopened = open_existing(&faulty, &run_id).await;
            assert_eq!(reopened.recovered.events, acknowledged, "{context}");
            drop(reopened);
            assert_eq!(plan.fired().len(), 1, "{context}: the fault fired once");
            return;
        }
        other => panic!("no scenario for {other}"),
    };
    let err = result.expect_err(&context);
    assert!(injected(&err), "{context}: {err:?}");
    assert_eq!(plan.fired().len(), 1, "{context}: the fault fired once");

    // After a failed call the writer may still be used; what it acknowledges must stick.
    if op == FaultOp::InstallSnapshot && timing == FaultTiming::After {
        // The snapshot may or may not have been installed; either is allowed.
        snapshot = Some(sample_snapshot(3));
    }
    // A run finished (or failed) by the call may refuse further appends.
    let finishes = matches!(op, FaultOp::Complete | FaultOp::Fail);
    if !finishes {
        run.append(&sample_events(10, 11)).await.expect("append");
    }
    drop(run);
    drop(faulty);

    let clean = h.factory();
    let opened = open_existing(&*clean, &run_id).await;
    let recovered = opened.recovered;
    if !finishes {
        acknowledged.extend(sample_events(10, 11));
    }
    match (&recovered.snapshot, &snapshot) {
        (None, _) => {
            let events = &recovered.events;
            // An append that failed after the adapter saw it may have landed; anything
            // acknowledged must be there, in order.
            let landed: Vec<Event> = events
                .iter()
                .filter(|e| !sample_events(3, 5).contains(e))
                .cloned()
                .collect();
            assert_eq!(
                landed, acknowledged,
                "{context}: acknowledged events survive"
            );
            if timing == FaultTiming::Before {
                assert_eq!(
                    events, &acknowledged,
                    "{context}: a refused call wrote nothing"
                );
            }
        }
        (Some(found), Some(expected)) => {
            assert_eq!(found, expected, "{context}");
            assert_eq!(recovered.events, sample_events(10, 11), "{context}");
        }
        (Some(found), None) => panic!("{context}: unexpected snapshot {found:?}"),
    }
    let stored = clean
        .load_meta(&run_id)
        .await
        .expect("load_meta")
        .expect("run exists");
    if timing == FaultTiming::Before {
        assert_eq!(
            stored.status,
            RunStatus::Running,
            "{context}: a refused call changed no status"
        );
        assert_eq!(
            stored.lease_epoch, 1,
            "{context}: a refused call claimed nothing"
        );
    } else {
        // `After` lets the call happen and loses only its reply.
        let expected = match op {
            FaultOp::CompareAndSwap | FaultOp::CompareAndSwapAt => (RunStatus::Paused, 1),
            FaultOp::Claim => (RunStatus::Running, 2),
            FaultOp::Complete => (RunStatus::Completed, 1),
            FaultOp::Fail => (RunStatus::Failed, 1),
            _ => (RunStatus::Running, 1),
        };
        assert_eq!(
            (stored.status, stored.lease_epoch),
            expected,
            "{context}: the call happened, only its reply was lost"
        );
    }
    if matches!(op, FaultOp::Audit | FaultOp::AppendAudit) {
        let audit = clean.read_audit(&run_id).await.expect("read_audit");
        let stored = audit.iter().filter(|record| record.message == "x").count();
        let expected = usize::from(timing == FaultTiming::After);
        assert_eq!(
            stored, expected,
            "{context}: the record is stored once if the call happened, else not at all: {audit:?}"
        );
    }
}
