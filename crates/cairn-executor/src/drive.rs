//! The drive loop: starts runnable tasks in batches, records each batch with one append, runs
//! handlers on tokio and applies their results, phase after phase.
//!
//! One cycle is: apply every result that is ready, start what is runnable (up to the
//! concurrency limit), append all the events of those transitions at once, and only then let
//! the newly started handler bodies run. So a `Started` record is durable before its body
//! runs, the journal holds events in exactly the order the queue applied them, and one fsync
//! covers a whole batch.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_checkpoint::{AuditAction, AuditRecord, Checkpointer, RunId};
use cairn_queue::{
    EnqueuedBy, Outcome, Queue, Status, StatusCounts, TaskError, TaskId, TaskSpec, Timestamp,
};
use cairn_telemetry::{emit, names};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{Dispatch, Span};

use crate::attempt::{AttemptEnd, AttemptFields, AttemptScope, Overrun, TracedAttempt, panic_text};
use crate::config::ExecutorConfig;
use crate::error::Error;
use crate::executor::AcknowledgedHook;
use crate::handler::{EnqueueRequest, Finish, Registry, TaskContext, TaskFailure};
use crate::outcome::{CancelCause, FailedTask, RunStop};
use crate::plan::{Phase, PlannedTask, RunSignals, describe_task};

/// Batches of more events than this do not keep the outbox's room once appended.
const LARGE_BATCH: usize = 4096;

/// The executor's clock: wall-clock milliseconds at the start of the drive, advanced by
/// tokio's clock, so paused tokio time in tests drives backoff and timeouts alike.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    base_ms: u64,
    start: Instant,
}

impl Clock {
    pub(crate) fn start() -> Clock {
        Clock {
            base_ms: cairn_checkpoint::wall_clock_now().0,
            start: Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.base_ms.saturating_add(elapsed))
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn instant_at(&self, at: Timestamp) -> Instant {
        self.start + Duration::from_millis(at.0.saturating_sub(self.base_ms))
    }
}

/// What a resumed drive inherited, for telemetry.
#[derive(Debug, Clone)]
pub(crate) struct ResumeInfo {
    pub(crate) lease_epoch: u64,
    pub(crate) tasks_reset: u64,
}

/// Bookkeeping for one attempt in flight. Its task span is not here: the attempt opens,
/// labels and closes it on its worker (`crate::attempt`).
struct InFlight {
    id: TaskId,
    attempt: u32,
}

/// Hashes tokio task ids (one `u64` each) with a multiply. The in-flight map is looked up
/// twice per attempt, and SipHash's resistance to chosen keys buys nothing for ids the
/// runtime hands out.
#[derive(Debug, Default, Clone, Copy)]
struct TaskIdHasher(u64);

impl Hasher for TaskIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for tokio's ids (they hash as one `u64`); kept correct for any key.
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// What woke the drive loop up.
enum Wake {
    Cancel,
    Deadline,
    Shutdown,
    GraceOver,
    Request(EnqueueRequest),
    Joined(Result<(tokio::task::Id, AttemptEnd), tokio::task::JoinError>),
    Timer,
}

/// Everything one drive owns. It runs in its own tokio task so that a panic anywhere in it
/// is caught by the caller, which then still finalizes the run.
pub(crate) struct Drive {
    pub(crate) run_id: RunId,
    pub(crate) queue: Queue,
    pub(crate) checkpointer: Arc<dyn Checkpointer>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) config: Arc<ExecutorConfig>,
    pub(crate) phases: Vec<Phase>,
    pub(crate) phases_started: BTreeSet<u32>,
    pub(crate) resumed: Option<ResumeInfo>,
    pub(crate) signals: RunSignals,
    pub(crate) deadline: Option<Instant>,
    /// The plan's backoff, or the executor's.
    pub(crate) retry: crate::RetryPolicy,
    pub(crate) clock: Clock,
    pub(crate) counts: Arc<Mutex<StatusCounts>>,
    pub(crate) workflow: String,
    pub(crate) scope: String,
    /// The plan names of the tasks that have one ([`crate::PlannedTask::name`]), for
    /// messages and for the task spans' and events' `task_name`.
    pub(crate) names: HashMap<TaskId, Arc<str>>,
    /// Told of every acknowledged batch ([`crate::Executor::on_acknowledged`]).
    pub(crate) on_acknowledged: Option<AcknowledgedHook>,
    /// The take-over's `Recovered` record, written once its events are journaled.
    pub(crate) recovery_audits: Vec<AuditRecord>,
    /// Whether an adopted run takes the plan's definitions for its unfinished tasks
    /// ([`crate::RunPlan::reload`]).
    pub(crate) reload: bool,
}

