//! The text of the errors a person reads: ids as `t5, t6`, times as `YYYY-MM-DD HH:MM:SS
//! UTC`, and no Rust `Debug` output. Other tests match on variants; these check the words,
//! because the words are what these tests are about.

use cairn_queue::{EnqueuedBy, Error, Queue, QueueConfig, TaskError, TaskId, TaskSpec, Timestamp};
use serde_json::json;

const T0: Timestamp = Timestamp(0);

fn no_debug_output(text: &str) {
    for debug in ["TaskId(", "Timestamp(", "Some(", "None", "[", "]"] {
        assert!(
            !text.contains(debug),
            "{text:?} shows Debug output {debug:?}"
        );
    }
}

#[test]
fn unknown_dependencies_are_listed_as_ids() {
    let mut q = Queue::new(QueueConfig::default());
    let err = q
        .enqueue(
            TaskSpec::new("k").depends_on([TaskId(5), TaskId(6)]),
            EnqueuedBy::Root,
            T0,
        )
        .unwrap_err();
    assert!(matches!(err, Error::UnknownDependencies { .. }), "{err:?}");
    let text = err.to_string();
    assert_eq!(text, "unknown dependencies t5, t6 for a task of kind `k`");
    no_debug_output(&text);
}

#[test]
fn a_task_waiting_on_dependencies_names_them_and_no_backoff() {
    let mut q = Queue::new(QueueConfig::default());
    let a = q
        .enqueue(TaskSpec::new("a"), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    let b = q
        .enqueue(TaskSpec::new("b").depends_on([a]), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    let err = q.start(b, T0).unwrap_err();
    assert!(matches!(err, Error::NotReady { .. }), "{err:?}");
    let text = err.to_string();
    assert_eq!(text, "task t1 is not ready: waiting on t0");
    no_debug_output(&text);
}

#[test]
fn a_task_in_backoff_shows_when_it_may_start() {
    let mut q = Queue::new(QueueConfig::default());
    let a = q
        .enqueue(TaskSpec::new("a").max_attempts(3), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    q.start(a, T0).unwrap();
    // 2026-01-01 00:00:00.500 UTC: the message shows whole seconds, as every cairn message does.
    let not_before = Timestamp(1_767_225_600_500);
    q.fail(a, TaskError::new("flaky", "again"), true, not_before, T0)
        .unwrap();
    let err = q.start(a, Timestamp(1)).unwrap_err();
    assert!(matches!(err, Error::NotReady { .. }), "{err:?}");
    let text = err.to_string();
    assert_eq!(
        text,
        "task t0 is not ready: not before 2026-01-01 00:00:00 UTC"
    );
    no_debug_output(&text);
}

#[test]
fn both_reasons_are_joined_and_a_bare_refusal_has_neither() {
    let both = Error::NotReady {
        id: TaskId(1),
        waiting_on: vec![TaskId(0), TaskId(7)],
        not_before: Some(Timestamp(100)),
    };
    assert_eq!(
        both.to_string(),
        "task t1 is not ready: waiting on t0, t7, not before 1970-01-01 00:00:00 UTC"
    );
    let neither = Error::NotReady {
        id: TaskId(1),
        waiting_on: Vec::new(),
        not_before: None,
    };
    assert_eq!(neither.to_string(), "task t1 is not ready");
}

#[test]
fn a_snapshot_cycle_is_listed_as_ids() {
    let mut q = Queue::new(QueueConfig::default());
    let a = q
        .enqueue(TaskSpec::new("step").inputs(json!(0)), EnqueuedBy::Root, T0)
        .unwrap()
        .id;
    q.enqueue(
        TaskSpec::new("step").inputs(json!(1)).depends_on([a]),
        EnqueuedBy::Root,
        T0,
    )
    .unwrap();
    let mut snapshot = q.snapshot();
    // A self-dependency is the smallest cycle, and its text is exact.
    snapshot.tasks[0].depends_on = vec![TaskId(0)];
    let err = Queue::from_snapshot(snapshot, QueueConfig::default()).unwrap_err();
    assert!(matches!(err, Error::Cycle { .. }), "{err:?}");
    let text = err.to_string();
    assert_eq!(text, "snapshot has a dependency cycle through t0");
    no_debug_output(&text);
}

#[test]
fn timestamps_show_as_utc_dates() {
    assert_eq!(Timestamp(0).to_string(), "1970-01-01 00:00:00 UTC");
    // 2024-02-29 12:34:56 UTC: a leap day.
    assert_eq!(
        Timestamp(1_709_210_096_789).to_string(),
        "2024-02-29 12:34:56 UTC"
    );
    // The far future saturates nowhere: every u64 has a date.
    assert!(Timestamp(u64::MAX).to_string().ends_with(" UTC"));
}
