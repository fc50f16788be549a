//! The MLflow Prompt Registry, as the Python client (`mlflow.genai.register_prompt`,
//! `load_prompt`, `set_prompt_alias`, `search_prompts`) writes and reads it:
//!
//! - a prompt is a registered model tagged `mlflow.prompt.is_prompt=true`;
//! - a version is a model version with source `dummy-source`, the commit message as its
//!   description, and tags `mlflow.prompt.is_prompt`, `_mlflow_prompt_type` (`text`/`chat`),
//!   `mlflow.prompt.text` (a chat template as a JSON list, serialized like Python's `json.dumps`),
//!   `_mlflow_prompt_response_format` and `_mlflow_prompt_model_config` (JSON);
//! - user tags go on the version and on the prompt, as the Python client does;
//! - aliases are registered-model aliases; the server resolves `latest`;
//! - a trace is linked with `traces/link-prompts` (what `prompt = "name/3"` trace searches use) and
//!   the `mlflow.linkedPrompts` trace tag (what `mlflow.get_trace(…).info.tags` shows).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{PagedSearch, RegistryFailure};
use super::wire::{WireAlias, WireTag, aliases_of, filter_literal, tag_list};
use super::{MlflowClient, MlflowError};
use crate::prompts::{
    NewPromptVersion, PromptFilter, PromptInfo, PromptRegistry, PromptTemplate, PromptVersion,
    PromptVersionRef, RegistryError, validate_alias, validate_prompt_name,
};
use crate::python_json::{python_json, write_python_string};

const IS_PROMPT: &str = "mlflow.prompt.is_prompt";
const PROMPT_TEXT: &str = "mlflow.prompt.text";
const PROMPT_TYPE: &str = "_mlflow_prompt_type";
const RESPONSE_FORMAT: &str = "_mlflow_prompt_response_format";
const MODEL_CONFIG: &str = "_mlflow_prompt_model_config";
/// The placeholder source the Python client gives prompt versions (the server accepts only it
/// and `prompt-template` for prompts).
const PROMPT_SOURCE: &str = "dummy-source";
/// The trace tag listing the prompt versions a trace used.
const LINKED_PROMPTS_TAG: &str = "mlflow.linkedPrompts";

/// Tags the registry keeps for itself: not shown as user tags.
fn is_reserved_tag(key: &str) -> bool {
    key.starts_with("mlflow.prompt.") || key.starts_with("_mlflow_")
}

/// Prompts on an MLflow tracking server; see the [module docs](self).
#[derive(Debug)]
pub struct MlflowPromptRegistry {
    client: MlflowClient,
}

impl MlflowPromptRegistry {
    /// The registry of the server `client` talks to.
    pub fn new(client: MlflowClient) -> Self {
        Self { client }
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        self.client.base_url()
    }

    fn error(
        &self,
        error: MlflowError,
        not_found: impl FnOnce() -> RegistryError,
    ) -> RegistryError {
        match error.into_registry_failure() {
            RegistryFailure::Unavailable { url, message } => RegistryError::Unavailable {
                backend: "mlflow",
                location: url,
                message,
            },
            RegistryFailure::NotFound => not_found(),
            RegistryFailure::Refused { message } => RegistryError::Invalid {
                what: format!("MLflow at {}", self.client.base_url()),
                message,
            },
            RegistryFailure::Other(error) => RegistryError::Backend {
                backend: "mlflow",
                message: error.to_string(),
            },
        }
    }

    /// The registered model `name`, which must be a prompt.
    async fn registered_prompt(&self, name: &str) -> Result<WireRegisteredModel, RegistryError> {
        let answer: RegisteredModelAnswer = self
            .client
            .get(
                "api/2.0/mlflow/registered-models/get",
                &[("name", name.to_owned())],
            )
            .await
            .map_err(|e| self.error(e, || RegistryError::prompt_not_found(name)))?;
        let model = answer.registered_model;
        if !model.is_prompt() {
            return Err(RegistryError::Invalid {
                what: format!("prompt `{name}`"),
                message: format!(
                    "MLflow at {} has a registered model of that name that is not a prompt",
                    self.client.base_url()
                ),
            });
        }
        Ok(model)
    }
}

