//! A journal write that fails after some or all of its batch's bytes landed (a full disk)
//! leaves no readable batch behind. Nothing acknowledged that batch and the writer knows
//! its write failed, so the next open must not replay it: a replayed `Started` of a task
//! whose body never ran would use up an attempt, and on the last attempt fail the task as
//! "running when the run stopped". Every acknowledged event stays, and the journal ends
//! cleanly where the failed batch began, so there is no torn tail to cut or audit.

mod common;

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use cairn_checkpoint::conformance::sample_events;
use cairn_checkpoint::{AuditAction, CheckpointerFactory, Durability, Error, RunId};
use cairn_checkpoint_file::{FileFactory, Filesystem, FsFile, OpenMode, StdFilesystem};
use cairn_queue::Event;
use common::{BATCH_HEADER_LEN, FileHarness, HEADER_LEN, batch_offsets, journal_end, meta};

/// What goes wrong with the journal's writes.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// The disk has room for the journal up to `limit` bytes: a write that ends past it
    /// lands what fits and then fails with ENOSPC, as a short write on a full disk does.
    /// Stays until cleared.
    DiskFull { limit: u64 },
    /// The next write lands its first `keep` bytes (all of them, when it has fewer) and
    /// then fails with ENOSPC, wherever it lies: a write into space the file already has,
    /// on a file system that needs new blocks for it anyway (copy-on-write).
    LandThenFail { keep: usize },
}

/// The faults armed on the journal, shared by every handle the file layer opens.
#[derive(Debug, Default)]
struct Disk {
    state: Mutex<DiskState>,
}

#[derive(Debug, Default)]
struct DiskState {
    fault: Option<Fault>,
    /// Every `set_len` of the journal fails (EIO) while set.
    set_len_fails: bool,
    /// Once a fault fired, every later write and `set_len` of the journal fails (EIO).
    dead_after_fault: bool,
    /// Whether a fault fired.
    fired: bool,
}

fn no_space() -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        "no space left on device (injected)",
    )
}

fn io_error() -> io::Error {
    io::Error::other("input/output error (injected)")
}

impl Disk {
    fn state(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn arm(&self, fault: Fault) {
        self.state().fault = Some(fault);
    }

    /// Frees the space and heals the disk: every later call goes through.
    fn clear(&self) {
        *self.state() = DiskState::default();
    }

    fn fired(&self) -> bool {
        self.state().fired
    }

    /// How many of a `len`-byte write at `offset` land, and the error it then fails with.
    fn write(&self, offset: u64, len: usize) -> (usize, Option<io::Error>) {
        let mut state = self.state();
        if state.fired && state.dead_after_fault {
            return (0, Some(io_error()));
        }
        match state.fault {
            Some(Fault::DiskFull { limit }) if offset + len as u64 > limit => {
                state.fired = true;
                let fits = usize::try_from(limit.saturating_sub(offset)).unwrap_or(usize::MAX);
                (fits.min(len), Some(no_space()))
            }
            Some(Fault::LandThenFail { keep }) => {
                state.fault = None;
                state.fired = true;
                (keep.min(len), Some(no_space()))
            }
            _ => (len, None),
        }
    }

    fn set_len(&self) -> io::Result<()> {
        let state = self.state();
        if state.set_len_fails || (state.fired && state.dead_after_fault) {
            return Err(io_error());
        }
        Ok(())
    }
}

/// The real file system, with `Disk`'s faults on the journal. With `appending`, files keep
/// the default `write_at` (`Unsupported`), so the journal is appended to and never
/// preallocated.
#[derive(Debug)]
struct FaultyFs {
    disk: Arc<Disk>,
    appending: bool,
}

#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn FsFile>,
    /// Set for the journal only.
    disk: Option<Arc<Disk>>,
    appending: bool,
}

