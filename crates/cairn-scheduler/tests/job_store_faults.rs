//! The scheduler when job-store calls fail, through `FaultyJobStore`: before the store saw
//! the call (nothing happened) or after it (the change happened, its answer was lost). Each
//! failure is a `Store` error naming the job, never a panic; no tick runs twice; and once the
//! store works again, the job is where the failure left it, and goes on from there.

mod common;

use std::time::Duration;

use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming};
use cairn_checkpoint::{JobAuditAction, JobId};
use cairn_scheduler::{Error, JobStatus, NewJob, Schedule, TickFailed};
use common::{NEW_YEAR_2026, Rig, every_minute, faulty_rig, id};

const BOTH: [FaultTiming; 2] = [FaultTiming::Before, FaultTiming::After];

/// Whether `err` is the store error of `op`'s injected fault, naming `job` when given.
fn is_injected(err: &Error, op: FaultOp, job: Option<&JobId>) -> bool {
    matches!(
        err,
        Error::Store { job: named, source: cairn_checkpoint::Error::Injected { op: failed } }
            if *failed == op.name() && named.as_ref() == job
    )
}

/// Whether `err` says that a change to `job` stands without its `action` record, because of
/// `op`'s injected fault.
fn is_unaudited(err: &Error, job: &JobId, action: JobAuditAction) -> bool {
    matches!(
        err,
        Error::Unaudited { id, action: missing, source: cairn_checkpoint::Error::Injected { op } }
            if id == job && *missing == action && *op == FaultOp::JobAppendAudit.name()
    )
}

/// The actions of the job's audit log, in the order the log gives them.
async fn actions(rig: &Rig, job: &JobId) -> Vec<JobAuditAction> {
    let log = rig.scheduler.jobs().audit_log(job).await.unwrap();
    log.into_iter().map(|record| record.action).collect()
}

/// Adds `new` through the scheduler's jobs and returns its id.
async fn add_job(rig: &Rig, new: NewJob) -> JobId {
    let job = new.id.clone();
    rig.scheduler.jobs().add(new).await.unwrap();
    job
}

/// Moves the clock to the job's next run and ticks, failing the next call of `op`.
async fn tick_due_failing(
    rig: &Rig,
    plan: &FaultPlan,
    job: &JobId,
    op: FaultOp,
    at: FaultTiming,
) -> Error {
    tick_due_failing_reported(rig, plan, job, op, at)
        .await
        .error
}

/// As `tick_due_failing`, keeping what the failed tick reported.
async fn tick_due_failing_reported(
    rig: &Rig,
    plan: &FaultPlan,
    job: &JobId,
    op: FaultOp,
    at: FaultTiming,
) -> TickFailed {
    rig.clock.set(rig.next_due(job).await);
    plan.fail_next(op, at);
    let failed = rig.scheduler.tick().await.unwrap_err();
    assert_eq!(plan.fired().last().map(|fired| fired.0), Some(op));
    assert_no_repeated_message(&failed);
    failed
}

/// The first error is the failed tick's source, and its message is not said again by the
/// tick's own (a host printing the chain would show it twice).
fn assert_no_repeated_message(failed: &TickFailed) {
    let source = std::error::Error::source(failed).expect("the first error is the source");
    assert_eq!(source.to_string(), failed.error.to_string());
    assert!(
        !failed.to_string().contains(&failed.error.to_string()),
        "{failed}"
    );
}

#[tokio::test]
async fn a_failed_listing_runs_nothing_and_the_next_tick_runs_the_job_once() {
    for timing in BOTH {
        let (rig, plan) = faulty_rig();
        let job = add_job(&rig, every_minute("listed")).await;
        let err = tick_due_failing(&rig, &plan, &job, FaultOp::JobListing, timing).await;
        assert!(is_injected(&err, FaultOp::JobListing, None), "{err:?}");
        assert_eq!(rig.runner.runs(), 0);
        let report = rig.scheduler.tick().await.unwrap();
        assert_eq!(report.runs.len(), 1, "{timing:?}: {report:?}");
        assert!(rig.scheduler.tick().await.unwrap().runs.is_empty());
        assert_eq!(rig.runner.runs(), 1);
    }
}

