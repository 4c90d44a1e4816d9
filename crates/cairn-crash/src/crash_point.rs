//! Forced crash points: a [`Filesystem`] layer that aborts the process at a named point of
//! the file adapter's I/O, the `nth` time that point is reached.
//!
//! The worker reads the point from `CAIRN_CRASH_AT=point[:nth]`. Aborting (not exiting) is
//! the point: no destructor, no flush, no unlock runs, exactly like a kill at that instant.

use std::io;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_checkpoint_file::{Filesystem, FsFile, OpenMode};

use crate::error::Error;

/// The environment variable the worker reads.
pub const ENV_VAR: &str = "CAIRN_CRASH_AT";

/// Where in the file adapter's I/O the process aborts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Point {
    /// After a journal append's `write`, before its `fdatasync`.
    JournalAppendBeforeFsync,
    /// In the middle of a journal append: all of its bytes but the last are written, then
    /// abort. Cutting one byte always tears the batch's last record, wherever record
    /// boundaries fall, so the next open must find (and cut) a torn tail.
    JournalTornWrite,
    /// A snapshot (`queue.json.tmp`) was written and synced, and is not yet renamed.
    SnapshotBeforeRename,
    /// The snapshot was renamed into place, before the directory fsync.
    SnapshotAfterRename,
    /// Before a journal truncate: a caller-installed snapshot's truncate, or recovery's cut
    /// of a torn tail on open.
    JournalTruncate,
    /// Recovery's read of the journal on open.
    RecoveryRead,
    /// Compaction's snapshot is installed and the journal holding only the records after it
    /// (`journal.tmp`) is written and synced, not yet renamed over the journal.
    JournalRewriteBeforeRename,
    /// The rewritten journal was renamed into place, before the directory fsync.
    JournalRewriteAfterRename,
}

impl Point {
    /// Every point, in the order the scenarios run them.
    pub const ALL: [Point; 8] = [
        Point::JournalAppendBeforeFsync,
        Point::JournalTornWrite,
        Point::SnapshotBeforeRename,
        Point::SnapshotAfterRename,
        Point::JournalTruncate,
        Point::RecoveryRead,
        Point::JournalRewriteBeforeRename,
        Point::JournalRewriteAfterRename,
    ];

    /// The name used in `CAIRN_CRASH_AT`.
    pub fn name(self) -> &'static str {
        match self {
            Point::JournalAppendBeforeFsync => "journal-append-before-fsync",
            Point::JournalTornWrite => "journal-torn-write",
            Point::SnapshotBeforeRename => "snapshot-before-rename",
            Point::SnapshotAfterRename => "snapshot-after-rename",
            Point::JournalTruncate => "journal-truncate",
            Point::RecoveryRead => "recovery-read",
            Point::JournalRewriteBeforeRename => "journal-rewrite-before-rename",
            Point::JournalRewriteAfterRename => "journal-rewrite-after-rename",
        }
    }
}

/// A point and which of its hits aborts (from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashAt {
    /// The point.
    pub point: Point,
    /// Which hit aborts.
    pub nth: u64,
}

impl FromStr for CrashAt {
    type Err = Error;

    /// Parses `point[:nth]` (`nth` defaults to 1).
    fn from_str(text: &str) -> Result<CrashAt, Error> {
        let bad = |reason: String| Error::Setting {
            text: text.to_owned(),
            reason,
        };
        let (name, nth) = match text.split_once(':') {
            Some((name, nth)) => (
                name,
                nth.parse::<u64>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| bad("nth must be a number from 1".to_owned()))?,
            ),
            None => (text, 1),
        };
        let point = Point::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Point::ALL.iter().map(|p| p.name()).collect();
                bad(format!("unknown point; known: {}", names.join(", ")))
            })?;
        Ok(CrashAt { point, nth })
    }
}

/// Counts hits of one armed point and aborts on the chosen one.
#[derive(Debug)]
struct Trigger {
    at: Option<CrashAt>,
    hits: AtomicU64,
}

impl Trigger {
    /// Whether this hit of `point` is the one that aborts.
    fn fires(&self, point: Point) -> bool {
        match self.at {
            Some(at) if at.point == point => self.hits.fetch_add(1, Ordering::SeqCst) + 1 == at.nth,
            _ => false,
        }
    }
}

