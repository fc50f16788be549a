//! The telemetry configuration: the `[telemetry]` table of `sextant.toml` and its OTLP section,
//! with readable durations in files. The `OTEL_*` variables are applied on top by
//! [`TelemetryConfig::apply_otel_env`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

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

    pub(super) fn default_endpoint(self) -> &'static str {
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

/// When the span spool's writes are forced to disk (`fsync`). A killed process loses nothing in
/// any case (written data is in the kernel's page cache); the policy is about a crash of the
/// machine or a power loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// After every batch written: nothing acknowledged to the spool is lost, at one disk flush
    /// per batch.
    Always,
    /// At most once a second (the default): a machine crash loses at most the last second.
    #[default]
    Interval,
    /// Left to the operating system.
    Never,
}

/// `[telemetry.spool]`: the on-disk spool that keeps spans a remote sink (an OTLP collector,
/// MLflow) has not acknowledged yet.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// Disk quota per sink (`"1GiB"`, `"200MB"` or a number of bytes). Past it the oldest
    /// spooled spans are dropped and counted.
    #[serde(with = "byte_size_format")]
    pub max_bytes: u64,
    /// When writes are forced to disk.
    pub fsync: FsyncPolicy,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024 * 1024,
            fsync: FsyncPolicy::default(),
        }
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
    /// Where remote sinks spool the spans they could not deliver yet (`<data dir>/spool/spans`);
    /// required with an OTLP endpoint.
    pub spool_dir: Option<PathBuf>,
    /// The spool's quota and fsync policy.
    pub spool: SpoolConfig,
    /// Spans each sink's queue holds before dropping (`OTEL_BSP_MAX_QUEUE_SIZE`). A remote
    /// sink's queue only waits for the spool's disk, never for the network.
    pub queue_size: usize,
    /// Spans per export (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub batch_size: usize,
    /// Longest wait before a remote sink sends a request that is not full
    /// (`OTEL_BSP_SCHEDULE_DELAY`); spans reach the local store and the spool at once.
    #[serde(with = "duration_format")]
    pub schedule_delay: Duration,
    /// Longest time one batch export may take per sink (`OTEL_BSP_EXPORT_TIMEOUT`).
    #[serde(with = "duration_format")]
    pub export_timeout: Duration,
    /// How long shutdown waits for live remote sinks to take what is spooled; the rest stays
    /// in the spool for the next process.
    #[serde(with = "duration_format")]
    pub shutdown_timeout: Duration,
    /// Interval between OTLP metric exports (`OTEL_METRIC_EXPORT_INTERVAL`).
    #[serde(with = "duration_format")]
    pub metric_interval: Duration,
    /// Which log lines reach stderr, `RUST_LOG` syntax.
    pub log_filter: String,
    /// What is replaced by placeholders on every span before any sink sees it.
    pub redaction: sextant_redaction::RedactionConfig,
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
            spool_dir: None,
            spool: SpoolConfig::default(),
            queue_size: 2048,
            batch_size: 512,
            schedule_delay: Duration::from_secs(1),
            export_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
            metric_interval: Duration::from_secs(60),
            log_filter: "warn".into(),
            redaction: sextant_redaction::RedactionConfig::default(),
        }
    }
}

/// Byte sizes in configuration files: a number of bytes, or a string such as `"512MiB"`.
mod byte_size_format {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Bytes(u64),
        Text(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        match Raw::deserialize(deserializer)? {
            Raw::Bytes(bytes) => Ok(bytes),
            Raw::Text(text) => text
                .trim()
                .parse::<bytesize::ByteSize>()
                .map(|size| size.as_u64())
                .map_err(|_| {
                    serde::de::Error::custom(format!(
                        "'{text}' is not a size: write e.g. 512MiB, 1GiB, 200MB or a number of bytes"
                    ))
                }),
        }
    }
}

/// A duration as configuration files write it: `"500ms"`, `"1s"`, `"2m"`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    duration_format::parse(text)
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

    pub(crate) fn parse(text: &str) -> Option<Duration> {
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn spool_sizes_read_with_units_and_bad_ones_are_named() {
        let spool: SpoolConfig =
            serde_json::from_value(serde_json::json!({"max_bytes": "512MiB", "fsync": "always"}))
                .unwrap();
        assert_eq!(spool.max_bytes, 512 * 1024 * 1024);
        assert_eq!(spool.fsync, FsyncPolicy::Always);
        let spool: SpoolConfig =
            serde_json::from_value(serde_json::json!({"max_bytes": 4096})).unwrap();
        assert_eq!(
            (spool.max_bytes, spool.fsync),
            (4096, FsyncPolicy::Interval)
        );
        let error = serde_json::from_value::<SpoolConfig>(serde_json::json!({"max_bytes": "lots"}))
            .unwrap_err()
            .to_string();
        assert!(error.contains("'lots' is not a size"), "{error}");
    }
}
