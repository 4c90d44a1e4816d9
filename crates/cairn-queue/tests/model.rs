//! Property test: random operation sequences, valid and invalid, run against the queue and
//! against a naive reference model written here, with the queue's invariants checked after
//! every step.
//!
//! The model is deliberately simple: it scans every task for every question (is it runnable,
//! what descends from a failure, is it a duplicate), so it shares no index or shortcut with
//! the queue. Dedup equality is serde_json's own `Value` equality, not the queue's encoding.

use std::collections::HashSet;

use cairn_queue::{
    EnqueuedBy, Error, Event, Handoff, Queue, QueueConfig, Snapshot, Status, TaskError, TaskId,
    TaskSpec, Timestamp,
};
use proptest::prelude::*;
use serde_json::{Value, json};

const DEFAULT_ATTEMPTS: u32 = 2;

fn config() -> QueueConfig {
    QueueConfig {
        max_tasks: 14,
        max_depth: 2,
        max_children: 2,
        default_max_attempts: DEFAULT_ATTEMPTS,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        kind: u8,
        input: u8,
        deps: Vec<u64>,
        parent: Option<u64>,
        attempts: u8,
        dedup: bool,
    },
    Start(u64),
    Complete(u64),
    Skip(u64),
    Fail {
        id: u64,
        retryable: bool,
        delay: u64,
    },
    Retry(u64),
    Release(u64),
    Amend {
        id: u64,
        input: u8,
        attempts: u8,
    },
    Recover,
    Tick(u64),
}

/// How a generated operation names a task: usually one that fits the operation (a runnable
/// task for `start`, a running one for `complete`, ...), sometimes any id at all, including
/// unknown ones, so refused operations come up too.
#[derive(Debug, Clone, Copy)]
struct Pick {
    fitting: bool,
    n: u16,
}

fn pick() -> impl Strategy<Value = Pick> {
    (prop::bool::weighted(0.85), any::<u16>()).prop_map(|(fitting, n)| Pick { fitting, n })
}

#[derive(Debug, Clone)]
enum Plan {
    Enqueue {
        kind: u8,
        input: u8,
        deps: Vec<Pick>,
        parent: Option<Pick>,
        attempts: u8,
        dedup: bool,
    },
    Start(Pick),
    Complete(Pick),
    Skip(Pick),
    Fail {
        id: Pick,
        retryable: bool,
        delay: u64,
    },
    Retry(Pick),
    Release(Pick),
    Amend {
        id: Pick,
        input: u8,
        attempts: u8,
    },
    Recover,
    Tick(u64),
}

fn plan_strategy() -> impl Strategy<Value = Plan> {
    prop_oneof![
        4 => (
            0u8..5,
            0u8..6,
            prop::collection::vec(pick(), 0..4),
            prop::option::weighted(0.3, pick()),
            0u8..5,
            prop::bool::weighted(0.7),
        )
            .prop_map(|(kind, input, deps, parent, attempts, dedup)| Plan::Enqueue {
                kind,
                input,
                deps,
                parent,
                attempts,
                dedup,
            }),
        4 => pick().prop_map(Plan::Start),
        3 => pick().prop_map(Plan::Complete),
        1 => pick().prop_map(Plan::Skip),
        2 => (pick(), prop::bool::weighted(0.6), 0u64..20)
            .prop_map(|(id, retryable, delay)| Plan::Fail { id, retryable, delay }),
        1 => pick().prop_map(Plan::Retry),
        1 => pick().prop_map(Plan::Release),
        1 => (pick(), 0u8..6, 0u8..5)
            .prop_map(|(id, input, attempts)| Plan::Amend { id, input, attempts }),
        1 => Just(Plan::Recover),
        1 => (0u64..15).prop_map(Plan::Tick),
    ]
}

