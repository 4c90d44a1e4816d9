//! The explicit operations: force, abandon, approval, resume by id, and their typed errors.

#[macro_use]
mod common;

use std::sync::Arc;

use cairn_checkpoint::fault::{FaultOp, FaultPlan, FaultTiming, FaultyFactory};
use cairn_checkpoint::{
    AuditAction, CheckpointerFactory, MemoryFactory, RunStatus, wall_clock_now,
};
use cairn_runs::{Decision, Error, ResumePolicy, ResumeReason, RunRequest};

use common::*;

type Store = Arc<dyn CheckpointerFactory>;

/// Acceptance 2: force starts a fresh run; the failed run's `meta.json` is unchanged byte
/// for byte, `load_meta` is equal, and it can still be resumed by id.
#[test]
fn force_starts_fresh_and_leaves_failed_record_byte_for_byte() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file_store = file_store(dir.path());
    let meta_path = file_store.run_dir(&id("f1")).join("meta.json");
    let store: Store = Arc::new(file_store);
    runtime().block_on(async {
        let before = failed(&*store, "f1", "site", "default", "build A", 10).await;
        let bytes_before = std::fs::read(&meta_path).expect("meta.json exists");
        let policy = ResumePolicy::new(Arc::clone(&store));

        let decision = policy
            .decide(&RunRequest::new("site", "default", "build B").force())
            .await
            .expect("decide succeeds");
        let Decision::Fresh(fresh) = decision else {
            panic!("expected Fresh, got {decision:?}");
        };
        assert_eq!(fresh.forced_past, Some(before.run_id.clone()));
        assert_eq!(fresh.input, "build B");
        assert_ne!(fresh.run_id, before.run_id);

        // Nothing is recorded before the fresh run exists.
        assert!(
            !audit_actions(&*store, &before.run_id)
                .await
                .contains(&AuditAction::ForcedFresh)
        );
        // The caller begins the fresh run, records that it began, and drives it (here: it
        // completes at once).
        let run = store
            .begin(fresh.meta(wall_clock_now()))
            .await
            .expect("the fresh run begins");
        policy
            .fresh_run_begun(&fresh)
            .await
            .expect("the force is recorded");
        run.complete().await.expect("it completes");
        drop(run);

        assert_eq!(
            std::fs::read(&meta_path).expect("meta.json still exists"),
            bytes_before,
            "the failed run's meta.json must not change"
        );
        assert_eq!(meta(&*store, &before.run_id).await, before);
        let audit = store.read_audit(&before.run_id).await.expect("audit reads");
        let forced = audit
            .iter()
            .find(|r| r.action == AuditAction::ForcedFresh)
            .expect("the force is audited on the failed run");
        assert_eq!(forced.detail["new_run_id"], fresh.run_id.as_str());

        // Still resumable by id, re-running its own input.
        let resumed = policy.resume(&before.run_id).await.expect("resume by id");
        assert_eq!(resumed.meta.input, "build A");
        assert_eq!(resumed.meta.lease_epoch, before.lease_epoch + 1);
    });
}

