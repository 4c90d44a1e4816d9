//! The port: `CheckpointerFactory` (runs) and `Checkpointer` (one run's journal).
//!
//! Contracts are written as MUST/SHOULD sentences; the conformance suite checks them.

use std::fmt::{self, Debug};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cairn_queue::{Event, Snapshot, Timestamp};

use crate::audit::AuditRecord;
use crate::error::Result;
use crate::meta::{Owner, RunError, RunFilter, RunId, RunMeta, RunStatus};

/// How durable an acknowledged append is. Chosen by the host when it builds a factory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `append` returns only after its records are fsynced (and, for a new file, its
    /// directory too). Survives power loss.
    Sync,
    /// Concurrent appends share one fsync. An append still returns only after its records
    /// are durable; it may wait up to `max_delay` plus one fsync for others to join.
    Group {
        /// The most an append waits for company before the shared fsync starts.
        max_delay: Duration,
    },
    /// OS buffers only: survives a process kill but NOT power loss or a kernel crash.
    /// Unsafe for anything that must not be lost.
    None,
}

/// A status compare-and-swap or a claim that lost: an expected conflict, not an error.
///
/// It reports what is stored now, so a losing claimer can say who won.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusConflict {
    /// The status the caller expected.
    pub expected: RunStatus,
    /// The status actually stored.
    pub current: RunStatus,
    /// The lease epoch a claim, or an epoch-checked swap
    /// ([`CheckpointerFactory::compare_and_swap_status_at`]), expected; `None` for a plain
    /// status swap.
    pub expected_epoch: Option<u64>,
    /// The lease epoch actually stored.
    pub current_epoch: u64,
    /// The owner actually stored: after a lost claim, the process whose claim won.
    pub current_owner: Option<Owner>,
    /// Set when a claim (or a swap to `Running`) that would otherwise have won was refused
    /// because a live writer holds the run's writer lock: who holds it, as `Error::Locked`
    /// names a holder. The run is that writer's; the stored lease is left as it is.
    pub held_by: Option<String>,
}

impl StatusConflict {
    /// Whether the run is another's now: the status was the expected one but another claim
    /// moved the lease epoch on (the run is `current_owner`'s), or a live writer holds the
    /// run's lock ([`StatusConflict::held_by_writer`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    /// let mut meta = RunMeta::new(RunId::new("r1")?, "wf", "scope", "", Timestamp(0));
    /// let stale = meta.claim(RunStatus::Running, 7, Timestamp(1))?.unwrap_err();
    /// assert!(stale.claimed_by_another());
    /// let moved = meta.claim(RunStatus::Paused, 1, Timestamp(1))?.unwrap_err();
    /// assert!(!moved.claimed_by_another());
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn claimed_by_another(&self) -> bool {
        self.held_by_writer()
            || (self.current == self.expected
                && self
                    .expected_epoch
                    .is_some_and(|expected| expected != self.current_epoch))
    }

    /// Whether the claim was refused because a live writer holds the run's writer lock
    /// (`held_by` names it), whatever the stored status and epoch say.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    /// let mut meta = RunMeta::new(RunId::new("r1")?, "wf", "scope", "", Timestamp(0));
    /// let held = meta
    ///     .claim_unless_held(RunStatus::Running, 1, Timestamp(1), Some("pid 7"))?
    ///     .unwrap_err();
    /// assert!(held.held_by_writer() && held.claimed_by_another());
    /// assert_eq!(meta.lease_epoch, 1);
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn held_by_writer(&self) -> bool {
        self.held_by.is_some()
    }
}

impl fmt::Display for StatusConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(holder) = &self.held_by {
            write!(f, "a live writer holds it ({holder})")
        } else if self.claimed_by_another() {
            write!(
                f,
                "it was claimed at lease epoch {} by {}, not at epoch {}",
                self.current_epoch,
                self.current_owner
                    .as_ref()
                    .map_or_else(|| "an unrecorded owner".to_owned(), ToString::to_string),
                self.expected_epoch.unwrap_or_default(),
            )
        } else {
            write!(f, "it is {}, not {}", self.current, self.expected)
        }
    }
}

/// A torn last journal record that `open` cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// Where the cut record started.
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes: u64,
}

/// A run's durable state as read back: the latest snapshot plus the events after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    /// The run's metadata.
    pub meta: RunMeta,
    /// The latest installed snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Every acknowledged event after that snapshot, in append order.
    pub events: Vec<Event>,
    /// Set when `open` cut a torn last record (also audited), or, from `peek`, when it found
    /// one that `open` would cut.
    pub torn_tail: Option<TornTail>,
}

impl Recovered {
    /// Rebuilds the run's queue: the snapshot, then every event after it
    /// (`cairn_queue::Queue::replay`). This is the task table a host shows (statuses,
    /// attempts, errors, handoffs), read from [`CheckpointerFactory::peek`] without taking
    /// the writer lock, or from [`CheckpointerFactory::open`].
    ///
    /// `config` gives the rebuilt queue its bounds. Replay checks structure, not bounds
    /// (`Queue::apply`), so any `config` rebuilds the same state; the bounds matter only to
    /// what is enqueued into the queue afterwards. `QueueConfig::default()` is right for
    /// reading.
    ///
    /// # Errors
    ///
    /// `Error::Replay` (with the run's id) when the snapshot or an event does not fit:
    /// another snapshot format version, an inconsistent snapshot, an event that does not
    /// apply to the state before it.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, Status, TaskSpec, Timestamp};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cairn_checkpoint::Error> {
    /// let store = MemoryFactory::new();
    /// let run_id = RunId::new("r1")?;
    /// let run = store.begin(RunMeta::new(run_id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// let mut queue = Queue::new(QueueConfig::default());
    /// let id = queue.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(1)).unwrap().id;
    /// run.append(&queue.take_events()).await?;
    /// drop(run); // the writer is gone, as after its process ended
    ///
    /// let recovered = store.peek(&run_id).await?.expect("the run exists");
    /// let rebuilt = recovered.queue(&QueueConfig::default())?;
    /// assert_eq!(rebuilt.get(id).map(|task| task.status), Some(Status::Pending));
    /// # Ok(()) }
    /// ```
    pub fn queue(&self, config: &cairn_queue::QueueConfig) -> Result<cairn_queue::Queue> {
        cairn_queue::Queue::replay(self.snapshot.clone(), &self.events, config.clone()).map_err(
            |source| crate::Error::Replay {
                run_id: self.meta.run_id.clone(),
                source,
            },
        )
    }
}