/// Turns a plan into a concrete operation, choosing ids from the model's current state.
fn resolve(plan: &Plan, model: &Model) -> Op {
    let in_status = |status: Status| -> Vec<u64> {
        (0..model.tasks.len() as u64)
            .filter(|&i| model.tasks[i as usize].status == status)
            .collect()
    };
    let choose = |p: Pick, candidates: &[u64]| -> u64 {
        if p.fitting && !candidates.is_empty() {
            candidates[p.n as usize % candidates.len()]
        } else {
            // Any id up to a few past the end.
            u64::from(p.n) % (model.tasks.len() as u64 + 3)
        }
    };
    let all: Vec<u64> = (0..model.tasks.len() as u64).collect();
    match plan {
        Plan::Enqueue {
            kind,
            input,
            deps,
            parent,
            attempts,
            dedup,
        } => Op::Enqueue {
            kind: *kind,
            input: *input,
            deps: deps.iter().map(|p| choose(*p, &all)).collect(),
            parent: parent.map(|p| choose(p, &in_status(Status::Running))),
            attempts: *attempts,
            dedup: *dedup,
        },
        Plan::Start(p) => {
            let ready: Vec<u64> = model.runnable();
            Op::Start(choose(*p, &ready))
        }
        Plan::Complete(p) => Op::Complete(choose(*p, &in_status(Status::Running))),
        Plan::Skip(p) => Op::Skip(choose(*p, &in_status(Status::Running))),
        Plan::Fail {
            id,
            retryable,
            delay,
        } => Op::Fail {
            id: choose(*id, &in_status(Status::Running)),
            retryable: *retryable,
            delay: *delay,
        },
        Plan::Retry(p) => Op::Retry(choose(*p, &in_status(Status::Failed))),
        Plan::Release(p) => Op::Release(choose(*p, &in_status(Status::Running))),
        Plan::Amend {
            id,
            input,
            attempts,
        } => {
            let unfinished: Vec<u64> = (0..model.tasks.len() as u64)
                .filter(|&i| {
                    matches!(
                        model.tasks[i as usize].status,
                        Status::Pending | Status::Failed | Status::Blocked
                    )
                })
                .collect();
            Op::Amend {
                id: choose(*id, &unfinished),
                input: *input,
                attempts: *attempts,
            }
        }
        Plan::Recover => Op::Recover,
        Plan::Tick(delta) => Op::Tick(*delta),
    }
}

fn kind_name(kind: u8) -> &'static str {
    ["fetch", "parse", "render", "store", ""][kind as usize]
}

fn input_value(input: u8) -> Value {
    match input {
        0 => Value::Null,
        1 => json!({ "a": 1, "b": [1, 2] }),
        2 => serde_json::from_str(r#"{ "b": [1, 2], "a": 1 }"#).unwrap(),
        3 => json!([1, 2]),
        4 => json!({ "a": { "x": [1] } }),
        _ => json!("a"),
    }
}

fn max_attempts(attempts: u8) -> Option<u32> {
    match attempts {
        0 => None,
        4 => Some(0),
        n => Some(u32::from(n)),
    }
}

fn variant(err: &Error) -> &'static str {
    match err {
        Error::UnknownTask { .. } => "UnknownTask",
        Error::UnknownDependencies { .. } => "UnknownDependencies",
        Error::InvalidTransition { .. } => "InvalidTransition",
        Error::InvalidSpec { .. } => "InvalidSpec",
        Error::TooManyTasks { .. } => "TooManyTasks",
        Error::TooDeep { .. } => "TooDeep",
        Error::TooManyChildren { .. } => "TooManyChildren",
        Error::NotReady { .. } => "NotReady",
        Error::InvalidEvent { .. } => "InvalidEvent",
        Error::DuplicateInputs { .. } => "DuplicateInputs",
        _ => "other",
    }
}

/// What an operation returned, in a form both sides can produce.
type Answer = Result<String, &'static str>;

#[derive(Debug, Clone)]
struct ModelTask {
    kind: String,
    inputs: Value,
    deps: Vec<usize>,
    status: Status,
    attempts: u32,
    max_attempts: u32,
    not_before: Option<u64>,
    parent: Option<usize>,
    depth: u32,
    dedup: bool,
}

#[derive(Debug, Default)]
struct Model {
    tasks: Vec<ModelTask>,
    now: u64,
}

impl Model {
    fn satisfied(&self, i: usize) -> bool {
        self.tasks[i].status.satisfies_dependents()
    }

