//! Telemetry of the breaker: a trip emits `breaker_tripped`, a forced revive `job_revived`;
//! the scheduler's other diagnostics stay off the stable `cairn` target.
//!
//! Alone in its own test binary: `tracing` caches per-callsite interest, so another test
//! hitting the same callsites on another thread without a subscriber could hide the events
//! from this test's scoped subscriber.

mod common;

use common::{Rig, every_minute, id};

#[test]
fn the_trip_and_the_revive_are_emitted_as_telemetry() {
    let telemetry = cairn_telemetry::testing::TestTelemetry::new();
    let _guard = telemetry.set_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let rig = Rig::memory();
        rig.runner.set_failing(true);
        let job_id = id("observed");
        rig.scheduler
            .jobs()
            .add(every_minute("observed").max_consecutive_errors(1))
            .await
            .unwrap();
        rig.tick_when_due(&job_id).await;
        rig.scheduler.jobs().resume(&job_id, true).await.unwrap();
    });
    let trips = telemetry.spans_named(cairn_telemetry::names::BREAKER_TRIPPED);
    assert_eq!(trips.len(), 1, "one breaker_tripped event expected");
    let revives = telemetry.spans_named(cairn_telemetry::names::JOB_REVIVED);
    assert_eq!(revives.len(), 1, "one job_revived event expected");
    // The run started and failed too ("scheduler starts a run", "scheduled run failed"):
    // diagnostics on `cairn::detail`, which are not exported. Every `cairn` event outside a
    // span is exported as a span named after it, so any other name here is an event on the
    // stable target without a stable name.
    let stable = [
        cairn_telemetry::names::BREAKER_TRIPPED,
        cairn_telemetry::names::JOB_REVIVED,
    ];
    let unnamed: Vec<String> = telemetry
        .spans()
        .into_iter()
        .map(|span| span.name.into_owned())
        .filter(|name| !stable.contains(&name.as_str()))
        .collect();
    assert!(
        unnamed.is_empty(),
        "events on the `cairn` target without a stable name: {unnamed:?}"
    );
}

/// Every event the scheduler logs itself (not through `cairn_telemetry::emit`) names its
/// target `cairn_telemetry::names::DETAIL_TARGET`: the stable `cairn` target is only for the
/// stable events. This reads the sources, so it also covers the paths the test above does not
/// take (a job damaged during its run, a runner that panics, a job left out).
#[test]
fn the_scheduler_logs_nothing_on_the_stable_target_itself() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut logged = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let compact: String = text.split_whitespace().collect();
        for stable in [
            "target:\"cairn\"",
            "target:cairn_telemetry::names::TARGET",
            "target:names::TARGET",
        ] {
            assert!(
                !compact.contains(stable),
                "{} logs on the stable `cairn` target: use names::DETAIL_TARGET",
                path.display()
            );
        }
        logged += compact.matches("target:names::DETAIL_TARGET").count();
    }
    // The scan saw the scheduler's diagnostics (it would pass vacuously on a moved folder).
    assert!(
        logged >= 8,
        "only {logged} diagnostics found under {}",
        src.display()
    );
}
