//! The job store: a small sibling port for the scheduler's recurring jobs.
//!
//! Jobs are not runs: they have no journal and no one-writer lock, only a small document that
//! changes a few times per run. So they get their own port, [`JobStore`], instead of more
//! methods on `CheckpointerFactory`. The store keeps versioned JSON documents and knows nothing
//! of their schema (the scheduler owns it); every update is a compare-and-swap on the version,
//! so two schedulers (or a scheduler and an operator) never overwrite each other's change.
//! A version is never used twice under one job id, even across a delete and an add (see
//! [`JobStore`], "Versions"), so a version read once names one job and not a later one
//! added under the same id.
//!
//! Each job also has an append-only audit list ([`JobAuditRecord`]), kept by the store so that
//! a circuit-breaker trip or a forced revive is recorded next to the job it concerns, and
//! kept after the job is deleted.
//!
//! [`MemoryJobStore`] keeps everything in memory; the file and sled adapters implement the
//! same port, and the conformance suite (`conformance::jobs`) checks all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Debug};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use cairn_queue::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The longest job id, in bytes.
pub const MAX_JOB_ID_LEN: usize = 64;

/// How far a store raises its floor of retired versions when it moves aside a damaged job
/// whose version it cannot read (see [`JobStore`], "Versions").
///
/// The lost job started above the floor (or at 1, written by a build before the floor), and
/// no job is updated 2^32 times, so every version it had lies below the floor plus this.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::UNREAD_VERSION_STEP;
/// // Over a century of one write a second to a single job.
/// assert!(UNREAD_VERSION_STEP > 100 * 365 * 24 * 3600);
/// ```
pub const UNREAD_VERSION_STEP: u64 = 1 << 32;

/// Refuses a store's floor of retired versions that a newer build wrote: its
/// `format_version` (read before anything else of it, which a newer build may have changed) is
/// above `this_build_reads`. Such a floor is left where it is, and no job is created, deleted
/// or moved aside until a build that reads it does so. Adapters call it on the parsed floor.
///
/// # Errors
///
/// [`Error::NewerJobFormat`] naming `job_id` (the job the call was about) and `at` (where the
/// floor is stored).
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{Error, JobId, refuse_newer_floor};
///
/// let id = JobId::new("nightly")?;
/// let ours = serde_json::json!({ "format_version": 1, "floor": 7 });
/// assert!(refuse_newer_floor(&ours, 1, &id, "jobs/.version-floor").is_ok());
/// let newer = serde_json::json!({ "format_version": 2, "floors": {} });
/// let refused = refuse_newer_floor(&newer, 1, &id, "jobs/.version-floor");
/// assert!(matches!(refused, Err(Error::NewerJobFormat { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn refuse_newer_floor(
    floor: &serde_json::Value,
    this_build_reads: u32,
    job_id: &JobId,
    at: &str,
) -> Result<()> {
    match floor
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
    {
        Some(found) if found > u64::from(this_build_reads) => Err(Error::NewerJobFormat {
            job_id: job_id.clone(),
            at: at.to_owned(),
            detail: format!(
                "the job version floor has format version {found} (this build reads \
                 {this_build_reads}); no job is created, deleted or moved aside by this build"
            ),
        }),
        _ => Ok(()),
    }
}

/// A job's id: 1 to 64 ASCII letters, digits, `-` or `_`, not starting with `-`, so it is
/// safe as a file name and as a single command-line argument (it never reads as an option,
/// as in `cairn jobs show <id>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

/// Text offered as a job id that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{id}` is not a valid job id: {reason}")]
pub struct InvalidJobId {
    /// The text.
    pub id: String,
    /// Why it was refused.
    pub reason: &'static str,
}

impl JobId {
    /// Validates `text` as a job id.
    ///
    /// # Errors
    ///
    /// [`InvalidJobId`] when `text` is empty, longer than 64 bytes, holds a character
    /// outside `[A-Za-z0-9_-]`, or starts with `-`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::JobId;
    /// assert!(JobId::new("nightly-backup").is_ok());
    /// assert!(JobId::new("../etc").is_err());
    /// assert!(JobId::new("-x").is_err());
    /// ```
    pub fn new(text: impl Into<String>) -> std::result::Result<JobId, InvalidJobId> {
        let text = text.into();
        // Stores skip a file or key whose name is no job id, so a job stored under such a
        // name before this rule is left where it is, reported, never moved or deleted.
        let reason = JobId::why_not_stored(&text).or_else(|| {
            text.starts_with('-').then_some(
                "it must not start with '-', which would read as an option on a command line",
            )
        });
        match reason {
            Some(reason) => Err(InvalidJobId { id: text, reason }),
            None => Ok(JobId(text)),
        }
    }

