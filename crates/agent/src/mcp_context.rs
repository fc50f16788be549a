//! MCP resources as an agent's context: `resources = ["mcp:SERVER/URI"]` in an agent file reads
//! each resource with `resources/read` every turn (so a changed resource is seen at once) and gives
//! its text to the model as a numbered source it cites.

#[cfg(feature = "mcp")]
use sextant_memory::RetrievedChunk;
use sextant_tools::mcp::McpServers;

#[cfg(feature = "mcp")]
use crate::agent::ContextSource;

/// One `mcp:SERVER/URI` of an agent file's `resources`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpResourceRef {
    /// The server, as named in `[mcp.servers]`.
    pub server: String,
    /// The resource's URI on it (`file:///…`, `demo://…`).
    pub uri: String,
}

impl McpResourceRef {
    /// The reference `text` names, or what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix(sextant_tools::mcp::PREFIX)
            .ok_or_else(|| format!("`{text}` is not an MCP resource: write `mcp:SERVER/URI`"))?;
        match rest.split_once('/') {
            Some((server, uri)) if !server.is_empty() && !uri.is_empty() => Ok(Self {
                server: server.to_owned(),
                uri: uri.to_owned(),
            }),
            _ => Err(format!(
                "`{text}` needs a server and a URI: `mcp:SERVER/URI`, e.g. `mcp:docs/file:///guide.md`"
            )),
        }
    }
}

/// The resources an agent reads every turn (a [`ContextSource`](crate::agent::ContextSource) with
/// the `mcp` feature).
#[cfg_attr(not(feature = "mcp"), allow(dead_code))]
pub struct McpResources {
    servers: McpServers,
    resources: Vec<McpResourceRef>,
}

impl McpResources {
    /// `resources` of the servers in `servers`.
    pub fn new(servers: McpServers, resources: Vec<McpResourceRef>) -> Self {
        Self { servers, resources }
    }
}

#[cfg(feature = "mcp")]
#[async_trait::async_trait]
impl ContextSource for McpResources {
    async fn read(&self, _question: &str) -> Result<Vec<RetrievedChunk>, String> {
        let mut chunks = Vec::new();
        for resource in &self.resources {
            let contents = self
                .servers
                .read_resource_text(&resource.server, &resource.uri)
                .await
                .map_err(|error| error.to_string())?;
            for (index, (uri, text)) in contents.into_iter().enumerate() {
                chunks.push(RetrievedChunk {
                    id: 0,
                    score: 1.0,
                    source: format!("mcp:{}/{uri}", resource.server),
                    title: Some(uri),
                    url: None,
                    heading: None,
                    chunk_index: index as u64,
                    text,
                });
            }
        }
        Ok(chunks)
    }
}

/// An MCP server's prompt as an agent's turn template (`prompt = "mcp:SERVER/NAME"`): its
/// arguments are listed once, and it is rendered by the server every turn.
#[cfg_attr(not(feature = "mcp"), allow(dead_code))]
pub struct McpPromptTemplate {
    servers: McpServers,
    server: String,
    prompt: String,
    shown: String,
    #[cfg(feature = "mcp")]
    arguments: tokio::sync::OnceCell<Vec<String>>,
}

impl McpPromptTemplate {
    /// Prompt `name` of `server` among `servers`.
    pub fn new(servers: McpServers, server: &str, name: &str) -> Self {
        Self {
            servers,
            server: server.to_owned(),
            prompt: name.to_owned(),
            shown: format!("mcp:{server}/{name}"),
            #[cfg(feature = "mcp")]
            arguments: tokio::sync::OnceCell::new(),
        }
    }
}

#[cfg(feature = "mcp")]
#[async_trait::async_trait]
impl crate::prompt::MessageTemplate for McpPromptTemplate {
    fn name(&self) -> &str {
        &self.shown
    }

    async fn arguments(&self) -> Result<Vec<String>, String> {
        self.arguments
            .get_or_try_init(|| async {
                self.servers
                    .prompt_arguments(&self.server, &self.prompt)
                    .await
                    .map_err(|error| error.to_string())
            })
            .await
            .cloned()
    }

    async fn render(
        &self,
        arguments: std::collections::BTreeMap<String, String>,
    ) -> Result<Vec<(String, String)>, String> {
        self.servers
            .prompt_messages(&self.server, &self.prompt, arguments)
            .await
            .map_err(|error| error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_references_parse_and_bad_ones_say_how() {
        assert_eq!(
            McpResourceRef::parse("mcp:docs/file:///guide.md").unwrap(),
            McpResourceRef {
                server: "docs".into(),
                uri: "file:///guide.md".into()
            }
        );
        for bad in ["docs/file.md", "mcp:docs", "mcp:/x", "mcp:docs/"] {
            assert!(McpResourceRef::parse(bad).is_err(), "{bad}");
        }
    }
}
