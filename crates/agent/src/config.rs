//! Agent definitions (`configs/agents/*.toml`, or a registered model version's artifact) and the
//! `[agent]` section of the configuration. The process's configuration as a whole is aggregated
//! by the composition root (`sextant-runtime`); building an agent reads only the sections in a
//! [`BuildContext`]. A bad value is an error that names the key and the file it came from.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;

use sextant_memory::Retriever;
use sextant_tools::mcp::McpSelector;
use sextant_tools::{ToolSet, ToolSetError};
use sextant_tracker::prompts::{PromptUri, RegistryError};

use crate::agent::{Agent, HandoffHistory};
use crate::approval::ToolPolicies;
use crate::build_context::BuildContext;
use crate::chat::ChatOptions;
use crate::error::ChatError;
use crate::mcp_context::McpResourceRef;
use crate::memory::{
    AgentMemoryConfig, MemoryBuildError, SEARCH_MEMORY, build_embedder, build_store,
    search_memory_tool,
};
use crate::output_schema::{OutputSchema, OutputSchemaError};
use crate::prompt::AgentPrompts;
use crate::providers;
use crate::sub_agent::AgentEntry;

/// The default agent, as shipped in `configs/agents/assistant.toml`.
pub const DEFAULT_AGENT: &str = include_str!("../../../configs/agents/assistant.toml");

/// A configuration that could not be loaded; the message names the key and the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value has the wrong type, is missing, or is unknown.
    #[error("{0}")]
    Invalid(#[from] Box<figment::Error>),
    /// A file that was named explicitly does not exist.
    #[error("configuration file {} does not exist", .0.display())]
    Missing(PathBuf),
    /// A value is well-typed but not acceptable.
    #[error("{key} in {source_name}: {message}")]
    Value {
        /// The key, dotted.
        key: String,
        /// The file (or "environment") it came from.
        source_name: String,
        /// What is wrong with it.
        message: String,
    },
}

impl From<figment::Error> for ConfigError {
    fn from(error: figment::Error) -> Self {
        ConfigError::Invalid(Box::new(error))
    }
}

/// `[agent]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDefaults {
    /// The agent file used when `--agent` is not given; empty = the built-in `assistant`.
    #[serde(default)]
    pub default: Option<PathBuf>,
    /// Where agents named by a stem (`agents = ["researcher"]`, workflow nodes) are looked for
    /// after the naming file's own directory; unset = `configs/agents` when it exists.
    #[serde(default)]
    pub dir: Option<PathBuf>,
}

impl AgentDefaults {
    /// `dir`, or `configs/agents` when that exists in the working directory.
    pub fn agents_dir(&self) -> Option<PathBuf> {
        self.dir.clone().or_else(|| {
            let default = PathBuf::from("configs/agents");
            default.is_dir().then_some(default)
        })
    }
}

/// Why an agent could not be made from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `tools` names a tool that does not exist, or a tool's `[tools]` settings are unusable.
    #[error("agent `{agent}`: {error}")]
    Tools {
        /// The agent.
        agent: String,
        /// Which tool and why (part of the message, so not repeated as a source).
        error: ToolSetError,
    },
    /// The agent's memory could not be set up (embedder, store, retrieval settings).
    #[error("agent `{agent}`: memory: {error}")]
    Memory {
        /// The agent.
        agent: String,
        /// Why (part of the message, so not repeated as a source).
        error: MemoryBuildError,
    },
    /// The prompt registry could not be opened, or a prompt URI is malformed.
    #[error("agent `{agent}`: prompt registry: {error}")]
    Prompts {
        /// The agent.
        agent: String,
        /// Why (part of the message, so not repeated as a source).
        error: RegistryError,
    },
    /// A tool from an MCP server could not be had (server unreachable, tool not offered …).
    #[error("agent `{agent}`: {message}")]
    Mcp {
        /// The agent.
        agent: String,
        /// What went wrong, naming the server and the tool.
        message: String,
    },
    /// An agent it names in `agents` or `handoffs` cannot be had.
    #[error("agent `{agent}`: {message}")]
    Agents {
        /// The agent.
        agent: String,
        /// Which entry and why.
        message: String,
    },
    /// `[output] schema` cannot be read or used.
    #[error("agent `{agent}`: {error}")]
    Output {
        /// The agent.
        agent: String,
        /// Why (part of the message, so not repeated as a source).
        error: OutputSchemaError,
    },
    /// The model could not be set up (bad URL, model file unavailable …).
    #[error("agent `{agent}`: {error}")]
    Model {
        /// The agent.
        agent: String,
        /// Why (part of the message, so not repeated as a source).
        error: ChatError,
    },
}

