//! The synchronous core: layout, atomic writes, reading a run back, locks, quarantine and
//! audit. The async port methods run these on tokio's blocking pool.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cairn_checkpoint::{
    AuditAction, AuditRecord, Error, LeftInPlaceRun, META_FORMAT_VERSION, Owner, QuarantinedRun,
    Recovered, Result, RunError, RunFilter, RunId, RunMeta, RunStatus, StatusConflict, TornTail,
    refuse_claim_by_swap, wall_clock_now,
};
use cairn_queue::{Event, SNAPSHOT_FORMAT_VERSION, Snapshot};
use serde::{Deserialize, Serialize};

use crate::fs::{Filesystem, FsFile, OpenMode, foreign_in_place};
use crate::journal::{self, Ending, Format};
use crate::line_log;

/// The `queue.json` wrapper format this build writes and reads.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{CheckpointerFactory, RunId, RunMeta};
/// use cairn_checkpoint_file::{FileFactory, QUEUE_FILE_FORMAT_VERSION};
/// use cairn_queue::{Queue, QueueConfig, Timestamp};
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let root = tempfile::tempdir()?;
/// let factory = FileFactory::builder(root.path()).build()?;
/// let id = RunId::new("r1")?;
/// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
/// run.install_snapshot(&Queue::new(QueueConfig::default()).snapshot()).await?;
/// // Installing a snapshot writes `queue.json`, which names its format version.
/// let written = std::fs::read(factory.run_dir(&id).join("queue.json"))?;
/// let file: serde_json::Value = serde_json::from_slice(&written)?;
/// assert_eq!(file["format_version"], QUEUE_FILE_FORMAT_VERSION);
/// assert!(file["crc32c"].is_u64(), "the file carries its checksum");
/// # drop(run);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
///
/// Version 2 added `crc32c`, a CRC32C over the format version, run id, `covers_seq` and the
/// snapshot's exact bytes. Version 1 files, which have none, are still read, without that
/// check.
pub const QUEUE_FILE_FORMAT_VERSION: u32 = 2;

/// The oldest `queue.json` format this build reads: version 1, written before `crc32c`.
const OLDEST_QUEUE_FILE_FORMAT_VERSION: u32 = 1;

pub(crate) const META_FILE: &str = "meta.json";
pub(crate) const QUEUE_FILE: &str = "queue.json";
pub(crate) const JOURNAL_FILE: &str = "journal";
pub(crate) const AUDIT_FILE: &str = "audit.jsonl";
pub(crate) const LOCK_FILE: &str = "lock";
pub(crate) const META_LOCK_FILE: &str = "meta.lock";
pub(crate) const RUNS_DIR: &str = "runs";
pub(crate) const QUARANTINE_DIR: &str = "quarantine";
pub(crate) const QUARANTINE_LOG: &str = "quarantine.jsonl";

/// `queue.json`: a snapshot plus what it belongs to and which journal records it covers,
/// as read back and checked.
#[derive(Debug)]
pub(crate) struct QueueFile {
    /// Every journal record with a sequence number up to this one is inside the snapshot.
    pub(crate) covers_seq: u64,
    /// The queue's state.
    pub(crate) snapshot: Snapshot,
}

/// `queue.json` as stored, its snapshot left as the exact text the checksum covers.
#[derive(Debug, Deserialize)]
struct QueueFileText<'a> {
    /// `QUEUE_FILE_FORMAT_VERSION`, or an older one still read.
    format_version: u32,
    /// The run it belongs to.
    run_id: String,
    /// Every journal record with a sequence number up to this one is inside the snapshot.
    covers_seq: u64,
    /// The queue's state, as written.
    #[serde(borrow)]
    snapshot: &'a serde_json::value::RawValue,
    /// [`queue_file_checksum`] of the rest; absent from format 1 files.
    crc32c: Option<u32>,
}

/// The identifying fields of `queue.json`, read before the (possibly large) snapshot.
#[derive(Debug, Deserialize)]
struct QueueFileHead {
    format_version: u32,
    run_id: String,
}

/// The identifying fields of `meta.json`, read when the full parse fails.
#[derive(Debug, Deserialize)]
struct MetaHead {
    format_version: Option<u32>,
    run_id: Option<String>,
}

/// A run's state as read from its folder by `open`.
#[derive(Debug)]
pub(crate) struct RunState {
    pub(crate) meta: RunMeta,
    pub(crate) snapshot: Option<Snapshot>,
    pub(crate) covers_seq: u64,
    /// Bytes of `queue.json` (0 when there is none).
    pub(crate) snapshot_len: u64,
    pub(crate) events: Vec<Event>,
    /// The sequence number the next record gets.
    pub(crate) next_seq: u64,
    /// The journal's length after any cut.
    pub(crate) journal_len: u64,
    /// Journal records after the snapshot.
    pub(crate) records_after_snapshot: u64,
    pub(crate) torn_tail: Option<TornTail>,
}

/// What `Store::open` hands back: the writer lock, the journal opened for writing and
/// the state read back.
#[derive(Debug)]
pub(crate) struct OpenedRun {
    pub(crate) lock: Box<dyn FsFile>,
    pub(crate) journal: JournalFile,
    pub(crate) state: RunState,
}

/// The journal as the writer holds it.
#[derive(Debug)]
pub(crate) struct JournalFile {
    /// The open file: `ReadWrite` when `positioned`, else `Append`.
    pub(crate) file: Box<dyn FsFile>,
    /// Whether the file layer has `write_at`; only then is space preallocated, because an
    /// appending file cannot overwrite its zeros.
    pub(crate) positioned: bool,
    /// Where the next record goes: the end of the last good record.
    pub(crate) end: u64,
    /// The file's length: `end` plus the preallocated zeros after it.
    pub(crate) allocated: u64,
}

/// Layout and synchronous operations over one root directory.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) fs: Arc<dyn Filesystem>,
    pub(crate) root: PathBuf,
    /// The runs the latest listing found bad but could not move, by id. A run in it is not
    /// tried again (nor audited again) by the listings of this handle: a handle that lists
    /// every second would otherwise append records every second. A new handle tries again.
    pub(crate) left_in_place: Mutex<BTreeMap<RunId, LeftInPlaceRun>>,
}

/// What a listing did with a run it found bad.
enum MetBad {
    Quarantined(String),
    LeftInPlace(LeftInPlaceRun),
    /// A live writer holds it, or it is gone: nothing to do.
    Skipped,
}

/// Makes begin's staging folder names (and removal names) unique within the process.
static STAGING_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The name prefix of a removed run's folder in `runs/`, between the atomic rename that
/// removes the run and the deletion of its files. It starts with '.', which no run id can,
/// so `list` never takes it for a run.
pub(crate) const REMOVAL_PREFIX: &str = ".remove-";

/// The name prefix of a begin's staging folder in `runs/`, filled and synced before it is
/// renamed to the run's folder. Like [`REMOVAL_PREFIX`], no run id can start with it.
const STAGING_PREFIX: &str = ".begin-";

/// Reads beside a live writer tried before a damaged-looking read is reported as damage:
/// compaction holds `queue.json` and the journal out of step for milliseconds only.
const LIVE_READ_TRIES: u32 = 20;

/// The pause between those reads.
const LIVE_READ_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

/// How long taking the writer lock waits while only readers hold the lock file (a `peek`,
/// such as `cairn show` or `cairn runs`, holds it shared while it reads). A reader is done in
/// milliseconds to a second or two for a large run; a writer holds the lock for its whole
/// life, so it is never waited for.
const READER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// How many times a `meta.lock` taken on a file no longer at its path (its run was removed
/// or moved, and maybe begun again, meanwhile) is let go and taken again before giving up:
/// each time means the run was replaced while the lock was awaited.
const META_LOCK_TRIES: u32 = 100;

/// What one try of the writer lock found.
enum WriterLock {
    /// The lock, taken.
    Taken(Box<dyn FsFile>),
    /// Only readers hold the lock file; the `Locked` error to report if they keep it.
    Readers(Error),
    /// The lock was taken on a file no longer at the lock file's path (its folder was
    /// removed or moved meanwhile); it was let go.
    Replaced,
}

