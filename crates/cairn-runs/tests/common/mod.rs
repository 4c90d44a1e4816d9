//! Shared fixtures for the resume-policy tests: runtimes, stores and runs in each status.

#![allow(dead_code)]

use std::path::Path;

use cairn_checkpoint::{
    AuditAction, AuditRecord, Checkpointer, CheckpointerFactory, Owner, RunError, RunId, RunMeta,
    RunStatus,
};
use cairn_checkpoint_file::FileFactory;
use cairn_queue::Timestamp;

/// Defines a module `$name` with two tests that run the async test body `$name(store)`, one
/// on the in-memory store and one on the file adapter in a temp folder. The calling file
/// declares `type Store = Arc<dyn CheckpointerFactory>;` and imports `MemoryFactory`.
#[allow(unused_macros)]
macro_rules! on_both_stores {
    ($name:ident) => {
        mod $name {
            #[test]
            fn memory() {
                let store: super::Store = std::sync::Arc::new(super::MemoryFactory::new());
                super::common::runtime().block_on(super::$name(store));
            }

            #[test]
            fn file() {
                let dir = tempfile::tempdir().expect("a temp dir");
                let store: super::Store =
                    std::sync::Arc::new(super::common::file_store(dir.path()));
                super::common::runtime().block_on(super::$name(store));
            }
        }
    };
}

/// The host a gone-for-good driver ran on: never this one.
pub(crate) const GONE_HOST: &str = "gone-for-good.invalid";

/// An owner on [`GONE_HOST`], which no liveness check from here can reach.
pub(crate) fn gone_owner() -> Owner {
    Owner {
        pid: 4242,
        host: GONE_HOST.to_owned(),
        start: None,
    }
}

/// A single-threaded runtime with timers and I/O (the file adapter uses `spawn_blocking`).
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime builds")
}

/// A file store under `dir` with the default (`Sync`) durability.
pub(crate) fn file_store(dir: &Path) -> FileFactory {
    FileFactory::builder(dir)
        .build()
        .expect("the file store opens")
}

pub(crate) fn id(text: &str) -> RunId {
    RunId::new(text).expect("a valid run id")
}

/// Begins a run created at `created_at` and returns its writer (the lock stays held).
pub(crate) async fn begin(
    store: &dyn CheckpointerFactory,
    run_id: &str,
    workflow: &str,
    scope: &str,
    input: &str,
    created_at: u64,
) -> Box<dyn Checkpointer> {
    let meta = RunMeta::new(id(run_id), workflow, scope, input, Timestamp(created_at));
    store.begin(meta).await.expect("begin succeeds")
}

/// A run that failed with `task_failed: <message>`; its writer is dropped.
pub(crate) async fn failed(
    store: &dyn CheckpointerFactory,
    run_id: &str,
    workflow: &str,
    scope: &str,
    input: &str,
    created_at: u64,
) -> RunMeta {
    let run = begin(store, run_id, workflow, scope, input, created_at).await;
    let meta = run
        .fail(&RunError::new(
            "task_failed",
            format!("{run_id} exited with 2"),
        ))
        .await
        .expect("fail succeeds");
    drop(run);
    meta
}

/// A run that completed; its writer is dropped.
pub(crate) async fn completed(
    store: &dyn CheckpointerFactory,
    run_id: &str,
    workflow: &str,
    scope: &str,
    created_at: u64,
) -> RunMeta {
    let run = begin(store, run_id, workflow, scope, "done input", created_at).await;
    let meta = run.complete().await.expect("complete succeeds");
    drop(run);
    meta
}

/// A run moved to `paused` (waiting on an approval); its writer is dropped.
pub(crate) async fn paused(
    store: &dyn CheckpointerFactory,
    run_id: &str,
    workflow: &str,
    scope: &str,
    input: &str,
    created_at: u64,
) -> RunMeta {
    let run = begin(store, run_id, workflow, scope, input, created_at).await;
    let meta = store
        .compare_and_swap_status(&id(run_id), RunStatus::Running, RunStatus::Paused)
        .await
        .expect("the store answers")
        .expect("the run was running");
    drop(run);
    meta
}

/// A run left `running` whose writer is gone: what a crash leaves behind.
pub(crate) async fn interrupted(
    store: &dyn CheckpointerFactory,
    run_id: &str,
    workflow: &str,
    scope: &str,
    input: &str,
    created_at: u64,
) -> RunMeta {
    let run = begin(store, run_id, workflow, scope, input, created_at).await;
    drop(run);
    store
        .load_meta(&id(run_id))
        .await
        .expect("the store answers")
        .expect("the run exists")
}

