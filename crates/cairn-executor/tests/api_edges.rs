//! Edges of the public API: retry backoff at sub-millisecond and saturating extremes, and
//! handlers registered through smart pointers (`Arc<dyn Handler>`, `Box<dyn Handler>`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunStatus};
use cairn_executor::{
    Disposition, Executor, ExecutorConfig, Finish, Handler, HandlerResult, Phase, Registry,
    RetryPolicy, RunPlan, RunSignals, Start, TaskContext,
};
use cairn_queue::{Handoff, TaskId, TaskSpec};

/// Asserts that `delay` lies in `[full/2, full]`, the documented jitter range.
fn assert_in_jitter_range(delay: Duration, full: Duration, what: &str) {
    assert!(
        delay >= full / 2 && delay <= full,
        "{what}: {delay:?} not in [{:?}, {full:?}]",
        full / 2
    );
}

#[test]
fn a_sub_millisecond_base_still_backs_off_and_doubles() {
    let policy = RetryPolicy {
        base: Duration::from_micros(500),
        max: Duration::from_secs(60),
        seed: 11,
    };
    for task in 0..8 {
        for attempt in [1u32, 2, 5, 12, 16] {
            let full = Duration::from_micros(500) * (1u32 << (attempt - 1));
            let delay = policy.delay(TaskId(task), attempt);
            assert!(delay > Duration::ZERO, "attempt {attempt} backs off");
            assert_in_jitter_range(delay, full, &format!("task {task} attempt {attempt}"));
            assert_eq!(delay, policy.delay(TaskId(task), attempt), "deterministic");
        }
    }
    // Attempt 18 would be 65.536 s: capped at `max`.
    assert_in_jitter_range(
        policy.delay(TaskId(0), 18),
        Duration::from_secs(60),
        "capped",
    );
}

#[test]
fn a_nanosecond_base_is_not_rounded_away() {
    let policy = RetryPolicy {
        base: Duration::from_nanos(3),
        max: Duration::from_secs(1),
        seed: 5,
    };
    // 3 ns · 2^9 = 1536 ns: well under a millisecond, and not zero.
    let delay = policy.delay(TaskId(1), 10);
    assert_in_jitter_range(delay, Duration::from_nanos(1536), "attempt 10");
}

#[test]
fn huge_attempts_and_durations_saturate_at_max_without_panicking() {
    let cases = [
        (Duration::from_micros(500), Duration::from_secs(60)),
        (Duration::from_nanos(1), Duration::MAX),
        (Duration::MAX, Duration::MAX),
        (Duration::MAX, Duration::from_secs(1)),
        (Duration::from_secs(u64::MAX / 3), Duration::MAX),
    ];
    for (base, max) in cases {
        let policy = RetryPolicy { base, max, seed: 3 };
        for attempt in [100u32, 127, 128, 129, 1_000, u32::MAX] {
            let delay = policy.delay(TaskId(u64::MAX), attempt);
            assert_in_jitter_range(delay, max, &format!("base {base:?} attempt {attempt}"));
            assert_eq!(delay, policy.delay(TaskId(u64::MAX), attempt));
        }
    }
    // A base already past `max` is capped from the first attempt on.
    let policy = RetryPolicy {
        base: Duration::MAX,
        max: Duration::from_millis(10),
        seed: 0,
    };
    assert_in_jitter_range(
        policy.delay(TaskId(0), 1),
        Duration::from_millis(10),
        "attempt 1",
    );
    // Attempt 0 (never charged) is treated as attempt 1, not as a shift by -1.
    assert_in_jitter_range(
        policy.delay(TaskId(0), 0),
        Duration::from_millis(10),
        "attempt 0",
    );
}

#[test]
fn a_zero_base_or_max_means_no_backoff() {
    let zero_base = RetryPolicy {
        base: Duration::ZERO,
        max: Duration::from_secs(1),
        seed: 1,
    };
    let zero_max = RetryPolicy {
        base: Duration::from_secs(1),
        max: Duration::ZERO,
        seed: 1,
    };
    for attempt in [1u32, 40, u32::MAX] {
        assert_eq!(zero_base.delay(TaskId(2), attempt), Duration::ZERO);
        assert_eq!(zero_max.delay(TaskId(2), attempt), Duration::ZERO);
    }
}

