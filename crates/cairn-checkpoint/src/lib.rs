//! The storage port of cairn: runs, journals, snapshots, audit log and status compare-and-swap.
