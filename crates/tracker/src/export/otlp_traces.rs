//! The OTLP trace client behind a spooling sink: sends one encoded `ExportTraceServiceRequest`
//! over HTTP/protobuf or gRPC and says what the backend answered, following the OTLP
//! specification's retry rules (with `Retry-After`).
//!
//! The SDK's `opentelemetry-otlp` span exporter takes spans, not encoded requests, and reports
//! neither status codes nor `Retry-After`; a spool replays encoded requests, possibly in another
//! process, so this client sends them itself with the same wire types (`opentelemetry-proto`)
//! and transports (`reqwest`, `tonic`).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use sextant_conventions::{UrlParts, shown_url};
use tonic::transport::Channel;

use crate::otlp::{Signal, signal_endpoint, signal_headers, validate_headers};
use crate::telemetry::{OtlpConfig, OtlpProtocol, TelemetryError};

/// The longest `Retry-After` honoured; a longer one is cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// What the backend did with a request.
#[derive(Debug, PartialEq)]
pub(crate) enum Delivery {
    /// Acknowledged; `rejected_spans` were refused inside it (a partial success).
    Delivered { rejected_spans: u64 },
    /// Not taken now; send again later (after `after` if the backend said so).
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Refused for good: sending it again would fail again.
    Rejected { reason: String },
}

enum Transport {
    Http {
        client: reqwest::Client,
        url: String,
    },
    Grpc {
        client: TraceServiceClient<Channel>,
    },
}

/// Sends encoded trace export requests to one OTLP endpoint.
pub(crate) struct OtlpTraceClient {
    transport: Transport,
    headers: BTreeMap<String, String>,
    timeout: Duration,
    description: String,
    key: String,
}

