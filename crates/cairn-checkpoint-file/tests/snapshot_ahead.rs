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
