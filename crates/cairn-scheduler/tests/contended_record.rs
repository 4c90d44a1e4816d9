//! A run's outcome is the scheduler's most valuable write: recording it survives far more
//! lost compare-and-swaps than an operator's `pause` does, instead of stopping the tick with
//! `Contended` and losing the outcome.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
use cairn_queue::Timestamp;
use cairn_scheduler::{
    JobRunner, JobStatus, ManualClock, NewJob, RunFailed, RunRequest, RunSucceeded, Schedule,
    Scheduler,
};
use common::{HookedStore, StoreHooks};

/// While `interfere` is above 0, another writer changes the job right before each versioned
/// write, so that write loses the compare-and-swap.
#[derive(Debug, Default)]
struct BusyNeighbour {
    interfere: AtomicU32,
}

#[async_trait]
impl StoreHooks for BusyNeighbour {
    async fn before_put(
        &self,
        inner: &MemoryJobStore,
        id: &JobId,
        expected: Option<u64>,
    ) -> cairn_checkpoint::Result<()> {
        let Some(version) = expected else {
            return Ok(());
        };
        let armed = self
            .interfere
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if armed.is_ok() {
            let current = inner.get(id).await?.expect("the job exists");
            assert_eq!(current.version, version);
            inner
                .put(id, Some(version), &current.document)
                .await?
                .expect("the neighbour's write");
        }
        Ok(())
    }
}

/// Fails, and arms the neighbour for 40 writes while the run is going (after the claim).
#[derive(Debug)]
struct FailsWhileBusy(Arc<HookedStore<BusyNeighbour>>);

#[async_trait]
impl JobRunner for FailsWhileBusy {
    async fn run(&self, _: &RunRequest) -> Result<RunSucceeded, RunFailed> {
        self.0.hooks.interfere.store(40, Ordering::SeqCst);
        Err(RunFailed::new("dependency down"))
    }
}

#[tokio::test]
async fn forty_lost_races_do_not_lose_a_runs_outcome() {
    let store = Arc::new(HookedStore::<BusyNeighbour>::default());
    let clock = ManualClock::new(Timestamp(1_767_225_600_000));
    let scheduler = Scheduler::new(
        store.clone(),
        Arc::new(FailsWhileBusy(store.clone())),
        Arc::new(clock.clone()),
    );
    let id = JobId::new("busy").unwrap();
    scheduler
        .jobs()
        .add(
            NewJob::new(
                id.clone(),
                "busy",
                Schedule::every(Duration::from_secs(60)).unwrap(),
                "wf",
            )
            .max_consecutive_errors(1),
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    // With 16 attempts this was `Err(Contended)`: the failure went unrecorded, the breaker
    // did not trip, and `run_until` stopped.
    let report = scheduler.tick().await.unwrap();
    assert_eq!(report.tripped, vec![id.clone()]);
    assert_eq!(store.hooks.interfere.load(Ordering::SeqCst), 0);
    let job = scheduler.jobs().show(&id).await.unwrap();
    assert_eq!((job.status, job.consecutive_errors), (JobStatus::Failed, 1));
}
