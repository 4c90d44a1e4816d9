//! `SledFactory` and its builder: the port's factory over one sled database.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use cairn_checkpoint::{
    AuditRecord, Checkpointer, CheckpointerFactory, Durability, Error, Opened, Quarantined,
    QuarantinedRun, Recovered, Result, RunFilter, RunId, RunMeta, RunStatus, StatusConflict,
    refuse_claim_by_swap, wall_clock_now,
};

use crate::shared::Shared;
use crate::store::{MetaStep, Reading};
use crate::writer::{SledCheckpointer, WriterSlot};

/// The checkpoint factory over one sled database.
///
/// Cloning is cheap; clones share the database, the writer registry and the group flush.
/// Every factory of this process over the same database (the same path, or clones of one
/// `sled::Db`) shares one registry of live writers, so a second `open` of a run fails with
/// `Locked`. Another process cannot open the database at all while this one has it: sled
/// locks its files, so status swaps of different processes are serialized by construction.
///
/// # Behaviour beyond the port's MUSTs
///
/// - `compare_and_swap_status` and `claim` are sled's `compare_and_swap` on the metadata
///   key, retried only when the stored metadata changed in between (the rule is then
///   decided again on what is stored, so a claim whose epoch moved on loses and writes
///   nothing); they refuse to move a `completed` or `cancelled` run with `Error::Terminal`.
/// - `quarantine` of a run with a live writer fails with `Locked`.
/// - `load_meta`, `compare_and_swap_status` and `claim` report damaged metadata as `Corruption`
///   without moving it; `list` skips it. Only `open` (and `load`) quarantine.
/// - Cut torn records go to the `cairn/cut` tree, quarantined state to `cairn/quarantine`;
///   neither is ever deleted.
/// - `remove_terminal` deletes a `completed` or `cancelled` run's metadata, snapshot,
///   journal and audit records in one sled transaction under the run's writer slot, then
///   flushes as the factory's `Durability` says; its cut records stay in `cairn/cut`.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{Checkpointer, CheckpointerFactory, Durability, RunId, RunMeta};
/// use cairn_checkpoint_sled::SledFactory;
/// use cairn_queue::Timestamp;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let factory = SledFactory::builder()
///     .path(dir.path().join("runs.sled"))
///     .durability(Durability::Sync)
///     .build()?;
/// let run_id = RunId::new("r1")?;
/// let run = factory
///     .begin(RunMeta::new(run_id.clone(), "site", "default", "build it", Timestamp(0)))
///     .await?;
/// run.append(&[]).await?;
/// drop(run);
/// let opened = factory.open(&run_id).await?.expect("the run was begun");
/// assert!(opened.recovered.events.is_empty());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SledFactory {
    pub(crate) shared: Arc<Shared>,
    durability: Durability,
}

/// Where the builder finds its database.
#[derive(Debug)]
enum Location {
    Path(PathBuf),
    Db(sled::Db, PathBuf),
}

/// Builds a `SledFactory`: a path or an existing `sled::Db`, and a `Durability`.
#[derive(Debug)]
pub struct SledFactoryBuilder {
    location: Option<Location>,
    durability: Durability,
}

