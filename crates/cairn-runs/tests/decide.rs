//! The lookup table of `ResumePolicy::decide`, run against the memory and the file adapter.

#[macro_use]
mod common;

use std::sync::Arc;

use cairn_checkpoint::{
    AuditAction, CheckpointerFactory, MemoryFactory, RunError, RunStatus, wall_clock_now,
};
use cairn_runs::{
    CUT_MARKER, Decision, Error, PREVIEW_CHARS, ResumePolicy, ResumeReason, RunRequest,
};

use common::*;

type Store = Arc<dyn CheckpointerFactory>;

async fn no_prior_run_starts_fresh(store: Store) {
    let policy = ResumePolicy::new(Arc::clone(&store));
    let decision = policy
        .decide(&RunRequest::new("site", "default", "build A"))
        .await
        .expect("decide succeeds");
    let Decision::Fresh(fresh) = decision else {
        panic!("expected Fresh, got {decision:?}");
    };
    assert_eq!(fresh.forced_past, None);
    assert_eq!(fresh.input, "build A");
    assert_eq!(
        run_count(&*store).await,
        0,
        "decide must not begin anything"
    );
    // The decision's id is usable for `begin` as is.
    store
        .begin(fresh.meta(wall_clock_now()))
        .await
        .expect("the fresh id begins");
}
on_both_stores!(no_prior_run_starts_fresh);

/// Acceptance 1: a request that finds a failed run gets the prompt; nothing runs; the new
/// input is kept.
async fn failed_run_prompts_and_keeps_new_input(store: Store) {
    let before = failed(&*store, "a1", "site", "default", "build task A", 10).await;
    let policy = ResumePolicy::new(Arc::clone(&store));

    let decision = policy
        .decide(&RunRequest::new("site", "default", "build task B"))
        .await
        .expect("decide succeeds");
    let Decision::FailedPrompt(prompt) = decision else {
        panic!("expected FailedPrompt, got {decision:?}");
    };
    assert_eq!(prompt.run_id, before.run_id);
    assert_eq!(prompt.new_input, "build task B");
    assert_eq!(prompt.prior_input.text, "build task A");
    assert!(!prompt.prior_input.cut);
    assert_eq!(prompt.failed_at, before.finished_at);
    assert!(prompt.failed_at.is_some());
    assert_eq!(
        prompt.error,
        Some(RunError::new("task_failed", "a1 exited with 2"))
    );

    // Nothing was executed: no new run, the failed run untouched.
    assert_eq!(run_count(&*store).await, 1);
    assert_eq!(meta(&*store, &before.run_id).await, before);
    assert_eq!(
        audit_actions(&*store, &before.run_id)
            .await
            .iter()
            .filter(|a| **a == AuditAction::FailedResumePrompted)
            .count(),
        1
    );

    // Asking again prompts again (and audits again): the failed run never silently resumes.
    let again = policy
        .decide(&RunRequest::new("site", "default", "build task C"))
        .await
        .expect("decide succeeds");
    assert!(matches!(again, Decision::FailedPrompt(ref p) if p.new_input == "build task C"));
    assert_eq!(
        meta(&*store, &before.run_id).await.status,
        RunStatus::Failed
    );
}
on_both_stores!(failed_run_prompts_and_keeps_new_input);

/// The prompt's preview of the failed run's input is cut at 160 characters, on a char
/// boundary, with a marker.
async fn prompt_preview_is_cut_on_char_boundary(store: Store) {
    let long_input: String = "ü日🦀".repeat(100);
    failed(&*store, "p1", "site", "default", &long_input, 10).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let decision = policy
        .decide(&RunRequest::new("site", "default", "new"))
        .await
        .expect("decide succeeds");
    let Decision::FailedPrompt(prompt) = decision else {
        panic!("expected FailedPrompt, got {decision:?}");
    };
    assert!(prompt.prior_input.cut);
    assert_eq!(prompt.prior_input.text.chars().count(), PREVIEW_CHARS);
    assert_eq!(prompt.prior_input.total_chars, 300);
    assert!(long_input.starts_with(&prompt.prior_input.text));
    assert!(prompt.prior_input.to_string().ends_with(CUT_MARKER));
}
on_both_stores!(prompt_preview_is_cut_on_char_boundary);

/// Interrupted (running, no live lock holder): resumed automatically, claimed with a new
/// epoch, and audited as recovered.
async fn interrupted_run_resumes_automatically(store: Store) {
    let before = interrupted(&*store, "i1", "site", "default", "build A", 10).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let decision = policy
        .decide(&RunRequest::new("site", "default", "build B"))
        .await
        .expect("decide succeeds");
    let Decision::Resume(resumed) = decision else {
        panic!("expected Resume, got {decision:?}");
    };
    assert_eq!(resumed.reason, ResumeReason::Interrupted);
    assert_eq!(resumed.meta.run_id, before.run_id);
    assert_eq!(resumed.meta.lease_epoch, before.lease_epoch + 1);
    assert_eq!(resumed.meta.input, "build A");
    assert_eq!(resumed.requested_input.as_deref(), Some("build B"));
    assert_eq!(meta(&*store, &before.run_id).await.lease_epoch, 2);
    assert!(
        audit_actions(&*store, &before.run_id)
            .await
            .contains(&AuditAction::Recovered)
    );
    assert_eq!(run_count(&*store).await, 1);
}
on_both_stores!(interrupted_run_resumes_automatically);

