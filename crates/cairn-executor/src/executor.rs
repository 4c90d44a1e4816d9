//! `Executor::run`: find or begin the run, drive it in its own task, and finalize it on every
//! exit path.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cairn_checkpoint::{
    AuditAction, AuditRecord, Checkpointer, CheckpointerFactory, META_FORMAT_VERSION,
    NoopCheckpointer, Opened, RunFilter, RunId, RunMeta, RunStatus,
};
use cairn_queue::{Event, Queue, SNAPSHOT_FORMAT_VERSION, Status, StatusCounts, Timestamp};
use cairn_telemetry::{emit, names};
use tracing::Instrument;
use tracing::instrument::WithSubscriber;

use crate::config::ExecutorConfig;
use crate::drive::{Clock, Drive, ResumeInfo, panic_message};
use crate::error::{Error, Result};
use crate::handler::Registry;
use crate::outcome::{CancelCause, Disposition, RunReport, RunStop, classify};
use crate::plan::{RunPlan, RunSignals, Start, describe_task};
use crate::take_over::{TakenOver, take_over};

/// Drives runs of task graphs through a checkpoint store. See the crate docs.
#[derive(Debug, Clone)]
pub struct Executor {
    factory: Arc<dyn CheckpointerFactory>,
    registry: Arc<Registry>,
    config: Arc<ExecutorConfig>,
    on_acknowledged: Option<AcknowledgedHook>,
    on_begun: Option<BegunHook>,
}

/// What [`Executor::on_begun`] calls: the run that was durably begun.
#[derive(Clone)]
struct BegunHook(Arc<dyn Fn(&RunId) + Send + Sync>);

impl std::fmt::Debug for BegunHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BegunHook")
    }
}

/// The callback [`Executor::on_acknowledged`] takes.
type AcknowledgedFn = dyn Fn(&RunId, &[Event]) + Send + Sync;

/// What [`Executor::on_acknowledged`] calls: the run and one acknowledged batch of events.
#[derive(Clone)]
pub(crate) struct AcknowledgedHook(Arc<AcknowledgedFn>);

impl AcknowledgedHook {
    pub(crate) fn call(&self, run_id: &RunId, events: &[Event]) {
        (self.0)(run_id, events);
    }
}

impl std::fmt::Debug for AcknowledgedHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AcknowledgedHook")
    }
}

/// A run ready to drive: its writer and its queue.
struct Prepared {
    run_id: RunId,
    checkpointer: Arc<dyn Checkpointer>,
    queue: Queue,
    phases_started: BTreeSet<u32>,
    durable: bool,
    resumed: Option<Adopted>,
    /// The take-over's `Recovered` record, written once its events are journaled (the
    /// drive's first append), so it never says the retries are journaled when they are not.
    audits: Vec<AuditRecord>,
}

/// What adopting a run found.
struct Adopted {
    previous_epoch: u64,
    lease_epoch: u64,
    tasks_reset: u64,
    /// The input the adopted run was started with.
    input: String,
}

/// Why a run found by the lookup is not adopted.
enum Refusal {
    /// Its state does not fit: quarantine it. `source` is the queue's error when its events
    /// do not replay, kept typed for `Error::AdoptRefused`.
    Unfit {
        reason: String,
        source: Option<cairn_queue::Error>,
    },
    /// It is not `running` (nobody claimed it), or someone else claimed or finished it
    /// meanwhile: leave it alone. `status` is the status it was found in.
    Gone { status: RunStatus, reason: String },
}

impl Executor {
    /// An executor over `factory` with these handlers and settings.
    ///
    /// `factory` is any adapter, or an `Arc` (or `Box`) of one, `Arc<dyn
    /// CheckpointerFactory>` included: the same argument `ResumePolicy::new` (`cairn-runs`)
    /// takes, so one `Arc` of a store can serve both.
    ///
    /// # Errors
    ///
    /// `Error::InvalidConfig` when `config.concurrency` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory};
    /// use cairn_executor::{Executor, ExecutorConfig, Registry};
    ///
    /// let store = MemoryFactory::new();
    /// let by_value = Executor::new(store.clone(), Registry::new(), ExecutorConfig::default())?;
    /// let shared: Arc<dyn CheckpointerFactory> = Arc::new(store);
    /// let by_arc = Executor::new(Arc::clone(&shared), Registry::new(), ExecutorConfig::default())?;
    /// # let _ = (by_value, by_arc);
    /// # Ok::<(), cairn_executor::Error>(())
    /// ```
    pub fn new(
        factory: impl CheckpointerFactory,
        registry: Registry,
        config: ExecutorConfig,
    ) -> Result<Executor> {
        if config.concurrency == 0 {
            return Err(Error::InvalidConfig {
                reason: "concurrency must be at least 1".to_owned(),
            });
        }
        Ok(Executor {
            factory: Arc::new(factory),
            registry: Arc::new(registry),
            config: Arc::new(config),
            on_acknowledged: None,
            on_begun: None,
        })
    }

