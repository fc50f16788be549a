//! Experiment tracking — log a sweep of agent settings as runs and compare them: one parent run
//! for the sweep, one nested run per setting (temperature × max_tokens) with the setting as params
//! and each question's latency and tokens as metrics by step, then the runs ranked by latency.
//!
//! The runs, and the traces of the agent's turns, go where `[tracking]` points: the embedded
//! stores in the data dir, or MLflow with `SEXTANT_TRACKING_URI=http://127.0.0.1:5000` (then open
//! the experiment in its UI).
//!
//! ```sh
//! cargo run --release --example experiment_tracking
//! sextant runs list --experiment agent-sweep --order-by "metrics.mean_latency_ms"
//! ```

use std::sync::Arc;
use std::time::Instant;

use sextant_agent::providers::local::{LocalChatModel, LocalModelOptions};
use sextant_agent::{Agent, ChatOptions};
use sextant_runtime::{RunSpec, RunStatus, Runtime, SextantConfig};

/// The sweep's runs and its turns' traces.
const EXPERIMENT: &str = "agent-sweep";

const QUESTIONS: [&str; 3] = [
    "What is the capital of France?",
    "Name a planet with rings.",
    "What do bees make?",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = SextantConfig::load(None)?;
    config.telemetry.capture_content = true; // a demo: message content on the spans
    config.tracking.experiment = EXPERIMENT.into();
    let runtime = Runtime::start(config).await?;
    // A sweep is many runs, not the process's one: they go through a tracker of their own.
    let tracker = runtime.tracker()?;
    let store = tracker.store().clone();
    let model = Arc::new(
        LocalChatModel::load_from_cache(&runtime.model_cache()?, LocalModelOptions::default())
            .await?,
    );

    let sweep = tracker.start_run(RunSpec {
        experiment: EXPERIMENT.into(),
        run_name: Some("temperature × max_tokens".into()),
        ..RunSpec::default()
    })?;
    let parent = sweep.run_id(std::time::Duration::from_secs(10)).await;
    let mut children = Vec::new();
    for temperature in [0.0_f32, 0.7] {
        for max_tokens in [24_u32, 96] {
            let run = tracker.start_run(RunSpec {
                experiment: EXPERIMENT.into(),
                run_name: Some(format!("t={temperature} max={max_tokens}")),
                parent_run_id: parent.clone(),
                ..RunSpec::default()
            })?;
            run.log_params([
                ("temperature", temperature.to_string()),
                ("max_tokens", max_tokens.to_string()),
                ("model", "SmolLM2-135M-Instruct".to_owned()),
            ]);
            let agent = Agent::builder("sweep", model.clone())
                .system_prompt("You are a helpful assistant. Answer in one short sentence.")
                .options(ChatOptions {
                    temperature: Some(temperature),
                    max_tokens: Some(max_tokens),
                    seed: Some(7),
                    ..ChatOptions::default()
                })
                .capture_content(runtime.config().telemetry.capture_content)
                .build();
            let mut total_ms = 0.0;
            for (step, question) in QUESTIONS.iter().enumerate() {
                let started = Instant::now();
                let outcome = agent.run(question).await?;
                let ms = started.elapsed().as_secs_f64() * 1e3;
                total_ms += ms;
                run.log_metrics(
                    [
                        ("latency_ms", ms),
                        ("output_tokens", outcome.usage.output_tokens as f64),
                        (
                            "answer_words",
                            outcome.answer.split_whitespace().count() as f64,
                        ),
                    ],
                    step as i64,
                );
                println!(
                    "t={temperature} max={max_tokens}  {question}  →  {}",
                    outcome.answer.trim()
                );
            }
            run.log_metric("mean_latency_ms", total_ms / QUESTIONS.len() as f64, 0);
            children.push(run.end(RunStatus::Finished).await);
        }
    }
    sweep.end(RunStatus::Finished).await;

    let experiment = store
        .experiment_by_name(EXPERIMENT)
        .await?
        .expect("the sweep created it");
    let ranked = store
        .search_runs(
            &[experiment.experiment_id],
            "params.model = 'SmolLM2-135M-Instruct'",
            &["metrics.mean_latency_ms ASC".into()],
            100,
        )
        .await?;
    println!(
        "\n{:<22} {:>16} {:>14}",
        "run", "mean_latency_ms", "output_tokens"
    );
    for run in ranked.iter().filter(|r| {
        children
            .iter()
            .any(|c| c.run_id.as_ref() == Some(&r.info.run_id))
    }) {
        let metric = |k: &str| run.metrics.get(k).map(|m| m.value).unwrap_or(f64::NAN);
        println!(
            "{:<22} {:>16.1} {:>14.0}",
            run.info.run_name,
            metric("mean_latency_ms"),
            metric("output_tokens")
        );
    }
    runtime.shutdown().await?;
    Ok(())
}
