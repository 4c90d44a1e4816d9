//! What the CLI adds around the resume policy (`cairn-runs`): reading a run's tasks.
//!
//! The decisions themselves (resume an interrupted run, ask about a failed one, refuse a
//! second writer, force, abandon, resume by id) are `cairn_runs::ResumePolicy`'s. The policy
//! only moves the run's status. When the executor then adopts a claimed failed run
//! (`Start::Adopt`), it gives the failed tasks fresh attempts and unblocks their dependents,
//! audited as `task_reset` with reason `explicit_resume`; a claimed interrupted run
//! (`Start::AdoptInterrupted`) only continues, so its failed tasks stay failed. Done tasks
//! never run again.

use anyhow::Context as _;
use cairn_checkpoint::{CheckpointerFactory, RunId, RunMeta};
use cairn_queue::{Queue, QueueConfig, StatusCounts};

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