    /// Calls `hook` with the run's id once this executor has durably begun a new run
    /// (`Start::Fresh`, or `Start::Auto` with nothing to adopt): right after `begin`
    /// returned, before any task starts. It is not called when `begin` fails, when the plan
    /// is refused first (`Error::InvalidPlan`), when the run degraded to a non-durable
    /// checkpointer (nothing was stored), or for an adopted run. A host that may record
    /// something about the run only once it exists does it here: the `ForcedFresh` audit of
    /// a forced run (`ResumePolicy::fresh_run_begun` in `cairn-runs`), which would otherwise
    /// name a run that never began. The hook runs on the caller's task and must be quick
    /// (send to a channel, say); a panic in it unwinds out of `run` before the drive starts,
    /// leaving the begun run `running`, as a crash would.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use cairn_checkpoint::MemoryFactory;
    /// use cairn_executor::{
    ///     Executor, ExecutorConfig, Finish, Phase, Registry, RunPlan, RunSignals, Start,
    ///     handler_fn,
    /// };
    /// use cairn_queue::{Handoff, TaskSpec};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cairn_executor::Error> {
    /// let registry = Registry::new().with(
    ///     "step",
    ///     handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
    /// );
    /// let begun = Arc::new(Mutex::new(Vec::new()));
    /// let seen = Arc::clone(&begun);
    /// let executor = Executor::new(Arc::new(MemoryFactory::new()), registry, ExecutorConfig::default())?
    ///     .on_begun(move |run_id| seen.lock().unwrap().push(run_id.clone()));
    /// let mut phase = Phase::new("only");
    /// phase.task(TaskSpec::new("step"), []);
    /// let plan = RunPlan::new("demo", "default").phase(phase);
    /// let report = executor.run(plan, Start::Fresh, RunSignals::default()).await?;
    /// assert_eq!(*begun.lock().unwrap(), vec![report.run_id]);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn on_begun(mut self, hook: impl Fn(&RunId) + Send + Sync + 'static) -> Executor {
        self.on_begun = Some(BegunHook(Arc::new(hook)));
        self
    }

    /// Checks `plan` against this executor's handlers and queue bounds, as `run` does before
    /// it begins a fresh run: every kind is non-empty and has a handler, every `after` names an earlier task
    /// of its phase, no `depends_on` holds ids, no task is allowed 0 attempts, and the queue
    /// can hold every task. (Inputs nested too deep are still refused by the queue, once the
    /// run has begun.)
    ///
    /// # Errors
    ///
    /// `Error::InvalidPlan` with every problem found.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::NoopFactory;
    /// use cairn_executor::{Error, Executor, ExecutorConfig, Phase, PlanProblem, Registry, RunPlan};
    /// use cairn_queue::TaskSpec;
    ///
    /// let executor = Executor::new(Arc::new(NoopFactory), Registry::new(), ExecutorConfig::default())?;
    /// let mut phase = Phase::new("build");
    /// phase.task(TaskSpec::new("compile"), [3]);
    /// let plan = RunPlan::new("site", "default").phase(phase);
    /// let Err(Error::InvalidPlan { problems }) = executor.check_plan(&plan) else { panic!() };
    /// assert!(matches!(problems[0], PlanProblem::UnknownKind { .. }));
    /// assert!(matches!(problems[1], PlanProblem::BadAfter { after: 3, .. }));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn check_plan(&self, plan: &RunPlan) -> Result<()> {
        let problems = plan.problems(&self.registry, &self.config.queue);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidPlan { problems })
        }
    }

    /// Calls `hook` with every batch of events a run's checkpointer acknowledged (appended,
    /// and durable unless the run degraded to a non-durable checkpointer; see
    /// [`ExecutorConfig::with_require_durability`]), in journal order, right after the append
    /// returns and before the drive goes on. A host that reports progress uses it to say a
    /// task is done only once its `Completed` event is durable: a handler's own return comes
    /// earlier, and a crash between the two runs the task again on resume. The hook runs on
    /// the drive's task, so it must be quick (send to a channel, say); a panic in it is a
    /// panic of the drive, which fails the run.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use cairn_checkpoint::NoopFactory;
    /// use cairn_executor::{
    ///     Executor, ExecutorConfig, Finish, Phase, Registry, RunPlan, RunSignals, Start,
    ///     handler_fn,
    /// };
    /// use cairn_queue::{Event, Handoff, TaskSpec};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cairn_executor::Error> {
    /// let registry = Registry::new().with(
    ///     "step",
    ///     handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
    /// );
    /// let done = Arc::new(Mutex::new(Vec::new()));
    /// let seen = Arc::clone(&done);
    /// let executor = Executor::new(Arc::new(NoopFactory), registry, ExecutorConfig::default())?
    ///     .on_acknowledged(move |_run, events| {
    ///         for event in events {
    ///             if let Event::Completed { id, .. } = event {
    ///                 seen.lock().unwrap().push(*id);
    ///             }
    ///         }
    ///     });
    /// let mut phase = Phase::new("only");
    /// phase.task(TaskSpec::new("step"), []);
    /// let plan = RunPlan::new("demo", "default").phase(phase);
    /// executor.run(plan, Start::Fresh, RunSignals::default()).await?;
    /// assert_eq!(done.lock().unwrap().len(), 1);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn on_acknowledged(
        mut self,
        hook: impl Fn(&RunId, &[Event]) + Send + Sync + 'static,
    ) -> Executor {
        self.on_acknowledged = Some(AcknowledgedHook(Arc::new(hook)));
        self
    }

    /// Finds or begins the run `start` asks for, drives `plan` to its end, and records the
    /// outcome: `completed`, `failed`, or left `running` after a graceful shutdown.
    ///
    /// A fresh run's plan is checked against the registry before the run is begun
    /// (`Error::InvalidPlan`). Once the run exists, every exit is finalized: completion, a
    /// build error before any task starts (an adopted run's plan that no longer fits), failed tasks, a handler or executor panic, a caller cancel, the deadline
    /// and shutdown. A failed run is a report with `Disposition::Fail`, not an `Err`.
    ///
    /// # Errors
    ///
    /// - `Error::InvalidPlan` when a fresh run is to be begun (`Start::Fresh`, or
    ///   `Start::Auto` with nothing to adopt) and the plan cannot run (see
    ///   [`Executor::check_plan`]): nothing is written, so the corrected plan can begin under
    ///   the same run id. An adopted run is not checked first: it exists already, and a plan
    ///   that does not fit it (a kind whose handler is gone, say) fails it with kind `build`
    ///   before any task starts, so it can be resumed once the plan is fixed.
    /// - `Error::ShutDownBeforeBegin` when `signals.shutdown` is cancelled before a fresh run
    ///   is begun: nothing is written. (A shutdown during `begin` itself still leaves the new
    ///   run `running`, resumable, with nothing started.)
    /// - `Error::RunExists` when the plan's run id names a run the store already holds,
    ///   with that run's status and what to do about it. Nothing is changed.
    /// - `Error::BeginFailed` when `begin` fails and `require_durability` is set, as it is by
    ///   default (without it, the run logs a WARN and degrades to a non-durable
    ///   checkpointer).
    /// - `Error::Lookup` when `Start::Auto` cannot list runs.
    /// - `Error::RunInProgress` when `Start::Auto` finds no run to adopt but a run of the
    ///   workflow and scope that another process drives (or claimed meanwhile): nothing is
    ///   begun beside it.
    /// - `Error::Open`, `Error::AdoptNotFound`, `Error::AdoptRefused` when `Start::Adopt`
    ///   (or the adoption of an interrupted run) cannot open the run. `Error::Claim` when
    ///   `Start::Auto` cannot claim an interrupted run it found (the store failed). When
    ///   `Start::Auto` meets a run of the workflow and scope that a newer build wrote, the
    ///   store's `NewerFormat` comes as `Error::Claim` (newer metadata, which the claim reads)
    ///   or `Error::Open` (a newer journal or snapshot): it is left in place and nothing is
    ///   begun.
    /// - `Error::AdoptNotClaimed` when `Start::Adopt` or `Start::AdoptInterrupted` names a
    ///   run that is not `running`: a failed or paused run must be claimed first
    ///   (`ResumePolicy::resume` in `cairn-runs`, or `CheckpointerFactory::claim`).
    /// - `Error::AdoptLeaseMoved` when `Start::Adopt` or `Start::AdoptInterrupted` names a run whose stored
    ///   lease epoch is not the one the caller claimed (another claim overtook it): nothing
    ///   is run.
    /// - `Error::Finalize` when the run was driven but `complete` or `fail` failed; the error
    ///   carries the report.
    ///
    /// # Examples
    ///
    /// A failed run is a report, not an `Err`, and is stored as `failed`:
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunStatus};
    /// use cairn_executor::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = MemoryFactory::new();
    /// let registry = Registry::new()
    ///     .with("ok", handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }))
    ///     .with("broken", handler_fn(|_ctx| async { Err(TaskFailure::permanent("bug", "no")) }));
    /// let executor = Executor::new(store.clone(), registry, ExecutorConfig::default())?;
    /// fn plan(kind: &str) -> RunPlan {
    ///     let mut phase = Phase::new("only");
    ///     phase.task(TaskSpec::new(kind), []);
    ///     RunPlan::new("site", "default").phase(phase)
    /// }
    ///
    /// let report = executor.run(plan("ok"), Start::Fresh, RunSignals::default()).await?;
    /// assert_eq!(report.disposition, Disposition::Complete);
    /// let stored = store.load_meta(&report.run_id).await?.map(|meta| meta.status);
    /// assert_eq!(stored, Some(RunStatus::Completed));
    ///
    /// let report = executor.run(plan("broken"), Start::Fresh, RunSignals::default()).await?;
    /// let Disposition::Fail(error) = &report.disposition else { panic!("the task failed") };
    /// assert_eq!(error.kind, "task_failed");
    /// let stored = store.load_meta(&report.run_id).await?.map(|meta| meta.status);
    /// assert_eq!(stored, Some(RunStatus::Failed));
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: stop a run with `RunSignals::shutdown` (it stays resumable) or
    /// `RunSignals::cancel` instead. Dropping the future aborts the drive, and with it the
    /// attempts in flight, without finalizing: a begun or adopted run is left `running`, as
    /// after a crash. Its attempts in flight count as spent, their
    /// [`TaskContext::cancellation`](crate::TaskContext::cancellation) tokens fire (once the
    /// runtime has dropped the aborted drive), and handler work under `spawn_blocking` runs
    /// to its end unless it watches its token. A later `Start::Auto`, or the
    /// resume policy, recovers the run. A drop while the outcome is being recorded may or may
    /// not leave it recorded. A drop once the drive began reports the run's end
    /// (`orchestrator run finished`) as `leave_running`, with a WARN, so its metrics end too.
    ///
    /// The run's writer lock is released once the aborted drive has been dropped, which the
    /// runtime does at its next poll, not always before the drop returns. With the file
    /// adapter, an append whose records were buffered is still written, and dropping the
    /// writer waits for that, blocking the thread that drops it. A `begin` the file adapter
    /// has under way still creates the run (left `running`, nothing started). A drop after
    /// `Start::Auto` claimed an interrupted run but before it opened it leaves the run
    /// claimed by this process: the resume policy tells other processes it is `Live` until
    /// this one has exited, while `Start::Auto` adopts it from any process.
    pub async fn run(&self, plan: RunPlan, start: Start, signals: RunSignals) -> Result<RunReport> {
        let clock = Clock::start();
        let prepared = match &start {
            Start::Fresh => self.begin(&plan, &signals, clock.now()).await?,
            Start::Auto => match self.find_interrupted(&plan, clock.now()).await? {
                Some(prepared) => prepared,
                None => self.begin(&plan, &signals, clock.now()).await?,
            },
            Start::Adopt {
                run_id,
                lease_epoch,
            } => {
                self.adopt(&plan, run_id, Retry::FailedTasks, *lease_epoch, clock.now())
                    .await?
            }
            Start::AdoptInterrupted {
                run_id,
                lease_epoch,
            } => {
                self.adopt(&plan, run_id, Retry::Nothing, *lease_epoch, clock.now())
                    .await?
            }
        };
        let Prepared {
            run_id,
            checkpointer,
            queue,
            phases_started,
            durable,
            resumed,
            audits,
        } = prepared;
        let is_resume = resumed.is_some();
        // An adopted run continues what it was started for: say so when that is not what
        // this plan asked for, so the host can tell its user.
        let kept_input = resumed
            .as_ref()
            .filter(|adopted| adopted.input != plan.input)
            .map(|adopted| adopted.input.clone());
        if let Some(kept) = &kept_input {
            tracing::warn!(
                target: names::DETAIL_TARGET,
                run_id = %run_id,
                kept_input = %kept,
                ignored_input = %plan.input,
                "the adopted run keeps the input it was started with; this plan's input is not used"
            );
        }
        // A fresh run starts at epoch 1; the telemetry layer derives the run span's trace id
        // from (run id, epoch), so a later resume can link back to this exact span.
        let lease_epoch = resumed.as_ref().map_or(1, |a| a.lease_epoch);

        let root = tracing::info_span!(
            target: "cairn",
            names::RUN_SPAN,
            run_id = %run_id,
            workflow = %plan.workflow,
            scope = %plan.scope,
            resumed = is_resume,
            lease_epoch = epoch_field(lease_epoch),
            resumed_from_run_id = tracing::field::Empty,
            resumed_from_epoch = tracing::field::Empty,
        );
        if let Some(adopted) = &resumed {
            root.record("resumed_from_run_id", run_id.as_str());
            root.record("resumed_from_epoch", epoch_field(adopted.previous_epoch));
        }

        let counts = Arc::new(Mutex::new(queue.counts()));
        let ended = EndOnDrop {
            run_id: run_id.clone(),
            resumed: is_resume,
            clock,
            counts: Arc::clone(&counts),
            span: root.clone(),
            armed: true,
        };
        let drive = Drive {
            run_id: run_id.clone(),
            queue,
            checkpointer: Arc::clone(&checkpointer),
            registry: Arc::clone(&self.registry),
            config: Arc::clone(&self.config),
            phases: plan.phases,
            phases_started,
            resumed: resumed.as_ref().map(|a| ResumeInfo {
                lease_epoch: a.lease_epoch,
                tasks_reset: a.tasks_reset,
            }),
            signals,
            // A deadline too far to represent (`Duration::MAX`) is no deadline.
            deadline: plan
                .deadline
                .and_then(|d| tokio::time::Instant::now().checked_add(d)),
            retry: plan.retry.unwrap_or(self.config.retry),
            clock,
            counts: Arc::clone(&counts),
            workflow: plan.workflow,
            scope: plan.scope,
            names: HashMap::new(),
            on_acknowledged: self.on_acknowledged.clone(),
            recovery_audits: audits,
            reload: plan.reload,
        };
        // The drive runs in its own task so that a panic anywhere in it surfaces here as a
        // JoinError and the run is still finalized.
        let mut handle = AbortOnDrop(tokio::spawn(
            drive
                .run()
                .instrument(root.clone())
                .with_current_subscriber(),
        ));
        let stop = match (&mut handle.0).await {
            Ok(stop) => stop,
            Err(join) if join.is_panic() => {
                let message = panic_message(join.into_panic());
                tracing::error!(target: names::DETAIL_TARGET, run_id = %run_id, panic = %message, "executor panicked while driving the run");
                Some(RunStop::Panicked(message))
            }
            // Only the runtime shutting down cancels the drive task (its handle is never
            // aborted while it is awaited here): the host is going away, as on a shutdown
            // signal, so the run is left for a later start to resume.
            Err(_) => {
                tracing::warn!(target: names::DETAIL_TARGET, run_id = %run_id, "the runtime shut down under the run; leaving it running to be resumed");
                Some(RunStop::Cancelled(CancelCause::Shutdown))
            }
        };
        let final_counts = counts.lock().map(|c| *c).unwrap_or_default();
        self.finalize(
            checkpointer,
            RunReport {
                run_id,
                disposition: classify(stop.as_ref()),
                stop,
                resumed: is_resume,
                kept_input,
                durable,
                counts: final_counts,
            },
            clock,
            ended,
        )
        .instrument(root)
        .await
    }

    /// Records the disposition. Runs outside every cancellation token, so a cancelled or
    /// shut-down run is still recorded; errors are logged at WARN and returned.
    async fn finalize(
        &self,
        checkpointer: Arc<dyn Checkpointer>,
        report: RunReport,
        clock: Clock,
        mut ended: EndOnDrop,
    ) -> Result<RunReport> {
        let recorded = match &report.disposition {
            Disposition::Complete => checkpointer.complete().await.map(drop),
            Disposition::Fail(error) => checkpointer.fail(error).await.map(drop),
            Disposition::LeaveRunning => Ok(()),
        };
        // Audited only once the status write is durable: a `Finished` record written first
        // would claim an end the store never recorded if that write then failed. A crash
        // between the two loses the record instead, and the stored status still says it.
        if recorded.is_ok() && !matches!(report.disposition, Disposition::LeaveRunning) {
            let record = AuditRecord::new(
                clock.now(),
                report.run_id.clone(),
                AuditAction::Finished,
                format!("run finished: {}", report.disposition),
            )
            .with_detail(serde_json::json!({
                "outcome": report.disposition.to_string(),
                "resumed": report.resumed,
                "tasks_done": report.counts.done,
                "tasks_failed": report.counts.failed,
                "tasks_blocked": report.counts.blocked,
            }));
            if let Err(error) = checkpointer.audit(&record).await {
                tracing::warn!(target: names::DETAIL_TARGET, run_id = %report.run_id, error = %error, "could not audit the run's end");
            }
        }
        drop(checkpointer);
        let outcome = match report.disposition {
            Disposition::Complete => emit::RunOutcomeName::Complete,
            Disposition::LeaveRunning => emit::RunOutcomeName::LeaveRunning,
            Disposition::Fail(_) => emit::RunOutcomeName::Fail,
        };
        ended.armed = false;
        emit_run_finished(
            &report.run_id,
            outcome,
            report.resumed,
            clock,
            &report.counts,
        );
        match recorded {
            Ok(()) => Ok(report),
            Err(source) => {
                tracing::warn!(
                    target: names::DETAIL_TARGET,
                    run_id = %report.run_id,
                    disposition = %report.disposition,
                    error = %source,
                    "finalizing the run failed; its stored status may still be running"
                );
                Err(Error::Finalize {
                    report: Box::new(report),
                    source,
                })
            }
        }
    }

    /// Begins a fresh run, degrading to a non-durable checkpointer when `begin` fails and
    /// durability is not required.
    async fn begin(
        &self,
        plan: &RunPlan,
        signals: &RunSignals,
        now: Timestamp,
    ) -> Result<Prepared> {
        // Checked before anything is written: a plan refused after `begin` would leave a
        // failed run behind, and a fixed run id taken by it.
        self.check_plan(plan)?;
        let run_id = plan.run_id.clone().unwrap_or_else(|| fresh_run_id(now));
        // Last thing before the write: a run begun during a shutdown would be left running
        // at once with nothing done (a scheduler stopped at a tick left one per stop).
        if signals.shutdown.is_cancelled() {
            return Err(Error::ShutDownBeforeBegin { run_id });
        }
        let meta = RunMeta::new(
            run_id.clone(),
            plan.workflow.clone(),
            plan.scope.clone(),
            plan.input.clone(),
            now,
        );
        let (checkpointer, durable): (Arc<dyn Checkpointer>, bool) =
            match self.factory.begin(meta.clone()).await {
                Ok(checkpointer) => (Arc::from(checkpointer), true),
                // A taken id is the caller's mistake, not the store's trouble: running
                // without a journal under another run's id would report as that run.
                Err(source @ cairn_checkpoint::Error::AlreadyExists { .. }) => {
                    return Err(match self.factory.load_meta(&run_id).await {
                        Ok(Some(existing)) => Error::RunExists {
                            run_id,
                            status: existing.status,
                        },
                        // Gone again, or unreadable: the store's own error says enough.
                        _ => Error::BeginFailed { run_id, source },
                    });
                }
                Err(source) if self.config.require_durability => {
                    return Err(Error::BeginFailed { run_id, source });
                }
                Err(source) => {
                    // emit::begin_degraded logs at WARN, naming the run and the error.
                    emit::begin_degraded(run_id.as_str(), &source.to_string());
                    (Arc::new(NoopCheckpointer::new(meta)), false)
                }
            };
        if let (true, Some(hook)) = (durable, &self.on_begun) {
            (hook.0)(&run_id);
        }
        Ok(Prepared {
            run_id,
            checkpointer,
            queue: Queue::new(self.config.queue.clone()),
            phases_started: BTreeSet::new(),
            durable,
            resumed: None,
            audits: Vec::new(),
        })
    }

    /// `Start::Auto`: adopts the first interrupted run of this workflow and scope that fits,
    /// quarantining those that do not.
    async fn find_interrupted(&self, plan: &RunPlan, now: Timestamp) -> Result<Option<Prepared>> {
        let lookup = |source| Error::Lookup {
            target: format!("workflow `{}` in scope `{}`", plan.workflow, plan.scope),
            source,
        };
        let filter = RunFilter {
            workflow: Some(plan.workflow.clone()),
            scope: Some(plan.scope.clone()),
            statuses: vec![RunStatus::Running],
        };
        let candidates = self.factory.list(&filter).await.map_err(lookup)?;
        // A run another process drives (or took while this call tried to) makes the lookup
        // fail rather than begin a second run of the same work beside it.
        let mut driven_elsewhere: Option<(RunId, String)> = None;
        for listed in candidates {
            let run_id = listed.run_id.clone();
            // A plan that names its run adopts only that run. Other interrupted runs of the
            // workflow and scope (other jobs) are sound state that is simply not this plan's:
            // they are left as they are, not quarantined.
            if plan.run_id.as_ref().is_some_and(|wanted| *wanted != run_id) {
                continue;
            }
            if self.factory.is_held(&run_id).await.map_err(lookup)? {
                // A live writer drives it: it is not interrupted.
                driven_elsewhere.get_or_insert((run_id, "its writer lock is held".to_owned()));
                continue;
            }
            let expected_id = plan.run_id.as_ref().unwrap_or(&run_id);
            if let Some(reason) = unfit(plan, expected_id, &listed) {
                self.quarantine(&run_id, &reason, now).await;
                continue;
            }
            // Claimed before it is opened, at the epoch listed: a claim is refused while a
            // live writer holds the run, so this process must not hold it yet, and of several
            // processes that listed the run at this epoch exactly one wins.
            let claimed = match self
                .factory
                .claim(&run_id, RunStatus::Running, listed.lease_epoch)
                .await
            {
                Ok(Ok(claimed)) => claimed,
                Ok(Err(conflict)) => {
                    tracing::info!(target: names::DETAIL_TARGET, run_id = %run_id, conflict = %conflict, "interrupted run not adopted");
                    // Claimed or opened by another process: it drives the run now. A run
                    // whose status changed meanwhile is no longer interrupted.
                    if conflict.claimed_by_another() {
                        driven_elsewhere.get_or_insert((
                            run_id,
                            format!("another process claimed it while adopting it ({conflict})"),
                        ));
                    }
                    continue;
                }
                Err(cairn_checkpoint::Error::NotFound { .. }) => continue,
                // Damaged state of this workflow's run is left for a person (see
                // `corrupt_left_in_place`): a fresh run would redo what it had done.
                Err(source @ cairn_checkpoint::Error::Corruption { .. }) => {
                    corrupt_left_in_place(&run_id, &source);
                    return Err(Error::Claim { run_id, source });
                }
                Err(source) if source.is_bad_state() => {
                    self.bad_state(&run_id, &source, now).await;
                    continue;
                }
                // Not an open failure: the run was never opened.
                Err(source) => return Err(Error::Claim { run_id, source }),
            };
            // After the claim only a short-lived holder can hold the lock (a probe, an
            // abandon or a stale adopter that sees the claim and lets go), so the open
            // waits for it as a policy-claimed adoption does.
            let opened = match open_claimed_run(&*self.factory, &run_id).await {
                // The claim is the stored lease: a later claim is refused while this writer
                // holds the run, so only one that came before the open can have moved it.
                Ok(Some(opened)) => {
                    match lease_moved(&opened.recovered.meta, claimed.lease_epoch) {
                        Some(moved) => {
                            drop(opened);
                            tracing::info!(target: names::DETAIL_TARGET, run_id = %run_id, reason = %moved, "interrupted run not adopted");
                            // Short: `RunInProgress` itself says what to do.
                            let why = match moved {
                                Error::AdoptLeaseMoved {
                                    lease_epoch, owner, ..
                                } => format!(
                                    "another process claimed it after this one, and its lease is at epoch {lease_epoch} now, {}",
                                    owner.map_or_else(
                                        || "with no owner recorded".to_owned(),
                                        |owner| format!("held by {owner}")
                                    )
                                ),
                                other => other.to_string(),
                            };
                            driven_elsewhere.get_or_insert((run_id, why));
                            continue;
                        }
                        None => Ok(Some(opened)),
                    }
                }
                other => other,
            };
            match opened {
                Ok(None) => continue,
                Ok(Some(opened)) => {
                    match self
                        .adopt_opened(plan, expected_id, opened, Claim::Here, now)
                        .await
                    {
                        Ok(prepared) => return Ok(Some(prepared)),
                        Err(Refusal::Unfit { reason, .. }) => {
                            self.quarantine(&run_id, &reason, now).await;
                        }
                        Err(Refusal::Gone { status, reason }) => {
                            tracing::info!(target: names::DETAIL_TARGET, run_id = %run_id, reason = %reason, "interrupted run not adopted");
                            // Claimed by another process: it drives the run now. A run that
                            // ended meanwhile is no longer there to run beside.
                            if status == RunStatus::Running {
                                driven_elsewhere.get_or_insert((run_id, reason));
                            }
                        }
                    }
                }
                Err(source @ cairn_checkpoint::Error::Corruption { .. }) => {
                    corrupt_left_in_place(&run_id, &source);
                    return Err(Error::Open { run_id, source });
                }
                Err(source) if source.is_bad_state() => {
                    self.bad_state(&run_id, &source, now).await;
                }
                Err(cairn_checkpoint::Error::Locked { .. }) => {
                    tracing::info!(target: names::DETAIL_TARGET, run_id = %run_id, "interrupted run was claimed by another writer meanwhile");
                    driven_elsewhere.get_or_insert((
                        run_id,
                        "another process opened it while this one tried to adopt it".to_owned(),
                    ));
                }
                Err(source) => return Err(Error::Open { run_id, source }),
            }
        }
        match driven_elsewhere {
            Some((run_id, why)) => Err(Error::RunInProgress {
                run_id,
                target: format!("workflow `{}` in scope `{}`", plan.workflow, plan.scope),
                why,
            }),
            None => Ok(None),
        }
    }

    /// `Start::Adopt` and `Start::AdoptInterrupted`: opens a run the resume policy already
    /// claimed, and adopts it only while its stored lease is at `claimed_epoch`.
    async fn adopt(
        &self,
        plan: &RunPlan,
        run_id: &RunId,
        retry: Retry,
        claimed_epoch: u64,
        now: Timestamp,
    ) -> Result<Prepared> {
        // Checked before the open too: the process that overtook the claim may hold the lock
        // for its whole drive, and the open would wait for it only to give up. A store that
        // cannot answer here is left to the open, which reports it.
        if let Ok(Some(stored)) = self.factory.load_meta(run_id).await {
            if let Some(reason) = other_plan(plan, &stored) {
                return Err(Error::AdoptOtherPlan {
                    run_id: run_id.clone(),
                    reason,
                });
            }
            if let Some(moved) = lease_moved(&stored, claimed_epoch) {
                return Err(moved);
            }
        }
        let opened = match open_claimed_run(&*self.factory, run_id).await {
            // Checked again on what the open read under the writer lock, which sees a claim
            // that came in since the check above. No claim can come later: the store refuses
            // a claim while a writer holds the run.
            Ok(Some(opened)) => {
                // A caller's plan for another workflow or scope is the caller's mistake, not
                // bad state: the run is left as it is, not quarantined as unfit.
                if let Some(reason) = other_plan(plan, &opened.recovered.meta) {
                    drop(opened);
                    return Err(Error::AdoptOtherPlan {
                        run_id: run_id.clone(),
                        reason,
                    });
                }
                match lease_moved(&opened.recovered.meta, claimed_epoch) {
                    Some(moved) => {
                        drop(opened);
                        return Err(moved);
                    }
                    None => opened,
                }
            }
            Ok(None) => {
                return Err(Error::AdoptNotFound {
                    run_id: run_id.clone(),
                });
            }
            Err(source @ cairn_checkpoint::Error::Corruption { .. }) => {
                corrupt_left_in_place(run_id, &source);
                return Err(Error::Open {
                    run_id: run_id.clone(),
                    source,
                });
            }
            Err(source) if source.is_bad_state() => {
                let location = self
                    .bad_state(run_id, &source, now)
                    .await
                    .unwrap_or_else(|| "(not quarantined: see the WARN log)".to_owned());
                return Err(Error::AdoptRefused {
                    run_id: run_id.clone(),
                    reason: source.to_string(),
                    location,
                    source: Some(Box::new(source)),
                });
            }
            Err(source) => {
                return Err(Error::Open {
                    run_id: run_id.clone(),
                    source,
                });
            }
        };
        match self
            .adopt_opened(plan, run_id, opened, Claim::ByPolicy(retry), now)
            .await
        {
            Ok(prepared) => Ok(prepared),
            Err(Refusal::Unfit { reason, source }) => {
                let location = self
                    .quarantine(run_id, &reason, now)
                    .await
                    .unwrap_or_else(|| "(not quarantined: see the WARN log)".to_owned());
                Err(Error::AdoptRefused {
                    run_id: run_id.clone(),
                    reason,
                    location,
                    source: source.map(|error| Box::new(error) as _),
                })
            }
            // Sound state that is not this caller's to drive: it stays where it is.
            Err(Refusal::Gone { status, .. }) => Err(Error::AdoptNotClaimed {
                run_id: run_id.clone(),
                status,
            }),
        }
    }

    /// Checks an opened run (claimed before it was opened, as `claim` says by whom),
    /// replays it and applies recovery.
    async fn adopt_opened(
        &self,
        plan: &RunPlan,
        expected_id: &RunId,
        opened: Opened,
        claim: Claim,
        now: Timestamp,
    ) -> std::result::Result<Prepared, Refusal> {
        let Opened {
            checkpointer,
            recovered,
        } = opened;
        if let Some(reason) = unfit(plan, expected_id, &recovered.meta) {
            // Release the writer lock first, so the state can be moved aside.
            drop(checkpointer);
            return Err(Refusal::Unfit {
                reason,
                source: None,
            });
        }
        if let Some(snapshot) = &recovered.snapshot
            && snapshot.format_version != SNAPSHOT_FORMAT_VERSION
        {
            drop(checkpointer);
            return Err(Refusal::Unfit {
                reason: format!(
                    "snapshot format version {} is not {SNAPSHOT_FORMAT_VERSION}",
                    snapshot.format_version
                ),
                source: None,
            });
        }
        if recovered.meta.status != RunStatus::Running {
            return Err(Refusal::Gone {
                status: recovered.meta.status,
                reason: format!("it is {}, not running", recovered.meta.status),
            });
        }
        let run_id = recovered.meta.run_id.clone();
        let input = recovered.meta.input.clone();
        // Every take-over is claimed before its open (`Start::Auto` here, or the resume
        // policy), since a claim is refused while a writer holds the run; that claim bumped
        // the epoch by one.
        let lease_epoch = recovered.meta.lease_epoch;
        let previous_epoch = lease_epoch.saturating_sub(1);

        let mut phases_started: BTreeSet<u32> = recovered
            .snapshot
            .as_ref()
            .map(|s| s.phases_started.iter().map(|(index, _)| *index).collect())
            .unwrap_or_default();
        for event in &recovered.events {
            if let Event::PhaseStarted { index, .. } = event {
                phases_started.insert(*index);
            }
        }
        let mut queue = match Queue::replay(
            recovered.snapshot,
            recovered.events.iter(),
            self.config.queue.clone(),
        ) {
            Ok(queue) => queue,
            Err(error) => {
                drop(checkpointer);
                return Err(Refusal::Unfit {
                    reason: format!("its state does not replay: {error}"),
                    source: Some(error),
                });
            }
        };

        // Resuming a failed run means "run it again": failed tasks get fresh attempts and the
        // dependents they blocked return to pending. An interrupted run (found here, or
        // claimed from `running` by the policy) only continues: a task that failed, before
        // the interruption or on its last attempt at recovery, stays failed. Except when the
        // interruption came in the middle of such an explicit resume, before its retries were
        // journaled: that resume is finished now.
        let explicit = claim == Claim::ByPolicy(Retry::FailedTasks);
        let owed = !explicit && self.retry_owed(&run_id).await;
        let TakenOver {
            recoveries,
            retried,
        } = take_over(&mut queue, explicit || owed, now);
        let now_text = now.0.to_string();
        let names = plan.root_names(&queue);
        let mut tasks_reset = 0u64;
        let mut audits = Vec::with_capacity(recoveries.len() + 1);
        for recovery in &recoveries {
            let (action, became) = if recovery.now == Status::Pending {
                tasks_reset += 1;
                (AuditAction::TaskReset, "pending")
            } else {
                (AuditAction::TaskFailedOnRecovery, "failed")
            };
            emit::task_reset(
                run_id.as_str(),
                &recovery.id.to_string(),
                names.get(&recovery.id).map(String::as_str),
                &recovery.kind,
                recovery.attempt,
                became,
            );
            audits.push(
                AuditRecord::new(
                    now,
                    run_id.clone(),
                    action,
                    format!(
                        "{} was running at attempt {} when the run stopped; now {became}",
                        describe_task(&names, recovery.id, &recovery.kind),
                        recovery.attempt
                    ),
                )
                .with_detail(serde_json::json!({
                    "task_id": recovery.id.0,
                    "kind": recovery.kind,
                    "attempt": recovery.attempt,
                    "now": became,
                    "at_ms": now_text,
                })),
            );
        }
        for (id, kind) in &retried {
            audits.push(
                AuditRecord::new(
                    now,
                    run_id.clone(),
                    AuditAction::TaskReset,
                    format!(
                        "failed {} retried with fresh attempts by an explicit resume",
                        describe_task(&names, *id, kind)
                    ),
                )
                .with_detail(serde_json::json!({
                    "task_id": id.0,
                    "kind": kind,
                    "now": "pending",
                    "reason": "explicit_resume",
                })),
            );
        }
        tasks_reset += retried.len() as u64;
        audits.push(
            AuditRecord::new(
                now,
                run_id.clone(),
                AuditAction::Recovered,
                format!(
                    "{} at lease epoch {lease_epoch}; {} task(s) recovered, {} failed task(s) retried",
                    match claim {
                        _ if owed =>
                            "interrupted run adopted, finishing the explicit resume it was \
                             interrupted in",
                        Claim::Here => "interrupted run adopted",
                        Claim::ByPolicy(Retry::Nothing) =>
                            "interrupted run adopted after the resume policy claimed it",
                        Claim::ByPolicy(Retry::FailedTasks) =>
                            "run adopted after an explicit resume",
                    },
                    recoveries.len(),
                    retried.len()
                ),
            )
            .with_detail(serde_json::json!({
                "previous_epoch": previous_epoch,
                "lease_epoch": lease_epoch,
                // Read by `retry_owed`: this explicit resume's retries are journaled.
                RETRIES_JOURNALED: explicit || owed,
            })),
        );
        let checkpointer: Arc<dyn Checkpointer> = Arc::from(checkpointer);
        // Each reset is audited before it is journaled, so a task that runs again always has
        // its record; the `Recovered` record (the last) only once the journal holds what it
        // says, as `retries_owed` reads its `failed_tasks_retried`.
        let recovered_record = audits.pop();
        for record in &audits {
            if let Err(error) = checkpointer.audit(record).await {
                // The journal, not the audit log, is the source of truth; go on, but say so.
                tracing::warn!(target: names::DETAIL_TARGET, run_id = %run_id, error = %error, action = ?record.action, "could not write an audit record");
            }
        }
        tracing::info!(
            target: names::DETAIL_TARGET,
            run_id = %run_id,
            previous_epoch,
            lease_epoch,
            recovered_tasks = recoveries.len(),
            "adopting interrupted run"
        );
        // The recovery's own events stay in the queue and are the drive's first append.
        Ok(Prepared {
            run_id,
            checkpointer,
            queue,
            phases_started,
            durable: true,
            resumed: Some(Adopted {
                previous_epoch,
                lease_epoch,
                tasks_reset,
                input,
            }),
            audits: recovered_record.into_iter().collect(),
        })
    }

    /// [`retries_owed`], with an unreadable audit log owing nothing (logged): an
    /// interrupted run then only continues.
    async fn retry_owed(&self, run_id: &RunId) -> bool {
        match retries_owed(&*self.factory, run_id).await {
            Ok(owed) => owed,
            Err(error) => {
                tracing::warn!(target: names::DETAIL_TARGET, run_id = %run_id, error = %error, "could not read the audit log to see whether an explicit resume was interrupted; failed tasks stay failed");
                false
            }
        }
    }

    /// Handles an `open` that found bad state: the store already quarantined state with a
    /// wrong version, a foreign id or unreadable content (port contract), so this only logs
    /// it. Callers handle `Corruption` before this ([`corrupt_left_in_place`]); any other
    /// bad state the store left in place is quarantined here.
    async fn bad_state(
        &self,
        run_id: &RunId,
        error: &cairn_checkpoint::Error,
        now: Timestamp,
    ) -> Option<String> {
        use cairn_checkpoint::Error as E;
        match error {
            E::VersionMismatch { quarantined_to, .. }
            | E::ForeignRun { quarantined_to, .. }
            | E::Unreadable { quarantined_to, .. } => {
                emit::state_quarantined(run_id.as_str(), &error.to_string(), quarantined_to);
                Some(quarantined_to.clone())
            }
            _ => self.quarantine(run_id, &error.to_string(), now).await,
        }
    }

    /// Moves a run's state aside, audits and logs why. Returns where it went.
    async fn quarantine(&self, run_id: &RunId, reason: &str, now: Timestamp) -> Option<String> {
        let record = AuditRecord::new(
            now,
            run_id.clone(),
            AuditAction::Quarantined,
            format!("not adopted by the executor and quarantined: {reason}"),
        );
        if let Err(error) = self.factory.append_audit(run_id, &record).await {
            tracing::warn!(target: names::DETAIL_TARGET, run_id = %run_id, error = %error, "could not audit the quarantine");
        }
        match self.factory.quarantine(run_id, reason).await {
            Ok(quarantined) => {
                emit::state_quarantined(run_id.as_str(), reason, &quarantined.location);
                Some(quarantined.location)
            }
            Err(error) => {
                tracing::warn!(
                    target: names::DETAIL_TARGET,
                    run_id = %run_id,
                    reason,
                    error = %error,
                    "could not quarantine state that does not fit; leaving it in place"
                );
                None
            }
        }
    }
}

