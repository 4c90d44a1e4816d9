//! The power-loss verdicts that need a store recovering something other than what it was
//! given: an event changed on its way to the journal (checksummed as written, so recovery
//! accepts it) is reported as "recovered events ... differ from what was appended", and a
//! stale snapshot installed as covering later records as "the snapshot covering N records
//! differs from the replayed history".

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cairn_checkpoint::{AuditRecord, Checkpointer, Recovered, RunError, RunId, RunMeta};
use cairn_checkpoint_file::{Filesystem, FsFile, OpenMode};
use cairn_crash::disk_model::DiskModel;
use cairn_crash::power_loss::{PowerLossTotals, run_workload_layered};
use cairn_queue::{Event, Snapshot, Timestamp};

/// A faulty adapter layer: every `Started` event it appends says it started one tick later
/// than the executor said. The store checksums what it is given, so the change reads back
/// as a valid record.
#[derive(Debug)]
struct RetimedStarts(Box<dyn Checkpointer>);

#[async_trait]
impl Checkpointer for RetimedStarts {
    fn run_id(&self) -> &RunId {
        self.0.run_id()
    }
    async fn append(&self, events: &[Event]) -> cairn_checkpoint::Result<()> {
        let changed: Vec<Event> = events
            .iter()
            .cloned()
            .map(|event| match event {
                Event::Started { id, attempt, at } => Event::Started {
                    id,
                    attempt,
                    at: Timestamp(at.0 + 1),
                },
                other => other,
            })
            .collect();
        self.0.append(&changed).await
    }
    async fn install_snapshot(&self, snapshot: &Snapshot) -> cairn_checkpoint::Result<()> {
        self.0.install_snapshot(snapshot).await
    }
    async fn load(&self) -> cairn_checkpoint::Result<Recovered> {
        self.0.load().await
    }
    async fn audit(&self, record: &AuditRecord) -> cairn_checkpoint::Result<()> {
        self.0.audit(record).await
    }
    async fn complete(&self) -> cairn_checkpoint::Result<RunMeta> {
        self.0.complete().await
    }
    async fn fail(&self, error: &RunError) -> cairn_checkpoint::Result<RunMeta> {
        self.0.fail(error).await
    }
}

/// The problems of `totals` that are not `verdict`.
fn others<'a>(totals: &'a PowerLossTotals, verdict: &str) -> Vec<&'a String> {
    totals
        .problems
        .iter()
        .filter(|problem| !problem.contains(verdict))
        .collect()
}

#[test]
fn an_event_changed_on_its_way_to_the_journal_is_reported_as_differing_events() {
    let totals = run_workload_layered(
        21,
        20,
        &|disk| Arc::new(disk),
        Some(Arc::new(|inner| Box::new(RetimedStarts(inner)))),
    )
    .unwrap();
    assert!(totals.violations > 0, "a changed event went unnoticed");
    // The first image holding a changed record comes before any snapshot covering it.
    let first = &totals.problems[0];
    assert!(
        first.contains(": recovered events ") && first.ends_with(" differ from what was appended"),
        "{:#?}",
        totals.problems
    );
    assert_eq!(totals.corruption_stops, 0, "{:#?}", totals.problems);
    // Later images may recover a snapshot built from the changed records; nothing else.
    let unexpected: Vec<_> = others(&totals, " differ from what was appended")
        .into_iter()
        .filter(|problem| !problem.contains(" differs from the replayed history"))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}

/// A layer that installs stale snapshots: every `queue.json` after the first gets the first
/// one's queue state, with the `covers_seq` the store gave it.
#[derive(Debug)]
struct StaleSnapshots {
    disk: DiskModel,
    /// The first snapshot written, as JSON.
    first: Arc<Mutex<Option<serde_json::Value>>>,
}

/// The temp file of one `queue.json`: its one write is rewritten with the stale state.
#[derive(Debug)]
struct StaleQueueFile {
    inner: Box<dyn FsFile>,
    first: Arc<Mutex<Option<serde_json::Value>>>,
}

impl FsFile for StaleQueueFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut file: serde_json::Value = serde_json::from_slice(buf).map_err(io::Error::other)?;
        let mut first = self.first.lock().unwrap();
        match &*first {
            Some(stale) => {
                file["snapshot"] = stale.clone();
                // The bug modelled is a writer's, not the disk's: the stale file carries a
                // checksum that holds (queue.json format 2), so only the verifier's replay
                // can tell it is stale.
                let head = format!(
                    "{} {} {} ",
                    file["format_version"],
                    file["run_id"].as_str().unwrap_or_default(),
                    file["covers_seq"]
                );
                let snapshot = serde_json::to_vec(stale).map_err(io::Error::other)?;
                let sum = crc32c::crc32c_append(crc32c::crc32c(head.as_bytes()), &snapshot);
                file["crc32c"] = sum.into();
            }
            None => {
                *first = Some(file["snapshot"].clone());
                // Written as it came: its checksum covers the snapshot's bytes as laid out.
                return self.inner.write_all(buf);
            }
        }
        let bytes = serde_json::to_vec(&file).map_err(io::Error::other)?;
        self.inner.write_all(&bytes)
    }
    fn read_all(&mut self) -> io::Result<Vec<u8>> {
        self.inner.read_all()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_at(offset, buf)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.inner.sync_data()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
    fn try_lock(&self) -> io::Result<bool> {
        self.inner.try_lock()
    }
    fn try_lock_shared(&self) -> io::Result<bool> {
        self.inner.try_lock_shared()
    }
    fn lock(&self) -> io::Result<()> {
        self.inner.lock()
    }
    fn unlock(&self) -> io::Result<()> {
        self.inner.unlock()
    }
}

impl Filesystem for StaleSnapshots {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FsFile>> {
        let inner = self.disk.open(path, mode)?;
        if path.file_name().is_some_and(|n| n == "queue.json.tmp") {
            Ok(Box::new(StaleQueueFile {
                inner,
                first: Arc::clone(&self.first),
            }))
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
        self.disk.rename(from, to)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.disk.sync_dir(path)
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
fn a_stale_snapshot_is_reported_as_differing_from_the_replayed_history() {
    let totals = run_workload_layered(
        22,
        20,
        &|disk| {
            Arc::new(StaleSnapshots {
                disk,
                first: Arc::default(),
            })
        },
        None,
    )
    .unwrap();
    const VERDICT: &str = " differs from the replayed history";
    assert!(
        totals
            .problems
            .iter()
            .any(|p| p.contains(": the snapshot covering ") && p.ends_with(VERDICT)),
        "a stale snapshot went unnoticed: {:#?}",
        totals.problems
    );
    // The journal is untouched, so no other verdict may fire.
    assert_eq!(totals.corruption_stops, 0, "{:#?}", totals.problems);
    assert!(
        others(&totals, VERDICT).is_empty(),
        "{:#?}",
        totals.problems
    );
}
