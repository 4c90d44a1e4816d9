//! Storage trouble under a listing and a read: a damaged run that cannot be moved to
//! quarantine (the rename is refused, or the whole store is read-only) is left where it is and
//! reported, while the listing of every other run goes on; and `peek` reads a run of a
//! read-only store. The trouble is injected through the `Filesystem` layer, because the tests
//! may run as root, which ignores file permissions.

mod common;

use std::io;
use std::path::Path;
use std::sync::Arc;

use cairn_checkpoint::{AuditAction, CheckpointerFactory, Error, RunFilter, RunId};
use cairn_checkpoint_file::{FileFactory, Filesystem, FsFile, OpenMode, StdFilesystem};
use cairn_queue::Event;
use common::{FileHarness, meta};

const EACCES: i32 = 13;
const EROFS: i32 = 30;

/// The real file system, with trouble: `rename` refused with `rename_errno`, and, when
/// `read_only`, every call that would write refused with EROFS (as a read-only mount does).
#[derive(Debug, Clone, Copy)]
struct Troubled {
    rename_errno: Option<i32>,
    read_only: bool,
}

impl Troubled {
    fn refuse(&self) -> io::Result<()> {
        if self.read_only {
            return Err(io::Error::from_raw_os_error(EROFS));
        }
        Ok(())
    }
}

