//! The conformance suite against `MemoryFactory`, and against the fault wrapper around it.

#![cfg(feature = "conformance")]

use std::sync::Arc;

use cairn_checkpoint::conformance::{self, CaseResult, ConformanceHarness, Damage, FaultyHarness};
use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, RunId};

/// One in-memory store; every `factory()` is a clone sharing it, as a second process would.
#[derive(Debug, Default)]
struct MemoryHarness {
    store: MemoryFactory,
}

impl ConformanceHarness for MemoryHarness {
    fn factory(&self) -> Arc<dyn CheckpointerFactory> {
        Arc::new(self.store.clone())
    }

    fn plant_version_mismatch(&self, run_id: &RunId) -> Damage {
        let Some(mut meta) = self.store.stored_meta(run_id) else {
            return Damage::Unsupported(format!("run {run_id} is not stored"));
        };
        meta.format_version = 0;
        self.store.plant_meta(run_id, meta);
        Damage::Applied { offset: None }
    }

    fn plant_newer_format(&self, run_id: &RunId) -> Damage {
        let Some(mut meta) = self.store.stored_meta(run_id) else {
            return Damage::Unsupported(format!("run {run_id} is not stored"));
        };
        meta.format_version += 100;
        self.store.plant_meta(run_id, meta);
        Damage::Applied { offset: None }
    }

    fn plant_foreign_run(&self, run_id: &RunId, foreign: &RunId) -> Damage {
        let Some(mut meta) = self.store.stored_meta(run_id) else {
            return Damage::Unsupported(format!("run {run_id} is not stored"));
        };
        meta.run_id = foreign.clone();
        self.store.plant_meta(run_id, meta);
        Damage::Applied { offset: None }
    }
}

mod memory {
    cairn_checkpoint::conformance_tests!(super::MemoryHarness::default());
}

mod faulty_memory {
    cairn_checkpoint::conformance_tests!(cairn_checkpoint::conformance::FaultyHarness(
        super::MemoryHarness::default()
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_skips_exactly_the_byte_damage_cases() {
    let harness = MemoryHarness::default();
    assert!(matches!(
        conformance::torn_tail(&harness).await,
        CaseResult::Skipped(_)
    ));
    let harness = MemoryHarness::default();
    assert!(matches!(
        conformance::corruption_in_the_middle(&harness).await,
        CaseResult::Skipped(_)
    ));
    let harness = MemoryHarness::default();
    assert_eq!(
        conformance::version_mismatch(&harness).await,
        CaseResult::Passed
    );
    let harness = FaultyHarness(MemoryHarness::default());
    assert_eq!(conformance::foreign_run(&harness).await, CaseResult::Passed);
    // The memory adapter reads beside its writer, also through the fault wrapper.
    let harness = MemoryHarness::default();
    assert_eq!(
        conformance::peek_live_reads_beside_the_writer(&harness).await,
        CaseResult::Passed
    );
    let harness = FaultyHarness(MemoryHarness::default());
    assert_eq!(
        conformance::peek_live_reads_beside_the_writer(&harness).await,
        CaseResult::Passed
    );
    // Its `peek` moves no bad state aside (it has no bytes to tear, so only this peek case
    // applies).
    let harness = MemoryHarness::default();
    assert_eq!(
        conformance::peek_leaves_bad_metadata_for_open(&harness).await,
        CaseResult::Passed
    );
}

#[test]
fn the_case_list_names_every_case_once() {
    let mut names = conformance::ALL_CASES.to_vec();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), conformance::ALL_CASES.len());
    assert!(names.contains(&"injected_faults_lose_nothing_acknowledged"));
}

/// `ALL_CASES` is the macro's own list: a case added to one and not the other was missed
/// before (`deepest_values_read_back`, session 13, was expanded but not named).
#[test]
fn the_case_list_is_the_macros_list() {
    let source = include_str!("../src/conformance/mod.rs");
    let start = source.find("@cases $make;").expect("the macro's case list");
    let list = &source[start + "@cases $make;".len()..];
    let list = &list[..list.find(");").expect("the list's end")];
    let expanded: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    assert!(expanded.len() > 20, "parsed the list: {expanded:?}");
    assert_eq!(expanded, conformance::ALL_CASES);
}

/// The huge-event case is not in `conformance_tests!` (it moves hundreds of megabytes), so
/// the memory adapter and the fault wrapper around it run it here, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_reads_back_huge_events() {
    assert_eq!(
        conformance::huge_events_read_back_or_are_refused(&MemoryHarness::default()).await,
        CaseResult::Passed
    );
    let harness = FaultyHarness(MemoryHarness::default());
    assert_eq!(
        conformance::huge_events_read_back_or_are_refused(&harness).await,
        CaseResult::Passed
    );
}
