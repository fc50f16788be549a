//! Result processing (`process_results`): backend results cleaned, ranked, de-duplicated, trimmed,
//! and written out with numbers the model can cite.

use serde::Serialize;

use super::plan::PlannedQuery;

/// One search result, as every backend reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchResult {
    /// The page title.
    pub title: String,
    /// The page address.
    pub url: String,
    /// A passage of the page that matches the query.
    pub snippet: String,
    /// The backend's relevance score, when it gives one (higher is better).
    #[serde(skip)]
    pub score: Option<f64>,
}

/// The results after processing, with the counts that go on the span.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessedResults {
    /// The results to show, best first.
    pub results: Vec<SearchResult>,
    /// How many the backend returned.
    pub received: usize,
    /// How many were dropped as duplicates.
    pub duplicates: usize,
}

/// Ranks `results` (by score when every result has one, else in the backend's order), removes
/// markup and duplicates (same page by URL), trims snippets to `snippet_chars` and keeps `max`.
pub fn process(results: Vec<SearchResult>, max: usize, snippet_chars: usize) -> ProcessedResults {
    let received = results.len();
    let mut ranked = results;
    if ranked.iter().all(|r| r.score.is_some()) {
        ranked.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    }
    let mut seen = Vec::new();
    let mut duplicates = 0;
    let mut kept = Vec::new();
    for result in ranked {
        let url = result.url.trim().to_owned();
        let Some(key) = page_key(&url) else { continue };
        if seen.contains(&key) {
            duplicates += 1;
            continue;
        }
        seen.push(key);
        let title = plain_text(&result.title);
        let snippet = trim(&plain_text(&result.snippet), snippet_chars);
        kept.push(SearchResult {
            title: if title.is_empty() { url.clone() } else { title },
            url,
            snippet,
            score: result.score,
        });
    }
    kept.truncate(max);
    ProcessedResults {
        results: kept,
        received,
        duplicates,
    }
}

/// The text the model reads: numbered results, each with title, URL and snippet.
pub fn cite(processed: &ProcessedResults, query: &PlannedQuery, backend: &str) -> String {
    if processed.results.is_empty() {
        return format!(
            "No results for \"{}\" ({backend}). Try other or fewer words.",
            query.text
        );
    }
    let mut text = format!(
        "Search results for \"{}\" ({backend}, {} results):\n",
        query.text,
        processed.results.len()
    );
    for (i, result) in processed.results.iter().enumerate() {
        text.push_str(&format!(
            "\n[{}] {}\nURL: {}\n",
            i + 1,
            result.title,
            result.url
        ));
        if !result.snippet.is_empty() {
            text.push_str(&result.snippet);
            text.push('\n');
        }
    }
    text.push_str("\nCite a source by its number, e.g. [1].");
    text
}

/// What identifies a page: scheme-less, `www.`-less host, path without a trailing slash, and the
/// query without tracking parameters; no fragment. `None` for what is not an http(s) URL.
fn page_key(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https" | "file" | "corpus") {
        return None;
    }
    let host = parsed.host_str().unwrap_or_default();
    let host = host.strip_prefix("www.").unwrap_or(host);
    let path = parsed.path().trim_end_matches('/');
    let query: Vec<String> = parsed
        .query_pairs()
        .filter(|(k, _)| !(k.starts_with("utm_") || k == "fbclid" || k == "gclid"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    Some(format!("{host}{path}?{}", query.join("&")))
}

/// `html` as plain text: tags removed, entities decoded, whitespace collapsed.
pub fn plain_text(html: &str) -> String {
    let text: String = if html.contains('<') || html.contains('&') {
        scraper::Html::parse_fragment(html)
            .root_element()
            .text()
            .collect()
    } else {
        html.to_owned()
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` cut to `max` characters at a word break, with an ellipsis when cut.
fn trim(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => {
            let head = &text[..cut];
            let end = head.rfind(' ').filter(|&i| i > cut / 2).unwrap_or(cut);
            format!("{}…", head[..end].trim_end_matches([',', ';', ':', ' ']))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::web_search::plan::plan;

    fn result(title: &str, url: &str, snippet: &str, score: Option<f64>) -> SearchResult {
        SearchResult {
            title: title.into(),
            url: url.into(),
            snippet: snippet.into(),
            score,
        }
    }

    #[test]
    fn duplicates_markup_and_long_snippets_are_cleaned() {
        let processed = process(
            vec![
                result(
                    "<b>Tokio</b> &amp; tracing",
                    "https://tokio.rs/",
                    "An async runtime",
                    None,
                ),
                result("Tokio again", "http://www.tokio.rs#intro", "dup", None),
                result(
                    "Tracking",
                    "https://example.com/?utm_source=x&id=3",
                    &"word ".repeat(50),
                    None,
                ),
                result("Same tracking", "https://example.com/?id=3", "dup", None),
                result("No URL", "javascript:alert(1)", "", None),
            ],
            10,
            40,
        );
        assert_eq!(processed.received, 5);
        assert_eq!(processed.duplicates, 2);
        let titles: Vec<&str> = processed.results.iter().map(|r| r.title.as_str()).collect();
        assert_eq!(titles, ["Tokio & tracing", "Tracking"]);
        let snippet = &processed.results[1].snippet;
        assert!(
            snippet.ends_with('…') && snippet.chars().count() <= 41,
            "{snippet}"
        );
    }

    #[test]
    fn scores_rank_when_every_result_has_one() {
        let processed = process(
            vec![
                result("low", "https://a.example/", "", Some(0.1)),
                result("high", "https://b.example/", "", Some(0.9)),
            ],
            1,
            100,
        );
        assert_eq!(processed.results[0].title, "high");
        assert_eq!(processed.results.len(), 1);
    }

    #[test]
    fn citations_are_numbered_with_urls() {
        let query = plan("tokio").unwrap();
        let processed = process(
            vec![
                result("Tokio", "https://tokio.rs/", "An async runtime.", None),
                result("Docs", "https://docs.rs/tokio", "", None),
            ],
            5,
            100,
        );
        let text = cite(&processed, &query, "corpus");
        assert!(
            text.contains("[1] Tokio\nURL: https://tokio.rs/\nAn async runtime.\n"),
            "{text}"
        );
        assert!(
            text.contains("[2] Docs\nURL: https://docs.rs/tokio\n"),
            "{text}"
        );
        let empty = process(vec![], 5, 100);
        assert!(cite(&empty, &query, "corpus").starts_with("No results"));
    }
}
