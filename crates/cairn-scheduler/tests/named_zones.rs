//! Named IANA zones: parsing, display and storage by name, unknown names refused, and cron
//! times across the 2026 daylight-saving changes of Europe/Berlin (spring forward on March 29
//! at 01:00 UTC, fall back on October 25 at 01:00 UTC) and America/New_York (March 8 and
//! November 1), including the gap and overlap rules the module docs state.

mod common;

use std::time::Duration;

use cairn_checkpoint::{JobStore, StoredJob};
use cairn_queue::Timestamp;
use cairn_scheduler::{Error, Job, NamedZone, NewJob, Schedule, TZ_DATABASE_VERSION, Zone};
use chrono::{TimeZone, Utc};
use common::{Rig, id};

/// Milliseconds since the epoch of a UTC wall time.
fn utc(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> u64 {
    let time = Utc
        .with_ymd_and_hms(year, month, day, hour, minute, 0)
        .single()
        .expect("a valid UTC time");
    u64::try_from(time.timestamp_millis()).expect("after 1970")
}

fn berlin(expression: &str) -> Schedule {
    Schedule::cron(expression, Zone::named("Europe/Berlin").unwrap()).unwrap()
}

fn next(schedule: &Schedule, after: u64) -> Option<u64> {
    schedule
        .next_after(Timestamp(0), Timestamp(after))
        .unwrap()
        .map(|t| t.0)
}

/// Every fire time in `(after, until]`, as milliseconds.
fn fires(schedule: &Schedule, after: u64, until: u64) -> Vec<u64> {
    schedule
        .fire_times_between(Timestamp(0), Timestamp(after), Timestamp(until), 1_000)
        .unwrap()
        .into_iter()
        .map(|t| t.0)
        .collect()
}

#[test]
fn names_parse_display_and_round_trip_through_json() {
    for name in [
        "Europe/Berlin",
        "America/New_York",
        "Etc/UTC",
        "Asia/Kolkata",
        "America/Argentina/Buenos_Aires",
    ] {
        let zone: Zone = name.parse().unwrap();
        assert!(
            matches!(zone, Zone::Named(named) if named.name() == name),
            "{zone:?}"
        );
        assert_eq!(zone.to_string(), name);
        assert_eq!(Zone::named(name).unwrap(), zone);
        let json = serde_json::to_string(&zone).unwrap();
        assert_eq!(json, format!("\"{name}\""));
        assert_eq!(serde_json::from_str::<Zone>(&json).unwrap(), zone);

        let schedule = Schedule::cron("0 9 * * 1-5", zone).unwrap();
        let document = serde_json::to_value(&schedule).unwrap();
        assert_eq!(document["zone"], name, "{document}");
        assert_eq!(
            serde_json::from_value::<Schedule>(document).unwrap(),
            schedule
        );
        assert_eq!(schedule.to_string(), format!("cron `0 9 * * 1-5` ({name})"));
    }
    // The offsets and `UTC` keep their old spelling.
    assert_eq!("UTC".parse::<Zone>().unwrap(), Zone::Utc);
    // The database's own `UTC` zone is stored as `UTC`, which reads back as `Zone::Utc`: a
    // schedule built with it is built with `Zone::Utc`, so it reads back equal.
    let database_utc = Zone::named("UTC").unwrap();
    assert_eq!(database_utc.to_string(), "UTC");
    let schedule = Schedule::cron("0 9 * * *", database_utc).unwrap();
    let text = serde_json::to_string(&schedule).unwrap();
    assert_eq!(serde_json::from_str::<Schedule>(&text).unwrap(), schedule);
    assert_eq!(Zone::offset(5, 30).unwrap().to_string(), "+05:30");
    // The schedule module docs and the cairn-cli README name the version compiled in:
    // update them with chrono-tz.
    assert_eq!(TZ_DATABASE_VERSION, "2025b");
}

#[tokio::test]
async fn a_job_in_a_named_zone_is_stored_and_read_back_by_name() {
    let rig = Rig::memory();
    let schedule = berlin("0 9 * * 1-5");
    let added = rig
        .scheduler
        .jobs()
        .add(NewJob::new(
            id("standup"),
            "standup",
            schedule.clone(),
            "wf.toml",
        ))
        .await
        .unwrap();
    let stored = rig.store.get(&id("standup")).await.unwrap().unwrap();
    assert_eq!(
        stored.document["schedule"],
        serde_json::json!({"kind": "cron", "expression": "0 9 * * 1-5", "zone": "Europe/Berlin"})
    );
    let shown = rig.scheduler.jobs().show(&id("standup")).await.unwrap();
    assert_eq!(shown, added);
    assert_eq!(shown.schedule, schedule);
    // 2026-01-01 is a Thursday: its 09:00 in Berlin (CET, +01:00) is 08:00 UTC.
    assert_eq!(shown.next_run_at, Some(Timestamp(utc(2026, 1, 1, 8, 0))));
}

#[test]
fn unknown_names_are_typed_errors_naming_close_names() {
    let cases = [
        // (text, a name the reason should offer, if any)
        ("Mars/Olympus", None),
        ("europe/berlin", Some("Europe/Berlin")),
        ("Europe/Berln", Some("Europe/Berlin")),
        ("Asia/Berlin", Some("Europe/Berlin")),
        ("America/NewYork", Some("America/New_York")),
        ("Berlin", Some("Europe/Berlin")),
        ("", None),
    ];
    for (text, offered) in cases {
        let err = text.parse::<Zone>().unwrap_err();
        let Error::InvalidZone {
            job: None,
            text: ref named,
            ref reason,
        } = err
        else {
            panic!("{text:?}: {err:?}");
        };
        assert_eq!(named, text);
        if let Some(offered) = offered {
            assert!(reason.contains(&format!("`{offered}`")), "{text}: {reason}");
        }
        assert!(
            matches!(text.parse::<NamedZone>(), Err(Error::InvalidZone { .. })),
            "{text}"
        );
        assert!(matches!(Zone::named(text), Err(Error::InvalidZone { .. })));
    }
    // A job document naming an unknown zone does not decode: it is reported, not run in UTC.
    let document =
        serde_json::json!({"kind": "cron", "expression": "0 9 * * *", "zone": "Mars/Olympus"});
    assert!(serde_json::from_value::<Schedule>(document).is_err());
}

#[test]
fn daily_nine_in_berlin_follows_both_2026_dst_changes() {
    let daily = berlin("0 9 * * *");
    // Spring forward: 09:00 is 08:00 UTC (CET) up to March 28, 07:00 UTC (CEST) from March 29.
    assert_eq!(
        fires(&daily, utc(2026, 3, 27, 12, 0), utc(2026, 3, 30, 12, 0)),
        [
            utc(2026, 3, 28, 8, 0),
            utc(2026, 3, 29, 7, 0),
            utc(2026, 3, 30, 7, 0)
        ]
    );
    assert_eq!(
        next(&daily, utc(2026, 3, 28, 8, 0)),
        Some(utc(2026, 3, 29, 7, 0))
    );
    // Fall back: 07:00 UTC up to October 24, 08:00 UTC (CET again) from October 25.
    assert_eq!(
        fires(&daily, utc(2026, 10, 23, 12, 0), utc(2026, 10, 26, 12, 0)),
        [
            utc(2026, 10, 24, 7, 0),
            utc(2026, 10, 25, 8, 0),
            utc(2026, 10, 26, 8, 0)
        ]
    );
    assert_eq!(
        next(&daily, utc(2026, 10, 24, 7, 0)),
        Some(utc(2026, 10, 25, 8, 0))
    );
}

#[test]
fn local_time_uses_the_offset_in_force_at_that_instant() {
    let zone = Zone::named("Europe/Berlin").unwrap();
    let local = |ms: u64| zone.local_time(Timestamp(ms)).unwrap().to_rfc3339();
    // Either side of each 2026 change, which happens at 01:00 UTC.
    assert_eq!(local(utc(2026, 3, 29, 0, 59)), "2026-03-29T01:59:00+01:00");
    assert_eq!(local(utc(2026, 3, 29, 1, 0)), "2026-03-29T03:00:00+02:00");
    assert_eq!(local(utc(2026, 10, 25, 0, 59)), "2026-10-25T02:59:00+02:00");
    assert_eq!(local(utc(2026, 10, 25, 1, 0)), "2026-10-25T02:00:00+01:00");
    // Fixed offsets and UTC never change.
    let ist = Zone::offset(5, 30).unwrap();
    let summer = Timestamp(utc(2026, 7, 1, 0, 0));
    assert_eq!(
        ist.local_time(summer).unwrap().to_rfc3339(),
        "2026-07-01T05:30:00+05:30"
    );
    assert_eq!(
        Zone::Utc.local_time(summer).unwrap().to_rfc3339(),
        "2026-07-01T00:00:00+00:00"
    );
}

#[test]
fn a_fixed_time_in_the_spring_forward_gap_runs_when_the_gap_ends() {
    // 02:30 does not exist in Berlin on 2026-03-29: the clocks jump from 02:00 CET to 03:00
    // CEST (01:00 UTC). The job runs at 03:00 CEST that day, once, then at 02:30 again.
    let early = berlin("30 2 * * *");
    assert_eq!(
        fires(&early, utc(2026, 3, 27, 12, 0), utc(2026, 3, 31, 12, 0)),
        [
            utc(2026, 3, 28, 1, 30),
            utc(2026, 3, 29, 1, 0),
            utc(2026, 3, 30, 0, 30),
            utc(2026, 3, 31, 0, 30)
        ]
    );
    // The same with seconds, and for a time on the hour inside the gap.
    let with_seconds = berlin("0 30 2 * * *");
    assert_eq!(
        next(&with_seconds, utc(2026, 3, 28, 12, 0)),
        Some(utc(2026, 3, 29, 1, 0))
    );
    assert_eq!(
        next(&berlin("0 2 * * *"), utc(2026, 3, 28, 12, 0)),
        Some(utc(2026, 3, 29, 1, 0))
    );
}

#[test]
fn a_fixed_time_in_the_fall_back_overlap_runs_once_at_its_first_occurrence() {
    // 02:30 happens twice in Berlin on 2026-10-25: at 00:30 UTC (CEST) and again at 01:30
    // UTC (CET). The job runs at the first one only.
    let early = berlin("30 2 * * *");
    assert_eq!(
        fires(&early, utc(2026, 10, 23, 12, 0), utc(2026, 10, 26, 12, 0)),
        [
            utc(2026, 10, 24, 0, 30),
            utc(2026, 10, 25, 0, 30),
            utc(2026, 10, 26, 1, 30)
        ]
    );
    // From inside the repeated hour the next time is the next day's, never one in the past
    // (croner alone answers 00:30 UTC from 01:10 UTC) nor the second 02:30.
    for after in [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 0, 50),
        utc(2026, 10, 25, 1, 10),
        utc(2026, 10, 25, 1, 30),
    ] {
        assert_eq!(
            next(&early, after),
            Some(utc(2026, 10, 26, 1, 30)),
            "{after}"
        );
    }
}

