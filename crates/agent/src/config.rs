//! Configuration: `configs/sextant.toml` (the defaults, built into the binary), a user file, and
//! `SEXTANT_*` environment variables, in that order of precedence; and agent definitions
//! (`configs/agents/*.toml`).
//!
//! Nested keys are reached from the environment with `__`: `SEXTANT_TELEMETRY__CAPTURE_CONTENT=true`.
//! `SEXTANT_HOME` sets [`SextantConfig::home`], `SEXTANT_THREADS` the local model's threads and
//! `SEXTANT_SEARXNG_URL` switches `web_search` to that SearXNG instance, `SEXTANT_QDRANT_URL`
//! the vector store to that Qdrant server. A bad
//! value is an error that names the key and the file it came from.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Toml};
use figment::value::{Dict, Map};
use figment::{Metadata, Profile, Provider};
use serde::Deserialize;

use sextant_memory::{MemoryConfig, Retriever};
use sextant_tools::{ToolSet, ToolSetError, ToolsConfig};
use sextant_tracker::TrackingConfig;
use sextant_tracker::prompts::{CachedPromptRegistry, PromptUri, RegistryError};

use crate::agent::Agent;
use crate::chat::ChatOptions;
use crate::error::ChatError;
use crate::memory::{
    AgentMemoryConfig, MemoryBuildError, SEARCH_MEMORY, build_embedder, build_store,
    search_memory_tool,
};
use crate::model_files::{ModelCache, ModelFilesError};
use crate::prompt::AgentPrompts;
use crate::providers;
use crate::retry::RetryPolicy;
pub use crate::session::SessionsConfig;

/// The defaults, as shipped in `configs/sextant.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/sextant.toml");
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

/// The whole Sextant configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SextantConfig {
    /// Root of Sextant's files: models under `home/models`, data under `home/data`. Empty = the
    /// platform's cache and data directories.
    #[serde(default)]
    pub home: Option<PathBuf>,
    /// Where traces, sessions and registries live (`SEXTANT_DATA_DIR`); overrides `home/data`.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Which agent runs when none is named.
    pub agent: AgentDefaults,
    /// Tracing, metrics and export.
    pub telemetry: TelemetrySettings,
    /// Provider endpoints and credentials.
    pub providers: ProvidersConfig,
    /// Retries and timeouts of chat calls.
    pub retry: RetryConfig,
    /// Tool limits and the built-in tools' settings (`[tools]`).
    #[serde(default)]
    pub tools: ToolsConfig,
    /// Embedder, vector store, chunking and retrieval (`[memory]`).
    #[serde(default)]
    pub memory: MemoryConfig,
    /// Where runs and the prompt registry live: embedded or an MLflow server (`[tracking]`).
    #[serde(default)]
    pub tracking: TrackingConfig,
    /// Multi-turn sessions (`[sessions]`).
    #[serde(default)]
    pub sessions: SessionsConfig,
    /// The HTTP service, `sextant serve` (`[serve]`).
    #[serde(default)]
    pub serve: ServeConfig,
}

/// `[serve]`: the HTTP service's address, agents and limits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Where to listen (`--addr` overrides it).
    pub addr: String,
    /// The agent files a request's `model` may name by stem (`assistant` for
    /// `assistant.toml`); the built-in assistant is always there.
    pub agents_dir: Option<PathBuf>,
    /// The agent a request without a known `model` gets: a stem, a file or a `models:/` URI.
    pub default_agent: Option<String>,
    /// The largest request body accepted; bigger is 413.
    pub max_body_bytes: usize,
    /// How long one request may take before it is answered 504.
    pub request_timeout_secs: f64,
    /// Requests answered at once; more are refused with 429 right away.
    pub max_concurrent_requests: usize,
    /// On SIGTERM or Ctrl-C: how long in-flight requests may still take before the process
    /// exits anyway (spans and tracking are flushed either way).
    pub shutdown_grace_secs: f64,
    /// The environment variable that holds the bearer token requests must carry; unset or empty
    /// variable = no authentication.
    pub auth_token_env: Option<String>,
    /// How often the service logs its counters to its tracking run.
    pub metrics_log_interval_secs: f64,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:8080".into(),
            agents_dir: Some(PathBuf::from("configs/agents")),
            default_agent: None,
            max_body_bytes: 1 << 20,
            request_timeout_secs: 300.0,
            max_concurrent_requests: 8,
            shutdown_grace_secs: 30.0,
            auth_token_env: None,
            metrics_log_interval_secs: 30.0,
        }
    }
}

