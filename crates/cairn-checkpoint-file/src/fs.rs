//! The I/O layer: every byte the adapter reads or writes goes through [`Filesystem`].
//!
//! [`StdFilesystem`] is the real implementation. A crash harness can plug in its own (through
//! `FileFactoryBuilder::filesystem`) to record writes, drop unsynced ones and tear the last
//! write, or to fail a chosen `sync_data` call.

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

/// How `Filesystem::open` opens a file.
///
/// # Examples
///
/// ```
/// use std::io::ErrorKind;
///
/// use cairn_checkpoint_file::{Filesystem, OpenMode, StdFilesystem};
///
/// let dir = tempfile::tempdir()?;
/// let fs = StdFilesystem;
/// let path = dir.path().join("meta.json.tmp");
/// fs.open(&path, OpenMode::CreateNew)?.write_all(b"first")?;
/// // `CreateNew` never replaces a file: a second maker of it is told so.
/// let again = fs.open(&path, OpenMode::CreateNew).unwrap_err();
/// assert_eq!(again.kind(), ErrorKind::AlreadyExists);
/// // `Truncate` starts the file over.
/// fs.open(&path, OpenMode::Truncate)?.write_all(b"new")?;
/// assert_eq!(fs.read(&path)?, b"new");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and append at the end; created (mode 0600) when missing.
    Append,
    /// Read and write from the start; created (mode 0600) when missing, never truncated.
    ReadWrite,
    /// Write from the start; created (mode 0600) when missing, truncated when present.
    Truncate,
    /// Write from the start; fails with `AlreadyExists` when the file exists.
    CreateNew,
}

/// An open file. Object-safe so a test layer can stand in for `std::fs::File`.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint_file::{Filesystem, OpenMode, StdFilesystem};
///
/// let dir = tempfile::tempdir()?;
/// let fs = StdFilesystem;
/// let path = dir.path().join("journal");
/// let file = fs.open(&path, OpenMode::ReadWrite)?;
/// // Zeros first, then a write over them in place: the length stays, as for the journal.
/// file.set_len(16)?;
/// file.write_at(0, b"batch")?;
/// file.sync_data()?;
/// assert_eq!(file.size()?, 16);
/// let mut head = [0; 5];
/// assert_eq!(file.read_at(0, &mut head)?, 5);
/// assert_eq!(&head, b"batch");
/// // The lock belongs to the open file, so a second open is refused while the first holds it.
/// assert!(file.try_lock()?);
/// let reader = fs.open(&path, OpenMode::Read)?;
/// assert!(!reader.try_lock_shared()?);
/// file.unlock()?;
/// assert!(reader.try_lock_shared()?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait FsFile: Send + Sync + Debug {
    /// Writes all of `buf` at the current position (the end, in `Append` mode).
    ///
    /// # Errors
    ///
    /// The OS error of the write.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;

    /// Writes all of `buf` at `offset`, growing the file when the write ends past its end.
    /// Meant for files opened `ReadWrite` (on Linux a file opened `Append` ignores the
    /// offset and appends).
    ///
    /// The journal is written with it so that appends can overwrite preallocated zeros in
    /// place. The default returns `ErrorKind::Unsupported` for every call, an empty `buf`
    /// included; the adapter probes with an empty write and, on `Unsupported`, opens the
    /// journal `Append` and appends with `write_all` instead (no preallocation).
    ///
    /// # Errors
    ///
    /// The OS error of the write; `Unsupported` from the default.
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let _ = (offset, buf);
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this file layer has no positioned writes",
        ))
    }

    /// Reads the whole file from the start.
    ///
    /// # Errors
    ///
    /// The OS error of the read.
    fn read_all(&mut self) -> io::Result<Vec<u8>>;

    /// Reads up to `buf.len()` bytes at `offset` without moving the write position.
    /// Returns how many bytes were read (fewer only at the end of the file).
    ///
    /// # Errors
    ///
    /// The OS error of the read.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// `fdatasync`: makes written data durable.
    ///
    /// # Errors
    ///
    /// The OS error. Callers treat it as fatal and never retry.
    fn sync_data(&self) -> io::Result<()>;

    /// Sets the file's length (truncates or extends with zeroes).
    ///
    /// # Errors
    ///
    /// The OS error.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// The file's current length.
    ///
    /// # Errors
    ///
    /// The OS error.
    fn size(&self) -> io::Result<u64>;

    /// Takes the exclusive advisory lock without waiting. `Ok(false)` when another open file
    /// (in this or another process) holds it.
    ///
    /// # Errors
    ///
    /// The OS error, other than "would block".
    fn try_lock(&self) -> io::Result<bool>;

    /// Takes the shared advisory lock without waiting: any number of shared holders, but no
    /// exclusive one. `Ok(false)` when an exclusive holder has it. Taken on a file opened
    /// `Read`, so readers need no write access.
    ///
    /// No default: a wrapper that forgot to forward it would take the exclusive lock
    /// instead, and a probe could then make a writer's `open` fail with `Locked`.
    ///
    /// # Errors
    ///
    /// The OS error, other than "would block".
    fn try_lock_shared(&self) -> io::Result<bool>;

    /// Takes the exclusive advisory lock, waiting for it.
    ///
    /// # Errors
    ///
    /// The OS error.
    fn lock(&self) -> io::Result<()>;

    /// Releases the lock (closing the file releases it too).
    ///
    /// # Errors
    ///
    /// The OS error.
    fn unlock(&self) -> io::Result<()>;

    /// Whether this open file is still the one at `path` (the same file, not one made there
    /// since): `Some(false)` when `path` names another file or nothing. `None` when the layer
    /// cannot tell, which is the default.
    ///
    /// A lock belongs to the file, not to its name. The adapter asks after taking a run's
    /// lock: a lock file opened just before its run's folder was removed (and a new run
    /// begun under the same id) is a gone file, and its lock keeps no one out of the new
    /// run. A layer answering `None` skips that check.
    ///
    /// # Errors
    ///
    /// The OS error of looking `path` up, other than "not found".
    fn is_at(&self, path: &Path) -> io::Result<Option<bool>> {
        let _ = path;
        Ok(None)
    }
}

