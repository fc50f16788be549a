//! The service over the Model Context Protocol: `/mcp` (Streamable HTTP, behind the service's
//! authentication) and `sextant mcp` (stdio) expose
//! - each agent as a tool (`question`, optional `session_id`; the result's structured content
//!   holds the answer, the citations, the trace id and the session id);
//! - `search_memory` over the collections `[serve.mcp] collections` lists (default: those the
//!   served agent files answer from);
//! - the prompt registry's prompts as MCP prompts (arguments: the template's variables; a name
//!   may carry a version, `qa-prompt@production` or `qa-prompt/3`), to `service` and `admin`
//!   keys only when the service has keys (templates are the operator's, not every user's).
//!
//! An agent's turn runs exactly as for `POST /v1/agents/{name}/invoke` (request slot, owner,
//! session, timeout), under a server span `tools/call {agent}` with the MCP attributes. A
//! `traceparent` in the request's `params._meta` continues into it when the caller is trusted:
//! over stdio always (the caller started this process), over HTTP by the same rule as the HTTP
//! header (`[serve] trust_incoming_trace_context`).
//!
//! HTTP is served statelessly (no `Mcp-Session-Id`): a client cannot make the service hold
//! sessions, and any replica answers any request.

use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderMap;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult, ListToolsResult,
    PaginatedRequestParams, Prompt, PromptArgument, PromptMessage, Role as McpRole,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use sextant_agent::AgentConfig;
use sextant_tools::mcp::{McpMetrics, McpOperation};
use sextant_tracker::conventions::mcp as method;
use sextant_tracker::prompts::{PromptRegistry, PromptUri, PromptVersion, RenderedContent};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::server::ServiceState;
use crate::turn::{McpEntry, TurnEntry, TurnInput};

/// The name of the memory search tool.
const SEARCH_MEMORY: &str = "search_memory";

/// How a client reaches the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum McpTransport {
    /// `sextant mcp`: the parent process speaks over our stdin/stdout.
    Stdio,
    /// `/mcp` on the service.
    Http,
}

impl McpTransport {
    fn network(self) -> &'static str {
        match self {
            McpTransport::Stdio => method::TRANSPORT_PIPE,
            McpTransport::Http => method::TRANSPORT_TCP,
        }
    }
}

/// The MCP server handler over a service's state.
#[derive(Clone)]
pub(crate) struct McpHandler {
    state: Arc<ServiceState>,
    transport: McpTransport,
    metrics: McpMetrics,
}

/// `/mcp`: Streamable HTTP, stateless, JSON responses; the service's own layers authenticate and
/// check the `Host`, so rmcp's host check is off.
pub(crate) fn http_service(
    state: Arc<ServiceState>,
) -> StreamableHttpService<McpHandler, NeverSessionManager> {
    let max_body = state.settings.max_body_bytes;
    let handler = McpHandler::new(state, McpTransport::Http);
    StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_max_request_body_bytes(max_body)
            .disable_allowed_hosts(),
    )
}

impl McpHandler {
    pub(crate) fn new(state: Arc<ServiceState>, transport: McpTransport) -> Self {
        Self {
            state,
            transport,
            metrics: McpMetrics::global(),
        }
    }

