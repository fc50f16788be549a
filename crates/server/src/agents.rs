//! The agents a service answers with, by the name a request's `model` gives: an agent file's
//! stem in `[serve] agents_dir` (`assistant` for `assistant.toml`; the built-in assistant when
//! the directory has none), or a `models:/name@alias` URI of a model `[serve]
//! allowed_registry_models` lists, served from the model registry and re-resolved after
//! `[tracking] model_alias_ttl_secs`, so a promotion changes the agent without a restart. Each
//! agent is built once, on first use, and shared by all requests.
//!
//! A request never names a path: only the configured default agent may be a file outside
//! `agents_dir`. Registry agents are cached only once they resolved, at most
//! `max_registry_agents` of them (the least recently used goes), so a client cannot grow the
//! catalog with made-up names.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use sextant_agent::registry::{AgentRegistry, AgentRegistryError, ServedAgent};
use sextant_agent::{Agent, AgentConfig};
use sextant_runtime::Runtime;
use sextant_tracker::model_registry::{ModelRegistryError, ModelUri};
use tokio::sync::OnceCell;

use crate::config::ServeConfig;
use crate::error::ApiError;

/// The name of the built-in agent.
pub const BUILTIN: &str = "assistant";

/// Where the default agent comes from when it is not a stem: the configuration may name a file
/// anywhere (requests may not).
enum DefaultAgent {
    /// A stem, the built-in assistant, or a `models:/` URI: looked up like a request's name.
    Named,
    /// A file the configuration names.
    File(PathBuf),
}

