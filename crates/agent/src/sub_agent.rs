//! Agents that an agent calls: as tools (`agents = [...]` in its file: each is a tool the model
//! calls with an `input`, whose answer is the tool's result) and as handoff targets
//! (`handoffs = [...]`: the target takes the conversation over). The same entries name the agent
//! nodes of workflows.
//!
//! An entry is a local agent (a file stem beside the naming file, `researcher`, or a path ending
//! in `.toml`), a registered one (`models:/rag-agent@production`, re-resolved after `[tracking]
//! model_alias_ttl_secs`), or a remote one over A2A (its base URL, `http://host/a2a/weather/`).
//! A table sets limits and names: `{ agent = "researcher", timeout_secs = 120, max_steps = 3 }`,
//! `{ url = "https://…/", name = "weather", description = "…", bearer_token_env = "PEER_TOKEN" }`.
//!
//! A local agent is built on its first call (so two agents may name each other) and runs nested
//! in the caller's trace (`execute_tool researcher` → `invoke_agent researcher` → …) one level
//! deeper; past the caller's `max_depth` the call is refused, which ends any recursion.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use sextant_tracker::model_registry::ModelUri;
use tokio::sync::OnceCell;

use crate::a2a::A2aClient;
use crate::agent::{Agent, AgentOutcome, TurnContext};
use crate::build_context::BuildContext;
use crate::chat::Usage;
use crate::config::AgentConfig;
use crate::registry::{AgentRegistry, ServedAgent};

/// How long a call to another agent may take unless its entry says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// An entry of `agents`, `handoffs` or a workflow node's `agent`; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum AgentEntry {
    /// `"researcher"`, `"models:/rag-agent@production"`, `"http://host/a2a/weather/"`.
    Name(String),
    /// The same with limits and names.
    Table(AgentEntryTable),
}

/// The table form of an [`AgentEntry`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentEntryTable {
    /// A local or registered agent (as the string form).
    #[serde(default)]
    pub agent: Option<String>,
    /// A remote agent's A2A base URL.
    #[serde(default)]
    pub url: Option<String>,
    /// The tool name the model calls it by (default: the agent's name, or the card's).
    #[serde(default)]
    pub name: Option<String>,
    /// What the model is told it does (default: the agent's description, or the card's).
    #[serde(default)]
    pub description: Option<String>,
    /// Longest a call may take (default 300 s).
    #[serde(default)]
    pub timeout_secs: Option<f64>,
    /// Overrides the agent's `max_steps` for these calls (local and registered agents).
    #[serde(default)]
    pub max_steps: Option<u32>,
    /// The environment variable that holds a remote agent's bearer token.
    #[serde(default)]
    pub bearer_token_env: Option<String>,
}

/// Where an entry's agent is.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentTarget {
    /// An agent file: a stem or a path (relative to the naming file's directory).
    Local(String),
    /// A registered agent configuration.
    Registry(ModelUri),
    /// A remote agent over A2A.
    Remote(String),
}

impl AgentEntry {
    /// The entry's text as written (for errors).
    pub fn shown(&self) -> String {
        match self {
            Self::Name(name) => name.clone(),
            Self::Table(table) => table
                .agent
                .clone()
                .or_else(|| table.url.clone())
                .unwrap_or_default(),
        }
    }

    fn table(&self) -> AgentEntryTable {
        match self {
            Self::Name(name) if is_url(name) => AgentEntryTable {
                url: Some(name.clone()),
                ..AgentEntryTable::default()
            },
            Self::Name(name) => AgentEntryTable {
                agent: Some(name.clone()),
                ..AgentEntryTable::default()
            },
            Self::Table(table) => table.clone(),
        }
    }

