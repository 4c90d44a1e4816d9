//! Next-run computation with a fixed clock: cron with seconds, five-field cron, a fixed
//! offset, intervals on their grid, one-shot times, and invalid input (named zones and
//! daylight saving: `named_zones.rs`).

use std::time::Duration;

use cairn_queue::Timestamp;
use cairn_scheduler::{Error, Schedule, Zone};

/// 2026-01-01T00:00:00Z (a Thursday).
const T0: u64 = 1_767_225_600_000;
const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

fn next(schedule: &Schedule, after: u64) -> Option<u64> {
    schedule
        .next_after(Timestamp(T0), Timestamp(after))
        .unwrap()
        .map(|t| t.0)
}

#[test]
fn cron_with_seconds_in_utc() {
    let schedule = Schedule::cron("*/15 * * * * *", Zone::Utc).unwrap();
    assert_eq!(next(&schedule, T0), Some(T0 + 15 * SECOND));
    assert_eq!(next(&schedule, T0 + 14_999), Some(T0 + 15 * SECOND));
    assert_eq!(
        next(&schedule, T0 + 15 * SECOND),
        Some(T0 + 30 * SECOND),
        "strictly after"
    );
    assert_eq!(next(&schedule, T0 + 59 * SECOND), Some(T0 + MINUTE));

    let schedule = Schedule::cron("30 0 9 * * *", Zone::Utc).unwrap();
    assert_eq!(next(&schedule, T0), Some(T0 + 9 * HOUR + 30 * SECOND));
    assert_eq!(
        next(&schedule, T0 + 10 * HOUR),
        Some(T0 + 24 * HOUR + 9 * HOUR + 30 * SECOND)
    );
}

#[test]
fn five_field_cron_has_minute_precision() {
    let schedule = Schedule::cron("*/5 * * * *", Zone::Utc).unwrap();
    assert_eq!(next(&schedule, T0), Some(T0 + 5 * MINUTE));
    assert_eq!(
        next(&schedule, T0 + 7 * MINUTE + 13 * SECOND),
        Some(T0 + 10 * MINUTE)
    );
}

#[test]
fn cron_in_a_named_fixed_offset() {
    // India Standard Time, +05:30: 09:00:30 local is 03:30:30 UTC.
    let ist: Zone = "+05:30".parse().unwrap();
    assert_eq!(
        ist,
        Zone::Fixed {
            offset_seconds: 5 * 3600 + 1800
        }
    );
    assert_eq!(ist.to_string(), "+05:30");
    let schedule = Schedule::cron("30 0 9 * * *", ist).unwrap();
    assert_eq!(
        next(&schedule, T0),
        Some(T0 + 3 * HOUR + 30 * MINUTE + 30 * SECOND)
    );
    // Midnight local in UTC-08:00 is 08:00 UTC.
    let pst = Zone::offset(-8, 0).unwrap();
    let schedule = Schedule::cron("0 0 * * *", pst).unwrap();
    assert_eq!(next(&schedule, T0), Some(T0 + 8 * HOUR));
    // Day-of-week is evaluated in the zone: 2026-01-01 23:30 UTC is already Friday in +05:30.
    let friday = Schedule::cron("0 0 * * * FRI", ist).unwrap();
    assert_eq!(next(&friday, T0), Some(T0 + 18 * HOUR + 30 * MINUTE));
}

#[test]
fn zones_parse_offsets_and_refuse_malformed_ones() {
    assert_eq!("UTC".parse::<Zone>().unwrap(), Zone::Utc);
    assert_eq!("+00:00".parse::<Zone>().unwrap(), Zone::Utc);
    assert_eq!(
        "-0330".parse::<Zone>().unwrap(),
        Zone::Fixed {
            offset_seconds: -(3 * 3600 + 1800)
        }
    );
    for bad in ["+25:00", "+05:60", "5", "", "+5:30", "Europe/Atlantis"] {
        assert!(
            matches!(bad.parse::<Zone>(), Err(Error::InvalidZone { .. })),
            "{bad:?} parsed"
        );
    }
}

#[test]
fn intervals_stay_on_their_grid() {
    let schedule = Schedule::every(Duration::from_secs(90)).unwrap();
    assert_eq!(next(&schedule, T0), Some(T0 + 90 * SECOND));
    assert_eq!(next(&schedule, T0 + 91 * SECOND), Some(T0 + 180 * SECOND));
    assert_eq!(next(&schedule, T0 + 180 * SECOND), Some(T0 + 270 * SECOND));
    assert_eq!(next(&schedule, T0 - 5 * SECOND), Some(T0 + 90 * SECOND));
    let times = schedule
        .fire_times_between(Timestamp(T0), Timestamp(T0), Timestamp(T0 + 10 * MINUTE), 3)
        .unwrap();
    assert_eq!(
        times,
        [
            Timestamp(T0 + 90_000),
            Timestamp(T0 + 180_000),
            Timestamp(T0 + 270_000)
        ]
    );
}

