//! The span processor that fans every finished span out to the sinks' queues.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use super::BatchConfig;
use super::counters::SinkCounters;
use super::exporter_sink::ExporterSink;
use super::sink_queue::{Pending, SinkQueue};
use super::span_redaction::SpanRedaction;
use crate::enrich::enrich_span;
use crate::telemetry::TelemetryError;

/// How long a flush waits for the sinks.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long past its deadline a sink may take to answer a shutdown (its sender aborts the
/// request in flight at the deadline).
const SHUTDOWN_SLACK: Duration = Duration::from_secs(2);

/// The span processor: enriches each sampled span once ([`crate::enrich`]), redacts it once
/// when a redactor is set, and offers it to every sink's queue without waiting (see the
/// [module documentation](super)).
pub struct SpanExportProcessor {
    sinks: Vec<SinkQueue>,
    redaction: Option<SpanRedaction>,
    shut_down: AtomicBool,
}

impl fmt::Debug for SpanExportProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanExportProcessor")
            .field(
                "sinks",
                &self
                    .sinks
                    .iter()
                    .map(|s| s.counters().name())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Builds a [`SpanExportProcessor`], one sink at a time; each sink's thread starts when it is
/// added.
pub struct SpanExportProcessorBuilder {
    config: BatchConfig,
    runtime: tokio::runtime::Handle,
    resource: Resource,
    sinks: Vec<SinkQueue>,
    redaction: Option<SpanRedaction>,
}

impl SpanExportProcessor {
    /// A builder whose exports run on `runtime` (the telemetry I/O runtime); every sink is told
    /// `resource` (the service name and resource attributes).
    pub fn builder(
        config: BatchConfig,
        runtime: tokio::runtime::Handle,
        resource: Resource,
    ) -> SpanExportProcessorBuilder {
        SpanExportProcessorBuilder {
            config,
            runtime,
            resource,
            sinks: Vec::new(),
            redaction: None,
        }
    }

    /// Every sink's counters, in the order the sinks were added.
    pub fn sink_counters(&self) -> Vec<Arc<SinkCounters>> {
        self.sinks.iter().map(|s| s.counters().clone()).collect()
    }

    /// Asks every sink at once and waits for all answers until `deadline`; the first error.
    fn ask_all(&self, ask: impl Fn(&SinkQueue) -> Pending, deadline: Instant) -> OTelSdkResult {
        let pending: Vec<Pending> = self.sinks.iter().map(ask).collect();
        let mut result = Ok(());
        for answer in pending {
            result = result.and(answer.wait(deadline));
        }
        result
    }
}

impl SpanExportProcessorBuilder {
    /// Adds an in-process exporter (the local trace store, a test double, another backend) as
    /// a sink named `name`, with its own queue and thread.
    pub fn with_exporter<E: SpanExporter + 'static>(
        mut self,
        name: impl Into<String>,
        mut exporter: E,
    ) -> Result<Self, TelemetryError> {
        exporter.set_resource(&self.resource);
        let counters = Arc::new(SinkCounters::new(name));
        let sink = ExporterSink {
            exporter: Box::new(exporter),
            runtime: self.runtime.clone(),
            timeout: self.config.export_timeout,
            counters: counters.clone(),
        };
        let queue =
            SinkQueue::start(&self.config, counters, sink).map_err(TelemetryError::Threads)?;
        self.sinks.push(queue);
        Ok(self)
    }

    /// Adds an OTLP traces endpoint as a spooling sink: spans go through a durable spool under
    /// `spool_dir` (see [`super::spooled_sink`]).
    #[cfg(feature = "otlp")]
    pub fn with_otlp(
        mut self,
        otlp: &crate::OtlpConfig,
        spool_dir: &std::path::Path,
        spool: &crate::SpoolConfig,
    ) -> Result<Self, TelemetryError> {
        use super::otlp_traces::OtlpTraceClient;
        use super::spool::SpanSpool;
        use super::spooled_sink::SpoolingSink;

        let client = {
            // The gRPC channel spawns its connection task on the runtime in context.
            let _context = self.runtime.enter();
            OtlpTraceClient::new(otlp)?
        };
        let spool = SpanSpool::open(
            spool_dir,
            client.key(),
            client.description(),
            spool,
            client.routing_headers(),
        )
        .map_err(|error| TelemetryError::Spool {
            dir: spool_dir.to_owned(),
            error,
        })?;
        let counters = Arc::new(SinkCounters::new(client.description()));
        let sink = SpoolingSink::start(
            spool,
            client,
            &self.resource,
            self.runtime.clone(),
            counters.clone(),
            (self.config.batch_size, self.config.schedule_delay),
        )
        .map_err(TelemetryError::Threads)?;
        let queue =
            SinkQueue::start(&self.config, counters, sink).map_err(TelemetryError::Threads)?;
        self.sinks.push(queue);
        Ok(self)
    }

    /// Redacts every span with `redactor` before any sink sees it (placeholders numbered per
    /// trace, [`SEXTANT_REDACTION_COUNT`](crate::conventions::SEXTANT_REDACTION_COUNT) on each
    /// span that had something replaced). A redactor that redacts nothing costs nothing.
    pub fn with_redaction(mut self, redactor: sextant_redaction::Redactor) -> Self {
        self.redaction = SpanRedaction::new(redactor);
        self
    }

    /// Whether any sink was added.
    pub fn has_sinks(&self) -> bool {
        !self.sinks.is_empty()
    }

    /// The processor over the sinks added.
    pub fn build(self) -> SpanExportProcessor {
        SpanExportProcessor {
            sinks: self.sinks,
            redaction: self.redaction,
            shut_down: AtomicBool::new(false),
        }
    }
}

