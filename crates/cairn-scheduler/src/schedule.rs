//! When a job runs: a cron expression in a time zone, a fixed interval, or once.
//!
//! # Time zones
//!
//! A cron expression is evaluated in its job's [`Zone`]: `UTC`, a fixed offset from UTC such
//! as `+05:30`, or a named zone of the IANA tz database such as `Europe/Berlin` or
//! `America/New_York` (case-sensitive, spelled as the database spells it; `Etc/UTC` too).
//! "`0 0 9 * * *` at `+02:00`" fires at 07:00 UTC every day of the year; "`0 9 * * *` in
//! `Europe/Berlin`" fires at 09:00 Berlin time, which is 08:00 UTC in winter and 07:00 UTC
//! in summer. A zone is stored and shown by what it is: `UTC`, `+05:30`, `Europe/Berlin`.
//! Intervals and one-shot times are instants and have no zone. Every time the scheduler
//! stores or returns is milliseconds since the Unix epoch (UTC).
//!
//! The tz database is compiled in (from the `chrono-tz` crate), so named zones work on
//! hosts without `/usr/share/zoneinfo`, and they follow the rules of the database version
//! in this build, [`TZ_DATABASE_VERSION`] (`2025b` with `chrono-tz` 0.10.4), not the host's.
//! When a government changes its clocks, cairn learns it only when `chrono-tz` is updated
//! to a release with the new database and cairn is rebuilt.
//!
//! # Daylight saving
//!
//! Where a named zone changes its clocks, `croner`'s rules apply (those of the Open Cron
//! Pattern Specification and Vixie cron). They tell two kinds of expression apart:
//! *fixed-time* ones, whose second, minute and hour fields are each one number
//! (`30 2 * * *`, `0 0 9 * * *`), and *interval* ones, with a `*`, a step, a range or a
//! list in any of those fields (`*/15 * * * *`, `0 * * * *`, `0 9,17 * * *`).
//!
//! - **A time in a spring-forward gap** (a wall time that does not exist that day, such as
//!   02:30 in Berlin on 2026-03-29, when 02:00 CET jumps to 03:00 CEST): a fixed-time job
//!   runs once, at the first wall time after the gap on that day (03:00 CEST, 01:00 UTC),
//!   and a fixed time outside the gap is not moved (`0 1 * * *` runs at 01:00 CET only); an
//!   interval job skips the times in the gap and goes on at its next time after it (so
//!   `*/15` still runs every 15 minutes of real time).
//! - **A time in a fall-back overlap** (a wall time that happens twice, such as 02:30 in
//!   Berlin on 2026-10-25, at 00:30 UTC in CEST and again at 01:30 UTC in CET): a fixed-time
//!   job runs once, at the first occurrence; an interval job runs at every matching wall
//!   time of both passes, in time order (`*/15` again every 15 minutes of real time, and
//!   `0 * * * *` twice at 02:00).
//!
//! `croner` itself answers "the next time after T" by wall time, which near an overlap can
//! be an instant before T or can skip the whole second pass; [`Schedule::next_after`] keeps
//! the rules above but always answers with the first instant strictly after T, so a clock
//! change never reruns a job or stops it for an hour.
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
use chrono::{DateTime, Datelike, FixedOffset, LocalResult, Offset, TimeZone};
use chrono_tz::{TZ_VARIANTS, Tz};
use croner::errors::CronError;
use croner::{Cron, JobType};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The version of the IANA tz database compiled into this build (for example `2025b`).
///
/// It comes with the `chrono-tz` crate: a country that changes its daylight-saving rules
/// reaches cairn only with a `chrono-tz` release that carries the new database.
pub const TZ_DATABASE_VERSION: &str = chrono_tz::IANA_TZDB_VERSION;

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
    /// A zone of the IANA tz database, such as `Europe/Berlin`, with its daylight-saving
    /// rules. When its clocks change, a fixed-time expression (one second, minute and hour,
    /// such as `30 2 * * *`) whose time falls in a spring-forward gap runs at the end of the
    /// gap, and one whose time happens twice in a fall-back overlap runs at the first
    /// occurrence only; an interval expression (`*/15 * * * *`) skips the gap and runs in
    /// both passes of the overlap, in time order.
    Named(NamedZone),
}

