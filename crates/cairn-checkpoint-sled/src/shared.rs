//! State shared by every factory and writer over one open sled database: its trees, the
//! registry of live writers, and the group flush.
//!
//! sled locks its database file, so one process at a time has it open. Inside that process
//! several factories may use the same database (cloned `sled::Db` handles or the same path),
//! and they must agree on who writes which run. sled does not expose the identity of a handle,
//! so the first factory writes a token unique to this process into `cairn/session`, and a
//! process-wide table maps that token (and the canonical path) to the one `Shared`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::time::Duration;

use cairn_checkpoint::{Error, Owner, Result, RunId};
use cairn_telemetry::names;

use crate::error::backend;
use crate::files::SledFiles;
use crate::layout;

/// The trees of one database.
#[derive(Debug, Clone)]
pub(crate) struct Trees {
    pub(crate) runs: sled::Tree,
    pub(crate) events: sled::Tree,
    pub(crate) snapshots: sled::Tree,
    pub(crate) audit: sled::Tree,
    pub(crate) quarantine: sled::Tree,
    pub(crate) cut: sled::Tree,
}

impl Trees {
    fn open(db: &sled::Db) -> sled::Result<Trees> {
        Ok(Trees {
            runs: db.open_tree(layout::RUNS_TREE)?,
            events: db.open_tree(layout::EVENTS_TREE)?,
            snapshots: db.open_tree(layout::SNAPSHOTS_TREE)?,
            audit: db.open_tree(layout::AUDIT_TREE)?,
            quarantine: db.open_tree(layout::QUARANTINE_TREE)?,
            cut: db.open_tree(layout::CUT_TREE)?,
        })
    }
}

/// Who holds a run's writer slot.
#[derive(Debug, Clone)]
struct Holder {
    token: u64,
    description: String,
}

/// The group flush: appends that arrive while a flush is pending share it.
#[derive(Debug, Default)]
struct GroupState {
    /// Tickets handed out: one per write that waits for durability.
    written: u64,
    /// Every ticket up to this one is durable.
    flushed: u64,
    /// Whether a leader is currently waiting or flushing.
    leader: bool,
    /// How many tickets a flush is expected to gather: the most one flush has covered, until
    /// a wait for company runs out with fewer. A leader stops waiting for company once that
    /// many tickets wait, because in the common closed loop (each caller writes again once
    /// acknowledged) nobody else is coming; a lone caller's flushes cover one ticket, so it
    /// never waits.
    company: u64,
    /// While a leader waits for company: the `written` count that ends its wait.
    company_wanted: Option<u64>,
}

/// A callback unit tests plant to run at one point of the code, once.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct TestHook(Mutex<Option<Box<dyn FnOnce() + Send>>>);

#[cfg(test)]
impl TestHook {
    pub(crate) fn set(&self, hook: impl FnOnce() + Send + 'static) {
        *lock(&self.0) = Some(Box::new(hook));
    }

    pub(crate) fn run(&self) {
        let hook = lock(&self.0).take();
        if let Some(hook) = hook {
            hook();
        }
    }
}

#[cfg(test)]
impl std::fmt::Debug for TestHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TestHook")
    }
}

