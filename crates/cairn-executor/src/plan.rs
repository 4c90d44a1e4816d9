//! What to run: a [`RunPlan`] of named [`Phase`]s, how to start it ([`Start`]) and the
//! signals that stop it ([`RunSignals`]).

use std::collections::HashMap;
use std::time::Duration;

use cairn_checkpoint::RunId;
use cairn_queue::{EnqueuedBy, MAX_TASKS_HARD_LIMIT, Queue, QueueConfig, Status, TaskId, TaskSpec};
use tokio_util::sync::CancellationToken;

use crate::handler::Registry;

/// One task of a phase. Its dependencies are positions of earlier tasks in the same phase.
///
/// Plan tasks are identified by position, not by the queue's dedup guard: the executor
/// enqueues them with dedup off, so identical tasks in two phases (or twice in one phase)
/// all run, and a resumed run finds them again by position. Follow-ups that handlers enqueue
/// keep the dedup guard.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTask {
    /// The task. Its `depends_on` must be empty: use `after` instead, since ids are only
    /// known once the phase is enqueued.
    pub spec: TaskSpec,
    /// Positions (from 0) of earlier tasks of the same phase that this one waits for.
    pub after: Vec<usize>,
    /// What people call this task (a workflow file's task id, say). Messages about it (a
    /// failed run's error, a timeout, a panic) give this name next to its queue id; without
    /// one they name it by queue id and kind. Telemetry carries it too, as `task_name` on the
    /// task's spans (`orchestrator task`) and on its `orchestrator task_failed` and
    /// `orchestrator task_reset` events. It is not stored with the run: a resumed run's plan
    /// names its tasks again.
    pub name: Option<String>,
}

/// A named sub-graph. Phases run one after another; a phase starts once every task of the
/// previous one is done or skipped.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Phase {
    /// The phase's name. Names may repeat: phases are identified by their position.
    pub name: String,
    /// The phase's tasks, in enqueue order.
    pub tasks: Vec<PlannedTask>,
}

impl Phase {
    /// An empty phase.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::NoopFactory;
    /// use cairn_executor::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cairn_executor::Error> {
    /// let step = handler_fn(|_ctx| async { Ok(Finish::Complete(Handoff::default())) });
    /// let registry = Registry::new().with("step", step);
    /// let executor = Executor::new(NoopFactory, registry, ExecutorConfig::default())?;
    /// let mut first = Phase::new("step");
    /// assert!(first.tasks.is_empty());
    /// first.task(TaskSpec::new("step"), []);
    /// // Phases are told apart by position: two may have the same name and the same tasks.
    /// let second = first.clone();
    /// let plan = RunPlan::new("demo", "default").phase(first).phase(second);
    /// let report = executor.run(plan, Start::Fresh, RunSignals::default()).await?;
    /// assert_eq!(report.counts.done, 2);
    /// # Ok(()) }
    /// ```
    pub fn new(name: impl Into<String>) -> Phase {
        Phase {
            name: name.into(),
            tasks: Vec::new(),
        }
    }

    /// Adds a task that waits for the tasks at positions `after`, and returns the new task's
    /// position, for later tasks to name.
    ///
    /// It waits for those tasks only, not for the follow-ups they enqueue: a task completes
    /// when its body returns, and its follow-ups run as tasks of their own. To wait for
    /// follow-ups, enqueue the join as a follow-up that depends on their ids, or plan it in
    /// the next phase (see [`crate::TaskContext::enqueue`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_executor::Phase;
    /// use cairn_queue::TaskSpec;
    ///
    /// let mut build = Phase::new("build");
    /// let fetch = build.task(TaskSpec::new("fetch"), []);
    /// let render = build.task(TaskSpec::new("render"), [fetch]);
    /// assert_eq!((fetch, render), (0, 1));
    /// ```
    pub fn task(&mut self, spec: TaskSpec, after: impl IntoIterator<Item = usize>) -> usize {
        self.tasks.push(PlannedTask {
            spec,
            after: after.into_iter().collect(),
            name: None,
        });
        self.tasks.len() - 1
    }

    /// Adds a task like [`Phase::task`], with the name messages about it give
    /// ([`PlannedTask::name`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_executor::Phase;
    /// use cairn_queue::TaskSpec;
    ///
    /// let mut build = Phase::new("build");
    /// let compile = build.named_task("compile", TaskSpec::new("shell"), []);
    /// assert_eq!(build.tasks[compile].name.as_deref(), Some("compile"));
    /// ```
    pub fn named_task(
        &mut self,
        name: impl Into<String>,
        spec: TaskSpec,
        after: impl IntoIterator<Item = usize>,
    ) -> usize {
        let at = self.task(spec, after);
        self.tasks[at].name = Some(name.into());
        at
    }
}

