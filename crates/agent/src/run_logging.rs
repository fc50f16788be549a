//! Agent auto-logging: one agent execution as one tracking run — params (agent, model, provider,
//! tools, prompt versions, registered version), metrics (latency, tokens, tool calls, steps), the
//! input/output pair with its tool calls as `interaction.json`, and the trace id as a tag.
//!
//! `interaction.json` follows the agent's content switch, as its spans do: without content capture
//! it holds how the turn went (stop reason, tool names, errors' types, durations, prompt versions,
//! trace id) but no question, answer, tool arguments, tool results or sources.

use std::time::Duration;

use serde_json::json;
use sextant_tracker::tracking::{ActiveRun, RunStatus};

use crate::agent::{Agent, AgentError, AgentOutcome};

/// The tag holding the turn's trace id (32 hex digits).
pub const TRACE_ID_TAG: &str = "sextant.trace_id";
/// The artifact holding the input, the output and the tool calls (their content only when the
/// agent captures content).
pub const INTERACTION_ARTIFACT: &str = "interaction.json";

/// Logs what `agent` was and did for `question` to `run`; the status the run should end with.
pub fn log_turn(
    run: &ActiveRun,
    agent: &Agent,
    question: &str,
    result: Result<&AgentOutcome, &AgentError>,
    latency: Duration,
) -> RunStatus {
    let capture = agent.captures_content();
    let tools: Vec<&str> = agent.tools().iter().map(|t| t.name()).collect();
    let mut params = vec![
        ("agent".to_owned(), agent.name().to_owned()),
        ("provider".to_owned(), agent.model().provider().to_owned()),
        ("model".to_owned(), agent.model().model().to_owned()),
        ("tools".to_owned(), tools.join(",")),
    ];
    if let Some(version) = agent.model_version() {
        params.push(("agent_version".to_owned(), version.to_owned()));
    }
    let mut metrics = vec![("latency_ms".to_owned(), latency.as_secs_f64() * 1e3)];
    let interaction = match result {
        Ok(outcome) => {
            params.extend(
                outcome
                    .prompt_versions
                    .iter()
                    .map(|p| (format!("prompt.{}", p.name), p.version.to_string())),
            );
            metrics.extend([
                ("input_tokens".to_owned(), outcome.usage.input_tokens as f64),
                (
                    "output_tokens".to_owned(),
                    outcome.usage.output_tokens as f64,
                ),
                (
                    "total_tokens".to_owned(),
                    (outcome.usage.input_tokens + outcome.usage.output_tokens) as f64,
                ),
                ("tool_calls".to_owned(), outcome.tool_calls.len() as f64),
                (
                    "cached_input_tokens".to_owned(),
                    outcome.usage.cached_input_tokens as f64,
                ),
                (
                    "reasoning_tokens".to_owned(),
                    outcome.usage.reasoning_tokens as f64,
                ),
                ("steps".to_owned(), f64::from(outcome.steps)),
                ("citations".to_owned(), outcome.citations.len() as f64),
            ]);
            // No price is not a cost of 0: the metric is absent.
            if let Some(cost) = outcome.usage.cost() {
                metrics.push(("cost".to_owned(), cost));
            }
            if let Some(trace_id) = &outcome.trace_id {
                run.set_tags([(TRACE_ID_TAG, trace_id.as_str())]);
            }
            if capture {
                json!({
                    "input": question,
                    "output": outcome.answer,
                    "tool_calls": outcome.tool_calls,
                    "citations": outcome.citations,
                    "prompt_versions": outcome.prompt_versions,
                    "stop_reason": outcome.stop_reason,
                    "trace_id": outcome.trace_id,
                })
            } else {
                let tool_calls: Vec<_> = outcome
                    .tool_calls
                    .iter()
                    .map(|call| {
                        json!({
                            "id": call.id,
                            "name": call.name,
                            "is_error": call.is_error,
                            "error_type": call.error_type,
                            "duration_ms": call.duration_ms,
                        })
                    })
                    .collect();
                json!({
                    "content_captured": false,
                    "tool_calls": tool_calls,
                    "prompt_versions": outcome.prompt_versions,
                    "stop_reason": outcome.stop_reason,
                    "trace_id": outcome.trace_id,
                })
            }
        }
        Err(error) => {
            run.set_tags([("error.type", error.error_type())]);
            if capture {
                json!({ "input": question, "error": error.to_string() })
            } else {
                // The same summary the turn's span status carries.
                json!({ "content_captured": false, "error": error.to_string() })
            }
        }
    };
    run.log_params(params);
    run.log_metrics(metrics, 0);
    run.log_artifact(
        INTERACTION_ARTIFACT,
        serde_json::to_vec_pretty(&interaction).unwrap_or_default(),
    );
    if result.is_ok() {
        RunStatus::Finished
    } else {
        RunStatus::Failed
    }
}
