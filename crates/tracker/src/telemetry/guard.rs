//! The guard that owns a running pipeline, answers questions about it, and flushes and shuts it
//! down on every exit.

use std::fmt;
use std::sync::Arc;

use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use super::TelemetryError;
use super::io_runtime::IoRuntime;
use crate::export::{SinkCounters, SinkReport};
use crate::metrics::{GenAiMetrics, HttpServerMetrics};
use crate::prometheus::PrometheusReader;
use crate::trace_store::LocalTraceStore;

/// The running providers of one pipeline and the runtime their exports need.
pub(super) struct Pipeline {
    pub(super) tracer_provider: SdkTracerProvider,
    pub(super) tracer: SdkTracer,
    pub(super) meter_provider: SdkMeterProvider,
    pub(super) prometheus: PrometheusReader,
    pub(super) runtime: IoRuntime,
    pub(super) shutdown_timeout: std::time::Duration,
}

/// What a pipeline did over its life, returned by [`TelemetryGuard::shutdown`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Spans that every sink's backend acknowledged (the least over the sinks).
    pub exported: u64,
    /// Spans dropped by any sink, whatever the reason (see [`SinkReport`]).
    pub dropped: u64,
    /// Failed export attempts over every sink.
    pub export_errors: u64,
    /// Spans left in remote sinks' spools, sent by the next process.
    pub spooled: u64,
    /// Each sink's own report.
    pub sinks: Vec<SinkReport>,
}

impl ShutdownReport {
    /// The report over `sinks`.
    pub fn of(sinks: Vec<SinkReport>) -> Self {
        Self {
            exported: sinks.iter().map(|s| s.exported).min().unwrap_or(0),
            dropped: sinks.iter().map(SinkReport::dropped).sum(),
            export_errors: sinks.iter().map(|s| s.export_errors).sum(),
            spooled: sinks.iter().map(|s| s.spool_spans).sum(),
            sinks,
        }
    }
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
    sinks: Vec<Arc<SinkCounters>>,
    trace_store: Option<LocalTraceStore>,
    capture_content: bool,
    shut_down: bool,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("enabled", &self.pipeline.is_some())
            .field("trace_store", &self.trace_store)
            .field("sinks", &self.sinks)
            .finish_non_exhaustive()
    }
}

impl TelemetryGuard {
    /// A guard over `pipeline` (`None` when the SDK is disabled), not yet shut down.
    pub(super) fn new(
        pipeline: Option<Pipeline>,
        sinks: Vec<Arc<SinkCounters>>,
        trace_store: Option<LocalTraceStore>,
        capture_content: bool,
    ) -> Self {
        Self {
            pipeline,
            sinks,
            trace_store,
            capture_content,
            shut_down: false,
        }
    }

    /// The running pipeline, `None` when the SDK is disabled.
    pub(super) fn pipeline(&self) -> Option<&Pipeline> {
        self.pipeline.as_ref()
    }

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

    /// The GenAI metrics on this pipeline's meter provider (the global one after
    /// [`init`](super::init)).
    pub fn metrics(&self) -> GenAiMetrics {
        match &self.pipeline {
            Some(pipeline) => GenAiMetrics::from_provider(&pipeline.meter_provider),
            None => GenAiMetrics::global(),
        }
    }

    /// The HTTP server metrics on this pipeline's meter provider (the global one after
    /// [`init`](super::init)).
    pub fn http_server_metrics(&self) -> HttpServerMetrics {
        match &self.pipeline {
            Some(pipeline) => HttpServerMetrics::from_provider(&pipeline.meter_provider),
            None => HttpServerMetrics::global(),
        }
    }

    /// The online evaluation metrics on this pipeline's meter provider (the global one after
    /// [`init`](super::init)).
    pub fn monitor_metrics(&self) -> crate::metrics::MonitorMetrics {
        match &self.pipeline {
            Some(pipeline) => {
                crate::metrics::MonitorMetrics::from_provider(&pipeline.meter_provider)
            }
            None => crate::metrics::MonitorMetrics::global(),
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

    /// Spans dropped so far by any sink.
    pub fn dropped_spans(&self) -> u64 {
        self.report().dropped
    }

    /// Spans every sink's backend acknowledged so far.
    pub fn exported_spans(&self) -> u64 {
        self.report().exported
    }

    /// Failed export attempts so far.
    pub fn export_errors(&self) -> u64 {
        self.report().export_errors
    }

    /// What each sink did so far: queued, exported, spooled, re-sent, dropped, the spool's
    /// backlog and the last error.
    pub fn sink_reports(&self) -> Vec<SinkReport> {
        self.sinks.iter().map(|s| s.report()).collect()
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
            let traces = pipeline
                .tracer_provider
                .shutdown_with_timeout(pipeline.shutdown_timeout);
            drop(pipeline.runtime);
            result = traces.map_err(|error| TelemetryError::Shutdown(error.to_string()));
        }
        let report = self.report();
        for sink in &report.sinks {
            if sink.dropped() > 0 {
                tracing::warn!(
                    sink = %sink.sink,
                    queue_full = sink.dropped_queue_full,
                    over_quota = sink.dropped_over_quota,
                    corrupt = sink.dropped_corrupt,
                    export_failed = sink.dropped_export_failed,
                    rejected = sink.rejected,
                    "{} spans were dropped by this sink",
                    sink.dropped()
                );
            }
        }
        result.map(|()| report)
    }

    fn report(&self) -> ShutdownReport {
        ShutdownReport::of(self.sink_reports())
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.shutdown_in_place() {
            tracing::warn!("{error}");
        }
    }
}
