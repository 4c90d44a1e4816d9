//! [`ReportingMetricExporter`]: the metric exporter `init` uses, wrapped so that its failures
//! are reported the way the span queue reports its own.
//!
//! The SDK's periodic reader logs every failed export at ERROR (a collector that is down
//! prints a line per export, and another per shutdown), and its shutdown only says "Failed to
//! shutdown". The wrapper keeps the failure's own text for [`crate::Providers::shutdown`] to
//! report once, logs the first failure of a streak and the recovery as warnings on
//! [`LOG_TARGET`], and tells the reader the export went through, so the SDK logs nothing.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;

/// The tracing target of the metric export's own log lines (a failure, a recovery). It is
/// not cairn's event target, so these lines are never exported themselves.
pub(crate) const LOG_TARGET: &str = "cairn_telemetry::metric_export";

/// Metric exports that failed and were not yet reported by a shutdown, shared by a
/// [`ReportingMetricExporter`] and the [`crate::Providers`] that reports them.
#[derive(Debug, Default)]
pub(crate) struct MetricFailures {
    state: Mutex<FailureState>,
}

#[derive(Debug, Default)]
struct FailureState {
    /// The last failure not yet reported.
    unreported: Option<String>,
    /// Exports failed in a row; only the first of a streak and the recovery are logged.
    failing: u64,
}

impl MetricFailures {
    /// The last failure not yet reported, now reported.
    pub(crate) fn take_unreported(&self) -> Option<String> {
        self.lock().unreported.take()
    }

    fn lock(&self) -> MutexGuard<'_, FailureState> {
        // A few field updates under the lock: a poisoned one is used as is.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Wraps a metric exporter: see the module docs.
#[derive(Debug)]
pub(crate) struct ReportingMetricExporter<E> {
    inner: E,
    failures: Arc<MetricFailures>,
}

impl<E> ReportingMetricExporter<E> {
    /// `inner`, reporting its failures to `failures`.
    pub(crate) fn new(inner: E, failures: Arc<MetricFailures>) -> Self {
        ReportingMetricExporter { inner, failures }
    }
}

impl<E: PushMetricExporter> PushMetricExporter for ReportingMetricExporter<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        let mut state = self.failures.lock();
        match result {
            Err(error) => {
                let error = failure_text(&error);
                let first = state.failing == 0;
                state.failing += 1;
                state.unreported = Some(error.clone());
                drop(state);
                if first {
                    tracing::warn!(
                        target: LOG_TARGET,
                        %error,
                        "metric export failed; further failures are only counted until an \
                         export succeeds, and reported at shutdown"
                    );
                }
            }
            Ok(()) if state.failing > 0 => {
                let failed = std::mem::take(&mut state.failing);
                drop(state);
                tracing::warn!(
                    target: LOG_TARGET,
                    failed_exports = failed,
                    "metric export works again after {failed} failed export(s)"
                );
            }
            Ok(()) => {}
        }
        // The failure is kept for the shutdown to report; the SDK would log it again.
        Ok(())
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// The text a failure is kept as, to be reported later as an
/// [`OTelSdkError::InternalFailure`]: an internal failure's own text, so the report does not
/// say "Operation failed" twice.
pub(crate) fn failure_text(error: &OTelSdkError) -> String {
    match error {
        OTelSdkError::InternalFailure(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A copy of `error` (the SDK's error is not `Clone`).
pub(crate) fn copy_error(error: &OTelSdkError) -> OTelSdkError {
    match error {
        OTelSdkError::AlreadyShutdown => OTelSdkError::AlreadyShutdown,
        OTelSdkError::Timeout(timeout) => OTelSdkError::Timeout(*timeout),
        OTelSdkError::InternalFailure(text) => OTelSdkError::InternalFailure(text.clone()),
    }
}
