//! A turn as a state machine: [`TurnState`] is everything a turn needs to go on from where it
//! stopped (the conversation so far, the tool calls of the last model response and how far each
//! got, the usage), written to a [`TurnStore`](crate::turn_store::TurnStore) after every step so
//! a turn survives a crash and can wait days for a person's approval.
//!
//! ```text
//!   running ──model call──▶ running (calls pending) ──each call done──▶ running ──▶ completed
//!      │                          │                                                   
//!      │                          └─ a call needs approval ─▶ awaiting_approval ──decisions──▶ running
//!      └─ the model fails ─▶ failed (resumable: the step is retried)
//! ```

use serde::{Deserialize, Serialize};
use sextant_memory::RetrievedChunk;
use sextant_tracker::now_ms;
use sextant_tracker::prompts::PromptVersionRef;

use crate::agent::{StopReason, ToolCallRecord};
use crate::approval::Decision;
use crate::chat::{Message, ToolCall, Usage};

/// Where a turn is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    /// Being run (or was, by a process that stopped: its lease runs out).
    Running,
    /// Paused until every call that needs approval has a decision.
    AwaitingApproval,
    /// Answered (or ended at `max_steps`).
    Completed,
    /// A step failed; resuming retries it.
    Failed,
}

impl TurnStatus {
    /// `running`, `awaiting_approval`, `completed`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// The status named `text`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "running" => Self::Running,
            "awaiting_approval" => Self::AwaitingApproval,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// How far one tool call of the last model response got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CallStatus {
    /// Not started.
    Ready,
    /// Started and not finished: after a crash, run again only if the tool is idempotent.
    Running,
    /// Waits for a person.
    AwaitingApproval {
        /// Why it needs approval.
        reason: String,
    },
    /// A person decided; it runs (or is answered with the denial) when the turn goes on.
    Decided {
        /// The decision.
        decision: Decision,
        /// Who decided.
        by: Option<String>,
    },
    /// Finished: what the model will be told.
    Done {
        /// The call's record.
        record: ToolCallRecord,
    },
}

/// A tool call of the last model response, with how far it got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingCall {
    /// The call as the model wrote it.
    pub call: ToolCall,
    /// How far it got.
    pub status: CallStatus,
}

/// A call waiting for a decision, as surfaces show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingApproval {
    /// The model's id of the call (what a decision names).
    pub call_id: String,
    /// The tool.
    pub tool: String,
    /// The arguments as the model wrote them.
    pub arguments: String,
    /// Why it needs approval.
    pub reason: String,
}

/// Everything a turn needs to go on; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnState {
    /// The turn's id (32 hex digits).
    pub id: String,
    /// The agent running it.
    pub agent: String,
    /// Where the agent came from (its file or `models:/…` URI), to rebuild it in another process.
    pub agent_source: Option<String>,
    /// The session it belongs to.
    pub session_id: Option<String>,
    /// The user asking.
    pub user_id: Option<String>,
    /// Who may see and decide it (the service's principal); `None` = the operator only.
    pub owner: Option<String>,
    /// The user's message.
    pub question: String,
    /// Where it is.
    pub status: TurnStatus,
    /// The conversation so far, system prompt first.
    pub messages: Vec<Message>,
    /// Where the earlier turns sit in `messages` (what a handoff passes on): start and length.
    pub history: (usize, usize),
    /// The calls of the last model response that are not yet back in `messages`.
    pub pending: Vec<PendingCall>,
    /// Every finished tool call, in order.
    pub records: Vec<ToolCallRecord>,
    /// Model calls made.
    pub step: u32,
    /// Tokens used so far.
    pub usage: Usage,
    /// The sources retrieved for the question (for citations).
    pub sources: Vec<RetrievedChunk>,
    /// The tools offered to the model, by name (what a replay compares).
    #[serde(default)]
    pub tools: Vec<String>,
    /// The registry prompt versions the turn was built from.
    pub prompt_versions: Vec<PromptVersionRef>,
    /// The trace (32 hex digits) and the W3C `traceparent` of the turn's first `invoke_agent`
    /// span: a resumed part and each decision join that trace under it.
    pub trace_id: Option<String>,
    /// See `trace_id`.
    pub traceparent: Option<String>,
    /// The answer, once completed.
    pub answer: Option<String>,
    /// How it ended, once completed.
    pub stop_reason: Option<StopReason>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// When it started, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When it was last written.
    pub updated_at_ms: i64,
}

impl TurnState {
    /// The state with every text it holds (question, messages, tool calls and results, sources,
    /// answer, error) passed through `redactor`, numbered by one set of placeholders; the ids
    /// that find and scope the turn (its id, agent, session, user, owner, trace) are kept.
    pub fn redacted(&self, redactor: &sextant_tracker::redaction::Redactor) -> Self {
        let Ok(mut value) = serde_json::to_value(self) else {
            return self.clone();
        };
        let mut placeholders = sextant_tracker::redaction::Placeholders::default();
        if redactor.redact_value(&mut value, &mut placeholders) == 0 {
            return self.clone();
        }
        match serde_json::from_value::<Self>(value) {
            Ok(redacted) => Self {
                id: self.id.clone(),
                agent: self.agent.clone(),
                agent_source: self.agent_source.clone(),
                session_id: self.session_id.clone(),
                user_id: self.user_id.clone(),
                owner: self.owner.clone(),
                trace_id: self.trace_id.clone(),
                traceparent: self.traceparent.clone(),
                ..redacted
            },
            Err(error) => {
                // A placeholder where a typed value was expected: keep nothing rather than the
                // value.
                tracing::warn!(turn = %self.id, "the completed turn could not be redacted: {error}");
                Self {
                    question: String::new(),
                    messages: Vec::new(),
                    pending: Vec::new(),
                    records: Vec::new(),
                    sources: Vec::new(),
                    answer: None,
                    error: None,
                    ..self.clone()
                }
            }
        }
    }

