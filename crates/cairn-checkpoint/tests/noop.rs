//! `NoopFactory`'s own contract: it accepts everything and keeps nothing. It cannot pass the
//! persistence cases of the conformance suite, and these tests check that the suite notices.

use cairn_checkpoint::{
    Checkpointer, CheckpointerFactory, Error, NoopFactory, RunError, RunFilter, RunId, RunMeta,
    RunStatus,
};
use cairn_queue::Timestamp;

fn meta(id: &str) -> RunMeta {
    RunMeta::new(
        RunId::new(id).expect("valid id"),
        "wf",
        "s",
        "",
        Timestamp(0),
    )
}

#[tokio::test]
async fn noop_accepts_writes_and_forgets_them() {
    let factory = NoopFactory;
    let run = factory.begin(meta("n1")).await.expect("begin");
    run.append(&[]).await.expect("append");
    let loaded = run.load().await.expect("load");
    assert!(loaded.events.is_empty());
    assert_eq!(loaded.meta.run_id.as_str(), "n1");
    let id = run.run_id().clone();
    assert!(factory.open(&id).await.expect("open").is_none());
    assert!(factory.load_meta(&id).await.expect("load_meta").is_none());
    assert!(
        factory
            .list(&RunFilter::default())
            .await
            .expect("list")
            .is_empty()
    );
    assert!(!factory.is_held(&id).await.expect("is_held"));
    let err = factory
        .compare_and_swap_status(&id, RunStatus::Running, RunStatus::Paused)
        .await
        .expect_err("noop has no runs to swap");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = factory
        .claim(&id, RunStatus::Running, 1)
        .await
        .expect_err("noop has no runs to claim");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = factory
        .compare_and_swap_status_at(&id, RunStatus::Running, 1, RunStatus::Cancelled)
        .await
        .expect_err("noop has no runs to swap");
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = factory
        .compare_and_swap_status_at(&id, RunStatus::Paused, 1, RunStatus::Running)
        .await
        .expect_err("a swap to running is a claim's work");
    assert!(matches!(err, Error::ClaimRequired { .. }), "{err:?}");
    let failed = run.fail(&RunError::new("k", "m")).await.expect("fail");
    assert_eq!(failed.status, RunStatus::Failed);
    let done = run.complete().await.expect("complete");
    assert_eq!(done.status, RunStatus::Completed);
}

/// Noop keeps nothing across writers, but its writer follows the port's `complete` and
/// `fail` contract as every adapter does: a completed run is terminal.
#[tokio::test]
async fn noop_refuses_to_finish_a_completed_run_again() {
    let run = NoopFactory.begin(meta("n2")).await.expect("begin");
    let done = run.complete().await.expect("complete");
    assert_eq!(done.status, RunStatus::Completed);
    assert!(done.finished_at.is_some(), "a finished run says when");
    let again = run.complete().await.expect_err("completed already");
    assert!(
        matches!(
            again,
            Error::Terminal {
                status: RunStatus::Completed,
                ..
            }
        ),
        "{again:?}"
    );
    let late = run
        .fail(&RunError::new("k", "m"))
        .await
        .expect_err("completed already");
    assert!(matches!(late, Error::Terminal { .. }), "{late:?}");
    assert_eq!(
        run.load().await.expect("load").meta.status,
        RunStatus::Completed
    );
}

#[cfg(feature = "conformance")]
mod suite_notices {
    use super::*;
    use cairn_checkpoint::conformance::{self, ConformanceHarness};
    use std::sync::Arc;

    struct NoopHarness;

    impl ConformanceHarness for NoopHarness {
        fn factory(&self) -> Arc<dyn CheckpointerFactory> {
            Arc::new(NoopFactory)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn noop_fails_the_persistence_cases() {
        let reopen = tokio::spawn(async { conformance::reopen_after_drop(&NoopHarness).await });
        let error = reopen.await.expect_err("noop keeps nothing to reopen");
        assert!(error.is_panic());
        let begin = tokio::spawn(async { conformance::begin_existing_id(&NoopHarness).await });
        assert!(
            begin
                .await
                .expect_err("noop never refuses an id")
                .is_panic()
        );
        let lock =
            tokio::spawn(async { conformance::lock_held_by_another_opener(&NoopHarness).await });
        assert!(lock.await.expect_err("noop holds no locks").is_panic());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn noop_passes_the_unknown_run_case() {
        assert_eq!(
            conformance::unknown_run(&NoopHarness).await,
            conformance::CaseResult::Passed
        );
    }
}
