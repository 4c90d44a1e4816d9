//! Recovery-aware tracing events, spans and OpenTelemetry export for cairn.
