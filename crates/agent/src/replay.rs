//! Deterministic replay: re-run a recorded turn with the agent as it is now, serving the model's
//! responses and the tools' results from the recording instead of calling them, and report the
//! first point where the new run leaves the recorded one — a different request to the model
//! (prompt, history, tool results), a different set of tools offered, or a different answer —
//! with a diff. No tokens are spent; a replay is a regression test.
//!
//! The recording is the turn's state in the turn store ([`TurnState`]): the whole conversation,
//! every model response and tool result, whatever the content-capture switch says for spans
//! (the turn store is local data, like the session store). A replay is traced as
//! `replay {agent}` with `sextant.replay.of` naming the recorded trace.
//!
//! Not replayed (the report says so): turns that are not completed, turns that ended at
//! `max_steps` (their last model response was not run, so not recorded), and handoffs.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::Serialize;
use sextant_tools::{Tool, ToolError, ToolSet};
use sextant_tracker::conventions as sc;
use tracing::Instrument;

use crate::agent::{Agent, StopReason};
use crate::chat::{
    ChatModel, ChatRequest, ChatResponse, FinishReason, Message, Role, ToolCall, Usage,
};
use crate::error::ChatError;
use crate::turn_state::{TurnState, TurnStatus};

/// Why a turn cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The recording does not hold what a replay needs.
    #[error("turn {turn} cannot be replayed: {reason}")]
    NotReplayable {
        /// The turn.
        turn: String,
        /// Why.
        reason: String,
    },
}

/// Where a replay left its recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Divergence {
    /// The tools offered to the model differ.
    Tools {
        /// The model call (from 1).
        step: u32,
        /// Offered now, not then.
        added: Vec<String>,
        /// Offered then, not now.
        removed: Vec<String>,
    },
    /// A request to the model differs from the recorded one.
    Request {
        /// The model call (from 1).
        step: u32,
        /// The first message that differs (0 = the first of the request).
        message: usize,
        /// A unified diff of that message, recorded then replayed.
        diff: String,
    },
    /// The agent asked the model more often than the recording did.
    ExtraCall {
        /// The model call (from 1) that has no recorded response.
        step: u32,
    },
    /// The turn failed where the recorded one did not.
    Failed {
        /// Why.
        error: String,
    },
    /// Same requests, a different final answer (citations, post-processing).
    Answer {
        /// A unified diff of the answer, recorded then replayed.
        diff: String,
    },
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tools {
                step,
                added,
                removed,
            } => write!(
                f,
                "model call {step}: the tools offered differ (added: {}; removed: {})",
                list(added),
                list(removed)
            ),
            Self::Request {
                step,
                message,
                diff,
            } => write!(
                f,
                "model call {step}: the request differs from message {message} on\n{diff}"
            ),
            Self::ExtraCall { step } => write!(
                f,
                "model call {step}: the recorded turn had answered by now, the replay asks again"
            ),
            Self::Failed { error } => write!(f, "the replayed turn failed: {error}"),
            Self::Answer { diff } => write!(f, "the answer differs\n{diff}"),
        }
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// What a replay found.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// The recorded turn.
    pub turn_id: String,
    /// Its trace.
    pub recorded_trace_id: Option<String>,
    /// The replay's own trace.
    pub trace_id: Option<String>,
    /// The agent replayed.
    pub agent: String,
    /// Model calls served from the recording.
    pub model_calls: u32,
    /// Tool calls served from the recording.
    pub tool_calls: usize,
    /// The first divergence; `None`: the replay matched the recording.
    pub divergence: Option<Divergence>,
    /// The replayed answer, when the turn finished.
    pub answer: Option<String>,
}

/// One recorded model call: what the model was sent, and what it answered.
struct RecordedCall {
    request: Vec<Message>,
    response: Message,
}

/// The recorded model: serves the responses in order while each request matches the recorded
/// one, and notes the first that does not.
struct ReplayModel {
    model: String,
    calls: Vec<RecordedCall>,
    tools: Vec<String>,
    served: Mutex<usize>,
    divergence: Arc<Mutex<Option<Divergence>>>,
}

impl ReplayModel {
    fn diverged(&self, divergence: Divergence) -> ChatError {
        let mut slot = self.divergence.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(divergence);
        ChatError::Request {
            provider: "replay".into(),
            message: "the replay left its recording here".into(),
        }
    }
}

