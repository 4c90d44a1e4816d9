//! `init`: the one-call setup for binaries (fmt to stderr, `RUST_LOG` filtering, OTLP export
//! of traces and metrics) and the guard that flushes on drop.

use std::fmt;
use std::io::Write as _;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{BatchConfig, BatchConfigBuilder, SdkTracerProvider};
use tracing::Subscriber;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

use crate::error::Error;
use crate::handover::MetricsFilter;
use crate::layers::{LogFormat, fmt_layer, metrics_layer, trace_half, trace_layer_recording};
use crate::link::tracer_provider_builder;
use crate::metric_export::MetricFailures;
use crate::span_queue::SpanQueue;

/// The standard variable naming the OTLP collector's base URL.
pub const ENV_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The standard variable naming the collector URL for traces only (used as is).
pub const ENV_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// The standard variable naming the collector URL for metrics only (used as is).
pub const ENV_OTLP_METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
/// The standard variable choosing the protocol: `http/protobuf` or `grpc`.
pub const ENV_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// The standard variable choosing the protocol for traces only; it takes precedence over
/// [`ENV_OTLP_PROTOCOL`].
pub const ENV_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
/// The standard variable choosing the protocol for metrics only; it takes precedence over
/// [`ENV_OTLP_PROTOCOL`].
pub const ENV_OTLP_METRICS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
/// The standard kill switch: `true` turns export off.
pub const ENV_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// How long the final flush at shutdown may take, unless [`Config::with_shutdown_timeout`]
/// says otherwise: one second.
///
/// The final flush is one export per signal (a few for a long run's spans). A collector is
/// normally a local agent or a sidecar that answers in milliseconds, and even a remote one
/// behind TLS answers one request well within a second; one that takes longer is taken for
/// down. A second is then the most a down or hung collector adds to a short command (a
/// `cairn runs` polled by a script), where the exporter's own timeout
/// (`OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s) and the SDK's metrics shutdown (5 s) would add up to
/// ten seconds.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(1);

/// The OTLP wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// Protobuf over HTTP (port 4318 by convention); feature `otlp-http`.
    HttpProtobuf,
    /// gRPC (port 4317 by convention); feature `otlp-grpc`. Build it inside a tokio runtime,
    /// and shut it down from outside the runtime's worker threads (or with more than one
    /// worker): the SDK's export thread waits on connection tasks that run on the runtime.
    Grpc,
}

impl fmt::Display for OtlpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::Grpc => "grpc",
        })
    }
}

impl OtlpProtocol {
    /// The protocol used when neither the config nor `OTEL_EXPORTER_OTLP_PROTOCOL` picks one:
    /// HTTP when compiled in, else gRPC.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::OtlpProtocol;
    ///
    /// let protocol = OtlpProtocol::compiled_default();
    /// if cfg!(feature = "otlp-http") {
    ///     // The default features include `otlp-http`: HTTP is compiled in and is the default.
    ///     assert_eq!(protocol, OtlpProtocol::HttpProtobuf);
    ///     // Spelled as `OTEL_EXPORTER_OTLP_PROTOCOL` spells it.
    ///     assert_eq!(protocol.to_string(), "http/protobuf");
    /// } else {
    ///     assert_eq!(protocol, OtlpProtocol::Grpc);
    /// }
    /// ```
    pub fn compiled_default() -> Self {
        if cfg!(feature = "otlp-http") || !cfg!(feature = "otlp-grpc") {
            OtlpProtocol::HttpProtobuf
        } else {
            OtlpProtocol::Grpc
        }
    }

    /// The protocol one signal's variables choose: the signal's own variable, else the shared
    /// [`ENV_OTLP_PROTOCOL`], else [`OtlpProtocol::compiled_default`]. An empty value counts
    /// as unset, as the specification asks.
    fn from_env(signal_variable: &'static str) -> Result<Self, Error> {
        for variable in [signal_variable, ENV_OTLP_PROTOCOL] {
            match std::env::var(variable) {
                Ok(value) if !value.trim().is_empty() => {
                    return match value.trim() {
                        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
                        "grpc" => Ok(OtlpProtocol::Grpc),
                        other => Err(Error::UnsupportedProtocol {
                            variable,
                            value: other.to_owned(),
                        }),
                    };
                }
                _ => {}
            }
        }
        Ok(OtlpProtocol::compiled_default())
    }
}

/// Whether and where `init` exports traces and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Export {
    /// Export over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or the per-signal
    /// `..._TRACES_ENDPOINT` / `..._METRICS_ENDPOINT`) is set and `OTEL_SDK_DISABLED` is not
    /// `true`. Each signal's protocol comes from its own `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`
    /// / `..._METRICS_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else
    /// [`OtlpProtocol::compiled_default`], so traces and metrics may go to collectors that
    /// speak different protocols.
    #[default]
    FromEnv,
    /// No export: logs only.
    Off,
    /// Always export over OTLP.
    Otlp {
        /// The wire protocol.
        protocol: OtlpProtocol,
        /// The collector's base URL (for HTTP, `v1/traces` and `v1/metrics` join its path,
        /// before any query, as for `OTEL_EXPORTER_OTLP_ENDPOINT`). `None` reads the standard
        /// variables, then falls back to the protocol's localhost default. An endpoint that
        /// is not an `http://` or `https://` URL with a host is [`Error::InvalidEndpoint`].
        endpoint: Option<String>,
    },
}

/// Settings for [`init`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// `service.name` of the exported resource, unless the environment names the service:
    /// `OTEL_SERVICE_NAME`, else a `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, takes
    /// precedence, so a deployment can tell apart the processes of one binary.
    pub service_name: String,
    /// How log lines are written to stderr.
    pub log_format: LogFormat,
    /// The filter when `RUST_LOG` is unset (EnvFilter syntax).
    pub default_filter: String,
    /// The export layers' filter when `RUST_LOG` is unset, if it differs from
    /// [`Config::default_filter`]: a binary that keeps stderr to errors (`"error"`) still
    /// exports its spans and events with `Some("info".into())`. `None` (the default) uses
    /// `default_filter`. `RUST_LOG`, when set, filters both.
    pub export_filter: Option<String>,
    /// OTLP export.
    pub export: Export,
    /// How often metrics are exported.
    pub metrics_interval: Duration,
    /// Whether the executor's task attempts are tracing spans for the export layers too
    /// (`false`, the default: they reach the exporter through the attempt hook, see
    /// [`crate::attempt`], which costs about half as much per attempt). Set it when handlers
    /// rely on `tracing::Span::current()` being the task span, for example to carry it into
    /// work they spawn with `tracing::Instrument::in_current_span`.
    pub traced_task_spans: bool,
    /// The longest the [`TelemetryGuard`]'s final flush and shutdown may take
    /// ([`DEFAULT_SHUTDOWN_TIMEOUT`] by default); what is not exported by then is lost, and
    /// reported as [`Error::Export`].
    pub shutdown_timeout: Duration,
}