/// A handler that notes the kind of every task it runs.
#[derive(Debug, Default)]
struct KindLog {
    kinds: Mutex<Vec<String>>,
}

#[async_trait]
impl Handler for KindLog {
    async fn run(&self, ctx: TaskContext) -> HandlerResult {
        self.kinds.lock().unwrap().push(ctx.task().kind.clone());
        Ok(Finish::Complete(Handoff {
            done: vec![ctx.task().kind.clone()],
            ..Handoff::default()
        }))
    }
}

#[tokio::test]
async fn one_arc_dyn_handler_serves_two_kinds_in_a_run() {
    let log = Arc::new(KindLog::default());
    let shared: Arc<dyn Handler> = log.clone();
    let registry = Registry::new()
        .with("fetch", Arc::clone(&shared))
        .with("store", shared);
    let factory = MemoryFactory::new();
    let executor = Executor::new(
        Arc::new(factory.clone()),
        registry,
        ExecutorConfig::default(),
    )
    .unwrap();
    let mut phase = Phase::new("both");
    let fetch = phase.task(TaskSpec::new("fetch"), []);
    phase.task(TaskSpec::new("store"), [fetch]);
    let plan = RunPlan::new("wf", "scope").phase(phase);

    let report = executor
        .run(plan, Start::Fresh, RunSignals::default())
        .await
        .unwrap();

    assert_eq!(report.disposition, Disposition::Complete);
    assert!(report.durable);
    assert_eq!(report.counts.done, 2);
    // `store` depends on `fetch`, so the one shared instance saw them in this order.
    assert_eq!(*log.kinds.lock().unwrap(), ["fetch", "store"]);
    let meta = factory.load_meta(&report.run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Completed);
}

#[tokio::test]
async fn a_boxed_dyn_handler_registers_and_runs() {
    let log = Arc::new(KindLog::default());
    // A box around the shared log, so the test can still read what the box ran.
    let boxed: Box<dyn Handler> = Box::new(Arc::clone(&log));
    let registry = Registry::new().with("boxed", boxed);
    let executor = Executor::new(
        Arc::new(MemoryFactory::new()),
        registry,
        ExecutorConfig::default(),
    )
    .unwrap();
    let mut phase = Phase::new("one");
    phase.task(TaskSpec::new("boxed"), []);
    let plan = RunPlan::new("wf", "scope").phase(phase);

    let report = executor
        .run(plan, Start::Fresh, RunSignals::default())
        .await
        .unwrap();

    assert_eq!(report.disposition, Disposition::Complete);
    assert_eq!(*log.kinds.lock().unwrap(), ["boxed"]);
}

#[tokio::test]
async fn a_fresh_run_is_not_begun_once_shutdown_is_asked() {
    let log = Arc::new(KindLog::default());
    let registry = Registry::new().with("fetch", Arc::clone(&log));
    let factory = MemoryFactory::new();
    let executor = Executor::new(
        Arc::new(factory.clone()),
        registry,
        ExecutorConfig::default(),
    )
    .unwrap();
    let plan = || {
        let mut phase = Phase::new("one");
        phase.task(TaskSpec::new("fetch"), []);
        RunPlan::new("wf", "scope").phase(phase)
    };
    let signals = RunSignals::default();
    signals.shutdown.cancel();
    for start in [Start::Fresh, Start::Auto] {
        let refused = executor
            .run(plan(), start, signals.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(refused, cairn_executor::Error::ShutDownBeforeBegin { .. }),
            "{refused:?}"
        );
    }
    // Nothing was written and nothing ran.
    let stored = factory
        .list(&cairn_checkpoint::RunFilter::default())
        .await
        .unwrap();
    assert!(stored.is_empty(), "{stored:?}");
    assert!(log.kinds.lock().unwrap().is_empty());
}
