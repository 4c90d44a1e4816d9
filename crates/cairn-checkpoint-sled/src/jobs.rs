//! `SledJobStore`: the scheduler's jobs in the same sled database as the runs.
//!
//! # Layout
//!
//! - [`JOBS_TREE`]: key = job id, value = a CRC32C frame (`layout::seal`) of
//!   `{"format_version": 1, "version": n, "document": ...}` as JSON ([`JOB_VALUE_FORMAT_VERSION`];
//!   values written before it had no `format_version` and read as 1). Version compare-and-swap is sled's
//!   `compare_and_swap` on that key, so it is atomic across threads; across processes it is
//!   serialized by construction, since sled lets one process open the database.
//! - [`JOB_AUDIT_TREE`]: key = job id, `/`, 8-byte big-endian id from
//!   `sled::Db::generate_id` (increasing, also across restarts), value = a frame of the
//!   `JobAuditRecord` JSON.
//! - [`JOB_QUARANTINE_TREE`]: key = job id, `/`, 8-byte big-endian id from
//!   `sled::Db::generate_id`, value = the damaged bytes as found. Never deleted.
//! - [`JOB_VERSIONS_TREE`]: key `floor`, value = a frame of `{"format_version": 1, "floor":
//!   n}`: the floor of retired versions (absent: 0).
//!
//! A version is never used twice under one job id (the port's "Versions"). A new job is
//! stored at the floor plus one, in one sled transaction with the check that the id is free.
//! A delete raises the floor to the deleted version in the transaction that removes the job,
//! and a damaged value moved aside raises it to the version it names (when its checksum
//! holds) or else by `UNREAD_VERSION_STEP`, so a crash keeps both or neither. Builds before
//! the floor never open [`JOB_VERSIONS_TREE`], and job values keep their format, so an
//! existing job keeps its version. A floor value that does not check is left where it is,
//! and every create, delete and move aside is refused with `Error::Encoding` until an
//! operator looks; one a newer build wrote is refused with `Error::NewerJobFormat`.
//!
//! A value whose checksum holds and whose `format_version` is above this build's was written
//! by a newer build: it is left exactly as it is (never moved, rewritten, deleted or audited),
//! `get`, `put` and `delete` of it are refused with `Error::NewerJobFormat`, and every listing
//! reports it as `LeftOutPlace::NewerFormat` at `cairn/jobs/<id>`.
//!
//! A listing moves a damaged value aside as `get` does and reports it in `left_out` as
//! quarantined to `cairn/job_quarantine/<id>/<seq>` (that listing only). A key of
//! [`JOBS_TREE`] that is no job id (nothing this store writes) is left where it is and
//! reported by every listing as left in place at `cairn/jobs/<key>`.
//!
//! Every acknowledged write waited for `sled::Db::flush` and the fsync of sled's files after it
//! (the `Durability::Sync` behaviour, whatever the factory's setting: job writes are rare). A failed flush poisons the database
//! handle for this process, shared with `SledFactory`.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use cairn_checkpoint::{
    Error, JobAuditAction, JobAuditRecord, JobId, JobListing, JobStore, LeftOutJob, LeftOutPlace,
    Result, StoredJob, UNREAD_VERSION_STEP, VersionConflict, refuse_newer_floor, wall_clock_now,
};
use serde::{Deserialize, Serialize};

use sled::transaction::{ConflictableTransactionResult, TransactionalTree, abort};

use crate::error::{backend, encoding, transaction};
use crate::factory::SledFactory;
use crate::layout::{seal, unseal};
use crate::shared::Shared;

/// Job documents: key = job id.
pub const JOBS_TREE: &str = "cairn/jobs";
/// Job audit records: key = job id + `/` + 8-byte big-endian sequence.
pub const JOB_AUDIT_TREE: &str = "cairn/job_audit";
/// Damaged job values moved aside: key = job id + `/` + 8-byte big-endian sequence.
pub const JOB_QUARANTINE_TREE: &str = "cairn/job_quarantine";
/// The floor of retired job versions, under the key `floor` (see the module docs).
pub const JOB_VERSIONS_TREE: &str = "cairn/job_versions";

