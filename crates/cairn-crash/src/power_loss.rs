//! Simulated power loss: a real executor drains a generated DAG in process on the file
//! adapter over a [`DiskModel`]; before every Nth I/O operation the disk is captured, and
//! each capture becomes several crash images (unsynced writes dropped, the last one torn at
//! some byte or kept as a subset of its pages, unsynced directory changes partly undone). A
//! fresh `FileFactory` over each image must recover every transition acknowledged before
//! the crash. Anything else, a typed `Corruption` error included, is a violation.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cairn_checkpoint::{
    AuditAction, AuditRecord, Checkpointer, CheckpointerFactory, Durability, Error as StoreError,
    Opened, Quarantined, Recovered, RunError, RunFilter, RunId, RunMeta, RunStatus, StatusConflict,
};
use cairn_checkpoint_file::{FileFactory, Filesystem};
use cairn_executor::{Executor, RunSignals, Start};
use cairn_queue::{Event, Queue, Snapshot};

use crate::dag::Dag;
use crate::disk_model::{CrashChoice, DiskModel, DiskState, PAGE_SIZE, PageFate, WriteFate};
use crate::error::{Error, Result};
use crate::rng::SplitMix;
use crate::worker;

/// Where the store lives on the modelled disk.
pub const ROOT: &str = "/cairn";

/// How the power-loss exploration runs.
#[derive(Debug, Clone)]
pub struct PowerLossOptions {
    /// The seed of workloads, capture spacing and crash choices.
    pub seed: u64,
    /// Crash states to check at least (workloads run until this many were checked).
    pub states: u64,
    /// Tasks per workload DAG.
    pub tasks: usize,
}

/// What the exploration found.
#[derive(Debug, Clone, Default)]
pub struct PowerLossTotals {
    /// Crash images opened and checked.
    pub states: u64,
    /// Workloads driven.
    pub workloads: u64,
    /// Images whose recovery stopped with `Corruption`. Each is also a violation: every
    /// image is a disk a power cut can leave, and the journal's framing makes every such
    /// disk recoverable, so stopping for an operator there is a defect.
    pub corruption_stops: u64,
    /// Images whose recovery cut a torn last journal record.
    pub torn_tails_cut: u64,
    /// Images in which only a subset of the last write's pages reached the disk.
    pub page_subset_states: u64,
    /// Images in which size changes not yet synced (cuts, growths) persisted.
    pub resized_states: u64,
    /// Images in which the run did not exist yet (its `begin` was not acknowledged).
    pub before_begin: u64,
    /// Images recovered with fewer acknowledged transitions, different events or a wrong
    /// snapshot, or whose recovery failed with any error (`Corruption` included).
    pub violations: u64,
    /// One line per violation (the first 20).
    pub problems: Vec<String>,
}

impl PowerLossTotals {
    fn violation(&mut self, text: String) {
        self.violations += 1;
        if self.problems.len() < 20 {
            self.problems.push(text);
        }
    }

    fn absorb(&mut self, other: PowerLossTotals) {
        self.states += other.states;
        self.workloads += other.workloads;
        self.corruption_stops += other.corruption_stops;
        self.torn_tails_cut += other.torn_tails_cut;
        self.page_subset_states += other.page_subset_states;
        self.resized_states += other.resized_states;
        self.before_begin += other.before_begin;
        self.violations += other.violations;
        for problem in other.problems {
            if self.problems.len() < 20 {
                self.problems.push(problem);
            }
        }
    }
}

/// What the workload was told, as of any instant: every event handed to `append` (in
/// order), how many of them were acknowledged, whether `begin` and `complete` were, and the
/// audit records the store acknowledged.
#[derive(Debug, Default)]
pub struct AckLog {
    history: Mutex<Vec<Event>>,
    acked: AtomicUsize,
    begun: AtomicBool,
    completed: AtomicBool,
    /// Acknowledged audit records, as JSON text, in the order they were acknowledged.
    audits: Mutex<Vec<String>>,
}

impl AckLog {
    /// Events acknowledged so far.
    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    /// Audit records acknowledged so far.
    pub fn audited(&self) -> usize {
        self.audits
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .len()
    }

    fn audit_acknowledged(&self, record: &AuditRecord) {
        let text = serde_json::to_string(record).unwrap_or_default();
        self.audits
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .push(text);
    }
}

