//! The verifier of a finished run: final state, journal events, audit log and ledger,
//! checked against what the DAG generator says must exist.
//!
//! [`verify`] is pure (evidence in, findings out), so tests can plant a duplicate completion
//! or a lost task and watch it being caught; [`collect`] reads the evidence through the
//! storage port.

use std::collections::{BTreeMap, BTreeSet};

use cairn_checkpoint::{AuditAction, AuditRecord, RunFilter, RunMeta, RunStatus};
use cairn_queue::{EnqueuedBy, Event, Queue, Snapshot, Status, TaskId};

use crate::dag::{self, Behaviour, Dag};
use crate::error::Result;
use crate::ledger::{self, Acknowledged, LedgerContents};
use crate::worker::{self, WorkerOptions};

/// Everything read back after a run finished.
#[derive(Debug, Clone, Default)]
pub struct RunEvidence {
    /// Every run of the crash-test workflow in the round's scope, any status.
    pub runs: Vec<RunMeta>,
    /// The latest snapshot of the (single) run, if any.
    pub snapshot: Option<Snapshot>,
    /// The journal events after that snapshot.
    pub events: Vec<Event>,
    /// The run's audit log.
    pub audit: Vec<AuditRecord>,
    /// The side-effect ledger.
    pub ledger: LedgerContents,
    /// The completions the store acknowledged to the workers, in order.
    pub acknowledged: Vec<Acknowledged>,
}

/// What the verifier found. Every counter but `tasks` and `re_executions` is a violation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Tasks in the finished run.
    pub tasks: u64,
    /// Expected tasks missing or not done, completions whose body never ran or failed
    /// (a fail-first task done at attempt 1), and
    /// acknowledged completions the finished run does not hold (the task completed at
    /// another attempt).
    pub lost: u64,
    /// Completion records beyond the first, per task, and acknowledged completions beyond
    /// the first, per task.
    pub duplicate_completions: u64,
    /// Children (or plan tasks) that exist more often than the DAG says, or not at all in it.
    pub spawned_twice: u64,
    /// Body runs beyond one per task (and beyond a planned first-attempt failure).
    pub re_executions: u64,
    /// Re-executions with no `TaskReset` audit record for that task and attempt, repeated
    /// attempts beyond the releases of that attempt, and bodies that ran after their task
    /// completed.
    pub unexplained_re_executions: u64,
    /// Runs in a wrong status, state that does not replay, foreign ledger lines and the like.
    pub other: u64,
    /// Rounds whose worker could not finish the run after a kill (the store did not open,
    /// the run failed): the run is left unfinished.
    pub unrecoverable: u64,
    /// Interrupted runs adopted (`Recovered` audit records): real resumes.
    pub resumes: u64,
    /// Ledger lines a kill cut short (bodies killed while writing their line). Not a
    /// violation: such an attempt never completed, so it needs a reset like any other.
    pub torn_ledger_lines: u64,
    /// One line per violation, for people.
    pub problems: Vec<String>,
}

impl Findings {
    /// The number of violations.
    pub fn violations(&self) -> u64 {
        self.lost
            + self.duplicate_completions
            + self.spawned_twice
            + self.unexplained_re_executions
            + self.other
            + self.unrecoverable
    }

    /// Adds another round's findings to these.
    pub fn absorb(&mut self, other: Findings) {
        self.tasks += other.tasks;
        self.lost += other.lost;
        self.duplicate_completions += other.duplicate_completions;
        self.spawned_twice += other.spawned_twice;
        self.re_executions += other.re_executions;
        self.unexplained_re_executions += other.unexplained_re_executions;
        self.other += other.other;
        self.unrecoverable += other.unrecoverable;
        self.resumes += other.resumes;
        self.torn_ledger_lines += other.torn_ledger_lines;
        self.problems.extend(other.problems);
    }
}

/// The `(task id, attempt)` pairs that recovery reset, from `TaskReset` audit records.
pub fn resets(audit: &[AuditRecord]) -> BTreeSet<(u64, u32)> {
    audit
        .iter()
        .filter(|record| record.action == AuditAction::TaskReset)
        .filter_map(|record| {
            let task = record.detail.get("task_id")?.as_u64()?;
            let attempt = u32::try_from(record.detail.get("attempt")?.as_u64()?).ok()?;
            Some((task, attempt))
        })
        .collect()
}

