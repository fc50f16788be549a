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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{MeterProviderBuilder, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use serde::Deserialize;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

use crate::batch_processor::{
    BatchConfig, BoundedBatchProcessor, BoundedBatchProcessorBuilder, ExportCounters,
};
use crate::metrics::{GenAiMetrics, HttpServerMetrics, INSTRUMENTATION_SCOPE};
use crate::otlp::{self, RuntimeHttpClient};
use crate::prometheus::PrometheusReader;
use crate::trace_store::{LocalTraceStore, TraceStoreError};

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
    /// The local trace store could not be opened.
    #[error(transparent)]
    TraceStore(#[from] TraceStoreError),
    /// The export threads could not be started.
    #[error("could not start the telemetry export threads: {0}")]
    Threads(std::io::Error),
    /// [`init`] was called when a global tracing subscriber was already installed.
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

/// The OTLP protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    /// Protobuf over HTTP (`http/protobuf`), the OTLP default; port 4318.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// gRPC (`grpc`); port 4317.
    #[serde(rename = "grpc")]
    Grpc,
}

impl OtlpProtocol {
    /// The name used in configuration and `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HttpProtobuf => "http/protobuf",
            Self::Grpc => "grpc",
        }
    }

    fn default_endpoint(self) -> &'static str {
        match self {
            Self::HttpProtobuf => "http://localhost:4318",
            Self::Grpc => "http://localhost:4317",
        }
    }
}

/// Where and how to send traces and metrics over OTLP.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OtlpConfig {
    /// Base endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`): for HTTP, `/v1/traces` and `/v1/metrics`
    /// are appended; for gRPC it is used as is. Defaults to localhost on the protocol's port.
    pub endpoint: String,
    /// Traces URL used as is (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), e.g. MLflow's `/v1/traces`.
    pub traces_endpoint: Option<String>,
    /// Metrics URL used as is (`OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`).
    pub metrics_endpoint: Option<String>,
    /// `http/protobuf` (default) or `grpc`.
    pub protocol: OtlpProtocol,
    /// Headers sent with every export (`OTEL_EXPORTER_OTLP_HEADERS`), e.g. an API key. Never
    /// logged.
    pub headers: BTreeMap<String, String>,
    /// Headers sent with trace exports only (`OTEL_EXPORTER_OTLP_TRACES_HEADERS`), e.g.
    /// `x-mlflow-experiment-id`. Never logged.
    pub traces_headers: BTreeMap<String, String>,
    /// How long one export request may take (`OTEL_EXPORTER_OTLP_TIMEOUT`, milliseconds in the
    /// environment; `"10s"` or a number of milliseconds in files).
    #[serde(with = "duration_format")]
    pub timeout: Duration,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        Self {
            endpoint: OtlpProtocol::default().default_endpoint().to_string(),
            traces_endpoint: None,
            metrics_endpoint: None,
            protocol: OtlpProtocol::default(),
            headers: BTreeMap::new(),
            traces_headers: BTreeMap::new(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl OtlpConfig {
    /// Whether metrics go over OTLP too: yes with a metrics endpoint, or with the base endpoint
    /// (a collector takes every signal); no when only a traces endpoint is set — that is a traces
    /// backend such as MLflow's `/v1/traces`, which has no metrics route.
    pub fn exports_metrics(&self) -> bool {
        self.metrics_endpoint.is_some() || self.traces_endpoint.is_none()
    }
}

impl fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values are credentials: only their names are shown.
        f.debug_struct("OtlpConfig")
            .field("endpoint", &self.endpoint)
            .field("traces_endpoint", &self.traces_endpoint)
            .field("metrics_endpoint", &self.metrics_endpoint)
            .field("protocol", &self.protocol)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field(
                "traces_headers",
                &self.traces_headers.keys().collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Telemetry configuration: the `[telemetry]` table of `sextant.toml`, then the `OTEL_*`
/// variables on top ([`TelemetryConfig::apply_otel_env`]).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Turns the OpenTelemetry pipeline off (`OTEL_SDK_DISABLED=true`); logs still go to stderr.
    pub disabled: bool,
    /// `service.name` of the resource (`OTEL_SERVICE_NAME`).
    pub service_name: String,
    /// More resource attributes (`OTEL_RESOURCE_ATTRIBUTES`).
    pub resource_attributes: BTreeMap<String, String>,
    /// Whether callers record message content (prompts, answers, tool arguments) on spans.
    /// The tracker only carries this switch; callers read it.
    pub capture_content: bool,
    /// Path of the SQLite trace store; `None` disables it.
    pub local_store: Option<PathBuf>,
    /// OTLP export; `None` disables it.
    pub otlp: Option<OtlpConfig>,
    /// Spans the export queue holds before dropping (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub queue_size: usize,
    /// Spans per export (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub batch_size: usize,
    /// Longest wait before a partial batch is exported (`OTEL_BSP_SCHEDULE_DELAY`).
    #[serde(with = "duration_format")]
    pub schedule_delay: Duration,
    /// Longest time one batch export may take per sink (`OTEL_BSP_EXPORT_TIMEOUT`).
    #[serde(with = "duration_format")]
    pub export_timeout: Duration,
    /// Interval between OTLP metric exports (`OTEL_METRIC_EXPORT_INTERVAL`).
    #[serde(with = "duration_format")]
    pub metric_interval: Duration,
    /// Which log lines reach stderr, `RUST_LOG` syntax.
    pub log_filter: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            disabled: false,
            service_name: "sextant".into(),
            resource_attributes: BTreeMap::new(),
            capture_content: false,
            local_store: None,
            otlp: None,
            queue_size: 2048,
            batch_size: 512,
            schedule_delay: Duration::from_secs(1),
            export_timeout: Duration::from_secs(30),
            metric_interval: Duration::from_secs(60),
            log_filter: "warn".into(),
        }
    }
}

