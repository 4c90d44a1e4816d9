//! The file adapter's `remove_terminal` around its crash window: the run folder is renamed
//! to a hidden removal name (the removal itself), `runs/` is synced, then the files are
//! deleted. A leftover hidden folder (a crash, or a failed delete, after the rename) is not
//! listed, blocks nothing, and is deleted by the next removal or factory build. A failed
//! rename leaves the run whole.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_checkpoint::conformance::sample_events;
use cairn_checkpoint::{CheckpointerFactory, Durability, Error, RunFilter, RunId, RunStatus};
use common::{FileHarness, IoPlan, meta};

fn id(text: &str) -> RunId {
    RunId::new(text).unwrap()
}

/// Begins `name` with two events and completes it.
async fn completed(factory: &dyn CheckpointerFactory, name: &str) {
    let run = factory.begin(meta(name)).await.unwrap();
    run.append(&sample_events(0, 2)).await.unwrap();
    run.complete().await.unwrap();
}

/// The hidden removal folders in `runs/`.
fn leftovers(root: &Path) -> Vec<PathBuf> {
    common::in_runs_starting_with(root, ".remove-")
}

async fn listed(factory: &dyn CheckpointerFactory) -> Vec<String> {
    factory
        .list(&RunFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|meta| meta.run_id.to_string())
        .collect()
}

#[tokio::test]
async fn a_leftover_removal_folder_is_not_listed_blocks_nothing_and_goes_with_the_next_removal() {
    let harness = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let factory = harness.failing_factory(&plan, Durability::Sync);
    for name in ["gone", "next", "other"] {
        completed(&factory, name).await;
    }

    // The delete after the rename fails (its own and the sweep's), as a crash right after
    // the rename would leave things: the run is removed, its files are still on disk.
    plan.fail("remove_dir_all", "", 1);
    plan.fail("remove_dir_all", "", 1);
    let removed = factory.remove_terminal(&id("gone")).await.unwrap();
    assert_eq!(removed.status, RunStatus::Completed);
    let left = leftovers(harness.root());
    assert_eq!(left.len(), 1, "one hidden folder is left: {left:?}");
    assert!(
        left[0].join("meta.json").exists() && left[0].join("journal").exists(),
        "the leftover holds the removed run's files"
    );
    assert!(!harness.run_dir(&id("gone")).exists());

    // Not listed, not found, and it blocks nothing: other runs open, the id is free again.
    assert_eq!(listed(&factory).await, ["next", "other"]);
    assert_eq!(factory.load_meta(&id("gone")).await.unwrap(), None);
    assert!(factory.open(&id("gone")).await.unwrap().is_none());
    assert!(!factory.is_held(&id("gone")).await.unwrap());
    let opened = factory.open(&id("other")).await.unwrap().unwrap();
    assert_eq!(opened.recovered.events, sample_events(0, 2));
    drop(opened);
    let reborn = factory.begin(meta("gone")).await.unwrap();
    reborn.append(&sample_events(5, 6)).await.unwrap();
    drop(reborn);
    let opened = factory.open(&id("gone")).await.unwrap().unwrap();
    assert_eq!(opened.recovered.events, sample_events(5, 6));
    assert_eq!(opened.recovered.meta.status, RunStatus::Running);
    drop(opened);
    assert_eq!(
        leftovers(harness.root()),
        left,
        "begin left the leftover alone"
    );

    // The next removal deletes its own folder and the leftover.
    factory.remove_terminal(&id("next")).await.unwrap();
    assert!(
        leftovers(harness.root()).is_empty(),
        "{:?}",
        leftovers(harness.root())
    );
    assert_eq!(listed(&factory).await, ["gone", "other"]);
}

#[tokio::test]
async fn a_factory_build_deletes_a_folder_a_crash_left_mid_removal() {
    let harness = FileHarness::new();
    let factory = harness.file_factory();
    completed(&factory, "crashed").await;
    completed(&factory, "kept").await;
    // What a crash between the rename (synced) and the delete leaves.
    let hidden = harness.root().join("runs").join(".remove-crashed-4242-0");
    std::fs::rename(harness.run_dir(&id("crashed")), &hidden).unwrap();
    assert_eq!(listed(&factory).await, ["kept"]);

    let restarted = harness.file_factory();
    assert!(!hidden.exists(), "the build finished the removal");
    assert_eq!(listed(&restarted).await, ["kept"]);
    let opened = restarted.open(&id("kept")).await.unwrap().unwrap();
    assert_eq!(opened.recovered.events, sample_events(0, 2));
}

