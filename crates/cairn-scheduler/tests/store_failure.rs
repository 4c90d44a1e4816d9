//! A run stopped by its state store (a full disk, a failed write) counts toward the job's
//! circuit breaker like any failed run, and is noted on the job, so a later scheduler can
//! say why the run still reads as `running`.

mod common;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cairn_checkpoint::{JobStore, MemoryJobStore};
use cairn_scheduler::{
    JobRunner, JobStatus, MAX_STORE_FAILED_RUNS, ManualClock, RunFailed, RunRequest, RunSucceeded,
    Scheduler,
};
use common::{NEW_YEAR_2026, every_minute, id};

/// Every run stops on its store, under the run id `run-<n>`.
#[derive(Debug, Default)]
struct StoreAlwaysFails {
    runs: Mutex<u32>,
}

#[async_trait]
impl JobRunner for StoreAlwaysFails {
    async fn run(&self, _: &RunRequest) -> Result<RunSucceeded, RunFailed> {
        let mut runs = self.runs.lock().unwrap();
        *runs += 1;
        let run = format!("run-{runs}");
        Err(RunFailed::store_failed(
            Some(run.clone()),
            format!(
                "run {run} stopped: its state store failed, not a task: No space left on device"
            ),
        ))
    }
}

fn scheduler() -> (Scheduler, ManualClock, Arc<MemoryJobStore>) {
    let clock = ManualClock::new(NEW_YEAR_2026);
    let store = Arc::new(MemoryJobStore::new());
    let scheduler = Scheduler::new(
        store.clone(),
        Arc::new(StoreAlwaysFails::default()),
        Arc::new(clock.clone()),
    );
    (scheduler, clock, store)
}

async fn tick_when_due(scheduler: &Scheduler, clock: &ManualClock, job: &str) {
    let due = scheduler.jobs().show(&id(job)).await.unwrap().next_run_at;
    clock.set(due.expect("the job is due again"));
    let report = scheduler.tick().await.unwrap();
    assert_eq!(report.runs.len(), 1, "{report:?}");
}

#[tokio::test]
async fn store_failures_trip_the_breaker_and_each_run_is_noted_on_the_job() {
    let (scheduler, clock, _) = scheduler();
    let job = id("nightly");
    scheduler
        .jobs()
        .add(every_minute("nightly").max_consecutive_errors(2))
        .await
        .unwrap();

    tick_when_due(&scheduler, &clock, "nightly").await;
    let after_one = scheduler.jobs().show(&job).await.unwrap();
    assert_eq!(
        (after_one.status, after_one.consecutive_errors),
        (JobStatus::Active, 1)
    );
    let noted = after_one.store_failure("run-1").expect("run-1 is noted");
    assert!(noted.error.contains("No space left on device"), "{noted:?}");
    assert_eq!(noted.at, after_one.last_run_at.unwrap());
    assert!(after_one.store_failure("run-2").is_none());

    tick_when_due(&scheduler, &clock, "nightly").await;
    let tripped = scheduler.jobs().show(&job).await.unwrap();
    assert_eq!(
        (
            tripped.status,
            tripped.consecutive_errors,
            tripped.next_run_at
        ),
        (JobStatus::Failed, 2, None)
    );
    assert!(tripped.last_error.unwrap().contains("run-2 stopped"));
    let runs: Vec<&str> = tripped
        .store_failed_runs
        .iter()
        .map(|run| run.run_id.as_str())
        .collect();
    assert_eq!(runs, ["run-1", "run-2"]);
}

#[tokio::test]
async fn a_job_keeps_only_its_latest_store_failed_runs() {
    let (scheduler, clock, _) = scheduler();
    let job = id("often");
    scheduler
        .jobs()
        .add(every_minute("often").max_consecutive_errors(100))
        .await
        .unwrap();
    let total = MAX_STORE_FAILED_RUNS + 3;
    for _ in 0..total {
        tick_when_due(&scheduler, &clock, "often").await;
    }
    let kept = scheduler.jobs().show(&job).await.unwrap();
    assert_eq!(kept.consecutive_errors as usize, total);
    assert_eq!(kept.store_failed_runs.len(), MAX_STORE_FAILED_RUNS);
    assert_eq!(kept.store_failed_runs[0].run_id, "run-4");
    assert_eq!(
        kept.store_failed_runs.last().unwrap().run_id,
        format!("run-{total}")
    );
}

#[tokio::test]
async fn a_job_document_without_store_failed_runs_still_decodes() {
    let (scheduler, clock, store) = scheduler();
    let job = id("older");
    scheduler.jobs().add(every_minute("older")).await.unwrap();
    tick_when_due(&scheduler, &clock, "older").await;
    // The document as a build before `store_failed_runs` wrote it.
    let stored = store.get(&job).await.unwrap().unwrap();
    let mut document = stored.document.clone();
    assert!(document["store_failed_runs"].is_array(), "{document}");
    document
        .as_object_mut()
        .unwrap()
        .remove("store_failed_runs");
    store
        .put(&job, Some(stored.version), &document)
        .await
        .unwrap()
        .unwrap();
    let read = scheduler.jobs().show(&job).await.unwrap();
    assert!(read.store_failed_runs.is_empty());
    assert_eq!(read.consecutive_errors, 1);
    // A job with none writes none.
    let fresh = scheduler.jobs().add(every_minute("fresh")).await.unwrap();
    let written = store.get(&fresh.id).await.unwrap().unwrap().document;
    assert!(written.get("store_failed_runs").is_none(), "{written}");
}
