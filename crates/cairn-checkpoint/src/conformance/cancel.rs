//! The conformance cases of cancel safety: a call whose future is dropped before it resolves
//! (a `tokio::time::timeout`, a `select!` branch that lost, a task aborted at shutdown) is not
//! acknowledged, but it leaves the store whole and the writer usable.
//!
//! Each case drops calls at several points, from "never polled" to "polled until it was
//! nearly done", with acknowledged calls in between, and then checks what reads back. A
//! dropped call may have happened or not, and an adapter may finish it in the background
//! after the drop; what the cases check holds either way.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use cairn_queue::{Event, Snapshot, Timestamp};

use super::CaseResult;
use super::ConformanceHarness;
use super::cases::{append, begin, sample_events, sample_snapshot};
use crate::audit::{AuditAction, AuditRecord};
use crate::meta::{RunId, RunMeta, RunStatus};
use crate::port::{Checkpointer, CheckpointerFactory, Opened};

/// Where each round drops its call: how many times the future is polled first (0 drops it
/// unpolled), and how long the case waits between polls, so that an adapter's background
/// work is caught at different stages.
pub(crate) const DROP_POINTS: &[(usize, Duration)] = &[
    (0, Duration::ZERO),
    (1, Duration::ZERO),
    (1, Duration::ZERO),
    (2, Duration::ZERO),
    (2, Duration::from_micros(50)),
    (3, Duration::from_micros(200)),
    (4, Duration::from_millis(1)),
    (1, Duration::ZERO),
    (6, Duration::from_millis(2)),
    (1, Duration::ZERO),
];

/// How often a case looks again for background work to settle (a released lock).
const SETTLE_POLL: Duration = Duration::from_millis(5);

/// How many looks before a case gives up on background work settling.
const SETTLE_LOOKS: usize = 2_000;

fn id(text: &str) -> RunId {
    RunId::new(text).expect("conformance run ids are valid")
}

fn meta(run: &str) -> RunMeta {
    RunMeta::new(
        id(run),
        "cancel",
        "scope",
        format!("input of {run}"),
        Timestamp(1),
    )
}

/// Polls `future` up to `polls` times, pausing `pause` between polls, and drops it unless
/// it resolved first. Returns its output if it resolved.
pub(crate) async fn poll_then_drop<T>(
    future: impl Future<Output = T>,
    polls: usize,
    pause: Duration,
) -> Option<T> {
    let mut future = pin!(future);
    for poll in 0..polls {
        if poll > 0 {
            if pause.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(pause).await;
            }
        }
        // The case polls again itself, so the future's wake-ups are not needed.
        let mut cx = Context::from_waker(Waker::noop());
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return Some(output);
        }
    }
    None
}

/// Opens `run_id` once no writer holds it any more: a dropped `begin`, or work an adapter
/// finishes after a drop, may hold the lock for a moment.
async fn open_when_released(factory: &dyn CheckpointerFactory, run_id: &RunId) -> Option<Opened> {
    for _ in 0..SETTLE_LOOKS {
        match factory.open(run_id).await {
            Ok(opened) => return opened,
            Err(crate::Error::Locked { .. }) => tokio::time::sleep(SETTLE_POLL).await,
            Err(err) => panic!("open of run {run_id} failed: {err:?}"),
        }
    }
    panic!("run {run_id} stayed locked after every writer and every dropped call was gone")
}

/// One call in a case's history, in the order the case made it.
#[derive(Debug, Clone)]
enum Call {
    /// An append of these events; `acked` when it returned `Ok`.
    Append { events: Vec<Event>, acked: bool },
    /// An install of the snapshot with this marker; `acked` when it returned `Ok`.
    Install { marker: u32, acked: bool },
}

/// The calls a case has made, and the first sample event no append has used yet.
#[derive(Debug, Default)]
struct History {
    calls: Vec<Call>,
    next: u64,
}

impl History {
    /// The next `count` sample events, each used once across the case.
    fn take_events(&mut self, count: u64) -> Vec<Event> {
        let events = sample_events(self.next, self.next + count);
        self.next += count;
        events
    }

