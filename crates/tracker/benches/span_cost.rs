//! The cost of one GenAI span on the agent's thread: created with 8 attributes, 2 more recorded,
//! entered, ended and handed to the export processor (a no-op sink behind it) — against the same
//! span with a plain `tracing` registry and no OpenTelemetry layer, so the figure reads as a ratio.

use std::time::{Duration, Instant};

/// Spans per timed chunk; far below the queue size.
const FLUSH_EVERY: u64 = 4096;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use sextant_tracker::conventions::{self, operation};
use sextant_tracker::{Telemetry, TelemetryConfig};
use tracing_subscriber::layer::SubscriberExt;

/// A sink that accepts everything and does nothing: only the agent-side cost is measured.
#[derive(Debug)]
struct NoopExporter;

impl SpanExporter for NoopExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        std::hint::black_box(batch);
        Ok(())
    }
}

fn one_chat_span() {
    let span = tracing::info_span!(
        "chat",
        otel.name = "chat SmolLM2-135M-Instruct",
        { conventions::GEN_AI_OPERATION_NAME } = operation::CHAT,
        { conventions::GEN_AI_PROVIDER_NAME } = "local",
        { conventions::GEN_AI_REQUEST_MODEL } = "SmolLM2-135M-Instruct",
        { conventions::GEN_AI_REQUEST_TEMPERATURE } = 0.2,
        { conventions::GEN_AI_REQUEST_MAX_TOKENS } = 256_i64,
        { conventions::GEN_AI_REQUEST_TOP_P } = 0.9,
        { conventions::GEN_AI_CONVERSATION_ID } = "c-0001",
        { conventions::SESSION_ID } = "s-0001",
        { conventions::GEN_AI_USAGE_INPUT_TOKENS } = tracing::field::Empty,
        { conventions::GEN_AI_USAGE_OUTPUT_TOKENS } = tracing::field::Empty,
    );
    span.in_scope(|| {
        span.record(conventions::GEN_AI_USAGE_INPUT_TOKENS, 21_i64);
        span.record(conventions::GEN_AI_USAGE_OUTPUT_TOKENS, 9_i64);
    });
}

fn span_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("span_cost");
    group.measurement_time(Duration::from_secs(5));

    tracing::subscriber::with_default(tracing_subscriber::registry(), || {
        group.bench_function("tracing_registry_without_otel", |b| b.iter(one_chat_span));
    });

    let config = TelemetryConfig {
        queue_size: 1 << 16,
        schedule_delay: Duration::from_millis(50),
        ..TelemetryConfig::default()
    };
    let telemetry = Telemetry::builder(&config)
        .with_span_exporter("no-op", NoopExporter)
        .build()
        .expect("the pipeline starts");
    let subscriber = tracing_subscriber::registry().with(telemetry.layer());
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("otel_layer_and_export_processor", |b| {
            // Flushed between untimed chunks so that the queue never fills: a dropped span takes
            // a cheaper path and would flatter the figure.
            b.iter_custom(|iterations| {
                let mut measured = Duration::ZERO;
                let mut left = iterations;
                while left > 0 {
                    let chunk = left.min(FLUSH_EVERY);
                    let started = Instant::now();
                    for _ in 0..chunk {
                        one_chat_span();
                    }
                    measured += started.elapsed();
                    telemetry.force_flush().expect("the no-op sink flushes");
                    left -= chunk;
                }
                measured
            })
        });
    });
    group.finish();

    let report = telemetry.shutdown().expect("the pipeline shuts down");
    eprintln!(
        "spans exported: {}, dropped (queue full): {}",
        report.exported, report.dropped
    );
}

criterion_group!(benches, span_cost);
criterion_main!(benches);
