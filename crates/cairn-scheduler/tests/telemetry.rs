//! Telemetry of the breaker: a trip emits `breaker_tripped`, a forced revive `job_revived`.
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
}
