//! `resume(id, force)`, `pause`, `delete`: what changes, what is refused, what is audited.

mod common;

use std::time::Duration;

use cairn_checkpoint::{JobAuditAction, JobId};
use cairn_scheduler::{Clock, Error, Job, JobStatus, NewJob, Schedule};
use common::{NEW_YEAR_2026, Rig, every_minute, id};

async fn tripped_job(rig: &Rig, name: &str) -> JobId {
    let job_id = id(name);
    rig.scheduler
        .jobs()
        .add(every_minute(name).max_consecutive_errors(2))
        .await
        .unwrap();
    rig.runner.set_failing(true);
    rig.tick_when_due(&job_id).await;
    rig.tick_when_due(&job_id).await;
    rig.runner.set_failing(false);
    assert_eq!(
        rig.scheduler.jobs().show(&job_id).await.unwrap().status,
        JobStatus::Failed
    );
    job_id
}

async fn completed_job(rig: &Rig, name: &str) -> JobId {
    let job_id = id(name);
    let at = rig.clock.now().plus_millis(5_000);
    rig.scheduler
        .jobs()
        .add(NewJob::new(
            job_id.clone(),
            name,
            Schedule::once(at),
            "wf.toml",
        ))
        .await
        .unwrap();
    rig.tick_when_due(&job_id).await;
    assert_eq!(
        rig.scheduler.jobs().show(&job_id).await.unwrap().status,
        JobStatus::Completed
    );
    job_id
}

async fn snapshot(rig: &Rig, job_id: &JobId) -> (Job, usize) {
    let job = rig.scheduler.jobs().show(job_id).await.unwrap();
    let audit = rig.scheduler.jobs().audit_log(job_id).await.unwrap().len();
    (job, audit)
}

#[tokio::test]
async fn resume_without_force_changes_nothing_on_active_failed_and_completed_jobs() {
    let rig = Rig::memory();
    let active = id("active");
    rig.scheduler
        .jobs()
        .add(every_minute("active"))
        .await
        .unwrap();
    let failed = tripped_job(&rig, "failed").await;
    let completed = completed_job(&rig, "completed").await;
    rig.clock.advance(Duration::from_secs(3600));

    let before = snapshot(&rig, &active).await;
    let err = rig
        .scheduler
        .jobs()
        .resume(&active, false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AlreadyActive { ref id } if *id == active),
        "{err:?}"
    );
    assert_eq!(snapshot(&rig, &active).await, before);

    let before = snapshot(&rig, &failed).await;
    let err = rig
        .scheduler
        .jobs()
        .resume(&failed, false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NeedsForce { ref id, consecutive_errors: 2, .. } if *id == failed),
        "{err:?}"
    );
    // The brief requires the message to name the force option, so the operator knows the way out.
    assert!(err.to_string().contains("force"), "{err}");
    assert_eq!(snapshot(&rig, &failed).await, before);

    let before = snapshot(&rig, &completed).await;
    let err = rig
        .scheduler
        .jobs()
        .resume(&completed, false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Completed { ref id } if *id == completed),
        "{err:?}"
    );
    assert_eq!(snapshot(&rig, &completed).await, before);
}

#[tokio::test]
async fn force_revives_a_failed_job_and_resets_its_counter() {
    let rig = Rig::memory();
    let job_id = tripped_job(&rig, "revived").await;
    rig.clock.advance(Duration::from_secs(90));
    let now = rig.clock.now();
    let job = rig.scheduler.jobs().resume(&job_id, true).await.unwrap();
    assert_eq!(job.status, JobStatus::Active);
    assert_eq!(job.consecutive_errors, 0);
    // Recomputed from the schedule: the next point of the job's one-minute grid after now.
    let created = job.created_at.0;
    let next = job.next_run_at.expect("a revived job is scheduled").0;
    assert!(
        next > now.0 && next - now.0 <= 60_000,
        "next {next} vs now {}",
        now.0
    );
    assert_eq!((next - created) % 60_000, 0, "off the job's grid");
    assert_eq!(rig.scheduler.jobs().show(&job_id).await.unwrap(), job);

    let audit = rig.scheduler.jobs().audit_log(&job_id).await.unwrap();
    let revive = audit.last().unwrap();
    assert_eq!(revive.action, JobAuditAction::Revived);
    assert_eq!(revive.detail["previous_consecutive_errors"], 2);

    // It runs again on schedule.
    let runs_before = rig.runner.runs();
    let report = rig.tick_when_due(&job_id).await;
    assert_eq!(report.runs.len(), 1);
    assert_eq!(rig.runner.runs(), runs_before + 1);
}

#[tokio::test]
async fn force_on_a_completed_job_is_refused() {
    let rig = Rig::memory();
    let job_id = completed_job(&rig, "done").await;
    let before = snapshot(&rig, &job_id).await;
    let err = rig
        .scheduler
        .jobs()
        .resume(&job_id, true)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Completed { .. }), "{err:?}");
    assert_eq!(snapshot(&rig, &job_id).await, before);
}