    /// Every task that depends on `i`, directly or not.
    fn descendants(&self, i: usize) -> Vec<usize> {
        let mut set = vec![false; self.tasks.len()];
        set[i] = true;
        // Ids are creation-ordered and dependencies point backwards, but the model does not
        // rely on that: it repeats until nothing changes.
        loop {
            let mut changed = false;
            for (t, task) in self.tasks.iter().enumerate() {
                if !set[t] && task.deps.iter().any(|d| set[*d]) {
                    set[t] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        (0..self.tasks.len())
            .filter(|&t| t != i && set[t])
            .collect()
    }

    fn ancestors(&self, i: usize) -> Vec<usize> {
        (0..self.tasks.len())
            .filter(|&a| self.descendants(a).contains(&i))
            .collect()
    }

    fn has_failed_ancestor(&self, i: usize) -> bool {
        self.ancestors(i)
            .iter()
            .any(|&a| self.tasks[a].status == Status::Failed)
    }

    fn runnable(&self) -> Vec<u64> {
        (0..self.tasks.len())
            .filter(|&i| {
                let task = &self.tasks[i];
                task.status == Status::Pending
                    && task.deps.iter().all(|&d| self.satisfied(d))
                    && task.not_before.is_none_or(|at| at <= self.now)
            })
            .map(|i| i as u64)
            .collect()
    }

    fn drained(&self) -> bool {
        (0..self.tasks.len()).all(|i| match self.tasks[i].status {
            Status::Running => false,
            Status::Pending => self.has_failed_ancestor(i),
            _ => true,
        })
    }

    fn fail_permanently(&mut self, i: usize) {
        self.tasks[i].status = Status::Failed;
        for d in self.descendants(i) {
            if self.tasks[d].status == Status::Pending {
                self.tasks[d].status = Status::Blocked;
            }
        }
    }

    fn known(&self, id: u64) -> Result<usize, &'static str> {
        if (id as usize) < self.tasks.len() {
            Ok(id as usize)
        } else {
            Err("UnknownTask")
        }
    }

    fn enqueue(&mut self, op: &Op) -> Answer {
        let Op::Enqueue {
            kind,
            input,
            deps,
            parent,
            attempts,
            dedup,
        } = op
        else {
            unreachable!()
        };
        let kind = kind_name(*kind);
        let inputs = input_value(*input);
        if kind.is_empty() {
            return Err("InvalidSpec");
        }
        let max = max_attempts(*attempts).unwrap_or(DEFAULT_ATTEMPTS);
        if max == 0 {
            return Err("InvalidSpec");
        }
        if deps.iter().any(|&d| d as usize >= self.tasks.len()) {
            return Err("UnknownDependencies");
        }
        let mut unique: Vec<usize> = Vec::new();
        for &d in deps {
            if !unique.contains(&(d as usize)) {
                unique.push(d as usize);
            }
        }
        let depth = match parent {
            None => 0,
            Some(p) => {
                let p = self.known(*p)?;
                if self.tasks[p].status != Status::Running {
                    return Err("InvalidTransition");
                }
                self.tasks[p].depth + 1
            }
        };
        let duplicate = self
            .tasks
            .iter()
            .position(|t| *dedup && t.dedup && t.kind == kind && t.inputs == inputs);
        if let Some(existing) = duplicate {
            return Ok(format!("existing {existing}"));
        }
        let cfg = config();
        if self.tasks.len() >= cfg.max_tasks {
            return Err("TooManyTasks");
        }
        if let Some(p) = parent {
            if depth > cfg.max_depth {
                return Err("TooDeep");
            }
            let children = self
                .tasks
                .iter()
                .filter(|t| t.parent == Some(*p as usize))
                .count();
            if children >= cfg.max_children {
                return Err("TooManyChildren");
            }
        }
        let blocked = unique
            .iter()
            .any(|&d| matches!(self.tasks[d].status, Status::Failed | Status::Blocked));
        self.tasks.push(ModelTask {
            kind: kind.to_owned(),
            inputs,
            deps: unique,
            status: if blocked {
                Status::Blocked
            } else {
                Status::Pending
            },
            attempts: 0,
            max_attempts: max,
            not_before: None,
            parent: parent.map(|p| p as usize),
            depth,
            dedup: *dedup,
        });
        Ok(format!("new {}", self.tasks.len() - 1))
    }

    fn step(&mut self, op: &Op) -> Answer {
        match op {
            Op::Enqueue { .. } => self.enqueue(op),
            Op::Start(id) => {
                let i = self.known(*id)?;
                if self.tasks[i].status != Status::Pending {
                    return Err("InvalidTransition");
                }
                let deps_done = self.tasks[i].deps.iter().all(|&d| self.satisfied(d));
                let due = self.tasks[i].not_before.is_none_or(|at| at <= self.now);
                if !deps_done || !due {
                    return Err("NotReady");
                }
                let task = &mut self.tasks[i];
                task.attempts += 1;
                task.status = Status::Running;
                task.not_before = None;
                Ok(task.attempts.to_string())
            }
            Op::Complete(id) | Op::Skip(id) => {
                let i = self.known(*id)?;
                if self.tasks[i].status != Status::Running {
                    return Err("InvalidTransition");
                }
                self.tasks[i].status = if matches!(op, Op::Complete(_)) {
                    Status::Done
                } else {
                    Status::Skipped
                };
                Ok(String::new())
            }
            Op::Fail {
                id,
                retryable,
                delay,
            } => {
                let i = self.known(*id)?;
                if self.tasks[i].status != Status::Running {
                    return Err("InvalidTransition");
                }
                let task = &mut self.tasks[i];
                if *retryable && task.attempts < task.max_attempts {
                    task.status = Status::Pending;
                    task.not_before = Some(self.now + delay);
                    Ok(format!("{:?}", Status::Pending))
                } else {
                    self.fail_permanently(i);
                    Ok(format!("{:?}", Status::Failed))
                }
            }
            Op::Retry(id) => {
                let i = self.known(*id)?;
                if self.tasks[i].status != Status::Failed {
                    return Err("InvalidTransition");
                }
                let task = &mut self.tasks[i];
                task.status = Status::Pending;
                task.attempts = 0;
                task.not_before = None;
                for d in self.descendants(i) {
                    if self.tasks[d].status == Status::Blocked && !self.has_failed_ancestor(d) {
                        self.tasks[d].status = Status::Pending;
                    }
                }
                Ok(String::new())
            }
            Op::Release(id) => {
                let i = self.known(*id)?;
                if self.tasks[i].status != Status::Running {
                    return Err("InvalidTransition");
                }
                let task = &mut self.tasks[i];
                task.status = Status::Pending;
                task.attempts -= 1;
                task.not_before = None;
                Ok(String::new())
            }
            Op::Amend {
                id,
                input,
                attempts,
            } => {
                let i = self.known(*id)?;
                let task = &self.tasks[i];
                if !matches!(
                    task.status,
                    Status::Pending | Status::Failed | Status::Blocked
                ) {
                    return Err("InvalidTransition");
                }
                let max = max_attempts(*attempts).unwrap_or(DEFAULT_ATTEMPTS);
                let no_attempt_left = matches!(task.status, Status::Pending | Status::Blocked)
                    && task.attempts >= max;
                if max == 0 || no_attempt_left || task.attempts > max {
                    return Err("InvalidSpec");
                }
                let inputs = input_value(*input);
                // A guarded follow-up keeps its inputs while its parent may run again.
                let parent_not_done = task.parent.is_some_and(|p| !self.satisfied(p));
                if task.dedup && task.inputs != inputs && parent_not_done {
                    return Err("InvalidSpec");
                }
                let taken = self.tasks.iter().enumerate().any(|(j, t)| {
                    j != i && task.dedup && t.dedup && t.kind == task.kind && t.inputs == inputs
                });
                if taken {
                    return Err("DuplicateInputs");
                }
                let task = &mut self.tasks[i];
                task.inputs = inputs;
                task.max_attempts = max;
                Ok(String::new())
            }
            Op::Recover => {
                let mut report = Vec::new();
                for i in 0..self.tasks.len() {
                    if self.tasks[i].status != Status::Running {
                        continue;
                    }
                    let task = &mut self.tasks[i];
                    let attempt = task.attempts;
                    if task.attempts < task.max_attempts {
                        task.status = Status::Pending;
                        task.not_before = None;
                    } else {
                        self.fail_permanently(i);
                    }
                    report.push((i as u64, attempt, self.tasks[i].status));
                }
                Ok(format!("{report:?}"))
            }
            Op::Tick(delta) => {
                self.now += delta;
                Ok(String::new())
            }
        }
    }
}

fn run_on_queue(q: &mut Queue, op: &Op, now: &mut u64) -> Answer {
    let at = Timestamp(*now);
    let answer = match op {
        Op::Enqueue {
            kind,
            input,
            deps,
            parent,
            attempts,
            dedup,
        } => {
            let mut spec = TaskSpec::new(kind_name(*kind))
                .inputs(input_value(*input))
                .depends_on(deps.iter().map(|&d| TaskId(d)));
            spec.max_attempts = max_attempts(*attempts);
            spec.dedup = *dedup;
            let by = parent.map_or(EnqueuedBy::Root, |p| EnqueuedBy::Task(TaskId(p)));
            q.enqueue(spec, by, at).map(|e| {
                if e.existing {
                    format!("existing {}", e.id.0)
                } else {
                    format!("new {}", e.id.0)
                }
            })
        }
        Op::Start(id) => q.start(TaskId(*id), at).map(|n| n.to_string()),
        Op::Complete(id) => q
            .complete(TaskId(*id), Handoff::default(), at)
            .map(|()| String::new()),
        Op::Skip(id) => q
            .skip(TaskId(*id), Handoff::default(), at)
            .map(|()| String::new()),
        Op::Fail {
            id,
            retryable,
            delay,
        } => q
            .fail(
                TaskId(*id),
                TaskError::new("test", "injected"),
                *retryable,
                Timestamp(*now + delay),
                at,
            )
            .map(|s| format!("{s:?}")),
        Op::Retry(id) => q.retry(TaskId(*id), at).map(|()| String::new()),
        Op::Release(id) => q.release(TaskId(*id), at).map(|()| String::new()),
        Op::Amend {
            id,
            input,
            attempts,
        } => q
            .amend(
                TaskId(*id),
                input_value(*input),
                max_attempts(*attempts),
                at,
            )
            .map(|()| String::new()),
        Op::Recover => {
            let report: Vec<(u64, u32, Status)> = q
                .recover(at)
                .into_iter()
                .map(|r| (r.id.0, r.attempt, r.now))
                .collect();
            Ok(format!("{report:?}"))
        }
        Op::Tick(delta) => {
            *now += delta;
            Ok(String::new())
        }
    };
    answer.map_err(|e| variant(&e))
}

fn is_ancestor(q: &Queue, ancestor: TaskId, of: TaskId) -> bool {
    let mut stack = vec![of];
    let mut seen = HashSet::new();
    while let Some(id) = stack.pop() {
        for dep in &q.get(id).unwrap().depends_on {
            if *dep == ancestor {
                return true;
            }
            if seen.insert(*dep) {
                stack.push(*dep);
            }
        }
    }
    false
}

struct History {
    initial: Snapshot,
    mid: Option<(Snapshot, usize)>,
    /// Every event so far, including the current step's.
    events: Vec<Event>,
    /// Tasks that finished before the current step.
    finished: HashSet<TaskId>,
}

fn check_invariants(q: &Queue, model: &Model, now: u64, history: &History, new: &[Event]) {
    // No task finishes twice, and a task starts only once its dependencies are satisfied.
    let mut finished = history.finished.clone();
    for event in new {
        match event {
            Event::Completed { id, .. } | Event::Skipped { id, .. } => {
                assert!(finished.insert(*id), "{id} finished twice");
            }
            Event::Started { id, .. } => {
                for dep in &q.get(*id).unwrap().depends_on {
                    assert!(
                        q.get(*dep).unwrap().status.satisfies_dependents(),
                        "{id} started before {dep} finished"
                    );
                }
            }
            _ => {}
        }
    }
    let mut counts = [0usize; 6];
    for task in q.tasks() {
        assert!(task.attempts <= task.max_attempts, "{}", task.id);
        counts[Status::ALL.iter().position(|s| *s == task.status).unwrap()] += 1;
        if task.status == Status::Blocked {
            let by = task.blocked_by.expect("a blocked task names its ancestor");
            assert_eq!(q.get(by).unwrap().status, Status::Failed, "{}", task.id);
            assert!(is_ancestor(q, by, task.id), "{by} is not above {}", task.id);
        } else {
            assert_eq!(task.blocked_by, None, "{}", task.id);
        }
    }
    for (n, status) in Status::ALL.iter().enumerate() {
        assert_eq!(q.counts().of(*status), counts[n], "count of {status}");
    }
    // Replay from the start and from the mid-run snapshot both give back the state.
    let live = q.snapshot();
    let replayed = Queue::replay(Some(history.initial.clone()), &history.events, config()).unwrap();
    assert_eq!(replayed.snapshot(), live, "replay from the start");
    if let Some((mid, from)) = &history.mid {
        let replayed =
            Queue::replay(Some(mid.clone()), &history.events[*from..], config()).unwrap();
        assert_eq!(replayed.snapshot(), live, "replay from the mid snapshot");
    }
    let text = serde_json::to_string(&live).unwrap();
    let back: Snapshot = serde_json::from_str(&text).unwrap();
    assert_eq!(back, live, "serde round trip");
    assert_eq!(
        serde_json::to_string(&q.snapshot_view()).unwrap(),
        text,
        "the borrowed view encodes like the snapshot"
    );
    assert_eq!(
        serde_json::to_string(&q.snapshot_view().with_inputs(|task| task.inputs.clone())).unwrap(),
        text,
        "the view with the same inputs from elsewhere encodes like the snapshot"
    );
    // The queue agrees with the model.
    assert_eq!(q.len(), model.tasks.len());
    for (task, m) in q.tasks().zip(&model.tasks) {
        let id = task.id;
        assert_eq!(task.status, m.status, "status of {id}");
        assert_eq!(task.attempts, m.attempts, "attempts of {id}");
        assert_eq!(
            task.not_before.map(|t| t.0),
            m.not_before,
            "not_before of {id}"
        );
        assert_eq!(task.depth, m.depth, "depth of {id}");
        assert_eq!(task.kind, m.kind, "kind of {id}");
        assert_eq!(task.inputs, m.inputs, "inputs of {id}");
        assert_eq!(task.max_attempts, m.max_attempts, "max_attempts of {id}");
        let deps: Vec<usize> = task.depends_on.iter().map(|d| d.0 as usize).collect();
        assert_eq!(deps, m.deps, "deps of {id}");
    }
    let runnable: Vec<u64> = q
        .next_runnable(Timestamp(now))
        .iter()
        .map(|id| id.0)
        .collect();
    assert_eq!(runnable, model.runnable(), "runnable at {now}");
    assert_eq!(q.is_drained(), model.drained(), "drained");
    // No pending task that can never start.
    if q.is_drained() {
        assert_eq!(q.counts().pending, 0, "drained with pending tasks");
        assert!(q.outcome().is_some());
    } else {
        assert!(q.outcome().is_none());
        if q.counts().running == 0 {
            assert!(
                !q.next_runnable(Timestamp(u64::MAX)).is_empty(),
                "not drained, nothing running, and nothing can start"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn queue_matches_model_and_keeps_its_invariants(
        plans in prop::collection::vec(plan_strategy(), 1..80),
        split in 0usize..80,
    ) {
        let mut q = Queue::new(config());
        let mut model = Model::default();
        let mut now = 0u64;
        let mut history = History {
            initial: q.snapshot(),
            mid: None,
            events: Vec::new(),
            finished: HashSet::new(),
        };
        for (step, plan) in plans.iter().enumerate() {
            let op = &resolve(plan, &model);
            if step == split {
                history.mid = Some((q.snapshot(), history.events.len()));
            }
            let before = q.snapshot();
            let got = run_on_queue(&mut q, op, &mut now);
            let want = model.step(op);
            prop_assert_eq!(&got, &want, "step {} {:?}", step, op);
            let new = q.take_events();
            if got.is_err() {
                prop_assert!(new.is_empty(), "a refused {:?} emitted events", op);
                prop_assert_eq!(&q.snapshot(), &before, "a refused {:?} changed state", op);
            }
            history.events.extend(new.iter().cloned());
            check_invariants(&q, &model, now, &history, &new);
            for event in &new {
                if let Event::Completed { id, .. } | Event::Skipped { id, .. } = event {
                    history.finished.insert(*id);
                }
            }
        }
    }
}