    /// Why `text` cannot name a job in stored data, if it cannot: the rule before ids
    /// starting with `-` were refused.
    fn why_not_stored(text: &str) -> Option<&'static str> {
        crate::meta::why_not_an_id(text, MAX_JOB_ID_LEN)
    }

    /// The id as text.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::JobId;
    /// let id = JobId::new("nightly-backup")?;
    /// assert_eq!(id.as_str(), "nightly-backup");
    /// // `Display` prints the same text.
    /// assert_eq!(id.to_string(), id.as_str());
    /// # Ok::<(), cairn_checkpoint::InvalidJobId>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decoding stored data (a job document, a job audit record) keeps the earlier rule and
/// accepts a leading `-`: one job audit log holds the records of every job, and a record
/// of a job named `-x` by an earlier build must not make that log unreadable for all the
/// others. Such an id never reaches a store's listing, which names jobs by `JobId::new`.
impl TryFrom<String> for JobId {
    type Error = InvalidJobId;
    fn try_from(text: String) -> std::result::Result<Self, Self::Error> {
        match JobId::why_not_stored(&text) {
            Some(reason) => Err(InvalidJobId { id: text, reason }),
            None => Ok(JobId(text)),
        }
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.0
    }
}

/// A job document as stored, with its version.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredJob {
    /// The job.
    pub id: JobId,
    /// Grows by one with every update. A new job starts above every version that any job
    /// stored under the same id before had in this store (at 1 in a store that never
    /// deleted or moved aside a job), so a version names one job, never a later one added
    /// under the same id.
    pub version: u64,
    /// The document (its schema belongs to the scheduler).
    pub document: serde_json::Value,
}

/// A versioned write that found another version: an expected conflict, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionConflict {
    /// The job.
    pub id: JobId,
    /// The version the caller expected (`None`: the caller expected no job).
    pub expected: Option<u64>,
    /// The version actually stored (`None`: there is no such job).
    pub current: Option<u64>,
}

/// A job listing: the jobs that read back, and the stored entries the listing left out.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{JobId, JobStore, LeftOutPlace, MemoryJobStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryJobStore::new();
/// let (good, bad) = (JobId::new("good").unwrap(), JobId::new("bad").unwrap());
/// store.put(&good, None, &serde_json::json!({})).await?.expect("new job");
/// store.put(&bad, None, &serde_json::json!({})).await?.expect("new job");
/// store.damage_job(&bad);
/// let listing = store.listing().await?;
/// assert_eq!(listing.jobs.len(), 1);
/// // The listing that moved the damaged job aside says so; later ones do not.
/// assert_eq!(listing.left_out[0].id.as_ref(), Some(&bad));
/// assert!(matches!(listing.left_out[0].place, LeftOutPlace::Quarantined { .. }));
/// assert!(store.listing().await?.left_out.is_empty());
/// # Ok::<(), cairn_checkpoint::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JobListing {
    /// Every job that reads back, ordered by id.
    pub jobs: Vec<StoredJob>,
    /// The stored entries left out of `jobs`, ordered by name: each one is a job that will
    /// not run until someone acts.
    pub left_out: Vec<LeftOutJob>,
}

/// A stored entry a job listing left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOutJob {
    /// The job, when the entry's name is a job id.
    pub id: Option<JobId>,
    /// The entry's name as stored: the job id, or the raw file name or key (lossily as
    /// UTF-8) when it is not one.
    pub name: String,
    /// Why it was left out, for people.
    pub reason: String,
    /// Where the entry is now.
    pub place: LeftOutPlace,
}

/// Where a stored entry that a listing left out is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LeftOutPlace {
    /// This listing moved it aside (never deleted) and audited it as `Quarantined`: it is
    /// no longer a job, and later listings do not report it again.
    Quarantined {
        /// Where it went (a path, or a key in a quarantine tree).
        location: String,
    },
    /// It could not be read or moved: it stays where it is, left out of every listing
    /// (and reported by each) until someone fixes, moves or deletes it.
    LeftInPlace {
        /// Where it is (a path, or a key).
        at: String,
    },
    /// It was written by a newer build of cairn (a format version above this build's).
    /// Nothing is wrong with it, so it stays exactly where it is: not moved, not rewritten,
    /// not deleted, and nothing is audited about it. Every listing reports it while it stays;
    /// a build that reads it (the one that wrote it, or a later one) runs it again.
    NewerFormat {
        /// Where it is (a path, or a key).
        at: String,
    },
}

impl fmt::Display for LeftOutPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeftOutPlace::Quarantined { location } => write!(f, "quarantined to {location}"),
            LeftOutPlace::LeftInPlace { at } => write!(f, "left in place at {at}"),
            LeftOutPlace::NewerFormat { at } => {
                write!(
                    f,
                    "left as it is at {at}, for the newer build that wrote it"
                )
            }
        }
    }
}

