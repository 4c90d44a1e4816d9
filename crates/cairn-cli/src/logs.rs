//! `cairn logs`: the output a run's commands left, read from the files the shell handler
//! saves (`<state-dir>/output/<run id>/<task>.<attempt>.{stdout,stderr}`), so nobody has to
//! know that layout to read a failed task's output.
//!
//! A file's name is parsed from the right: a task id may hold dots, an attempt is digits
//! with an optional `-N` (the N-th pass of a failed run's resume, whose attempts count from 1
//! again), and the stream is the extension. Files that do not fit (the group records, the
//! workflow copy) are not output and are skipped.
//!
//! # Order
//!
//! Neither the names nor the file system give the order a task's attempts ran in: the names
//! do not after a pass's attempt was given back and run again (`1-3` then runs before
//! `2-2`), and creation times are the copy's after a state folder is restored from a backup
//! or copied with `cp -r`. So the shell handler appends each attempt's name to the task's
//! start log, `<task>.starts` ([`record_start`]), before it creates the attempt's files: a
//! line per start, in start order, carried along by any copy. Files that no start log names
//! (written by a build without start logs) come first, in their creation order where the
//! file system keeps it for all of them, else in the names' order.

use std::path::{Path, PathBuf};

use crate::out::{cell, escape_controls, outln};

/// The extension of a task's start log: `<task>.starts`, one attempt name a line.
pub const START_LOG: &str = "starts";

/// A stream of a command's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The stream's name, which is also its files' extension.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One saved output file of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// The task's workflow id.
    pub task: String,
    /// The attempt as the file names it: `2`, or `1-2` (attempt 1 of the second pass).
    pub attempt: String,
    /// Which stream.
    pub stream: Stream,
    /// Where it is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// When it was created (the attempt's start), where the file system keeps that.
    pub created: Option<std::time::SystemTime>,
}

impl OutputFile {
    /// The order the attempts ran in: every pass's attempts before the next pass's.
    fn ran_order(&self) -> (u64, u64) {
        let (attempt, pass) = self
            .attempt
            .split_once('-')
            .unwrap_or((self.attempt.as_str(), "1"));
        (pass.parse().unwrap_or(0), attempt.parse().unwrap_or(0))
    }
}

/// Splits an output file's name into task, attempt and stream, or `None` for a file that is
/// not output.
///
/// # Examples
///
/// ```
/// use cairn_cli::logs::{Stream, parse_output_name};
///
/// assert_eq!(
///     parse_output_name("build.2.stderr"),
///     Some(("build".to_owned(), "2".to_owned(), Stream::Stderr))
/// );
/// // Task ids may hold dots; a resumed failed run's attempts carry their pass.
/// assert_eq!(
///     parse_output_name("v1.2.publish.1-2.stdout"),
///     Some(("v1.2.publish".to_owned(), "1-2".to_owned(), Stream::Stdout))
/// );
/// assert_eq!(parse_output_name("build.group"), None);
/// assert_eq!(parse_output_name("build.x.stdout"), None);
/// ```
pub fn parse_output_name(name: &str) -> Option<(String, String, Stream)> {
    let (rest, stream) = if let Some(rest) = name.strip_suffix(".stdout") {
        (rest, Stream::Stdout)
    } else {
        (name.strip_suffix(".stderr")?, Stream::Stderr)
    };
    let (task, attempt) = rest.rsplit_once('.')?;
    let (number, pass) = attempt.split_once('-').unwrap_or((attempt, "1"));
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    (!task.is_empty() && digits(number) && digits(pass))
        .then(|| (task.to_owned(), attempt.to_owned(), stream))
}

