//! A base collector URL with a query string (`http://host:4318/?x=1`) gets its signal path in
//! the URL's path, before the query (`/v1/traces?x=1`), as the OTLP specification's base-URL
//! rule asks: the signal path is relative to the base URL's path. This holds for an explicit
//! `Export::Otlp` endpoint and for `OTEL_EXPORTER_OTLP_ENDPOINT`, for traces and metrics; a
//! per-signal variable is still used as is and still takes precedence.

mod common;

use std::process::Command;
use std::time::Duration;

use cairn_telemetry::emit::{self, QueueDepth};
use cairn_telemetry::{Config, Export, OtlpProtocol};
use common::{OtlpReceiver, assert_child_passed};
use tracing_subscriber::layer::SubscriberExt as _;

/// Records one span and one gauge through `config`'s providers, then flushes them.
fn export_once(config: &Config) {
    let providers = cairn_telemetry::providers(config).expect("providers");
    let subscriber =
        tracing_subscriber::registry().with(cairn_telemetry::layers::layer(&providers));
    tracing::subscriber::with_default(subscriber, || {
        let run = tracing::info_span!(target: "cairn", "cairn.run", run_id = "run-q");
        let _entered = run.enter();
        emit::queue_depth(
            "run-q",
            &QueueDepth {
                pending: 1,
                ..QueueDepth::default()
            },
        );
    });
    providers.shutdown().expect("flush traces and metrics");
}

/// Asserts that requests arrived at each of `paths`, and at no other path.
fn assert_paths(receiver: &OtlpReceiver, paths: &[&str]) {
    for path in paths {
        assert!(
            receiver.wait_for_path(path, Duration::from_secs(10)),
            "no export to {path}: {:?}",
            receiver
                .requests()
                .iter()
                .map(|r| r.path.clone())
                .collect::<Vec<_>>()
        );
    }
    for request in receiver.requests() {
        assert!(paths.contains(&request.path.as_str()), "{}", request.path);
    }
}

#[test]
fn an_explicit_base_url_with_a_query_keeps_the_query_after_the_signal_path() {
    for (suffix, query) in [("/?x=1", "?x=1"), ("?x=1&y=2", "?x=1&y=2")] {
        let receiver = OtlpReceiver::start();
        let config = Config::new("query-test").with_export(Export::Otlp {
            protocol: OtlpProtocol::HttpProtobuf,
            endpoint: Some(format!("{}{suffix}", receiver.endpoint())),
        });
        export_once(&config);
        let traces = format!("/v1/traces{query}");
        let metrics = format!("/v1/metrics{query}");
        assert_paths(&receiver, &[&traces, &metrics]);
    }
}

/// Set in the child process of the variable test; holds the base URL to export to.
const CHILD_ENDPOINT: &str = "CAIRN_TELEMETRY_QUERY_TEST_CHILD";

#[test]
fn an_endpoint_variable_with_a_query_keeps_the_query_after_the_signal_path() {
    const NAME: &str = "an_endpoint_variable_with_a_query_keeps_the_query_after_the_signal_path";
    if let Ok(endpoint) = std::env::var(CHILD_ENDPOINT) {
        assert_eq!(
            std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").as_deref(),
            Ok(endpoint.as_str())
        );
        export_once(&Config::new("query-test"));
        return;
    }
    let receiver = OtlpReceiver::start();
    let endpoint = format!("{}/?x=1", receiver.endpoint());
    // Variables are process-wide, so the case runs in a child of this binary.
    let output = Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", NAME, "--test-threads=1"])
        .env(CHILD_ENDPOINT, &endpoint)
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            format!("{}/own/metrics?y=2", receiver.endpoint()),
        )
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .output()
        .expect("run the child test");
    assert_child_passed(&output, "");
    // The metrics variable is used as is, query and all, as the specification asks.
    assert_paths(&receiver, &["/v1/traces?x=1", "/own/metrics?y=2"]);
}