impl TelemetryConfig {
    /// Applies the standard OpenTelemetry environment variables of this process.
    pub fn apply_otel_env(&mut self) -> Result<(), TelemetryError> {
        self.apply_env_from(|name| std::env::var(name).ok())
    }

    /// Applies the standard OpenTelemetry variables as read by `lookup`, the way the OTel SDKs
    /// do: an empty value counts as unset, a signal-specific variable beats the general one,
    /// header values are URL-decoded. A value that cannot be used is an error naming the variable.
    pub fn apply_env_from(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), TelemetryError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());

        if let Some(value) = get("OTEL_SDK_DISABLED") {
            self.disabled = parse_bool("OTEL_SDK_DISABLED", &value)?;
        }
        if let Some(value) = get("OTEL_RESOURCE_ATTRIBUTES") {
            let attributes = parse_key_values("OTEL_RESOURCE_ATTRIBUTES", &value)?;
            if let Some(name) = attributes.get("service.name") {
                self.service_name = name.clone();
            }
            self.resource_attributes.extend(attributes);
        }
        if let Some(value) = get("OTEL_SERVICE_NAME") {
            self.service_name = value.trim().to_string();
        }

        let base = get("OTEL_EXPORTER_OTLP_ENDPOINT");
        let traces = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let metrics = get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
        if base.is_some() || traces.is_some() || metrics.is_some() {
            let otlp = self.otlp.get_or_insert_with(OtlpConfig::default);
            if let Some(value) = base {
                otlp.endpoint = parse_endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", &value)?;
            }
            if let Some(value) = traces {
                otlp.traces_endpoint = Some(parse_endpoint(
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    &value,
                )?);
            }
            if let Some(value) = metrics {
                otlp.metrics_endpoint = Some(parse_endpoint(
                    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                    &value,
                )?);
            }
        }

        if let Some(otlp) = self.otlp.as_mut() {
            let protocol = [
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ]
            .into_iter()
            .find_map(|name| get(name).map(|value| (name, value)));
            if let Some((variable, value)) = protocol {
                let protocol = parse_protocol(variable, &value)?;
                let endpoint_was_default = otlp.endpoint == otlp.protocol.default_endpoint();
                otlp.protocol = protocol;
                if endpoint_was_default {
                    otlp.endpoint = protocol.default_endpoint().to_string();
                }
            }
            if let Some(value) = get("OTEL_EXPORTER_OTLP_HEADERS") {
                otlp.headers
                    .extend(parse_key_values("OTEL_EXPORTER_OTLP_HEADERS", &value)?);
            }
            if let Some(value) = get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") {
                otlp.traces_headers.extend(parse_key_values(
                    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                    &value,
                )?);
            }
            let timeout = [
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            ]
            .into_iter()
            .find_map(|name| get(name).map(|value| (name, value)));
            if let Some((variable, value)) = timeout {
                otlp.timeout = Duration::from_millis(parse_positive(variable, &value)?);
            }
        }

        if let Some(value) = get("OTEL_BSP_MAX_QUEUE_SIZE") {
            self.queue_size = parse_positive("OTEL_BSP_MAX_QUEUE_SIZE", &value)? as usize;
        }
        if let Some(value) = get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE") {
            self.batch_size = parse_positive("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &value)? as usize;
        }
        if let Some(value) = get("OTEL_BSP_SCHEDULE_DELAY") {
            self.schedule_delay =
                Duration::from_millis(parse_positive("OTEL_BSP_SCHEDULE_DELAY", &value)?);
        }
        if let Some(value) = get("OTEL_BSP_EXPORT_TIMEOUT") {
            self.export_timeout =
                Duration::from_millis(parse_positive("OTEL_BSP_EXPORT_TIMEOUT", &value)?);
        }
        if let Some(value) = get("OTEL_METRIC_EXPORT_INTERVAL") {
            self.metric_interval =
                Duration::from_millis(parse_positive("OTEL_METRIC_EXPORT_INTERVAL", &value)?);
        }
        Ok(())
    }

    fn batch_config(&self) -> BatchConfig {
        BatchConfig {
            queue_size: self.queue_size.max(1),
            // As the SDKs do: a batch larger than the queue is capped at the queue size.
            batch_size: self.batch_size.clamp(1, self.queue_size.max(1)),
            schedule_delay: self.schedule_delay,
            export_timeout: self.export_timeout,
        }
    }

    fn resource(&self) -> Resource {
        let attributes = self
            .resource_attributes
            .iter()
            .filter(|(key, _)| key.as_str() != "service.name")
            .map(|(key, value)| opentelemetry::KeyValue::new(key.clone(), value.clone()));
        Resource::builder_empty()
            .with_service_name(self.service_name.clone())
            .with_attributes(attributes)
            .build()
    }
}

