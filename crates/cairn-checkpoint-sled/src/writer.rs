//! `SledCheckpointer`: one run's writer, holding the run's writer slot until dropped.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use cairn_checkpoint::{
    AuditRecord, Checkpointer, Durability, Error, Recovered, Result, RunError, RunId, RunMeta,
    RunStatus, wall_clock_now,
};
use cairn_queue::{Event, Snapshot};

use crate::shared::Shared;
use crate::store::{MetaStep, Reading};

/// A run's writer slot in the process-wide registry of its database. Released on drop.
#[derive(Debug)]
pub(crate) struct WriterSlot {
    shared: Arc<Shared>,
    run_id: RunId,
    token: u64,
}

impl WriterSlot {
    /// Takes `run_id`'s slot, or fails with `Locked` naming the holder.
    pub(crate) fn acquire(shared: &Arc<Shared>, run_id: &RunId) -> Result<WriterSlot> {
        let token = shared.acquire(run_id)?;
        Ok(WriterSlot {
            shared: Arc::clone(shared),
            run_id: run_id.clone(),
            token,
        })
    }
}

impl Drop for WriterSlot {
    fn drop(&mut self) {
        self.shared.release(&self.run_id, self.token);
    }
}

/// The writer of one run stored in sled. Created by `SledFactory::begin` and `open`.
///
/// Appends are atomic sled batches; they are acknowledged once durable as the factory's
/// `Durability` says. After a failed flush every call fails with `Poisoned`.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{CheckpointerFactory, Error, RunId, RunMeta};
/// use cairn_checkpoint_sled::SledFactory;
/// use cairn_queue::{Event, Timestamp};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let factory = SledFactory::open(dir.path().join("runs.sled"))?;
/// let id = RunId::new("r1")?;
/// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
/// let event = Event::PhaseStarted { index: 0, name: "fetch".into() };
/// run.append(std::slice::from_ref(&event)).await?;
/// // One writer per run: a second one is refused while the first lives.
/// assert!(matches!(factory.open(&id).await, Err(Error::Locked { .. })));
/// drop(run);
/// let opened = factory.open(&id).await?.expect("the run exists");
/// assert_eq!(opened.recovered.events, vec![event]);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct SledCheckpointer {
    slot: WriterSlot,
    durability: Durability,
    /// The next journal sequence. Held while sequences are assigned and written, so
    /// concurrent appends land in one order, and while a snapshot's base is chosen.
    next_seq: tokio::sync::Mutex<u64>,
    poisoned: AtomicBool,
}

impl SledCheckpointer {
    pub(crate) fn new(slot: WriterSlot, durability: Durability, next_seq: u64) -> Self {
        SledCheckpointer {
            slot,
            durability,
            next_seq: tokio::sync::Mutex::new(next_seq),
            poisoned: AtomicBool::new(false),
        }
    }

    fn shared(&self) -> &Shared {
        &self.slot.shared
    }

    fn check_usable(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned {
                run_id: self.slot.run_id.clone(),
            });
        }
        Ok(())
    }

    /// Passes `result` through, poisoning this writer if it is a failed flush.
    fn watch<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(Error::SyncFailed { .. }) = &result {
            self.poisoned.store(true, Ordering::Release);
        }
        result
    }

    async fn make_durable(&self) -> Result<()> {
        let outcome = self.shared().make_durable(self.durability).await;
        self.watch(outcome)
    }

    /// Moves the run to a final status unless it already is terminal.
    async fn finish(&self, status: RunStatus, error: Option<&RunError>) -> Result<RunMeta> {
        self.check_usable()?;
        let run_id = &self.slot.run_id;
        let swapped = self.shared().swap_meta(run_id, |meta| {
            if meta.status.is_terminal() {
                return Err(Error::Terminal {
                    run_id: run_id.clone(),
                    status: meta.status,
                });
            }
            let now = wall_clock_now();
            let mut next = meta.clone();
            next.status = status;
            next.updated_at = now;
            next.finished_at = Some(now);
            if let Some(error) = error {
                next.error = Some(error.clone());
            }
            Ok(MetaStep::<Infallible>::Write(Box::new(next)))
        })?;
        let Ok(meta) = swapped;
        self.make_durable().await?;
        Ok(meta)
    }
}

#[async_trait]
impl Checkpointer for SledCheckpointer {
    fn run_id(&self) -> &RunId {
        &self.slot.run_id
    }

    async fn append(&self, events: &[Event]) -> Result<()> {
        self.check_usable()?;
        if events.is_empty() {
            return Ok(());
        }
        {
            let mut next_seq = self.next_seq.lock().await;
            *next_seq = self
                .shared()
                .write_events(&self.slot.run_id, *next_seq, events)?;
        }
        self.make_durable().await
    }

