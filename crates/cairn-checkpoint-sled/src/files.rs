//! sled's files on disk, and the fsyncs that make a flush durable.
//!
//! sled 0.34.7's `Db::flush` does not fsync. On Linux it writes its log file (`<dir>/db`)
//! with `pwrite` and `sync_file_range(2)`, which writes the data but neither the file's
//! metadata (the log grows, so its new length is metadata) nor the device's cache; it falls
//! back to `sync_all` only when that call is missing. Values over 128 KiB go to files in
//! `<dir>/blobs/`, written with no sync at all. sled's background flusher does fsync the log,
//! every 500 ms. So an acknowledgement right after `Db::flush` could be lost by a power cut.
//! After every flush the adapter therefore fsyncs the new blob files and their folder, then
//! the log, and once per handle sled's `conf` (written unsynced when the database was
//! created), the database folder and its parent. sled installs its own snapshots
//! (`snap.*`) by a rename it does not follow with an fsync of the folder, then deletes the
//! older ones, so the folder is fsynced again after any flush that finds that set changed.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

/// sled's log file inside the database folder.
const LOG_FILE: &str = "db";
/// sled's folder of large values inside the database folder.
const BLOBS_FOLDER: &str = "blobs";
/// The size of the value `check_written_by` writes: over sled's 128 KiB, so it is a blob.
const PROBE_BLOB_LEN: usize = 256 * 1024;
/// sled's configuration file, which it writes on the first open without an fsync and needs
/// (intact) to open the database again.
const CONF_FILE: &str = "conf";

/// The files of one open sled database, and what has been fsynced of them.
#[derive(Debug)]
pub(crate) struct SledFiles {
    dir: PathBuf,
    /// A second handle on sled's log: fsync applies to the file, whichever handle calls it.
    log: File,
    /// Blob files already fsynced, with the length they had then. A blob still being written
    /// when it was synced has grown since, and is synced again.
    synced_blobs: Mutex<HashMap<OsString, u64>>,
    /// Whether the folder's own entries (`db`, `blobs`) and its entry in its parent are durable.
    entries_synced: AtomicBool,
    /// sled's snapshot files (`snap.*`) when the folder was last fsynced. sled installs a
    /// snapshot by renaming it into place and then deletes the older ones, without an fsync
    /// of the folder, so the folder is fsynced again whenever that set changed.
    synced_snapshots: Mutex<Vec<OsString>>,
    /// Folder fsyncs so far, for tests.
    #[cfg(test)]
    folder_syncs: std::sync::atomic::AtomicU64,
}

/// Why a folder is not the files of an open sled database.
#[derive(Debug)]
pub(crate) enum NotOpenDatabase {
    /// `<dir>/db` could not be opened.
    NoLog(io::Error),
    /// `<dir>/db` is not locked, so no sled handle has it open.
    NotLocked,
    /// `<dir>` holds another open database: a blob written through the handle given did
    /// not appear in `<dir>/blobs/`.
    OtherDatabase,
    /// The blob written to find the handle's folder could not be written or removed.
    Probe(sled::Error),
}

impl std::fmt::Display for NotOpenDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotOpenDatabase::NoLog(err) => {
                write!(f, "its log file `{LOG_FILE}` cannot be opened ({err})")
            }
            NotOpenDatabase::NotLocked => write!(
                f,
                "its log file `{LOG_FILE}` is not locked, so no open sled database uses this folder"
            ),
            NotOpenDatabase::OtherDatabase => write!(
                f,
                "it holds another open sled database (a value written through the handle \
                 given did not land in its `{BLOBS_FOLDER}` folder)"
            ),
            NotOpenDatabase::Probe(err) => write!(
                f,
                "the value written to find the handle's folder could not be written or removed ({err})"
            ),
        }
    }
}