pub(crate) fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// Whether a listing failed because the folder is not there (missing, or a file in its place).
fn no_folder(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

pub(crate) fn sync_error(path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::SyncFailed { path, source }
}

fn encoding(what: &'static str) -> impl FnOnce(serde_json::Error) -> Error {
    move |err| Error::Encoding {
        what,
        detail: err.to_string(),
    }
}

/// Who this process is, as written into lock files.
fn holder_text() -> String {
    format!("{}", Owner::current())
}

impl Store {
    pub(crate) fn runs_dir(&self) -> PathBuf {
        self.root.join(RUNS_DIR)
    }

    pub(crate) fn quarantine_dir(&self) -> PathBuf {
        self.root.join(QUARANTINE_DIR)
    }

    /// A run's folder. `RunId`'s charset makes it one safe path component.
    pub(crate) fn run_dir(&self, run_id: &RunId) -> PathBuf {
        self.runs_dir().join(run_id.as_str())
    }

    /// Creates `root/runs` and `root/quarantine` when missing, and deletes what removals cut
    /// short left behind.
    pub(crate) fn prepare(&self) -> Result<()> {
        let mut created = false;
        for dir in [self.runs_dir(), self.quarantine_dir()] {
            if !self.exists(&dir)? {
                self.fs
                    .create_dir_all(&dir)
                    .map_err(io_error("create_dir_all", &dir))?;
                created = true;
            }
        }
        if created {
            // New folders are durable only once their parent is synced.
            self.fs
                .sync_dir(&self.root)
                .map_err(sync_error(&self.root))?;
        }
        // A removal cut short by a crash left a hidden folder; finish it. So did a begin that
        // failed or died before its rename: delete its staging folder once that is certain.
        self.sweep_removed();
        Ok(())
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        self.fs.exists(path).map_err(io_error("stat", path))
    }

    /// Writes `bytes` to `dir/name` atomically: temp file, fdatasync, rename, fsync dir.
    pub(crate) fn write_atomic(&self, dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
        self.write_atomic_unless(dir, name, bytes, &|| Ok(()))
    }

    /// [`Store::write_atomic`], but asks `refuse` once more just before the rename, the
    /// step that makes the new file the one in use: a writer poisoned while its temp file
    /// was written installs nothing (the temp file stays, as a crash would leave it).
    pub(crate) fn write_atomic_unless(
        &self,
        dir: &Path,
        name: &str,
        bytes: &[u8],
        refuse: &dyn Fn() -> Result<()>,
    ) -> Result<()> {
        let tmp = dir.join(format!("{name}.tmp"));
        let target = dir.join(name);
        let mut file = self
            .fs
            .open(&tmp, OpenMode::Truncate)
            .map_err(io_error("create", &tmp))?;
        file.write_all(bytes).map_err(io_error("write", &tmp))?;
        file.sync_data().map_err(sync_error(&tmp))?;
        drop(file);
        refuse()?;
        self.fs
            .rename(&tmp, &target)
            .map_err(io_error("rename", &tmp))?;
        self.fs.sync_dir(dir).map_err(sync_error(dir))
    }

    /// Appends one audit line to `dir/audit.jsonl` and makes it durable.
    ///
    /// Appends are serialized across processes by a lock on the file itself. A torn last
    /// line (a crash mid-append: unterminated, or failing its checksum) is cut first, and the
    /// cut is audited with its own write and fdatasync, so every write holds one line and a
    /// power cut can damage only the last one.
    pub(crate) fn append_audit_in(&self, dir: &Path, record: &AuditRecord) -> Result<()> {
        let path = dir.join(AUDIT_FILE);
        let (mut file, size, torn) = self.open_line_log(&path)?;
        if let Some(keep) = torn {
            let cut = AuditRecord::new(
                wall_clock_now(),
                record.run_id.clone(),
                AuditAction::TornTailCut,
                format!(
                    "cut a torn last line of {} bytes from audit.jsonl",
                    size - keep
                ),
            )
            .with_detail(serde_json::json!({
                "file": AUDIT_FILE,
                "offset": keep,
                "bytes": size - keep,
            }));
            append_line(&mut *file, &path, &cut)?;
        }
        append_line(&mut *file, &path, record)
    }

    /// Reads `dir/audit.jsonl`. A torn last line (a crash mid-append) is skipped; any other
    /// line that fails its check is `Error::Corruption`. A line whose checksum holds but
    /// whose action this build does not know, last or not, is `Error::NewerFormat`.
    fn read_audit_in(&self, run_id: &RunId, dir: &Path) -> Result<Vec<AuditRecord>> {
        let path = dir.join(AUDIT_FILE);
        let bytes = match self.fs.read(&path) {
            Ok(bytes) => bytes,
            // A stray file quarantined in a run's place has no folder, so no audit log of its
            // own: its record is in `quarantine.jsonl` only.
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(Vec::new());
            }
            Err(err) => return Err(io_error("read", &path)(err)),
        };
        match line_log::scan(&bytes) {
            Ok(records) => Ok(records),
            Err(damaged) => Err(
                match damaged.undecoded.as_deref().and_then(unknown_action) {
                    // A newer build's record is refused, as a newer build's journal event is,
                    // and kept: appends never cut a line whose checksum holds.
                    Some(action) => Error::NewerFormat {
                        run_id: run_id.clone(),
                        file: AUDIT_FILE.to_owned(),
                        detail: format!(
                            "line {} at byte {} is an audit record of action `{action}`, which this \
                         build does not know",
                            damaged.line, damaged.offset
                        ),
                    },
                    None => Error::Corruption {
                        run_id: run_id.clone(),
                        file: AUDIT_FILE.to_owned(),
                        offset: damaged.offset,
                        detail: format!("line {}: {}", damaged.line, damaged.detail),
                    },
                },
            ),
        }
    }

    /// The newest quarantine folder of `run_id`, if any.
    fn latest_quarantined(&self, run_id: &RunId) -> Result<Option<PathBuf>> {
        let dir = self.quarantine_dir();
        let names = match self.fs.list_dir(&dir) {
            Ok(names) => names,
            // Nothing can be quarantined under a file; `quarantine_target` reports the file
            // when something has to be.
            Err(err) if no_folder(&err) => return Ok(None),
            Err(err) => return Err(io_error("list", &dir)(err)),
        };
        let newest = names
            .iter()
            .filter_map(|name| {
                let (id, suffix) = name.rsplit_once('-')?;
                let millis: u64 = suffix.parse().ok()?;
                (id == run_id.as_str()).then_some((millis, name))
            })
            .max();
        Ok(newest.map(|(_, name)| dir.join(name)))
    }

    /// Every entry of the quarantine folder (`<run_id>-<millis>`, a run's folder or a stray
    /// file), with why and when from its own audit log, or else from `quarantine.jsonl`, and
    /// the metadata it had when that still parses and names this run. Reads only: a damaged
    /// entry is reported with what could be read.
    pub(crate) fn list_quarantined(&self) -> Result<Vec<QuarantinedRun>> {
        let qdir = self.quarantine_dir();
        let names = match self.fs.list_dir(&qdir) {
            Ok(names) => names,
            Err(err) if no_folder(&err) => return Ok(Vec::new()),
            Err(err) => return Err(io_error("list", &qdir)(err)),
        };
        // The root log names every quarantine, stray files included; a damaged log only
        // loses the fallback, never an entry.
        let root_log: Vec<AuditRecord> = self
            .fs
            .read(&self.root.join(QUARANTINE_LOG))
            .ok()
            .and_then(|bytes| line_log::scan(&bytes).ok())
            .unwrap_or_default();
        let mut listed = Vec::new();
        for name in &names {
            let Some((id, millis)) = name.rsplit_once('-') else {
                continue;
            };
            let (Ok(run_id), Ok(_)) = (RunId::new(id), millis.parse::<u64>()) else {
                continue;
            };
            let path = qdir.join(name);
            let location = path.display().to_string();
            let mut audit = self.read_audit_in(&run_id, &path).unwrap_or_default();
            if !audit.iter().any(|r| r.action == AuditAction::Quarantined) {
                // By the entry's name, not the whole path: the root may have been spelled
                // otherwise (relative, absolute) when the record was written.
                audit = root_log
                    .iter()
                    .filter(|r| {
                        r.detail["location"]
                            .as_str()
                            .and_then(|l| Path::new(l).file_name())
                            .is_some_and(|n| n == name.as_str())
                    })
                    .cloned()
                    .collect();
            }
            let meta = self
                .read_meta_bytes(&path)
                .ok()
                .flatten()
                // Leniently: another format version or another run's id still says whose
                // progress was lost (`QuarantinedRun::meta`).
                .and_then(|bytes| serde_json::from_slice::<RunMeta>(&bytes).ok());
            listed.push(QuarantinedRun::from_audit(run_id, location, &audit, meta));
        }
        listed.sort_by(|a, b| (a.at, &a.location).cmp(&(b.at, &b.location)));
        Ok(listed)
    }

    /// Where a run's audit log lives: its folder, else its newest quarantine folder.
    fn audit_dir(&self, run_id: &RunId) -> Result<Option<PathBuf>> {
        let dir = self.run_dir(run_id);
        if self.exists(&dir)? {
            return Ok(Some(dir));
        }
        self.latest_quarantined(run_id)
    }

    pub(crate) fn append_audit(&self, run_id: &RunId, record: &AuditRecord) -> Result<()> {
        match self.audit_dir(run_id)? {
            Some(dir) => self.append_audit_in(&dir, record),
            None => Err(Error::NotFound {
                run_id: run_id.clone(),
            }),
        }
    }

    pub(crate) fn read_audit(&self, run_id: &RunId) -> Result<Vec<AuditRecord>> {
        match self.audit_dir(run_id)? {
            Some(dir) => self.read_audit_in(run_id, &dir),
            None => Ok(Vec::new()),
        }
    }

    /// Opens a run's lock file and takes its writer lock. `Err(Locked)` names the writer
    /// holding it. While only readers hold it, this tries again, for up to
    /// [`READER_PATIENCE`]: a `peek` holds the lock shared while it reads, so without the
    /// wait a `cairn show` beside a `cairn resume` could make the resume fail with `Locked`
    /// as if the run were being driven.
    fn take_writer_lock(&self, run_id: &RunId, dir: &Path) -> Result<Box<dyn FsFile>> {
        let deadline = std::time::Instant::now() + READER_PATIENCE;
        let mut pause = std::time::Duration::from_millis(5);
        loop {
            match self.try_writer_lock(run_id, dir)? {
                WriterLock::Taken(file) => return Ok(file),
                WriterLock::Readers(locked) if std::time::Instant::now() >= deadline => {
                    return Err(locked);
                }
                WriterLock::Readers(_) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(100));
                }
                // Taken again at once: the next open finds what is there now (or nothing).
                WriterLock::Replaced if std::time::Instant::now() < deadline => {}
                WriterLock::Replaced => {
                    let path = dir.join(LOCK_FILE);
                    return Err(io_error("lock", &path)(io::Error::other(
                        "the run's lock file kept being replaced while its lock was taken",
                    )));
                }
            }
        }
    }

    /// Opens a run's lock file and tries its writer lock once. When it is held, a shared try
    /// tells readers (who let a shared lock be taken beside them) from a writer (who does
    /// not): a writer's is `Err(Locked)` naming it.
    fn try_writer_lock(&self, run_id: &RunId, dir: &Path) -> Result<WriterLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = self
            .fs
            .open(&path, OpenMode::ReadWrite)
            .map_err(io_error("open", &path))?;
        if !file.try_lock().map_err(io_error("lock", &path))? {
            if file.try_lock_shared().map_err(io_error("lock", &path))? {
                file.unlock().map_err(io_error("unlock", &path))?;
                return Ok(WriterLock::Readers(Error::Locked {
                    run_id: run_id.clone(),
                    holder: format!(
                        "not a writer: processes reading the run, such as `cairn show`, kept \
                         its lock shared for {} s",
                        READER_PATIENCE.as_secs()
                    ),
                }));
            }
            return Err(locked(run_id, &mut *file));
        }
        // The lock is the file's, not the name's: a lock file opened just before its folder
        // was removed or moved (and maybe a new run begun at the same path) keeps no one out.
        if file.is_at(&path).map_err(io_error("stat", &path))? == Some(false) {
            return Ok(WriterLock::Replaced);
        }
        // The holder's identity is informational, so it is not synced.
        file.set_len(0).map_err(io_error("truncate", &path))?;
        let text = format!("{} since {}\n", holder_text(), wall_clock_now());
        file.write_all(text.as_bytes())
            .map_err(io_error("write", &path))?;
        Ok(WriterLock::Taken(file))
    }

    pub(crate) fn is_held(&self, run_id: &RunId) -> Result<bool> {
        // Probed under `meta.lock`, as `open` takes the writer lock under it, so this probe
        // never makes an `open` fail with `Locked`.
        let guard = self.meta_lock_if_any(&self.run_dir(run_id));
        let held = self.writer_holder(run_id)?.is_some();
        drop(guard);
        Ok(held)
    }

    /// The run's `meta.lock`, taken, for a read that looks at the writer lock (a probe, or a
    /// `peek` taking its reader lock) to do so where no `open` is taking that lock. Best
    /// effort, writing nothing: `None` for a read-only store or a run with no `meta.lock`,
    /// and the look then goes ahead without it.
    fn meta_lock_if_any(&self, dir: &Path) -> Option<Box<dyn FsFile>> {
        self.fs
            .open(&dir.join(META_LOCK_FILE), OpenMode::Read)
            .ok()
            .filter(|lock| lock.lock().is_ok())
    }

    /// Who holds the run's writer lock, if anyone: the lock is tried shared, on the lock
    /// file opened read-only, and released at once. Shared, so the probe never makes another
    /// probe or a `peek` look like a writer (only an exclusive holder refuses it); `open`
    /// takes the writer lock under `meta.lock`, so a probe made under `meta.lock` (a claim's,
    /// `is_held`'s) never makes that open fail either.
    fn writer_holder(&self, run_id: &RunId) -> Result<Option<String>> {
        let path = self.run_dir(run_id).join(LOCK_FILE);
        let mut file = match self.fs.open(&path, OpenMode::Read) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io_error("open", &path)(err)),
        };
        if file.try_lock_shared().map_err(io_error("lock", &path))? {
            file.unlock().map_err(io_error("unlock", &path))?;
            return Ok(None);
        }
        match locked(run_id, &mut *file) {
            Error::Locked { holder, .. } => Ok(Some(holder)),
            _ => Ok(Some("an unknown process".to_owned())),
        }
    }

    /// Takes the run's `meta.lock` for `open` to take the writer lock under, so a claim
    /// (which probes the writer lock under `meta.lock`) sees either no writer and a
    /// `meta.json` the open has not read yet, or the writer. `None` when `meta.lock` cannot
    /// be opened because the folder is gone or something foreign stands in its place: the
    /// writer lock is then taken alone, and its own checks decide (claims refuse such a run
    /// anyway, since `update_meta` cannot open `meta.lock` either).
    ///
    /// It is opened read-only when it exists (every run begun by this build has one), so an
    /// open that is refused leaves the folder's files exactly as they were; a run begun by
    /// an older build gets one.
    fn meta_lock_for_open(&self, dir: &Path) -> Result<Option<Box<dyn FsFile>>> {
        let path = dir.join(META_LOCK_FILE);
        let mut tries = 0;
        loop {
            let opened = match self.fs.open(&path, OpenMode::Read) {
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    self.fs.open(&path, OpenMode::ReadWrite)
                }
                other => other,
            };
            let lock = match opened {
                Ok(lock) => lock,
                Err(err)
                    if err.kind() == io::ErrorKind::NotFound
                        || foreign_in_place(&err).is_some() =>
                {
                    return Ok(None);
                }
                Err(err) => return Err(io_error("open", &path)(err)),
            };
            if self.lock_meta_lock(&*lock, &path, &mut tries)? {
                return Ok(Some(lock));
            }
        }
    }

    /// Takes the lock of `lock`, the `meta.lock` opened at `path`; `false` (lock let go)
    /// when the file is no longer at `path`, for the caller to open it again. The lock is
    /// the file's, not the name's: a `meta.lock` opened just before its run was removed or
    /// moved (and maybe a run of the same id begun) serializes nothing with the swaps and
    /// opens of whatever is at `path` now. `tries` counts the files let go.
    fn lock_meta_lock(&self, lock: &dyn FsFile, path: &Path, tries: &mut u32) -> Result<bool> {
        lock.lock().map_err(io_error("lock", path))?;
        if lock.is_at(path).map_err(io_error("stat", path))? != Some(false) {
            return Ok(true);
        }
        lock.unlock().map_err(io_error("unlock", path))?;
        *tries += 1;
        if *tries >= META_LOCK_TRIES {
            return Err(io_error("lock", path)(io::Error::other(
                "the run's meta.lock kept being replaced while its lock was taken",
            )));
        }
        Ok(false)
    }

    /// Whether the id was ever quarantined (then it can never be begun again).
    fn was_quarantined(&self, run_id: &RunId) -> Result<bool> {
        Ok(self.latest_quarantined(run_id)?.is_some())
    }

    /// Creates a run atomically: a staging folder is filled and synced, then renamed into
    /// place. Returns the writer lock.
    pub(crate) fn begin(&self, meta: &RunMeta) -> Result<Box<dyn FsFile>> {
        let run_id = &meta.run_id;
        let dir = self.run_dir(run_id);
        if self.exists(&dir)? || self.was_quarantined(run_id)? {
            return Err(Error::AlreadyExists {
                run_id: run_id.clone(),
            });
        }
        let staging = self.runs_dir().join(format!(
            "{STAGING_PREFIX}{run_id}-{}-{}",
            std::process::id(),
            STAGING_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        self.fs
            .create_dir(&staging)
            .map_err(io_error("create_dir", &staging))?;
        let lock = self.take_writer_lock(run_id, &staging)?;
        // Created here, so `open` finds it and only reads it (`meta_lock_for_open`).
        let meta_lock = staging.join(META_LOCK_FILE);
        drop(
            self.fs
                .open(&meta_lock, OpenMode::ReadWrite)
                .map_err(io_error("create", &meta_lock))?,
        );
        let meta_bytes = serde_json::to_vec_pretty(meta).map_err(encoding("run metadata"))?;
        self.write_atomic(&staging, META_FILE, &meta_bytes)?;
        let journal = staging.join(JOURNAL_FILE);
        let mut file = self
            .fs
            .open(&journal, OpenMode::Append)
            .map_err(io_error("create", &journal))?;
        // The file header is durable before any batch is written (see `journal`).
        file.write_all(&journal::file_header())
            .map_err(io_error("write", &journal))?;
        file.sync_data().map_err(sync_error(&journal))?;
        drop(file);
        self.append_audit_in(
            &staging,
            &AuditRecord::new(
                wall_clock_now(),
                run_id.clone(),
                AuditAction::Begun,
                format!("run {run_id} begun"),
            ),
        )?;
        self.fs.sync_dir(&staging).map_err(sync_error(&staging))?;
        if let Err(err) = self.fs.rename(&staging, &dir) {
            // Another begin of the same id won the race. The staging folder is this call's
            // own and holds no one's state, so removing it is safe.
            let _ = self.fs.remove_dir_all(&staging);
            return match err.kind() {
                io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty => {
                    Err(Error::AlreadyExists {
                        run_id: run_id.clone(),
                    })
                }
                _ => Err(io_error("rename", &staging)(err)),
            };
        }
        let runs = self.runs_dir();
        self.fs.sync_dir(&runs).map_err(sync_error(&runs))?;
        Ok(lock)
    }

    /// Reads `meta.json` without any check of its content. `Ok(None)`: no run folder.
    fn read_meta_bytes(&self, dir: &Path) -> Result<Option<Vec<u8>>> {
        let path = dir.join(META_FILE);
        match self.fs.read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_error("read", &path)(err)),
        }
    }

    /// `meta.json` parsed and checked, for calls that must not quarantine (no lock held).
    pub(crate) fn load_meta(&self, run_id: &RunId) -> Result<Option<RunMeta>> {
        let Some(bytes) = self.read_meta_bytes(&self.run_dir(run_id))? else {
            return Ok(None);
        };
        parse_meta(run_id, &bytes).map(Some).map_err(|problem| {
            problem
                .newer_format(run_id)
                .unwrap_or_else(|| Error::Corruption {
                    run_id: run_id.clone(),
                    file: META_FILE.to_owned(),
                    offset: 0,
                    detail: problem.detail(),
                })
        })
    }

    pub(crate) fn list(&self, filter: &RunFilter) -> Result<Vec<RunMeta>> {
        let dir = self.runs_dir();
        let names = match self.fs.list_dir(&dir) {
            Ok(names) => names,
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(io_error("list", &dir)(err)),
        };
        let before = self.left_in_place_now();
        let mut left = BTreeMap::new();
        let mut metas = Vec::new();
        for name in names {
            // Staging folders start with '.', which no run id can.
            let Ok(run_id) = RunId::new(name) else {
                continue;
            };
            let path = self.run_dir(&run_id).join(META_FILE);
            let (met, reason) = match self.fs.read(&path) {
                Ok(bytes) => match parse_meta(&run_id, &bytes) {
                    Ok(meta) => {
                        if filter.matches(&meta) {
                            metas.push(meta);
                        }
                        continue;
                    }
                    // Bad or foreign metadata would otherwise stay invisible forever (no
                    // lookup by workflow can match it), so it is quarantined where it is
                    // found. A run a live writer holds is left to that writer.
                    // A newer build's run is not bad, and nothing is written into it. It is
                    // listed when its metadata reads, so that a lookup finds it and its `open`
                    // refuses it rather than a fresh run beginning beside it; otherwise it is
                    // reported with the runs left in place.
                    Err(problem) if problem.newer_format(&run_id).is_some() => {
                        if let Ok(meta) = serde_json::from_slice::<RunMeta>(&bytes) {
                            if filter.matches(&meta) {
                                metas.push(meta);
                            }
                            continue;
                        }
                        let error = problem.newer_format(&run_id).map(|e| e.to_string());
                        let entry = LeftInPlaceRun::new(
                            run_id.clone(),
                            self.run_dir(&run_id).display().to_string(),
                            "a newer cairn build wrote it",
                            error.unwrap_or_default(),
                        );
                        left.insert(run_id, entry);
                        continue;
                    }
                    Err(problem) => {
                        let reason = problem.detail();
                        (self.met_bad(&run_id, &reason, false, &before)?, reason)
                    }
                },
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                // A file where a run's folder belongs is foreign state that would fail every
                // listing, so it is moved aside, as bad metadata is.
                Err(err) if err.kind() == io::ErrorKind::NotADirectory => {
                    let reason = "a file, not a run folder, has this run's name".to_owned();
                    (self.met_bad(&run_id, &reason, true, &before)?, reason)
                }
                // Metadata that cannot be read (permissions, a disk error) is not known to be
                // bad, so it is not moved; it is left out, as one that cannot move is.
                Err(err) => {
                    let error = io_error("read", &path)(err);
                    let entry = LeftInPlaceRun::new(
                        run_id.clone(),
                        self.run_dir(&run_id).display().to_string(),
                        "its meta.json cannot be read",
                        error.to_string(),
                    );
                    if !before.contains_key(&run_id) {
                        self.audit_left_in_place(&entry, false);
                    }
                    left.insert(run_id, entry);
                    continue;
                }
            };
            match met {
                MetBad::Quarantined(location) => {
                    cairn_telemetry::emit::state_quarantined(run_id.as_str(), &reason, &location);
                }
                MetBad::LeftInPlace(entry) => {
                    left.insert(run_id, entry);
                }
                MetBad::Skipped => {}
            }
        }
        *self
            .left_in_place
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = left;
        metas.sort_by(|a, b| (a.created_at, &a.run_id).cmp(&(b.created_at, &b.run_id)));
        Ok(metas)
    }

    /// The runs the latest listing left in place.
    pub(crate) fn left_in_place_now(&self) -> BTreeMap<RunId, LeftInPlaceRun> {
        self.left_in_place
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Quarantines a run (its folder, or a `stray` file with its name) that a listing found
    /// bad. When it cannot be moved it is left in place, and that is audited when the records
    /// can be written: one such run must not fail the listing of all the others.
    fn met_bad(
        &self,
        run_id: &RunId,
        reason: &str,
        stray: bool,
        before: &BTreeMap<RunId, LeftInPlaceRun>,
    ) -> Result<MetBad> {
        if let Some(entry) = before.get(run_id) {
            return Ok(MetBad::LeftInPlace(entry.clone()));
        }
        let moved = if stray {
            self.quarantine_stray_file(run_id, reason)
        } else {
            self.quarantine(run_id, reason)
        };
        let error = match moved {
            Ok(location) => return Ok(MetBad::Quarantined(location)),
            Err(Error::Locked { .. } | Error::NotFound { .. }) => return Ok(MetBad::Skipped),
            Err(error) => error,
        };
        // Whatever failed, the run is left in place exactly when it is still there; a failure
        // after the rename (syncing the folders) is the store's, and fails the listing.
        if !self.exists(&self.run_dir(run_id))? {
            return Err(error);
        }
        let entry = LeftInPlaceRun::new(
            run_id.clone(),
            self.run_dir(run_id).display().to_string(),
            reason,
            error.to_string(),
        );
        // A failed rename was followed up in the logs already (`move_to_quarantine`).
        if !matches!(error, Error::Io { op: "rename", .. }) {
            self.audit_left_in_place(&entry, stray);
        }
        Ok(MetBad::LeftInPlace(entry))
    }

    /// Appends a `LeftInPlace` record for `entry` where its quarantine would have been
    /// recorded: the run's own audit log (unless `stray`: a file has none) and
    /// `quarantine.jsonl`. Best effort: on a read-only store nothing can be written, and the
    /// entry is still reported by the listing.
    fn audit_left_in_place(&self, entry: &LeftInPlaceRun, stray: bool) {
        let record = left_in_place_record(entry);
        if !stray {
            let _ = self.append_audit_in(&self.run_dir(&entry.run_id), &record);
        }
        let _ = self.log_quarantine(&record);
    }

    /// Runs `change` on `meta.json` under the run's meta lock, across processes, and writes
    /// the result atomically. `change` returns `None` to leave the file untouched.
    fn update_meta<T>(
        &self,
        run_id: &RunId,
        change: impl FnOnce(&mut RunMeta) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        let dir = self.run_dir(run_id);
        let not_found = || Error::NotFound {
            run_id: run_id.clone(),
        };
        if !self.exists(&dir)? {
            return Err(not_found());
        }
        let lock_path = dir.join(META_LOCK_FILE);
        let mut tries = 0;
        let lock = loop {
            let lock = match self.fs.open(&lock_path, OpenMode::ReadWrite) {
                Ok(lock) => lock,
                // The folder was quarantined between the check and the open.
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(not_found()),
                // Every status change of the run would fail on it: the run is moved aside,
                // under its writer lock so that a live writer's run is not.
                Err(err) if foreign_in_place(&err).is_some() => {
                    let writer = self.take_writer_lock(run_id, &dir)?;
                    let refused = self.refuse(run_id, foreign_file(META_LOCK_FILE, &err));
                    drop(writer);
                    return Err(refused);
                }
                Err(err) => return Err(io_error("open", &lock_path)(err)),
            };
            if self.lock_meta_lock(&*lock, &lock_path, &mut tries)? {
                break lock;
            }
        };
        let mut meta = self.load_meta(run_id)?.ok_or_else(not_found)?;
        let outcome = change(&mut meta)?;
        if outcome.is_some() {
            let bytes = serde_json::to_vec_pretty(&meta).map_err(encoding("run metadata"))?;
            self.write_atomic(&dir, META_FILE, &bytes)?;
        }
        drop(lock);
        Ok(outcome)
    }

    pub(crate) fn compare_and_swap(
        &self,
        run_id: &RunId,
        from: RunStatus,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        // Only a swap to `running` is a claim, so only it looks for a live writer.
        let probe = to == RunStatus::Running;
        self.decide_meta(run_id, probe, |meta, held| {
            meta.swap_status_unless_held(from, to, wall_clock_now(), held)
        })
    }

    /// The port's epoch-checked swap: compared on the status and the lease epoch under
    /// `meta.lock`, the lock `claim` takes, so it and a claim at the same epoch cannot both
    /// win; a lost swap leaves `meta.json` untouched, and a won one is written as every
    /// status change is (temp file, fsync, rename, directory fsync). A swap to `running`
    /// is refused before anything is read.
    pub(crate) fn compare_and_swap_at(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        refuse_claim_by_swap(run_id, to)?;
        // It is never a claim, so no writer is probed: the caller may hold the run itself.
        self.decide_meta(run_id, false, |meta, _| {
            meta.swap_status_at(from, expected_epoch, to, wall_clock_now())
        })
    }

    /// The port's claim: compared on the status and the lease epoch under `meta.lock`, so a
    /// losing claim leaves `meta.json` untouched, and refused while a live writer holds the
    /// run (probed under the same `meta.lock`, which `open` takes its writer lock under).
    pub(crate) fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        self.decide_meta(run_id, true, |meta, held| {
            meta.claim_unless_held(from, expected_epoch, wall_clock_now(), held)
        })
    }

    /// Runs a swap or claim rule on `meta.json` under `meta.lock`; writes only what it won.
    /// With `probe`, the rule is told who holds the run's writer lock, probed under
    /// `meta.lock` as well.
    fn decide_meta(
        &self,
        run_id: &RunId,
        probe: bool,
        rule: impl FnOnce(&mut RunMeta, Option<&str>) -> Result<Result<RunMeta, StatusConflict>>,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        let mut conflict = None;
        let decide = |meta: &mut RunMeta| {
            let held = if probe {
                self.writer_holder(run_id)?
            } else {
                None
            };
            rule(meta, held.as_deref())
        };
        let won = self.update_meta(run_id, |meta| match decide(meta)? {
            Ok(meta) => Ok(Some(meta)),
            Err(c) => {
                conflict = Some(c);
                Ok(None)
            }
        })?;
        match (won, conflict) {
            (Some(meta), _) => Ok(Ok(meta)),
            (None, Some(conflict)) => Ok(Err(conflict)),
            (None, None) => unreachable!("update_meta returns what the closure decided"),
        }
    }

    /// Sets a terminal or failed status, refusing terminal runs.
    pub(crate) fn finish(
        &self,
        run_id: &RunId,
        status: RunStatus,
        error: Option<&RunError>,
    ) -> Result<RunMeta> {
        let meta = self.update_meta(run_id, |meta| {
            if meta.status.is_terminal() {
                return Err(Error::Terminal {
                    run_id: run_id.clone(),
                    status: meta.status,
                });
            }
            let now = wall_clock_now();
            meta.status = status;
            meta.updated_at = now;
            meta.finished_at = Some(now);
            if let Some(error) = error {
                meta.error = Some(error.clone());
            }
            Ok(Some(meta.clone()))
        })?;
        Ok(meta.expect("the closure always returns Some on success"))
    }

    /// Audits the move in the run's folder and in `quarantine.jsonl` (durably, first), then
    /// moves the folder to `quarantine/<id>-<millis>/` and syncs both parents. The caller holds
    /// the writer lock.
    pub(crate) fn quarantine_locked(&self, run_id: &RunId, reason: &str) -> Result<String> {
        self.move_to_quarantine(run_id, &format!("run {run_id}"), reason, true)
    }

    /// Moves `runs/<run_id>` (a run's folder, or a stray file with its name) to
    /// `quarantine/<id>-<millis>`. Write-ahead: the records are durable before the move (in
    /// the folder's own audit log when `audit_in_folder`, and always in `quarantine.jsonl`),
    /// so a crash between the steps can leave a recorded intent over state still in place
    /// (quarantined again when next found), but never quarantined state without its record.
    fn move_to_quarantine(
        &self,
        run_id: &RunId,
        what: &str,
        reason: &str,
        audit_in_folder: bool,
    ) -> Result<String> {
        let path = self.run_dir(run_id);
        let target = self.quarantine_target(run_id.as_str())?;
        let location = target.display().to_string();
        let record = AuditRecord::new(
            wall_clock_now(),
            run_id.clone(),
            AuditAction::Quarantined,
            format!("{what} quarantined to {location}: {reason}"),
        )
        .with_detail(serde_json::json!({ "location": location, "reason": reason }));
        if audit_in_folder {
            self.append_audit_in(&path, &record)?;
        }
        self.log_quarantine(&record)?;
        match self.fs.rename(&path, &target) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    run_id: run_id.clone(),
                });
            }
            Err(err) => {
                // The records above name a move that did not happen: say so where they are.
                // Best effort, as the rename's error is the one to report.
                let error = io_error("rename", &path)(err);
                let entry = LeftInPlaceRun::new(
                    run_id.clone(),
                    path.display().to_string(),
                    reason,
                    error.to_string(),
                );
                let follow_up = left_in_place_record(&entry);
                if audit_in_folder {
                    let _ = self.append_audit_in(&path, &follow_up);
                }
                let _ = self.log_quarantine(&follow_up);
                return Err(error);
            }
        }
        let qdir = self.quarantine_dir();
        self.fs.sync_dir(&qdir).map_err(sync_error(&qdir))?;
        let runs = self.runs_dir();
        self.fs.sync_dir(&runs).map_err(sync_error(&runs))?;
        Ok(location)
    }

    /// A free path `quarantine/<name>-<millis>`, creating the quarantine folder if needed.
    fn quarantine_target(&self, name: &str) -> Result<PathBuf> {
        let qdir = self.quarantine_dir();
        self.fs.create_dir_all(&qdir).map_err(|err| {
            // A file in the folder's place is foreign state this store does not move or
            // delete; the person who put it there decides.
            let source = if err.kind() == io::ErrorKind::AlreadyExists {
                io::Error::new(
                    err.kind(),
                    "something other than a folder is where the quarantine folder belongs; move it away",
                )
            } else {
                err
            };
            io_error("create_dir_all", &qdir)(source)
        })?;
        let mut millis = wall_clock_now().0;
        loop {
            let candidate = qdir.join(format!("{name}-{millis}"));
            if !self.exists(&candidate)? {
                return Ok(candidate);
            }
            millis += 1;
        }
    }

    /// Opens a checksummed line log for appending, under its lock, and cuts a torn last line
    /// (a crash mid-append) so the next append starts a line of its own. Returns the file,
    /// its size before the cut, and the length kept when a line was cut.
    fn open_line_log(&self, path: &Path) -> Result<(Box<dyn FsFile>, u64, Option<u64>)> {
        let file = self
            .fs
            .open(path, OpenMode::Append)
            .map_err(io_error("open", path))?;
        file.lock().map_err(io_error("lock", path))?;
        let size = file.size().map_err(io_error("stat", path))?;
        let torn = line_log::torn_last_line(|offset, buf| file.read_at(offset, buf), size)
            .map_err(io_error("read", path))?;
        if let Some(keep) = torn {
            file.set_len(keep).map_err(io_error("truncate", path))?;
        }
        Ok((file, size, torn))
    }

    /// Appends `record` to `quarantine.jsonl` durably, under the log's lock.
    fn log_quarantine(&self, record: &AuditRecord) -> Result<()> {
        let log = self.root.join(QUARANTINE_LOG);
        // A torn line is cut without a record of its own here: the run's folder holds the
        // audited record of every run quarantine.
        let (mut file, _, _) = self.open_line_log(&log)?;
        append_line(&mut *file, &log, record)?;
        // The log may be new; its entry in the root is durable only once the root is synced.
        self.fs.sync_dir(&self.root).map_err(sync_error(&self.root))
    }

    /// Moves a file that sits where run `run_id`'s folder belongs to the quarantine folder,
    /// recorded in `quarantine.jsonl` only (it has no folder to hold an audit log).
    fn quarantine_stray_file(&self, run_id: &RunId, reason: &str) -> Result<String> {
        let what = format!("stray file {}", self.run_dir(run_id).display());
        self.move_to_quarantine(run_id, &what, reason, false)
    }

    pub(crate) fn quarantine(&self, run_id: &RunId, reason: &str) -> Result<String> {
        let dir = self.run_dir(run_id);
        if !self.exists(&dir)? {
            return Err(Error::NotFound {
                run_id: run_id.clone(),
            });
        }
        let lock = self.take_writer_lock(run_id, &dir)?;
        let location = self.quarantine_locked(run_id, reason);
        drop(lock);
        location
    }

    /// Removes a `completed` or `cancelled` run: under its writer lock, checks its metadata
    /// and status, renames its folder to a hidden removal name in `runs/` (atomic), fsyncs
    /// `runs/`, and only then deletes the files. Returns the metadata the run had.
    ///
    /// The rename is the removal: before it the run is whole, after it (once `runs/` is
    /// synced) the run is gone for every port call. A crash after the rename leaves only a
    /// hidden folder, which `list` skips and the next removal (or factory build) deletes.
    pub(crate) fn remove_terminal(&self, run_id: &RunId) -> Result<RunMeta> {
        let dir = self.run_dir(run_id);
        let not_found = || Error::NotFound {
            run_id: run_id.clone(),
        };
        if !self.exists(&dir)? {
            return Err(not_found());
        }
        // The writer lock keeps every `open` out until the folder is gone. It is held until
        // the files are deleted, so an opener that found the folder just before the rename
        // is refused with `Locked` rather than reading a half-deleted folder.
        let lock = match self.take_writer_lock(run_id, &dir) {
            Ok(lock) => lock,
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                // The folder was removed or quarantined since the check above.
                return Err(not_found());
            }
            Err(err) => return Err(err),
        };
        // Damaged or foreign metadata is an error here (`load_meta`'s `Corruption`) and the
        // folder stays for `open` to quarantine. A terminal status never changes again (every
        // swap, claim and finish refuses it), so it cannot change between this read and the
        // rename; no other lock is needed.
        let meta = self.load_meta(run_id)?.ok_or_else(not_found)?;
        if !meta.status.is_terminal() {
            return Err(Error::NotTerminal {
                run_id: run_id.clone(),
                status: meta.status,
            });
        }
        let runs = self.runs_dir();
        let hidden = runs.join(format!(
            "{REMOVAL_PREFIX}{run_id}-{}-{}",
            std::process::id(),
            STAGING_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        self.fs
            .rename(&dir, &hidden)
            .map_err(io_error("rename", &dir))?;
        self.fs.sync_dir(&runs).map_err(sync_error(&runs))?;
        // The run is removed now. Deleting its files is cleanup: a failure leaves a hidden
        // folder that nothing reads and the next removal or factory build deletes, so it is
        // not reported as a failed removal.
        let _ = self.fs.remove_dir_all(&hidden);
        drop(lock);
        self.sweep_removed();
        Ok(meta)
    }

    /// Deletes what crashed or failed removals left in `runs/` (folders named with
    /// [`REMOVAL_PREFIX`]), and the staging folders of begins that failed or died before
    /// their rename ([`STAGING_PREFIX`]) when that is certain ([`Store::abandoned_staging`]).
    /// Best effort: such a folder is invisible to every port call, so one that cannot be
    /// deleted now is simply tried again next time.
    pub(crate) fn sweep_removed(&self) {
        let runs = self.runs_dir();
        let Ok(names) = self.fs.list_dir(&runs) else {
            return;
        };
        for name in &names {
            let path = runs.join(name);
            if name.starts_with(REMOVAL_PREFIX) {
                // Two processes may sweep the same folder at once; whichever loses finds
                // files gone under it, which is fine.
                let _ = self.fs.remove_dir_all(&path);
            } else if name.starts_with(STAGING_PREFIX)
                && let Some(lock) = self.abandoned_staging(&path)
            {
                // Deleted under its lock, taken shared, so no begin can take it meanwhile.
                let _ = self.fs.remove_dir_all(&path);
                drop(lock);
            }
        }
    }

    /// The lock file of the begin staging folder `staging`, taken shared, when the folder is
    /// certainly abandoned; `None` (keep it) otherwise.
    ///
    /// A begin takes its staging folder's writer lock right after creating the folder,
    /// writes its holder text under that lock, and holds it until the folder is renamed into
    /// place; it never takes it again once it let it go (it fails instead). So a lock file
    /// that holds text (a begin took it) and is free now (taken shared here, which no
    /// writer allows) was let go by a begin that failed or died, and nothing will touch the
    /// folder again. A lock file that is missing or empty may belong to a begin between
    /// creating its folder and taking its lock, so that folder is kept. The shared try never
    /// makes such a begin fail: its exclusive try then meets only a reader, and it waits for
    /// readers, as it does for a `peek`.
    fn abandoned_staging(&self, staging: &Path) -> Option<Box<dyn FsFile>> {
        let path = staging.join(LOCK_FILE);
        let lock = self.fs.open(&path, OpenMode::Read).ok()?;
        if !lock.try_lock_shared().ok()? {
            return None;
        }
        // Renamed into place since it was listed: the lock is the run's now.
        if lock.is_at(&path).ok()? == Some(false) {
            return None;
        }
        (lock.size().ok()? > 0).then_some(lock)
    }

    /// Quarantines after a failed check and builds the matching typed error. State a newer
    /// build wrote is not bad: it is left where it is ([`Error::NewerFormat`]).
    fn refuse(&self, run_id: &RunId, problem: StateProblem) -> Error {
        if let Some(error) = problem.newer_format(run_id) {
            return error;
        }
        let location = match self.quarantine_locked(run_id, &problem.detail()) {
            Ok(location) => location,
            Err(err) => return err,
        };
        match problem {
            StateProblem::Version {
                found, expected, ..
            } => Error::VersionMismatch {
                run_id: run_id.clone(),
                found,
                expected,
                quarantined_to: location,
            },
            StateProblem::Foreign { found, .. } => Error::ForeignRun {
                expected: run_id.clone(),
                found,
                quarantined_to: location,
            },
            StateProblem::Unreadable { detail, .. } => Error::Unreadable {
                run_id: run_id.clone(),
                detail,
                quarantined_to: location,
            },
        }
    }

    /// Opens a run: takes its lock, checks and reads its state, cuts a torn tail.
    pub(crate) fn open(&self, run_id: &RunId) -> Result<Option<OpenedRun>> {
        let dir = self.run_dir(run_id);
        if !self.exists(&dir)? {
            return Ok(None);
        }
        // Held only while the writer lock is taken: a claim decides under it, and a `peek`
        // takes its reader lock under it, so readers already reading are waited for and no
        // new one comes in meanwhile (a stream of peeks cannot starve the open).
        let meta_lock = self.meta_lock_for_open(&dir)?;
        let taken = self.take_writer_lock(run_id, &dir);
        drop(meta_lock);
        let lock = match taken {
            Ok(lock) => lock,
            // The folder was removed or quarantined between the check and the lock.
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(None);
            }
            // No writer can hold a lock file that is not a file, so the run is moved aside
            // without it.
            Err(Error::Io { source, .. }) if foreign_in_place(&source).is_some() => {
                return Err(self.refuse(run_id, foreign_file(LOCK_FILE, &source)));
            }
            Err(err) => return Err(err),
        };
        if !self.exists(&dir)? {
            // It was removed or quarantined after this opener found it but before its lock
            // was released: the lock taken is the gone folder's.
            return Ok(None);
        }
        let state = self.read_state(run_id, &dir);
        let (journal, state) = match state {
            Ok(found) => found,
            Err(ReadFailure::Bad(problem)) => return Err(self.refuse(run_id, problem)),
            Err(ReadFailure::Other(err)) => return Err(err),
        };
        Ok(Some(OpenedRun {
            lock,
            journal,
            state,
        }))
    }

    /// Reads a run's state as `open` does, writing nothing, so that a read-only state folder
    /// (or one this user may not write) can be looked at.
    ///
    /// The run's lock is taken shared, on the lock file opened read-only: a writer holds it
    /// exclusively for its whole life, and compaction replaces `queue.json` and then the
    /// journal, so a read beside a live writer could pair a snapshot with a journal it does
    /// not belong to. A torn last record is not cut but left out, as `open` would cut it, and
    /// reported; bad state is not quarantined but reported as `Corruption`.
    pub(crate) fn peek(&self, run_id: &RunId) -> Result<Option<Recovered>> {
        let dir = self.run_dir(run_id);
        if !self.exists(&dir)? {
            return Ok(None);
        }
        // Taken under `meta.lock`, as `open` takes the writer lock under it: an open waiting
        // for readers to finish keeps new ones out.
        let guard = self.meta_lock_if_any(&dir);
        let lock = self.take_reader_lock(run_id, &dir);
        drop(guard);
        let lock = lock?;
        if !self.exists(&dir)? {
            // Removed or quarantined since: the lock taken, if any, is the gone folder's.
            return Ok(None);
        }
        let recovered = self.read_unlocked(run_id, &dir)?;
        drop(lock);
        Ok(Some(recovered))
    }

    /// Reads a run's state beside its live writer, for a live view; writes nothing and
    /// never touches the writer's lock.
    ///
    /// Without a writer this is [`Store::peek`]. With one, the files are read without a lock,
    /// so a read may catch compaction between installing `queue.json` and truncating the
    /// journal, or may read the journal while it is truncated and rewritten. Such a read
    /// fails the checks a real corruption fails (records missing after the snapshot, a
    /// batch that is not the last one damaged) and is tried again; whatever passes is a
    /// snapshot plus an unbroken run of checksummed records after it, which is a state the
    /// writer passed through. Every acknowledged append was written before it was
    /// acknowledged, so a read that starts after it sees it. A batch the writer is still
    /// writing reads as a torn tail and is left out.
    pub(crate) fn peek_live(&self, run_id: &RunId) -> Result<Option<Recovered>> {
        let mut tries = 0;
        loop {
            match self.peek(run_id) {
                Err(Error::Locked { .. }) => {}
                other => return other,
            }
            let dir = self.run_dir(run_id);
            if !self.exists(&dir)? {
                return Ok(None);
            }
            tries += 1;
            match self.read_unlocked(run_id, &dir) {
                Ok(recovered) => {
                    return Ok(Some(Recovered {
                        torn_tail: None,
                        ..recovered
                    }));
                }
                // Mid-compaction, most likely; the writer finishes it in milliseconds.
                Err(Error::Corruption { .. }) if tries < LIVE_READ_TRIES => {
                    std::thread::sleep(LIVE_READ_PAUSE);
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Reads meta, snapshot and journal without a lock and without writing; the caller
    /// holds the reader lock or accepts a read beside a writer ([`Store::peek_live`]).
    pub(crate) fn read_unlocked(&self, run_id: &RunId, dir: &Path) -> Result<Recovered> {
        let bad = |problem: StateProblem| problem.unquarantined_error(run_id);
        let meta_bytes = self.read_meta_bytes(dir)?.ok_or_else(|| {
            bad(StateProblem::Unreadable {
                file: META_FILE,
                detail: "meta.json is missing".to_owned(),
            })
        })?;
        let meta = parse_meta(run_id, &meta_bytes).map_err(bad)?;
        // The journal before `queue.json`: compaction installs a snapshot before it cuts the
        // journal down to the records after it, so a snapshot read after the journal covers
        // at least up to the journal's first record. The other order can pair an older
        // snapshot with a journal just cut to nothing, a state from before the cut.
        let journal_path = dir.join(JOURNAL_FILE);
        let bytes = match self.fs.read(&journal_path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Err(bad(StateProblem::Unreadable {
                    file: JOURNAL_FILE,
                    detail: "the journal is missing (every run has one from its start), so the \
                             transitions it recorded are gone"
                        .to_owned(),
                }));
            }
            Err(err) => return Err(io_error("read", &journal_path)(err)),
        };
        let (snapshot, covers_seq) = match self.read_queue_file(run_id, &dir.join(QUEUE_FILE)) {
            Ok(Some((file, _))) => (Some(file.snapshot), file.covers_seq),
            Ok(None) => (None, 0),
            Err(ReadFailure::Bad(problem)) => return Err(bad(problem)),
            Err(ReadFailure::Other(err)) => return Err(err),
        };
        let scan = journal::scan(&bytes);
        match refuse_journal_ending(run_id, &scan.ending) {
            Ok(()) => {}
            Err(ReadFailure::Bad(problem)) => return Err(bad(problem)),
            Err(ReadFailure::Other(err)) => return Err(err),
        }
        let torn_tail = match &scan.ending {
            // The records before it are what `open` keeps once it has cut it.
            Ending::Torn { offset, bytes, .. } => Some(TornTail {
                offset: *offset,
                bytes: *bytes,
            }),
            _ => None,
        };
        let decoded = decode_records(&scan, &bytes);
        let (events, _) = events_after_snapshot(run_id, covers_seq, &scan, decoded)?;
        Ok(Recovered {
            meta,
            snapshot,
            events,
            torn_tail,
        })
    }

    /// Takes a run's lock shared, for a read that writes nothing: the lock file is opened
    /// read-only. `Err(Locked)` names the writer holding it. `Ok(None)` when there is no lock
    /// file: every run has one from `begin`, so only a folder no writer of this adapter ever
    /// opened lacks it (and a writer that comes now creates it, unseen by this read).
    fn take_reader_lock(&self, run_id: &RunId, dir: &Path) -> Result<Option<Box<dyn FsFile>>> {
        let path = dir.join(LOCK_FILE);
        let mut file = match self.fs.open(&path, OpenMode::Read) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(io_error("open", &path)(err)),
        };
        if !file.try_lock_shared().map_err(io_error("lock", &path))? {
            return Err(locked(run_id, &mut *file));
        }
        Ok(Some(file))
    }

    /// Reads meta, snapshot and journal; the caller holds the writer lock.
    ///
    /// `queue.json` is parsed on a second thread while this one reads and decodes the
    /// journal, because on reopen of a large run those two parses are nearly all the time.
    fn read_state(
        &self,
        run_id: &RunId,
        dir: &Path,
    ) -> Result<(JournalFile, RunState), ReadFailure> {
        let meta_bytes = self
            .read_meta_bytes(dir)
            .map_err(|err| ReadFailure::from(err).foreign_as_bad(META_FILE))?
            .ok_or_else(|| {
                ReadFailure::Bad(StateProblem::Unreadable {
                    file: META_FILE,
                    detail: "meta.json is missing".to_owned(),
                })
            })?;
        let meta = parse_meta(run_id, &meta_bytes).map_err(ReadFailure::Bad)?;

        let queue_path = dir.join(QUEUE_FILE);
        let journal_path = dir.join(JOURNAL_FILE);
        let (queue_result, journal_result) = std::thread::scope(|scope| {
            let queue_thread = scope.spawn(|| self.read_queue_file(run_id, &queue_path));
            let journal_result = self.read_journal(&journal_path);
            let queue_result = queue_thread.join().unwrap_or_else(|_| {
                Err(ReadFailure::Other(Error::Backend {
                    backend: "file",
                    source: "the thread parsing queue.json panicked".into(),
                }))
            });
            (queue_result, journal_result)
        });
        let (snapshot, covers_seq, snapshot_len) =
            match queue_result.map_err(|failure| failure.foreign_as_bad(QUEUE_FILE))? {
                Some((file, len)) => (Some(file.snapshot), file.covers_seq, len),
                None => (None, 0, 0),
            };
        let (mut journal, bytes, scan, decoded) =
            journal_result.map_err(|failure| failure.foreign_as_bad(JOURNAL_FILE))?;

        // Refusals come before anything is written: a journal holding a newer build's event
        // is left exactly as it is, its torn tail (if any) and preallocated zeros included.
        refuse_journal_ending(run_id, &scan.ending)?;
        let (events, expected) = events_after_snapshot(run_id, covers_seq, &scan, decoded)?;

        let mut torn_tail = None;
        match scan.ending {
            Ending::Clean { end } => {
                journal.end = end;
                if !journal.positioned && journal.allocated > end {
                    // An appending file layer cannot overwrite preallocated zeros, and a
                    // record appended after them would read as corruption: drop them.
                    journal
                        .file
                        .set_len(end)
                        .map_err(io_error("truncate", &journal_path))?;
                    journal
                        .file
                        .sync_data()
                        .map_err(sync_error(&journal_path))?;
                    journal.allocated = end;
                }
            }
            // Refused above.
            Ending::Unsupported { .. } | Ending::Corrupt { .. } => {}
            Ending::Torn {
                offset,
                bytes: cut,
                written,
            } => {
                journal
                    .file
                    .set_len(offset)
                    .map_err(io_error("truncate", &journal_path))?;
                journal
                    .file
                    .sync_data()
                    .map_err(sync_error(&journal_path))?;
                self.append_audit_in(
                    dir,
                    &AuditRecord::new(
                        wall_clock_now(),
                        run_id.clone(),
                        AuditAction::TornTailCut,
                        torn_journal_message(offset, cut, written),
                    )
                    .with_detail(serde_json::json!({
                        "offset": offset,
                        "bytes": cut,
                        "written": written,
                    })),
                )?;
                torn_tail = Some(TornTail { offset, bytes: cut });
                journal.end = offset;
                journal.allocated = offset;
            }
        }

        if scan.format == Format::Framed
            && scan
                .records
                .last()
                .is_some_and(|record| record.seq < covers_seq)
        {
            // The journal ends before the snapshot's last record: under `Durability::None`
            // a power cut can lose its unsynced tail (and the truncate after an install)
            // while `queue.json`, always synced, survives. The next record follows the
            // snapshot, so written after these it would leave a gap in the journal, which
            // then no longer opens. Every record here is inside the snapshot, so the
            // journal is cut to its file header, as an install cuts it.
            let header = journal::FILE_HEADER_LEN as u64;
            journal
                .file
                .set_len(header)
                .map_err(io_error("truncate", &journal_path))?;
            journal
                .file
                .sync_data()
                .map_err(sync_error(&journal_path))?;
            journal.end = header;
            journal.allocated = header;
        }

        if scan.format == Format::Unframed {
            // A format-1 (or empty) journal is rewritten in format 2 before any batch is
            // appended to it, atomically: temp file, fdatasync, rename, fsync dir. A crash
            // on the way leaves the old journal whole, and the next open does it again.
            let kept = scan
                .records
                .iter()
                .filter(|record| record.seq > covers_seq)
                .map(|record| &bytes[record.offset as usize..record.payload.end]);
            let carried = kept.clone().count();
            let rewritten = journal::framed_journal(kept, UPGRADE_BATCH_LEN);
            let old_len = bytes.len();
            drop(bytes);
            self.write_atomic(dir, JOURNAL_FILE, &rewritten)?;
            drop(journal);
            journal = self.open_journal(&journal_path)?;
            // Audited after the rename is durable: the record says what is now on disk.
            self.append_audit_in(
                dir,
                &AuditRecord::new(
                    wall_clock_now(),
                    run_id.clone(),
                    AuditAction::JournalRewritten,
                    format!(
                        "rewrote the format-1 journal ({old_len} bytes) in format 2 ({} bytes), \
                         carrying over the {carried} records after the snapshot",
                        rewritten.len()
                    ),
                )
                .with_detail(serde_json::json!({
                    "from_format": 1,
                    "to_format": 2,
                    "records": carried,
                    "bytes_before": old_len,
                    "bytes_after": rewritten.len(),
                })),
            )?;
        }
        let records_after_snapshot = events.len() as u64;
        let journal_len = journal.end;
        Ok((
            journal,
            RunState {
                meta,
                snapshot,
                covers_seq,
                snapshot_len,
                events,
                next_seq: expected,
                journal_len,
                records_after_snapshot,
                torn_tail,
            },
        ))
    }

    /// Reads and checks `queue.json`: `None` when there is none, else the file and its size.
    fn read_queue_file(
        &self,
        run_id: &RunId,
        path: &Path,
    ) -> Result<Option<(QueueFile, u64)>, ReadFailure> {
        match self.fs.read(path) {
            Ok(bytes) => {
                let file = parse_queue_file(run_id, &bytes).map_err(ReadFailure::Bad)?;
                Ok(Some((file, bytes.len() as u64)))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io_error("read", path)(err).into()),
        }
    }

    /// Opens the journal for writing: `ReadWrite` when the file layer has positioned writes
    /// (probed with an empty `write_at`, which writes nothing), else `Append`.
    pub(crate) fn open_journal(&self, path: &Path) -> Result<JournalFile> {
        let file = self
            .fs
            .open(path, OpenMode::ReadWrite)
            .map_err(io_error("open", path))?;
        let (file, positioned) = match file.write_at(0, &[]) {
            Ok(()) => (file, true),
            Err(err) if err.kind() == io::ErrorKind::Unsupported => {
                drop(file);
                let file = self
                    .fs
                    .open(path, OpenMode::Append)
                    .map_err(io_error("open", path))?;
                (file, false)
            }
            Err(err) => return Err(io_error("write", path)(err)),
        };
        let allocated = file.size().map_err(io_error("stat", path))?;
        Ok(JournalFile {
            file,
            positioned,
            end: allocated,
            allocated,
        })
    }

    /// Opens the journal for writing, reads it, scans it and decodes every good record.
    /// Decoding errors are kept per record: only records after the snapshot must decode.
    fn read_journal(&self, path: &Path) -> Result<JournalRead, ReadFailure> {
        // Every run gets its journal when it begins, before anything is acknowledged, so a
        // run without one has lost every transition it acknowledged. Opening for writing
        // would create an empty journal and replay the run from its snapshot alone.
        if !self.fs.exists(path).map_err(io_error("stat", path))? {
            return Err(ReadFailure::Bad(StateProblem::Unreadable {
                file: JOURNAL_FILE,
                detail: "the journal is missing (every run has one from its start), so the \
                         transitions it recorded are gone"
                    .to_owned(),
            }));
        }
        let mut journal = self.open_journal(path)?;
        let bytes = journal.file.read_all().map_err(io_error("read", path))?;
        journal.allocated = bytes.len() as u64;
        let scan = journal::scan(&bytes);
        let decoded = decode_records(&scan, &bytes);
        Ok((journal, bytes, scan, decoded))
    }
}

/// The largest batch a format-1 journal is rewritten into (a bigger record gets a batch of
/// its own).
const UPGRADE_BATCH_LEN: usize = 16 * 1024 * 1024;

/// The journal as `read_journal` found it: the open file (its `end` still to be set from
/// the scan), its bytes, the scan and each good record decoded (or why not).
type JournalRead = (
    JournalFile,
    Vec<u8>,
    journal::Scan,
    Vec<Result<Event, Undecoded>>,
);

/// The events of the journal records after the snapshot (which covers up to `covers_seq`),
/// checked to follow it without a gap, and the sequence number the next record gets.
fn events_after_snapshot(
    run_id: &RunId,
    covers_seq: u64,
    scan: &journal::Scan,
    decoded: Vec<Result<Event, Undecoded>>,
) -> Result<(Vec<Event>, u64)> {
    let mut events = Vec::with_capacity(decoded.len());
    let mut expected = covers_seq + 1;
    for (record, event) in scan.records.iter().zip(decoded) {
        if record.seq <= covers_seq {
            // Left over from a crash between installing a snapshot and truncating.
            continue;
        }
        if record.seq != expected {
            return Err(Error::Corruption {
                run_id: run_id.clone(),
                file: JOURNAL_FILE.to_owned(),
                offset: record.offset,
                detail: format!(
                    "record {} follows a snapshot covering up to {covers_seq}; records are missing",
                    record.seq
                ),
            });
        }
        let event = event.map_err(|undecoded| match undecoded {
            Undecoded::NewerType(type_name) => Error::NewerFormat {
                run_id: run_id.clone(),
                file: JOURNAL_FILE.to_owned(),
                detail: format!(
                    "record {} at byte {} is an event of type `{type_name}`, which this build \
                     does not know",
                    record.seq, record.offset
                ),
            },
            Undecoded::Bad(detail) => Error::Corruption {
                run_id: run_id.clone(),
                file: JOURNAL_FILE.to_owned(),
                offset: record.offset,
                detail: format!("a checksummed record does not decode as an event: {detail}"),
            },
        })?;
        events.push(event);
        expected += 1;
    }
    Ok((events, expected))
}

/// Why a record that passed its checksum is not an event.
#[derive(Debug)]
enum Undecoded {
    /// It is an event of a type a newer build writes (the type).
    NewerType(String),
    /// It is not an event this build can read (the decoder's message).
    Bad(String),
}

/// Decodes each good record of a scanned journal as an event (or says why not).
fn decode_records(scan: &journal::Scan, bytes: &[u8]) -> Vec<Result<Event, Undecoded>> {
    scan.records
        .iter()
        .map(|record| {
            let payload = &bytes[record.payload.clone()];
            serde_json::from_slice::<Event>(payload).map_err(|err| {
                match cairn_checkpoint::unknown_event_type(payload) {
                    Some(type_name) => Undecoded::NewerType(type_name),
                    None => Undecoded::Bad(err.to_string()),
                }
            })
        })
        .collect()
}

/// The action an audit record's JSON names when this build does not know it (a newer build
/// wrote the record); `None` for anything else.
fn unknown_action(json: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        action: String,
    }
    let named: Named = serde_json::from_slice(json).ok()?;
    serde_json::from_value::<AuditAction>(serde_json::Value::String(named.action.clone()))
        .is_err()
        .then_some(named.action)
}

