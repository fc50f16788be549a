//! [`ToolsConfig`]: the `[tools]` section of `sextant.toml` — limits, and the settings of the
//! built-in tools (which search backend, what a fetch may reach, where the weather comes from).
//!
//! API keys are never in the file: a section names the environment variable that holds its key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ToolLimits;

/// The `[tools]` section. Every key has a default, so an empty section is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolsConfig {
    /// Longest a tool call may run, in seconds.
    pub timeout_secs: f64,
    /// Most characters of a tool result the model sees.
    pub max_result_chars: usize,
    /// Most tool calls run at once in one step; the model is told which calls were not run.
    pub max_parallel: usize,
    /// Per-tool overrides of `timeout_secs` and `max_result_chars`, keyed by tool name.
    pub limits: BTreeMap<String, LimitsOverride>,
    /// `web_search`.
    pub web_search: WebSearchConfig,
    /// `http_fetch`.
    pub http_fetch: HttpFetchConfig,
    /// `get_weather`.
    pub get_weather: WeatherConfig,
    /// `current_time`.
    pub current_time: CurrentTimeConfig,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        Self {
            timeout_secs: 30.0,
            max_result_chars: 16_000,
            max_parallel: 4,
            limits: BTreeMap::new(),
            web_search: WebSearchConfig::default(),
            http_fetch: HttpFetchConfig::default(),
            get_weather: WeatherConfig::default(),
            current_time: CurrentTimeConfig::default(),
        }
    }
}

impl ToolsConfig {
    /// The limits of a tool without overrides.
    pub fn default_limits(&self) -> ToolLimits {
        ToolLimits {
            timeout: seconds(self.timeout_secs),
            max_result_chars: self.max_result_chars,
        }
    }

    /// The limits of the tool called `name`: the defaults with that tool's overrides applied.
    pub fn limits_for(&self, name: &str) -> ToolLimits {
        let defaults = self.default_limits();
        match self.limits.get(name) {
            None => defaults,
            Some(overrides) => ToolLimits {
                timeout: overrides.timeout_secs.map_or(defaults.timeout, seconds),
                max_result_chars: overrides
                    .max_result_chars
                    .unwrap_or(defaults.max_result_chars),
            },
        }
    }

    /// Checks the values a type cannot: a zero limit is a mistake, not a wish.
    pub fn validate(&self) -> Result<(), ToolConfigError> {
        let positive = |key: String, value: f64| {
            if value > 0.0 && Duration::try_from_secs_f64(value).is_ok() {
                Ok(())
            } else {
                Err(ToolConfigError::new(
                    key,
                    format!(
                        "must be a positive number of seconds that fits a duration, got {value}"
                    ),
                ))
            }
        };
        let nonzero = |key: String, value: usize| {
            if value > 0 {
                Ok(())
            } else {
                Err(ToolConfigError::new(key, "must be at least 1"))
            }
        };
        positive("tools.timeout_secs".into(), self.timeout_secs)?;
        nonzero("tools.max_result_chars".into(), self.max_result_chars)?;
        nonzero("tools.max_parallel".into(), self.max_parallel)?;
        for (name, limits) in &self.limits {
            if let Some(t) = limits.timeout_secs {
                positive(format!("tools.limits.{name}.timeout_secs"), t)?;
            }
            if let Some(n) = limits.max_result_chars {
                nonzero(format!("tools.limits.{name}.max_result_chars"), n)?;
            }
        }
        nonzero(
            "tools.web_search.max_results".into(),
            self.web_search.max_results,
        )?;
        positive(
            "tools.http_fetch.timeout_secs".into(),
            self.http_fetch.timeout_secs,
        )?;
        nonzero(
            "tools.http_fetch.max_bytes".into(),
            self.http_fetch.max_bytes,
        )?;
        Ok(())
    }
}

/// Seconds as a [`Duration`]; `validate` has already refused what does not fit.
pub(crate) fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::MAX)
}

/// Per-tool overrides of the default limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsOverride {
    /// Longest a call of this tool may run, in seconds.
    pub timeout_secs: Option<f64>,
    /// Most characters of this tool's result the model sees.
    pub max_result_chars: Option<usize>,
}

/// A configuration value a tool cannot work with, named by its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ToolConfigError {
    /// The key, e.g. `tools.web_search.brave.api_key_env`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ToolConfigError {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Which service `web_search` asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchBackendKind {
    /// The offline corpus: a local folder of documents (the built-in one by default).
    #[default]
    Corpus,
    /// A SearXNG instance's JSON API.
    Searxng,
    /// The Brave Search API.
    Brave,
    /// The Tavily search API.
    Tavily,
    /// DuckDuckGo's HTML page (no key; rate-limited by DuckDuckGo).
    Duckduckgo,
}

/// `[tools.web_search]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSearchConfig {
    /// The backend. `SEXTANT_SEARXNG_URL` selects `searxng` with that URL.
    pub backend: SearchBackendKind,
    /// Most results passed to the model (the model may ask for fewer).
    pub max_results: usize,
    /// Longest snippet per result, in characters.
    pub snippet_chars: usize,
    /// The corpus backend.
    pub corpus: CorpusConfig,
    /// The SearXNG backend.
    pub searxng: SearxngConfig,
    /// The Brave backend.
    pub brave: BraveConfig,
    /// The Tavily backend.
    pub tavily: TavilyConfig,
    /// The DuckDuckGo backend.
    pub duckduckgo: DuckDuckGoConfig,
}

