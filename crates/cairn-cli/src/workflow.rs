//! Workflow files: parsing, validation with file/line/column errors, and the run plan they
//! turn into.
//!
//! A workflow is TOML: a top-level `name` and one `[[task]]` table per task. Every problem is
//! found before anything runs, and each error names the file, line and column of the item at
//! fault (computed from the byte spans the `toml` crate records).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_executor::{Phase, RetryPolicy, RunPlan};
use cairn_queue::TaskSpec;
use serde::Deserialize;
use toml::Spanned;

use crate::duration::parse_duration;
use crate::shell::{SHELL_KIND, ShellSpec};

/// What is wrong with a workflow file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkflowErrorKind {
    /// The file cannot be read.
    Read,
    /// The file is not valid TOML or a value has the wrong type.
    Syntax,
    /// A key the workflow format does not know.
    UnknownKey,
    /// A required key is missing.
    MissingKey,
    /// Two tasks have the same id.
    DuplicateId,
    /// A `depends_on` entry names no task of the file.
    UnknownDependency,
    /// Tasks depend on each other in a circle.
    Cycle,
    /// A `timeout` does not parse.
    BadDuration,
    /// A value is out of range (an empty id, `max_attempts = 0`, a bad character in an id, an
    /// empty command, an environment name with `=` or starting with `CAIRN_`, a NUL
    /// character, a `run` or environment entry longer than the OS takes, an exit code
    /// outside 1 to 255).
    InvalidValue,
}

/// A workflow file error, located at a line and column of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowError {
    /// The workflow file.
    pub path: PathBuf,
    /// The line (from 1) of the item at fault; 0 when the file could not be read.
    pub line: usize,
    /// The column (from 1, in characters) of the item at fault; 0 when unknown.
    pub column: usize,
    /// What kind of problem it is.
    pub kind: WorkflowErrorKind,
    /// The explanation.
    pub message: String,
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.path.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for WorkflowError {}

/// One task of a workflow, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowTask {
    /// The task's id, unique in the file.
    pub id: String,
    /// The ids of the tasks it waits for.
    pub depends_on: Vec<String>,
    /// How many attempts it gets; the queue's default when `None`.
    pub max_attempts: Option<u32>,
    /// The shell command and its settings.
    pub shell: ShellSpec,
}

/// A parsed and validated workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    /// The workflow's name (runs are grouped by it).
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// The folder that task `cwd`s are relative to: the file's folder.
    pub dir: PathBuf,
    /// The tasks in a topological order (every task after its dependencies); among tasks
    /// that could go in either order, file order is kept.
    pub tasks: Vec<WorkflowTask>,
    /// `retry_delay`: how long a failed task waits before its first retry; `None` for the
    /// executor's default (100 ms). See [`Workflow::retry_policy`].
    pub retry_delay: Option<Duration>,
}

/// The longest a retry waits (before jitter) unless `retry_delay` is longer: each retry waits
/// twice as long as the one before, up to this.
pub const RETRY_DELAY_CAP: Duration = Duration::from_secs(600);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkflow {
    name: Option<Spanned<String>>,
    retry_delay: Option<Spanned<String>>,
    #[serde(default)]
    task: Vec<Spanned<RawTask>>,
}

/// The part of a workflow file before its first `[[task]]` line, read on its own by
/// [`parse_in_pieces`]. `task` is only there to notice a file that defines `task` before
/// that line (`task = []`, say): such a file is read whole.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHead {
    name: Option<Spanned<String>>,
    retry_delay: Option<Spanned<String>>,
    task: Option<serde::de::IgnoredAny>,
}

/// One piece of a workflow file read by [`parse_in_pieces`]: from a `[[task]]` line to the
/// next one (or the end), so it holds tables of `task` and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPiece {
    task: Vec<Spanned<RawTask>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    id: Option<Spanned<String>>,
    run: Option<Spanned<String>>,
    #[serde(default)]
    depends_on: Vec<Spanned<String>>,
    max_attempts: Option<Spanned<u32>>,
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, Spanned<String>>,
    cwd: Option<Spanned<String>>,
    #[serde(default)]
    permanent_exit_codes: Vec<Spanned<i32>>,
}

/// The key a type error at byte `offset` of `source` is about, when it can be told: a type
/// error's position is its value's (or a table header's), and the message names no key. It
/// is the key of a `key = value` line, except inside a `[task.env]` table, whose keys are
/// variable names (the error is about `env`), and on a `[table]` header line, the table's
/// name (`[task]` written with one bracket pair).
fn key_at(source: &str, offset: usize) -> Option<&str> {
    let bare = |key: &str| {
        !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let offset = offset.min(source.len());
    let start = source[..offset].rfind('\n').map_or(0, |at| at + 1);
    let line = &source[start..];
    let line = line[..line.find('\n').unwrap_or(line.len())].trim();
    if let Some(header) = line
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        let name = header.trim();
        return bare(name).then_some(name);
    }
    let key = line.split_once('=')?.0.trim();
    if !bare(key) {
        return None;
    }
    // The nearest header above: a key under `[task.env]` is a variable's name.
    let header = source[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| line.starts_with('['));
    match header.map(|h| h.trim_matches(|c| c == '[' || c == ']').trim()) {
        Some("task.env") => Some("env"),
        _ => Some(key),
    }
}

