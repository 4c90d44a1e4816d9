//! A fault-injecting wrapper: `FaultyFactory` fails chosen calls on purpose.
//!
//! A shared `FaultPlan` counts every call by operation and fails the ones it was armed
//! for, either before the wrapped adapter sees the call (nothing happened) or after it
//! returned (the effect happened but the caller is told it failed, like a lost reply).
//! Checkpointers handed out by the wrapper are wrapped too and share the plan.
//! [`FaultyJobStore`] does the same for the job-store port, with the same kind of plan, so
//! one plan can fail run and job calls of one test in the order they happen.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use cairn_queue::{Event, Snapshot};

use crate::audit::AuditRecord;
use crate::error::{Error, Result};
use crate::meta::{RunError, RunFilter, RunId, RunMeta, RunStatus};
use crate::port::{
    Checkpointer, CheckpointerFactory, LeftInPlaceRun, Opened, Quarantined, QuarantinedRun,
    Recovered, StatusConflict,
};

pub use crate::job_fault::FaultyJobStore;

/// A port call the plan can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultOp {
    /// `CheckpointerFactory::begin`.
    Begin,
    /// `CheckpointerFactory::open`, and `peek` and `peek_live`, which read what `open` reads.
    Open,
    /// `CheckpointerFactory::load_meta`.
    LoadMeta,
    /// `CheckpointerFactory::list`.
    List,
    /// `CheckpointerFactory::compare_and_swap_status`.
    CompareAndSwap,
    /// `CheckpointerFactory::compare_and_swap_status_at`.
    CompareAndSwapAt,
    /// `CheckpointerFactory::claim`.
    Claim,
    /// `CheckpointerFactory::is_held`.
    IsHeld,
    /// `CheckpointerFactory::quarantine`.
    Quarantine,
    /// `CheckpointerFactory::remove_terminal`.
    RemoveTerminal,
    /// `CheckpointerFactory::list_quarantined`.
    ListQuarantined,
    /// `CheckpointerFactory::left_in_place`.
    LeftInPlace,
    /// `CheckpointerFactory::append_audit`.
    AppendAudit,
    /// `CheckpointerFactory::read_audit`.
    ReadAudit,
    /// `Checkpointer::append`.
    Append,
    /// `Checkpointer::install_snapshot`.
    InstallSnapshot,
    /// `Checkpointer::load`.
    Load,
    /// `Checkpointer::audit`.
    Audit,
    /// `Checkpointer::complete`.
    Complete,
    /// `Checkpointer::fail`.
    Fail,
    /// `JobStore::get`.
    JobGet,
    /// `JobStore::listing`, and `list`, which reads what `listing` reads.
    JobListing,
    /// `JobStore::put`.
    JobPut,
    /// `JobStore::delete`.
    JobDelete,
    /// `JobStore::append_audit`.
    JobAppendAudit,
    /// `JobStore::read_audit`.
    JobReadAudit,
}

impl FaultOp {
    /// The method's name, as carried by `Error::Injected { op }`. A job-store method's name
    /// starts with `job_`, so it never reads as the run port's method of the same name
    /// (both ports have an `append_audit`).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::fault::FaultOp;
    /// assert_eq!(FaultOp::CompareAndSwap.name(), "compare_and_swap_status");
    /// // `Display` prints the same name.
    /// assert_eq!(FaultOp::InstallSnapshot.to_string(), "install_snapshot");
    /// assert_ne!(FaultOp::JobAppendAudit.name(), FaultOp::AppendAudit.name());
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            FaultOp::Begin => "begin",
            FaultOp::Open => "open",
            FaultOp::LoadMeta => "load_meta",
            FaultOp::List => "list",
            FaultOp::CompareAndSwap => "compare_and_swap_status",
            FaultOp::CompareAndSwapAt => "compare_and_swap_status_at",
            FaultOp::Claim => "claim",
            FaultOp::IsHeld => "is_held",
            FaultOp::Quarantine => "quarantine",
            FaultOp::RemoveTerminal => "remove_terminal",
            FaultOp::AppendAudit => "append_audit",
            FaultOp::ReadAudit => "read_audit",
            FaultOp::ListQuarantined => "list_quarantined",
            FaultOp::LeftInPlace => "left_in_place",
            FaultOp::Append => "append",
            FaultOp::InstallSnapshot => "install_snapshot",
            FaultOp::Load => "load",
            FaultOp::Audit => "audit",
            FaultOp::Complete => "complete",
            FaultOp::Fail => "fail",
            FaultOp::JobGet => "job_get",
            FaultOp::JobListing => "job_listing",
            FaultOp::JobPut => "job_put",
            FaultOp::JobDelete => "job_delete",
            FaultOp::JobAppendAudit => "job_append_audit",
            FaultOp::JobReadAudit => "job_read_audit",
        }
    }
}

