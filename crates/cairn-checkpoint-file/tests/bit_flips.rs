//! Every single-bit flip in a journal, one at a time: recovery returns the acknowledged
//! events, cuts exactly the last batch when the flip is in it, or refuses with a typed
//! error; it never returns altered events, never cuts a batch that has a good batch after
//! it, and never deletes the damaged bytes.

mod common;

use std::path::{Path, PathBuf};

use cairn_checkpoint::conformance::sample_events;
use cairn_checkpoint::{CheckpointerFactory, Error, RunId};
use cairn_queue::Event;
use common::{FILE_HEADER_LEN, FileHarness, batch_offsets, journal_end, meta};

/// Every file under `dir`, with its bytes.
fn snapshot_tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.push((path.strip_prefix(dir).unwrap().to_path_buf(), bytes));
            }
        }
    }
    files
}

/// Puts `files` back under `dir` as they were: rewrites only the files an open changed (a
/// refusal changes none, so most rounds write nothing) and removes what it added.
fn restore_tree(dir: &Path, files: &[(PathBuf, Vec<u8>)]) {
    // Folders a quarantine created go whole; files an open added go one by one.
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let relative = path.strip_prefix(dir).unwrap();
        if path.is_dir() && !files.iter().any(|(kept, _)| kept.starts_with(relative)) {
            std::fs::remove_dir_all(&path).unwrap();
        }
    }
    let current = snapshot_tree(dir);
    for (relative, _) in &current {
        if !files.iter().any(|(kept, _)| kept == relative) {
            std::fs::remove_file(dir.join(relative)).unwrap();
        }
    }
    for (relative, bytes) in files {
        let unchanged = current
            .iter()
            .any(|(path, held)| path == relative && held == bytes);
        if !unchanged {
            let path = dir.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
        }
    }
}

/// Whether some file under `dir` holds exactly `bytes` (the damaged journal, wherever a
/// quarantine may have moved it).
fn tree_holds(dir: &Path, bytes: &[u8]) -> bool {
    snapshot_tree(dir).iter().any(|(_, held)| held == bytes)
}

/// What one flip did.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash, PartialOrd, Ord)]
enum Verdict {
    Everything,
    LastBatchCut,
    Refused,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_single_bit_flip_in_a_journal_is_recovered_cut_at_the_last_batch_or_refused() {
    let h = FileHarness::new();
    let id = RunId::new("flips").unwrap();
    // One batch of four events, then three one-event batches (one append each). The last
    // batch is the small one: a flip there is cut, and each cut is synced, so this keeps
    // the test quick while every byte is still flipped.
    let events = sample_events(0, 7);
    {
        let run = h.file_factory().begin(meta("flips")).await.unwrap();
        run.append(&events[..4]).await.unwrap();
        for event in &events[4..] {
            run.append(std::slice::from_ref(event)).await.unwrap();
        }
    }
    let pristine = snapshot_tree(h.root());
    let journal = std::fs::read(h.journal(&id)).unwrap();
    let batches = batch_offsets(&journal);
    assert_eq!(batches.len(), 4, "four batches were appended");
    let last = batches[3];
    let end = journal_end(&journal);

    // Every byte of the header and the batches and a little past their end; then a sample
    // of the preallocated zeros (one byte per page, and the very last byte).
    let mut offsets: Vec<usize> = (0..(end + 64).min(journal.len())).collect();
    offsets.extend((end + 64..journal.len()).step_by(4096));
    offsets.push(journal.len() - 1);

    let mut seen = std::collections::BTreeMap::<&str, std::collections::BTreeSet<Verdict>>::new();
    for &offset in &offsets {
        restore_tree(h.root(), &pristine);
        let mut damaged = journal.clone();
        damaged[offset] ^= 1 << (offset % 8);
        std::fs::write(h.journal(&id), &damaged).unwrap();

        let region = if offset < FILE_HEADER_LEN {
            "file header"
        } else if offset < last {
            "an earlier batch"
        } else if offset < end {
            "the last batch"
        } else {
            "after the last batch"
        };
        let verdict = match h.file_factory().open(&id).await {
            Ok(Some(opened)) => {
                let recovered = &opened.recovered;
                if recovered.events == events {
                    Verdict::Everything
                } else {
                    // Never altered events: only the last batch may go, and only as a cut.
                    let expected: &[Event] = &events[..6];
                    assert_eq!(
                        recovered.events, expected,
                        "flip at {offset} ({region}): recovered events are neither all nor all but the last batch"
                    );
                    let torn = recovered.torn_tail.as_ref().unwrap_or_else(|| {
                        panic!("flip at {offset}: a batch went without a reported cut")
                    });
                    assert_eq!(
                        torn.offset, last as u64,
                        "flip at {offset}: cut elsewhere than the last batch"
                    );
                    Verdict::LastBatchCut
                }
            }
            Ok(None) => panic!("flip at {offset} ({region}): the run is gone"),
            Err(error) => {
                assert!(
                    matches!(
                        error,
                        Error::Corruption { .. }
                            | Error::VersionMismatch { .. }
                            | Error::Unreadable { .. }
                    ),
                    "flip at {offset} ({region}): not a typed refusal of bad state: {error:?}"
                );
                assert!(
                    tree_holds(h.root(), &damaged),
                    "flip at {offset} ({region}): the damaged journal was not kept byte for byte"
                );
                Verdict::Refused
            }
        };
        match region {
            // Acknowledged batches follow: nothing may be cut, and nothing read past it.
            "file header" | "an earlier batch" => assert_eq!(
                verdict,
                Verdict::Refused,
                "flip at {offset} ({region}) was not refused"
            ),
            // The last batch is the one a crash may have torn: cut, never read altered.
            "the last batch" => assert_eq!(
                verdict,
                Verdict::LastBatchCut,
                "flip at {offset} ({region})"
            ),
            // Garbage after the last batch, with no batch after it: every event stays.
            _ => assert_eq!(verdict, Verdict::Everything, "flip at {offset} ({region})"),
        }
        seen.entry(region).or_default().insert(verdict);
    }
    assert_eq!(seen.len(), 4, "every region was flipped: {seen:?}");
}