impl Config {
    /// Defaults: human logs, filter [`DEFAULT_FILTER`], [`Export::FromEnv`], metrics every 60 s.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::{Config, Export, LogFormat};
    ///
    /// let config = Config::new("cairn")
    ///     .with_log_format(LogFormat::Json)
    ///     .with_export(Export::Off);
    /// assert_eq!(config.service_name, "cairn");
    /// ```
    pub fn new(service_name: impl Into<String>) -> Self {
        Config {
            service_name: service_name.into(),
            log_format: LogFormat::Human,
            default_filter: DEFAULT_FILTER.to_owned(),
            export_filter: None,
            export: Export::FromEnv,
            metrics_interval: Duration::from_secs(60),
            traced_task_spans: false,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
        }
    }

    /// Sets [`Config::log_format`].
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::{Config, LogFormat};
    ///
    /// assert_eq!(Config::new("cairn").log_format, LogFormat::Human);
    /// let config = Config::new("cairn").with_log_format(LogFormat::Json);
    /// assert_eq!(config.log_format, LogFormat::Json);
    /// ```
    pub fn with_log_format(mut self, log_format: LogFormat) -> Self {
        self.log_format = log_format;
        self
    }

    /// Sets [`Config::default_filter`].
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::{Config, Error, Export};
    /// use tracing_subscriber::Registry;
    ///
    /// let config = Config::new("cli").with_default_filter("warn,cairn=info");
    /// assert_eq!(config.default_filter, "warn,cairn=info");
    ///
    /// // A filter that does not parse is refused when the layers are built.
    /// let bad = Config::new("cli").with_default_filter("cairn=loud").with_export(Export::Off);
    /// let providers = cairn_telemetry::providers(&bad)?;
    /// let layers = cairn_telemetry::export_layers::<Registry>(&bad, &providers);
    /// // `RUST_LOG`, when set, is used instead of the default filter.
    /// if std::env::var_os("RUST_LOG").is_none() {
    ///     let Err(Error::InvalidFilter { origin, .. }) = layers else {
    ///         panic!("`cairn=loud` is no filter");
    ///     };
    ///     assert_eq!(origin, "Config::default_filter");
    /// }
    /// # providers.shutdown()?;
    /// # Ok::<(), cairn_telemetry::Error>(())
    /// ```
    pub fn with_default_filter(mut self, filter: impl Into<String>) -> Self {
        self.default_filter = filter.into();
        self
    }

    /// Sets [`Config::export_filter`].
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::{Config, DEFAULT_FILTER};
    ///
    /// // Errors only on stderr; the collector still gets every span and INFO event.
    /// let config = Config::new("cli")
    ///     .with_default_filter("error")
    ///     .with_export_filter(DEFAULT_FILTER);
    /// assert_eq!(config.export_filter.as_deref(), Some("info"));
    /// ```
    pub fn with_export_filter(mut self, filter: impl Into<String>) -> Self {
        self.export_filter = Some(filter.into());
        self
    }

    /// Sets [`Config::export`].
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::{Config, Export, OtlpProtocol};
    ///
    /// // Off: logs only, whatever the OTEL_* variables say.
    /// let off = cairn_telemetry::providers(&Config::new("cli").with_export(Export::Off))?;
    /// assert!(off.endpoint.is_none() && off.span_queue.is_none());
    /// # off.shutdown()?;
    ///
    /// // An explicit collector; building the exporters does not connect to it.
    /// let export = Export::Otlp {
    ///     protocol: OtlpProtocol::HttpProtobuf,
    ///     endpoint: Some("http://collector.internal:4318".to_owned()),
    /// };
    /// let otlp = cairn_telemetry::providers(&Config::new("cli").with_export(export))?;
    /// assert_eq!(otlp.endpoint.as_deref(), Some("http://collector.internal:4318"));
    /// assert!(otlp.span_queue.is_some());
    /// // Nothing was recorded, so the shutdown exports nothing and does not wait on the collector.
    /// otlp.shutdown()?;
    /// # Ok::<(), cairn_telemetry::Error>(())
    /// ```
    pub fn with_export(mut self, export: Export) -> Self {
        self.export = export;
        self
    }

    /// Sets [`Config::metrics_interval`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_telemetry::Config;
    ///
    /// assert_eq!(Config::new("cairn").metrics_interval, Duration::from_secs(60));
    /// let config = Config::new("cairn").with_metrics_interval(Duration::from_secs(10));
    /// assert_eq!(config.metrics_interval, Duration::from_secs(10));
    /// ```
    pub fn with_metrics_interval(mut self, interval: Duration) -> Self {
        self.metrics_interval = interval;
        self
    }

    /// Sets [`Config::traced_task_spans`].
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::Config;
    ///
    /// // Off by default: attempts reach the exporter through the attempt hook.
    /// assert!(!Config::new("cairn").traced_task_spans);
    /// assert!(Config::new("cairn").with_traced_task_spans(true).traced_task_spans);
    /// ```
    pub fn with_traced_task_spans(mut self, traced: bool) -> Self {
        self.traced_task_spans = traced;
        self
    }

    /// Sets [`Config::shutdown_timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_telemetry::Config;
    ///
    /// // A long-running service can afford to wait longer for its last spans.
    /// let config = Config::new("scheduler").with_shutdown_timeout(Duration::from_secs(5));
    /// assert_eq!(config.shutdown_timeout, Duration::from_secs(5));
    /// ```
    pub fn with_shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }
}

