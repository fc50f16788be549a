//! Span names, attribute keys and span kinds: the one place where they are spelled.
//!
//! GenAI keys alias the `opentelemetry-semantic-conventions` constants (experimental GenAI
//! conventions), so an upgrade of that crate is the only way a wire name changes. The keys that the
//! conventions do not define — the MLflow and OpenInference keys the tracker adds when a span ends —
//! are defined here.
//!
//! Callers create spans with plain `tracing` macros and these constants as field names:
//!
//! ```
//! use sextant_tracker::conventions::{self, operation};
//!
//! let model = "SmolLM2-135M-Instruct";
//! let span = tracing::info_span!(
//!     "chat",
//!     otel.name = %format!("{} {model}", operation::CHAT),
//!     { conventions::GEN_AI_OPERATION_NAME } = operation::CHAT,
//!     { conventions::GEN_AI_PROVIDER_NAME } = "local",
//!     { conventions::GEN_AI_REQUEST_MODEL } = model,
//!     { conventions::GEN_AI_USAGE_INPUT_TOKENS } = tracing::field::Empty,
//! );
//! // Integers are recorded as i64: tracing-opentelemetry turns u64 into strings.
//! span.record(conventions::GEN_AI_USAGE_INPUT_TOKENS, 42_i64);
//! ```
#![allow(deprecated)] // The GenAI constants moved to a separate semconv repository upstream; the names are unchanged.

use opentelemetry_semantic_conventions::attribute as semconv;

/// The tracing field that sets the OpenTelemetry span name (`chat SmolLM2-135M-Instruct`).
pub const OTEL_NAME: &str = "otel.name";
/// The tracing field that sets the OpenTelemetry span kind (`client`, `server`, `internal`, …).
pub const OTEL_KIND: &str = "otel.kind";
/// The tracing field that sets the span status code (`ok` or `error`).
pub const OTEL_STATUS_CODE: &str = "otel.status_code";
/// The tracing field that sets the span status to error with this description.
pub const OTEL_STATUS_DESCRIPTION: &str = "otel.status_description";