impl fmt::Display for FaultOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// When an armed fault fires relative to the wrapped call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultTiming {
    /// Fail without calling the wrapped adapter: nothing happened.
    Before,
    /// Call the wrapped adapter, drop its result and fail: the effect may have happened
    /// but the caller never got an acknowledgement.
    After,
}

#[derive(Debug, Clone, Copy)]
struct Armed {
    op: FaultOp,
    ordinal: u64,
    timing: FaultTiming,
}

#[derive(Debug, Default)]
struct PlanState {
    calls: HashMap<FaultOp, u64>,
    armed: Vec<Armed>,
    fired: Vec<(FaultOp, u64)>,
}

/// Which calls fail. Clones share the plan (and its call counters).
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming};
/// let plan = FaultPlan::new();
/// plan.fail_next(FaultOp::Append, FaultTiming::Before);
/// assert!(plan.fired().is_empty());
/// ```
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    state: Arc<Mutex<PlanState>>,
}

impl FaultPlan {
    /// A plan with nothing armed.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultyFactory};
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let plan = FaultPlan::new();
    /// let factory = FaultyFactory::new(MemoryFactory::new(), plan.clone());
    /// // With nothing armed, every call goes through, and is counted.
    /// factory.begin(RunMeta::new(RunId::new("r1")?, "wf", "s", "", Timestamp(0))).await?;
    /// assert_eq!(plan.calls(FaultOp::Begin), 1);
    /// assert!(plan.fired().is_empty());
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    pub fn new() -> FaultPlan {
        FaultPlan::default()
    }

    fn lock(&self) -> MutexGuard<'_, PlanState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Arms the `ordinal`-th call of `op` (1-based, counting every call since the plan was
    /// created) to fail.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let plan = FaultPlan::new();
    /// let factory = FaultyFactory::new(MemoryFactory::new(), plan.clone());
    /// let meta = RunMeta::new(RunId::new("r1")?, "wf", "s", "", Timestamp(0));
    /// let run = factory.begin(meta).await?;
    /// plan.fail_nth(FaultOp::Append, 2, FaultTiming::Before);
    /// run.append(&[]).await?;
    /// assert!(matches!(run.append(&[]).await, Err(Error::Injected { op: "append" })));
    /// run.append(&[]).await?;
    /// assert_eq!(plan.fired(), [(FaultOp::Append, 2)]);
    /// // Ordinals count from the plan's creation, so one already passed never fires.
    /// plan.fail_nth(FaultOp::Append, 1, FaultTiming::Before);
    /// run.append(&[]).await?;
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    pub fn fail_nth(&self, op: FaultOp, ordinal: u64, timing: FaultTiming) {
        self.lock().armed.push(Armed {
            op,
            ordinal,
            timing,
        });
    }

