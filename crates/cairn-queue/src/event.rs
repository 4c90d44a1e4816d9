//! Events: every state change is one of these, and `Queue::apply` is the only way state changes.

use serde::{Deserialize, Serialize};

use crate::task::{EnqueuedBy, Handoff, TaskError, TaskId, Timestamp};

/// One state transition. Serialized with a `type` tag, e.g. `{"type":"started",...}`.
///
/// Non-exhaustive: transitions are added as cairn grows (a journal holding a newer type
/// cannot be read by a build from before it; see `docs/durability.md`, "Compatibility").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A task was created. Its id is the queue's next id at the time it is applied.
    Enqueued {
        /// The new task's id.
        id: TaskId,
        /// What the task does.
        kind: String,
        /// The task's input.
        inputs: serde_json::Value,
        /// Deduplicated dependencies.
        depends_on: Vec<TaskId>,
        /// The resolved attempt limit.
        max_attempts: u32,
        /// Who enqueued it.
        enqueued_by: EnqueuedBy,
        /// Whether it takes part in the dedup guard.
        dedup: bool,
        /// When.
        at: Timestamp,
    },
    /// A pending task was claimed; its attempt counter becomes `attempt`.
    Started {
        /// The task.
        id: TaskId,
        /// The attempt number this start begins (1-based).
        attempt: u32,
        /// When.
        at: Timestamp,
    },
    /// A running task finished successfully.
    Completed {
        /// The task.
        id: TaskId,
        /// The attempt that finished.
        attempt: u32,
        /// What it leaves for dependents.
        handoff: Handoff,
        /// When.
        at: Timestamp,
    },
    /// A running task judged itself unnecessary.
    Skipped {
        /// The task.
        id: TaskId,
        /// The attempt that decided.
        attempt: u32,
        /// What it leaves for dependents.
        handoff: Handoff,
        /// When.
        at: Timestamp,
    },
    /// A running task failed. With `retry_at` it goes back to pending; without, it is failed
    /// and its transitive dependents are blocked.
    Failed {
        /// The task.
        id: TaskId,
        /// The attempt that failed.
        attempt: u32,
        /// Why.
        error: TaskError,
        /// `Some` when the failure is retried: the task's new `not_before`.
        retry_at: Option<Timestamp>,
        /// When.
        at: Timestamp,
    },
    /// Recovery put a task that was running at a crash back to pending.
    Reset {
        /// The task.
        id: TaskId,
        /// When.
        at: Timestamp,
    },
    /// The executor stopped a running attempt itself (a shutdown's grace period ran out, the
    /// run was cancelled, or its deadline passed) before the attempt's body returned. The
    /// task is pending again and that attempt no longer counts against `max_attempts`: it
    /// neither failed nor succeeded, and a person asked for the stop.
    Released {
        /// The task.
        id: TaskId,
        /// The attempt that was stopped; the task's attempt count goes back below it.
        attempt: u32,
        /// When.
        at: Timestamp,
    },
    /// A person retried a failed task by hand: it is pending again with fresh attempts,
    /// and the dependents it blocked are unblocked.
    Retried {
        /// The task.
        id: TaskId,
        /// When.
        at: Timestamp,
    },
    /// A task that had not finished (`pending`, `failed` or `blocked`) took new inputs and a
    /// new attempt limit: its definition was corrected while the run was stopped, and its
    /// next attempt runs the corrected one. Status, attempts, error and dependencies stay.
    Amended {
        /// The task.
        id: TaskId,
        /// Its new inputs.
        inputs: serde_json::Value,
        /// Its new attempt limit.
        max_attempts: u32,
        /// When.
        at: Timestamp,
    },
    /// The executor started phase `index`.
    PhaseStarted {
        /// The phase's position in the run, from 0.
        index: u32,
        /// The phase's name (names may repeat; the index is the key).
        name: String,
    },
    /// Every task of phase `index` reached `done` or `skipped`.
    PhaseCompleted {
        /// The phase's position in the run, from 0.
        index: u32,
        /// The phase's name.
        name: String,
    },
}

impl Event {
    /// The task this event is about, if it is about one.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{Event, TaskId, Timestamp};
    ///
    /// let started = Event::Started { id: TaskId(3), attempt: 1, at: Timestamp(0) };
    /// assert_eq!(started.task_id(), Some(TaskId(3)));
    /// let phase = Event::PhaseStarted { index: 0, name: "build".to_owned() };
    /// assert_eq!(phase.task_id(), None);
    /// ```
    pub fn task_id(&self) -> Option<TaskId> {
        match self {
            Event::Enqueued { id, .. }
            | Event::Started { id, .. }
            | Event::Completed { id, .. }
            | Event::Skipped { id, .. }
            | Event::Failed { id, .. }
            | Event::Reset { id, .. }
            | Event::Released { id, .. }
            | Event::Retried { id, .. }
            | Event::Amended { id, .. } => Some(*id),
            Event::PhaseStarted { .. } | Event::PhaseCompleted { .. } => None,
        }
    }

    /// The event's `type` tag as it is stored (`"started"`, `"phase_completed"`, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{Event, TaskId, Timestamp};
    ///
    /// let event = Event::Started { id: TaskId(0), attempt: 1, at: Timestamp(5) };
    /// assert_eq!(event.type_name(), "started");
    /// assert_eq!(serde_json::to_value(&event)?["type"], "started");
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::Enqueued { .. } => "enqueued",
            Event::Started { .. } => "started",
            Event::Completed { .. } => "completed",
            Event::Skipped { .. } => "skipped",
            Event::Failed { .. } => "failed",
            Event::Reset { .. } => "reset",
            Event::Released { .. } => "released",
            Event::Retried { .. } => "retried",
            Event::Amended { .. } => "amended",
            Event::PhaseStarted { .. } => "phase_started",
            Event::PhaseCompleted { .. } => "phase_completed",
        }
    }

    /// Whether this build knows events tagged `type_name`. A stored event it does not know
    /// was written by a newer build (storage adapters then refuse the run without calling it
    /// damaged; see `docs/durability.md`, "Compatibility").
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::Event;
    ///
    /// assert!(Event::is_known_type("phase_started"));
    /// assert!(!Event::is_known_type("from_a_later_build"));
    /// ```
    pub fn is_known_type(type_name: &str) -> bool {
        KNOWN_TYPES.contains(&type_name)
    }
}

/// Every [`Event::type_name`]; `tests/rules.rs` checks each variant's is here.
const KNOWN_TYPES: &[&str] = &[
    "enqueued",
    "started",
    "completed",
    "skipped",
    "failed",
    "reset",
    "released",
    "retried",
    "amended",
    "phase_started",
    "phase_completed",
];
