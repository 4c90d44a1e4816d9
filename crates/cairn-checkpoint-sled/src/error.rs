//! Errors of building a `SledFactory`, and the mapping of sled's errors into the port's.

use std::path::PathBuf;

/// Why a `SledFactory` could not be built.
///
/// Once built, the factory speaks the port's `cairn_checkpoint::Error`; this type converts
/// into it (as `Error::Backend { backend: "sled", .. }`).
///
/// # Examples
///
/// ```
/// use cairn_checkpoint_sled::{Error, SledFactory};
///
/// let err = SledFactory::builder().build().unwrap_err();
/// assert!(matches!(err, Error::NoLocation));
/// // Callers that hold the port see the sled backend's error.
/// let port = cairn_checkpoint::Error::from(err);
/// assert!(matches!(port, cairn_checkpoint::Error::Backend { backend: "sled", .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Neither a path nor an existing `sled::Db` was given to the builder.
    #[error("a sled factory needs either a path or an existing sled::Db")]
    NoLocation,
    /// Another process has the database open: sled lets one process at a time use it, and
    /// its file lock was still held after waiting `waited`.
    #[error(
        "the sled database at {path} is in use by another process (sled lets one process at a \
         time open it; still locked after {waited:.1?}): stop that process (a `cairn run`, \
         `cairn resume` or `cairn scheduler` on this state folder, say) and try again, or use \
         the file adapter, which lets several processes share a state folder"
    )]
    InUse {
        /// The database directory.
        path: PathBuf,
        /// How long the open waited for the lock.
        waited: std::time::Duration,
    },
    /// sled could not open the database (unreadable, corrupted, ...).
    #[error("could not open the sled database at {path}: {source}")]
    Open {
        /// The database directory.
        path: PathBuf,
        /// sled's error.
        #[source]
        source: sled::Error,
    },
    /// The folder given with a host's `sled::Db` does not hold the files of that database
    /// (none at all, or another open database's). cairn fsyncs sled's files there after
    /// every flush, because sled 0.34.7's own flush does not fsync; without the right
    /// folder no write could be acknowledged durably.
    #[error(
        "{path} does not hold the files of an open sled database: {reason}; pass the folder \
         the host opened the database from"
    )]
    NotOpenDatabase {
        /// The folder given.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// The database opened but its trees could not be set up.
    #[error("could not set up the cairn trees of the sled database: {source}")]
    Setup {
        /// sled's error.
        #[source]
        source: sled::Error,
    },
}

impl From<Error> for cairn_checkpoint::Error {
    fn from(err: Error) -> Self {
        cairn_checkpoint::Error::Backend {
            backend: "sled",
            source: Box::new(err),
        }
    }
}

/// Maps a sled error into the port's error.
pub(crate) fn backend(err: sled::Error) -> cairn_checkpoint::Error {
    cairn_checkpoint::Error::Backend {
        backend: "sled",
        source: Box::new(err),
    }
}

/// Maps a sled transaction error whose abort value is already a port error.
pub(crate) fn transaction(
    err: sled::transaction::TransactionError<cairn_checkpoint::Error>,
) -> cairn_checkpoint::Error {
    match err {
        sled::transaction::TransactionError::Abort(err) => err,
        sled::transaction::TransactionError::Storage(err) => backend(err),
    }
}

/// The port's encoding error for a serde_json failure.
pub(crate) fn encoding(what: &'static str, err: serde_json::Error) -> cairn_checkpoint::Error {
    cairn_checkpoint::Error::Encoding {
        what,
        detail: err.to_string(),
    }
}