/// The mutable state of the loop, apart from the queue.
struct Flight {
    running: JoinSet<AttemptEnd>,
    /// Fires `attempts_cancel` when the flight is dropped without ending normally (the caller
    /// dropped `Executor::run`'s future, so the drive was aborted): work that attempts handed
    /// to other tasks or threads is told to stop, as after a cancel. Declared right after
    /// `running`, so the attempts are aborted first, as at the end of `Drive::run`.
    _cancel_attempts_on_drop: DropGuard,
    in_flight: HashMap<tokio::task::Id, InFlight, BuildHasherDefault<TaskIdHasher>>,
    /// The run id every attempt's context shares.
    run_id: Arc<RunId>,
    attempts_cancel: CancellationToken,
    requests_tx: mpsc::UnboundedSender<EnqueueRequest>,
    requests_rx: mpsc::UnboundedReceiver<EnqueueRequest>,
    ready: VecDeque<TaskId>,
    /// The attempts the current cycle starts (kept for its capacity).
    started: Vec<(TaskId, u32)>,
    stopping: Option<CancelCause>,
    grace_deadline: Option<Instant>,
    exit: Option<RunStop>,
    /// Attempts the drive stopped and released, to audit once they are all in.
    released: Vec<(TaskId, u32)>,
    /// The drive's subscriber, which attempts keep on whatever worker runs them (so a host's
    /// scoped subscriber sees their events too), and the run span, parent of every task span.
    attempts: Arc<AttemptScope>,
}

impl Drive {
    /// Drives the run to its end and says why it stopped (`None`: it completed).
    pub(crate) async fn run(mut self) -> Option<RunStop> {
        let (requests_tx, requests_rx) = mpsc::unbounded_channel();
        let run_id = Arc::new(self.run_id.clone());
        let attempts_cancel = CancellationToken::new();
        let mut flight = Flight {
            running: JoinSet::new(),
            _cancel_attempts_on_drop: attempts_cancel.clone().drop_guard(),
            in_flight: HashMap::default(),
            run_id: Arc::clone(&run_id),
            started: Vec::new(),
            attempts_cancel,
            requests_tx,
            requests_rx,
            ready: VecDeque::new(),
            stopping: None,
            grace_deadline: None,
            exit: None,
            released: Vec::new(),
            // The drive runs inside the run span and the caller's subscriber (`Executor::run`).
            attempts: Arc::new(AttemptScope::new(
                run_id,
                tracing::dispatcher::get_default(Dispatch::clone),
                Span::current(),
            )),
        };
        let result = self.run_phases(&mut flight).await;
        // Stop whatever still runs (only after an error, which records nothing more):
        // dropping the JoinSet would abort the tasks too, but cancelling their tokens lets
        // any work they handed off notice. Aborted first, so a body that would return because
        // its token fired is stopped as it is instead.
        flight.running.abort_all();
        flight.attempts_cancel.cancel();
        flight.running.shutdown().await;
        result.err()
    }

    async fn run_phases(&mut self, flight: &mut Flight) -> Result<(), RunStop> {
        // Recovery's events (resets, failures, retries) are recorded before anything else
        // happens, and audited once they are.
        self.flush().await?;
        for record in std::mem::take(&mut self.recovery_audits) {
            if let Err(error) = self.checkpointer.audit(&record).await {
                // The journal, not the audit log, is the source of truth; go on, but say so.
                tracing::warn!(target: names::DETAIL_TARGET, run_id = %self.run_id, error = %error, action = ?record.action, "could not write an audit record");
            }
        }
        if self.resumed.is_some() {
            // An adopted run's tasks are matched to the plan's by position: a plan that does
            // not fit would run the wrong definitions or drop edges, so it fails the run
            // before anything starts.
            let problems = crate::plan::fit_problems(&self.phases, &self.queue);
            if !problems.is_empty() {
                let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
                return Err(RunStop::Build(format!(
                    "the plan does not fit the adopted run: {}",
                    text.join("; ")
                )));
            }
        }
        if self.reload {
            self.reload_definitions().await?;
        }
        let counts = self.queue.counts();
        // Tasks the queue holds plus plan tasks not enqueued yet (later phases).
        let planned: usize = self.phases.iter().map(|p| p.tasks.len()).sum();
        let enqueued_roots = self
            .queue
            .tasks()
            .filter(|t| t.enqueued_by == EnqueuedBy::Root)
            .count();
        let tasks_total = self.queue.len() + planned.saturating_sub(enqueued_roots);
        emit::run_started(&emit::RunStarted {
            run_id: self.run_id.as_str(),
            workflow: &self.workflow,
            scope: &self.scope,
            tasks_total: tasks_total as u64,
            resumed: self.resumed.is_some(),
        });
        if let Some(info) = &self.resumed {
            emit::resumed(&emit::Resumed {
                run_id: self.run_id.as_str(),
                lease_epoch: info.lease_epoch,
                tasks_pending: counts.pending as u64,
                tasks_done: (counts.done + counts.skipped) as u64,
                tasks_reset: info.tasks_reset,
                tasks_failed: counts.failed as u64,
            });
        }
        self.check_kinds()?;

        let roots: Vec<TaskId> = self
            .queue
            .tasks()
            .filter(|t| t.enqueued_by == EnqueuedBy::Root)
            .map(|t| t.id)
            .collect();
        let mut offset = 0usize;
        let mut phases = std::mem::take(&mut self.phases);
        for (position, phase) in phases.iter_mut().enumerate() {
            let index = u32::try_from(position)
                .map_err(|_| RunStop::Build(format!("phase position {position} is too large")))?;
            if self.queue.phase_completed(index) {
                // Completed in an earlier drive: its root tasks exist, so skip past them.
                offset += phase.tasks.len();
                continue;
            }
            self.build_phase(index, phase, &roots, &mut offset)?;
            self.drain(flight).await?;
            match self.queue.outcome() {
                Some(Outcome::Completed) => self
                    .queue
                    .complete_phase(index, &phase.name)
                    .map_err(RunStop::Queue)?,
                Some(Outcome::Failed { failed, blocked }) => {
                    self.flush().await?;
                    return Err(self.tasks_failed(failed, blocked));
                }
                None => {
                    return Err(RunStop::Build(format!(
                        "phase {index} `{}` stopped before its tasks drained",
                        phase.name
                    )));
                }
            }
        }
        // Tasks outside any phase (an adopted run driven with an empty plan) still drain.
        self.drain(flight).await?;
        self.flush().await?;
        match self.queue.outcome() {
            Some(Outcome::Failed { failed, blocked }) => Err(self.tasks_failed(failed, blocked)),
            _ => Ok(()),
        }
    }