/// What happened to a job, as recorded in its audit list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobAuditAction {
    /// The job was created.
    Created,
    /// The job was paused.
    Paused,
    /// A paused job was resumed. The scheduler also records it (detail `rescheduled`) when
    /// it gives an active job stored with no next run time the next one its schedule has.
    Resumed,
    /// A job whose circuit breaker had tripped was revived on purpose (`force`).
    Revived,
    /// Too many runs failed in a row: the circuit breaker tripped and the job is `failed`.
    BreakerTripped,
    /// A one-shot job ran successfully and is done.
    Completed,
    /// The job was deleted.
    Deleted,
    /// Stored job state was damaged and was moved aside (never deleted). Records written
    /// before `LeftInPlace` existed also use it, with a null `location`, for an entry that
    /// could not be moved.
    Quarantined,
    /// Stored job state was damaged or unreadable but could not be moved aside: it stays
    /// where it is, untouched, and is left out of job listings until someone fixes or moves
    /// it. The detail names the `path` (or key) and the `reason`.
    LeftInPlace,
    /// A torn last line of a job audit log (a crash mid-append, or damage to its last
    /// record) was cut before the next append. The record names the job the cut line named,
    /// when that can still be read, and its detail keeps where the line was (`offset`,
    /// `bytes`) and what it held (`text`, plus `hex` when it is not UTF-8).
    TornLineCut,
}

/// One audit record of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobAuditRecord {
    /// When it happened.
    pub at: Timestamp,
    /// The job it concerns.
    pub job_id: JobId,
    /// What happened.
    pub action: JobAuditAction,
    /// Why, for people.
    pub message: String,
    /// Structured details (error counts, versions, locations...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub detail: serde_json::Value,
}

impl JobAuditRecord {
    /// Builds a record with no structured detail.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobAuditAction, JobAuditRecord, JobId};
    /// use cairn_queue::Timestamp;
    /// let id = JobId::new("nightly").unwrap();
    /// let rec = JobAuditRecord::new(Timestamp(5), id, JobAuditAction::Paused, "operator paused it");
    /// assert_eq!(rec.action, JobAuditAction::Paused);
    /// ```
    pub fn new(
        at: Timestamp,
        job_id: JobId,
        action: JobAuditAction,
        message: impl Into<String>,
    ) -> Self {
        JobAuditRecord {
            at,
            job_id,
            action,
            message: message.into(),
            detail: serde_json::Value::Null,
        }
    }

    /// Adds structured detail.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobAuditAction, JobAuditRecord, JobId};
    /// use cairn_queue::Timestamp;
    /// let id = JobId::new("nightly")?;
    /// let tripped = JobAuditAction::BreakerTripped;
    /// let rec = JobAuditRecord::new(Timestamp(5), id, tripped, "5 runs failed in a row")
    ///     .with_detail(serde_json::json!({ "failures": 5 }));
    /// assert_eq!(rec.detail["failures"], 5);
    /// // The detail is kept in the stored JSON line.
    /// let line = serde_json::to_string(&rec)?;
    /// assert_eq!(serde_json::from_str::<JobAuditRecord>(&line)?, rec);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// Stores the scheduler's jobs. Object-safe; hold it as `Arc<dyn JobStore>`.
///
/// Two stores over the same storage behave like two processes: every write is a
/// compare-and-swap on the stored version, atomic across threads (and, for the file adapter,
/// across processes).
///
/// # Cancel safety
///
/// As for [`CheckpointerFactory`](crate::CheckpointerFactory): a call whose future is dropped
/// before it resolves is not acknowledged, and leaves the store as if it had happened in full
/// or not at all; an adapter may finish it after the drop, and one dropped before its first
/// poll changes nothing. A dropped `put` or `delete` can still win only at the version it
/// expected, so of it and a later write expecting the same version exactly one wins (the
/// conformance case `jobs_dropped_puts_win_at_most_once`).
///
/// # Versions
///
/// A version MUST NOT be used twice under one job id in one store, even across a delete (or
/// a move aside of damaged state) and an add: a new job starts above every version any job
/// under its id had before. So a compare-and-swap at a version read earlier can land only on
/// the job that was read, never on one deleted and added again meanwhile (the conformance
/// cases `jobs_version_is_not_reused_after_delete` and
/// `jobs_version_is_not_reused_after_quarantine`). Stores keep a floor of retired versions,
/// raised durably before a job leaves the store, and start new jobs just above it; a damaged
/// job whose version cannot be read raises it by [`UNREAD_VERSION_STEP`]. This holds for
/// the deletes of builds that keep the floor: a build from before it deletes without
/// raising it, so a job it deleted may be added again at a version it had.
#[async_trait]
pub trait JobStore: Send + Sync + Debug + 'static {
    /// The job `id`, or `Ok(None)` for an unknown job.
    ///
    /// Stored state that cannot be read back (bad checksum, unparseable, foreign id, a format
    /// version below this build's) MUST be moved aside (never deleted), audited as
    /// `Quarantined`, and reported as an error; the job is then unknown. State a newer build
    /// wrote (a format version above this build's) MUST be left exactly as it is, not
    /// audited, and reported as `NewerJobFormat` by every call.
    ///
    /// # Errors
    ///
    /// `Encoding` for a damaged job, once it has been moved aside (the message says where);
    /// `NewerJobFormat` for a job a newer build wrote; the adapter's I/O errors (`Io`,
    /// `SyncFailed`, `Backend`) when the job cannot be read or moved aside.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryJobStore::new();
    /// let id = JobId::new("nightly")?;
    /// assert!(store.get(&id).await?.is_none());
    /// store.put(&id, None, &serde_json::json!({ "every": 60 })).await?.expect("a new job");
    /// let job = store.get(&id).await?.expect("stored");
    /// assert_eq!((job.version, job.document["every"].as_u64()), (1, Some(60)));
    /// // A damaged job is moved aside and reported once; the job is unknown after that.
    /// store.damage_job(&id);
    /// assert!(store.get(&id).await.is_err());
    /// assert!(store.get(&id).await?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    async fn get(&self, id: &JobId) -> Result<Option<StoredJob>>;