/// An opened run: its writer handle and the recovered state.
#[derive(Debug)]
pub struct Opened {
    /// The run's writer. Holds the one-writer lock until dropped.
    pub checkpointer: Box<dyn Checkpointer>,
    /// What was read back.
    pub recovered: Recovered,
}

/// Where a quarantined run's state went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// The run.
    pub run_id: RunId,
    /// A backend-specific location (a directory, a sled key prefix...).
    pub location: String,
}

/// A run whose state was moved to quarantine, as [`CheckpointerFactory::list_quarantined`]
/// reports it.
///
/// Its progress is lost to cairn: nothing can open or resume it, and a fresh run of its
/// workflow would run its done tasks again. The resume policy (`cairn-runs`) therefore asks a
/// person before it starts fresh past one that was not finished.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuarantinedRun {
    /// The id the run was stored under.
    pub run_id: RunId,
    /// Where its state went (as [`Quarantined::location`]).
    pub location: String,
    /// Why, as the `Quarantined` audit record says (empty when that record cannot be read).
    pub reason: String,
    /// When it was quarantined (`Timestamp(0)` when that record cannot be read).
    pub at: Timestamp,
    /// The metadata it had, when it still parses, even if it is of another format version or
    /// names another run (`meta.run_id` then differs from `run_id`): its workflow and scope
    /// say whose progress was lost. `None` when it cannot be parsed at all, or there is none
    /// (so its workflow and scope are unknown).
    pub meta: Option<RunMeta>,
}

impl QuarantinedRun {
    /// A listing entry. Adapters build it; `reason` and `at` come from the run's newest
    /// `Quarantined` audit record (see [`QuarantinedRun::from_audit`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{QuarantinedRun, RunId};
    /// use cairn_queue::Timestamp;
    /// let entry = QuarantinedRun::new(RunId::new("r1")?, "/s/quarantine/r1-5", "bad", Timestamp(5), None);
    /// assert_eq!(entry.location, "/s/quarantine/r1-5");
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn new(
        run_id: RunId,
        location: impl Into<String>,
        reason: impl Into<String>,
        at: Timestamp,
        meta: Option<RunMeta>,
    ) -> QuarantinedRun {
        QuarantinedRun {
            run_id,
            location: location.into(),
            reason: reason.into(),
            at,
            meta,
        }
    }

    /// A listing entry whose reason and time come from `audit`, the quarantined run's audit
    /// log: its newest `Quarantined` record (`detail.reason` when present, else the
    /// message). `meta` is kept as given (see [`QuarantinedRun::meta`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{AuditAction, AuditRecord, QuarantinedRun, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    /// let id = RunId::new("r1")?;
    /// let record = AuditRecord::new(Timestamp(9), id.clone(), AuditAction::Quarantined, "run r1 quarantined: torn")
    ///     .with_detail(serde_json::json!({ "reason": "torn" }));
    /// let foreign = RunMeta::new(RunId::new("r2")?, "wf", "scope", "", Timestamp(1));
    /// let entry = QuarantinedRun::from_audit(id, "here", &[record], Some(foreign));
    /// assert_eq!((entry.reason.as_str(), entry.at), ("torn", Timestamp(9)));
    /// assert_eq!(entry.meta.map(|m| m.workflow).as_deref(), Some("wf"));
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn from_audit(
        run_id: RunId,
        location: impl Into<String>,
        audit: &[AuditRecord],
        meta: Option<RunMeta>,
    ) -> QuarantinedRun {
        let record = audit
            .iter()
            .rev()
            .find(|record| record.action == crate::AuditAction::Quarantined);
        let reason = record.map_or_else(String::new, |record| {
            record.detail["reason"]
                .as_str()
                .map_or_else(|| record.message.clone(), str::to_owned)
        });
        let at = record.map_or(Timestamp(0), |record| record.at);
        QuarantinedRun::new(run_id, location, reason, at, meta)
    }
}

/// A run whose stored state a listing found bad but could not move to quarantine (the store
/// is read-only, or its user may not write there), as
/// [`CheckpointerFactory::left_in_place`] reports it. Its state stays where it is,
/// untouched, and it is not listed until it moves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeftInPlaceRun {
    /// The id the run is stored under.
    pub run_id: RunId,
    /// Where its state is (a path, or a key).
    pub at: String,
    /// What is wrong with it: why it should have moved.
    pub reason: String,
    /// Why it could not move.
    pub error: String,
}

impl LeftInPlaceRun {
    /// A report entry. Adapters build it.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{LeftInPlaceRun, RunId};
    /// let entry = LeftInPlaceRun::new(RunId::new("r1")?, "/s/runs/r1", "meta.json: bad", "read-only");
    /// assert_eq!(entry.at, "/s/runs/r1");
    /// # Ok::<(), cairn_checkpoint::Error>(())
    /// ```
    pub fn new(
        run_id: RunId,
        at: impl Into<String>,
        reason: impl Into<String>,
        error: impl Into<String>,
    ) -> LeftInPlaceRun {
        LeftInPlaceRun {
            run_id,
            at: at.into(),
            reason: reason.into(),
            error: error.into(),
        }
    }
}