#[test]
fn interval_patterns_skip_the_gap_and_fire_in_both_passes_of_the_overlap() {
    let quarter = berlin("*/15 * * * *");
    // Spring forward: the wall times 02:00 to 02:45 do not exist and are skipped; in real
    // time the job still runs every 15 minutes.
    assert_eq!(
        fires(&quarter, utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 30)),
        [
            utc(2026, 3, 29, 0, 45),
            utc(2026, 3, 29, 1, 0),
            utc(2026, 3, 29, 1, 15),
            utc(2026, 3, 29, 1, 30)
        ]
    );
    // Fall back: the wall times 02:00 to 02:45 happen twice and the job runs at each, in
    // time order: every 15 minutes of real time through the night, none skipped or repeated.
    let night = fires(
        &quarter,
        utc(2026, 10, 24, 23, 30),
        utc(2026, 10, 25, 2, 15),
    );
    let every_quarter: Vec<u64> = (1..=11)
        .map(|n| utc(2026, 10, 24, 23, 30) + n * 15 * 60_000)
        .collect();
    assert_eq!(night, every_quarter);
    // From inside either pass, the next time is the next quarter of real time.
    assert_eq!(
        next(&quarter, utc(2026, 10, 25, 0, 50)),
        Some(utc(2026, 10, 25, 1, 0))
    );
    assert_eq!(
        next(&quarter, utc(2026, 10, 25, 1, 5)),
        Some(utc(2026, 10, 25, 1, 15))
    );
    // So is a list of hours: its 02:30 runs in both passes.
    assert_eq!(
        fires(
            &berlin("30 2,14 * * *"),
            utc(2026, 10, 24, 23, 30),
            utc(2026, 10, 25, 14, 0)
        ),
        [
            utc(2026, 10, 25, 0, 30),
            utc(2026, 10, 25, 1, 30),
            utc(2026, 10, 25, 13, 30)
        ]
    );
    // And a range of hours.
    assert_eq!(
        fires(
            &berlin("30 2-3 * * *"),
            utc(2026, 10, 24, 23, 30),
            utc(2026, 10, 25, 3, 0)
        ),
        [
            utc(2026, 10, 25, 0, 30),
            utc(2026, 10, 25, 1, 30),
            utc(2026, 10, 25, 2, 30)
        ]
    );
    // An hourly pattern is an interval pattern too: 02:00 runs twice.
    assert_eq!(
        fires(
            &berlin("0 * * * *"),
            utc(2026, 10, 24, 23, 30),
            utc(2026, 10, 25, 2, 30)
        ),
        [
            utc(2026, 10, 25, 0, 0),
            utc(2026, 10, 25, 1, 0),
            utc(2026, 10, 25, 2, 0)
        ]
    );
}

