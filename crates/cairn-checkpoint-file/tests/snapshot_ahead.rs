//! A snapshot that covers more records than the journal still holds: `queue.json` is
//! always made durable, but under `Durability::None` the journal is not, so a power cut
//! between a snapshot install and the journal's truncate can leave a journal that ends
//! before the snapshot's last record. The run must open, and must still open after the next
//! append, whose sequence number follows the snapshot rather than the journal.

mod common;

use cairn_checkpoint::{CheckpointerFactory, Durability, RunId};
use common::{FileHarness, Workload, format_2_journal, meta, replayed};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_after_a_journal_behind_its_snapshot_still_reopens() {
    let h = FileHarness::with(Durability::None);
    let id = RunId::new("behind").unwrap();
    let factory = h.file_factory();
    let run = factory.begin(meta("behind")).await.unwrap();
    let mut work = Workload::new();
    let enqueued = work.enqueue(3);
    run.append(&enqueued).await.unwrap();
    run.install_snapshot(&work.queue.snapshot()).await.unwrap();
    drop(run);

    // What a power cut leaves when the unsynced journal lost its last record and its
    // truncate, while the snapshot (synced) covers all three.
    let journal = format_2_journal(&[vec![(1, enqueued[0].clone()), (2, enqueued[1].clone())]]);
    std::fs::write(h.journal(&id), journal).unwrap();

    let opened = factory.open(&id).await.unwrap().expect("the run exists");
    assert!(
        opened.recovered.events.is_empty(),
        "the snapshot covers every record the journal holds"
    );
    let finished = work.finish(1);
    opened.checkpointer.append(&finished).await.unwrap();
    drop(opened);

    let again = factory
        .open(&id)
        .await
        .expect("the journal written after the snapshot reopens")
        .expect("the run exists");
    assert_eq!(again.recovered.events, finished);
    assert_eq!(replayed(&again.recovered), work.queue.snapshot());
    drop(again);
    let peeked = factory.peek(&id).await.unwrap().expect("the run exists");
    assert_eq!(peeked.events, finished);
}

/// A `queue.json` claiming to cover the largest sequence number there is (damage: a sane
/// run never gets near it) leaves no number for the next record. It is refused and the
/// run quarantined, as any unreadable snapshot is, instead of overflowing the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_covering_the_last_sequence_number_is_quarantined() {
    let h = FileHarness::new();
    let id = RunId::new("covers-max").unwrap();
    let factory = h.file_factory();
    let run = factory.begin(meta("covers-max")).await.unwrap();
    let mut work = Workload::new();
    run.append(&work.enqueue(2)).await.unwrap();
    run.install_snapshot(&work.queue.snapshot()).await.unwrap();
    drop(run);

    let path = h.run_dir(&id).join("queue.json");
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    // In format 1, which has no checksum, so this check is the one that refuses it.
    file["covers_seq"] = serde_json::json!(u64::MAX);
    file["format_version"] = serde_json::json!(1);
    file.as_object_mut().unwrap().remove("crc32c");
    std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();

    let opened = factory.open(&id).await;
    assert!(
        matches!(opened, Err(cairn_checkpoint::Error::Unreadable { .. })),
        "{:?}",
        opened.map(|o| o.map(|o| o.recovered.events))
    );
    assert!(!h.run_dir(&id).exists(), "the run is moved to quarantine");
}