    /// Who calls: over HTTP, what the authentication layer found; over stdio, the local user.
    fn caller(&self, context: &RequestContext<RoleServer>) -> Caller {
        context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>().cloned())
            .unwrap_or_default()
    }

    /// Whether the caller may read the prompt registry: over stdio, and over HTTP without keys
    /// (loopback only), anyone; with keys, `service` and `admin` keys (templates are the
    /// operator's, not every user's).
    fn may_read_prompts(&self, context: &RequestContext<RoleServer>) -> bool {
        match self.transport {
            McpTransport::Stdio => true,
            McpTransport::Http => match self.caller(context).principal {
                None => true,
                Some(principal) => principal.acts_for_others(),
            },
        }
    }

    fn record(
        &self,
        method: &'static str,
        tool: Option<&str>,
        prompt: Option<&str>,
        context: &RequestContext<RoleServer>,
        started: Instant,
        error_type: Option<&str>,
    ) {
        let version = context.protocol_version().map(|v| v.to_string());
        self.metrics.record_server(
            &McpOperation {
                method,
                tool,
                prompt,
                protocol_version: version.as_deref(),
                transport: self.transport.network(),
                error_type,
            },
            started.elapsed(),
        );
    }

    /// The collections `search_memory` may search.
    fn collections(&self) -> Vec<String> {
        self.collections_of(&self.agent_configs())
    }

    /// Every agent's name with its configuration (`None` where its file does not load).
    fn agent_configs(&self) -> Vec<(String, Option<AgentConfig>)> {
        let agents = &self.state.agents;
        agents
            .names()
            .into_iter()
            .map(|name| {
                let config = agents.config_of(&name);
                (name, config)
            })
            .collect()
    }

    /// The collections `search_memory` may search, given the agents' configurations.
    fn collections_of(&self, configs: &[(String, Option<AgentConfig>)]) -> Vec<String> {
        if let Some(listed) = &self.state.settings.mcp.collections {
            return listed.clone();
        }
        let mut collections: Vec<String> = configs
            .iter()
            .filter_map(|(_, config)| Some(config.as_ref()?.memory.as_ref()?.collection.clone()))
            .collect();
        collections.sort();
        collections.dedup();
        collections
    }

    async fn run_agent(
        &self,
        agent: &str,
        arguments: Map<String, Value>,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let question = arguments
            .get("question")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .ok_or_else(|| {
                ErrorData::invalid_params("`question` must be a non-empty string", None)
            })?
            .to_owned();
        let session_id = match arguments.get("session_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => {
                return Err(ErrorData::invalid_params(
                    "`session_id` must be a string",
                    None,
                ));
            }
        };
        let input = TurnInput {
            model: agent.to_owned(),
            question,
            history: None,
            session_id,
            user_id: None,
            caller: self.caller(context),
        };
        let entry = McpEntry {
            tool: agent.to_owned(),
            request_id: context.id.to_string(),
            protocol_version: context.protocol_version().map(|v| v.to_string()),
            transport: self.transport.network(),
            traceparent: context.meta.get_traceparent().map(str::to_owned),
            tracestate: context.meta.get_tracestate().map(str::to_owned),
            trusted: self.transport == McpTransport::Stdio,
        };
        let mut turn = self
            .state
            .prepare_turn(TurnEntry::Mcp(entry), &HeaderMap::new(), input)
            .await
            .map_err(api_error)?;
        match turn.run(&self.state, None).await {
            Ok(outcome) => {
                let structured = json!({
                    "answer": outcome.answer,
                    "citations": outcome.citations,
                    "trace_id": outcome.trace_id.as_ref().or(turn.trace_id.as_ref()),
                    "session_id": turn.session_id,
                    "agent_version": turn.agent_version,
                    "stop_reason": outcome.stop_reason,
                });
                let mut result = CallToolResult::structured(structured);
                // Clients that read only text get the answer, not its JSON wrapper.
                result.content = vec![ContentBlock::text(outcome.answer)];
                Ok(result)
            }
            // A turn that ran and failed is the tool's failure, which the caller's model may read.
            Err(error) => Ok(CallToolResult::error(vec![ContentBlock::text(
                error.message,
            )])),
        }
    }

    /// A search of one of `collections` (those `search_memory` may search).
    async fn search_memory(
        &self,
        arguments: Map<String, Value>,
        collections: Vec<String>,
    ) -> Result<CallToolResult, ErrorData> {
        // A search embeds the query on the service's CPU: it takes a request slot like a turn.
        let _slot = self.state.slots.clone().try_acquire_owned().map_err(|_| {
            ErrorData::internal_error(
                format!(
                    "the service is busy: {} requests are running; try again shortly",
                    self.state.settings.max_concurrent_requests
                ),
                None,
            )
        })?;
        let collection = match arguments.get("collection").and_then(Value::as_str) {
            Some(name) => name.to_owned(),
            None if collections.len() == 1 => collections[0].clone(),
            None => {
                return Err(ErrorData::invalid_params(
                    format!(
                        "`collection` is required; one of: {}",
                        collections.join(", ")
                    ),
                    None,
                ));
            }
        };
        if !collections.contains(&collection) {
            return Err(ErrorData::invalid_params(
                format!(
                    "no collection `{}` here; one of: {}",
                    collection.chars().take(64).collect::<String>(),
                    collections.join(", ")
                ),
                None,
            ));
        }
        let query = arguments
            .get("query")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .ok_or_else(|| ErrorData::invalid_params("`query` must be a non-empty string", None))?;
        let top_k = arguments
            .get("top_k")
            .and_then(Value::as_u64)
            .unwrap_or(5)
            .clamp(1, 20) as usize;
        let chunks = sextant_agent::memory::search_collection(
            self.state.runtime.build_context(),
            &collection,
            query,
            top_k,
        )
        .await
        .map_err(|error| {
            ErrorData::internal_error(format!("searching `{collection}` failed: {error}"), None)
        })?;
        let passages: Vec<Value> = chunks
            .iter()
            .map(|chunk| json!({"text": chunk.text, "score": chunk.score, "source": chunk.source}))
            .collect();
        let mut result =
            CallToolResult::structured(json!({ "collection": collection, "passages": passages }));
        result.content = vec![ContentBlock::text(if chunks.is_empty() {
            format!("No passages in `{collection}` match that query.")
        } else {
            sextant_agent::prompt::delimited_sources(&chunks)
        })];
        Ok(result)
    }

    /// The prompt a `prompts/get` name means: `name`, `name@alias` or `name/3`.
    async fn load_prompt(&self, name: &str) -> Result<PromptVersion, ErrorData> {
        let registry = self.state.runtime.prompt_registry().map_err(|error| {
            ErrorData::internal_error(
                format!("the prompt registry cannot be opened: {error}"),
                None,
            )
        })?;
        let uri_text = if name.contains('@') || name.contains('/') {
            format!("prompts:/{name}")
        } else {
            format!("prompts:/{name}@latest")
        };
        let uri: PromptUri = uri_text
            .parse()
            .map_err(|error| ErrorData::invalid_params(format!("`{name}`: {error}"), None))?;
        registry.load(&uri).await.map_err(|error| match error {
            sextant_tracker::prompts::RegistryError::NotFound { .. } => {
                ErrorData::invalid_params(error.to_string(), None)
            }
            other => ErrorData::internal_error(other.to_string(), None),
        })
    }
}

