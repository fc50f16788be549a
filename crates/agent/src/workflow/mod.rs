//! Workflows: pipelines of agents, tools and other workflows declared in
//! `configs/workflows/*.toml` ([`WorkflowConfig`]), run as one trace — an `invoke_workflow {name}`
//! root span with a `node {id}` span per node run — and, with tracking on, logged as one run with
//! per-node durations and tokens as metrics ([`log_workflow`]).
//!
//! A node that fails fails the workflow with an error naming the node; the nodes that ran are
//! still reported. A workflow whose future is dropped (Ctrl-C, a client that left, a timeout) marks
//! its span cancelled.

mod config;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value, json};
use sextant_tools::ToolSet;
use sextant_tracker::conventions as sc;
use sextant_tracker::prompts::PromptTemplate;
use sextant_tracker::tracking::{ActiveRun, RunStatus};
use tracing::Instrument;
use tracing::field::Empty;

pub use config::{Condition, NodeConfig, NodeKind, RouteRule, RouterConfig, WorkflowConfig};

use crate::agent::{CancelGuard, TurnContext, mark_failed};
use crate::build_context::BuildContext;
use crate::chat::Usage;
use crate::config::ConfigError;
use crate::span_content;
use crate::sub_agent::SubAgent;

/// Why a workflow could not be built or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The file is invalid (the message names the file and the node).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A node's agent, tool or workflow cannot be had.
    #[error("workflow `{workflow}`, node `{node}`: {message}")]
    Build {
        /// The workflow.
        workflow: String,
        /// The node.
        node: String,
        /// Why.
        message: String,
    },
    /// A node failed while running.
    #[error("workflow `{workflow}`, node `{node}`: {message}")]
    Node {
        /// The workflow.
        workflow: String,
        /// The node.
        node: String,
        /// Why.
        message: String,
        /// The nodes that ran, the failed one last.
        nodes: Vec<NodeRecord>,
        /// The tokens its agents used before it failed.
        usage: Usage,
        /// The trace.
        trace_id: Option<String>,
    },
}

impl WorkflowError {
    /// The nodes that ran before the failure (none for a build error).
    pub fn nodes(&self) -> &[NodeRecord] {
        match self {
            Self::Node { nodes, .. } => nodes,
            _ => &[],
        }
    }

    /// The tokens used before the failure (none for a build error).
    pub fn usage(&self) -> Usage {
        match self {
            Self::Node { usage, .. } => *usage,
            _ => Usage::default(),
        }
    }

    /// The trace of the failed run, if it got that far.
    pub fn trace_id(&self) -> Option<&str> {
        match self {
            Self::Node { trace_id, .. } => trace_id.as_deref(),
            _ => None,
        }
    }
}

/// One node run (a loop's nodes once per iteration).
#[derive(Debug, Clone, Serialize)]
pub struct NodeRecord {
    /// The node.
    pub id: String,
    /// Its kind.
    pub kind: &'static str,
    /// The loop iteration it ran in (from 1), when inside a loop.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iteration: Option<u32>,
    /// How long it took.
    pub duration_ms: f64,
    /// The tokens its agents used.
    pub usage: Usage,
    /// What it produced.
    pub output: String,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The route a router chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

/// The result of a workflow run.
#[derive(Debug, Clone, Serialize)]
pub struct WorkflowOutcome {
    /// The workflow's answer.
    pub output: String,
    /// The trace (32 hex digits), when tracing is on.
    pub trace_id: Option<String>,
    /// The tokens all its agents used.
    pub usage: Usage,
    /// Every node run, in the order they finished.
    pub nodes: Vec<NodeRecord>,
    /// Every variable at the end (`input` and each node's output).
    pub variables: Map<String, Value>,
}

/// What a node runs, resolved when the workflow is built.
enum Runner {
    Agent(Arc<dyn SubAgent>),
    Tool(ToolSet, String),
    Workflow(Arc<Workflow>),
    Router(Option<Arc<dyn SubAgent>>),
    Composite,
}

/// A built workflow; see the [module docs](self).
pub struct Workflow {
    config: WorkflowConfig,
    runners: HashMap<String, Runner>,
    capture_content: bool,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a run carries from node to node.
#[derive(Clone, Default)]
struct RunState {
    variables: Map<String, Value>,
    records: Vec<NodeRecord>,
    usage: Usage,
    iteration: Option<u32>,
}

impl Workflow {
    /// The workflow `config` describes: its agents resolved (their files read, A2A cards
    /// fetched; local agents are built on first use), its tools and sub-workflows built.
    pub async fn build(
        config: &WorkflowConfig,
        context: &BuildContext,
    ) -> Result<Workflow, WorkflowError> {
        build_boxed(config.clone(), context.clone(), Vec::new(), Arc::default()).await
    }