/// How many times each `(task, attempt)` was released (`TaskReleased` audit records: a
/// graceful stop cut the attempt off and gave it back, so the same attempt number runs
/// again). The audit log, unlike the journal's `Released` events, survives compaction.
pub fn releases(audit: &[AuditRecord]) -> BTreeMap<(u64, u32), u64> {
    let mut released = BTreeMap::new();
    for record in audit {
        if record.action != AuditAction::TaskReleased {
            continue;
        }
        let task = record.detail.get("task_id").and_then(|v| v.as_u64());
        let attempt = record
            .detail
            .get("attempt")
            .and_then(|v| v.as_u64())
            .and_then(|a| u32::try_from(a).ok());
        if let (Some(task), Some(attempt)) = (task, attempt) {
            *released.entry((task, attempt)).or_default() += 1;
        }
    }
    released
}

/// Checks a finished run against its DAG.
///
/// # Examples
///
/// ```
/// use cairn_crash::dag::Dag;
/// use cairn_crash::verify::{RunEvidence, verify};
///
/// // No run at all: every task is lost and the missing run is reported.
/// let dag = Dag::generate(1, 10, 0);
/// let findings = verify(&dag, &RunEvidence::default());
/// assert_eq!(findings.lost, 10);
/// assert!(findings.violations() > 0);
/// ```
pub fn verify(dag: &Dag, evidence: &RunEvidence) -> Findings {
    let mut found = Findings::default();
    let Some(run) = evidence.runs.last() else {
        found.lost += dag.total_tasks() as u64;
        found.other += 1;
        found
            .problems
            .push("no run of the crash-test workflow exists".to_owned());
        return found;
    };
    if evidence.runs.len() > 1 {
        found.other += (evidence.runs.len() - 1) as u64;
        let ids: Vec<String> = evidence.runs.iter().map(|m| m.run_id.to_string()).collect();
        found.problems.push(format!(
            "{} runs exist where one was driven: {}",
            evidence.runs.len(),
            ids.join(", ")
        ));
    }
    if run.status != RunStatus::Completed {
        found.other += 1;
        found.problems.push(format!(
            "run {} is {}, not completed",
            run.run_id, run.status
        ));
    }
    // Completion records: one per task, counting a task done in the snapshot as one.
    // Counted before replay, because a duplicate also makes replay fail.
    let mut completions: BTreeMap<TaskId, u64> = BTreeMap::new();
    if let Some(snapshot) = &evidence.snapshot {
        for task in snapshot.tasks.iter().filter(|t| t.status == Status::Done) {
            *completions.entry(task.id).or_default() += 1;
        }
    }
    for event in &evidence.events {
        if let Event::Completed { id, .. } = event {
            *completions.entry(*id).or_default() += 1;
        }
    }
    for (id, count) in &completions {
        if *count > 1 {
            found.duplicate_completions += count - 1;
            found
                .problems
                .push(format!("task {id} has {count} completion records"));
        }
    }
    let queue = match Queue::replay(
        evidence.snapshot.clone(),
        evidence.events.iter(),
        worker::queue_config(),
    ) {
        Ok(queue) => queue,
        Err(err) => {
            found.lost += dag.total_tasks() as u64;
            found.other += 1;
            found
                .problems
                .push(format!("run {} does not replay: {err}", run.run_id));
            return found;
        }
    };
    found.tasks = queue.len() as u64;
    found.resumes = evidence
        .audit
        .iter()
        .filter(|record| record.action == AuditAction::Recovered)
        .count() as u64;

    let names: BTreeMap<TaskId, Option<Behaviour>> = queue
        .tasks()
        .map(|task| (task.id, Behaviour::from_inputs(&task.inputs)))
        .collect();
    let mut actual = Vec::new();
    for task in queue.tasks() {
        if task.status != Status::Done {
            found.lost += 1;
            found.problems.push(format!(
                "task {} (`{}`) is {}, not done",
                task.id, task.kind, task.status
            ));
        }
        let parent = match task.enqueued_by {
            EnqueuedBy::Root => None,
            EnqueuedBy::Task(parent) => Some(
                names
                    .get(&parent)
                    .cloned()
                    .flatten()
                    .map(|b| b.name)
                    .unwrap_or_else(|| format!("(unknown parent {parent})")),
            ),
        };
        let inputs = Behaviour::from_inputs(&task.inputs)
            .map(|b| b.identity())
            .unwrap_or_else(|| task.inputs.to_string());
        actual.push((parent, task.kind.clone(), inputs));
    }
    actual.sort();
    let expected = dag.expected_tasks();
    let (missing, extra) = multiset_difference(&expected, &actual);
    for (parent, kind, inputs) in &missing {
        found.lost += 1;
        found.problems.push(format!(
            "expected task missing: `{kind}` {inputs} enqueued by {}",
            parent.as_deref().unwrap_or("the plan")
        ));
    }
    for (parent, kind, inputs) in &extra {
        found.spawned_twice += 1;
        found.problems.push(format!(
            "task spawned twice or unexpected: `{kind}` {inputs} enqueued by {}",
            parent.as_deref().unwrap_or("the plan")
        ));
    }

    check_ledger(&queue, run, evidence, &names, &mut found);
    check_acknowledged(&queue, run, evidence, &mut found);
    found
}

