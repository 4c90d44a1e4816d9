//! `queue.json` carries a CRC32C (`crc32c`) over its format version, run id, `covers_seq`
//! and snapshot. A damaged digit that still parses is corruption: the run is quarantined
//! rather than opened with records skipped or a changed state. Files of format 1, written
//! before the checksum, still open.

mod common;

use std::path::Path;

use cairn_checkpoint::{CheckpointerFactory, Error, RunId};
use cairn_checkpoint_file::{FileFactory, QUEUE_FILE_FORMAT_VERSION};
use common::{FileHarness, Workload, meta, replayed};

/// A run with a snapshot covering records 1 and 2 and twelve records after it (3 to 14),
/// closed. Returns the queue its records drive.
async fn run_with_records_after_its_snapshot(factory: &FileFactory, name: &str) -> Workload {
    let run = factory.begin(meta(name)).await.unwrap();
    let mut work = Workload::new();
    run.append(&work.enqueue(2)).await.unwrap();
    run.install_snapshot(&work.queue.snapshot()).await.unwrap();
    for _ in 0..12 {
        run.append(&work.enqueue(1)).await.unwrap();
    }
    drop(run);
    work
}

/// Replaces the one occurrence of `from` in the run's `queue.json` with `to`.
fn edit_queue_json(h: &FileHarness, id: &RunId, from: &str, to: &str) {
    let path = h.run_dir(id).join("queue.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches(from).count(), 1, "{from} in {text}");
    let edited = text.replacen(from, to, 1);
    serde_json::from_str::<serde_json::Value>(&edited).expect("the edit keeps valid JSON");
    std::fs::write(&path, edited).unwrap();
}

/// Opens `id`, which must fail as a checksum mismatch of `queue.json`, and checks the run
/// was quarantined whole (its `queue.json` as damaged) and the reason logged says why.
async fn assert_quarantined_for_checksum(h: &FileHarness, factory: &FileFactory, id: &RunId) {
    let dir = h.run_dir(id);
    let damaged = std::fs::read(dir.join("queue.json")).unwrap();
    let peeked = factory.peek(id).await.expect_err("peek refuses it");
    assert!(
        matches!(&peeked, Error::Corruption { file, .. } if file == "queue.json"),
        "{peeked:?}"
    );
    let err = match factory.open(id).await {
        Ok(opened) => panic!(
            "opened with {} records after the snapshot",
            opened.map_or(0, |o| o.recovered.events.len())
        ),
        Err(err) => err,
    };
    let Error::Unreadable {
        quarantined_to,
        detail,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert!(detail.contains("queue.json checksum mismatch"), "{detail}");
    assert!(!dir.exists(), "the run was moved aside");
    let moved = Path::new(quarantined_to);
    assert_eq!(
        std::fs::read(moved.join("queue.json")).unwrap(),
        damaged,
        "the damaged file is kept, never deleted"
    );
    assert!(moved.join("journal").exists());
    let log = std::fs::read_to_string(h.root().join("quarantine.jsonl")).unwrap();
    assert!(log.contains("queue.json checksum mismatch"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_covers_seq_digit_is_quarantined_not_read_as_covering_more_records() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("covers-flip").unwrap();
    run_with_records_after_its_snapshot(&factory, "covers-flip").await;
    // 2 read as 9 would skip records 3 to 9 as inside the snapshot; 10 to 14 still follow
    // on from 9, so nothing else would notice.
    edit_queue_json(&h, &id, "\"covers_seq\": 2,", "\"covers_seq\": 9,");
    assert_quarantined_for_checksum(&h, &factory, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_digit_inside_the_snapshot_is_quarantined() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("body-flip").unwrap();
    run_with_records_after_its_snapshot(&factory, "body-flip").await;
    // The second task's input `i` (1 to 7): still a valid snapshot, of another state.
    edit_queue_json(&h, &id, "\"i\": 1", "\"i\": 7");
    assert_quarantined_for_checksum(&h, &factory, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_queue_json_without_a_checksum_still_opens_with_its_records() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("format-1").unwrap();
    let mut work = run_with_records_after_its_snapshot(&factory, "format-1").await;
    // What a build before the checksum wrote: the same fields, format 1, no `crc32c`.
    let path = h.run_dir(&id).join("queue.json");
    let mut file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let object = file.as_object_mut().unwrap();
    assert!(object.remove("crc32c").is_some(), "this build writes one");
    object.insert("format_version".to_owned(), 1.into());
    std::fs::write(&path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();

    let opened = factory.open(&id).await.unwrap().expect("the run exists");
    assert_eq!(opened.recovered.events.len(), 12);
    assert_eq!(replayed(&opened.recovered), work.queue.snapshot());
    // It goes on: a new snapshot is written in this build's format.
    let finished = work.finish(1);
    opened.checkpointer.append(&finished).await.unwrap();
    opened
        .checkpointer
        .install_snapshot(&work.queue.snapshot())
        .await
        .unwrap();
    drop(opened);
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(file["format_version"], QUEUE_FILE_FORMAT_VERSION);
    let again = factory.open(&id).await.unwrap().expect("the run exists");
    assert_eq!(replayed(&again.recovered), work.queue.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_damaged_to_1_with_a_checksum_left_is_quarantined() {
    // Format 1 never carried a checksum: one there means the version digit was damaged,
    // and reading it unchecked would skip the check the file was written with.
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("version-flip").unwrap();
    run_with_records_after_its_snapshot(&factory, "version-flip").await;
    edit_queue_json(
        &h,
        &id,
        &format!("\"format_version\": {QUEUE_FILE_FORMAT_VERSION},"),
        "\"format_version\": 1,",
    );
    assert_quarantined_for_checksum(&h, &factory, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_written_queue_json_reopens_with_its_records_after_it() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("round-trip").unwrap();
    let work = run_with_records_after_its_snapshot(&factory, "round-trip").await;
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h.run_dir(&id).join("queue.json")).unwrap()).unwrap();
    assert_eq!(file["format_version"], QUEUE_FILE_FORMAT_VERSION);
    assert_eq!(file["covers_seq"], 2);
    assert!(file["crc32c"].is_u64(), "{file}");

    let peeked = factory.peek(&id).await.unwrap().expect("the run exists");
    assert_eq!(peeked.events.len(), 12);
    let opened = factory.open(&id).await.unwrap().expect("the run exists");
    assert_eq!(opened.recovered.events.len(), 12);
    assert_eq!(replayed(&opened.recovered), work.queue.snapshot());
}