/// `gen_ai.operation.name`: what the span does (see [`operation`]).
pub const GEN_AI_OPERATION_NAME: &str = semconv::GEN_AI_OPERATION_NAME;
/// `gen_ai.provider.name`: the model provider (`ollama`, `openai`, `local`, …).
pub const GEN_AI_PROVIDER_NAME: &str = semconv::GEN_AI_PROVIDER_NAME;
/// `gen_ai.agent.name`.
pub const GEN_AI_AGENT_NAME: &str = semconv::GEN_AI_AGENT_NAME;
/// `gen_ai.agent.id`.
pub const GEN_AI_AGENT_ID: &str = semconv::GEN_AI_AGENT_ID;
/// `gen_ai.conversation.id`.
pub const GEN_AI_CONVERSATION_ID: &str = semconv::GEN_AI_CONVERSATION_ID;
/// `gen_ai.request.model`.
pub const GEN_AI_REQUEST_MODEL: &str = semconv::GEN_AI_REQUEST_MODEL;
/// `gen_ai.request.temperature`.
pub const GEN_AI_REQUEST_TEMPERATURE: &str = semconv::GEN_AI_REQUEST_TEMPERATURE;
/// `gen_ai.request.max_tokens`.
pub const GEN_AI_REQUEST_MAX_TOKENS: &str = semconv::GEN_AI_REQUEST_MAX_TOKENS;
/// `gen_ai.request.top_p`.
pub const GEN_AI_REQUEST_TOP_P: &str = semconv::GEN_AI_REQUEST_TOP_P;
/// `gen_ai.request.top_k`: also the number of documents a retrieval asks for.
pub const GEN_AI_REQUEST_TOP_K: &str = semconv::GEN_AI_REQUEST_TOP_K;
/// `gen_ai.request.seed`.
pub const GEN_AI_REQUEST_SEED: &str = semconv::GEN_AI_REQUEST_SEED;
/// `gen_ai.request.stream`: whether the chat response was streamed.
pub const GEN_AI_REQUEST_STREAM: &str = semconv::GEN_AI_REQUEST_STREAM;
/// `gen_ai.response.model`.
pub const GEN_AI_RESPONSE_MODEL: &str = semconv::GEN_AI_RESPONSE_MODEL;
/// `gen_ai.response.id`.
pub const GEN_AI_RESPONSE_ID: &str = semconv::GEN_AI_RESPONSE_ID;
/// `gen_ai.response.finish_reasons` (a string array in the conventions; a JSON array string or a
/// single reason when recorded through `tracing`).
pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = semconv::GEN_AI_RESPONSE_FINISH_REASONS;
/// `gen_ai.response.time_to_first_chunk`: seconds from the request to the first streamed chunk.
pub const GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: &str = semconv::GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK;
/// `gen_ai.usage.input_tokens`.
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = semconv::GEN_AI_USAGE_INPUT_TOKENS;
/// `gen_ai.usage.output_tokens`.
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = semconv::GEN_AI_USAGE_OUTPUT_TOKENS;
/// `gen_ai.input.messages`: the chat history sent to the model, as a JSON string. Content:
/// record only when content capture is on.
pub const GEN_AI_INPUT_MESSAGES: &str = semconv::GEN_AI_INPUT_MESSAGES;
/// `gen_ai.output.messages`: the model's answer messages, as a JSON string. Content.
pub const GEN_AI_OUTPUT_MESSAGES: &str = semconv::GEN_AI_OUTPUT_MESSAGES;
/// `gen_ai.system_instructions`: the system prompt, as a JSON string. Content.
pub const GEN_AI_SYSTEM_INSTRUCTIONS: &str = semconv::GEN_AI_SYSTEM_INSTRUCTIONS;
/// `gen_ai.prompt.name`: the registry name of the prompt used.
pub const GEN_AI_PROMPT_NAME: &str = semconv::GEN_AI_PROMPT_NAME;
/// `gen_ai.tool.name`.
pub const GEN_AI_TOOL_NAME: &str = semconv::GEN_AI_TOOL_NAME;
/// `gen_ai.tool.call.id`.
pub const GEN_AI_TOOL_CALL_ID: &str = semconv::GEN_AI_TOOL_CALL_ID;
/// `gen_ai.tool.type` (`function`, `extension`, `datastore`).
pub const GEN_AI_TOOL_TYPE: &str = semconv::GEN_AI_TOOL_TYPE;
/// `gen_ai.tool.call.arguments`: JSON string. Content.
pub const GEN_AI_TOOL_CALL_ARGUMENTS: &str = semconv::GEN_AI_TOOL_CALL_ARGUMENTS;
/// `gen_ai.tool.call.result`: JSON string or text. Content.
pub const GEN_AI_TOOL_CALL_RESULT: &str = semconv::GEN_AI_TOOL_CALL_RESULT;
/// `gen_ai.tool.definitions`: the tools offered to the model, as a JSON string.
pub const GEN_AI_TOOL_DEFINITIONS: &str = semconv::GEN_AI_TOOL_DEFINITIONS;
/// `gen_ai.data_source.id`: the collection a retrieval reads.
pub const GEN_AI_DATA_SOURCE_ID: &str = semconv::GEN_AI_DATA_SOURCE_ID;
/// `gen_ai.retrieval.query.text`: the retrieval query. Content.
pub const GEN_AI_RETRIEVAL_QUERY_TEXT: &str = semconv::GEN_AI_RETRIEVAL_QUERY_TEXT;
/// `gen_ai.retrieval.documents`: the retrieved documents, as a JSON string. Content.
pub const GEN_AI_RETRIEVAL_DOCUMENTS: &str = semconv::GEN_AI_RETRIEVAL_DOCUMENTS;
/// `gen_ai.token.type`: metric attribute, `input` or `output`.
pub const GEN_AI_TOKEN_TYPE: &str = semconv::GEN_AI_TOKEN_TYPE;
/// `error.type`: the class of error a failed operation ended with.
pub const ERROR_TYPE: &str = semconv::ERROR_TYPE;
/// `session.id`.
pub const SESSION_ID: &str = semconv::SESSION_ID;
/// `user.id`.
pub const USER_ID: &str = semconv::USER_ID;
/// `http.request.method` of a server span (`POST`).
pub const HTTP_REQUEST_METHOD: &str = semconv::HTTP_REQUEST_METHOD;
/// `http.route`: the matched route template (`/v1/agents/{name}/invoke`).
pub const HTTP_ROUTE: &str = semconv::HTTP_ROUTE;
/// `http.response.status_code`.
pub const HTTP_RESPONSE_STATUS_CODE: &str = semconv::HTTP_RESPONSE_STATUS_CODE;

