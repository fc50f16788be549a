//! `openai`: any server that speaks the OpenAI Chat Completions API — OpenAI itself, vLLM, the
//! llama.cpp server, Groq, LM Studio … — through `async-openai`.

use std::collections::BTreeMap;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::{OpenAIError, StreamError};
use async_openai::traits::RequestOptionsBuilder;
use async_openai::types::chat::{
    ChatCompletionMessageToolCall, ChatCompletionMessageToolCalls,
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent,
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestToolMessage,
    ChatCompletionRequestToolMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionStreamOptions, ChatCompletionTool,
    ChatCompletionToolChoiceOption, ChatCompletionTools, CompletionUsage,
    CreateChatCompletionRequest, CreateChatCompletionResponse, CreateChatCompletionStreamResponse,
    FinishReason as WireFinishReason, FunctionCall, FunctionObject, ResponseFormat,
    ResponseFormatJsonSchema, StopConfiguration, ToolChoiceOptions,
};
use async_trait::async_trait;
use futures::StreamExt;
use sextant_tracker::conventions::{UrlParts, shown_url};

use super::spawn_chat_stream;
use crate::chat::{
    ChatChunk, ChatModel, ChatRequest, ChatResponse, ChatStream, FinishReason, Message, Role,
    ToolCall, ToolChoice, Usage,
};
use crate::error::{ChatError, MAX_REASON_CHARS, error_summary, transport_reason, upstream_reason};

const PROVIDER: &str = "openai";

/// A chat model behind an OpenAI-compatible endpoint.
///
/// ```no_run
/// use sextant_agent::providers::openai::OpenAiChatModel;
/// let model = OpenAiChatModel::new("http://127.0.0.1:8080/v1", None, "SmolLM2-135M-Instruct");
/// ```
pub struct OpenAiChatModel {
    client: Client<OpenAIConfig>,
    /// The server as errors name it: without credentials or query.
    endpoint: String,
    model: String,
    extra_body: serde_json::Map<String, serde_json::Value>,
}

impl OpenAiChatModel {
    /// A model named `model` at `base_url` (including the `/v1` suffix), authenticated with `api_key`
    /// when given. The key is only ever sent as the `Authorization` header.
    pub fn new(base_url: &str, api_key: Option<String>, model: &str) -> Self {
        // async-openai's reqwest is built without a bundled TLS crypto provider (to avoid compiling
        // a second one, aws-lc); use ring, which the rest of the workspace already uses. Installing
        // twice is harmless: the first provider stays.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut config = OpenAIConfig::new().with_api_base(base_url.trim_end_matches('/'));
        // async-openai reads OPENAI_API_KEY by default; an explicit "no key" must not leak one in.
        config = config.with_api_key(api_key.unwrap_or_default());
        Self {
            client: Client::with_config(config),
            endpoint: shown_url(base_url, UrlParts::Location),
            model: model.to_owned(),
            extra_body: serde_json::Map::new(),
        }
    }

    /// Adds server-specific fields to every request body, as the Python client's `extra_body`
    /// does: e.g. vLLM's `guided_json`, or the llama.cpp server's `chat_template_kwargs`. They
    /// override fields Sextant sets.
    pub fn with_extra_body(mut self, extra: serde_json::Map<String, serde_json::Value>) -> Self {
        self.extra_body = extra;
        self
    }

    fn body(&self, request: &ChatRequest, stream: bool) -> Result<serde_json::Value, ChatError> {
        let mut body = serde_json::to_value(self.wire_request(request, stream)).map_err(|e| {
            ChatError::Request {
                provider: PROVIDER.into(),
                message: format!("cannot encode the request: {e}"),
            }
        })?;
        if let Some(object) = body.as_object_mut() {
            for (key, value) in &self.extra_body {
                object.insert(key.clone(), value.clone());
            }
        }
        Ok(body)
    }

