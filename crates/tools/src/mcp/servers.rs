//! [`McpServers`]: the process's connections to the servers `[mcp]` names. A server is started (or
//! its endpoint initialised) on first use and kept for the life of the process; a connection that
//! breaks is dropped and made again on the next request. Every request is a client span named
//! after the MCP conventions (`tools/call get_current_time`) with the caller's trace context in
//! `params._meta`, so the server's spans join the agent's trace.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CancelledNotificationParam, ClientCapabilities,
    ClientConfig, ClientRequest, GetPromptRequest, GetPromptRequestParams, GetPromptResult,
    Implementation, ReadResourceRequest, ReadResourceRequestParams, ReadResourceResult,
    RequestMetaObject, ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceError, ServiceExt};
use sextant_conventions::{self as sc, mcp as method};
use tracing::Instrument;
use tracing::field::Empty;

use super::McpServers;
use super::config::{McpServerConfig, McpTransportConfig};
use super::metrics::{McpMetrics, McpOperation};
use super::tool::block_text;
use super::trace_context;

/// Variables of Sextant's environment every spawned server sees: enough to find programs and
/// write temporary files, none that could hold a secret.
const INHERITED_ENV: [&str; 10] = [
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "USER",
    "TZ",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
];

/// Why talking to an MCP server failed. Messages name the server and never a secret's value.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// No `[mcp.servers.NAME]` entry.
    #[error("there is no MCP server `{name}` in [mcp.servers]; configured: {}", if available.is_empty() { "none".to_owned() } else { available.join(", ") })]
    UnknownServer {
        /// The name asked for.
        name: String,
        /// The configured names.
        available: Vec<String>,
    },
    /// The entry is unusable.
    #[error(transparent)]
    Config(#[from] crate::ToolConfigError),
    /// An environment variable the entry names is not set.
    #[error("MCP server `{server}`: the environment variable {variable} ({purpose}) is not set")]
    MissingVariable {
        /// The server.
        server: String,
        /// The variable.
        variable: String,
        /// What it is for.
        purpose: String,
    },
    /// The server could not be started or did not complete the handshake.
    #[error("MCP server `{server}`: could not connect: {message}")]
    Connect {
        /// The server.
        server: String,
        /// What happened.
        message: String,
    },
    /// A request failed.
    #[error("MCP server `{server}`: {method} failed: {message}")]
    Request {
        /// The server.
        server: String,
        /// `tools/call`, `prompts/get`, …
        method: &'static str,
        /// What happened.
        message: String,
        /// The JSON-RPC error code, when the server answered with an error.
        code: Option<i32>,
    },
    /// The server does not offer a tool (or no longer does).
    #[error("MCP server `{server}` has no tool `{tool}`; it offers: {}", offered.join(", "))]
    UnknownTool {
        /// The server.
        server: String,
        /// The tool asked for.
        tool: String,
        /// What it offers.
        offered: Vec<String>,
    },
}

impl McpError {
    /// The span's `error.type` for this failure.
    pub fn error_type(&self) -> &'static str {
        match self {
            McpError::UnknownServer { .. } | McpError::UnknownTool { .. } => "not_found",
            McpError::Config(_) | McpError::MissingVariable { .. } => "config",
            McpError::Connect { .. } => "connect_error",
            McpError::Request { code: Some(_), .. } => "jsonrpc_error",
            McpError::Request { .. } => "transport_error",
        }
    }
}

/// A tool as a server lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteTool {
    /// Its name on the server.
    pub name: String,
    /// Its description.
    pub description: String,
    /// The JSON Schema of its arguments.
    pub input_schema: serde_json::Value,
    /// Whether the server declares calls safe to repeat (`readOnlyHint` or `idempotentHint`
    /// in its annotations; MCP's default for both is `false`).
    pub idempotent: bool,
}

/// The live connections of a process's [`McpServers`], by server name.
pub(crate) struct Connections {
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    metrics: McpMetrics,
}

impl Connections {
    pub(crate) fn new() -> Self {
        Self {
            connections: Mutex::new(HashMap::new()),
            metrics: McpMetrics::global(),
        }
    }
}