/// Everything shared over one open database.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) db: sled::Db,
    pub(crate) trees: Trees,
    /// The database folder; messages name it (`SyncFailed`).
    pub(crate) label: PathBuf,
    /// sled's files, fsynced after every flush (sled's own flush does not fsync).
    files: Arc<SledFiles>,
    writers: Mutex<HashMap<RunId, Holder>>,
    next_writer: AtomicU64,
    group: Mutex<GroupState>,
    group_done: tokio::sync::Notify,
    /// Signalled (after `group` changed) when `company_wanted` tickets are handed out.
    company_arrived: tokio::sync::Notify,
    /// Held while `append_audit` checks that a run is stored and appends its record (without
    /// the run's writer slot), and while `remove_run` deletes a run, so a removal never lands
    /// between that check and that append and leaves a record behind for a later run of the
    /// same id. One process has the database open, so this lock covers every such pair.
    audit_gate: Mutex<()>,
    /// Set when `remove_run` found the audit gate held and waits for it (unit tests).
    #[cfg(test)]
    pub(crate) removal_waited_for_gate: std::sync::atomic::AtomicBool,
    /// Run by `append_audit` between its check and its append (unit tests).
    #[cfg(test)]
    pub(crate) after_audit_check: TestHook,
    /// Run by `open` right after a torn last journal record was cut (unit tests).
    #[cfg(test)]
    pub(crate) after_torn_tail_cut: TestHook,
    /// Run by the job store right after a damaged value was moved aside (unit tests).
    #[cfg(test)]
    pub(crate) after_job_moved: TestHook,
    /// Set forever once a flush fails: the kernel may have dropped dirty pages, so no later
    /// flush of this handle can be trusted to make earlier writes durable.
    sync_failure: Arc<Mutex<Option<(std::io::ErrorKind, String)>>>,
    /// Held by the blocking thread across each flush and its fsyncs, so flushes never
    /// overlap: Linux reports a writeback error to an fsync once, so a flush that overlapped
    /// a failing one could see its fsync succeed over pages the kernel dropped. A flush
    /// checks `sync_failure` once it holds this, and records its own failure before it lets
    /// go, even when the future that started it was dropped meanwhile.
    pub(crate) flush_lock: Arc<Mutex<()>>,
    /// How many flushes finished on the blocking pool; unit tests wait for a dropped one.
    #[cfg(test)]
    pub(crate) flushes_finished: Arc<AtomicU64>,
    /// Unit tests set this to make the next flush fail as a failed fsync would.
    #[cfg(test)]
    pub(crate) fail_next_flush: std::sync::atomic::AtomicBool,
    /// How many flushes started; unit tests count the flushes appends share.
    #[cfg(test)]
    pub(crate) flushes: AtomicU64,
}

/// The process-wide table of open databases, by session token and by canonical path.
#[derive(Default)]
struct OpenDatabases {
    by_token: HashMap<u128, Weak<Shared>>,
    by_path: HashMap<PathBuf, Weak<Shared>>,
}

fn open_databases() -> MutexGuard<'static, OpenDatabases> {
    static TABLE: OnceLock<Mutex<OpenDatabases>> = OnceLock::new();
    TABLE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A token no other process (and no earlier database handle of this one) has written.
fn fresh_token() -> u128 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed) as u128;
    (nanos << 48) ^ ((std::process::id() as u128) << 16) ^ count
}

const SESSION_KEY: &[u8] = b"token";

/// How the folder of a database being registered is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FolderOf {
    /// The database was opened from it here.
    OpenedHere,
    /// A host handed over its handle and named the folder, which is checked.
    HostsHandle,
}

/// How long an open waits for a file lock that this process's previous handle still holds.
const LOCK_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Moves the files a kill left unfinished out of the database folder into
/// `<folder>.quarantine/<millis>/`, never deleting them. Returns where each file went.
///
/// Two such states make sled 0.34.7 refuse every later open with "Read corrupted data":
/// - an unfinished snapshot (`snap.*.generating`): sled picks the highest-numbered snapshot
///   file when it opens, finished or not. The crash harness found this about once per
///   thousand kills; the database opens, with nothing acknowledged missing, once the
///   unfinished file is set aside.
/// - a `conf` without a log file (`db`): sled writes its configuration, then creates its log,
///   so a kill during the very first open leaves a configuration that may be cut short and no
///   data at all (a recorded crash state of review 47). Setting `conf` aside lets sled create
///   the database afresh; nothing was ever stored in it.
fn set_aside_unfinished_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut unfinished = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            unfinished.push(entry.path());
        }
    }
    let conf = path.join("conf");
    if !path.join("db").exists() && conf.exists() {
        unfinished.push(conf);
    }
    if unfinished.is_empty() {
        return Ok(unfinished);
    }
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".quarantine/{millis}"));
    let aside = PathBuf::from(aside);
    std::fs::create_dir_all(&aside)?;
    let mut moved = Vec::with_capacity(unfinished.len());
    for file in unfinished {
        let target = aside.join(file.file_name().unwrap_or_default());
        std::fs::rename(&file, &target)?;
        moved.push(target);
    }
    // The moves must be durable before sled writes anything new beside them.
    std::fs::File::open(path)?.sync_all()?;
    std::fs::File::open(&aside)?.sync_all()?;
    // `<folder>.quarantine` may be new too, so its own parent is synced as well.
    for dir in aside.ancestors().skip(1).take(2) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(moved)
}

