//! `ExecutorRunner`: the real [`JobRunner`], driving each run with `cairn-executor`.
//!
//! Enabled by the `executor` feature, so the scheduler's core (and its tests) never compile
//! the executor. The host supplies what the scheduler cannot know: how a job's workflow and
//! input become a `RunPlan` ([`PlanSource`]; the CLI parses the workflow file), the
//! `Arc<dyn CheckpointerFactory>` that stores runs, and the handler registry.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use cairn_checkpoint::{CheckpointerFactory, RunFilter, RunId, RunStatus};
use cairn_executor::{
    Disposition, Executor, ExecutorConfig, Registry, RunPlan, RunReport, RunSignals, RunStop, Start,
};

use crate::runner::{JobRunner, RunFailed, RunRequest, RunSucceeded};

/// Turns a job's run request into the plan the executor drives.
pub trait PlanSource: Send + Sync + Debug + 'static {
    /// The plan for `request` (its workflow and input).
    ///
    /// # Errors
    ///
    /// A message for people when the workflow cannot be loaded; the run then counts as
    /// failed for the job's circuit breaker.
    fn plan(&self, request: &RunRequest) -> Result<RunPlan, String>;
}

/// Runs each due job as a fresh executor run with a fresh run id.
///
/// A run that completes is a success; one that fails or cannot begin counts as one failed
/// run, and so does a plan whose run id is stored already (it is never resumed or reused).
/// One left `running` by a graceful shutdown (`RunSignals::shutdown`) is returned as
/// `RunFailed::interrupted`, which the breaker does not count; it is left for an explicit
/// resume by id. Once the shutdown token is cancelled no run is started at all (the plan
/// source is not asked either): the request is answered `RunFailed::interrupted` with no run
/// id. Nor is one started while a live process still drives a run of the same workflow and
/// scope (another scheduler on the same store, whose run of this job has not ended: a
/// one-shot job's retry time, say, came round while it ran): that is `RunFailed::interrupted`
/// too, naming the live run, so one job never runs twice at once. A run whose state store
/// failed under it (a checkpoint write failed, or recording its end did) is
/// `RunFailed::store_failed`: counted, and noted on the job. One the store could not begin
/// is a plain counted failure with no run id (nothing was stored under it). Otherwise the
/// run id is reported either way, so `cairn show <run>` finds it.
///
/// By default it does not look for a one-shot job's earlier runs
/// (`JobRunner::finds_earlier_runs` is `false`), so the scheduler holds a one-shot job whose
/// earlier run was never recorded for a person instead of handing it here. The run store
/// knows a run only by its workflow and scope, not by the job that began it, so whether a
/// run is this job's depends on the plan source: a host whose plan source gives each job a
/// scope of its own opts in with [`ExecutorRunner::finding_earlier_runs`].
#[derive(Debug)]
pub struct ExecutorRunner {
    executor: Executor,
    factory: Arc<dyn CheckpointerFactory>,
    plans: Arc<dyn PlanSource>,
    signals: RunSignals,
    /// Looks for a one-shot job's earlier runs in its plan's scope before starting one.
    finds_earlier_runs: bool,
}

