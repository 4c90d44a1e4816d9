//! A job deleted and added again under the same id between the scheduler's read of it and
//! its write: the scheduler must not complete, or delete, the new job in place of the old
//! one. Until the job store kept a floor of retired versions, the new job could stand at
//! the very version the scheduler read, and only the scheduler's second look
//! (`is_still_stored`) told the two apart; now the new job's version differs too
//! (`replaced_at_the_write.rs` covers a replacement after that second look).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
use cairn_queue::Timestamp;
use cairn_scheduler::{
    Clock, JobStatus, Jobs, ManualClock, NewJob, Schedule, SchedulerConfig, Zone,
};
use common::{HookedStore, NEW_YEAR_2026, Rig, StoreHooks, id};

/// 2027-07-01T00:00:00Z, the last time of [`twice_in_2027`].
const JUL_2027: Timestamp = Timestamp(1_814_400_000_000);

fn twice_in_2027(job: &str) -> NewJob {
    let schedule = Schedule::cron("0 0 0 1 1,7 * 2027", Zone::Utc).unwrap();
    NewJob::new(id(job), job, schedule, "old.toml")
}

/// The new job an operator adds under the old one's id: every minute, another workflow.
fn the_new_job(job: &JobId) -> NewJob {
    let every = Schedule::every(Duration::from_secs(60)).unwrap();
    NewJob::new(job.clone(), "new", every, "new.toml")
}

/// The operator's side: job operations straight on the memory store, past the hooks.
fn operator(store: &MemoryJobStore, clock: &ManualClock) -> Jobs {
    Jobs::new(Arc::new(store.clone()), Arc::new(clock.clone()))
}

/// Asserts that job `job` is the new job the operator added, untouched by the scheduler.
async fn is_the_new_job(rig: &Rig, job: &JobId) {
    let stored = rig.scheduler.jobs().show(job).await.unwrap_or_else(|err| {
        panic!("the new job {job} is gone: {err:?}");
    });
    assert_eq!(
        (
            stored.name.as_str(),
            stored.workflow.as_str(),
            stored.status
        ),
        ("new", "new.toml", JobStatus::Active),
        "job {job} is not the new job as added: {stored:?}"
    );
}

/// While the tick completes job `a` (the put of its completion), the operator replaces job
/// `b`, listed in the same look, with a new job.
#[derive(Debug)]
struct ReplaceBWhileACompletes {
    clock: ManualClock,
    done: AtomicBool,
}

