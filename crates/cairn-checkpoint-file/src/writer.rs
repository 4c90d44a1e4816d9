//! `FileCheckpointer`: one run's writer, with leader/follower group commit and compaction.
//!
//! An `append` frames its records into a shared buffer and gets a ticket (the number of the
//! batch that buffer will become). If no leader is active it becomes one: a blocking task
//! that repeatedly takes the whole buffer, frames it as one batch (header with length,
//! offset and CRC), writes it with ONE `write`, makes it durable with ONE `fdatasync` and
//! publishes the batch number (a batch that outgrows the preallocated zeros is preceded by
//! a write of more zeros, covered by the same `fdatasync`). Only one leader exists at a
//! time and it holds the journal from the write until the fdatasync returned, so at most
//! one batch is ever unacknowledged on disk: the journal's recovery rules rely on that (see
//! `journal`). A batch whose write failed is cut off again before the failure is reported,
//! so it is not read back either (see `Shared::unwrite_batch`). Appends that arrive
//! while a leader is syncing land in the next batch, so concurrent appends share syncs. The
//! leader runs on the blocking pool and owns its work, so dropping an `append` future never
//! strands others.
//!
//! Leadership is always given up, however the leader's work ends. Its blocking task holds a
//! `Leadership` claim: work that ends normally steps down itself, and a claim dropped while
//! still the current leadership (the work panicked, in its write or fdatasync or anywhere
//! else, or its task was dropped before it ran) poisons the writer the way a failed fdatasync
//! does and then steps down and wakes every waiter. The appends of every batch not yet
//! published fail with `SyncFailed` (their durability is unknown, so none is acknowledged
//! and none is retried), a snapshot install or load whose work panicked gets the same error,
//! every later call fails with `Poisoned`, and the writer's drop does not wait for the dead
//! leader. A panic writes nothing more, so the one-unacknowledged-batch rule still holds:
//! the batch it was syncing, if any, is the torn-or-whole last batch recovery expects.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cairn_checkpoint::{
    AuditRecord, Checkpointer, Durability, Error, Recovered, Result, RunError, RunId, RunMeta,
    RunStatus,
};
use cairn_queue::{Event, QueueConfig, Snapshot};
use serde::Serialize;
use tokio::sync::watch;

use crate::fs::FsFile;
use crate::journal;
use crate::shadow::{Kept, Refused, Shadow};
use crate::store::{
    JOURNAL_FILE, JournalFile, QUEUE_FILE, Store, io_error, parse_queue_file, sync_error,
};

/// The first preallocation step, and the granularity of every step.
const PREALLOCATE_MIN: u64 = 64 * 1024;
/// The largest preallocation step: the journal grows by its own size until then.
const PREALLOCATE_MAX: u64 = 4 * 1024 * 1024;

/// The journal length to preallocate to when a batch would end at `end`, past the
/// `allocated` bytes already there. Steps double (64 KiB, 128 KiB, ...) up to 4 MiB, so a
/// small run writes little and a busy one extends the file (a metadata commit) rarely.
fn preallocation_target(end: u64, allocated: u64) -> u64 {
    let step = allocated.clamp(PREALLOCATE_MIN, PREALLOCATE_MAX);
    (end + step).next_multiple_of(PREALLOCATE_MIN)
}

/// Extends the journal with zeros up to the next preallocation step past `end`, the end of
/// the batch about to be written. The zeros start at the file's current end, not at the
/// batch's, so the batch is then written over space the file already has. On a full disk
/// this write is the one that fails, with no byte of the batch written yet; what it did
/// write is cut off again (a best effort: zeros past the journal's end read as its end, but
/// the space is better left to the writes that report the failure).
fn grow(journal: &mut JournalFile, end: u64) -> std::io::Result<()> {
    let from = journal.allocated;
    let target = preallocation_target(end, from);
    let zeros = vec![0u8; (target - from) as usize];
    if let Err(err) = journal.file.write_at(from, &zeros) {
        let _ = journal.file.set_len(from);
        return Err(err);
    }
    journal.allocated = target;
    Ok(())
}

/// Where a writer starts: the journal as `open` (or `begin`) left it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position {
    /// The sequence number the next record gets.
    pub(crate) next_seq: u64,
    /// The journal's length on disk.
    pub(crate) journal_len: u64,
    /// Records in the journal after the latest snapshot.
    pub(crate) records_after_snapshot: u64,
    /// Sequence numbers up to this are inside `queue.json`.
    pub(crate) covers_seq: u64,
    /// Bytes of `queue.json` (0 when there is none).
    pub(crate) snapshot_len: u64,
    /// Whether the run was just begun: no snapshot, and every record will be written by
    /// this writer.
    pub(crate) fresh: bool,
}

impl Position {
    /// A run just begun: an empty journal, no snapshot, numbering from 1.
    pub(crate) fn fresh() -> Self {
        Position {
            next_seq: 1,
            journal_len: 0,
            records_after_snapshot: 0,
            covers_seq: 0,
            snapshot_len: 0,
            fresh: true,
        }
    }
}

/// The writer's tuning, fixed by the factory's builder.
#[derive(Debug, Clone)]
pub(crate) struct WriterConfig {
    pub(crate) durability: Durability,
    pub(crate) compact_after_records: u64,
    pub(crate) compact_after_bytes: u64,
    pub(crate) queue_config: QueueConfig,
}

/// Mutable writer state, under one short-held mutex.
#[derive(Debug)]
struct WriterState {
    /// Framed records waiting for the next batch, after `journal::BATCH_HEADER_LEN` bytes of
    /// room for the batch header (filled in by the leader). Empty when no record waits.
    buffer: Vec<u8>,
    /// How many records `buffer` holds.
    buffered_records: u64,
    /// The events of the records in `buffer`, in order, as compaction keeps them.
    buffered_kept: Vec<Kept>,
    /// How many `append` calls `buffer` holds.
    buffered_appends: u64,
    /// How many `append` calls a batch is expected to gather: the largest batch seen, until
    /// a wait for company times out with fewer. A leader waiting for company stops waiting
    /// once that many are buffered, because in the common closed loop (each caller appends
    /// again once acknowledged) nobody else is coming.
    company_size: u64,
    /// While a leader waits for company: the `buffered_appends` that ends its wait.
    company_wanted: Option<u64>,
    /// Set first thing by the writer's drop: a leader waiting for company stops waiting and
    /// flushes, because no caller of this writer can come any more, and a wait as long as
    /// a huge `max_delay` would otherwise hold the drop for as long.
    dropping: bool,
    /// The sequence number the next record gets.
    next_seq: u64,
    /// The batch `buffer` will become.
    open_batch: u64,
    /// Every batch up to this one is durable.
    durable_batch: u64,
    /// Whether a leader (or a snapshot install) owns the journal now.
    leader: bool,
    /// Bumped each time leadership is taken, so a [`Leadership`] claim knows whether the
    /// leadership there is now is still its own.
    leader_term: u64,
    /// Whether that leader's blocking task has started its work (a task dropped unstarted,
    /// by a runtime shutting down, never does): the writer's drop waits for such work to end.
    /// Cleared with `leader`, also when the work ends by a panic (see [`Leadership`]).
    leader_running: bool,
    /// Set by the writer's drop: a leader task that starts after it does nothing, so no
    /// file is written once the run's lock is released.
    closed: bool,
    /// Whether a compaction thread is still working (it clears this last).
    compaction_alive: bool,
    /// Set by a failed write or sync; batches from `failed_from` on were not made durable.
    failure: Option<Failure>,
    /// The journal's length on disk.
    journal_len: u64,
    /// Records in the journal after the latest snapshot.
    records_after_snapshot: u64,
    /// Sequence numbers up to this are inside `queue.json`.
    covers_seq: u64,
    /// The last sequence number written to the journal.
    written_seq: u64,
    /// Bytes of the latest `queue.json`: compaction waits until the journal holds a
    /// [`crate::COMPACT_SNAPSHOT_DIVISOR`]th of that, so rewriting a large snapshot stays
    /// amortized.
    snapshot_len: u64,
    /// Set when compaction could not replay the journal; the journal then just grows.
    compaction_off: bool,
    /// The events of the records written since the latest snapshot (or since this writer
    /// started), in order. Compaction applies them to its in-memory queue instead of reading
    /// the journal back and parsing every record a second time. They are kept with a task's
    /// inputs as JSON text ([`Kept`]): a JSON value takes several times the memory of its
    /// text, and a run's first batch can enqueue a hundred thousand tasks. Empty once
    /// compaction is off.
    written: Vec<Kept>,
    /// Whether `written` holds every record after `covers_seq`: true for a fresh run and
    /// after every snapshot, false for a run opened with records after its snapshot.
    events_known: bool,
    /// Whether there is no snapshot at all, so the queue as of `covers_seq` is empty.
    no_snapshot: bool,
    /// Where compaction stands (it runs on a thread of its own, beside the appends).
    compaction: Compaction,
    /// While compaction is under way: the bodies of the batches written since it started,
    /// back to back, which the rewritten journal carries over.
    tail: Vec<u8>,
    /// The length of each body in `tail`, in order: one batch each in the rewritten journal.
    tail_batches: Vec<usize>,
}

