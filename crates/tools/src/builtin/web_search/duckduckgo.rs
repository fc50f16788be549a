//! The `duckduckgo` backend: DuckDuckGo's HTML search page (no key). Results are read from the
//! page's markup; ads are skipped and DuckDuckGo's redirect links are unwrapped to the target URL.
//!
//! DuckDuckGo rate-limits automated use; when it answers with its challenge page instead of
//! results, the error says so.

use async_trait::async_trait;
use scraper::{Html, Selector};

use super::plan::PlannedQuery;
use super::results::SearchResult;
use super::{BACKEND_TIMEOUT, SearchBackend, endpoint};
use crate::ToolError;
use crate::config::{DuckDuckGoConfig, ToolConfigError};
use crate::http;

const SERVICE: &str = "DuckDuckGo";

/// DuckDuckGo's HTML search.
#[derive(Debug, Clone)]
pub struct DuckDuckGo {
    url: url::Url,
    region: String,
    client: reqwest::Client,
}

impl DuckDuckGo {
    /// From `[tools.web_search.duckduckgo]`.
    pub fn from_config(config: &DuckDuckGoConfig) -> Result<Self, ToolConfigError> {
        Ok(Self {
            url: endpoint(&config.url, "tools.web_search.duckduckgo.url")?,
            region: config.region.clone(),
            client: http::api_client(BACKEND_TIMEOUT),
        })
    }

    fn request(&self, query: &PlannedQuery) -> reqwest::Request {
        // The form the page itself submits.
        self.client
            .post(self.url.clone())
            // The headers a browser submitting the form sends; DuckDuckGo's bot check reads them.
            .header(reqwest::header::ACCEPT, "text/html,application/xhtml+xml")
            .header(reqwest::header::ACCEPT_LANGUAGE, "en")
            .header("Sec-Fetch-Mode", "navigate")
            .header("Sec-Fetch-Dest", "document")
            .header("Sec-Fetch-Site", "same-origin")
            .header("Sec-Fetch-User", "?1")
            .form(&[
                ("q", query.text.as_str()),
                ("b", ""),
                ("kl", self.region.as_str()),
            ])
            .build()
            .expect("a form POST with a valid URL builds")
    }
}

/// The organic results of a DuckDuckGo HTML page, in page order.
fn parse(page: &str) -> Result<Vec<SearchResult>, ToolError> {
    let document = Html::parse_document(page);
    let selector = |css: &str| Selector::parse(css).expect("a valid selector");
    let (result, title, snippet) = (
        selector("div.result"),
        selector("a.result__a"),
        selector(".result__snippet"),
    );
    let mut results = Vec::new();
    let mut blocks = 0;
    for block in document.select(&result) {
        blocks += 1;
        let classes: Vec<&str> = block.value().classes().collect();
        if classes
            .iter()
            .any(|c| *c == "result--ad" || *c == "result--no-result")
        {
            continue;
        }
        let Some(link) = block.select(&title).next() else {
            continue;
        };
        let Some(url) = link.value().attr("href").and_then(target_url) else {
            continue;
        };
        results.push(SearchResult {
            title: link.text().collect(),
            url,
            snippet: block
                .select(&snippet)
                .next()
                .map(|s| s.inner_html())
                .unwrap_or_default(),
            score: None,
        });
    }
    // The challenge page comes with status 202, so it is recognised by its content.
    let challenged = page.contains("anomaly-modal") || page.contains("challenge-form");
    if challenged || (blocks == 0 && !page.contains("result--no-result")) {
        return Err(ToolError::Upstream(format!(
            "{SERVICE} answered without a results page (it may be rate-limiting this address; try again later or use another backend)"
        )));
    }
    Ok(results)
}

/// The page a result link leads to: DuckDuckGo wraps targets as `//duckduckgo.com/l/?uddg=<url>`.
fn target_url(href: &str) -> Option<String> {
    let absolute = if href.starts_with("//") {
        format!("https:{href}")
    } else {
        href.to_owned()
    };
    let parsed = url::Url::parse(&absolute).ok()?;
    if parsed.path() == "/l/" {
        return parsed
            .query_pairs()
            .find(|(key, _)| key == "uddg")
            .map(|(_, target)| target.into_owned());
    }
    matches!(parsed.scheme(), "http" | "https").then_some(absolute)
}

#[async_trait]
impl SearchBackend for DuckDuckGo {
    fn name(&self) -> &'static str {
        "duckduckgo"
    }

    async fn search(
        &self,
        query: &PlannedQuery,
        count: usize,
    ) -> Result<Vec<SearchResult>, ToolError> {
        let page = http::request_text(&self.client, self.request(query), SERVICE).await?;
        let mut results = parse(&page)?;
        results.truncate(count);
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::web_search::plan::plan;

    const FIXTURE: &str = include_str!("../../../tests/fixtures/web_search/duckduckgo.html");

    #[test]
    fn a_recorded_page_yields_organic_results_with_real_urls() {
        let results = parse(FIXTURE).unwrap();
        assert!(results.len() >= 4, "{results:?}");
        for result in &results {
            assert!(result.url.starts_with("http"), "{result:?}");
            assert!(
                !result.url.contains("duckduckgo.com/l/"),
                "not unwrapped: {result:?}"
            );
            assert!(
                !result.url.contains("duckduckgo.com/y.js"),
                "an ad: {result:?}"
            );
            assert!(!result.title.trim().is_empty(), "{result:?}");
        }
    }

    #[test]
    fn redirect_links_are_unwrapped() {
        assert_eq!(
            target_url(
                "//duckduckgo.com/l/?uddg=https%3A%2F%2Fqdrant.tech%2Fdocumentation%2F&rut=abc"
            )
            .as_deref(),
            Some("https://qdrant.tech/documentation/")
        );
        assert_eq!(target_url("javascript:void(0)"), None);
    }

    #[test]
    fn a_challenge_page_is_an_error_not_an_empty_result() {
        let err = parse("<html><body><div class=\"anomaly-modal__title\">Unfortunately, bots use DuckDuckGo too.</div></body></html>").unwrap_err();
        assert_eq!(err.error_type(), "upstream_error");
        assert!(err.to_string().contains("rate-limiting"), "{err}");
    }

    #[test]
    fn the_request_is_the_page_form() {
        let backend = DuckDuckGo::from_config(&DuckDuckGoConfig::default()).unwrap();
        let request = backend.request(&plan("otel collector").unwrap());
        assert_eq!(request.method(), "POST");
        let body = std::str::from_utf8(request.body().unwrap().as_bytes().unwrap()).unwrap();
        assert!(body.starts_with("q=otel+collector"), "{body}");
    }
}
