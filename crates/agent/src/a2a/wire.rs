//! A2A 1.0 JSON shapes (the protocol's ProtoJSON mapping): messages, parts, tasks, streaming
//! events, the agent card and JSON-RPC envelopes. Unknown fields are ignored when reading, as the
//! reference SDK does.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// The client (a user or the calling agent).
    #[serde(rename = "ROLE_USER")]
    User,
    /// The remote agent.
    #[serde(rename = "ROLE_AGENT")]
    Agent,
    /// Missing or unknown.
    #[serde(rename = "ROLE_UNSPECIFIED", other)]
    Unspecified,
}

/// One piece of a message or an artifact: text, structured data, a file by URL or bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// Text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Any JSON value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// A file by URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A file's bytes, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// The media type of the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: Some(text.into()),
            ..Self::default()
        }
    }
}

/// A message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// Its id (the sender makes one up).
    #[serde(default)]
    pub message_id: String,
    /// The conversation it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    /// The task it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Who wrote it.
    #[serde(default = "unspecified_role")]
    pub role: Role,
    /// Its content.
    #[serde(default)]
    pub parts: Vec<Part>,
    /// Extra data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

fn unspecified_role() -> Role {
    Role::Unspecified
}

impl Message {
    /// A text message from `role`.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self {
            message_id: new_id(),
            context_id: None,
            task_id: None,
            role,
            parts: vec![Part::text(text)],
            metadata: None,
        }
    }

    /// The text of its text parts, joined by blank lines.
    pub fn joined_text(&self) -> String {
        joined_text(&self.parts)
    }
}

/// The text of `parts`' text parts (and data parts as JSON), joined by blank lines.
pub fn joined_text(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|part| {
            part.text
                .clone()
                .or_else(|| part.data.as_ref().map(Value::to_string))
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// A fresh random id (a UUID v4 in its usual spelling).
pub fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    let mut b = bytes;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    /// Accepted, not started.
    #[serde(rename = "TASK_STATE_SUBMITTED")]
    Submitted,
    /// Running.
    #[serde(rename = "TASK_STATE_WORKING")]
    Working,
    /// Done.
    #[serde(rename = "TASK_STATE_COMPLETED")]
    Completed,
    /// Failed.
    #[serde(rename = "TASK_STATE_FAILED")]
    Failed,
    /// Cancelled by the client.
    #[serde(rename = "TASK_STATE_CANCELED")]
    Canceled,
    /// Waiting for the client.
    #[serde(rename = "TASK_STATE_INPUT_REQUIRED")]
    InputRequired,
    /// Refused by the agent.
    #[serde(rename = "TASK_STATE_REJECTED")]
    Rejected,
    /// Waiting for authentication.
    #[serde(rename = "TASK_STATE_AUTH_REQUIRED")]
    AuthRequired,
    /// Missing or unknown.
    #[serde(rename = "TASK_STATE_UNSPECIFIED", other)]
    Unspecified,
}

impl TaskState {
    /// Whether the task can no longer change.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Canceled | Self::Rejected
        )
    }
}

/// A task's state, with the message that explains it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    /// The state.
    pub state: TaskState,
    /// What the agent says about it (the answer, or why it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// When it got there (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
}

/// Something a task produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Its id.
    #[serde(default)]
    pub artifact_id: String,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its content.
    #[serde(default)]
    pub parts: Vec<Part>,
    /// Extra data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// A unit of work the remote agent does for a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Its id.
    pub id: String,
    /// The conversation.
    #[serde(default)]
    pub context_id: String,
    /// Where it is.
    pub status: TaskStatus,
    /// What it produced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
    /// The messages exchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Message>,
    /// Extra data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl Task {
    /// The answer: the artifacts' text, else the status message's.
    pub fn answer(&self) -> String {
        let from_artifacts = self
            .artifacts
            .iter()
            .map(|a| joined_text(&a.parts))
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n");
        if !from_artifacts.is_empty() {
            return from_artifacts;
        }
        self.status
            .message
            .as_ref()
            .map(Message::joined_text)
            .unwrap_or_default()
    }
}

/// A task's state changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatusUpdateEvent {
    /// The task.
    pub task_id: String,
    /// The conversation.
    #[serde(default)]
    pub context_id: String,
    /// The new status.
    pub status: TaskStatus,
}

/// A task produced (a piece of) an artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskArtifactUpdateEvent {
    /// The task.
    pub task_id: String,
    /// The conversation.
    #[serde(default)]
    pub context_id: String,
    /// The artifact (or the piece of it).
    pub artifact: Artifact,
    /// Whether this piece extends the artifact sent before under the same id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub append: bool,
    /// Whether this is the artifact's last piece.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub last_chunk: bool,
}