/// Directory and file operations the adapter needs. Object-safe; hold it as
/// `Arc<dyn Filesystem>`.
///
/// Implementations MUST keep the documented semantics of each call (in particular: data is
/// durable only after `sync_data` returned `Ok`, and a rename or new file is durable only
/// after `sync_dir` of its folder returned `Ok`), because the adapter's ordering relies on
/// them. A crash-simulating implementation may drop or tear anything not yet synced.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint_file::{Filesystem, OpenMode, StdFilesystem};
///
/// let dir = tempfile::tempdir()?;
/// let fs = StdFilesystem;
/// let path = dir.path().join("note");
/// let mut file = fs.open(&path, OpenMode::Append)?;
/// file.write_all(b"hello")?;
/// file.sync_data()?;
/// fs.sync_dir(dir.path())?;
/// assert_eq!(fs.read(&path)?, b"hello");
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Filesystem: Send + Sync + Debug + 'static {
    /// Opens `path` as `mode` says. New files get mode 0600.
    ///
    /// # Errors
    ///
    /// The OS error (`NotFound` for a missing file in `Read` mode).
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>>;

    /// Reads a whole file.
    ///
    /// # Errors
    ///
    /// The OS error (`NotFound` for a missing file).
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// Creates one directory (mode 0700). Fails with `AlreadyExists` when it exists.
    ///
    /// # Errors
    ///
    /// The OS error.
    fn create_dir(&self, path: &Path) -> io::Result<()>;

    /// Creates a directory and its missing parents (mode 0700).
    ///
    /// # Errors
    ///
    /// The OS error.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;

    /// Renames a file or directory (atomic within one file system).
    ///
    /// # Errors
    ///
    /// The OS error.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// `fsync` of a directory, so the entries created, renamed or removed in it are durable.
    ///
    /// # Errors
    ///
    /// The OS error.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// The names of a directory's entries (no `.` or `..`), in no particular order.
    ///
    /// # Errors
    ///
    /// The OS error (`NotFound` for a missing directory).
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;

    /// Whether a file or directory exists at `path`.
    ///
    /// # Errors
    ///
    /// The OS error, other than "not found".
    fn exists(&self, path: &Path) -> io::Result<bool>;

    /// Removes a directory and everything in it. The adapter uses it ONLY for a `begin`'s
    /// own staging folder after losing a race, and for the folder of a `completed` or
    /// `cancelled` run that `remove_terminal` already renamed to a hidden removal name (so
    /// the run is gone before any of its files is deleted); never for other state, and
    /// never for quarantined state.
    ///
    /// # Errors
    ///
    /// The OS error.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
}

