//! A conformance harness over a temporary directory, shared by this crate's tests.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_checkpoint::conformance::{ConformanceHarness, Damage};
use cairn_checkpoint::{CheckpointerFactory, Durability, RunId, RunMeta};
use cairn_checkpoint_file::FileFactory;
use cairn_queue::Timestamp;

/// Header bytes before each journal payload: len u32, seq u64, crc u32.
pub const HEADER_LEN: usize = 16;

/// The journal's file header (format 2): magic, version u32, crc u32.
pub const FILE_HEADER_LEN: usize = 16;

/// A batch header: magic, len u64, offset u64, body crc u32, header crc u32.
pub const BATCH_HEADER_LEN: usize = 28;

/// The journal file's first bytes in format 2.
pub const FILE_MAGIC: &[u8; 8] = b"CAIRNJNL";

/// A batch header's first bytes.
pub const BATCH_MAGIC: &[u8; 4] = b"CJBT";

/// The entries of `root`'s `runs/` whose names start with `prefix`, sorted.
pub fn in_runs_starting_with(root: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(root.join("runs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with(prefix))
        })
        .collect();
    found.sort();
    found
}

/// Metadata for a run named `id` (workflow `wf`, scope `scope`, created at 1).
pub fn meta(id: &str) -> RunMeta {
    RunMeta::new(
        RunId::new(id).expect("valid id"),
        "wf",
        "scope",
        "in",
        Timestamp(1),
    )
}

/// One temporary root; each `factory()` is a fresh `FileFactory` over it.
#[derive(Debug)]
pub struct FileHarness {
    pub dir: tempfile::TempDir,
    pub durability: Durability,
    /// Whether factories use a file layer without positioned writes (so the journal is
    /// appended to and never preallocated).
    pub appending_only: bool,
    /// Whether factories never compact on their own, so every record stays in the journal
    /// (as after a crash that came before a compaction finished).
    pub never_compacts: bool,
}

impl Default for FileHarness {
    fn default() -> Self {
        FileHarness::new()
    }
}

impl FileHarness {
    pub fn new() -> FileHarness {
        FileHarness::with(Durability::Sync)
    }

    pub fn with(durability: Durability) -> FileHarness {
        FileHarness {
            dir: tempfile::tempdir().expect("a temporary directory"),
            durability,
            appending_only: false,
            never_compacts: false,
        }
    }

    /// Sync durability, and no compaction however long the journal grows.
    pub fn never_compacting() -> FileHarness {
        FileHarness {
            never_compacts: true,
            ..FileHarness::new()
        }
    }

    /// Sync durability over a file layer without positioned writes.
    pub fn appending() -> FileHarness {
        FileHarness {
            appending_only: true,
            ..FileHarness::new()
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn run_dir(&self, run_id: &RunId) -> PathBuf {
        self.root().join("runs").join(run_id.as_str())
    }

    pub fn journal(&self, run_id: &RunId) -> PathBuf {
        self.run_dir(run_id).join("journal")
    }

    pub fn file_factory(&self) -> FileFactory {
        if self.appending_only {
            return self.appending_factory(self.durability);
        }
        let builder = FileFactory::builder(self.root()).durability(self.durability);
        let builder = if self.never_compacts {
            builder
                .compact_after_records(u64::MAX)
                .compact_after_bytes(u64::MAX)
        } else {
            builder
        };
        builder.build().expect("build the factory")
    }
}

/// Start offsets of a format-2 journal's batches, up to the preallocated zeros (if any).
/// This reads the format as documented, independently of the adapter's code.
pub fn batch_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    if bytes.len() < FILE_HEADER_LEN || &bytes[..8] != FILE_MAGIC {
        return offsets;
    }
    let mut at = FILE_HEADER_LEN;
    while at + BATCH_HEADER_LEN <= bytes.len() && &bytes[at..at + 4] == BATCH_MAGIC {
        let len = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().unwrap()) as usize;
        if at + BATCH_HEADER_LEN + len > bytes.len() {
            break;
        }
        offsets.push(at);
        at += BATCH_HEADER_LEN + len;
    }
    offsets
}

/// The body (records) of the batch at `at`.
pub fn batch_body(bytes: &[u8], at: usize) -> std::ops::Range<usize> {
    let len = u64::from_le_bytes(bytes[at + 4..at + 12].try_into().unwrap()) as usize;
    at + BATCH_HEADER_LEN..at + BATCH_HEADER_LEN + len
}

