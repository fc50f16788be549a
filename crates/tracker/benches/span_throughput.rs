//! How fast spans reach the local trace store with none dropped, and what a turn costs the agent
//! while the OTLP collector next to it is stalled, against the same turn with a healthy one — in
//! one run, so the figures read as ratios.
//!
//! - `local_store_sustained`: spans handed to the export processor and written to SQLite, timed
//!   until the store has them (flush included); the run fails if any span was dropped.
//! - `turn_with_healthy_collector` / `turn_with_stalled_collector`: a three-span agent turn on
//!   the caller's thread, with the local store and an OTLP/HTTP sink whose collector (the
//!   testkit's double) answers at once, or accepts connections and never answers (fault
//!   injection). The spool absorbs the
//!   stalled case; the figure is what the agent pays for it.

use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanProcessor};
use sextant_testkit::otlp_collector::{Mode, OtlpCollectorDouble};
use sextant_tracker::conventions::{self, operation};
use sextant_tracker::export::{BatchConfig, SpanExportProcessor};
use sextant_tracker::{
    LocalTraceStore, OtlpConfig, OtlpProtocol, Telemetry, TelemetryConfig, TelemetryGuard,
};

/// Spans per timed chunk of the sustained run.
const CHUNK: u64 = 8192;
/// Turns per timed chunk of the turn runs; far below the queue size.
const TURNS_PER_CHUNK: u64 = 512;

fn chat_span(index: u64) -> SpanData {
    let now = SystemTime::now();
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(u128::from(index / 3 + 1)),
            SpanId::from(index + 1),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Client,
        name: "chat SmolLM2-135M-Instruct".into(),
        start_time: now,
        end_time: now,
        attributes: vec![
            KeyValue::new(conventions::GEN_AI_OPERATION_NAME, operation::CHAT),
            KeyValue::new(conventions::GEN_AI_PROVIDER_NAME, "local"),
            KeyValue::new(conventions::GEN_AI_REQUEST_MODEL, "SmolLM2-135M-Instruct"),
            KeyValue::new(conventions::GEN_AI_REQUEST_TEMPERATURE, 0.2),
            KeyValue::new(conventions::GEN_AI_REQUEST_MAX_TOKENS, 256_i64),
            KeyValue::new(conventions::GEN_AI_CONVERSATION_ID, "c-0001"),
            KeyValue::new(conventions::SESSION_ID, "s-0001"),
            KeyValue::new(conventions::GEN_AI_USAGE_INPUT_TOKENS, 21_i64),
            KeyValue::new(conventions::GEN_AI_USAGE_OUTPUT_TOKENS, 9_i64),
        ],
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("sextant").build(),
    }
}

fn local_store_sustained(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = LocalTraceStore::open(dir.path().join("traces.db")).unwrap();
    let processor = SpanExportProcessor::builder(
        BatchConfig {
            queue_size: 2 * CHUNK as usize,
            batch_size: 512,
            schedule_delay: Duration::from_millis(20),
            export_timeout: Duration::from_secs(30),
        },
        runtime.handle().clone(),
        Resource::builder_empty().build(),
    )
    .with_exporter("local trace store", store)
    .unwrap()
    .build();
    let mut group = c.benchmark_group("span_throughput");
    group.measurement_time(Duration::from_secs(10));
    group.sample_size(10);
    group.throughput(Throughput::Elements(CHUNK));
    let mut next = 0u64;
    group.bench_function("local_store_sustained", |b| {
        b.iter_custom(|chunks| {
            let started = Instant::now();
            for _ in 0..chunks {
                for _ in 0..CHUNK {
                    processor.on_end(chat_span(next));
                    next += 1;
                }
                processor.force_flush().expect("the store takes every span");
            }
            started.elapsed()
        })
    });
    group.finish();
    processor
        .shutdown_with_timeout(Duration::from_secs(30))
        .unwrap();
    let report = processor.sink_counters()[0].report();
    assert_eq!(report.dropped(), 0, "spans were dropped: {report:?}");
    eprintln!(
        "local store: {} spans written, {} dropped",
        report.exported,
        report.dropped()
    );
}

