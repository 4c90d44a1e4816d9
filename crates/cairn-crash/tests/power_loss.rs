//! The power-loss exploration: a correct adapter passes, and a layer that breaks a
//! durability rule is caught.

use std::io;
use std::path::Path;
use std::sync::Arc;

use cairn_checkpoint_file::{Filesystem, FsFile, OpenMode};
use cairn_crash::disk_model::DiskModel;
use cairn_crash::power_loss::{PowerLossOptions, run, run_workload, run_workload_over};

/// The file adapter with `Durability::Sync` over `disk` (state folder `/data`), and a runtime
/// to drive it.
fn synced_file_adapter_on(
    disk: &DiskModel,
) -> (cairn_checkpoint_file::FileFactory, tokio::runtime::Runtime) {
    disk.create_durable_dir(Path::new("/data")).unwrap();
    let factory = cairn_checkpoint_file::FileFactory::builder("/data")
        .filesystem(Arc::new(disk.clone()))
        .durability(cairn_checkpoint::Durability::Sync)
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    (factory, runtime)
}

#[test]
fn the_file_adapter_survives_every_explored_crash_state() {
    let totals = run_workload(11, 20).unwrap();
    assert!(totals.states > 50, "only {} states explored", totals.states);
    assert_eq!(totals.violations, 0, "{:#?}", totals.problems);
}

#[test]
fn run_explores_at_least_the_requested_states() {
    let totals = run(&PowerLossOptions {
        seed: 3,
        states: 300,
        tasks: 15,
    })
    .unwrap();
    assert!(totals.states >= 300);
    assert!(totals.workloads >= 1);
    assert_eq!(totals.violations, 0, "{:#?}", totals.problems);
}

/// A layer that breaks one durability rule: the fdatasync of files with one name (or every
/// directory fsync) returns Ok without making anything durable.
#[derive(Debug)]
struct LyingSync {
    disk: DiskModel,
    /// The name of the files whose fdatasync lies, if any.
    lying_file: Option<&'static str>,
    dir_sync: bool,
    /// Whether the rename that installs a `meta.json` saying `completed` returns Ok
    /// without happening.
    completed_meta_rename: bool,
}

#[derive(Debug)]
struct LyingFile(Box<dyn FsFile>);

impl FsFile for LyingFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    // Forwarded so that the adapter takes its real, preallocated write path.
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.0.write_at(offset, buf)
    }
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        self.0.read_all()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_at(offset, buf)
    }
    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        self.0.size()
    }
    fn try_lock(&self) -> io::Result<bool> {
        self.0.try_lock()
    }
    fn try_lock_shared(&self) -> io::Result<bool> {
        self.0.try_lock_shared()
    }
    fn lock(&self) -> io::Result<()> {
        self.0.lock()
    }
    fn unlock(&self) -> io::Result<()> {
        self.0.unlock()
    }
}

impl Filesystem for LyingSync {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let inner = self.disk.open(path, mode)?;
        let lies = self
            .lying_file
            .is_some_and(|name| path.file_name().is_some_and(|n| n == name));
        if lies {
            Ok(Box::new(LyingFile(inner)))
        } else {
            Ok(inner)
        }
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.disk.read(path)
    }
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        self.disk.create_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.disk.create_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let completes = self.completed_meta_rename
            && to.file_name().is_some_and(|n| n == "meta.json")
            && String::from_utf8_lossy(&self.disk.read(from)?).contains("\"completed\"");
        if completes {
            Ok(())
        } else {
            self.disk.rename(from, to)
        }
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        if self.dir_sync {
            Ok(())
        } else {
            self.disk.sync_dir(path)
        }
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.disk.list_dir(path)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.disk.exists(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.disk.remove_dir_all(path)
    }
}