/// Start offsets of the journal's records (inside its batches), in order.
pub fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    for batch in batch_offsets(bytes) {
        let body = batch_body(bytes, batch);
        let mut at = body.start;
        while at + HEADER_LEN <= body.end {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            offsets.push(at);
            at += HEADER_LEN + len;
        }
    }
    offsets
}

/// Where the journal's last whole batch ends: the file's length minus the preallocated
/// zeros after it (the file header's end when there is no batch).
pub fn journal_end(bytes: &[u8]) -> usize {
    match batch_offsets(bytes).last() {
        Some(&last) => batch_body(bytes, last).end,
        None if bytes.starts_with(FILE_MAGIC) => FILE_HEADER_LEN,
        None => 0,
    }
}

/// The format-2 file header, written out by hand from the documented layout.
pub fn file_header(version: u32) -> Vec<u8> {
    let mut header = FILE_MAGIC.to_vec();
    header.extend_from_slice(&version.to_le_bytes());
    let crc = crc32c::crc32c(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    header
}

/// A batch header for `body` written at `offset`.
pub fn batch_header(offset: usize, body: &[u8]) -> Vec<u8> {
    let mut header = BATCH_MAGIC.to_vec();
    header.extend_from_slice(&(body.len() as u64).to_le_bytes());
    header.extend_from_slice(&(offset as u64).to_le_bytes());
    header.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
    let crc = crc32c::crc32c(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    header
}

/// One framed record (len, seq, crc, payload) of `event`, as both formats frame records.
pub fn record(seq: u64, event: &cairn_queue::Event) -> Vec<u8> {
    record_with_payload(seq, &serde_json::to_vec(event).unwrap())
}

/// One framed record of any `payload` (a newer build's event, say).
pub fn record_with_payload(seq: u64, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut tail = len.to_le_bytes().to_vec();
    tail.extend_from_slice(&seq.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(payload), &tail);
    let mut out = tail;
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// A format-1 journal (builds before batch framing): records back to back from offset 0.
pub fn format_1_journal(events: &[cairn_queue::Event]) -> Vec<u8> {
    events
        .iter()
        .enumerate()
        .flat_map(|(i, event)| record(i as u64 + 1, event))
        .collect()
}

/// A format-2 journal with one batch per entry of `batches`, each a list of `(seq, event)`.
pub fn format_2_journal(batches: &[Vec<(u64, cairn_queue::Event)>]) -> Vec<u8> {
    let mut out = file_header(2);
    for batch in batches {
        let body: Vec<u8> = batch
            .iter()
            .flat_map(|(seq, event)| record(*seq, event))
            .collect();
        let header = batch_header(out.len(), &body);
        out.extend_from_slice(&header);
        out.extend_from_slice(&body);
    }
    out
}

fn rewrite_meta(path: &Path, change: impl FnOnce(&mut serde_json::Value)) -> Damage {
    let Ok(bytes) = std::fs::read(path) else {
        return Damage::Unsupported(format!("{} is missing", path.display()));
    };
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).expect("meta.json parses");
    change(&mut value);
    std::fs::write(path, serde_json::to_vec_pretty(&value).unwrap()).expect("rewrite meta.json");
    Damage::Applied { offset: None }
}

impl ConformanceHarness for FileHarness {
    fn factory(&self) -> Arc<dyn CheckpointerFactory> {
        Arc::new(self.file_factory())
    }

    fn tear_last_record(&self, run_id: &RunId) -> Damage {
        let path = self.journal(run_id);
        let bytes = std::fs::read(&path).expect("read the journal");
        let (Some(&batch), Some(&last)) =
            (batch_offsets(&bytes).last(), record_offsets(&bytes).last())
        else {
            return Damage::Unsupported("the journal has no record".to_owned());
        };
        if record_offsets(&bytes[..batch_body(&bytes, batch).end]).len()
            != record_offsets(&bytes[..batch]).len() + 1
        {
            return Damage::Unsupported("the last batch holds more than one record".to_owned());
        }
        // Keep part of the last record's payload, as a write cut short would: its batch
        // (which holds only that record) is the torn one.
        let keep = last + HEADER_LEN + 3;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(keep as u64).unwrap();
        Damage::Applied {
            offset: Some(batch as u64),
        }
    }

    fn corrupt_middle_record(&self, run_id: &RunId) -> Damage {
        let path = self.journal(run_id);
        let mut bytes = std::fs::read(&path).expect("read the journal");
        let offsets = record_offsets(&bytes);
        if offsets.len() < 3 {
            return Damage::Unsupported("fewer than three records".to_owned());
        }
        let victim = offsets[1];
        bytes[victim + HEADER_LEN + 1] ^= 0x5a;
        std::fs::write(&path, &bytes).unwrap();
        // Corruption is reported where the batch holding the record starts.
        let batch = batch_offsets(&bytes)
            .into_iter()
            .rfind(|batch| *batch < victim)
            .expect("the record lies in a batch");
        Damage::Applied {
            offset: Some(batch as u64),
        }
    }

    fn plant_version_mismatch(&self, run_id: &RunId) -> Damage {
        rewrite_meta(&self.run_dir(run_id).join("meta.json"), |meta| {
            meta["format_version"] = serde_json::json!(0);
        })
    }

    fn plant_newer_format(&self, run_id: &RunId) -> Damage {
        rewrite_meta(&self.run_dir(run_id).join("meta.json"), |meta| {
            meta["format_version"] = serde_json::json!(99);
        })
    }

    fn plant_foreign_run(&self, run_id: &RunId, foreign: &RunId) -> Damage {
        rewrite_meta(&self.run_dir(run_id).join("meta.json"), |meta| {
            meta["run_id"] = serde_json::json!(foreign.as_str());
        })
    }
}

/// One armed I/O failure: the `nth` call (counted from arming) of `op` on a path ending
/// with `suffix` fails with an injected OS error.
#[derive(Debug, Clone)]
struct IoRule {
    op: &'static str,
    suffix: String,
    remaining: u64,
}

/// Shared state of a `FailingFs`: armed rules and per-op call counts.
#[derive(Debug, Default)]
pub struct IoPlan {
    rules: std::sync::Mutex<Vec<IoRule>>,
    calls: std::sync::Mutex<std::collections::HashMap<(&'static str, String), u64>>,
    gate: std::sync::Mutex<Gate>,
    gate_changed: std::sync::Condvar,
}

/// Calls held back by `IoPlan::hold` until `IoPlan::release`.
#[derive(Debug, Default)]
struct Gate {
    held: Option<(&'static str, String)>,
    waiting: u64,
}

impl IoPlan {
    /// Fails the `nth` (1-based) next call of `op` on a path ending with `suffix`.
    pub fn fail(&self, op: &'static str, suffix: &str, nth: u64) {
        self.rules.lock().unwrap().push(IoRule {
            op,
            suffix: suffix.to_owned(),
            remaining: nth,
        });
    }

    /// Makes every call of `op` on a path ending with `suffix` wait until `release`.
    pub fn hold(&self, op: &'static str, suffix: &str) {
        self.gate.lock().unwrap().held = Some((op, suffix.to_owned()));
    }

    /// Lets held calls (and later ones) through.
    pub fn release(&self) {
        self.gate.lock().unwrap().held = None;
        self.gate_changed.notify_all();
    }

    /// How many calls are waiting at the gate now.
    pub fn waiting(&self) -> u64 {
        self.gate.lock().unwrap().waiting
    }

    /// How many calls of `op` on paths ending with `suffix` were made.
    pub fn calls(&self, op: &'static str, suffix: &str) -> u64 {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|((o, p), _)| *o == op && p.ends_with(suffix))
            .map(|(_, n)| *n)
            .sum()
    }

    fn check(&self, op: &'static str, path: &Path) -> std::io::Result<()> {
        let text = path.display().to_string();
        *self
            .calls
            .lock()
            .unwrap()
            .entry((op, text.clone()))
            .or_insert(0) += 1;
        let holds = |gate: &Gate| {
            gate.held
                .as_ref()
                .is_some_and(|(held_op, suffix)| *held_op == op && text.ends_with(suffix.as_str()))
        };
        let mut gate = self.gate.lock().unwrap();
        if holds(&gate) {
            gate.waiting += 1;
            while holds(&gate) {
                gate = self.gate_changed.wait(gate).unwrap();
            }
            gate.waiting -= 1;
        }
        drop(gate);
        let mut rules = self.rules.lock().unwrap();
        let mut fire = None;
        for (index, rule) in rules.iter_mut().enumerate() {
            if rule.op == op && text.ends_with(&rule.suffix) {
                rule.remaining -= 1;
                if rule.remaining == 0 {
                    fire = Some(index);
                    break;
                }
            }
        }
        if let Some(index) = fire {
            rules.remove(index);
            return Err(std::io::Error::other(format!("injected {op} failure")));
        }
        Ok(())
    }
}

/// A `Filesystem` over the real one that fails the calls its plan names.
#[derive(Debug, Clone)]
pub struct FailingFs {
    pub plan: Arc<IoPlan>,
    /// Leaves `FsFile::write_at` at its default (`Unsupported`), as a file layer written
    /// before positioned writes existed would.
    pub appending_only: bool,
}

#[derive(Debug)]
struct FailingFile {
    inner: Box<dyn cairn_checkpoint_file::FsFile>,
    path: PathBuf,
    plan: Arc<IoPlan>,
    appending_only: bool,
}

impl cairn_checkpoint_file::FsFile for FailingFile {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.plan.check("write_all", &self.path)?;
        self.inner.write_all(buf)
    }
    fn write_at(&self, offset: u64, buf: &[u8]) -> std::io::Result<()> {
        if self.appending_only {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "appending-only test layer",
            ));
        }
        self.plan.check("write_at", &self.path)?;
        self.inner.write_at(offset, buf)
    }
    fn read_all(&mut self) -> std::io::Result<Vec<u8>> {
        self.inner.read_all()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read_at(offset, buf)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.plan.check("sync_data", &self.path)?;
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.plan.check("set_len", &self.path)?;
        self.inner.set_len(len)
    }
    fn size(&self) -> std::io::Result<u64> {
        self.inner.size()
    }
    fn try_lock(&self) -> std::io::Result<bool> {
        self.plan.check("try_lock", &self.path)?;
        self.inner.try_lock()
    }
    fn try_lock_shared(&self) -> std::io::Result<bool> {
        self.inner.try_lock_shared()
    }
    fn lock(&self) -> std::io::Result<()> {
        self.plan.check("lock", &self.path)?;
        self.inner.lock()
    }
    fn unlock(&self) -> std::io::Result<()> {
        self.inner.unlock()
    }
    fn is_at(&self, path: &Path) -> std::io::Result<Option<bool>> {
        self.inner.is_at(path)
    }
}

impl cairn_checkpoint_file::Filesystem for FailingFs {
    fn open(
        &self,
        path: &Path,
        mode: cairn_checkpoint_file::OpenMode,
    ) -> std::io::Result<Box<dyn cairn_checkpoint_file::FsFile>> {
        let inner = cairn_checkpoint_file::StdFilesystem.open(path, mode)?;
        Ok(Box::new(FailingFile {
            inner,
            path: path.to_path_buf(),
            plan: Arc::clone(&self.plan),
            appending_only: self.appending_only,
        }))
    }
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        self.plan.check("read", path)?;
        cairn_checkpoint_file::StdFilesystem.read(path)
    }
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        cairn_checkpoint_file::StdFilesystem.create_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        cairn_checkpoint_file::StdFilesystem.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.plan.check("rename", from)?;
        cairn_checkpoint_file::StdFilesystem.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> std::io::Result<()> {
        self.plan.check("sync_dir", path)?;
        cairn_checkpoint_file::StdFilesystem.sync_dir(path)
    }
    fn list_dir(&self, path: &Path) -> std::io::Result<Vec<String>> {
        cairn_checkpoint_file::StdFilesystem.list_dir(path)
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        cairn_checkpoint_file::StdFilesystem.exists(path)
    }
    fn remove_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.plan.check("remove_dir_all", path)?;
        cairn_checkpoint_file::StdFilesystem.remove_dir_all(path)
    }
}

