//! The telemetry pipeline for a command, from the configuration and the standard OTEL_* variables.

use anyhow::Context;
use sextant_agent::SextantConfig;
use sextant_tracker::{TelemetryConfig, TelemetryGuard};

/// Installs tracing + OpenTelemetry for this process; the guard flushes and shuts down on drop.
pub fn init(config: &SextantConfig) -> anyhow::Result<TelemetryGuard> {
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
    telemetry
        .apply_otel_env()
        .context("reading the OTEL_* environment variables")?;
    sextant_tracker::init(&telemetry).context("starting telemetry")
}
