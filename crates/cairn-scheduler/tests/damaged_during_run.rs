//! A job whose stored state is damaged while its run is going: the tick skips its bookkeeping
//! (as for a job deleted meanwhile), reports it as a listing would, and the scheduler goes
//! on running the other jobs. It used to fail the tick with a store error, which stopped
//! `run_until` and with it every job.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cairn_checkpoint::{JobId, JobStore, LeftOutPlace, MemoryJobStore};
use cairn_checkpoint_file::FileJobStore;
use cairn_scheduler::{
    Clock, JobRunner, ManualClock, RunFailed, RunRequest, RunSucceeded, Scheduler, TickReport,
};
use common::{NEW_YEAR_2026, every_minute, id};

/// How the runner damages the job `victim` during its first run.
#[derive(Debug, Clone)]
enum Damage {
    /// `MemoryJobStore::damage_job`: moved aside when next met.
    MemoryMovable(MemoryJobStore),
    /// `MemoryJobStore::damage_job_in_place`: can be neither read nor moved.
    MemoryInPlace(MemoryJobStore),
    /// One byte of the job file changes, so it fails its checksum.
    FileBytes(PathBuf),
    /// `MemoryJobStore::damage_job_in_place` of the job listed after it, before its claim.
    OtherInPlace(MemoryJobStore),
    /// A document the scheduler cannot decode is written over it (the store reads it fine).
    Undecodable(Arc<dyn JobStore>),
    /// A document of a newer format version is written over it, as a newer build would.
    Newer(Arc<dyn JobStore>),
}

/// The store a case runs over, how its runner damages it, and whether the case keeps its
/// temporary folder (the file store lives there).
type Setup = (Arc<dyn JobStore>, Damage, bool);

#[derive(Debug)]
struct DamagingRunner {
    damage: Damage,
    outcome: Result<RunSucceeded, RunFailed>,
    done: Mutex<bool>,
    runs: Mutex<Vec<JobId>>,
}

#[async_trait]
impl JobRunner for DamagingRunner {
    async fn run(&self, request: &RunRequest) -> Result<RunSucceeded, RunFailed> {
        self.runs.lock().unwrap().push(request.job_id.clone());
        let victim = id("victim");
        if request.job_id != victim || std::mem::replace(&mut *self.done.lock().unwrap(), true) {
            return Ok(RunSucceeded::default());
        }
        match &self.damage {
            Damage::MemoryMovable(store) => assert!(store.damage_job(&victim)),
            Damage::MemoryInPlace(store) => assert!(store.damage_job_in_place(&victim)),
            Damage::OtherInPlace(store) => assert!(store.damage_job_in_place(&id("zother"))),
            Damage::FileBytes(path) => {
                let text = std::fs::read_to_string(path).unwrap();
                let damaged = text.replacen("\"every\"", "\"evary\"", 1);
                assert_ne!(text, damaged, "the job file names its schedule: {text}");
                std::fs::write(path, damaged).unwrap();
            }
            Damage::Undecodable(store) | Damage::Newer(store) => {
                let version = store.get(&victim).await.unwrap().unwrap().version;
                // Version 0 no build wrote: damage. A higher one is a newer build's.
                let format_version = match &self.damage {
                    Damage::Newer(_) => cairn_scheduler::JOB_FORMAT_VERSION + 1,
                    _ => 0,
                };
                let document =
                    serde_json::json!({"format_version": format_version, "id": "victim"});
                store
                    .put(&victim, Some(version), &document)
                    .await
                    .unwrap()
                    .unwrap();
            }
        }
        self.outcome.clone()
    }
}

struct Case {
    scheduler: Scheduler,
    clock: ManualClock,
    runner: Arc<DamagingRunner>,
    _dir: Option<tempfile::TempDir>,
}