/// `[agent]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentDefaults {
    /// The agent file used when `--agent` is not given; empty = the built-in `assistant`.
    #[serde(default)]
    pub default: Option<PathBuf>,
}

/// `[telemetry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// `service.name` of the resource (OTEL_SERVICE_NAME overrides it).
    pub service_name: String,
    /// Record message content (prompts, answers, tool arguments and results) on spans.
    pub capture_content: bool,
    /// Keep every trace in the local SQLite trace store (what `sextant traces` reads).
    pub local_store: bool,
    /// Log filter for stderr, RUST_LOG syntax (RUST_LOG overrides it).
    pub log_filter: String,
    /// Export over OTLP; the standard OTEL_EXPORTER_OTLP_* variables override it.
    #[serde(default)]
    pub otlp: Option<sextant_tracker::OtlpConfig>,
}

/// `[providers]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersConfig {
    /// OpenAI-compatible servers.
    pub openai: OpenAiSettings,
    /// Ollama.
    pub ollama: OllamaSettings,
    /// The embedded model.
    pub local: LocalSettings,
}

/// `[providers.openai]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiSettings {
    /// Base URL including `/v1`.
    pub base_url: String,
    /// Name of the environment variable holding the API key (the key itself is never in a file).
    pub api_key_env: String,
}

/// `[providers.ollama]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OllamaSettings {
    /// The server, e.g. `http://127.0.0.1:11434`.
    pub host: String,
}

/// `[providers.local]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSettings {
    /// Inference threads; empty = all cores.
    #[serde(default)]
    pub threads: Option<usize>,
}

/// `[retry]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff, in milliseconds.
    pub initial_backoff_ms: u64,
    /// Longest backoff, in milliseconds.
    pub max_backoff_ms: u64,
    /// Per-call timeout, in seconds.
    pub timeout_secs: u64,
}

impl RetryConfig {
    /// As a [`RetryPolicy`].
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            initial_backoff: Duration::from_millis(self.initial_backoff_ms),
            max_backoff: Duration::from_millis(self.max_backoff_ms),
            timeout: Duration::from_secs(self.timeout_secs),
        }
    }
}

impl SextantConfig {
    /// Loads the defaults, then `user_file` if given (it must exist), else `./sextant.toml` or the
    /// platform config dir's `sextant/sextant.toml` if present, then the environment.
    pub fn load(user_file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(user_file, true)
    }

