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
use cairn_checkpoint::{CheckpointerFactory, Recovered, RunId, RunMeta};
use cairn_queue::{Queue, QueueConfig, StatusCounts};

/// A run's tasks as stored: read without writing anything ([`peek`], so a read-only state
/// folder can be looked at), or by opening it ([`open_and_read`]).
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

/// Opens a run, replays its queue and releases it: for a run this process is about to drive.
/// Opening writes what a writer's open writes (it cuts a torn last record, and moves bad
/// state to quarantine), so the drive that follows, and every later command, finds the run
/// as this read did. A short-lived holder of the run's lock (an abandon that started before
/// this process claimed the run) is waited out, as the executor's adopt does
/// ([`cairn_executor::open_claimed_run`]).
///
/// # Errors
///
/// `cairn_checkpoint::Error::Locked` (in the chain) when another process holds the run; other
/// store errors; a journal that does not replay.
pub async fn open_and_read(
    factory: &dyn CheckpointerFactory,
    run_id: &RunId,
) -> anyhow::Result<Peek> {
    let opened = cairn_executor::open_claimed_run(factory, run_id)
        .await
        .with_context(|| format!("cannot open run {run_id}"))?
        .with_context(|| format!("run {run_id} does not exist"))?;
    replay(run_id, opened.recovered)
}

/// Reads a run's state (never its writer lock, nor any write) and replays its queue.
///
/// # Errors
///
/// `cairn_checkpoint::Error::Locked` (in the chain) when another process holds the run; other
/// store errors; a journal that does not replay.
pub async fn peek(factory: &dyn CheckpointerFactory, run_id: &RunId) -> anyhow::Result<Peek> {
    replay_read(run_id, factory.peek(run_id).await)
}

/// Reads a run's state even while another process drives it (for `cairn show` of a live
/// run), and replays its queue. The state is one the writer passed through, at least as
/// new as what it had written when the read began; with an adapter that cannot read beside
/// a writer (sled), a held run fails with `Locked` as [`peek`] does.
///
/// # Errors
///
/// As for [`peek`].
pub async fn peek_live(factory: &dyn CheckpointerFactory, run_id: &RunId) -> anyhow::Result<Peek> {
    replay_read(run_id, factory.peek_live(run_id).await)
}

/// Replays what a read of the store found, naming the run in its errors.
fn replay_read(
    run_id: &RunId,
    read: cairn_checkpoint::Result<Option<Recovered>>,
) -> anyhow::Result<Peek> {
    let recovered = read
        .with_context(|| format!("cannot read run {run_id}"))?
        .with_context(|| format!("run {run_id} does not exist"))?;
    replay(run_id, recovered)
}

fn replay(run_id: &RunId, recovered: Recovered) -> anyhow::Result<Peek> {
    let queue = Queue::replay(
        recovered.snapshot,
        recovered.events.iter(),
        QueueConfig::default(),
    )
    .with_context(|| format!("the journal of run {run_id} does not replay"))?;
    Ok(Peek {
        meta: recovered.meta,
        queue,
    })
}
