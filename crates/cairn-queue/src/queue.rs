//! The queue itself: validation, transitions, scheduling and reads.
//!
//! Operations (`enqueue`, `start`, `complete`, ...) check the caller's request and return a
//! typed error naming the offending ids; then they build one [`Event`] and hand it to
//! [`Queue::apply`], the only code that changes state. `apply` checks the event's structure
//! again, because replayed events may come from a damaged or foreign journal.
//!
//! Scheduling is incremental: every task keeps a count of unfinished dependencies and a list
//! of its dependents, and tasks whose count is zero sit in ordered ready sets. No transition
//! scans the whole queue.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::canonical::{canonical_eq, dedup_hash};
use crate::chunked::ChunkedVec;
use crate::dedup::DedupIndex;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::ready::ReadySet;
use crate::snapshot::{SNAPSHOT_FORMAT_VERSION, Snapshot, SnapshotView};
use crate::task::{
    EnqueuedBy, Handoff, MAX_VALUE_DEPTH, Status, Task, TaskError, TaskId, TaskSpec, Timestamp,
    too_deep,
};

/// Bounds and defaults. Crossing a bound is a typed error, never a silent drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Most tasks one run may hold. Default 1,000,000; never more than [`MAX_TASKS_HARD_LIMIT`].
    pub max_tasks: usize,
    /// Most levels of follow-ups (a root task has depth 0). Default 32.
    pub max_depth: u32,
    /// Most follow-ups one task may enqueue. Default 10,000.
    pub max_children: usize,
    /// Attempts given to a task whose spec names none. Default 3.
    pub default_max_attempts: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_tasks: 1_000_000,
            max_depth: 32,
            max_children: 10_000,
            default_max_attempts: 3,
        }
    }
}

/// The result of `Queue::enqueue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The new task's id, or the existing task's id when the dedup guard matched.
    pub id: TaskId,
    /// `true` when the dedup guard returned an existing task and nothing was created.
    pub existing: bool,
}

/// How a drained queue ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every task is `done` or `skipped`.
    Completed,
    /// Some tasks failed; `blocked` lists the dependents they took down.
    Failed {
        /// Tasks in `failed`, in id order.
        failed: Vec<TaskId>,
        /// Tasks in `blocked`, in id order.
        blocked: Vec<TaskId>,
    },
}

/// Counts of tasks per status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusCounts {
    /// Tasks in `pending`.
    pub pending: usize,
    /// Tasks in `running`.
    pub running: usize,
    /// Tasks in `done`.
    pub done: usize,
    /// Tasks in `skipped`.
    pub skipped: usize,
    /// Tasks in `failed`.
    pub failed: usize,
    /// Tasks in `blocked`.
    pub blocked: usize,
}

/// What `Queue::recover` did to one task that was running at a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The task.
    pub id: TaskId,
    /// Its kind.
    pub kind: String,
    /// The attempt that was interrupted.
    pub attempt: u32,
    /// `Pending` when it had attempts left, `Failed` otherwise.
    pub now: Status,
}

impl StatusCounts {
    /// The count for one status.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{Status, StatusCounts};
    /// let counts = StatusCounts { done: 2, ..StatusCounts::default() };
    /// assert_eq!(counts.of(Status::Done), 2);
    /// assert_eq!(counts.total(), 2);
    /// ```
    pub fn of(&self, status: Status) -> usize {
        match status {
            Status::Pending => self.pending,
            Status::Running => self.running,
            Status::Done => self.done,
            Status::Skipped => self.skipped,
            Status::Failed => self.failed,
            Status::Blocked => self.blocked,
        }
    }

    /// The number of tasks over all statuses.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::StatusCounts;
    ///
    /// let counts = StatusCounts { pending: 2, done: 3, failed: 1, ..StatusCounts::default() };
    /// assert_eq!(counts.total(), 6);
    /// ```
    pub fn total(&self) -> usize {
        self.pending + self.running + self.done + self.skipped + self.failed + self.blocked
    }

    fn slot_mut(&mut self, status: Status) -> &mut usize {
        match status {
            Status::Pending => &mut self.pending,
            Status::Running => &mut self.running,
            Status::Done => &mut self.done,
            Status::Skipped => &mut self.skipped,
            Status::Failed => &mut self.failed,
            Status::Blocked => &mut self.blocked,
        }
    }
}

/// The tasks of one kind, so per-kind reads need no scan.
#[derive(Debug, Clone)]
struct KindEntry {
    name: String,
    counts: StatusCounts,
    /// Ids of this kind, in creation order.
    ids: Vec<TaskId>,
}

/// The event-sourced DAG task queue. See the crate docs for the rules.
///
/// Ids are dense: `TaskId(n)` is the `n`-th task, so every lookup is an index. A task can
/// depend only on tasks that exist when it is enqueued, so id order is also a topological
/// order of the dependency graph.
///
/// Follow-ups: `EnqueuedBy::Task(p)` requires `p` to exist and to be `running`, because
/// follow-ups come from a running handler. Bounds (`QueueConfig`) are checked by
/// [`Queue::enqueue`] only; [`Queue::apply`] checks structure, so a journal written under
/// other bounds still replays.
#[derive(Debug, Clone)]
pub struct Queue {
    config: QueueConfig,
    tasks: ChunkedVec<Task>,
    /// Per task: how many of its dependencies are not `done` or `skipped`.
    unmet: Vec<u32>,
    /// Per task: `pending` with no `not_before`, so it is due as soon as `unmet` reaches 0.
    /// Kept beside `unmet` so that completing a task with a million dependents reads two
    /// small arrays instead of a million tasks.
    due_when_met: Vec<bool>,
    /// Per task: the head of its list of dependents in `edges` (`NO_EDGE` when none).
    first_edge: Vec<usize>,
    /// Linked lists of dependents, one arena for all tasks, so adding a task allocates
    /// nothing per task.
    edges: Vec<Edge>,
    /// Per task: how many follow-ups it enqueued.
    children: Vec<u32>,
    /// Per task: its index into `kinds`.
    kind_of: Vec<u32>,
    kinds: Vec<KindEntry>,
    kind_index: HashMap<String, u32>,
    /// The kind used last; runs mostly enqueue many tasks of one kind in a row.
    last_kind: u32,
    /// Pending tasks with no unmet dependency and no `not_before`, by index.
    due: ReadySet,
    /// Pending tasks with no unmet dependency that wait for their `not_before`.
    delayed: BTreeSet<(Timestamp, TaskId)>,
    /// Canonical `(kind, inputs)` hash of each dedup-enabled task that was not itself a
    /// duplicate → that task. Hits are confirmed against the task itself.
    dedup: DedupIndex,
    /// How many guarded tasks were installed while an older one held their key, and so
    /// have no entry (at most; see `promote_holder`). Only a journal from before
    /// `float_roundtrip` makes any, so this is almost always 0.
    shadowed: usize,
    counts: StatusCounts,
    pub(crate) phases_started: Vec<(u32, String)>,
    pub(crate) phases_completed: BTreeSet<u32>,
    outbox: Vec<Event>,
}

/// One entry of a task's list of dependents.
#[derive(Debug, Clone, Copy)]
struct Edge {
    /// The dependent task's index.
    task: u32,
    /// The next entry of the same list, or `NO_EDGE`.
    next: usize,
}

const NO_EDGE: usize = usize::MAX;

/// Whether `task` goes straight into the due set once its dependencies are met.
fn due_when_met(task: &Task) -> bool {
    task.status == Status::Pending && task.not_before.is_none()
}

/// What a finished task without a stored handoff left: nothing.
static EMPTY_HANDOFF: Handoff = Handoff::EMPTY;

/// Most tasks any queue holds, whatever `QueueConfig::max_tasks` says: per-task indexes are
/// stored as `u32` to keep them small.
pub const MAX_TASKS_HARD_LIMIT: usize = u32::MAX as usize - 1;

/// Refuses a handoff whose `extra` could not be read back from the journal.
fn check_handoff(id: TaskId, handoff: &Handoff) -> Result<()> {
    if too_deep(&handoff.extra) {
        return Err(Error::InvalidHandoff {
            id,
            reason: format!(
                "its `extra` nests more than {MAX_VALUE_DEPTH} levels deep; the journal could \
                 not be read back"
            ),
        });
    }
    Ok(())
}

fn invalid_event(reason: String) -> Error {
    Error::InvalidEvent { reason }
}

/// Why `task` cannot take the attempt limit `max_attempts`, if it cannot: the limit must be
/// at least 1, a pending or blocked task must have an attempt left under it (or it could
/// never start; a blocked task turns pending when its ancestor is retried), and no task may
/// have used more attempts than it allows.
fn attempt_limit_problem(task: &Task, max_attempts: u32) -> Option<String> {
    let id = task.id;
    if max_attempts == 0 {
        Some(format!(
            "task {id} would be allowed 0 attempts; it could never run"
        ))
    } else if matches!(task.status, Status::Pending | Status::Blocked)
        && task.attempts >= max_attempts
    {
        Some(format!(
            "task {id} has used {} attempt(s), so a limit of {max_attempts} would leave it none",
            task.attempts
        ))
    } else if task.attempts > max_attempts {
        Some(format!(
            "task {id} has used {} attempt(s), more than a limit of {max_attempts}",
            task.attempts
        ))
    } else {
        None
    }
}

fn inconsistent(reason: String) -> Error {
    Error::InconsistentSnapshot { reason }
}

/// Whether `ids` holds the same id twice. Small lists are compared pairwise, which beats
/// hashing for the few dependencies most tasks have.
fn first_duplicate(ids: &[TaskId]) -> Option<TaskId> {
    if ids.len() <= 16 {
        for (k, id) in ids.iter().enumerate() {
            if ids[..k].contains(id) {
                return Some(*id);
            }
        }
        None
    } else {
        let mut seen = HashSet::with_capacity(ids.len());
        ids.iter().copied().find(|id| !seen.insert(*id))
    }
}

impl Queue {
    /// An empty queue with the given bounds.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{Queue, QueueConfig};
    ///
    /// let q = Queue::new(QueueConfig { max_tasks: 100, ..QueueConfig::default() });
    /// assert!(q.is_empty());
    /// assert_eq!(q.config().max_tasks, 100);
    /// ```
    pub fn new(config: QueueConfig) -> Queue {
        Queue {
            config,
            tasks: ChunkedVec::default(),
            unmet: Vec::new(),
            due_when_met: Vec::new(),
            first_edge: Vec::new(),
            edges: Vec::new(),
            children: Vec::new(),
            kind_of: Vec::new(),
            kinds: Vec::new(),
            kind_index: HashMap::new(),
            last_kind: 0,
            due: ReadySet::default(),
            delayed: BTreeSet::new(),
            dedup: DedupIndex::default(),
            shadowed: 0,
            counts: StatusCounts::default(),
            phases_started: Vec::new(),
            phases_completed: BTreeSet::new(),
            outbox: Vec::new(),
        }
    }