/// A TOML type error in words a workflow author knows: Rust and serde type names replaced
/// by TOML's (an array, a table), and for a known key, how to write its value.
fn in_plain_words(message: &str, key: Option<&str>) -> String {
    let mut text = message
        .replace(
            "expected u32",
            "expected a whole number from 0 to 4294967295",
        )
        .replace(
            "expected i32",
            "expected a whole number from -2147483648 to 2147483647",
        )
        .replace("invalid type: sequence", "invalid type: array")
        .replace("expected a sequence", "expected an array")
        .replace("invalid type: map", "invalid type: table")
        .replace("expected a map", "expected a table");
    if !message.starts_with("invalid type") && !message.starts_with("invalid value") {
        return text;
    }
    let Some(key) = key else { return text };
    let example = match key {
        "depends_on" => "a list of task ids: `depends_on = [\"build\"]`".to_owned(),
        "permanent_exit_codes" => "a list of numbers: `permanent_exit_codes = [3]`".to_owned(),
        "timeout" | "retry_delay" => format!("a quoted duration: `{key} = \"30s\"`"),
        "run" => "one command line in quotes: `run = \"echo hi\"`".to_owned(),
        "max_attempts" => "a whole number of 1 or more: `max_attempts = 3`".to_owned(),
        "id" | "name" | "cwd" => "quoted text".to_owned(),
        "env" => {
            "a table of quoted values: `env = { PROFILE = \"release\", JOBS = \"4\" }`".to_owned()
        }
        "task" => "one `[[task]]` table per task, with two brackets on each side".to_owned(),
        _ => return text,
    };
    text.push_str(&format!(" (`{key}` takes {example})"));
    text
}

/// Reads and validates a workflow file.
///
/// # Errors
///
/// [`WorkflowError`] naming the file, line and column, for an unreadable file, bad TOML, an
/// unknown or missing key, a duplicate id, an unknown dependency, a cycle, a bad duration or
/// an out-of-range value.
pub fn load(path: &Path) -> Result<Workflow, WorkflowError> {
    let source = read_source(path)?;
    parse(path, &source)
}

/// The largest workflow file read, in bytes (16 MiB; 10,000 tasks take about 300 KiB).
pub const MAX_WORKFLOW_BYTES: u64 = 16 * 1024 * 1024;

/// The longest workflow `name` accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Reads a workflow file's text, at most [`MAX_WORKFLOW_BYTES`]: a path such as `/dev/zero`
/// or a runaway generated file must not take all memory.
///
/// # Errors
///
/// A [`WorkflowErrorKind::Read`] error naming the file when it cannot be read, is not UTF-8
/// or is larger than the limit.
pub fn read_source(path: &Path) -> Result<String, WorkflowError> {
    use std::io::Read as _;
    let fail = |message: String| WorkflowError {
        path: path.to_path_buf(),
        line: 0,
        column: 0,
        kind: WorkflowErrorKind::Read,
        message,
    };
    let file = std::fs::File::open(path)
        .map_err(|error| fail(format!("cannot read the workflow file: {error}")))?;
    // Sized from the file's length when known, so a large file is not read into a buffer
    // that doubled its way up to twice its size.
    let expected = file
        .metadata()
        .map_or(0, |m| m.len().min(MAX_WORKFLOW_BYTES + 1));
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    file.take(MAX_WORKFLOW_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| fail(format!("cannot read the workflow file: {error}")))?;
    if bytes.len() as u64 > MAX_WORKFLOW_BYTES {
        return Err(fail(format!(
            "the workflow file is larger than {} MiB; this is not a workflow",
            MAX_WORKFLOW_BYTES / (1024 * 1024)
        )));
    }
    String::from_utf8(bytes).map_err(|error| {
        fail(format!(
            "cannot read the workflow file: it is not UTF-8 text (invalid byte at offset {})",
            error.utf8_error().valid_up_to()
        ))
    })
}

