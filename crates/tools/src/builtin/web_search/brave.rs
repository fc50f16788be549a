//! The `brave` backend: the Brave Search API (`GET /res/v1/web/search`, key in
//! `X-Subscription-Token`).

use async_trait::async_trait;
use serde::Deserialize;

use super::plan::PlannedQuery;
use super::results::SearchResult;
use super::{BACKEND_TIMEOUT, SearchBackend, endpoint};
use crate::ToolError;
use crate::api_key::ApiKey;
use crate::config::{BraveConfig, ToolConfigError};
use crate::http;

const SERVICE: &str = "Brave Search";

/// The Brave Search API.
#[derive(Debug, Clone)]
pub struct Brave {
    url: url::Url,
    key: ApiKey,
    client: reqwest::Client,
}

impl Brave {
    /// From `[tools.web_search.brave]`; the key comes from the environment variable it names.
    pub fn from_config(config: &BraveConfig) -> Result<Self, ToolConfigError> {
        let key = ApiKey::from_env(
            &config.api_key_env,
            "tools.web_search.brave.api_key_env",
            "the brave backend needs a Brave Search API subscription token",
        )?;
        Ok(Self {
            url: endpoint(&config.url, "tools.web_search.brave.url")?,
            key,
            client: http::api_client(BACKEND_TIMEOUT),
        })
    }

    fn request(&self, query: &PlannedQuery, count: usize) -> reqwest::Request {
        let mut url = self.url.clone();
        url.query_pairs_mut()
            .append_pair("q", &query.text)
            .append_pair("count", &count.clamp(1, 20).to_string());
        self.client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .header("X-Subscription-Token", self.key.expose())
            .build()
            .expect("a GET with a valid URL builds")
    }
}

#[derive(Deserialize)]
struct Response {
    web: Option<Web>,
}

#[derive(Deserialize)]
struct Web {
    #[serde(default)]
    results: Vec<Hit>,
}

#[derive(Deserialize)]
struct Hit {
    title: Option<String>,
    url: String,
    description: Option<String>,
    extra_snippets: Option<Vec<String>>,
}

/// The web results of a Brave response, in Brave's order. A response without a `web` block (no
/// web results for the query) is an empty list.
fn parse(body: &str) -> Result<Vec<SearchResult>, ToolError> {
    let response: Response = http::parse_json(body, SERVICE)?;
    Ok(response
        .web
        .map(|web| web.results)
        .unwrap_or_default()
        .into_iter()
        .map(|hit| {
            let snippet = hit
                .description
                .filter(|d| !d.is_empty())
                .or_else(|| hit.extra_snippets.and_then(|s| s.into_iter().next()))
                .unwrap_or_default();
            SearchResult {
                title: hit.title.unwrap_or_default(),
                url: hit.url,
                snippet,
                score: None,
            }
        })
        .collect())
}

#[async_trait]
impl SearchBackend for Brave {
    fn name(&self) -> &'static str {
        "brave"
    }

    async fn search(
        &self,
        query: &PlannedQuery,
        count: usize,
    ) -> Result<Vec<SearchResult>, ToolError> {
        parse(&http::request_text(&self.client, self.request(query, count), SERVICE).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::web_search::plan::plan;

    const FIXTURE: &str = include_str!("../../../tests/fixtures/web_search/brave.json");

    #[test]
    fn a_recorded_response_parses_into_web_results() {
        let results = parse(FIXTURE).unwrap();
        assert!(results.len() >= 4, "{results:?}");
        for result in &results {
            assert!(result.url.starts_with("https://"), "{result:?}");
            assert!(
                !result.title.is_empty() && !result.snippet.is_empty(),
                "{result:?}"
            );
        }
        // Brave marks matches with <strong>; the processing step removes it.
        assert!(results.iter().any(|r| r.snippet.contains("<strong>")));
    }

    #[test]
    fn the_key_goes_in_its_header_and_nowhere_else() {
        let backend = Brave {
            url: url::Url::parse(&BraveConfig::default().url).unwrap(),
            key: ApiKey::for_test("BSA-secret-token"),
            client: reqwest::Client::new(),
        };
        let request = backend.request(&plan("qdrant hnsw").unwrap(), 10);
        assert_eq!(
            request.headers()["X-Subscription-Token"],
            "BSA-secret-token"
        );
        assert!(!request.url().as_str().contains("secret"));
        assert!(request.url().query().unwrap().contains("count=10"));
        assert!(!format!("{backend:?}").contains("secret"));
    }

    #[test]
    fn a_missing_key_names_the_variable() {
        let config = BraveConfig {
            api_key_env: "SEXTANT_TEST_UNSET_BRAVE_KEY".into(),
            ..BraveConfig::default()
        };
        let err = Brave::from_config(&config).unwrap_err();
        assert_eq!(err.key, "tools.web_search.brave.api_key_env");
        assert!(
            err.message
                .contains("SEXTANT_TEST_UNSET_BRAVE_KEY is not set"),
            "{err}"
        );
    }
}
