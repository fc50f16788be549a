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

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sextant_memory::{RetrievalError, RetrievedChunk, Retriever};
use sextant_tools::{ToolError, ToolSet, with_content_capture};
use sextant_tracker::GenAiMetrics;
use sextant_tracker::conventions as sc;
use sextant_tracker::prompts::{PromptVersionRef, RegistryError};
use tracing::Instrument;
use tracing::field::Empty;

use crate::approval::{Approver, Decision, ToolPolicies, record_decision};
use crate::budget::Budget;
use crate::chat::{
    ChatModel, ChatOptions, ChatRequest, ChatResponse, Message, ToolCall, ToolChoice,
    ToolDefinition, Usage,
};
use crate::error::ChatError;
use crate::guardrails::{Blocked, CheckContext, Checked, Guarded, Guardrails, Stage};
use crate::memory::{Citation, cite};
use crate::output_schema::OutputSchema;
use crate::prices::PriceTable;
use crate::prompt::{
    AgentPrompts, ConstructedPrompt, MessageTemplate, construct_from_template, linked_prompts,
    user_message,
};
use crate::span_content;
use crate::sub_agent::SubAgent;
use crate::turn_state::{CallStatus, PendingApproval, PendingCall, TurnState, TurnStatus};
use crate::turn_store::Checkpoints;

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
    /// The turn's state could not be written to or read from its turn store, or the turn asked
    /// to resume cannot be.
    #[error("agent `{agent}`: turn state: {message}")]
    State {
        /// The agent.
        agent: String,
        /// What went wrong.
        message: String,
    },
    /// The output schema a registry prompt's `response_format` names cannot be used.
    #[error("agent `{agent}`: {error}")]
    OutputSchema {
        /// The agent.
        agent: String,
        /// Why (part of the message, so not repeated as a source).
        error: crate::OutputSchemaError,
    },
    /// The answer did not follow the agent's output schema, also when asked again with the
    /// reason.
    #[error(
        "agent `{agent}`: the answer does not follow the output schema `{schema}` after a retry: \
         {violation}"
    )]
    InvalidOutput {
        /// The agent.
        agent: String,
        /// The schema's name.
        schema: String,
        /// Where the last answer breaks it.
        violation: String,
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
            Self::State { .. } => "turn_state_error".to_owned(),
            Self::InvalidOutput { .. } => "invalid_output".to_owned(),
            Self::OutputSchema { .. } => "output_schema_error".to_owned(),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model answered in text.
    Answered,
    /// The model still asked for tools in its last allowed call (`max_steps`): those calls were
    /// not run, and the answer says that the agent ran out of steps.
    MaxSteps,
    /// A tool call needs a person's approval: the turn is paused in its turn store
    /// ([`AgentOutcome::turn_id`], [`AgentOutcome::pending_approvals`]) and goes on with
    /// [`Agent::resume`] once every waiting call is decided.
    AwaitingApproval,
    /// The turn spent its `[budget]` of tokens or cost before it could answer: it stopped
    /// instead of calling the model again, and the answer says why.
    Budget,
    /// A guardrail whose action is `block` failed: the turn stopped with its safe message
    /// ([`AgentOutcome::blocked`] says which and why).
    Blocked,
}

impl StopReason {
    /// `answered`, `max_steps`, `awaiting_approval`, `budget`, `blocked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::MaxSteps => "max_steps",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Budget => "budget",
            Self::Blocked => "blocked",
        }
    }
}

/// One tool call made during a turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub error_type: Option<String>,
    /// How long it took.
    pub duration_ms: f64,
    /// The tokens an agent called as a tool used (counted in the turn's usage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The guardrail that blocked the call's arguments or result: the turn stops after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Blocked>,
}

impl ToolCallRecord {
    /// The record of `call` answered without running it (denied, or refused for want of an
    /// approver): the model is told `message`.
    fn not_run(call: &ToolCall, message: String, error_type: &str) -> Self {
        Self {
            id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
            result: format!("error: {message}"),
            is_error: true,
            error_type: Some(error_type.to_owned()),
            duration_ms: 0.0,
            usage: None,
            blocked: None,
        }
    }
}

/// The result of one turn.
#[derive(Debug, Clone, Serialize)]
pub struct AgentOutcome {
    /// The final answer.
    pub answer: String,
    /// The agent that gave it: this one, or the one it handed the conversation to.
    pub agent: String,
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
    /// The turn's id in the agent's turn store, when it has one (to resume or decide it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
    /// The calls waiting for a person's decision ([`StopReason::AwaitingApproval`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending_approvals: Vec<PendingApproval>,
    /// The answer as a value of the agent's output schema, checked against it (the answer is
    /// then its JSON text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// The guardrail that stopped the turn ([`StopReason::Blocked`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Blocked>,
}

pub(crate) use sextant_tracker::mark_failed;

/// Marks a span whose future was dropped before it finished (Ctrl-C, a client that went away, a
/// timeout around it) as `cancelled`, so a backend does not show cut-off work as a success: the
/// agent span of a turn, the root span of a workflow.
pub(crate) struct CancelGuard<'a> {
    span: &'a tracing::Span,
    description: &'static str,
    armed: bool,
}

impl<'a> CancelGuard<'a> {
    /// Armed: `span` is marked with `description` unless [`CancelGuard::disarm`] runs first.
    pub(crate) fn new(span: &'a tracing::Span, description: &'static str) -> Self {
        Self {
            span,
            description,
            armed: true,
        }
    }

    /// The work finished: nothing to mark.
    pub(crate) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            mark_failed(self.span, "cancelled", self.description);
        }
    }
}

/// Per-turn context that ends up on the spans (`gen_ai.conversation.id`, `user.id`) and in the
/// turn's state.
#[derive(Debug, Clone, Default)]
pub struct TurnContext {
    /// The conversation (session) this turn belongs to.
    pub conversation_id: Option<String>,
    /// The user asking.
    pub user_id: Option<String>,
    /// How deep this turn is nested: 0 for a turn a user asked for, one more for each agent that
    /// called another (as a tool or by a handoff).
    pub depth: u32,
    /// Who may see and decide the turn if it pauses (the service's principal); `None` = the
    /// operator only.
    pub owner: Option<String>,
    /// Decides calls that need approval while the turn runs, instead of pausing it.
    pub approver: Option<Arc<dyn Approver>>,
    /// What the session's earlier turns spent (for `[budget]`'s per-session limits).
    pub session_usage: Usage,
    /// The schema this turn's answer must follow instead of the agent's own (a request's
    /// `response_format`, [`Agent::run_typed`]).
    pub output_schema: Option<OutputSchema>,
}

