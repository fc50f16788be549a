//! [`Agent`]: the loop that turns a question into an answer with a chat model and tools, traced as
//! one `invoke_agent` span with `chat` and `execute_tool` children.
//!
//! One turn: system prompt + history + the user's message → chat → the tool calls it asked for (run
//! concurrently) → their results back to the model → … until the model answers in text or
//! `max_steps` model calls have been made. The last allowed call forbids tools, so a turn ends with
//! an answer whenever the model honours that; when it does not, the tools it asked for are not run
//! and the turn ends with [`StopReason::MaxSteps`] and an answer saying so — never a tool's result.
//! A failing tool, an unknown tool or malformed argument JSON never fails the turn: the error goes
//! back to the model as the tool's result.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use sextant_memory::{RetrievalError, RetrievedChunk, Retriever};
use sextant_tools::{ToolError, ToolSet, with_content_capture};
use sextant_tracker::GenAiMetrics;
use sextant_tracker::conventions as sc;
use sextant_tracker::prompts::{PromptVersionRef, RegistryError};
use tracing::Instrument;
use tracing::field::Empty;

use crate::chat::{
    ChatModel, ChatOptions, ChatRequest, ChatResponse, Message, ToolCall, ToolChoice,
    ToolDefinition, Usage,
};
use crate::error::ChatError;
use crate::memory::{Citation, cite};
use crate::prompt::{
    AgentPrompts, ConstructedPrompt, MessageTemplate, construct_from_template, linked_prompts,
    user_message,
};
use crate::span_content;

/// Why a turn failed. Tool failures are not here: they go back to the model.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The chat model failed (after the configured retries).
    #[error("agent `{agent}`: the model call failed: {error}")]
    Chat {
        /// The agent.
        agent: String,
        /// The model's error (part of the message, so not repeated as a source).
        error: ChatError,
    },
    /// The prompt could not be loaded from the registry or rendered.
    #[error("agent `{agent}`: constructing the prompt failed: {error}")]
    Prompt {
        /// The agent.
        agent: String,
        /// Why (part of the message, so not repeated as a source).
        error: RegistryError,
    },
    /// Retrieving the turn's context from memory failed.
    #[error("agent `{agent}`: retrieving context failed: {error}")]
    Retrieval {
        /// The agent.
        agent: String,
        /// Why (part of the message, so not repeated as a source).
        error: RetrievalError,
    },
    /// A [`ContextSource`] (an MCP resource) could not be read.
    #[error("agent `{agent}`: reading context failed: {message}")]
    Context {
        /// The agent.
        agent: String,
        /// Which source and why.
        message: String,
    },
}

impl AgentError {
    /// The `error.type` of this failure.
    pub fn error_type(&self) -> String {
        match self {
            Self::Chat { error, .. } => error.error_type().to_string(),
            Self::Retrieval { error, .. } => error.error_type().to_owned(),
            Self::Prompt { error, .. } => error.error_type().to_owned(),
            Self::Context { .. } => "context_error".to_owned(),
        }
    }
}

/// Documents an agent reads every turn besides its memory (the MCP resources its file lists):
/// they join the turn's sources, numbered and citable like retrieved chunks.
#[async_trait::async_trait]
pub trait ContextSource: Send + Sync {
    /// The documents for this turn's `question`; an error names the source and why.
    async fn read(&self, question: &str) -> Result<Vec<RetrievedChunk>, String>;
}

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model answered in text.
    Answered,
    /// The model still asked for tools in its last allowed call (`max_steps`): those calls were
    /// not run, and the answer says that the agent ran out of steps.
    MaxSteps,
}

/// One tool call made during a turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolCallRecord {
    /// The model's id of the call.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as the model wrote them.
    pub arguments: String,
    /// What the model was told: the result, or the error.
    pub result: String,
    /// Whether the call failed.
    pub is_error: bool,
    /// The `error.type` of a failed call, or `result_truncated` for a result cut to the limit.
    pub error_type: Option<&'static str>,
    /// How long it took.
    pub duration_ms: f64,
}

