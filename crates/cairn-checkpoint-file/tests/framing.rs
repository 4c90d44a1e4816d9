//! Journal format 2: each write batch is framed, and recovery tells a torn last batch from
//! corruption by the batch frames. Every rule is shown both ways (cut, and Corruption), the
//! writer is shown to keep at most one batch unsynced, and format-1 journals (records
//! without batch frames) still open.

mod common;

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_checkpoint::conformance::{sample_event, sample_events};
use cairn_checkpoint::{AuditAction, AuditRecord, CheckpointerFactory, Durability, Error, RunId};
use cairn_checkpoint_file::{FileFactory, Filesystem, FsFile, OpenMode, StdFilesystem};
use cairn_queue::Event;
use common::{
    BATCH_HEADER_LEN, FILE_HEADER_LEN, FILE_MAGIC, FileHarness, batch_body, batch_header,
    batch_offsets, file_header, format_1_journal, journal_end, meta, record_offsets,
};

/// Writes `bytes` at `offset` of `path`, in place.
fn overwrite(path: &Path, offset: usize, bytes: &[u8]) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset as u64).unwrap();
}

/// A run with three one-event batches and then one batch of four events (one append), on
/// the preallocated path. Returns the events in order.
async fn four_batches(h: &FileHarness, id: &str) -> Vec<Event> {
    let factory = h.file_factory();
    let run = factory.begin(meta(id)).await.unwrap();
    let events = sample_events(0, 7);
    for event in &events[..3] {
        run.append(std::slice::from_ref(event)).await.unwrap();
    }
    run.append(&events[3..]).await.unwrap();
    events
}

/// The `JournalRewritten` audit records of a run.
async fn rewrites(factory: &dyn CheckpointerFactory, id: &RunId) -> Vec<AuditRecord> {
    factory
        .read_audit(id)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == AuditAction::JournalRewritten)
        .collect()
}

