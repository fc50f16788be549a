//! A bounded batch span processor that never blocks the thread ending a span and counts what it
//! had to drop.
//!
//! `on_end` hands the finished span to a bounded queue with a non-blocking `try_send`; when the
//! queue is full the span is dropped and counted. A dedicated thread collects spans into batches
//! (`batch_size` spans or every `schedule_delay`), enriches them ([`crate::enrich`]) and exports
//! each batch to every sink in turn, each export bounded by `export_timeout`. The sinks' futures
//! run on the telemetry I/O runtime, so OTLP exporters (tonic, async HTTP) work whatever runtime —
//! if any — the agent uses.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::enrich::enrich_span;

/// Queue and batch sizes of a [`BoundedBatchProcessor`].
#[derive(Clone, Debug)]
pub struct BatchConfig {
    /// Spans the queue holds before new ones are dropped.
    pub queue_size: usize,
    /// Spans exported in one call at most.
    pub batch_size: usize,
    /// How long a partial batch waits before it is exported anyway.
    pub schedule_delay: Duration,
    /// How long one export to one sink may take before it counts as failed.
    pub export_timeout: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            queue_size: 2048,
            batch_size: 512,
            schedule_delay: Duration::from_secs(1),
            export_timeout: Duration::from_secs(10),
        }
    }
}

/// Counts of what a processor did with the spans it was given, shared with the telemetry guard.
#[derive(Debug, Default)]
pub struct ExportCounters {
    exported: AtomicU64,
    dropped: AtomicU64,
    export_errors: AtomicU64,
}

impl ExportCounters {
    /// Spans that every sink accepted.
    pub fn exported(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    /// Spans dropped because the queue was full or the processor was shut down.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Failed (or timed out) exports, one per sink and batch.
    pub fn export_errors(&self) -> u64 {
        self.export_errors.load(Ordering::Relaxed)
    }
}

/// A span exporter behind a trait object, since `SpanExporter` returns an `impl Future`.
trait SpanSink: Send + Sync + fmt::Debug {
    fn export(&self, batch: Vec<SpanData>) -> BoxFuture<'_, OTelSdkResult>;
    fn shutdown(&self, timeout: Duration) -> OTelSdkResult;
}

#[derive(Debug)]
struct ExporterSink<E>(E);

impl<E: SpanExporter + 'static> SpanSink for ExporterSink<E> {
    fn export(&self, batch: Vec<SpanData>) -> BoxFuture<'_, OTelSdkResult> {
        Box::pin(self.0.export(batch))
    }

    fn shutdown(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
}

/// One export destination with a name for log lines. The name never holds an endpoint, which
/// could carry credentials.
#[derive(Debug)]
struct NamedSink {
    name: String,
    sink: Box<dyn SpanSink>,
}

enum Message {
    Span(Box<SpanData>),
    /// Makes the worker look at its control channel now.
    Wake,
}

enum Control {
    Flush(Sender<OTelSdkResult>),
    Shutdown(Sender<OTelSdkResult>),
}

/// Builds a [`BoundedBatchProcessor`] from its sinks.
pub struct BoundedBatchProcessorBuilder {
    config: BatchConfig,
    sinks: Vec<NamedSink>,
    runtime: tokio::runtime::Handle,
    resource: Resource,
}

impl BoundedBatchProcessorBuilder {
    /// Adds a sink; `name` appears in log lines about failed exports.
    pub fn with_exporter<E: SpanExporter + 'static>(
        mut self,
        name: impl Into<String>,
        mut exporter: E,
    ) -> Self {
        exporter.set_resource(&self.resource);
        self.sinks.push(NamedSink {
            name: name.into(),
            sink: Box::new(ExporterSink(exporter)),
        });
        self
    }

    /// Starts the export thread.
    pub fn build(self) -> std::io::Result<BoundedBatchProcessor> {
        let queue_size = self.config.queue_size.max(1);
        let (sender, receiver) = mpsc::sync_channel(queue_size);
        let (control, control_receiver) = mpsc::channel();
        let counters = Arc::new(ExportCounters::default());
        let worker = Worker {
            receiver,
            control: control_receiver,
            sinks: self.sinks,
            runtime: self.runtime,
            config: self.config,
            counters: counters.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("sextant-span-export".into())
            .spawn(move || worker.run())?;
        Ok(BoundedBatchProcessor {
            sender,
            control: Mutex::new(control),
            counters,
            shut_down: AtomicBool::new(false),
            worker: Mutex::new(Some(handle)),
        })
    }
}