/// Wraps each checkpointer a store hands out, between the store and the recorder.
pub type CheckpointerLayer = dyn Fn(Box<dyn Checkpointer>) -> Box<dyn Checkpointer> + Send + Sync;

/// A port decorator that writes down what the store acknowledged.
pub struct AckRecordingFactory<F> {
    inner: F,
    log: Arc<AckLog>,
    layer: Option<Arc<CheckpointerLayer>>,
}

impl<F: std::fmt::Debug> std::fmt::Debug for AckRecordingFactory<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckRecordingFactory")
            .field("inner", &self.inner)
            .field("log", &self.log)
            .field("layered", &self.layer.is_some())
            .finish()
    }
}

impl<F> AckRecordingFactory<F> {
    /// Wraps `inner`, recording into `log`.
    pub fn new(inner: F, log: Arc<AckLog>) -> Self {
        AckRecordingFactory {
            inner,
            log,
            layer: None,
        }
    }

    /// Puts `layer` around each checkpointer `inner` hands out, inside the recorder: what
    /// the recorder writes down is what the executor asked for, and the layer may change
    /// what reaches the store (tests pass one that breaks a rule to prove it is caught).
    pub fn with_checkpointer_layer(mut self, layer: Arc<CheckpointerLayer>) -> Self {
        self.layer = Some(layer);
        self
    }
}

#[derive(Debug)]
struct AckRecordingCheckpointer {
    inner: Box<dyn Checkpointer>,
    log: Arc<AckLog>,
}

#[async_trait]
impl<F: CheckpointerFactory> CheckpointerFactory for AckRecordingFactory<F> {
    async fn begin(&self, meta: RunMeta) -> cairn_checkpoint::Result<Box<dyn Checkpointer>> {
        let mut inner = self.inner.begin(meta).await?;
        if let Some(layer) = &self.layer {
            inner = layer(inner);
        }
        self.log.begun.store(true, Ordering::SeqCst);
        Ok(Box::new(AckRecordingCheckpointer {
            inner,
            log: Arc::clone(&self.log),
        }))
    }
    async fn open(&self, run_id: &RunId) -> cairn_checkpoint::Result<Option<Opened>> {
        self.inner.open(run_id).await
    }
    async fn load_meta(&self, run_id: &RunId) -> cairn_checkpoint::Result<Option<RunMeta>> {
        self.inner.load_meta(run_id).await
    }
    async fn list(&self, filter: &RunFilter) -> cairn_checkpoint::Result<Vec<RunMeta>> {
        self.inner.list(filter).await
    }
    // Forwarded, not left to the defaults: the default `peek` (and `peek_live`) opens the run (taking the
    // writer lock and cutting a torn tail) and the default `left_in_place` is empty, so a
    // wrapper without these would change what the adapter under test does.
    async fn left_in_place(
        &self,
    ) -> cairn_checkpoint::Result<Vec<cairn_checkpoint::LeftInPlaceRun>> {
        self.inner.left_in_place().await
    }
    async fn peek(
        &self,
        run_id: &RunId,
    ) -> cairn_checkpoint::Result<Option<cairn_checkpoint::Recovered>> {
        self.inner.peek(run_id).await
    }
    async fn peek_live(
        &self,
        run_id: &RunId,
    ) -> cairn_checkpoint::Result<Option<cairn_checkpoint::Recovered>> {
        self.inner.peek_live(run_id).await
    }
    async fn compare_and_swap_status(
        &self,
        run_id: &RunId,
        from: RunStatus,
        to: RunStatus,
    ) -> cairn_checkpoint::Result<std::result::Result<RunMeta, StatusConflict>> {
        self.inner.compare_and_swap_status(run_id, from, to).await
    }
    async fn compare_and_swap_status_at(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
        to: RunStatus,
    ) -> cairn_checkpoint::Result<std::result::Result<RunMeta, StatusConflict>> {
        self.inner
            .compare_and_swap_status_at(run_id, from, expected_epoch, to)
            .await
    }
    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        expected_epoch: u64,
    ) -> cairn_checkpoint::Result<std::result::Result<RunMeta, StatusConflict>> {
        self.inner.claim(run_id, from, expected_epoch).await
    }
    async fn is_held(&self, run_id: &RunId) -> cairn_checkpoint::Result<bool> {
        self.inner.is_held(run_id).await
    }
    async fn quarantine(
        &self,
        run_id: &RunId,
        reason: &str,
    ) -> cairn_checkpoint::Result<Quarantined> {
        self.inner.quarantine(run_id, reason).await
    }
    async fn remove_terminal(&self, run_id: &RunId) -> cairn_checkpoint::Result<RunMeta> {
        self.inner.remove_terminal(run_id).await
    }
    async fn list_quarantined(
        &self,
    ) -> cairn_checkpoint::Result<Vec<cairn_checkpoint::QuarantinedRun>> {
        self.inner.list_quarantined().await
    }
    async fn append_audit(
        &self,
        run_id: &RunId,
        record: &AuditRecord,
    ) -> cairn_checkpoint::Result<()> {
        self.inner.append_audit(run_id, record).await?;
        self.log.audit_acknowledged(record);
        Ok(())
    }
    async fn read_audit(&self, run_id: &RunId) -> cairn_checkpoint::Result<Vec<AuditRecord>> {
        self.inner.read_audit(run_id).await
    }
}