    /// The bounds this queue enforces.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{Queue, QueueConfig};
    ///
    /// let q = Queue::new(QueueConfig::default());
    /// assert_eq!(q.config().default_max_attempts, 3);
    /// ```
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// Rebuilds a queue from a snapshot, checking format version, cycles and dangling ids.
    ///
    /// # Errors
    ///
    /// - [`Error::UnsupportedFormat`] when `format_version` is not [`SNAPSHOT_FORMAT_VERSION`].
    /// - [`Error::InconsistentSnapshot`] when ids are not dense `0..n` in order, a spec field is
    ///   unusable, a task's inputs or handoff `extra` nest deeper than [`MAX_VALUE_DEPTH`]
    ///   (which `apply` refuses too), a depth is wrong, or a status contradicts the statuses
    ///   of its dependencies (for example a `pending` task under a failed one, or a `blocked`
    ///   task whose `blocked_by` is missing or names no failed ancestor), a `pending` or
    ///   `blocked` task has no attempt left, or the phase records disagree (a phase started
    ///   twice, or completed without being started).
    /// - [`Error::DanglingReference`] when `depends_on`, `enqueued_by` or `blocked_by` names a
    ///   task that does not exist.
    /// - [`Error::Cycle`] when dependencies form a cycle.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    /// let mut q = Queue::new(QueueConfig::default());
    /// q.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(0))?;
    /// let copy = Queue::from_snapshot(q.snapshot(), QueueConfig::default())?;
    /// assert_eq!(copy.snapshot(), q.snapshot());
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn from_snapshot(snapshot: Snapshot, config: QueueConfig) -> Result<Queue> {
        if snapshot.format_version != SNAPSHOT_FORMAT_VERSION {
            return Err(Error::UnsupportedFormat {
                found: snapshot.format_version,
                expected: SNAPSHOT_FORMAT_VERSION,
            });
        }
        check_snapshot(&snapshot.tasks)?;
        let mut phase_names: HashMap<u32, &str> = HashMap::new();
        for (index, name) in &snapshot.phases_started {
            if let Some(previous) = phase_names.insert(*index, name) {
                return Err(inconsistent(format!(
                    "phase {index} is recorded as started twice (`{previous}` and `{name}`)"
                )));
            }
        }
        if let Some(index) = snapshot
            .phases_completed
            .iter()
            .find(|index| !phase_names.contains_key(index))
        {
            return Err(inconsistent(format!(
                "phase {index} is recorded complete but was never started"
            )));
        }

        let mut queue = Queue::new(config);
        for mut task in snapshot.tasks {
            // Older snapshots stored empty handoffs; drop them so that the state equals
            // what replaying the same events builds.
            if task.handoff.as_deref().is_some_and(Handoff::is_empty) {
                task.handoff = None;
            }
            let unmet = task
                .depends_on
                .iter()
                .filter(|dep| !queue.tasks[dep.0 as usize].status.satisfies_dependents())
                .count() as u32;
            queue.install(task, unmet, None);
        }
        queue.phases_started = snapshot.phases_started;
        queue.phases_completed = snapshot.phases_completed;
        Ok(queue)
    }

