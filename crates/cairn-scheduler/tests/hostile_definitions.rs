//! Definitions a caller or a damaged store can hand the scheduler: extreme zone offsets, zones
//! with seconds, schedules that never fire, and stored documents that no longer validate.
//! Each is a typed error or a job reported as unreadable, never a panic or a stopped tick.

mod common;

use std::time::Duration;

use cairn_checkpoint::JobStore;
use cairn_scheduler::{Error, JobStatus, NewJob, Schedule, Zone};
use common::{Rig, every_minute, id};

#[test]
fn extreme_zone_offsets_are_typed_errors_not_overflows() {
    for (hours, minutes) in [
        (i32::MAX, 0),
        (i32::MIN, 0),
        (0, i32::MIN),
        (0, i32::MAX),
        (24, 0),
        (-24, 0),
        (100_000, 0),
    ] {
        let result = std::panic::catch_unwind(|| Zone::offset(hours, minutes));
        let result = result.unwrap_or_else(|_| panic!("Zone::offset({hours}, {minutes}) panicked"));
        assert!(
            matches!(result, Err(Error::InvalidZone { .. })),
            "Zone::offset({hours}, {minutes}) = {result:?}"
        );
    }
    assert_eq!(
        Zone::offset(-23, -59).unwrap(),
        Zone::Fixed {
            offset_seconds: -(23 * 3600 + 59 * 60)
        }
    );
}

#[test]
fn every_zone_display_parses_back_to_the_same_offset() {
    for offset_seconds in [3601, -86_399, 86_399, 19_800, -1] {
        let zone = Zone::Fixed { offset_seconds };
        let text = zone.to_string();
        assert_eq!(text.parse::<Zone>().unwrap(), zone, "{text}");
    }
    // Sloppy colon placement is refused rather than guessed at.
    for bad in ["+0:530", "+05:3:0", "+05:30:", "+05:30:60", "+0530:00"] {
        assert!(
            matches!(bad.parse::<Zone>(), Err(Error::InvalidZone { .. })),
            "{bad:?} parsed"
        );
    }
}

#[tokio::test]
async fn a_job_in_a_zone_with_seconds_reads_back_after_add() {
    let rig = Rig::memory();
    let job_id = id("odd-offset");
    let zero = Schedule::cron("0 0 * * *", Zone::Fixed { offset_seconds: 0 }).unwrap();
    assert_eq!(zero, Schedule::cron("0 0 * * *", Zone::Utc).unwrap());
    let zone = Zone::Fixed {
        offset_seconds: 3601,
    };
    let added = rig
        .scheduler
        .jobs()
        .add(NewJob::new(
            job_id.clone(),
            "odd",
            Schedule::cron("0 0 * * *", zone).unwrap(),
            "wf.toml",
        ))
        .await
        .unwrap();
    // The acknowledged job must be readable: it used to be stored as `+01:00:01`, which the
    // zone parser refused, so `show` failed and every tick reported the job unreadable.
    assert_eq!(rig.scheduler.jobs().show(&job_id).await.unwrap(), added);
    assert_eq!(rig.scheduler.jobs().list().await.unwrap().len(), 1);
    let report = rig.tick_when_due(&job_id).await;
    assert!(report.unreadable.is_empty(), "{:?}", report.unreadable);
    assert_eq!(report.runs.len(), 1);
}

#[tokio::test]
async fn an_out_of_range_hand_built_zone_is_refused_before_anything_is_stored() {
    let rig = Rig::memory();
    let schedule = Schedule::Cron {
        expression: "0 0 * * *".to_owned(),
        zone: Zone::Fixed {
            offset_seconds: 100_000,
        },
    };
    assert!(matches!(
        schedule.validate(),
        Err(Error::InvalidZone { .. })
    ));
    let err = rig
        .scheduler
        .jobs()
        .add(NewJob::new(id("far-east"), "far", schedule, "wf.toml"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidZone { .. }), "{err:?}");
    assert!(
        Schedule::cron(
            "0 0 * * *",
            Zone::Fixed {
                offset_seconds: -86_400
            }
        )
        .is_err()
    );
    assert!(rig.store.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_schedule_that_never_fires_is_refused_by_add() {
    let rig = Rig::memory();
    let never = [
        ("feb-31", Schedule::cron("0 0 31 2 *", Zone::Utc).unwrap()),
        ("april-31", Schedule::cron("0 0 31 4 *", Zone::Utc).unwrap()),
        // A seven-field expression whose year field lies in the past.
        (
            "year-2020",
            Schedule::cron("0 0 0 1 1 * 2020", Zone::Utc).unwrap(),
        ),
        // Too long to add to now (built by hand: `Schedule::every` refuses it): it used to be
        // stored active with no next run.
        (
            "forever",
            Schedule::Every {
                interval_ms: u64::MAX,
            },
        ),
    ];
    for (name, schedule) in never {
        for paused in [false, true] {
            let err = rig
                .scheduler
                .jobs()
                .add(NewJob::new(id(name), name, schedule.clone(), "wf.toml").paused(paused))
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::InvalidSchedule { .. }),
                "{name} (paused: {paused}): {err:?}"
            );
        }
    }
    assert!(rig.store.list().await.unwrap().is_empty());
    // Rare but real dates are accepted: Feb 29 fires in the next leap year.
    let leap = rig
        .scheduler
        .jobs()
        .add(NewJob::new(
            id("leap-day"),
            "leap",
            Schedule::cron("0 0 29 2 *", Zone::Utc).unwrap(),
            "wf.toml",
        ))
        .await
        .unwrap();
    assert_eq!(leap.status, JobStatus::Active);
    // 2028-02-29T00:00:00Z.
    assert_eq!(leap.next_run_at.map(|t| t.0), Some(1_835_395_200_000));
}