impl ExecutorRunner {
    /// A runner over `factory` with `registry`'s handlers.
    ///
    /// # Errors
    ///
    /// The executor's `InvalidConfig` for a bad `config`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::{JobId, MemoryFactory};
    /// use cairn_executor::{ExecutorConfig, Finish, Phase, Registry, RunPlan, handler_fn};
    /// use cairn_queue::{Handoff, TaskSpec, Timestamp};
    /// use cairn_scheduler::{ExecutorRunner, JobRunner, PlanSource, RunRequest};
    ///
    /// /// Every job's workflow is one task of kind `step`.
    /// #[derive(Debug)]
    /// struct OneStep;
    /// impl PlanSource for OneStep {
    ///     fn plan(&self, request: &RunRequest) -> Result<RunPlan, String> {
    ///         let mut phase = Phase::new("only");
    ///         phase.task(TaskSpec::new("step"), []);
    ///         Ok(RunPlan::new(request.workflow.clone(), request.job_id.as_str()).phase(phase))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = Registry::new().with(
    ///     "step",
    ///     handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
    /// );
    /// let runs = Arc::new(MemoryFactory::new());
    /// let config = ExecutorConfig::default();
    /// let runner = ExecutorRunner::new(runs.clone(), registry, config, Arc::new(OneStep))?;
    /// let request = RunRequest::new(JobId::new("nightly")?, "nightly", "", Timestamp(0), Timestamp(0));
    /// let done = runner.run(&request).await.expect("the run completes");
    /// assert!(done.run_id.is_some(), "a fresh run id, for `cairn show`");
    ///
    /// // A configuration the executor refuses is refused here.
    /// let idle = ExecutorConfig::default().with_concurrency(0);
    /// let refused = ExecutorRunner::new(runs, Registry::new(), idle, Arc::new(OneStep));
    /// assert!(matches!(refused, Err(cairn_executor::Error::InvalidConfig { .. })));
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(
        factory: Arc<dyn CheckpointerFactory>,
        registry: Registry,
        config: ExecutorConfig,
        plans: Arc<dyn PlanSource>,
    ) -> Result<ExecutorRunner, cairn_executor::Error> {
        Ok(ExecutorRunner {
            executor: Executor::new(Arc::clone(&factory), registry, config)?,
            factory,
            plans,
            signals: RunSignals::default(),
            finds_earlier_runs: false,
        })
    }