/// A run to drive: identity, description and phases.
#[derive(Debug, Clone, PartialEq)]
pub struct RunPlan {
    /// The workflow's name.
    pub workflow: String,
    /// What the run belongs to (an install directory, a tenant...).
    pub scope: String,
    /// What the user asked for, stored with the run.
    pub input: String,
    /// The id of a fresh run; generated when `None`. With `Start::Auto`, an interrupted run
    /// is adopted only if it has this id; interrupted runs of the same workflow and scope
    /// with other ids (other jobs) are left alone, neither adopted nor quarantined.
    pub run_id: Option<RunId>,
    /// The phases, in order.
    pub phases: Vec<Phase>,
    /// The longest this drive may take; when it passes, the run fails with kind `deadline`.
    pub deadline: Option<Duration>,
    /// The backoff of this run's retries, in place of the executor's
    /// (`ExecutorConfig::retry`): a workflow whose tasks call a slow service can wait longer
    /// between attempts than the executor's other runs. Like the deadline, it is this drive's:
    /// a resume passes it again.
    pub retry: Option<crate::RetryPolicy>,
    /// Whether an adopted run takes this plan's task definitions for its root tasks that
    /// have not finished ([`RunPlan::reload`]). Off by default: an adopted run goes on with
    /// the inputs its tasks were enqueued with.
    pub reload: bool,
}

impl RunPlan {
    /// A plan with no phases, no fixed run id and no deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_executor::RunPlan;
    ///
    /// let plan = RunPlan::new("site", "default");
    /// assert_eq!((plan.workflow.as_str(), plan.scope.as_str()), ("site", "default"));
    /// assert!(plan.phases.is_empty() && plan.input.is_empty());
    /// assert!(plan.run_id.is_none() && plan.deadline.is_none() && plan.retry.is_none());
    /// assert!(!plan.reload);
    /// ```
    pub fn new(workflow: impl Into<String>, scope: impl Into<String>) -> RunPlan {
        RunPlan {
            workflow: workflow.into(),
            scope: scope.into(),
            input: String::new(),
            run_id: None,
            phases: Vec::new(),
            deadline: None,
            retry: None,
            reload: false,
        }
    }

    /// Makes an adoption (`Start::Adopt`, `Start::AdoptInterrupted`, or `Start::Auto`
    /// finding an interrupted run) take this plan's task definitions: every root task whose
    /// inputs or attempt limit differ from the plan's is amended (`Queue::amend`, one
    /// journaled `Amended` event and one audit record each) before anything starts, so a
    /// fix to a failed task's definition reaches the run without redoing the tasks that are
    /// done. Tasks are matched by position, as on any adoption ([`RunPlan::reload_changes`]
    /// lists what would change).
    ///
    /// A task that is `done` or `skipped` is never run again, so its definition must not
    /// change, and an attempt limit may not drop below the attempts a task used: when either
    /// happens ([`ReloadChange::refusal`]), or the plan does not fit the run (tasks added to,
    /// removed from or moved in a phase the run started, other `after` edges:
    /// [`RunPlan::fit_problems`]), the adopted run fails with kind `build` and nothing is
    /// amended. Hosts should check both first and refuse there, before they claim the run.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_executor::RunPlan;
    ///
    /// let plan = RunPlan::new("deploy", "prod").reload();
    /// assert!(plan.reload);
    /// ```
    pub fn reload(mut self) -> Self {
        self.reload = true;
        self
    }