/// Review 44 F9: a forced run whose `begin` fails (a full disk, a taken id...) never
/// existed, so the failed run it was forced past gains no `ForcedFresh` record naming it, and
/// a plain request still asks about the failed run. The force that then succeeds is recorded.
async fn a_force_whose_begin_fails_records_nothing_and_the_failed_run_still_asks(store: Store) {
    let before = failed(&*store, "f1", "site", "default", "build A", 10).await;
    let plan = FaultPlan::new();
    let faulty: Store = Arc::new(FaultyFactory::new(Arc::clone(&store), plan.clone()));
    let policy = ResumePolicy::new(Arc::clone(&faulty));
    let forced = RunRequest::new("site", "default", "build B").force();

    let Decision::Fresh(fresh) = policy.decide(&forced).await.expect("decide") else {
        panic!("force starts fresh");
    };
    plan.fail_next(FaultOp::Begin, FaultTiming::Before);
    faulty
        .begin(fresh.meta(wall_clock_now()))
        .await
        .expect_err("the injected begin failure");
    // A host that records anyway is refused: the fresh run does not exist.
    assert!(matches!(
        policy.fresh_run_begun(&fresh).await,
        Err(Error::NotFound { run_id }) if run_id == fresh.run_id
    ));
    assert!(
        !audit_actions(&*store, &before.run_id)
            .await
            .contains(&AuditAction::ForcedFresh),
        "no record names a run that never began"
    );
    let plain = RunRequest::new("site", "default", "build B");
    assert!(matches!(
        policy.decide(&plain).await.expect("decide"),
        Decision::FailedPrompt(ref prompt) if prompt.run_id == before.run_id
    ));

    let Decision::Fresh(fresh) = policy.decide(&forced).await.expect("decide") else {
        panic!("force starts fresh");
    };
    let run = faulty
        .begin(fresh.meta(wall_clock_now()))
        .await
        .expect("the fresh run begins");
    policy
        .fresh_run_begun(&fresh)
        .await
        .expect("the force is recorded");
    drop(run);
    let audit = store.read_audit(&before.run_id).await.expect("audit reads");
    let records: Vec<_> = audit
        .iter()
        .filter(|r| r.action == AuditAction::ForcedFresh)
        .collect();
    assert_eq!(records.len(), 1, "{audit:?}");
    assert_eq!(records[0].detail["new_run_id"], fresh.run_id.as_str());
    assert_eq!(records[0].detail["status"], "failed");
}
on_both_stores!(a_force_whose_begin_fails_records_nothing_and_the_failed_run_still_asks);

/// An abandon whose audit record cannot be written still took effect: the error says so,
/// carries the abandon, and the run is cancelled for every later request.
async fn an_abandon_whose_audit_write_fails_says_it_took_effect(store: Store) {
    let before = failed(&*store, "f1", "site", "default", "build A", 10).await;
    let plan = FaultPlan::new();
    let faulty: Store = Arc::new(FaultyFactory::new(Arc::clone(&store), plan.clone()));
    let policy = ResumePolicy::new(Arc::clone(&faulty));
    plan.fail_next(FaultOp::AppendAudit, FaultTiming::Before);

    let error = policy
        .abandon(&before.run_id)
        .await
        .expect_err("the injected audit failure");
    let Error::AbandonedNotAudited { abandoned, source } = &error else {
        panic!("expected AbandonedNotAudited, got {error:?}");
    };
    assert_eq!(abandoned.meta.run_id, before.run_id);
    assert_eq!(abandoned.meta.status, RunStatus::Cancelled);
    assert_eq!(abandoned.previous_status, RunStatus::Failed);
    assert!(source.to_string().contains("injected"), "{source}");
    assert!(
        error
            .to_string()
            .contains("was abandoned (it is cancelled now)"),
        "{error}"
    );
    let meta = store
        .load_meta(&before.run_id)
        .await
        .expect("meta reads")
        .expect("the run");
    assert_eq!(meta.status, RunStatus::Cancelled);
    assert!(
        !audit_actions(&*store, &before.run_id)
            .await
            .contains(&AuditAction::Abandoned)
    );
    // Abandoned for good: a plain request starts fresh instead of asking about it.
    let plain = RunRequest::new("site", "default", "build B");
    assert!(matches!(
        policy.decide(&plain).await.expect("decide"),
        Decision::Fresh(_)
    ));
}
on_both_stores!(an_abandon_whose_audit_write_fails_says_it_took_effect);

/// A plain fresh run has nothing to record.
#[test]
fn recording_a_plain_fresh_run_writes_nothing() {
    let store = MemoryFactory::new();
    let policy = ResumePolicy::new(store.clone());
    runtime().block_on(async {
        let Decision::Fresh(fresh) = policy
            .decide(&RunRequest::new("site", "default", "A"))
            .await
            .expect("decide")
        else {
            panic!("nothing ran yet");
        };
        assert_eq!(fresh.forced_past_status, None);
        // Not even begun: nothing to check, nothing to write.
        policy.fresh_run_begun(&fresh).await.expect("a no-op");
        assert!(audit_actions(&store, &fresh.run_id).await.is_empty());
    });
}

