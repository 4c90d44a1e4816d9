//! Shared test pieces: a scripted runner and a scheduler over a chosen store with a manual clock.

#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cairn_checkpoint::fault::{FaultPlan, FaultyJobStore};
use cairn_checkpoint::{
    JobAuditRecord, JobId, JobListing, JobStore, MemoryJobStore, StoredJob, VersionConflict,
};
use cairn_queue::Timestamp;
use cairn_scheduler::{
    JobRunner, ManualClock, NewJob, RunFailed, RunRequest, RunSucceeded, Schedule, Scheduler,
    SchedulerConfig,
};

/// 2026-01-01T00:00:00Z.
pub const NEW_YEAR_2026: Timestamp = Timestamp(1_767_225_600_000);

/// A runner that answers from a script (success once the script is empty) and remembers
/// every request.
#[derive(Debug, Default, Clone)]
pub struct ScriptedRunner {
    script: Arc<Mutex<VecDeque<bool>>>,
    /// Every request, in order.
    pub requests: Arc<Mutex<Vec<RunRequest>>>,
    /// Make every run fail (after the script).
    pub always_fail: Arc<Mutex<bool>>,
    /// Report every failure as interrupted by a shutdown instead.
    pub interrupted: Arc<Mutex<bool>>,
}

impl ScriptedRunner {
    pub fn failing() -> Self {
        let runner = Self::default();
        *runner.always_fail.lock().unwrap() = true;
        runner
    }

    /// Queues outcomes: `true` succeeds, `false` fails.
    pub fn then(&self, outcomes: &[bool]) {
        self.script.lock().unwrap().extend(outcomes);
    }

    pub fn set_failing(&self, failing: bool) {
        *self.always_fail.lock().unwrap() = failing;
    }

    pub fn runs(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

#[async_trait]
impl JobRunner for ScriptedRunner {
    async fn run(&self, request: &RunRequest) -> Result<RunSucceeded, RunFailed> {
        self.requests.lock().unwrap().push(request.clone());
        let scripted = self.script.lock().unwrap().pop_front();
        let ok = scripted.unwrap_or(!*self.always_fail.lock().unwrap());
        if ok {
            Ok(RunSucceeded { run_id: None })
        } else if *self.interrupted.lock().unwrap() {
            Err(RunFailed::interrupted(None, "stopped by a shutdown"))
        } else {
            Err(RunFailed::new(format!(
                "run {} of {} failed: dependency down",
                self.runs(),
                request.job_id
            )))
        }
    }
}

/// A scheduler, its clock and runner.
pub struct Rig {
    pub scheduler: Scheduler,
    pub clock: ManualClock,
    pub runner: ScriptedRunner,
    pub store: Arc<dyn JobStore>,
}

impl Rig {
    pub fn memory() -> Rig {
        Rig::over(Arc::new(MemoryJobStore::new()), SchedulerConfig::default())
    }

    pub fn over(store: Arc<dyn JobStore>, config: SchedulerConfig) -> Rig {
        let clock = ManualClock::new(NEW_YEAR_2026);
        let runner = ScriptedRunner::default();
        let scheduler = Scheduler::with_config(
            store.clone(),
            Arc::new(runner.clone()),
            Arc::new(clock.clone()),
            config,
        );
        Rig {
            scheduler,
            clock,
            runner,
            store,
        }
    }

    /// The stored job's `next_run_at`, which it must have.
    pub async fn next_due(&self, id: &JobId) -> Timestamp {
        let job = self.scheduler.jobs().show(id).await.expect("show");
        job.next_run_at.expect("the job has a next run")
    }

    /// Moves the clock to the job's `next_run_at` and ticks once.
    pub async fn tick_when_due(&self, id: &JobId) -> cairn_scheduler::TickReport {
        self.clock.set(self.next_due(id).await);
        self.scheduler.tick().await.expect("tick")
    }
}

/// A rig over a fault-wrapped memory store, with the plan.
pub fn faulty_rig() -> (Rig, FaultPlan) {
    let plan = FaultPlan::new();
    let store = FaultyJobStore::new(MemoryJobStore::new(), plan.clone());
    (Rig::over(Arc::new(store), SchedulerConfig::default()), plan)
}

pub fn id(text: &str) -> JobId {
    JobId::new(text).expect("valid test job id")
}

pub fn every_minute(job: &str) -> NewJob {
    NewJob::new(
        id(job),
        format!("{job} job"),
        Schedule::every(Duration::from_secs(60)).expect("valid interval"),
        "wf.toml",
    )
}

/// What a [`HookedStore`] does before passing a call on to its memory store: a test's
/// injected fault or interference. Each hook does nothing unless a test overrides it.
#[async_trait]
pub trait StoreHooks: std::fmt::Debug + Send + Sync {
    /// Before `listing` (and `list`).
    async fn before_list(&self) {}

    /// Before `put`; an error is returned instead of writing.
    async fn before_put(
        &self,
        _inner: &MemoryJobStore,
        _id: &JobId,
        _expected: Option<u64>,
    ) -> cairn_checkpoint::Result<()> {
        Ok(())
    }

    /// After a `put` that wrote `document` (won its compare-and-swap), before the caller
    /// sees the result.
    async fn after_put(&self, _inner: &MemoryJobStore, _id: &JobId, _document: &serde_json::Value) {
    }

    /// Before `delete`; an error is returned instead of deleting.
    async fn before_delete(&self, _id: &JobId) -> cairn_checkpoint::Result<()> {
        Ok(())
    }
}

/// A memory job store with a test's [`StoreHooks`] in front of it.
#[derive(Debug, Default)]
pub struct HookedStore<H> {
    /// The store every call ends at.
    pub inner: MemoryJobStore,
    /// The test's hooks.
    pub hooks: H,
}

#[async_trait]
impl<H: StoreHooks + 'static> JobStore for HookedStore<H> {
    async fn get(&self, id: &JobId) -> cairn_checkpoint::Result<Option<StoredJob>> {
        self.inner.get(id).await
    }
    async fn listing(&self) -> cairn_checkpoint::Result<JobListing> {
        self.hooks.before_list().await;
        self.inner.listing().await
    }
    async fn put(
        &self,
        id: &JobId,
        expected: Option<u64>,
        document: &serde_json::Value,
    ) -> cairn_checkpoint::Result<Result<u64, VersionConflict>> {
        self.hooks.before_put(&self.inner, id, expected).await?;
        let written = self.inner.put(id, expected, document).await?;
        if written.is_ok() {
            self.hooks.after_put(&self.inner, id, document).await;
        }
        Ok(written)
    }
    async fn delete(
        &self,
        id: &JobId,
        expected: u64,
    ) -> cairn_checkpoint::Result<Result<(), VersionConflict>> {
        self.hooks.before_delete(id).await?;
        self.inner.delete(id, expected).await
    }
    async fn append_audit(&self, record: &JobAuditRecord) -> cairn_checkpoint::Result<()> {
        self.inner.append_audit(record).await
    }
    async fn read_audit(&self, id: &JobId) -> cairn_checkpoint::Result<Vec<JobAuditRecord>> {
        self.inner.read_audit(id).await
    }
}
