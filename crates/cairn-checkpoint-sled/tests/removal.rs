//! The sled adapter's `remove_terminal`, read at the level of its trees: every key of the
//! removed run is gone from the runs, snapshots, journal and audit trees, other runs' keys
//! are untouched, and a torn record the run once had cut stays in the cut tree (evidence of
//! bad state is never deleted).

mod support;

use cairn_checkpoint::conformance::{sample_events, sample_snapshot};
use cairn_checkpoint::{CheckpointerFactory, Durability, RunId, RunMeta};
use cairn_checkpoint_sled::layout;
use cairn_queue::Timestamp;
use support::{DbHarness, tear_last_record};

fn meta(id: &str) -> RunMeta {
    RunMeta::new(RunId::new(id).unwrap(), "wf", "scope", "in", Timestamp(1))
}

/// Every key in `tree` that belongs to `run_id` (its own key or its `run_id/` prefix).
fn keys_of(db: &sled::Db, tree: &str, run_id: &RunId) -> Vec<sled::IVec> {
    let tree = db.open_tree(tree).unwrap();
    let own = run_id.as_str().as_bytes();
    let prefix = layout::run_prefix(run_id);
    tree.iter()
        .keys()
        .map(Result::unwrap)
        .filter(|key| key.as_ref() == own || key.starts_with(&prefix))
        .collect()
}

const RUN_TREES: [&str; 4] = [
    layout::RUNS_TREE,
    layout::SNAPSHOTS_TREE,
    layout::EVENTS_TREE,
    layout::AUDIT_TREE,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_deletes_every_key_of_the_run_and_keeps_its_cut_records() {
    let harness = DbHarness::new(Durability::Sync);
    let factory = harness.sled_factory();
    for name in ["gone", "kept"] {
        let run = factory.begin(meta(name)).await.unwrap();
        run.append(&sample_events(0, 3)).await.unwrap();
        run.install_snapshot(&sample_snapshot(1)).await.unwrap();
        run.append(&sample_events(3, 6)).await.unwrap();
    }
    let gone = RunId::new("gone").unwrap();
    let kept = RunId::new("kept").unwrap();
    // A torn last record, cut (and kept in the cut tree) by the next open.
    assert!(matches!(
        tear_last_record(harness.db(), &gone),
        cairn_checkpoint::conformance::Damage::Applied { .. }
    ));
    let opened = factory.open(&gone).await.unwrap().unwrap();
    assert!(opened.recovered.torn_tail.is_some());
    opened.checkpointer.complete().await.unwrap();
    drop(opened);
    let cut = keys_of(harness.db(), layout::CUT_TREE, &gone);
    assert_eq!(cut.len(), 1, "the torn record is kept in the cut tree");
    for tree in RUN_TREES {
        assert!(!keys_of(harness.db(), tree, &gone).is_empty(), "{tree}");
    }
    let kept_before: Vec<_> = RUN_TREES
        .iter()
        .map(|tree| keys_of(harness.db(), tree, &kept))
        .collect();

    factory.remove_terminal(&gone).await.unwrap();
    for tree in RUN_TREES {
        assert_eq!(
            keys_of(harness.db(), tree, &gone),
            Vec::<sled::IVec>::new(),
            "no key of the removed run is left in {tree}"
        );
    }
    assert_eq!(
        keys_of(harness.db(), layout::CUT_TREE, &gone),
        cut,
        "the cut record stays"
    );
    let kept_after: Vec<_> = RUN_TREES
        .iter()
        .map(|tree| keys_of(harness.db(), tree, &kept))
        .collect();
    assert_eq!(
        kept_after, kept_before,
        "the other run's keys are untouched"
    );
}