async fn case(
    make: impl FnOnce(&std::path::Path) -> Setup,
    outcome: Result<RunSucceeded, RunFailed>,
) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let (store, damage, keep_dir) = make(dir.path());
    let clock = ManualClock::new(NEW_YEAR_2026);
    let runner = Arc::new(DamagingRunner {
        damage,
        outcome,
        done: Mutex::new(false),
        runs: Mutex::new(Vec::new()),
    });
    let scheduler = Scheduler::new(store, runner.clone(), Arc::new(clock.clone()));
    // Listed (and run) in id order: the damaged job first, then the one that must still run.
    scheduler.jobs().add(every_minute("victim")).await.unwrap();
    scheduler.jobs().add(every_minute("zother")).await.unwrap();
    Case {
        scheduler,
        clock,
        runner,
        _dir: keep_dir.then_some(dir),
    }
}

fn memory_movable(_: &std::path::Path) -> Setup {
    let store = MemoryJobStore::new();
    (Arc::new(store.clone()), Damage::MemoryMovable(store), false)
}

fn memory_in_place(_: &std::path::Path) -> Setup {
    let store = MemoryJobStore::new();
    (Arc::new(store.clone()), Damage::MemoryInPlace(store), false)
}

fn other_in_place(_: &std::path::Path) -> Setup {
    let store = MemoryJobStore::new();
    (Arc::new(store.clone()), Damage::OtherInPlace(store), false)
}

fn file_bytes(root: &std::path::Path) -> Setup {
    let store = FileJobStore::open(root).unwrap();
    let path = root.join("jobs").join("victim.json");
    (Arc::new(store), Damage::FileBytes(path), true)
}

fn newer(_: &std::path::Path) -> Setup {
    let store: Arc<dyn JobStore> = Arc::new(MemoryJobStore::new());
    (store.clone(), Damage::Newer(store), false)
}

fn undecodable(_: &std::path::Path) -> Setup {
    let store: Arc<dyn JobStore> = Arc::new(MemoryJobStore::new());
    (store.clone(), Damage::Undecodable(store), false)
}

/// Ticks once a minute later; the tick MUST succeed.
async fn tick(case: &Case) -> TickReport {
    case.clock.advance(std::time::Duration::from_secs(60));
    match case.scheduler.tick().await {
        Ok(report) => report,
        Err(err) => panic!("a job damaged during its run failed the whole tick: {err:?}"),
    }
}

/// The other job ran in the damaging tick and keeps running afterwards.
async fn the_other_job_goes_on(case: &Case, first: &TickReport) {
    let ran: Vec<&str> = first.runs.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(ran, ["victim", "zother"], "{first:?}");
    let other = case.scheduler.jobs().show(&id("zother")).await.unwrap();
    assert_eq!(other.last_run_at, Some(case.clock.now()));
    let second = tick(case).await;
    assert!(
        second.runs.iter().any(|r| r.job_id.as_str() == "zother"),
        "{second:?}"
    );
}

async fn a_quarantined_job_is_reported_and_skipped(
    make: fn(&std::path::Path) -> Setup,
    outcome: Result<RunSucceeded, RunFailed>,
) {
    let case = case(make, outcome).await;
    let first = tick(&case).await;
    assert_eq!(first.left_out.len(), 1, "{first:?}");
    let entry = &first.left_out[0];
    assert_eq!(entry.id, Some(id("victim")));
    assert!(
        matches!(entry.place, LeftOutPlace::Quarantined { .. }),
        "{entry:?}"
    );
    assert!(first.unreadable.is_empty(), "{first:?}");
    assert!(first.tripped.is_empty(), "{first:?}");
    // Moved aside: it is no longer a job.
    assert!(matches!(
        case.scheduler.jobs().show(&id("victim")).await,
        Err(cairn_scheduler::Error::NotFound { .. })
    ));
    the_other_job_goes_on(&case, &first).await;
    assert!(
        !case
            .runner
            .runs
            .lock()
            .unwrap()
            .iter()
            .skip(2)
            .any(|job| job.as_str() == "victim"),
        "the quarantined job ran again"
    );
}

#[tokio::test]
async fn a_memory_job_moved_aside_during_its_successful_run() {
    a_quarantined_job_is_reported_and_skipped(memory_movable, Ok(RunSucceeded::default())).await;
}