    /// Adds a phase.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use std::time::Duration;
    /// use cairn_checkpoint::NoopFactory;
    /// use cairn_executor::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cairn_executor::Error> {
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let build = handler_fn_with(Arc::clone(&log), |log, _ctx| async move {
    ///     tokio::time::sleep(Duration::from_millis(10)).await;
    ///     log.lock().unwrap().push("build");
    ///     Ok(Finish::Complete(Handoff::default()))
    /// });
    /// let deploy = handler_fn_with(Arc::clone(&log), |log, _ctx| async move {
    ///     log.lock().unwrap().push("deploy");
    ///     Ok(Finish::Complete(Handoff::default()))
    /// });
    /// let registry = Registry::new().with("build", build).with("deploy", deploy);
    /// let executor = Executor::new(NoopFactory, registry, ExecutorConfig::default())?;
    /// let mut first = Phase::new("build");
    /// first.task(TaskSpec::new("build"), []);
    /// let mut second = Phase::new("deploy");
    /// second.task(TaskSpec::new("deploy"), []);
    /// // In the order they run: the slow build is done before the deploy starts.
    /// let plan = RunPlan::new("site", "default").phase(first).phase(second);
    /// executor.run(plan, Start::Fresh, RunSignals::default()).await?;
    /// assert_eq!(*log.lock().unwrap(), ["build", "deploy"]);
    /// # Ok(()) }
    /// ```
    pub fn phase(mut self, phase: Phase) -> Self {
        self.phases.push(phase);
        self
    }

    /// Fixes the run id.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{MemoryFactory, RunStatus};
    /// use cairn_executor::Error;
    /// use cairn_executor::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = ExecutorConfig::default();
    /// let executor = Executor::new(MemoryFactory::new(), Registry::new(), config)?;
    /// let id = RunId::new("nightly-2026-06-01")?;
    /// let plan = RunPlan::new("nightly", "default").run_id(id.clone());
    /// let report = executor.run(plan.clone(), Start::Fresh, RunSignals::default()).await?;
    /// assert_eq!(report.run_id, id);
    /// // The id is taken now: the same plan begins nothing.
    /// let again = executor.run(plan, Start::Fresh, RunSignals::default()).await;
    /// assert!(matches!(again, Err(Error::RunExists { status: RunStatus::Completed, .. })));
    /// # Ok(()) }
    /// ```
    pub fn run_id(mut self, run_id: RunId) -> Self {
        self.run_id = Some(run_id);
        self
    }

    /// Sets the input text stored with the run.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_checkpoint::{CheckpointerFactory, MemoryFactory};
    /// use cairn_executor::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = MemoryFactory::new();
    /// let executor = Executor::new(store.clone(), Registry::new(), ExecutorConfig::default())?;
    /// let plan = RunPlan::new("site", "default").input("rebuild the docs");
    /// let report = executor.run(plan, Start::Fresh, RunSignals::default()).await?;
    /// let stored = store.load_meta(&report.run_id).await?.expect("the run exists");
    /// assert_eq!(stored.input, "rebuild the docs");
    /// # Ok(()) }
    /// ```
    pub fn input(mut self, input: impl Into<String>) -> Self {
        self.input = input.into();
        self
    }

    /// Sets the deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_checkpoint::NoopFactory;
    /// use cairn_executor::prelude::*;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), cairn_executor::Error> {
    /// let stuck = handler_fn(|_ctx| async {
    ///     tokio::time::sleep(Duration::from_secs(3600)).await;
    ///     Ok(Finish::Complete(Handoff::default()))
    /// });
    /// let registry = Registry::new().with("stuck", stuck);
    /// let executor = Executor::new(NoopFactory, registry, ExecutorConfig::default())?;
    /// let mut phase = Phase::new("only");
    /// phase.task(TaskSpec::new("stuck"), []);
    /// let plan = RunPlan::new("demo", "default").phase(phase).deadline(Duration::from_millis(20));
    /// let report = executor.run(plan, Start::Fresh, RunSignals::default()).await?;
    /// let Disposition::Fail(error) = report.disposition else { panic!("the deadline passed") };
    /// assert_eq!(error.kind, "deadline");
    /// # Ok(()) }
    /// ```
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets this run's retry backoff (see [`RunPlan::retry`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_executor::{RetryPolicy, RunPlan};
    ///
    /// let plan = RunPlan::new("deploy", "prod").retry(RetryPolicy {
    ///     base: Duration::from_secs(30),
    ///     max: Duration::from_secs(600),
    ///     ..RetryPolicy::default()
    /// });
    /// assert_eq!(plan.retry.unwrap().base, Duration::from_secs(30));
    /// ```
    pub fn retry(mut self, retry: crate::RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }
}

impl RunPlan {
    /// Everything wrong with this plan that would stop a fresh run before its first task:
    /// empty kinds, kinds `registry` has no handler for, `after` positions that are not earlier tasks of
    /// the phase, task ids in `depends_on`, tasks allowed 0 attempts, and more tasks than
    /// `queue` may hold. Empty when the plan can be built. The executor asks this before it
    /// begins a fresh run (`Error::InvalidPlan`); it does not look at inputs, whose nesting
    /// the queue still checks once the run has begun.
    pub(crate) fn problems(&self, registry: &Registry, queue: &QueueConfig) -> Vec<PlanProblem> {
        let mut problems = Vec::new();
        let mut planned = 0usize;
        for (phase_index, phase) in self.phases.iter().enumerate() {
            for (position, task) in phase.tasks.iter().enumerate() {
                planned += 1;
                let at = || TaskAt {
                    phase: phase_index,
                    phase_name: phase.name.clone(),
                    position,
                    kind: task.spec.kind.clone(),
                    name: task.name.clone(),
                };
                if task.spec.kind.is_empty() {
                    problems.push(PlanProblem::EmptyKind { at: at() });
                } else if !registry.contains(&task.spec.kind) {
                    problems.push(PlanProblem::UnknownKind { at: at() });
                }
                if !task.spec.depends_on.is_empty() {
                    problems.push(PlanProblem::DependsOn { at: at() });
                }
                if let Some(&after) = task.after.iter().find(|&&after| after >= position) {
                    problems.push(PlanProblem::BadAfter { at: at(), after });
                }
                if task.spec.max_attempts.unwrap_or(queue.default_max_attempts) == 0 {
                    problems.push(PlanProblem::NoAttempts { at: at() });
                }
                if cairn_queue::nests_too_deep(&task.spec.inputs) {
                    problems.push(PlanProblem::InputsTooDeep { at: at() });
                }
            }
        }
        let limit = queue.max_tasks.min(MAX_TASKS_HARD_LIMIT);
        if planned > limit {
            problems.push(PlanProblem::TooManyTasks { planned, limit });
        }
        problems
    }

    /// The plan names of `queue`'s root tasks: the executor enqueues a plan's tasks as roots
    /// in plan order, so the n-th root is the plan's n-th task (counting through the phases).
    /// Tasks without a name, follow-ups, and roots whose kind is not the planned task's (a
    /// plan that does not fit the run, which the drive then refuses) are left out.
    pub(crate) fn root_names(&self, queue: &Queue) -> HashMap<TaskId, String> {
        let roots = queue.tasks().filter(|t| t.enqueued_by == EnqueuedBy::Root);
        let planned = self.phases.iter().flat_map(|phase| &phase.tasks);
        roots
            .zip(planned)
            .filter(|(root, task)| root.kind == task.spec.kind)
            .filter_map(|(root, task)| Some((root.id, task.name.clone()?)))
            .collect()
    }
}

/// A root task of a run whose definition in a plan differs from the run's: what
/// [`RunPlan::reload`] would amend, or refuse to.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReloadChange {
    /// The run's task.
    pub id: TaskId,
    /// The planned task's name, if it has one.
    pub name: Option<String>,
    /// The task's status in the run.
    pub status: Status,
    /// The plan's inputs, when they differ from the task's.
    pub inputs: Option<serde_json::Value>,
    /// The task's attempt limit and the plan's, when they differ.
    pub max_attempts: Option<(u32, u32)>,
    /// The attempts the task has used.
    pub attempts: u32,
}

impl ReloadChange {
    /// Whether the run may take the change ([`ReloadChange::refusal`] is `None`).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_executor::prelude::*;
    /// use cairn_executor::queue::{EnqueuedBy, Queue, QueueConfig, Timestamp};
    ///
    /// let config = QueueConfig::default();
    /// let mut queue = Queue::new(config.clone());
    /// let spec = TaskSpec::new("shell").inputs("make".into()).without_dedup();
    /// let done = queue.enqueue(spec.clone(), EnqueuedBy::Root, Timestamp(0))?.id;
    /// queue.enqueue(spec, EnqueuedBy::Root, Timestamp(0))?;
    /// queue.start(done, Timestamp(1))?;
    /// queue.complete(done, Handoff::default(), Timestamp(2))?;
    ///
    /// // The plan changes both tasks' inputs; only the one that has not run may take them.
    /// let mut phase = Phase::new("build");
    /// phase.task(TaskSpec::new("shell").inputs("make all".into()), []);
    /// phase.task(TaskSpec::new("shell").inputs("make all".into()), []);
    /// let changes = RunPlan::new("ci", "main").phase(phase).reload_changes(&queue, &config);
    /// let may: Vec<bool> = changes.iter().map(|change| change.may_amend()).collect();
    /// assert_eq!(may, [false, true]);
    /// # Ok::<(), cairn_executor::queue::Error>(())
    /// ```
    pub fn may_amend(&self) -> bool {
        self.refusal().is_none()
    }