/// The result of one turn.
#[derive(Debug, Clone, Serialize)]
pub struct AgentOutcome {
    /// The final answer.
    pub answer: String,
    /// The trace of this turn (32 hex digits), when tracing is on.
    pub trace_id: Option<String>,
    /// Model calls made.
    pub steps: u32,
    /// Tokens used over all model calls.
    pub usage: Usage,
    /// Every tool call, in order.
    pub tool_calls: Vec<ToolCallRecord>,
    /// How the turn ended.
    pub stop_reason: StopReason,
    /// The conversation after the turn, system prompt first.
    pub messages: Vec<Message>,
    /// The sources retrieved for the question (memory in context mode), numbered as in the
    /// prompt; the answer ends with a list of those it cites.
    pub citations: Vec<Citation>,
    /// The registry prompt versions the turn was built from (system prompt first).
    pub prompt_versions: Vec<PromptVersionRef>,
}

pub(crate) use sextant_tracker::mark_failed;

/// Marks the agent span of a turn whose future was dropped before it finished (Ctrl-C, a client
/// that went away, a timeout around `run`), so a backend does not show a cut-off turn as a success.
struct CancelledTurnGuard<'a> {
    span: &'a tracing::Span,
    armed: bool,
}

impl CancelledTurnGuard<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelledTurnGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            mark_failed(
                self.span,
                "cancelled",
                "the turn was cancelled before it finished",
            );
        }
    }
}

/// Per-turn context that ends up on the spans (`gen_ai.conversation.id`, `user.id`).
#[derive(Debug, Clone, Default)]
pub struct TurnContext {
    /// The conversation (session) this turn belongs to.
    pub conversation_id: Option<String>,
    /// The user asking.
    pub user_id: Option<String>,
}

/// An agent: a named system prompt, a chat model and the tools it may call.
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// use std::sync::Arc;
/// use sextant_agent::{Agent, providers::openai::OpenAiChatModel};
/// use sextant_tools::ToolSet;
/// let model = Arc::new(OpenAiChatModel::new("http://127.0.0.1:8080/v1", None, "SmolLM2-135M-Instruct"));
/// let agent = Agent::builder("assistant", model)
///     .system_prompt("You are a helpful assistant.")
///     .tools(ToolSet::builtin())
///     .build();
/// let outcome = agent.run("What is 12 * 7 + 3?").await?;
/// println!("{} (trace {:?})", outcome.answer, outcome.trace_id);
/// # Ok(()) }
/// ```
pub struct Agent {
    name: String,
    system_prompt: String,
    model: Arc<dyn ChatModel>,
    tools: ToolSet,
    max_steps: u32,
    options: ChatOptions,
    capture_content: bool,
    metrics: GenAiMetrics,
    context_retriever: Option<Arc<Retriever>>,
    context_sources: Vec<Arc<dyn ContextSource>>,
    context_fit: crate::rag_context::ContextFit,
    prompts: Option<AgentPrompts>,
    message_template: Option<(
        Arc<dyn MessageTemplate>,
        serde_json::Map<String, serde_json::Value>,
    )>,
    model_version: Option<String>,
}

/// Builds an [`Agent`].
pub struct AgentBuilder {
    agent: Agent,
}