    /// Every job, ordered by id, and every stored entry left out of it.
    ///
    /// - A damaged job (as in `get`) MUST be moved aside, audited as `Quarantined` (detail
    ///   `location`: where it went), left out of `jobs`, and reported in `left_out` as
    ///   [`LeftOutPlace::Quarantined`] with that location by this call. It is then no longer
    ///   stored, so later listings MUST NOT report it again (its audit record stays).
    /// - An entry that cannot be read or moved (or whose name is not a job id) MUST be left
    ///   where it is, out of `jobs`, and reported as [`LeftOutPlace::LeftInPlace`] by every
    ///   listing while it stays. One with a job id MUST be audited as `LeftInPlace`, and
    ///   SHOULD NOT be audited again by every listing of the same store.
    /// - A job a newer build wrote (as in `get`) MUST be left exactly as it is, out of `jobs`,
    ///   and reported as [`LeftOutPlace::NewerFormat`] by every listing while it stays. It
    ///   MUST NOT be moved, rewritten or audited: nothing is wrong with it.
    /// - One such entry MUST NOT fail the listing; failures of the store as a whole (its
    ///   lock, its audit log, a failed fsync) are errors.
    ///
    /// # Errors
    ///
    /// Only failures of the store as a whole: its lock, its audit log, a failed fsync (`Io`,
    /// `SyncFailed`, `Backend`). A damaged or unreadable entry is never an error here.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobAuditAction, JobId, JobStore, LeftOutPlace, MemoryJobStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryJobStore::new();
    /// let (good, stuck) = (JobId::new("good")?, JobId::new("stuck")?);
    /// for id in [&good, &stuck] {
    ///     store.put(id, None, &serde_json::json!({})).await?.expect("a new job");
    /// }
    /// store.damage_job_in_place(&stuck);
    /// // A job that cannot be moved aside is reported by every listing while it stays.
    /// for _ in 0..2 {
    ///     let listing = store.listing().await?;
    ///     assert_eq!(listing.jobs.len(), 1);
    ///     assert!(matches!(listing.left_out[0].place, LeftOutPlace::LeftInPlace { .. }));
    /// }
    /// // It is audited once, not once per listing.
    /// let audit = store.read_audit(&stuck).await?;
    /// let left = audit.iter().filter(|record| record.action == JobAuditAction::LeftInPlace);
    /// assert_eq!(left.count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    async fn listing(&self) -> Result<JobListing>;