#[tokio::test]
async fn a_claim_that_failed_before_runs_nothing_and_the_next_tick_runs_it_once() {
    // The claim reads the job (get), then writes it (put): each can fail.
    for op in [FaultOp::JobGet, FaultOp::JobPut] {
        let (rig, plan) = faulty_rig();
        let job = add_job(&rig, every_minute("claimed")).await;
        let err = tick_due_failing(&rig, &plan, &job, op, FaultTiming::Before).await;
        assert!(is_injected(&err, op, Some(&job)), "{op}: {err:?}");
        assert_eq!(rig.runner.runs(), 0, "{op}");
        assert_eq!(rig.scheduler.tick().await.unwrap().runs.len(), 1, "{op}");
        assert_eq!(rig.runner.runs(), 1, "{op}");
    }
}

#[tokio::test]
async fn missed_ticks_are_counted_by_the_tick_whose_claim_stands_not_by_a_failed_claim() {
    let (rig, plan) = faulty_rig();
    let job = add_job(&rig, every_minute("late")).await;
    // Three ticks are due: one runs, two are missed.
    rig.clock.set(rig.next_due(&job).await.plus_millis(120_000));
    plan.fail_next(FaultOp::JobPut, FaultTiming::Before);
    let failed = rig.scheduler.tick().await.unwrap_err();
    assert!(is_injected(&failed.error, FaultOp::JobPut, Some(&job)));
    assert_eq!(failed.report.missed_not_run, 0, "{:?}", failed.report);
    let report = rig.scheduler.tick().await.unwrap();
    assert_eq!((report.runs.len(), report.missed_not_run), (1, 2));
}

#[tokio::test]
async fn a_claim_whose_answer_was_lost_never_runs_its_tick_twice() {
    let (rig, plan) = faulty_rig();
    let job = add_job(&rig, every_minute("claimed")).await;
    let before = rig.scheduler.jobs().show(&job).await.unwrap();
    let err = tick_due_failing(&rig, &plan, &job, FaultOp::JobPut, FaultTiming::After).await;
    assert!(is_injected(&err, FaultOp::JobPut, Some(&job)), "{err:?}");
    // The claim landed: the tick is taken, and is not run (at most once per tick), but the
    // job goes on with its next one.
    let claimed = rig.scheduler.jobs().show(&job).await.unwrap();
    assert!(claimed.next_run_at > before.next_run_at, "{claimed:?}");
    assert_eq!(claimed.status, JobStatus::Active);
    assert!(rig.scheduler.tick().await.unwrap().runs.is_empty());
    assert_eq!(rig.runner.runs(), 0);
    let report = rig.tick_when_due(&job).await;
    assert_eq!(report.runs.len(), 1);
}

#[tokio::test]
async fn a_failed_save_after_a_failed_run_is_an_error_naming_the_job() {
    for timing in BOTH {
        let (rig, plan) = faulty_rig();
        rig.runner.set_failing(true);
        let job = add_job(&rig, every_minute("saved")).await;
        // The claim is put 2 (after the add); the record of the outcome is put 3.
        rig.clock.set(rig.next_due(&job).await);
        plan.fail_nth(FaultOp::JobPut, 3, timing);
        let err = rig.scheduler.tick().await.unwrap_err().error;
        assert!(is_injected(&err, FaultOp::JobPut, Some(&job)), "{err:?}");
        assert_eq!(rig.runner.runs(), 1);
        let stored = rig.scheduler.jobs().show(&job).await.unwrap();
        // Before: not counted (nothing could be recorded); after: counted, answer lost.
        let counted = u32::from(timing == FaultTiming::After);
        assert_eq!(stored.consecutive_errors, counted, "{timing:?}");
        // The store works again: the job goes on from there, and its tick is not rerun.
        assert!(rig.scheduler.tick().await.unwrap().runs.is_empty());
        rig.tick_when_due(&job).await;
        let stored = rig.scheduler.jobs().show(&job).await.unwrap();
        assert_eq!(stored.consecutive_errors, counted + 1, "{timing:?}");
        assert_eq!(rig.runner.runs(), 2);
    }
}

