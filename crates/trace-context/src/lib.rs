//! W3C trace context on the calls Sextant makes: one place that turns the current span into
//! `traceparent`/`tracestate` (and the turn's session and user into `baggage`), and decides which
//! hosts may receive them.
//!
//! Every client Sextant owns — the OpenAI-compatible and Ollama providers, the MLflow client, MCP
//! and A2A peers, search backends — asks [`outgoing_headers`] (HTTP) or [`outgoing_fields`] (a
//! JSON-RPC `params._meta`) before it sends, so one trace spans the services. Nothing goes to a
//! host the [`PropagationPolicy`] does not allow: by default only loopback and private hosts
//! (the model server, MLflow or MCP server you run next to Sextant), never a public web page a
//! tool fetches. `[telemetry] propagate_to` changes the list; the composition root installs it
//! with [`set_policy`].
#![deny(missing_docs)]

mod baggage;
mod policy;

use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use baggage::{Baggage, current_baggage, with_baggage};
pub use policy::{PolicyError, PropagationPolicy, policy, set_policy};

/// `span`'s own W3C trace context as a `traceparent` value (`00-<trace>-<span>-<flags>`): what a
/// server sends back as `traceresponse` or a client sends on. `None` when the span is not
/// recorded by an OpenTelemetry pipeline.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

/// `span`'s `tracestate`, when it carries one (a caller's vendors' entries travel on).
pub fn tracestate_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let state = context.span().span_context().trace_state().header();
    (!state.is_empty()).then_some(state)
}

/// The trace-context fields for a call from `span` to a peer the caller has already decided
/// may have them (a child process it started, a host the policy allowed): `traceparent`,
/// `tracestate` and `baggage`, each only when there is one.
pub fn fields_of(span: &tracing::Span) -> Vec<(&'static str, String)> {
    let mut fields = Vec::with_capacity(3);
    if let Some(parent) = traceparent_of(span) {
        fields.push(("traceparent", parent));
        if let Some(state) = tracestate_of(span) {
            fields.push(("tracestate", state));
        }
    }
    if let Some(baggage) = current_baggage()
        .map(|b| b.header())
        .filter(|b| !b.is_empty())
    {
        fields.push(("baggage", baggage));
    }
    fields
}

/// The trace-context fields for a call from the current span to `url`, or none when the
/// [policy](policy()) does not allow that host (or `url` is not a URL).
pub fn outgoing_fields(url: &str) -> Vec<(&'static str, String)> {
    if !policy().allows(url) {
        return Vec::new();
    }
    fields_of(&tracing::Span::current())
}

/// [`outgoing_fields`] as HTTP headers, ready to add to a request to `url`.
pub fn outgoing_headers(url: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    inject(url, &mut headers);
    headers
}

/// Adds [`outgoing_fields`] for `url` to `headers` (replacing what is there under those names).
pub fn inject(url: &str, headers: &mut http::HeaderMap) {
    for (name, value) in outgoing_fields(url) {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}