/// Keeps the OpenTelemetry providers alive; dropping it flushes and shuts them down, so hold
/// it until `main` returns (`let _guard = init(..)?;`, not `let _ = ...`).
///
/// The flush takes at most [`Config::shutdown_timeout`]. Dropping the guard writes a failed
/// export (a collector that is down, or did not answer in time) to stderr as one warning line
/// naming the collector (lost, never a panic, when stderr's reader has gone away);
/// [`TelemetryGuard::shutdown`] returns it instead.
#[must_use = "dropping the guard shuts telemetry export down"]
pub struct TelemetryGuard {
    providers: Option<Providers>,
    shutdown_timeout: Duration,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("active", &self.providers.is_some())
            .finish()
    }
}

impl TelemetryGuard {
    /// Flushes and shuts down both providers within [`Config::shutdown_timeout`], as
    /// [`Providers::shutdown_with_timeout`].
    ///
    /// # Errors
    ///
    /// [`Error::Export`] when the collector could not be reached, refused the export or did
    /// not answer in time; what was not exported is lost. [`Error::Shutdown`] when a provider
    /// was already shut down.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::{Config, Error, Export};
    ///
    /// // Each doctest runs in a process of its own, so this one may install the global subscriber.
    /// let guard = cairn_telemetry::init(Config::new("cli").with_export(Export::Off))?;
    /// // A second `init` finds the subscriber installed and changes nothing.
    /// let again = cairn_telemetry::init(Config::new("cli").with_export(Export::Off));
    /// assert!(matches!(again, Err(Error::SubscriberAlreadySet { .. })));
    /// // Nothing to export: the shutdown succeeds at once.
    /// guard.shutdown()?;
    /// # Ok::<(), cairn_telemetry::Error>(())
    /// ```
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.shutdown_providers()
    }

    fn shutdown_providers(&mut self) -> Result<(), Error> {
        match self.providers.take() {
            Some(providers) => providers.shutdown_with_timeout(self.shutdown_timeout),
            None => Ok(()),
        }
    }
}

/// The tracer and meter providers cairn's layers export through, and the [`SpanQueue`] the
/// tracer provider exports through when cairn built it ([`providers`]).
///
/// With a span queue, the export layers hand the executor's attempts to it as records, built
/// into spans on its export thread; without one they build each attempt's span through the
/// SDK, for whatever processors the host gave its provider.
///
/// # Examples
///
/// A host's own providers, whose spans go straight to an exporter:
///
/// ```
/// let traces = cairn_telemetry::link::tracer_provider_builder().build();
/// let metrics = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
/// let providers = cairn_telemetry::Providers::new(traces, metrics);
/// assert!(providers.span_queue.is_none());
/// providers.shutdown()?;
/// # Ok::<(), cairn_telemetry::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Providers {
    /// Where spans go.
    pub traces: SdkTracerProvider,
    /// Where metrics go.
    pub metrics: SdkMeterProvider,
    /// The span processor of `traces`, when it is a [`SpanQueue`] (registered with `traces`:
    /// shutting `traces` down shuts it down).
    pub span_queue: Option<SpanQueue>,
    /// The collector the exporters send to, when known ([`providers`] sets it): a failed
    /// shutdown names it ([`Error::Export`]).
    pub endpoint: Option<String>,
    /// The metrics' collector when it is not `endpoint` (the standard variables can name one
    /// per signal), so that a failed metrics export names where the metrics went.
    metrics_endpoint: Option<String>,
    /// Failures of the metric exporter that [`providers`] wrapped, kept for the shutdown.
    metric_failures: Option<Arc<MetricFailures>>,
}

impl Providers {
    /// Providers without a span queue.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::Providers;
    /// use opentelemetry_sdk::metrics::SdkMeterProvider;
    ///
    /// // Build the tracer provider with `RunIdGenerator`, so run spans get derivable ids.
    /// let traces = cairn_telemetry::link::tracer_provider_builder().build();
    /// let providers = Providers::new(traces, SdkMeterProvider::builder().build());
    /// assert!(providers.span_queue.is_none() && providers.endpoint.is_none());
    /// providers.shutdown()?;
    /// # Ok::<(), cairn_telemetry::Error>(())
    /// ```
    pub fn new(traces: SdkTracerProvider, metrics: SdkMeterProvider) -> Self {
        Providers {
            traces,
            metrics,
            span_queue: None,
            endpoint: None,
            metrics_endpoint: None,
            metric_failures: None,
        }
    }

    /// Names `queue` as `traces`' span processor. `queue` MUST be registered with `traces`
    /// (`with_span_processor(queue.clone())`): the executor's attempts go to it directly.
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::Providers;
    /// use cairn_telemetry::span_queue::{SpanQueue, SpanQueueConfig};
    /// use opentelemetry_sdk::metrics::SdkMeterProvider;
    /// use opentelemetry_sdk::trace::InMemorySpanExporter;
    ///
    /// let queue = SpanQueue::new(InMemorySpanExporter::default(), SpanQueueConfig::default())?;
    /// let traces = cairn_telemetry::link::tracer_provider_builder()
    ///     .with_span_processor(queue.clone())
    ///     .build();
    /// let providers =
    ///     Providers::new(traces, SdkMeterProvider::builder().build()).with_span_queue(queue);
    /// assert!(providers.span_queue.is_some());
    /// // Shutting the tracer provider down shuts the queue down too.
    /// providers.shutdown()?;
    /// let queue = providers.span_queue.as_ref().expect("named above");
    /// assert!(opentelemetry_sdk::trace::SpanProcessor::force_flush(queue).is_err());
    /// # Ok::<(), cairn_telemetry::Error>(())
    /// ```
    #[must_use]
    pub fn with_span_queue(mut self, queue: SpanQueue) -> Self {
        self.span_queue = Some(queue);
        self
    }