impl TurnContext {
    /// The session and the user as W3C baggage: they travel to the peers a turn calls (model
    /// servers, A2A agents) where the propagation policy allows.
    pub fn baggage(&self) -> sextant_trace_context::Baggage {
        let mut baggage = sextant_trace_context::Baggage::new();
        if let Some(id) = &self.conversation_id {
            baggage = baggage.with(sc::SESSION_ID, id.as_str());
        }
        if let Some(user) = &self.user_id {
            baggage = baggage.with(sc::USER_ID, user.as_str());
        }
        baggage
    }
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
    prices: Arc<PriceTable>,
    budget: Budget,
    context_retriever: Option<Arc<Retriever>>,
    context_sources: Vec<Arc<dyn ContextSource>>,
    context_fit: crate::rag_context::ContextFit,
    prompts: Option<AgentPrompts>,
    message_template: Option<(
        Arc<dyn MessageTemplate>,
        serde_json::Map<String, serde_json::Value>,
    )>,
    model_version: Option<String>,
    sub_agents: Vec<Arc<dyn SubAgent>>,
    handoffs: Vec<Arc<dyn SubAgent>>,
    handoff_history: HandoffHistory,
    max_depth: u32,
    policies: ToolPolicies,
    checkpoints: Option<Checkpoints>,
    source: Option<String>,
    redactor: Option<Arc<sextant_tracker::redaction::Redactor>>,
    output_schema: Option<OutputSchema>,
    allow_request_schema: bool,
    guardrails: Guardrails,
}

/// What the target of a handoff sees of the conversation before the handing turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandoffHistory {
    /// The earlier turns, as the handing agent had them.
    #[default]
    Full,
    /// Only the question.
    None,
}