    /// Appends the next `count` sample events and records the acknowledged append.
    async fn append_acked(&mut self, run: &dyn Checkpointer, count: u64) {
        let events = self.take_events(count);
        append(run, &events).await;
        self.calls.push(Call::Append {
            events,
            acked: true,
        });
    }

    /// Checks what the writer's own `load` reads back against the calls made.
    async fn check_writer_load(&self, run: &dyn Checkpointer, after: &str) {
        let loaded = run
            .load()
            .await
            .unwrap_or_else(|err| panic!("load after {after} failed: {err:?}"));
        check_state(
            &self.calls,
            loaded.snapshot.as_ref(),
            &loaded.events,
            "the writer's load",
        );
    }
}

/// Checks a read-back state against the calls made: the snapshot is the latest acknowledged
/// one or a dropped install made after it, and the events are whole appends made after that
/// snapshot's install, in order, every acknowledged one among them.
fn check_state(history: &[Call], snapshot: Option<&Snapshot>, events: &[Event], read: &str) {
    let from = match snapshot {
        None => 0,
        Some(found) => {
            let installed = |call: &Call| match call {
                Call::Install { marker, .. } => sample_snapshot(*marker) == *found,
                Call::Append { .. } => false,
            };
            let at = history.iter().rposition(installed);
            match at {
                Some(at) => at + 1,
                None => panic!("{read}: read back a snapshot no call installed: {found:?}"),
            }
        }
    };
    if let Some(lost) = history[from..]
        .iter()
        .find(|call| matches!(call, Call::Install { acked: true, .. }))
    {
        panic!(
            "{read}: an acknowledged install ({lost:?}) was lost; the snapshot read back is \
             {snapshot:?}"
        );
    }
    let mut at = 0;
    for call in &history[from..] {
        let Call::Append {
            events: appended,
            acked,
        } = call
        else {
            continue;
        };
        if events[at..].starts_with(appended) {
            at += appended.len();
        } else if *acked {
            panic!(
                "{read}: an acknowledged append is missing or out of order: expected {appended:?} \
                 at event {at}, read back {:?}",
                &events[at..]
            );
        }
    }
    assert!(
        at == events.len(),
        "{read}: events that are not one whole append each, in call order: {:?} (every event \
         read back: {events:?}; calls: {history:?})",
        &events[at..]
    );
}

/// Whether a call that may have been dropped (`None`) was acknowledged; an error fails the
/// case, naming `what` was called on which run.
fn acknowledged(outcome: Option<crate::Result<()>>, what: &str, run_id: &RunId) -> bool {
    match outcome {
        Some(Ok(())) => true,
        Some(Err(err)) => panic!("{what} run {run_id} failed: {err:?}"),
        None => false,
    }
}

/// Reopens `run_id` through a new factory, once no writer holds it, and checks what it reads
/// back against the calls made (`check_state`).
async fn check_reopened<H: ConformanceHarness>(h: &H, run_id: &RunId, history: &[Call]) {
    let reopened = open_when_released(&*h.factory(), run_id)
        .await
        .expect("the run was begun");
    let recovered = &reopened.recovered;
    check_state(
        history,
        recovered.snapshot.as_ref(),
        &recovered.events,
        "a reopen",
    );
}

/// Appends dropped part-way land whole or not at all, in call order; acknowledged appends
/// made after them all land; the writer keeps working. Checked through the writer's `load`
/// and through a reopen.
pub async fn dropped_appends_are_whole_or_absent<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("dropped-appends");
    let factory = h.factory();
    let run = begin(&*factory, meta("dropped-appends")).await;
    let mut history = History::default();
    for &(polls, pause) in DROP_POINTS {
        let events = history.take_events(3);
        let outcome = poll_then_drop(run.append(&events), polls, pause).await;
        let acked = acknowledged(outcome, "append to", &run_id);
        history.calls.push(Call::Append { events, acked });
        // The writer stays usable after the drop.
        history.append_acked(&*run, 1).await;
    }
    history.check_writer_load(&*run, "dropped appends").await;
    drop(run);
    check_reopened(h, &run_id, &history.calls).await;
    CaseResult::Passed
}

