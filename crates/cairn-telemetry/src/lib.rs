//! Recovery-aware tracing events, spans and OpenTelemetry export for cairn.
//!
//! The event and span names in [`names`] are stable. Libraries emit them through the
//! functions in [`emit`], which need only `tracing`; binaries call `init` (feature `export`)
//! to install a subscriber. Libraries never install a global subscriber.

pub mod emit;
pub mod names;