/// Parses and validates workflow text; `path` names the file in errors and gives the folder
/// that task `cwd`s are relative to.
///
/// # Errors
///
/// As [`load`], except for reading.
///
/// # Examples
///
/// ```
/// use std::path::Path;
/// use cairn_cli::workflow::{WorkflowErrorKind, parse};
///
/// let text = "name = \"demo\"\n[[task]]\nid = \"a\"\nrun = \"echo a\"\n\
///             [[task]]\nid = \"b\"\nrun = \"echo b\"\ndepends_on = [\"a\"]\n";
/// let workflow = parse(Path::new("demo.toml"), text).unwrap();
/// assert_eq!(workflow.tasks.len(), 2);
///
/// let bad = "name = \"demo\"\n[[task]]\nid = \"a\"\nrun = \"true\"\ndepends_on = [\"nope\"]\n";
/// let error = parse(Path::new("demo.toml"), bad).unwrap_err();
/// assert_eq!(error.kind, WorkflowErrorKind::UnknownDependency);
/// assert_eq!(error.line, 5);
/// ```
pub fn parse(path: &Path, source: &str) -> Result<Workflow, WorkflowError> {
    parse_with(path, source, Rules::NewRun)
}

/// Parses the copy of a workflow that a run recorded when it started, to resume that run.
/// The copy passed validation then; checks added since (`Rules::NewRun`) are not applied
/// to it, so an upgrade of cairn never strands a run it had accepted.
///
/// # Errors
///
/// As [`parse`], for the checks a copy still gets.
pub fn parse_copy(path: &Path, source: &str) -> Result<Workflow, WorkflowError> {
    parse_with(path, source, Rules::Copy)
}

/// Which checks a parse applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rules {
    /// Every check: a file about to start a new run.
    NewRun,
    /// Leaves out the checks added after runs could already have been started with such a
    /// file (reserved `CAIRN_` names, the per-string length limit): a run's own copy.
    Copy,
}

fn parse_with(path: &Path, source: &str, rules: Rules) -> Result<Workflow, WorkflowError> {
    parse_read(path, source, rules, read_toml)
}

