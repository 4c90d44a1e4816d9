//! A conformance harness over a temporary directory, shared by this crate's tests.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_checkpoint::conformance::{ConformanceHarness, Damage};
use cairn_checkpoint::{CheckpointerFactory, Durability, RunId};
use cairn_checkpoint_file::FileFactory;

/// Header bytes before each journal payload: len u32, seq u64, crc u32.
pub const HEADER_LEN: usize = 16;

/// One temporary root; each `factory()` is a fresh `FileFactory` over it.
#[derive(Debug)]
pub struct FileHarness {
    pub dir: tempfile::TempDir,
    pub durability: Durability,
    /// Whether factories use a file layer without positioned writes (so the journal is
    /// appended to and never preallocated).
    pub appending_only: bool,
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
        FileFactory::builder(self.root())
            .durability(self.durability)
            .build()
            .expect("build the factory")
    }
}

/// Start offsets of the journal's records, up to the preallocated zeros (if any).
pub fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0;
    while at + HEADER_LEN <= bytes.len() {
        if bytes[at..at + HEADER_LEN].iter().all(|b| *b == 0) {
            break;
        }
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if at + HEADER_LEN + len > bytes.len() {
            break;
        }
        offsets.push(at);
        at += HEADER_LEN + len;
    }
    offsets
}

/// Where the journal's last whole record ends: the file's length minus the preallocated
/// zeros after it.
pub fn journal_end(bytes: &[u8]) -> usize {
    match record_offsets(bytes).last() {
        Some(&last) => {
            let len = u32::from_le_bytes(bytes[last..last + 4].try_into().unwrap()) as usize;
            last + HEADER_LEN + len
        }
        None => 0,
    }
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
        let offsets = record_offsets(&bytes);
        let Some(&last) = offsets.last() else {
            return Damage::Unsupported("the journal has no record".to_owned());
        };
        // Keep part of the last record's payload, as a write cut short would.
        let keep = last + HEADER_LEN + 3;
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(keep as u64).unwrap();
        Damage::Applied {
            offset: Some(last as u64),
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
        Damage::Applied {
            offset: Some(victim as u64),
        }
    }

    fn plant_version_mismatch(&self, run_id: &RunId) -> Damage {
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
        self.inner.try_lock()
    }
    fn lock(&self) -> std::io::Result<()> {
        self.inner.lock()
    }
    fn unlock(&self) -> std::io::Result<()> {
        self.inner.unlock()
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
