//! When a job runs: a cron expression in a time zone, a fixed interval, or once.
//!
//! # Time zones
//!
//! A cron expression is evaluated in its job's [`Zone`]: `UTC` or a fixed offset from UTC
//! such as `+05:30`. "`0 0 9 * * *` at `+02:00`" fires at 07:00 UTC every day. Zones with
//! daylight-saving rules (IANA names such as `Europe/Berlin`) are NOT supported, because that
//! would need a time-zone database the workspace does not ship; pick the offset you want and
//! change it explicitly when it should change. Intervals and one-shot times are instants and
//! have no zone. Every time the scheduler stores or returns is milliseconds since the Unix
//! epoch (UTC).
//!
//! Cron expressions are parsed by the `croner` crate: five fields (minute precision), six
//! (a leading seconds field) or seven (plus a trailing year field), with `croner`'s
//! extensions (`L`, `W`, `#`, `?`, names of months and days, `@yearly` and the other
//! nicknames except `@reboot`). When both day-of-month and day-of-week are restricted, a day
//! matching either fires (classic Vixie cron behaviour): `0 0 29 2 MON` fires every Monday
//! in February, not only on a Monday the 29th. `0 0 29 2 *` fires on leap days only, and an
//! expression that matches no date at all (`0 0 31 2 *`) never fires: `next_after` returns
//! `Ok(None)` for it, and `Jobs::add` refuses it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use cairn_queue::Timestamp;
use chrono::{DateTime, FixedOffset, TimeZone};
use croner::Cron;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The zone a cron expression is evaluated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Zone {
    /// Coordinated Universal Time.
    #[default]
    Utc,
    /// A fixed offset east of UTC, in seconds (negative: west). No daylight saving.
    Fixed {
        /// Seconds east of UTC, within ±24 hours (exclusive).
        offset_seconds: i32,
    },
}

impl Zone {
    /// A fixed offset of `hours` and `minutes` east of UTC (both negative for west).
    ///
    /// # Errors
    ///
    /// `Error::InvalidZone` when the offset is not within ±24 hours or the signs disagree.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_scheduler::{Error, Zone};
    /// assert_eq!(Zone::offset(5, 30)?, "+05:30".parse()?);
    /// assert!(matches!(Zone::offset(i32::MAX, 0), Err(Error::InvalidZone { .. })));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// ```
    pub fn offset(hours: i32, minutes: i32) -> Result<Zone> {
        let text = format!("{hours:+}h{minutes:+}m");
        if (hours > 0 && minutes < 0) || (hours < 0 && minutes > 0) || minutes.unsigned_abs() >= 60
        {
            return Err(Error::InvalidZone {
                job: None,
                text,
                reason: "hours and minutes must have the same sign and minutes must be below 60",
            });
        }
        // Checked before the arithmetic, which would overflow for hours near `i32::MAX`.
        if hours.unsigned_abs() >= 24 {
            return Err(Error::InvalidZone {
                job: None,
                text,
                reason: "the offset must be within 24 hours of UTC",
            });
        }
        Zone::from_seconds(hours * 3600 + minutes * 60, text)
    }

    /// Checks a zone (for example one built by hand as `Zone::Fixed`).
    ///
    /// # Errors
    ///
    /// `Error::InvalidZone` when a fixed offset is not within ±24 hours (exclusive).
    pub fn validate(self) -> Result<()> {
        match self {
            Zone::Utc => Ok(()),
            Zone::Fixed { offset_seconds } => {
                Zone::from_seconds(offset_seconds, self.to_string()).map(|_| ())
            }
        }
    }

    fn from_seconds(offset_seconds: i32, text: String) -> Result<Zone> {
        if offset_seconds == 0 {
            return Ok(Zone::Utc);
        }
        match FixedOffset::east_opt(offset_seconds) {
            Some(_) => Ok(Zone::Fixed { offset_seconds }),
            None => Err(Error::InvalidZone {
                job: None,
                text,
                reason: "the offset must be within 24 hours of UTC",
            }),
        }
    }

    fn fixed_offset(self) -> FixedOffset {
        let seconds = match self {
            Zone::Utc => 0,
            Zone::Fixed { offset_seconds } => offset_seconds,
        };
        // Zones are validated when built or parsed, so this fallback is never taken.
        FixedOffset::east_opt(seconds).unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC"))
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Zone::Utc => f.write_str("UTC"),
            Zone::Fixed { offset_seconds } => {
                let sign = if offset_seconds < 0 { '-' } else { '+' };
                let abs = offset_seconds.unsigned_abs();
                write!(f, "{sign}{:02}:{:02}", abs / 3600, (abs % 3600) / 60)?;
                if abs % 60 != 0 {
                    write!(f, ":{:02}", abs % 60)?;
                }
                Ok(())
            }
        }
    }
}

