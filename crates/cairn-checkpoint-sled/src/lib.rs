//! A checkpoint adapter on sled 0.34.7, for hosts that already run sled.
//!
//! `SledFactory` implements the port of `cairn-checkpoint` (`CheckpointerFactory` and
//! `Checkpointer`) on a sled database. **The default adapter of cairn is the file adapter
//! (`cairn-checkpoint-file`)**; pick this one only when your host already runs sled and
//! wants its runs in the same database.
//!
//! # sled's caveats, plainly
//!
//! - sled is pinned to `=0.34.7`, released in 2021. It is still sled's stable line; the 1.0
//!   releases are alphas, and their on-disk format is not compatible.
//! - sled's own README recommends SQLite when reliability comes first.
//! - Corruption and recovery problems have been reported upstream and are not all resolved.
//! - cairn's crash harness saw one directly: a SIGKILL during sled's own snapshot generation
//!   left a `snap.*.generating` file that made every later open fail with "Read corrupted
//!   data" (about once per thousand kills), and a kill during the very first open, after
//!   sled wrote `conf` but before it created its log, does the same. This adapter answers
//!   that refusal by moving the unfinished snapshot, or the lone `conf`, to
//!   `<db>.quarantine/` and opening again; other corruption is reported as it is. Power
//!   loss is not simulated for sled by cairn's harness (it does its own file I/O).
//! - A sled database can be open in one process at a time: sled locks its files, so a second
//!   process fails to open it (`Error::InUse`, after waiting up to five seconds for the lock). Within the process, factories over the same
//!   database share one registry of live writers. Cross-process status compare-and-swap is
//!   therefore serialized by construction: only the process holding the database can swap.
//!
//! # Layout and durability
//!
//! Runs live in their own trees (`layout` names them): metadata, journal records (key = run
//! id, `/`, big-endian sequence), snapshots, audit records, quarantine, and cut torn records.
//! Every value is framed with a CRC32C. On `open`, a last journal record that fails its
//! checksum is moved to the cut tree and audited (a torn tail); such a record followed by
//! good ones, and a record anywhere that passed its checksum but is no event of this build
//! (stored whole, so never torn), is `Error::Corruption` naming the record's sequence. Bad metadata or snapshots (an older
//! format version, foreign run id, unparseable) are moved to the quarantine tree, audited,
//! and reported as `VersionMismatch`, `ForeignRun` or `Unreadable`. What a newer build wrote
//! (a higher format version, or a checksummed record of an event type this build does not
//! know, which is never cut as torn) is refused with `NewerFormat` and left where it is.
//! `peek` writes nothing: it reports a torn last record in `torn_tail` without cutting it,
//! and refuses bad state with `Corruption`, leaving it for `open`. Nothing is ever deleted,
//! except a `completed` or `cancelled` run an operator removes (`remove_terminal`: its
//! metadata, snapshot, journal and audit records go in one transaction; cut records and
//! quarantined state stay), and a snapshot replaced by a newer one and the journal records
//! it covers. Those records
//! are removed only after the new snapshot was flushed (under `Sync` and `Group`); `open`
//! ignores records a snapshot already covers, so a crash between the two steps is harmless.
//!
//! - `Durability::Sync`: every acknowledged write waited for `sled::Db::flush` (which writes
//!   sled's buffers and fsyncs).
//! - `Durability::Group { max_delay }`: writers that arrive while a flush is pending share
//!   it. The first one leads and, before it flushes, waits for company: up to `max_delay`,
//!   and only until as many writes wait as the largest flush so far covered (callers that
//!   write again once acknowledged are then all in). A wait that runs out with fewer lowers
//!   that expectation, and a lone writer's flushes cover one write, so it never waits: it
//!   flushes at once, as under `Sync`. Writers that arrive during a flush share the next
//!   one. A write is acknowledged only after the flush covering it succeeded, and waits at
//!   most `max_delay` plus that flush (plus any flush already under way). The expectation
//!   is per database, across all its runs.
//! - `Durability::None`: sled's flush without the fsyncs. sled buffers writes in this
//!   process until a flush (its background flusher runs every 500 ms), so without it a
//!   killed process lost acknowledged writes; with it they are in the OS's hands and survive
//!   a process kill, as the port's `None` promises, but a power loss or kernel crash may
//!   lose them. Unsafe for anything that must not be lost.
//!
//! A flush is database-wide. A failed flush poisons the database handle for this process:
//! every later flush through it fails with `SyncFailed` (never retried, as the kernel may
//! have dropped dirty pages), and the writer that saw it fails later calls with `Poisoned`.
//! Flushes run one at a time (Linux reports a writeback error to one fsync only, so an
//! overlapping flush could succeed over lost pages), and a failure is recorded by the
//! thread that flushed, also when the caller that started it was dropped. Reopen the
//! database to recover.
//!
//! sled calls are synchronous; flushes run on tokio's blocking pool, other calls inline.
//!
//! # Examples
//!
//! ```
//! use cairn_checkpoint::{CheckpointerFactory, Durability, RunFilter};
//! use cairn_checkpoint_sled::SledFactory;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! // A host that already runs sled hands over its own database handle and its folder.
//! let folder = dir.path().join("host.sled");
//! let db = sled::open(&folder)?;
//! let factory = SledFactory::builder()
//!     .db(db.clone(), &folder)
//!     .durability(Durability::Group { max_delay: Duration::from_millis(2) })
//!     .build()?;
//! assert!(factory.list(&RunFilter::default()).await?.is_empty());
//! # Ok(()) }
//! ```

mod error;
mod factory;
mod files;
mod jobs;
pub mod layout;
mod shared;
mod store;
#[cfg(test)]
mod unit_fixtures;
mod writer;

pub use error::Error;
pub use factory::{SledFactory, SledFactoryBuilder};
pub use jobs::{
    JOB_AUDIT_TREE, JOB_QUARANTINE_TREE, JOB_VALUE_FORMAT_VERSION, JOB_VERSIONS_TREE, JOBS_TREE,
    SledJobStore,
};
pub use writer::SledCheckpointer;