/// A buffered batch taken to be written by a snapshot install.
#[derive(Debug)]
struct TakenBatch {
    /// The batch header's room, then the framed records.
    bytes: Vec<u8>,
    /// How many records it holds.
    records: u64,
    /// The sequence number of its last record.
    last_seq: u64,
    /// Its number: its appends are acknowledged once `durable_batch` reaches it.
    batch: u64,
}

impl WriterState {
    /// The state of a writer starting where `start` says, with nothing buffered yet.
    fn new(start: &Position) -> WriterState {
        WriterState {
            buffer: Vec::new(),
            buffered_records: 0,
            buffered_appends: 0,
            company_size: 0,
            company_wanted: None,
            dropping: false,
            next_seq: start.next_seq,
            open_batch: 1,
            durable_batch: 0,
            leader: false,
            leader_term: 0,
            leader_running: false,
            closed: false,
            compaction_alive: false,
            failure: None,
            journal_len: start.journal_len,
            records_after_snapshot: start.records_after_snapshot,
            covers_seq: start.covers_seq,
            written_seq: start.next_seq - 1,
            snapshot_len: start.snapshot_len,
            compaction_off: false,
            buffered_kept: Vec::new(),
            written: Vec::new(),
            events_known: start.fresh || start.records_after_snapshot == 0,
            no_snapshot: start.fresh,
            compaction: Compaction::Idle,
            tail: Vec::new(),
            tail_batches: Vec::new(),
        }
    }

    /// Takes what is buffered as the next batch, numbered in the same critical section, so
    /// that an append buffered after this gets a later batch's number and is never told
    /// that this batch, which does not hold its records, is durable. `None` when nothing is
    /// buffered. The events kept for compaction are dropped: the snapshot being installed
    /// covers them, or (records sealed after the install was called) the install has the
    /// next compaction read the journal.
    fn take_batch(&mut self) -> Option<TakenBatch> {
        self.buffered_kept.clear();
        self.buffered_appends = 0;
        let records = std::mem::take(&mut self.buffered_records);
        if self.buffer.is_empty() {
            return None;
        }
        let batch = self.open_batch;
        self.open_batch += 1;
        Some(TakenBatch {
            bytes: std::mem::take(&mut self.buffer),
            records,
            last_seq: self.next_seq - 1,
            batch,
        })
    }

    /// Gives leadership up. Leader work ends with it, in the same critical section, so that a
    /// next leader's start is never mistaken for the end of this one's.
    fn step_down(&mut self) {
        self.leader = false;
        self.leader_running = false;
    }
}

/// A claim on leadership, taken in the critical section that sets `leader` and moved into
/// the blocking task that does the leader's work.
///
/// Leader work that ends normally gives leadership up itself (in the critical section that
/// publishes its last batch), so its claim is spent by the time the claim is dropped. A claim
/// dropped while its leadership is still the current one means the work ended some other
/// way: a panic unwound through it, or its blocking task was dropped before it ran (a runtime
/// shutting down). Then the batches not yet published are of unknown durability, as after a
/// failed fdatasync, so dropping the claim poisons the writer first and only then gives
/// leadership up and wakes every waiter (see [`Shared::abandon_leadership`]).
struct Leadership {
    shared: Arc<Shared>,
    /// The `leader_term` this claim was taken in.
    term: u64,
}

impl Leadership {
    /// The leader loop, holding this claim until it ends (see [`Shared::lead`]).
    fn lead(self, group_delay: Option<Duration>) {
        self.shared.lead(group_delay);
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.shared.abandon_leadership(self.term);
    }
}

/// Where compaction stands. It starts on the leader, right after a batch made the journal
/// cross its threshold, and runs on its own thread while appends go on into the same
/// journal: a snapshot covering every record written so far is encoded and installed
/// (temp, fdatasync, rename, fsync dir). A snapshot that covers a prefix of the journal is a
/// state recovery always accepted (it skips the records the snapshot covers), so nothing
/// waits for it. Once it is installed, the next leader rewrites the journal to the records
/// after it, atomically (the same four steps), from the batches it kept meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Compaction {
    /// Nothing under way.
    #[default]
    Idle,
    /// The snapshot covering up to `covers` is being written. A leader whose batch brings
    /// the journal to `wait_at` bytes waits for it (see [`Shared::start_compaction`]).
    Running { covers: u64, wait_at: u64 },
    /// The snapshot covering up to `covers` (`snapshot_len` bytes) is durable; the journal
    /// still holds the records it covers.
    Installed { covers: u64, snapshot_len: u64 },
}

/// Clears `compaction_alive` when the compaction thread ends.
struct CompactionAlive(Arc<Shared>);

impl Drop for CompactionAlive {
    fn drop(&mut self) {
        lock(&self.0.state).compaction_alive = false;
        self.0.settled.notify_all();
    }
}

/// What the leader does about compaction after writing a batch.
#[derive(Debug, Clone, Copy)]
enum CompactionStep {
    Start,
    WaitAndRewrite,
    Rewrite,
}

#[derive(Debug, Clone)]
struct Failure {
    failed_from: u64,
    path: PathBuf,
    kind: std::io::ErrorKind,
    message: String,
    sync: bool,
}

impl Failure {
    fn to_error(&self) -> Error {
        let source = std::io::Error::new(self.kind, self.message.clone());
        if self.sync {
            Error::SyncFailed {
                path: self.path.clone(),
                source,
            }
        } else {
            Error::Io {
                op: "append",
                path: self.path.clone(),
                source,
            }
        }
    }
}