    /// Arms the next call of `op` to fail.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let plan = FaultPlan::new();
    /// let factory = FaultyFactory::new(MemoryFactory::new(), plan.clone());
    /// let id = RunId::new("r1")?;
    /// plan.fail_next(FaultOp::Begin, FaultTiming::After);
    /// let begun = factory.begin(RunMeta::new(id.clone(), "wf", "s", "", Timestamp(0))).await;
    /// assert!(matches!(begun, Err(Error::Injected { op: "begin" })));
    /// // `After` lets the call happen and loses only its reply: the run was begun.
    /// assert!(factory.load_meta(&id).await?.is_some());
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    pub fn fail_next(&self, op: FaultOp, timing: FaultTiming) {
        let mut state = self.lock();
        let ordinal = state.calls.get(&op).copied().unwrap_or(0) + 1;
        state.armed.push(Armed {
            op,
            ordinal,
            timing,
        });
    }

    /// Removes every armed fault that has not fired.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let plan = FaultPlan::new();
    /// let factory = FaultyFactory::new(MemoryFactory::new(), plan.clone());
    /// let meta = RunMeta::new(RunId::new("r1")?, "wf", "s", "", Timestamp(0));
    /// let run = factory.begin(meta).await?;
    /// plan.fail_next(FaultOp::Append, FaultTiming::Before);
    /// plan.disarm_all();
    /// run.append(&[]).await?;
    /// assert!(plan.fired().is_empty());
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    pub fn disarm_all(&self) {
        self.lock().armed.clear();
    }

    /// How many calls of `op` went through the wrapper so far.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let plan = FaultPlan::new();
    /// let factory = FaultyFactory::new(MemoryFactory::new(), plan.clone());
    /// let id = RunId::new("unknown")?;
    /// plan.fail_next(FaultOp::LoadMeta, FaultTiming::Before);
    /// assert!(factory.load_meta(&id).await.is_err());
    /// assert!(factory.load_meta(&id).await?.is_none());
    /// // Failed calls count too.
    /// assert_eq!(plan.calls(FaultOp::LoadMeta), 2);
    /// // `peek` reads what `open` reads, so it counts as `open`.
    /// assert!(factory.peek(&id).await?.is_none());
    /// assert_eq!(plan.calls(FaultOp::Open), 1);
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    pub fn calls(&self, op: FaultOp) -> u64 {
        self.lock().calls.get(&op).copied().unwrap_or(0)
    }

    /// The faults that fired, as `(op, ordinal)`, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunFilter, RunId};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let plan = FaultPlan::new();
    /// let factory = FaultyFactory::new(MemoryFactory::new(), plan.clone());
    /// plan.fail_next(FaultOp::List, FaultTiming::Before);
    /// plan.fail_next(FaultOp::IsHeld, FaultTiming::After);
    /// assert!(factory.is_held(&RunId::new("r1")?).await.is_err());
    /// assert!(factory.list(&RunFilter::default()).await.is_err());
    /// // In the order they fired, not the order they were armed.
    /// assert_eq!(plan.fired(), [(FaultOp::IsHeld, 1), (FaultOp::List, 1)]);
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    pub fn fired(&self) -> Vec<(FaultOp, u64)> {
        self.lock().fired.clone()
    }

    /// Counts a call of `op` and says whether (and when) it must fail.
    fn check(&self, op: FaultOp) -> Option<FaultTiming> {
        let mut state = self.lock();
        let count = state.calls.entry(op).or_insert(0);
        *count += 1;
        let ordinal = *count;
        let index = state
            .armed
            .iter()
            .position(|a| a.op == op && a.ordinal == ordinal)?;
        let armed = state.armed.remove(index);
        state.fired.push((op, ordinal));
        Some(armed.timing)
    }
}

/// Runs `call` under the plan's verdict for `op`.
pub(crate) async fn guarded<T, Fut>(plan: &FaultPlan, op: FaultOp, call: Fut) -> Result<T>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    match plan.check(op) {
        None => call.await,
        Some(FaultTiming::Before) => Err(Error::Injected { op: op.name() }),
        Some(FaultTiming::After) => {
            // The wrapped result is dropped on purpose: the caller must not learn of it.
            drop(call.await);
            Err(Error::Injected { op: op.name() })
        }
    }
}