fn invalid(variable: &'static str, reason: impl Into<String>) -> TelemetryError {
    TelemetryError::InvalidEnv {
        variable,
        reason: reason.into(),
    }
}

fn parse_bool(variable: &'static str, value: &str) -> Result<bool, TelemetryError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(invalid(variable, format!("'{other}' is not true or false"))),
    }
}

fn parse_positive(variable: &'static str, value: &str) -> Result<u64, TelemetryError> {
    match value.trim().parse::<u64>() {
        Ok(number) if number > 0 => Ok(number),
        _ => Err(invalid(
            variable,
            format!("'{}' is not a positive whole number", value.trim()),
        )),
    }
}

fn parse_protocol(variable: &'static str, value: &str) -> Result<OtlpProtocol, TelemetryError> {
    match value.trim() {
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        "http/json" => Err(invalid(
            variable,
            "http/json is not supported; use http/protobuf or grpc",
        )),
        other => Err(invalid(
            variable,
            format!("'{other}' is not an OTLP protocol (http/protobuf or grpc)"),
        )),
    }
}

fn parse_endpoint(variable: &'static str, value: &str) -> Result<String, TelemetryError> {
    let value = value.trim();
    let uri: http::Uri = value
        .parse()
        .map_err(|error| invalid(variable, format!("'{value}' is not a URL: {error}")))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(value.to_string()),
        _ => Err(invalid(
            variable,
            format!("'{value}' is not an http:// or https:// URL with a host"),
        )),
    }
}

/// Parses `k=v,k2=v2` with URL-decoded keys and values (W3C baggage style, as the OTel SDKs
/// read headers and resource attributes). Errors never quote a value: it may be a credential.
fn parse_key_values(
    variable: &'static str,
    value: &str,
) -> Result<BTreeMap<String, String>, TelemetryError> {
    let mut pairs = BTreeMap::new();
    for (index, entry) in value.split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            return Err(invalid(
                variable,
                format!("entry {} is not of the form key=value", index + 1),
            ));
        };
        let key = percent_decode(key.trim())
            .filter(|key| !key.is_empty())
            .ok_or_else(|| invalid(variable, format!("entry {} has an invalid key", index + 1)))?;
        let value = percent_decode(value.trim()).ok_or_else(|| {
            invalid(
                variable,
                format!("the value of '{key}' is not valid percent-encoding"),
            )
        })?;
        pairs.insert(key, value);
    }
    Ok(pairs)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).ok()
}

