//! `cairn resume RUN --reload`: the run takes its workflow file as it is now for the tasks
//! that have not finished, so a fixed command runs without redoing the done tasks.
//!
//! Everything is checked before the run is claimed, against a copy of its queue put through
//! what the adoption will do (recovery, and the retry of failed tasks for a failed run):
//! the file must have the run's tasks, in the run's order, waiting for the same tasks, and
//! no `done` or `skipped` task may have changed. A refusal changes nothing (exit 2). The
//! executor then amends each changed task ([`cairn_executor::RunPlan::reload`]) and journals
//! it before anything starts; the run's copy of the file is replaced once that is durable.

use std::collections::BTreeSet;

use cairn_checkpoint::{RunId, RunMeta};
use cairn_executor::ReloadChange;
use cairn_queue::QueueConfig;

use crate::app::UsageError;
use crate::out::escape_controls;
use crate::policy;
use crate::store::StateDir;
use crate::workflow::{self, Workflow};

/// A reload that passed its checks: the file's workflow and text, and what it changes.
#[derive(Debug)]
pub struct Reload {
    /// The workflow file as it is now (with the run's task order).
    pub wf: Workflow,
    /// Its text, which becomes the run's copy once the changes are journaled.
    pub text: String,
    /// The unfinished tasks whose definition changes, in run order.
    pub changes: Vec<ReloadChange>,
    /// Whether `retry_delay` changed (the drive takes the file's).
    pub retry_delay_changed: bool,
}

impl Reload {
    /// The note a resume shows: which tasks take the file's definitions, or that none do.
    pub fn note(&self) -> String {
        let path = escape_controls(&self.wf.path.display().to_string()).into_owned();
        let mut parts: Vec<String> = self
            .changes
            .iter()
            .map(|change| {
                format!(
                    "{} ({}: {})",
                    task_name(change),
                    change.status,
                    what(change)
                )
            })
            .collect();
        if self.retry_delay_changed {
            parts.push("retry_delay".to_owned());
        }
        if parts.is_empty() {
            format!(
                "reloaded {path}: its tasks are the run's as they are; nothing changes for this run"
            )
        } else {
            format!(
                "reloaded {path}: the run takes the file's definition for {}",
                parts.join(", ")
            )
        }
    }

    /// The `reloaded` JSON event.
    pub fn event(&self, run_id: &RunId) -> serde_json::Value {
        let tasks: Vec<serde_json::Value> = self
            .changes
            .iter()
            .map(|change| {
                serde_json::json!({
                    "task": change.name,
                    "status": change.status,
                    "inputs_changed": change.inputs.is_some(),
                    "max_attempts": change.max_attempts.map(|(old, new)| [old, new]),
                })
            })
            .collect();
        serde_json::json!({
            "event": "reloaded", "run_id": run_id.as_str(), "path": self.wf.path,
            "tasks": tasks, "retry_delay_changed": self.retry_delay_changed,
        })
    }
}