impl SledFactoryBuilder {
    /// Opens (or creates) the sled database in the directory `path`.
    ///
    /// If this process already has that database open through another factory, the new
    /// factory shares it. If the host opened it with sled directly, sled's file lock refuses
    /// a second open: pass the host's handle with `db` instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, RunFilter, RunId, RunMeta};
    /// use cairn_checkpoint_sled::SledFactory;
    /// use cairn_queue::Timestamp;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("runs.sled");
    /// let factory = SledFactory::builder().path(&path).build()?;
    /// // A second factory over the same folder shares the open database instead of failing.
    /// let other = SledFactory::builder().path(&path).build()?;
    /// let id = RunId::new("r1")?;
    /// drop(factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?);
    /// let listed = other.list(&RunFilter::default()).await?;
    /// assert_eq!(listed.len(), 1);
    /// assert_eq!(listed[0].run_id, id);
    /// # Ok(()) }
    /// ```
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.location = Some(Location::Path(path.into()));
        self
    }

    /// Uses a database the host already opened from the folder `dir` (hosts that already
    /// run sled).
    ///
    /// cairn keeps its data in its own trees (named `cairn/...`, see `layout`) and never
    /// touches the host's trees. It needs `dir` because sled 0.34.7's `Db::flush` does not
    /// fsync: after each flush cairn fsyncs sled's files in `dir` itself. `build` checks that
    /// `dir` holds this database's files, not only some open sled database's: it writes a
    /// 256 KiB value to cairn's session tree, which sled stores as a file in
    /// `<its folder>/blobs/` at once, looks for that file in `dir`, and removes the value
    /// (sled deletes the file later). A handle this process already registered through
    /// another factory keeps the folder it was registered with.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, RunId, RunMeta};
    /// use cairn_checkpoint_sled::{Error, SledFactory, layout};
    /// use cairn_queue::Timestamp;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let folder = dir.path().join("host.sled");
    /// let db = sled::open(&folder)?;
    /// db.insert("host-key", "host-value")?;
    /// // Any other folder is refused: cairn could not fsync the database's files there.
    /// let elsewhere = SledFactory::builder().db(db.clone(), dir.path()).build();
    /// assert!(matches!(elsewhere, Err(Error::NotOpenDatabase { .. })));
    ///
    /// let factory = SledFactory::builder().db(db.clone(), &folder).build()?;
    /// let id = RunId::new("r1")?;
    /// drop(factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?);
    /// // The run went to cairn's own tree; the host's data is as it was.
    /// assert!(db.open_tree(layout::RUNS_TREE)?.contains_key(id.as_str())?);
    /// assert_eq!(db.get("host-key")?.as_deref(), Some(&b"host-value"[..]));
    /// # Ok(()) }
    /// ```
    pub fn db(mut self, db: sled::Db, dir: impl Into<PathBuf>) -> Self {
        self.location = Some(Location::Db(db, dir.into()));
        self
    }

    /// How durable an acknowledged write is. The default is `Durability::Sync`.
    ///
    /// Under `Durability::Group` a lone writer flushes at once, as under `Sync`; a flush
    /// waits for company (at most `max_delay`) only while fewer writes wait than earlier
    /// flushes covered (the crate docs, "Layout and durability", say how).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Durability, RunId, RunMeta};
    /// use cairn_checkpoint_sled::SledFactory;
    /// use cairn_queue::{Event, Timestamp};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// // No fsync: each write is handed to the OS (it survives a killed process, not a power cut).
    /// let factory = SledFactory::builder()
    ///     .path(dir.path().join("runs.sled"))
    ///     .durability(Durability::None)
    ///     .build()?;
    /// assert_eq!(factory.durability(), Durability::None);
    /// let id = RunId::new("scratch")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// let event = Event::PhaseStarted { index: 0, name: "fetch".into() };
    /// run.append(std::slice::from_ref(&event)).await?;
    /// drop(run);
    /// // The database reads back what it was given.
    /// let opened = factory.open(&id).await?.expect("the run exists");
    /// assert_eq!(opened.recovered.events, vec![event]);
    /// # Ok(()) }
    /// ```
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Opens the database and its trees.
    ///
    /// # Errors
    ///
    /// `Error::NoLocation` when neither `path` nor `db` was given; `Error::InUse` when another
    /// process holds the database (after a wait of up to five seconds for its lock);
    /// `Error::Open` when sled cannot open it otherwise; `Error::NotOpenDatabase` when the
    /// folder given with `db` holds no open sled database, or another one than `db`;
    /// `Error::Setup` when the cairn trees cannot be opened.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint_sled::{Error, SledFactory};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let folder = dir.path().join("runs.sled");
    /// // A builder told neither `path` nor `db` has nothing to open.
    /// assert!(matches!(SledFactory::builder().build(), Err(Error::NoLocation)));
    /// let factory = SledFactory::builder().path(&folder).build()?;
    /// assert!(folder.is_dir());
    /// # drop(factory);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn build(self) -> std::result::Result<SledFactory, crate::Error> {
        let shared = match self.location {
            None => return Err(crate::Error::NoLocation),
            Some(Location::Path(path)) => Shared::for_path(&path)?,
            Some(Location::Db(db, dir)) => Shared::for_db(db, &dir)?,
        };
        Ok(SledFactory {
            shared,
            durability: self.durability,
        })
    }
}