/// The `LeftInPlace` audit record of a run that could not be moved to quarantine.
fn left_in_place_record(entry: &LeftInPlaceRun) -> AuditRecord {
    AuditRecord::new(
        wall_clock_now(),
        entry.run_id.clone(),
        AuditAction::LeftInPlace,
        format!(
            "run {} was NOT moved to quarantine ({}); it stays at {} and is left out of listings until it can move: {}",
            entry.run_id, entry.error, entry.at, entry.reason
        ),
    )
    .with_detail(serde_json::json!({
        "path": entry.at,
        "reason": entry.reason,
        "error": entry.error,
    }))
}

/// Appends `record` to a line log as one checksummed line, with one write, and makes it
/// durable before returning.
fn append_line(file: &mut dyn FsFile, path: &Path, record: &AuditRecord) -> Result<()> {
    let json = serde_json::to_vec(record).map_err(encoding("audit record"))?;
    file.write_all(&line_log::encode(&json))
        .map_err(io_error("append", path))?;
    file.sync_data().map_err(sync_error(path))
}

/// Why stored state is refused (and quarantined).
#[derive(Debug)]
pub(crate) enum StateProblem {
    Version {
        file: &'static str,
        found: u32,
        expected: u32,
    },
    Foreign {
        file: &'static str,
        found: String,
    },
    Unreadable {
        file: &'static str,
        detail: String,
    },
}