#[async_trait]
impl StoreHooks for ReplaceBWhileACompletes {
    async fn before_put(
        &self,
        inner: &MemoryJobStore,
        job: &JobId,
        _expected: Option<u64>,
    ) -> cairn_checkpoint::Result<()> {
        if job.as_str() == "a" && !self.done.swap(true, Ordering::SeqCst) {
            let operator = operator(inner, &self.clock);
            operator.delete(&id("b")).await.unwrap();
            let new = operator.add(the_new_job(&id("b"))).await.unwrap();
            assert!(
                new.version > 1,
                "the new job is never stored at the old one's version (1): {new:?}"
            );
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_job_replaced_after_the_look_is_not_completed_for_the_old_ones_run_out_schedule() {
    let clock = ManualClock::new(NEW_YEAR_2026);
    let store = Arc::new(HookedStore {
        inner: MemoryJobStore::new(),
        hooks: ReplaceBWhileACompletes {
            clock: clock.clone(),
            done: AtomicBool::new(false),
        },
    });
    // Two jobs left active with no next run (a process died during their last runs), both
    // stored at version 1, as an earlier build or a hand-written file leaves them.
    let scratch = operator(&MemoryJobStore::new(), &clock);
    for job in ["a", "b"] {
        let mut stuck = scratch.add(twice_in_2027(job)).await.unwrap();
        stuck.next_run_at = None;
        let version = store.inner.put(&id(job), None, &stuck.to_document()).await;
        assert_eq!(version.unwrap(), Ok(1));
    }
    let rig = Rig::over(store.clone(), SchedulerConfig::default());
    rig.clock.set(Timestamp(JUL_2027.0 + 60_000));
    clock.set(rig.clock.now());

    let report = rig.scheduler.tick().await.unwrap();
    assert!(report.runs.is_empty(), "{report:?}");
    let a = rig.scheduler.jobs().show(&id("a")).await.unwrap();
    assert_eq!(a.status, JobStatus::Completed);
    // The new `b` used to be overwritten by the old one, completed.
    is_the_new_job(&rig, &id("b")).await;
    let b = rig.scheduler.jobs().show(&id("b")).await.unwrap();
    assert_eq!(b.next_run_at, Some(rig.clock.now().plus_millis(60_000)));
}

/// A one-shot job to delete after its successful run, due ten seconds after the rig starts.
fn once_and_gone(job: &str) -> NewJob {
    let at = NEW_YEAR_2026.plus_millis(10_000);
    NewJob::new(id(job), job, Schedule::once(at), "old.toml").delete_after_run(true)
}

/// Once the scheduler stored the one-shot job `completed`, and before it deletes it, the
/// operator replaces the job with a new one and pauses and resumes it (which, before the
/// store's floor of retired versions, brought the new job to the very version the scheduler
/// wrote).
#[derive(Debug)]
struct ReplaceOnceCompleted {
    clock: ManualClock,
    done: AtomicBool,
}

#[async_trait]
impl StoreHooks for ReplaceOnceCompleted {
    async fn after_put(&self, inner: &MemoryJobStore, job: &JobId, document: &serde_json::Value) {
        if document["status"] == "completed" && !self.done.swap(true, Ordering::SeqCst) {
            let operator = operator(inner, &self.clock);
            let old = operator.delete(job).await.unwrap();
            operator.add(the_new_job(job)).await.unwrap();
            operator.pause(job).await.unwrap();
            let new = operator.resume(job, false).await.unwrap();
            assert!(
                new.version > old.version,
                "the new job is stored above the completed job's version: {new:?}, {old:?}"
            );
        }
    }
}

/// Adds `once_and_gone("once")` over `store`, lets it fall due and ticks once; the store's
/// hooks replace the job on the way (`replaced` says they did), and the new job must stay.
async fn run_once_and_gone_while_it_is_replaced(
    store: Arc<dyn JobStore>,
    clock: &ManualClock,
    replaced: &AtomicBool,
) {
    let rig = Rig::over(store, SchedulerConfig::default());
    let job = id("once");
    rig.scheduler
        .jobs()
        .add(once_and_gone("once"))
        .await
        .unwrap();
    rig.clock.advance(Duration::from_secs(10));
    clock.set(rig.clock.now());

    let report = rig.scheduler.tick().await.unwrap();
    assert_eq!(report.runs.len(), 1);
    assert!(replaced.load(Ordering::SeqCst), "the job was replaced");
    is_the_new_job(&rig, &job).await;
}

#[tokio::test]
async fn a_one_shot_job_replaced_before_its_delete_after_run_keeps_the_new_job() {
    let clock = ManualClock::new(NEW_YEAR_2026);
    let store = Arc::new(HookedStore {
        inner: MemoryJobStore::new(),
        hooks: ReplaceOnceCompleted {
            clock: clock.clone(),
            done: AtomicBool::new(false),
        },
    });
    // The delete meant for the old job used to delete the new one.
    run_once_and_gone_while_it_is_replaced(store.clone(), &clock, &store.hooks.done).await;
}

/// When the scheduler deletes the one-shot job after its run, the operator has just replaced
/// it with a new one: the old job's delete loses its compare-and-swap.
#[derive(Debug)]
struct ReplaceOnceAtItsDelete {
    store: MemoryJobStore,
    clock: ManualClock,
    done: AtomicBool,
}

#[async_trait]
impl StoreHooks for ReplaceOnceAtItsDelete {
    async fn before_delete(&self, job: &JobId) -> cairn_checkpoint::Result<()> {
        if !self.done.swap(true, Ordering::SeqCst) {
            let operator = operator(&self.store, &self.clock);
            operator.delete(job).await.unwrap();
            operator.add(the_new_job(job)).await.unwrap();
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_one_shot_job_replaced_during_its_delete_after_run_keeps_the_new_job() {
    let clock = ManualClock::new(NEW_YEAR_2026);
    let memory = MemoryJobStore::new();
    let store = Arc::new(HookedStore {
        inner: memory.clone(),
        hooks: ReplaceOnceAtItsDelete {
            store: memory,
            clock: clock.clone(),
            done: AtomicBool::new(false),
        },
    });
    // The lost delete used to be tried again on the new job, and deleted it.
    run_once_and_gone_while_it_is_replaced(store.clone(), &clock, &store.hooks.done).await;
}
