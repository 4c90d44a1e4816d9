//! An active job stored with no `next_run_at` (a hand-edited document, or one another tool
//! wrote) is given its next run from its schedule by the scheduler's next look, audited,
//! instead of sitting active and never running.

mod common;

use std::time::Duration;

use cairn_checkpoint::{JobAuditAction, JobStore};
use cairn_queue::Timestamp;
use cairn_scheduler::{Clock, Job, JobStatus, NewJob, Schedule, Zone};
use common::{NEW_YEAR_2026, Rig, every_minute, id};

/// Stores `job` as `edit` leaves it, as an operator's editor or another tool would.
async fn hand_edit(rig: &Rig, job: &Job, edit: impl FnOnce(&mut Job)) {
    let mut edited = job.clone();
    edit(&mut edited);
    rig.store
        .put(&job.id, Some(job.version), &edited.to_document())
        .await
        .unwrap()
        .unwrap();
}

async fn last_audit(rig: &Rig, job: &str) -> cairn_checkpoint::JobAuditRecord {
    let records = rig.store.read_audit(&id(job)).await.unwrap();
    records.last().cloned().expect("audit records")
}

#[tokio::test]
async fn an_active_recurring_job_with_no_next_run_is_rescheduled_from_its_schedule() {
    let rig = Rig::memory();
    let job = rig
        .scheduler
        .jobs()
        .add(every_minute("edited"))
        .await
        .unwrap();
    hand_edit(&rig, &job, |job| job.next_run_at = None).await;
    rig.clock.advance(Duration::from_secs(150));

    // It used to stay active with no next run, and never ran again.
    let report = rig.scheduler.tick().await.unwrap();
    assert!(
        report.runs.is_empty(),
        "missed ticks are not run: {report:?}"
    );
    let rescheduled = rig.scheduler.jobs().show(&job.id).await.unwrap();
    let grid_after_now = NEW_YEAR_2026.plus_millis(180_000);
    assert_eq!(
        (rescheduled.status, rescheduled.next_run_at),
        (JobStatus::Active, Some(grid_after_now))
    );
    let record = last_audit(&rig, "edited").await;
    assert_eq!(record.action, JobAuditAction::Resumed);
    assert_eq!(record.detail["rescheduled"], true);
    assert_eq!(record.detail["next_run_at"], grid_after_now.0);

    let report = rig.tick_when_due(&job.id).await;
    assert_eq!(report.runs.len(), 1);
    assert_eq!(report.runs[0].scheduled_for, grid_after_now);
    // Audited once: the job has its next run now.
    let resumed = rig.store.read_audit(&job.id).await.unwrap();
    let resumed = resumed
        .iter()
        .filter(|r| r.action == JobAuditAction::Resumed);
    assert_eq!(resumed.count(), 1);
}

#[tokio::test]
async fn an_active_one_shot_job_with_no_next_run_runs_once_its_time_has_come() {
    let rig = Rig::memory();
    let at = NEW_YEAR_2026.plus_millis(30_000);
    let new = NewJob::new(id("once"), "once", Schedule::once(at), "wf.toml");
    let job = rig.scheduler.jobs().add(new).await.unwrap();
    hand_edit(&rig, &job, |job| job.next_run_at = None).await;
    rig.clock.advance(Duration::from_secs(60));

    // Its time has passed: due at once, as `resume` makes it, and run by this very tick.
    let report = rig.scheduler.tick().await.unwrap();
    assert_eq!(report.runs.len(), 1, "{report:?}");
    assert_eq!(report.runs[0].scheduled_for, rig.clock.now());
    let done = rig.scheduler.jobs().show(&job.id).await.unwrap();
    assert_eq!(
        (done.status, done.next_run_at),
        (JobStatus::Completed, None)
    );
}

#[tokio::test]
async fn a_job_rescheduled_after_the_clock_was_set_back_does_not_rerun_its_last_tick() {
    let rig = Rig::memory();
    let job = rig
        .scheduler
        .jobs()
        .add(every_minute("set-back"))
        .await
        .unwrap();
    // Its last run started at 00:10:00; then the clock was set back to 00:02:30.
    let last_run = NEW_YEAR_2026.plus_millis(600_000);
    hand_edit(&rig, &job, |job| {
        job.next_run_at = None;
        job.last_run_at = Some(last_run);
    })
    .await;
    rig.clock.advance(Duration::from_secs(150));

    let report = rig.scheduler.tick().await.unwrap();
    assert!(report.runs.is_empty(), "{report:?}");
    let rescheduled = rig.scheduler.jobs().show(&job.id).await.unwrap();
    assert_eq!(
        rescheduled.next_run_at,
        Some(last_run.plus_millis(60_000)),
        "due at its first tick after its last run, as a claim would have stored it"
    );
}

#[tokio::test]
async fn a_paused_or_failed_job_with_no_next_run_is_left_alone() {
    let rig = Rig::memory();
    let paused = rig
        .scheduler
        .jobs()
        .add(every_minute("paused").paused(true))
        .await
        .unwrap();
    let failing = rig
        .scheduler
        .jobs()
        .add(every_minute("failing"))
        .await
        .unwrap();
    hand_edit(&rig, &failing, |job| {
        job.status = JobStatus::Failed;
        job.next_run_at = None;
    })
    .await;
    rig.clock.advance(Duration::from_secs(3600));
    assert!(rig.scheduler.tick().await.unwrap().runs.is_empty());
    for job in [&paused.id, &failing.id] {
        let stored = rig.scheduler.jobs().show(job).await.unwrap();
        assert_eq!(stored.next_run_at, None, "{job}");
        let audit = rig.store.read_audit(job).await.unwrap();
        assert!(
            audit.iter().all(|r| r.action != JobAuditAction::Resumed),
            "{job}: {audit:?}"
        );
    }
}

#[tokio::test]
async fn a_job_with_no_next_run_whose_schedule_ran_out_while_the_clock_was_set_back_completes() {
    let rig = Rig::memory();
    // 2027-01-01 and 2027-07-01, midnight UTC.
    let schedule = Schedule::cron("0 0 0 1 1,7 * 2027", Zone::Utc).unwrap();
    let new = NewJob::new(id("twice"), "twice", schedule, "wf.toml");
    let job = rig.scheduler.jobs().add(new).await.unwrap();
    // Its last run (for July) started; the process died during it; the clock was then set
    // back to before July.
    let july = Timestamp(1_814_400_000_000);
    hand_edit(&rig, &job, |job| {
        job.next_run_at = None;
        job.last_run_at = Some(july.plus_millis(1_000));
    })
    .await;
    rig.clock.set(Timestamp(july.0 - 86_400_000));
    let report = rig.scheduler.tick().await.unwrap();
    assert!(
        report.runs.is_empty(),
        "the July tick is not run twice: {report:?}"
    );
    let done = rig.scheduler.jobs().show(&job.id).await.unwrap();
    assert_eq!(
        (done.status, done.next_run_at),
        (JobStatus::Completed, None)
    );
    let record = last_audit(&rig, "twice").await;
    assert_eq!(record.action, JobAuditAction::Completed);
    assert_eq!(record.detail["schedule_ran_out"], true);
}
