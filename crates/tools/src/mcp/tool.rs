//! [`McpTool`]: a tool of an MCP server as a Sextant [`Tool`], and [`mcp_tools`], which turns an
//! agent file's `mcp:server/tool` and `mcp:server/*` names into them.

use std::sync::Arc;

use async_trait::async_trait;
use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};

use super::McpSelector;
use super::McpServers;
use super::servers::{McpError, RemoteTool};
use crate::{Tool, ToolError};

/// A remote tool. Its schema and description are the server's, as last listed (a
/// `notifications/tools/list_changed` refreshes them before the next agent is built); its
/// arguments are checked against that schema before the call like every tool's.
pub struct McpTool {
    servers: McpServers,
    server: String,
    remote: RemoteTool,
    name: String,
}

impl McpTool {
    /// The tool's name on its server.
    pub fn remote_name(&self) -> &str {
        &self.remote.name
    }

    /// The server it belongs to.
    pub fn server(&self) -> &str {
        &self.server
    }
}

#[async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.remote.description
    }

    fn parameters(&self) -> serde_json::Value {
        self.servers
            .cached_tool(&self.server, &self.remote.name)
            .map_or_else(
                || self.remote.input_schema.clone(),
                |tool| tool.input_schema,
            )
    }

    fn idempotent(&self) -> bool {
        self.remote.idempotent
    }

    async fn call(&self, arguments: serde_json::Value) -> Result<String, ToolError> {
        let serde_json::Value::Object(arguments) = arguments else {
            return Err(ToolError::InvalidArguments(
                "the arguments must be a JSON object".into(),
            ));
        };
        let result = self
            .servers
            .call_tool(&self.server, &self.remote.name, arguments)
            .await
            .map_err(|error| match error {
                McpError::Request { code: Some(_), .. } => ToolError::Failed(error.to_string()),
                other => ToolError::Upstream(other.to_string()),
            })?;
        let text = result_text(&result);
        if result.is_error == Some(true) {
            return Err(ToolError::Failed(if text.is_empty() {
                format!("the MCP tool `{}` failed", self.remote.name)
            } else {
                text
            }));
        }
        Ok(text)
    }
}

/// What the model sees of a result: its text blocks, the text of embedded text resources, and a
/// note for each block it cannot read; the structured content when there is no text.
pub fn result_text(result: &CallToolResult) -> String {
    let mut parts = Vec::new();
    for block in &result.content {
        parts.push(match block_text(block) {
            Some(text) => text.to_owned(),
            None => unreadable(block),
        });
    }
    if parts.is_empty()
        && let Some(structured) = &result.structured_content
    {
        return structured.to_string();
    }
    parts.join("\n")
}

/// The text of a content block a model can read: a text block, or an embedded text resource.
pub(crate) fn block_text(block: &ContentBlock) -> Option<&str> {
    match block {
        ContentBlock::Text(text) => Some(&text.text),
        ContentBlock::Resource(embedded) => match &embedded.resource {
            ResourceContents::TextResourceContents { text, .. } => Some(text),
            _ => None,
        },
        _ => None,
    }
}

/// The note a model reads in place of a block it cannot read.
fn unreadable(block: &ContentBlock) -> String {
    match block {
        ContentBlock::Resource(embedded) => match &embedded.resource {
            ResourceContents::BlobResourceContents { uri, .. } => {
                format!("[binary resource {uri}]")
            }
            #[allow(unreachable_patterns)]
            _ => "[resource]".into(),
        },
        ContentBlock::ResourceLink(link) => format!("[resource {}]", link.uri),
        ContentBlock::Image(image) => format!("[image {}]", image.mime_type),
        ContentBlock::Audio(audio) => format!("[audio {}]", audio.mime_type),
        #[allow(unreachable_patterns)]
        _ => "[content]".into(),
    }
}

/// The model-facing name of `tool` of `server`: its own name with the server's `tool_prefix`,
/// with characters chat APIs refuse in a function name replaced by `_`, cut to 64.
fn model_name(prefix: Option<&str>, tool: &str) -> String {
    crate::wire_name(&format!("{}{tool}", prefix.unwrap_or("")))
}

/// The tools `selectors` name (`mcp:time/*`, `mcp:fetch/fetch`), listing each server once.
/// A server that cannot be reached or a tool it does not offer is an error naming both.
pub async fn mcp_tools(
    servers: &McpServers,
    selectors: &[McpSelector],
) -> Result<Vec<Arc<dyn Tool>>, McpError> {
    let mut tools: Vec<Arc<dyn Tool>> = Vec::new();
    for selector in selectors {
        let listed = servers.tools(&selector.server).await?;
        let prefix = servers
            .config()
            .servers
            .get(&selector.server)
            .and_then(|s| s.tool_prefix.as_deref());
        let chosen: Vec<RemoteTool> = match &selector.tool {
            None => listed,
            Some(name) => match listed.iter().find(|t| &t.name == name) {
                Some(tool) => vec![tool.clone()],
                None => {
                    return Err(McpError::UnknownTool {
                        server: selector.server.clone(),
                        tool: name.clone(),
                        offered: listed.iter().map(|t| t.name.clone()).collect(),
                    });
                }
            },
        };
        for remote in chosen {
            tools.push(Arc::new(McpTool {
                servers: servers.clone(),
                server: selector.server.clone(),
                name: model_name(prefix, &remote.name),
                remote,
            }));
        }
    }
    Ok(tools)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_keep_what_chat_apis_accept() {
        assert_eq!(model_name(None, "get_current_time"), "get_current_time");
        assert_eq!(model_name(Some("time_"), "convert"), "time_convert");
        assert_eq!(model_name(None, "files.read/v2"), "files_read_v2");
        assert_eq!(model_name(None, &"x".repeat(80)).len(), 64);
    }

    #[test]
    fn results_become_text_the_model_can_read() {
        let mut result = CallToolResult::success(vec![
            ContentBlock::text("first"),
            ContentBlock::image("AAAA", "image/png"),
            ContentBlock::embedded_text("file:///a.txt", "embedded"),
        ]);
        assert_eq!(result_text(&result), "first\n[image image/png]\nembedded");
        result.content.clear();
        result.structured_content = Some(serde_json::json!({"temperature": 21}));
        assert_eq!(result_text(&result), r#"{"temperature":21}"#);
    }
}
