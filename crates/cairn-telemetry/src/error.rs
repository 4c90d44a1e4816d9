//! The error type of `init` and of [`crate::TelemetryGuard::shutdown`].

/// What can go wrong while installing or shutting down telemetry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `RUST_LOG` (or the configured default filter) is not a valid filter directive.
    #[error("invalid log filter {value:?} (from {origin}): {source}")]
    InvalidFilter {
        /// The rejected directive string.
        value: String,
        /// Where it came from: `RUST_LOG`, `Config::default_filter` or `Config::export_filter`.
        origin: &'static str,
        /// The parser's complaint.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` (or a signal's own `..._TRACES_PROTOCOL` /
    /// `..._METRICS_PROTOCOL`) names a protocol cairn does not speak.
    #[error("{variable}={value:?} is not supported (use \"http/protobuf\" or \"grpc\")")]
    UnsupportedProtocol {
        /// The variable that held it.
        variable: &'static str,
        /// The rejected value.
        value: String,
    },
    /// The requested OTLP protocol was not compiled in.
    #[error("OTLP protocol {protocol} needs the cairn-telemetry feature {feature:?}")]
    ProtocolNotCompiled {
        /// The requested protocol.
        protocol: crate::OtlpProtocol,
        /// The feature that provides it.
        feature: &'static str,
    },
    /// OTLP over gRPC was requested outside a tokio runtime; the tonic exporter needs one.
    #[error("OTLP over gRPC needs a tokio runtime: call init (or providers) inside one")]
    NoTokioRuntime,
    /// An OTLP collector endpoint is not an `http://` or `https://` URL with a host (and a
    /// port from 1 to 65535, if it names one). The exporters accept some such values (an
    /// empty string, another scheme, port 99999) and then fail every export until the
    /// shutdown reports it, so they are refused here instead.
    #[error("OTLP endpoint {endpoint:?} (from {origin}) is not valid: {reason}")]
    InvalidEndpoint {
        /// The rejected endpoint.
        endpoint: String,
        /// Where it came from: `Export::Otlp` or the variable that held it.
        origin: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Building an OTLP exporter failed (bad endpoint, HTTP client, ...).
    #[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
    #[error("cannot build the OTLP {signal} exporter ({protocol}): {source}")]
    Exporter {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// The protocol in use.
        protocol: crate::OtlpProtocol,
        /// The exporter's error.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    /// A global subscriber is already installed (`init` was called twice, or another crate
    /// installed one).
    #[error("a global tracing subscriber is already installed")]
    SubscriberAlreadySet {
        /// The error from `tracing`.
        #[source]
        source: tracing::subscriber::SetGlobalDefaultError,
    },
    /// An `OTEL_BSP_*` variable is set to something that is not a valid setting.
    #[error("{name}={value:?} is not valid: expected {expected}")]
    InvalidEnv {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What it should hold.
        expected: &'static str,
    },
    /// The span queue's export thread could not be started.
    #[error("cannot start the span export thread: {source}")]
    ExportThread {
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Exporting to the collector failed (it is down, refused the export, or did not answer
    /// before the shutdown's time ran out): what was not exported is lost. Reported by a
    /// shutdown, for every failure since the last flush.
    #[error(
        "could not export {signals} to the OTLP collector at {endpoint}; what was not \
         exported is lost: {source}"
    )]
    Export {
        /// The collector, as configured; when traces and metrics go to different collectors
        /// and both failed, each with its signal (`A (traces) and B (metrics)`).
        endpoint: String,
        /// `traces`, `metrics`, or `traces and metrics`: the signals whose export failed.
        signals: &'static str,
        /// The first failure (the traces' when both failed).
        #[source]
        source: opentelemetry_sdk::error::OTelSdkError,
    },
    /// Flushing or shutting down a provider failed; buffered telemetry may be lost.
    #[error("shutting down the OpenTelemetry {signal} provider failed: {source}")]
    Shutdown {
        /// `traces`, `metrics`, or `traces and metrics`.
        signal: &'static str,
        /// The SDK's error.
        #[source]
        source: opentelemetry_sdk::error::OTelSdkError,
    },
}