impl McpServers {
    fn connection(&self, name: &str) -> Result<Arc<Connection>, McpError> {
        let mut connections = self
            .inner
            .connections
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(connection) = connections.get(name) {
            return Ok(connection.clone());
        }
        let config =
            self.inner
                .config
                .servers
                .get(name)
                .ok_or_else(|| McpError::UnknownServer {
                    name: name.to_owned(),
                    available: self.names().map(str::to_owned).collect(),
                })?;
        let transport = config.transport(name)?;
        let connection = Arc::new(Connection {
            name: name.to_owned(),
            config: config.clone(),
            transport,
            connect_timeout: self.inner.config.connect_timeout(),
            live: tokio::sync::Mutex::new(None),
            tools: RwLock::new(None),
            tools_stale: Arc::new(AtomicBool::new(false)),
        });
        connections.insert(name.to_owned(), connection.clone());
        Ok(connection)
    }

    /// Closes every connection: a stdio server sees its stdin close and may exit on its own (it
    /// is stopped after a few seconds if it does not), so it can flush what it holds.
    pub async fn shutdown(&self) {
        let connections: Vec<Arc<Connection>> = self
            .inner
            .connections
            .connections
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .values()
            .cloned()
            .collect();
        for connection in connections {
            let live = connection.live.lock().await.take();
            if let Some(live) = live {
                match Arc::try_unwrap(live) {
                    Ok(live) => {
                        let _ = live.service.cancel().await;
                    }
                    // A request still holds it: stop it; the transport closes behind it.
                    Err(shared) => shared.service.cancellation_token().cancel(),
                }
            }
        }
    }

    /// The tools server `name` offers (listed once, again after it says its list changed).
    pub async fn tools(&self, name: &str) -> Result<Vec<RemoteTool>, McpError> {
        let connection = self.connection(name)?;
        connection.tools(&self.inner.connections.metrics).await
    }

    /// The tool `tool` of server `name` as last listed, without contacting the server: what a
    /// tool built from it shows the model. Lists again first when the server said it changed.
    pub fn cached_tool(&self, name: &str, tool: &str) -> Option<RemoteTool> {
        let connection = self.connection(name).ok()?;
        let tools = connection.tools.read().unwrap_or_else(|p| p.into_inner());
        tools.as_ref()?.iter().find(|t| t.name == tool).cloned()
    }

    /// Calls `tool` on server `name` with `arguments` (a JSON object).
    pub async fn call_tool(
        &self,
        name: &str,
        tool: &str,
        arguments: serde_json::Map<String, serde_json::Value>,
    ) -> Result<rmcp::model::CallToolResult, McpError> {
        let connection = self.connection(name)?;
        let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        let result = connection
            .request(
                &self.inner.connections.metrics,
                method::TOOLS_CALL,
                Target::Tool(tool),
                ClientRequest::CallToolRequest(CallToolRequest::new(params)),
            )
            .await?;
        match result {
            ServerResult::CallToolResult(result) => Ok(result),
            _ => Err(connection.unexpected(method::TOOLS_CALL)),
        }
    }