impl SledFactory {
    /// A builder with no location and `Durability::Sync`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::Durability;
    /// use cairn_checkpoint_sled::SledFactory;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let factory = SledFactory::builder().path(dir.path().join("runs.sled")).build()?;
    /// assert_eq!(factory.durability(), Durability::Sync);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> SledFactoryBuilder {
        SledFactoryBuilder {
            location: None,
            durability: Durability::Sync,
        }
    }

    /// Opens the database in `path` with `Durability::Sync`.
    ///
    /// # Errors
    ///
    /// As `SledFactoryBuilder::build`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, RunId, RunMeta};
    /// use cairn_checkpoint_sled::SledFactory;
    /// use cairn_queue::{Event, Timestamp};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("runs.sled");
    /// let id = RunId::new("r1")?;
    /// let event = Event::PhaseStarted { index: 0, name: "fetch".into() };
    /// {
    ///     let factory = SledFactory::open(&path)?;
    ///     let meta = RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0));
    ///     let run = factory.begin(meta).await?;
    ///     run.append(std::slice::from_ref(&event)).await?;
    /// }
    /// // Every handle is gone, as after a restart: the database opens again with the run in it.
    /// let factory = SledFactory::open(&path)?;
    /// let opened = factory.open(&id).await?.expect("the run exists");
    /// assert_eq!(opened.recovered.events, vec![event]);
    /// # Ok(()) }
    /// ```
    pub fn open(path: impl AsRef<Path>) -> std::result::Result<SledFactory, crate::Error> {
        SledFactory::builder()
            .path(path.as_ref().to_path_buf())
            .build()
    }

    /// The underlying database handle.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, RunId, RunMeta};
    /// use cairn_checkpoint_sled::{SledFactory, layout};
    /// use cairn_queue::Timestamp;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let factory = SledFactory::open(dir.path().join("runs.sled"))?;
    /// let id = RunId::new("r1")?;
    /// drop(factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?);
    /// // A host may read cairn's trees: the metadata is checksummed JSON under the run id.
    /// let stored = factory.db().open_tree(layout::RUNS_TREE)?.get(id.as_str())?.expect("stored");
    /// let meta: RunMeta = serde_json::from_slice(layout::unseal(&stored).expect("intact"))?;
    /// assert_eq!(meta.run_id, id);
    /// # Ok(()) }
    /// ```
    pub fn db(&self) -> &sled::Db {
        &self.shared.db
    }

    /// The durability of this factory's writes.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use cairn_checkpoint::Durability;
    /// use cairn_checkpoint_sled::SledFactory;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let group = Durability::Group { max_delay: Duration::from_millis(2) };
    /// let factory = SledFactory::builder()
    ///     .path(dir.path().join("runs.sled"))
    ///     .durability(group)
    ///     .build()?;
    /// assert_eq!(factory.durability(), group);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn durability(&self) -> Durability {
        self.durability
    }

    async fn make_durable(&self) -> Result<()> {
        self.shared.make_durable(self.durability).await
    }
}

#[async_trait]
impl CheckpointerFactory for SledFactory {
    async fn begin(&self, meta: RunMeta) -> Result<Box<dyn Checkpointer>> {
        let run_id = meta.run_id.clone();
        let already = || Error::AlreadyExists {
            run_id: run_id.clone(),
        };
        // A live writer means the run exists (or is being begun right now).
        let slot = WriterSlot::acquire(&self.shared, &run_id).map_err(|_| already())?;
        if self.shared.is_quarantined(&run_id)? || self.shared.has_state(&run_id)? {
            return Err(already());
        }
        if !self.shared.create_meta(&meta)? {
            return Err(already());
        }
        self.make_durable().await?;
        Ok(Box::new(SledCheckpointer::new(slot, self.durability, 0)))
    }

