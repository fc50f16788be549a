//! `[tracking]`: where runs and registries live — the embedded SQLite files in the data directory,
//! or an MLflow tracking server (`SEXTANT_TRACKING_URI=http://127.0.0.1:5000`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::OtlpConfig;
use crate::conventions::{UrlParts, shown_url};
use crate::local::LocalPromptRegistry;
use crate::local::{LocalModelRegistry, LocalTrackingStore};
#[cfg(feature = "mlflow")]
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

/// Stands in for the MLflow client in a build without the `mlflow` feature: no value exists, so
/// [`TrackingConfig::mlflow_client`] can only answer `None` or an error naming the feature.
#[cfg(not(feature = "mlflow"))]
#[derive(Debug)]
pub enum MlflowClient {}

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
        // The URI may carry `user:password@` for the server's basic auth: errors show it without.
        let shown = |uri: &str| shown_url(uri, UrlParts::Location);
        match self.uri.as_deref().map(str::trim) {
            None | Some("" | "local") => Ok(TrackingBackend::Local),
            Some(uri) if uri.starts_with("http://") || uri.starts_with("https://") => {
                url::Url::parse(uri)
                    .map_err(|error| format!("`{}` is not a URL: {error}", shown(uri)))?;
                Ok(TrackingBackend::Mlflow(
                    uri.trim_end_matches('/').to_owned(),
                ))
            }
            Some(uri) => Err(format!(
                "`{}` is neither `local` nor an http(s) URL of an MLflow tracking server",
                shown(uri)
            )),
        }
    }

    /// Checks the values: an error is the key (under `tracking.`) and what is wrong with it.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.backend().map_err(|message| ("uri", message))?;
        // `Duration` holds up to ~1.8e19 s: a larger value would not be a timeout but a panic.
        let fits = |seconds: f64| Duration::try_from_secs_f64(seconds).is_ok();
        if !(self.prompt_alias_ttl_secs >= 0.0 && fits(self.prompt_alias_ttl_secs)) {
            return Err((
                "prompt_alias_ttl_secs",
                format!(
                    "{} is not a number of seconds >= 0 that fits a duration",
                    self.prompt_alias_ttl_secs
                ),
            ));
        }
        if !(self.model_alias_ttl_secs >= 0.0 && fits(self.model_alias_ttl_secs)) {
            return Err((
                "model_alias_ttl_secs",
                format!(
                    "{} is not a number of seconds >= 0 that fits a duration",
                    self.model_alias_ttl_secs
                ),
            ));
        }
        if !(self.timeout_secs > 0.0 && fits(self.timeout_secs)) {
            return Err((
                "timeout_secs",
                format!(
                    "{} is not a number of seconds > 0 that fits a duration",
                    self.timeout_secs
                ),
            ));
        }
        if self.experiment.trim().is_empty() {
            return Err(("experiment", "is empty".into()));
        }
        Ok(())
    }

    /// How long a resolved model alias is trusted (`model_alias_ttl_secs`).
    pub fn model_alias_ttl(&self) -> Duration {
        seconds(self.model_alias_ttl_secs)
    }

    /// A client of the MLflow server, if the backend is one (the token read from `token_env`).
    pub fn mlflow_client(&self) -> Result<Option<MlflowClient>, String> {
        match self.backend()? {
            TrackingBackend::Local => Ok(None),
            #[cfg(feature = "mlflow")]
            TrackingBackend::Mlflow(uri) => {
                let token = std::env::var(&self.token_env).ok();
                MlflowClient::new(&uri, token, seconds(self.timeout_secs)).map(Some)
            }
            #[cfg(not(feature = "mlflow"))]
            TrackingBackend::Mlflow(uri) => Err(format!(
                "`{}` is an MLflow tracking server, but this build of sextant-tracker has no \
                 `mlflow` feature (rebuild with `--features mlflow`, or leave `tracking.uri` unset \
                 for the embedded store)",
                shown_url(&uri, UrlParts::Location)
            )),
        }
    }

    /// Where traces go when tracking is on MLflow and no OTLP endpoint is configured: the
    /// server's `/v1/traces`, with the experiment's id (resolved, or created, by name) and the
    /// bearer token as headers. `None` for the local backend.
    pub async fn mlflow_trace_export(&self) -> Result<Option<OtlpConfig>, String> {
        let Some(client) = self.mlflow_client()? else {
            return Ok(None);
        };
        #[cfg(not(feature = "mlflow"))]
        match client {}
        #[cfg(feature = "mlflow")]
        self.trace_export_to(client).await.map(Some)
    }

    #[cfg(feature = "mlflow")]
    async fn trace_export_to(&self, client: MlflowClient) -> Result<OtlpConfig, String> {
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
        Ok(export)
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
            #[cfg(feature = "mlflow")]
            Some(client) => Arc::new(MlflowTrackingStore::new(client)),
            #[cfg(not(feature = "mlflow"))]
            Some(never) => match never {},
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
            #[cfg(feature = "mlflow")]
            Some(client) => Arc::new(MlflowModelRegistry::new(client)),
            #[cfg(not(feature = "mlflow"))]
            Some(never) => match never {},
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
            #[cfg(feature = "mlflow")]
            Some(client) => Arc::new(MlflowPromptRegistry::new(client)),
            #[cfg(not(feature = "mlflow"))]
            Some(never) => match never {},
        };
        Ok(Arc::new(CachedPromptRegistry::with_alias_ttl(
            inner,
            seconds(self.prompt_alias_ttl_secs),
        )))
    }
}

/// `value` seconds as a [`Duration`] without panicking on what [`TrackingConfig::validate`]
/// refuses: a negative or NaN value is zero, one too large for a `Duration` is its maximum.
fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::MAX)
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

    #[test]
    fn seconds_beyond_what_a_duration_holds_are_refused_with_their_key() {
        // What `SEXTANT_TRACKING__TIMEOUT_SECS=1e20` sets.
        let mut config = TrackingConfig {
            timeout_secs: 1e20,
            ..TrackingConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().0, "timeout_secs");
        config.timeout_secs = 30.0;
        config.prompt_alias_ttl_secs = 1e20;
        assert_eq!(config.validate().unwrap_err().0, "prompt_alias_ttl_secs");
        config.prompt_alias_ttl_secs = 60.0;
        config.model_alias_ttl_secs = f64::MAX;
        assert_eq!(config.validate().unwrap_err().0, "model_alias_ttl_secs");
        // Used without validation, such a value is a long wait, not a panic.
        assert_eq!(config.model_alias_ttl(), Duration::MAX);
        assert_eq!(seconds(f64::NAN), Duration::ZERO);
        assert_eq!(seconds(-1.0), Duration::ZERO);
    }
}