    /// Names the collector the exporters send to, for [`Error::Export`].
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::span_queue::{SpanQueue, SpanQueueConfig};
    /// use cairn_telemetry::{Error, Providers};
    /// use opentelemetry::trace::{Tracer as _, TracerProvider as _};
    /// use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
    /// use opentelemetry_sdk::metrics::SdkMeterProvider;
    /// use opentelemetry_sdk::trace::{SpanData, SpanExporter};
    ///
    /// /// An exporter whose collector is down.
    /// #[derive(Debug)]
    /// struct Down;
    ///
    /// impl SpanExporter for Down {
    ///     async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
    ///         Err(OTelSdkError::InternalFailure("connection refused".to_owned()))
    ///     }
    /// }
    ///
    /// let queue = SpanQueue::new(Down, SpanQueueConfig::default())?;
    /// let traces = cairn_telemetry::link::tracer_provider_builder()
    ///     .with_span_processor(queue.clone())
    ///     .build();
    /// let providers = Providers::new(traces, SdkMeterProvider::builder().build())
    ///     .with_span_queue(queue)
    ///     .with_endpoint("http://collector.internal:4318");
    /// providers.traces.tracer("example").in_span("work", |_| {});
    /// // The failed export is reported with the collector's name.
    /// let Err(Error::Export { endpoint, signals, .. }) = providers.shutdown() else {
    ///     panic!("the export failed");
    /// };
    /// assert_eq!((endpoint.as_str(), signals), ("http://collector.internal:4318", "traces"));
    /// # Ok::<(), cairn_telemetry::Error>(())
    /// ```
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// [`Providers::shutdown_with_timeout`] with [`DEFAULT_SHUTDOWN_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// As [`Providers::shutdown_with_timeout`].
    ///
    /// # Examples
    ///
    /// ```
    /// use cairn_telemetry::{Config, Error, Export};
    ///
    /// let providers = cairn_telemetry::providers(&Config::new("host").with_export(Export::Off))?;
    /// providers.shutdown()?;
    /// // A second shutdown finds the providers shut down already.
    /// assert!(matches!(providers.shutdown(), Err(Error::Shutdown { .. })));
    /// # Ok::<(), cairn_telemetry::Error>(())
    /// ```
    pub fn shutdown(&self) -> Result<(), Error> {
        self.shutdown_with_timeout(DEFAULT_SHUTDOWN_TIMEOUT)
    }

    /// Flushes and shuts down both providers (and so the span queue), together, returning
    /// within about `timeout` whatever the collector does. What is not exported by then is
    /// lost: an export still waiting on the collector is left to its own timeout
    /// (`OTEL_EXPORTER_OTLP_TIMEOUT`) on the SDK's threads, which do not keep the process
    /// from exiting. With nothing recorded, nothing is exported, and the shutdown does not
    /// wait on the collector at all.
    ///
    /// # Errors
    ///
    /// - [`Error::Export`] when [`Providers::endpoint`] is known and an export failed (since
    ///   the last flush, or now) or did not finish in time; both signals are still shut down,
    ///   and the error says which failed;
    /// - [`Error::Shutdown`] otherwise when a provider fails to flush or stop, or was
    ///   already shut down.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cairn_telemetry::{Config, Export};
    ///
    /// let providers = cairn_telemetry::providers(&Config::new("host").with_export(Export::Off))?;
    /// providers.shutdown_with_timeout(Duration::from_millis(500))?;
    /// # Ok::<(), cairn_telemetry::Error>(())
    /// ```
    pub fn shutdown_with_timeout(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        // The SDK's meter provider ignores the timeout it is given (its periodic reader
        // waits 5 s for a final export that a hung collector never answers), so it shuts
        // down on a thread of its own, left behind if it overruns.
        let (done, metrics_done) = mpsc::channel();
        let metrics = self.metrics.clone();
        let spawned = std::thread::Builder::new()
            .name("cairn-metrics-shutdown".to_owned())
            .spawn(move || {
                let _ = done.send(metrics.shutdown());
            });
        let traces = self.traces.shutdown_with_timeout(timeout);
        let metrics = match spawned {
            Ok(_) => metrics_done
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|error| match error {
                    mpsc::RecvTimeoutError::Timeout => Err(OTelSdkError::Timeout(timeout)),
                    mpsc::RecvTimeoutError::Disconnected => Err(OTelSdkError::InternalFailure(
                        "the metrics shutdown panicked".to_owned(),
                    )),
                }),
            // Without a thread, shut down here: bounded by the SDK's 5 s instead.
            Err(_) => self.metrics.shutdown(),
        };
        self.report(traces, metrics)
    }

    /// The error of a shutdown whose providers returned `traces` and `metrics`: the span
    /// queue's and the metric exporter's own errors stand in for the SDK's summaries of them.
    fn report(&self, traces: OTelSdkResult, metrics: OTelSdkResult) -> Result<(), Error> {
        let traces = traces.map_err(|error| {
            self.span_queue
                .as_ref()
                .and_then(SpanQueue::shutdown_error)
                .unwrap_or(error)
        });
        // The wrapped exporter tells the SDK its failures went through: they are here.
        let unreported = self
            .metric_failures
            .as_ref()
            .and_then(|failures| failures.take_unreported());
        let metrics = match (metrics, unreported) {
            (Err(OTelSdkError::Timeout(timeout)), _) => Err(OTelSdkError::Timeout(timeout)),
            (_, Some(error)) => Err(OTelSdkError::InternalFailure(error)),
            (result, None) => result,
        };
        let (source, signals) = match (traces, metrics) {
            (Ok(()), Ok(())) => return Ok(()),
            (Err(traces), Ok(())) => (traces, "traces"),
            (Ok(()), Err(metrics)) => (metrics, "metrics"),
            (Err(traces), Err(_)) => (traces, "traces and metrics"),
        };
        match self.failed_endpoint(signals) {
            Some(endpoint) if !matches!(source, OTelSdkError::AlreadyShutdown) => {
                Err(Error::Export {
                    endpoint,
                    signals,
                    source,
                })
            }
            _ => Err(Error::Shutdown {
                signal: signals,
                source,
            }),
        }
    }
}

impl Providers {
    /// The collector of the failed `signals`, as [`Error::Export`] names it: both, each with
    /// its signal, when traces and metrics went to different collectors and both failed.
    fn failed_endpoint(&self, signals: &str) -> Option<String> {
        let traces = self.endpoint.as_deref()?;
        let metrics = self.metrics_endpoint.as_deref().unwrap_or(traces);
        Some(match signals {
            "metrics" => metrics.to_owned(),
            _ if signals != "traces" && metrics != traces => {
                format!("{traces} (traces) and {metrics} (metrics)")
            }
            _ => traces.to_owned(),
        })
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown_providers() {
            // Not through the subscriber, which may be unable to deliver anything by now.
            // Not `eprintln!` either: it panics when stderr's reader has gone away (`cairn
            // ... 2>&1 | head`), and a panic here would turn a finished `main` into exit
            // code 101. With nowhere to write, the warning is lost.
            let _ = writeln!(std::io::stderr(), "cairn-telemetry: warning: {error}");
        }
    }
}