/// A zone of the IANA tz database compiled into this build ([`TZ_DATABASE_VERSION`]),
/// named as the database spells it: `Europe/Berlin`, `America/New_York`, `Etc/UTC`.
///
/// # Examples
///
/// ```
/// use cairn_scheduler::{Error, NamedZone, Zone};
///
/// let berlin: NamedZone = "Europe/Berlin".parse()?;
/// assert_eq!(berlin.name(), "Europe/Berlin");
/// assert_eq!("Europe/Berlin".parse::<Zone>()?, Zone::Named(berlin));
/// // Names are case-sensitive, as in the database.
/// assert!(matches!("europe/berlin".parse::<NamedZone>(), Err(Error::InvalidZone { .. })));
/// # Ok::<(), cairn_scheduler::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NamedZone(Tz);

impl NamedZone {
    /// The zone's name as the IANA tz database spells it.
    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

impl fmt::Debug for NamedZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NamedZone({:?})", self.name())
    }
}

impl fmt::Display for NamedZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for NamedZone {
    type Err = Error;

    /// Parses a name of the IANA tz database, case-sensitively.
    fn from_str(text: &str) -> Result<NamedZone> {
        NamedZone::parse(text, text)
    }
}

impl NamedZone {
    /// Looks `name` up; an error names `text`, what the caller was given.
    fn parse(name: &str, text: &str) -> Result<NamedZone> {
        Tz::from_str(name).map(NamedZone).map_err(|_| {
            let length = name.chars().count();
            // Suggestions compare against every zone name, so a huge input would cost
            // seconds; nothing that long is a typo of a zone name anyway.
            let reason = if length > MAX_ZONE_NAME_CHARS {
                format!(
                    "{length} characters, longer than any zone name (at most {MAX_ZONE_NAME_CHARS})"
                )
            } else {
                unknown_name_reason(name)
            };
            Error::InvalidZone {
                job: None,
                text: shown_zone_text(text),
                reason,
            }
        })
    }
}

/// Longer than every IANA zone name (the longest is 32 characters), so no suggestion is
/// looked for beyond it.
const MAX_ZONE_NAME_CHARS: usize = 64;

/// The refused zone text as an error shows it: whole when short, else its start and length,
/// so a huge argument is not echoed back whole.
fn shown_zone_text(text: &str) -> String {
    let length = text.chars().count();
    if length <= MAX_ZONE_NAME_CHARS {
        return text.to_owned();
    }
    let start: String = text.chars().take(MAX_ZONE_NAME_CHARS).collect();
    format!("{start}… ({length} characters)")
}

/// Why `text` is not a zone name, with the closest known names when there are any.
fn unknown_name_reason(text: &str) -> String {
    let database = format!("the IANA tz database (version {TZ_DATABASE_VERSION}) built into cairn");
    if let Some(tz) = TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(text))
    {
        return format!(
            "zone names are case-sensitive: did you mean `{}`?",
            tz.name()
        );
    }
    let wanted = text.to_ascii_lowercase();
    let wanted_city = wanted.rsplit('/').next().unwrap_or_default();
    // A typo of a few letters, or the right city under the wrong region.
    let allowed = 1 + wanted.chars().count() / 6;
    let mut close: Vec<(usize, &'static str)> = TZ_VARIANTS
        .iter()
        .filter_map(|tz| {
            let name = tz.name().to_ascii_lowercase();
            let city = name.rsplit('/').next().unwrap_or_default();
            let distance = if !wanted_city.is_empty() && city == wanted_city {
                0
            } else {
                edit_distance(&name, &wanted)
            };
            (distance <= allowed).then_some((distance, tz.name()))
        })
        .collect();
    close.sort_unstable();
    let names: Vec<String> = close
        .iter()
        .take(3)
        .map(|(_, name)| format!("`{name}`"))
        .collect();
    if names.is_empty() {
        format!(
            "not a zone of {database}; give an IANA name such as `Europe/Berlin` or `America/New_York`, `UTC`, or an offset such as `+05:30`"
        )
    } else {
        format!(
            "not a zone of {database}; did you mean {}?",
            names.join(" or ")
        )
    }
}

