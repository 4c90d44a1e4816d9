//! The in-memory adapter: runs live as long as the factory (and its clones) do.
//!
//! Meant for tests of code that drives the port (executor, resume policy, scheduler) and for
//! hosts that want port semantics without durability. It honours every contract that does
//! not need bytes on a disk: the one-writer lock within the process, status compare-and-swap
//! and claims under a mutex, quarantine that moves state aside, removal of finished runs,
//! and the audit log.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use cairn_queue::{Event, SNAPSHOT_FORMAT_VERSION, Snapshot};

use crate::audit::{AuditAction, AuditRecord};
use crate::error::{Error, Result};
use crate::meta::{
    META_FORMAT_VERSION, Owner, RunError, RunFilter, RunId, RunMeta, RunStatus,
    refuse_claim_by_swap,
};
use crate::port::{
    Checkpointer, CheckpointerFactory, Opened, Quarantined, QuarantinedRun, Recovered,
    StatusConflict,
};
use crate::wall_clock_now;

/// A factory that keeps every run in memory for as long as it (or any clone) lives.
///
/// Clones share state, so a clone behaves like a second process over the same store: it
/// sees the same runs and is refused a run another clone's writer holds.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId, RunMeta};
/// use cairn_queue::Timestamp;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let factory = MemoryFactory::new();
/// let id = RunId::new("r1")?;
/// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
/// run.append(&[]).await?;
/// drop(run);
/// let opened = factory.open(&id).await?.expect("the run exists");
/// assert!(opened.recovered.events.is_empty());
/// # Ok::<(), cairn_checkpoint::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct MemoryFactory {
    store: Arc<Mutex<MemoryStore>>,
}

/// Everything a `MemoryFactory` keeps.
#[derive(Debug, Default)]
struct MemoryStore {
    runs: BTreeMap<RunId, StoredRun>,
    /// Quarantined runs, keyed by location; never removed.
    quarantine: BTreeMap<String, StoredRun>,
    /// Hands out writer tokens so a stale writer can tell it no longer owns a run.
    next_token: u64,
}

/// One run's stored state.
#[derive(Debug, Clone)]
struct StoredRun {
    meta: RunMeta,
    snapshot: Option<Snapshot>,
    events: Vec<Event>,
    audit: Vec<AuditRecord>,
    /// The token of the live writer, if any.
    writer: Option<u64>,
}

