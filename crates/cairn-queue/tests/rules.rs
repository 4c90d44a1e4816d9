//! One test per queue rule: transitions, failure and blocking, retry, recovery, enqueue
//! validation, bounds, the dedup guard, scheduling, phases, events and reads.

use cairn_queue::{
    EnqueuedBy, Error, Event, Handoff, Outcome, Queue, QueueConfig, Status, StatusCounts,
    TaskError, TaskId, TaskSpec, Timestamp,
};
use serde_json::json;

const T0: Timestamp = Timestamp(0);

fn queue() -> Queue {
    Queue::new(QueueConfig::default())
}

fn add(q: &mut Queue, kind: &str, deps: &[TaskId]) -> TaskId {
    q.enqueue(
        TaskSpec::new(kind)
            .depends_on(deps.iter().copied())
            .without_dedup(),
        EnqueuedBy::Root,
        T0,
    )
    .expect("enqueue")
    .id
}

fn add_attempts(q: &mut Queue, kind: &str, deps: &[TaskId], attempts: u32) -> TaskId {
    q.enqueue(
        TaskSpec::new(kind)
            .depends_on(deps.iter().copied())
            .max_attempts(attempts)
            .without_dedup(),
        EnqueuedBy::Root,
        T0,
    )
    .expect("enqueue")
    .id
}

fn run_ok(q: &mut Queue, id: TaskId) {
    q.start(id, T0).expect("start");
    q.complete(id, Handoff::default(), T0).expect("complete");
}

fn fail_hard(q: &mut Queue, id: TaskId) {
    q.start(id, T0).expect("start");
    let after = q
        .fail(id, TaskError::new("boom", "it broke"), false, T0, T0)
        .expect("fail");
    assert_eq!(after, Status::Failed);
}

fn status(q: &Queue, id: TaskId) -> Status {
    q.get(id).expect("task exists").status
}

fn note(text: &str) -> Handoff {
    Handoff {
        next_note: Some(text.to_owned()),
        ..Handoff::default()
    }
}

// ----- happy path and scheduling -----

#[test]
fn dependencies_gate_start_and_runnable_is_in_id_order() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    let b = add(&mut q, "b", &[]);
    let c = add(&mut q, "c", &[a, b]);
    assert_eq!(q.next_runnable(T0), vec![a, b]);
    run_ok(&mut q, b);
    assert_eq!(q.next_runnable(T0), vec![a]);
    run_ok(&mut q, a);
    assert_eq!(q.next_runnable(T0), vec![c]);
    assert!(!q.is_drained());
    assert_eq!(q.outcome(), None);
    run_ok(&mut q, c);
    assert!(q.is_drained());
    assert_eq!(q.outcome(), Some(Outcome::Completed));
}

#[test]
fn start_counts_attempts_and_records_times() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    assert_eq!(q.start(a, Timestamp(5)).unwrap(), 1);
    let task = q.get(a).unwrap();
    assert_eq!(task.status, Status::Running);
    assert_eq!(task.attempts, 1);
    assert_eq!(task.started_at, Some(Timestamp(5)));
    assert!(q.next_runnable(T0).is_empty());
    q.complete(a, note("hi"), Timestamp(7)).unwrap();
    let task = q.get(a).unwrap();
    assert_eq!(task.finished_at, Some(Timestamp(7)));
    assert_eq!(task.handoff.as_deref(), Some(&note("hi")));
}

#[test]
fn skipped_satisfies_dependents() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    let b = add(&mut q, "b", &[a]);
    q.start(a, T0).unwrap();
    q.skip(a, Handoff::default(), T0).unwrap();
    assert_eq!(status(&q, a), Status::Skipped);
    assert_eq!(q.next_runnable(T0), vec![b]);
}

#[test]
fn empty_queue_is_drained_and_completed() {
    let q = queue();
    assert!(q.is_empty());
    assert!(q.is_drained());
    assert_eq!(q.outcome(), Some(Outcome::Completed));
}

// ----- unknown ids and invalid transitions -----

#[test]
fn unknown_id_is_refused_by_every_operation() {
    let mut q = queue();
    add(&mut q, "a", &[]);
    let ghost = TaskId(7);
    let unknown = |r: Result<(), Error>| matches!(r, Err(Error::UnknownTask { id }) if id == ghost);
    assert!(unknown(q.start(ghost, T0).map(|_| ())));
    assert!(unknown(q.complete(ghost, Handoff::default(), T0)));
    assert!(unknown(q.skip(ghost, Handoff::default(), T0)));
    assert!(unknown(
        q.fail(ghost, TaskError::new("x", "y"), true, T0, T0)
            .map(|_| ())
    ));
    assert!(unknown(q.retry(ghost, T0)));
    assert!(unknown(q.dependency_handoffs(ghost).map(|_| ())));
    assert!(q.get(ghost).is_none());
    assert!(
        q.take_events().len() == 1,
        "only the enqueue produced an event"
    );
}

#[test]
fn invalid_transitions_are_refused() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    let b = add(&mut q, "b", &[]);
    let refused = |r: Result<(), Error>, want_id: TaskId, want_from: Status, want_op: &str| matches!(r, Err(Error::InvalidTransition { id, from, op }) if id == want_id && from == want_from && op == want_op);
    // From pending.
    assert!(refused(
        q.complete(a, Handoff::default(), T0),
        a,
        Status::Pending,
        "complete"
    ));
    assert!(refused(
        q.skip(a, Handoff::default(), T0),
        a,
        Status::Pending,
        "skip"
    ));
    assert!(refused(
        q.fail(a, TaskError::new("x", "y"), false, T0, T0)
            .map(|_| ()),
        a,
        Status::Pending,
        "fail"
    ));
    assert!(refused(q.retry(a, T0), a, Status::Pending, "retry"));
    // From running.
    q.start(a, T0).unwrap();
    assert!(refused(
        q.start(a, T0).map(|_| ()),
        a,
        Status::Running,
        "start"
    ));
    assert!(refused(q.retry(a, T0), a, Status::Running, "retry"));
    // From done.
    q.complete(a, Handoff::default(), T0).unwrap();
    assert!(refused(
        q.start(a, T0).map(|_| ()),
        a,
        Status::Done,
        "start"
    ));
    assert!(refused(
        q.complete(a, Handoff::default(), T0),
        a,
        Status::Done,
        "complete"
    ));
    assert!(refused(q.retry(a, T0), a, Status::Done, "retry"));
    // From failed.
    fail_hard(&mut q, b);
    assert!(refused(
        q.start(b, T0).map(|_| ()),
        b,
        Status::Failed,
        "start"
    ));
    assert!(refused(
        q.skip(b, Handoff::default(), T0),
        b,
        Status::Failed,
        "skip"
    ));
}

#[test]
fn start_before_dependencies_finish_is_not_ready() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    let b = add(&mut q, "b", &[]);
    let c = add(&mut q, "c", &[a, b]);
    run_ok(&mut q, a);
    let err = q.start(c, T0).unwrap_err();
    assert!(
        matches!(&err, Error::NotReady { id, waiting_on, not_before: None } if *id == c && waiting_on == &vec![b]),
        "{err:?}"
    );
    assert_eq!(status(&q, c), Status::Pending);
}

#[test]
fn failed_operation_changes_nothing_and_emits_nothing() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    q.take_events();
    let before = q.snapshot();
    assert!(q.complete(a, Handoff::default(), T0).is_err());
    assert!(q.retry(a, T0).is_err());
    assert_eq!(q.snapshot(), before);
    assert!(q.take_events().is_empty());
}

// ----- failure, retry backoff and blocking -----