/// [`parse_with`], reading the TOML with `read` (tests compare [`read_toml`] with reading
/// the file whole).
fn parse_read(
    path: &Path,
    source: &str,
    rules: Rules,
    read: fn(&str) -> Result<RawWorkflow, toml::de::Error>,
) -> Result<Workflow, WorkflowError> {
    let strict = rules == Rules::NewRun;
    let at = |span: Range<usize>, kind, message: String| {
        let (line, column) = line_column(source, span.start);
        WorkflowError {
            path: path.to_path_buf(),
            line,
            column,
            kind,
            message,
        }
    };
    let raw: RawWorkflow = read(source).map_err(|error| {
        let message = error.message().trim().to_owned();
        let kind = if message.starts_with("unknown field") {
            WorkflowErrorKind::UnknownKey
        } else if message.starts_with("missing field") {
            WorkflowErrorKind::MissingKey
        } else {
            WorkflowErrorKind::Syntax
        };
        let span = error.span().unwrap_or(0..0);
        let message = in_plain_words(&message, key_at(source, span.start));
        at(span, kind, message)
    })?;

    let name = match raw.name {
        // The name is printed in one-line messages and tables and goes into printed commands.
        Some(name) if name.get_ref().chars().any(char::is_control) => {
            return Err(at(
                name.span(),
                WorkflowErrorKind::InvalidValue,
                "`name` must not contain control characters (a newline, a tab, ...)".to_owned(),
            ));
        }
        Some(name) if name.get_ref().len() > MAX_NAME_BYTES => {
            return Err(at(
                name.span(),
                WorkflowErrorKind::InvalidValue,
                format!(
                    "`name` is {} bytes long; at most {MAX_NAME_BYTES} are allowed (it is printed in one-line messages and tables)",
                    name.get_ref().len()
                ),
            ));
        }
        Some(name) if !name.get_ref().trim().is_empty() => name.into_inner(),
        Some(name) => {
            return Err(at(
                name.span(),
                WorkflowErrorKind::InvalidValue,
                "`name` must not be empty".to_owned(),
            ));
        }
        None => {
            return Err(at(
                0..0,
                WorkflowErrorKind::MissingKey,
                "missing top-level `name = \"...\"`".to_owned(),
            ));
        }
    };
    let retry_delay = match raw.retry_delay {
        Some(text) => {
            let delay = parse_duration(text.get_ref()).map_err(|error| {
                at(
                    text.span(),
                    WorkflowErrorKind::BadDuration,
                    format!("`retry_delay`: {error}"),
                )
            })?;
            Some(delay)
        }
        None => None,
    };
    if raw.task.is_empty() {
        return Err(at(
            0..0,
            WorkflowErrorKind::MissingKey,
            "the workflow has no `[[task]]`".to_owned(),
        ));
    }

    // First pass: ids, uniqueness and per-task values.
    let mut index_of: HashMap<String, usize> = HashMap::with_capacity(raw.task.len());
    let mut tasks: Vec<(WorkflowTask, Vec<Spanned<String>>)> = Vec::with_capacity(raw.task.len());
    for spanned in raw.task {
        let table_span = spanned.span();
        let raw_task = spanned.into_inner();
        let Some(id) = raw_task.id else {
            return Err(at(
                table_span,
                WorkflowErrorKind::MissingKey,
                "this task has no `id`".to_owned(),
            ));
        };
        let id_span = id.span();
        let id = id.into_inner();
        if let Some(reason) = bad_id(&id) {
            // A runaway id is shown clipped: the message must stay one readable line.
            return Err(at(
                id_span,
                WorkflowErrorKind::InvalidValue,
                format!(
                    "task id `{}` is not valid: {reason}",
                    crate::out::clip(&id, 60)
                ),
            ));
        }
        if index_of.contains_key(&id) {
            return Err(at(
                id_span,
                WorkflowErrorKind::DuplicateId,
                format!("duplicate task id `{id}` (ids must be unique in the file)"),
            ));
        }
        let Some(run) = raw_task.run else {
            return Err(at(
                table_span,
                WorkflowErrorKind::MissingKey,
                format!("task `{id}` has no `run` command"),
            ));
        };
        if run.get_ref().trim().is_empty() {
            return Err(at(
                run.span(),
                WorkflowErrorKind::InvalidValue,
                format!("task `{id}`: `run` is empty (an empty command would always succeed)"),
            ));
        }
        // The OS passes commands, environment and paths as C strings, so a NUL would only
        // fail at spawn time, after the run started; it is refused here instead.
        if run.get_ref().contains('\0') {
            return Err(at(
                run.span(),
                WorkflowErrorKind::InvalidValue,
                format!("task `{id}`: `run` contains a NUL character"),
            ));
        }
        // `run` is one argument of `sh -c`: past the OS's limit for one argument the spawn
        // would fail, after other tasks ran, so it is refused here like a NUL.
        if let Some(too_long) = over_run_limit(run.get_ref().len()).filter(|_| strict) {
            return Err(at(
                run.span(),
                WorkflowErrorKind::InvalidValue,
                format!("task `{id}`: `run` is {too_long}"),
            ));
        }
        let mut env = BTreeMap::new();
        for (name, value) in raw_task.env {
            let reason = bad_env_name(name.get_ref()).or_else(|| {
                (strict && name.get_ref().starts_with(RESERVED_ENV_PREFIX))
                    .then_some(RESERVED_ENV_REASON)
            });
            if let Some(reason) = reason {
                return Err(at(
                    name.span(),
                    WorkflowErrorKind::InvalidValue,
                    format!(
                        "task `{id}`: environment variable name `{}` is not valid: {reason}",
                        name.get_ref().escape_debug()
                    ),
                ));
            }
            if value.get_ref().contains('\0') {
                return Err(at(
                    value.span(),
                    WorkflowErrorKind::InvalidValue,
                    format!(
                        "task `{id}`: the value of environment variable `{}` contains a NUL character",
                        name.get_ref()
                    ),
                ));
            }
            // The command gets the variable as one `NAME=value` string, under the same
            // per-string limit as an argument.
            let entry_len = name.get_ref().len() + 1 + value.get_ref().len();
            if let Some(too_long) = over_arg_limit(entry_len).filter(|_| strict) {
                return Err(at(
                    value.span(),
                    WorkflowErrorKind::InvalidValue,
                    format!(
                        "task `{id}`: environment variable `{}` (passed as `{}=value`) is {too_long}",
                        name.get_ref(),
                        name.get_ref()
                    ),
                ));
            }
            env.insert(name.into_inner(), value.into_inner());
        }
        let cwd = match raw_task.cwd {
            Some(cwd) if cwd.get_ref().contains('\0') => {
                return Err(at(
                    cwd.span(),
                    WorkflowErrorKind::InvalidValue,
                    format!("task `{id}`: `cwd` contains a NUL character"),
                ));
            }
            Some(cwd) => Some(cwd.into_inner()),
            None => None,
        };
        let mut permanent_exit_codes = Vec::with_capacity(raw_task.permanent_exit_codes.len());
        for code in raw_task.permanent_exit_codes {
            // A process exits with 0 to 255 (`exit 300` is seen as 44), and 0 completes the
            // task, so any other value could never match and would silently do nothing.
            if !(1..=255).contains(code.get_ref()) {
                return Err(at(
                    code.span(),
                    WorkflowErrorKind::InvalidValue,
                    format!(
                        "task `{id}`: permanent exit code {} can never match (exit codes that fail a task are 1 to 255)",
                        code.get_ref()
                    ),
                ));
            }
            permanent_exit_codes.push(code.into_inner());
        }
        let max_attempts = match raw_task.max_attempts {
            Some(n) if *n.get_ref() == 0 => {
                return Err(at(
                    n.span(),
                    WorkflowErrorKind::InvalidValue,
                    format!("task `{id}`: `max_attempts` must be at least 1"),
                ));
            }
            Some(n) => Some(n.into_inner()),
            None => None,
        };
        let timeout: Option<Duration> = match raw_task.timeout {
            Some(text) => Some(parse_duration(text.get_ref()).map_err(|error| {
                at(
                    text.span(),
                    WorkflowErrorKind::BadDuration,
                    format!("task `{id}`: {error}"),
                )
            })?),
            None => None,
        };
        index_of.insert(id.clone(), tasks.len());
        let shell = ShellSpec {
            id: id.clone(),
            run: run.into_inner(),
            env,
            cwd,
            timeout_ms: timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
            permanent_exit_codes,
        };
        let depends_on = raw_task
            .depends_on
            .iter()
            .map(|d| d.get_ref().clone())
            .collect();
        tasks.push((
            WorkflowTask {
                id,
                depends_on,
                max_attempts,
                shell,
            },
            raw_task.depends_on,
        ));
    }

    // Second pass: every dependency exists, and is named once (a repeat is harmless to the
    // queue, which collapses it, but the file checker is strict: it is a slip, such as a
    // copy-paste that meant another task).
    for (task, deps) in &tasks {
        for (at_index, dep) in deps.iter().enumerate() {
            if strict
                && deps[..at_index]
                    .iter()
                    .any(|d| d.get_ref() == dep.get_ref())
            {
                return Err(at(
                    dep.span(),
                    WorkflowErrorKind::InvalidValue,
                    format!(
                        "task `{}` lists `{}` twice in `depends_on`",
                        task.id,
                        dep.get_ref()
                    ),
                ));
            }
            if !index_of.contains_key(dep.get_ref()) {
                return Err(at(
                    dep.span(),
                    WorkflowErrorKind::UnknownDependency,
                    format!(
                        "task `{}` depends on `{}`, which is not a task of this file",
                        task.id,
                        dep.get_ref()
                    ),
                ));
            }
        }
    }

    // Third pass: a topological order, or the cycle that prevents one.
    let order = match topological_order(&tasks, &index_of) {
        Ok(order) => order,
        Err(cycle) => {
            let first = cycle[0];
            let next = &tasks[cycle[1 % cycle.len()]].0.id;
            let span = tasks[first]
                .1
                .iter()
                .find(|d| d.get_ref() == next)
                .map(|d| d.span())
                .unwrap_or(0..0);
            let mut names: Vec<&str> = cycle.iter().map(|&i| tasks[i].0.id.as_str()).collect();
            names.push(tasks[first].0.id.as_str());
            return Err(at(
                span,
                WorkflowErrorKind::Cycle,
                format!("dependency cycle: {}", names.join(" -> ")),
            ));
        }
    };
    drop(index_of);
    let ordered = if order.iter().enumerate().all(|(at, &i)| at == i) {
        // Already in order, as most files are: no second array of tasks.
        tasks.into_iter().map(|(task, _)| task).collect()
    } else {
        let mut slots: Vec<Option<WorkflowTask>> =
            tasks.into_iter().map(|(t, _)| Some(t)).collect();
        order.into_iter().filter_map(|i| slots[i].take()).collect()
    };

    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    Ok(Workflow {
        name,
        path: path.to_path_buf(),
        dir,
        tasks: ordered,
        retry_delay,
    })
}

