//! A run quarantined before it finished: a plain request must not start fresh past it (its
//! done tasks would run again) until it is abandoned or a run is forced past it. Run against
//! the memory and the file adapter.

#[macro_use]
mod common;

use std::sync::Arc;

use cairn_checkpoint::{AuditAction, CheckpointerFactory, MemoryFactory, RunFilter, RunStatus};
use cairn_runs::{CommandRenderer, Decision, Error, ResumePolicy, RunRequest, WayForward};

use common::*;

type Store = Arc<dyn CheckpointerFactory>;

fn request(input: &str) -> RunRequest {
    RunRequest::new("site", "default", input)
}

/// Moves run `run` aside, as `open` does with state it cannot use.
async fn quarantine(store: &dyn CheckpointerFactory, run: &str) -> cairn_checkpoint::Quarantined {
    store.quarantine(&id(run), "bad").await.expect("quarantine")
}

async fn decide(policy: &ResumePolicy, request: &RunRequest) -> Decision {
    policy.decide(request).await.expect("decide succeeds")
}

/// The case that used to start fresh silently: an interrupted run whose state is moved
/// aside (as `open` does with damaged state) leaves nothing listed for its scope.
async fn an_interrupted_run_quarantined_asks_before_a_fresh_run(store: Store) {
    interrupted(&*store, "lost", "site", "default", "build A", 10).await;
    let moved = store
        .quarantine(&id("lost"), "journal.log is damaged at byte 96")
        .await
        .expect("quarantine");
    let policy = ResumePolicy::new(Arc::clone(&store));
    for _ in 0..2 {
        let Decision::QuarantinePrompt(prompt) = decide(&policy, &request("build B")).await else {
            panic!("a plain request must ask, not start fresh");
        };
        assert_eq!(prompt.run_id, id("lost"));
        assert_eq!(prompt.status, RunStatus::Running);
        assert_eq!(prompt.location, moved.location);
        assert!(prompt.reason.contains("damaged at byte 96"), "{prompt:?}");
        assert_eq!(prompt.prior_input.text, "build A");
        assert_eq!(prompt.new_input, "build B");
        let ways = prompt.ways_forward();
        assert!(
            matches!(&ways[0], WayForward::AbandonThenRun { run_id, .. } if *run_id == id("lost"))
        );
        assert!(
            matches!(&ways[1], WayForward::ForceFreshPastQuarantine { past, .. } if *past == id("lost"))
        );
        let text = prompt.render(&CommandRenderer::new("cairn").workflow("site.toml"));
        assert!(text.contains(&moved.location), "{text}");
        assert!(
            text.contains("cairn abandon lost && cairn run site.toml --input \"build B\""),
            "{text}"
        );
        assert!(
            !text.contains("cairn resume"),
            "a quarantined run cannot be resumed: {text}"
        );
        let markdown = prompt.render_markdown(&CommandRenderer::new("cairn"));
        assert!(markdown.contains("**quarantined**"), "{markdown}");
    }
    assert_eq!(run_count(&*store).await, 0, "nothing was begun");
}
on_both_stores!(an_interrupted_run_quarantined_asks_before_a_fresh_run);

async fn abandoning_the_quarantined_run_lets_a_plain_request_start_fresh(store: Store) {
    failed(&*store, "lost", "site", "default", "build A", 10).await;
    let moved = quarantine(&*store, "lost").await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    match policy.abandon(&id("lost")).await {
        Err(Error::Quarantined { run_id, location }) => {
            assert_eq!(run_id, id("lost"));
            assert_eq!(location, moved.location);
        }
        other => panic!("abandon of a quarantined id: {other:?}"),
    }
    let settled = policy
        .abandon_quarantined(&id("lost"))
        .await
        .expect("abandon_quarantined");
    assert_eq!(settled.location, moved.location);
    let audit = store.read_audit(&id("lost")).await.expect("audit");
    let record = audit.last().expect("a record");
    assert_eq!(record.action, AuditAction::Abandoned);
    assert_eq!(record.detail["quarantined"], true);
    assert_eq!(record.detail["location"], moved.location.as_str());
    assert_eq!(record.detail["previous_status"], "failed");
    match policy.abandon_quarantined(&id("lost")).await {
        Err(Error::QuarantineAbandoned { run_id, at }) => {
            assert_eq!(run_id, id("lost"));
            assert_eq!(at, record.at);
        }
        other => panic!("a second abandon: {other:?}"),
    }
    let Decision::Fresh(fresh) = decide(&policy, &request("build B")).await else {
        panic!("a settled quarantine no longer asks");
    };
    assert_eq!(fresh.forced_past, None);
    assert!(
        store
            .list_quarantined()
            .await
            .expect("list")
            .iter()
            .any(|e| e.run_id == id("lost")),
        "the quarantined state is kept"
    );
    assert!(matches!(
        policy.abandon_quarantined(&id("never-was")).await,
        Err(Error::NotFound { .. })
    ));
}
on_both_stores!(abandoning_the_quarantined_run_lets_a_plain_request_start_fresh);

