//! `web_search`: searches the web — or, offline, a local corpus — and returns numbered results
//! with title, URL and snippet.
//!
//! A call is traced as two child spans of `execute_tool web_search`: `plan_query` (the query
//! normalised for the backend) and `process_results` (ranked, de-duplicated, trimmed, cited), with
//! the backend's HTTP request between them for the network backends.

mod brave;
mod corpus;
mod duckduckgo;
mod plan;
mod results;
mod searxng;
mod tavily;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use tracing::field::Empty;

pub use brave::Brave;
pub use corpus::Corpus;
pub use duckduckgo::DuckDuckGo;
pub use plan::PlannedQuery;
pub use results::SearchResult;
pub use searxng::Searxng;
pub use tavily::Tavily;

use crate::capture::content_capture_enabled;
use crate::config::{SearchBackendKind, ToolConfigError, WebSearchConfig};
use crate::{Tool, ToolError};
use sextant_conventions as sc;

/// Longest a search backend request may take (the tool's own timeout usually ends it first).
const BACKEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Where `web_search` gets results. Implement it to add a search service.
#[async_trait]
pub trait SearchBackend: Send + Sync {
    /// Its name on spans and in the result header (`corpus`, `searxng`, …).
    fn name(&self) -> &'static str;

    /// Up to `count` results for `query`, best first.
    async fn search(
        &self,
        query: &PlannedQuery,
        count: usize,
    ) -> Result<Vec<SearchResult>, ToolError>;
}

/// The `web_search` tool.
#[derive(Clone)]
pub struct WebSearch {
    backend: Arc<dyn SearchBackend>,
    max_results: usize,
    snippet_chars: usize,
}

#[derive(Deserialize, JsonSchema)]
struct WebSearchArguments {
    /// The question or keywords to search for, in plain words.
    #[schemars(length(min = 1, max = 400))]
    query: String,
    /// How many results to return (1 to 10).
    #[schemars(range(min = 1, max = 10))]
    max_results: Option<u32>,
}

impl WebSearch {
    /// Searches with `backend`, returning at most 5 results with snippets of 320 characters.
    pub fn new(backend: impl SearchBackend + 'static) -> Self {
        let defaults = WebSearchConfig::default();
        Self {
            backend: Arc::new(backend),
            max_results: defaults.max_results,
            snippet_chars: defaults.snippet_chars,
        }
    }

    /// The backend and limits `config` chooses. A network backend's key is read from its
    /// environment variable now, so a missing key is reported when the agent is built.
    pub fn from_config(config: &WebSearchConfig) -> Result<Self, ToolConfigError> {
        let backend: Arc<dyn SearchBackend> = match config.backend {
            SearchBackendKind::Corpus => Arc::new(match &config.corpus.dir {
                Some(dir) => Corpus::from_dir(dir)?,
                None => Corpus::builtin(),
            }),
            SearchBackendKind::Searxng => Arc::new(Searxng::from_config(&config.searxng)?),
            SearchBackendKind::Brave => Arc::new(Brave::from_config(&config.brave)?),
            SearchBackendKind::Tavily => Arc::new(Tavily::from_config(&config.tavily)?),
            SearchBackendKind::Duckduckgo => Arc::new(DuckDuckGo::from_config(&config.duckduckgo)?),
        };
        Ok(Self {
            backend,
            max_results: config.max_results,
            snippet_chars: config.snippet_chars,
        })
    }

    /// At most `n` results per call.
    pub fn max_results(mut self, n: usize) -> Self {
        self.max_results = n.max(1);
        self
    }

    /// The backend's name.
    pub fn backend(&self) -> &'static str {
        self.backend.name()
    }
}

#[async_trait]
impl Tool for WebSearch {
    fn name(&self) -> &str {
        "web_search"
    }

    fn description(&self) -> &str {
        "Searches the web for the words of a question and returns the best matching pages, \
         numbered. Use it for facts you do not know or that may have changed."
    }

    // A read-only search.
    fn idempotent(&self) -> bool {
        true
    }

    fn parameters(&self) -> serde_json::Value {
        crate::fn_tool::schema_of::<WebSearchArguments>()
    }

