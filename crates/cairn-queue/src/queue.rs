//! The queue itself: validation, transitions, scheduling and reads.
//!
//! CONTRACT FOR THE IMPLEMENTER (remove this paragraph when done): the public signatures in this
//! file are what the executor, the checkpoint port and the CLI code against. Keep them; add
//! private fields and helpers freely.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::event::Event;
use crate::snapshot::Snapshot;
use crate::task::{EnqueuedBy, Handoff, Status, Task, TaskError, TaskId, TaskSpec, Timestamp};

/// Bounds and defaults. Crossing a bound is a typed error, never a silent drop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Most tasks one run may hold. Default 1,000,000.
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

/// The event-sourced DAG task queue. See the crate docs for the rules.
#[derive(Debug, Clone)]
pub struct Queue {
    // Private state goes here.
}

impl Queue {
    /// An empty queue with the given bounds.
    pub fn new(config: QueueConfig) -> Queue {
        let _ = config;
        todo!()
    }

    /// Rebuilds a queue from a snapshot, checking format version, cycles and dangling ids.
    pub fn from_snapshot(snapshot: Snapshot, config: QueueConfig) -> Result<Queue> {
        let _ = (snapshot, config);
        todo!()
    }

    /// Rebuilds a queue from an optional snapshot plus the events recorded after it.
    pub fn replay<'a>(
        snapshot: Option<Snapshot>,
        events: impl IntoIterator<Item = &'a Event>,
        config: QueueConfig,
    ) -> Result<Queue> {
        let _ = (snapshot, events.into_iter(), config);
        todo!()
    }

    /// The whole state, for `queue.json`.
    pub fn snapshot(&self) -> Snapshot {
        todo!()
    }

    /// Applies one event. The only way state changes; every operation below builds an event
    /// and applies it here. Validates the event against the state.
    pub fn apply(&mut self, event: &Event) -> Result<()> {
        let _ = event;
        todo!()
    }

    /// Takes the events produced by operations since the last call, in order.
    pub fn take_events(&mut self) -> Vec<Event> {
        todo!()
    }

    /// Enqueues a task (or returns the existing one under the dedup guard).
    pub fn enqueue(&mut self, spec: TaskSpec, by: EnqueuedBy, now: Timestamp) -> Result<Enqueued> {
        let _ = (spec, by, now);
        todo!()
    }

    /// Claims a runnable pending task and increments its attempts. Returns the new attempt number.
    pub fn start(&mut self, id: TaskId, now: Timestamp) -> Result<u32> {
        let _ = (id, now);
        todo!()
    }

    /// Marks a running task done.
    pub fn complete(&mut self, id: TaskId, handoff: Handoff, now: Timestamp) -> Result<()> {
        let _ = (id, handoff, now);
        todo!()
    }

    /// Marks a running task skipped (it judged itself unnecessary).
    pub fn skip(&mut self, id: TaskId, handoff: Handoff, now: Timestamp) -> Result<()> {
        let _ = (id, handoff, now);
        todo!()
    }

    /// Fails a running task. Returns the task's status afterwards: `Pending` when retried,
    /// `Failed` otherwise.
    pub fn fail(
        &mut self,
        id: TaskId,
        error: TaskError,
        retryable: bool,
        retry_at: Timestamp,
        now: Timestamp,
    ) -> Result<Status> {
        let _ = (id, error, retryable, retry_at, now);
        todo!()
    }

    /// Retries a failed task by hand (see the crate docs).
    pub fn retry(&mut self, id: TaskId, now: Timestamp) -> Result<()> {
        let _ = (id, now);
        todo!()
    }

    /// Applies the crash-recovery rule to every running task and reports what it did.
    pub fn recover(&mut self, now: Timestamp) -> Vec<Recovery> {
        let _ = now;
        todo!()
    }

    /// Records that phase `index` started.
    pub fn start_phase(&mut self, index: u32, name: &str) -> Result<()> {
        let _ = (index, name);
        todo!()
    }

    /// Records that phase `index` completed.
    pub fn complete_phase(&mut self, index: u32, name: &str) -> Result<()> {
        let _ = (index, name);
        todo!()
    }

    /// Whether phase `index` was recorded complete.
    pub fn phase_completed(&self, index: u32) -> bool {
        let _ = index;
        todo!()
    }

    /// Every pending task whose dependencies are satisfied and whose `not_before` has passed,
    /// in id order.
    pub fn next_runnable(&self, now: Timestamp) -> Vec<TaskId> {
        let _ = now;
        todo!()
    }

    /// The earliest `not_before` among ready tasks that are not yet due.
    pub fn next_wakeup(&self) -> Option<Timestamp> {
        todo!()
    }

    /// True when nothing is running and nothing can ever start.
    pub fn is_drained(&self) -> bool {
        todo!()
    }

    /// `Some` once drained.
    pub fn outcome(&self) -> Option<Outcome> {
        todo!()
    }

    /// The task with this id.
    pub fn get(&self, id: TaskId) -> Option<&Task> {
        let _ = id;
        todo!()
    }

    /// Every task, in id order.
    pub fn tasks(&self) -> impl Iterator<Item = &Task> {
        std::iter::empty()
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        todo!()
    }

    /// Whether the queue holds no task.
    pub fn is_empty(&self) -> bool {
        todo!()
    }

    /// Counts per status.
    pub fn counts(&self) -> StatusCounts {
        todo!()
    }

    /// Counts per status for each kind.
    pub fn counts_by_kind(&self) -> BTreeMap<String, StatusCounts> {
        todo!()
    }

    /// Handoffs of the given task's dependencies, in `depends_on` order (missing ones left out).
    pub fn dependency_handoffs(&self, id: TaskId) -> Result<Vec<(TaskId, &Handoff)>> {
        let _ = id;
        todo!()
    }

    /// Handoffs of every finished task of this kind, in creation order.
    pub fn handoffs_by_kind(&self, kind: &str) -> Vec<(TaskId, &Handoff)> {
        let _ = kind;
        todo!()
    }
}