#[tokio::test]
async fn only_removal_folders_are_swept() {
    let harness = FileHarness::new();
    let factory = harness.file_factory();
    completed(&factory, "done").await;
    // A begin's staging folder and a stray hidden folder are not removals: kept.
    let staging = harness.root().join("runs").join(".begin-x-1-0");
    let stray = harness.root().join("runs").join(".someone-elses");
    for dir in [&staging, &stray] {
        std::fs::create_dir(dir).unwrap();
        std::fs::write(dir.join("note"), b"keep me").unwrap();
    }
    factory.remove_terminal(&id("done")).await.unwrap();
    drop(harness.file_factory());
    for dir in [&staging, &stray] {
        assert_eq!(std::fs::read(dir.join("note")).unwrap(), b"keep me");
    }
}

#[tokio::test]
async fn a_failed_rename_leaves_the_run_whole() {
    let harness = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let factory = harness.failing_factory(&plan, Durability::Sync);
    completed(&factory, "stays").await;
    let before = factory.load_meta(&id("stays")).await.unwrap();
    plan.fail("rename", "runs/stays", 1);
    let err = factory.remove_terminal(&id("stays")).await.unwrap_err();
    assert!(matches!(err, Error::Io { op: "rename", .. }), "{err:?}");
    assert!(leftovers(harness.root()).is_empty());
    assert_eq!(factory.load_meta(&id("stays")).await.unwrap(), before);
    let opened = factory.open(&id("stays")).await.unwrap().unwrap();
    assert_eq!(opened.recovered.events, sample_events(0, 2));
    drop(opened);
    // Nothing is left held: the removal goes through once the rename works.
    factory.remove_terminal(&id("stays")).await.unwrap();
    assert!(factory.load_meta(&id("stays")).await.unwrap().is_none());
}

#[tokio::test]
async fn a_removal_syncs_the_runs_folder_after_the_rename() {
    let harness = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let factory = harness.failing_factory(&plan, Durability::Sync);
    completed(&factory, "synced").await;
    let syncs = plan.calls("sync_dir", "/runs");
    let renames = plan.calls("rename", "runs/synced");
    factory.remove_terminal(&id("synced")).await.unwrap();
    assert_eq!(
        plan.calls("rename", "runs/synced"),
        renames + 1,
        "one rename"
    );
    assert_eq!(
        plan.calls("sync_dir", "/runs"),
        syncs + 1,
        "one sync of runs/"
    );

    // A failed sync of runs/ is not acknowledged (the rename may not be durable).
    completed(&factory, "unsynced").await;
    plan.fail("sync_dir", "/runs", 1);
    let err = factory.remove_terminal(&id("unsynced")).await.unwrap_err();
    assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
}

/// An `open` that opened the lock file of a run just before the run was removed, and a new
/// run was begun under the same id, takes the lock of a file that is gone: it must not
/// then read and write the new run beside that run's own writer. Here the opener is held
/// between opening `lock` and locking it while the old run is removed and the new one
/// begun. Before the fix the open returned a second writer of the new run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_that_locked_a_removed_runs_lock_file_does_not_become_a_second_writer() {
    let harness = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let held_factory = harness.failing_factory(&plan, Durability::Sync);
    let factory = harness.file_factory();
    completed(&factory, "again").await;

    plan.hold("try_lock", "runs/again/lock");
    let opening = {
        let held_factory = held_factory.clone();
        tokio::spawn(async move { held_factory.open(&id("again")).await })
    };
    for _ in 0..12_000 {
        if plan.waiting() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(plan.waiting(), 1, "the open is held at its lock");
    factory.remove_terminal(&id("again")).await.unwrap();
    let writer = factory.begin(meta("again")).await.unwrap();
    writer.append(&sample_events(0, 1)).await.unwrap();
    plan.release();

    let opened = opening.await.unwrap();
    assert!(
        matches!(opened, Err(Error::Locked { .. })),
        "the new run's writer holds it: {:?}",
        opened.map(|found| found.map(|opened| opened.recovered.events))
    );
    drop(writer);
}