#[derive(Deserialize)]
struct RegisteredModelAnswer {
    registered_model: WireRegisteredModel,
}

#[derive(Deserialize)]
struct WireRegisteredModel {
    name: String,
    #[serde(default)]
    creation_timestamp: i64,
    #[serde(default)]
    tags: Vec<WireTag>,
    #[serde(default)]
    aliases: Vec<WireAlias>,
    #[serde(default)]
    latest_versions: Vec<WireModelVersion>,
}

#[derive(Deserialize)]
struct ModelVersionAnswer {
    model_version: WireModelVersion,
}

#[derive(Deserialize)]
struct WireModelVersion {
    name: String,
    version: String,
    #[serde(default)]
    creation_timestamp: i64,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    tags: Vec<WireTag>,
    #[serde(default)]
    aliases: Vec<String>,
}

impl WireRegisteredModel {
    fn is_prompt(&self) -> bool {
        self.tags
            .iter()
            .any(|t| t.key == IS_PROMPT && t.value == "true")
    }

    fn info(self) -> PromptInfo {
        let latest_version = self
            .latest_versions
            .iter()
            .filter_map(|v| v.version.parse().ok())
            .max();
        PromptInfo {
            name: self.name,
            tags: user_tags(self.tags),
            latest_version,
            aliases: self
                .aliases
                .into_iter()
                .filter_map(|a| Some((a.alias, a.version.parse().ok()?)))
                .collect(),
            created_at_ms: self.creation_timestamp,
        }
    }
}

fn user_tags(tags: Vec<WireTag>) -> BTreeMap<String, String> {
    tags.into_iter()
        .filter(|t| !is_reserved_tag(&t.key))
        .map(|t| (t.key, t.value))
        .collect()
}

impl WireModelVersion {
    fn into_version(self) -> Result<PromptVersion, RegistryError> {
        let invalid = |message: String| RegistryError::Invalid {
            what: format!(
                "version {} of prompt `{}` on MLflow",
                self.version, self.name
            ),
            message,
        };
        let tag = |key: &str| {
            self.tags
                .iter()
                .find(|t| t.key == key)
                .map(|t| t.value.as_str())
        };
        if tag(IS_PROMPT) != Some("true") {
            return Err(invalid("is a model version, not a prompt version".into()));
        }
        let text =
            tag(PROMPT_TEXT).ok_or_else(|| invalid(format!("has no `{PROMPT_TEXT}` tag")))?;
        let template = PromptTemplate::from_stored_string(tag(PROMPT_TYPE).unwrap_or("text"), text)
            .map_err(invalid)?;
        let json_tag = |key: &str| -> Result<Option<Value>, RegistryError> {
            tag(key)
                .map(|text| {
                    serde_json::from_str(text).map_err(|e| invalid(format!("tag `{key}`: {e}")))
                })
                .transpose()
        };
        let response_format = json_tag(RESPONSE_FORMAT)?;
        let model_config = json_tag(MODEL_CONFIG)?;
        let version = self
            .version
            .parse()
            .map_err(|_| invalid("the version is not a number".into()))?;
        Ok(PromptVersion {
            name: self.name,
            version,
            template,
            commit_message: self.description.filter(|d| !d.is_empty()),
            tags: user_tags(self.tags),
            response_format,
            model_config,
            created_at_ms: self.creation_timestamp,
            aliases: self.aliases,
        })
    }
}