    /// [`SextantConfig::load`], reading `SEXTANT_*` variables only if `read_env` (tests turn it off).
    pub fn load_with_env(user_file: Option<&Path>, read_env: bool) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = if read_env {
            std::env::vars()
                .filter(|(k, _)| k.starts_with("SEXTANT_"))
                .collect()
        } else {
            Vec::new()
        };
        Self::load_with_vars(user_file, vars)
    }

    /// [`SextantConfig::load`] with `vars` standing in for the environment.
    pub fn load_with_vars(
        user_file: Option<&Path>,
        vars: Vec<(String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_CONFIG));
        match user_file {
            Some(path) if !path.exists() => return Err(ConfigError::Missing(path.to_owned())),
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => {
                for candidate in default_user_files() {
                    if candidate.exists() {
                        figment = figment.merge(Toml::file_exact(candidate));
                        break;
                    }
                }
            }
        }
        // Only the sections this struct has: other SEXTANT_* variables (tests', CI's) are not config.
        for (key, value) in vars {
            let Some(rest) = key.strip_prefix("SEXTANT_") else {
                continue;
            };
            let path = match rest {
                "HOME" => "home".to_owned(),
                "DATA_DIR" => "data_dir".to_owned(),
                "THREADS" => "providers.local.threads".to_owned(),
                "TRACKING_URI" => "tracking.uri".to_owned(),
                "QDRANT_URL" => {
                    if !value.is_empty() {
                        figment = figment.merge(EnvVariable {
                            name: key.clone(),
                            path: "memory.store".into(),
                            value: "qdrant".into(),
                        });
                    }
                    "memory.qdrant.url".to_owned()
                }
                "SEARXNG_URL" => {
                    if !value.is_empty() {
                        figment = figment.merge(EnvVariable {
                            name: key.clone(),
                            path: "tools.web_search.backend".into(),
                            value: "searxng".into(),
                        });
                    }
                    "tools.web_search.searxng.url".to_owned()
                }
                _ if [
                    "AGENT__",
                    "TELEMETRY__",
                    "PROVIDERS__",
                    "RETRY__",
                    "TOOLS__",
                    "MEMORY__",
                    "TRACKING__",
                    "SESSIONS__",
                    "SERVE__",
                ]
                .iter()
                .any(|p| rest.starts_with(p)) =>
                {
                    rest.to_lowercase().replace("__", ".")
                }
                _ => continue,
            };
            if value.is_empty() {
                continue;
            }
            figment = figment.merge(EnvVariable {
                name: key,
                path,
                value,
            });
        }
        let config: SextantConfig = figment.extract()?;
        config
            .memory
            .validate()
            .map_err(|message| ConfigError::Value {
                key: "memory".into(),
                source_name: "the configuration".into(),
                message,
            })?;
        config
            .tracking
            .validate()
            .map_err(|(key, message)| ConfigError::Value {
                key: format!("tracking.{key}"),
                source_name: "the configuration".into(),
                message,
            })?;
        Ok(config)
    }

    /// The prompt registry `[tracking]` names (embedded: `registry.db` in the data directory),
    /// behind its alias cache.
    pub fn prompt_registry(&self) -> Result<Arc<CachedPromptRegistry>, RegistryError> {
        self.tracking.prompt_registry(&self.data_dir())
    }

    /// Where the default model files live.
    pub fn model_cache(&self) -> Result<ModelCache, ModelFilesError> {
        match &self.home {
            Some(home) => ModelCache::builder().root(home.join("models")).build(),
            None => ModelCache::from_env(),
        }
    }

    /// The data directory: traces, sessions, registries.
    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.data_dir {
            return dir.clone();
        }
        match &self.home {
            Some(home) => home.join("data"),
            None => directories::ProjectDirs::from("", "", "sextant")
                .map(|dirs| dirs.data_dir().to_owned())
                .unwrap_or_else(|| PathBuf::from(".sextant")),
        }
    }

    /// The session store's file.
    pub fn session_store_path(&self) -> PathBuf {
        self.data_dir().join("sessions.db")
    }

    /// The local trace store's file.
    pub fn trace_store_path(&self) -> PathBuf {
        self.data_dir().join("traces.db")
    }
}

/// One `SEXTANT_*` variable as a configuration source: its value read the way figment's `Env`
/// provider reads values (numbers, booleans, arrays as such), and errors naming the variable.
struct EnvVariable {
    name: String,
    path: String,
    value: String,
}

impl Provider for EnvVariable {
    fn metadata(&self) -> Metadata {
        Metadata::named(format!("environment variable {}", self.name))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let value: figment::value::Value =
            self.value.parse().unwrap_or_else(|never| match never {});
        let dict = figment::util::nest(&self.path, value)
            .into_dict()
            .expect("nesting under a key makes a dict");
        Ok(Profile::Default.collect(dict))
    }
}

fn default_user_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("sextant.toml")];
    if let Some(dirs) = directories::ProjectDirs::from("", "", "sextant") {
        files.push(dirs.config_dir().join("sextant.toml"));
    }
    files
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
    /// The template of each turn's messages, from the registry (`prompts:/qa-prompt@production`):
    /// a text template becomes the user message; a chat template's messages replace the system
    /// prompt and the user message. It can use `{{ question }}`, `{{ context }}` (retrieved
    /// sources) and the `[variables]`.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Extra variables for the prompt templates.
    #[serde(default)]
    pub variables: serde_json::Map<String, serde_json::Value>,
    /// Names of the tools it may call.
    #[serde(default)]
    pub tools: Vec<String>,
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
}

