//! Agent configurations as registered models: `sextant models register rag-agent --from
//! configs/agents/rag.toml` stores the agent file — its registry prompts pinned to the versions
//! they resolve to now — as an artifact of a tracking run and registers it as the next version of
//! the model `rag-agent`. An agent named `models:/rag-agent@production` is loaded from the version
//! the alias points at; [`ServedAgent`] re-resolves it after a time to live, so promoting another
//! version changes the agent a running process serves, without a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sextant_tracker::model_registry::{
    ModelRegistry, ModelRegistryError, ModelUri, ModelVersion, NewModelVersion,
};
use sextant_tracker::prompts::{PromptRegistry, PromptSelector, PromptUri, RegistryError};
use sextant_tracker::tracking::{NewRun, RunStatus, TrackingError, TrackingStore};

use crate::agent::Agent;
use crate::build_context::BuildContext;
use crate::config::{AgentConfig, BuildError, ConfigError};

/// Where a registered agent keeps its (pinned) configuration, inside its run's artifacts.
pub const AGENT_CONFIG_ARTIFACT: &str = "agent/agent.toml";
/// The agent file as it was written, beside the pinned one.
pub const AGENT_SOURCE_ARTIFACT: &str = "agent/source.toml";
/// The model version tag naming the configuration artifact.
pub const AGENT_CONFIG_TAG: &str = "sextant.agent_config";