#[test]
fn retryable_failure_with_attempts_left_waits_for_retry_at() {
    let mut q = queue();
    let a = add_attempts(&mut q, "a", &[], 2);
    q.start(a, T0).unwrap();
    let after = q
        .fail(
            a,
            TaskError::new("timeout", "slow"),
            true,
            Timestamp(100),
            Timestamp(10),
        )
        .unwrap();
    assert_eq!(after, Status::Pending);
    let task = q.get(a).unwrap();
    assert_eq!(task.not_before, Some(Timestamp(100)));
    assert_eq!(task.error.as_ref().unwrap().kind, "timeout");
    assert!(q.next_runnable(Timestamp(99)).is_empty());
    assert_eq!(q.next_wakeup(), Some(Timestamp(100)));
    assert!(
        !q.is_drained(),
        "a task waiting for backoff can still start"
    );
    let err = q.start(a, Timestamp(50)).unwrap_err();
    assert!(matches!(
        err,
        Error::NotReady {
            not_before: Some(Timestamp(100)),
            ..
        }
    ));
    assert_eq!(q.next_runnable(Timestamp(100)), vec![a]);
    assert_eq!(q.start(a, Timestamp(100)).unwrap(), 2);
    assert_eq!(q.next_wakeup(), None);
}

/// `start` refuses a task whose backoff has not passed at the time it records, so replay
/// refuses a `Started` event that is earlier; one at or after `not_before` replays, whatever
/// the start's `now` was.
#[test]
fn a_replayed_start_before_the_backoff_ends_is_refused() {
    let mut q = queue();
    let a = add_attempts(&mut q, "a", &[], 3);
    q.start(a, T0).unwrap();
    q.fail(
        a,
        TaskError::new("http", "503"),
        true,
        Timestamp(100),
        Timestamp(10),
    )
    .unwrap();
    let before = q.snapshot();
    let early = Event::Started {
        id: a,
        attempt: 2,
        at: Timestamp(99),
    };
    let error = q.apply(&early).unwrap_err();
    assert!(matches!(error, Error::InvalidEvent { .. }), "{error:?}");
    assert_eq!(q.snapshot(), before, "a refused start changes nothing");
    // Exactly at the end of the backoff, as `start` allows it.
    let on_time = Event::Started {
        id: a,
        attempt: 2,
        at: Timestamp(100),
    };
    q.apply(&on_time).unwrap();
    assert_eq!(status(&q, a), Status::Running);
    // A live start long after the backoff replays too.
    let mut live = queue();
    let b = add_attempts(&mut live, "b", &[], 3);
    live.start(b, T0).unwrap();
    live.fail(
        b,
        TaskError::new("http", "503"),
        true,
        Timestamp(100),
        Timestamp(10),
    )
    .unwrap();
    live.start(b, Timestamp(5_000)).unwrap();
    let replayed = Queue::replay(None, &live.take_events(), QueueConfig::default()).unwrap();
    assert_eq!(replayed.snapshot(), live.snapshot());
}

#[test]
fn retryable_failure_on_last_attempt_is_permanent() {
    let mut q = queue();
    let a = add_attempts(&mut q, "a", &[], 1);
    q.start(a, T0).unwrap();
    let after = q
        .fail(
            a,
            TaskError::new("timeout", "slow"),
            true,
            Timestamp(100),
            T0,
        )
        .unwrap();
    assert_eq!(after, Status::Failed);
    assert_eq!(q.get(a).unwrap().not_before, None);
}

#[test]
fn non_retryable_failure_is_permanent_even_with_attempts_left() {
    let mut q = queue();
    let a = add_attempts(&mut q, "a", &[], 5);
    fail_hard(&mut q, a);
    assert_eq!(status(&q, a), Status::Failed);
    assert!(q.is_drained());
}

#[test]
fn failure_blocks_transitive_dependents_and_spares_independent_branches() {
    let mut q = queue();
    let root = add(&mut q, "root", &[]);
    let a = add(&mut q, "a", &[root]);
    let b = add(&mut q, "b", &[a]);
    let c = add(&mut q, "c", &[b, root]);
    let other = add(&mut q, "other", &[]);
    let other_child = add(&mut q, "other_child", &[other]);
    run_ok(&mut q, root);
    fail_hard(&mut q, a);
    for id in [b, c] {
        let task = q.get(id).unwrap();
        assert_eq!(task.status, Status::Blocked, "{id}");
        assert_eq!(task.blocked_by, Some(a), "{id}");
    }
    assert_eq!(q.next_runnable(T0), vec![other]);
    assert!(!q.is_drained());
    run_ok(&mut q, other);
    run_ok(&mut q, other_child);
    assert_eq!(
        q.outcome(),
        Some(Outcome::Failed {
            failed: vec![a],
            blocked: vec![b, c],
        })
    );
}

#[test]
fn blocked_task_keeps_the_ancestor_that_blocked_it_first() {
    let mut q = queue();
    let x = add(&mut q, "x", &[]);
    let y = add(&mut q, "y", &[]);
    let z = add(&mut q, "z", &[x, y]);
    fail_hard(&mut q, x);
    fail_hard(&mut q, y);
    assert_eq!(q.get(z).unwrap().blocked_by, Some(x));
}

#[test]
fn enqueue_onto_failed_or_blocked_enters_blocked() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    let b = add(&mut q, "b", &[a]);
    fail_hard(&mut q, a);
    let on_failed = add(&mut q, "c", &[a]);
    let on_blocked = add(&mut q, "d", &[b]);
    for id in [on_failed, on_blocked] {
        let task = q.get(id).unwrap();
        assert_eq!(task.status, Status::Blocked, "{id}");
        assert_eq!(task.blocked_by, Some(a), "{id}");
    }
    assert!(q.is_drained());
}

#[test]
fn retry_resets_attempts_and_unblocks_dependents() {
    let mut q = queue();
    let a = add_attempts(&mut q, "a", &[], 1);
    let b = add(&mut q, "b", &[a]);
    let c = add(&mut q, "c", &[b]);
    fail_hard(&mut q, a);
    q.retry(a, Timestamp(3)).unwrap();
    let task = q.get(a).unwrap();
    assert_eq!(task.status, Status::Pending);
    assert_eq!(task.attempts, 0);
    assert_eq!(
        task.error.as_ref().unwrap().kind,
        "boom",
        "the error is kept"
    );
    for id in [b, c] {
        let task = q.get(id).unwrap();
        assert_eq!(task.status, Status::Pending, "{id}");
        assert_eq!(task.blocked_by, None, "{id}");
    }
    assert_eq!(q.next_runnable(T0), vec![a]);
    run_ok(&mut q, a);
    run_ok(&mut q, b);
    run_ok(&mut q, c);
    assert_eq!(q.outcome(), Some(Outcome::Completed));
}

#[test]
fn retry_leaves_tasks_blocked_by_another_failed_ancestor() {
    let mut q = queue();
    let x = add(&mut q, "x", &[]);
    let y = add(&mut q, "y", &[]);
    let z = add(&mut q, "z", &[x, y]);
    let w = add(&mut q, "w", &[z]);
    let only_x = add(&mut q, "only_x", &[x]);
    fail_hard(&mut q, x);
    fail_hard(&mut q, y);
    q.retry(x, T0).unwrap();
    assert_eq!(status(&q, only_x), Status::Pending);
    for id in [z, w] {
        let task = q.get(id).unwrap();
        assert_eq!(task.status, Status::Blocked, "{id}");
        assert_eq!(
            task.blocked_by,
            Some(y),
            "{id} now names the other failed ancestor"
        );
    }
}

// ----- release (an attempt its executor stopped) -----

