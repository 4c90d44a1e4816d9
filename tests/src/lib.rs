//! Flows that cross cairn crates live in this crate's `tests/` folder.
