//! Span names, attribute keys and span kinds of Sextant's telemetry: the one place where they are
//! spelled. The tracker re-exports this crate as `sextant_tracker::conventions`; memory and tools,
//! which do not depend on the tracker, read it directly, so every crate records the same names.
//!
//! Standard keys alias the `opentelemetry-semantic-conventions` constants (experimental GenAI
//! conventions), so an upgrade of that crate is the only way a wire name changes. The keys that the
//! conventions do not define — the MLflow and OpenInference keys the tracker adds when a span ends,
//! and Sextant's own `sextant.*` keys — are defined here.
//!
//! [`shown_url`] is how every crate renders a URL for errors, logs and the `url.full` attribute:
//! never with credentials, and without its query where content may not be recorded.
//!
//! Callers create spans with plain `tracing` macros and these constants as span names and field
//! names:
//!
//! ```
//! use sextant_conventions::{self as conventions, operation};
//!
//! let model = "SmolLM2-135M-Instruct";
//! let span = tracing::info_span!(
//!     operation::CHAT,
//!     { conventions::OTEL_NAME } = %format!("{} {model}", operation::CHAT),
//!     { conventions::GEN_AI_OPERATION_NAME } = operation::CHAT,
//!     { conventions::GEN_AI_PROVIDER_NAME } = "local",
//!     { conventions::GEN_AI_REQUEST_MODEL } = model,
//!     { conventions::GEN_AI_USAGE_INPUT_TOKENS } = tracing::field::Empty,
//! );
//! // Integers are recorded as i64: tracing-opentelemetry turns u64 into strings.
//! span.record(conventions::GEN_AI_USAGE_INPUT_TOKENS, 42_i64);
//! ```
#![deny(missing_docs)]
#![allow(deprecated)] // The GenAI constants moved to a separate semconv repository upstream; the names are unchanged.

pub mod mcp;
pub mod metric;
pub mod operation;
mod shown_url;
mod span_kind;
pub mod span_name;

