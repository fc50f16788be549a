//! Framework overhead of one agent turn: two tool calls (run concurrently) and a final answer,
//! against the scripted instant model, so nothing but Sextant's own work is measured.
//!
//! In the same run: with no tracing subscriber (the loop alone), and with the full telemetry
//! pipeline (OTel layer, enrichment, the local SQLite store's own queue and thread), with and
//! without content capture. Report the traced figures as ratios of the untraced one.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use sextant_agent::Agent;
use sextant_agent::testing::ScriptedChatModel;
use sextant_tools::ToolSet;
use sextant_tools::builtin::Calculator;
use sextant_tracker::{Telemetry, TelemetryConfig};

fn scripted_turn_agent(capture_content: bool) -> Agent {
    // The script repeats its last entry when it runs out, so every iteration replays the cycle
    // "two tool calls, then an answer" only if the model is rebuilt; rebuilding is outside the timing.
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[
            ("calculator", r#"{"expression": "12 * 7"}"#),
            ("calculator", r#"{"expression": "84 + 3"}"#),
        ])
        .then_text("The answer is 87.");
    Agent::builder("bench", Arc::new(model))
        .system_prompt("You are a helpful assistant.")
        .tools(ToolSet::new().with(Calculator))
        .max_steps(4)
        .capture_content(capture_content)
        .build()
}

fn bench_turn(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("agent_turn_two_tool_calls");

    group.bench_function("untraced", |b| {
        b.iter_batched(
            || scripted_turn_agent(false),
            |agent| runtime.block_on(agent.run("What is 12 * 7 + 3?")).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });

    let store_dir = tempfile::tempdir().unwrap();
    for capture in [false, true] {
        let config = TelemetryConfig {
            local_store: Some(store_dir.path().join(format!("traces-{capture}.db"))),
            queue_size: 65_536,
            ..TelemetryConfig::default()
        };
        let telemetry = Telemetry::builder(&config).build().unwrap();
        let _subscriber = telemetry.set_thread_default();
        let name = if capture {
            "traced_with_content"
        } else {
            "traced"
        };
        group.bench_function(name, |b| {
            b.iter_batched(
                || scripted_turn_agent(capture),
                |agent| runtime.block_on(agent.run("What is 12 * 7 + 3?")).unwrap(),
                criterion::BatchSize::SmallInput,
            )
        });
        let report = telemetry.shutdown().unwrap();
        eprintln!(
            "{name}: exported {} spans, dropped {}",
            report.exported, report.dropped
        );
    }
    group.finish();
}

criterion_group!(benches, bench_turn);
criterion_main!(benches);