/// The agents by name; see the [module docs](self).
pub struct AgentCatalog {
    runtime: Arc<Runtime>,
    dir: Option<PathBuf>,
    default: String,
    default_kind: DefaultAgent,
    allowed_models: Vec<String>,
    max_served: usize,
    files: Mutex<HashMap<String, Arc<OnceCell<Arc<Agent>>>>>,
    served: Mutex<HashMap<ModelUri, (Arc<ServedAgent>, Instant)>>,
    registry: OnceLock<AgentRegistry>,
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
        let default_kind = if default.ends_with(".toml") {
            DefaultAgent::File(PathBuf::from(&default))
        } else {
            DefaultAgent::Named
        };
        let mut allowed_models = settings.allowed_registry_models.clone();
        // The configured default may be a registry URI even when requests may not name one.
        if let Ok(uri) = default.parse::<ModelUri>() {
            allowed_models.push(uri.name);
        }
        Self {
            runtime,
            dir: settings.agents_dir.clone(),
            default,
            default_kind,
            allowed_models,
            max_served: settings.max_registry_agents.max(1),
            files: Mutex::new(HashMap::new()),
            served: Mutex::new(HashMap::new()),
            registry: OnceLock::new(),
        }
    }

    /// What an empty `model` means.
    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// The agent file stems a request may name, the built-in assistant included.
    pub fn names(&self) -> Vec<String> {
        let mut names = BTreeSet::from([BUILTIN.to_owned()]);
        names.extend(toml_stems(self.dir.as_deref()));
        names.into_iter().collect()
    }

    /// The configuration of agent `name` (a stem in `agents_dir` or the built-in assistant), for
    /// describing it; `None` for other names or a file that does not load.
    pub fn config_of(&self, name: &str) -> Option<AgentConfig> {
        match self.agent_file(name).ok()? {
            Some(file) => AgentConfig::load(&file).ok(),
            None => Some(AgentConfig::builtin_default()),
        }
    }

    /// The agent `model` names (empty: the default), with the version it is when it comes from
    /// the registry.
    pub async fn get(&self, model: &str) -> Result<(Arc<Agent>, Option<String>), ApiError> {
        let name = match model.trim() {
            "" => self.default.as_str(),
            name => name,
        };
        if ModelUri::is_uri(name) {
            return self.served(name).await;
        }
        let file = match (&self.default_kind, name == self.default) {
            (DefaultAgent::File(path), true) => Some(path.clone()),
            _ => self.agent_file(name)?,
        };
        let cell = self
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name.to_owned())
            .or_default()
            .clone();
        let agent = cell
            .get_or_try_init(|| async { self.build_file(name, file).await.map(Arc::new) })
            .await?;
        Ok((agent.clone(), None))
    }

    /// A registry agent: allowed by name, resolved before it is cached.
    async fn served(&self, name: &str) -> Result<(Arc<Agent>, Option<String>), ApiError> {
        let uri: ModelUri = name.parse().map_err(|error| {
            ApiError::invalid(
                Some("model"),
                format!("`{name}` is not a model URI: {error}"),
            )
        })?;
        if !self
            .allowed_models
            .iter()
            .any(|allowed| allowed == "*" || *allowed == uri.name)
        {
            return Err(self.unknown(name));
        }
        let cached = self
            .served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&uri)
            .map(|(served, used)| {
                *used = Instant::now();
                served.clone()
            });
        let served = match cached {
            Some(served) => served,
            None => Arc::new(ServedAgent::new(
                self.registry()?,
                self.runtime.build_context().clone(),
                uri.clone(),
                self.runtime.config().tracking.model_alias_ttl(),
            )),
        };
        let (agent, version) = served
            .current()
            .await
            .map_err(|error| registry_error(name, error))?;
        let mut cache = self.served.lock().unwrap_or_else(|e| e.into_inner());
        if !cache.contains_key(&uri) && cache.len() >= self.max_served {
            let oldest = cache
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(uri, _)| uri.clone());
            if let Some(oldest) = oldest {
                cache.remove(&oldest);
            }
        }
        cache.insert(uri, (served, Instant::now()));
        Ok((agent, Some(version.uri().to_string())))
    }

    /// The agent registry, opened once for every registry agent.
    fn registry(&self) -> Result<AgentRegistry, ApiError> {
        if let Some(registry) = self.registry.get() {
            return Ok(registry.clone());
        }
        let registry = self.runtime.agent_registry().map_err(|error| {
            ApiError::unavailable(format!("the model registry cannot be opened: {error}"))
        })?;
        Ok(self.registry.get_or_init(|| registry).clone())
    }

    /// The file behind a stem in `agents_dir` (`None`: the built-in assistant); anything else,
    /// a path included, is the same 404, which does not say whether such a file exists.
    fn agent_file(&self, name: &str) -> Result<Option<PathBuf>, ApiError> {
        if valid_stem(name)
            && let Some(dir) = &self.dir
        {
            let file = dir.join(format!("{name}.toml"));
            if file.is_file() {
                return Ok(Some(file));
            }
        }
        if name == BUILTIN {
            return Ok(None);
        }
        Err(self.unknown(name))
    }

    /// The 404 for a name that is not an agent here.
    fn unknown(&self, name: &str) -> ApiError {
        let shown: String = name
            .chars()
            .take(64)
            .collect::<String>()
            .escape_debug()
            .to_string();
        ApiError::not_found(
            "model_not_found",
            Some("model"),
            format!(
                "no agent `{shown}`: name one of {}{}",
                self.names().join(", "),
                if self.allowed_models.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", or models:/NAME@ALIAS for NAME in {}",
                        self.allowed_models.join(", ")
                    )
                }
            ),
        )
    }

    async fn build_file(&self, name: &str, file: Option<PathBuf>) -> Result<Agent, ApiError> {
        let agent_config = match file {
            Some(file) => AgentConfig::load(&file).map_err(|error| {
                tracing::error!("the agent file {} is invalid: {error}", file.display());
                ApiError::internal(format!(
                    "the agent `{name}` is misconfigured (see the service log)"
                ))
            })?,
            None => AgentConfig::builtin_default(),
        };
        self.runtime
            .build_agent(&agent_config, None)
            .await
            .map_err(|error| {
                tracing::error!("the agent `{name}` cannot be built: {error}");
                ApiError::unavailable(format!(
                    "the agent `{name}` cannot be built (see the service log)"
                ))
            })
    }
}

/// Whether `name` may be a file stem a request names (`assistant`, `research`): never a path.
pub(crate) fn valid_stem(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The stems of the `.toml` files in `dir`, sorted (none without a directory).
pub(crate) fn toml_stems(dir: Option<&std::path::Path>) -> Vec<String> {
    let Some(Ok(entries)) = dir.map(std::fs::read_dir) else {
        return Vec::new();
    };
    let mut stems: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let path = entry.path();
            (path.extension().is_some_and(|e| e == "toml"))
                .then(|| path.file_stem()?.to_str().map(str::to_owned))
                .flatten()
        })
        .collect();
    stems.sort();
    stems
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