#[test]
fn weekday_mornings_in_new_york_follow_its_own_dst_dates() {
    let zone = Zone::named("America/New_York").unwrap();
    let standup = Schedule::cron("0 9 * * 1-5", zone).unwrap();
    // US clocks spring forward on 2026-03-08, three weeks before Europe's: 09:00 EST is
    // 14:00 UTC on Friday March 6, 09:00 EDT is 13:00 UTC on Monday March 9.
    assert_eq!(
        fires(&standup, utc(2026, 3, 6, 0, 0), utc(2026, 3, 10, 0, 0)),
        [utc(2026, 3, 6, 14, 0), utc(2026, 3, 9, 13, 0)]
    );
    // They fall back on 2026-11-01: Friday October 30 at 13:00 UTC, Monday November 2 at
    // 14:00 UTC.
    assert_eq!(
        fires(&standup, utc(2026, 10, 30, 0, 0), utc(2026, 11, 3, 0, 0)),
        [utc(2026, 10, 30, 13, 0), utc(2026, 11, 2, 14, 0)]
    );
    // A fixed-time job in New York's own overlap (01:30 happens twice on November 1) runs once.
    let early = Schedule::cron("30 1 * * *", zone).unwrap();
    assert_eq!(
        fires(&early, utc(2026, 10, 31, 12, 0), utc(2026, 11, 2, 12, 0)),
        [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)]
    );
}

