//! The service's agents over A2A 1.0 (`/a2a/{agent}/`), behind its keys: called by the reference
//! Python SDK's client (whose trace the turn continues), and a Sextant agent calling an agent that
//! the reference SDK's server hosts (which receives Sextant's trace context).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sextant_agent::testing::ScriptedChatModel;
use sextant_agent::{Agent, TurnContext};
use sextant_server::{Role, Server, TraceTrust};

mod support;
use support::{TestServer, add_key, oneshot, settings, shared};

fn rpc(key: Option<&str>, body: Value) -> Request<Body> {
    let mut request = Request::post("/a2a/tiny/")
        .header("content-type", "application/json")
        .header("host", "127.0.0.1")
        .header("a2a-version", "1.0");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    request.body(Body::from(body.to_string())).unwrap()
}

fn send_message(text: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": "r1", "method": "SendMessage", "params": {"message": {
        "messageId": "m1", "role": "ROLE_USER", "parts": [{"text": text}]}}})
}

#[tokio::test]
async fn the_card_and_the_endpoint_are_behind_the_keys_and_describe_the_agent() {
    let mut settings = settings();
    let key = add_key(&mut settings, "alice", &[Role::User]);
    let server = Server::with_settings(shared().runtime.clone(), settings).unwrap();
    let card = |key: Option<&str>| {
        let mut request = Request::get("/a2a/tiny/.well-known/agent-card.json")
            .header("host", "agents.example:8080");
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        request.body(Body::empty()).unwrap()
    };
    let (status, _) = oneshot(&server, card(None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = oneshot(&server, rpc(None, send_message("hi"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, card) = oneshot(&server, card(Some(&key))).await;
    assert_eq!(status, StatusCode::OK, "{card}");
    assert_eq!(card["name"], "tiny");
    assert_eq!(
        card["supportedInterfaces"][0],
        json!({"url": "http://agents.example:8080/a2a/tiny/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"})
    );
    assert_eq!(card["capabilities"]["streaming"], true);
    assert_eq!(card["skills"][0]["id"], "tiny");
    assert_eq!(
        card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"],
        "Bearer"
    );
    // An agent that does not exist is the service's usual 404.
    let mut request = card_request("/a2a/nobody/.well-known/agent-card.json");
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    let (status, _) = oneshot(&server, request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

fn card_request(path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", "127.0.0.1")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn bad_requests_get_a2a_errors_and_tasks_stay_with_their_owner() {
    let mut settings = settings();
    let alice = add_key(&mut settings, "alice", &[Role::User]);
    let mallory = add_key(&mut settings, "mallory", &[Role::User]);
    let server = Server::with_settings(shared().runtime.clone(), settings).unwrap();
    let error_code = |body: &Value| body["error"]["code"].as_i64();

    let request = Request::post("/a2a/tiny/")
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {alice}"))
        .body(Body::from("{not json"))
        .unwrap();
    let (status, body) = oneshot(&server, request).await;
    assert_eq!((status, error_code(&body)), (StatusCode::OK, Some(-32700)));

    let (_, body) = oneshot(
        &server,
        rpc(
            Some(&alice),
            json!({"jsonrpc": "2.0", "id": 1, "method": "Teleport"}),
        ),
    )
    .await;
    assert_eq!(error_code(&body), Some(-32601), "{body}");
    let (_, body) = oneshot(
        &server,
        rpc(
            Some(&alice),
            json!({"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {}}),
        ),
    )
    .await;
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("A2A 0.3"),
        "{body}"
    );
    let mut old = rpc(Some(&alice), send_message("hi"));
    old.headers_mut()
        .insert("a2a-version", "2.0".parse().unwrap());
    let (_, body) = oneshot(&server, old).await;
    assert_eq!(error_code(&body), Some(-32009), "{body}");
    let (_, body) = oneshot(
        &server,
        rpc(
            Some(&alice),
            json!({"jsonrpc": "2.0", "id": 2, "method": "SendMessage", "params": {"message": {
            "messageId": "m", "role": "ROLE_AGENT", "parts": [{"text": "hi"}]}}}),
        ),
    )
    .await;
    assert_eq!(error_code(&body), Some(-32602), "{body}");

    // A real turn: the task is completed, with the answer as its artifact.
    let (_, body) = oneshot(&server, rpc(Some(&alice), send_message("Say hello."))).await;
    let task = &body["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{body}");
    let answer = task["artifacts"][0]["parts"][0]["text"].as_str().unwrap();
    assert!(!answer.trim().is_empty());
    assert_eq!(task["history"][0]["role"], "ROLE_USER");
    assert_eq!(task["history"][1]["role"], "ROLE_AGENT");
    let id = task["id"].as_str().unwrap().to_owned();
    let get = |key: &str| {
        rpc(
            Some(key),
            json!({"jsonrpc": "2.0", "id": 3, "method": "GetTask", "params": {"id": id}}),
        )
    };
    let (_, mine) = oneshot(&server, get(&alice)).await;
    assert_eq!(mine["result"]["id"], id.as_str(), "{mine}");
    // Another user's task does not exist for them, and cannot be cancelled by them.
    let (_, theirs) = oneshot(&server, get(&mallory)).await;
    assert_eq!(error_code(&theirs), Some(-32001), "{theirs}");
    let (_, cancel) = oneshot(
        &server,
        rpc(
            Some(&alice),
            json!({"jsonrpc": "2.0", "id": 4, "method": "CancelTask", "params": {"id": id}}),
        ),
    )
    .await;
    assert_eq!(error_code(&cancel), Some(-32002), "{cancel}");
    let (_, listed) = oneshot(
        &server,
        rpc(
            Some(&mallory),
            json!({"jsonrpc": "2.0", "id": 5, "method": "ListTasks", "params": {}}),
        ),
    )
    .await;
    assert_eq!(listed["result"]["totalSize"], 0, "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the reference A2A SDK: cargo xtask test"]
async fn the_python_sdk_client_gets_answers_and_the_turn_continues_its_trace() {
    let mut settings = settings();
    let key = add_key(&mut settings, "orchestrator", &[Role::Service]);
    settings.trust_incoming_trace_context = TraceTrust::Services;
    let service =
        TestServer::start(Server::with_settings(shared().runtime.clone(), settings).unwrap()).await;
    let trace_id = "5bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let base = format!("{}/a2a/tiny/", service.url);
    let (sent_key, sent_base) = (key.clone(), base.clone());
    let out = tokio::task::spawn_blocking(move || {
        sextant_testkit::a2a_sdk_client(&[
            &sent_base,
            "Say hello.",
            "--token",
            &sent_key,
            "--traceparent",
            &traceparent,
        ])
    })
    .await
    .unwrap();
    assert_eq!(out["state"], "TASK_STATE_COMPLETED", "{out}");
    assert!(!out["text"].as_str().unwrap().trim().is_empty(), "{out}");

    let spans = (0..100)
        .find_map(|_| {
            let spans = shared().runtime.trace_spans(trace_id).unwrap();
            if spans.iter().any(|s| s.name == "invoke_agent tiny") {
                return Some(spans);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            None
        })
        .expect("the turn's spans in the caller's trace");
    let server_span = spans
        .iter()
        .find(|s| s.name == "POST /a2a/{agent}/")
        .expect("the A2A server span");
    assert_eq!(server_span.kind, "server");
    assert_eq!(
        server_span.parent_span_id.as_deref(),
        Some("00f067aa0ba902b7")
    );
    assert_eq!(server_span.attributes["rpc.method"], "SendMessage");
    let agent = spans
        .iter()
        .find(|s| s.name == "invoke_agent tiny")
        .unwrap();
    assert_eq!(
        agent.parent_span_id.as_deref(),
        Some(server_span.span_id.as_str())
    );

    // Streaming, continuing the same conversation (contextId is the session).
    let context_id = out["context_id"].as_str().unwrap().to_owned();
    let streamed = tokio::task::spawn_blocking(move || {
        sextant_testkit::a2a_sdk_client(&[
            &base,
            "And goodbye?",
            "--token",
            &key,
            "--stream",
            "--context-id",
            &context_id,
        ])
    })
    .await
    .unwrap();
    assert_eq!(streamed["state"], "TASK_STATE_COMPLETED", "{streamed}");
    assert_eq!(streamed["context_id"], out["context_id"], "{streamed}");
    let events: Vec<&str> = streamed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"task"), "{events:?}");
    assert!(events.contains(&"artifact_update"), "{events:?}");
    assert_eq!(events.last(), Some(&"status_update"), "{events:?}");
    assert!(!streamed["text"].as_str().unwrap().trim().is_empty());
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the reference A2A SDK: cargo xtask test"]
async fn a_sextant_agent_calls_an_agent_the_python_sdk_serves_and_sends_its_trace() {
    let remote =
        tokio::task::spawn_blocking(|| sextant_testkit::A2aSdkServer::start(Some("s3cret")))
            .await
            .unwrap();
    // SAFETY: set before any thread of this test reads the variable; a unique name.
    unsafe { std::env::set_var("SEXTANT_TEST_A2A_PEER_TOKEN", "s3cret") };
    let entry: sextant_agent::sub_agent::AgentEntry = toml::from_str::<toml::Table>(&format!(
        "e = {{ url = \"{}\", bearer_token_env = \"SEXTANT_TEST_A2A_PEER_TOKEN\" }}",
        remote.url
    ))
    .unwrap()["e"]
        .clone()
        .try_into()
        .unwrap();
    let context = shared().runtime.build_context().clone();
    let weather = entry
        .resolve(&context, None)
        .await
        .expect("the card is read");
    // The card names the tool and says what it does.
    assert_eq!(weather.name(), "weather");
    assert!(
        weather.description().contains("weather"),
        "{}",
        weather.description()
    );
    let model = Arc::new(
        ScriptedChatModel::new()
            .then_tool_calls(&[("weather", r#"{"input": "What is the weather in Paris?"}"#)])
            .then_text("It is sunny in Paris."),
    );
    let agent = Agent::builder("planner", model).sub_agent(weather).build();
    let context = TurnContext {
        conversation_id: Some("s-1".into()),
        user_id: Some("u-1".into()),
        ..TurnContext::default()
    };
    let outcome = agent
        .run_turn(&[], "Weather in Paris?", &context, None)
        .await
        .unwrap();
    assert_eq!(outcome.tool_calls.len(), 1);
    assert!(
        !outcome.tool_calls[0].is_error,
        "{:?}",
        outcome.tool_calls[0]
    );
    assert_eq!(outcome.tool_calls[0].result, "weather in Paris: sunny");
    let trace_id = outcome.trace_id.expect("a trace");
    let posts: Vec<Value> = remote
        .requests()
        .into_iter()
        .filter(|r| r["method"] == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    let sent = posts[0]["traceparent"].as_str().expect("a traceparent");
    assert_eq!(sent.split('-').nth(1), Some(trace_id.as_str()), "{sent}");
    assert_eq!(posts[0]["authorization"], "Bearer s3cret");
    assert_eq!(posts[0]["a2a_version"], "1.0");
    let baggage = posts[0]["baggage"].as_str().unwrap_or_default();
    assert!(
        baggage.contains("session.id=s-1") && baggage.contains("user.id=u-1"),
        "{baggage}"
    );
    // The client span is the parent the remote agent was given.
    let spans = shared().runtime.trace_spans(&trace_id).unwrap();
    let client = spans
        .iter()
        .find(|s| s.name == "SendMessage weather")
        .expect("the A2A client span");
    assert_eq!(client.kind, "client");
    assert_eq!(sent.split('-').nth(2), Some(client.span_id.as_str()));
    let tool = spans
        .iter()
        .find(|s| s.name == "execute_tool weather")
        .unwrap();
    assert_eq!(
        client.parent_span_id.as_deref(),
        Some(tool.span_id.as_str())
    );
}
