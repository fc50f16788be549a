//! `prompts:/name/3` and `prompts:/name@alias`: how a prompt version is named everywhere.

use std::fmt;
use std::str::FromStr;

use super::{LATEST, RegistryError, validate_alias, validate_prompt_name};

/// A prompt and which of its versions: `prompts:/qa-prompt/3`, `prompts:/qa-prompt@production`,
/// `prompts:/qa-prompt@latest`. Parsing also accepts the short forms `qa-prompt/3`,
/// `qa-prompt@production` and `qa-prompt` (= `@latest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PromptUri {
    /// The prompt's name.
    pub name: String,
    /// The version or alias.
    pub selector: PromptSelector,
}

/// A version number or an alias.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PromptSelector {
    /// An exact version.
    Version(u32),
    /// An alias ([`LATEST`] = the newest version).
    Alias(String),
}

impl PromptUri {
    /// The scheme prefix.
    pub const SCHEME: &'static str = "prompts:/";

    /// `prompts:/name/version`.
    pub fn version(name: &str, version: u32) -> Self {
        Self {
            name: name.to_owned(),
            selector: PromptSelector::Version(version),
        }
    }

    /// `prompts:/name@alias`.
    pub fn alias(name: &str, alias: &str) -> Self {
        Self {
            name: name.to_owned(),
            selector: PromptSelector::Alias(alias.to_owned()),
        }
    }

    /// The alias this URI names, if it names one.
    pub fn alias_name(&self) -> Option<&str> {
        match &self.selector {
            PromptSelector::Alias(alias) => Some(alias),
            PromptSelector::Version(_) => None,
        }
    }

    /// Whether `text` is written as a URI (starts with `prompts:/`).
    pub fn is_uri(text: &str) -> bool {
        text.trim_start().starts_with(Self::SCHEME)
    }
}

impl fmt::Display for PromptUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            PromptSelector::Version(version) => write!(f, "prompts:/{}/{version}", self.name),
            PromptSelector::Alias(alias) => write!(f, "prompts:/{}@{alias}", self.name),
        }
    }
}

impl FromStr for PromptUri {
    type Err = RegistryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |message: String| RegistryError::Invalid {
            what: format!("prompt URI `{text}`"),
            message,
        };
        let body = text.trim();
        let body = body.strip_prefix(Self::SCHEME).unwrap_or(body);
        let body = body.trim_start_matches('/');
        let (name, selector) = if let Some((name, alias)) = body.split_once('@') {
            if alias != LATEST {
                validate_alias(alias).map_err(|error| invalid(error.to_string()))?;
            }
            (name, PromptSelector::Alias(alias.to_owned()))
        } else if let Some((name, version)) = body.split_once('/') {
            let version: u32 = version.parse().map_err(|_| {
                invalid(format!(
                    "`{version}` is not a version number; write prompts:/NAME/VERSION or prompts:/NAME@ALIAS"
                ))
            })?;
            if version == 0 {
                return Err(invalid("versions are numbered from 1".into()));
            }
            (name, PromptSelector::Version(version))
        } else {
            (body, PromptSelector::Alias(LATEST.to_owned()))
        };
        validate_prompt_name(name).map_err(|error| invalid(error.to_string()))?;
        Ok(Self {
            name: name.to_owned(),
            selector,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_and_print_both_forms() {
        let uri: PromptUri = "prompts:/qa-prompt/3".parse().unwrap();
        assert_eq!(uri, PromptUri::version("qa-prompt", 3));
        assert_eq!(uri.to_string(), "prompts:/qa-prompt/3");
        let uri: PromptUri = "prompts:/qa-prompt@production".parse().unwrap();
        assert_eq!(uri.alias_name(), Some("production"));
        assert_eq!(uri.to_string(), "prompts:/qa-prompt@production");
        assert_eq!(
            "qa-prompt".parse::<PromptUri>().unwrap(),
            PromptUri::alias("qa-prompt", LATEST)
        );
        assert_eq!(
            "qa-prompt@latest".parse::<PromptUri>().unwrap(),
            PromptUri::alias("qa-prompt", LATEST)
        );
    }

    #[test]
    fn bad_uris_say_what_is_wrong() {
        for (text, expected) in [
            ("prompts:/qa/x", "not a version number"),
            ("prompts:/qa/0", "from 1"),
            ("prompts:/qa@", "alias"),
            ("prompts:/@prod", "prompt name"),
            ("prompts:/q a/1", "prompt name"),
        ] {
            let err = text.parse::<PromptUri>().unwrap_err().to_string();
            assert!(err.contains(text), "{err}");
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
