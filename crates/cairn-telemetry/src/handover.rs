//! Which layer records the task metrics when the trace half and the metrics half sit under
//! different filters, as [`crate::export_layers`] composes them.
//!
//! Both halves read every task span's fields, and reading them costs span lookups and locks
//! on every attempt. When the trace half is certain to see every task span of a callsite
//! (its filter's interest in that callsite is `always`), its [`crate::task_span::TaskSpanLayer`]
//! records the task metrics as it closes those spans, and the metrics half's filter
//! ([`MetricsFilter`]) leaves them out. When it is not certain (a `RUST_LOG` that turns task
//! spans off, or decides per span), nothing is handed over and the metrics half records
//! them as before, so no attempt is counted twice or missed.

use std::sync::atomic::{AtomicUsize, Ordering};

use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

use crate::names;
use crate::task_span::is_task_span_callsite;

/// The task span callsite whose task metrics the trace half records: at most one, the first
/// one its filter always enables (task spans come from the executor's one callsite as a
/// rule; any other is left to the metrics half). Set while callsites are registered, which
/// happens before any span of the callsite reaches the subscriber.
#[derive(Debug, Default)]
pub(crate) struct HandedCallsite(AtomicUsize);

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

    /// Whether the trace half records the task metrics of `meta`'s spans.
    pub(crate) fn is(&self, meta: &Metadata<'_>) -> bool {
        self.0.load(Ordering::Acquire) == Self::address(meta)
    }
}

/// The metrics half's filter: cairn's own spans and events (whatever `RUST_LOG` says, since
/// queue depth is a DEBUG event), except the task spans of the [`HandedCallsite`].
#[derive(Debug)]
pub(crate) struct MetricsFilter {
    /// A copy of the trace half's filter, parsed from the same directives, asked only which
    /// callsites it always enables.
    trace: EnvFilter,
    handed: std::sync::Arc<HandedCallsite>,
}

impl MetricsFilter {
    /// A filter that hands task spans over when `trace` (the trace half's directives)
    /// always enables them.
    pub(crate) fn new(trace: EnvFilter, handed: std::sync::Arc<HandedCallsite>) -> Self {
        MetricsFilter { trace, handed }
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
        Self::is_cairn(meta) && !self.handed.is(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if !Self::is_cairn(meta) {
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