#[tokio::test]
async fn a_breaker_trip_whose_save_answer_was_lost_leaves_the_job_failed() {
    let (rig, plan) = faulty_rig();
    rig.runner.set_failing(true);
    let job = add_job(&rig, every_minute("tripping").max_consecutive_errors(1)).await;
    rig.clock.set(rig.next_due(&job).await);
    plan.fail_nth(FaultOp::JobPut, 3, FaultTiming::After);
    let failed = rig.scheduler.tick().await.unwrap_err();
    let err = failed.error;
    assert!(is_injected(&err, FaultOp::JobPut, Some(&job)), "{err:?}");
    let stored = rig.scheduler.jobs().show(&job).await.unwrap();
    assert_eq!(
        (stored.status, stored.next_run_at),
        (JobStatus::Failed, None)
    );
    // The trip stands, so it leaves a trace: reported, and audited with the lost answer.
    assert_eq!(failed.report.tripped, std::slice::from_ref(&job));
    let log = rig.scheduler.jobs().audit_log(&job).await.unwrap();
    let trip = log
        .iter()
        .find(|record| record.action == JobAuditAction::BreakerTripped)
        .expect("the trip is audited");
    assert_eq!(trip.detail["answer_lost"], true, "{trip:?}");
    assert_eq!(trip.detail["consecutive_errors"], 1, "{trip:?}");
    // Failed stays failed: nothing runs until a forced resume.
    rig.clock.advance(Duration::from_secs(3600));
    assert!(rig.scheduler.tick().await.unwrap().runs.is_empty());
    assert!(matches!(
        rig.scheduler.jobs().resume(&job, false).await,
        Err(Error::NeedsForce { .. })
    ));
    rig.scheduler.jobs().resume(&job, true).await.unwrap();
    assert_eq!(rig.runner.runs(), 1);
}

#[tokio::test]
async fn a_breaker_trip_whose_save_failed_before_leaves_the_job_active_and_no_trip_record() {
    let (rig, plan) = faulty_rig();
    rig.runner.set_failing(true);
    let job = add_job(&rig, every_minute("tripping").max_consecutive_errors(1)).await;
    rig.clock.set(rig.next_due(&job).await);
    plan.fail_nth(FaultOp::JobPut, 3, FaultTiming::Before);
    let failed = rig.scheduler.tick().await.unwrap_err();
    assert!(is_injected(&failed.error, FaultOp::JobPut, Some(&job)));
    assert!(failed.report.tripped.is_empty(), "{:?}", failed.report);
    let stored = rig.scheduler.jobs().show(&job).await.unwrap();
    assert_eq!(stored.status, JobStatus::Active);
    assert_eq!(actions(&rig, &job).await, [JobAuditAction::Created]);
}

#[tokio::test]
async fn a_one_shot_success_whose_save_answer_was_lost_is_audited_and_never_runs_again() {
    let (rig, plan) = faulty_rig();
    let at = NEW_YEAR_2026.plus_millis(10_000);
    let job = add_job(
        &rig,
        NewJob::new(id("once"), "once", Schedule::once(at), "wf.toml"),
    )
    .await;
    rig.clock.set(rig.next_due(&job).await);
    plan.fail_nth(FaultOp::JobPut, 3, FaultTiming::After);
    let failed = rig.scheduler.tick().await.unwrap_err();
    assert!(is_injected(&failed.error, FaultOp::JobPut, Some(&job)));
    let log = rig.scheduler.jobs().audit_log(&job).await.unwrap();
    let done = log.last().expect("records");
    assert_eq!(done.action, JobAuditAction::Completed, "{log:?}");
    assert_eq!(done.detail["answer_lost"], true, "{done:?}");
    rig.clock.advance(Duration::from_secs(3600));
    assert!(rig.scheduler.tick().await.unwrap().runs.is_empty());
    assert_eq!(rig.runner.runs(), 1);
}

