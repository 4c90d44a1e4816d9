//! The job-store fault wrapper's own behaviour: which calls fail, what a failure before or
//! after the wrapped store leaves behind, and a plan shared with the run wrapper.

#![cfg(feature = "conformance")]

use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory, FaultyJobStore};
use cairn_checkpoint::{
    CheckpointerFactory, Error, JobAuditAction, JobAuditRecord, JobId, JobStore, MemoryFactory,
    MemoryJobStore, RunId, RunMeta,
};
use cairn_queue::Timestamp;
use serde_json::json;

fn job(text: &str) -> JobId {
    JobId::new(text).unwrap()
}

fn injected(op: FaultOp) -> impl Fn(&Error) -> bool {
    move |err| matches!(err, Error::Injected { op: named } if *named == op.name())
}

/// A wrapped store holding job `nightly` at version 1, and the plan.
async fn store_with_one_job() -> (FaultyJobStore<MemoryJobStore>, FaultPlan, JobId) {
    let plan = FaultPlan::new();
    let store = FaultyJobStore::new(MemoryJobStore::new(), plan.clone());
    let id = job("nightly");
    let version = store.put(&id, None, &json!({ "n": 1 })).await.unwrap();
    assert_eq!(version, Ok(1));
    (store, plan, id)
}

#[tokio::test]
async fn a_put_failed_before_writes_nothing_and_after_writes_it() {
    for timing in [FaultTiming::Before, FaultTiming::After] {
        let (store, plan, id) = store_with_one_job().await;
        plan.fail_next(FaultOp::JobPut, timing);
        let err = store
            .put(&id, Some(1), &json!({ "n": 2 }))
            .await
            .unwrap_err();
        assert!(injected(FaultOp::JobPut)(&err), "{timing:?}: {err:?}");
        let stored = store.inner().get(&id).await.unwrap().unwrap();
        let want = match timing {
            FaultTiming::Before => (1, json!({ "n": 1 })),
            FaultTiming::After => (2, json!({ "n": 2 })),
        };
        assert_eq!((stored.version, stored.document), want, "{timing:?}");
        // A create behaves the same way.
        let other = job("other");
        plan.fail_next(FaultOp::JobPut, timing);
        assert!(store.put(&other, None, &json!({})).await.is_err());
        let created = store.inner().get(&other).await.unwrap().is_some();
        assert_eq!(created, timing == FaultTiming::After, "{timing:?}");
    }
}

#[tokio::test]
async fn a_delete_failed_before_keeps_the_job_and_after_deletes_it() {
    for timing in [FaultTiming::Before, FaultTiming::After] {
        let (store, plan, id) = store_with_one_job().await;
        plan.fail_next(FaultOp::JobDelete, timing);
        let err = store.delete(&id, 1).await.unwrap_err();
        assert!(injected(FaultOp::JobDelete)(&err), "{timing:?}: {err:?}");
        let kept = store.inner().get(&id).await.unwrap().is_some();
        assert_eq!(kept, timing == FaultTiming::Before, "{timing:?}");
    }
}

#[tokio::test]
async fn an_audit_append_failed_before_is_absent_and_after_is_kept() {
    for timing in [FaultTiming::Before, FaultTiming::After] {
        let (store, plan, id) = store_with_one_job().await;
        let record = JobAuditRecord::new(Timestamp(1), id.clone(), JobAuditAction::Paused, "x");
        plan.fail_next(FaultOp::JobAppendAudit, timing);
        let err = store.append_audit(&record).await.unwrap_err();
        assert!(injected(FaultOp::JobAppendAudit)(&err), "{err:?}");
        let kept = store.inner().read_audit(&id).await.unwrap();
        assert_eq!(kept.len(), usize::from(timing == FaultTiming::After));
    }
}