    /// Why the run cannot take the change, if it cannot: the task finished (a `done` or
    /// `skipped` task is never run again, so changing it would change nothing but the record
    /// of what ran), or the plan's attempt limit leaves it no attempt or is below the
    /// attempts it has used.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_executor::prelude::*;
    /// use cairn_executor::queue::{EnqueuedBy, Queue, QueueConfig, Timestamp};
    ///
    /// let config = QueueConfig::default();
    /// let mut queue = Queue::new(config.clone());
    /// let id = queue
    ///     .enqueue(TaskSpec::new("shell").max_attempts(3).without_dedup(), EnqueuedBy::Root, Timestamp(0))?
    ///     .id;
    /// queue.start(id, Timestamp(1))?;
    /// queue.fail(id, TaskError::new("flaky", "timed out"), true, Timestamp(3), Timestamp(2))?;
    ///
    /// let mut phase = Phase::new("build");
    /// phase.task(TaskSpec::new("shell").max_attempts(1), []);
    /// let changes = RunPlan::new("ci", "main").phase(phase).reload_changes(&queue, &config);
    /// assert!(changes[0].refusal().unwrap().contains("used 1 attempt"));
    /// # Ok::<(), cairn_executor::queue::Error>(())
    /// ```
    pub fn refusal(&self) -> Option<String> {
        if self.status.satisfies_dependents() {
            return Some(format!(
                "it is {} and a finished task is never run again, so its definition must stay as it was",
                self.status
            ));
        }
        let (_, limit) = self.max_attempts?;
        if limit == 0 {
            Some("the plan allows it 0 attempts; it could never run".to_owned())
        } else if self.status == Status::Pending && self.attempts >= limit {
            Some(format!(
                "it has used {} attempt(s), so the plan's limit of {limit} would leave it none",
                self.attempts
            ))
        } else if self.attempts > limit {
            Some(format!(
                "it has used {} attempt(s), more than the plan's limit of {limit}",
                self.attempts
            ))
        } else {
            None
        }
    }
}

/// Why a plan does not fit the tasks of a run it adopts ([`RunPlan::fit_problems`]). An
/// adoption matches the run's root tasks to the plan's tasks by position, phase after phase,
/// so the phases the run has started must have the same tasks, kinds and `after` edges.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FitProblem {
    /// The run started more phases than the plan has.
    #[error("the run has started {run} phase(s) but the plan has {planned}")]
    PhaseCount {
        /// Phases the run started.
        run: usize,
        /// Phases in the plan.
        planned: usize,
    },
    /// A phase the run started has another name in the plan.
    #[error("the run's phase {index} is `{run}` but the plan's is `{planned}`")]
    PhaseName {
        /// The phase's position.
        index: usize,
        /// Its name in the run.
        run: String,
        /// Its name in the plan.
        planned: String,
    },
    /// The phases the run started hold another number of tasks than the plan's: tasks were
    /// added to or removed from them.
    #[error(
        "the run's {phases} started phase(s) hold {run} task(s) but the plan's hold {planned}: tasks were added to or removed from a phase the run has started"
    )]
    TaskCount {
        /// Phases the run started.
        phases: usize,
        /// Root tasks the run holds.
        run: usize,
        /// Tasks the plan has in those phases.
        planned: usize,
    },
    /// The plan's task at a position has another kind than the run's task there.
    #[error("{at}: the run's task {task} there is of kind `{kind}`")]
    Kind {
        /// The planned task.
        at: TaskAt,
        /// The run's task at its position.
        task: TaskId,
        /// That task's kind.
        kind: String,
    },
    /// The plan's task waits for other tasks than the run's task at its position.
    #[error(
        "{at} waits for position(s) {planned:?}, but the run's task {task} there waits for position(s) {run:?}"
    )]
    After {
        /// The planned task.
        at: TaskAt,
        /// The run's task at its position.
        task: TaskId,
        /// The positions (in its phase) the plan's task waits for.
        planned: Vec<usize>,
        /// The positions (in its phase) the run's task waits for.
        run: Vec<usize>,
    },
}