impl AgentBuilder {
    /// The system prompt (default: none).
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.agent.system_prompt = prompt.into();
        self
    }

    /// The tools the agent may call, with the limits their calls run under (default: none).
    pub fn tools(mut self, tools: ToolSet) -> Self {
        self.agent.tools = tools;
        self
    }

    /// Most model calls per turn (default 6, at least 1).
    pub fn max_steps(mut self, steps: u32) -> Self {
        self.agent.max_steps = steps.max(1);
        self
    }

    /// Sampling options of every model call.
    pub fn options(mut self, options: ChatOptions) -> Self {
        self.agent.options = options;
        self
    }

    /// Record message content on spans (default off).
    pub fn capture_content(mut self, capture: bool) -> Self {
        self.agent.capture_content = capture;
        self
    }

    /// Where the GenAI client metrics go (default: the global meter provider that
    /// `sextant_tracker::init` installs; a pipeline built without installing it passes its own).
    pub fn metrics(mut self, metrics: GenAiMetrics) -> Self {
        self.agent.metrics = metrics;
        self
    }

    /// Retrieve context for every question from `retriever` and answer from it with citations
    /// (RAG). The retrieval is a `retrieval {collection}` span under the turn's agent span.
    pub fn context_retriever(mut self, retriever: Arc<Retriever>) -> Self {
        self.agent.context_retriever = Some(retriever);
        self
    }

    /// Read `source` every turn and answer from its documents too, with citations.
    pub fn context_source(mut self, source: Arc<dyn ContextSource>) -> Self {
        self.agent.context_sources.push(source);
        self
    }

    /// How the retrieved chunks are cut to fit the model before it sees them (default: not cut).
    pub fn context_fit(mut self, fit: crate::rag_context::ContextFit) -> Self {
        self.agent.context_fit = fit;
        self
    }

    /// Take the system prompt and/or the turn's message template from the prompt registry,
    /// resolved every turn as a `prompt {name}` span (see [`AgentPrompts`]).
    pub fn prompts(mut self, prompts: AgentPrompts) -> Self {
        self.agent.prompts = Some(prompts);
        self
    }

    /// Take the turn's messages from `template` (an MCP server's prompt), rendered every turn with
    /// the arguments it declares among `question`, `context` and `variables`; a registry system
    /// prompt still applies.
    pub fn message_template(
        mut self,
        template: Arc<dyn MessageTemplate>,
        variables: serde_json::Map<String, serde_json::Value>,
    ) -> Self {
        self.agent.message_template = Some((template, variables));
        self
    }

    /// The agent.
    pub fn build(self) -> Agent {
        self.agent
    }
}

impl Agent {
    /// An agent called `name` answering with `model`.
    pub fn builder(name: impl Into<String>, model: Arc<dyn ChatModel>) -> AgentBuilder {
        AgentBuilder {
            agent: Agent {
                name: name.into(),
                system_prompt: String::new(),
                model,
                tools: ToolSet::new(),
                max_steps: 6,
                options: ChatOptions::default(),
                capture_content: false,
                metrics: GenAiMetrics::global(),
                context_retriever: None,
                context_sources: Vec::new(),
                context_fit: crate::rag_context::ContextFit::default(),
                prompts: None,
                message_template: None,
                model_version: None,
            },
        }
    }

    /// The agent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The agent's model.
    pub fn model(&self) -> &Arc<dyn ChatModel> {
        &self.model
    }

    /// The agent's tools.
    pub fn tools(&self) -> &ToolSet {
        &self.tools
    }

    /// Whether the agent may record message content (questions, answers, tool arguments and
    /// results) on its spans and in what it logs (`[telemetry] capture_content`).
    pub fn captures_content(&self) -> bool {
        self.capture_content
    }

    /// The same agent, recorded as registered version `uri` (`models:/name/3`) on every trace.
    pub fn with_model_version(mut self, uri: impl Into<String>) -> Self {
        self.model_version = Some(uri.into());
        self
    }

    /// The registered version this agent is, when it was loaded from the model registry.
    pub fn model_version(&self) -> Option<&str> {
        self.model_version.as_deref()
    }

    /// Where the agent's registry prompts come from, if it has any.
    pub fn prompts(&self) -> Option<&AgentPrompts> {
        self.prompts.as_ref()
    }

    /// Answers `question` with no earlier conversation.
    pub async fn run(&self, question: &str) -> Result<AgentOutcome, AgentError> {
        self.run_turn(&[], question, &TurnContext::default(), None)
            .await
    }