/// Reads the workflow file run `run_id` was started from and checks that the run can take
/// it. `retry_failed` says whether the resume gives failed tasks fresh attempts (a failed or
/// paused run), as the adoption will.
///
/// # Errors
///
/// A [`UsageError`] (exit 2) naming every problem when the file does not load or the run
/// cannot take it; store errors when the run's copy or state cannot be read.
pub async fn prepare(
    state: &StateDir,
    run_id: &RunId,
    meta: &RunMeta,
    retry_failed: bool,
) -> anyhow::Result<Reload> {
    let copy = state.load_origin(run_id)?;
    let path = escape_controls(&copy.path.display().to_string()).into_owned();
    let text = workflow::read_source(&copy.path).map_err(|error| {
        UsageError(format!(
            "--reload: cannot read the workflow file run {run_id} was started from: {error}"
        ))
    })?;
    let mut wf = workflow::parse(&copy.path, &text).map_err(|error| {
        UsageError(format!(
            "--reload: the workflow file does not load, so nothing was changed: {error}"
        ))
    })?;
    // Task `cwd`s stay relative to the folder the run started from.
    wf.dir = copy.dir.clone();
    let mut problems = shape_differences(&copy, &wf);
    if problems.is_empty() {
        let plan = wf
            .plan(&meta.scope, &meta.input)
            .run_id(run_id.clone())
            .reload();
        let mut queue = policy::open_and_read(state.factory.as_ref(), run_id)
            .await?
            .queue;
        // What the adoption does before it amends: running tasks are recovered, and a failed
        // run's failed tasks get fresh attempts.
        let now = cairn_checkpoint::wall_clock_now();
        cairn_executor::take_over(&mut queue, retry_failed, now);
        problems.extend(plan.fit_problems(&queue).iter().map(ToString::to_string));
        let changes = plan.reload_changes(&queue, &QueueConfig::default());
        for change in &changes {
            if let Some(why) = change.refusal() {
                problems.push(format!(
                    "{} changed ({}), but {why}",
                    task_name(change),
                    what(change)
                ));
                continue;
            }
            let inputs = change.inputs.clone().unwrap_or_else(|| {
                queue
                    .get(change.id)
                    .map(|t| t.inputs.clone())
                    .unwrap_or_default()
            });
            let limit = change.max_attempts.map(|(_, new)| new);
            if let Err(error) = queue.amend(change.id, inputs, limit, now) {
                problems.push(format!("{}: {error}", task_name(change)));
            }
        }
        if problems.is_empty() {
            return Ok(Reload {
                retry_delay_changed: wf.retry_delay != copy.retry_delay,
                wf,
                text,
                changes,
            });
        }
    }
    Err(UsageError(format!(
        "--reload: run {run_id} cannot take {path} as it is now, so nothing was changed:\n  - {}\nto run the file as it is, abandon the run (cairn abandon {run_id}) and start a fresh one",
        problems.join("\n  - ")
    ))
    .into())
}

/// What makes `new` another workflow than the run's copy `old`, beyond task definitions:
/// another name, tasks added, removed or reordered, other dependencies. Empty when the run
/// can take it.
pub fn shape_differences(old: &Workflow, new: &Workflow) -> Vec<String> {
    let mut problems = Vec::new();
    if old.name != new.name {
        problems.push(format!(
            "its `name` is `{}` now, not `{}`",
            escape_controls(&new.name),
            escape_controls(&old.name)
        ));
    }
    let old_ids: BTreeSet<&str> = old.tasks.iter().map(|t| t.id.as_str()).collect();
    let new_ids: BTreeSet<&str> = new.tasks.iter().map(|t| t.id.as_str()).collect();
    let quoted = |ids: Vec<&str>| -> String {
        ids.iter()
            .map(|id| format!("`{}`", escape_controls(id)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let added: Vec<&str> = new_ids.difference(&old_ids).copied().collect();
    if !added.is_empty() {
        problems.push(format!("task(s) {} are new", quoted(added)));
    }
    let gone: Vec<&str> = old_ids.difference(&new_ids).copied().collect();
    if !gone.is_empty() {
        problems.push(format!("task(s) {} are gone", quoted(gone)));
    }
    if !problems.is_empty() {
        return problems;
    }
    // The run's tasks are matched to the file's by position.
    if let Some((before, after)) = old
        .tasks
        .iter()
        .zip(&new.tasks)
        .find(|(before, after)| before.id != after.id)
    {
        problems.push(format!(
            "the tasks are in another order: `{}` now comes where `{}` was; keep the run's order",
            escape_controls(&after.id),
            escape_controls(&before.id)
        ));
        return problems;
    }
    for (before, after) in old.tasks.iter().zip(&new.tasks) {
        let was: BTreeSet<&str> = before.depends_on.iter().map(String::as_str).collect();
        let is: BTreeSet<&str> = after.depends_on.iter().map(String::as_str).collect();
        if was != is {
            problems.push(format!(
                "task `{}` waits for [{}] now, not [{}]",
                escape_controls(&after.id),
                quoted(is.into_iter().collect()),
                quoted(was.into_iter().collect())
            ));
        }
    }
    problems
}

/// `` task `deploy` `` (a workflow task always has a name).
fn task_name(change: &ReloadChange) -> String {
    match &change.name {
        Some(name) => format!("task `{}`", escape_controls(name)),
        None => format!("task {}", change.id),
    }
}

/// What changed: `new command or settings`, `max_attempts 3 -> 5`.
fn what(change: &ReloadChange) -> String {
    let mut parts = Vec::new();
    if change.inputs.is_some() {
        parts.push("new command or settings".to_owned());
    }
    if let Some((old, new)) = change.max_attempts {
        parts.push(format!("max_attempts {old} -> {new}"));
    }
    parts.join(", ")
}
