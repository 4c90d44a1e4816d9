//! A breaker trip and a forced revive whose audit record cannot be written still emit
//! `breaker_tripped` and `job_revived`: the change stands, so it must be heard of.
//!
//! Alone in its own test binary, as `telemetry.rs`: `tracing` caches per-callsite interest,
//! so another test on another thread without a subscriber could hide the events.

mod common;

use cairn_checkpoint::fault::{FaultOp, FaultTiming};
use cairn_scheduler::{Error, JobStatus};
use common::{every_minute, faulty_rig, id};

#[test]
fn a_trip_and_a_revive_whose_records_failed_are_still_emitted() {
    let telemetry = cairn_telemetry::testing::TestTelemetry::new();
    let _guard = telemetry.set_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (rig, plan) = faulty_rig();
        rig.runner.set_failing(true);
        let job = id("observed");
        rig.scheduler
            .jobs()
            .add(every_minute("observed").max_consecutive_errors(1))
            .await
            .unwrap();
        rig.clock.set(rig.next_due(&job).await);
        plan.fail_next(FaultOp::JobAppendAudit, FaultTiming::Before);
        let err = rig.scheduler.tick().await.unwrap_err().error;
        assert!(matches!(err, Error::Unaudited { .. }), "{err:?}");
        let stored = rig.scheduler.jobs().show(&job).await.unwrap();
        assert_eq!(stored.status, JobStatus::Failed);

        plan.fail_next(FaultOp::JobAppendAudit, FaultTiming::Before);
        let err = rig.scheduler.jobs().resume(&job, true).await.unwrap_err();
        assert!(matches!(err, Error::Unaudited { .. }), "{err:?}");
        assert_eq!(plan.fired().len(), 2);
    });
    let trips = telemetry.spans_named(cairn_telemetry::names::BREAKER_TRIPPED);
    assert_eq!(trips.len(), 1, "the trip stands, so it is emitted");
    let revives = telemetry.spans_named(cairn_telemetry::names::JOB_REVIVED);
    assert_eq!(revives.len(), 1, "the revive stands, so it is emitted");
}
