//! Telemetry setup: configuration (with the standard `OTEL_*` variables), the tracing subscriber,
//! the OpenTelemetry tracer and meter providers, and the guard that flushes them on every exit.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = sextant_tracker::TelemetryConfig::default();
//! config.local_store = Some("data/traces.db".into());
//! config.apply_otel_env()?;
//! let telemetry = sextant_tracker::init(&config)?;
//! // … run the agent; spans are exported in the background …
//! let report = telemetry.shutdown()?; // or just let `telemetry` drop
//! # Ok(()) }
//! ```
//!
//! One concern per file: [`TelemetryConfig`] and its OTLP section (`config.rs`), the `OTEL_*`
//! variables on top of it (`otel_env.rs`), assembling the pipeline ([`TelemetryBuilder`],
//! `builder.rs`) with its private export runtime (`io_runtime.rs`), the [`TelemetryGuard`] that
//! owns and shuts it down (`guard.rs`), W3C trace-context propagation (`propagation.rs`),
//! [`mark_failed`] (`span_status.rs`) and the errors (`error.rs`); [`init`] installs a pipeline
//! for the whole process.

mod builder;
mod config;
mod error;
mod guard;
mod io_runtime;
mod otel_env;
mod propagation;
mod span_status;

use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry};

pub use builder::{Telemetry, TelemetryBuilder};
pub use config::{
    FsyncPolicy, OtlpConfig, OtlpProtocol, SpoolConfig, TelemetryConfig, parse_duration,
};
pub use error::TelemetryError;
pub use guard::{ShutdownReport, TelemetryGuard};
pub use propagation::{
    continue_trace, current_trace_id, link_trace, set_parent_from_traceparent, traceparent_of,
};
pub use span_status::mark_failed;

/// Builds the pipeline that `config` describes and installs it for the whole process: the global
/// tracing subscriber (log lines to stderr filtered by `log_filter`, spans to OpenTelemetry), the
/// global tracer and meter providers and the W3C trace-context propagator.
///
/// A second call in the same process returns [`TelemetryError::AlreadyInitialized`] (it never
/// panics); tests build local pipelines with [`Telemetry::builder`].
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let mut log_filter = EnvFilter::try_new(&config.log_filter).map_err(|error| {
        TelemetryError::InvalidLogFilter {
            filter: config.log_filter.clone(),
            reason: error.to_string(),
        }
    })?;
    // async-openai logs upstream error bodies and unreadable model output (content) at warn and
    // error; it stays quiet unless the filter names it.
    if !config.log_filter.contains("async_openai") {
        log_filter =
            log_filter.add_directive("async_openai=off".parse().expect("a valid directive"));
    }
    let guard = Telemetry::builder(config).build()?;
    let log_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(log_filter);
    let span_layer = guard.layer().with_filter(span_filter());
    let subscriber = Registry::default().with(log_layer).with(span_layer);
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| TelemetryError::AlreadyInitialized)?;
    if let Some(pipeline) = guard.pipeline() {
        opentelemetry::global::set_tracer_provider(pipeline.tracer_provider.clone());
        opentelemetry::global::set_meter_provider(pipeline.meter_provider.clone());
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(guard)
}

/// Which spans become OpenTelemetry spans: info and above, except the HTTP, gRPC, exporter and
/// MCP SDK internals (which would otherwise trace their own exports).
fn span_filter() -> Targets {
    let quiet = [
        "h2",
        "hyper",
        "hyper_util",
        "reqwest",
        "rustls",
        "tonic",
        "tower",
        "opentelemetry",
        "opentelemetry_sdk",
        "opentelemetry_otlp",
        // The MCP SDK's own request spans: Sextant records each MCP request itself, named and
        // attributed as the MCP conventions ask.
        "rmcp",
    ];
    quiet.into_iter().fold(
        Targets::new().with_default(LevelFilter::INFO),
        |targets, target| targets.with_target(target, LevelFilter::OFF),
    )
}