#[test]
fn release_puts_a_running_task_back_without_spending_its_attempt() {
    let mut q = queue();
    let a = add_attempts(&mut q, "a", &[], 1);
    let b = add(&mut q, "b", &[a]);
    assert_eq!(q.start(a, T0).unwrap(), 1);
    q.take_events();
    q.release(a, Timestamp(5)).unwrap();
    let task = q.get(a).unwrap();
    assert_eq!((task.status, task.attempts), (Status::Pending, 0));
    assert_eq!(
        status(&q, b),
        Status::Pending,
        "its dependent waits on as before"
    );
    assert_eq!(q.next_runnable(T0), vec![a]);
    assert_eq!(
        q.take_events(),
        vec![Event::Released {
            id: a,
            attempt: 1,
            at: Timestamp(5)
        }]
    );
    // Its only attempt is still there, and the queue drains as if the stop never happened.
    assert_eq!(q.start(a, T0).unwrap(), 1);
    q.complete(a, Handoff::default(), T0).unwrap();
    run_ok(&mut q, b);
    assert_eq!(q.outcome(), Some(Outcome::Completed));
}

#[test]
fn release_refuses_tasks_that_are_not_running() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    let done = add(&mut q, "done", &[]);
    run_ok(&mut q, done);
    for (id, from) in [(a, Status::Pending), (done, Status::Done)] {
        assert!(matches!(
            q.release(id, T0),
            Err(Error::InvalidTransition { id: got, from: f, op: "release" }) if got == id && f == from
        ));
    }
    assert!(matches!(
        q.release(TaskId(99), T0),
        Err(Error::UnknownTask { .. })
    ));
}

#[test]
fn a_released_event_must_name_the_running_attempt() {
    let mut q = queue();
    let a = add_attempts(&mut q, "a", &[], 3);
    q.start(a, T0).unwrap();
    let before = q.snapshot();
    for attempt in [0, 2] {
        let event = Event::Released {
            id: a,
            attempt,
            at: T0,
        };
        assert!(
            matches!(q.apply(&event), Err(Error::InvalidEvent { .. })),
            "attempt {attempt}"
        );
        assert_eq!(q.snapshot(), before);
    }
    q.release(a, T0).unwrap();
    let pending = Event::Released {
        id: a,
        attempt: 0,
        at: T0,
    };
    assert!(matches!(q.apply(&pending), Err(Error::InvalidEvent { .. })));
}

#[test]
fn a_release_replays_to_the_same_state() {
    let mut q = queue();
    let a = add_attempts(&mut q, "a", &[], 2);
    let snapshot = q.snapshot();
    q.take_events();
    q.start(a, T0).unwrap();
    q.release(a, Timestamp(3)).unwrap();
    q.start(a, Timestamp(4)).unwrap();
    let events = q.take_events();
    let replayed = Queue::replay(Some(snapshot), &events, QueueConfig::default()).unwrap();
    assert_eq!(replayed.snapshot(), q.snapshot());
    assert_eq!(replayed.get(a).unwrap().attempts, 1);
}

// ----- amend (a corrected definition for an unfinished task) -----

#[test]
fn amend_gives_an_unfinished_task_new_inputs_and_limit_and_keeps_the_rest() {
    let mut q = queue();
    let a = add_attempts(&mut q, "a", &[], 1);
    let b = add(&mut q, "b", &[a]);
    let c = add(&mut q, "c", &[]);
    fail_hard(&mut q, a);
    assert_eq!(status(&q, b), Status::Blocked);
    q.take_events();
    q.amend(a, json!({ "run": "fixed" }), Some(4), Timestamp(5))
        .unwrap();
    q.amend(b, json!("b2"), None, Timestamp(5)).unwrap();
    q.amend(c, json!("c2"), Some(2), Timestamp(5)).unwrap();
    let task = q.get(a).unwrap();
    assert_eq!(
        (task.status, task.attempts, task.max_attempts),
        (Status::Failed, 1, 4)
    );
    assert_eq!(task.inputs, json!({ "run": "fixed" }));
    assert_eq!(
        task.error.as_ref().unwrap().kind,
        "boom",
        "the last error is kept"
    );
    assert_eq!(status(&q, b), Status::Blocked, "still blocked by a");
    assert_eq!(q.get(b).unwrap().max_attempts, 3, "None takes the default");
    assert_eq!(q.next_runnable(T0), vec![c], "c stays runnable");
    assert_eq!(
        q.events()[0],
        Event::Amended {
            id: a,
            inputs: json!({ "run": "fixed" }),
            max_attempts: 4,
            at: Timestamp(5),
        }
    );
    // The failed task runs its corrected inputs once retried, and unblocks b.
    q.retry(a, T0).unwrap();
    assert_eq!(q.start(a, T0).unwrap(), 1);
    assert_eq!(q.get(a).unwrap().inputs["run"], "fixed");
    q.complete(a, Handoff::default(), T0).unwrap();
    assert_eq!(status(&q, b), Status::Pending);
}

#[test]
fn amend_refuses_tasks_that_are_running_or_finished() {
    let mut q = queue();
    let running = add(&mut q, "a", &[]);
    let done = add(&mut q, "b", &[]);
    let skipped = add(&mut q, "c", &[]);
    run_ok(&mut q, done);
    q.start(skipped, T0).unwrap();
    q.skip(skipped, Handoff::default(), T0).unwrap();
    q.start(running, T0).unwrap();
    q.take_events();
    for (id, from) in [
        (running, Status::Running),
        (done, Status::Done),
        (skipped, Status::Skipped),
    ] {
        let before = q.get(id).unwrap().inputs.clone();
        assert_eq!(
            q.amend(id, json!("new"), None, T0),
            Err(Error::InvalidTransition {
                id,
                from,
                op: "amend"
            })
        );
        assert_eq!(q.get(id).unwrap().inputs, before);
    }
    assert_eq!(
        q.amend(TaskId(99), json!(1), None, T0),
        Err(Error::UnknownTask { id: TaskId(99) })
    );
    assert!(q.events().is_empty(), "a refused amend emits nothing");
}

#[test]
fn amend_refuses_a_limit_that_leaves_no_attempt_or_is_below_those_used() {
    let mut q = queue();
    let a = add_attempts(&mut q, "a", &[], 3);
    q.start(a, T0).unwrap();
    q.fail(a, TaskError::new("x", "y"), true, T0, T0).unwrap();
    q.start(a, T0).unwrap();
    q.fail(a, TaskError::new("x", "y"), true, T0, T0).unwrap();
    assert_eq!(status(&q, a), Status::Pending);
    let refused = |q: &mut Queue, limit| {
        let error = q.amend(a, json!(1), Some(limit), T0).unwrap_err();
        assert!(
            matches!(error, Error::InvalidSpec { .. }),
            "{limit}: {error}"
        );
        error.to_string()
    };
    assert!(refused(&mut q, 0).contains("0 attempts"));
    let text = refused(&mut q, 2);
    assert!(
        text.contains("has used 2 attempt(s), so a limit of 2 would leave it none"),
        "{text}"
    );
    q.amend(a, json!(1), Some(3), T0).unwrap();
    // A failed task may keep exactly the attempts it used (a retry resets them) but no fewer.
    let b = add_attempts(&mut q, "b", &[], 2);
    q.start(b, T0).unwrap();
    q.fail(b, TaskError::new("x", "y"), true, T0, T0).unwrap();
    q.start(b, T0).unwrap();
    q.fail(b, TaskError::new("x", "y"), false, T0, T0).unwrap();
    assert_eq!(status(&q, b), Status::Failed);
    assert!(matches!(
        q.amend(b, json!(1), Some(1), T0),
        Err(Error::InvalidSpec { .. })
    ));
    q.amend(b, json!(1), Some(2), T0).unwrap();
}

#[test]
fn amend_refuses_inputs_nested_too_deep() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    let mut deep = json!(1);
    for _ in 0..=cairn_queue::MAX_VALUE_DEPTH {
        deep = json!([deep]);
    }
    assert!(matches!(
        q.amend(a, deep, None, T0),
        Err(Error::InvalidSpec { .. })
    ));
}