/// A factory that fails the calls its `FaultPlan` says, and otherwise forwards to `inner`.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
/// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta};
/// use cairn_queue::Timestamp;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let plan = FaultPlan::new();
/// let factory = FaultyFactory::new(MemoryFactory::new(), plan.clone());
/// let run = factory.begin(RunMeta::new(RunId::new("r1")?, "wf", "s", "", Timestamp(0))).await?;
/// plan.fail_next(FaultOp::Append, FaultTiming::Before);
/// assert!(matches!(run.append(&[]).await, Err(Error::Injected { op: "append" })));
/// run.append(&[]).await?;
/// # Ok::<(), Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FaultyFactory<F> {
    inner: F,
    plan: FaultPlan,
}

impl<F: CheckpointerFactory> FaultyFactory<F> {
    /// Wraps `inner`; `plan` decides which calls fail.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::fault::{FaultPlan, FaultyFactory};
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let inner = MemoryFactory::new();
    /// let factory = FaultyFactory::new(inner.clone(), FaultPlan::new());
    /// let id = RunId::new("r1")?;
    /// // With nothing armed, the wrapper forwards to the store it wraps.
    /// factory.begin(RunMeta::new(id.clone(), "wf", "s", "", Timestamp(0))).await?;
    /// assert!(inner.load_meta(&id).await?.is_some());
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    pub fn new(inner: F, plan: FaultPlan) -> FaultyFactory<F> {
        FaultyFactory { inner, plan }
    }

    /// The shared plan.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory};
    /// use cairn_checkpoint::{RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = FaultyFactory::new(MemoryFactory::new(), FaultPlan::new());
    /// let id = RunId::new("r1")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "s", "", Timestamp(0))).await?;
    /// // The writers the factory handed out share its plan.
    /// factory.plan().fail_next(FaultOp::Complete, FaultTiming::After);
    /// assert!(run.complete().await.is_err());
    /// // The reply was lost, not the write: the run completed.
    /// let status = factory.load_meta(&id).await?.map(|meta| meta.status);
    /// assert_eq!(status, Some(RunStatus::Completed));
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// The wrapped factory.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = FaultyFactory::new(MemoryFactory::new(), FaultPlan::new());
    /// let id = RunId::new("r1")?;
    /// factory.plan().fail_next(FaultOp::Begin, FaultTiming::After);
    /// let begun = factory.begin(RunMeta::new(id.clone(), "wf", "s", "", Timestamp(0))).await;
    /// assert!(begun.is_err());
    /// // The wrapped store bypasses the plan, to check what a failed call left behind.
    /// assert!(factory.inner().load_meta(&id).await?.is_some());
    /// assert!(factory.inner().stored_meta(&id).is_some());
    /// assert_eq!(factory.plan().calls(FaultOp::LoadMeta), 0);
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    pub fn inner(&self) -> &F {
        &self.inner
    }

    fn wrap(&self, checkpointer: Box<dyn Checkpointer>) -> Box<dyn Checkpointer> {
        Box::new(FaultyCheckpointer {
            inner: checkpointer,
            plan: self.plan.clone(),
        })
    }
}

#[async_trait]
impl<F: CheckpointerFactory> CheckpointerFactory for FaultyFactory<F> {
    async fn begin(&self, meta: RunMeta) -> Result<Box<dyn Checkpointer>> {
        let checkpointer = guarded(&self.plan, FaultOp::Begin, self.inner.begin(meta)).await?;
        Ok(self.wrap(checkpointer))
    }

    async fn open(&self, run_id: &RunId) -> Result<Option<Opened>> {
        let opened = guarded(&self.plan, FaultOp::Open, self.inner.open(run_id)).await?;
        Ok(opened.map(|opened| Opened {
            checkpointer: self.wrap(opened.checkpointer),
            recovered: opened.recovered,
        }))
    }