    /// Answers `question` after `history` (earlier turns, without the system prompt), calling
    /// `on_content` with each piece of the answer's text as the model streams it.
    pub async fn run_turn(
        &self,
        history: &[Message],
        question: &str,
        context: &TurnContext,
        on_content: Option<&(dyn Fn(&str) + Send + Sync)>,
    ) -> Result<AgentOutcome, AgentError> {
        let span = tracing::info_span!(
            sc::operation::INVOKE_AGENT,
            { sc::OTEL_NAME } = %format!("{} {}", sc::operation::INVOKE_AGENT, self.name),
            { sc::OTEL_KIND } = "internal",
            { sc::OTEL_STATUS_CODE } = Empty,
            { sc::OTEL_STATUS_DESCRIPTION } = Empty,
            { sc::GEN_AI_OPERATION_NAME } = sc::operation::INVOKE_AGENT,
            { sc::GEN_AI_AGENT_NAME } = %self.name,
            { sc::GEN_AI_PROVIDER_NAME } = %self.model.provider(),
            { sc::GEN_AI_REQUEST_MODEL } = %self.model.model(),
            { sc::GEN_AI_CONVERSATION_ID } = Empty,
            { sc::GEN_AI_PROMPT_NAME } = Empty,
            { sc::SEXTANT_PROMPT_VERSION } = Empty,
            { sc::MLFLOW_LINKED_PROMPTS } = Empty,
            { sc::SEXTANT_AGENT_VERSION } = self.model_version.as_deref(),
            { sc::SESSION_ID } = Empty,
            { sc::USER_ID } = Empty,
            { sc::GEN_AI_USAGE_INPUT_TOKENS } = Empty,
            { sc::GEN_AI_USAGE_OUTPUT_TOKENS } = Empty,
            { sc::GEN_AI_INPUT_MESSAGES } = Empty,
            { sc::GEN_AI_OUTPUT_MESSAGES } = Empty,
            { sc::ERROR_TYPE } = Empty,
        );
        if let Some(id) = &context.conversation_id {
            span.record(sc::GEN_AI_CONVERSATION_ID, id.as_str());
            span.record(sc::SESSION_ID, id.as_str());
        }
        if let Some(user) = &context.user_id {
            span.record(sc::USER_ID, user.as_str());
        }
        if self.capture_content {
            span.record(
                sc::GEN_AI_INPUT_MESSAGES,
                span_content::input_messages(&[Message::user(question)]),
            );
        }
        let trace_id = sextant_tracker::current_trace_id(&span);
        let cancelled = CancelledTurnGuard {
            span: &span,
            armed: true,
        };
        // The session and the user travel to the peers this turn calls (model servers, A2A agents)
        // as W3C baggage, where the propagation policy allows.
        let mut baggage = sextant_trace_context::Baggage::new();
        if let Some(id) = &context.conversation_id {
            baggage = baggage.with(sc::SESSION_ID, id.as_str());
        }
        if let Some(user) = &context.user_id {
            baggage = baggage.with(sc::USER_ID, user.as_str());
        }
        let result = sextant_trace_context::with_baggage(
            baggage,
            self.turn(history, question, on_content)
                .instrument(span.clone()),
        )
        .await;
        cancelled.disarm();
        match result {
            Ok(mut outcome) => {
                span.record(sc::GEN_AI_USAGE_INPUT_TOKENS, outcome.usage.input_tokens);
                span.record(sc::GEN_AI_USAGE_OUTPUT_TOKENS, outcome.usage.output_tokens);
                if self.capture_content {
                    span.record(
                        sc::GEN_AI_OUTPUT_MESSAGES,
                        span_content::output_text(&outcome.answer),
                    );
                }
                outcome.trace_id = trace_id;
                Ok(outcome)
            }
            Err(error) => {
                mark_failed(&span, &error.error_type(), &error.to_string());
                Err(error)
            }
        }
    }

