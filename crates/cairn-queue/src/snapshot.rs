//! The serialized form of a queue's state (`queue.json`).

use std::collections::BTreeSet;

use serde::ser::SerializeStruct as _;
use serde::{Deserialize, Serialize, Serializer};

use crate::queue::Queue;
use crate::task::Task;

/// The snapshot format this build writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// A queue's whole state. Replaying the events after it reproduces the live queue exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Always `SNAPSHOT_FORMAT_VERSION` when written by this build.
    pub format_version: u32,
    /// Every task, in id order.
    pub tasks: Vec<Task>,
    /// Indices of phases recorded complete (the executor's skip set).
    #[serde(default)]
    pub phases_completed: BTreeSet<u32>,
    /// Index and name of phases that were started, in order.
    #[serde(default)]
    pub phases_started: Vec<(u32, String)>,
}

/// A queue's [`Snapshot`] by reference: it serializes to exactly what `queue.snapshot()`
/// serializes to, without copying every task first. For writing a large queue's snapshot
/// (a compaction), where the copy would cost as much as a good part of the encoding.
///
/// # Examples
///
/// ```
/// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
///
/// let mut queue = Queue::new(QueueConfig::default());
/// queue.enqueue(TaskSpec::new("fetch"), EnqueuedBy::Root, Timestamp(1))?;
/// let by_reference = serde_json::to_string(&queue.snapshot_view())?;
/// assert_eq!(by_reference, serde_json::to_string(&queue.snapshot())?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SnapshotView<'a> {
    pub(crate) queue: &'a Queue,
}

impl Serialize for SnapshotView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Field for field what `#[derive(Serialize)]` writes for `Snapshot`; the tests
        // compare the two encodings byte for byte.
        let mut snapshot = serializer.serialize_struct("Snapshot", 4)?;
        snapshot.serialize_field("format_version", &SNAPSHOT_FORMAT_VERSION)?;
        snapshot.serialize_field("tasks", &Tasks(self.queue))?;
        snapshot.serialize_field("phases_completed", &self.queue.phases_completed)?;
        snapshot.serialize_field("phases_started", &self.queue.phases_started)?;
        snapshot.end()
    }
}

/// A queue's tasks as a sequence, in id order.
struct Tasks<'a>(&'a Queue);

impl Serialize for Tasks<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.tasks())
    }
}

impl<'a> SnapshotView<'a> {
    /// The same snapshot with each task's `inputs` written as `inputs(task)` returns: for a
    /// holder that keeps the tasks' inputs apart from its queue (encoded, say, to take less
    /// memory than a JSON value does), with the queue's own `inputs` left null. Every other
    /// field is the task's. When `inputs(task)` serializes like `task.inputs`, the encoding
    /// is exactly [`Queue::snapshot`]'s.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};
    ///
    /// let mut queue = Queue::new(QueueConfig::default());
    /// let spec = TaskSpec::new("fetch").inputs(serde_json::json!({ "url": "u" }));
    /// queue.enqueue(spec, EnqueuedBy::Root, Timestamp(1))?;
    /// let same = queue.snapshot_view().with_inputs(|task| task.inputs.clone());
    /// assert_eq!(serde_json::to_string(&same)?, serde_json::to_string(&queue.snapshot())?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_inputs<F, I>(self, inputs: F) -> SnapshotWithInputs<'a, F>
    where
        F: Fn(&Task) -> I,
        I: Serialize,
    {
        SnapshotWithInputs {
            queue: self.queue,
            inputs,
        }
    }
}

/// A queue's snapshot with the tasks' inputs from elsewhere: see
/// [`SnapshotView::with_inputs`].
#[derive(Debug, Clone, Copy)]
pub struct SnapshotWithInputs<'a, F> {
    queue: &'a Queue,
    inputs: F,
}

impl<F, I> Serialize for SnapshotWithInputs<'_, F>
where
    F: Fn(&Task) -> I,
    I: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // As `SnapshotView` writes it.
        let mut snapshot = serializer.serialize_struct("Snapshot", 4)?;
        snapshot.serialize_field("format_version", &SNAPSHOT_FORMAT_VERSION)?;
        snapshot.serialize_field("tasks", &TasksWithInputs(self))?;
        snapshot.serialize_field("phases_completed", &self.queue.phases_completed)?;
        snapshot.serialize_field("phases_started", &self.queue.phases_started)?;
        snapshot.end()
    }
}

/// The tasks of a [`SnapshotWithInputs`], in id order.
struct TasksWithInputs<'s, 'a, F>(&'s SnapshotWithInputs<'a, F>);

impl<F, I> Serialize for TasksWithInputs<'_, '_, F>
where
    F: Fn(&Task) -> I,
    I: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let with = self.0;
        serializer.collect_seq(with.queue.tasks().map(|task| TaskWithInputs {
            task,
            inputs: (with.inputs)(task),
        }))
    }
}

/// A task with its `inputs` replaced.
struct TaskWithInputs<'a, I> {
    task: &'a Task,
    inputs: I,
}

impl<I: Serialize> Serialize for TaskWithInputs<'_, I> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Field for field what `#[derive(Serialize)]` writes for `Task`, `inputs` aside; the
        // tests compare the two encodings byte for byte. Destructured, so that a field added
        // to `Task` does not compile until it is written here too.
        let Task {
            id,
            kind,
            status,
            depends_on,
            inputs: _,
            attempts,
            max_attempts,
            enqueued_by,
            depth,
            created_at,
            started_at,
            finished_at,
            error,
            not_before,
            handoff,
            blocked_by,
            dedup,
        } = self.task;
        let mut task = serializer.serialize_struct("Task", 17)?;
        task.serialize_field("id", id)?;
        task.serialize_field("kind", kind)?;
        task.serialize_field("status", status)?;
        task.serialize_field("depends_on", depends_on)?;
        task.serialize_field("inputs", &self.inputs)?;
        task.serialize_field("attempts", attempts)?;
        task.serialize_field("max_attempts", max_attempts)?;
        task.serialize_field("enqueued_by", enqueued_by)?;
        task.serialize_field("depth", depth)?;
        task.serialize_field("created_at", created_at)?;
        task.serialize_field("started_at", started_at)?;
        task.serialize_field("finished_at", finished_at)?;
        task.serialize_field("error", error)?;
        task.serialize_field("not_before", not_before)?;
        task.serialize_field("handoff", handoff)?;
        task.serialize_field("blocked_by", blocked_by)?;
        task.serialize_field("dedup", dedup)?;
        task.end()
    }
}
