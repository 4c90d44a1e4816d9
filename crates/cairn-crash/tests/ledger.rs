//! The ledger: one line per body run, and a line a kill cut short stays on its own.

use cairn_crash::ledger::{self, Ledger, LedgerEntry};

fn entry(task: u64) -> LedgerEntry {
    LedgerEntry {
        run: "r1".to_owned(),
        task,
        attempt: 1,
        key: format!("r1/t{task}"),
        name: format!("p0.t{task}"),
    }
}

#[test]
fn entries_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.jsonl");
    let ledger = Ledger::open(&path).unwrap();
    ledger.append(&entry(1)).unwrap();
    ledger.append(&entry(2)).unwrap();
    let read = ledger::read(&path).unwrap();
    assert_eq!(read.entries, vec![entry(1), entry(2)]);
    assert_eq!(read.torn_lines, 0);
}

#[test]
fn a_line_cut_short_by_a_kill_does_not_swallow_the_next_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.jsonl");
    Ledger::open(&path).unwrap().append(&entry(1)).unwrap();
    // A write the kernel cut short when the writer was killed: no closing brace, no newline.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(br#"{"run":"r1","task":2,"att"#);
    std::fs::write(&path, &bytes).unwrap();

    Ledger::open(&path).unwrap().append(&entry(3)).unwrap();
    let read = ledger::read(&path).unwrap();
    assert_eq!(read.entries, vec![entry(1), entry(3)]);
    assert_eq!(read.torn_lines, 1);
}

#[test]
fn a_missing_ledger_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let read = ledger::read(&dir.path().join("none.jsonl")).unwrap();
    assert!(read.entries.is_empty());
}