#[tokio::test]
async fn a_breaker_trip_whose_audit_failed_is_an_error_and_the_job_stays_failed() {
    for timing in BOTH {
        let (rig, plan) = faulty_rig();
        rig.runner.set_failing(true);
        let job = add_job(&rig, every_minute("tripping").max_consecutive_errors(1)).await;
        let failed =
            tick_due_failing_reported(&rig, &plan, &job, FaultOp::JobAppendAudit, timing).await;
        // The trip stands, so the tick reports it (and the run) along with the error.
        assert_eq!(
            failed.report.tripped,
            std::slice::from_ref(&job),
            "{timing:?}"
        );
        assert_eq!(failed.report.runs.len(), 1, "{timing:?}");
        let err = failed.error;
        // Not a plain store error: the trip stands, only its record may be missing.
        assert!(
            is_unaudited(&err, &job, JobAuditAction::BreakerTripped),
            "{err:?}"
        );
        // The record is named as `cairn jobs audit` shows it, not as the Rust variant.
        assert!(
            err.to_string()
                .contains("stands, but its audit record (`breaker_tripped`)"),
            "{err}"
        );
        let stored = rig.scheduler.jobs().show(&job).await.unwrap();
        assert_eq!(stored.status, JobStatus::Failed, "{timing:?}");
        let tripped = actions(&rig, &job)
            .await
            .contains(&JobAuditAction::BreakerTripped);
        assert_eq!(tripped, timing == FaultTiming::After, "{timing:?}");
    }
}

/// A one-shot job with `delete_after_run`, due now.
async fn add_once_and_gone(rig: &Rig) -> JobId {
    let at = NEW_YEAR_2026.plus_millis(10_000);
    let once = NewJob::new(id("once-and-gone"), "once", Schedule::once(at), "wf.toml");
    add_job(rig, once.delete_after_run(true)).await
}

#[tokio::test]
async fn a_failed_delete_after_run_never_runs_the_job_again_and_its_success_is_audited() {
    for timing in BOTH {
        let (rig, plan) = faulty_rig();
        let job = add_once_and_gone(&rig).await;
        let err = tick_due_failing(&rig, &plan, &job, FaultOp::JobDelete, timing).await;
        assert!(is_injected(&err, FaultOp::JobDelete, Some(&job)), "{err:?}");
        let gone = matches!(
            rig.scheduler.jobs().show(&job).await,
            Err(Error::NotFound { .. })
        );
        assert_eq!(gone, timing == FaultTiming::After, "{timing:?}");
        // Whether the delete landed or not, the audit log says how the job ended.
        let log = actions(&rig, &job).await;
        assert!(
            log.contains(&JobAuditAction::Completed),
            "{timing:?}: {log:?}"
        );
        rig.clock.advance(Duration::from_secs(3600));
        assert!(rig.scheduler.tick().await.unwrap().runs.is_empty());
        assert_eq!(rig.runner.runs(), 1);
    }
}

