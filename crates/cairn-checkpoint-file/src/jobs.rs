//! `FileJobStore`: the scheduler's jobs as one JSON file per job.
//!
//! # Layout
//!
//! ```text
//! <root>/jobs/                    mode 0700
//!   <job_id>.json                 {format_version, id, version, crc32c, envelope_crc32c,
//!                                 document}, mode 0600, replaced atomically (temp, fsync,
//!                                 rename, fsync dir)
//!   .lock                         held (blocking File::lock) around every read-check-write,
//!                                 so version compare-and-swap is atomic across processes
//!   audit.jsonl                   one `<crc32c hex> <AuditRecord JSON>` line per record,
//!                                 fsynced per line; appends hold a lock on the file and cut a
//!                                 torn last line (unterminated or failing its checksum) first,
//!                                 audited as `TornLineCut` with the cut bytes in its detail;
//!                                 readers skip it, and refuse any other bad line
//!   quarantine/<job_id>-<ms>.json a damaged job file, moved aside, never deleted
//!   .version-floor                {format_version, floor, crc32c}: the floor of retired
//!                                 versions (absent: 0), replaced atomically like a job file
//!   .tmp-<job_id>-<pid>-<n>       a write in progress (made and renamed under `.lock`)
//!   .tmp-version-floor-<pid>-<n>  the same, for `.version-floor`
//! ```
//!
//! # Versions
//!
//! A version is never used twice under one job id (the port's "Versions"). A new job is
//! stored at the floor plus one. Before a delete removes a job file, the floor is raised to
//! the deleted version and made durable (temp file, fsync, rename, folder fsync); before a
//! damaged file is moved aside, to the version the file names, when it still parses, names
//! its job and its envelope checksum holds (so the version is the one written), or else by
//! `UNREAD_VERSION_STEP` (a file without an envelope checksum included). Builds before the
//! floor never read or write `.version-floor` (their listings read `*.json` only, and their
//! first write removes only `.tmp-*`), so the job files keep their format and an existing
//! job keeps its version. A `.version-floor`
//! that does not check is left where it is, and every create, delete and move aside is
//! refused with `Error::Encoding` naming it until an operator looks (removing it gives up
//! the guarantee for the jobs deleted before); one a newer build wrote is refused with
//! `Error::NewerJobFormat` and left as it is.
//!
//! Temp files are the one thing the store deletes. A temp file is a write that was never
//! acknowledged (the job file is the state; the temp file becomes it only by the rename), so
//! one left by a failed write (a full disk) or a crash holds nothing anyone was promised. A
//! write that fails removes its own temp file at once; and the first write through a handle
//! removes every `.tmp-*` regular file it finds, under `.lock`: every write makes and renames
//! its temp file while holding that lock, so none of them belongs to a live writer. Reads
//! take no lock and remove nothing, so a read-only open still writes nothing.
//!
//! # Checksums
//!
//! `crc32c` covers the compact JSON encoding of `document`; `envelope_crc32c` covers the
//! rest: `format_version`, `id`, `version` and `crc32c`, in decimal, one space apart (so the
//! document through its checksum). Builds before `envelope_crc32c` check only `crc32c`, so a
//! damaged version read as a valid one, and every compare-and-swap on the job rested on an
//! unchecked number. They ignore fields they do not know (the envelope is decoded without
//! `deny_unknown_fields`), so they still read and update what this build writes, at the same
//! format version; their rewrite drops `envelope_crc32c`. A file without it (written by
//! such a build) reads as before, its version unchecked; one whose `envelope_crc32c` fails
//! is damaged, as below. A damaged key name (`envelope_crc32c` spelled otherwise) reads as a
//! file without it: that much this build cannot tell from an older build's file.
//!
//! `.version-floor`'s `crc32c` covers `floor` only. Its `format_version`, like a job file's,
//! is never read as anything but 1 without a checksum: a higher one is refused as a newer
//! build's and left in place (damage there is misnamed, never taken in), a lower one is
//! damage.
//!
//! # Other builds and damage
//!
//! A job file whose
//! `format_version` is above this build's was written by a newer build: it is left exactly
//! where it is (never moved, rewritten, deleted or audited), `get`, `put` and `delete` of it
//! are refused with `Error::NewerJobFormat`, and every listing reports it as
//! `LeftOutPlace::NewerFormat`, so a rollback to this build loses none of a newer build's
//! jobs. (Builds before this rule quarantined such a file, as below.)
//!
//! A job file that does not parse,
//! fails either checksum, has an older format version or names another job is moved to
//! `quarantine/`, audited as `Quarantined`, and reported by `get` as `Error::Encoding`
//! naming the job, the file and where it went; a listing leaves it out of its jobs and
//! reports it in `left_out` as quarantined (that listing only: it is gone afterwards). So is
//! an entry named like a job file that is not one (a folder, a FIFO, a socket, a dangling
//! symbolic link, a file that may not be opened): one stray entry never fails a listing. The
//! record is appended first, then the entry is renamed and both folders are fsynced. When an
//! entry cannot be read for another reason (or cannot be moved), a listing leaves it in place,
//! with a `LeftInPlace` audit record naming its `path` (once per store handle), and reports
//! it as left in place (every listing, while it stays), while `get` of that job reports the
//! I/O error. A `*.json` entry whose name is no job id is left in place and reported too (no
//! audit record can name it). (Builds before `LeftInPlace` wrote a `Quarantined` record with
//! a null `location` instead; such records still read.)
//!
//! A failed fsync is fatal: the store refuses every later write with `SyncFailed` (never
//! retried, as the kernel may have dropped the dirty pages). Reads write nothing either: a
//! `get` or `listing` that would quarantine or audit a damaged entry fails with `SyncFailed`
//! instead, while good jobs still read. Build a new store to recover.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cairn_checkpoint::{
    Error, JobAuditAction, JobAuditRecord, JobId, JobListing, JobStore, LeftOutJob, LeftOutPlace,
    Result, StoredJob, UNREAD_VERSION_STEP, VersionConflict, refuse_newer_floor, wall_clock_now,
};
use serde::{Deserialize, Serialize};

