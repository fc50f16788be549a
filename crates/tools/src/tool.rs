//! The [`Tool`] trait and its error type.

use std::time::Duration;

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

    /// Worked examples of questions and the arguments that answer them. A small model is shown
    /// them as earlier exchanges before it writes a call (it learns `divided by` → `/` from them);
    /// providers with native tool calling ignore them. None by default.
    fn examples(&self) -> Vec<ToolExample> {
        Vec::new()
    }

    /// Whether running a call twice does no more than running it once (a lookup, a read, a
    /// calculation). A durable turn resumed after a crash runs such a call again if it was in
    /// flight; any other call goes to a person instead of silently repeating. `false` unless the
    /// tool says so.
    fn idempotent(&self) -> bool {
        false
    }
}

/// A question and the arguments a call to the tool answers it with.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolExample {
    /// A question a user might ask.
    pub question: String,
    /// The arguments that answer it (valid against the tool's parameters).
    pub arguments: serde_json::Value,
}

impl ToolExample {
    /// An example from a question and its arguments.
    pub fn new(question: impl Into<String>, arguments: serde_json::Value) -> Self {
        Self {
            question: question.into(),
            arguments,
        }
    }
}

/// Why a tool call failed. The agent sends the message back to the model as the tool result, so it
/// says what was wrong in words the model can act on; [`ToolError::error_type`] is what the span's
/// `error.type` says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// The arguments do not fit the tool's schema or cannot be used.
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    /// The tool ran and failed.
    #[error("{0}")]
    Failed(String),
    /// A service the tool relies on failed or answered with an error status.
    #[error("{0}")]
    Upstream(String),
    /// The call was refused by a safety policy (e.g. the fetch guard against private addresses).
    #[error("refused: {0}")]
    Refused(String),
    /// The call did not finish within the tool's time limit.
    #[error("the tool did not finish within {} s", .0.as_secs_f64())]
    Timeout(Duration),
    /// The model called a tool that is not in the set.
    #[error("there is no tool `{name}`; the tools are: {}", available.join(", "))]
    UnknownTool {
        /// The name the model used.
        name: String,
        /// The tools that exist.
        available: Vec<String>,
    },
    /// The model asked for more calls at once than the set allows; this one was not run.
    #[error(
        "not run: at most {max} tool calls run per step; call `{name}` again in your next step if you still need it"
    )]
    TooManyCalls {
        /// The tool that was not run.
        name: String,
        /// The limit.
        max: usize,
    },
}

impl ToolError {
    /// A short class of the error for the `error.type` span attribute.
    pub fn error_type(&self) -> &'static str {
        match self {
            ToolError::InvalidArguments(_) => "invalid_arguments",
            ToolError::Failed(_) => "tool_error",
            ToolError::Upstream(_) => "upstream_error",
            ToolError::Refused(_) => "refused",
            ToolError::Timeout(_) => "timeout",
            ToolError::UnknownTool { .. } => "unknown_tool",
            ToolError::TooManyCalls { .. } => "max_parallel_exceeded",
        }
    }
}