/// Snapshot installs dropped part-way leave the state as it was before them or as they set
/// it, never a snapshot that swallowed an append made after the install was called: each
/// round drops an install and then appends (acknowledged) at once.
pub async fn dropped_installs_keep_later_appends<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("dropped-installs");
    let factory = h.factory();
    let run = begin(&*factory, meta("dropped-installs")).await;
    let mut history = History::default();
    for (round, &(polls, pause)) in DROP_POINTS.iter().enumerate() {
        history.append_acked(&*run, 2).await;
        let marker = 100 + round as u32;
        let outcome =
            poll_then_drop(run.install_snapshot(&sample_snapshot(marker)), polls, pause).await;
        let acked = acknowledged(outcome, "install_snapshot on", &run_id);
        history.calls.push(Call::Install { marker, acked });
        // Called right after the drop, while an adapter may still be installing in the
        // background: these events come after the snapshot and must stay after it.
        history.append_acked(&*run, 1).await;
        history.check_writer_load(&*run, "a dropped install").await;
    }
    drop(run);
    check_reopened(h, &run_id, &history.calls).await;
    CaseResult::Passed
}

/// Audit records written through the writer or the factory and dropped part-way are whole
/// or absent; acknowledged ones are all there, in order.
pub async fn dropped_audits_are_whole_or_absent<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("dropped-audits");
    let factory = h.factory();
    let run = begin(&*factory, meta("dropped-audits")).await;
    let record = |n: usize| {
        AuditRecord::new(
            Timestamp(n as u64),
            run_id.clone(),
            AuditAction::Recovered,
            format!("{RECORD_PREFIX}{n}"),
        )
    };
    let mut written: Vec<(AuditRecord, bool)> = Vec::new();
    for (round, &(polls, pause)) in DROP_POINTS.iter().enumerate() {
        let dropped = record(2 * round);
        // Alternate the writer's `audit` and the factory's `append_audit`.
        let outcome = if round % 2 == 0 {
            poll_then_drop(run.audit(&dropped), polls, pause).await
        } else {
            poll_then_drop(factory.append_audit(&run_id, &dropped), polls, pause).await
        };
        let acked = acknowledged(outcome, "audit of", &run_id);
        written.push((dropped, acked));
        let kept = record(2 * round + 1);
        run.audit(&kept)
            .await
            .unwrap_or_else(|err| panic!("audit of run {run_id} failed: {err:?}"));
        written.push((kept, true));
    }
    drop(run);
    // Let work finished in the background land before reading.
    drop(open_when_released(&*h.factory(), &run_id).await);
    let read: Vec<AuditRecord> = h
        .factory()
        .read_audit(&run_id)
        .await
        .expect("read_audit")
        .into_iter()
        .filter(|r| r.message.starts_with(RECORD_PREFIX))
        .collect();
    // A dropped record may land after records written later (an adapter may finish it in
    // the background), so only the acknowledged ones are held to call order.
    let mut seen = std::collections::BTreeSet::new();
    for found in &read {
        let n = written
            .iter()
            .position(|(record, _)| record == found)
            .unwrap_or_else(|| panic!("an audit record no call wrote whole: {found:?}"));
        assert!(seen.insert(n), "audit record {found:?} was written twice");
    }
    let acked: Vec<&AuditRecord> = written
        .iter()
        .filter(|(_, acked)| *acked)
        .map(|(record, _)| record)
        .collect();
    let acked_read: Vec<&AuditRecord> = read.iter().filter(|r| acked.contains(r)).collect();
    assert_eq!(
        acked_read, acked,
        "every acknowledged audit record reads back, in call order"
    );
    CaseResult::Passed
}

/// What every audit record of the audit case starts with.
const RECORD_PREFIX: &str = "cancel case record ";