impl MemoryFactory {
    /// An empty store.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory};
    /// use cairn_checkpoint::{RunFilter, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// assert!(factory.list(&RunFilter::default()).await?.is_empty());
    /// // A clone shares the store, as a second process over the same folder would.
    /// let other = factory.clone();
    /// other.begin(RunMeta::new(RunId::new("r1")?, "wf", "scope", "", Timestamp(0))).await?;
    /// assert_eq!(factory.list(&RunFilter::default()).await?.len(), 1);
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    pub fn new() -> MemoryFactory {
        MemoryFactory::default()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryStore> {
        lock_store(&self.store)
    }

    /// Replaces a run's stored metadata as is, without any check, so tests can plant state
    /// a real adapter would find on disk (a wrong format version, a foreign run id, ...).
    /// Creates the run if it does not exist. Not part of the port.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let mut old = RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0));
    /// old.format_version = 0;
    /// factory.plant_meta(&id, old);
    /// // `open` quarantines metadata of a format this build does not read.
    /// let opened = factory.open(&id).await;
    /// assert!(matches!(opened, Err(Error::VersionMismatch { found: 0, .. })));
    /// assert_eq!(factory.list_quarantined().await?.len(), 1);
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    pub fn plant_meta(&self, run_id: &RunId, meta: RunMeta) {
        let mut store = self.lock();
        match store.runs.get_mut(run_id) {
            Some(run) => run.meta = meta,
            None => {
                store.runs.insert(
                    run_id.clone(),
                    StoredRun {
                        meta,
                        snapshot: None,
                        events: Vec::new(),
                        audit: Vec::new(),
                        writer: None,
                    },
                );
            }
        }
    }

    /// Drops a run's stored state as is, without any check (status, writer, metadata), so
    /// tests can stand in for an adapter that breaks `remove_terminal`'s rules. Returns the
    /// metadata it had. Not part of the port.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory};
    /// use cairn_checkpoint::{RunId, RunMeta, RunStatus};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let run = factory.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
    /// // Unlike `remove_terminal`, it ignores the live writer and the `running` status.
    /// let gone = factory.discard_run(&id);
    /// assert_eq!(gone.map(|meta| meta.status), Some(RunStatus::Running));
    /// assert!(factory.load_meta(&id).await?.is_none());
    /// // The writer finds its run gone.
    /// assert!(matches!(run.append(&[]).await, Err(Error::NotFound { .. })));
    /// assert!(factory.discard_run(&id).is_none());
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    pub fn discard_run(&self, run_id: &RunId) -> Option<RunMeta> {
        self.lock().runs.remove(run_id).map(|run| run.meta)
    }

    /// Reads a run's stored metadata as is, without any check. Not part of the port.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, Error, MemoryFactory};
    /// use cairn_checkpoint::{META_FORMAT_VERSION, RunId, RunMeta};
    /// use cairn_queue::Timestamp;
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let factory = MemoryFactory::new();
    /// let id = RunId::new("r1")?;
    /// let mut newer = RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0));
    /// newer.format_version = META_FORMAT_VERSION + 1;
    /// factory.plant_meta(&id, newer);
    /// // The port refuses what a newer build wrote; the test hook reads it as it is.
    /// assert!(matches!(factory.load_meta(&id).await, Err(Error::NewerFormat { .. })));
    /// let stored = factory.stored_meta(&id).map(|meta| meta.format_version);
    /// assert_eq!(stored, Some(META_FORMAT_VERSION + 1));
    /// assert!(factory.stored_meta(&RunId::new("unknown")?).is_none());
    /// # Ok::<(), Error>(())
    /// # }).unwrap();
    /// ```
    pub fn stored_meta(&self, run_id: &RunId) -> Option<RunMeta> {
        self.lock().runs.get(run_id).map(|run| run.meta.clone())
    }
}

/// Locks the store, recovering from a poisoned mutex: every critical section leaves the
/// store consistent before it can panic, so the data is still good.
fn lock_store(store: &Mutex<MemoryStore>) -> MutexGuard<'_, MemoryStore> {
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `Locked` while a writer holds `run`: reads and moves wait for the writer to let go.
fn refuse_held(run_id: &RunId, run: &StoredRun) -> Result<()> {
    match run.writer {
        Some(_) => Err(Error::Locked {
            run_id: run_id.clone(),
            holder: holder_text(),
        }),
        None => Ok(()),
    }
}

fn holder_text() -> String {
    format!("{} (same process, memory store)", Owner::current())
}

/// Moves a run aside and audits it; returns the location.
fn quarantine_locked(store: &mut MemoryStore, run_id: &RunId, reason: &str) -> Option<String> {
    let mut run = store.runs.remove(run_id)?;
    let base = format!("memory:quarantine/{run_id}-{}", wall_clock_now().0);
    let mut location = base.clone();
    let mut n = 1;
    while store.quarantine.contains_key(&location) {
        location = format!("{base}-{n}");
        n += 1;
    }
    run.writer = None;
    run.audit.push(
        AuditRecord::new(
            wall_clock_now(),
            run_id.clone(),
            AuditAction::Quarantined,
            format!("run {run_id} quarantined: {reason}"),
        )
        .with_detail(serde_json::json!({ "location": location, "reason": reason })),
    );
    store.quarantine.insert(location.clone(), run);
    Some(location)
}

/// The latest quarantined state of `run_id`, if any.
fn latest_quarantined<'a>(store: &'a mut MemoryStore, run_id: &RunId) -> Option<&'a mut StoredRun> {
    store
        .quarantine
        .values_mut()
        .filter(|run| run_id_of_quarantined(run) == *run_id)
        .last()
}

fn run_id_of_quarantined(run: &StoredRun) -> RunId {
    // Audit records always carry the id the run was stored under, even when its planted
    // metadata names another run, so the last Quarantined record identifies it.
    run.audit
        .iter()
        .rev()
        .find(|rec| rec.action == AuditAction::Quarantined)
        .map(|rec| rec.run_id.clone())
        .unwrap_or_else(|| run.meta.run_id.clone())
}