    /// [`Workflow::build`], with agents built in Rust standing in for the entries they are keyed
    /// by (`agent = "writer"` runs `agents["writer"]`), in this workflow and the ones it runs.
    pub async fn build_with_agents(
        config: &WorkflowConfig,
        context: &BuildContext,
        agents: HashMap<String, Arc<dyn SubAgent>>,
    ) -> Result<Workflow, WorkflowError> {
        build_boxed(
            config.clone(),
            context.clone(),
            Vec::new(),
            Arc::new(agents),
        )
        .await
    }

    /// Loads and builds the workflow file at `path`.
    pub async fn load(path: &Path, context: &BuildContext) -> Result<Workflow, WorkflowError> {
        let config = WorkflowConfig::load(path)?;
        Self::build(&config, context).await
    }

    /// Its configuration.
    pub fn config(&self) -> &WorkflowConfig {
        &self.config
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Whether it records inputs and outputs on spans and in what it logs.
    pub fn captures_content(&self) -> bool {
        self.capture_content
    }

    /// Runs it on `input`, traced as `invoke_workflow {name}` (a child of the current span, or a
    /// trace's root).
    pub async fn run(
        &self,
        input: &str,
        context: &TurnContext,
    ) -> Result<WorkflowOutcome, WorkflowError> {
        let span = tracing::info_span!(
            sc::operation::INVOKE_WORKFLOW,
            { sc::OTEL_NAME } = %format!("{} {}", sc::operation::INVOKE_WORKFLOW, self.config.name),
            { sc::OTEL_KIND } = "internal",
            { sc::OTEL_STATUS_CODE } = Empty,
            { sc::OTEL_STATUS_DESCRIPTION } = Empty,
            { sc::GEN_AI_OPERATION_NAME } = sc::operation::INVOKE_WORKFLOW,
            { sc::GEN_AI_WORKFLOW_NAME } = %self.config.name,
            { sc::GEN_AI_CONVERSATION_ID } = context.conversation_id.as_deref(),
            { sc::SESSION_ID } = context.conversation_id.as_deref(),
            { sc::USER_ID } = context.user_id.as_deref(),
            { sc::GEN_AI_USAGE_INPUT_TOKENS } = Empty,
            { sc::GEN_AI_USAGE_OUTPUT_TOKENS } = Empty,
            { sc::GEN_AI_INPUT_MESSAGES } = Empty,
            { sc::GEN_AI_OUTPUT_MESSAGES } = Empty,
            { sc::ERROR_TYPE } = Empty,
        );
        if self.capture_content {
            span.record(
                sc::GEN_AI_INPUT_MESSAGES,
                span_content::input_messages(&[crate::chat::Message::user(input)]),
            );
        }
        let trace_id = sextant_tracker::current_trace_id(&span);
        let cancelled = CancelGuard::new(&span, "the workflow was cancelled before it finished");
        let mut state = RunState::default();
        state
            .variables
            .insert("input".into(), Value::String(input.into()));
        state
            .variables
            .insert("last".into(), Value::String(input.into()));
        let result = sextant_trace_context::with_baggage(
            context.baggage(),
            self.run_steps(&mut state, context).instrument(span.clone()),
        )
        .await;
        cancelled.disarm();
        span.record(sc::GEN_AI_USAGE_INPUT_TOKENS, state.usage.input_tokens);
        span.record(sc::GEN_AI_USAGE_OUTPUT_TOKENS, state.usage.output_tokens);
        match result {
            Ok(output) => {
                if self.capture_content {
                    span.record(
                        sc::GEN_AI_OUTPUT_MESSAGES,
                        span_content::output_text(&output),
                    );
                }
                Ok(WorkflowOutcome {
                    output,
                    trace_id,
                    usage: state.usage,
                    nodes: state.records,
                    variables: state.variables,
                })
            }
            Err((node, message)) => {
                mark_failed(&span, "node_failed", &format!("node `{node}` failed"));
                Err(WorkflowError::Node {
                    workflow: self.config.name.clone(),
                    node,
                    message,
                    nodes: state.records,
                    usage: state.usage,
                    trace_id,
                })
            }
        }
    }

    async fn run_steps(
        &self,
        state: &mut RunState,
        context: &TurnContext,
    ) -> Result<String, (String, String)> {
        let mut last = String::new();
        for step in &self.config.steps {
            last = self.run_node(step, state, context).await?;
        }
        match &self.config.output {
            Some(template) => {
                render(template, &state.variables).map_err(|message| ("output".to_owned(), message))
            }
            None => Ok(last),
        }
    }

    /// Runs node `id`; its output becomes the variables `id` and `last`. An error is the node
    /// that failed (the innermost) and why.
    fn run_node<'a>(
        &'a self,
        id: &'a str,
        state: &'a mut RunState,
        context: &'a TurnContext,
    ) -> Boxed<'a, Result<String, (String, String)>> {
        Box::pin(async move {
            let node = &self.config.nodes[id];
            let kind = node.kind().expect("validated");
            let span = tracing::info_span!(
                "workflow_node",
                { sc::OTEL_NAME } = %format!("node {id}"),
                { sc::OTEL_KIND } = "internal",
                { sc::OTEL_STATUS_CODE } = Empty,
                { sc::OTEL_STATUS_DESCRIPTION } = Empty,
                { sc::SEXTANT_WORKFLOW_NODE } = id,
                { sc::SEXTANT_WORKFLOW_NODE_KIND } = kind.as_str(),
                { sc::SEXTANT_WORKFLOW_ITERATION } = state.iteration.map(i64::from),
                { sc::SEXTANT_WORKFLOW_ROUTE } = Empty,
                { sc::MLFLOW_SPAN_INPUTS } = Empty,
                { sc::MLFLOW_SPAN_OUTPUTS } = Empty,
                { sc::ERROR_TYPE } = Empty,
            );
            let started = Instant::now();
            let usage_before = state.usage;
            let mut route = None;
            let result = self
                .execute(id, node, kind, state, context, &span, &mut route)
                .instrument(span.clone())
                .await;
            let duration_ms = started.elapsed().as_secs_f64() * 1e3;
            let usage = state.usage.since(&usage_before);
            let (output, error) = match &result {
                Ok(output) => (output.clone(), None),
                Err((failed, message)) if failed == id => {
                    mark_failed(&span, "node_failed", message);
                    (String::new(), Some(message.clone()))
                }
                Err((failed, _)) => {
                    mark_failed(&span, "node_failed", &format!("node `{failed}` failed"));
                    (String::new(), Some(format!("node `{failed}` failed")))
                }
            };
            if self.capture_content && error.is_none() {
                span.record(
                    sc::MLFLOW_SPAN_OUTPUTS,
                    Value::String(output.clone()).to_string(),
                );
            }
            // A composite's own record follows its children's.
            state.records.push(NodeRecord {
                id: id.to_owned(),
                kind: kind.as_str(),
                iteration: state.iteration,
                duration_ms,
                usage,
                output: output.clone(),
                error,
                route,
            });
            let output = result?;
            state
                .variables
                .insert(id.to_owned(), Value::String(output.clone()));
            state
                .variables
                .insert("last".into(), Value::String(output.clone()));
            Ok(output)
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn execute(
        &self,
        id: &str,
        node: &NodeConfig,
        kind: NodeKind,
        state: &mut RunState,
        context: &TurnContext,
        span: &tracing::Span,
        route: &mut Option<String>,
    ) -> Result<String, (String, String)> {
        let fail = |message: String| (id.to_owned(), message);
        let input_of = |state: &RunState, template: Option<&String>| {
            render(
                template.map(String::as_str).unwrap_or("{{ last }}"),
                &state.variables,
            )
        };
        match (&self.runners[id], kind) {
            (Runner::Agent(agent), _) => {
                let input = input_of(state, node.input.as_ref()).map_err(fail)?;
                if self.capture_content {
                    span.record(sc::MLFLOW_SPAN_INPUTS, json!({"input": input}).to_string());
                }
                let answer = agent.ask(&input, context).await.map_err(fail)?;
                state.usage += answer.usage;
                Ok(answer.answer)
            }
            (Runner::Tool(tools, name), _) => {
                let mut arguments = Map::new();
                for (key, value) in &node.arguments {
                    let value = match value {
                        Value::String(template) => {
                            Value::String(render(template, &state.variables).map_err(fail)?)
                        }
                        other => other.clone(),
                    };
                    arguments.insert(key.clone(), value);
                }
                let arguments = Value::Object(arguments).to_string();
                if self.capture_content {
                    span.record(sc::MLFLOW_SPAN_INPUTS, arguments.as_str());
                }
                let tool_span = tracing::info_span!(
                    sc::operation::EXECUTE_TOOL,
                    { sc::OTEL_NAME } = %format!("{} {name}", sc::operation::EXECUTE_TOOL),
                    { sc::OTEL_STATUS_CODE } = Empty,
                    { sc::OTEL_STATUS_DESCRIPTION } = Empty,
                    { sc::GEN_AI_OPERATION_NAME } = sc::operation::EXECUTE_TOOL,
                    { sc::GEN_AI_TOOL_NAME } = %name,
                    { sc::GEN_AI_TOOL_TYPE } = "function",
                    { sc::ERROR_TYPE } = Empty,
                );
                match sextant_tools::with_content_capture(
                    self.capture_content,
                    tools.invoke(name, &arguments),
                )
                .instrument(tool_span.clone())
                .await
                {
                    Ok(output) => Ok(output.text),
                    Err(error) => {
                        mark_failed(&tool_span, error.error_type(), "the tool failed");
                        Err(fail(format!("the tool `{name}` failed: {error}")))
                    }
                }
            }
            (Runner::Workflow(workflow), _) => {
                let input = input_of(state, node.input.as_ref()).map_err(fail)?;
                match workflow.run(&input, context).await {
                    Ok(outcome) => {
                        state.usage += outcome.usage;
                        Ok(outcome.output)
                    }
                    Err(error) => Err(fail(error.to_string())),
                }
            }
            (Runner::Router(agent), _) => {
                let router = node.router.as_ref().expect("a router");
                let chosen = match router
                    .rules
                    .iter()
                    .find(|rule| rule.when.holds(&variable(&state.variables, &rule.when.node)))
                {
                    Some(rule) => Some(rule.route.clone()),
                    None => match agent {
                        Some(agent) => {
                            let about = input_of(state, router.input.as_ref()).map_err(fail)?;
                            let routes = node
                                .routes
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ");
                            let question = format!(
                                "Which one of these fits best: {routes}? Answer with the name only.\n\n{about}"
                            );
                            let answer = agent.ask(&question, context).await.map_err(fail)?;
                            state.usage += answer.usage;
                            pick_route(&answer.answer, node.routes.keys())
                        }
                        None => None,
                    },
                }
                .or_else(|| router.default.clone());
                let Some(chosen) = chosen else {
                    return Err(fail(format!(
                        "no rule held and no default route is set (routes: {})",
                        node.routes.keys().cloned().collect::<Vec<_>>().join(", ")
                    )));
                };
                span.record(sc::SEXTANT_WORKFLOW_ROUTE, chosen.as_str());
                *route = Some(chosen.clone());
                let target = node.routes[&chosen].clone();
                self.run_node(&target, state, context).await
            }
            (Runner::Composite, NodeKind::Sequence) => {
                let mut last = String::new();
                for child in node.sequence.as_deref().unwrap_or_default() {
                    last = self.run_node(child, state, context).await?;
                }
                Ok(last)
            }
            (Runner::Composite, NodeKind::Parallel) => {
                let children = node.parallel.as_deref().unwrap_or_default();
                let branches = children.iter().map(|child| {
                    let mut own = state.clone();
                    own.records.clear();
                    own.usage = Usage::default();
                    async move {
                        let result = self.run_node(child, &mut own, context).await;
                        (child, result, own)
                    }
                });
                let results = futures::future::join_all(branches).await;
                let mut joined = Vec::new();
                let mut failure = None;
                for (child, result, own) in results {
                    state.records.extend(own.records);
                    state.usage += own.usage;
                    match result {
                        Ok(output) => {
                            joined.push(format!("## {child}\n\n{output}"));
                            state.variables.insert(child.clone(), Value::String(output));
                        }
                        Err(error) => {
                            failure.get_or_insert(error);
                        }
                    }
                }
                match failure {
                    Some(error) => Err(error),
                    None => Ok(joined.join("\n\n")),
                }
            }
            (Runner::Composite, NodeKind::Loop) => {
                let children = node.loop_nodes.as_deref().unwrap_or_default();
                let max = node.max_iterations.unwrap_or(1);
                let outer = state.iteration;
                let mut last = String::new();
                for iteration in 1..=max {
                    state.iteration = Some(iteration);
                    state
                        .variables
                        .insert("iteration".into(), Value::from(iteration));
                    for child in children {
                        last = self.run_node(child, state, context).await?;
                    }
                    if let Some(until) = &node.until
                        && until.holds(&variable(&state.variables, &until.node))
                    {
                        break;
                    }
                }
                state.iteration = outer;
                Ok(last)
            }
            (Runner::Composite, _) => Err(fail("a node without a runner".into())),
        }
    }
}

fn variable(variables: &Map<String, Value>, name: &str) -> String {
    match variables.get(name) {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn render(template: &str, variables: &Map<String, Value>) -> Result<String, String> {
    PromptTemplate::text(template.to_owned())
        .render(variables)
        .map(|rendered| match rendered {
            sextant_tracker::prompts::RenderedContent::Text(text) => text,
            sextant_tracker::prompts::RenderedContent::Chat(messages) => messages
                .into_iter()
                .map(|m| m.content)
                .collect::<Vec<_>>()
                .join("\n\n"),
        })
        .map_err(|error| error.to_string())
}

/// The route whose name the answer mentions first (case-insensitive, as a word).
fn pick_route<'a>(answer: &str, routes: impl Iterator<Item = &'a String>) -> Option<String> {
    let answer = answer.to_lowercase();
    routes
        .filter_map(|route| {
            let needle = route.to_lowercase();
            answer
                .match_indices(&needle)
                .find(|(at, _)| {
                    let before = answer[..*at].chars().next_back();
                    let after = answer[at + needle.len()..].chars().next();
                    !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                        && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
                })
                .map(|(at, _)| (at, route.clone()))
        })
        .min_by_key(|(at, _)| *at)
        .map(|(_, route)| route)
}

/// Builds `config`; `stack` holds the workflows being built above it (a workflow that contains
/// itself is an error).
fn build_boxed(
    config: WorkflowConfig,
    context: BuildContext,
    stack: Vec<String>,
    given: Arc<HashMap<String, Arc<dyn SubAgent>>>,
) -> Boxed<'static, Result<Workflow, WorkflowError>> {
    Box::pin(async move {
        let error = |node: &str, message: String| WorkflowError::Build {
            workflow: config.name.clone(),
            node: node.to_owned(),
            message,
        };
        let base = config.source_dir.as_deref();
        let mut runners = HashMap::new();
        for (id, node) in &config.nodes {
            let runner = match node.kind().expect("validated") {
                NodeKind::Agent => Runner::Agent(
                    resolve_entry(
                        node.agent.as_ref().expect("an agent"),
                        &context,
                        base,
                        &given,
                    )
                    .await
                    .map_err(|m| error(id, m))?,
                ),
                NodeKind::Tool => {
                    let name = node.tool.clone().expect("a tool");
                    Runner::Tool(
                        tool_set(&name, &context).await.map_err(|m| error(id, m))?,
                        tool_name(&name),
                    )
                }
                NodeKind::Workflow => {
                    let stem = node.workflow.clone().expect("a workflow");
                    let file = if stem.ends_with(".toml") {
                        stem.clone()
                    } else {
                        format!("{stem}.toml")
                    };
                    let path =
                        base.map_or_else(|| Path::new(&file).to_path_buf(), |b| b.join(&file));
                    let inner =
                        WorkflowConfig::load(&path).map_err(|e| error(id, e.to_string()))?;
                    if inner.name == config.name || stack.contains(&inner.name) {
                        return Err(error(
                            id,
                            format!(
                                "runs the workflow `{}`, which contains this one: a workflow cannot contain itself",
                                inner.name
                            ),
                        ));
                    }
                    let mut deeper = stack.clone();
                    deeper.push(config.name.clone());
                    Runner::Workflow(Arc::new(
                        build_boxed(inner, context.clone(), deeper, given.clone()).await?,
                    ))
                }
                NodeKind::Router => {
                    Runner::Router(match &node.router.as_ref().expect("a router").agent {
                        Some(agent) => Some(
                            resolve_entry(agent, &context, base, &given)
                                .await
                                .map_err(|m| error(id, m))?,
                        ),
                        None => None,
                    })
                }
                _ => Runner::Composite,
            };
            runners.insert(id.clone(), runner);
        }
        Ok(Workflow {
            capture_content: config.capture_content.unwrap_or(context.capture_content),
            config,
            runners,
        })
    })
}

/// The agent `entry` names: one given in Rust under its text, else resolved.
async fn resolve_entry(
    entry: &crate::sub_agent::AgentEntry,
    context: &BuildContext,
    base: Option<&Path>,
    given: &HashMap<String, Arc<dyn SubAgent>>,
) -> Result<Arc<dyn SubAgent>, String> {
    match given.get(&entry.shown()) {
        Some(agent) => Ok(agent.clone()),
        None => entry.resolve(context, base).await,
    }
}

/// The tool's name as the set knows it (`mcp:server/tool` → `tool`).
fn tool_name(name: &str) -> String {
    match sextant_tools::mcp::McpSelector::parse(name) {
        Some(Ok(selector)) => selector.tool.unwrap_or_default(),
        _ => name.to_owned(),
    }
}

/// A tool set with the one tool `name` names: a built-in tool or `mcp:SERVER/TOOL`.
async fn tool_set(name: &str, context: &BuildContext) -> Result<ToolSet, String> {
    match sextant_tools::mcp::McpSelector::parse(name) {
        None => ToolSet::from_config(&[name], &context.tools).map_err(|e| e.to_string()),
        Some(Err(message)) => Err(message),
        Some(Ok(selector)) => {
            #[cfg(feature = "mcp")]
            {
                let mut tools =
                    ToolSet::from_config::<&str>(&[], &context.tools).map_err(|e| e.to_string())?;
                for tool in sextant_tools::mcp::mcp_tools(&context.mcp, &[selector])
                    .await
                    .map_err(|e| e.to_string())?
                {
                    tools.insert(tool);
                }
                Ok(tools)
            }
            #[cfg(not(feature = "mcp"))]
            {
                let _ = selector;
                Err("MCP tools need the `mcp` cargo feature, which this build leaves out".into())
            }
        }
    }
}

/// Logs a workflow run to `run`: params (workflow, steps), metrics (latency, tokens, and per
/// node `node.{id}.duration_ms`, `node.{id}.input_tokens`, `node.{id}.output_tokens`, a loop's
/// nodes at the iteration as step), each node's output as the artifact `nodes/{id}.txt`
/// (`nodes/{id}-{iteration}.txt` in a loop) when the workflow captures content, and `nodes.json`
/// (durations, tokens, routes, errors) always. Returns the status the run should end with.
pub fn log_workflow(
    run: &ActiveRun,
    workflow: &Workflow,
    result: Result<&WorkflowOutcome, &WorkflowError>,
    latency: Duration,
) -> RunStatus {
    run.log_params([
        ("workflow", workflow.name().to_owned()),
        ("steps", workflow.config().steps.join(",")),
        ("nodes", workflow.config().nodes.len().to_string()),
    ]);
    let (nodes, usage, trace_id) = match result {
        Ok(outcome) => (
            outcome.nodes.as_slice(),
            outcome.usage,
            outcome.trace_id.as_deref(),
        ),
        Err(error) => (error.nodes(), error.usage(), error.trace_id()),
    };
    run.log_metrics(
        [
            ("latency_ms".to_owned(), latency.as_secs_f64() * 1e3),
            ("input_tokens".to_owned(), usage.input_tokens as f64),
            ("output_tokens".to_owned(), usage.output_tokens as f64),
            ("total_tokens".to_owned(), usage.total() as f64),
            ("nodes_run".to_owned(), nodes.len() as f64),
        ],
        0,
    );
    for node in nodes {
        let step = i64::from(node.iteration.unwrap_or(0));
        run.log_metrics(
            [
                (format!("node.{}.duration_ms", node.id), node.duration_ms),
                (
                    format!("node.{}.input_tokens", node.id),
                    node.usage.input_tokens as f64,
                ),
                (
                    format!("node.{}.output_tokens", node.id),
                    node.usage.output_tokens as f64,
                ),
            ],
            step,
        );
        if workflow.captures_content() && node.error.is_none() {
            let path = match node.iteration {
                Some(iteration) => format!("nodes/{}-{iteration}.txt", node.id),
                None => format!("nodes/{}.txt", node.id),
            };
            run.log_artifact(path, node.output.clone().into_bytes());
        }
    }
    let summary: Vec<Value> = nodes
        .iter()
        .map(|n| {
            json!({"id": n.id, "kind": n.kind, "iteration": n.iteration, "duration_ms": n.duration_ms,
                   "usage": n.usage, "route": n.route, "error": n.error})
        })
        .collect();
    run.log_artifact(
        "nodes.json",
        serde_json::to_vec_pretty(&summary).unwrap_or_default(),
    );
    if let Some(trace_id) = trace_id {
        run.set_tags([(crate::run_logging::TRACE_ID_TAG, trace_id.to_owned())]);
    }
    match result {
        Ok(_) => RunStatus::Finished,
        Err(_) => RunStatus::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_picked_by_its_first_mention_as_a_word() {
        let routes = ["billing".to_owned(), "support".to_owned()];
        assert_eq!(
            pick_route("Support, not billing.", routes.iter()).as_deref(),
            Some("support")
        );
        assert_eq!(pick_route("supporting nothing", routes.iter()), None);
    }
}
