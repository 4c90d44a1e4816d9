//! One file job store shared the way a production host shares it: two schedulers at once, an
//! operator racing the scheduler's bookkeeping, and job files damaged on disk.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_checkpoint::{JobAuditAction, JobStore};
use cairn_checkpoint_file::FileJobStore;
use cairn_scheduler::{Error, JobStatus, ManualClock, Scheduler, SchedulerConfig};
use common::{NEW_YEAR_2026, Rig, ScriptedRunner, every_minute, id};

fn file_store(dir: &Path) -> Arc<dyn JobStore> {
    Arc::new(FileJobStore::open(dir).expect("open the file job store"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_on_one_store_start_every_tick_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(NEW_YEAR_2026);
    let runner = ScriptedRunner::default();
    let scheduler = || {
        Scheduler::new(
            file_store(dir.path()),
            Arc::new(runner.clone()),
            Arc::new(clock.clone()),
        )
    };
    let (a, b) = (scheduler(), scheduler());
    for n in 0..4 {
        a.jobs()
            .add(every_minute(&format!("job-{n}")))
            .await
            .unwrap();
    }
    for _ in 0..15 {
        clock.advance(Duration::from_secs(60));
        let (ra, rb) = tokio::join!(
            tokio::spawn({
                let a = a.clone();
                async move { a.tick().await }
            }),
            tokio::spawn({
                let b = b.clone();
                async move { b.tick().await }
            }),
        );
        let (ra, rb) = (ra.unwrap().unwrap(), rb.unwrap().unwrap());
        assert_eq!(ra.runs.len() + rb.runs.len(), 4, "{ra:?} {rb:?}");
    }
    let requests = runner.requests.lock().unwrap();
    let distinct: BTreeSet<_> = requests
        .iter()
        .map(|r| (r.job_id.clone(), r.scheduled_for))
        .collect();
    assert_eq!(requests.len(), 60);
    assert_eq!(distinct.len(), 60, "a tick was started twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_pausing_and_resuming_never_loses_a_recorded_failure() {
    let dir = tempfile::tempdir().unwrap();
    let rig = Rig::over(file_store(dir.path()), SchedulerConfig::default());
    rig.runner.set_failing(true);
    let job_id = id("contested");
    rig.scheduler
        .jobs()
        .add(every_minute("contested").max_consecutive_errors(1_000))
        .await
        .unwrap();
    // The operator gives up with `Contended` after 16 lost races in a row (it happens when
    // it loops as fast as the disk allows) and tries again; the scheduler tries 256 times,
    // and a run whose outcome still could not be written is counted as unrecorded.
    let operator = tokio::spawn({
        let jobs = rig.scheduler.jobs().clone();
        let job_id = job_id.clone();
        async move {
            for _ in 0..25 {
                loop {
                    match jobs.pause(&job_id).await {
                        Ok(_) | Err(Error::NotActive { .. }) => break,
                        Err(Error::Contended { .. }) => continue,
                        Err(err) => panic!("pause: {err:?}"),
                    }
                }
                loop {
                    match jobs.resume(&job_id, false).await {
                        Ok(_) | Err(Error::AlreadyActive { .. }) => break,
                        Err(Error::Contended { .. }) => continue,
                        Err(err) => panic!("resume: {err:?}"),
                    }
                }
            }
        }
    });
    let mut unrecorded = 0;
    let mut tick = async || {
        rig.clock.advance(Duration::from_secs(60));
        match rig.scheduler.tick().await {
            Ok(_) => {}
            Err(failed) if matches!(failed.error, Error::Contended { .. }) => unrecorded += 1,
            Err(err) => panic!("tick: {err:?}"),
        }
    };
    for _ in 0..25 {
        tick().await;
    }
    operator.await.unwrap();
    // The operator's last step was a resume, so this tick runs the job.
    tick().await;
    let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
    assert!(rig.runner.runs() > unrecorded);
    // Every failed run whose outcome was written was counted once: no compare-and-swap
    // overwrote another's change.
    assert_eq!(
        job.consecutive_errors as usize,
        rig.runner.runs() - unrecorded
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_job_files_are_quarantined_byte_for_byte_and_the_other_jobs_run() {
    let dir = tempfile::tempdir().unwrap();
    let rig = Rig::over(file_store(dir.path()), SchedulerConfig::default());
    for name in ["truncated", "foreign", "empty", "healthy"] {
        rig.scheduler.jobs().add(every_minute(name)).await.unwrap();
    }
    let jobs_dir = dir.path().join("jobs");
    let whole = std::fs::read(jobs_dir.join("truncated.json")).unwrap();
    let damaged = [
        ("truncated", whole[..whole.len() / 2].to_vec()),
        ("foreign", br#"{"kind": "someone else's file"}"#.to_vec()),
        ("empty", Vec::new()),
    ];
    for (name, bytes) in &damaged {
        std::fs::write(jobs_dir.join(format!("{name}.json")), bytes).unwrap();
    }
    rig.clock.advance(Duration::from_secs(60));
    let report = rig.scheduler.tick().await.unwrap();
    let ran: Vec<_> = report.runs.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(ran, ["healthy"]);

    let kept: Vec<Vec<u8>> = std::fs::read_dir(jobs_dir.join("quarantine"))
        .unwrap()
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    for (name, bytes) in &damaged {
        assert!(kept.contains(bytes), "{name}: its bytes were not kept");
        let actions: Vec<_> = rig
            .scheduler
            .jobs()
            .audit_log(&id(name))
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(
            actions,
            [JobAuditAction::Created, JobAuditAction::Quarantined]
        );
        assert!(matches!(
            rig.scheduler.jobs().show(&id(name)).await,
            Err(Error::NotFound { .. })
        ));
    }
    let healthy = rig.scheduler.jobs().show(&id("healthy")).await.unwrap();
    assert_eq!(healthy.status, JobStatus::Active);
}
