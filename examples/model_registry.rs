//! Model registry — register two versions of an agent configuration, promote the first, serve
//! `models:/qa-agent@production` from a running process, promote the second, and watch the
//! served version change within the cache's time to live, without a restart.
//!
//! ```sh
//! cargo run --release --example model_registry
//! ```

use std::time::Duration;

use sextant_agent::SextantConfig;
use sextant_agent::registry::{AgentRegistry, ServedAgent};
use sextant_tracker::prompts::{load_prompt_files, push};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = SextantConfig::load(None)?;
    // The qa agent loads its prompt from the registry: make sure it is there.
    push(
        config.prompt_registry()?.as_ref(),
        &load_prompt_files("configs/prompts".as_ref())?,
        false,
    )
    .await?;

    let dir = tempfile::tempdir()?;
    let base = std::fs::read_to_string("configs/agents/qa.toml")?;
    let terse = dir.path().join("terse.toml");
    std::fs::write(&terse, base.replace("max_tokens = 120", "max_tokens = 24"))?;
    let registry = AgentRegistry::from_config(&config)?;
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
    let ttl = Duration::from_secs(2);
    let served = ServedAgent::new(
        registry.clone(),
        config.clone(),
        "models:/qa-agent@production".parse()?,
        ttl,
    );
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
        "production → {}; the running process notices within {ttl:?}",
        v2.uri()
    );
    tokio::time::sleep(ttl).await;
    let (agent, version) = served.current().await?;
    let outcome = agent.run(question).await?;
    println!(
        "\n{} answers ({} output tokens):\n{}",
        version.uri(),
        outcome.usage.output_tokens,
        outcome.answer.trim()
    );
    Ok(())
}