/// The key of the floor in [`JOB_VERSIONS_TREE`].
const FLOOR_KEY: &[u8] = b"floor";
/// The format version of the floor value this build writes, and the highest it reads.
const FLOOR_FORMAT_VERSION: u32 = 1;

/// The format version of the job values this build writes, and the highest it reads.
///
/// A value without a `format_version` (written before it existed) is version 1. A value of a
/// higher version was written by a newer build, and is left as it is (see the module docs).
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{JobId, JobStore};
/// use cairn_checkpoint_sled::{JOB_VALUE_FORMAT_VERSION, JOBS_TREE, SledJobStore, layout};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = SledJobStore::open(dir.path().join("cairn.sled"))?;
/// let id = JobId::new("nightly")?;
/// store.put(&id, None, &serde_json::json!({})).await?.expect("new");
/// let stored = store.db().open_tree(JOBS_TREE)?.get(id.as_str())?.expect("stored");
/// let value: serde_json::Value = serde_json::from_slice(layout::unseal(&stored).expect("intact"))?;
/// assert_eq!(value["format_version"], JOB_VALUE_FORMAT_VERSION);
/// # Ok(()) }
/// ```
pub const JOB_VALUE_FORMAT_VERSION: u32 = 1;

/// How many times a write re-reads after losing sled's compare-and-swap to a concurrent
/// writer of the same key before it reports the conflict it saw last.
const CAS_ROUNDS: usize = 64;

/// The job store of the sled adapter.
///
/// Cheap to clone. Stores built from the same path (or from a `SledFactory` over it) share
/// one database handle in this process.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{JobId, JobStore};
/// use cairn_checkpoint_sled::SledJobStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let store = SledJobStore::open(dir.path().join("cairn.sled"))?;
/// let id = JobId::new("nightly")?;
/// let version = store.put(&id, None, &serde_json::json!({"every_ms": 60000})).await?;
/// assert_eq!(version, Ok(1));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SledJobStore {
    shared: Arc<Shared>,
    jobs: sled::Tree,
    audit: sled::Tree,
    quarantine: sled::Tree,
    versions: sled::Tree,
}

/// The floor value: every job deleted or moved aside had versions up to `floor`.
#[derive(Debug, Serialize, Deserialize)]
struct FloorValue {
    format_version: u32,
    floor: u64,
}

/// The floor read from `raw` (absent: 0). Errors name job `id`, whose write needs it.
fn decode_floor(raw: Option<&[u8]>, id: &JobId) -> Result<u64> {
    let Some(raw) = raw else {
        return Ok(0);
    };
    let at = format!("{JOB_VERSIONS_TREE}/floor");
    let bad = |why: &str| Error::Encoding {
        what: "sled job version floor",
        detail: format!(
            "{at} {why}; it is left where it is, and no job is created, deleted or moved aside until an operator looks"
        ),
    };
    let payload = unseal(raw).ok_or_else(|| bad("fails its checksum"))?;
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|_| bad("does not parse"))?;
    refuse_newer_floor(&value, FLOOR_FORMAT_VERSION, id, &at)?;
    match serde_json::from_value::<FloorValue>(value) {
        Ok(floor) if floor.format_version == FLOOR_FORMAT_VERSION => Ok(floor.floor),
        Ok(_) => Err(bad("has an older format version than this build reads")),
        Err(_) => Err(bad("does not parse")),
    }
}

/// Inside a transaction: raises the floor to at least `to` (`None`: by
/// `UNREAD_VERSION_STEP`) before job `id` leaves the store.
fn raise_floor(
    versions: &TransactionalTree,
    id: &JobId,
    to: Option<u64>,
) -> ConflictableTransactionResult<(), Error> {
    let floor = match decode_floor(versions.get(FLOOR_KEY)?.as_deref(), id) {
        Ok(floor) => floor,
        Err(err) => return abort(err),
    };
    let to = to.unwrap_or_else(|| floor.saturating_add(UNREAD_VERSION_STEP));
    if to > floor {
        let value = FloorValue {
            format_version: FLOOR_FORMAT_VERSION,
            floor: to,
        };
        let json = match serde_json::to_vec(&value) {
            Ok(json) => json,
            Err(err) => return abort(encoding("job version floor", err)),
        };
        versions.insert(FLOOR_KEY, seal(&json))?;
    }
    Ok(())
}