    /// Rebuilds a queue from an optional snapshot plus the events recorded after it.
    ///
    /// # Errors
    ///
    /// Whatever [`Queue::from_snapshot`] returns for the snapshot, and
    /// [`Error::InvalidEvent`] for the first event that does not fit the state.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    /// let mut q = Queue::new(QueueConfig::default());
    /// let id = q.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(0))?.id;
    /// q.start(id, Timestamp(1))?;
    /// let events = q.take_events();
    /// let replayed = Queue::replay(None, &events, QueueConfig::default())?;
    /// assert_eq!(replayed.snapshot(), q.snapshot());
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn replay<'a>(
        snapshot: Option<Snapshot>,
        events: impl IntoIterator<Item = &'a Event>,
        config: QueueConfig,
    ) -> Result<Queue> {
        let mut queue = match snapshot {
            Some(snapshot) => Queue::from_snapshot(snapshot, config)?,
            None => Queue::new(config),
        };
        for event in events {
            queue.apply(event)?;
        }
        Ok(queue)
    }

    /// The whole state, for `queue.json`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, Snapshot, TaskSpec, Timestamp};
    /// let mut q = Queue::new(QueueConfig::default());
    /// q.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(0))?;
    /// // What a host writes as `queue.json`, and reads back after a restart.
    /// let json = serde_json::to_string(&q.snapshot()).expect("a snapshot serializes");
    /// let read: Snapshot = serde_json::from_str(&json).expect("and reads back");
    /// let restored = Queue::from_snapshot(read, QueueConfig::default())?;
    /// assert_eq!(restored.snapshot(), q.snapshot());
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            format_version: SNAPSHOT_FORMAT_VERSION,
            tasks: self.tasks.to_vec(),
            phases_completed: self.phases_completed.clone(),
            phases_started: self.phases_started.clone(),
        }
    }

    /// The state as a [`SnapshotView`]: serializes exactly like [`Queue::snapshot`]'s
    /// result, borrowing the tasks instead of copying them.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// let mut q = Queue::new(QueueConfig::default());
    /// q.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(0))?;
    /// let borrowed = serde_json::to_string(&q.snapshot_view()).expect("a view serializes");
    /// let copied = serde_json::to_string(&q.snapshot()).expect("a snapshot serializes");
    /// assert_eq!(borrowed, copied);
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn snapshot_view(&self) -> SnapshotView<'_> {
        SnapshotView { queue: self }
    }

    /// Applies one event. The only way state changes; every operation below builds an event
    /// and applies it here. Validates the event against the state.
    ///
    /// Applying changes nothing when it fails. Events applied here directly (replay) do not
    /// go to the outbox; only operations put their events there.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEvent`] when the event does not fit the state: an unknown task, a
    /// transition from the wrong status, an attempt number that does not match, an `Enqueued`
    /// id that is not the next id, a `Started` earlier than the task's retry backoff allows,
    /// and so on: every event no operation could have built.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Error, Event, Queue, QueueConfig, TaskId, TaskSpec, Timestamp};
    /// let mut live = Queue::new(QueueConfig::default());
    /// let a = live.enqueue(TaskSpec::new("a"), EnqueuedBy::Root, Timestamp(0))?.id;
    /// live.start(a, Timestamp(1))?;
    /// // Another queue follows the live one by applying what it emitted.
    /// let mut follower = Queue::new(QueueConfig::default());
    /// for event in live.take_events() {
    ///     follower.apply(&event)?;
    /// }
    /// assert_eq!(follower.snapshot(), live.snapshot());
    /// assert!(follower.events().is_empty(), "applied events do not go to the outbox");
    /// // An event that does not fit is refused and changes nothing.
    /// let stale = Event::Started { id: a, attempt: 1, at: Timestamp(2) };
    /// assert!(matches!(follower.apply(&stale), Err(Error::InvalidEvent { .. })));
    /// let unknown = Event::Retried { id: TaskId(7), at: Timestamp(2) };
    /// assert!(matches!(follower.apply(&unknown), Err(Error::InvalidEvent { .. })));
    /// assert_eq!(follower.snapshot(), live.snapshot());
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn apply(&mut self, event: &Event) -> Result<()> {
        // The queue's own operations check their values before they build an event; events
        // from outside are checked here.
        let too_deep_value = match event {
            Event::Enqueued { inputs, .. } | Event::Amended { inputs, .. } => too_deep(inputs),
            Event::Completed { handoff, .. } | Event::Skipped { handoff, .. } => {
                too_deep(&handoff.extra)
            }
            _ => false,
        };
        if too_deep_value {
            let about = event.task_id().map(|id| id.to_string()).unwrap_or_default();
            return Err(invalid_event(format!(
                "the event about task {about} carries a value nested more than \
                 {MAX_VALUE_DEPTH} levels deep"
            )));
        }
        // `start` refuses a task whose backoff has not passed at the `now` it records as the
        // event's `at`, so a start earlier than `not_before` is one no operation wrote. It is
        // checked here, not in `apply_keyed`, because `start` checked it already.
        if let Event::Started { id, at, .. } = event
            && let Some(task) = self.get(*id)
            && task.status == Status::Pending
            && let Some(not_before) = task.not_before.filter(|not_before| not_before > at)
        {
            return Err(invalid_event(format!(
                "started {id} at {at}, before its retry backoff ends at {not_before}"
            )));
        }
        self.apply_keyed(event, None)
    }

    /// Takes the events produced by operations since the last call, in order.
    ///
    /// A host that writes events in a loop should prefer [`Queue::events`] and
    /// [`Queue::clear_events`]: the outbox then keeps its capacity, so steady work allocates
    /// no new outbox per batch.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Event, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// let mut q = Queue::new(QueueConfig::default());
    /// let id = q.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(0))?.id;
    /// q.start(id, Timestamp(1))?;
    /// let events = q.take_events();
    /// assert!(matches!(events[..], [Event::Enqueued { .. }, Event::Started { .. }]));
    /// assert!(q.events().is_empty(), "taken events leave the outbox");
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.outbox)
    }

    /// The events produced by operations since the outbox was last cleared or taken, in
    /// order. They stay until [`Queue::clear_events`], so a failed write loses none of them.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    /// let mut q = Queue::new(QueueConfig::default());
    /// q.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(0))?;
    /// let written: Vec<String> = q.events().iter().map(|e| format!("{e:?}")).collect();
    /// assert_eq!(written.len(), 1);
    /// q.clear_events();
    /// assert!(q.events().is_empty());
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn events(&self) -> &[Event] {
        &self.outbox
    }

    /// Empties the outbox once its events are written, keeping its capacity.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// let mut q = Queue::new(QueueConfig::default());
    /// q.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(0))?;
    /// // ... the host writes `q.events()` durably, then:
    /// q.clear_events();
    /// assert!(q.events().is_empty());
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn clear_events(&mut self) {
        self.outbox.clear();
    }

    /// Enqueues a task (or returns the existing one under the dedup guard).
    ///
    /// Checks, in this order: the spec, the dependencies, the parent, the dedup guard, then
    /// the bounds. The guard comes before the bounds so that a resumed handler re-enqueueing
    /// its children gets their ids back even when it is at its child limit.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidSpec`] for an empty kind, an attempt limit of 0, or inputs nested
    ///   deeper than [`MAX_VALUE_DEPTH`].
    /// - [`Error::UnknownDependencies`] naming every `depends_on` id that does not exist.
    /// - [`Error::UnknownTask`] when `by` names a task that does not exist, and
    ///   [`Error::InvalidTransition`] when that task is not `running`.
    /// - [`Error::TooManyTasks`], [`Error::TooDeep`], [`Error::TooManyChildren`] when a
    ///   bound of [`QueueConfig`] would be crossed.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    /// let mut q = Queue::new(QueueConfig::default());
    /// let spec = TaskSpec::new("fetch").inputs(serde_json::json!({ "a": 1, "b": 2 }));
    /// let first = q.enqueue(spec, EnqueuedBy::Root, Timestamp(0))?;
    /// let again = TaskSpec::new("fetch").inputs(serde_json::json!({ "b": 2, "a": 1 }));
    /// let second = q.enqueue(again, EnqueuedBy::Root, Timestamp(0))?;
    /// assert!(second.existing);
    /// assert_eq!(second.id, first.id);
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn enqueue(&mut self, spec: TaskSpec, by: EnqueuedBy, now: Timestamp) -> Result<Enqueued> {
        let TaskSpec {
            kind,
            inputs,
            depends_on,
            max_attempts,
            dedup,
        } = spec;
        let hash = dedup.then(|| dedup_hash(&kind, &inputs));
        // Read the guard's filter now: in a large queue that read misses the cache, and the
        // checks below run while it is outstanding instead of after it.
        let may_be_duplicate = hash.is_some_and(|hash| self.dedup.may_contain(hash));
        if kind.is_empty() {
            return Err(Error::InvalidSpec {
                reason: "the task kind is empty".to_owned(),
            });
        }
        if too_deep(&inputs) {
            return Err(Error::InvalidSpec {
                reason: format!(
                    "the inputs of a task of kind `{kind}` nest more than {MAX_VALUE_DEPTH} \
                     levels deep; the journal could not be read back"
                ),
            });
        }
        let max_attempts = max_attempts.unwrap_or(self.config.default_max_attempts);
        if max_attempts == 0 {
            return Err(Error::InvalidSpec {
                reason: format!("task of kind `{kind}` allows 0 attempts; it could never run"),
            });
        }
        let n = self.tasks.len() as u64;
        if depends_on.iter().any(|dep| dep.0 >= n) {
            let mut seen = HashSet::new();
            let unknown: Vec<TaskId> = depends_on
                .iter()
                .copied()
                .filter(|dep| dep.0 >= n && seen.insert(*dep))
                .collect();
            return Err(Error::UnknownDependencies { kind, ids: unknown });
        }
        let depends_on = if first_duplicate(&depends_on).is_some() {
            let mut seen = HashSet::with_capacity(depends_on.len());
            depends_on
                .into_iter()
                .filter(|id| seen.insert(*id))
                .collect()
        } else {
            depends_on
        };
        let depth = match by {
            EnqueuedBy::Root => 0,
            EnqueuedBy::Task(parent) => {
                let task = self.get(parent).ok_or(Error::UnknownTask { id: parent })?;
                if task.status != Status::Running {
                    return Err(Error::InvalidTransition {
                        id: parent,
                        from: task.status,
                        op: "enqueue a follow-up of",
                    });
                }
                task.depth.saturating_add(1)
            }
        };
        if may_be_duplicate
            && let Some(hash) = hash
            && let Some(id) = self.find_duplicate(hash, &kind, &inputs)
        {
            return Ok(Enqueued { id, existing: true });
        }
        let limit = self.config.max_tasks.min(MAX_TASKS_HARD_LIMIT);
        if self.tasks.len() >= limit {
            return Err(Error::TooManyTasks { limit });
        }
        if let EnqueuedBy::Task(parent) = by {
            if depth > self.config.max_depth {
                return Err(Error::TooDeep {
                    parent,
                    depth,
                    limit: self.config.max_depth,
                });
            }
            if self.children[parent.0 as usize] as usize >= self.config.max_children {
                return Err(Error::TooManyChildren {
                    parent,
                    limit: self.config.max_children,
                });
            }
        }
        let id = TaskId(n);
        let event = Event::Enqueued {
            id,
            kind,
            inputs,
            depends_on,
            max_attempts,
            enqueued_by: by,
            dedup,
            at: now,
        };
        self.emit(event, hash)?;
        Ok(Enqueued {
            id,
            existing: false,
        })
    }

    /// Claims a runnable pending task and increments its attempts. Returns the new attempt number.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTask`]; [`Error::InvalidTransition`] when the task is not `pending`;
    /// [`Error::NotReady`] when it is pending but a dependency is unfinished or its
    /// `not_before` is later than `now`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Error, Queue, QueueConfig, TaskSpec, Timestamp};
    /// let mut q = Queue::new(QueueConfig::default());
    /// let a = q.enqueue(TaskSpec::new("a"), EnqueuedBy::Root, Timestamp(0))?.id;
    /// let b = q.enqueue(TaskSpec::new("b").depends_on([a]), EnqueuedBy::Root, Timestamp(0))?.id;
    /// // `b` waits for `a`, and the error says so.
    /// let refused = q.start(b, Timestamp(1));
    /// assert!(matches!(refused, Err(Error::NotReady { waiting_on, .. }) if waiting_on == [a]));
    /// assert_eq!(q.start(a, Timestamp(1))?, 1, "the first attempt");
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn start(&mut self, id: TaskId, now: Timestamp) -> Result<u32> {
        let i = self.index(id)?;
        let task = &self.tasks[i];
        if task.status != Status::Pending {
            return Err(Error::InvalidTransition {
                id,
                from: task.status,
                op: "start",
            });
        }
        let too_early = task.not_before.filter(|at| *at > now);
        if self.unmet[i] > 0 || too_early.is_some() {
            let waiting_on = task
                .depends_on
                .iter()
                .copied()
                .filter(|dep| !self.tasks[dep.0 as usize].status.satisfies_dependents())
                .collect();
            return Err(Error::NotReady {
                id,
                waiting_on,
                not_before: too_early,
            });
        }
        let attempt = task.attempts + 1;
        self.emit(
            Event::Started {
                id,
                attempt,
                at: now,
            },
            None,
        )?;
        Ok(attempt)
    }

    /// Marks a running task done.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTask`]; [`Error::InvalidTransition`] when the task is not `running`;
    /// [`Error::InvalidHandoff`] when the handoff's `extra` nests deeper than
    /// [`MAX_VALUE_DEPTH`] (the task stays running).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Handoff, Queue, QueueConfig, Status, TaskSpec, Timestamp};
    /// let mut q = Queue::new(QueueConfig::default());
    /// let a = q.enqueue(TaskSpec::new("a"), EnqueuedBy::Root, Timestamp(0))?.id;
    /// let b = q.enqueue(TaskSpec::new("b").depends_on([a]), EnqueuedBy::Root, Timestamp(0))?.id;
    /// q.start(a, Timestamp(1))?;
    /// let note = Some("the index is in index.json".to_owned());
    /// let handoff = Handoff { next_note: note, ..Handoff::default() };
    /// q.complete(a, handoff, Timestamp(2))?;
    /// assert_eq!(q.get(a).unwrap().status, Status::Done);
    /// // `b` may start now, and can read what `a` left for it.
    /// assert_eq!(q.next_runnable(Timestamp(2)), [b]);
    /// let left = q.dependency_handoffs(b)?;
    /// assert_eq!(left[0].1.next_note.as_deref(), Some("the index is in index.json"));
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn complete(&mut self, id: TaskId, handoff: Handoff, now: Timestamp) -> Result<()> {
        let attempt = self.running_attempt(id, "complete")?;
        check_handoff(id, &handoff)?;
        self.emit(
            Event::Completed {
                id,
                attempt,
                handoff,
                at: now,
            },
            None,
        )
    }

    /// Marks a running task skipped (it judged itself unnecessary).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTask`]; [`Error::InvalidTransition`] when the task is not `running`;
    /// [`Error::InvalidHandoff`] as for [`Queue::complete`].
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Handoff, Queue, QueueConfig, Status, TaskSpec, Timestamp};
    /// let mut q = Queue::new(QueueConfig::default());
    /// let a = q.enqueue(TaskSpec::new("a"), EnqueuedBy::Root, Timestamp(0))?.id;
    /// let b = q.enqueue(TaskSpec::new("b").depends_on([a]), EnqueuedBy::Root, Timestamp(0))?.id;
    /// q.start(a, Timestamp(1))?;
    /// q.skip(a, Handoff::default(), Timestamp(2))?;
    /// assert_eq!(q.get(a).unwrap().status, Status::Skipped);
    /// assert_eq!(q.next_runnable(Timestamp(2)), [b], "a skipped task satisfies its dependents");
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn skip(&mut self, id: TaskId, handoff: Handoff, now: Timestamp) -> Result<()> {
        let attempt = self.running_attempt(id, "skip")?;
        check_handoff(id, &handoff)?;
        self.emit(
            Event::Skipped {
                id,
                attempt,
                handoff,
                at: now,
            },
            None,
        )
    }

    /// Fails a running task. Returns the task's status afterwards: `Pending` when retried,
    /// `Failed` otherwise.
    ///
    /// A retryable failure with attempts left sends the task back to `pending` with
    /// `not_before = retry_at`. Otherwise the task is `failed` and every transitive dependent
    /// becomes `blocked`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTask`]; [`Error::InvalidTransition`] when the task is not `running`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, Status, TaskError, TaskSpec, Timestamp};
    /// let mut q = Queue::new(QueueConfig::default());
    /// let a = q.enqueue(TaskSpec::new("a").max_attempts(1), EnqueuedBy::Root, Timestamp(0))?.id;
    /// let b = q.enqueue(TaskSpec::new("b").depends_on([a]), EnqueuedBy::Root, Timestamp(0))?.id;
    /// q.start(a, Timestamp(1))?;
    /// let after = q.fail(a, TaskError::new("boom", "disk full"), true, Timestamp(9), Timestamp(2))?;
    /// assert_eq!(after, Status::Failed);
    /// assert_eq!(q.get(b).unwrap().status, Status::Blocked);
    /// assert_eq!(q.get(b).unwrap().blocked_by, Some(a));
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn fail(
        &mut self,
        id: TaskId,
        error: TaskError,
        retryable: bool,
        retry_at: Timestamp,
        now: Timestamp,
    ) -> Result<Status> {
        let attempt = self.running_attempt(id, "fail")?;
        let retry = retryable && attempt < self.tasks[id.0 as usize].max_attempts;
        self.emit(
            Event::Failed {
                id,
                attempt,
                error,
                retry_at: retry.then_some(retry_at),
                at: now,
            },
            None,
        )?;
        Ok(if retry {
            Status::Pending
        } else {
            Status::Failed
        })
    }

    /// Puts a running task back to pending after its executor stopped the attempt itself,
    /// before the attempt's body returned (a shutdown, a cancel, a run deadline). Unlike a
    /// failure or [`Queue::recover`] after a crash, the stopped attempt does not count: the
    /// task keeps every attempt it had, so a task on its last attempt survives a stop that a
    /// person asked for.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTask`]; [`Error::InvalidTransition`] when the task is not `running`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, Status, TaskSpec, Timestamp};
    ///
    /// let mut q = Queue::new(QueueConfig::default());
    /// let a = q.enqueue(TaskSpec::new("a").max_attempts(1), EnqueuedBy::Root, Timestamp(0))?.id;
    /// q.start(a, Timestamp(1))?;
    /// q.release(a, Timestamp(2))?;
    /// let task = q.get(a).unwrap();
    /// assert_eq!((task.status, task.attempts), (Status::Pending, 0));
    /// assert_eq!(q.start(a, Timestamp(3))?, 1, "its only attempt is still there");
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn release(&mut self, id: TaskId, now: Timestamp) -> Result<()> {
        let attempt = self.running_attempt(id, "release")?;
        self.emit(
            Event::Released {
                id,
                attempt,
                at: now,
            },
            None,
        )
    }

    /// Retries a failed task by hand (see the crate docs).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTask`]; [`Error::InvalidTransition`] when the task is not `failed`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, Status, TaskError, TaskSpec, Timestamp};
    /// let mut q = Queue::new(QueueConfig::default());
    /// let a = q.enqueue(TaskSpec::new("a").max_attempts(1), EnqueuedBy::Root, Timestamp(0))?.id;
    /// let b = q.enqueue(TaskSpec::new("b").depends_on([a]), EnqueuedBy::Root, Timestamp(0))?.id;
    /// q.start(a, Timestamp(1))?;
    /// q.fail(a, TaskError::new("io", "disk full"), false, Timestamp(1), Timestamp(2))?;
    /// assert_eq!(q.get(b).unwrap().status, Status::Blocked);
    /// q.retry(a, Timestamp(3))?;
    /// // The failed task may run again, and what it blocked waits for it once more.
    /// assert_eq!(q.get(a).unwrap().status, Status::Pending);
    /// assert_eq!(q.get(b).unwrap().status, Status::Pending);
    /// assert_eq!(q.next_runnable(Timestamp(3)), [a]);
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn retry(&mut self, id: TaskId, now: Timestamp) -> Result<()> {
        let i = self.index(id)?;
        let from = self.tasks[i].status;
        if from != Status::Failed {
            return Err(Error::InvalidTransition {
                id,
                from,
                op: "retry",
            });
        }
        self.emit(Event::Retried { id, at: now }, None)
    }

    /// Corrects the definition of a task that has not finished: its next attempt runs with
    /// `inputs` and may use up to `max_attempts` (`None`: the queue's default) attempts in
    /// all. This is how a fix to a task's definition reaches a stopped run without redoing
    /// the tasks that are done. The task keeps its status, attempts, last error and
    /// dependencies; a `failed` task still needs [`Queue::retry`] to run again.
    ///
    /// Only `pending`, `failed` and `blocked` tasks may be amended: a running attempt already
    /// has its inputs, and a `done` or `skipped` task is never run again.
    ///
    /// # Errors
    ///
    /// - [`Error::UnknownTask`]; [`Error::InvalidTransition`] when the task is `running`,
    ///   `done` or `skipped`.
    /// - [`Error::InvalidSpec`] when `inputs` nest too deep, the limit is 0, or it is not
    ///   above the attempts a pending or blocked task has used (it could never start again)
    ///   or is below those a failed task has used.
    /// - [`Error::DuplicateInputs`] when the task takes part in the dedup guard and another
    ///   such task of its kind already has `inputs`.
    /// - [`Error::InvalidSpec`] when new inputs are given to a follow-up under the dedup
    ///   guard whose parent is not `done` or `skipped`: the parent may run again and enqueue
    ///   the old inputs, which the guard no longer finds, so a second task would be created.
    ///
    /// The guard finds a task by its inputs as they are: once a task under it is amended, a
    /// later enqueue of its old inputs (by the host, for a root task) creates a new task.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, Status, TaskError, TaskSpec, Timestamp};
    /// let mut q = Queue::new(QueueConfig::default());
    /// let spec = TaskSpec::new("shell").inputs(serde_json::json!({ "run": "mak build" }));
    /// let id = q.enqueue(spec.max_attempts(1), EnqueuedBy::Root, Timestamp(0))?.id;
    /// q.start(id, Timestamp(1))?;
    /// q.fail(id, TaskError::new("exit", "mak: not found"), false, Timestamp(2), Timestamp(2))?;
    /// // The typo is fixed: the task gets the corrected command, then a fresh go.
    /// q.amend(id, serde_json::json!({ "run": "make build" }), Some(2), Timestamp(3))?;
    /// q.retry(id, Timestamp(3))?;
    /// let task = q.get(id).unwrap();
    /// assert_eq!((task.status, task.max_attempts), (Status::Pending, 2));
    /// assert_eq!(task.inputs["run"], "make build");
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn amend(
        &mut self,
        id: TaskId,
        inputs: serde_json::Value,
        max_attempts: Option<u32>,
        now: Timestamp,
    ) -> Result<()> {
        let i = self.index(id)?;
        let task = &self.tasks[i];
        if !matches!(
            task.status,
            Status::Pending | Status::Failed | Status::Blocked
        ) {
            return Err(Error::InvalidTransition {
                id,
                from: task.status,
                op: "amend",
            });
        }
        if too_deep(&inputs) {
            return Err(Error::InvalidSpec {
                reason: format!(
                    "the new inputs of task {id} nest more than {MAX_VALUE_DEPTH} levels deep; \
                     the journal could not be read back"
                ),
            });
        }
        let max_attempts = max_attempts.unwrap_or(self.config.default_max_attempts);
        if let Some(reason) = attempt_limit_problem(task, max_attempts) {
            return Err(Error::InvalidSpec { reason });
        }
        if task.dedup && !canonical_eq(&task.inputs, &inputs) {
            // The guard finds a follow-up by the inputs its parent enqueues: a parent that
            // runs again would enqueue the old inputs and get a second task. A done or
            // skipped parent never runs again; only failed tasks are retried.
            if let EnqueuedBy::Task(parent) = task.enqueued_by
                && !matches!(
                    self.tasks[parent.0 as usize].status,
                    Status::Done | Status::Skipped
                )
            {
                return Err(Error::InvalidSpec {
                    reason: format!(
                        "task {id} is a follow-up of task {parent} under the dedup guard, and \
                         {parent} is not done or skipped: it may run again and enqueue the old \
                         inputs, which would then make a second task"
                    ),
                });
            }
            let hash = dedup_hash(&task.kind, &inputs);
            if let Some(existing) = self.find_duplicate(hash, &task.kind, &inputs)
                && existing != id
            {
                return Err(Error::DuplicateInputs { id, existing });
            }
        }
        self.emit(
            Event::Amended {
                id,
                inputs,
                max_attempts,
                at: now,
            },
            None,
        )
    }

    /// Applies the crash-recovery rule to every running task and reports what it did.
    ///
    /// This is called once when a run is reopened, so it looks at every task once.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, Status, TaskSpec, Timestamp};
    /// let mut q = Queue::new(QueueConfig::default());
    /// let a = q.enqueue(TaskSpec::new("a").max_attempts(2), EnqueuedBy::Root, Timestamp(0))?.id;
    /// let b = q.enqueue(TaskSpec::new("b").max_attempts(1), EnqueuedBy::Root, Timestamp(0))?.id;
    /// q.start(a, Timestamp(1))?;
    /// q.start(b, Timestamp(1))?;
    /// // The process was killed here; the next one replays the journal, then recovers.
    /// let mut reopened = Queue::replay(None, &q.take_events(), QueueConfig::default())?;
    /// let recovered = reopened.recover(Timestamp(5));
    /// assert_eq!(recovered.len(), 2);
    /// assert_eq!(recovered[0].now, Status::Pending, "`a` had an attempt left");
    /// assert_eq!(recovered[1].now, Status::Failed, "`b` was on its last attempt");
    /// assert_eq!(reopened.next_runnable(Timestamp(5)), [a]);
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn recover(&mut self, now: Timestamp) -> Vec<Recovery> {
        let running: Vec<usize> = (0..self.tasks.len())
            .filter(|&i| self.tasks[i].status == Status::Running)
            .collect();
        let mut report = Vec::with_capacity(running.len());
        for i in running {
            let task = &self.tasks[i];
            let (id, attempt) = (task.id, task.attempts);
            let kind = task.kind.clone();
            let event = if attempt < task.max_attempts {
                Event::Reset { id, at: now }
            } else {
                Event::Failed {
                    id,
                    attempt,
                    error: TaskError::new(
                        "interrupted",
                        format!(
                            "it was running when the run stopped, on its last attempt \
                             ({attempt} of {})",
                            task.max_attempts
                        ),
                    ),
                    retry_at: None,
                    at: now,
                }
            };
            // The event was built from the task's own state, which `apply` accepts.
            if self.emit(event, None).is_ok() {
                report.push(Recovery {
                    id,
                    kind,
                    attempt,
                    now: self.tasks[i].status,
                });
            }
        }
        report
    }

    /// Records that phase `index` started. Starting a phase that was already started (a
    /// resumed run) records nothing and succeeds.
    ///
    /// # Errors
    ///
    /// [`Error::PhaseMismatch`] when phase `index` was started under another name.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{Error, Queue, QueueConfig};
    /// let mut q = Queue::new(QueueConfig::default());
    /// q.start_phase(0, "build")?;
    /// q.start_phase(0, "build")?; // a resumed run starts it again: nothing new is recorded
    /// assert_eq!(q.take_events().len(), 1);
    /// let renamed = q.start_phase(0, "test");
    /// assert!(matches!(renamed, Err(Error::PhaseMismatch { index: 0, .. })));
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn start_phase(&mut self, index: u32, name: &str) -> Result<()> {
        match self.phase_name(index) {
            Some(recorded) if recorded == name => Ok(()),
            Some(recorded) => Err(Error::PhaseMismatch {
                index,
                recorded: recorded.to_owned(),
                given: name.to_owned(),
            }),
            None => self.emit(
                Event::PhaseStarted {
                    index,
                    name: name.to_owned(),
                },
                None,
            ),
        }
    }

    /// Records that phase `index` completed. Completing it again records nothing.
    ///
    /// # Errors
    ///
    /// [`Error::PhaseNotStarted`] when phase `index` was never started, and
    /// [`Error::PhaseMismatch`] when it was started under another name.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{Error, Queue, QueueConfig};
    /// let mut q = Queue::new(QueueConfig::default());
    /// let early = q.complete_phase(0, "build");
    /// assert!(matches!(early, Err(Error::PhaseNotStarted { index: 0 })));
    /// q.start_phase(0, "build")?;
    /// q.complete_phase(0, "build")?;
    /// assert!(q.phase_completed(0));
    /// let renamed = q.complete_phase(0, "test");
    /// assert!(matches!(renamed, Err(Error::PhaseMismatch { index: 0, .. })));
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn complete_phase(&mut self, index: u32, name: &str) -> Result<()> {
        match self.phase_name(index) {
            None => Err(Error::PhaseNotStarted { index }),
            Some(recorded) if recorded != name => Err(Error::PhaseMismatch {
                index,
                recorded: recorded.to_owned(),
                given: name.to_owned(),
            }),
            Some(_) if self.phases_completed.contains(&index) => Ok(()),
            Some(_) => self.emit(
                Event::PhaseCompleted {
                    index,
                    name: name.to_owned(),
                },
                None,
            ),
        }
    }

    /// The phases recorded started, by index and name, in the order they were started.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{Queue, QueueConfig};
    ///
    /// let mut queue = Queue::new(QueueConfig::default());
    /// queue.start_phase(0, "build")?;
    /// assert_eq!(queue.started_phases().collect::<Vec<_>>(), [(0, "build")]);
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn started_phases(&self) -> impl Iterator<Item = (u32, &str)> + '_ {
        self.phases_started
            .iter()
            .map(|(index, name)| (*index, name.as_str()))
    }

    /// Whether phase `index` was recorded complete.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{Queue, QueueConfig};
    ///
    /// let mut q = Queue::new(QueueConfig::default());
    /// q.start_phase(0, "build")?;
    /// assert!(!q.phase_completed(0));
    /// q.complete_phase(0, "build")?;
    /// assert!(q.phase_completed(0));
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn phase_completed(&self, index: u32) -> bool {
        self.phases_completed.contains(&index)
    }

    /// Every pending task whose dependencies are satisfied and whose `not_before` has passed,
    /// in id order.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskError, TaskSpec, Timestamp};
    /// let mut q = Queue::new(QueueConfig::default());
    /// let a = q.enqueue(TaskSpec::new("a"), EnqueuedBy::Root, Timestamp(0))?.id;
    /// let b = q.enqueue(TaskSpec::new("b"), EnqueuedBy::Root, Timestamp(0))?.id;
    /// assert_eq!(q.next_runnable(Timestamp(0)), [a, b]);
    /// q.start(a, Timestamp(0))?;
    /// // A retryable failure with attempts left: `a` is due again at 100, not before.
    /// q.fail(a, TaskError::new("http", "503"), true, Timestamp(100), Timestamp(1))?;
    /// assert_eq!(q.next_runnable(Timestamp(50)), [b]);
    /// assert_eq!(q.next_wakeup(), Some(Timestamp(100)));
    /// assert_eq!(q.next_runnable(Timestamp(100)), [a, b]);
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn next_runnable(&self, now: Timestamp) -> Vec<TaskId> {
        let mut out: Vec<TaskId> = Vec::with_capacity(self.due.len());
        self.due.for_each(|i| out.push(TaskId(i as u64)));
        let before = out.len();
        out.extend(
            self.delayed
                .iter()
                .take_while(|(at, _)| *at <= now)
                .map(|(_, id)| *id),
        );
        if out.len() > before {
            out.sort_unstable();
        }
        out
    }

    /// The earliest `not_before` among ready tasks that wait for one.
    ///
    /// It may already have passed, which means such a task is due now; `None` means no ready
    /// task waits for a time.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskError, TaskSpec, Timestamp};
    ///
    /// let mut q = Queue::new(QueueConfig::default());
    /// let a = q.enqueue(TaskSpec::new("a"), EnqueuedBy::Root, Timestamp(0))?.id;
    /// assert_eq!(q.next_wakeup(), None, "`a` waits for no time");
    /// q.start(a, Timestamp(0))?;
    /// q.fail(a, TaskError::new("http", "503"), true, Timestamp(30), Timestamp(1))?;
    /// assert_eq!(q.next_wakeup(), Some(Timestamp(30)));
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        self.delayed.first().map(|(at, _)| *at)
    }

    /// True when nothing is running and nothing can ever start.
    ///
    /// A pending task can always start eventually (the queue never holds a pending task under a
    /// failed one: such tasks are `blocked`), so this is "nothing running, nothing pending".
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Handoff, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// let mut q = Queue::new(QueueConfig::default());
    /// let a = q.enqueue(TaskSpec::new("a"), EnqueuedBy::Root, Timestamp(0))?.id;
    /// assert!(!q.is_drained());
    /// q.start(a, Timestamp(0))?;
    /// assert!(!q.is_drained(), "`a` is running");
    /// q.complete(a, Handoff::default(), Timestamp(1))?;
    /// assert!(q.is_drained());
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn is_drained(&self) -> bool {
        self.counts.running == 0 && self.counts.pending == 0
    }

    /// `Some` once drained.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Outcome, Queue, QueueConfig, TaskError, TaskSpec, Timestamp};
    /// let mut q = Queue::new(QueueConfig::default());
    /// let a = q.enqueue(TaskSpec::new("a").max_attempts(1), EnqueuedBy::Root, Timestamp(0))?.id;
    /// let b = q.enqueue(TaskSpec::new("b").depends_on([a]), EnqueuedBy::Root, Timestamp(0))?.id;
    /// assert_eq!(q.outcome(), None, "not drained: `a` can still start");
    /// q.start(a, Timestamp(1))?;
    /// q.fail(a, TaskError::new("io", "disk full"), false, Timestamp(1), Timestamp(2))?;
    /// assert_eq!(q.outcome(), Some(Outcome::Failed { failed: vec![a], blocked: vec![b] }));
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn outcome(&self) -> Option<Outcome> {
        if !self.is_drained() {
            return None;
        }
        if self.counts.failed == 0 && self.counts.blocked == 0 {
            return Some(Outcome::Completed);
        }
        let ids_in = |status: Status| {
            self.tasks
                .iter()
                .filter(|task| task.status == status)
                .map(|task| task.id)
                .collect()
        };
        Some(Outcome::Failed {
            failed: ids_in(Status::Failed),
            blocked: ids_in(Status::Blocked),
        })
    }

    /// The task with this id.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, Status, TaskId, TaskSpec, Timestamp};
    ///
    /// let mut q = Queue::new(QueueConfig::default());
    /// let a = q.enqueue(TaskSpec::new("a"), EnqueuedBy::Root, Timestamp(0))?.id;
    /// assert_eq!(q.get(a).map(|task| task.status), Some(Status::Pending));
    /// assert!(q.get(TaskId(9)).is_none());
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn get(&self, id: TaskId) -> Option<&Task> {
        usize::try_from(id.0).ok().and_then(|i| self.tasks.get(i))
    }

    /// Every task, in id order.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// let mut q = Queue::new(QueueConfig::default());
    /// q.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(0))?;
    /// q.enqueue(TaskSpec::new("render"), EnqueuedBy::Root, Timestamp(0))?;
    /// let kinds: Vec<&str> = q.tasks().map(|task| task.kind.as_str()).collect();
    /// assert_eq!(kinds, ["fetch", "render"]);
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn tasks(&self) -> impl Iterator<Item = &Task> {
        self.tasks.iter()
    }

    /// Number of tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// let mut q = Queue::new(QueueConfig::default());
    /// q.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(0))?;
    /// q.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(0))?; // the dedup guard's
    /// assert_eq!(q.len(), 1);
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether the queue holds no task.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// let mut q = Queue::new(QueueConfig::default());
    /// assert!(q.is_empty());
    /// q.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(0))?;
    /// assert!(!q.is_empty());
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Counts per status.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// let mut q = Queue::new(QueueConfig::default());
    /// let a = q.enqueue(TaskSpec::new("a"), EnqueuedBy::Root, Timestamp(0))?.id;
    /// q.enqueue(TaskSpec::new("b"), EnqueuedBy::Root, Timestamp(0))?;
    /// q.start(a, Timestamp(0))?;
    /// let counts = q.counts();
    /// assert_eq!((counts.pending, counts.running, counts.total()), (1, 1, 2));
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn counts(&self) -> StatusCounts {
        self.counts
    }

    /// Counts per status for each kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// let mut q = Queue::new(QueueConfig::default());
    /// let a = q.enqueue(TaskSpec::new("fetch").inputs(1.into()), EnqueuedBy::Root, Timestamp(0))?.id;
    /// q.enqueue(TaskSpec::new("fetch").inputs(2.into()), EnqueuedBy::Root, Timestamp(0))?;
    /// q.start(a, Timestamp(0))?;
    /// let by_kind = q.counts_by_kind();
    /// assert_eq!((by_kind["fetch"].pending, by_kind["fetch"].running), (1, 1));
    /// assert!(!by_kind.contains_key("render"));
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn counts_by_kind(&self) -> BTreeMap<String, StatusCounts> {
        self.kinds
            .iter()
            .map(|entry| (entry.name.clone(), entry.counts))
            .collect()
    }

    /// Handoffs of the given task's dependencies, in `depends_on` order. Every dependency
    /// that is `done` or `skipped` is listed, with an empty handoff when it left nothing;
    /// unfinished ones are left out.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownTask`] when no task has this id.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Error, Handoff, Queue, QueueConfig, TaskId, TaskSpec, Timestamp};
    /// let mut q = Queue::new(QueueConfig::default());
    /// let now = Timestamp(0);
    /// let a = q.enqueue(TaskSpec::new("a"), EnqueuedBy::Root, now)?.id;
    /// let b = q.enqueue(TaskSpec::new("b"), EnqueuedBy::Root, now)?.id;
    /// let c = q.enqueue(TaskSpec::new("c").depends_on([b, a]), EnqueuedBy::Root, now)?.id;
    /// q.start(a, now)?;
    /// let note = Handoff { next_note: Some("cached".to_owned()), ..Handoff::default() };
    /// q.complete(a, note.clone(), now)?;
    /// // `b` has not finished, so only `a` is listed.
    /// assert_eq!(q.dependency_handoffs(c)?, [(a, &note)]);
    /// q.start(b, now)?;
    /// q.skip(b, Handoff::default(), now)?;
    /// assert_eq!(q.dependency_handoffs(c)?, [(b, &Handoff::default()), (a, &note)]);
    /// let unknown = q.dependency_handoffs(TaskId(9));
    /// assert!(matches!(unknown, Err(Error::UnknownTask { .. })));
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn dependency_handoffs(&self, id: TaskId) -> Result<Vec<(TaskId, &Handoff)>> {
        let i = self.index(id)?;
        Ok(self.tasks[i]
            .depends_on
            .iter()
            .filter_map(|dep| self.finished_handoff(*dep).map(|handoff| (*dep, handoff)))
            .collect())
    }

    /// Handoffs of every `done` or `skipped` task of this kind, in creation order, with an
    /// empty handoff for a task that left nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Handoff, Queue, QueueConfig, TaskSpec, Timestamp};
    /// let mut q = Queue::new(QueueConfig::default());
    /// let now = Timestamp(0);
    /// let first = TaskSpec::new("fetch").inputs(serde_json::json!(1));
    /// let second = TaskSpec::new("fetch").inputs(serde_json::json!(2));
    /// let a = q.enqueue(first, EnqueuedBy::Root, now)?.id;
    /// let b = q.enqueue(second, EnqueuedBy::Root, now)?.id;
    /// let done = Handoff { done: vec!["fetched 2".to_owned()], ..Handoff::default() };
    /// q.start(b, now)?;
    /// q.complete(b, done.clone(), now)?;
    /// assert_eq!(q.handoffs_by_kind("fetch"), [(b, &done)], "`a` has not finished");
    /// q.start(a, now)?;
    /// q.complete(a, Handoff::default(), now)?;
    /// assert_eq!(q.handoffs_by_kind("fetch"), [(a, &Handoff::default()), (b, &done)]);
    /// assert!(q.handoffs_by_kind("render").is_empty());
    /// # Ok::<(), cairn_queue::Error>(())
    /// ```
    pub fn handoffs_by_kind(&self, kind: &str) -> Vec<(TaskId, &Handoff)> {
        let Some(&k) = self.kind_index.get(kind) else {
            return Vec::new();
        };
        self.kinds[k as usize]
            .ids
            .iter()
            .filter_map(|id| self.finished_handoff(*id).map(|handoff| (*id, handoff)))
            .collect()
    }

    // ----- private: operations' helpers -----

    /// What a `done` or `skipped` task handed on; `None` while it is unfinished.
    fn finished_handoff(&self, id: TaskId) -> Option<&Handoff> {
        let task = &self.tasks[id.0 as usize];
        task.status
            .satisfies_dependents()
            .then(|| task.handoff.as_deref().unwrap_or(&EMPTY_HANDOFF))
    }

    fn index(&self, id: TaskId) -> Result<usize> {
        match usize::try_from(id.0) {
            Ok(i) if i < self.tasks.len() => Ok(i),
            _ => Err(Error::UnknownTask { id }),
        }
    }

    fn running_attempt(&self, id: TaskId, op: &'static str) -> Result<u32> {
        let task = &self.tasks[self.index(id)?];
        if task.status != Status::Running {
            return Err(Error::InvalidTransition {
                id,
                from: task.status,
                op,
            });
        }
        Ok(task.attempts)
    }

    fn phase_name(&self, index: u32) -> Option<&str> {
        self.phases_started
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, name)| name.as_str())
    }

    /// Applies an event an operation built and puts it in the outbox.
    fn emit(&mut self, event: Event, dedup_hash: Option<u64>) -> Result<()> {
        self.apply_keyed(&event, dedup_hash)?;
        self.outbox.push(event);
        Ok(())
    }

    // ----- private: apply -----

    fn event_index(&self, id: TaskId, what: &str) -> Result<usize> {
        self.index(id)
            .map_err(|_| invalid_event(format!("{what} names unknown task {id}")))
    }

    /// Checks that `id` is running at `attempt`, for events that end an attempt.
    fn event_running(&self, id: TaskId, attempt: u32, what: &str) -> Result<usize> {
        let i = self.event_index(id, what)?;
        let task = &self.tasks[i];
        if task.status != Status::Running {
            return Err(invalid_event(format!(
                "{what} for task {id}, which is {}",
                task.status
            )));
        }
        if task.attempts != attempt {
            return Err(invalid_event(format!(
                "{what} for attempt {attempt} of task {id}, which is on attempt {}",
                task.attempts
            )));
        }
        Ok(i)
    }

    /// `apply`, with the dedup hash when the caller already computed it.
    fn apply_keyed(&mut self, event: &Event, dedup_hash: Option<u64>) -> Result<()> {
        match event {
            Event::Enqueued {
                id,
                kind,
                inputs,
                depends_on,
                max_attempts,
                enqueued_by,
                dedup,
                at,
            } => {
                let n = self.tasks.len();
                if n >= MAX_TASKS_HARD_LIMIT {
                    return Err(invalid_event(format!(
                        "enqueued {id}, beyond the hard limit of {MAX_TASKS_HARD_LIMIT} tasks"
                    )));
                }
                if id.0 != n as u64 {
                    return Err(invalid_event(format!(
                        "enqueued {id}, but the next id is t{n}"
                    )));
                }
                if kind.is_empty() {
                    return Err(invalid_event(format!("enqueued {id} with an empty kind")));
                }
                if *max_attempts == 0 {
                    return Err(invalid_event(format!("enqueued {id} with 0 attempts")));
                }
                if let Some(dep) = depends_on.iter().find(|dep| dep.0 >= n as u64) {
                    return Err(invalid_event(format!(
                        "enqueued {id} depending on unknown task {dep}"
                    )));
                }
                if let Some(dep) = first_duplicate(depends_on) {
                    return Err(invalid_event(format!(
                        "enqueued {id} listing dependency {dep} twice"
                    )));
                }
                let depth = match enqueued_by {
                    EnqueuedBy::Root => 0,
                    EnqueuedBy::Task(parent) => {
                        let p = self.event_index(*parent, "an enqueue")?;
                        let status = self.tasks[p].status;
                        if status != Status::Running {
                            return Err(invalid_event(format!(
                                "enqueued {id} as a follow-up of {parent}, which is {status}"
                            )));
                        }
                        self.tasks[p].depth.saturating_add(1)
                    }
                };
                let mut unmet = 0u32;
                let mut blocked_by = None;
                for dep in depends_on {
                    let task = &self.tasks[dep.0 as usize];
                    if !task.status.satisfies_dependents() {
                        unmet += 1;
                        if blocked_by.is_none() {
                            blocked_by = match task.status {
                                Status::Failed => Some(*dep),
                                Status::Blocked => task.blocked_by,
                                _ => None,
                            };
                        }
                    }
                }
                let task = Task {
                    id: *id,
                    kind: kind.clone(),
                    status: if blocked_by.is_some() {
                        Status::Blocked
                    } else {
                        Status::Pending
                    },
                    depends_on: depends_on.clone(),
                    inputs: inputs.clone(),
                    attempts: 0,
                    max_attempts: *max_attempts,
                    enqueued_by: *enqueued_by,
                    depth,
                    created_at: *at,
                    started_at: None,
                    finished_at: blocked_by.map(|_| *at),
                    error: None,
                    not_before: None,
                    handoff: None,
                    blocked_by,
                    dedup: *dedup,
                };
                self.install(task, unmet, dedup_hash);
            }
            Event::Started { id, attempt, at } => {
                let i = self.event_index(*id, "a start")?;
                let task = &self.tasks[i];
                if task.status != Status::Pending {
                    return Err(invalid_event(format!(
                        "started {id}, which is {}",
                        task.status
                    )));
                }
                if self.unmet[i] > 0 {
                    return Err(invalid_event(format!(
                        "started {id} before its dependencies finished"
                    )));
                }
                if *attempt != task.attempts + 1 || *attempt > task.max_attempts {
                    return Err(invalid_event(format!(
                        "started {id} as attempt {attempt}, but the next attempt is {} of {}",
                        task.attempts + 1,
                        task.max_attempts
                    )));
                }
                self.ready_remove(i);
                let task = &mut self.tasks[i];
                task.attempts = *attempt;
                task.started_at = Some(*at);
                task.finished_at = None;
                task.not_before = None;
                self.set_status(i, Status::Running);
            }
            Event::Completed {
                id,
                attempt,
                handoff,
                at,
            }
            | Event::Skipped {
                id,
                attempt,
                handoff,
                at,
            } => {
                let (status, what) = if matches!(event, Event::Completed { .. }) {
                    (Status::Done, "a completion")
                } else {
                    (Status::Skipped, "a skip")
                };
                let i = self.event_running(*id, *attempt, what)?;
                let task = &mut self.tasks[i];
                task.finished_at = Some(*at);
                // Most tasks hand nothing on; storing nothing for them keeps a million done
                // tasks from holding a million empty boxes.
                task.handoff = (!handoff.is_empty()).then(|| Box::new(handoff.clone()));
                self.set_status(i, status);
                let mut edge = self.first_edge[i];
                while edge != NO_EDGE {
                    let Edge { task: d, next } = self.edges[edge];
                    edge = next;
                    let d = d as usize;
                    self.unmet[d] -= 1;
                    if self.unmet[d] == 0 {
                        if self.due_when_met[d] {
                            self.due.insert(d);
                        } else if self.tasks[d].status == Status::Pending {
                            self.ready_insert(d);
                        }
                    }
                }
            }
            Event::Failed {
                id,
                attempt,
                error,
                retry_at,
                at,
            } => {
                let i = self.event_running(*id, *attempt, "a failure")?;
                let task = &mut self.tasks[i];
                if retry_at.is_some() && task.attempts >= task.max_attempts {
                    return Err(invalid_event(format!(
                        "retried {id} after its last attempt ({} of {})",
                        task.attempts, task.max_attempts
                    )));
                }
                task.error = Some(Box::new(error.clone()));
                match retry_at {
                    Some(retry_at) => {
                        task.not_before = Some(*retry_at);
                        self.set_status(i, Status::Pending);
                        self.ready_insert(i);
                    }
                    None => {
                        task.finished_at = Some(*at);
                        self.set_status(i, Status::Failed);
                        self.block_dependents(i, *at);
                    }
                }
            }
            Event::Released { id, attempt, .. } => {
                let i = self.event_index(*id, "a release")?;
                let task = &self.tasks[i];
                if task.status != Status::Running {
                    return Err(invalid_event(format!(
                        "released {id}, which is {}",
                        task.status
                    )));
                }
                if *attempt != task.attempts {
                    return Err(invalid_event(format!(
                        "released attempt {attempt} of {id}, which is on attempt {}",
                        task.attempts
                    )));
                }
                let task = &mut self.tasks[i];
                // A running task has started at least once, so this stays at or above zero.
                task.attempts = task.attempts.saturating_sub(1);
                task.not_before = None;
                self.set_status(i, Status::Pending);
                if self.unmet[i] == 0 {
                    self.ready_insert(i);
                }
            }
            Event::Reset { id, .. } => {
                let i = self.event_index(*id, "a reset")?;
                let task = &self.tasks[i];
                if task.status != Status::Running {
                    return Err(invalid_event(format!(
                        "reset {id}, which is {}",
                        task.status
                    )));
                }
                if task.attempts >= task.max_attempts {
                    return Err(invalid_event(format!(
                        "reset {id} after its last attempt ({} of {})",
                        task.attempts, task.max_attempts
                    )));
                }
                self.tasks[i].not_before = None;
                self.set_status(i, Status::Pending);
                if self.unmet[i] == 0 {
                    self.ready_insert(i);
                }
            }
            Event::Retried { id, .. } => {
                let i = self.event_index(*id, "a retry")?;
                let status = self.tasks[i].status;
                if status != Status::Failed {
                    return Err(invalid_event(format!("retried {id}, which is {status}")));
                }
                let task = &mut self.tasks[i];
                task.attempts = 0;
                task.not_before = None;
                task.finished_at = None;
                task.blocked_by = None;
                self.set_status(i, Status::Pending);
                if self.unmet[i] == 0 {
                    self.ready_insert(i);
                }
                self.unblock_dependents(i);
            }
            Event::Amended {
                id,
                inputs,
                max_attempts,
                ..
            } => {
                let i = self.event_index(*id, "an amendment")?;
                let task = &self.tasks[i];
                if !matches!(
                    task.status,
                    Status::Pending | Status::Failed | Status::Blocked
                ) {
                    return Err(invalid_event(format!(
                        "amended {id}, which is {}",
                        task.status
                    )));
                }
                if let Some(reason) = attempt_limit_problem(task, *max_attempts) {
                    return Err(invalid_event(format!("amended {id}: {reason}")));
                }
                // The guard keeps one task per key: the new inputs get an entry unless this
                // task already holds them; another task holding them is an error.
                // Unchanged inputs leave the guard alone, as `amend` does: a journal from
                // before the guard compared floats exactly may hold two tasks with one key,
                // and the later one's limit can still be amended.
                let moved = task.dedup && !canonical_eq(&task.inputs, inputs);
                // `amend` refuses the same: a parent that may run again would enqueue the
                // old inputs, and the guard would no longer find this task.
                if moved
                    && let EnqueuedBy::Task(parent) = task.enqueued_by
                    && !self.tasks[parent.0 as usize].status.satisfies_dependents()
                {
                    return Err(invalid_event(format!(
                        "amended {id}, a follow-up of {parent} under the dedup guard, to new \
                         inputs while {parent} is {}",
                        self.tasks[parent.0 as usize].status
                    )));
                }
                let fresh = if moved {
                    let hash = crate::canonical::dedup_hash(&task.kind, inputs);
                    match self.find_duplicate(hash, &task.kind, inputs) {
                        Some(existing) if existing != *id => {
                            return Err(invalid_event(format!(
                                "amended {id} to the inputs of task {existing}, under the \
                                 dedup guard"
                            )));
                        }
                        Some(_) => None,
                        None => Some(hash),
                    }
                } else {
                    None
                };
                // The task's own entry, if it has one, moves to the new key, so a task never
                // holds two and the index never has more entries than the queue has tasks.
                if let Some(hash) = fresh {
                    let old_hash = crate::canonical::dedup_hash(&task.kind, &task.inputs);
                    if !self.dedup.rekey(i, old_hash, hash) {
                        self.dedup.insert(hash, i);
                    }
                }
                let task = &mut self.tasks[i];
                let old = std::mem::replace(&mut task.inputs, inputs.clone());
                task.max_attempts = *max_attempts;
                if moved && self.shadowed > 0 {
                    self.promote_holder(i, &old);
                }
            }
            Event::PhaseStarted { index, name } => match self.phase_name(*index) {
                Some(recorded) if recorded == name => {}
                Some(recorded) => {
                    return Err(invalid_event(format!(
                        "phase {index} started as `{name}`, but it is recorded as `{recorded}`"
                    )));
                }
                None => self.phases_started.push((*index, name.clone())),
            },
            Event::PhaseCompleted { index, name } => match self.phase_name(*index) {
                Some(recorded) if recorded == name => {
                    self.phases_completed.insert(*index);
                }
                Some(recorded) => {
                    return Err(invalid_event(format!(
                        "phase {index} completed as `{name}`, but it is recorded as `{recorded}`"
                    )));
                }
                None => {
                    return Err(invalid_event(format!(
                        "phase {index} completed but was never started"
                    )));
                }
            },
        }
        Ok(())
    }

    /// The dedup-enabled task with this `(kind, inputs)`, if any.
    fn find_duplicate(&self, hash: u64, kind: &str, inputs: &serde_json::Value) -> Option<TaskId> {
        self.dedup
            .candidates(hash)
            .find(|&i| {
                let task = &self.tasks[i];
                task.kind == kind && canonical_eq(&task.inputs, inputs)
            })
            .map(|i| TaskId(i as u64))
    }

    /// After guarded task `i` left the key `(its kind, old)`, gives the oldest other guarded
    /// task that still holds the key an entry, when none has one: a task installed while an
    /// older one held its key has none (see `shadowed`), and the guard must go on finding
    /// it, as a queue restored from a snapshot (which indexes the oldest holder) does. So
    /// the task the guard finds for a key is always its oldest holder. Scans the tasks of the
    /// kind, only for queues that hold such tasks, and only when the key lost its entry.
    fn promote_holder(&mut self, i: usize, old: &serde_json::Value) {
        let k = self.kind_of[i] as usize;
        let hash = crate::canonical::dedup_hash(&self.kinds[k].name, old);
        if self
            .find_duplicate(hash, &self.kinds[k].name, old)
            .is_some()
        {
            return;
        }
        let holder = self.kinds[k].ids.iter().find(|id| {
            let task = &self.tasks[id.0 as usize];
            task.dedup && canonical_eq(&task.inputs, old)
        });
        if let Some(holder) = holder {
            let holder = holder.0 as usize;
            self.dedup.insert(hash, holder);
            self.shadowed = self.shadowed.saturating_sub(1);
        }
    }

    /// Adds a task whose fields are already checked, with its derived indexes.
    fn install(&mut self, task: Task, unmet: u32, dedup_hash: Option<u64>) {
        let i = self.tasks.len();
        let id = task.id;
        for dep in &task.depends_on {
            let d = dep.0 as usize;
            self.edges.push(Edge {
                task: i as u32,
                next: self.first_edge[d],
            });
            self.first_edge[d] = self.edges.len() - 1;
        }
        if let EnqueuedBy::Task(parent) = task.enqueued_by {
            self.children[parent.0 as usize] += 1;
        }
        // A hash handed in comes from `enqueue`, which already found no duplicate; replayed
        // and restored tasks are checked here.
        let fresh = match (task.dedup, dedup_hash) {
            (false, _) => None,
            (true, Some(hash)) => Some(hash),
            (true, None) => {
                let hash = crate::canonical::dedup_hash(&task.kind, &task.inputs);
                let duplicate = self.find_duplicate(hash, &task.kind, &task.inputs);
                self.shadowed += usize::from(duplicate.is_some());
                duplicate.is_none().then_some(hash)
            }
        };
        let k = self.kind_slot(&task.kind);
        let entry = &mut self.kinds[k as usize];
        entry.ids.push(id);
        *entry.counts.slot_mut(task.status) += 1;
        *self.counts.slot_mut(task.status) += 1;
        let ready = task.status == Status::Pending && unmet == 0;
        let due = due_when_met(&task);
        // The first task with a given (kind, inputs) keeps the entry.
        if let Some(hash) = fresh {
            self.dedup.insert(hash, i);
        }
        self.tasks.push(task);
        self.unmet.push(unmet);
        self.due_when_met.push(due);
        self.first_edge.push(NO_EDGE);
        self.children.push(0);
        self.kind_of.push(k);
        if ready {
            self.ready_insert(i);
        }
    }

    /// The index of `kind` in `kinds`, adding it when new.
    fn kind_slot(&mut self, kind: &str) -> u32 {
        let last = self.kinds.get(self.last_kind as usize);
        if last.is_some_and(|entry| entry.name == kind) {
            return self.last_kind;
        }
        let k = match self.kind_index.get(kind) {
            Some(&k) => k,
            None => {
                let k = self.kinds.len() as u32;
                self.kinds.push(KindEntry {
                    name: kind.to_owned(),
                    counts: StatusCounts::default(),
                    ids: Vec::new(),
                });
                self.kind_index.insert(kind.to_owned(), k);
                k
            }
        };
        self.last_kind = k;
        k
    }

    /// The indices of the tasks that depend on task `i` (in no particular order).
    fn dependents_of(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let mut edge = self.first_edge[i];
        std::iter::from_fn(move || {
            if edge == NO_EDGE {
                return None;
            }
            let Edge { task, next } = self.edges[edge];
            edge = next;
            Some(task as usize)
        })
    }

    fn set_status(&mut self, i: usize, status: Status) {
        let old = self.tasks[i].status;
        *self.counts.slot_mut(old) -= 1;
        *self.counts.slot_mut(status) += 1;
        let counts = &mut self.kinds[self.kind_of[i] as usize].counts;
        *counts.slot_mut(old) -= 1;
        *counts.slot_mut(status) += 1;
        self.tasks[i].status = status;
        // Every change of `not_before` comes just before a status change, so this stays true.
        self.due_when_met[i] = due_when_met(&self.tasks[i]);
    }

    fn ready_insert(&mut self, i: usize) {
        let task = &self.tasks[i];
        match task.not_before {
            None => self.due.insert(i),
            Some(at) => {
                self.delayed.insert((at, task.id));
            }
        }
    }

    fn ready_remove(&mut self, i: usize) {
        let task = &self.tasks[i];
        match task.not_before {
            None => self.due.remove(i),
            Some(at) => {
                self.delayed.remove(&(at, task.id));
            }
        }
    }

    /// Blocks every not-yet-blocked transitive dependent of the failed task `i`. Tasks that
    /// are already blocked keep the ancestor that blocked them first, and their own
    /// dependents are blocked already, so the walk stops there.
    fn block_dependents(&mut self, i: usize, at: Timestamp) {
        let failed = self.tasks[i].id;
        let mut stack: Vec<usize> = self.dependents_of(i).collect();
        while let Some(d) = stack.pop() {
            if self.tasks[d].status != Status::Pending {
                continue;
            }
            self.ready_remove(d);
            let task = &mut self.tasks[d];
            task.blocked_by = Some(failed);
            task.finished_at = Some(at);
            self.set_status(d, Status::Blocked);
            stack.extend(self.dependents_of(d));
        }
    }

    /// Re-derives the status of every blocked transitive dependent of the retried task `i`,
    /// in id order, which is a topological order, so each task sees its dependencies' new
    /// statuses. A task stays blocked (by another failed ancestor) when one of its
    /// dependencies is still failed or blocked; otherwise it is pending again.
    fn unblock_dependents(&mut self, i: usize) {
        let mut work: BTreeSet<usize> = self.dependents_of(i).collect();
        while let Some(d) = work.pop_first() {
            if self.tasks[d].status != Status::Blocked {
                continue;
            }
            let still_blocked_by = self.tasks[d].depends_on.iter().find_map(|dep| {
                let task = &self.tasks[dep.0 as usize];
                match task.status {
                    Status::Failed => Some(*dep),
                    Status::Blocked => task.blocked_by,
                    _ => None,
                }
            });
            match still_blocked_by {
                Some(ancestor) => self.tasks[d].blocked_by = Some(ancestor),
                None => {
                    let task = &mut self.tasks[d];
                    task.blocked_by = None;
                    task.finished_at = None;
                    self.set_status(d, Status::Pending);
                    if self.unmet[d] == 0 {
                        self.ready_insert(d);
                    }
                }
            }
            let more: Vec<usize> = self.dependents_of(d).collect();
            work.extend(more);
        }
    }
}

