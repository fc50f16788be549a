//! W3C trace context: a span's trace id and `traceparent`, and continuing a caller's trace.

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::TelemetryError;

/// The trace id of `span` as 32 lower-case hex digits, or `None` when the span is not recorded
/// by an OpenTelemetry pipeline.
pub fn current_trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

pub use sextant_trace_context::traceparent_of;

/// Makes `span` continue the trace of a W3C `traceparent` header (an incoming HTTP request).
/// Call it before the span is entered.
pub fn set_parent_from_traceparent(
    span: &tracing::Span,
    traceparent: &str,
) -> Result<(), TelemetryError> {
    continue_trace(span, traceparent, None)
}

/// Makes `span` continue the trace of W3C `traceparent` and `tracestate` headers (an incoming
/// HTTP request); the tracestate travels on to this span's children. Call it before the span is
/// entered. The span is recorded even when the caller's sampled flag is 0: a process that observes
/// itself does not let a caller switch its recording off.
pub fn continue_trace(
    span: &tracing::Span,
    traceparent: &str,
    tracestate: Option<&str>,
) -> Result<(), TelemetryError> {
    let remote = remote_span_context(traceparent, tracestate)?;
    let sampled = SpanContext::new(
        remote.trace_id(),
        remote.span_id(),
        remote.trace_flags().with_sampled(true),
        true,
        remote.trace_state().clone(),
    );
    span.set_parent(Context::new().with_remote_span_context(sampled))
        .map_err(|_| TelemetryError::InvalidTraceparent(traceparent.to_string()))
}

/// Links `span` to the trace of W3C `traceparent`/`tracestate` headers without joining it: for a
/// caller whose trace context is not trusted (the span keeps its own trace id). Call it before the
/// span is entered.
pub fn link_trace(
    span: &tracing::Span,
    traceparent: &str,
    tracestate: Option<&str>,
) -> Result<(), TelemetryError> {
    let remote = remote_span_context(traceparent, tracestate)?;
    span.add_link(remote);
    Ok(())
}

/// The caller's span context a `traceparent` (and `tracestate`) header describes.
fn remote_span_context(
    traceparent: &str,
    tracestate: Option<&str>,
) -> Result<SpanContext, TelemetryError> {
    let mut carrier = HashMap::from([("traceparent".to_string(), traceparent.trim().to_string())]);
    if let Some(state) = tracestate.map(str::trim).filter(|s| !s.is_empty()) {
        carrier.insert("tracestate".to_string(), state.to_string());
    }
    let context = TraceContextPropagator::new().extract(&carrier);
    let remote = context.span().span_context().clone();
    if remote.is_valid() {
        Ok(remote)
    } else {
        Err(TelemetryError::InvalidTraceparent(shown(traceparent)))
    }
}

/// A header value as errors show it: at most 64 printable characters.
fn shown(value: &str) -> String {
    value
        .chars()
        .take(64)
        .collect::<String>()
        .escape_debug()
        .to_string()
}