    /// Every job, ordered by id: `listing` without the left-out entries. Where an operator
    /// must hear of a job that stopped running, use `listing`.
    ///
    /// # Errors
    ///
    /// As for [`JobStore::listing`].
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryJobStore::new();
    /// for name in ["weekly", "daily"] {
    ///     store.put(&JobId::new(name)?, None, &serde_json::json!({})).await?.expect("a new job");
    /// }
    /// let jobs = store.list().await?;
    /// let ids: Vec<&str> = jobs.iter().map(|job| job.id.as_str()).collect();
    /// // Ordered by id, not by creation.
    /// assert_eq!(ids, ["daily", "weekly"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    async fn list(&self) -> Result<Vec<StoredJob>> {
        Ok(self.listing().await?.jobs)
    }

    /// Writes `document` as job `id` if the stored version is `expected`.
    ///
    /// `expected: None` creates the job and MUST conflict when it exists; the new job's
    /// version MUST be above every version any job stored under `id` before had in this
    /// store (see "Versions" above; 1 when there was none, as in a fresh store).
    /// `Some(v)` MUST conflict unless version `v` is stored, and stores version `v + 1`.
    /// Returns the new version. MUST NOT return `Ok(Ok(_))` before the write is durable.
    /// A conflict changes nothing. A job a newer build wrote MUST be refused
    /// (`NewerJobFormat`) whatever `expected` is, and left as it is.
    ///
    /// # Errors
    ///
    /// A version conflict is `Ok(Err(_))`, not an error. Errors are `NewerJobFormat` for a
    /// job a newer build wrote, `Encoding` for a document
    /// that cannot be serialized, `SyncFailed` when the write could not be made durable (and
    /// for every later write to a store whose fsync failed once: it is not retried), and the
    /// adapter's other I/O errors (`Io`, `Backend`).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
    /// use serde_json::json;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryJobStore::new();
    /// let id = JobId::new("nightly")?;
    /// let v1 = store.put(&id, None, &json!({ "every": 60 })).await?.expect("a new job");
    /// let v2 = store.put(&id, Some(v1), &json!({ "every": 30 })).await?.expect("at version 1");
    /// assert_eq!((v1, v2), (1, 2));
    /// // A writer that read version 1 lost the race: it changes nothing and learns the version.
    /// let stale = store.put(&id, Some(1), &json!({ "every": 5 })).await?.unwrap_err();
    /// assert_eq!((stale.expected, stale.current), (Some(1), Some(2)));
    /// assert_eq!(store.get(&id).await?.expect("stored").document["every"], 30);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    async fn put(
        &self,
        id: &JobId,
        expected: Option<u64>,
        document: &serde_json::Value,
    ) -> Result<std::result::Result<u64, VersionConflict>>;

    /// Deletes job `id` if version `expected` is stored; a conflict (including an unknown
    /// job) changes nothing. The job's audit records MUST be kept. A job a newer build wrote
    /// MUST be refused (`NewerJobFormat`) and left as it is. A job added under `id` later
    /// MUST start above `expected`, and the store MUST make that durable before the delete
    /// is (see "Versions" above).
    ///
    /// # Errors
    ///
    /// As for [`JobStore::put`]: a conflict is `Ok(Err(_))`; `NewerJobFormat`, `SyncFailed`,
    /// `Io`, `Backend`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryJobStore::new();
    /// let id = JobId::new("nightly")?;
    /// let v1 = store.put(&id, None, &serde_json::json!({})).await?.expect("a new job");
    /// // Only the version that is stored can be deleted.
    /// assert!(store.delete(&id, v1 + 1).await?.is_err());
    /// store.delete(&id, v1).await?.expect("version 1 is stored");
    /// assert!(store.get(&id).await?.is_none());
    /// // A job that is gone conflicts too, with no version stored.
    /// assert_eq!(store.delete(&id, v1).await?.unwrap_err().current, None);
    /// // Added again, it starts above the deleted job's version, so a writer that read
    /// // version 1 earlier cannot change it.
    /// let again = store.put(&id, None, &serde_json::json!({})).await?.expect("a new job");
    /// assert!(again > v1);
    /// assert!(store.put(&id, Some(v1), &serde_json::json!({})).await?.is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    async fn delete(
        &self,
        id: &JobId,
        expected: u64,
    ) -> Result<std::result::Result<(), VersionConflict>>;

    /// Appends an audit record to its job's list. MUST be durable before returning; MUST
    /// work for a job that does not exist (any more).
    ///
    /// # Errors
    ///
    /// `Encoding` for a record that cannot be serialized, `SyncFailed` (as for
    /// [`JobStore::put`]), and the adapter's other I/O errors (`Io`, `Backend`).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobAuditAction, JobAuditRecord, JobId, JobStore, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryJobStore::new();
    /// // The job need not exist: its records outlive it.
    /// let id = JobId::new("gone")?;
    /// let deleted = JobAuditAction::Deleted;
    /// let record = JobAuditRecord::new(Timestamp(1), id.clone(), deleted, "operator deleted it");
    /// store.append_audit(&record).await?;
    /// assert_eq!(store.read_audit(&id).await?, [record]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    async fn append_audit(&self, record: &JobAuditRecord) -> Result<()>;

    /// Every audit record of job `id`, oldest first. Empty for an unknown job.
    ///
    /// # Errors
    ///
    /// `Encoding` for a record that fails its check anywhere but as the torn last one (which
    /// is skipped), and the adapter's I/O errors (`Io`, `Backend`).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobAuditAction, JobAuditRecord, JobId, JobStore, MemoryJobStore};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryJobStore::new();
    /// let (a, b) = (JobId::new("a")?, JobId::new("b")?);
    /// let happened = [
    ///     (&a, JobAuditAction::Created),
    ///     (&b, JobAuditAction::Created),
    ///     (&a, JobAuditAction::Paused),
    /// ];
    /// for (at, (id, action)) in happened.into_iter().enumerate() {
    ///     let record = JobAuditRecord::new(Timestamp(at as u64), id.clone(), action, "");
    ///     store.append_audit(&record).await?;
    /// }
    /// // Only job `a`'s records, oldest first.
    /// let audit = store.read_audit(&a).await?;
    /// let actions: Vec<JobAuditAction> = audit.iter().map(|record| record.action).collect();
    /// assert_eq!(actions, [JobAuditAction::Created, JobAuditAction::Paused]);
    /// assert!(store.read_audit(&JobId::new("unknown")?).await?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    async fn read_audit(&self, id: &JobId) -> Result<Vec<JobAuditRecord>>;
}