/// The layer: forwards everything to `inner`, aborting at the armed point.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use cairn_checkpoint_file::{FileFactory, StdFilesystem};
/// use cairn_crash::crash_point::CrashFs;
///
/// // Unarmed, it only forwards.
/// let fs = CrashFs::new(Arc::new(StdFilesystem), None);
/// let root = tempfile::tempdir()?;
/// let factory = FileFactory::builder(root.path()).filesystem(Arc::new(fs)).build()?;
/// assert!(factory.root().exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct CrashFs {
    inner: Arc<dyn Filesystem>,
    trigger: Arc<Trigger>,
}

impl CrashFs {
    /// Wraps `inner`, armed at `at` (or not at all).
    pub fn new(inner: Arc<dyn Filesystem>, at: Option<CrashAt>) -> CrashFs {
        CrashFs {
            inner,
            trigger: Arc::new(Trigger {
                at,
                hits: AtomicU64::new(0),
            }),
        }
    }

    /// Wraps `inner`, armed from `CAIRN_CRASH_AT` when it is set and not empty.
    ///
    /// # Errors
    ///
    /// `Error::Setting` when the variable does not parse.
    pub fn from_env(inner: Arc<dyn Filesystem>) -> Result<CrashFs, Error> {
        let at = match std::env::var(ENV_VAR) {
            Ok(text) if !text.is_empty() => Some(text.parse()?),
            _ => None,
        };
        Ok(CrashFs::new(inner, at))
    }

    fn abort(&self, point: Point) -> ! {
        eprintln!(
            "cairn-crash worker: aborting at crash point {}",
            point.name()
        );
        std::process::abort()
    }
}

fn is_named(path: &Path, name: &str) -> bool {
    path.file_name().is_some_and(|n| n == name)
}

/// An open file of [`CrashFs`].
#[derive(Debug)]
struct CrashFile {
    inner: Box<dyn FsFile>,
    journal: bool,
    fs: CrashFs,
}

impl FsFile for CrashFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.journal && self.fs.trigger.fires(Point::JournalTornWrite) {
            let torn = buf.len().saturating_sub(1);
            self.inner.write_all(&buf[..torn])?;
            self.fs.abort(Point::JournalTornWrite);
        }
        self.inner.write_all(buf)?;
        if self.journal && self.fs.trigger.fires(Point::JournalAppendBeforeFsync) {
            self.fs.abort(Point::JournalAppendBeforeFsync);
        }
        Ok(())
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        if buf.is_empty() {
            return self.inner.write_at(offset, buf);
        }
        if self.journal && self.fs.trigger.fires(Point::JournalTornWrite) {
            let torn = buf.len().saturating_sub(1);
            self.inner.write_at(offset, &buf[..torn])?;
            self.fs.abort(Point::JournalTornWrite);
        }
        self.inner.write_at(offset, buf)?;
        if self.journal && self.fs.trigger.fires(Point::JournalAppendBeforeFsync) {
            self.fs.abort(Point::JournalAppendBeforeFsync);
        }
        Ok(())
    }

    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        if self.journal && self.fs.trigger.fires(Point::RecoveryRead) {
            self.fs.abort(Point::RecoveryRead);
        }
        self.inner.read_all()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(offset, buf)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        if self.journal && self.fs.trigger.fires(Point::JournalTruncate) {
            self.fs.abort(Point::JournalTruncate);
        }
        self.inner.set_len(len)
    }

    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn try_lock(&self) -> io::Result<bool> {
        self.inner.try_lock()
    }

    fn try_lock_shared(&self) -> io::Result<bool> {
        self.inner.try_lock_shared()
    }

    fn lock(&self) -> io::Result<()> {
        self.inner.lock()
    }

    fn unlock(&self) -> io::Result<()> {
        self.inner.unlock()
    }

    // Forwarded so the workers keep the adapter's check that a lock taken is on the file
    // still at the lock's path; the provided default would skip it.
    fn is_at(&self, path: &Path) -> io::Result<Option<bool>> {
        self.inner.is_at(path)
    }
}

impl Filesystem for CrashFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        Ok(Box::new(CrashFile {
            inner: self.inner.open(path, mode)?,
            journal: is_named(path, "journal"),
            fs: self.clone(),
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let points = if is_named(from, "queue.json.tmp") {
            Some((Point::SnapshotBeforeRename, Point::SnapshotAfterRename))
        } else if is_named(from, "journal.tmp") {
            Some((
                Point::JournalRewriteBeforeRename,
                Point::JournalRewriteAfterRename,
            ))
        } else {
            None
        };
        if let Some((before, _)) = points
            && self.trigger.fires(before)
        {
            self.abort(before);
        }
        self.inner.rename(from, to)?;
        if let Some((_, after)) = points
            && self.trigger.fires(after)
        {
            self.abort(after);
        }
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(path)
    }
}
