//! The smallest complete Sextant program: an agent with a calculator on the embedded local model,
//! its turn traced into a local trace store and printed as a span tree.
//!
//! ```sh
//! cargo run --release --example quickstart -- "What is 12 * 7 + 3? Use the calculator."
//! ```

use std::sync::Arc;

use sextant_agent::providers::local::{LocalChatModel, LocalModelOptions};
use sextant_agent::{Agent, model_files::ModelCache};
use sextant_tools::{ToolSet, builtin::Calculator};
use sextant_tracker::{SpanTree, TelemetryConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What is 12 * 7 + 3? Use the calculator.".into());

    // Telemetry: spans go to a local SQLite trace store; the guard flushes on every exit path.
    let store_dir = tempfile::tempdir()?;
    let telemetry = sextant_tracker::init(&TelemetryConfig {
        local_store: Some(store_dir.path().join("traces.db")),
        capture_content: true,
        ..TelemetryConfig::default()
    })?;

    // The embedded model, pulled into the model cache on first use.
    let model =
        LocalChatModel::load_from_cache(&ModelCache::from_env()?, LocalModelOptions::default())
            .await?;
    let agent = Agent::builder("quickstart", Arc::new(model))
        .system_prompt("Use the calculator for arithmetic, then state the result in one sentence.")
        .tools(ToolSet::new().with(Calculator))
        .capture_content(true)
        .build();

    let outcome = agent.run(&question).await?;
    println!("{}\n", outcome.answer.trim());

    telemetry.force_flush()?;
    if let (Some(store), Some(trace_id)) = (telemetry.trace_store(), &outcome.trace_id) {
        print!("{}", SpanTree::build(&store.spans(trace_id)?).render());
    }
    telemetry.shutdown()?;
    Ok(())
}
