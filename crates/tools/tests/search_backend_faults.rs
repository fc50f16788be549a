//! The network search backends when their service misbehaves — error statuses, malformed bodies,
//! silence, a closed port, a bot challenge — served by a fault-injecting local server. Each failure
//! reaches the model as a sentence that names the service and what to do, with an `error.type`.

mod support;

use std::time::Duration;

use sextant_tools::builtin::WebSearch;
use sextant_tools::config::{
    DuckDuckGoConfig, SearchBackendKind, SearxngConfig, ToolsConfig, WebSearchConfig,
};
use sextant_tools::{Tool, ToolError, ToolSet};
use support::{LocalServer, Reply};

fn searxng_at(port: u16) -> WebSearch {
    WebSearch::from_config(&WebSearchConfig {
        backend: SearchBackendKind::Searxng,
        searxng: SearxngConfig {
            url: Some(format!("http://127.0.0.1:{port}")),
            language: None,
        },
        ..WebSearchConfig::default()
    })
    .unwrap()
}

async fn search(tool: &WebSearch) -> Result<String, ToolError> {
    tool.call(serde_json::json!({"query": "opentelemetry collector"}))
        .await
}

#[tokio::test]
async fn error_statuses_name_the_service_and_the_fix() {
    let faulty_server_double = LocalServer::start(|path| {
        if path.contains("forbidden") {
            Reply::status(403, "Forbidden")
        } else {
            Reply::status(500, "Internal Server Error")
        }
    })
    .await;
    let err = search(&searxng_at(faulty_server_double.port()))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "upstream_error");
    assert!(err.to_string().contains("SearXNG answered 500"), "{err}");
    let request = faulty_server_double.last_request();
    assert!(
        request.starts_with("GET /search?q=opentelemetry+collector&format=json"),
        "{request}"
    );

    let forbidden = WebSearch::from_config(&WebSearchConfig {
        backend: SearchBackendKind::Searxng,
        searxng: SearxngConfig {
            url: Some(format!(
                "http://127.0.0.1:{}/forbidden",
                faulty_server_double.port()
            )),
            language: None,
        },
        ..WebSearchConfig::default()
    })
    .unwrap();
    let err = search(&forbidden).await.unwrap_err();
    assert!(err.to_string().contains("search.formats"), "{err}");
}

#[tokio::test]
async fn a_malformed_body_is_an_upstream_error() {
    let faulty_server_double =
        LocalServer::start(|_| Reply::ok("application/json", r#"{"results": [{"url": 42"#)).await;
    let err = search(&searxng_at(faulty_server_double.port()))
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "upstream_error");
    assert!(
        err.to_string()
            .contains("SearXNG sent a response that is not the expected JSON"),
        "{err}"
    );
}

#[tokio::test]
async fn a_silent_backend_hits_the_tool_timeout() {
    let hanging_server_double = LocalServer::start(|_| Reply::Hang).await;
    let port = hanging_server_double.port();
    let mut config = ToolsConfig {
        web_search: WebSearchConfig {
            backend: SearchBackendKind::Searxng,
            searxng: SearxngConfig {
                url: Some(format!("http://127.0.0.1:{port}")),
                language: None,
            },
            ..WebSearchConfig::default()
        },
        ..ToolsConfig::default()
    };
    config.limits.insert(
        "web_search".into(),
        sextant_tools::config::LimitsOverride {
            timeout_secs: Some(0.2),
            max_result_chars: None,
        },
    );
    let tools = ToolSet::from_config(&["web_search"], &config).unwrap();
    let err = tools
        .invoke("web_search", r#"{"query": "anything"}"#)
        .await
        .unwrap_err();
    assert_eq!(err, ToolError::Timeout(Duration::from_millis(200)));
}

#[tokio::test]
async fn a_closed_port_says_the_service_could_not_be_reached() {
    // Bind and drop: the port is free and nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = search(&searxng_at(port)).await.unwrap_err();
    assert_eq!(err.error_type(), "upstream_error");
    assert!(
        err.to_string()
            .contains("SearXNG could not be reached at http://127.0.0.1"),
        "{err}"
    );
    // The query (the user's words) is not repeated in the error.
    assert!(!err.to_string().contains("opentelemetry"), "{err}");
}

#[tokio::test]
async fn a_duckduckgo_bot_challenge_is_reported_not_read_as_no_results() {
    let faulty_server_double = LocalServer::start(|_| Reply::Full {
        status: 202,
        headers: vec![("Content-Type", "text/html".to_owned())],
        body: br#"<html><body><form id="challenge-form"><div class="anomaly-modal__title">Unfortunately, bots use DuckDuckGo too.</div></form></body></html>"#.to_vec(),
    })
    .await;
    let tool = WebSearch::from_config(&WebSearchConfig {
        backend: SearchBackendKind::Duckduckgo,
        duckduckgo: DuckDuckGoConfig {
            url: format!("http://127.0.0.1:{}/html/", faulty_server_double.port()),
            ..DuckDuckGoConfig::default()
        },
        ..WebSearchConfig::default()
    })
    .unwrap();
    let err = search(&tool).await.unwrap_err();
    assert!(err.to_string().contains("rate-limiting"), "{err}");
    assert!(
        faulty_server_double
            .last_request()
            .starts_with("POST /html/")
    );
}
