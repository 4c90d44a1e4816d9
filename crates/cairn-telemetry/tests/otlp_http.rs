//! OTLP/HTTP round trip: what the http-proto exporters send reaches a real receiver on
//! 127.0.0.1 and decodes as OTLP protobuf with the stable names, attributes and the link.

mod common;

use std::time::Duration;

use cairn_telemetry::emit::{self, QueueDepth, RunFinished, RunOutcomeName, RunStarted};
use cairn_telemetry::link::run_span_context;
use cairn_telemetry::{Config, Export, OtlpProtocol, names};
use common::OtlpReceiver;
use opentelemetry_proto::tonic::common::v1::any_value;
use tracing_subscriber::layer::SubscriberExt as _;

#[test]
fn traces_and_metrics_arrive_at_a_real_otlp_http_receiver() {
    let receiver = OtlpReceiver::start();
    let config = Config::new("cairn-otlp-test").with_export(Export::Otlp {
        protocol: OtlpProtocol::HttpProtobuf,
        endpoint: Some(receiver.endpoint()),
    });
    let providers = cairn_telemetry::providers(&config).expect("providers");
    let subscriber =
        tracing_subscriber::registry().with(cairn_telemetry::layers::layer(&providers));

    tracing::subscriber::with_default(subscriber, || {
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = "run-x", workflow = "etl", scope = "daily", resumed = true,
            resumed_from_run_id = "run-x", resumed_from_epoch = 2i64);
        let _entered = run.enter();
        emit::run_started(&RunStarted {
            run_id: "run-x",
            workflow: "etl",
            scope: "daily",
            tasks_total: 3,
            resumed: true,
        });
        emit::queue_depth(
            "run-x",
            &QueueDepth {
                pending: 3,
                ..QueueDepth::default()
            },
        );
        emit::task_reset("run-x", "load", None, "sql", 1, "pending");
        emit::run_finished(&RunFinished {
            run_id: "run-x",
            outcome: RunOutcomeName::Complete,
            resumed: true,
            duration_ms: 42,
            tasks_done: 3,
            tasks_failed: 0,
            tasks_skipped: 0,
            tasks_blocked: 0,
        });
    });
    // Shutdown flushes the batch span processor and the periodic metric reader.
    providers.shutdown().expect("flush traces and metrics");

    assert!(
        receiver.wait_for_path("/v1/traces", Duration::from_secs(10)),
        "no trace export"
    );
    assert!(
        receiver.wait_for_path("/v1/metrics", Duration::from_secs(10)),
        "no metric export"
    );
    assert_eq!(receiver.errors(), Vec::<String>::new());
    for request in receiver.requests() {
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.content_type.as_deref(),
            Some("application/x-protobuf")
        );
    }

    let (spans, events) = receiver.span_and_event_names();
    assert_eq!(spans, [names::RUN_SPAN]);
    assert_eq!(
        events,
        [names::RUN_STARTED, names::TASK_RESET, names::RUN_FINISHED]
    );

    // The link and its attributes survive the wire format.
    let request = &receiver.trace_requests()[0];
    let resource = &request.resource_spans[0];
    let service = resource
        .resource
        .as_ref()
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.clone());
    assert_eq!(
        service,
        Some(any_value::Value::StringValue("cairn-otlp-test".into()))
    );
    let span = &resource.scope_spans[0].spans[0];
    assert_eq!(span.links.len(), 1);
    let target = run_span_context("run-x", 2);
    assert_eq!(
        span.links[0].trace_id,
        target.trace_id().to_bytes().to_vec()
    );
    assert_eq!(span.links[0].span_id, target.span_id().to_bytes().to_vec());
    let epoch = span.links[0]
        .attributes
        .iter()
        .find(|kv| kv.key == names::ATTR_LEASE_EPOCH)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.clone());
    assert_eq!(epoch, Some(any_value::Value::IntValue(2)));

    let metric_names = receiver.metric_names();
    for expected in [names::METRIC_RUN_DURATION, names::METRIC_QUEUE_DEPTH] {
        assert!(
            metric_names.iter().any(|n| n == expected),
            "{expected} in {metric_names:?}"
        );
    }
}