/// Checks a snapshot's tasks before they are installed: dense ids, references, cycles,
/// spec fields, depths and the agreement of each status with its dependencies' statuses.
fn check_snapshot(tasks: &[Task]) -> Result<()> {
    if tasks.len() > MAX_TASKS_HARD_LIMIT {
        return Err(inconsistent(format!(
            "{} tasks is more than the hard limit of {MAX_TASKS_HARD_LIMIT}",
            tasks.len()
        )));
    }
    let n = tasks.len() as u64;
    for (k, task) in tasks.iter().enumerate() {
        if task.id.0 != k as u64 {
            return Err(inconsistent(format!(
                "task at position {k} has id {}; ids must be dense and in order",
                task.id
            )));
        }
    }
    let mut forward = false;
    for task in tasks {
        let id = task.id;
        let mut references: Vec<TaskId> = task.depends_on.clone();
        references.extend(match task.enqueued_by {
            EnqueuedBy::Task(parent) => Some(parent),
            EnqueuedBy::Root => None,
        });
        references.extend(task.blocked_by);
        if let Some(missing) = references.into_iter().find(|r| r.0 >= n) {
            return Err(Error::DanglingReference { id, missing });
        }
        if let Some(dep) = first_duplicate(&task.depends_on) {
            return Err(inconsistent(format!("{id} lists dependency {dep} twice")));
        }
        forward |= task.depends_on.iter().any(|dep| *dep >= id);
    }
    if forward {
        if let Some(ids) = find_cycle(tasks) {
            return Err(Error::Cycle { ids });
        }
        let task = tasks
            .iter()
            .find(|task| task.depends_on.iter().any(|dep| *dep >= task.id));
        if let Some(task) = task {
            return Err(inconsistent(format!(
                "{} depends on a task created after it",
                task.id
            )));
        }
    }
    for task in tasks {
        check_task(tasks, task)?;
    }
    Ok(())
}