    async fn turn(
        &self,
        history: &[Message],
        question: &str,
        on_content: Option<&(dyn Fn(&str) + Send + Sync)>,
    ) -> Result<AgentOutcome, AgentError> {
        let sources = self.retrieve_context(question).await?;
        let constructed = match &self.prompts {
            Some(prompts) => prompts
                .construct(question, sources.as_deref(), self.capture_content)
                .await
                .map_err(|error| AgentError::Prompt {
                    agent: self.name.clone(),
                    error,
                })?,
            None => ConstructedPrompt {
                messages: vec![user_message(question, sources.as_deref())],
                ..ConstructedPrompt::default()
            },
        };
        let constructed = match &self.message_template {
            None => constructed,
            Some((template, variables)) => {
                let from_template = construct_from_template(
                    template.as_ref(),
                    variables,
                    question,
                    sources.as_deref(),
                    self.capture_content,
                )
                .await
                .map_err(|message| AgentError::Context {
                    agent: self.name.clone(),
                    message: format!("the prompt `{}`: {message}", template.name()),
                })?;
                ConstructedPrompt {
                    system: from_template.system.or(constructed.system),
                    messages: from_template.messages,
                    versions: constructed.versions,
                }
            }
        };
        // The agent span names the prompt that shaped the question: the template's, else the
        // system prompt's.
        if let Some(used) = constructed.versions.last() {
            let span = tracing::Span::current();
            span.record(sc::GEN_AI_PROMPT_NAME, used.name.as_str());
            span.record(sc::SEXTANT_PROMPT_VERSION, i64::from(used.version));
            span.record(
                sc::MLFLOW_LINKED_PROMPTS,
                linked_prompts(&constructed.versions).as_str(),
            );
        }
        let mut messages = Vec::with_capacity(history.len() + constructed.messages.len() + 1);
        let system = constructed
            .system
            .unwrap_or_else(|| self.system_prompt.clone());
        if !system.is_empty() {
            messages.push(Message::system(system));
        }
        messages.extend_from_slice(history);
        messages.extend(constructed.messages);
        let prompt_versions = constructed.versions;
        let sources = sources.unwrap_or_default();
        let tools: Vec<ToolDefinition> = self
            .tools
            .iter()
            .map(|tool| ToolDefinition {
                name: tool.name().to_owned(),
                description: tool.description().to_owned(),
                parameters: tool.parameters(),
                examples: tool.examples(),
            })
            .collect();

        let mut usage = Usage::default();
        let mut records = Vec::new();
        let mut step = 0;
        loop {
            step += 1;
            let last_step = step >= self.max_steps;
            let mut options = self.options.clone();
            if last_step {
                // The last call must answer.
                options.tool_choice = ToolChoice::None;
            }
            let request = ChatRequest {
                messages: messages.clone(),
                tools: tools.clone(),
                options,
            };
            let response = self
                .chat_step(&request, on_content)
                .await
                .map_err(|error| AgentError::Chat {
                    agent: self.name.clone(),
                    error,
                })?;
            usage += response.usage;
            if response.tool_calls.is_empty() {
                messages.push(response.to_message());
                let answer = crate::rag_context::attribute_citations(&response.content, &sources);
                let (answer, citations) = cite(&answer, &sources);
                return Ok(AgentOutcome {
                    answer,
                    citations,
                    trace_id: None,
                    steps: step,
                    usage,
                    tool_calls: records,
                    stop_reason: StopReason::Answered,
                    messages,
                    prompt_versions,
                });
            }
            if last_step {
                // Told to answer, the model still asked for tools: running them would leave their
                // results — or an `error:` text — as the last word, so the turn ends here, saying
                // why. The conversation records that answer, so a next turn starts from a
                // well-formed history (no tool calls without their results).
                let answer = out_of_steps_answer(self.max_steps);
                if let Some(on_content) = on_content {
                    on_content(&answer);
                }
                messages.push(Message::assistant(answer.clone(), Vec::new()));
                let (answer, citations) = cite(&answer, &sources);
                return Ok(AgentOutcome {
                    answer,
                    citations,
                    trace_id: None,
                    steps: step,
                    usage,
                    tool_calls: records,
                    stop_reason: StopReason::MaxSteps,
                    messages,
                    prompt_versions,
                });
            }
            messages.push(response.to_message());
            // Calls past the set's parallel limit are not run; the model is told so.
            let max_parallel = self.tools.max_parallel();
            let results = futures::future::join_all(
                response
                    .tool_calls
                    .iter()
                    .enumerate()
                    .map(|(i, call)| self.execute_tool(call, i >= max_parallel)),
            )
            .await;
            for (call, record) in response.tool_calls.iter().zip(results) {
                messages.push(Message::tool_result(call, record.result.clone()));
                records.push(record);
            }
        }
    }

    /// The question's context from the agent's memory, if it retrieves for every turn.
    async fn retrieve_context(
        &self,
        question: &str,
    ) -> Result<Option<Vec<RetrievedChunk>>, AgentError> {
        if self.context_retriever.is_none() && self.context_sources.is_empty() {
            return Ok(None);
        }
        let mut chunks = Vec::new();
        for source in &self.context_sources {
            chunks.extend(
                source
                    .read(question)
                    .await
                    .map_err(|message| AgentError::Context {
                        agent: self.name.clone(),
                        message,
                    })?,
            );
        }
        // The sources' documents are given whole; retrieved chunks are cut to fit (their scores
        // are similarities, which a document read in full does not have).
        if let Some(retriever) = &self.context_retriever {
            let retrieved =
                retriever
                    .retrieve(question)
                    .await
                    .map_err(|error| AgentError::Retrieval {
                        agent: self.name.clone(),
                        error,
                    })?;
            chunks.extend(self.context_fit.apply(question, retrieved));
        }
        Ok(Some(chunks))
    }

