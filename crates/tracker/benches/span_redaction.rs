//! What redaction adds to the span path: one capture-on chat span (messages of about 1 KB as
//! JSON, a tool call's arguments, eleven attributes) through the export processor with no sink
//! behind it, so only enrichment and redaction are timed. The four cases run in one process and
//! read as ratios against `off`:
//!
//! - `off`: `secrets = false` (the processor skips redaction);
//! - `secrets`: the default (API-key shapes, bearer tokens, URL credentials);
//! - `secrets_and_pii`: `pii = true`, on text with nothing to find;
//! - `pii_with_findings`: `pii = true`, on text with an email and a card number to replace.

use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanProcessor};
use sextant_tracker::conventions::{self, operation};
use sextant_tracker::export::{BatchConfig, SpanExportProcessor};
use sextant_tracker::redaction::{RedactionConfig, Redactor};

const QUESTION: &str = "I have been looking at the quarterly report and the figures for the \
    northern region do not add up: revenue is listed at 4.2 million while the sum of the monthly \
    lines gives 3.9 million. Could you check the spreadsheet formulas, tell me which cells feed \
    the total, and draft a short note to the finance team explaining the discrepancy?";
const ANSWER: &str = "The total in cell F14 sums F2:F13, but F9 holds a hard-coded value instead \
    of the formula used in the other months, which adds 0.3 million. Here is a note you can send: \
    the northern region's revenue total double-counts September; correcting F9 to =SUM(B9:E9) \
    brings the total to 3.9 million, in line with the monthly lines.";

fn chat_span(index: u64, personal: bool) -> SpanData {
    let question = if personal {
        format!("{QUESTION} Reply to ada@example.com; card 4111 1111 1111 1111.")
    } else {
        QUESTION.to_owned()
    };
    let messages = serde_json::json!([
        {"role": "system", "parts": [{"type": "text", "content": "You are a careful analyst."}]},
        {"role": "user", "parts": [{"type": "text", "content": question}]},
    ])
    .to_string();
    let output = serde_json::json!([
        {"role": "assistant", "parts": [{"type": "text", "content": ANSWER}], "finish_reason": "stop"}
    ])
    .to_string();
    let now = SystemTime::now();
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(u128::from(index / 3 + 1)),
            SpanId::from(index + 1),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from(1),
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
            KeyValue::new(conventions::GEN_AI_USAGE_INPUT_TOKENS, 121_i64),
            KeyValue::new(conventions::GEN_AI_USAGE_OUTPUT_TOKENS, 79_i64),
            KeyValue::new(conventions::GEN_AI_INPUT_MESSAGES, messages),
            KeyValue::new(conventions::GEN_AI_OUTPUT_MESSAGES, output),
        ],
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("sextant").build(),
    }
}

fn span_redaction(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("span_redaction");
    group.measurement_time(Duration::from_secs(5));
    let cases = [
        ("off", false, false, false),
        ("secrets", true, false, false),
        ("secrets_and_pii", true, true, false),
        ("pii_with_findings", true, true, true),
    ];
    for (name, secrets, pii, personal) in cases {
        let redactor = Redactor::new(&RedactionConfig {
            secrets,
            pii,
            patterns: Vec::new(),
        })
        .unwrap();
        let processor = SpanExportProcessor::builder(
            BatchConfig::default(),
            runtime.handle().clone(),
            Resource::builder_empty().build(),
        )
        .with_redaction(redactor)
        .build();
        let mut next = 0u64;
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    next += 1;
                    chat_span(next, personal)
                },
                |span| processor.on_end(span),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, span_redaction);
criterion_main!(benches);
