//! The one error type of the checkpoint port, shared by every adapter.

use std::path::PathBuf;

use crate::jobs::JobId;
use crate::meta::{RunId, RunStatus};

/// Everything a checkpoint operation can fail with.
///
/// Expected conflicts (a lost status compare-and-swap) are not errors: see `StatusConflict`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O call failed. `op` names the call (`append`, `rename`, ...).
    #[error("{op} failed on {path}: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An fsync/fdatasync failed. Fatal for this checkpointer: it is never retried, because the
    /// kernel may have dropped the dirty pages. Reopen the run to recover.
    #[error(
        "fsync of {path} failed; this checkpointer is now unusable (reopen to recover): {source}"
    )]
    SyncFailed {
        /// The file or directory whose sync failed.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A previous fatal error (such as `SyncFailed`) poisoned this checkpointer.
    #[error(
        "checkpointer for run {run_id} is unusable after an earlier fatal error; reopen the run"
    )]
    Poisoned {
        /// The run.
        run_id: RunId,
    },
    /// Stored data is damaged somewhere other than a torn last record.
    #[error("corruption in run {run_id} at byte {offset} of {file}: {detail}")]
    Corruption {
        /// The run.
        run_id: RunId,
        /// Which file (`journal`, `queue.json`, a sled tree, ...).
        file: String,
        /// Byte offset (or record index for non-file backends) of the first bad record.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// Stored state was written by a newer build of cairn: a format version above this
    /// build's, or a journal event of a type this build does not know. Nothing is wrong
    /// with it, so it is left exactly where it is (not quarantined), and `open` refuses it
    /// every time until a build that reads it opens the run. After a rollback, roll forward
    /// again (or finish or abandon the run with the newer build).
    #[error(
        "run {run_id} holds state written by a newer cairn build ({file}: {detail}); \
         it is left as it is: open it with that build or a later one"
    )]
    NewerFormat {
        /// The run.
        run_id: RunId,
        /// Which file or tree (`journal`, `meta.json`, a sled tree, ...).
        file: String,
        /// What this build does not know.
        detail: String,
    },
    /// A stored job was written by a newer build of cairn: its file or value has a format
    /// version above this build's. As for [`Error::NewerFormat`], nothing is wrong with it,
    /// so every job store leaves it exactly where it is (never quarantined, rewritten or
    /// deleted) and refuses every `get`, `put` and `delete` of it; listings report it as
    /// `LeftOutPlace::NewerFormat`. Use that build, or a later one, to run or change it.
    #[error(
        "job {job_id} was written by a newer cairn build ({at}: {detail}); \
         it is left as it is: use that build or a later one"
    )]
    NewerJobFormat {
        /// The job.
        job_id: JobId,
        /// Where it is (a path, or a key).
        at: String,
        /// What this build does not read (the format version found, and the one it reads).
        detail: String,
    },
    /// Stored state was written by an unsupported format version. It has been quarantined.
    #[error(
        "run {run_id} has format version {found}, expected {expected}; state quarantined to {quarantined_to}"
    )]
    VersionMismatch {
        /// The run.
        run_id: RunId,
        /// The version found.
        found: u32,
        /// The version this build reads.
        expected: u32,
        /// Where the state was moved.
        quarantined_to: String,
    },
    /// Stored state belongs to another run id. It has been quarantined.
    #[error(
        "state stored for run {expected} names run {found}; state quarantined to {quarantined_to}"
    )]
    ForeignRun {
        /// The run the caller asked for.
        expected: RunId,
        /// The run id found inside the state.
        found: String,
        /// Where the state was moved.
        quarantined_to: String,
    },
    /// Stored state cannot be parsed. It has been quarantined.
    #[error("state of run {run_id} cannot be parsed ({detail}); quarantined to {quarantined_to}")]
    Unreadable {
        /// The run.
        run_id: RunId,
        /// What is wrong.
        detail: String,
        /// Where the state was moved.
        quarantined_to: String,
    },
    /// Another writer holds the run (or, with the file adapter, readers kept its lock for
    /// longer than a writer waits for them; `holder` says so).
    #[error("run {run_id} is locked by another process ({holder})")]
    Locked {
        /// The run.
        run_id: RunId,
        /// Who holds it, as far as the store can tell (owner pid and host).
        holder: String,
    },
    /// No run has this id.
    #[error("no run {run_id}")]
    NotFound {
        /// The run.
        run_id: RunId,
    },
    /// `begin` was called with an id that exists.
    #[error("run {run_id} already exists")]
    AlreadyExists {
        /// The run.
        run_id: RunId,
    },
    /// The run is terminal; the operation needs a live run.
    #[error("run {run_id} is already {status}")]
    Terminal {
        /// The run.
        run_id: RunId,
        /// Its terminal status.
        status: RunStatus,
    },
    /// The run is not finished for good, so it cannot be removed: only `completed` and
    /// `cancelled` runs can (see `CheckpointerFactory::remove_terminal`).
    #[error(
        "run {run_id} is {status}; only completed or cancelled runs can be removed, so it was left as it is"
    )]
    NotTerminal {
        /// The run.
        run_id: RunId,
        /// Its stored status (`running`, `paused` or `failed`).
        status: RunStatus,
    },
    /// An epoch-checked status swap (`CheckpointerFactory::compare_and_swap_status_at`) was
    /// asked to move a run to `running`. That move takes the lease, which only a claim
    /// (`CheckpointerFactory::claim`) does; nothing was read or changed.
    #[error(
        "run {run_id} can move to running only by a claim, which takes the lease; \
         an epoch-checked status swap never does (use `claim`)"
    )]
    ClaimRequired {
        /// The run.
        run_id: RunId,
    },
    /// Text that was offered as a run id is not one.
    #[error("`{id}` is not a valid run id: {reason}")]
    InvalidRunId {
        /// The text.
        id: String,
        /// Why.
        reason: &'static str,
    },
    /// A store was set up with a value it cannot work with (an empty root folder path).
    #[error("invalid store setting: {reason}")]
    InvalidSetting {
        /// What is wrong, and what to give instead.
        reason: String,
    },
    /// A value could not be encoded or decoded.
    #[error("could not encode or decode {what}: {detail}")]
    Encoding {
        /// What was being encoded.
        what: &'static str,
        /// The serializer's message.
        detail: String,
    },
    /// The queue rejected recovered events while rebuilding state.
    #[error("recovered state of run {run_id} does not replay: {source}")]
    Replay {
        /// The run.
        run_id: RunId,
        /// The queue's error.
        #[source]
        source: cairn_queue::Error,
    },
    /// A fault-injecting wrapper failed this call on purpose.
    #[error("injected fault in {op}")]
    Injected {
        /// The call that was failed.
        op: &'static str,
    },
    /// A backend-specific failure (for example from sled).
    #[error("{backend} error: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// Whether this error means stored state is damaged or foreign (as opposed to a
    /// transient or environmental failure).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{Error, RunId};
    /// let run_id = RunId::new("r1")?;
    /// let damaged = Error::Corruption {
    ///     run_id: run_id.clone(),
    ///     file: "journal".to_owned(),
    ///     offset: 512,
    ///     detail: "bad checksum".to_owned(),
    /// };
    /// assert!(damaged.is_bad_state());
    /// // A held lock passes once its writer ends: nothing is wrong with the state.
    /// let holder = "pid 7 on host-a".to_owned();
    /// assert!(!Error::Locked { run_id, holder }.is_bad_state());
    /// // State a newer build wrote is not bad either: it is left for that build.
    /// let newer = Error::NewerFormat {
    ///     run_id: RunId::new("r2")?,
    ///     file: "meta.json".to_owned(),
    ///     detail: "format version 2".to_owned(),
    /// };
    /// assert!(!newer.is_bad_state());
    /// // Nor is a job a newer build wrote.
    /// let newer_job = Error::NewerJobFormat {
    ///     job_id: cairn_checkpoint::JobId::new("nightly").expect("a valid job id"),
    ///     at: "jobs/nightly.json".to_owned(),
    ///     detail: "format version 2 (this build reads 1)".to_owned(),
    /// };
    /// assert!(!newer_job.is_bad_state());
    /// # Ok::<(), Error>(())
    /// ```
    pub fn is_bad_state(&self) -> bool {
        matches!(
            self,
            Error::Corruption { .. }
                | Error::VersionMismatch { .. }
                | Error::ForeignRun { .. }
                | Error::Unreadable { .. }
        )
    }
}

/// The `type` of a stored event that this build does not know, when `payload` (a record
/// that passed its checksum but does not decode as an [`cairn_queue::Event`]) is one:
/// a JSON object whose `type` is a string [`cairn_queue::Event::is_known_type`] refuses.
/// Such a record was written by a newer build, and adapters report it as
/// [`Error::NewerFormat`] rather than as corruption. `None` for anything else.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::unknown_event_type;
///
/// let newer = br#"{"type":"paused","id":3,"at":5}"#;
/// assert_eq!(unknown_event_type(newer).as_deref(), Some("paused"));
/// // A known type that does not decode is damage, not a newer build.
/// assert_eq!(unknown_event_type(br#"{"type":"started","id":"x"}"#), None);
/// assert_eq!(unknown_event_type(b"not json"), None);
/// ```
pub fn unknown_event_type(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Tagged {
        #[serde(rename = "type")]
        type_name: String,
    }
    let tagged: Tagged = serde_json::from_slice(payload).ok()?;
    (!cairn_queue::Event::is_known_type(&tagged.type_name)).then_some(tagged.type_name)
}

/// Shorthand for results of checkpoint operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
