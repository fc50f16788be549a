//! Values of `gen_ai.operation.name`, which are also the first word of span names.

/// A chat completion.
pub const CHAT: &str = "chat";
/// A plain text completion.
pub const TEXT_COMPLETION: &str = "text_completion";
/// A multimodal content generation (Gemini style).
pub const GENERATE_CONTENT: &str = "generate_content";
/// One agent turn: the root span of a trace.
pub const INVOKE_AGENT: &str = "invoke_agent";
/// One run of a workflow (a pipeline of agents, tools and other workflows): the root span of its
/// trace.
pub const INVOKE_WORKFLOW: &str = "invoke_workflow";
/// Creating an agent.
pub const CREATE_AGENT: &str = "create_agent";
/// One tool call.
pub const EXECUTE_TOOL: &str = "execute_tool";
/// Computing embeddings.
pub const EMBEDDINGS: &str = "embeddings";
/// Retrieving context from memory.
pub const RETRIEVAL: &str = "retrieval";