    async fn load_meta(&self, run_id: &RunId) -> Result<Option<RunMeta>> {
        guarded(&self.plan, FaultOp::LoadMeta, self.inner.load_meta(run_id)).await
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunMeta>> {
        guarded(&self.plan, FaultOp::List, self.inner.list(filter)).await
    }

    async fn left_in_place(&self) -> Result<Vec<LeftInPlaceRun>> {
        guarded(&self.plan, FaultOp::LeftInPlace, self.inner.left_in_place()).await
    }

    async fn peek(&self, run_id: &RunId) -> Result<Option<Recovered>> {
        guarded(&self.plan, FaultOp::Open, self.inner.peek(run_id)).await
    }

    async fn peek_live(&self, run_id: &RunId) -> Result<Option<Recovered>> {
        guarded(&self.plan, FaultOp::Open, self.inner.peek_live(run_id)).await
    }

    async fn compare_and_swap_status(
        &self,
        run_id: &RunId,
        from: RunStatus,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        guarded(
            &self.plan,
            FaultOp::CompareAndSwap,
            self.inner.compare_and_swap_status(run_id, from, to),
        )
        .await
    }

    async fn compare_and_swap_status_at(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        guarded(
            &self.plan,
            FaultOp::CompareAndSwapAt,
            self.inner
                .compare_and_swap_status_at(run_id, from, expected_epoch, to),
        )
        .await
    }

    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        guarded(
            &self.plan,
            FaultOp::Claim,
            self.inner.claim(run_id, from, expected_epoch),
        )
        .await
    }

    async fn is_held(&self, run_id: &RunId) -> Result<bool> {
        guarded(&self.plan, FaultOp::IsHeld, self.inner.is_held(run_id)).await
    }

    async fn quarantine(&self, run_id: &RunId, reason: &str) -> Result<Quarantined> {
        guarded(
            &self.plan,
            FaultOp::Quarantine,
            self.inner.quarantine(run_id, reason),
        )
        .await
    }

    async fn remove_terminal(&self, run_id: &RunId) -> Result<RunMeta> {
        guarded(
            &self.plan,
            FaultOp::RemoveTerminal,
            self.inner.remove_terminal(run_id),
        )
        .await
    }

    async fn append_audit(&self, run_id: &RunId, record: &AuditRecord) -> Result<()> {
        guarded(
            &self.plan,
            FaultOp::AppendAudit,
            self.inner.append_audit(run_id, record),
        )
        .await
    }

    async fn list_quarantined(&self) -> Result<Vec<QuarantinedRun>> {
        guarded(
            &self.plan,
            FaultOp::ListQuarantined,
            self.inner.list_quarantined(),
        )
        .await
    }

    async fn read_audit(&self, run_id: &RunId) -> Result<Vec<AuditRecord>> {
        guarded(
            &self.plan,
            FaultOp::ReadAudit,
            self.inner.read_audit(run_id),
        )
        .await
    }
}

/// A checkpointer handed out by `FaultyFactory`; fails the calls the shared plan says.
#[derive(Debug)]
pub struct FaultyCheckpointer {
    inner: Box<dyn Checkpointer>,
    plan: FaultPlan,
}

#[async_trait]
impl Checkpointer for FaultyCheckpointer {
    fn run_id(&self) -> &RunId {
        self.inner.run_id()
    }

    async fn append(&self, events: &[Event]) -> Result<()> {
        guarded(&self.plan, FaultOp::Append, self.inner.append(events)).await
    }

    async fn install_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        guarded(
            &self.plan,
            FaultOp::InstallSnapshot,
            self.inner.install_snapshot(snapshot),
        )
        .await
    }

    async fn load(&self) -> Result<Recovered> {
        guarded(&self.plan, FaultOp::Load, self.inner.load()).await
    }

    async fn audit(&self, record: &AuditRecord) -> Result<()> {
        guarded(&self.plan, FaultOp::Audit, self.inner.audit(record)).await
    }

    async fn complete(&self) -> Result<RunMeta> {
        guarded(&self.plan, FaultOp::Complete, self.inner.complete()).await
    }

    async fn fail(&self, error: &RunError) -> Result<RunMeta> {
        guarded(&self.plan, FaultOp::Fail, self.inner.fail(error)).await
    }
}