    /// Shares the host's shutdown and cancel tokens with every run.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::{JobId, MemoryFactory};
    /// use cairn_executor::{ExecutorConfig, Registry, RunPlan, RunSignals};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{ExecutorRunner, JobRunner, PlanSource, RunRequest};
    ///
    /// #[derive(Debug)]
    /// struct NoPlans;
    /// impl PlanSource for NoPlans {
    ///     fn plan(&self, _: &RunRequest) -> Result<RunPlan, String> {
    ///         Err("not asked once the host shuts down".to_owned())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let signals = RunSignals::default();
    /// let runs = Arc::new(MemoryFactory::new());
    /// let config = ExecutorConfig::default();
    /// let runner = ExecutorRunner::new(runs, Registry::new(), config, Arc::new(NoPlans))?
    ///     .with_signals(signals.clone());
    /// assert!(!runner.is_stopping());
    /// // The host's shutdown: the scheduler starts nothing more, and a run asked for is not begun.
    /// signals.shutdown.cancel();
    /// assert!(runner.is_stopping());
    /// let request = RunRequest::new(JobId::new("nightly")?, "nightly", "", Timestamp(0), Timestamp(0));
    /// let not_started = runner.run(&request).await.expect_err("nothing runs");
    /// assert!(not_started.interrupted && not_started.run_id.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_signals(mut self, signals: RunSignals) -> Self {
        self.signals = signals;
        self
    }

    /// Looks for a one-shot job's earlier runs before it starts one, so the scheduler hands
    /// it a one-shot job whose earlier run was claimed and never recorded
    /// (`JobRunner::finds_earlier_runs` becomes `true`).
    ///
    /// Only for a plan source that gives each job a scope of its own, which no run of
    /// another job (nor any other run) shares: the runs of the plan's scope created since
    /// the job was (`RunRequest::job_created_at`) are taken to be the job's. Before a
    /// one-shot job's run, a completed one of them is reported as this run's success and
    /// nothing runs; while one is `running`, `paused` or `failed`, nothing starts
    /// (`RunFailed::interrupted`, not counted) until a person resumes or abandons it. An
    /// abandoned one does not stop the run.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use cairn_checkpoint::{CheckpointerFactory, JobId, MemoryFactory, RunMeta, RunStatus};
    /// use cairn_executor::{ExecutorConfig, Registry, RunPlan};
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{ExecutorRunner, JobRunner, PlanSource, RunRequest};
    ///
    /// /// Each job's runs in a scope named after the job.
    /// #[derive(Debug)]
    /// struct JobScopes;
    /// impl PlanSource for JobScopes {
    ///     fn plan(&self, request: &RunRequest) -> Result<RunPlan, String> {
    ///         Ok(RunPlan::new(request.workflow.clone(), request.job_id.as_str()))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let runs = Arc::new(MemoryFactory::new());
    /// // The job's earlier run, which completed; its outcome never reached the job store.
    /// let earlier = cairn_checkpoint::RunId::new("r-earlier")?;
    /// let meta = RunMeta::new(earlier.clone(), "deploy", "release", "", Timestamp(10));
    /// drop(runs.begin(meta).await?);
    /// let swapped = runs.compare_and_swap_status(&earlier, RunStatus::Running, RunStatus::Completed);
    /// swapped.await?.expect("the run is running");
    ///
    /// let config = ExecutorConfig::default();
    /// let runner = ExecutorRunner::new(runs, Registry::new(), config, Arc::new(JobScopes))?
    ///     .finding_earlier_runs();
    /// assert!(runner.finds_earlier_runs());
    /// let request = RunRequest::new(JobId::new("release")?, "deploy", "", Timestamp(20), Timestamp(20))
    ///     .for_job(Timestamp(5), true);
    /// let done = runner.run(&request).await.expect("the earlier run completed");
    /// assert_eq!(done.run_id.as_deref(), Some("r-earlier"));
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn finding_earlier_runs(mut self) -> Self {
        self.finds_earlier_runs = true;
        self
    }

    /// For a one-shot job, when this runner finds earlier runs: what its earlier run in the
    /// plan's scope settles (see [`ExecutorRunner::finding_earlier_runs`]); `None` when
    /// there is none and a fresh run starts.
    async fn earlier_run_settles(
        &self,
        request: &RunRequest,
        plan: &RunPlan,
    ) -> Option<Result<RunSucceeded, RunFailed>> {
        if !(self.finds_earlier_runs && request.one_shot) {
            return None;
        }
        // Any workflow: the job's workflow may have been renamed since its earlier run.
        let filter = RunFilter {
            workflow: None,
            scope: Some(plan.scope.clone()),
            statuses: vec![
                RunStatus::Completed,
                RunStatus::Running,
                RunStatus::Paused,
                RunStatus::Failed,
            ],
        };
        let runs: Vec<_> = match self.factory.list(&filter).await {
            // Runs from before the job was created belong to an earlier job of the same id.
            Ok(runs) => runs
                .into_iter()
                .filter(|meta| meta.created_at >= request.job_created_at)
                .collect(),
            Err(err) => {
                return Some(Err(RunFailed::new(format!(
                    "job {}: cannot check for an earlier run of this one-shot job: {err}",
                    request.job_id
                ))));
            }
        };
        if let Some(done) = runs.iter().find(|m| m.status == RunStatus::Completed) {
            return Some(Ok(RunSucceeded {
                run_id: Some(done.run_id.to_string()),
            }));
        }
        let unfinished = runs.first()?;
        Some(Err(RunFailed::interrupted(
            Some(unfinished.run_id.to_string()),
            format!(
                "job {}: run {} of this one-shot job is {}, not completed; a one-shot job runs once, so no fresh run starts until it is resumed or abandoned",
                request.job_id, unfinished.run_id, unfinished.status
            ),
        )))
    }

    /// Calls `hook` with a run's id once the run is durably begun, before any of its tasks
    /// starts (`Executor::on_begun`): where a host announces the run, so an id it shows is
    /// always one the store has. Not called for a run that never began.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use cairn_checkpoint::{CheckpointerFactory, JobId, MemoryFactory};
    /// use cairn_executor::{ExecutorConfig, Finish, Phase, Registry, RunPlan, handler_fn};
    /// use cairn_queue::{Handoff, TaskSpec, Timestamp};
    /// use cairn_scheduler::{ExecutorRunner, JobRunner, PlanSource, RunRequest};
    ///
    /// #[derive(Debug)]
    /// struct OneStep;
    /// impl PlanSource for OneStep {
    ///     fn plan(&self, request: &RunRequest) -> Result<RunPlan, String> {
    ///         let mut phase = Phase::new("only");
    ///         phase.task(TaskSpec::new("step"), []);
    ///         Ok(RunPlan::new(request.workflow.clone(), request.job_id.as_str()).phase(phase))
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let registry = Registry::new().with(
    ///     "step",
    ///     handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) }),
    /// );
    /// let runs = Arc::new(MemoryFactory::new());
    /// let begun = Arc::new(Mutex::new(Vec::new()));
    /// let seen = Arc::clone(&begun);
    /// let config = ExecutorConfig::default();
    /// let runner = ExecutorRunner::new(runs.clone(), registry, config, Arc::new(OneStep))?
    ///     .on_begun(move |run_id| seen.lock().unwrap().push(run_id.clone()));
    /// let request = RunRequest::new(JobId::new("nightly")?, "nightly", "", Timestamp(0), Timestamp(0));
    /// runner.run(&request).await.expect("the run completes");
    /// // The hook saw the run's id, which the store has.
    /// let run_id = begun.lock().unwrap().pop().expect("announced");
    /// assert!(runs.load_meta(&run_id).await?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn on_begun(mut self, hook: impl Fn(&RunId) + Send + Sync + 'static) -> Self {
        self.executor = self.executor.on_begun(hook);
        self
    }

    /// Refuses, as not started, while a live writer holds a `running` run of the plan's
    /// workflow and scope (another process drives this job now).
    async fn refuse_while_driven_elsewhere(
        &self,
        request: &RunRequest,
        plan: &RunPlan,
    ) -> Result<(), RunFailed> {
        let filter = RunFilter {
            workflow: Some(plan.workflow.clone()),
            scope: Some(plan.scope.clone()),
            statuses: vec![RunStatus::Running],
        };
        let running = self.factory.list(&filter).await.map_err(|err| {
            RunFailed::new(format!(
                "job {}: cannot check for a run of it still going: {err}",
                request.job_id
            ))
        })?;
        for meta in running {
            if self.factory.is_held(&meta.run_id).await.unwrap_or(true) {
                return Err(RunFailed::interrupted(
                    Some(meta.run_id.to_string()),
                    format!(
                        "{}run {} of this job is still being driven by {}; no second run was started",
                        plan.run_id
                            .as_ref()
                            .map_or_else(String::new, |planned| format!(
                                "run {planned} was not begun: "
                            )),
                        meta.run_id,
                        meta.owner
                            .map_or_else(|| "another process".to_owned(), |o| o.to_string())
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Abandons a fresh run that a shutdown cut short before any of its tasks started (the
    /// stop came while `begin` was writing it): it holds no progress, the job's next run
    /// starts afresh anyway, and left `running` it would wait for a person to abandon it.
    /// Audited as `abandoned`. Returns whether it was abandoned; any doubt (the run is held,
    /// was claimed since, a task has an attempt, the store fails) leaves it as it is.
    async fn abandon_if_nothing_started(&self, run_id: &RunId) -> bool {
        // Holding the run's writer lock keeps resumers out while it is checked and moved.
        let Ok(Some(opened)) = self.factory.open(run_id).await else {
            return false;
        };
        let recovered = &opened.recovered;
        // The epoch `begin` gives: nobody claimed it since this runner began it.
        if recovered.meta.status != RunStatus::Running || recovered.meta.lease_epoch != 1 {
            return false;
        }
        // Every transition since `begin` is in the journal (no snapshot yet): none may be a
        // start, which is journaled before its command runs. Attempt counts cannot tell: an
        // attempt cut by the shutdown is given back and no longer counts, though it ran.
        if recovered.snapshot.is_some()
            || recovered
                .events
                .iter()
                .any(|event| matches!(event, cairn_queue::Event::Started { .. }))
        {
            return false;
        }
        if !matches!(
            self.factory
                .compare_and_swap_status(run_id, RunStatus::Running, RunStatus::Cancelled)
                .await,
            Ok(Ok(_))
        ) {
            return false;
        }
        let record = cairn_checkpoint::AuditRecord::new(
            cairn_checkpoint::wall_clock_now(),
            run_id.clone(),
            cairn_checkpoint::AuditAction::Abandoned,
            "the scheduler stopped as this run was begun, before any task started: abandoned, as it holds no progress and the job's next run starts afresh",
        );
        // The status is what matters; a lost audit line is only a lost explanation.
        let _ = self.factory.append_audit(run_id, &record).await;
        drop(opened);
        true
    }

    /// Fails when a plan names a run id that is stored already. A scheduled run is always
    /// fresh; beginning it under a stored id would fail, and an executor that is not
    /// required to be durable would then drive it without a journal and report its outcome
    /// under the stored run's id (a failed run "completed" while it stays failed).
    async fn refuse_a_stored_run_id(&self, run_id: &RunId) -> Result<(), RunFailed> {
        let fail = |message: String| RunFailed {
            run_id: Some(run_id.to_string()),
            message,
            interrupted: false,
            store_failed: false,
        };
        match self.factory.load_meta(run_id).await {
            Ok(None) => Ok(()),
            Ok(Some(meta)) => Err(fail(format!(
                "run {run_id} already exists ({}); a scheduled run is always fresh, so the plan \
                 source must give each run a new id (a stored run is resumed only by id)",
                meta.status
            ))),
            Err(err) => Err(fail(format!(
                "cannot check whether run {run_id} exists: {err}"
            ))),
        }
    }
}

fn fresh_run_id(now_ms: u64) -> RunId {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let entropy = (u128::from(std::process::id()) << 64)
        ^ (u128::from(COUNTER.fetch_add(1, Ordering::Relaxed)) << 32)
        ^ u128::from(nanos);
    RunId::generate(now_ms, entropy)
}

#[async_trait]
impl JobRunner for ExecutorRunner {
    /// Drives `request` as a fresh executor run; see [`ExecutorRunner`] for what each end of
    /// it returns.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe. Dropped while the plan is made and the run store is checked, nothing
    /// is stored. Dropped once the executor has the run, the run (if its `begin` landed) is
    /// left as after a crash (see `Executor::run`): it still reads `running`, the attempts
    /// it had in flight stay charged, and it waits for an explicit resume by id (the
    /// scheduler never resumes it). Dropped while a run the shutdown cut short is being
    /// abandoned, the run may be `cancelled` without its `Abandoned` audit record. Prefer the
    /// shutdown token of [`ExecutorRunner::with_signals`].
    async fn run(&self, request: &RunRequest) -> Result<RunSucceeded, RunFailed> {
        if self.signals.shutdown.is_cancelled() {
            // A run begun now would be left `running` at once: one more interrupted run in
            // the store for every due tick until the host stops ticking.
            return Err(RunFailed::interrupted(
                None,
                format!(
                    "job {}: the host is shutting down; no run was started",
                    request.job_id
                ),
            ));
        }
        let mut plan = self.plans.plan(request).map_err(RunFailed::new)?;
        self.refuse_while_driven_elsewhere(request, &plan).await?;
        if let Some(settled) = self.earlier_run_settles(request, &plan).await {
            return settled;
        }
        let run_id = match plan.run_id.clone() {
            Some(planned) => {
                self.refuse_a_stored_run_id(&planned).await?;
                planned
            }
            None => fresh_run_id(request.started_at.0),
        };
        plan.run_id = Some(run_id.clone());
        let shown = Some(run_id.to_string());
        match self
            .executor
            .run(plan, Start::Fresh, self.signals.clone())
            .await
        {
            Ok(report) if matches!(report.stop, Some(RunStop::Checkpoint(_))) => {
                Err(store_failed(&report, None))
            }
            Err(cairn_executor::Error::Finalize { report, source }) => {
                Err(store_failed(&report, Some(&source)))
            }
            Ok(report) => match report.disposition {
                Disposition::Complete => Ok(RunSucceeded { run_id: shown }),
                Disposition::Fail(error) => Err(RunFailed {
                    run_id: shown,
                    message: format!("run {run_id} failed: {error}"),
                    interrupted: false,
                    store_failed: false,
                }),
                Disposition::LeaveRunning => Err(RunFailed::interrupted(
                    shown,
                    if self.abandon_if_nothing_started(&run_id).await {
                        format!(
                            "run {run_id} was begun as the host stopped and no task of it had started; it was abandoned (nothing to resume)"
                        )
                    } else {
                        format!("run {run_id} was interrupted by shutdown and left resumable")
                    },
                )),
            },
            // The stop came while this run was being prepared: nothing was begun.
            Err(cairn_executor::Error::ShutDownBeforeBegin { .. }) => Err(RunFailed::interrupted(
                None,
                format!(
                    "job {}: the host is shutting down; no run was started",
                    request.job_id
                ),
            )),
            // Nothing was stored under the id, so the failure names no run: there is
            // nothing to resume or look at, only the store to fix. It still counts.
            Err(cairn_executor::Error::BeginFailed { source, .. }) => Err(RunFailed {
                run_id: None,
                message: format!(
                    "run {run_id} was not begun: its state store failed: {source}; nothing ran and nothing is left to resume"
                ),
                interrupted: false,
                store_failed: false,
            }),
            Err(err) => Err(RunFailed {
                run_id: shown,
                message: format!("run {run_id} could not be driven: {err}"),
                interrupted: false,
                store_failed: false,
            }),
        }
    }

    /// Stopping once the host's shutdown token is cancelled: the scheduler then claims no
    /// further tick (this runner would start no run for it anyway).
    fn is_stopping(&self) -> bool {
        self.signals.shutdown.is_cancelled()
    }

    /// Only when the host opted in with [`ExecutorRunner::finding_earlier_runs`].
    fn finds_earlier_runs(&self) -> bool {
        self.finds_earlier_runs
    }
}

/// The failure of a run its state store stopped: a write to its checkpointer failed
/// (`report.stop` is `Checkpoint`), or recording its end did (`end_not_recorded`, from the
/// executor's `Finalize`). The message says what is stored now: `failed` when the executor
/// recorded the failure, else still `running`.
fn store_failed(
    report: &RunReport,
    end_not_recorded: Option<&cairn_checkpoint::Error>,
) -> RunFailed {
    let run_id = &report.run_id;
    let done = report.counts.done;
    let message = match (&report.stop, end_not_recorded) {
        (Some(RunStop::Checkpoint(error)), None) => format!(
            "run {run_id} stopped: its state store failed, not a task: {error} ({done} task(s) done); it is recorded as failed"
        ),
        (Some(RunStop::Checkpoint(error)), Some(_)) => format!(
            "run {run_id} stopped: its state store failed, not a task: {error} ({done} task(s) done); it is left interrupted (it still reads as running)"
        ),
        (_, Some(source)) => format!(
            "run {run_id} ended ({}), but its state store failed to record its end: {source}; it still reads as running",
            report.disposition
        ),
        // Not reached: called only with a `Checkpoint` stop or an end not recorded.
        (_, None) => format!("run {run_id} stopped: its state store failed"),
    };
    RunFailed::store_failed(Some(run_id.to_string()), message)
}