/// Acknowledged completions against the final state: each task was acknowledged as
/// completed at most once, and at the attempt the run holds as its completion. A store that
/// acknowledges a completion and loses it in a kill runs the task again at a later attempt,
/// with a `TaskReset` for the lost one, which the ledger check alone takes for a kill of an
/// attempt in flight.
fn check_acknowledged(queue: &Queue, run: &RunMeta, evidence: &RunEvidence, found: &mut Findings) {
    let mut by_task: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for ack in &evidence.acknowledged {
        if ack.run != run.run_id.as_str() {
            found.other += 1;
            found.problems.push(format!(
                "acknowledged completion of run {} (task t{}) in a round whose run is {}",
                ack.run, ack.task, run.run_id
            ));
            continue;
        }
        by_task.entry(ack.task).or_default().push(ack.attempt);
    }
    for (task, attempts) in by_task {
        if attempts.len() > 1 {
            found.duplicate_completions += attempts.len() as u64 - 1;
            found.problems.push(format!(
                "task t{task} was acknowledged as completed {} times (attempts {attempts:?})",
                attempts.len()
            ));
        }
        let Some(held) = queue.get(TaskId(task)) else {
            found.lost += 1;
            found.problems.push(format!(
                "task t{task}'s completion was acknowledged, but the run does not hold the task"
            ));
            continue;
        };
        // A task not done is already counted as lost.
        if held.status != Status::Done {
            continue;
        }
        for attempt in attempts.into_iter().filter(|a| *a != held.attempts) {
            found.lost += 1;
            found.problems.push(format!(
                "task t{task}'s completion at attempt {attempt} was acknowledged and then lost: the run completed it at attempt {}",
                held.attempts
            ));
        }
    }
}

