//! Model registry — register two versions of an agent configuration, promote the first, serve
//! `models:/qa-agent@production` from a running process, promote the second, and watch the
//! served version change within the cache's time to live, without a restart.
//!
//! ```sh
//! cargo run --release --example model_registry
//! ```

use std::time::Duration;

use sextant_runtime::{Runtime, SextantConfig};
use sextant_tracker::prompts::{load_prompt_files, push};

/// How long the served process trusts the alias: short, so that the demo need not wait long.
const ALIAS_TTL: Duration = Duration::from_secs(2);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = SextantConfig::load(None)?;
    config.telemetry.capture_content = true; // a demo: message content on the spans
    config.tracking.model_alias_ttl_secs = ALIAS_TTL.as_secs_f64();
    let runtime = Runtime::start(config).await?;
    // The qa agent loads its prompt from the registry: make sure it is there.
    push(
        runtime.prompt_registry()?.as_ref(),
        &load_prompt_files("configs/prompts".as_ref())?,
        false,
    )
    .await?;

    let dir = tempfile::tempdir()?;
    let base = std::fs::read_to_string("configs/agents/qa.toml")?;
    let terse = dir.path().join("terse.toml");
    std::fs::write(&terse, base.replace("max_tokens = 120", "max_tokens = 24"))?;
    let registry = runtime.agent_registry()?;
    let v1 = registry
        .register("qa-agent", &terse, Some("terse: 24 tokens".into()))
        .await?;
    let v2 = registry
        .register(
            "qa-agent",
            "configs/agents/qa.toml".as_ref(),
            Some("roomy: 120 tokens".into()),
        )
        .await?;
    println!("registered {} and {}", v1.uri(), v2.uri());

    registry
        .models()
        .set_alias("qa-agent", "production", v1.version)
        .await?;
    let served = runtime.served_agent("models:/qa-agent@production".parse()?)?;
    let question = "Why is the sky blue?";
    let (agent, version) = served.current().await?;
    let outcome = agent.run(question).await?;
    println!(
        "\n{} answers ({} output tokens):\n{}\n",
        version.uri(),
        outcome.usage.output_tokens,
        outcome.answer.trim()
    );

    registry
        .models()
        .set_alias("qa-agent", "production", v2.version)
        .await?;
    println!(
        "production → {}; the running process notices within {ALIAS_TTL:?}",
        v2.uri()
    );
    tokio::time::sleep(ALIAS_TTL).await;
    let (agent, version) = served.current().await?;
    let outcome = agent.run(question).await?;
    println!(
        "\n{} answers ({} output tokens):\n{}",
        version.uri(),
        outcome.usage.output_tokens,
        outcome.answer.trim()
    );
    runtime.shutdown().await?;
    Ok(())
}