    // `seed` is deprecated by OpenAI but honoured by vLLM and the llama.cpp server.
    #[allow(deprecated)]
    fn wire_request(&self, request: &ChatRequest, stream: bool) -> CreateChatCompletionRequest {
        let options = &request.options;
        let tools: Vec<ChatCompletionTools> = request
            .tools
            .iter()
            .map(|tool| {
                ChatCompletionTools::Function(ChatCompletionTool {
                    function: FunctionObject {
                        name: tool.name.clone(),
                        description: Some(tool.description.clone()),
                        parameters: Some(tool.parameters.clone()),
                        strict: None,
                    },
                })
            })
            .collect();
        let tool_choice = (!tools.is_empty()).then_some(ChatCompletionToolChoiceOption::Mode(
            match options.tool_choice {
                ToolChoice::Auto => ToolChoiceOptions::Auto,
                ToolChoice::None => ToolChoiceOptions::None,
                ToolChoice::Required => ToolChoiceOptions::Required,
            },
        ));
        CreateChatCompletionRequest {
            model: self.model.clone(),
            messages: request.messages.iter().map(wire_message).collect(),
            temperature: options.temperature,
            top_p: options.top_p,
            max_completion_tokens: options.max_tokens,
            seed: options.seed.map(|s| s as i64),
            frequency_penalty: options.frequency_penalty,
            presence_penalty: options.presence_penalty,
            stop: (!options.stop.is_empty())
                .then(|| StopConfiguration::StringArray(options.stop.clone())),
            tools: (!tools.is_empty()).then_some(tools),
            tool_choice,
            response_format: options.output_schema.as_ref().map(|output| {
                ResponseFormat::JsonSchema {
                    json_schema: ResponseFormatJsonSchema {
                        description: None,
                        name: output.name.clone(),
                        schema: output.schema.clone(),
                        // OpenAI refuses `strict` unless every object lists all its properties
                        // as required and allows no others; such a schema is still checked
                        // after the answer.
                        strict: Some(output.is_strict()),
                    },
                }
            }),
            stream: stream.then_some(true),
            stream_options: stream.then_some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            }),
            ..Default::default()
        }
    }
}

/// Our error for an `async-openai` error; `endpoint` names the server in connection failures.
/// Bodies are summarised ([`upstream_reason`]) and reqwest's messages lose their URL, which
/// holds the base URL's credentials and query.
fn map_error(error: OpenAIError, endpoint: &str) -> ChatError {
    match error {
        OpenAIError::ApiError(response) => {
            let status = response.status_code;
            let message = if status.is_server_error() {
                // async-openai hands over a 5xx body unparsed: JSON or an HTML page, a proxy's text.
                upstream_reason(status.as_u16(), &response.api_error.message)
            } else {
                error_summary(&response.api_error.message, MAX_REASON_CHARS)
            };
            ChatError::Http {
                provider: PROVIDER.into(),
                status: status.as_u16(),
                message,
            }
        }
        OpenAIError::Reqwest(e) => {
            if let Some(status) = e.status() {
                ChatError::http(PROVIDER, status.as_u16(), "")
            } else if e.is_decode() || e.is_body() {
                ChatError::InvalidResponse {
                    provider: PROVIDER.into(),
                    message: transport_reason(&e.without_url()),
                }
            } else {
                ChatError::Connect {
                    provider: PROVIDER.into(),
                    endpoint: endpoint.to_owned(),
                    message: transport_reason(&e.without_url()),
                }
            }
        }
        // The body is the model's answer, which is content: only where parsing failed is said.
        OpenAIError::JSONDeserialize(e, body) => ChatError::InvalidResponse {
            provider: PROVIDER.into(),
            message: format!(
                "{} (a body of {} bytes)",
                error_summary(&e.to_string(), MAX_REASON_CHARS),
                body.len()
            ),
        },
        OpenAIError::StreamError(e) => {
            let message = match *e {
                // Its data would be the model's words: the event's name is enough.
                StreamError::UnknownEvent(event) => format!(
                    "an unexpected stream event `{}`",
                    error_summary(&event.event, 40)
                ),
                StreamError::EventStream(text) => error_summary(&text, MAX_REASON_CHARS),
            };
            // The SSE layer reports HTTP failures as "Invalid status code: 503 …".
            match http_status_in(&message) {
                Some(status) => ChatError::Http {
                    provider: PROVIDER.into(),
                    status,
                    message,
                },
                None => ChatError::InvalidResponse {
                    provider: PROVIDER.into(),
                    message,
                },
            }
        }
        other => ChatError::Request {
            provider: PROVIDER.into(),
            message: error_summary(&other.to_string(), MAX_REASON_CHARS),
        },
    }
}