    async fn install_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        self.check_usable()?;
        let base = {
            let next_seq = self.next_seq.lock().await;
            self.shared()
                .write_snapshot(&self.slot.run_id, *next_seq, snapshot)?;
            *next_seq
        };
        // The old journal records stay until the new snapshot is durable; `open` ignores
        // records before the snapshot's base, so a crash between the steps loses nothing.
        self.make_durable().await?;
        self.shared().trim_journal(&self.slot.run_id, base)
    }

    async fn load(&self) -> Result<Recovered> {
        self.check_usable()?;
        let mut next_seq = self.next_seq.lock().await;
        let outcome = self
            .shared()
            .recover(&self.slot.run_id, self.durability, Reading::Repair)
            .await;
        match self.watch(outcome)? {
            Some(state) => {
                *next_seq = state.next_seq;
                Ok(state.recovered)
            }
            None => Err(Error::NotFound {
                run_id: self.slot.run_id.clone(),
            }),
        }
    }

    async fn audit(&self, record: &AuditRecord) -> Result<()> {
        self.check_usable()?;
        self.shared().put_audit(&self.slot.run_id, record)?;
        self.make_durable().await
    }

    async fn complete(&self) -> Result<RunMeta> {
        self.finish(RunStatus::Completed, None).await
    }

    async fn fail(&self, error: &RunError) -> Result<RunMeta> {
        self.finish(RunStatus::Failed, Some(error)).await
    }
}

#[cfg(test)]
mod tests {
    //! A failed flush cannot be provoked through sled's public API, so these tests reach the
    //! private switches in `Shared`.

    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::Ordering;
    use std::task::{Context, Waker};

    use cairn_checkpoint::{CheckpointerFactory, Durability, Error};

    use crate::SledFactory;
    use crate::unit_fixtures::{event, meta};

    /// A factory over a fresh database with two runs begun in it: two writers sharing one
    /// handle, and so its flushes.
    async fn two_writers(
        durability: Durability,
    ) -> (
        tempfile::TempDir,
        SledFactory,
        Box<dyn cairn_checkpoint::Checkpointer>,
        Box<dyn cairn_checkpoint::Checkpointer>,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let factory = SledFactory::builder()
            .path(dir.path().join("db"))
            .durability(durability)
            .build()
            .expect("build");
        let first = factory.begin(meta("first")).await.expect("begin");
        let second = factory.begin(meta("second")).await.expect("begin");
        (dir, factory, first, second)
    }

    async fn failed_flush_poisons(durability: Durability) {
        let (_dir, factory, first, second) = two_writers(durability).await;
        first.append(&[event(0)]).await.expect("a healthy append");

        factory.shared.fail_next_flush.store(true, Ordering::SeqCst);
        let err = first.append(&[event(1)]).await.expect_err("flush fails");
        assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
        let err = first.append(&[event(2)]).await.expect_err("poisoned");
        assert!(matches!(err, Error::Poisoned { .. }), "{err:?}");
        let err = first.complete().await.expect_err("poisoned");
        assert!(matches!(err, Error::Poisoned { .. }), "{err:?}");
        let err = first.load().await.expect_err("poisoned");
        assert!(matches!(err, Error::Poisoned { .. }), "{err:?}");
        // The flush is database-wide and never retried: another writer of the same handle
        // cannot make anything durable either.
        let err = second.append(&[event(0)]).await.expect_err("no retry");
        assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
        let err = second.append(&[event(1)]).await.expect_err("poisoned");
        assert!(matches!(err, Error::Poisoned { .. }), "{err:?}");
    }

    /// A failed flush whose caller was dropped while it ran on the blocking pool.
    async fn dropped_failed_flush_poisons(durability: Durability) {
        let (_dir, factory, first, second) = two_writers(durability).await;
        let shared = &factory.shared;
        let finished = shared.flushes_finished.load(Ordering::SeqCst);

        shared.fail_next_flush.store(true, Ordering::SeqCst);
        let events = [event(0)];
        let mut append = first.append(&events);
        {
            // Holding the flush lock keeps the flush from finishing before the drop.
            let _held = shared.flush_lock.lock().expect("flush lock");
            // Polled once by hand (the future is dropped next, so no waker is needed).
            let mut cx = Context::from_waker(Waker::noop());
            let polled = Pin::new(&mut append).poll(&mut cx);
            assert!(polled.is_pending(), "the flush waits for the lock");
            drop(append);
        }
        // No timing: the dropped flush finishes once the lock is free.
        while shared.flushes_finished.load(Ordering::SeqCst) == finished {
            tokio::task::yield_now().await;
        }
        // Its failure was not seen by anyone, but it is fatal all the same: nothing written
        // through this handle may be acknowledged as durable any more.
        let err = second.append(&[event(0)]).await.expect_err("no retry");
        assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
        let err = first.append(&[event(1)]).await.expect_err("no retry");
        assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
        let err = first.append(&[event(2)]).await.expect_err("poisoned");
        assert!(matches!(err, Error::Poisoned { .. }), "{err:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_sync_flush_whose_caller_was_dropped_poisons_the_database() {
        dropped_failed_flush_poisons(Durability::Sync).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_group_flush_whose_leader_was_dropped_poisons_the_database() {
        dropped_failed_flush_poisons(Durability::Group {
            max_delay: std::time::Duration::from_millis(1),
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_sync_flush_poisons_the_writer() {
        failed_flush_poisons(Durability::Sync).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_group_flush_poisons_the_writer() {
        failed_flush_poisons(Durability::Group {
            max_delay: std::time::Duration::from_millis(1),
        })
        .await;
    }
}
