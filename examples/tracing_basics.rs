//! Tracing basics — the seed's first demo: an agent that calls a weather tool before answering,
//! so its trace shows `execute_tool get_weather` nested under `invoke_agent`, between the model
//! call that asked for the tool and the one that answered with its result.
//!
//! Offline: the embedded model and the simulated weather (set `tools.get_weather.backend =
//! "open_meteo"` in a config file for real weather).
//!
//! ```sh
//! cargo run --release --example tracing_basics -- "What's the weather like in Lisbon?"
//! ```

use std::sync::Arc;

use sextant_agent::providers::local::{LocalChatModel, LocalModelOptions};
use sextant_agent::{Agent, model_files::ModelCache};
use sextant_tools::{ToolSet, ToolsConfig};
use sextant_tracker::{SpanTree, TelemetryConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What's the weather like in Oslo today?".into());

    // Every span goes to a local trace store, with message content: this is a demo.
    let store_dir = tempfile::tempdir()?;
    let telemetry = sextant_tracker::init(&TelemetryConfig {
        local_store: Some(store_dir.path().join("traces.db")),
        capture_content: true,
        ..TelemetryConfig::default()
    })?;

    let model =
        LocalChatModel::load_from_cache(&ModelCache::from_env()?, LocalModelOptions::default())
            .await?;
    let agent = Agent::builder("weather-assistant", Arc::new(model))
        .system_prompt("You are a helpful assistant. Answer questions concisely and accurately.")
        .tools(ToolSet::from_config(
            &["get_weather"],
            &ToolsConfig::default(),
        )?)
        .capture_content(true)
        .build();

    let outcome = agent.run(&question).await?;
    for call in &outcome.tool_calls {
        println!("{}({}) -> {}", call.name, call.arguments, call.result);
    }
    println!("\n{}\n", outcome.answer.trim());

    telemetry.force_flush()?;
    if let (Some(store), Some(trace_id)) = (telemetry.trace_store(), &outcome.trace_id) {
        print!("{}", SpanTree::build(&store.spans(trace_id)?).render());
    }
    telemetry.shutdown()?;
    Ok(())
}