impl RunPlan {
    /// The root tasks of `queue` (a run adopted for this plan) whose inputs or attempt limit
    /// differ from this plan's, in plan order. Roots are matched to planned tasks by
    /// position, as on adoption; positions whose kinds differ are left out (the adopted run
    /// fails with kind `build` for them anyway), and so are planned tasks the run has not
    /// enqueued yet (a later phase's, which are enqueued from the plan). `config` is the
    /// queue's configuration, whose default attempt limit stands for a planned task's
    /// `max_attempts` of `None`.
    ///
    /// For a run read back from the store (`Recovered::queue` of a peek), call
    /// [`crate::take_over`](fn@crate::take_over) on the queue first: the changes are then
    /// judged on the tasks as the adoption will find them (a task a crash left `running` on
    /// its last attempt is `failed` by then, and an explicit resume's failed tasks are
    /// `pending` again).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_executor::prelude::*;
    /// use cairn_executor::queue::{EnqueuedBy, Queue, QueueConfig, Timestamp};
    ///
    /// let config = QueueConfig::default();
    /// let mut queue = Queue::new(config.clone());
    /// let spec = TaskSpec::new("shell").inputs(serde_json::json!("mak build"));
    /// queue.enqueue(spec.without_dedup(), EnqueuedBy::Root, Timestamp(0))?;
    ///
    /// let mut phase = Phase::new("build");
    /// phase.named_task("build", TaskSpec::new("shell").inputs(serde_json::json!("make build")), []);
    /// let plan = RunPlan::new("ci", "main").phase(phase).reload();
    /// let changes = plan.reload_changes(&queue, &config);
    /// assert_eq!(changes.len(), 1);
    /// assert_eq!(changes[0].name.as_deref(), Some("build"));
    /// assert!(changes[0].may_amend(), "it is still pending");
    /// # Ok::<(), cairn_executor::queue::Error>(())
    /// ```
    pub fn reload_changes(&self, queue: &Queue, config: &QueueConfig) -> Vec<ReloadChange> {
        reload_changes(&self.phases, queue, config)
    }

