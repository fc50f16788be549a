//! The service as an MCP server: `/mcp` over Streamable HTTP behind the service's auth, called by
//! the official Python SDK and by Sextant's own MCP client, with the caller's trace continued.
//! (`sextant mcp` over stdio is tested in the CLI crate, which has the binary.)

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;
use sextant_server::{Role, Server, TraceTrust};
use sextant_tools::mcp::{McpConfig, McpSelector, McpServerConfig, McpServers, mcp_tools};
use sextant_tracker::prompts::{NewPromptVersion, PromptRegistry, PromptTemplate};
use tower::ServiceExt;
use tracing::Instrument;

mod support;
use support::{TestServer, add_key, settings, shared};

/// An `initialize` request as any MCP client sends it first.
fn initialize() -> Request<Body> {
    Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Body::from(
            json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "attacker", "version": "1"}}})
            .to_string(),
        ))
        .unwrap()
}

#[tokio::test]
async fn mcp_needs_a_key_when_keys_are_configured_and_an_allowed_host_without() {
    let mut with_keys = settings();
    add_key(&mut with_keys, "alice", &[Role::User]);
    let server = Server::with_settings(shared().runtime.clone(), with_keys).unwrap();
    let mut request = initialize();
    request
        .headers_mut()
        .insert("host", "127.0.0.1".parse().unwrap());
    let response = server.router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Without keys, a page on another site that rebinds its name to 127.0.0.1 is refused.
    let open = Server::with_settings(shared().runtime.clone(), settings()).unwrap();
    let mut request = initialize();
    request
        .headers_mut()
        .insert("host", "evil.example:8080".parse().unwrap());
    let response = open.router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let mut disabled = settings();
    disabled.mcp.enabled = false;
    let off = Server::with_settings(shared().runtime.clone(), disabled).unwrap();
    let mut request = initialize();
    request
        .headers_mut()
        .insert("host", "127.0.0.1".parse().unwrap());
    let response = off.router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// The spans of `trace_id` in the shared runtime's local store, once `expected` is among them.
fn spans_of(trace_id: &str, expected: &str) -> Vec<sextant_tracker::StoredSpan> {
    for _ in 0..100 {
        let spans = shared().runtime.trace_spans(trace_id).unwrap();
        if spans.iter().any(|s| s.name == expected) {
            return spans;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no `{expected}` span in trace {trace_id}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Python MCP SDK: cargo xtask test"]
async fn the_python_sdk_calls_an_agent_over_http_and_its_trace_continues() {
    let registry = shared().runtime.prompt_registry().unwrap();
    registry
        .register(
            "mcp-greeting",
            NewPromptVersion::new(PromptTemplate::text("Greet {{ name }} in {{ language }}."))
                .commit_message("a greeting"),
        )
        .await
        .unwrap();
    let mut settings = settings();
    let key = add_key(&mut settings, "orchestrator", &[Role::Service]);
    settings.trust_incoming_trace_context = TraceTrust::Services;
    let service =
        TestServer::start(Server::with_settings(shared().runtime.clone(), settings).unwrap()).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let url = format!("{}/mcp", service.url);
    let out = tokio::task::spawn_blocking(move || {
        sextant_testkit::mcp_sdk_client(&[
            "--url",
            &url,
            "--token",
            &key,
            "--tool",
            "tiny",
            "--question",
            "Say hello.",
            "--traceparent",
            &traceparent,
            "--prompt",
            "mcp-greeting",
            "--prompt-args",
            r#"{"name": "Ada", "language": "French"}"#,
        ])
    })
    .await
    .unwrap();

    assert_eq!(out["initialize"]["serverInfo"]["name"], "sextant", "{out}");
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"tiny") && tools.contains(&"slow"),
        "{tools:?}"
    );
    let call = &out["call"];
    assert_ne!(call["isError"], true, "{call}");
    let answer = call["structuredContent"]["answer"].as_str().unwrap();
    assert!(!answer.trim().is_empty(), "{call}");
    assert_eq!(call["content"][0]["text"], answer);
    // The caller's trace id continues into the turn.
    assert_eq!(call["structuredContent"]["trace_id"], trace_id, "{call}");
    let prompt_names: Vec<&str> = out["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(prompt_names.contains(&"mcp-greeting"), "{prompt_names:?}");
    let greeting = out["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "mcp-greeting")
        .unwrap();
    let arguments: Vec<&str> = greeting["arguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, ["language", "name"]);
    assert_eq!(
        out["prompt"]["messages"][0]["content"]["text"],
        "Greet Ada in French."
    );

    let spans = spans_of(trace_id, "tools/call tiny");
    let server = spans.iter().find(|s| s.name == "tools/call tiny").unwrap();
    assert_eq!(server.kind, "server");
    assert_eq!(server.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    assert_eq!(server.attributes["mcp.method.name"], "tools/call");
    assert_eq!(server.attributes["network.transport"], "tcp");
    assert!(
        server.attributes["mcp.protocol.version"].as_str().is_some(),
        "{:?}",
        server.attributes
    );
    assert!(
        server.attributes.contains_key("jsonrpc.request.id"),
        "{:?}",
        server.attributes
    );
    let agent = spans
        .iter()
        .find(|s| s.name == "invoke_agent tiny")
        .expect("the agent's span");
    assert_eq!(
        agent.parent_span_id.as_deref(),
        Some(server.span_id.as_str())
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sextants_client_and_server_make_one_trace() {
    let service = TestServer::start(
        Server::with_settings(shared().runtime.clone(), {
            let mut s = settings();
            // No keys: only the loopback client; it is trusted to continue its trace.
            s.trust_incoming_trace_context = TraceTrust::All;
            s
        })
        .unwrap(),
    )
    .await;
    let mut config = McpConfig::default();
    config.servers.insert(
        "peer".into(),
        McpServerConfig {
            url: Some(format!("{}/mcp", service.url)),
            ..McpServerConfig::default()
        },
    );
    let servers = McpServers::new(config);
    let root = tracing::info_span!("mcp_test_root");
    let trace_id = sextant_tracker::current_trace_id(&root).expect("the test's span is recorded");
    let output = async {
        let selector = McpSelector::parse("mcp:peer/tiny").unwrap().unwrap();
        let tools = mcp_tools(&servers, &[selector]).await.unwrap();
        let tool: Arc<dyn sextant_tools::Tool> = tools.into_iter().next().unwrap();
        tool.call(json!({"question": "Say hello."})).await
    }
    .instrument(root.clone())
    .await
    .expect("the remote agent answers");
    drop(root);
    assert!(!output.trim().is_empty());

    let spans = spans_of(&trace_id, "invoke_agent tiny");
    let client = spans
        .iter()
        .find(|s| s.name == "tools/call tiny" && s.kind == "client")
        .expect("the client span");
    let server = spans
        .iter()
        .find(|s| s.name == "tools/call tiny" && s.kind == "server")
        .expect("the server span");
    assert_eq!(
        server.parent_span_id.as_deref(),
        Some(client.span_id.as_str())
    );
    assert_eq!(client.attributes["sextant.mcp.server"], "peer");
    assert_eq!(client.attributes["network.transport"], "tcp");
    assert_eq!(client.attributes["gen_ai.tool.name"], "tiny");
    assert_eq!(client.attributes["server.address"], "127.0.0.1");
    let agent = spans
        .iter()
        .find(|s| s.name == "invoke_agent tiny")
        .unwrap();
    assert_eq!(
        agent.parent_span_id.as_deref(),
        Some(server.span_id.as_str())
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn only_service_keys_read_the_prompt_registry_over_mcp() {
    let registry = shared().runtime.prompt_registry().unwrap();
    registry
        .register(
            "mcp-internal",
            NewPromptVersion::new(PromptTemplate::text("Internal: {{ question }}")),
        )
        .await
        .unwrap();
    let mut settings = settings();
    let user_key = add_key(&mut settings, "alice", &[Role::User]);
    let service_key = add_key(&mut settings, "orchestrator", &[Role::Service]);
    let service =
        TestServer::start(Server::with_settings(shared().runtime.clone(), settings).unwrap()).await;
    let client = |variable: &str, key: &str| {
        // SAFETY: each variable is set once, before the client that reads it connects.
        unsafe { std::env::set_var(variable, key) };
        let mut config = McpConfig::default();
        config.servers.insert(
            "peer".into(),
            McpServerConfig {
                url: Some(format!("{}/mcp", service.url)),
                bearer_token_env: Some(variable.into()),
                ..McpServerConfig::default()
            },
        );
        McpServers::new(config)
    };
    let user = client("SEXTANT_TEST_MCP_USER_KEY", &user_key);
    let error = user
        .prompt_arguments("peer", "mcp-internal")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no prompt `mcp-internal`"), "{error}");
    let operator = client("SEXTANT_TEST_MCP_SERVICE_KEY", &service_key);
    let arguments = operator
        .prompt_arguments("peer", "mcp-internal")
        .await
        .unwrap();
    assert_eq!(arguments, ["question"]);
    service.stop().await;
}
