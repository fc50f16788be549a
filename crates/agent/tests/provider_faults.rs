//! Fault injection for the HTTP providers: a test double server on 127.0.0.1 that answers each
//! connection from a script (HTTP 429/500, a hang, malformed JSON, a good answer). It stands in for
//! the failures a real server cannot be made to produce on demand; the providers' success paths run
//! against the real llama.cpp server in `openai_provider.rs` / `ollama_provider.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sextant_agent::providers::ollama::OllamaChatModel;
use sextant_agent::providers::openai::OpenAiChatModel;
use sextant_agent::retry::{ResilientChatModel, RetryPolicy};
use sextant_agent::{ChatError, ChatModel, ChatRequest, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone)]
enum Reply {
    Status(u16, &'static str),
    Json(&'static str),
    Hang,
}

/// The fault-injection double: serves `script` in order, one reply per request, then repeats the last.
struct FaultyServerDouble {
    url: String,
    requests: Arc<AtomicUsize>,
    bodies: Arc<std::sync::Mutex<Vec<String>>>,
}

impl FaultyServerDouble {
    async fn start(script: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (counter, seen) = (requests.clone(), bodies.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let reply = script.get(n).or(script.last()).cloned().unwrap();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let request = read_request(&mut socket).await;
                    seen.lock().unwrap().push(request);
                    let (status, body) = match reply {
                        Reply::Hang => {
                            tokio::time::sleep(Duration::from_secs(3600)).await;
                            return;
                        }
                        Reply::Status(status, body) => (status, body),
                        Reply::Json(body) => (200, body),
                    };
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                });
            }
        });
        Self {
            url,
            requests,
            bodies,
        }
    }
}

/// Reads one HTTP request (headers and a content-length body).
async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = socket.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&data).into_owned()
}

const OPENAI_OK: &str = r#"{"id":"x","object":"chat.completion","created":0,"model":"double","choices":[{"index":0,"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

fn policy(max_retries: u32, timeout_ms: u64) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(10),
        timeout: Duration::from_millis(timeout_ms),
    }
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user("hi")],
        ..Default::default()
    }
}

#[tokio::test]
async fn openai_retries_429_and_500_then_succeeds() {
    let server = FaultyServerDouble::start(vec![
        Reply::Status(
            429,
            r#"{"error":{"message":"slow down","type":"rate_limit"}}"#,
        ),
        Reply::Status(500, r#"{"error":{"message":"boom","type":"server"}}"#),
        Reply::Json(OPENAI_OK),
    ])
    .await;
    let model = OpenAiChatModel::new(
        &format!("{}/v1", server.url),
        Some("sk-secret-test-key".into()),
        "double",
    );
    let model = ResilientChatModel::new(Arc::new(model), policy(3, 5_000));
    let response = model.chat(&request()).await.unwrap();
    assert_eq!(response.content, "fine");
    assert_eq!(response.usage.input_tokens, 3);
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);
    // The key is sent as a bearer token, and only there.
    let first = server.bodies.lock().unwrap()[0].clone();
    assert!(
        first
            .to_ascii_lowercase()
            .contains("authorization: bearer sk-secret-test-key"),
        "{first}"
    );
}