/// The real file system, through `std::fs`.
///
/// # Examples
///
/// ```
/// use std::io::ErrorKind;
///
/// use cairn_checkpoint_file::{Filesystem, OpenMode, StdFilesystem};
///
/// let dir = tempfile::tempdir()?;
/// let fs = StdFilesystem;
/// // Fill a folder under a hidden name, then rename it into place, as a begin does.
/// let staging = dir.path().join(".begin-r1");
/// fs.create_dir(&staging)?;
/// fs.open(&staging.join("meta.json"), OpenMode::CreateNew)?.sync_data()?;
/// let run = dir.path().join("r1");
/// fs.rename(&staging, &run)?;
/// fs.sync_dir(dir.path())?;
/// assert!(!fs.exists(&staging)? && fs.exists(&run)?);
/// assert_eq!(fs.list_dir(&run)?, ["meta.json"]);
/// // `create_dir` makes one new folder, never an existing one.
/// assert_eq!(fs.create_dir(&run).unwrap_err().kind(), ErrorKind::AlreadyExists);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFilesystem;

/// A `std::fs::File` behind the [`FsFile`] trait.
#[derive(Debug)]
pub struct StdFile(File);

impl FsFile for StdFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.0.write_all_at(buf, offset)
    }

    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        use std::io::Seek;
        self.0.seek(io::SeekFrom::Start(0))?;
        let mut out = Vec::new();
        self.0.read_to_end(&mut out)?;
        Ok(out)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut filled = 0;
        while filled < buf.len() {
            match self.0.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(filled)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn try_lock(&self) -> io::Result<bool> {
        match self.0.try_lock() {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(err)) => Err(err),
        }
    }

    fn try_lock_shared(&self) -> io::Result<bool> {
        match self.0.try_lock_shared() {
            Ok(()) => Ok(true),
            Err(TryLockError::WouldBlock) => Ok(false),
            Err(TryLockError::Error(err)) => Err(err),
        }
    }

    fn lock(&self) -> io::Result<()> {
        self.0.lock()
    }

    fn unlock(&self) -> io::Result<()> {
        self.0.unlock()
    }

    fn is_at(&self, path: &Path) -> io::Result<Option<bool>> {
        use std::os::unix::fs::MetadataExt;
        let held = self.0.metadata()?;
        match fs::metadata(path) {
            Ok(there) => Ok(Some(held.dev() == there.dev() && held.ino() == there.ino())),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(Some(false))
            }
            Err(err) => Err(err),
        }
    }
}

impl Filesystem for StdFilesystem {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let mut options = OpenOptions::new();
        options.mode(0o600);
        match mode {
            OpenMode::Read => options.read(true),
            OpenMode::Append => options.read(true).append(true).create(true),
            OpenMode::ReadWrite => options.read(true).write(true).create(true),
            OpenMode::Truncate => options.write(true).create(true).truncate(true),
            OpenMode::CreateNew => options.write(true).create_new(true),
        };
        Ok(Box::new(StdFile(open_regular(&mut options, path)?)))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut file = open_regular(OpenOptions::new().read(true), path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::DirBuilder::new().mode(0o700).create(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }
}

/// Opens `path` without waiting on it and refuses anything but a regular file or a folder:
/// opening a FIFO put where a state file belongs would otherwise block until a writer came
/// (`cairn show` hung on one), and a device or socket is never state. `O_NONBLOCK` has no
/// effect on regular files.
fn open_regular(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    let file = options.custom_flags(libc::O_NONBLOCK).open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() || kind.is_dir() {
        return Ok(file);
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, NotRegular))
}

/// The error inside what [`open_regular`] returns for a FIFO, socket or device.
#[derive(Debug)]
struct NotRegular;

impl std::fmt::Display for NotRegular {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "not a regular file (a FIFO, socket or device stands where a state file belongs)",
        )
    }
}

impl std::error::Error for NotRegular {}

/// What stands where a file of the store belongs, when an open or read of it failed because
/// that is not a regular file: a folder, or a FIFO, socket or device. `None` for any other
/// failure. Such a thing is foreign state: the store quarantines it rather than failing on
/// it for good.
pub(crate) fn foreign_in_place(err: &io::Error) -> Option<&'static str> {
    if err.kind() == io::ErrorKind::IsADirectory {
        Some("a folder")
    } else if err.get_ref().is_some_and(|inner| inner.is::<NotRegular>()) {
        Some("a FIFO, socket or device")
    } else {
        None
    }
}
