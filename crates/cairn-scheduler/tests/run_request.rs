//! The scheduler tells the runner the job's facts a runner needs: when the tick was claimed,
//! when the job was created, and whether it is one-shot.

mod common;

use std::time::Duration;

use cairn_checkpoint::JobId;
use cairn_scheduler::{Clock, NewJob, Schedule};
use common::{NEW_YEAR_2026, Rig};

#[tokio::test]
async fn a_request_carries_the_claim_time_the_job_creation_time_and_one_shot() {
    let rig = Rig::memory();
    let once = JobId::new("once").unwrap();
    let every = JobId::new("every").unwrap();
    let at = NEW_YEAR_2026.plus_millis(90_000);
    rig.scheduler
        .jobs()
        .add(NewJob::new(once.clone(), "deploy", Schedule::once(at), ""))
        .await
        .unwrap();
    rig.clock.advance(Duration::from_secs(30));
    let created = rig.clock.now();
    rig.scheduler
        .jobs()
        .add(NewJob::new(
            every.clone(),
            "sync",
            Schedule::every(Duration::from_secs(60)).unwrap(),
            "",
        ))
        .await
        .unwrap();
    rig.clock.set(at);
    rig.scheduler.tick().await.unwrap();
    let requests = rig.runner.requests.lock().unwrap().clone();
    let of = |id: &JobId| {
        requests
            .iter()
            .find(|r| &r.job_id == id)
            .cloned()
            .expect("a run of the job")
    };
    let (once_run, every_run) = (of(&once), of(&every));
    assert!(once_run.one_shot && !every_run.one_shot);
    assert_eq!(once_run.job_created_at, NEW_YEAR_2026);
    assert_eq!(every_run.job_created_at, created);
    assert_eq!((once_run.claimed_at, every_run.claimed_at), (at, at));
}