    /// Why this plan does not fit `queue`, a run it would adopt: the phases the run has
    /// started must have the run's names, tasks, kinds and `after` edges, since an adoption
    /// matches the run's root tasks to the plan's by position. Empty when it fits. An
    /// adoption (and a [`RunPlan::reload`]) of a plan that does not fit fails the run with
    /// kind `build` before any task starts; hosts check here first so that they can refuse
    /// before they claim the run. Phases the run has not started may change freely.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_executor::prelude::*;
    /// use cairn_executor::queue::{EnqueuedBy, Queue, QueueConfig, Timestamp};
    ///
    /// let mut queue = Queue::new(QueueConfig::default());
    /// queue.start_phase(0, "build")?;
    /// queue.enqueue(TaskSpec::new("shell").without_dedup(), EnqueuedBy::Root, Timestamp(0))?;
    ///
    /// let mut same = Phase::new("build");
    /// same.task(TaskSpec::new("shell"), []);
    /// assert!(RunPlan::new("ci", "main").phase(same).fit_problems(&queue).is_empty());
    ///
    /// let mut grown = Phase::new("build");
    /// let first = grown.task(TaskSpec::new("shell"), []);
    /// grown.task(TaskSpec::new("shell"), [first]);
    /// let problems = RunPlan::new("ci", "main").phase(grown).fit_problems(&queue);
    /// assert!(matches!(problems[0], FitProblem::TaskCount { run: 1, planned: 2, .. }));
    /// # Ok::<(), cairn_executor::queue::Error>(())
    /// ```
    pub fn fit_problems(&self, queue: &Queue) -> Vec<FitProblem> {
        fit_problems(&self.phases, queue)
    }
}

/// [`RunPlan::fit_problems`] for the phases of a plan.
pub(crate) fn fit_problems(phases: &[Phase], queue: &Queue) -> Vec<FitProblem> {
    let mut problems = Vec::new();
    let started: Vec<(u32, &str)> = queue.started_phases().collect();
    let started_count = started
        .iter()
        .map(|(index, _)| *index as usize + 1)
        .max()
        .unwrap_or(0);
    if started_count > phases.len() {
        problems.push(FitProblem::PhaseCount {
            run: started_count,
            planned: phases.len(),
        });
        return problems;
    }
    for (index, name) in &started {
        let planned = &phases[*index as usize].name;
        if planned != name {
            problems.push(FitProblem::PhaseName {
                index: *index as usize,
                run: (*name).to_owned(),
                planned: planned.clone(),
            });
        }
    }
    let roots: Vec<&cairn_queue::Task> = queue
        .tasks()
        .filter(|t| t.enqueued_by == EnqueuedBy::Root)
        .collect();
    // A run from before phases were recorded has roots and no started phase: only the
    // positions it holds are compared.
    if started_count > 0 {
        let planned: usize = phases[..started_count].iter().map(|p| p.tasks.len()).sum();
        if planned != roots.len() {
            problems.push(FitProblem::TaskCount {
                phases: started_count,
                run: roots.len(),
                planned,
            });
            return problems;
        }
    }
    let flat_of: HashMap<TaskId, usize> =
        roots.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
    let mut offset = 0usize;
    for (phase_index, phase) in phases.iter().enumerate() {
        for (position, planned) in phase.tasks.iter().enumerate() {
            let Some(root) = roots.get(offset + position) else {
                return problems;
            };
            let at = || TaskAt {
                phase: phase_index,
                phase_name: phase.name.clone(),
                position,
                kind: planned.spec.kind.clone(),
                name: planned.name.clone(),
            };
            if root.kind != planned.spec.kind {
                problems.push(FitProblem::Kind {
                    at: at(),
                    task: root.id,
                    kind: root.kind.clone(),
                });
                continue;
            }
            let mut planned_after = planned.after.clone();
            planned_after.sort_unstable();
            planned_after.dedup();
            let mut run_after: Vec<usize> = root
                .depends_on
                .iter()
                .filter_map(|id| flat_of.get(id))
                .map(|flat| flat.wrapping_sub(offset))
                .collect();
            run_after.sort_unstable();
            run_after.dedup();
            if planned_after != run_after {
                problems.push(FitProblem::After {
                    at: at(),
                    task: root.id,
                    planned: planned_after,
                    run: run_after,
                });
            }
        }
        offset += phase.tasks.len();
    }
    problems
}

/// [`RunPlan::reload_changes`] for the phases of a plan (the drive holds only those).
pub(crate) fn reload_changes(
    phases: &[Phase],
    queue: &Queue,
    config: &QueueConfig,
) -> Vec<ReloadChange> {
    let roots = queue.tasks().filter(|t| t.enqueued_by == EnqueuedBy::Root);
    let planned = phases.iter().flat_map(|phase| &phase.tasks);
    roots
        .zip(planned)
        .filter(|(root, task)| root.kind == task.spec.kind)
        .filter_map(|(root, task)| {
            let limit = task
                .spec
                .max_attempts
                .unwrap_or(config.default_max_attempts);
            let inputs = (root.inputs != task.spec.inputs).then(|| task.spec.inputs.clone());
            let max_attempts = (root.max_attempts != limit).then_some((root.max_attempts, limit));
            (inputs.is_some() || max_attempts.is_some()).then(|| ReloadChange {
                id: root.id,
                name: task.name.clone(),
                status: root.status,
                inputs,
                max_attempts,
                attempts: root.attempts,
            })
        })
        .collect()
}

