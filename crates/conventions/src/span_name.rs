//! Span names of the steps that have no `gen_ai.operation.name` value (their first word).

/// Prompt construction: registry lookup and render (`prompt {name}`).
pub const PROMPT: &str = "prompt";
/// A vector-store query (`vector_search {collection}`).
pub const VECTOR_SEARCH: &str = "vector_search";
/// Reranking retrieved documents.
pub const RERANK: &str = "rerank";
/// A person's decision on a tool call that waited for approval (`approval {tool}`).
pub const APPROVAL: &str = "approval";
/// Planning a tool's query.
pub const PLAN_QUERY: &str = "plan_query";
/// Post-processing a tool's results.
pub const PROCESS_RESULTS: &str = "process_results";
/// The `tracing` name of an outgoing HTTP request's span; its OpenTelemetry name is the method
/// (`GET`), as the HTTP conventions ask.
pub const HTTP_REQUEST: &str = "http_request";
