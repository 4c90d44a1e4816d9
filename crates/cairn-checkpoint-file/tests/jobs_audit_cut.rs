//! The job audit log never cuts silently: an append that cuts a torn last line first appends
//! a `TornLineCut` record that says where the line was and keeps its bytes.

use cairn_checkpoint::{JobAuditAction, JobAuditRecord, JobId, JobStore};
use cairn_checkpoint_file::FileJobStore;
use cairn_queue::Timestamp;

fn id(text: &str) -> JobId {
    JobId::new(text).unwrap()
}

fn record(at: u64, job: &str, action: JobAuditAction, message: &str) -> JobAuditRecord {
    JobAuditRecord::new(Timestamp(at), id(job), action, message)
}

/// The audit log's lines, as text.
fn lines(store: &FileJobStore) -> Vec<String> {
    let bytes = std::fs::read(store.dir().join("audit.jsonl")).unwrap();
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotten_complete_last_record_is_cut_with_a_record_that_keeps_it() {
    // The reviewer's repro: one byte of the last, newline-terminated record changes; the next
    // append (for another job) used to cut it and leave no trace of it anywhere.
    let dir = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(dir.path()).unwrap();
    let created = record(1, "a", JobAuditAction::Created, "job created");
    store.append_audit(&created).await.unwrap();
    store
        .append_audit(&record(2, "a", JobAuditAction::Paused, "job paused"))
        .await
        .unwrap();
    let path = store.dir().join("audit.jsonl");
    let before = std::fs::read(&path).unwrap();
    let text = String::from_utf8(before.clone()).unwrap();
    let rotten = text.replacen("job paused", "job pausee", 1);
    std::fs::write(&path, &rotten).unwrap();
    let first_line_len = text.find('\n').unwrap() + 1;
    let cut_line = rotten[first_line_len..].to_owned();

    store
        .append_audit(&record(3, "b", JobAuditAction::Created, "job created"))
        .await
        .unwrap();

    let after = lines(&store);
    assert_eq!(after.len(), 3, "{after:#?}");
    assert_eq!(
        after[0],
        text[..first_line_len - 1],
        "the first line is kept"
    );

    // The cut is `a`'s loss: it is in `a`'s audit list, with the cut line whole.
    let audit_a = store.read_audit(&id("a")).await.unwrap();
    assert_eq!(audit_a.len(), 2, "{audit_a:#?}");
    assert_eq!(audit_a[0], created);
    let cut = &audit_a[1];
    assert_eq!(cut.action, JobAuditAction::TornLineCut, "{cut:?}");
    assert_eq!(cut.detail["offset"], first_line_len as u64);
    assert_eq!(cut.detail["bytes"], cut_line.len() as u64);
    assert_eq!(cut.detail["text"], cut_line, "the cut bytes are kept");
    assert_eq!(cut.detail["appending_for"], "b");
    assert!(cut.detail.get("hex").is_none(), "UTF-8 needs no hex");

    let audit_b = store.read_audit(&id("b")).await.unwrap();
    assert_eq!(audit_b.len(), 1, "{audit_b:#?}");
    assert_eq!(audit_b[0].action, JobAuditAction::Created);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_torn_tail_is_audited_for_the_appending_job_with_its_bytes_in_hex() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(dir.path()).unwrap();
    let created = record(1, "a", JobAuditAction::Created, "job created");
    store.append_audit(&created).await.unwrap();
    let path = store.dir().join("audit.jsonl");
    let good_len = std::fs::metadata(&path).unwrap().len();
    // A power cut: zeros, a non-UTF-8 byte, no newline.
    let tail = [0u8, 0, 0xff, b'{', b'"'];
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&tail);
    std::fs::write(&path, &bytes).unwrap();

    let paused = record(2, "c", JobAuditAction::Paused, "job paused");
    store.append_audit(&paused).await.unwrap();

    let audit_c = store.read_audit(&id("c")).await.unwrap();
    assert_eq!(audit_c.len(), 2, "{audit_c:#?}");
    let cut = &audit_c[0];
    assert_eq!(cut.action, JobAuditAction::TornLineCut, "{cut:?}");
    assert_eq!(cut.detail["offset"], good_len);
    assert_eq!(cut.detail["bytes"], tail.len());
    assert_eq!(cut.detail["hex"], "0000ff7b22");
    assert_eq!(audit_c[1], paused);
    assert_eq!(store.read_audit(&id("a")).await.unwrap(), vec![created]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intact_log_gets_no_cut_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(dir.path()).unwrap();
    for at in 0..3 {
        store
            .append_audit(&record(at, "a", JobAuditAction::Paused, "p"))
            .await
            .unwrap();
    }
    let audit = store.read_audit(&id("a")).await.unwrap();
    assert!(
        audit.iter().all(|r| r.action == JobAuditAction::Paused),
        "{audit:#?}"
    );
    assert_eq!(lines(&store).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_builds_last_record_is_refused_and_never_cut() {
    // A checksummed last record of an action this build does not know was written whole by
    // a newer build: reading refuses it (as it refuses such a record anywhere else) instead
    // of skipping it as torn, and the next append keeps it instead of cutting it.
    let dir = tempfile::tempdir().unwrap();
    let store = FileJobStore::open(dir.path()).unwrap();
    store
        .append_audit(&record(1, "a", JobAuditAction::Created, "job created"))
        .await
        .unwrap();
    let path = store.dir().join("audit.jsonl");
    let mut json =
        serde_json::to_value(record(2, "a", JobAuditAction::Paused, "from a newer build")).unwrap();
    json["action"] = serde_json::json!("escalated_by_operator");
    let json = serde_json::to_vec(&json).unwrap();
    let mut written = std::fs::read(&path).unwrap();
    written.extend_from_slice(format!("{:08x} ", crc32c::crc32c(&json)).as_bytes());
    written.extend_from_slice(&json);
    written.push(b'\n');
    std::fs::write(&path, &written).unwrap();

    let refused = |result: Result<Vec<JobAuditRecord>, cairn_checkpoint::Error>| {
        assert!(
            matches!(result, Err(cairn_checkpoint::Error::Encoding { .. })),
            "{result:?}"
        );
    };
    refused(store.read_audit(&id("a")).await);
    store
        .append_audit(&record(3, "b", JobAuditAction::Created, "job created"))
        .await
        .unwrap();
    let after = std::fs::read(&path).unwrap();
    assert!(
        after.starts_with(&written),
        "the newer record is kept whole"
    );
    assert_eq!(
        lines(&store).len(),
        3,
        "nothing was cut: {:#?}",
        lines(&store)
    );
    refused(store.read_audit(&id("a")).await);
}