#[tokio::test]
async fn force_on_a_paused_job_behaves_like_a_plain_resume() {
    let rig = Rig::memory();
    let plain = id("plain");
    let forced = id("forced");
    for job_id in [&plain, &forced] {
        rig.scheduler
            .jobs()
            .add(every_minute(job_id.as_str()).max_consecutive_errors(5))
            .await
            .unwrap();
    }
    // Give both the same error count, then pause them.
    rig.runner.set_failing(true);
    rig.clock.advance(Duration::from_secs(60));
    let report = rig.scheduler.tick().await.unwrap();
    assert_eq!(report.runs.len(), 2);
    rig.runner.set_failing(false);
    for job_id in [&plain, &forced] {
        let job = rig.scheduler.jobs().pause(job_id).await.unwrap();
        assert_eq!((job.status, job.next_run_at), (JobStatus::Paused, None));
    }
    rig.clock.advance(Duration::from_secs(30));
    let a = rig.scheduler.jobs().resume(&plain, false).await.unwrap();
    let b = rig.scheduler.jobs().resume(&forced, true).await.unwrap();
    assert_eq!(a.status, JobStatus::Active);
    assert_eq!(
        (a.status, a.consecutive_errors, a.next_run_at),
        (b.status, b.consecutive_errors, b.next_run_at)
    );
    assert_eq!(
        a.consecutive_errors, 1,
        "a plain resume keeps the error count"
    );
    for job_id in [&plain, &forced] {
        let audit = rig.scheduler.jobs().audit_log(job_id).await.unwrap();
        assert_eq!(audit.last().unwrap().action, JobAuditAction::Resumed);
        assert!(audit.iter().all(|r| r.action != JobAuditAction::Revived));
    }
}

#[tokio::test]
async fn pause_only_applies_to_active_jobs_and_delete_keeps_the_audit() {
    let rig = Rig::memory();
    let job_id = id("paused-twice");
    rig.scheduler
        .jobs()
        .add(every_minute("paused-twice"))
        .await
        .unwrap();
    rig.scheduler.jobs().pause(&job_id).await.unwrap();
    let err = rig.scheduler.jobs().pause(&job_id).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotActive {
                status: JobStatus::Paused,
                ..
            }
        ),
        "{err:?}"
    );
    // A paused job does not run.
    rig.clock.advance(Duration::from_secs(600));
    assert!(rig.scheduler.tick().await.unwrap().runs.is_empty());

    let deleted = rig.scheduler.jobs().delete(&job_id).await.unwrap();
    assert_eq!(deleted.id, job_id);
    assert!(matches!(
        rig.scheduler.jobs().show(&job_id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        rig.scheduler.jobs().resume(&job_id, true).await,
        Err(Error::NotFound { .. })
    ));
    let actions: Vec<_> = rig
        .scheduler
        .jobs()
        .audit_log(&job_id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions,
        [
            JobAuditAction::Created,
            JobAuditAction::Paused,
            JobAuditAction::Deleted
        ]
    );
    assert!(rig.scheduler.jobs().list().await.unwrap().is_empty());
}

#[tokio::test]
async fn adding_a_taken_id_or_a_bad_definition_is_refused() {
    let rig = Rig::memory();
    rig.scheduler
        .jobs()
        .add(every_minute("taken"))
        .await
        .unwrap();
    let err = rig
        .scheduler
        .jobs()
        .add(every_minute("taken"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    let err = rig
        .scheduler
        .jobs()
        .add(every_minute("zero-limit").max_consecutive_errors(0))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidJob { .. }), "{err:?}");
    let err = rig
        .scheduler
        .jobs()
        .add(every_minute("recurring-delete").delete_after_run(true))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidJob { .. }), "{err:?}");
    assert_eq!(rig.scheduler.jobs().list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_one_shot_job_with_delete_after_run_is_gone_after_its_success() {
    let rig = Rig::memory();
    let job_id = id("once");
    let at = NEW_YEAR_2026.plus_millis(10_000);
    rig.scheduler
        .jobs()
        .add(
            NewJob::new(job_id.clone(), "once", Schedule::once(at), "wf.toml")
                .delete_after_run(true),
        )
        .await
        .unwrap();
    rig.runner.then(&[false]);
    let report = rig.tick_when_due(&job_id).await;
    assert!(report.runs[0].outcome.is_err());
    let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
    assert_eq!((job.status, job.consecutive_errors), (JobStatus::Active, 1));
    assert!(
        job.next_run_at.unwrap() > at,
        "a failed one-shot job is retried later"
    );
    let report = rig.tick_when_due(&job_id).await;
    assert!(report.runs[0].outcome.is_ok());
    assert!(matches!(
        rig.scheduler.jobs().show(&job_id).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(rig.runner.runs(), 2);
}