/// Why registering or loading an agent configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentRegistryError {
    /// The model registry failed.
    #[error(transparent)]
    Models(#[from] ModelRegistryError),
    /// The tracking store (the configuration's artifact) failed.
    #[error(transparent)]
    Tracking(#[from] TrackingError),
    /// A prompt the agent names could not be resolved.
    #[error(transparent)]
    Prompts(#[from] RegistryError),
    /// The agent file is not valid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The agent could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The model version is not an agent configuration.
    #[error("{0}")]
    NotAnAgent(String),
}

/// Registers and loads agent configurations; see the [module docs](self).
#[derive(Clone)]
pub struct AgentRegistry {
    models: Arc<dyn ModelRegistry>,
    tracking: Arc<dyn TrackingStore>,
    prompts: Arc<dyn PromptRegistry>,
    experiment: String,
}

impl AgentRegistry {
    /// The registries `[tracking]` names.
    pub fn from_context(context: &BuildContext) -> Result<Self, AgentRegistryError> {
        let data_dir = &context.data_dir;
        Ok(Self {
            models: context.tracking.model_registry(data_dir)?,
            tracking: context.tracking.tracking_store(data_dir)?,
            prompts: context.prompt_registry()?,
            experiment: context.tracking.experiment.clone(),
        })
    }

    /// The model registry.
    pub fn models(&self) -> &Arc<dyn ModelRegistry> {
        &self.models
    }

    /// Registers the agent file at `path` as the next version of model `name`.
    pub async fn register(
        &self,
        name: &str,
        path: &Path,
        description: Option<String>,
    ) -> Result<ModelVersion, AgentRegistryError> {
        let agent = AgentConfig::load(path)?;
        let source = std::fs::read_to_string(path).map_err(|error| ConfigError::Value {
            key: "(file)".into(),
            source_name: path.display().to_string(),
            message: error.to_string(),
        })?;
        let (pinned, prompt_versions) = self.pin_prompts(&source, path).await?;
        let experiment = self
            .tracking
            .get_or_create_experiment(&self.experiment)
            .await?;
        let run = self
            .tracking
            .create_run(NewRun {
                experiment_id: experiment,
                run_name: Some(format!("register {name}")),
                tags: [("sextant.agent.name".to_owned(), agent.name.clone())].into(),
                ..NewRun::default()
            })
            .await?;
        let mut params = vec![
            ("agent".to_owned(), agent.name.clone()),
            (
                "provider".to_owned(),
                format!("{:?}", agent.model.provider).to_lowercase(),
            ),
            ("model".to_owned(), agent.model.name.clone()),
            ("tools".to_owned(), agent.tools.join(",")),
        ];
        params.extend(
            prompt_versions
                .iter()
                .map(|(k, v)| (format!("prompt.{k}"), v.clone())),
        );
        self.tracking
            .log_batch(
                &run.run_id,
                &sextant_tracker::tracking::LogBatch {
                    params,
                    ..Default::default()
                },
            )
            .await?;
        self.tracking
            .log_artifact(&run.run_id, AGENT_CONFIG_ARTIFACT, pinned.into_bytes())
            .await?;
        self.tracking
            .log_artifact(&run.run_id, AGENT_SOURCE_ARTIFACT, source.into_bytes())
            .await?;
        self.tracking
            .update_run(
                &run.run_id,
                RunStatus::Finished,
                Some(sextant_tracker::now_ms()),
            )
            .await?;
        let version = self
            .models
            .create_version(
                name,
                NewModelVersion {
                    source: format!("{}/agent", run.artifact_uri.trim_end_matches('/')),
                    run_id: Some(run.run_id),
                    description: description
                        .or_else(|| Some(agent.description.clone()).filter(|d| !d.is_empty())),
                    tags: [
                        (
                            AGENT_CONFIG_TAG.to_owned(),
                            AGENT_CONFIG_ARTIFACT.to_owned(),
                        ),
                        ("sextant.agent.name".to_owned(), agent.name.clone()),
                    ]
                    .into(),
                },
            )
            .await?;
        Ok(version)
    }

    /// The agent file with its alias-named prompts replaced by the versions they resolve to now,
    /// and those versions (`name` → version).
    async fn pin_prompts(
        &self,
        source: &str,
        path: &Path,
    ) -> Result<(String, Vec<(String, String)>), AgentRegistryError> {
        let mut table: toml::Table =
            toml::from_str(source).map_err(|error| ConfigError::Value {
                key: "(file)".into(),
                source_name: path.display().to_string(),
                message: error.to_string(),
            })?;
        let mut versions = Vec::new();
        for key in ["system_prompt", "prompt"] {
            let Some(text) = table.get(key).and_then(|v| v.as_str()).map(str::to_owned) else {
                continue;
            };
            if key == "system_prompt" && !PromptUri::is_uri(&text) {
                continue;
            }
            let uri: PromptUri = text.parse()?;
            let version = match &uri.selector {
                PromptSelector::Version(version) => *version,
                PromptSelector::Alias(alias) => {
                    self.prompts.resolve_alias(&uri.name, alias).await?
                }
            };
            // The version must exist, wherever the URI pointed.
            self.prompts.get_version(&uri.name, version).await?;
            let pinned = PromptUri::version(&uri.name, version);
            versions.push((uri.name.clone(), version.to_string()));
            table.insert(key.to_owned(), toml::Value::String(pinned.to_string()));
        }
        let pinned = toml::to_string(&table).map_err(|error| ConfigError::Value {
            key: "(file)".into(),
            source_name: path.display().to_string(),
            message: error.to_string(),
        })?;
        Ok((pinned, versions))
    }

    /// The agent configuration a registered version holds.
    pub async fn load(&self, version: &ModelVersion) -> Result<AgentConfig, AgentRegistryError> {
        let not_an_agent = || {
            AgentRegistryError::NotAnAgent(format!(
                "{} is not an agent configuration (it has no `{AGENT_CONFIG_TAG}` tag or run); register one with `sextant models register`",
                version.uri()
            ))
        };
        let artifact = version
            .tags
            .get(AGENT_CONFIG_TAG)
            .ok_or_else(not_an_agent)?;
        let run_id = version.run_id.as_deref().ok_or_else(not_an_agent)?;
        let bytes = self.tracking.read_artifact(run_id, artifact).await?;
        let text = String::from_utf8_lossy(&bytes);
        Ok(AgentConfig::from_toml(&text, &version.uri().to_string())?)
    }

    /// The version `uri` names and its configuration.
    pub async fn resolve(
        &self,
        uri: &ModelUri,
    ) -> Result<(ModelVersion, AgentConfig), AgentRegistryError> {
        let version = self.models.resolve(uri).await?;
        let config = self.load(&version).await?;
        Ok((version, config))
    }
}

/// The agent `name` names: a `models:/…` URI (resolved in the registry; its version is returned
/// too), an agent file, or — when `None` — `default` (`[agent] default`) or the built-in assistant.
pub async fn load_agent(
    context: &BuildContext,
    name: Option<&str>,
    default: Option<&Path>,
) -> Result<(AgentConfig, Option<ModelVersion>), AgentRegistryError> {
    let default = default.map(|p| p.display().to_string());
    match name.map(str::to_owned).or(default) {
        Some(text) if ModelUri::is_uri(&text) => {
            let uri: ModelUri = text.parse()?;
            let (version, mut agent) = AgentRegistry::from_context(context)?.resolve(&uri).await?;
            // Resuming its turns rebuilds the version that ran them.
            agent.source = Some(version.uri().to_string());
            Ok((agent, Some(version)))
        }
        Some(path) => Ok((AgentConfig::load(Path::new(&path))?, None)),
        None => Ok((AgentConfig::builtin_default(), None)),
    }
}

/// An agent served from a model URI, rebuilt when the version behind the URI changes; see the
/// [module docs](self).
pub struct ServedAgent {
    registry: AgentRegistry,
    context: BuildContext,
    uri: ModelUri,
    ttl: Duration,
    state: tokio::sync::Mutex<Option<Served>>,
}

struct Served {
    version: ModelVersion,
    agent: Arc<Agent>,
    checked: Instant,
}

impl ServedAgent {
    /// Serves `uri`, re-resolving it every `ttl` (`[tracking] model_alias_ttl_secs`).
    pub fn new(
        registry: AgentRegistry,
        context: BuildContext,
        uri: ModelUri,
        ttl: Duration,
    ) -> Self {
        Self {
            registry,
            context,
            uri,
            ttl,
            state: tokio::sync::Mutex::new(None),
        }
    }

    /// The URI served.
    pub fn uri(&self) -> &ModelUri {
        &self.uri
    }

    /// The agent to run now and the version it is. The first call loads it; later calls
    /// re-resolve a mutable URI after the TTL and rebuild the agent if the version moved. While the
    /// registry is unreachable the current agent keeps serving (with a warning).
    pub async fn current(&self) -> Result<(Arc<Agent>, ModelVersion), AgentRegistryError> {
        let mut state = self.state.lock().await;
        if let Some(served) = state.as_mut() {
            let fresh = !self.uri.is_mutable() || served.checked.elapsed() < self.ttl;
            if fresh {
                return Ok((served.agent.clone(), served.version.clone()));
            }
            match self.registry.models.resolve(&self.uri).await {
                Ok(version) if version.version == served.version.version => {
                    served.checked = Instant::now();
                    return Ok((served.agent.clone(), served.version.clone()));
                }
                Ok(_) => {}
                Err(ModelRegistryError::Unavailable { .. }) => {
                    tracing::warn!(
                        uri = %self.uri,
                        "the model registry is unavailable; still serving {}",
                        served.version.uri()
                    );
                    served.checked = Instant::now();
                    return Ok((served.agent.clone(), served.version.clone()));
                }
                Err(error) => return Err(error.into()),
            }
        }
        let (version, agent_config) = self.registry.resolve(&self.uri).await?;
        let agent = Arc::new(
            agent_config
                .build(&self.context)
                .await?
                .with_model_version(version.uri().to_string()),
        );
        *state = Some(Served {
            version: version.clone(),
            agent: agent.clone(),
            checked: Instant::now(),
        });
        Ok((agent, version))
    }
}