/// Ledger against final state, journal and audit: every completing body ran; every other run
/// of a body is a planned first-attempt failure, was reset after a crash, or repeats an
/// attempt a graceful stop released.
fn check_ledger(
    queue: &Queue,
    run: &RunMeta,
    evidence: &RunEvidence,
    names: &BTreeMap<TaskId, Option<Behaviour>>,
    found: &mut Findings,
) {
    found.torn_ledger_lines += evidence.ledger.torn_lines as u64;
    let reset = resets(&evidence.audit);
    let mut released = releases(&evidence.audit);
    let mut runs_by_task: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for entry in &evidence.ledger.entries {
        if entry.run != run.run_id.as_str() {
            found.other += 1;
            found.problems.push(format!(
                "ledger line of run {} (task t{}) in a round whose run is {}",
                entry.run, entry.task, run.run_id
            ));
            continue;
        }
        let expected_key = format!("{}/t{}", run.run_id, entry.task);
        if entry.key != expected_key {
            found.other += 1;
            found.problems.push(format!(
                "ledger line of task t{} has idempotency key {}, expected {expected_key}",
                entry.task, entry.key
            ));
        }
        runs_by_task
            .entry(entry.task)
            .or_default()
            .push(entry.attempt);
    }
    for task in queue.tasks() {
        let fail_first = names
            .get(&task.id)
            .cloned()
            .flatten()
            .is_some_and(|b| b.fail_first);
        let completing = task.attempts;
        let mut attempts = runs_by_task.remove(&task.id.0).unwrap_or_default();
        attempts.sort_unstable();
        if task.status == Status::Done && !attempts.contains(&completing) {
            found.lost += 1;
            found.problems.push(format!(
                "task {} completed at attempt {completing} but the ledger has no body run of that attempt",
                task.id
            ));
        }
        // The body of a fail-first task's attempt 1 writes its ledger line and then fails, so
        // the line alone does not show a completion: that attempt never succeeded, and a
        // task done at it (a failure recorded as a completion) did not do its work.
        if task.status == Status::Done && fail_first && completing == 1 {
            found.lost += 1;
            found.problems.push(format!(
                "task {} is done at attempt 1, which fails on purpose: no attempt of it succeeded",
                task.id
            ));
        }
        let mut seen = BTreeSet::new();
        for attempt in attempts {
            if !seen.insert(attempt) {
                // A released attempt runs again under the same number, once per release.
                if let Some(left) = released
                    .get_mut(&(task.id.0, attempt))
                    .filter(|left| **left > 0)
                {
                    *left -= 1;
                    found.re_executions += 1;
                    continue;
                }
                found.unexplained_re_executions += 1;
                found
                    .problems
                    .push(format!("task {} ran attempt {attempt} twice", task.id));
                continue;
            }
            if attempt == completing {
                continue;
            }
            if attempt > completing {
                found.unexplained_re_executions += 1;
                found.problems.push(format!(
                    "task {} ran attempt {attempt} after completing at attempt {completing}",
                    task.id
                ));
                continue;
            }
            if fail_first && attempt == 1 {
                continue;
            }
            found.re_executions += 1;
            if !reset.contains(&(task.id.0, attempt)) {
                found.unexplained_re_executions += 1;
                found.problems.push(format!(
                    "task {} ran attempt {attempt} again without a TaskReset audit record for it",
                    task.id
                ));
            }
        }
    }
    for (task, attempts) in runs_by_task {
        found.other += attempts.len() as u64;
        found.problems.push(format!(
            "the ledger names task t{task}, which the run does not hold"
        ));
    }
}

/// Items of sorted `expected` missing from sorted `actual`, and items of `actual` beyond
/// `expected` (with multiplicity).
fn multiset_difference<T: Ord + Clone>(expected: &[T], actual: &[T]) -> (Vec<T>, Vec<T>) {
    let (mut i, mut j) = (0, 0);
    let (mut missing, mut extra) = (Vec::new(), Vec::new());
    while i < expected.len() || j < actual.len() {
        match (expected.get(i), actual.get(j)) {
            (Some(e), Some(a)) if e == a => {
                i += 1;
                j += 1;
            }
            (Some(e), Some(a)) if e < a => {
                missing.push(e.clone());
                i += 1;
            }
            (Some(_), Some(a)) => {
                extra.push(a.clone());
                j += 1;
            }
            (Some(e), None) => {
                missing.push(e.clone());
                i += 1;
            }
            (None, Some(a)) => {
                extra.push(a.clone());
                j += 1;
            }
            (None, None) => break,
        }
    }
    (missing, extra)
}

/// Reads the evidence of a finished worker folder through the storage port.
///
/// # Errors
///
/// The store's or the ledger's error.
pub async fn collect(options: &WorkerOptions) -> Result<RunEvidence> {
    let factory = worker::open_factory(options, None)?;
    let filter = RunFilter {
        workflow: Some(dag::WORKFLOW.to_owned()),
        scope: Some(options.scope()),
        statuses: Vec::new(),
    };
    let runs = factory.list(&filter).await?;
    let mut evidence = RunEvidence {
        runs,
        ledger: ledger::read(&worker::ledger_path(&options.dir))?,
        acknowledged: ledger::read_acknowledged(&worker::acks_path(&options.dir))?.entries,
        ..RunEvidence::default()
    };
    if let Some(run) = evidence.runs.last() {
        let run_id = run.run_id.clone();
        if let Some(opened) = factory.open(&run_id).await? {
            evidence.snapshot = opened.recovered.snapshot;
            evidence.events = opened.recovered.events;
        }
        evidence.audit = factory.read_audit(&run_id).await?;
    }
    Ok(evidence)
}
