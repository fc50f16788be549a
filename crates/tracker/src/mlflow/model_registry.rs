//! The MLflow Model Registry through its 2.0 REST API, as `MlflowClient` uses it: registered
//! models (prompts, which share the registry, are kept out), versions with a source and a run,
//! aliases, and stage transitions with `archive_existing_versions`.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{PagedSearch, RegistryFailure};
use super::wire::{WireAlias, WireTag, aliases_of, filter_literal, tag_list, tag_map};
use super::{MlflowClient, MlflowError};
use crate::model_registry::{
    ModelRegistry, ModelRegistryError, ModelVersion, NewModelVersion, RegisteredModel, Stage,
    validate_model_alias, validate_model_name,
};

const IS_PROMPT: &str = "mlflow.prompt.is_prompt";

/// Registered models on an MLflow server; see the [module docs](self).
#[derive(Debug)]
pub struct MlflowModelRegistry {
    client: MlflowClient,
}

#[derive(Deserialize)]
struct WireModel {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    creation_timestamp: i64,
    #[serde(default)]
    tags: Vec<WireTag>,
    #[serde(default)]
    aliases: Vec<WireAlias>,
    #[serde(default)]
    latest_versions: Vec<WireVersion>,
}

#[derive(Deserialize)]
struct WireVersion {
    name: String,
    version: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Vec<WireTag>,
    #[serde(default)]
    current_stage: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    creation_timestamp: i64,
}

#[derive(Deserialize)]
struct ModelAnswer {
    registered_model: WireModel,
}

#[derive(Deserialize)]
struct VersionAnswer {
    model_version: WireVersion,
}

impl WireModel {
    fn is_prompt(&self) -> bool {
        self.tags
            .iter()
            .any(|t| t.key == IS_PROMPT && t.value == "true")
    }
}

impl From<WireModel> for RegisteredModel {
    fn from(wire: WireModel) -> Self {
        Self {
            latest_version: wire
                .latest_versions
                .iter()
                .filter_map(|v| v.version.parse().ok())
                .max(),
            aliases: wire
                .aliases
                .into_iter()
                .filter_map(|a| Some((a.alias, a.version.parse().ok()?)))
                .collect(),
            name: wire.name,
            description: wire.description.filter(|d| !d.is_empty()),
            tags: tag_map(wire.tags),
            created_at_ms: wire.creation_timestamp,
        }
    }
}

impl WireVersion {
    fn into_version(self) -> Result<ModelVersion, ModelRegistryError> {
        let version = self
            .version
            .parse()
            .map_err(|_| ModelRegistryError::Backend {
                backend: "mlflow",
                message: format!(
                    "version `{}` of `{}` is not a number",
                    self.version, self.name
                ),
            })?;
        Ok(ModelVersion {
            name: self.name,
            version,
            source: self.source,
            run_id: self.run_id.filter(|r| !r.is_empty()),
            description: self.description.filter(|d| !d.is_empty()),
            tags: tag_map(self.tags),
            stage: self
                .current_stage
                .as_deref()
                .and_then(Stage::parse)
                .unwrap_or(Stage::None),
            aliases: self.aliases,
            created_at_ms: self.creation_timestamp,
        })
    }
}

impl MlflowModelRegistry {
    /// The registry of the server `client` talks to.
    pub fn new(client: MlflowClient) -> Self {
        Self { client }
    }

    fn error(
        &self,
        error: MlflowError,
        not_found: impl FnOnce() -> ModelRegistryError,
    ) -> ModelRegistryError {
        match error.into_registry_failure() {
            RegistryFailure::Unavailable { url, message } => ModelRegistryError::Unavailable {
                backend: "mlflow",
                location: url,
                message,
            },
            RegistryFailure::NotFound => not_found(),
            RegistryFailure::Refused { message } => ModelRegistryError::Invalid {
                what: format!("MLflow at {}", self.client.base_url()),
                message,
            },
            RegistryFailure::Other(error) => ModelRegistryError::Backend {
                backend: "mlflow",
                message: error.to_string(),
            },
        }
    }

    async fn wire_model(&self, name: &str) -> Result<WireModel, ModelRegistryError> {
        let answer: ModelAnswer = self
            .client
            .get(
                "api/2.0/mlflow/registered-models/get",
                &[("name", name.to_owned())],
            )
            .await
            .map_err(|e| self.error(e, || ModelRegistryError::model_not_found(name)))?;
        if answer.registered_model.is_prompt() {
            return Err(ModelRegistryError::Invalid {
                what: format!("model `{name}`"),
                message: "is a prompt in MLflow's registry (see `sextant prompts`)".into(),
            });
        }
        Ok(answer.registered_model)
    }
}