use crate::line_log;

/// The format version of job files this build writes and reads.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{JobId, JobStore};
/// use cairn_checkpoint_file::{FileJobStore, JOB_FILE_FORMAT_VERSION};
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let root = tempfile::tempdir()?;
/// let store = FileJobStore::open(root.path())?;
/// let id = JobId::new("nightly")?;
/// store.put(&id, None, &serde_json::json!({"every_ms": 60000})).await?.expect("new");
/// // Every job file names the format it was written in.
/// let file: serde_json::Value = serde_json::from_slice(&std::fs::read(store.job_path(&id))?)?;
/// assert_eq!(file["format_version"], JOB_FILE_FORMAT_VERSION);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub const JOB_FILE_FORMAT_VERSION: u32 = 1;

/// The format version of `.version-floor` this build writes, and the highest it reads.
const FLOOR_FORMAT_VERSION: u32 = 1;

const LOCK_FILE: &str = ".lock";
const FLOOR_FILE: &str = ".version-floor";
const AUDIT_FILE: &str = "audit.jsonl";
const QUARANTINE_DIR: &str = "quarantine";
/// How the temp files of writes begin (`.tmp-<job_id>-<pid>-<n>`).
const TEMP_PREFIX: &str = ".tmp-";

/// The job store of the file adapter. Cheap to clone; clones share the poison flag.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{JobId, JobStore};
/// use cairn_checkpoint_file::FileJobStore;
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let root = tempfile::tempdir().unwrap();
/// let id = JobId::new("nightly").unwrap();
/// let store = FileJobStore::open(root.path())?;
/// store.put(&id, None, &serde_json::json!({"every_ms": 60000})).await?.expect("new");
/// drop(store);
/// // A restart reads the job back.
/// let store = FileJobStore::open(root.path())?;
/// assert_eq!(store.get(&id).await?.expect("stored").version, 1);
/// # Ok::<(), cairn_checkpoint::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FileJobStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The state folder; `dir` is its `jobs/`.
    root: PathBuf,
    dir: PathBuf,
    /// `dir` and its quarantine folder exist and are durable (made or seen by this handle).
    folders_made: AtomicBool,
    poisoned: AtomicBool,
    temp_counter: AtomicU64,
    /// The temp files earlier writes left were removed (by this handle's first write).
    temps_swept: AtomicBool,
    /// Jobs a listing left in place (unreadable, or not movable) and already audited, with
    /// what listings report about them, so a scheduler ticking every second does not append
    /// the same record every second.
    left_out: Mutex<HashMap<JobId, LeftOutJob>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct JobFile {
    format_version: u32,
    id: String,
    version: u64,
    /// CRC32C of the compact JSON of `document`: all that builds before `envelope_crc32c`
    /// check.
    crc32c: u32,
    /// CRC32C over the rest (`envelope_checksum`). Absent from files older builds wrote;
    /// they ignore it, so it needs no new format version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    envelope_crc32c: Option<u32>,
    document: serde_json::Value,
}

impl JobFile {
    /// Whether the envelope checksum holds: `None` for a file an older build wrote.
    fn envelope_holds(&self) -> Option<bool> {
        self.envelope_crc32c.map(|stored| {
            stored == envelope_checksum(self.format_version, &self.id, self.version, self.crc32c)
        })
    }
}

/// CRC32C of a job file's `format_version`, `id`, `version` and `crc32c` in decimal, one
/// space apart (a job id holds no space). It covers the document through `crc32c`, so a
/// damaged document under a sound envelope still names its version truly.
fn envelope_checksum(format_version: u32, id: &str, version: u64, document_crc: u32) -> u32 {
    crc32c::crc32c(format!("{format_version} {id} {version} {document_crc}").as_bytes())
}

/// `.version-floor`: every job deleted or moved aside had versions up to `floor`.
#[derive(Debug, Serialize, Deserialize)]
struct FloorFile {
    format_version: u32,
    floor: u64,
    /// CRC32C of `floor` in decimal.
    crc32c: u32,
}

