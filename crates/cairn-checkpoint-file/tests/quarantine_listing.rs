//! `list_quarantined` on the file store beyond the conformance case: a stray file moved aside
//! in a run's place (no folder, so no audit log of its own) and a store root spelled another
//! way than when the quarantine was recorded.

mod common;

use cairn_checkpoint::{CheckpointerFactory, RunFilter, RunId};
use cairn_checkpoint_file::FileFactory;
use common::FileHarness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_file_is_listed_with_its_reason_however_the_root_is_spelled() {
    let h = FileHarness::new();
    let id = RunId::new("stray").unwrap();
    std::fs::create_dir_all(h.root().join("runs")).unwrap();
    std::fs::write(h.run_dir(&id), b"notes").unwrap();
    let factory = h.file_factory();
    factory.list(&RunFilter::default()).await.unwrap();

    // Its record is in the root's quarantine.jsonl only; its audit reads as empty instead of
    // failing on a file where a folder was expected (before: "Not a directory", exit 5).
    assert_eq!(factory.read_audit(&id).await.unwrap(), Vec::new());
    let listed = factory.list_quarantined().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(!listed[0].reason.is_empty(), "{listed:?}");
    assert!(listed[0].at.0 > 0, "{listed:?}");
    assert_eq!(listed[0].meta, None);

    // The same store through another spelling of its root: the record written under the
    // first spelling is still found (by the entry's name, not the whole path).
    let respelled = h.root().join("runs").join("..");
    let other = FileFactory::builder(&respelled).build().unwrap();
    let again = other.list_quarantined().await.unwrap();
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!(again[0].reason, listed[0].reason);
    assert_eq!(again[0].at, listed[0].at);
    assert_ne!(again[0].location, listed[0].location, "spelled differently");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_where_the_quarantine_folder_belongs_stops_only_quarantines() {
    let h = FileHarness::new();
    std::fs::create_dir_all(h.root()).unwrap();
    let foreign = h.root().join("quarantine");
    std::fs::write(&foreign, b"someone's notes").unwrap();
    let factory = h.file_factory();

    // New runs begin and list (before: every begin failed with "Not a directory").
    let run = factory.begin(common::meta("fresh")).await.unwrap();
    drop(run);
    let listed = factory.list(&RunFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(factory.list_quarantined().await.unwrap(), Vec::new());

    // A damaged run cannot move: it is left in place, and the error says what is in the way.
    let damaged = RunId::new("damaged").unwrap();
    std::fs::create_dir_all(h.run_dir(&damaged)).unwrap();
    std::fs::write(h.run_dir(&damaged).join("meta.json"), b"{not json").unwrap();
    let listed = factory.list(&RunFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let left = factory.left_in_place().await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].run_id, damaged);
    assert!(
        left[0]
            .error
            .contains("where the quarantine folder belongs"),
        "{left:?}"
    );
    // Foreign state is neither moved nor deleted.
    assert_eq!(std::fs::read(&foreign).unwrap(), b"someone's notes");
    assert!(h.run_dir(&damaged).join("meta.json").exists());
}