pub use shown_url::{UrlParts, shown_url};
pub use span_kind::GenAiSpanKind;

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
/// `gen_ai.request.frequency_penalty`.
pub const GEN_AI_REQUEST_FREQUENCY_PENALTY: &str = semconv::GEN_AI_REQUEST_FREQUENCY_PENALTY;
/// `gen_ai.request.presence_penalty`.
pub const GEN_AI_REQUEST_PRESENCE_PENALTY: &str = semconv::GEN_AI_REQUEST_PRESENCE_PENALTY;
/// `gen_ai.request.top_k`: also the number of documents a retrieval asks for.
pub const GEN_AI_REQUEST_TOP_K: &str = semconv::GEN_AI_REQUEST_TOP_K;
/// `gen_ai.request.seed`.
pub const GEN_AI_REQUEST_SEED: &str = semconv::GEN_AI_REQUEST_SEED;
/// `gen_ai.output.type`: the kind of answer asked for (`json` for a typed answer; unset for text).
pub const GEN_AI_OUTPUT_TYPE: &str = semconv::GEN_AI_OUTPUT_TYPE;
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
/// `gen_ai.embeddings.dimension.count`: the length of the vectors an embedder returns.
pub const GEN_AI_EMBEDDINGS_DIMENSION_COUNT: &str = semconv::GEN_AI_EMBEDDINGS_DIMENSION_COUNT;
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
/// `otel.component.name`: which telemetry component (here: which span sink) a self-metric is about.
pub const OTEL_COMPONENT_NAME: &str = semconv::OTEL_COMPONENT_NAME;
/// `sextant.telemetry.outcome`: what a span sink did with spans (`spooled`, `resent`, `dropped`,
/// `possible_duplicate`).
pub const SEXTANT_TELEMETRY_OUTCOME: &str = "sextant.telemetry.outcome";
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
/// `server.address`: the host an outgoing HTTP request went to.
pub const SERVER_ADDRESS: &str = semconv::SERVER_ADDRESS;
/// `network.peer.address`: the address of the peer a connection went to.
pub const NETWORK_PEER_ADDRESS: &str = semconv::NETWORK_PEER_ADDRESS;
/// `server.port`: the port an outgoing HTTP request went to.
pub const SERVER_PORT: &str = semconv::SERVER_PORT;
/// `mcp.method.name`: the MCP request's method (`tools/call`, `prompts/get`, …; see [`mcp`]).
pub const MCP_METHOD_NAME: &str = semconv::MCP_METHOD_NAME;
/// `mcp.session.id`: the Streamable HTTP session, when the transport has one.
pub const MCP_SESSION_ID: &str = semconv::MCP_SESSION_ID;
/// `mcp.protocol.version`: the protocol version the two sides agreed (`2025-06-18`).
pub const MCP_PROTOCOL_VERSION: &str = semconv::MCP_PROTOCOL_VERSION;
/// `mcp.resource.uri`: the resource a `resources/read` names.
pub const MCP_RESOURCE_URI: &str = semconv::MCP_RESOURCE_URI;
/// `jsonrpc.request.id`: the JSON-RPC id of an MCP request.
pub const JSONRPC_REQUEST_ID: &str = semconv::JSONRPC_REQUEST_ID;
/// `rpc.response.status_code`: the JSON-RPC error code of a failed MCP request.
pub const RPC_RESPONSE_STATUS_CODE: &str = semconv::RPC_RESPONSE_STATUS_CODE;
/// `network.transport`: `pipe` for MCP over stdio, `tcp` for Streamable HTTP.
pub const NETWORK_TRANSPORT: &str = semconv::NETWORK_TRANSPORT;
/// `sextant.mcp.server`: the name of the MCP server in `[mcp.servers]` a client span talks to.
pub const SEXTANT_MCP_SERVER: &str = "sextant.mcp.server";
/// `rpc.system.name`: `jsonrpc` for A2A and MCP requests.
pub const RPC_SYSTEM_NAME: &str = semconv::RPC_SYSTEM_NAME;
/// `rpc.method`: the JSON-RPC method of an A2A request (`SendMessage`).
pub const RPC_METHOD: &str = semconv::RPC_METHOD;
/// `gen_ai.workflow.name`: the workflow an `invoke_workflow` span runs.
pub const GEN_AI_WORKFLOW_NAME: &str = "gen_ai.workflow.name";
/// `sextant.workflow.node`: the node of a workflow a span runs.
pub const SEXTANT_WORKFLOW_NODE: &str = "sextant.workflow.node";
/// `sextant.workflow.node.kind`: `agent`, `tool`, `workflow`, `sequence`, `parallel`, `loop` or
/// `router`.
pub const SEXTANT_WORKFLOW_NODE_KIND: &str = "sextant.workflow.node.kind";
/// `sextant.workflow.iteration`: the iteration of a loop node (from 1).
pub const SEXTANT_WORKFLOW_ITERATION: &str = "sextant.workflow.iteration";
/// `sextant.workflow.route`: the branch a router node chose.
pub const SEXTANT_WORKFLOW_ROUTE: &str = "sextant.workflow.route";
/// `sextant.handoff.from`: the agent that handed the conversation over.
pub const SEXTANT_HANDOFF_FROM: &str = "sextant.handoff.from";
/// `sextant.handoff.to`: the agent that took the conversation over.
pub const SEXTANT_HANDOFF_TO: &str = "sextant.handoff.to";
/// `sextant.agent.depth`: how deep an agent called as a tool is (the top agent is 0).
pub const SEXTANT_AGENT_DEPTH: &str = "sextant.agent.depth";
/// `sextant.turn.id`: the durable turn an agent span runs (its id in the turn store).
pub const SEXTANT_TURN_ID: &str = "sextant.turn.id";
/// `sextant.turn.status`: where the turn was when the agent span ended: `completed`,
/// `awaiting_approval` (paused for a person) or `failed`.
pub const SEXTANT_TURN_STATUS: &str = "sextant.turn.status";
/// `sextant.turn.resumed`: `true` on the agent span of a turn's part run after a pause or a crash.
pub const SEXTANT_TURN_RESUMED: &str = "sextant.turn.resumed";
/// `sextant.approval.decision`: `approve`, `deny` or `edit`, on an `approval {tool}` span.
pub const SEXTANT_APPROVAL_DECISION: &str = "sextant.approval.decision";
/// `sextant.approval.reason`: why the call needed approval.
pub const SEXTANT_APPROVAL_REASON: &str = "sextant.approval.reason";
/// `sextant.approval.by`: who decided (a principal), when known.
pub const SEXTANT_APPROVAL_BY: &str = "sextant.approval.by";
/// `sextant.replay.of`: on a `replay {agent}` span, the recorded trace the turn replays.
pub const SEXTANT_REPLAY_OF: &str = "sextant.replay.of";
/// `sextant.replay.diverged`: whether the replay left its recording.
pub const SEXTANT_REPLAY_DIVERGED: &str = "sextant.replay.diverged";
/// `sextant.usage.cost`: what a model call cost, in [`SEXTANT_USAGE_COST_CURRENCY`], from the
/// price table (input, cached input and output tokens at their prices). On an agent span, the sum
/// of its calls. Absent when the model has no price: unknown is not free.
pub const SEXTANT_USAGE_COST: &str = "sextant.usage.cost";
/// `gen_ai.usage.cache_read.input_tokens`: prompt tokens the provider served from its cache
/// (counted in the input tokens too).
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str =
    semconv::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS;