#[tokio::test]
async fn a_failed_deleted_record_after_run_leaves_the_success_audited() {
    let (rig, plan) = faulty_rig();
    let job = add_once_and_gone(&rig).await;
    // The add's `Created` is append 1; the run's records follow.
    rig.clock.set(rig.next_due(&job).await);
    let appends = plan.calls(FaultOp::JobAppendAudit);
    // Fail every append the run's bookkeeping makes after the first one.
    for nth in appends + 2..appends + 5 {
        plan.fail_nth(FaultOp::JobAppendAudit, nth, FaultTiming::Before);
    }
    let err = rig.scheduler.tick().await.unwrap_err().error;
    assert!(is_unaudited(&err, &job, JobAuditAction::Deleted), "{err:?}");
    assert!(matches!(
        rig.scheduler.jobs().show(&job).await,
        Err(Error::NotFound { .. })
    ));
    let log = actions(&rig, &job).await;
    assert_eq!(log, [JobAuditAction::Created, JobAuditAction::Completed]);
}

#[tokio::test]
async fn a_forced_revive_whose_audit_failed_says_that_the_job_was_revived() {
    let (rig, plan) = faulty_rig();
    rig.runner.set_failing(true);
    let job = add_job(&rig, every_minute("revived").max_consecutive_errors(1)).await;
    rig.tick_when_due(&job).await;
    assert_eq!(
        rig.scheduler.jobs().show(&job).await.unwrap().status,
        JobStatus::Failed
    );
    plan.fail_next(FaultOp::JobAppendAudit, FaultTiming::Before);
    let err = rig.scheduler.jobs().resume(&job, true).await.unwrap_err();
    let stored = rig.scheduler.jobs().show(&job).await.unwrap();
    assert_eq!(stored.status, JobStatus::Active);
    // The revive committed; the error must say so, not read as "nothing changed" (a
    // retry finds the job active and refuses with `AlreadyActive`).
    assert!(is_unaudited(&err, &job, JobAuditAction::Revived), "{err:?}");
    assert!(matches!(
        rig.scheduler.jobs().resume(&job, true).await,
        Err(Error::AlreadyActive { .. })
    ));
}

#[tokio::test]
async fn operator_changes_whose_audit_failed_stand_and_say_so() {
    let (rig, plan) = faulty_rig();
    let jobs = rig.scheduler.jobs();
    let job = id("operated");
    plan.fail_next(FaultOp::JobAppendAudit, FaultTiming::Before);
    let err = jobs.add(every_minute("operated")).await.unwrap_err();
    assert!(is_unaudited(&err, &job, JobAuditAction::Created), "{err:?}");
    assert_eq!(jobs.show(&job).await.unwrap().status, JobStatus::Active);

    plan.fail_next(FaultOp::JobAppendAudit, FaultTiming::Before);
    let err = jobs.pause(&job).await.unwrap_err();
    assert!(is_unaudited(&err, &job, JobAuditAction::Paused), "{err:?}");
    assert_eq!(jobs.show(&job).await.unwrap().status, JobStatus::Paused);

    plan.fail_next(FaultOp::JobAppendAudit, FaultTiming::Before);
    let err = jobs.resume(&job, false).await.unwrap_err();
    assert!(is_unaudited(&err, &job, JobAuditAction::Resumed), "{err:?}");
    assert_eq!(jobs.show(&job).await.unwrap().status, JobStatus::Active);

    plan.fail_next(FaultOp::JobAppendAudit, FaultTiming::Before);
    let err = jobs.delete(&job).await.unwrap_err();
    assert!(is_unaudited(&err, &job, JobAuditAction::Deleted), "{err:?}");
    assert!(matches!(jobs.show(&job).await, Err(Error::NotFound { .. })));
    assert!(actions(&rig, &job).await.is_empty());

    // A failure before the change is still a plain store error, and changes nothing.
    plan.fail_next(FaultOp::JobPut, FaultTiming::Before);
    let err = jobs.add(every_minute("operated")).await.unwrap_err();
    assert!(is_injected(&err, FaultOp::JobPut, None), "{err:?}");
    assert!(matches!(jobs.show(&job).await, Err(Error::NotFound { .. })));
}

