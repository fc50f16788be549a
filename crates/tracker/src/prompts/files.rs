//! Prompts declared in files (`configs/prompts/*.toml`) and [`push`], which syncs them to a
//! registry, registering a version only where the template changed.
//!
//! ```toml
//! name = "qa-prompt"
//! tags = { task = "question-answering" }
//!
//! [[versions]]
//! commit_message = "Initial QA prompt template"
//! messages = [
//!   { role = "system", content = "You are a helpful assistant. Answer concisely." },
//!   { role = "user", content = "{{ question }}" },
//! ]
//!
//! [[versions]]
//! commit_message = "Ask for one sentence"
//! template = "Answer in one sentence: {{ question }}"   # a text prompt
//!
//! [aliases]
//! production = 2     # the file's second version
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    ChatMessageTemplate, NewPromptVersion, PromptRegistry, PromptTemplate, RegistryError,
    validate_alias, validate_prompt_name,
};

/// One prompt file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptFile {
    /// The prompt's name.
    pub name: String,
    /// Prompt-level tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Its versions, oldest first.
    pub versions: Vec<PromptFileVersion>,
    /// Alias → the file's version number (1 = the first `[[versions]]` entry).
    #[serde(default)]
    pub aliases: BTreeMap<String, usize>,
}

/// One `[[versions]]` entry: `template` (a text prompt) or `messages` (a chat prompt).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptFileVersion {
    /// A text template.
    #[serde(default)]
    pub template: Option<String>,
    /// A chat template.
    #[serde(default)]
    pub messages: Option<Vec<ChatMessageTemplate>>,
    /// Why this version was made.
    #[serde(default)]
    pub commit_message: Option<String>,
    /// Version tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The structured output the prompt expects (a JSON schema).
    #[serde(default)]
    pub response_format: Option<serde_json::Value>,
    /// Model settings that go with the prompt.
    #[serde(default)]
    pub model_config: Option<serde_json::Value>,
}

impl PromptFile {
    /// Reads and checks one file; errors name the file and what is wrong.
    pub fn load(path: &Path) -> Result<Self, RegistryError> {
        let text = std::fs::read_to_string(path).map_err(|error| RegistryError::Invalid {
            what: format!("prompt file {}", path.display()),
            message: error.to_string(),
        })?;
        Self::parse(&text, &format!("prompt file {}", path.display()))
    }

    /// Parses and checks a prompt file's text; errors name `source`.
    pub fn parse(text: &str, source: &str) -> Result<Self, RegistryError> {
        let invalid = |message: String| RegistryError::Invalid {
            what: source.to_owned(),
            message,
        };
        let file: PromptFile = toml::from_str(text).map_err(|error| invalid(error.to_string()))?;
        file.check().map_err(invalid)?;
        Ok(file)
    }

    fn check(&self) -> Result<(), String> {
        validate_prompt_name(&self.name).map_err(|e| e.to_string())?;
        if self.versions.is_empty() {
            return Err("`versions` is empty: declare at least one [[versions]]".into());
        }
        for (i, version) in self.versions.iter().enumerate() {
            let template = version
                .template()
                .map_err(|message| format!("versions[{}]: {message}", i + 1))?;
            template
                .validate()
                .map_err(|error| format!("versions[{}]: {error}", i + 1))?;
        }
        for (alias, &number) in &self.aliases {
            validate_alias(alias).map_err(|e| format!("aliases.{alias}: {e}"))?;
            if number == 0 || number > self.versions.len() {
                return Err(format!(
                    "aliases.{alias} = {number}, but the file declares versions 1..={}",
                    self.versions.len()
                ));
            }
        }
        Ok(())
    }
}

impl PromptFileVersion {
    /// The template this entry declares.
    pub fn template(&self) -> Result<PromptTemplate, String> {
        match (&self.template, &self.messages) {
            (Some(text), None) => Ok(PromptTemplate::Text(text.clone())),
            (None, Some(messages)) if !messages.is_empty() => {
                Ok(PromptTemplate::Chat(messages.clone()))
            }
            (None, Some(_)) => Err("`messages` is empty".into()),
            (Some(_), Some(_)) => {
                Err("give `template` (text) or `messages` (chat), not both".into())
            }
            (None, None) => Err("give `template` (text) or `messages` (chat)".into()),
        }
    }

    fn to_new_version(&self) -> NewPromptVersion {
        NewPromptVersion {
            template: self.template().expect("checked on load"),
            commit_message: self.commit_message.clone(),
            tags: self.tags.clone(),
            response_format: self.response_format.clone(),
            model_config: self.model_config.clone(),
        }
    }
}