/// `mlflow.spanType`: MLflow's span type (see [`GenAiSpanKind::mlflow_span_type`]).
pub const MLFLOW_SPAN_TYPE: &str = "mlflow.spanType";
/// `mlflow.spanInputs`: the span's inputs as JSON, shown by the MLflow trace UI.
pub const MLFLOW_SPAN_INPUTS: &str = "mlflow.spanInputs";
/// `mlflow.spanOutputs`: the span's outputs as JSON.
pub const MLFLOW_SPAN_OUTPUTS: &str = "mlflow.spanOutputs";
/// `mlflow.chat.tokenUsage`: `{"input_tokens":N,"output_tokens":M,"total_tokens":N+M}`.
pub const MLFLOW_CHAT_TOKEN_USAGE: &str = "mlflow.chat.tokenUsage";
/// `mlflow.traceTag.mlflow.linkedPrompts`: on the root span, the prompt versions the trace used
/// (JSON `[{"name": …, "version": "3"}]`); MLflow's OTLP ingest turns it into the trace tag
/// `mlflow.linkedPrompts` that its UI and `mlflow.get_trace` show.
pub const MLFLOW_LINKED_PROMPTS: &str = "mlflow.traceTag.mlflow.linkedPrompts";
/// `openinference.span.kind`: the OpenInference span kind read by Phoenix.
pub const OPENINFERENCE_SPAN_KIND: &str = "openinference.span.kind";

/// `sextant.tool.result.chars`: the length of a tool result that was cut to the size limit, in
/// characters (set only when it was cut).
pub const SEXTANT_TOOL_RESULT_CHARS: &str = "sextant.tool.result.chars";

/// `sextant.prompt.version`: the registry version of the prompt used (the conventions name the
/// prompt but not its version).
pub const SEXTANT_PROMPT_VERSION: &str = "sextant.prompt.version";
/// `sextant.agent.version`: the registered agent configuration that ran the turn,
/// `models:/name/version` (set when the agent was loaded from the model registry).
pub const SEXTANT_AGENT_VERSION: &str = "sextant.agent.version";
/// `sextant.prompt.alias`: the alias the prompt was named by (`production`, `latest` …), if any.
pub const SEXTANT_PROMPT_ALIAS: &str = "sextant.prompt.alias";
/// `sextant.prompt.uri`: the exact version used, `prompts:/name/version`.
pub const SEXTANT_PROMPT_URI: &str = "sextant.prompt.uri";

/// Metric names and bucket boundaries of the GenAI client metrics.
pub mod metric {
    #![allow(deprecated)]
    use opentelemetry_semantic_conventions::metric as semconv;

    /// `gen_ai.client.token.usage`: histogram of tokens per operation, unit `{token}`.
    pub const GEN_AI_CLIENT_TOKEN_USAGE: &str = semconv::GEN_AI_CLIENT_TOKEN_USAGE;
    /// `gen_ai.client.operation.duration`: histogram of operation durations, unit `s`.
    pub const GEN_AI_CLIENT_OPERATION_DURATION: &str = semconv::GEN_AI_CLIENT_OPERATION_DURATION;

    /// Bucket boundaries the conventions recommend for `gen_ai.client.token.usage`.
    pub const TOKEN_USAGE_BOUNDARIES: [f64; 14] = [
        1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
        4194304.0, 16777216.0, 67108864.0,
    ];
    /// Bucket boundaries the conventions recommend for `gen_ai.client.operation.duration`.
    pub const OPERATION_DURATION_BOUNDARIES: [f64; 14] = [
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ];