/// Replay holds an `Amended` event to `amend`'s follow-up rule: new inputs for a guarded
/// follow-up whose parent may run again are refused; the same inputs (a new limit only), an
/// unguarded follow-up, and a follow-up of a finished parent replay.
#[test]
fn a_replayed_amend_of_a_guarded_follow_up_of_a_parent_not_done_is_refused() {
    let mut q = queue();
    let parent = add(&mut q, "parent", &[]);
    q.start(parent, T0).unwrap();
    let follow_up =
        |q: &mut Queue, spec: TaskSpec| q.enqueue(spec, EnqueuedBy::Task(parent), T0).unwrap().id;
    let child = follow_up(&mut q, TaskSpec::new("child").inputs(json!({ "url": "a" })));
    let free = follow_up(
        &mut q,
        TaskSpec::new("free").inputs(json!(1)).without_dedup(),
    );
    let amended = |id: TaskId, inputs: serde_json::Value| Event::Amended {
        id,
        inputs,
        max_attempts: 5,
        at: T0,
    };
    // Running, then pending again after a crash: either way it may enqueue `child` again.
    for step in ["running", "pending"] {
        let before = q.snapshot();
        let error = q.apply(&amended(child, json!({ "url": "a-fixed" })));
        assert!(
            matches!(error, Err(Error::InvalidEvent { .. })),
            "{step}: {error:?}"
        );
        assert_eq!(
            q.snapshot(),
            before,
            "{step}: a refused event changes nothing"
        );
        q.recover(T0);
    }
    q.apply(&amended(child, json!({ "url": "a" }))).unwrap();
    q.apply(&amended(free, json!(2))).unwrap();
    q.start(parent, T0).unwrap();
    q.complete(parent, Handoff::default(), T0).unwrap();
    q.apply(&amended(child, json!({ "url": "a-fixed" })))
        .unwrap();
    assert_eq!(q.get(child).unwrap().inputs, json!({ "url": "a-fixed" }));
}

/// Review 52 F8: a follow-up under the dedup guard keeps its inputs while its parent may run
/// again and enqueue them once more; once the parent is done, it may be amended.
#[test]
fn amend_refuses_new_inputs_for_a_guarded_follow_up_of_a_parent_not_done() {
    let mut q = queue();
    let parent = add(&mut q, "parent", &[]);
    q.start(parent, T0).unwrap();
    let child = q
        .enqueue(
            TaskSpec::new("child").inputs(json!({ "url": "a" })),
            EnqueuedBy::Task(parent),
            T0,
        )
        .unwrap()
        .id;
    q.recover(T0);
    assert_eq!(status(&q, parent), Status::Pending);
    let refused = q.amend(child, json!({ "url": "a-fixed" }), None, T0);
    assert!(
        matches!(&refused, Err(Error::InvalidSpec { reason }) if reason.contains("not done")),
        "{refused:?}"
    );
    // Its attempt limit may change; its inputs as they are count as no change.
    q.amend(child, json!({ "url": "a" }), Some(5), T0).unwrap();
    // The parent's rerun finds the follow-up it made.
    q.start(parent, T0).unwrap();
    let again = q
        .enqueue(
            TaskSpec::new("child").inputs(json!({ "url": "a" })),
            EnqueuedBy::Task(parent),
            T0,
        )
        .unwrap();
    assert_eq!((again.id, again.existing), (child, true));
    q.complete(parent, Handoff::default(), T0).unwrap();
    q.amend(child, json!({ "url": "a-fixed" }), None, T0)
        .unwrap();
    // A follow-up outside the guard may always be amended.
    let other = add(&mut q, "other", &[]);
    q.start(other, T0).unwrap();
    let free = q
        .enqueue(
            TaskSpec::new("child").inputs(json!(1)).without_dedup(),
            EnqueuedBy::Task(other),
            T0,
        )
        .unwrap()
        .id;
    q.amend(free, json!(2), None, T0).unwrap();
}

/// A parent that skipped itself never runs again (only failed tasks are retried), so it
/// cannot enqueue the old inputs once more: its follow-up may be amended as under a done one.
#[test]
fn amend_gives_new_inputs_to_a_guarded_follow_up_of_a_skipped_parent() {
    let mut q = queue();
    let parent = add(&mut q, "parent", &[]);
    q.start(parent, T0).unwrap();
    let child = q
        .enqueue(
            TaskSpec::new("child").inputs(json!({ "url": "a" })),
            EnqueuedBy::Task(parent),
            T0,
        )
        .unwrap()
        .id;
    q.skip(parent, Handoff::default(), T0).unwrap();
    q.amend(child, json!({ "url": "a-fixed" }), None, T0)
        .unwrap();
    assert_eq!(q.get(child).unwrap().inputs, json!({ "url": "a-fixed" }));
    let replayed = Queue::replay(None, &q.take_events(), QueueConfig::default()).unwrap();
    assert_eq!(replayed.snapshot(), q.snapshot());
}

#[test]
fn amend_keeps_the_dedup_guard_one_task_per_key() {
    let mut q = queue();
    let spec = |n: u32| TaskSpec::new("fetch").inputs(json!({ "page": n }));
    let a = q.enqueue(spec(1), EnqueuedBy::Root, T0).unwrap().id;
    let b = q.enqueue(spec(2), EnqueuedBy::Root, T0).unwrap().id;
    assert_eq!(
        q.amend(a, json!({ "page": 2 }), None, T0),
        Err(Error::DuplicateInputs { id: a, existing: b })
    );
    // Amending a task to the inputs it has is allowed (it is its own key).
    q.amend(a, json!({ "page": 1 }), None, T0).unwrap();
    q.amend(a, json!({ "page": 3 }), None, T0).unwrap();
    // The new inputs find the amended task; the old ones no longer do.
    let again = q.enqueue(spec(3), EnqueuedBy::Root, T0).unwrap();
    assert_eq!((again.id, again.existing), (a, true));
    let old = q.enqueue(spec(1), EnqueuedBy::Root, T0).unwrap();
    assert!(!old.existing);
    // A task outside the guard may share inputs with one inside it.
    let free = q
        .enqueue(spec(9).without_dedup(), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    q.amend(free, json!({ "page": 2 }), None, T0).unwrap();
    // The same holds after a replay and after a snapshot load.
    let events = q.take_events();
    let replayed = Queue::replay(None, &events, QueueConfig::default()).unwrap();
    let loaded = Queue::from_snapshot(q.snapshot(), QueueConfig::default()).unwrap();
    for mut copy in [replayed, loaded] {
        assert_eq!(copy.snapshot(), q.snapshot());
        let found = copy.enqueue(spec(3), EnqueuedBy::Root, T0).unwrap();
        assert_eq!((found.id, found.existing), (a, true));
    }
}

#[test]
fn amend_events_replay_and_are_checked_when_applied() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    let b = add(&mut q, "b", &[]);
    let snapshot = q.snapshot();
    q.take_events();
    q.amend(a, json!("new"), Some(5), Timestamp(2)).unwrap();
    run_ok(&mut q, b);
    let events = q.take_events();
    let replayed = Queue::replay(Some(snapshot), &events, QueueConfig::default()).unwrap();
    assert_eq!(replayed.snapshot(), q.snapshot());
    assert_eq!(replayed.get(a).unwrap().inputs, json!("new"));
    let bad = [
        (b, 3, "b is done"),
        (TaskId(7), 3, "unknown task"),
        (a, 0, "no attempts"),
    ];
    for (id, max_attempts, why) in bad {
        let event = Event::Amended {
            id,
            inputs: json!(1),
            max_attempts,
            at: T0,
        };
        assert!(
            matches!(q.apply(&event), Err(Error::InvalidEvent { .. })),
            "{why}"
        );
    }
    let d1 = q
        .enqueue(TaskSpec::new("d").inputs(json!(1)), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    let d2 = q
        .enqueue(TaskSpec::new("d").inputs(json!(2)), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    let duplicate = Event::Amended {
        id: d2,
        inputs: json!(1),
        max_attempts: 3,
        at: T0,
    };
    let error = q.apply(&duplicate).unwrap_err();
    assert!(error.to_string().contains(&d1.to_string()), "{error}");
    assert_eq!(
        q.get(d2).unwrap().inputs,
        json!(2),
        "a refused event changes nothing"
    );
}

// ----- recovery -----

#[test]
fn recover_resets_tasks_with_attempts_left() {
    let mut q = queue();
    let a = add_attempts(&mut q, "a", &[], 2);
    q.start(a, T0).unwrap();
    q.take_events();
    let report = q.recover(Timestamp(9));
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].id, a);
    assert_eq!(report[0].kind, "a");
    assert_eq!(report[0].attempt, 1);
    assert_eq!(report[0].now, Status::Pending);
    assert_eq!(status(&q, a), Status::Pending);
    assert_eq!(q.next_runnable(T0), vec![a]);
    assert_eq!(
        q.take_events(),
        vec![Event::Reset {
            id: a,
            at: Timestamp(9)
        }]
    );
}