fn env_filter(config: &Config) -> Result<EnvFilter, Error> {
    let (directives, origin) = filter_directives(config);
    parse_filter(&directives, origin)
}

/// The filter directives in force (`RUST_LOG`, else the configured default) and where they
/// come from, for error messages.
fn filter_directives(config: &Config) -> (String, &'static str) {
    match std::env::var(EnvFilter::DEFAULT_ENV) {
        Ok(value) if !value.trim().is_empty() => (value, "RUST_LOG"),
        _ => (config.default_filter.clone(), "Config::default_filter"),
    }
}

/// [`filter_directives`] for the export layers: [`Config::export_filter`] stands in for the
/// default filter when set.
fn export_filter_directives(config: &Config) -> (String, &'static str) {
    match (&config.export_filter, filter_directives(config)) {
        (Some(export), (_, "Config::default_filter")) => (export.clone(), "Config::export_filter"),
        (_, directives) => directives,
    }
}

fn parse_filter(directives: &str, origin: &'static str) -> Result<EnvFilter, Error> {
    EnvFilter::try_new(directives).map_err(|source| Error::InvalidFilter {
        value: directives.to_owned(),
        origin,
        source,
    })
}

fn env_is_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|value| !value.trim().is_empty())
}

/// Where and how the two signals are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExportTarget {
    traces: OtlpProtocol,
    metrics: OtlpProtocol,
    /// The explicit base URL, if any; `None` leaves it to the standard variables.
    endpoint: Option<String>,
}

/// The protocols and explicit endpoint to export to, or `None` for no export.
fn resolve_export(export: &Export) -> Result<Option<ExportTarget>, Error> {
    match export {
        Export::Off => Ok(None),
        Export::Otlp { protocol, endpoint } => Ok(Some(ExportTarget {
            traces: *protocol,
            metrics: *protocol,
            endpoint: endpoint.clone(),
        })),
        Export::FromEnv => {
            let disabled = std::env::var(ENV_SDK_DISABLED)
                .is_ok_and(|value| value.trim().eq_ignore_ascii_case("true"));
            let configured = [
                ENV_OTLP_ENDPOINT,
                ENV_OTLP_TRACES_ENDPOINT,
                ENV_OTLP_METRICS_ENDPOINT,
            ]
            .into_iter()
            .any(env_is_set);
            if disabled || !configured {
                return Ok(None);
            }
            Ok(Some(ExportTarget {
                traces: OtlpProtocol::from_env(ENV_OTLP_TRACES_PROTOCOL)?,
                metrics: OtlpProtocol::from_env(ENV_OTLP_METRICS_PROTOCOL)?,
                endpoint: None,
            }))
        }
    }
}

/// Spans the batch span processor of [`providers`] and `init` may hold before it drops new
/// ones, unless `OTEL_BSP_MAX_QUEUE_SIZE` says otherwise.
///
/// The SDK's default (2,048) is about 7 ms of task spans at 300,000 tasks/s: one scheduling
/// hiccup of the export thread and spans are silently dropped. 65,536 spans (a few tens of
/// MiB at most) ride out such hiccups.
pub const SPAN_QUEUE_SIZE: usize = 65_536;

/// The batch span processor settings [`providers`] and `init` use: the SDK's defaults and its
/// `OTEL_BSP_*` variables, except that the queue holds [`SPAN_QUEUE_SIZE`] spans unless
/// `OTEL_BSP_MAX_QUEUE_SIZE` is set. Hosts that build their own tracer provider for
/// [`crate::layers::layer`] should use it too.
///
/// # Examples
///
/// ```
/// use opentelemetry_sdk::trace::{BatchSpanProcessor, InMemorySpanExporter};
///
/// let processor = BatchSpanProcessor::builder(InMemorySpanExporter::default())
///     .with_batch_config(cairn_telemetry::span_batch_config())
///     .build();
/// let provider = cairn_telemetry::link::tracer_provider_builder()
///     .with_span_processor(processor)
///     .build();
/// # provider.shutdown().ok();
/// ```
pub fn span_batch_config() -> BatchConfig {
    let builder = BatchConfigBuilder::default();
    if env_is_set(ENV_BSP_MAX_QUEUE_SIZE) {
        builder.build()
    } else {
        builder.with_max_queue_size(SPAN_QUEUE_SIZE).build()
    }
}

/// The SDK's variable for the batch span processor's queue size.
const ENV_BSP_MAX_QUEUE_SIZE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";

/// Builds the tracer and meter providers `init` would use (resource with `service.name` from
/// `OTEL_SERVICE_NAME`, else [`Config::service_name`]; [`crate::link::RunIdGenerator`]; OTLP
/// exporters per [`Config::export`]; spans through a [`SpanQueue`] configured by
/// [`crate::span_queue::SpanQueueConfig::from_env`]) without installing anything, for hosts
/// that compose their own subscriber with [`export_layers`] or [`crate::layers::layer`].
/// Shut them down before exit to flush them ([`Providers::shutdown`]).
///
/// # Errors
///
/// As [`init`], minus the filter and subscriber errors: [`Error::UnsupportedProtocol`],
/// [`Error::InvalidEndpoint`], [`Error::ProtocolNotCompiled`], [`Error::NoTokioRuntime`],
/// [`Error::Exporter`], and
/// [`Error::InvalidEnv`] and [`Error::ExportThread`] for the span queue.
///
/// # Examples
///
/// ```
/// use cairn_telemetry::{Config, Export};
///
/// let providers = cairn_telemetry::providers(&Config::new("cairn").with_export(Export::Off))?;
/// # providers.shutdown()?;
/// # Ok::<(), cairn_telemetry::Error>(())
/// ```
pub fn providers(config: &Config) -> Result<Providers, Error> {
    let resource = resource(&config.service_name);
    let traces = tracer_provider_builder().with_resource(resource.clone());
    let metrics = SdkMeterProvider::builder().with_resource(resource);
    match resolve_export(&config.export)? {
        None => Ok(Providers::new(traces.build(), metrics.build())),
        Some(target) => {
            let endpoint = target.endpoint.as_deref();
            let traces_shown = checked_endpoint(target.traces, endpoint, ENV_OTLP_TRACES_ENDPOINT)?;
            let metrics_shown =
                checked_endpoint(target.metrics, endpoint, ENV_OTLP_METRICS_ENDPOINT)?;
            let failures = Arc::new(MetricFailures::default());
            let providers = otlp::with_exporters(
                traces,
                metrics,
                &target,
                config.metrics_interval,
                Arc::clone(&failures),
            )?;
            Ok(Providers {
                metric_failures: Some(failures),
                metrics_endpoint: (metrics_shown != traces_shown).then_some(metrics_shown),
                ..providers.with_endpoint(traces_shown)
            })
        }
    }
}