/// The bounded, non-blocking batch span processor (see the module documentation).
pub struct BoundedBatchProcessor {
    sender: SyncSender<Message>,
    control: Mutex<Sender<Control>>,
    counters: Arc<ExportCounters>,
    shut_down: AtomicBool,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for BoundedBatchProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoundedBatchProcessor")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl BoundedBatchProcessor {
    /// A builder whose exports run on `runtime` (the telemetry I/O runtime); every sink is told
    /// `resource` (the service name and resource attributes).
    pub fn builder(
        config: BatchConfig,
        runtime: tokio::runtime::Handle,
        resource: Resource,
    ) -> BoundedBatchProcessorBuilder {
        BoundedBatchProcessorBuilder {
            config,
            sinks: Vec::new(),
            runtime,
            resource,
        }
    }

    /// The processor's counters; they stay readable after shutdown.
    pub fn counters(&self) -> Arc<ExportCounters> {
        self.counters.clone()
    }

    fn request(
        &self,
        make: fn(Sender<OTelSdkResult>) -> Control,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (ack, ack_receiver) = mpsc::channel();
        self.control
            .lock()
            .map_err(|_| OTelSdkError::InternalFailure("span export control lock poisoned".into()))?
            .send(make(ack))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        // A full queue means the worker is busy and will look at the control channel next.
        let _ = self.sender.try_send(Message::Wake);
        match ack_receiver.recv_timeout(timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(OTelSdkError::AlreadyShutdown),
        }
    }
}

impl SpanProcessor for BoundedBatchProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.shut_down.load(Ordering::Relaxed) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.sender.try_send(Message::Span(Box::new(span))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.request(Control::Flush, Duration::from_secs(30))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::SeqCst) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let result = self.request(Control::Shutdown, timeout);
        if result.is_ok()
            && let Ok(mut worker) = self.worker.lock()
            && let Some(handle) = worker.take()
        {
            // The worker acknowledged and is returning; joining cannot wait long.
            let _ = handle.join();
        }
        result
    }
}

struct Worker {
    receiver: Receiver<Message>,
    control: mpsc::Receiver<Control>,
    sinks: Vec<NamedSink>,
    runtime: tokio::runtime::Handle,
    config: BatchConfig,
    counters: Arc<ExportCounters>,
}