impl FromStr for Zone {
    type Err = Error;

    /// Parses `UTC`, `Z`, or an offset `+HH:MM`, `-HH:MM`, `+HHMM`, `+HH` or `+HH:MM:SS`
    /// (the form `Display` writes for an offset with seconds).
    fn from_str(text: &str) -> Result<Zone> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("utc") || trimmed == "Z" {
            return Ok(Zone::Utc);
        }
        let invalid = |reason| Error::InvalidZone {
            job: None,
            text: text.to_owned(),
            reason,
        };
        let (sign, rest) = match trimmed.as_bytes().first() {
            Some(b'+') => (1, &trimmed[1..]),
            Some(b'-') => (-1, &trimmed[1..]),
            _ => {
                return Err(invalid(
                    "expected `UTC` or an offset such as `+05:30` (named zones are not supported)",
                ));
            }
        };
        let shape = "an offset is `+HH`, `+HHMM`, `+HH:MM` or `+HH:MM:SS`";
        let bytes = rest.as_bytes();
        let digits = |range: std::ops::Range<usize>| -> Option<i32> {
            let part = bytes.get(range)?;
            if part.len() == 2 && part.iter().all(u8::is_ascii_digit) {
                Some(i32::from(part[0] - b'0') * 10 + i32::from(part[1] - b'0'))
            } else {
                None
            }
        };
        let colon = |at: usize| bytes.get(at) == Some(&b':');
        let parts = match bytes.len() {
            2 => digits(0..2).map(|h| (h, 0, 0)),
            4 => digits(0..2).zip(digits(2..4)).map(|(h, m)| (h, m, 0)),
            5 if colon(2) => digits(0..2).zip(digits(3..5)).map(|(h, m)| (h, m, 0)),
            8 if colon(2) && colon(5) => digits(0..2)
                .zip(digits(3..5))
                .zip(digits(6..8))
                .map(|((h, m), s)| (h, m, s)),
            _ => None,
        };
        let (hours, minutes, seconds) = parts.ok_or_else(|| invalid(shape))?;
        if minutes >= 60 || seconds >= 60 {
            return Err(invalid("minutes and seconds must be below 60"));
        }
        Zone::from_seconds(
            sign * (hours * 3600 + minutes * 60 + seconds),
            text.to_owned(),
        )
    }
}

impl From<Zone> for String {
    fn from(zone: Zone) -> String {
        zone.to_string()
    }
}

impl TryFrom<String> for Zone {
    type Error = Error;
    fn try_from(text: String) -> Result<Zone> {
        text.parse()
    }
}

/// When a job runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// A cron expression (five fields, or six with leading seconds) evaluated in `zone`.
    Cron {
        /// The expression as given.
        expression: String,
        /// The zone it is evaluated in.
        #[serde(default)]
        zone: Zone,
    },
    /// Every `interval_ms` milliseconds, counted from the job's creation time, so the ticks
    /// stay on one grid however late a run starts.
    Every {
        /// The interval, at least one second.
        interval_ms: u64,
    },
    /// Once, at `at` (or as soon as possible after it).
    Once {
        /// When.
        at: Timestamp,
    },
}

/// The shortest interval a job may have.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

impl Schedule {
    /// A cron schedule, checked with `croner`.
    ///
    /// # Errors
    ///
    /// `Error::InvalidSchedule` naming the expression when it does not parse;
    /// `Error::InvalidZone` for an out-of-range `Zone::Fixed`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Schedule, Zone};
    ///
    /// // Every day at 09:00:30 in UTC+02:00, which is 07:00:30 UTC.
    /// let schedule = Schedule::cron("30 0 9 * * *", "+02:00".parse()?)?;
    /// let midnight = Timestamp(1_767_225_600_000); // 2026-01-01T00:00:00Z
    /// let next = schedule.next_after(midnight, midnight)?;
    /// assert_eq!(next, Some(Timestamp(1_767_225_600_000 + (7 * 3600 + 30) * 1000)));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// ```
    pub fn cron(expression: impl Into<String>, zone: Zone) -> Result<Schedule> {
        let expression = expression.into();
        zone.validate()?;
        parse_cron(&expression)?;
        // `Fixed { 0 }` is stored as `+00:00`, which reads back as `Utc`: build it as such so
        // the job `add` returns equals the job `show` reads.
        let zone = match zone {
            Zone::Fixed { offset_seconds: 0 } => Zone::Utc,
            other => other,
        };
        Ok(Schedule::Cron { expression, zone })
    }

