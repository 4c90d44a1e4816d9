//! Writing to stdout and stderr without panicking, and making stored text safe to print.
//!
//! `println!` panics when stdout is gone (`cairn run wf.toml | head -1` closes the pipe
//! after one line). A panic in the middle of `cairn run` would abandon the drive halfway
//! and leave the run looking interrupted, only because a pager was closed. So every line
//! the CLI prints goes through `outln!` / `out!` (stdout) or `eoutln!` / `eout!`
//! (stderr). The first failed write to a stream marks it closed and everything later
//! written to it is dropped; the command itself goes on to its normal end and exit code.
//! A broken pipe is silent (the reader chose to stop reading); any other write failure
//! (a full disk behind a redirect) is reported once on stderr, and a command that only
//! reads (a listing, `show`, `audit`) then exits with `EXIT_OUTPUT`, so that a script can
//! tell an incomplete listing from a complete one.
//!
//! [`escape_controls`] and [`terminal_safe`] keep stored text (a run's scope, workflow name,
//! error) from sending escape sequences to the user's terminal.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to stdout failed: later output is dropped.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// Set once a write to stdout failed for a reason other than a closed pipe (a full disk
/// behind a redirect): the output a reader got is incomplete without its choosing.
static STDOUT_FAILED: AtomicBool = AtomicBool::new(false);
/// Set once a write to stderr failed: later output is dropped.
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout, dropping the text once stdout has failed. Used by `outln!` and
/// `out!`; call those instead.
pub fn write_stdout(args: fmt::Arguments<'_>) {
    to_stdout(|stdout| stdout.write_fmt(args));
}

/// Writes raw bytes to stdout (a saved command output, printed as it is), with the same
/// failure handling as [`write_stdout`]. Returns `false` once stdout has failed, so a
/// caller copying a large file can stop reading it.
pub fn write_stdout_bytes(bytes: &[u8]) -> bool {
    to_stdout(|stdout| stdout.write_all(bytes))
}

/// Runs `write` on stdout and flushes, unless stdout has failed before; a failure marks it
/// failed (see the module docs). Returns whether stdout still takes output.
fn to_stdout(write: impl FnOnce(&mut std::io::StdoutLock<'static>) -> std::io::Result<()>) -> bool {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return false;
    }
    let mut stdout = std::io::stdout().lock();
    // A prompt without a newline must reach the terminal before input is read, and a
    // failure must be seen now rather than at exit: flush every write. Output is line-sized,
    // so this costs no more than the line buffering already does.
    if let Err(error) = write(&mut stdout).and_then(|()| stdout.flush()) {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        if error.kind() != std::io::ErrorKind::BrokenPipe {
            STDOUT_FAILED.store(true, Ordering::Relaxed);
            write_stderr(format_args!(
                "warning: cannot write to stdout ({error}); the rest of the output is dropped\n"
            ));
        }
        return false;
    }
    true
}

/// Writes to stderr, dropping the text once stderr has failed. Used by `eoutln!` and
/// `eout!`; call those instead.
pub fn write_stderr(args: fmt::Arguments<'_>) {
    if STDERR_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if std::io::stderr().lock().write_fmt(args).is_err() {
        // Nowhere is left to say so.
        STDERR_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Whether stdout has failed (its reader went away): long listings can stop early.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Whether a write to stdout failed for a reason other than a closed pipe: a command whose
/// only product is its output (a listing) then exits with
/// [`EXIT_OUTPUT`](crate::cli::EXIT_OUTPUT) instead of success.
pub fn stdout_failed() -> bool {
    STDOUT_FAILED.load(Ordering::Relaxed)
}

/// Stored text for a table cell or a last column: on one line, control characters escaped
/// ([`escape_controls`]), and cut with `…` to at most `columns` terminal columns. Columns,
/// not characters: a CJK character or an emoji takes two.
///
/// # Examples
///
/// ```
/// use cairn_cli::out::clip;
///
/// assert_eq!(clip("nightly\nbuild", 20), "nightly build");
/// assert_eq!(clip("abcdef", 4), "abc…");
/// assert_eq!(clip("夜間ビルド", 6), "夜間…");
/// ```
pub fn clip(text: &str, columns: usize) -> String {
    use unicode_width::UnicodeWidthChar as _;
    let one_line = escape_controls(&text.replace('\n', " ")).into_owned();
    if unicode_width::UnicodeWidthStr::width(one_line.as_str()) <= columns {
        return one_line;
    }
    let room = columns.saturating_sub(1);
    let mut used = 0;
    let mut cut = String::new();
    for c in one_line.chars() {
        let width = c.width().unwrap_or(0);
        if used + width > room {
            break;
        }
        used += width;
        cut.push(c);
    }
    cut.push('…');
    cut
}

/// [`clip`]ped text padded with spaces to exactly `columns` terminal columns, so the columns
/// after it line up whatever the characters in it.
///
/// # Examples
///
/// ```
/// use cairn_cli::out::cell;
///
/// assert_eq!(cell("ab", 4), "ab  ");
/// assert_eq!(cell("夜間", 6), "夜間  ");
/// assert_eq!(cell("夜間ビルド", 6), "夜間… ");
/// ```
pub fn cell(text: &str, columns: usize) -> String {
    let mut clipped = clip(text, columns);
    let width = unicode_width::UnicodeWidthStr::width(clipped.as_str());
    clipped.extend(std::iter::repeat_n(' ', columns.saturating_sub(width)));
    clipped
}

/// `println!` that never panics: see the module docs.
macro_rules! outln {
    () => {
        $crate::out::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that never panics: see the module docs.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write_stdout(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics: see the module docs.
macro_rules! eoutln {
    ($($arg:tt)*) => {
        $crate::out::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprint!` that never panics: see the module docs.
macro_rules! eout {
    ($($arg:tt)*) => {
        $crate::out::write_stderr(format_args!($($arg)*))
    };
}

pub(crate) use {eout, eoutln, out, outln};

/// Stored text for one line of a table or a header: every control character (an escape
/// sequence, a newline) is shown as its Rust escape (`\u{1b}`, `\n`), so the text reads
/// unambiguously and cannot drive the terminal. Other characters are kept.
///
/// # Examples
///
/// ```
/// use cairn_cli::out::escape_controls;
///
/// assert_eq!(escape_controls("a\u{1b}[31mred"), "a\\u{1b}[31mred");
/// assert_eq!(escape_controls("release/4.2 ünïcode"), "release/4.2 ünïcode");
/// ```
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// Text of several lines for a terminal: control characters other than newline and tab
/// become U+FFFD (as `cairn-runs` renders its prompts). Used for printed command lines,
/// where an escape would change the command; the exact command is in the JSON output.
///
/// # Examples
///
/// ```
/// use cairn_cli::out::terminal_safe;
///
/// assert_eq!(terminal_safe("a\u{1b}[31m\nb"), "a\u{fffd}[31m\nb");
/// ```
pub fn terminal_safe(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if unsafe_char(c) { '\u{FFFD}' } else { c })
            .collect(),
    )
}