/// `gen_ai.usage.reasoning.output_tokens`: generated tokens spent reasoning (counted in the
/// output tokens too).
pub const GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: &str =
    semconv::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS;
/// `mlflow.llm.cost`: MLflow's cost of a model call, JSON `{"input_cost", "output_cost",
/// "total_cost"}` in US dollars; MLflow 3.17's OTLP ingest keeps it as sent (and computes its
/// own only when it is absent) and sums it into the trace's `mlflow.trace.cost`.
pub const MLFLOW_LLM_COST: &str = "mlflow.llm.cost";
/// `sextant.usage.cost.currency`: the currency of [`SEXTANT_USAGE_COST`] (`USD`).
pub const SEXTANT_USAGE_COST_CURRENCY: &str = "sextant.usage.cost.currency";
/// `sextant.stop_reason`: on an agent span, why the turn ended (`answered`, `max_steps`,
/// `awaiting_approval`, `budget`).
pub const SEXTANT_STOP_REASON: &str = "sextant.stop_reason";
/// `sextant.scorer`: the scorer (code or LLM judge) a score or an evaluation span is from.
pub const SEXTANT_SCORER: &str = "sextant.scorer";
/// `sextant.monitor.result`: a monitor's score as `pass`, `fail` or `error`.
pub const SEXTANT_MONITOR_RESULT: &str = "sextant.monitor.result";
/// `gen_ai.evaluation.name`: on a `gen_ai.evaluation.result` event, what was evaluated for.
pub const GEN_AI_EVALUATION_NAME: &str = semconv::GEN_AI_EVALUATION_NAME;
/// `gen_ai.evaluation.score.value`: the evaluation's numeric score (pass = 1, fail = 0).
pub const GEN_AI_EVALUATION_SCORE_VALUE: &str = semconv::GEN_AI_EVALUATION_SCORE_VALUE;
/// `gen_ai.evaluation.score.label`: the evaluation's verdict as a label (`pass`, `fail`).
pub const GEN_AI_EVALUATION_SCORE_LABEL: &str = semconv::GEN_AI_EVALUATION_SCORE_LABEL;
/// `gen_ai.evaluation.explanation`: why the evaluation scored what it did.
pub const GEN_AI_EVALUATION_EXPLANATION: &str = semconv::GEN_AI_EVALUATION_EXPLANATION;
/// `gen_ai.evaluation.result`: the event the GenAI conventions define for one evaluation,
/// parented to the evaluated operation.
pub const GEN_AI_EVALUATION_RESULT: &str = "gen_ai.evaluation.result";
/// `sextant.budget.exceeded`: on an agent span whose `[budget]` stopped it, which limit and by
/// how much.
pub const SEXTANT_BUDGET_EXCEEDED: &str = "sextant.budget.exceeded";
/// `sextant.guardrail.name`: the guardrail a `guardrail {name}` span checked.
pub const SEXTANT_GUARDRAIL_NAME: &str = "sextant.guardrail.name";
/// `sextant.guardrail.stage`: what it checked: `input`, `tool_arguments`, `tool_result`, `output`.
pub const SEXTANT_GUARDRAIL_STAGE: &str = "sextant.guardrail.stage";
/// `sextant.guardrail.action`: what a failure does: `block`, `redact`, `warn`, `retry`.
pub const SEXTANT_GUARDRAIL_ACTION: &str = "sextant.guardrail.action";
/// `sextant.guardrail.result`: `pass`, `fail`, or `error` (the check itself failed; the turn goes
/// on as if it passed only for `warn`, and is blocked for `block`).
pub const SEXTANT_GUARDRAIL_RESULT: &str = "sextant.guardrail.result";
/// `sextant.guardrail.reason`: why it failed, in words that quote no content.
pub const SEXTANT_GUARDRAIL_REASON: &str = "sextant.guardrail.reason";
/// On the agent span: the guardrail that stopped the turn (`sextant.stop_reason = blocked`).
pub const SEXTANT_GUARDRAIL_BLOCKED: &str = "sextant.guardrail.blocked";
/// The `guardrail` span name prefix: `guardrail {name}`.
pub const GUARDRAIL_SPAN: &str = "guardrail";
/// On the agent span: the name of the output schema its answer must follow (typed answers).
pub const SEXTANT_OUTPUT_SCHEMA: &str = "sextant.output.schema";
/// On the agent span: why the first answer broke the output schema, when it was asked again.
pub const SEXTANT_OUTPUT_RETRY: &str = "sextant.output.retry";
/// `url.full`: the URL requested, never with credentials, and with its query only when content
/// capture is on (it can hold the user's words): record it through [`shown_url`].
pub const URL_FULL: &str = semconv::URL_FULL;

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
/// On a service's server span: who owns the turn (the API key's user id, `KEYUSER/ENDUSER` for
/// an end user a service key named, the asserted user id without keys, empty for nobody). The
/// service shows a trace only to its owner (and admins).
pub const SEXTANT_OWNER: &str = "sextant.owner";
/// `sextant.redaction.count`: how many secrets and personal values the redaction processor
/// replaced with placeholders on this span (set only when it replaced any).
pub const SEXTANT_REDACTION_COUNT: &str = "sextant.redaction.count";
/// On a service's server span: the `traceparent` a caller sent that was not continued (it is
/// linked instead).
pub const SEXTANT_CALLER_TRACEPARENT: &str = "sextant.caller.traceparent";
/// `sextant.prompt.alias`: the alias the prompt was named by (`production`, `latest` …), if any.
pub const SEXTANT_PROMPT_ALIAS: &str = "sextant.prompt.alias";
/// `sextant.prompt.uri`: the exact version used, `prompts:/name/version`.
pub const SEXTANT_PROMPT_URI: &str = "sextant.prompt.uri";