impl FsFile for FaultyFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let Some(disk) = &self.disk else {
            return self.inner.write_all(buf);
        };
        // Writes through `write_all` append: they start at the file's end.
        let (landed, error) = disk.write(self.inner.size()?, buf.len());
        if landed > 0 {
            self.inner.write_all(&buf[..landed])?;
        }
        error.map_or(Ok(()), Err)
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        if self.appending {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "appending-only test layer",
            ));
        }
        let Some(disk) = self.disk.as_ref().filter(|_| !buf.is_empty()) else {
            return self.inner.write_at(offset, buf);
        };
        let (landed, error) = disk.write(offset, buf.len());
        if landed > 0 {
            self.inner.write_at(offset, &buf[..landed])?;
        }
        error.map_or(Ok(()), Err)
    }
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        self.inner.read_all()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(offset, buf)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        if let Some(disk) = &self.disk {
            disk.set_len()?;
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
}

impl Filesystem for FaultyFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let journal = path.file_name().is_some_and(|name| name == "journal");
        Ok(Box::new(FaultyFile {
            inner: StdFilesystem.open(path, mode)?,
            disk: journal.then(|| Arc::clone(&self.disk)),
            appending: self.appending,
        }))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        StdFilesystem.read(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        StdFilesystem.create_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFilesystem.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFilesystem.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        StdFilesystem.sync_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        StdFilesystem.list_dir(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        StdFilesystem.exists(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFilesystem.remove_dir_all(path)
    }
}

/// A factory over `h`'s root whose journal has `disk`'s faults.
fn faulty_factory(
    h: &FileHarness,
    disk: &Arc<Disk>,
    durability: Durability,
    appending: bool,
) -> FileFactory {
    FileFactory::builder(h.root())
        .durability(durability)
        .filesystem(Arc::new(FaultyFs {
            disk: Arc::clone(disk),
            appending,
        }))
        .build()
        .expect("build the factory")
}

const DURABLE: [Durability; 2] = [
    Durability::Sync,
    Durability::Group {
        max_delay: Duration::from_micros(100),
    },
];

/// Bytes one append of `events` adds to the journal: a batch header and its records.
fn framed_len(events: &[Event]) -> u64 {
    BATCH_HEADER_LEN as u64
        + events
            .iter()
            .map(|e| (HEADER_LEN + serde_json::to_vec(e).unwrap().len()) as u64)
            .sum::<u64>()
}

/// Where the next batch of run `id` goes: the end of its last whole batch.
fn next_batch_at(h: &FileHarness, id: &RunId) -> u64 {
    journal_end(&std::fs::read(h.journal(id)).unwrap()) as u64
}

/// Appends `failing` (with a fault armed) and checks the append fails with the write's own
/// error (ENOSPC, not whatever undoing the write ran into) and poisons the writer.
async fn append_fails(run: &dyn cairn_checkpoint::Checkpointer, failing: &[Event], what: &str) {
    let err = run
        .append(failing)
        .await
        .expect_err("the armed fault fails the append");
    match &err {
        Error::Io { op, source, .. } => {
            assert_eq!(*op, "append", "{what}: {err:?}");
            assert_eq!(source.kind(), io::ErrorKind::StorageFull, "{what}: {err:?}");
        }
        other => panic!("{what}: expected the write's Io error, got {other:?}"),
    }
    let next = run.append(&sample_events(900, 901)).await;
    assert!(
        matches!(next, Err(Error::Poisoned { .. })),
        "{what}: {next:?}"
    );
}

/// With the disk healthy again: the run reopens with exactly `acked` and without a torn
/// tail to cut, its journal held only the acknowledged batches (one per event of `acked`,
/// each appended alone) and zeros after them, and it takes appends again.
async fn reopens_with_only(
    factory: &FileFactory,
    h: &FileHarness,
    id: &RunId,
    acked: &[Event],
    what: &str,
) {
    // Read before the open, which would cut a torn tail.
    let bytes = std::fs::read(h.journal(id)).unwrap();
    let opened = factory.open(id).await.unwrap().expect("the run exists");
    assert_eq!(
        opened.recovered.events, acked,
        "{what}: the failed batch is not replayed, every acknowledged event is"
    );
    assert_eq!(opened.recovered.torn_tail, None, "{what}: nothing to cut");
    let cuts = factory
        .read_audit(id)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.action == AuditAction::TornTailCut)
        .count();
    assert_eq!(cuts, 0, "{what}: no TornTailCut audited");
    let end = journal_end(&bytes);
    assert_eq!(
        batch_offsets(&bytes).len(),
        acked.len(),
        "{what}: only acknowledged batches were on disk"
    );
    assert!(
        bytes[end..].iter().all(|b| *b == 0),
        "{what}: only zeros followed the last acknowledged batch"
    );
    let more = sample_events(5_000, 5_003);
    opened.checkpointer.append(&more).await.unwrap();
    drop(opened);
    let again = factory.open(id).await.unwrap().unwrap();
    let expected: Vec<Event> = acked.iter().chain(&more).cloned().collect();
    assert_eq!(again.recovered.events, expected, "{what}: appends go on");
}