/// The last audit record of `job`, which MUST have `action`, noting a lost answer.
async fn last_notes_a_lost_answer(rig: &Rig, job: &JobId, action: JobAuditAction) {
    let log = rig.scheduler.jobs().audit_log(job).await.unwrap();
    let last = log.last().expect("an audit record");
    assert_eq!(last.action, action, "{log:?}");
    assert_eq!(last.detail["answer_lost"], true, "{last:?}");
}

#[tokio::test]
async fn an_add_or_delete_whose_answer_was_lost_is_audited_and_still_an_error() {
    let (rig, plan) = faulty_rig();
    let jobs = rig.scheduler.jobs();
    let job = id("operated");

    plan.fail_next(FaultOp::JobPut, FaultTiming::After);
    let err = jobs.add(every_minute("operated")).await.unwrap_err();
    assert!(is_injected(&err, FaultOp::JobPut, None), "{err:?}");
    assert_eq!(jobs.show(&job).await.unwrap().status, JobStatus::Active);
    last_notes_a_lost_answer(&rig, &job, JobAuditAction::Created).await;

    plan.fail_next(FaultOp::JobDelete, FaultTiming::After);
    let err = jobs.delete(&job).await.unwrap_err();
    assert!(is_injected(&err, FaultOp::JobDelete, None), "{err:?}");
    assert!(matches!(jobs.show(&job).await, Err(Error::NotFound { .. })));
    last_notes_a_lost_answer(&rig, &job, JobAuditAction::Deleted).await;

    // Failed before the store saw them: nothing changed, and nothing is audited.
    let records = jobs.audit_log(&job).await.unwrap().len();
    plan.fail_next(FaultOp::JobPut, FaultTiming::Before);
    jobs.add(every_minute("operated")).await.unwrap_err();
    assert_eq!(jobs.audit_log(&job).await.unwrap().len(), records);
    jobs.add(every_minute("operated")).await.unwrap();
    plan.fail_next(FaultOp::JobDelete, FaultTiming::Before);
    jobs.delete(&job).await.unwrap_err();
    assert_eq!(jobs.show(&job).await.unwrap().status, JobStatus::Active);
    let log = actions(&rig, &job).await;
    assert_eq!(log.last(), Some(&JobAuditAction::Created), "{log:?}");
}

#[tokio::test]
async fn an_undecodable_job_whose_delete_answer_was_lost_is_audited_as_deleted() {
    let (rig, plan) = faulty_rig();
    let job = id("odd");
    let store = rig.scheduler.jobs().store();
    store
        .put(&job, None, &serde_json::json!({ "hello": 1 }))
        .await
        .unwrap()
        .unwrap();
    plan.fail_next(FaultOp::JobDelete, FaultTiming::After);
    let err = rig
        .scheduler
        .jobs()
        .delete_unreadable(&job)
        .await
        .unwrap_err();
    assert!(is_injected(&err, FaultOp::JobDelete, None), "{err:?}");
    assert!(store.get(&job).await.unwrap().is_none());
    last_notes_a_lost_answer(&rig, &job, JobAuditAction::Deleted).await;
    let log = rig.scheduler.jobs().audit_log(&job).await.unwrap();
    assert_eq!(log.last().unwrap().detail["undecodable"], true);
}

/// A one-shot job (kept after its run), due ten seconds after the rig starts.
async fn add_once(rig: &Rig) -> JobId {
    let at = NEW_YEAR_2026.plus_millis(10_000);
    add_job(
        rig,
        NewJob::new(id("once"), "once", Schedule::once(at), "wf.toml"),
    )
    .await
}

/// Ticks now and then an hour of minutes later, long past the one-shot retry time.
async fn tick_for_an_hour(rig: &Rig) -> Vec<cairn_scheduler::TickReport> {
    let mut reports = Vec::new();
    for _ in 0..60 {
        rig.clock.advance(Duration::from_secs(60));
        reports.push(rig.scheduler.tick().await.unwrap());
    }
    reports
}

