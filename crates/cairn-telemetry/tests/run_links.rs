//! A resumed run's span links to the interrupted execution through ids both processes can
//! derive; a fresh run has no link.

use cairn_telemetry::link::{run_span_context, run_span_id, run_trace_id};
use cairn_telemetry::names;
use cairn_telemetry::testing::TestTelemetry;
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanId, TraceId};

#[test]
fn a_resumed_run_links_to_the_interrupted_execution() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = "run-42", workflow = "etl", scope = "daily", resumed = true,
            resumed_from_run_id = "run-42", resumed_from_epoch = 3i64);
        let _entered = run.enter();
    });

    let runs = telemetry.spans_named(names::RUN_SPAN);
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    let links = &run.links.links;
    assert_eq!(links.len(), 1, "exactly the resume link: {links:?}");
    let link = &links[0];
    assert_eq!(link.span_context.trace_id(), run_trace_id("run-42", 3));
    assert_eq!(link.span_context.span_id(), run_span_id("run-42", 3));
    assert_eq!(link.span_context, run_span_context("run-42", 3));
    assert!(
        link.attributes
            .contains(&KeyValue::new(names::ATTR_RUN_ID, "run-42"))
    );
    assert!(
        link.attributes
            .contains(&KeyValue::new(names::ATTR_LEASE_EPOCH, 3i64))
    );
    assert!(link.attributes.contains(&KeyValue::new(
        names::ATTR_LINK_KIND,
        names::LINK_KIND_RESUMED_FROM
    )));

    // The resumed execution holds epoch 4, and its own ids are derived from that.
    assert_eq!(run.span_context.trace_id(), run_trace_id("run-42", 4));
    assert_eq!(run.span_context.span_id(), run_span_id("run-42", 4));
    assert!(
        run.attributes
            .contains(&KeyValue::new(names::ATTR_LEASE_EPOCH, 4i64))
    );
    assert_eq!(run.parent_span_id, SpanId::INVALID);
}

#[test]
fn the_link_target_is_the_span_the_interrupted_process_exported() {
    // Two providers stand in for the killed process and the one that resumes the run.
    let before_crash = TestTelemetry::new();
    before_crash.in_scope(|| {
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = "run-5", workflow = "w", scope = "s", resumed = false);
        let _entered = run.enter();
    });
    let after_crash = TestTelemetry::new();
    after_crash.in_scope(|| {
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = "run-5", workflow = "w", scope = "s", resumed = true,
            resumed_from_run_id = "run-5", resumed_from_epoch = 1i64);
        let _entered = run.enter();
    });

    let interrupted = &before_crash.spans_named(names::RUN_SPAN)[0];
    let resumed = &after_crash.spans_named(names::RUN_SPAN)[0];
    assert!(
        interrupted.links.links.is_empty(),
        "a fresh run has no link"
    );
    assert_eq!(
        resumed.links.links[0].span_context.trace_id(),
        interrupted.span_context.trace_id()
    );
    assert_eq!(
        resumed.links.links[0].span_context.span_id(),
        interrupted.span_context.span_id()
    );
    assert_ne!(
        resumed.span_context.trace_id(),
        interrupted.span_context.trace_id()
    );
}

#[test]
fn an_explicit_lease_epoch_and_u64_fields_are_honoured() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        // u64 fields arrive at OpenTelemetry as strings; the link must still be found.
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = "run-b", workflow = "w", scope = "s", resumed = true,
            resumed_from_run_id = "run-a", resumed_from_epoch = 7u64, lease_epoch = 2u64);
        let _entered = run.enter();
    });
    let run = &telemetry.spans_named(names::RUN_SPAN)[0];
    assert_eq!(run.links.links.len(), 1);
    assert_eq!(
        run.links.links[0].span_context,
        run_span_context("run-a", 7)
    );
    assert_eq!(run.span_context.trace_id(), run_trace_id("run-b", 2));
}

