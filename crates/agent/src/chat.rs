//! The chat-model API every provider implements: messages and tool definitions in, content, tool calls,
//! token usage and a finish reason out, either at once ([`ChatModel::chat`]) or as a stream
//! ([`ChatModel::chat_stream`]).
//!
//! Providers (`providers/*.rs`) convert between these types and their wire types; nothing outside a
//! provider module sees a wire type.

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use serde::{Deserialize, Serialize};

use crate::error::ChatError;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The person (or program) asking.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call, answering one of the assistant's [`ToolCall`]s.
    Tool,
}

impl Role {
    /// The lower-case name used by the OpenAI, Ollama and ChatML formats alike.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its text (may be empty for an assistant message that only calls tools).
    pub content: String,
    /// Tool calls the assistant asked for in this message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a [`Role::Tool`] message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For a [`Role::Tool`] message: the name of the tool that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }

    /// An assistant message with text and, possibly, tool calls.
    pub fn assistant(content: impl Into<String>, tool_calls: Vec<ToolCall>) -> Self {
        Self {
            tool_calls,
            ..Self::new(Role::Assistant, content)
        }
    }

    /// The result of the tool call `call`.
    pub fn tool_result(call: &ToolCall, content: impl Into<String>) -> Self {
        Self {
            tool_call_id: Some(call.id.clone()),
            name: Some(call.name.clone()),
            ..Self::new(Role::Tool, content)
        }
    }
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The id that the tool result must quote back (`gen_ai.tool.call.id`).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as the JSON text the model produced. Kept as text because a model can produce
    /// malformed JSON, which the agent reports back to the model rather than failing on.
    pub arguments: String,
}

/// A tool the model may call: name, description and the JSON Schema of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// The tool's name, unique within a request.
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// JSON Schema (an `object` schema) of the arguments.
    pub parameters: serde_json::Value,
    /// Worked examples ([`sextant_tools::Tool::examples`]): the local model sees them as earlier
    /// exchanges; providers with native tool calling do not get them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<sextant_tools::ToolExample>,
}

/// Whether the model may, must or must not call a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoice {
    /// The model decides.
    #[default]
    Auto,
    /// The model must answer with text.
    None,
    /// The model must call at least one tool.
    Required,
}

/// Sampling and shape options of one request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatOptions {
    /// Sampling temperature; `None` leaves the provider's default, `0` is greedy.
    pub temperature: Option<f32>,
    /// Nucleus sampling cut-off.
    pub top_p: Option<f32>,
    /// Upper bound on generated tokens.
    pub max_tokens: Option<u32>,
    /// Seed for reproducible sampling, where the provider supports it.
    pub seed: Option<u64>,
    /// Lowers a token's logit by this much per time it already appears in the answer (OpenAI's
    /// `frequency_penalty`, -2.0 to 2.0).
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    /// Lowers a token's logit by this much once it appears in the answer (OpenAI's
    /// `presence_penalty`, -2.0 to 2.0).
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    /// Sequences that end generation.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Whether tools may, must or must not be called.
    #[serde(default)]
    pub tool_choice: ToolChoice,
    /// The schema a text answer must follow (OpenAI `response_format: json_schema`, Ollama
    /// `format`, constrained decoding on the local model); tool calls are unaffected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<crate::OutputSchema>,
}

/// One request to a chat model.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far, oldest first.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default)]
    pub tools: Vec<ToolDefinition>,
    /// Sampling and shape options.
    #[serde(default)]
    pub options: ChatOptions,
}