/// Holds `held`'s next lock of `runs/again/meta.lock` (the completed run `again`'s), which
/// `start` begins; then removes that run, begins a new one under the same id (its writer
/// dropped), and locks the new run's `meta.lock` as another process's swap would. Returns
/// that lock and the new run's `meta.json`, after letting the held call go on.
async fn replaced_while_held<T: Send + 'static>(
    harness: &FileHarness,
    plan: &IoPlan,
    start: impl FnOnce() -> tokio::task::JoinHandle<T>,
) -> (tokio::task::JoinHandle<T>, std::fs::File, Vec<u8>) {
    let factory = harness.file_factory();
    completed(&factory, "again").await;
    plan.hold("lock", "runs/again/meta.lock");
    let held = start();
    for _ in 0..12_000 {
        if plan.waiting() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(plan.waiting(), 1, "the call is held at meta.lock");
    factory.remove_terminal(&id("again")).await.unwrap();
    drop(factory.begin(meta("again")).await.unwrap());
    let dir = harness.root().join("runs").join("again");
    let new_lock = std::fs::File::open(dir.join("meta.lock")).unwrap();
    new_lock.lock().unwrap();
    let meta_json = std::fs::read(dir.join("meta.json")).unwrap();
    plan.release();
    // Until the held call is done, or has gone back to lock the new run's `meta.lock`.
    for _ in 0..12_000 {
        if held.is_finished() || plan.calls("lock", "runs/again/meta.lock") >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    (held, new_lock, meta_json)
}

/// A status swap that opened the `meta.lock` of a run just before the run was removed and
/// a new one begun under its id locks a file that is gone: it must not then decide on the
/// new run's `meta.json` beside a swap that holds the new run's `meta.lock` (two claims at
/// one epoch could both win). Before the fix the swap went ahead and rewrote `meta.json`
/// while the new run's `meta.lock` was held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_that_locked_a_removed_runs_meta_lock_waits_for_the_new_runs() {
    let harness = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let held_factory = harness.failing_factory(&plan, Durability::Sync);
    let (swapping, new_lock, meta_json) = replaced_while_held(&harness, &plan, || {
        tokio::spawn(async move {
            held_factory
                .compare_and_swap_status(&id("again"), RunStatus::Running, RunStatus::Paused)
                .await
        })
    })
    .await;
    let meta_path = harness.root().join("runs/again/meta.json");
    assert!(
        !swapping.is_finished(),
        "the swap decided while the new run's meta.lock was held: {:?}",
        swapping.await
    );
    assert_eq!(std::fs::read(&meta_path).unwrap(), meta_json);
    new_lock.unlock().unwrap();
    let swapped = swapping
        .await
        .unwrap()
        .unwrap()
        .expect("the new run is running");
    assert_eq!(swapped.status, RunStatus::Paused);
}

/// The same for an `open`, which takes the writer lock under `meta.lock` so that a claim
/// (deciding under `meta.lock`) sees either no writer and a `meta.json` the open has not
/// read, or the writer. Before the fix the open took the new run while the new run's
/// `meta.lock` was held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_that_locked_a_removed_runs_meta_lock_waits_for_the_new_runs() {
    let harness = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let held_factory = harness.failing_factory(&plan, Durability::Sync);
    let (opening, new_lock, _) = replaced_while_held(&harness, &plan, || {
        tokio::spawn(async move {
            held_factory
                .open(&id("again"))
                .await
                .map(|opened| opened.map(|opened| opened.recovered.meta.status))
        })
    })
    .await;
    assert!(
        !opening.is_finished(),
        "the open went ahead while the new run's meta.lock was held: {:?}",
        opening.await
    );
    new_lock.unlock().unwrap();
    let opened = opening.await.unwrap().unwrap();
    assert_eq!(opened, Some(RunStatus::Running), "the new run, opened");
}
