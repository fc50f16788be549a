//! A sink that hands batches to an in-process [`SpanExporter`]: the local trace store, or an
//! exporter a caller adds. It has no spool: the local store is the durable copy itself.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use super::counters::SinkCounters;
use super::sink_queue::BatchDestination;

/// A span exporter behind a trait object, since `SpanExporter` returns an `impl Future`.
pub(crate) trait DynExporter: Send + Sync + fmt::Debug {
    fn export(&self, batch: Vec<SpanData>) -> BoxFuture<'_, OTelSdkResult>;
    fn shutdown(&self, timeout: Duration) -> OTelSdkResult;
}

impl<E: SpanExporter + 'static> DynExporter for E {
    fn export(&self, batch: Vec<SpanData>) -> BoxFuture<'_, OTelSdkResult> {
        Box::pin(SpanExporter::export(self, batch))
    }

    fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        self.shutdown_with_timeout(timeout)
    }
}

/// Exports each batch through `exporter` on the telemetry I/O runtime, each export bounded by
/// `timeout`.
pub(crate) struct ExporterSink {
    pub exporter: Box<dyn DynExporter>,
    pub runtime: tokio::runtime::Handle,
    pub timeout: Duration,
    pub counters: Arc<SinkCounters>,
}

impl ExporterSink {
    fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let timeout = self.timeout;
        let spans = batch.len() as u64;
        let outcome = self.runtime.block_on(async {
            tokio::time::timeout(timeout, self.exporter.export(batch))
                .await
                .unwrap_or(Err(OTelSdkError::Timeout(timeout)))
        });
        match &outcome {
            Ok(()) => {
                SinkCounters::add(&self.counters.exported, spans);
                if self.counters.failing.swap(false, Ordering::Relaxed) {
                    tracing::warn!(sink = %self.counters.name(), "span export works again");
                    self.counters.set_last_error(None);
                }
            }
            Err(error) => {
                SinkCounters::add(&self.counters.export_errors, 1);
                SinkCounters::add(&self.counters.dropped_export_failed, spans);
                self.counters.set_last_error(Some(error.to_string()));
                if !self.counters.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        sink = %self.counters.name(),
                        spans,
                        "exporting spans failed: {error}; spans are lost for this sink while it \
                         fails (counted as dropped)"
                    );
                }
            }
        }
        outcome
    }
}

impl BatchDestination for ExporterSink {
    fn deliver(&mut self, batch: Vec<SpanData>) {
        let _ = self.export(batch);
    }

    fn flush(&mut self, _deadline: Instant) -> OTelSdkResult {
        // Batches were exported as they were delivered; the last one's outcome is counted.
        if self.counters.is_failing() {
            Err(OTelSdkError::InternalFailure(format!(
                "the {} sink is failing",
                self.counters.name()
            )))
        } else {
            Ok(())
        }
    }

    fn shutdown(&mut self, deadline: Instant) -> OTelSdkResult {
        let _enter = self.runtime.enter();
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        self.exporter.shutdown(timeout)
    }
}