    /// `http.server.request.duration`: histogram of HTTP server request durations, unit `s`.
    pub const HTTP_SERVER_REQUEST_DURATION: &str = semconv::HTTP_SERVER_REQUEST_DURATION;
    /// `http.server.active_requests`: requests in flight, unit `{request}`.
    pub const HTTP_SERVER_ACTIVE_REQUESTS: &str = semconv::HTTP_SERVER_ACTIVE_REQUESTS;
    /// Bucket boundaries for `http.server.request.duration`: the conventions' advice up to 10 s,
    /// extended to two minutes because an agent turn on a local model takes seconds.
    pub const HTTP_SERVER_DURATION_BOUNDARIES: [f64; 17] = [
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0,
        60.0, 120.0,
    ];
}

/// Values of `gen_ai.operation.name`, which are also the first word of span names.
pub mod operation {
    /// A chat completion.
    pub const CHAT: &str = "chat";
    /// A plain text completion.
    pub const TEXT_COMPLETION: &str = "text_completion";
    /// A multimodal content generation (Gemini style).
    pub const GENERATE_CONTENT: &str = "generate_content";
    /// One agent turn: the root span of a trace.
    pub const INVOKE_AGENT: &str = "invoke_agent";
    /// Creating an agent.
    pub const CREATE_AGENT: &str = "create_agent";
    /// One tool call.
    pub const EXECUTE_TOOL: &str = "execute_tool";
    /// Computing embeddings.
    pub const EMBEDDINGS: &str = "embeddings";
    /// Retrieving context from memory.
    pub const RETRIEVAL: &str = "retrieval";
}

/// Span names of the steps that have no `gen_ai.operation.name` value (their first word).
pub mod span_name {
    /// Prompt construction: registry lookup and render (`prompt {name}`).
    pub const PROMPT: &str = "prompt";
    /// A vector-store query (`vector_search {collection}`).
    pub const VECTOR_SEARCH: &str = "vector_search";
    /// Reranking retrieved documents.
    pub const RERANK: &str = "rerank";
    /// Planning a tool's query.
    pub const PLAN_QUERY: &str = "plan_query";
    /// Post-processing a tool's results.
    pub const PROCESS_RESULTS: &str = "process_results";
}

/// What a span is, in the terms that MLflow and OpenInference (Phoenix) render.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GenAiSpanKind {
    /// An agent turn (`invoke_agent`).
    Agent,
    /// A chat or completion call to a model (`chat`).
    ChatModel,
    /// A tool call (`execute_tool`).
    Tool,
    /// A retrieval or vector search.
    Retriever,
    /// Computing embeddings.
    Embedding,
    /// Reranking documents.
    Reranker,
    /// Prompt construction and other parsing steps.
    Parser,
    /// Any other step.
    Chain,
}

