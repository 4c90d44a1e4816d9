//! A due job that waits for a place (`max_running_jobs`) is claimed from what `tick` listed
//! before the wait. What happened to the job or the clock meanwhile must not make that claim
//! overwrite a new job, nor run one tick twice.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cairn_checkpoint::MemoryJobStore;
use cairn_queue::Timestamp;
use cairn_scheduler::{
    Clock, JobRunner, Jobs, ManualClock, NewJob, RunFailed, RunRequest, RunSucceeded, Schedule,
    Scheduler, SchedulerConfig,
};
use common::{NEW_YEAR_2026, every_minute, id};

/// What the runner does during the run of job `a-first`, while `b-next` waits for the place.
#[derive(Debug, Clone, Copy)]
enum Meanwhile {
    /// An operator deletes `b-next` and adds a new job under its id, with another workflow.
    ReplaceTheWaitingJob,
    /// The clock is set back by `by` (an NTP step, say).
    SetTheClockBack { by: Duration },
}

/// Runs every job successfully, doing `meanwhile` during `a-first`'s run; keeps each
/// request.
#[derive(Debug)]
struct Interfering {
    jobs: Jobs,
    clock: ManualClock,
    meanwhile: Meanwhile,
    requests: Mutex<Vec<RunRequest>>,
}

#[async_trait]
impl JobRunner for Interfering {
    async fn run(&self, request: &RunRequest) -> Result<RunSucceeded, RunFailed> {
        self.requests.lock().unwrap().push(request.clone());
        if request.job_id.as_str() == "a-first" {
            match self.meanwhile {
                Meanwhile::ReplaceTheWaitingJob => {
                    self.jobs.delete(&id("b-next")).await.unwrap();
                    let every = Schedule::every(Duration::from_secs(60)).unwrap();
                    let new = NewJob::new(id("b-next"), "new", every, "new.toml");
                    self.jobs.add(new).await.unwrap();
                }
                Meanwhile::SetTheClockBack { by } => {
                    let now = self.clock.now().0;
                    self.clock.set(Timestamp(now - by.as_millis() as u64));
                }
            }
        }
        Ok(RunSucceeded::default())
    }
}

/// A scheduler with one place, over jobs `a-first` and `b-next` (every minute, both due),
/// whose runner does `meanwhile` during `a-first`'s run.
async fn one_place(meanwhile: Meanwhile) -> (Scheduler, ManualClock, Arc<Interfering>) {
    let clock = ManualClock::new(NEW_YEAR_2026);
    let store = Arc::new(MemoryJobStore::new());
    let jobs = Jobs::new(store.clone(), Arc::new(clock.clone()));
    for job in ["a-first", "b-next"] {
        jobs.add(every_minute(job)).await.unwrap();
    }
    let runner = Arc::new(Interfering {
        jobs,
        clock: clock.clone(),
        meanwhile,
        requests: Mutex::default(),
    });
    let config = SchedulerConfig {
        max_running_jobs: 1,
        ..SchedulerConfig::default()
    };
    let scheduler = Scheduler::with_config(store, runner.clone(), Arc::new(clock.clone()), config);
    clock.advance(Duration::from_secs(60));
    (scheduler, clock, runner)
}

fn runs_of(runner: &Interfering, job: &str) -> Vec<RunRequest> {
    runner
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|request| request.job_id.as_str() == job)
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_job_replaced_while_it_waited_for_a_place_is_not_overwritten_by_the_old_claim() {
    let (scheduler, _clock, runner) = one_place(Meanwhile::ReplaceTheWaitingJob).await;
    scheduler.tick().await.unwrap();
    // The new job is stored as the operator added it, and the deleted job's workflow never ran.
    let job = scheduler.jobs().show(&id("b-next")).await.unwrap();
    assert_eq!(
        (job.name.as_str(), job.workflow.as_str()),
        ("new", "new.toml")
    );
    assert_eq!(job.created_at, Timestamp(NEW_YEAR_2026.0 + 60_000));
    assert_eq!(job.next_run_at, Some(Timestamp(NEW_YEAR_2026.0 + 120_000)));
    let old_runs: Vec<_> = runs_of(&runner, "b-next")
        .into_iter()
        .filter(|request| request.workflow == "wf.toml")
        .collect();
    assert!(old_runs.is_empty(), "the deleted job ran: {old_runs:?}");
}

#[tokio::test]
async fn a_clock_set_back_while_a_job_waited_for_a_place_does_not_run_its_tick_twice() {
    let back = Duration::from_secs(30);
    let (scheduler, clock, runner) = one_place(Meanwhile::SetTheClockBack { by: back }).await;
    let due = Timestamp(NEW_YEAR_2026.0 + 60_000);
    scheduler.tick().await.unwrap();
    let ran: Vec<_> = runs_of(&runner, "b-next")
        .iter()
        .map(|r| r.scheduled_for)
        .collect();
    assert_eq!(ran, [due]);
    // Claimed past the tick it ran, not for that tick again.
    let job = scheduler.jobs().show(&id("b-next")).await.unwrap();
    assert_eq!(job.next_run_at, Some(Timestamp(due.0 + 60_000)));
    // The clock reaches that tick again: it is not run a second time.
    clock.set(due);
    scheduler.tick().await.unwrap();
    let ran: Vec<_> = runs_of(&runner, "b-next")
        .iter()
        .map(|r| r.scheduled_for)
        .collect();
    assert_eq!(ran, [due], "the tick ran twice");
}