/// The result of `SendMessage`, and each event of `SendStreamingMessage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StreamResponse {
    /// A task (its first appearance, or its whole state).
    Task(Task),
    /// A direct answer, without a task.
    Message(Message),
    /// A status change.
    StatusUpdate(TaskStatusUpdateEvent),
    /// An artifact (piece).
    ArtifactUpdate(TaskArtifactUpdateEvent),
}

/// The params of `SendMessage` and `SendStreamingMessage`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageParams {
    /// The message.
    pub message: Message,
    /// Options (output modes, history length, `returnImmediately`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<Value>,
    /// Extra data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// The params of `GetTask`, `CancelTask` and `SubscribeToTask`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskIdParams {
    /// The task.
    pub id: String,
    /// How many history messages to return (`GetTask`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_length: Option<u32>,
}

/// One way to reach an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInterface {
    /// Where requests go.
    pub url: String,
    /// `JSONRPC`, `GRPC` or `HTTP+JSON`.
    pub protocol_binding: String,
    /// The A2A version (`1.0`).
    #[serde(default)]
    pub protocol_version: String,
}

/// What an agent can do besides answering.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCapabilities {
    /// `SendStreamingMessage` is supported.
    #[serde(default)]
    pub streaming: bool,
    /// Push notifications are supported.
    #[serde(default)]
    pub push_notifications: bool,
}

/// A thing an agent is good at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSkill {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Keywords.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Example requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
}

/// An agent's self-description, at `/.well-known/agent-card.json` under its base URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCard {
    /// Its name.
    #[serde(default)]
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Where and how to reach it.
    #[serde(default)]
    pub supported_interfaces: Vec<AgentInterface>,
    /// Its version.
    #[serde(default)]
    pub version: String,
    /// What it supports.
    #[serde(default)]
    pub capabilities: AgentCapabilities,
    /// Media types it reads.
    #[serde(default)]
    pub default_input_modes: Vec<String>,
    /// Media types it writes.
    #[serde(default)]
    pub default_output_modes: Vec<String>,
    /// What it is good at.
    #[serde(default)]
    pub skills: Vec<AgentSkill>,
    /// How clients authenticate (`{"bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer"}}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_schemes: Option<Value>,
    /// Which schemes a request needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_requirements: Option<Value>,
}

impl AgentCard {
    /// The JSON-RPC 1.0 interface's URL, if the card offers one.
    pub fn jsonrpc_url(&self) -> Option<&str> {
        self.supported_interfaces
            .iter()
            .filter(|i| i.protocol_binding == "JSONRPC")
            .find(|i| i.protocol_version.is_empty() || i.protocol_version.starts_with("1."))
            .map(|i| i.url.as_str())
    }
}

/// JSON-RPC error codes of A2A.
pub mod code {
    /// The body is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not a JSON-RPC request.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Bad params.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The agent failed.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// No such task (for this caller).
    pub const TASK_NOT_FOUND: i64 = -32001;
    /// The task cannot be cancelled (it ended).
    pub const TASK_NOT_CANCELABLE: i64 = -32002;
    /// Push notifications are not supported.
    pub const PUSH_NOTIFICATION_NOT_SUPPORTED: i64 = -32003;
    /// The operation is not supported.
    pub const UNSUPPORTED_OPERATION: i64 = -32004;
    /// The A2A version is not supported.
    pub const VERSION_NOT_SUPPORTED: i64 = -32009;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_from_the_reference_sdk_reads_and_answers() {
        let json = r#"{"task":{"id":"t","contextId":"c","status":{"state":"TASK_STATE_COMPLETED","message":{"messageId":"m","role":"ROLE_AGENT","parts":[{"text":"weather in Paris: sunny"}]},"timestamp":"2026-12-03T09:36:02.892141Z"},"artifacts":[{"artifactId":"a","name":"answer","parts":[{"text":"weather in Paris: sunny"}]}],"history":[{"messageId":"u","role":"ROLE_USER","parts":[{"text":"?"}],"extensions":[]}]}}"#;
        let StreamResponse::Task(task) = serde_json::from_str(json).unwrap() else {
            panic!("a task")
        };
        assert_eq!(task.status.state, TaskState::Completed);
        assert_eq!(task.answer(), "weather in Paris: sunny");
        assert_eq!(task.history[0].role, Role::User);
    }

    #[test]
    fn enums_are_written_as_the_protocol_spells_them() {
        let message = Message::text(Role::User, "hi");
        let json = serde_json::to_value(&message).unwrap();
        assert_eq!(json["role"], "ROLE_USER");
        assert_eq!(json["parts"][0], serde_json::json!({"text": "hi"}));
        let state = serde_json::to_value(TaskState::InputRequired).unwrap();
        assert_eq!(state, "TASK_STATE_INPUT_REQUIRED");
        // A 0.3 spelling is not silently taken for a state.
        let old: TaskState = serde_json::from_str("\"completed\"").unwrap();
        assert_eq!(old, TaskState::Unspecified);
        assert_eq!(new_id().len(), 36);
    }
}
