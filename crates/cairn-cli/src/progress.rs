//! Progress display: a live indicatif view on a terminal, or one line per event (plain text
//! or JSON lines) when stdout is not a terminal or `--json` is given.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use cairn_queue::TaskId;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::duration::format_duration;
use crate::out::{eoutln, escape_controls, outln};

/// What happened to one task attempt, as the shell handler reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEvent {
    /// An attempt started.
    Started {
        /// The queue's id of the task.
        id: TaskId,
        /// The workflow task id.
        task: String,
        /// The attempt number, from 1.
        attempt: u32,
        /// The task's attempt limit.
        max_attempts: u32,
    },
    /// An attempt ended (its command exited; a done task is shown as done only once
    /// [`TaskEvent::Recorded`] says so).
    Finished {
        /// The queue's id of the task.
        id: TaskId,
        /// The workflow task id.
        task: String,
        /// The attempt number, from 1.
        attempt: u32,
        /// How it ended.
        outcome: AttemptOutcome,
        /// How long it ran.
        elapsed: Duration,
    },
    /// An attempt's captured output file is incomplete (it could not be created or written,
    /// say on a full disk). The task's outcome does not change: its command ran.
    OutputLost {
        /// The workflow task id.
        task: String,
        /// The attempt number, from 1.
        attempt: u32,
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// What failed.
        why: String,
    },
    /// An attempt's command exited and left processes running in its process group
    /// (background jobs it started), which were killed.
    LeftoversStopped {
        /// The workflow task id.
        task: String,
        /// The attempt number, from 1.
        attempt: u32,
        /// The process group.
        group: u32,
    },
    /// The task's completion is durable (the executor's journal acknowledged it).
    Recorded {
        /// The queue's id of the task.
        id: TaskId,
    },
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The task is done.
    Done,
    /// The attempt failed and the task will be retried.
    Retrying {
        /// Why the attempt failed.
        error: String,
    },
    /// The command was stopped by a signal while the run was shutting down: the attempt is
    /// given back, and the task runs again on resume.
    Interrupted {
        /// What stopped it.
        error: String,
    },
    /// The attempt failed and the task is failed.
    Failed {
        /// Why.
        error: String,
        /// The last lines of its output: of stdout, then of stderr (each under a `[stdout]` or
        /// `[stderr]` line when both printed something).
        tail: Vec<String>,
    },
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A live display with a bar and the running tasks (stdout is a terminal).
    Live,
    /// One human line per event.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Shows a run's progress in the chosen [`Mode`].
#[derive(Debug)]
pub struct Progress {
    mode: Mode,
    multi: Option<MultiProgress>,
    bar: Option<ProgressBar>,
    running: HashMap<String, ProgressBar>,
    /// Tasks whose command exited 0 but whose completion is not recorded yet: shown as done
    /// only once it is, since until then a crash runs them again.
    unrecorded: HashMap<TaskId, Unrecorded>,
    /// Live mode: lines waiting for the next [`Progress::flush`]. Each print above the live
    /// display redraws all of it, so lines go out in batches, not one redraw per task.
    held_lines: Mutex<Vec<String>>,
}

/// A done attempt waiting for its completion to be recorded.
#[derive(Debug)]
struct Unrecorded {
    task: String,
    attempt: u32,
    elapsed: Duration,
}