    /// The argument names prompt `prompt` of server `name` declares (a `prompts/list`), or an
    /// error naming the prompts it does offer.
    pub async fn prompt_arguments(
        &self,
        name: &str,
        prompt: &str,
    ) -> Result<Vec<String>, McpError> {
        let connection = self.connection(name)?;
        let live = connection.live().await?;
        let prompts = connection
            .listing(
                &self.inner.connections.metrics,
                method::PROMPTS_LIST,
                &live,
                live.service.list_all_prompts(),
            )
            .await?;
        match prompts.iter().find(|p| p.name == prompt) {
            Some(found) => Ok(found
                .arguments
                .iter()
                .flatten()
                .map(|argument| argument.name.clone())
                .collect()),
            None => Err(McpError::Request {
                server: name.to_owned(),
                method: method::PROMPTS_GET,
                message: format!(
                    "there is no prompt `{prompt}`; it offers: {}",
                    prompts
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                code: None,
            }),
        }
    }

    /// Prompt `prompt` of server `name` rendered with `arguments`, as (role, text) messages
    /// (`user` or `assistant`; non-text content is left out).
    pub async fn prompt_messages(
        &self,
        name: &str,
        prompt: &str,
        arguments: BTreeMap<String, String>,
    ) -> Result<Vec<(String, String)>, McpError> {
        let result = self.get_prompt(name, prompt, arguments).await?;
        Ok(result
            .messages
            .into_iter()
            .filter_map(|message| {
                let role = match message.role {
                    rmcp::model::Role::Assistant => "assistant",
                    _ => "user",
                };
                block_text(&message.content).map(|text| (role.to_owned(), text.to_owned()))
            })
            .collect())
    }

    /// Renders prompt `prompt` of server `name` with `arguments`.
    pub async fn get_prompt(
        &self,
        name: &str,
        prompt: &str,
        arguments: BTreeMap<String, String>,
    ) -> Result<GetPromptResult, McpError> {
        let connection = self.connection(name)?;
        let arguments = arguments
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        let params = GetPromptRequestParams::new(prompt).with_arguments(arguments);
        let result = connection
            .request(
                &self.inner.connections.metrics,
                method::PROMPTS_GET,
                Target::Prompt(prompt),
                ClientRequest::GetPromptRequest(GetPromptRequest::new(params)),
            )
            .await?;
        match result {
            ServerResult::GetPromptResult(result) => Ok(result),
            _ => Err(connection.unexpected(method::PROMPTS_GET)),
        }
    }

    /// The text contents of resource `uri` of server `name`, each with its own URI (binary
    /// contents are left out: nothing a model can read).
    pub async fn read_resource_text(
        &self,
        name: &str,
        uri: &str,
    ) -> Result<Vec<(String, String)>, McpError> {
        let read = self.read_resource(name, uri).await?;
        Ok(read
            .contents
            .into_iter()
            .filter_map(|contents| match contents {
                rmcp::model::ResourceContents::TextResourceContents { uri, text, .. } => {
                    Some((uri, text))
                }
                _ => None,
            })
            .collect())
    }

    /// Reads resource `uri` of server `name`.
    pub async fn read_resource(
        &self,
        name: &str,
        uri: &str,
    ) -> Result<ReadResourceResult, McpError> {
        let connection = self.connection(name)?;
        let params = ReadResourceRequestParams::new(uri);
        let result = connection
            .request(
                &self.inner.connections.metrics,
                method::RESOURCES_READ,
                Target::Resource(uri),
                ClientRequest::ReadResourceRequest(ReadResourceRequest::new(params)),
            )
            .await?;
        match result {
            ServerResult::ReadResourceResult(result) => Ok(result),
            _ => Err(connection.unexpected(method::RESOURCES_READ)),
        }
    }
}

/// What a request is about: the second word of its span name.
#[derive(Clone, Copy)]
enum Target<'a> {
    Tool(&'a str),
    Prompt(&'a str),
    Resource(&'a str),
    Server,
}

/// One server: its entry, its live connection (if any) and its cached tool list.
struct Connection {
    name: String,
    config: McpServerConfig,
    transport: McpTransportConfig,
    connect_timeout: Duration,
    live: tokio::sync::Mutex<Option<Arc<Live>>>,
    tools: RwLock<Option<Vec<RemoteTool>>>,
    /// Set by the server's `notifications/tools/list_changed`.
    tools_stale: Arc<AtomicBool>,
}

/// A connection that completed the handshake.
struct Live {
    service: RunningService<RoleClient, Watcher>,
    protocol_version: Option<String>,
}

/// The client side's handler: it marks the tool list stale when the server says it changed.
struct Watcher {
    server: String,
    tools_stale: Arc<AtomicBool>,
}

impl ClientHandler for Watcher {
    fn on_tool_list_changed(
        &self,
        _context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = ()> + Send + '_ {
        tracing::debug!(server = %self.server, "the MCP server's tool list changed");
        self.tools_stale.store(true, Ordering::SeqCst);
        std::future::ready(())
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("sextant", env!("CARGO_PKG_VERSION")),
        )
    }
}

/// Cancels a request whose caller stopped waiting (a tool timeout), as the protocol asks.
struct CancelOnDrop {
    peer: Option<rmcp::Peer<RoleClient>>,
    id: rmcp::model::RequestId,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(peer) = self.peer.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let id = self.id.clone();
            runtime.spawn(async move {
                let _ = peer
                    .notify_cancelled(CancelledNotificationParam::new(
                        Some(id),
                        Some("the caller stopped waiting".into()),
                    ))
                    .await;
            });
        }
    }
}