#[test]
fn a_journal_fsync_that_does_nothing_is_caught_as_lost_acknowledged_transitions() {
    let totals = run_workload_over(11, 20, &|disk| {
        Arc::new(LyingSync {
            disk,
            lying_file: Some("journal"),
            dir_sync: false,
            completed_meta_rename: false,
        })
    })
    .unwrap();
    assert!(totals.violations > 0, "the lying fsync went unnoticed");
    assert!(
        totals.problems.iter().any(|p| p.contains("LOST")),
        "{:#?}",
        totals.problems
    );
}

#[test]
fn a_directory_fsync_that_does_nothing_is_caught() {
    let totals = run_workload_over(12, 20, &|disk| {
        Arc::new(LyingSync {
            disk,
            lying_file: None,
            dir_sync: true,
            completed_meta_rename: false,
        })
    })
    .unwrap();
    // The run's new folder is lost with the directory entry that was never made durable.
    assert!(
        totals
            .problems
            .iter()
            .any(|p| p.contains("begin was acknowledged but the run is missing")),
        "the lying directory fsync went unnoticed: {:#?}",
        totals.problems
    );
}

#[test]
fn an_audit_fsync_that_does_nothing_is_caught_as_a_missing_audit_record() {
    let totals = run_workload_over(13, 20, &|disk| {
        Arc::new(LyingSync {
            disk,
            lying_file: Some("audit.jsonl"),
            dir_sync: false,
            completed_meta_rename: false,
        })
    })
    .unwrap();
    assert!(
        totals
            .problems
            .iter()
            .any(|p| p.contains("audit record") && p.contains("missing")),
        "the lying audit fsync went unnoticed: {:#?}",
        totals.problems
    );
}

/// The model must see the adapter's real write path: a synced journal is preallocated and
/// then overwritten in place (positioned writes), not appended.
#[test]
fn the_file_adapter_preallocates_its_journal_on_the_model() {
    use cairn_checkpoint::{CheckpointerFactory as _, RunId, RunMeta};
    use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};

    let disk = DiskModel::new();
    let (factory, runtime) = synced_file_adapter_on(&disk);
    let mut queue = Queue::new(QueueConfig::default());
    queue
        .enqueue(TaskSpec::new("step"), EnqueuedBy::Root, Timestamp(1))
        .unwrap();
    let id = RunId::new("prealloc").unwrap();
    runtime.block_on(async {
        let run = factory
            .begin(RunMeta::new(id.clone(), "wf", "scope", "in", Timestamp(1)))
            .await
            .unwrap();
        run.append(queue.events()).await.unwrap();
    });
    let journal = disk.read(Path::new("/data/runs/prealloc/journal")).unwrap();
    let used = journal
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |last| last + 1);
    assert!(used > 0, "the record was written");
    assert!(
        journal.len() >= 64 * 1024 && journal.len() > used,
        "journal of {} bytes with {used} in use is not preallocated",
        journal.len()
    );
}

