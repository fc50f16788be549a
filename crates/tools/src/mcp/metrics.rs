//! [`McpMetrics`]: the MCP conventions' `mcp.client.operation.duration` and
//! `mcp.server.operation.duration` histograms, on the process's global meter provider.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use sextant_conventions::{self as sc, metric};

/// The attributes of one MCP operation in the metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct McpOperation<'a> {
    /// `mcp.method.name`.
    pub method: &'a str,
    /// `gen_ai.tool.name`, for `tools/call`.
    pub tool: Option<&'a str>,
    /// `gen_ai.prompt.name`, for `prompts/get`.
    pub prompt: Option<&'a str>,
    /// `mcp.protocol.version`, once agreed.
    pub protocol_version: Option<&'a str>,
    /// `network.transport`: `pipe` or `tcp`.
    pub transport: &'a str,
    /// `error.type`, when it failed.
    pub error_type: Option<&'a str>,
}

impl McpOperation<'_> {
    fn key_values(&self) -> Vec<KeyValue> {
        let mut values = vec![
            KeyValue::new(sc::MCP_METHOD_NAME, self.method.to_owned()),
            KeyValue::new(sc::NETWORK_TRANSPORT, self.transport.to_owned()),
        ];
        if let Some(tool) = self.tool {
            values.push(KeyValue::new(sc::GEN_AI_TOOL_NAME, tool.to_owned()));
            values.push(KeyValue::new(
                sc::GEN_AI_OPERATION_NAME,
                sc::operation::EXECUTE_TOOL,
            ));
        }
        if let Some(prompt) = self.prompt {
            values.push(KeyValue::new(sc::GEN_AI_PROMPT_NAME, prompt.to_owned()));
        }
        if let Some(version) = self.protocol_version {
            values.push(KeyValue::new(sc::MCP_PROTOCOL_VERSION, version.to_owned()));
        }
        if let Some(error_type) = self.error_type {
            values.push(KeyValue::new(sc::ERROR_TYPE, error_type.to_owned()));
        }
        values
    }
}

/// Both MCP duration histograms, with the conventions' bucket boundaries.
#[derive(Debug, Clone)]
pub struct McpMetrics {
    client: Histogram<f64>,
    server: Histogram<f64>,
}

impl McpMetrics {
    /// The histograms on the global meter provider (no-ops until telemetry installs one).
    pub fn global() -> Self {
        let meter = opentelemetry::global::meter("sextant");
        let histogram = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(metric::MCP_OPERATION_DURATION_BOUNDARIES.to_vec())
                .build()
        };
        Self {
            client: histogram(
                metric::MCP_CLIENT_OPERATION_DURATION,
                "MCP request duration as observed by the client",
            ),
            server: histogram(
                metric::MCP_SERVER_OPERATION_DURATION,
                "MCP request duration as observed by the server",
            ),
        }
    }

    /// Records a request this process sent.
    pub fn record_client(&self, operation: &McpOperation<'_>, duration: Duration) {
        self.client
            .record(duration.as_secs_f64(), &operation.key_values());
    }

    /// Records a request this process answered.
    pub fn record_server(&self, operation: &McpOperation<'_>, duration: Duration) {
        self.server
            .record(duration.as_secs_f64(), &operation.key_values());
    }
}
