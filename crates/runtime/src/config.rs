//! [`SextantConfig`]: the process's configuration, aggregated from the sections each crate owns.
//!
//! Sources, in order of precedence: `configs/sextant.toml` (the defaults, built into the binary),
//! a user file (`--config FILE`, else `./sextant.toml` or the platform config dir's
//! `sextant/sextant.toml`), and `SEXTANT_*` environment variables.
//!
//! One rule maps a variable to a key: strip `SEXTANT_`, lower-case, and split at `__`, so
//! `SEXTANT_TELEMETRY__CAPTURE_CONTENT=true` sets `telemetry.capture_content` and
//! `SEXTANT_DATA_DIR` sets `data_dir`. A variable applies when its first key is one of the
//! sections of [`SextantConfig`] (read off the type itself); other `SEXTANT_*` variables (a
//! test's, a token) are not configuration. A few shorthands stand for common keys:
//! `SEXTANT_THREADS` (`providers.local.threads`), `SEXTANT_TRACKING_URI` (`tracking.uri`),
//! `SEXTANT_QDRANT_URL` (`memory.qdrant.url`, and the Qdrant store) and `SEXTANT_SEARXNG_URL`
//! (`tools.web_search.searxng.url`, and the SearXNG backend). A bad value is an error that names
//! the key and the file or variable it came from.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::providers::{Format, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use sextant_agent::prices::{PriceTable, PricesConfig};
use sextant_agent::providers::ProvidersConfig;
use sextant_agent::retry::RetryConfig;
use sextant_agent::session::SessionsConfig;
use sextant_agent::turn_store::StateConfig;
use sextant_agent::{AgentDefaults, BuildContext, ConfigError};
use sextant_memory::MemoryConfig;
use sextant_tools::ToolsConfig;
use sextant_tools::mcp::{McpConfig, McpServers};
use sextant_tracker::{TelemetrySettings, TrackingConfig};

/// The defaults, as shipped in `configs/sextant.toml`.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/sextant.toml");

/// Variables that stand for a key, each with the setting it implies (a URL for a backend selects
/// that backend).
type Shorthand = (
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
);

const SHORTHANDS: [Shorthand; 4] = [
    ("THREADS", "providers.local.threads", None),
    ("TRACKING_URI", "tracking.uri", None),
    (
        "QDRANT_URL",
        "memory.qdrant.url",
        Some(("memory.store", "qdrant")),
    ),
    (
        "SEARXNG_URL",
        "tools.web_search.searxng.url",
        Some(("tools.web_search.backend", "searxng")),
    ),
];

