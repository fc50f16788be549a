//! Framework overhead of one agent turn: two tool calls (run concurrently) and a final answer,
//! against the scripted instant model, so nothing but Sextant's own work is measured.
//!
//! In the same run: with no tracing subscriber (the loop alone), and with the full telemetry
//! pipeline (OTel layer, enrichment, the local SQLite store's own queue and thread), with and
//! without content capture; and untraced with durable checkpoints (the turn's state written to
//! the embedded SQLite turn store after each model call and each tool call). Report the traced
//! and checkpointed figures as ratios of the untraced one.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use sextant_agent::Agent;
use sextant_agent::testing::ScriptedChatModel;
use sextant_agent::turn_store::{Checkpoints, SqliteTurnStore, TurnStore};
use sextant_tools::ToolSet;
use sextant_tools::builtin::Calculator;
use sextant_tracker::{Telemetry, TelemetryConfig};

/// Two tool calls, then an answer. The script repeats its last entry when it runs out, so every
/// iteration replays the cycle only if the model is rebuilt; rebuilding is outside the timing.
fn scripted_model() -> ScriptedChatModel {
    ScriptedChatModel::new()
        .then_tool_calls(&[
            ("calculator", r#"{"expression": "12 * 7"}"#),
            ("calculator", r#"{"expression": "84 + 3"}"#),
        ])
        .then_text("The answer is 87.")
}

fn scripted_turn_agent(capture_content: bool) -> Agent {
    Agent::builder("bench", Arc::new(scripted_model()))
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

    let state_dir = tempfile::tempdir().unwrap();
    let turns: Arc<dyn TurnStore> =
        Arc::new(SqliteTurnStore::open(state_dir.path().join("sessions.db")).unwrap());
    let checkpoints = Checkpoints::new(turns);
    group.bench_function("untraced_checkpointed", |b| {
        b.iter_batched(
            || {
                Agent::builder("bench", Arc::new(scripted_model()))
                    .system_prompt("You are a helpful assistant.")
                    .tools(ToolSet::new().with(Calculator))
                    .max_steps(4)
                    .checkpoints(checkpoints.clone())
                    .build()
            },
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
