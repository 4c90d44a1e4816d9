//! Event-sourced DAG task queue: a synchronous, single-owner state machine that does no I/O.
//!
//! `cairn-queue` keeps no clock (callers pass `now`), spawns nothing and touches no file.
//! Every change is an [`Event`]; [`Queue::apply`] is the only way state changes, so replaying
//! a [`Snapshot`] plus the events after it gives back the same state.
//!
//! # Rules
//!
//! - **Statuses.** `pending → running → done | skipped | failed`, with `blocked` for tasks
//!   whose ancestor failed. `done` and `skipped` satisfy dependents.
//! - **Failure.** `fail(retryable = true)` with attempts left sends the task back to `pending`
//!   with `not_before = retry_at`. Otherwise the task is `failed` and every transitive
//!   dependent that has not finished becomes `blocked`, with `blocked_by` naming the failed
//!   task (a task already blocked keeps the ancestor that blocked it first). Independent
//!   branches keep running.
//! - **Manual retry.** `retry(id)` takes a `failed` task back to `pending` with its attempt
//!   counter reset to 0 and no `not_before`; its last `error` is kept. Every task it blocked returns to `pending`, unless another failed
//!   ancestor still blocks it, in which case `blocked_by` names that ancestor instead.
//! - **Amend.** `amend(id, inputs, max_attempts)` corrects the definition of a `pending`,
//!   `failed` or `blocked` task (never a running or finished one): its next attempt runs the
//!   new inputs under the new limit, which must leave a pending or blocked task an attempt.
//!   Status, attempts, error and dependencies are kept; under the dedup guard the new inputs
//!   must not be another task's.
//! - **Enqueue onto a failed branch.** A task that depends on a `failed` or `blocked` task is
//!   accepted and enters `blocked` at once (blocked by the failed ancestor), so a retry of
//!   that ancestor revives it too.
//! - **Dedup guard.** With `TaskSpec::dedup` on (the default), enqueueing a task whose
//!   `(kind, canonical inputs)` equals an existing dedup-enabled task's returns that task's
//!   id and creates nothing. Every status counts, so a resumed handler that enqueues its
//!   children again never spawns them twice. Only kind and inputs are compared, not
//!   dependencies or parent. Canonical means object key order is ignored (the queue sorts
//!   keys itself, whatever serde_json's map order is); numbers compare by value within their
//!   JSON form, so `1` and `1.0` differ while `0.0` and `-0.0` match.
//! - **Follow-ups and bounds.** `EnqueuedBy::Task(p)` requires `p` to exist and to be
//!   `running` (follow-ups come from a running handler); the follow-up's depth is `p`'s
//!   depth plus one. `enqueue` refuses to cross `QueueConfig::max_tasks`, `max_depth` or
//!   `max_children` with a typed error. The dedup guard is checked before the bounds.
//!   `apply` checks structure only, not bounds, so a journal written under other bounds
//!   still replays.
//! - **Scheduling.** A task may start when it is `pending`, all its dependencies are `done`
//!   or `skipped`, and its `not_before` (if any) has passed. No `pending` task ever sits under
//!   a failed or blocked one, so every pending task can start eventually and the queue is
//!   drained exactly when nothing is pending or running.
//! - **Recovery.** `recover()` treats every `running` task as interrupted: back to `pending`
//!   with attempts left, `failed` (kind `interrupted`) otherwise, blocking its dependents.
//!   `release(id)` is for an attempt its executor stopped on purpose (a shutdown, a cancel):
//!   the task is `pending` again and the stopped attempt does not count.
//! - **Phases.** `start_phase(i, name)` and `complete_phase(i, name)` record phases by index;
//!   repeating either is a no-op, a different name for a recorded index is an error, and a
//!   phase must be started before it completes.
//!
//! # Examples
//!
//! ```
//! use cairn_queue::{EnqueuedBy, Handoff, Outcome, Queue, QueueConfig, TaskSpec, Timestamp};
//!
//! let mut q = Queue::new(QueueConfig::default());
//! let now = Timestamp(0);
//! let fetch = q.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, now)?.id;
//! let render = q.enqueue(TaskSpec::new("render").depends_on([fetch]), EnqueuedBy::Root, now)?.id;
//! assert_eq!(q.next_runnable(now), vec![fetch]);
//! q.start(fetch, now)?;
//! q.complete(fetch, Handoff::default(), now)?;
//! q.start(render, now)?;
//! q.complete(render, Handoff::default(), now)?;
//! assert_eq!(q.outcome(), Some(Outcome::Completed));
//! # Ok::<(), cairn_queue::Error>(())
//! ```

mod canonical;
mod chunked;
mod dedup;
mod error;
mod event;
mod queue;
mod ready;
mod snapshot;
mod task;

pub use error::{Error, Result};
pub use event::Event;
pub use queue::{
    Enqueued, MAX_TASKS_HARD_LIMIT, Outcome, Queue, QueueConfig, Recovery, StatusCounts,
};
pub use snapshot::{SNAPSHOT_FORMAT_VERSION, Snapshot, SnapshotView, SnapshotWithInputs};
pub use task::{
    EnqueuedBy, Handoff, MAX_VALUE_DEPTH, Status, Task, TaskError, TaskId, TaskSpec, Timestamp,
    nests_too_deep,
};
