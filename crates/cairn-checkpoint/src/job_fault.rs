//! `FaultyJobStore`: the fault-injecting wrapper of the job-store port.
//!
//! It shares `FaultPlan` and `FaultTiming` with `FaultyFactory` (see `fault.rs`): the plan
//! counts every job-store call by operation (`FaultOp::Job*`) and fails the ones it was
//! armed for, either before the wrapped store sees the call (nothing happened) or after it
//! returned (the effect happened, but the caller is told it failed, like a lost reply).
//! Exported as `cairn_checkpoint::fault::FaultyJobStore`.

use async_trait::async_trait;

use crate::error::Result;
use crate::fault::{FaultOp, FaultPlan, guarded};
use crate::jobs::{JobAuditRecord, JobId, JobListing, JobStore, StoredJob, VersionConflict};

/// A job store that fails the calls its `FaultPlan` says, and otherwise forwards to `inner`.
///
/// A failed call returns `Error::Injected` with the operation's name (`job_put`, say).
/// `FaultTiming::Before` fails it without calling `inner`, so nothing changed;
/// `FaultTiming::After` calls `inner`, drops its answer and fails, so a write may have landed
/// (a `put` that won its compare-and-swap, a `delete`, an audit record) though the caller
/// heard of an error. `list` counts (and fails) as `FaultOp::JobListing`, since it reads
/// what `listing` reads.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyJobStore};
/// use cairn_checkpoint::{Error, JobId, JobStore, MemoryJobStore};
/// use serde_json::json;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let plan = FaultPlan::new();
/// let store = FaultyJobStore::new(MemoryJobStore::new(), plan.clone());
/// let id = JobId::new("nightly")?;
/// let v1 = store.put(&id, None, &json!({ "every": 60 })).await?.expect("a new job");
///
/// // Failed before the store saw it: the job is as it was.
/// plan.fail_next(FaultOp::JobPut, FaultTiming::Before);
/// let refused = store.put(&id, Some(v1), &json!({ "every": 30 })).await;
/// assert!(matches!(refused, Err(Error::Injected { op: "job_put" })));
/// assert_eq!(store.get(&id).await?.map(|job| job.version), Some(v1));
///
/// // Failed after: the write landed, only its answer was lost.
/// plan.fail_next(FaultOp::JobPut, FaultTiming::After);
/// assert!(store.put(&id, Some(v1), &json!({ "every": 30 })).await.is_err());
/// let stored = store.get(&id).await?.expect("stored");
/// assert_eq!((stored.version, stored.document["every"].as_u64()), (v1 + 1, Some(30)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FaultyJobStore<S> {
    inner: S,
    plan: FaultPlan,
}

impl<S: JobStore> FaultyJobStore<S> {
    /// Wraps `inner`; `plan` decides which calls fail. The plan may be shared with a
    /// `FaultyFactory`, so one test arms run and job calls alike.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultyJobStore};
    /// use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let inner = MemoryJobStore::new();
    /// let plan = FaultPlan::new();
    /// let store = FaultyJobStore::new(inner.clone(), plan.clone());
    /// let id = JobId::new("nightly")?;
    /// // With nothing armed, the wrapper forwards every call, and counts it.
    /// store.put(&id, None, &serde_json::json!({})).await?.expect("a new job");
    /// assert!(inner.get(&id).await?.is_some());
    /// assert_eq!(plan.calls(FaultOp::JobPut), 1);
    /// assert!(plan.fired().is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn new(inner: S, plan: FaultPlan) -> FaultyJobStore<S> {
        FaultyJobStore { inner, plan }
    }

    /// The shared plan.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyJobStore};
    /// use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = FaultyJobStore::new(MemoryJobStore::new(), FaultPlan::new());
    /// let id = JobId::new("nightly")?;
    /// let v1 = store.put(&id, None, &serde_json::json!({})).await?.expect("a new job");
    /// store.plan().fail_next(FaultOp::JobDelete, FaultTiming::After);
    /// assert!(store.delete(&id, v1).await.is_err());
    /// // The reply was lost, not the delete: the job is gone.
    /// assert!(store.get(&id).await?.is_none());
    /// assert_eq!(store.plan().fired(), [(FaultOp::JobDelete, 1)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// The wrapped store: its calls bypass the plan (and are not counted), to check what a
    /// failed call left behind.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyJobStore};
    /// use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = FaultyJobStore::new(MemoryJobStore::new(), FaultPlan::new());
    /// let id = JobId::new("nightly")?;
    /// store.plan().fail_next(FaultOp::JobPut, FaultTiming::Before);
    /// assert!(store.put(&id, None, &serde_json::json!({})).await.is_err());
    /// assert!(store.inner().get(&id).await?.is_none());
    /// assert_eq!(store.plan().calls(FaultOp::JobGet), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: JobStore> JobStore for FaultyJobStore<S> {
    async fn get(&self, id: &JobId) -> Result<Option<StoredJob>> {
        guarded(&self.plan, FaultOp::JobGet, self.inner.get(id)).await
    }

    async fn listing(&self) -> Result<JobListing> {
        guarded(&self.plan, FaultOp::JobListing, self.inner.listing()).await
    }

    async fn list(&self) -> Result<Vec<StoredJob>> {
        // Forwarded rather than left to the provided method, so a store's own `list` is
        // what runs under the wrapper too.
        guarded(&self.plan, FaultOp::JobListing, self.inner.list()).await
    }

    async fn put(
        &self,
        id: &JobId,
        expected: Option<u64>,
        document: &serde_json::Value,
    ) -> Result<std::result::Result<u64, VersionConflict>> {
        guarded(
            &self.plan,
            FaultOp::JobPut,
            self.inner.put(id, expected, document),
        )
        .await
    }

    async fn delete(
        &self,
        id: &JobId,
        expected: u64,
    ) -> Result<std::result::Result<(), VersionConflict>> {
        guarded(
            &self.plan,
            FaultOp::JobDelete,
            self.inner.delete(id, expected),
        )
        .await
    }

    async fn append_audit(&self, record: &JobAuditRecord) -> Result<()> {
        guarded(
            &self.plan,
            FaultOp::JobAppendAudit,
            self.inner.append_audit(record),
        )
        .await
    }

    async fn read_audit(&self, id: &JobId) -> Result<Vec<JobAuditRecord>> {
        guarded(&self.plan, FaultOp::JobReadAudit, self.inner.read_audit(id)).await
    }
}