/// A power cut during the fdatasync of a multi-page, unacknowledged append can leave a later
/// page of it on disk without the first. Nothing of that append was acknowledged, so the
/// run must open with every acknowledged event and the damaged batch cut as a torn tail,
/// not stop with `Corruption` (which would need an operator although nothing was lost).
#[test]
fn later_pages_of_an_unacknowledged_batch_without_the_first_are_cut_as_a_torn_tail() {
    use cairn_checkpoint::{CheckpointerFactory as _, RunId, RunMeta};
    use cairn_crash::disk_model::{CrashChoice, DiskState, PageFate, WriteFate};
    use cairn_queue::{EnqueuedBy, Queue, QueueConfig, TaskSpec, Timestamp};

    let disk = DiskModel::new();
    let (factory, runtime) = synced_file_adapter_on(&disk);
    let mut queue = Queue::new(QueueConfig::default());
    let mut enqueue = |pad: usize, n: usize| {
        for i in 0..n {
            let spec =
                TaskSpec::new("step").inputs(serde_json::json!({ "i": i, "pad": "x".repeat(pad) }));
            queue.enqueue(spec, EnqueuedBy::Root, Timestamp(1)).unwrap();
        }
        queue.take_events()
    };
    let acknowledged = enqueue(100, 3);
    // Four events of about 3 KiB each: one batch over at least three pages, so at least one
    // whole record lies in pages after the first.
    let in_flight = enqueue(3000, 4);
    let id = RunId::new("pages").unwrap();

    // The disk just before each fdatasync; the last one is the in-flight batch's.
    let before_sync = Arc::new(std::sync::Mutex::new(None::<DiskState>));
    let sink = Arc::clone(&before_sync);
    runtime.block_on(async {
        let run = factory
            .begin(RunMeta::new(id.clone(), "wf", "scope", "in", Timestamp(1)))
            .await
            .unwrap();
        run.append(&acknowledged).await.unwrap();
        disk.set_recorder(
            1,
            0,
            Box::new(move |state, _, name| {
                if name == "fdatasync" {
                    *sink.lock().unwrap() = Some(state.clone());
                }
            }),
        );
        run.append(&in_flight).await.unwrap();
        disk.clear_recorder();
    });
    let state = before_sync
        .lock()
        .unwrap()
        .take()
        .expect("the batch was synced");
    let pages = state
        .last_unsynced_pages()
        .expect("the batch is not durable yet");
    assert!(pages >= 3, "the batch spans {pages} pages");
    let mut later_only = vec![PageFate::Whole; pages];
    later_only[0] = PageFate::Lost;
    let image = state.crash_image(&CrashChoice {
        keep_dir_ops: state.pending_dir_ops(),
        last_write: WriteFate::Pages(later_only),
        resizes_persist: false,
    });

    let factory = cairn_checkpoint_file::FileFactory::builder("/data")
        .filesystem(Arc::new(DiskModel::from_state(image)))
        .build()
        .unwrap();
    let opened = runtime
        .block_on(factory.open(&id))
        .expect("a power cut during an unacknowledged batch is not corruption")
        .expect("the run exists");
    assert_eq!(opened.recovered.events, acknowledged);
    assert!(
        opened.recovered.torn_tail.is_some(),
        "the damaged batch is cut and reported"
    );
}

/// A store that renames its snapshot's temp file into place before that file's data is
/// durable (temp file, rename, directory fsync, with the temp file's fdatasync doing
/// nothing) is caught.
#[test]
fn a_snapshot_renamed_before_its_fsync_is_caught() {
    let totals = run_workload_over(14, 20, &|disk| {
        Arc::new(LyingSync {
            disk,
            lying_file: Some("queue.json.tmp"),
            dir_sync: false,
            completed_meta_rename: false,
        })
    })
    .unwrap();
    assert!(
        totals.violations > 0,
        "a snapshot installed without its fsync went unnoticed"
    );
}

/// The same for `meta.json`, which holds the run's status.
#[test]
fn metadata_renamed_before_its_fsync_is_caught() {
    let totals = run_workload_over(15, 20, &|disk| {
        Arc::new(LyingSync {
            disk,
            lying_file: Some("meta.json.tmp"),
            dir_sync: false,
            completed_meta_rename: false,
        })
    })
    .unwrap();
    assert!(
        totals.violations > 0,
        "metadata installed without its fsync went unnoticed"
    );
}

/// A store whose last `meta.json` (the one saying the run completed) never lands, while
/// the completion is acknowledged, is caught.
#[test]
fn a_completion_whose_metadata_never_lands_is_caught() {
    let totals = run_workload_over(16, 20, &|disk| {
        Arc::new(LyingSync {
            disk,
            lying_file: None,
            dir_sync: false,
            completed_meta_rename: true,
        })
    })
    .unwrap();
    assert!(
        totals
            .problems
            .iter()
            .any(|p| p.contains("completion was acknowledged but the run is running")),
        "a lost completion went unnoticed: {:#?}",
        totals.problems
    );
}
