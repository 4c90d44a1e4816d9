//! The resume policy as the CLI applies it, over the storage port: what a `cairn run` does
//! about earlier runs of the same workflow and scope, and the `resume` / `abandon` actions.
//!
//! - A run that is `running` with no live writer was interrupted (a crash, `kill -9`, Ctrl-C):
//!   `cairn run` resumes it without asking.
//! - A run that is `running` under a live writer is being driven by another process: a new
//!   run is refused, since two writers would race.
//! - When the latest run is `failed` (or `paused`), a new run never starts silently: the user
//!   resumes it, abandons it and re-runs, or forces a fresh run past it.
//!
//! Resuming a failed run retries its failed tasks (the queue's `Retried` event, which also
//! unblocks their dependents) in one durable append, then claims the run with a status
//! compare-and-swap; done tasks are never run again.

use anyhow::{Context as _, bail};
use cairn_checkpoint::{
    AuditAction, AuditRecord, CheckpointerFactory, RunFilter, RunId, RunMeta, RunStatus,
    wall_clock_now,
};
use cairn_queue::{Queue, QueueConfig, Status, StatusCounts};
use cairn_telemetry::emit;

/// The earlier run a new `cairn run` has to take into account.
#[derive(Debug, Clone)]
pub enum Prior {
    /// Nothing to take into account: begin a new run.
    None,
    /// An interrupted run: resume it.
    Interrupted(RunMeta),
    /// A run driven right now by another process.
    Live(RunMeta),
    /// The latest run failed (or is paused): the user decides.
    Failed(RunMeta),
}

/// Finds the earlier run that decides what `cairn run` does.
///
/// # Errors
///
/// When the store cannot list runs or tell whether one is held.
pub async fn find_prior(
    factory: &dyn CheckpointerFactory,
    workflow: &str,
    scope: &str,
) -> anyhow::Result<Prior> {
    let filter = RunFilter {
        workflow: Some(workflow.to_owned()),
        scope: Some(scope.to_owned()),
        statuses: Vec::new(),
    };
    let runs = factory
        .list(&filter)
        .await
        .with_context(|| format!("cannot list runs of workflow `{workflow}` in scope `{scope}`"))?;
    // Newest first: the latest interrupted run is the one to resume.
    for meta in runs.iter().rev() {
        if meta.status == RunStatus::Running {
            let held = factory
                .is_held(&meta.run_id)
                .await
                .with_context(|| format!("cannot tell whether run {} is live", meta.run_id))?;
            return Ok(if held {
                Prior::Live(meta.clone())
            } else {
                Prior::Interrupted(meta.clone())
            });
        }
    }
    match runs.last() {
        Some(meta) if matches!(meta.status, RunStatus::Failed | RunStatus::Paused) => {
            Ok(Prior::Failed(meta.clone()))
        }
        _ => Ok(Prior::None),
    }
}

/// A run's tasks as stored, read by opening it (which briefly takes its writer lock).
#[derive(Debug)]
pub struct Peek {
    /// The run's metadata as opened.
    pub meta: RunMeta,
    /// Its queue, replayed.
    pub queue: Queue,
}

impl Peek {
    /// Counts by status.
    pub fn counts(&self) -> StatusCounts {
        self.queue.counts()
    }
}

/// Opens a run, replays its queue and releases it.
///
/// # Errors
///
/// `cairn_checkpoint::Error::Locked` (in the chain) when another process holds the run; other
/// store errors; a journal that does not replay.
pub async fn peek(factory: &dyn CheckpointerFactory, run_id: &RunId) -> anyhow::Result<Peek> {
    let opened = factory
        .open(run_id)
        .await
        .with_context(|| format!("cannot open run {run_id}"))?
        .with_context(|| format!("run {run_id} does not exist"))?;
    let queue = Queue::replay(
        opened.recovered.snapshot,
        opened.recovered.events.iter(),
        QueueConfig::default(),
    )
    .with_context(|| format!("the journal of run {run_id} does not replay"))?;
    Ok(Peek {
        meta: opened.recovered.meta,
        queue,
    })
}

/// What resuming a failed run did before handing it to the executor.
#[derive(Debug, Clone)]
pub struct FailedResume {
    /// The run after the claim.
    pub meta: RunMeta,
    /// Tasks already done (or skipped); they do not run again.
    pub done: usize,
    /// Failed tasks sent back to pending.
    pub retried: usize,
    /// Tasks pending now (including the retried ones and unblocked dependents).
    pub pending: usize,
}

