//! `ollama`: an Ollama server's native `/api/chat`, with `ollama-rs`'s request and response types.
//!
//! The requests are sent with our own `reqwest` client rather than `ollama-rs`'s methods, because
//! those fold every HTTP failure into a bare string: the retry policy needs the status code (429 and
//! 5xx are retried, 4xx are not), and a malformed streamed line must be an error, not a skipped line.

use async_trait::async_trait;
use futures::StreamExt;
use ollama_rs::generation::chat::request::ChatMessageRequest;
use ollama_rs::generation::chat::{ChatMessage, ChatMessageResponse, MessageRole};
use ollama_rs::generation::tools::{
    ToolCall as WireToolCall, ToolCallFunction, ToolFunctionInfo, ToolInfo, ToolType,
};
use ollama_rs::models::ModelOptions;
use sextant_tracker::conventions::{UrlParts, shown_url};

use super::spawn_chat_stream;
use crate::chat::{
    ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason, Message, Role,
    ToolCall, Usage,
};
use crate::error::{ChatError, MAX_REASON_CHARS, error_summary, transport_reason, upstream_reason};

const PROVIDER: &str = "ollama";

/// A chat model served by Ollama (or anything speaking its API).
///
/// ```no_run
/// use sextant_agent::providers::ollama::OllamaChatModel;
/// let model = OllamaChatModel::new("http://127.0.0.1:11434", "llama3.2").unwrap();
/// ```
pub struct OllamaChatModel {
    http: reqwest::Client,
    chat_url: url::Url,
    /// The server as errors name it: without credentials or query.
    host: String,
    model: String,
}

impl OllamaChatModel {
    /// A model named `model` on the Ollama server at `host` (e.g. `http://127.0.0.1:11434`).
    pub fn new(host: &str, model: &str) -> Result<Self, ChatError> {
        let shown = shown_url(host, UrlParts::Location);
        let base = url::Url::parse(host).map_err(|e| ChatError::Request {
            provider: PROVIDER.into(),
            message: format!("`{shown}` is not a valid Ollama host URL: {e}"),
        })?;
        let chat_url = base.join("api/chat").map_err(|e| ChatError::Request {
            provider: PROVIDER.into(),
            message: format!("cannot build the chat URL from `{shown}`: {e}"),
        })?;
        Ok(Self {
            http: reqwest::Client::new(),
            chat_url,
            host: shown,
            model: model.to_owned(),
        })
    }