    /// Where the agent is, or why the entry names none.
    pub fn target(&self) -> Result<AgentTarget, String> {
        let table = self.table();
        match (table.agent, table.url) {
            (Some(_), Some(_)) => Err("give either `agent` or `url`, not both".into()),
            (None, None) => Err("give `agent` (a name or models:/ URI) or `url`".into()),
            (None, Some(url)) => {
                let parsed = url::Url::parse(&url)
                    .map_err(|e| format!("`{}` is not a URL: {e}", url.escape_debug()))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(format!("`{url}` is not an http(s) URL"));
                }
                Ok(AgentTarget::Remote(url))
            }
            (Some(name), None) if ModelUri::is_uri(&name) => name
                .parse()
                .map(AgentTarget::Registry)
                .map_err(|e| format!("`{name}`: {e}")),
            (Some(name), None) => {
                let valid = !name.is_empty()
                    && !name.starts_with('.')
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
                if valid {
                    Ok(AgentTarget::Local(name))
                } else {
                    Err(format!(
                        "`{}` is not an agent: write a file stem (`researcher`), a path ending in .toml, models:/NAME@ALIAS or an A2A URL",
                        name.escape_debug()
                    ))
                }
            }
        }
    }

    /// Checks the entry's form (not whether the agent exists).
    pub fn validate(&self) -> Result<(), String> {
        let table = self.table();
        if let Some(timeout) = table.timeout_secs
            && !(timeout > 0.0 && timeout.is_finite())
        {
            return Err(format!("timeout_secs must be positive, not {timeout}"));
        }
        if table.max_steps == Some(0) {
            return Err("max_steps must be at least 1".into());
        }
        if let Some(name) = &table.name
            && !valid_tool_name(name)
        {
            return Err(format!(
                "name `{}` is not a tool name: letters, digits, - and _ only",
                name.escape_debug()
            ));
        }
        self.target().map(|_| ())
    }

    /// The agent this entry names, resolved from the directory `base_dir` of the file that names
    /// it: its configuration is read (or its card fetched) now, the agent built on first use.
    pub async fn resolve(
        &self,
        context: &BuildContext,
        base_dir: Option<&Path>,
    ) -> Result<Arc<dyn SubAgent>, String> {
        let table = self.table();
        let timeout = table
            .timeout_secs
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_TIMEOUT);
        match self.target()? {
            AgentTarget::Local(name) => {
                let config = local_config(&name, context, base_dir)?;
                Ok(Arc::new(LocalSubAgent::new(
                    config,
                    context.clone(),
                    &table,
                    timeout,
                )))
            }
            AgentTarget::Registry(uri) => {
                let registry = AgentRegistry::from_context(context).map_err(|e| e.to_string())?;
                let (_, config) = registry
                    .resolve(&uri)
                    .await
                    .map_err(|e| format!("`{uri}`: {e}"))?;
                let served = ServedAgent::new(
                    registry,
                    context.clone(),
                    uri,
                    context.tracking.model_alias_ttl(),
                );
                Ok(Arc::new(RegisteredSubAgent {
                    name: table
                        .name
                        .clone()
                        .unwrap_or_else(|| tool_name(&config.name)),
                    description: table
                        .description
                        .clone()
                        .unwrap_or_else(|| config.description.clone()),
                    served,
                    timeout,
                }))
            }
            AgentTarget::Remote(url) => {
                let bearer = match &table.bearer_token_env {
                    Some(variable) => Some(std::env::var(variable).map_err(|_| {
                        format!("the environment variable {variable} (bearer_token_env) is not set")
                    })?),
                    None => None,
                };
                let client = A2aClient::new(&url, bearer, timeout)?;
                let (name, description) = match (&table.name, &table.description) {
                    (Some(name), Some(description)) => (name.clone(), description.clone()),
                    _ => {
                        let card = client.card().await.map_err(|e| {
                            format!("{e} (give `name` and `description` in the entry to build without reading its card)")
                        })?;
                        let skills = card
                            .skills
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ");
                        (
                            table.name.clone().unwrap_or_else(|| tool_name(&card.name)),
                            table.description.clone().unwrap_or_else(|| {
                                if skills.is_empty() {
                                    card.description.clone()
                                } else {
                                    format!("{} (skills: {skills})", card.description)
                                }
                            }),
                        )
                    }
                };
                Ok(Arc::new(RemoteSubAgent {
                    name,
                    description,
                    client,
                    timeout,
                }))
            }
        }
    }
}

fn is_url(text: &str) -> bool {
    text.starts_with("http://") || text.starts_with("https://")
}

/// Whether `name` can be a tool's name.
pub fn valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// `name` made into a tool name (other characters become `_`).
pub fn tool_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "agent".into()
    } else {
        cleaned
    }
}