#[async_trait]
impl Checkpointer for AckRecordingCheckpointer {
    fn run_id(&self) -> &RunId {
        self.inner.run_id()
    }
    async fn append(&self, events: &[Event]) -> cairn_checkpoint::Result<()> {
        // Written down before the call, so a crash image can never hold an event the
        // history does not know; acknowledged only once the call returned Ok.
        let end = {
            let mut history = self
                .log
                .history
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            history.extend_from_slice(events);
            history.len()
        };
        self.inner.append(events).await?;
        self.log.acked.fetch_max(end, Ordering::SeqCst);
        Ok(())
    }
    async fn install_snapshot(&self, snapshot: &Snapshot) -> cairn_checkpoint::Result<()> {
        self.inner.install_snapshot(snapshot).await
    }
    async fn load(&self) -> cairn_checkpoint::Result<Recovered> {
        self.inner.load().await
    }
    async fn audit(&self, record: &AuditRecord) -> cairn_checkpoint::Result<()> {
        self.inner.audit(record).await?;
        self.log.audit_acknowledged(record);
        Ok(())
    }
    async fn complete(&self) -> cairn_checkpoint::Result<RunMeta> {
        let meta = self.inner.complete().await?;
        self.log.completed.store(true, Ordering::SeqCst);
        Ok(meta)
    }
    async fn fail(&self, error: &RunError) -> cairn_checkpoint::Result<RunMeta> {
        self.inner.fail(error).await
    }
}

/// The disk just before an operation, with what had been acknowledged by then.
#[derive(Debug)]
struct Capture {
    state: DiskState,
    op: u64,
    op_name: &'static str,
    acked: usize,
    /// Audit records acknowledged by then.
    audited: usize,
    begun: bool,
    completed: bool,
}

/// How a crash image that passed was recovered.
enum Recovery {
    /// No run yet, and none acknowledged.
    BeforeBegin,
    /// Recovery stopped with a typed `Corruption` error (its detail).
    Corruption(String),
    /// Recovered after cutting a torn last record.
    TornTailCut,
    /// Recovered with nothing to cut.
    Clean,
}

