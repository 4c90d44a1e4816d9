//! `Recovered::queue` rebuilds a run's task table from what the store read back (snapshot
//! plus later events), and names the run when that state does not replay.

use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, Recovered, RunId, RunMeta};
use cairn_queue::{EnqueuedBy, Handoff, Queue, QueueConfig, Status, TaskSpec, Timestamp};

fn meta(id: &str) -> RunMeta {
    RunMeta::new(
        RunId::new(id).expect("valid id"),
        "wf",
        "scope",
        "",
        Timestamp(1),
    )
}

#[tokio::test]
async fn a_peeked_run_rebuilds_the_queue_its_writer_had_from_snapshot_and_later_events() {
    let store = MemoryFactory::new();
    let run = store.begin(meta("r1")).await.unwrap();
    let mut queue = Queue::new(QueueConfig::default());
    let first = queue
        .enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(2))
        .unwrap()
        .id;
    let second = queue
        .enqueue(
            TaskSpec::new("store").depends_on([first]),
            EnqueuedBy::Root,
            Timestamp(2),
        )
        .unwrap()
        .id;
    queue.start(first, Timestamp(3)).unwrap();
    run.append(&queue.take_events()).await.unwrap();
    run.install_snapshot(&queue.snapshot()).await.unwrap();
    // After the snapshot: the first task completes, the second starts.
    queue
        .complete(first, Handoff::default(), Timestamp(4))
        .unwrap();
    queue.start(second, Timestamp(5)).unwrap();
    run.append(&queue.take_events()).await.unwrap();

    let run_id = run.run_id().clone();
    // A read waits for no writer: the writer is gone, as after the process ended.
    drop(run);
    let recovered = store.peek(&run_id).await.unwrap().expect("the run");
    assert!(recovered.snapshot.is_some(), "the snapshot is part of it");
    assert!(!recovered.events.is_empty(), "so are the events after it");
    let rebuilt = recovered.queue(&QueueConfig::default()).unwrap();
    assert_eq!(rebuilt.snapshot(), queue.snapshot());
    assert_eq!(rebuilt.get(first).unwrap().status, Status::Done);
    assert_eq!(rebuilt.get(second).unwrap().status, Status::Running);

    // Bounds are not checked by replay: a queue allowed one task still rebuilds two.
    let tight = QueueConfig {
        max_tasks: 1,
        ..QueueConfig::default()
    };
    let rebuilt = recovered.queue(&tight).unwrap();
    assert_eq!(rebuilt.snapshot(), queue.snapshot());
    assert_eq!(rebuilt.config(), &tight);
}

#[test]
fn state_that_does_not_replay_is_a_replay_error_naming_the_run() {
    let mut queue = Queue::new(QueueConfig::default());
    let id = queue
        .enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(2))
        .unwrap()
        .id;
    queue.start(id, Timestamp(3)).unwrap();
    let events = queue.take_events();
    // The `Started` event without the `Enqueued` before it names a task that does not exist.
    let recovered = Recovered {
        meta: meta("broken"),
        snapshot: None,
        events: events[1..].to_vec(),
        torn_tail: None,
    };
    let err = recovered
        .queue(&QueueConfig::default())
        .expect_err("does not replay");
    let Error::Replay { run_id, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(run_id.as_str(), "broken");
}