/// The standard variable naming the service; it takes precedence over a `service.name` in
/// `OTEL_RESOURCE_ATTRIBUTES`.
const ENV_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";

/// The exported resource: the SDK's (its own attributes and `OTEL_RESOURCE_ATTRIBUTES`), whose
/// `service.name` is `OTEL_SERVICE_NAME`, else the one in `OTEL_RESOURCE_ATTRIBUTES`, else
/// `default_name`. The environment names the service because a binary such as `cairn`
/// cannot know what its deployment calls it; the SDK's `with_service_name` would override
/// both variables, and its builder lets `OTEL_RESOURCE_ATTRIBUTES` override
/// `OTEL_SERVICE_NAME`, against the specification.
fn resource(default_name: &str) -> Resource {
    use opentelemetry_sdk::resource::{EnvResourceDetector, ResourceDetector as _};

    let builder = Resource::builder();
    let from_attributes = || {
        EnvResourceDetector::new()
            .detect()
            .get(&opentelemetry::Key::from_static_str("service.name"))
            .is_some()
    };
    match std::env::var(ENV_SERVICE_NAME) {
        Ok(name) if !name.is_empty() => builder.with_service_name(name),
        _ if from_attributes() => builder,
        _ => builder.with_service_name(default_name.to_owned()),
    }
    .build()
}

/// One signal's collector as messages name it, once [`endpoint_problem`] finds nothing wrong
/// with it: the explicit endpoint, else the standard variables in the order that signal's
/// exporter reads them (`signal_variable`, the signal's own, before the shared one), else the
/// protocol's localhost default.
fn checked_endpoint(
    protocol: OtlpProtocol,
    endpoint: Option<&str>,
    signal_variable: &'static str,
) -> Result<String, Error> {
    let given = match endpoint {
        Some(endpoint) => Some((endpoint.to_owned(), "Export::Otlp")),
        None => [signal_variable, ENV_OTLP_ENDPOINT]
            .into_iter()
            .find_map(|name| {
                std::env::var(name)
                    .ok()
                    .filter(|value| !value.trim().is_empty())
                    .map(|value| (value, name))
            }),
    };
    let Some((endpoint, origin)) = given else {
        return Ok(match protocol {
            OtlpProtocol::HttpProtobuf => "http://localhost:4318",
            OtlpProtocol::Grpc => "http://localhost:4317",
        }
        .to_owned());
    };
    match endpoint_problem(&endpoint) {
        Some(reason) => Err(Error::InvalidEndpoint {
            endpoint,
            origin,
            reason,
        }),
        None => Ok(endpoint),
    }
}

/// What makes `endpoint` no collector URL, if anything: it must be `http://` or `https://`
/// with a host and, if it names a port, one from 1 to 65535. The rest (characters, path) is
/// left to the exporter's own parser, which refuses with `Error::Exporter`.
fn endpoint_problem(endpoint: &str) -> Option<&'static str> {
    let Some((scheme, rest)) = endpoint.trim().split_once("://") else {
        return Some("it has no scheme (http:// or https://)");
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Some("its scheme is not http or https");
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Credentials come before the last `@`; an IPv6 host is bracketed and holds colons.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (host_port, None),
    };
    if host.is_empty() || host == "[]" {
        return Some("it has no host");
    }
    match port.map(str::parse::<u16>) {
        Some(Ok(0) | Err(_)) => Some("its port is not a number from 1 to 65535"),
        _ => None,
    }
}

/// One signal's OTLP/HTTP URL under the base URL `base`: `path` (`v1/traces`) joins the base
/// URL's path, and a query or fragment stays after it, so `http://host:4318/?x=1` gives
/// `http://host:4318/v1/traces?x=1`. The specification appends the signal path to the base
/// URL's path; appending it to the whole text would put it inside the query.
#[cfg(feature = "otlp-http")]
fn signal_url(base: &str, path: &str) -> String {
    let after_scheme = base.find("://").map_or(0, |at| at + 3);
    let end = base[after_scheme..]
        .find(['?', '#'])
        .map_or(base.len(), |at| after_scheme + at);
    let (head, tail) = base.split_at(end);
    format!("{}/{path}{tail}", head.trim_end_matches('/'))
}

#[cfg(any(feature = "otlp-http", feature = "otlp-grpc"))]
mod otlp {
    //! Exporter construction: one exporter per signal, each over the protocol its signal was
    //! given, so traces and metrics may go to collectors that speak different protocols.

    use std::time::Duration;

    use std::sync::Arc;

    use opentelemetry_sdk::metrics::{MeterProviderBuilder, PeriodicReader};
    use opentelemetry_sdk::trace::TracerProviderBuilder;

    use super::{ExportTarget, OtlpProtocol, Providers};
    use crate::error::Error;
    use crate::metric_export::{MetricFailures, ReportingMetricExporter};
    use crate::span_queue::{SpanQueue, SpanQueueConfig};

