//! The one error type of `cairn-queue`.

use std::fmt;

use crate::task::{Status, TaskId, Timestamp};

/// Everything the queue can refuse. Every variant names the ids involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No task has this id.
    #[error("unknown task {id}")]
    UnknownTask {
        /// The id that was named.
        id: TaskId,
    },
    /// `depends_on` named ids that do not exist.
    #[error("unknown dependencies {} for a task of kind `{kind}`", IdList(.ids))]
    UnknownDependencies {
        /// The kind of the task being enqueued.
        kind: String,
        /// The ids that do not exist.
        ids: Vec<TaskId>,
    },
    /// The operation is not allowed from the task's current status.
    #[error("cannot {op} task {id}: it is {from}")]
    InvalidTransition {
        /// The task.
        id: TaskId,
        /// Its current status.
        from: Status,
        /// The refused operation, such as `complete` or `start`.
        op: &'static str,
    },
    /// The task spec itself is unusable (empty kind, zero attempts, ...).
    #[error("invalid task spec: {reason}")]
    InvalidSpec {
        /// What is wrong.
        reason: String,
    },
    /// A completing (or skipping) task's handoff cannot be stored: its `extra` nests deeper
    /// than [`crate::MAX_VALUE_DEPTH`]. The task is unchanged (still running).
    #[error("task {id}'s handoff cannot be stored: {reason}")]
    InvalidHandoff {
        /// The task.
        id: crate::TaskId,
        /// Why.
        reason: String,
    },
    /// The run already holds `QueueConfig::max_tasks` tasks.
    #[error("the run already holds the maximum of {limit} tasks")]
    TooManyTasks {
        /// The configured bound.
        limit: usize,
    },
    /// The follow-up would be nested deeper than `QueueConfig::max_depth`.
    #[error("enqueue depth {depth} under task {parent} exceeds the maximum of {limit}")]
    TooDeep {
        /// The task whose follow-up was refused.
        parent: TaskId,
        /// The depth the new task would have.
        depth: u32,
        /// The configured bound.
        limit: u32,
    },
    /// The parent already enqueued `QueueConfig::max_children` follow-ups.
    #[error("task {parent} already enqueued the maximum of {limit} children")]
    TooManyChildren {
        /// The task whose follow-up was refused.
        parent: TaskId,
        /// The configured bound.
        limit: usize,
    },
    /// The task is pending but cannot start yet: dependencies are unfinished or its
    /// `not_before` has not passed.
    #[error("task {id} is not ready{}", Waiting::new(.waiting_on, *.not_before))]
    NotReady {
        /// The task.
        id: TaskId,
        /// Its dependencies that are not yet `done` or `skipped`.
        waiting_on: Vec<TaskId>,
        /// Its retry backoff, when that is what it waits for.
        not_before: Option<Timestamp>,
    },
    /// Phase `index` was recorded under another name.
    #[error("phase {index} is recorded as `{recorded}`, not `{given}`")]
    PhaseMismatch {
        /// The phase's position.
        index: u32,
        /// The name the queue holds.
        recorded: String,
        /// The name the caller gave.
        given: String,
    },
    /// Phase `index` was completed before it was started.
    #[error("phase {index} cannot complete: it was never started")]
    PhaseNotStarted {
        /// The phase's position.
        index: u32,
    },
    /// The text is not a task id.
    #[error("`{text}` is not a task id (expected `t<number>`)")]
    InvalidTaskId {
        /// The text that was given.
        text: String,
    },
    /// A loaded snapshot has a dependency cycle.
    #[error("snapshot has a dependency cycle through {}", IdList(.ids))]
    Cycle {
        /// Tasks on the cycle.
        ids: Vec<TaskId>,
    },
    /// A loaded snapshot names a dependency or parent that does not exist.
    #[error("snapshot task {id} names missing task {missing}")]
    DanglingReference {
        /// The task holding the reference.
        id: TaskId,
        /// The id that does not exist.
        missing: TaskId,
    },
    /// A loaded snapshot is internally inconsistent in some other way.
    #[error("snapshot is inconsistent: {reason}")]
    InconsistentSnapshot {
        /// What is wrong.
        reason: String,
    },
    /// The snapshot was written by an incompatible format version.
    #[error("snapshot format version {found} is not supported (expected {expected})")]
    UnsupportedFormat {
        /// The version found.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// `Queue::amend` would give a dedup-guarded task the `(kind, inputs)` of another one,
    /// and the guard keeps one task per key.
    #[error(
        "task {id} cannot take these inputs: task {existing} of the same kind already has them, \
         and both take part in the dedup guard"
    )]
    DuplicateInputs {
        /// The task being amended.
        id: TaskId,
        /// The task that already has those inputs.
        existing: TaskId,
    },
    /// An event does not fit the state it is applied to (replay of foreign or damaged data).
    #[error("event cannot be applied: {reason}")]
    InvalidEvent {
        /// What is wrong.
        reason: String,
    },
}

/// Shows ids the way messages show one id: `t5, t6`.
struct IdList<'a>(&'a [TaskId]);

impl fmt::Display for IdList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, id) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

/// The tail of `NotReady`'s message: only the reasons that hold, so a task that waits for
/// no backoff does not read "not before nothing".
struct Waiting<'a> {
    on: &'a [TaskId],
    not_before: Option<Timestamp>,
}

impl<'a> Waiting<'a> {
    fn new(on: &'a [TaskId], not_before: Option<Timestamp>) -> Self {
        Waiting { on, not_before }
    }
}

impl fmt::Display for Waiting<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = ": ";
        if !self.on.is_empty() {
            write!(f, "{sep}waiting on {}", IdList(self.on))?;
            sep = ", ";
        }
        if let Some(at) = self.not_before {
            write!(f, "{sep}not before {at}")?;
        }
        Ok(())
    }
}

/// Shorthand for results of queue operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
