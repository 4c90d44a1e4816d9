//! The verifier passes a clean run and catches each planted violation.

use cairn_checkpoint::{AuditAction, AuditRecord, Durability, RunStatus};
use cairn_crash::dag::Dag;
use cairn_crash::ledger::LedgerEntry;
use cairn_crash::verify::{self, RunEvidence};
use cairn_crash::worker::{self, Adapter, WorkerOptions};
use cairn_queue::{Event, Timestamp};

/// Drives one real run to the end (file adapter, no kills) and reads its evidence back.
fn clean_run(dir: &std::path::Path, seed: u64) -> (Dag, RunEvidence) {
    let options = WorkerOptions {
        dir: dir.to_path_buf(),
        adapter: Adapter::File,
        durability: Durability::Sync,
        seed,
        tasks: 40,
        max_work_us: 0,
        compact_every: 0,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(
        runtime.block_on(worker::run(&options)).unwrap(),
        worker::WorkerEnd::Completed
    );
    let evidence = runtime.block_on(verify::collect(&options)).unwrap();
    (options.dag(), evidence)
}

#[test]
fn a_clean_run_has_no_violations_and_no_re_executions() {
    let dir = tempfile::tempdir().unwrap();
    let (dag, evidence) = clean_run(dir.path(), 21);
    let found = verify::verify(&dag, &evidence);
    assert_eq!(found.violations(), 0, "{:#?}", found.problems);
    assert_eq!(found.tasks, 40);
    assert_eq!(found.re_executions, 0);
    assert_eq!(found.resumes, 0);
    // The worker wrote down every acknowledged completion, once.
    assert_eq!(evidence.acknowledged.len(), 40);
}

#[test]
fn an_acknowledged_completion_lost_and_run_again_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (dag, mut evidence) = clean_run(dir.path(), 29);
    let run_id = evidence.runs[0].run_id.clone();
    let (task, handoff) = evidence
        .events
        .iter()
        .find_map(|e| match e {
            Event::Completed {
                id,
                attempt: 1,
                handoff,
                ..
            } => Some((*id, handoff.clone())),
            _ => None,
        })
        .unwrap();
    // What a store that loses an acknowledged completion in a kill leaves: attempt 1's
    // completion was acknowledged (and is in the acknowledgement ledger), the store forgot
    // it, recovery found attempt 1 running, reset it (audited), and attempt 2 ran and
    // completed. Every other check explains this as a kill of an attempt in flight.
    let at = evidence
        .events
        .iter()
        .position(|e| matches!(e, Event::Completed { id, .. } if *id == task))
        .unwrap();
    evidence.events.splice(
        at..=at,
        [
            Event::Reset {
                id: task,
                at: Timestamp(1),
            },
            Event::Started {
                id: task,
                attempt: 2,
                at: Timestamp(1),
            },
            Event::Completed {
                id: task,
                attempt: 2,
                handoff,
                at: Timestamp(1),
            },
        ],
    );
    evidence.audit.push(
        AuditRecord::new(
            Timestamp(1),
            run_id.clone(),
            AuditAction::TaskReset,
            "reset",
        )
        .with_detail(serde_json::json!({ "task_id": task.0, "attempt": 1 })),
    );
    let mut rerun = evidence
        .ledger
        .entries
        .iter()
        .find(|e| e.task == task.0)
        .cloned()
        .unwrap();
    rerun.attempt = 2;
    evidence.ledger.entries.push(rerun);
    let acknowledged_once = evidence.acknowledged.clone();
    evidence
        .acknowledged
        .push(cairn_crash::ledger::Acknowledged {
            run: run_id.to_string(),
            task: task.0,
            attempt: 2,
        });

    let found = verify::verify(&dag, &evidence);
    assert_eq!(found.re_executions, 1, "{:#?}", found.problems);
    assert_eq!(found.lost, 1, "{:#?}", found.problems);
    assert_eq!(found.duplicate_completions, 1, "{:#?}", found.problems);

    // Even when the kill also took the second acknowledgement's line, the first one is
    // enough to show the loss.
    evidence.acknowledged = acknowledged_once;
    let found = verify::verify(&dag, &evidence);
    assert_eq!(found.lost, 1, "{:#?}", found.problems);
    assert_eq!(found.duplicate_completions, 0);

    // Without any acknowledgement the same evidence is a kill of attempt 1 in flight.
    evidence.acknowledged.retain(|ack| ack.task != task.0);
    assert_eq!(verify::verify(&dag, &evidence).violations(), 0);
}

