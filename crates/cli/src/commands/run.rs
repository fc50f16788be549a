//! `sextant run`: one question, one answer, one trace.

use std::io::Write;

use sextant_agent::{AgentConfig, SextantConfig, TurnContext};
use sextant_tracker::SpanTree;

use crate::cli::RunArgs;

pub async fn run(config: &SextantConfig, args: RunArgs) -> anyhow::Result<()> {
    let agent_config = match args.agent.as_deref().or(config.agent.default.as_deref()) {
        Some(path) => AgentConfig::load(path)?,
        None => AgentConfig::builtin_default(),
    };
    let guard = crate::telemetry::init(config).await?;
    let agent = agent_config.build(config).await?;
    let question = args.question.join(" ");

    let print_stream = |piece: &str| {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(piece.as_bytes());
        let _ = out.flush();
    };
    let streaming = args.stream && !args.json;
    let outcome = agent
        .run_turn(
            &[],
            &question,
            &TurnContext::default(),
            streaming.then_some(&print_stream as _),
        )
        .await?;
    // Everything the turn produced reaches the trace store before it is read back. A backend that
    // refuses the export never fails the turn: the failure is logged and counted, the local store
    // still has the spans.
    if let Err(error) = guard.force_flush() {
        tracing::warn!("exporting the turn's telemetry failed: {error}");
    }
    // The registry records which prompt versions made this trace (on MLflow: the trace's linked
    // prompts). A failure costs the link, not the answer.
    if let (Some(prompts), Some(trace_id)) = (agent.prompts(), &outcome.trace_id)
        && !outcome.prompt_versions.is_empty()
        && let Err(error) = prompts
            .registry
            .link_trace(trace_id, &outcome.prompt_versions)
            .await
    {
        tracing::warn!("linking trace {trace_id} to its prompt versions failed: {error}");
    }

    let spans = match (&outcome.trace_id, guard.trace_store()) {
        (Some(id), Some(store)) => store.spans(id).unwrap_or_default(),
        _ => Vec::new(),
    };
    if args.json {
        let value = serde_json::json!({
            "answer": outcome.answer,
            "trace_id": outcome.trace_id,
            "agent": agent.name(),
            "provider": agent.model().provider(),
            "model": agent.model().model(),
            "steps": outcome.steps,
            "stop_reason": outcome.stop_reason,
            "usage": outcome.usage,
            "tool_calls": outcome.tool_calls,
            "citations": outcome.citations,
            "prompt_versions": outcome.prompt_versions,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        if streaming {
            // The streamed text is the model's; the list of cited sources is added after it.
            if let Some(at) = outcome.answer.rfind("\n\nSources:\n")
                && !outcome.citations.is_empty()
            {
                print!("{}", &outcome.answer[at..]);
            }
            println!();
        } else {
            println!("{}", outcome.answer.trim());
        }
        if !args.no_tree && !spans.is_empty() {
            println!();
            println!("{}", SpanTree::build(&spans).render().trim_end());
        }
        if let Some(id) = &outcome.trace_id {
            eprintln!(
                "trace {id}  (sextant traces show {})",
                &id[..12.min(id.len())]
            );
        }
    }
    let report = guard.shutdown()?;
    if report.dropped > 0 {
        eprintln!(
            "warning: {} spans were dropped because the export queue was full",
            report.dropped
        );
    }
    Ok(())
}
