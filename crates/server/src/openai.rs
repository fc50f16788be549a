//! The OpenAI chat completions wire format: the request the service accepts and the responses
//! (a `chat.completion`, or `chat.completion.chunk` events over SSE) it answers with.
//!
//! Only what an agent can honour is read: `model` picks the agent, `messages` give the question
//! (the last user message) and the conversation before it, `stream` and
//! `stream_options.include_usage` shape the answer, `user` names the user, `response_format`
//! (`json_schema`) types the answer where the agent allows it. Sampling parameters and `tools` are
//! accepted and ignored: the agent's file decides them. System and developer
//! messages are ignored too: the agent's system prompt (its file or the prompt registry) applies.

use serde::Deserialize;
use serde_json::{Value, json};
use sextant_agent::{AgentOutcome, Message, StopReason};

use crate::error::ApiError;

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    /// The agent: a file stem (`assistant`) or `models:/name@alias`.
    #[serde(default)]
    pub model: String,
    /// The conversation, oldest first; the last one is the user's question.
    pub messages: Vec<RequestMessage>,
    /// Answer with server-sent events.
    #[serde(default)]
    pub stream: bool,
    /// `{"include_usage": true}` adds a usage chunk before `[DONE]`.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// The end user (`user.id` on the trace), unless the `x-user-id` header names one.
    #[serde(default)]
    pub user: Option<String>,
    /// `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`: the answer is JSON
    /// of that schema, checked before it is returned (`text` and `json_object` change nothing).
    #[serde(default)]
    pub response_format: Option<Value>,
}

/// `stream_options`.
#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    /// Send the usage in a last chunk.
    #[serde(default)]
    pub include_usage: bool,
}

/// One message of the request.
#[derive(Debug, Deserialize)]
pub struct RequestMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// Text, or a list of content parts of which the text ones are read.
    #[serde(default)]
    pub content: Option<Content>,
}

/// A message's content.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Content parts (`{"type": "text", "text": …}`; images and audio are refused).
    Parts(Vec<ContentPart>),
}

/// One content part.
#[derive(Debug, Deserialize)]
pub struct ContentPart {
    /// `text`, `image_url`, `input_audio`, `file`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default)]
    pub text: Option<String>,
}

impl RequestMessage {
    fn text(&self, index: usize) -> Result<String, ApiError> {
        match &self.content {
            None => Ok(String::new()),
            Some(Content::Text(text)) => Ok(text.clone()),
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for part in parts {
                    match (part.kind.as_str(), &part.text) {
                        ("text", Some(piece)) => text.push_str(piece),
                        (kind, _) => {
                            return Err(ApiError::invalid(
                                Some("messages"),
                                format!(
                                    "messages[{index}] has a `{kind}` content part; the agents read text only"
                                ),
                            ));
                        }
                    }
                }
                Ok(text)
            }
        }
    }
}

/// The question (the last message, which must be the user's) and the user and assistant
/// messages before it.
pub fn split_conversation(messages: &[RequestMessage]) -> Result<(Vec<Message>, String), ApiError> {
    let Some((last, earlier)) = messages.split_last() else {
        return Err(ApiError::invalid(
            Some("messages"),
            "`messages` is empty; the last message must be the user's question",
        ));
    };
    if last.role != "user" {
        return Err(ApiError::invalid(
            Some("messages"),
            format!(
                "the last message is `{}`; it must be the user's question (`user`)",
                last.role
            ),
        ));
    }
    let question = last.text(messages.len() - 1)?;
    if question.trim().is_empty() {
        return Err(ApiError::invalid(
            Some("messages"),
            "the last user message has no text",
        ));
    }
    let mut history = Vec::new();
    for (index, message) in earlier.iter().enumerate() {
        match message.role.as_str() {
            "user" => history.push(Message::user(message.text(index)?)),
            "assistant" => history.push(Message::assistant(message.text(index)?, Vec::new())),
            // The agent's own system prompt applies; tool results belong to the agent's own tools.
            "system" | "developer" | "tool" | "function" => {}
            other => {
                return Err(ApiError::invalid(
                    Some("messages"),
                    format!(
                        "messages[{index}] has role `{other}`; expected system, developer, user, assistant or tool"
                    ),
                ));
            }
        }
    }
    Ok((history, question))
}

