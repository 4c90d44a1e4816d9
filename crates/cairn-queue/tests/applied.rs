//! Property test: random events handed straight to `Queue::apply`, as a damaged or foreign
//! journal (or one from an older build) would hand them, not only those the operations emit.
//!
//! `tests/model.rs` drives the operations, so every event it replays is one an operation
//! built. Here most events are refused; after every one that is accepted, the state must be
//! one `Queue::from_snapshot` accepts, and the restored queue must answer every question and
//! every operation as the live one does: replay of a snapshot plus later events may follow
//! either. Inputs come from a small set, so tasks that share a guarded key (which only an
//! older build's journal holds) come up often.

use cairn_queue::{
    EnqueuedBy, Event, Handoff, Queue, QueueConfig, TaskError, TaskId, TaskSpec, Timestamp,
};
use proptest::prelude::*;
use serde_json::{Value, json};

/// The inputs an event or a probe may carry; two of them are one key for the guard.
fn inputs(n: u8) -> Value {
    match n % 4 {
        0 => json!({ "a": 1, "b": 2 }),
        1 => serde_json::from_str(r#"{ "b": 2, "a": 1 }"#).unwrap(),
        2 => json!([1]),
        _ => Value::Null,
    }
}

fn kind(n: u8) -> &'static str {
    ["fetch", "parse"][usize::from(n % 2)]
}

/// One raw event. `next` asks for the queue's next id, which an `Enqueued` needs to fit.
#[derive(Debug, Clone)]
enum Raw {
    Enqueued {
        next: bool,
        id: u64,
        kind: u8,
        inputs: u8,
        deps: Vec<u64>,
        parent: Option<u64>,
        attempts: u32,
        dedup: bool,
    },
    Started(u64, u32, u64),
    Completed(u64, u32),
    Skipped(u64, u32),
    Failed(u64, u32, Option<u64>),
    Reset(u64),
    Released(u64, u32),
    Retried(u64),
    Amended(u64, u8, u32),
    Phase(bool, u32, u8),
}

fn raw() -> impl Strategy<Value = Raw> {
    let id = 0u64..8;
    let attempt = 0u32..4;
    prop_oneof![
        4 => (
            prop::bool::weighted(0.9),
            id.clone(),
            any::<u8>(),
            any::<u8>(),
            prop::collection::vec(id.clone(), 0..3),
            prop::option::weighted(0.2, id.clone()),
            attempt.clone(),
            prop::bool::weighted(0.8),
        )
            .prop_map(|(next, id, kind, inputs, deps, parent, attempts, dedup)| {
                Raw::Enqueued { next, id, kind, inputs, deps, parent, attempts, dedup }
            }),
        4 => (id.clone(), attempt.clone(), 0u64..20).prop_map(|(i, a, at)| Raw::Started(i, a, at)),
        3 => (id.clone(), attempt.clone()).prop_map(|(i, a)| Raw::Completed(i, a)),
        1 => (id.clone(), attempt.clone()).prop_map(|(i, a)| Raw::Skipped(i, a)),
        2 => (id.clone(), attempt.clone(), prop::option::of(0u64..20))
            .prop_map(|(i, a, retry)| Raw::Failed(i, a, retry)),
        1 => id.clone().prop_map(Raw::Reset),
        1 => (id.clone(), attempt.clone()).prop_map(|(i, a)| Raw::Released(i, a)),
        1 => id.clone().prop_map(Raw::Retried),
        2 => (id.clone(), any::<u8>(), 0u32..5).prop_map(|(i, n, a)| Raw::Amended(i, n, a)),
        1 => (any::<bool>(), 0u32..3, any::<u8>()).prop_map(|(done, i, n)| Raw::Phase(done, i, n)),
    ]
}