    /// Amends every unfinished root task whose definition the plan changes
    /// ([`crate::RunPlan::reload`]), journals the amendments and audits each, before anything
    /// starts. Refuses, amending nothing, when the plan changes a finished task.
    async fn reload_definitions(&mut self) -> Result<(), RunStop> {
        let changes = crate::plan::reload_changes(&self.phases, &self.queue, &self.config.queue);
        let refused: Vec<String> = changes
            .iter()
            .filter_map(|change| {
                let why = change.refusal()?;
                Some(format!("{}: {why}", describe_change(change)))
            })
            .collect();
        if !refused.is_empty() {
            return Err(RunStop::Build(format!(
                "the reloaded plan changes task(s) the run cannot take: {}",
                refused.join("; ")
            )));
        }
        let now = self.clock.now();
        let mut audits = Vec::with_capacity(changes.len());
        for change in changes {
            let task = self
                .queue
                .get(change.id)
                .ok_or_else(|| RunStop::Build(format!("task {} vanished", change.id)))?;
            let inputs = change.inputs.clone().unwrap_or_else(|| task.inputs.clone());
            let limit = change
                .max_attempts
                .map_or(task.max_attempts, |(_, new)| new);
            self.queue
                .amend(change.id, inputs, Some(limit), now)
                .map_err(|error| {
                    RunStop::Build(format!(
                        "{} cannot take the reloaded definition: {error}",
                        describe_change(&change)
                    ))
                })?;
            let mut what = Vec::new();
            if change.inputs.is_some() {
                what.push("new inputs".to_owned());
            }
            if let Some((old, new)) = change.max_attempts {
                what.push(format!("max_attempts {old} -> {new}"));
            }
            audits.push(
                AuditRecord::new(
                    now,
                    self.run_id.clone(),
                    AuditAction::TaskAmended,
                    format!(
                        "{} ({}) took the reloaded definition: {}",
                        describe_change(&change),
                        change.status,
                        what.join(", ")
                    ),
                )
                .with_detail(serde_json::json!({
                    "task_id": change.id.0,
                    "name": change.name,
                    "status": change.status,
                    "inputs_changed": change.inputs.is_some(),
                    "max_attempts": change.max_attempts.map(|(old, new)| [old, new]),
                })),
            );
            tracing::info!(target: names::DETAIL_TARGET, run_id = %self.run_id, task_id = %change.id, "task took the reloaded definition");
        }
        // Journaled before any audit says so, and before anything starts.
        self.flush().await?;
        for record in audits {
            if let Err(error) = self.checkpointer.audit(&record).await {
                tracing::warn!(target: names::DETAIL_TARGET, run_id = %self.run_id, error = %error, action = ?record.action, "could not write an audit record");
            }
        }
        Ok(())
    }

