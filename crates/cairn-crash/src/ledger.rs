//! The side-effect ledger: one JSON line per handler body run, appended with `O_APPEND` and
//! fsynced per line, in a file apart from the checkpoint store; and beside it the
//! acknowledgement ledger: one line per completion the store acknowledged to the worker.
//!
//! The ledger is the harness's witness of what bodies actually ran, independent of what the
//! journal says. The acknowledgement ledger is its witness of what the store promised: a
//! completion it acknowledged and then lost makes the task run again, and without this
//! witness that repeat looks exactly like the re-run of an attempt a kill cut off.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::de::DeserializeOwned;
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

/// One completion the store acknowledged: the append holding its `Completed` event
/// returned `Ok`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledged {
    /// The run.
    pub run: String,
    /// The task id (the number of `t<n>`).
    pub task: u64,
    /// The attempt whose completion was acknowledged.
    pub attempt: u32,
}

/// An open ledger file (the side-effect ledger or the acknowledgement ledger). Appends are
/// serialized, each one `write`.
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
        self.write_lines(std::slice::from_ref(entry), true)
    }

    /// Appends acknowledged completions as a single `write` of their lines, without an
    /// fsync: the worker calls this on its drive task (`Executor::on_acknowledged`), which
    /// must stay quick, and the harness only kills processes, which keeps the page cache.
    ///
    /// # Errors
    ///
    /// `Error::Io` when the write fails.
    pub fn append_acknowledged(&self, acks: &[Acknowledged]) -> Result<()> {
        self.write_lines(acks, false)
    }

    fn write_lines<T: Serialize>(&self, items: &[T], sync: bool) -> Result<()> {
        let mut lines = Vec::new();
        for item in items {
            serde_json::to_writer(&mut lines, item).map_err(|err| Error::Encoding {
                what: "ledger entry",
                detail: err.to_string(),
            })?;
            lines.push(b'\n');
        }
        if lines.is_empty() {
            return Ok(());
        }
        let file = self
            .file
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        (&*file)
            .write_all(&lines)
            .map_err(|source| Error::io("append to ledger", &self.path, source))?;
        if sync {
            file.sync_data()
                .map_err(|source| Error::io("fsync ledger", &self.path, source))?;
        }
        Ok(())
    }
}

/// What the side-effect ledger holds: its entries, and the partial lines kills left.
pub type LedgerContents = Contents<LedgerEntry>;

/// What a ledger file holds: its entries, and the partial lines kills left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents<T> {
    /// Every parsed entry, in file order.
    pub entries: Vec<T>,
    /// Lines that are not entries: a SIGKILL can cut a `write` short at a page boundary
    /// (Linux checks for fatal signals between pages), leaving a partial line that the next
    /// worker ends with a newline. Each is a body run killed while writing its line.
    pub torn_lines: usize,
}

impl<T> Default for Contents<T> {
    fn default() -> Self {
        Contents {
            entries: Vec::new(),
            torn_lines: 0,
        }
    }
}

/// Reads a side-effect ledger file; a missing file is an empty ledger.
///
/// # Errors
///
/// `Error::Io` when the file exists but cannot be read.
pub fn read(path: &Path) -> Result<LedgerContents> {
    read_lines(path)
}

/// Reads an acknowledgement ledger file; a missing file acknowledged nothing.
///
/// # Errors
///
/// `Error::Io` when the file exists but cannot be read.
pub fn read_acknowledged(path: &Path) -> Result<Contents<Acknowledged>> {
    read_lines(path)
}

fn read_lines<T: DeserializeOwned>(path: &Path) -> Result<Contents<T>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => return Err(Error::io("read ledger", path, source)),
    };
    Ok(parse(&bytes))
}

/// Parses ledger bytes.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Contents<T> {
    let mut contents = Contents::default();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice(line) {
            Ok(entry) => contents.entries.push(entry),
            Err(_) => contents.torn_lines += 1,
        }
    }
    contents
}