/// Creates, finds and manages runs. Object-safe; hold it as `Arc<dyn CheckpointerFactory>`.
///
/// # Cancel safety
///
/// The future of any method here or on [`Checkpointer`] may be dropped before it resolves: a
/// `tokio::time::timeout` ran out, a `select!` branch lost, a task was aborted at shutdown. A
/// dropped call is not acknowledged, and its caller MUST treat its effect as unknown. An
/// adapter MUST leave the store as if the call had happened in full or not at all, and the
/// factory and writers usable; it MAY finish the call after the drop (on a blocking thread,
/// say); and a future dropped before its first poll MUST change nothing. Each method says
/// what more it promises. The conformance cases named `dropped_*` check these rules for
/// every adapter.
#[async_trait]
pub trait CheckpointerFactory: Send + Sync + Debug + 'static {
    /// Creates a run and returns its writer.
    ///
    /// MUST store `meta` durably before returning. MUST fail with `AlreadyExists` when the id
    /// exists (quarantined ids included). MUST take the run's one-writer lock.
    ///
    /// # Errors
    ///
    /// `AlreadyExists`, `Encoding` for metadata that cannot be serialized, and the adapter's
    /// I/O errors (`Io`, `SyncFailed`, `Backend`).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// assert_eq!(run.run_id(), &id);
    /// // The metadata is stored before `begin` returns, and the new writer holds the run.
    /// assert_eq!(factory.load_meta(&id).await?.map(|meta| meta.lease_epoch), Some(1));
    /// assert!(factory.is_held(&id).await?);
    /// // An id is begun once, even after its writer is gone.
    /// drop(run);
    /// let again = factory.begin(RunMeta::new(id, "wf", "scope", "", Timestamp(1))).await;
    /// assert!(matches!(again, Err(Error::AlreadyExists { .. })));
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// A dropped `begin` leaves the run begun (as a crash right after it would: `running`, no
    /// writer) or not begun at all. The lock it took is released once the adapter's work for it
    /// has ended, which can be a moment after the drop: until then `open` may answer `Locked`.
    async fn begin(&self, meta: RunMeta) -> Result<Box<dyn Checkpointer>>;

    /// Opens an existing run for writing and reads back its state.
    ///
    /// MUST return `Ok(None)` for an unknown run. MUST take the one-writer lock, or fail with
    /// `Locked` naming the holder. MUST cut a torn last record and audit the cut; MUST fail
    /// with `Corruption` for a bad record followed by good ones. MUST quarantine (and audit)
    /// state with a wrong format version, a foreign run id or unparseable content, then fail
    /// with `VersionMismatch`, `ForeignRun` or `Unreadable`. MUST NOT change the run's status.
    ///
    /// # Errors
    ///
    /// `Locked`, `Corruption`, `VersionMismatch`, `ForeignRun`, `Unreadable`, `Replay` for
    /// records that decode but do not replay, and the adapter's I/O errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// // One writer at a time: while `run` lives, `open` is refused.
    /// assert!(matches!(factory.open(&id).await, Err(Error::Locked { .. })));
    /// drop(run);
    /// let opened = factory.open(&id).await?.expect("the run exists");
    /// assert_eq!(opened.checkpointer.run_id(), &id);
    /// // Opening is not claiming: the stored lease epoch is unchanged.
    /// assert_eq!(opened.recovered.meta.lease_epoch, 1);
    /// assert!(factory.open(&RunId::new("unknown")?).await?.is_none());
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// A dropped `open` holds the lock only while the adapter's work for it runs. What it
    /// writes (a cut torn tail, a quarantine) is done whole, as `open` does it.
    async fn open(&self, run_id: &RunId) -> Result<Option<Opened>>;

    /// Reads a run's metadata without taking its lock. `Ok(None)` for an unknown run.
    ///
    /// # Errors
    ///
    /// A bad-state error (`Error::is_bad_state`) for metadata that cannot be read, is of
    /// another format version or names another run, and the adapter's I/O errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory};
    /// use cairn_checkpoint::{RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let _run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// // No lock is taken, so the metadata reads even while a writer holds the run.
    /// let meta = factory.load_meta(&id).await?.expect("the run exists");
    /// assert_eq!((meta.workflow.as_str(), meta.status), ("wf", RunStatus::Running));
    /// assert!(factory.load_meta(&RunId::new("unknown")?).await?.is_none());
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    async fn load_meta(&self, run_id: &RunId) -> Result<Option<RunMeta>>;

    /// Runs matching `filter`, oldest first (by `created_at`, then id). Quarantined runs are
    /// not listed. A run whose metadata is unreadable, of another format version or names
    /// another run SHOULD be quarantined (and audited) when `list` meets it and no writer
    /// holds it, since no filter can ever match it.
    ///
    /// Such a run that cannot be moved (the store is read-only, or may not be written by
    /// this user) SHOULD NOT fail the listing: it is left where it is, not listed, reported by
    /// [`CheckpointerFactory::left_in_place`], and SHOULD be audited as `LeftInPlace` (once
    /// per factory; a failure to write that record does not fail the listing either).
    ///
    /// # Errors
    ///
    /// The adapter's I/O errors while reading the store; a run that is bad is quarantined or
    /// left in place, never an error of the listing.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory};
    /// use cairn_checkpoint::{RunFilter, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let runs = [("b", "nightly", 2), ("a", "nightly", 2), ("c", "adhoc", 1)];
    /// for (id, workflow, created) in runs {
    ///     let meta = RunMeta::new(RunId::new(id)?, workflow, "scope", "", Timestamp(created));
    ///     factory.begin(meta).await?;
    /// }
    /// // Oldest first; runs begun in the same millisecond go by id.
    /// let all = factory.list(&RunFilter::default()).await?;
    /// let ids: Vec<&str> = all.iter().map(|meta| meta.run_id.as_str()).collect();
    /// assert_eq!(ids, ["c", "a", "b"]);
    /// let nightly = RunFilter {
    ///     workflow: Some("nightly".to_owned()),
    ///     ..RunFilter::default()
    /// };
    /// assert_eq!(factory.list(&nightly).await?.len(), 2);
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunMeta>>;

    /// The runs the latest [`CheckpointerFactory::list`] through this factory found bad but
    /// could not quarantine, by id: they stay where they are, and are not listed.
    ///
    /// An adapter whose listings never leave bad state in place keeps this default, which is
    /// empty. It MUST NOT change anything.
    ///
    /// # Errors
    ///
    /// None from the default; an adapter's own I/O errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory};
    /// use cairn_checkpoint::{RunFilter, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// // Metadata stored under `r1` that names `r2` can never match a filter.
    /// let id = RunId::new("r1")?;
    /// factory.plant_meta(&id, RunMeta::new(RunId::new("r2")?, "wf", "scope", "", Timestamp(0)));
    /// assert!(factory.list(&RunFilter::default()).await?.is_empty());
    /// // The memory store can always move it aside, so it never leaves any in place.
    /// assert!(factory.left_in_place().await?.is_empty());
    /// assert_eq!(factory.list_quarantined().await?.len(), 1);
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    async fn left_in_place(&self) -> Result<Vec<LeftInPlaceRun>> {
        Ok(Vec::new())
    }

    /// Reads back a run's state as [`CheckpointerFactory::open`] would, to look at it only.
    ///
    /// MUST return `Ok(None)` for an unknown run, and MUST fail with `Locked` while a writer
    /// holds the run (a snapshot and journal read beside a live writer may not belong
    /// together). An adapter SHOULD read without writing anything, so that a read-only store
    /// can be looked at: it then neither cuts a torn last record (it reports it in
    /// `torn_tail` as what `open` would cut) nor quarantines bad state (it fails with
    /// `Corruption` naming it, and leaves it for `open` or `list`). While it reads, a writer
    /// may be refused with `Locked`.
    ///
    /// The default opens the run and drops the writer at once, which writes what `open`
    /// writes.
    ///
    /// # Errors
    ///
    /// `Locked`, a bad-state error, and the adapter's I/O errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// let mut queue = Queue::new(QueueConfig::default());
    /// queue.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(1))?;
    /// run.append(&queue.take_events()).await?;
    /// // What a live writer has on disk may not hang together yet, so `peek` refuses it.
    /// assert!(matches!(factory.peek(&id).await, Err(Error::Locked { .. })));
    /// drop(run);
    /// let seen = factory.peek(&id).await?.expect("the run exists");
    /// assert_eq!(seen.events.len(), 1);
    /// // Looking keeps no lock: the run opens afterwards.
    /// assert!(factory.open(&id).await?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    async fn peek(&self, run_id: &RunId) -> Result<Option<Recovered>> {
        Ok(self.open(run_id).await?.map(|opened| opened.recovered))
    }

    /// Reads a run's state even while a writer drives it: for a live view (`cairn show` of a
    /// running run), never for a decision, since the writer moves on at once.
    ///
    /// When no writer holds the run it MUST answer as [`CheckpointerFactory::peek`] does. When
    /// a writer holds it, an adapter that can read beside one MUST NOT take, wait for or
    /// disturb the writer's hold, MUST write nothing, and MUST return a state the writer
    /// passed through: its metadata, a snapshot and the events after it, with at least every
    /// append acknowledged before the call began (an append in flight may or may not be
    /// in it; a torn one is left out and `torn_tail` is `None`). An adapter that cannot read
    /// beside a writer fails with `Locked`, which is what the default (`peek`) does.
    ///
    /// # Errors
    ///
    /// As for `peek`; `Locked` only from an adapter that cannot read beside a writer.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let run_id = RunId::new("nightly-1").unwrap();
    /// let meta = RunMeta::new(run_id.clone(), "nightly", "default", "", Timestamp(0));
    /// let writer = factory.begin(meta).await?;
    /// let mut queue = Queue::new(QueueConfig::default());
    /// queue.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(0))?;
    /// writer.append(queue.events()).await?;
    ///
    /// // The writer still holds the run: `peek` refuses, `peek_live` reads what it wrote.
    /// assert!(factory.peek(&run_id).await.is_err());
    /// let live = factory.peek_live(&run_id).await?.expect("the run exists");
    /// assert_eq!(live.events, queue.events());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    async fn peek_live(&self, run_id: &RunId) -> Result<Option<Recovered>> {
        self.peek(run_id).await
    }

    /// Atomically moves a run from `from` to `to`, across threads and processes.
    ///
    /// Returns `Ok(Err(conflict))` when the stored status is not `from`, and MUST change
    /// nothing then. When `to` is `Running` the swap is a claim: it MUST increase
    /// `lease_epoch` by one and record the calling process as owner, and, as
    /// [`CheckpointerFactory::claim`], it MUST be refused (`conflict.held_by` set, nothing
    /// changed) while a live writer holds the run's lock. `Running → Running` is
    /// allowed, but it always finds `running`, so racing re-claims all win: claim a run read
    /// at a known epoch with [`CheckpointerFactory::claim`] instead. A swap to a terminal
    /// status or `Failed` MUST set `finished_at`. A swap out of `Completed` or `Cancelled`
    /// MUST fail with `Terminal` and change nothing (`RunMeta::swap_status` implements these
    /// rules for adapters). `NotFound` for an unknown run.
    ///
    /// # Errors
    ///
    /// `NotFound`, `Terminal`, and the adapter's I/O errors. A lost swap is not an error:
    /// it is `Ok(Err(conflict))`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory};
    /// use cairn_checkpoint::{RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// // Dropping the writer leaves the run `running` with no writer, as a crash would.
    /// drop(factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?);
    /// let paused = factory.compare_and_swap_status(&id, RunStatus::Running, RunStatus::Paused);
    /// assert_eq!(paused.await?.expect("it was running").status, RunStatus::Paused);
    /// // A second caller that still expects `running` loses, and learns what is stored.
    /// let lost = factory.compare_and_swap_status(&id, RunStatus::Running, RunStatus::Failed);
    /// assert_eq!(lost.await?.unwrap_err().current, RunStatus::Paused);
    /// // A swap back to `running` is a claim: the lease epoch goes up.
    /// let resumed = factory.compare_and_swap_status(&id, RunStatus::Paused, RunStatus::Running);
    /// assert_eq!(resumed.await?.expect("it was paused").lease_epoch, 2);
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// A dropped swap happens in full or not at all, and may happen after the drop, as long as
    /// the stored status is still `from` then. A status that has meanwhile left `from` and come
    /// back (a failed run resumed and failed again) can therefore still be moved by it. Where
    /// that matters, swap at the epoch read
    /// ([`CheckpointerFactory::compare_and_swap_status_at`]), or claim with one
    /// ([`CheckpointerFactory::claim`]) to move a run to `running`.
    async fn compare_and_swap_status(
        &self,
        run_id: &RunId,
        from: RunStatus,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>>;

    /// Atomically moves a run from `from` to `to`, as
    /// [`CheckpointerFactory::compare_and_swap_status`] does, but only while its stored lease
    /// epoch is still `expected_epoch`, across threads and processes.
    ///
    /// A failed or paused run goes back to `running` only through a claim, which moves the
    /// epoch on, so a swap that expects the status and the epoch it read never moves a run
    /// that was resumed since, even one that has come back to the status read (resumed,
    /// then failed again).
    ///
    /// A swap to `Running` MUST fail with `ClaimRequired` and change nothing, whatever is
    /// stored (an unknown run too): that move takes the lease, which is what
    /// [`CheckpointerFactory::claim`] is for (`refuse_claim_by_swap` implements this
    /// rule). Otherwise, of several swaps with the same expectation exactly one MUST win. A
    /// swap that finds another status or another epoch MUST return `Ok(Err(conflict))`
    /// naming the stored status, epoch and owner (with `expected_epoch` set), and MUST
    /// change nothing: not the status, epoch, owner or `updated_at`, nor any stored byte. A
    /// swap whose `from` matches but is `Completed` or `Cancelled` MUST fail with `Terminal`
    /// and change nothing, whatever the epoch. A swap that wins MUST set the status to `to`
    /// and `updated_at` to the time of the swap, MUST set `finished_at` when `to` is
    /// terminal or `Failed`, and MUST leave the lease epoch and the owner as they are. Like
    /// a plain swap to any status but `Running`, it takes no writer lock and is not refused
    /// while a writer holds the run (its caller may be the one holding it). `NotFound` for
    /// an unknown run.
    /// (`RunMeta::swap_status_at` implements these rules for adapters.)
    ///
    /// # Errors
    ///
    /// `ClaimRequired`, `NotFound`, `Terminal`, and the adapter's I/O errors. A lost swap is
    /// not an error: it is `Ok(Err(conflict))`. The method has no provided body on purpose,
    /// as for `claim`: a wrapper that forgot to forward it, or fell back to a plain status
    /// swap, would bring back the race it closes, so the compiler asks every implementation
    /// for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory};
    /// use cairn_checkpoint::{RunError, RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// let read = run.fail(&RunError::new("task_failed", "boom")).await?;
    /// drop(run);
    /// // Someone resumes the run (epoch 1 → 2) and it fails again.
    /// factory.claim(&id, RunStatus::Failed, read.lease_epoch).await?.expect("nobody else");
    /// let swap = factory.compare_and_swap_status(&id, RunStatus::Running, RunStatus::Failed);
    /// swap.await?.expect("it was running");
    ///
    /// // An abandon that read `failed` at epoch 1 is refused: that failure is not the one it
    /// // decided on. Nothing changed.
    /// let stale = factory.compare_and_swap_status_at(&id, RunStatus::Failed, 1, RunStatus::Cancelled);
    /// let stale = stale.await?.unwrap_err();
    /// assert_eq!((stale.current, stale.current_epoch), (RunStatus::Failed, 2));
    /// assert_eq!(factory.load_meta(&id).await?.map(|meta| meta.status), Some(RunStatus::Failed));
    /// // At the epoch stored now it wins, and the epoch stays.
    /// let now = factory.compare_and_swap_status_at(&id, RunStatus::Failed, 2, RunStatus::Cancelled);
    /// let cancelled = now.await?.expect("nothing moved the run since");
    /// assert_eq!((cancelled.status, cancelled.lease_epoch), (RunStatus::Cancelled, 2));
    /// assert!(cancelled.finished_at.is_some());
    /// // Moving a run to `running` is a claim's work.
    /// let to_running = factory.compare_and_swap_status_at(&id, RunStatus::Paused, 2, RunStatus::Running);
    /// assert!(matches!(to_running.await, Err(Error::ClaimRequired { .. })));
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// A dropped swap happens in full or not at all, and may happen after the drop, but only
    /// while the stored status is `from` and the stored epoch `expected_epoch` then: a run
    /// that was claimed meanwhile (resumed, even if it came back to `from`) is never moved by
    /// it. Of it and a later swap or claim with the same expectation, exactly one wins.
    async fn compare_and_swap_status_at(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>>;

    /// Atomically claims a run whose stored status is `from` and whose lease epoch is
    /// `expected_epoch`, across threads and processes: the status becomes `Running`, the
    /// epoch `expected_epoch + 1`, the owner the calling process, and `finished_at` is
    /// cleared.
    ///
    /// Of several claims with the same expectation exactly one MUST win. A claim that finds
    /// another status or another epoch MUST return `Ok(Err(conflict))` naming the stored
    /// status, epoch and owner, and MUST change nothing: not the status, epoch, owner or
    /// `updated_at`, nor any stored byte. A claim whose `from` matches but is `Completed` or
    /// `Cancelled` MUST fail with `Terminal` and change nothing. `NotFound` for an unknown
    /// run.
    ///
    /// A claim that would win MUST be refused while a live writer (from `begin` or `open`,
    /// in any process, through any factory) holds the run's writer lock: `Ok(Err(conflict))`
    /// with `conflict.held_by` naming the holder (`StatusConflict::held_by_writer`, and
    /// `claimed_by_another` is true), changing nothing. The check MUST be atomic with the
    /// claim and with `open`'s taking of the lock: no writer may take the lock between the
    /// check and the stored claim, so the stored lease is always the one a live writer
    /// drives under. Its holder therefore cannot claim either: claim first, then open, and
    /// check on what the open read that the stored epoch is the one claimed. The check
    /// SHOULD NOT make a concurrent `open` fail with `Locked`. (`RunMeta::claim_unless_held`
    /// implements these rules for adapters, given the holder.)
    ///
    /// # Errors
    ///
    /// `NotFound`, `Terminal`, and the adapter's I/O errors. The method has no provided body
    /// on purpose: a wrapper that forgot to forward it, or fell back to a status swap, would
    /// bring back the race it closes, so the compiler asks every implementation for it.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory};
    /// use cairn_checkpoint::{RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// drop(factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?);
    /// let read = factory.load_meta(&id).await?.expect("the run exists");
    /// let won = factory.claim(&id, RunStatus::Running, read.lease_epoch).await?;
    /// assert_eq!(won.expect("nobody claimed it first").lease_epoch, 2);
    /// // A second claimer that read the same epoch loses, and is told the run moved on.
    /// let lost = factory.claim(&id, RunStatus::Running, read.lease_epoch).await?;
    /// let lost = lost.unwrap_err();
    /// assert!(lost.claimed_by_another());
    /// assert_eq!(lost.current_epoch, 2);
    /// // While a writer holds the run, even a claim at the stored epoch is refused.
    /// let _writer = factory.open(&id).await?.expect("the run exists");
    /// let held = factory.claim(&id, RunStatus::Running, 2).await?.unwrap_err();
    /// assert!(held.held_by_writer());
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// A dropped claim wins or changes nothing, even when it ends after the drop, and it can
    /// win only at the epoch it expected: of it and a later claim at the same epoch, exactly one
    /// wins.
    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
    ) -> Result<Result<RunMeta, StatusConflict>>;

    /// Whether a live writer currently holds the run's lock (in any process). The answer
    /// can be stale by the time it is used; a claim checks again, atomically.
    ///
    /// # Errors
    ///
    /// The adapter's I/O errors; an unknown run is `Ok(false)`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// assert!(factory.is_held(&id).await?);
    /// drop(run);
    /// assert!(!factory.is_held(&id).await?);
    /// assert!(!factory.is_held(&RunId::new("unknown")?).await?);
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    async fn is_held(&self, run_id: &RunId) -> Result<bool>;

    /// Moves a run's whole state aside, never deleting it, and audits why. After this the run
    /// is neither listed nor opened, and its id cannot be begun again. SHOULD fail with
    /// `Locked` while a writer holds the run, so a live writer never writes into quarantine.
    /// `NotFound` for an unknown run.
    ///
    /// # Errors
    ///
    /// `NotFound`, `Locked`, and the adapter's I/O errors (then nothing was moved, or the
    /// move is finished by the next call).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// // A live writer must never write into quarantine, so its run stays.
    /// assert!(matches!(factory.quarantine(&id, "bad").await, Err(Error::Locked { .. })));
    /// drop(run);
    /// let moved = factory.quarantine(&id, "an operator found it damaged").await?;
    /// assert_eq!(moved.run_id, id);
    /// // The run is out of use, and its id is not free again.
    /// assert!(factory.open(&id).await?.is_none());
    /// let again = factory.begin(RunMeta::new(id, "wf", "scope", "", Timestamp(1))).await;
    /// assert!(matches!(again, Err(Error::AlreadyExists { .. })));
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// A dropped quarantine moves the state whole or not at all (a move left half done is
    /// finished by the next call, as after a crash); it may finish after the drop.
    async fn quarantine(&self, run_id: &RunId, reason: &str) -> Result<Quarantined>;

    /// Every quarantined run's state, oldest quarantine first, with where it went, why, and
    /// the metadata it had when that can still be read.
    ///
    /// MUST list every run that `quarantine` (or `open` or `list`, on bad state) moved aside,
    /// for as long as the store keeps it, which is for good; MUST list nothing else (a run
    /// removed by `remove_terminal` is not quarantined). MUST NOT change anything: a damaged
    /// entry is reported with `meta: None` (and an empty reason if its audit log cannot be
    /// read), never moved or removed. Metadata of another format version, or naming another
    /// run, is reported as long as it parses: its workflow and scope are what the resume
    /// policy needs. Listing needs no writer lock.
    ///
    /// # Errors
    ///
    /// The adapter's I/O errors. The method has no provided body on purpose: a wrapper that
    /// forgot to forward it would hide quarantined runs, and with them the question the resume
    /// policy must ask before it runs a quarantined run's done tasks again.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// drop(factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?);
    /// assert!(factory.list_quarantined().await?.is_empty());
    /// factory.quarantine(&id, "disk check failed").await?;
    /// let listed = factory.list_quarantined().await?;
    /// assert_eq!((&listed[0].run_id, listed[0].reason.as_str()), (&id, "disk check failed"));
    /// // Its workflow is still known, so a fresh run of it can ask first.
    /// assert_eq!(listed[0].meta.as_ref().map(|meta| meta.workflow.as_str()), Some("wf"));
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    async fn list_quarantined(&self) -> Result<Vec<QuarantinedRun>>;

    /// Removes a run that is finished for good, with all its state (metadata, journal,
    /// snapshot, audit log), and returns the metadata it had. This is retention (`cairn runs
    /// prune`) on an operator's request; bad or foreign state is never removed, only
    /// quarantined.
    ///
    /// MUST remove only a run whose stored status is `Completed` or `Cancelled`; any other
    /// status MUST fail with `NotTerminal` naming it and change nothing. MUST take the run's
    /// one-writer lock for the removal, so no `open` starts meanwhile, and fail with `Locked`
    /// naming the holder while a writer holds it (checked before the status). MUST fail with
    /// `NotFound` for an unknown run, a quarantined id included: quarantined state MUST NOT be
    /// touched. Metadata that cannot be read, is of another format version or names another
    /// run MUST be refused with a bad-state error (`Error::is_bad_state`) and left in place
    /// for `open` to quarantine.
    ///
    /// After `Ok`, the run is not listed, `load_meta` and `open` return `Ok(None)`, claims and
    /// swaps are `NotFound`, `read_audit` is empty, and `begin` of the same id MUST succeed as
    /// a new run (the id is free again, unlike a quarantined one). The removal MUST be
    /// crash-safe and SHOULD be durable as the factory's `Durability` says: a crash part way
    /// leaves either the whole run or nothing of it visible through the port. An adapter may
    /// leave hidden leftovers after a crash, which it MUST finish removing later and MUST NOT
    /// list.
    ///
    /// # Errors
    ///
    /// `NotTerminal`, `Locked`, `NotFound`, a bad-state error, and the adapter's I/O errors.
    /// The method has no provided body on purpose: a wrapper that forgot to forward it would
    /// refuse retention at run time, so the compiler asks every implementation for it.
    ///
    /// # Cancel safety
    ///
    /// A dropped removal leaves the whole run or nothing of it visible, as a crash does; it may
    /// finish after the drop.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("nightly-1")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// let held = factory.remove_terminal(&id).await;
    /// assert!(matches!(held, Err(Error::Locked { .. })));
    /// drop(run);
    /// let running = factory.remove_terminal(&id).await;
    /// assert!(matches!(running, Err(Error::NotTerminal { status: RunStatus::Running, .. })));
    ///
    /// let swap = factory.compare_and_swap_status(&id, RunStatus::Running, RunStatus::Cancelled);
    /// swap.await?.expect("nothing else moved the run");
    /// let removed = factory.remove_terminal(&id).await?;
    /// assert_eq!(removed.status, RunStatus::Cancelled);
    /// assert!(factory.load_meta(&id).await?.is_none());
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    async fn remove_terminal(&self, run_id: &RunId) -> Result<RunMeta>;

    /// Appends an audit record for a run without opening it (used by the resume policy).
    ///
    /// The run MUST be stored or quarantined. For any other id (never begun, or removed by
    /// [`CheckpointerFactory::remove_terminal`]) the call MUST fail with `NotFound` and
    /// store nothing, so that a record arriving late cannot start a log that a run begun
    /// later under the same id would inherit.
    ///
    /// # Errors
    ///
    /// `NotFound` as above, `Encoding` for a record that cannot be serialized, and the
    /// adapter's I/O errors (`Io`, `SyncFailed`, `Backend`).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{AuditAction, AuditRecord, CheckpointerFactory, Error, MemoryFactory};
    /// use cairn_checkpoint::{RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// drop(factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?);
    /// // No writer is needed: the resume policy audits runs it has not opened.
    /// let action = AuditAction::FailedResumePrompted;
    /// let record = AuditRecord::new(Timestamp(5), id.clone(), action, "asked whether to resume");
    /// factory.append_audit(&id, &record).await?;
    /// assert_eq!(factory.read_audit(&id).await?.last(), Some(&record));
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// A dropped record is stored whole or not at all, possibly after the drop and after
    /// records written later.
    async fn append_audit(&self, run_id: &RunId, record: &AuditRecord) -> Result<()>;

    /// Every audit record of a run, oldest first. Empty for an unknown run.
    ///
    /// # Errors
    ///
    /// `Corruption` or `Unreadable` for an audit log that cannot be read back, and the
    /// adapter's I/O errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{AuditAction, CheckpointerFactory, Error, MemoryFactory};
    /// use cairn_checkpoint::{RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// drop(factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?);
    /// factory.quarantine(&id, "moved aside").await?;
    /// // The memory store audits the begin and the quarantine, oldest first.
    /// let audit = factory.read_audit(&id).await?;
    /// let actions: Vec<AuditAction> = audit.iter().map(|record| record.action).collect();
    /// assert_eq!(actions, [AuditAction::Begun, AuditAction::Quarantined]);
    /// assert!(factory.read_audit(&RunId::new("unknown")?).await?.is_empty());
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    async fn read_audit(&self, run_id: &RunId) -> Result<Vec<AuditRecord>>;
}