#[test]
fn recover_fails_tasks_on_their_last_attempt_and_blocks_dependents() {
    let mut q = queue();
    let a = add_attempts(&mut q, "a", &[], 1);
    let b = add(&mut q, "b", &[a]);
    let idle = add(&mut q, "idle", &[]);
    q.start(a, T0).unwrap();
    q.take_events();
    let report = q.recover(Timestamp(9));
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].now, Status::Failed);
    let task = q.get(a).unwrap();
    assert_eq!(task.status, Status::Failed);
    assert_eq!(task.error.as_ref().unwrap().kind, "interrupted");
    assert_eq!(q.get(b).unwrap().blocked_by, Some(a));
    assert_eq!(
        status(&q, idle),
        Status::Pending,
        "not running, so untouched"
    );
    let events = q.take_events();
    assert!(matches!(
        events.as_slice(),
        [Event::Failed { id, retry_at: None, .. }] if *id == a
    ));
}

#[test]
fn recover_without_running_tasks_does_nothing() {
    let mut q = queue();
    add(&mut q, "a", &[]);
    q.take_events();
    assert!(q.recover(T0).is_empty());
    assert!(q.take_events().is_empty());
}

// ----- enqueue validation -----

#[test]
fn empty_kind_is_an_invalid_spec() {
    let mut q = queue();
    let err = q
        .enqueue(TaskSpec::new(""), EnqueuedBy::Root, T0)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSpec { .. }));
    assert!(q.is_empty());
}

#[test]
fn zero_attempts_is_an_invalid_spec() {
    let mut q = queue();
    let err = q
        .enqueue(TaskSpec::new("a").max_attempts(0), EnqueuedBy::Root, T0)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSpec { .. }));
    let mut q = Queue::new(QueueConfig {
        default_max_attempts: 0,
        ..QueueConfig::default()
    });
    let err = q
        .enqueue(TaskSpec::new("a"), EnqueuedBy::Root, T0)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSpec { .. }));
}

#[test]
fn default_attempts_come_from_the_config() {
    let mut q = Queue::new(QueueConfig {
        default_max_attempts: 7,
        ..QueueConfig::default()
    });
    let a = q
        .enqueue(TaskSpec::new("a"), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    assert_eq!(q.get(a).unwrap().max_attempts, 7);
}

#[test]
fn unknown_dependencies_are_named() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    let err = q
        .enqueue(
            TaskSpec::new("b").depends_on([TaskId(9), a, TaskId(4), TaskId(9)]),
            EnqueuedBy::Root,
            T0,
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownDependencies { kind, ids } if kind == "b" && ids == &vec![TaskId(9), TaskId(4)]),
        "{err:?}"
    );
    assert_eq!(q.len(), 1);
}

#[test]
fn duplicate_dependencies_are_collapsed_in_first_seen_order() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    let b = add(&mut q, "b", &[]);
    let c = add(&mut q, "c", &[b, a, b, a, b]);
    assert_eq!(q.get(c).unwrap().depends_on, vec![b, a]);
    run_ok(&mut q, a);
    run_ok(&mut q, b);
    assert_eq!(q.next_runnable(T0), vec![c], "each dependency counted once");
}

#[test]
fn follow_up_depth_is_parent_depth_plus_one() {
    let mut q = queue();
    let root = add(&mut q, "root", &[]);
    q.start(root, T0).unwrap();
    let child = q
        .enqueue(TaskSpec::new("child"), EnqueuedBy::Task(root), T0)
        .unwrap()
        .id;
    q.start(child, T0).unwrap();
    let grandchild = q
        .enqueue(TaskSpec::new("grandchild"), EnqueuedBy::Task(child), T0)
        .unwrap()
        .id;
    assert_eq!(q.get(root).unwrap().depth, 0);
    assert_eq!(q.get(child).unwrap().depth, 1);
    assert_eq!(q.get(grandchild).unwrap().depth, 2);
    assert_eq!(
        q.get(grandchild).unwrap().enqueued_by,
        EnqueuedBy::Task(child)
    );
}

#[test]
fn follow_up_of_unknown_parent_is_refused() {
    let mut q = queue();
    let err = q
        .enqueue(TaskSpec::new("child"), EnqueuedBy::Task(TaskId(3)), T0)
        .unwrap_err();
    assert!(matches!(err, Error::UnknownTask { id: TaskId(3) }));
}

#[test]
fn follow_up_of_a_parent_that_is_not_running_is_refused() {
    let mut q = queue();
    let parent = add(&mut q, "parent", &[]);
    let err = q
        .enqueue(TaskSpec::new("child"), EnqueuedBy::Task(parent), T0)
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidTransition { id, from: Status::Pending, .. } if id == parent)
    );
    run_ok(&mut q, parent);
    let err = q
        .enqueue(TaskSpec::new("child"), EnqueuedBy::Task(parent), T0)
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidTransition {
            from: Status::Done,
            ..
        }
    ));
}

// ----- bounds -----

#[test]
fn max_tasks_bound() {
    let mut q = Queue::new(QueueConfig {
        max_tasks: 2,
        ..QueueConfig::default()
    });
    add(&mut q, "a", &[]);
    add(&mut q, "b", &[]);
    let err = q
        .enqueue(TaskSpec::new("c"), EnqueuedBy::Root, T0)
        .unwrap_err();
    assert!(matches!(err, Error::TooManyTasks { limit: 2 }));
    assert_eq!(q.len(), 2);
}

#[test]
fn max_depth_bound() {
    let mut q = Queue::new(QueueConfig {
        max_depth: 1,
        ..QueueConfig::default()
    });
    let root = add(&mut q, "root", &[]);
    q.start(root, T0).unwrap();
    let child = q
        .enqueue(TaskSpec::new("child"), EnqueuedBy::Task(root), T0)
        .unwrap()
        .id;
    q.start(child, T0).unwrap();
    let err = q
        .enqueue(TaskSpec::new("grandchild"), EnqueuedBy::Task(child), T0)
        .unwrap_err();
    assert!(
        matches!(err, Error::TooDeep { parent, depth: 2, limit: 1 } if parent == child),
        "{err:?}"
    );
}

#[test]
fn max_children_bound() {
    let mut q = Queue::new(QueueConfig {
        max_children: 2,
        ..QueueConfig::default()
    });
    let root = add(&mut q, "root", &[]);
    let other = add(&mut q, "other", &[]);
    q.start(root, T0).unwrap();
    q.start(other, T0).unwrap();
    for n in 0..2 {
        q.enqueue(
            TaskSpec::new("child").inputs(json!(n)),
            EnqueuedBy::Task(root),
            T0,
        )
        .unwrap();
    }
    let err = q
        .enqueue(
            TaskSpec::new("child").inputs(json!(2)),
            EnqueuedBy::Task(root),
            T0,
        )
        .unwrap_err();
    assert!(matches!(err, Error::TooManyChildren { parent, limit: 2 } if parent == root));
    // The bound is per parent.
    q.enqueue(
        TaskSpec::new("child").inputs(json!(2)),
        EnqueuedBy::Task(other),
        T0,
    )
    .unwrap();
}