/// Whether sled failed because another handle holds the database's file lock.
fn is_lock_contention(err: &std::io::Error) -> bool {
    // sled wraps the lock failure in a custom error, so the kind alone does not tell.
    err.kind() == std::io::ErrorKind::WouldBlock
        || err.to_string().contains("could not acquire lock")
}

/// Opens the database, waiting briefly when its file lock is still held.
///
/// sled releases its lock only when its background flusher thread exits, which happens a little
/// after the last `Db` handle is dropped. A host that drops a factory and at once opens a new one
/// (an in-process restart) would otherwise fail at random. Another process holding the lock
/// also ends up here; after the bounded wait the open fails with `InUse`.
fn open_with_lock_retry(path: &Path) -> std::result::Result<sled::Db, crate::Error> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(2);
    let mut set_aside = false;
    loop {
        match sled::Config::new().path(path).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Corruption { .. }) if !set_aside => {
                set_aside = true;
                let moved =
                    set_aside_unfinished_files(path).map_err(|source| crate::Error::Open {
                        path: path.to_path_buf(),
                        source: sled::Error::Io(source),
                    })?;
                if moved.is_empty() {
                    // Not a known interrupted write: report sled's error as it is.
                    return sled::Config::new().path(path).open().map_err(|source| {
                        crate::Error::Open {
                            path: path.to_path_buf(),
                            source,
                        }
                    });
                }
                tracing::warn!(
                    target: names::DETAIL_TARGET,
                    path = %path.display(),
                    moved = ?moved,
                    "sled refused to open its database because a kill interrupted its own \
                     writes (an unfinished snapshot, or the first open before sled made its \
                     log); the unfinished files were moved aside (kept, not deleted) and the \
                     database opened from what sled had completed"
                );
            }
            Err(sled::Error::Io(err)) if is_lock_contention(&err) => {
                if started.elapsed() >= LOCK_RELEASE_WAIT {
                    return Err(crate::Error::InUse {
                        path: path.to_path_buf(),
                        waited: started.elapsed(),
                    });
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
            Err(source) => {
                return Err(crate::Error::Open {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
    }
}

impl Shared {
    /// The shared state of the database at `path`, opening it if this process has not.
    pub(crate) fn for_path(path: &Path) -> std::result::Result<Arc<Shared>, crate::Error> {
        let mut table = open_databases();
        let canonical = std::fs::canonicalize(path).ok();
        if let Some(found) = canonical
            .as_ref()
            .and_then(|c| table.by_path.get(c))
            .and_then(Weak::upgrade)
        {
            return Ok(found);
        }
        let db = open_with_lock_retry(path)?;
        let shared = Self::register(&mut table, db, path, FolderOf::OpenedHere)?;
        if let Ok(canonical) = std::fs::canonicalize(path) {
            table.by_path.insert(canonical, Arc::downgrade(&shared));
        }
        Ok(shared)
    }

    /// The shared state of an already open database handle, whose files are in `dir`.
    pub(crate) fn for_db(
        db: sled::Db,
        dir: &Path,
    ) -> std::result::Result<Arc<Shared>, crate::Error> {
        let mut table = open_databases();
        Self::register(&mut table, db, dir, FolderOf::HostsHandle)
    }

    fn register(
        table: &mut OpenDatabases,
        db: sled::Db,
        dir: &Path,
        folder_of: FolderOf,
    ) -> std::result::Result<Arc<Shared>, crate::Error> {
        let setup = |source| crate::Error::Setup { source };
        let session = db.open_tree(layout::SESSION_TREE).map_err(setup)?;
        let stored = session.get(SESSION_KEY).map_err(setup)?;
        if let Some(found) = stored
            .as_ref()
            .and_then(|raw| <[u8; 16]>::try_from(raw.as_ref()).ok())
            .map(u128::from_be_bytes)
            .and_then(|token| table.by_token.get(&token))
            .and_then(Weak::upgrade)
        {
            return Ok(found);
        }
        let not_open = |reason: crate::files::NotOpenDatabase| crate::Error::NotOpenDatabase {
            path: dir.to_path_buf(),
            reason: reason.to_string(),
        };
        let files = SledFiles::of_open_database(dir).map_err(not_open)?;
        // The table lock is held, so no other factory of this process races this swap; a
        // token from an earlier process is simply replaced.
        let token = fresh_token();
        // Another open database's folder passes the lock check above too; fsyncing its
        // files would acknowledge writes nothing made durable.
        if folder_of == FolderOf::HostsHandle {
            files.check_written_by(&session, token).map_err(not_open)?;
        }
        session
            .insert(SESSION_KEY, &token.to_be_bytes())
            .map_err(setup)?;
        table.by_token.retain(|_, weak| weak.strong_count() > 0);
        table.by_path.retain(|_, weak| weak.strong_count() > 0);
        let shared = Arc::new(Shared {
            trees: Trees::open(&db).map_err(setup)?,
            db,
            label: dir.to_path_buf(),
            files: Arc::new(files),
            writers: Mutex::default(),
            next_writer: AtomicU64::new(1),
            group: Mutex::default(),
            group_done: tokio::sync::Notify::new(),
            company_arrived: tokio::sync::Notify::new(),
            sync_failure: Arc::default(),
            flush_lock: Arc::default(),
            #[cfg(test)]
            flushes_finished: Arc::default(),
            audit_gate: Mutex::default(),
            #[cfg(test)]
            removal_waited_for_gate: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            after_audit_check: TestHook::default(),
            #[cfg(test)]
            after_job_moved: TestHook::default(),
            #[cfg(test)]
            after_torn_tail_cut: TestHook::default(),
            #[cfg(test)]
            fail_next_flush: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            flushes: AtomicU64::new(0),
        });
        table.by_token.insert(token, Arc::downgrade(&shared));
        Ok(shared)
    }

    /// Takes the writer slot of `run_id`, or fails with `Locked` naming the holder.
    pub(crate) fn acquire(&self, run_id: &RunId) -> Result<u64> {
        let mut writers = lock(&self.writers);
        if let Some(holder) = writers.get(run_id) {
            return Err(Error::Locked {
                run_id: run_id.clone(),
                holder: holder.description.clone(),
            });
        }
        let token = self.next_writer.fetch_add(1, Ordering::Relaxed);
        let description = format!("{} (this process, sled writer #{token})", Owner::current());
        writers.insert(run_id.clone(), Holder { token, description });
        Ok(token)
    }

    /// Releases the slot taken with `token` (a no-op if someone else holds it now).
    pub(crate) fn release(&self, run_id: &RunId, token: u64) {
        let mut writers = lock(&self.writers);
        if writers.get(run_id).is_some_and(|h| h.token == token) {
            writers.remove(run_id);
        }
    }

    /// Runs `decide` with the holder of `run_id`'s slot (if any) while no slot can be taken
    /// or released, so a claim decided and written inside it cannot meet a writer that
    /// opened between its check and its write (`acquire` waits for it).
    pub(crate) fn with_holder<T>(
        &self,
        run_id: &RunId,
        decide: impl FnOnce(Option<&str>) -> T,
    ) -> T {
        let writers = lock(&self.writers);
        decide(writers.get(run_id).map(|h| h.description.as_str()))
    }

    /// Takes the audit gate (see `audit_gate`).
    pub(crate) fn audit_gate(&self) -> MutexGuard<'_, ()> {
        #[cfg(test)]
        if let Err(std::sync::TryLockError::WouldBlock) = self.audit_gate.try_lock() {
            self.removal_waited_for_gate.store(true, Ordering::SeqCst);
        }
        lock(&self.audit_gate)
    }

    /// Who holds `run_id`'s slot, if anyone.
    pub(crate) fn holder(&self, run_id: &RunId) -> Option<String> {
        lock(&self.writers)
            .get(run_id)
            .map(|h| h.description.clone())
    }

    fn sync_failed(&self, kind: std::io::ErrorKind, message: String) -> Error {
        Error::SyncFailed {
            path: self.label.clone(),
            source: std::io::Error::new(kind, message),
        }
    }

    fn earlier_failure(&self) -> Option<Error> {
        lock(&self.sync_failure).as_ref().map(|(kind, message)| {
            self.sync_failed(*kind, format!("an earlier flush failed: {message}"))
        })
    }

    /// Flushes the whole database now and fsyncs its files, on a blocking thread. A failure
    /// poisons this handle. The outcome is decided and recorded on that thread, under
    /// `flush_lock`, so a dropped caller cannot lose a failure.
    pub(crate) async fn flush_now(&self) -> Result<()> {
        self.flush(true).await
    }

    /// Hands everything written so far to the OS (`Durability::None`): sled's flush without
    /// the fsyncs. sled keeps writes in buffers of this process until a flush (its background
    /// flusher runs every 500 ms), so without this a killed process loses acknowledged writes,
    /// which the port's `None` must survive. A failure poisons the handle, as for `flush_now`.
    pub(crate) async fn hand_to_os(&self) -> Result<()> {
        self.flush(false).await
    }

    async fn flush(&self, fsync: bool) -> Result<()> {
        if let Some(err) = self.earlier_failure() {
            return Err(err);
        }
        let db = self.db.clone();
        let files = Arc::clone(&self.files);
        let failures = Arc::clone(&self.sync_failure);
        let flush_lock = Arc::clone(&self.flush_lock);
        #[cfg(test)]
        let injected = self.fail_next_flush.swap(false, Ordering::SeqCst);
        #[cfg(test)]
        self.flushes.fetch_add(1, Ordering::SeqCst);
        #[cfg(test)]
        let finished = Arc::clone(&self.flushes_finished);
        let outcome = tokio::task::spawn_blocking(move || {
            let serialized = flush_lock.lock();
            let mut failure = lock(&failures);
            if serialized.is_err() {
                // An earlier flush panicked half-way: what it wrote is unknown.
                failure.get_or_insert((
                    std::io::ErrorKind::Other,
                    "a flush panicked before it finished".to_owned(),
                ));
            }
            if let Some((kind, message)) = failure.as_ref() {
                return Err((*kind, format!("an earlier flush failed: {message}")));
            }
            drop(failure);
            let flushed = (|| {
                #[cfg(test)]
                if injected {
                    return Err(sled::Error::Io(std::io::Error::other(
                        "injected fsync failure",
                    )));
                }
                db.flush()?;
                if fsync {
                    files.sync().map_err(sled::Error::Io)?;
                }
                Ok(())
            })();
            let outcome = flushed.map_err(|err| {
                let failed = match err {
                    sled::Error::Io(io) => (io.kind(), io.to_string()),
                    other => (std::io::ErrorKind::Other, other.to_string()),
                };
                lock(&failures).get_or_insert(failed).clone()
            });
            #[cfg(test)]
            finished.fetch_add(1, Ordering::SeqCst);
            drop(serialized);
            outcome
        })
        .await;
        let (kind, message) = match outcome {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(failed)) => failed,
            Err(join) => {
                let failed = (std::io::ErrorKind::Other, join.to_string());
                lock(&self.sync_failure).get_or_insert(failed).clone()
            }
        };
        Err(self.sync_failed(kind, message))
    }

    /// Waits until everything written before this call is durable, sharing one flush with
    /// every caller that arrives while a flush is pending (leader/follower).
    ///
    /// The first caller becomes the leader. It waits for company (see `wait_for_company`):
    /// at most `max_delay`, and only while fewer tickets wait than the largest flush so far
    /// covered, so a lone caller flushes at once. It then flushes once for everybody whose
    /// ticket was handed out before the flush began. Callers that arrive during that flush
    /// share the next one. A failed flush is returned to every caller it covered and poisons
    /// the handle (`flush_now`); it is never retried.
    pub(crate) async fn flush_grouped(&self, max_delay: Duration) -> Result<()> {
        let ticket = {
            let mut group = lock(&self.group);
            group.written += 1;
            if group
                .company_wanted
                .is_some_and(|wanted| group.written >= wanted)
            {
                self.company_arrived.notify_waiters();
            }
            group.written
        };
        loop {
            if let Some(err) = self.earlier_failure() {
                return Err(err);
            }
            let notified = {
                let mut group = lock(&self.group);
                if group.flushed >= ticket {
                    return Ok(());
                }
                if group.leader {
                    // Created under the lock, so the leader's wake-up (sent after it updates
                    // the state under the same lock) cannot be missed.
                    Some(self.group_done.notified())
                } else {
                    group.leader = true;
                    None
                }
            };
            match notified {
                Some(notified) => notified.await,
                None => self.lead_group_flush(max_delay).await?,
            }
        }
    }

    async fn lead_group_flush(&self, max_delay: Duration) -> Result<()> {
        // Resets the leader flag even if this future is dropped half-way, so followers never
        // wait for a leader that is gone.
        struct Leadership<'a>(&'a Shared);
        impl Drop for Leadership<'_> {
            fn drop(&mut self) {
                let mut group = lock(&self.0.group);
                group.leader = false;
                group.company_wanted = None;
                drop(group);
                self.0.group_done.notify_waiters();
            }
        }
        let leadership = Leadership(self);
        self.wait_for_company(max_delay).await;
        let (target, covered) = {
            let group = lock(&self.group);
            (group.written, group.written - group.flushed)
        };
        let outcome = self.flush_now().await;
        if outcome.is_ok() {
            let mut group = lock(&self.group);
            group.flushed = group.flushed.max(target);
            group.company = group.company.max(covered);
        }
        drop(leadership);
        outcome
    }

    /// Waits up to `max_delay` for other writes to join the leader's flush, and no longer
    /// than it takes for `company` tickets to wait. Returns at once when the company is
    /// already there, which for a lone caller is always. A `max_delay` too large to add to
    /// the clock has no deadline: the wait ends only by company.
    async fn wait_for_company(&self, max_delay: Duration) {
        if max_delay.is_zero() {
            return;
        }
        let deadline = tokio::time::Instant::now().checked_add(max_delay);
        loop {
            let arrived = {
                let mut group = lock(&self.group);
                let wanted = group.company.max(1);
                if group.written - group.flushed >= wanted {
                    group.company_wanted = None;
                    return;
                }
                group.company_wanted = Some(group.flushed + wanted);
                // Created under the lock, so an arrival after it is released wakes it.
                self.company_arrived.notified()
            };
            let came = match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, arrived).await.is_ok(),
                None => {
                    arrived.await;
                    true
                }
            };
            if !came {
                let mut group = lock(&self.group);
                group.company_wanted = None;
                let waiting = group.written - group.flushed;
                if waiting < group.company {
                    // Fewer callers than before: expect only those who came.
                    group.company = waiting;
                }
                return;
            }
        }
    }

    /// Whether `run_id` has any stored state besides audit records.
    pub(crate) fn has_state(&self, run_id: &RunId) -> Result<bool> {
        let key = run_id.as_str().as_bytes();
        let prefix = layout::run_prefix(run_id);
        Ok(self.trees.runs.contains_key(key).map_err(backend)?
            || self.trees.snapshots.contains_key(key).map_err(backend)?
            || self
                .trees
                .events
                .scan_prefix(&prefix)
                .next()
                .transpose()
                .map_err(backend)?
                .is_some())
    }

    /// Whether `run_id` was quarantined (its id stays taken).
    pub(crate) fn is_quarantined(&self, run_id: &RunId) -> Result<bool> {
        Ok(self
            .trees
            .quarantine
            .scan_prefix(layout::run_prefix(run_id))
            .next()
            .transpose()
            .map_err(backend)?
            .is_some())
    }
}