impl Worker {
    fn run(self) {
        let batch_size = self.config.batch_size.max(1);
        let mut batch: Vec<SpanData> = Vec::with_capacity(batch_size);
        let mut deadline = Instant::now() + self.config.schedule_delay;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.receiver.recv_timeout(wait) {
                Ok(Message::Span(span)) => {
                    batch.push(*span);
                    if batch.len() >= batch_size {
                        let _ = self.export(&mut batch);
                        deadline = Instant::now() + self.config.schedule_delay;
                    }
                }
                Ok(Message::Wake) => {}
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.export(&mut batch);
                    deadline = Instant::now() + self.config.schedule_delay;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.export(&mut batch);
                    let _ = self.shutdown_sinks();
                    return;
                }
            }
            while let Ok(control) = self.control.try_recv() {
                match control {
                    Control::Flush(ack) => {
                        let result = self.drain(&mut batch);
                        let _ = ack.send(result);
                    }
                    Control::Shutdown(ack) => {
                        // Failed exports are counted and logged; shutting down itself succeeds.
                        let _ = self.drain(&mut batch);
                        let result = self.shutdown_sinks();
                        let _ = ack.send(result);
                        return;
                    }
                }
            }
        }
    }

    /// Exports everything queued so far.
    fn drain(&self, batch: &mut Vec<SpanData>) -> OTelSdkResult {
        let mut result = Ok(());
        while let Ok(message) = self.receiver.try_recv() {
            if let Message::Span(span) = message {
                batch.push(*span);
                if batch.len() >= self.config.batch_size.max(1) {
                    result = result.and(self.export(batch));
                }
            }
        }
        result.and(self.export(batch))
    }

    fn export(&self, batch: &mut Vec<SpanData>) -> OTelSdkResult {
        if batch.is_empty() {
            return Ok(());
        }
        let mut spans = std::mem::replace(batch, Vec::with_capacity(self.config.batch_size));
        spans.iter_mut().for_each(enrich_span);
        let count = spans.len() as u64;
        let timeout = self.config.export_timeout;
        let mut result = Ok(());
        for (index, sink) in self.sinks.iter().enumerate() {
            let data = if index + 1 == self.sinks.len() {
                std::mem::take(&mut spans)
            } else {
                spans.clone()
            };
            let outcome = self.runtime.block_on(async {
                tokio::time::timeout(timeout, sink.sink.export(data))
                    .await
                    .unwrap_or(Err(OTelSdkError::Timeout(timeout)))
            });
            if let Err(error) = outcome {
                self.counters.export_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    sink = %sink.name,
                    spans = count,
                    error = %error,
                    "exporting spans failed; they are lost for this sink"
                );
                result = Err(error);
            }
        }
        if result.is_ok() {
            self.counters.exported.fetch_add(count, Ordering::Relaxed);
        }
        result
    }

    fn shutdown_sinks(&self) -> OTelSdkResult {
        let mut result = Ok(());
        for sink in &self.sinks {
            let _enter = self.runtime.enter();
            if let Err(error) = sink.sink.shutdown(self.config.export_timeout) {
                tracing::warn!(sink = %sink.name, error = %error, "shutting down a span sink failed");
                result = Err(error);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use std::sync::atomic::AtomicUsize;
    use std::time::SystemTime;

    /// Fault injection: an exporter that takes `delay` for every batch, like a stalled collector.
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

    #[test]
    fn a_full_queue_drops_and_counts_without_blocking() {
        let runtime = runtime();
        let received = Arc::new(AtomicUsize::new(0));
        let exporter = SlowExporterDouble {
            delay: Duration::from_millis(300),
            received: received.clone(),
        };
        let config = BatchConfig {
            queue_size: 8,
            batch_size: 4,
            schedule_delay: Duration::from_millis(10),
            export_timeout: Duration::from_secs(5),
        };
        let processor = BoundedBatchProcessor::builder(
            config,
            runtime.handle().clone(),
            Resource::builder_empty().build(),
        )
        .with_exporter("slow double", exporter)
        .build()
        .unwrap();

        let started = Instant::now();
        for index in 0..100 {
            processor.on_end(sampled_span(index));
        }
        let elapsed = started.elapsed();
        // Not a performance target: blocking behind the exporter would take 25 batches × 300 ms
        // = 7.5 s, so a bound of 3 s only tells "never waits" from "waits", even on a loaded machine.
        assert!(
            elapsed < Duration::from_secs(3),
            "on_end blocked for {elapsed:?} behind a slow exporter"
        );

        processor
            .shutdown_with_timeout(Duration::from_secs(10))
            .unwrap();
        let counters = processor.counters();
        assert!(counters.dropped() > 0, "a queue of 8 cannot hold 100 spans");
        assert_eq!(counters.dropped() + counters.exported(), 100);
        assert_eq!(received.load(Ordering::SeqCst) as u64, counters.exported());
        assert_eq!(counters.export_errors(), 0);
    }

    #[test]
    fn flush_exports_a_partial_batch_and_timeouts_count_as_errors() {
        let runtime = runtime();
        let received = Arc::new(AtomicUsize::new(0));
        let config = BatchConfig {
            queue_size: 16,
            batch_size: 16,
            schedule_delay: Duration::from_secs(60),
            export_timeout: Duration::from_millis(100),
        };
        let processor = BoundedBatchProcessor::builder(
            config,
            runtime.handle().clone(),
            Resource::builder_empty().build(),
        )
        .with_exporter(
            "fast double",
            SlowExporterDouble {
                delay: Duration::ZERO,
                received: received.clone(),
            },
        )
        .with_exporter(
            "hung double",
            SlowExporterDouble {
                delay: Duration::from_secs(60),
                received: Arc::new(AtomicUsize::new(0)),
            },
        )
        .build()
        .unwrap();
        for index in 0..3 {
            processor.on_end(sampled_span(index));
        }
        assert!(processor.force_flush().is_err(), "the hung sink times out");
        assert_eq!(received.load(Ordering::SeqCst), 3);
        let counters = processor.counters();
        assert_eq!(counters.export_errors(), 1);
        assert_eq!(counters.exported(), 0, "not every sink accepted the batch");
        processor
            .shutdown_with_timeout(Duration::from_secs(5))
            .unwrap();
        processor.on_end(sampled_span(9));
        assert_eq!(
            counters.dropped(),
            1,
            "spans after shutdown are counted as dropped"
        );
    }
}