    fn tasks_failed(&self, failed: Vec<TaskId>, blocked: Vec<TaskId>) -> RunStop {
        let failed = failed
            .into_iter()
            .map(|id| {
                let task = self.queue.get(id);
                FailedTask {
                    id,
                    kind: task.map(|t| t.kind.clone()).unwrap_or_default(),
                    name: self.names.get(&id).map(|name| name.to_string()),
                    error: task.and_then(|t| t.error.as_deref().cloned()),
                }
            })
            .collect();
        RunStop::TasksFailed { failed, blocked }
    }

    /// Refuses to start when any task could reach a kind with no handler, before any
    /// task starts.
    fn check_kinds(&self) -> Result<(), RunStop> {
        let mut unknown: BTreeSet<String> = BTreeSet::new();
        for (position, phase) in self.phases.iter().enumerate() {
            for (task_position, planned) in phase.tasks.iter().enumerate() {
                if !self.registry.contains(&planned.spec.kind) {
                    unknown.insert(format!(
                        "`{}` (phase {position} `{}`, task {task_position})",
                        planned.spec.kind, phase.name
                    ));
                }
            }
        }
        for task in self.queue.tasks() {
            if matches!(task.status, Status::Pending | Status::Running)
                && !self.registry.contains(&task.kind)
            {
                unknown.insert(format!("`{}` (task {})", task.kind, task.id));
            }
        }
        if unknown.is_empty() {
            Ok(())
        } else {
            let list: Vec<String> = unknown.into_iter().collect();
            Err(RunStop::Build(format!(
                "no handler is registered for task kind(s) {}",
                list.join(", ")
            )))
        }
    }

    /// Enqueues a phase's tasks, reusing the root tasks an earlier drive already enqueued
    /// for it. Phase tasks are matched by position (the n-th root task of the run), not by
    /// the dedup guard, so two phases holding identical tasks both run.
    ///
    /// The planned tasks are used up: each one's inputs move into the queue instead of being
    /// copied, and the phase keeps no tasks once it is built (only its name is needed after
    /// that), so a large plan is not held twice for the whole drive.
    fn build_phase(
        &mut self,
        index: u32,
        phase: &mut Phase,
        roots: &[TaskId],
        offset: &mut usize,
    ) -> Result<(), RunStop> {
        if !self.phases_started.contains(&index) {
            self.queue
                .start_phase(index, &phase.name)
                .map_err(RunStop::Queue)?;
            self.phases_started.insert(index);
        }
        let now = self.clock.now();
        let mut ids: Vec<TaskId> = Vec::with_capacity(phase.tasks.len());
        for (position, planned) in phase.tasks.iter_mut().enumerate() {
            if !planned.spec.depends_on.is_empty() {
                return Err(RunStop::Build(format!(
                    "phase {index} `{}` task {position} (`{}`) names task ids in depends_on; \
                     use `after` positions instead",
                    phase.name, planned.spec.kind
                )));
            }
            let mut deps = Vec::with_capacity(planned.after.len());
            for &after in &planned.after {
                match ids.get(after) {
                    Some(&id) if after < position => deps.push(id),
                    _ => {
                        return Err(RunStop::Build(format!(
                            "phase {index} `{}` task {position} (`{}`) waits for position \
                             {after}, which is not an earlier task of the phase",
                            phase.name, planned.spec.kind
                        )));
                    }
                }
            }
            if let Some(&existing) = roots.get(*offset + position) {
                let task = self.queue.get(existing).ok_or_else(|| {
                    RunStop::Build(format!("root task {existing} vanished from the queue"))
                })?;
                if task.kind != planned.spec.kind {
                    return Err(RunStop::Build(format!(
                        "the plan does not fit the adopted run: phase {index} `{}` task \
                         {position} is `{}` but the run's task {existing} is `{}`",
                        phase.name, planned.spec.kind, task.kind
                    )));
                }
                self.name_task(existing, planned);
                ids.push(existing);
            } else {
                let spec = TaskSpec {
                    kind: planned.spec.kind.clone(),
                    inputs: std::mem::take(&mut planned.spec.inputs),
                    depends_on: deps,
                    max_attempts: planned.spec.max_attempts,
                    dedup: false,
                };
                let enqueued = self
                    .queue
                    .enqueue(spec, EnqueuedBy::Root, now)
                    .map_err(|e| {
                        RunStop::Build(format!(
                            "phase {index} `{}` task {position} (`{}`) was refused: {e}",
                            phase.name, planned.spec.kind
                        ))
                    })?;
                self.name_task(enqueued.id, planned);
                ids.push(enqueued.id);
            }
        }
        *offset += phase.tasks.len();
        phase.tasks = Vec::new();
        Ok(())
    }

    fn name_task(&mut self, id: TaskId, planned: &PlannedTask) {
        if let Some(name) = &planned.name {
            self.names.insert(id, Arc::from(name.as_str()));
        }
    }

