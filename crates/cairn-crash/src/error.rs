//! The one error type of `cairn-crash`'s library.

use std::path::{Path, PathBuf};

/// Everything the harness and the worker can fail with (as opposed to a violation, which
/// the verifier counts and reports).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file operation of the harness itself failed.
    #[error("{op} failed on {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The checkpoint store failed.
    #[error("checkpoint store: {0}")]
    Checkpoint(#[from] cairn_checkpoint::Error),
    /// The sled adapter could not be opened.
    #[error("sled adapter: {0}")]
    Sled(#[from] cairn_checkpoint_sled::Error),
    /// The executor refused or failed a run.
    #[error("executor: {0}")]
    Executor(#[from] cairn_executor::Error),
    /// A value could not be encoded or decoded.
    #[error("could not encode or decode {what}: {detail}")]
    Encoding {
        /// What.
        what: &'static str,
        /// The serializer's message.
        detail: String,
    },
    /// `CAIRN_CRASH_AT` or a command-line option is not understood.
    #[error("invalid setting `{text}`: {reason}")]
    Setting {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A worker process misbehaved (did not start, exited with an unexpected status).
    #[error("worker: {0}")]
    Worker(String),
}

impl Error {
    /// An `Io` error for `op` on `path`.
    pub fn io(op: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
