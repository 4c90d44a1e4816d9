//! `run_until`: ticks due jobs and returns as soon as `stop` completes, without sleeping out
//! its poll interval.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cairn_checkpoint::{JobId, MemoryJobStore};
use cairn_queue::Timestamp;
use cairn_scheduler::{
    JobRunner, ManualClock, NewJob, RunFailed, RunRequest, RunSucceeded, Schedule, Scheduler,
    SchedulerConfig,
};
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