/// Reads the TOML of a workflow file into its raw form: in pieces when [`parse_in_pieces`]
/// can, otherwise (and for every error) whole, so that errors are the whole file's.
fn read_toml(source: &str) -> Result<RawWorkflow, toml::de::Error> {
    match parse_in_pieces(source) {
        Some(raw) => Ok(raw),
        None => toml::from_str(source),
    }
}

/// The line that starts a task's table in the usual layout; [`parse_in_pieces`] cuts the file
/// before each one.
const TASK_LINE: &str = "[[task]]";

/// Reads `source` one task at a time: the part before the first line that is exactly
/// `[[task]]`, then each part from such a line to the next. `None` when any part does not
/// read on its own; the caller then reads the file whole.
///
/// The `toml` crate holds a whole document as tokens, events and a table of tables before it
/// deserializes it: about 40 times the file's size (250 MB for a 6 MB file of 100,000 tasks).
/// Pieces are read and dropped one by one, so only the raw tasks stay.
///
/// When every piece reads, the file reads whole to the same tasks: the head may hold only
/// `name` and `retry_delay` (and no `task` at all), and a piece only tables of `task`, whose
/// own headers (`[task.env]`) name the piece's last task, as they do in the whole file. A
/// cut inside a value (a multi-line string or array holding such a line) leaves the piece
/// before it unterminated, so that piece does not read and the file is read whole.
fn parse_in_pieces(source: &str) -> Option<RawWorkflow> {
    let mut starts = Vec::new();
    let mut at = 0;
    for line in source.split_inclusive('\n') {
        let text = line.strip_suffix('\n').unwrap_or(line);
        if text.strip_suffix('\r').unwrap_or(text) == TASK_LINE {
            starts.push(at);
        }
        at += line.len();
    }
    let first = *starts.first()?;
    let head: RawHead = toml::from_str(&source[..first]).ok()?;
    if head.task.is_some() {
        return None;
    }
    let mut tasks = Vec::with_capacity(starts.len());
    for (k, &start) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(source.len());
        let piece: RawPiece = toml::from_str(&source[start..end]).ok()?;
        tasks.extend(piece.task.into_iter().map(|task| moved_task(task, start)));
    }
    Some(RawWorkflow {
        name: head.name,
        retry_delay: head.retry_delay,
        task: tasks,
    })
}