/// One run's writer. `&self` methods so concurrent appends can share a group fsync.
#[async_trait]
pub trait Checkpointer: Send + Sync + Debug + 'static {
    /// The run this writer owns.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let meta = RunMeta::new(RunId::new("r1")?, "wf", "scope", "", Timestamp(0));
    /// let run = factory.begin(meta).await?;
    /// assert_eq!(run.run_id().as_str(), "r1");
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    fn run_id(&self) -> &RunId;

    /// Appends events in order.
    ///
    /// MUST NOT return `Ok` before the records are durable as the factory's `Durability`
    /// says. After any `SyncFailed`, every later call MUST fail with `Poisoned`.
    ///
    /// # Errors
    ///
    /// `SyncFailed` (fatal: never retried), `Poisoned` after one, `Encoding` for an event
    /// that cannot be serialized or is too large to store, and the adapter's I/O errors. On
    /// any error the events are not acknowledged.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let meta = RunMeta::new(RunId::new("r1")?, "wf", "scope", "", Timestamp(0));
    /// let run = factory.begin(meta).await?;
    /// let mut queue = Queue::new(QueueConfig::default());
    /// queue.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(1))?;
    /// queue.enqueue(TaskSpec::new("build"), EnqueuedBy::Root, Timestamp(2))?;
    /// let events = queue.take_events();
    /// run.append(&events[..1]).await?;
    /// run.append(&events[1..]).await?;
    /// // Every acknowledged event reads back, in append order.
    /// assert_eq!(run.load().await?.events, events);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// A dropped append's events are stored whole or not at all, and never after the events of
    /// an append called later, so the journal still replays. They may become durable after the
    /// drop: reload (`load`, or `open` after a restart) before deciding what they did. The writer
    /// stays usable.
    async fn append(&self, events: &[Event]) -> Result<()>;

    /// Installs a snapshot that reflects every event appended so far.
    ///
    /// MUST keep the old state readable until the new snapshot is durable (temp file, fsync,
    /// rename, directory fsync, and only then truncate or rotate the journal).
    ///
    /// # Errors
    ///
    /// `SyncFailed`, `Poisoned`, `Encoding`, and the adapter's I/O errors; the state read
    /// back is then the one before the call.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let meta = RunMeta::new(RunId::new("r1")?, "wf", "scope", "", Timestamp(0));
    /// let run = factory.begin(meta).await?;
    /// let mut queue = Queue::new(QueueConfig::default());
    /// queue.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(1))?;
    /// run.append(&queue.take_events()).await?;
    /// run.install_snapshot(&queue.snapshot()).await?;
    /// // The snapshot covers every event so far, so none is left after it.
    /// let loaded = run.load().await?;
    /// assert_eq!(loaded.snapshot, Some(queue.snapshot()));
    /// assert!(loaded.events.is_empty());
    /// assert_eq!(loaded.queue(&QueueConfig::default())?.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// A dropped install leaves the previous snapshot or this one, and may finish after the
    /// drop. Whenever it finishes, it MUST NOT cover an event sealed after the call began (an
    /// append made after the drop, or by another task): those stay after the snapshot.
    async fn install_snapshot(&self, snapshot: &Snapshot) -> Result<()>;

    /// Reads back the latest snapshot and the events after it.
    ///
    /// # Errors
    ///
    /// `Corruption`, `Unreadable`, `Replay`, and the adapter's I/O errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, Status, TaskSpec, Timestamp};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// let mut queue = Queue::new(QueueConfig::default());
    /// let task = queue.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(1))?.id;
    /// run.append(&queue.take_events()).await?;
    /// let loaded = run.load().await?;
    /// assert_eq!(loaded.meta.run_id, id);
    /// assert!(loaded.snapshot.is_none() && loaded.torn_tail.is_none());
    /// // The events rebuild the queue they came from.
    /// let rebuilt = loaded.queue(&QueueConfig::default())?;
    /// assert_eq!(rebuilt.get(task).map(|task| task.status), Some(Status::Pending));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    async fn load(&self) -> Result<Recovered>;

    /// Appends an audit record.
    ///
    /// # Errors
    ///
    /// `SyncFailed`, `Poisoned`, `Encoding`, and the adapter's I/O errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{AuditAction, AuditRecord, CheckpointerFactory, Error, MemoryFactory};
    /// use cairn_checkpoint::{RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// let record = AuditRecord::new(Timestamp(3), id.clone(), AuditAction::TaskReset, "reset")
    ///     .with_detail(serde_json::json!({ "task_id": 1 }));
    /// run.audit(&record).await?;
    /// // The writer's records and the factory's go to one log.
    /// assert_eq!(factory.read_audit(&id).await?.last(), Some(&record));
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As for [`CheckpointerFactory::append_audit`]: whole or not at all, possibly after the
    /// drop.
    async fn audit(&self, record: &AuditRecord) -> Result<()>;

    /// Marks the run `completed`. `Terminal` if the run already is terminal.
    ///
    /// # Errors
    ///
    /// `Terminal`, `SyncFailed`, `Poisoned`, and the adapter's I/O errors; the stored status
    /// is then unchanged or, after a crash, either the old or the new one.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory};
    /// use cairn_checkpoint::{RunError, RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let meta = RunMeta::new(RunId::new("r1")?, "wf", "scope", "", Timestamp(0));
    /// let run = factory.begin(meta).await?;
    /// let done = run.complete().await?;
    /// assert_eq!(done.status, RunStatus::Completed);
    /// assert!(done.finished_at.is_some());
    /// // A completed run never changes again.
    /// assert!(matches!(run.complete().await, Err(Error::Terminal { .. })));
    /// let late = run.fail(&RunError::new("panic", "too late")).await;
    /// assert!(matches!(late, Err(Error::Terminal { status: RunStatus::Completed, .. })));
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// A dropped call leaves the old status or the new one, and may finish after the drop.
    async fn complete(&self) -> Result<RunMeta>;

    /// Marks the run `failed` with `error`. `Terminal` if the run already is terminal.
    ///
    /// # Errors
    ///
    /// `Terminal`, `SyncFailed`, `Poisoned`, and the adapter's I/O errors, as for
    /// [`Checkpointer::complete`].
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory};
    /// use cairn_checkpoint::{RunError, RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// let error = RunError::new("task_failed", "task 3 ran out of attempts");
    /// let failed = run.fail(&error).await?;
    /// assert_eq!((failed.status, failed.error.as_ref()), (RunStatus::Failed, Some(&error)));
    /// // A failed run is not terminal: an explicit claim resumes it.
    /// drop(run);
    /// let resumed = factory.claim(&id, RunStatus::Failed, failed.lease_epoch).await?;
    /// assert_eq!(resumed.expect("nobody claimed it").status, RunStatus::Running);
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Cancel safety
    ///
    /// As for [`Checkpointer::complete`].
    async fn fail(&self, error: &RunError) -> Result<RunMeta>;
}

