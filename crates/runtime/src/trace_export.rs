//! Where a process's telemetry goes: the local trace store, the configured or `OTEL_*` OTLP
//! endpoint, or else — with tracking on an MLflow server — that server's `/v1/traces`.

use crate::config::SextantConfig;
use sextant_tracker::{TelemetryConfig, TelemetryError};

/// The variables that name an OTLP endpoint; either one means the user chose where traces go.
const OTLP_ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
];

/// The telemetry pipeline `config` describes, with the `OTEL_*` variables applied.
///
/// With tracking on an MLflow server and no OTLP endpoint configured (in the file or the
/// variables), traces go to that server's `/v1/traces` in the configured experiment, linked to
/// `mlflow_run_id` (`x-mlflow-run-id`). An MLflow server that cannot be reached costs the export,
/// not the process: the second value is the warning to log once telemetry is up.
pub async fn telemetry_config(
    config: &SextantConfig,
    mlflow_run_id: Option<&str>,
) -> Result<(TelemetryConfig, Option<String>), TelemetryError> {
    let settings = &config.telemetry;
    let mut telemetry = TelemetryConfig {
        service_name: settings.service_name.clone(),
        capture_content: settings.capture_content,
        local_store: settings.local_store.then(|| config.trace_store_path()),
        log_filter: std::env::var("RUST_LOG")
            .ok()
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| settings.log_filter.clone()),
        otlp: settings.otlp.clone(),
        spool_dir: Some(config.span_spool_dir()),
        spool: settings.spool.clone(),
        redaction: settings.redaction.clone(),
        ..TelemetryConfig::default()
    };
    let otlp_from_env = OTLP_ENDPOINT_VARIABLES
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()));
    let mut warning = None;
    if telemetry.otlp.is_none() && !otlp_from_env {
        match config.tracking.mlflow_trace_export().await {
            Ok(mut export) => {
                if let (Some(export), Some(run_id)) = (export.as_mut(), mlflow_run_id) {
                    export
                        .traces_headers
                        .insert("x-mlflow-run-id".into(), run_id.to_owned());
                }
                telemetry.otlp = export;
            }
            Err(error) => {
                warning = Some(format!(
                    "traces will not reach MLflow (they stay in the local trace store): {error}"
                ))
            }
        }
    }
    telemetry.apply_otel_env()?;
    Ok((telemetry, warning))
}