/// Everything the writer and its leader tasks share.
struct Shared {
    run_id: RunId,
    dir: PathBuf,
    store: Arc<Store>,
    config: WriterConfig,
    /// Whether the journal keeps zeroed space ahead of its end, so that a synced append
    /// overwrites in place and its fdatasync need not commit a new file size. Off without
    /// syncs (`Durability::None`), where the extra zeros would buy nothing.
    preallocate: bool,
    journal: Mutex<JournalFile>,
    state: Mutex<WriterState>,
    /// Signalled (with `state`) when `company_wanted` appends are buffered.
    company: Condvar,
    /// Signalled (with `state`) when leader work or a compaction thread ends.
    settled: Condvar,
    /// The queue as of the latest compaction snapshot, kept so the next compaction applies
    /// only newer records. `None` until the first compaction, and after a snapshot the
    /// caller installed (which the adapter does not parse back). Locked by the compaction
    /// thread while it works.
    shadow: Mutex<Option<Shadow>>,
    /// The compaction thread, until someone joins it: a new compaction, a caller's snapshot
    /// install, the journal rewrite and the writer's drop (the thread writes files, so it
    /// must end before the run's lock is released).
    compactor: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Bumped whenever a batch completes or leadership is released.
    progress: watch::Sender<u64>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileCheckpointer")
            .field("run_id", &self.run_id)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The writer of one run in a file store. Holds the run's lock until dropped.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{CheckpointerFactory, Error, RunId, RunMeta};
/// use cairn_checkpoint_file::FileFactory;
/// use cairn_queue::{Event, Timestamp};
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let root = tempfile::tempdir()?;
/// let factory = FileFactory::builder(root.path()).build()?;
/// let id = RunId::new("r1")?;
/// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
/// let event = Event::PhaseStarted { index: 0, name: "fetch".into() };
/// run.append(std::slice::from_ref(&event)).await?;
/// // The lock is across processes; a clone of the factory stands in for another one.
/// let other = factory.clone();
/// assert!(matches!(other.open(&id).await, Err(Error::Locked { .. })));
/// drop(run);
/// let opened = other.open(&id).await?.expect("the run exists");
/// assert_eq!(opened.recovered.events, vec![event]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// # Cancel safety
///
/// Dropping an `append` future after its records were buffered does not withdraw them:
/// the group-commit leader still writes and syncs them, they just are not acknowledged.
/// Dropping `install_snapshot` or `load` likewise lets the blocking work finish. Dropping
/// the writer waits for such leftover work once it has started (and up to 5 s for it to
/// start; work that starts later does nothing), and for a compaction under way, so nothing
/// writes the run's files after its lock is released and the next opener never races it.
/// That wait blocks the dropping thread. Dropping `audit`, `complete` or `fail` lets the
/// blocking work finish too; it holds the run's lock until then, so the lock outlives the
/// writer by that long.
#[derive(Debug)]
pub struct FileCheckpointer {
    shared: Arc<Shared>,
    /// The run's one-writer lock, held by the writer itself (not by leader tasks) so that
    /// dropping the writer releases it at once, unless an `audit`, `complete` or `fail`
    /// is still writing: their blocking work holds a clone until it ends, because it
    /// writes the run's files whether or not its future is still awaited.
    lock: Arc<dyn FsFile>,
}

impl Drop for FileCheckpointer {
    fn drop(&mut self) {
        let shared = &self.shared;
        // A leader only outlives its appends when an append (or install, or load) future was
        // cancelled. Wait for leader work that has started, however long it takes: it may
        // write, and the lock is released when this returns. Work that panics gives
        // leadership up as it unwinds (its `Leadership` claim poisons the writer), so the wait
        // ends then too. A leader task not started yet gets a moment to start; one dropped
        // unstarted by a runtime shutdown gives leadership up the same way, and `closed`
        // makes one that starts after this wait do nothing.
        let give_up = Instant::now() + Duration::from_secs(5);
        let mut state = lock(&shared.state);
        state.dropping = true;
        shared.company.notify_all();
        loop {
            if state.leader_running {
                state = wait(&shared.settled, state, Duration::from_millis(10));
            } else if state.leader && Instant::now() < give_up {
                state = wait(&shared.settled, state, Duration::from_micros(50));
            } else {
                break;
            }
        }
        state.closed = true;
        let idle = !state.leader;
        drop(state);
        // A compaction still writing its snapshot must finish before the lock goes: the next
        // opener must not see `queue.json` replaced under it. What it leaves (a snapshot
        // covering a prefix of the journal) is a state every open accepts.
        shared.join_compaction();
        // A snapshot installed after the last append leaves the records it covers in the
        // journal, for the next open to read and skip. Drop them now; either journal is a
        // state every open accepts, so a failure here changes nothing.
        let rewrite = {
            let state = lock(&shared.state);
            idle && matches!(state.compaction, Compaction::Installed { .. })
                && state.failure.is_none()
        };
        if rewrite {
            shared.rewrite_journal();
        }
    }
}

/// Waits on `condvar` for at most `timeout`.
fn wait<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    match condvar.wait_timeout(guard, timeout) {
        Ok((guard, _)) => guard,
        Err(poisoned) => poisoned.into_inner().0,
    }
}

/// Waits on `condvar` until notified (or woken spuriously: callers loop on their condition).
fn wait_untimed<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar
        .wait(guard)
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Decodes one record's event.
fn decode_event(payload: &[u8]) -> Result<Event> {
    serde_json::from_slice(payload).map_err(|err| Error::Encoding {
        what: "journal event",
        detail: err.to_string(),
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these mutexes leaves plain data behind; keep going.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| Error::Backend {
            backend: "file",
            source: Box::new(err),
        })?
}

/// Runs leader work `f` on the blocking pool, the task holding `leadership` until it ends.
/// `f` gives leadership up itself when it ends normally. If it panics, dropping the claim
/// poisons the writer and gives leadership up (see [`Leadership`]), and the caller gets the
/// error that poisoned the writer, as the appends waiting on that leader do.
async fn lead_blocking<T: Send + 'static>(
    leadership: Leadership,
    f: impl FnOnce(&Arc<Shared>) -> Result<T> + Send + 'static,
) -> Result<T> {
    let shared = Arc::clone(&leadership.shared);
    let outcome = tokio::task::spawn_blocking(move || {
        let leadership = leadership;
        f(&leadership.shared)
    })
    .await;
    outcome.unwrap_or_else(|err| {
        Err(shared.failure_error().unwrap_or_else(|| Error::Backend {
            backend: "file",
            source: Box::new(err),
        }))
    })
}

impl FileCheckpointer {
    pub(crate) fn new(
        store: Arc<Store>,
        run_id: RunId,
        config: WriterConfig,
        lock_file: Box<dyn FsFile>,
        journal: JournalFile,
        state: Position,
    ) -> FileCheckpointer {
        let dir = store.run_dir(&run_id);
        let (progress, _) = watch::channel(0);
        FileCheckpointer {
            shared: Arc::new(Shared {
                run_id,
                dir,
                store,
                preallocate: config.durability != Durability::None,
                config,
                journal: Mutex::new(journal),
                company: Condvar::new(),
                settled: Condvar::new(),
                shadow: Mutex::new(None),
                compactor: Mutex::new(None),
                state: Mutex::new(WriterState::new(&state)),
                progress,
            }),
            lock: Arc::from(lock_file),
        }
    }

    /// Waits until this writer owns the journal exclusively (no leader active), flushing
    /// nothing itself. The caller must move the claim into its blocking work (see
    /// `lead_blocking`), which releases with `release_leadership`.
    async fn acquire_leadership(&self) -> Result<Leadership> {
        let shared = &self.shared;
        let mut progress = shared.progress.subscribe();
        loop {
            {
                let mut state = lock(&shared.state);
                if state.failure.is_some() {
                    return Err(Error::Poisoned {
                        run_id: shared.run_id.clone(),
                    });
                }
                if !state.leader {
                    return Ok(shared.claim_leadership(&mut state));
                }
            }
            if progress.changed().await.is_err() {
                return Err(Error::Poisoned {
                    run_id: shared.run_id.clone(),
                });
            }
        }
    }
}

