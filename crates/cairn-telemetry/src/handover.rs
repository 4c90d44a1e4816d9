//! Which layer records the task metrics when the trace half and the metrics half sit under
//! different filters, as [`crate::export_layers`] composes them.
//!
//! The executor's own attempts, once an executor has claimed the trace half's attempt hook
//! ([`crate::attempt`]), are counted by that hook's export whatever the filters answer, and
//! [`MetricsFilter`] leaves their callsite out; what follows is about every other task span
//! (and about the executor's before a claim, or with `Config::traced_task_spans`).
//!
//! Both halves could read every task span's fields, and reading them costs span lookups and
//! locks on every attempt. When the trace half is certain to see every task span of a
//! callsite (its filter's interest in that callsite is `always`), the metrics half's filter
//! ([`MetricsFilter`]) leaves that callsite out, and the trace half's
//! [`crate::task_span::TaskSpanLayer`] records the task metrics as it closes those spans.
//!
//! Who records is settled per span, not per callsite: the task span layer records the
//! metrics of a span unless the metrics layer saw that span too (the metrics layer marks the
//! task span layer's record when it does). So an attempt is counted exactly once even when
//! the two filters answer differently for a moment, for example while the callsite is still
//! being registered on another thread, or when the trace half's filter may drop task spans
//! (`RUST_LOG=warn`: nothing is handed over, the metrics layer reads the span itself).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

use crate::names;
use crate::task_span::{is_executor_task_span, is_task_span_callsite};

/// The task span callsite the metrics half leaves to the trace half: at most one, the first
/// one the trace half's filter always enables (task spans come from the executor's one
/// callsite as a rule; any other stays with the metrics half).
#[derive(Debug, Default)]
struct HandedCallsite(AtomicUsize);

impl HandedCallsite {
    fn address(meta: &Metadata<'_>) -> usize {
        std::ptr::from_ref(meta).addr()
    }

    /// Hands `meta` over unless another callsite already was; returns whether `meta` is
    /// the handed one.
    fn offer(&self, meta: &'static Metadata<'static>) -> bool {
        let address = Self::address(meta);
        match self
            .0
            .compare_exchange(0, address, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(current) => current == address,
        }
    }

    fn is(&self, meta: &Metadata<'_>) -> bool {
        self.0.load(Ordering::Acquire) == Self::address(meta)
    }
}

/// The metrics half's filter: cairn's own spans and events (whatever `RUST_LOG` says, since
/// queue depth is a DEBUG event), except the task spans of one callsite that the trace
/// half's filter always passes.
#[derive(Debug)]
pub(crate) struct MetricsFilter {
    /// A copy of the trace half's filter, parsed from the same directives, asked only which
    /// callsites it always enables.
    trace: EnvFilter,
    handed: HandedCallsite,
    /// Set once an executor claimed the trace half's attempt hook ([`crate::attempt`]), which
    /// then exports its attempts and records their metrics: this filter leaves the executor's
    /// task span callsite out altogether from then on. `None` without a hook.
    executor_direct: Option<Arc<AtomicBool>>,
}

impl MetricsFilter {
    /// A filter that leaves out the task spans that `trace` (the trace half's filter,
    /// parsed again from the same directives) always passes, and the executor's task spans
    /// when `executor_direct`.
    pub(crate) fn new(trace: EnvFilter, executor_direct: Option<Arc<AtomicBool>>) -> Self {
        MetricsFilter {
            trace,
            handed: HandedCallsite::default(),
            executor_direct,
        }
    }

    fn leaves_to_the_hook(&self, meta: &Metadata<'_>) -> bool {
        self.executor_direct
            .as_deref()
            .is_some_and(|claimed| claimed.load(Ordering::Acquire))
            && is_executor_task_span(meta)
    }

    fn is_cairn(meta: &Metadata<'_>) -> bool {
        meta.target().starts_with(names::TARGET)
    }
}

impl<S> Filter<S> for MetricsFilter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn enabled(&self, meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        Self::is_cairn(meta) && !self.handed.is(meta) && !self.leaves_to_the_hook(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // The executor's attempts are counted by the trace half's direct export
        // (`crate::attempt`), whatever its filter answers.
        if !Self::is_cairn(meta) || self.leaves_to_the_hook(meta) {
            return Interest::never();
        }
        let trace_sees_all =
            || <EnvFilter as Filter<S>>::callsite_enabled(&self.trace, meta).is_always();
        if is_task_span_callsite(meta) && trace_sees_all() && self.handed.offer(meta) {
            Interest::never()
        } else {
            Interest::always()
        }
    }
}

#[cfg(test)]
mod tests {
    //! The per-span rule needs the crate's own composition (`trace_layer_recording` and the
    //! shared task instruments are private), so it is tested here.

    use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
    use tracing_subscriber::layer::SubscriberExt as _;

    use crate::names;

    /// Every `cairn.task.outcomes` point, summed.
    fn counted(exporter: &InMemoryMetricExporter, meters: &SdkMeterProvider) -> u64 {
        meters.force_flush().expect("flush");
        let exported = exporter.get_finished_metrics().expect("metrics");
        let Some(last) = exported.last() else {
            return 0;
        };
        last.scope_metrics()
            .flat_map(|scope| scope.metrics())
            .filter(|metric| metric.name() == names::METRIC_TASK_OUTCOMES)
            .map(|metric| match metric.data() {
                AggregatedMetrics::U64(MetricData::Sum(sum)) => {
                    sum.data_points().map(|point| point.value()).sum()
                }
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn a_task_span_both_layers_see_is_counted_once_by_the_metrics_layer() {
        let exporter = InMemoryMetricExporter::default();
        let meters = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        let traces = crate::link::tracer_provider_builder().build();
        // The shared instruments, and no filter: both layers see every task span, as they
        // do when the metrics filter lets a span through before the callsite is handed
        // over. The task span layer holds the instruments but must leave them alone.
        let metrics = crate::layers::metrics_layer(&meters);
        let shared = metrics.share_task_spans();
        assert!(shared.is_some());
        let subscriber = tracing_subscriber::registry()
            .with(crate::layers::trace_layer_recording(&traces, shared))
            .with(metrics);
        tracing::subscriber::with_default(subscriber, || {
            for outcome in ["complete", "fail", "complete"] {
                let span = tracing::info_span!(target: "cairn", names::TASK_SPAN,
                    task_id = "t1", kind = "shell", attempt = 1i64,
                    outcome = tracing::field::Empty);
                span.record("outcome", outcome);
            }
        });
        assert_eq!(counted(&exporter, &meters), 3);
    }
}
