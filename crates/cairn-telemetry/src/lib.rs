//! Recovery-aware tracing events, spans and OpenTelemetry export for cairn.
//!
//! The event and span names in [`names`] are stable. Libraries emit them through the
//! functions in [`emit`], which need only `tracing`; binaries call `init` (feature `export`)
//! to install a subscriber. **Libraries never install a global subscriber.** The executor
//! also hands each task attempt to the [`attempt`] hook that cairn's export layers leave in
//! the subscriber, so an attempt costs no tracing span of its own.
//!
//! With feature `export` (default):
//! - `init` installs fmt logging to stderr, `RUST_LOG` filtering and OTLP export (features
//!   `otlp-http`, default, and `otlp-grpc`), and returns a guard that flushes on drop;
//! - `layers` exposes the same layers one by one for scoped subscribers;
//! - `task_span` exports the per-attempt task spans without tracing-opentelemetry (they are on
//!   the executor's hot path), with the same names, attributes, events and parent, whether
//!   they arrive as tracing spans or through the [`attempt`] hook;
//! - `metrics` derives OpenTelemetry metrics from the events and spans;
//! - `link` derives run-span trace ids from `(run_id, lease_epoch)` and links a resumed run
//!   to the execution it resumed, so both sides of a `kill -9` join in a trace viewer.
//!
//! Feature `testing` (dev-dependencies only) adds `testing`: in-memory exporters behind a
//! scoped subscriber. `docs/telemetry.md` has the full schema.

pub mod attempt;
pub mod emit;
pub mod names;

#[cfg(feature = "export")]
mod error;
#[cfg(feature = "export")]
mod handover;
#[cfg(feature = "export")]
mod init;
#[cfg(feature = "export")]
pub mod layers;
#[cfg(feature = "export")]
pub mod link;
#[cfg(feature = "export")]
// Only the OTLP exporter wraps its metric exporter; the failure texts serve the span queue too.
#[cfg_attr(not(feature = "otlp-http"), allow(dead_code))]
mod metric_export;
#[cfg(feature = "export")]
pub mod metrics;
#[cfg(feature = "export")]
pub mod span_queue;
#[cfg(feature = "export")]
pub mod task_span;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "export")]
pub use error::Error;
#[cfg(feature = "export")]
pub use init::{
    Config, DEFAULT_FILTER, DEFAULT_SHUTDOWN_TIMEOUT, ENV_OTLP_ENDPOINT, ENV_OTLP_METRICS_ENDPOINT,
    ENV_OTLP_METRICS_PROTOCOL, ENV_OTLP_PROTOCOL, ENV_OTLP_TRACES_ENDPOINT,
    ENV_OTLP_TRACES_PROTOCOL, ENV_SDK_DISABLED, Export, OtlpProtocol, Providers, SPAN_QUEUE_SIZE,
    TelemetryGuard, export_layers, init, providers, span_batch_config,
};
#[cfg(feature = "export")]
pub use layers::LogFormat;
