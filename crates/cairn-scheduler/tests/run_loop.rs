//! `run_until`: ticks due jobs and returns as soon as `stop` completes, without sleeping out
//! its poll interval; zero intervals in the config are floored so nothing spins.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cairn_checkpoint::{JobId, MemoryJobStore};
use cairn_queue::Timestamp;
use cairn_scheduler::{
    JobRunner, ManualClock, NewJob, RunFailed, RunRequest, RunSucceeded, Schedule, Scheduler,
    SchedulerConfig,
};
use common::{HookedStore, StoreHooks};
use tokio::sync::oneshot;

/// Succeeds, and tells the test about the first run.
#[derive(Debug)]
struct Signalling(Mutex<Option<oneshot::Sender<RunRequest>>>);

#[async_trait]
impl JobRunner for Signalling {
    async fn run(&self, request: &RunRequest) -> Result<RunSucceeded, RunFailed> {
        if let Some(tx) = self.0.lock().unwrap().take() {
            let _ = tx.send(request.clone());
        }
        Ok(RunSucceeded::default())
    }
}

#[tokio::test]
async fn run_until_runs_the_due_job_and_stops_when_asked() {
    let (tx, rx) = oneshot::channel();
    let clock = ManualClock::new(Timestamp(1_000_000));
    let scheduler = Scheduler::with_config(
        Arc::new(MemoryJobStore::new()),
        Arc::new(Signalling(Mutex::new(Some(tx)))),
        Arc::new(clock.clone()),
        SchedulerConfig {
            // Long enough that a test which had to wait it out would visibly hang.
            poll_interval: Duration::from_secs(3600),
            ..SchedulerConfig::default()
        },
    );
    let id = JobId::new("looped").unwrap();
    scheduler
        .jobs()
        .add(NewJob::new(
            id.clone(),
            "looped",
            Schedule::every(Duration::from_secs(60)).unwrap(),
            "wf",
        ))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    let seen = Arc::new(Mutex::new(None));
    let seen_in_stop = seen.clone();
    let stop = async move {
        let request = rx.await.expect("the job ran");
        *seen_in_stop.lock().unwrap() = Some(request);
    };
    scheduler.run_until(stop).await.unwrap();
    let request = seen
        .lock()
        .unwrap()
        .take()
        .expect("the stop future saw the run");
    assert_eq!(request.job_id, id);
    assert_eq!(request.scheduled_for, Timestamp(1_060_000));
    let job = scheduler.jobs().show(&id).await.unwrap();
    assert_eq!(job.next_run_at, Some(Timestamp(1_120_000)));
}

/// Counts `list` calls and wakes a waiter at each one.
#[derive(Debug, Default)]
struct CountingLists {
    lists: std::sync::atomic::AtomicUsize,
    listed: tokio::sync::Notify,
}

#[async_trait]
impl StoreHooks for CountingLists {
    async fn before_list(&self) {
        self.lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.listed.notify_one();
    }
}

// Tokio's paused clock: the sleeps between ticks advance virtual time only, so the test
// measures how long `run_until` waits without waiting itself.
#[tokio::test(start_paused = true)]
async fn a_zero_poll_interval_waits_a_second_between_looks_instead_of_spinning() {
    let store = Arc::new(HookedStore::<CountingLists>::default());
    let scheduler = Scheduler::with_config(
        store.clone(),
        Arc::new(Signalling(Mutex::new(None))),
        Arc::new(ManualClock::new(Timestamp(1_000_000))),
        SchedulerConfig {
            poll_interval: Duration::ZERO,
            ..SchedulerConfig::default()
        },
    );
    let started = tokio::time::Instant::now();
    let watched = store.clone();
    let stop = async move {
        while watched
            .hooks
            .lists
            .load(std::sync::atomic::Ordering::SeqCst)
            < 10
        {
            watched.hooks.listed.notified().await;
        }
    };
    scheduler.run_until(stop).await.unwrap();
    // Two lists per loop (tick, then the wait's look): ten lists are at least four waits of a
    // second. With no floor, a zero poll interval listed the store in a busy loop.
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "{:?} of virtual time for 10 lists",
        started.elapsed()
    );
}

/// Always reports its run as cut short by a shutdown.
#[derive(Debug, Default)]
struct AlwaysInterrupted(std::sync::atomic::AtomicUsize);

#[async_trait]
impl JobRunner for AlwaysInterrupted {
    async fn run(&self, _: &RunRequest) -> Result<RunSucceeded, RunFailed> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(RunFailed::interrupted(None, "shutting down"))
    }
}

#[tokio::test]
async fn a_zero_one_shot_retry_still_waits_a_second_before_the_retry() {
    let clock = ManualClock::new(Timestamp(1_000_000));
    let runner = Arc::new(AlwaysInterrupted::default());
    let scheduler = Scheduler::with_config(
        Arc::new(MemoryJobStore::new()),
        runner.clone(),
        Arc::new(clock.clone()),
        SchedulerConfig {
            one_shot_retry: Duration::ZERO,
            ..SchedulerConfig::default()
        },
    );
    let id = JobId::new("once").unwrap();
    scheduler
        .jobs()
        .add(NewJob::new(
            id.clone(),
            "once",
            Schedule::once(Timestamp(1_000_000)),
            "wf",
        ))
        .await
        .unwrap();
    assert_eq!(scheduler.tick().await.unwrap().runs.len(), 1);
    let job = scheduler.jobs().show(&id).await.unwrap();
    // Due again at once, an interrupted one-shot job was restarted by every tick.
    assert_eq!(job.next_run_at, Some(Timestamp(1_001_000)));
    assert!(scheduler.tick().await.unwrap().runs.is_empty());
    clock.advance(Duration::from_secs(1));
    assert_eq!(scheduler.tick().await.unwrap().runs.len(), 1);
    assert_eq!(runner.0.load(std::sync::atomic::Ordering::SeqCst), 2);
}
