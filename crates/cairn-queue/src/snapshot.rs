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
