//! Recording a failed operation on a span.

/// Records a failure on `span` the way every backend reads it: `error.type` for grouping, and an
/// ERROR status with a description (tracing-opentelemetry's `otel.status_*` fields, which the
/// span must declare, with `error.type`, as `Empty`).
pub fn mark_failed(span: &tracing::Span, error_type: &str, description: &str) {
    span.record(crate::conventions::ERROR_TYPE, error_type);
    span.record(crate::conventions::OTEL_STATUS_CODE, "ERROR");
    span.record(crate::conventions::OTEL_STATUS_DESCRIPTION, description);
}
