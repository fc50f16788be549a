//! `[serve]`: the HTTP service's section of the configuration, owned and read by this crate
//! (`SextantConfig::section("serve")`).

use std::path::PathBuf;

use serde::Deserialize;

/// `[serve]`: the HTTP service's address, agents and limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Where to listen (`--addr` overrides it).
    pub addr: String,
    /// The agent files a request's `model` may name by stem (`assistant` for
    /// `assistant.toml`); the built-in assistant is always there.
    pub agents_dir: Option<PathBuf>,
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
    /// The environment variable that holds the bearer token requests must carry; unset or empty
    /// variable = no authentication.
    pub auth_token_env: Option<String>,
    /// How often the service logs its counters to its tracking run.
    pub metrics_log_interval_secs: f64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            agents_dir: Some(PathBuf::from("configs/agents")),
            default_agent: None,
            max_body_bytes: 1 << 20,
            request_timeout_secs: 300.0,
            max_concurrent_requests: 8,
            shutdown_grace_secs: 30.0,
            auth_token_env: None,
            metrics_log_interval_secs: 30.0,
        }
    }
}
