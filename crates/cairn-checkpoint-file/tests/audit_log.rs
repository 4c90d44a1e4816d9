//! A run's `audit.jsonl` after crashes: checksummed lines, a damaged last line read as a torn
//! append (even when a later page carried its newline), damage anywhere else refused, and
//! lines from builds before checksums still read.

mod common;

use cairn_checkpoint::{AuditAction, AuditRecord, CheckpointerFactory, Error, RunId};
use cairn_checkpoint_file::FileFactory;
use cairn_queue::Timestamp;
use common::{FileHarness, meta};

/// A `Finished` audit record of run `id` at `at`, with `message`.
fn note(id: &RunId, at: u64, message: &str) -> AuditRecord {
    AuditRecord::new(Timestamp(at), id.clone(), AuditAction::Finished, message)
}

/// A run with its `Begun` record and two notes, closed; returns the audit log's path.
async fn audited_run(h: &FileHarness, id: &RunId) -> std::path::PathBuf {
    let factory = h.file_factory();
    let run = factory.begin(meta(id.as_str())).await.unwrap();
    run.audit(&note(id, 2, "first note")).await.unwrap();
    run.audit(&note(id, 3, "second note")).await.unwrap();
    drop(run);
    h.run_dir(id).join("audit.jsonl")
}

/// Appends `note(id, at, message)` to the run's audit log through `factory`.
async fn append_note(factory: &FileFactory, id: &RunId, at: u64, message: &str) {
    factory
        .append_audit(id, &note(id, at, message))
        .await
        .unwrap();
}

/// Appends a note of `long` (at 8), then one "after the long one" (at 9); returns the log's
/// bytes as they stood between the two.
async fn append_long_note(
    factory: &FileFactory,
    id: &RunId,
    path: &std::path::Path,
    long: &str,
) -> Vec<u8> {
    append_note(factory, id, 8, long).await;
    let whole = std::fs::read(path).unwrap();
    append_note(factory, id, 9, "after the long one").await;
    whole
}

/// Where the last line of `bytes`, which end with its newline, starts.
fn last_line_start(bytes: &[u8]) -> usize {
    bytes[..bytes.len() - 1]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap()
        + 1
}

