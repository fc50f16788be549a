//! The prompt registry: named prompts with immutable, numbered versions and mutable aliases.
//!
//! [`PromptRegistry`] is the API; [`crate::local::LocalPromptRegistry`] (SQLite in the data dir) and
//! [`crate::mlflow::MlflowPromptRegistry`] (an MLflow tracking server, wire-compatible with the
//! Python client's `mlflow.genai.register_prompt` / `load_prompt`) implement it, and
//! [`CachedPromptRegistry`] puts a cache in front of either. A prompt is named by a [`PromptUri`]:
//! `prompts:/qa-prompt/3` (a version) or `prompts:/qa-prompt@production` (an alias; `latest` is
//! the newest version).
//!
//! ```
//! # async fn demo() -> Result<(), sextant_tracker::prompts::RegistryError> {
//! use sextant_tracker::local::LocalPromptRegistry;
//! use sextant_tracker::prompts::{NewPromptVersion, PromptRegistry, PromptTemplate, PromptUri};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let registry = LocalPromptRegistry::open(dir.path().join("registry.db"))?;
//! let v1 = registry
//!     .register("qa-prompt", NewPromptVersion::new(PromptTemplate::text("Answer: {{ question }}"))
//!         .commit_message("first"))
//!     .await?;
//! registry.set_alias("qa-prompt", "production", v1.version).await?;
//! let prompt = registry.load(&"prompts:/qa-prompt@production".parse::<PromptUri>()?).await?;
//! let rendered = prompt.render(&serde_json::json!({ "question": "Why?" }))?;
//! assert_eq!(rendered.text(), "Answer: Why?");
//! # Ok(()) }
//! ```

mod cache;
mod diff;
mod files;
mod template;
mod uri;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use cache::CachedPromptRegistry;
pub use diff::unified_diff;
pub use files::{
    PromptFile, PromptFileVersion, PushReport, PushedVersion, load_prompt_files, push,
};
pub use template::{
    ChatMessageTemplate, PromptTemplate, RenderedContent, RenderedMessage, RenderedPrompt,
    TemplateError,
};
pub use uri::{PromptSelector, PromptUri};

/// The alias every prompt has implicitly: its newest version.
pub const LATEST: &str = "latest";

/// One immutable version of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptVersion {
    /// The prompt's name.
    pub name: String,
    /// The version number, from 1.
    pub version: u32,
    /// The template.
    pub template: PromptTemplate,
    /// Why this version was made.
    pub commit_message: Option<String>,
    /// Version tags.
    pub tags: BTreeMap<String, String>,
    /// The structured output the prompt expects (a JSON schema), if any.
    pub response_format: Option<serde_json::Value>,
    /// Model settings that go with the prompt (model name, temperature …), if any.
    pub model_config: Option<serde_json::Value>,
    /// When it was registered, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// The aliases pointing at this version when it was read.
    pub aliases: Vec<String>,
}

impl PromptVersion {
    /// This version's URI, `prompts:/name/version`.
    pub fn uri(&self) -> PromptUri {
        PromptUri::version(&self.name, self.version)
    }

    /// Renders the template with `variables` (strict: a variable the template uses but
    /// `variables` lacks is an error naming it). The result remembers this name and version.
    pub fn render(&self, variables: &impl Serialize) -> Result<RenderedPrompt, TemplateError> {
        self.template
            .render(variables)
            .map(|content| RenderedPrompt {
                name: self.name.clone(),
                version: self.version,
                content,
            })
            .map_err(|error| error.in_prompt(&self.name, self.version))
    }

    /// Whether `other` would be the same version if registered: same template, response format
    /// and model config (commit message and tags do not count).
    pub fn same_content(&self, other: &NewPromptVersion) -> bool {
        self.template == other.template
            && self.response_format == other.response_format
            && self.model_config == other.model_config
    }

    /// The name and version, for recording which version produced a trace or a run.
    pub fn reference(&self) -> PromptVersionRef {
        PromptVersionRef {
            name: self.name.clone(),
            version: self.version,
        }
    }
}

/// A version to register.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NewPromptVersion {
    /// The template.
    pub template: PromptTemplate,
    /// Why this version is made.
    pub commit_message: Option<String>,
    /// Version tags.
    pub tags: BTreeMap<String, String>,
    /// The structured output the prompt expects (a JSON schema).
    pub response_format: Option<serde_json::Value>,
    /// Model settings that go with the prompt.
    pub model_config: Option<serde_json::Value>,
}