#[test]
fn one_shot_times_fire_once() {
    let schedule = Schedule::once(Timestamp(T0 + HOUR));
    assert_eq!(next(&schedule, T0), Some(T0 + HOUR));
    assert_eq!(next(&schedule, T0 + HOUR), None);
}

#[test]
fn a_bad_cron_field_is_named_with_the_values_it_takes() {
    for (bad, says) in [
        (
            "61 * * * *",
            "its minute field `61` is not valid (number out of bounds); it takes 0-59",
        ),
        (
            "0 24 * * *",
            "its hour field `24` is not valid (number out of bounds); it takes 0-23",
        ),
        (
            "0 0 32 * *",
            "its day-of-month field `32` is not valid (number out of bounds); it takes 1-31",
        ),
        (
            "0 0 * 13 *",
            "its month field `13` is not valid (number out of bounds); it takes 1-12 or JAN-DEC",
        ),
        (
            "0 0 * * 8",
            "its day-of-week field `8` is not valid (number out of bounds); it takes 0-7",
        ),
        (
            "*/0 * * * *",
            "its minute field `*/0` is not valid (step cannot be zero)",
        ),
        (
            "1-70 * * * *",
            "its minute field `1-70` is not valid (range out of bounds)",
        ),
        (
            "x * * * *",
            "its minute field `x` is not valid (a character cron does not take)",
        ),
        // Six fields start with seconds, seven end with a year.
        ("60 * * * * *", "its seconds field `60` is not valid"),
        ("0 60 * * * *", "its minute field `60` is not valid"),
        (
            "0 0 0 * * * 6000",
            "its year field `6000` is not valid (number out of bounds); it takes 1-5000",
        ),
    ] {
        let err = Schedule::cron(bad, Zone::Utc).unwrap_err();
        assert!(
            matches!(err, Error::InvalidSchedule { .. }),
            "{bad}: {err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(says), "{bad}: {message}");
        // In cron's terms, not the parser's.
        assert!(!message.contains("Component error"), "{bad}: {message}");
        assert!(!message.contains("CronPattern"), "{bad}: {message}");
    }
    // Every field good on its own: nothing to name, and the expression is accepted.
    assert!(Schedule::cron("0 0 L * 5L", Zone::Utc).is_ok());
}

#[test]
fn bad_schedules_are_typed_errors() {
    for bad in ["", "61 * * * * *", "* * *", "not cron"] {
        let err = Schedule::cron(bad, Zone::Utc).unwrap_err();
        assert!(
            matches!(err, Error::InvalidSchedule { .. }),
            "{bad:?}: {err:?}"
        );
    }
    let err = Schedule::every(Duration::from_millis(999)).unwrap_err();
    assert!(matches!(err, Error::InvalidSchedule { .. }), "{err:?}");
    // A wrong field count is said in cron's terms, not the parser's.
    let err = Schedule::cron("* * *", Zone::Utc).unwrap_err().to_string();
    assert!(
        err.contains("has 3 field(s); it takes 5 to 7: minute hour"),
        "{err}"
    );
    assert!(!err.contains("Pattern"), "{err}");
}

#[test]
fn schedules_round_trip_through_json() {
    let schedules = [
        Schedule::cron("0 */5 * * * *", "+05:30".parse().unwrap()).unwrap(),
        Schedule::every(Duration::from_secs(60)).unwrap(),
        Schedule::once(Timestamp(T0)),
    ];
    for schedule in schedules {
        let text = serde_json::to_string(&schedule).unwrap();
        assert_eq!(
            serde_json::from_str::<Schedule>(&text).unwrap(),
            schedule,
            "{text}"
        );
    }
}

#[test]
fn the_cron_dialect_is_the_one_the_module_docs_describe() {
    for accepted in [
        "@yearly",
        "@monthly",
        "@weekly",
        "@daily",
        "@hourly",
        "0 0 * * ?",
        "0 0 0 1 1 * 2030",
    ] {
        let schedule = Schedule::cron(accepted, Zone::Utc).unwrap();
        assert!(next(&schedule, T0).is_some(), "{accepted} never fires");
    }
    for refused in ["@reboot", "*/0 * * * *", "0 0 * * 5#6", "* * * * 8"] {
        assert!(
            matches!(
                Schedule::cron(refused, Zone::Utc),
                Err(Error::InvalidSchedule { .. })
            ),
            "{refused} parsed"
        );
    }
    // Vixie OR: a restricted day of month and day of week match either one. 2026-02-02 is
    // the first Monday of February 2026.
    let either = Schedule::cron("0 0 29 2 MON", Zone::Utc).unwrap();
    assert_eq!(next(&either, T0), Some(T0 + 32 * 24 * HOUR));
    // A seven-field expression whose year is past never fires again.
    let past = Schedule::cron("0 0 0 1 1 * 2020", Zone::Utc).unwrap();
    assert_eq!(next(&past, T0), None);
}