/// `sextant.embeddings.inputs`: how many texts one embeddings call embedded.
pub const SEXTANT_EMBEDDINGS_INPUTS: &str = "sextant.embeddings.inputs";
/// `sextant.retrieval.candidates`: how many candidates the vector search returned.
pub const SEXTANT_RETRIEVAL_CANDIDATES: &str = "sextant.retrieval.candidates";
/// `sextant.retrieval.score_threshold`: the lowest similarity a candidate may have.
pub const SEXTANT_RETRIEVAL_SCORE_THRESHOLD: &str = "sextant.retrieval.score_threshold";
/// `sextant.retrieval.filter`: the payload filter, as JSON.
pub const SEXTANT_RETRIEVAL_FILTER: &str = "sextant.retrieval.filter";
/// `sextant.rerank.method`: how candidates were ranked (`mmr`, `none`).
pub const SEXTANT_RERANK_METHOD: &str = "sextant.rerank.method";
/// `sextant.rerank.mmr_lambda`: MMR's relevance/diversity trade-off (1 = relevance only).
pub const SEXTANT_RERANK_MMR_LAMBDA: &str = "sextant.rerank.mmr_lambda";
/// `sextant.vector_store.backend`: which store answered (`embedded`, `qdrant`).
pub const SEXTANT_VECTOR_STORE_BACKEND: &str = "sextant.vector_store.backend";

