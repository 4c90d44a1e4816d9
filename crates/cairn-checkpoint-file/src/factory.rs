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
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Durability, RunId, RunMeta};
    /// use cairn_checkpoint_file::FileFactory;
    /// use cairn_queue::{Event, Timestamp};
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let root = tempfile::tempdir()?;
    /// // No fsync: an append survives a process crash, but not a power loss.
    /// let factory = FileFactory::builder(root.path()).durability(Durability::None).build()?;
    /// let id = RunId::new("scratch")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// let event = Event::PhaseStarted { index: 0, name: "fetch".into() };
    /// run.append(std::slice::from_ref(&event)).await?;
    /// drop(run);
    /// // The append was written to the journal, so the next open reads it back.
    /// let opened = factory.open(&id).await?.expect("the run exists");
    /// assert_eq!(opened.recovered.events, vec![event]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn durability(mut self, durability: Durability) -> Self {
        self.config.durability = durability;
        self
    }

    /// Compacts (snapshot, then journal truncated) once this many records follow the latest
    /// snapshot. Default [`DEFAULT_COMPACT_AFTER_RECORDS`]. At least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, RunId, RunMeta};
    /// use cairn_checkpoint_file::FileFactory;
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let root = tempfile::tempdir()?;
    /// let factory = FileFactory::builder(root.path()).compact_after_records(2).build()?;
    /// let id = RunId::new("small")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// let mut queue = Queue::new(QueueConfig::default());
    /// for name in ["fetch", "build"] {
    ///     queue.enqueue(TaskSpec::new(name), EnqueuedBy::Root, Timestamp(1))?;
    /// }
    /// run.append(&queue.take_events()).await?;
    /// // Dropping the writer waits for the compaction that append started.
    /// drop(run);
    /// let recovered = factory.peek(&id).await?.expect("the run exists");
    /// assert!(recovered.snapshot.is_some());
    /// assert!(recovered.events.is_empty());
    /// assert_eq!(recovered.queue(&QueueConfig::default())?.snapshot(), queue.snapshot());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn compact_after_records(mut self, records: u64) -> Self {
        self.config.compact_after_records = records.max(1);
        self
    }

    /// Compacts once the journal holds this many bytes. Default
    /// [`DEFAULT_COMPACT_AFTER_BYTES`]. At least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, RunId, RunMeta};
    /// use cairn_checkpoint_file::{DEFAULT_COMPACT_AFTER_BYTES, FileFactory};
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// // The same append, under the default threshold and under a one-byte one.
    /// for (bytes, compacted) in [(DEFAULT_COMPACT_AFTER_BYTES, false), (1, true)] {
    ///     let root = tempfile::tempdir()?;
    ///     let factory = FileFactory::builder(root.path()).compact_after_bytes(bytes).build()?;
    ///     let id = RunId::new("r1")?;
    ///     let meta = RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0));
    ///     let run = factory.begin(meta).await?;
    ///     let mut queue = Queue::new(QueueConfig::default());
    ///     queue.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(1))?;
    ///     run.append(&queue.take_events()).await?;
    ///     drop(run);
    ///     let recovered = factory.peek(&id).await?.expect("the run exists");
    ///     assert_eq!(recovered.snapshot.is_some(), compacted);
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn compact_after_bytes(mut self, bytes: u64) -> Self {
        self.config.compact_after_bytes = bytes.max(1);
        self
    }

    /// The queue bounds of the in-memory queue compaction replays the journal into. Default
    /// `QueueConfig::default()`, which is right whatever bounds the executor uses: replay
    /// checks structure, not bounds (`cairn_queue::Queue::apply`), and compaction only
    /// replays, so this setting changes neither what compaction accepts nor the snapshot
    /// it writes. There is no need to match the executor's `ExecutorConfig::queue`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, RunId, RunMeta};
    /// use cairn_checkpoint_file::FileFactory;
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let root = tempfile::tempdir()?;
    /// // Bounds far below the run's size: compaction replays without checking them.
    /// let tight = QueueConfig { max_tasks: 1, ..QueueConfig::default() };
    /// let factory = FileFactory::builder(root.path())
    ///     .queue_config(tight)
    ///     .compact_after_records(3)
    ///     .build()?;
    /// let id = RunId::new("wide")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// let mut queue = Queue::new(QueueConfig::default());
    /// for name in ["a", "b", "c"] {
    ///     queue.enqueue(TaskSpec::new(name), EnqueuedBy::Root, Timestamp(1))?;
    /// }
    /// run.append(&queue.take_events()).await?;
    /// drop(run);
    /// let recovered = factory.peek(&id).await?.expect("the run exists");
    /// assert_eq!(recovered.snapshot, Some(queue.snapshot()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn queue_config(mut self, config: QueueConfig) -> Self {
        self.config.queue_config = config;
        self
    }

    /// The I/O layer. Default [`StdFilesystem`]; a crash harness passes its own.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io;
    /// use std::path::{Path, PathBuf};
    /// use std::sync::{Arc, Mutex};
    ///
    /// use cairn_checkpoint::{CheckpointerFactory, RunId, RunMeta};
    /// use cairn_checkpoint_file::{FileFactory, Filesystem, FsFile, OpenMode, StdFilesystem};
    /// use cairn_queue::Timestamp;
    ///
    /// // Notes where each rename went and hands every call on to the real file system.
    /// #[derive(Debug, Default)]
    /// struct Renames(Mutex<Vec<PathBuf>>);
    ///
    /// impl Filesystem for Renames {
    ///     fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
    ///         self.0.lock().unwrap().push(to.to_path_buf());
    ///         StdFilesystem.rename(from, to)
    ///     }
    ///     fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
    ///         StdFilesystem.open(path, mode)
    ///     }
    ///     fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
    ///         StdFilesystem.read(path)
    ///     }
    ///     fn create_dir(&self, path: &Path) -> io::Result<()> {
    ///         StdFilesystem.create_dir(path)
    ///     }
    ///     fn create_dir_all(&self, path: &Path) -> io::Result<()> {
    ///         StdFilesystem.create_dir_all(path)
    ///     }
    ///     fn sync_dir(&self, path: &Path) -> io::Result<()> {
    ///         StdFilesystem.sync_dir(path)
    ///     }
    ///     fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
    ///         StdFilesystem.list_dir(path)
    ///     }
    ///     fn exists(&self, path: &Path) -> io::Result<bool> {
    ///         StdFilesystem.exists(path)
    ///     }
    ///     fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
    ///         StdFilesystem.remove_dir_all(path)
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let root = tempfile::tempdir()?;
    /// let renames = Arc::new(Renames::default());
    /// let factory = FileFactory::builder(root.path()).filesystem(renames.clone()).build()?;
    /// let id = RunId::new("r1")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// // A begin stages the run's folder and renames it into place once it is complete.
    /// assert!(renames.0.lock().unwrap().contains(&factory.run_dir(&id)));
    /// # drop(run);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint_file::FileFactory;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let builder = FileFactory::builder(dir.path());
    /// // Nothing touches the disk before `build`.
    /// assert!(!dir.path().join("runs").exists());
    /// let factory = builder.build()?;
    /// assert!(dir.path().join("runs").is_dir());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```standalone_crate
    /// use std::path::Path;
    ///
    /// use cairn_checkpoint_file::{DEFAULT_ROOT, FileFactory};
    ///
    /// // The root is relative, so work in a folder of our own (this example runs alone in
    /// // its process, so moving the current folder disturbs nothing else).
    /// let dir = tempfile::tempdir()?;
    /// std::env::set_current_dir(dir.path())?;
    /// let factory = FileFactory::open_default()?;
    /// assert_eq!(factory.root(), Path::new(DEFAULT_ROOT));
    /// assert!(dir.path().join(".cairn").join("runs").is_dir());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_default() -> Result<FileFactory> {
        FileFactory::builder(DEFAULT_ROOT).build()
    }

    /// The root directory.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint_file::FileFactory;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let factory = FileFactory::builder(dir.path()).build()?;
    /// assert_eq!(factory.root(), dir.path());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn root(&self) -> &Path {
        &self.store.root
    }

    /// The folder of a run (whether or not it exists).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, RunId, RunMeta};
    /// use cairn_checkpoint_file::FileFactory;
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let root = tempfile::tempdir()?;
    /// let factory = FileFactory::builder(root.path()).build()?;
    /// let id = RunId::new("r1")?;
    /// // Named before the run exists; made by its begin.
    /// assert!(!factory.run_dir(&id).exists());
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// assert!(factory.run_dir(&id).join("meta.json").is_file());
    /// # drop(run);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn run_dir(&self, run_id: &RunId) -> PathBuf {
        self.store.run_dir(run_id)
    }

    /// Where quarantined runs are moved.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::path::Path;
    ///
    /// use cairn_checkpoint::{CheckpointerFactory, Error, RunId, RunMeta};
    /// use cairn_checkpoint_file::FileFactory;
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
    /// let root = tempfile::tempdir()?;
    /// let factory = FileFactory::builder(root.path()).build()?;
    /// let id = RunId::new("r1")?;
    /// let meta = RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0));
    /// drop(factory.begin(meta.clone()).await?);
    /// let moved = factory.quarantine(&id, "bad input").await?;
    /// // The whole folder moved, and nothing is left under `runs/`.
    /// assert!(Path::new(&moved.location).starts_with(factory.quarantine_dir()));
    /// assert!(!factory.run_dir(&id).exists());
    /// assert_eq!(factory.list_quarantined().await?.len(), 1);
    /// // A quarantined id is never begun again.
    /// let again = factory.begin(meta).await;
    /// assert!(matches!(again, Err(Error::AlreadyExists { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
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
        let start = Position::fresh();
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

    async fn compare_and_swap_status_at(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        let id = run_id.clone();
        self.blocking(move |store| store.compare_and_swap_at(&id, from, expected_epoch, to))
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
