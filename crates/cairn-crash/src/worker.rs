//! The worker: one process that opens (or adopts) the generated run and drains it.
//!
//! Every handler body appends `(run, task id, attempt, idempotency key)` to the ledger
//! before it completes, and every completion the store acknowledged is written to the
//! acknowledgement ledger (`acks.jsonl`) once its append returned. The harness kills this process at random moments, or it aborts
//! itself at a forced crash point, and then starts it again with the same options. It may
//! also stop it with SIGTERM: the drive then stops at once (no grace), releases the attempts
//! it cut off (`Event::Released`: they run again, at the same attempt number) and leaves the
//! run resumable, and the worker exits with [`STOPPED_EXIT_CODE`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cairn_checkpoint::{CheckpointerFactory, Durability, RunFilter, RunStatus};
use cairn_checkpoint_file::{FileFactory, StdFilesystem};
use cairn_checkpoint_sled::SledFactory;
use cairn_executor::{
    Disposition, Executor, ExecutorConfig, Finish, Registry, RetryPolicy, RunSignals, Start,
    TaskFailure, handler_fn,
};
use cairn_queue::{Event, Handoff, QueueConfig};

use crate::crash_point::CrashFs;
use crate::dag::{self, Behaviour, Dag};
use crate::error::{Error, Result};
use crate::ledger::{Acknowledged, Ledger, LedgerEntry};

/// Which checkpoint adapter a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adapter {
    /// `cairn-checkpoint-file`.
    File,
    /// `cairn-checkpoint-sled`.
    Sled,
}

impl Adapter {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Adapter::File => "file",
            Adapter::Sled => "sled",
        }
    }

    /// Parses `file` or `sled`.
    ///
    /// # Errors
    ///
    /// `Error::Setting` for anything else.
    pub fn parse(text: &str) -> Result<Adapter> {
        match text {
            "file" => Ok(Adapter::File),
            "sled" => Ok(Adapter::Sled),
            _ => Err(Error::Setting {
                text: text.to_owned(),
                reason: "the adapter is `file` or `sled`".to_owned(),
            }),
        }
    }
}

/// The durability names of the command line: `sync`, `group`, `none`.
///
/// # Errors
///
/// `Error::Setting` for anything else.
pub fn parse_durability(text: &str) -> Result<Durability> {
    match text {
        "sync" => Ok(Durability::Sync),
        "group" => Ok(Durability::Group {
            max_delay: Duration::from_micros(200),
        }),
        "none" => Ok(Durability::None),
        _ => Err(Error::Setting {
            text: text.to_owned(),
            reason: "the durability is `sync`, `group` or `none`".to_owned(),
        }),
    }
}

/// The command-line name of a durability.
pub fn durability_name(durability: Durability) -> &'static str {
    match durability {
        Durability::Sync => "sync",
        Durability::Group { .. } => "group",
        Durability::None => "none",
    }
}

/// Everything a worker needs; the harness passes the same options to every start.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The folder holding the store (`state/` or `state.sled`) and `ledger.jsonl`.
    pub dir: PathBuf,
    /// The adapter.
    pub adapter: Adapter,
    /// The durability.
    pub durability: Durability,
    /// The DAG seed.
    pub seed: u64,
    /// About how many tasks.
    pub tasks: usize,
    /// The longest a body works, in microseconds.
    pub max_work_us: u64,
    /// File adapter: compact after this many journal records (0: the adapter's default).
    pub compact_every: u64,
}

impl WorkerOptions {
    /// The arguments that start a worker with these options (after the binary name).
    pub fn to_args(&self) -> Vec<String> {
        vec![
            "worker".to_owned(),
            "--dir".to_owned(),
            self.dir.display().to_string(),
            "--adapter".to_owned(),
            self.adapter.name().to_owned(),
            "--durability".to_owned(),
            durability_name(self.durability).to_owned(),
            "--seed".to_owned(),
            self.seed.to_string(),
            "--tasks".to_owned(),
            self.tasks.to_string(),
            "--max-work-us".to_owned(),
            self.max_work_us.to_string(),
            "--compact-every".to_owned(),
            self.compact_every.to_string(),
        ]
    }

