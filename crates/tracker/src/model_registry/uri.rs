//! `models:/name/3`, `models:/name@alias`, `models:/name/Production`, `models:/name/latest`.

use std::fmt;
use std::str::FromStr;

use super::{ModelRegistryError, Stage, validate_model_alias, validate_model_name};

/// A registered model and which of its versions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelUri {
    /// The model's name.
    pub name: String,
    /// Which version.
    pub selector: ModelSelector,
}

/// How a URI picks a version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelSelector {
    /// An exact version.
    Version(u32),
    /// An alias.
    Alias(String),
    /// The newest version in a stage.
    Stage(Stage),
    /// The newest version.
    Latest,
}

impl ModelUri {
    /// The scheme prefix.
    pub const SCHEME: &'static str = "models:/";

    /// Whether `text` is written as a model URI.
    pub fn is_uri(text: &str) -> bool {
        text.trim_start().starts_with(Self::SCHEME)
    }

    /// Whether the version it names can change (an alias, a stage, latest).
    pub fn is_mutable(&self) -> bool {
        !matches!(self.selector, ModelSelector::Version(_))
    }
}

impl fmt::Display for ModelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.selector {
            ModelSelector::Version(v) => write!(f, "models:/{}/{v}", self.name),
            ModelSelector::Alias(a) => write!(f, "models:/{}@{a}", self.name),
            ModelSelector::Stage(s) => write!(f, "models:/{}/{s}", self.name),
            ModelSelector::Latest => write!(f, "models:/{}/latest", self.name),
        }
    }
}

impl FromStr for ModelUri {
    type Err = ModelRegistryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |message: String| ModelRegistryError::Invalid {
            what: format!("model URI `{text}`"),
            message,
        };
        let body = text
            .trim()
            .strip_prefix(Self::SCHEME)
            .ok_or_else(|| {
                invalid(
                    "write models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/STAGE".into(),
                )
            })?
            .trim_start_matches('/');
        let (name, selector) = if let Some((name, alias)) = body.split_once('@') {
            validate_model_alias(alias).map_err(|e| invalid(e.to_string()))?;
            (name, ModelSelector::Alias(alias.to_owned()))
        } else if let Some((name, rest)) = body.split_once('/') {
            let selector = if let Ok(version) = rest.parse::<u32>() {
                if version == 0 {
                    return Err(invalid("versions are numbered from 1".into()));
                }
                ModelSelector::Version(version)
            } else if rest.eq_ignore_ascii_case("latest") {
                ModelSelector::Latest
            } else if let Some(stage) = Stage::parse(rest) {
                ModelSelector::Stage(stage)
            } else {
                return Err(invalid(format!(
                    "`{rest}` is neither a version number, `latest` nor a stage (None, Staging, Production, Archived)"
                )));
            };
            (name, selector)
        } else {
            (body, ModelSelector::Latest)
        };
        validate_model_name(name).map_err(|e| invalid(e.to_string()))?;
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
    fn every_form_parses_and_prints_back() {
        for (text, selector) in [
            ("models:/rag-agent/3", ModelSelector::Version(3)),
            (
                "models:/rag-agent@production",
                ModelSelector::Alias("production".into()),
            ),
            (
                "models:/rag-agent/Production",
                ModelSelector::Stage(Stage::Production),
            ),
            ("models:/rag-agent/latest", ModelSelector::Latest),
        ] {
            let uri: ModelUri = text.parse().unwrap();
            assert_eq!(uri.selector, selector);
            assert_eq!(uri.to_string(), text);
        }
        let staged: ModelUri = "models:/a/staging".parse().unwrap();
        assert_eq!(staged.selector, ModelSelector::Stage(Stage::Staging));
        assert!(!"models:/a/2".parse::<ModelUri>().unwrap().is_mutable());
    }

    #[test]
    fn bad_uris_say_what_is_wrong() {
        for (text, expected) in [
            ("rag-agent/3", "models:/NAME"),
            ("models:/rag-agent/soon", "neither a version"),
            ("models:/rag-agent/0", "from 1"),
            ("models:/rag-agent@latest", "newest"),
            ("models:/a b/1", "model name"),
        ] {
            let err = text.parse::<ModelUri>().unwrap_err().to_string();
            assert!(
                err.contains(expected) && err.contains(text),
                "{text}: {err}"
            );
        }
    }
}