    async fn open(&self, run_id: &RunId) -> Result<Option<Opened>> {
        let slot = WriterSlot::acquire(&self.shared, run_id)?;
        let Some(state) = self
            .shared
            .recover(run_id, self.durability, Reading::Repair)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Opened {
            checkpointer: Box::new(SledCheckpointer::new(slot, self.durability, state.next_seq)),
            recovered: state.recovered,
        }))
    }

    async fn peek(&self, run_id: &RunId) -> Result<Option<Recovered>> {
        // Held only while reading, so a live writer is refused with `Locked` and no writer
        // starts halfway through the read.
        let _slot = WriterSlot::acquire(&self.shared, run_id)?;
        let state = self
            .shared
            .recover(run_id, self.durability, Reading::LookOnly)
            .await?;
        Ok(state.map(|state| state.recovered))
    }

    async fn load_meta(&self, run_id: &RunId) -> Result<Option<RunMeta>> {
        self.shared.read_meta(run_id)
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunMeta>> {
        let (all, bad) = self.shared.all_meta()?;
        // Bad or foreign metadata would otherwise stay invisible forever (no filter can match
        // it), so it is quarantined where it is found; a run a live writer holds is left alone.
        for (run_id, problem) in bad {
            match self.quarantine(&run_id, &problem).await {
                Ok(moved) => cairn_telemetry::emit::state_quarantined(
                    run_id.as_str(),
                    &problem,
                    &moved.location,
                ),
                Err(Error::Locked { .. } | Error::NotFound { .. }) => {}
                Err(other) => return Err(other),
            }
        }
        let mut runs: Vec<RunMeta> = all
            .into_iter()
            .filter(|meta| filter.matches(meta))
            .collect();
        runs.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.run_id.cmp(&b.run_id))
        });
        Ok(runs)
    }

    async fn compare_and_swap_status(
        &self,
        run_id: &RunId,
        from: RunStatus,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        // A swap to `running` is a claim: decided and written while no writer can open the
        // run, and refused while one holds it.
        let swapped = self.shared.with_holder(run_id, |held| {
            self.shared.swap_meta(run_id, |meta| {
                // The shared rule: a conflict is a value; a swap out of a terminal status is
                // an error.
                let mut next = meta.clone();
                Ok(
                    match next.swap_status_unless_held(from, to, wall_clock_now(), held)? {
                        Ok(swapped) => MetaStep::Write(Box::new(swapped)),
                        Err(conflict) => MetaStep::Keep(conflict),
                    },
                )
            })
        })?;
        if swapped.is_ok() {
            self.make_durable().await?;
        }
        Ok(swapped)
    }

    async fn compare_and_swap_status_at(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        refuse_claim_by_swap(run_id, to)?;
        // Never a claim, so no writer is looked for (the caller may hold the run itself).
        // `swap_meta` is a compare-and-swap on the metadata key: it and a claim or swap at
        // the same epoch cannot both win, and a lost one writes nothing.
        let swapped = self.shared.swap_meta(run_id, |meta| {
            let mut next = meta.clone();
            Ok(
                match next.swap_status_at(from, expected_epoch, to, wall_clock_now())? {
                    Ok(swapped) => MetaStep::Write(Box::new(swapped)),
                    Err(conflict) => MetaStep::Keep(conflict),
                },
            )
        })?;
        if swapped.is_ok() {
            self.make_durable().await?;
        }
        Ok(swapped)
    }

    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        // Decided and written while no writer can open the run (`Shared::with_holder`), and
        // refused while one holds it.
        let claimed = self.shared.with_holder(run_id, |held| {
            self.shared.swap_meta(run_id, |meta| {
                // The shared rule, compared on the status and the lease epoch; a lost claim
                // is kept as a value and nothing is written.
                let mut next = meta.clone();
                Ok(
                    match next.claim_unless_held(from, expected_epoch, wall_clock_now(), held)? {
                        Ok(claimed) => MetaStep::Write(Box::new(claimed)),
                        Err(conflict) => MetaStep::Keep(conflict),
                    },
                )
            })
        })?;
        if claimed.is_ok() {
            self.make_durable().await?;
        }
        Ok(claimed)
    }

    async fn is_held(&self, run_id: &RunId) -> Result<bool> {
        Ok(self.shared.holder(run_id).is_some())
    }

    async fn quarantine(&self, run_id: &RunId, reason: &str) -> Result<Quarantined> {
        let slot = WriterSlot::acquire(&self.shared, run_id)?;
        let location = self.shared.quarantine_and_audit(run_id, reason)?;
        drop(slot);
        let Some(location) = location else {
            return Err(Error::NotFound {
                run_id: run_id.clone(),
            });
        };
        self.make_durable().await?;
        Ok(Quarantined {
            run_id: run_id.clone(),
            location,
        })
    }

    async fn remove_terminal(&self, run_id: &RunId) -> Result<RunMeta> {
        // The slot keeps every `open` out until the keys are gone and durable.
        let slot = WriterSlot::acquire(&self.shared, run_id)?;
        // Damaged metadata is `Corruption` here and stays for `open` to quarantine; a
        // quarantined run has no metadata key, so it is `NotFound` and its state untouched.
        let meta = self
            .shared
            .read_meta(run_id)?
            .ok_or_else(|| Error::NotFound {
                run_id: run_id.clone(),
            })?;
        if !meta.status.is_terminal() {
            return Err(Error::NotTerminal {
                run_id: run_id.clone(),
                status: meta.status,
            });
        }
        // A terminal status never changes again (swaps, claims and finishes refuse it), so
        // the check above still holds when the transaction runs.
        self.shared.remove_run(run_id)?;
        self.make_durable().await?;
        drop(slot);
        Ok(meta)
    }

    async fn list_quarantined(&self) -> Result<Vec<QuarantinedRun>> {
        self.shared.quarantined_runs()
    }

    async fn append_audit(&self, run_id: &RunId, record: &AuditRecord) -> Result<()> {
        // Audit keys are not tied to a run's other keys, so without this check a record for
        // an unknown or removed id would start a log that a later run of that id inherits.
        // The check and the append are one step against `remove_terminal`.
        self.shared.append_audit_of_stored(run_id, record)?;
        self.make_durable().await
    }

    async fn read_audit(&self, run_id: &RunId) -> Result<Vec<AuditRecord>> {
        self.shared.audit_records(run_id)
    }
}
