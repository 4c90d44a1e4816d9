//! The preallocated journal: appends overwrite zeroed space in place, recovery reads zeros
//! from a batch boundary to the end as the end, a torn last batch inside the zeros is cut,
//! zeros in the middle are corruption, and journals written without preallocation (or file
//! layers without positioned writes) still work.

mod common;

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use cairn_checkpoint::conformance::{sample_event, sample_events};
use cairn_checkpoint::{AuditAction, CheckpointerFactory, Durability, Error, RunId};
use cairn_queue::Event;
use common::{
    BATCH_HEADER_LEN, FileHarness, HEADER_LEN, IoPlan, batch_offsets, journal_end, meta,
    record_offsets,
};

/// Writes `bytes` at `offset` of `path`, in place.
fn overwrite(path: &std::path::Path, offset: usize, bytes: &[u8]) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset as u64).unwrap();
}

/// Begins run `id` on `factory` and appends `events` one append each.
async fn journal_of(factory: &dyn CheckpointerFactory, id: &str, events: &[Event]) {
    let run = factory.begin(meta(id)).await.unwrap();
    for event in events {
        run.append(std::slice::from_ref(event)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synced_appends_overwrite_preallocated_zeros() {
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("zeros").unwrap();
    let run = factory.begin(meta("zeros")).await.unwrap();
    run.append(&sample_events(0, 1)).await.unwrap();
    let path = h.journal(&id);
    let allocated = std::fs::metadata(&path).unwrap().len();
    let bytes = std::fs::read(&path).unwrap();
    let end = journal_end(&bytes);
    assert!(
        allocated as usize > end,
        "the first append preallocates: file {allocated} bytes, records {end}"
    );
    assert!(bytes[end..].iter().all(|b| *b == 0), "the space is zeros");
    for n in 1..20 {
        run.append(&sample_events(n, n + 1)).await.unwrap();
    }
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        allocated,
        "small appends reuse the space instead of growing the file"
    );
    assert_eq!(record_offsets(&std::fs::read(&path).unwrap()).len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_syncs_nothing_is_preallocated() {
    let h = FileHarness::with(Durability::None);
    let factory = h.file_factory();
    let id = RunId::new("nosync").unwrap();
    journal_of(&factory, "nosync", &sample_events(0, 5)).await;
    let bytes = std::fs::read(h.journal(&id)).unwrap();
    assert_eq!(journal_end(&bytes), bytes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_after_preallocation_keeps_every_acknowledged_record() {
    for durability in [
        Durability::Sync,
        Durability::Group {
            max_delay: Duration::from_micros(100),
        },
    ] {
        let h = FileHarness::with(durability);
        let factory = h.file_factory();
        let id = RunId::new("reopen").unwrap();
        let mut expected = Vec::new();
        drop(factory.begin(meta("reopen")).await.unwrap());
        // Each round reopens and appends enough to cross at least one preallocation step
        // (64 KiB and more), so records land both inside old zeros and in new ones.
        for round in 0..4u64 {
            let opened = factory.open(&id).await.unwrap().unwrap();
            assert_eq!(
                opened.recovered.events, expected,
                "{durability:?} round {round}"
            );
            assert_eq!(
                opened.recovered.torn_tail, None,
                "zeros are not a torn tail"
            );
            for batch in 0..40u64 {
                let first = round * 10_000 + batch * 25;
                let events = sample_events(first, first + 25);
                opened.checkpointer.append(&events).await.unwrap();
                expected.extend(events);
            }
            drop(opened);
            let bytes = std::fs::read(h.journal(&id)).unwrap();
            assert!(
                journal_end(&bytes) < bytes.len(),
                "preallocated zeros follow"
            );
        }
        let opened = factory.open(&id).await.unwrap().unwrap();
        assert_eq!(opened.recovered.events, expected, "{durability:?}");
        let cuts = factory
            .read_audit(&id)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.action == AuditAction::TornTailCut)
            .count();
        assert_eq!(cuts, 0, "reading zeros as the end cuts nothing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preallocated_journal_torn_at_the_last_record_is_cut() {
    // The shapes a torn overwrite leaves inside the zeros: the headers and part of the
    // payload, the headers alone, part of the record header, part of the batch header, and
    // a payload whose checksum fails. Each append of one event is a batch of one record.
    for damage in [
        "half payload",
        "header only",
        "half header",
        "half batch header",
        "bad checksum",
    ] {
        let h = FileHarness::new();
        let factory = h.file_factory();
        let id = RunId::new("torn").unwrap();
        let events = sample_events(0, 5);
        journal_of(&factory, "torn", &events).await;
        let path = h.journal(&id);
        let bytes = std::fs::read(&path).unwrap();
        let size = bytes.len();
        let batch = *batch_offsets(&bytes).last().unwrap();
        let last = *record_offsets(&bytes).last().unwrap();
        assert_eq!(
            last,
            batch + BATCH_HEADER_LEN,
            "one record in the last batch"
        );
        let end = journal_end(&bytes);
        assert!(end < size, "the journal is preallocated");
        match damage {
            "half payload" => {
                let keep = last + HEADER_LEN + (end - last - HEADER_LEN) / 2;
                overwrite(&path, keep, &vec![0; end - keep]);
            }
            "header only" => overwrite(&path, last + HEADER_LEN, &vec![0; end - last - HEADER_LEN]),
            "half header" => overwrite(&path, last + 6, &vec![0; end - last - 6]),
            "half batch header" => overwrite(&path, batch + 10, &vec![0; end - batch - 10]),
            _ => overwrite(&path, end - 1, &[bytes[end - 1] ^ 0x20]),
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, size);

        let opened = factory.open(&id).await.unwrap().unwrap();
        let torn = opened.recovered.torn_tail.expect("the cut is reported");
        assert_eq!(torn.offset, batch as u64, "{damage}");
        assert_eq!(
            torn.bytes,
            (size - batch) as u64,
            "{damage}: the cut reaches the end"
        );
        assert_eq!(opened.recovered.events, events[..4], "{damage}");
        // The writer goes on right where the cut was, and the next open sees it.
        let next = sample_event(77);
        opened
            .checkpointer
            .append(std::slice::from_ref(&next))
            .await
            .unwrap();
        drop(opened);
        let opened = factory.open(&id).await.unwrap().unwrap();
        assert_eq!(opened.recovered.torn_tail, None, "{damage}");
        let mut want = events[..4].to_vec();
        want.push(next);
        assert_eq!(opened.recovered.events, want, "{damage}");
        let cuts: Vec<_> = factory
            .read_audit(&id)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.action == AuditAction::TornTailCut)
            .collect();
        assert_eq!(cuts.len(), 1, "{damage}: the cut is audited once");
        // The record tells what the torn write left from the preallocated zeros after it.
        let written = match damage {
            "half payload" => last + HEADER_LEN + (end - last - HEADER_LEN) / 2 - batch,
            "header only" => last + HEADER_LEN - batch,
            "half header" => last + 6 - batch,
            "half batch header" => 10,
            _ => end - batch,
        };
        let detail = &cuts[0].detail;
        assert_eq!(detail["bytes"], (size - batch) as u64, "{damage}");
        // Trailing zero bytes of the torn write itself cannot be told from preallocation.
        let recorded = detail["written"].as_u64().expect("written");
        assert!(
            recorded <= written as u64 && written as u64 - recorded < 8,
            "{damage}: written {recorded}, the torn write left {written}"
        );
        assert!(
            cuts[0]
                .message
                .contains(&format!("{recorded} bytes of it were written"))
                && cuts[0].message.contains("preallocated zeros"),
            "{damage}: {}",
            cuts[0].message
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeros_in_the_middle_followed_by_a_valid_batch_are_corruption() {
    // A whole batch zeroed, and only its header zeroed: both leave valid batches after.
    for whole in [true, false] {
        let h = FileHarness::new();
        let factory = h.file_factory();
        let id = RunId::new("middle").unwrap();
        journal_of(&factory, "middle", &sample_events(0, 4)).await;
        let path = h.journal(&id);
        let bytes = std::fs::read(&path).unwrap();
        let offsets = batch_offsets(&bytes);
        let victim = offsets[1];
        let len = if whole {
            offsets[2] - victim
        } else {
            BATCH_HEADER_LEN
        };
        overwrite(&path, victim, &vec![0; len]);
        let before = std::fs::read(&path).unwrap();

        let err = factory.open(&id).await.expect_err("corruption");
        assert!(
            matches!(err, Error::Corruption { offset, .. } if offset == victim as u64),
            "whole record {whole}: {err:?}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "nothing is cut on corruption"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_zero_bytes_after_a_zero_header_without_a_valid_batch_are_a_torn_tail() {
    // A torn overwrite can reach the disk out of order: a later page of the last write
    // lands while the page with its batch header does not. Without a valid batch after
    // the gap it is the torn tail, and the cut takes everything from the gap on.
    let h = FileHarness::new();
    let factory = h.file_factory();
    let id = RunId::new("stray").unwrap();
    let events = sample_events(0, 3);
    journal_of(&factory, "stray", &events).await;
    let path = h.journal(&id);
    let end = journal_end(&std::fs::read(&path).unwrap());
    overwrite(&path, end + 100, b"half of a record");
    let opened = factory.open(&id).await.unwrap().unwrap();
    let torn = opened.recovered.torn_tail.expect("cut");
    assert_eq!(torn.offset, end as u64);
    assert_eq!(opened.recovered.events, events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_written_without_preallocation_still_opens_and_grows() {
    let h = FileHarness::new();
    let id = RunId::new("legacy").unwrap();
    // An appending file layer writes the journal the way builds before preallocation did.
    let first = sample_events(0, 6);
    journal_of(&h.appending_factory(Durability::Sync), "legacy", &first).await;
    let path = h.journal(&id);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(journal_end(&bytes), bytes.len(), "no zeros were written");

    let factory = h.file_factory();
    let opened = factory.open(&id).await.unwrap().unwrap();
    assert_eq!(opened.recovered.events, first);
    assert_eq!(opened.recovered.torn_tail, None);
    let second = sample_events(6, 9);
    opened.checkpointer.append(&second).await.unwrap();
    drop(opened);
    let bytes = std::fs::read(&path).unwrap();
    assert!(journal_end(&bytes) < bytes.len(), "now it is preallocated");
    let opened = factory.open(&id).await.unwrap().unwrap();
    assert_eq!(opened.recovered.events, [first, second].concat());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_appending_file_layer_drops_preallocated_zeros_before_appending() {
    let h = FileHarness::new();
    let id = RunId::new("handover").unwrap();
    let first = sample_events(0, 4);
    journal_of(&h.file_factory(), "handover", &first).await;
    let path = h.journal(&id);
    let bytes = std::fs::read(&path).unwrap();
    let end = journal_end(&bytes);
    assert!(end < bytes.len(), "preallocated");

    let appending = h.appending_factory(Durability::Sync);
    let opened = appending.open(&id).await.unwrap().unwrap();
    assert_eq!(opened.recovered.events, first);
    assert_eq!(
        opened.recovered.torn_tail, None,
        "zeros are not a torn tail"
    );
    assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, end);
    let second = sample_events(4, 7);
    opened.checkpointer.append(&second).await.unwrap();
    drop(opened);
    // Had the record gone after the zeros, this open would report corruption.
    let opened = h.file_factory().open(&id).await.unwrap().unwrap();
    assert_eq!(opened.recovered.events, [first, second].concat());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_restarts_preallocation_from_an_empty_journal() {
    let h = FileHarness::new();
    let factory = cairn_checkpoint_file::FileFactory::builder(h.root())
        .compact_after_records(30)
        .build()
        .unwrap();
    let id = RunId::new("compacted").unwrap();
    let run = factory.begin(meta("compacted")).await.unwrap();
    let mut work = common::Workload::new();
    let mut appended = Vec::new();
    for _ in 0..12 {
        for events in [work.enqueue(4), work.finish(4)] {
            run.append(&events).await.unwrap();
            appended.extend(events);
        }
    }
    drop(run);
    let queue_json = std::fs::read(h.run_dir(&id).join("queue.json")).unwrap();
    assert!(!queue_json.is_empty(), "compaction ran");
    let opened = factory.open(&id).await.unwrap().unwrap();
    assert!(opened.recovered.snapshot.is_some());
    assert!(opened.recovered.events.len() < appended.len());
    assert_eq!(common::replayed(&opened.recovered), work.queue.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_positioned_write_poisons_the_writer() {
    let h = FileHarness::new();
    let plan = Arc::new(IoPlan::default());
    let factory = h.failing_factory(&plan, Durability::Sync);
    let id = RunId::new("badwrite").unwrap();
    let run = factory.begin(meta("badwrite")).await.unwrap();
    run.append(&sample_events(0, 3)).await.unwrap();
    plan.fail("write_at", "journal", 1);
    let err = common::failed_append_then_poisoned(&*run).await;
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    drop(run);
    let opened = h.file_factory().open(&id).await.unwrap().unwrap();
    assert_eq!(opened.recovered.events, sample_events(0, 3));
    assert_eq!(opened.recovered.torn_tail, None);
}
