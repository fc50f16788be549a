//! The GenAI client metrics: `gen_ai.client.token.usage` and `gen_ai.client.operation.duration`,
//! and Sextant's `sextant.gen_ai.client.cost` (the conventions have no cost metric yet).
//!
//! Callers pass plain strings in [`GenAiMetricAttributes`]; no OpenTelemetry type crosses this API.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, MeterProvider, UpDownCounter};

use crate::conventions::{self, metric};

/// The instrumentation scope name of the tracker's meter and tracer.
pub const INSTRUMENTATION_SCOPE: &str = "sextant";

/// The attributes that identify one model operation in the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenAiMetricAttributes<'a> {
    /// `gen_ai.operation.name` (`chat`, `embeddings`, …).
    pub operation_name: &'a str,
    /// `gen_ai.provider.name` (`ollama`, `openai`, `local`, …).
    pub provider_name: &'a str,
    /// `gen_ai.request.model`, if known.
    pub request_model: Option<&'a str>,
    /// `gen_ai.response.model`, if the provider reported one.
    pub response_model: Option<&'a str>,
}

impl GenAiMetricAttributes<'_> {
    fn key_values(&self) -> Vec<KeyValue> {
        let mut values = vec![
            KeyValue::new(
                conventions::GEN_AI_OPERATION_NAME,
                self.operation_name.to_string(),
            ),
            KeyValue::new(
                conventions::GEN_AI_PROVIDER_NAME,
                self.provider_name.to_string(),
            ),
        ];
        if let Some(model) = self.request_model {
            values.push(KeyValue::new(
                conventions::GEN_AI_REQUEST_MODEL,
                model.to_string(),
            ));
        }
        if let Some(model) = self.response_model {
            values.push(KeyValue::new(
                conventions::GEN_AI_RESPONSE_MODEL,
                model.to_string(),
            ));
        }
        values
    }
}

/// The two GenAI client histograms, with the bucket boundaries the conventions recommend.
///
/// ```
/// use sextant_tracker::{GenAiMetricAttributes, GenAiMetrics};
///
/// let metrics = GenAiMetrics::global();
/// let attributes = GenAiMetricAttributes {
///     operation_name: "chat",
///     provider_name: "local",
///     request_model: Some("SmolLM2-135M-Instruct"),
///     response_model: None,
/// };
/// metrics.record_token_usage(&attributes, Some(120), Some(48));
/// metrics.record_operation_duration(&attributes, std::time::Duration::from_millis(830), None);
/// ```
#[derive(Clone, Debug)]
pub struct GenAiMetrics {
    token_usage: Histogram<u64>,
    operation_duration: Histogram<f64>,
    cost: Counter<f64>,
}

impl GenAiMetrics {
    /// The metrics on the global meter provider that [`crate::init`] installs (no-ops before).
    pub fn global() -> Self {
        Self::from_meter(&opentelemetry::global::meter(INSTRUMENTATION_SCOPE))
    }

    /// The metrics on a given meter provider.
    pub(crate) fn from_provider(provider: &impl MeterProvider) -> Self {
        Self::from_meter(&provider.meter(INSTRUMENTATION_SCOPE))
    }

    fn from_meter(meter: &Meter) -> Self {
        Self {
            token_usage: meter
                .u64_histogram(metric::GEN_AI_CLIENT_TOKEN_USAGE)
                .with_unit("{token}")
                .with_description("Number of input and output tokens used")
                .with_boundaries(metric::TOKEN_USAGE_BOUNDARIES.to_vec())
                .build(),
            operation_duration: meter
                .f64_histogram(metric::GEN_AI_CLIENT_OPERATION_DURATION)
                .with_unit("s")
                .with_description("GenAI operation duration")
                .with_boundaries(metric::OPERATION_DURATION_BOUNDARIES.to_vec())
                .build(),
            cost: meter
                .f64_counter(metric::SEXTANT_GEN_AI_CLIENT_COST)
                .with_description(
                    "What model calls cost by the price table, in the currency attribute's unit",
                )
                .build(),
        }
    }

