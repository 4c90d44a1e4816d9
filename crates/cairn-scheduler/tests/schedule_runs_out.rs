//! A recurring job whose schedule runs out (a cron expression with a year field) is completed
//! after its last run, audited, and refused by `resume` even with force, instead of staying
//! active with no next run forever.

mod common;

use std::time::Duration;

use cairn_checkpoint::{JobAuditAction, JobStore};
use cairn_queue::Timestamp;
use cairn_scheduler::{CatchUp, Error, JobStatus, NewJob, Schedule, SchedulerConfig, Zone};
use common::{Rig, id};

/// 2027-01-01T00:00:00Z and 2027-07-01T00:00:00Z.
const JAN_2027: Timestamp = Timestamp(1_798_761_600_000);
const JUL_2027: Timestamp = Timestamp(1_814_400_000_000);

fn twice_in_2027(job: &str) -> NewJob {
    let schedule = Schedule::cron("0 0 0 1 1,7 * 2027", Zone::Utc).unwrap();
    NewJob::new(id(job), job, schedule, "wf.toml")
}

async fn actions(rig: &Rig, job: &str) -> Vec<JobAuditAction> {
    rig.store
        .read_audit(&id(job))
        .await
        .unwrap()
        .iter()
        .map(|r| r.action)
        .collect()
}

#[tokio::test]
async fn the_last_run_completes_a_recurring_job_and_resume_is_refused() {
    for last_run_ok in [true, false] {
        let rig = Rig::memory();
        let job_id = id("twice");
        let added = rig
            .scheduler
            .jobs()
            .add(twice_in_2027("twice"))
            .await
            .unwrap();
        assert_eq!(added.next_run_at, Some(JAN_2027));

        let first = rig.tick_when_due(&job_id).await;
        assert_eq!(first.runs.len(), 1);
        let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
        assert_eq!(
            (job.status, job.next_run_at),
            (JobStatus::Active, Some(JUL_2027))
        );

        rig.runner.then(&[last_run_ok]);
        let last = rig.tick_when_due(&job_id).await;
        assert_eq!(last.runs.len(), 1);
        let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
        assert_eq!(
            (job.status, job.next_run_at, job.last_run_at),
            (JobStatus::Completed, None, Some(JUL_2027)),
            "last run ok: {last_run_ok}"
        );
        assert_eq!(job.last_error.is_some(), !last_run_ok);
        let audit = rig.store.read_audit(&job_id).await.unwrap();
        let record = audit.last().unwrap();
        assert_eq!(record.action, JobAuditAction::Completed);
        assert_eq!(record.detail["schedule_ran_out"], true);
        assert_eq!(record.detail["last_run_ok"], last_run_ok);

        for force in [false, true] {
            let err = rig
                .scheduler
                .jobs()
                .resume(&job_id, force)
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Completed { .. }), "{err:?}");
        }
        // Nothing runs any more, and nothing more is audited.
        rig.clock.advance(Duration::from_secs(3 * 365 * 24 * 3600));
        assert!(rig.scheduler.tick().await.unwrap().runs.is_empty());
        assert_eq!(
            actions(&rig, "twice").await,
            [JobAuditAction::Created, JobAuditAction::Completed]
        );
    }
}

#[tokio::test]
async fn a_catch_up_runs_every_missed_last_tick_before_the_job_is_completed() {
    let rig = Rig::over(
        std::sync::Arc::new(cairn_checkpoint::MemoryJobStore::new()),
        SchedulerConfig {
            catch_up: CatchUp::All { max: 10 },
            ..SchedulerConfig::default()
        },
    );
    let job_id = id("twice");
    rig.scheduler
        .jobs()
        .add(twice_in_2027("twice"))
        .await
        .unwrap();
    // Down for all of 2027: both ticks are missed, and both are run.
    rig.clock.set(Timestamp(JUL_2027.0 + 1_000));
    let report = rig.scheduler.tick().await.unwrap();
    let times: Vec<Timestamp> = report.runs.iter().map(|r| r.scheduled_for).collect();
    assert_eq!(times, [JAN_2027, JUL_2027]);
    let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
    assert_eq!(job.status, JobStatus::Completed);
}

#[tokio::test]
async fn a_tick_completes_a_job_left_active_with_no_next_run_once_its_schedule_ran_out() {
    let rig = Rig::memory();
    let job = rig
        .scheduler
        .jobs()
        .add(twice_in_2027("stuck"))
        .await
        .unwrap();
    // As a process that died during its last run (claimed, with no time left after it)
    // left it. (One whose schedule still has a time left is given its next run instead:
    // see active_without_next_run.rs.)
    let mut stuck = job.clone();
    stuck.next_run_at = None;
    stuck.last_run_at = Some(JUL_2027);
    rig.store
        .put(&job.id, Some(job.version), &stuck.to_document())
        .await
        .unwrap()
        .unwrap();
    rig.clock.set(Timestamp(JUL_2027.0 + 60_000));
    let report = rig.scheduler.tick().await.unwrap();
    assert!(report.runs.is_empty());
    let job = rig.scheduler.jobs().show(&job.id).await.unwrap();
    assert_eq!((job.status, job.next_run_at), (JobStatus::Completed, None));
    assert_eq!(
        actions(&rig, "stuck").await,
        [JobAuditAction::Created, JobAuditAction::Completed]
    );
    rig.scheduler.tick().await.unwrap();
    assert_eq!(actions(&rig, "stuck").await.len(), 2, "audited once");
}