impl Progress {
    /// A display for a run of `total` tasks of which `done` are already done.
    pub fn new(mode: Mode, total: usize, done: usize) -> Progress {
        let (multi, bar) = if mode == Mode::Live {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
            let bar = multi.add(ProgressBar::new(total as u64));
            bar.set_style(
                ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} tasks done {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_position(done as u64);
            (Some(multi), Some(bar))
        } else {
            (None, None)
        };
        Progress {
            mode,
            multi,
            bar,
            running: HashMap::new(),
            unrecorded: HashMap::new(),
            held_lines: Mutex::new(Vec::new()),
        }
    }

    /// How often the caller should call [`Progress::flush`] while a run goes on: live mode
    /// prints held lines at most this often.
    pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

    /// Prints the lines live mode holds back, all above the display in one redraw.
    pub fn flush(&self) {
        let Some(multi) = &self.multi else { return };
        let lines = std::mem::take(
            &mut *self
                .held_lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if !lines.is_empty() {
            let _ = multi.println(lines.join("\n"));
        }
    }

    /// The display mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Prints a human line (skipped in JSON mode, where [`Progress::json`] is used).
    pub fn line(&self, text: &str) {
        match (&self.mode, &self.multi) {
            (Mode::Json, _) => {}
            (_, Some(_)) => self
                .held_lines
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(text.to_owned()),
            _ => outln!("{text}"),
        }
    }

    /// Prints `warning: <text>` on stderr, in every mode. Under the live display the bar is
    /// cleared first and drawn again after, so the warning never lands inside it.
    pub fn warn(&self, text: &str) {
        // The lines before it come first.
        self.flush();
        match &self.multi {
            Some(multi) => multi.suspend(|| eoutln!("warning: {text}")),
            None => eoutln!("warning: {text}"),
        }
    }

    /// Prints a JSON event line (only in JSON mode).
    pub fn json(&self, value: serde_json::Value) {
        if self.mode == Mode::Json {
            outln!("{value}");
        }
    }

    /// Shows one task event.
    pub fn task(&mut self, event: TaskEvent) {
        match event {
            TaskEvent::Started {
                id: _,
                task,
                attempt,
                max_attempts,
            } => {
                self.json(serde_json::json!({
                    "event": "task_started", "task": task, "attempt": attempt,
                    "max_attempts": max_attempts,
                }));
                if let Some(multi) = &self.multi {
                    let spinner = multi.add(ProgressBar::new_spinner());
                    spinner.set_style(
                        ProgressStyle::with_template("  {spinner} {prefix} {elapsed} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    spinner.set_prefix(task.clone());
                    if attempt > 1 {
                        spinner.set_message(format!("(attempt {attempt}/{max_attempts})"));
                    }
                    spinner.enable_steady_tick(Duration::from_millis(120));
                    self.running.insert(task, spinner);
                } else if self.mode == Mode::Plain {
                    outln!("started {task} (attempt {attempt}/{max_attempts})");
                }
            }
            TaskEvent::OutputLost {
                task,
                attempt,
                stream,
                why,
            } => {
                self.json(serde_json::json!({
                    "event": "output_not_kept", "task": task, "attempt": attempt,
                    "stream": stream, "error": why,
                }));
                if self.mode != Mode::Json {
                    self.warn(&format!(
                        "the {stream} of {task} (attempt {attempt}) is not fully kept: {}",
                        escape_controls(&why)
                    ));
                }
            }
            TaskEvent::LeftoversStopped {
                task,
                attempt,
                group,
            } => {
                self.json(serde_json::json!({
                    "event": "task_leftovers_stopped", "task": task, "attempt": attempt,
                    "process_group": group,
                }));
                if self.mode != Mode::Json {
                    self.line(&format!(
                        "note: {task} (attempt {attempt}) left processes running in its process group {group} when its command exited; they were stopped"
                    ));
                }
            }
            TaskEvent::Recorded { id } => {
                if let Some(Unrecorded {
                    task,
                    attempt,
                    elapsed,
                }) = self.unrecorded.remove(&id)
                {
                    self.json(serde_json::json!({
                        "event": "task_done", "task": task, "attempt": attempt,
                        "elapsed_ms": u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
                    }));
                    if let Some(bar) = &self.bar {
                        bar.inc(1);
                    }
                    self.line(&format!("done {task} ({})", format_duration(elapsed)));
                }
            }
            TaskEvent::Finished {
                id,
                task,
                attempt,
                outcome,
                elapsed,
            } => {
                if let Some(spinner) = self.running.remove(&task) {
                    // Removed first, so its finish draws nothing: the next rate-limited
                    // redraw leaves it out, where finishing it in place forces a redraw.
                    if let Some(multi) = &self.multi {
                        multi.remove(&spinner);
                    }
                    spinner.finish_and_clear();
                }
                let took = format_duration(elapsed);
                let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
                match outcome {
                    AttemptOutcome::Done => {
                        self.unrecorded.insert(
                            id,
                            Unrecorded {
                                task,
                                attempt,
                                elapsed,
                            },
                        );
                    }
                    AttemptOutcome::Retrying { error } => {
                        self.json(serde_json::json!({
                            "event": "task_retry", "task": task, "attempt": attempt,
                            "elapsed_ms": elapsed_ms, "error": error,
                        }));
                        self.line(&format!(
                            "retry {task}: attempt {attempt} failed after {took}: {error}"
                        ));
                    }
                    AttemptOutcome::Interrupted { error } => {
                        self.json(serde_json::json!({
                            "event": "task_interrupted", "task": task, "attempt": attempt,
                            "elapsed_ms": elapsed_ms, "error": error,
                        }));
                        self.line(&format!("interrupted {task} after {took}: {error}"));
                    }
                    AttemptOutcome::Failed { error, tail } => {
                        self.json(serde_json::json!({
                            "event": "task_failed", "task": task, "attempt": attempt,
                            "elapsed_ms": elapsed_ms, "error": error, "tail": tail,
                        }));
                        // The lines below show the output the error quotes its last line of.
                        let shown = match error.rfind("; last output: ") {
                            Some(at) if !tail.is_empty() => &error[..at],
                            _ => error.as_str(),
                        };
                        let mut text =
                            format!("FAILED {task} on attempt {attempt} after {took}: {shown}");
                        if !tail.is_empty() {
                            text.push_str("\n  last output:");
                            for line in &tail {
                                text.push_str("\n  | ");
                                // A command's own output may hold terminal escapes.
                                text.push_str(&escape_controls(line));
                            }
                        }
                        self.line(&text);
                    }
                }
            }
        }
    }

    /// Sets the message next to the bar (live mode only).
    pub fn status(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(text.to_owned());
        }
    }

    /// Removes the live display, leaving the printed lines. Lines printed afterwards (the
    /// run's summary) go straight to stdout: printing them through the finished display
    /// would draw its bar again below them.
    pub fn finish(&mut self) {
        // A command that exited 0 whose completion the run stopped before recording is not
        // done: a resume may run it again, so it must not read as done.
        let mut unrecorded: Vec<Unrecorded> = self.unrecorded.drain().map(|(_, u)| u).collect();
        unrecorded.sort_by(|a, b| a.task.cmp(&b.task));
        for Unrecorded {
            task,
            attempt,
            elapsed,
        } in unrecorded
        {
            self.json(serde_json::json!({
                "event": "task_not_recorded", "task": task, "attempt": attempt,
                "elapsed_ms": u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            }));
            self.line(&format!(
                "not recorded {task}: its command exited 0 after {}, but the run stopped before its completion was recorded, so a resume may run it again",
                format_duration(elapsed)
            ));
        }
        self.flush();
        for (_, spinner) in self.running.drain() {
            spinner.finish_and_clear();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if let Some(multi) = self.multi.take() {
            let _ = multi.clear();
        }
    }
}
