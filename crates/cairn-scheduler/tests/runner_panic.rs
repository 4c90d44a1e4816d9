//! A runner that panics: the panic is one failed run for the breaker, and `tick` goes on.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cairn_checkpoint::{JobId, MemoryJobStore};
use cairn_queue::Timestamp;
use cairn_scheduler::{
    JobRunner, JobStatus, ManualClock, NewJob, RunFailed, RunRequest, RunSucceeded, Schedule,
    Scheduler,
};

/// Panics for job `explodes` (with a `String` payload, then a `&str` one), succeeds for others.
#[derive(Debug, Default)]
struct ExplodingRunner {
    panics: AtomicUsize,
    runs: AtomicUsize,
}

#[async_trait]
impl JobRunner for ExplodingRunner {
    async fn run(&self, request: &RunRequest) -> Result<RunSucceeded, RunFailed> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if request.job_id.as_str() == "explodes" {
            tokio::task::yield_now().await;
            if self.panics.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("handler bug number {}", 1);
            }
            panic!("handler bug");
        }
        Ok(RunSucceeded::default())
    }
}

#[tokio::test]
async fn a_panicking_runner_counts_as_failed_runs_and_trips_the_breaker() {
    let clock = ManualClock::new(Timestamp(1_767_225_600_000));
    let runner = Arc::new(ExplodingRunner::default());
    let scheduler = Scheduler::new(
        Arc::new(MemoryJobStore::new()),
        runner.clone(),
        Arc::new(clock.clone()),
    );
    let every = || Schedule::every(Duration::from_secs(60)).unwrap();
    let explodes = JobId::new("explodes").unwrap();
    let steady = JobId::new("steady").unwrap();
    scheduler
        .jobs()
        .add(NewJob::new(explodes.clone(), "x", every(), "wf").max_consecutive_errors(2))
        .await
        .unwrap();
    scheduler
        .jobs()
        .add(NewJob::new(steady.clone(), "s", every(), "wf"))
        .await
        .unwrap();

    clock.advance(Duration::from_secs(60));
    // The panic used to unwind through `tick`: the job stayed claimed, its outcome was never
    // recorded, so its breaker could never trip, and the later job did not run.
    let report = scheduler.tick().await.unwrap();
    assert_eq!(report.runs.len(), 2);
    let failed = report.runs[0].outcome.as_ref().unwrap_err();
    assert!(
        failed.message.contains("handler bug number 1"),
        "{failed:?}"
    );
    assert!(!failed.interrupted);
    assert!(report.runs[1].outcome.is_ok());
    let job = scheduler.jobs().show(&explodes).await.unwrap();
    assert_eq!((job.status, job.consecutive_errors), (JobStatus::Active, 1));
    assert!(job.last_error.unwrap().contains("panicked"));

    clock.advance(Duration::from_secs(60));
    let report = scheduler.tick().await.unwrap();
    assert_eq!(report.tripped, vec![explodes.clone()]);
    let job = scheduler.jobs().show(&explodes).await.unwrap();
    assert_eq!((job.status, job.next_run_at), (JobStatus::Failed, None));
    assert!(job.last_error.unwrap().contains("handler bug"));
    assert_eq!(runner.runs.load(Ordering::SeqCst), 4);

    // Tripped: it does not run again; the other job goes on.
    clock.advance(Duration::from_secs(60));
    let report = scheduler.tick().await.unwrap();
    let ran: Vec<_> = report.runs.iter().map(|r| r.job_id.clone()).collect();
    assert_eq!(ran, [steady]);
}
