//! A begin fills a hidden staging folder (`runs/.begin-*`) and renames it into place. One
//! that a failed or dead begin left is deleted by the next factory build; one a begin is
//! still filling (in this process or another) is never touched.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_checkpoint::{CheckpointerFactory, Durability, RunId};
use common::{FileHarness, IoPlan, meta};

/// Lets held calls go when dropped, so that a failing test ends instead of leaving the
/// begin held for ever.
struct Released(Arc<IoPlan>);

impl Drop for Released {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// The staging folders in `runs/`.
fn staging(root: &Path) -> Vec<PathBuf> {
    common::in_runs_starting_with(root, ".begin-")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_begins_staging_folder_goes_with_the_next_factory_build() {
    let harness = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let failing = harness.failing_factory(&plan, Durability::Sync);
    plan.fail("sync_data", "journal", 1);
    failing
        .begin(meta("left"))
        .await
        .expect_err("the journal's sync fails");
    assert_eq!(
        staging(harness.root()).len(),
        1,
        "the begin left its folder"
    );

    let factory = harness.file_factory();
    assert_eq!(
        staging(harness.root()),
        Vec::<PathBuf>::new(),
        "the build deleted it"
    );
    drop(factory.begin(meta("left")).await.unwrap());
    assert!(
        factory
            .open(&RunId::new("left").unwrap())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_begin_under_way_keeps_its_staging_folder() {
    let harness = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let held = harness.failing_factory(&plan, Durability::Sync);
    let _released = Released(Arc::clone(&plan));
    // Held with its staging folder filled halfway, its lock taken.
    plan.hold("write_all", "journal");
    let beginning = tokio::spawn(async move { held.begin(meta("busy")).await.map(drop) });
    for _ in 0..12_000 {
        if plan.waiting() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(plan.waiting(), 1, "the begin is held");
    let folders = staging(harness.root());
    assert_eq!(folders.len(), 1);

    // Another process starting now sweeps `runs/`.
    let factory = harness.file_factory();
    let kept = staging(harness.root());
    plan.release();
    assert_eq!(kept, folders, "the live begin's folder is kept");
    beginning.await.unwrap().expect("the begin completes");
    assert!(
        factory
            .open(&RunId::new("busy").unwrap())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staging_folder_whose_lock_was_never_taken_is_kept() {
    // A begin between creating its folder and taking its lock looks like this: nothing
    // tells it from one that died there, so it is left alone.
    let harness = FileHarness::new();
    drop(harness.file_factory());
    let runs = harness.root().join("runs");
    let no_lock = runs.join(".begin-a-1-0");
    let empty_lock = runs.join(".begin-b-1-1");
    std::fs::create_dir(&no_lock).unwrap();
    std::fs::create_dir(&empty_lock).unwrap();
    std::fs::write(empty_lock.join("lock"), b"").unwrap();
    drop(harness.file_factory());
    assert_eq!(staging(harness.root()), vec![no_lock, empty_lock]);
}