    /// How messages name task `id` ([`describe_task`]).
    fn describe(&self, id: TaskId) -> String {
        let kind = self
            .queue
            .get(id)
            .map(|t| t.kind.as_str())
            .unwrap_or_default();
        describe_task(&self.names, id, kind)
    }

    /// Appends every event the queue produced since the last append, as one batch.
    async fn flush(&mut self) -> Result<(), RunStop> {
        if self.queue.events().is_empty() {
            return Ok(());
        }
        // Cleared whatever the append's result, as a taken batch would be: a failed append
        // ends the drive, and nothing may append these events a second time. Clearing keeps
        // the outbox's capacity for the next batch, unless the batch was a large one (a
        // phase's enqueues): the steady batches are small, and keeping room for a hundred
        // thousand events would hold megabytes for the rest of the drive.
        let appended = self.checkpointer.append(self.queue.events()).await;
        if let (Ok(()), Some(hook)) = (&appended, &self.on_acknowledged) {
            hook.call(&self.run_id, self.queue.events());
        }
        if self.queue.events().len() > LARGE_BATCH {
            drop(self.queue.take_events());
        } else {
            self.queue.clear_events();
        }
        appended.map_err(RunStop::Checkpoint)?;
        let counts = self.queue.counts();
        if let Ok(mut shared) = self.counts.lock() {
            *shared = counts;
        }
        emit::queue_depth(
            self.run_id.as_str(),
            &emit::QueueDepth {
                pending: counts.pending as u64,
                running: counts.running as u64,
                done: counts.done as u64,
                skipped: counts.skipped as u64,
                failed: counts.failed as u64,
                blocked: counts.blocked as u64,
            },
        );
        Ok(())
    }

    /// Runs the queue until it drains (`Ok`) or the drive must stop (`Err`).
    async fn drain(&mut self, flight: &mut Flight) -> Result<(), RunStop> {
        loop {
            // Signals raised before this cycle take effect before anything new starts.
            if flight.exit.is_none() {
                let past_deadline = self.deadline.is_some_and(|d| Instant::now() >= d);
                if self.signals.cancel.is_cancelled() {
                    self.stop_now(flight, CancelCause::Caller).await?;
                } else if past_deadline {
                    self.stop_now(flight, CancelCause::Deadline).await?;
                } else if self.signals.grace_over.is_cancelled() {
                    self.stop_now(flight, CancelCause::Shutdown).await?;
                } else if flight.stopping.is_none() && self.signals.shutdown.is_cancelled() {
                    self.begin_shutdown(flight);
                }
            }
            // Reused across cycles: a fresh vector would grow again every cycle.
            let mut started = std::mem::take(&mut flight.started);
            if flight.stopping.is_none() {
                let free = self.config.concurrency.saturating_sub(flight.running.len());
                if free > 0 {
                    let now = self.clock.now();
                    // `next_runnable` lists every due task; asking once per cycle would make a
                    // wide graph quadratic, so the list is cached until it runs short.
                    if flight.ready.len() < free {
                        flight.ready = self.queue.next_runnable(now).into();
                    }
                    while started.len() < free {
                        let Some(id) = flight.ready.pop_front() else {
                            break;
                        };
                        // Due tasks stay due until started, but skip anything already taken.
                        if self
                            .queue
                            .get(id)
                            .is_some_and(|t| t.status == Status::Pending)
                        {
                            match self.queue.start(id, now) {
                                Ok(attempt) => started.push((id, attempt)),
                                Err(cairn_queue::Error::NotReady { .. }) => {}
                                Err(error) => return Err(RunStop::Queue(error)),
                            }
                        }
                    }
                }
            }
            // Attempts a shutdown's signal interrupted were released by `settle`; audited
            // ahead of the append that records it, as `stop_now` does.
            if !flight.released.is_empty() {
                self.audit_released(flight, CancelCause::Shutdown).await;
            }
            // The batch's Started records are durable before any of its bodies runs.
            self.flush().await?;
            for (id, attempt) in started.drain(..) {
                self.spawn(flight, id, attempt)?;
            }
            flight.started = started;
            if let Some(stop) = flight.exit.take() {
                return Err(stop);
            }
            if flight.running.is_empty() {
                if self.queue.is_drained() {
                    return Ok(());
                }
                if let Some(cause) = flight.stopping {
                    return Err(RunStop::Cancelled(cause));
                }
            }
            self.wait(flight).await?;
        }
    }