/// Where a task sits in a plan, as [`PlanProblem`] names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskAt {
    /// The phase's position (from 0).
    pub phase: usize,
    /// The phase's name.
    pub phase_name: String,
    /// The task's position in its phase (from 0).
    pub position: usize,
    /// The task's kind.
    pub kind: String,
    /// The task's name ([`PlannedTask::name`]), if it has one.
    pub name: Option<String>,
}

impl std::fmt::Display for TaskAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "phase {} `{}` task {}",
            self.phase, self.phase_name, self.position
        )?;
        match &self.name {
            Some(name) => write!(f, " `{name}` (kind `{}`)", self.kind),
            None => write!(f, " (kind `{}`)", self.kind),
        }
    }
}

/// One reason a plan cannot run, found before a fresh run is begun ([`crate::Error::InvalidPlan`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanProblem {
    /// No handler is registered for the task's kind.
    #[error("{at}: no handler is registered for its kind")]
    UnknownKind {
        /// The task.
        at: TaskAt,
    },
    /// The task's kind is empty: no task can have that kind, whatever the registry holds.
    #[error("{at}: the task kind is empty")]
    EmptyKind {
        /// The task.
        at: TaskAt,
    },
    /// The task waits for a position that is not an earlier task of its phase.
    #[error("{at} waits for position {after}, which is not an earlier task of the phase")]
    BadAfter {
        /// The task.
        at: TaskAt,
        /// The position it names.
        after: usize,
    },
    /// The task names queue ids in `depends_on`, which a plan cannot know.
    #[error("{at} names task ids in depends_on; use `after` positions instead")]
    DependsOn {
        /// The task.
        at: TaskAt,
    },
    /// The task (or the queue's default) allows 0 attempts: it could never run.
    #[error("{at} allows 0 attempts; it could never run")]
    NoAttempts {
        /// The task.
        at: TaskAt,
    },
    /// The task's inputs nest deeper than [`cairn_queue::MAX_VALUE_DEPTH`], which the queue
    /// refuses (the journal could not be read back).
    #[error(
        "{at}: its inputs nest more than {} levels deep",
        cairn_queue::MAX_VALUE_DEPTH
    )]
    InputsTooDeep {
        /// The task.
        at: TaskAt,
    },
    /// The plan holds more tasks than the run's queue may.
    #[error("the plan holds {planned} tasks, more than the queue's limit of {limit}")]
    TooManyTasks {
        /// How many tasks the plan holds.
        planned: usize,
        /// The queue's limit (`QueueConfig::max_tasks`).
        limit: usize,
    },
}

/// How messages call task `id`: `` task `build` `` when `names` has it (the queue's own id
/// is left out: beside a workflow's ids, `t3` reads as another of its tasks), else
/// `` task t3 (`shell`) ``.
pub(crate) fn describe_task<N: std::fmt::Display>(
    names: &HashMap<TaskId, N>,
    id: TaskId,
    kind: &str,
) -> String {
    match names.get(&id) {
        Some(name) => format!("task `{name}`"),
        None => format!("task {id} (`{kind}`)"),
    }
}

