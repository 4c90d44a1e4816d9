//! `service.name` of what `providers` (and so `init`) export: the standard `OTEL_SERVICE_NAME`
//! and a `service.name` in `OTEL_RESOURCE_ATTRIBUTES` name the service when set, and
//! `Config::service_name` names it otherwise. Variables are process-wide, so each case runs
//! in a child process of this test binary with exactly the variables it names.

mod common;

use std::process::Command;
use std::time::Duration;

use cairn_telemetry::{Config, Export, OtlpProtocol, emit, names};
use common::OtlpReceiver;
use opentelemetry_proto::tonic::common::v1::any_value;
use tracing_subscriber::layer::SubscriberExt as _;

/// Set in the child process to the `service.name` its case expects.
const EXPECTED: &str = "CAIRN_TELEMETRY_SERVICE_NAME_EXPECTED";

/// Reruns the test `name` in a child with `vars` set (and the other resource variables
/// unset), expecting the exported `service.name` to be `expected`.
fn in_child(name: &str, vars: &[(&str, &str)], expected: &str) {
    let mut child = Command::new(std::env::current_exe().expect("test binary path"));
    child
        .args(["--exact", name, "--test-threads=1"])
        .env(EXPECTED, expected)
        .env_remove("OTEL_SERVICE_NAME")
        .env_remove("OTEL_RESOURCE_ATTRIBUTES")
        .env_remove("OTEL_SDK_DISABLED");
    for (key, value) in vars {
        child.env(key, value);
    }
    let output = child.output().expect("run the child test");
    common::assert_child_passed(&output, &format!(" with {vars:?}"));
}

/// In the child: exports one run span through `providers` configured with the service name
/// `cli`, and checks the `service.name` the collector received.
fn exported_service_name_is_expected() {
    let expected = std::env::var(EXPECTED).expect("set by the parent");
    let receiver = OtlpReceiver::start();
    let config = Config::new("cli").with_export(Export::Otlp {
        protocol: OtlpProtocol::HttpProtobuf,
        endpoint: Some(receiver.endpoint()),
    });
    let providers = cairn_telemetry::providers(&config).expect("providers");
    let subscriber =
        tracing_subscriber::registry().with(cairn_telemetry::layers::layer(&providers));
    tracing::subscriber::with_default(subscriber, || {
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = "run-s", workflow = "w", scope = "s", resumed = false);
        run.in_scope(|| emit::run_abandoned("run-old", "failed"));
    });
    providers.shutdown().expect("flush traces");
    assert!(
        receiver.wait_for_path("/v1/traces", Duration::from_secs(10)),
        "no trace export"
    );
    let request = &receiver.trace_requests()[0];
    let service = request.resource_spans[0]
        .resource
        .as_ref()
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.clone());
    assert_eq!(service, Some(any_value::Value::StringValue(expected)));
}

#[test]
fn otel_service_name_names_the_exported_service() {
    const NAME: &str = "otel_service_name_names_the_exported_service";
    if std::env::var_os(EXPECTED).is_some() {
        return exported_service_name_is_expected();
    }
    in_child(
        NAME,
        &[("OTEL_SERVICE_NAME", "billing-nightly")],
        "billing-nightly",
    );
    // The specification gives OTEL_SERVICE_NAME precedence over OTEL_RESOURCE_ATTRIBUTES.
    in_child(
        NAME,
        &[
            ("OTEL_SERVICE_NAME", "billing-nightly"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes"),
        ],
        "billing-nightly",
    );
}

#[test]
fn a_service_name_in_otel_resource_attributes_names_the_exported_service() {
    const NAME: &str = "a_service_name_in_otel_resource_attributes_names_the_exported_service";
    if std::env::var_os(EXPECTED).is_some() {
        return exported_service_name_is_expected();
    }
    in_child(
        NAME,
        &[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=prod,service.name=etl",
        )],
        "etl",
    );
}

#[test]
fn without_the_variables_config_service_name_names_the_exported_service() {
    const NAME: &str = "without_the_variables_config_service_name_names_the_exported_service";
    if std::env::var_os(EXPECTED).is_some() {
        return exported_service_name_is_expected();
    }
    in_child(NAME, &[], "cli");
    // An empty OTEL_SERVICE_NAME is unset, as the SDK reads it.
    in_child(NAME, &[("OTEL_SERVICE_NAME", "")], "cli");
}