#[async_trait]
impl ChatModel for ReplayModel {
    fn provider(&self) -> &str {
        "replay"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ChatError> {
        let index = {
            let mut served = self.served.lock().unwrap_or_else(|e| e.into_inner());
            *served += 1;
            *served - 1
        };
        let step = index as u32 + 1;
        let Some(recorded) = self.calls.get(index) else {
            return Err(self.diverged(Divergence::ExtraCall { step }));
        };
        let mut offered: Vec<String> = request.tools.iter().map(|t| t.name.clone()).collect();
        offered.sort();
        if !self.tools.is_empty() && offered != self.tools {
            let added = offered
                .iter()
                .filter(|t| !self.tools.contains(t))
                .cloned()
                .collect();
            let removed = self
                .tools
                .iter()
                .filter(|t| !offered.contains(t))
                .cloned()
                .collect();
            return Err(self.diverged(Divergence::Tools {
                step,
                added,
                removed,
            }));
        }
        let first_difference = (0..recorded.request.len().max(request.messages.len()))
            .find(|&i| recorded.request.get(i) != request.messages.get(i));
        if let Some(message) = first_difference {
            let diff = unified_diff(
                &recorded.request.get(message).map(shown).unwrap_or_default(),
                &request.messages.get(message).map(shown).unwrap_or_default(),
            );
            return Err(self.diverged(Divergence::Request {
                step,
                message,
                diff,
            }));
        }
        Ok(ChatResponse {
            content: recorded.response.content.clone(),
            tool_calls: recorded.response.tool_calls.clone(),
            usage: Usage::default(),
            finish_reason: if recorded.response.tool_calls.is_empty() {
                FinishReason::Stop
            } else {
                FinishReason::ToolCalls
            },
            model: self.model.clone(),
            id: None,
        })
    }
}

/// A message as a diff shows it: its role, then its text, tool calls and call id.
fn shown(message: &Message) -> String {
    let mut text = format!("[{}]\n{}\n", message.role, message.content);
    for call in &message.tool_calls {
        text.push_str(&format!(
            "call {} {}({})\n",
            call.id, call.name, call.arguments
        ));
    }
    if let Some(id) = &message.tool_call_id {
        text.push_str(&format!("(result of {id})\n"));
    }
    text
}

fn unified_diff(recorded: &str, replayed: &str) -> String {
    similar::TextDiff::from_lines(recorded, replayed)
        .unified_diff()
        .header("recorded", "replayed")
        .to_string()
}

/// A tool that answers from the recording: the recorded result of the next call with the same
/// arguments (in order), as the tool's schema and description stay the agent's own.
struct ReplayTool {
    name: String,
    description: String,
    parameters: serde_json::Value,
    results: Mutex<VecDeque<(serde_json::Value, String)>>,
    served: Arc<Mutex<usize>>,
}

#[async_trait]
impl Tool for ReplayTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> serde_json::Value {
        self.parameters.clone()
    }

    fn idempotent(&self) -> bool {
        true
    }

    async fn call(&self, arguments: serde_json::Value) -> Result<String, ToolError> {
        let result = {
            let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
            let at = results.iter().position(|(args, _)| *args == arguments);
            at.and_then(|at| results.remove(at))
        };
        let Some((_, text)) = result else {
            return Err(ToolError::Failed(format!(
                "replay: the recording has no result of `{}` with these arguments",
                self.name
            )));
        };
        *self.served.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        // What the model was told of a failure was `error: …`: the same text comes back.
        match text.strip_prefix("error: ") {
            Some(message) => Err(ToolError::Failed(message.to_owned())),
            None => Ok(text),
        }
    }
}

/// A recorded tool call and what the model was told of it.
type RecordedResult = (ToolCall, String);