macro_rules! forward_factory {
    ($ptr:ty) => {
        #[async_trait]
        impl<T: CheckpointerFactory + ?Sized> CheckpointerFactory for $ptr {
            async fn begin(&self, meta: RunMeta) -> Result<Box<dyn Checkpointer>> {
                (**self).begin(meta).await
            }
            async fn open(&self, run_id: &RunId) -> Result<Option<Opened>> {
                (**self).open(run_id).await
            }
            async fn load_meta(&self, run_id: &RunId) -> Result<Option<RunMeta>> {
                (**self).load_meta(run_id).await
            }
            async fn list(&self, filter: &RunFilter) -> Result<Vec<RunMeta>> {
                (**self).list(filter).await
            }
            async fn left_in_place(&self) -> Result<Vec<LeftInPlaceRun>> {
                (**self).left_in_place().await
            }
            async fn peek(&self, run_id: &RunId) -> Result<Option<Recovered>> {
                (**self).peek(run_id).await
            }
            async fn peek_live(&self, run_id: &RunId) -> Result<Option<Recovered>> {
                (**self).peek_live(run_id).await
            }
            async fn compare_and_swap_status(
                &self,
                run_id: &RunId,
                from: RunStatus,
                to: RunStatus,
            ) -> Result<Result<RunMeta, StatusConflict>> {
                (**self).compare_and_swap_status(run_id, from, to).await
            }
            async fn compare_and_swap_status_at(
                &self,
                run_id: &RunId,
                from: RunStatus,
                expected_epoch: u64,
                to: RunStatus,
            ) -> Result<Result<RunMeta, StatusConflict>> {
                (**self)
                    .compare_and_swap_status_at(run_id, from, expected_epoch, to)
                    .await
            }
            async fn claim(
                &self,
                run_id: &RunId,
                from: RunStatus,
                expected_epoch: u64,
            ) -> Result<Result<RunMeta, StatusConflict>> {
                (**self).claim(run_id, from, expected_epoch).await
            }
            async fn is_held(&self, run_id: &RunId) -> Result<bool> {
                (**self).is_held(run_id).await
            }
            async fn quarantine(&self, run_id: &RunId, reason: &str) -> Result<Quarantined> {
                (**self).quarantine(run_id, reason).await
            }
            async fn remove_terminal(&self, run_id: &RunId) -> Result<RunMeta> {
                (**self).remove_terminal(run_id).await
            }
            async fn list_quarantined(&self) -> Result<Vec<QuarantinedRun>> {
                (**self).list_quarantined().await
            }
            async fn append_audit(&self, run_id: &RunId, record: &AuditRecord) -> Result<()> {
                (**self).append_audit(run_id, record).await
            }
            async fn read_audit(&self, run_id: &RunId) -> Result<Vec<AuditRecord>> {
                (**self).read_audit(run_id).await
            }
        }
    };
}

forward_factory!(Arc<T>);
forward_factory!(Box<T>);

#[async_trait]
impl Checkpointer for Box<dyn Checkpointer> {
    fn run_id(&self) -> &RunId {
        (**self).run_id()
    }
    async fn append(&self, events: &[Event]) -> Result<()> {
        (**self).append(events).await
    }
    async fn install_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        (**self).install_snapshot(snapshot).await
    }
    async fn load(&self) -> Result<Recovered> {
        (**self).load().await
    }
    async fn audit(&self, record: &AuditRecord) -> Result<()> {
        (**self).audit(record).await
    }
    async fn complete(&self) -> Result<RunMeta> {
        (**self).complete().await
    }
    async fn fail(&self, error: &RunError) -> Result<RunMeta> {
        (**self).fail(error).await
    }
}
