//! Tools that Sextant agents call.
//!
//! A [`Tool`] has a name, a description, a JSON Schema of its arguments and an async `call`;
//! [`tool_fn`] makes one from an async function. A [`ToolSet`] holds the tools an agent may use —
//! an agent configuration selects them by name — and [`ToolSet::invoke`] runs a call the way a
//! model makes it: arguments checked against the schema, time and result size bounded by
//! [`ToolLimits`]. The built-in tools live in [`builtin`] and are configured by [`ToolsConfig`].
//!
//! Tools trace their own sub-steps as child spans of the agent's `execute_tool` span (web search:
//! `plan_query`, the backend's HTTP request, `process_results`).
//!
//! ```
//! use sextant_tools::{ToolSet, builtin::Calculator};
//! # let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! # runtime.block_on(async {
//! let tools = ToolSet::new().with(Calculator);
//! let result = tools.invoke("calculator", r#"{"expression": "12 * 7 + 3"}"#).await;
//! assert_eq!(result.unwrap().text, "87");
//! # });
//! ```
#![deny(missing_docs)]

mod api_key;
pub mod builtin;
mod capture;
pub mod config;
mod fn_tool;
mod http;
mod limits;
pub mod mcp;
mod schema;
mod tool;
mod tool_set;

pub use capture::{content_capture_enabled, with_content_capture};
pub use config::{ToolConfigError, ToolsConfig};
pub use fn_tool::{FnTool, tool_fn};
pub use limits::{ToolLimits, ToolOutput};
pub use mcp::McpConfig;
pub use schema::{SchemaViolation, validate_arguments, wire_name};
pub use tool::{Tool, ToolError, ToolExample};
pub use tool_set::{ToolSet, ToolSetError, UnknownTool};