#[tokio::test]
async fn a_memory_job_moved_aside_during_its_failed_run() {
    a_quarantined_job_is_reported_and_skipped(memory_movable, Err(RunFailed::new("down"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_file_failing_its_checksum_after_its_run() {
    // The reviewer's repro: `cairn scheduler` exited with 5 and every job stopped.
    a_quarantined_job_is_reported_and_skipped(file_bytes, Ok(RunSucceeded::default())).await;
}

#[tokio::test]
async fn a_job_left_in_place_is_reported_by_the_next_listing() {
    let case = case(memory_in_place, Ok(RunSucceeded::default())).await;
    let first = tick(&case).await;
    assert!(first.unreadable.is_empty(), "{first:?}");
    the_other_job_goes_on(&case, &first).await;
    // `the_other_job_goes_on` ticked once more: that listing reported it, in place.
    let third = tick(&case).await;
    assert!(third.left_out.is_empty(), "reported once: {third:?}");
    let audit = case
        .scheduler
        .jobs()
        .audit_log(&id("victim"))
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.action == cairn_checkpoint::JobAuditAction::LeftInPlace),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_job_in_place_is_left_out_of_the_second_tick() {
    let case = case(memory_in_place, Err(RunFailed::new("down"))).await;
    tick(&case).await;
    let second = tick(&case).await;
    assert_eq!(second.left_out.len(), 1, "{second:?}");
    assert!(
        matches!(second.left_out[0].place, LeftOutPlace::LeftInPlace { .. }),
        "{second:?}"
    );
    let ran: Vec<&str> = second.runs.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(ran, ["zother"]);
}

#[tokio::test]
async fn a_job_that_no_longer_decodes_is_reported_unreadable() {
    let case = case(undecodable, Err(RunFailed::new("down"))).await;
    let first = tick(&case).await;
    assert_eq!(first.unreadable.len(), 1, "{first:?}");
    assert_eq!(first.unreadable[0].0, id("victim"));
    assert!(first.left_out.is_empty(), "{first:?}");
    the_other_job_goes_on(&case, &first).await;
}

/// A newer build rewrote the job during its run: its outcome is not recorded over the newer
/// document, the tick goes on, and the next one reports the job as left for that build.
#[tokio::test]
async fn a_job_a_newer_build_rewrote_during_its_run_is_left_to_it() {
    let case = case(newer, Err(RunFailed::new("down"))).await;
    let first = tick(&case).await;
    let ran: Vec<&str> = first.runs.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(ran, ["victim", "zother"], "{first:?}");
    assert!(first.unreadable.is_empty(), "{first:?}");
    let store = case.scheduler.jobs().store();
    let stored = store.get(&id("victim")).await.unwrap().unwrap();
    assert_eq!(
        stored.document["format_version"],
        cairn_scheduler::JOB_FORMAT_VERSION + 1,
        "left as the newer build wrote it: {stored:?}"
    );
    let second = tick(&case).await;
    let ran: Vec<&str> = second.runs.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(ran, ["zother"], "{second:?}");
    let left: Vec<&str> = second.left_out.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(left, ["victim"], "{second:?}");
    assert!(matches!(
        second.left_out[0].place,
        LeftOutPlace::NewerFormat { .. }
    ));
    assert_eq!(store.get(&id("victim")).await.unwrap().unwrap(), stored);
}

#[tokio::test]
async fn a_job_damaged_after_the_listing_is_not_claimed_and_the_tick_goes_on() {
    let case = case(other_in_place, Ok(RunSucceeded::default())).await;
    let first = tick(&case).await;
    let ran: Vec<&str> = first.runs.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(ran, ["victim"], "{first:?}");
    let victim = case.scheduler.jobs().show(&id("victim")).await.unwrap();
    assert_eq!(victim.last_run_at, Some(case.clock.now()), "recorded");
    let second = tick(&case).await;
    assert_eq!(second.left_out.len(), 1, "{second:?}");
    let ran: Vec<&str> = second.runs.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(ran, ["victim"], "{second:?}");
}
