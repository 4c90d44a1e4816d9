//! `RunPlan::reload`: an adopted run takes the plan's corrected definitions for the tasks
//! that have not finished, journaled and audited before anything starts, and refuses a plan
//! that changes a finished task.

mod common;

use std::sync::{Arc, Mutex};

use cairn_checkpoint::{AuditAction, CheckpointerFactory, MemoryFactory, RunStatus};
use cairn_executor::{
    Disposition, Executor, ExecutorConfig, Finish, FitProblem, Phase, Registry, RunPlan,
    RunSignals, RunStop, Start, TaskFailure, handler_fn,
};
use cairn_queue::{Event, Handoff, QueueConfig, Status, TaskSpec};
use common::{stored, stored_queue};

/// Every command a `cmd` body ran, in order.
#[derive(Clone, Default)]
struct Ran(Arc<Mutex<Vec<String>>>);

impl Ran {
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn count(&self, command: &str) -> usize {
        self.all().iter().filter(|c| *c == command).count()
    }
}

/// `cmd` tasks run their input string; one that starts with `mak ` (a typo) fails for good.
fn executor(store: &MemoryFactory, ran: &Ran) -> Executor {
    let ran = ran.clone();
    let registry = Registry::new().with(
        "cmd",
        handler_fn(move |ctx| {
            let ran = ran.clone();
            async move {
                let command = ctx.inputs().as_str().unwrap_or_default().to_owned();
                ran.0.lock().unwrap().push(command.clone());
                if command.starts_with("mak ") {
                    Err(TaskFailure::permanent("exit", "mak: not found"))
                } else {
                    Ok(Finish::Complete(Handoff::default()))
                }
            }
        }),
    );
    Executor::new(Arc::new(store.clone()), registry, ExecutorConfig::default()).unwrap()
}

/// prep -> deploy -> notify, with the given commands; deploy gets one attempt.
fn plan(prep: &str, deploy: &str, notify_attempts: Option<u32>) -> RunPlan {
    let mut phase = Phase::new("main");
    let a = phase.named_task("prep", TaskSpec::new("cmd").inputs(prep.into()), []);
    let b = phase.named_task(
        "deploy",
        TaskSpec::new("cmd").inputs(deploy.into()).max_attempts(1),
        [a],
    );
    let mut notify = TaskSpec::new("cmd").inputs("notify".into());
    notify.max_attempts = notify_attempts;
    phase.named_task("notify", notify, [b]);
    RunPlan::new("wf", "scope").phase(phase)
}

/// A run whose `deploy` failed on a typo: prep done, deploy failed, notify blocked.
async fn failed_on_a_typo(store: &MemoryFactory, ran: &Ran) -> cairn_checkpoint::RunId {
    let report = executor(store, ran)
        .run(
            plan("prep", "mak deploy", None),
            Start::Fresh,
            RunSignals::default(),
        )
        .await
        .unwrap();
    assert!(matches!(report.disposition, Disposition::Fail(_)));
    assert_eq!(ran.all(), ["prep", "mak deploy"]);
    report.run_id
}