/// The version a damaged value names, when its checksum holds (a value that fails it may
/// have lost any digit of its version).
fn version_named(frame: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(unseal(frame)?).ok()?;
    value.get("version")?.as_u64()
}

#[derive(Debug, Serialize, Deserialize)]
struct JobValue {
    /// Absent from values written before it existed: those are version 1.
    #[serde(default = "first_format")]
    format_version: u32,
    version: u64,
    document: serde_json::Value,
}

fn first_format() -> u32 {
    1
}

/// What a stored value decodes to.
enum Found {
    Good(JobValue),
    Bad(&'static str),
    /// Written by a newer build: what this build does not read.
    Newer(String),
}

fn decode(frame: &[u8]) -> Found {
    let Some(payload) = unseal(frame) else {
        return Found::Bad("its checksum does not match");
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return Found::Bad("it does not parse");
    };
    // The version is read before the rest: a newer build may have changed the other
    // fields, and its value must be left for it, not quarantined as one that does not parse.
    let version = value
        .get("format_version")
        .and_then(serde_json::Value::as_u64);
    if let Some(found) = version.filter(|v| *v > u64::from(JOB_VALUE_FORMAT_VERSION)) {
        return Found::Newer(format!(
            "format version {found} (this build reads {JOB_VALUE_FORMAT_VERSION})"
        ));
    }
    match serde_json::from_value::<JobValue>(value) {
        Ok(value) if value.format_version == JOB_VALUE_FORMAT_VERSION => Found::Good(value),
        Ok(_) => Found::Bad("it has an older format version than this build reads"),
        Err(_) => Found::Bad("it does not parse"),
    }
}

/// The stored frame of a job at `version` holding `document`.
fn sealed_job(version: u64, document: &serde_json::Value) -> Result<Vec<u8>> {
    let value = JobValue {
        format_version: JOB_VALUE_FORMAT_VERSION,
        version,
        document: document.clone(),
    };
    let json = serde_json::to_vec(&value).map_err(|e| encoding("job document", e))?;
    Ok(seal(&json))
}

fn newer_format(id: &JobId, detail: String) -> Error {
    Error::NewerJobFormat {
        job_id: id.clone(),
        at: format!("{JOBS_TREE}/{id}"),
        detail,
    }
}

fn key_with_seq(id: &JobId, seq: u64) -> Vec<u8> {
    let mut key = prefix(id);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn prefix(id: &JobId) -> Vec<u8> {
    let mut key = id.as_str().as_bytes().to_vec();
    key.push(b'/');
    key
}

impl SledJobStore {
    /// Opens (or creates) the sled database in the directory `path`, sharing it with any
    /// `SledFactory` or store of this process over the same path.
    ///
    /// # Errors
    ///
    /// `crate::Error::InUse` when another process holds the database, `crate::Error::Open` when sled cannot open it otherwise;
    /// `Setup` when the trees cannot be opened.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobId, JobStore};
    /// use cairn_checkpoint_sled::{JOBS_TREE, SledFactory, SledJobStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("cairn.sled");
    /// let factory = SledFactory::open(&path)?;
    /// // The factory already has the database open; the store shares its handle.
    /// let store = SledJobStore::open(&path)?;
    /// let id = JobId::new("nightly")?;
    /// store.put(&id, None, &serde_json::json!({})).await?.expect("new");
    /// assert!(factory.db().open_tree(JOBS_TREE)?.contains_key(id.as_str())?);
    /// # Ok(()) }
    /// ```
    pub fn open(path: impl AsRef<Path>) -> std::result::Result<SledJobStore, crate::Error> {
        Self::over(Shared::for_path(path.as_ref())?)
    }

    /// Uses a database the host already opened from the folder `dir` (cairn fsyncs sled's
    /// files there after each flush, as `SledFactoryBuilder::db` explains).
    ///
    /// # Errors
    ///
    /// `NotOpenDatabase` when `dir` holds no open sled database, or another one than `db`
    /// (checked as `SledFactoryBuilder::db` says); `Setup` when the trees
    /// cannot be opened.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobId, JobStore};
    /// use cairn_checkpoint_sled::{JOBS_TREE, SledJobStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let folder = dir.path().join("host.sled");
    /// let db = sled::open(&folder)?;
    /// let store = SledJobStore::from_db(db.clone(), &folder)?;
    /// let id = JobId::new("nightly")?;
    /// store.put(&id, None, &serde_json::json!({})).await?.expect("new");
    /// // The job is in cairn's tree of the host's database.
    /// assert!(db.open_tree(JOBS_TREE)?.contains_key(id.as_str())?);
    /// # Ok(()) }
    /// ```
    pub fn from_db(
        db: sled::Db,
        dir: impl AsRef<Path>,
    ) -> std::result::Result<SledJobStore, crate::Error> {
        Self::over(Shared::for_db(db, dir.as_ref())?)
    }

    /// Uses the database of `factory`.
    ///
    /// # Errors
    ///
    /// `Setup` when the trees cannot be opened.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobId, JobStore};
    /// use cairn_checkpoint_sled::{SledFactory, SledJobStore};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let factory = SledFactory::open(dir.path().join("cairn.sled"))?;
    /// let id = JobId::new("nightly")?;
    /// let store = SledJobStore::sharing(&factory)?;
    /// store.put(&id, None, &serde_json::json!({})).await?.expect("new");
    /// // Another store over the same factory sees the job: they share one database.
    /// let stored = SledJobStore::sharing(&factory)?.get(&id).await?.expect("stored");
    /// assert_eq!(stored.version, 1);
    /// # Ok(()) }
    /// ```
    pub fn sharing(factory: &SledFactory) -> std::result::Result<SledJobStore, crate::Error> {
        Self::over(factory.shared.clone())
    }

    fn over(shared: Arc<Shared>) -> std::result::Result<SledJobStore, crate::Error> {
        let setup = |source| crate::Error::Setup { source };
        Ok(SledJobStore {
            jobs: shared.db.open_tree(JOBS_TREE).map_err(setup)?,
            audit: shared.db.open_tree(JOB_AUDIT_TREE).map_err(setup)?,
            quarantine: shared.db.open_tree(JOB_QUARANTINE_TREE).map_err(setup)?,
            versions: shared.db.open_tree(JOB_VERSIONS_TREE).map_err(setup)?,
            shared,
        })
    }

    /// The database handle (hosts may read the `cairn/job*` trees; tests damage them).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobId, JobStore};
    /// use cairn_checkpoint_sled::{JOBS_TREE, SledJobStore, layout};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let store = SledJobStore::open(dir.path().join("cairn.sled"))?;
    /// let id = JobId::new("nightly")?;
    /// store.put(&id, None, &serde_json::json!({"every_ms": 60000})).await?.expect("new");
    /// // Each job is a checksummed frame of its version and document.
    /// let stored = store.db().open_tree(JOBS_TREE)?.get(id.as_str())?.expect("stored");
    /// let payload = layout::unseal(&stored).expect("intact");
    /// let value: serde_json::Value = serde_json::from_slice(payload)?;
    /// assert_eq!(value["version"], 1);
    /// assert_eq!(value["document"]["every_ms"], 60000);
    /// # Ok(()) }
    /// ```
    pub fn db(&self) -> &sled::Db {
        &self.shared.db
    }

    /// Moves the damaged value `found` of job `id` aside (if it is still the stored one) and
    /// audits it; returns the error to report and where the value went.
    async fn quarantine(
        &self,
        id: &JobId,
        found: &sled::IVec,
        reason: &str,
    ) -> Result<(Error, String)> {
        let now = wall_clock_now();
        let seq = self.shared.db.generate_id().map_err(backend)?;
        let qkey = key_with_seq(id, seq);
        let location = format!("{JOB_QUARANTINE_TREE}/{id}/{seq}");
        let message = format!("job {id}: its stored value {reason}; moved to {location}");
        let record = JobAuditRecord::new(
            now,
            id.clone(),
            JobAuditAction::Quarantined,
            message.clone(),
        )
        .with_detail(serde_json::json!({ "location": location, "reason": reason }));
        let (audit_key, audit_frame) = self.audit_entry(&record)?;
        // One transaction: the copy, the removal, the floor and the audit record are stored
        // together, so a crash never leaves a value moved without its record. Only the bytes
        // judged are removed; a writer that replaced them meanwhile wins. The floor rises
        // with the removal, so a job added again starts above the value's versions.
        let last = version_named(found);
        let key = id.as_str().as_bytes();
        let trees = (&self.jobs, &self.versions, &self.quarantine, &self.audit);
        sled::Transactional::transaction(&trees, |(jobs, versions, quarantine, audit)| {
            quarantine.insert(qkey.as_slice(), found.clone())?;
            if jobs.get(key)?.as_ref() == Some(found) {
                raise_floor(versions, id, last)?;
                jobs.remove(key)?;
            }
            audit.insert(audit_key.as_slice(), audit_frame.as_slice())?;
            Ok(())
        })
        .map_err(transaction)?;
        #[cfg(test)]
        self.shared.after_job_moved.run();
        self.shared.flush_now().await?;
        Ok((
            Error::Encoding {
                what: "sled job value",
                detail: message,
            },
            location,
        ))
    }

    /// Reads job `id`: its raw bytes and decoded value, quarantining damage.
    async fn read(&self, id: &JobId) -> Result<Option<(sled::IVec, JobValue)>> {
        let Some(raw) = self.jobs.get(id.as_str().as_bytes()).map_err(backend)? else {
            return Ok(None);
        };
        match decode(&raw) {
            Found::Good(value) => Ok(Some((raw, value))),
            // Refused, never moved: no write replaces or deletes it either.
            Found::Newer(detail) => Err(newer_format(id, detail)),
            Found::Bad(reason) => Err(self.quarantine(id, &raw, reason).await?.0),
        }
    }

    /// Like `read`, but a damaged value is quarantined and counts as no job.
    async fn read_for_write(&self, id: &JobId) -> Result<Option<(sled::IVec, JobValue)>> {
        match self.read(id).await {
            Err(Error::Encoding { .. }) => Ok(None),
            other => other,
        }
    }

    /// Stores `document` as new job `id` at the floor plus one, if the id is still free
    /// (`None` when a writer took it meanwhile). Not flushed.
    fn create(&self, id: &JobId, document: &serde_json::Value) -> Result<Option<u64>> {
        let key = id.as_str().as_bytes();
        let trees = (&self.jobs, &self.versions);
        sled::Transactional::transaction(&trees, |(jobs, versions)| {
            if jobs.get(key)?.is_some() {
                return Ok(None);
            }
            let version = match decode_floor(versions.get(FLOOR_KEY)?.as_deref(), id)
                .and_then(|floor| {
                    floor.checked_add(1).ok_or_else(|| Error::Encoding {
                        what: "sled job version floor",
                        detail: format!("{JOB_VERSIONS_TREE}/floor holds the highest version"),
                    })
                })
                .and_then(|version| Ok((version, sealed_job(version, document)?)))
            {
                Ok(version) => version,
                Err(err) => return abort(err),
            };
            jobs.insert(key, version.1)?;
            Ok(Some(version.0))
        })
        .map_err(transaction)
    }

    /// The key and the frame of `record` in [`JOB_AUDIT_TREE`].
    fn audit_entry(&self, record: &JobAuditRecord) -> Result<(Vec<u8>, Vec<u8>)> {
        let json = serde_json::to_vec(record).map_err(|e| encoding("job audit record", e))?;
        let seq = self.shared.db.generate_id().map_err(backend)?;
        Ok((key_with_seq(&record.job_id, seq), seal(&json)))
    }

    fn append_audit_unflushed(&self, record: &JobAuditRecord) -> Result<()> {
        let (key, frame) = self.audit_entry(record)?;
        self.audit.insert(key, frame).map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl JobStore for SledJobStore {
    async fn get(&self, id: &JobId) -> Result<Option<StoredJob>> {
        Ok(self.read(id).await?.map(|(_, value)| StoredJob {
            id: id.clone(),
            version: value.version,
            document: value.document,
        }))
    }

    async fn listing(&self) -> Result<JobListing> {
        let mut listing = JobListing::default();
        let keys: Vec<sled::IVec> = self
            .jobs
            .iter()
            .keys()
            .collect::<std::result::Result<_, _>>()
            .map_err(backend)?;
        for key in keys {
            let Some(id) = std::str::from_utf8(&key)
                .ok()
                .and_then(|text| JobId::new(text).ok())
            else {
                // No job can have this key (`put` takes job ids only), and no audit record
                // can name it: it is reported and left for a person to look at.
                let name = String::from_utf8_lossy(&key).into_owned();
                listing.left_out.push(LeftOutJob {
                    id: None,
                    reason: format!("`{name}` is no job id, so it is no job"),
                    place: LeftOutPlace::LeftInPlace {
                        at: format!("{JOBS_TREE}/{name}"),
                    },
                    name,
                });
                continue;
            };
            let Some(raw) = self.jobs.get(key).map_err(backend)? else {
                continue;
            };
            match decode(&raw) {
                Found::Good(value) => listing.jobs.push(StoredJob {
                    id,
                    version: value.version,
                    document: value.document,
                }),
                // Nothing is wrong with it: not moved, not audited, reported every listing.
                Found::Newer(detail) => listing.left_out.push(LeftOutJob {
                    name: id.to_string(),
                    reason: format!("it was written by a newer cairn build ({detail})"),
                    place: LeftOutPlace::NewerFormat {
                        at: format!("{JOBS_TREE}/{id}"),
                    },
                    id: Some(id),
                }),
                Found::Bad(reason) => {
                    let (_, location) = self.quarantine(&id, &raw, reason).await?;
                    listing.left_out.push(LeftOutJob {
                        name: id.to_string(),
                        id: Some(id),
                        reason: reason.to_owned(),
                        place: LeftOutPlace::Quarantined { location },
                    });
                }
            }
        }
        listing.left_out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listing)
    }

    async fn put(
        &self,
        id: &JobId,
        expected: Option<u64>,
        document: &serde_json::Value,
    ) -> Result<std::result::Result<u64, VersionConflict>> {
        let mut current = None;
        for _ in 0..CAS_ROUNDS {
            let found = self.read_for_write(id).await?;
            current = found.as_ref().map(|(_, value)| value.version);
            if current != expected {
                break;
            }
            let written = match expected {
                Some(v) => {
                    // A stored version is a checksummed number, not one this store could
                    // have reached: at the top there is no next version to give.
                    let next = v.checked_add(1).ok_or_else(|| Error::Encoding {
                        what: "sled job value",
                        detail: format!(
                            "job {id} holds the highest version ({v}) in {JOBS_TREE}/{id}; it \
                             is left where it is and cannot be updated"
                        ),
                    })?;
                    let sealed = sealed_job(next, document)?;
                    self.jobs
                        .compare_and_swap(
                            id.as_str().as_bytes(),
                            found.as_ref().map(|(raw, _)| raw),
                            Some(sealed),
                        )
                        .map_err(backend)?
                        .is_ok()
                        .then_some(next)
                }
                None => self.create(id, document)?,
            };
            if let Some(version) = written {
                self.shared.flush_now().await?;
                return Ok(Ok(version));
            }
        }
        Ok(Err(VersionConflict {
            id: id.clone(),
            expected,
            current,
        }))
    }

    async fn delete(
        &self,
        id: &JobId,
        expected: u64,
    ) -> Result<std::result::Result<(), VersionConflict>> {
        let mut current = None;
        for _ in 0..CAS_ROUNDS {
            let Some((raw, value)) = self.read_for_write(id).await? else {
                current = None;
                break;
            };
            current = Some(value.version);
            if value.version != expected {
                break;
            }
            let key = id.as_str().as_bytes();
            let trees = (&self.jobs, &self.versions);
            // The floor is raised in the transaction that removes the job: a job added again
            // starts above `expected`, and a crash keeps both changes or neither.
            let deleted = sled::Transactional::transaction(&trees, |(jobs, versions)| {
                if jobs.get(key)?.as_ref() != Some(&raw) {
                    return Ok(false);
                }
                raise_floor(versions, id, Some(expected))?;
                jobs.remove(key)?;
                Ok(true)
            })
            .map_err(transaction)?;
            if deleted {
                self.shared.flush_now().await?;
                return Ok(Ok(()));
            }
        }
        Ok(Err(VersionConflict {
            id: id.clone(),
            expected: Some(expected),
            current,
        }))
    }

    async fn append_audit(&self, record: &JobAuditRecord) -> Result<()> {
        self.append_audit_unflushed(record)?;
        self.shared.flush_now().await
    }

    async fn read_audit(&self, id: &JobId) -> Result<Vec<JobAuditRecord>> {
        let mut records = Vec::new();
        for entry in self.audit.scan_prefix(prefix(id)) {
            let (key, frame) = entry.map_err(backend)?;
            let payload = unseal(&frame).ok_or_else(|| Error::Encoding {
                what: "sled job audit record",
                detail: format!(
                    "job {id}: audit record with key {key:?} in {JOB_AUDIT_TREE} fails its checksum"
                ),
            })?;
            records.push(
                serde_json::from_slice(payload).map_err(|e| encoding("job audit record", e))?,
            );
        }
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    //! A kill at a private point (right after a damaged value left the jobs tree) needs a hook
    //! in `Shared`, so this test is here. The kill is real: the test binary runs itself as a
    //! child that aborts at the hook, and the parent reads what the child left on disk.

    use cairn_checkpoint::{JobId, JobStore};

    use super::{JOB_AUDIT_TREE, JOBS_TREE, SledJobStore, prefix};

    const CHILD_DB: &str = "CAIRN_SLED_JOBS_TEST_CHILD_DB";
    const TEST_NAME: &str =
        "jobs::tests::a_kill_right_after_a_damaged_job_is_moved_aside_keeps_its_audit_record";

    fn job() -> JobId {
        JobId::new("damaged").expect("valid id")
    }

    /// The child: plants a value that fails its checksum, reads it (which moves it aside),
    /// and aborts once the move is done, after handing sled's buffers to the OS.
    async fn move_then_abort(path: &str) -> ! {
        let store = SledJobStore::open(path).expect("open");
        let jobs = store.db().open_tree(JOBS_TREE).expect("jobs tree");
        jobs.insert(job().as_str(), &b"\0\0\0\0garbage"[..])
            .expect("plant");
        let db = store.db().clone();
        store.shared.after_job_moved.set(move || {
            db.flush().expect("flush");
            std::process::abort();
        });
        let _ = store.get(&job()).await;
        unreachable!("the hook aborts");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kill_right_after_a_damaged_job_is_moved_aside_keeps_its_audit_record() {
        if let Ok(path) = std::env::var(CHILD_DB) {
            move_then_abort(&path).await;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jobs.sled");
        let child = std::process::Command::new(std::env::current_exe().expect("this binary"))
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DB, &path)
            .output()
            .expect("the child runs");
        assert!(!child.status.success(), "the child aborted");
        // Read the trees as the child left them, before any store looks at them.
        let db = sled::open(&path).expect("the files the child left");
        let jobs = db.open_tree(JOBS_TREE).expect("jobs tree");
        assert!(
            !jobs.contains_key(job().as_str()).expect("get"),
            "the child got as far as the move: {}",
            String::from_utf8_lossy(&child.stderr)
        );
        let audit = db.open_tree(JOB_AUDIT_TREE).expect("audit tree");
        let records = audit.scan_prefix(prefix(&job())).count();
        assert_eq!(records, 1, "the value moved aside has its audit record");
    }
}
