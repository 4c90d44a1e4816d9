//! Snapshot round trips and the validation `Queue::from_snapshot` does on foreign data.

use cairn_queue::{
    Enqueued, EnqueuedBy, Error, Event, Handoff, MAX_VALUE_DEPTH, Queue, QueueConfig,
    SNAPSHOT_FORMAT_VERSION, Snapshot, Status, TaskError, TaskId, TaskSpec, Timestamp,
};
use serde_json::json;

const T0: Timestamp = Timestamp(0);

/// A queue with a bit of everything: done, running, failed, blocked, pending with backoff,
/// follow-ups and phases.
fn busy_queue() -> Queue {
    let mut q = Queue::new(QueueConfig::default());
    let a = q
        .enqueue(
            TaskSpec::new("fetch").inputs(json!({ "url": "u", "n": 1 })),
            EnqueuedBy::Root,
            T0,
        )
        .unwrap()
        .id;
    let b = q
        .enqueue(TaskSpec::new("parse").depends_on([a]), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    let c = q
        .enqueue(
            TaskSpec::new("broken").max_attempts(1),
            EnqueuedBy::Root,
            T0,
        )
        .unwrap()
        .id;
    let d = q
        .enqueue(
            TaskSpec::new("after_broken").depends_on([c]),
            EnqueuedBy::Root,
            T0,
        )
        .unwrap()
        .id;
    let e = q
        .enqueue(TaskSpec::new("flaky").max_attempts(3), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    q.start_phase(0, "load").unwrap();
    q.start(a, Timestamp(1)).unwrap();
    let child = q
        .enqueue(
            TaskSpec::new("child").inputs(json!([1, 2])),
            EnqueuedBy::Task(a),
            Timestamp(2),
        )
        .unwrap()
        .id;
    q.complete(
        a,
        Handoff {
            done: vec!["fetched".into()],
            extra: json!({ "bytes": 10 }),
            ..Handoff::default()
        },
        Timestamp(3),
    )
    .unwrap();
    q.start(c, Timestamp(3)).unwrap();
    q.fail(c, TaskError::new("exit_code", "1"), false, T0, Timestamp(4))
        .unwrap();
    q.start(e, Timestamp(4)).unwrap();
    q.fail(
        e,
        TaskError::new("timeout", "slow"),
        true,
        Timestamp(50),
        Timestamp(5),
    )
    .unwrap();
    q.start(b, Timestamp(6)).unwrap();
    q.complete_phase(0, "load").unwrap();
    q.start_phase(1, "rest").unwrap();
    assert_eq!(q.get(d).unwrap().status, Status::Blocked);
    assert_eq!(q.get(child).unwrap().depth, 1);
    q
}

fn snapshot_of(tasks: usize) -> Snapshot {
    let mut q = Queue::new(QueueConfig::default());
    let mut last = None;
    for n in 0..tasks {
        let spec = TaskSpec::new("step").inputs(json!(n));
        let spec = match last {
            Some(id) => spec.depends_on([id]),
            None => spec,
        };
        last = Some(q.enqueue(spec, EnqueuedBy::Root, T0).unwrap().id);
    }
    q.snapshot()
}

#[test]
fn snapshot_survives_serde_json_round_trip() {
    let q = busy_queue();
    let snapshot = q.snapshot();
    let text = serde_json::to_string_pretty(&snapshot).unwrap();
    let back: Snapshot = serde_json::from_str(&text).unwrap();
    assert_eq!(back, snapshot);
    // The file is readable JSON with named statuses.
    assert!(text.contains("\"status\": \"blocked\""));
    assert!(text.contains("\"format_version\": 1"));
}

#[test]
fn the_borrowed_view_encodes_exactly_like_the_snapshot() {
    // Every status, a handoff, errors, a backoff, a follow-up and both phase lists.
    let q = busy_queue();
    let snapshot = q.snapshot();
    assert!(!snapshot.phases_started.is_empty() && !snapshot.phases_completed.is_empty());
    assert_eq!(
        serde_json::to_string(&q.snapshot_view()).unwrap(),
        serde_json::to_string(&snapshot).unwrap()
    );
    assert_eq!(
        serde_json::to_string_pretty(&q.snapshot_view()).unwrap(),
        serde_json::to_string_pretty(&snapshot).unwrap()
    );
    let back: Snapshot =
        serde_json::from_slice(&serde_json::to_vec(&q.snapshot_view()).unwrap()).unwrap();
    assert_eq!(back, snapshot);
    let empty = Queue::new(QueueConfig::default());
    assert_eq!(
        serde_json::to_string(&empty.snapshot_view()).unwrap(),
        serde_json::to_string(&empty.snapshot()).unwrap()
    );
}

#[test]
fn a_view_with_inputs_from_elsewhere_encodes_like_the_snapshot() {
    let q = busy_queue();
    let snapshot = q.snapshot();
    let same = q.snapshot_view().with_inputs(|task| task.inputs.clone());
    assert_eq!(
        serde_json::to_string(&same).unwrap(),
        serde_json::to_string(&snapshot).unwrap()
    );
    assert_eq!(
        serde_json::to_string_pretty(&same).unwrap(),
        serde_json::to_string_pretty(&snapshot).unwrap()
    );
    // Only `inputs` comes from the function.
    let marked = q
        .snapshot_view()
        .with_inputs(|task| format!("inputs of {}", task.id));
    let back: Snapshot = serde_json::from_slice(&serde_json::to_vec(&marked).unwrap()).unwrap();
    for (task, original) in back.tasks.iter().zip(&snapshot.tasks) {
        assert_eq!(task.inputs, json!(format!("inputs of {}", task.id)));
        let restored = cairn_queue::Task {
            inputs: original.inputs.clone(),
            ..task.clone()
        };
        assert_eq!(&restored, original);
    }
    assert_eq!(back.phases_started, snapshot.phases_started);
    assert_eq!(back.phases_completed, snapshot.phases_completed);
}

#[test]
fn from_snapshot_rebuilds_the_same_live_state() {
    let q = busy_queue();
    let copy = Queue::from_snapshot(q.snapshot(), QueueConfig::default()).unwrap();
    assert_eq!(copy.snapshot(), q.snapshot());
    assert_eq!(copy.counts(), q.counts());
    assert_eq!(copy.counts_by_kind(), q.counts_by_kind());
    assert_eq!(
        copy.next_runnable(Timestamp(100)),
        q.next_runnable(Timestamp(100))
    );
    assert_eq!(copy.next_wakeup(), q.next_wakeup());
    assert_eq!(copy.is_drained(), q.is_drained());
    assert!(copy.phase_completed(0));
    assert!(!copy.phase_completed(1));
}

#[test]
fn restored_queue_keeps_the_dedup_guard() {
    let q = busy_queue();
    let mut copy = Queue::from_snapshot(q.snapshot(), QueueConfig::default()).unwrap();
    let again = copy
        .enqueue(
            TaskSpec::new("fetch").inputs(json!({ "n": 1, "url": "u" })),
            EnqueuedBy::Root,
            T0,
        )
        .unwrap();
    assert!(again.existing);
    assert_eq!(again.id, TaskId(0));
}

#[test]
fn restored_queue_keeps_child_counts() {
    let mut q = Queue::new(QueueConfig::default());
    let parent = q
        .enqueue(TaskSpec::new("p"), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    q.start(parent, T0).unwrap();
    q.enqueue(TaskSpec::new("c1"), EnqueuedBy::Task(parent), T0)
        .unwrap();
    let config = QueueConfig {
        max_children: 1,
        ..QueueConfig::default()
    };
    let mut copy = Queue::from_snapshot(q.snapshot(), config).unwrap();
    let err = copy
        .enqueue(TaskSpec::new("c2"), EnqueuedBy::Task(parent), T0)
        .unwrap_err();
    assert!(matches!(err, Error::TooManyChildren { limit: 1, .. }));
}

#[test]
fn replay_of_snapshot_plus_later_events_matches_live_state() {
    let mut q = busy_queue();
    let base = q.snapshot();
    q.take_events();
    q.complete(TaskId(1), Handoff::default(), Timestamp(7))
        .unwrap();
    q.retry(TaskId(2), Timestamp(8)).unwrap();
    q.start(TaskId(2), Timestamp(9)).unwrap();
    q.recover(Timestamp(10));
    let events = q.take_events();
    let replayed = Queue::replay(Some(base), &events, QueueConfig::default()).unwrap();
    assert_eq!(replayed.snapshot(), q.snapshot());
}

#[test]
fn events_survive_serde_json_round_trip() {
    let mut q = busy_queue();
    let events = q.take_events();
    let text = serde_json::to_string(&events).unwrap();
    let back: Vec<cairn_queue::Event> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, events);
    assert!(text.contains("\"type\":\"enqueued\""));
}

#[test]
fn unsupported_format_version() {
    let mut snapshot = snapshot_of(2);
    snapshot.format_version = SNAPSHOT_FORMAT_VERSION + 1;
    let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
    assert!(matches!(
        err,
        Error::UnsupportedFormat {
            found: 2,
            expected: 1
        }
    ));
}

#[test]
fn cycle_is_detected() {
    let mut snapshot = snapshot_of(4);
    // 1 → 0 already; make 0 depend on 2, closing 0 → 2 → 1 → 0.
    snapshot.tasks[0].depends_on = vec![TaskId(2)];
    let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
    match err {
        Error::Cycle { mut ids } => {
            ids.sort();
            assert_eq!(ids, vec![TaskId(0), TaskId(1), TaskId(2)]);
        }
        other => panic!("expected a cycle, got {other:?}"),
    }
}

#[test]
fn self_dependency_is_a_cycle() {
    let mut snapshot = snapshot_of(2);
    snapshot.tasks[1].depends_on = vec![TaskId(1)];
    let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
    assert!(matches!(err, Error::Cycle { ids } if ids == vec![TaskId(1)]));
}

#[test]
fn forward_dependency_without_cycle_is_inconsistent() {
    let mut snapshot = snapshot_of(3);
    snapshot.tasks[0].depends_on = vec![TaskId(2)];
    snapshot.tasks[1].depends_on = vec![];
    snapshot.tasks[2].depends_on = vec![];
    let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
    assert!(matches!(err, Error::InconsistentSnapshot { .. }), "{err:?}");
}

#[test]
fn dangling_dependency() {
    let mut snapshot = snapshot_of(2);
    snapshot.tasks[1].depends_on = vec![TaskId(0), TaskId(9)];
    let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
    assert!(matches!(
        err,
        Error::DanglingReference {
            id: TaskId(1),
            missing: TaskId(9)
        }
    ));
}

#[test]
fn dangling_parent() {
    let mut snapshot = snapshot_of(2);
    snapshot.tasks[1].enqueued_by = EnqueuedBy::Task(TaskId(5));
    let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
    assert!(matches!(
        err,
        Error::DanglingReference {
            id: TaskId(1),
            missing: TaskId(5)
        }
    ));
}

#[test]
fn ids_must_be_dense_and_in_order() {
    let mut snapshot = snapshot_of(3);
    snapshot.tasks.swap(1, 2);
    let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
    assert!(matches!(err, Error::InconsistentSnapshot { .. }));
    let mut snapshot = snapshot_of(3);
    snapshot.tasks.remove(1);
    snapshot.tasks[1].depends_on.clear();
    let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
    assert!(matches!(err, Error::InconsistentSnapshot { .. }));
}

#[test]
fn blocked_task_needs_blocked_by_naming_a_failed_task() {
    let q = busy_queue();
    let blocked = TaskId(3);
    let mut snapshot = q.snapshot();
    snapshot.tasks[3].blocked_by = None;
    let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
    assert!(matches!(err, Error::InconsistentSnapshot { .. }), "{err:?}");
    let mut snapshot = q.snapshot();
    assert_eq!(snapshot.tasks[3].id, blocked);
    snapshot.tasks[3].blocked_by = Some(TaskId(0));
    let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
    assert!(matches!(err, Error::InconsistentSnapshot { .. }), "{err:?}");
}

#[test]
fn pending_task_under_a_failed_one_is_inconsistent() {
    let q = busy_queue();
    let mut snapshot = q.snapshot();
    snapshot.tasks[3].status = Status::Pending;
    snapshot.tasks[3].blocked_by = None;
    let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
    assert!(matches!(err, Error::InconsistentSnapshot { .. }), "{err:?}");
}

#[test]
fn finished_task_under_an_unfinished_one_is_inconsistent() {
    let mut snapshot = snapshot_of(2);
    snapshot.tasks[1].status = Status::Done;
    let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
    assert!(matches!(err, Error::InconsistentSnapshot { .. }), "{err:?}");
}

#[test]
fn bad_spec_fields_and_depths_are_inconsistent() {
    let cases: [fn(&mut Snapshot); 5] = [
        |s| s.tasks[0].kind.clear(),
        |s| s.tasks[0].max_attempts = 0,
        |s| s.tasks[0].attempts = 9,
        |s| s.tasks[1].depth = 4,
        |s| s.tasks[1].depends_on = vec![TaskId(0), TaskId(0)],
    ];
    for (n, damage) in cases.into_iter().enumerate() {
        let mut snapshot = snapshot_of(2);
        damage(&mut snapshot);
        let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
        assert!(
            matches!(err, Error::InconsistentSnapshot { .. }),
            "case {n}: {err:?}"
        );
    }
}

/// A value that nests `depth` levels deep.
fn nested(depth: usize) -> serde_json::Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

#[test]
fn values_nested_deeper_than_apply_takes_are_inconsistent() {
    // Replay refuses an event carrying such a value, so a snapshot holding one was not
    // written by a queue; the limit itself loads.
    let done_with_extra = |depth: usize| {
        let mut snapshot = snapshot_of(1);
        let task = &mut snapshot.tasks[0];
        (task.status, task.attempts) = (Status::Done, 1);
        let extra = nested(depth);
        task.handoff = Some(Box::new(Handoff {
            extra,
            ..Handoff::default()
        }));
        snapshot
    };
    let with_inputs = |depth: usize| {
        let mut snapshot = snapshot_of(2);
        snapshot.tasks[1].inputs = nested(depth);
        snapshot
    };
    for (n, snapshot) in [
        with_inputs(MAX_VALUE_DEPTH + 1),
        done_with_extra(MAX_VALUE_DEPTH + 1),
    ]
    .into_iter()
    .enumerate()
    {
        let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
        assert!(
            matches!(err, Error::InconsistentSnapshot { .. }),
            "case {n}: {err:?}"
        );
    }
    for snapshot in [
        with_inputs(MAX_VALUE_DEPTH),
        done_with_extra(MAX_VALUE_DEPTH),
    ] {
        Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap();
    }
}

#[test]
fn phase_records_must_agree() {
    let mut snapshot = snapshot_of(1);
    snapshot.phases_completed.insert(2);
    let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
    assert!(matches!(err, Error::InconsistentSnapshot { .. }));
}

#[test]
fn replay_stops_at_the_first_bad_event() {
    let mut q = Queue::new(QueueConfig::default());
    let a = q
        .enqueue(TaskSpec::new("a"), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    q.start(a, T0).unwrap();
    let mut events = q.take_events();
    // Starting twice cannot happen; the replay must say so rather than panic.
    events.push(events[1].clone());
    let err = Queue::replay(None, &events, QueueConfig::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidEvent { .. }));
}

#[test]
fn floats_come_back_from_their_json_text_exactly_so_the_dedup_guard_still_matches() {
    // Floats a handler computes: serde_json's default parser reads about one in ten of them
    // back one unit in the last place off, so a replayed queue held other inputs than the
    // ones acknowledged, and a parent that ran again after a crash created its follow-up a
    // second time. The workspace enables `float_roundtrip`.
    let floats = [
        985.690_694_632_869_5,
        212.918_907_267_134_6,
        1.071_566_039_146_582_6e-75,
        -1.819_967_304_027_17e-179,
        0.1,
        1e300,
    ];
    let mut q = Queue::new(QueueConfig::default());
    let parent = q
        .enqueue(TaskSpec::new("parent"), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    q.start(parent, T0).unwrap();
    let follow = || TaskSpec::new("child").inputs(json!({ "scores": floats }));
    let child = q
        .enqueue(follow(), EnqueuedBy::Task(parent), T0)
        .unwrap()
        .id;
    let events = q.take_events();

    // As a checkpoint adapter stores and reads them.
    let text = serde_json::to_string(&events).unwrap();
    let read: Vec<cairn_queue::Event> = serde_json::from_str(&text).unwrap();
    assert_eq!(read, events, "events come back as they were written");
    let mut replayed = Queue::replay(None, read.iter(), QueueConfig::default()).unwrap();
    assert_eq!(replayed.snapshot(), q.snapshot());

    // The parent runs again after the crash and asks for the same follow-up.
    let again = replayed
        .enqueue(follow(), EnqueuedBy::Task(parent), T0)
        .unwrap();
    assert_eq!((again.id, again.existing), (child, true));
}

/// A queue whose t1 waits on t0, which failed on its only attempt: t1 is blocked by t0.
fn failed_with_blocked_dependent() -> Queue {
    let mut q = Queue::new(QueueConfig::default());
    let a = q
        .enqueue(TaskSpec::new("a").max_attempts(1), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    let b = q
        .enqueue(
            TaskSpec::new("b").depends_on([a]).max_attempts(3),
            EnqueuedBy::Root,
            T0,
        )
        .unwrap()
        .id;
    q.start(a, T0).unwrap();
    q.fail(a, TaskError::new("x", "y"), false, T0, T0).unwrap();
    assert_eq!(q.get(b).unwrap().status, Status::Blocked);
    q
}

/// A blocked task turns pending when its failed ancestor is retried, so, like a pending
/// task, it needs an attempt left: one without would be pending and never startable, the run
/// never drained, and the queue's next snapshot refused.
#[test]
fn blocked_task_with_no_attempts_left_is_inconsistent() {
    let mut snapshot = failed_with_blocked_dependent().snapshot();
    snapshot.tasks[1].attempts = 3;
    let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
    assert!(matches!(err, Error::InconsistentSnapshot { .. }), "{err:?}");
}

/// The same rule for `amend`: a blocked task keeps an attempt under its new limit, checked by
/// the operation and by `apply`.
#[test]
fn amend_leaves_a_blocked_task_an_attempt() {
    let (a, b) = (TaskId(0), TaskId(1));
    let mut snapshot = failed_with_blocked_dependent().snapshot();
    // Only foreign data gives a blocked task used attempts, and one left is enough to load.
    snapshot.tasks[1].attempts = 1;
    let mut q = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap();
    let refused = q.amend(b, serde_json::Value::Null, Some(1), T0);
    assert!(
        matches!(refused, Err(Error::InvalidSpec { .. })),
        "{refused:?}"
    );
    let event = cairn_queue::Event::Amended {
        id: b,
        inputs: serde_json::Value::Null,
        max_attempts: 1,
        at: T0,
    };
    let refused = q.apply(&event);
    assert!(
        matches!(refused, Err(Error::InvalidEvent { .. })),
        "{refused:?}"
    );
    q.amend(b, serde_json::Value::Null, Some(2), T0).unwrap();
    q.retry(a, T0).unwrap();
    q.start(a, T0).unwrap();
    q.complete(a, Handoff::default(), T0).unwrap();
    assert_eq!(q.next_runnable(T0), [b]);
    assert_eq!(q.start(b, T0).unwrap(), 2);
    Queue::from_snapshot(q.snapshot(), QueueConfig::default()).unwrap();
}

/// `blocked_by` names a failed ancestor: a failed dependency, or the task that blocks a
/// blocked dependency. Naming another failed task would misreport the cause, and a retry of
/// that task would leave the blocked task naming a pending one, which no snapshot may hold.
#[test]
fn blocked_by_must_name_a_failed_ancestor() {
    let mut q = failed_with_blocked_dependent();
    let unrelated = q
        .enqueue(TaskSpec::new("c").max_attempts(1), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    q.start(unrelated, T0).unwrap();
    q.fail(unrelated, TaskError::new("x", "y"), false, T0, T0)
        .unwrap();
    // A blocked task under the blocked t1 names t1's blocker: that loads.
    let below = q
        .enqueue(
            TaskSpec::new("d").depends_on([TaskId(1)]),
            EnqueuedBy::Root,
            T0,
        )
        .unwrap()
        .id;
    assert_eq!(q.get(below).unwrap().blocked_by, Some(TaskId(0)));
    Queue::from_snapshot(q.snapshot(), QueueConfig::default()).unwrap();
    for blocked in [TaskId(1), below] {
        let mut snapshot = q.snapshot();
        snapshot.tasks[blocked.0 as usize].blocked_by = Some(unrelated);
        let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
        assert!(
            matches!(err, Error::InconsistentSnapshot { .. }),
            "{blocked}: {err:?}"
        );
    }
}

#[test]
fn a_journal_with_two_tasks_of_one_key_can_still_amend_the_later_ones_limit() {
    // Journals from before `float_roundtrip` can hold two guarded tasks whose inputs read
    // back equal. Replay keeps both, and the guard finds the first.
    let enqueued = |id: u64| Event::Enqueued {
        id: TaskId(id),
        kind: "fetch".to_owned(),
        inputs: json!({ "url": "a" }),
        depends_on: Vec::new(),
        max_attempts: 3,
        enqueued_by: EnqueuedBy::Root,
        dedup: true,
        at: T0,
    };
    let mut q = Queue::replay(None, &[enqueued(0), enqueued(1)], QueueConfig::default()).unwrap();
    let later = TaskId(1);

    // Same inputs, a new limit: the guard is not asked, live or on replay.
    q.amend(later, json!({ "url": "a" }), Some(5), T0).unwrap();
    assert_eq!(q.get(later).unwrap().max_attempts, 5);
    let mut events = vec![enqueued(0), enqueued(1)];
    events.extend(q.take_events());
    let replayed = Queue::replay(None, &events, QueueConfig::default()).unwrap();
    assert_eq!(replayed.snapshot(), q.snapshot());
}

/// A journal from before `float_roundtrip`: `tasks` guarded tasks, of which the first two
/// share one key (`{"url": "a"}`) and the rest have keys of their own.
fn journal_with_two_tasks_of_one_key(tasks: u64) -> Vec<Event> {
    (0..tasks)
        .map(|id| Event::Enqueued {
            id: TaskId(id),
            kind: "fetch".to_owned(),
            inputs: if id < 2 {
                json!({ "url": "a" })
            } else {
                json!({ "url": id })
            },
            depends_on: Vec::new(),
            max_attempts: 3,
            enqueued_by: EnqueuedBy::Root,
            dedup: true,
            at: T0,
        })
        .collect()
}

/// What enqueueing the shared key returns: the live queue, the queue restored from its
/// snapshot and the one replayed from its events must all give the same answer.
fn shared_key_lookups(live: &Queue, events: &[Event]) -> [Enqueued; 3] {
    let restored = Queue::from_snapshot(live.snapshot(), QueueConfig::default()).unwrap();
    let replayed = Queue::replay(None, events, QueueConfig::default()).unwrap();
    let shared = || TaskSpec::new("fetch").inputs(json!({ "url": "a" }));
    [live.clone(), restored, replayed]
        .map(|mut q| q.enqueue(shared(), EnqueuedBy::Root, T0).unwrap())
}

#[test]
fn a_journal_with_two_tasks_of_one_key_still_guards_the_key_once_the_first_is_amended() {
    let mut events = journal_with_two_tasks_of_one_key(2);
    let mut q = Queue::replay(None, &events, QueueConfig::default()).unwrap();
    let mut restored_before = Queue::from_snapshot(q.snapshot(), QueueConfig::default()).unwrap();
    // The first owner takes other inputs; the second task still holds the key, so the guard
    // must find it rather than let a handler that enqueues the key again create a third task.
    q.amend(TaskId(0), json!({ "url": "b" }), None, T0).unwrap();
    events.extend(q.take_events());
    restored_before
        .amend(TaskId(0), json!({ "url": "b" }), None, T0)
        .unwrap();
    let again = TaskSpec::new("fetch").inputs(json!({ "url": "a" }));
    let found = restored_before
        .enqueue(again, EnqueuedBy::Root, T0)
        .unwrap();
    assert_eq!(
        found,
        Enqueued {
            id: TaskId(1),
            existing: true
        },
        "amended after a restore"
    );
    let found = shared_key_lookups(&q, &events);
    for (n, answer) in found.iter().enumerate() {
        assert_eq!(
            *answer,
            Enqueued {
                id: TaskId(1),
                existing: true
            },
            "lookup {n} (live, restored, replayed)"
        );
    }
}

#[test]
fn a_journal_with_two_tasks_of_one_key_gives_the_first_one_live_restored_and_replayed() {
    // Forty tasks, and then enough amendments of one of them that the live guard holds more
    // entries than a restored one, so the two store the shared key's entries differently.
    let mut events = journal_with_two_tasks_of_one_key(40);
    let mut q = Queue::replay(None, &events, QueueConfig::default()).unwrap();
    for n in 0..30 {
        q.amend(TaskId(5), json!({ "url": format!("v{}", n % 2) }), None, T0)
            .unwrap();
    }
    events.extend(q.take_events());
    let found = shared_key_lookups(&q, &events);
    for (n, answer) in found.iter().enumerate() {
        assert_eq!(
            *answer,
            Enqueued {
                id: TaskId(0),
                existing: true
            },
            "lookup {n} (live, restored, replayed)"
        );
    }
}