impl StateProblem {
    /// The file it is about.
    pub(crate) fn file(&self) -> &'static str {
        match self {
            StateProblem::Version { file, .. }
            | StateProblem::Foreign { file, .. }
            | StateProblem::Unreadable { file, .. } => file,
        }
    }

    /// [`Error::NewerFormat`] when this is a format version above this build's: such state
    /// is not damaged, so it is refused without being quarantined.
    pub(crate) fn newer_format(&self, run_id: &RunId) -> Option<Error> {
        match self {
            StateProblem::Version {
                file,
                found,
                expected,
            } if found > expected => Some(Error::NewerFormat {
                run_id: run_id.clone(),
                file: (*file).to_owned(),
                detail: format!("format version {found}; this build reads {expected}"),
            }),
            _ => None,
        }
    }

    /// The error for this problem where nothing is quarantined (a read that writes
    /// nothing): [`Error::NewerFormat`] for a newer build's state, else `Corruption`.
    pub(crate) fn unquarantined_error(&self, run_id: &RunId) -> Error {
        self.newer_format(run_id)
            .unwrap_or_else(|| Error::Corruption {
                run_id: run_id.clone(),
                file: self.file().to_owned(),
                offset: 0,
                detail: self.detail(),
            })
    }

    pub(crate) fn detail(&self) -> String {
        match self {
            StateProblem::Version {
                file,
                found,
                expected,
            } => format!("{file} has format version {found}, expected {expected}"),
            StateProblem::Foreign { file, found } => format!("{file} names run {found}"),
            StateProblem::Unreadable { file, detail } => format!("{file}: {detail}"),
        }
    }
}