/// Says how much of a write `Fault::LandThenFail { keep }` lands.
fn landed(keep: usize) -> String {
    if keep == usize::MAX {
        "all of the batch".to_owned()
    } else {
        format!("{keep} bytes of the batch")
    }
}

/// How much of the failed batch lands before the disk is full.
#[derive(Debug, Clone, Copy)]
enum Landing {
    /// The whole batch, and some of the zeros after it.
    Whole,
    /// Its header and part of its records.
    Part,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_grows_the_journal_on_a_full_disk_leaves_no_batch_behind() {
    for durability in DURABLE {
        // The run's first append (as in the report: `started` of a task whose body never
        // ran), and a later one too large for the zeros preallocated so far.
        for first in [true, false] {
            for landing in [Landing::Whole, Landing::Part] {
                let what = format!("{durability:?}, first append {first}, {landing:?}");
                let h = FileHarness::new();
                let disk = Arc::new(Disk::default());
                let factory = faulty_factory(&h, &disk, durability, false);
                let id = RunId::new("grow").unwrap();
                let run = factory.begin(meta("grow")).await.unwrap();
                let (acked, failing) = if first {
                    (Vec::new(), sample_events(0, 1))
                } else {
                    // About 350 KiB of records: more than the 128 KiB the first append
                    // preallocated.
                    (sample_events(0, 3), sample_events(3, 2_003))
                };
                for event in &acked {
                    run.append(std::slice::from_ref(event)).await.unwrap();
                }
                let at = next_batch_at(&h, &id);
                let allocated = std::fs::metadata(h.journal(&id)).unwrap().len();
                let batch = framed_len(&failing);
                assert!(
                    at + batch > allocated,
                    "{what}: the append must grow the file"
                );
                let limit = match landing {
                    Landing::Whole => at + batch + 100,
                    Landing::Part => at + batch / 2,
                };
                disk.arm(Fault::DiskFull { limit });
                append_fails(&*run, &failing, &what).await;
                assert!(disk.fired(), "{what}: the fault was reached");
                drop(run);
                disk.clear();
                reopens_with_only(&factory, &h, &id, &acked, &what).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_into_preallocated_space_that_fails_after_landing_leaves_no_batch_behind() {
    for durability in DURABLE {
        for keep in [usize::MAX, BATCH_HEADER_LEN + 12] {
            let what = format!("{durability:?}, {} landed", landed(keep));
            let h = FileHarness::new();
            let disk = Arc::new(Disk::default());
            let factory = faulty_factory(&h, &disk, durability, false);
            let id = RunId::new("inplace").unwrap();
            let run = factory.begin(meta("inplace")).await.unwrap();
            let acked = sample_events(0, 3);
            for event in &acked {
                run.append(std::slice::from_ref(event)).await.unwrap();
            }
            let failing = sample_events(3, 5);
            let allocated = std::fs::metadata(h.journal(&id)).unwrap().len();
            assert!(
                next_batch_at(&h, &id) + framed_len(&failing) <= allocated,
                "{what}: the batch fits in the zeros already there"
            );
            disk.arm(Fault::LandThenFail { keep });
            append_fails(&*run, &failing, &what).await;
            assert!(disk.fired(), "{what}: the fault was reached");
            drop(run);
            disk.clear();
            reopens_with_only(&factory, &h, &id, &acked, &what).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appended_journal_drops_a_batch_whose_write_failed() {
    // A file layer without positioned writes: the journal is appended to, never
    // preallocated, so the failed batch lies at the file's end.
    for keep in [usize::MAX, BATCH_HEADER_LEN + 12] {
        let what = format!("appending, {} landed", landed(keep));
        let h = FileHarness::new();
        let disk = Arc::new(Disk::default());
        let factory = faulty_factory(&h, &disk, Durability::Sync, true);
        let id = RunId::new("appended").unwrap();
        let run = factory.begin(meta("appended")).await.unwrap();
        let acked = sample_events(0, 3);
        for event in &acked {
            run.append(std::slice::from_ref(event)).await.unwrap();
        }
        disk.arm(Fault::LandThenFail { keep });
        append_fails(&*run, &sample_events(3, 5), &what).await;
        assert!(disk.fired(), "{what}: the fault was reached");
        drop(run);
        disk.clear();
        reopens_with_only(&factory, &h, &id, &acked, &what).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_cannot_be_cut_back_gets_the_failed_batch_zeroed() {
    let h = FileHarness::new();
    let disk = Arc::new(Disk::default());
    let factory = faulty_factory(&h, &disk, Durability::Sync, false);
    let id = RunId::new("zeroed").unwrap();
    let run = factory.begin(meta("zeroed")).await.unwrap();
    let acked = sample_events(0, 3);
    for event in &acked {
        run.append(std::slice::from_ref(event)).await.unwrap();
    }
    disk.state().set_len_fails = true;
    disk.arm(Fault::LandThenFail { keep: usize::MAX });
    append_fails(&*run, &sample_events(3, 5), "set_len fails").await;
    drop(run);
    disk.clear();
    reopens_with_only(&factory, &h, &id, &acked, "set_len fails").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_undo_leaves_the_write_error_as_the_appends_error() {
    // The disk dies with the write: neither cutting nor zeroing the batch works. The
    // append still reports the write's ENOSPC (checked by `append_fails`), not the undo's
    // EIO, and the writer is poisoned as before.
    for appending in [false, true] {
        let h = FileHarness::new();
        let disk = Arc::new(Disk::default());
        let factory = faulty_factory(&h, &disk, Durability::Sync, appending);
        let run = factory.begin(meta("dead")).await.unwrap();
        run.append(&sample_events(0, 3)).await.unwrap();
        disk.state().dead_after_fault = true;
        disk.arm(Fault::LandThenFail { keep: usize::MAX });
        append_fails(
            &*run,
            &sample_events(3, 5),
            &format!("appending {appending}"),
        )
        .await;
        assert!(disk.fired());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growth_on_a_full_disk_fails_before_any_byte_of_the_batch_is_written() {
    // The disk dies with the failed write, so nothing written can be undone: the batch is
    // not on disk only because the journal grows (and fails to) before it is written.
    let h = FileHarness::new();
    let disk = Arc::new(Disk::default());
    let factory = faulty_factory(&h, &disk, Durability::Sync, false);
    let id = RunId::new("grow-first").unwrap();
    let run = factory.begin(meta("grow-first")).await.unwrap();
    let acked = sample_events(0, 3);
    for event in &acked {
        run.append(std::slice::from_ref(event)).await.unwrap();
    }
    let failing = sample_events(3, 2_003);
    let at = next_batch_at(&h, &id);
    let allocated = std::fs::metadata(h.journal(&id)).unwrap().len();
    assert!(
        at + framed_len(&failing) > allocated,
        "the append must grow the file"
    );
    disk.state().dead_after_fault = true;
    disk.arm(Fault::DiskFull {
        limit: at + framed_len(&failing) + 100,
    });
    append_fails(&*run, &failing, "growth first").await;
    drop(run);
    disk.clear();
    reopens_with_only(&factory, &h, &id, &acked, "growth first").await;
}
