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
    /// The lease epoch a claim expected; `None` for a plain status swap.
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
    /// # Cancel safety
    ///
    /// A dropped swap happens in full or not at all, and may happen after the drop, as long as
    /// the stored status is still `from` then. A status that has meanwhile left `from` and come
    /// back can therefore still be moved by it; claim with an epoch
    /// ([`CheckpointerFactory::claim`]) where that matters.
    async fn compare_and_swap_status(
        &self,
        run_id: &RunId,
        from: RunStatus,
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
    /// # Errors
    ///
    /// `Encoding` for a record that cannot be serialized, and the adapter's I/O errors
    /// (`Io`, `SyncFailed`, `Backend`).
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
    async fn read_audit(&self, run_id: &RunId) -> Result<Vec<AuditRecord>>;
}

/// One run's writer. `&self` methods so concurrent appends can share a group fsync.
#[async_trait]
pub trait Checkpointer: Send + Sync + Debug + 'static {
    /// The run this writer owns.
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
    async fn load(&self) -> Result<Recovered>;

    /// Appends an audit record.
    ///
    /// # Errors
    ///
    /// `SyncFailed`, `Poisoned`, `Encoding`, and the adapter's I/O errors.
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