fn check_task(tasks: &[Task], task: &Task) -> Result<()> {
    let id = task.id;
    let at = |dep: &TaskId| &tasks[dep.0 as usize];
    if task.kind.is_empty() {
        return Err(inconsistent(format!("{id} has an empty kind")));
    }
    // Replay refuses events that carry such values, so a queue never holds one.
    let extra = task.handoff.as_deref().map(|handoff| &handoff.extra);
    if let Some(field) = [("inputs", Some(&task.inputs)), ("a handoff `extra`", extra)]
        .into_iter()
        .find_map(|(field, value)| value.is_some_and(too_deep).then_some(field))
    {
        return Err(inconsistent(format!(
            "{id} has {field} nested more than {MAX_VALUE_DEPTH} levels deep"
        )));
    }
    if task.max_attempts == 0 || task.attempts > task.max_attempts {
        return Err(inconsistent(format!(
            "{id} has {} attempts of at most {}",
            task.attempts, task.max_attempts
        )));
    }
    let depth = match task.enqueued_by {
        EnqueuedBy::Root => 0,
        EnqueuedBy::Task(parent) if parent < id => at(&parent).depth.saturating_add(1),
        EnqueuedBy::Task(parent) => {
            return Err(inconsistent(format!(
                "{id} names {parent}, created after it, as its parent"
            )));
        }
    };
    if task.depth != depth {
        return Err(inconsistent(format!(
            "{id} has depth {}, but its parent gives depth {depth}",
            task.depth
        )));
    }
    let unsatisfied = task
        .depends_on
        .iter()
        .find(|dep| !at(dep).status.satisfies_dependents());
    let failed_dep = task
        .depends_on
        .iter()
        .find(|dep| matches!(at(dep).status, Status::Failed | Status::Blocked));
    if task.status != Status::Blocked && task.blocked_by.is_some() {
        return Err(inconsistent(format!(
            "{id} is {} but names a blocking ancestor",
            task.status
        )));
    }
    match task.status {
        Status::Pending => {
            if let Some(dep) = failed_dep {
                return Err(inconsistent(format!(
                    "{id} is pending under {dep}, which is {}; it should be blocked",
                    at(dep).status
                )));
            }
            if task.attempts >= task.max_attempts {
                return Err(inconsistent(format!(
                    "{id} is pending with no attempts left"
                )));
            }
        }
        Status::Running | Status::Done | Status::Skipped | Status::Failed => {
            if let Some(dep) = unsatisfied {
                return Err(inconsistent(format!(
                    "{id} is {} although its dependency {dep} is {}",
                    task.status,
                    at(dep).status
                )));
            }
            if task.status == Status::Running && task.attempts == 0 {
                return Err(inconsistent(format!("{id} is running at attempt 0")));
            }
        }
        Status::Blocked => {
            let Some(ancestor) = task.blocked_by else {
                return Err(inconsistent(format!("{id} is blocked by nothing")));
            };
            if at(&ancestor).status != Status::Failed {
                return Err(inconsistent(format!(
                    "{id} is blocked by {ancestor}, which is {}",
                    at(&ancestor).status
                )));
            }
            if failed_dep.is_none() {
                return Err(inconsistent(format!(
                    "{id} is blocked but none of its dependencies failed"
                )));
            }
            // The blocker is a failed dependency or a blocked dependency's blocker, so it is
            // an ancestor, and a retry of it reaches this task to unblock it.
            let names_an_ancestor = task.depends_on.iter().any(|dep| {
                *dep == ancestor
                    || (at(dep).status == Status::Blocked && at(dep).blocked_by == Some(ancestor))
            });
            if !names_an_ancestor {
                return Err(inconsistent(format!(
                    "{id} is blocked by {ancestor}, which is not a failed ancestor of it"
                )));
            }
            // A retry of its ancestor makes it pending, which needs an attempt left.
            if task.attempts >= task.max_attempts {
                return Err(inconsistent(format!(
                    "{id} is blocked with no attempts left"
                )));
            }
        }
    }
    Ok(())
}