fn is_quarantined(store: &MemoryStore, run_id: &RunId) -> bool {
    store
        .quarantine
        .values()
        .any(|run| run_id_of_quarantined(run) == *run_id)
}

#[async_trait]
impl CheckpointerFactory for MemoryFactory {
    async fn begin(&self, meta: RunMeta) -> Result<Box<dyn Checkpointer>> {
        let mut store = self.lock();
        let run_id = meta.run_id.clone();
        if store.runs.contains_key(&run_id) || is_quarantined(&store, &run_id) {
            return Err(Error::AlreadyExists { run_id });
        }
        store.next_token += 1;
        let token = store.next_token;
        let audit = vec![AuditRecord::new(
            wall_clock_now(),
            run_id.clone(),
            AuditAction::Begun,
            format!("run {run_id} begun"),
        )];
        store.runs.insert(
            run_id.clone(),
            StoredRun {
                meta,
                snapshot: None,
                events: Vec::new(),
                audit,
                writer: Some(token),
            },
        );
        Ok(Box::new(MemoryCheckpointer {
            run_id,
            token,
            store: Arc::clone(&self.store),
        }))
    }

    async fn open(&self, run_id: &RunId) -> Result<Option<Opened>> {
        let mut store = self.lock();
        let Some(run) = store.runs.get(run_id) else {
            return Ok(None);
        };
        refuse_held(run_id, run)?;
        let meta_version = run.meta.format_version;
        let found_id = run.meta.run_id.clone();
        let snapshot_version = run.snapshot.as_ref().map(|s| s.format_version);
        // A newer build's state is not bad: refused, left where it is.
        let newer = [
            ("meta", Some(meta_version), META_FORMAT_VERSION),
            ("snapshot", snapshot_version, SNAPSHOT_FORMAT_VERSION),
        ];
        for (file, found, expected) in newer {
            if let Some(found) = found.filter(|found| *found > expected) {
                return Err(newer_format(run_id, file, found, expected));
            }
        }
        if meta_version != META_FORMAT_VERSION {
            let reason = format!("meta format version {meta_version}");
            let location = quarantine_locked(&mut store, run_id, &reason).unwrap_or_default();
            return Err(Error::VersionMismatch {
                run_id: run_id.clone(),
                found: meta_version,
                expected: META_FORMAT_VERSION,
                quarantined_to: location,
            });
        }
        if let Some(found) = snapshot_version.filter(|v| *v != SNAPSHOT_FORMAT_VERSION) {
            let reason = format!("snapshot format version {found}");
            let location = quarantine_locked(&mut store, run_id, &reason).unwrap_or_default();
            return Err(Error::VersionMismatch {
                run_id: run_id.clone(),
                found,
                expected: SNAPSHOT_FORMAT_VERSION,
                quarantined_to: location,
            });
        }
        if found_id != *run_id {
            let reason = format!("stored state names run {found_id}");
            let location = quarantine_locked(&mut store, run_id, &reason).unwrap_or_default();
            return Err(Error::ForeignRun {
                expected: run_id.clone(),
                found: found_id.to_string(),
                quarantined_to: location,
            });
        }
        store.next_token += 1;
        let token = store.next_token;
        let run = store
            .runs
            .get_mut(run_id)
            .expect("the run was found above under the same lock");
        run.writer = Some(token);
        let recovered = Recovered {
            meta: run.meta.clone(),
            snapshot: run.snapshot.clone(),
            events: run.events.clone(),
            torn_tail: None,
        };
        Ok(Some(Opened {
            checkpointer: Box::new(MemoryCheckpointer {
                run_id: run_id.clone(),
                token,
                store: Arc::clone(&self.store),
            }),
            recovered,
        }))
    }

    async fn load_meta(&self, run_id: &RunId) -> Result<Option<RunMeta>> {
        let store = self.lock();
        let Some(run) = store.runs.get(run_id) else {
            return Ok(None);
        };
        refuse_newer(run_id, &run.meta)?;
        // Metadata of another version, or naming another run, is bad state: reported, and
        // left for `open` or `list` to quarantine, as the durable adapters do.
        if let Some(reason) = unfit_meta(run_id, &run.meta) {
            return Err(left_for_open(run_id, "meta", reason));
        }
        Ok(Some(run.meta.clone()))
    }