/// The actions audited on a run, oldest first.
pub(crate) async fn audit_actions(
    store: &dyn CheckpointerFactory,
    run_id: &RunId,
) -> Vec<AuditAction> {
    store
        .read_audit(run_id)
        .await
        .expect("the audit log reads")
        .into_iter()
        .map(|record| record.action)
        .collect()
}

pub(crate) async fn meta(store: &dyn CheckpointerFactory, run_id: &RunId) -> RunMeta {
    store
        .load_meta(run_id)
        .await
        .expect("the store answers")
        .expect("the run exists")
}

pub(crate) async fn run_count(store: &dyn CheckpointerFactory) -> usize {
    store
        .list(&Default::default())
        .await
        .expect("the store lists")
        .len()
}

/// Begins a run recorded as owned by `owner` and returns its writer (the lock stays held).
pub(crate) async fn begin_owned_by(
    store: &dyn CheckpointerFactory,
    run_id: &str,
    scope: &str,
    owner: Option<Owner>,
) -> Box<dyn Checkpointer> {
    let mut meta = RunMeta::new(id(run_id), "site", scope, "in", Timestamp(10));
    meta.owner = owner;
    store.begin(meta).await.expect("begin succeeds")
}

/// A `running` run nobody drives, last owned by `owner`: what a crash of that owner leaves.
pub(crate) async fn interrupted_owned_by(
    store: &dyn CheckpointerFactory,
    run_id: &str,
    scope: &str,
    owner: Option<Owner>,
) -> RunMeta {
    drop(begin_owned_by(store, run_id, scope, owner).await);
    meta(store, &id(run_id)).await
}

/// The `Abandoned` records of a run's audit log.
pub(crate) async fn abandon_records(
    store: &dyn CheckpointerFactory,
    run_id: &RunId,
) -> Vec<AuditRecord> {
    store
        .read_audit(run_id)
        .await
        .expect("the audit log reads")
        .into_iter()
        .filter(|record| record.action == AuditAction::Abandoned)
        .collect()
}

/// What an abandon leaves for good: a new request for `site`/`default` starts fresh, past
/// nothing, and `again` (a second abandon of the run) found it already cancelled.
pub(crate) async fn assert_abandoned_for_good(
    policy: &cairn_runs::ResumePolicy,
    again: cairn_runs::Result<cairn_runs::Abandoned>,
) {
    let decision = policy
        .decide(&cairn_runs::RunRequest::new("site", "default", "in"))
        .await
        .unwrap();
    assert!(
        matches!(decision, cairn_runs::Decision::Fresh(ref fresh) if fresh.forced_past.is_none()),
        "{decision:?}"
    );
    let again = again.unwrap_err();
    assert!(
        matches!(
            again,
            cairn_runs::Error::AlreadyTerminal {
                status: RunStatus::Cancelled,
                ..
            }
        ),
        "{again:?}"
    );
}

/// An interrupted run `name` in the file store under `dir`, last owned by `owner`, whose
/// journal is damaged in its first of two batches (corruption, not a torn tail): nobody can
/// open it. Returns the journal's path and its damaged bytes.
pub(crate) async fn damaged_interrupted_owned_by(
    store: &dyn CheckpointerFactory,
    dir: &Path,
    name: &str,
    owner: Option<Owner>,
) -> (std::path::PathBuf, Vec<u8>) {
    let run = begin_owned_by(store, name, "default", owner).await;
    let mut queue = cairn_queue::Queue::new(cairn_queue::QueueConfig::default());
    for batch in 0..2 {
        queue
            .enqueue(
                cairn_queue::TaskSpec::new("step").inputs(batch.into()),
                cairn_queue::EnqueuedBy::Root,
                Timestamp(11),
            )
            .expect("a task enqueues");
        run.append(&queue.take_events())
            .await
            .expect("the batch is appended");
    }
    drop(run);
    // One byte inside the first of two batches: not a torn tail, so corruption.
    let journal = file_store(dir).run_dir(&id(name)).join("journal");
    let mut bytes = std::fs::read(&journal).expect("the journal reads");
    bytes[40] ^= 0xFF;
    std::fs::write(&journal, &bytes).expect("the journal is written");
    assert!(
        matches!(
            store.open(&id(name)).await,
            Err(cairn_checkpoint::Error::Corruption { .. })
        ),
        "the damage is refused on open"
    );
    (journal, bytes)
}