/// Checks one crash image; `Err` describes a violation.
async fn check_image(
    image: DiskState,
    capture: &Capture,
    run_id: &RunId,
    log: &AckLog,
    snapshots: &mut HashMap<usize, Snapshot>,
) -> std::result::Result<Recovery, String> {
    let disk = DiskModel::from_state(image);
    let fs: Arc<dyn Filesystem> = Arc::new(disk.clone());
    let factory = FileFactory::builder(ROOT)
        .filesystem(fs)
        .queue_config(worker::queue_config())
        .build()
        .map_err(|err| format!("a factory over the image fails: {err}"))?;
    let opened = match factory.open(run_id).await {
        Ok(Some(opened)) => opened,
        Ok(None) if capture.begun => {
            return Err("begin was acknowledged but the run is missing".to_owned());
        }
        Ok(None) => return Ok(Recovery::BeforeBegin),
        Err(err @ StoreError::Corruption { .. }) => {
            return Ok(Recovery::Corruption(err.to_string()));
        }
        Err(err) => return Err(format!("open failed with {err}")),
    };
    let recovered = opened.recovered;
    drop(opened.checkpointer);
    if capture.completed && recovered.meta.status != RunStatus::Completed {
        return Err(format!(
            "completion was acknowledged but the run is {}",
            recovered.meta.status
        ));
    }
    let covers = match &recovered.snapshot {
        None => 0,
        Some(_) => {
            let path = PathBuf::from(ROOT)
                .join("runs")
                .join(run_id.as_str())
                .join("queue.json");
            let bytes = disk
                .read(&path)
                .map_err(|err| format!("queue.json cannot be read back: {err}"))?;
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|err| format!("queue.json does not parse: {err}"))?;
            value
                .get("covers_seq")
                .and_then(serde_json::Value::as_u64)
                .and_then(|c| usize::try_from(c).ok())
                .ok_or("queue.json has no covers_seq")?
        }
    };
    let recovered_total = covers + recovered.events.len();
    if recovered_total < capture.acked {
        return Err(format!(
            "LOST acknowledged transitions: {} acknowledged, {recovered_total} recovered",
            capture.acked
        ));
    }
    // The history's lock is released before the audit check awaits.
    {
        let history = log
            .history
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if recovered_total > history.len()
            || history[covers..recovered_total] != recovered.events[..]
        {
            return Err(format!(
                "recovered events {}..{recovered_total} differ from what was appended",
                covers + 1
            ));
        }
        if let Some(snapshot) = &recovered.snapshot {
            let expected = match snapshots.entry(covers) {
                std::collections::hash_map::Entry::Occupied(found) => found.into_mut(),
                std::collections::hash_map::Entry::Vacant(slot) => slot.insert(
                    Queue::replay(None, history[..covers].iter(), worker::queue_config())
                        .map_err(|err| format!("the appended history does not replay: {err}"))?
                        .snapshot(),
                ),
            };
            if expected != snapshot {
                return Err(format!(
                    "the snapshot covering {covers} records differs from the replayed history"
                ));
            }
        }
    }
    check_audit(&factory, run_id, capture, log).await?;
    Ok(if recovered.torn_tail.is_some() {
        Recovery::TornTailCut
    } else {
        Recovery::Clean
    })
}

/// The run's audit log must read back after any power cut (a damaged last line is a torn
/// append, not corruption) and must hold every record acknowledged before the cut, in order;
/// records the recovery itself added may sit between them.
async fn check_audit(
    factory: &FileFactory,
    run_id: &RunId,
    capture: &Capture,
    log: &AckLog,
) -> std::result::Result<(), String> {
    let records = factory
        .read_audit(run_id)
        .await
        .map_err(|err| format!("the audit log cannot be read: {err}"))?;
    if capture.begun && !records.iter().any(|r| r.action == AuditAction::Begun) {
        return Err("begin was acknowledged but its `Begun` audit record is missing".to_owned());
    }
    let acknowledged = log
        .audits
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .iter()
        .take(capture.audited)
        .cloned()
        .collect::<Vec<_>>();
    let mut read = records
        .iter()
        .map(|record| serde_json::to_string(record).unwrap_or_default());
    for (n, wanted) in acknowledged.iter().enumerate() {
        if !read.any(|found| &found == wanted) {
            return Err(format!(
                "acknowledged audit record {} of {} is missing: {wanted}",
                n + 1,
                acknowledged.len()
            ));
        }
    }
    Ok(())
}

/// The crash choices tried for one capture: everything unsynced dropped; everything kept
/// with the last write whole; a seeded mix (some directory changes, a torn write); and,
/// when the last write touches two pages or more, two page subsets: every page but the
/// first (a later page landed without the earlier one), and a seeded subset in which each
/// page is lost, whole or torn; and, when some file was resized (cut or grown) since its
/// last sync, those size changes persisted, once with nothing else unsynced and once with
/// everything.
fn choices(state: &DiskState, rng: &mut SplitMix) -> Vec<CrashChoice> {
    let pending = state.pending_dir_ops();
    let last = state.last_unsynced_write();
    let mut out = BTreeSet::new();
    let fate = |keep: Option<usize>| keep.map_or(WriteFate::Dropped, WriteFate::Prefix);
    out.insert(CrashChoice {
        keep_dir_ops: 0,
        last_write: WriteFate::Dropped,
        resizes_persist: false,
    });
    out.insert(CrashChoice {
        keep_dir_ops: pending,
        last_write: fate(last),
        resizes_persist: false,
    });
    out.insert(CrashChoice {
        keep_dir_ops: rng.below(pending as u64 + 1) as usize,
        last_write: fate(last.map(|len| rng.below(len as u64 + 1) as usize)),
        resizes_persist: false,
    });
    if let Some(pages) = state.last_unsynced_pages().filter(|pages| *pages >= 2) {
        let mut later_only = vec![PageFate::Whole; pages];
        later_only[0] = PageFate::Lost;
        out.insert(CrashChoice {
            keep_dir_ops: pending,
            last_write: WriteFate::Pages(later_only),
            resizes_persist: false,
        });
        let subset = (0..pages)
            .map(|_| match rng.below(3) {
                0 => PageFate::Lost,
                1 => PageFate::Whole,
                _ => PageFate::Torn(rng.below(PAGE_SIZE as u64) as usize),
            })
            .collect();
        out.insert(CrashChoice {
            keep_dir_ops: rng.below(pending as u64 + 1) as usize,
            last_write: WriteFate::Pages(subset),
            resizes_persist: false,
        });
    }
    if state.has_unsynced_resizes() {
        // A file system commits size changes with its metadata, on its own schedule: a
        // cut (or a growth) not yet synced may be on disk while the data written after it
        // is not, or with all of it.
        out.insert(CrashChoice {
            keep_dir_ops: rng.below(pending as u64 + 1) as usize,
            last_write: WriteFate::Dropped,
            resizes_persist: true,
        });
        out.insert(CrashChoice {
            keep_dir_ops: pending,
            last_write: fate(last),
            resizes_persist: true,
        });
    }
    out.into_iter().collect()
}