#[async_trait]
impl PromptRegistry for MlflowPromptRegistry {
    fn backend(&self) -> &'static str {
        "mlflow"
    }

    async fn register(
        &self,
        name: &str,
        version: NewPromptVersion,
    ) -> Result<PromptVersion, RegistryError> {
        validate_prompt_name(name)?;
        version.template.validate()?;
        match self.registered_prompt(name).await {
            Ok(_) => {
                for (key, value) in &version.tags {
                    self.set_prompt_tag(name, key, value).await?;
                }
            }
            Err(RegistryError::NotFound { .. }) => {
                let mut tags = vec![(IS_PROMPT.to_owned(), "true".to_owned())];
                tags.extend(version.tags.clone());
                let mut body = json!({ "name": name, "tags": tag_list(tags) });
                if let Some(message) = &version.commit_message {
                    body["description"] = json!(message);
                }
                let created: Result<Value, _> = self
                    .client
                    .post("api/2.0/mlflow/registered-models/create", &body)
                    .await;
                match created {
                    Ok(_) => {}
                    // Another writer created it first: register the version under it.
                    Err(error) if error.error_code() == Some("RESOURCE_ALREADY_EXISTS") => {
                        self.registered_prompt(name).await?;
                    }
                    Err(error) => {
                        return Err(self.error(error, || RegistryError::prompt_not_found(name)));
                    }
                }
            }
            Err(error) => return Err(error),
        }
        let mut tags: Vec<(String, String)> = version.tags.clone().into_iter().collect();
        tags.push((IS_PROMPT.into(), "true".into()));
        tags.push((PROMPT_TYPE.into(), version.template.kind().into()));
        tags.push((PROMPT_TEXT.into(), stored_template(&version.template)));
        if let Some(format) = &version.response_format {
            tags.push((RESPONSE_FORMAT.into(), python_json(format)));
        }
        if let Some(config) = &version.model_config {
            tags.push((MODEL_CONFIG.into(), python_json(config)));
        }
        let mut body = json!({ "name": name, "source": PROMPT_SOURCE, "tags": tag_list(tags) });
        if let Some(message) = &version.commit_message {
            body["description"] = json!(message);
        }
        let answer: ModelVersionAnswer = self
            .client
            .post("api/2.0/mlflow/model-versions/create", &body)
            .await
            .map_err(|e| self.error(e, || RegistryError::prompt_not_found(name)))?;
        answer.model_version.into_version()
    }

    async fn get_version(&self, name: &str, version: u32) -> Result<PromptVersion, RegistryError> {
        let answer: ModelVersionAnswer = self
            .client
            .get(
                "api/2.0/mlflow/model-versions/get",
                &[("name", name.to_owned()), ("version", version.to_string())],
            )
            .await
            .map_err(|e| self.error(e, || RegistryError::version_not_found(name, version)))?;
        let mut found = answer.model_version.into_version()?;
        // model-versions/get does not list aliases; the registered model does.
        if found.aliases.is_empty() {
            found.aliases = aliases_of(&self.registered_prompt(name).await?.aliases, version);
        }
        Ok(found)
    }

    async fn resolve_alias(&self, name: &str, alias: &str) -> Result<u32, RegistryError> {
        let answer: ModelVersionAnswer = self
            .client
            .get(
                "api/2.0/mlflow/registered-models/alias",
                &[("name", name.to_owned()), ("alias", alias.to_owned())],
            )
            .await
            .map_err(|e| {
                self.error(e, || {
                    if alias == crate::prompts::LATEST {
                        RegistryError::prompt_not_found(name)
                    } else {
                        RegistryError::alias_not_found(name, alias)
                    }
                })
            })?;
        Ok(answer.model_version.into_version()?.version)
    }

    async fn set_alias(&self, name: &str, alias: &str, version: u32) -> Result<(), RegistryError> {
        validate_alias(alias)?;
        // The server would point an alias at a version that does not exist; refuse that here.
        self.get_version(name, version).await?;
        let _: Value = self
            .client
            .post(
                "api/2.0/mlflow/registered-models/alias",
                &json!({ "name": name, "alias": alias, "version": version.to_string() }),
            )
            .await
            .map_err(|e| self.error(e, || RegistryError::version_not_found(name, version)))?;
        Ok(())
    }

    async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), RegistryError> {
        // The server deletes a missing alias silently; report it like the local registry does.
        self.resolve_alias(name, alias).await?;
        let _: Value = self
            .client
            .delete(
                "api/2.0/mlflow/registered-models/alias",
                &json!({ "name": name, "alias": alias }),
            )
            .await
            .map_err(|e| self.error(e, || RegistryError::alias_not_found(name, alias)))?;
        Ok(())
    }

    async fn set_prompt_tag(
        &self,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), RegistryError> {
        if is_reserved_tag(key) {
            return Err(RegistryError::Invalid {
                what: format!("tag `{key}`"),
                message: "keys starting with `mlflow.prompt.` or `_mlflow_` are the registry's"
                    .into(),
            });
        }
        let _: Value = self
            .client
            .post(
                "api/2.0/mlflow/registered-models/set-tag",
                &json!({ "name": name, "key": key, "value": value }),
            )
            .await
            .map_err(|e| self.error(e, || RegistryError::prompt_not_found(name)))?;
        Ok(())
    }

    async fn get_prompt(&self, name: &str) -> Result<PromptInfo, RegistryError> {
        Ok(self.registered_prompt(name).await?.info())
    }

    async fn search(&self, filter: &PromptFilter) -> Result<Vec<PromptInfo>, RegistryError> {
        let mut clauses = vec![format!("tags.`{IS_PROMPT}` = 'true'")];
        if let Some(needle) = filter
            .name_contains
            .as_deref()
            .and_then(|n| filter_literal(&format!("%{n}%")))
        {
            clauses.push(format!("name ILIKE {needle}"));
        }
        for (key, value) in &filter.tags {
            if let Some(value) = filter_literal(value)
                && !key.contains('`')
            {
                clauses.push(format!("tags.`{key}` = {value}"));
            }
        }
        let search = PagedSearch::get(
            "api/2.0/mlflow/registered-models/search",
            "registered_models",
            vec![("filter", clauses.join(" AND "))],
            100,
        );
        let models: Vec<WireRegisteredModel> = self
            .client
            .search_all(search)
            .await
            .map_err(|e| self.error(e, || RegistryError::prompt_not_found("?")))?;
        let mut found: Vec<PromptInfo> = models
            .into_iter()
            .filter(WireRegisteredModel::is_prompt)
            .map(WireRegisteredModel::info)
            .filter(|info| filter.matches(info))
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    async fn list_versions(&self, name: &str) -> Result<Vec<PromptVersion>, RegistryError> {
        let model = self.registered_prompt(name).await?;
        let Some(name_literal) = filter_literal(name) else {
            return Err(RegistryError::prompt_not_found(name));
        };
        let search = PagedSearch::get(
            "api/2.0/mlflow/model-versions/search",
            "model_versions",
            vec![
                (
                    "filter",
                    format!("name = {name_literal} AND tag.`{IS_PROMPT}` = 'true'"),
                ),
                ("order_by", "version_number DESC".to_owned()),
            ],
            100,
        );
        let found: Vec<WireModelVersion> = self
            .client
            .search_all(search)
            .await
            .map_err(|e| self.error(e, || RegistryError::prompt_not_found(name)))?;
        let mut versions = found
            .into_iter()
            .map(WireModelVersion::into_version)
            .collect::<Result<Vec<_>, _>>()?;
        for version in &mut versions {
            version.aliases = aliases_of(&model.aliases, version.version);
        }
        versions.sort_by_key(|v| v.version);
        Ok(versions)
    }

    async fn link_trace(
        &self,
        trace_id: &str,
        versions: &[PromptVersionRef],
    ) -> Result<(), RegistryError> {
        if versions.is_empty() {
            return Ok(());
        }
        let mlflow_id = mlflow_trace_id(trace_id)?;
        let refs: Vec<Value> = versions
            .iter()
            .map(|v| json!({ "name": v.name, "version": v.version.to_string() }))
            .collect();
        let body = json!({ "trace_id": mlflow_id, "prompt_versions": refs });
        // The trace arrives over OTLP, possibly a moment after the turn ends: wait for it briefly.
        let _: Value = self
            .client
            .post_once_found("api/2.0/mlflow/traces/link-prompts", &body)
            .await
            .map_err(|error| {
                self.error(error, || RegistryError::NotFound {
                    what: format!("trace {mlflow_id} on MLflow at {}", self.client.base_url()),
                })
            })?;
        // The tag Python shows (`get_trace(…).info.tags`), merged with what is there.
        let trace: Value = self
            .client
            .get(
                &format!("api/3.0/mlflow/traces/{mlflow_id}"),
                &[("trace_id", mlflow_id.clone())],
            )
            .await
            .map_err(|e| {
                self.error(e, || RegistryError::NotFound {
                    what: format!("trace {mlflow_id}"),
                })
            })?;
        let existing = trace["trace"]["trace_info"]["tags"][LINKED_PROMPTS_TAG]
            .as_str()
            .and_then(|text| serde_json::from_str::<Vec<Value>>(text).ok())
            .unwrap_or_default();
        let mut merged = existing.clone();
        for reference in refs {
            if !merged.contains(&reference) {
                merged.push(reference);
            }
        }
        if merged != existing {
            let _: Value = self
                .client
                .patch(
                    &format!("api/2.0/mlflow/traces/{mlflow_id}/tags"),
                    &json!({ "key": LINKED_PROMPTS_TAG, "value": python_json(&Value::Array(merged)) }),
                )
                .await
                .map_err(|e| {
                    self.error(e, || RegistryError::NotFound {
                        what: format!("trace {mlflow_id}"),
                    })
                })?;
        }
        Ok(())
    }
}