/// Durations in configuration files: a number of milliseconds, or a string such as `"500ms"`,
/// `"1s"`, `"2m"`.
mod duration_format {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Millis(u64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        match Raw::deserialize(deserializer)? {
            Raw::Millis(millis) => Ok(Duration::from_millis(millis)),
            Raw::Text(text) => parse(&text).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "'{text}' is not a duration: write e.g. 500ms, 1s, 2m or a number of milliseconds"
                ))
            }),
        }
    }

    pub(super) fn parse(text: &str) -> Option<Duration> {
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().ok()?;
        let seconds = match unit.trim() {
            "ms" => number / 1e3,
            "s" => number,
            "m" => number * 60.0,
            _ => return None,
        };
        Duration::try_from_secs_f64(seconds).ok()
    }
}

/// Builds a telemetry pipeline without installing anything globally; [`init`] builds one and
/// installs it. Tests use this with [`TelemetryGuard::set_thread_default`].
pub struct Telemetry;

impl Telemetry {
    /// A builder for the pipeline that `config` describes.
    pub fn builder(config: &TelemetryConfig) -> TelemetryBuilder {
        TelemetryBuilder {
            config: config.clone(),
            span_exporters: Vec::new(),
            metric_exporter: None,
        }
    }
}

type AddSpanExporter =
    Box<dyn FnOnce(BoundedBatchProcessorBuilder) -> BoundedBatchProcessorBuilder>;
type AddMetricReader = Box<dyn FnOnce(MeterProviderBuilder, Duration) -> MeterProviderBuilder>;

/// Builds a [`TelemetryGuard`]: the configured sinks plus any extra exporters.
pub struct TelemetryBuilder {
    config: TelemetryConfig,
    span_exporters: Vec<AddSpanExporter>,
    metric_exporter: Option<AddMetricReader>,
}

impl TelemetryBuilder {
    /// Adds a span exporter next to the configured sinks (a test double, another backend).
    pub fn with_span_exporter<E>(mut self, name: impl Into<String>, exporter: E) -> Self
    where
        E: opentelemetry_sdk::trace::SpanExporter + 'static,
    {
        let name = name.into();
        self.span_exporters.push(Box::new(move |builder| {
            builder.with_exporter(name, exporter)
        }));
        self
    }

    /// Sends metrics to `exporter` (periodically, and on flush) instead of the configured OTLP
    /// endpoint, e.g. opentelemetry_sdk's in-memory exporter in tests.
    pub fn with_metric_exporter<E>(mut self, exporter: E) -> Self
    where
        E: PushMetricExporter + 'static,
    {
        self.metric_exporter = Some(Box::new(move |builder, interval| {
            builder.with_reader(
                PeriodicReader::builder(exporter)
                    .with_interval(interval)
                    .build(),
            )
        }));
        self
    }