/// `spanned` with its span moved `by` bytes on: from a piece's to the whole file's.
fn moved<T>(spanned: Spanned<T>, by: usize) -> Spanned<T> {
    let span = spanned.span();
    Spanned::new(span.start + by..span.end + by, spanned.into_inner())
}

/// A task read from a piece starting at byte `by`, with every span moved to the whole file's.
fn moved_task(task: Spanned<RawTask>, by: usize) -> Spanned<RawTask> {
    let span = task.span();
    let raw = task.into_inner();
    let raw = RawTask {
        id: raw.id.map(|id| moved(id, by)),
        run: raw.run.map(|run| moved(run, by)),
        depends_on: raw.depends_on.into_iter().map(|d| moved(d, by)).collect(),
        max_attempts: raw.max_attempts.map(|n| moved(n, by)),
        timeout: raw.timeout.map(|t| moved(t, by)),
        env: raw
            .env
            .into_iter()
            .map(|(name, value)| (moved(name, by), moved(value, by)))
            .collect(),
        cwd: raw.cwd.map(|cwd| moved(cwd, by)),
        permanent_exit_codes: raw
            .permanent_exit_codes
            .into_iter()
            .map(|code| moved(code, by))
            .collect(),
    };
    Spanned::new(span.start + by..span.end + by, raw)
}

/// Why a task id cannot be used (ids become file names of captured output).
fn bad_id(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("it is empty")
    } else if id.len() > 100 {
        Some("it is longer than 100 bytes")
    } else if id.starts_with('.') {
        Some("it must not start with '.'")
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Some("only ASCII letters, digits, '-', '_' and '.' are allowed")
    } else {
        None
    }
}

/// Why an environment variable name cannot be passed to a command as given.
fn bad_env_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.contains('=') {
        Some("it contains '=' (the command would see another name and value)")
    } else if name.contains('\0') {
        Some("it contains a NUL character")
    } else {
        None
    }
}

/// The prefix of the environment variable names cairn sets for every command. A workflow
/// may not set such a name: cairn's value would silently replace it, and a name cairn adds
/// later must not change what an existing workflow's commands see.
pub const RESERVED_ENV_PREFIX: &str = "CAIRN_";

/// Why a name with [`RESERVED_ENV_PREFIX`] is refused.
const RESERVED_ENV_REASON: &str = "names starting with `CAIRN_` are cairn's own (it sets CAIRN_RUN_ID, CAIRN_TASK_ID, CAIRN_ATTEMPT, CAIRN_INPUT and CAIRN_IDEMPOTENCY_KEY itself, and would override yours)";

/// Linux's limit on the length of one argument or one environment string of a new
/// program, `MAX_ARG_STRLEN` (32 pages of 4 KiB), counting the terminating NUL.
pub const MAX_ARG_BYTES: usize = 131_072;

/// The longest `run` the OS takes: one argument of `sh -c`, which also carries
/// [`crate::shell::SCRIPT_PREFIX`] in front of it.
pub const MAX_RUN_BYTES: usize = MAX_ARG_BYTES - 1 - crate::shell::SCRIPT_PREFIX.len();

/// For an environment entry of `len` bytes (without its NUL) that the OS would refuse, what
/// to say about its length.
fn over_arg_limit(len: usize) -> Option<String> {
    (len >= MAX_ARG_BYTES).then(|| {
        format!(
            "{len} bytes long; the OS limit for one argument or environment entry is {} bytes (MAX_ARG_STRLEN, {MAX_ARG_BYTES} with the terminating NUL): put a long script in a file and run that",
            MAX_ARG_BYTES - 1
        )
    })
}

/// For a `run` of `len` bytes that the OS would refuse, what to say about its length.
fn over_run_limit(len: usize) -> Option<String> {
    (len > MAX_RUN_BYTES).then(|| {
        format!(
            "{len} bytes long; a `run` may be at most {MAX_RUN_BYTES} bytes: the OS limit for one argument is {} bytes (MAX_ARG_STRLEN, {MAX_ARG_BYTES} with the terminating NUL), and cairn puts {} bytes in front of the script (`{}`: it waits until cairn has recorded the command, and the terminal cannot stop it): put a long script in a file and run that",
            MAX_ARG_BYTES - 1,
            crate::shell::SCRIPT_PREFIX.len(),
            crate::shell::SCRIPT_PREFIX.trim_end()
        )
    })
}