/// The model calls and tool results `state` recorded.
fn recorded_calls(
    state: &TurnState,
) -> Result<(Vec<RecordedCall>, Vec<RecordedResult>), ReplayError> {
    let not = |reason: String| ReplayError::NotReplayable {
        turn: state.id.clone(),
        reason,
    };
    match (state.status, state.stop_reason) {
        (TurnStatus::Completed, Some(StopReason::Answered)) => {}
        (TurnStatus::Completed, Some(StopReason::MaxSteps)) => {
            return Err(not(
                "it ended at max_steps, so its last model response was never run".into(),
            ));
        }
        (status, _) => {
            return Err(not(format!(
                "it is {}, and only a completed turn is a recording",
                status.as_str()
            )));
        }
    }
    let (start, len) = state.history;
    let first_response = state
        .messages
        .iter()
        .enumerate()
        .skip(start + len)
        .find(|(_, m)| m.role == Role::Assistant)
        .map(|(i, _)| i)
        .ok_or_else(|| not("its conversation holds no model response".into()))?;
    let mut calls = Vec::new();
    let mut results = Vec::new();
    let mut pending: Vec<ToolCall> = Vec::new();
    for (i, message) in state.messages.iter().enumerate().skip(first_response) {
        match message.role {
            Role::Assistant => {
                if message
                    .tool_calls
                    .iter()
                    .any(|c| c.name.starts_with(crate::agent::HANDOFF_PREFIX))
                {
                    return Err(not("it handed the conversation to another agent".into()));
                }
                calls.push(RecordedCall {
                    request: state.messages[..i].to_vec(),
                    response: message.clone(),
                });
                pending = message.tool_calls.clone();
            }
            Role::Tool => {
                if let Some(call) = pending
                    .iter()
                    .find(|c| Some(&c.id) == message.tool_call_id.as_ref())
                {
                    results.push((call.clone(), message.content.clone()));
                }
            }
            _ => {}
        }
    }
    Ok((calls, results))
}

/// Replays the recorded turn `state` with `agent` as it is now; see the [module docs](self).
pub async fn replay(agent: Agent, state: &TurnState) -> Result<ReplayReport, ReplayError> {
    let (calls, results) = recorded_calls(state)?;
    let model_calls = calls.len() as u32;
    let divergence = Arc::new(Mutex::new(None));
    let served_tools = Arc::new(Mutex::new(0));
    // The agent's tools (and agents called as tools), answering from the recording.
    let definitions = agent.offered_tools();
    let mut tools = ToolSet::new().with_max_parallel(agent.tools().max_parallel());
    for definition in definitions {
        if definition.name.starts_with(crate::agent::HANDOFF_PREFIX) {
            continue;
        }
        let recorded = results
            .iter()
            .filter(|(call, _)| call.name == definition.name)
            .map(|(call, text)| {
                (
                    serde_json::from_str(&call.arguments).unwrap_or(serde_json::Value::Null),
                    text.clone(),
                )
            })
            .collect();
        tools.insert(Arc::new(ReplayTool {
            name: definition.name,
            description: definition.description,
            parameters: definition.parameters,
            results: Mutex::new(recorded),
            served: served_tools.clone(),
        }));
    }
    let model = Arc::new(ReplayModel {
        model: agent.model().model().to_owned(),
        calls,
        tools: {
            let mut tools = state.tools.clone();
            tools.sort();
            tools
        },
        served: Mutex::new(0),
        divergence: divergence.clone(),
    });
    let name = agent.name().to_owned();
    let replaying = agent.replaying(model, tools);
    let span = tracing::info_span!(
        "replay",
        { sc::OTEL_NAME } = %format!("replay {name}"),
        { sc::OTEL_KIND } = "internal",
        { sc::GEN_AI_AGENT_NAME } = %name,
        { sc::SEXTANT_REPLAY_OF } = state.trace_id.as_deref(),
        { sc::SEXTANT_TURN_ID } = %state.id,
        { sc::SEXTANT_REPLAY_DIVERGED } = tracing::field::Empty,
    );
    let trace_id = sextant_tracker::current_trace_id(&span);
    let result = replaying
        .run_turn(state.history(), &state.question, &Default::default(), None)
        .instrument(span.clone())
        .await;
    let recorded = divergence.lock().unwrap_or_else(|e| e.into_inner()).take();
    let (answer, divergence) = match (result, recorded) {
        (_, Some(divergence)) => (None, Some(divergence)),
        (Err(error), None) => (
            None,
            Some(Divergence::Failed {
                error: error.to_string(),
            }),
        ),
        (Ok(outcome), None) => {
            let recorded = state.answer.clone().unwrap_or_default();
            let differs = (outcome.answer != recorded).then(|| Divergence::Answer {
                diff: unified_diff(&recorded, &outcome.answer),
            });
            (Some(outcome.answer), differs)
        }
    };
    span.record(sc::SEXTANT_REPLAY_DIVERGED, divergence.is_some());
    let tool_calls = *served_tools.lock().unwrap_or_else(|e| e.into_inner());
    Ok(ReplayReport {
        turn_id: state.id.clone(),
        recorded_trace_id: state.trace_id.clone(),
        trace_id,
        agent: name,
        model_calls,
        tool_calls,
        divergence,
        answer,
    })
}