/// Acceptance 3: abandon makes the failed run cancelled; then a fresh run starts with no
/// decision to make.
async fn abandon_then_fresh_without_decision(store: Store) {
    let before = failed(&*store, "a1", "site", "default", "build A", 10).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let abandoned = policy.abandon(&before.run_id).await.expect("abandon");
    assert_eq!(abandoned.previous_status, RunStatus::Failed);
    assert_eq!(abandoned.meta.status, RunStatus::Cancelled);
    assert_eq!(
        meta(&*store, &before.run_id).await.status,
        RunStatus::Cancelled
    );
    assert!(
        audit_actions(&*store, &before.run_id)
            .await
            .contains(&AuditAction::Abandoned)
    );

    let decision = policy
        .decide(&RunRequest::new("site", "default", "build B"))
        .await
        .expect("decide succeeds");
    assert!(
        matches!(decision, Decision::Fresh(ref f) if f.forced_past.is_none() && f.input == "build B"),
        "{decision:?}"
    );
}
on_both_stores!(abandon_then_fresh_without_decision);

/// Abandon works on a paused run too.
async fn abandon_paused_run(store: Store) {
    let before = paused(&*store, "p1", "site", "default", "deploy", 10).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let abandoned = policy.abandon(&before.run_id).await.expect("abandon");
    assert_eq!(abandoned.previous_status, RunStatus::Paused);
    assert_eq!(
        meta(&*store, &before.run_id).await.status,
        RunStatus::Cancelled
    );
}
on_both_stores!(abandon_paused_run);

/// Acceptance 4: approving a paused run resumes it with no decision to make.
async fn approval_resumes_paused_run(store: Store) {
    let before = paused(&*store, "p1", "deploy", "prod", "v1", 10).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let decision = policy
        .decide(&RunRequest::new("deploy", "prod", "").approve(before.run_id.clone()))
        .await
        .expect("decide succeeds");
    let Decision::Resume(resumed) = decision else {
        panic!("expected Resume, got {decision:?}");
    };
    assert_eq!(resumed.reason, ResumeReason::Approved);
    assert_eq!(resumed.previous_status, RunStatus::Paused);
    assert_eq!(resumed.meta.lease_epoch, before.lease_epoch + 1);
    assert_eq!(
        meta(&*store, &before.run_id).await.status,
        RunStatus::Running
    );
    assert!(
        audit_actions(&*store, &before.run_id)
            .await
            .contains(&AuditAction::Approved)
    );
    // An approval used twice does not claim the run again.
    let twice = policy
        .decide(&RunRequest::new("deploy", "prod", "").approve(before.run_id.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            twice,
            Error::NotResumable {
                current: RunStatus::Running,
                ..
            }
        ),
        "{twice:?}"
    );
}
on_both_stores!(approval_resumes_paused_run);

/// Acceptance 4, regression guard: the paused run was marked failed after the approval was
/// asked for; the approval still resumes it and never hits the failed-run prompt, even
/// with another failed run in the same scope.
async fn approval_of_run_marked_failed_never_prompts(store: Store) {
    let before = paused(&*store, "p1", "deploy", "prod", "v1", 10).await;
    store
        .compare_and_swap_status(&before.run_id, RunStatus::Paused, RunStatus::Failed)
        .await
        .expect("the store answers")
        .expect("it was paused");
    failed(&*store, "f2", "deploy", "prod", "v0", 20).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let decision = policy
        .decide(&RunRequest::new("deploy", "prod", "").approve(before.run_id.clone()))
        .await
        .expect("decide succeeds");
    let Decision::Resume(resumed) = decision else {
        panic!("expected Resume, got {decision:?}");
    };
    assert_eq!(resumed.meta.run_id, before.run_id);
    assert_eq!(resumed.reason, ResumeReason::Approved);
    assert_eq!(resumed.previous_status, RunStatus::Failed);
    assert!(
        !audit_actions(&*store, &before.run_id)
            .await
            .contains(&AuditAction::FailedResumePrompted)
    );
}
on_both_stores!(approval_of_run_marked_failed_never_prompts);

