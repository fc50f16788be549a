//! The `searxng` backend: a SearXNG instance's JSON API (`GET /search?q=…&format=json`).
//!
//! The instance must allow the JSON format (`search.formats` in its `settings.yml`); otherwise it
//! answers 403, which the error message explains.

use async_trait::async_trait;
use serde::Deserialize;

use super::plan::PlannedQuery;
use super::results::SearchResult;
use super::{BACKEND_TIMEOUT, SearchBackend, endpoint};
use crate::ToolError;
use crate::config::{SearxngConfig, ToolConfigError};
use crate::http;

const SERVICE: &str = "SearXNG";

/// A SearXNG instance.
#[derive(Debug, Clone)]
pub struct Searxng {
    search_url: url::Url,
    language: Option<String>,
    client: reqwest::Client,
}

impl Searxng {
    /// The instance at `base_url` (e.g. `http://127.0.0.1:8888`).
    pub fn new(base_url: &str) -> Result<Self, ToolConfigError> {
        Self::from_config(&SearxngConfig {
            url: Some(base_url.to_owned()),
            language: None,
        })
    }

    /// From `[tools.web_search.searxng]`.
    pub fn from_config(config: &SearxngConfig) -> Result<Self, ToolConfigError> {
        let key = "tools.web_search.searxng.url";
        let base = config.url.as_deref().ok_or_else(|| {
            ToolConfigError::new(
                key,
                "the searxng backend needs the instance's URL (or set SEXTANT_SEARXNG_URL)",
            )
        })?;
        let mut search_url = endpoint(base, key)?;
        if !search_url.path().ends_with("/search") {
            let path = format!("{}/search", search_url.path().trim_end_matches('/'));
            search_url.set_path(&path);
        }
        Ok(Self {
            search_url,
            language: config.language.as_deref().map(language).transpose()?,
            client: http::api_client(BACKEND_TIMEOUT),
        })
    }

    fn request(&self, query: &PlannedQuery) -> reqwest::Request {
        let mut url = self.search_url.clone();
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("q", &query.text);
            pairs.append_pair("format", "json");
            pairs.append_pair("pageno", "1");
            if let Some(language) = &self.language {
                pairs.append_pair("language", language);
            }
        }
        self.client
            .get(url)
            // What a SearXNG instance running its bot limiter wants to see before it answers.
            .header(reqwest::header::ACCEPT, "application/json, text/html;q=0.5")
            .header(
                reqwest::header::ACCEPT_LANGUAGE,
                self.language.as_deref().unwrap_or("en"),
            )
            .build()
            .expect("a GET with a valid URL builds")
    }
}

/// The configured result language, checked to be a language code (`en`, `de-CH`, `all`): it goes
/// into the `Accept-Language` header, where a control character would make every request fail.
fn language(value: &str) -> Result<String, ToolConfigError> {
    let value = value.trim();
    let is_code = (1..=35).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if is_code {
        Ok(value.to_owned())
    } else {
        Err(ToolConfigError::new(
            "tools.web_search.searxng.language",
            format!("{value:?} is not a language code; use one such as `en`, `de-CH` or `all`"),
        ))
    }
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    results: Vec<Hit>,
    #[serde(default)]
    unresponsive_engines: Vec<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct Hit {
    url: Option<String>,
    title: Option<String>,
    #[serde(default)]
    content: Option<String>,
}

/// The results of a SearXNG JSON response, in the instance's order (already ranked by its score).
fn parse(body: &str) -> Result<Vec<SearchResult>, ToolError> {
    let response: Response = http::parse_json(body, SERVICE)?;
    if response.results.is_empty() && !response.unresponsive_engines.is_empty() {
        let engines: Vec<String> = response
            .unresponsive_engines
            .iter()
            .map(|pair| {
                let text: Vec<&str> = pair.iter().filter_map(|v| v.as_str()).collect();
                text.join(": ")
            })
            .collect();
        return Err(ToolError::Upstream(format!(
            "{SERVICE} found nothing because its engines did not answer ({})",
            engines.join(", ")
        )));
    }
    Ok(response
        .results
        .into_iter()
        .filter_map(|hit| {
            Some(SearchResult {
                url: hit.url?,
                title: hit.title.unwrap_or_default(),
                snippet: hit.content.unwrap_or_default(),
                // The instance already ranked by its score; keeping its order keeps the results
                // that have none.
                score: None,
            })
        })
        .collect())
}

#[async_trait]
impl SearchBackend for Searxng {
    fn name(&self) -> &'static str {
        "searxng"
    }

    async fn search(
        &self,
        query: &PlannedQuery,
        count: usize,
    ) -> Result<Vec<SearchResult>, ToolError> {
        let body = http::request_text(&self.client, self.request(query), SERVICE)
            .await
            .map_err(|error| match error {
                ToolError::Upstream(message) if message.contains("403") => ToolError::Upstream(format!(
                    "{message}; SearXNG refuses format=json unless `json` is listed under search.formats in its settings.yml"
                )),
                other => other,
            })?;
        let mut results = parse(&body)?;
        results.truncate(count);
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::web_search::plan::plan;

    const FIXTURE: &str = include_str!("../../../tests/fixtures/web_search/searxng.json");

    #[test]
    fn a_recorded_response_parses_into_results() {
        let results = parse(FIXTURE).unwrap();
        assert!(results.len() >= 5, "{results:?}");
        for result in &results {
            assert!(result.url.starts_with("http"), "{result:?}");
            assert!(!result.title.is_empty(), "{result:?}");
        }
        assert!(results.iter().any(|r| r.snippet.is_empty()));
    }

    #[test]
    fn the_request_asks_for_json_at_the_search_path() {
        let backend = Searxng::new("http://127.0.0.1:8888/").unwrap();
        let request = backend.request(&plan("rust tracing").unwrap());
        assert_eq!(request.method(), "GET");
        let url = request.url();
        assert_eq!(url.path(), "/search");
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(pairs.contains(&("q".into(), "rust tracing".into())));
        assert!(pairs.contains(&("format".into(), "json".into())));
    }

    #[test]
    fn no_results_with_failed_engines_says_which_failed() {
        let err = parse(r#"{"query":"x","number_of_results":0,"results":[],"answers":[],"corrections":[],"infoboxes":[],"suggestions":[],"unresponsive_engines":[["google","timeout"],["brave","too many requests"]]}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("google: timeout, brave: too many requests"),
            "{err}"
        );
    }

    #[test]
    fn a_language_that_is_not_a_code_is_a_config_error_not_a_panic() {
        for bad in ["en\nX-Injected: 1", "", "en US", "é"] {
            let err = Searxng::from_config(&SearxngConfig {
                url: Some("http://127.0.0.1:8888".into()),
                language: Some(bad.into()),
            })
            .unwrap_err();
            assert_eq!(err.key, "tools.web_search.searxng.language", "{bad:?}");
        }
        let backend = Searxng::from_config(&SearxngConfig {
            url: Some("http://127.0.0.1:8888".into()),
            language: Some(" de-CH ".into()),
        })
        .unwrap();
        let request = backend.request(&plan("rust").unwrap());
        assert_eq!(request.headers()[reqwest::header::ACCEPT_LANGUAGE], "de-CH");
    }

    #[test]
    fn a_missing_url_is_a_config_error() {
        let err = Searxng::from_config(&SearxngConfig::default()).unwrap_err();
        assert_eq!(err.key, "tools.web_search.searxng.url");
        assert!(Searxng::new("ftp://example.com").is_err());
    }
}
