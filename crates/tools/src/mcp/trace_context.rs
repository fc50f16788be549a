//! W3C trace context in an MCP request's `params._meta` (`traceparent`, `tracestate`), as the MCP
//! specification reserves those keys: the server continues the client's trace.

use opentelemetry::trace::TraceContextExt;
use rmcp::model::RequestMetaObject;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// `span`'s trace context as `traceparent` (and `tracestate`, when it has one) in `meta`. Nothing
/// when the span is not recorded by an OpenTelemetry pipeline.
pub fn inject(span: &tracing::Span, meta: &mut RequestMetaObject) {
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    if !span_context.is_valid() {
        return;
    }
    meta.set_traceparent(format!(
        "00-{}-{}-{:02x}",
        span_context.trace_id(),
        span_context.span_id(),
        span_context.trace_flags().to_u8()
    ));
    let state = span_context.trace_state().header();
    if !state.is_empty() {
        meta.set_tracestate(state);
    }
}