fn default_max_steps() -> u32 {
    6
}

impl AgentConfig {
    /// Reads an agent file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        if !path.exists() {
            return Err(ConfigError::Missing(path.to_owned()));
        }
        let config: AgentConfig = Figment::from(Toml::file_exact(path)).extract()?;
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
    pub async fn build(&self, config: &SextantConfig) -> Result<Agent, BuildError> {
        // `search_memory` comes from the memory section, not the built-in tools.
        let builtin: Vec<String> = self
            .tools
            .iter()
            .filter(|name| self.memory.is_none() || name.as_str() != SEARCH_MEMORY)
            .cloned()
            .collect();
        let mut tools =
            ToolSet::from_config(&builtin, &config.tools).map_err(|error| BuildError::Tools {
                agent: self.name.clone(),
                error,
            })?;
        let capture_content = self
            .capture_content
            .unwrap_or(config.telemetry.capture_content);
        let mut context_retriever = None;
        if let Some(memory) = &self.memory {
            let memory_error = |error| BuildError::Memory {
                agent: self.name.clone(),
                error,
            };
            let options = memory
                .retrieval_options(&config.memory.retrieval)
                .map_err(|message| memory_error(MemoryBuildError::Config(message)))?;
            let embedder = build_embedder(config).await.map_err(memory_error)?;
            let store = build_store(config).map_err(memory_error)?;
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
        let model = providers::build(&self.model, config)
            .await
            .map_err(|error| BuildError::Model {
                agent: self.name.clone(),
                error,
            })?;
        let prompts = self.prompts(config)?;
        let system_prompt = if prompts.as_ref().is_some_and(|p| p.system.is_some()) {
            ""
        } else {
            &self.system_prompt
        };
        let mut builder = Agent::builder(&self.name, model)
            .system_prompt(system_prompt)
            .tools(tools)
            .max_steps(self.max_steps)
            .options(self.model.options())
            .capture_content(capture_content);
        if let Some(retriever) = context_retriever {
            builder = builder.context_retriever(retriever);
        }
        if let Some(prompts) = prompts {
            builder = builder.prompts(prompts);
        }
        Ok(builder.build())
    }

    /// The registry URIs of the system prompt and the template, if they are URIs.
    pub fn prompt_uris(&self) -> Result<(Option<PromptUri>, Option<PromptUri>), RegistryError> {
        let system = PromptUri::is_uri(&self.system_prompt)
            .then(|| self.system_prompt.parse())
            .transpose()?;
        let template = self.prompt.as_deref().map(str::parse).transpose()?;
        Ok((system, template))
    }

    /// The agent's registry prompts, if it names any (the registry is opened only then).
    fn prompts(&self, config: &SextantConfig) -> Result<Option<AgentPrompts>, BuildError> {
        let error = |error| BuildError::Prompts {
            agent: self.name.clone(),
            error,
        };
        let (system, template) = self.prompt_uris().map_err(error)?;
        if system.is_none() && template.is_none() {
            return Ok(None);
        }
        Ok(Some(AgentPrompts {
            registry: config.prompt_registry().map_err(error)?,
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
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_builtin_agent_is_valid() {
        let config = SextantConfig::load_with_env(None, false).unwrap();
        assert_eq!(config.telemetry.service_name, "sextant");
        assert!(config.retry.max_retries > 0);
        let agent = AgentConfig::builtin_default();
        assert_eq!(agent.name, "assistant");
        assert!(agent.tools.contains(&"calculator".to_owned()));
    }

    #[test]
    fn a_bad_value_names_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mine.toml");
        std::fs::write(&file, "[retry]\nmax_retries = \"lots\"\n").unwrap();
        let err = SextantConfig::load_with_env(Some(&file), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("retry.max_retries"), "{err}");
        assert!(err.contains("mine.toml"), "{err}");

        std::fs::write(&file, "[retry]\nmax_retrys = 3\n").unwrap();
        let err = SextantConfig::load_with_env(Some(&file), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_retrys"), "{err}");

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
    fn the_shipped_tools_section_is_the_built_in_default() {
        let config = SextantConfig::load_with_env(None, false).unwrap();
        assert_eq!(config.tools, ToolsConfig::default());
    }

    #[test]
    fn environment_variables_reach_nested_tool_settings() {
        let vars = vec![
            (
                "SEXTANT_SEARXNG_URL".to_owned(),
                "http://127.0.0.1:8888".to_owned(),
            ),
            ("SEXTANT_TOOLS__MAX_PARALLEL".to_owned(), "2".to_owned()),
            (
                "SEXTANT_TOOLS__HTTP_FETCH__ALLOW_PRIVATE_NETWORKS".to_owned(),
                "true".to_owned(),
            ),
            ("SEXTANT_RETRY__MAX_RETRIES".to_owned(), "7".to_owned()),
            ("SEXTANT_UNRELATED".to_owned(), "x".to_owned()),
        ];
        let config = SextantConfig::load_with_vars(None, vars).unwrap();
        assert_eq!(
            config.tools.web_search.backend,
            sextant_tools::config::SearchBackendKind::Searxng
        );
        assert_eq!(
            config.tools.web_search.searxng.url.as_deref(),
            Some("http://127.0.0.1:8888")
        );
        assert_eq!(config.tools.max_parallel, 2);
        assert!(config.tools.http_fetch.allow_private_networks);
        assert_eq!(config.retry.max_retries, 7);

        let err = SextantConfig::load_with_vars(
            None,
            vec![("SEXTANT_TOOLS__MAX_PARALEL".to_owned(), "2".to_owned())],
        )
        .unwrap_err();
        assert!(err.to_string().contains("max_paralel"), "{err}");
    }

    #[test]
    fn the_shipped_memory_section_is_the_built_in_default_and_qdrant_url_selects_qdrant() {
        let config = SextantConfig::load_with_env(None, false).unwrap();
        assert_eq!(config.memory, MemoryConfig::default());
        let config = SextantConfig::load_with_vars(
            None,
            vec![
                ("SEXTANT_QDRANT_URL".into(), "http://10.0.0.5:6334".into()),
                ("SEXTANT_MEMORY__RETRIEVAL__TOP_K".into(), "6".into()),
            ],
        )
        .unwrap();
        assert_eq!(config.memory.store, sextant_memory::StoreKind::Qdrant);
        assert_eq!(config.memory.qdrant.url, "http://10.0.0.5:6334");
        assert_eq!(config.memory.retrieval.top_k, 6);
        let err = SextantConfig::load_with_vars(
            None,
            vec![(
                "SEXTANT_MEMORY__CHUNKING__OVERLAP_TOKENS".into(),
                "500".into(),
            )],
        )
        .unwrap_err();
        assert!(err.to_string().contains("overlap_tokens (500)"), "{err}");
    }

    #[test]
    fn the_shipped_tracking_section_is_the_built_in_default_and_the_uri_selects_mlflow() {
        let config = SextantConfig::load_with_env(None, false).unwrap();
        assert_eq!(config.tracking, TrackingConfig::default());
        let config = SextantConfig::load_with_vars(
            None,
            vec![(
                "SEXTANT_TRACKING_URI".into(),
                "http://127.0.0.1:5000".into(),
            )],
        )
        .unwrap();
        assert_eq!(
            config.tracking.backend().unwrap(),
            sextant_tracker::TrackingBackend::Mlflow("http://127.0.0.1:5000".into())
        );
        let err = SextantConfig::load_with_vars(
            None,
            vec![("SEXTANT_TRACKING_URI".into(), "mlflow.example".into())],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("tracking.uri") && err.contains("mlflow.example"),
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

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let err = SextantConfig::load_with_env(Some(Path::new("/nonexistent/sextant.toml")), false)
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/sextant.toml"));
    }
}