    async fn peek(&self, run_id: &RunId) -> Result<Option<Recovered>> {
        let store = self.lock();
        let Some(run) = store.runs.get(run_id) else {
            return Ok(None);
        };
        refuse_held(run_id, run)?;
        // `open`'s checks, in its order, but nothing is moved: a look writes nothing.
        refuse_newer(run_id, &run.meta)?;
        if let Some(found) = run
            .snapshot
            .as_ref()
            .map(|snapshot| snapshot.format_version)
            .filter(|found| *found > SNAPSHOT_FORMAT_VERSION)
        {
            return Err(newer_format(
                run_id,
                "snapshot",
                found,
                SNAPSHOT_FORMAT_VERSION,
            ));
        }
        if let Some(reason) = unfit_meta(run_id, &run.meta) {
            return Err(left_for_open(run_id, "meta", reason));
        }
        if let Some(found) = run
            .snapshot
            .as_ref()
            .map(|snapshot| snapshot.format_version)
            .filter(|found| *found != SNAPSHOT_FORMAT_VERSION)
        {
            let reason = format!("snapshot format version {found}");
            return Err(left_for_open(run_id, "snapshot", reason));
        }
        Ok(Some(Recovered {
            meta: run.meta.clone(),
            snapshot: run.snapshot.clone(),
            events: run.events.clone(),
            torn_tail: None,
        }))
    }

    async fn peek_live(&self, run_id: &RunId) -> Result<Option<Recovered>> {
        {
            let store = self.lock();
            let Some(run) = store.runs.get(run_id) else {
                return Ok(None);
            };
            // A held run's state was checked by its writer's open; the lock makes the read
            // one state the writer passed through.
            if run.writer.is_some() {
                return Ok(Some(Recovered {
                    meta: run.meta.clone(),
                    snapshot: run.snapshot.clone(),
                    events: run.events.clone(),
                    torn_tail: None,
                }));
            }
        }
        self.peek(run_id).await
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunMeta>> {
        let mut store = self.lock();
        // Metadata of another version or naming another run can never match a lookup, so it
        // is quarantined where it is found (unless a writer holds the run).
        let unmatchable: Vec<(RunId, String)> = store
            .runs
            .iter()
            .filter(|(_, run)| run.writer.is_none())
            .filter_map(|(id, run)| unfit_meta(id, &run.meta).map(|reason| (id.clone(), reason)))
            .collect();
        for (id, reason) in unmatchable {
            if let Some(location) = quarantine_locked(&mut store, &id, &reason) {
                cairn_telemetry::emit::state_quarantined(id.as_str(), &reason, &location);
            }
        }
        let mut metas: Vec<RunMeta> = store
            .runs
            .values()
            // A newer build's run is listed too, so that a lookup finds it and its `open`
            // refuses it rather than a fresh run beginning beside it.
            .filter(|run| filter.matches(&run.meta))
            .map(|run| run.meta.clone())
            .collect();
        metas.sort_by(|a, b| (a.created_at, &a.run_id).cmp(&(b.created_at, &b.run_id)));
        Ok(metas)
    }

    async fn compare_and_swap_status(
        &self,
        run_id: &RunId,
        from: RunStatus,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        let mut store = self.lock();
        let run = store.runs.get_mut(run_id).ok_or_else(|| Error::NotFound {
            run_id: run_id.clone(),
        })?;
        refuse_newer(run_id, &run.meta)?;
        // Decided under the store's mutex, which `open` takes too: no writer can come
        // between this check and the swap.
        let held = run.writer.is_some().then(holder_text);
        run.meta
            .swap_status_unless_held(from, to, wall_clock_now(), held.as_deref())
    }

    async fn compare_and_swap_status_at(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        refuse_claim_by_swap(run_id, to)?;
        let mut store = self.lock();
        let run = store.runs.get_mut(run_id).ok_or_else(|| Error::NotFound {
            run_id: run_id.clone(),
        })?;
        refuse_newer(run_id, &run.meta)?;
        // No claim, so no writer check: the status and the epoch are compared and the swap
        // made under the store's mutex.
        run.meta
            .swap_status_at(from, expected_epoch, to, wall_clock_now())
    }

    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        let mut store = self.lock();
        let run = store.runs.get_mut(run_id).ok_or_else(|| Error::NotFound {
            run_id: run_id.clone(),
        })?;
        refuse_newer(run_id, &run.meta)?;
        let held = run.writer.is_some().then(holder_text);
        run.meta
            .claim_unless_held(from, expected_epoch, wall_clock_now(), held.as_deref())
    }

