//! The embedded default checkpoint adapter: a checksummed journal plus snapshots on local
//! files.
//!
//! # Layout
//!
//! ```text
//! <root>/                       default `.cairn/`, mode 0700
//!   runs/<run_id>/              one folder per run, mode 0700; files are mode 0600
//!     meta.json                 RunMeta, replaced atomically (temp, fsync, rename, fsync dir)
//!     queue.json                {format_version, run_id, covers_seq, snapshot, crc32c}: JSON,
//!                               pretty up to 1 MiB, one line above (indentation doubles parse
//!                               time). crc32c covers "<format_version> <run_id> <covers_seq> "
//!                               and the snapshot's exact bytes in the file; format 1 files,
//!                               from builds before it, have none and are read unchecked
//!     journal                   format 2: a file header (magic, version, crc), then one framed
//!                               batch per write (magic | len | offset | body crc | header crc)
//!                               holding framed records (len u32 | seq u64 | crc32c u32 | JSON
//!                               event), then preallocated zeros
//!     audit.jsonl               one `<crc32c hex> <AuditRecord JSON>` line per record, one write
//!                               and fdatasync per line; appends hold a lock on it and cut (and
//!                               audit) a torn last line first: unterminated or failing its
//!                               checksum. Readers skip a torn last line and refuse any other
//!                               bad line with `Error::Corruption`. Lines from builds before
//!                               checksums (bare JSON) are still read.
//!     lock                      the one-writer lock (flock via File::try_lock); holds pid/host
//!     meta.lock                 short-held lock serializing meta.json read-modify-write
//!   runs/.begin-*               a begin's staging folder (renamed into place when complete);
//!                               one a failed or dead begin left is deleted by the next sweep
//!   runs/.remove-*              a removed run's folder, renamed out of the way and being
//!                               deleted (see "Removal")
//!   quarantine/<run_id>-<ms>/   a quarantined run folder, moved whole, never deleted
//!   quarantine.jsonl            root log of every quarantine (also audited in the moved folder),
//!                               checksummed lines like audit.jsonl
//! ```
//!
//! # Journal and snapshots
//!
//! Each record carries its length, a sequence number and a CRC32C over payload, length and
//! sequence. Records are written in batches: everything one group-commit leader writes with
//! one `write` and makes durable with one `fdatasync` is one batch, framed by a header with
//! the body's length and CRC32C, the offset it was written at, and a CRC32C of the header.
//! The writer starts a batch only after the previous one's fdatasync returned, so at most one
//! batch (the last) is ever unacknowledged on disk, and a power cut can damage only that
//! one, in any of its pages: in-place writeback is unordered, so a later page may land
//! without the one holding the batch header.
//!
//! On `open`, recovery decides by batches. A batch whose header is valid but whose body fails
//! is the torn last write only if every byte after it is zero; a position with no valid
//! header is the torn last write only if no valid batch (both CRCs, and the offset its
//! header names) starts anywhere after it. A torn last write is cut (truncate, fdatasync),
//! audited as `TornTailCut` and reported in `Recovered::torn_tail`; anything else bad is
//! `Error::Corruption { offset, .. }` and nothing is cut. A journal without the file header
//! (format 1, from builds before batch framing) is read with format 1's record rules and
//! rewritten in format 2 atomically before anything is appended; a file header naming
//! an older version is refused with `Error::VersionMismatch` and the run quarantined. State
//! a newer build wrote (a higher format version in the header, `meta.json` or `queue.json`,
//! or a checksummed record of an event type this build does not know) is refused with
//! `Error::NewerFormat` and left exactly where it is.
//!
//! Under `Sync` and `Group` the journal keeps zeroed space ahead of its last batch, so an
//! append overwrites zeros in place and its fdatasync flushes data only; an append that grows
//! the file would also have to commit the new file size (on ext4 a second flush, through the
//! file system's own journal). When a batch does not fit, the file first grows by the next
//! preallocation step (64 KiB, doubling up to 4 MiB) in a write of zeros of its own, so on a
//! full disk that write fails before any byte of the batch is written; the batch's one
//! fdatasync then makes both durable.
//! A batch header starts with its magic, never a zero byte, so recovery reads zeros from a
//! batch boundary to the end of the file as the end of the journal. Journals without zeros
//! (under `None`) read the same way. A [`Filesystem`] whose files lack [`FsFile::write_at`]
//! gets an appended journal without preallocation (zeros left by another writer are cut
//! first).
//!
//! `queue.json` names the last sequence number it covers. Installing a snapshot writes a
//! temp file, fdatasyncs it, renames it, fsyncs the folder and only then truncates the
//! journal (to its file header). A crash between any two steps opens to the same state: before the rename the old
//! snapshot and the whole journal are intact; after it, journal records the new snapshot
//! already covers are skipped. A journal that ends before the snapshot's last record (under
//! `Durability::None`, a power cut can lose the journal's unsynced tail while the synced
//! snapshot survives) holds only records the snapshot covers, and `open` cuts it to its file
//! header, so the next record does not follow a gap.
//!
//! # Compaction
//!
//! The adapter compacts on its own once the journal after the latest snapshot holds
//! `compact_after_records` records (default 10,000) or `compact_after_bytes` bytes (default
//! 8 MiB), AND at least a quarter of the size of `queue.json` ([`COMPACT_SNAPSHOT_DIVISOR`]),
//! so rewriting a large snapshot stays amortized over the records that caused it.
//!
//! Compaction runs on a thread of its own, beside the appends. It brings a
//! `cairn_queue::Queue` (whose bounds, the builder's `queue_config`, replay never checks) up
//! to the last record written when it started and installs that queue's snapshot as above,
//! while appends go on into the same journal: a snapshot covering a prefix of the journal is a state every open accepts.
//! Once the snapshot is installed, the next append's group-commit leader replaces the journal
//! with one holding only the batches written since (temp file, fdatasync, rename, fsync dir;
//! the old journal stays whole until the rename), from the batches it kept in memory
//! meanwhile. If the journal doubles while compaction runs, or reaches twice
//! `max(threshold, queue.json / 4)` sooner, the leader waits for it, so the journal never
//! holds more than twice that length plus one append (doubling alone would let each waited-for
//! compaction leave the next a longer journal), and reopen reads one snapshot plus that much
//! journal. The queue is kept in memory so the next
//! compaction only applies the records written since, with its tasks' inputs held as JSON
//! text (nothing but the snapshot reads them, and as values they are most of a task's
//! memory). The writer keeps the events it wrote since the latest snapshot, their inputs as
//! text too, and compaction applies those, so it parses nothing back from disk (only a run
//! opened with records after its snapshot, written by an earlier writer, reads and parses
//! the journal, at its first compaction). A large `queue.json` is encoded straight into its
//! temp file rather than into memory first. Reopen parses
//! `queue.json` on a second thread while it decodes the journal. Dropping the writer waits
//! for a compaction under way, so it never writes after the run's lock is released, and then
//! rewrites the journal if a snapshot was installed after the last append, so a reopen after
//! a clean end reads only the records after the snapshot (after a crash it may read up to the
//! bound above).
//!
//! The adapter does NOT apply events as they are appended: an append stays one write plus
//! one fdatasync. It therefore does not reject events that do not replay; if the journal
//! does not replay at compaction time, compaction is switched off for that writer and the
//! journal keeps growing, which is safe (nothing is lost) but slower to reopen. A failed
//! sync of the snapshot or of the rewritten journal poisons the writer, as any failed sync
//! does. A compaction under way when the writer is poisoned (by a later append's failed
//! sync) installs nothing: it checks before it writes its temp file and again before the
//! rename, so a poisoned writer's folder changes no more (a temp file written before the
//! failure stays, as after a crash). Snapshots the executor installs itself (after waiting for a compaction under way)
//! reset the count too.
//!
//! # Durability
//!
//! - `Durability::Sync`: an append returns after its records were written with one `write`
//!   (in place, over preallocated zeros) and made durable with one `fdatasync`. Appends that arrive while a sync is running share
//!   the next one. New files and renames are followed by an fsync of their folder.
//! - `Durability::Group { max_delay }`: the same leader/follower group commit, but before
//!   each batch the leader waits for company: up to `max_delay`, and only until as many
//!   appends are buffered as the largest batch so far held (callers that append again once
//!   acknowledged are then all in). A wait that runs out with fewer lowers that expectation,
//!   and a lone writer's batches hold one append, so it never waits. An append waits at most
//!   `max_delay` plus the time of one write and fdatasync (plus any batch already in
//!   flight).
//! - `Durability::None`: records are written but never fsynced. They survive a process
//!   crash but NOT power loss or a kernel crash. Unsafe for anything that must not be lost.
//!
//! A failed write or fdatasync is fatal for the writer: that call (and every append sharing
//! its batch) fails with `SyncFailed` (or `Io` for a failed write), every later call with
//! `Poisoned`. Nothing is retried; reopen the run to recover from what is on disk. A batch
//! whose write failed is first cut off the journal again (truncated to where it began, or
//! zeroed where the file cannot be truncated, then fdatasynced), so the next open does not
//! read back records no caller was told are durable; a failed fdatasync is not undone.
//!
//! # Locks and concurrency
//!
//! One writer per run, across processes: `open` and `begin` take `lock` with
//! `File::try_lock` and write the holder's pid and host into it, so `Error::Locked` names
//! them; `open` takes it while holding `meta.lock` (which `begin` creates). A lock taken on
//! a `lock` file that is no longer at its path (its folder was removed or moved after the
//! file was opened, and a new run may have been begun there) is let go and taken again on
//! what is there now ([`FsFile::is_at`]). `is_held` tries
//! the same lock shared, under `meta.lock` when it can take it, and releases it at once.
//! A claim (and a status swap to `running`) probes it the same way under the `meta.lock` it
//! decides under, and is refused while a writer holds it; since `open` takes the writer lock
//! under `meta.lock` too, no writer can come between the probe and the claim, and no probe
//! makes an `open` fail with `Locked`. `peek` opens `lock`
//! read-only and takes it shared (`File::try_lock_shared`, under `meta.lock`) while it reads,
//! writing nothing, so a read-only state folder can be looked at and no writer changes the
//! files under it. An `open` (or any other taker of the writer lock) that finds only such
//! readers holding `lock` waits for them, up to 10 s, instead of failing with `Locked`; as it
//! holds `meta.lock` meanwhile, no new peek comes in. Status compare-and-swap
//! and `claim` hold `meta.lock` (blocking `File::lock`) around reading and atomically
//! rewriting `meta.json` (temp file, fsync, rename, directory fsync), so they are atomic
//! across threads and processes. A swap or claim that loses rewrites nothing.
//!
//! # Quarantine
//!
//! Unparseable `meta.json`/`queue.json`, a `queue.json` failing its checksum (the detail
//! says `queue.json checksum mismatch`), a wrong format version or a stored run id that does
//! not match the folder make `open` move the whole folder to
//! `<root>/quarantine/<run_id>-<millis>/`, append a `Quarantined` audit record to the moved
//! folder's `audit.jsonl` and to `<root>/quarantine.jsonl`, and fail with `Unreadable`,
//! `VersionMismatch` or `ForeignRun`. `read_audit` and `append_audit` of a quarantined id use
//! its newest quarantine folder. Such an id can never be begun again.
//!
//! A run `list` finds bad but cannot move (a read-only folder, a refused rename) is left in
//! place and out of the listing, reported by `left_in_place`, and audited as `LeftInPlace`
//! in its folder and in `quarantine.jsonl` where those can be written (once per factory).
//! After a `Quarantined` record written ahead of a rename that then failed, the
//! `LeftInPlace` record says the move did not happen.
//!
//! # Removal
//!
//! `remove_terminal` (retention: `cairn runs prune`) removes only a `completed` or
//! `cancelled` run, under its writer lock. It checks `meta.json` (damaged or foreign
//! metadata is refused and left for `open` to quarantine), renames the run's folder to a
//! hidden `runs/.remove-<run_id>-<pid>-<n>` (one atomic rename: the run is whole before it
//! and gone after it), fsyncs `runs/`, and only then deletes the hidden folder. A crash
//! after the rename leaves a hidden folder that `list` skips (its name is no run id); the
//! next removal, or the next `FileFactoryBuilder::build`, deletes it. The removed id can be
//! begun again. Quarantined state is never removed.
//!
//! # I/O layer
//!
//! All file I/O goes through the object-safe [`Filesystem`] trait ([`StdFilesystem`] by
//! default, injectable with [`FileFactoryBuilder::filesystem`]) so a crash harness can drop
//! unsynced writes, tear the last write or fail a chosen fdatasync.
//!
//! # Errors
//!
//! Every fallible call returns the port's `cairn_checkpoint::Error` (re-exported here as
//! [`Error`]): the adapter has no failure the port's enum does not already name, and callers
//! hold the port, not this crate.
//!
//! # Examples
//!
//! ```
//! use cairn_checkpoint::{CheckpointerFactory, Durability, RunId, RunMeta};
//! use cairn_checkpoint_file::FileFactory;
//! use cairn_queue::{Event, Timestamp};
//!
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let root = tempfile::tempdir().unwrap();
//! let factory = FileFactory::builder(root.path())
//!     .durability(Durability::Group { max_delay: std::time::Duration::from_micros(200) })
//!     .build()?;
//! let id = RunId::new("nightly-build")?;
//! let run = factory.begin(RunMeta::new(id.clone(), "build", "site", "", Timestamp(0))).await?;
//! let event = Event::PhaseStarted { index: 0, name: "fetch".into() };
//! run.append(&[event.clone()]).await?;
//! drop(run); // a crash would do the same: the lock goes, the run stays `running`
//!
//! let opened = FileFactory::builder(root.path()).build()?.open(&id).await?.expect("exists");
//! assert_eq!(opened.recovered.events, vec![event]);
//! # Ok::<(), cairn_checkpoint::Error>(())
//! # }).unwrap();
//! ```

mod factory;
mod fs;
mod jobs;
mod journal;
mod line_log;
mod shadow;
mod store;
mod writer;

pub use cairn_checkpoint::Error;
pub use factory::{
    COMPACT_SNAPSHOT_DIVISOR, DEFAULT_COMPACT_AFTER_BYTES, DEFAULT_COMPACT_AFTER_RECORDS,
    DEFAULT_ROOT, FileFactory, FileFactoryBuilder,
};
pub use fs::{Filesystem, FsFile, OpenMode, StdFile, StdFilesystem};
pub use jobs::{FileJobStore, JOB_FILE_FORMAT_VERSION};
pub use store::QUEUE_FILE_FORMAT_VERSION;
pub use writer::FileCheckpointer;
