//! The final flush against a collector that is down: a hung one (accepts TCP, never answers)
//! and a refused port. The shutdown returns within its bound whatever the collector does,
//! reports the failed export once, naming the collector, and with nothing recorded does not
//! contact the collector at all.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use cairn_telemetry::emit::{self, RunFinished, RunOutcomeName};
use cairn_telemetry::{Config, Error, Export, LogFormat, OtlpProtocol, Providers, names};
use opentelemetry_sdk::error::OTelSdkError;
use tracing_subscriber::layer::SubscriberExt as _;

/// Only a guard against a hang: a bounded shutdown returns long before it.
const HANG_GUARD: Duration = Duration::from_secs(30);

/// Set in the child process to select its role.
const CHILD_ROLE: &str = "CAIRN_TELEMETRY_SHUTDOWN_CHILD";

/// A collector that accepts connections and never answers; it counts them.
struct HungCollector {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl HungCollector {
    fn start() -> HungCollector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (Arc::clone(&accepted), Arc::clone(&stop));
        thread::spawn(move || {
            // Held open, unread, until the test ends (or the hang guard has long passed).
            let mut held: Vec<TcpStream> = Vec::new();
            let deadline = Instant::now() + HANG_GUARD * 2;
            while !stopped.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        held.push(stream);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        HungCollector {
            addr,
            accepted,
            stop,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for HungCollector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A loopback URL nobody listens on (a port that was just free).
fn refused_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{addr}")
}

fn otlp_config(endpoint: &str) -> Config {
    Config::new("cairn-shutdown-test").with_export(Export::Otlp {
        protocol: OtlpProtocol::HttpProtobuf,
        endpoint: Some(endpoint.to_owned()),
    })
}

/// A run span with its `orchestrator run finished` event, through cairn's export layers over
/// `providers`: spans for the span queue and a run metric for the meter provider.
fn record_a_run(config: &Config, providers: &Providers) {
    let layers = cairn_telemetry::export_layers(config, providers).expect("layers");
    let subscriber = tracing_subscriber::registry().with(layers);
    tracing::subscriber::with_default(subscriber, || {
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = "run-s", workflow = "w", scope = "s", resumed = false);
        run.in_scope(|| {
            emit::run_finished(&RunFinished {
                run_id: "run-s",
                outcome: RunOutcomeName::Complete,
                resumed: false,
                duration_ms: 3,
                tasks_done: 1,
                tasks_failed: 0,
                tasks_skipped: 0,
                tasks_blocked: 0,
            });
        });
    });
}

/// `providers.shutdown_with_timeout(timeout)` on another thread, failing the test if it
/// hangs.
fn shut_down(providers: Providers, timeout: Duration) -> Result<(), Error> {
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(providers.shutdown_with_timeout(timeout));
    });
    result
        .recv_timeout(HANG_GUARD)
        .expect("the shutdown hung on a collector that does not answer")
}

#[test]
fn a_hung_collector_cannot_hold_the_shutdown_and_the_failed_export_is_reported() {
    let collector = HungCollector::start();
    let config = otlp_config(&collector.endpoint());
    let providers = cairn_telemetry::providers(&config).expect("providers");
    record_a_run(&config, &providers);

    let result = shut_down(providers, Duration::from_millis(300));
    match &result {
        Err(Error::Export {
            endpoint,
            signals,
            source,
        }) => {
            assert_eq!(endpoint, &collector.endpoint());
            assert_eq!(*signals, "traces and metrics", "{result:?}");
            assert!(matches!(source, OTelSdkError::Timeout(_)), "{result:?}");
        }
        other => panic!("expected a failed export, got {other:?}"),
    }
    assert!(
        collector.accepted.load(Ordering::Relaxed) > 0,
        "the shutdown never tried the collector"
    );
}

#[test]
fn a_refused_port_is_reported_with_the_exporters_own_error() {
    let endpoint = refused_endpoint();
    let config = otlp_config(&endpoint);
    let providers = cairn_telemetry::providers(&config).expect("providers");
    record_a_run(&config, &providers);

    // Long enough for the exporter's retries to give up, so its error is what is reported.
    let result = shut_down(providers, Duration::from_secs(10));
    match &result {
        Err(Error::Export {
            endpoint: reported,
            signals,
            source,
        }) => {
            assert_eq!(reported, &endpoint);
            assert_eq!(*signals, "traces and metrics", "{result:?}");
            // The exporter's failure, not a summary of it, a timeout or its text wrapped twice.
            assert!(
                matches!(source, OTelSdkError::InternalFailure(text)
                    if !text.contains("Shutdown errors") && !text.contains("Operation failed")),
                "{result:?}"
            );
        }
        other => panic!("expected a failed export, got {other:?}"),
    }
}

#[test]
fn with_nothing_recorded_the_shutdown_does_not_contact_the_collector() {
    let collector = HungCollector::start();
    let config = otlp_config(&collector.endpoint());
    let providers = cairn_telemetry::providers(&config).expect("providers");
    // cairn's layers are in place, but nothing is emitted through them.
    let layers = cairn_telemetry::export_layers(&config, &providers).expect("layers");
    drop(tracing_subscriber::registry().with(layers));

    // A bound far above any real flush: only an export to the hung collector would run out.
    let result = shut_down(providers, Duration::from_secs(10));
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(
        collector.accepted.load(Ordering::Relaxed),
        0,
        "the collector was contacted with nothing to export"
    );
}

#[test]
fn dropping_the_guard_writes_one_warning_line_naming_the_collector() {
    const NAME: &str = "dropping_the_guard_writes_one_warning_line_naming_the_collector";
    match std::env::var(CHILD_ROLE).as_deref() {
        Ok(endpoint) => {
            // As the `cairn` binary sets it up: errors only on stderr, INFO exported.
            let config = otlp_config(endpoint)
                .with_log_format(LogFormat::Human)
                .with_default_filter("error")
                .with_export_filter(cairn_telemetry::DEFAULT_FILTER)
                .with_shutdown_timeout(Duration::from_millis(300));
            let guard = cairn_telemetry::init(config).expect("init");
            let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
                run_id = "run-d", workflow = "w", scope = "s", resumed = false);
            run.in_scope(|| emit::run_abandoned("run-old", "failed"));
            drop(run);
            drop(guard);
        }
        Err(_) => {
            let collector = HungCollector::start();
            let (done, output) = mpsc::channel();
            let mut child = Command::new(std::env::current_exe().expect("test binary path"));
            child
                .args(["--exact", NAME, "--test-threads=1", "--nocapture"])
                .env(CHILD_ROLE, collector.endpoint())
                .env_remove("RUST_LOG")
                .env_remove("OTEL_SDK_DISABLED")
                .env_remove("OTEL_EXPORTER_OTLP_TIMEOUT");
            thread::spawn(move || {
                let _ = done.send(child.output());
            });
            let output = output
                .recv_timeout(HANG_GUARD)
                .expect("the child hung at exit")
                .expect("run the child test");
            common::assert_child_passed(&output, "");
            let stderr = String::from_utf8_lossy(&output.stderr);
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            assert_eq!(lines.len(), 1, "{stderr}");
            assert!(lines[0].contains("warning"), "{stderr}");
            assert!(lines[0].contains(&collector.endpoint()), "{stderr}");
            assert!(lines[0].contains("could not export"), "{stderr}");
        }
    }
}

