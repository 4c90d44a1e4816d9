//! The conformance cases at the edges of what the port accepts: values larger than a store
//! may frame. Whatever an adapter's limits, an acknowledged value reads back after a
//! reopen, and a refused one is `Encoding` and leaves nothing behind.

use cairn_queue::{EnqueuedBy, Event, Queue, QueueConfig, Snapshot, TaskId, Timestamp};

use super::cases::{append, begin, id, meta, sample_event, sample_events};
use super::{CaseResult, ConformanceHarness};
use crate::error::Error;
use crate::port::{CheckpointerFactory, Recovered};

/// Bytes of text in the huge event: above 256 MiB, a power of two that a store is likely
/// to pick as its largest record, and well below 4 GiB, so every adapter can hold it in
/// memory.
const HUGE_TEXT_LEN: usize = 257 * 1024 * 1024;

/// Task `n` enqueued with `text_len` bytes of text in its inputs.
fn event_with_text(n: u64, text_len: usize) -> Event {
    Event::Enqueued {
        id: TaskId(n),
        kind: "huge".to_owned(),
        inputs: serde_json::json!({ "text": "x".repeat(text_len) }),
        depends_on: Vec::new(),
        max_attempts: 1,
        enqueued_by: EnqueuedBy::Root,
        dedup: false,
        at: Timestamp(1_000 + n),
    }
}

/// The queue `recovered` rebuilds, as a snapshot. An adapter may compact on its own, so the
/// events alone need not be every event acknowledged.
fn state_of(recovered: &Recovered) -> Snapshot {
    recovered
        .queue(&QueueConfig::default())
        .unwrap_or_else(|err| panic!("the recovered state does not replay: {err:?}"))
        .snapshot()
}

/// The queue `events` build from nothing, as a snapshot.
fn state_after(events: &[Event]) -> Snapshot {
    Queue::replay(None, events, QueueConfig::default())
        .expect("the case's events replay")
        .snapshot()
}

/// An event larger than 256 MiB is either acknowledged, and then read back whole after a
/// restart with the events around it, or refused with `Encoding`: nothing of it is stored,
/// the writer stays usable, and the events after it read back in place. Anything else (an
/// acknowledged event that a reopen cuts as torn, or calls corruption) loses work the caller
/// was told is durable.
pub async fn huge_events_read_back_or_are_refused<H: ConformanceHarness>(h: &H) -> CaseResult {
    let run_id = id("huge-event");
    let huge = event_with_text(2, HUGE_TEXT_LEN);
    let expected = {
        let factory = h.factory();
        let run = begin(&*factory, meta("huge-event", "wf", "scope", 1)).await;
        append(&*run, &sample_events(0, 2)).await;
        let expected = match run.append(std::slice::from_ref(&huge)).await {
            Ok(()) => {
                // The event after the huge one takes the next task id.
                append(&*run, &[sample_event(3)]).await;
                vec![sample_event(0), sample_event(1), huge, sample_event(3)]
            }
            Err(Error::Encoding { .. }) => {
                // Refused: the writer goes on, and task 2 is still free.
                append(&*run, &[sample_event(2)]).await;
                sample_events(0, 3)
            }
            Err(err) => panic!("append of a huge event gave {err:?}, not Ok or Encoding"),
        };
        let loaded = run.load().await.expect("load after the huge append");
        assert!(
            state_of(&loaded) == state_after(&expected),
            "the writer reads back {} events (snapshot: {}), not the {} it was told are stored",
            loaded.events.len(),
            loaded.snapshot.is_some(),
            expected.len()
        );
        expected
    };
    let factory: std::sync::Arc<dyn CheckpointerFactory> = h.factory();
    let opened = match factory.open(&run_id).await {
        Ok(Some(opened)) => opened,
        Ok(None) => panic!("run {run_id} is gone after a restart"),
        Err(err) => panic!("open after a huge append failed: {err:?}"),
    };
    assert_eq!(
        opened.recovered.torn_tail, None,
        "nothing acknowledged is cut as torn"
    );
    // Compared without `assert_eq!`, which would print hundreds of megabytes.
    assert!(
        state_of(&opened.recovered) == state_after(&expected),
        "a restart reads back {} events (snapshot: {}), not the {} acknowledged",
        opened.recovered.events.len(),
        opened.recovered.snapshot.is_some(),
        expected.len()
    );
    CaseResult::Passed
}
