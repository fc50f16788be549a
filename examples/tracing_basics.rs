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

use sextant_agent::Agent;
use sextant_agent::providers::local::{LocalChatModel, LocalModelOptions};
use sextant_runtime::{Runtime, SextantConfig};
use sextant_tools::ToolSet;
use sextant_tracker::SpanTree;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What's the weather like in Oslo today?".into());

    let mut config = SextantConfig::load(None)?;
    config.telemetry.capture_content = true; // a demo: message content on the spans
    let runtime = Runtime::start(config).await?;

    let model =
        LocalChatModel::load_from_cache(&runtime.model_cache()?, LocalModelOptions::default())
            .await?;
    let agent = Agent::builder("weather-assistant", Arc::new(model))
        .system_prompt("You are a helpful assistant. Answer questions concisely and accurately.")
        .tools(ToolSet::from_config(
            &["get_weather"],
            &runtime.config().tools,
        )?)
        .capture_content(runtime.config().telemetry.capture_content)
        .build();

    let outcome = agent.run(&question).await?;
    for call in &outcome.tool_calls {
        println!("{}({}) -> {}", call.name, call.arguments, call.result);
    }
    println!("\n{}\n", outcome.answer.trim());

    if let Some(trace_id) = &outcome.trace_id {
        print!(
            "{}",
            SpanTree::build(&runtime.trace_spans(trace_id)?).render()
        );
    }
    runtime.shutdown().await?;
    Ok(())
}