impl SpanProcessor for SpanExportProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, mut span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.shut_down.load(Ordering::Relaxed) {
            self.sinks.iter().for_each(SinkQueue::count_late);
            return;
        }
        enrich_span(&mut span);
        if let Some(redaction) = &self.redaction {
            redaction.redact(&mut span);
        }
        if let Some((last, others)) = self.sinks.split_last() {
            for sink in others {
                sink.offer(span.clone());
            }
            last.offer(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        self.ask_all(|sink| sink.request_flush(deadline), deadline)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let deadline = Instant::now() + timeout;
        let pending: Vec<Pending> = self
            .sinks
            .iter()
            .map(|sink| sink.request_shutdown(deadline))
            .collect();
        let mut result = Ok(());
        for (sink, pending) in self.sinks.iter().zip(pending) {
            let answer = pending.wait(deadline + SHUTDOWN_SLACK);
            // A sink that answered is returning; one that did not is left running.
            if !matches!(answer, Err(OTelSdkError::Timeout(_))) {
                sink.join();
            }
            result = result.and(answer);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::SystemTime;

    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };

    use super::*;

    /// Fault injection: an exporter that takes `delay` for every batch, like a stalled backend.
    #[derive(Debug, Clone)]
    struct SlowExporterDouble {
        delay: Duration,
        received: Arc<AtomicUsize>,
    }

    impl SpanExporter for SlowExporterDouble {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            tokio::time::sleep(self.delay).await;
            self.received.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    fn sampled_span(index: u64) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(index as u128 + 1),
                SpanId::from(index + 1),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: "chat m".into(),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: vec![],
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    fn double(delay: Duration) -> (SlowExporterDouble, Arc<AtomicUsize>) {
        let received = Arc::new(AtomicUsize::new(0));
        (
            SlowExporterDouble {
                delay,
                received: received.clone(),
            },
            received,
        )
    }

    #[test]
    fn a_stalled_sink_never_costs_another_sink_a_span_nor_blocks_the_caller() {
        let runtime = runtime();
        let config = BatchConfig {
            queue_size: 8,
            batch_size: 4,
            schedule_delay: Duration::from_millis(10),
            export_timeout: Duration::from_secs(5),
        };
        let (fast, fast_received) = double(Duration::ZERO);
        let (stalled, stalled_received) = double(Duration::from_millis(300));
        let processor = SpanExportProcessor::builder(
            config,
            runtime.handle().clone(),
            Resource::builder_empty().build(),
        )
        .with_exporter("stalled double", stalled)
        .unwrap()
        .with_exporter("fast double", fast)
        .unwrap()
        .build();

        let started = Instant::now();
        for index in 0..100 {
            processor.on_end(sampled_span(index));
            // The fast sink keeps up with a caller that ends a span every millisecond.
            std::thread::sleep(Duration::from_millis(1));
        }
        let elapsed = started.elapsed();
        // Not a performance target: blocking behind the stalled sink would take 25 batches ×
        // 300 ms = 7.5 s, so 5 s only tells "never waits" from "waits".
        assert!(
            elapsed < Duration::from_secs(5),
            "on_end blocked for {elapsed:?}"
        );
        processor
            .shutdown_with_timeout(Duration::from_secs(10))
            .unwrap();
        let [stalled_report, fast_report] = [0, 1].map(|i| processor.sink_counters()[i].report());
        assert_eq!(fast_received.load(Ordering::SeqCst), 100, "{fast_report:?}");
        assert_eq!((fast_report.exported, fast_report.dropped()), (100, 0));
        assert!(
            stalled_report.dropped_queue_full > 0,
            "a queue of 8 behind a 300 ms sink cannot hold 100 spans: {stalled_report:?}"
        );
        assert_eq!(
            stalled_report.dropped_queue_full + stalled_report.exported,
            100,
            "{stalled_report:?}"
        );
        assert_eq!(
            stalled_received.load(Ordering::SeqCst) as u64,
            stalled_report.exported
        );
        processor.on_end(sampled_span(999));
        assert_eq!(
            processor.sink_counters()[1].report().dropped_queue_full,
            1,
            "spans after shutdown are counted as dropped"
        );
    }

    #[test]
    fn flush_exports_a_partial_batch_and_a_timeout_is_a_failing_sink() {
        let runtime = runtime();
        let config = BatchConfig {
            queue_size: 16,
            batch_size: 16,
            schedule_delay: Duration::from_secs(60),
            export_timeout: Duration::from_millis(100),
        };
        let (fast, fast_received) = double(Duration::ZERO);
        let (hung, _) = double(Duration::from_secs(60));
        let processor = SpanExportProcessor::builder(
            config,
            runtime.handle().clone(),
            Resource::builder_empty().build(),
        )
        .with_exporter("fast double", fast)
        .unwrap()
        .with_exporter("hung double", hung)
        .unwrap()
        .build();
        for index in 0..3 {
            processor.on_end(sampled_span(index));
        }
        assert!(processor.force_flush().is_err(), "the hung sink times out");
        assert_eq!(fast_received.load(Ordering::SeqCst), 3);
        let hung = processor.sink_counters()[1].report();
        assert!(hung.export_errors >= 1, "{hung:?}");
        assert_eq!(hung.dropped_export_failed, 3);
        assert!(hung.failing && hung.last_error.is_some(), "{hung:?}");
        processor
            .shutdown_with_timeout(Duration::from_secs(5))
            .unwrap();
    }
}