impl FileHarness {
    /// A factory over this root whose I/O fails as `plan` says.
    pub fn failing_factory(&self, plan: &Arc<IoPlan>, durability: Durability) -> FileFactory {
        FileFactory::builder(self.root())
            .durability(durability)
            .filesystem(Arc::new(FailingFs {
                plan: Arc::clone(plan),
                appending_only: false,
            }))
            .build()
            .expect("build the factory")
    }

    /// A factory over this root whose file layer has no positioned writes, so the adapter
    /// appends and never preallocates.
    pub fn appending_factory(&self, durability: Durability) -> FileFactory {
        FileFactory::builder(self.root())
            .durability(durability)
            .filesystem(Arc::new(FailingFs {
                plan: Arc::new(IoPlan::default()),
                appending_only: true,
            }))
            .build()
            .expect("build the factory")
    }
}

/// A real queue driven through a small DAG, with the events it produced.
pub struct Workload {
    pub queue: cairn_queue::Queue,
}

impl Workload {
    pub fn new() -> Workload {
        Workload {
            queue: cairn_queue::Queue::new(cairn_queue::QueueConfig::default()),
        }
    }

    /// Enqueues `n` independent tasks; returns their events.
    pub fn enqueue(&mut self, n: usize) -> Vec<cairn_queue::Event> {
        for i in 0..n {
            let spec = cairn_queue::TaskSpec::new("step")
                .inputs(serde_json::json!({ "i": i, "len": self.queue.len() }));
            self.queue
                .enqueue(
                    spec,
                    cairn_queue::EnqueuedBy::Root,
                    cairn_queue::Timestamp(1),
                )
                .expect("enqueue");
        }
        self.queue.take_events()
    }