#[test]
fn a_second_completion_record_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (dag, mut evidence) = clean_run(dir.path(), 22);
    let completed = evidence
        .events
        .iter()
        .find(|e| matches!(e, Event::Completed { .. }))
        .cloned()
        .unwrap();
    evidence.events.push(completed);
    let found = verify::verify(&dag, &evidence);
    assert_eq!(found.duplicate_completions, 1, "{:#?}", found.problems);
}

#[test]
fn a_lost_completion_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (dag, mut evidence) = clean_run(dir.path(), 23);
    // Drop the last completion (and the phase bookkeeping after it): its task stays running.
    let last = evidence
        .events
        .iter()
        .rposition(|e| matches!(e, Event::Completed { .. }))
        .unwrap();
    evidence.events.truncate(last);
    let found = verify::verify(&dag, &evidence);
    assert!(found.lost >= 1, "{:#?}", found.problems);
}

#[test]
fn a_child_spawned_more_often_than_the_dag_says_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (mut dag, evidence) = clean_run(dir.path(), 24);
    // Expect one child fewer than was enqueued: the real one now counts as spawned twice.
    let parent = dag
        .phases
        .iter_mut()
        .flatten()
        .find(|t| !t.behaviour.children.is_empty())
        .expect("the DAG has a parent");
    parent.behaviour.children.pop();
    let found = verify::verify(&dag, &evidence);
    assert_eq!(found.spawned_twice, 1, "{:#?}", found.problems);
}

#[test]
fn a_body_that_never_ran_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (dag, mut evidence) = clean_run(dir.path(), 25);
    let victim = evidence.ledger.entries[0].task;
    evidence.ledger.entries.retain(|e| e.task != victim);
    let found = verify::verify(&dag, &evidence);
    assert_eq!(found.lost, 1, "{:#?}", found.problems);
}

#[test]
fn a_re_execution_needs_a_task_reset_record() {
    let dir = tempfile::tempdir().unwrap();
    let (dag, mut evidence) = clean_run(dir.path(), 26);
    // A fail-first task completed at attempt 2. A second ledger line for attempt 2 is a
    // repeated attempt, which no reset can explain.
    let run_id = evidence.runs[0].run_id.clone();
    let Some(task) = evidence.events.iter().find_map(|e| match e {
        Event::Completed { id, attempt: 2, .. } => Some(*id),
        _ => None,
    }) else {
        panic!("seed 26 has a fail-first task");
    };
    let entry = evidence
        .ledger
        .entries
        .iter()
        .find(|e| e.task == task.0 && e.attempt == 2)
        .cloned()
        .unwrap();
    evidence.ledger.entries.push(entry);
    let found = verify::verify(&dag, &evidence);
    assert_eq!(found.unexplained_re_executions, 1, "{:#?}", found.problems);

    // A re-run of an earlier attempt of a task that was not planned to fail is explained
    // only by a TaskReset record.
    let (dag, mut evidence) = (dag, {
        evidence.ledger.entries.pop();
        evidence
    });
    let plain = evidence
        .events
        .iter()
        .find_map(|e| match e {
            Event::Completed { id, attempt: 1, .. } => Some(*id),
            _ => None,
        })
        .unwrap();
    // Pretend the plain task completed at attempt 2 after attempt 1 was interrupted.
    for event in &mut evidence.events {
        match event {
            Event::Started { id, attempt, .. } | Event::Completed { id, attempt, .. }
                if *id == plain =>
            {
                *attempt = 2;
            }
            _ => {}
        }
    }
    // Replay needs the attempt counter to climb through 1: insert a start and a reset.
    let first_start = evidence
        .events
        .iter()
        .position(|e| matches!(e, Event::Started { id, .. } if *id == plain))
        .unwrap();
    evidence.events.insert(
        first_start,
        Event::Reset {
            id: plain,
            at: Timestamp(1),
        },
    );
    evidence.events.insert(
        first_start,
        Event::Started {
            id: plain,
            attempt: 1,
            at: Timestamp(1),
        },
    );
    for entry in &mut evidence.ledger.entries {
        if entry.task == plain.0 {
            entry.attempt = 2;
        }
    }
    for ack in &mut evidence.acknowledged {
        if ack.task == plain.0 {
            ack.attempt = 2;
        }
    }
    evidence.ledger.entries.push(LedgerEntry {
        run: run_id.to_string(),
        task: plain.0,
        attempt: 1,
        key: format!("{run_id}/{plain}"),
        name: "re-run".to_owned(),
    });
    let unexplained = verify::verify(&dag, &evidence);
    assert_eq!(unexplained.re_executions, 1, "{:#?}", unexplained.problems);
    assert_eq!(unexplained.unexplained_re_executions, 1);

    evidence.audit.push(
        AuditRecord::new(Timestamp(1), run_id, AuditAction::TaskReset, "reset")
            .with_detail(serde_json::json!({ "task_id": plain.0, "attempt": 1 })),
    );
    let explained = verify::verify(&dag, &evidence);
    assert_eq!(explained.re_executions, 1);
    assert_eq!(explained.violations(), 0, "{:#?}", explained.problems);
}

