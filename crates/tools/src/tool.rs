//! The [`Tool`] trait and its error type.

use async_trait::async_trait;

/// Something an agent can call: a function with a name, a description for the model and a JSON
/// Schema of its arguments.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The name the model calls it by (`gen_ai.tool.name`); unique within a [`crate::ToolSet`].
    fn name(&self) -> &str;

    /// What the tool does and when to use it, written for the model.
    fn description(&self) -> &str;

    /// JSON Schema (type `object`) of the arguments.
    fn parameters(&self) -> serde_json::Value;

    /// Runs the tool. The returned text is what the model sees as the tool result.
    async fn call(&self, arguments: serde_json::Value) -> Result<String, ToolError>;
}

/// Why a tool call failed. The agent sends the message back to the model as the tool result, so it
/// says what was wrong in words the model can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The arguments do not fit the tool's schema or cannot be used.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The tool ran and failed.
    #[error("{0}")]
    Failed(String),
}

impl ToolError {
    /// A short class of the error for the `error.type` span attribute.
    pub fn error_type(&self) -> &'static str {
        match self {
            ToolError::InvalidArguments(_) => "invalid_arguments",
            ToolError::Failed(_) => "tool_error",
        }
    }
}