/// A crash choice in a line: page subsets are summarized (they may list a thousand pages).
fn describe(choice: &CrashChoice) -> String {
    let resizes = if choice.resizes_persist {
        ", unsynced size changes kept"
    } else {
        ""
    };
    let writes = match &choice.last_write {
        WriteFate::Pages(pages) => {
            let shown: Vec<String> = pages
                .iter()
                .take(8)
                .map(|page| match page {
                    PageFate::Lost => "lost".to_owned(),
                    PageFate::Whole => "whole".to_owned(),
                    PageFate::Torn(keep) => format!("torn@{keep}"),
                })
                .collect();
            let more = pages.len().saturating_sub(shown.len());
            format!(
                "{} dir ops kept, pages [{}{}]",
                choice.keep_dir_ops,
                shown.join(", "),
                if more > 0 {
                    format!(", {more} more")
                } else {
                    String::new()
                }
            )
        }
        other => format!("{} dir ops kept, last write {other:?}", choice.keep_dir_ops),
    };
    format!("{writes}{resizes}")
}

fn check_all(
    captures: Receiver<Capture>,
    run_id: RunId,
    log: Arc<AckLog>,
    seed: u64,
) -> Result<PowerLossTotals> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::io("start tokio runtime", Path::new("."), source))?;
    let mut rng = SplitMix::new(seed);
    let mut totals = PowerLossTotals::default();
    let mut snapshots = HashMap::new();
    for capture in captures {
        for choice in choices(&capture.state, &mut rng) {
            let image = capture.state.crash_image(&choice);
            totals.states += 1;
            if matches!(choice.last_write, WriteFate::Pages(_)) {
                totals.page_subset_states += 1;
            }
            if choice.resizes_persist {
                totals.resized_states += 1;
            }
            match runtime.block_on(check_image(image, &capture, &run_id, &log, &mut snapshots)) {
                Ok(Recovery::Corruption(detail)) => {
                    totals.corruption_stops += 1;
                    totals.violation(format!(
                        "workload seed {seed}, crash before op {} ({}), {}: recovery stopped with Corruption: {detail}",
                        capture.op,
                        capture.op_name,
                        describe(&choice)
                    ));
                }
                Ok(Recovery::TornTailCut) => totals.torn_tails_cut += 1,
                Ok(Recovery::BeforeBegin) => totals.before_begin += 1,
                Ok(Recovery::Clean) => {}
                Err(problem) => totals.violation(format!(
                    "workload seed {seed}, crash before op {} ({}), {}: {problem}",
                    capture.op,
                    capture.op_name,
                    describe(&choice)
                )),
            }
        }
    }
    Ok(totals)
}

/// Drives one workload over a fresh disk and checks its captures.
///
/// # Errors
///
/// When the workload cannot be set up or its executor fails outright.
pub fn run_workload(seed: u64, tasks: usize) -> Result<PowerLossTotals> {
    run_workload_over(seed, tasks, &|disk| Arc::new(disk))
}