    fn spawn(&mut self, flight: &mut Flight, id: TaskId, attempt: u32) -> Result<(), RunStop> {
        let task = self
            .queue
            .get(id)
            .cloned()
            .ok_or(RunStop::Queue(cairn_queue::Error::UnknownTask { id }))?;
        let dependencies = self
            .queue
            .dependency_handoffs(id)
            .map_err(RunStop::Queue)?
            .into_iter()
            .map(|(dep, handoff)| (dep, handoff.clone()))
            .collect();
        let Some((kind, handler)) = self.registry.handler(&task.kind) else {
            // Kinds are checked before the run and at every follow-up enqueue, so this is
            // only reachable through a registry bug; fail the task rather than the process.
            let error = TaskError::new(
                "unknown_kind",
                format!("no handler is registered for kind `{}`", task.kind),
            );
            self.report_failed(id, attempt, &error);
            let now = self.clock.now();
            self.queue
                .fail(id, error, false, now, now)
                .map_err(RunStop::Queue)?;
            return Ok(());
        };
        let timeout = self
            .registry
            .timeout(&task.kind)
            .or(self.config.default_timeout);
        let fields = AttemptFields {
            task_id: id,
            task_name: self.names.get(&id).cloned(),
            kind,
            attempt,
            max_attempts: task.max_attempts,
        };
        let ctx = TaskContext::new(
            Arc::clone(&flight.run_id),
            task,
            attempt,
            dependencies,
            flight.attempts_cancel.child_token(),
            self.signals.shutdown.clone(),
            flight.requests_tx.clone(),
        );
        let (shutdown, grace_over) = (
            self.signals.shutdown.clone(),
            self.signals.grace_over.clone(),
        );
        let body = async move {
            let work = handler.run(ctx);
            let began = tokio::time::Instant::now();
            // A timeout too long to represent (`Duration::MAX`) is no timeout, as for the
            // run's deadline: `Instant + Duration` would panic inside the attempt.
            let limited = timeout
                .and_then(|limit| began.checked_add(limit).map(|deadline| (limit, deadline)));
            let result = match limited {
                Some((limit, deadline)) => {
                    let overrun = |returned_after| {
                        AttemptEnd::TimedOut(Overrun {
                            limit,
                            returned_after,
                        })
                    };
                    let Ok(result) = tokio::time::timeout_at(deadline, work).await else {
                        return overrun(None);
                    };
                    // A handler that blocks its thread is only seen again when it returns,
                    // and tokio hands back a ready result even past the deadline. The
                    // attempt still ran too long, so its result is discarded, as if the
                    // timeout had dropped it.
                    let took = began.elapsed();
                    if took > limit {
                        return overrun(Some(took));
                    }
                    result
                }
                None => work.await,
            };
            AttemptEnd::returned(result, shutdown.is_cancelled() || grace_over.is_cancelled())
        };
        let handle = flight.running.spawn(TracedAttempt::new(
            body,
            fields,
            Arc::clone(&flight.attempts),
        ));
        flight
            .in_flight
            .insert(handle.id(), InFlight { id, attempt });
        Ok(())
    }

    /// Waits for something to happen, then takes in everything else that is ready too, so
    /// one append covers it all.
    async fn wait(&mut self, flight: &mut Flight) -> Result<(), RunStop> {
        let wakeup = if flight.stopping.is_none() && flight.running.len() < self.config.concurrency
        {
            self.queue.next_wakeup().map(|at| self.clock.instant_at(at))
        } else {
            None
        };
        let wake = {
            let cancel = &self.signals.cancel;
            let shutdown = &self.signals.shutdown;
            let grace_over = &self.signals.grace_over;
            let deadline = self.deadline;
            let grace = flight.grace_deadline;
            let not_stopping = flight.stopping.is_none();
            let has_running = !flight.running.is_empty();
            let running = &mut flight.running;
            let requests = &mut flight.requests_rx;
            tokio::select! {
                biased;
                () = cancel.cancelled() => Wake::Cancel,
                () = sleep_until_opt(deadline), if deadline.is_some() => Wake::Deadline,
                () = shutdown.cancelled(), if not_stopping => Wake::Shutdown,
                () = sleep_until_opt(grace), if grace.is_some() => Wake::GraceOver,
                () = grace_over.cancelled() => Wake::GraceOver,
                Some(request) = requests.recv() => Wake::Request(request),
                Some(joined) = running.join_next_with_id(), if has_running => Wake::Joined(joined),
                () = sleep_until_opt(wakeup), if wakeup.is_some() => Wake::Timer,
            }
        };
        match wake {
            Wake::Cancel => self.stop_now(flight, CancelCause::Caller).await?,
            Wake::Deadline => self.stop_now(flight, CancelCause::Deadline).await?,
            Wake::GraceOver => self.stop_now(flight, CancelCause::Shutdown).await?,
            Wake::Shutdown => self.begin_shutdown(flight),
            Wake::Request(request) => self.serve(request),
            Wake::Joined(joined) => self.settle(flight, joined)?,
            Wake::Timer => {}
        }
        self.take_ready(flight)
    }