#[tokio::test]
async fn the_scheduler_runs_a_fixed_time_job_once_through_the_fall_back_night() {
    let rig = Rig::memory();
    rig.clock.set(Timestamp(utc(2026, 10, 24, 23, 0)));
    for (job, expression) in [("early", "30 2 * * *"), ("quarter", "*/15 * * * *")] {
        rig.scheduler
            .jobs()
            .add(NewJob::new(id(job), job, berlin(expression), "wf.toml"))
            .await
            .unwrap();
    }
    // Tick every minute from 00:00 to 03:00 Berlin wall time (23:00 to 02:00 UTC).
    for _ in 0..180 {
        rig.clock.advance(Duration::from_secs(60));
        rig.scheduler.tick().await.unwrap();
    }
    let requests = rig.runner.requests.lock().unwrap().clone();
    let runs_of = |job: &str| -> Vec<u64> {
        requests
            .iter()
            .filter(|r| r.job_id.as_str() == job)
            .map(|r| r.scheduled_for.0)
            .collect()
    };
    assert_eq!(runs_of("early"), [utc(2026, 10, 25, 0, 30)]);
    let quarters: Vec<u64> = (1..=12)
        .map(|n| utc(2026, 10, 24, 23, 0) + n * 15 * 60_000)
        .collect();
    assert_eq!(runs_of("quarter"), quarters);
}

