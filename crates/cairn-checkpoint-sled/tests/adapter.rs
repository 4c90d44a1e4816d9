//! Contracts specific to the sled adapter: where damaged state goes, the writer registry
//! shared across factories, snapshots and journal trimming, the group flush.

mod support;

use std::sync::Arc;
use std::time::Duration;

use cairn_checkpoint::conformance::{sample_event, sample_events, sample_snapshot};
use cairn_checkpoint::{
    AuditAction, Checkpointer, CheckpointerFactory, Durability, Error, RunId, RunMeta, RunStatus,
};
use cairn_checkpoint_sled::{SledFactory, layout};
use cairn_queue::{Event, Timestamp};

use support::{DbHarness, PathHarness, journal};

fn run(text: &str) -> RunId {
    RunId::new(text).expect("valid run id")
}

fn meta(text: &str) -> RunMeta {
    RunMeta::new(run(text), "wf", "scope", "input", Timestamp(1))
}

fn tree(db: &sled::Db, name: &str) -> sled::Tree {
    db.open_tree(name).expect("open tree")
}

async fn begin_with(factory: &SledFactory, id: &str, events: u64) {
    let writer = factory.begin(meta(id)).await.expect("begin");
    writer
        .append(&sample_events(0, events))
        .await
        .expect("append");
}

#[test]
fn a_builder_without_a_location_is_refused() {
    let err = SledFactory::builder().build().expect_err("no path, no db");
    assert!(matches!(err, cairn_checkpoint_sled::Error::NoLocation));
    let port: Error = err.into();
    assert!(matches!(
        port,
        Error::Backend {
            backend: "sled",
            ..
        }
    ));
}

#[test]
fn a_host_database_with_a_folder_that_is_not_its_own_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("host.sled");
    let db = sled::open(&folder).expect("sled opens");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let err = SledFactory::builder()
        .db(db.clone(), &elsewhere)
        .build()
        .expect_err("no sled files there");
    assert!(
        matches!(&err, cairn_checkpoint_sled::Error::NotOpenDatabase { path, .. } if *path == elsewhere),
        "{err:?}"
    );
    assert!(err.to_string().contains("pass the folder"), "{err}");
    let err = cairn_checkpoint_sled::SledJobStore::from_db(db.clone(), &elsewhere)
        .expect_err("the job store checks the folder too");
    assert!(
        matches!(err, cairn_checkpoint_sled::Error::NotOpenDatabase { .. }),
        "{err:?}"
    );
    SledFactory::builder()
        .db(db, &folder)
        .build()
        .expect("the folder the host opened");
}

#[test]
fn a_host_database_with_the_folder_of_another_open_database_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("host.sled");
    let other_folder = dir.path().join("other.sled");
    let db = sled::open(&folder).expect("sled opens");
    // Open and locked, so it looks like the host's database from the outside; cairn would
    // fsync its files and acknowledge writes of `db` that no fsync covered.
    let other = sled::open(&other_folder).expect("sled opens the other database");
    let err = SledFactory::builder()
        .db(db.clone(), &other_folder)
        .build()
        .expect_err("the folder of another database");
    assert!(
        matches!(&err, cairn_checkpoint_sled::Error::NotOpenDatabase { path, .. } if *path == other_folder),
        "{err:?}"
    );
    let err = cairn_checkpoint_sled::SledJobStore::from_db(db.clone(), &other_folder)
        .expect_err("the job store checks the folder too");
    assert!(
        matches!(err, cairn_checkpoint_sled::Error::NotOpenDatabase { .. }),
        "{err:?}"
    );
    // Each database with its own folder is accepted, and the check leaves nothing behind
    // in the trees.
    SledFactory::builder()
        .db(other.clone(), &other_folder)
        .build()
        .expect("the other database's own folder");
    let factory = SledFactory::builder()
        .db(db.clone(), &folder)
        .build()
        .expect("the folder the host opened");
    let session = db
        .open_tree(cairn_checkpoint_sled::layout::SESSION_TREE)
        .expect("the session tree");
    assert_eq!(session.len(), 1, "only the session token stays");
    drop(factory);
}