/// A running run whose lock a live writer holds: a distinct decision, and nothing changes
/// (no claim, no epoch bump, no second run) — even when forced.
async fn live_run_is_never_given_a_second_writer(store: Store) {
    let writer = begin(&*store, "l1", "site", "default", "build A", 10).await;
    let before = meta(&*store, writer.run_id()).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    for request in [
        RunRequest::new("site", "default", "build B"),
        RunRequest::new("site", "default", "build B").force(),
    ] {
        let decision = policy.decide(&request).await.expect("decide succeeds");
        let Decision::Live(live) = decision else {
            panic!("expected Live, got {decision:?}");
        };
        assert_eq!(live.run_id, before.run_id);
        assert_eq!(live.lease_epoch, 1);
    }
    assert_eq!(meta(&*store, &before.run_id).await, before);
    assert_eq!(run_count(&*store).await, 1);
    // Abandoning it is refused too, and says it is live.
    let err = policy.abandon(&before.run_id).await.unwrap_err();
    assert!(
        matches!(err, Error::StillRunning { live: true, .. }),
        "{err:?}"
    );
    drop(writer);
}
on_both_stores!(live_run_is_never_given_a_second_writer);

/// Completed and cancelled runs never match.
async fn completed_and_cancelled_never_match(store: Store) {
    completed(&*store, "c1", "site", "default", 10).await;
    let cancelled = failed(&*store, "x1", "site", "default", "in", 20).await;
    store
        .compare_and_swap_status(&cancelled.run_id, RunStatus::Failed, RunStatus::Cancelled)
        .await
        .expect("the store answers")
        .expect("it was failed");
    let policy = ResumePolicy::new(Arc::clone(&store));
    let decision = policy
        .decide(&RunRequest::new("site", "default", "go"))
        .await
        .expect("decide succeeds");
    assert!(
        matches!(decision, Decision::Fresh(ref f) if f.forced_past.is_none()),
        "{decision:?}"
    );
}
on_both_stores!(completed_and_cancelled_never_match);

/// Runs of another workflow or another scope never match.
async fn other_workflow_or_scope_never_matches(store: Store) {
    failed(&*store, "o1", "other", "default", "in", 10).await;
    failed(&*store, "o2", "site", "elsewhere", "in", 11).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let decision = policy
        .decide(&RunRequest::new("site", "default", "go"))
        .await
        .expect("decide succeeds");
    assert!(matches!(decision, Decision::Fresh(_)), "{decision:?}");
}
on_both_stores!(other_workflow_or_scope_never_matches);

/// A failed run older than a finished run of the same scope is superseded: no prompt. It
/// still resumes by id.
async fn newer_finished_run_supersedes_failed_one(store: Store) {
    let old = failed(&*store, "f1", "site", "default", "old", 10).await;
    completed(&*store, "c2", "site", "default", 20).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let decision = policy
        .decide(&RunRequest::new("site", "default", "go"))
        .await
        .expect("decide succeeds");
    assert!(matches!(decision, Decision::Fresh(_)), "{decision:?}");
    let resumed = policy.resume(&old.run_id).await.expect("resume by id");
    assert_eq!(resumed.meta.input, "old");
}
on_both_stores!(newer_finished_run_supersedes_failed_one);

/// A paused run without its approval: nothing starts, the caller is told; forcing starts
/// fresh and leaves it paused.
async fn paused_run_waits_for_its_approval(store: Store) {
    let before = paused(&*store, "w1", "site", "default", "deploy v1", 10).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let decision = policy
        .decide(&RunRequest::new("site", "default", "deploy v2"))
        .await
        .expect("decide succeeds");
    let Decision::AwaitingApproval(waiting) = decision else {
        panic!("expected AwaitingApproval, got {decision:?}");
    };
    assert_eq!(waiting.run_id, before.run_id);
    assert_eq!(waiting.new_input, "deploy v2");
    assert_eq!(meta(&*store, &before.run_id).await, before);

    let forced = policy
        .decide(&RunRequest::new("site", "default", "deploy v2").force())
        .await
        .expect("decide succeeds");
    assert!(
        matches!(forced, Decision::Fresh(ref f) if f.forced_past.as_ref() == Some(&before.run_id)),
        "{forced:?}"
    );
    assert_eq!(meta(&*store, &before.run_id).await, before);
}
on_both_stores!(paused_run_waits_for_its_approval);