    /// The DAG this worker drains.
    pub fn dag(&self) -> Dag {
        Dag::generate(self.seed, self.tasks, self.max_work_us)
    }

    /// The scope of the run: one per seed, so runs of different seeds never adopt each other.
    pub fn scope(&self) -> String {
        format!("seed-{}", self.seed)
    }
}

/// The file adapter's root under a worker folder.
pub fn file_root(dir: &Path) -> PathBuf {
    dir.join("state")
}

/// The sled database under a worker folder.
pub fn sled_path(dir: &Path) -> PathBuf {
    dir.join("state.sled")
}

/// The ledger under a worker folder.
pub fn ledger_path(dir: &Path) -> PathBuf {
    dir.join("ledger.jsonl")
}

/// The acknowledgement ledger under a worker folder.
pub fn acks_path(dir: &Path) -> PathBuf {
    dir.join("acks.jsonl")
}

/// The queue bounds used by the worker, the verifier and compaction alike.
pub fn queue_config() -> QueueConfig {
    QueueConfig::default()
}

/// Opens the store of `options`. For the file adapter, `crash` wraps the real file system
/// (the worker arms it from `CAIRN_CRASH_AT`; the verifier passes `None`).
///
/// # Errors
///
/// The adapter's error when the store cannot be opened.
pub fn open_factory(
    options: &WorkerOptions,
    crash: Option<CrashFs>,
) -> Result<Arc<dyn CheckpointerFactory>> {
    match options.adapter {
        Adapter::File => {
            let mut builder = FileFactory::builder(file_root(&options.dir))
                .durability(options.durability)
                .queue_config(queue_config());
            if options.compact_every > 0 {
                builder = builder.compact_after_records(options.compact_every);
            }
            let fs: Arc<dyn cairn_checkpoint_file::Filesystem> = match crash {
                Some(crash) => Arc::new(crash),
                None => Arc::new(StdFilesystem),
            };
            Ok(Arc::new(builder.filesystem(fs).build()?))
        }
        Adapter::Sled => Ok(Arc::new(
            SledFactory::builder()
                .path(sled_path(&options.dir))
                .durability(options.durability)
                .build()?,
        )),
    }
}

/// The handler registry: both kinds run the same body, which writes to `ledger` when
/// there is one (the in-process power-loss workload has none).
pub fn registry(ledger: Option<Arc<Ledger>>) -> Registry {
    let mut registry = Registry::new();
    for kind in [dag::ROOT_KIND, dag::CHILD_KIND] {
        let ledger = ledger.clone();
        registry.register(
            kind,
            handler_fn(move |ctx| {
                let ledger = ledger.clone();
                async move { run_body(ctx, ledger).await }
            }),
        );
    }
    registry
}

/// One body: work, write the ledger line, fail attempt 1 if planned, else enqueue the
/// children and complete.
async fn run_body(
    ctx: cairn_executor::TaskContext,
    ledger: Option<Arc<Ledger>>,
) -> cairn_executor::HandlerResult {
    let Some(behaviour) = Behaviour::from_inputs(ctx.inputs()) else {
        return Err(TaskFailure::permanent(
            "bad_inputs",
            format!("task {} has inputs that are not a behaviour", ctx.task_id()),
        ));
    };
    if behaviour.work_us > 0 {
        tokio::time::sleep(Duration::from_micros(behaviour.work_us)).await;
    }
    let entry = LedgerEntry {
        run: ctx.run_id().to_string(),
        task: ctx.task_id().0,
        attempt: ctx.attempt(),
        key: ctx.idempotency_key(),
        name: behaviour.name.clone(),
    };
    if let Some(ledger) = ledger {
        tokio::task::spawn_blocking(move || ledger.append(&entry))
            .await
            .map_err(|err| TaskFailure::permanent("ledger", err.to_string()))?
            .map_err(|err| TaskFailure::permanent("ledger", err.to_string()))?;
    }
    if behaviour.fail_first && ctx.attempt() == 1 {
        return Err(TaskFailure::retryable(
            "planned",
            format!("{} fails its first attempt on purpose", behaviour.name),
        ));
    }
    for child in &behaviour.children {
        ctx.enqueue(child.child_spec())
            .await
            .map_err(|err| TaskFailure::permanent("enqueue", err.to_string()))?;
    }
    Ok(Finish::Complete(Handoff {
        done: vec![behaviour.name],
        ..Handoff::default()
    }))
}