/// Appends `attempt` (as the file names have it: `2`, `1-2`) to `task`'s start log in `dir`,
/// so that [`output_files`] orders that attempt's files after those of every earlier start.
/// Called before the attempt's files are created, so no file of this build goes unlogged. Not
/// synced: like the output it orders, it is a record for people, and a log torn by a crash
/// loses at most its unfinished last line.
///
/// # Errors
///
/// The log cannot be opened or written.
///
/// # Examples
///
/// ```
/// use cairn_cli::logs::{output_files, record_start};
///
/// let dir = tempfile::tempdir()?;
/// // Attempt 1 of a resumed pass was given back and run again before its attempt 2.
/// for attempt in ["1", "1-2", "1-3", "2-2"] {
///     record_start(dir.path(), "t", attempt)?;
///     std::fs::write(dir.path().join(format!("t.{attempt}.stdout")), "")?;
/// }
/// let order: Vec<String> = output_files(dir.path())?.into_iter().map(|f| f.attempt).collect();
/// assert_eq!(order, ["1", "1-2", "1-3", "2-2"]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn record_start(dir: &Path, task: &str, attempt: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join(format!("{task}.{START_LOG}")))?;
    // One write of a whole line: appends of the same task never interleave anyway (a task
    // runs one attempt at a time), and a crash can tear only this last line.
    log.write_all(format!("{attempt}\n").as_bytes())
}

/// Where each attempt of `task` stands in its start log in `dir`: the attempt's last line
/// (a start refused before its command ran leaves its name free for a later start). Only
/// whole lines that name an attempt count, so a line torn by a crash is ignored. A missing
/// log names none.
fn start_order(
    dir: &Path,
    task: &str,
) -> std::io::Result<std::collections::HashMap<String, usize>> {
    let text = match std::fs::read(dir.join(format!("{task}.{START_LOG}"))) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(error) => return Err(error),
    };
    let mut order = std::collections::HashMap::new();
    for (at, line) in text.split_inclusive(|&b| b == b'\n').enumerate() {
        let Some(attempt) = line
            .strip_suffix(b"\n")
            .and_then(|line| std::str::from_utf8(line).ok())
            .filter(|attempt| {
                parse_output_name(&format!("{task}.{attempt}.stdout"))
                    .is_some_and(|(_, parsed, _)| parsed == *attempt)
            })
        else {
            continue;
        };
        order.insert(attempt.to_owned(), at);
    }
    Ok(order)
}

/// The saved output files in `dir`, by task and then in the order the attempts ran (stdout
/// before stderr), as the module docs' "Order" says. A missing folder holds none.
///
/// # Errors
///
/// The folder, a file's metadata or a start log cannot be read.
pub fn output_files(dir: &Path) -> std::io::Result<Vec<OutputFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some((task, attempt, stream)) = name.to_str().and_then(parse_output_name) else {
            continue;
        };
        let metadata = entry.metadata()?;
        if !metadata.is_file() {
            continue;
        }
        files.push(OutputFile {
            task,
            attempt,
            stream,
            path: entry.path(),
            bytes: metadata.len(),
            created: metadata.created().ok(),
        });
    }
    let mut logged = std::collections::HashMap::new();
    for file in &files {
        if !logged.contains_key(&file.task) {
            logged.insert(file.task.clone(), start_order(dir, &file.task)?);
        }
    }
    let position = |f: &OutputFile| logged[&f.task].get(&f.attempt).copied();
    // Creation times only order files no start log names, and only where every such file has
    // one: they are the copy's after a copy, so they are the fallback, never the rule.
    let by_time = files
        .iter()
        .filter(|f| position(f).is_none())
        .all(|f| f.created.is_some());
    files.sort_by_cached_key(|f| {
        let started = position(f);
        let time = if by_time && started.is_none() {
            f.created
        } else {
            None
        };
        (f.task.clone(), started, time, f.ran_order(), f.stream)
    });
    Ok(files)
}

