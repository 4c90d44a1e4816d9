//! Shared test fixtures: a handler ledger, a doctoring factory wrapper over `MemoryFactory`,
//! log capture with a scoped subscriber, and readers of a run's stored journal.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cairn_checkpoint::{
    AuditRecord, Checkpointer, CheckpointerFactory, Error, MemoryFactory, Opened, Quarantined,
    Recovered, Result, RunError, RunFilter, RunId, RunMeta, RunStatus, StatusConflict,
};
use cairn_executor::{Finish, Handler, HandlerResult, TaskContext, handler_fn};
use cairn_queue::{Event, Handoff, Queue, QueueConfig, Snapshot, TaskId};

/// What handler bodies did, keyed by task kind.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    entries: Arc<Mutex<Vec<(String, TaskId, u32)>>>,
}

impl Ledger {
    pub fn record(&self, ctx: &TaskContext) {
        self.entries
            .lock()
            .unwrap()
            .push((ctx.task().kind.clone(), ctx.task_id(), ctx.attempt()));
    }

    pub fn count(&self, kind: &str) -> usize {
        self.entries
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _, _)| k == kind)
            .count()
    }

    /// The attempt number of every body, in the order they started.
    pub fn attempts(&self) -> Vec<u32> {
        self.entries
            .lock()
            .unwrap()
            .iter()
            .map(|(_, _, attempt)| *attempt)
            .collect()
    }

    pub fn total(&self) -> usize {
        self.entries.lock().unwrap().len()
    }

    pub fn per_task(&self) -> BTreeMap<TaskId, usize> {
        let mut out = BTreeMap::new();
        for (_, id, _) in self.entries.lock().unwrap().iter() {
            *out.entry(*id).or_default() += 1;
        }
        out
    }
}

/// A handler that records its call in the ledger and completes.
pub fn recording(ledger: &Ledger) -> impl Handler {
    let ledger = ledger.clone();
    handler_fn(move |ctx| {
        let ledger = ledger.clone();
        async move {
            ledger.record(&ctx);
            let done = vec![format!("{} done", ctx.task_id())];
            Ok::<_, cairn_executor::TaskFailure>(Finish::Complete(Handoff {
                done,
                ..Handoff::default()
            }))
        }
    })
}

/// The journal of a run, read back by opening it (the run must not be held).
pub async fn stored(factory: &dyn CheckpointerFactory, run_id: &RunId) -> Recovered {
    let opened = factory
        .open(run_id)
        .await
        .expect("open succeeds")
        .expect("the run exists");
    opened.recovered
}

/// The queue a run's journal replays to.
pub async fn stored_queue(factory: &dyn CheckpointerFactory, run_id: &RunId) -> Queue {
    stored(factory, run_id)
        .await
        .queue(&QueueConfig::default())
        .expect("the journal replays")
}

/// How many `Completed` records each task has in the journal.
pub fn completions(events: &[Event]) -> BTreeMap<TaskId, usize> {
    let mut out = BTreeMap::new();
    for event in events {
        if let Event::Completed { id, .. } = event {
            *out.entry(*id).or_default() += 1;
        }
    }
    out
}

/// A run left interrupted: begun, some events appended, writer dropped without finalizing.
pub async fn plant_interrupted(
    factory: &MemoryFactory,
    run_id: &str,
    workflow: &str,
    scope: &str,
    events: &[Event],
) -> RunId {
    let run_id = RunId::new(run_id).unwrap();
    let meta = RunMeta::new(
        run_id.clone(),
        workflow,
        scope,
        "",
        cairn_checkpoint::wall_clock_now(),
    );
    let writer = factory.begin(meta).await.unwrap();
    writer.append(events).await.unwrap();
    drop(writer);
    run_id
}

/// How a `Doctor` factory bends the store it wraps.
#[derive(Debug, Clone, Default)]
pub struct Damage {
    /// `begin` fails with an injected fault.
    pub fail_begin: bool,
    /// `open` reports this run id inside the recovered metadata.
    pub foreign_run_id: Option<String>,
    /// `open` reports this metadata format version.
    pub meta_version: Option<u32>,
    /// The n-th `append` (from 1) of any writer panics.
    pub panic_on_append: Option<usize>,
    /// The n-th `append` (from 1) of any writer fails with an injected fault, as a full
    /// disk would, and every later one too (a failed append poisons a writer).
    pub fail_on_append: Option<usize>,
    /// `complete` and `fail` fail with an injected fault.
    pub fail_finish: bool,
    /// `open` reports corruption (which the port does not quarantine by itself).
    pub corrupt_on_open: bool,
    /// Right after `open`, another claimer tries to claim the run at the epoch `open` read,
    /// as a resumer in another process would that listed the run just before this open;
    /// its outcome is kept in `Doctor::other_claims`.
    pub claimed_after_open: bool,
    /// Every claim through the doctor is first made by another claimer at the same
    /// expectation, which wins, as a process that listed the run at the same epoch would
    /// between this one's listing and its claim.
    pub claimed_before_claim: bool,
    /// Right before `open`, another claimer claims the run at its stored epoch, as a
    /// process whose claim overtakes this one's would between a check of the lease and
    /// the open.
    pub claimed_before_open: bool,
}

