//! OTLP/gRPC round trip: the tonic exporters reach a real OTLP/gRPC receiver on 127.0.0.1,
//! alone or beside an OTLP/HTTP receiver when each signal's variables pick its own protocol.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_telemetry::emit::{self, RunFinished, RunOutcomeName};
use cairn_telemetry::{Config, Error, Export, OtlpProtocol, names};
use common::{OtlpReceiver, assert_child_passed};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::{Request, Response, Status};
use tracing_subscriber::layer::SubscriberExt as _;

#[derive(Clone, Default)]
struct Collector {
    traces: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    metrics: Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.traces.lock().unwrap().push(request.into_inner());
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        self.metrics.lock().unwrap().push(request.into_inner());
        Ok(Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// A tokio runtime with two workers, for the receiver and the tonic exporters.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A real OTLP/gRPC receiver on a loopback port of `runtime`.
struct GrpcReceiver {
    addr: SocketAddr,
    collector: Collector,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl GrpcReceiver {
    fn start(runtime: &tokio::runtime::Runtime) -> Self {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let collector = Collector::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = runtime.spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(collector.clone()))
                .add_service(MetricsServiceServer::new(collector.clone()))
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(listener),
                    async {
                        let _ = stopped.await;
                    },
                ),
        );
        GrpcReceiver {
            addr,
            collector,
            stop,
            server,
        }
    }

    /// Stops the server and returns what it collected.
    fn stop(self, runtime: &tokio::runtime::Runtime) -> Collector {
        let _ = self.stop.send(());
        runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), self.server).await })
            .expect("server stops in time")
            .expect("server task")
            .expect("server ran cleanly");
        self.collector
    }
}

/// Builds `config`'s providers inside `runtime`, records a run span with two events and a
/// finished run (for the run duration metric), and shuts the providers down.
fn export_one_run(runtime: &tokio::runtime::Runtime, config: &Config) {
    let providers = {
        let _in_runtime = runtime.enter();
        cairn_telemetry::providers(config).expect("providers")
    };
    let subscriber =
        tracing_subscriber::registry().with(cairn_telemetry::layers::layer(&providers));
    tracing::subscriber::with_default(subscriber, || {
        let run = tracing::info_span!(target: "cairn", names::RUN_SPAN,
            run_id = "run-g", workflow = "w", scope = "s", resumed = false);
        let _entered = run.enter();
        emit::task_reset("run-g", "t", None, "k", 1, "pending");
        emit::run_finished(&RunFinished {
            run_id: "run-g",
            outcome: RunOutcomeName::Fail,
            resumed: false,
            duration_ms: 9,
            tasks_done: 0,
            tasks_failed: 1,
            tasks_skipped: 0,
            tasks_blocked: 0,
        });
    });
    // Shut down from this (non-worker) thread: the export thread needs the runtime running.
    providers.shutdown().expect("flush traces and metrics");
}

/// The metric names in what a gRPC collector received.
fn grpc_metric_names(collector: &Collector) -> Vec<String> {
    collector
        .metrics
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| s.metrics.iter().map(|m| m.name.clone()))
        .collect()
}

#[test]
fn traces_and_metrics_arrive_at_a_real_otlp_grpc_receiver() {
    let runtime = runtime();
    let receiver = GrpcReceiver::start(&runtime);
    let config = Config::new("cairn-grpc-test").with_export(Export::Otlp {
        protocol: OtlpProtocol::Grpc,
        endpoint: Some(format!("http://{}", receiver.addr)),
    });
    export_one_run(&runtime, &config);
    let collector = receiver.stop(&runtime);

    let traces = collector.traces.lock().unwrap();
    let spans: Vec<_> = traces
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans[0].name, names::RUN_SPAN);
    let events: Vec<&str> = spans[0].events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(events, [names::TASK_RESET, names::RUN_FINISHED]);
    let metric_names = grpc_metric_names(&collector);
    assert!(
        metric_names.iter().any(|n| n == names::METRIC_RUN_DURATION),
        "{metric_names:?}"
    );
}

#[test]
fn grpc_outside_a_tokio_runtime_is_a_typed_error() {
    let config = Config::new("cairn-grpc-test").with_export(Export::Otlp {
        protocol: OtlpProtocol::Grpc,
        endpoint: Some("http://127.0.0.1:4317".to_owned()),
    });
    let result = cairn_telemetry::providers(&config);
    assert!(
        matches!(result, Err(Error::NoTokioRuntime)),
        "{:?}",
        result.err()
    );
}

/// Set in the child process of the per-signal protocol test.
const CHILD_ROLE: &str = "CAIRN_TELEMETRY_GRPC_TEST_CHILD";

#[test]
fn each_signal_takes_the_protocol_its_own_variable_names() {
    const NAME: &str = "each_signal_takes_the_protocol_its_own_variable_names";
    if std::env::var(CHILD_ROLE).as_deref() == Ok("per-signal") {
        // The variables alone pick where and how each signal goes.
        export_one_run(&runtime(), &Config::new("cairn-per-signal-test"));
        return;
    }
    let runtime = runtime();
    let grpc = GrpcReceiver::start(&runtime);
    let http = OtlpReceiver::start();
    // Variables are process-wide, so the exporting half runs in a child of this binary.
    let output = Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", NAME, "--test-threads=1"])
        .env(CHILD_ROLE, "per-signal")
        .env_remove("RUST_LOG")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
        // The shared variable says HTTP; the traces' own says gRPC and wins for traces.
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
        .env(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("http://{}", grpc.addr),
        )
        .env(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            format!("{}/v1/metrics", http.endpoint()),
        )
        .output()
        .expect("run the child test");
    assert_child_passed(&output, "");
    let collector = grpc.stop(&runtime);

    let grpc_spans: Vec<String> = collector
        .traces
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| s.spans.iter().map(|span| span.name.clone()))
        .collect();
    assert_eq!(grpc_spans, [names::RUN_SPAN], "traces went over gRPC");
    assert!(
        grpc_metric_names(&collector).is_empty(),
        "metrics did not go over gRPC"
    );
    assert!(
        http.metric_names()
            .iter()
            .any(|n| n == names::METRIC_RUN_DURATION),
        "metrics went over HTTP: {:?} (errors: {:?})",
        http.metric_names(),
        http.errors()
    );
    let paths: Vec<String> = http.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.iter().all(|path| path == "/v1/metrics"),
        "no traces over HTTP: {paths:?}"
    );
}

#[test]
fn an_unknown_per_signal_protocol_is_refused_naming_its_variable() {
    const NAME: &str = "an_unknown_per_signal_protocol_is_refused_naming_its_variable";
    if std::env::var(CHILD_ROLE).as_deref() == Ok("bad-metrics-protocol") {
        let error = cairn_telemetry::providers(&Config::new("child")).expect_err("refused");
        assert!(
            matches!(
                &error,
                Error::UnsupportedProtocol { variable: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", value }
                    if value == "http/json"
            ),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=\"http/json\" is not supported \
             (use \"http/protobuf\" or \"grpc\")"
        );
        return;
    }
    let output = Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", NAME, "--test-threads=1"])
        .env(CHILD_ROLE, "bad-metrics-protocol")
        .env_remove("OTEL_SDK_DISABLED")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
        // A valid shared value does not hide the bad per-signal one.
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json")
        .output()
        .expect("run the child test");
    assert_child_passed(&output, "");
}
