//! The telemetry pipeline for a command, from the configuration and the standard OTEL_* variables.

use anyhow::Context;
use sextant_agent::SextantConfig;
use sextant_tracker::{TelemetryConfig, TelemetryGuard};

/// Installs tracing + OpenTelemetry for this process; the guard flushes and shuts down on drop.
///
/// With tracking on an MLflow server and no OTLP endpoint configured (in the file or the
/// OTEL_EXPORTER_OTLP_* variables), traces go to that server's `/v1/traces`, in the configured
/// experiment. If the server cannot be reached, the command still runs: the local trace store
/// keeps the spans and a warning says what happened.
///
/// `run_id` (a tracking run on that MLflow server) goes along as `x-mlflow-run-id`, which links the
/// traces to the run.
pub async fn init(config: &SextantConfig, run_id: Option<&str>) -> anyhow::Result<TelemetryGuard> {
    let settings = &config.telemetry;
    let mut telemetry = TelemetryConfig {
        service_name: settings.service_name.clone(),
        capture_content: settings.capture_content,
        local_store: settings.local_store.then(|| config.trace_store_path()),
        log_filter: std::env::var("RUST_LOG")
            .ok()
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| settings.log_filter.clone()),
        ..TelemetryConfig::default()
    };
    telemetry.otlp = settings.otlp.clone();
    let otlp_from_env = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()));
    let mut mlflow_warning = None;
    if telemetry.otlp.is_none() && !otlp_from_env {
        match config.tracking.mlflow_trace_export().await {
            Ok(mut export) => {
                if let (Some(export), Some(run_id)) = (export.as_mut(), run_id) {
                    export
                        .traces_headers
                        .insert("x-mlflow-run-id".into(), run_id.to_owned());
                }
                telemetry.otlp = export;
            }
            Err(error) => mlflow_warning = Some(error),
        }
    }
    telemetry
        .apply_otel_env()
        .context("reading the OTEL_* environment variables")?;
    let guard = sextant_tracker::init(&telemetry).context("starting telemetry")?;
    if let Some(error) = mlflow_warning {
        tracing::warn!(
            "traces will not reach MLflow (they stay in the local trace store): {error}"
        );
    }
    Ok(guard)
}

/// The MLflow id of `run`, for linking a command's traces to it (`None` off MLflow, or when the
/// server has not created the run within 3 s: the run spools and the traces go unlinked).
pub async fn mlflow_run_id(
    config: &SextantConfig,
    run: Option<&sextant_tracker::tracking::ActiveRun>,
) -> Option<String> {
    match (run, config.tracking.backend()) {
        (Some(run), Ok(sextant_tracker::TrackingBackend::Mlflow(_))) => {
            run.run_id(std::time::Duration::from_secs(3)).await
        }
        _ => None,
    }
}