fn floor_checksum(floor: u64) -> u32 {
    crc32c::crc32c(floor.to_string().as_bytes())
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn checksum(document: &serde_json::Value) -> Result<u32> {
    let bytes = serde_json::to_vec(document).map_err(|e| Error::Encoding {
        what: "job document",
        detail: e.to_string(),
    })?;
    Ok(crc32c::crc32c(&bytes))
}

/// What reading a job file found.
enum Found {
    Missing,
    Good(StoredJob),
    /// Damaged or not a job file at all: quarantine it.
    Bad(String),
    /// Written by a newer build (a format version above this build's): leave it as it is.
    /// Holds what this build does not read.
    Newer(String),
    /// Could not be read for a reason that may pass (say, too many open files): leave it.
    Unreadable(Error),
}

impl FileJobStore {
    /// Opens the job store under `root` (`<root>/jobs`). Nothing is written until the first
    /// write (a job saved, an audit record): that creates the folders (mode 0700) and fsyncs
    /// their parents. Until then the store reads as empty, so listing jobs works on a
    /// read-only state folder that never had any.
    ///
    /// # Errors
    ///
    /// None today (the folder is checked on first use); the `Result` leaves room for checks
    /// that need the disk.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobId, JobStore};
    /// use cairn_checkpoint_file::FileJobStore;
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let root = tempfile::tempdir()?;
    /// let store = FileJobStore::open(root.path())?;
    /// // Opening writes nothing, and a store without a folder reads as empty.
    /// assert!(!store.dir().exists());
    /// assert!(store.listing().await?.jobs.is_empty());
    /// store.put(&JobId::new("nightly")?, None, &serde_json::json!({})).await?.expect("new");
    /// assert!(store.dir().is_dir());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn open(root: impl AsRef<Path>) -> Result<FileJobStore> {
        let root = root.as_ref();
        Ok(FileJobStore {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                dir: root.join("jobs"),
                folders_made: AtomicBool::new(false),
                poisoned: AtomicBool::new(false),
                temp_counter: AtomicU64::new(0),
                temps_swept: AtomicBool::new(false),
                left_out: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The folder holding the job files (made by the first write).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint_file::FileJobStore;
    ///
    /// let root = tempfile::tempdir()?;
    /// let store = FileJobStore::open(root.path())?;
    /// assert_eq!(store.dir(), root.path().join("jobs"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The file of job `id`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{JobId, JobStore};
    /// use cairn_checkpoint_file::FileJobStore;
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let root = tempfile::tempdir()?;
    /// let store = FileJobStore::open(root.path())?;
    /// let id = JobId::new("nightly")?;
    /// // Named before the job exists; written by its first save.
    /// assert!(!store.job_path(&id).exists());
    /// store.put(&id, None, &serde_json::json!({})).await?.expect("new");
    /// assert!(store.job_path(&id).is_file());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn job_path(&self, id: &JobId) -> PathBuf {
        self.inner.dir.join(format!("{id}.json"))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|join| Error::Io {
                op: "spawn_blocking",
                path: self.inner.dir.clone(),
                source: io::Error::other(join.to_string()),
            })?
    }
}

/// What a listing found for one job id.
enum Listed {
    Job(StoredJob),
    LeftOut(LeftOutJob),
    /// Removed meanwhile.
    Gone,
}

/// A `*.json` entry of the job folder whose name is no job id: left where it is, reported.
fn not_a_job_name(path: &Path, name: &str, why: &str) -> LeftOutJob {
    LeftOutJob {
        id: None,
        name: name.to_owned(),
        reason: format!("it is named like a job file, but `{name}` is no job id ({why})"),
        place: LeftOutPlace::LeftInPlace {
            at: path.display().to_string(),
        },
    }
}

/// The audit record of an entry that could not be read or moved and stays where it is.
fn left_in_place_record(id: &JobId, path: &Path, err: &Error) -> JobAuditRecord {
    JobAuditRecord::new(
        wall_clock_now(),
        id.clone(),
        JobAuditAction::LeftInPlace,
        format!(
            "job {id}: {} could not be read or moved aside ({err}); it stays in place and is left out of job listings",
            path.display()
        ),
    )
    .with_detail(serde_json::json!({ "path": path.display().to_string(), "reason": err.to_string() }))
}

impl Inner {
    fn path(&self, id: &JobId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn check_poison(&self) -> Result<()> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::SyncFailed {
                path: self.dir.clone(),
                source: io::Error::other(
                    "an earlier fsync of this job store failed; open the store again",
                ),
            });
        }
        Ok(())
    }

    /// Runs an fsync-like step; a failure poisons the store.
    fn sync(&self, path: &Path, step: impl FnOnce() -> io::Result<()>) -> Result<()> {
        step().map_err(|source| {
            self.poisoned.store(true, Ordering::SeqCst);
            Error::SyncFailed {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    fn sync_dir(&self, path: &Path) -> Result<()> {
        self.sync(path, || File::open(path)?.sync_all())
    }

    /// Creates `jobs/` and `jobs/quarantine/` when missing, fsyncing each parent, before the
    /// first write through this handle. Reads never call it, so they work on a read-only
    /// state folder.
    fn make_folders(&self) -> Result<()> {
        if self.folders_made.load(Ordering::Acquire) {
            return Ok(());
        }
        if !self.dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)
                .map_err(io_err("create_dir", &self.dir))?;
            self.sync_dir(&self.root)?;
        }
        let quarantine = self.dir.join(QUARANTINE_DIR);
        if !quarantine.is_dir() {
            match fs::DirBuilder::new().mode(0o700).create(&quarantine) {
                Ok(()) => {}
                // Another handle or process made it meanwhile.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("create_dir", &quarantine)(e)),
            }
            self.sync_dir(&self.dir)?;
        }
        self.folders_made.store(true, Ordering::Release);
        Ok(())
    }

    /// Takes the store lock. Every change to the job files (a read's quarantine included)
    /// happens under it, so a poisoned store is refused here, before the lock file, the
    /// folders or the floor of retired versions could be written.
    fn lock(&self) -> Result<File> {
        self.check_poison()?;
        self.make_folders()?;
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("open", &path))?;
        file.lock().map_err(io_err("lock", &path))?;
        if !self.temps_swept.swap(true, Ordering::SeqCst) {
            self.sweep_temps();
        }
        Ok(file)
    }

    /// Removes the temp files (`.tmp-*`) that earlier writes left behind: a write that hit a
    /// full disk in an older build, or a process that died between creating a temp file and
    /// renaming it. Call with the store lock held: every write makes and renames its temp
    /// file under that lock, so no temp file seen now belongs to a live writer. A temp file
    /// was never acknowledged state, so removing it loses nothing (damaged state, unlike it,
    /// is quarantined, never deleted). Best effort, and not fsynced: a removal that fails,
    /// or that a power loss undoes, leaves the file for the next handle's first write, and it
    /// never fails the write that called it.
    fn sweep_temps(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let ours = entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(TEMP_PREFIX));
            // Only regular files: a folder or a link named like a temp file is not ours.
            if ours && entry.file_type().is_ok_and(|kind| kind.is_file()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    fn read(&self, id: &JobId) -> Result<Found> {
        let path = self.path(id);
        // The type is checked before opening: opening a FIFO for reading would block until a
        // writer comes, and a folder opens fine but fails every read.
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(match fs::symlink_metadata(&path) {
                    Ok(_) => Found::Bad("is a symbolic link to nothing".to_owned()),
                    Err(_) => Found::Missing,
                });
            }
            Err(e) => return Ok(Found::Unreadable(io_err("stat", &path)(e))),
        };
        if !meta.is_file() {
            let kind = if meta.is_dir() {
                "a folder"
            } else {
                "not a regular file"
            };
            return Ok(Found::Bad(format!("is {kind}, not a job file")));
        }
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Ok(Found::Bad(format!("cannot be opened ({e})")));
            }
            Err(e) => return Ok(Found::Unreadable(io_err("read", &path)(e))),
        };
        let value: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(value) => value,
            Err(e) => return Ok(Found::Bad(format!("does not parse ({e})"))),
        };
        // The version is read before the rest: a newer build may have changed any other
        // field, and its file must be left for it, not quarantined as one that does not
        // decode. (A rollback would otherwise move every job the newer build wrote.)
        let version = value
            .get("format_version")
            .and_then(serde_json::Value::as_u64);
        if let Some(found) = version.filter(|v| *v > u64::from(JOB_FILE_FORMAT_VERSION)) {
            return Ok(Found::Newer(format!(
                "format version {found} (this build reads {JOB_FILE_FORMAT_VERSION})"
            )));
        }
        let file: JobFile = match serde_json::from_value(value) {
            Ok(file) => file,
            Err(e) => return Ok(Found::Bad(format!("does not parse ({e})"))),
        };
        if file.format_version != JOB_FILE_FORMAT_VERSION {
            return Ok(Found::Bad(format!(
                "has format version {} (this build reads {JOB_FILE_FORMAT_VERSION})",
                file.format_version
            )));
        }
        // Before the id: a damaged envelope may name any job. Worded like the document's
        // failure, which operators (and `cairn jobs` output) already know.
        if file.envelope_holds() == Some(false) {
            return Ok(Found::Bad(
                "fails its checksum (`envelope_crc32c`, over its format version, id, version and document checksum)"
                    .to_owned(),
            ));
        }
        if file.id != id.as_str() {
            return Ok(Found::Bad(format!("names job `{}`", file.id)));
        }
        if checksum(&file.document)? != file.crc32c {
            return Ok(Found::Bad("fails its checksum".to_owned()));
        }
        Ok(Found::Good(StoredJob {
            id: id.clone(),
            version: file.version,
            document: file.document,
        }))
    }

    /// A free path `quarantine/<id>-<millis>.json`: a rename onto an earlier quarantined
    /// file would delete it, and onto an earlier folder would fail.
    fn quarantine_target(&self, id: &JobId) -> PathBuf {
        let qdir = self.dir.join(QUARANTINE_DIR);
        let mut millis = wall_clock_now().0;
        loop {
            let candidate = qdir.join(format!("{id}-{millis}.json"));
            if fs::symlink_metadata(&candidate).is_err() {
                return candidate;
            }
            millis += 1;
        }
    }

    /// Moves a damaged job file (or a stray entry with its name) aside and audits it: the
    /// floor of retired versions raised first, then the record, then the rename, then both
    /// folders are fsynced. Call with the store lock held. Returns the error `get` reports
    /// and where the entry went; an `Io` error with op `rename` means the entry stayed in
    /// place.
    fn quarantine(&self, id: &JobId, reason: &str) -> Result<(Error, PathBuf)> {
        // Before anything is moved or audited: a job added again once this one is gone
        // starts above every version it had.
        let last = self.last_version_of_damaged(id)?;
        self.raise_floor(id, last)?;
        let from = self.path(id);
        let to = self.quarantine_target(id);
        let message = format!(
            "job {id}: {} {reason}; moved to {}",
            from.display(),
            to.display()
        );
        self.append_audit(
            &JobAuditRecord::new(
                wall_clock_now(),
                id.clone(),
                JobAuditAction::Quarantined,
                message.clone(),
            )
            .with_detail(serde_json::json!({
                "location": to.display().to_string(),
                "reason": reason,
            })),
        )?;
        if let Err(e) = fs::rename(&from, &to) {
            // The record above names a move that did not happen: say so.
            let err = io_err("rename", &from)(e);
            self.append_audit(&left_in_place_record(id, &from, &err))?;
            return Err(err);
        }
        self.sync_dir(&self.dir.join(QUARANTINE_DIR))?;
        self.sync_dir(&self.dir)?;
        Ok((
            Error::Encoding {
                what: "job file",
                detail: message,
            },
            to,
        ))
    }

    /// Leaves job `id` out of a listing, in place, and returns what the listing reports.
    /// `unaudited`: the error to audit it with once per store handle (`None`: the caller
    /// audited it already).
    fn leave_out(
        &self,
        id: &JobId,
        reason: String,
        unaudited: Option<&Error>,
    ) -> Result<LeftOutJob> {
        let path = self.path(id);
        let entry = LeftOutJob {
            id: Some(id.clone()),
            name: id.to_string(),
            reason,
            place: LeftOutPlace::LeftInPlace {
                at: path.display().to_string(),
            },
        };
        let first = self
            .left_out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.clone(), entry.clone())
            .is_none();
        if let (true, Some(err)) = (first, unaudited) {
            self.append_audit(&left_in_place_record(id, &path, err))?;
        }
        Ok(entry)
    }

    /// What an earlier listing through this handle reported about job `id`, left in place.
    fn left_out_before(&self, id: &JobId) -> Option<LeftOutJob> {
        self.left_out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    /// Forgets that job `id` was left out, so a new failure is audited again.
    fn readable_again(&self, id: &JobId) {
        self.left_out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }

    /// The refusal of job `id`, which a newer build wrote.
    fn newer(&self, id: &JobId, detail: String) -> Error {
        Error::NewerJobFormat {
            job_id: id.clone(),
            at: self.path(id).display().to_string(),
            detail,
        }
    }

    /// Reads job `id`; quarantines (under the lock) a damaged file, and refuses one a newer
    /// build wrote without touching it.
    fn get(&self, id: &JobId) -> Result<std::result::Result<Option<StoredJob>, Error>> {
        match self.read(id)? {
            Found::Missing => Ok(Ok(None)),
            Found::Good(job) => Ok(Ok(Some(job))),
            Found::Unreadable(err) => Err(err),
            Found::Newer(detail) => Err(self.newer(id, detail)),
            Found::Bad(_) => {
                let _lock = self.lock()?;
                // A writer may have replaced the file since: decide on what is there now.
                match self.read(id)? {
                    Found::Missing => Ok(Ok(None)),
                    Found::Good(job) => Ok(Ok(Some(job))),
                    Found::Unreadable(err) => Err(err),
                    Found::Newer(detail) => Err(self.newer(id, detail)),
                    Found::Bad(reason) => Ok(Err(self.quarantine(id, &reason)?.0)),
                }
            }
        }
    }

    /// The version stored now (a damaged file is quarantined and counts as none; a file a
    /// newer build wrote is refused, so no write replaces or deletes it). Call with the
    /// store lock held.
    fn current_version(&self, id: &JobId) -> Result<Option<u64>> {
        match self.read(id)? {
            Found::Missing => Ok(None),
            Found::Good(job) => Ok(Some(job.version)),
            Found::Unreadable(err) => Err(err),
            Found::Newer(detail) => Err(self.newer(id, detail)),
            Found::Bad(reason) => {
                self.quarantine(id, &reason)?;
                Ok(None)
            }
        }
    }

    fn put(
        &self,
        id: &JobId,
        expected: Option<u64>,
        document: &serde_json::Value,
    ) -> Result<std::result::Result<u64, VersionConflict>> {
        self.check_poison()?;
        let _lock = self.lock()?;
        let current = self.current_version(id)?;
        if current != expected {
            return Ok(Err(VersionConflict {
                id: id.clone(),
                expected,
                current,
            }));
        }
        let version = match expected {
            // An older build's file carries its version unchecked, so it may be at the top:
            // there is no next version to give, and a wrap would reuse one.
            Some(v) => v.checked_add(1).ok_or_else(|| Error::Encoding {
                what: "job file",
                detail: format!(
                    "{} holds the highest version ({v}); it is left where it is and cannot be                      updated",
                    self.path(id).display()
                ),
            })?,
            // Above every version a job under any id had before, so above this id's.
            None => self
                .read_floor(id)?
                .checked_add(1)
                .ok_or_else(|| Error::Encoding {
                    what: "job version floor",
                    detail: format!("{} holds the highest version", self.floor_path().display()),
                })?,
        };
        let crc32c = checksum(document)?;
        let file = JobFile {
            format_version: JOB_FILE_FORMAT_VERSION,
            id: id.to_string(),
            version,
            crc32c,
            envelope_crc32c: Some(envelope_checksum(
                JOB_FILE_FORMAT_VERSION,
                id.as_str(),
                version,
                crc32c,
            )),
            document: document.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| Error::Encoding {
            what: "job file",
            detail: e.to_string(),
        })?;
        self.replace_file(&self.path(id), id.as_str(), "rename", &bytes)?;
        Ok(Ok(version))
    }

    /// Replaces `target` in the job folder with `bytes` the way every job file is written:
    /// a temp file `.tmp-<tag>-<pid>-<n>`, fsynced, renamed over `target` (an error naming
    /// `rename_op` when that fails), and the folder fsynced. Call with the store lock held.
    fn replace_file(
        &self,
        target: &Path,
        tag: &str,
        rename_op: &'static str,
        bytes: &[u8],
    ) -> Result<()> {
        let temp = self.dir.join(format!(
            "{TEMP_PREFIX}{tag}-{}-{}",
            std::process::id(),
            self.temp_counter.fetch_add(1, Ordering::Relaxed)
        ));
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io_err("create", &temp))?;
        let written = out
            .write_all(bytes)
            .map_err(io_err("write", &temp))
            .and_then(|()| self.sync(&temp, || out.sync_all()));
        drop(out);
        let renamed =
            written.and_then(|()| fs::rename(&temp, target).map_err(io_err(rename_op, &temp)));
        if let Err(err) = renamed {
            // This write's own temp file, never acknowledged: removed now (best effort), not
            // left for the next handle (on a full disk, a scheduler would leave one per tick).
            let _ = fs::remove_file(&temp);
            return Err(err);
        }
        self.sync_dir(&self.dir)
    }

    fn floor_path(&self) -> PathBuf {
        self.dir.join(FLOOR_FILE)
    }

    /// The floor of retired versions (0 when no job was ever deleted or moved aside).
    /// Errors name job `id`, the job whose write needs the floor. Call with the store lock
    /// held.
    fn read_floor(&self, id: &JobId) -> Result<u64> {
        let path = self.floor_path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let bad = |why: String| Error::Encoding {
            what: "job version floor",
            detail: format!(
                "{} {why}; it is left where it is, and no job is created, deleted or moved aside until an operator looks (removing it lets a job deleted before be added again at a version it had)",
                path.display()
            ),
        };
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("does not parse ({e})")))?;
        refuse_newer_floor(
            &value,
            FLOOR_FORMAT_VERSION,
            id,
            &path.display().to_string(),
        )?;
        let file: FloorFile =
            serde_json::from_value(value).map_err(|e| bad(format!("does not parse ({e})")))?;
        if file.format_version != FLOOR_FORMAT_VERSION {
            return Err(bad(format!(
                "has format version {} (this build reads {FLOOR_FORMAT_VERSION})",
                file.format_version
            )));
        }
        if floor_checksum(file.floor) != file.crc32c {
            return Err(bad("fails its checksum".to_owned()));
        }
        Ok(file.floor)
    }

    /// Raises the floor of retired versions to at least `to`, durably, before job `id`
    /// leaves the store. Call with the store lock held.
    fn raise_floor(&self, id: &JobId, to: u64) -> Result<()> {
        if to <= self.read_floor(id)? {
            return Ok(());
        }
        let file = FloorFile {
            format_version: FLOOR_FORMAT_VERSION,
            floor: to,
            crc32c: floor_checksum(to),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| Error::Encoding {
            what: "job version floor",
            detail: e.to_string(),
        })?;
        // Its own rename op: a failed rename of a job file means the job stayed in place.
        self.replace_file(&self.floor_path(), "version-floor", "rename_floor", &bytes)
    }

    /// The highest version the job file of `id` can have held, before it is moved aside:
    /// the version it names when it still parses, names `id` and its envelope checksum
    /// holds, else the floor plus `UNREAD_VERSION_STEP`. Call with the store lock held.
    fn last_version_of_damaged(&self, id: &JobId) -> Result<u64> {
        // A file an older build wrote has no envelope checksum: its version may have lost
        // any digit, as may one whose envelope fails, so neither is trusted.
        let named = fs::read(self.path(id))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<JobFile>(&bytes).ok())
            .filter(|file| file.id == id.as_str() && file.envelope_holds() == Some(true))
            .map(|file| file.version);
        match named {
            Some(version) => Ok(version),
            None => Ok(self.read_floor(id)?.saturating_add(UNREAD_VERSION_STEP)),
        }
    }

    fn delete(
        &self,
        id: &JobId,
        expected: u64,
    ) -> Result<std::result::Result<(), VersionConflict>> {
        self.check_poison()?;
        let _lock = self.lock()?;
        let current = self.current_version(id)?;
        if current != Some(expected) {
            return Ok(Err(VersionConflict {
                id: id.clone(),
                expected: Some(expected),
                current,
            }));
        }
        // Durable before the removal: a job added again then starts above `expected`.
        self.raise_floor(id, expected)?;
        let path = self.path(id);
        fs::remove_file(&path).map_err(io_err("remove", &path))?;
        self.sync_dir(&self.dir)?;
        Ok(Ok(()))
    }

    fn listing(&self) -> Result<JobListing> {
        let mut ids = Vec::new();
        let mut left_out = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            // No job was ever saved here: the folder is made by the first write.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(JobListing::default()),
            Err(e) => return Err(io_err("read_dir", &self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err("read_dir", &self.dir))?;
            let name = entry.file_name();
            let lossy = name.to_string_lossy();
            // Temp files (`.tmp-*`) and anything else not named `*.json` are not jobs.
            let Some(stem) = lossy.strip_suffix(".json") else {
                continue;
            };
            match name.to_str().map(|_| JobId::new(stem)) {
                Some(Ok(id)) => ids.push(id),
                // Named like a job file, but no job can have that name: no audit record can
                // name it either, so it is reported, and left for a person to look at.
                Some(Err(invalid)) => {
                    left_out.push(not_a_job_name(&entry.path(), &lossy, invalid.reason))
                }
                None => left_out.push(not_a_job_name(
                    &entry.path(),
                    &lossy,
                    "the name is not UTF-8",
                )),
            }
        }
        ids.sort();
        let mut jobs = Vec::with_capacity(ids.len());
        for id in ids {
            match self.list_one(&id)? {
                Listed::Job(job) => jobs.push(job),
                Listed::LeftOut(entry) => left_out.push(entry),
                Listed::Gone => {}
            }
        }
        left_out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(JobListing { jobs, left_out })
    }

    /// Job `id` for a listing. A damaged entry is quarantined and reported; one that cannot
    /// be read or moved is left in place, audited and reported: one entry never fails the
    /// listing. Store-wide failures (the lock, the audit log, a failed fsync) still do.
    fn list_one(&self, id: &JobId) -> Result<Listed> {
        let found = match self.read(id)? {
            // Tried and audited already through this handle: a scheduler ticking every second
            // would otherwise append two records a second. A new handle tries again.
            Found::Bad(_) => {
                if let Some(before) = self.left_out_before(id) {
                    return Ok(Listed::LeftOut(before));
                }
                let _lock = self.lock()?;
                // A writer may have replaced the file since: decide on what is there now.
                match self.read(id)? {
                    Found::Bad(reason) => match self.quarantine(id, &reason) {
                        Ok((_, location)) => {
                            self.readable_again(id);
                            return Ok(Listed::LeftOut(LeftOutJob {
                                id: Some(id.clone()),
                                name: id.to_string(),
                                reason,
                                place: LeftOutPlace::Quarantined {
                                    location: location.display().to_string(),
                                },
                            }));
                        }
                        // The rename failed and was audited already.
                        Err(err @ Error::Io { op: "rename", .. }) => {
                            let why = format!("it {reason}, and moving it aside failed: {err}");
                            return Ok(Listed::LeftOut(self.leave_out(id, why, None)?));
                        }
                        Err(other) => return Err(other),
                    },
                    other => other,
                }
            }
            other => other,
        };
        match found {
            Found::Good(job) => {
                self.readable_again(id);
                Ok(Listed::Job(job))
            }
            // Nothing is wrong with it: not moved, not audited, reported by every listing.
            Found::Newer(detail) => {
                self.readable_again(id);
                Ok(Listed::LeftOut(LeftOutJob {
                    id: Some(id.clone()),
                    name: id.to_string(),
                    reason: format!("it was written by a newer cairn build ({detail})"),
                    place: LeftOutPlace::NewerFormat {
                        at: self.path(id).display().to_string(),
                    },
                }))
            }
            Found::Unreadable(err) => Ok(Listed::LeftOut(self.leave_out(
                id,
                err.to_string(),
                Some(&err),
            )?)),
            Found::Missing | Found::Bad(_) => Ok(Listed::Gone),
        }
    }

    fn append_audit(&self, record: &JobAuditRecord) -> Result<()> {
        self.check_poison()?;
        self.make_folders()?;
        let path = self.dir.join(AUDIT_FILE);
        let json = serde_json::to_string(record).map_err(|e| Error::Encoding {
            what: "job audit record",
            detail: e.to_string(),
        })?;
        let line = line_log::encode(json.as_bytes());
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("open", &path))?;
        file.lock().map_err(io_err("lock", &path))?;
        // A crash in the middle of an earlier append leaves a torn last line (unterminated,
        // or failing its checksum); cut it so this record does not glue onto it.
        let size = file.metadata().map_err(io_err("stat", &path))?.len();
        let torn = line_log::torn_last_line(|offset, buf| file.read_at(buf, offset), size)
            .map_err(io_err("read", &path))?;
        if let Some(keep) = torn {
            // Never cut silently: the cut is audited with its own write and fdatasync, and
            // its record keeps the bytes it cut.
            let mut cut = vec![0; usize::try_from(size - keep).unwrap_or(usize::MAX)];
            file.read_exact_at(&mut cut, keep)
                .map_err(io_err("read", &path))?;
            let cut_record = torn_line_cut_record(record, keep, &cut);
            let cut_json = serde_json::to_string(&cut_record).map_err(|e| Error::Encoding {
                what: "job audit record",
                detail: e.to_string(),
            })?;
            file.set_len(keep).map_err(io_err("truncate", &path))?;
            file.write_all(&line_log::encode(cut_json.as_bytes()))
                .map_err(io_err("append", &path))?;
            self.sync(&path, || file.sync_data())?;
        }
        file.write_all(&line).map_err(io_err("append", &path))?;
        self.sync(&path, || file.sync_data())?;
        if created {
            self.sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn read_audit(&self, id: &JobId) -> Result<Vec<JobAuditRecord>> {
        let path = self.dir.join(AUDIT_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let records: Vec<JobAuditRecord> =
            line_log::scan(&bytes).map_err(|damaged| Error::Encoding {
                what: "job audit record",
                detail: format!(
                    "line {} of {}: {}",
                    damaged.line,
                    path.display(),
                    damaged.detail
                ),
            })?;
        Ok(records
            .into_iter()
            .filter(|record| &record.job_id == id)
            .collect())
    }
}

/// The audit record of cutting the torn last line `cut` (at byte `offset` of the audit log)
/// before appending `appending`. It names the job the cut line names, when its JSON still
/// says (the loss is that job's), else the job of `appending`; its detail keeps the cut
/// bytes: as text, and in hex too when they are not UTF-8, so nothing is lost.
fn torn_line_cut_record(appending: &JobAuditRecord, offset: u64, cut: &[u8]) -> JobAuditRecord {
    let body = cut.strip_suffix(b"\n").unwrap_or(cut);
    // `<crc32c hex> <JSON>`, or bare JSON from a build before checksums.
    let json = match body.first() {
        Some(b'{') => body,
        _ => body
            .iter()
            .position(|b| *b == b' ')
            .map_or(&[][..], |space| &body[space + 1..]),
    };
    let named = serde_json::from_slice::<serde_json::Value>(json)
        .ok()
        .and_then(|value| value.get("job_id")?.as_str().map(str::to_owned))
        .and_then(|text| JobId::new(text).ok());
    let job_id = named.unwrap_or_else(|| appending.job_id.clone());
    let mut detail = serde_json::json!({
        "file": AUDIT_FILE,
        "offset": offset,
        "bytes": cut.len(),
        "text": String::from_utf8_lossy(cut),
        "appending_for": appending.job_id.as_str(),
    });
    if std::str::from_utf8(cut).is_err() {
        detail["hex"] = serde_json::Value::String(cut.iter().map(|b| format!("{b:02x}")).collect());
    }
    JobAuditRecord::new(
        wall_clock_now(),
        job_id,
        JobAuditAction::TornLineCut,
        format!(
            "cut a torn last line of {} bytes at offset {offset} from the job audit log (its bytes are kept in this record's detail)",
            cut.len()
        ),
    )
    .with_detail(detail)
}

#[async_trait]
impl JobStore for FileJobStore {
    async fn get(&self, id: &JobId) -> Result<Option<StoredJob>> {
        let id = id.clone();
        self.blocking(move |inner| inner.get(&id)?).await
    }

    async fn listing(&self) -> Result<JobListing> {
        self.blocking(Inner::listing).await
    }

    async fn put(
        &self,
        id: &JobId,
        expected: Option<u64>,
        document: &serde_json::Value,
    ) -> Result<std::result::Result<u64, VersionConflict>> {
        let id = id.clone();
        let document = document.clone();
        self.blocking(move |inner| inner.put(&id, expected, &document))
            .await
    }

    async fn delete(
        &self,
        id: &JobId,
        expected: u64,
    ) -> Result<std::result::Result<(), VersionConflict>> {
        let id = id.clone();
        self.blocking(move |inner| inner.delete(&id, expected))
            .await
    }

    async fn append_audit(&self, record: &JobAuditRecord) -> Result<()> {
        let record = record.clone();
        self.blocking(move |inner| inner.append_audit(&record))
            .await
    }

    async fn read_audit(&self, id: &JobId) -> Result<Vec<JobAuditRecord>> {
        let id = id.clone();
        self.blocking(move |inner| inner.read_audit(&id)).await
    }
}