/// Set in the child of the per-signal test to the collector its traces go to; the metrics'
/// is in `OTEL_EXPORTER_OTLP_ENDPOINT`.
const TRACES_COLLECTOR: &str = "CAIRN_TELEMETRY_SHUTDOWN_TRACES_COLLECTOR";

#[test]
fn collectors_named_per_signal_are_each_named_when_their_export_fails() {
    const NAME: &str = "collectors_named_per_signal_are_each_named_when_their_export_fails";
    if let Ok(traces) = std::env::var(TRACES_COLLECTOR) {
        let metrics = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").expect("set by the parent");
        // No explicit endpoint: the exporters read the variables, the signal's own first.
        let config = Config::new("cairn-shutdown-test").with_export(Export::Otlp {
            protocol: OtlpProtocol::HttpProtobuf,
            endpoint: None,
        });
        let providers = cairn_telemetry::providers(&config).expect("providers");
        record_a_run(&config, &providers);
        let result = shut_down(providers, Duration::from_secs(10));
        let Err(Error::Export {
            endpoint, signals, ..
        }) = &result
        else {
            panic!("expected a failed export, got {result:?}");
        };
        assert_eq!(*signals, "traces and metrics", "{result:?}");
        assert_eq!(
            endpoint,
            &format!("{traces} (traces) and {metrics} (metrics)"),
            "{result:?}"
        );
        return;
    }
    let traces = format!("{}/v1/traces", refused_endpoint());
    let output = Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", NAME, "--test-threads=1"])
        .env(TRACES_COLLECTOR, &traces)
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &traces)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", refused_endpoint())
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
        .env_remove("OTEL_SDK_DISABLED")
        .output()
        .expect("run the child test");
    common::assert_child_passed(&output, "");
}
