//! A job deleted and created again under the same id while its old run is going: the old
//! run's outcome belongs to the old job and must not touch the new one.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cairn_checkpoint::{JobId, MemoryJobStore};
use cairn_queue::Timestamp;
use cairn_scheduler::{
    Clock, JobRunner, JobStatus, Jobs, ManualClock, NewJob, RunFailed, RunRequest, RunSucceeded,
    Schedule, Scheduler,
};

/// During its first run, an operator replaces the job with a new one-shot job of the same
/// id; the old run then ends with `outcome`.
#[derive(Debug)]
struct ReplacedMidRun {
    jobs: Jobs,
    clock: ManualClock,
    outcome: Result<RunSucceeded, RunFailed>,
    replaced: Mutex<bool>,
}

#[async_trait]
impl JobRunner for ReplacedMidRun {
    async fn run(&self, request: &RunRequest) -> Result<RunSucceeded, RunFailed> {
        let first = !std::mem::replace(&mut *self.replaced.lock().unwrap(), true);
        if first {
            self.clock.advance(Duration::from_secs(1));
            self.jobs.delete(&request.job_id).await.unwrap();
            let at = self.clock.now().plus_millis(3_600_000);
            self.jobs
                .add(
                    NewJob::new(
                        request.job_id.clone(),
                        "new",
                        Schedule::once(at),
                        "new.toml",
                    )
                    .max_consecutive_errors(1),
                )
                .await
                .unwrap();
        }
        self.outcome.clone()
    }
}

async fn replace_during_the_run(outcome: Result<RunSucceeded, RunFailed>) {
    let clock = ManualClock::new(Timestamp(1_767_225_600_000));
    let store = Arc::new(MemoryJobStore::new());
    let jobs = Jobs::new(store.clone(), Arc::new(clock.clone()));
    let runner = ReplacedMidRun {
        jobs: jobs.clone(),
        clock: clock.clone(),
        outcome,
        replaced: Mutex::new(false),
    };
    let scheduler = Scheduler::new(store, Arc::new(runner), Arc::new(clock.clone()));
    let id = JobId::new("replaced").unwrap();
    scheduler
        .jobs()
        .add(NewJob::new(
            id.clone(),
            "old",
            Schedule::every(Duration::from_secs(60)).unwrap(),
            "old.toml",
        ))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    let report = scheduler.tick().await.unwrap();
    assert_eq!(report.runs.len(), 1);
    assert!(report.tripped.is_empty(), "{report:?}");
    let job = scheduler.jobs().show(&id).await.unwrap();
    assert_eq!(job.workflow, "new.toml");
    assert_eq!(
        (job.status, job.consecutive_errors, job.last_error),
        (JobStatus::Active, 0, None),
        "the old run's outcome was recorded on the new job"
    );
    assert_eq!(job.next_run_at, Some(job.created_at.plus_millis(3_600_000)));
}

#[tokio::test]
async fn the_old_runs_success_does_not_complete_the_new_one_shot_job() {
    // It used to: the new job became `completed` and never ran.
    replace_during_the_run(Ok(RunSucceeded::default())).await;
}

#[tokio::test]
async fn the_old_runs_failure_does_not_count_against_the_new_job() {
    // It used to: at a limit of 1 the new job's breaker tripped before it ever ran.
    replace_during_the_run(Err(RunFailed::new("old workflow failed"))).await;
}