/// [`run_workload`] with the workload's file system built by `layer` over the recording
/// disk. Tests pass a layer that breaks a durability rule (for example, an fdatasync that
/// does nothing) to prove the exploration catches it; crash images are always checked over
/// the plain model.
///
/// # Errors
///
/// As [`run_workload`].
pub fn run_workload_over(
    seed: u64,
    tasks: usize,
    layer: &dyn Fn(DiskModel) -> Arc<dyn Filesystem>,
) -> Result<PowerLossTotals> {
    run_workload_layered(seed, tasks, layer, None)
}

/// [`run_workload_over`] with `checkpointer_layer`, if any, around the run's checkpointer,
/// inside the recorder (see [`AckRecordingFactory::with_checkpointer_layer`]). Tests pass a
/// layer that changes what is appended or installed, to prove the exploration catches a
/// store that recovers something other than what it was given.
///
/// # Errors
///
/// As [`run_workload`].
pub fn run_workload_layered(
    seed: u64,
    tasks: usize,
    layer: &dyn Fn(DiskModel) -> Arc<dyn Filesystem>,
    checkpointer_layer: Option<Arc<CheckpointerLayer>>,
) -> Result<PowerLossTotals> {
    let mut rng = SplitMix::new(seed);
    let every = 1 + rng.below(2);
    let offset = rng.below(every);
    let durability = if rng.chance(50) {
        Durability::Sync
    } else {
        Durability::Group {
            max_delay: std::time::Duration::from_micros(100),
        }
    };
    let compact_every = 8 + rng.below(24);
    let disk = DiskModel::new();
    disk.create_durable_dir(Path::new(ROOT))
        .map_err(|source| Error::io("create model root", Path::new(ROOT), source))?;
    let log = Arc::new(AckLog::default());
    let run_id = RunId::new(format!("power-{seed}"))?;

    let (sender, receiver) = sync_channel::<Capture>(64);
    let recorder_log = Arc::clone(&log);
    disk.set_recorder(
        every,
        offset,
        Box::new(move |state, op, op_name| {
            let capture = Capture {
                state: state.clone(),
                op,
                op_name,
                acked: recorder_log.acked(),
                audited: recorder_log.audited(),
                begun: recorder_log.begun.load(Ordering::SeqCst),
                completed: recorder_log.completed.load(Ordering::SeqCst),
            };
            // The checker only stops early on an error of its own, reported below.
            let _ = sender.send(capture);
        }),
    );
    let checker_log = Arc::clone(&log);
    let checker_id = run_id.clone();
    let checker_seed = rng.next_u64();
    let checker =
        std::thread::spawn(move || check_all(receiver, checker_id, checker_log, checker_seed));

    let workload = (|| -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::io("start tokio runtime", Path::new("."), source))?;
        let factory = FileFactory::builder(ROOT)
            .filesystem(layer(disk.clone()))
            .durability(durability)
            .compact_after_records(compact_every)
            .queue_config(worker::queue_config())
            .build()?;
        let mut factory = AckRecordingFactory::new(factory, Arc::clone(&log));
        if let Some(layer) = checkpointer_layer {
            factory = factory.with_checkpointer_layer(layer);
        }
        let executor = Executor::new(
            Arc::new(factory),
            worker::registry(None),
            worker::executor_config().with_concurrency(4),
        )?;
        let plan = Dag::generate(seed, tasks, 0)
            .plan(&format!("power-{seed}"))
            .run_id(run_id.clone());
        let report = runtime.block_on(executor.run(plan, Start::Fresh, RunSignals::default()))?;
        if report.disposition != cairn_executor::Disposition::Complete {
            return Err(Error::Worker(format!(
                "power-loss workload {seed} ended as {}",
                report.disposition
            )));
        }
        Ok(())
    })();
    disk.clear_recorder();
    let mut totals = checker
        .join()
        .map_err(|_| Error::Worker("the power-loss checker panicked".to_owned()))??;
    workload?;
    totals.workloads = 1;
    Ok(totals)
}

/// Runs workloads until `options.states` crash states were checked.
///
/// # Errors
///
/// When a workload cannot be set up or fails outright (violations are counted, not errors).
pub fn run(options: &PowerLossOptions) -> Result<PowerLossTotals> {
    let mut rng = SplitMix::new(options.seed ^ 0x9031_05CE);
    let mut totals = PowerLossTotals::default();
    while totals.states < options.states {
        let seed = rng.next_u64() % 1_000_000_000;
        totals.absorb(run_workload(seed, options.tasks)?);
    }
    Ok(totals)
}