/// Which provider serves an agent's model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// The embedded SmolLM2 model, in-process.
    Local,
    /// An Ollama server.
    Ollama,
    /// An OpenAI-compatible server.
    Openai,
}

impl ProviderKind {
    /// The cargo feature that builds this provider in.
    pub fn feature(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Openai => "openai",
        }
    }
}

/// `[model]` of an agent file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The provider.
    pub provider: ProviderKind,
    /// The model name as the provider knows it.
    pub name: String,
    /// Overrides the provider's base URL (openai) or host (ollama).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Overrides the environment variable that holds the API key (openai).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Sampling temperature (0 = greedy).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Most tokens per call.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Sampling seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Lowers a token's logit per time it already appears in the answer (OpenAI semantics,
    /// -2.0 to 2.0; `gen_ai.request.frequency_penalty`).
    #[serde(default)]
    pub frequency_penalty: Option<f32>,
    /// Lowers a token's logit once it appears in the answer (OpenAI semantics, -2.0 to 2.0;
    /// `gen_ai.request.presence_penalty`).
    #[serde(default)]
    pub presence_penalty: Option<f32>,
    /// Extra fields for every request body (openai), e.g. `{ chat_template_kwargs = { … } }`.
    #[serde(default)]
    pub extra_body: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ModelConfig {
    /// The request options these settings imply.
    pub fn options(&self) -> ChatOptions {
        ChatOptions {
            temperature: self.temperature,
            top_p: self.top_p,
            max_tokens: self.max_tokens,
            seed: self.seed,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            ..ChatOptions::default()
        }
    }
}

/// An agent definition: `configs/agents/*.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The agent's name (`gen_ai.agent.name`).
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Its system prompt: the text, or a registry URI (`prompts:/name@alias`, `prompts:/name/3`).
    #[serde(default)]
    pub system_prompt: String,
    /// The template of each turn's messages, from the registry (`prompts:/qa-prompt@production`)
    /// or an MCP server (`mcp:SERVER/NAME`, rendered by the server with the arguments it declares):
    /// a text template becomes the user message; a chat template's messages replace the system
    /// prompt and the user message. It can use `{{ question }}`, `{{ context }}` (retrieved
    /// sources) and the `[variables]`.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Extra variables for the prompt templates.
    #[serde(default)]
    pub variables: serde_json::Map<String, serde_json::Value>,
    /// Names of the tools it may call: built-in tools, `search_memory`, and tools of MCP
    /// servers as `mcp:SERVER/TOOL` or `mcp:SERVER/*` (every tool of that server).
    #[serde(default)]
    pub tools: Vec<String>,
    /// MCP resources read every turn and given to the model as sources it cites:
    /// `mcp:SERVER/URI` (`mcp:docs/file:///guide.md`).
    #[serde(default)]
    pub resources: Vec<String>,
    /// Most model calls per turn before it stops.
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// Overrides `telemetry.capture_content` for this agent.
    #[serde(default)]
    pub capture_content: Option<bool>,
    /// Its model.
    pub model: ModelConfig,
    /// The knowledge base it answers from, if any.
    #[serde(default)]
    pub memory: Option<AgentMemoryConfig>,
    /// Other agents it may call as tools: file stems beside this file (`researcher`), paths,
    /// `models:/NAME@ALIAS`, A2A URLs, or tables with limits (see `sub_agent`).
    #[serde(default)]
    pub agents: Vec<AgentEntry>,
    /// Agents it may hand the conversation to (`transfer_to_NAME` tools), named as in `agents`.
    #[serde(default)]
    pub handoffs: Vec<AgentEntry>,
    /// What a handoff's target sees of the earlier turns: `full` (default) or `none`.
    #[serde(default)]
    pub handoff_history: HandoffHistory,
    /// How deep agents may call agents below this one (default 3).
    #[serde(default = "default_max_depth")]
    pub max_depth: u32,
    /// Per tool (by the name the model calls it): whether calls need a person's approval and
    /// whether a call may be repeated after a crash (`[tool_policies.http_fetch]`, see
    /// [`crate::approval`]).
    #[serde(default)]
    pub tool_policies: ToolPolicies,
    /// What one turn may spend in tokens and cost (`[budget]`, see [`crate::budget`]).
    #[serde(default)]
    pub budget: crate::budget::Budget,
    /// `[[guardrails]]`: checks on the input, tool calls and the answer, each with an action
    /// (see [`crate::guardrails`]).
    #[serde(default)]
    pub guardrails: Vec<crate::guardrails::GuardrailConfig>,
    /// `[output]`: the JSON Schema its answers follow (typed answers, see
    /// [`crate::output_schema`]).
    #[serde(default)]
    pub output: OutputConfig,
    /// The directory of the file it was read from, where the agents it names are looked for.
    #[serde(skip)]
    pub source_dir: Option<PathBuf>,
    /// The file it was read from (or the registry URI it was loaded by), recorded with each
    /// durable turn so another process can rebuild the agent to resume it.
    #[serde(skip)]
    pub source: Option<String>,
}