/// Token counts of one call, as the provider reported them (`gen_ai.usage.*`), and what they
/// cost by the price table.
///
/// Sums keep "unknown" honest: adding a call that used tokens but has no price makes the total's
/// cost unknown (`None`), not lower; an empty usage (the start of a sum) adds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the prompt (cached ones included).
    pub input_tokens: u64,
    /// Tokens generated (reasoning ones included).
    pub output_tokens: u64,
    /// Prompt tokens the provider read from its cache
    /// (`gen_ai.usage.cache_read.input_tokens`), where it says.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_input_tokens: u64,
    /// Generated tokens spent reasoning (`gen_ai.usage.reasoning.output_tokens`), where the
    /// provider says.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reasoning_tokens: u64,
    /// What the tokens cost, in billionths of the price table's currency (integers, so sums are
    /// exact); `None` when a call had no price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_nanos: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Usage {
    /// Input plus output tokens.
    pub fn total(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// The cost in the price table's currency, if every call that used tokens had a price.
    pub fn cost(&self) -> Option<f64> {
        self.cost_nanos.map(|nanos| nanos as f64 / 1e9)
    }

    /// What was added to `before` to make this sum.
    pub fn since(&self, before: &Usage) -> Usage {
        let added = Usage {
            input_tokens: self.input_tokens.saturating_sub(before.input_tokens),
            output_tokens: self.output_tokens.saturating_sub(before.output_tokens),
            cached_input_tokens: self
                .cached_input_tokens
                .saturating_sub(before.cached_input_tokens),
            reasoning_tokens: self
                .reasoning_tokens
                .saturating_sub(before.reasoning_tokens),
            cost_nanos: None,
        };
        let cost_nanos = match (before.is_empty(), added.total() == 0) {
            (true, _) => self.cost_nanos,
            (_, true) => None,
            _ => self
                .cost_nanos
                .zip(before.cost_nanos)
                .map(|(now, then)| now.saturating_sub(then)),
        };
        Usage {
            cost_nanos,
            ..added
        }
    }

    /// Whether no tokens were counted.
    pub fn is_empty(&self) -> bool {
        self.total() == 0 && self.cost_nanos.is_none()
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, rhs: Self) {
        self.cost_nanos = match (self.is_empty(), rhs.is_empty()) {
            (true, _) => rhs.cost_nanos,
            (_, true) => self.cost_nanos,
            _ => self
                .cost_nanos
                .zip(rhs.cost_nanos)
                .map(|(a, b)| a.saturating_add(b)),
        };
        self.input_tokens += rhs.input_tokens;
        self.output_tokens += rhs.output_tokens;
        self.cached_input_tokens += rhs.cached_input_tokens;
        self.reasoning_tokens += rhs.reasoning_tokens;
    }
}

/// Why the model stopped (`gen_ai.response.finish_reasons`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    Stop,
    /// The token limit was reached.
    Length,
    /// The model asked for tool calls.
    ToolCalls,
    /// The provider filtered the content.
    ContentFilter,
    /// Anything else the provider said, verbatim.
    Other(String),
}

impl FinishReason {
    /// The OpenAI-style name recorded on spans.
    pub fn as_str(&self) -> &str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Other(s) => s,
        }
    }
}

/// A complete answer of a chat model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Generated text (empty when the model only calls tools).
    pub content: String,
    /// Tool calls the model asked for.
    pub tool_calls: Vec<ToolCall>,
    /// Token counts.
    pub usage: Usage,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// The model that answered, as the provider named it (`gen_ai.response.model`).
    pub model: String,
    /// The provider's id of the response, if it gives one (`gen_ai.response.id`).
    pub id: Option<String>,
}

impl ChatResponse {
    /// This response as the assistant message to append to the conversation.
    pub fn to_message(&self) -> Message {
        Message::assistant(self.content.clone(), self.tool_calls.clone())
    }
}

/// One item of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatChunk {
    /// A piece of generated text, in order.
    Content(String),
    /// The end of the stream: the whole response, with tool calls assembled and usage counted.
    Done(ChatResponse),
}

/// A streamed answer: content pieces, then exactly one [`ChatChunk::Done`].
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, ChatError>> + Send>>;

/// A chat model: the one thing the agent loop needs from an LLM provider.
///
/// ```no_run
/// # async fn demo(model: &dyn sextant_agent::ChatModel) -> Result<(), sextant_agent::ChatError> {
/// use sextant_agent::{ChatRequest, Message};
/// let request = ChatRequest { messages: vec![Message::user("Hello!")], ..Default::default() };
/// let response = model.chat(&request).await?;
/// println!("{} ({} tokens)", response.content, response.usage.total());
/// # Ok(()) }
/// ```
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// The provider's name as the GenAI conventions spell it (`gen_ai.provider.name`): `openai`,
    /// `ollama`, or `sextant.local` for the embedded model.
    fn provider(&self) -> &str;

    /// The model asked for (`gen_ai.request.model`).
    fn model(&self) -> &str;

    /// Answers `request` in one piece.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ChatError>;

    /// Answers `request` as a stream of text pieces ending with the whole response.
    ///
    /// The default calls [`ChatModel::chat`] and yields its content as one piece.
    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ChatError> {
        let response = self.chat(request).await?;
        let mut items = Vec::with_capacity(2);
        if !response.content.is_empty() {
            items.push(Ok(ChatChunk::Content(response.content.clone())));
        }
        items.push(Ok(ChatChunk::Done(response)));
        Ok(Box::pin(futures::stream::iter(items)))
    }
}