/// Puts a plain file where sled keeps its blob folder, so the fsync after the next flush
/// cannot list it (sled itself only touches that folder for values over 128 KiB).
fn block_blob_folder(path: &std::path::Path) {
    let blobs = path.join("blobs");
    std::fs::rename(&blobs, path.join("blobs.aside")).expect("move the blob folder");
    std::fs::write(&blobs, b"not a folder").expect("a file in its place");
}

async fn an_acknowledgement_waits_for_the_fsync_of_sleds_files(durability: Durability) {
    let h = PathHarness::new(durability);
    let factory = h.sled_factory();
    let writer = factory.begin(meta("synced")).await.expect("begin");
    writer.append(&[sample_event(0)]).await.expect("healthy");
    block_blob_folder(&h.path());
    let err = writer
        .append(&[sample_event(1)])
        .await
        .expect_err("the fsync after sled's flush failed");
    assert!(matches!(err, Error::SyncFailed { .. }), "{err:?}");
    let err = writer
        .append(&[sample_event(2)])
        .await
        .expect_err("never retried");
    assert!(matches!(err, Error::Poisoned { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_acknowledgement_waits_for_the_fsync_of_sleds_files() {
    an_acknowledgement_waits_for_the_fsync_of_sleds_files(Durability::Sync).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_acknowledgement_waits_for_the_fsync_of_sleds_files() {
    an_acknowledgement_waits_for_the_fsync_of_sleds_files(Durability::Group {
        max_delay: Duration::from_millis(1),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unflushed_acknowledgement_does_not_touch_sleds_files() {
    let h = PathHarness::new(Durability::None);
    let factory = h.sled_factory();
    let writer = factory.begin(meta("unsynced")).await.expect("begin");
    block_blob_folder(&h.path());
    writer
        .append(&[sample_event(0)])
        .await
        .expect("Durability::None never flushes, so never syncs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factories_by_path_and_by_handle_share_one_writer_registry() {
    let h = PathHarness::new(Durability::Sync);
    let by_path = h.sled_factory();
    let by_handle = SledFactory::builder()
        .db(by_path.db().clone(), h.path())
        .build()
        .expect("build over the same handle");
    let writer = by_path.begin(meta("shared")).await.expect("begin");
    let err = by_handle
        .open(&run("shared"))
        .await
        .expect_err("the path factory's writer holds the run");
    match err {
        Error::Locked { run_id, holder } => {
            assert_eq!(run_id, run("shared"));
            assert!(holder.contains(&std::process::id().to_string()), "{holder}");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(by_handle.is_held(&run("shared")).await.expect("is_held"));
    drop(writer);
    assert!(!by_path.is_held(&run("shared")).await.expect("is_held"));
    assert!(
        by_handle
            .open(&run("shared"))
            .await
            .expect("open")
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_closing_and_reopening_the_database() {
    let h = PathHarness::new(Durability::None);
    {
        let factory = h.sled_factory();
        begin_with(&factory, "closed", 3).await;
        factory
            .compare_and_swap_status(&run("closed"), RunStatus::Running, RunStatus::Paused)
            .await
            .expect("cas")
            .expect("running → paused");
    }
    // Every handle is gone, so sled itself must be able to open the files again.
    let reopened = sled::open(h.path()).expect("no handle is left open");
    drop(reopened);
    let factory = h.sled_factory();
    let opened = factory
        .open(&run("closed"))
        .await
        .expect("open")
        .expect("run exists");
    assert_eq!(opened.recovered.events, sample_events(0, 3));
    assert_eq!(
        opened.recovered.meta.status,
        RunStatus::Paused,
        "open keeps the status"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_record_is_kept_in_the_cut_tree_byte_for_byte() {
    let h = DbHarness::new(Durability::Sync);
    let factory = h.sled_factory();
    begin_with(&factory, "torn", 3).await;
    support::tear_last_record(h.db(), &run("torn"));
    let (_, torn_bytes) = journal(h.db(), &run("torn")).pop().expect("a last record");
    let opened = factory
        .open(&run("torn"))
        .await
        .expect("open")
        .expect("run exists");
    let tail = opened.recovered.torn_tail.expect("a cut");
    assert_eq!(tail.offset, 2, "the torn record's sequence");
    assert_eq!(tail.bytes, torn_bytes.len() as u64);
    let kept: Vec<sled::IVec> = tree(h.db(), layout::CUT_TREE)
        .scan_prefix(layout::run_prefix(&run("torn")))
        .values()
        .collect::<sled::Result<_>>()
        .expect("scan cut tree");
    assert_eq!(kept, vec![torn_bytes], "cut, not deleted");
    assert_eq!(journal(h.db(), &run("torn")).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_middle_record_is_corruption_naming_it() {
    let h = DbHarness::new(Durability::Sync);
    let factory = h.sled_factory();
    begin_with(&factory, "gap", 4).await;
    tree(h.db(), layout::EVENTS_TREE)
        .remove(layout::seq_key(&run("gap"), 1))
        .expect("remove record 1");
    let err = factory.open(&run("gap")).await.expect_err("a gap");
    assert!(
        matches!(&err, Error::Corruption { offset: 1, file, .. } if file == layout::EVENTS_TREE),
        "{err:?}"
    );
    assert!(
        !factory.is_held(&run("gap")).await.expect("is_held"),
        "a failed open holds nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_stored_under_the_wrong_sequence_is_corruption() {
    let h = DbHarness::new(Durability::Sync);
    let factory = h.sled_factory();
    begin_with(&factory, "moved", 4).await;
    let events = tree(h.db(), layout::EVENTS_TREE);
    let first = events
        .get(layout::seq_key(&run("moved"), 0))
        .expect("get")
        .expect("record 0");
    // A valid frame, but it says it is record 0.
    events
        .insert(layout::seq_key(&run("moved"), 1), first)
        .expect("plant");
    let err = factory.open(&run("moved")).await.expect_err("misplaced");
    assert!(
        matches!(err, Error::Corruption { offset: 1, .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checksummed_last_record_that_is_no_event_is_corruption_never_cut() {
    // Two last records that passed their checksum, so neither is a torn write: one that does
    // not decode as an event, and one that names another sequence. Cutting either would drop
    // a record that was stored whole.
    let h = DbHarness::new(Durability::Sync);
    let factory = h.sled_factory();
    begin_with(&factory, "whole", 3).await;
    begin_with(&factory, "elsewhere", 3).await;
    let events = tree(h.db(), layout::EVENTS_TREE);
    let planted = [
        (
            "whole",
            layout::seal_with_seq(2, br#"{"type":"enqueued","id":"#),
        ),
        (
            "elsewhere",
            layout::seal_with_seq(0, br#"{"not":"an event"}"#),
        ),
    ];
    for (id, frame) in &planted {
        events
            .insert(layout::seq_key(&run(id), 2), frame.clone())
            .expect("plant");
    }
    for (id, frame) in &planted {
        for _ in 0..2 {
            let err = factory.open(&run(id)).await.expect_err("not a torn tail");
            assert!(
                matches!(&err, Error::Corruption { offset: 2, file, .. } if file == layout::EVENTS_TREE),
                "{id}: {err:?}"
            );
        }
        let after = journal(h.db(), &run(id));
        assert_eq!(after.len(), 3, "{id}: nothing was cut");
        assert_eq!(after[2].1.as_ref(), frame.as_slice());
    }
    assert!(tree(h.db(), layout::CUT_TREE).is_empty(), "nothing was cut");
}

/// Stores `sample_snapshot(1)` for `id` as covering every record before `base`.
fn plant_snapshot(db: &sled::Db, id: &str, base: u64) {
    let json = serde_json::to_vec(&sample_snapshot(1)).expect("encode");
    tree(db, layout::SNAPSHOTS_TREE)
        .insert(id, layout::seal_with_seq(base, &json))
        .expect("plant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_base_at_the_end_of_the_sequences_never_wraps_or_panics() {
    // A checksummed snapshot whose base leaves one sequence number: the append that needs
    // a second is refused instead of wrapping to 0 (below the base, so skipped by every
    // open: an acknowledged record lost) or overflowing.
    let h = DbHarness::new(Durability::Sync);
    let factory = h.sled_factory();
    drop(factory.begin(meta("edge")).await.expect("begin"));
    plant_snapshot(h.db(), "edge", u64::MAX - 1);
    let opened = factory
        .open(&run("edge"))
        .await
        .expect("open")
        .expect("run exists");
    let writer = opened.checkpointer;
    writer
        .append(&sample_events(0, 1))
        .await
        .expect("the last sequence");
    let err = writer
        .append(&sample_events(1, 2))
        .await
        .expect_err("no sequence left");
    assert!(
        matches!(&err, Error::Corruption { offset, file, .. } if *offset == u64::MAX && file == layout::EVENTS_TREE),
        "{err:?}"
    );
    drop(writer);
    let opened = factory
        .open(&run("edge"))
        .await
        .expect("open")
        .expect("run exists");
    assert_eq!(opened.recovered.events, sample_events(0, 1));
    drop(opened);

    // A base at the very end with a record stored there leaves no next sequence at all.
    let journal_tree = tree(h.db(), layout::EVENTS_TREE);
    let (_, last) = journal(h.db(), &run("edge")).pop().expect("a record");
    let json = &layout::unseal(&last).expect("intact")[layout::SEQ_LEN..];
    journal_tree
        .insert(
            layout::seq_key(&run("edge"), u64::MAX),
            layout::seal_with_seq(u64::MAX, json),
        )
        .expect("plant");
    plant_snapshot(h.db(), "edge", u64::MAX);
    let err = factory
        .open(&run("edge"))
        .await
        .expect_err("no next sequence");
    assert!(
        matches!(&err, Error::Corruption { file, .. } if file == layout::SNAPSHOTS_TREE),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_journal_key_after_a_snapshot_at_the_end_is_corruption_not_a_panic() {
    // A checksummed snapshot based at the last sequence, the record stored there, and a key
    // one byte too long after it: the scan reports the bad key instead of overflowing while
    // it names the sequence it expected.
    let h = DbHarness::new(Durability::Sync);
    let factory = h.sled_factory();
    begin_with(&factory, "edge", 1).await;
    let (_, first) = journal(h.db(), &run("edge")).pop().expect("a record");
    let json = &layout::unseal(&first).expect("intact")[layout::SEQ_LEN..];
    let journal_tree = tree(h.db(), layout::EVENTS_TREE);
    journal_tree
        .insert(
            layout::seq_key(&run("edge"), u64::MAX),
            layout::seal_with_seq(u64::MAX, json),
        )
        .expect("plant");
    let mut long_key = layout::seq_key(&run("edge"), u64::MAX);
    long_key.push(0);
    journal_tree
        .insert(long_key, layout::seal_with_seq(u64::MAX, json))
        .expect("plant");
    plant_snapshot(h.db(), "edge", u64::MAX);
    for outcome in [
        factory.peek(&run("edge")).await.map(|_| ()),
        factory.open(&run("edge")).await.map(|_| ()),
    ] {
        let err = outcome.expect_err("a malformed key");
        assert!(
            matches!(&err, Error::Corruption { run_id, file, .. } if run_id == &run("edge") && file == layout::EVENTS_TREE),
            "{err:?}"
        );
    }
    assert_eq!(
        journal(h.db(), &run("edge")).len(),
        3,
        "nothing was removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_trims_the_journal_only_below_its_base() {
    let h = DbHarness::new(Durability::Sync);
    let factory = h.sled_factory();
    let writer = factory.begin(meta("snap")).await.expect("begin");
    writer.append(&sample_events(0, 5)).await.expect("append");
    writer
        .install_snapshot(&sample_snapshot(1))
        .await
        .expect("snapshot");
    writer.append(&sample_events(5, 7)).await.expect("append");
    let prefix = layout::run_prefix(&run("snap")).len();
    let seqs: Vec<u64> = journal(h.db(), &run("snap"))
        .iter()
        .map(|(key, _)| layout::seq_of_key(prefix, key).expect("journal key"))
        .collect();
    assert_eq!(seqs, [5, 6], "records covered by the snapshot are gone");
    drop(writer);

    // A crash between the snapshot and the trim leaves covered records behind; they are
    // ignored, not replayed twice.
    let stale = cairn_checkpoint_sled::layout::seal_with_seq(
        2,
        &serde_json::to_vec(&sample_event(2)).expect("encode"),
    );
    tree(h.db(), layout::EVENTS_TREE)
        .insert(layout::seq_key(&run("snap"), 2), stale)
        .expect("plant a stale record");
    let opened = factory
        .open(&run("snap"))
        .await
        .expect("open")
        .expect("run exists");
    assert_eq!(opened.recovered.snapshot, Some(sample_snapshot(1)));
    assert_eq!(opened.recovered.events, sample_events(5, 7));
    opened
        .checkpointer
        .install_snapshot(&sample_snapshot(2))
        .await
        .expect("second snapshot");
    assert!(
        journal(h.db(), &run("snap")).is_empty(),
        "the next snapshot trims leftovers too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unparseable_metadata_is_quarantined_as_unreadable() {
    let h = DbHarness::new(Durability::Sync);
    let factory = h.sled_factory();
    begin_with(&factory, "garbage", 2).await;
    tree(h.db(), layout::RUNS_TREE)
        .insert("garbage", &b"\x00\x01not a frame"[..])
        .expect("plant garbage");
    assert!(
        factory
            .list(&Default::default())
            .await
            .expect("list")
            .is_empty(),
        "damaged runs are not listed"
    );
    // `list` met the damage and moved it aside, so the run is gone from the live trees.
    assert!(
        factory
            .open(&run("garbage"))
            .await
            .expect("open after the quarantine")
            .is_none()
    );
    let kept: Vec<(sled::IVec, sled::IVec)> = tree(h.db(), layout::QUARANTINE_TREE)
        .scan_prefix("garbage/")
        .collect::<sled::Result<_>>()
        .expect("scan quarantine");
    assert_eq!(
        kept.len(),
        3,
        "metadata and both records are kept: {kept:?}"
    );
    assert!(
        kept.iter()
            .any(|(_, v)| v.as_ref() == b"\x00\x01not a frame")
    );
    assert!(journal(h.db(), &run("garbage")).is_empty());
    let audit = factory.read_audit(&run("garbage")).await.expect("audit");
    assert!(audit.iter().any(|r| r.action == AuditAction::Quarantined));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_is_quarantined_and_a_newer_one_left_in_place() {
    let h = DbHarness::new(Durability::Sync);
    let factory = h.sled_factory();
    for id in ["bad-snap", "new-snap"] {
        let writer = factory.begin(meta(id)).await.expect("begin");
        writer.append(&sample_events(0, 2)).await.expect("append");
        writer
            .install_snapshot(&sample_snapshot(1))
            .await
            .expect("snapshot");
    }
    let snapshots = tree(h.db(), layout::SNAPSHOTS_TREE);
    let mut frame = snapshots
        .get("bad-snap")
        .expect("get")
        .expect("snapshot")
        .to_vec();
    frame[10] ^= 0xff;
    snapshots.insert("bad-snap", frame).expect("damage");
    let mut newer = sample_snapshot(1);
    newer.format_version += 1;
    snapshots
        .insert(
            "new-snap",
            layout::seal_with_seq(2, &serde_json::to_vec(&newer).expect("encode")),
        )
        .expect("plant");

    let err = factory.open(&run("bad-snap")).await.expect_err("damaged");
    assert!(matches!(err, Error::Unreadable { .. }), "{err:?}");
    assert!(
        factory
            .load_meta(&run("bad-snap"))
            .await
            .expect("load_meta")
            .is_none(),
        "the damaged run was moved aside"
    );
    // A newer build's snapshot is not damage: refused every time, and left where it is.
    for _ in 0..2 {
        let err = factory.open(&run("new-snap")).await.expect_err("newer");
        assert!(matches!(err, Error::NewerFormat { .. }), "{err:?}");
        assert!(!err.is_bad_state(), "{err:?}");
    }
    assert!(
        factory
            .load_meta(&run("new-snap"))
            .await
            .expect("load_meta")
            .is_some(),
        "the newer run stays"
    );
    for id in ["bad-snap", "new-snap"] {
        assert!(!factory.is_held(&run(id)).await.expect("is_held"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_builds_event_is_refused_never_cut_as_a_torn_tail() {
    // The last record is whole and checksummed but of a type this build does not know: a
    // newer build wrote it. Cutting it as torn would lose an acknowledged transition.
    let h = DbHarness::new(Durability::Sync);
    let factory = h.sled_factory();
    let writer = factory.begin(meta("later")).await.expect("begin");
    writer.append(&sample_events(0, 3)).await.expect("append");
    drop(writer);
    let records = journal(h.db(), &run("later"));
    let (key, _) = records.last().expect("a record").clone();
    let seq = layout::seq_of_key(layout::run_prefix(&run("later")).len(), &key).expect("seq");
    let newer = layout::seal_with_seq(seq, br#"{"type":"paused_by_operator","id":0,"at":5}"#);
    tree(h.db(), layout::EVENTS_TREE)
        .insert(&key, newer.clone())
        .expect("plant");
    for _ in 0..2 {
        let err = factory.open(&run("later")).await.expect_err("newer");
        assert!(
            matches!(&err, Error::NewerFormat { detail, .. } if detail.contains("`paused_by_operator`")),
            "{err:?}"
        );
    }
    let after = journal(h.db(), &run("later"));
    assert_eq!(after.len(), records.len(), "no record was cut");
    assert_eq!(after.last().expect("a record").1.as_ref(), newer.as_slice());
    assert!(factory.list_quarantined().await.expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_of_a_held_run_is_locked() {
    let h = DbHarness::new(Durability::Sync);
    let factory = h.sled_factory();
    let writer = factory.begin(meta("held")).await.expect("begin");
    let err = factory
        .quarantine(&run("held"), "test")
        .await
        .expect_err("held");
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    drop(writer);
    factory
        .quarantine(&run("held"), "test")
        .await
        .expect("quarantine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_runs_refuse_every_status_swap() {
    let h = DbHarness::new(Durability::Sync);
    let factory = h.sled_factory();
    let writer = factory.begin(meta("over")).await.expect("begin");
    let completed = writer.complete().await.expect("complete");
    let err = factory
        .compare_and_swap_status(&run("over"), RunStatus::Completed, RunStatus::Running)
        .await
        .expect_err("completed never changes");
    assert!(
        matches!(
            err,
            Error::Terminal {
                status: RunStatus::Completed,
                ..
            }
        ),
        "{err:?}"
    );
    let stored = factory
        .load_meta(&run("over"))
        .await
        .expect("load")
        .expect("run");
    assert_eq!(stored, completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_group_appends_are_all_kept_in_order() {
    let h = DbHarness::new(Durability::Group {
        max_delay: Duration::from_millis(2),
    });
    let factory = h.sled_factory();
    let writers: Vec<Arc<Box<dyn Checkpointer>>> = begin_writers(&factory, 4).await;
    let mut tasks = Vec::new();
    for writer in &writers {
        for n in 0..25u64 {
            let writer = Arc::clone(writer);
            tasks.push(tokio::spawn(async move {
                writer.append(&[sample_event(n)]).await
            }));
        }
    }
    for task in tasks {
        task.await.expect("task").expect("append");
    }
    for writer in &writers {
        let loaded = writer.load().await.expect("load");
        assert_eq!(loaded.events.len(), 25, "{}", writer.run_id());
        let mut seen: Vec<Event> = loaded.events.clone();
        seen.sort_by_key(|e| e.task_id());
        assert_eq!(seen, sample_events(0, 25), "every append landed once");
    }
}

async fn begin_writers(factory: &SledFactory, n: usize) -> Vec<Arc<Box<dyn Checkpointer>>> {
    let mut writers = Vec::new();
    for i in 0..n {
        let writer = factory
            .begin(meta(&format!("group-{i}")))
            .await
            .expect("begin");
        writers.push(Arc::new(writer));
    }
    writers
}

/// A `max_delay` no test outlives: a leader that waited it out would hang the test, and the
/// hang guard below turns that into a failure.
const AN_HOUR: Duration = Duration::from_secs(3600);

/// How long a test may take before it is deemed hung. A guard only: a few flushes take
/// milliseconds, so this bounds a wait for company that should never have started.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Polls `future` once, with the calling task's waker. `None` if it is still pending.
async fn poll_once<F: std::future::Future + Unpin>(future: &mut F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(
            match std::future::Future::poll(std::pin::Pin::new(&mut *future), cx) {
                std::task::Poll::Ready(output) => Some(output),
                std::task::Poll::Pending => None,
            },
        )
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_group_writer_is_not_held_for_max_delay() {
    // Review 52 F7: a leader slept max_delay before every flush, so a lone writer paid it on
    // every call. Its flushes cover one ticket, so it must not wait for company at all: with
    // an hour's max_delay each call is acknowledged after its flush, or the guard fails.
    let h = PathHarness::new(Durability::Group { max_delay: AN_HOUR });
    let factory = h.sled_factory();
    let work = async {
        let writer = factory.begin(meta("lone")).await.expect("begin");
        for n in 0..20 {
            writer.append(&[sample_event(n)]).await.expect("append");
        }
        writer
            .install_snapshot(&sample_snapshot(20))
            .await
            .expect("snapshot");
        writer.complete().await.expect("complete");
        writer.load().await.expect("load")
    };
    let loaded = tokio::time::timeout(HANG_GUARD, work)
        .await
        .expect("a lone writer's calls waited for company that never came (max_delay is an hour)");
    assert_eq!(loaded.meta.status, RunStatus::Completed);
    assert_eq!(loaded.snapshot, Some(sample_snapshot(20)));
    assert!(loaded.events.is_empty(), "the snapshot covers every event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_group_leader_does_not_stall_the_next_append() {
    let h = DbHarness::new(Durability::Group { max_delay: AN_HOUR });
    let factory = h.sled_factory();
    let work = async {
        let writer = factory.begin(meta("cancel")).await.expect("begin");
        // Polled once, the first append writes its record, leads the group and starts the
        // flush; it is dropped there, while still the leader.
        let events = sample_events(0, 1);
        let mut first = writer.append(&events);
        assert!(
            poll_once(&mut first).await.is_none(),
            "the leader's flush runs on the blocking pool, so one poll cannot finish it"
        );
        drop(first);
        writer.append(&sample_events(1, 2)).await.expect("append");
        writer
    };
    let writer = tokio::time::timeout(HANG_GUARD, work)
        .await
        .expect("a new leader flushes after the old one vanished (max_delay is an hour)");
    let loaded = writer.load().await.expect("load");
    assert_eq!(loaded.events, sample_events(0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_own_trees_are_left_alone() {
    let h = DbHarness::new(Durability::Sync);
    h.db().insert("host-key", "host-value").expect("host write");
    let factory = h.sled_factory();
    begin_with(&factory, "guest", 2).await;
    factory
        .quarantine(&run("guest"), "test")
        .await
        .expect("quarantine");
    assert_eq!(
        h.db().get("host-key").expect("get").as_deref(),
        Some(&b"host-value"[..])
    );
    for name in h.db().tree_names() {
        let name = String::from_utf8_lossy(&name).into_owned();
        assert!(
            name == "__sled__default" || name.starts_with("cairn/"),
            "unexpected tree {name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_refuses_a_second_opener_of_the_files_while_a_factory_holds_them() {
    // sled's lock is an flock on its database file; a second open file description conflicts
    // exactly as another process's would.
    let h = PathHarness::new(Durability::Sync);
    let factory = h.sled_factory();
    let second = sled::Config::new().path(h.path()).open();
    assert!(second.is_err(), "the files are locked by the first handle");
    drop(factory);
    let third = SledFactory::open(h.path()).expect("the lock went with the last handle");
    assert!(
        third
            .list(&Default::default())
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_sled_snapshot_is_set_aside_and_the_database_opens_with_everything() {
    let h = PathHarness::new(Durability::Sync);
    {
        let factory = h.sled_factory();
        begin_with(&factory, "survivor", 5).await;
    }
    // What a SIGKILL during sled's own snapshot generation leaves behind: an unfinished
    // snapshot numbered above the last complete one. sled 0.34.7 alone refuses to open then.
    let unfinished = h.path().join("snap.FFFFFFFFFFFFFFFF.generating");
    std::fs::write(&unfinished, b"").unwrap();
    let plain = sled::Config::new().path(h.path()).open();
    assert!(
        matches!(plain, Err(sled::Error::Corruption { .. })),
        "the planted file reproduces sled's refusal: {plain:?}"
    );
    drop(plain);

    let factory = h.sled_factory();
    let opened = factory
        .open(&run("survivor"))
        .await
        .expect("open")
        .expect("the run is there");
    assert_eq!(
        opened.recovered.events,
        sample_events(0, 5),
        "nothing acknowledged is missing"
    );
    assert!(!unfinished.exists(), "moved out of the database folder");
    let mut aside = h.path().into_os_string();
    aside.push(".quarantine");
    let kept: Vec<_> = walk_files(std::path::Path::new(&aside));
    assert_eq!(kept.len(), 1, "kept, not deleted: {kept:?}");
}

/// Review 47's crash state: a kill during the first open on a fresh folder, after sled
/// wrote part of `conf` and before it created its log `db`. sled alone refuses such a folder
/// forever; the adapter sets `conf` aside (kept) and sled makes a fresh database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_open_killed_before_sled_made_its_log_is_set_aside_and_opens_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let donor = dir.path().join("donor.sled");
    drop(sled::open(&donor).unwrap());
    let conf = std::fs::read(donor.join("conf")).unwrap();
    let folder = dir.path().join("fresh.sled");
    std::fs::create_dir_all(folder.join("blobs")).unwrap();
    // The configuration without its checksum: the first of sled's two writes of `conf`.
    std::fs::write(folder.join("conf"), &conf[..conf.len() - 4]).unwrap();
    let plain = sled::Config::new().path(&folder).open();
    assert!(
        matches!(plain, Err(sled::Error::Corruption { .. })),
        "the planted state reproduces sled's refusal: {plain:?}"
    );
    drop(plain);

    let factory = SledFactory::open(&folder).expect("opens after setting conf aside");
    begin_with(&factory, "after", 2).await;
    let mut aside = folder.clone().into_os_string();
    aside.push(".quarantine");
    let kept = walk_files(std::path::Path::new(&aside));
    assert_eq!(kept.len(), 1, "kept, not deleted: {kept:?}");
    assert!(kept[0].ends_with("conf"), "{kept:?}");
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_claim_leaves_the_stored_metadata_bytes_as_they_were() {
    let harness = DbHarness::new(Durability::Sync);
    let factory = harness.sled_factory();
    drop(factory.begin(meta("claimed")).await.expect("begin"));
    let runs = tree(harness.db(), layout::RUNS_TREE);
    let stored = || {
        runs.get(run("claimed").as_str().as_bytes())
            .expect("sled reads")
            .expect("the run's metadata is stored")
    };
    let begun = stored();
    let won = factory
        .claim(&run("claimed"), RunStatus::Running, 1)
        .await
        .expect("claim")
        .expect("the claim at the stored epoch wins");
    assert_eq!(won.lease_epoch, 2);
    let claimed = stored();
    assert_ne!(claimed, begun, "a won claim is stored");

    for (from, epoch) in [(RunStatus::Running, 1), (RunStatus::Paused, 2)] {
        let lost = factory
            .claim(&run("claimed"), from, epoch)
            .await
            .expect("claim")
            .expect_err("the claim loses");
        assert_eq!((lost.current, lost.current_epoch), (RunStatus::Running, 2));
        assert_eq!(
            stored(),
            claimed,
            "a lost claim from {from} at {epoch} wrote"
        );
    }
}