/// The exit code of a worker that SIGTERM stopped and that left its run resumable.
pub const STOPPED_EXIT_CODE: u8 = 4;

/// How a worker's drive ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerEnd {
    /// The run completed (now or by an earlier start).
    Completed,
    /// SIGTERM stopped it; the run is left resumable.
    Stopped,
    /// It ended otherwise (failed): a violation for the harness.
    Other,
}

/// The executor settings of every crash-test run: retries come back within milliseconds,
/// and a stop gives running attempts no grace, so a SIGTERM cuts off whatever runs.
pub fn executor_config() -> ExecutorConfig {
    ExecutorConfig::default()
        .with_shutdown_grace(Duration::ZERO)
        .with_concurrency(8)
        .with_require_durability(true)
        .with_retry(RetryPolicy {
            base: Duration::from_millis(1),
            max: Duration::from_millis(4),
            seed: 7,
        })
        .with_queue(queue_config())
}

/// Runs the worker to the end of its run, or until SIGTERM stops it.
///
/// # Errors
///
/// The store, ledger or executor error that stopped it, or a SIGTERM handler that cannot be
/// installed.
pub async fn run(options: &WorkerOptions) -> Result<WorkerEnd> {
    let crash = match options.adapter {
        Adapter::File => Some(CrashFs::from_env(Arc::new(StdFilesystem))?),
        Adapter::Sled => None,
    };
    let factory = open_factory(options, crash)?;
    // A kill can land after the run completed but before this process exited; the next
    // start must then not begin a second run of the same work.
    let done = RunFilter {
        workflow: Some(dag::WORKFLOW.to_owned()),
        scope: Some(options.scope()),
        statuses: vec![RunStatus::Completed],
    };
    if !factory.list(&done).await?.is_empty() {
        return Ok(WorkerEnd::Completed);
    }
    let signals = RunSignals::default();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| {
        Error::io("install a SIGTERM handler", Path::new("(signal)"), source)
    })?;
    let shutdown = signals.shutdown.clone();
    tokio::spawn(async move {
        if terminate.recv().await.is_some() {
            shutdown.cancel();
        }
    });
    let ledger = Arc::new(Ledger::open(&ledger_path(&options.dir))?);
    let acks_file = acks_path(&options.dir);
    let acks = Ledger::open(&acks_file)?;
    let executor = Executor::new(factory, registry(Some(ledger)), executor_config())?
        .on_acknowledged(move |run_id, events| {
            let completed: Vec<Acknowledged> = events
                .iter()
                .filter_map(|event| match event {
                    Event::Completed { id, attempt, .. } => Some(Acknowledged {
                        run: run_id.to_string(),
                        task: id.0,
                        attempt: *attempt,
                    }),
                    _ => None,
                })
                .collect();
            // A lost line only weakens the check of this completion, so the drive goes on;
            // the worker log says why the verifier saw fewer acknowledgements.
            if let Err(err) = acks.append_acknowledged(&completed) {
                eprintln!(
                    "cairn-crash worker: cannot record acknowledged completions in {}: {err}",
                    acks_file.display()
                );
            }
        });
    let plan = options.dag().plan(&options.scope());
    let report = match executor.run(plan, Start::Auto, signals).await {
        Ok(report) => report,
        // A SIGTERM before the run was begun: nothing was written, the next start begins it.
        Err(cairn_executor::Error::ShutDownBeforeBegin { .. }) => return Ok(WorkerEnd::Stopped),
        Err(error) => return Err(error.into()),
    };
    Ok(match report.disposition {
        Disposition::Complete => WorkerEnd::Completed,
        Disposition::LeaveRunning => WorkerEnd::Stopped,
        _ => {
            eprintln!(
                "cairn-crash worker: run {} ended as {}",
                report.run_id, report.disposition
            );
            WorkerEnd::Other
        }
    })
}