impl Default for WebSearchConfig {
    fn default() -> Self {
        Self {
            backend: SearchBackendKind::Corpus,
            max_results: 5,
            snippet_chars: 320,
            corpus: CorpusConfig::default(),
            searxng: SearxngConfig::default(),
            brave: BraveConfig::default(),
            tavily: TavilyConfig::default(),
            duckduckgo: DuckDuckGoConfig::default(),
        }
    }
}

/// `[tools.web_search.corpus]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorpusConfig {
    /// A folder of `.md` / `.txt` documents (front matter `title:` / `url:` optional); unset = the
    /// built-in corpus (`configs/corpus`).
    pub dir: Option<PathBuf>,
}

/// `[tools.web_search.searxng]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearxngConfig {
    /// The instance's base URL, e.g. `http://127.0.0.1:8888` (its `settings.yml` must list `json`
    /// under `search.formats`).
    pub url: Option<String>,
    /// Result language, e.g. `en` (unset = the instance's default).
    pub language: Option<String>,
}

/// `[tools.web_search.brave]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BraveConfig {
    /// The environment variable holding the subscription token.
    pub api_key_env: String,
    /// The web search endpoint.
    pub url: String,
}

impl Default for BraveConfig {
    fn default() -> Self {
        Self {
            api_key_env: "BRAVE_API_KEY".into(),
            url: "https://api.search.brave.com/res/v1/web/search".into(),
        }
    }
}

/// `[tools.web_search.tavily]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TavilyConfig {
    /// The environment variable holding the API key.
    pub api_key_env: String,
    /// The search endpoint.
    pub url: String,
    /// `basic` or `advanced`.
    pub search_depth: String,
}

impl Default for TavilyConfig {
    fn default() -> Self {
        Self {
            api_key_env: "TAVILY_API_KEY".into(),
            url: "https://api.tavily.com/search".into(),
            search_depth: "basic".into(),
        }
    }
}

/// `[tools.web_search.duckduckgo]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DuckDuckGoConfig {
    /// The HTML (no-JavaScript) search page.
    pub url: String,
    /// Region, e.g. `us-en` or `wt-wt` (no region).
    pub region: String,
}

impl Default for DuckDuckGoConfig {
    fn default() -> Self {
        Self {
            url: "https://html.duckduckgo.com/html/".into(),
            region: "wt-wt".into(),
        }
    }
}

/// `[tools.http_fetch]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpFetchConfig {
    /// Longest a fetch may take, redirects included, in seconds.
    pub timeout_secs: f64,
    /// Most bytes of a body read; the rest is not downloaded.
    pub max_bytes: usize,
    /// Most redirects followed.
    pub max_redirects: usize,
    /// Fetch loopback, private, link-local and metadata addresses too. Off: a model (or a page it
    /// read) must not be able to reach the machine's own services or the cloud metadata endpoint.
    pub allow_private_networks: bool,
    /// Hosts exempt from the address guard, e.g. an intranet wiki: names or IPs (a port is
    /// ignored) and `*.domain` patterns.
    pub allowed_hosts: Vec<String>,
}

impl Default for HttpFetchConfig {
    fn default() -> Self {
        Self {
            timeout_secs: 20.0,
            max_bytes: 2 * 1024 * 1024,
            max_redirects: 5,
            allow_private_networks: false,
            allowed_hosts: Vec::new(),
        }
    }
}

/// Where `get_weather` gets the weather.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeatherBackendKind {
    /// Simulated, deterministic per city and day: for examples and tests.
    #[default]
    Offline,
    /// The Open-Meteo API (no key).
    OpenMeteo,
}

/// `[tools.get_weather]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WeatherConfig {
    /// The source.
    pub backend: WeatherBackendKind,
    /// Open-Meteo's geocoding endpoint.
    pub geocoding_url: String,
    /// Open-Meteo's forecast endpoint.
    pub forecast_url: String,
}

impl Default for WeatherConfig {
    fn default() -> Self {
        Self {
            backend: WeatherBackendKind::Offline,
            geocoding_url: "https://geocoding-api.open-meteo.com/v1/search".into(),
            forecast_url: "https://api.open-meteo.com/v1/forecast".into(),
        }
    }
}

/// `[tools.current_time]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CurrentTimeConfig {
    /// The IANA time zone used when the model names none.
    pub timezone: String,
}

impl Default for CurrentTimeConfig {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_beyond_what_a_duration_holds_are_refused_with_their_key() {
        let mut config = ToolsConfig::default();
        config.http_fetch.timeout_secs = 1e20;
        let err = config.validate().unwrap_err();
        assert_eq!(err.key, "tools.http_fetch.timeout_secs", "{err}");

        let mut config = ToolsConfig::default();
        config.limits.insert(
            "web_search".into(),
            LimitsOverride {
                timeout_secs: Some(f64::MAX),
                max_result_chars: None,
            },
        );
        let err = config.validate().unwrap_err();
        assert_eq!(err.key, "tools.limits.web_search.timeout_secs", "{err}");
    }
}
