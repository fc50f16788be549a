//! `[tracking]`: where runs and registries live — the embedded SQLite files in the data directory,
//! or an MLflow tracking server (`SEXTANT_TRACKING_URI=http://127.0.0.1:5000`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::OtlpConfig;
use crate::local::LocalPromptRegistry;
use crate::local::{LocalModelRegistry, LocalTrackingStore};
use crate::mlflow::{MlflowClient, MlflowModelRegistry, MlflowPromptRegistry, MlflowTrackingStore};
use crate::model_registry::{ModelRegistry, ModelRegistryError};
use crate::prompts::{CachedPromptRegistry, PromptRegistry, RegistryError};
use crate::tracking::{Tracker, TrackingError, TrackingStore};

/// The header that tells MLflow's `/v1/traces` which experiment a trace belongs to.
pub const EXPERIMENT_ID_HEADER: &str = "x-mlflow-experiment-id";

/// `[tracking]` of the Sextant configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackingConfig {
    /// Unset (or `local`) = the embedded store in the data directory; `http(s)://…` = an MLflow
    /// tracking server.
    pub uri: Option<String>,
    /// The experiment traces and runs go to (created on the server if missing).
    pub experiment: String,
    /// The environment variable holding an MLflow bearer token, if the server wants one.
    pub token_env: String,
    /// How long a resolved prompt alias is trusted before the registry is asked again, seconds.
    pub prompt_alias_ttl_secs: f64,
    /// Per-request timeout towards the server, seconds.
    pub timeout_secs: f64,
    /// Log every agent run (`sextant run`) as a tracking run: params, metrics, the interaction.
    pub log_runs: bool,
    /// How long a resolved model alias (`models:/rag-agent@production`) is trusted, seconds.
    pub model_alias_ttl_secs: f64,
}

impl Default for TrackingConfig {
    fn default() -> Self {
        Self {
            uri: None,
            experiment: "Default".into(),
            token_env: "MLFLOW_TRACKING_TOKEN".into(),
            prompt_alias_ttl_secs: 60.0,
            timeout_secs: 30.0,
            log_runs: true,
            model_alias_ttl_secs: 60.0,
        }
    }
}

/// Where tracking and registries live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackingBackend {
    /// The embedded SQLite files in the data directory.
    Local,
    /// The MLflow tracking server at this URL.
    Mlflow(String),
}

impl TrackingConfig {
    /// The backend `uri` names; an error says what is wrong with it.
    pub fn backend(&self) -> Result<TrackingBackend, String> {
        match self.uri.as_deref().map(str::trim) {
            None | Some("" | "local") => Ok(TrackingBackend::Local),
            Some(uri) if uri.starts_with("http://") || uri.starts_with("https://") => {
                url::Url::parse(uri).map_err(|error| format!("`{uri}` is not a URL: {error}"))?;
                Ok(TrackingBackend::Mlflow(
                    uri.trim_end_matches('/').to_owned(),
                ))
            }
            Some(uri) => Err(format!(
                "`{uri}` is neither `local` nor an http(s) URL of an MLflow tracking server"
            )),
        }
    }