fn api_error(error: ApiError) -> ErrorData {
    if error.status.is_client_error() {
        ErrorData::invalid_params(error.message, None)
    } else {
        ErrorData::internal_error(error.message, None)
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

impl ServerHandler for McpHandler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new("sextant", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "Sextant's agents as tools: call one with a `question` (and a `session_id` to continue \
             a conversation); the answer cites its sources. `search_memory` searches a knowledge \
             base; the prompts are the prompt registry's.",
        )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let started = Instant::now();
        let configs = self.agent_configs();
        let collections = self.collections_of(&configs);
        let mut tools = Vec::new();
        for (name, config) in configs {
            let description = config
                .map(|config| config.description)
                .filter(|d| !d.trim().is_empty())
                .unwrap_or_else(|| format!("Ask the `{name}` agent a question."));
            tools.push(
                Tool::new(name, description, Arc::new(object(agent_input_schema())))
                    .with_raw_output_schema(Arc::new(object(agent_output_schema()))),
            );
        }
        if !collections.is_empty() {
            tools.push(Tool::new(
                SEARCH_MEMORY,
                format!(
                    "Searches a knowledge base ({}) and returns the most relevant passages with \
                     their sources.",
                    collections.join(", ")
                ),
                Arc::new(object(search_input_schema(&collections))),
            ));
        }
        self.record(method::TOOLS_LIST, None, None, &context, started, None);
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let started = Instant::now();
        let name = request.name.to_string();
        let arguments = request.arguments.unwrap_or_default();
        // The collections come from the agent files on disk: read only for a search, once.
        let collections = if name == SEARCH_MEMORY {
            self.collections()
        } else {
            Vec::new()
        };
        let result = if collections.is_empty() {
            self.run_agent(&name, arguments, &context).await
        } else {
            self.search_memory(arguments, collections).await
        };
        let error_type = match &result {
            Ok(result) if result.is_error == Some(true) => Some(method::TOOL_ERROR),
            Ok(_) => None,
            Err(_) => Some("jsonrpc_error"),
        };
        self.record(
            method::TOOLS_CALL,
            Some(&name),
            None,
            &context,
            started,
            error_type,
        );
        result.map(Into::into)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let started = Instant::now();
        if !self.may_read_prompts(&context) {
            self.record(method::PROMPTS_LIST, None, None, &context, started, None);
            return Ok(ListPromptsResult::with_all_items(Vec::new()));
        }
        let registry = self.state.runtime.prompt_registry().map_err(|error| {
            ErrorData::internal_error(
                format!("the prompt registry cannot be opened: {error}"),
                None,
            )
        })?;
        let infos = registry
            .search(&Default::default())
            .await
            .map_err(|error| ErrorData::internal_error(error.to_string(), None))?;
        let mut prompts = Vec::new();
        for info in infos {
            let latest = self.load_prompt(&info.name).await?;
            prompts.push(Prompt::new(
                info.name.clone(),
                Some(
                    latest
                        .commit_message
                        .clone()
                        .filter(|m| !m.trim().is_empty())
                        .unwrap_or_else(|| format!("The registry prompt `{}`", info.name)),
                ),
                Some(prompt_arguments(&latest)),
            ));
        }
        self.record(method::PROMPTS_LIST, None, None, &context, started, None);
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let started = Instant::now();
        let result = async {
            if !self.may_read_prompts(&context) {
                return Err(ErrorData::invalid_params(
                    "the prompt registry is open to service and admin keys only",
                    None,
                ));
            }
            let version = self.load_prompt(&request.name).await?;
            let variables: Map<String, Value> = request.arguments.unwrap_or_default();
            let rendered = version
                .render(&Value::Object(variables))
                .map_err(|error| ErrorData::invalid_params(error.to_string(), None))?;
            let messages = match rendered.content {
                RenderedContent::Text(text) => {
                    vec![PromptMessage::new(McpRole::User, ContentBlock::text(text))]
                }
                RenderedContent::Chat(messages) => messages
                    .into_iter()
                    .map(|message| {
                        let role = if message.role == "assistant" {
                            McpRole::Assistant
                        } else {
                            McpRole::User
                        };
                        PromptMessage::new(role, ContentBlock::text(message.content))
                    })
                    .collect(),
            };
            let mut result = GetPromptResult::new(messages);
            result.description = Some(format!("prompts:/{}/{}", version.name, version.version));
            Ok::<_, ErrorData>(result)
        }
        .await;
        self.record(
            method::PROMPTS_GET,
            None,
            Some(&request.name),
            &context,
            started,
            result.as_ref().err().map(|_| "jsonrpc_error"),
        );
        result.map(Into::into)
    }
}

/// The arguments of a registry prompt: its template's variables, all required.
fn prompt_arguments(version: &PromptVersion) -> Vec<PromptArgument> {
    version
        .template
        .variables()
        .into_iter()
        .filter(|v| !v.contains('.'))
        .map(|variable| PromptArgument::new(variable).with_required(true))
        .collect()
}

fn agent_input_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "question": {"type": "string", "description": "What to ask the agent."},
            "session_id": {
                "type": "string",
                "description": "Continue this conversation (created if new): letters, digits and - _ . : @, at most 128."
            }
        },
        "required": ["question"],
        "additionalProperties": false
    })
}

fn agent_output_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "answer": {"type": "string"},
            "citations": {"type": "array", "items": {"type": "object"}},
            "trace_id": {"type": ["string", "null"]},
            "session_id": {"type": ["string", "null"]},
            "agent_version": {"type": ["string", "null"]},
            "stop_reason": {}
        },
        "required": ["answer", "citations"]
    })
}

fn search_input_schema(collections: &[String]) -> Value {
    json!({
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What to look for."},
            "collection": {"type": "string", "enum": collections},
            "top_k": {"type": "integer", "minimum": 1, "maximum": 20}
        },
        "required": ["query"],
        "additionalProperties": false
    })
}