    /// Stops starting attempts and gives the running ones the grace period.
    fn begin_shutdown(&self, flight: &mut Flight) {
        tracing::info!(
            target: names::DETAIL_TARGET,
            run_id = %self.run_id,
            running = flight.running.len(),
            grace_ms = u64::try_from(self.config.shutdown_grace.as_millis()).unwrap_or(u64::MAX),
            "shutdown requested: no new tasks start; running ones get the grace period"
        );
        flight.stopping = Some(CancelCause::Shutdown);
        // A grace too long to represent (`Duration::MAX`) means "wait for them": no deadline.
        flight.grace_deadline = Instant::now().checked_add(self.config.shutdown_grace);
    }

    /// Applies every enqueue request and attempt result that is ready, without waiting.
    fn take_ready(&mut self, flight: &mut Flight) -> Result<(), RunStop> {
        // Requests first: a handler waits for its reply before it can return, so any request
        // of a finished attempt was served before its result arrives.
        while let Ok(request) = flight.requests_rx.try_recv() {
            self.serve(request);
        }
        while let Some(joined) = flight.running.try_join_next_with_id() {
            self.settle(flight, joined)?;
        }
        Ok(())
    }

    /// Stops every attempt at once and makes the loop exit with `Cancelled(cause)` after its
    /// next append. Every result an attempt returned before it was stopped is applied, and
    /// attempts stopped mid-body are released (pending again, the attempt not spent), so they
    /// rerun on resume.
    ///
    /// Applying late results is what keeps telemetry truthful: an attempt labels and closes
    /// its own task span when its body returns (`crate::attempt`), so a `complete` the drive
    /// dropped here would be a completion reported but never recorded.
    async fn stop_now(&mut self, flight: &mut Flight, cause: CancelCause) -> Result<(), RunStop> {
        self.take_ready(flight)?;
        flight.stopping = Some(cause);
        // Aborted before the tokens fire, so a body that returns because its token fired is
        // stopped instead of returning a result of its own.
        flight.running.abort_all();
        flight.attempts_cancel.cancel();
        while let Some(joined) = flight.running.join_next_with_id().await {
            self.settle(flight, joined)?;
        }
        self.audit_released(flight, cause).await;
        if cause == CancelCause::Shutdown {
            tracing::warn!(
                target: names::DETAIL_TARGET,
                run_id = %self.run_id,
                "shutdown grace period over: attempts still running were stopped and will rerun on resume"
            );
        }
        flight.exit = Some(RunStop::Cancelled(cause));
        Ok(())
    }

    /// Audits each attempt the stop released, so the audit log explains why an attempt
    /// number runs twice (the journal's `Released` events may later be folded into a
    /// snapshot). Written ahead of the append that records the releases: a crash in between
    /// leaves the tasks running, and the resume's own reset records follow.
    async fn audit_released(&self, flight: &mut Flight, cause: CancelCause) {
        let now = self.clock.now();
        for (id, attempt) in flight.released.drain(..) {
            let record = AuditRecord::new(
                now,
                self.run_id.clone(),
                AuditAction::TaskReleased,
                format!(
                    "{} was stopped by the drive ({}) on attempt {attempt} and released: it is \
                     pending again and that attempt does not count",
                    self.describe(id),
                    cause.as_str()
                ),
            )
            .with_detail(serde_json::json!({
                "task_id": id.0,
                "attempt": attempt,
                "cause": cause.as_str(),
            }));
            if let Err(error) = self.checkpointer.audit(&record).await {
                // The journal, not the audit log, is the source of truth; go on, but say so.
                tracing::warn!(target: names::DETAIL_TARGET, run_id = %self.run_id, error = %error, "could not write an audit record");
            }
        }
    }

    fn serve(&mut self, request: EnqueueRequest) {
        let EnqueueRequest {
            parent,
            attempt,
            spec,
            reply,
        } = request;
        let parent_running = self
            .queue
            .get(parent)
            .is_some_and(|t| t.status == Status::Running && t.attempts == attempt);
        let answer = if !parent_running {
            Err(Error::NotRunning { parent })
        } else if !spec.kind.is_empty() && !self.registry.contains(&spec.kind) {
            // An empty kind is left to the queue, which refuses it as such
            // (`InvalidSpec`: "the task kind is empty") rather than as a kind without a handler.
            Err(Error::UnknownKind {
                parent,
                kind: spec.kind,
            })
        } else {
            self.queue
                .enqueue(spec, EnqueuedBy::Task(parent), self.clock.now())
                .map_err(|source| Error::Enqueue { parent, source })
        };
        // The handler may have stopped waiting (timeout); its follow-up stays enqueued.
        let _ = reply.send(answer);
    }