/// Kahn's algorithm, taking the lowest file position among ready tasks each step. On a cycle,
/// returns the positions of one cycle, in dependency order.
fn topological_order(
    tasks: &[(WorkflowTask, Vec<Spanned<String>>)],
    index_of: &HashMap<String, usize>,
) -> Result<Vec<usize>, Vec<usize>> {
    let n = tasks.len();
    let deps: Vec<Vec<usize>> = tasks
        .iter()
        .map(|(t, _)| t.depends_on.iter().map(|d| index_of[d]).collect())
        .collect();
    let mut unmet: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut ready: std::collections::BTreeSet<usize> = (0..n).filter(|&i| unmet[i] == 0).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &j in &dependents[i] {
            unmet[j] -= 1;
            if unmet[j] == 0 {
                ready.insert(j);
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Every task left has an unmet dependency that is also left, so walking dependencies
    // from any of them must come back to a task already seen.
    let start = (0..n).find(|&i| unmet[i] > 0).unwrap_or(0);
    let mut path = vec![start];
    let mut seen = HashMap::from([(start, 0usize)]);
    let mut current = start;
    loop {
        let Some(&next) = deps[current].iter().find(|&&d| unmet[d] > 0) else {
            return Err(path);
        };
        if let Some(&pos) = seen.get(&next) {
            return Err(path[pos..].to_vec());
        }
        seen.insert(next, path.len());
        path.push(next);
        current = next;
    }
}

/// The 1-based line and column (in characters) of a byte offset.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

impl Workflow {
    /// The run plan: one phase with every task, in topological order, as `shell` tasks whose
    /// inputs are the task definitions (so the queue's dedup guard recognizes them on resume).
    pub fn plan(&self, scope: &str, input: &str) -> RunPlan {
        let mut phase = Phase::new(self.name.clone());
        let mut position: HashMap<&str, usize> = HashMap::new();
        for task in &self.tasks {
            let inputs = serde_json::to_value(&task.shell).unwrap_or(serde_json::Value::Null);
            let mut spec = TaskSpec::new(SHELL_KIND).inputs(inputs);
            if let Some(n) = task.max_attempts {
                spec = spec.max_attempts(n);
            }
            let after: Vec<usize> = task
                .depends_on
                .iter()
                .filter_map(|d| position.get(d.as_str()).copied())
                .collect();
            let at = phase.named_task(task.id.clone(), spec, after);
            position.insert(task.id.as_str(), at);
        }
        let plan = RunPlan::new(self.name.clone(), scope)
            .input(input)
            .phase(phase);
        match self.retry_policy() {
            Some(retry) => plan.retry(retry),
            None => plan,
        }
    }

    /// The backoff `retry_delay` asks for: the first retry waits `retry_delay`, each later
    /// one twice as long as the one before, up to [`RETRY_DELAY_CAP`] (or `retry_delay` when
    /// longer); the executor takes up to half of each off at random, so tasks that failed
    /// together do not retry together.
    pub fn retry_policy(&self) -> Option<RetryPolicy> {
        self.retry_delay.map(|base| RetryPolicy {
            base,
            max: base.max(RETRY_DELAY_CAP),
            ..RetryPolicy::default()
        })
    }
}

#[cfg(test)]
mod tests {
    //! Reading a file in pieces must give what reading it whole gives: the same workflow, or
    //! the same error at the same line and column. These cases compare the two readers.

    use super::*;

    /// Files that read in pieces: workflows, and files whose errors are found once their
    /// TOML is read.
    const IN_PIECES: &[&str] = &[
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
        "name = \"w\"\nretry_delay = \"2s\"\n\n# the tasks\n[[task]]\nid = \"a\"\nrun = \"echo a\"\n\
         timeout = \"5s\"\nmax_attempts = 2\ncwd = \"sub\"\npermanent_exit_codes = [3, 4]\n\
         [task.env]\nB = \"2\"\nA = \"1\"\n\n[[task]]\nid = \"b\"\nrun = \"echo b\"\n\
         depends_on = [\"a\"]\nenv = { X = \"y\" }\n",
        // Dependencies named before their tasks, so the order changes.
        "name = \"w\"\n[[task]]\nid = \"c\"\nrun = \"true\"\ndepends_on = [\"b\", \"a\"]\n\
         [[task]]\nid = \"b\"\nrun = \"true\"\ndepends_on = [\"a\"]\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
        // CRLF line ends, and a header with spaces that stays in the piece before it.
        "name = \"w\"\r\n[[task]]\r\nid = \"a\"\r\nrun = \"true\"\r\n[[ task ]]\r\nid = \"b\"\r\n\
         run = \"true\"\r\n[[task]]\r\nid = \"c\"\r\nrun = \"true\"\r\n",
        // A byte order mark before the head.
        "\u{feff}name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
        // Errors found after the TOML is read, located in later pieces.
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nrun = \"true\"\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \"b\"\nrun = \"  \"\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \".b\"\nrun = \"x\"\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\ndepends_on = [\"z\"]\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \"b\"\nrun = \"true\"\n\
         depends_on = [\"a\", \"a\"]\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\ndepends_on = [\"b\"]\n[[task]]\n\
         id = \"b\"\nrun = \"true\"\ndepends_on = [\"a\"]\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \"b\"\nrun = \"true\"\n\
         timeout = \"soon\"\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \"b\"\nrun = \"true\"\n\
         max_attempts = 0\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \"b\"\nrun = \"true\"\n\
         permanent_exit_codes = [0]\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \"b\"\nrun = \"true\"\n\
         [task.env]\nCAIRN_X = \"1\"\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \"b\"\nrun = \"true\"\n\
         env = { \"A=B\" = \"1\" }\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \"b\"\nrun = \"a\\u0000b\"\n",
        // Errors in the head.
        "name = \"\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
        "name = \"w\\tx\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
        "retry_delay = \"1s\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
        "name = \"w\"\nretry_delay = \"never\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
    ];

    /// Files that must not be read in pieces (they are read whole).
    const NOT_CUT: &[&str] = &[
        // No `[[task]]` line at all.
        "name = \"w\"\n",
        "name = \"w\"\n[[ task ]]\nid = \"a\"\nrun = \"true\"\n",
        "name = \"w\"\ntask = [{ id = \"a\", run = \"true\" }]\n",
        // `task` defined in the head, then appended to.
        "name = \"w\"\ntask = []\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
        "name = \"w\"\n[[ task ]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \"b\"\nrun = \"true\"\n",
        "name = \"w\"\n[task]\nid = \"a\"\n[[task]]\nid = \"b\"\nrun = \"true\"\n",
        // A `[[task]]` line inside a multi-line string: the cut would fall inside the value.
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"\"\"\necho\n[[task]]\nid = \"b\"\n\"\"\"\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = '''\n[[task]]\n'''\n[[task]]\nid = \"b\"\nrun = \"true\"\n",
        "name = \"\"\"\n[[task]]\n\"\"\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
        // ... or inside an array.
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\npermanent_exit_codes = [\n[[task]]\n]\n",
        // Other tables after a task, which belong to the file, not the task.
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[other]\nx = 1\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[name]\nx = 1\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[task]\nx = 1\n",
    ];

    /// Files whose TOML is wrong, in a later piece or in the head: read whole for the error.
    const TOML_ERRORS: &[&str] = &[
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \"b\"\nrun = \"true\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \"b\"\nrun = 5\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \"b\"\nid = \"c\"\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \"b\"\nbogus = 1\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\ntask.x = 1\n",
        "name = \"\"\nbogus = 1\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
        "name = 5\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\nid = \n",
        "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n[[task]]\r",
    ];

    fn whole(source: &str) -> Result<RawWorkflow, toml::de::Error> {
        toml::from_str(source)
    }

    fn compare(source: &str) {
        let path = Path::new("dir/w.toml");
        for rules in [Rules::NewRun, Rules::Copy] {
            assert_eq!(
                parse_read(path, source, rules, read_toml),
                parse_read(path, source, rules, whole),
                "{source:?} ({rules:?})"
            );
        }
    }

    #[test]
    fn reading_in_pieces_gives_what_reading_whole_gives() {
        for source in IN_PIECES {
            assert!(
                parse_in_pieces(source).is_some(),
                "{source:?} should read in pieces"
            );
            compare(source);
        }
        for source in NOT_CUT.iter().chain(TOML_ERRORS) {
            compare(source);
        }
        // Some of the cases above must be workflows and some errors, or they compare little.
        let parsed = |s: &str| parse(Path::new("w.toml"), s).is_ok();
        assert!(IN_PIECES.iter().filter(|s| parsed(s)).count() >= 4);
        assert!(IN_PIECES.iter().filter(|s| !parsed(s)).count() >= 10);
    }

    #[test]
    fn a_file_that_cannot_be_cut_safely_is_not_read_in_pieces() {
        for source in NOT_CUT.iter().chain(TOML_ERRORS) {
            assert!(
                parse_in_pieces(source).is_none(),
                "{source:?} must be read whole"
            );
        }
    }

    #[test]
    fn errors_in_a_later_piece_point_into_the_whole_file() {
        let source = "name = \"w\"\n[[task]]\nid = \"a\"\nrun = \"true\"\n\n[[task]]\nid = \"b\"\n\
                      run = \"true\"\ntimeout = \"soon\"\n";
        let error = parse(Path::new("w.toml"), source).unwrap_err();
        assert_eq!(error.kind, WorkflowErrorKind::BadDuration);
        assert_eq!((error.line, error.column), (9, 11));
    }
}