impl Shared {
    /// Leader loop, on the blocking pool: flush batches until the buffer is empty. Under
    /// group commit each batch first waits for company.
    fn lead(self: &Arc<Self>, group_delay: Option<Duration>) {
        if !self.start_leader_work() {
            return;
        }
        loop {
            if let Some(delay) = group_delay {
                self.wait_for_company(delay);
            }
            if !self.flush_one_batch() {
                break;
            }
        }
    }

    /// Marks this leader's work as started, unless the writer was dropped meanwhile: then
    /// it gives leadership up and returns `false` (nothing may be written any more).
    fn start_leader_work(&self) -> bool {
        let mut state = lock(&self.state);
        if state.closed {
            state.leader = false;
            drop(state);
            self.settled.notify_all();
            self.progress.send_modify(|n| *n += 1);
            return false;
        }
        state.leader_running = true;
        true
    }

    /// Waits up to `delay` for other appends to join the buffered batch, and no longer than
    /// it takes for `company_size` appends to be buffered. Returns at once when nothing is
    /// buffered (the leader is about to step down) or the company is already there, and
    /// stops waiting when the writer is being dropped. A `delay` too large to add to the
    /// clock (`Duration::MAX`) has no deadline: the wait ends only by company or the drop.
    fn wait_for_company(&self, delay: Duration) {
        let deadline = Instant::now().checked_add(delay);
        let mut state = lock(&self.state);
        let wanted = state.company_size.max(1);
        if state.buffered_appends == 0 || state.buffered_appends >= wanted {
            return;
        }
        state.company_wanted = Some(wanted);
        while state.buffered_appends < wanted && state.failure.is_none() && !state.dropping {
            match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    state = wait(&self.company, state, deadline - now);
                }
                None => state = wait_untimed(&self.company, state),
            }
        }
        state.company_wanted = None;
        if state.buffered_appends < wanted {
            // Fewer callers than before: expect only those who came.
            state.company_size = state.buffered_appends;
        }
    }

    /// Writes and syncs the buffered batch. Returns whether the leader should go on
    /// (`false` once leadership was released). Compaction work that belongs on the leader
    /// (starting it, rewriting the journal once its snapshot is installed, waiting for it
    /// when the journal has doubled meanwhile) happens before the batch is published, and
    /// leadership is released in the same critical section as the last publication, so once
    /// an append returns no leader touches the files for it.
    fn flush_one_batch(self: &Arc<Self>) -> bool {
        let (mut bytes, kept, records, batch, last_seq, keep_body) = {
            let mut state = lock(&self.state);
            if state.buffer.is_empty() || state.failure.is_some() {
                state.step_down();
                drop(state);
                self.settled.notify_all();
                self.progress.send_modify(|n| *n += 1);
                return false;
            }
            let batch = state.open_batch;
            state.open_batch += 1;
            let records = std::mem::take(&mut state.buffered_records);
            let appends = std::mem::take(&mut state.buffered_appends);
            state.company_size = state.company_size.max(appends);
            let last_seq = state.next_seq - 1;
            let kept = std::mem::take(&mut state.buffered_kept);
            // Only this leader starts a compaction (after its write), so a batch taken while
            // one is under way is written after the snapshot's last record.
            let keep_body = state.compaction != Compaction::Idle;
            (
                std::mem::take(&mut state.buffer),
                kept,
                records,
                batch,
                last_seq,
                keep_body,
            )
        };
        let outcome = self.write_batch(&mut bytes);
        let mut state = lock(&self.state);
        match outcome {
            Ok(written) => {
                state.written_seq = last_seq;
                state.journal_len += written;
                state.records_after_snapshot += records;
                let body = &bytes[journal::BATCH_HEADER_LEN..];
                if keep_body {
                    state.tail_batches.push(body.len());
                    state.tail.extend_from_slice(body);
                }
                if !state.compaction_off {
                    state.written.extend(kept);
                }
                let step = match state.compaction {
                    // A poisoned writer touches no file any more.
                    _ if state.failure.is_some() => None,
                    Compaction::Idle
                        if !state.compaction_off
                            && (state.records_after_snapshot
                                >= self.config.compact_after_records
                                || state.journal_len >= self.config.compact_after_bytes)
                            && state.journal_len
                                >= state.snapshot_len / crate::COMPACT_SNAPSHOT_DIVISOR =>
                    {
                        Some(CompactionStep::Start)
                    }
                    // Compaction is slower than the appends: wait for it rather than let the
                    // journal grow without bound.
                    Compaction::Running { wait_at, .. } if state.journal_len >= wait_at => {
                        Some(CompactionStep::WaitAndRewrite)
                    }
                    Compaction::Installed { .. } => Some(CompactionStep::Rewrite),
                    _ => None,
                };
                if let Some(step) = step {
                    drop(state);
                    match step {
                        CompactionStep::Start => self.start_compaction(),
                        CompactionStep::WaitAndRewrite => {
                            self.join_compaction();
                            self.rewrite_journal();
                        }
                        CompactionStep::Rewrite => self.rewrite_journal(),
                    }
                    state = lock(&self.state);
                }
                state.durable_batch = batch;
                let more = !state.buffer.is_empty() && state.failure.is_none();
                if !more {
                    state.step_down();
                }
                drop(state);
                self.settled.notify_all();
                self.progress.send_modify(|n| *n += 1);
                more
            }
            Err(failure) => {
                state.failure = Some(Failure {
                    failed_from: batch,
                    ..failure
                });
                state.step_down();
                drop(state);
                self.settled.notify_all();
                self.progress.send_modify(|n| *n += 1);
                false
            }
        }
    }

    /// Frames `buffer` (header room, then records) as one batch at the journal's end, writes
    /// it with one write, then one fdatasync unless durability is `None`. Returns the bytes
    /// the batch takes in the journal. The caller is the one leader, and the journal mutex
    /// is held from the write until the fdatasync returned, so no second batch is ever
    /// written while one is unacknowledged.
    ///
    /// When the batch does not fit in the preallocated zeros, the file first grows by the
    /// next preallocation step's zeros, in a write of its own (see [`grow`]), and the batch
    /// is then written over them. On a full disk it is that growth which fails, before any
    /// byte of the batch is written. The one fdatasync after the batch, which must commit a
    /// new file size anyway, also makes the new zeros durable; the appends after it
    /// overwrite those zeros and their fdatasyncs flush data only.
    ///
    /// A failed write of the batch is undone as far as the file allows (see
    /// [`Shared::unwrite_batch`]) before the failure is returned: nothing acknowledged the
    /// batch, and the next open must not replay it. A failed fdatasync is not undone: the
    /// kernel may have dropped the pages it failed to write, so nothing it reports after
    /// that is trusted, and the batch stays the one possibly unsynced last batch that
    /// recovery expects.
    fn write_batch(&self, buffer: &mut [u8]) -> Result<u64, Failure> {
        let path = self.dir.join(JOURNAL_FILE);
        let failure = |err: std::io::Error, sync: bool| Failure {
            failed_from: 0,
            path: path.clone(),
            kind: err.kind(),
            message: err.to_string(),
            sync,
        };
        let mut journal = lock(&self.journal);
        let at = journal.end;
        let header = journal::batch_header(at, &buffer[journal::BATCH_HEADER_LEN..]);
        buffer[..journal::BATCH_HEADER_LEN].copy_from_slice(&header);
        let written = buffer.len() as u64;
        let end = at + written;
        if journal.positioned && self.preallocate && end > journal.allocated {
            grow(&mut journal, end).map_err(|e| failure(e, false))?;
        }
        let wrote = if journal.positioned {
            journal.file.write_at(at, buffer)
        } else {
            journal.file.write_all(buffer)
        };
        if let Err(err) = wrote {
            let mut failed = failure(err, false);
            // The write's error stays the error; a failed undo only adds to its message.
            if let Err(undo) = self.unwrite_batch(&mut journal, at, end) {
                failed.message = format!("{}; {undo}", failed.message);
            }
            return Err(failed);
        }
        journal.allocated = journal.allocated.max(end);
        journal.end = end;
        if self.config.durability != Durability::None {
            journal.file.sync_data().map_err(|e| failure(e, true))?;
        }
        Ok(written)
    }

    /// After a failed write of the batch at `at..end`: makes the batch unreadable again, as
    /// far as the file allows. No caller was told it is durable and the writer ends
    /// poisoned, but the bytes that landed would otherwise be read back by the next open, as
    /// a good batch (say, the `Started` of a task whose body never ran) or as a torn one to
    /// cut and audit.
    ///
    /// It cuts the file back to `at` first: that needs no new space on a full disk, and it
    /// leaves the journal as `open` leaves it after cutting a torn tail (every byte before
    /// `at` is acknowledged, none after it). If the cut fails, a positioned journal gets the
    /// batch's extent overwritten with zeros instead: only zeros follow the extent (the
    /// preallocated space, or the file's end), so the journal then ends at `at`. Either is
    /// then made durable with one fdatasync, so a power cut does not bring the batch back.
    /// Returns what went wrong, for the append's error message.
    fn unwrite_batch(&self, journal: &mut JournalFile, at: u64, end: u64) -> Result<(), String> {
        match journal.file.set_len(at) {
            Ok(()) => journal.allocated = at,
            Err(cut) if journal.positioned => {
                let zeros = vec![0u8; (end - at) as usize];
                journal.file.write_at(at, &zeros).map_err(|zero| {
                    format!(
                        "the unacknowledged batch could be neither cut ({cut}) nor zeroed \
                         ({zero}), so the next open may read it"
                    )
                })?;
                journal.allocated = journal.allocated.max(end);
            }
            Err(cut) => {
                return Err(format!(
                    "the unacknowledged batch could not be cut ({cut}), so the next open may \
                     read it"
                ));
            }
        }
        if self.config.durability != Durability::None {
            journal.file.sync_data().map_err(|err| {
                format!("the cut of the unacknowledged batch may not be durable ({err})")
            })?;
        }
        Ok(())
    }

    /// Starts a compaction covering every record written so far, on a thread of its own.
    /// Runs as leader, right after a batch was written.
    fn start_compaction(self: &Arc<Self>) {
        // A finished compaction's thread may not have been joined yet.
        self.join_compaction();
        let (covers, target, known_events) = {
            let mut state = lock(&self.state);
            let events = std::mem::take(&mut state.written);
            let complete =
                state.events_known && events.len() as u64 == state.written_seq - state.covers_seq;
            // The leader waits for this compaction once the journal has doubled, or once it
            // has reached twice the length at which compaction starts (`compact_after_bytes`,
            // or a quarter of the snapshot if more), whichever comes first. Doubling alone
            // does not bound the journal: the journal rewritten after a wait keeps what was
            // appended while the compaction ran (at least what the journal held when it
            // started), the next compaction starts from that plus a batch, and so each
            // compaction the leader waits for would leave the next a longer journal. With
            // the cap the journal never holds more than twice the start length plus the one
            // batch that reached `wait_at`, which is rewritten before it is acknowledged.
            let start_len = self
                .config
                .compact_after_bytes
                .max(state.snapshot_len / crate::COMPACT_SNAPSHOT_DIVISOR);
            state.compaction = Compaction::Running {
                covers: state.written_seq,
                wait_at: state.journal_len.min(start_len).saturating_mul(2),
            };
            state.compaction_alive = true;
            state.tail.clear();
            state.tail_batches.clear();
            (
                state.covers_seq,
                state.written_seq,
                complete.then_some(events),
            )
        };
        let shared = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("cairn-compaction".to_owned())
            .spawn(move || {
                // Cleared however the thread ends, a panic included.
                let _alive = CompactionAlive(Arc::clone(&shared));
                shared.compact(covers, target, known_events);
            });
        match spawned {
            Ok(handle) => *lock(&self.compactor) = Some(handle),
            // No thread to be had: the journal just grows, as when it does not replay.
            Err(_) => {
                lock(&self.state).compaction_alive = false;
                self.stop_compacting();
            }
        }
    }

    /// The compaction thread: brings the kept queue up to record `target` and installs its
    /// snapshot as covering it. A journal that does not replay turns compaction off for this
    /// writer (state stays correct; the journal just grows); a failed sync poisons it.
    fn compact(&self, covers: u64, target: u64, known_events: Option<Vec<Kept>>) {
        let installed = self
            .replayed_queue(covers, target, known_events)
            .and_then(|shadow| match shadow.as_ref() {
                // The snapshot is encoded from the kept queue by reference: copying a large
                // queue's tasks first cost about a fifth of the compaction.
                Some(queue) => {
                    self.write_snapshot(target, &queue.snapshot(false), &queue.snapshot(true))
                }
                None => Err(Error::Backend {
                    backend: "file",
                    source: "compaction found no queue to snapshot".into(),
                }),
            });
        match installed {
            Ok(snapshot_len) => {
                let mut state = lock(&self.state);
                // A caller's snapshot install joins this thread first and then supersedes it.
                if matches!(state.compaction, Compaction::Running { covers, .. } if covers == target)
                {
                    state.compaction = Compaction::Installed {
                        covers: target,
                        snapshot_len,
                    };
                }
            }
            Err(err @ Error::SyncFailed { .. }) => {
                self.poison_with(&err);
                self.stop_compacting();
                self.progress.send_modify(|n| *n += 1);
            }
            Err(_) => self.stop_compacting(),
        }
    }

    /// Turns compaction off for this writer: the journal keeps every record from now on.
    fn stop_compacting(&self) {
        let mut state = lock(&self.state);
        state.compaction_off = true;
        state.compaction = Compaction::Idle;
        state.written = Vec::new();
        state.tail = Vec::new();
        state.tail_batches = Vec::new();
    }

    /// Waits for the compaction thread, if there is one. A thread that ended without saying
    /// how (a panic) leaves compaction off.
    fn join_compaction(&self) {
        let handle = lock(&self.compactor).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        // Someone else may hold the handle (a leader waiting for it): wait for the thread
        // to say it is done, however it got there.
        let mut state = lock(&self.state);
        while state.compaction_alive {
            state = wait(&self.settled, state, Duration::from_millis(10));
        }
        let running = matches!(state.compaction, Compaction::Running { .. });
        drop(state);
        if running {
            self.stop_compacting();
        }
    }

    /// Once compaction's snapshot is installed: replaces the journal with one holding only
    /// the batches written since (temp, fdatasync, rename, fsync dir) and appends to that
    /// from now on. Runs as leader. Until the rename the old journal stays whole, and after
    /// it the new one holds every record the snapshot does not, so a crash anywhere here
    /// loses nothing.
    fn rewrite_journal(&self) {
        let (covers, snapshot_len, tail, tail_batches) = {
            let mut state = lock(&self.state);
            let Compaction::Installed {
                covers,
                snapshot_len,
            } = state.compaction
            else {
                return;
            };
            (
                covers,
                snapshot_len,
                std::mem::take(&mut state.tail),
                std::mem::take(&mut state.tail_batches),
            )
        };
        // The thread is done; collect it.
        drop(lock(&self.compactor).take());
        let mut bodies = Vec::with_capacity(tail_batches.len());
        let mut at = 0;
        for len in tail_batches {
            bodies.push(&tail[at..at + len]);
            at += len;
        }
        let bytes = journal::journal_of_batches(bodies);
        let path = self.dir.join(JOURNAL_FILE);
        let mut journal = lock(&self.journal);
        let reopened = match self.store.write_atomic(&self.dir, JOURNAL_FILE, &bytes) {
            Ok(()) => self.store.open_journal(&path),
            Err(err @ Error::SyncFailed { .. }) => Err(err),
            // The rename did not happen: the old journal is whole and still ours. The
            // snapshot covers a prefix of it, which every open accepts.
            Err(_) => {
                drop(journal);
                self.stop_compacting();
                return;
            }
        };
        match reopened {
            Ok(file) => *journal = file,
            Err(err) => {
                // The handle held is no longer (or maybe no longer) the journal's file: no
                // append may go there.
                drop(journal);
                let (path, kind, message, sync) = match &err {
                    Error::SyncFailed { path, source } => {
                        (path.clone(), source.kind(), source.to_string(), true)
                    }
                    other => (
                        path.clone(),
                        std::io::ErrorKind::Other,
                        other.to_string(),
                        false,
                    ),
                };
                let mut state = lock(&self.state);
                if state.failure.is_none() {
                    state.failure = Some(Failure {
                        failed_from: state.open_batch,
                        path,
                        kind,
                        message,
                        sync,
                    });
                }
                drop(state);
                self.stop_compacting();
                return;
            }
        }
        drop(journal);
        let mut state = lock(&self.state);
        state.covers_seq = covers;
        state.snapshot_len = snapshot_len;
        state.journal_len = (bytes.len() - journal::FILE_HEADER_LEN) as u64;
        state.records_after_snapshot = state.written_seq - covers;
        // `written` has gathered exactly the records after the snapshot since the compaction
        // took the ones before.
        state.events_known = true;
        state.no_snapshot = false;
        state.compaction = Compaction::Idle;
    }

    /// Brings the kept queue (`shadow`) up to record `target` and returns it, locked and
    /// present. `covers` is the latest snapshot's last record. When this writer saw every
    /// record in between (`known_events`), it applies those events to the queue of the
    /// previous compaction (or, for a run without any snapshot, to a new queue), and reads
    /// nothing back. Otherwise it reuses
    /// that queue for what the journal holds after the snapshot, or rebuilds it from
    /// `queue.json` plus the journal, taking only records up to `target` (appends go on
    /// meanwhile).
    fn replayed_queue(
        &self,
        covers: u64,
        target: u64,
        known_events: Option<Vec<Kept>>,
    ) -> Result<MutexGuard<'_, Option<Shadow>>> {
        let store = &self.store;
        let dir = &self.dir;
        let refused = |refused| match refused {
            Refused::Queue(source) => Error::Replay {
                run_id: self.run_id.clone(),
                source,
            },
            Refused::Encoding(err) => Error::Encoding {
                what: "task inputs",
                detail: err.to_string(),
            },
        };
        let mut shadow = lock(&self.shadow);
        if let Some(events) = known_events {
            let no_snapshot = lock(&self.state).no_snapshot;
            let queue = match shadow.take() {
                Some(queue) => Some(queue),
                None if no_snapshot => Some(Shadow::new(self.config.queue_config.clone())),
                None => None,
            };
            if let Some(mut queue) = queue {
                for event in events {
                    // On failure the shadow is dropped (it was taken above), so a later
                    // compaction cannot start from a half-applied queue.
                    queue.apply_kept(event).map_err(refused)?;
                }
                *shadow = Some(queue);
                return Ok(shadow);
            }
        }
        let (mut queue, rebuild_snapshot) = match shadow.take() {
            Some(queue) => (Some(queue), None),
            None => match store.fs.read(&dir.join(QUEUE_FILE)) {
                Ok(bytes) => {
                    // Checked as `open` checks it, checksum included: compaction builds the
                    // next snapshot on this one.
                    let file = parse_queue_file(&self.run_id, &bytes)
                        .map_err(|problem| problem.unquarantined_error(&self.run_id))?;
                    (None, Some(file.snapshot))
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => (None, None),
                Err(err) => return Err(io_error("read", &dir.join(QUEUE_FILE))(err)),
            },
        };
        let path = dir.join(JOURNAL_FILE);
        let bytes = store.fs.read(&path).map_err(io_error("read", &path))?;
        let scan = journal::scan(&bytes);
        let mut events = Vec::with_capacity(scan.records.len());
        for record in scan
            .records
            .iter()
            .filter(|r| r.seq > covers && r.seq <= target)
        {
            events.push(decode_event(&bytes[record.payload.clone()])?);
        }
        if events.len() as u64 != target - covers {
            return Err(Error::Encoding {
                what: "journal event",
                detail: format!(
                    "the journal holds {} of the {} records after the snapshot",
                    events.len(),
                    target - covers
                ),
            });
        }
        let mut queue = match queue.take() {
            Some(queue) => queue,
            None => Shadow::from_snapshot(rebuild_snapshot, self.config.queue_config.clone())
                .map_err(refused)?,
        };
        for event in events {
            // On failure the shadow is dropped (it was taken above), so a later compaction
            // cannot start from a half-applied queue.
            queue.apply(event).map_err(refused)?;
        }
        *shadow = Some(queue);
        Ok(shadow)
    }

    /// Encodes `snapshot` as covering up to record `covers` and installs it as `queue.json`
    /// (temp, fdatasync, rename, fsync dir). Returns its length.
    /// `snapshot` is written as is, `pretty` for a pretty-printed `queue.json` (a small
    /// one); both serialize the same state.
    fn write_snapshot(
        &self,
        covers: u64,
        snapshot: &impl Serialize,
        pretty: &impl Serialize,
    ) -> Result<u64> {
        // A compaction runs beside the appends, so the writer may be poisoned while it
        // works: it is asked before the first write and again before the rename.
        self.refuse_if_poisoned()?;
        self.store
            .write_queue_file(&self.dir, &self.run_id, covers, snapshot, pretty, &|| {
                self.refuse_if_poisoned()
            })
    }

    /// `Poisoned` once a write or sync of this writer failed: work that writes asks it
    /// before each step that would change the run's files, so a poisoned writer changes
    /// nothing more, even from work that started before the failure.
    fn refuse_if_poisoned(&self) -> Result<()> {
        if lock(&self.state).failure.is_some() {
            return Err(Error::Poisoned {
                run_id: self.run_id.clone(),
            });
        }
        Ok(())
    }

    /// Installs `snapshot` as covering the records up to `covers`. The caller is leader,
    /// the buffer has been flushed (so every record up to `covers` is written) and no
    /// compaction is under way. Order: temp, fdatasync, rename, fsync dir, and only then
    /// truncate the journal (and sync it). The truncate keeps the file header, so the
    /// journal never holds a batch without a durable header before it.
    ///
    /// Records written after `covers` (appends sealed after the install was called, which
    /// the caller's snapshot does not reflect) must outlive the snapshot: then the journal
    /// is kept whole instead of truncated, and every open skips the records the snapshot
    /// covers, as it does after a compaction's snapshot.
    ///
    /// A snapshot already installed that covers more than `covers` (a compaction that ran
    /// while this install waited for leadership, or an install called later that ran first)
    /// is kept, and `snapshot` is not written: the journal may no longer hold the records
    /// between the two (the compaction's rewrite dropped them, or the later install truncated
    /// them), so putting the older snapshot back would lose them. The snapshot kept is the
    /// same journal replayed further, so it reflects every event `snapshot` does.
    fn install_locked(&self, covers: u64, snapshot: &impl Serialize) -> Result<()> {
        let (written_seq, installed) = {
            let mut state = lock(&self.state);
            if covers < state.covers_seq {
                // The records this install flushed are not in `written` (it dropped their
                // kept events), so the next compaction reads them back from the journal.
                state.written.clear();
                state.events_known = false;
                return Ok(());
            }
            (state.written_seq, state.covers_seq)
        };
        debug_assert!(
            installed <= covers && covers <= written_seq,
            "the flush wrote every covered record"
        );
        let snapshot_len = self.write_snapshot(covers, snapshot, snapshot)?;
        if covers < written_seq {
            let mut state = lock(&self.state);
            state.covers_seq = covers;
            state.snapshot_len = snapshot_len;
            state.records_after_snapshot = written_seq - covers;
            // The kept events no longer start at the snapshot: the next compaction reads
            // the records after it back from the journal.
            state.written.clear();
            state.events_known = false;
            state.no_snapshot = false;
            state.compaction = Compaction::Idle;
            state.tail.clear();
            state.tail_batches.clear();
            return Ok(());
        }
        {
            // The snapshot is in place: from here on it is what the journal's records
            // follow, even if the truncate below fails (the records it covers are then
            // skipped by every open, and by a compaction that rebuilds from disk).
            let mut state = lock(&self.state);
            state.covers_seq = covers;
            state.snapshot_len = snapshot_len;
            state.written.clear();
            state.events_known = true;
            state.no_snapshot = false;
            state.compaction = Compaction::Idle;
            state.tail.clear();
            state.tail_batches.clear();
        }
        let path = self.dir.join(JOURNAL_FILE);
        {
            let mut journal = lock(&self.journal);
            let header = journal::FILE_HEADER_LEN as u64;
            journal
                .file
                .set_len(header)
                .map_err(io_error("truncate", &path))?;
            journal.end = header;
            journal.allocated = header;
            journal.file.sync_data().map_err(sync_error(&path))?;
        }
        let mut state = lock(&self.state);
        state.journal_len = 0;
        state.records_after_snapshot = 0;
        Ok(())
    }

    fn release_leadership(&self) {
        lock(&self.state).step_down();
        self.settled.notify_all();
        self.progress.send_modify(|n| *n += 1);
    }

    /// Takes leadership (the caller saw `leader` unset, in this same critical section) and
    /// returns the claim the leader's blocking task must hold until its work ends.
    fn claim_leadership(self: &Arc<Self>, state: &mut WriterState) -> Leadership {
        state.leader = true;
        state.leader_term += 1;
        Leadership {
            shared: Arc::clone(self),
            term: state.leader_term,
        }
    }

    /// What dropping the claim of `term` does: nothing if that leadership was already given
    /// up (the work ended normally). Otherwise its work ended by a panic, or its task was
    /// dropped unstarted, while it still owned the journal: poison the writer as a failed
    /// fdatasync does, with every batch not yet published failed (their appends get
    /// `SyncFailed`: never acknowledged, never retried), then give leadership up and wake
    /// every waiter (appends, a snapshot install or load waiting to lead, the writer's drop),
    /// who all see the failure.
    fn abandon_leadership(&self, term: u64) {
        let mut state = lock(&self.state);
        if !state.leader || state.leader_term != term {
            return;
        }
        if state.failure.is_none() {
            let message = if std::thread::panicking() {
                "the group-commit leader panicked before its batch was known to be durable"
            } else {
                "the group-commit leader's task was dropped before it ran"
            };
            state.failure = Some(Failure {
                failed_from: state.durable_batch + 1,
                path: self.dir.join(JOURNAL_FILE),
                kind: std::io::ErrorKind::Other,
                message: message.to_owned(),
                sync: true,
            });
        }
        state.step_down();
        drop(state);
        self.settled.notify_all();
        self.progress.send_modify(|n| *n += 1);
    }

    /// The error that poisoned this writer, if one did.
    fn failure_error(&self) -> Option<Error> {
        lock(&self.state).failure.as_ref().map(Failure::to_error)
    }

    fn poison_with(&self, err: &Error) {
        if let Error::SyncFailed { path, source } = err {
            let mut state = lock(&self.state);
            if state.failure.is_none() {
                state.failure = Some(Failure {
                    failed_from: state.open_batch,
                    path: path.clone(),
                    kind: source.kind(),
                    message: source.to_string(),
                    sync: true,
                });
            }
        }
    }
}