#[test]
fn an_interval_past_the_end_of_time_never_fires_before_or_after_its_anchor() {
    // Built by hand: `Schedule::every` refuses it, but an earlier build may have stored it.
    let schedule = Schedule::Every {
        interval_ms: u64::MAX,
    };
    let anchor = cairn_queue::Timestamp(1_000);
    assert_eq!(
        schedule
            .next_after(anchor, cairn_queue::Timestamp(2_000))
            .unwrap(),
        None
    );
    // Before the anchor this used to saturate to `Timestamp(u64::MAX)` instead.
    assert_eq!(
        schedule
            .next_after(anchor, cairn_queue::Timestamp(0))
            .unwrap(),
        None
    );
}

/// Rewrites job `name`'s stored document with `change`, as a newer build or a hand edit would.
async fn tamper(rig: &Rig, name: &str, change: impl FnOnce(&mut serde_json::Value)) {
    let stored = rig.store.get(&id(name)).await.unwrap().unwrap();
    let mut document = stored.document;
    change(&mut document);
    rig.store
        .put(&id(name), Some(stored.version), &document)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_stored_job_that_no_longer_validates_is_unreadable_and_the_others_still_run() {
    let rig = Rig::memory();
    for name in ["bad-cron", "zero-interval", "zero-limit", "healthy"] {
        rig.scheduler.jobs().add(every_minute(name)).await.unwrap();
    }
    tamper(&rig, "bad-cron", |doc| {
        doc["schedule"] =
            serde_json::json!({"kind": "cron", "expression": "not cron", "zone": "UTC"});
    })
    .await;
    tamper(&rig, "zero-interval", |doc| {
        doc["schedule"] = serde_json::json!({"kind": "every", "interval_ms": 0});
    })
    .await;
    tamper(&rig, "zero-limit", |doc| {
        doc["max_consecutive_errors"] = serde_json::json!(0);
    })
    .await;
    rig.clock.advance(Duration::from_secs(60));
    // A bad stored cron expression used to fail the whole tick, so no job ran at all.
    let report = rig.scheduler.tick().await.unwrap();
    let ran: Vec<_> = report.runs.iter().map(|r| r.job_id.as_str()).collect();
    assert_eq!(ran, ["healthy"]);
    let mut unreadable: Vec<_> = report
        .unreadable
        .iter()
        .map(|(job, _)| job.as_str())
        .collect();
    unreadable.sort_unstable();
    assert_eq!(unreadable, ["bad-cron", "zero-interval", "zero-limit"]);
    // A listing sees them the same way; the strict `list` stops at the first.
    let readable = rig.scheduler.jobs().list_readable().await.unwrap();
    assert_eq!(readable.jobs.len(), 1);
    assert_eq!(readable.jobs[0].id.as_str(), "healthy");
    let listed: Vec<_> = readable
        .unreadable
        .iter()
        .map(|(job, _)| job.as_str())
        .collect();
    assert_eq!(listed, unreadable);
    assert!(matches!(
        rig.scheduler.jobs().list().await,
        Err(Error::BadDocument { .. })
    ));
    for name in unreadable {
        let err = rig.scheduler.jobs().show(&id(name)).await.unwrap_err();
        assert!(
            matches!(err, Error::BadDocument { ref id, .. } if id.as_str() == name),
            "{err:?}"
        );
        // Reported, never deleted.
        assert!(rig.store.get(&id(name)).await.unwrap().is_some());
    }
}

#[tokio::test]
async fn resuming_a_job_whose_schedule_has_no_time_left_is_refused_and_changes_nothing() {
    let rig = Rig::memory();
    let job_id = id("only-2027");
    // Midnight UTC on 2027-01-01, and never again.
    let schedule = Schedule::cron("0 0 0 1 1 * 2027", Zone::Utc).unwrap();
    rig.scheduler
        .jobs()
        .add(NewJob::new(job_id.clone(), "y", schedule, "wf.toml"))
        .await
        .unwrap();
    let paused = rig.scheduler.jobs().pause(&job_id).await.unwrap();
    rig.clock.advance(Duration::from_secs(2 * 365 * 24 * 3600));
    // It used to become active with no next run: a job that looks healthy and never runs.
    let err = rig
        .scheduler
        .jobs()
        .resume(&job_id, true)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSchedule { .. }), "{err:?}");
    assert_eq!(rig.scheduler.jobs().show(&job_id).await.unwrap(), paused);
}