// ----- dedup guard -----

#[test]
fn dedup_returns_the_existing_task_and_records_nothing() {
    let mut q = queue();
    let spec = TaskSpec::new("fetch").inputs(json!({ "url": "u" }));
    let first = q.enqueue(spec.clone(), EnqueuedBy::Root, T0).unwrap();
    assert!(!first.existing);
    q.take_events();
    let second = q.enqueue(spec, EnqueuedBy::Root, T0).unwrap();
    assert!(second.existing);
    assert_eq!(second.id, first.id);
    assert_eq!(q.len(), 1);
    assert!(q.take_events().is_empty());
}

#[test]
fn dedup_ignores_object_key_order_at_every_level() {
    let mut q = queue();
    let a = q
        .enqueue(
            TaskSpec::new("k")
                .inputs(json!({ "x": 1, "y": { "p": [1, { "m": 1, "n": 2 }], "q": null } })),
            EnqueuedBy::Root,
            T0,
        )
        .unwrap();
    let b = q
        .enqueue(
            TaskSpec::new("k")
                .inputs(json!({ "y": { "q": null, "p": [1, { "n": 2, "m": 1 }] }, "x": 1 })),
            EnqueuedBy::Root,
            T0,
        )
        .unwrap();
    assert!(b.existing);
    assert_eq!(a.id, b.id);
}

#[test]
fn dedup_tells_different_inputs_and_kinds_apart() {
    let mut q = queue();
    let specs = [
        TaskSpec::new("k").inputs(json!([1, 2])),
        TaskSpec::new("k").inputs(json!([2, 1])),
        TaskSpec::new("k").inputs(json!("12")),
        TaskSpec::new("k").inputs(json!(12)),
        TaskSpec::new("k").inputs(json!({ "a": "b" })),
        TaskSpec::new("k").inputs(json!({ "ab": "" })),
        TaskSpec::new("k2").inputs(json!([1, 2])),
        TaskSpec::new("k"),
    ];
    for spec in specs {
        assert!(!q.enqueue(spec, EnqueuedBy::Root, T0).unwrap().existing);
    }
    assert_eq!(q.len(), 8);
}

#[test]
fn dedup_opt_out_creates_a_new_task_and_is_never_matched() {
    let mut q = queue();
    let first = q
        .enqueue(TaskSpec::new("k").without_dedup(), EnqueuedBy::Root, T0)
        .unwrap();
    let second = q
        .enqueue(TaskSpec::new("k").without_dedup(), EnqueuedBy::Root, T0)
        .unwrap();
    assert!(!second.existing);
    assert_ne!(first.id, second.id);
    // An opted-out task does not catch a later dedup-enabled one either.
    let third = q.enqueue(TaskSpec::new("k"), EnqueuedBy::Root, T0).unwrap();
    assert!(!third.existing);
    assert!(
        q.enqueue(TaskSpec::new("k"), EnqueuedBy::Root, T0)
            .unwrap()
            .existing
    );
}

#[test]
fn dedup_matches_tasks_in_every_status() {
    let mut q = queue();
    let done = q
        .enqueue(TaskSpec::new("done"), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    run_ok(&mut q, done);
    let failed = q
        .enqueue(TaskSpec::new("failed"), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    fail_hard(&mut q, failed);
    for (kind, id) in [("done", done), ("failed", failed)] {
        let again = q
            .enqueue(TaskSpec::new(kind), EnqueuedBy::Root, T0)
            .unwrap();
        assert!(again.existing);
        assert_eq!(again.id, id);
    }
}

#[test]
fn dedup_is_checked_before_the_bounds() {
    let mut q = Queue::new(QueueConfig {
        max_tasks: 1,
        ..QueueConfig::default()
    });
    let a = q
        .enqueue(TaskSpec::new("a"), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    let again = q.enqueue(TaskSpec::new("a"), EnqueuedBy::Root, T0).unwrap();
    assert_eq!(again.id, a);
    assert!(again.existing);
}

// ----- events and apply -----

#[test]
fn every_operation_emits_exactly_its_event() {
    let mut q = queue();
    let a = add_attempts(&mut q, "a", &[], 2);
    q.start(a, Timestamp(1)).unwrap();
    q.fail(
        a,
        TaskError::new("x", "y"),
        true,
        Timestamp(5),
        Timestamp(2),
    )
    .unwrap();
    q.start(a, Timestamp(5)).unwrap();
    q.complete(a, note("n"), Timestamp(6)).unwrap();
    q.start_phase(0, "build").unwrap();
    q.complete_phase(0, "build").unwrap();
    let events = q.take_events();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            Event::Enqueued { .. } => "enqueued",
            Event::Started { .. } => "started",
            Event::Failed { .. } => "failed",
            Event::Completed { .. } => "completed",
            Event::PhaseStarted { .. } => "phase_started",
            Event::PhaseCompleted { .. } => "phase_completed",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "enqueued",
            "started",
            "failed",
            "started",
            "completed",
            "phase_started",
            "phase_completed"
        ]
    );
    assert!(matches!(events[3], Event::Started { attempt: 2, .. }));
    assert!(q.take_events().is_empty(), "the outbox is drained");
}

#[test]
fn replaying_the_outbox_gives_the_same_state() {
    let mut q = queue();
    let a = add_attempts(&mut q, "a", &[], 1);
    let b = add(&mut q, "b", &[a]);
    let c = add(&mut q, "c", &[]);
    fail_hard(&mut q, a);
    q.retry(a, T0).unwrap();
    run_ok(&mut q, a);
    q.start(b, T0).unwrap();
    q.recover(Timestamp(4));
    run_ok(&mut q, c);
    let events = q.take_events();
    let replayed = Queue::replay(None, &events, QueueConfig::default()).unwrap();
    assert_eq!(replayed.snapshot(), q.snapshot());
    assert_eq!(replayed.counts(), q.counts());
    assert_eq!(replayed.next_runnable(T0), q.next_runnable(T0));
}

#[test]
fn apply_refuses_events_that_do_not_fit() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    let before = q.snapshot();
    let bad = [
        Event::Enqueued {
            id: TaskId(5),
            kind: "x".into(),
            inputs: json!(null),
            depends_on: vec![],
            max_attempts: 1,
            enqueued_by: EnqueuedBy::Root,
            dedup: false,
            at: T0,
        },
        Event::Enqueued {
            id: TaskId(1),
            kind: "x".into(),
            inputs: json!(null),
            depends_on: vec![TaskId(3)],
            max_attempts: 1,
            enqueued_by: EnqueuedBy::Root,
            dedup: false,
            at: T0,
        },
        Event::Enqueued {
            id: TaskId(1),
            kind: "x".into(),
            inputs: json!(null),
            depends_on: vec![a, a],
            max_attempts: 1,
            enqueued_by: EnqueuedBy::Root,
            dedup: false,
            at: T0,
        },
        Event::Enqueued {
            id: TaskId(1),
            kind: "".into(),
            inputs: json!(null),
            depends_on: vec![],
            max_attempts: 1,
            enqueued_by: EnqueuedBy::Root,
            dedup: false,
            at: T0,
        },
        Event::Enqueued {
            id: TaskId(1),
            kind: "x".into(),
            inputs: json!(null),
            depends_on: vec![],
            max_attempts: 1,
            enqueued_by: EnqueuedBy::Task(a),
            dedup: false,
            at: T0,
        },
        Event::Started {
            id: TaskId(9),
            attempt: 1,
            at: T0,
        },
        Event::Started {
            id: a,
            attempt: 2,
            at: T0,
        },
        Event::Completed {
            id: a,
            attempt: 1,
            handoff: Handoff::default(),
            at: T0,
        },
        Event::Reset { id: a, at: T0 },
        Event::Retried { id: a, at: T0 },
        Event::PhaseCompleted {
            index: 0,
            name: "p".into(),
        },
    ];
    for event in &bad {
        let err = q.apply(event).unwrap_err();
        assert!(
            matches!(err, Error::InvalidEvent { .. }),
            "{event:?}: {err:?}"
        );
        assert_eq!(q.snapshot(), before, "{event:?} changed state");
    }
    q.start(a, T0).unwrap();
    let wrong_attempt = Event::Completed {
        id: a,
        attempt: 2,
        handoff: Handoff::default(),
        at: T0,
    };
    assert!(matches!(
        q.apply(&wrong_attempt),
        Err(Error::InvalidEvent { .. })
    ));
    let retry_after_last = Event::Failed {
        id: a,
        attempt: 1,
        error: TaskError::new("x", "y"),
        retry_at: Some(T0),
        at: T0,
    };
    let mut one_attempt = queue();
    let t = add_attempts(&mut one_attempt, "t", &[], 1);
    one_attempt.start(t, T0).unwrap();
    let before = one_attempt.snapshot();
    assert!(matches!(
        one_attempt.apply(&retry_after_last),
        Err(Error::InvalidEvent { .. })
    ));
    assert_eq!(one_attempt.snapshot(), before);
}