#[async_trait]
impl ChatModel for OpenAiChatModel {
    fn provider(&self) -> &str {
        PROVIDER
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ChatError> {
        let body = self.body(request, false)?;
        let response: CreateChatCompletionResponse = self
            .client
            .chat()
            .headers(sextant_trace_context::outgoing_headers(&self.endpoint))
            .create_byot(body)
            .await
            .map_err(|e| map_error(e, &self.endpoint))?;
        from_wire_response(response)
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ChatError> {
        let body = self.body(request, true)?;
        let mut events = self
            .client
            .chat()
            .headers(sextant_trace_context::outgoing_headers(&self.endpoint))
            .create_stream_byot::<_, CreateChatCompletionStreamResponse>(body)
            .await
            .map_err(|e| map_error(e, &self.endpoint))?;
        let endpoint = self.endpoint.clone();
        let model = self.model.clone();
        let stream = spawn_chat_stream(move |tx| async move {
            let mut assembled = StreamAssembler::new(model);
            while let Some(event) = events.next().await {
                let event = match event {
                    Ok(event) => event,
                    Err(e) => {
                        let _ = tx.send(Err(map_error(e, &endpoint))).await;
                        return;
                    }
                };
                if let Some(piece) = assembled.absorb(event)
                    && tx.send(Ok(ChatChunk::Content(piece))).await.is_err()
                {
                    return;
                }
            }
            let _ = tx.send(assembled.finish().map(ChatChunk::Done)).await;
        });
        Ok(stream)
    }
}

/// Accumulates streamed deltas into one response: content, tool calls by index, usage.
struct StreamAssembler {
    content: String,
    tool_calls: BTreeMap<u32, ToolCall>,
    usage: Usage,
    finish_reason: Option<FinishReason>,
    model: String,
    id: Option<String>,
}

impl StreamAssembler {
    fn new(model: String) -> Self {
        Self {
            content: String::new(),
            tool_calls: BTreeMap::new(),
            usage: Usage::default(),
            finish_reason: None,
            model,
            id: None,
        }
    }

    fn absorb(&mut self, event: CreateChatCompletionStreamResponse) -> Option<String> {
        if !event.model.is_empty() {
            self.model = event.model;
        }
        self.id.get_or_insert(event.id);
        if let Some(usage) = event.usage {
            self.usage = from_wire_usage(&usage);
        }
        let mut piece = String::new();
        for choice in event.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(from_wire_finish(reason));
            }
            if let Some(text) = choice.delta.content {
                piece.push_str(&text);
            }
            for delta in choice.delta.tool_calls.unwrap_or_default() {
                let call = self
                    .tool_calls
                    .entry(delta.index)
                    .or_insert_with(|| ToolCall {
                        id: String::new(),
                        name: String::new(),
                        arguments: String::new(),
                    });
                if let Some(id) = delta.id {
                    call.id = id;
                }
                if let Some(function) = delta.function {
                    if let Some(name) = function.name {
                        call.name.push_str(&name);
                    }
                    if let Some(arguments) = function.arguments {
                        call.arguments.push_str(&arguments);
                    }
                }
            }
        }
        self.content.push_str(&piece);
        (!piece.is_empty()).then_some(piece)
    }

    fn finish(self) -> Result<ChatResponse, ChatError> {
        let tool_calls: Vec<ToolCall> = self
            .tool_calls
            .into_values()
            .enumerate()
            .map(|(i, mut call)| {
                if call.id.is_empty() {
                    call.id = format!("call_{i}");
                }
                call
            })
            .collect();
        let finish_reason = self.finish_reason.unwrap_or(if tool_calls.is_empty() {
            FinishReason::Stop
        } else {
            FinishReason::ToolCalls
        });
        Ok(ChatResponse {
            content: self.content,
            tool_calls,
            usage: self.usage,
            finish_reason,
            model: self.model,
            id: self.id,
        })
    }
}

