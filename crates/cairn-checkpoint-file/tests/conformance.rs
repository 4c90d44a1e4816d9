//! The whole conformance suite against the file adapter, under each durability, over a file
//! layer without positioned writes (no preallocation), and against the fault wrapper around
//! it.

mod common;
use common as harness;

mod sync {
    cairn_checkpoint::conformance_tests!(super::harness::FileHarness::new());
}

mod group {
    cairn_checkpoint::conformance_tests!(super::harness::FileHarness::with(
        cairn_checkpoint::Durability::Group {
            max_delay: std::time::Duration::from_micros(100)
        }
    ));
}

mod no_sync {
    cairn_checkpoint::conformance_tests!(super::harness::FileHarness::with(
        cairn_checkpoint::Durability::None
    ));
}

mod appending {
    cairn_checkpoint::conformance_tests!(super::harness::FileHarness::appending());
}

mod faulty {
    cairn_checkpoint::conformance_tests!(cairn_checkpoint::conformance::FaultyHarness(
        super::harness::FileHarness::new()
    ));
}

/// An event above the largest record the journal reads back is refused, not acknowledged:
/// with compaction out of the way (as after a crash before it finished), the event stays in
/// the journal, where `load` and `open` took it for damage. Not in `conformance_tests!` (it
/// moves hundreds of megabytes), so it runs here once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_events_read_back_or_are_refused_without_compaction() {
    use cairn_checkpoint::conformance::{self, CaseResult};
    let h = harness::FileHarness::never_compacting();
    assert_eq!(
        conformance::huge_events_read_back_or_are_refused(&h).await,
        CaseResult::Passed
    );
}

/// The file adapter supports every damage hook, so no case may be skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_case_is_skipped_for_files() {
    use cairn_checkpoint::conformance::{self, CaseResult};
    let h = harness::FileHarness::new();
    assert_eq!(conformance::torn_tail(&h).await, CaseResult::Passed);
    let h = harness::FileHarness::new();
    assert_eq!(
        conformance::corruption_in_the_middle(&h).await,
        CaseResult::Passed
    );
    let h = harness::FileHarness::new();
    assert_eq!(conformance::version_mismatch(&h).await, CaseResult::Passed);
    let h = harness::FileHarness::new();
    assert_eq!(conformance::foreign_run(&h).await, CaseResult::Passed);
    let h = harness::FileHarness::new();
    assert_eq!(
        conformance::peek_live_reads_beside_the_writer(&h).await,
        CaseResult::Passed
    );
    // Its `peek` writes nothing, so both peek cases pass rather than skip.
    let h = harness::FileHarness::new();
    assert_eq!(
        conformance::peek_leaves_a_torn_tail_for_open(&h).await,
        CaseResult::Passed
    );
    let h = harness::FileHarness::new();
    assert_eq!(
        conformance::peek_leaves_bad_metadata_for_open(&h).await,
        CaseResult::Passed
    );
}

/// The fault wrapper forwards the live read: left to the default it would answer `Locked`,
/// and `cairn show` would lose its live task table under the wrapper.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_wrapper_reads_beside_the_writer() {
    use cairn_checkpoint::conformance::{self, CaseResult, FaultyHarness};
    let h = FaultyHarness(harness::FileHarness::new());
    assert_eq!(
        conformance::peek_live_reads_beside_the_writer(&h).await,
        CaseResult::Passed
    );
}
