//! Values the crate's unit tests share (the tests that reach private switches of `Shared`).

use cairn_checkpoint::{RunId, RunMeta};
use cairn_queue::{Event, Timestamp};

/// The metadata of a run `id` of workflow `wf` in scope `scope`.
pub(crate) fn meta(id: &str) -> RunMeta {
    RunMeta::new(
        RunId::new(id).expect("valid id"),
        "wf",
        "scope",
        "",
        Timestamp(1),
    )
}

/// A small event, distinct for each `index`.
pub(crate) fn event(index: u32) -> Event {
    Event::PhaseStarted {
        index,
        name: format!("phase {index}"),
    }
}