fn event(raw: &Raw, next_id: u64) -> Event {
    let at = Timestamp(5);
    match raw {
        Raw::Enqueued {
            next,
            id,
            kind: k,
            inputs: n,
            deps,
            parent,
            attempts,
            dedup,
        } => {
            let id = if *next { next_id } else { *id };
            let mut depends_on: Vec<TaskId> = Vec::new();
            for dep in deps.iter().map(|d| TaskId(*d)) {
                if !depends_on.contains(&dep) {
                    depends_on.push(dep);
                }
            }
            Event::Enqueued {
                id: TaskId(id),
                kind: kind(*k).to_owned(),
                inputs: inputs(*n),
                depends_on,
                max_attempts: *attempts,
                enqueued_by: parent.map_or(EnqueuedBy::Root, |p| EnqueuedBy::Task(TaskId(p))),
                dedup: *dedup,
                at,
            }
        }
        Raw::Started(id, attempt, at) => Event::Started {
            id: TaskId(*id),
            attempt: *attempt,
            at: Timestamp(*at),
        },
        Raw::Completed(id, attempt) => Event::Completed {
            id: TaskId(*id),
            attempt: *attempt,
            handoff: Handoff::default(),
            at,
        },
        Raw::Skipped(id, attempt) => Event::Skipped {
            id: TaskId(*id),
            attempt: *attempt,
            handoff: Handoff {
                next_note: Some("nothing to do".to_owned()),
                ..Handoff::default()
            },
            at,
        },
        Raw::Failed(id, attempt, retry) => Event::Failed {
            id: TaskId(*id),
            attempt: *attempt,
            error: TaskError::new("test", "injected"),
            retry_at: retry.map(Timestamp),
            at,
        },
        Raw::Reset(id) => Event::Reset {
            id: TaskId(*id),
            at,
        },
        Raw::Released(id, attempt) => Event::Released {
            id: TaskId(*id),
            attempt: *attempt,
            at,
        },
        Raw::Retried(id) => Event::Retried {
            id: TaskId(*id),
            at,
        },
        Raw::Amended(id, n, max_attempts) => Event::Amended {
            id: TaskId(*id),
            inputs: inputs(*n),
            max_attempts: *max_attempts,
            at,
        },
        Raw::Phase(done, index, n) => {
            let name = ["build", "test"][usize::from(n % 2)].to_owned();
            if *done {
                Event::PhaseCompleted {
                    index: *index,
                    name,
                }
            } else {
                Event::PhaseStarted {
                    index: *index,
                    name,
                }
            }
        }
    }
}

/// Everything a reader sees, and what each operation answers on a copy.
fn answers(q: &Queue) -> Vec<String> {
    let mut out = vec![
        format!("{:?}", q.snapshot()),
        format!("{:?}", q.counts()),
        format!("{:?}", q.counts_by_kind()),
        format!("{:?}", q.outcome()),
        format!("{:?}", q.next_wakeup()),
    ];
    for now in [0, 5, 10, 19, u64::MAX] {
        out.push(format!("{:?}", q.next_runnable(Timestamp(now))));
    }
    let ids = (0..q.len() as u64 + 1).map(TaskId);
    for id in ids {
        let mut copy = q.clone();
        out.push(format!("start {id}: {:?}", copy.start(id, Timestamp(10))));
        out.push(format!(
            "then complete: {:?}",
            copy.complete(id, Handoff::default(), Timestamp(11))
        ));
        out.push(format!("then: {:?}", copy.next_runnable(Timestamp(11))));
        let mut copy = q.clone();
        out.push(format!("retry {id}: {:?}", copy.retry(id, Timestamp(10))));
        out.push(format!("then: {:?}", copy.snapshot()));
        for n in 0..4 {
            let mut copy = q.clone();
            let amended = copy.amend(id, inputs(n), None, Timestamp(10));
            out.push(format!("amend {id} to {n}: {amended:?}"));
        }
    }
    for k in 0..2 {
        for n in 0..4 {
            let mut copy = q.clone();
            let spec = TaskSpec::new(kind(k)).inputs(inputs(n));
            out.push(format!(
                "enqueue: {:?}",
                copy.enqueue(spec, EnqueuedBy::Root, Timestamp(10))
            ));
        }
    }
    let mut copy = q.clone();
    out.push(format!("recover: {:?}", copy.recover(Timestamp(10))));
    out.push(format!("then: {:?}", copy.snapshot()));
    out
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn an_applied_event_leaves_a_state_that_restores_and_behaves_the_same(
        raws in prop::collection::vec(raw(), 1..40),
    ) {
        let mut q = Queue::new(QueueConfig::default());
        let mut applied: Vec<Event> = Vec::new();
        for raw in &raws {
            let event = event(raw, q.len() as u64);
            let before = q.snapshot();
            if q.apply(&event).is_err() {
                prop_assert_eq!(&q.snapshot(), &before, "a refused {:?} changed state", event);
                continue;
            }
            prop_assert!(q.events().is_empty(), "apply filled the outbox");
            applied.push(event.clone());
            let restored = Queue::from_snapshot(q.snapshot(), QueueConfig::default());
            let restored = match restored {
                Ok(restored) => restored,
                Err(err) => {
                    return Err(TestCaseError::fail(format!("{err} after applying {event:?}")));
                }
            };
            let replayed = Queue::replay(None, &applied, QueueConfig::default()).unwrap();
            let live = answers(&q);
            prop_assert_eq!(&answers(&restored), &live, "restored after {:?}", event);
            prop_assert_eq!(&answers(&replayed), &live, "replayed after {:?}", event);
        }
    }
}