    /// A new turn's state before its first model call.
    pub fn new(agent: &str, question: &str, messages: Vec<Message>) -> Self {
        let now = now_ms();
        Self {
            id: new_turn_id(),
            agent: agent.to_owned(),
            agent_source: None,
            session_id: None,
            user_id: None,
            owner: None,
            question: question.to_owned(),
            status: TurnStatus::Running,
            messages,
            history: (0, 0),
            pending: Vec::new(),
            records: Vec::new(),
            step: 0,
            usage: Usage::default(),
            sources: Vec::new(),
            tools: Vec::new(),
            prompt_versions: Vec::new(),
            trace_id: None,
            traceparent: None,
            answer: None,
            stop_reason: None,
            error: None,
            created_at_ms: now,
            updated_at_ms: now,
        }
    }

    /// The earlier turns (what a handoff's target may see).
    pub fn history(&self) -> &[Message] {
        let (start, len) = self.history;
        self.messages.get(start..start + len).unwrap_or_default()
    }

    /// The calls that wait for a person.
    pub fn pending_approvals(&self) -> Vec<PendingApproval> {
        self.pending
            .iter()
            .filter_map(|pending| match &pending.status {
                CallStatus::AwaitingApproval { reason } => Some(PendingApproval {
                    call_id: pending.call.id.clone(),
                    tool: pending.call.name.clone(),
                    arguments: pending.call.arguments.clone(),
                    reason: reason.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// Records `decision` by `by` on the waiting call `call_id`; when it was the last one waiting,
    /// the turn is ready to go on (`running`, for whoever claims it). The error says what is
    /// wrong in words for the person deciding.
    pub fn decide(
        &mut self,
        call_id: &str,
        decision: Decision,
        by: Option<String>,
    ) -> Result<(), String> {
        if self.status != TurnStatus::AwaitingApproval {
            return Err(format!(
                "turn {} is {}, not awaiting approval",
                self.id,
                self.status.as_str()
            ));
        }
        let Some(pending) = self.pending.iter_mut().find(|p| p.call.id == call_id) else {
            let waiting: Vec<String> = self
                .pending_approvals()
                .into_iter()
                .map(|p| p.call_id)
                .collect();
            return Err(format!(
                "turn {} has no call `{call_id}` (waiting: {})",
                self.id,
                waiting.join(", ")
            ));
        };
        if !matches!(pending.status, CallStatus::AwaitingApproval { .. }) {
            return Err(format!(
                "call `{call_id}` of turn {} was already decided",
                self.id
            ));
        }
        pending.status = CallStatus::Decided { decision, by };
        if self.pending_approvals().is_empty() {
            self.status = TurnStatus::Running;
        }
        Ok(())
    }

    /// Records `decision` on the waiting call `call_id` of a turn that is running (an inline
    /// approver); a call that is not waiting is left alone.
    pub(crate) fn decide_call(&mut self, call_id: &str, decision: Decision, by: Option<String>) {
        if let Some(pending) = self.pending.iter_mut().find(|p| {
            p.call.id == call_id && matches!(p.status, CallStatus::AwaitingApproval { .. })
        }) {
            pending.status = CallStatus::Decided { decision, by };
        }
    }
}

/// A new random turn id: 32 hex digits.
pub fn new_turn_id() -> String {
    (0..16)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paused() -> TurnState {
        let mut state = TurnState::new("a", "q", vec![Message::user("q")]);
        state.status = TurnStatus::AwaitingApproval;
        state.pending = ["c1", "c2"]
            .into_iter()
            .map(|id| PendingCall {
                call: ToolCall {
                    id: id.into(),
                    name: "http_fetch".into(),
                    arguments: "{}".into(),
                },
                status: CallStatus::AwaitingApproval {
                    reason: "why".into(),
                },
            })
            .collect();
        state
    }

    #[test]
    fn the_last_decision_makes_the_turn_resumable() {
        let mut state = paused();
        assert_eq!(state.pending_approvals().len(), 2);
        state.decide("c1", Decision::Approve, None).unwrap();
        assert_eq!(state.status, TurnStatus::AwaitingApproval);
        let again = state.decide("c1", Decision::Approve, None).unwrap_err();
        assert!(again.contains("already decided"), "{again}");
        let unknown = state.decide("zz", Decision::Approve, None).unwrap_err();
        assert!(unknown.contains("waiting: c2"), "{unknown}");
        state
            .decide(
                "c2",
                Decision::Deny {
                    message: Some("no".into()),
                },
                Some("ada".into()),
            )
            .unwrap();
        assert_eq!(state.status, TurnStatus::Running);
        let late = state.decide("c2", Decision::Approve, None).unwrap_err();
        assert!(late.contains("not awaiting approval"), "{late}");
    }

    #[test]
    fn the_state_round_trips_through_json() {
        let state = paused();
        let text = serde_json::to_string(&state).unwrap();
        assert_eq!(serde_json::from_str::<TurnState>(&text).unwrap(), state);
    }
}