/// MLflow's id of an OTLP-ingested trace: `tr-` and the 32 hex digits of the OpenTelemetry id.
pub fn mlflow_trace_id(trace_id: &str) -> Result<String, RegistryError> {
    let hex = trace_id.strip_prefix("tr-").unwrap_or(trace_id);
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RegistryError::Invalid {
            what: format!("trace id `{trace_id}`"),
            message: "must be 32 hexadecimal digits (optionally prefixed with `tr-`)".into(),
        });
    }
    Ok(format!("tr-{}", hex.to_ascii_lowercase()))
}

/// The template as the Python client stores it in `mlflow.prompt.text`.
fn stored_template(template: &PromptTemplate) -> String {
    match template {
        PromptTemplate::Text(text) => text.clone(),
        // Written by hand: a JSON map would sort the keys, Python keeps role before content.
        PromptTemplate::Chat(messages) => {
            let mut out = String::from("[");
            for (i, message) in messages.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str("{\"role\": ");
                write_python_string(&message.role, &mut out);
                out.push_str(", \"content\": ");
                write_python_string(&message.content, &mut out);
                out.push('}');
            }
            out.push(']');
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_templates_are_stored_the_way_python_writes_them() {
        let chat = PromptTemplate::chat([crate::prompts::ChatMessageTemplate::new(
            "user",
            "Héllo {{ name }} 🎉 \"q\"",
        )]);
        assert_eq!(
            stored_template(&chat),
            r#"[{"role": "user", "content": "H\u00e9llo {{ name }} \ud83c\udf89 \"q\""}]"#
        );
        assert_eq!(
            PromptTemplate::from_stored_string("chat", &stored_template(&chat)).unwrap(),
            chat
        );
    }

    #[test]
    fn trace_ids_become_mlflow_ids() {
        assert_eq!(
            mlflow_trace_id("0123456789ABCDEF0123456789abcdef").unwrap(),
            "tr-0123456789abcdef0123456789abcdef"
        );
        assert!(mlflow_trace_id("tr-xyz").is_err());
    }
}
