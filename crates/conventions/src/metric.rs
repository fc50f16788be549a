//! Metric names and bucket boundaries of the GenAI client, MCP and HTTP server metrics.

use opentelemetry_semantic_conventions::metric as semconv;

/// `gen_ai.client.token.usage`: histogram of tokens per operation, unit `{token}`.
pub const GEN_AI_CLIENT_TOKEN_USAGE: &str = semconv::GEN_AI_CLIENT_TOKEN_USAGE;
/// `gen_ai.client.operation.duration`: histogram of operation durations, unit `s`.
pub const GEN_AI_CLIENT_OPERATION_DURATION: &str = semconv::GEN_AI_CLIENT_OPERATION_DURATION;
/// `sextant.gen_ai.client.cost`: counter of what priced model calls cost, with the currency as
/// an attribute (`/metrics` shows it as `sextant_gen_ai_client_cost_total`).
pub const SEXTANT_GEN_AI_CLIENT_COST: &str = "sextant.gen_ai.client.cost";
/// `sextant.monitor.results`: counter of the scores the service's monitors gave, per
/// `sextant.scorer` and `sextant.monitor.result` (`pass`, `fail`, `error`).
pub const SEXTANT_MONITOR_RESULTS: &str = "sextant.monitor.results";
/// `sextant.monitor.pass_rate`: gauge of each scorer's pass rate over the monitors' window.
pub const SEXTANT_MONITOR_PASS_RATE: &str = "sextant.monitor.pass_rate";
/// `sextant.monitor.dropped`: counter of finished turns the monitor queue had no room for.
pub const SEXTANT_MONITOR_DROPPED: &str = "sextant.monitor.dropped";

/// `sextant.guardrail.checks`: counter of guardrail checks, per `sextant.guardrail.name`,
/// `sextant.guardrail.stage`, `sextant.guardrail.result` (`pass`, `fail`, `error`) and
/// `sextant.guardrail.action`.
pub const SEXTANT_GUARDRAIL_CHECKS: &str = "sextant.guardrail.checks";

/// Bucket boundaries the conventions recommend for `gen_ai.client.token.usage`.
pub const TOKEN_USAGE_BOUNDARIES: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
/// Bucket boundaries the conventions recommend for `gen_ai.client.operation.duration`.
pub const OPERATION_DURATION_BOUNDARIES: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// `mcp.client.operation.duration`: histogram of MCP requests as the client saw them, unit `s`.
pub const MCP_CLIENT_OPERATION_DURATION: &str = semconv::MCP_CLIENT_OPERATION_DURATION;
/// `mcp.server.operation.duration`: histogram of MCP requests as the server handled them, unit `s`.
pub const MCP_SERVER_OPERATION_DURATION: &str = semconv::MCP_SERVER_OPERATION_DURATION;
/// Bucket boundaries the MCP conventions recommend for both operation durations.
pub const MCP_OPERATION_DURATION_BOUNDARIES: [f64; 14] = [
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// `http.server.request.duration`: histogram of HTTP server request durations, unit `s`.
pub const HTTP_SERVER_REQUEST_DURATION: &str = semconv::HTTP_SERVER_REQUEST_DURATION;
/// `http.server.active_requests`: requests in flight, unit `{request}`.
pub const HTTP_SERVER_ACTIVE_REQUESTS: &str = semconv::HTTP_SERVER_ACTIVE_REQUESTS;
/// Bucket boundaries for `http.server.request.duration`: the conventions' advice up to 10 s,
/// extended to two minutes because an agent turn on a local model takes seconds.
pub const HTTP_SERVER_DURATION_BOUNDARIES: [f64; 17] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0,
    120.0,
];

/// `otel.sdk.processor.span.processed`: spans a sink's queue took (no `error.type`) or dropped
/// (`error.type = queue_full`), unit `{span}`.
pub const OTEL_SDK_PROCESSOR_SPAN_PROCESSED: &str = semconv::OTEL_SDK_PROCESSOR_SPAN_PROCESSED;
/// `otel.sdk.exporter.span.exported`: spans a sink's backend acknowledged (no `error.type`) or
/// refused (`error.type = rejected`), unit `{span}`.
pub const OTEL_SDK_EXPORTER_SPAN_EXPORTED: &str = semconv::OTEL_SDK_EXPORTER_SPAN_EXPORTED;
/// `sextant.telemetry.spans`: what a sink did with spans beyond queueing and exporting,
/// by `sextant.telemetry.outcome` (`spooled`, `resent`, `dropped`, `possible_duplicate`; a
/// drop has its reason as `error.type`), unit `{span}`.
pub const SEXTANT_TELEMETRY_SPANS: &str = "sextant.telemetry.spans";
/// `sextant.telemetry.export.errors`: failed export attempts per sink, unit `{error}`.
pub const SEXTANT_TELEMETRY_EXPORT_ERRORS: &str = "sextant.telemetry.export.errors";
/// `sextant.telemetry.spool.spans`: spans waiting in a sink's spool, unit `{span}`.
pub const SEXTANT_TELEMETRY_SPOOL_SPANS: &str = "sextant.telemetry.spool.spans";
/// `sextant.telemetry.spool.size`: bytes of a sink's spool on disk, unit `By`.
pub const SEXTANT_TELEMETRY_SPOOL_SIZE: &str = "sextant.telemetry.spool.size";
/// `sextant.telemetry.spool.oldest_age`: age of the oldest unsent span in a sink's spool,
/// unit `s` (0 when empty).
pub const SEXTANT_TELEMETRY_SPOOL_OLDEST_AGE: &str = "sextant.telemetry.spool.oldest_age";