/// The messages of `records`, in order.
fn messages(records: &[AuditRecord]) -> Vec<&str> {
    records.iter().map(|r| r.message.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_audit_line_carries_a_checksum_of_its_json() {
    let h = FileHarness::new();
    let id = RunId::new("checksummed").unwrap();
    let path = audited_run(&h, &id).await;
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for line in lines {
        let (crc, json) = line.split_once(' ').expect("a checksum field");
        assert_eq!(crc.len(), 8, "{line}");
        assert_eq!(
            u32::from_str_radix(crc, 16).unwrap(),
            crc32c::crc32c(json.as_bytes()),
            "{line}"
        );
        let _: AuditRecord = serde_json::from_str(json).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_line_whose_first_page_was_lost_is_skipped_then_cut_and_audited() {
    let h = FileHarness::new();
    let id = RunId::new("page-lost").unwrap();
    let path = audited_run(&h, &id).await;
    let good = std::fs::read(&path).unwrap();
    // A power cut kept the second page of an unacknowledged append but not the first: zeros,
    // then the end of a record, then its newline.
    let mut damaged = good.clone();
    damaged.extend_from_slice(&[0u8; 40]);
    damaged.extend_from_slice(b"ge\":\"third note\",\"detail\":null}\n");
    std::fs::write(&path, &damaged).unwrap();

    let factory = h.file_factory();
    let records = factory.read_audit(&id).await.unwrap();
    assert_eq!(
        messages(&records)[1..],
        ["first note", "second note"],
        "{records:?}"
    );

    append_note(&factory, &id, 4, "after the cut").await;
    let after = std::fs::read(&path).unwrap();
    assert_eq!(after[..good.len()], good[..], "acknowledged lines are kept");
    assert!(
        !after.windows(10).any(|w| w == b"third note"),
        "the damaged line is cut"
    );
    let records = factory.read_audit(&id).await.unwrap();
    assert_eq!(
        messages(&records)[1..3],
        ["first note", "second note"],
        "{records:?}"
    );
    let cut = &records[3];
    assert_eq!(cut.action, AuditAction::TornTailCut);
    assert_eq!(cut.detail["offset"], good.len() as u64);
    assert_eq!(cut.detail["bytes"], (damaged.len() - good.len()) as u64);
    assert_eq!(records[4].message, "after the cut");
    assert_eq!(records.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_line_failing_its_checksum_is_a_torn_append() {
    let h = FileHarness::new();
    let id = RunId::new("last-bad").unwrap();
    let path = audited_run(&h, &id).await;
    let text = std::fs::read_to_string(&path).unwrap();
    // Valid JSON, wrong checksum: a page of the line landed from another write.
    let damaged = text.replacen("second note", "sec0nd note", 1);
    std::fs::write(&path, &damaged).unwrap();
    let factory = h.file_factory();
    let records = factory.read_audit(&id).await.unwrap();
    assert_eq!(messages(&records)[1..], ["first note"], "{records:?}");
    append_note(&factory, &id, 5, "next").await;
    let records = factory.read_audit(&id).await.unwrap();
    let actions: Vec<AuditAction> = records.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [
            AuditAction::Begun,
            AuditAction::Finished,
            AuditAction::TornTailCut,
            AuditAction::Finished
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_before_the_last_is_corruption_and_nothing_is_cut() {
    let h = FileHarness::new();
    let id = RunId::new("middle-bad").unwrap();
    let path = audited_run(&h, &id).await;
    let text = std::fs::read_to_string(&path).unwrap();
    let first_line_len = text.find('\n').unwrap() as u64 + 1;
    let damaged = text.replacen("first note", "f1rst note", 1);
    std::fs::write(&path, &damaged).unwrap();
    let factory = h.file_factory();
    let err = factory.read_audit(&id).await.unwrap_err();
    match err {
        Error::Corruption { file, offset, .. } => {
            assert_eq!(file, "audit.jsonl");
            assert_eq!(offset, first_line_len, "the second line starts there");
        }
        other => panic!("expected Corruption, got {other:?}"),
    }
    // An append checks only the last line, which is good: it lands and cuts nothing.
    append_note(&factory, &id, 6, "appended").await;
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(
        after.starts_with(&damaged),
        "nothing before the append moved"
    );
    assert!(matches!(
        factory.read_audit(&id).await,
        Err(Error::Corruption { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_written_before_checksums_are_still_read() {
    let h = FileHarness::new();
    let id = RunId::new("old-lines").unwrap();
    let path = audited_run(&h, &id).await;
    // The same records as a build before checksums wrote them: bare JSON lines.
    let factory = h.file_factory();
    let records = factory.read_audit(&id).await.unwrap();
    let mut old = String::new();
    for record in &records {
        old.push_str(&serde_json::to_string(record).unwrap());
        old.push('\n');
    }
    std::fs::write(&path, &old).unwrap();
    assert_eq!(factory.read_audit(&id).await.unwrap(), records);
    // New lines are checksummed and follow the old ones.
    append_note(&factory, &id, 7, "new").await;
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(&old));
    assert!(!text.lines().last().unwrap().starts_with('{'), "{text}");
    let read = factory.read_audit(&id).await.unwrap();
    assert_eq!(read[..records.len()], records[..]);
    assert_eq!(read.last().unwrap().message, "new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quarantine_log_holds_checksummed_lines() {
    let h = FileHarness::new();
    let id = RunId::new("moved").unwrap();
    let factory = h.file_factory();
    drop(factory.begin(meta("moved")).await.unwrap());
    // A torn line left by an earlier crash mid-append must not swallow the next record.
    let log = h.root().join("quarantine.jsonl");
    std::fs::write(&log, b"1234abcd {\"at\":1,\"run_id\":\"ghost").unwrap();
    factory.quarantine(&id, "test").await.unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "the torn line is cut: {text}");
    let (crc, json) = lines[0].split_once(' ').unwrap();
    assert_eq!(
        u32::from_str_radix(crc, 16).unwrap(),
        crc32c::crc32c(json.as_bytes())
    );
    let record: AuditRecord = serde_json::from_str(json).unwrap();
    assert_eq!(record.action, AuditAction::Quarantined);
    assert_eq!(record.run_id, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_line_longer_than_a_read_chunk_is_checked_whole() {
    let h = FileHarness::new();
    let id = RunId::new("long-lines").unwrap();
    let path = audited_run(&h, &id).await;
    let factory = h.file_factory();
    // Longer than the 4 KiB the tail is read back in, so the line spans several reads.
    let long = "x".repeat(9_000);
    // An intact long last line is kept by the next append.
    let whole = append_long_note(&factory, &id, &path, &long).await;
    let records = factory.read_audit(&id).await.unwrap();
    assert_eq!(records[3].message, long);
    assert_eq!(records[4].message, "after the long one");
    assert!(std::fs::read(&path).unwrap().starts_with(&whole));

    // The same long line with a byte changed in its middle is torn, and cut whole.
    std::fs::write(&path, &whole).unwrap();
    let mut damaged = whole.clone();
    let middle = whole.len() - 4_500;
    damaged[middle] = b'y';
    std::fs::write(&path, &damaged).unwrap();
    let records = factory.read_audit(&id).await.unwrap();
    assert_eq!(records.len(), 3, "the damaged long line is skipped");
    append_note(&factory, &id, 10, "after the cut").await;
    let records = factory.read_audit(&id).await.unwrap();
    assert_eq!(records[3].action, AuditAction::TornTailCut);
    // The long line starts after the newline that ends the line before it.
    let line_start = last_line_start(&whole) as u64;
    assert_eq!(records[3].detail["offset"], line_start);
    assert_eq!(records[4].message, "after the cut");
    assert_eq!(records.len(), 5);
}

/// `record` as a checksummed line whose action is one this build does not know.
fn newer_build_line(record: &AuditRecord) -> Vec<u8> {
    let mut json = serde_json::to_value(record).unwrap();
    json["action"] = serde_json::json!("escalated_by_operator");
    let json = serde_json::to_vec(&json).unwrap();
    let mut line = format!("{:08x} ", crc32c::crc32c(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_builds_last_line_is_refused_and_kept_by_the_next_append() {
    // A later build appended a record of an action this build does not know. Its checksum
    // holds, so it is no torn append: reads refuse it as a newer build's (before, they
    // skipped it as torn while the next append kept it, and from then on every read was
    // `Corruption`), and appends leave it where it is.
    let h = FileHarness::new();
    let id = RunId::new("newer-line").unwrap();
    let path = audited_run(&h, &id).await;
    let mut written = std::fs::read(&path).unwrap();
    written.extend_from_slice(&newer_build_line(&note(&id, 4, "from a newer build")));
    std::fs::write(&path, &written).unwrap();

    let factory = h.file_factory();
    for appended in [false, true] {
        let err = factory.read_audit(&id).await.unwrap_err();
        match &err {
            Error::NewerFormat { run_id, file, .. } => {
                assert_eq!(run_id, &id);
                assert_eq!(file, "audit.jsonl");
            }
            other => panic!("appended {appended}: expected NewerFormat, got {other:?}"),
        }
        assert!(!err.is_bad_state(), "{err:?}");
        if !appended {
            append_note(&factory, &id, 5, "after the newer line").await;
            let after = std::fs::read(&path).unwrap();
            assert!(
                after.starts_with(&written),
                "the newer build's line is kept whole"
            );
            assert!(
                !after.windows(12).any(|w| w == b"torn_tail_cu"),
                "nothing was cut"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_last_line_of_megabytes_is_kept_whole_or_cut_whole() {
    // A crafted last line a thousand read chunks long: the tail scan must find where it
    // starts and check it whole (it read the line chunk by chunk, prepending each to the
    // last, which cost time quadratic in the line's length).
    let h = FileHarness::new();
    let id = RunId::new("megabyte-line").unwrap();
    let path = audited_run(&h, &id).await;
    let factory = h.file_factory();
    let long = "x".repeat(4 << 20);
    let whole = append_long_note(&factory, &id, &path, &long).await;
    let records = factory.read_audit(&id).await.unwrap();
    assert_eq!(records.len(), 5);
    assert_eq!(records[3].message, long, "the intact long line is kept");

    // The same line without its newline: a torn append, cut whole from where it starts.
    let line_start = last_line_start(&whole);
    std::fs::write(&path, &whole[..whole.len() - 1]).unwrap();
    append_note(&factory, &id, 10, "after the cut").await;
    let records = factory.read_audit(&id).await.unwrap();
    assert_eq!(
        messages(&records)[1..],
        [
            "first note",
            "second note",
            &records[3].message,
            "after the cut"
        ]
    );
    assert_eq!(records[3].action, AuditAction::TornTailCut);
    assert_eq!(records[3].detail["offset"], line_start as u64);
    assert_eq!(
        records[3].detail["bytes"],
        (whole.len() - 1 - line_start) as u64
    );
}