impl GenAiSpanKind {
    /// The `mlflow.spanType` value.
    pub fn mlflow_span_type(self) -> &'static str {
        match self {
            Self::Agent => "AGENT",
            Self::ChatModel => "CHAT_MODEL",
            Self::Tool => "TOOL",
            Self::Retriever => "RETRIEVER",
            Self::Embedding => "EMBEDDING",
            Self::Reranker => "RERANKER",
            Self::Parser => "PARSER",
            Self::Chain => "CHAIN",
        }
    }

    /// The `openinference.span.kind` value (OpenInference has no parser kind: a parser is a chain).
    pub fn openinference_kind(self) -> &'static str {
        match self {
            Self::Agent => "AGENT",
            Self::ChatModel => "LLM",
            Self::Tool => "TOOL",
            Self::Retriever => "RETRIEVER",
            Self::Embedding => "EMBEDDING",
            Self::Reranker => "RERANKER",
            Self::Parser | Self::Chain => "CHAIN",
        }
    }

    /// Classifies a span from its `gen_ai.operation.name` value and, when that is absent or
    /// unknown, from the first word of its span name.
    ///
    /// ```
    /// use sextant_tracker::GenAiSpanKind;
    /// assert_eq!(GenAiSpanKind::classify(Some("chat"), "chat gpt-4o"), GenAiSpanKind::ChatModel);
    /// assert_eq!(GenAiSpanKind::classify(None, "prompt rag-system"), GenAiSpanKind::Parser);
    /// assert_eq!(GenAiSpanKind::classify(None, "plan_query"), GenAiSpanKind::Chain);
    /// ```
    pub fn classify(operation_name: Option<&str>, span_name: &str) -> Self {
        operation_name
            .and_then(Self::from_operation_name)
            .or_else(|| Self::from_operation_name(first_word(span_name)))
            .or_else(|| Self::from_span_name(span_name))
            .unwrap_or(Self::Chain)
    }

    /// The kind a `gen_ai.operation.name` value stands for, if it is one we know.
    pub fn from_operation_name(operation_name: &str) -> Option<Self> {
        match operation_name {
            operation::CHAT | operation::TEXT_COMPLETION | operation::GENERATE_CONTENT => {
                Some(Self::ChatModel)
            }
            operation::INVOKE_AGENT | operation::CREATE_AGENT => Some(Self::Agent),
            operation::EXECUTE_TOOL => Some(Self::Tool),
            operation::EMBEDDINGS => Some(Self::Embedding),
            operation::RETRIEVAL => Some(Self::Retriever),
            _ => None,
        }
    }

    fn from_span_name(span_name: &str) -> Option<Self> {
        match first_word(span_name) {
            span_name::PROMPT => Some(Self::Parser),
            span_name::RERANK => Some(Self::Reranker),
            span_name::VECTOR_SEARCH => Some(Self::Retriever),
            _ => None,
        }
    }
}