/// `sextant.search.backend`: which search backend answered (`corpus`, `searxng`, `brave`, …).
pub const SEXTANT_SEARCH_BACKEND: &str = "sextant.search.backend";
/// `sextant.search.query`: the query as the model wrote it. Content.
pub const SEXTANT_SEARCH_QUERY: &str = "sextant.search.query";
/// `sextant.search.query.rewritten`: the query as sent to the backend. Content.
pub const SEXTANT_SEARCH_QUERY_REWRITTEN: &str = "sextant.search.query.rewritten";
/// `sextant.search.query.terms`: how many search terms the planned query has.
pub const SEXTANT_SEARCH_QUERY_TERMS: &str = "sextant.search.query.terms";
/// `sextant.search.results.received`: results the backend returned.
pub const SEXTANT_SEARCH_RESULTS_RECEIVED: &str = "sextant.search.results.received";
/// `sextant.search.results.duplicates`: results dropped as duplicates of a higher-ranked one.
pub const SEXTANT_SEARCH_RESULTS_DUPLICATES: &str = "sextant.search.results.duplicates";
/// `sextant.search.results.returned`: results passed to the model.
pub const SEXTANT_SEARCH_RESULTS_RETURNED: &str = "sextant.search.results.returned";
/// `sextant.search.results.urls`: the cited URLs, in order, as a JSON array. Content.
pub const SEXTANT_SEARCH_RESULTS_URLS: &str = "sextant.search.results.urls";

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
            (
                GEN_AI_REQUEST_FREQUENCY_PENALTY,
                "gen_ai.request.frequency_penalty",
            ),
            (
                GEN_AI_REQUEST_PRESENCE_PENALTY,
                "gen_ai.request.presence_penalty",
            ),
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
            (OTEL_COMPONENT_NAME, "otel.component.name"),
            (SESSION_ID, "session.id"),
            (USER_ID, "user.id"),
            (
                GEN_AI_EMBEDDINGS_DIMENSION_COUNT,
                "gen_ai.embeddings.dimension.count",
            ),
            (GEN_AI_REQUEST_STREAM, "gen_ai.request.stream"),
            (GEN_AI_PROMPT_NAME, "gen_ai.prompt.name"),
            (GEN_AI_RETRIEVAL_QUERY_TEXT, "gen_ai.retrieval.query.text"),
            (GEN_AI_RETRIEVAL_DOCUMENTS, "gen_ai.retrieval.documents"),
            (HTTP_REQUEST_METHOD, "http.request.method"),
            (HTTP_ROUTE, "http.route"),
            (HTTP_RESPONSE_STATUS_CODE, "http.response.status_code"),
            (SERVER_ADDRESS, "server.address"),
            (SERVER_PORT, "server.port"),
            (URL_FULL, "url.full"),
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

    /// The exact call form the other crates use: a constant span name, constant field names in
    /// braces.
    #[test]
    fn constant_field_names_compile_in_span_macros() {
        let model = "SmolLM2-135M-Instruct";
        tracing::subscriber::with_default(tracing_subscriber::registry(), || {
            let span = tracing::info_span!(
                operation::CHAT,
                { OTEL_NAME } = %format!("{} {model}", operation::CHAT),
                { GEN_AI_OPERATION_NAME } = operation::CHAT,
                { GEN_AI_REQUEST_MODEL } = %model,
                { GEN_AI_REQUEST_TEMPERATURE } = 0.2,
                { GEN_AI_USAGE_INPUT_TOKENS } = tracing::field::Empty,
            );
            span.record(GEN_AI_USAGE_INPUT_TOKENS, 3_i64);
            let metadata = span.metadata().expect("a registry enables the span");
            assert_eq!(metadata.name(), operation::CHAT);
            let fields: Vec<&str> = metadata.fields().iter().map(|field| field.name()).collect();
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