/// How `Executor::run` finds the run to drive.
///
/// The executor adopts only runs that were interrupted (`running` with no live writer). A
/// `failed` run is never adopted by the executor's own lookup: whether to resume it is the
/// resume policy's decision (`cairn-runs`), which then uses `Adopt`.
///
/// Which variant follows a policy claim depends on the status the run was claimed from
/// (`ResumedRun::previous_status` in `cairn-runs`): `failed` (or `paused`) → `Adopt`, which
/// gives failed tasks fresh attempts; `running` (an interrupted run) → `AdoptInterrupted`,
/// which continues the run as `Auto` would, so a task that failed for good stays failed
/// (unless the run was interrupted in an explicit resume before its retries were journaled:
/// that resume is finished, see `docs/resume-policy.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Start {
    /// Always begin a new run. Its plan is checked against the registry first
    /// (`Executor::check_plan`), so a plan that cannot run begins nothing.
    Fresh,
    /// Adopt an interrupted run of this workflow and scope if there is one, else begin a
    /// new run. When the plan names its run id, only that run is a candidate. A run another
    /// process drives is not interrupted, and it is not run beside either: when one is found
    /// (its writer lock is held, or another process claims it first) and there is nothing
    /// else to adopt, the call fails with `Error::RunInProgress` and begins nothing. A run a
    /// newer build wrote is left exactly where it is and ends the call with `Error::Claim`
    /// or `Error::Open` (the store's `NewerFormat`), beginning nothing. So does a run whose
    /// state is damaged (the store's `Corruption`: a bad record that is not a torn last one):
    /// it is this workflow's run, and which of its tasks were done cannot be read, so it is
    /// left in place for a person to abandon (`cairn-runs`) or to go past with `Start::Fresh`.
    /// State that does not fit (an older
    /// format version, a stored id that differs from the run's, or another scope) is
    /// quarantined, audited and logged, and a new run begins. That new run
    /// runs every task again, including those the quarantined run had finished: `Start::Auto`
    /// does not ask. Hosts that must ask a person first go through the resume policy
    /// (`cairn-runs`), whose `Decision::QuarantinePrompt` stops there.
    ///
    /// The adopted run keeps its own input: a plan's `input` that differs from it is not
    /// used (the run continues what it was started for). If the plan's tasks no longer fit
    /// the adopted run's (another kind at a planned position, say after the workflow was
    /// edited), the adopted run fails with kind `build` rather than being silently replaced;
    /// hosts that run distinct jobs under one workflow and scope should give each its own
    /// run id (`RunPlan::run_id`), so that a job only ever adopts its own run. Callers that take input from a
    /// person should check `RunReport::resumed` and the adopted run's stored
    /// `RunMeta::input` against what they asked for, or use the resume policy
    /// (`cairn-runs`), which reports it.
    Auto,
    /// Open and drive this run as an explicit resume of a failed (or paused) run: every
    /// failed task gets fresh attempts and the dependents it blocked return to `pending`.
    /// The caller (the resume policy) has already moved it to `running` with a status
    /// compare-and-swap, which claimed a new lease epoch.
    ///
    /// As for `AdoptInterrupted`, the run is driven only while its stored lease is the
    /// caller's claim: when another claim has moved the lease epoch on since, the call fails
    /// with `Error::AdoptLeaseMoved` before anything runs (checked before the open and again
    /// under the lock).
    ///
    /// While another process holds the run's writer lock (an abandon that began before the
    /// claim, which then refuses), the open keeps trying for up to 10 seconds before it
    /// fails with `Error::Open` (`Locked`); this holds for `AdoptInterrupted` too.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_executor::Start;
    /// use cairn_executor::checkpoint::{RunId, RunMeta};
    ///
    /// // `claimed` is what the claim returned (`ResumedRun::meta` from the resume policy).
    /// let claimed = RunMeta::new(RunId::new("r1")?, "wf", "scope", "", Default::default());
    /// let start = Start::Adopt {
    ///     run_id: claimed.run_id.clone(),
    ///     lease_epoch: claimed.lease_epoch,
    /// };
    /// # let _ = start;
    /// # Ok::<(), cairn_executor::checkpoint::Error>(())
    /// ```
    Adopt {
        /// The run.
        run_id: RunId,
        /// The lease epoch the caller's claim gave the run (`RunMeta::lease_epoch` of the
        /// metadata the claim returned).
        lease_epoch: u64,
    },
    /// Open and drive this interrupted run, which the caller (the resume policy) claimed from
    /// `running` at `lease_epoch`. Like `Auto`'s adoption: tasks that were running are
    /// recovered (`Queue::recover`), and failed tasks stay failed, so a task that failed
    /// permanently is not run again just because the run was interrupted.
    ///
    /// The run is driven only while its stored lease is the caller's claim: when another
    /// claim has moved the lease epoch on since (a process that claimed it too, on a host
    /// whose processes the policy cannot check), the run is not the caller's to drive, and
    /// the call fails with `Error::AdoptLeaseMoved` before anything runs. It checks before
    /// it waits for the run's lock, and again once it holds it.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_executor::Start;
    /// use cairn_executor::checkpoint::{RunId, RunMeta};
    ///
    /// // `claimed` is what the claim returned (`ResumedRun::meta` from the resume policy).
    /// let claimed = RunMeta::new(RunId::new("r1")?, "wf", "scope", "", Default::default());
    /// let start = Start::AdoptInterrupted {
    ///     run_id: claimed.run_id.clone(),
    ///     lease_epoch: claimed.lease_epoch,
    /// };
    /// # let _ = start;
    /// # Ok::<(), cairn_executor::checkpoint::Error>(())
    /// ```
    AdoptInterrupted {
        /// The run.
        run_id: RunId,
        /// The lease epoch the caller's claim gave the run (`RunMeta::lease_epoch` of the
        /// metadata the claim returned).
        lease_epoch: u64,
    },
}

/// Tokens that stop a drive. All default to tokens nobody cancels.
#[derive(Debug, Clone, Default)]
pub struct RunSignals {
    /// Graceful shutdown: no new attempts start, running ones get the grace period, then the
    /// run is left `running` for a later resume.
    pub shutdown: CancellationToken,
    /// Cancel this run: running attempts are stopped at once and the run fails with kind
    /// `cancelled`.
    pub cancel: CancellationToken,
    /// End a shutdown's grace period now (a second Ctrl-C): running attempts are stopped at
    /// once and released, so they rerun under the same attempt number on resume, and the run
    /// is left `running` exactly as when the grace runs out. Fired on its own, it shuts down
    /// with no grace at all. Unlike killing the process, which leaves the attempts charged
    /// as after a crash, nothing is spent.
    pub grace_over: CancellationToken,
}
