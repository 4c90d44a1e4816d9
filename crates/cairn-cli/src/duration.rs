//! Human durations as written in workflow files: `250ms`, `30s`, `5m`, `1h30m`, `2d`.

use std::fmt;
use std::time::Duration;

/// Why a duration text does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    /// The text that was given.
    pub text: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad duration `{}`: {} (use a number and a unit, e.g. `250ms`, `30s`, `5m`, `1h30m`)",
            self.text, self.reason
        )
    }
}

impl std::error::Error for DurationError {}

/// Parses a human duration: one or more `<digits><unit>` parts, with units `ms`, `s`, `m`,
/// `h` and `d`. The total must be above zero.
///
/// # Errors
///
/// [`DurationError`] for an empty text, a part without a number or unit, an unknown unit, a
/// zero total or an overflow.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cairn_cli::duration::parse_duration;
///
/// assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(90 * 60));
/// assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
/// assert!(parse_duration("5 parsecs").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let fail = |reason| DurationError {
        text: text.to_owned(),
        reason,
    };
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(fail("it is empty"));
    }
    let mut total_ms: u64 = 0;
    let mut i = 0;
    while i < bytes.len() {
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return Err(fail("expected a number"));
        }
        let number: u64 = text[digits_start..i]
            .parse()
            .map_err(|_| fail("the number is too large"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let per_unit_ms: u64 = match &text[unit_start..i] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" if matches!(bytes.get(i), Some(b'.' | b',')) => {
                return Err(fail(
                    "numbers are whole (write `1h30m` for an hour and a half, `1500ms` for 1.5s)",
                ));
            }
            "" => return Err(fail("a number has no unit")),
            _ => return Err(fail("unknown unit (use ms, s, m, h or d)")),
        };
        let part = number
            .checked_mul(per_unit_ms)
            .ok_or_else(|| fail("it is too large"))?;
        total_ms = total_ms
            .checked_add(part)
            .ok_or_else(|| fail("it is too large"))?;
    }
    if total_ms == 0 {
        return Err(fail("it must be above zero"));
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration for people: `850ms`, `12.3s`, `4m05s`, `2h03m`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cairn_cli::duration::format_duration;
///
/// assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
/// assert_eq!(format_duration(Duration::from_secs(245)), "4m05s");
/// ```
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1_000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}
