//! Trace search on a store of 100,000 traces (an agent span over a chat span each, a tenth of
//! them with feedback): how long `sextant traces search` takes for filters on the indexed
//! summary (duration and agent), on any span's attribute (the model), and on feedback, each for
//! one page of 20. Building the store is timed once and printed, not benchmarked.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::SpanData;
use sextant_tracker::conventions::{self, operation};
use sextant_tracker::tracking::{Assessment, AssessmentSource, AssessmentSourceType};
use sextant_tracker::{LocalTraceStore, TraceFilter, TraceQuery};

const TRACES: u64 = 100_000;

fn span(
    trace: u64,
    id: u64,
    parent: u64,
    name: &str,
    start: SystemTime,
    ms: u64,
    attributes: Vec<KeyValue>,
) -> SpanData {
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(u128::from(trace) + 1),
            SpanId::from(id),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from(parent),
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: name.to_owned().into(),
        start_time: start,
        end_time: start + Duration::from_millis(ms),
        attributes,
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("bench").build(),
    }
}

fn turn(n: u64) -> [SpanData; 2] {
    let start = UNIX_EPOCH + Duration::from_secs(1_790_000_000 + n);
    let ms = 100 + (n * 7919) % 5000;
    let agent = ["assistant", "researcher", "support"][(n % 3) as usize];
    let model = [
        "llama3.2",
        "gpt-4o-mini",
        "SmolLM2-135M-Instruct",
        "qwen2.5",
    ][(n % 4) as usize];
    [
        span(
            n,
            n * 2 + 1,
            0,
            "invoke_agent",
            start,
            ms,
            vec![
                KeyValue::new(conventions::GEN_AI_OPERATION_NAME, operation::INVOKE_AGENT),
                KeyValue::new(conventions::GEN_AI_AGENT_NAME, agent),
                KeyValue::new(conventions::SESSION_ID, format!("s-{}", n % 1000)),
                KeyValue::new(conventions::SEXTANT_OWNER, format!("user-{}", n % 50)),
            ],
        ),
        span(
            n,
            n * 2 + 2,
            n * 2 + 1,
            "chat",
            start,
            ms - 10,
            vec![
                KeyValue::new(conventions::GEN_AI_OPERATION_NAME, operation::CHAT),
                KeyValue::new(conventions::GEN_AI_REQUEST_MODEL, model),
                KeyValue::new(conventions::GEN_AI_USAGE_INPUT_TOKENS, 200_i64),
                KeyValue::new(conventions::GEN_AI_USAGE_OUTPUT_TOKENS, 40_i64),
            ],
        ),
    ]
}

fn bench_search(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalTraceStore::open(dir.path().join("traces.db")).unwrap();
    let built = Instant::now();
    for chunk in (0..TRACES).collect::<Vec<_>>().chunks(1000) {
        let spans: Vec<SpanData> = chunk.iter().flat_map(|&n| turn(n)).collect();
        store.insert(&spans).unwrap();
    }
    for n in (0..TRACES).step_by(10) {
        store
            .record_assessment(&Assessment {
                assessment_id: None,
                name: "thumbs".into(),
                trace_id: TraceId::from(u128::from(n) + 1).to_string(),
                span_id: None,
                source: AssessmentSource {
                    source_type: AssessmentSourceType::Human,
                    source_id: "bench".into(),
                },
                create_time_ms: 0,
                value: Some(serde_json::json!(n.is_multiple_of(30))),
                error: None,
                rationale: None,
                metadata: Default::default(),
            })
            .unwrap();
    }
    eprintln!(
        "trace_search: stored {TRACES} traces ({} spans) and {} assessments in {:.1} s",
        TRACES * 2,
        TRACES / 10,
        built.elapsed().as_secs_f64()
    );
    let mut group = c.benchmark_group("trace_search_100k");
    group.sample_size(20);
    for (name, filter) in [
        ("newest_page", ""),
        (
            "duration_and_agent",
            "duration_ms > 4000 and agent = 'support'",
        ),
        (
            "any_span_model",
            "attributes.gen_ai.request.model = 'qwen2.5' and duration_ms > 2000",
        ),
        ("feedback", "feedback.thumbs = false"),
        (
            "duration_model_feedback",
            "duration_ms > 2000 and attributes.gen_ai.request.model = 'llama3.2' and feedback.thumbs = false",
        ),
    ] {
        let query = TraceQuery {
            filter: TraceFilter::parse(filter).unwrap(),
            limit: 20,
            ..TraceQuery::default()
        };
        assert!(
            !store.search(&query).unwrap().traces.is_empty(),
            "{name} finds traces"
        );
        group.bench_function(name, |b| b.iter(|| store.search(&query).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench_search);
criterion_main!(benches);
