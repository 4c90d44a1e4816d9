//! Collector endpoints the OTLP exporters would accept but never reach (empty, another
//! scheme, no host, port 99999) are refused when the providers are built, as
//! `Error::InvalidEndpoint` naming where they came from; real collector URLs still build.

mod common;

use std::process::Command;

use cairn_telemetry::{Config, ENV_OTLP_TRACES_ENDPOINT, Error, Export, OtlpProtocol};
use common::assert_child_passed;

/// `providers` for an explicit `endpoint` over `protocol`, inside a tokio runtime (gRPC needs
/// one), shut down again when they build.
fn build(protocol: OtlpProtocol, endpoint: &str) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let _entered = runtime.enter();
    let config = Config::new("endpoint-test").with_export(Export::Otlp {
        protocol,
        endpoint: Some(endpoint.to_owned()),
    });
    // Nothing is recorded, so the shutdown does not contact the collector.
    cairn_telemetry::providers(&config)?.shutdown()
}

#[test]
fn an_explicit_endpoint_that_is_no_collector_url_is_refused_with_a_typed_error() {
    for protocol in [OtlpProtocol::HttpProtobuf, OtlpProtocol::Grpc] {
        for bad in [
            "",
            "   ",
            "ftp://collector:4318",
            "http://",
            "http://:4318",
            "https://user@:4318/",
            "http://collector:99999",
            "http://collector:0",
            "http://collector:port",
            "collector:4318",
        ] {
            match build(protocol, bad) {
                Err(Error::InvalidEndpoint {
                    endpoint, origin, ..
                }) => {
                    assert_eq!(endpoint, bad, "{protocol}");
                    assert_eq!(origin, "Export::Otlp", "{protocol} {bad:?}");
                }
                other => panic!("{protocol} {bad:?}: {other:?}"),
            }
        }
    }
}

#[test]
fn collector_urls_with_a_host_build_exporters() {
    for protocol in [OtlpProtocol::HttpProtobuf, OtlpProtocol::Grpc] {
        for good in [
            "http://127.0.0.1:4318",
            "http://collector.internal:4318/",
            "HTTP://collector.internal",
            "http://[::1]:4318",
            "http://[::1]",
            "http://user:secret@collector:4318",
        ] {
            assert!(build(protocol, good).is_ok(), "{protocol} {good:?}");
        }
    }
}

/// Set in the child process of the variable test.
const CHILD_ROLE: &str = "CAIRN_TELEMETRY_ENDPOINT_TEST_CHILD";

#[test]
fn an_endpoint_variable_that_is_no_collector_url_is_refused_naming_the_variable() {
    const NAME: &str =
        "an_endpoint_variable_that_is_no_collector_url_is_refused_naming_the_variable";
    if std::env::var(CHILD_ROLE).is_ok() {
        let result = cairn_telemetry::providers(&Config::new("endpoint-test"));
        let Err(Error::InvalidEndpoint {
            endpoint, origin, ..
        }) = result
        else {
            panic!("{result:?}");
        };
        assert_eq!(endpoint, "ftp://collector:4318");
        assert_eq!(origin, ENV_OTLP_TRACES_ENDPOINT);
        return;
    }
    // Variables are process-wide, so the case runs in a child of this binary.
    let output = Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", NAME, "--test-threads=1"])
        .env(CHILD_ROLE, "1")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_EXPORTER_OTLP_PROTOCOL")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
        .env(ENV_OTLP_TRACES_ENDPOINT, "ftp://collector:4318")
        .output()
        .expect("run the child test");
    assert_child_passed(&output, "");
}