    fn wire_request(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<serde_json::Value, ChatError> {
        let mut options = ModelOptions::default();
        let o = &request.options;
        if let Some(t) = o.temperature {
            options = options.temperature(t);
        }
        if let Some(p) = o.top_p {
            options = options.top_p(p);
        }
        if let Some(n) = o.max_tokens {
            options = options.num_predict(n.min(i32::MAX as u32) as i32);
        }
        if let Some(seed) = o.seed {
            options = options.seed(seed as i32);
        }
        if !o.stop.is_empty() {
            options = options.stop(o.stop.clone());
        }
        let tools = if o.tool_choice == crate::ToolChoice::None {
            Vec::new()
        } else {
            request
                .tools
                .iter()
                .map(|tool| {
                    let parameters =
                        tool.parameters
                            .clone()
                            .try_into()
                            .map_err(|e| ChatError::Request {
                                provider: PROVIDER.into(),
                                message: format!(
                                    "the parameters of tool `{}` are not a JSON Schema: {e}",
                                    tool.name
                                ),
                            })?;
                    Ok(ToolInfo {
                        tool_type: ToolType::Function,
                        function: ToolFunctionInfo {
                            name: tool.name.clone(),
                            description: tool.description.clone(),
                            parameters,
                        },
                    })
                })
                .collect::<Result<Vec<_>, ChatError>>()?
        };
        let wire = ChatMessageRequest::new(
            self.model.clone(),
            request.messages.iter().map(wire_message).collect(),
        )
        .options(options)
        .tools(tools);
        // `stream` is private in ollama-rs' request type; it is set on the JSON.
        let mut body = serde_json::to_value(wire).map_err(|e| ChatError::Request {
            provider: PROVIDER.into(),
            message: format!("cannot encode the request: {e}"),
        })?;
        body["stream"] = serde_json::Value::Bool(stream);
        // Ollama's structured outputs: `format` takes the JSON Schema itself.
        if let Some(output) = &o.output_schema {
            body["format"] = output.schema.clone();
        }
        // Ollama's options take OpenAI's penalties; ollama-rs has no setter for them.
        for (key, value) in [
            ("frequency_penalty", o.frequency_penalty),
            ("presence_penalty", o.presence_penalty),
        ] {
            if let (Some(value), Some(options)) = (value, body.get_mut("options")) {
                options[key] = serde_json::json!(value);
            }
        }
        Ok(body)
    }

    async fn send(&self, body: &serde_json::Value) -> Result<reqwest::Response, ChatError> {
        let response = self
            .http
            .post(self.chat_url.clone())
            .headers(sextant_trace_context::outgoing_headers(
                self.chat_url.as_str(),
            ))
            .json(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    ChatError::Connect {
                        provider: PROVIDER.into(),
                        endpoint: self.host.clone(),
                        message: "timed out".into(),
                    }
                } else {
                    ChatError::Connect {
                        provider: PROVIDER.into(),
                        endpoint: self.host.clone(),
                        message: transport_reason(&e.without_url()),
                    }
                }
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // Ollama's errors are {"error": "..."}; anything else is not quoted.
        let text = response.text().await.unwrap_or_default();
        Err(ChatError::http(PROVIDER, status.as_u16(), &text))
    }
}

#[async_trait]
impl ChatModel for OllamaChatModel {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ChatError> {
        let body = self.wire_request(request, false)?;
        let response = self.send(&body).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ChatError::InvalidResponse {
                provider: PROVIDER.into(),
                message: format!(
                    "the response body could not be read: {}",
                    transport_reason(&e.without_url())
                ),
            })?;
        let wire: ChatMessageResponse = parse(&bytes)?;
        let mut assembler = Assembler::default();
        assembler.absorb(wire);
        assembler.finish(&self.model, request.options.max_tokens)
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ChatError> {
        let body = self.wire_request(request, true)?;
        let response = self.send(&body).await?;
        let model = self.model.clone();
        let max_tokens = request.options.max_tokens;
        Ok(spawn_chat_stream(move |tx| async move {
            let mut bytes = response.bytes_stream();
            let mut buffer = Vec::new();
            let mut assembler = Assembler::default();
            loop {
                // Ollama streams one JSON object per line.
                while let Some(newline) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=newline).collect();
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match parse::<ChatMessageResponse>(&line) {
                        Ok(wire) => {
                            if let Some(piece) = assembler.absorb(wire)
                                && tx.send(Ok(ChatChunk::Content(piece))).await.is_err()
                            {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e)).await;
                            return;
                        }
                    }
                }
                match bytes.next().await {
                    Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                    Some(Err(e)) => {
                        let _ = tx
                            .send(Err(ChatError::InvalidResponse {
                                provider: PROVIDER.into(),
                                message: format!(
                                    "the stream broke off: {}",
                                    transport_reason(&e.without_url())
                                ),
                            }))
                            .await;
                        return;
                    }
                    None if buffer.iter().all(u8::is_ascii_whitespace) => break,
                    None => buffer.push(b'\n'),
                }
            }
            let _ = tx
                .send(assembler.finish(&model, max_tokens).map(ChatChunk::Done))
                .await;
        }))
    }
}

/// The body is the model's answer, which is content: an error says only where parsing failed.
fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ChatError> {
    serde_json::from_slice(bytes).map_err(|e| ChatError::InvalidResponse {
        provider: PROVIDER.into(),
        message: format!(
            "{} (a line of {} bytes)",
            error_summary(&e.to_string(), MAX_REASON_CHARS),
            bytes.len()
        ),
    })
}

