//! OTLP endpoints and headers from an [`OtlpConfig`], and the metric exporter (over HTTP/protobuf
//! or gRPC). Spans take their own client (`export/otlp_traces.rs`), since they are spooled.
//!
//! The metric exporter runs on the telemetry I/O runtime: the gRPC channel is created inside it,
//! and HTTP requests go through [`RuntimeHttpClient`], which spawns each request onto it, so an
//! export can be driven from the metrics reader thread without a runtime of its own.

use std::collections::BTreeMap;
use std::str::FromStr;

use async_trait::async_trait;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::{
    MetricExporter, Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig,
};

use crate::telemetry::{OtlpConfig, OtlpProtocol, TelemetryError};

/// Which signal an exporter carries; picks the URL path and the error wording.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Self::Traces => "traces",
            Self::Metrics => "metrics",
        }
    }

    fn http_path(self) -> &'static str {
        match self {
            Self::Traces => "v1/traces",
            Self::Metrics => "v1/metrics",
        }
    }
}

/// The URL a signal is sent to: a signal-specific endpoint is used as is; the base endpoint gets
/// `/v1/traces` or `/v1/metrics` appended for HTTP, and is used as is for gRPC.
pub(crate) fn signal_endpoint(config: &OtlpConfig, signal: Signal) -> String {
    let specific = match signal {
        Signal::Traces => config.traces_endpoint.as_deref(),
        Signal::Metrics => config.metrics_endpoint.as_deref(),
    };
    if let Some(endpoint) = specific {
        return endpoint.to_string();
    }
    match config.protocol {
        OtlpProtocol::Grpc => config.endpoint.clone(),
        OtlpProtocol::HttpProtobuf => format!(
            "{}/{}",
            config.endpoint.trim_end_matches('/'),
            signal.http_path()
        ),
    }
}

/// The headers for a signal: the common ones, then the signal-specific ones on top.
pub(crate) fn signal_headers(config: &OtlpConfig, signal: Signal) -> BTreeMap<String, String> {
    let mut headers = config.headers.clone();
    if let Signal::Traces = signal {
        headers.extend(config.traces_headers.clone());
    }
    headers
}

fn metadata(headers: &BTreeMap<String, String>) -> Result<MetadataMap, TelemetryError> {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        let header_name = http::HeaderName::from_str(name)
            .map_err(|_| TelemetryError::InvalidHeader { name: name.clone() })?;
        let header_value = http::HeaderValue::from_str(value)
            .map_err(|_| TelemetryError::InvalidHeader { name: name.clone() })?;
        map.insert(header_name, header_value);
    }
    Ok(MetadataMap::from_headers(map))
}

fn build_error(
    signal: Signal,
    config: &OtlpConfig,
) -> impl FnOnce(opentelemetry_otlp::ExporterBuildError) -> TelemetryError {
    let protocol = config.protocol;
    move |error| TelemetryError::Exporter {
        signal: signal.name(),
        protocol: protocol.as_str(),
        reason: error.to_string(),
    }
}

pub(crate) fn validate_headers(headers: &BTreeMap<String, String>) -> Result<(), TelemetryError> {
    metadata(headers).map(|_| ())
}

/// Builds the OTLP metric exporter. Must run inside the I/O runtime's context (gRPC).
pub(crate) fn metric_exporter(
    config: &OtlpConfig,
    http_client: &RuntimeHttpClient,
) -> Result<MetricExporter, TelemetryError> {
    let signal = Signal::Metrics;
    let endpoint = signal_endpoint(config, signal);
    let headers = signal_headers(config, signal);
    validate_headers(&headers)?;
    match config.protocol {
        OtlpProtocol::Grpc => MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(config.timeout)
            .with_metadata(metadata(&headers)?)
            .build(),
        OtlpProtocol::HttpProtobuf => MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_timeout(config.timeout)
            .with_headers(headers.into_iter().collect())
            .with_http_client(http_client.clone())
            .build(),
    }
    .map_err(build_error(signal, config))
}

/// An async HTTP client whose requests run on the telemetry I/O runtime, whichever thread awaits
/// them.
#[derive(Clone, Debug)]
pub(crate) struct RuntimeHttpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl RuntimeHttpClient {
    pub(crate) fn new(
        runtime: tokio::runtime::Handle,
        timeout: std::time::Duration,
    ) -> Result<Self, TelemetryError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|error| TelemetryError::Exporter {
                signal: "traces and metrics",
                protocol: OtlpProtocol::HttpProtobuf.as_str(),
                reason: format!("the HTTP client could not be built: {error}"),
            })?;
        Ok(Self { client, runtime })
    }
}

#[async_trait]
impl HttpClient for RuntimeHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let exchange = async move {
            let request = reqwest::Request::try_from(request)?;
            let response = client.execute(request).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            let mut reply = Response::builder().status(status).body(body)?;
            *reply.headers_mut() = headers;
            Ok::<_, HttpError>(reply)
        };
        self.runtime.spawn(exchange).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_the_otlp_exporter_rules() {
        let mut config = OtlpConfig {
            endpoint: "http://collector:4318/".into(),
            ..OtlpConfig::default()
        };
        assert_eq!(
            signal_endpoint(&config, Signal::Traces),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            signal_endpoint(&config, Signal::Metrics),
            "http://collector:4318/v1/metrics"
        );
        config.traces_endpoint = Some("http://mlflow:5000/v1/traces".into());
        assert_eq!(
            signal_endpoint(&config, Signal::Traces),
            "http://mlflow:5000/v1/traces"
        );
        config.protocol = OtlpProtocol::Grpc;
        config.endpoint = "http://collector:4317".into();
        assert_eq!(
            signal_endpoint(&config, Signal::Metrics),
            "http://collector:4317"
        );
    }

    #[test]
    fn a_bad_header_is_named_without_its_value() {
        let mut headers = BTreeMap::new();
        headers.insert("authorization".to_string(), "Bearer s3cr3t\n".to_string());
        let error = validate_headers(&headers).unwrap_err().to_string();
        assert!(error.contains("authorization"), "{error}");
        assert!(!error.contains("s3cr3t"), "{error}");
    }
}