impl NewPromptVersion {
    /// A version with this template and nothing else.
    pub fn new(template: PromptTemplate) -> Self {
        Self {
            template,
            ..Self::default()
        }
    }

    /// With a commit message.
    pub fn commit_message(mut self, message: impl Into<String>) -> Self {
        self.commit_message = Some(message.into());
        self
    }

    /// With a tag.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(key.into(), value.into());
        self
    }
}

/// A prompt: its name, tags and where its aliases point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptInfo {
    /// The name.
    pub name: String,
    /// Prompt-level tags.
    pub tags: BTreeMap<String, String>,
    /// The newest version, if any was registered.
    pub latest_version: Option<u32>,
    /// Alias → version.
    pub aliases: BTreeMap<String, u32>,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_at_ms: i64,
}

/// A prompt name and version: what a trace or a run records about the prompt it used.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PromptVersionRef {
    /// The prompt.
    pub name: String,
    /// The version.
    pub version: u32,
}

impl std::fmt::Display for PromptVersionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", PromptUri::version(&self.name, self.version))
    }
}

/// Which prompts [`PromptRegistry::search`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromptFilter {
    /// Names containing this text (case-insensitive).
    pub name_contains: Option<String>,
    /// Prompt tags that must have these values.
    pub tags: BTreeMap<String, String>,
}

impl PromptFilter {
    /// Whether `info` passes.
    pub fn matches(&self, info: &PromptInfo) -> bool {
        let name_ok = self
            .name_contains
            .as_ref()
            .is_none_or(|needle| info.name.to_lowercase().contains(&needle.to_lowercase()));
        name_ok
            && self
                .tags
                .iter()
                .all(|(key, value)| info.tags.get(key) == Some(value))
    }
}

/// Why a registry operation failed. The message names the prompt, version or alias involved.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The prompt, version or alias does not exist.
    #[error("{what} does not exist")]
    NotFound {
        /// What was looked for, e.g. "version 7 of prompt `qa-prompt`".
        what: String,
    },
    /// A name, alias, URI or value is not acceptable.
    #[error("{what}: {message}")]
    Invalid {
        /// What was wrong, e.g. "prompt name `a b`".
        what: String,
        /// Why.
        message: String,
    },
    /// The template does not render.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// The backend cannot be reached or answered with a server error (an outage): a cache may
    /// serve what it has.
    #[error("the {backend} registry at {location} is unavailable: {message}")]
    Unavailable {
        /// `local` or `mlflow`.
        backend: &'static str,
        /// The file or URL.
        location: String,
        /// What happened.
        message: String,
    },
    /// The backend refused or failed the operation for another reason.
    #[error("the {backend} registry failed: {message}")]
    Backend {
        /// `local` or `mlflow`.
        backend: &'static str,
        /// What happened.
        message: String,
    },
}

impl RegistryError {
    /// The `error.type` of this failure.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::Invalid { .. } => "invalid",
            Self::Template(_) => "template_error",
            Self::Unavailable { .. } => "unavailable",
            Self::Backend { .. } => "registry_error",
        }
    }

    pub(crate) fn version_not_found(name: &str, version: u32) -> Self {
        Self::NotFound {
            what: format!("version {version} of prompt `{name}`"),
        }
    }

    pub(crate) fn prompt_not_found(name: &str) -> Self {
        Self::NotFound {
            what: format!("prompt `{name}`"),
        }
    }

    pub(crate) fn alias_not_found(name: &str, alias: &str) -> Self {
        Self::NotFound {
            what: format!("alias `{alias}` of prompt `{name}`"),
        }
    }
}

/// A prompt registry. Versions are immutable and numbered from 1 per prompt; aliases are mutable
/// pointers to versions; [`LATEST`] always resolves to the newest version.
#[async_trait]
pub trait PromptRegistry: Send + Sync {
    /// `local` or `mlflow`.
    fn backend(&self) -> &'static str;

    /// Registers `version` as the next version of `name` (creating the prompt if needed).
    async fn register(
        &self,
        name: &str,
        version: NewPromptVersion,
    ) -> Result<PromptVersion, RegistryError>;

    /// One version.
    async fn get_version(&self, name: &str, version: u32) -> Result<PromptVersion, RegistryError>;

    /// The version `alias` points at ([`LATEST`]: the newest).
    async fn resolve_alias(&self, name: &str, alias: &str) -> Result<u32, RegistryError>;

