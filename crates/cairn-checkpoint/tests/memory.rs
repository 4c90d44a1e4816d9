//! Tests of `MemoryFactory` specifics that the conformance suite does not cover.

use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta, RunStatus};
use cairn_queue::Timestamp;

fn meta(id: &str) -> RunMeta {
    RunMeta::new(
        RunId::new(id).expect("valid id"),
        "wf",
        "scope",
        "input",
        Timestamp(1),
    )
}

#[tokio::test]
async fn clones_share_runs_and_the_writer_lock() {
    let factory = MemoryFactory::new();
    let other = factory.clone();
    let run = factory.begin(meta("shared")).await.expect("begin");
    let id = run.run_id().clone();
    let err = other
        .open(&id)
        .await
        .expect_err("the first writer still holds the run");
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    drop(run);
    let opened = other.open(&id).await.expect("open").expect("run exists");
    assert_eq!(opened.recovered.meta.status, RunStatus::Running);
}

#[tokio::test]
async fn quarantine_waits_for_the_writer_to_go() {
    let factory = MemoryFactory::new();
    let run = factory.begin(meta("moved")).await.expect("begin");
    let id = run.run_id().clone();
    let err = factory
        .quarantine(&id, "test")
        .await
        .expect_err("a writer holds the run");
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    drop(run);
    factory.quarantine(&id, "test").await.expect("quarantine");
    assert!(factory.load_meta(&id).await.expect("load_meta").is_none());
    assert!(factory.open(&id).await.expect("open").is_none());
}