/// The refusal of an adoption claimed at `claimed` of a run stored as `meta`, when a later
/// claim moved its lease on: the run is that claimer's to drive. A run that is no longer
/// `running` is left to the status check (`AdoptNotClaimed`).
fn lease_moved(meta: &RunMeta, claimed: u64) -> Option<Error> {
    (meta.status == RunStatus::Running && meta.lease_epoch != claimed).then(|| {
        Error::AdoptLeaseMoved {
            run_id: meta.run_id.clone(),
            claimed_epoch: claimed,
            lease_epoch: meta.lease_epoch,
            owner: meta.owner.clone(),
        }
    })
}

/// How long the `open` of a run the resume policy just claimed keeps trying while its lock
/// is held. After that claim only a short-lived holder can hold the lock: an abandon that
/// began before the claim (it sees the claim, refuses and lets go), a probe, or an adopter
/// whose claimed epoch is not the stored one. Giving up at once would leave the run claimed
/// and undriven, with both commands failed.
const ADOPT_LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens a run this process has just claimed (a resume policy's status compare-and-swap),
/// as `Start::Adopt` opens it: while another process holds the run's writer lock, it keeps
/// trying for up to 10 seconds. After the claim only a short-lived holder can hold that lock
/// (an abandon that began before the claim and now refuses, a listing probing the lock), so
/// a host that reads the run before it drives it should wait for it the same way, or both
/// commands fail and the claimed run is left undriven.
///
/// # Errors
///
/// `cairn_checkpoint::Error::Locked` when the lock is still held after the wait (a live
/// writer keeps it), and any other error `open` returns.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId, RunMeta, RunStatus};
/// use cairn_queue::Timestamp;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cairn_checkpoint::Error> {
/// let store = MemoryFactory::new();
/// let id = RunId::new("r1")?;
/// drop(store.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?);
/// store.claim(&id, RunStatus::Running, 1).await?.expect("claimed");
/// let opened = cairn_executor::open_claimed_run(&store, &id).await?;
/// assert!(opened.is_some());
/// # Ok(()) }
/// ```
///
/// # Cancel safety
///
/// Safe to drop and call again: it holds no lock between its tries, and `open` changes no
/// run's status. An `open` under way when the future is dropped may still take the lock,
/// and lets go of it when its result is dropped (with the file adapter, once the open's
/// blocking work has finished in the background), so a call right after may briefly find
/// the run `Locked`.
pub async fn open_claimed_run(
    factory: &dyn CheckpointerFactory,
    run_id: &RunId,
) -> std::result::Result<Option<Opened>, cairn_checkpoint::Error> {
    open_through_probes(factory, run_id, ADOPT_LOCK_PATIENCE).await
}

/// Opens a run, trying again for up to `patience` while it is `Locked`.
///
/// A live writer keeps the lock, so the last attempt's `Locked` is returned as it is.
async fn open_through_probes(
    factory: &dyn CheckpointerFactory,
    run_id: &RunId,
    patience: std::time::Duration,
) -> std::result::Result<Option<Opened>, cairn_checkpoint::Error> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut pause = std::time::Duration::from_millis(10);
    loop {
        match factory.open(run_id).await {
            Err(cairn_checkpoint::Error::Locked { .. })
                if tokio::time::Instant::now() + pause <= deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause + std::time::Duration::from_millis(5))
                    .min(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Whether adopting the interrupted run `run_id` finishes an explicit resume, retrying its
/// failed tasks. Such a resume claimed the run (so it is `running` now) but was cut off
/// before its retries were journaled; every adoption of the run (`Start::AdoptInterrupted`,
/// `Start::Auto`) finishes it. Hosts call it to tell their user before driving the run.
///
/// The audit log decides, by lease epoch rather than by order, since a resumer that lost a
/// race may write its record late: an explicit resume of a failed or paused run
/// (`ResumeRequested`, written before its claim, or `ResumedById` or `Approved`, after it)
/// names the epoch its claim takes, and a `Recovered` record with `failed_tasks_retried`
/// names the epoch of the adoption that journaled the retries. Retries are owed when the
/// highest explicit epoch has no such `Recovered` record at or above it, and the run has
/// reached that epoch (a request whose claim never happened owes nothing).
///
/// # Errors
///
/// The store's error when the audit log or the run's metadata cannot be read.
///
/// # Examples
///
/// ```
/// use cairn_checkpoint::{
///     AuditAction, AuditRecord, CheckpointerFactory, MemoryFactory, RunError, RunId, RunMeta,
///     RunStatus,
/// };
/// use cairn_queue::Timestamp;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cairn_checkpoint::Error> {
/// let store = MemoryFactory::new();
/// let id = RunId::new("r1")?;
/// let run = store.begin(RunMeta::new(id.clone(), "wf", "scope", "", Timestamp(0))).await?;
/// run.fail(&RunError::new("task_failed", "boom")).await?;
/// drop(run);
/// // Never resumed by id: nothing is owed.
/// assert!(!cairn_executor::retries_owed(&store, &id).await?);
///
/// // An explicit resume writes its request, claims the run, and is cut off there.
/// let failed = store.load_meta(&id).await?.expect("stored");
/// let epoch = failed.lease_epoch + 1;
/// let request = AuditRecord::new(Timestamp(1), id.clone(), AuditAction::ResumeRequested, "resume")
///     .with_detail(serde_json::json!({ "previous_status": "failed", "lease_epoch": epoch }));
/// store.append_audit(&id, &request).await?;
/// store.claim(&id, RunStatus::Failed, failed.lease_epoch).await?.expect("claimed");
/// assert!(cairn_executor::retries_owed(&store, &id).await?);
/// # Ok(()) }
/// ```
///
/// # Cancel safety
///
/// Cancel safe: it only reads.
pub async fn retries_owed(
    factory: &dyn CheckpointerFactory,
    run_id: &RunId,
) -> cairn_checkpoint::Result<bool> {
    let records = factory.read_audit(run_id).await?;
    let epoch = |record: &AuditRecord| record.detail["lease_epoch"].as_u64();
    let explicit = records
        .iter()
        .filter(|record| {
            matches!(
                record.action,
                AuditAction::ResumeRequested | AuditAction::ResumedById | AuditAction::Approved
            ) && record.detail["previous_status"]
                .as_str()
                .is_some_and(|previous| previous != RunStatus::Running.as_str())
        })
        // A record without an epoch (none is written so) counts as the oldest claim.
        .map(|record| epoch(record).unwrap_or(0))
        .max();
    let Some(claimed) = explicit else {
        return Ok(false);
    };
    let journaled = records.iter().any(|record| {
        record.action == AuditAction::Recovered
            && record.detail[RETRIES_JOURNALED] == true
            && epoch(record).is_some_and(|adopted| adopted >= claimed)
    });
    if journaled {
        return Ok(false);
    }
    let meta = factory.load_meta(run_id).await?;
    Ok(meta.is_some_and(|meta| meta.lease_epoch >= claimed))
}

/// The `Recovered` audit detail that says an explicit resume's retries are journaled.
const RETRIES_JOURNALED: &str = "failed_tasks_retried";

/// Who claimed a run being taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// `Start::Auto` found it interrupted and claimed it before opening it.
    Here,
    /// The resume policy claimed it before `Start::Adopt` or `Start::AdoptInterrupted`.
    ByPolicy(Retry),
}

/// What a take-over retries beyond the recovery of running tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Failed tasks get fresh attempts (`Start::Adopt`: an explicit resume of a failed run).
    FailedTasks,
    /// Nothing: failed tasks stay failed (an interrupted run continues).
    Nothing,
}

/// Epochs as span fields: OpenTelemetry exports `u64` fields as text, `i64` as integers.
fn epoch_field(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}

/// Why `meta` cannot be adopted for `plan`, if it cannot.
///
/// Metadata a newer build wrote is not unfit: it is not bad, and must be left exactly where
/// it is. The store lists it so that a lookup meets it, and refuses to claim or open it
/// (`NewerFormat`), which ends the lookup before anything begins beside it.
fn unfit(plan: &RunPlan, expected_id: &RunId, meta: &RunMeta) -> Option<String> {
    if meta.format_version < META_FORMAT_VERSION {
        Some(format!(
            "run {} has metadata format version {}, expected {META_FORMAT_VERSION}",
            meta.run_id, meta.format_version
        ))
    } else if meta.run_id != *expected_id {
        Some(format!(
            "state names run {}, expected run {expected_id}",
            meta.run_id
        ))
    } else {
        other_plan(plan, meta)
    }
}

/// Why `meta`'s run is not `plan`'s: another scope or workflow.
fn other_plan(plan: &RunPlan, meta: &RunMeta) -> Option<String> {
    if meta.scope != plan.scope {
        Some(format!(
            "run {} belongs to scope `{}`, expected `{}`",
            meta.run_id, meta.scope, plan.scope
        ))
    } else if meta.workflow != plan.workflow {
        Some(format!(
            "run {} belongs to workflow `{}`, expected `{}`",
            meta.run_id, meta.workflow, plan.workflow
        ))
    } else {
        None
    }
}

/// A new run id: time-ordered, with entropy from the pid, a counter and the clock.
fn fresh_run_id(now: Timestamp) -> RunId {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let entropy =
        (u128::from(std::process::id()) << 64) | (u128::from(count) << 32) | u128::from(nanos);
    RunId::generate(now.0, entropy)
}

/// Emits the end of a run whose driving stopped.
fn emit_run_finished(
    run_id: &RunId,
    outcome: emit::RunOutcomeName,
    resumed: bool,
    clock: Clock,
    counts: &StatusCounts,
) {
    emit::run_finished(&emit::RunFinished {
        run_id: run_id.as_str(),
        outcome,
        resumed,
        duration_ms: u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX),
        tasks_done: counts.done as u64,
        tasks_failed: counts.failed as u64,
        tasks_skipped: counts.skipped as u64,
        tasks_blocked: counts.blocked as u64,
    });
}