/// The whole configuration; see the [module docs](self). Each section's type belongs to the crate
/// that reads it; sections of crates built on the runtime (the service's `[serve]`) are read with
/// [`SextantConfig::section`].
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
    /// Which agent runs when none is named (`[agent]`, sextant-agent).
    #[serde(default)]
    pub agent: AgentDefaults,
    /// Tracing, metrics and export (`[telemetry]`, sextant-tracker).
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    /// Provider endpoints and credentials (`[providers]`, sextant-agent).
    #[serde(default)]
    pub providers: ProvidersConfig,
    /// Retries and timeouts of chat calls (`[retry]`, sextant-agent).
    #[serde(default)]
    pub retry: RetryConfig,
    /// Tool limits and the built-in tools' settings (`[tools]`, sextant-tools).
    #[serde(default)]
    pub tools: ToolsConfig,
    /// MCP servers agents take tools, prompts and resources from (`[mcp]`, sextant-tools).
    #[serde(default)]
    pub mcp: McpConfig,
    /// Embedder, vector store, chunking and retrieval (`[memory]`, sextant-memory).
    #[serde(default)]
    pub memory: MemoryConfig,
    /// Where runs and the registries live: embedded or an MLflow server (`[tracking]`,
    /// sextant-tracker).
    #[serde(default)]
    pub tracking: TrackingConfig,
    /// Multi-turn sessions (`[sessions]`, sextant-agent).
    #[serde(default)]
    pub sessions: SessionsConfig,
    /// Where turn state lives and how turns are checkpointed (`[state]`, sextant-agent).
    #[serde(default)]
    pub state: StateConfig,
    /// The price table model calls are costed with (`[prices]`, sextant-agent).
    #[serde(default)]
    pub prices: PricesConfig,
    /// The HTTP service (`[serve]`), typed by sextant-server through [`SextantConfig::section`].
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "present so that `[serve]` is a known section; its owner reads it"
    )]
    serve: IgnoredAny,
    /// The merged sources, for [`SextantConfig::section`].
    #[serde(skip)]
    sources: Figment,
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
                if let Some(file) = default_user_files().into_iter().find(|f| f.exists()) {
                    figment = figment.merge(Toml::file_exact(file));
                }
            }
        }
        for (name, value) in vars {
            if value.is_empty() {
                continue;
            }
            for (path, value) in env_keys(&name, &value) {
                figment = figment.merge(EnvVariable {
                    name: name.clone(),
                    path,
                    value,
                });
            }
        }
        let mut config: SextantConfig = figment.extract()?;
        config.sources = figment;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.memory
            .validate()
            .map_err(|message| ConfigError::Value {
                key: "memory".into(),
                source_name: "the configuration".into(),
                message,
            })?;
        self.tools.validate().map_err(|error| ConfigError::Value {
            key: error.key,
            source_name: "the configuration".into(),
            message: error.message,
        })?;
        self.mcp.validate().map_err(|error| ConfigError::Value {
            key: error.key,
            source_name: "the configuration".into(),
            message: error.message,
        })?;
        PriceTable::load(&self.prices)?;
        if let Some(message) = self.state.problem() {
            return Err(ConfigError::Value {
                key: "state".into(),
                source_name: "the configuration".into(),
                message,
            });
        }
        self.telemetry
            .propagation_policy()
            .map_err(|error| ConfigError::Value {
                key: "telemetry.propagate_to".into(),
                source_name: "the configuration".into(),
                message: error.to_string(),
            })?;
        self.telemetry
            .redactor()
            .map_err(|error| ConfigError::Value {
                key: "telemetry.redaction".into(),
                source_name: "the configuration".into(),
                message: error.to_string(),
            })?;
        self.tracking
            .validate()
            .map_err(|(key, message)| ConfigError::Value {
                key: format!("tracking.{key}"),
                source_name: "the configuration".into(),
                message,
            })
    }

    /// The section `key` (`"serve"`) typed as `T` by the crate that owns it, from the same files
    /// and variables; its defaults where no source sets it. Errors name the key and the source.
    pub fn section<T: DeserializeOwned + Default>(&self, key: &str) -> Result<T, ConfigError> {
        if !self.sources.contains(key) {
            return Ok(T::default());
        }
        Ok(self.sources.extract_inner(key)?)
    }

    /// What building agents reads from this configuration.
    pub fn build_context(&self) -> BuildContext {
        BuildContext {
            providers: self.providers.clone(),
            retry: self.retry.clone(),
            tools: self.tools.clone(),
            mcp: McpServers::new(self.mcp.clone()),
            memory: self.memory.clone(),
            tracking: self.tracking.clone(),
            capture_content: self.telemetry.capture_content,
            data_dir: self.data_dir(),
            models_dir: self.home.as_ref().map(|home| home.join("models")),
            agents_dir: self.agent.agents_dir(),
            checkpoints: None,
            // Checked when the configuration was loaded; a file changed since falls back.
            prices: PriceTable::load(&self.prices)
                .map(Arc::new)
                .unwrap_or_else(|error| {
                    tracing::warn!(
                        "the price table is not usable, using the built-in one: {error}"
                    );
                    PriceTable::built_in()
                }),
            // Checked when the configuration was loaded, as the prices are.
            redactor: Arc::new(self.telemetry.redactor().unwrap_or_default()),
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

    /// Where remote trace sinks spool what their backend has not acknowledged yet.
    pub fn span_spool_dir(&self) -> PathBuf {
        self.data_dir().join("spool").join("spans")
    }
}

/// The keys variable `name` sets, with their values: none when it is not configuration.
fn env_keys(name: &str, value: &str) -> Vec<(String, String)> {
    let Some(rest) = name.strip_prefix("SEXTANT_") else {
        return Vec::new();
    };
    if let Some((_, path, implied)) = SHORTHANDS.iter().find(|(short, ..)| *short == rest) {
        let mut keys = vec![((*path).to_owned(), value.to_owned())];
        keys.extend(implied.map(|(path, value)| (path.to_owned(), value.to_owned())));
        return keys;
    }
    let path = rest.to_lowercase().replace("__", ".");
    let section = path.split('.').next().unwrap_or_default();
    if sections().contains(&section) {
        vec![(path, value.to_owned())]
    } else {
        Vec::new()
    }
}

/// The top-level keys of [`SextantConfig`], as serde sees them.
fn sections() -> &'static [&'static str] {
    serde_aux::serde_introspection::serde_introspect::<SextantConfig>()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_section_is_its_crates_default() {
        let config = SextantConfig::load_with_env(None, false).unwrap();
        assert_eq!(config.agent, AgentDefaults::default());
        assert_eq!(config.telemetry, TelemetrySettings::default());
        assert_eq!(config.providers, ProvidersConfig::default());
        assert_eq!(config.retry, RetryConfig::default());
        assert_eq!(config.tools, ToolsConfig::default());
        assert_eq!(config.mcp, McpConfig::default());
        assert_eq!(config.memory, MemoryConfig::default());
        assert_eq!(config.tracking, TrackingConfig::default());
        assert_eq!(config.sessions, SessionsConfig::default());
    }

    #[test]
    fn the_environment_rule_is_read_off_the_sections() {
        assert!(sections().contains(&"telemetry") && sections().contains(&"serve"));
        assert!(!sections().contains(&"sources"));
        assert_eq!(
            env_keys("SEXTANT_TOOLS__WEB_SEARCH__BACKEND", "corpus"),
            [("tools.web_search.backend".to_owned(), "corpus".to_owned())]
        );
        assert_eq!(
            env_keys("SEXTANT_DATA_DIR", "/d"),
            [("data_dir".to_owned(), "/d".to_owned())]
        );
        // Not configuration: a token the service reads, a test's server.
        assert!(env_keys("SEXTANT_SERVE_TOKEN", "secret").is_empty());
        assert!(env_keys("SEXTANT_TEST_MLFLOW_URL", "http://x").is_empty());
        assert!(env_keys("OTHER", "x").is_empty());
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

        std::fs::write(&file, "[serv]\naddr = \"0.0.0.0:1\"\n").unwrap();
        let err = SextantConfig::load_with_env(Some(&file), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("serv"),
            "an unknown section is an error: {err}"
        );
    }

    #[test]
    fn seconds_too_large_for_a_duration_are_an_error_naming_the_key_not_a_panic() {
        for (variable, key) in [
            ("SEXTANT_TRACKING__TIMEOUT_SECS", "tracking.timeout_secs"),
            (
                "SEXTANT_TRACKING__MODEL_ALIAS_TTL_SECS",
                "tracking.model_alias_ttl_secs",
            ),
            ("SEXTANT_TOOLS__TIMEOUT_SECS", "tools.timeout_secs"),
            (
                "SEXTANT_TOOLS__HTTP_FETCH__TIMEOUT_SECS",
                "tools.http_fetch.timeout_secs",
            ),
        ] {
            let err = SextantConfig::load_with_vars(None, vec![(variable.into(), "1e20".into())])
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{variable}: {err}");
        }
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(default)]
    struct Section {
        addr: String,
        max_body_bytes: usize,
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    struct Absent {
        key: Option<String>,
    }

    #[test]
    fn a_section_owned_elsewhere_is_typed_by_its_owner_with_errors_naming_the_source() {
        let config = SextantConfig::load_with_vars(
            None,
            vec![("SEXTANT_SERVE__ADDR".into(), "0.0.0.0:9000".into())],
        )
        .unwrap();
        let serve: Section = config.section("serve").unwrap();
        assert_eq!(serve.addr, "0.0.0.0:9000");
        assert_eq!(serve.max_body_bytes, 1 << 20, "the shipped default");
        assert_eq!(
            config.section::<Absent>("elsewhere").unwrap(),
            Absent::default()
        );

        let config = SextantConfig::load_with_vars(
            None,
            vec![("SEXTANT_SERVE__MAX_BODY_BYTES".into(), "lots".into())],
        )
        .unwrap();
        let err = config.section::<Section>("serve").unwrap_err().to_string();
        assert!(
            err.contains("max_body_bytes") && err.contains("SEXTANT_SERVE__MAX_BODY_BYTES"),
            "{err}"
        );
    }

    #[test]
    fn environment_variables_reach_nested_settings() {
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
            ("SEXTANT_THREADS".to_owned(), "1".to_owned()),
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
        assert_eq!(config.providers.local.threads, Some(1));

        let err = SextantConfig::load_with_vars(
            None,
            vec![("SEXTANT_TOOLS__MAX_PARALEL".to_owned(), "2".to_owned())],
        )
        .unwrap_err();
        assert!(err.to_string().contains("max_paralel"), "{err}");
    }

    #[test]
    fn qdrant_url_selects_qdrant_and_memory_settings_are_validated() {
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
    fn the_tracking_uri_selects_mlflow() {
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
    fn a_missing_explicit_file_is_an_error() {
        let err = SextantConfig::load_with_env(Some(Path::new("/nonexistent/sextant.toml")), false)
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/sextant.toml"));
    }

    #[test]
    fn the_build_context_carries_the_agent_sections() {
        let config = SextantConfig::load_with_vars(
            None,
            vec![
                ("SEXTANT_HOME".into(), "/h".into()),
                ("SEXTANT_TELEMETRY__CAPTURE_CONTENT".into(), "true".into()),
            ],
        )
        .unwrap();
        let context = config.build_context();
        assert!(context.capture_content);
        assert_eq!(context.data_dir, PathBuf::from("/h/data"));
        assert_eq!(context.models_dir, Some(PathBuf::from("/h/models")));
    }
}