    pub(super) fn with_exporters(
        traces: TracerProviderBuilder,
        metrics: MeterProviderBuilder,
        target: &ExportTarget,
        metrics_interval: Duration,
        metric_failures: Arc<MetricFailures>,
    ) -> Result<Providers, Error> {
        let endpoint = target.endpoint.as_deref();
        let span_exporter = match target.traces {
            OtlpProtocol::HttpProtobuf => http::spans(endpoint)?,
            OtlpProtocol::Grpc => grpc::spans(endpoint)?,
        };
        let metric_exporter = match target.metrics {
            OtlpProtocol::HttpProtobuf => http::metrics(endpoint)?,
            OtlpProtocol::Grpc => grpc::metrics(endpoint)?,
        };
        let metric_exporter = ReportingMetricExporter::new(metric_exporter, metric_failures);
        let reader = PeriodicReader::builder(metric_exporter)
            .with_interval(metrics_interval)
            .build();
        let queue = SpanQueue::new(span_exporter, SpanQueueConfig::from_env()?)?;
        let traces = traces.with_span_processor(queue.clone()).build();
        Ok(Providers::new(traces, metrics.with_reader(reader).build()).with_span_queue(queue))
    }

    fn exporter_error(
        signal: &'static str,
        protocol: OtlpProtocol,
    ) -> impl FnOnce(opentelemetry_otlp::ExporterBuildError) -> Error {
        move |source| Error::Exporter {
            signal,
            protocol,
            source,
        }
    }

    #[cfg(feature = "otlp-http")]
    mod http {
        //! Protobuf over HTTP.

        use opentelemetry_otlp::{MetricExporter, Protocol, SpanExporter, WithExportConfig};

        use super::exporter_error;
        use crate::error::Error;
        use crate::{ENV_OTLP_ENDPOINT, ENV_OTLP_METRICS_ENDPOINT, ENV_OTLP_TRACES_ENDPOINT};
        use crate::{OtlpProtocol, init::signal_url};

        /// Sets the protocol, and the signal's URL when there is a base URL: the explicit
        /// one, else `OTEL_EXPORTER_OTLP_ENDPOINT` unless the signal's own variable (used as
        /// is, so left to the exporter) is set. The exporter appends the signal path to the
        /// variable's whole text, after any query, so cairn builds the URL itself.
        fn configured<B: WithExportConfig>(
            builder: B,
            endpoint: Option<&str>,
            signal_variable: &str,
            path: &str,
        ) -> B {
            let builder = builder.with_protocol(Protocol::HttpBinary);
            let is_set = |name: &str| {
                std::env::var(name)
                    .ok()
                    .filter(|value| !value.trim().is_empty())
            };
            let base = match endpoint {
                Some(base) => Some(base.to_owned()),
                None if is_set(signal_variable).is_some() => None,
                None => is_set(ENV_OTLP_ENDPOINT),
            };
            match base {
                Some(base) => builder.with_endpoint(signal_url(&base, path)),
                None => builder,
            }
        }

        pub(super) fn spans(endpoint: Option<&str>) -> Result<SpanExporter, Error> {
            configured(
                SpanExporter::builder().with_http(),
                endpoint,
                ENV_OTLP_TRACES_ENDPOINT,
                "v1/traces",
            )
            .build()
            .map_err(exporter_error("traces", OtlpProtocol::HttpProtobuf))
        }

        pub(super) fn metrics(endpoint: Option<&str>) -> Result<MetricExporter, Error> {
            configured(
                MetricExporter::builder().with_http(),
                endpoint,
                ENV_OTLP_METRICS_ENDPOINT,
                "v1/metrics",
            )
            .build()
            .map_err(exporter_error("metrics", OtlpProtocol::HttpProtobuf))
        }
    }

    #[cfg(feature = "otlp-grpc")]
    mod grpc {
        //! gRPC through tonic.

        use opentelemetry_otlp::{MetricExporter, SpanExporter, WithExportConfig};

        use super::exporter_error;
        use crate::OtlpProtocol;
        use crate::error::Error;

        /// tonic spawns its connection worker on the current runtime and panics without one.
        fn check_runtime() -> Result<(), Error> {
            tokio::runtime::Handle::try_current()
                .map(drop)
                .map_err(|_| Error::NoTokioRuntime)
        }

        fn configured<B: WithExportConfig>(builder: B, endpoint: Option<&str>) -> B {
            match endpoint {
                Some(url) => builder.with_endpoint(url),
                None => builder,
            }
        }

        pub(super) fn spans(endpoint: Option<&str>) -> Result<SpanExporter, Error> {
            check_runtime()?;
            configured(SpanExporter::builder().with_tonic(), endpoint)
                .build()
                .map_err(exporter_error("traces", OtlpProtocol::Grpc))
        }

        pub(super) fn metrics(endpoint: Option<&str>) -> Result<MetricExporter, Error> {
            check_runtime()?;
            configured(MetricExporter::builder().with_tonic(), endpoint)
                .build()
                .map_err(exporter_error("metrics", OtlpProtocol::Grpc))
        }
    }

    #[cfg(not(feature = "otlp-http"))]
    mod http {
        //! HTTP is not compiled in.

        use opentelemetry_otlp::{MetricExporter, SpanExporter};

        use crate::OtlpProtocol;
        use crate::error::Error;

        pub(super) fn spans(_endpoint: Option<&str>) -> Result<SpanExporter, Error> {
            Err(Error::ProtocolNotCompiled {
                protocol: OtlpProtocol::HttpProtobuf,
                feature: "otlp-http",
            })
        }

        pub(super) fn metrics(_endpoint: Option<&str>) -> Result<MetricExporter, Error> {
            Err(Error::ProtocolNotCompiled {
                protocol: OtlpProtocol::HttpProtobuf,
                feature: "otlp-http",
            })
        }
    }

    #[cfg(not(feature = "otlp-grpc"))]
    mod grpc {
        //! gRPC is not compiled in.

        use opentelemetry_otlp::{MetricExporter, SpanExporter};

        use crate::OtlpProtocol;
        use crate::error::Error;

        pub(super) fn spans(_endpoint: Option<&str>) -> Result<SpanExporter, Error> {
            Err(Error::ProtocolNotCompiled {
                protocol: OtlpProtocol::Grpc,
                feature: "otlp-grpc",
            })
        }

        pub(super) fn metrics(_endpoint: Option<&str>) -> Result<MetricExporter, Error> {
            Err(Error::ProtocolNotCompiled {
                protocol: OtlpProtocol::Grpc,
                feature: "otlp-grpc",
            })
        }
    }
}

#[cfg(not(any(feature = "otlp-http", feature = "otlp-grpc")))]
mod otlp {
    //! Without an OTLP feature every export request is refused with a typed error.