/// Accumulates one or many response objects (streamed or not) into one response.
#[derive(Default)]
struct Assembler {
    content: String,
    tool_calls: Vec<ToolCall>,
    usage: Usage,
    model: Option<String>,
    done: bool,
}

impl Assembler {
    fn absorb(&mut self, wire: ChatMessageResponse) -> Option<String> {
        self.model = Some(wire.model);
        for call in wire.message.tool_calls {
            self.tool_calls.push(ToolCall {
                id: format!("call_{}", self.tool_calls.len()),
                name: call.function.name,
                arguments: call.function.arguments.to_string(),
            });
        }
        if let Some(final_data) = wire.final_data {
            self.usage = Usage {
                input_tokens: final_data.prompt_eval_count,
                output_tokens: final_data.eval_count,
                ..Usage::default()
            };
        }
        self.done |= wire.done;
        let piece = wire.message.content;
        self.content.push_str(&piece);
        (!piece.is_empty()).then_some(piece)
    }

    fn finish(
        self,
        requested_model: &str,
        max_tokens: Option<u32>,
    ) -> Result<ChatResponse, ChatError> {
        if !self.done {
            return Err(ChatError::InvalidResponse {
                provider: PROVIDER.into(),
                message: "the response ended before `done: true`".into(),
            });
        }
        // Ollama's chat API has no finish reason in ollama-rs' type; infer it.
        let finish_reason = if !self.tool_calls.is_empty() {
            FinishReason::ToolCalls
        } else if max_tokens.is_some_and(|max| self.usage.output_tokens >= u64::from(max)) {
            FinishReason::Length
        } else {
            FinishReason::Stop
        };
        Ok(ChatResponse {
            content: self.content,
            tool_calls: self.tool_calls,
            usage: self.usage,
            finish_reason,
            model: self.model.unwrap_or_else(|| requested_model.to_owned()),
            id: None,
        })
    }
}

fn wire_message(message: &Message) -> ChatMessage {
    let role = match message.role {
        Role::System => MessageRole::System,
        Role::User => MessageRole::User,
        Role::Assistant => MessageRole::Assistant,
        Role::Tool => MessageRole::Tool,
    };
    let mut wire = ChatMessage::new(role, message.content.clone());
    wire.tool_calls = message
        .tool_calls
        .iter()
        .map(|call| WireToolCall {
            function: ToolCallFunction {
                name: call.name.clone(),
                // Ollama wants the arguments as an object; malformed JSON is passed on as a string.
                arguments: serde_json::from_str(&call.arguments)
                    .unwrap_or_else(|_| serde_json::Value::String(call.arguments.clone())),
            },
        })
        .collect();
    wire
}

/// Embeddings from an Ollama server's `/api/embed`, e.g. `nomic-embed-text` (768 dimensions).
pub struct OllamaEmbedder {
    http: reqwest::Client,
    embed_url: url::Url,
    /// The server as errors name it: without credentials or query.
    host: String,
    model: String,
    dimension: usize,
    max_batch: usize,
}

impl OllamaEmbedder {
    /// The embedding model `model` on the Ollama server at `host`, whose vectors have `dimension`
    /// entries.
    pub fn new(
        host: &str,
        model: &str,
        dimension: usize,
    ) -> Result<Self, sextant_memory::EmbedError> {
        let invalid = |message: String| sextant_memory::EmbedError::Load {
            model: model.to_owned(),
            message,
        };
        let shown = shown_url(host, UrlParts::Location);
        let base = url::Url::parse(host)
            .map_err(|e| invalid(format!("`{shown}` is not a valid Ollama host URL: {e}")))?;
        let embed_url = base
            .join("api/embed")
            .map_err(|e| invalid(format!("cannot build the embed URL from `{shown}`: {e}")))?;
        Ok(Self {
            http: reqwest::Client::new(),
            embed_url,
            host: shown,
            model: model.to_owned(),
            dimension,
            max_batch: 32,
        })
    }

