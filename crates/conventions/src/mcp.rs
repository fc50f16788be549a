//! The Model Context Protocol's method names (`mcp.method.name`, the first word of an MCP span's
//! name: `tools/call get_current_time`) and the `error.type` of a tool that answered with
//! `isError`.

/// `initialize`.
pub const INITIALIZE: &str = "initialize";
/// `tools/list`.
pub const TOOLS_LIST: &str = "tools/list";
/// `tools/call`.
pub const TOOLS_CALL: &str = "tools/call";
/// `prompts/list`.
pub const PROMPTS_LIST: &str = "prompts/list";
/// `prompts/get`.
pub const PROMPTS_GET: &str = "prompts/get";
/// `resources/list`.
pub const RESOURCES_LIST: &str = "resources/list";
/// `resources/read`.
pub const RESOURCES_READ: &str = "resources/read";

/// `error.type` of a `tools/call` whose result has `isError: true`: the conventions' value for a
/// tool that ran and reported a failure (as opposed to a protocol error).
pub const TOOL_ERROR: &str = "tool_error";

/// `network.transport` of MCP over a child process's stdin/stdout.
pub const TRANSPORT_PIPE: &str = "pipe";
/// `network.transport` of MCP over Streamable HTTP.
pub const TRANSPORT_TCP: &str = "tcp";
