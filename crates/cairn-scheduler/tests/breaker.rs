//! The circuit breaker: trips at exactly `max_consecutive_errors`, reset by a success.

mod common;

use cairn_checkpoint::JobAuditAction;
use cairn_scheduler::{DEFAULT_MAX_CONSECUTIVE_ERRORS, JobStatus};
use common::{Rig, every_minute, id};

#[tokio::test]
async fn the_breaker_trips_at_exactly_the_limit_and_not_one_run_earlier() {
    let rig = Rig::memory();
    rig.runner.set_failing(true);
    let job_id = id("flaky");
    rig.scheduler
        .jobs()
        .add(every_minute("flaky").max_consecutive_errors(3))
        .await
        .unwrap();
    for expected in 1..=2 {
        let report = rig.tick_when_due(&job_id).await;
        assert_eq!(report.runs.len(), 1);
        assert!(report.tripped.is_empty(), "tripped after {expected} errors");
        let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
        assert_eq!(job.status, JobStatus::Active);
        assert_eq!(job.consecutive_errors, expected);
        assert!(job.next_run_at.is_some());
        assert!(
            job.last_error
                .as_deref()
                .unwrap()
                .contains("dependency down")
        );
    }
    let report = rig.tick_when_due(&job_id).await;
    assert_eq!(report.tripped, vec![job_id.clone()]);
    let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.consecutive_errors, 3);
    assert_eq!(job.next_run_at, None);

    // A failed job never runs again on its own, however much time passes.
    rig.clock.advance(std::time::Duration::from_secs(24 * 3600));
    let report = rig.scheduler.tick().await.unwrap();
    assert!(report.runs.is_empty());
    assert_eq!(rig.runner.runs(), 3);

    let trips: Vec<_> = rig
        .scheduler
        .jobs()
        .audit_log(&job_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == JobAuditAction::BreakerTripped)
        .collect();
    assert_eq!(trips.len(), 1, "the trip must be audited once");
    assert_eq!(trips[0].detail["consecutive_errors"], 3);
}

#[tokio::test]
async fn the_default_limit_is_ten() {
    let rig = Rig::memory();
    rig.runner.set_failing(true);
    let job_id = id("default-limit");
    let job = rig
        .scheduler
        .jobs()
        .add(every_minute("default-limit"))
        .await
        .unwrap();
    assert_eq!(job.max_consecutive_errors, DEFAULT_MAX_CONSECUTIVE_ERRORS);
    assert_eq!(DEFAULT_MAX_CONSECUTIVE_ERRORS, 10);
    for _ in 0..9 {
        rig.tick_when_due(&job_id).await;
    }
    let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
    assert_eq!((job.status, job.consecutive_errors), (JobStatus::Active, 9));
    let report = rig.tick_when_due(&job_id).await;
    assert_eq!(report.tripped.len(), 1);
    let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
    assert_eq!(
        (job.status, job.consecutive_errors),
        (JobStatus::Failed, 10)
    );
}

#[tokio::test]
async fn a_success_resets_the_counter() {
    let rig = Rig::memory();
    let job_id = id("recovering");
    rig.scheduler
        .jobs()
        .add(every_minute("recovering").max_consecutive_errors(3))
        .await
        .unwrap();
    rig.runner.then(&[false, false, true, false, false]);
    for _ in 0..3 {
        rig.tick_when_due(&job_id).await;
    }
    let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
    assert_eq!(job.consecutive_errors, 0, "a success must reset the count");
    assert_eq!(job.status, JobStatus::Active);
    // Two more failures: without the reset this would be four in a row and trip.
    for _ in 0..2 {
        rig.tick_when_due(&job_id).await;
    }
    let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
    assert_eq!((job.status, job.consecutive_errors), (JobStatus::Active, 2));
}

#[tokio::test]
async fn runs_interrupted_by_a_shutdown_never_count_against_the_breaker() {
    let rig = Rig::memory();
    rig.runner.set_failing(true);
    *rig.runner.interrupted.lock().unwrap() = true;
    let job_id = id("stopped");
    rig.scheduler
        .jobs()
        .add(every_minute("stopped").max_consecutive_errors(1))
        .await
        .unwrap();
    for _ in 0..3 {
        let report = rig.tick_when_due(&job_id).await;
        assert_eq!(report.runs.len(), 1);
        assert!(report.tripped.is_empty());
    }
    let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
    assert_eq!(job.status, JobStatus::Active);
    assert_eq!(job.consecutive_errors, 0);
    assert_eq!(job.last_error, None);

    // A real failure still counts, and at a limit of 1 it trips at once.
    *rig.runner.interrupted.lock().unwrap() = false;
    let report = rig.tick_when_due(&job_id).await;
    assert_eq!(report.tripped, vec![job_id.clone()]);
}

#[derive(Debug)]
struct Verbose;

#[async_trait::async_trait]
impl cairn_scheduler::JobRunner for Verbose {
    async fn run(
        &self,
        _: &cairn_scheduler::RunRequest,
    ) -> Result<cairn_scheduler::RunSucceeded, cairn_scheduler::RunFailed> {
        // A whole megabyte of log as the message, with a multi-byte character at the cut.
        let mut message = "x".repeat(4095);
        message.push('é');
        message.push_str(&"log line\n".repeat(120_000));
        Err(cairn_scheduler::RunFailed::new(message))
    }
}

#[tokio::test]
async fn a_huge_error_message_is_kept_cut_not_whole() {
    let clock = cairn_scheduler::ManualClock::new(common::NEW_YEAR_2026);
    let scheduler = cairn_scheduler::Scheduler::new(
        std::sync::Arc::new(cairn_checkpoint::MemoryJobStore::new()),
        std::sync::Arc::new(Verbose),
        std::sync::Arc::new(clock.clone()),
    );
    let job_id = id("chatty");
    scheduler
        .jobs()
        .add(every_minute("chatty").max_consecutive_errors(1))
        .await
        .unwrap();
    clock.advance(std::time::Duration::from_secs(60));
    let report = scheduler.tick().await.unwrap();
    // The run's own outcome is reported whole; the job keeps a bounded copy.
    assert!(report.runs[0].outcome.as_ref().unwrap_err().message.len() > 1_000_000);
    let job = scheduler.jobs().show(&job_id).await.unwrap();
    let kept = job.last_error.unwrap();
    assert_eq!(kept, format!("{}…", "x".repeat(4095)));
    let trip = scheduler
        .jobs()
        .audit_log(&job_id)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.action == JobAuditAction::BreakerTripped)
        .unwrap();
    assert_eq!(trip.detail["last_error"], kept.as_str());
}