    /// A fixed-interval schedule.
    ///
    /// # Errors
    ///
    /// `Error::InvalidSchedule` when `interval` is shorter than [`MIN_INTERVAL`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Error, Schedule};
    ///
    /// let every_90s = Schedule::every(Duration::from_secs(90))?;
    /// // The grid starts at the anchor (the job's creation time), however late `after` is.
    /// let next = every_90s.next_after(Timestamp(0), Timestamp(100_000))?;
    /// assert_eq!(next, Some(Timestamp(180_000)));
    /// assert!(matches!(
    ///     Schedule::every(Duration::from_millis(999)),
    ///     Err(Error::InvalidSchedule { .. })
    /// ));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// ```
    pub fn every(interval: Duration) -> Result<Schedule> {
        let schedule = Schedule::Every {
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        };
        schedule.validate()?;
        Ok(schedule)
    }

    /// A one-shot schedule.
    pub fn once(at: Timestamp) -> Schedule {
        Schedule::Once { at }
    }

    /// Checks a schedule (for example one read back from storage or built by hand).
    ///
    /// # Errors
    ///
    /// `Error::InvalidSchedule` naming what is wrong; `Error::InvalidZone` for a cron
    /// schedule's out-of-range `Zone::Fixed`.
    pub fn validate(&self) -> Result<()> {
        match self {
            Schedule::Cron { expression, zone } => {
                zone.validate()?;
                parse_cron(expression).map(|_| ())
            }
            Schedule::Every { interval_ms } => {
                if *interval_ms < MIN_INTERVAL.as_millis() as u64 {
                    Err(Error::InvalidSchedule {
                        job: None,
                        expression: format!("every {interval_ms} ms"),
                        reason: "an interval must be at least one second".to_owned(),
                    })
                } else {
                    Ok(())
                }
            }
            Schedule::Once { .. } => Ok(()),
        }
    }

    /// The first time this schedule fires strictly after `after`.
    ///
    /// `anchor` is where an interval's grid starts (the job's creation time); cron and
    /// one-shot schedules ignore it. `Ok(None)` when the schedule never fires again (a
    /// one-shot time already passed, or a cron expression with no future match).
    ///
    /// # Errors
    ///
    /// `Error::InvalidSchedule` for an expression that does not parse.
    pub fn next_after(&self, anchor: Timestamp, after: Timestamp) -> Result<Option<Timestamp>> {
        match self {
            Schedule::Cron { expression, zone } => {
                let cron = parse_cron(expression)?;
                let offset = zone.fixed_offset();
                // croner works in whole seconds: start from the second that holds `after`;
                // its non-inclusive search then returns the first match strictly later.
                let Some(start) = to_datetime(offset, after.0 / 1000 * 1000) else {
                    return Ok(None);
                };
                match cron.find_next_occurrence(&start, false) {
                    Ok(next) => Ok(u64::try_from(next.timestamp_millis()).ok().map(Timestamp)),
                    Err(croner::errors::CronError::TimeSearchLimitExceeded) => Ok(None),
                    Err(err) => Err(Error::InvalidSchedule {
                        job: None,
                        expression: expression.clone(),
                        reason: err.to_string(),
                    }),
                }
            }
            Schedule::Every { interval_ms } => {
                let interval = (*interval_ms).max(1);
                if after < anchor {
                    // Checked like the grid below: an interval that cannot be added to the
                    // anchor never fires (it used to saturate to the end of time).
                    return Ok(anchor.0.checked_add(interval).map(Timestamp));
                }
                let steps = (after.0 - anchor.0) / interval + 1;
                Ok(anchor
                    .0
                    .checked_add(steps.saturating_mul(interval))
                    .map(Timestamp))
            }
            Schedule::Once { at } => Ok((*at > after).then_some(*at)),
        }
    }

    /// Every time this schedule fires in `(after, until]`, oldest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// As [`Schedule::next_after`].
    pub fn fire_times_between(
        &self,
        anchor: Timestamp,
        after: Timestamp,
        until: Timestamp,
        limit: usize,
    ) -> Result<Vec<Timestamp>> {
        let mut times = Vec::new();
        let mut cursor = after;
        while times.len() < limit {
            match self.next_after(anchor, cursor)? {
                Some(next) if next <= until => {
                    times.push(next);
                    cursor = next;
                }
                _ => break,
            }
        }
        Ok(times)
    }
}

fn to_datetime(offset: FixedOffset, millis: u64) -> Option<DateTime<FixedOffset>> {
    let millis = i64::try_from(millis).ok()?;
    offset.timestamp_millis_opt(millis).single()
}

fn parse_cron(expression: &str) -> Result<Cron> {
    Cron::from_str(expression).map_err(|err| Error::InvalidSchedule {
        job: None,
        expression: expression.to_owned(),
        reason: err.to_string(),
    })
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Cron { expression, zone } => write!(f, "cron `{expression}` ({zone})"),
            Schedule::Every { interval_ms } => write!(f, "every {interval_ms} ms"),
            Schedule::Once { at } => write!(f, "once at {} ms", at.0),
        }
    }
}
