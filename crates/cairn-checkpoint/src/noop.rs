//! The noop adapter: keeps nothing. Used when durability is off, or when `begin` failed and
//! the host allowed the executor to degrade.

use async_trait::async_trait;
use cairn_queue::{Event, Snapshot};

use crate::audit::AuditRecord;
use crate::error::{Error, Result};
use crate::meta::{RunError, RunFilter, RunId, RunMeta, RunStatus, refuse_claim_by_swap};
use crate::port::{
    Checkpointer, CheckpointerFactory, Opened, Quarantined, QuarantinedRun, Recovered,
    StatusConflict,
};

/// A factory whose runs are forgotten at once: `open` never finds anything.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{CheckpointerFactory, Error, NoopFactory, RunFilter, RunId, RunMeta};
/// use cairn_queue::Timestamp;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let factory = NoopFactory;
/// let id = RunId::new("r1")?;
/// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
/// // Every write is accepted, and nothing is kept.
/// run.append(&[]).await?;
/// assert!(run.load().await?.events.is_empty());
/// assert!(factory.open(&id).await?.is_none());
/// assert!(factory.list(&RunFilter::default()).await?.is_empty());
/// // There is no stored run to swap or claim.
/// let claim = factory.claim(&id, cairn_checkpoint::RunStatus::Running, 1).await;
/// assert!(matches!(claim, Err(Error::NotFound { .. })));
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopFactory;

/// A checkpointer that accepts everything and keeps nothing.
///
/// Its writer still follows the port's `complete` and `fail` contract, in memory: once the
/// run is completed both refuse with `Terminal`, as every adapter's do, so a host sees the
/// same answers whether or not its run degraded to noop.
#[derive(Debug)]
pub struct NoopCheckpointer {
    run_id: RunId,
    meta: std::sync::Mutex<RunMeta>,
}

impl NoopCheckpointer {
    /// A noop writer for the run described by `meta`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{Checkpointer, NoopCheckpointer, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    /// let meta = RunMeta::new(RunId::new("r1")?, "wf", "scope", "", Timestamp(0));
    /// let cp = NoopCheckpointer::new(meta);
    /// assert_eq!(cp.run_id().as_str(), "r1");
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn new(meta: RunMeta) -> NoopCheckpointer {
        NoopCheckpointer {
            run_id: meta.run_id.clone(),
            meta: std::sync::Mutex::new(meta),
        }
    }

    fn meta(&self) -> std::sync::MutexGuard<'_, RunMeta> {
        // The metadata is whole after every change, so a panic elsewhere leaves it usable.
        self.meta
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves the run to `status` unless it is terminal, as the port's `complete` and `fail`
    /// say.
    fn finish(&self, status: RunStatus, error: Option<&RunError>) -> Result<RunMeta> {
        let mut meta = self.meta();
        if meta.status.is_terminal() {
            return Err(Error::Terminal {
                run_id: self.run_id.clone(),
                status: meta.status,
            });
        }
        let now = crate::wall_clock_now();
        meta.status = status;
        meta.updated_at = now;
        meta.finished_at = Some(now);
        if let Some(error) = error {
            meta.error = Some(error.clone());
        }
        Ok(meta.clone())
    }
}

#[async_trait]
impl CheckpointerFactory for NoopFactory {
    async fn begin(&self, meta: RunMeta) -> Result<Box<dyn Checkpointer>> {
        Ok(Box::new(NoopCheckpointer::new(meta)))
    }
    async fn open(&self, _run_id: &RunId) -> Result<Option<Opened>> {
        Ok(None)
    }
    async fn load_meta(&self, _run_id: &RunId) -> Result<Option<RunMeta>> {
        Ok(None)
    }
    async fn list(&self, _filter: &RunFilter) -> Result<Vec<RunMeta>> {
        Ok(Vec::new())
    }
    async fn compare_and_swap_status(
        &self,
        run_id: &RunId,
        _from: RunStatus,
        _to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        Err(Error::NotFound {
            run_id: run_id.clone(),
        })
    }
    async fn compare_and_swap_status_at(
        &self,
        run_id: &RunId,
        _from: RunStatus,
        _expected_epoch: u64,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        refuse_claim_by_swap(run_id, to)?;
        Err(Error::NotFound {
            run_id: run_id.clone(),
        })
    }
    async fn claim(
        &self,
        run_id: &RunId,
        _from: RunStatus,
        _expected_epoch: u64,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        Err(Error::NotFound {
            run_id: run_id.clone(),
        })
    }
    async fn is_held(&self, _run_id: &RunId) -> Result<bool> {
        Ok(false)
    }
    async fn quarantine(&self, run_id: &RunId, _reason: &str) -> Result<Quarantined> {
        Err(Error::NotFound {
            run_id: run_id.clone(),
        })
    }
    async fn remove_terminal(&self, run_id: &RunId) -> Result<RunMeta> {
        // The noop store keeps no run, so there is none to remove.
        Err(Error::NotFound {
            run_id: run_id.clone(),
        })
    }
    async fn list_quarantined(&self) -> Result<Vec<QuarantinedRun>> {
        // Nothing is kept, so nothing was ever moved aside.
        Ok(Vec::new())
    }
    async fn append_audit(&self, run_id: &RunId, _record: &AuditRecord) -> Result<()> {
        // No run is kept, and the port takes records only for stored runs.
        Err(Error::NotFound {
            run_id: run_id.clone(),
        })
    }
    async fn read_audit(&self, _run_id: &RunId) -> Result<Vec<AuditRecord>> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl Checkpointer for NoopCheckpointer {
    fn run_id(&self) -> &RunId {
        &self.run_id
    }
    async fn append(&self, _events: &[Event]) -> Result<()> {
        Ok(())
    }
    async fn install_snapshot(&self, _snapshot: &Snapshot) -> Result<()> {
        Ok(())
    }
    async fn load(&self) -> Result<Recovered> {
        Ok(Recovered {
            meta: self.meta().clone(),
            snapshot: None,
            events: Vec::new(),
            torn_tail: None,
        })
    }
    async fn audit(&self, _record: &AuditRecord) -> Result<()> {
        Ok(())
    }
    async fn complete(&self) -> Result<RunMeta> {
        self.finish(RunStatus::Completed, None)
    }
    async fn fail(&self, error: &RunError) -> Result<RunMeta> {
        self.finish(RunStatus::Failed, Some(error))
    }
}
