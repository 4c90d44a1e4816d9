//! The pure outcome classification and the retry backoff.

use std::time::Duration;

use cairn_executor::{CancelCause, Disposition, FailedTask, RetryPolicy, RunStop, classify};
use cairn_queue::{TaskError, TaskId};

fn fail_kind(stop: RunStop) -> String {
    match classify(Some(&stop)) {
        Disposition::Fail(error) => error.kind,
        other => panic!("expected Fail for {stop:?}, got {other:?}"),
    }
}

fn failed(kind: &str) -> FailedTask {
    FailedTask {
        id: TaskId(4),
        kind: "work".to_owned(),
        name: None,
        error: Some(TaskError::new(kind, "why")),
    }
}

#[test]
fn no_stop_completes() {
    assert_eq!(classify(None), Disposition::Complete);
}

#[test]
fn only_a_shutdown_leaves_the_run_running() {
    assert_eq!(
        classify(Some(&RunStop::Cancelled(CancelCause::Shutdown))),
        Disposition::LeaveRunning
    );
    assert_eq!(
        fail_kind(RunStop::Cancelled(CancelCause::Caller)),
        "cancelled"
    );
    assert_eq!(
        fail_kind(RunStop::Cancelled(CancelCause::Deadline)),
        "deadline"
    );
}

#[test]
fn every_other_stop_fails_with_a_kind_that_says_why() {
    let tasks = RunStop::TasksFailed {
        failed: vec![failed("bad_input")],
        blocked: vec![TaskId(5)],
    };
    assert_eq!(fail_kind(tasks), "task_failed");
    let panicked = RunStop::TasksFailed {
        failed: vec![failed("bad_input"), failed("panic")],
        blocked: vec![],
    };
    assert_eq!(fail_kind(panicked), "panic");
    assert_eq!(fail_kind(RunStop::Build("unknown kind".into())), "build");
    assert_eq!(
        fail_kind(RunStop::Panicked("boom".into())),
        "executor_panic"
    );
    let poisoned = cairn_checkpoint::Error::Injected { op: "append" };
    assert_eq!(fail_kind(RunStop::Checkpoint(poisoned)), "checkpoint");
    let refused = cairn_queue::Error::UnknownTask { id: TaskId(9) };
    assert_eq!(fail_kind(RunStop::Queue(refused)), "queue");
}

#[test]
fn the_fail_message_names_the_failed_tasks() {
    let Disposition::Fail(error) = classify(Some(&RunStop::TasksFailed {
        failed: vec![failed("bad_input")],
        blocked: vec![],
    })) else {
        panic!("expected Fail");
    };
    assert!(error.message.contains("t4"));
    assert!(error.message.contains("bad_input"));
}

#[test]
fn a_named_failed_task_is_called_by_its_name_alone_and_an_unnamed_one_by_queue_id() {
    let named = FailedTask {
        name: Some("compile".to_owned()),
        ..failed("exit_code")
    };
    let stop = RunStop::TasksFailed {
        failed: vec![named, failed("bad_input")],
        blocked: vec![TaskId(5)],
    };
    assert_eq!(
        stop.to_string(),
        "2 task(s) failed; `compile`: exit_code: why; t4 (work): bad_input: why; \
         1 dependent(s) blocked"
    );
}

#[test]
fn backoff_grows_exponentially_within_jitter_bounds_and_is_capped() {
    let policy = RetryPolicy {
        base: Duration::from_millis(100),
        max: Duration::from_millis(1_000),
        seed: 42,
    };
    for attempt in 1..=10u32 {
        let full = (100u64 << (attempt - 1)).min(1_000);
        let delay = policy.delay(TaskId(1), attempt).as_millis() as u64;
        assert!(
            delay >= full / 2 && delay <= full,
            "attempt {attempt}: {delay} ms not in [{}, {full}]",
            full / 2
        );
    }
}

#[test]
fn backoff_jitter_is_deterministic_per_seed_and_spreads_tasks() {
    let policy = RetryPolicy {
        base: Duration::from_secs(10),
        max: Duration::from_secs(60),
        seed: 7,
    };
    assert_eq!(policy.delay(TaskId(3), 2), policy.delay(TaskId(3), 2));
    let delays: std::collections::BTreeSet<Duration> =
        (0..20).map(|t| policy.delay(TaskId(t), 1)).collect();
    assert!(
        delays.len() > 10,
        "tasks that failed together do not retry in lockstep"
    );
    let other_seed = RetryPolicy { seed: 8, ..policy };
    assert!((0..20).any(|t| other_seed.delay(TaskId(t), 1) != policy.delay(TaskId(t), 1)));
}

#[test]
fn a_run_error_names_the_first_failures_and_counts_the_rest() {
    let many: Vec<FailedTask> = (0..5_000)
        .map(|n| FailedTask {
            name: Some(format!("task{n}")),
            ..failed("exit_code")
        })
        .collect();
    let text = RunStop::TasksFailed {
        failed: many,
        blocked: Vec::new(),
    }
    .to_string();
    assert!(
        text.starts_with("5000 task(s) failed; `task0`: exit_code: why;"),
        "{text}"
    );
    assert!(text.contains("`task9`"), "{text}");
    assert!(!text.contains("`task10`"), "{text}");
    assert!(
        text.ends_with(&format!(
            "; and {} more (each task's error is in its run's task table)",
            5_000 - cairn_executor::LISTED_FAILURES
        )),
        "{text}"
    );
    assert!(text.len() < 1_000, "{} bytes", text.len());
}