/// The Levenshtein distance of two short ASCII-lowercased names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
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
                reason: "hours and minutes must have the same sign and minutes must be below 60"
                    .to_owned(),
            });
        }
        // Checked before the arithmetic, which would overflow for hours near `i32::MAX`.
        if hours.unsigned_abs() >= 24 {
            return Err(Error::InvalidZone {
                job: None,
                text,
                reason: "the offset must be within 24 hours of UTC".to_owned(),
            });
        }
        Zone::from_seconds(hours * 3600 + minutes * 60, text)
    }

    /// A zone of the IANA tz database by its case-sensitive name, such as `Europe/Berlin`.
    ///
    /// # Errors
    ///
    /// `Error::InvalidZone` for a name the compiled-in database ([`TZ_DATABASE_VERSION`])
    /// does not have; its reason names the closest names it has, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_scheduler::{Error, Zone};
    ///
    /// let new_york = Zone::named("America/New_York")?;
    /// assert_eq!(new_york.to_string(), "America/New_York");
    /// assert!(matches!(Zone::named("Mars/Olympus"), Err(Error::InvalidZone { .. })));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// ```
    pub fn named(name: &str) -> Result<Zone> {
        name.parse().map(Zone::Named)
    }

    /// The wall-clock time in this zone at `at`, with the offset in force then: for a named
    /// zone, its standard or its daylight-saving offset. `None` past chrono's range.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::Zone;
    ///
    /// let berlin = Zone::named("Europe/Berlin")?;
    /// // 2026-01-01T00:00Z
    /// let new_year = berlin.local_time(Timestamp(1_767_225_600_000)).unwrap();
    /// assert_eq!(new_year.to_rfc3339(), "2026-01-01T01:00:00+01:00");
    /// let midsummer = berlin.local_time(Timestamp(1_782_000_000_000)).unwrap();
    /// assert_eq!(midsummer.offset().to_string(), "+02:00");
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// ```
    pub fn local_time(self, at: Timestamp) -> Option<DateTime<FixedOffset>> {
        let millis = i64::try_from(at.0).ok()?;
        match (self.fixed_offset(), self) {
            (Some(offset), _) => offset.timestamp_millis_opt(millis).single(),
            (None, Zone::Named(named)) => {
                let local = named.0.timestamp_millis_opt(millis).single()?;
                Some(local.fixed_offset())
            }
            (None, _) => None,
        }
    }

    /// Checks a zone (for example one built by hand as `Zone::Fixed`).
    ///
    /// # Errors
    ///
    /// `Error::InvalidZone` when a fixed offset is not within ±24 hours (exclusive).
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_scheduler::{Error, Zone};
    ///
    /// assert!(Zone::Fixed { offset_seconds: 5 * 3600 }.validate().is_ok());
    /// // Built by hand past a day's offset.
    /// let too_far = Zone::Fixed { offset_seconds: 25 * 3600 };
    /// assert!(matches!(too_far.validate(), Err(Error::InvalidZone { .. })));
    /// ```
    pub fn validate(self) -> Result<()> {
        match self {
            Zone::Utc | Zone::Named(_) => Ok(()),
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
                reason: "the offset must be within 24 hours of UTC".to_owned(),
            }),
        }
    }

    /// The offset of `Utc` and `Fixed` zones; `None` for a named zone.
    fn fixed_offset(self) -> Option<FixedOffset> {
        let seconds = match self {
            Zone::Utc => 0,
            Zone::Fixed { offset_seconds } => offset_seconds,
            Zone::Named(_) => return None,
        };
        // Zones are validated when built or parsed, so this fallback is never taken.
        Some(
            FixedOffset::east_opt(seconds)
                .unwrap_or_else(|| FixedOffset::east_opt(0).expect("UTC")),
        )
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
            Zone::Named(named) => f.write_str(named.name()),
        }
    }
}

impl FromStr for Zone {
    type Err = Error;