    /// Starts the export thread and the providers.
    pub fn build(self) -> Result<TelemetryGuard, TelemetryError> {
        let config = self.config;
        let counters = Arc::new(ExportCounters::default());
        if config.disabled {
            return Ok(TelemetryGuard {
                pipeline: None,
                counters,
                trace_store: None,
                capture_content: config.capture_content,
                shut_down: false,
            });
        }
        let runtime = IoRuntime::start()?;
        let handle = runtime.handle();
        let resource = config.resource();
        let trace_store = config
            .local_store
            .as_ref()
            .map(LocalTraceStore::open)
            .transpose()?;

        let mut processor =
            BoundedBatchProcessor::builder(config.batch_config(), handle.clone(), resource.clone());
        if let Some(store) = &trace_store {
            processor = processor.with_exporter("local trace store", store.clone());
        }
        let mut meter_provider = SdkMeterProvider::builder().with_resource(resource.clone());
        {
            // The gRPC channels spawn their connection tasks on the runtime in context.
            let _context = handle.enter();
            if let Some(otlp_config) = &config.otlp {
                let http_client = RuntimeHttpClient::new(handle.clone(), otlp_config.timeout)?;
                let exporter = otlp::span_exporter(otlp_config, &http_client)?;
                processor = processor
                    .with_exporter(format!("OTLP {}", otlp_config.protocol.as_str()), exporter);
                if self.metric_exporter.is_none() && otlp_config.exports_metrics() {
                    let metric_exporter = otlp::metric_exporter(otlp_config, &http_client)?;
                    meter_provider = meter_provider.with_reader(
                        PeriodicReader::builder(metric_exporter)
                            .with_interval(config.metric_interval)
                            .build(),
                    );
                }
            }
            if let Some(add_reader) = self.metric_exporter {
                meter_provider = add_reader(meter_provider, config.metric_interval);
            }
        }
        // Always aggregated in-process too, for a Prometheus `/metrics` endpoint (cumulative, so
        // nothing grows beyond one point per attribute set).
        let prometheus = PrometheusReader::new();
        meter_provider = meter_provider.with_reader(prometheus.clone());
        let has_sinks =
            trace_store.is_some() || config.otlp.is_some() || !self.span_exporters.is_empty();
        for add in self.span_exporters {
            processor = add(processor);
        }
        let mut tracer_provider = SdkTracerProvider::builder().with_resource(resource);
        let mut counters = counters;
        // Without a sink, spans still get ids (for logs and `traceparent`) but nothing is queued.
        if has_sinks {
            let processor = processor.build().map_err(TelemetryError::Threads)?;
            counters = processor.counters();
            tracer_provider = tracer_provider.with_span_processor(processor);
        }
        let tracer_provider = tracer_provider.build();
        let tracer = tracer_provider.tracer(INSTRUMENTATION_SCOPE);
        Ok(TelemetryGuard {
            pipeline: Some(Pipeline {
                tracer_provider,
                tracer,
                meter_provider: meter_provider.build(),
                prometheus,
                runtime,
            }),
            counters,
            trace_store,
            capture_content: config.capture_content,
            shut_down: false,
        })
    }
}

/// The runtime that OTLP exports run on: one worker thread, owned by the guard. It is shut down
/// without waiting, so the guard may be dropped inside another runtime.
struct IoRuntime(Option<tokio::runtime::Runtime>);

impl IoRuntime {
    fn start() -> Result<Self, TelemetryError> {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sextant-otlp-io")
            .enable_all()
            .build()
            .map(|runtime| Self(Some(runtime)))
            .map_err(TelemetryError::Threads)
    }

    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(runtime) => runtime.handle().clone(),
            None => unreachable!("the I/O runtime is only taken when it is dropped"),
        }
    }
}

impl Drop for IoRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

struct Pipeline {
    tracer_provider: SdkTracerProvider,
    tracer: SdkTracer,
    meter_provider: SdkMeterProvider,
    prometheus: PrometheusReader,
    runtime: IoRuntime,
}

/// What a pipeline did over its life, returned by [`TelemetryGuard::shutdown`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Spans that every sink accepted.
    pub exported: u64,
    /// Spans dropped because the export queue was full (or arrived after shutdown).
    pub dropped: u64,
    /// Failed exports, one per sink and batch.
    pub export_errors: u64,
}

