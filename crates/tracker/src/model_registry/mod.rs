//! The model registry: registered models with numbered versions (a source artifact, the run that
//! made it, tags, a description), mutable aliases and MLflow's legacy stages
//! (None → Staging → Production → Archived). In Sextant a model is usually an agent
//! configuration; `models:/rag-agent@production`, `models:/rag-agent/3` and
//! `models:/rag-agent/Production` name its versions.
//!
//! [`ModelRegistry`] is the API; [`crate::local::LocalModelRegistry`] (SQLite in the data dir) and
//! [`crate::mlflow::MlflowModelRegistry`] (an MLflow server, as the Python client's
//! `MlflowClient` uses it) implement it.

mod uri;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use uri::{ModelSelector, ModelUri};

/// A model version's stage (MLflow's legacy workflow; aliases are the newer one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// Not staged.
    None,
    /// Being validated.
    Staging,
    /// Serving.
    Production,
    /// Retired.
    Archived,
}

impl Stage {
    /// MLflow's name: `None`, `Staging`, `Production`, `Archived`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Staging => "Staging",
            Self::Production => "Production",
            Self::Archived => "Archived",
        }
    }

    /// Parses a stage name, case-insensitively.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_lowercase().as_str() {
            "none" => Self::None,
            "staging" => Self::Staging,
            "production" => Self::Production,
            "archived" => Self::Archived,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One version of a registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// The model's name.
    pub name: String,
    /// The version, from 1.
    pub version: u32,
    /// Where its files are (an artifact URI).
    pub source: String,
    /// The run that produced it.
    pub run_id: Option<String>,
    /// What it is.
    pub description: Option<String>,
    /// Version tags.
    pub tags: BTreeMap<String, String>,
    /// Its stage.
    pub stage: Stage,
    /// The aliases pointing at it.
    pub aliases: Vec<String>,
    /// When it was registered, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

impl ModelVersion {
    /// `models:/name/version`.
    pub fn uri(&self) -> ModelUri {
        ModelUri {
            name: self.name.clone(),
            selector: ModelSelector::Version(self.version),
        }
    }
}

/// A version to register.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewModelVersion {
    /// Where its files are.
    pub source: String,
    /// The run that produced it.
    pub run_id: Option<String>,
    /// What it is.
    pub description: Option<String>,
    /// Version tags.
    pub tags: BTreeMap<String, String>,
}

/// A registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    /// The unique name.
    pub name: String,
    /// What it is.
    pub description: Option<String>,
    /// Model tags.
    pub tags: BTreeMap<String, String>,
    /// The newest version, if any.
    pub latest_version: Option<u32>,
    /// Alias → version.
    pub aliases: BTreeMap<String, u32>,
    /// When it was created, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelRegistryError {
    /// The model, version, alias or stage has nothing.
    #[error("{what} does not exist")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// A name, alias or value is not acceptable.
    #[error("{what}: {message}")]
    Invalid {
        /// What was wrong.
        what: String,
        /// Why.
        message: String,
    },
    /// The backend cannot be reached or failed on its side.
    #[error("the {backend} model registry at {location} is unavailable: {message}")]
    Unavailable {
        /// `local` or `mlflow`.
        backend: &'static str,
        /// The file or URL.
        location: String,
        /// What happened.
        message: String,
    },
    /// Another failure.
    #[error("the {backend} model registry failed: {message}")]
    Backend {
        /// `local` or `mlflow`.
        backend: &'static str,
        /// What happened.
        message: String,
    },
}

impl ModelRegistryError {
    pub(crate) fn model_not_found(name: &str) -> Self {
        Self::NotFound {
            what: format!("registered model `{name}`"),
        }
    }

    pub(crate) fn version_not_found(name: &str, version: u32) -> Self {
        Self::NotFound {
            what: format!("version {version} of model `{name}`"),
        }
    }
}

/// Registered models and their versions.
#[async_trait]
pub trait ModelRegistry: Send + Sync {
    /// `local` or `mlflow`.
    fn backend(&self) -> &'static str;

    /// One model.
    async fn get_model(&self, name: &str) -> Result<RegisteredModel, ModelRegistryError>;

    /// Every model, by name.
    async fn list_models(&self) -> Result<Vec<RegisteredModel>, ModelRegistryError>;

    /// Registers the next version of `name`, creating the model if needed.
    async fn create_version(
        &self,
        name: &str,
        version: NewModelVersion,
    ) -> Result<ModelVersion, ModelRegistryError>;

    /// One version.
    async fn get_version(
        &self,
        name: &str,
        version: u32,
    ) -> Result<ModelVersion, ModelRegistryError>;

    /// Every version of `name`, oldest first.
    async fn list_versions(&self, name: &str) -> Result<Vec<ModelVersion>, ModelRegistryError>;

    /// Points `alias` at `version`.
    async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: u32,
    ) -> Result<(), ModelRegistryError>;

    /// Removes `alias`.
    async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), ModelRegistryError>;

    /// The version `alias` points at.
    async fn resolve_alias(&self, name: &str, alias: &str) -> Result<u32, ModelRegistryError>;

    /// Moves `version` to `stage`; with `archive_existing`, the versions already in that stage
    /// (Staging or Production) move to Archived.
    async fn transition_stage(
        &self,
        name: &str,
        version: u32,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<ModelVersion, ModelRegistryError>;

    /// The version `uri` names: an exact version, an alias, the newest in a stage, or the newest.
    async fn resolve(&self, uri: &ModelUri) -> Result<ModelVersion, ModelRegistryError> {
        let version = match &uri.selector {
            ModelSelector::Version(version) => *version,
            ModelSelector::Alias(alias) => self.resolve_alias(&uri.name, alias).await?,
            ModelSelector::Latest => {
                self.get_model(&uri.name)
                    .await?
                    .latest_version
                    .ok_or_else(|| ModelRegistryError::NotFound {
                        what: format!("a version of model `{}`", uri.name),
                    })?
            }
            ModelSelector::Stage(stage) => self
                .list_versions(&uri.name)
                .await?
                .into_iter()
                .filter(|v| v.stage == *stage)
                .map(|v| v.version)
                .max()
                .ok_or_else(|| ModelRegistryError::NotFound {
                    what: format!("a {stage} version of model `{}`", uri.name),
                })?,
        };
        self.get_version(&uri.name, version).await
    }
}

/// Checks a model name (what both backends and URIs accept).
pub fn validate_model_name(name: &str) -> Result<(), ModelRegistryError> {
    crate::prompts::validate_prompt_name(name).map_err(|error| ModelRegistryError::Invalid {
        what: format!("model name `{name}`"),
        message: error.to_string().replace("prompt name", "model name"),
    })
}

/// Checks an alias: like a name, not `latest`, not a number. (`@production` and `/Production`
/// differ by their separator, so an alias may share a stage's name.)
pub fn validate_model_alias(alias: &str) -> Result<(), ModelRegistryError> {
    crate::prompts::validate_alias(alias).map_err(|error| ModelRegistryError::Invalid {
        what: format!("alias `{alias}`"),
        message: error.to_string(),
    })
}