#[async_trait]
impl Checkpointer for FileCheckpointer {
    fn run_id(&self) -> &RunId {
        &self.shared.run_id
    }

    async fn append(&self, events: &[Event]) -> Result<()> {
        if events.is_empty() {
            let state = lock(&self.shared.state);
            if state.failure.is_some() {
                return Err(Error::Poisoned {
                    run_id: self.shared.run_id.clone(),
                });
            }
            return Ok(());
        }
        // Serialize and checksum the events before taking the lock, straight into the batch
        // layout (room for the batch header, then each record's header and payload), so the
        // lock covers only sealing the record headers with their sequence numbers. Compaction's
        // copies of the events are made here too.
        let kept = events
            .iter()
            .map(Kept::of)
            .collect::<Result<Vec<Kept>, _>>()
            .map_err(|err| Error::Encoding {
                what: "task inputs",
                detail: err.to_string(),
            })?;
        let mut framed = vec![0u8; journal::BATCH_HEADER_LEN];
        let mut records: Vec<(usize, usize, u32)> = Vec::with_capacity(events.len());
        for event in events {
            let at = framed.len();
            framed.resize(at + journal::HEADER_LEN, 0);
            serde_json::to_writer(&mut framed, event).map_err(|err| Error::Encoding {
                what: "journal event",
                detail: err.to_string(),
            })?;
            let payload = &framed[at + journal::HEADER_LEN..];
            // A reader takes a record longer than `MAX_PAYLOAD_LEN` for damage: a larger event
            // would be acknowledged and then refused as corruption on load or open, so it is
            // refused before anything is written.
            if payload.len() > journal::MAX_PAYLOAD_LEN as usize {
                return Err(Error::Encoding {
                    what: "journal event",
                    detail: format!(
                        "an event of {} bytes is larger than a journal record can be ({} bytes); nothing was appended",
                        payload.len(),
                        journal::MAX_PAYLOAD_LEN
                    ),
                });
            }
            records.push((at, framed.len(), journal::payload_crc(payload)));
        }
        let shared = &self.shared;
        let mut progress = shared.progress.subscribe();
        let (ticket, leadership) = {
            let mut state = lock(&shared.state);
            if state.failure.is_some() {
                return Err(Error::Poisoned {
                    run_id: shared.run_id.clone(),
                });
            }
            for &(at, end, crc) in &records {
                let seq = state.next_seq;
                state.next_seq += 1;
                journal::seal(&mut framed[at..end], seq, crc);
            }
            if state.buffer.is_empty() {
                // The room left in front becomes the batch header, which the leader fills in.
                state.buffer = framed;
            } else {
                state
                    .buffer
                    .extend_from_slice(&framed[journal::BATCH_HEADER_LEN..]);
            }
            state.buffered_records += records.len() as u64;
            state.buffered_kept.extend(kept);
            state.buffered_appends += 1;
            if state.company_wanted == Some(state.buffered_appends) {
                self.shared.company.notify_one();
            }
            let leadership = if state.leader {
                None
            } else {
                Some(shared.claim_leadership(&mut state))
            };
            (state.open_batch, leadership)
        };
        if let Some(leadership) = leadership {
            let wait = match shared.config.durability {
                Durability::Group { max_delay } if !max_delay.is_zero() => Some(max_delay),
                _ => None,
            };
            // Detached on purpose: the leader finishes even if this future is dropped. The
            // task owns the claim, so however it ends (a panic, or dropped unstarted) the
            // leadership is given up.
            drop(tokio::task::spawn_blocking(move || leadership.lead(wait)));
        }
        loop {
            {
                let mut state = lock(&shared.state);
                if state.durable_batch >= ticket {
                    return Ok(());
                }
                if let Some(failure) = &state.failure {
                    return Err(if ticket >= failure.failed_from {
                        failure.to_error()
                    } else {
                        Error::Poisoned {
                            run_id: shared.run_id.clone(),
                        }
                    });
                }
                // The leader left before taking this ticket's batch: lead now.
                if !state.leader {
                    let leadership = shared.claim_leadership(&mut state);
                    drop(state);
                    drop(tokio::task::spawn_blocking(move || leadership.lead(None)));
                    continue;
                }
            }
            if progress.changed().await.is_err() {
                return Err(Error::Poisoned {
                    run_id: shared.run_id.clone(),
                });
            }
        }
    }

