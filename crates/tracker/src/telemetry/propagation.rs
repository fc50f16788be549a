//! W3C trace context: a span's trace id and `traceparent`, and continuing a caller's trace.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
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

/// `span`'s own W3C trace context as a `traceparent` value (`00-<trace>-<span>-<flags>`): what
/// a server sends back as `traceresponse` or a client sends on. `None` when the span is not
/// recorded by an OpenTelemetry pipeline.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

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
/// entered.
pub fn continue_trace(
    span: &tracing::Span,
    traceparent: &str,
    tracestate: Option<&str>,
) -> Result<(), TelemetryError> {
    let mut carrier = HashMap::from([("traceparent".to_string(), traceparent.trim().to_string())]);
    if let Some(state) = tracestate.map(str::trim).filter(|s| !s.is_empty()) {
        carrier.insert("tracestate".to_string(), state.to_string());
    }
    let context = TraceContextPropagator::new().extract(&carrier);
    if !context.span().span_context().is_valid() {
        return Err(TelemetryError::InvalidTraceparent(traceparent.to_string()));
    }
    span.set_parent(context)
        .map_err(|_| TelemetryError::InvalidTraceparent(traceparent.to_string()))
}
