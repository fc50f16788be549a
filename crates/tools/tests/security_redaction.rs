//! Secrets and content stay where they belong: a credential in a configured URL and the query of a
//! fetched or searched URL never reach a tool error (which becomes span status whatever the content
//! switch says), and `url.full` carries the query only with content capture on and credentials
//! never. The spans are read with a layer that keeps every value recorded on them.

mod support;

use std::sync::{Arc, Mutex};

use sextant_tools::builtin::web_search::Searxng;
use sextant_tools::builtin::{HttpFetch, WebSearch};
use sextant_tools::config::HttpFetchConfig;
use sextant_tools::{Tool, with_content_capture};
use support::{LocalServer, Reply};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// Every `(field, value)` recorded on any span, in order.
#[derive(Clone, Default)]
struct RecordedFields(Arc<Mutex<Vec<(String, String)>>>);

impl RecordedFields {
    fn value_of(&self, field: &str) -> Vec<String> {
        let fields = self.0.lock().unwrap();
        fields
            .iter()
            .filter(|(name, _)| name == field)
            .map(|(_, value)| value.clone())
            .collect()
    }

    fn all(&self) -> String {
        format!("{:?}", self.0.lock().unwrap())
    }
}

impl Visit for RecordedFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let mut fields = self.0.lock().unwrap();
        fields.push((field.name().to_owned(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut fields = self.0.lock().unwrap();
        fields.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl<S: tracing::Subscriber> Layer<S> for RecordedFields {
    fn on_new_span(&self, attributes: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        attributes.record(&mut self.clone());
    }

    fn on_record(&self, _: &Id, values: &Record<'_>, _: Context<'_, S>) {
        values.record(&mut self.clone());
    }
}

/// Runs `future` with a subscriber that keeps what the spans record.
async fn recorded<F: std::future::Future>(future: F) -> (F::Output, RecordedFields) {
    let fields = RecordedFields::default();
    let subscriber = tracing_subscriber::registry().with(fields.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    (future.await, fields)
}

#[tokio::test(flavor = "current_thread")]
async fn searxng_credentials_never_reach_spans_or_errors_and_the_query_only_with_capture() {
    let faulty_server_double =
        LocalServer::start(|_| Reply::status(500, "upstream exploded")).await;
    let base = format!(
        "http://sx-user:sx-password@127.0.0.1:{}/",
        faulty_server_double.port()
    );
    let tool = WebSearch::new(Searxng::new(&base).unwrap());
    let secrets = ["sx-user", "sx-password"];

    for capture in [true, false] {
        let (result, fields) = recorded(with_content_capture(
            capture,
            tool.call(serde_json::json!({"query": "private words"})),
        ))
        .await;
        let error = result.unwrap_err().to_string();
        assert!(error.contains("SearXNG answered 500"), "{error}");
        for secret in secrets {
            assert!(!error.contains(secret), "{secret} in the error: {error}");
            assert!(
                !fields.all().contains(secret),
                "{secret} on a span (capture {capture}): {}",
                fields.all()
            );
        }
        assert!(!error.contains("private"), "{error}");
        let url_full = fields.value_of("url.full");
        assert_eq!(url_full.len(), 1, "{}", fields.all());
        assert!(
            url_full[0].starts_with(&format!(
                "http://127.0.0.1:{}/search",
                faulty_server_double.port()
            )),
            "{url_full:?}"
        );
        assert_eq!(
            url_full[0].contains("q=private+words"),
            capture,
            "capture {capture}: {url_full:?}"
        );
        let status = fields.value_of("otel.status_description").join(" ");
        assert!(
            status.contains("SearXNG answered 500") && !status.contains("private"),
            "{status}"
        );
    }
}

#[tokio::test(flavor = "current_thread")]
async fn fetch_errors_name_the_page_without_its_query() {
    let site = LocalServer::start(|path| {
        if path.starts_with("/report.pdf") {
            Reply::ok("application/pdf", "%PDF-1.7")
        } else {
            Reply::status(404, "no such page")
        }
    })
    .await;
    let tool = HttpFetch::from_config(&HttpFetchConfig {
        allowed_hosts: vec!["localhost".into()],
        ..HttpFetchConfig::default()
    })
    .unwrap();
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (url, expected) in [
        (
            format!(
                "http://localhost:{}/report.pdf?session=fetch-secret#page=2",
                site.port()
            ),
            format!(
                "http://localhost:{}/report.pdf is application/pdf, not a page",
                site.port()
            ),
        ),
        (
            format!("http://localhost:{closed_port}/p?session=fetch-secret"),
            format!("could not be reached at http://localhost:{closed_port}/p:"),
        ),
        (
            "not a url?session=fetch-secret".to_owned(),
            "`not a url` is not a URL".to_owned(),
        ),
    ] {
        let (result, fields) = recorded(with_content_capture(
            false,
            tool.call(serde_json::json!({ "url": url })),
        ))
        .await;
        let error = result.unwrap_err().to_string();
        assert!(error.contains(&expected), "{url}: {error}");
        assert!(!error.contains("fetch-secret"), "{url}: {error}");
        assert!(!fields.all().contains("fetch-secret"), "{}", fields.all());
    }
}