/// What `cairn logs` prints, given the run's saved files: the files a task and attempt
/// select (the latest attempt by default), or every file when no task is named.
///
/// # Errors
///
/// A message for the user (exit 2) when the task has no saved output or the attempt is not
/// one of its attempts; it names what there is.
pub fn select(
    files: Vec<OutputFile>,
    task: Option<&str>,
    attempt: Option<&str>,
    stream: Option<Stream>,
) -> Result<Vec<OutputFile>, String> {
    let Some(task) = task else {
        return Ok(files
            .into_iter()
            .filter(|f| stream.is_none_or(|s| s == f.stream))
            .collect());
    };
    let of_task: Vec<OutputFile> = files.iter().filter(|f| f.task == task).cloned().collect();
    let Some(latest) = of_task.last() else {
        let mut tasks: Vec<&str> = files.iter().map(|f| f.task.as_str()).collect();
        tasks.dedup();
        let known = if tasks.is_empty() {
            "no task of this run has saved output yet".to_owned()
        } else {
            format!("tasks with saved output: {}", tasks.join(", "))
        };
        return Err(format!(
            "task `{}` has no saved output in this run ({known})",
            escape_controls(task)
        ));
    };
    let wanted = attempt.unwrap_or(&latest.attempt).to_owned();
    let chosen: Vec<OutputFile> = of_task
        .iter()
        .filter(|f| f.attempt == wanted)
        .filter(|f| stream.is_none_or(|s| s == f.stream))
        .cloned()
        .collect();
    if chosen.is_empty() {
        let mut attempts: Vec<&str> = of_task.iter().map(|f| f.attempt.as_str()).collect();
        attempts.dedup();
        let which = stream.map_or(String::new(), |s| format!(" {}", s.as_str()));
        return Err(format!(
            "task `{task}` has no saved{which} output for attempt {}; its attempts: {}",
            escape_controls(&wanted),
            attempts.join(", ")
        ));
    }
    Ok(chosen)
}

/// Prints a listing of saved files: a table, or one JSON object per file.
pub fn print_listing(files: &[OutputFile], json: bool) {
    if json {
        for file in files {
            outln!(
                "{}",
                serde_json::json!({
                    "task": file.task, "attempt": file.attempt, "stream": file.stream.as_str(),
                    "bytes": file.bytes, "path": file.path,
                })
            );
        }
        return;
    }
    outln!(
        "{}  {}  STREAM  {:>10}  FILE",
        cell("TASK", 24),
        cell("ATTEMPT", 7),
        "BYTES"
    );
    for file in files {
        outln!(
            "{}  {}  {}  {:>10}  {}",
            cell(&file.task, 24),
            cell(&file.attempt, 7),
            file.stream.as_str(),
            file.bytes,
            escape_controls(&file.path.display().to_string())
        );
    }
}

/// The unread end of one output file, for `cairn logs --follow`: each
/// [`Tail::read_new`] returns what was appended since the last.
#[derive(Debug)]
pub struct Tail {
    /// The file.
    pub file: OutputFile,
    read: u64,
}

impl Tail {
    /// A tail of `file` from its first byte.
    pub fn new(file: OutputFile) -> Tail {
        Tail { file, read: 0 }
    }

    /// The bytes appended since the last read (all of them the first time); empty when
    /// nothing was. A file that shrank (it never does while cairn writes it) is read again
    /// from its start.
    ///
    /// # Errors
    ///
    /// The file cannot be opened or read.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_cli::logs::{OutputFile, Stream, Tail};
    /// use std::io::Write as _;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("build.1.stdout");
    /// std::fs::write(&path, "compiling\n")?;
    /// let file = OutputFile {
    ///     task: "build".into(), attempt: "1".into(), stream: Stream::Stdout,
    ///     path: path.clone(), bytes: 0, created: None,
    /// };
    /// let mut tail = Tail::new(file);
    /// assert_eq!(tail.read_new()?, b"compiling\n");
    /// assert_eq!(tail.read_new()?, b"");
    /// std::fs::OpenOptions::new().append(true).open(&path)?.write_all(b"done\n")?;
    /// assert_eq!(tail.read_new()?, b"done\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_new(&mut self) -> std::io::Result<Vec<u8>> {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let mut file = std::fs::File::open(&self.file.path)?;
        let len = file.metadata()?.len();
        if len < self.read {
            self.read = 0;
        }
        file.seek(SeekFrom::Start(self.read))?;
        let mut bytes = Vec::new();
        file.take(len - self.read).read_to_end(&mut bytes)?;
        self.read += bytes.len() as u64;
        Ok(bytes)
    }
}
