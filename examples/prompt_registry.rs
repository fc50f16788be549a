//! Prompt registry — the seed's fifth demo: register `qa-prompt` v1, improve it as v2 with a
//! commit message, move `production` from v1 to v2, run an agent that loads
//! `prompts:/qa-prompt@production`, and show that its trace records v2.
//!
//! The registry is the one your configuration names: the embedded one in the data directory, or an
//! MLflow server with `SEXTANT_TRACKING_URI=http://127.0.0.1:5000` (then `mlflow.genai.load_prompt(
//! "prompts:/qa-prompt@production")` in Python returns the same version). A version is registered
//! only when its template differs from the latest, so running the demo twice adds nothing. On
//! MLflow the turn's trace goes to the server too, linked to the version it used.
//!
//! ```sh
//! cargo run --release --example prompt_registry -- "What is the capital of France?"
//! ```

use std::sync::Arc;

use sextant_agent::Agent;
use sextant_agent::prompt::AgentPrompts;
use sextant_agent::providers::local::{LocalChatModel, LocalModelOptions};
use sextant_runtime::{Runtime, SextantConfig};
use sextant_tracker::SpanTree;
use sextant_tracker::prompts::{
    ChatMessageTemplate, NewPromptVersion, PromptRegistry, PromptTemplate, PromptVersion,
    unified_diff,
};

/// Registers `version` as the next version of `name`, unless the latest already has its content.
async fn register_if_changed(
    registry: &dyn PromptRegistry,
    name: &str,
    version: NewPromptVersion,
) -> anyhow::Result<PromptVersion> {
    if let Ok(latest) = registry
        .load(&format!("prompts:/{name}@latest").parse()?)
        .await
        && latest.same_content(&version)
    {
        return Ok(latest);
    }
    Ok(registry.register(name, version).await?)
}

fn qa_template(system: &str) -> PromptTemplate {
    PromptTemplate::chat([
        ChatMessageTemplate::new("system", system),
        ChatMessageTemplate::new("user", "{{ question }}"),
    ])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What is the capital of France?".into());
    let mut config = SextantConfig::load(None)?;
    config.telemetry.capture_content = true; // a demo: message content on the spans
    let runtime = Runtime::start(config).await?;
    let registry = runtime.prompt_registry()?;
    println!("registry: {}", registry.backend());

    let v1 = register_if_changed(
        registry.as_ref(),
        "qa-prompt",
        NewPromptVersion::new(qa_template(
            "You are a helpful assistant. Answer the user's question concisely.",
        ))
        .commit_message("Initial QA prompt template")
        .tag("task", "question-answering"),
    )
    .await?;
    registry
        .set_alias("qa-prompt", "production", v1.version)
        .await?;
    println!("{} is production: {:?}", v1.uri(), v1.commit_message);

    let v2 = register_if_changed(
        registry.as_ref(),
        "qa-prompt",
        NewPromptVersion::new(qa_template(
            "You are a helpful assistant. Answer the user's question in one plain sentence. If you do not know, say so.",
        ))
        .commit_message("Ask for one plain sentence and an honest 'I don't know'")
        .tag("task", "question-answering"),
    )
    .await?;
    print!("{}", unified_diff(&v1, &v2));
    registry
        .set_alias("qa-prompt", "production", v2.version)
        .await?;
    println!("production → {}\n", v2.uri());

    let model =
        LocalChatModel::load_from_cache(&runtime.model_cache()?, LocalModelOptions::default())
            .await?;
    let agent = Agent::builder("qa", Arc::new(model))
        .prompts(AgentPrompts {
            registry: registry.clone(),
            system: None,
            template: Some("prompts:/qa-prompt@production".parse()?),
            variables: Default::default(),
        })
        .capture_content(runtime.config().telemetry.capture_content)
        .build();
    let outcome = agent.run(&question).await?;
    println!("{}\n", outcome.answer.trim());
    for used in &outcome.prompt_versions {
        println!("the turn used {used}");
    }

    if let Some(trace_id) = &outcome.trace_id {
        // Read first: it exports the trace, so that MLflow has it before the link.
        let spans = runtime.trace_spans(trace_id)?;
        registry
            .link_trace(trace_id, &outcome.prompt_versions)
            .await?;
        print!("{}", SpanTree::build(&spans).render());
    }
    runtime.shutdown().await?;
    Ok(())
}