    /// One model call with this agent's model, metrics and content capture, traced as
    /// `chat {model}`.
    pub(crate) async fn chat_step(
        &self,
        request: &ChatRequest,
        on_content: Option<&(dyn Fn(&str) + Send + Sync)>,
    ) -> Result<ChatResponse, ChatError> {
        crate::traced_chat::traced_chat(
            self.model.as_ref(),
            &self.metrics,
            self.capture_content,
            request,
            on_content,
        )
        .await
    }

    /// One tool call, traced as `execute_tool {name}`. Never fails: errors become the result.
    /// `over_limit` marks a call past the parallel limit, which is reported but not run.
    async fn execute_tool(&self, call: &ToolCall, over_limit: bool) -> ToolCallRecord {
        let span = tracing::info_span!(
            sc::operation::EXECUTE_TOOL,
            { sc::OTEL_NAME } = %format!("{} {}", sc::operation::EXECUTE_TOOL, call.name),
            { sc::OTEL_KIND } = "internal",
            { sc::OTEL_STATUS_CODE } = Empty,
            { sc::OTEL_STATUS_DESCRIPTION } = Empty,
            { sc::GEN_AI_OPERATION_NAME } = sc::operation::EXECUTE_TOOL,
            { sc::GEN_AI_TOOL_NAME } = %call.name,
            { sc::GEN_AI_TOOL_CALL_ID } = %call.id,
            { sc::GEN_AI_TOOL_TYPE } = "function",
            { sc::GEN_AI_TOOL_CALL_ARGUMENTS } = Empty,
            { sc::GEN_AI_TOOL_CALL_RESULT } = Empty,
            { sc::SEXTANT_TOOL_RESULT_CHARS } = Empty,
            { sc::ERROR_TYPE } = Empty,
        );
        if self.capture_content {
            span.record(sc::GEN_AI_TOOL_CALL_ARGUMENTS, call.arguments.as_str());
        }
        let started = Instant::now();
        let outcome = if over_limit {
            Err(ToolError::TooManyCalls {
                name: call.name.clone(),
                max: self.tools.max_parallel(),
            })
        } else {
            with_content_capture(
                self.capture_content,
                self.tools.invoke(&call.name, &call.arguments),
            )
            .instrument(span.clone())
            .await
        };
        let duration_ms = started.elapsed().as_secs_f64() * 1e3;
        let (result, is_error, error_type) = match outcome {
            Ok(output) => {
                // A cut result is still a result: the span says which limit was hit, but its
                // status stays unset.
                if let Some(total) = output.truncated_from {
                    span.record(sc::SEXTANT_TOOL_RESULT_CHARS, total as i64);
                }
                let error_type = output.error_type();
                if let Some(error_type) = error_type {
                    span.record(sc::ERROR_TYPE, error_type);
                }
                (output.text, false, error_type)
            }
            Err(error) => {
                let message = error.to_string();
                // The message is written for the model and may quote its arguments (a city, a
                // URL, an expression): the span status carries it only with content capture.
                let description = if self.capture_content {
                    message.clone()
                } else {
                    format!("the tool failed ({})", error.error_type())
                };
                mark_failed(&span, error.error_type(), &description);
                (format!("error: {message}"), true, Some(error.error_type()))
            }
        };
        if self.capture_content {
            span.record(sc::GEN_AI_TOOL_CALL_RESULT, result.as_str());
        }
        ToolCallRecord {
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
            result,
            is_error,
            error_type,
            duration_ms,
        }
    }
}

/// The answer of a turn that ran out of steps: what happened and what to do, never a tool result.
fn out_of_steps_answer(max_steps: u32) -> String {
    format!(
        "I could not finish this answer: I ran out of steps (this agent allows {max_steps} model \
         calls per turn) while I still wanted to use tools. Ask a narrower question, or raise the \
         agent's max_steps."
    )
}
