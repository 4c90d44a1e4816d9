//! The serialized form of a queue's state (`queue.json`).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

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