fn first_word(span_name: &str) -> &str {
    span_name.split_whitespace().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire names that MLflow, Phoenix and Langfuse read; a semconv upgrade that renames one
    /// fails here instead of silently changing what the backends receive.
    #[test]
    fn keys_are_the_semantic_convention_names() {
        let expected = [
            (GEN_AI_OPERATION_NAME, "gen_ai.operation.name"),
            (GEN_AI_PROVIDER_NAME, "gen_ai.provider.name"),
            (GEN_AI_AGENT_NAME, "gen_ai.agent.name"),
            (GEN_AI_AGENT_ID, "gen_ai.agent.id"),
            (GEN_AI_CONVERSATION_ID, "gen_ai.conversation.id"),
            (GEN_AI_REQUEST_MODEL, "gen_ai.request.model"),
            (GEN_AI_REQUEST_TEMPERATURE, "gen_ai.request.temperature"),
            (GEN_AI_REQUEST_MAX_TOKENS, "gen_ai.request.max_tokens"),
            (GEN_AI_REQUEST_TOP_P, "gen_ai.request.top_p"),
            (GEN_AI_REQUEST_TOP_K, "gen_ai.request.top_k"),
            (GEN_AI_REQUEST_SEED, "gen_ai.request.seed"),
            (GEN_AI_RESPONSE_MODEL, "gen_ai.response.model"),
            (GEN_AI_RESPONSE_ID, "gen_ai.response.id"),
            (
                GEN_AI_RESPONSE_FINISH_REASONS,
                "gen_ai.response.finish_reasons",
            ),
            (
                GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
                "gen_ai.response.time_to_first_chunk",
            ),
            (GEN_AI_USAGE_INPUT_TOKENS, "gen_ai.usage.input_tokens"),
            (GEN_AI_USAGE_OUTPUT_TOKENS, "gen_ai.usage.output_tokens"),
            (GEN_AI_INPUT_MESSAGES, "gen_ai.input.messages"),
            (GEN_AI_OUTPUT_MESSAGES, "gen_ai.output.messages"),
            (GEN_AI_SYSTEM_INSTRUCTIONS, "gen_ai.system_instructions"),
            (GEN_AI_TOOL_NAME, "gen_ai.tool.name"),
            (GEN_AI_TOOL_CALL_ID, "gen_ai.tool.call.id"),
            (GEN_AI_TOOL_TYPE, "gen_ai.tool.type"),
            (GEN_AI_TOOL_CALL_ARGUMENTS, "gen_ai.tool.call.arguments"),
            (GEN_AI_TOOL_CALL_RESULT, "gen_ai.tool.call.result"),
            (GEN_AI_TOOL_DEFINITIONS, "gen_ai.tool.definitions"),
            (GEN_AI_DATA_SOURCE_ID, "gen_ai.data_source.id"),
            (GEN_AI_TOKEN_TYPE, "gen_ai.token.type"),
            (ERROR_TYPE, "error.type"),
            (SESSION_ID, "session.id"),
            (USER_ID, "user.id"),
            (
                metric::GEN_AI_CLIENT_TOKEN_USAGE,
                "gen_ai.client.token.usage",
            ),
            (
                metric::GEN_AI_CLIENT_OPERATION_DURATION,
                "gen_ai.client.operation.duration",
            ),
        ];
        for (ours, wire) in expected {
            assert_eq!(ours, wire);
        }
    }

    #[test]
    fn operation_names_map_to_span_kinds() {
        let cases = [
            (
                Some("chat"),
                "chat m",
                GenAiSpanKind::ChatModel,
                "CHAT_MODEL",
                "LLM",
            ),
            (
                Some("invoke_agent"),
                "invoke_agent a",
                GenAiSpanKind::Agent,
                "AGENT",
                "AGENT",
            ),
            (
                Some("execute_tool"),
                "execute_tool t",
                GenAiSpanKind::Tool,
                "TOOL",
                "TOOL",
            ),
            (
                Some("embeddings"),
                "embeddings m",
                GenAiSpanKind::Embedding,
                "EMBEDDING",
                "EMBEDDING",
            ),
            (
                Some("retrieval"),
                "retrieval c",
                GenAiSpanKind::Retriever,
                "RETRIEVER",
                "RETRIEVER",
            ),
            (None, "prompt rag", GenAiSpanKind::Parser, "PARSER", "CHAIN"),
            (
                None,
                "rerank",
                GenAiSpanKind::Reranker,
                "RERANKER",
                "RERANKER",
            ),
            (
                None,
                "vector_search docs",
                GenAiSpanKind::Retriever,
                "RETRIEVER",
                "RETRIEVER",
            ),
            (None, "plan_query", GenAiSpanKind::Chain, "CHAIN", "CHAIN"),
            (
                Some("unheard_of"),
                "chat m",
                GenAiSpanKind::ChatModel,
                "CHAT_MODEL",
                "LLM",
            ),
        ];
        for (operation, name, kind, mlflow, openinference) in cases {
            let classified = GenAiSpanKind::classify(operation, name);
            assert_eq!(classified, kind, "{operation:?} {name}");
            assert_eq!(classified.mlflow_span_type(), mlflow);
            assert_eq!(classified.openinference_kind(), openinference);
        }
    }

    /// The exact call form the other crates use: constant field names in braces, `otel.name`.
    #[test]
    fn constant_field_names_compile_in_span_macros() {
        let model = "SmolLM2-135M-Instruct";
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            let span = tracing::info_span!(
                "chat",
                otel.name = %format!("{} {model}", operation::CHAT),
                { GEN_AI_OPERATION_NAME } = operation::CHAT,
                { GEN_AI_REQUEST_MODEL } = %model,
                { GEN_AI_REQUEST_TEMPERATURE } = 0.2,
                { GEN_AI_USAGE_INPUT_TOKENS } = tracing::field::Empty,
            );
            span.record(GEN_AI_USAGE_INPUT_TOKENS, 3_i64);
            let fields: Vec<&str> = span
                .metadata()
                .expect("a registry enables the span")
                .fields()
                .iter()
                .map(|field| field.name())
                .collect();
            assert_eq!(
                fields,
                [
                    OTEL_NAME,
                    GEN_AI_OPERATION_NAME,
                    GEN_AI_REQUEST_MODEL,
                    GEN_AI_REQUEST_TEMPERATURE,
                    GEN_AI_USAGE_INPUT_TOKENS
                ]
            );
        });
    }
}