/// Prepares a `failed` or `paused` run for `Start::Adopt`: retries its failed tasks durably,
/// then claims it (status → `running`, new lease epoch) and audits the resume.
///
/// # Errors
///
/// When the run is missing, held by another process, not failed or paused, or the store
/// fails.
pub async fn resume_failed(
    factory: &dyn CheckpointerFactory,
    meta: &RunMeta,
) -> anyhow::Result<FailedResume> {
    let run_id = &meta.run_id;
    let from = meta.status;
    if !matches!(from, RunStatus::Failed | RunStatus::Paused) {
        bail!("run {run_id} is {from}; only failed or paused runs are resumed this way");
    }
    let now = wall_clock_now();
    let opened = factory
        .open(run_id)
        .await
        .with_context(|| format!("cannot open run {run_id}"))?
        .with_context(|| format!("run {run_id} does not exist"))?;
    let mut queue = Queue::replay(
        opened.recovered.snapshot,
        opened.recovered.events.iter(),
        QueueConfig::default(),
    )
    .with_context(|| format!("the journal of run {run_id} does not replay"))?;
    let failed: Vec<_> = queue
        .tasks()
        .filter(|t| t.status == Status::Failed)
        .map(|t| t.id)
        .collect();
    for id in &failed {
        queue
            .retry(*id, now)
            .with_context(|| format!("cannot retry task {id} of run {run_id}"))?;
    }
    let events = queue.take_events();
    if !events.is_empty() {
        opened
            .checkpointer
            .append(&events)
            .await
            .with_context(|| format!("cannot record the retries of run {run_id}"))?;
    }
    // Release the writer lock before the executor opens the run again.
    drop(opened.checkpointer);

    let claimed = factory
        .compare_and_swap_status(run_id, from, RunStatus::Running)
        .await
        .with_context(|| format!("cannot claim run {run_id}"))?;
    let claimed = match claimed {
        Ok(meta) => meta,
        Err(conflict) => bail!(
            "run {run_id} changed from {} to {} meanwhile; look again with `cairn runs`",
            conflict.expected,
            conflict.current
        ),
    };
    let record = AuditRecord::new(
        now,
        run_id.clone(),
        AuditAction::ResumedById,
        format!(
            "resumed by id from {from} at lease epoch {}; {} failed task(s) retried",
            claimed.lease_epoch,
            failed.len()
        ),
    );
    audit(factory, &record).await;
    emit::resumed_by_id(run_id.as_str(), from.as_str(), claimed.lease_epoch);
    let counts = queue.counts();
    Ok(FailedResume {
        meta: claimed,
        done: counts.done + counts.skipped,
        retried: failed.len(),
        pending: counts.pending,
    })
}

/// Abandons a run: `failed`, `paused` or interrupted `running` → `cancelled`, audited. Its
/// state is kept (never deleted); it is just never resumed.
///
/// # Errors
///
/// When the run does not exist, is live, completed or already cancelled, or the store fails.
pub async fn abandon(factory: &dyn CheckpointerFactory, run_id: &RunId) -> anyhow::Result<RunMeta> {
    let meta = factory
        .load_meta(run_id)
        .await
        .with_context(|| format!("cannot read run {run_id}"))?
        .with_context(|| format!("run {run_id} does not exist"))?;
    let from = meta.status;
    match from {
        RunStatus::Failed | RunStatus::Paused => {}
        RunStatus::Running => {
            if factory.is_held(run_id).await? {
                bail!("run {run_id} is being driven by another process; stop it first");
            }
        }
        RunStatus::Completed | RunStatus::Cancelled => {
            bail!("run {run_id} is already {from}; there is nothing to abandon")
        }
    }
    let swapped = factory
        .compare_and_swap_status(run_id, from, RunStatus::Cancelled)
        .await
        .with_context(|| format!("cannot abandon run {run_id}"))?;
    let meta = match swapped {
        Ok(meta) => meta,
        Err(conflict) => bail!(
            "run {run_id} changed from {} to {} meanwhile; nothing was abandoned",
            conflict.expected,
            conflict.current
        ),
    };
    let record = AuditRecord::new(
        wall_clock_now(),
        run_id.clone(),
        AuditAction::Abandoned,
        format!("abandoned from {from}; it will not be resumed"),
    );
    audit(factory, &record).await;
    emit::run_abandoned(run_id.as_str(), from.as_str());
    Ok(meta)
}

/// Audits that a fresh run was forced past a failed one.
pub async fn record_forced(factory: &dyn CheckpointerFactory, failed: &RunId, fresh: &RunId) {
    let record = AuditRecord::new(
        wall_clock_now(),
        failed.clone(),
        AuditAction::ForcedFresh,
        format!("a fresh run {fresh} was forced past this run; this run is left as it was"),
    );
    audit(factory, &record).await;
    emit::fresh_run_forced(fresh.as_str(), failed.as_str());
}

/// Audits that the user was asked about a failed run.
pub async fn record_prompted(factory: &dyn CheckpointerFactory, meta: &RunMeta) {
    let record = AuditRecord::new(
        wall_clock_now(),
        meta.run_id.clone(),
        AuditAction::FailedResumePrompted,
        "a new run of this workflow and scope was asked for; the user was shown the choices",
    );
    audit(factory, &record).await;
    emit::failed_resume_prompted(meta.run_id.as_str(), &meta.workflow, &meta.scope);
}

/// The audit log is a record of decisions, not the source of truth: a failed audit write is
/// logged and the action goes on.
async fn audit(factory: &dyn CheckpointerFactory, record: &AuditRecord) {
    if let Err(error) = factory.append_audit(&record.run_id, record).await {
        tracing::warn!(target: "cairn", run_id = %record.run_id, error = %error, "could not write an audit record");
    }
}
