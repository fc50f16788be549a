//! W3C trace context in an MCP request's `params._meta` (`traceparent`, `tracestate`, `baggage`),
//! as the MCP specification reserves those keys: the server continues the client's trace. A
//! child process this one started always gets it; a server over HTTP only when `[telemetry]
//! propagate_to` allows its host (see `sextant_trace_context`).

use rmcp::model::RequestMetaObject;

/// `span`'s trace context in `meta`, for a server at `url` (`None`: a child process over stdio).
pub fn inject(span: &tracing::Span, url: Option<&url::Url>, meta: &mut RequestMetaObject) {
    if let Some(url) = url
        && !sextant_trace_context::policy().allows(url.as_str())
    {
        return;
    }
    for (key, value) in sextant_trace_context::fields_of(span) {
        match key {
            "traceparent" => meta.set_traceparent(value),
            "tracestate" => meta.set_tracestate(value),
            _ => meta.set_baggage(value),
        }
    }
}
