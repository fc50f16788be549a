//! `[telemetry]`: the configuration's telemetry section, which the composition root turns into a
//! [`TelemetryConfig`](crate::TelemetryConfig) together with the standard `OTEL_*` variables.

use serde::Deserialize;

use crate::{OtlpConfig, SpoolConfig};

/// `[telemetry]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// `service.name` of the resource (OTEL_SERVICE_NAME overrides it).
    pub service_name: String,
    /// Record message content (prompts, answers, tool arguments and results) on spans.
    pub capture_content: bool,
    /// Keep every trace in the local SQLite trace store (what `sextant traces` reads).
    pub local_store: bool,
    /// Log filter for stderr, RUST_LOG syntax (RUST_LOG overrides it).
    pub log_filter: String,
    /// Export over OTLP; the standard OTEL_EXPORTER_OTLP_* variables override it.
    pub otlp: Option<OtlpConfig>,
    /// `[telemetry.spool]`: the disk quota and fsync policy of the spool that keeps spans a
    /// remote sink has not acknowledged.
    pub spool: SpoolConfig,
    /// The hosts Sextant's outgoing calls (model servers, MLflow, MCP and A2A peers, search
    /// APIs) send `traceparent`/`tracestate`/`baggage` to: host names, IPs, `*.suffix`, `private`
    /// (loopback and private hosts: the default) or `*`. Fetched web pages never get them.
    pub propagate_to: Vec<String>,
    /// `[telemetry.redaction]`: what every span, session and run artefact has replaced by a
    /// placeholder before it leaves memory. Secrets (API-key shapes, bearer tokens, credentials
    /// in URLs) are on by default; `pii = true` (`SEXTANT_TELEMETRY__REDACTION__PII=true`) adds
    /// emails, phone numbers, payment cards, IBANs and IP addresses.
    pub redaction: sextant_redaction::RedactionConfig,
}

impl TelemetrySettings {
    /// The redactor `redaction` describes, or which of its patterns cannot be used.
    pub fn redactor(
        &self,
    ) -> Result<sextant_redaction::Redactor, sextant_redaction::RedactionConfigError> {
        sextant_redaction::Redactor::new(&self.redaction)
    }

    /// The propagation policy `propagate_to` describes, or why an entry is not a host.
    pub fn propagation_policy(
        &self,
    ) -> Result<sextant_trace_context::PropagationPolicy, sextant_trace_context::PolicyError> {
        sextant_trace_context::PropagationPolicy::parse(&self.propagate_to)
    }
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            service_name: "sextant".into(),
            capture_content: false,
            local_store: true,
            log_filter: "warn".into(),
            otlp: None,
            spool: SpoolConfig::default(),
            propagate_to: vec!["private".into()],
            redaction: sextant_redaction::RedactionConfig::default(),
        }
    }
}