macro_rules! forward_job_store {
    ($ptr:ty) => {
        #[async_trait]
        impl<T: JobStore + ?Sized> JobStore for $ptr {
            async fn get(&self, id: &JobId) -> Result<Option<StoredJob>> {
                (**self).get(id).await
            }
            async fn listing(&self) -> Result<JobListing> {
                (**self).listing().await
            }
            async fn list(&self) -> Result<Vec<StoredJob>> {
                (**self).list().await
            }
            async fn put(
                &self,
                id: &JobId,
                expected: Option<u64>,
                document: &serde_json::Value,
            ) -> Result<std::result::Result<u64, VersionConflict>> {
                (**self).put(id, expected, document).await
            }
            async fn delete(
                &self,
                id: &JobId,
                expected: u64,
            ) -> Result<std::result::Result<(), VersionConflict>> {
                (**self).delete(id, expected).await
            }
            async fn append_audit(&self, record: &JobAuditRecord) -> Result<()> {
                (**self).append_audit(record).await
            }
            async fn read_audit(&self, id: &JobId) -> Result<Vec<JobAuditRecord>> {
                (**self).read_audit(id).await
            }
        }
    };
}

forward_job_store!(Arc<T>);
forward_job_store!(Box<T>);

/// A job store in memory, shared by its clones (a clone behaves like a second process).
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let store = MemoryJobStore::new();
/// let id = JobId::new("nightly").unwrap();
/// let v1 = store.put(&id, None, &serde_json::json!({"every": 60})).await?.expect("new job");
/// assert_eq!(v1, 1);
/// // A stale writer loses the compare-and-swap and changes nothing.
/// assert!(store.put(&id, None, &serde_json::json!({})).await?.is_err());
/// assert_eq!(store.get(&id).await?.expect("stored").version, 1);
/// # Ok::<(), cairn_checkpoint::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryJobStore {
    state: Arc<Mutex<MemoryJobs>>,
}

#[derive(Debug, Default)]
struct MemoryJobs {
    jobs: BTreeMap<JobId, (u64, serde_json::Value)>,
    /// Stored jobs a test damaged: `true` when the damage can be moved aside.
    damaged: BTreeMap<JobId, bool>,
    /// Damaged jobs moved aside, never dropped: (id, version, document).
    quarantine: Vec<(JobId, u64, serde_json::Value)>,
    /// Damaged jobs that stay in place and whose `LeftInPlace` record was written.
    left_in_place_audited: BTreeSet<JobId>,
    /// Stored jobs a test marked as written by a newer build: left as they are.
    newer: BTreeSet<JobId>,
    audit: Vec<JobAuditRecord>,
    /// The floor of retired versions: every job deleted or moved aside had versions up to
    /// it, so new jobs start above it.
    retired: u64,
}

/// What a damaged memory job became when it was met.
enum MetDamage {
    Quarantined { location: String },
    LeftInPlace { at: String },
}

const DAMAGE_REASON: &str = "it was damaged (MemoryJobStore::damage_job)";

impl MemoryJobs {
    /// Deals with job `id` if it is damaged: moves it aside (audited) or leaves it in place
    /// (audited once). `None` when it is not damaged.
    fn meet_damage(&mut self, id: &JobId) -> Option<MetDamage> {
        let movable = *self.damaged.get(id)?;
        if movable {
            self.damaged.remove(id);
            let (version, document) = self.jobs.remove(id)?;
            self.retired = self.retired.max(version);
            let location = format!("memory quarantine #{}", self.quarantine.len());
            self.quarantine.push((id.clone(), version, document));
            self.audit.push(
                JobAuditRecord::new(
                    crate::wall_clock_now(),
                    id.clone(),
                    JobAuditAction::Quarantined,
                    format!("job {id}: {DAMAGE_REASON}; moved to {location}"),
                )
                .with_detail(serde_json::json!({ "location": location, "reason": DAMAGE_REASON })),
            );
            Some(MetDamage::Quarantined { location })
        } else {
            let at = format!("memory job {id}");
            if self.left_in_place_audited.insert(id.clone()) {
                self.audit.push(
                    JobAuditRecord::new(
                        crate::wall_clock_now(),
                        id.clone(),
                        JobAuditAction::LeftInPlace,
                        format!("job {id}: {DAMAGE_REASON} and cannot be moved aside; it stays in place and is left out of job listings"),
                    )
                    .with_detail(serde_json::json!({ "path": at, "reason": DAMAGE_REASON })),
                );
            }
            Some(MetDamage::LeftInPlace { at })
        }
    }