/// The configuration of the local agent `name`: `name.toml` (or the path `name`) beside the
/// naming file, then in `[agent] dir`; `assistant` is the built-in one when no file is found.
pub fn local_config(
    name: &str,
    context: &BuildContext,
    base_dir: Option<&Path>,
) -> Result<AgentConfig, String> {
    let file = if name.ends_with(".toml") {
        name.to_owned()
    } else {
        format!("{name}.toml")
    };
    let mut tried: Vec<PathBuf> = Vec::new();
    for dir in [base_dir, context.agents_dir.as_deref()]
        .into_iter()
        .flatten()
    {
        let path = dir.join(&file);
        if path.is_file() {
            return AgentConfig::load(&path).map_err(|e| e.to_string());
        }
        tried.push(path);
    }
    if name == "assistant" {
        return Ok(AgentConfig::builtin_default());
    }
    let path = Path::new(&file);
    if tried.is_empty() && path.is_file() {
        return AgentConfig::load(path).map_err(|e| e.to_string());
    }
    Err(format!(
        "no agent `{name}`: {}",
        if tried.is_empty() {
            format!("{file} does not exist")
        } else {
            format!(
                "none of {} exists",
                tried
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ))
}

/// What another agent answered.
#[derive(Debug, Clone)]
pub struct SubAnswer {
    /// The answer.
    pub answer: String,
    /// The tokens its turn used (zero for a remote agent, which does not say).
    pub usage: Usage,
    /// The agent that answered (after its own handoffs).
    pub agent: String,
    /// The trace the turn belongs to.
    pub trace_id: Option<String>,
}

impl From<AgentOutcome> for SubAnswer {
    fn from(outcome: AgentOutcome) -> Self {
        Self {
            answer: outcome.answer,
            usage: outcome.usage,
            agent: outcome.agent,
            trace_id: outcome.trace_id,
        }
    }
}

/// An agent another agent (or a workflow) calls; see the [module docs](self).
#[async_trait]
pub trait SubAgent: Send + Sync {
    /// The tool name the model calls it by.
    fn name(&self) -> &str;

    /// What it does, for the model.
    fn description(&self) -> &str;

    /// Asks it `input` as a new conversation of the same user, one level deeper than `context`.
    async fn ask(&self, input: &str, context: &TurnContext) -> Result<SubAnswer, String>;

    /// The agent itself, when it runs in this process (a handoff continues the conversation with
    /// it); `None` for a remote agent.
    async fn local(&self) -> Result<Option<Arc<Agent>>, String> {
        Ok(None)
    }
}

/// Runs `agent` on `input` one level below `context`, within `timeout`.
async fn run_nested(
    agent: &Agent,
    input: &str,
    context: &TurnContext,
    timeout: Duration,
) -> Result<SubAnswer, String> {
    let nested = TurnContext {
        conversation_id: None,
        user_id: context.user_id.clone(),
        depth: context.depth + 1,
        ..TurnContext::default()
    };
    match tokio::time::timeout(timeout, agent.run_turn(&[], input, &nested, None)).await {
        Err(_) => Err(format!(
            "the agent `{}` did not answer within {} s",
            agent.name(),
            timeout.as_secs_f64()
        )),
        Ok(Err(error)) => Err(error.to_string()),
        Ok(Ok(outcome)) => Ok(outcome.into()),
    }
}

/// An agent from a file, built on its first call.
struct LocalSubAgent {
    name: String,
    description: String,
    config: AgentConfig,
    context: BuildContext,
    timeout: Duration,
    agent: OnceCell<Arc<Agent>>,
}

impl LocalSubAgent {
    fn new(
        mut config: AgentConfig,
        context: BuildContext,
        table: &AgentEntryTable,
        timeout: Duration,
    ) -> Self {
        if let Some(steps) = table.max_steps {
            config.max_steps = steps;
        }
        Self {
            name: table
                .name
                .clone()
                .unwrap_or_else(|| tool_name(&config.name)),
            description: table
                .description
                .clone()
                .unwrap_or_else(|| config.description.clone()),
            config,
            context,
            timeout,
            agent: OnceCell::new(),
        }
    }

    async fn agent(&self) -> Result<Arc<Agent>, String> {
        self.agent
            .get_or_try_init(|| async {
                // Boxed: building an agent may build the agents it names, which name this one.
                let built: std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>> =
                    Box::pin(self.config.build(&self.context));
                built.await.map(Arc::new).map_err(|e| e.to_string())
            })
            .await
            .cloned()
    }
}

#[async_trait]
impl SubAgent for LocalSubAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    async fn ask(&self, input: &str, context: &TurnContext) -> Result<SubAnswer, String> {
        let agent = self.agent().await?;
        run_nested(&agent, input, context, self.timeout).await
    }

    async fn local(&self) -> Result<Option<Arc<Agent>>, String> {
        self.agent().await.map(Some)
    }
}

/// A registered agent, re-resolved after the alias TTL.
struct RegisteredSubAgent {
    name: String,
    description: String,
    served: ServedAgent,
    timeout: Duration,
}

#[async_trait]
impl SubAgent for RegisteredSubAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    async fn ask(&self, input: &str, context: &TurnContext) -> Result<SubAnswer, String> {
        let (agent, _) = self.served.current().await.map_err(|e| e.to_string())?;
        run_nested(&agent, input, context, self.timeout).await
    }

    async fn local(&self) -> Result<Option<Arc<Agent>>, String> {
        let (agent, _) = self.served.current().await.map_err(|e| e.to_string())?;
        Ok(Some(agent))
    }
}