impl OtlpTraceClient {
    /// A client for `config`'s traces endpoint. Must run inside the I/O runtime's context
    /// (the gRPC channel's connection task).
    pub fn new(config: &OtlpConfig) -> Result<Self, TelemetryError> {
        let endpoint = signal_endpoint(config, Signal::Traces);
        let headers = signal_headers(config, Signal::Traces);
        let build_error = |reason: String| TelemetryError::Exporter {
            signal: "traces",
            protocol: config.protocol.as_str(),
            reason,
        };
        validate_headers(&headers)?;
        let transport = match config.protocol {
            OtlpProtocol::HttpProtobuf => Transport::Http {
                client: reqwest::Client::builder()
                    .timeout(config.timeout)
                    .connect_timeout(config.timeout)
                    .build()
                    .map_err(|error| {
                        build_error(format!("the HTTP client could not be built: {error}"))
                    })?,
                url: endpoint.clone(),
            },
            OtlpProtocol::Grpc => {
                let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())
                    .map_err(|_| {
                        build_error(format!(
                            "`{}` is not a gRPC endpoint URL",
                            shown_url(&endpoint, UrlParts::Location)
                        ))
                    })?
                    .connect_timeout(config.timeout)
                    .timeout(config.timeout)
                    .connect_lazy();
                Transport::Grpc {
                    client: TraceServiceClient::new(channel),
                }
            }
        };
        let shown = shown_url(&endpoint, UrlParts::Location);
        Ok(Self {
            transport,
            headers,
            timeout: config.timeout,
            description: format!("OTLP {} {shown}", config.protocol.as_str()),
            key: sink_key(config.protocol, &endpoint),
        })
    }

    /// The sink's name in logs, metrics and the status command (no credentials).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The sink's directory name in the spool: readable, and unique per endpoint.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The configured headers that only route spans (MLflow's experiment and run): kept with
    /// spooled records, so that spans reach the run of the process that made them. Other
    /// headers may be credentials and never reach the disk.
    pub fn routing_headers(&self) -> BTreeMap<String, String> {
        self.headers
            .iter()
            .filter(|(name, _)| is_routing_header(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }

    /// Sends one encoded request; `routing` (from the record) overrides the routing headers.
    pub async fn send(&self, payload: Vec<u8>, routing: &BTreeMap<String, String>) -> Delivery {
        let mut headers = self.headers.clone();
        headers.extend(
            routing
                .iter()
                .filter(|(name, _)| is_routing_header(name))
                .map(|(name, value)| (name.clone(), value.clone())),
        );
        match &self.transport {
            Transport::Http { client, url } => self.send_http(client, url, payload, headers).await,
            Transport::Grpc { client } => self.send_grpc(client.clone(), payload, headers).await,
        }
    }

    async fn send_http(
        &self,
        client: &reqwest::Client,
        url: &str,
        payload: Vec<u8>,
        headers: BTreeMap<String, String>,
    ) -> Delivery {
        let mut request = client
            .post(url)
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(payload);
        for (name, value) in &headers {
            request = request.header(name, value);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                return Delivery::Retry {
                    after: None,
                    reason: self.transport_reason(&error),
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        let is_protobuf = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-protobuf"));
        let body = response.bytes().await.unwrap_or_default();
        match status.as_u16() {
            200..=299 => Delivery::Delivered {
                rejected_spans: if is_protobuf {
                    rejected_spans(&body)
                } else {
                    0
                },
            },
            // The OTLP/HTTP specification's non-retryable answers: the request itself is bad.
            400 | 413 | 422 => Delivery::Rejected {
                reason: format!("HTTP {status}"),
            },
            // 429, 502, 503, 504 are retryable by the specification; the rest (401, 403, 404,
            // 500 …) are a backend or a configuration that may be mended, and nothing is lost
            // by trying again later.
            _ => Delivery::Retry {
                after: retry_after,
                reason: format!("HTTP {status}"),
            },
        }
    }

    async fn send_grpc(
        &self,
        mut client: TraceServiceClient<Channel>,
        payload: Vec<u8>,
        headers: BTreeMap<String, String>,
    ) -> Delivery {
        let message = match ExportTraceServiceRequest::decode(payload.as_slice()) {
            Ok(message) => message,
            Err(error) => {
                return Delivery::Rejected {
                    reason: format!("the spooled request does not decode: {error}"),
                };
            }
        };
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        for (name, value) in &headers {
            if let (Ok(name), Ok(value)) = (
                tonic::metadata::MetadataKey::from_str(name),
                tonic::metadata::MetadataValue::from_str(value),
            ) {
                request.metadata_mut().insert(name, value);
            }
        }
        let answer = tokio::time::timeout(self.timeout, client.export(request)).await;
        match answer {
            Err(_) => Delivery::Retry {
                after: None,
                reason: format!("no answer within {:?}", self.timeout),
            },
            Ok(Ok(response)) => Delivery::Delivered {
                rejected_spans: response
                    .into_inner()
                    .partial_success
                    .map_or(0, |partial| partial.rejected_spans.max(0) as u64),
            },
            Ok(Err(status)) => match status.code() {
                tonic::Code::InvalidArgument => Delivery::Rejected {
                    reason: format!("gRPC {:?}", status.code()),
                },
                code => Delivery::Retry {
                    after: None,
                    reason: format!("gRPC {code:?}: {}", status.message()),
                },
            },
        }
    }

    /// Why a request got no answer, without the URL (which may hold credentials).
    fn transport_reason(&self, error: &reqwest::Error) -> String {
        if error.is_timeout() {
            return format!("no answer within {:?}", self.timeout);
        }
        let mut reason = if error.is_connect() {
            "cannot connect".to_string()
        } else {
            "the request failed".to_string()
        };
        let mut source = std::error::Error::source(error);
        let mut innermost = None;
        while let Some(cause) = source {
            innermost = Some(cause.to_string());
            source = cause.source();
        }
        if let Some(cause) = innermost {
            reason.push_str(": ");
            reason.push_str(&cause);
        }
        reason
    }
}

/// Whether a header only routes spans to an MLflow experiment or run (not a credential).
fn is_routing_header(name: &str) -> bool {
    name.to_ascii_lowercase().starts_with("x-mlflow-")
}

/// The spans a partial success rejected, from an `ExportTraceServiceResponse` body.
fn rejected_spans(body: &[u8]) -> u64 {
    ExportTraceServiceResponse::decode(body)
        .ok()
        .and_then(|response| response.partial_success)
        .map_or(0, |partial| partial.rejected_spans.max(0) as u64)
}

/// A `Retry-After` value: seconds, or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = jiff::fmt::rfc2822::DateTimeParser::new()
                .parse_timestamp(value)
                .ok()?;
            Duration::try_from(jiff::Timestamp::now().duration_until(at)).unwrap_or_default()
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// `otlp-<host>-<port>-<path>-<crc>`: readable in a directory listing, unique per endpoint
/// (the checksum covers the whole URL), and free of credentials.
fn sink_key(protocol: OtlpProtocol, endpoint: &str) -> String {
    let shown = shown_url(endpoint, UrlParts::Location);
    let readable: String = shown
        .split("://")
        .last()
        .unwrap_or(&shown)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let protocol = match protocol {
        OtlpProtocol::HttpProtobuf => "http",
        OtlpProtocol::Grpc => "grpc",
    };
    format!(
        "otlp-{protocol}-{}-{:08x}",
        readable.trim_matches('-'),
        crc32fast::hash(endpoint.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates_and_is_capped() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("86400"), Some(MAX_RETRY_AFTER));
        let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(30);
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&soon)
            .unwrap();
        let wait = parse_retry_after(&date).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{date}: {wait:?}"
        );
        assert_eq!(
            parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT"),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn sink_keys_are_readable_unique_and_free_of_credentials() {
        let key = sink_key(
            OtlpProtocol::HttpProtobuf,
            "http://user:s3cret@collector:4318/v1/traces",
        );
        assert!(
            key.starts_with("otlp-http-collector-4318-v1-traces-"),
            "{key}"
        );
        assert!(!key.contains("s3cret") && !key.contains("user"), "{key}");
        assert_ne!(
            key,
            sink_key(
                OtlpProtocol::HttpProtobuf,
                "http://collector:4318/v1/traces"
            ),
            "the checksum tells endpoints apart"
        );
    }

    #[test]
    fn only_mlflow_routing_headers_are_kept_with_records() {
        let config = OtlpConfig {
            headers: BTreeMap::from([("authorization".into(), "Bearer s3cret".into())]),
            traces_headers: BTreeMap::from([
                ("x-mlflow-experiment-id".into(), "7".into()),
                ("api-key".into(), "k".into()),
            ]),
            ..OtlpConfig::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _context = runtime.enter();
        let client = OtlpTraceClient::new(&config).unwrap();
        assert_eq!(
            client.routing_headers(),
            BTreeMap::from([("x-mlflow-experiment-id".to_string(), "7".to_string())])
        );
    }
}
