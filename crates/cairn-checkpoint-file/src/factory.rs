//! `FileFactory` and its builder: the port over a root directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use cairn_checkpoint::{
    AuditRecord, Checkpointer, CheckpointerFactory, Durability, Error, LeftInPlaceRun, Opened,
    Quarantined, QuarantinedRun, Recovered, Result, RunFilter, RunId, RunMeta, RunStatus,
    StatusConflict,
};
use cairn_queue::QueueConfig;

use crate::fs::{Filesystem, StdFilesystem};
use crate::store::{OpenedRun, Store};
use crate::writer::{FileCheckpointer, Position, WriterConfig};

/// The root directory used when none is given.
pub const DEFAULT_ROOT: &str = ".cairn";

/// Journal records after the latest snapshot that trigger compaction, by default.
pub const DEFAULT_COMPACT_AFTER_RECORDS: u64 = 10_000;

/// Journal bytes that trigger compaction, by default (8 MiB).
pub const DEFAULT_COMPACT_AFTER_BYTES: u64 = 8 * 1024 * 1024;

/// Compaction also waits until the journal after the latest snapshot holds at least this
/// fraction (one part in this many) of `queue.json`'s size, so a large snapshot is rewritten
/// once per a quarter of its size in new records: every journal byte costs at most about four
/// snapshot bytes, and a reopen reads at most about a quarter of the snapshot's size in
/// journal on top of the snapshot (twice that after a crash during a compaction, since
/// appends go on while it runs). (With an eighth, a 100,000-task run rewrote its 28 MB
/// snapshot five times and compaction took about a third of the run; docs/benchmarks.md,
/// "Executor", session 9.)
pub const COMPACT_SNAPSHOT_DIVISOR: u64 = 4;

/// A checkpoint store in one root directory. Cheap to clone; clones share nothing but the
/// directory (and so behave like another process would).
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{CheckpointerFactory, Durability, RunId, RunMeta};
/// use cairn_checkpoint_file::FileFactory;
/// use cairn_queue::Timestamp;
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// let root = tempfile::tempdir().unwrap();
/// let factory = FileFactory::builder(root.path()).durability(Durability::Sync).build()?;
/// let id = RunId::new("r1")?;
/// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
/// run.append(&[]).await?;
/// drop(run);
/// let opened = factory.open(&id).await?.expect("the run exists");
/// assert!(opened.recovered.events.is_empty());
/// # Ok::<(), cairn_checkpoint::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FileFactory {
    store: Arc<Store>,
    config: WriterConfig,
}

/// Configures a [`FileFactory`].
#[derive(Debug, Clone)]
pub struct FileFactoryBuilder {
    root: PathBuf,
    fs: Arc<dyn Filesystem>,
    config: WriterConfig,
}

impl FileFactoryBuilder {
    /// How durable an acknowledged append is. Default `Durability::Sync`.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.config.durability = durability;
        self
    }

    /// Compacts (snapshot, then journal truncated) once this many records follow the latest
    /// snapshot. Default [`DEFAULT_COMPACT_AFTER_RECORDS`]. At least 1.
    pub fn compact_after_records(mut self, records: u64) -> Self {
        self.config.compact_after_records = records.max(1);
        self
    }

    /// Compacts once the journal holds this many bytes. Default
    /// [`DEFAULT_COMPACT_AFTER_BYTES`]. At least 1.
    pub fn compact_after_bytes(mut self, bytes: u64) -> Self {
        self.config.compact_after_bytes = bytes.max(1);
        self
    }

    /// The queue bounds of the in-memory queue compaction replays the journal into. Default
    /// `QueueConfig::default()`, which is right whatever bounds the executor uses: replay
    /// checks structure, not bounds (`cairn_queue::Queue::apply`), and compaction only
    /// replays, so this setting changes neither what compaction accepts nor the snapshot
    /// it writes. There is no need to match the executor's `ExecutorConfig::queue`.
    pub fn queue_config(mut self, config: QueueConfig) -> Self {
        self.config.queue_config = config;
        self
    }

    /// The I/O layer. Default [`StdFilesystem`]; a crash harness passes its own.
    pub fn filesystem(mut self, fs: Arc<dyn Filesystem>) -> Self {
        self.fs = fs;
        self
    }

    /// Creates `<root>/runs` and `<root>/quarantine` (mode 0700) when missing, and deletes
    /// the hidden folders that removals cut short by a crash left in `<root>/runs`.
    ///
    /// # Errors
    ///
    /// `Error::InvalidSetting` when `root` is empty (say `.` for the current folder);
    /// `Error::Io` when the directories cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::Error;
    /// use cairn_checkpoint_file::FileFactory;
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let factory = FileFactory::builder(dir.path())
    ///     .compact_after_records(1_000)
    ///     .build()?;
    /// assert!(dir.path().join("runs").is_dir());
    /// assert_eq!(factory.quarantine_dir(), dir.path().join("quarantine"));
    /// // An empty path is refused before anything is made.
    /// let refused = FileFactory::builder("").build();
    /// assert!(matches!(refused, Err(Error::InvalidSetting { .. })));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn build(self) -> Result<FileFactory> {
        // An empty path would put `runs/` in the current folder and then fail to sync its
        // parent (`""`), half set up: refused before anything is made.
        if self.root.as_os_str().is_empty() {
            return Err(Error::InvalidSetting {
                reason: "the state folder path is empty; give a folder (`.` for the current one)"
                    .to_owned(),
            });
        }
        let store = Store {
            fs: self.fs,
            root: self.root,
            left_in_place: Default::default(),
        };
        store.prepare()?;
        Ok(FileFactory {
            store: Arc::new(store),
            config: self.config,
        })
    }
}

