//! Reading a bench's options: every refusal names the option and the values it takes.
//!
//! The benches take a handful of `--flag value` options each, so a small reader is enough.
//! An option given twice is refused rather than letting the last one win silently, and a
//! number outside its range is refused before any work starts, so a bad value never turns
//! into a panic, an allocation failure or an hour-long run halfway through a table.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;

use anyhow::{Context, bail};

/// The options of one bench, read one at a time.
pub(crate) struct OptionReader<'a> {
    rest: std::slice::Iter<'a, String>,
    seen: Vec<&'a str>,
    /// What the bench accepts, for the unknown-option message.
    expected: &'static str,
    bench: &'static str,
}

impl<'a> OptionReader<'a> {
    pub(crate) fn new(bench: &'static str, args: &'a [String], expected: &'static str) -> Self {
        OptionReader {
            rest: args.iter(),
            seen: Vec::new(),
            expected,
            bench,
        }
    }

    /// The next option's name, or `None` at the end. An option seen before is refused.
    pub(crate) fn next_option(&mut self) -> anyhow::Result<Option<&'a str>> {
        let Some(option) = self.rest.next().map(String::as_str) else {
            return Ok(None);
        };
        if self.seen.contains(&option) {
            bail!("option `{option}` is given twice; give each option once");
        }
        self.seen.push(option);
        Ok(Some(option))
    }

    /// The value after `option`; `takes` says what it should be.
    pub(crate) fn value(&mut self, option: &str, takes: &str) -> anyhow::Result<&'a str> {
        self.rest
            .next()
            .map(String::as_str)
            .with_context(|| format!("{option} needs a value: {takes}"))
    }

    /// Whether `option` was given.
    pub(crate) fn saw(&self, option: &str) -> bool {
        self.seen.contains(&option)
    }

    /// The refusal of an option this bench does not know.
    pub(crate) fn unknown(&self, option: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "unknown {} bench option `{option}`; expected {}",
            self.bench,
            self.expected
        )
    }
}

/// `value` as a whole number within `range`, else an error naming `option` and the range.
pub(crate) fn number_in<T>(option: &str, value: &str, range: RangeInclusive<T>) -> anyhow::Result<T>
where
    T: FromStr + PartialOrd + Display,
{
    match value.trim().parse::<T>() {
        Ok(number) if range.contains(&number) => Ok(number),
        _ => bail!(
            "{option} takes a whole number from {} to {}, got `{value}`",
            range.start(),
            range.end()
        ),
    }
}

/// `value` as a comma-separated list of whole numbers, each within `range`.
pub(crate) fn numbers_in<T>(
    option: &str,
    value: &str,
    range: RangeInclusive<T>,
) -> anyhow::Result<Vec<T>>
where
    T: FromStr + PartialOrd + Display,
{
    let parsed: Option<Vec<T>> = value
        .split(',')
        .map(|item| {
            item.trim()
                .parse::<T>()
                .ok()
                .filter(|number| range.contains(number))
        })
        .collect();
    match parsed {
        Some(numbers) => Ok(numbers),
        None => bail!(
            "{option} takes a comma-separated list of whole numbers from {} to {}, got `{value}`",
            range.start(),
            range.end()
        ),
    }
}