#[tokio::test]
async fn every_read_can_fail_and_the_next_one_reads() {
    let (store, plan, id) = store_with_one_job().await;
    store
        .append_audit(&JobAuditRecord::new(
            Timestamp(1),
            id.clone(),
            JobAuditAction::Created,
            "x",
        ))
        .await
        .unwrap();
    for timing in [FaultTiming::Before, FaultTiming::After] {
        plan.fail_next(FaultOp::JobGet, timing);
        assert!(injected(FaultOp::JobGet)(
            &store.get(&id).await.unwrap_err()
        ));
        assert_eq!(store.get(&id).await.unwrap().unwrap().version, 1);

        plan.fail_next(FaultOp::JobListing, timing);
        assert!(injected(FaultOp::JobListing)(
            &store.listing().await.unwrap_err()
        ));
        assert_eq!(store.listing().await.unwrap().jobs.len(), 1);

        // `list` reads what `listing` reads, so it counts and fails as `JobListing`.
        plan.fail_next(FaultOp::JobListing, timing);
        assert!(injected(FaultOp::JobListing)(
            &store.list().await.unwrap_err()
        ));
        assert_eq!(store.list().await.unwrap().len(), 1);

        plan.fail_next(FaultOp::JobReadAudit, timing);
        assert!(injected(FaultOp::JobReadAudit)(
            &store.read_audit(&id).await.unwrap_err()
        ));
        assert_eq!(store.read_audit(&id).await.unwrap().len(), 1);
    }
    assert_eq!(plan.calls(FaultOp::JobGet), 4);
    assert_eq!(plan.calls(FaultOp::JobListing), 8);
    assert_eq!(plan.calls(FaultOp::JobReadAudit), 4);
    assert_eq!(plan.fired().len(), 8);
}

#[tokio::test]
async fn the_nth_put_fails_and_only_it() {
    let (store, plan, id) = store_with_one_job().await;
    // The create above was put 1.
    plan.fail_nth(FaultOp::JobPut, 3, FaultTiming::Before);
    assert_eq!(store.put(&id, Some(1), &json!({})).await.unwrap(), Ok(2));
    assert!(store.put(&id, Some(2), &json!({})).await.is_err());
    assert_eq!(store.put(&id, Some(2), &json!({})).await.unwrap(), Ok(3));
    assert_eq!(plan.fired(), [(FaultOp::JobPut, 3)]);
    assert_eq!(plan.calls(FaultOp::JobPut), 4);
}

#[tokio::test]
async fn a_conflict_failed_after_is_still_a_conflict_underneath() {
    // An `After` fault hides the answer, whatever it was: a lost compare-and-swap changed
    // nothing underneath, and the caller hears only of the injected error.
    let (store, plan, id) = store_with_one_job().await;
    plan.fail_next(FaultOp::JobPut, FaultTiming::After);
    assert!(store.put(&id, Some(7), &json!({ "n": 9 })).await.is_err());
    let stored = store.inner().get(&id).await.unwrap().unwrap();
    assert_eq!((stored.version, stored.document), (1, json!({ "n": 1 })));
}

#[tokio::test]
async fn one_plan_fails_run_and_job_calls_in_the_order_they_happen() {
    let plan = FaultPlan::new();
    let runs = FaultyFactory::new(MemoryFactory::new(), plan.clone());
    let jobs = FaultyJobStore::new(MemoryJobStore::new(), plan.clone());
    let id = job("nightly");
    plan.fail_next(FaultOp::JobAppendAudit, FaultTiming::Before);
    plan.fail_next(FaultOp::AppendAudit, FaultTiming::Before);
    let record = JobAuditRecord::new(Timestamp(0), id.clone(), JobAuditAction::Created, "");
    let run_id = RunId::new("r1").unwrap();
    runs.begin(RunMeta::new(run_id.clone(), "wf", "s", "", Timestamp(0)))
        .await
        .unwrap();
    let run_record = cairn_checkpoint::AuditRecord::new(
        Timestamp(0),
        run_id.clone(),
        cairn_checkpoint::AuditAction::Recovered,
        "",
    );
    // The job store's `append_audit` is not the run port's: each fails only its own.
    let run_err = runs.append_audit(&run_id, &run_record).await.unwrap_err();
    assert!(injected(FaultOp::AppendAudit)(&run_err), "{run_err:?}");
    let job_err = jobs.append_audit(&record).await.unwrap_err();
    assert!(injected(FaultOp::JobAppendAudit)(&job_err), "{job_err:?}");
    assert_eq!(
        plan.fired(),
        [(FaultOp::AppendAudit, 1), (FaultOp::JobAppendAudit, 1)]
    );
    jobs.append_audit(&record).await.unwrap();
    assert_eq!(jobs.read_audit(&id).await.unwrap(), [record]);
}

#[tokio::test]
async fn disarmed_job_faults_never_fire() {
    let (store, plan, id) = store_with_one_job().await;
    plan.fail_next(FaultOp::JobDelete, FaultTiming::Before);
    plan.disarm_all();
    assert_eq!(store.delete(&id, 1).await.unwrap(), Ok(()));
    assert!(plan.fired().is_empty());
}