#[test]
fn a_run_left_in_a_wrong_status_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (dag, mut evidence) = clean_run(dir.path(), 27);
    evidence.runs[0].status = RunStatus::Running;
    let found = verify::verify(&dag, &evidence);
    assert_eq!(found.other, 1, "{:#?}", found.problems);
}

#[test]
fn an_attempt_run_twice_is_explained_only_by_as_many_task_released_records() {
    let dir = tempfile::tempdir().unwrap();
    let (dag, mut evidence) = clean_run(dir.path(), 28);
    let run_id = evidence.runs[0].run_id.clone();
    // A graceful stop cut attempt 1 of a task off after its body wrote its ledger line;
    // released, it ran again as attempt 1.
    let entry = evidence
        .ledger
        .entries
        .iter()
        .find(|e| e.attempt == 1)
        .cloned()
        .unwrap();
    evidence.ledger.entries.push(entry.clone());
    let unexplained = verify::verify(&dag, &evidence);
    assert_eq!(
        unexplained.unexplained_re_executions, 1,
        "{:#?}",
        unexplained.problems
    );

    let released = AuditRecord::new(Timestamp(1), run_id, AuditAction::TaskReleased, "released")
        .with_detail(serde_json::json!({ "task_id": entry.task, "attempt": 1 }));
    evidence.audit.push(released.clone());
    let explained = verify::verify(&dag, &evidence);
    assert_eq!(explained.violations(), 0, "{:#?}", explained.problems);
    assert_eq!(explained.re_executions, 1);

    // One release explains one repeat, not two.
    evidence.ledger.entries.push(entry);
    let once_more = verify::verify(&dag, &evidence);
    assert_eq!(once_more.unexplained_re_executions, 1);
    evidence.audit.push(released);
    assert_eq!(verify::verify(&dag, &evidence).violations(), 0);
}

#[test]
fn a_fail_first_task_recorded_done_at_its_failing_attempt_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (dag, mut evidence) = clean_run(dir.path(), 26);
    // A fail-first task: attempt 1 failed on purpose, attempt 2 completed.
    let task = evidence
        .events
        .iter()
        .find_map(|e| match e {
            Event::Completed { id, attempt: 2, .. } => Some(*id),
            _ => None,
        })
        .expect("seed 26 has a fail-first task");
    // What a run that recorded the planned failure as a completion leaves: attempt 1 is the
    // only attempt, its body ran (the ledger line comes before the failure) and it is done.
    evidence.events.retain(|e| {
        !matches!(e, Event::Failed { id, attempt: 1, .. } if *id == task)
            && !matches!(e, Event::Started { id, attempt: 2, .. } if *id == task)
    });
    for event in &mut evidence.events {
        if let Event::Completed { id, attempt, .. } = event
            && *id == task
        {
            *attempt = 1;
        }
    }
    evidence
        .ledger
        .entries
        .retain(|e| !(e.task == task.0 && e.attempt == 2));
    for ack in &mut evidence.acknowledged {
        if ack.task == task.0 {
            ack.attempt = 1;
        }
    }
    let found = verify::verify(&dag, &evidence);
    assert_eq!(found.lost, 1, "{:#?}", found.problems);
    assert!(
        found
            .problems
            .iter()
            .any(|p| p.contains(&format!("task {task} is done at attempt 1"))),
        "{:#?}",
        found.problems
    );
}