    /// Checks the values: an error is the key (under `tracking.`) and what is wrong with it.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.backend().map_err(|message| ("uri", message))?;
        if !(self.prompt_alias_ttl_secs >= 0.0 && self.prompt_alias_ttl_secs.is_finite()) {
            return Err((
                "prompt_alias_ttl_secs",
                format!(
                    "{} is not a number of seconds >= 0",
                    self.prompt_alias_ttl_secs
                ),
            ));
        }
        if !(self.model_alias_ttl_secs >= 0.0 && self.model_alias_ttl_secs.is_finite()) {
            return Err((
                "model_alias_ttl_secs",
                format!(
                    "{} is not a number of seconds >= 0",
                    self.model_alias_ttl_secs
                ),
            ));
        }
        if !(self.timeout_secs > 0.0 && self.timeout_secs.is_finite()) {
            return Err((
                "timeout_secs",
                format!("{} is not a number of seconds > 0", self.timeout_secs),
            ));
        }
        if self.experiment.trim().is_empty() {
            return Err(("experiment", "is empty".into()));
        }
        Ok(())
    }

    /// A client of the MLflow server, if the backend is one (the token read from `token_env`).
    pub fn mlflow_client(&self) -> Result<Option<MlflowClient>, String> {
        match self.backend()? {
            TrackingBackend::Local => Ok(None),
            TrackingBackend::Mlflow(uri) => {
                let token = std::env::var(&self.token_env).ok();
                MlflowClient::new(&uri, token, Duration::from_secs_f64(self.timeout_secs)).map(Some)
            }
        }
    }

    /// Where traces go when tracking is on MLflow and no OTLP endpoint is configured: the
    /// server's `/v1/traces`, with the experiment's id (resolved, or created, by name) and the
    /// bearer token as headers. `None` for the local backend.
    pub async fn mlflow_trace_export(&self) -> Result<Option<OtlpConfig>, String> {
        let Some(client) = self.mlflow_client()? else {
            return Ok(None);
        };
        let base_url = client.base_url().to_owned();
        let id = MlflowTrackingStore::new(client)
            .get_or_create_experiment(&self.experiment)
            .await
            .map_err(|error| format!("experiment `{}`: {error}", self.experiment))?;
        let mut export = OtlpConfig {
            traces_endpoint: Some(format!("{base_url}/v1/traces")),
            ..OtlpConfig::default()
        };
        export
            .traces_headers
            .insert(EXPERIMENT_ID_HEADER.into(), id);
        if let Some(token) = std::env::var(&self.token_env)
            .ok()
            .filter(|t| !t.is_empty())
        {
            export
                .traces_headers
                .insert("authorization".into(), format!("Bearer {token}"));
        }
        Ok(Some(export))
    }

    /// The tracking store of this backend (`data_dir/tracking.db` and `data_dir/artifacts` when
    /// local).
    pub fn tracking_store(&self, data_dir: &Path) -> Result<Arc<dyn TrackingStore>, TrackingError> {
        let client = self
            .mlflow_client()
            .map_err(|message| TrackingError::Invalid {
                what: "tracking.uri".into(),
                message,
            })?;
        Ok(match client {
            None => Arc::new(LocalTrackingStore::open(data_dir)?),
            Some(client) => Arc::new(MlflowTrackingStore::new(client)),
        })
    }

    /// A [`Tracker`] on this backend, spooling under `data_dir/spool`.
    pub fn tracker(&self, data_dir: &Path) -> Result<Tracker, TrackingError> {
        Ok(Tracker::new(
            self.tracking_store(data_dir)?,
            data_dir.join("spool"),
        ))
    }

    /// The model registry of this backend (`data_dir/registry.db` when local).
    pub fn model_registry(
        &self,
        data_dir: &Path,
    ) -> Result<Arc<dyn ModelRegistry>, ModelRegistryError> {
        let client = self
            .mlflow_client()
            .map_err(|message| ModelRegistryError::Invalid {
                what: "tracking.uri".into(),
                message,
            })?;
        Ok(match client {
            None => Arc::new(LocalModelRegistry::open(data_dir.join("registry.db"))?),
            Some(client) => Arc::new(MlflowModelRegistry::new(client)),
        })
    }

    /// The prompt registry of this backend (`data_dir/registry.db` when local), behind a cache
    /// whose aliases live `prompt_alias_ttl_secs`.
    pub fn prompt_registry(
        &self,
        data_dir: &Path,
    ) -> Result<Arc<CachedPromptRegistry>, RegistryError> {
        let invalid = |message: String| RegistryError::Invalid {
            what: "tracking.uri".into(),
            message,
        };
        let inner: Arc<dyn PromptRegistry> = match self.mlflow_client().map_err(invalid)? {
            None => Arc::new(LocalPromptRegistry::open(data_dir.join("registry.db"))?),
            Some(client) => Arc::new(MlflowPromptRegistry::new(client)),
        };
        Ok(Arc::new(CachedPromptRegistry::with_alias_ttl(
            inner,
            Duration::from_secs_f64(self.prompt_alias_ttl_secs),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_uri_selects_the_backend_and_bad_values_are_named() {
        let mut config = TrackingConfig::default();
        assert_eq!(config.backend().unwrap(), TrackingBackend::Local);
        config.uri = Some("http://127.0.0.1:5000/".into());
        assert_eq!(
            config.backend().unwrap(),
            TrackingBackend::Mlflow("http://127.0.0.1:5000".into())
        );
        config.uri = Some("sqlite:///x.db".into());
        assert_eq!(config.validate().unwrap_err().0, "uri");
        config.uri = None;
        config.prompt_alias_ttl_secs = -1.0;
        assert_eq!(config.validate().unwrap_err().0, "prompt_alias_ttl_secs");
    }
}