    async fn install_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        // The snapshot reflects the events appended before this call, so it covers the
        // records sealed so far and no later ones. Read before the first await: a record
        // sealed after it (another task's append, or the caller's next append after it
        // dropped this future) stays in the journal after the snapshot.
        let covers = lock(&self.shared.state).next_seq - 1;
        let leadership = self.acquire_leadership().await?;
        let snapshot = snapshot.clone();
        lead_blocking(leadership, move |shared| {
            if !shared.start_leader_work() {
                return Err(Error::Poisoned {
                    run_id: shared.run_id.clone(),
                });
            }
            let outcome = (|| {
                // A compaction under way would install an older snapshot after this one:
                // let it finish first (this install supersedes it). If its snapshot is
                // installed, bring the journal in line with it first, so that the batch
                // flushed below is never left out of a later rewrite.
                shared.join_compaction();
                shared.rewrite_journal();
                if lock(&shared.state).failure.is_some() {
                    return Err(Error::Poisoned {
                        run_id: shared.run_id.clone(),
                    });
                }
                // Flush what is buffered first: the records the snapshot covers must be
                // durable before it is, and any sealed after the call follow them in order.
                // The batch gets its number as it is taken, in one critical section: an append
                // buffered after it waits for a later batch, not for this one, which does not
                // hold its records.
                let taken = lock(&shared.state).take_batch();
                if let Some(TakenBatch {
                    mut bytes,
                    records,
                    last_seq,
                    batch,
                }) = taken
                {
                    let written = match shared.write_batch(&mut bytes) {
                        Ok(written) => written,
                        Err(failure) => {
                            let err = failure.to_error();
                            lock(&shared.state).failure = Some(Failure {
                                failed_from: batch,
                                ..failure
                            });
                            return Err(err);
                        }
                    };
                    let mut state = lock(&shared.state);
                    state.written_seq = last_seq;
                    state.durable_batch = batch;
                    state.journal_len += written;
                    state.records_after_snapshot += records;
                }
                // The adapter does not parse the caller's snapshot back; the next compaction
                // rebuilds its queue from disk.
                *lock(&shared.shadow) = None;
                let result = shared.install_locked(covers, &snapshot);
                if let Err(err) = &result {
                    shared.poison_with(err);
                }
                result
            })();
            shared.release_leadership();
            outcome
        })
        .await
    }

    async fn load(&self) -> Result<Recovered> {
        let leadership = self.acquire_leadership().await?;
        lead_blocking(leadership, move |shared| {
            if !shared.start_leader_work() {
                return Err(Error::Poisoned {
                    run_id: shared.run_id.clone(),
                });
            }
            // The rules of `peek` (a torn last batch left out and reported, damage before it
            // `Corruption`, records missing after the snapshot `Corruption`), so a reload
            // never takes a damaged journal for a shorter history. Leadership keeps every
            // batch and journal rewrite out meanwhile, and a snapshot a compaction thread
            // installs beside it covers a prefix of that journal, which every read accepts.
            let outcome = shared.store.read_unlocked(&shared.run_id, &shared.dir);
            shared.release_leadership();
            outcome
        })
        .await
    }

    async fn audit(&self, record: &AuditRecord) -> Result<()> {
        self.check_poisoned()?;
        let shared = Arc::clone(&self.shared);
        let record = record.clone();
        // Held until the line is written, even if this future is dropped and the writer
        // with it: no other writer may open the run while this work can still write.
        let held = Arc::clone(&self.lock);
        blocking(move || {
            let _held = held;
            let result = shared.store.append_audit_in(&shared.dir, &record);
            if let Err(err) = &result {
                shared.poison_with(err);
            }
            result
        })
        .await
    }

    async fn complete(&self) -> Result<RunMeta> {
        self.finish(RunStatus::Completed, None).await
    }

    async fn fail(&self, error: &RunError) -> Result<RunMeta> {
        self.finish(RunStatus::Failed, Some(error.clone())).await
    }
}

