//! A run writer poisoned by a failed journal fdatasync writes nothing more, not even from a
//! compaction that was already under way on its own thread: the run's folder stays byte for
//! byte as the failure left it, through the writer's drop.
//!
//! The compaction thread is held at a chosen file call (through the `Filesystem` seam) while
//! the next append's fdatasync fails, and let go only after the writer is poisoned.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_checkpoint::conformance::sample_events;
use cairn_checkpoint::{CheckpointerFactory, Durability, Error, RunId};
use cairn_checkpoint_file::FileFactory;
use common::{FailingFs, FileHarness, IoPlan, meta, promptly, run_bounded};

/// Every file in `dir` with its bytes.
fn folder(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("read the run folder")
        .map(|entry| {
            let entry = entry.expect("a folder entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(entry.path()).expect("read a run file"))
        })
        .collect()
}

/// The names of the files that differ between `before` and `after` (or are in one only).
fn changed(before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut names: Vec<String> = before.keys().chain(after.keys()).cloned().collect();
    names.sort();
    names.dedup();
    names.retain(|name| before.get(name) != after.get(name));
    names
}

/// A factory over `h`'s root whose I/O goes through `plan`, compacting once the journal
/// after the snapshot holds `records` records.
fn compacting_factory(h: &FileHarness, plan: &Arc<IoPlan>, records: u64) -> FileFactory {
    FileFactory::builder(h.root())
        .durability(Durability::Sync)
        .compact_after_records(records)
        .filesystem(Arc::new(FailingFs {
            plan: Arc::clone(plan),
            appending_only: false,
        }))
        .build()
        .expect("build the factory")
}

/// Waits until a call is held at `plan`'s gate, failing the test on a hang.
async fn held(plan: &IoPlan) {
    promptly("the compaction thread reaching the held call", async {
        while plan.waiting() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

/// Poisons `run` by failing the journal's next fdatasync, with the compaction thread held
/// at `plan`'s gate; then lets the thread go, drops the writer (which waits for it) and
/// checks that the run's folder did not change after the failure.
async fn poison_then_release(
    h: &FileHarness,
    plan: &Arc<IoPlan>,
    run: Box<dyn cairn_checkpoint::Checkpointer>,
    id: &RunId,
    next: u64,
) {
    held(plan).await;
    plan.fail("sync_data", "/journal", 1);
    let err = run
        .append(&sample_events(next, next + 1))
        .await
        .expect_err("the journal's fdatasync fails");
    assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
    let after_failure = folder(&h.run_dir(id));
    plan.release();
    drop(run);
    assert_eq!(
        changed(&after_failure, &folder(&h.run_dir(id))),
        Vec::<String>::new(),
        "the poisoned writer's compaction wrote to the run folder"
    );
}

#[test]
fn a_compaction_held_before_it_writes_writes_nothing_once_the_writer_is_poisoned() {
    run_bounded(async {
        let h = FileHarness::new();
        let id = RunId::new("r1").unwrap();
        {
            // Three records and no snapshot, so the reopened writer's compaction reads
            // `queue.json` and the journal back before it writes anything.
            let factory = FileFactory::builder(h.root())
                .durability(Durability::Sync)
                .compact_after_records(u64::MAX)
                .compact_after_bytes(u64::MAX)
                .build()
                .unwrap();
            let run = factory.begin(meta("r1")).await.unwrap();
            run.append(&sample_events(0, 3)).await.unwrap();
        }
        let plan = Arc::new(IoPlan::default());
        let factory = compacting_factory(&h, &plan, 4);
        let run = factory
            .open(&id)
            .await
            .unwrap()
            .expect("the run")
            .checkpointer;
        // The fourth record starts a compaction, whose first call is the read of the
        // (missing) `queue.json`: hold it there.
        plan.hold("read", "/queue.json");
        run.append(&sample_events(3, 4)).await.unwrap();
        poison_then_release(&h, &plan, run, &id, 4).await;
    });
}

#[test]
fn a_compaction_held_before_its_rename_installs_nothing_once_the_writer_is_poisoned() {
    run_bounded(async {
        let h = FileHarness::new();
        let id = RunId::new("r1").unwrap();
        let plan = Arc::new(IoPlan::default());
        let factory = compacting_factory(&h, &plan, 2);
        let run = factory.begin(meta("r1")).await.unwrap();
        // The second record starts a compaction; hold it at its temp file's fdatasync, after
        // the snapshot was written there and before it is renamed into place.
        plan.hold("sync_data", "/queue.json.tmp");
        run.append(&sample_events(0, 2)).await.unwrap();
        held(&plan).await;
        let journal = std::fs::read(h.journal(&id)).unwrap();
        plan.fail("sync_data", "/journal", 1);
        let err = run
            .append(&sample_events(2, 3))
            .await
            .expect_err("the journal's fdatasync fails");
        assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
        let after_failure = std::fs::read(h.journal(&id)).unwrap();
        assert_ne!(journal, after_failure, "the failed batch was written");
        plan.release();
        drop(run);
        // The temp file was already written when the writer was poisoned (as a crash there
        // would leave it, and every open ignores it), but it is never installed.
        assert!(!h.run_dir(&id).join("queue.json").exists());
        assert_eq!(std::fs::read(h.journal(&id)).unwrap(), after_failure);
    });
}