/// A remote agent over A2A.
struct RemoteSubAgent {
    name: String,
    description: String,
    client: A2aClient,
    timeout: Duration,
}

#[async_trait]
impl SubAgent for RemoteSubAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    async fn ask(&self, input: &str, _context: &TurnContext) -> Result<SubAnswer, String> {
        let answer = tokio::time::timeout(self.timeout, self.client.send(&self.name, input, None))
            .await
            .map_err(|_| {
                format!(
                    "the A2A agent at {} did not answer within {} s",
                    self.client.url(),
                    self.timeout.as_secs_f64()
                )
            })?
            .map_err(|e| e.to_string())?;
        Ok(SubAnswer {
            answer: answer.text,
            usage: Usage::default(),
            agent: self.name.clone(),
            trace_id: None,
        })
    }
}

/// An [`Agent`] built in Rust, as a sub-agent or handoff target of another.
///
/// ```no_run
/// # async fn demo(researcher: sextant_agent::Agent, model: std::sync::Arc<dyn sextant_agent::ChatModel>) {
/// use std::sync::Arc;
/// use sextant_agent::{Agent, sub_agent::AgentTool};
/// let lead = Agent::builder("lead", model)
///     .sub_agent(Arc::new(AgentTool::new(Arc::new(researcher), "Finds facts")))
///     .build();
/// # }
/// ```
pub struct AgentTool {
    name: String,
    description: String,
    agent: Arc<Agent>,
    timeout: Duration,
}

impl AgentTool {
    /// `agent` as a tool named after it, described to the model as `description`.
    pub fn new(agent: Arc<Agent>, description: impl Into<String>) -> Self {
        Self {
            name: tool_name(agent.name()),
            description: description.into(),
            agent,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Longest a call may take (default 300 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl SubAgent for AgentTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    async fn ask(&self, input: &str, context: &TurnContext) -> Result<SubAnswer, String> {
        run_nested(&self.agent, input, context, self.timeout).await
    }

    async fn local(&self) -> Result<Option<Arc<Agent>>, String> {
        Ok(Some(self.agent.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_name_local_registered_and_remote_agents() {
        let parse = |text: &str| AgentEntry::Name(text.into()).target();
        assert_eq!(
            parse("researcher"),
            Ok(AgentTarget::Local("researcher".into()))
        );
        assert!(matches!(
            parse("models:/rag-agent@production"),
            Ok(AgentTarget::Registry(_))
        ));
        assert_eq!(
            parse("http://127.0.0.1:8001/a2a/weather/"),
            Ok(AgentTarget::Remote(
                "http://127.0.0.1:8001/a2a/weather/".into()
            ))
        );
        assert!(parse("../etc passwd").is_err());
        let both = AgentEntry::Table(AgentEntryTable {
            agent: Some("a".into()),
            url: Some("http://x/".into()),
            ..AgentEntryTable::default()
        });
        assert!(both.validate().unwrap_err().contains("not both"));
        let zero = AgentEntry::Table(AgentEntryTable {
            agent: Some("a".into()),
            timeout_secs: Some(0.0),
            ..AgentEntryTable::default()
        });
        assert!(zero.validate().unwrap_err().contains("timeout_secs"));
    }

    #[test]
    fn a_missing_local_agent_names_the_files_tried() {
        let dir = tempfile::tempdir().unwrap();
        let context = BuildContext::new(dir.path());
        let error = local_config("nobody", &context, Some(dir.path())).unwrap_err();
        assert!(error.contains("nobody.toml"), "{error}");
        assert_eq!(
            local_config("assistant", &context, Some(dir.path()))
                .unwrap()
                .name,
            "assistant"
        );
    }
}