fn one_turn() {
    let agent = tracing::info_span!(
        "invoke_agent",
        otel.name = "invoke_agent assistant",
        { conventions::GEN_AI_OPERATION_NAME } = operation::INVOKE_AGENT,
    );
    let _agent = agent.enter();
    tracing::info_span!(
        "chat",
        otel.name = "chat SmolLM2-135M-Instruct",
        { conventions::GEN_AI_OPERATION_NAME } = operation::CHAT,
        { conventions::GEN_AI_REQUEST_MODEL } = "SmolLM2-135M-Instruct",
        { conventions::GEN_AI_USAGE_INPUT_TOKENS } = 21_i64,
        { conventions::GEN_AI_USAGE_OUTPUT_TOKENS } = 9_i64,
    )
    .in_scope(|| {});
    tracing::info_span!(
        "execute_tool",
        otel.name = "execute_tool calculator",
        { conventions::GEN_AI_OPERATION_NAME } = operation::EXECUTE_TOOL,
        { conventions::GEN_AI_TOOL_NAME } = "calculator",
    )
    .in_scope(|| {});
}

fn pipeline(dir: &std::path::Path, collector: &OtlpCollectorDouble) -> TelemetryGuard {
    Telemetry::builder(&TelemetryConfig {
        local_store: Some(dir.join("traces.db")),
        spool_dir: Some(dir.join("spool")),
        otlp: Some(OtlpConfig {
            endpoint: format!("http://{}", collector.address),
            protocol: OtlpProtocol::HttpProtobuf,
            traces_endpoint: Some(format!("http://{}/v1/traces", collector.address)),
            timeout: Duration::from_millis(200),
            ..OtlpConfig::default()
        }),
        spool: sextant_tracker::SpoolConfig {
            max_bytes: 8 << 30,
            ..sextant_tracker::SpoolConfig::default()
        },
        queue_size: 1 << 16,
        schedule_delay: Duration::from_millis(50),
        ..TelemetryConfig::default()
    })
    .build()
    .expect("the pipeline starts")
}

fn turn_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("span_throughput");
    // Short: a stalled collector's spans pile up in its spool for the whole run.
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(10);
    for (name, mode) in [
        ("turn_with_healthy_collector", Mode::Accept),
        ("turn_with_stalled_collector", Mode::Hang),
    ] {
        let collector = OtlpCollectorDouble::start(0, mode);
        let dir = tempfile::tempdir().unwrap();
        let telemetry = pipeline(dir.path(), &collector);
        let subscriber = {
            use tracing_subscriber::layer::SubscriberExt;
            tracing_subscriber::registry().with(telemetry.layer())
        };
        tracing::subscriber::with_default(subscriber, || {
            group.bench_function(name, |b| {
                // Flushed between untimed chunks so that no queue fills: a dropped span takes a
                // cheaper path and would flatter the figure.
                b.iter_custom(|iterations| {
                    let mut measured = Duration::ZERO;
                    let mut left = iterations;
                    while left > 0 {
                        let chunk = left.min(TURNS_PER_CHUNK);
                        let started = Instant::now();
                        for _ in 0..chunk {
                            one_turn();
                        }
                        measured += started.elapsed();
                        let _ = telemetry.force_flush();
                        left -= chunk;
                    }
                    measured
                })
            });
        });
        let reports = telemetry.sink_reports();
        for report in &reports {
            assert_eq!(report.dropped(), 0, "{name}: {report:?}");
        }
        eprintln!(
            "{name}: {}",
            reports
                .iter()
                .map(|r| format!(
                    "{} exported {} spooled {} waiting {}",
                    r.sink, r.exported, r.spooled, r.spool_spans
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        // A stalled collector's spans stay spooled; shutdown leaves them for the next process.
        drop(telemetry);
    }
    group.finish();
}

criterion_group!(benches, local_store_sustained, turn_cost);
criterion_main!(benches);