/// OpenAI's `finish_reason` for how the turn ended.
fn finish_reason(outcome: &AgentOutcome) -> &'static str {
    match outcome.stop_reason {
        StopReason::Answered => "stop",
        StopReason::MaxSteps | StopReason::Budget => "length",
        // The content says what waits and how to decide; `sextant.pending_approvals` lists it.
        StopReason::AwaitingApproval => "stop",
        // OpenAI's reason for an answer its filters stopped.
        StopReason::Blocked => "content_filter",
    }
}

fn usage(outcome: &AgentOutcome) -> Value {
    json!({
        "prompt_tokens": outcome.usage.input_tokens,
        "completion_tokens": outcome.usage.output_tokens,
        "total_tokens": outcome.usage.total(),
    })
}

/// The completion's id: the trace id, so a client can find the trace from the response alone.
pub fn completion_id(trace_id: Option<&str>) -> String {
    match trace_id {
        Some(id) => format!("chatcmpl-{id}"),
        None => format!("chatcmpl-{:032x}", rand::random::<u128>()),
    }
}

/// Seconds since the Unix epoch.
pub fn created() -> i64 {
    sextant_tracker::now_ms() / 1000
}

/// A whole `chat.completion`, with Sextant's extras under `sextant` (OpenAI clients ignore it).
pub fn completion(id: &str, model: &str, outcome: &AgentOutcome, extras: Value) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created(),
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": outcome.answer},
            "finish_reason": finish_reason(outcome),
            "logprobs": null,
        }],
        "usage": usage(outcome),
        "sextant": extras,
    })
}

/// A `chat.completion.chunk` carrying `delta` (and `finish_reason` on the last one).
pub fn chunk(id: &str, model: &str, delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created(),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": null}],
    })
}

/// The last content chunk of a stream.
pub fn final_chunk(id: &str, model: &str, outcome: &AgentOutcome) -> Value {
    chunk(id, model, json!({}), Some(finish_reason(outcome)))
}

/// The usage chunk (`choices` empty) sent when `stream_options.include_usage` is set.
pub fn usage_chunk(id: &str, model: &str, outcome: &AgentOutcome, extras: Value) -> Value {
    json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created(),
        "model": model,
        "choices": [],
        "usage": usage(outcome),
        "sextant": extras,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_agent::Role;

    fn messages(value: Value) -> Vec<RequestMessage> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_last_user_message_is_the_question_and_the_rest_is_history() {
        let (history, question) = split_conversation(&messages(json!([
            {"role": "system", "content": "ignored"},
            {"role": "user", "content": "Hi, I am Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "2+2?"}]},
        ])))
        .unwrap();
        assert_eq!(question, "What is 2+2?");
        assert_eq!(history.len(), 2);
        assert_eq!(
            (history[0].role, history[1].role),
            (Role::User, Role::Assistant)
        );
        assert_eq!(history[1].content, "Hello Ada.");
    }

    #[test]
    fn a_conversation_that_does_not_end_with_a_question_is_refused() {
        for (value, needle) in [
            (json!([]), "empty"),
            (
                json!([{"role": "assistant", "content": "x"}]),
                "`assistant`",
            ),
            (json!([{"role": "user", "content": "  "}]), "no text"),
            (
                json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
                "`image_url`",
            ),
            (
                json!([{"role": "wizard", "content": "x"}, {"role": "user", "content": "q"}]),
                "messages[0] has role `wizard`",
            ),
        ] {
            let error = split_conversation(&messages(value)).unwrap_err();
            assert_eq!(error.status, axum::http::StatusCode::BAD_REQUEST);
            assert!(error.message.contains(needle), "{}", error.message);
        }
    }
}