/// The resume policy's explicit resume of a failed run: one claim from failed to running.
async fn claim_failed(store: &MemoryFactory, run_id: &cairn_checkpoint::RunId) {
    store
        .compare_and_swap_status(run_id, RunStatus::Failed, RunStatus::Running)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_reloaded_resume_runs_the_fixed_command_without_redoing_done_tasks() {
    let store = MemoryFactory::new();
    let ran = Ran::default();
    let run_id = failed_on_a_typo(&store, &ran).await;

    let fixed = plan("prep", "make deploy", Some(5)).reload();
    let before = stored_queue(&store, &run_id).await;
    let changes = fixed.reload_changes(&before, &QueueConfig::default());
    type Listed<'a> = (Option<&'a str>, Status, bool, Option<(u32, u32)>);
    let listed: Vec<Listed<'_>> = changes
        .iter()
        .map(|c| {
            (
                c.name.as_deref(),
                c.status,
                c.inputs.is_some(),
                c.max_attempts,
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (Some("deploy"), Status::Failed, true, None),
            (Some("notify"), Status::Blocked, false, Some((3, 5))),
        ]
    );
    assert!(changes.iter().all(|c| c.may_amend()));

    claim_failed(&store, &run_id).await;
    let report = executor(&store, &ran)
        .run(
            fixed,
            common::adopt_start(&store, run_id.clone()).await,
            RunSignals::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.disposition, Disposition::Complete, "{report:?}");
    assert_eq!(
        ran.all(),
        ["prep", "mak deploy", "make deploy", "notify"],
        "prep ran once; deploy ran its fixed command"
    );

    let events = stored(&store, &run_id).await.events;
    let amended: Vec<(u64, u32)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Amended {
                id, max_attempts, ..
            } => Some((id.0, *max_attempts)),
            _ => None,
        })
        .collect();
    assert_eq!(amended, [(1, 1), (2, 5)], "both amendments are journaled");
    let first_start = events
        .iter()
        .rposition(|e| matches!(e, Event::Started { id, .. } if id.0 == 1))
        .unwrap();
    let last_amend = events
        .iter()
        .rposition(|e| matches!(e, Event::Amended { .. }))
        .unwrap();
    assert!(last_amend < first_start, "amended before the retry started");
    let queue = stored_queue(&store, &run_id).await;
    assert_eq!(queue.tasks().nth(2).unwrap().max_attempts, 5);

    let audit = store.read_audit(&run_id).await.unwrap();
    let records: Vec<_> = audit
        .iter()
        .filter(|r| r.action == AuditAction::TaskAmended)
        .collect();
    assert_eq!(records.len(), 2, "{audit:?}");
    assert_eq!(records[0].detail["name"], "deploy");
    assert_eq!(records[0].detail["inputs_changed"], true);
    assert!(
        records[1].message.contains("max_attempts 3 -> 5"),
        "{}",
        records[1].message
    );
}

#[tokio::test(start_paused = true)]
async fn without_reload_a_resume_keeps_the_commands_the_run_was_started_with() {
    let store = MemoryFactory::new();
    let ran = Ran::default();
    let run_id = failed_on_a_typo(&store, &ran).await;
    claim_failed(&store, &run_id).await;
    let report = executor(&store, &ran)
        .run(
            plan("prep", "make deploy", None),
            common::adopt_start(&store, run_id.clone()).await,
            RunSignals::default(),
        )
        .await
        .unwrap();
    assert!(matches!(report.disposition, Disposition::Fail(_)));
    assert_eq!(ran.all(), ["prep", "mak deploy", "mak deploy"]);
    let events = stored(&store, &run_id).await.events;
    assert!(!events.iter().any(|e| matches!(e, Event::Amended { .. })));
}

