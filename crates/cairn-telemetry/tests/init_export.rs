//! `init` end to end: the global subscriber exports to a real OTLP/HTTP receiver, the guard
//! flushes, a second `init` is refused, and a bad `RUST_LOG` is a typed error. `init` is
//! process-wide, so each case runs in a child process of this same test binary (which also keeps the
//! caller's `RUST_LOG` and `OTEL_*` variables out of the picture).

mod common;

use std::process::Command;
use std::time::Duration;

use cairn_telemetry::emit::{self, RunFinished, RunOutcomeName};
use cairn_telemetry::{Config, Error, Export, LogFormat, OtlpProtocol, init, names};
use common::{OtlpReceiver, assert_child_passed};

/// Set in the child process to select its role.
const CHILD_ROLE: &str = "CAIRN_TELEMETRY_TEST_CHILD";

#[test]
fn init_exports_through_the_global_subscriber_and_refuses_a_second_install() {
    const NAME: &str = "init_exports_through_the_global_subscriber_and_refuses_a_second_install";
    match std::env::var(CHILD_ROLE).as_deref() {
        Ok("export") => export_through_init(),
        Ok(_) => {}
        // In a child, so the outcome does not depend on the caller's RUST_LOG or OTEL_* vars.
        Err(_) => assert_child_passed(
            &Command::new(std::env::current_exe().expect("test binary path"))
                .args(["--exact", NAME, "--test-threads=1"])
                .env(CHILD_ROLE, "export")
                .env_remove("RUST_LOG")
                .env_remove("OTEL_SDK_DISABLED")
                .output()
                .expect("run the child test"),
            "",
        ),
    }
}

#[test]
fn an_export_filter_exports_info_while_stderr_keeps_to_errors() {
    const NAME: &str = "an_export_filter_exports_info_while_stderr_keeps_to_errors";
    match std::env::var(CHILD_ROLE).as_deref() {
        Ok("export-filter") => export_past_a_quiet_log_filter(),
        Ok(_) => {}
        Err(_) => {
            let output = Command::new(std::env::current_exe().expect("test binary path"))
                .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
                .env(CHILD_ROLE, "export-filter")
                .env_remove("RUST_LOG")
                .env_remove("OTEL_SDK_DISABLED")
                .output()
                .expect("run the child test");
            assert_child_passed(&output, "");
            // The INFO event went to the collector only, not to stderr.
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!stderr.contains(names::RUN_FINISHED), "{stderr}");
        }
    }
}

/// `init` with stderr logs at `error` and [`Config::export_filter`] at `info`: the run span
/// and its INFO event still reach the collector.
fn export_past_a_quiet_log_filter() {
    let receiver = OtlpReceiver::start();
    let config = Config::new("cairn-export-filter-test")
        .with_log_format(LogFormat::Json)
        .with_default_filter("error")
        .with_export_filter(cairn_telemetry::DEFAULT_FILTER)
        .with_export(Export::Otlp {
            protocol: OtlpProtocol::HttpProtobuf,
            endpoint: Some(receiver.endpoint()),
        });
    let guard = init(config).expect("init");
    let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
        run_id = "run-q", workflow = "w", scope = "s", resumed = false);
    run.in_scope(|| {
        emit::run_finished(&RunFinished {
            run_id: "run-q",
            outcome: RunOutcomeName::Complete,
            resumed: false,
            duration_ms: 3,
            tasks_done: 1,
            tasks_failed: 0,
            tasks_skipped: 0,
            tasks_blocked: 0,
        });
    });
    drop(run);
    guard.shutdown().expect("flush and shut down");
    assert!(
        receiver.wait_for_path("/v1/traces", Duration::from_secs(10)),
        "no trace export"
    );
    let (spans, events) = receiver.span_and_event_names();
    assert!(spans.iter().any(|s| s == names::RUN_SPAN), "{spans:?}");
    assert!(
        events.iter().any(|e| e == names::RUN_FINISHED),
        "{events:?}"
    );
}

fn export_through_init() {
    let receiver = OtlpReceiver::start();
    let config = Config::new("cairn-init-test")
        .with_log_format(LogFormat::Json)
        .with_export(Export::Otlp {
            protocol: OtlpProtocol::HttpProtobuf,
            endpoint: Some(receiver.endpoint()),
        });
    let guard = init(config.clone()).expect("first init");

    let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
        run_id = "run-g", workflow = "w", scope = "s", resumed = false);
    run.in_scope(|| {
        emit::run_finished(&RunFinished {
            run_id: "run-g",
            outcome: RunOutcomeName::Complete,
            resumed: false,
            duration_ms: 7,
            tasks_done: 1,
            tasks_failed: 0,
            tasks_skipped: 0,
            tasks_blocked: 0,
        });
    });
    drop(run);
    // Outside any span: still exported.
    emit::run_abandoned("run-old", "failed");

    let second = init(config);
    assert!(
        matches!(second, Err(Error::SubscriberAlreadySet { .. })),
        "{second:?}"
    );

    guard.shutdown().expect("flush and shut down");
    assert!(
        receiver.wait_for_path("/v1/traces", Duration::from_secs(10)),
        "no trace export"
    );
    assert!(
        receiver.wait_for_path("/v1/metrics", Duration::from_secs(10)),
        "no metric export"
    );
    let (spans, events) = receiver.span_and_event_names();
    assert!(spans.iter().any(|s| s == names::RUN_SPAN), "{spans:?}");
    assert!(spans.iter().any(|s| s == names::RUN_ABANDONED), "{spans:?}");
    assert!(
        events.iter().any(|e| e == names::RUN_FINISHED),
        "{events:?}"
    );
    assert!(
        receiver
            .metric_names()
            .iter()
            .any(|n| n == names::METRIC_RUN_DURATION)
    );
}

#[test]
fn invalid_rust_log_is_a_typed_error() {
    match std::env::var(CHILD_ROLE).as_deref() {
        Ok("invalid_rust_log") => {
            let result = init(Config::new("child").with_export(Export::Off));
            assert!(
                matches!(
                    result,
                    Err(Error::InvalidFilter {
                        origin: "RUST_LOG",
                        ..
                    })
                ),
                "{result:?}"
            );
        }
        Ok(_) => {}
        Err(_) => {
            let status = Command::new(std::env::current_exe().expect("test binary path"))
                .args([
                    "--exact",
                    "invalid_rust_log_is_a_typed_error",
                    "--test-threads=1",
                ])
                .env(CHILD_ROLE, "invalid_rust_log")
                .env("RUST_LOG", "cairn=[[[")
                .output()
                .expect("run the child test");
            assert_child_passed(&status, "");
        }
    }
}

#[test]
fn unsupported_protocol_in_env_is_a_typed_error() {
    match std::env::var(CHILD_ROLE).as_deref() {
        Ok("bad_protocol") => {
            let result = init(Config::new("child"));
            assert!(
                matches!(result, Err(Error::UnsupportedProtocol { .. })),
                "{result:?}"
            );
        }
        Ok(_) => {}
        Err(_) => {
            let status = Command::new(std::env::current_exe().expect("test binary path"))
                .args([
                    "--exact",
                    "unsupported_protocol_in_env_is_a_typed_error",
                    "--test-threads=1",
                ])
                .env(CHILD_ROLE, "bad_protocol")
                .env_remove("RUST_LOG")
                .env_remove("OTEL_SDK_DISABLED")
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
                .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
                .output()
                .expect("run the child test");
            assert_child_passed(&status, "");
        }
    }
}