/// A failure while reading a run: bad state (quarantined by the caller) or anything else.
#[derive(Debug)]
enum ReadFailure {
    Bad(StateProblem),
    Other(Error),
}

/// The problem of a run whose `file` could not be opened or read because something other
/// than a regular file stands in its place (see `fs::foreign_in_place`).
fn foreign_file(file: &'static str, err: &io::Error) -> StateProblem {
    let what = foreign_in_place(err).unwrap_or("something other than a file");
    StateProblem::Unreadable {
        file,
        detail: format!("{what} stands where its {file} belongs, so the run cannot be opened"),
    }
}

impl ReadFailure {
    /// This failure, with an I/O failure on `file` caused by something other than a regular
    /// file in its place made a problem of the run's state (quarantined, not retried).
    fn foreign_as_bad(self, file: &'static str) -> ReadFailure {
        match self {
            ReadFailure::Other(Error::Io { source, .. }) if foreign_in_place(&source).is_some() => {
                ReadFailure::Bad(foreign_file(file, &source))
            }
            other => other,
        }
    }
}

/// The refusal a journal's scan ending calls for: an unsupported format version (bad state)
/// or corruption; a clean end or a torn tail is read on.
fn refuse_journal_ending(run_id: &RunId, ending: &Ending) -> Result<(), ReadFailure> {
    match ending {
        Ending::Unsupported { version } => Err(ReadFailure::Bad(StateProblem::Version {
            file: JOURNAL_FILE,
            found: *version,
            expected: journal::FORMAT_VERSION,
        })),
        Ending::Corrupt { offset, detail } => Err(Error::Corruption {
            run_id: run_id.clone(),
            file: JOURNAL_FILE.to_owned(),
            offset: *offset,
            detail: detail.clone(),
        }
        .into()),
        Ending::Clean { .. } | Ending::Torn { .. } => Ok(()),
    }
}