/// `[output]` of an agent file.
///
/// ```toml
/// [output]
/// schema = "schemas/contact.json"       # relative to the agent file; or the schema inline:
/// # schema = { type = "object", properties = { name = { type = "string" } }, required = ["name"] }
/// allow_request_schema = false          # the OpenAI-compatible endpoint keeps this schema
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// A JSON Schema file (a path relative to the agent file) or the schema itself.
    #[serde(default)]
    pub schema: Option<OutputSchemaSource>,
    /// Whether a request to the OpenAI-compatible endpoint may ask for its own
    /// `response_format` instead (default yes).
    #[serde(default = "yes")]
    pub allow_request_schema: bool,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            schema: None,
            allow_request_schema: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// Where an output schema is: a file, or written inline.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OutputSchemaSource {
    /// A JSON file, relative to the agent file.
    File(String),
    /// The schema itself.
    Inline(serde_json::Value),
}

fn default_max_depth() -> u32 {
    3
}

fn default_max_steps() -> u32 {
    6
}

impl AgentConfig {
    /// The output schema `[output]` names, read and checked; `None` without one.
    pub fn output_schema(&self) -> Result<Option<OutputSchema>, OutputSchemaError> {
        match &self.output.schema {
            None => Ok(None),
            Some(OutputSchemaSource::File(path)) => {
                let path = Path::new(path);
                let path = match &self.source_dir {
                    Some(dir) if path.is_relative() => dir.join(path),
                    _ => path.to_owned(),
                };
                OutputSchema::from_file(&path).map(Some)
            }
            Some(OutputSchemaSource::Inline(schema)) => {
                OutputSchema::new(format!("{}_output", self.name), schema.clone()).map(Some)
            }
        }
    }