    /// Starts and completes up to `n` runnable tasks; returns their events.
    pub fn finish(&mut self, n: usize) -> Vec<cairn_queue::Event> {
        let now = cairn_queue::Timestamp(2);
        for id in self.queue.next_runnable(now).into_iter().take(n) {
            self.queue.start(id, now).expect("start");
            self.queue
                .complete(id, cairn_queue::Handoff::default(), now)
                .expect("complete");
        }
        self.queue.take_events()
    }
}

/// The state a recovered snapshot plus events replays to.
pub fn replayed(recovered: &cairn_checkpoint::Recovered) -> cairn_queue::Snapshot {
    cairn_queue::Queue::replay(
        recovered.snapshot.clone(),
        recovered.events.iter(),
        cairn_queue::QueueConfig::default(),
    )
    .expect("recovered state replays")
    .snapshot()
}

/// Appends `each` single-event batches from each of `writers` concurrent tasks (event ids
/// `writer * 1000 + n`, so every append is distinct), and waits for all of them.
///
/// # Panics
///
/// When an append fails: the tests that use it expect every append to succeed.
pub async fn append_concurrently(
    run: &Arc<dyn cairn_checkpoint::Checkpointer>,
    writers: u64,
    each: u64,
) {
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let run = Arc::clone(run);
        tasks.push(tokio::spawn(async move {
            for n in 0..each {
                run.append(&[cairn_checkpoint::conformance::sample_event(
                    writer * 1000 + n,
                )])
                .await
                .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Appends events 3 and 4 to `run` (which already holds 0 to 2) while a fault is planned:
/// the first append must fail, and the next must then be refused as `Poisoned`. Returns the
/// first append's error, for the caller to match.
///
/// # Panics
///
/// When the first append succeeds, or the second is not refused as `Poisoned`.
pub async fn failed_append_then_poisoned(
    run: &dyn cairn_checkpoint::Checkpointer,
) -> cairn_checkpoint::Error {
    use cairn_checkpoint::conformance::sample_events;
    let first = run
        .append(&sample_events(3, 4))
        .await
        .expect_err("the planned fault fails the append");
    let err = run
        .append(&sample_events(4, 5))
        .await
        .expect_err("poisoned");
    assert!(
        matches!(err, cairn_checkpoint::Error::Poisoned { .. }),
        "{err:?}"
    );
    first
}

/// How long anything that should be prompt may take before a test gives up on it: a hang
/// detector, never a speed check.
pub const PROMPT: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `test` on a two-worker runtime that is shut down without waiting for its blocking
/// threads (a hung one is left behind instead of hanging the test), then re-raises the
/// test's panic, if any.
pub fn run_bounded(test: impl std::future::Future<Output = ()>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(test)));
    runtime.shutdown_background();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Awaits `work`, failing the test if it has not finished after [`PROMPT`] (a hang).
pub async fn promptly<T>(what: &str, work: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(PROMPT, work).await {
        Ok(value) => value,
        Err(_) => panic!("{what} hung (still waiting after {PROMPT:?})"),
    }
}

/// Shares `run`, and leaks it if the test panics: its drop could wait forever for a stuck
/// leader, and a failing test must fail, not hang. [`drops_promptly`] takes it back out.
pub fn unwound_not_dropped(
    run: Box<dyn cairn_checkpoint::Checkpointer>,
) -> std::mem::ManuallyDrop<Arc<dyn cairn_checkpoint::Checkpointer>> {
    std::mem::ManuallyDrop::new(Arc::from(run))
}

/// Drops the last handle of `run` on a thread of its own; whether the drop returned within
/// [`PROMPT`] (a stuck drop leaves its thread behind rather than hanging the test).
pub fn drops_promptly(run: Arc<dyn cairn_checkpoint::Checkpointer>) -> bool {
    let (done, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(run);
        let _ = done.send(());
    });
    dropped.recv_timeout(PROMPT).is_ok()
}