#[tokio::test]
async fn a_one_shot_success_whose_record_is_lost_never_runs_again_by_itself() {
    for timing in BOTH {
        let (rig, plan) = faulty_rig();
        let job = add_once(&rig).await;
        rig.clock.set(rig.next_due(&job).await);
        // The claim is the next put; the run's record is the one after it.
        plan.fail_nth(FaultOp::JobPut, plan.calls(FaultOp::JobPut) + 2, timing);
        let failed = rig.scheduler.tick().await.unwrap_err();
        assert!(
            is_injected(&failed.error, FaultOp::JobPut, Some(&job)),
            "{timing:?}: {:?}",
            failed.error
        );
        assert_eq!(rig.runner.runs(), 1);
        let reports = tick_for_an_hour(&rig).await;
        assert_eq!(
            rig.runner.runs(),
            1,
            "{timing:?}: the one-shot job ran twice"
        );
        let stored = rig.scheduler.jobs().show(&job).await.unwrap();
        let held: Vec<_> = reports.iter().flat_map(|r| r.unrecorded.clone()).collect();
        if timing == FaultTiming::After {
            // The record landed though its answer was lost: the job is complete.
            assert_eq!(stored.status, JobStatus::Completed);
            assert_eq!(stored.claimed_run, None);
            assert!(held.is_empty(), "{held:?}");
        } else {
            // The record never landed: a person decides, once.
            assert_eq!(held, std::slice::from_ref(&job));
            assert_eq!(
                (stored.status, stored.next_run_at),
                (JobStatus::Failed, None)
            );
            assert!(stored.claimed_run.is_some());
            assert!(matches!(
                rig.scheduler.jobs().resume(&job, false).await,
                Err(Error::NeedsForce { .. })
            ));
            let log = rig.scheduler.jobs().audit_log(&job).await.unwrap();
            let record = log.last().unwrap();
            assert_eq!(record.action, JobAuditAction::BreakerTripped);
            assert_eq!(record.detail["unrecorded_run"], true);
        }
    }
}

#[tokio::test]
async fn a_forced_resume_of_a_held_one_shot_job_runs_it_and_records_it() {
    let (rig, plan) = faulty_rig();
    let job = add_once(&rig).await;
    rig.clock.set(rig.next_due(&job).await);
    plan.fail_nth(
        FaultOp::JobPut,
        plan.calls(FaultOp::JobPut) + 2,
        FaultTiming::Before,
    );
    rig.scheduler.tick().await.unwrap_err();
    tick_for_an_hour(&rig).await;
    // A person checked the run and decided it runs again.
    let revived = rig.scheduler.jobs().resume(&job, true).await.unwrap();
    assert_eq!(
        (revived.status, revived.claimed_run),
        (JobStatus::Active, None)
    );
    let report = rig.scheduler.tick().await.unwrap();
    assert_eq!((report.runs.len(), rig.runner.runs()), (1, 2));
    let stored = rig.scheduler.jobs().show(&job).await.unwrap();
    assert_eq!(
        (stored.status, stored.claimed_run),
        (JobStatus::Completed, None)
    );
}

#[tokio::test]
async fn a_failed_one_shot_run_that_was_recorded_is_still_retried() {
    let (rig, _plan) = faulty_rig();
    rig.runner.then(&[false]);
    let job = add_once(&rig).await;
    rig.tick_when_due(&job).await;
    let stored = rig.scheduler.jobs().show(&job).await.unwrap();
    assert_eq!((stored.consecutive_errors, stored.claimed_run), (1, None));
    let report = rig.tick_when_due(&job).await;
    assert!(report.unrecorded.is_empty());
    assert_eq!(rig.runner.runs(), 2);
    let stored = rig.scheduler.jobs().show(&job).await.unwrap();
    assert_eq!(stored.status, JobStatus::Completed);
}

/// A runner that, as it says, finds a one-shot job's earlier runs itself.
#[derive(Debug, Clone)]
struct FindsEarlierRuns(common::ScriptedRunner);

