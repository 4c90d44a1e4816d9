//! A memory store with one or two port methods bent, for tests that prove the conformance
//! suite catches a broken adapter. Each broken adapter implements [`Bend`] and overrides
//! only what it breaks; [`Bent`] forwards every other port method to the memory store.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::fmt::Debug;
use std::future::Future;

use async_trait::async_trait;
use cairn_checkpoint::conformance::CaseResult;
use cairn_checkpoint::{
    AuditRecord, Checkpointer, CheckpointerFactory, MemoryFactory, Opened, Quarantined,
    QuarantinedRun, Result, RunFilter, RunId, RunMeta, RunStatus, StatusConflict,
};

/// Runs conformance case `case` on a task of its own: `true` when it panicked, which is how
/// a case fails; a case that returns must have passed.
pub async fn case_panicked(
    case: &str,
    run: impl Future<Output = CaseResult> + Send + 'static,
) -> bool {
    match tokio::spawn(run).await {
        Ok(result) => {
            assert_eq!(result, CaseResult::Passed, "{case}");
            false
        }
        Err(err) => err.is_panic(),
    }
}

/// The port methods a test may bend; each defaults to the memory store's own.
#[async_trait]
pub trait Bend: Debug + Clone + Send + Sync + 'static {
    /// The store the other methods reach.
    fn memory(&self) -> &MemoryFactory;

    async fn open(&self, run_id: &RunId) -> Result<Option<Opened>> {
        self.memory().open(run_id).await
    }

    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        self.memory().claim(run_id, from, expected_epoch).await
    }

    async fn compare_and_swap_status_at(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        self.memory()
            .compare_and_swap_status_at(run_id, from, expected_epoch, to)
            .await
    }

    async fn remove_terminal(&self, run_id: &RunId) -> Result<RunMeta> {
        self.memory().remove_terminal(run_id).await
    }

    async fn list_quarantined(&self) -> Result<Vec<QuarantinedRun>> {
        self.memory().list_quarantined().await
    }
}

/// The port over a [`Bend`]: its bent methods, and the memory store for the rest.
#[derive(Debug, Clone)]
pub struct Bent<B>(pub B);

#[async_trait]
impl<B: Bend> CheckpointerFactory for Bent<B> {
    async fn begin(&self, meta: RunMeta) -> Result<Box<dyn Checkpointer>> {
        self.0.memory().begin(meta).await
    }
    async fn open(&self, run_id: &RunId) -> Result<Option<Opened>> {
        self.0.open(run_id).await
    }
    async fn load_meta(&self, run_id: &RunId) -> Result<Option<RunMeta>> {
        self.0.memory().load_meta(run_id).await
    }
    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunMeta>> {
        self.0.memory().list(filter).await
    }
    async fn compare_and_swap_status(
        &self,
        run_id: &RunId,
        from: RunStatus,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        self.0
            .memory()
            .compare_and_swap_status(run_id, from, to)
            .await
    }
    async fn compare_and_swap_status_at(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        self.0
            .compare_and_swap_status_at(run_id, from, expected_epoch, to)
            .await
    }
    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        self.0.claim(run_id, from, expected_epoch).await
    }
    async fn is_held(&self, run_id: &RunId) -> Result<bool> {
        self.0.memory().is_held(run_id).await
    }
    async fn quarantine(&self, run_id: &RunId, reason: &str) -> Result<Quarantined> {
        self.0.memory().quarantine(run_id, reason).await
    }
    async fn remove_terminal(&self, run_id: &RunId) -> Result<RunMeta> {
        self.0.remove_terminal(run_id).await
    }
    async fn list_quarantined(&self) -> Result<Vec<QuarantinedRun>> {
        self.0.list_quarantined().await
    }
    async fn append_audit(&self, run_id: &RunId, record: &AuditRecord) -> Result<()> {
        self.0.memory().append_audit(run_id, record).await
    }
    async fn read_audit(&self, run_id: &RunId) -> Result<Vec<AuditRecord>> {
        self.0.memory().read_audit(run_id).await
    }
}

/// Nothing bent: the memory store itself, through the same wrapper.
#[derive(Debug, Clone)]
pub struct Unbent(pub MemoryFactory);

#[async_trait]
impl Bend for Unbent {
    fn memory(&self) -> &MemoryFactory {
        &self.0
    }
}