async fn cuts(factory: &dyn CheckpointerFactory, id: &RunId) -> usize {
    factory
        .read_audit(id)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.action == AuditAction::TornTailCut)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journal_is_a_file_header_then_one_batch_per_append() {
    let h = FileHarness::new();
    let id = RunId::new("shape").unwrap();
    four_batches(&h, "shape").await;
    let bytes = std::fs::read(h.journal(&id)).unwrap();
    assert_eq!(bytes[..FILE_HEADER_LEN], file_header(2)[..]);
    let batches = batch_offsets(&bytes);
    assert_eq!(batches.len(), 4);
    assert_eq!(batches[0], FILE_HEADER_LEN);
    for &at in &batches {
        // The header written by the adapter equals one built from the documented layout.
        let body = batch_body(&bytes, at);
        assert_eq!(
            bytes[at..body.start],
            batch_header(at, &bytes[body.clone()])[..],
            "batch at {at}"
        );
    }
    assert_eq!(record_offsets(&bytes).len(), 7);
    assert!(
        bytes[journal_end(&bytes)..].iter().all(|b| *b == 0),
        "zeros after the last batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_batch_with_a_bad_body_and_only_zeros_after_it_is_cut() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("badbody").unwrap();
    let events = four_batches(&h, "badbody").await;
    let path = h.journal(&id);
    let bytes = std::fs::read(&path).unwrap();
    let last = *batch_offsets(&bytes).last().unwrap();
    // A byte inside the batch's second record: the record checks out no more, nor the batch.
    let victim = record_offsets(&bytes)[4] + 20;
    overwrite(&path, victim, &[bytes[victim] ^ 0x01]);

    let opened = factory.open(&id).await.unwrap().unwrap();
    let torn = opened.recovered.torn_tail.expect("the torn batch is cut");
    assert_eq!(torn.offset, last as u64);
    assert_eq!(torn.bytes, (bytes.len() - last) as u64);
    assert_eq!(opened.recovered.events, events[..3]);
    // The writer goes on where the cut was; the next open sees everything.
    let next = sample_event(50);
    opened
        .checkpointer
        .append(std::slice::from_ref(&next))
        .await
        .unwrap();
    drop(opened);
    let again = factory.open(&id).await.unwrap().unwrap();
    assert_eq!(again.recovered.torn_tail, None);
    assert_eq!(
        again.recovered.events,
        [events[..3].to_vec(), vec![next]].concat()
    );
    assert_eq!(cuts(&factory, &id).await, 1, "the cut is audited once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_a_bad_body_and_non_zero_bytes_after_it_is_corruption() {
    // A middle batch (valid batches follow), and the last batch with one stray byte far out
    // in the preallocated zeros: in both, something was written after the damaged batch,
    // so it was not the one in flight.
    for middle in [true, false] {
        let h = FileHarness::new();
        let factory = h.file_factory();
        let id = RunId::new("bodycorrupt").unwrap();
        four_batches(&h, "bodycorrupt").await;
        let path = h.journal(&id);
        let bytes = std::fs::read(&path).unwrap();
        let batches = batch_offsets(&bytes);
        let victim = if middle { batches[1] } else { batches[3] };
        let byte = batch_body(&bytes, victim).start + 20;
        overwrite(&path, byte, &[bytes[byte] ^ 0x01]);
        if !middle {
            overwrite(&path, bytes.len() - 100, b"x");
        }
        let before = std::fs::read(&path).unwrap();

        let err = factory.open(&id).await.expect_err("corruption");
        assert!(
            matches!(&err, Error::Corruption { offset, file, .. }
                if *offset == victim as u64 && file == "journal"),
            "middle {middle}: {err:?}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before, "nothing is cut");
        assert_eq!(cuts(&factory, &id).await, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_batch_header_with_a_valid_batch_after_it_is_corruption() {
    // One flipped bit in the header of the second batch: its header CRC fails, and the third
    // and fourth batches are valid.
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("headercorrupt").unwrap();
    four_batches(&h, "headercorrupt").await;
    let path = h.journal(&id);
    let bytes = std::fs::read(&path).unwrap();
    let victim = batch_offsets(&bytes)[1];
    overwrite(&path, victim + 6, &[bytes[victim + 6] ^ 0x10]);

    let err = factory.open(&id).await.expect_err("corruption");
    assert!(
        matches!(err, Error::Corruption { offset, .. } if offset == victim as u64),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_records_of_the_last_batch_without_its_header_are_cut() {
    // What a power cut can leave of an in-place write: a later page of the last batch
    // (holding whole, checksummed records) without the page holding its header.
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("laterpage").unwrap();
    let events = four_batches(&h, "laterpage").await;
    let path = h.journal(&id);
    let bytes = std::fs::read(&path).unwrap();
    let last = *batch_offsets(&bytes).last().unwrap();
    let second_record = record_offsets(&bytes)[4];
    overwrite(&path, last, &vec![0; second_record - last]);

    let opened = factory.open(&id).await.unwrap().unwrap();
    let torn = opened.recovered.torn_tail.expect("cut");
    assert_eq!(torn.offset, last as u64);
    assert_eq!(opened.recovered.events, events[..3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_batch_at_the_offset_its_header_names_proves_data_after_damage() {
    // The last batch's header is lost. Beyond the journal's end lies a copy of the first
    // batch: its checksums hold, but its header names another offset, so it is not a batch
    // of this position and the damage is still the torn tail. The same bytes framed for
    // where they lie are a valid batch, and then the damage is corruption.
    for reframed in [false, true] {
        let h = FileHarness::new();
        let factory = h.file_factory();
        let id = RunId::new("offsets").unwrap();
        let events = four_batches(&h, "offsets").await;
        let path = h.journal(&id);
        let bytes = std::fs::read(&path).unwrap();
        let batches = batch_offsets(&bytes);
        let last = batches[3];
        overwrite(&path, last, &[0; BATCH_HEADER_LEN]);
        let first = batches[0]..batch_body(&bytes, batches[0]).end;
        let at = journal_end(&bytes) + 512;
        let copy = if reframed {
            let body = &bytes[batch_body(&bytes, batches[0])];
            [batch_header(at, body), body.to_vec()].concat()
        } else {
            bytes[first].to_vec()
        };
        overwrite(&path, at, &copy);

        let result = factory.open(&id).await;
        if reframed {
            let err = result.expect_err("a valid batch follows the damage");
            assert!(
                matches!(err, Error::Corruption { offset, .. } if offset == last as u64),
                "{err:?}"
            );
        } else {
            let opened = result.unwrap().unwrap();
            assert_eq!(opened.recovered.torn_tail.unwrap().offset, last as u64);
            assert_eq!(opened.recovered.events, events[..3]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_file_header_before_batches_is_corruption() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("fileheader").unwrap();
    four_batches(&h, "fileheader").await;
    let path = h.journal(&id);
    let bytes = std::fs::read(&path).unwrap();
    overwrite(&path, 9, &[bytes[9] ^ 0x04]);
    let err = factory.open(&id).await.expect_err("corruption");
    assert!(
        matches!(err, Error::Corruption { offset: 0, .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_of_an_unsupported_older_format_version_is_quarantined_whole() {
    // A newer version (3) is left in place instead: see `tests/file.rs`.
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("unsupported").unwrap();
    four_batches(&h, "unsupported").await;
    let path = h.journal(&id);
    overwrite(&path, 0, &file_header(0));
    let before = std::fs::read(&path).unwrap();

    let err = factory.open(&id).await.expect_err("an unsupported format");
    let Error::VersionMismatch {
        found,
        expected,
        quarantined_to,
        ..
    } = err
    else {
        panic!("{err:?}");
    };
    assert_eq!((found, expected), (0, 2));
    assert!(!h.run_dir(&id).exists(), "the run was moved aside");
    let moved = PathBuf::from(quarantined_to).join("journal");
    assert_eq!(
        std::fs::read(moved).unwrap(),
        before,
        "kept byte for byte, never deleted"
    );
}

/// Begins run `id` and replaces its journal with `bytes`.
async fn run_with_journal(h: &FileHarness, id: &str, bytes: &[u8]) -> RunId {
    drop(h.file_factory().begin(meta(id)).await.unwrap());
    let run_id = RunId::new(id).unwrap();
    std::fs::write(h.journal(&run_id), bytes).unwrap();
    run_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_journal_opens_and_is_rewritten_in_format_2() {
    // Format 1 with and without the zeros of its preallocation.
    for zeros in [0usize, 70_000] {
        let h = FileHarness::new();
        let factory = h.file_factory();
        let first = sample_events(0, 5);
        let mut old = format_1_journal(&first);
        old.resize(old.len() + zeros, 0);
        let id = run_with_journal(&h, "legacy", &old).await;

        let opened = factory.open(&id).await.unwrap().unwrap();
        assert_eq!(opened.recovered.events, first, "zeros {zeros}");
        assert_eq!(opened.recovered.torn_tail, None);
        let bytes = std::fs::read(h.journal(&id)).unwrap();
        assert!(bytes.starts_with(FILE_MAGIC), "rewritten in format 2");
        assert_eq!(record_offsets(&bytes).len(), 5);
        let second = sample_events(5, 8);
        opened.checkpointer.append(&second).await.unwrap();
        drop(opened);

        let opened = factory.open(&id).await.unwrap().unwrap();
        assert_eq!(opened.recovered.events, [first, second].concat());
        assert_eq!(cuts(&factory, &id).await, 0, "an upgrade cuts nothing");
        let rewrites = rewrites(&factory, &id).await;
        assert_eq!(rewrites.len(), 1, "audited once, and not rewritten again");
        let detail = &rewrites[0].detail;
        assert_eq!(detail["from_format"], 1);
        assert_eq!(detail["to_format"], 2);
        assert_eq!(detail["records"], 5);
        assert_eq!(detail["bytes_before"], old.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_journal_with_a_torn_last_record_is_cut_then_rewritten() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    let events = sample_events(0, 5);
    let old = format_1_journal(&events);
    let last = format_1_journal(&events[..4]).len();
    let id = run_with_journal(&h, "legacytorn", &old[..last + 10]).await;

    let opened = factory.open(&id).await.unwrap().unwrap();
    let torn = opened.recovered.torn_tail.expect("cut");
    assert_eq!((torn.offset, torn.bytes), (last as u64, 10));
    assert_eq!(opened.recovered.events, events[..4]);
    assert!(
        std::fs::read(h.journal(&id))
            .unwrap()
            .starts_with(FILE_MAGIC)
    );
    drop(opened);
    assert_eq!(cuts(&factory, &id).await, 1);
    let again = factory.open(&id).await.unwrap().unwrap();
    assert_eq!(again.recovered.events, events[..4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_journal_with_a_bad_middle_record_is_corruption_and_stays_as_it_is() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    let events = sample_events(0, 5);
    let mut old = format_1_journal(&events);
    let victim = format_1_journal(&events[..1]).len();
    old[victim + 20] ^= 0x01;
    let id = run_with_journal(&h, "legacybad", &old).await;

    let err = factory.open(&id).await.expect_err("corruption");
    assert!(
        matches!(err, Error::Corruption { offset, .. } if offset == victim as u64),
        "{err:?}"
    );
    assert_eq!(std::fs::read(h.journal(&id)).unwrap(), old, "not rewritten");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_journal_gets_its_file_header_on_open() {
    // An empty journal is what `begin` of a format-1 build left.
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = run_with_journal(&h, "empty", b"").await;
    let opened = factory.open(&id).await.unwrap().unwrap();
    assert!(opened.recovered.events.is_empty());
    assert_eq!(std::fs::read(h.journal(&id)).unwrap(), file_header(2));
    opened
        .checkpointer
        .append(&sample_events(0, 2))
        .await
        .unwrap();
    drop(opened);
    let opened = factory.open(&id).await.unwrap().unwrap();
    assert_eq!(opened.recovered.events, sample_events(0, 2));
}

/// A file layer over the real one that notes, per journal path, whether a write is not yet
/// followed by an fdatasync, and counts every write made while one already was. Writes of
/// nothing but zeros are not batches (a batch starts with its magic) and are left out: the
/// writer grows the journal by its preallocated zeros in a write of their own just before
/// the batch that needs them, and zeros after the last batch read as the journal's end.
#[derive(Debug, Default)]
struct InFlight {
    unsynced: Mutex<HashMap<PathBuf, bool>>,
    writes: Mutex<u64>,
    overlaps: Mutex<Vec<String>>,
}

#[derive(Debug)]
struct InFlightFs(Arc<InFlight>);

#[derive(Debug)]
struct InFlightFile {
    inner: Box<dyn FsFile>,
    path: PathBuf,
    watch: Arc<InFlight>,
}

impl InFlightFile {
    fn before_write(&self, buf: &[u8]) {
        if self.path.file_name().is_some_and(|n| n == "journal") && buf.iter().any(|b| *b != 0) {
            *self.watch.writes.lock().unwrap() += 1;
            let mut unsynced = self.watch.unsynced.lock().unwrap();
            if unsynced.insert(self.path.clone(), true) == Some(true) {
                self.watch
                    .overlaps
                    .lock()
                    .unwrap()
                    .push(self.path.display().to_string());
            }
        }
    }
}

impl FsFile for InFlightFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.before_write(buf);
        self.inner.write_all(buf)
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.before_write(buf);
        self.inner.write_at(offset, buf)
    }
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        self.inner.read_all()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(offset, buf)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()?;
        self.watch
            .unsynced
            .lock()
            .unwrap()
            .insert(self.path.clone(), false);
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
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

impl Filesystem for InFlightFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        Ok(Box::new(InFlightFile {
            inner: StdFilesystem.open(path, mode)?,
            path: path.to_path_buf(),
            watch: Arc::clone(&self.0),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_never_has_two_unsynced_batches_on_disk() {
    // Eight concurrent appenders, with and without compaction (which writes the snapshot
    // and truncates the journal as leader), under both durable modes.
    for durability in [
        Durability::Sync,
        Durability::Group {
            max_delay: Duration::from_micros(200),
        },
    ] {
        for compact in [false, true] {
            let h = FileHarness::new();
            let watch = Arc::new(InFlight::default());
            let factory = FileFactory::builder(h.root())
                .durability(durability)
                .compact_after_records(if compact { 40 } else { 1_000_000 })
                .filesystem(Arc::new(InFlightFs(Arc::clone(&watch))))
                .build()
                .unwrap();
            let id = RunId::new("inflight").unwrap();
            let run: Arc<dyn cairn_checkpoint::Checkpointer> =
                Arc::from(factory.begin(meta("inflight")).await.unwrap());
            let writes_at_begin = *watch.writes.lock().unwrap();
            common::append_concurrently(&run, 8, 25).await;
            drop(run);
            let overlaps = watch.overlaps.lock().unwrap().clone();
            assert!(
                overlaps.is_empty(),
                "{durability:?}, compact {compact}: a write while another was unsynced: {overlaps:?}"
            );
            if !compact {
                // Each journal write (zeros aside) is exactly one batch.
                let bytes = std::fs::read(h.journal(&id)).unwrap();
                let writes = *watch.writes.lock().unwrap() - writes_at_begin;
                assert_eq!(batch_offsets(&bytes).len() as u64, writes, "{durability:?}");
                assert_eq!(record_offsets(&bytes).len(), 200);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_flight_check_catches_two_unsynced_writes() {
    // Without syncs every batch stays unsynced, so the layer above must report overlaps:
    // the check that the durable modes pass can fail.
    let h = FileHarness::new();
    let watch = Arc::new(InFlight::default());
    let factory = FileFactory::builder(h.root())
        .durability(Durability::None)
        .filesystem(Arc::new(InFlightFs(Arc::clone(&watch))))
        .build()
        .unwrap();
    let run = factory.begin(meta("nosync")).await.unwrap();
    for n in 0..3 {
        run.append(&[sample_event(n)]).await.unwrap();
    }
    assert!(!watch.overlaps.lock().unwrap().is_empty());
}

/// A checksummed record numbered 0 or `u64::MAX` (a crafted or foreign journal: the writer
/// numbers from 1, and a run never gets near the top) is corruption, reported where it
/// lies: not a record skipped as covered by the snapshot, nor a panic on the count after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_numbered_0_or_u64_max_is_corruption() {
    for (name, seq) in [("seq-zero", 0), ("seq-max", u64::MAX)] {
        let h = FileHarness::new();
        let id = RunId::new(name).unwrap();
        let factory = h.file_factory();
        drop(factory.begin(meta(name)).await.unwrap());
        let journal = common::format_2_journal(&[vec![(seq, sample_event(0))]]);
        std::fs::write(h.journal(&id), &journal).unwrap();
        let record = FILE_HEADER_LEN + BATCH_HEADER_LEN;
        for read in [
            factory.peek(&id).await.map(|_| ()),
            factory.open(&id).await.map(|_| ()),
        ] {
            assert!(
                matches!(read, Err(Error::Corruption { offset, .. }) if offset == record as u64),
                "{name}: {read:?}"
            );
        }
    }
}