#[test]
fn apply_does_not_fill_the_outbox() {
    let mut source = queue();
    add(&mut source, "a", &[]);
    let events = source.take_events();
    let mut q = queue();
    q.apply(&events[0]).unwrap();
    assert_eq!(q.len(), 1);
    assert!(q.take_events().is_empty());
}

// ----- phases -----

#[test]
fn phases_are_recorded_by_index() {
    let mut q = queue();
    assert!(!q.phase_completed(0));
    q.start_phase(0, "build").unwrap();
    q.start_phase(1, "build").unwrap();
    assert!(!q.phase_completed(0));
    q.complete_phase(1, "build").unwrap();
    assert!(q.phase_completed(1));
    assert!(!q.phase_completed(0));
    // Repeats are no-ops that record nothing new.
    q.take_events();
    q.start_phase(1, "build").unwrap();
    q.complete_phase(1, "build").unwrap();
    assert!(q.take_events().is_empty());
    let snapshot = q.snapshot();
    assert_eq!(
        snapshot.phases_started,
        vec![(0, "build".to_owned()), (1, "build".to_owned())]
    );
    assert_eq!(
        snapshot
            .phases_completed
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        [1]
    );
}

#[test]
fn phase_errors() {
    let mut q = queue();
    assert!(matches!(
        q.complete_phase(3, "x"),
        Err(Error::PhaseNotStarted { index: 3 })
    ));
    q.start_phase(3, "x").unwrap();
    assert!(matches!(
        q.start_phase(3, "y"),
        Err(Error::PhaseMismatch { index: 3, .. })
    ));
    assert!(matches!(
        q.complete_phase(3, "y"),
        Err(Error::PhaseMismatch { index: 3, .. })
    ));
}

// ----- reads -----

#[test]
fn counts_and_counts_by_kind() {
    let mut q = queue();
    let a = add(&mut q, "fetch", &[]);
    let b = add(&mut q, "fetch", &[]);
    let c = add(&mut q, "render", &[a]);
    run_ok(&mut q, a);
    fail_hard(&mut q, b);
    q.start(c, T0).unwrap();
    assert_eq!(
        q.counts(),
        StatusCounts {
            running: 1,
            done: 1,
            failed: 1,
            ..StatusCounts::default()
        }
    );
    let by_kind = q.counts_by_kind();
    assert_eq!(by_kind.len(), 2);
    assert_eq!(by_kind["fetch"].done, 1);
    assert_eq!(by_kind["fetch"].failed, 1);
    assert_eq!(by_kind["render"].running, 1);
    assert_eq!(by_kind["render"].total(), 1);
}

#[test]
fn dependency_handoffs_follow_depends_on_order_and_skip_unfinished() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    let b = add(&mut q, "b", &[]);
    let c = add(&mut q, "c", &[]);
    let d = add(&mut q, "d", &[c, a, b]);
    q.start(a, T0).unwrap();
    q.complete(a, note("from a"), T0).unwrap();
    q.start(c, T0).unwrap();
    q.skip(c, note("from c"), T0).unwrap();
    let handoffs = q.dependency_handoffs(d).unwrap();
    assert_eq!(handoffs, vec![(c, &note("from c")), (a, &note("from a"))]);
}

#[test]
fn an_empty_handoff_is_not_stored_but_still_reaches_dependents() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    let b = add(&mut q, "b", &[]);
    let c = add(&mut q, "c", &[a, b]);
    q.start(a, T0).unwrap();
    q.complete(a, Handoff::default(), T0).unwrap();
    q.start(b, T0).unwrap();
    q.skip(b, note("from b"), T0).unwrap();
    assert_eq!(
        q.get(a).unwrap().handoff,
        None,
        "nothing stored for an empty handoff"
    );
    assert_eq!(
        q.dependency_handoffs(c).unwrap(),
        vec![(a, &Handoff::default()), (b, &note("from b"))]
    );
    assert_eq!(q.handoffs_by_kind("a"), vec![(a, &Handoff::default())]);
    assert!(
        q.dependency_handoffs(c).unwrap().len() == 2 && q.handoffs_by_kind("c").is_empty(),
        "an unfinished task hands nothing on"
    );
}

#[test]
fn a_snapshot_that_stored_an_empty_handoff_loads_as_replay_builds_it() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    q.start(a, T0).unwrap();
    q.complete(a, Handoff::default(), T0).unwrap();
    let events = q.take_events();
    let mut old = q.snapshot();
    old.tasks[0].handoff = Some(Box::default());
    let loaded = Queue::from_snapshot(old, QueueConfig::default()).unwrap();
    let replayed = Queue::replay(None, &events, QueueConfig::default()).unwrap();
    assert_eq!(loaded.snapshot(), replayed.snapshot());
}

#[test]
fn handoffs_by_kind_in_creation_order() {
    let mut q = queue();
    let x1 = add(&mut q, "x", &[]);
    let y = add(&mut q, "y", &[]);
    let x2 = add(&mut q, "x", &[]);
    let x3 = add(&mut q, "x", &[]);
    q.start(x2, T0).unwrap();
    q.complete(x2, note("2"), T0).unwrap();
    q.start(x1, T0).unwrap();
    q.complete(x1, note("1"), T0).unwrap();
    q.start(y, T0).unwrap();
    q.complete(y, note("y"), T0).unwrap();
    let _ = x3;
    assert_eq!(
        q.handoffs_by_kind("x"),
        vec![(x1, &note("1")), (x2, &note("2"))]
    );
    assert!(q.handoffs_by_kind("nope").is_empty());
}

#[test]
fn task_id_parses_its_display_form() {
    assert_eq!("t42".parse::<TaskId>().unwrap(), TaskId(42));
    assert_eq!("7".parse::<TaskId>().unwrap(), TaskId(7));
    assert_eq!(TaskId(3).to_string(), "t3");
    // `u64`'s own parser takes a sign and an empty prefix is no id: all are refused.
    for text in [
        "tx", "+3", "t+3", "t-3", "-3", "t", "", " t3", "t3 ", "tt3", "3t",
    ] {
        assert!(
            matches!(text.parse::<TaskId>(), Err(Error::InvalidTaskId { text: ref t }) if t == text),
            "{text:?} must not parse as a task id"
        );
    }
}

