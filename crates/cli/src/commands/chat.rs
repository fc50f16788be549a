//! `sextant chat`: a conversation in the terminal, streamed, stored as a session that a later
//! `sextant chat --session ID` resumes.

use std::io::Write;
use std::sync::Arc;

use sextant_agent::approval::{Approver, Decision};
use sextant_agent::session::run_session_turn;
use sextant_agent::turn_state::PendingApproval;
use sextant_runtime::{Runtime, SextantConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::io::{Lines, Stdin};
use tokio::sync::Mutex;

use crate::cli::ChatArgs;

pub async fn chat(config: SextantConfig, args: ChatArgs) -> anyhow::Result<()> {
    let runtime = Runtime::start(config).await?;
    let store = runtime.session_store()?;
    let (agent_config, model_version) = runtime.agent_config(args.agent.as_deref()).await?;
    let mut session = match &args.session {
        Some(id) => {
            let session = store.get(id).await?;
            if args.user.is_some() && args.user != session.user_id {
                anyhow::bail!(
                    "session {id} belongs to user {:?}; resume it without --user or with the same one",
                    session.user_id.as_deref().unwrap_or("(none)")
                );
            }
            session
        }
        None => {
            store
                .create(&agent_config.name, args.user.as_deref())
                .await?
        }
    };
    let mut agent = std::sync::Arc::new(
        runtime
            .build_agent(&agent_config, model_version.as_ref())
            .await?,
    );
    eprintln!(
        "session {}  ({} earlier turns; resume with `sextant chat --session {}`; /exit or Ctrl-D ends)",
        session.id,
        session.turns.len(),
        session.id
    );

    let print_stream = |piece: &str| {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(piece.as_bytes());
        let _ = out.flush();
    };
    let lines = Arc::new(Mutex::new(BufReader::new(tokio::io::stdin()).lines()));
    let approver = Arc::new(TerminalApprover {
        lines: lines.clone(),
        who: args.user.clone().or_else(|| std::env::var("USER").ok()),
    });
    loop {
        eprint!("you> ");
        let Some(line) = lines.lock().await.next_line().await? else {
            break;
        };
        let question = line.trim();
        if question.is_empty() {
            continue;
        }
        if question == "/exit" || question == "/quit" {
            break;
        }
        eprint!("{}> ", agent.name());
        match run_session_turn(
            &store,
            &mut session,
            &agent,
            &runtime.config().sessions,
            question,
            Some(approver.clone()),
            Some(&print_stream),
        )
        .await
        {
            Ok(outcome) => {
                println!();
                for waiting in &outcome.pending_approvals {
                    eprintln!(
                        "  (call {} of {} waits: `sextant turns approve|deny {} {}`)",
                        waiting.call_id,
                        waiting.tool,
                        outcome.turn_id.as_deref().unwrap_or("-"),
                        waiting.call_id
                    );
                }
                if let Some(id) = &outcome.trace_id {
                    eprintln!("  (trace {})", &id[..12.min(id.len())]);
                }
                // A handoff: the agent that answered continues the conversation.
                if outcome.agent != agent.name()
                    && let Some(target) = agent.handoff_target(&outcome.agent).await
                {
                    eprintln!(
                        "  ({} handed the conversation to {})",
                        agent.name(),
                        outcome.agent
                    );
                    agent = target;
                }
            }
            // A failed turn is reported; the conversation goes on.
            Err(error) => eprintln!("error: {error}"),
        }
    }
    if let Err(error) = runtime.flush() {
        tracing::warn!("exporting the session's telemetry failed: {error}");
    }
    runtime.shutdown().await?;
    eprintln!("session {} has {} turns", session.id, session.turns.len());
    Ok(())
}

/// Asks in the terminal whether a call that needs approval may run.
struct TerminalApprover {
    lines: Arc<Mutex<Lines<BufReader<Stdin>>>>,
    who: Option<String>,
}

#[async_trait::async_trait]
impl Approver for TerminalApprover {
    async fn decide(&self, agent: &str, call: &PendingApproval) -> Option<Decision> {
        let mut lines = self.lines.lock().await;
        eprintln!();
        eprintln!(
            "  {agent} wants to call {} {}\n  ({})",
            call.tool, call.arguments, call.reason
        );
        loop {
            eprint!("  approve? [y]es / [n]o REASON / [e]dit JSON / [l]ater: ");
            let line = lines.next_line().await.ok().flatten()?;
            let line = line.trim();
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            match word {
                "y" | "yes" => return Some(Decision::Approve),
                "n" | "no" => {
                    return Some(Decision::Deny {
                        message: (!rest.trim().is_empty()).then(|| rest.trim().to_owned()),
                    });
                }
                "e" | "edit" => match serde_json::from_str(rest) {
                    Ok(arguments) => return Some(Decision::Edit { arguments }),
                    Err(error) => eprintln!("  not JSON: {error}"),
                },
                "l" | "later" => return None,
                _ => {}
            }
        }
    }

    fn who(&self) -> Option<String> {
        self.who.clone()
    }
}