#[test]
fn a_stored_job_with_a_fixed_offset_from_before_named_zones_still_decodes() {
    // A document as builds before named zones wrote it (`cairn jobs add ... --tz +01:00`).
    let document = serde_json::json!({
        "format_version": 1,
        "id": "nightly",
        "name": "nightly",
        "schedule": {"kind": "cron", "expression": "0 30 2 * * *", "zone": "+01:00"},
        "workflow": "/srv/backup.toml",
        "input": "",
        "status": "active",
        "consecutive_errors": 0,
        "max_consecutive_errors": 10,
        "next_run_at": 1_767_231_000_000_u64,
        "last_run_at": null,
        "last_error": null,
        "delete_after_run": false,
        "created_at": 1_767_225_600_000_u64
    });
    let job = Job::from_stored(StoredJob {
        id: id("nightly"),
        version: 3,
        document: document.clone(),
    })
    .unwrap();
    assert_eq!(
        job.schedule,
        Schedule::Cron {
            expression: "0 30 2 * * *".to_owned(),
            zone: Zone::Fixed {
                offset_seconds: 3600
            },
        }
    );
    assert_eq!(job.to_document(), document, "re-encoded unchanged");
    // Its times are those of a fixed offset: no daylight saving, 01:30 UTC all year.
    assert_eq!(
        job.schedule
            .next_after(job.created_at, Timestamp(utc(2026, 7, 1, 0, 0)))
            .unwrap(),
        Some(Timestamp(utc(2026, 7, 1, 1, 30)))
    );
    // A document from before zones were stored at all reads as UTC.
    let mut zoneless = document;
    zoneless["schedule"].as_object_mut().unwrap().remove("zone");
    let job = Job::from_stored(StoredJob {
        id: id("nightly"),
        version: 3,
        document: zoneless,
    })
    .unwrap();
    assert!(matches!(
        job.schedule,
        Schedule::Cron {
            zone: Zone::Utc,
            ..
        }
    ));
}

#[test]
fn a_fixed_time_in_the_hour_before_the_gap_runs_once_that_day() {
    // 01:00 CET exists in Berlin on 2026-03-29 (the gap is 02:00 to 03:00): the job runs at
    // 01:00 CET (00:00 UTC) and not again at the end of the gap (03:00 CEST, 01:00 UTC).
    let one = berlin("0 1 * * *");
    assert_eq!(
        fires(&one, utc(2026, 3, 28, 12, 0), utc(2026, 3, 30, 12, 0)),
        [utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 23, 0)]
    );
    assert_eq!(
        next(&one, utc(2026, 3, 29, 0, 0)),
        Some(utc(2026, 3, 29, 23, 0))
    );
    // New York springs forward on 2026-03-08 (02:00 EST to 03:00 EDT): 01:30 EST runs once.
    let half_past_one =
        Schedule::cron("30 1 * * *", Zone::named("America/New_York").unwrap()).unwrap();
    assert_eq!(
        fires(
            &half_past_one,
            utc(2026, 3, 7, 12, 0),
            utc(2026, 3, 9, 12, 0)
        ),
        [utc(2026, 3, 8, 6, 30), utc(2026, 3, 9, 5, 30)]
    );
    assert_eq!(
        next(&half_past_one, utc(2026, 3, 8, 6, 30)),
        Some(utc(2026, 3, 9, 5, 30))
    );
}

/// Every fire time of `expression` in `zone` whose local date is in 2026, grouped by that
/// date, each with its local time.
fn fires_by_local_day_of_2026(
    zone: Zone,
    expression: &str,
) -> std::collections::BTreeMap<chrono::NaiveDate, Vec<(u64, chrono::DateTime<chrono::FixedOffset>)>>
{
    use chrono::Datelike;
    let schedule = Schedule::cron(expression, zone).unwrap();
    let all = schedule
        .fire_times_between(
            Timestamp(0),
            Timestamp(utc(2025, 12, 30, 0, 0)),
            Timestamp(utc(2027, 1, 3, 0, 0)),
            100_000,
        )
        .unwrap();
    let mut days = std::collections::BTreeMap::<_, Vec<_>>::new();
    for time in all {
        let local = zone.local_time(time).unwrap();
        if local.year() == 2026 {
            days.entry(local.date_naive())
                .or_default()
                .push((time.0, local));
        }
    }
    days
}