#[cfg(test)]
mod tests {
    //! How many flushes group commit starts cannot be seen through the port, so these tests
    //! count them with the private counter in `Shared`. They time nothing: `max_delay` is an
    //! hour, and a wait for company that is not ended by company would hang the test until
    //! its guard fails it.

    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::Ordering;
    use std::task::Poll;
    use std::time::Duration;

    use cairn_checkpoint::{Checkpointer, CheckpointerFactory, Durability};

    use crate::SledFactory;
    use crate::unit_fixtures::{event, meta};

    const AN_HOUR: Duration = Duration::from_secs(3600);
    const HANG_GUARD: Duration = Duration::from_secs(60);

    /// Polls `future` once with the calling task's waker; whether it is still pending.
    async fn pending_after_one_poll<F: Future + Unpin>(future: &mut F) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx).is_pending())).await
    }

    // One thread: nothing but this test's own polls moves the appends along, so the order in
    // which they reach the group is the order written here.
    #[tokio::test(flavor = "current_thread")]
    async fn appends_that_arrive_together_share_one_flush() {
        let dir = tempfile::tempdir().expect("tempdir");
        let factory = SledFactory::builder()
            .path(dir.path().join("db"))
            .durability(Durability::Group { max_delay: AN_HOUR })
            .build()
            .expect("build");
        let flushes = || factory.shared.flushes.load(Ordering::SeqCst);
        let (zero, one) = ([event(0)], [event(1)]);
        let work = async {
            // Each `begin` flushes through the group too, alone.
            let a = factory.begin(meta("a")).await.expect("begin");
            let b = factory.begin(meta("b")).await.expect("begin");
            let c = factory.begin(meta("c")).await.expect("begin");
            // A leads alone (nobody is expected yet) and its flush starts; B and C arrive
            // during it and share the next one.
            let before = flushes();
            let mut first = a.append(&zero);
            assert!(pending_after_one_poll(&mut first).await, "A is flushing");
            let mut second = b.append(&zero);
            assert!(pending_after_one_poll(&mut second).await, "B waits for A");
            let mut third = c.append(&zero);
            assert!(pending_after_one_poll(&mut third).await, "C waits for A");
            let (first, second, third) = tokio::join!(first, second, third);
            first.and(second).and(third).expect("all acknowledged");
            assert_eq!(flushes() - before, 2, "A's flush, then one for B and C");

            // Two tickets shared the last flush, so the next leader waits for a second one,
            // and its arrival (not the hour) ends the wait: again one flush for two appends.
            let before = flushes();
            let mut second = b.append(&one);
            assert!(
                pending_after_one_poll(&mut second).await,
                "B leads and waits for company"
            );
            assert_eq!(flushes(), before, "no flush before the company came");
            let third = c.append(&one);
            let (second, third) = tokio::join!(second, third);
            second.and(third).expect("both acknowledged");
            assert_eq!(flushes() - before, 1, "B and C shared one flush");
            [a, b, c]
        };
        let writers = tokio::time::timeout(HANG_GUARD, work)
            .await
            .expect("a leader waited out max_delay (an hour) instead of flushing");
        for writer in &writers {
            let loaded = writer.load().await.expect("load");
            let want = if writer.run_id().as_str() == "a" {
                1
            } else {
                2
            };
            assert_eq!(loaded.events.len(), want, "{}", writer.run_id());
        }
    }
}