impl From<Error> for ReadFailure {
    fn from(err: Error) -> Self {
        ReadFailure::Other(err)
    }
}

fn parse_meta(run_id: &RunId, bytes: &[u8]) -> Result<RunMeta, StateProblem> {
    match serde_json::from_slice::<RunMeta>(bytes) {
        Ok(meta) => {
            if meta.format_version != META_FORMAT_VERSION {
                return Err(StateProblem::Version {
                    file: META_FILE,
                    found: meta.format_version,
                    expected: META_FORMAT_VERSION,
                });
            }
            if meta.run_id != *run_id {
                return Err(StateProblem::Foreign {
                    file: META_FILE,
                    found: meta.run_id.to_string(),
                });
            }
            Ok(meta)
        }
        Err(err) => {
            // A newer or older layout may not parse at all; name its version if it has one.
            if let Ok(head) = serde_json::from_slice::<MetaHead>(bytes) {
                if let Some(found) = head.format_version
                    && found != META_FORMAT_VERSION
                {
                    return Err(StateProblem::Version {
                        file: META_FILE,
                        found,
                        expected: META_FORMAT_VERSION,
                    });
                }
                if let Some(found) = head.run_id
                    && found != run_id.as_str()
                {
                    return Err(StateProblem::Foreign {
                        file: META_FILE,
                        found,
                    });
                }
            }
            Err(StateProblem::Unreadable {
                file: META_FILE,
                detail: err.to_string(),
            })
        }
    }
}

