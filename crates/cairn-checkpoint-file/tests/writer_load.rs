//! A writer's `load` reads the run back by the rules `open` and `peek` read it by: damage
//! with acknowledged records after it is an error, never a shorter history.

mod common;

use cairn_checkpoint::conformance::sample_events;
use cairn_checkpoint::{CheckpointerFactory, Error, RunId};
use common::{BATCH_HEADER_LEN, FileHarness, HEADER_LEN, batch_offsets, meta};

/// Flips one bit in the payload of the first record of batch `batch` of run `id`'s journal.
fn flip_in_batch(h: &FileHarness, id: &RunId, batch: usize) {
    let path = h.journal(id);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = batch_offsets(&bytes)[batch] + BATCH_HEADER_LEN + HEADER_LEN + 1;
    bytes[at] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
}

/// Before the fix `load` read the good records up to the damaged batch and returned them
/// as the whole history: the second and third appends, acknowledged, were silently gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_refuses_a_journal_damaged_before_its_last_batch() {
    let h = FileHarness::new();
    let id = RunId::new("load-damage").unwrap();
    let factory = h.file_factory();
    let run = factory.begin(meta("load-damage")).await.unwrap();
    for n in 0..3 {
        run.append(&sample_events(2 * n, 2 * n + 2)).await.unwrap();
    }
    assert_eq!(run.load().await.unwrap().events, sample_events(0, 6));

    flip_in_batch(&h, &id, 1);
    let err = run.load().await.expect_err("damage before the last batch");
    assert!(
        matches!(&err, Error::Corruption { file, .. } if file == "journal"),
        "{err:?}"
    );
    // `peek` of the same journal says the same.
    drop(run);
    let peeked = factory
        .peek(&id)
        .await
        .expect_err("damage before the last batch");
    assert!(matches!(peeked, Error::Corruption { .. }), "{peeked:?}");
}
