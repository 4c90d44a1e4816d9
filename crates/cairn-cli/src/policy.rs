//! What the CLI adds around the resume policy (`cairn-runs`): reading a run's tasks, and
//! giving a resumed failed run's failed tasks another go.
//!
//! The decisions themselves (resume an interrupted run, ask about a failed one, refuse a
//! second writer, force, abandon, resume by id) are `cairn_runs::ResumePolicy`'s. The policy
//! only moves the run's status; it does not touch its tasks. A failed run's failed tasks are
//! terminal in its queue, so after the policy claims the run, [`retry_failed_tasks`] records
//! a `Retried` event for each (which also unblocks their dependents) in one durable append,
//! before the executor adopts the run. Done tasks are never run again.

use anyhow::Context as _;
use cairn_checkpoint::{
    AuditAction, AuditRecord, CheckpointerFactory, RunId, RunMeta, wall_clock_now,
};
use cairn_queue::{Queue, QueueConfig, Status, StatusCounts};

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

/// What [`retry_failed_tasks`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retried {
    /// Tasks done (or skipped); they do not run again.
    pub done: usize,
    /// Failed tasks sent back to pending.
    pub retried: usize,
    /// Tasks pending now (the retried ones and their unblocked dependents included).
    pub pending: usize,
}

/// Sends every failed task of a claimed run back to pending, durably, and releases the run
/// for the executor to adopt.
///
/// # Errors
///
/// When the run cannot be opened (missing, held by another process), does not replay, or
/// the append fails.
pub async fn retry_failed_tasks(
    factory: &dyn CheckpointerFactory,
    run_id: &RunId,
) -> anyhow::Result<Retried> {
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
    let now = wall_clock_now();
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
        let names: Vec<String> = failed
            .iter()
            .filter_map(|id| queue.get(*id))
            .map(|t| {
                t.inputs
                    .get("id")
                    .and_then(|v| v.as_str())
                    .map_or_else(|| t.id.to_string(), str::to_owned)
            })
            .collect();
        // The port has no audit action for a manual retry; this is part of resuming by id.
        let record = AuditRecord::new(
            now,
            run_id.clone(),
            AuditAction::ResumedById,
            format!(
                "failed task(s) sent back to pending for the resume: {}",
                names.join(", ")
            ),
        )
        .with_detail(serde_json::json!({ "retried_tasks": names }));
        if let Err(error) = opened.checkpointer.audit(&record).await {
            // The journal, not the audit log, is the source of truth: go on, but say so.
            tracing::warn!(target: "cairn", run_id = %run_id, error = %error, "could not audit the task retries");
        }
    }
    // The writer lock is released here, before the executor opens the run again.
    drop(opened.checkpointer);
    let counts = queue.counts();
    Ok(Retried {
        done: counts.done + counts.skipped,
        retried: failed.len(),
        pending: counts.pending,
    })
}
