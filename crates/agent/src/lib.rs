//! Sextant agents: the agent loop, the chat-model API and its providers, agent configuration.
//!
//! An [`Agent`] answers a question by calling a [`ChatModel`] and the tools of its
//! [`ToolSet`](sextant_tools::ToolSet) until the model gives a final answer; every step is a span of
//! the OpenTelemetry GenAI conventions, nested under the agent's `invoke_agent` span. An agent with
//! [memory] retrieves from a knowledge base for each question (RAG) or through a `search_memory`
//! tool. An agent's prompts can come from the versioned [prompt] registry.
#![deny(missing_docs)]

pub mod a2a;
pub mod agent;
pub mod approval;
pub mod budget;
mod build_context;
pub mod chat;
pub mod config;
pub mod error;
#[cfg(feature = "eval")]
pub mod eval;
pub mod grounding;
pub mod guardrails;
pub mod mcp_context;
pub mod memory;
pub mod model_files;
pub mod output_schema;
#[cfg(feature = "postgres")]
pub mod postgres_state;
pub mod prices;
pub mod prompt;
pub mod providers;
pub mod rag_context;
pub mod registry;
pub mod replay;
pub mod retry;
pub mod run_logging;
pub mod session;
mod span_content;
mod sqlite_file;
pub mod sub_agent;
pub mod testing;
mod traced_chat;
pub mod turn_state;
pub mod turn_store;
pub mod workflow;

pub use agent::{
    Agent, AgentBuilder, AgentError, AgentOutcome, HandoffHistory, StopReason, ToolCallRecord,
    TurnContext,
};
pub use build_context::BuildContext;
pub use chat::{
    ChatChunk, ChatModel, ChatOptions, ChatRequest, ChatResponse, ChatStream, FinishReason,
    Message, Role, ToolCall, ToolChoice, ToolDefinition, Usage,
};
pub use config::{AgentConfig, AgentDefaults, BuildError, ConfigError};
pub use error::ChatError;
pub use output_schema::{OutputSchema, OutputSchemaError, OutputViolation};
