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
    /// `[[providers.credentials]]`: which API-key variables may be sent to which hosts, besides
    /// `[providers.openai] api_key_env` to the host of its `base_url`. An agent file (which a
    /// model registry or a service's agents directory may hold) cannot send any other variable
    /// anywhere.
    pub credentials: Vec<CredentialGrant>,
}

/// One `[[providers.credentials]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialGrant {
    /// The environment variable holding the key.
    pub env: String,
    /// The hosts it may be sent to (names as in the URL, without port); `*` = any.
    pub hosts: Vec<String>,
}

impl ProvidersConfig {
    /// The API key an OpenAI-compatible model at `base_url` gets: the variable `api_key_env` (or
    /// the configured default) when that variable may go to that host, else none. `Err` names
    /// what to allow when an agent file asks for a variable it may not send there.
    pub fn openai_key(
        &self,
        base_url: &str,
        api_key_env: Option<&str>,
    ) -> Result<Option<String>, String> {
        let defaults = &self.openai;
        let env = api_key_env.unwrap_or(&defaults.api_key_env);
        let host = host_of(base_url);
        let allowed =
            (env == defaults.api_key_env && host.is_some() && host == host_of(&defaults.base_url))
                || self.credentials.iter().any(|grant| {
                    grant.env == env
                        && grant.hosts.iter().any(|allowed| {
                            allowed == "*"
                                || host
                                    .as_deref()
                                    .is_some_and(|h| allowed.eq_ignore_ascii_case(h))
                        })
                });
        if allowed {
            return Ok(std::env::var(env).ok().filter(|k| !k.is_empty()));
        }
        match api_key_env {
            // The agent file chose the variable: say so rather than call without it.
            Some(env) => Err(format!(
                "model.api_key_env = \"{env}\" would send {env} to {}; allow it with \
                 [[providers.credentials]] env = \"{env}\", hosts = [\"{}\"]",
                host.as_deref().unwrap_or("an address without a host"),
                host.as_deref().unwrap_or("HOST")
            )),
            // The default variable stays with its own host; another one gets no key.
            None => Ok(None),
        }
    }
}

/// The host of `url`, lower-cased; `None` when it has none.
fn host_of(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .host_str()
        .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_go_only_to_the_hosts_they_are_allowed_for() {
        let mut providers = ProvidersConfig::default();
        // The default variable goes to the default host (unset here, so no key either way).
        assert_eq!(
            providers.openai_key("https://api.openai.com/v1", None),
            Ok(std::env::var("OPENAI_API_KEY")
                .ok()
                .filter(|k| !k.is_empty()))
        );
        // An agent file pointing elsewhere does not take the default key along.
        assert_eq!(
            providers.openai_key("https://evil.example/v1", None),
            Ok(None)
        );
        // Nor may it name another variable to send anywhere.
        let error = providers
            .openai_key("https://evil.example/v1", Some("SEXTANT_SERVE_TOKEN"))
            .unwrap_err();
        assert!(
            error.contains("SEXTANT_SERVE_TOKEN") && error.contains("evil.example"),
            "{error}"
        );
        assert!(
            providers
                .openai_key("https://api.openai.com/v1", Some("MLFLOW_TRACKING_TOKEN"))
                .is_err()
        );
        // Unless the configuration grants that pair.
        providers.credentials.push(CredentialGrant {
            env: "PATH".into(),
            hosts: vec!["api.groq.com".into()],
        });
        assert!(
            providers
                .openai_key("https://API.groq.com/openai/v1", Some("PATH"))
                .unwrap()
                .is_some()
        );
        assert!(
            providers
                .openai_key("https://api.groq.com.evil.example/v1", Some("PATH"))
                .is_err()
        );
    }
}