    /// Reads an agent file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        if !path.exists() {
            return Err(ConfigError::Missing(path.to_owned()));
        }
        let mut config: AgentConfig = Figment::from(Toml::file_exact(path)).extract()?;
        config.source_dir = path.parent().map(Path::to_path_buf);
        config.source = Some(path.display().to_string());
        config.validate(&path.display().to_string())
    }

    /// Reads an agent definition from TOML text; `source_name` names it in errors.
    pub fn from_toml(text: &str, source_name: &str) -> Result<Self, ConfigError> {
        let config: AgentConfig = Figment::from(Toml::string(text))
            .extract()
            .map_err(|error| ConfigError::Value {
                key: error.path.join("."),
                source_name: source_name.into(),
                message: error.to_string(),
            })?;
        config.validate(source_name)
    }

    /// The built-in default agent (`configs/agents/assistant.toml`).
    pub fn builtin_default() -> Self {
        let config: AgentConfig = Figment::from(Toml::string(DEFAULT_AGENT))
            .extract()
            .expect("the built-in agent file is valid");
        config
    }

    /// The agent this file describes: its tools picked from the built-in tool set, its model made
    /// by the configured provider (the local model is pulled on first use).
    pub async fn build(&self, context: &BuildContext) -> Result<Agent, BuildError> {
        // `search_memory` comes from the memory section and `mcp:…` from MCP servers, not the
        // built-in tools.
        let builtin: Vec<String> = self
            .tools
            .iter()
            .filter(|name| self.memory.is_none() || name.as_str() != SEARCH_MEMORY)
            .filter(|name| McpSelector::parse(name).is_none())
            .cloned()
            .collect();
        let mut tools =
            ToolSet::from_config(&builtin, &context.tools).map_err(|error| BuildError::Tools {
                agent: self.name.clone(),
                error,
            })?;
        self.add_mcp_tools(&mut tools, context).await?;
        let capture_content = self.capture_content.unwrap_or(context.capture_content);
        let mut context_retriever = None;
        if let Some(memory) = &self.memory {
            let memory_error = |error| BuildError::Memory {
                agent: self.name.clone(),
                error,
            };
            let options = memory
                .retrieval_options(&context.memory.retrieval)
                .map_err(|message| memory_error(MemoryBuildError::Config(message)))?;
            let embedder = build_embedder(context).await.map_err(memory_error)?;
            let store = build_store(context).map_err(memory_error)?;
            let retriever = Arc::new(
                Retriever::new(embedder, store, &memory.collection, options)
                    .capture_content(capture_content),
            );
            if memory.mode.offers_tool() || self.tools.iter().any(|t| t == SEARCH_MEMORY) {
                tools = tools.with(search_memory_tool(retriever.clone()));
            }
            if memory.mode.injects_context() {
                context_retriever = Some(retriever);
            }
        }
        let model = providers::build(&self.model, context)
            .await
            .map_err(|error| BuildError::Model {
                agent: self.name.clone(),
                error,
            })?;
        let prompts = self.prompts(context)?;
        let system_prompt = if prompts.as_ref().is_some_and(|p| p.system.is_some()) {
            ""
        } else {
            &self.system_prompt
        };
        let mut builder = Agent::builder(&self.name, model.clone())
            .system_prompt(system_prompt)
            .tools(tools)
            .max_steps(self.max_steps)
            .options(self.model.options())
            .capture_content(capture_content)
            .max_depth(self.max_depth)
            .handoff_history(self.handoff_history)
            .tool_policies(self.tool_policies.clone())
            .prices(context.prices.clone())
            .budget(self.budget)
            .redactor(context.redactor.clone())
            .allow_request_schema(self.output.allow_request_schema);
        let judge = if self
            .guardrails
            .iter()
            .any(|g| g.kind == crate::guardrails::GuardrailKind::LlmJudge)
        {
            Some(crate::guardrails::JudgeParts {
                model: model.clone(),
                prompts: context
                    .prompt_registry()
                    .map_err(|error| BuildError::Prompts {
                        agent: self.name.clone(),
                        error,
                    })?,
            })
        } else {
            None
        };
        for guardrail in &self.guardrails {
            // Checked when the file was loaded.
            let guarded =
                guardrail
                    .build(judge.as_ref())
                    .map_err(|message| BuildError::Agents {
                        agent: self.name.clone(),
                        message,
                    })?;
            builder = builder.guardrail(guarded);
        }
        if let Some(schema) = self.output_schema().map_err(|error| BuildError::Output {
            agent: self.name.clone(),
            error,
        })? {
            builder = builder.output_schema(schema);
        }
        if let Some(checkpoints) = &context.checkpoints {
            builder = builder.checkpoints(checkpoints.clone());
        }
        if let Some(source) = &self.source {
            builder = builder.source(source.clone());
        }
        for (entries, handoff) in [(&self.agents, false), (&self.handoffs, true)] {
            for entry in entries {
                let agent = entry
                    .resolve(context, self.source_dir.as_deref())
                    .await
                    .map_err(|message| BuildError::Agents {
                        agent: self.name.clone(),
                        message: format!(
                            "{} `{}`: {message}",
                            if handoff { "handoffs" } else { "agents" },
                            entry.shown()
                        ),
                    })?;
                builder = if handoff {
                    builder.handoff(agent)
                } else {
                    builder.sub_agent(agent)
                };
            }
        }
        if let Some(retriever) = context_retriever {
            builder = builder.context_retriever(retriever);
        }
        if let Some(memory) = &self.memory {
            use crate::rag_context::{
                ContextFit, DEFAULT_RELATIVE_SCORE_CUT, LOCAL_CONTEXT_TOKENS,
            };
            builder = builder.context_fit(ContextFit {
                relative_score_cut: Some(
                    memory
                        .relative_score_cut
                        .unwrap_or(DEFAULT_RELATIVE_SCORE_CUT),
                ),
                max_tokens: memory
                    .context_tokens
                    .or((self.model.provider == ProviderKind::Local)
                        .then_some(LOCAL_CONTEXT_TOKENS)),
            });
        }
        if let Some(prompts) = prompts {
            builder = builder.prompts(prompts);
        }
        if let Some(Some(Ok(selector))) = self.prompt.as_deref().map(McpSelector::parse) {
            let name = selector.tool.unwrap_or_default();
            #[cfg(feature = "mcp")]
            {
                builder = builder.message_template(
                    Arc::new(crate::mcp_context::McpPromptTemplate::new(
                        context.mcp.clone(),
                        &selector.server,
                        &name,
                    )),
                    self.variables.clone(),
                );
            }
            #[cfg(not(feature = "mcp"))]
            return Err(BuildError::Mcp {
                agent: self.name.clone(),
                message: format!(
                    "`prompt = \"mcp:{}/{name}\"` needs MCP support, which this build leaves out (cargo feature `mcp`)",
                    selector.server
                ),
            });
        }
        if !self.resources.is_empty() {
            let resources: Vec<McpResourceRef> = self
                .resources
                .iter()
                .filter_map(|r| McpResourceRef::parse(r).ok())
                .collect();
            #[cfg(feature = "mcp")]
            {
                builder = builder.context_source(Arc::new(crate::mcp_context::McpResources::new(
                    context.mcp.clone(),
                    resources,
                )));
            }
            #[cfg(not(feature = "mcp"))]
            return Err(BuildError::Mcp {
                agent: self.name.clone(),
                message: format!(
                    "`resources` ({} of them) need MCP support, which this build leaves out (cargo feature `mcp`)",
                    resources.len()
                ),
            });
        }
        Ok(builder.build())
    }

    /// The `mcp:server/tool` names of `tools`, parsed (`validate` has refused bad ones).
    fn mcp_selectors(&self) -> Vec<McpSelector> {
        self.tools
            .iter()
            .filter_map(|name| McpSelector::parse(name)?.ok())
            .collect()
    }

    /// Adds the tools the `mcp:` names select, from the process's MCP connections. A name that
    /// another tool of the agent has already is an error (a server's `tool_prefix` resolves it).
    async fn add_mcp_tools(
        &self,
        tools: &mut ToolSet,
        context: &BuildContext,
    ) -> Result<(), BuildError> {
        let selectors = self.mcp_selectors();
        if selectors.is_empty() {
            return Ok(());
        }
        let error = |message: String| BuildError::Mcp {
            agent: self.name.clone(),
            message,
        };
        #[cfg(feature = "mcp")]
        {
            let remote = sextant_tools::mcp::mcp_tools(&context.mcp, &selectors)
                .await
                .map_err(|e| error(e.to_string()))?;
            for tool in remote {
                if tools.get(tool.name()).is_some() {
                    return Err(error(format!(
                        "two tools are called `{}`; set `tool_prefix` on one MCP server in [mcp.servers]",
                        tool.name()
                    )));
                }
                tools.insert(tool);
            }
            Ok(())
        }
        #[cfg(not(feature = "mcp"))]
        {
            let _ = (tools, context);
            Err(error(format!(
                "`mcp:{}/…` needs MCP support, which this build leaves out (cargo feature `mcp`)",
                selectors[0].server
            )))
        }
    }

    /// The registry URIs of the system prompt and the template, if they are URIs.
    pub fn prompt_uris(&self) -> Result<(Option<PromptUri>, Option<PromptUri>), RegistryError> {
        let system = PromptUri::is_uri(&self.system_prompt)
            .then(|| self.system_prompt.parse())
            .transpose()?;
        let template = self
            .prompt
            .as_deref()
            .filter(|prompt| McpSelector::parse(prompt).is_none())
            .map(str::parse)
            .transpose()?;
        Ok((system, template))
    }

    /// The agent's registry prompts, if it names any (the registry is opened only then).
    fn prompts(&self, context: &BuildContext) -> Result<Option<AgentPrompts>, BuildError> {
        let error = |error| BuildError::Prompts {
            agent: self.name.clone(),
            error,
        };
        let (system, template) = self.prompt_uris().map_err(error)?;
        if system.is_none() && template.is_none() {
            return Ok(None);
        }
        Ok(Some(AgentPrompts {
            registry: context.prompt_registry().map_err(error)?,
            system,
            template,
            variables: self.variables.clone(),
        }))
    }

    fn validate(self, source_name: &str) -> Result<Self, ConfigError> {
        if let Err(error) = self.prompt_uris() {
            let key = if PromptUri::is_uri(&self.system_prompt)
                && self.system_prompt.parse::<PromptUri>().is_err()
            {
                "system_prompt"
            } else {
                "prompt"
            };
            return Err(ConfigError::Value {
                key: key.into(),
                source_name: source_name.into(),
                message: error.to_string(),
            });
        }
        if let Some(prompt) = &self.prompt
            && let Some(selector) = McpSelector::parse(prompt)
        {
            let message = match selector {
                Err(message) => Some(message),
                Ok(selector) if selector.tool.is_none() => Some(format!(
                    "`{prompt}` names no prompt: write `mcp:SERVER/NAME`"
                )),
                Ok(_) => None,
            };
            if let Some(message) = message {
                return Err(ConfigError::Value {
                    key: "prompt".into(),
                    source_name: source_name.into(),
                    message,
                });
            }
        }
        for resource in &self.resources {
            if let Err(message) = McpResourceRef::parse(resource) {
                return Err(ConfigError::Value {
                    key: "resources".into(),
                    source_name: source_name.into(),
                    message,
                });
            }
        }
        if let Some(message) = self.budget.problem() {
            return Err(ConfigError::Value {
                key: "budget".into(),
                source_name: source_name.into(),
                message,
            });
        }
        for (tool, policy) in &self.tool_policies {
            if let Some(message) = policy.problem() {
                return Err(ConfigError::Value {
                    key: format!("tool_policies.{tool}"),
                    source_name: source_name.into(),
                    message,
                });
            }
        }
        for name in &self.tools {
            if let Some(Err(message)) = McpSelector::parse(name) {
                return Err(ConfigError::Value {
                    key: "tools".into(),
                    source_name: source_name.into(),
                    message,
                });
            }
        }
        for (key, entries) in [("agents", &self.agents), ("handoffs", &self.handoffs)] {
            for entry in entries.iter() {
                if let Err(message) = entry.validate() {
                    return Err(ConfigError::Value {
                        key: key.into(),
                        source_name: source_name.into(),
                        message: format!("`{}`: {message}", entry.shown()),
                    });
                }
            }
        }
        for entry in &self.handoffs {
            if matches!(entry.target(), Ok(crate::sub_agent::AgentTarget::Remote(_))) {
                return Err(ConfigError::Value {
                    key: "handoffs".into(),
                    source_name: source_name.into(),
                    message: format!(
                        "`{}` is a remote agent: it can be called (list it in `agents`), not handed a conversation",
                        entry.shown()
                    ),
                });
            }
        }
        for (index, guardrail) in self.guardrails.iter().enumerate() {
            if let Err(message) = guardrail.check() {
                return Err(ConfigError::Value {
                    key: format!("guardrails[{index}]"),
                    source_name: source_name.into(),
                    message,
                });
            }
        }
        if let Err(error) = self.output_schema() {
            return Err(ConfigError::Value {
                key: "output.schema".into(),
                source_name: source_name.into(),
                message: error.to_string(),
            });
        }
        if self.max_steps == 0 {
            return Err(ConfigError::Value {
                key: "max_steps".into(),
                source_name: source_name.into(),
                message: "must be at least 1".into(),
            });
        }
        if let Some(memory) = &self.memory
            && let Err(error) = sextant_memory::validate_collection_name(&memory.collection)
        {
            return Err(ConfigError::Value {
                key: "memory.collection".into(),
                source_name: source_name.into(),
                message: error.to_string(),
            });
        }
        if let Some(t) = self.model.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(ConfigError::Value {
                key: "model.temperature".into(),
                source_name: source_name.into(),
                message: format!("{t} is outside 0..=2"),
            });
        }
        for (key, value) in [
            ("model.frequency_penalty", self.model.frequency_penalty),
            ("model.presence_penalty", self.model.presence_penalty),
        ] {
            if let Some(value) = value
                && !(-2.0..=2.0).contains(&value)
            {
                return Err(ConfigError::Value {
                    key: key.into(),
                    source_name: source_name.into(),
                    message: format!("{value} is outside -2..=2"),
                });
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_agent_is_valid() {
        let agent = AgentConfig::builtin_default();
        assert_eq!(agent.name, "assistant");
        assert!(agent.tools.contains(&"calculator".to_owned()));
    }

    #[test]
    fn a_bad_value_in_an_agent_file_names_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let agent = dir.path().join("agent.toml");
        std::fs::write(&agent, "name = \"a\"\nsystem_prompt = \"s\"\nmax_steps = 0\n[model]\nprovider = \"local\"\nname = \"m\"\n")
            .unwrap();
        let err = AgentConfig::load(&agent).unwrap_err().to_string();
        assert!(
            err.contains("max_steps") && err.contains("agent.toml"),
            "{err}"
        );

        std::fs::write(&agent, "name = \"a\"\nsystem_prompt = \"s\"\n[model]\nprovider = \"llamafarm\"\nname = \"m\"\n").unwrap();
        let err = AgentConfig::load(&agent).unwrap_err().to_string();
        assert!(
            err.contains("llamafarm") && err.contains("agent.toml"),
            "{err}"
        );
    }

    #[test]
    fn a_malformed_prompt_uri_in_an_agent_file_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let agent = dir.path().join("agent.toml");
        std::fs::write(
            &agent,
            "name = \"a\"\nprompt = \"prompts:/qa/x\"\n[model]\nprovider = \"local\"\nname = \"m\"\n",
        )
        .unwrap();
        let err = AgentConfig::load(&agent).unwrap_err().to_string();
        assert!(
            err.contains("prompt in") && err.contains("prompts:/qa/x"),
            "{err}"
        );
        std::fs::write(
            &agent,
            "name = \"a\"\nsystem_prompt = \"prompts:/sys@\"\n[model]\nprovider = \"local\"\nname = \"m\"\n",
        )
        .unwrap();
        let err = AgentConfig::load(&agent).unwrap_err().to_string();
        assert!(err.contains("system_prompt"), "{err}");
    }
}