async fn force_starts_fresh_past_it_and_the_finished_run_supersedes_it(store: Store) {
    paused(&*store, "lost", "site", "default", "build A", 10).await;
    quarantine(&*store, "lost").await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let Decision::Fresh(fresh) = decide(&policy, &request("build B").force()).await else {
        panic!("force starts fresh");
    };
    assert_eq!(fresh.forced_past, Some(id("lost")));
    assert_eq!(fresh.forced_past_status, Some(RunStatus::Paused));
    // The forced run is newer; while it runs or once it finished, it decides.
    let run = store
        .begin(fresh.meta(cairn_queue::Timestamp(20)))
        .await
        .expect("begin");
    policy.fresh_run_begun(&fresh).await.expect("recorded");
    let actions = audit_actions(&*store, &id("lost")).await;
    assert_eq!(actions.last(), Some(&AuditAction::ForcedFresh));
    run.complete().await.expect("complete");
    drop(run);
    let Decision::Fresh(next) = decide(&policy, &request("build C")).await else {
        panic!("a newer finished run supersedes the quarantined one");
    };
    assert_eq!(next.forced_past, None);
}
on_both_stores!(force_starts_fresh_past_it_and_the_finished_run_supersedes_it);

/// Review 44 F9: a `ForcedFresh` record settles a quarantined run, so a force whose fresh run
/// never began (its `begin` failed) must not write one: the quarantine still asks, and is
/// settled only by the force that began. Even once that run is pruned, it no longer asks.
async fn a_force_that_never_began_does_not_settle_the_quarantine(store: Store) {
    interrupted(&*store, "lost", "site", "default", "build A", 10).await;
    quarantine(&*store, "lost").await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let Decision::Fresh(never) = decide(&policy, &request("build B").force()).await else {
        panic!("force starts fresh");
    };
    // The host's `begin` failed: the run does not exist, and the record is refused.
    assert!(matches!(
        policy.fresh_run_begun(&never).await,
        Err(Error::NotFound { .. })
    ));
    assert!(
        !audit_actions(&*store, &id("lost"))
            .await
            .contains(&AuditAction::ForcedFresh)
    );
    assert_eq!(
        policy.quarantined_runs().await.expect("list")[0].settled_at,
        None
    );
    assert!(matches!(
        decide(&policy, &request("build B")).await,
        Decision::QuarantinePrompt(ref prompt) if prompt.run_id == id("lost")
    ));

    let Decision::Fresh(fresh) = decide(&policy, &request("build B").force()).await else {
        panic!("force starts fresh");
    };
    let run = store
        .begin(fresh.meta(cairn_queue::Timestamp(20)))
        .await
        .expect("begin");
    policy.fresh_run_begun(&fresh).await.expect("recorded");
    run.complete().await.expect("complete");
    drop(run);
    assert!(
        policy.quarantined_runs().await.expect("list")[0]
            .settled_at
            .is_some()
    );
    store
        .remove_terminal(&fresh.run_id)
        .await
        .expect("the forced run is pruned");
    let Decision::Fresh(next) = decide(&policy, &request("build C")).await else {
        panic!("a settled quarantine no longer asks");
    };
    assert_eq!(next.forced_past, None);
}
on_both_stores!(a_force_that_never_began_does_not_settle_the_quarantine);

async fn only_unfinished_newest_runs_of_the_same_scope_ask(store: Store) {
    // Quarantined after it completed: nothing was lost.
    completed(&*store, "done", "site", "default", 10).await;
    quarantine(&*store, "done").await;
    // Another workflow's and another scope's losses are not this request's.
    interrupted(&*store, "other-wf", "docs", "default", "x", 30).await;
    quarantine(&*store, "other-wf").await;
    interrupted(&*store, "other-scope", "site", "staging", "x", 40).await;
    quarantine(&*store, "other-scope").await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    assert!(matches!(
        decide(&policy, &request("b")).await,
        Decision::Fresh(_)
    ));
    // Older than a listed run: the listed one decides (here a failed one prompts).
    interrupted(&*store, "old-lost", "site", "default", "x", 50).await;
    quarantine(&*store, "old-lost").await;
    failed(&*store, "newer", "site", "default", "y", 60).await;
    let Decision::FailedPrompt(prompt) = decide(&policy, &request("b")).await else {
        panic!("the newer failed run decides");
    };
    assert_eq!(prompt.run_id, id("newer"));
}
on_both_stores!(only_unfinished_newest_runs_of_the_same_scope_ask);