    fn settle(
        &mut self,
        flight: &mut Flight,
        joined: Result<(tokio::task::Id, AttemptEnd), tokio::task::JoinError>,
    ) -> Result<(), RunStop> {
        let (tokio_id, end) = match joined {
            Ok((tokio_id, end)) => (tokio_id, Ok(end)),
            Err(error) => (error.id(), Err(error)),
        };
        let Some(attempt) = flight.in_flight.remove(&tokio_id) else {
            return Ok(());
        };
        let InFlight { id, attempt } = attempt;
        let now = self.clock.now();
        match end {
            Ok(AttemptEnd::Returned(Ok(finish))) => {
                let finished = match finish {
                    Finish::Complete(handoff) => self.queue.complete(id, handoff, now),
                    Finish::Skip(handoff) => self.queue.skip(id, handoff, now),
                };
                match finished {
                    Ok(()) => {}
                    // A handoff the journal could not read back fails its task, not the run.
                    Err(cairn_queue::Error::InvalidHandoff { reason, .. }) => {
                        let task = self.describe(id);
                        let error = TaskError::new(
                            "invalid_handoff",
                            format!(
                                "the handler of {task} returned a handoff that cannot be \
                                 stored on attempt {attempt}: {reason}"
                            ),
                        );
                        self.report_failed(id, attempt, &error);
                        self.fail(id, attempt, error, false, now)?;
                    }
                    Err(error) => return Err(RunStop::Queue(error)),
                }
            }
            Ok(AttemptEnd::Returned(Err(
                TaskFailure::Retryable(error) | TaskFailure::Interrupted(error),
            ))) => {
                self.fail(id, attempt, error, true, now)?;
            }
            Ok(AttemptEnd::Returned(Err(TaskFailure::Permanent(error)))) => {
                self.fail(id, attempt, error, false, now)?;
            }
            Ok(AttemptEnd::TimedOut(overrun)) => {
                let task = self.describe(id);
                let error =
                    TaskError::new("timeout", format!("attempt {attempt} of {task} {overrun}"));
                self.fail(id, attempt, error, true, now)?;
            }
            Err(error) if error.is_panic() => {
                let task = self.describe(id);
                let message = panic_message(error.into_panic());
                let error = TaskError::new(
                    "panic",
                    format!("handler of {task} panicked on attempt {attempt}: {message}"),
                );
                self.fail(id, attempt, error, false, now)?;
            }
            // Only the drive aborts attempts (a shutdown's grace ran out, a cancel, the run's
            // deadline): the task goes back to pending without spending that attempt, so a
            // task on its last attempt is not failed on resume by a stop a person asked for.
            // An attempt whose work the shutdown's signal stopped is given back the same way.
            Ok(AttemptEnd::Interrupted) | Err(_) => {
                self.queue.release(id, now).map_err(RunStop::Queue)?;
                flight.released.push((id, attempt));
            }
        }
        Ok(())
    }

    /// Emits `orchestrator task_failed` for a failure the drive finds itself (a handoff that
    /// cannot be stored, a kind without a handler), which fails the task for good. The
    /// attempts' own failures are reported by the attempts (`crate::attempt`). The drive runs
    /// in the run span, which is the event's parent.
    fn report_failed(&self, id: TaskId, attempt: u32, error: &TaskError) {
        let Some(task) = self.queue.get(id) else {
            return;
        };
        emit::task_failed(
            None,
            &emit::TaskFailed {
                run_id: self.run_id.as_str(),
                task_id: &id.to_string(),
                task_name: self.names.get(&id).map(|name| &**name),
                kind: &task.kind,
                attempt,
                max_attempts: task.max_attempts,
                error_kind: &error.kind,
                error_message: &error.message,
                will_retry: false,
            },
        );
    }

    fn fail(
        &mut self,
        id: TaskId,
        attempt: u32,
        error: TaskError,
        retryable: bool,
        now: Timestamp,
    ) -> Result<Status, RunStop> {
        let delay = self.retry.delay(id, attempt);
        // Timestamps are whole milliseconds: round up, so a sub-millisecond backoff still
        // waits rather than becoming none.
        let millis = delay.as_nanos().div_ceil(1_000_000);
        let retry_at = now.plus_millis(u64::try_from(millis).unwrap_or(u64::MAX));
        self.queue
            .fail(id, error, retryable, retry_at, now)
            .map_err(RunStop::Queue)
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The text of a panic payload (`&str` or `String`), or a placeholder.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    panic_text(&*payload).to_owned()
}

/// How reload messages name a changed task: `` task `name` (t3) `` or `task t3`.
fn describe_change(change: &crate::ReloadChange) -> String {
    match &change.name {
        Some(name) => format!("task `{name}` ({})", change.id),
        None => format!("task {}", change.id),
    }
}
