//! OTLP/gRPC round trip: the tonic exporters reach a real OTLP/gRPC receiver on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_telemetry::emit::{self, RunFinished, RunOutcomeName};
use cairn_telemetry::{Config, Error, Export, OtlpProtocol, names};
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

#[test]
fn traces_and_metrics_arrive_at_a_real_otlp_grpc_receiver() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
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

    let config = Config::new("cairn-grpc-test").with_export(Export::Otlp {
        protocol: OtlpProtocol::Grpc,
        endpoint: Some(format!("http://{addr}")),
    });
    let providers = {
        let _in_runtime = runtime.enter();
        cairn_telemetry::providers(&config).expect("providers")
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

    let _ = stop.send(());
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), server).await })
        .expect("server stops in time")
        .expect("server task")
        .expect("server ran cleanly");

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
    let metric_names: Vec<String> = collector
        .metrics
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| s.metrics.iter().map(|m| m.name.clone()))
        .collect();
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
