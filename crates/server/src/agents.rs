//! The agents a service answers with, by the name a request's `model` gives: an agent file's
//! stem in `[serve] agents_dir` (`assistant` for `assistant.toml`; the built-in assistant when
//! the directory has none), or a `models:/name@alias` URI served from the model registry and
//! re-resolved after `[tracking] model_alias_ttl_secs`, so a promotion changes the agent without a
//! restart. Each agent is built once, on first use, and shared by all requests.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sextant_agent::registry::{AgentRegistryError, ServedAgent};
use sextant_agent::{Agent, AgentConfig};
use sextant_runtime::Runtime;
use sextant_tracker::model_registry::{ModelRegistryError, ModelUri};
use tokio::sync::OnceCell;

use crate::config::ServeConfig;
use crate::error::ApiError;

/// The name of the built-in agent.
pub const BUILTIN: &str = "assistant";

enum Slot {
    /// A file's agent, built on first use.
    File(OnceCell<Arc<Agent>>),
    /// A registry URI's agent, rebuilt when the URI moves.
    Served(Box<ServedAgent>),
}

/// The agents by name; see the [module docs](self).
pub struct AgentCatalog {
    runtime: Arc<Runtime>,
    dir: Option<PathBuf>,
    default: String,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl AgentCatalog {
    /// The catalog `settings` describe, of agents built by `runtime`.
    pub fn new(runtime: Arc<Runtime>, settings: &ServeConfig) -> Self {
        let default = settings
            .default_agent
            .clone()
            .or_else(|| {
                runtime
                    .config()
                    .agent
                    .default
                    .as_ref()
                    .map(|p| p.display().to_string())
            })
            .unwrap_or_else(|| BUILTIN.to_owned());
        Self {
            runtime,
            dir: settings.agents_dir.clone(),
            default,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// What an empty `model` means.
    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// The agent file stems a request may name, the built-in assistant included.
    pub fn names(&self) -> Vec<String> {
        let mut names = BTreeSet::from([BUILTIN.to_owned()]);
        if let Some(dir) = &self.dir
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            names.extend(entries.flatten().filter_map(|entry| {
                let path = entry.path();
                (path.extension().is_some_and(|e| e == "toml"))
                    .then(|| path.file_stem()?.to_str().map(str::to_owned))
                    .flatten()
            }));
        }
        names.into_iter().collect()
    }

    /// The agent `model` names (empty: the default), with the version it is when it comes from
    /// the registry.
    pub async fn get(&self, model: &str) -> Result<(Arc<Agent>, Option<String>), ApiError> {
        let name = match model.trim() {
            "" => self.default.clone(),
            name => name.to_owned(),
        };
        let slot = self.slot(&name)?;
        match &*slot {
            Slot::File(cell) => {
                let agent = cell
                    .get_or_try_init(|| async { self.build_file(&name).await.map(Arc::new) })
                    .await?;
                Ok((agent.clone(), None))
            }
            Slot::Served(served) => {
                let (agent, version) = served
                    .current()
                    .await
                    .map_err(|error| registry_error(&name, error))?;
                Ok((agent, Some(version.uri().to_string())))
            }
        }
    }

    fn slot(&self, name: &str) -> Result<Arc<Slot>, ApiError> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(name) {
            return Ok(slot.clone());
        }
        let slot = if ModelUri::is_uri(name) {
            let uri: ModelUri = name.parse().map_err(|error| {
                ApiError::invalid(
                    Some("model"),
                    format!("`{name}` is not a model URI: {error}"),
                )
            })?;
            let served: ServedAgent = self.runtime.served_agent(uri).map_err(|error| {
                ApiError::unavailable(format!("the model registry cannot be opened: {error}"))
            })?;
            Slot::Served(Box::new(served))
        } else {
            self.agent_file(name)?;
            Slot::File(OnceCell::new())
        };
        let slot = Arc::new(slot);
        slots.insert(name.to_owned(), slot.clone());
        Ok(slot)
    }

    /// The file behind a stem or path (`None`: the built-in assistant); an unknown name is 404.
    fn agent_file(&self, name: &str) -> Result<Option<PathBuf>, ApiError> {
        // A path (the configured default may be one) is taken as is; a request's stem never
        // leaves the agents directory.
        if name.ends_with(".toml") && Path::new(name).is_file() {
            return Ok(Some(PathBuf::from(name)));
        }
        let valid = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid && let Some(dir) = &self.dir {
            let file = dir.join(format!("{name}.toml"));
            if file.is_file() {
                return Ok(Some(file));
            }
        }
        if name == BUILTIN {
            return Ok(None);
        }
        Err(ApiError::not_found(
            "model_not_found",
            Some("model"),
            format!(
                "no agent `{name}`: name one of {} (files in {}) or a models:/NAME@ALIAS URI",
                self.names().join(", "),
                self.dir
                    .as_ref()
                    .map_or("no agents_dir".into(), |d| d.display().to_string())
            ),
        ))
    }

    async fn build_file(&self, name: &str) -> Result<Agent, ApiError> {
        let agent_config = match self.agent_file(name)? {
            Some(file) => AgentConfig::load(&file).map_err(|error| {
                ApiError::internal(format!(
                    "the agent file {} is invalid: {error}",
                    file.display()
                ))
            })?,
            None => AgentConfig::builtin_default(),
        };
        self.runtime
            .build_agent(&agent_config, None)
            .await
            .map_err(|error| {
                ApiError::unavailable(format!("the agent `{name}` cannot be built: {error}"))
            })
    }
}

fn registry_error(name: &str, error: AgentRegistryError) -> ApiError {
    match error {
        AgentRegistryError::Models(error @ ModelRegistryError::NotFound { .. }) => {
            ApiError::not_found(
                "model_not_found",
                Some("model"),
                format!("`{name}`: {error}"),
            )
        }
        AgentRegistryError::Models(error @ ModelRegistryError::Unavailable { .. }) => {
            ApiError::unavailable(format!("`{name}`: {error}"))
        }
        AgentRegistryError::NotAnAgent(message) => {
            ApiError::invalid(Some("model"), format!("`{name}`: {message}"))
        }
        error => ApiError::unavailable(format!("`{name}` cannot be served: {error}")),
    }
}
