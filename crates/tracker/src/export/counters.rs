//! What each sink did with the spans it was given: counters shared by the sink's threads, the
//! telemetry guard, `/metrics` and the shutdown report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

use super::spool::{SpanSpool, SpoolBacklog, SpoolLosses};

/// The counters of one sink.
#[derive(Debug, Default)]
pub struct SinkCounters {
    name: String,
    pub(super) queued: AtomicU64,
    pub(super) exported: AtomicU64,
    pub(super) spooled: AtomicU64,
    pub(super) resent: AtomicU64,
    pub(super) dropped_queue_full: AtomicU64,
    pub(super) dropped_export_failed: AtomicU64,
    pub(super) rejected: AtomicU64,
    pub(super) possible_duplicates: AtomicU64,
    pub(super) export_errors: AtomicU64,
    pub(super) failing: AtomicBool,
    pub(super) last_error: Mutex<Option<String>>,
    spool: OnceLock<Arc<SpanSpool>>,
}

impl SinkCounters {
    /// Counters for the sink `name` (a description without credentials).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    #[cfg(feature = "otlp")]
    pub(super) fn attach_spool(&self, spool: Arc<SpanSpool>) {
        let _ = self.spool.set(spool);
    }

    pub(super) fn add(counter: &AtomicU64, spans: u64) {
        counter.fetch_add(spans, Ordering::Relaxed);
    }

    pub(super) fn set_last_error(&self, error: Option<String>) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = error;
        }
    }

    /// Whether the sink's last export failed.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// A snapshot of the counters and the spool.
    pub fn report(&self) -> SinkReport {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (backlog, losses) = match self.spool.get() {
            Some(spool) => (spool.backlog(), spool.losses()),
            None => (SpoolBacklog::default(), SpoolLosses::default()),
        };
        SinkReport {
            sink: self.name.clone(),
            spooling: self.spool.get().is_some(),
            queued: load(&self.queued),
            exported: load(&self.exported),
            spooled: load(&self.spooled),
            resent: load(&self.resent),
            dropped_queue_full: load(&self.dropped_queue_full),
            dropped_over_quota: losses.spans_over_quota,
            dropped_corrupt: losses.corrupt_spans,
            dropped_export_failed: load(&self.dropped_export_failed),
            rejected: load(&self.rejected),
            possible_duplicates: load(&self.possible_duplicates),
            export_errors: load(&self.export_errors),
            spool_spans: backlog.spans,
            spool_bytes: backlog.bytes,
            oldest_unsent_ms: backlog.oldest_ms,
            failing: self.is_failing(),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
        }
    }
}

/// What one sink did with its spans so far (see [`SinkCounters::report`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SinkReport {
    /// The sink (its URL without credentials, or its name).
    pub sink: String,
    /// Whether the sink writes through a spool (a remote sink); the spool fields are zero
    /// otherwise.
    pub spooling: bool,
    /// Spans accepted into the sink's queue.
    pub queued: u64,
    /// Spans the backend acknowledged.
    pub exported: u64,
    /// Spans written to the sink's on-disk spool (every span of a remote sink goes through it).
    pub spooled: u64,
    /// Spans delivered on a later attempt: after a failed export, or left by an earlier process.
    pub resent: u64,
    /// Spans dropped because the sink's queue was full (or arrived after shutdown).
    pub dropped_queue_full: u64,
    /// Unsent spans deleted because the spool passed its quota.
    pub dropped_over_quota: u64,
    /// Spans of spool records whose checksum failed.
    pub dropped_corrupt: u64,
    /// Spans a sink without a spool (the local store, an extra exporter) failed to export.
    pub dropped_export_failed: u64,
    /// Spans the backend refused for good (a malformed request, HTTP 400 / gRPC
    /// `INVALID_ARGUMENT`, or a partial success).
    pub rejected: u64,
    /// Spans sent again after a crash that may have hit between send and acknowledgement.
    pub possible_duplicates: u64,
    /// Failed export attempts.
    pub export_errors: u64,
    /// Spans waiting in the spool.
    pub spool_spans: u64,
    /// Bytes of the spool on disk.
    pub spool_bytes: u64,
    /// When the oldest waiting span was spooled (ms since the epoch).
    pub oldest_unsent_ms: Option<i64>,
    /// Whether the last export failed.
    pub failing: bool,
    /// The last export error while failing.
    pub last_error: Option<String>,
}

impl SinkReport {
    /// Every span dropped, whatever the reason (rejections included).
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_over_quota
            + self.dropped_corrupt
            + self.dropped_export_failed
            + self.rejected
    }
}