#[tokio::test]
async fn every_definition_error_of_add_names_the_job() {
    let rig = Rig::memory();
    let refused = [
        // Built by hand, past the constructors' checks.
        ("short-interval", Schedule::Every { interval_ms: 10 }),
        (
            "bad-cron",
            Schedule::Cron {
                expression: "not a cron".to_owned(),
                zone: Zone::Utc,
            },
        ),
        (
            "far-zone",
            Schedule::Cron {
                expression: "0 0 * * *".to_owned(),
                zone: Zone::Fixed {
                    offset_seconds: 100_000,
                },
            },
        ),
        ("never", Schedule::cron("0 0 31 2 *", Zone::Utc).unwrap()),
    ];
    for (name, schedule) in refused {
        let err = rig
            .scheduler
            .jobs()
            .add(NewJob::new(id(name), name, schedule, "wf.toml"))
            .await
            .unwrap_err();
        let named = match &err {
            Error::InvalidSchedule { job, .. } | Error::InvalidZone { job, .. } => job.clone(),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(named, Some(id(name)), "{err:?}");
        assert!(
            err.to_string().contains(&format!("job {name}")),
            "the message names the job: {err}"
        );
    }
    assert!(rig.store.list().await.unwrap().is_empty());
}

#[test]
fn a_cron_job_in_a_named_zone_near_the_end_of_time_never_fires_instead_of_panicking() {
    // chrono's last second, +262143-12-31T23:59:59Z: a local time east of UTC is past it.
    let the_end = cairn_queue::Timestamp(8_210_266_876_799_000);
    let one_year = 365 * 86_400_000;
    for zone in ["Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"] {
        for expression in ["0 9 * * *", "*/15 * * * *"] {
            let schedule = Schedule::cron(expression, Zone::named(zone).unwrap()).unwrap();
            for after in [the_end.0 - one_year, the_end.0, u64::MAX] {
                let next =
                    schedule.next_after(cairn_queue::Timestamp(0), cairn_queue::Timestamp(after));
                // croner fires at no time past its year 5000, so nothing is left to fire.
                assert_eq!(next.unwrap(), None, "{expression} in {zone} after {after}");
            }
        }
    }
}

#[tokio::test]
async fn an_interval_longer_than_a_hundred_years_is_refused_for_a_new_job() {
    use cairn_scheduler::MAX_INTERVAL;
    // `--every 99999999999h`: it used to be accepted, first due in the year 11 million.
    let typo = Duration::from_secs(99_999_999_999 * 3600);
    for interval in [typo, MAX_INTERVAL + Duration::from_millis(1), Duration::MAX] {
        assert!(
            matches!(
                Schedule::every(interval),
                Err(Error::InvalidSchedule { .. })
            ),
            "{interval:?}"
        );
    }
    let rig = Rig::memory();
    // Built by hand, `add` refuses it too, naming the job; nothing is stored.
    let hand_built = Schedule::Every {
        interval_ms: u64::try_from(typo.as_millis()).unwrap(),
    };
    let err = rig
        .scheduler
        .jobs()
        .add(NewJob::new(
            id("typo"),
            "typo",
            hand_built.clone(),
            "wf.toml",
        ))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidSchedule { job: Some(job), .. } if job.as_str() == "typo"),
        "{err:?}"
    );
    assert!(rig.store.list().await.unwrap().is_empty());
    // A stored job with one (from an earlier build) still reads back.
    assert!(hand_built.validate().is_ok());
    // The longest interval allowed is accepted.
    let longest = Schedule::every(MAX_INTERVAL).unwrap();
    let job = rig
        .scheduler
        .jobs()
        .add(NewJob::new(id("longest"), "longest", longest, "wf.toml"))
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Active);
}