impl FileFactory {
    /// A builder over `root` with the defaults: `Durability::Sync`, compaction after
    /// 10,000 records or 8 MiB, the real file system.
    pub fn builder(root: impl AsRef<Path>) -> FileFactoryBuilder {
        FileFactoryBuilder {
            root: root.as_ref().to_path_buf(),
            fs: Arc::new(StdFilesystem),
            config: WriterConfig {
                durability: Durability::Sync,
                compact_after_records: DEFAULT_COMPACT_AFTER_RECORDS,
                compact_after_bytes: DEFAULT_COMPACT_AFTER_BYTES,
                queue_config: QueueConfig::default(),
            },
        }
    }

    /// A factory over [`DEFAULT_ROOT`] in the current directory, with the defaults.
    ///
    /// # Errors
    ///
    /// `Error::Io` when the directories cannot be created.
    pub fn open_default() -> Result<FileFactory> {
        FileFactory::builder(DEFAULT_ROOT).build()
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.store.root
    }

    /// The folder of a run (whether or not it exists).
    pub fn run_dir(&self, run_id: &RunId) -> PathBuf {
        self.store.run_dir(run_id)
    }

    /// Where quarantined runs are moved.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.store.quarantine_dir()
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|err| Error::Backend {
                backend: "file",
                source: Box::new(err),
            })?
    }

    fn writer(
        &self,
        run_id: RunId,
        lock: Box<dyn crate::fs::FsFile>,
        journal: crate::store::JournalFile,
        start: Position,
    ) -> FileCheckpointer {
        FileCheckpointer::new(
            Arc::clone(&self.store),
            run_id,
            self.config.clone(),
            lock,
            journal,
            start,
        )
    }
}

#[async_trait]
impl CheckpointerFactory for FileFactory {
    async fn begin(&self, meta: RunMeta) -> Result<Box<dyn Checkpointer>> {
        let run_id = meta.run_id.clone();
        let (lock, journal) = self
            .blocking(move |store| {
                let lock = store.begin(&meta)?;
                let path = store.run_dir(&meta.run_id).join(crate::store::JOURNAL_FILE);
                let journal = store.open_journal(&path)?;
                Ok((lock, journal))
            })
            .await?;
        let start = Position {
            next_seq: 1,
            journal_len: 0,
            records_after_snapshot: 0,
            covers_seq: 0,
            snapshot_len: 0,
            fresh: true,
        };
        Ok(Box::new(self.writer(run_id, lock, journal, start)))
    }

    async fn open(&self, run_id: &RunId) -> Result<Option<Opened>> {
        let id = run_id.clone();
        let Some(OpenedRun {
            lock,
            journal,
            state,
        }) = self.blocking(move |store| store.open(&id)).await?
        else {
            return Ok(None);
        };
        let start = Position {
            next_seq: state.next_seq,
            journal_len: state.journal_len,
            records_after_snapshot: state.records_after_snapshot,
            covers_seq: state.covers_seq,
            snapshot_len: state.snapshot_len,
            fresh: false,
        };
        let checkpointer = self.writer(run_id.clone(), lock, journal, start);
        Ok(Some(Opened {
            checkpointer: Box::new(checkpointer),
            recovered: Recovered {
                meta: state.meta,
                snapshot: state.snapshot,
                events: state.events,
                torn_tail: state.torn_tail,
            },
        }))
    }

    async fn peek(&self, run_id: &RunId) -> Result<Option<Recovered>> {
        let id = run_id.clone();
        self.blocking(move |store| store.peek(&id)).await
    }

    async fn peek_live(&self, run_id: &RunId) -> Result<Option<Recovered>> {
        let id = run_id.clone();
        self.blocking(move |store| store.peek_live(&id)).await
    }

    async fn left_in_place(&self) -> Result<Vec<LeftInPlaceRun>> {
        Ok(self.store.left_in_place_now().into_values().collect())
    }

    async fn load_meta(&self, run_id: &RunId) -> Result<Option<RunMeta>> {
        let id = run_id.clone();
        self.blocking(move |store| store.load_meta(&id)).await
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunMeta>> {
        let filter = filter.clone();
        self.blocking(move |store| store.list(&filter)).await
    }

    async fn compare_and_swap_status(
        &self,
        run_id: &RunId,
        from: RunStatus,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        let id = run_id.clone();
        self.blocking(move |store| store.compare_and_swap(&id, from, to))
            .await
    }

    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        let id = run_id.clone();
        self.blocking(move |store| store.claim(&id, from, expected_epoch))
            .await
    }

    async fn is_held(&self, run_id: &RunId) -> Result<bool> {
        let id = run_id.clone();
        self.blocking(move |store| store.is_held(&id)).await
    }

    async fn quarantine(&self, run_id: &RunId, reason: &str) -> Result<Quarantined> {
        let id = run_id.clone();
        let reason = reason.to_owned();
        let location = self
            .blocking(move |store| store.quarantine(&id, &reason))
            .await?;
        Ok(Quarantined {
            run_id: run_id.clone(),
            location,
        })
    }

    async fn remove_terminal(&self, run_id: &RunId) -> Result<RunMeta> {
        let id = run_id.clone();
        self.blocking(move |store| store.remove_terminal(&id)).await
    }

    async fn append_audit(&self, run_id: &RunId, record: &AuditRecord) -> Result<()> {
        let id = run_id.clone();
        let record = record.clone();
        self.blocking(move |store| store.append_audit(&id, &record))
            .await
    }

    async fn list_quarantined(&self) -> Result<Vec<QuarantinedRun>> {
        self.blocking(|store| store.list_quarantined()).await
    }

    async fn read_audit(&self, run_id: &RunId) -> Result<Vec<AuditRecord>> {
        let id = run_id.clone();
        self.blocking(move |store| store.read_audit(&id)).await
    }
}
