//! The generated workload: a DAG of about `tasks` tasks whose shape comes from a seed.
//!
//! Every task carries its whole behaviour in its inputs (a [`Behaviour`]): how long it works,
//! whether its first attempt fails with a retryable error, and which children it enqueues.
//! So a resumed worker needs no side table, and the verifier can compute exactly which
//! children must exist.

use cairn_executor::{Phase, RunPlan};
use cairn_queue::TaskSpec;
use serde::{Deserialize, Serialize};

use crate::rng::SplitMix;

/// The workflow name of every crash-test run.
pub const WORKFLOW: &str = "crash-test";

/// The kind of plan (root) tasks.
pub const ROOT_KIND: &str = "work";

/// The kind of follow-ups that root tasks enqueue.
pub const CHILD_KIND: &str = "child";

/// Attempts given to every task. Kills interrupt attempts and every interrupted attempt
/// counts, so the limit is far above anything a run can reach; a task that still ran out
/// would fail the run, which the verifier reports.
pub const MAX_ATTEMPTS: u32 = 10_000;

/// What one task does, stored as its inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Behaviour {
    /// A name unique in the run (`p0.t12`, `p0.t12.c1`).
    pub name: String,
    /// Whether attempt 1 fails with a retryable error.
    pub fail_first: bool,
    /// How long the body works, in microseconds.
    pub work_us: u64,
    /// The follow-ups this task enqueues (through the handler context) before completing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Behaviour>,
}

impl Behaviour {
    /// The task inputs that carry this behaviour.
    pub fn inputs(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// Reads a behaviour back from task inputs; `None` when they are not one.
    pub fn from_inputs(inputs: &serde_json::Value) -> Option<Behaviour> {
        serde_json::from_value(inputs.clone()).ok()
    }

    /// The task's identity for the spawned-tasks multiset: its inputs without the list of
    /// children (each child is compared as a task of its own, under its parent).
    pub fn identity(&self) -> String {
        Behaviour {
            children: Vec::new(),
            ..self.clone()
        }
        .inputs()
        .to_string()
    }

    /// The spec a parent uses to enqueue this behaviour as a child.
    pub fn child_spec(&self) -> TaskSpec {
        TaskSpec::new(CHILD_KIND)
            .inputs(self.inputs())
            .max_attempts(MAX_ATTEMPTS)
    }
}

/// One plan task: its behaviour and the earlier tasks of its phase it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagTask {
    /// What it does.
    pub behaviour: Behaviour,
    /// Positions of earlier tasks of the same phase.
    pub after: Vec<usize>,
}

/// A generated workload.
///
/// # Examples
///
/// ```
/// use cairn_crash::dag::Dag;
/// let dag = Dag::generate(42, 200, 2_000);
/// assert_eq!(dag.total_tasks(), 200);
/// assert_eq!(dag, Dag::generate(42, 200, 2_000));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dag {
    /// The seed it came from.
    pub seed: u64,
    /// Phases of plan tasks, in order.
    pub phases: Vec<Vec<DagTask>>,
}

impl Dag {
    /// A DAG of exactly `tasks` tasks (at least 1), plan tasks plus children, whose bodies
    /// work up to `max_work_us` microseconds each.
    pub fn generate(seed: u64, tasks: usize, max_work_us: u64) -> Dag {
        let tasks = tasks.max(1);
        let mut rng = SplitMix::new(seed ^ 0xDA6_0000);
        let phase_count = (tasks / 70).max(1);
        let mut phases: Vec<Vec<DagTask>> = vec![Vec::new(); phase_count];
        let mut count = 0usize;
        while count < tasks {
            let phase = (count * phase_count / tasks).min(phase_count - 1);
            let position = phases[phase].len();
            let name = format!("p{phase}.t{position}");
            let remaining = tasks - count - 1;
            let wanted = if rng.chance(20) {
                1 + rng.below(3) as usize
            } else {
                0
            };
            let children = (0..wanted.min(remaining))
                .map(|index| Behaviour {
                    name: format!("{name}.c{index}"),
                    fail_first: rng.chance(15),
                    work_us: rng.below(max_work_us.saturating_add(1)),
                    children: Vec::new(),
                })
                .collect::<Vec<_>>();
            let mut after = Vec::new();
            if position > 0 && rng.chance(60) {
                for _ in 0..=rng.below(2) {
                    let dep = rng.below(position as u64) as usize;
                    if !after.contains(&dep) {
                        after.push(dep);
                    }
                }
            }
            count += 1 + children.len();
            phases[phase].push(DagTask {
                behaviour: Behaviour {
                    name,
                    fail_first: rng.chance(15),
                    work_us: rng.below(max_work_us.saturating_add(1)),
                    children,
                },
                after,
            });
        }
        phases.retain(|phase| !phase.is_empty());
        Dag { seed, phases }
    }

    /// The run plan: one executor phase per DAG phase, every task with `MAX_ATTEMPTS`.
    pub fn plan(&self, scope: &str) -> RunPlan {
        let mut plan = RunPlan::new(WORKFLOW, scope).input(format!("seed {}", self.seed));
        for (index, tasks) in self.phases.iter().enumerate() {
            let mut phase = Phase::new(format!("phase-{index}"));
            for task in tasks {
                phase.task(
                    TaskSpec::new(ROOT_KIND)
                        .inputs(task.behaviour.inputs())
                        .max_attempts(MAX_ATTEMPTS),
                    task.after.iter().copied(),
                );
            }
            plan = plan.phase(phase);
        }
        plan
    }

    /// Every plan task's behaviour, in phase order.
    pub fn roots(&self) -> impl Iterator<Item = &Behaviour> {
        self.phases.iter().flatten().map(|task| &task.behaviour)
    }

    /// Every task the finished run must hold: `(parent name, kind, identity)` (see
    /// [`Behaviour::identity`]), with `None` as the parent of plan tasks. Sorted, so two
    /// multisets compare with `==`.
    pub fn expected_tasks(&self) -> Vec<(Option<String>, String, String)> {
        let mut out = Vec::new();
        for root in self.roots() {
            out.push((None, ROOT_KIND.to_owned(), root.identity()));
            for child in &root.children {
                out.push((
                    Some(root.name.clone()),
                    CHILD_KIND.to_owned(),
                    child.identity(),
                ));
            }
        }
        out.sort();
        out
    }

    /// How many tasks the finished run holds.
    pub fn total_tasks(&self) -> usize {
        self.roots().map(|root| 1 + root.children.len()).sum()
    }
}