/// CRC32C of `queue.json`'s content: its format version, run id and covers_seq in decimal,
/// each followed by one space (a run id holds no space), then the exact bytes of its
/// `snapshot` value as they stand in the file, from its opening to its closing brace.
///
/// The snapshot is summed as written, not as re-encoded, so reading a large one back costs
/// one pass of CRC32C rather than a second encoding, and the sum does not depend on how
/// the file was laid out (pretty-printed or on one line). A changed digit of covers_seq, a
/// changed byte of the snapshot, or a format version changed from 2 to 1 all fail it.
fn queue_file_checksum(format_version: u32, run_id: &str, covers_seq: u64, snapshot: &[u8]) -> u32 {
    crc32c::crc32c_append(
        queue_file_header_checksum(format_version, run_id, covers_seq),
        snapshot,
    )
}

/// The part of [`queue_file_checksum`] before the snapshot.
fn queue_file_header_checksum(format_version: u32, run_id: &str, covers_seq: u64) -> u32 {
    crc32c::crc32c(format!("{format_version} {run_id} {covers_seq} ").as_bytes())
}

/// Parses and checks `queue.json`: its format version, run id and checksum, then its
/// snapshot.
pub(crate) fn parse_queue_file(run_id: &RunId, bytes: &[u8]) -> Result<QueueFile, StateProblem> {
    // One parse of the file, the snapshot kept as text for its checksum; the identifying
    // fields are read on their own only to explain a file that does not parse (another
    // version's layout, most likely).
    let text: QueueFileText<'_> = match serde_json::from_slice(bytes) {
        Ok(text) => text,
        Err(err) => {
            if let Ok(head) = serde_json::from_slice::<QueueFileHead>(bytes) {
                check_queue_head(run_id, head.format_version, &head.run_id)?;
            }
            return Err(StateProblem::Unreadable {
                file: QUEUE_FILE,
                detail: err.to_string(),
            });
        }
    };
    // The version first: a newer build's file may be summed otherwise, and is left in place.
    check_queue_head(run_id, text.format_version, &text.run_id)?;
    let snapshot_text = text.snapshot.get();
    match text.crc32c {
        // A format 1 file, from a build before checksums: read unchecked.
        None if text.format_version == OLDEST_QUEUE_FILE_FORMAT_VERSION => {}
        None => {
            return Err(StateProblem::Unreadable {
                file: QUEUE_FILE,
                detail: format!(
                    "queue.json has no crc32c, which format version {} always carries",
                    text.format_version
                ),
            });
        }
        // Checked whatever the version says: a format 1 file never carries one, so a
        // checksum there means the version itself was damaged.
        Some(stored) => {
            let computed = queue_file_checksum(
                text.format_version,
                &text.run_id,
                text.covers_seq,
                snapshot_text.as_bytes(),
            );
            if stored != computed {
                return Err(StateProblem::Unreadable {
                    file: QUEUE_FILE,
                    detail: format!(
                        "queue.json checksum mismatch: crc32c {stored:#010x} is stored, \
                         {computed:#010x} is computed over format_version, run_id, covers_seq \
                         and snapshot"
                    ),
                });
            }
        }
    }
    if text.covers_seq == u64::MAX {
        // No record can follow it, and the next sequence number would overflow: only damage
        // (or a hand edit) gets a run here, since each record takes one number.
        return Err(StateProblem::Unreadable {
            file: QUEUE_FILE,
            detail: format!(
                "covers_seq {} leaves no sequence number for the next record",
                text.covers_seq
            ),
        });
    }
    let snapshot: Snapshot =
        serde_json::from_str(snapshot_text).map_err(|err| StateProblem::Unreadable {
            file: QUEUE_FILE,
            detail: format!("its snapshot: {err}"),
        })?;
    if snapshot.format_version != SNAPSHOT_FORMAT_VERSION {
        return Err(StateProblem::Version {
            file: QUEUE_FILE,
            found: snapshot.format_version,
            expected: SNAPSHOT_FORMAT_VERSION,
        });
    }
    Ok(QueueFile {
        covers_seq: text.covers_seq,
        snapshot,
    })
}

/// Refuses a `queue.json` of a format this build does not read, or naming another run.
fn check_queue_head(run_id: &RunId, version: u32, stored_id: &str) -> Result<(), StateProblem> {
    if !(OLDEST_QUEUE_FILE_FORMAT_VERSION..=QUEUE_FILE_FORMAT_VERSION).contains(&version) {
        return Err(StateProblem::Version {
            file: QUEUE_FILE,
            found: version,
            expected: QUEUE_FILE_FORMAT_VERSION,
        });
    }
    if stored_id != run_id.as_str() {
        return Err(StateProblem::Foreign {
            file: QUEUE_FILE,
            found: stored_id.to_owned(),
        });
    }
    Ok(())
}