impl Connection {
    fn transport_name(&self) -> &'static str {
        match self.transport {
            McpTransportConfig::Stdio { .. } => method::TRANSPORT_PIPE,
            McpTransportConfig::Http { .. } => method::TRANSPORT_TCP,
        }
    }

    fn unexpected(&self, method: &'static str) -> McpError {
        McpError::Request {
            server: self.name.clone(),
            method,
            message: "the server answered with a result of another kind".into(),
            code: None,
        }
    }

    /// The live connection, made now if there is none or the last one broke.
    async fn live(&self) -> Result<Arc<Live>, McpError> {
        let mut live = self.live.lock().await;
        if let Some(current) = live.as_ref()
            && !current.service.is_transport_closed()
        {
            return Ok(current.clone());
        }
        if live.take().is_some() {
            tracing::info!(server = %self.name, "the MCP server's connection closed; reconnecting");
        }
        let connected = Arc::new(self.connect().await?);
        // A new connection may offer other tools: list them again.
        self.tools_stale.store(true, Ordering::SeqCst);
        *live = Some(connected.clone());
        Ok(connected)
    }

    /// Drops `broken` so that the next request connects again.
    async fn forget(&self, broken: &Arc<Live>) {
        let mut live = self.live.lock().await;
        if live.as_ref().is_some_and(|l| Arc::ptr_eq(l, broken)) {
            *live = None;
        }
    }

    async fn connect(&self) -> Result<Live, McpError> {
        let connect_error = |message: String| McpError::Connect {
            server: self.name.clone(),
            message,
        };
        let watcher = Watcher {
            server: self.name.clone(),
            tools_stale: self.tools_stale.clone(),
        };
        let handshake = match &self.transport {
            McpTransportConfig::Stdio { command, args } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args).env_clear();
                for variable in INHERITED_ENV
                    .iter()
                    .copied()
                    .chain(self.config.pass_env.iter().map(String::as_str))
                {
                    if let Some(value) = std::env::var_os(variable) {
                        cmd.env(variable, value);
                    }
                }
                cmd.envs(&self.config.env);
                if let Some(dir) = &self.config.cwd {
                    cmd.current_dir(dir);
                }
                let (transport, stderr) = TokioChildProcess::builder(cmd)
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(|error| connect_error(format!("starting `{command}`: {error}")))?;
                if let Some(stderr) = stderr {
                    tokio::spawn(forward_stderr(self.name.clone(), stderr));
                }
                tokio::time::timeout(self.connect_timeout, watcher.serve(transport))
                    .await
                    .map_err(|_| self.connect_timed_out())?
                    .map_err(|error| connect_error(error.to_string()))?
            }
            McpTransportConfig::Http { url } => {
                // reqwest 0.13 under rmcp uses rustls without a provider of its own.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let mut headers = HashMap::new();
                for (header, variable) in &self.config.headers {
                    let value = self.variable(variable, &format!("header {header}"))?;
                    let name = reqwest::header::HeaderName::try_from(header.as_str())
                        .map_err(|e| connect_error(format!("header {header}: {e}")))?;
                    let value = reqwest::header::HeaderValue::try_from(value).map_err(|_| {
                        connect_error(format!(
                            "the value of {variable} is not a valid value of header {header}"
                        ))
                    })?;
                    headers.insert(name, value);
                }
                let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                    .custom_headers(headers);
                if let Some(variable) = &self.config.bearer_token_env {
                    config = config.auth_header(self.variable(variable, "bearer token")?);
                }
                let transport = StreamableHttpClientTransport::from_config(config);
                tokio::time::timeout(self.connect_timeout, watcher.serve(transport))
                    .await
                    .map_err(|_| self.connect_timed_out())?
                    .map_err(|error| connect_error(error.to_string()))?
            }
        };
        let protocol_version = handshake
            .peer_info()
            .map(|info| info.protocol_version.to_string());
        tracing::debug!(server = %self.name, protocol_version = ?protocol_version, "connected to the MCP server");
        Ok(Live {
            service: handshake,
            protocol_version,
        })
    }

    fn connect_timed_out(&self) -> McpError {
        McpError::Connect {
            server: self.name.clone(),
            message: format!(
                "no answer to `initialize` within {} s ([mcp] connect_timeout_secs)",
                self.connect_timeout.as_secs_f64()
            ),
        }
    }

    fn variable(&self, variable: &str, purpose: &str) -> Result<String, McpError> {
        std::env::var(variable).map_err(|_| McpError::MissingVariable {
            server: self.name.clone(),
            variable: variable.to_owned(),
            purpose: purpose.to_owned(),
        })
    }

    /// The tool list, from the cache unless the server said it changed.
    async fn tools(&self, metrics: &McpMetrics) -> Result<Vec<RemoteTool>, McpError> {
        if !self.tools_stale.load(Ordering::SeqCst)
            && let Some(tools) = self.tools.read().unwrap_or_else(|p| p.into_inner()).clone()
        {
            return Ok(tools);
        }
        let live = self.live().await?;
        self.tools_stale.store(false, Ordering::SeqCst);
        let listed = self
            .listing(
                metrics,
                method::TOOLS_LIST,
                &live,
                live.service.list_all_tools(),
            )
            .await
            .inspect_err(|_| self.tools_stale.store(true, Ordering::SeqCst))?;
        let tools: Vec<RemoteTool> = listed
            .into_iter()
            .map(|tool| RemoteTool {
                name: tool.name.to_string(),
                description: tool.description.map(|d| d.to_string()).unwrap_or_default(),
                input_schema: serde_json::Value::Object((*tool.input_schema).clone()),
                idempotent: tool.annotations.as_ref().is_some_and(|a| {
                    a.read_only_hint == Some(true) || a.idempotent_hint == Some(true)
                }),
            })
            .collect();
        *self.tools.write().unwrap_or_else(|p| p.into_inner()) = Some(tools.clone());
        Ok(tools)
    }

    /// A listing request (`tools/list`, `prompts/list`, every page), traced and measured.
    async fn listing<T>(
        &self,
        metrics: &McpMetrics,
        method: &'static str,
        live: &Arc<Live>,
        list: impl Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, McpError> {
        let started = Instant::now();
        let span = self.span(method, Target::Server, live);
        match list.instrument(span.clone()).await {
            Ok(listed) => {
                self.finish(&span, metrics, method, Target::Server, live, started, None);
                Ok(listed)
            }
            Err(error) => {
                let error = self.request_failed(method, error, live).await;
                self.finish(
                    &span,
                    metrics,
                    method,
                    Target::Server,
                    live,
                    started,
                    Some(&error),
                );
                Err(error)
            }
        }
    }

    fn span(&self, method: &'static str, target: Target<'_>, live: &Live) -> tracing::Span {
        let (tool, prompt, resource, name) = match target {
            Target::Tool(tool) => (Some(tool), None, None, format!("{method} {tool}")),
            Target::Prompt(prompt) => (None, Some(prompt), None, format!("{method} {prompt}")),
            // The conventions name a resource span by its method only: a URI is unbounded.
            Target::Resource(uri) => (None, None, Some(uri), method.to_owned()),
            Target::Server => (None, None, None, method.to_owned()),
        };
        let (address, port) = match &self.transport {
            McpTransportConfig::Http { url } => (
                url.host_str().map(str::to_owned),
                url.port_or_known_default(),
            ),
            McpTransportConfig::Stdio { .. } => (None, None),
        };
        tracing::info_span!(
            "mcp_request",
            { sc::OTEL_NAME } = %name,
            { sc::OTEL_KIND } = "client",
            { sc::OTEL_STATUS_CODE } = Empty,
            { sc::OTEL_STATUS_DESCRIPTION } = Empty,
            { sc::MCP_METHOD_NAME } = method,
            { sc::MCP_PROTOCOL_VERSION } = live.protocol_version.as_deref(),
            { sc::JSONRPC_REQUEST_ID } = Empty,
            { sc::NETWORK_TRANSPORT } = self.transport_name(),
            { sc::SERVER_ADDRESS } = address,
            { sc::SERVER_PORT } = port.map(i64::from),
            { sc::GEN_AI_OPERATION_NAME } = tool.map(|_| sc::operation::EXECUTE_TOOL),
            { sc::GEN_AI_TOOL_NAME } = tool,
            { sc::GEN_AI_PROMPT_NAME } = prompt,
            { sc::MCP_RESOURCE_URI } = resource,
            { sc::SEXTANT_MCP_SERVER } = %self.name,
            { sc::RPC_RESPONSE_STATUS_CODE } = Empty,
            { sc::ERROR_TYPE } = Empty,
        )
    }

    /// Sends `request` with the trace context in `_meta`, on a live connection (reconnecting
    /// first if the last one broke), traced as a client span.
    async fn request(
        &self,
        metrics: &McpMetrics,
        method: &'static str,
        target: Target<'_>,
        request: ClientRequest,
    ) -> Result<ServerResult, McpError> {
        let live = self.live().await?;
        let started = Instant::now();
        let span = self.span(method, target, &live);
        let mut meta = RequestMetaObject::new();
        let url = match &self.transport {
            McpTransportConfig::Http { url } => Some(url),
            _ => None,
        };
        trace_context::inject(&span, url, &mut meta);
        let sent = async {
            let handle = live
                .service
                .send_request_with_option(request, PeerRequestOptions::no_options().with_meta(meta))
                .await?;
            tracing::Span::current().record(sc::JSONRPC_REQUEST_ID, handle.id.to_string());
            let mut guard = CancelOnDrop {
                peer: Some(handle.peer.clone()),
                id: handle.id.clone(),
            };
            let response = handle.await_response().await;
            guard.peer = None;
            response
        }
        .instrument(span.clone())
        .await;
        match sent {
            Ok(result) => {
                if let ServerResult::CallToolResult(call) = &result
                    && call.is_error == Some(true)
                {
                    // The tool ran and reported a failure: the conventions' `tool_error`.
                    span.record(sc::ERROR_TYPE, method::TOOL_ERROR);
                    span.record(sc::OTEL_STATUS_CODE, "ERROR");
                    metrics.record_client(
                        &self.operation(method, target, &live, Some(method::TOOL_ERROR)),
                        started.elapsed(),
                    );
                    return Ok(result);
                }
                self.finish(&span, metrics, method, target, &live, started, None);
                Ok(result)
            }
            Err(error) => {
                let error = self.request_failed(method, error, &live).await;
                self.finish(&span, metrics, method, target, &live, started, Some(&error));
                Err(error)
            }
        }
    }

    /// The error of a failed request; a broken connection is dropped so the next request
    /// reconnects.
    async fn request_failed(
        &self,
        method: &'static str,
        error: ServiceError,
        live: &Arc<Live>,
    ) -> McpError {
        let (message, code) = match error {
            ServiceError::McpError(data) => (data.message.to_string(), Some(data.code.0)),
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                self.forget(live).await;
                (
                    "the connection to the server closed (it will be made again on the next request)".to_owned(),
                    None,
                )
            }
            other => (other.to_string(), None),
        };
        McpError::Request {
            server: self.name.clone(),
            method,
            message,
            code,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        span: &tracing::Span,
        metrics: &McpMetrics,
        method: &'static str,
        target: Target<'_>,
        live: &Live,
        started: Instant,
        error: Option<&McpError>,
    ) {
        let error_type = error.map(McpError::error_type);
        if let Some(error) = error {
            span.record(sc::ERROR_TYPE, error.error_type());
            if let McpError::Request {
                code: Some(code), ..
            } = error
            {
                span.record(sc::RPC_RESPONSE_STATUS_CODE, code.to_string());
            }
            span.record(sc::OTEL_STATUS_CODE, "ERROR");
            span.record(sc::OTEL_STATUS_DESCRIPTION, error.to_string());
        }
        metrics.record_client(
            &self.operation(method, target, live, error_type),
            started.elapsed(),
        );
    }

    fn operation<'a>(
        &self,
        method: &'a str,
        target: Target<'a>,
        live: &'a Live,
        error_type: Option<&'a str>,
    ) -> McpOperation<'a> {
        let (tool, prompt) = match target {
            Target::Tool(tool) => (Some(tool), None),
            Target::Prompt(prompt) => (None, Some(prompt)),
            _ => (None, None),
        };
        McpOperation {
            method,
            tool,
            prompt,
            protocol_version: live.protocol_version.as_deref(),
            transport: self.transport_name(),
            error_type,
        }
    }
}

/// A spawned server's stderr, line by line, as debug logs (a server's log is not Sextant's output).
async fn forward_stderr(server: String, stderr: tokio::process::ChildStderr) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(target: "sextant::mcp::server_log", server = %server, "{line}");
    }
}