/// Finds one dependency cycle, as the ids along it, or `None` when the graph is acyclic.
fn find_cycle(tasks: &[Task]) -> Option<Vec<TaskId>> {
    let n = tasks.len();
    let mut waiting: Vec<usize> = tasks.iter().map(|t| t.depends_on.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for task in tasks {
        for dep in &task.depends_on {
            dependents[dep.0 as usize].push(task.id.0 as usize);
        }
    }
    // Kahn's algorithm: what it cannot remove lies on a cycle or downstream of one.
    let mut free: Vec<usize> = (0..n).filter(|&i| waiting[i] == 0).collect();
    while let Some(i) = free.pop() {
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                free.push(d);
            }
        }
    }
    let start = (0..n).find(|&i| waiting[i] > 0)?;
    // Every leftover task has a leftover dependency, so walking them must revisit one.
    let mut path: Vec<usize> = Vec::new();
    let mut position: HashMap<usize, usize> = HashMap::new();
    let mut current = start;
    loop {
        if let Some(&from) = position.get(&current) {
            return Some(path[from..].iter().map(|&i| tasks[i].id).collect());
        }
        position.insert(current, path.len());
        path.push(current);
        current = tasks[current]
            .depends_on
            .iter()
            .map(|dep| dep.0 as usize)
            .find(|&dep| waiting[dep] > 0)?;
    }
}