/// Snapshots up to this size are written pretty-printed; larger ones on one line, because
/// indentation roughly doubles their size and so their parse time on reopen.
pub(crate) const PRETTY_QUEUE_FILE_LIMIT: usize = 1024 * 1024;

/// `queue.json` by reference, as written: what [`QueueFileText`] reads back. `crc32c` comes
/// last because it is summed while the snapshot before it is encoded.
#[derive(Serialize)]
struct QueueFileRef<'a, S> {
    format_version: u32,
    run_id: &'a str,
    covers_seq: u64,
    snapshot: Summed<'a, S>,
    crc32c: SumSoFar<'a>,
}

/// The running [`queue_file_checksum`] of one encoding of `queue.json`, shared by the writer
/// that sums bytes ([`SummingWriter`]) and the fields that switch summing on and read it.
struct QueueSum {
    summing: Cell<bool>,
    crc: Cell<u32>,
}

/// A value whose encoded bytes are summed: serde_json writes a field's value, and nothing
/// else, while that value's `serialize` runs, so the bytes summed are exactly the text a
/// reader finds as the field's value.
struct Summed<'a, S> {
    value: &'a S,
    sum: &'a QueueSum,
}

impl<S: Serialize> Serialize for Summed<'_, S> {
    fn serialize<T: serde::Serializer>(&self, serializer: T) -> Result<T::Ok, T::Error> {
        self.sum.summing.set(true);
        let encoded = self.value.serialize(serializer);
        self.sum.summing.set(false);
        encoded
    }
}

/// The sum so far, encoded as a number.
struct SumSoFar<'a>(&'a QueueSum);

impl Serialize for SumSoFar<'_> {
    fn serialize<T: serde::Serializer>(&self, serializer: T) -> Result<T::Ok, T::Error> {
        serializer.serialize_u32(self.0.crc.get())
    }
}

/// Writes through to `inner`, adding what it writes to the sum while summing is on.
struct SummingWriter<'a, W> {
    inner: W,
    sum: &'a QueueSum,
}

impl<W: io::Write> io::Write for SummingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        if self.sum.summing.get() {
            let crc = crc32c::crc32c_append(self.sum.crc.get(), &buf[..written]);
            self.sum.crc.set(crc);
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Encodes `queue.json` (this build's format, checksum included) into `out`, on one line or
/// pretty-printed.
fn encode_queue_file<W: io::Write, S: Serialize>(
    out: W,
    run_id: &str,
    covers_seq: u64,
    snapshot: &S,
    pretty: bool,
) -> serde_json::Result<()> {
    let sum = QueueSum {
        summing: Cell::new(false),
        crc: Cell::new(queue_file_header_checksum(
            QUEUE_FILE_FORMAT_VERSION,
            run_id,
            covers_seq,
        )),
    };
    let file = QueueFileRef {
        format_version: QUEUE_FILE_FORMAT_VERSION,
        run_id,
        covers_seq,
        snapshot: Summed {
            value: snapshot,
            sum: &sum,
        },
        crc32c: SumSoFar(&sum),
    };
    let out = SummingWriter {
        inner: out,
        sum: &sum,
    };
    if pretty {
        serde_json::to_writer_pretty(out, &file)
    } else {
        serde_json::to_writer(out, &file)
    }
}

impl Store {
    /// Installs `queue.json` in `dir` as [`Store::write_atomic`] does (temp, fdatasync,
    /// rename, fsync dir): `snapshot`, covering every record up to `covers_seq`, or
    /// `pretty`, the same state for a pretty-printer, when it is pretty-printed. Returns the
    /// file's length.
    ///
    /// A snapshot of up to [`PRETTY_QUEUE_FILE_LIMIT`] bytes (on one line) is pretty-printed
    /// in memory and written as one piece. A larger one is encoded on one line straight into
    /// the temp file: a large run's snapshot is tens of megabytes, and holding it whole was
    /// the largest allocation of every compaction. Which way applies is found by encoding
    /// into a counter that stops past the limit, so a large snapshot costs at most that much
    /// encoding again.
    ///
    /// `refuse` is asked just before the rename (see [`Store::write_atomic_unless`]).
    pub(crate) fn write_queue_file<S: Serialize, P: Serialize>(
        &self,
        dir: &Path,
        run_id: &RunId,
        covers_seq: u64,
        snapshot: &S,
        pretty: &P,
        refuse: &dyn Fn() -> Result<()>,
    ) -> Result<u64> {
        let mut counter = Counter {
            count: 0,
            limit: PRETTY_QUEUE_FILE_LIMIT,
        };
        match encode_queue_file(&mut counter, run_id.as_str(), covers_seq, snapshot, false) {
            Ok(()) => {
                let mut bytes = Vec::new();
                encode_queue_file(&mut bytes, run_id.as_str(), covers_seq, pretty, true)
                    .map_err(encoding("queue snapshot"))?;
                self.write_atomic_unless(dir, QUEUE_FILE, &bytes, refuse)?;
                return Ok(bytes.len() as u64);
            }
            Err(_) if counter.count > counter.limit => {}
            Err(err) => return Err(encoding("queue snapshot")(err)),
        }
        let tmp = dir.join(format!("{QUEUE_FILE}.tmp"));
        let target = dir.join(QUEUE_FILE);
        let file_handle = self
            .fs
            .open(&tmp, OpenMode::Truncate)
            .map_err(io_error("create", &tmp))?;
        let mut out = io::BufWriter::with_capacity(
            QUEUE_FILE_WRITE_CHUNK,
            FileWriter {
                file: file_handle,
                written: 0,
                failure: None,
            },
        );
        let encoded = encode_queue_file(&mut out, run_id.as_str(), covers_seq, snapshot, false)
            .and_then(|()| {
                use std::io::Write as _;
                out.flush().map_err(serde_json::Error::io)
            });
        let FileWriter {
            file: file_handle,
            written,
            failure,
        } = out.into_parts().0;
        // A failed write is reported as the file's own error, not as serde_json's wrapper.
        if let Some(err) = failure {
            return Err(io_error("write", &tmp)(err));
        }
        encoded.map_err(encoding("queue snapshot"))?;
        file_handle.sync_data().map_err(sync_error(&tmp))?;
        drop(file_handle);
        refuse()?;
        self.fs
            .rename(&tmp, &target)
            .map_err(io_error("rename", &tmp))?;
        self.fs.sync_dir(dir).map_err(sync_error(dir))?;
        Ok(written)
    }
}

/// Bytes a large `queue.json` is written in, one `write_all` each.
const QUEUE_FILE_WRITE_CHUNK: usize = 256 * 1024;

/// Counts what is written to it, and fails once the count passes `limit`.
struct Counter {
    count: usize,
    limit: usize,
}

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.count += buf.len();
        if self.count > self.limit {
            return Err(io::Error::other("past the limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An [`FsFile`] as an [`io::Write`], keeping the first error it met and counting bytes.
struct FileWriter {
    file: Box<dyn FsFile>,
    written: u64,
    failure: Option<io::Error>,
}

impl io::Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.failure.is_some() {
            return Err(io::Error::other("an earlier write failed"));
        }
        match self.file.write_all(buf) {
            Ok(()) => {
                self.written += buf.len() as u64;
                Ok(())
            }
            Err(err) => {
                let kind = err.kind();
                self.failure = Some(err);
                Err(io::Error::from(kind))
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The `TornTailCut` audit message: where the torn record started, and how much of what was
/// cut the torn write had left, apart from the zeros the journal was preallocated with.
fn torn_journal_message(offset: u64, bytes: u64, written: u64) -> String {
    let zeros = bytes.saturating_sub(written);
    if zeros == 0 {
        format!("cut a torn last journal record of {bytes} bytes at offset {offset}")
    } else {
        format!(
            "cut a torn last journal record at offset {offset}: {written} bytes of it were written, followed by {zeros} bytes of the journal's preallocated zeros"
        )
    }
}

/// `Locked` for a run whose lock `file` another holds, naming the holder it recorded there.
fn locked(run_id: &RunId, file: &mut dyn FsFile) -> Error {
    let holder = file
        .read_all()
        .ok()
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "an unknown process".to_owned());
    Error::Locked {
        run_id: run_id.clone(),
        holder,
    }
}

#[cfg(test)]
mod tests {
    //! `queue.json` is written in one of two ways; both must give the file the encoding
    //! always gave it, with a checksum that holds when it is read back.

    use std::sync::Arc;

    use cairn_checkpoint::RunId;
    use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};

    use super::{PRETTY_QUEUE_FILE_LIMIT, QUEUE_FILE, Store, encode_queue_file, parse_queue_file};
    use crate::fs::StdFilesystem;

    fn queue_of(tasks: usize) -> Queue {
        let mut queue = Queue::new(QueueConfig::default());
        for n in 0..tasks {
            let spec = TaskSpec::new("shell").inputs(serde_json::json!({
                "id": format!("t{n}"), "run": "echo \"a line\"\tand a tab", "env": {"A": "1"},
            }));
            queue.enqueue(spec, EnqueuedBy::Root, Timestamp(1)).unwrap();
        }
        queue
    }

    /// Writes `queue`'s snapshot and returns the file, the length returned and the file as
    /// it was encoded before it could be streamed: compact when that is over the limit,
    /// pretty-printed otherwise.
    fn written(queue: &Queue) -> (Vec<u8>, u64, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store {
            fs: Arc::new(StdFilesystem),
            root: dir.path().to_path_buf(),
            left_in_place: Default::default(),
        };
        let run_id = RunId::new("r1").unwrap();
        let snapshot = queue.snapshot_view();
        let len = store
            .write_queue_file(dir.path(), &run_id, 7, &snapshot, &snapshot, &|| Ok(()))
            .unwrap();
        let mut compact = Vec::new();
        encode_queue_file(&mut compact, run_id.as_str(), 7, &snapshot, false).unwrap();
        let expected = if compact.len() > PRETTY_QUEUE_FILE_LIMIT {
            compact
        } else {
            let mut pretty = Vec::new();
            encode_queue_file(&mut pretty, run_id.as_str(), 7, &snapshot, true).unwrap();
            pretty
        };
        let on_disk = std::fs::read(dir.path().join(QUEUE_FILE)).unwrap();
        assert!(!dir.path().join(format!("{QUEUE_FILE}.tmp")).exists());
        let read = parse_queue_file(&run_id, &on_disk).expect("its checksum holds");
        assert_eq!(read.covers_seq, 7);
        assert_eq!(read.snapshot, queue.snapshot());
        (on_disk, len, expected)
    }

    #[test]
    fn a_small_snapshot_is_pretty_printed() {
        let (on_disk, len, expected) = written(&queue_of(10));
        assert!(on_disk.contains(&b'\n'));
        assert_eq!(on_disk, expected);
        assert_eq!(len, on_disk.len() as u64);
    }

    #[test]
    fn a_large_snapshot_is_streamed_on_one_line() {
        let queue = queue_of(8_000);
        let (on_disk, len, expected) = written(&queue);
        assert!(
            on_disk.len() > PRETTY_QUEUE_FILE_LIMIT,
            "the case must be large"
        );
        assert!(!on_disk.contains(&b'\n'));
        assert_eq!(on_disk, expected);
        assert_eq!(len, on_disk.len() as u64);
    }
}
