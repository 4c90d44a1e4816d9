//! The text of the errors a person reads, as a host prints them: ids as `t5, t6`, no Rust
//! `Debug` output, and an adopt refusal that says what to do. Other tests match on
//! variants; these check the words, because the words are what these tests are about.

mod common;

use std::sync::{Arc, Mutex};

use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunStatus};
use cairn_executor::{
    Disposition, Error, Executor, ExecutorConfig, Finish, Phase, Registry, RunPlan, RunSignals,
    Start, TaskFailure, handler_fn,
};
use cairn_queue::{Handoff, TaskId, TaskSpec};

#[tokio::test]
async fn a_refused_follow_up_names_its_unknown_dependencies_as_ids() {
    let seen: Arc<Mutex<Option<Error>>> = Arc::default();
    let handler = {
        let seen = Arc::clone(&seen);
        handler_fn(move |ctx| {
            let seen = Arc::clone(&seen);
            async move {
                let spec = TaskSpec::new("ok").depends_on([TaskId(998), TaskId(999)]);
                if let Err(err) = ctx.enqueue(spec).await {
                    *seen.lock().unwrap() = Some(err);
                }
                Ok::<_, TaskFailure>(Finish::Complete(Handoff::default()))
            }
        })
    };
    let registry = Registry::new().with("ok", handler);
    let executor = Executor::new(
        Arc::new(MemoryFactory::new()),
        registry,
        ExecutorConfig::default(),
    )
    .unwrap();
    let mut phase = Phase::new("p");
    phase.task(TaskSpec::new("ok"), []);
    let report = executor
        .run(
            RunPlan::new("wf", "scope").phase(phase),
            Start::Fresh,
            RunSignals::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.disposition, Disposition::Complete);

    let err = seen
        .lock()
        .unwrap()
        .take()
        .expect("the enqueue was refused");
    assert!(matches!(err, Error::Enqueue { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "task t0 cannot enqueue a follow-up: unknown dependencies t998, t999 for a task of kind `ok`"
    );
}

#[tokio::test]
async fn adopting_an_unclaimed_run_says_to_claim_it_and_that_nothing_was_quarantined() {
    let store = MemoryFactory::new();
    let fails = handler_fn(|_ctx| async { Err(TaskFailure::permanent("broken", "no")) });
    let registry = Registry::new().with("fails", fails).with(
        "ok",
        handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
    );
    let executor =
        Executor::new(Arc::new(store.clone()), registry, ExecutorConfig::default()).unwrap();
    let plan_of = |kind: &str| {
        let mut phase = Phase::new("p");
        phase.task(TaskSpec::new(kind), []);
        RunPlan::new("wf", kind).phase(phase)
    };

    let failed = executor
        .run(plan_of("fails"), Start::Fresh, RunSignals::default())
        .await
        .unwrap();
    let err = executor
        .run(
            plan_of("fails"),
            common::adopt_start(&store, failed.run_id.clone()).await,
            RunSignals::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "run {} cannot be adopted: it is failed, not running: claim it first with \
             `ResumePolicy::resume` (cairn-runs) or `CheckpointerFactory::claim`, then adopt \
             it (its state is untouched, not quarantined)",
            failed.run_id
        )
    );

    let completed = executor
        .run(plan_of("ok"), Start::Fresh, RunSignals::default())
        .await
        .unwrap();
    let err = executor
        .run(
            plan_of("ok"),
            common::adopt_start(&store, completed.run_id.clone()).await,
            RunSignals::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::AdoptNotClaimed {
                status: RunStatus::Completed,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "run {} cannot be adopted: it is completed, which is final: it cannot run again \
             (its state is untouched)",
            completed.run_id
        )
    );
    assert!(store.list_quarantined().await.unwrap().is_empty());
}