/// Owns the telemetry pipeline; flushes and shuts it down when dropped.
///
/// Keep it alive for the whole run (`let _telemetry = init(&config)?;` in `main`). Dropping it —
/// a normal return, an early `?` return, or a panic unwinding through `main` — exports every
/// queued span. The CLI turns Ctrl-C into a normal return (it awaits `tokio::signal::ctrl_c()`
/// next to the work and returns), so an interrupted run is flushed the same way; only a second
/// Ctrl-C or `SIGKILL` loses spans.
pub struct TelemetryGuard {
    pipeline: Option<Pipeline>,
    counters: Arc<ExportCounters>,
    trace_store: Option<LocalTraceStore>,
    capture_content: bool,
    shut_down: bool,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("enabled", &self.pipeline.is_some())
            .field("trace_store", &self.trace_store)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl TelemetryGuard {
    /// The `tracing` layer that turns spans into OpenTelemetry spans of this pipeline (nothing
    /// when the SDK is disabled).
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
    {
        self.pipeline.as_ref().map(|pipeline| {
            tracing_opentelemetry::layer()
                .with_tracer(pipeline.tracer.clone())
                .with_tracked_inactivity(false)
                .with_threads(false)
                .with_location(false)
                .with_target(false)
                .with_level(false)
        })
    }

    /// Makes this pipeline the current thread's subscriber until the returned guard drops
    /// (tests; a `#[tokio::test]` on the current-thread runtime).
    pub fn set_thread_default(&self) -> tracing::subscriber::DefaultGuard {
        tracing::subscriber::set_default(Registry::default().with(self.layer()))
    }

    /// The local trace store, if one is configured.
    pub fn trace_store(&self) -> Option<&LocalTraceStore> {
        self.trace_store.as_ref()
    }

    /// The GenAI metrics on this pipeline's meter provider (the global one after [`init`]).
    pub fn metrics(&self) -> GenAiMetrics {
        match &self.pipeline {
            Some(pipeline) => GenAiMetrics::from_provider(&pipeline.meter_provider),
            None => GenAiMetrics::global(),
        }
    }

    /// The HTTP server metrics on this pipeline's meter provider (the global one after [`init`]).
    pub fn http_server_metrics(&self) -> HttpServerMetrics {
        match &self.pipeline {
            Some(pipeline) => HttpServerMetrics::from_provider(&pipeline.meter_provider),
            None => HttpServerMetrics::global(),
        }
    }

    /// Every metric of this pipeline so far, in the Prometheus text format (empty when telemetry
    /// is disabled).
    pub fn prometheus_text(&self) -> Result<String, TelemetryError> {
        match &self.pipeline {
            Some(pipeline) => pipeline.prometheus.render().map_err(TelemetryError::Flush),
            None => Ok(String::new()),
        }
    }

    /// Whether callers should record message content on spans.
    pub fn capture_content(&self) -> bool {
        self.capture_content
    }

    /// Exports every span ended so far and the current metrics, and waits for it.
    pub fn force_flush(&self) -> Result<(), TelemetryError> {
        let Some(pipeline) = &self.pipeline else {
            return Ok(());
        };
        let traces = pipeline.tracer_provider.force_flush();
        let metrics = pipeline.meter_provider.force_flush();
        traces
            .and(metrics)
            .map_err(|error| TelemetryError::Flush(error.to_string()))
    }

    /// Spans dropped so far because the export queue was full.
    pub fn dropped_spans(&self) -> u64 {
        self.counters.dropped()
    }

    /// Spans exported so far.
    pub fn exported_spans(&self) -> u64 {
        self.counters.exported()
    }

    /// Failed exports so far.
    pub fn export_errors(&self) -> u64 {
        self.counters.export_errors()
    }

    /// Flushes and shuts the pipeline down, and says what it did.
    pub fn shutdown(mut self) -> Result<ShutdownReport, TelemetryError> {
        self.shutdown_in_place()
    }

    fn shutdown_in_place(&mut self) -> Result<ShutdownReport, TelemetryError> {
        if self.shut_down {
            return Ok(self.report());
        }
        self.shut_down = true;
        let mut result = Ok(());
        if let Some(pipeline) = self.pipeline.take() {
            // Metrics first: their final export still needs the I/O runtime.
            if let Err(error) = pipeline.meter_provider.shutdown() {
                // A metrics endpoint that is down must not hide the span report.
                tracing::warn!("the final metrics export failed: {error}");
            }
            let traces = pipeline.tracer_provider.shutdown();
            drop(pipeline.runtime);
            result = traces.map_err(|error| TelemetryError::Shutdown(error.to_string()));
        }
        let report = self.report();
        if report.dropped > 0 {
            tracing::warn!(
                dropped = report.dropped,
                "{} spans were dropped because the export queue was full; raise \
                 OTEL_BSP_MAX_QUEUE_SIZE or check the trace endpoint",
                report.dropped
            );
        }
        if report.export_errors > 0 {
            tracing::warn!(
                export_errors = report.export_errors,
                "{} span exports failed; see the warnings above",
                report.export_errors
            );
        }
        result.map(|()| report)
    }

    fn report(&self) -> ShutdownReport {
        ShutdownReport {
            exported: self.counters.exported(),
            dropped: self.counters.dropped(),
            export_errors: self.counters.export_errors(),
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown_in_place() {
            tracing::warn!("{error}");
        }
    }
}

/// Builds the pipeline that `config` describes and installs it for the whole process: the global
/// tracing subscriber (log lines to stderr filtered by `log_filter`, spans to OpenTelemetry), the
/// global tracer and meter providers and the W3C trace-context propagator.
///
/// A second call in the same process returns [`TelemetryError::AlreadyInitialized`] (it never
/// panics); tests build local pipelines with [`Telemetry::builder`].
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let log_filter = EnvFilter::try_new(&config.log_filter).map_err(|error| {
        TelemetryError::InvalidLogFilter {
            filter: config.log_filter.clone(),
            reason: error.to_string(),
        }
    })?;
    let guard = Telemetry::builder(config).build()?;
    let log_layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(log_filter);
    let span_layer = guard.layer().with_filter(span_filter());
    let subscriber = Registry::default().with(log_layer).with(span_layer);
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| TelemetryError::AlreadyInitialized)?;
    if let Some(pipeline) = &guard.pipeline {
        opentelemetry::global::set_tracer_provider(pipeline.tracer_provider.clone());
        opentelemetry::global::set_meter_provider(pipeline.meter_provider.clone());
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Ok(guard)
}

/// Which spans become OpenTelemetry spans: info and above, except the HTTP, gRPC and exporter
/// internals (which would otherwise trace their own exports).
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
    ];
    quiet.into_iter().fold(
        Targets::new().with_default(LevelFilter::INFO),
        |targets, target| targets.with_target(target, LevelFilter::OFF),
    )
}