#[tokio::test(start_paused = true)]
async fn a_reload_that_changes_a_done_task_fails_the_run_and_amends_nothing() {
    let store = MemoryFactory::new();
    let ran = Ran::default();
    let run_id = failed_on_a_typo(&store, &ran).await;
    let fixed = plan("prep --fast", "make deploy", None).reload();
    let message = refused_adoption(&store, &ran, &run_id, fixed).await;
    assert!(
        message.contains("task `prep` (t0): it is done and a finished task is never run again"),
        "{message}"
    );
    assert_eq!(ran.all(), ["prep", "mak deploy"], "nothing ran");
    let meta = store.load_meta(&run_id).await.unwrap().unwrap();
    assert_eq!(meta.status, RunStatus::Failed, "the run is failed again");
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_run_adopted_with_reload_runs_the_new_definitions() {
    let store = MemoryFactory::new();
    let ran = Ran::default();
    // Shut down as soon as the run is begun: interrupted, nothing started.
    let signals = RunSignals::default();
    let shutdown = signals.shutdown.clone();
    let first = executor(&store, &ran)
        .on_begun(move |_| shutdown.cancel())
        .run(plan("prep", "mak deploy", None), Start::Auto, signals)
        .await
        .unwrap();
    assert_eq!(first.disposition, Disposition::LeaveRunning);
    assert!(ran.all().is_empty());

    let report = executor(&store, &ran)
        .run(
            plan("prep", "make deploy", None).reload(),
            Start::Auto,
            RunSignals::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        report.run_id, first.run_id,
        "the interrupted run was adopted"
    );
    assert_eq!(report.disposition, Disposition::Complete, "{report:?}");
    assert_eq!(ran.count("make deploy"), 1);
    assert_eq!(ran.count("mak deploy"), 0);
}

/// Adopts the failed run `run_id` for `plan` (claimed first, as the resume policy does) and
/// returns the build message it stopped with; checks nothing ran and nothing was amended.
async fn refused_adoption(
    store: &MemoryFactory,
    ran: &Ran,
    run_id: &cairn_checkpoint::RunId,
    plan: RunPlan,
) -> String {
    claim_failed(store, run_id).await;
    let before = ran.all();
    let report = executor(store, ran)
        .run(
            plan,
            common::adopt_start(store, run_id.clone()).await,
            RunSignals::default(),
        )
        .await
        .unwrap();
    assert!(matches!(report.disposition, Disposition::Fail(_)));
    let Some(RunStop::Build(message)) = &report.stop else {
        panic!("expected a build stop: {report:?}");
    };
    assert_eq!(ran.all(), before, "something ran");
    let events = stored(store, run_id).await.events;
    assert!(!events.iter().any(|e| matches!(e, Event::Amended { .. })));
    message.clone()
}

/// Review 52 F2: a task added to a phase the run started would shift every later task by one
/// position; the plan does not fit, the preflight says so, and the adoption refuses it.
#[tokio::test(start_paused = true)]
async fn a_plan_with_a_task_added_to_a_started_phase_does_not_fit() {
    let store = MemoryFactory::new();
    let ran = Ran::default();
    let run_id = failed_on_a_typo(&store, &ran).await;
    let mut grown = plan("prep", "make deploy", None);
    grown.phases[0].named_task("lint", TaskSpec::new("cmd").inputs("lint".into()), [0]);

    let problems = grown.fit_problems(&stored_queue(&store, &run_id).await);
    assert!(
        matches!(
            problems.as_slice(),
            [FitProblem::TaskCount {
                phases: 1,
                run: 3,
                planned: 4
            }]
        ),
        "{problems:?}"
    );
    for reload in [true, false] {
        let store = MemoryFactory::new();
        let ran = Ran::default();
        let run_id = failed_on_a_typo(&store, &ran).await;
        let mut plan = grown.clone();
        plan.reload = reload;
        let message = refused_adoption(&store, &ran, &run_id, plan).await;
        assert!(
            message.contains("the plan does not fit the adopted run: the run's 1 started phase(s) hold 3 task(s) but the plan's hold 4"),
            "{message}"
        );
    }
}

/// Review 52 F2: changed `after` edges are a plan that does not fit, not edges dropped.
#[tokio::test(start_paused = true)]
async fn a_plan_with_other_edges_does_not_fit() {
    let store = MemoryFactory::new();
    let ran = Ran::default();
    let run_id = failed_on_a_typo(&store, &ran).await;
    let mut rewired = plan("prep", "make deploy", None);
    rewired.phases[0].tasks[2].after = vec![0];

    let problems = rewired.fit_problems(&stored_queue(&store, &run_id).await);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let FitProblem::After { planned, run, .. } = &problems[0] else {
        panic!("expected After: {problems:?}");
    };
    assert_eq!(
        (planned.as_slice(), run.as_slice()),
        ([0].as_slice(), [1].as_slice())
    );
    let message = refused_adoption(&store, &ran, &run_id, rewired.reload()).await;
    assert!(
        message.contains("`notify` (kind `cmd`) waits for position(s) [0], but the run's task t2 there waits for position(s) [1]"),
        "{message}"
    );
    // The plan as it was still fits.
    assert!(
        plan("prep", "make deploy", None)
            .fit_problems(&stored_queue(&store, &run_id).await)
            .is_empty()
    );
}

/// Review 52 F5: the preflight refuses an attempt limit below the attempts a task used, as
/// the drive would, instead of approving it.
#[tokio::test(start_paused = true)]
async fn the_preflight_refuses_a_limit_below_the_attempts_used() {
    let store = MemoryFactory::new();
    let ran = Ran::default();
    let run_id = failed_on_a_typo(&store, &ran).await;
    // `deploy` failed after its one attempt; a limit of 0 leaves it none.
    let mut lowered = plan("prep", "make deploy", None);
    lowered.phases[0].tasks[1].spec.max_attempts = Some(0);
    let changes = lowered.reload_changes(
        &stored_queue(&store, &run_id).await,
        &QueueConfig::default(),
    );
    let deploy = changes
        .iter()
        .find(|c| c.name.as_deref() == Some("deploy"))
        .expect("deploy changes");
    assert!(!deploy.may_amend());
    assert_eq!(
        deploy.refusal().as_deref(),
        Some("the plan allows it 0 attempts; it could never run")
    );
    let message = refused_adoption(&store, &ran, &run_id, lowered.reload()).await;
    assert!(
        message.contains("task `deploy` (t1): the plan allows it 0 attempts"),
        "{message}"
    );
}