    async fn is_held(&self, run_id: &RunId) -> Result<bool> {
        Ok(self
            .lock()
            .runs
            .get(run_id)
            .is_some_and(|run| run.writer.is_some()))
    }

    async fn quarantine(&self, run_id: &RunId, reason: &str) -> Result<Quarantined> {
        let mut store = self.lock();
        if store
            .runs
            .get(run_id)
            .is_some_and(|run| run.writer.is_some())
        {
            return Err(Error::Locked {
                run_id: run_id.clone(),
                holder: holder_text(),
            });
        }
        let location =
            quarantine_locked(&mut store, run_id, reason).ok_or_else(|| Error::NotFound {
                run_id: run_id.clone(),
            })?;
        Ok(Quarantined {
            run_id: run_id.clone(),
            location,
        })
    }

    async fn remove_terminal(&self, run_id: &RunId) -> Result<RunMeta> {
        let mut store = self.lock();
        // Quarantined state lives in its own map, so a quarantined id is `NotFound` here.
        let run = store.runs.get(run_id).ok_or_else(|| Error::NotFound {
            run_id: run_id.clone(),
        })?;
        refuse_held(run_id, run)?;
        if run.meta.format_version > META_FORMAT_VERSION {
            return Err(newer_format(
                run_id,
                "meta",
                run.meta.format_version,
                META_FORMAT_VERSION,
            ));
        }
        // Bad metadata is left for `open` to quarantine, never removed.
        let problem = if run.meta.format_version != META_FORMAT_VERSION {
            Some(format!("meta format version {}", run.meta.format_version))
        } else if run.meta.run_id != *run_id {
            Some(format!("stored state names run {}", run.meta.run_id))
        } else {
            None
        };
        if let Some(detail) = problem {
            return Err(Error::Corruption {
                run_id: run_id.clone(),
                file: "meta".to_owned(),
                offset: 0,
                detail: format!("{detail}; open the run to quarantine this state"),
            });
        }
        if !run.meta.status.is_terminal() {
            return Err(Error::NotTerminal {
                run_id: run_id.clone(),
                status: run.meta.status,
            });
        }
        let removed = store
            .runs
            .remove(run_id)
            .expect("the run was found above under the same lock");
        Ok(removed.meta)
    }

    async fn list_quarantined(&self) -> Result<Vec<QuarantinedRun>> {
        let store = self.lock();
        let mut listed: Vec<QuarantinedRun> = store
            .quarantine
            .iter()
            .map(|(location, run)| {
                QuarantinedRun::from_audit(
                    run_id_of_quarantined(run),
                    location.clone(),
                    &run.audit,
                    Some(run.meta.clone()),
                )
            })
            .collect();
        // Locations sort by id first; the port lists oldest quarantine first.
        listed.sort_by(|a, b| (a.at, &a.location).cmp(&(b.at, &b.location)));
        Ok(listed)
    }

    async fn append_audit(&self, run_id: &RunId, record: &AuditRecord) -> Result<()> {
        let mut store = self.lock();
        if let Some(run) = store.runs.get_mut(run_id) {
            run.audit.push(record.clone());
            return Ok(());
        }
        match latest_quarantined(&mut store, run_id) {
            Some(run) => {
                run.audit.push(record.clone());
                Ok(())
            }
            None => Err(Error::NotFound {
                run_id: run_id.clone(),
            }),
        }
    }

    async fn read_audit(&self, run_id: &RunId) -> Result<Vec<AuditRecord>> {
        let mut store = self.lock();
        if let Some(run) = store.runs.get(run_id) {
            return Ok(run.audit.clone());
        }
        Ok(latest_quarantined(&mut store, run_id)
            .map(|run| run.audit.clone())
            .unwrap_or_default())
    }
}

/// The writer of one in-memory run. Releases the run's lock when dropped.
#[derive(Debug)]
pub struct MemoryCheckpointer {
    run_id: RunId,
    token: u64,
    store: Arc<Mutex<MemoryStore>>,
}