/// An approval for a run of another workflow or scope, or for an unknown run, is refused.
async fn approval_must_name_a_run_of_this_request(store: Store) {
    let other = paused(&*store, "p1", "deploy", "staging", "v1", 10).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let err = policy
        .decide(&RunRequest::new("deploy", "prod", "").approve(other.run_id.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ApprovalMismatch { .. }), "{err:?}");
    assert_eq!(meta(&*store, &other.run_id).await, other);

    let err = policy
        .decide(&RunRequest::new("deploy", "prod", "").approve(id("nope")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}
on_both_stores!(approval_must_name_a_run_of_this_request);

/// Acceptance 5: resume by id resumes the prior run: no prompt loop and no fresh run.
async fn resume_by_id_resumes_prior_run(store: Store) {
    let before = failed(&*store, "f1", "site", "default", "build A", 10).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let resumed = policy.resume(&before.run_id).await.expect("resume by id");
    assert_eq!(resumed.reason, ResumeReason::ById);
    assert_eq!(resumed.previous_status, RunStatus::Failed);
    assert_eq!(resumed.meta.run_id, before.run_id);
    assert_eq!(resumed.meta.input, "build A");
    assert_eq!(resumed.meta.status, RunStatus::Running);
    assert_eq!(resumed.meta.lease_epoch, before.lease_epoch + 1);
    assert_eq!(resumed.meta.finished_at, None);
    assert_eq!(run_count(&*store).await, 1, "no fresh run");
    assert!(
        audit_actions(&*store, &before.run_id)
            .await
            .contains(&AuditAction::ResumedById)
    );

    // The caller drives it (holds its writer): a new request sees it live, not failed.
    let opened = store
        .open(&before.run_id)
        .await
        .expect("open succeeds")
        .expect("the run exists");
    let decision = policy
        .decide(&RunRequest::new("site", "default", "build B"))
        .await
        .expect("decide succeeds");
    assert!(matches!(decision, Decision::Live(_)), "{decision:?}");
    opened.checkpointer.complete().await.expect("it completes");
    drop(opened);

    let decision = policy
        .decide(&RunRequest::new("site", "default", "build B"))
        .await
        .expect("decide succeeds");
    assert!(matches!(decision, Decision::Fresh(_)), "{decision:?}");
    assert_eq!(run_count(&*store).await, 1);
}
on_both_stores!(resume_by_id_resumes_prior_run);

/// Resume by id refuses running and terminal runs, and unknown ids, with typed errors.
async fn resume_by_id_refusals(store: Store) {
    let done = completed(&*store, "c1", "site", "default", 10).await;
    let interrupted_run = interrupted(&*store, "i1", "site", "other", "in", 11).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let err = policy.resume(&done.run_id).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotResumable {
                current: RunStatus::Completed,
                ..
            }
        ),
        "{err:?}"
    );
    let err = policy.resume(&interrupted_run.run_id).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotResumable {
                current: RunStatus::Running,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        meta(&*store, &interrupted_run.run_id).await,
        interrupted_run
    );
    let err = policy.resume(&id("missing")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}
on_both_stores!(resume_by_id_refusals);

/// A paused or failed run whose writer has not let go yet: resume by id and an approval say
/// so (`HeldByWriter`, naming the holder) instead of "cannot be resumed: it is paused", claim
/// nothing, and the same resume wins once the writer is gone.
async fn a_run_still_held_by_its_writer_is_refused_as_held(store: Store) {
    let policy = ResumePolicy::new(Arc::clone(&store));
    let paused_writer = begin(&*store, "h1", "deploy", "prod", "v1", 10).await;
    let paused_meta = store
        .compare_and_swap_status(&id("h1"), RunStatus::Running, RunStatus::Paused)
        .await
        .expect("the store answers")
        .expect("the run was running");
    let failed_writer = begin(&*store, "h2", "deploy", "stage", "v1", 11).await;
    let failed_meta = failed_writer
        .fail(&cairn_checkpoint::RunError::new("task_failed", "boom"))
        .await
        .expect("fail succeeds");

    for (before, status) in [
        (&paused_meta, RunStatus::Paused),
        (&failed_meta, RunStatus::Failed),
    ] {
        let err = policy.resume(&before.run_id).await.unwrap_err();
        let Error::HeldByWriter {
            run_id,
            current,
            holder,
        } = &err
        else {
            panic!("expected HeldByWriter, got {err:?}");
        };
        assert_eq!((run_id, *current), (&before.run_id, status));
        assert!(!holder.is_empty(), "the holder is named: {err}");
        assert!(
            err.to_string().contains("live writer still holds it"),
            "{err}"
        );
        // Nothing was claimed: same status, same epoch.
        assert_eq!(&meta(&*store, &before.run_id).await, before);
    }
    let err = policy
        .decide(&RunRequest::new("deploy", "prod", "").approve(paused_meta.run_id.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::HeldByWriter {
                current: RunStatus::Paused,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(meta(&*store, &paused_meta.run_id).await, paused_meta);

    drop(paused_writer);
    drop(failed_writer);
    for before in [&paused_meta, &failed_meta] {
        let resumed = policy
            .resume(&before.run_id)
            .await
            .expect("the writer let go");
        assert_eq!(resumed.meta.lease_epoch, before.lease_epoch + 1);
    }
}
on_both_stores!(a_run_still_held_by_its_writer_is_refused_as_held);

/// Acceptance 6: abandon of a completed or a cancelled run is the typed already-terminal
/// error, and changes nothing.
async fn abandon_terminal_runs_is_already_terminal(store: Store) {
    let done = completed(&*store, "c1", "site", "default", 10).await;
    let gone = failed(&*store, "x1", "site", "default", "in", 20).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    policy.abandon(&gone.run_id).await.expect("first abandon");
    let gone = meta(&*store, &gone.run_id).await;

    let err = policy.abandon(&done.run_id).await.unwrap_err();
    assert!(
        matches!(err, Error::AlreadyTerminal { status: RunStatus::Completed, ref run_id } if *run_id == done.run_id),
        "{err:?}"
    );
    let err = policy.abandon(&gone.run_id).await.unwrap_err();
    assert!(
        matches!(err, Error::AlreadyTerminal { status: RunStatus::Cancelled, ref run_id } if *run_id == gone.run_id),
        "{err:?}"
    );
    assert_eq!(meta(&*store, &done.run_id).await, done);
    assert_eq!(meta(&*store, &gone.run_id).await, gone);

    let err = policy.abandon(&id("missing")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}
on_both_stores!(abandon_terminal_runs_is_already_terminal);

/// A run nobody drives whose last owner is still alive (this process: as a resumer that
/// claimed it and has not opened it yet would be) is not abandoned.
async fn abandon_of_an_unheld_run_whose_owner_is_alive_is_refused(store: Store) {
    let before = interrupted(&*store, "i1", "site", "default", "in", 10).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let err = policy.abandon(&before.run_id).await.unwrap_err();
    assert!(
        matches!(err, Error::StillRunning { live: false, .. }),
        "{err:?}"
    );
    assert_eq!(meta(&*store, &before.run_id).await, before);
}
on_both_stores!(abandon_of_an_unheld_run_whose_owner_is_alive_is_refused);

/// A store failure is a typed `Error::Storage`, never a decision: a request whose scope
/// holds unparseable metadata neither prompts nor starts fresh.
#[test]
fn unreadable_metadata_is_a_storage_error() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file_store = file_store(dir.path());
    let meta_path = file_store.run_dir(&id("f1")).join("meta.json");
    let store: Store = Arc::new(file_store);
    runtime().block_on(async {
        failed(&*store, "f1", "site", "default", "in", 10).await;
        std::fs::write(&meta_path, b"{ not json").expect("meta.json is writable");
        let policy = ResumePolicy::new(Arc::clone(&store));
        let err = policy.resume(&id("f1")).await.unwrap_err();
        assert!(matches!(err, Error::Storage(_)), "{err:?}");
        let err = policy.abandon(&id("f1")).await.unwrap_err();
        assert!(matches!(err, Error::Storage(_)), "{err:?}");
    });
}