impl SledFiles {
    /// The files of the sled database open in `dir`.
    ///
    /// sled holds an exclusive lock on its log file while a handle is open, so a log that can
    /// be locked here belongs to no open database: the caller named the wrong folder.
    ///
    /// # Errors
    ///
    /// `NotOpenDatabase` when `dir/db` is missing, unreadable or not locked.
    pub(crate) fn of_open_database(dir: &Path) -> Result<SledFiles, NotOpenDatabase> {
        let log = File::open(dir.join(LOG_FILE)).map_err(NotOpenDatabase::NoLog)?;
        match log.try_lock() {
            Ok(()) => {
                // Best effort: the handle is dropped next, which releases the lock anyway.
                let _ = log.unlock();
                return Err(NotOpenDatabase::NotLocked);
            }
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(err)) => return Err(NotOpenDatabase::NoLog(err)),
        }
        Ok(SledFiles {
            dir: dir.to_path_buf(),
            log,
            synced_blobs: Mutex::default(),
            entries_synced: AtomicBool::new(false),
            synced_snapshots: Mutex::default(),
            #[cfg(test)]
            folder_syncs: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Checks that `tree`'s database keeps its files here, not in another open database's
    /// folder (whose fsyncs would cover none of its writes). sled gives no handle's folder,
    /// but writes a value over 128 KiB to a file in `<its folder>/blobs/` at once: one made
    /// of `token`, written and removed again under a key of `tree`, must show up here.
    ///
    /// # Errors
    ///
    /// `OtherDatabase` when the value's blob is not in this folder, `Probe` when sled
    /// failed to write or remove it.
    pub(crate) fn check_written_by(
        &self,
        tree: &sled::Tree,
        token: u128,
    ) -> Result<(), NotOpenDatabase> {
        const PROBE_KEY: &[u8] = b"folder-probe";
        let mark = token.to_be_bytes();
        let value = mark.repeat(PROBE_BLOB_LEN / mark.len());
        tree.insert(PROBE_KEY, value)
            .map_err(NotOpenDatabase::Probe)?;
        let found = self.holds_blob_with(&mark);
        tree.remove(PROBE_KEY).map_err(NotOpenDatabase::Probe)?;
        if found {
            Ok(())
        } else {
            Err(NotOpenDatabase::OtherDatabase)
        }
    }

    /// Whether a file in `blobs/` of about the probe's size holds `mark`.
    fn holds_blob_with(&self, mark: &[u8]) -> bool {
        let Ok(listing) = std::fs::read_dir(self.dir.join(BLOBS_FOLDER)) else {
            return false;
        };
        listing.flatten().any(|entry| {
            let len = entry.metadata().map_or(0, |metadata| metadata.len());
            // The value plus sled's framing; the host's other blobs are left unread.
            let sized = (PROBE_BLOB_LEN as u64..=PROBE_BLOB_LEN as u64 + 4096).contains(&len);
            sized
                && std::fs::read(entry.path())
                    .is_ok_and(|bytes| bytes.windows(mark.len()).any(|window| window == mark))
        })
    }

    /// Makes everything sled flushed so far durable. Call it after `sled::Db::flush`
    /// returned, on a thread that may block.
    ///
    /// # Errors
    ///
    /// The first failed fsync (or folder listing). The caller treats it as a failed flush.
    pub(crate) fn sync(&self) -> io::Result<()> {
        // Blobs first: the log records that point at them are already written.
        self.sync_new_blobs()?;
        self.log.sync_all()?;
        let snapshots = self.snapshot_files()?;
        let mut synced_snapshots = self
            .synced_snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.entries_synced.load(Ordering::Acquire) && *synced_snapshots != snapshots {
            self.sync_folder(&self.dir)?;
            *synced_snapshots = snapshots;
        } else if !self.entries_synced.load(Ordering::Acquire) {
            // sled wrote `conf` when the database was created and never fsynced it: a power
            // cut soon after could leave it empty beside a durable log, and sled would then
            // refuse to open the database at all.
            match File::open(self.dir.join(CONF_FILE)) {
                Ok(conf) => conf.sync_all()?,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
            self.sync_folder(&self.dir)?;
            let parent = match self.dir.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            self.sync_folder(parent)?;
            *synced_snapshots = snapshots;
            self.entries_synced.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// The names of sled's snapshot files in the folder, sorted.
    fn snapshot_files(&self) -> io::Result<Vec<OsString>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            if name.as_encoded_bytes().starts_with(b"snap.") {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn sync_folder(&self, path: &Path) -> io::Result<()> {
        #[cfg(test)]
        self.folder_syncs.fetch_add(1, Ordering::Relaxed);
        sync_folder(path)
    }

    fn sync_new_blobs(&self) -> io::Result<()> {
        let folder = self.dir.join(BLOBS_FOLDER);
        let listing = match std::fs::read_dir(&folder) {
            Ok(listing) => listing,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err),
        };
        let mut synced = self
            .synced_blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut present = HashMap::with_capacity(synced.len());
        let mut synced_any = false;
        for entry in listing {
            let entry = entry?;
            let len = match entry.metadata() {
                Ok(metadata) => metadata.len(),
                // sled removed it since the listing (its value was replaced or deleted).
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            let name = entry.file_name();
            if synced.get(&name) != Some(&len) {
                match File::open(entry.path()) {
                    Ok(file) => file.sync_all()?,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                    Err(err) => return Err(err),
                }
                synced_any = true;
            }
            present.insert(name, len);
        }
        if synced_any {
            self.sync_folder(&folder)?;
        }
        // Forget blobs sled has removed, so the table does not grow forever.
        *synced = present;
        Ok(())
    }

    /// The blob files fsynced so far, for tests.
    #[cfg(test)]
    pub(crate) fn synced_blob_count(&self) -> usize {
        self.synced_blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

fn sync_folder(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

#[cfg(test)]
mod tests {
    //! What was synced is private, so the blob bookkeeping is checked here; the public
    //! consequences (a failed sync fails the write, a wrong folder is refused) are in
    //! `tests/adapter.rs`.

    use super::*;

    fn blob_files(dir: &Path) -> usize {
        std::fs::read_dir(dir.join(BLOBS_FOLDER))
            .expect("sled's blobs folder")
            .count()
    }

    #[test]
    fn values_sled_keeps_as_blob_files_are_fsynced_once_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join("host.sled");
        let db = sled::open(&folder).expect("sled opens");
        let files = SledFiles::of_open_database(&folder).expect("an open database");
        db.insert("small", &b"x"[..]).expect("insert");
        db.flush().expect("flush");
        files.sync().expect("sync");
        assert_eq!(files.synced_blob_count(), 0, "a small value is no blob");

        // Over sled's 128 KiB threshold, so the value goes to its own file.
        db.insert("big", vec![7_u8; 300 * 1024]).expect("insert");
        db.flush().expect("flush");
        assert!(blob_files(&folder) >= 1, "sled wrote a blob file");
        files.sync().expect("sync");
        assert_eq!(files.synced_blob_count(), blob_files(&folder));
        assert!(files.entries_synced.load(Ordering::Acquire));
    }

    #[test]
    fn a_changed_set_of_sled_snapshots_fsyncs_the_folder_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join("snapshots.sled");
        let db = sled::open(&folder).expect("sled opens");
        let files = SledFiles::of_open_database(&folder).expect("an open database");
        db.insert("k", &b"v"[..]).expect("insert");
        db.flush().expect("flush");
        files.sync().expect("sync");
        let after_first = files.folder_syncs.load(Ordering::Relaxed);
        files.sync().expect("sync");
        assert_eq!(
            files.folder_syncs.load(Ordering::Relaxed),
            after_first,
            "nothing changed in the folder, so it is not fsynced again"
        );
        // As sled installs a snapshot: a new `snap.*` name renamed into the folder.
        std::fs::write(folder.join("snap.00000000000F0000"), b"").expect("a snapshot file");
        files.sync().expect("sync");
        assert_eq!(
            files.folder_syncs.load(Ordering::Relaxed),
            after_first + 1,
            "the rename of a snapshot is made durable"
        );
    }

    #[test]
    fn the_first_sync_fsyncs_sleds_conf_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join("fresh.sled");
        let db = sled::open(&folder).expect("sled opens");
        let files = SledFiles::of_open_database(&folder).expect("an open database");
        // sled read `conf` when it opened; a link to itself cannot be opened, so a sync
        // that fsyncs `conf` fails, and one that leaves it alone does not.
        let conf = folder.join(CONF_FILE);
        std::fs::rename(&conf, folder.join("conf.aside")).expect("move conf");
        std::os::unix::fs::symlink(CONF_FILE, &conf).expect("a link to itself");
        db.insert("k", &b"v"[..]).expect("insert");
        db.flush().expect("flush");
        let err = files.sync().expect_err("conf was fsynced");
        // ELOOP: the link was followed, so the error is conf's.
        #[cfg(target_os = "linux")]
        assert_eq!(err.raw_os_error(), Some(40), "{err}");
        assert!(!files.entries_synced.load(Ordering::Acquire));
    }

    #[test]
    fn a_folder_without_an_open_database_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = SledFiles::of_open_database(dir.path()).expect_err("no log file");
        assert!(matches!(err, NotOpenDatabase::NoLog(_)), "{err}");

        let folder = dir.path().join("closed.sled");
        drop(sled::open(&folder).expect("sled opens"));
        // sled releases its lock when its flusher thread ends, a little after the drop.
        let mut outcome = SledFiles::of_open_database(&folder);
        for _ in 0..500 {
            if outcome.is_err() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            outcome = SledFiles::of_open_database(&folder);
        }
        let err = outcome.expect_err("a closed database holds no lock");
        assert!(matches!(err, NotOpenDatabase::NotLocked), "{err}");
        assert!(err.to_string().contains("not locked"), "{err}");
    }
}