impl FileCheckpointer {
    /// `Poisoned` once a write or sync of this writer failed (any `SyncFailed` counts).
    fn check_poisoned(&self) -> Result<()> {
        if lock(&self.shared.state).failure.is_some() {
            return Err(Error::Poisoned {
                run_id: self.shared.run_id.clone(),
            });
        }
        Ok(())
    }

    async fn finish(&self, status: RunStatus, error: Option<RunError>) -> Result<RunMeta> {
        self.check_poisoned()?;
        let shared = Arc::clone(&self.shared);
        // As in `audit`: the status is written under the run's lock, however long the
        // future is awaited, so a writer that opens the run next never sees it change.
        let held = Arc::clone(&self.lock);
        blocking(move || {
            let _held = held;
            let result = shared.store.finish(&shared.run_id, status, error.as_ref());
            if let Err(err) = &result {
                shared.poison_with(err);
            }
            result
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh_state() -> WriterState {
        WriterState::new(&Position::fresh())
    }

    /// What `append` does under the state lock: buffer one sealed record and take the
    /// number of the batch the buffer will become as its ticket.
    fn buffer_one(state: &mut WriterState) -> u64 {
        if state.buffer.is_empty() {
            state.buffer = vec![0; journal::BATCH_HEADER_LEN];
        }
        state
            .buffer
            .extend_from_slice(&[1; journal::HEADER_LEN + 2]);
        state.buffered_records += 1;
        state.buffered_appends += 1;
        state.next_seq += 1;
        state.open_batch
    }

    #[test]
    fn an_append_after_an_install_took_the_buffer_waits_for_a_later_batch() {
        let mut state = fresh_state();
        let first = buffer_one(&mut state);
        let taken = state.take_batch().expect("one record is buffered");
        assert_eq!(taken.batch, first, "the taken batch holds the first append");
        assert_eq!((taken.records, taken.last_seq), (1, 1));
        // An append that comes between the take and the batch's write: the install's batch
        // does not hold it, so publishing that batch must not acknowledge it.
        let second = buffer_one(&mut state);
        assert!(
            second > taken.batch,
            "the second append's ticket {second} is the taken batch {}",
            taken.batch
        );
    }

    #[test]
    fn nothing_buffered_takes_no_batch_number() {
        let mut state = fresh_state();
        assert!(state.take_batch().is_none());
        assert_eq!(state.open_batch, 1);
    }
}
