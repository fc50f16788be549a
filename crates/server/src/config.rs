//! `[serve]`: the HTTP service's section of the configuration, owned and read by this crate
//! (`SextantConfig::section("serve")`).

use std::path::PathBuf;

use serde::Deserialize;

use crate::auth::AuthConfig;

/// `[serve]`: the HTTP service's address, agents and limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Where to listen (`--addr` overrides it).
    pub addr: String,
    /// The agent files a request's `model` may name by stem (`assistant` for
    /// `assistant.toml`); the built-in assistant is always there.
    pub agents_dir: Option<PathBuf>,
    /// The workflow files `POST /v1/workflows/{name}/invoke` may name by stem.
    pub workflows_dir: Option<PathBuf>,
    /// The agent a request without a known `model` gets: a stem, a file or a `models:/` URI.
    pub default_agent: Option<String>,
    /// The largest request body accepted; bigger is 413.
    pub max_body_bytes: usize,
    /// How long one request may take before it is answered 504.
    pub request_timeout_secs: f64,
    /// Requests answered at once; more are refused with 429 right away.
    pub max_concurrent_requests: usize,
    /// On SIGTERM or Ctrl-C: how long in-flight requests may still take before the process
    /// exits anyway (spans and tracking are flushed either way).
    pub shutdown_grace_secs: f64,
    /// How often the service logs its counters to its tracking run.
    pub metrics_log_interval_secs: f64,
    /// `[serve.auth]`: API keys and their principals. None configured: the service binds only
    /// loopback addresses unless `allow_unauthenticated`.
    pub auth: AuthConfig,
    /// The registered models a request may name as `models:/NAME@ALIAS` or `models:/NAME/N`
    /// (names; `*` = any). Empty: none, only agent files.
    pub allowed_registry_models: Vec<String>,
    /// Registry agents kept built at once; the least recently used goes first.
    pub max_registry_agents: usize,
    /// Whose `traceparent` continues into a turn: `never`, `services` (keys with the `service`
    /// or `admin` role) or `all`. Anyone else's starts a new trace that links to theirs. Turns
    /// are recorded either way (an incoming sampled flag of 0 does not switch recording off).
    pub trust_incoming_trace_context: TraceTrust,
    /// How long a client may take to send a request's headers, and how long an idle kept-alive
    /// connection stays open.
    pub header_read_timeout_secs: f64,
    /// How long a client may take to send a request's body.
    pub body_read_timeout_secs: f64,
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// `[serve.mcp]`: what `/mcp` and `sextant mcp` expose besides the agents.
    pub mcp: McpServeConfig,
    /// `[serve.a2a]`: the agents over the Agent2Agent protocol (`/a2a/{agent}/`).
    pub a2a: A2aServeConfig,
    /// `Host` names accepted while no key is configured (a DNS-rebinding page sends its own);
    /// `*` = any.
    pub allowed_hosts: Vec<String>,
    /// `[[serve.monitors]]`: scorers that judge finished turns in the background (online
    /// evaluation, see [`crate::monitors`]).
    pub monitors: Vec<crate::monitors::MonitorConfig>,
    /// `[serve.monitoring]`: the monitors' queue and pass-rate window.
    pub monitoring: crate::monitors::MonitoringConfig,
}

/// `[serve.mcp]`: the service as an MCP server (`/mcp`, `sextant mcp`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct McpServeConfig {
    /// Whether `/mcp` is served.
    pub enabled: bool,
    /// The collections the `search_memory` tool may search; unset: the collections the served
    /// agent files answer from; empty: no `search_memory` tool.
    pub collections: Option<Vec<String>>,
}

impl Default for McpServeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            collections: None,
        }
    }
}

/// `[serve.a2a]`: each agent over A2A 1.0 (JSON-RPC) at `/a2a/{agent}/`, with its card at
/// `/a2a/{agent}/.well-known/agent-card.json`, behind the service's keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct A2aServeConfig {
    /// Whether `/a2a/…` is served.
    pub enabled: bool,
    /// The URL clients reach the service at, as cards name it (`https://agents.example.com`);
    /// unset: `http://` and the request's `Host`.
    pub public_url: Option<String>,
    /// Tasks remembered for `GetTask` (the oldest finished ones go first).
    pub max_tasks: usize,
}

impl Default for A2aServeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            public_url: None,
            max_tasks: 10_000,
        }
    }
}

/// See [`ServeConfig::trust_incoming_trace_context`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceTrust {
    /// Every turn starts a trace of its own.
    Never,
    /// Keys with the `service` or `admin` role.
    #[default]
    Services,
    /// Every caller, authenticated or not.
    All,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            agents_dir: Some(PathBuf::from("configs/agents")),
            workflows_dir: Some(PathBuf::from("configs/workflows")),
            default_agent: None,
            max_body_bytes: 1 << 20,
            request_timeout_secs: 300.0,
            max_concurrent_requests: 8,
            shutdown_grace_secs: 30.0,
            metrics_log_interval_secs: 30.0,
            auth: AuthConfig::default(),
            allowed_registry_models: Vec::new(),
            max_registry_agents: 16,
            trust_incoming_trace_context: TraceTrust::Services,
            header_read_timeout_secs: 10.0,
            body_read_timeout_secs: 30.0,
            max_connections: 256,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            mcp: McpServeConfig::default(),
            a2a: A2aServeConfig::default(),
            monitors: Vec::new(),
            monitoring: crate::monitors::MonitoringConfig::default(),
        }
    }
}
