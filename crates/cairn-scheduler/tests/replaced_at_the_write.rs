//! A job deleted and added again under the same id after the scheduler's last look at it
//! (`is_still_stored`, or the read of the outcome's recording) and before its write. The
//! write is a compare-and-swap at the version read, and the job store never gives the new
//! job a version the old one had, so the write conflicts instead of landing on the new job.
//! Before that rule the new job could stand at the version read, and the claim overwrote it
//! with the old definition (and ran the old workflow), or the outcome's recording wrote the
//! old job, with its outcome, over the new one.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cairn_checkpoint::{JobId, MemoryJobStore};
use cairn_queue::Timestamp;
use cairn_scheduler::{Clock, JobStatus, Jobs, ManualClock, NewJob, Schedule, SchedulerConfig};
use common::{HookedStore, NEW_YEAR_2026, Rig, StoreHooks, every_minute, id};

/// The operator's new job under the old one's id: another name and workflow.
fn the_new_job(job: &JobId) -> NewJob {
    let every = Schedule::every(Duration::from_secs(60)).unwrap();
    NewJob::new(job.clone(), "new", every, "new.toml")
}

/// Before the `nth` put at an expected version (1: the claim, 2: the first outcome's
/// recording), the operator deletes the job and adds the new one, at a clock a second on
/// (so its `created_at` differs), and pauses it when `pause` (one more write, which brought
/// the new job to the version the recording read before the floor).
#[derive(Debug)]
struct ReplaceBeforeNthWrite {
    clock: ManualClock,
    nth: usize,
    pause: bool,
    seen: AtomicUsize,
}

#[async_trait]
impl StoreHooks for ReplaceBeforeNthWrite {
    async fn before_put(
        &self,
        inner: &MemoryJobStore,
        job: &JobId,
        expected: Option<u64>,
    ) -> cairn_checkpoint::Result<()> {
        let Some(expected) = expected else {
            return Ok(());
        };
        if self.seen.fetch_add(1, Ordering::SeqCst) + 1 != self.nth {
            return Ok(());
        }
        let clock = ManualClock::new(Timestamp(self.clock.now().0 + 1_000));
        let operator = Jobs::new(Arc::new(inner.clone()), Arc::new(clock));
        let old = operator.delete(job).await.unwrap();
        assert_eq!(
            old.version, expected,
            "the scheduler writes at the version read"
        );
        let mut new = operator.add(the_new_job(job)).await.unwrap();
        if self.pause {
            new = operator.pause(job).await.unwrap();
        }
        assert!(
            new.version > expected,
            "the new job never stands at a version the old one had: {new:?}"
        );
        Ok(())
    }
}

fn rig(nth: usize, pause: bool) -> (Rig, Arc<HookedStore<ReplaceBeforeNthWrite>>) {
    let clock = ManualClock::new(NEW_YEAR_2026);
    let store = Arc::new(HookedStore {
        inner: MemoryJobStore::new(),
        hooks: ReplaceBeforeNthWrite {
            clock: clock.clone(),
            nth,
            pause,
            seen: AtomicUsize::new(0),
        },
    });
    (Rig::over(store.clone(), SchedulerConfig::default()), store)
}

async fn the_new_job_is_untouched(rig: &Rig, job: &JobId, status: JobStatus) {
    let stored = rig.scheduler.jobs().show(job).await.unwrap_or_else(|err| {
        panic!("the new job {job} is gone: {err:?}");
    });
    assert_eq!(
        (
            stored.name.as_str(),
            stored.workflow.as_str(),
            stored.status
        ),
        ("new", "new.toml", status),
        "job {job} is not the new job as the operator left it: {stored:?}"
    );
    assert_eq!(stored.last_run_at, None, "{stored:?}");
    assert_eq!(stored.consecutive_errors, 0, "{stored:?}");
}

#[tokio::test]
async fn a_job_replaced_after_the_last_look_before_its_claim_is_not_claimed_or_run() {
    let (rig, store) = rig(1, false);
    let job = id("j");
    rig.scheduler.jobs().add(every_minute("j")).await.unwrap();
    store.hooks.clock.set(rig.next_due(&job).await);
    let report = rig.tick_when_due(&job).await;
    // The claim used to land on the new job: the old definition overwrote it and ran.
    the_new_job_is_untouched(&rig, &job, JobStatus::Active).await;
    assert!(report.runs.is_empty(), "{report:?}");
    assert_eq!(rig.runner.runs(), 0);
    let writes = store.hooks.seen.load(Ordering::SeqCst);
    assert_eq!(writes, 1, "only the claim was tried");
}

#[tokio::test]
async fn a_job_replaced_after_the_read_of_its_outcomes_recording_keeps_the_new_job() {
    let (rig, store) = rig(2, true);
    let job = id("j");
    rig.scheduler.jobs().add(every_minute("j")).await.unwrap();
    rig.runner.set_failing(true);
    store.hooks.clock.set(rig.next_due(&job).await);
    let report = rig.tick_when_due(&job).await;
    assert_eq!(rig.runner.runs(), 1, "{report:?}");
    assert!(
        store.hooks.seen.load(Ordering::SeqCst) >= 2,
        "the recording was tried"
    );
    // The recording used to write the old job, with its failure, over the new one.
    the_new_job_is_untouched(&rig, &job, JobStatus::Paused).await;
}