impl MemoryCheckpointer {
    /// Runs `f` on this writer's run, or fails with `NotFound` when the run is gone (it was
    /// quarantined) or another writer took it over.
    fn with_run<T>(&self, f: impl FnOnce(&mut StoredRun) -> Result<T>) -> Result<T> {
        let mut store = lock_store(&self.store);
        match store.runs.get_mut(&self.run_id) {
            Some(run) if run.writer == Some(self.token) => f(run),
            _ => Err(Error::NotFound {
                run_id: self.run_id.clone(),
            }),
        }
    }

    fn finish(&self, status: RunStatus, error: Option<&RunError>) -> Result<RunMeta> {
        self.with_run(|run| {
            if run.meta.status.is_terminal() {
                return Err(Error::Terminal {
                    run_id: self.run_id.clone(),
                    status: run.meta.status,
                });
            }
            let now = wall_clock_now();
            run.meta.status = status;
            run.meta.updated_at = now;
            run.meta.finished_at = Some(now);
            if let Some(error) = error {
                run.meta.error = Some(error.clone());
            }
            Ok(run.meta.clone())
        })
    }
}

impl Drop for MemoryCheckpointer {
    fn drop(&mut self) {
        let mut store = lock_store(&self.store);
        if let Some(run) = store.runs.get_mut(&self.run_id)
            && run.writer == Some(self.token)
        {
            run.writer = None;
        }
    }
}

#[async_trait]
impl Checkpointer for MemoryCheckpointer {
    fn run_id(&self) -> &RunId {
        &self.run_id
    }

    async fn append(&self, events: &[Event]) -> Result<()> {
        self.with_run(|run| {
            run.events.extend_from_slice(events);
            Ok(())
        })
    }

    async fn install_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        self.with_run(|run| {
            run.snapshot = Some(snapshot.clone());
            run.events.clear();
            Ok(())
        })
    }

    async fn load(&self) -> Result<Recovered> {
        self.with_run(|run| {
            Ok(Recovered {
                meta: run.meta.clone(),
                snapshot: run.snapshot.clone(),
                events: run.events.clone(),
                torn_tail: None,
            })
        })
    }

    async fn audit(&self, record: &AuditRecord) -> Result<()> {
        self.with_run(|run| {
            run.audit.push(record.clone());
            Ok(())
        })
    }

    async fn complete(&self) -> Result<RunMeta> {
        self.finish(RunStatus::Completed, None)
    }

    async fn fail(&self, error: &RunError) -> Result<RunMeta> {
        self.finish(RunStatus::Failed, Some(error))
    }
}

/// What is wrong with `meta`, stored under `run_id`, if it is of an older format version or
/// names another run. A newer build's metadata is not bad (see [`refuse_newer`]): `None`.
fn unfit_meta(run_id: &RunId, meta: &RunMeta) -> Option<String> {
    if meta.format_version > META_FORMAT_VERSION {
        None
    } else if meta.format_version != META_FORMAT_VERSION {
        Some(format!("meta format version {}", meta.format_version))
    } else if meta.run_id != *run_id {
        Some(format!("stored state names run {}", meta.run_id))
    } else {
        None
    }
}

/// The error of a read that met bad state and left it where it is, for `open` (or `list`)
/// to quarantine.
fn left_for_open(run_id: &RunId, what: &str, reason: String) -> Error {
    Error::Corruption {
        run_id: run_id.clone(),
        file: what.to_owned(),
        offset: 0,
        detail: format!("{reason}; open the run to quarantine this state"),
    }
}

/// Refuses metadata a newer build wrote: this build must not rewrite it in its own format.
fn refuse_newer(run_id: &RunId, meta: &RunMeta) -> Result<()> {
    if meta.format_version > META_FORMAT_VERSION {
        return Err(newer_format(
            run_id,
            "meta",
            meta.format_version,
            META_FORMAT_VERSION,
        ));
    }
    Ok(())
}

/// The error for state a newer build wrote (`found` above this build's `expected`).
fn newer_format(run_id: &RunId, file: &str, found: u32, expected: u32) -> Error {
    Error::NewerFormat {
        run_id: run_id.clone(),
        file: file.to_owned(),
        detail: format!("format version {found}; this build reads {expected}"),
    }
}
