//! Telemetry for Sextant agents: GenAI span conventions, the OpenTelemetry pipeline (one queue per
//! sink feeding the local SQLite trace store and, through a durable spool, OTLP: [`export`]), the GenAI client
//! metrics, and the trace store reader and tree renderer behind `sextant traces`; and the prompt
//! registry ([`prompts`]), experiment tracking ([`tracking`]) and the model registry
//! ([`model_registry`]), each with an embedded ([`local`]) and an MLflow ([`mlflow`]) backend.
//!
//! Other crates instrument themselves with plain `tracing` spans whose field names come from
//! [`conventions`]; [`init`] installs the layer that turns them into OpenTelemetry spans, and the
//! tracker adds the MLflow and OpenInference attributes when each span ends ([`enrich`]).
#![deny(missing_docs)]

pub mod conventions;
pub mod durable_file;
pub mod enrich;
pub mod export;
pub mod local;
pub mod metrics;
#[cfg(feature = "mlflow")]
pub mod mlflow;
pub mod model_registry;
#[cfg(feature = "otlp")]
mod otlp;
pub mod prometheus;
pub mod prompts;
pub mod python_json;
pub mod retry;
pub mod span_tree;
pub mod telemetry;
pub mod telemetry_settings;
pub mod trace_search;
pub mod trace_store;
pub mod tracking;
pub mod tracking_config;

/// Secrets and personal data out of text: the detectors and redactor that span export, sessions
/// and run artefacts share (`[telemetry.redaction]`).
pub use sextant_redaction as redaction;

pub use conventions::GenAiSpanKind;
pub use metrics::{
    GenAiMetricAttributes, GenAiMetrics, GuardrailMetrics, HttpServerMetrics, MonitorMetrics,
};
pub use span_tree::SpanTree;
pub use telemetry::{
    FsyncPolicy, OtlpConfig, OtlpProtocol, ShutdownReport, SpoolConfig, Telemetry,
    TelemetryBuilder, TelemetryConfig, TelemetryError, TelemetryGuard, continue_trace,
    current_trace_id, init, link_trace, mark_failed, parse_duration, set_parent_from_traceparent,
    traceparent_of,
};
pub use telemetry_settings::TelemetrySettings;
pub use trace_search::{TraceFilter, TraceFilterError, TraceOrder, TraceQuery};
pub use trace_store::{LocalTraceStore, StoredSpan, TracePage, TraceStoreError, TraceSummary};
pub use tracking_config::{TrackingBackend, TrackingConfig};

/// Milliseconds since the Unix epoch, now: the timestamps of runs, registries and spools.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