    /// Points `alias` at `version` (which must exist). [`LATEST`] cannot be set.
    async fn set_alias(&self, name: &str, alias: &str, version: u32) -> Result<(), RegistryError>;

    /// Removes `alias`.
    async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), RegistryError>;

    /// Sets a prompt-level tag (what [`PromptFilter::tags`] searches).
    async fn set_prompt_tag(&self, name: &str, key: &str, value: &str)
    -> Result<(), RegistryError>;

    /// One prompt.
    async fn get_prompt(&self, name: &str) -> Result<PromptInfo, RegistryError>;

    /// The prompts passing `filter`, by name.
    async fn search(&self, filter: &PromptFilter) -> Result<Vec<PromptInfo>, RegistryError>;

    /// Every version of `name`, oldest first.
    async fn list_versions(&self, name: &str) -> Result<Vec<PromptVersion>, RegistryError>;

    /// Records that trace `trace_id` (32 hex digits) was produced with `versions`.
    async fn link_trace(
        &self,
        trace_id: &str,
        versions: &[PromptVersionRef],
    ) -> Result<(), RegistryError>;

    /// The version `uri` names.
    async fn load(&self, uri: &PromptUri) -> Result<PromptVersion, RegistryError> {
        let version = match &uri.selector {
            PromptSelector::Version(version) => *version,
            PromptSelector::Alias(alias) => self.resolve_alias(&uri.name, alias).await?,
        };
        self.get_version(&uri.name, version).await
    }
}

/// Checks a prompt name: letters, digits, `-`, `_` and `.`, starting with a letter or digit (what
/// both backends and URIs accept).
pub fn validate_prompt_name(name: &str) -> Result<(), RegistryError> {
    validate_identifier("prompt name", name)
}

/// Checks an alias name: like a prompt name; [`LATEST`] is reserved, and a number would read as a
/// version.
pub fn validate_alias(alias: &str) -> Result<(), RegistryError> {
    validate_identifier("alias", alias)?;
    if alias.eq_ignore_ascii_case(LATEST) {
        return Err(RegistryError::Invalid {
            what: format!("alias `{alias}`"),
            message: "`latest` always means the newest version and cannot be set".into(),
        });
    }
    if alias.chars().all(|c| c.is_ascii_digit()) {
        return Err(RegistryError::Invalid {
            what: format!("alias `{alias}`"),
            message: "an alias cannot be a number (it would read as a version)".into(),
        });
    }
    Ok(())
}

fn validate_identifier(kind: &str, value: &str) -> Result<(), RegistryError> {
    let invalid = |message: &str| RegistryError::Invalid {
        what: format!("{kind} `{value}`"),
        message: message.into(),
    };
    let Some(first) = value.chars().next() else {
        return Err(invalid("is empty"));
    };
    if !first.is_ascii_alphanumeric() {
        return Err(invalid("must start with a letter or a digit"));
    }
    if value.len() > 256 {
        return Err(invalid("is longer than 256 characters"));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(invalid(&format!(
            "may hold only letters, digits, `-`, `_` and `.`, not {bad:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases_are_checked() {
        assert!(validate_prompt_name("qa-prompt.v2_x").is_ok());
        for bad in ["", "-x", "a b", "a/b", "a@b"] {
            let err = validate_prompt_name(bad).unwrap_err().to_string();
            assert!(err.contains("prompt name"), "{err}");
        }
        assert!(validate_alias("production").is_ok());
        assert!(
            validate_alias("latest")
                .unwrap_err()
                .to_string()
                .contains("newest")
        );
        assert!(
            validate_alias("3")
                .unwrap_err()
                .to_string()
                .contains("number")
        );
    }

    #[test]
    fn filters_match_names_and_tags() {
        let info = PromptInfo {
            name: "QA-prompt".into(),
            tags: BTreeMap::from([("task".into(), "qa".into())]),
            latest_version: Some(1),
            aliases: BTreeMap::new(),
            created_at_ms: 0,
        };
        assert!(PromptFilter::default().matches(&info));
        let by_name = PromptFilter {
            name_contains: Some("qa".into()),
            ..PromptFilter::default()
        };
        assert!(by_name.matches(&info));
        let by_tag = PromptFilter {
            tags: BTreeMap::from([("task".into(), "summarise".into())]),
            ..PromptFilter::default()
        };
        assert!(!by_tag.matches(&info));
    }
}