#[async_trait]
impl ModelRegistry for MlflowModelRegistry {
    fn backend(&self) -> &'static str {
        "mlflow"
    }

    async fn get_model(&self, name: &str) -> Result<RegisteredModel, ModelRegistryError> {
        Ok(self.wire_model(name).await?.into())
    }

    async fn list_models(&self) -> Result<Vec<RegisteredModel>, ModelRegistryError> {
        let search = PagedSearch::get(
            "api/2.0/mlflow/registered-models/search",
            "registered_models",
            vec![("filter", format!("tag.`{IS_PROMPT}` != 'true'"))],
            100,
        );
        let found: Vec<WireModel> = self
            .client
            .search_all(search)
            .await
            .map_err(|e| self.error(e, || ModelRegistryError::model_not_found("?")))?;
        let mut models: Vec<RegisteredModel> = found
            .into_iter()
            .filter(|m| !m.is_prompt())
            .map(RegisteredModel::from)
            .collect();
        models.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(models)
    }

    async fn create_version(
        &self,
        name: &str,
        new: NewModelVersion,
    ) -> Result<ModelVersion, ModelRegistryError> {
        validate_model_name(name)?;
        match self.wire_model(name).await {
            Ok(_) => {}
            Err(ModelRegistryError::NotFound { .. }) => {
                let created: Result<Value, MlflowError> = self
                    .client
                    .post(
                        "api/2.0/mlflow/registered-models/create",
                        &json!({ "name": name }),
                    )
                    .await;
                match created {
                    Ok(_) => {}
                    // Created by another writer in between (or a prompt took the name: checked next).
                    Err(error) if error.error_code() == Some("RESOURCE_ALREADY_EXISTS") => {
                        self.wire_model(name).await?;
                    }
                    Err(error) => {
                        return Err(self.error(error, || ModelRegistryError::model_not_found(name)));
                    }
                }
            }
            Err(error) => return Err(error),
        }
        let mut body = json!({ "name": name, "source": new.source, "tags": tag_list(&new.tags) });
        if let Some(run_id) = &new.run_id {
            body["run_id"] = json!(run_id);
        }
        if let Some(description) = &new.description {
            body["description"] = json!(description);
        }
        let answer: VersionAnswer = self
            .client
            .post("api/2.0/mlflow/model-versions/create", &body)
            .await
            .map_err(|e| self.error(e, || ModelRegistryError::model_not_found(name)))?;
        answer.model_version.into_version()
    }

    async fn get_version(
        &self,
        name: &str,
        version: u32,
    ) -> Result<ModelVersion, ModelRegistryError> {
        let answer: VersionAnswer = self
            .client
            .get(
                "api/2.0/mlflow/model-versions/get",
                &[("name", name.to_owned()), ("version", version.to_string())],
            )
            .await
            .map_err(|e| self.error(e, || ModelRegistryError::version_not_found(name, version)))?;
        let mut found = answer.model_version.into_version()?;
        if found.aliases.is_empty() {
            found.aliases = aliases_of(&self.wire_model(name).await?.aliases, version);
        }
        Ok(found)
    }

    async fn list_versions(&self, name: &str) -> Result<Vec<ModelVersion>, ModelRegistryError> {
        let model = self.wire_model(name).await?;
        let Some(name_literal) = filter_literal(name) else {
            return Err(ModelRegistryError::model_not_found(name));
        };
        let search = PagedSearch::get(
            "api/2.0/mlflow/model-versions/search",
            "model_versions",
            vec![("filter", format!("name = {name_literal}"))],
            1000,
        );
        let found: Vec<WireVersion> = self
            .client
            .search_all(search)
            .await
            .map_err(|e| self.error(e, || ModelRegistryError::model_not_found(name)))?;
        let mut versions = found
            .into_iter()
            .map(WireVersion::into_version)
            .collect::<Result<Vec<_>, _>>()?;
        for version in &mut versions {
            version.aliases = aliases_of(&model.aliases, version.version);
        }
        versions.sort_by_key(|v| v.version);
        Ok(versions)
    }

    async fn set_alias(
        &self,
        name: &str,
        alias: &str,
        version: u32,
    ) -> Result<(), ModelRegistryError> {
        validate_model_alias(alias)?;
        self.get_version(name, version).await?;
        let _: Value = self
            .client
            .post(
                "api/2.0/mlflow/registered-models/alias",
                &json!({ "name": name, "alias": alias, "version": version.to_string() }),
            )
            .await
            .map_err(|e| self.error(e, || ModelRegistryError::version_not_found(name, version)))?;
        Ok(())
    }

    async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), ModelRegistryError> {
        self.resolve_alias(name, alias).await?;
        let _: Value = self
            .client
            .delete(
                "api/2.0/mlflow/registered-models/alias",
                &json!({ "name": name, "alias": alias }),
            )
            .await
            .map_err(|e| self.error(e, || ModelRegistryError::model_not_found(name)))?;
        Ok(())
    }

    async fn resolve_alias(&self, name: &str, alias: &str) -> Result<u32, ModelRegistryError> {
        let answer: VersionAnswer = self
            .client
            .get(
                "api/2.0/mlflow/registered-models/alias",
                &[("name", name.to_owned()), ("alias", alias.to_owned())],
            )
            .await
            .map_err(|e| {
                self.error(e, || ModelRegistryError::NotFound {
                    what: format!("alias `{alias}` of model `{name}`"),
                })
            })?;
        Ok(answer.model_version.into_version()?.version)
    }

    async fn transition_stage(
        &self,
        name: &str,
        version: u32,
        stage: Stage,
        archive_existing: bool,
    ) -> Result<ModelVersion, ModelRegistryError> {
        let answer: VersionAnswer = self
            .client
            .post(
                "api/2.0/mlflow/model-versions/transition-stage",
                &json!({
                    "name": name,
                    "version": version.to_string(),
                    "stage": stage.as_str(),
                    "archive_existing_versions": archive_existing,
                }),
            )
            .await
            .map_err(|e| self.error(e, || ModelRegistryError::version_not_found(name, version)))?;
        let mut moved = answer.model_version.into_version()?;
        moved.aliases = self.get_version(name, version).await?.aliases;
        Ok(moved)
    }
}