    /// Adds what one priced operation cost, in `currency` (`sextant.usage.cost.currency`).
    pub fn record_cost(&self, attributes: &GenAiMetricAttributes<'_>, cost: f64, currency: &str) {
        let mut values = attributes.key_values();
        values.push(KeyValue::new(
            conventions::SEXTANT_USAGE_COST_CURRENCY,
            currency.to_string(),
        ));
        self.cost.add(cost, &values);
    }

    /// Records the tokens of one operation, one measurement per token type present.
    pub fn record_token_usage(
        &self,
        attributes: &GenAiMetricAttributes<'_>,
        input_tokens: Option<u64>,
        output_tokens: Option<u64>,
    ) {
        for (count, token_type) in [(input_tokens, "input"), (output_tokens, "output")] {
            if let Some(count) = count {
                let mut values = attributes.key_values();
                values.push(KeyValue::new(conventions::GEN_AI_TOKEN_TYPE, token_type));
                self.token_usage.record(count, &values);
            }
        }
    }

    /// Records how long one operation took; `error_type` (`error.type`) is set when it failed.
    pub fn record_operation_duration(
        &self,
        attributes: &GenAiMetricAttributes<'_>,
        duration: Duration,
        error_type: Option<&str>,
    ) {
        let mut values = attributes.key_values();
        if let Some(error_type) = error_type {
            values.push(KeyValue::new(
                conventions::ERROR_TYPE,
                error_type.to_string(),
            ));
        }
        self.operation_duration
            .record(duration.as_secs_f64(), &values);
    }
}

/// The online evaluation metrics of `sextant serve`'s monitors: `sextant.monitor.results`
/// (per scorer and result: `pass`, `fail`, `error`), `sextant.monitor.pass_rate` (per scorer,
/// over the monitors' window) and `sextant.monitor.dropped` (finished turns not judged because the
/// queue was full).
#[derive(Clone, Debug)]
pub struct MonitorMetrics {
    results: Counter<u64>,
    pass_rate: Gauge<f64>,
    dropped: Counter<u64>,
}

impl MonitorMetrics {
    /// The metrics on the global meter provider that [`crate::init`] installs (no-ops before).
    pub fn global() -> Self {
        Self::from_meter(&opentelemetry::global::meter(INSTRUMENTATION_SCOPE))
    }

    pub(crate) fn from_provider(provider: &impl MeterProvider) -> Self {
        Self::from_meter(&provider.meter(INSTRUMENTATION_SCOPE))
    }

    fn from_meter(meter: &Meter) -> Self {
        Self {
            results: meter
                .u64_counter(metric::SEXTANT_MONITOR_RESULTS)
                .with_unit("{result}")
                .with_description("Scores the service's monitors gave finished turns.")
                .build(),
            pass_rate: meter
                .f64_gauge(metric::SEXTANT_MONITOR_PASS_RATE)
                .with_unit("1")
                .with_description("Share of judged turns that passed, per scorer, over the window.")
                .build(),
            dropped: meter
                .u64_counter(metric::SEXTANT_MONITOR_DROPPED)
                .with_unit("{turn}")
                .with_description("Finished turns not judged because the monitor queue was full.")
                .build(),
        }
    }

    /// One score of `scorer`: `pass`, `fail` or `error`.
    pub fn record_result(&self, scorer: &str, result: &str) {
        self.results.add(
            1,
            &[
                KeyValue::new(conventions::SEXTANT_SCORER, scorer.to_string()),
                KeyValue::new(conventions::SEXTANT_MONITOR_RESULT, result.to_string()),
            ],
        );
    }

    /// `scorer`'s pass rate over the window.
    pub fn record_pass_rate(&self, scorer: &str, rate: f64) {
        self.pass_rate.record(
            rate,
            &[KeyValue::new(
                conventions::SEXTANT_SCORER,
                scorer.to_string(),
            )],
        );
    }

    /// A finished turn the queue had no room for.
    pub fn record_dropped(&self) {
        self.dropped.add(1, &[]);
    }
}

