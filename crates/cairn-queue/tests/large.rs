//! Queues larger than one storage chunk: ids, reads, snapshots and replay stay exact across
//! the boundaries where the queue's task storage grows.

use cairn_queue::{
    EnqueuedBy, Handoff, Outcome, Queue, QueueConfig, Status, TaskId, TaskSpec, Timestamp,
};
use serde_json::json;

/// Several storage chunks and a partial one, so every boundary case is crossed.
const TASKS: u64 = 3 * 1024 + 17;

fn chain(len: u64) -> Queue {
    let mut q = Queue::new(QueueConfig::default());
    let mut previous = None;
    for n in 0..len {
        let spec = TaskSpec::new("step")
            .inputs(json!({ "n": n }))
            .depends_on(previous);
        let enqueued = q.enqueue(spec, EnqueuedBy::Root, Timestamp(n)).unwrap();
        assert_eq!(enqueued.id, TaskId(n), "ids are dense across chunks");
        previous = Some(enqueued.id);
    }
    q
}

#[test]
fn every_task_is_readable_by_id_and_in_order_across_chunks() {
    let q = chain(TASKS);
    assert_eq!(q.len() as u64, TASKS);
    for n in 0..TASKS {
        let task = q.get(TaskId(n)).expect("task exists");
        assert_eq!(task.id, TaskId(n));
        assert_eq!(task.inputs, json!({ "n": n }));
    }
    assert!(
        q.get(TaskId(TASKS)).is_none(),
        "one past the end is unknown"
    );
    let ids: Vec<u64> = q.tasks().map(|task| task.id.0).collect();
    assert_eq!(ids, (0..TASKS).collect::<Vec<_>>());
}

#[test]
fn a_long_chain_drains_and_replays_to_the_same_state() {
    let mut q = chain(TASKS);
    let mut events = q.take_events();
    let mut finished = 0;
    loop {
        let ready = q.next_runnable(Timestamp(0));
        if ready.is_empty() {
            break;
        }
        assert_eq!(ready.len(), 1, "a chain has one runnable task at a time");
        q.start(ready[0], Timestamp(1)).unwrap();
        q.complete(ready[0], Handoff::default(), Timestamp(2))
            .unwrap();
        finished += 1;
        // The dedup guard still finds tasks in every chunk.
        let again = q
            .enqueue(
                TaskSpec::new("step").inputs(json!({ "n": ready[0].0 })),
                EnqueuedBy::Root,
                Timestamp(3),
            )
            .unwrap();
        assert!(again.existing);
        assert_eq!(again.id, ready[0]);
    }
    assert_eq!(finished, TASKS);
    assert_eq!(q.outcome(), Some(Outcome::Completed));
    assert_eq!(q.counts().of(Status::Done) as u64, TASKS);
    events.extend(q.take_events());

    let replayed = Queue::replay(None, &events, QueueConfig::default()).unwrap();
    assert_eq!(replayed.snapshot(), q.snapshot());
    let restored = Queue::from_snapshot(q.snapshot(), QueueConfig::default()).unwrap();
    assert_eq!(restored.snapshot(), q.snapshot());
    assert_eq!(restored.snapshot().tasks.len() as u64, TASKS);
}

#[test]
fn a_wide_graph_lists_every_released_task_in_id_order() {
    let mut q = Queue::new(QueueConfig::default());
    let root = q
        .enqueue(TaskSpec::new("root"), EnqueuedBy::Root, Timestamp(0))
        .unwrap()
        .id;
    for n in 1..TASKS * 4 {
        let spec = TaskSpec::new("leaf").inputs(json!(n)).depends_on([root]);
        q.enqueue(spec, EnqueuedBy::Root, Timestamp(0)).unwrap();
    }
    assert_eq!(q.next_runnable(Timestamp(0)), vec![root]);
    q.start(root, Timestamp(0)).unwrap();
    q.complete(root, Handoff::default(), Timestamp(0)).unwrap();
    let ready = q.next_runnable(Timestamp(0));
    assert_eq!(ready, (1..TASKS * 4).map(TaskId).collect::<Vec<_>>());
    // Starting every other task removes exactly those from the due list.
    for id in ready.iter().step_by(2) {
        q.start(*id, Timestamp(0)).unwrap();
    }
    let rest: Vec<TaskId> = ready.iter().skip(1).step_by(2).copied().collect();
    assert_eq!(q.next_runnable(Timestamp(0)), rest);
}