async fn a_forced_run_settles_it_even_once_that_run_is_pruned(store: Store) {
    interrupted(&*store, "lost", "site", "default", "build A", 10).await;
    quarantine(&*store, "lost").await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let Decision::Fresh(fresh) = decide(&policy, &request("b").force()).await else {
        panic!("force starts fresh");
    };
    let run = store
        .begin(fresh.meta(cairn_queue::Timestamp(20)))
        .await
        .expect("begin");
    policy.fresh_run_begun(&fresh).await.expect("recorded");
    run.complete().await.expect("complete");
    drop(run);
    store
        .remove_terminal(&fresh.run_id)
        .await
        .expect("prune the forced run");
    // The quarantined run is the newest of the scope again, but a person already decided.
    assert!(matches!(
        decide(&policy, &request("c")).await,
        Decision::Fresh(_)
    ));
    let listed = policy.quarantined_runs().await.expect("list");
    assert!(listed[0].settled_at.is_some(), "{listed:?}");
    assert!(matches!(
        policy.abandon_quarantined(&id("lost")).await,
        Err(Error::QuarantineAbandoned { .. })
    ));
}
on_both_stores!(a_forced_run_settles_it_even_once_that_run_is_pruned);

/// Metadata of an older format version this build does not read still names the workflow
/// and scope whose progress was lost; before this was handled, the lookup skipped such a run
/// and started fresh.
#[test]
fn metadata_of_another_version_still_asks() {
    let store = MemoryFactory::new();
    let meta = common::runtime().block_on(interrupted(&store, "lost", "site", "default", "A", 10));
    let mut planted = meta.clone();
    planted.format_version = 0;
    store.plant_meta(&id("lost"), planted);
    let policy = ResumePolicy::new(store.clone());
    common::runtime().block_on(async {
        // The listing quarantines the unreadable version; the same lookup then asks.
        let Decision::QuarantinePrompt(prompt) = decide(&policy, &request("B")).await else {
            panic!("it must ask");
        };
        assert_eq!(prompt.run_id, id("lost"));
    });
}

/// Metadata of a newer build (after a rollback): the run is not this build's to resume,
/// quarantine or run afresh beside. The decision fails with the store's `NewerFormat` and
/// changes nothing, every time.
#[test]
fn metadata_of_a_newer_build_is_refused_and_nothing_begins() {
    let store = MemoryFactory::new();
    let meta = common::runtime().block_on(interrupted(&store, "later", "site", "default", "A", 10));
    let mut planted = meta.clone();
    planted.format_version += 1;
    store.plant_meta(&id("later"), planted.clone());
    let policy = ResumePolicy::new(store.clone());
    common::runtime().block_on(async {
        for _ in 0..2 {
            let err = policy
                .decide(&request("B"))
                .await
                .expect_err("a newer build's run stops the decision");
            assert!(err.to_string().contains("newer cairn build"), "{err}");
            assert_eq!(store.stored_meta(&id("later")), Some(planted.clone()));
            assert!(store.list_quarantined().await.expect("list").is_empty());
            let runs = store.list(&RunFilter::default()).await.expect("list");
            assert_eq!(runs.len(), 1, "nothing began: {runs:?}");
        }
    });
}

/// Metadata that names another run: the question, the forced run's audit and `forced_past`
/// all use the id the state was stored under.
#[test]
fn metadata_naming_another_run_is_asked_about_under_its_own_id() {
    let store = MemoryFactory::new();
    let meta = common::runtime().block_on(interrupted(&store, "lost", "site", "default", "A", 10));
    let mut planted = meta.clone();
    planted.run_id = id("someone-else");
    store.plant_meta(&id("lost"), planted);
    let policy = ResumePolicy::new(store.clone());
    common::runtime().block_on(async {
        let Decision::QuarantinePrompt(prompt) = decide(&policy, &request("B")).await else {
            panic!("it must ask");
        };
        assert_eq!(prompt.run_id, id("lost"));
        let Decision::Fresh(fresh) = decide(&policy, &request("B").force()).await else {
            panic!("force starts fresh");
        };
        assert_eq!(fresh.forced_past, Some(id("lost")));
        drop(
            store
                .begin(fresh.meta(cairn_queue::Timestamp(20)))
                .await
                .expect("begin"),
        );
        policy.fresh_run_begun(&fresh).await.expect("recorded");
        let actions = audit_actions(&store, &id("lost")).await;
        assert_eq!(actions.last(), Some(&AuditAction::ForcedFresh));
    });
}

