//! `[providers]`: where the chat and embedding providers are and how to authenticate to them.

use serde::Deserialize;

/// `[providers]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvidersConfig {
    /// OpenAI-compatible servers.
    pub openai: OpenAiSettings,
    /// Ollama.
    pub ollama: OllamaSettings,
    /// The embedded model.
    pub local: LocalSettings,
}

/// `[providers.openai]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenAiSettings {
    /// Base URL including `/v1`.
    pub base_url: String,
    /// Name of the environment variable holding the API key (the key itself is never in a file).
    pub api_key_env: String,
}

impl Default for OpenAiSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".into(),
            api_key_env: "OPENAI_API_KEY".into(),
        }
    }
}

/// `[providers.ollama]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OllamaSettings {
    /// The server, e.g. `http://127.0.0.1:11434`.
    pub host: String,
}

impl Default for OllamaSettings {
    fn default() -> Self {
        Self {
            host: "http://127.0.0.1:11434".into(),
        }
    }
}

/// `[providers.local]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalSettings {
    /// Inference threads; empty = all cores.
    pub threads: Option<usize>,
}
