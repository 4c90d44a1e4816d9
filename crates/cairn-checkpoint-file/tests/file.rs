//! File-adapter specifics: permissions, path safety, crashes at each snapshot-install step,
//! compaction, torn tails of many lengths, group commit, poisoning, and what a claim writes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_checkpoint::conformance::{sample_event, sample_events};
use cairn_checkpoint::{
    AuditAction, Checkpointer, CheckpointerFactory, Durability, Error, RunId, RunStatus,
};
use cairn_checkpoint_file::{COMPACT_SNAPSHOT_DIVISOR, FileFactory};
use cairn_queue::Timestamp;
use common::{
    BATCH_HEADER_LEN, FILE_HEADER_LEN, FileHarness, IoPlan, Workload, batch_header, batch_offsets,
    file_header, journal_end, meta, record_offsets, record_with_payload, replayed,
};

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if path.is_dir() {
            walk(&path, out);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_0600_and_folders_0700() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    let run = factory.begin(meta("perms")).await.unwrap();
    run.append(&sample_events(0, 3)).await.unwrap();
    run.install_snapshot(&cairn_checkpoint::conformance::sample_snapshot(1))
        .await
        .unwrap();
    run.audit(&cairn_checkpoint::AuditRecord::new(
        Timestamp(1),
        run.run_id().clone(),
        AuditAction::Recovered,
        "x",
    ))
    .await
    .unwrap();
    drop(run);
    factory
        .compare_and_swap_status(
            &RunId::new("perms").unwrap(),
            RunStatus::Running,
            RunStatus::Paused,
        )
        .await
        .unwrap()
        .unwrap();
    let mut paths = Vec::new();
    walk(h.root(), &mut paths);
    assert!(paths.len() >= 8, "expected the run's files, got {paths:?}");
    for path in paths {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{} has mode {mode:o}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_escapes_the_root() {
    for bad in ["../x", "a/b", ".", "..", "", "a.b", "/abs", "x\0y"] {
        assert!(
            matches!(RunId::new(bad), Err(Error::InvalidRunId { .. })),
            "{bad:?} must not be a run id"
        );
    }
    let h = FileHarness::new();
    let factory = h.file_factory();
    // Every character class an id may hold, at the longest length (a leading '-' is no id).
    let id = "_-A9".repeat(16);
    drop(factory.begin(meta(&id)).await.unwrap());
    let dir = factory.run_dir(&RunId::new(&id).unwrap());
    assert!(dir.starts_with(h.root().join("runs")));
    assert_eq!(dir.parent().unwrap(), h.root().join("runs"));
    let mut paths = Vec::new();
    walk(h.root(), &mut paths);
    assert!(paths.iter().all(|p| p.starts_with(h.root())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_is_readable_by_a_person() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("layout").unwrap();
    let run = factory.begin(meta("layout")).await.unwrap();
    let mut work = Workload::new();
    run.append(&work.enqueue(2)).await.unwrap();
    run.install_snapshot(&work.queue.snapshot()).await.unwrap();
    drop(run);
    let dir = h.run_dir(&id);
    for name in ["meta.json", "queue.json", "journal", "audit.jsonl", "lock"] {
        assert!(dir.join(name).exists(), "{name} is missing");
    }
    let queue: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("queue.json")).unwrap()).unwrap();
    assert_eq!(queue["run_id"], "layout");
    assert_eq!(
        queue["format_version"],
        cairn_checkpoint_file::QUEUE_FILE_FORMAT_VERSION
    );
    assert_eq!(queue["covers_seq"], 2);
    assert_eq!(
        std::fs::read(dir.join("journal")).unwrap(),
        common::file_header(2),
        "the snapshot covers every record; the file header stays"
    );
    let lock = std::fs::read_to_string(dir.join("lock")).unwrap();
    assert!(
        lock.contains(&format!("pid {}", std::process::id())),
        "{lock}"
    );
}

/// Which step of a snapshot install fails: (operation, path suffix).
const INSTALL_STEPS: &[(&str, &str)] = &[
    ("write_all", "queue.json.tmp"),
    ("sync_data", "queue.json.tmp"),
    ("rename", "queue.json.tmp"),
    ("sync_dir", "layout-crash"),
    ("set_len", "journal"),
    ("sync_data", "journal"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_each_snapshot_install_step_reopens_to_the_same_state() {
    for &(op, suffix) in INSTALL_STEPS {
        let h = FileHarness::new();
        let plan = Arc::new(IoPlan::default());
        let id = RunId::new("layout-crash").unwrap();
        let factory = h.failing_factory(&plan, Durability::Sync);
        let run = factory.begin(meta("layout-crash")).await.unwrap();
        let mut work = Workload::new();
        run.append(&work.enqueue(4)).await.unwrap();
        run.install_snapshot(&work.queue.snapshot()).await.unwrap();
        run.append(&work.finish(2)).await.unwrap();
        plan.fail(op, suffix, 1);
        let err = run
            .install_snapshot(&work.queue.snapshot())
            .await
            .expect_err("the armed step fails");
        assert!(
            matches!(err, Error::Io { .. } | Error::SyncFailed { .. }),
            "{op} on {suffix}: {err:?}"
        );
        assert!(plan.calls(op, suffix) > 0, "{op} on {suffix} was reached");
        // The process "dies" here.
        drop(run);
        drop(factory);

        let clean = h.file_factory();
        let opened = clean.open(&id).await.unwrap().expect("the run exists");
        assert_eq!(
            replayed(&opened.recovered),
            work.queue.snapshot(),
            "crash at {op} on {suffix}"
        );
        // The reopened writer continues where the state left off.
        let more = work.finish(2);
        opened.checkpointer.append(&more).await.unwrap();
        drop(opened);
        let again = clean.open(&id).await.unwrap().unwrap();
        assert_eq!(replayed(&again.recovered), work.queue.snapshot(), "{op}");
    }
}

/// Bytes one append of `events` adds to the journal: a batch header and its records.
fn framed_len(events: &[cairn_queue::Event]) -> u64 {
    BATCH_HEADER_LEN as u64
        + events
            .iter()
            .map(|e| 16 + serde_json::to_vec(e).unwrap().len() as u64)
            .sum::<u64>()
}

/// The most bytes a journal may hold (file header included) under compaction after `bytes`
/// bytes, as the crate docs state it: twice `max(bytes, queue.json / 4)` plus one append.
///
/// Compaction starts once the journal (after its file header) holds the threshold AND a
/// quarter of the snapshot: call the larger of the two the start length. While it runs,
/// appends go on until a batch brings the journal to twice what it held when compaction
/// started, or to twice the start length if that is less; that batch's leader then waits
/// for the compaction and rewrites the journal before acknowledging the batch. So no
/// journal ever holds more than twice the start length plus that one batch. The start
/// length is taken from the largest snapshot so far: the writer uses the length of the
/// latest snapshot it rewrote the journal after, and a caller that reads `queue.json` after
/// every append has seen that one (the next compaction starts at the earliest on the batch
/// after the rewrite's, so the snapshot was still in place after the rewrite's batch).
fn journal_bound(bytes: u64, largest_snapshot: u64, largest_append: u64) -> u64 {
    let start = (largest_snapshot / COMPACT_SNAPSHOT_DIVISOR).max(bytes);
    FILE_HEADER_LEN as u64 + 2 * start + largest_append
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_bounds_the_journal_and_reopen() {
    const BYTES: u64 = 4096;
    let h = FileHarness::new();
    let factory = FileFactory::builder(h.root())
        .compact_after_records(40)
        .compact_after_bytes(BYTES)
        .build()
        .unwrap();
    let id = RunId::new("compact").unwrap();
    let run = factory.begin(meta("compact")).await.unwrap();
    let mut work = Workload::new();
    let mut appended = 0u64;
    let mut compactions = 0;
    let mut last_covers = 0;
    let mut largest_append = 0;
    let mut largest_snapshot = 0;
    for round in 0..40 {
        for events in [work.enqueue(5), work.finish(5)] {
            appended += events.len() as u64;
            largest_append = largest_append.max(framed_len(&events));
            run.append(&events).await.unwrap();
            let journal = journal_end(&std::fs::read(h.journal(&id)).unwrap()) as u64;
            let queue_json = std::fs::read(h.run_dir(&id).join("queue.json")).unwrap_or_default();
            largest_snapshot = largest_snapshot.max(queue_json.len() as u64);
            assert!(
                journal <= journal_bound(BYTES, largest_snapshot, largest_append),
                "round {round}: journal {journal} > bound {}",
                journal_bound(BYTES, largest_snapshot, largest_append)
            );
            if !queue_json.is_empty() {
                let covers =
                    serde_json::from_slice::<serde_json::Value>(&queue_json).unwrap()["covers_seq"]
                        .as_u64()
                        .unwrap();
                if covers != last_covers {
                    compactions += 1;
                    last_covers = covers;
                }
            }
        }
    }
    assert!(
        compactions >= 3,
        "compacted {compactions} times for {appended} events"
    );
    let bytes = std::fs::read(h.journal(&id)).unwrap();
    assert!((record_offsets(&bytes).len() as u64) < appended / 2);
    drop(run);
    let opened = factory.open(&id).await.unwrap().unwrap();
    assert!(
        opened.recovered.snapshot.is_some(),
        "compaction installed a snapshot"
    );
    assert!((opened.recovered.events.len() as u64) < appended / 2);
    assert_eq!(replayed(&opened.recovered), work.queue.snapshot());
}

/// The `covers_seq` of the run's `queue.json` (0 without one).
fn covers(h: &FileHarness, id: &RunId) -> u64 {
    std::fs::read(h.run_dir(id).join("queue.json"))
        .ok()
        .map_or(0, |bytes| {
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["covers_seq"]
                .as_u64()
                .unwrap()
        })
}

/// Polls `done` (every few milliseconds, for at most a minute) until it holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..12_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{what} never happened");
}

/// The sequence numbers of the records in a journal file, in order.
fn journal_seqs(bytes: &[u8]) -> Vec<u64> {
    record_offsets(bytes)
        .into_iter()
        .map(|at| u64::from_le_bytes(bytes[at + 4..at + 12].try_into().unwrap()))
        .collect()
}

/// A factory compacting after `records` records, whose I/O goes through `plan`.
fn planned_factory(h: &FileHarness, plan: &Arc<IoPlan>, records: u64) -> FileFactory {
    FileFactory::builder(h.root())
        .compact_after_records(records)
        .filesystem(Arc::new(common::FailingFs {
            plan: Arc::clone(plan),
            appending_only: false,
        }))
        .build()
        .unwrap()
}

/// Begins run `id` compacting after 20 records, with compaction's snapshot held before its
/// rename, and appends (4, 8, 4 and 8 records) until compaction has started and waits there.
/// Returns the writer, the workload and how many records were appended.
async fn held_compaction(
    h: &FileHarness,
    plan: &Arc<IoPlan>,
    id: &RunId,
) -> (Box<dyn Checkpointer>, Workload, u64) {
    held_compaction_in(&planned_factory(h, plan, 20), plan, id).await
}

/// `held_compaction` through `factory`, which must compact after 20 records and do its I/O
/// through `plan`.
async fn held_compaction_in(
    factory: &FileFactory,
    plan: &Arc<IoPlan>,
    id: &RunId,
) -> (Box<dyn Checkpointer>, Workload, u64) {
    plan.hold("rename", "queue.json.tmp");
    let run = factory.begin(meta(id.as_str())).await.unwrap();
    let mut work = Workload::new();
    let mut appended = 0u64;
    while appended < 24 {
        for events in [work.enqueue(4), work.finish(4)] {
            appended += events.len() as u64;
            run.append(&events).await.unwrap();
        }
    }
    eventually("compaction reaching its snapshot's rename", || {
        plan.waiting() == 1
    })
    .await;
    (run, work, appended)
}

/// Opens run `id` again through a factory like `planned_factory`'s.
async fn reopened(h: &FileHarness, plan: &Arc<IoPlan>, id: &RunId) -> cairn_checkpoint::Opened {
    planned_factory(h, plan, 20)
        .open(id)
        .await
        .unwrap()
        .expect("the run is there")
}

thread_local! {
    /// On a thread that renamed a `queue.json.tmp` through a `SnapshotThreadsFs`: a strong
    /// reference to that layer's `live`, dropped when the thread ends.
    static SNAPSHOT_THREAD: std::cell::RefCell<Option<Arc<()>>> =
        const { std::cell::RefCell::new(None) };
}

/// `FailingFs` that also tells whether the threads that renamed a `queue.json.tmp` into
/// place through it have ended: each holds a strong reference to the test's `Arc` that
/// `live` points to until it ends, so its strong count is 1 once they all have.
///
/// A `queue.json` that exists does not yet mean an installed snapshot: compaction's thread
/// fsyncs the folder after the rename and only then records the snapshot as installed, which
/// is what the next group-commit leader acts on. The thread ends right after that, so its end
/// is the event a test must wait for; nothing else a caller can see marks it.
#[derive(Debug)]
struct SnapshotThreadsFs {
    inner: common::FailingFs,
    live: std::sync::Weak<()>,
}

impl cairn_checkpoint_file::Filesystem for SnapshotThreadsFs {
    fn open(
        &self,
        path: &Path,
        mode: cairn_checkpoint_file::OpenMode,
    ) -> std::io::Result<Box<dyn cairn_checkpoint_file::FsFile>> {
        self.inner.open(path, mode)
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.create_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        if from.ends_with("queue.json.tmp") {
            SNAPSHOT_THREAD.with(|live| *live.borrow_mut() = self.live.upgrade());
        }
        self.inner.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        self.inner.exists(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.inner.remove_dir_all(path)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_go_on_while_compaction_installs_its_snapshot_and_the_journal_keeps_what_follows() {
    let h = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let id = RunId::new("beside").unwrap();
    let snapshot_threads = Arc::new(());
    let factory = FileFactory::builder(h.root())
        .compact_after_records(20)
        .filesystem(Arc::new(SnapshotThreadsFs {
            inner: common::FailingFs {
                plan: Arc::clone(&plan),
                appending_only: false,
            },
            live: Arc::downgrade(&snapshot_threads),
        }))
        .build()
        .unwrap();
    let (run, mut work, mut appended) = held_compaction_in(&factory, &plan, &id).await;
    // Dropped before `run`: a failed assertion lets the held compaction go, so the writer's
    // drop (which waits for compaction) ends and the test fails instead of hanging.
    let _release = ReleaseOnDrop(Arc::clone(&plan));
    assert_eq!(
        Arc::strong_count(&snapshot_threads),
        2,
        "the compaction thread held at its rename is watched"
    );
    // The appends hold 4, 8, 4 and 8 records: the fourth brought the journal past 20 and
    // started compaction, whose snapshot covers every record so far.
    let covers = appended;
    assert_eq!(covers, 24);
    // These appends complete while the snapshot is held (12 records, less than the 24 the
    // journal held, so the leader has no reason to wait for compaction).
    let during = async {
        for events in [work.enqueue(4), work.finish(4)] {
            appended += events.len() as u64;
            run.append(&events).await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), during)
        .await
        .expect("an append waited for compaction");
    assert!(
        !h.run_dir(&id).join("queue.json").exists(),
        "the snapshot is still held"
    );
    let journal = std::fs::read(h.journal(&id)).unwrap();
    assert_eq!(
        journal_seqs(&journal),
        (1..=appended).collect::<Vec<_>>(),
        "until the snapshot is installed the journal keeps every record"
    );

    plan.release();
    // Not `queue.json` appearing: the snapshot counts as installed only once the folder
    // fsync after the rename returned, and an append whose leader runs before that leaves
    // the journal whole (the snapshot covers a prefix of it, which every open accepts).
    eventually("the compaction thread ending", || {
        Arc::strong_count(&snapshot_threads) == 1
    })
    .await;
    let snapshot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h.run_dir(&id).join("queue.json")).unwrap()).unwrap();
    assert_eq!(snapshot["covers_seq"].as_u64(), Some(covers));
    // The next batch's leader rewrites the journal to the records after the snapshot.
    let events = work.enqueue(4);
    appended += events.len() as u64;
    run.append(&events).await.unwrap();
    let journal = std::fs::read(h.journal(&id)).unwrap();
    assert_eq!(
        journal_seqs(&journal),
        (covers + 1..=appended).collect::<Vec<_>>(),
        "the rewritten journal holds exactly the records after the snapshot"
    );
    assert!(
        !h.run_dir(&id).join("journal.tmp").exists(),
        "the rewrite's temp file was renamed into place"
    );
    // Appends after the rewrite go to the new journal.
    let events = work.finish(4);
    appended += events.len() as u64;
    run.append(&events).await.unwrap();
    drop(run);
    let opened = reopened(&h, &plan, &id).await;
    assert!(opened.recovered.snapshot.is_some());
    // The rewrite left 24 records after the snapshot, so a second compaction started; the
    // writer's drop waited for it, and then dropped the records it covers from the journal.
    let covered = self::covers(&h, &id);
    assert!(covered > covers, "covers {covered}");
    let journal = std::fs::read(h.journal(&id)).unwrap();
    assert_eq!(
        journal_seqs(&journal),
        (covered + 1..=appended).collect::<Vec<_>>()
    );
    assert_eq!(opened.recovered.events.len() as u64, appended - covered);
    assert_eq!(replayed(&opened.recovered), work.queue.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_doubles_while_compaction_runs_makes_the_leader_wait_for_it() {
    let h = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let id = RunId::new("doubled").unwrap();
    let (run, mut work, _) = held_compaction(&h, &plan, &id).await;
    let run: Arc<dyn Checkpointer> = Arc::from(run);
    let at_start = journal_end(&std::fs::read(h.journal(&id)).unwrap()) as u64;
    // Far more than the journal held when compaction started.
    let batches: Vec<Vec<cairn_queue::Event>> = (0..30)
        .flat_map(|_| [work.enqueue(4), work.finish(4)])
        .collect();
    let largest = batches
        .iter()
        .map(|events| framed_len(events))
        .max()
        .unwrap();
    let appender = {
        let run = Arc::clone(&run);
        tokio::spawn(async move {
            for events in batches {
                run.append(&events).await.unwrap();
            }
        })
    };
    // Give the appender every chance to run past the bound.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let journal = journal_end(&std::fs::read(h.journal(&id)).unwrap()) as u64;
    assert!(
        journal <= 2 * at_start + largest,
        "the journal grew to {journal} bytes while compaction was held (it held {at_start})"
    );
    assert!(
        !appender.is_finished(),
        "the leader waits for the held compaction"
    );
    plan.release();
    appender.await.unwrap();
    drop(run);
    let opened = reopened(&h, &plan, &id).await;
    assert!(opened.recovered.snapshot.is_some());
    assert_eq!(replayed(&opened.recovered), work.queue.snapshot());
}

/// Lets `plan`'s held calls through when dropped.
struct ReleaseOnDrop(Arc<IoPlan>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compactions_the_leader_waits_for_time_after_time_keep_the_journal_bounded() {
    // Every compaction is slower than the appends: its snapshot is held before its rename
    // until an append waits for it. The journal rewritten after such a wait keeps what was
    // appended meanwhile, so the next compaction starts from a journal longer than the
    // threshold; the bound must hold all the same, cycle after cycle. The workload starts
    // and releases the same five tasks, so the snapshot (and with it the bound) stays the
    // same size while the journal fills.
    const BYTES: u64 = 4096;
    let h = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let factory = FileFactory::builder(h.root())
        .compact_after_records(u64::MAX)
        .compact_after_bytes(BYTES)
        .filesystem(Arc::new(common::FailingFs {
            plan: Arc::clone(&plan),
            appending_only: false,
        }))
        .build()
        .unwrap();
    let id = RunId::new("slow").unwrap();
    let run: Arc<dyn Checkpointer> = Arc::from(factory.begin(meta("slow")).await.unwrap());
    // Dropped before `run`: a failed assertion lets the held compaction go, so the writer's
    // drop (which waits for compaction) ends and the test fails instead of hanging.
    let _release = ReleaseOnDrop(Arc::clone(&plan));
    let mut work = Workload::new();
    let enqueued = work.enqueue(5);
    run.append(&enqueued).await.unwrap();
    let mut appended = enqueued.len() as u64;
    let ids: Vec<_> = work.queue.tasks().map(|task| task.id).collect();
    let mut largest_append = framed_len(&enqueued);
    let mut largest_snapshot = 0;
    let mut waits = 0;
    plan.hold("rename", "queue.json.tmp");
    for round in 0..200 {
        for &task in &ids {
            work.queue.start(task, Timestamp(2)).unwrap();
            work.queue.release(task, Timestamp(2)).unwrap();
        }
        let events = work.queue.take_events();
        appended += events.len() as u64;
        largest_append = largest_append.max(framed_len(&events));
        let append = {
            let run = Arc::clone(&run);
            tokio::spawn(async move { run.append(&events).await })
        };
        // Once its batch is in the journal, an append that is not acknowledged waits for
        // the held compaction (or is about to return, and the compaction is let go early,
        // which only makes this cycle a fast one).
        let journal = h.journal(&id);
        eventually("the append's batch being written", || {
            append.is_finished()
                || journal_seqs(&std::fs::read(&journal).unwrap()).last() == Some(&appended)
        })
        .await;
        if !append.is_finished() {
            waits += 1;
            plan.release();
        }
        append.await.unwrap().unwrap();
        // The next compaction starts on a later append, so it is held too.
        plan.hold("rename", "queue.json.tmp");
        let journal = journal_end(&std::fs::read(&journal).unwrap()) as u64;
        let snapshot = std::fs::read(h.run_dir(&id).join("queue.json")).map_or(0, |b| b.len());
        largest_snapshot = largest_snapshot.max(snapshot as u64);
        let bound = journal_bound(BYTES, largest_snapshot, largest_append);
        assert!(
            journal <= bound,
            "round {round} (after {waits} waits): journal {journal} > bound {bound}"
        );
    }
    assert!(
        waits >= 20,
        "the leader waited for compaction {waits} times"
    );
    plan.release();
    drop(run);
    let opened = factory.open(&id).await.unwrap().unwrap();
    assert_eq!(replayed(&opened.recovered), work.queue.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_snapshot_install_after_a_compaction_keeps_the_batch_it_flushed() {
    // A caller's install waits for a held compaction while an append is buffered behind it;
    // the compaction then installs its snapshot, the install flushes the append (which is
    // acknowledged) and fails at its own rename. The append must survive the writer's drop.
    let h = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let id = RunId::new("flushed").unwrap();
    let (run, mut work, _) = held_compaction(&h, &plan, &id).await;
    let run: Arc<dyn Checkpointer> = Arc::from(run);
    // The held rename is compaction's; the next one on `queue.json.tmp`, the install's, fails.
    plan.fail("rename", "queue.json.tmp", 2);
    let buffered = work.enqueue(4);
    let snapshot = work.queue.snapshot();
    let install = {
        let run = Arc::clone(&run);
        tokio::spawn(async move { run.install_snapshot(&snapshot).await })
    };
    // Let the install take leadership, then buffer the append behind it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let append = {
        let run = Arc::clone(&run);
        tokio::spawn(async move { run.append(&buffered).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    plan.release();
    let installed = install.await.unwrap();
    assert!(
        matches!(installed, Err(Error::Io { .. })),
        "the install's rename fails: {installed:?}"
    );
    append.await.unwrap().expect("the append is acknowledged");
    drop(run);
    let opened = reopened(&h, &plan, &id).await;
    assert_eq!(replayed(&opened.recovered), work.queue.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn dropping_the_writer_waits_for_a_leader_whose_append_was_cancelled() {
    // The leader of a cancelled append waits for a held compaction (the journal doubled).
    // Dropping the writer must wait for both, past its 5 s grace for leaders that never
    // started, and nothing may touch the files once the drop has returned.
    let h = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let id = RunId::new("cancelled").unwrap();
    let (run, mut work, _) = held_compaction(&h, &plan, &id).await;
    let run: Arc<dyn Checkpointer> = Arc::from(run);
    let batches: Vec<Vec<cairn_queue::Event>> = (0..30)
        .flat_map(|_| [work.enqueue(4), work.finish(4)])
        .collect();
    let appender = {
        let run = Arc::clone(&run);
        tokio::spawn(async move {
            for events in batches {
                run.append(&events).await.unwrap();
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!appender.is_finished(), "the leader waits for compaction");
    appender.abort();
    let _ = appender.await;
    let dropper = std::thread::spawn(move || drop(run));
    std::thread::sleep(Duration::from_millis(5_500));
    assert!(
        !dropper.is_finished(),
        "the drop waits for the leader's work"
    );
    plan.release();
    dropper.join().unwrap();
    let calls = |plan: &IoPlan| {
        [
            plan.calls("write_at", "journal"),
            plan.calls("sync_data", "journal"),
            plan.calls("rename", "journal.tmp"),
            plan.calls("rename", "queue.json.tmp"),
        ]
    };
    let after_drop = calls(&plan);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        calls(&plan),
        after_drop,
        "file work after the drop returned"
    );
    // Whatever the cancelled append got to write, the run opens cleanly.
    let opened = reopened(&h, &plan, &id).await;
    assert!(opened.recovered.snapshot.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_rewrite_that_cannot_rename_keeps_the_old_journal_and_stops_compacting() {
    let h = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    plan.fail("rename", "journal.tmp", 1);
    let factory = planned_factory(&h, &plan, 20);
    let id = RunId::new("norename").unwrap();
    let run = factory.begin(meta("norename")).await.unwrap();
    let mut work = Workload::new();
    let mut appended = 0u64;
    for _ in 0..10 {
        for events in [work.enqueue(4), work.finish(4)] {
            appended += events.len() as u64;
            run.append(&events).await.unwrap();
        }
    }
    drop(run);
    assert_eq!(
        plan.calls("rename", "journal.tmp"),
        1,
        "one rewrite was tried"
    );
    // The old journal stayed in place whole, and nothing was compacted after the failure.
    let journal = std::fs::read(h.journal(&id)).unwrap();
    assert_eq!(journal_seqs(&journal), (1..=appended).collect::<Vec<_>>());
    let opened = reopened(&h, &plan, &id).await;
    assert_eq!(
        opened.recovered.events.len() as u64,
        appended - covers(&h, &id)
    );
    assert_eq!(replayed(&opened.recovered), work.queue.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_of_the_rewritten_journal_poisons_the_writer_and_loses_nothing() {
    let h = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    plan.fail("sync_data", "journal.tmp", 1);
    let factory = planned_factory(&h, &plan, 20);
    let id = RunId::new("nosync").unwrap();
    let run = factory.begin(meta("nosync")).await.unwrap();
    let mut work = Workload::new();
    let mut acknowledged = Vec::new();
    let mut failed = None;
    'appending: for _ in 0..10 {
        for events in [work.enqueue(4), work.finish(4)] {
            match run.append(&events).await {
                Ok(()) => acknowledged.extend(events),
                Err(err) => {
                    failed = Some((err, events));
                    break 'appending;
                }
            }
        }
    }
    let (err, unacknowledged) = failed.expect("the rewrite's failed sync reaches an append");
    assert!(
        matches!(err, Error::SyncFailed { .. } | Error::Poisoned { .. }),
        "{err:?}"
    );
    assert!(matches!(
        run.append(&sample_events(0, 1)).await,
        Err(Error::Poisoned { .. })
    ));
    drop(run);
    let opened = reopened(&h, &plan, &id).await;
    let replay = |events: &[cairn_queue::Event]| {
        cairn_queue::Queue::replay(None, events.iter(), cairn_queue::QueueConfig::default())
            .unwrap()
            .snapshot()
    };
    // Every acknowledged event is there; the failed append's may or may not be.
    let recovered = replayed(&opened.recovered);
    let with_failed = [acknowledged.clone(), unacknowledged].concat();
    assert!(
        recovered == replay(&acknowledged) || recovered == replay(&with_failed),
        "recovered {} tasks; {} events were acknowledged",
        recovered.tasks.len(),
        acknowledged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_applies_the_events_it_wrote_without_reading_the_journal_back() {
    let h = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let factory = || {
        FileFactory::builder(h.root())
            .compact_after_records(20)
            .filesystem(Arc::new(common::FailingFs {
                plan: Arc::clone(&plan),
                appending_only: false,
            }))
            .build()
            .unwrap()
    };
    let id = RunId::new("inmemory").unwrap();
    let mut work = Workload::new();
    let run = factory().begin(meta("inmemory")).await.unwrap();
    for _ in 0..10 {
        for events in [work.enqueue(4), work.finish(4)] {
            run.append(&events).await.unwrap();
        }
    }
    drop(run);
    let first = covers(&h, &id);
    assert!(
        first >= 60,
        "compaction ran more than once (covers {first})"
    );
    assert_eq!(
        plan.calls("read", "journal"),
        0,
        "a fresh run's writer saw every record and reads none back"
    );
    assert_eq!(plan.calls("read", "queue.json"), 0);

    // A reopened run with records after its snapshot: the first compaction must read the
    // journal (those records were written by another writer), the later ones need not.
    let opened = factory().open(&id).await.unwrap().unwrap();
    assert_eq!(replayed(&opened.recovered), work.queue.snapshot());
    for _ in 0..10 {
        for events in [work.enqueue(4), work.finish(4)] {
            opened.checkpointer.append(&events).await.unwrap();
        }
    }
    drop(opened);
    assert!(
        covers(&h, &id) >= first + 60,
        "compacted again, more than once"
    );
    assert_eq!(
        plan.calls("read", "journal"),
        1,
        "only the first compaction reads"
    );
    let opened = factory().open(&id).await.unwrap().unwrap();
    assert_eq!(replayed(&opened.recovered), work.queue.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_writes_amended_inputs_into_its_snapshot() {
    // Compaction keeps task inputs apart from its queue; an amendment (`cairn resume
    // --reload`) must still reach the snapshot, or a reopened run would run the old inputs.
    let h = FileHarness::new();
    let factory = FileFactory::builder(h.root())
        .compact_after_records(20)
        .build()
        .unwrap();
    let id = RunId::new("amended").unwrap();
    let mut work = Workload::new();
    let run = factory.begin(meta("amended")).await.unwrap();
    let mut amended = 0;
    for round in 0..10u64 {
        run.append(&work.enqueue(4)).await.unwrap();
        // The newest task is still pending: amend it, then finish the oldest ones.
        let newest = cairn_queue::TaskId(work.queue.len() as u64 - 1);
        let inputs = serde_json::json!({ "amended_in_round": round });
        work.queue
            .amend(newest, inputs, Some(3), cairn_queue::Timestamp(3))
            .unwrap();
        amended += 1;
        run.append(&work.queue.take_events()).await.unwrap();
        run.append(&work.finish(3)).await.unwrap();
    }
    drop(run);
    assert!(covers(&h, &id) >= 60, "compaction ran after amendments");
    let opened = factory.open(&id).await.unwrap().unwrap();
    let snapshot = opened.recovered.snapshot.clone().expect("a snapshot");
    let in_snapshot = snapshot
        .tasks
        .iter()
        .filter(|t| t.inputs.get("amended_in_round").is_some())
        .count();
    assert!(
        in_snapshot >= 5,
        "the snapshot holds amended inputs ({in_snapshot} of {amended})"
    );
    assert_eq!(replayed(&opened.recovered), work.queue.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_does_not_replay_is_kept_whole() {
    // Sample events skip task ids after a snapshot, so they do not replay; compaction must
    // switch off rather than lose them.
    let h = FileHarness::new();
    let factory = FileFactory::builder(h.root())
        .compact_after_records(3)
        .build()
        .unwrap();
    let id = RunId::new("odd").unwrap();
    let run = factory.begin(meta("odd")).await.unwrap();
    for n in [0, 5, 9, 12, 40] {
        run.append(&[sample_event(n)]).await.unwrap();
    }
    drop(run);
    let opened = factory.open(&id).await.unwrap().unwrap();
    assert_eq!(opened.recovered.snapshot, None);
    let ids: Vec<_> = opened
        .recovered
        .events
        .iter()
        .map(|e| e.task_id().unwrap().0)
        .collect();
    assert_eq!(ids, [0, 5, 9, 12, 40]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tails_of_every_length_are_cut() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("tails").unwrap();
    drop(factory.begin(meta("tails")).await.unwrap());
    let mut kept = 0u64;
    let mut expected = Vec::new();
    for round in 0..6u64 {
        // Append two records, then cut the last one to a different length each round.
        let opened = factory.open(&id).await.unwrap().unwrap();
        assert_eq!(opened.recovered.events, expected, "round {round}");
        let good = sample_event(100 + round);
        opened
            .checkpointer
            .append(std::slice::from_ref(&good))
            .await
            .unwrap();
        opened
            .checkpointer
            .append(&[sample_event(200 + round)])
            .await
            .unwrap();
        expected.push(good);
        drop(opened);
        let path = h.journal(&id);
        let bytes = std::fs::read(&path).unwrap();
        // The last append is the last batch; cut it inside its batch header, at the record
        // header, inside the record header, in the payload, one byte short, or (round 5)
        // damage the record's checksum in place.
        let last = *batch_offsets(&bytes).last().unwrap();
        let batch_len = journal_end(&bytes) - last;
        let keep = match round {
            0 => 1,
            1 => BATCH_HEADER_LEN,
            2 => BATCH_HEADER_LEN + 15,
            3 => batch_len / 2,
            4 => batch_len - 1,
            _ => 0,
        };
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        if round == 5 {
            // Instead of cutting, overwrite the last record's checksum.
            use std::io::{Seek, SeekFrom, Write};
            let mut file = file;
            file.seek(SeekFrom::Start((last + BATCH_HEADER_LEN + 12) as u64))
                .unwrap();
            file.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap();
        } else {
            file.set_len((last + keep) as u64).unwrap();
        }
        let opened = factory.open(&id).await.unwrap().unwrap();
        let torn = opened.recovered.torn_tail.expect("cut reported");
        assert_eq!(torn.offset, last as u64, "round {round}");
        assert_eq!(opened.recovered.events, expected, "round {round}");
        kept += 1;
        drop(opened);
    }
    let cuts = factory
        .read_audit(&id)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.action == AuditAction::TornTailCut)
        .count() as u64;
    assert_eq!(cuts, kept, "every cut is audited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_after_the_snapshot_is_corruption() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("gap").unwrap();
    let run = factory.begin(meta("gap")).await.unwrap();
    run.append(&sample_events(0, 4)).await.unwrap();
    drop(run);
    // Rewrite the journal without the first record (in well-formed batches): it now starts
    // at sequence 2 with no snapshot.
    let path = h.journal(&id);
    assert_eq!(record_offsets(&std::fs::read(&path).unwrap()).len(), 4);
    let events = sample_events(0, 4);
    let rest: Vec<_> = (2..=4u64).zip(events[1..].iter().cloned()).collect();
    std::fs::write(&path, common::format_2_journal(&[rest])).unwrap();
    let err = factory.open(&id).await.expect_err("records are missing");
    let first = (FILE_HEADER_LEN + BATCH_HEADER_LEN) as u64;
    assert!(
        matches!(err, Error::Corruption { offset, .. } if offset == first),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_journal_is_missing_is_quarantined_not_replayed_from_its_snapshot() {
    // Without its journal a run would replay from the snapshot alone and quietly forget
    // the transitions it acknowledged after it (a completed task would run again).
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("no-journal").unwrap();
    let run = factory.begin(meta("no-journal")).await.unwrap();
    let mut work = Workload::new();
    run.append(&work.enqueue(2)).await.unwrap();
    run.install_snapshot(&work.queue.snapshot()).await.unwrap();
    run.append(&work.finish(1)).await.unwrap();
    drop(run);
    let dir = h.run_dir(&id);
    let snapshot = std::fs::read(dir.join("queue.json")).unwrap();
    std::fs::remove_file(h.journal(&id)).unwrap();

    let err = factory
        .open(&id)
        .await
        .expect_err("a run without its journal");
    let Error::Unreadable {
        quarantined_to,
        detail,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert!(detail.contains("journal is missing"), "{err}");
    assert!(!dir.exists(), "the run was moved aside");
    assert_eq!(
        std::fs::read(Path::new(quarantined_to).join("queue.json")).unwrap(),
        snapshot,
        "what is left is kept, never deleted"
    );
    assert!(
        !Path::new(quarantined_to).join("journal").exists(),
        "no empty journal was made up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queue_json_and_meta_json_are_quarantined() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    for (name, damage) in [
        ("q-version", "version"),
        ("q-foreign", "foreign"),
        ("q-garbage", "garbage"),
        ("m-garbage", "meta"),
    ] {
        let id = RunId::new(name).unwrap();
        let run = factory.begin(meta(name)).await.unwrap();
        let mut work = Workload::new();
        run.append(&work.enqueue(1)).await.unwrap();
        run.install_snapshot(&work.queue.snapshot()).await.unwrap();
        drop(run);
        let dir = h.run_dir(&id);
        let queue_path = dir.join("queue.json");
        let mut queue: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&queue_path).unwrap()).unwrap();
        match damage {
            "version" => queue["format_version"] = serde_json::json!(0),
            "foreign" => queue["run_id"] = serde_json::json!("someone-else"),
            _ => {}
        }
        match damage {
            "garbage" => std::fs::write(&queue_path, b"{ not json").unwrap(),
            "meta" => std::fs::write(dir.join("meta.json"), b"\x00\x01").unwrap(),
            _ => std::fs::write(&queue_path, serde_json::to_vec(&queue).unwrap()).unwrap(),
        }
        let err = factory.open(&id).await.expect_err("bad state");
        let quarantined_to = match (&err, damage) {
            (
                Error::VersionMismatch {
                    quarantined_to,
                    found: 0,
                    ..
                },
                "version",
            ) => quarantined_to,
            (
                Error::ForeignRun {
                    quarantined_to,
                    found,
                    ..
                },
                "foreign",
            ) => {
                assert_eq!(found, "someone-else");
                quarantined_to
            }
            (Error::Unreadable { quarantined_to, .. }, "garbage" | "meta") => quarantined_to,
            _ => panic!("{damage}: unexpected {err:?}"),
        };
        let moved = Path::new(quarantined_to);
        assert!(moved.starts_with(h.root().join("quarantine")), "{moved:?}");
        assert!(
            moved.join("journal").exists(),
            "the state is moved, not deleted"
        );
        assert!(!dir.exists());
        let audit = std::fs::read_to_string(moved.join("audit.jsonl")).unwrap();
        assert!(audit.contains("\"quarantined\""), "{audit}");
    }
    let log = std::fs::read_to_string(h.root().join("quarantine.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 4, "{log}");
}

/// An event payload of a type this build does not know, as a newer build writes one.
const NEWER_BUILD_EVENT: &[u8] = br#"{"type":"paused_by_operator","id":0,"at":5}"#;

/// Cuts `journal` back to its last whole batch and appends, as its own batch, a checksummed
/// record (seq 3) of an event type this build does not know: the shape a newer build appends.
fn append_newer_build_event(journal: &mut Vec<u8>) {
    journal.truncate(journal_end(journal));
    let body = record_with_payload(3, NEWER_BUILD_EVENT);
    let header = batch_header(journal.len(), &body);
    journal.extend_from_slice(&header);
    journal.extend_from_slice(&body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_builds_queue_json_journal_header_or_event_is_refused_and_left_in_place() {
    // After a rollback, this build meets what a later build wrote. Nothing in it is damaged:
    // it is refused with `NewerFormat` every time and left exactly as it was, never
    // quarantined or cut, so rolling forward again finds the run.
    let h = FileHarness::new();
    let factory = h.file_factory();
    for damage in ["queue.json", "journal header", "event type"] {
        let name = damage.replace([' ', '.'], "-");
        let id = RunId::new(&name).unwrap();
        let run = factory.begin(meta(&name)).await.unwrap();
        let mut work = Workload::new();
        run.append(&work.enqueue(2)).await.unwrap();
        if damage == "queue.json" {
            run.install_snapshot(&work.queue.snapshot()).await.unwrap();
        }
        drop(run);
        let dir = h.run_dir(&id);
        match damage {
            "queue.json" => {
                let path = dir.join("queue.json");
                let mut queue: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                queue["format_version"] = serde_json::json!(7);
                std::fs::write(&path, serde_json::to_vec(&queue).unwrap()).unwrap();
            }
            "journal header" => {
                let mut bytes = std::fs::read(h.journal(&id)).unwrap();
                bytes[..FILE_HEADER_LEN].copy_from_slice(&file_header(3));
                std::fs::write(h.journal(&id), bytes).unwrap();
            }
            _ => {
                // A checksummed record of an event type this build does not know, after
                // the good ones, as its own batch: the shape a newer build appends.
                let mut bytes = std::fs::read(h.journal(&id)).unwrap();
                append_newer_build_event(&mut bytes);
                std::fs::write(h.journal(&id), bytes).unwrap();
            }
        }
        let before = files_of(&dir);
        for _ in 0..2 {
            let err = factory.open(&id).await.expect_err("a newer build's run");
            assert!(
                matches!(&err, Error::NewerFormat { run_id, .. } if *run_id == id),
                "{damage}: {err:?}"
            );
            assert!(!err.is_bad_state(), "{damage}: {err:?}");
            let peeked = factory.peek(&id).await.expect_err("peek refuses it too");
            assert!(
                matches!(peeked, Error::NewerFormat { .. }),
                "{damage}: {peeked:?}"
            );
        }
        if damage == "event type" {
            let text = factory.open(&id).await.unwrap_err().to_string();
            assert!(text.contains("`paused_by_operator`"), "{text}");
            assert!(text.contains("newer cairn build"), "{text}");
        }
        assert_eq!(files_of(&dir), before, "{damage}: left exactly as it was");
    }
    let quarantined = factory.list_quarantined().await.unwrap();
    assert!(
        quarantined.is_empty(),
        "nothing was quarantined: {quarantined:?}"
    );
    let moved = std::fs::read_dir(h.root().join("quarantine")).map_or(0, |d| d.count());
    assert_eq!(moved, 0, "the quarantine folder is empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_builds_event_before_a_torn_tail_or_zeros_is_refused_before_anything_is_cut() {
    // A newer build appended an event this build does not know, then crashed mid-batch (or
    // left preallocated zeros that an appending file layer would trim). The run is refused
    // with `NewerFormat` and nothing of it is cut: before, `open` cut the torn tail (or the
    // zeros) and audited the cut first, and only then found the newer event.
    let h = FileHarness::new();
    let factory = h.file_factory();
    for case in ["torn-tail", "zeros"] {
        let id = RunId::new(case).unwrap();
        let run = factory.begin(meta(case)).await.unwrap();
        run.append(&Workload::new().enqueue(2)).await.unwrap();
        drop(run);
        let mut bytes = std::fs::read(h.journal(&id)).unwrap();
        let zeros = bytes.len() - journal_end(&bytes);
        assert!(zeros > 0, "a Sync journal is preallocated");
        append_newer_build_event(&mut bytes);
        if case == "torn-tail" {
            // The header of a next batch and part of its body: a torn last write.
            let body = record_with_payload(4, NEWER_BUILD_EVENT);
            let header = batch_header(bytes.len(), &body);
            bytes.extend_from_slice(&header);
            bytes.extend_from_slice(&body[..body.len() / 2]);
        } else {
            bytes.resize(bytes.len() + zeros, 0);
        }
        std::fs::write(h.journal(&id), &bytes).unwrap();
        let dir = h.run_dir(&id);
        let before = files_of(&dir);
        // An appending file layer drops preallocated zeros on open; a positioned one keeps
        // them, so only it could cut the zeros.
        let opener = if case == "zeros" {
            h.appending_factory(Durability::Sync)
        } else {
            h.file_factory()
        };
        let err = opener.open(&id).await.expect_err("a newer build's run");
        assert!(matches!(&err, Error::NewerFormat { .. }), "{case}: {err:?}");
        // Not `assert_eq!`: the folder's bytes would fill the failure message.
        assert!(
            files_of(&dir) == before,
            "{case}: nothing was cut or audited"
        );
    }
}

/// Every file of `dir` with its bytes, for comparing a folder before and after. The `lock`
/// file is listed without its bytes: it names whoever took the lock last and since when (to
/// the second), so every open rewrites it, refused or not, and it holds no run state.
fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = if name == "lock" {
                Vec::new()
            } else {
                std::fs::read(entry.path()).unwrap_or_default()
            };
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_stray_file_among_the_runs_is_quarantined_and_listing_goes_on() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    let run = factory.begin(meta("real-run")).await.unwrap();
    drop(run);
    // A file where a run's folder belongs (a person's copy, an editor's leftover).
    let stray = h.run_dir(&RunId::new("stray").unwrap());
    std::fs::write(&stray, b"notes").unwrap();

    let listed = factory
        .list(&cairn_checkpoint::RunFilter::default())
        .await
        .expect("a stray file does not stop the listing");
    let ids: Vec<&str> = listed.iter().map(|m| m.run_id.as_str()).collect();
    assert_eq!(ids, ["real-run"]);
    assert!(!stray.exists(), "the stray file was moved aside");
    let moved: Vec<_> = std::fs::read_dir(h.root().join("quarantine"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        std::fs::read(&moved[0]).unwrap(),
        b"notes",
        "moved, never deleted or changed"
    );
    let log = std::fs::read_to_string(h.root().join("quarantine.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(log.contains("stray file"), "{log}");
    // The next listing finds nothing more to move.
    assert_eq!(
        factory
            .list(&cairn_checkpoint::RunFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_keeps_every_acknowledged_record() {
    let h = FileHarness::with(Durability::Group {
        max_delay: Duration::from_millis(1),
    });
    let plan = Arc::new(IoPlan::default());
    let factory = h.failing_factory(&plan, h.durability);
    let id = RunId::new("group").unwrap();
    let run: Arc<dyn Checkpointer> = Arc::from(factory.begin(meta("group")).await.unwrap());
    const WRITERS: u64 = 64;
    const EACH: u64 = 20;
    common::append_concurrently(&run, WRITERS, EACH).await;
    let syncs = plan.calls("sync_data", "journal");
    assert!(
        syncs <= WRITERS * EACH,
        "at most one fdatasync per append, got {syncs}"
    );
    println!("{} appends shared {syncs} fdatasyncs", WRITERS * EACH);
    drop(run);
    let opened = h.file_factory().open(&id).await.unwrap().unwrap();
    let events = opened.recovered.events;
    assert_eq!(events.len() as u64, WRITERS * EACH);
    for writer in 0..WRITERS {
        let mine: Vec<u64> = events
            .iter()
            .map(|e| e.task_id().unwrap().0)
            .filter(|n| n / 1_000 == writer)
            .collect();
        let want: Vec<u64> = (0..EACH).map(|i| writer * 1_000 + i).collect();
        assert_eq!(mine, want, "writer {writer}'s records, in its order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_does_not_hold_a_lone_writer_for_max_delay() {
    // A lone writer's batches hold one append, so its leader stops waiting for company at
    // once. A leader that waited out max_delay would take 30 s per append here; the guard
    // fails the test well before 20 of them could finish that way.
    let h = FileHarness::with(Durability::Group {
        max_delay: Duration::from_secs(30),
    });
    let factory = h.file_factory();
    let id = RunId::new("lone").unwrap();
    let run = factory.begin(meta("lone")).await.unwrap();
    let work = async {
        for i in 0..20 {
            run.append(&[sample_event(i)]).await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(20), work)
        .await
        .expect("appends are not held for max_delay");
    drop(run);
    let opened = factory.open(&id).await.unwrap().unwrap();
    assert_eq!(opened.recovered.events, sample_events(0, 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_mode_uses_one_write_and_one_fdatasync_per_append() {
    let h = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let factory = h.failing_factory(&plan, Durability::Sync);
    let run = factory.begin(meta("one-sync")).await.unwrap();
    // `begin` wrote the file header (with write_all, while the journal was new).
    let header_writes = plan.calls("write_all", "journal");
    let writes = plan.calls("write_at", "journal");
    let syncs = plan.calls("sync_data", "journal");
    for n in 0..10 {
        run.append(&sample_events(n * 5, n * 5 + 5)).await.unwrap();
    }
    assert_eq!(
        plan.calls("write_all", "journal") - header_writes,
        0,
        "positioned writes only"
    );
    // The first append also preallocates: its zeros go in a write of their own, before the
    // batch's (so a full disk fails that write, not the batch's), and the batch's one
    // fdatasync covers both. The other nine fit in those zeros.
    assert_eq!(plan.calls("write_at", "journal") - writes, 10 + 1);
    assert_eq!(plan.calls("sync_data", "journal") - syncs, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fdatasync_poisons_the_writer() {
    let h = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let factory = h.failing_factory(&plan, Durability::Sync);
    let id = RunId::new("poison").unwrap();
    let run = factory.begin(meta("poison")).await.unwrap();
    run.append(&sample_events(0, 3)).await.unwrap();
    plan.fail("sync_data", "journal", 1);
    let err = common::failed_append_then_poisoned(&*run).await;
    assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
    let err = run
        .install_snapshot(&cairn_checkpoint::conformance::sample_snapshot(1))
        .await
        .expect_err("poisoned");
    assert!(matches!(err, Error::Poisoned { .. }), "{err:?}");
    let err = run.complete().await.expect_err("poisoned");
    assert!(matches!(err, Error::Poisoned { .. }), "{err:?}");
    assert_eq!(
        plan.calls("sync_data", "journal"),
        3,
        "the sync is never retried"
    );
    drop(run);
    let opened = h.file_factory().open(&id).await.unwrap().unwrap();
    let events = opened.recovered.events;
    assert_eq!(
        &events[..3],
        &sample_events(0, 3)[..],
        "acknowledged events survive"
    );
    assert_eq!(opened.recovered.meta.status, RunStatus::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factory_sees_the_holder_in_locked() {
    let h = FileHarness::new();
    let first = h.file_factory();
    let run = first.begin(meta("held")).await.unwrap();
    let err = h.file_factory().open(run.run_id()).await.expect_err("held");
    match err {
        Error::Locked { holder, .. } => {
            assert!(holder.contains(&std::process::id().to_string()), "{holder}");
            // Since when, as a person reads a time, not milliseconds since 1970.
            let since = holder.split(" since ").nth(1).unwrap_or_default();
            assert!(
                since.ends_with(" UTC") && since.len() == "2026-11-22 15:30:00 UTC".len(),
                "{holder}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_failed_sync_of_the_writer_poisons_it() {
    for (suffix, step) in [("audit.jsonl", "audit"), ("meta.json.tmp", "complete")] {
        let h = FileHarness::new();
        let plan = Arc::new(IoPlan::default());
        let factory = h.failing_factory(&plan, Durability::Sync);
        let run = factory.begin(meta("poison-other")).await.unwrap();
        run.append(&sample_events(0, 2)).await.unwrap();
        plan.fail("sync_data", suffix, 1);
        let err = match step {
            "audit" => run
                .audit(&cairn_checkpoint::AuditRecord::new(
                    Timestamp(1),
                    run.run_id().clone(),
                    AuditAction::Recovered,
                    "x",
                ))
                .await
                .expect_err("audit sync fails"),
            _ => run.complete().await.expect_err("meta sync fails"),
        };
        assert!(matches!(err, Error::SyncFailed { .. }), "{step}: {err:?}");
        let err = run
            .append(&sample_events(2, 3))
            .await
            .expect_err("poisoned");
        assert!(matches!(err, Error::Poisoned { .. }), "{step}: {err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_begins_of_one_id_have_one_winner() {
    for round in 0..10 {
        let h = FileHarness::new();
        let name = format!("race-{round}");
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let factory = h.file_factory();
            let name = name.clone();
            tasks.push(tokio::spawn(async move {
                factory.begin(meta(&name)).await.map(|run| {
                    // Keep the lock briefly so losers cannot sneak in afterwards.
                    drop(run);
                })
            }));
        }
        let mut wins = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => wins += 1,
                Err(Error::AlreadyExists { .. }) => {}
                Err(other) => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
        let runs_dir = h.root().join("runs");
        let leftovers: Vec<_> = std::fs::read_dir(&runs_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "losers clean their staging: {leftovers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_a_crash_do_not_disturb_open_or_list() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("leftovers").unwrap();
    let run = factory.begin(meta("leftovers")).await.unwrap();
    run.append(&sample_events(0, 2)).await.unwrap();
    drop(run);
    let dir = h.run_dir(&id);
    // A crash mid-install, mid-swap and mid-begin leaves these behind.
    std::fs::write(dir.join("queue.json.tmp"), b"{ half a snap").unwrap();
    std::fs::write(dir.join("meta.json.tmp"), b"{ half a meta").unwrap();
    std::fs::create_dir(h.root().join("runs/.begin-ghost-1-0")).unwrap();
    // And an audit line torn in the middle.
    let mut audit = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("audit.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut audit, b"{\"at\":3,\"run_id\":\"lefto").unwrap();
    drop(audit);

    let listed = factory.list(&Default::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
    let opened = factory.open(&id).await.unwrap().unwrap();
    assert_eq!(opened.recovered.events, sample_events(0, 2));
    assert_eq!(opened.recovered.snapshot, None);
    let audit = factory.read_audit(&id).await.unwrap();
    assert!(
        audit.iter().any(|r| r.action == AuditAction::Begun),
        "{audit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stored_under_a_name_that_is_no_longer_a_run_id_is_left_alone() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    // A run stored under `-lead` before run ids could not start with '-': its folder is
    // what a run's folder holds, under a name `RunId::new` now refuses.
    let old = RunId::new("lead").unwrap();
    let run = factory.begin(meta("lead")).await.unwrap();
    run.append(&sample_events(0, 2)).await.unwrap();
    drop(run);
    let refused = h.root().join("runs/-lead");
    std::fs::rename(h.run_dir(&old), &refused).unwrap();
    let quarantined = h.root().join("quarantine/-lead-1700000000000");
    std::fs::create_dir_all(&quarantined).unwrap();
    std::fs::write(quarantined.join("meta.json"), b"{}").unwrap();
    let kept = factory.begin(meta("kept")).await.unwrap();
    drop(kept);

    // Listings skip it, as they skip any folder whose name is no run id, and go on.
    let listed = factory.list(&Default::default()).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|m| m.run_id.as_str()).collect();
    assert_eq!(ids, ["kept"]);
    assert!(factory.list_quarantined().await.unwrap().is_empty());

    // Nothing was moved or deleted.
    let mut left = Vec::new();
    walk(&refused, &mut left);
    let names: Vec<_> = left.iter().filter_map(|p| p.file_name()).collect();
    for file in ["meta.json", "journal", "audit.jsonl"] {
        assert!(names.iter().any(|n| *n == file), "{file} is gone: {left:?}");
    }
    assert!(quarantined.join("meta.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_records_are_durable_before_the_folder_moves() {
    let h = FileHarness::new();
    let id = RunId::new("half-moved").unwrap();
    let run = h.file_factory().begin(meta("half-moved")).await.unwrap();
    drop(run);
    std::fs::write(h.run_dir(&id).join("meta.json"), b"{ not json").unwrap();

    // The move itself fails, as a crash between the steps would stop it.
    let plan = Arc::new(IoPlan::default());
    plan.fail("rename", "half-moved", 1);
    let factory = h.failing_factory(&plan, Durability::Sync);
    let err = factory.open(&id).await.expect_err("the move failed");
    assert!(matches!(err, Error::Io { op: "rename", .. }), "{err:?}");
    let dir = h.run_dir(&id);
    assert!(dir.exists(), "the run is still in place");
    let audit = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("\"quarantined\""),
        "intent recorded: {audit}"
    );
    // Unlike a crash, a failed rename is followed, in both logs, by a record saying that the
    // move did not happen.
    assert!(audit.contains("\"left_in_place\""), "{audit}");
    let log = std::fs::read_to_string(h.root().join("quarantine.jsonl")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].contains("\"quarantined\""), "{log}");
    assert!(lines[1].contains("\"left_in_place\""), "{log}");

    // The next open finishes the job; nothing was lost or deleted on the way.
    let err = h.file_factory().open(&id).await.expect_err("still bad");
    let Error::Unreadable { quarantined_to, .. } = err else {
        panic!("{err:?}");
    };
    let moved = Path::new(&quarantined_to);
    assert!(!dir.exists());
    let audit = std::fs::read_to_string(moved.join("audit.jsonl")).unwrap();
    assert_eq!(audit.matches("\"quarantined\"").count(), 2, "{audit}");
    assert_eq!(
        std::fs::read(moved.join("meta.json")).unwrap(),
        b"{ not json"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_quarantines_runs_whose_metadata_no_filter_can_match() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    for name in ["good", "m-version", "m-foreign", "m-garbage", "m-held"] {
        drop(factory.begin(meta(name)).await.unwrap());
    }
    let rewrite = |name: &str, change: &dyn Fn(&mut serde_json::Value)| {
        let path = h.run_dir(&RunId::new(name).unwrap()).join("meta.json");
        let mut value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        change(&mut value);
        std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
    };
    rewrite("m-version", &|m| m["format_version"] = serde_json::json!(0));
    rewrite("m-foreign", &|m| {
        m["run_id"] = serde_json::json!("someone-else")
    });
    std::fs::write(
        h.run_dir(&RunId::new("m-garbage").unwrap())
            .join("meta.json"),
        b"\x00",
    )
    .unwrap();
    // A run a live writer holds is left to that writer, even with bad metadata.
    let held = factory
        .open(&RunId::new("m-held").unwrap())
        .await
        .unwrap()
        .unwrap();
    std::fs::write(
        h.run_dir(&RunId::new("m-held").unwrap()).join("meta.json"),
        b"\x00",
    )
    .unwrap();

    let listed = factory
        .list(&cairn_checkpoint::RunFilter::default())
        .await
        .unwrap();
    let names: Vec<&str> = listed.iter().map(|m| m.run_id.as_str()).collect();
    assert_eq!(names, vec!["good"]);
    for name in ["m-version", "m-foreign", "m-garbage"] {
        assert!(
            !h.run_dir(&RunId::new(name).unwrap()).exists(),
            "{name} was moved aside"
        );
    }
    assert!(h.run_dir(&RunId::new("m-held").unwrap()).exists());
    let log = std::fs::read_to_string(h.root().join("quarantine.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 3, "{log}");
    let moved = std::fs::read_dir(h.root().join("quarantine"))
        .unwrap()
        .count();
    assert_eq!(moved, 3, "moved, never deleted");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_won_claim_is_installed_durably_and_a_lost_one_writes_nothing() {
    let h = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let factory = h.failing_factory(&plan, Durability::Sync);
    let id = RunId::new("claimed").unwrap();
    drop(factory.begin(meta("claimed")).await.unwrap());
    let meta_path = h.run_dir(&id).join("meta.json");
    let steps = |plan: &IoPlan| {
        [
            plan.calls("write_all", "meta.json.tmp"),
            plan.calls("sync_data", "meta.json.tmp"),
            plan.calls("rename", "meta.json.tmp"),
            plan.calls("sync_dir", "claimed"),
        ]
    };

    // A won claim: temp file, fsync, rename, directory fsync, once each.
    let before = steps(&plan);
    let won = factory
        .claim(&id, RunStatus::Running, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(won.lease_epoch, 2);
    let after: Vec<u64> = steps(&plan)
        .iter()
        .zip(before)
        .map(|(a, b)| a - b)
        .collect();
    assert_eq!(after, [1, 1, 1, 1], "write, fsync, rename, dir fsync");

    // A lost claim writes nothing at all: no temp file, no rename, the same bytes.
    let bytes = std::fs::read(&meta_path).unwrap();
    let before = steps(&plan);
    let lost = factory
        .claim(&id, RunStatus::Running, 1)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(lost.current_epoch, 2);
    assert_eq!(steps(&plan), before, "a lost claim touched the disk");
    assert_eq!(std::fs::read(&meta_path).unwrap(), bytes);
    assert!(!h.run_dir(&id).join("meta.json.tmp").exists());

    // A claim whose fsync fails is not acknowledged, and the old metadata stays in place.
    plan.fail("sync_data", "meta.json.tmp", 1);
    let err = factory.claim(&id, RunStatus::Running, 2).await.unwrap_err();
    assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
    assert_eq!(std::fs::read(&meta_path).unwrap(), bytes);
    let stored = h.file_factory().load_meta(&id).await.unwrap().unwrap();
    assert_eq!(stored.lease_epoch, 2);
}

/// An empty root is refused before anything is made: it would put `runs/` in the current
/// folder and then fail half set up.
#[test]
fn an_empty_root_is_refused_before_anything_is_made() {
    let cwd = std::env::current_dir().unwrap();
    let had_runs = cwd.join("runs").exists();
    let err = cairn_checkpoint_file::FileFactory::builder("")
        .build()
        .expect_err("an empty root is refused");
    assert!(
        matches!(&err, cairn_checkpoint::Error::InvalidSetting { reason } if reason.contains("path is empty")),
        "{err:?}"
    );
    assert_eq!(
        cwd.join("runs").exists(),
        had_runs,
        "nothing made in {}",
        cwd.display()
    );
}

/// A FIFO where the journal belongs (outside damage) is an error at once, for a read and for
/// an open: opening it used to wait for a writer forever (`cairn show` hung on it).
#[test]
fn a_fifo_where_the_journal_belongs_is_an_error_not_a_hang() {
    common::run_bounded(async {
        let h = FileHarness::new();
        let factory = h.file_factory();
        let run = factory.begin(meta("fifo")).await.unwrap();
        run.append(&sample_events(0, 2)).await.unwrap();
        drop(run);
        let id = RunId::new("fifo").unwrap();
        let journal = h.journal(&id);
        std::fs::remove_file(&journal).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&journal)
            .status()
            .expect("run mkfifo");
        assert!(made.success());
        let peeked = common::promptly("a peek", factory.peek(&id)).await;
        let err = peeked.expect_err("a FIFO is no journal");
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let opened = common::promptly("an open", factory.open(&id)).await;
        let err = opened.expect_err("a FIFO is no journal");
        assert!(
            matches!(&err, Error::Unreadable { detail, .. }
                if detail.contains("a FIFO, socket or device stands where its journal belongs")),
            "{err}"
        );
    });
}

/// A folder or FIFO where one of a run's files belongs (outside damage) is foreign state: the
/// open (or, for `meta.lock`, the status change) that meets it moves the run to quarantine
/// with a typed error naming the file, instead of failing on it for good (review 50 F2).
#[test]
fn a_folder_where_a_run_file_belongs_moves_the_run_to_quarantine() {
    common::run_bounded(async {
        for file in ["journal", "queue.json", "lock", "meta.lock"] {
            let h = FileHarness::new();
            let factory = h.file_factory();
            let id = RunId::new("odd").unwrap();
            let run = factory.begin(meta("odd")).await.unwrap();
            run.append(&sample_events(0, 2)).await.unwrap();
            drop(run);
            let path = h.journal(&id).with_file_name(file);
            let _ = std::fs::remove_file(&path);
            std::fs::create_dir(&path).unwrap();
            let err = if file == "meta.lock" {
                factory
                    .claim(&id, RunStatus::Running, 1)
                    .await
                    .expect_err("the claim meets the folder")
            } else {
                factory
                    .open(&id)
                    .await
                    .expect_err("the open meets the folder")
            };
            let Error::Unreadable {
                detail,
                quarantined_to,
                ..
            } = &err
            else {
                panic!("{file}: {err}");
            };
            assert!(
                detail.contains(&format!("a folder stands where its {file} belongs")),
                "{file}: {detail}"
            );
            assert!(
                std::path::Path::new(quarantined_to).join(file).is_dir(),
                "{file}: the run's folder, the foreign folder in it, is kept at {quarantined_to}"
            );
            assert!(factory.load_meta(&id).await.unwrap().is_none(), "{file}");
        }
    });
}

/// A claim probes the run's writer lock, and so does `is_held`; neither probe ever makes a
/// concurrent `open` fail with `Locked`, because `open` takes the writer lock under
/// `meta.lock`, under which both probe (review 52 F3: a claim refuses while a writer holds
/// the run, so it must look, and its look must not get in a driver's way).
#[test]
fn probes_never_make_a_concurrent_open_fail_with_locked() {
    common::run_bounded(async {
        let h = FileHarness::new();
        let id = RunId::new("probed").unwrap();
        drop(h.file_factory().begin(meta("probed")).await.unwrap());
        opens_beside(&h, &id, 400, "probes", |rt, factory, id| {
            rt.block_on(async {
                // A claim at an epoch that never matches: it probes, then loses.
                let lost = factory.claim(id, RunStatus::Running, 99).await.unwrap();
                assert!(lost.is_err(), "{lost:?}");
                factory.is_held(id).await.unwrap();
            });
        })
        .await;
        let stored = h.file_factory().load_meta(&id).await.unwrap().unwrap();
        assert_eq!(stored.lease_epoch, 1, "no probing claim won");
    });
}

/// Opens run `id` `rounds` times while another thread runs `look` over and over (from before
/// the first open to after the last); every open must succeed.
async fn opens_beside(
    h: &FileHarness,
    id: &RunId,
    rounds: u32,
    what: &str,
    look: impl Fn(&tokio::runtime::Runtime, &FileFactory, &RunId) + Send + 'static,
) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let looks = Arc::new(AtomicU64::new(0));
    let looker = {
        let (factory, id) = (h.file_factory(), id.clone());
        let (stop, looks) = (Arc::clone(&stop), Arc::clone(&looks));
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            while !stop.load(Ordering::SeqCst) {
                look(&rt, &factory, &id);
                looks.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // The opens start once the looker is going, so they overlap its looks.
    while looks.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let factory = h.file_factory();
    for round in 0..rounds {
        match factory.open(id).await {
            Ok(Some(opened)) => drop(opened),
            other => panic!("open {round} beside the {what}: {other:?}"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    looker.join().expect("the thread looking");
}

/// A `peek` (`cairn show`, `cairn runs`) holds the run's lock shared while it reads. An
/// `open` that meets only such readers waits for them instead of failing with `Locked` as
/// if a writer drove the run; a writer is still reported at once, by name.
#[test]
fn an_open_waits_out_readers_but_not_a_writer() {
    common::run_bounded(async {
        let h = FileHarness::new();
        let factory = h.file_factory();
        let id = RunId::new("read").unwrap();
        drop(factory.begin(meta("read")).await.unwrap());
        let lock_path = h.run_dir(&id).join("lock");
        // A reader that holds the lock shared for a while, as a slow peek does.
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let file = std::fs::File::open(&lock_path).unwrap();
            file.lock_shared().unwrap();
            held_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(300));
            drop(file);
        });
        held_rx.recv().unwrap();
        let opened = factory.open(&id).await;
        assert!(
            matches!(opened, Ok(Some(_))),
            "an open beside a reader: {opened:?}"
        );
        reader.join().unwrap();
        // With a writer holding it, a second open fails at once, naming that writer.
        let writer = opened.unwrap().unwrap();
        match h.file_factory().open(&id).await {
            Err(Error::Locked { holder, .. }) => {
                assert!(holder.contains(&std::process::id().to_string()), "{holder}");
            }
            other => panic!("an open beside a writer: {other:?}"),
        }
        drop(writer);
    });
}

/// Peeks in a loop beside repeated opens: no open fails with `Locked` (a peek that meets an
/// open's writer lock may, which is `peek`'s documented answer).
#[test]
fn peeks_never_make_a_concurrent_open_fail_with_locked() {
    common::run_bounded(async {
        let h = FileHarness::new();
        let id = RunId::new("peeked").unwrap();
        let run = h.file_factory().begin(meta("peeked")).await.unwrap();
        run.append(&sample_events(0, 200)).await.unwrap();
        drop(run);
        opens_beside(&h, &id, 200, "peeks", |rt, factory, id| {
            match rt.block_on(factory.peek(id)) {
                Ok(Some(_)) | Err(Error::Locked { .. }) => {}
                other => panic!("a peek: {other:?}"),
            }
        })
        .await;
    });
}

/// Polls `future` once, with a waker nobody needs (the test polls it again by awaiting it):
/// whatever the call does before its first wait has happened when this returns.
fn poll_once<F: std::future::Future + Unpin>(future: &mut F) {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(
        std::pin::Pin::new(future).poll(&mut cx).is_pending(),
        "the call was expected to wait"
    );
}

/// A run whose snapshot install raced its appends, as [`install_between_appends`] leaves it.
struct RacedInstall {
    run: Arc<dyn Checkpointer>,
    work: Workload,
    /// The snapshot installed: the queue after the first two appends.
    at_install: cairn_queue::Snapshot,
    /// The third append's events, sealed while the install waited.
    third: Vec<cairn_queue::Event>,
}

/// Begins run `name` (compacting after `records`) and appends 3 records, then installs the
/// snapshot of those and 2 more while the second append's leader waits at its fdatasync and
/// a third append of `third` records is sealed; all three calls have finished on return.
async fn install_between_appends(
    h: &FileHarness,
    plan: &Arc<IoPlan>,
    name: &str,
    records: u64,
    third: usize,
) -> RacedInstall {
    let factory = planned_factory(h, plan, records);
    let run: Arc<dyn Checkpointer> = Arc::from(factory.begin(meta(name)).await.unwrap());
    let _release = ReleaseOnDrop(Arc::clone(plan));
    let mut work = Workload::new();
    run.append(&work.enqueue(3)).await.unwrap();

    plan.hold("sync_data", "journal");
    let second = work.enqueue(2);
    // What the caller installs reflects the first two appends: the second is sealed (and
    // being written) when the install is called.
    let at_install = work.queue.snapshot();
    let second_append = {
        let run = Arc::clone(&run);
        tokio::spawn(async move { run.append(&second).await })
    };
    eventually(
        "the second append's leader waiting at its fdatasync",
        || plan.waiting() == 1,
    )
    .await;
    let mut install = run.install_snapshot(&at_install);
    poll_once(&mut install);
    let third = work.enqueue(third);
    let mut third_append = run.append(&third);
    poll_once(&mut third_append);
    plan.release();
    second_append.await.unwrap().unwrap();
    third_append.await.unwrap();
    install.await.unwrap();
    RacedInstall {
        run,
        work,
        at_install,
        third,
    }
}

/// A snapshot install covers what was appended before it was called, nothing later. Here a
/// third append is sealed while the install waits for leadership (the second append's
/// leader is held at its fdatasync, and writes the third append's batch too before it steps
/// down): that batch is written before the snapshot but stays after it, through the writer's
/// `load`, a compaction that must read it back from the journal, and a reopen. Before the fix
/// the install took every record written as covered, and the third append, acknowledged,
/// was gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_sealed_after_an_install_was_called_stays_after_its_snapshot() {
    let h = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let id = RunId::new("install-race").unwrap();
    let RacedInstall {
        run,
        mut work,
        at_install,
        third,
    } = install_between_appends(&h, &plan, "install-race", 20, 2).await;

    let loaded = run.load().await.unwrap();
    assert_eq!(loaded.snapshot.as_ref(), Some(&at_install));
    assert_eq!(
        loaded.events, third,
        "the append sealed after the install's call is read after its snapshot"
    );
    assert_eq!(
        covers(&h, &id),
        5,
        "the snapshot covers the first two appends"
    );
    // Enough records for a compaction, which rebuilds from the caller's snapshot and the
    // journal after it.
    for _ in 0..4 {
        run.append(&work.enqueue(3)).await.unwrap();
        run.append(&work.finish(3)).await.unwrap();
    }
    drop(run);
    assert!(covers(&h, &id) > 7, "a compaction installed its snapshot");
    let opened = reopened(&h, &plan, &id).await;
    assert_eq!(replayed(&opened.recovered), work.queue.snapshot());
}

/// A caller's install never takes back a snapshot that covers more. Here the records
/// appended while the install waits for leadership (its call covers the first five) are
/// enough for a compaction, whose snapshot covers them and whose journal rewrite drops
/// them from the journal before the install runs. Before the fix the install then put its
/// older snapshot in place over the journal holding nothing after the compaction's: the
/// four acknowledged records in between were in neither, through `load` and on reopen,
/// and the next append reused their sequence numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_overtaken_by_a_compaction_keeps_the_records_it_does_not_cover() {
    let h = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let id = RunId::new("install-behind").unwrap();
    // Four more records take the journal past the compaction threshold of six.
    let RacedInstall { run, mut work, .. } =
        install_between_appends(&h, &plan, "install-behind", 6, 4).await;

    let loaded = run.load().await.unwrap();
    assert_eq!(
        replayed(&loaded),
        work.queue.snapshot(),
        "the records appended after the install was called are still read back"
    );
    assert!(
        covers(&h, &id) >= 5,
        "the snapshot covers the install's call"
    );
    drop(run);
    let opened = reopened(&h, &plan, &id).await;
    assert_eq!(replayed(&opened.recovered), work.queue.snapshot());
    // The sequence goes on after the last record acknowledged, so one more append reads
    // back after a reopen.
    let fourth = work.enqueue(1);
    opened.checkpointer.append(&fourth).await.unwrap();
    drop(opened);
    let again = reopened(&h, &plan, &id).await;
    assert_eq!(replayed(&again.recovered), work.queue.snapshot());
}