    /// The version stored now, as a write sees it: a damaged job that was moved aside counts
    /// as none; one that stays in place, or one a newer build wrote, is an error.
    fn current_version(&mut self, id: &JobId) -> Result<Option<u64>> {
        if self.newer.contains(id) {
            return Err(newer_format_error(id));
        }
        match self.meet_damage(id) {
            Some(MetDamage::LeftInPlace { at }) => Err(left_in_place_error(id, &at)),
            _ => Ok(self.jobs.get(id).map(|(version, _)| *version)),
        }
    }
}

const NEWER_REASON: &str =
    "it was written by a newer cairn build (MemoryJobStore::plant_newer_format)";

fn newer_format_at(id: &JobId) -> String {
    format!("memory job {id}")
}

fn newer_format_error(id: &JobId) -> Error {
    Error::NewerJobFormat {
        job_id: id.clone(),
        at: newer_format_at(id),
        detail: NEWER_REASON.to_owned(),
    }
}

fn left_in_place_error(id: &JobId, at: &str) -> Error {
    Error::Encoding {
        what: "memory job",
        detail: format!("job {id}: {DAMAGE_REASON} and cannot be moved aside; it stays at {at}"),
    }
}

impl MemoryJobStore {
    /// An empty store.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryJobStore::new();
    /// assert!(store.list().await?.is_empty());
    /// // A clone shares the jobs, as a second process over the same store would.
    /// let other = store.clone();
    /// other.put(&JobId::new("nightly")?, None, &serde_json::json!({})).await?.expect("a new job");
    /// assert_eq!(store.list().await?.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Test hook: damages stored job `id` so that it no longer reads back. The next operation
    /// that meets it moves it aside (audited as `Quarantined`), as a file or sled store does
    /// with a damaged entry. Returns `false` (and does nothing) for an unknown job.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobAuditAction, JobId, JobStore, MemoryJobStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryJobStore::new();
    /// let id = JobId::new("nightly")?;
    /// // There is nothing to damage yet.
    /// assert!(!store.damage_job(&id));
    /// store.put(&id, None, &serde_json::json!({})).await?.expect("a new job");
    /// assert!(store.damage_job(&id));
    /// // The next call that meets it moves it aside and audits the move.
    /// assert!(store.get(&id).await.is_err());
    /// let last = store.read_audit(&id).await?.last().map(|record| record.action);
    /// assert_eq!(last, Some(JobAuditAction::Quarantined));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn damage_job(&self, id: &JobId) -> bool {
        self.mark_damaged(id, true)
    }

    /// Test hook: damages stored job `id` so that it can neither be read back nor moved
    /// aside: it stays, left out of every listing (audited once as `LeftInPlace`), and `get`,
    /// `put` and `delete` of it fail. Returns `false` (and does nothing) for an unknown job.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobId, JobStore, MemoryJobStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryJobStore::new();
    /// let id = JobId::new("nightly")?;
    /// let v1 = store.put(&id, None, &serde_json::json!({})).await?.expect("a new job");
    /// assert!(store.damage_job_in_place(&id));
    /// // It cannot move, so reads and writes of it keep failing.
    /// for _ in 0..2 {
    ///     assert!(store.get(&id).await.is_err());
    /// }
    /// assert!(store.put(&id, Some(v1), &serde_json::json!({})).await.is_err());
    /// assert!(store.delete(&id, v1).await.is_err());
    /// assert!(store.list().await?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn damage_job_in_place(&self, id: &JobId) -> bool {
        self.mark_damaged(id, false)
    }

    /// Test hook: marks stored job `id` as written by a newer build of cairn, as a file or
    /// sled store sees a job whose format version is above its own. It is then left exactly
    /// as it is: `get`, `put` and `delete` of it fail with `NewerJobFormat`, and every
    /// listing reports it as [`LeftOutPlace::NewerFormat`]. Returns `false` (and does nothing)
    /// for an unknown job.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{Error, JobId, JobStore, LeftOutPlace, MemoryJobStore};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryJobStore::new();
    /// let id = JobId::new("nightly")?;
    /// let v1 = store.put(&id, None, &serde_json::json!({})).await?.expect("a new job");
    /// assert!(store.plant_newer_format(&id));
    /// assert!(matches!(store.get(&id).await, Err(Error::NewerJobFormat { .. })));
    /// assert!(matches!(store.delete(&id, v1).await, Err(Error::NewerJobFormat { .. })));
    /// // Reported by every listing, and never audited: nothing is wrong with it.
    /// for _ in 0..2 {
    ///     let listing = store.listing().await?;
    ///     assert!(matches!(listing.left_out[0].place, LeftOutPlace::NewerFormat { .. }));
    /// }
    /// assert!(store.read_audit(&id).await?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn plant_newer_format(&self, id: &JobId) -> bool {
        let mut state = self.lock();
        if !state.jobs.contains_key(id) {
            return false;
        }
        state.newer.insert(id.clone());
        true
    }

    fn mark_damaged(&self, id: &JobId, movable: bool) -> bool {
        let mut state = self.lock();
        if !state.jobs.contains_key(id) {
            return false;
        }
        state.damaged.insert(id.clone(), movable);
        true
    }

    fn lock(&self) -> MutexGuard<'_, MemoryJobs> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl JobStore for MemoryJobStore {
    async fn get(&self, id: &JobId) -> Result<Option<StoredJob>> {
        let mut state = self.lock();
        if state.newer.contains(id) {
            return Err(newer_format_error(id));
        }
        match state.meet_damage(id) {
            Some(MetDamage::Quarantined { location }) => Err(Error::Encoding {
                what: "memory job",
                detail: format!("job {id}: {DAMAGE_REASON}; moved to {location}"),
            }),
            Some(MetDamage::LeftInPlace { at }) => Err(left_in_place_error(id, &at)),
            None => Ok(state.jobs.get(id).map(|(version, document)| StoredJob {
                id: id.clone(),
                version: *version,
                document: document.clone(),
            })),
        }
    }

    async fn listing(&self) -> Result<JobListing> {
        let mut state = self.lock();
        let damaged: Vec<JobId> = state.damaged.keys().cloned().collect();
        let mut left_out = Vec::new();
        for id in damaged {
            let place = match state.meet_damage(&id) {
                Some(MetDamage::Quarantined { location }) => LeftOutPlace::Quarantined { location },
                Some(MetDamage::LeftInPlace { at }) => LeftOutPlace::LeftInPlace { at },
                None => continue,
            };
            left_out.push(LeftOutJob {
                name: id.to_string(),
                id: Some(id),
                reason: DAMAGE_REASON.to_owned(),
                place,
            });
        }
        for id in &state.newer {
            left_out.push(LeftOutJob {
                id: Some(id.clone()),
                name: id.to_string(),
                reason: NEWER_REASON.to_owned(),
                place: LeftOutPlace::NewerFormat {
                    at: newer_format_at(id),
                },
            });
        }
        left_out.sort_by(|a, b| a.name.cmp(&b.name));
        let jobs = state
            .jobs
            .iter()
            .filter(|(id, _)| !state.damaged.contains_key(*id) && !state.newer.contains(*id))
            .map(|(id, (version, document))| StoredJob {
                id: id.clone(),
                version: *version,
                document: document.clone(),
            })
            .collect();
        Ok(JobListing { jobs, left_out })
    }

    async fn put(
        &self,
        id: &JobId,
        expected: Option<u64>,
        document: &serde_json::Value,
    ) -> Result<std::result::Result<u64, VersionConflict>> {
        let mut state = self.lock();
        let current = state.current_version(id)?;
        if current != expected {
            return Ok(Err(VersionConflict {
                id: id.clone(),
                expected,
                current,
            }));
        }
        let version = expected.map_or(state.retired + 1, |v| v + 1);
        state.jobs.insert(id.clone(), (version, document.clone()));
        Ok(Ok(version))
    }

    async fn delete(
        &self,
        id: &JobId,
        expected: u64,
    ) -> Result<std::result::Result<(), VersionConflict>> {
        let mut state = self.lock();
        let current = state.current_version(id)?;
        if current != Some(expected) {
            return Ok(Err(VersionConflict {
                id: id.clone(),
                expected: Some(expected),
                current,
            }));
        }
        state.retired = state.retired.max(expected);
        state.jobs.remove(id);
        Ok(Ok(()))
    }

    async fn append_audit(&self, record: &JobAuditRecord) -> Result<()> {
        self.lock().audit.push(record.clone());
        Ok(())
    }

    async fn read_audit(&self, id: &JobId) -> Result<Vec<JobAuditRecord>> {
        Ok(self
            .lock()
            .audit
            .iter()
            .filter(|r| &r.job_id == id)
            .cloned()
            .collect())
    }
}