/// Metadata that no longer parses names no workflow: such a run never asks, and abandoning
/// it says there is nothing to abandon (the memory store always keeps parsed metadata, so this
/// runs on the file store).
#[test]
fn a_quarantined_run_without_metadata_has_nothing_to_abandon() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = common::file_store(dir.path());
    common::runtime().block_on(async {
        interrupted(&store, "garbled", "site", "default", "A", 10).await;
    });
    std::fs::write(dir.path().join("runs/garbled/meta.json"), b"not JSON").expect("garble");
    let policy = ResumePolicy::new(store);
    common::runtime().block_on(async {
        // The listing moves it aside; it belongs to no workflow, so nothing asks.
        assert!(matches!(
            decide(&policy, &request("B")).await,
            Decision::Fresh(_)
        ));
        match policy.abandon_quarantined(&id("garbled")).await {
            Err(Error::QuarantineUnattributed { run_id, location }) => {
                assert_eq!(run_id, id("garbled"));
                assert!(location.contains("quarantine"), "{location}");
            }
            other => panic!("abandon of an unattributed quarantine: {other:?}"),
        }
    });
}

/// A quarantined run whose audit log is damaged: the lookup cannot see whether it was
/// settled, so it asks, offering only the forced run (an abandon could not be recorded where
/// it would be read); the forced run goes past it. Before, all three paths failed with the
/// corruption error and the workflow was stuck.
#[test]
fn a_damaged_audit_log_still_asks_and_force_goes_past_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = common::file_store(dir.path());
    let policy = ResumePolicy::new(store.clone());
    let location = common::runtime().block_on(async {
        interrupted(&store, "lost", "site", "default", "A", 10).await;
        quarantine(&store, "lost").await.location
    });
    let audit = std::path::Path::new(&location).join("audit.jsonl");
    let mut bytes = std::fs::read(&audit).expect("audit.jsonl");
    // A byte of the first of several lines: damage in the middle, not a torn tail.
    bytes[12] ^= 0x01;
    std::fs::write(&audit, bytes).expect("damage the audit log");
    common::runtime().block_on(async {
        let Decision::QuarantinePrompt(prompt) = decide(&policy, &request("B")).await else {
            panic!("it must ask");
        };
        assert!(prompt.audit_damage.is_some(), "{prompt:?}");
        let ways = prompt.ways_forward();
        assert_eq!(ways.len(), 1, "{ways:?}");
        assert!(matches!(
            ways[0],
            WayForward::ForceFreshPastQuarantine { .. }
        ));
        let refused = policy
            .abandon_quarantined(&id("lost"))
            .await
            .expect_err("the abandon cannot be recorded");
        assert!(
            matches!(refused, Error::QuarantineAuditUnreadable { .. }),
            "{refused:?}"
        );
        // The store's refusal is the typed source, not only text in the message.
        let source = std::error::Error::source(&refused).expect("a source");
        assert!(
            matches!(
                source.downcast_ref::<cairn_checkpoint::Error>(),
                Some(cairn_checkpoint::Error::Corruption { .. })
            ),
            "{source:?}"
        );
        let Decision::Fresh(fresh) = decide(&policy, &request("B").force()).await else {
            panic!("force goes past it");
        };
        assert_eq!(fresh.forced_past, Some(id("lost")));
    });
}

/// A resume by id, or an approval, of a run whose state was quarantined says so, and where
/// the state is kept, as an abandon does: it used to be `NotFound` ("no run lost") for a run
/// the quarantine prompt had just named. Nothing is claimed or recorded.
async fn resuming_or_approving_a_quarantined_run_names_the_quarantine(store: Store) {
    paused(&*store, "lost", "site", "default", "build A", 10).await;
    let moved = quarantine(&*store, "lost").await;
    let before = audit_actions(&*store, &id("lost")).await;
    let policy = ResumePolicy::new(Arc::clone(&store));
    let resumed = policy.resume(&id("lost")).await;
    let approved = policy.decide(&request("B").approve(id("lost"))).await;
    for outcome in [resumed.map(|_| ()), approved.map(|_| ())] {
        match outcome {
            Err(Error::Quarantined { run_id, location }) => {
                assert_eq!(run_id, id("lost"));
                assert_eq!(location, moved.location);
            }
            other => panic!("a quarantined run must be named as such: {other:?}"),
        }
    }
    assert_eq!(audit_actions(&*store, &id("lost")).await, before);
    assert_eq!(run_count(&*store).await, 0);
    // An id that never was is still `NotFound`.
    assert!(matches!(
        policy.resume(&id("never-was")).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        policy.decide(&request("B").approve(id("never-was"))).await,
        Err(Error::NotFound { .. })
    ));
}
on_both_stores!(resuming_or_approving_a_quarantined_run_names_the_quarantine);