    async fn call(&self, arguments: serde_json::Value) -> Result<String, ToolError> {
        let arguments: WebSearchArguments = serde_json::from_value(arguments)
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let backend = self.backend.name();
        let limit = arguments.max_results.map_or(self.max_results, |n| {
            (n as usize).clamp(1, self.max_results)
        });
        let capture = content_capture_enabled();

        let planned = {
            let span = tracing::info_span!(
                sc::span_name::PLAN_QUERY,
                { sc::SEXTANT_SEARCH_BACKEND } = backend,
                { sc::SEXTANT_SEARCH_QUERY_TERMS } = Empty,
                { sc::SEXTANT_SEARCH_QUERY } = Empty,
                { sc::SEXTANT_SEARCH_QUERY_REWRITTEN } = Empty,
                { sc::ERROR_TYPE } = Empty,
                { sc::OTEL_STATUS_CODE } = Empty,
                { sc::OTEL_STATUS_DESCRIPTION } = Empty,
            );
            let _entered = span.enter();
            if capture {
                span.record(sc::SEXTANT_SEARCH_QUERY, arguments.query.as_str());
            }
            match plan::plan(&arguments.query) {
                Ok(planned) => {
                    span.record(sc::SEXTANT_SEARCH_QUERY_TERMS, planned.terms.len() as i64);
                    if capture {
                        span.record(sc::SEXTANT_SEARCH_QUERY_REWRITTEN, planned.text.as_str());
                    }
                    planned
                }
                Err(error) => {
                    mark_failed(&span, &error);
                    return Err(error);
                }
            }
        };

        // Ask for a few more than needed: some will be duplicates.
        let found = self.backend.search(&planned, (limit * 2).min(20)).await?;

        let span = tracing::info_span!(
            sc::span_name::PROCESS_RESULTS,
            { sc::SEXTANT_SEARCH_BACKEND } = backend,
            { sc::SEXTANT_SEARCH_RESULTS_RECEIVED } = found.len() as i64,
            { sc::SEXTANT_SEARCH_RESULTS_DUPLICATES } = Empty,
            { sc::SEXTANT_SEARCH_RESULTS_RETURNED } = Empty,
            { sc::SEXTANT_SEARCH_RESULTS_URLS } = Empty,
        );
        let _entered = span.enter();
        let processed = results::process(found, limit, self.snippet_chars);
        span.record(
            sc::SEXTANT_SEARCH_RESULTS_DUPLICATES,
            processed.duplicates as i64,
        );
        span.record(
            sc::SEXTANT_SEARCH_RESULTS_RETURNED,
            processed.results.len() as i64,
        );
        if capture {
            let urls: Vec<&str> = processed.results.iter().map(|r| r.url.as_str()).collect();
            span.record(
                sc::SEXTANT_SEARCH_RESULTS_URLS,
                serde_json::to_string(&urls).unwrap_or_default(),
            );
        }
        Ok(results::cite(&processed, &planned, backend))
    }
}

fn mark_failed(span: &tracing::Span, error: &ToolError) {
    span.record(sc::ERROR_TYPE, error.error_type());
    span.record(sc::OTEL_STATUS_CODE, "ERROR");
    span.record(sc::OTEL_STATUS_DESCRIPTION, error.to_string());
}

/// A base URL from the config, checked to be http(s).
fn endpoint(value: &str, key: &str) -> Result<url::Url, ToolConfigError> {
    let shown = || sc::shown_url(value, sc::UrlParts::Location);
    let url = url::Url::parse(value)
        .map_err(|e| ToolConfigError::new(key, format!("`{}` is not a URL ({e})", shown())))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ToolConfigError::new(
            key,
            format!("`{}` is not an http(s) URL", shown()),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_corpus_backend_answers_with_cited_results() {
        let tool = WebSearch::from_config(&WebSearchConfig::default()).unwrap();
        assert_eq!(tool.backend(), "corpus");
        let text = tool
            .call(serde_json::json!({"query": "MLflow prompt registry aliases", "max_results": 2}))
            .await
            .unwrap();
        assert!(
            text.starts_with(
                "Search results for \"MLflow prompt registry aliases\" (corpus, 2 results)"
            ),
            "{text}"
        );
        assert!(
            text.contains("[1] ") && text.contains("[2] ") && !text.contains("[3] "),
            "{text}"
        );
        assert!(text.contains("URL: https://"), "{text}");
    }

    #[test]
    fn the_schema_bounds_the_query_and_result_count() {
        let schema = WebSearch::new(Corpus::builtin()).parameters();
        assert_eq!(schema["required"], serde_json::json!(["query"]));
        assert_eq!(schema["properties"]["query"]["maxLength"], 400);
        assert_eq!(schema["properties"]["max_results"]["maximum"], 10);
    }
}
