//! Every decision that concerns a stored run is emitted as a telemetry event naming the run
//! ids, captured here by a scoped (never global) subscriber.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use cairn_checkpoint::{CheckpointerFactory, MemoryFactory, Owner, RunMeta};
use cairn_queue::Timestamp;
use cairn_runs::{Decision, ResumePolicy, RunRequest};
use cairn_telemetry::names;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use common::*;

/// One captured event: its callsite name and its fields as text.
#[derive(Debug, Clone)]
struct Captured {
    target: String,
    name: String,
    level: tracing::Level,
    fields: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Capture {
    events: Arc<Mutex<Vec<Captured>>>,
}

struct FieldText<'a>(&'a mut BTreeMap<String, String>);

impl Visit for FieldText<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut FieldText(&mut fields));
        self.events
            .lock()
            .expect("the capture lock")
            .push(Captured {
                target: event.metadata().target().to_owned(),
                name: event.metadata().name().to_owned(),
                level: *event.metadata().level(),
                fields,
            });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Capture {
    fn named(&self, name: &str) -> Vec<Captured> {
        self.events
            .lock()
            .expect("the capture lock")
            .iter()
            .filter(|event| event.name == name)
            .cloned()
            .collect()
    }
}

#[test]
fn decisions_and_operations_emit_events_with_run_ids() {
    let capture = Capture::default();
    let store = MemoryFactory::new();
    let policy = ResumePolicy::new(store.clone());
    let rt = runtime();
    let (fresh_id, recovered_id) = tracing::subscriber::with_default(capture.clone(), || {
        rt.block_on(async {
            failed(&store, "f1", "site", "default", "build A", 10).await;
            failed(&store, "f2", "site", "other", "build A", 11).await;
            interrupted(&store, "i1", "site", "third", "build A", 12).await;

            let decision = policy
                .decide(&RunRequest::new("site", "default", "build B"))
                .await
                .expect("decide");
            assert!(matches!(decision, Decision::FailedPrompt(_)));

            let Decision::Fresh(fresh) = policy
                .decide(&RunRequest::new("site", "default", "build B").force())
                .await
                .expect("decide")
            else {
                panic!("expected a forced fresh run");
            };
            // Emitted once the forced run has begun, not when it was decided.
            assert!(capture.named(names::FRESH_RUN_FORCED).is_empty());
            drop(store.begin(fresh.meta(Timestamp(20))).await.expect("begin"));
            policy.fresh_run_begun(&fresh).await.expect("recorded");
            policy.resume(&id("f1")).await.expect("resume");
            policy.abandon(&id("f2")).await.expect("abandon");
            let Decision::Resume(recovered) = policy
                .decide(&RunRequest::new("site", "third", "x"))
                .await
                .expect("decide")
            else {
                panic!("expected the interrupted run to resume");
            };
            (fresh.run_id, recovered.meta.run_id)
        })
    });

    let prompted = capture.named("orchestrator failed_resume_prompted");
    assert_eq!(prompted.len(), 1, "{prompted:?}");
    assert_eq!(prompted[0].fields["run_id"], "f1");
    assert_eq!(prompted[0].fields["workflow"], "site");
    assert_eq!(prompted[0].fields["scope"], "default");

    let forced = capture.named("orchestrator fresh_run_forced");
    assert_eq!(forced.len(), 1, "{forced:?}");
    assert_eq!(forced[0].fields["run_id"], fresh_id.as_str());
    assert_eq!(forced[0].fields["failed_run_id"], "f1");

    let resumed = capture.named("orchestrator resumed_by_id");
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert_eq!(resumed[0].fields["run_id"], "f1");
    assert_eq!(resumed[0].fields["previous_status"], "failed");
    assert_eq!(resumed[0].fields["lease_epoch"], "2");

    let abandoned = capture.named("orchestrator run_abandoned");
    assert_eq!(abandoned.len(), 1, "{abandoned:?}");
    assert_eq!(abandoned[0].fields["run_id"], "f2");
    assert_eq!(abandoned[0].fields["previous_status"], "failed");
    assert_eq!(abandoned[0].fields["forced"], "false");
    assert!(!abandoned[0].fields.contains_key("last_owner"));

    let recovered: Vec<Captured> = capture
        .events
        .lock()
        .expect("the capture lock")
        .iter()
        .filter(|event| {
            event.fields.get("message").map(String::as_str)
                == Some("resume policy: interrupted run recovered")
        })
        .cloned()
        .collect();
    assert_eq!(recovered.len(), 1, "{recovered:?}");
    assert_eq!(recovered[0].fields["run_id"], recovered_id.as_str());
    // A diagnostic without a stable name, so it is on the detail target.
    assert_eq!(recovered[0].target, names::DETAIL_TARGET);
    let detail = assert_every_cairn_event_has_a_stable_name(&capture);
    assert!(detail > 0, "the policy's diagnostics were captured too");
}

/// Review 43 #8: every event on target `cairn` carries a stable name as its tracing name, so
/// a host can route that target by name; the rest are on `cairn::detail`. Returns how many
/// were there.
fn assert_every_cairn_event_has_a_stable_name(capture: &Capture) -> usize {
    let stable = [
        names::RUN_STARTED,
        names::RESUMED,
        names::RUN_FINISHED,
        names::FAILED_RESUME_PROMPTED,
        names::RUN_ABANDONED,
        names::FRESH_RUN_FORCED,
        names::RESUMED_BY_ID,
        names::STATE_QUARANTINED,
        names::TASK_RESET,
        names::BEGIN_DEGRADED,
        names::QUEUE_DEPTH,
    ];
    let events = capture.events.lock().expect("the capture lock");
    let mut detail = 0;
    for event in events.iter() {
        if event.target == names::TARGET {
            assert!(stable.contains(&event.name.as_str()), "{event:?}");
        } else {
            assert_eq!(event.target, names::DETAIL_TARGET, "{event:?}");
            detail += 1;
        }
    }
    detail
}

/// A forced abandon emits `orchestrator run_abandoned` with `forced = true` and the owner and
/// lease epoch it overrode, at WARN.
#[test]
fn a_forced_abandon_emits_run_abandoned_and_names_the_overridden_owner() {
    let capture = Capture::default();
    let store = MemoryFactory::new();
    let policy = ResumePolicy::new(store.clone());
    let rt = runtime();
    tracing::subscriber::with_default(capture.clone(), || {
        rt.block_on(async {
            let mut meta = RunMeta::new(id("r1"), "site", "default", "in", Timestamp(10));
            meta.owner = Some(Owner {
                pid: 4242,
                host: "gone-for-good.invalid".to_owned(),
                start: None,
            });
            drop(store.begin(meta).await.expect("begin"));
            policy
                .abandon_forced(&id("r1"))
                .await
                .expect("forced abandon");
        })
    });

    let abandoned = capture.named("orchestrator run_abandoned");
    assert_eq!(abandoned.len(), 1, "{abandoned:?}");
    let fields = &abandoned[0].fields;
    assert_eq!(fields["run_id"], "r1");
    assert_eq!(fields["previous_status"], "running");
    assert_eq!(fields["forced"], "true");
    assert_eq!(fields["last_owner"], "pid 4242 on gone-for-good.invalid");
    assert_eq!(fields["last_lease_epoch"], "1");
    assert_eq!(abandoned[0].level, tracing::Level::WARN);
    assert_every_cairn_event_has_a_stable_name(&capture);
}