fn wire_message(message: &Message) -> ChatCompletionRequestMessage {
    match message.role {
        Role::System => ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
            content: ChatCompletionRequestSystemMessageContent::Text(message.content.clone()),
            name: None,
        }),
        Role::User => ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
            content: ChatCompletionRequestUserMessageContent::Text(message.content.clone()),
            name: None,
        }),
        Role::Assistant => {
            let tool_calls: Vec<ChatCompletionMessageToolCalls> = message
                .tool_calls
                .iter()
                .map(|call| {
                    ChatCompletionMessageToolCalls::Function(ChatCompletionMessageToolCall {
                        id: call.id.clone(),
                        function: FunctionCall {
                            name: call.name.clone(),
                            arguments: call.arguments.clone(),
                        },
                    })
                })
                .collect();
            ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                content: (!message.content.is_empty() || tool_calls.is_empty()).then(|| {
                    ChatCompletionRequestAssistantMessageContent::Text(message.content.clone())
                }),
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                ..Default::default()
            })
        }
        Role::Tool => ChatCompletionRequestMessage::Tool(ChatCompletionRequestToolMessage {
            content: ChatCompletionRequestToolMessageContent::Text(message.content.clone()),
            tool_call_id: message.tool_call_id.clone().unwrap_or_default(),
        }),
    }
}

fn from_wire_response(response: CreateChatCompletionResponse) -> Result<ChatResponse, ChatError> {
    let choice = response
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ChatError::InvalidResponse {
            provider: PROVIDER.into(),
            message: "the response has no choices".into(),
        })?;
    let tool_calls: Vec<ToolCall> = choice
        .message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .filter_map(|call| match call {
            ChatCompletionMessageToolCalls::Function(call) => Some(ToolCall {
                id: call.id,
                name: call.function.name,
                arguments: call.function.arguments,
            }),
            ChatCompletionMessageToolCalls::Custom(_) => None,
        })
        .collect();
    let finish_reason =
        choice
            .finish_reason
            .map(from_wire_finish)
            .unwrap_or(if tool_calls.is_empty() {
                FinishReason::Stop
            } else {
                FinishReason::ToolCalls
            });
    Ok(ChatResponse {
        content: choice.message.content.unwrap_or_default(),
        tool_calls,
        usage: response
            .usage
            .as_ref()
            .map(from_wire_usage)
            .unwrap_or_default(),
        finish_reason,
        model: response.model,
        id: Some(response.id),
    })
}

fn from_wire_usage(usage: &CompletionUsage) -> Usage {
    Usage {
        input_tokens: usage.prompt_tokens.into(),
        output_tokens: usage.completion_tokens.into(),
        cached_input_tokens: usage
            .prompt_tokens_details
            .as_ref()
            .and_then(|details| details.cached_tokens)
            .map_or(0, u64::from),
        reasoning_tokens: usage
            .completion_tokens_details
            .as_ref()
            .and_then(|details| details.reasoning_tokens)
            .map_or(0, u64::from),
        cost_nanos: None,
    }
}

fn from_wire_finish(reason: WireFinishReason) -> FinishReason {
    match reason {
        WireFinishReason::Stop => FinishReason::Stop,
        WireFinishReason::Length => FinishReason::Length,
        WireFinishReason::ToolCalls | WireFinishReason::FunctionCall => FinishReason::ToolCalls,
        WireFinishReason::ContentFilter => FinishReason::ContentFilter,
    }
}

/// The first three-digit HTTP error status mentioned in `message`, if any.
fn http_status_in(message: &str) -> Option<u16> {
    message
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| part.len() == 3)
        .filter_map(|part| part.parse::<u16>().ok())
        .find(|status| (400..600).contains(status))
}

/// Embeddings from an OpenAI-compatible server's `/v1/embeddings` (OpenAI, vLLM, the llama.cpp
/// server started with `--embeddings`, …), through the same client as [`OpenAiChatModel`].
pub struct OpenAiEmbedder {
    client: Client<OpenAIConfig>,
    /// The server as errors name it: without credentials or query.
    endpoint: String,
    model: String,
    dimension: usize,
    max_batch: usize,
}

impl OpenAiEmbedder {
    /// The embedding model `model` at `base_url` (with `/v1`), whose vectors have `dimension`
    /// entries; the key, if any, is only sent as the `Authorization` header.
    pub fn new(base_url: &str, api_key: Option<String>, model: &str, dimension: usize) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = OpenAIConfig::new()
            .with_api_base(base_url.trim_end_matches('/'))
            .with_api_key(api_key.unwrap_or_default());
        Self {
            client: Client::with_config(config),
            endpoint: shown_url(base_url, UrlParts::Location),
            model: model.to_owned(),
            dimension,
            max_batch: 32,
        }
    }

    /// Sends at most `max_batch` texts per request.
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }
}