#[test]
fn dedup_compares_numbers_by_value_and_type() {
    let mut q = queue();
    let enqueue = |q: &mut Queue, inputs: serde_json::Value| {
        q.enqueue(TaskSpec::new("n").inputs(inputs), EnqueuedBy::Root, T0)
            .unwrap()
    };
    let zero = enqueue(&mut q, json!({ "x": 0.0 }));
    let negative_zero = enqueue(&mut q, json!({ "x": -0.0 }));
    assert!(negative_zero.existing, "-0.0 equals 0.0 in JSON");
    assert_eq!(negative_zero.id, zero.id);
    // An integer and a float are different inputs, as serde_json keeps them.
    assert!(!enqueue(&mut q, json!({ "x": 0 })).existing);
    assert!(!enqueue(&mut q, json!({ "x": -1 })).existing);
    assert!(!enqueue(&mut q, json!({ "x": u64::MAX })).existing);
    assert!(enqueue(&mut q, json!({ "x": -1 })).existing);
}

#[test]
fn replayed_and_restored_queues_keep_the_first_dedup_owner() {
    let mut q = queue();
    let first = q
        .enqueue(TaskSpec::new("k"), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    let events = q.take_events();
    let mut replayed = Queue::replay(None, &events, QueueConfig::default()).unwrap();
    let again = replayed
        .enqueue(TaskSpec::new("k"), EnqueuedBy::Root, T0)
        .unwrap();
    assert!(again.existing);
    assert_eq!(again.id, first);
}

#[test]
fn runnable_merges_due_and_backed_off_tasks_in_id_order() {
    let mut q = queue();
    let a = add_attempts(&mut q, "a", &[], 3);
    let b = add_attempts(&mut q, "b", &[], 3);
    let c = add(&mut q, "c", &[]);
    for (id, retry_at) in [(a, 30), (b, 20)] {
        q.start(id, T0).unwrap();
        q.fail(id, TaskError::new("x", "y"), true, Timestamp(retry_at), T0)
            .unwrap();
    }
    assert_eq!(q.next_wakeup(), Some(Timestamp(20)));
    assert_eq!(q.next_runnable(Timestamp(19)), vec![c]);
    assert_eq!(q.next_runnable(Timestamp(20)), vec![b, c]);
    assert_eq!(q.next_runnable(Timestamp(30)), vec![a, b, c]);
    q.start(b, Timestamp(20)).unwrap();
    assert_eq!(q.next_wakeup(), Some(Timestamp(30)));
}

#[test]
fn recover_and_retry_are_replayed_from_a_mid_run_snapshot() {
    let mut q = queue();
    let a = add_attempts(&mut q, "a", &[], 1);
    let b = add(&mut q, "b", &[a]);
    q.start(a, T0).unwrap();
    let mid = q.snapshot();
    q.take_events();
    q.recover(Timestamp(1));
    assert_eq!(status(&q, b), Status::Blocked);
    q.retry(a, Timestamp(2)).unwrap();
    assert_eq!(status(&q, b), Status::Pending);
    let events = q.take_events();
    let replayed = Queue::replay(Some(mid), &events, QueueConfig::default()).unwrap();
    assert_eq!(replayed.snapshot(), q.snapshot());
}

// ----- values too deep to read back -----

/// `[[[...1...]]]`, nested `depth` arrays deep.
fn nested(depth: usize) -> serde_json::Value {
    let mut value = json!(1);
    for _ in 0..depth {
        value = json!([value]);
    }
    value
}

#[test]
fn inputs_nested_deeper_than_the_limit_are_refused_and_the_limit_itself_is_accepted() {
    let mut q = queue();
    let at_limit = q
        .enqueue(
            TaskSpec::new("deep").inputs(nested(cairn_queue::MAX_VALUE_DEPTH)),
            EnqueuedBy::Root,
            T0,
        )
        .expect("the limit itself is stored");
    assert!(!at_limit.existing);
    let refused = q.enqueue(
        TaskSpec::new("deeper").inputs(nested(cairn_queue::MAX_VALUE_DEPTH + 1)),
        EnqueuedBy::Root,
        T0,
    );
    assert!(
        matches!(&refused, Err(Error::InvalidSpec { reason }) if reason.contains("nest more than 100 levels")),
        "{refused:?}"
    );
    assert_eq!(q.len(), 1, "nothing was enqueued");
    // Wide but shallow values are fine, however large.
    let wide = json!({ "rows": (0..1000).map(|i| json!({ "i": i, "tags": ["a", "b"] })).collect::<Vec<_>>() });
    q.enqueue(TaskSpec::new("wide").inputs(wide), EnqueuedBy::Root, T0)
        .expect("shallow");
}

#[test]
fn a_handoff_nested_too_deep_is_refused_and_the_task_stays_running() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    q.start(a, T0).unwrap();
    let deep = Handoff {
        extra: nested(cairn_queue::MAX_VALUE_DEPTH + 1),
        ..Handoff::default()
    };
    for refused in [q.complete(a, deep.clone(), T0), q.skip(a, deep.clone(), T0)] {
        assert!(
            matches!(&refused, Err(Error::InvalidHandoff { id, .. }) if *id == a),
            "{refused:?}"
        );
    }
    assert_eq!(status(&q, a), Status::Running);
    let at_limit = Handoff {
        extra: nested(cairn_queue::MAX_VALUE_DEPTH),
        ..Handoff::default()
    };
    q.complete(a, at_limit, T0)
        .expect("the limit itself is stored");
}

#[test]
fn apply_refuses_events_carrying_values_nested_too_deep() {
    let mut q = queue();
    let a = add(&mut q, "a", &[]);
    q.start(a, T0).unwrap();
    let before = q.snapshot();
    let deep = nested(cairn_queue::MAX_VALUE_DEPTH + 1);
    for event in [
        Event::Enqueued {
            id: TaskId(1),
            kind: "k".into(),
            inputs: deep.clone(),
            depends_on: vec![],
            max_attempts: 1,
            enqueued_by: EnqueuedBy::Root,
            dedup: false,
            at: T0,
        },
        Event::Completed {
            id: a,
            attempt: 1,
            handoff: Handoff {
                extra: deep,
                ..Handoff::default()
            },
            at: T0,
        },
    ] {
        assert!(
            matches!(q.apply(&event), Err(Error::InvalidEvent { .. })),
            "{event:?}"
        );
        assert_eq!(q.snapshot(), before);
    }
}

#[test]
fn every_event_type_is_known_by_the_name_it_is_stored_under() {
    // Adapters tell a newer build's journal from a damaged one by `Event::is_known_type`:
    // every type this build writes must be on its list.
    let mut q = queue();
    q.start_phase(0, "p").unwrap();
    let a = add(&mut q, "a", &[]);
    let b = add(&mut q, "b", &[]);
    let c = add(&mut q, "c", &[]);
    let d = add(&mut q, "d", &[]);
    q.start(a, T0).unwrap();
    q.complete(a, Handoff::default(), T0).unwrap();
    q.start(b, T0).unwrap();
    q.skip(b, Handoff::default(), T0).unwrap();
    q.start(c, T0).unwrap();
    q.fail(c, TaskError::new("x", "y"), false, T0, T0).unwrap();
    q.retry(c, T0).unwrap();
    q.amend(c, json!({ "new": true }), None, T0).unwrap();
    q.start(c, T0).unwrap();
    q.release(c, T0).unwrap();
    q.start(d, T0).unwrap();
    q.recover(T0);
    for id in [c, d] {
        q.start(id, T0).unwrap();
        q.complete(id, Handoff::default(), T0).unwrap();
    }
    q.complete_phase(0, "p").unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for event in q.take_events() {
        let stored = serde_json::to_value(&event).unwrap();
        assert_eq!(stored["type"], event.type_name(), "{event:?}");
        assert!(Event::is_known_type(event.type_name()), "{event:?}");
        seen.insert(event.type_name());
    }
    assert_eq!(seen.len(), 11, "the case writes every type: {seen:?}");
    assert!(!Event::is_known_type("Started"), "tags are matched exactly");
    assert!(!Event::is_known_type(""));
}
