//! Tools that Sextant agents call.
//!
//! A [`Tool`] has a name, a description, a JSON Schema of its arguments and an async `call`. A
//! [`ToolSet`] holds the tools an agent may use and is what an agent configuration selects from by
//! name. The built-in tools live in [`builtin`].
//!
//! ```
//! use sextant_tools::{ToolSet, builtin::Calculator};
//! # let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # runtime.block_on(async {
//! let tools = ToolSet::new().with(Calculator);
//! let calculator = tools.get("calculator").unwrap();
//! let result = calculator.call(serde_json::json!({"expression": "12 * 7 + 3"})).await;
//! assert_eq!(result.unwrap(), "87");
//! # });
//! ```
#![deny(missing_docs)]

pub mod builtin;
mod fn_tool;
mod schema;
mod tool;
mod tool_set;

pub use fn_tool::{FnTool, tool_fn};
pub use schema::{SchemaViolation, validate_arguments};
pub use tool::{Tool, ToolError};
pub use tool_set::{ToolSet, UnknownTool};