impl Filesystem for Troubled {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        if mode != OpenMode::Read {
            self.refuse()?;
        }
        StdFilesystem.open(path, mode)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        StdFilesystem.read(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.refuse()?;
        StdFilesystem.create_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        // As on a read-only mount, a folder that is already there is fine.
        if !path.is_dir() {
            self.refuse()?;
        }
        StdFilesystem.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.refuse()?;
        if let Some(errno) = self.rename_errno {
            return Err(io::Error::from_raw_os_error(errno));
        }
        StdFilesystem.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        StdFilesystem.sync_dir(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        StdFilesystem.list_dir(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        StdFilesystem.exists(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.refuse()?;
        StdFilesystem.remove_dir_all(path)
    }
}

fn troubled(h: &FileHarness, trouble: Troubled) -> FileFactory {
    FileFactory::builder(h.root())
        .filesystem(Arc::new(trouble))
        .build()
        .expect("a factory over a folder that exists")
}

/// A healthy interrupted run `good`, and a run folder `bad` whose `meta.json` does not parse.
async fn good_and_bad(h: &FileHarness) -> (RunId, RunId) {
    let factory = h.file_factory();
    let run = factory.begin(meta("good")).await.expect("begin");
    run.append(&[Event::PhaseStarted {
        index: 0,
        name: "fetch".into(),
    }])
    .await
    .expect("append");
    drop(run);
    drop(factory.begin(meta("bad")).await.expect("begin"));
    let bad = RunId::new("bad").unwrap();
    std::fs::write(h.run_dir(&bad).join("meta.json"), b"{garbage").unwrap();
    (RunId::new("good").unwrap(), bad)
}

fn actions(path: &Path) -> Vec<AuditAction> {
    let bytes = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .lines()
        .map(|line| {
            let json = line.split_once(' ').map_or(line, |(_, json)| json);
            let record: serde_json::Value = serde_json::from_str(json).expect("a record");
            serde_json::from_value(record["action"].clone()).expect("an action")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_run_whose_move_is_refused_is_left_in_place_and_the_others_are_listed() {
    for errno in [EACCES, EROFS] {
        let h = FileHarness::new();
        let (good, bad) = good_and_bad(&h).await;
        let audit = h.run_dir(&bad).join("audit.jsonl");
        let factory = troubled(
            &h,
            Troubled {
                rename_errno: Some(errno),
                read_only: false,
            },
        );

        let listed = factory.list(&RunFilter::default()).await.expect("listed");
        let ids: Vec<&RunId> = listed.iter().map(|m| &m.run_id).collect();
        assert_eq!(ids, [&good]);
        let left = factory.left_in_place().await.unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].run_id, bad);
        assert_eq!(left[0].at, h.run_dir(&bad).display().to_string());
        assert!(left[0].reason.contains("meta.json"), "{left:?}");
        assert!(left[0].error.contains("rename"), "{left:?}");
        assert!(
            h.run_dir(&bad).join("meta.json").is_file(),
            "still in place"
        );
        assert_eq!(factory.list_quarantined().await.unwrap(), Vec::new());

        // The record written ahead of the move is followed by one saying it did not happen,
        // in the run's log and in the root's.
        assert_eq!(
            actions(&audit),
            [
                AuditAction::Begun,
                AuditAction::Quarantined,
                AuditAction::LeftInPlace
            ]
        );
        let root_log = h.root().join("quarantine.jsonl");
        assert_eq!(
            actions(&root_log),
            [AuditAction::Quarantined, AuditAction::LeftInPlace]
        );

        // The same handle does not try (and record) it again at every listing.
        factory.list(&RunFilter::default()).await.expect("listed");
        assert_eq!(actions(&audit).len(), 3);
        assert_eq!(factory.left_in_place().await.unwrap(), left);

        // Once the move can happen, the next handle's listing makes it.
        let healthy = h.file_factory();
        healthy.list(&RunFilter::default()).await.expect("listed");
        assert!(!h.run_dir(&bad).exists(), "moved");
        assert_eq!(healthy.left_in_place().await.unwrap(), Vec::new());
        assert_eq!(healthy.list_quarantined().await.unwrap().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_read_only_store_damaged_entries_are_left_in_place_and_nothing_is_written() {
    let h = FileHarness::new();
    let (good, bad) = good_and_bad(&h).await;
    let stray = RunId::new("stray").unwrap();
    std::fs::write(h.run_dir(&stray), b"notes").unwrap();
    let audit = h.run_dir(&bad).join("audit.jsonl");
    let audit_before = std::fs::read(&audit).unwrap();
    let factory = troubled(
        &h,
        Troubled {
            rename_errno: None,
            read_only: true,
        },
    );

    let listed = factory.list(&RunFilter::default()).await.expect("listed");
    let ids: Vec<&RunId> = listed.iter().map(|m| &m.run_id).collect();
    assert_eq!(ids, [&good]);
    let left = factory.left_in_place().await.unwrap();
    let left_ids: Vec<&RunId> = left.iter().map(|l| &l.run_id).collect();
    assert_eq!(left_ids, [&bad, &stray]);
    for entry in &left {
        assert!(entry.error.contains("Read-only"), "{entry:?}");
    }
    assert_eq!(std::fs::read(&audit).unwrap(), audit_before);
    assert!(!h.root().join("quarantine.jsonl").exists());
    assert!(h.run_dir(&stray).is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peek_reads_a_run_on_a_read_only_store_and_writes_nothing() {
    let h = FileHarness::new();
    let (good, _) = good_and_bad(&h).await;
    // A torn last write, as a crash leaves it: `open` would cut it, `peek` leaves it.
    let journal = h.run_dir(&good).join("journal");
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(b"CJBT torn");
    std::fs::write(&journal, &bytes).unwrap();
    let audit = h.run_dir(&good).join("audit.jsonl");
    let audit_before = std::fs::read(&audit).unwrap();
    let factory = troubled(
        &h,
        Troubled {
            rename_errno: None,
            read_only: true,
        },
    );

    let refused = factory.open(&good).await.expect_err("open writes");
    assert!(
        matches!(&refused, Error::Io { source, .. } if source.raw_os_error() == Some(EROFS)),
        "{refused:?}"
    );
    let peeked = factory.peek(&good).await.expect("peek").expect("exists");
    assert_eq!(
        peeked.events,
        [Event::PhaseStarted {
            index: 0,
            name: "fetch".into(),
        }]
    );
    assert!(peeked.torn_tail.is_some(), "{peeked:?}");
    assert_eq!(std::fs::read(&journal).unwrap(), bytes, "nothing cut");
    assert_eq!(std::fs::read(&audit).unwrap(), audit_before);

    // A writer is kept out by the peek's lock only while it reads.
    let writer = h.file_factory().open(&good).await.expect("open");
    assert!(writer.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peek_reports_damaged_metadata_without_moving_it() {
    let h = FileHarness::new();
    let (_, bad) = good_and_bad(&h).await;
    let factory = troubled(
        &h,
        Troubled {
            rename_errno: None,
            read_only: true,
        },
    );
    let err = factory.peek(&bad).await.expect_err("damaged");
    assert!(
        matches!(&err, Error::Corruption { file, .. } if file == "meta.json"),
        "{err:?}"
    );
    assert!(h.run_dir(&bad).join("meta.json").is_file());
}
