//! Why telemetry could not be set up, shut down, or continue a trace.

use crate::trace_store::TraceStoreError;

/// Why telemetry could not be set up or shut down.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A standard `OTEL_*` variable holds a value that cannot be used.
    #[error("the environment variable {variable} is invalid: {reason}")]
    InvalidEnv {
        /// The variable's name.
        variable: &'static str,
        /// What is wrong with it (never the value of a header).
        reason: String,
    },
    /// An OTLP header name or value is not valid in HTTP.
    #[error("the OTLP header '{name}' is not a valid HTTP header (its value is not shown)")]
    InvalidHeader {
        /// The header's name.
        name: String,
    },
    /// The log filter does not parse.
    #[error("the log filter '{filter}' is invalid: {reason}")]
    InvalidLogFilter {
        /// The filter as configured.
        filter: String,
        /// What the parser said.
        reason: String,
    },
    /// An OTLP exporter could not be built.
    #[error("could not set up the OTLP {signal} exporter over {protocol}: {reason}")]
    Exporter {
        /// `traces` or `metrics`.
        signal: &'static str,
        /// `grpc` or `http/protobuf`.
        protocol: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The configuration asks for something this build left out.
    #[error("{what} is configured, but this build of sextant-tracker has no `{feature}` feature")]
    FeatureDisabled {
        /// What was asked for.
        what: &'static str,
        /// The cargo feature that provides it.
        feature: &'static str,
    },
    /// The local trace store could not be opened.
    #[error(transparent)]
    TraceStore(#[from] TraceStoreError),
    /// A remote sink's span spool could not be opened.
    #[error("cannot open the span spool under {dir}: {error}")]
    Spool {
        /// The spool directory.
        dir: std::path::PathBuf,
        /// What the file system said.
        error: std::io::Error,
    },
    /// An OTLP endpoint is configured without a directory to spool its spans in.
    #[error(
        "OTLP export needs a spool directory for the spans the backend has not acknowledged          (TelemetryConfig::spool_dir; the runtime uses <data dir>/spool/spans)"
    )]
    NoSpoolDir,
    /// A redaction pattern cannot be used (named by its place in `[telemetry.redaction]`).
    #[error("telemetry.redaction.{0}")]
    Redaction(#[from] sextant_redaction::RedactionConfigError),
    /// The export threads could not be started.
    #[error("could not start the telemetry export threads: {0}")]
    Threads(std::io::Error),
    /// [`init`](super::init) was called when a global tracing subscriber was already installed.
    #[error(
        "telemetry is already initialised in this process (a global tracing subscriber is \
         installed); build a local pipeline with Telemetry::builder() instead"
    )]
    AlreadyInitialized,
    /// Flushing did not complete.
    #[error("flushing telemetry failed: {0}")]
    Flush(String),
    /// Shutting down did not complete; spans may be lost.
    #[error("shutting down telemetry failed, some spans or metrics may be lost: {0}")]
    Shutdown(String),
    /// A `traceparent` header that is not W3C trace context.
    #[error("the traceparent header '{0}' is not a valid W3C trace context")]
    InvalidTraceparent(String),
}