/// Publishes every sink's counters as metrics on `meter` (read at each collection: `/metrics`
/// and OTLP metric exports).
pub(crate) fn observe_sinks(meter: &opentelemetry::metrics::Meter, sinks: Vec<Arc<SinkCounters>>) {
    use opentelemetry::KeyValue;

    use crate::conventions::{self, metric};

    let sinks = Arc::new(sinks);
    let reports = {
        let sinks = sinks.clone();
        move || sinks.iter().map(|s| s.report()).collect::<Vec<_>>()
    };
    let component =
        |report: &SinkReport| KeyValue::new(conventions::OTEL_COMPONENT_NAME, report.sink.clone());
    let error_type = |value: &'static str| KeyValue::new(conventions::ERROR_TYPE, value);
    let outcome =
        |value: &'static str| KeyValue::new(conventions::SEXTANT_TELEMETRY_OUTCOME, value);

    let read = reports.clone();
    meter
        .u64_observable_counter(metric::OTEL_SDK_PROCESSOR_SPAN_PROCESSED)
        .with_unit("{span}")
        .with_description("Spans each sink's queue took, or dropped because it was full")
        .with_callback(move |observer| {
            for report in read() {
                observer.observe(report.queued, &[component(&report)]);
                observer.observe(
                    report.dropped_queue_full,
                    &[component(&report), error_type("queue_full")],
                );
            }
        })
        .build();
    let read = reports.clone();
    meter
        .u64_observable_counter(metric::OTEL_SDK_EXPORTER_SPAN_EXPORTED)
        .with_unit("{span}")
        .with_description("Spans each sink's backend acknowledged, or refused for good")
        .with_callback(move |observer| {
            for report in read() {
                observer.observe(report.exported, &[component(&report)]);
                observer.observe(
                    report.rejected,
                    &[component(&report), error_type("rejected")],
                );
            }
        })
        .build();
    let read = reports.clone();
    meter
        .u64_observable_counter(metric::SEXTANT_TELEMETRY_SPANS)
        .with_unit("{span}")
        .with_description("Spans each sink spooled, re-sent, dropped or possibly sent twice")
        .with_callback(move |observer| {
            for report in read() {
                let sink = component(&report);
                observer.observe(
                    report.dropped_export_failed,
                    &[
                        sink.clone(),
                        outcome("dropped"),
                        error_type("export_failed"),
                    ],
                );
                if !report.spooling {
                    continue;
                }
                observer.observe(report.spooled, &[sink.clone(), outcome("spooled")]);
                observer.observe(report.resent, &[sink.clone(), outcome("resent")]);
                observer.observe(
                    report.possible_duplicates,
                    &[sink.clone(), outcome("possible_duplicate")],
                );
                for (count, reason) in [
                    (report.dropped_over_quota, "over_quota"),
                    (report.dropped_corrupt, "corrupt"),
                ] {
                    observer.observe(
                        count,
                        &[sink.clone(), outcome("dropped"), error_type(reason)],
                    );
                }
            }
        })
        .build();
    let read = reports.clone();
    meter
        .u64_observable_counter(metric::SEXTANT_TELEMETRY_EXPORT_ERRORS)
        .with_unit("{error}")
        .with_description("Failed export attempts per sink")
        .with_callback(move |observer| {
            for report in read() {
                observer.observe(report.export_errors, &[component(&report)]);
            }
        })
        .build();
    let read = reports.clone();
    meter
        .u64_observable_gauge(metric::SEXTANT_TELEMETRY_SPOOL_SPANS)
        .with_unit("{span}")
        .with_description("Spans waiting in each sink's spool")
        .with_callback(move |observer| {
            for report in read().into_iter().filter(|r| r.spooling) {
                observer.observe(report.spool_spans, &[component(&report)]);
            }
        })
        .build();
    let read = reports.clone();
    meter
        .u64_observable_gauge(metric::SEXTANT_TELEMETRY_SPOOL_SIZE)
        .with_unit("By")
        .with_description("Bytes of each sink's spool on disk")
        .with_callback(move |observer| {
            for report in read().into_iter().filter(|r| r.spooling) {
                observer.observe(report.spool_bytes, &[component(&report)]);
            }
        })
        .build();
    meter
        .f64_observable_gauge(metric::SEXTANT_TELEMETRY_SPOOL_OLDEST_AGE)
        .with_unit("s")
        .with_description("Age of the oldest unsent span in each sink's spool")
        .with_callback(move |observer| {
            let now = crate::now_ms();
            for report in reports().into_iter().filter(|r| r.spooling) {
                let age = report
                    .oldest_unsent_ms
                    .map_or(0.0, |oldest| (now - oldest).max(0) as f64 / 1000.0);
                observer.observe(age, &[component(&report)]);
            }
        })
        .build();
}