#[async_trait::async_trait]
impl sextant_memory::Embedder for OpenAiEmbedder {
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
        use async_openai::types::embeddings::{CreateEmbeddingRequest, EmbeddingInput};
        let request = CreateEmbeddingRequest {
            model: self.model.clone(),
            input: EmbeddingInput::StringArray(texts.to_vec()),
            ..Default::default()
        };
        let response = self
            .client
            .embeddings()
            .headers(sextant_trace_context::outgoing_headers(&self.endpoint))
            .create(request)
            .await
            .map_err(|error| sextant_memory::EmbedError::Upstream {
                model: self.model.clone(),
                message: map_error(error, &self.endpoint).to_string(),
            })?;
        let mut data = response.data;
        data.sort_by_key(|embedding| embedding.index);
        Ok(sextant_memory::Embeddings {
            vectors: data
                .into_iter()
                .map(|embedding| embedding.embedding)
                .collect(),
            input_tokens: Some(u64::from(response.usage.prompt_tokens)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatOptions, ToolDefinition};

    #[test]
    fn request_carries_tools_choice_and_stream_usage() {
        let model = OpenAiChatModel::new("http://127.0.0.1:1/v1/", None, "m");
        let request = ChatRequest {
            messages: vec![Message::system("s"), Message::user("u")],
            tools: vec![ToolDefinition {
                name: "calculator".into(),
                description: "d".into(),
                parameters: serde_json::json!({"type": "object"}),
                examples: Vec::new(),
            }],
            options: ChatOptions {
                tool_choice: ToolChoice::Required,
                max_tokens: Some(7),
                ..Default::default()
            },
        };
        let wire = serde_json::to_value(model.wire_request(&request, true)).unwrap();
        assert_eq!(wire["tool_choice"], "required");
        assert_eq!(wire["tools"][0]["type"], "function");
        assert_eq!(wire["tools"][0]["function"]["name"], "calculator");
        assert_eq!(wire["stream_options"]["include_usage"], true);
        assert_eq!(wire["max_completion_tokens"], 7);
        assert_eq!(wire["messages"][1]["role"], "user");
    }

    #[test]
    fn extra_body_fields_override_and_extend_the_request() {
        let extra = serde_json::json!({"chat_template_kwargs": {"force_tool_call": true}, "temperature": 0.5});
        let model = OpenAiChatModel::new("http://127.0.0.1:1/v1", None, "m")
            .with_extra_body(extra.as_object().unwrap().clone());
        let request = ChatRequest {
            messages: vec![Message::user("u")],
            options: ChatOptions {
                temperature: Some(0.0),
                ..Default::default()
            },
            ..Default::default()
        };
        let body = model.body(&request, false).unwrap();
        assert_eq!(body["chat_template_kwargs"]["force_tool_call"], true);
        assert_eq!(body["temperature"], 0.5);
        assert_eq!(body["model"], "m");
    }

    #[test]
    fn stream_assembler_joins_tool_call_fragments_by_index() {
        let mut assembler = StreamAssembler::new("m".into());
        let events = [
            serde_json::json!({"id":"x","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"calc","arguments":"{\"ex"}}]}}]}),
            serde_json::json!({"id":"x","object":"chat.completion.chunk","created":0,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"pression\":\"1+1\"}"}}]},"finish_reason":"tool_calls"}]}),
            serde_json::json!({"id":"x","object":"chat.completion.chunk","created":0,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}),
        ];
        for event in events {
            assembler.absorb(serde_json::from_value(event).unwrap());
        }
        let response = assembler.finish().unwrap();
        assert_eq!(response.tool_calls.len(), 1);
        assert_eq!(response.tool_calls[0].arguments, r#"{"expression":"1+1"}"#);
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            response.usage,
            Usage {
                input_tokens: 5,
                output_tokens: 3,
                ..Usage::default()
            }
        );
    }

    #[test]
    fn finds_http_status_in_stream_errors() {
        assert_eq!(
            http_status_in("Invalid status code: 503 Service Unavailable"),
            Some(503)
        );
        assert_eq!(http_status_in("connection reset after 200 bytes"), None);
    }
}