#[test]
fn a_fresh_run_has_no_link_and_a_derived_trace_id() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = "run-1", workflow = "w", scope = "s", resumed = false,
            resumed_from_run_id = tracing::field::Empty,
            resumed_from_epoch = tracing::field::Empty);
        let _entered = run.enter();
        let task = tracing::info_span!(target: "cairn", names::TASK_SPAN, task_id = "t");
        let _task = task.enter();
    });
    let run = &telemetry.spans_named(names::RUN_SPAN)[0];
    assert!(
        run.links.links.is_empty(),
        "unexpected links: {:?}",
        run.links.links
    );
    assert_eq!(run.span_context.trace_id(), run_trace_id("run-1", 1));
    assert!(
        run.attributes
            .contains(&KeyValue::new(names::ATTR_RUN_ID, "run-1"))
    );
    let task = &telemetry.spans_named(names::TASK_SPAN)[0];
    assert_eq!(task.span_context.trace_id(), run_trace_id("run-1", 1));
    assert_ne!(task.span_context.span_id(), run_span_id("run-1", 1));
}

#[test]
fn a_run_opened_inside_another_span_starts_its_own_trace_and_links_back() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        let request = tracing::info_span!("http request");
        let _request = request.enter();
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = "run-n", workflow = "w", scope = "s", resumed = false);
        let _entered = run.enter();
    });
    let request = &telemetry.spans_named("http request")[0];
    let run = &telemetry.spans_named(names::RUN_SPAN)[0];
    assert_eq!(run.parent_span_id, SpanId::INVALID);
    assert_eq!(run.span_context.trace_id(), run_trace_id("run-n", 1));
    assert_eq!(run.links.links.len(), 1);
    assert_eq!(
        run.links.links[0].span_context.span_id(),
        request.span_context.span_id()
    );
    assert!(run.links.links[0].attributes.contains(&KeyValue::new(
        names::ATTR_LINK_KIND,
        names::LINK_KIND_PARENT
    )));
}

#[test]
fn a_resume_with_unknown_epoch_keeps_random_ids_instead_of_colliding() {
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        for _ in 0..2 {
            // `resumed` without the resume fields: this execution's epoch is unknowable.
            let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
                run_id = "run-u", workflow = "w", scope = "s", resumed = true);
            let _entered = run.enter();
        }
    });
    let runs = telemetry.spans_named(names::RUN_SPAN);
    assert_eq!(runs.len(), 2);
    assert_ne!(
        runs[0].span_context.trace_id(),
        runs[1].span_context.trace_id()
    );
    assert_ne!(runs[0].span_context.trace_id(), run_trace_id("run-u", 1));
    assert!(runs.iter().all(|run| run.links.links.is_empty()));
    assert!(
        !runs[0]
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == names::ATTR_LEASE_EPOCH)
    );
}

#[test]
fn derived_ids_are_stable_and_distinct() {
    // Pinned values: these ids are shared between processes and versions, so they must never
    // change. A change here breaks joining traces written by an older cairn.
    assert_eq!(run_trace_id("run-1", 1), run_trace_id("run-1", 1));
    assert_ne!(run_trace_id("run-1", 1), run_trace_id("run-1", 2));
    assert_ne!(run_trace_id("run-1", 1), run_trace_id("run-2", 1));
    assert_ne!(run_trace_id("ab", 1), run_trace_id("a", 1));
    assert_ne!(run_trace_id("run-1", 1), TraceId::INVALID);
    assert_ne!(run_span_id("run-1", 1), SpanId::INVALID);
    // Computed independently (FNV-1a 128 over "cairn.trace"/"cairn.span", the run id and the
    // big-endian epoch, each part followed by 0xff; the span id folds the hash to 64 bits).
    assert_eq!(
        run_trace_id("run-1", 1).to_string(),
        "5ed4de08ad2bee11f8b2637cbf95b930"
    );
    assert_eq!(run_span_id("run-1", 1).to_string(), "6d4ef1131201e0d0");
}

#[test]
fn resume_fields_recorded_after_creation_but_before_entry_still_link() {
    // The executor's pattern: Display fields, resume fields declared Empty and recorded
    // before the span is first entered, epoch as u64.
    let telemetry = TestTelemetry::new();
    telemetry.in_scope(|| {
        let run_id = String::from("run-e");
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = %run_id, workflow = %"w", scope = %"s", resumed = true,
            resumed_from_run_id = tracing::field::Empty,
            resumed_from_epoch = tracing::field::Empty);
        run.record("resumed_from_run_id", run_id.as_str());
        run.record("resumed_from_epoch", 5u64);
        let _entered = run.enter();
    });
    let run = &telemetry.spans_named(names::RUN_SPAN)[0];
    assert_eq!(run.links.links.len(), 1);
    assert_eq!(
        run.links.links[0].span_context,
        run_span_context("run-e", 5)
    );
    assert_eq!(run.span_context.trace_id(), run_trace_id("run-e", 6));
}