#[async_trait::async_trait]
impl cairn_scheduler::JobRunner for FindsEarlierRuns {
    async fn run(
        &self,
        request: &cairn_scheduler::RunRequest,
    ) -> Result<cairn_scheduler::RunSucceeded, cairn_scheduler::RunFailed> {
        cairn_scheduler::JobRunner::run(&self.0, request).await
    }

    fn finds_earlier_runs(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn a_runner_that_finds_earlier_runs_is_handed_the_unrecorded_one_shot_job() {
    let plan = cairn_checkpoint::fault::FaultPlan::new();
    let store = cairn_checkpoint::fault::FaultyJobStore::new(
        cairn_checkpoint::MemoryJobStore::new(),
        plan.clone(),
    );
    let mut rig = Rig::over(std::sync::Arc::new(store), Default::default());
    rig.scheduler = cairn_scheduler::Scheduler::new(
        rig.store.clone(),
        std::sync::Arc::new(FindsEarlierRuns(rig.runner.clone())),
        std::sync::Arc::new(rig.clock.clone()),
    );
    let job = add_once(&rig).await;
    rig.clock.set(rig.next_due(&job).await);
    plan.fail_nth(
        FaultOp::JobPut,
        plan.calls(FaultOp::JobPut) + 2,
        FaultTiming::Before,
    );
    rig.scheduler.tick().await.unwrap_err();
    // Due again at the retry time: the runner decides (here: it reports a success).
    let reports = tick_for_an_hour(&rig).await;
    assert!(reports.iter().all(|r| r.unrecorded.is_empty()));
    assert_eq!(rig.runner.runs(), 2);
    let stored = rig.scheduler.jobs().show(&job).await.unwrap();
    assert_eq!(
        (stored.status, stored.claimed_run),
        (JobStatus::Completed, None)
    );
}

#[tokio::test]
async fn a_pause_or_resume_whose_answer_was_lost_is_audited_and_still_an_error() {
    let (rig, plan) = faulty_rig();
    rig.runner.set_failing(true);
    let jobs = rig.scheduler.jobs();
    let job = add_job(&rig, every_minute("lost").max_consecutive_errors(1)).await;

    plan.fail_next(FaultOp::JobPut, FaultTiming::After);
    let err = jobs.pause(&job).await.unwrap_err();
    assert!(is_injected(&err, FaultOp::JobPut, None), "{err:?}");
    assert_eq!(jobs.show(&job).await.unwrap().status, JobStatus::Paused);
    last_notes_a_lost_answer(&rig, &job, JobAuditAction::Paused).await;

    plan.fail_next(FaultOp::JobPut, FaultTiming::After);
    let err = jobs.resume(&job, false).await.unwrap_err();
    assert!(is_injected(&err, FaultOp::JobPut, None), "{err:?}");
    assert_eq!(jobs.show(&job).await.unwrap().status, JobStatus::Active);
    last_notes_a_lost_answer(&rig, &job, JobAuditAction::Resumed).await;

    // Tripped, then revived with force: the revive is audited too.
    rig.tick_when_due(&job).await;
    plan.fail_next(FaultOp::JobPut, FaultTiming::After);
    let err = jobs.resume(&job, true).await.unwrap_err();
    assert!(is_injected(&err, FaultOp::JobPut, None), "{err:?}");
    assert_eq!(jobs.show(&job).await.unwrap().status, JobStatus::Active);
    last_notes_a_lost_answer(&rig, &job, JobAuditAction::Revived).await;

    // A failure before the write is a plain error, and nothing is audited.
    let before = actions(&rig, &job).await.len();
    plan.fail_next(FaultOp::JobPut, FaultTiming::Before);
    jobs.pause(&job).await.unwrap_err();
    assert_eq!(jobs.show(&job).await.unwrap().status, JobStatus::Active);
    assert_eq!(actions(&rig, &job).await.len(), before);
}
