//! The span names and attribute keys that tools record: the one place in this crate where they are
//! spelled. Standard keys alias `opentelemetry-semantic-conventions`; the span names are the same
//! strings as `sextant_tracker::conventions::span_name` (this crate does not depend on the tracker;
//! a test in `sextant-agent` checks that the two agree).

use opentelemetry_semantic_conventions::attribute as semconv;

/// The tracing field that sets the OpenTelemetry span name.
pub const OTEL_NAME: &str = "otel.name";
/// The tracing field that sets the OpenTelemetry span kind.
pub const OTEL_KIND: &str = "otel.kind";
/// The tracing field that sets the span status code.
pub const OTEL_STATUS_CODE: &str = "otel.status_code";
/// The tracing field that sets the span status description.
pub const OTEL_STATUS_DESCRIPTION: &str = "otel.status_description";

/// Span name: planning a tool's query (normalising and rewriting it).
pub const PLAN_QUERY: &str = "plan_query";
/// Span name: post-processing a tool's results (dedupe, trim, rank, cite).
pub const PROCESS_RESULTS: &str = "process_results";

/// `error.type`.
pub const ERROR_TYPE: &str = semconv::ERROR_TYPE;
/// `http.request.method` of an outgoing HTTP request.
pub const HTTP_REQUEST_METHOD: &str = semconv::HTTP_REQUEST_METHOD;
/// `http.response.status_code`.
pub const HTTP_RESPONSE_STATUS_CODE: &str = semconv::HTTP_RESPONSE_STATUS_CODE;
/// `server.address`: the host an HTTP request went to.
pub const SERVER_ADDRESS: &str = semconv::SERVER_ADDRESS;
/// `server.port`.
pub const SERVER_PORT: &str = semconv::SERVER_PORT;
/// `url.full`: the URL requested (its query only when content capture is on; it can hold the
/// user's words).
pub const URL_FULL: &str = semconv::URL_FULL;

/// `sextant.search.backend`: which search backend answered (`corpus`, `searxng`, `brave`, …).
pub const SEARCH_BACKEND: &str = "sextant.search.backend";
/// `sextant.search.query`: the query as the model wrote it. Content.
pub const SEARCH_QUERY: &str = "sextant.search.query";
/// `sextant.search.query.rewritten`: the query as sent to the backend. Content.
pub const SEARCH_QUERY_REWRITTEN: &str = "sextant.search.query.rewritten";
/// `sextant.search.query.terms`: how many search terms the planned query has.
pub const SEARCH_QUERY_TERMS: &str = "sextant.search.query.terms";
/// `sextant.search.results.received`: results the backend returned.
pub const SEARCH_RESULTS_RECEIVED: &str = "sextant.search.results.received";
/// `sextant.search.results.duplicates`: results dropped as duplicates of a higher-ranked one.
pub const SEARCH_RESULTS_DUPLICATES: &str = "sextant.search.results.duplicates";
/// `sextant.search.results.returned`: results passed to the model.
pub const SEARCH_RESULTS_RETURNED: &str = "sextant.search.results.returned";
/// `sextant.search.results.urls`: the cited URLs, in order, as a JSON array. Content.
pub const SEARCH_RESULTS_URLS: &str = "sextant.search.results.urls";