#[tokio::test]
async fn openai_client_error_is_not_retried_and_never_shows_the_key() {
    let server = FaultyServerDouble::start(vec![Reply::Status(
        401,
        r#"{"error":{"message":"bad key","type":"auth"}}"#,
    )])
    .await;
    let model = OpenAiChatModel::new(
        &format!("{}/v1", server.url),
        Some("sk-secret-test-key".into()),
        "double",
    );
    let model = ResilientChatModel::new(Arc::new(model), policy(3, 5_000));
    let error = model.chat(&request()).await.unwrap_err();
    assert!(
        matches!(error, ChatError::Http { status: 401, .. }),
        "{error:?}"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert!(!format!("{error} {error:?}").contains("sk-secret-test-key"));
}

#[tokio::test]
async fn openai_hang_times_out_per_call() {
    let server = FaultyServerDouble::start(vec![Reply::Hang, Reply::Json(OPENAI_OK)]).await;
    let model = OpenAiChatModel::new(&format!("{}/v1", server.url), None, "double");
    let model = ResilientChatModel::new(Arc::new(model), policy(1, 300));
    let response = model.chat(&request()).await.unwrap();
    assert_eq!(response.content, "fine");

    let server = FaultyServerDouble::start(vec![Reply::Hang]).await;
    let model = OpenAiChatModel::new(&format!("{}/v1", server.url), None, "double");
    let model = ResilientChatModel::new(Arc::new(model), policy(0, 300));
    let error = model.chat(&request()).await.unwrap_err();
    assert!(matches!(error, ChatError::Timeout { .. }), "{error:?}");
}

#[tokio::test]
async fn openai_malformed_json_is_a_clear_error() {
    let server =
        FaultyServerDouble::start(vec![Reply::Json(r#"{"id": "x", "choices": [ {"#)]).await;
    let model = OpenAiChatModel::new(&format!("{}/v1", server.url), None, "double");
    let error = model.chat(&request()).await.unwrap_err();
    assert!(
        matches!(error, ChatError::InvalidResponse { .. }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn openai_unreachable_server_names_the_endpoint() {
    // Bind and drop a listener to get a port that refuses connections.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}/v1");
    let model = OpenAiChatModel::new(&base, None, "double");
    let error = model.chat(&request()).await.unwrap_err();
    assert!(matches!(error, ChatError::Connect { .. }), "{error:?}");
    assert!(error.to_string().contains(&base), "{error}");
}

#[tokio::test]
async fn ollama_statuses_and_malformed_lines() {
    let ok = r#"{"model":"double","created_at":"","message":{"role":"assistant","content":"fine"},"done":true,"total_duration":1,"load_duration":1,"prompt_eval_count":4,"prompt_eval_duration":1,"eval_count":2,"eval_duration":1}"#;
    let server = FaultyServerDouble::start(vec![
        Reply::Status(503, r#"{"error":"loading model"}"#),
        Reply::Json(ok),
    ])
    .await;
    let model = OllamaChatModel::new(&server.url, "double").unwrap();
    let model = ResilientChatModel::new(Arc::new(model), policy(2, 5_000));
    let response = model.chat(&request()).await.unwrap();
    assert_eq!(response.content, "fine");
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens),
        (4, 2)
    );

    let server = FaultyServerDouble::start(vec![Reply::Status(
        404,
        r#"{"error":"model 'nope' not found"}"#,
    )])
    .await;
    let model = OllamaChatModel::new(&server.url, "nope").unwrap();
    let error = model.chat(&request()).await.unwrap_err();
    assert!(
        error.to_string().contains("model 'nope' not found"),
        "{error}"
    );
    assert!(!error.is_retryable());

    let server = FaultyServerDouble::start(vec![Reply::Json("{not json")]).await;
    let model = OllamaChatModel::new(&server.url, "double").unwrap();
    let error = model.chat(&request()).await.unwrap_err();
    assert!(
        matches!(error, ChatError::InvalidResponse { .. }),
        "{error:?}"
    );
}

/// The embedders share the chat providers' clients: the same double checks their wire format
/// (the OpenAI and Ollama embeddings shapes), the order of returned vectors and their failures.
mod embedders {
    use super::*;
    use sextant_agent::providers::ollama::OllamaEmbedder;
    use sextant_agent::providers::openai::OpenAiEmbedder;
    use sextant_memory::{EmbedError, embed};

    const OPENAI_EMBEDDINGS: &str = r#"{"object":"list","model":"double","data":[{"object":"embedding","index":1,"embedding":[0.0,1.0]},{"object":"embedding","index":0,"embedding":[1.0,0.0]}],"usage":{"prompt_tokens":7,"total_tokens":7}}"#;

    #[tokio::test]
    async fn openai_embeddings_come_back_in_input_order_with_the_key_only_in_the_header() {
        let double = FaultyServerDouble::start(vec![Reply::Json(OPENAI_EMBEDDINGS)]).await;
        let key = "sk-embed-secret-1234";
        let embedder =
            OpenAiEmbedder::new(&format!("{}/v1", double.url), Some(key.into()), "double", 2);
        let vectors = embed(&embedder, &["first".into(), "second".into()])
            .await
            .unwrap();
        assert_eq!(vectors, vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        let request = double.bodies.lock().unwrap()[0].clone();
        assert!(request.starts_with("POST /v1/embeddings"), "{request}");
        assert!(
            request.contains(&format!("Bearer {key}")),
            "the key goes in the header"
        );
        let body: serde_json::Value =
            serde_json::from_str(request.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["input"], serde_json::json!(["first", "second"]));
        assert_eq!(body["model"], "double");
    }

    #[tokio::test]
    async fn openai_embedding_failures_are_upstream_errors_without_the_key() {
        let double = FaultyServerDouble::start(vec![Reply::Status(
            500,
            r#"{"error":{"message":"model not loaded","type":"server_error"}}"#,
        )])
        .await;
        let embedder = OpenAiEmbedder::new(
            &format!("{}/v1", double.url),
            Some("sk-never-shown".into()),
            "double",
            2,
        );
        let err = embed(&embedder, &["x".into()]).await.unwrap_err();
        assert!(matches!(err, EmbedError::Upstream { .. }), "{err:?}");
        assert!(err.to_string().contains("model not loaded"), "{err}");
        assert!(!format!("{err:?}").contains("sk-never-shown"));
    }

    #[tokio::test]
    async fn ollama_embeddings_shapes_and_failures() {
        let double = FaultyServerDouble::start(vec![
            Reply::Json(r#"{"model":"nomic-embed-text","embeddings":[[0.6,0.8],[1.0,0.0]]}"#),
            Reply::Json(r#"{"model":"nomic-embed-text","embeddings":[[0.6,0.8,0.0]]}"#),
            Reply::Json(r#"{"embeddings": "#),
            Reply::Status(
                404,
                r#"{"error":"model \"nomic-embed-text\" not found, try pulling it first"}"#,
            ),
        ])
        .await;
        let embedder = OllamaEmbedder::new(&double.url, "nomic-embed-text", 2).unwrap();
        let vectors = embed(&embedder, &["a".into(), "b".into()]).await.unwrap();
        assert_eq!(vectors[0], vec![0.6, 0.8]);
        let request = double.bodies.lock().unwrap()[0].clone();
        assert!(request.starts_with("POST /api/embed"), "{request}");
        assert!(request.contains(r#""input":["a","b"]"#), "{request}");

        let wrong_dimension = embed(&embedder, &["a".into()]).await.unwrap_err();
        assert!(
            wrong_dimension
                .to_string()
                .contains("3 dimensions; it declares 2"),
            "{wrong_dimension}"
        );
        let malformed = embed(&embedder, &["a".into()]).await.unwrap_err();
        assert_eq!(malformed.error_type(), "invalid_response", "{malformed}");
        let missing = embed(&embedder, &["a".into()]).await.unwrap_err();
        assert!(
            missing.to_string().contains("HTTP 404")
                && missing.to_string().contains("try pulling it"),
            "{missing}"
        );
    }
}