#[test]
fn a_sweep_of_dst_zones_over_2026_runs_fixed_times_once_a_day_and_intervals_never_twice() {
    use chrono::{Offset, Timelike};
    let zones = [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Sydney",
        "America/Santiago",
        "Pacific/Chatham",
        // A half-hour clock change: the gap is 02:00 to 02:30, the overlap 01:30 to 02:00.
        "Australia/Lord_Howe",
        // Clocks change at midnight.
        "America/Havana",
        // Not Asia/Tehran: Iran has kept standard time all year since 2022 (tz 2025b).
    ];
    for name in zones {
        let zone = Zone::named(name).unwrap();
        let Zone::Named(named) = zone else {
            unreachable!()
        };
        // The sweep only means something where the clocks change in 2026.
        let tz: chrono_tz::Tz = named.name().parse().unwrap();
        let offset_at = |ms: u64| {
            tz.timestamp_millis_opt(i64::try_from(ms).unwrap())
                .unwrap()
                .offset()
                .fix()
                .local_minus_utc()
        };
        assert_ne!(
            offset_at(utc(2026, 1, 15, 0, 0)),
            offset_at(utc(2026, 7, 15, 0, 0)),
            "{name} has no daylight saving in 2026"
        );

        for (hour, minute) in [(1, 0), (1, 30), (2, 0), (2, 30), (1, 59), (3, 0)] {
            let expression = format!("{minute} {hour} * * *");
            let days = fires_by_local_day_of_2026(zone, &expression);
            assert_eq!(
                days.len(),
                365,
                "{name} `{expression}`: a day without a run"
            );
            for (day, times) in &days {
                assert_eq!(times.len(), 1, "{name} `{expression}` on {day}: {times:?}");
                let (at, local) = times[0];
                if (local.hour(), local.minute()) != (hour, minute) {
                    // Only a time in a spring-forward gap moves, to the gap's end.
                    assert!(
                        offset_at(at - 1_000) < offset_at(at)
                            && (local.hour(), local.minute()) > (hour, minute),
                        "{name} `{expression}` on {day} ran at {local}"
                    );
                }
            }
        }

        let expression = "*/30 * * * *";
        let days = fires_by_local_day_of_2026(zone, expression);
        assert_eq!(
            days.len(),
            365,
            "{name} `{expression}`: a day without a run"
        );
        let all: Vec<u64> = days.values().flatten().map(|(at, _)| *at).collect();
        for pair in all.windows(2) {
            // Never the same instant twice, never out of order.
            assert!(pair[0] < pair[1], "{name} `{expression}`: {pair:?}");
        }
        for (day, times) in &days {
            // 48 wall times a day; on a fall-back day the repeated wall times run in both
            // passes (module docs), so the day has as many more as its overlap holds.
            let (first, last) = (times[0].1, times[times.len() - 1].1);
            let repeated =
                (first.offset().local_minus_utc() - last.offset().local_minus_utc()).max(0) / 1_800;
            let allowed = 48 + usize::try_from(repeated).unwrap();
            assert!(
                times.len() <= allowed,
                "{name} `{expression}` on {day}: {} runs, at most {allowed}",
                times.len()
            );
        }
    }
}

/// A huge `--tz` argument is refused at once with its length, and is not echoed back whole
/// (before, looking for close zone names took seconds of CPU for 100 KB, and the error
/// repeated all of it).
#[test]
fn a_huge_zone_argument_is_refused_without_suggestions_or_a_full_echo() {
    for text in ["x".repeat(100_000), format!("+{}", "9".repeat(100_000))] {
        let parsed: Result<Zone, Error> = text.parse();
        let Err(Error::InvalidZone {
            text: shown,
            reason,
            ..
        }) = parsed
        else {
            panic!("refused as a zone");
        };
        assert!(shown.chars().count() < 100, "{}", shown.len());
        assert!(
            shown.contains("(100000 characters)") || shown.contains("(100001 characters)"),
            "{shown}"
        );
        assert!(!reason.contains("did you mean"), "{reason}");
    }
    let Err(Error::InvalidZone { reason, .. }) = Zone::named(&"y".repeat(70)) else {
        panic!("refused");
    };
    assert!(reason.contains("longer than any zone name"), "{reason}");
    // Short names still get their suggestions.
    let Err(Error::InvalidZone { reason, .. }) = Zone::named("Europe/Berln") else {
        panic!("refused");
    };
    assert!(reason.contains("Europe/Berlin"), "{reason}");
}
