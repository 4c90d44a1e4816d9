//! `ExecutorRunner` drives real executor runs: a completed run is a success, a failed run is
//! one error for the breaker. Needs the `executor` feature.

#![cfg(feature = "executor")]

use std::sync::Arc;
use std::time::Duration;

use cairn_checkpoint::{
    CheckpointerFactory, JobId, MemoryFactory, MemoryJobStore, RunFilter, RunStatus,
};
use cairn_executor::{ExecutorConfig, Finish, Phase, Registry, RunPlan, TaskFailure, handler_fn};
use cairn_queue::{Handoff, TaskSpec, Timestamp};
use cairn_scheduler::{
    ExecutorRunner, JobStatus, ManualClock, NewJob, PlanSource, RunRequest, Schedule, Scheduler,
};

/// One phase with one task whose kind is the job's workflow name.
#[derive(Debug)]
struct OneTaskPlans;

impl PlanSource for OneTaskPlans {
    fn plan(&self, request: &RunRequest) -> Result<RunPlan, String> {
        if request.workflow == "missing" {
            return Err("workflow file `missing` not found".to_owned());
        }
        let mut phase = Phase::new("only");
        phase.task(TaskSpec::new(request.workflow.clone()).max_attempts(1), []);
        Ok(
            RunPlan::new(request.workflow.clone(), request.job_id.as_str())
                .input(request.input.clone())
                .phase(phase),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_runs_succeed_and_failed_runs_trip_the_breaker() {
    let runs = MemoryFactory::new();
    let registry = Registry::new()
        .with(
            "ok",
            handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
        )
        .with(
            "boom",
            handler_fn(|_ctx| async { Err(TaskFailure::permanent("boom", "dependency down")) }),
        );
    let runner = ExecutorRunner::new(
        Arc::new(runs.clone()),
        registry,
        ExecutorConfig::default(),
        Arc::new(OneTaskPlans),
    )
    .unwrap();
    let clock = ManualClock::new(Timestamp(1_767_225_600_000));
    let scheduler = Scheduler::new(
        Arc::new(MemoryJobStore::new()),
        Arc::new(runner),
        Arc::new(clock.clone()),
    );
    let every = || Schedule::every(Duration::from_secs(60)).unwrap();
    for (name, limit) in [("ok", 5), ("boom", 2), ("missing", 1)] {
        scheduler
            .jobs()
            .add(
                NewJob::new(JobId::new(name).unwrap(), name, every(), name)
                    .max_consecutive_errors(limit),
            )
            .await
            .unwrap();
    }
    for _ in 0..2 {
        clock.advance(Duration::from_secs(60));
        scheduler.tick().await.unwrap();
    }
    let show = |name: &str| {
        let scheduler = scheduler.clone();
        let id = JobId::new(name).unwrap();
        async move { scheduler.jobs().show(&id).await.unwrap() }
    };
    let ok = show("ok").await;
    assert_eq!((ok.status, ok.consecutive_errors), (JobStatus::Active, 0));
    let boom = show("boom").await;
    assert_eq!(
        (boom.status, boom.consecutive_errors),
        (JobStatus::Failed, 2)
    );
    assert!(boom.last_error.unwrap().contains("failed"));
    let missing = show("missing").await;
    assert_eq!(missing.status, JobStatus::Failed);
    assert!(missing.last_error.unwrap().contains("not found"));

    // Each tick started a fresh run: two completed for `ok`, two failed for `boom`.
    let stored = runs.list(&RunFilter::default()).await.unwrap();
    let count = |workflow: &str, status: RunStatus| {
        stored
            .iter()
            .filter(|m| m.workflow == workflow && m.status == status)
            .count()
    };
    assert_eq!(count("ok", RunStatus::Completed), 2);
    assert_eq!(count("boom", RunStatus::Failed), 2);
}
