//! Missed ticks after downtime: one catch-up run by default, not a burst; other policies.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cairn_checkpoint::MemoryJobStore;
use cairn_scheduler::{CatchUp, Clock, NewJob, Schedule, SchedulerConfig, Zone};
use common::{NEW_YEAR_2026, Rig, every_minute, id};

fn rig(catch_up: CatchUp) -> Rig {
    Rig::over(
        Arc::new(MemoryJobStore::new()),
        SchedulerConfig {
            catch_up,
            ..SchedulerConfig::default()
        },
    )
}

#[tokio::test]
async fn after_downtime_an_interval_job_runs_once_not_a_burst() {
    let rig = rig(CatchUp::default());
    let job_id = id("hourly-ish");
    rig.scheduler
        .jobs()
        .add(every_minute("hourly-ish"))
        .await
        .unwrap();
    // The scheduler was down for ten and a half minutes: ten ticks were missed.
    rig.clock.advance(Duration::from_secs(10 * 60 + 30));
    let report = rig.scheduler.tick().await.unwrap();
    assert_eq!(
        report.runs.len(),
        1,
        "one catch-up run, not {}",
        report.runs.len()
    );
    assert_eq!(report.missed_not_run, 9);
    assert_eq!(
        report.runs[0].scheduled_for,
        NEW_YEAR_2026.plus_millis(60_000)
    );
    let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
    assert_eq!(
        job.next_run_at,
        Some(NEW_YEAR_2026.plus_millis(11 * 60_000))
    );
    assert_eq!(job.last_run_at, Some(rig.clock.now()));
    // Ticking again at the same instant starts nothing more.
    assert!(rig.scheduler.tick().await.unwrap().runs.is_empty());
    assert_eq!(rig.runner.runs(), 1);
}

#[tokio::test]
async fn after_downtime_a_cron_job_runs_once_not_a_burst() {
    let rig = rig(CatchUp::One);
    let job_id = id("every-ten-seconds");
    let schedule = Schedule::cron("*/10 * * * * *", Zone::Utc).unwrap();
    rig.scheduler
        .jobs()
        .add(NewJob::new(job_id.clone(), "ten", schedule, "wf.toml"))
        .await
        .unwrap();
    rig.clock.advance(Duration::from_secs(3600));
    let report = rig.scheduler.tick().await.unwrap();
    assert_eq!(report.runs.len(), 1);
    let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
    assert_eq!(job.next_run_at, Some(NEW_YEAR_2026.plus_millis(3_610_000)));
}

#[tokio::test]
async fn skip_runs_none_of_the_missed_ticks_but_an_on_time_tick_runs() {
    let rig = rig(CatchUp::Skip);
    let job_id = id("skipper");
    rig.scheduler
        .jobs()
        .add(every_minute("skipper"))
        .await
        .unwrap();
    rig.clock.advance(Duration::from_secs(5 * 60 + 1));
    let report = rig.scheduler.tick().await.unwrap();
    assert!(report.runs.is_empty());
    assert_eq!(report.missed_not_run, 5);
    let job = rig.scheduler.jobs().show(&job_id).await.unwrap();
    assert_eq!(job.next_run_at, Some(NEW_YEAR_2026.plus_millis(6 * 60_000)));
    let report = rig.tick_when_due(&job_id).await;
    assert_eq!(
        report.runs.len(),
        1,
        "an on-time tick still runs under Skip"
    );
}

#[tokio::test]
async fn all_runs_each_missed_tick_up_to_its_bound() {
    let rig = rig(CatchUp::All { max: 3 });
    rig.scheduler
        .jobs()
        .add(every_minute("thorough"))
        .await
        .unwrap();
    rig.clock.advance(Duration::from_secs(5 * 60));
    let report = rig.scheduler.tick().await.unwrap();
    let times: Vec<u64> = report
        .runs
        .iter()
        .map(|r| r.scheduled_for.0 - NEW_YEAR_2026.0)
        .collect();
    assert_eq!(times, [60_000, 120_000, 180_000]);
    assert_eq!(report.missed_not_run, 2);
}

#[tokio::test]
async fn a_clock_set_back_reruns_nothing_and_the_job_waits_for_its_stored_next_tick() {
    let rig = rig(CatchUp::One);
    let job_id = id("set-back");
    rig.scheduler
        .jobs()
        .add(every_minute("set-back"))
        .await
        .unwrap();
    let report = rig.tick_when_due(&job_id).await;
    assert_eq!(report.runs.len(), 1);
    let next = rig
        .scheduler
        .jobs()
        .show(&job_id)
        .await
        .unwrap()
        .next_run_at
        .unwrap();
    // An hour back: the tick that already ran is not run again, and nothing else is due.
    rig.clock
        .set(cairn_queue::Timestamp(NEW_YEAR_2026.0 - 3_600_000));
    assert!(rig.scheduler.tick().await.unwrap().runs.is_empty());
    rig.clock.set(cairn_queue::Timestamp(next.0 - 1));
    assert!(rig.scheduler.tick().await.unwrap().runs.is_empty());
    rig.clock.set(next);
    let report = rig.scheduler.tick().await.unwrap();
    assert_eq!(report.runs.len(), 1);
    assert_eq!(report.runs[0].scheduled_for, next);
    assert_eq!(rig.runner.runs(), 2);
}

#[tokio::test]
async fn all_is_bounded_by_the_scan_limit_however_large_its_max() {
    let rig = rig(CatchUp::All { max: u32::MAX });
    rig.scheduler
        .jobs()
        .add(NewJob::new(
            id("every-second"),
            "s",
            Schedule::every(Duration::from_secs(1)).unwrap(),
            "wf.toml",
        ))
        .await
        .unwrap();
    // A day of downtime: 86,400 missed ticks.
    rig.clock.advance(Duration::from_secs(24 * 3600));
    let report = rig.scheduler.tick().await.unwrap();
    assert_eq!(report.runs.len(), 1_001);
    assert!(rig.scheduler.tick().await.unwrap().runs.is_empty());
}
