//! An explicit resume cut off between its claim and its audit record (the record's write
//! failed, or the process stopped there) is finished by the next recovery of the run: the
//! failed task runs again and its dependent runs, instead of the run failing again with the
//! old error and needing a second resume.

mod common;

use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
use cairn_checkpoint::{AuditAction, CheckpointerFactory, MemoryFactory, Owner, RunStatus};
use cairn_executor::{Disposition, RunSignals, Start};
use cairn_runs::{Decision, Error, ResumePolicy, ResumeReason, RunRequest};
use common::{Bodies, flaky_then_after};

/// How the explicit resume is asked for.
#[derive(Debug, Clone, Copy)]
enum Asked {
    ById,
    Approval,
}

async fn cut_off_after_the_claim(asked: Asked) {
    let store = MemoryFactory::new();
    let bodies = Bodies::default();
    let (executor, plan) = flaky_then_after(store.clone(), &bodies);
    let failed = executor
        .run(plan.clone(), Start::Fresh, RunSignals::default())
        .await
        .unwrap();
    assert!(matches!(failed.disposition, Disposition::Fail(_)));
    let run_id = failed.run_id.clone();
    let failed_at = store.load_meta(&run_id).await.unwrap().unwrap().lease_epoch;

    // The resume's first audit record (its request) is written; the one after the claim
    // fails, as a full disk or a stopped process would leave it.
    let faults = FaultPlan::new();
    let policy = ResumePolicy::new(FaultyFactory::new(store.clone(), faults.clone()));
    let confirmation = faults.calls(FaultOp::AppendAudit) + 2;
    faults.fail_nth(FaultOp::AppendAudit, confirmation, FaultTiming::Before);
    let err = match asked {
        Asked::ById => policy.resume(&run_id).await.unwrap_err(),
        Asked::Approval => {
            let request = RunRequest::new("wf", "scope", "").approve(run_id.clone());
            policy.decide(&request).await.unwrap_err()
        }
    };
    assert!(matches!(err, Error::Storage(_)), "{asked:?}: {err:?}");
    assert_eq!(faults.fired(), [(FaultOp::AppendAudit, confirmation)]);
    let claimed = store.load_meta(&run_id).await.unwrap().unwrap();
    assert_eq!(claimed.status, RunStatus::Running, "the claim stands");
    assert_eq!(claimed.lease_epoch, failed_at + 1);
    assert_eq!(claimed.owner, Some(Owner::current()));
    let audit = store.read_audit(&run_id).await.unwrap();
    let requested = audit
        .iter()
        .find(|record| record.action == AuditAction::ResumeRequested)
        .unwrap_or_else(|| panic!("{asked:?}: no request record: {audit:?}"));
    assert_eq!(requested.detail["previous_status"], "failed");
    assert_eq!(requested.detail["lease_epoch"], failed_at + 1);
    assert!(
        !audit
            .iter()
            .any(|r| matches!(r.action, AuditAction::ResumedById | AuditAction::Approved)),
        "{asked:?}: the confirmation was not written: {audit:?}"
    );

    // A plain request recovers it as interrupted; the adoption finishes the resume.
    let decision = policy
        .decide(&RunRequest::new("wf", "scope", ""))
        .await
        .unwrap();
    let Decision::Resume(resumed) = decision else {
        panic!("{asked:?}: expected a resume, got {decision:?}");
    };
    assert_eq!(resumed.reason, ResumeReason::Interrupted);
    assert_eq!(resumed.meta.run_id, run_id);
    let report = executor
        .run(
            plan,
            Start::AdoptInterrupted {
                run_id: run_id.clone(),
                lease_epoch: resumed.meta.lease_epoch,
            },
            RunSignals::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        report.disposition,
        Disposition::Complete,
        "{asked:?}: {report:?}"
    );
    assert_eq!(
        bodies.count("flaky"),
        2,
        "{asked:?}: the failed task ran again"
    );
    assert_eq!(bodies.count("after"), 1, "{asked:?}: and its dependent ran");
    let audit = store.read_audit(&run_id).await.unwrap();
    assert!(
        audit.iter().any(|r| r.action == AuditAction::Recovered
            && r.message.contains("finishing the explicit resume")
            && r.detail["failed_tasks_retried"] == true),
        "{asked:?}: {audit:?}"
    );
}

#[tokio::test]
async fn a_resume_by_id_cut_off_after_its_claim_is_finished_by_the_next_recovery() {
    cut_off_after_the_claim(Asked::ById).await;
}

#[tokio::test]
async fn an_approval_cut_off_after_its_claim_is_finished_by_the_next_recovery() {
    cut_off_after_the_claim(Asked::Approval).await;
}

/// A refused resume claims nothing and asks for nothing: no request record.
#[tokio::test]
async fn a_resume_of_a_running_run_writes_no_request() {
    let store = MemoryFactory::new();
    let bodies = Bodies::default();
    let (executor, plan) = flaky_then_after(store.clone(), &bodies);
    let failed = executor
        .run(plan, Start::Fresh, RunSignals::default())
        .await
        .unwrap();
    let policy = ResumePolicy::new(store.clone());
    policy.resume(&failed.run_id).await.unwrap();
    let err = policy.resume(&failed.run_id).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotResumable {
                current: RunStatus::Running,
                ..
            }
        ),
        "{err:?}"
    );
    let audit = store.read_audit(&failed.run_id).await.unwrap();
    let requests = audit
        .iter()
        .filter(|r| r.action == AuditAction::ResumeRequested)
        .count();
    assert_eq!(requests, 1, "only the resume that claimed asked: {audit:?}");
}