/// The prefix of a handoff's tool name: `transfer_to_billing`.
pub const HANDOFF_PREFIX: &str = "transfer_to_";

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

    /// What one turn may spend (default: no limit); see [`crate::budget`].
    pub fn budget(mut self, budget: Budget) -> Self {
        self.agent.budget = budget;
        self
    }

    /// The price table model calls are costed with (default: the built-in
    /// `configs/prices.toml`).
    pub fn prices(mut self, prices: Arc<PriceTable>) -> Self {
        self.agent.prices = prices;
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

    /// Another agent the model may call as a tool (its answer is the tool's result; its tokens
    /// count in this turn's usage).
    pub fn sub_agent(mut self, agent: Arc<dyn SubAgent>) -> Self {
        self.agent.sub_agents.push(agent);
        self
    }

    /// Another agent the model may hand the conversation to (a `transfer_to_NAME` tool): it
    /// answers this turn, and the caller continues the session with it.
    pub fn handoff(mut self, agent: Arc<dyn SubAgent>) -> Self {
        self.agent.handoffs.push(agent);
        self
    }

    /// What a handoff's target sees of the earlier turns (default: all of them).
    pub fn handoff_history(mut self, history: HandoffHistory) -> Self {
        self.agent.handoff_history = history;
        self
    }

    /// How deep agents may call agents below this one (default 3): a call past it is refused and
    /// the model told so, which ends any recursion.
    pub fn max_depth(mut self, depth: u32) -> Self {
        self.agent.max_depth = depth;
        self
    }

    /// Which tool calls need a person's approval and which tools may repeat a call after a crash
    /// (default: none need approval; what each tool declares).
    pub fn tool_policies(mut self, policies: ToolPolicies) -> Self {
        self.agent.policies = policies;
        self
    }

    /// Write each turn's state to a turn store after every step, so a turn can pause for
    /// approval and survive a crash (default: turns are not persisted, and a call that needs
    /// approval without an [`Approver`] is refused).
    pub fn checkpoints(mut self, checkpoints: Checkpoints) -> Self {
        self.agent.checkpoints = Some(checkpoints);
        self
    }

    /// Answer with a JSON value of `schema`: every model call asks the provider for it, and the
    /// answer is checked against it; one that breaks it is sent back once with the reason, then
    /// the turn fails with [`AgentError::InvalidOutput`]. The value is
    /// [`AgentOutcome::output`].
    pub fn output_schema(mut self, schema: OutputSchema) -> Self {
        self.agent.output_schema = Some(schema);
        self
    }

    /// Checks the turn with `guarded` where it applies (see [`crate::guardrails`]); guardrails
    /// run in the order they were added.
    pub fn guardrail(mut self, guarded: Guarded) -> Self {
        self.agent.guardrails.push(guarded);
        self
    }

    /// Whether a request may ask for its own answer schema ([`TurnContext::output_schema`] from
    /// the OpenAI-compatible endpoint's `response_format`) instead of the agent's (default yes).
    pub fn allow_request_schema(mut self, allow: bool) -> Self {
        self.agent.allow_request_schema = allow;
        self
    }

    /// Keep a completed turn in the turn store with secrets and personal values replaced by
    /// `redactor`'s placeholders (`[telemetry.redaction]`). A running, paused or failed turn is
    /// kept whole, since resuming it needs what it said (default: no redaction).
    pub fn redactor(mut self, redactor: Arc<sextant_tracker::redaction::Redactor>) -> Self {
        self.agent.redactor = redactor.is_active().then_some(redactor);
        self
    }

    /// Where the agent's definition came from (its file, a `models:/` URI), recorded with each
    /// turn so another process can rebuild the agent to resume it.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.agent.source = Some(source.into());
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
                prices: PriceTable::built_in(),
                budget: Budget::default(),
                context_retriever: None,
                context_sources: Vec::new(),
                context_fit: crate::rag_context::ContextFit::default(),
                prompts: None,
                message_template: None,
                model_version: None,
                sub_agents: Vec::new(),
                handoffs: Vec::new(),
                handoff_history: HandoffHistory::default(),
                max_depth: 3,
                policies: ToolPolicies::new(),
                checkpoints: None,
                source: None,
                redactor: None,
                output_schema: None,
                allow_request_schema: true,
                guardrails: Guardrails::default(),
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

    /// The schema its answers follow, if it declares one.
    pub fn output_schema(&self) -> Option<&OutputSchema> {
        self.output_schema.as_ref()
    }

    /// Whether a request may ask for its own answer schema instead of the agent's.
    pub fn allows_request_schema(&self) -> bool {
        self.allow_request_schema
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

    /// The agent this one hands conversations to under `name` (an agent's name after a handoff,
    /// [`AgentOutcome::agent`]), for continuing the conversation with it.
    pub async fn handoff_target(&self, name: &str) -> Option<Arc<Agent>> {
        for target in &self.handoffs {
            if let Ok(Some(agent)) = target.local().await
                && agent.name() == name
            {
                return Some(agent);
            }
        }
        None
    }

    /// Answers `question` with no earlier conversation.
    pub async fn run(&self, question: &str) -> Result<AgentOutcome, AgentError> {
        self.run_turn(&[], question, &TurnContext::default(), None)
            .await
    }

    /// Answers `question` with a value of `T`: the turn runs under `T`'s JSON Schema
    /// ([`OutputSchema::of`]) as the agent's output schema would, and the checked answer is
    /// deserialised.
    ///
    /// ```no_run
    /// # async fn demo(agent: sextant_agent::Agent) -> anyhow::Result<()> {
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct Contact { name: String, email: String }
    ///
    /// let (contact, outcome) = agent.run_typed::<Contact>("Ada Lovelace, ada@example.com").await?;
    /// println!("{} <{}> (trace {:?})", contact.name, contact.email, outcome.trace_id);
    /// # Ok(()) }
    /// ```
    pub async fn run_typed<T>(&self, question: &str) -> Result<(T, AgentOutcome), AgentError>
    where
        T: schemars::JsonSchema + serde::de::DeserializeOwned,
    {
        let schema = OutputSchema::of::<T>();
        let context = TurnContext {
            output_schema: Some(schema.clone()),
            ..TurnContext::default()
        };
        let outcome = self.run_turn(&[], question, &context, None).await?;
        let value = outcome.output.clone().unwrap_or(serde_json::Value::Null);
        let typed = serde_json::from_value(value).map_err(|error| AgentError::InvalidOutput {
            agent: self.name.clone(),
            schema: schema.name.clone(),
            violation: format!("the answer does not deserialise: {error}"),
        })?;
        Ok((typed, outcome))
    }

    /// The schema this turn's answer must follow: the turn's own, else the agent's.
    fn output_schema_for<'a>(&'a self, context: &'a TurnContext) -> Option<&'a OutputSchema> {
        context
            .output_schema
            .as_ref()
            .or(self.output_schema.as_ref())
    }

    /// The agent's turn store, if its turns are persisted.
    pub fn checkpoints(&self) -> Option<&Checkpoints> {
        self.checkpoints.as_ref()
    }

    /// Where the agent's definition came from, if known.
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
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
        let span = self.agent_span(context);
        if self.capture_content {
            span.record(
                sc::GEN_AI_INPUT_MESSAGES,
                span_content::input_messages(&[Message::user(question)]),
            );
        }
        self.traced(
            span.clone(),
            context,
            Usage::default(),
            self.turn(history, question, context, on_content),
        )
        .await
    }

    /// Goes on with the stored turn `turn_id` from its last checkpoint: after its pending calls
    /// were decided, after the process that ran it stopped, or after a failed step. Calls that had
    /// finished are not repeated; a call that was in flight is run again only if its tool is
    /// idempotent, and otherwise waits for approval. The part is traced as an `invoke_agent` span
    /// with `sextant.turn.resumed`, inside the turn's original trace.
    pub async fn resume(
        &self,
        turn_id: &str,
        approver: Option<Arc<dyn Approver>>,
        on_content: Option<&(dyn Fn(&str) + Send + Sync)>,
    ) -> Result<AgentOutcome, AgentError> {
        let state_error = |message: String| AgentError::State {
            agent: self.name.clone(),
            message,
        };
        let checkpoints = self.checkpoints.as_ref().ok_or_else(|| {
            state_error("this agent has no turn store to resume a turn from".into())
        })?;
        let store_error = |error: crate::turn_store::TurnStoreError| state_error(error.to_string());
        let stored = checkpoints.store.load(turn_id).await.map_err(store_error)?;
        resumable(&stored, &self.name).map_err(&state_error)?;
        let state = checkpoints
            .store
            .claim(turn_id, &checkpoints.holder, checkpoints.lease)
            .await
            .map_err(store_error)?;
        if let Err(message) = resumable(&state, &self.name) {
            // Another process finished or paused it between the two reads.
            let _ = checkpoints
                .store
                .save(&state, &checkpoints.holder, std::time::Duration::ZERO)
                .await;
            return Err(state_error(message));
        }
        let context = TurnContext {
            conversation_id: state.session_id.clone(),
            user_id: state.user_id.clone(),
            depth: 0,
            owner: state.owner.clone(),
            approver,
            // A resumed turn is held to its own limits; its session's are checked by new turns.
            session_usage: Usage::default(),
            // A schema the turn was started with (not the agent's own) is not kept in its state.
            output_schema: None,
        };
        let span = self.agent_span(&context);
        span.record(sc::SEXTANT_TURN_RESUMED, true);
        if let Some(traceparent) = &state.traceparent
            && let Err(error) = sextant_tracker::set_parent_from_traceparent(&span, traceparent)
        {
            tracing::warn!(
                turn = turn_id,
                "the resumed turn starts a trace of its own: {error}"
            );
        }
        let before = state.usage;
        self.traced(
            span,
            &context,
            before,
            self.drive(state, &context, on_content),
        )
        .await
    }

    /// Checks a person's `decision` on `call` before it is stored: edited arguments must be a
    /// JSON object valid against the tool's schema.
    pub fn check_decision(
        &self,
        call: &PendingApproval,
        decision: &Decision,
    ) -> Result<(), String> {
        let Decision::Edit { arguments } = decision else {
            return Ok(());
        };
        if !arguments.is_object() {
            return Err("edited arguments must be a JSON object".into());
        }
        let schema = self
            .tool_definitions()
            .into_iter()
            .find(|tool| tool.name == call.tool)
            .map(|tool| tool.parameters)
            .ok_or_else(|| format!("agent `{}` has no tool `{}`", self.name, call.tool))?;
        sextant_tools::validate_arguments(&schema, arguments)
            .map_err(|violation| format!("the edited arguments of `{}`: {violation}", call.tool))
    }

    /// The `invoke_agent {name}` span of a turn (or of a resumed part of one).
    fn agent_span(&self, context: &TurnContext) -> tracing::Span {
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
            { sc::SEXTANT_AGENT_DEPTH } = (context.depth > 0).then_some(i64::from(context.depth)),
            { sc::SEXTANT_TURN_ID } = Empty,
            { sc::SEXTANT_TURN_STATUS } = Empty,
            { sc::SEXTANT_TURN_RESUMED } = Empty,
            { sc::SESSION_ID } = Empty,
            { sc::USER_ID } = Empty,
            { sc::GEN_AI_USAGE_INPUT_TOKENS } = Empty,
            { sc::GEN_AI_USAGE_OUTPUT_TOKENS } = Empty,
            { sc::SEXTANT_USAGE_COST } = Empty,
            { sc::SEXTANT_USAGE_COST_CURRENCY } = Empty,
            { sc::SEXTANT_STOP_REASON } = Empty,
            { sc::SEXTANT_BUDGET_EXCEEDED } = Empty,
            { sc::SEXTANT_OUTPUT_SCHEMA } = self.output_schema_for(context).map(|s| s.name.as_str()),
            { sc::SEXTANT_OUTPUT_RETRY } = Empty,
            { sc::SEXTANT_GUARDRAIL_BLOCKED } = Empty,
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
        span
    }

    /// Runs `work` in `span` with the turn's baggage, and records how it ended: the tokens this
    /// part used (past `before`, what a resumed turn had used already), the answer, the error.
    async fn traced(
        &self,
        span: tracing::Span,
        context: &TurnContext,
        before: Usage,
        work: impl std::future::Future<Output = Result<AgentOutcome, AgentError>>,
    ) -> Result<AgentOutcome, AgentError> {
        let trace_id = sextant_tracker::current_trace_id(&span);
        let cancelled = CancelGuard::new(&span, "the turn was cancelled before it finished");
        let result =
            sextant_trace_context::with_baggage(context.baggage(), work.instrument(span.clone()))
                .await;
        cancelled.disarm();
        match result {
            Ok(mut outcome) => {
                span.record(
                    sc::GEN_AI_USAGE_INPUT_TOKENS,
                    outcome
                        .usage
                        .input_tokens
                        .saturating_sub(before.input_tokens),
                );
                span.record(
                    sc::GEN_AI_USAGE_OUTPUT_TOKENS,
                    outcome
                        .usage
                        .output_tokens
                        .saturating_sub(before.output_tokens),
                );
                if let Some(cost) = outcome.usage.since(&before).cost() {
                    span.record(sc::SEXTANT_USAGE_COST, cost);
                    span.record(
                        sc::SEXTANT_USAGE_COST_CURRENCY,
                        self.prices.currency.as_str(),
                    );
                }
                span.record(sc::SEXTANT_STOP_REASON, outcome.stop_reason.as_str());
                if self.capture_content && outcome.stop_reason != StopReason::AwaitingApproval {
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
        context: &TurnContext,
        on_content: Option<&(dyn Fn(&str) + Send + Sync)>,
    ) -> Result<AgentOutcome, AgentError> {
        let guarded_question;
        let question = if self.guardrails.watches(Stage::Input) {
            let context = CheckContext {
                stage: Stage::Input,
                question,
                tool: None,
                sources: &[],
            };
            match self.guardrails.check(question, context).await {
                Checked::Block(blocked) => {
                    return Ok(self.blocked_at_input(question, blocked, on_content));
                }
                Checked::Pass(text) => {
                    guarded_question = text;
                    guarded_question.as_str()
                }
                // `retry` asks the model again, which only an answer can be.
                Checked::Retry(_) => question,
            }
        } else {
            question
        };
        // What the client says came before is checked like the question: a conversation a
        // client writes (the OpenAI endpoint's `messages`) could carry what the input stage
        // would block.
        let guarded_history: Vec<Message>;
        let history = if self.guardrails.watches(Stage::Input) && !history.is_empty() {
            let mut checked = Vec::with_capacity(history.len());
            for message in history {
                let mut message = message.clone();
                if matches!(message.role, crate::Role::User | crate::Role::Assistant)
                    && !message.content.is_empty()
                {
                    let context = CheckContext {
                        stage: Stage::Input,
                        question,
                        tool: None,
                        sources: &[],
                    };
                    match self.guardrails.check(&message.content, context).await {
                        Checked::Block(blocked) => {
                            return Ok(self.blocked_at_input(question, blocked, on_content));
                        }
                        Checked::Pass(text) => message.content = text,
                        Checked::Retry(_) => {}
                    }
                }
                checked.push(message);
            }
            guarded_history = checked;
            guarded_history.as_slice()
        } else {
            history
        };
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
                    response_format: constructed.response_format,
                }
            }
        };
        // The agent span names the prompt that shaped the question: the template's, else the
        // system prompt's.
        let span = tracing::Span::current();
        if let Some(used) = constructed.versions.last() {
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
        let history_start = messages.len();
        messages.extend_from_slice(history);
        messages.extend(constructed.messages);
        let mut state = TurnState::new(&self.name, question, messages);
        state.history = (history_start, history.len());
        state.agent_source = self.source.clone();
        state.session_id = context.conversation_id.clone();
        state.user_id = context.user_id.clone();
        state.owner = context.owner.clone();
        state.sources = sources.unwrap_or_default();
        state.tools = self
            .tool_definitions()
            .into_iter()
            .map(|tool| tool.name)
            .collect();
        state.prompt_versions = constructed.versions;
        state.trace_id = sextant_tracker::current_trace_id(&span);
        state.traceparent = sextant_trace_context::traceparent_of(&span);
        // A registry prompt's `response_format` types the answer when nothing else does.
        if self.output_schema_for(context).is_none()
            && let Some(format) = &constructed.response_format
            && let Some(schema) = OutputSchema::from_response_format(format).map_err(|error| {
                AgentError::OutputSchema {
                    agent: self.name.clone(),
                    error,
                }
            })?
        {
            span.record(sc::SEXTANT_OUTPUT_SCHEMA, schema.name.as_str());
            let context = TurnContext {
                output_schema: Some(schema),
                ..context.clone()
            };
            return self.drive(state, &context, on_content).await;
        }
        self.drive(state, context, on_content).await
    }

    /// Runs a turn from `state` to its end or its pause, writing the state to the turn store
    /// after every step (a top-level turn of an agent with one), and for the last time with the
    /// lease released.
    async fn drive(
        &self,
        mut state: TurnState,
        context: &TurnContext,
        on_content: Option<&(dyn Fn(&str) + Send + Sync)>,
    ) -> Result<AgentOutcome, AgentError> {
        let checkpoints = self.checkpoints.as_ref().filter(|_| context.depth == 0);
        let span = tracing::Span::current();
        if checkpoints.is_some() {
            span.record(sc::SEXTANT_TURN_ID, state.id.as_str());
        }
        let _heartbeat = checkpoints.map(|c| c.heartbeat(&state.id));
        let result = self
            .steps(&mut state, checkpoints, context, on_content)
            .await;
        match result {
            Ok(mut outcome) => {
                span.record(sc::SEXTANT_TURN_STATUS, state.status.as_str());
                self.checkpoint(checkpoints, &mut state).await?;
                outcome.turn_id = checkpoints.map(|_| state.id.clone());
                Ok(outcome)
            }
            Err(error) => {
                state.status = TurnStatus::Failed;
                state.error = Some(error.to_string());
                span.record(sc::SEXTANT_TURN_STATUS, state.status.as_str());
                if let Err(store_error) = self.checkpoint(checkpoints, &mut state).await {
                    tracing::warn!(turn = %state.id, "recording the failed turn: {store_error}");
                }
                Err(error)
            }
        }
    }

    /// Writes `state` to the turn store, if the turn has one: held under this process's lease
    /// while it runs, released once it is paused, completed or failed.
    async fn checkpoint(
        &self,
        checkpoints: Option<&Checkpoints>,
        state: &mut TurnState,
    ) -> Result<(), AgentError> {
        let Some(checkpoints) = checkpoints else {
            return Ok(());
        };
        state.updated_at_ms = sextant_tracker::now_ms();
        let lease = if state.status == TurnStatus::Running {
            checkpoints.lease
        } else {
            std::time::Duration::ZERO
        };
        let redacted = match &self.redactor {
            Some(redactor) if state.status == TurnStatus::Completed => {
                Some(state.redacted(redactor))
            }
            _ => None,
        };
        checkpoints
            .store
            .save(
                redacted.as_ref().unwrap_or(state),
                &checkpoints.holder,
                lease,
            )
            .await
            .map_err(|error| AgentError::State {
                agent: self.name.clone(),
                message: error.to_string(),
            })
    }

    /// The turn's steps from `state`: the calls pending from the last model response, then
    /// model calls and their tool calls until an answer, `max_steps` or a pause.
    async fn steps(
        &self,
        state: &mut TurnState,
        checkpoints: Option<&Checkpoints>,
        context: &TurnContext,
        on_content: Option<&(dyn Fn(&str) + Send + Sync)>,
    ) -> Result<AgentOutcome, AgentError> {
        let tools = self.tool_definitions();
        // An answer that broke the output schema is sent back once, and so is one a `retry`
        // guardrail failed.
        let mut output_retried = false;
        let mut guard_retried = false;
        // An answer that output guardrails check reaches the caller only once it passed.
        let guard_output = self.guardrails.watches(Stage::Output);
        // A typed answer is streamed once it is valid: a broken first answer is sent back, not
        // shown.
        let typed = self.output_schema_for(context).is_some();
        let hold_stream = guard_output || typed;
        let source_texts: Vec<String> = if guard_output {
            state.sources.iter().map(|s| s.text.clone()).collect()
        } else {
            Vec::new()
        };
        loop {
            if !state.pending.is_empty() {
                self.settle_calls(state, checkpoints, context).await?;
                let blocked = state
                    .pending
                    .iter()
                    .find_map(|pending| match &pending.status {
                        CallStatus::Done { record } => record.blocked.clone(),
                        _ => None,
                    });
                // A tripwire ends the turn before anything waits for a person: calls still
                // waiting for approval are never run (the loop below keeps only finished ones).
                let waiting = state.pending_approvals();
                if blocked.is_none() && !waiting.is_empty() {
                    state.status = TurnStatus::AwaitingApproval;
                    return Ok(self.outcome(
                        state,
                        paused_answer(&state.id, &waiting),
                        Vec::new(),
                        StopReason::AwaitingApproval,
                    ));
                }
                for pending in std::mem::take(&mut state.pending) {
                    let CallStatus::Done { record } = pending.status else {
                        continue;
                    };
                    state
                        .messages
                        .push(Message::tool_result(&pending.call, record.result.clone()));
                    if let Some(used) = record.usage {
                        state.usage += used;
                    }
                    state.records.push(record);
                }
                if let Some(blocked) = blocked {
                    return Ok(self.blocked(state, blocked, on_content));
                }
            }
            let priced = self
                .prices
                .price(self.model.provider(), "", self.model.model())
                .is_some();
            if let Some(reason) = self
                .budget
                .exceeded(&state.usage, &context.session_usage, priced)
            {
                tracing::Span::current().record(sc::SEXTANT_BUDGET_EXCEEDED, reason.as_str());
                let answer = crate::budget::over_budget_answer(&reason);
                return Ok(self.stop_saying(state, answer, StopReason::Budget, on_content));
            }
            let step = state.step + 1;
            let last_step = step >= self.max_steps;
            let mut options = self.options.clone();
            options.output_schema = self.output_schema_for(context).cloned();
            if last_step {
                // The last call must answer.
                options.tool_choice = ToolChoice::None;
            }
            let request = ChatRequest {
                messages: state.messages.clone(),
                tools: tools.clone(),
                options,
            };
            let mut response = self
                .chat_step(&request, if hold_stream { None } else { on_content })
                .await
                .map_err(|error| AgentError::Chat {
                    agent: self.name.clone(),
                    error,
                })?;
            state.step = step;
            state.usage += response.usage;
            if response.tool_calls.is_empty() && guard_output {
                let check = CheckContext {
                    stage: Stage::Output,
                    question: &state.question,
                    tool: None,
                    sources: &source_texts,
                };
                let content = crate::guardrails::canonical_json(&response.content);
                match self.guardrails.check(&content, check).await {
                    Checked::Pass(text) => response.content = text,
                    Checked::Block(blocked) => {
                        return Ok(self.blocked(state, blocked, on_content));
                    }
                    Checked::Retry(blocked) if !guard_retried => {
                        guard_retried = true;
                        state.messages.push(response.to_message());
                        state.messages.push(Message::user(format!(
                            "That answer did not pass a check ({}). Answer the question again \
                             so that it does.",
                            blocked.reason
                        )));
                        continue;
                    }
                    Checked::Retry(mut blocked) => {
                        blocked.reason = format!("failed again after a retry: {}", blocked.reason);
                        return Ok(self.blocked(state, blocked, on_content));
                    }
                }
                if !typed && let Some(on_content) = on_content {
                    on_content(&response.content);
                }
            }
            if response.tool_calls.is_empty()
                && let Some(schema) = self.output_schema_for(context)
            {
                match schema.parse(&response.content) {
                    Ok(value) => {
                        state.messages.push(response.to_message());
                        state.status = TurnStatus::Completed;
                        let answer = value.to_string();
                        if let Some(on_content) = on_content {
                            on_content(&answer);
                        }
                        let mut outcome =
                            self.outcome(state, answer, Vec::new(), StopReason::Answered);
                        outcome.output = Some(value);
                        return Ok(outcome);
                    }
                    Err(violation) if !output_retried => {
                        output_retried = true;
                        tracing::Span::current()
                            .record(sc::SEXTANT_OUTPUT_RETRY, violation.message.as_str());
                        state.messages.push(response.to_message());
                        state.messages.push(Message::user(format!(
                            "That answer does not follow the required JSON schema: {violation}. \
                             Answer again with only the corrected JSON."
                        )));
                        continue;
                    }
                    Err(violation) => {
                        return Err(AgentError::InvalidOutput {
                            agent: self.name.clone(),
                            schema: schema.name.clone(),
                            violation: violation.message,
                        });
                    }
                }
            }
            if response.tool_calls.is_empty() {
                state.messages.push(response.to_message());
                let answer =
                    crate::rag_context::attribute_citations(&response.content, &state.sources);
                let (answer, citations) = cite(&answer, &state.sources);
                state.status = TurnStatus::Completed;
                return Ok(self.outcome(state, answer, citations, StopReason::Answered));
            }
            if last_step {
                // Told to answer, the model still asked for tools: running them would leave their
                // results — or an `error:` text — as the last word, so the turn ends here, saying
                // why. The conversation records that answer, so a next turn starts from a
                // well-formed history (no tool calls without their results).
                let answer = out_of_steps_answer(self.max_steps);
                return Ok(self.stop_saying(state, answer, StopReason::MaxSteps, on_content));
            }
            // The first handoff the model asks for ends this agent's part of the turn.
            if let Some((call, target)) = response.tool_calls.iter().find_map(|call| {
                let name = call.name.strip_prefix(HANDOFF_PREFIX)?;
                let target = self.handoffs.iter().find(|h| h.name() == name)?;
                Some((call, target.clone()))
            }) {
                let mut outcome = self
                    .hand_off(
                        call,
                        target.as_ref(),
                        state.history(),
                        &state.question,
                        context,
                        if hold_stream { None } else { on_content },
                    )
                    .await?;
                // This agent's output guardrails hold for the answer it handed over too.
                if hold_stream && outcome.stop_reason != StopReason::AwaitingApproval {
                    let check = CheckContext {
                        stage: Stage::Output,
                        question: &state.question,
                        tool: None,
                        sources: &source_texts,
                    };
                    match self.guardrails.check(&outcome.answer, check).await {
                        Checked::Pass(text) => {
                            outcome.answer = text;
                            if let Some(on_content) = on_content {
                                on_content(&outcome.answer);
                            }
                        }
                        Checked::Block(blocked) => {
                            return Ok(self.blocked(state, blocked, on_content));
                        }
                        Checked::Retry(mut blocked) => {
                            blocked.reason = format!(
                                "a handed-over answer cannot be retried: {}",
                                blocked.reason
                            );
                            return Ok(self.blocked(state, blocked, on_content));
                        }
                    }
                }
                outcome.steps += state.step;
                outcome.usage += state.usage;
                let mut records = std::mem::take(&mut state.records);
                records.append(&mut outcome.tool_calls);
                outcome.tool_calls = records;
                state.records = outcome.tool_calls.clone();
                state.step = outcome.steps;
                state.usage = outcome.usage;
                state.answer = Some(outcome.answer.clone());
                state.stop_reason = Some(outcome.stop_reason);
                state.status = TurnStatus::Completed;
                return Ok(outcome);
            }
            state.messages.push(response.to_message());
            state.pending = response
                .tool_calls
                .into_iter()
                .map(|call| PendingCall {
                    status: self.first_status(&call, checkpoints, context),
                    call,
                })
                .collect();
            self.checkpoint(checkpoints, state).await?;
        }
    }

    /// A turn an input guardrail stopped before any model call: nothing of it is run or stored.
    fn blocked_at_input(
        &self,
        question: &str,
        blocked: Blocked,
        on_content: Option<&(dyn Fn(&str) + Send + Sync)>,
    ) -> AgentOutcome {
        let mut state = TurnState::new(&self.name, question, Vec::new());
        state.status = TurnStatus::Completed;
        self.blocked(&mut state, blocked, on_content)
    }

    /// Ends the turn on a guardrail's tripwire: the safe message is the answer, the agent span
    /// names the guardrail.
    fn blocked(
        &self,
        state: &mut TurnState,
        blocked: Blocked,
        on_content: Option<&(dyn Fn(&str) + Send + Sync)>,
    ) -> AgentOutcome {
        tracing::Span::current().record(sc::SEXTANT_GUARDRAIL_BLOCKED, blocked.guardrail.as_str());
        let mut outcome = self.stop_saying(
            state,
            blocked.message.clone(),
            StopReason::Blocked,
            on_content,
        );
        outcome.blocked = Some(blocked);
        outcome
    }

    /// Ends the turn before the model answered (out of steps, over budget) with `answer`, which
    /// says why: it is streamed and recorded as the assistant's message, so the next turn starts
    /// from a well-formed history.
    fn stop_saying(
        &self,
        state: &mut TurnState,
        answer: String,
        reason: StopReason,
        on_content: Option<&(dyn Fn(&str) + Send + Sync)>,
    ) -> AgentOutcome {
        if let Some(on_content) = on_content {
            on_content(&answer);
        }
        state
            .messages
            .push(Message::assistant(answer.clone(), Vec::new()));
        let (answer, citations) = cite(&answer, &state.sources);
        state.status = TurnStatus::Completed;
        self.outcome(state, answer, citations, reason)
    }

    /// The result of a turn that ended (or paused) with `answer`; the state records it.
    fn outcome(
        &self,
        state: &mut TurnState,
        answer: String,
        citations: Vec<Citation>,
        stop_reason: StopReason,
    ) -> AgentOutcome {
        state.answer = Some(answer.clone());
        state.stop_reason = Some(stop_reason);
        AgentOutcome {
            answer,
            agent: self.name.clone(),
            trace_id: None,
            steps: state.step,
            usage: state.usage,
            tool_calls: state.records.clone(),
            stop_reason,
            messages: state.messages.clone(),
            citations,
            prompt_versions: state.prompt_versions.clone(),
            turn_id: None,
            pending_approvals: state.pending_approvals(),
            output: None,
            blocked: None,
        }
    }

    /// Where a call the model just asked for starts: ready, waiting for approval, or — when it
    /// needs approval and nothing could give it — answered with that.
    fn first_status(
        &self,
        call: &ToolCall,
        checkpoints: Option<&Checkpoints>,
        context: &TurnContext,
    ) -> CallStatus {
        let reason = self
            .policies
            .get(&call.name)
            .and_then(|policy| policy.needs_approval(&call.arguments));
        match reason {
            None => CallStatus::Ready,
            Some(reason) if checkpoints.is_some() || context.approver.is_some() => {
                CallStatus::AwaitingApproval { reason }
            }
            Some(reason) => CallStatus::Done {
                record: ToolCallRecord::not_run(
                    call,
                    format!(
                        "this call needs a person's approval ({reason}), and this turn cannot \
                         wait for one; answer without it"
                    ),
                    "approval_unavailable",
                ),
            },
        }
    }

    /// Whether a call of `tool` that was in flight at a crash may simply run again.
    fn idempotent(&self, tool: &str) -> bool {
        if let Some(declared) = self.policies.get(tool).and_then(|p| p.idempotent) {
            return declared;
        }
        if let Some(tool) = self.tools.get(tool) {
            return tool.idempotent();
        }
        // An agent called as a tool may do anything its tools do; an unknown name fails anyway.
        !self.sub_agents.iter().any(|agent| agent.name() == tool)
    }

    /// Brings the pending calls as far as they can go now: a call a crash left in flight runs
    /// again if idempotent and otherwise waits for approval; an inline [`Approver`] decides the
    /// waiting ones; every ready or approved call runs (concurrently, the state written as each
    /// finishes); a denied one is answered with the denial.
    async fn settle_calls(
        &self,
        state: &mut TurnState,
        checkpoints: Option<&Checkpoints>,
        context: &TurnContext,
    ) -> Result<(), AgentError> {
        for pending in &mut state.pending {
            if pending.status == CallStatus::Running {
                pending.status = if self.idempotent(&pending.call.name) {
                    CallStatus::Ready
                } else {
                    CallStatus::AwaitingApproval {
                        reason: "it was running when the process running the turn stopped, and \
                                 the tool is not idempotent: running it again could repeat its \
                                 effect"
                            .into(),
                    }
                };
            }
        }
        if let Some(approver) = &context.approver {
            for waiting in state.pending_approvals() {
                if let Some(decision) = approver.decide(&self.name, &waiting).await {
                    let by = approver.who();
                    record_decision(None, &state.id, &waiting, &decision, by.as_deref());
                    state.decide_call(&waiting.call_id, decision, by);
                }
            }
        }
        let max_parallel = self.tools.max_parallel();
        let mut jobs = Vec::new();
        for (index, pending) in state.pending.iter_mut().enumerate() {
            let (call, edited) = match &pending.status {
                CallStatus::Ready
                | CallStatus::Decided {
                    decision: Decision::Approve,
                    ..
                } => (pending.call.clone(), false),
                CallStatus::Decided {
                    decision: Decision::Edit { arguments },
                    ..
                } => (
                    ToolCall {
                        arguments: arguments.to_string(),
                        ..pending.call.clone()
                    },
                    true,
                ),
                CallStatus::Decided {
                    decision: Decision::Deny { message },
                    by,
                } => {
                    let message = format!(
                        "{} denied this call{}",
                        by.as_deref().unwrap_or("a reviewer"),
                        message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    );
                    pending.status = CallStatus::Done {
                        record: ToolCallRecord::not_run(&pending.call, message, "denied"),
                    };
                    continue;
                }
                _ => continue,
            };
            pending.status = CallStatus::Running;
            jobs.push((index, call, edited));
        }
        if jobs.is_empty() {
            return Ok(());
        }
        // In flight from here: a crash now leaves them `running`, which resuming reads.
        self.checkpoint(checkpoints, state).await?;
        let mut running: futures::stream::FuturesUnordered<_> = jobs
            .into_iter()
            .map(|(index, call, edited)| async move {
                let mut record = self
                    .execute_tool(&call, index >= max_parallel, context)
                    .await;
                if edited {
                    record.result = format!(
                        "(A reviewer changed the arguments to {}.) {}",
                        call.arguments, record.result
                    );
                }
                (index, record)
            })
            .collect();
        while let Some((index, record)) = running.next().await {
            state.pending[index].status = CallStatus::Done { record };
            self.checkpoint(checkpoints, state).await?;
        }
        Ok(())
    }

    /// What the model is offered (see [`Agent::tool_definitions`]).
    pub(crate) fn offered_tools(&self) -> Vec<ToolDefinition> {
        self.tool_definitions()
    }

    /// This agent answering with `model` and `tools` in place of its own (agents it calls as
    /// tools included), persisting nothing and asking nobody: a replay of a recorded turn.
    pub(crate) fn replaying(mut self, model: Arc<dyn ChatModel>, tools: ToolSet) -> Agent {
        self.model = model;
        self.tools = tools;
        self.sub_agents.clear();
        self.policies.clear();
        self.checkpoints = None;
        self
    }

    /// What the model is offered: the tool set's tools, the agents it may call, and a
    /// `transfer_to_NAME` tool per handoff.
    fn tool_definitions(&self) -> Vec<ToolDefinition> {
        let input = |what: &str| {
            serde_json::json!({
                "type": "object",
                "properties": {"input": {"type": "string", "description": what}},
                "required": ["input"],
            })
        };
        let mut tools: Vec<ToolDefinition> = self
            .tools
            .iter()
            .map(|tool| ToolDefinition {
                name: tool.name().to_owned(),
                description: tool.description().to_owned(),
                parameters: tool.parameters(),
                examples: tool.examples(),
            })
            .collect();
        tools.extend(self.sub_agents.iter().map(|agent| ToolDefinition {
            name: agent.name().to_owned(),
            description: format!("Ask the agent `{}`: {}", agent.name(), agent.description()),
            parameters: input("The question or task for the agent, complete in itself."),
            examples: Vec::new(),
        }));
        tools.extend(self.handoffs.iter().map(|agent| ToolDefinition {
            name: format!("{HANDOFF_PREFIX}{}", agent.name()),
            description: format!(
                "Hand the conversation to the agent `{}`, which answers from here on: {}",
                agent.name(),
                agent.description()
            ),
            parameters: serde_json::json!({"type": "object", "properties": {}}),
            examples: Vec::new(),
        }));
        tools
    }

    /// Hands the turn to `target`, traced as `handoff {target}` with both agents' names: it
    /// answers the question after the earlier turns (as [`HandoffHistory`] allows).
    async fn hand_off(
        &self,
        call: &ToolCall,
        target: &dyn SubAgent,
        history: &[Message],
        question: &str,
        context: &TurnContext,
        on_content: Option<&(dyn Fn(&str) + Send + Sync)>,
    ) -> Result<AgentOutcome, AgentError> {
        let span = tracing::info_span!(
            "handoff",
            { sc::OTEL_NAME } = %format!("handoff {}", target.name()),
            { sc::OTEL_KIND } = "internal",
            { sc::OTEL_STATUS_CODE } = Empty,
            { sc::OTEL_STATUS_DESCRIPTION } = Empty,
            { sc::GEN_AI_TOOL_CALL_ID } = %call.id,
            { sc::SEXTANT_HANDOFF_FROM } = %self.name,
            { sc::SEXTANT_HANDOFF_TO } = target.name(),
            { sc::ERROR_TYPE } = Empty,
        );
        let failed = |message: String| {
            mark_failed(&span, "handoff_failed", &message);
            AgentError::Context {
                agent: self.name.clone(),
                message: format!("handing off to `{}`: {message}", target.name()),
            }
        };
        if context.depth >= self.max_depth {
            return Err(failed(format!(
                "the handoff chain is deeper than max_depth ({})",
                self.max_depth
            )));
        }
        let agent = match target.local().instrument(span.clone()).await {
            Ok(Some(agent)) => agent,
            Ok(None) => {
                return Err(failed(
                    "a remote agent cannot take a conversation over".into(),
                ));
            }
            Err(message) => return Err(failed(message)),
        };
        let earlier: &[Message] = match self.handoff_history {
            HandoffHistory::Full => history,
            HandoffHistory::None => &[],
        };
        let next = TurnContext {
            depth: context.depth + 1,
            ..context.clone()
        };
        let result = boxed_turn(&agent, earlier, question, &next, on_content)
            .instrument(span.clone())
            .await;
        if let Err(error) = &result {
            mark_failed(&span, &error.error_type(), &error.to_string());
        }
        result
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
            &self.prices,
            self.capture_content,
            request,
            on_content,
        )
        .await
    }

    /// One tool call, traced as `execute_tool {name}`. Never fails: errors become the result.
    /// `over_limit` marks a call past the parallel limit, which is reported but not run.
    async fn execute_tool(
        &self,
        call: &ToolCall,
        over_limit: bool,
        context: &TurnContext,
    ) -> ToolCallRecord {
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
        let guarded_call;
        let call = if self.guardrails.watches(Stage::ToolArguments) {
            let check = CheckContext {
                stage: Stage::ToolArguments,
                question: "",
                tool: Some(&call.name),
                sources: &[],
            };
            // Checked as the tool will read them: JSON escapes (`\u0040`) written out.
            let arguments = crate::guardrails::canonical_json(&call.arguments);
            match self
                .guardrails
                .check(&arguments, check)
                .instrument(span.clone())
                .await
            {
                Checked::Block(blocked) => {
                    let mut record = ToolCallRecord::not_run(
                        call,
                        format!("blocked by the guardrail `{}`", blocked.guardrail),
                        "guardrail_blocked",
                    );
                    record.blocked = Some(blocked);
                    return record;
                }
                Checked::Pass(arguments) => {
                    guarded_call = ToolCall {
                        arguments,
                        ..call.clone()
                    };
                    &guarded_call
                }
                Checked::Retry(_) => call,
            }
        } else {
            call
        };
        let sub_agent = self.sub_agents.iter().find(|a| a.name() == call.name);
        let mut sub_usage = None;
        let outcome = if over_limit {
            Err(ToolError::TooManyCalls {
                name: call.name.clone(),
                max: self.tools.max_parallel(),
            })
        } else if let Some(sub_agent) = sub_agent {
            match self
                .call_sub_agent(sub_agent.as_ref(), &call.arguments, context)
                .instrument(span.clone())
                .await
            {
                Ok(answer) => {
                    sub_usage = Some(answer.usage);
                    Ok(sextant_tools::ToolOutput {
                        text: answer.answer,
                        truncated_from: None,
                    })
                }
                Err(error) => Err(error),
            }
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
        // Errors are checked too: an MCP server or a remote agent chooses an error's text.
        let (result, blocked) = if self.guardrails.watches(Stage::ToolResult) {
            let check = CheckContext {
                stage: Stage::ToolResult,
                question: "",
                tool: Some(&call.name),
                sources: &[],
            };
            match self
                .guardrails
                .check(&result, check)
                .instrument(span.clone())
                .await
            {
                Checked::Block(blocked) => (
                    format!(
                        "error: the result was withheld by the guardrail `{}`",
                        blocked.guardrail
                    ),
                    Some(blocked),
                ),
                Checked::Pass(text) => (text, None),
                Checked::Retry(_) => (result, None),
            }
        } else {
            (result, None)
        };
        let (is_error, error_type) = match &blocked {
            Some(_) => (true, Some("guardrail_blocked")),
            None => (is_error, error_type),
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
            error_type: error_type.map(str::to_owned),
            duration_ms,
            usage: sub_usage,
            blocked,
        }
    }

    /// Asks `agent` the `input` of `arguments`, one level deeper, unless that is past
    /// `max_depth`.
    async fn call_sub_agent(
        &self,
        agent: &dyn SubAgent,
        arguments: &str,
        context: &TurnContext,
    ) -> Result<crate::sub_agent::SubAnswer, ToolError> {
        let input = serde_json::from_str::<serde_json::Value>(arguments)
            .ok()
            .and_then(|v| v.get("input").and_then(|i| i.as_str()).map(str::to_owned))
            .filter(|i| !i.trim().is_empty())
            .ok_or_else(|| {
                ToolError::InvalidArguments("give the agent's task as {\"input\": \"…\"}".into())
            })?;
        if context.depth >= self.max_depth {
            return Err(ToolError::Refused(format!(
                "agents may call agents only {} levels deep; answer with what you have",
                self.max_depth
            )));
        }
        // Boxed: the agent called may call this one.
        let asked: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>> =
            Box::pin(agent.ask(&input, context));
        asked.await.map_err(ToolError::Failed)
    }
}

/// `agent.run_turn(…)` behind a declared boxed type: a handoff's target may hand back to the
/// agent that called it, and the compiler proves such a recursive future `Send` only through a
/// signature that names it.
fn boxed_turn<'a>(
    agent: &'a Agent,
    history: &'a [Message],
    question: &'a str,
    context: &'a TurnContext,
    on_content: Option<&'a (dyn Fn(&str) + Send + Sync)>,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<AgentOutcome, AgentError>> + Send + 'a>,
> {
    Box::pin(agent.run_turn(history, question, context, on_content))
}

/// The answer of a paused turn: what it waits for, and how to decide.
fn paused_answer(turn_id: &str, waiting: &[PendingApproval]) -> String {
    let calls: Vec<String> = waiting
        .iter()
        .map(|w| format!("`{}` ({})", w.tool, w.reason))
        .collect();
    format!(
        "This turn is waiting for a person to approve {}. Turn {turn_id}: decide with `sextant \
         turns approve|deny {turn_id} CALL` or `POST /v1/turns/{turn_id}/decisions`.",
        calls.join(", ")
    )
}

/// Why the stored turn `state` cannot be resumed by agent `agent`, if it cannot.
fn resumable(state: &TurnState, agent: &str) -> Result<(), String> {
    if state.agent != agent {
        return Err(format!(
            "turn {} belongs to agent `{}`, not `{agent}`",
            state.id, state.agent
        ));
    }
    match state.status {
        TurnStatus::Completed => Err(format!("turn {} is already completed", state.id)),
        TurnStatus::AwaitingApproval => {
            let waiting: Vec<String> = state
                .pending_approvals()
                .into_iter()
                .map(|w| format!("{} ({})", w.call_id, w.tool))
                .collect();
            Err(format!(
                "turn {} waits for decisions on {}",
                state.id,
                waiting.join(", ")
            ))
        }
        TurnStatus::Running | TurnStatus::Failed => Ok(()),
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