#[cfg(test)]
mod tests {
    //! The dedup index's size is private, so the bound on it is tested here.

    use super::{Queue, QueueConfig};
    use crate::task::{EnqueuedBy, TaskSpec, Timestamp};
    use serde_json::json;

    /// Entries are stored as `u32`s plus one (`dedup.rs`), which is safe only while the index
    /// never holds more entries than the queue holds tasks: amending inputs back and forth
    /// must move a task's entry, not add one each time.
    #[test]
    fn amending_inputs_never_grows_the_dedup_index_past_one_entry_per_task() {
        let mut q = Queue::new(QueueConfig::default());
        let now = Timestamp(0);
        let a = q.enqueue(TaskSpec::new("a").inputs(json!(0)), EnqueuedBy::Root, now);
        let a = a.expect("enqueue").id;
        let b = q.enqueue(TaskSpec::new("a").inputs(json!("b")), EnqueuedBy::Root, now);
        let b = b.expect("enqueue").id;
        for n in 1..300 {
            q.amend(a, json!(n % 7), None, now).expect("amend");
            assert!(q.dedup.len() <= q.len(), "{} entries", q.dedup.len());
        }
        // The guard still finds both tasks by their inputs as they are, and not by old ones.
        let found = |q: &mut Queue, inputs| {
            let spec = TaskSpec::new("a").inputs(inputs);
            q.enqueue(spec, EnqueuedBy::Root, now).expect("enqueue")
        };
        assert_eq!(found(&mut q, json!(299 % 7)).id, a);
        assert_eq!(found(&mut q, json!("b")).id, b);
        let fresh = found(&mut q, json!(0));
        assert!(!fresh.existing, "old inputs no longer name `a`");
    }
}