/// Reports the run as left running when `Executor::run` is dropped before it reported the
/// run's end (a caller's `select!` or timeout): the run stays `running` in the store, to be
/// resumed, and without the event the metrics layer would keep the run's share of the queue
/// depth gauge for the life of the process. Disarmed by `finalize` as it reports the end.
struct EndOnDrop {
    run_id: RunId,
    resumed: bool,
    clock: Clock,
    counts: Arc<Mutex<StatusCounts>>,
    span: tracing::Span,
    armed: bool,
}

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let counts = self.counts.lock().map(|c| *c).unwrap_or_default();
        let _in_run = self.span.enter();
        tracing::warn!(
            target: names::DETAIL_TARGET,
            run_id = %self.run_id,
            "the run's future was dropped before the run finished; it stays running, to be resumed"
        );
        emit_run_finished(
            &self.run_id,
            emit::RunOutcomeName::LeaveRunning,
            self.resumed,
            self.clock,
            &counts,
        );
    }
}

/// Aborts the drive task if `Executor::run` is dropped, so no drive outlives its caller.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        // A no-op once the task has finished.
        self.0.abort();
    }
}

/// Logs a run whose stored state is damaged (`Corruption`: a bad record that is not a torn
/// last one), which the executor leaves exactly where it is and does not go past. The run is
/// this workflow's own, and which of its tasks were done cannot be read: quarantining it and
/// beginning a fresh run would run them all again without anyone deciding that. A person
/// abandons it (`cairn-runs`, which records the damage) or begins a fresh run with
/// `Start::Fresh`.
fn corrupt_left_in_place(run_id: &RunId, error: &cairn_checkpoint::Error) {
    tracing::warn!(
        target: names::DETAIL_TARGET,
        run_id = %run_id,
        error = %error,
        "run state is damaged; left in place and not adopted: abandon it or start a fresh run"
    );
}
