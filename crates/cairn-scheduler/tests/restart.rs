//! The breaker state and `next_run_at` survive a restart, on the file and the sled job stores.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_checkpoint::{JobAuditAction, JobStore};
use cairn_checkpoint_file::FileJobStore;
use cairn_checkpoint_sled::SledJobStore;
use cairn_queue::Timestamp;
use cairn_scheduler::{Clock, Error, JobStatus, SchedulerConfig};
use common::{Rig, every_minute, id};

fn file_store(dir: &Path) -> Arc<dyn JobStore> {
    Arc::new(FileJobStore::open(dir).expect("open the file job store"))
}

fn sled_store(dir: &Path) -> Arc<dyn JobStore> {
    Arc::new(SledJobStore::open(dir.join("cairn.sled")).expect("open the sled job store"))
}

async fn breaker_state_survives_a_restart(open: fn(&Path) -> Arc<dyn JobStore>) {
    let dir = tempfile::tempdir().unwrap();
    let tripped = id("tripped");
    let steady = id("steady");
    let (steady_next, stop_time) = {
        let rig = Rig::over(open(dir.path()), SchedulerConfig::default());
        rig.scheduler
            .jobs()
            .add(every_minute("tripped").max_consecutive_errors(2))
            .await
            .unwrap();
        rig.runner.set_failing(true);
        rig.tick_when_due(&tripped).await;
        let report = rig.tick_when_due(&tripped).await;
        assert_eq!(report.tripped, vec![tripped.clone()]);
        rig.runner.set_failing(false);
        // Created after the trip, so its first tick is still ahead when the process stops.
        rig.scheduler
            .jobs()
            .add(every_minute("steady"))
            .await
            .unwrap();
        let steady_job = rig.scheduler.jobs().show(&steady).await.unwrap();
        (steady_job.next_run_at.unwrap(), rig.clock.now())
    };

    // The "process" is gone; a new one opens the same storage an hour later.
    let rig = Rig::over(open(dir.path()), SchedulerConfig::default());
    rig.clock.set(Timestamp(stop_time.0 + 3_600_000));
    let job = rig.scheduler.jobs().show(&tripped).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.consecutive_errors, 2);
    assert_eq!(job.next_run_at, None);
    assert!(
        job.last_error
            .as_deref()
            .unwrap()
            .contains("dependency down")
    );
    assert_eq!(
        rig.scheduler
            .jobs()
            .show(&steady)
            .await
            .unwrap()
            .next_run_at,
        Some(steady_next)
    );

    // The failed job stays stopped; the steady one catches up with a single run.
    let report = rig.scheduler.tick().await.unwrap();
    assert_eq!(report.runs.len(), 1);
    assert_eq!(report.runs[0].job_id, steady);
    assert_eq!(report.runs[0].scheduled_for, steady_next);

    let err = rig
        .scheduler
        .jobs()
        .resume(&tripped, false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NeedsForce { .. }), "{err:?}");
    rig.scheduler.jobs().resume(&tripped, true).await.unwrap();
    drop(rig);

    let rig = Rig::over(open(dir.path()), SchedulerConfig::default());
    let job = rig.scheduler.jobs().show(&tripped).await.unwrap();
    assert_eq!((job.status, job.consecutive_errors), (JobStatus::Active, 0));
    assert!(job.next_run_at.is_some());
    let actions: Vec<_> = rig
        .scheduler
        .jobs()
        .audit_log(&tripped)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions,
        [
            JobAuditAction::Created,
            JobAuditAction::BreakerTripped,
            JobAuditAction::Revived
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_state_and_next_run_survive_a_restart_on_files() {
    breaker_state_survives_a_restart(file_store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_state_and_next_run_survive_a_restart_on_sled() {
    breaker_state_survives_a_restart(sled_store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_downtime_gives_one_catch_up_run_on_files() {
    let dir = tempfile::tempdir().unwrap();
    let job_id = id("daily-ish");
    {
        let rig = Rig::over(file_store(dir.path()), SchedulerConfig::default());
        rig.scheduler
            .jobs()
            .add(every_minute("daily-ish"))
            .await
            .unwrap();
    }
    let rig = Rig::over(file_store(dir.path()), SchedulerConfig::default());
    rig.clock.advance(Duration::from_secs(24 * 3600));
    let report = rig.scheduler.tick().await.unwrap();
    assert_eq!(report.runs.len(), 1);
    assert!(rig.scheduler.tick().await.unwrap().runs.is_empty());
    let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
    assert!(job.next_run_at.unwrap() > rig.clock.now());
}