/// A test-local wrapper factory that doctors what the wrapped `MemoryFactory` returns.
#[derive(Debug, Clone)]
pub struct Doctor {
    pub inner: MemoryFactory,
    pub damage: Damage,
    appends: Arc<AtomicUsize>,
    /// Every event whose append returned `Ok`, in order: what is durable so far.
    pub durable: Arc<Mutex<Vec<Event>>>,
    /// The outcomes of the other claimer's claims (`Damage::claimed_after_open`).
    pub other_claims: Arc<Mutex<Vec<std::result::Result<RunMeta, StatusConflict>>>>,
}

impl Doctor {
    pub fn new(inner: MemoryFactory, damage: Damage) -> Doctor {
        Doctor {
            inner,
            damage,
            appends: Arc::new(AtomicUsize::new(0)),
            durable: Arc::new(Mutex::new(Vec::new())),
            other_claims: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// How many `append` calls the writers received.
    pub fn appends(&self) -> usize {
        self.appends.load(Ordering::SeqCst)
    }

    fn wrap(&self, inner: Box<dyn Checkpointer>) -> Box<dyn Checkpointer> {
        Box::new(DoctoredWriter {
            inner,
            fail_finish: self.damage.fail_finish,
            panic_on_append: self.damage.panic_on_append,
            fail_on_append: self.damage.fail_on_append,
            appends: Arc::clone(&self.appends),
            durable: Arc::clone(&self.durable),
        })
    }
}

#[async_trait]
impl CheckpointerFactory for Doctor {
    async fn begin(&self, meta: RunMeta) -> Result<Box<dyn Checkpointer>> {
        if self.damage.fail_begin {
            return Err(Error::Injected { op: "begin" });
        }
        let writer = self.inner.begin(meta).await?;
        Ok(self.wrap(writer))
    }
    async fn open(&self, run_id: &RunId) -> Result<Option<Opened>> {
        if self.damage.corrupt_on_open {
            return Err(Error::Corruption {
                run_id: run_id.clone(),
                file: "journal".to_owned(),
                offset: 7,
                detail: "bad checksum followed by good records".to_owned(),
            });
        }
        if self.damage.claimed_before_open
            && let Some(meta) = self.inner.load_meta(run_id).await?
        {
            self.inner
                .claim(run_id, RunStatus::Running, meta.lease_epoch)
                .await?
                .expect("the other claimer wins: nothing else claimed the run");
        }
        let Some(mut opened) = self.inner.open(run_id).await? else {
            return Ok(None);
        };
        if let Some(foreign) = &self.damage.foreign_run_id {
            opened.recovered.meta.run_id = RunId::new(foreign.clone()).unwrap();
        }
        if let Some(version) = self.damage.meta_version {
            opened.recovered.meta.format_version = version;
        }
        if self.damage.claimed_after_open {
            let epoch = opened.recovered.meta.lease_epoch;
            let outcome = self.inner.claim(run_id, RunStatus::Running, epoch).await?;
            self.other_claims.lock().unwrap().push(outcome);
        }
        opened.checkpointer = self.wrap(opened.checkpointer);
        Ok(Some(opened))
    }
    async fn load_meta(&self, run_id: &RunId) -> Result<Option<RunMeta>> {
        self.inner.load_meta(run_id).await
    }
    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunMeta>> {
        self.inner.list(filter).await
    }
    async fn compare_and_swap_status(
        &self,
        run_id: &RunId,
        from: RunStatus,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        self.inner.compare_and_swap_status(run_id, from, to).await
    }
    async fn compare_and_swap_status_at(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
        to: RunStatus,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        self.inner
            .compare_and_swap_status_at(run_id, from, expected_epoch, to)
            .await
    }
    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
    ) -> Result<Result<RunMeta, StatusConflict>> {
        if self.damage.claimed_before_claim {
            self.inner
                .claim(run_id, from, expected_epoch)
                .await?
                .expect("the other claimer wins: nothing else claimed the run");
        }
        self.inner.claim(run_id, from, expected_epoch).await
    }
    async fn is_held(&self, run_id: &RunId) -> Result<bool> {
        self.inner.is_held(run_id).await
    }
    async fn quarantine(&self, run_id: &RunId, reason: &str) -> Result<Quarantined> {
        self.inner.quarantine(run_id, reason).await
    }
    async fn remove_terminal(&self, run_id: &RunId) -> Result<RunMeta> {
        self.inner.remove_terminal(run_id).await
    }
    async fn list_quarantined(
        &self,
    ) -> cairn_checkpoint::Result<Vec<cairn_checkpoint::QuarantinedRun>> {
        self.inner.list_quarantined().await
    }
    async fn append_audit(&self, run_id: &RunId, record: &AuditRecord) -> Result<()> {
        self.inner.append_audit(run_id, record).await
    }
    async fn read_audit(&self, run_id: &RunId) -> Result<Vec<AuditRecord>> {
        self.inner.read_audit(run_id).await
    }
}

#[derive(Debug)]
struct DoctoredWriter {
    inner: Box<dyn Checkpointer>,
    fail_finish: bool,
    panic_on_append: Option<usize>,
    fail_on_append: Option<usize>,
    appends: Arc<AtomicUsize>,
    durable: Arc<Mutex<Vec<Event>>>,
}

#[async_trait]
impl Checkpointer for DoctoredWriter {
    fn run_id(&self) -> &RunId {
        self.inner.run_id()
    }
    async fn append(&self, events: &[Event]) -> Result<()> {
        let n = self.appends.fetch_add(1, Ordering::SeqCst) + 1;
        if self.panic_on_append == Some(n) {
            panic!("doctored writer panics on append {n}");
        }
        if self.fail_on_append.is_some_and(|from| n >= from) {
            return Err(Error::Injected { op: "append" });
        }
        self.inner.append(events).await?;
        self.durable.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
    async fn install_snapshot(&self, snapshot: &Snapshot) -> Result<()> {
        self.inner.install_snapshot(snapshot).await
    }
    async fn load(&self) -> Result<Recovered> {
        self.inner.load().await
    }
    async fn audit(&self, record: &AuditRecord) -> Result<()> {
        self.inner.audit(record).await
    }
    async fn complete(&self) -> Result<RunMeta> {
        if self.fail_finish {
            return Err(Error::Injected { op: "complete" });
        }
        self.inner.complete().await
    }
    async fn fail(&self, error: &RunError) -> Result<RunMeta> {
        if self.fail_finish {
            return Err(Error::Injected { op: "fail" });
        }
        self.inner.fail(error).await
    }
}

/// Collects formatted log lines from a scoped subscriber.
#[derive(Debug, Clone, Default)]
pub struct LogBuffer {
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl LogBuffer {
    /// Installs a subscriber writing into this buffer for the current thread, until the
    /// guard drops. `#[tokio::test]` runs on one thread, so spawned tasks log here too.
    ///
    /// tracing caches each callsite's interest for the whole process, computed against
    /// whichever thread reaches it first. A parallel test with no subscriber would pin a
    /// callsite to "never" and this buffer would miss its events (seen as a rare flake), so
    /// a do-nothing global subscriber keeps every callsite interested, and the cache is
    /// rebuilt once this thread's subscriber is in place.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        static ANCHOR: std::sync::Once = std::sync::Once::new();
        ANCHOR.call_once(|| {
            let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
        });
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        tracing::callsite::rebuild_interest_cache();
        guard
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }

    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

impl io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Counts calls, for handlers that behave differently on a given call.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicUsize>);

impl Counter {
    /// Increments and returns the new value (from 1).
    pub fn bump(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// Shorthand for a handler result type in closures.
pub type Res = HandlerResult;

/// `Start::Adopt` of `run_id` at the lease epoch the store holds now: what a caller that has
/// just claimed the run passes (its claim returned that epoch). An unknown run gets epoch 1.
pub async fn adopt_start(store: &dyn CheckpointerFactory, run_id: RunId) -> cairn_executor::Start {
    let lease_epoch = store
        .load_meta(&run_id)
        .await
        .expect("the metadata reads")
        .map_or(1, |meta| meta.lease_epoch);
    cairn_executor::Start::Adopt {
        run_id,
        lease_epoch,
    }
}
