//! Guardrails, typed answers and redaction on the embedded model, offline:
//!
//! 1. a question carrying a card number trips the `pii` guardrail on the input: the turn stops
//!    before any model call, says so safely, and trace search finds it by the guardrail's name;
//! 2. a question with an email address passes a `redact` guardrail: the model sees `<EMAIL_1>`;
//! 3. the `extract` agent answers JSON of its schema (a typed answer), checked before it returns.
//!
//! Content capture and PII redaction are on, so the spans hold placeholders, not the values.
//!
//! ```sh
//! cargo run --release --example guardrails
//! ```

use std::path::Path;

use sextant_agent::AgentConfig;
use sextant_agent::guardrails::GuardrailConfig;
use sextant_runtime::{Runtime, SextantConfig};
use sextant_tracker::{SpanTree, TraceFilter, TraceQuery};

const GUARDRAILS: &str = r#"
[[guardrails]]
name = "no_cards"
kind = "pii"
kinds = ["card", "iban"]
on = ["input"]
action = "block"
message = "Please don't share card or bank numbers here."

[[guardrails]]
name = "mask_contacts"
kind = "pii"
kinds = ["email", "phone"]
on = ["input", "tool_result"]
action = "redact"

[[guardrails]]
name = "brief"
kind = "max_length"
max_chars = 600
on = ["output"]
action = "warn"
"#;

#[derive(serde::Deserialize)]
struct Guardrails {
    guardrails: Vec<GuardrailConfig>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = SextantConfig::load(None)?;
    config.telemetry.capture_content = true;
    config.telemetry.redaction.pii = true;
    let runtime = Runtime::start(config).await?;

    let mut assistant = AgentConfig::builtin_default();
    assistant.guardrails = toml::from_str::<Guardrails>(GUARDRAILS)?.guardrails;
    let agent = runtime.build_agent(&assistant, None).await?;

    for question in [
        "My card is 4111 1111 1111 1111. What is 12 * 7 + 3?",
        "I am ada@example.com. What is 12 * 7 + 3? Use the calculator.",
    ] {
        let outcome = agent.run(question).await?;
        println!("> {question}\n{}", outcome.answer);
        if let Some(blocked) = &outcome.blocked {
            println!("  (blocked by `{}`: {})", blocked.guardrail, blocked.reason);
        }
        runtime.flush()?;
        if let Some(trace) = &outcome.trace_id {
            println!("{}", SpanTree::build(&runtime.trace_spans(trace)?).render());
        }
    }

    let blocked = runtime.trace_store()?.search(&TraceQuery {
        filter: TraceFilter::parse("attributes.sextant.guardrail.blocked = 'no_cards'")?,
        ..TraceQuery::default()
    })?;
    println!(
        "traces blocked by no_cards in this data dir so far: {}\n",
        blocked.traces.len()
    );

    let extract = runtime
        .build_agent(
            &AgentConfig::load(Path::new("configs/agents/extract.toml"))?,
            None,
        )
        .await?;
    let outcome = extract
        .run("Hi, I'm Grace Hopper from Navy Labs, a large team. Our compiler docs need a review, no rush.")
        .await?;
    println!(
        "extract → {}",
        serde_json::to_string_pretty(&outcome.output.unwrap_or_default())?
    );
    runtime.shutdown().await?;
    Ok(())
}
