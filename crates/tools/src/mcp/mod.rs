//! The Model Context Protocol, client side: tools (and prompts and resources) from the servers
//! `[mcp.servers]` names, over stdio or Streamable HTTP, with the official Rust SDK (`rmcp`).
//!
//! An agent file selects remote tools like built-in ones: `mcp:time/*` takes every tool of the
//! server `time`, `mcp:fetch/fetch` one tool. Each becomes an [`McpTool`] whose calls go through
//! the same [`crate::ToolSet::invoke`] as every tool: arguments checked against the server's
//! schema, time and result size bounded; a server's error is a tool error the model reads.
//!
//! Every request is a client span named after the MCP conventions (`tools/call
//! get_current_time`, `mcp.method.name`, `mcp.protocol.version`, `jsonrpc.request.id`,
//! `network.transport`) under the agent's `execute_tool` span, recorded in
//! `mcp.client.operation.duration`, and carries the span's W3C trace context in
//! `params._meta.traceparent`, so a server that reads it (Sextant's does) continues the trace.
//!
//! Without the `mcp` feature only the configuration ([`McpConfig`], [`McpSelector`],
//! [`McpServers`] without connections) is built.

mod config;
#[cfg(feature = "mcp")]
mod metrics;
#[cfg(feature = "mcp")]
mod servers;
#[cfg(feature = "mcp")]
mod tool;
#[cfg(feature = "mcp")]
pub mod trace_context;

pub use config::{McpConfig, McpServerConfig, McpTransportConfig};
#[cfg(feature = "mcp")]
pub use metrics::{McpMetrics, McpOperation};
#[cfg(feature = "mcp")]
pub use servers::{McpError, RemoteTool};
#[cfg(feature = "mcp")]
pub use tool::{McpTool, mcp_tools, result_text};

use std::sync::Arc;

/// The MCP servers of one process and, with the `mcp` feature, their connections; cheap to clone
/// (clones share the connections). Nothing is spawned or contacted until a request needs a
/// server; a connection that breaks is made again on the next request.
#[derive(Clone)]
pub struct McpServers {
    inner: Arc<McpServersInner>,
}

struct McpServersInner {
    config: McpConfig,
    #[cfg(feature = "mcp")]
    connections: servers::Connections,
}

impl McpServers {
    /// The servers `config` names, none connected yet.
    pub fn new(config: McpConfig) -> Self {
        Self {
            inner: Arc::new(McpServersInner {
                config,
                #[cfg(feature = "mcp")]
                connections: servers::Connections::new(),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &McpConfig {
        &self.inner.config
    }

    /// The configured server names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.config.servers.keys().map(String::as_str)
    }

    /// Without the `mcp` feature there is nothing to close.
    #[cfg(not(feature = "mcp"))]
    pub async fn shutdown(&self) {}
}

impl Default for McpServers {
    fn default() -> Self {
        Self::new(McpConfig::default())
    }
}

/// Two sets of servers are equal when configured alike (their connections are not compared).
impl PartialEq for McpServers {
    fn eq(&self, other: &Self) -> bool {
        self.inner.config == other.inner.config
    }
}

impl std::fmt::Debug for McpServers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServers")
            .field("servers", &self.names().collect::<Vec<_>>())
            .finish()
    }
}

/// How agent files name what comes from an MCP server: `mcp:SERVER/NAME`.
pub const PREFIX: &str = "mcp:";

/// A parsed `mcp:server/tool` (or `mcp:server/*`) name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpSelector {
    /// The server, as named in `[mcp.servers]`.
    pub server: String,
    /// The tool (or prompt); `None` for `*`, every one.
    pub tool: Option<String>,
}

impl McpSelector {
    /// `Some` when `name` starts with `mcp:`: the selector, or what is wrong with it.
    pub fn parse(name: &str) -> Option<Result<Self, String>> {
        let rest = name.strip_prefix(PREFIX)?;
        let Some((server, tool)) = rest.split_once('/') else {
            return Some(Err(format!(
                "`{name}` names no tool: write `mcp:SERVER/TOOL`, or `mcp:SERVER/*` for all of its tools"
            )));
        };
        if server.is_empty() || tool.is_empty() {
            return Some(Err(format!(
                "`{name}` needs a server and a tool: `mcp:SERVER/TOOL` or `mcp:SERVER/*`"
            )));
        }
        Some(Ok(Self {
            server: server.to_owned(),
            tool: (tool != "*").then(|| tool.to_owned()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse_and_bad_ones_say_how_to_write_them() {
        assert_eq!(McpSelector::parse("calculator"), None);
        assert_eq!(
            McpSelector::parse("mcp:time/*").unwrap().unwrap(),
            McpSelector {
                server: "time".into(),
                tool: None
            }
        );
        assert_eq!(
            McpSelector::parse("mcp:fetch/fetch").unwrap().unwrap().tool,
            Some("fetch".into())
        );
        for bad in ["mcp:time", "mcp:/x", "mcp:time/"] {
            let error = McpSelector::parse(bad).unwrap().unwrap_err();
            assert!(error.contains("mcp:SERVER/"), "{bad}: {error}");
        }
    }
}