/// A claim dropped part-way wins or changes nothing, whenever it ends: racing it with an
/// acknowledged claim at the same epoch, exactly one of the two moves the epoch.
pub async fn dropped_claims_win_at_most_once<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("dropped-claims");
    let factory = h.factory();
    drop(begin(&*factory, meta("dropped-claims")).await);
    // A dropped writer may release its lock in the background.
    drop(open_when_released(&*factory, &run_id).await);
    let stored = |label: &'static str| {
        let factory = &factory;
        let run_id = &run_id;
        async move {
            factory
                .load_meta(run_id)
                .await
                .unwrap_or_else(|err| panic!("load_meta {label}: {err:?}"))
                .unwrap_or_else(|| panic!("run {run_id} vanished {label}"))
        }
    };
    for &(polls, pause) in DROP_POINTS {
        let before = stored("before a round").await;
        assert_eq!(before.status, RunStatus::Running);
        let failed = factory
            .compare_and_swap_status(&run_id, RunStatus::Running, RunStatus::Failed)
            .await
            .expect("swap running → failed")
            .expect("no one else moves the run");
        let epoch = failed.lease_epoch;
        let dropped = poll_then_drop(
            factory.claim(&run_id, RunStatus::Failed, epoch),
            polls,
            pause,
        )
        .await;
        let dropped_won = match dropped {
            Some(Ok(Ok(claimed))) => {
                assert_eq!(claimed.lease_epoch, epoch + 1);
                true
            }
            Some(Ok(Err(conflict))) => panic!("a lone claim lost: {conflict:?}"),
            Some(Err(err)) => panic!("claim of run {run_id} failed: {err:?}"),
            None => false,
        };
        let acked = factory
            .claim(&run_id, RunStatus::Failed, epoch)
            .await
            .unwrap_or_else(|err| panic!("claim of run {run_id} failed: {err:?}"));
        match acked {
            Ok(claimed) => {
                assert!(!dropped_won, "two claims at epoch {epoch} both won");
                assert_eq!(claimed.lease_epoch, epoch + 1);
            }
            // The dropped claim won, before the acknowledged one or in the background.
            Err(conflict) => {
                assert_eq!(conflict.current_epoch, epoch + 1, "{conflict:?}");
                assert_eq!(conflict.current, RunStatus::Running, "{conflict:?}");
            }
        }
        // Whenever the dropped claim ends, it can no longer move the epoch.
        let after = stored("after a round").await;
        assert_eq!(
            (after.status, after.lease_epoch),
            (RunStatus::Running, epoch + 1),
            "exactly one claim at epoch {epoch} won"
        );
    }
    CaseResult::Passed
}

/// A `begin` dropped part-way leaves the run begun or not at all, and never locked for good:
/// the run then opens (begun) or begins again (not begun).
pub async fn dropped_begins_leave_no_lock<H: ConformanceHarness>(h: &H) -> CaseResult {
    let factory = h.factory();
    for (round, &(polls, pause)) in DROP_POINTS.iter().enumerate() {
        let name = format!("dropped-begin-{round}");
        let run_id = id(&name);
        let outcome = poll_then_drop(factory.begin(meta(&name)), polls, pause).await;
        if let Some(result) = outcome {
            drop(result.unwrap_or_else(|err| panic!("begin of run {run_id} failed: {err:?}")));
        }
        // Open the run if the dropped begin made it, or begin it now if not; a begin that
        // finishes in the background can make it between the two, so look again then.
        let mut looks = 0;
        let run = loop {
            looks += 1;
            assert!(
                looks <= SETTLE_LOOKS,
                "run {run_id} neither opens nor begins"
            );
            if let Some(opened) = open_when_released(&*factory, &run_id).await {
                assert_eq!(
                    opened.recovered.meta,
                    meta(&name),
                    "a dropped begin stores its metadata whole"
                );
                assert!(opened.recovered.events.is_empty());
                break opened.checkpointer;
            }
            match factory.begin(meta(&name)).await {
                Ok(run) => break run,
                Err(crate::Error::AlreadyExists { .. } | crate::Error::Locked { .. }) => {
                    tokio::time::sleep(SETTLE_POLL).await;
                }
                Err(err) => panic!("begin of run {run_id} failed: {err:?}"),
            }
        };
        append(&*run, &sample_events(0, 1)).await;
    }
    CaseResult::Passed
}
