//! Multi-turn conversation — the seed's third demo: a conversation with a user id and a session
//! id, each turn one trace carrying both (so MLflow groups them by session and user), then the
//! session's traces listed from the data dir's trace store.
//!
//! Offline on the embedded model; the session is stored in the data dir, so
//! `sextant chat --session ID` can carry it on.
//!
//! ```sh
//! cargo run --release --example multi_turn
//! ```

use std::sync::Arc;

use sextant_agent::Agent;
use sextant_agent::providers::local::{LocalChatModel, LocalModelOptions};
use sextant_agent::session::{HistoryWindow, SessionsConfig, run_session_turn};
use sextant_runtime::{Runtime, SextantConfig};
use sextant_tracker::SpanTree;

const CONVERSATION: [&str; 3] = [
    "Hi! My name is Ada and I like astronomy.",
    "Which planet is the largest?",
    "What did I say my name was?",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = SextantConfig::load(None)?;
    config.telemetry.capture_content = true; // a demo: message content on the spans
    let runtime = Runtime::start(config).await?;

    let model =
        LocalChatModel::load_from_cache(&runtime.model_cache()?, LocalModelOptions::default())
            .await?;
    let agent = Agent::builder("assistant", Arc::new(model))
        .system_prompt("You are a friendly assistant. Answer in one or two sentences.")
        .capture_content(runtime.config().telemetry.capture_content)
        .build();

    let sessions = runtime.session_store()?;
    let mut session = sessions.create(agent.name(), Some("ada")).await?;
    println!("session {}  user ada\n", session.id);
    for question in CONVERSATION {
        let outcome = run_session_turn(
            &sessions,
            &mut session,
            &agent,
            &SessionsConfig {
                window: HistoryWindow::Turns { max_turns: 4 },
                ..SessionsConfig::default()
            },
            question,
            None,
            None,
        )
        .await?;
        println!("ada> {question}\n{}\n", outcome.answer.trim());
    }

    println!("the session's traces:");
    for turn in &session.turns {
        let Some(trace_id) = &turn.trace_id else {
            continue;
        };
        let spans = runtime.trace_spans(trace_id)?;
        let root = spans.iter().find(|s| s.parent_span_id.is_none());
        let attribute = |key: &str| {
            root.and_then(|r| r.attributes.get(key))
                .and_then(|v| v.as_str())
                .unwrap_or("-")
                .to_owned()
        };
        println!(
            "{trace_id}  session.id={}  user.id={}",
            attribute("session.id"),
            attribute("user.id")
        );
        print!("{}", SpanTree::build(&spans).render());
    }
    runtime.shutdown().await?;
    Ok(())
}
