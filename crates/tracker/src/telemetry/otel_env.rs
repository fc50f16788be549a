//! The standard `OTEL_*` environment variables, read the way the OpenTelemetry SDKs read them and
//! applied on top of a [`TelemetryConfig`].

use std::collections::BTreeMap;
use std::time::Duration;

use percent_encoding::percent_decode_str;

use super::{OtlpConfig, OtlpProtocol, TelemetryConfig, TelemetryError};

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
    let shown = || crate::conventions::shown_url(value, crate::conventions::UrlParts::Location);
    let uri: http::Uri = value
        .parse()
        .map_err(|error| invalid(variable, format!("'{}' is not a URL: {error}", shown())))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(value.to_string()),
        _ => Err(invalid(
            variable,
            format!(
                "'{}' is not an http:// or https:// URL with a host",
                shown()
            ),
        )),
    }
}

/// Parses `k=v,k2=v2` with percent-decoded keys and values (W3C baggage style, as the OTel SDKs
/// read headers and resource attributes). A `%` that does not start an escape is kept as is, as URL
/// decoding does; bytes that are not UTF-8 once decoded are an error. Errors never quote a value:
/// it may be a credential.
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
        let key = percent_decode_str(key.trim())
            .decode_utf8()
            .ok()
            .filter(|key| !key.is_empty())
            .ok_or_else(|| invalid(variable, format!("entry {} has an invalid key", index + 1)))?;
        let value = percent_decode_str(value.trim())
            .decode_utf8()
            .map_err(|_| {
                invalid(
                    variable,
                    format!("the value of '{key}' is not UTF-8 once percent-decoded"),
                )
            })?;
        pairs.insert(key.into_owned(), value.into_owned());
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
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
            "authorization=Bearer%FFsecret",
        ));
        assert!(
            error.contains("OTEL_EXPORTER_OTLP_HEADERS") && !error.contains("secret"),
            "{error}"
        );
        let error = with_endpoint(("OTEL_EXPORTER_OTLP_HEADERS", "Bearer-secret"));
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn header_values_are_percent_decoded_as_w3c_baggage() {
        let mut config = TelemetryConfig::default();
        config
            .apply_env_from(env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "x%2Dkey=a%2Cb%3Dc, check=%E2%9C%93 ,ratio=50%25,raw=100%,odd=%zz",
                ),
            ]))
            .unwrap();
        let headers = &config.otlp.unwrap().headers;
        assert_eq!(
            headers["x-key"], "a,b=c",
            "escaped separators stay in the value"
        );
        assert_eq!(headers["check"], "✓", "multi-byte UTF-8");
        assert_eq!(headers["ratio"], "50%");
        assert_eq!(headers["raw"], "100%", "a % without two hex digits is kept");
        assert_eq!(headers["odd"], "%zz");
    }

    #[test]
    fn keys_or_values_that_are_not_utf8_once_decoded_are_errors_naming_the_variable() {
        for (variable, value) in [
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=%C3%28secret"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "%C3%28=secret"),
        ] {
            let error = TelemetryConfig::default()
                .apply_env_from(env(&[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    (variable, value),
                ]))
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(variable) && !error.contains("secret"),
                "{error}"
            );
        }
    }
}