    /// Parses `UTC`, `Z`, an offset `+HH:MM`, `-HH:MM`, `+HHMM`, `+HH` or `+HH:MM:SS` (the
    /// form `Display` writes for an offset with seconds), or an IANA zone name such as
    /// `Europe/Berlin` (case-sensitive, as the database spells it).
    fn from_str(text: &str) -> Result<Zone> {
        let trimmed = text.trim();
        if trimmed.eq_ignore_ascii_case("utc") || trimmed == "Z" {
            return Ok(Zone::Utc);
        }
        let invalid = |reason: &str| Error::InvalidZone {
            job: None,
            text: shown_zone_text(text),
            reason: reason.to_owned(),
        };
        let (sign, rest) = match trimmed.as_bytes().first() {
            Some(b'+') => (1, &trimmed[1..]),
            Some(b'-') => (-1, &trimmed[1..]),
            _ => {
                return NamedZone::parse(trimmed, text).map(Zone::Named);
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

/// The longest interval a new job may have: 36,500 days, about a hundred years. No job waits
/// longer between runs; a longer one is a typo (`--every 99999999999h` would first run in
/// the year 11 million), so it is refused rather than stored as a job that never runs.
pub const MAX_INTERVAL: Duration = Duration::from_secs(36_500 * 86_400);

impl Schedule {
    /// A cron schedule, checked with `croner`.
    ///
    /// # Errors
    ///
    /// `Error::InvalidSchedule` naming the expression when it does not parse, and the first
    /// field that is bad on its own with the values that field takes;
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
        // `Fixed { 0 }` is stored as `+00:00` and the database's `UTC` zone as `UTC`, which
        // both read back as `Utc`: build them as such so the job `add` returns equals the
        // job `show` reads.
        let zone = match zone {
            Zone::Fixed { offset_seconds: 0 } => Zone::Utc,
            Zone::Named(named) if named.name() == "UTC" => Zone::Utc,
            other => other,
        };
        Ok(Schedule::Cron { expression, zone })
    }

    /// A fixed-interval schedule.
    ///
    /// # Errors
    ///
    /// `Error::InvalidSchedule` when `interval` is shorter than [`MIN_INTERVAL`] or longer
    /// than [`MAX_INTERVAL`].
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
    /// // A typo's interval, which would first fire in the year 11 million.
    /// assert!(matches!(
    ///     Schedule::every(Duration::from_secs(99_999_999_999 * 3600)),
    ///     Err(Error::InvalidSchedule { .. })
    /// ));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// ```
    pub fn every(interval: Duration) -> Result<Schedule> {
        let schedule = Schedule::Every {
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        };
        schedule.validate_new()?;
        Ok(schedule)
    }

    /// Checks a schedule for a new job: [`Schedule::validate`], and an interval no longer
    /// than [`MAX_INTERVAL`]. A stored job is not held to that bound (see `validate`).
    pub(crate) fn validate_new(&self) -> Result<()> {
        self.validate()?;
        match self {
            Schedule::Every { interval_ms }
                if u128::from(*interval_ms) > MAX_INTERVAL.as_millis() =>
            {
                Err(Error::InvalidSchedule {
                    job: None,
                    expression: format!("every {interval_ms} ms"),
                    reason: format!(
                        "an interval must be at most {} days (about a hundred years); one this long is most likely a typo",
                        MAX_INTERVAL.as_secs() / 86_400
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// A one-shot schedule.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::Schedule;
    ///
    /// let once = Schedule::once(Timestamp(90_000));
    /// assert_eq!(once.next_after(Timestamp(0), Timestamp(0))?, Some(Timestamp(90_000)));
    /// // Once its time has passed it never fires again.
    /// assert_eq!(once.next_after(Timestamp(0), Timestamp(90_000))?, None);
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// ```
    pub fn once(at: Timestamp) -> Schedule {
        Schedule::Once { at }
    }

    /// Checks a schedule (for example one read back from storage or built by hand).
    ///
    /// An interval longer than [`MAX_INTERVAL`] passes here: new jobs are refused one
    /// (`Schedule::every`, `Jobs::add`), but a job an earlier build stored with one still
    /// reads back (it is harmless: its next time is computed without overflow).
    ///
    /// # Errors
    ///
    /// `Error::InvalidSchedule` naming what is wrong; `Error::InvalidZone` for a cron
    /// schedule's out-of-range `Zone::Fixed`.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_scheduler::{Error, Schedule, Zone};
    ///
    /// let hand_built = Schedule::Every { interval_ms: 500 };
    /// assert!(matches!(hand_built.validate(), Err(Error::InvalidSchedule { .. })));
    /// let typo = Schedule::Cron { expression: "0 25 * * *".to_owned(), zone: Zone::Utc };
    /// assert!(matches!(typo.validate(), Err(Error::InvalidSchedule { .. })));
    /// assert!(Schedule::Every { interval_ms: 1_000 }.validate().is_ok());
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::{Schedule, Zone};
    ///
    /// // 09:00 every day in Berlin is 08:00 UTC in winter and 07:00 UTC in summer.
    /// let nine = Schedule::cron("0 9 * * *", Zone::named("Europe/Berlin")?)?;
    /// let jan_1 = Timestamp(1_767_225_600_000); // 2026-01-01T00:00:00Z
    /// let jul_1 = Timestamp(1_782_864_000_000); // 2026-07-01T00:00:00Z
    /// assert_eq!(nine.next_after(jan_1, jan_1)?, Some(Timestamp(jan_1.0 + 8 * 3_600_000)));
    /// assert_eq!(nine.next_after(jul_1, jul_1)?, Some(Timestamp(jul_1.0 + 7 * 3_600_000)));
    /// // Strictly after: a time that matches is not its own next time.
    /// let at_nine = Timestamp(jan_1.0 + 8 * 3_600_000);
    /// assert_eq!(nine.next_after(at_nine, at_nine)?, Some(Timestamp(at_nine.0 + 86_400_000)));
    /// // An interval counts from its anchor.
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// let next = every.next_after(Timestamp(30_000), Timestamp(95_000))?;
    /// assert_eq!(next, Some(Timestamp(150_000)));
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// ```
    pub fn next_after(&self, anchor: Timestamp, after: Timestamp) -> Result<Option<Timestamp>> {
        match self {
            Schedule::Cron { expression, zone } => {
                let cron = parse_cron(expression)?;
                // croner works in whole seconds: start from the second that holds `after`;
                // every time returned is strictly later than that second, so than `after`.
                let Ok(start) = i64::try_from(after.0 / 1000 * 1000) else {
                    return Ok(None);
                };
                let next = match (zone.fixed_offset(), *zone) {
                    (Some(offset), _) => next_in_zone(&cron, offset, start),
                    (None, Zone::Named(named)) => next_in_zone(&cron, named.0, start),
                    // `fixed_offset` is `None` for named zones only.
                    (None, _) => Ok(None),
                };
                match next {
                    Ok(next) => Ok(next.and_then(|ms| u64::try_from(ms).ok()).map(Timestamp)),
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
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_queue::Timestamp;
    /// use cairn_scheduler::Schedule;
    ///
    /// let every = Schedule::every(Duration::from_secs(60))?;
    /// let anchor = Timestamp(0);
    /// // `after` is left out, `until` is kept.
    /// let times = every.fire_times_between(anchor, Timestamp(60_000), Timestamp(240_000), 10)?;
    /// assert_eq!(times, [Timestamp(120_000), Timestamp(180_000), Timestamp(240_000)]);
    /// assert_eq!(every.fire_times_between(anchor, Timestamp(0), Timestamp(600_000), 2)?.len(), 2);
    /// # Ok::<(), cairn_scheduler::Error>(())
    /// ```
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

/// The first time `cron` fires in `zone` strictly after `start` (milliseconds since the
/// epoch, a whole second), as milliseconds since the epoch; `Ok(None)` when it never does.
///
/// croner searches wall-clock time and resolves each wall time to one instant. Where the
/// clocks go back, a wall time happens twice: croner's answer can be the earlier of the two
/// even when only the later one is after `start`, and from the first pass it skips the
/// repeated wall times an interval job fires at again. This keeps croner's rules (module
/// docs, "Daylight saving") but answers in time order: always after `start`, and never
/// skipping a time the rules fire at.
fn next_in_zone<Z>(
    cron: &Cron,
    zone: Z,
    start: i64,
) -> Result<Option<i64>, croner::errors::CronError>
where
    Z: TimeZone + Copy,
{
    let LocalResult::Single(start) = zone.timestamp_millis_opt(start) else {
        return Ok(None);
    };
    // croner fires at no time past its year limit, and near the end of chrono's range it
    // panics turning an instant into wall time east of UTC. A UTC year past the limit is a
    // local year at or past it in every zone, so nothing is left to find.
    if start.naive_utc().year() > croner::YEAR_UPPER_LIMIT {
        return Ok(None);
    }
    let interval = cron.determine_job_type() == JobType::IntervalWildcard;
    let mut next = first_match_after(cron, zone, &start, &start, false, interval)?;
    if interval {
        // `start` in the first pass of a repeated hour: the wall times before it come again
        // in the second pass, which is later in time than anything in the first.
        if let Some(second_pass) = second_pass_start(zone, &start) {
            let repeated = first_match_after(cron, zone, &start, &second_pass, true, interval)?;
            next = match (next, repeated) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    Ok(next.map(|time| time.timestamp_millis()))
}

/// croner's next match from `from`, moved past `start` where croner resolved a repeated
/// wall time to its earlier occurrence: an interval job takes the later occurrence, a
/// fixed-time job (which fires at the first occurrence only) the next match after it.
///
/// croner also answers with the end of a spring-forward gap for a fixed-time job whenever
/// its search runs into the gap on a matching date, even when the job's time is not in the
/// gap: `0 1 * * *` in Berlin, searched from 01:00 CET on 2026-03-29, reaches the missing
/// 02:00 and comes back with 03:00 CEST, a second run that day. Such an answer is taken only
/// when the expression has a wall time inside that gap; otherwise the search goes on after it.
fn first_match_after<Z>(
    cron: &Cron,
    zone: Z,
    start: &DateTime<Z>,
    from: &DateTime<Z>,
    inclusive: bool,
    interval: bool,
) -> Result<Option<DateTime<Z>>, croner::errors::CronError>
where
    Z: TimeZone + Copy,
{
    // Each pass moves `from` past one repeated wall time (only those of the repeated hour
    // around `start` can resolve to a time not after `start`) or past one spring-forward gap
    // the expression has no time in (one or two a year, and croner's own search stops after
    // a year), so a handful of passes is all a real search needs; the bound is a backstop.
    const MAX_PASSES: usize = 1024;
    let mut from = from.clone();
    let mut inclusive = inclusive;
    for _ in 0..MAX_PASSES {
        let found = match cron.find_next_occurrence(&from, inclusive) {
            Ok(found) => found,
            Err(croner::errors::CronError::TimeSearchLimitExceeded) => return Ok(None),
            Err(err) => return Err(err),
        };
        if found > *start {
            // croner answers with a time that does not match only where it moved a fixed
            // time out of a spring-forward gap.
            if cron.is_time_matching(&found)? || matches_in_gap_before(cron, &found)? {
                return Ok(Some(found));
            }
            from = found;
            inclusive = false;
            continue;
        }
        // Only a repeated wall time resolves to a time not after `start`; anything else
        // would be a croner bug, refused rather than looped on or taken as "never".
        let later = match zone.from_local_datetime(&found.naive_local()).latest() {
            Some(later) if later > found => later,
            _ => return Err(croner::errors::CronError::InvalidTime),
        };
        if interval && later > *start && cron.is_time_matching(&later)? {
            return Ok(Some(later));
        }
        from = later;
        inclusive = false;
    }
    // Unreachable for any expression croner accepts: treated like croner's own search limit.
    Ok(None)
}

/// Whether `cron` matches a wall time in the spring-forward gap that ends at `at`, that is
/// in the wall times the clocks skipped just before `at`; `false` when `at` does not follow
/// a gap. croner matches by wall time only, so the gap's wall times are searched as UTC.
fn matches_in_gap_before<Z>(
    cron: &Cron,
    at: &DateTime<Z>,
) -> Result<bool, croner::errors::CronError>
where
    Z: TimeZone,
{
    let gap_end = at.naive_local();
    // The wall time one second before `at` in real time is the last one before the gap.
    let second = chrono::Duration::seconds(1);
    let Some(gap_start) = at
        .clone()
        .checked_sub_signed(second)
        .and_then(|before| before.naive_local().checked_add_signed(second))
    else {
        return Ok(false);
    };
    if gap_start >= gap_end {
        return Ok(false);
    }
    match cron.find_next_occurrence(&chrono::Utc.from_utc_datetime(&gap_start), true) {
        Ok(wall) => Ok(wall.naive_utc() < gap_end),
        Err(croner::errors::CronError::TimeSearchLimitExceeded) => Ok(false),
        Err(err) => Err(err),
    }
}

/// When `start` lies in the first pass of a repeated hour (the clocks go back later), the
/// instant the second pass begins, at the later offset; otherwise `None`.
fn second_pass_start<Z>(zone: Z, start: &DateTime<Z>) -> Option<DateTime<Z>>
where
    Z: TimeZone + Copy,
{
    let LocalResult::Ambiguous(first, second) = zone.from_local_datetime(&start.naive_local())
    else {
        return None;
    };
    if first != *start {
        return None;
    }
    // The offset changes once in (start, second]: find the first second at the new offset.
    let later_offset = second.offset().fix();
    let (mut low, mut high) = (start.timestamp(), second.timestamp());
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        let at_middle = zone.timestamp_opt(middle, 0).single()?;
        if at_middle.offset().fix() == later_offset {
            high = middle;
        } else {
            low = middle;
        }
    }
    zone.timestamp_opt(high, 0).single()
}

fn parse_cron(expression: &str) -> Result<Cron> {
    let refuse = |reason: String| Error::InvalidSchedule {
        job: None,
        expression: expression.to_owned(),
        reason,
    };
    // The parser's own words for this case name its type (`CronPattern`).
    if expression.trim().is_empty() {
        return Err(refuse(
            "the cron expression is empty; it takes 5 to 7 fields: minute hour day-of-month month day-of-week, then optionally seconds first and a year last".to_owned(),
        ));
    }
    // Nicknames (`@daily`) are one field by design.
    let fields = expression.split_whitespace().count();
    if !expression.trim_start().starts_with('@') && !(5..=7).contains(&fields) {
        return Err(refuse(format!(
            "the cron expression has {fields} field(s); it takes 5 to 7: minute hour day-of-month month day-of-week, then optionally seconds first and a year last"
        )));
    }
    Cron::from_str(expression).map_err(|err| {
        refuse(
            bad_field(expression)
                .unwrap_or_else(|| format!("the cron expression does not parse ({err})")),
        )
    })
}

/// The fields of a cron expression of 5, 6 or 7 fields, by name, with the values each takes.
fn cron_fields(count: usize) -> &'static [(&'static str, &'static str)] {
    const SECONDS: (&str, &str) = ("seconds", "0-59");
    const FIVE: [(&str, &str); 5] = [
        ("minute", "0-59"),
        ("hour", "0-23"),
        (
            "day-of-month",
            "1-31, `L` (the last day) or `15W` (the weekday nearest the 15th)",
        ),
        ("month", "1-12 or JAN-DEC"),
        (
            "day-of-week",
            "0-7 (0 and 7 are Sunday) or SUN-SAT, `5L` (the last Friday) or `MON#2` (the second Monday)",
        ),
    ];
    const SIX: [(&str, &str); 6] = [SECONDS, FIVE[0], FIVE[1], FIVE[2], FIVE[3], FIVE[4]];
    const SEVEN: [(&str, &str); 7] = [
        SECONDS,
        FIVE[0],
        FIVE[1],
        FIVE[2],
        FIVE[3],
        FIVE[4],
        ("year", "1-5000"),
    ];
    match count {
        5 => &FIVE,
        6 => &SIX,
        7 => &SEVEN,
        _ => &[],
    }
}

/// Names the first field of a refused expression that is bad on its own, with the values
/// that field takes, in cron's terms rather than the parser's (whose messages name its own
/// types). `None` when no single field is bad (the fields only clash together); the caller
/// then keeps the parser's words.
fn bad_field(expression: &str) -> Option<String> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let named = cron_fields(fields.len());
    (0..named.len()).find_map(|at| {
        // The field alone, every other one `*`: it parses exactly when the field does.
        let alone = (0..fields.len())
            .map(|i| if i == at { fields[i] } else { "*" })
            .collect::<Vec<_>>()
            .join(" ");
        let why = match Cron::from_str(&alone).err()? {
            CronError::IllegalCharacters(_) => "a character cron does not take".to_owned(),
            CronError::ComponentError(what) => what.trim_end_matches('.').to_lowercase(),
            other => other.to_string(),
        };
        let (name, takes) = named[at];
        Some(format!(
            "its {name} field `{}` is not valid ({why}); it takes {takes}, or `*`, lists (`1,5`), ranges (`1-5`) and steps (`*/5`) of those",
            fields[at],
        ))
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
