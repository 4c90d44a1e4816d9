//! A one-shot job with `delete_after_run` whose delete does not happen after its successful
//! run (the store fails, or the process dies in between) must not run a second time.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cairn_checkpoint::JobId;
use cairn_scheduler::{Error, JobStatus, NewJob, Schedule, SchedulerConfig};
use common::{HookedStore, NEW_YEAR_2026, Rig, StoreHooks, id};

/// Deletes fail while `fail_deletes` is set, as a full disk or a crash right before the
/// delete would leave things.
#[derive(Debug, Default)]
struct DeleteFails {
    fail_deletes: AtomicBool,
}

#[async_trait]
impl StoreHooks for DeleteFails {
    async fn before_delete(&self, id: &JobId) -> cairn_checkpoint::Result<()> {
        if self.fail_deletes.load(Ordering::SeqCst) {
            return Err(cairn_checkpoint::Error::Io {
                op: "remove",
                path: format!("{id}.json").into(),
                source: std::io::Error::other("injected: no space left on device"),
            });
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_successful_one_shot_job_whose_delete_failed_never_runs_again() {
    let store = Arc::new(HookedStore::<DeleteFails>::default());
    let rig = Rig::over(store.clone(), SchedulerConfig::default());
    let job_id = id("once-and-gone");
    rig.scheduler
        .jobs()
        .add(
            NewJob::new(
                job_id.clone(),
                "once",
                Schedule::once(NEW_YEAR_2026.plus_millis(10_000)),
                "wf.toml",
            )
            .delete_after_run(true),
        )
        .await
        .unwrap();
    store.hooks.fail_deletes.store(true, Ordering::SeqCst);
    rig.clock.advance(Duration::from_secs(10));
    let err = rig.scheduler.tick().await.unwrap_err().error;
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert_eq!(rig.runner.runs(), 1);

    // The success was recorded before the delete: the job is done, not due for a retry. It
    // used to stay active with its retry time, so the next tick ran it a second time.
    let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
    assert_eq!((job.status, job.next_run_at), (JobStatus::Completed, None));
    rig.clock.advance(Duration::from_secs(3600));
    store.hooks.fail_deletes.store(false, Ordering::SeqCst);
    assert!(rig.scheduler.tick().await.unwrap().runs.is_empty());
    assert_eq!(rig.runner.runs(), 1);
    // Nothing was deleted behind the operator's back; the leftover can be deleted by hand.
    assert_eq!(
        rig.scheduler.jobs().delete(&job_id).await.unwrap().status,
        JobStatus::Completed
    );
}
