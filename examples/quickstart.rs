//! The smallest complete Sextant program: an agent with a calculator on the embedded local model,
//! built in code, its turn traced into the data dir's trace store and printed as a span tree.
//!
//! ```sh
//! cargo run --release --example quickstart -- "What is 12 * 7 + 3? Use the calculator."
//! sextant traces show     # the same tree, afterwards (the latest trace)
//! ```

use std::sync::Arc;

use sextant_agent::Agent;
use sextant_agent::providers::local::{LocalChatModel, LocalModelOptions};
use sextant_runtime::{Runtime, SextantConfig};
use sextant_tools::{ToolSet, builtin::Calculator};
use sextant_tracker::SpanTree;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What is 12 * 7 + 3? Use the calculator.".into());

    let mut config = SextantConfig::load(None)?;
    config.telemetry.capture_content = true; // a demo: message content on the spans
    let runtime = Runtime::start(config).await?;

    // The embedded model, pulled into the model cache on first use.
    let model =
        LocalChatModel::load_from_cache(&runtime.model_cache()?, LocalModelOptions::default())
            .await?;
    let agent = Agent::builder("quickstart", Arc::new(model))
        .system_prompt("Use the calculator for arithmetic, then state the result in one sentence.")
        .tools(ToolSet::new().with(Calculator))
        .capture_content(runtime.config().telemetry.capture_content)
        .build();

    let outcome = agent.run(&question).await?;
    println!("{}\n", outcome.answer.trim());

    if let Some(trace_id) = &outcome.trace_id {
        print!(
            "{}",
            SpanTree::build(&runtime.trace_spans(trace_id)?).render()
        );
    }
    runtime.shutdown().await?;
    Ok(())
}
