//! The side-effect ledger: one JSON line per handler body run, appended with `O_APPEND` and
//! fsynced per line, in a file apart from the checkpoint store.
//!
//! The ledger is the harness's witness of what bodies actually ran, independent of what the
//! journal says.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One body run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The run.
    pub run: String,
    /// The task id (the number of `t<n>`).
    pub task: u64,
    /// The attempt the body ran as.
    pub attempt: u32,
    /// The handler context's idempotency key.
    pub key: String,
    /// The task's behaviour name, to tie the entry to the generated DAG.
    pub name: String,
}

/// An open ledger. Appends are serialized, each one `write` plus `fsync`.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    file: Mutex<File>,
}

impl Ledger {
    /// Opens (creating when missing) the ledger at `path` for appending.
    ///
    /// # Errors
    ///
    /// `Error::Io` naming the path when it cannot be opened.
    pub fn open(path: &Path) -> Result<Ledger> {
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .map_err(|source| Error::io("open ledger", path, source))?;
        // SIGKILL can cut a write short at a page boundary, so a killed worker may have left
        // a partial last line. End it here, so the next entry starts on a line of its own.
        let len = file
            .metadata()
            .map_err(|source| Error::io("stat ledger", path, source))?
            .len();
        if len > 0 {
            use std::os::unix::fs::FileExt;
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, len - 1)
                .map_err(|source| Error::io("read ledger", path, source))?;
            if last[0] != b'\n' {
                file.write_all(b"\n")
                    .and_then(|()| file.sync_data())
                    .map_err(|source| Error::io("end torn ledger line", path, source))?;
            }
        }
        Ok(Ledger {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// Appends one entry as a single `write` of one line, then fsyncs it.
    ///
    /// # Errors
    ///
    /// `Error::Io` when the write or the fsync fails.
    pub fn append(&self, entry: &LedgerEntry) -> Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(|err| Error::Encoding {
            what: "ledger entry",
            detail: err.to_string(),
        })?;
        line.push(b'\n');
        let file = self
            .file
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        (&*file)
            .write_all(&line)
            .map_err(|source| Error::io("append to ledger", &self.path, source))?;
        file.sync_data()
            .map_err(|source| Error::io("fsync ledger", &self.path, source))
    }
}

/// What a ledger file holds: its entries, and the partial lines kills left.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerContents {
    /// Every parsed entry, in file order.
    pub entries: Vec<LedgerEntry>,
    /// Lines that are not entries: a SIGKILL can cut a `write` short at a page boundary
    /// (Linux checks for fatal signals between pages), leaving a partial line that the next
    /// worker ends with a newline. Each is a body run killed while writing its line.
    pub torn_lines: usize,
}

/// Reads a ledger file; a missing file is an empty ledger.
///
/// # Errors
///
/// `Error::Io` when the file exists but cannot be read.
pub fn read(path: &Path) -> Result<LedgerContents> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(Error::io("read ledger", path, source)),
    };
    Ok(parse(&bytes))
}

/// Parses ledger bytes.
pub fn parse(bytes: &[u8]) -> LedgerContents {
    let mut contents = LedgerContents::default();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice(line) {
            Ok(entry) => contents.entries.push(entry),
            Err(_) => contents.torn_lines += 1,
        }
    }
    contents
}
