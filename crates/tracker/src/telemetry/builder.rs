//! Assembling a pipeline from a [`TelemetryConfig`]: the sinks it names (local trace store, OTLP)
//! each behind its own queue ([`crate::export`]), the meter provider and its readers, and any extra exporters
//! a caller adds.

use std::time::Duration;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{MeterProviderBuilder, PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;

use super::guard::Pipeline;
use super::io_runtime::IoRuntime;
use super::{TelemetryConfig, TelemetryError, TelemetryGuard};
use crate::export::{BatchConfig, SpanExportProcessor, SpanExportProcessorBuilder};
use crate::metrics::INSTRUMENTATION_SCOPE;
#[cfg(feature = "otlp")]
use crate::otlp::{self, RuntimeHttpClient};
use crate::prometheus::PrometheusReader;
use crate::trace_store::LocalTraceStore;

/// Builds a telemetry pipeline without installing anything globally; [`init`](super::init) builds
/// one and installs it. Tests use this with [`TelemetryGuard::set_thread_default`].
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

type AddSpanExporter = Box<
    dyn FnOnce(SpanExportProcessorBuilder) -> Result<SpanExportProcessorBuilder, TelemetryError>,
>;
type AddMetricReader = Box<dyn FnOnce(MeterProviderBuilder, Duration) -> MeterProviderBuilder>;

/// Builds a [`TelemetryGuard`]: the configured sinks plus any extra exporters.
pub struct TelemetryBuilder {
    config: TelemetryConfig,
    span_exporters: Vec<AddSpanExporter>,
    metric_exporter: Option<AddMetricReader>,
}

impl TelemetryBuilder {
    /// Adds a span exporter next to the configured sinks (a test double, another backend), with
    /// its own queue and thread.
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

    /// Starts the sinks' threads and the providers.
    pub fn build(self) -> Result<TelemetryGuard, TelemetryError> {
        let config = self.config;
        if config.disabled {
            return Ok(TelemetryGuard::new(
                None,
                Vec::new(),
                None,
                config.capture_content,
            ));
        }
        let runtime = IoRuntime::start()?;
        let handle = runtime.handle();
        let resource = config.resource();
        let trace_store = config
            .local_store
            .as_ref()
            .map(LocalTraceStore::open)
            .transpose()?;

        let redactor = sextant_redaction::Redactor::new(&config.redaction)?;
        let mut processor =
            SpanExportProcessor::builder(config.batch_config(), handle.clone(), resource.clone())
                .with_redaction(redactor);
        if let Some(store) = &trace_store {
            processor = processor.with_exporter("local trace store", store.clone())?;
        }
        let mut meter_provider = SdkMeterProvider::builder().with_resource(resource.clone());
        #[cfg(not(feature = "otlp"))]
        if config.otlp.is_some() {
            return Err(TelemetryError::FeatureDisabled {
                what: "OTLP export (`[telemetry.otlp]`, OTEL_EXPORTER_OTLP_*, or tracking on MLflow)",
                feature: "otlp",
            });
        }
        #[cfg(feature = "otlp")]
        if let Some(otlp_config) = &config.otlp {
            let spool_dir = config
                .spool_dir
                .as_deref()
                .ok_or(TelemetryError::NoSpoolDir)?;
            processor = processor.with_otlp(otlp_config, spool_dir, &config.spool)?;
            if self.metric_exporter.is_none() && otlp_config.exports_metrics() {
                // The gRPC channel spawns its connection task on the runtime in context.
                let _context = handle.enter();
                let http_client = RuntimeHttpClient::new(handle.clone(), otlp_config.timeout)?;
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
        // Always aggregated in-process too, for a Prometheus `/metrics` endpoint (cumulative, so
        // nothing grows beyond one point per attribute set).
        let prometheus = PrometheusReader::new();
        meter_provider = meter_provider.with_reader(prometheus.clone());
        for add in self.span_exporters {
            processor = add(processor)?;
        }
        let mut tracer_provider = SdkTracerProvider::builder().with_resource(resource);
        let mut sinks = Vec::new();
        // Without a sink, spans still get ids (for logs and `traceparent`) but nothing is queued.
        if processor.has_sinks() {
            let processor = processor.build();
            sinks = processor.sink_counters();
            tracer_provider = tracer_provider.with_span_processor(processor);
        }
        let tracer_provider = tracer_provider.build();
        let tracer = tracer_provider.tracer(INSTRUMENTATION_SCOPE);
        let meter_provider = meter_provider.build();
        crate::export::observe_sinks(&meter_provider.meter(INSTRUMENTATION_SCOPE), sinks.clone());
        let pipeline = Pipeline {
            tracer_provider,
            tracer,
            meter_provider,
            prometheus,
            runtime,
            shutdown_timeout: config.shutdown_timeout,
        };
        Ok(TelemetryGuard::new(
            Some(pipeline),
            sinks,
            trace_store,
            config.capture_content,
        ))
    }
}

impl TelemetryConfig {
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