    use std::sync::Arc;
    use std::time::Duration;

    use opentelemetry_sdk::metrics::MeterProviderBuilder;
    use opentelemetry_sdk::trace::TracerProviderBuilder;

    use super::{ExportTarget, OtlpProtocol, Providers};
    use crate::error::Error;
    use crate::metric_export::MetricFailures;

    pub(super) fn with_exporters(
        _traces: TracerProviderBuilder,
        _metrics: MeterProviderBuilder,
        target: &ExportTarget,
        _metrics_interval: Duration,
        _metric_failures: Arc<MetricFailures>,
    ) -> Result<Providers, Error> {
        let protocol = target.traces;
        let feature = match protocol {
            OtlpProtocol::HttpProtobuf => "otlp-http",
            OtlpProtocol::Grpc => "otlp-grpc",
        };
        Err(Error::ProtocolNotCompiled { protocol, feature })
    }
}

/// The layers [`init`] puts under its fmt layer, over the given providers: the trace layer
/// filtered by `RUST_LOG` (else [`Config::export_filter`], else [`Config::default_filter`])
/// and the metrics layer, which sees
/// every event and span of cairn's target whatever the filter says. Benchmarks and hosts that
/// want exactly `init`'s export path without its fmt layer or global install use this.
///
/// The executor's task attempts reach the trace half through its attempt hook
/// ([`crate::attempt`]), which also records their task metrics, unless
/// [`Config::traced_task_spans`] is set or the filter has a span directive (`[...]`). For
/// task spans that are tracing spans, when the filter enables them outright (the default
/// filter does), the trace layer records the task metrics
/// as it closes each one and the metrics layer leaves them alone, which saves each attempt the
/// metrics layer's span lookups; otherwise the metrics layer records them itself. Either way
/// each attempt is counted once.
///
/// # Errors
///
/// [`Error::InvalidFilter`] when `RUST_LOG` or the default filter does not parse.
///
/// # Examples
///
/// ```
/// use cairn_telemetry::{Config, Export};
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let config = Config::new("host").with_export(Export::Off);
/// let providers = cairn_telemetry::providers(&config)?;
/// let layers = cairn_telemetry::export_layers(&config, &providers)?;
/// let subscriber = tracing_subscriber::registry().with(layers);
/// tracing::subscriber::with_default(subscriber, || {
///     cairn_telemetry::emit::run_abandoned("run-1", "failed");
/// });
/// # providers.shutdown()?;
/// # Ok::<(), cairn_telemetry::Error>(())
/// ```
pub fn export_layers<S>(
    config: &Config,
    providers: &Providers,
) -> Result<impl Layer<S> + Send + Sync + 'static + use<S>, Error>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let (directives, origin) = export_filter_directives(config);
    let trace_filter = parse_filter(&directives, origin)?;
    let traces = &providers.traces;
    let metrics = metrics_layer(&providers.metrics);
    let task_metrics = metrics.share_task_spans();
    // A span directive (`[name]`, `[{field}]`) enables events by the span they are in, which
    // the filter only learns from spans it sees: with one, task attempts stay tracing spans.
    let (trace, claimed) = if config.traced_task_spans || directives.contains('[') {
        let half = trace_layer_recording(traces, task_metrics).with_filter(trace_filter);
        (half.boxed(), None)
    } else {
        let (half, claimed) = trace_half(
            traces,
            providers.span_queue.clone(),
            task_metrics,
            trace_filter,
        );
        (half.boxed(), Some(claimed))
    };
    let metrics_filter = MetricsFilter::new(parse_filter(&directives, origin)?, claimed);
    Ok(trace.and_then(metrics.with_filter(metrics_filter)))
}

/// Installs the process-wide subscriber: a fmt layer to stderr and the OpenTelemetry trace
/// layer, both filtered by `RUST_LOG` (else [`Config::default_filter`]; the trace layer by
/// [`Config::export_filter`] when that is set), plus the metrics
/// layer, which always sees cairn's own events and spans (queue depth is a DEBUG event).
///
/// **Only binaries call `init`.** Libraries MUST NOT: a library that installs a global
/// subscriber steals the host's logs. Libraries emit through [`crate::emit`]; tests and hosts
/// that need their own subscriber compose [`crate::layers`] (or use `cairn_telemetry::testing`).
///
/// # Errors
///
/// - [`Error::InvalidFilter`] when `RUST_LOG` or the default filter does not parse;
/// - [`Error::UnsupportedProtocol`] for an unknown `OTEL_EXPORTER_OTLP_PROTOCOL` (or
///   `..._TRACES_PROTOCOL` / `..._METRICS_PROTOCOL`);
/// - [`Error::InvalidEndpoint`] when the collector's endpoint (from [`Export::Otlp`] or the
///   `OTEL_EXPORTER_OTLP_*ENDPOINT` variables) is not an `http://` or `https://` URL with a
///   host and a valid port;
/// - [`Error::ProtocolNotCompiled`] when the chosen protocol's feature is off;
/// - [`Error::NoTokioRuntime`] for gRPC outside a tokio runtime;
/// - [`Error::Exporter`] when an OTLP exporter cannot be built (for example a malformed
///   endpoint);
/// - [`Error::SubscriberAlreadySet`] when a global subscriber already exists.
///
/// # Examples
///
/// ```no_run
/// fn main() -> Result<(), cairn_telemetry::Error> {
///     let _telemetry = cairn_telemetry::init(cairn_telemetry::Config::new("cairn"))?;
///     // ... run; the guard flushes traces and metrics when main returns.
///     Ok(())
/// }
/// ```
pub fn init(config: Config) -> Result<TelemetryGuard, Error> {
    let fmt_filter = env_filter(&config)?;
    let providers = providers(&config)?;
    let export = export_layers(&config, &providers)?;
    let subscriber = Registry::default()
        .with(fmt_layer(config.log_format).with_filter(fmt_filter))
        .with(export);
    // From here on the guard owns the providers, so an early return still shuts them down.
    let guard = TelemetryGuard {
        providers: Some(providers),
        shutdown_timeout: config.shutdown_timeout,
    };
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|source| Error::SubscriberAlreadySet { source })?;
    Ok(guard)
}
