//! The `tavily` backend: the Tavily search API (`POST /search`, key as a bearer token).

use async_trait::async_trait;
use serde::Deserialize;

use super::plan::PlannedQuery;
use super::results::SearchResult;
use super::{BACKEND_TIMEOUT, SearchBackend, endpoint};
use crate::ToolError;
use crate::api_key::ApiKey;
use crate::config::{TavilyConfig, ToolConfigError};
use crate::http;

const SERVICE: &str = "Tavily";

/// The Tavily search API.
#[derive(Debug, Clone)]
pub struct Tavily {
    url: url::Url,
    key: ApiKey,
    search_depth: String,
    client: reqwest::Client,
}

impl Tavily {
    /// From `[tools.web_search.tavily]`; the key comes from the environment variable it names.
    pub fn from_config(config: &TavilyConfig) -> Result<Self, ToolConfigError> {
        if !matches!(config.search_depth.as_str(), "basic" | "advanced") {
            return Err(ToolConfigError::new(
                "tools.web_search.tavily.search_depth",
                format!(
                    "must be \"basic\" or \"advanced\", got {:?}",
                    config.search_depth
                ),
            ));
        }
        let key = ApiKey::from_env(
            &config.api_key_env,
            "tools.web_search.tavily.api_key_env",
            "the tavily backend needs a Tavily API key",
        )?;
        Ok(Self {
            url: endpoint(&config.url, "tools.web_search.tavily.url")?,
            key,
            search_depth: config.search_depth.clone(),
            client: http::api_client(BACKEND_TIMEOUT),
        })
    }

    fn request(&self, query: &PlannedQuery, count: usize) -> reqwest::Request {
        self.client
            .post(self.url.clone())
            .bearer_auth(self.key.expose())
            .json(&serde_json::json!({
                "query": query.text,
                "max_results": count.clamp(1, 20),
                "search_depth": self.search_depth,
                "include_answer": false,
                "include_raw_content": false,
                "include_images": false,
            }))
            .build()
            .expect("a JSON POST with a valid URL builds")
    }
}

#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    results: Vec<Hit>,
}

#[derive(Deserialize)]
struct Hit {
    #[serde(default)]
    title: String,
    url: String,
    #[serde(default)]
    content: String,
    score: Option<f64>,
}

/// The results of a Tavily response, with Tavily's relevance scores.
fn parse(body: &str) -> Result<Vec<SearchResult>, ToolError> {
    let response: Response = http::parse_json(body, SERVICE)?;
    Ok(response
        .results
        .into_iter()
        .map(|hit| SearchResult {
            title: hit.title,
            url: hit.url,
            snippet: hit.content,
            score: hit.score,
        })
        .collect())
}

#[async_trait]
impl SearchBackend for Tavily {
    fn name(&self) -> &'static str {
        "tavily"
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

    const FIXTURE: &str = include_str!("../../../tests/fixtures/web_search/tavily.json");

    #[test]
    fn a_recorded_response_parses_with_scores() {
        let results = parse(FIXTURE).unwrap();
        assert!(results.len() >= 4, "{results:?}");
        assert!(
            results
                .iter()
                .all(|r| r.score.is_some_and(|s| (0.0..=1.0).contains(&s)))
        );
        assert!(
            results
                .iter()
                .all(|r| r.url.starts_with("http") && !r.snippet.is_empty())
        );
    }

    #[test]
    fn the_request_is_a_json_post_with_a_bearer_key() {
        let backend = Tavily {
            url: url::Url::parse(&TavilyConfig::default().url).unwrap(),
            key: ApiKey::for_test("tvly-secret"),
            search_depth: "basic".into(),
            client: reqwest::Client::new(),
        };
        let request = backend.request(&plan("jaeger sampling").unwrap(), 5);
        assert_eq!(request.method(), "POST");
        assert_eq!(request.headers()["authorization"], "Bearer tvly-secret");
        let body: serde_json::Value =
            serde_json::from_slice(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(body["query"], "jaeger sampling");
        assert_eq!(body["max_results"], 5);
        assert!(body.get("api_key").is_none());
        assert!(!format!("{backend:?}").contains("secret"));
    }

    #[test]
    fn a_bad_search_depth_is_named() {
        let config = TavilyConfig {
            search_depth: "deep".into(),
            ..TavilyConfig::default()
        };
        let err = Tavily::from_config(&config).unwrap_err();
        assert_eq!(err.key, "tools.web_search.tavily.search_depth");
    }
}