/// Records a failure on `span` the way every backend reads it: `error.type` for grouping, and an
/// ERROR status with a description (tracing-opentelemetry's `otel.status_*` fields, which the
/// span must declare, with `error.type`, as `Empty`).
pub fn mark_failed(span: &tracing::Span, error_type: &str, description: &str) {
    span.record(crate::conventions::ERROR_TYPE, error_type);
    span.record(crate::conventions::OTEL_STATUS_CODE, "ERROR");
    span.record(crate::conventions::OTEL_STATUS_DESCRIPTION, description);
}

/// The trace id of `span` as 32 lower-case hex digits, or `None` when the span is not recorded
/// by an OpenTelemetry pipeline.
pub fn current_trace_id(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// `span`'s own W3C trace context as a `traceparent` value (`00-<trace>-<span>-<flags>`): what
/// a server sends back as `traceresponse` or a client sends on. `None` when the span is not
/// recorded by an OpenTelemetry pipeline.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

/// Makes `span` continue the trace of a W3C `traceparent` header (an incoming HTTP request).
/// Call it before the span is entered.
pub fn set_parent_from_traceparent(
    span: &tracing::Span,
    traceparent: &str,
) -> Result<(), TelemetryError> {
    continue_trace(span, traceparent, None)
}

/// Makes `span` continue the trace of W3C `traceparent` and `tracestate` headers (an incoming
/// HTTP request); the tracestate travels on to this span's children. Call it before the span is
/// entered.
pub fn continue_trace(
    span: &tracing::Span,
    traceparent: &str,
    tracestate: Option<&str>,
) -> Result<(), TelemetryError> {
    let mut carrier = HashMap::from([("traceparent".to_string(), traceparent.trim().to_string())]);
    if let Some(state) = tracestate.map(str::trim).filter(|s| !s.is_empty()) {
        carrier.insert("tracestate".to_string(), state.to_string());
    }
    let context = TraceContextPropagator::new().extract(&carrier);
    if !context.span().span_context().is_valid() {
        return Err(TelemetryError::InvalidTraceparent(traceparent.to_string()));
    }
    span.set_parent(context)
        .map_err(|_| TelemetryError::InvalidTraceparent(traceparent.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let config = TelemetryConfig::default();
        assert_eq!(config.service_name, "sextant");
        assert!(!config.capture_content);
        assert_eq!((config.queue_size, config.batch_size), (2048, 512));
        assert_eq!(config.schedule_delay, Duration::from_secs(1));
        assert_eq!(config.log_filter, "warn");
        assert!(config.otlp.is_none() && config.local_store.is_none());
    }

    #[test]
    fn standard_variables_are_honoured() {
        let mut config = TelemetryConfig::default();
        config
            .apply_env_from(env(&[
                ("OTEL_SERVICE_NAME", "rag-agent"),
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "deployment.environment=prod,service.name=ignored,team=a%20b",
                ),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://mlflow:5000/v1/traces",
                ),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "authorization=Bearer%20abc,x-a=1",
                ),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                    "x-mlflow-experiment-id=7",
                ),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
                ("OTEL_BSP_SCHEDULE_DELAY", "250"),
                ("OTEL_SDK_DISABLED", "false"),
            ]))
            .unwrap();
        assert_eq!(
            config.service_name, "rag-agent",
            "OTEL_SERVICE_NAME beats service.name"
        );
        assert_eq!(config.resource_attributes["team"], "a b");
        let otlp = config.otlp.as_ref().unwrap();
        assert_eq!(otlp.endpoint, "http://collector:4318");
        assert_eq!(
            otlp.traces_endpoint.as_deref(),
            Some("http://mlflow:5000/v1/traces")
        );
        assert_eq!(otlp.headers["authorization"], "Bearer abc");
        assert_eq!(otlp.traces_headers["x-mlflow-experiment-id"], "7");
        assert_eq!(otlp.timeout, Duration::from_millis(2500));
        assert_eq!((config.queue_size, config.batch_size), (100, 10));
        assert_eq!(config.schedule_delay, Duration::from_millis(250));
        assert!(!config.disabled);
        assert!(
            !format!("{otlp:?}").contains("abc"),
            "Debug hides header values"
        );
    }

    #[test]
    fn metrics_follow_a_base_or_metrics_endpoint_but_not_a_traces_only_one() {
        let base = OtlpConfig::default();
        assert!(base.exports_metrics());
        let traces_only = OtlpConfig {
            traces_endpoint: Some("http://127.0.0.1:5000/v1/traces".into()),
            ..OtlpConfig::default()
        };
        assert!(
            !traces_only.exports_metrics(),
            "MLflow's /v1/traces has no metrics route"
        );
        let both = OtlpConfig {
            metrics_endpoint: Some("http://127.0.0.1:4318/v1/metrics".into()),
            ..traces_only
        };
        assert!(both.exports_metrics());
    }

    #[test]
    fn grpc_protocol_moves_the_default_endpoint_and_empty_values_are_unset() {
        let mut config = TelemetryConfig {
            otlp: Some(OtlpConfig::default()),
            ..TelemetryConfig::default()
        };
        config
            .apply_env_from(env(&[
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_SERVICE_NAME", ""),
            ]))
            .unwrap();
        let otlp = config.otlp.unwrap();
        assert_eq!(otlp.protocol, OtlpProtocol::Grpc);
        assert_eq!(otlp.endpoint, "http://localhost:4317");
        assert_eq!(config.service_name, "sextant");
    }

    #[test]
    fn bad_values_are_errors_naming_the_variable() {
        let cases = [
            ("OTEL_SDK_DISABLED", "yes"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "many"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
            ("OTEL_BSP_SCHEDULE_DELAY", "-5"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "not a url"),
            ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
        ];
        for (variable, value) in cases {
            let error = TelemetryConfig::default()
                .apply_env_from(env(&[(variable, value)]))
                .unwrap_err();
            assert!(error.to_string().contains(variable), "{variable}: {error}");
        }
        let with_endpoint = |extra: (&'static str, &'static str)| {
            TelemetryConfig::default()
                .apply_env_from(env(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    extra,
                ]))
                .unwrap_err()
                .to_string()
        };
        let error = with_endpoint(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"));
        assert!(error.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{error}");
        let error = with_endpoint(("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"));
        assert!(error.contains("OTEL_EXPORTER_OTLP_TIMEOUT"), "{error}");
        let error = with_endpoint((
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Bearer%ZZsecret",
        ));
        assert!(
            error.contains("OTEL_EXPORTER_OTLP_HEADERS") && !error.contains("secret"),
            "{error}"
        );
        let error = with_endpoint(("OTEL_EXPORTER_OTLP_HEADERS", "Bearer-secret"));
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn config_files_deserialize_with_readable_durations() {
        let config: TelemetryConfig = serde_json::from_value(serde_json::json!({
            "service_name": "svc",
            "schedule_delay": "500ms",
            "export_timeout": 2000,
            "otlp": {"endpoint": "http://c:4317", "protocol": "grpc", "timeout": "3s",
                     "headers": {"api-key": "k"}},
        }))
        .unwrap();
        assert_eq!(config.schedule_delay, Duration::from_millis(500));
        assert_eq!(config.export_timeout, Duration::from_secs(2));
        let otlp = config.otlp.unwrap();
        assert_eq!(otlp.protocol, OtlpProtocol::Grpc);
        assert_eq!(otlp.timeout, Duration::from_secs(3));
        let error = serde_json::from_value::<TelemetryConfig>(
            serde_json::json!({"schedule_delay": "soon"}),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("not a duration"), "{error}");
    }
}