/// The HTTP server metrics of the conventions: `http.server.request.duration` (whose count is the
/// request count) and `http.server.active_requests`.
#[derive(Clone, Debug)]
pub struct HttpServerMetrics {
    request_duration: Histogram<f64>,
    active_requests: UpDownCounter<i64>,
}

impl HttpServerMetrics {
    /// The metrics on the global meter provider that [`crate::init`] installs (no-ops before).
    pub fn global() -> Self {
        Self::from_meter(&opentelemetry::global::meter(INSTRUMENTATION_SCOPE))
    }

    pub(crate) fn from_provider(provider: &impl MeterProvider) -> Self {
        Self::from_meter(&provider.meter(INSTRUMENTATION_SCOPE))
    }

    fn from_meter(meter: &Meter) -> Self {
        Self {
            request_duration: meter
                .f64_histogram(metric::HTTP_SERVER_REQUEST_DURATION)
                .with_unit("s")
                .with_description("Duration of HTTP server requests.")
                .with_boundaries(metric::HTTP_SERVER_DURATION_BOUNDARIES.to_vec())
                .build(),
            active_requests: meter
                .i64_up_down_counter(metric::HTTP_SERVER_ACTIVE_REQUESTS)
                .with_unit("{request}")
                .with_description("Number of active HTTP server requests.")
                .build(),
        }
    }

    /// A request started (`http.request.method`); pair it with [`Self::request_finished`].
    pub fn request_started(&self, method: &str) {
        self.active_requests.add(
            1,
            &[KeyValue::new(
                conventions::HTTP_REQUEST_METHOD,
                method.to_string(),
            )],
        );
    }

    /// A request finished: `route` is the matched route template (`/v1/agents/{name}/invoke`),
    /// never the raw path, so the series stay bounded.
    pub fn request_finished(&self, method: &str, route: &str, status: u16, duration: Duration) {
        self.active_requests.add(
            -1,
            &[KeyValue::new(
                conventions::HTTP_REQUEST_METHOD,
                method.to_string(),
            )],
        );
        let mut values = vec![
            KeyValue::new(conventions::HTTP_REQUEST_METHOD, method.to_string()),
            KeyValue::new(conventions::HTTP_ROUTE, route.to_string()),
            KeyValue::new(conventions::HTTP_RESPONSE_STATUS_CODE, i64::from(status)),
        ];
        if status >= 500 {
            values.push(KeyValue::new(conventions::ERROR_TYPE, status.to_string()));
        }
        self.request_duration
            .record(duration.as_secs_f64(), &values);
    }
}

/// The guardrail counter: one count per check, by guardrail, stage, result and action.
#[derive(Clone, Debug)]
pub struct GuardrailMetrics {
    checks: Counter<u64>,
}

impl GuardrailMetrics {
    /// The metrics on the global meter provider that [`crate::init`] installs (no-ops before).
    pub fn global() -> Self {
        let meter = opentelemetry::global::meter(INSTRUMENTATION_SCOPE);
        Self {
            checks: meter
                .u64_counter(metric::SEXTANT_GUARDRAIL_CHECKS)
                .with_unit("{check}")
                .with_description("Guardrail checks, by guardrail, stage, result and action.")
                .build(),
        }
    }

    /// One check of `name` at `stage` that ended `result` (`pass`, `fail`, `error`), whose
    /// failure does `action`.
    pub fn record_check(&self, name: &str, stage: &str, result: &str, action: &str) {
        self.checks.add(
            1,
            &[
                KeyValue::new(conventions::SEXTANT_GUARDRAIL_NAME, name.to_owned()),
                KeyValue::new(conventions::SEXTANT_GUARDRAIL_STAGE, stage.to_owned()),
                KeyValue::new(conventions::SEXTANT_GUARDRAIL_RESULT, result.to_owned()),
                KeyValue::new(conventions::SEXTANT_GUARDRAIL_ACTION, action.to_owned()),
            ],
        );
    }
}