/// Reads `path`: one `.toml` file, or every `.toml` file in a directory (sorted by name).
pub fn load_prompt_files(path: &Path) -> Result<Vec<(PathBuf, PromptFile)>, RegistryError> {
    let paths = if path.is_dir() {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|error| RegistryError::Invalid {
                what: format!("prompt directory {}", path.display()),
                message: error.to_string(),
            })?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        paths
    } else {
        vec![path.to_owned()]
    };
    let files = paths
        .into_iter()
        .map(|p| PromptFile::load(&p).map(|file| (p, file)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = BTreeMap::new();
    for (path, file) in &files {
        if let Some(first) = seen.insert(file.name.clone(), path.clone()) {
            return Err(RegistryError::Invalid {
                what: format!("prompt file {}", path.display()),
                message: format!(
                    "prompt `{}` is also declared in {}",
                    file.name,
                    first.display()
                ),
            });
        }
    }
    Ok(files)
}

/// What [`push`] did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PushReport {
    /// Every declared version and the registry version it is.
    pub versions: Vec<PushedVersion>,
    /// Aliases set: (prompt, alias, version) where the alias pointed elsewhere or nowhere.
    pub aliases_set: Vec<(String, String, u32)>,
}

impl PushReport {
    /// How many versions were (or would be) registered.
    pub fn registered(&self) -> usize {
        self.versions.iter().filter(|v| v.registered).count()
    }
}

/// One declared version after a push.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PushedVersion {
    /// The prompt.
    pub name: String,
    /// Its number in the file, from 1.
    pub file_version: usize,
    /// The registry's version.
    pub version: u32,
    /// Whether it was registered now (false: an existing version has the same content).
    pub registered: bool,
}

/// Syncs `files` to `registry`. The file's versions are matched in order against the registry's:
/// a declared version whose content (template, response format, model config) equals the next
/// unmatched registered version is that version; any other is registered as a new version. So a
/// second push of the same files registers nothing, and editing the last version registers one.
/// Aliases are then pointed at the matched versions. `dry_run` reports without writing.
pub async fn push(
    registry: &dyn PromptRegistry,
    files: &[(PathBuf, PromptFile)],
    dry_run: bool,
) -> Result<PushReport, RegistryError> {
    let mut report = PushReport::default();
    for (_, file) in files {
        let existing = match registry.list_versions(&file.name).await {
            Ok(versions) => versions,
            Err(RegistryError::NotFound { .. }) => Vec::new(),
            Err(error) => return Err(error),
        };
        let mut next_unmatched = 0;
        let mut next_number = existing.iter().map(|v| v.version).max().unwrap_or(0) + 1;
        let mut numbers = Vec::with_capacity(file.versions.len());
        for (i, declared) in file.versions.iter().enumerate() {
            let declared = declared.to_new_version();
            let matched = existing[next_unmatched.min(existing.len())..]
                .iter()
                .position(|v| v.same_content(&declared));
            let (version, registered) = match matched {
                Some(offset) => {
                    let found = &existing[next_unmatched + offset];
                    next_unmatched += offset + 1;
                    (found.version, false)
                }
                None => {
                    // History diverged here: later declared versions are new too.
                    next_unmatched = existing.len();
                    let version = if dry_run {
                        next_number
                    } else {
                        registry.register(&file.name, declared).await?.version
                    };
                    next_number = version + 1;
                    (version, true)
                }
            };
            numbers.push(version);
            report.versions.push(PushedVersion {
                name: file.name.clone(),
                file_version: i + 1,
                version,
                registered,
            });
        }
        if !dry_run && !file.tags.is_empty() {
            let current = registry.get_prompt(&file.name).await?.tags;
            for (key, value) in &file.tags {
                if current.get(key) != Some(value) {
                    registry.set_prompt_tag(&file.name, key, value).await?;
                }
            }
        }
        for (alias, &file_version) in &file.aliases {
            let version = numbers[file_version - 1];
            let current = match registry.resolve_alias(&file.name, alias).await {
                Ok(current) => Some(current),
                Err(RegistryError::NotFound { .. }) => None,
                Err(error) => return Err(error),
            };
            if current != Some(version) {
                if !dry_run {
                    registry.set_alias(&file.name, alias, version).await?;
                }
                report
                    .aliases_set
                    .push((file.name.clone(), alias.clone(), version));
            }
        }
    }
    Ok(report)
}
