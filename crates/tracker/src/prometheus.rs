//! The pipeline's metrics in the Prometheus text exposition format (version 0.0.4), for a
//! `GET /metrics` endpoint next to the OTLP export.
//!
//! Names follow OpenTelemetry's Prometheus compatibility rules: dots and other invalid characters
//! become `_`, the unit is appended (`s` → `_seconds`; annotations such as `{token}` add nothing),
//! monotonic sums end in `_total`, histograms are `_bucket{le=…}`, `_sum` and `_count` series.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{
    AggregatedMetrics, Histogram, Metric, MetricData, ResourceMetrics, Sum,
};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

/// A reader the pipeline feeds and the `/metrics` endpoint collects from, cumulatively.
#[derive(Clone, Debug)]
pub(crate) struct PrometheusReader(Arc<ManualReader>);

impl PrometheusReader {
    pub(crate) fn new() -> Self {
        Self(Arc::new(
            ManualReader::builder()
                .with_temporality(Temporality::Cumulative)
                .build(),
        ))
    }

    /// The current metrics as Prometheus text.
    pub(crate) fn render(&self) -> Result<String, String> {
        let mut metrics = ResourceMetrics::default();
        self.0
            .collect(&mut metrics)
            .map_err(|error| error.to_string())?;
        Ok(render(&metrics))
    }
}

impl MetricReader for PrometheusReader {
    fn register_pipeline(&self, pipeline: std::sync::Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }

    fn collect(&self, metrics: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(metrics)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// Renders collected metrics as Prometheus text.
pub fn render(metrics: &ResourceMetrics) -> String {
    let mut out = String::new();
    for scope in metrics.scope_metrics() {
        for metric in scope.metrics() {
            render_metric(&mut out, metric);
        }
    }
    out
}

fn render_metric(out: &mut String, metric: &Metric) {
    let base = metric_name(metric.name(), metric.unit());
    match metric.data() {
        AggregatedMetrics::F64(MetricData::Histogram(h)) => histogram(out, &base, metric, h),
        AggregatedMetrics::U64(MetricData::Histogram(h)) => histogram(out, &base, metric, h),
        AggregatedMetrics::I64(MetricData::Histogram(h)) => histogram(out, &base, metric, h),
        AggregatedMetrics::F64(MetricData::Sum(s)) => sum(out, &base, metric, s),
        AggregatedMetrics::U64(MetricData::Sum(s)) => sum(out, &base, metric, s),
        AggregatedMetrics::I64(MetricData::Sum(s)) => sum(out, &base, metric, s),
        AggregatedMetrics::F64(MetricData::Gauge(g)) => {
            header(out, &base, metric, "gauge");
            for point in g.data_points() {
                sample(out, &base, &labels(point.attributes(), None), point.value());
            }
        }
        AggregatedMetrics::U64(MetricData::Gauge(g)) => {
            header(out, &base, metric, "gauge");
            for point in g.data_points() {
                sample(out, &base, &labels(point.attributes(), None), point.value());
            }
        }
        AggregatedMetrics::I64(MetricData::Gauge(g)) => {
            header(out, &base, metric, "gauge");
            for point in g.data_points() {
                sample(out, &base, &labels(point.attributes(), None), point.value());
            }
        }
        // Exponential histograms have no classic Prometheus text form; none is configured.
        _ => {}
    }
}

fn histogram<T: Copy + std::fmt::Display>(
    out: &mut String,
    base: &str,
    metric: &Metric,
    data: &Histogram<T>,
) {
    header(out, base, metric, "histogram");
    for point in data.data_points() {
        let mut cumulative = 0u64;
        let counts: Vec<u64> = point.bucket_counts().collect();
        for (bound, count) in point.bounds().zip(&counts) {
            cumulative += count;
            let le = format_float(bound);
            sample(
                out,
                &format!("{base}_bucket"),
                &labels(point.attributes(), Some(&le)),
                cumulative,
            );
        }
        sample(
            out,
            &format!("{base}_bucket"),
            &labels(point.attributes(), Some("+Inf")),
            point.count(),
        );
        let plain = labels(point.attributes(), None);
        sample(out, &format!("{base}_sum"), &plain, point.sum());
        sample(out, &format!("{base}_count"), &plain, point.count());
    }
}

fn sum<T: Copy + std::fmt::Display>(out: &mut String, base: &str, metric: &Metric, data: &Sum<T>) {
    let (name, kind) = if data.is_monotonic() {
        (format!("{base}_total"), "counter")
    } else {
        (base.to_owned(), "gauge")
    };
    header(out, &name, metric, kind);
    for point in data.data_points() {
        sample(out, &name, &labels(point.attributes(), None), point.value());
    }
}

fn header(out: &mut String, name: &str, metric: &Metric, kind: &str) {
    if !metric.description().is_empty() {
        let help = metric
            .description()
            .replace('\\', "\\\\")
            .replace('\n', "\\n");
        let _ = writeln!(out, "# HELP {name} {help}");
    }
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{name}{labels} {value}");
}

/// `{k="v",…}` with the point's attributes (sorted, for stable output) and `le` last.
fn labels<'a>(attributes: impl Iterator<Item = &'a KeyValue>, le: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = attributes
        .map(|kv| (sanitize(kv.key.as_str()), label_value(&kv.value)))
        .collect();
    pairs.sort();
    if let Some(le) = le {
        pairs.push(("le".into(), le.into()));
    }
    if pairs.is_empty() {
        return String::new();
    }
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn label_value(value: &Value) -> String {
    value.as_str().into_owned()
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A metric or label name: `[a-zA-Z_:][a-zA-Z0-9_:]*`, other characters as `_`.
fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The metric's name with its unit's suffix, as OpenTelemetry's Prometheus exporters name it.
fn metric_name(name: &str, unit: &str) -> String {
    let base = sanitize(name);
    let suffix = match unit {
        "s" => "seconds",
        "ms" => "milliseconds",
        "By" => "bytes",
        "1" => "ratio",
        // `{token}`, `{request}` …: annotations, no suffix.
        _ => "",
    };
    if suffix.is_empty() || base.ends_with(suffix) {
        base
    } else {
        format!("{base}_{suffix}")
    }
}

fn format_float(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::metrics::MeterProvider;
    use opentelemetry_sdk::metrics::SdkMeterProvider;

    #[test]
    fn histograms_and_counters_render_as_prometheus_text() {
        let reader = PrometheusReader::new();
        let provider = SdkMeterProvider::builder()
            .with_reader(reader.clone())
            .build();
        let meter = provider.meter("test");
        let duration = meter
            .f64_histogram("http.server.request.duration")
            .with_unit("s")
            .with_description("Duration of HTTP server requests.")
            .with_boundaries(vec![0.1, 1.0])
            .build();
        let attributes = [
            KeyValue::new("http.route", "/v1/chat/completions"),
            KeyValue::new("http.response.status_code", 200),
        ];
        duration.record(0.0625, &attributes);
        duration.record(0.5, &attributes);
        duration.record(3.0, &attributes);
        let tokens = meter
            .u64_counter("gen_ai.tokens")
            .with_unit("{token}")
            .build();
        tokens.add(7, &[KeyValue::new("label", "a \"quoted\"\nvalue")]);

        let text = reader.render().unwrap();
        assert!(
            text.contains("# TYPE http_server_request_duration_seconds histogram"),
            "{text}"
        );
        let route = r#"http_response_status_code="200",http_route="/v1/chat/completions""#;
        for (series, value) in [
            (format!(r#"_bucket{{{route},le="0.1"}}"#), "1"),
            (format!(r#"_bucket{{{route},le="1"}}"#), "2"),
            (format!(r#"_bucket{{{route},le="+Inf"}}"#), "3"),
            (format!("_count{{{route}}}"), "3"),
            (format!("_sum{{{route}}}"), "3.5625"),
        ] {
            let line = format!("http_server_request_duration_seconds{series} {value}");
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
        assert!(
            text.lines()
                .any(|l| l == r#"gen_ai_tokens_total{label="a \"quoted\"\nvalue"} 7"#),
            "{text}"
        );
    }

    #[test]
    fn names_are_sanitized_and_suffixed_once() {
        assert_eq!(
            metric_name("gen_ai.client.operation.duration", "s"),
            "gen_ai_client_operation_duration_seconds"
        );
        assert_eq!(
            metric_name("gen_ai.client.token.usage", "{token}"),
            "gen_ai_client_token_usage"
        );
        assert_eq!(metric_name("x.seconds", "s"), "x_seconds");
        assert_eq!(sanitize("9lives-ok"), "_9lives_ok");
    }
}