    /// Sends at most `max_batch` texts per request.
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }
}

#[async_trait::async_trait]
impl sextant_memory::Embedder for OllamaEmbedder {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    async fn embed_batch(
        &self,
        texts: &[String],
    ) -> Result<sextant_memory::Embeddings, sextant_memory::EmbedError> {
        use ollama_rs::generation::embeddings::GenerateEmbeddingsResponse;
        use ollama_rs::generation::embeddings::request::{
            EmbeddingsInput, GenerateEmbeddingsRequest,
        };
        let upstream = |message: String| sextant_memory::EmbedError::Upstream {
            model: self.model.clone(),
            message,
        };
        let request = GenerateEmbeddingsRequest::new(
            self.model.clone(),
            EmbeddingsInput::Multiple(texts.to_vec()),
        );
        let response = self
            .http
            .post(self.embed_url.clone())
            .headers(sextant_trace_context::outgoing_headers(
                self.embed_url.as_str(),
            ))
            .json(&request)
            .send()
            .await
            .map_err(|e| {
                upstream(format!(
                    "cannot reach {}: {}",
                    self.host,
                    transport_reason(&e.without_url())
                ))
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| {
            upstream(format!(
                "reading the response failed: {}",
                transport_reason(&e.without_url())
            ))
        })?;
        if !status.is_success() {
            return Err(upstream(format!(
                "HTTP {}: {}",
                status.as_u16(),
                upstream_reason(status.as_u16(), &String::from_utf8_lossy(&body))
            )));
        }
        let parsed: GenerateEmbeddingsResponse =
            serde_json::from_slice(&body).map_err(|e| sextant_memory::EmbedError::Shape {
                model: self.model.clone(),
                message: format!("a response that is not an embeddings object: {e}"),
            })?;
        Ok(sextant_memory::Embeddings {
            vectors: parsed.embeddings,
            input_tokens: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatOptions, ToolDefinition};

    #[test]
    fn request_has_tools_options_and_stream_flag() {
        let model = OllamaChatModel::new("http://127.0.0.1:11434", "llama3.2").unwrap();
        let request = ChatRequest {
            messages: vec![
                Message::user("hi"),
                Message::assistant(
                    "",
                    vec![ToolCall {
                        id: "c".into(),
                        name: "calculator".into(),
                        arguments: r#"{"expression":"1+1"}"#.into(),
                    }],
                ),
            ],
            tools: vec![ToolDefinition {
                name: "calculator".into(),
                description: "d".into(),
                parameters: serde_json::json!({"type":"object","properties":{"expression":{"type":"string"}}}),
                examples: Vec::new(),
            }],
            options: ChatOptions {
                temperature: Some(0.0),
                max_tokens: Some(9),
                ..Default::default()
            },
        };
        let body = model.wire_request(&request, true).unwrap();
        assert_eq!(body["stream"], true);
        assert_eq!(body["model"], "llama3.2");
        assert_eq!(body["options"]["num_predict"], 9);
        assert_eq!(body["tools"][0]["function"]["name"], "calculator");
        assert_eq!(
            body["messages"][1]["tool_calls"][0]["function"]["arguments"]["expression"],
            "1+1"
        );
    }

    #[test]
    fn incomplete_response_is_an_error() {
        let wire: ChatMessageResponse = serde_json::from_value(serde_json::json!({
            "model": "m", "created_at": "", "message": {"role": "assistant", "content": "par"}, "done": false
        }))
        .unwrap();
        let mut assembler = Assembler::default();
        assembler.absorb(wire);
        let err = assembler.finish("m", None).unwrap_err();
        assert!(err.to_string().contains("done"), "{err}");
    }
}
