//! The service as clients meet it, in-process on the embedded local model: an off-the-shelf
//! OpenAI client (async-openai) whole and streamed, the caller's trace continued, sessions over
//! the invoke API, the limits' status codes and bearer auth, Prometheus metrics, and the router
//! called with `oneshot`, without a listener.

use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    CreateChatCompletionRequest, CreateChatCompletionResponse, FinishReason,
};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use serde_json::{Value, json};
use sextant_server::{Role, ServeConfig, Server, TraceTrust};

mod support;
use support::{TestServer, add_key, oneshot, settings, shared, span};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn request(value: Value) -> CreateChatCompletionRequest {
    serde_json::from_value(value).expect("a valid OpenAI request")
}

/// A service over the shared runtime with `settings`, on a free port.
async fn start(settings: ServeConfig) -> TestServer {
    let server = Server::with_settings(shared().runtime.clone(), settings).unwrap();
    TestServer::start(server).await
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// The stored trace from the service's `/v1/traces/{id}` (with `token`, or as end user `user`
/// without keys), once it holds a span named `last` (a cut turn's spans may end a token after
/// its response).
async fn trace_with(
    service: &TestServer,
    id: &str,
    token: Option<&str>,
    user: Option<&str>,
    last: &str,
) -> Vec<Value> {
    let mut body = Value::Null;
    for _ in 0..50 {
        let mut request = http().get(format!("{}/v1/traces/{id}", service.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(user) = user {
            request = request.header("x-user-id", user);
        }
        body = request.send().await.unwrap().json().await.unwrap();
        if let Some(spans) = body["spans"].as_array()
            && spans
                .iter()
                .any(|s| s["name"].as_str().is_some_and(|n| n.starts_with(last)))
        {
            return spans.clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("trace {id} never held a `{last}` span: {body}")
}

/// The trace of a turn `user` asked for, on a service without keys.
async fn trace(service: &TestServer, id: &str, user: Option<&str>) -> Vec<Value> {
    trace_with(service, id, None, user, "chat ").await
}

#[tokio::test]
async fn the_router_answers_in_process_and_guards_the_api_with_a_key() {
    let mut settings = settings();
    let key = add_key(&mut settings, "tester", &[Role::User]);
    let server = Server::with_settings(shared().runtime.clone(), settings).unwrap();
    let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
    let (status, body) = oneshot(&server, get("/healthz")).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );

    let (status, body) = oneshot(&server, get("/v1/models")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["type"], "authentication_error");
    let authorised = Request::get("/v1/models")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let (status, body) = oneshot(&server, authorised).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["assistant", "slow", "tiny"]);

    // An unknown path is JSON that names the endpoints there are.
    let (status, body) = oneshot(&server, get("/v2/everything")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("POST /v1/chat/completions"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_client_gets_whole_and_streamed_answers_in_the_callers_trace() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Without keys, the caller's trace context is followed only when the service is told to.
    let service = start(ServeConfig {
        trust_incoming_trace_context: TraceTrust::All,
        ..settings()
    })
    .await;
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let config = OpenAIConfig::new()
        .with_api_base(format!("{}/v1", service.url))
        .with_api_key("unused")
        .with_header("traceparent", caller.as_str())
        .unwrap()
        .with_header("tracestate", "vendor=abc")
        .unwrap();
    let client = Client::with_config(config);

    let models: Value = http()
        .get(format!("{}/v1/models", service.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"tiny") && ids.contains(&"assistant"),
        "{ids:?}"
    );

    let whole: CreateChatCompletionResponse = client
        .chat()
        .create(request(json!({
            "model": "tiny",
            "messages": [
                {"role": "system", "content": "ignored: the agent's prompt applies"},
                {"role": "user", "content": "My name is Ada."},
                {"role": "assistant", "content": "Hello Ada."},
                {"role": "user", "content": "What is the capital of France?"}
            ],
            "user": "ada"
        })))
        .await
        .unwrap();
    assert_eq!(whole.object, "chat.completion");
    assert_eq!(whole.model, "tiny");
    let answer = whole.choices[0].message.content.clone().unwrap_or_default();
    assert!(!answer.trim().is_empty());
    assert!(whole.choices[0].finish_reason.is_some());
    let usage = whole.usage.clone().unwrap();
    assert!(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
    // The completion id names the caller's trace: the service continued it.
    assert_eq!(whole.id, format!("chatcmpl-{CALLER_TRACE}"));

    let spans = trace(&service, CALLER_TRACE, Some("ada")).await;
    assert!(spans.iter().all(|s| s["trace_id"] == CALLER_TRACE));
    let server = span(&spans, "POST /v1/chat/completions");
    assert_eq!(
        server["parent_span_id"], CALLER_SPAN,
        "the caller's span is the parent"
    );
    assert_eq!(server["kind"], "server");
    assert_eq!(server["attributes"]["http.response.status_code"], 200);
    assert_eq!(server["attributes"]["user.id"], "ada");
    let agent = span(&spans, "invoke_agent tiny");
    assert_eq!(agent["parent_span_id"], server["span_id"]);
    let chat = span(&spans, "chat ");
    assert_eq!(chat["parent_span_id"], agent["span_id"]);
    // The history the client sent reached the model: two earlier messages before the question.
    let input = chat["attributes"]["gen_ai.input.messages"]
        .as_str()
        .unwrap();
    assert!(
        input.contains("My name is Ada.") && input.contains("Hello Ada."),
        "{input}"
    );
    assert!(
        !input.contains("ignored: the agent's prompt applies"),
        "{input}"
    );

    // Streamed, with the usage chunk.
    let mut stream = client
        .chat()
        .create_stream(request(json!({
            "model": "tiny",
            "messages": [{"role": "user", "content": "Say hello."}],
            "stream": true,
            "stream_options": {"include_usage": true}
        })))
        .await
        .unwrap();
    let (mut text, mut content_chunks, mut finish, mut streamed_usage, mut ids) =
        (String::new(), 0, None, None, Vec::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        ids.push(chunk.id.clone());
        for choice in &chunk.choices {
            if let Some(piece) = &choice.delta.content
                && !piece.is_empty()
            {
                text.push_str(piece);
                content_chunks += 1;
            }
            if choice.finish_reason.is_some() {
                finish = choice.finish_reason;
            }
        }
        if let Some(usage) = chunk.usage {
            streamed_usage = Some(usage);
        }
    }
    assert!(!text.trim().is_empty());
    assert!(
        content_chunks >= 2,
        "the answer came in pieces: {content_chunks}"
    );
    assert_eq!(finish, Some(FinishReason::Stop));
    let usage = streamed_usage.expect("a usage chunk before [DONE]");
    assert!(usage.completion_tokens > 0);
    assert!(ids.iter().all(|id| id == &ids[0]), "one id per completion");

    // The streamed chat span says when the first piece came (issue #19, item 8); the whole one
    // does not. Both turns continued the caller's trace.
    let trace_id = ids[0].strip_prefix("chatcmpl-").unwrap();
    let mut first_chunk = Vec::new();
    for _ in 0..50 {
        first_chunk = trace(&service, trace_id, Some("ada"))
            .await
            .iter()
            .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with("chat ")))
            .filter_map(|s| s["attributes"]["gen_ai.response.time_to_first_chunk"].as_f64())
            .collect();
        if !first_chunk.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        first_chunk.len(),
        1,
        "one streamed chat span: {first_chunk:?}"
    );
    assert!(
        first_chunk[0] > 0.0 && first_chunk[0] < 60.0,
        "seconds to the first chunk: {}",
        first_chunk[0]
    );

    // Requests are counted by route, next to the GenAI client histograms.
    let metrics = http()
        .get(format!("{}/metrics", service.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = metrics
        .lines()
        .find(|l| {
            l.starts_with("http_server_request_duration_seconds_count{")
                && l.contains(r#"http_route="/v1/chat/completions""#)
                && l.contains(r#"http_response_status_code="200""#)
        })
        .unwrap_or_else(|| panic!("no request count in\n{metrics}"));
    // Other tests share the runtime's meters: at least this test's two.
    let count: f64 = count.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "{count}");
    assert!(metrics.contains("# TYPE gen_ai_client_operation_duration_seconds histogram"));
    assert!(metrics.contains("gen_ai_client_token_usage_bucket{"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_invoke_api_keeps_sessions_per_user_and_groups_their_traces() {
    let service = start(settings()).await;
    let invoke = |body: Value, user: Option<&'static str>| {
        let mut request = http()
            .post(format!("{}/v1/agents/tiny/invoke", service.url))
            .json(&body);
        if let Some(user) = user {
            request = request.header("x-user-id", user);
        }
        request.send()
    };
    let first = invoke(
        json!({"input": "My name is Ada.", "session_id": "s-ada"}),
        Some("ada"),
    )
    .await
    .unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-session-id"], "s-ada");
    let first: Value = first.json().await.unwrap();
    assert!(!first["answer"].as_str().unwrap().trim().is_empty());
    assert!(first["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(first["user_id"], "ada");
    let second: Value = invoke(
        json!({"input": "What is my name?", "session_id": "s-ada"}),
        Some("ada"),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    // The second turn saw the first one (the stored window) and used more input tokens.
    assert!(
        second["usage"]["input_tokens"].as_u64() > first["usage"]["input_tokens"].as_u64(),
        "{first}\n{second}"
    );
    assert_eq!(second["session_id"], "s-ada");
    let spans = trace(&service, second["trace_id"].as_str().unwrap(), Some("ada")).await;
    let root = span(&spans, "POST /v1/agents/{name}/invoke");
    assert!(root["parent_span_id"].is_null());
    // Stored in Ada's namespace: another user's `s-ada` is another session.
    assert_eq!(root["attributes"]["session.id"], "ada/s-ada");
    assert_eq!(root["attributes"]["user.id"], "ada");
    assert_eq!(root["attributes"]["sextant.owner"], "ada");
    let agent = span(&spans, "invoke_agent");
    assert_eq!(agent["attributes"]["gen_ai.conversation.id"], "ada/s-ada");
    let input = span(&spans, "chat ")["attributes"]["gen_ai.input.messages"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(input.contains("My name is Ada."), "{input}");

    // Bob, and a caller naming no user, asking with Ada's session id each get a session of their
    // own: Ada's history never reaches them, and nothing says hers exists.
    for user in [Some("bob"), None] {
        let other: Value = invoke(
            json!({"input": "What is my name?", "session_id": "s-ada"}),
            user,
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(other["session_id"], "s-ada");
        assert_eq!(other["user_id"].as_str(), user, "{other}");
        // The same question without Ada's window costs fewer input tokens than her second turn.
        assert!(
            other["usage"]["input_tokens"].as_u64() < second["usage"]["input_tokens"].as_u64(),
            "{user:?} saw no history: {other}\n{second}"
        );
        let spans = trace(&service, other["trace_id"].as_str().unwrap(), user).await;
        let input = span(&spans, "chat ")["attributes"]["gen_ai.input.messages"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!input.contains("My name is Ada."), "{input}");
    }
    // Ada's trace is hers: not Bob's, not anonymous.
    let ada_trace = second["trace_id"].as_str().unwrap();
    for user in [Some("bob"), None] {
        let mut request = http().get(format!("{}/v1/traces/{ada_trace}", service.url));
        if let Some(user) = user {
            request = request.header("x-user-id", user);
        }
        assert_eq!(request.send().await.unwrap().status(), 404, "{user:?}");
    }

    // Unknown agents, fields and malformed JSON name what is wrong.
    let unknown = http()
        .post(format!("{}/v1/agents/nope/invoke", service.url))
        .json(&json!({"input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("tiny"),
        "{body}"
    );
    let typo = invoke(json!({"inptu": "hi"}), None).await.unwrap();
    assert_eq!(typo.status(), 422);
    assert!(typo.text().await.unwrap().contains("inptu"));
    let broken = http()
        .post(format!("{}/v1/chat/completions", service.url))
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let not_a_question = http()
        .post(format!("{}/v1/chat/completions", service.url))
        .json(&json!({"model": "tiny", "messages": [{"role": "assistant", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(not_a_question.status(), 400);
    drop(service);

    // The sessions are in the data dir like `sextant chat` ones, one per owner.
    let store = shared().runtime.session_store().unwrap();
    let session = store.get("ada/s-ada").await.unwrap();
    assert_eq!(session.user_id.as_deref(), Some("ada"));
    assert_eq!(session.turns.len(), 2);
    assert_eq!(store.get("bob/s-ada").await.unwrap().turns.len(), 1);
    assert_eq!(store.get("s-ada").await.unwrap().user_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_401_413_429_and_504() {
    let mut settings = ServeConfig {
        max_concurrent_requests: 1,
        max_body_bytes: 4096,
        request_timeout_secs: 2.0,
        ..settings()
    };
    let token = add_key(&mut settings, "tester", &[Role::User]);
    let token = token.as_str();
    let server = Server::with_settings(shared().runtime.clone(), settings).unwrap();
    let service = TestServer::start(server).await;
    let url = format!("{}/v1/chat/completions", service.url);
    let ask = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "Tell me a long story about the sea."}]});

    let anonymous = http().post(&url).json(&ask("tiny")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    let wrong = http()
        .post(&url)
        .bearer_auth("not-the-token")
        .json(&ask("tiny"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body = wrong.text().await.unwrap();
    assert!(
        !body.contains("not-the-token") && !body.contains(token),
        "{body}"
    );
    // Health and metrics stay open for probes and scrapers.
    let health = http()
        .get(format!("{}/healthz", service.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let huge =
        json!({"model": "tiny", "messages": [{"role": "user", "content": "x".repeat(8192)}]});
    let too_large = http()
        .post(&url)
        .bearer_auth(token)
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);

    // One slot: a long streamed turn holds it, the next request is refused at once.
    let mut long = ask("slow");
    long["stream"] = json!(true);
    let holder = http()
        .post(&url)
        .bearer_auth(token)
        .json(&long)
        .send()
        .await
        .unwrap();
    assert_eq!(holder.status(), 200);
    let refused = http()
        .post(&url)
        .bearer_auth(token)
        .json(&ask("tiny"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    // The long turn runs into the 2 s timeout: the stream ends with an error event and [DONE].
    let events = holder.text().await.unwrap();
    assert!(events.contains(r#""code":"timeout""#), "{events}");
    assert!(events.trim_end().ends_with("data: [DONE]"), "{events}");

    // Not streamed, a timeout is 504, and the cut turn's spans say so.
    let timed_out = http()
        .post(&url)
        .bearer_auth(token)
        .json(&ask("slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(timed_out.status(), 504);
    let trace_id = timed_out.headers()["x-trace-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let spans = trace_with(&service, &trace_id, Some(token), None, "POST").await;
    assert_eq!(span(&spans, "invoke_agent")["status"]["code"], "error");
    assert_eq!(
        span(&spans, "POST")["attributes"]["http.response.status_code"],
        504
    );
}
