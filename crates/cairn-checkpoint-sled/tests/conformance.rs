//! The full conformance suite of `cairn-checkpoint` against the sled adapter: by path with
//! `Sync`, over a host's `sled::Db` with `Group` and with `None`, and through the fault
//! wrapper.

mod support;

use std::time::Duration;

use cairn_checkpoint::Durability;
use cairn_checkpoint::conformance::{self, CaseResult, FaultyHarness};

use support::{DbHarness, PathHarness};

fn group() -> Durability {
    Durability::Group {
        max_delay: Duration::from_millis(1),
    }
}

mod path_sync {
    cairn_checkpoint::conformance_tests!(super::PathHarness::new(
        cairn_checkpoint::Durability::Sync
    ));
}

mod db_group {
    cairn_checkpoint::conformance_tests!(super::DbHarness::new(super::group()));
}

mod db_no_flush {
    cairn_checkpoint::conformance_tests!(super::DbHarness::new(cairn_checkpoint::Durability::None));
}

mod faulty_path_sync {
    cairn_checkpoint::conformance_tests!(cairn_checkpoint::conformance::FaultyHarness(
        super::PathHarness::new(cairn_checkpoint::Durability::Sync)
    ));
}

mod faulty_db_group {
    cairn_checkpoint::conformance_tests!(cairn_checkpoint::conformance::FaultyHarness(
        super::DbHarness::new(super::group())
    ));
}

/// sled supports every damage hook, so no case may be skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_damage_case_is_skipped() {
    let h = PathHarness::new(Durability::Sync);
    assert_eq!(conformance::torn_tail(&h).await, CaseResult::Passed);
    let h = PathHarness::new(Durability::Sync);
    assert_eq!(
        conformance::corruption_in_the_middle(&h).await,
        CaseResult::Passed
    );
    let h = DbHarness::new(group());
    assert_eq!(conformance::version_mismatch(&h).await, CaseResult::Passed);
    let h = FaultyHarness(DbHarness::new(group()));
    assert_eq!(conformance::foreign_run(&h).await, CaseResult::Passed);
}

/// sled's `peek` writes nothing: it reports a torn tail without cutting it and refuses bad
/// metadata without quarantining it, so the cases that skip a writing `peek` pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peek_writes_nothing() {
    let h = PathHarness::new(Durability::Sync);
    assert_eq!(
        conformance::peek_leaves_a_torn_tail_for_open(&h).await,
        CaseResult::Passed
    );
    let h = FaultyHarness(DbHarness::new(group()));
    assert_eq!(
        conformance::peek_leaves_bad_metadata_for_open(&h).await,
        CaseResult::Passed
    );
}

/// The huge-event case is not in `conformance_tests!` (it moves hundreds of megabytes), so
/// it runs here once: an acknowledged event of more than 256 MiB reads back after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_events_read_back_or_are_refused() {
    let h = PathHarness::new(Durability::Sync);
    assert_eq!(
        conformance::huge_events_read_back_or_are_refused(&h).await,
        CaseResult::Passed
    );
}
