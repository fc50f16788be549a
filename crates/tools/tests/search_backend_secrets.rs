//! An API key goes to its service in its header and nowhere else: not in the URL, not in the
//! error the model sees. One test per process, because it sets an environment variable.

mod support;

use sextant_tools::Tool;
use sextant_tools::builtin::WebSearch;
use sextant_tools::config::{BraveConfig, SearchBackendKind, WebSearchConfig};
use support::{LocalServer, Reply};

#[tokio::test(flavor = "current_thread")]
async fn the_brave_key_is_sent_in_its_header_and_never_shown() {
    const KEY: &str = "BSA-test-key-not-real-7f3c";
    // SAFETY: this file holds this one test and sets the variable before anything reads the
    // environment.
    unsafe { std::env::set_var("SEXTANT_TEST_BRAVE_KEY", KEY) };
    let faulty_server_double = LocalServer::start(|_| {
        Reply::status(401, r#"{"type":"ErrorResponse","error":{"code":"SUBSCRIPTION_TOKEN_INVALID","status":401}}"#)
    })
    .await;
    let tool = WebSearch::from_config(&WebSearchConfig {
        backend: SearchBackendKind::Brave,
        brave: BraveConfig {
            api_key_env: "SEXTANT_TEST_BRAVE_KEY".into(),
            url: format!(
                "http://127.0.0.1:{}/res/v1/web/search",
                faulty_server_double.port()
            ),
        },
        ..WebSearchConfig::default()
    })
    .unwrap();
    let err = tool
        .call(serde_json::json!({"query": "jaeger"}))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("Brave Search answered 401"),
        "{err}"
    );
    assert!(err.to_string().contains("check the API key"), "{err}");
    assert!(!err.to_string().contains(KEY), "{err}");

    let request = faulty_server_double.last_request();
    assert!(
        request.contains(&format!("x-subscription-token: {KEY}")),
        "{request}"
    );
    let request_line = request.lines().next().unwrap();
    assert!(!request_line.contains(KEY), "{request_line}");
}
