//! `sextant sessions`: list and replay stored conversations.

use sextant_runtime::Runtime;

use crate::cli::SessionsCommand;

pub async fn sessions(runtime: &Runtime, command: SessionsCommand) -> anyhow::Result<()> {
    let store = runtime.session_store()?;
    match command {
        SessionsCommand::List { limit, json } => {
            let sessions = store.list(limit).await?;
            if json {
                let value: Vec<serde_json::Value> = sessions
                    .iter()
                    .map(|(s, turns)| serde_json::json!({ "session": s, "turns": turns }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else if sessions.is_empty() {
                println!("no sessions yet (start one with `sextant chat`)");
            } else {
                println!(
                    "{:<32}  {:>5}  {:<16} {:<12}",
                    "session", "turns", "agent", "user"
                );
                for (session, turns) in sessions {
                    println!(
                        "{:<32}  {turns:>5}  {:<16} {:<12}",
                        session.id,
                        session.agent,
                        session.user_id.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        SessionsCommand::Show { id, json } => {
            let session = store.get(&id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&session)?);
                return Ok(());
            }
            println!(
                "session {}  agent {}  user {}",
                session.id,
                session.agent,
                session.user_id.as_deref().unwrap_or("-")
            );
            if let Some(summary) = &session.summary {
                println!();
                println!(
                    "summary of the first {} turns: {summary}",
                    session.summarized_turns
                );
            }
            for (i, turn) in session.turns.iter().enumerate() {
                println!();
                println!(
                    "[{}] trace {}",
                    i + 1,
                    turn.trace_id.as_deref().unwrap_or("-")
                );
                println!("you> {}", turn.question);
                println!("{}", turn.answer.trim());
            }
        }
    }
    Ok(())
}
