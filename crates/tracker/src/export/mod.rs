//! Span export: every sink has its own bounded queue and thread, so a slow or dead sink never
//! delays or drops spans for another, and the agent never waits for any of them.
//!
//! ```text
//! span ends ─▶ SpanExportProcessor ─┬─▶ queue ─▶ thread ─▶ local trace store (SQLite)
//!  (enriched and redacted once)     ├─▶ queue ─▶ thread ─▶ spool on disk ─▶ sender ─▶ OTLP / MLflow
//!                                   └─▶ queue ─▶ thread ─▶ an extra exporter
//! ```
//!
//! A remote sink writes every batch to its durable [spool](spool) first and sends from there, so
//! spans survive a backend outage, a restart and a `kill -9`; only past the spool's quota are
//! spans dropped, and then counted. Each sink's [`SinkCounters`] feed `/metrics`, the shutdown
//! report and `sextant telemetry status`.
//!
//! Redaction (`span_redaction.rs`) happens in the processor, before the fan-out, so every sink
//! holds the same placeholders and the local store never keeps what a collector would not.
//!
//! One concern per file: the processor (`processor.rs`), a sink's queue and batching thread
//! (`sink_queue.rs`), in-process exporters (`exporter_sink.rs`), the spooling remote sink
//! (`spooled_sink.rs`) with its OTLP client (`otlp_traces.rs`) and spool (`spool/`), and the
//! counters (`counters.rs`).

mod counters;
mod exporter_sink;
#[cfg(feature = "otlp")]
mod otlp_traces;
mod processor;
mod sink_queue;
mod span_redaction;
#[cfg_attr(not(feature = "otlp"), allow(dead_code))]
mod spool;
#[cfg(feature = "otlp")]
mod spooled_sink;

use std::time::Duration;

pub(crate) use counters::observe_sinks;
pub use counters::{SinkCounters, SinkReport};
pub use processor::{SpanExportProcessor, SpanExportProcessorBuilder};
pub use spool::{LaneStatus, SinkSpoolStatus, spool_status};

/// Queue and batch sizes of every sink.
#[derive(Clone, Debug)]
pub struct BatchConfig {
    /// Spans a sink's queue holds before new ones are dropped.
    pub queue_size: usize,
    /// Spans in one batch at most.
    pub batch_size: usize,
    /// How long a remote sink waits for a request to fill before it sends what it has (a sink
    /// writes each batch to the local store or its spool at once); also the idle tick.
    pub schedule_delay: Duration,
    /// How long one export to an in-process sink may take before it counts as failed.
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
