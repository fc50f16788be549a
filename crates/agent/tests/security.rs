//! No secrets or content where they do not belong (issue 17, item 7), each reproduced first:
//! credentials and queries of configured URLs never reach an error, an upstream error body is
//! summarised rather than relayed, and with content capture off neither `interaction.json` nor
//! a span status carries the turn's content.
//!
//! The servers here are test doubles for fault injection only: they answer every request with a
//! chosen failure, or refuse connections, which a real provider cannot be made to do on demand.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use sextant_agent::model_files::{ALL_MINILM_L6_V2, ModelCache};
use sextant_agent::providers::ollama::OllamaChatModel;
use sextant_agent::providers::openai::OpenAiChatModel;
use sextant_agent::run_logging::{INTERACTION_ARTIFACT, log_turn};
use sextant_agent::testing::ScriptedChatModel;
use sextant_agent::{Agent, ChatError, ChatModel, ChatRequest, Message};
use sextant_tools::ToolSet;
use sextant_tools::builtin::{Calculator, CurrentTime, HttpFetch};
use sextant_tools::config::{CurrentTimeConfig, HttpFetchConfig};
use sextant_tracker::local::LocalTrackingStore;
use sextant_tracker::tracking::{RunSpec, Tracker};
use sextant_tracker::{StoredSpan, Telemetry, TelemetryConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What must never show: the parts of a configured URL that carry credentials or a key.
const SECRETS: [&str; 3] = ["cred-user", "cred-pass", "query-key"];

fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} shows in: {text}");
    }
}

/// A loopback port where nothing listens: connections are refused at once.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn request() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user("hi")],
        ..Default::default()
    }
}

/// Fault injection: a server that answers every request with `status` and `body`, as a failing
/// provider, or the proxy in front of it, does. Returns its `http://127.0.0.1:port`.
async fn failing_server_double(status: u16, content_type: &'static str, body: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                read_request(&mut socket).await;
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    url
}

/// Reads one request (head and a content-length body), so the answer is not cut by a reset.
async fn read_request(socket: &mut tokio::net::TcpStream) {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = socket.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return;
            }
        }
    }
}

#[tokio::test]
async fn connection_errors_name_the_server_without_credentials_or_query() {
    let port = closed_port();
    let openai = OpenAiChatModel::new(
        &format!("http://cred-user:cred-pass@127.0.0.1:{port}/v1?key=query-key"),
        None,
        "m",
    );
    let error = openai.chat(&request()).await.unwrap_err();
    assert!(matches!(error, ChatError::Connect { .. }), "{error:?}");
    assert_no_secret(&format!("{error} {error:?}"));
    assert!(
        error.to_string().contains(&format!(
            "could not reach openai at http://127.0.0.1:{port}/v1:"
        )),
        "{error}"
    );

    let ollama = OllamaChatModel::new(
        &format!("http://cred-user:cred-pass@127.0.0.1:{port}/?key=query-key"),
        "m",
    )
    .unwrap();
    let error = ollama.chat(&request()).await.unwrap_err();
    assert!(matches!(error, ChatError::Connect { .. }), "{error:?}");
    assert_no_secret(&format!("{error} {error:?}"));
    assert!(
        error.to_string().contains(&format!(
            "could not reach ollama at http://127.0.0.1:{port}/:"
        )),
        "{error}"
    );
}

#[tokio::test]
async fn upstream_error_bodies_are_summarised_not_relayed() {
    let page = "<html><body>proxy http://admin:hunter2@10.1.2.3/ failed: body-secret</body></html>";
    let openai = failing_server_double(500, "text/html", page.into()).await;
    let error = OpenAiChatModel::new(&format!("{openai}/v1"), None, "m")
        .chat(&request())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert_eq!(text, "openai answered HTTP 500: internal server error");

    let ollama = failing_server_double(502, "text/plain", format!("bad gateway: {page}")).await;
    let error = OllamaChatModel::new(&ollama, "m")
        .unwrap()
        .chat(&request())
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "ollama answered HTTP 502: bad gateway");

    // A JSON error keeps its message, on one line and short.
    let long = format!(
        r#"{{"error":{{"message":"model overloaded\nsee http://cred-user:cred-pass@status.example/?k=query-key {}"}}}}"#,
        "x".repeat(1000)
    );
    let openai = failing_server_double(400, "application/json", long).await;
    let error = OpenAiChatModel::new(&format!("{openai}/v1"), None, "m")
        .chat(&request())
        .await
        .unwrap_err();
    let ChatError::Http {
        status, message, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(*status, 400);
    assert!(
        message.starts_with("model overloaded see http://status.example/ xxx"),
        "{message}"
    );
    assert!(message.chars().count() <= 201, "{message}");
    assert_no_secret(message);
}

#[tokio::test]
async fn an_unreadable_answer_is_not_quoted_in_the_error() {
    let answer = r#"{"id":"x","choices":[{"message":{"content":"private-answer-words"#;
    let openai = failing_server_double(200, "application/json", answer.into()).await;
    let error = OpenAiChatModel::new(&format!("{openai}/v1"), None, "m")
        .chat(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ChatError::InvalidResponse { .. }),
        "{error:?}"
    );
    assert!(
        !error.to_string().contains("private-answer-words"),
        "{error}"
    );

    let ollama = failing_server_double(200, "application/json", answer.into()).await;
    let error = OllamaChatModel::new(&ollama, "m")
        .unwrap()
        .chat(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(error, ChatError::InvalidResponse { .. }),
        "{error:?}"
    );
    assert!(
        !error.to_string().contains("private-answer-words"),
        "{error}"
    );
}

#[tokio::test]
async fn a_failed_model_pull_names_the_index_without_its_credentials() {
    let home = tempfile::tempdir().unwrap();
    let (hub, index) = (closed_port(), closed_port());
    let cache = ModelCache::builder()
        .root(home.path())
        .hf_endpoint(format!("http://cred-user:cred-pass@127.0.0.1:{hub}"))
        .index_url(format!(
            "https://cred-user:cred-pass@127.0.0.1:{index}/simple?token=query-key"
        ))
        .connect_timeout(Duration::from_secs(3))
        .progress(false)
        .build()
        .unwrap();
    let error = cache.ensure(&ALL_MINILM_L6_V2).await.unwrap_err();
    let text = format!("{error} {error:?}");
    assert_no_secret(&text);
    assert!(
        text.contains(&format!("package index https://127.0.0.1:{index}/simple")),
        "{text}"
    );
    assert!(
        text.contains(&format!("Hugging Face Hub http://127.0.0.1:{hub}/")),
        "{text}"
    );
}

/// One logged turn of an agent that calls the calculator; the `interaction.json` it left.
async fn logged_interaction(capture_content: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::new(
        Arc::new(LocalTrackingStore::open(&dir.path().join("data")).unwrap()),
        dir.path().join("spool"),
    );
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[("calculator", r#"{"expression": "6 * 7"}"#)])
        .then_text("The private answer is 42.");
    let agent = Agent::builder("logged", Arc::new(model))
        .tools(ToolSet::new().with(Calculator))
        .capture_content(capture_content)
        .build();
    let question = "my private question";
    let result = agent.run(question).await;
    let run = tracker
        .start_run(RunSpec {
            experiment: "Default".into(),
            ..RunSpec::default()
        })
        .unwrap();
    let status = log_turn(
        &run,
        &agent,
        question,
        result.as_ref(),
        Duration::from_millis(5),
    );
    let report = run.end(status).await;
    let bytes = tracker
        .store()
        .read_artifact(&report.run_id.unwrap(), INTERACTION_ARTIFACT)
        .await
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn interaction_json_holds_content_only_with_content_capture() {
    let content = ["private question", "private answer", "6 * 7"];
    let captured = logged_interaction(true).await;
    for text in content {
        assert!(captured.contains(text), "{text} missing: {captured}");
    }
    let uncaptured = logged_interaction(false).await;
    for text in content {
        assert!(!uncaptured.contains(text), "{text} logged: {uncaptured}");
    }
    let interaction: serde_json::Value = serde_json::from_str(&uncaptured).unwrap();
    assert_eq!(interaction["stop_reason"], "answered");
    assert_eq!(interaction["tool_calls"][0]["name"], "calculator");
    assert!(interaction["tool_calls"][0].get("result").is_none());
}

/// One turn whose tool calls fail with messages that quote the model's arguments.
fn failing_tool_turn(capture_content: bool) -> Vec<StoredSpan> {
    let dir = tempfile::tempdir().unwrap();
    let telemetry = Telemetry::builder(&TelemetryConfig {
        local_store: Some(dir.path().join("traces.db")),
        ..TelemetryConfig::default()
    })
    .build()
    .unwrap();
    let _subscriber = telemetry.set_thread_default();
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[
            ("current_time", r#"{"timezone": "Private/Zone"}"#),
            (
                "http_fetch",
                r#"{"url": "http://localhost:9/p?session=private-session"}"#,
            ),
        ])
        .then_text("done");
    let tools = ToolSet::new()
        .with(CurrentTime::from_config(&CurrentTimeConfig::default()).unwrap())
        .with(
            HttpFetch::from_config(&HttpFetchConfig {
                allowed_hosts: vec!["localhost".into()],
                ..HttpFetchConfig::default()
            })
            .unwrap(),
        );
    let agent = Agent::builder("status", Arc::new(model))
        .tools(tools)
        .capture_content(capture_content)
        .build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(agent.run("what time is it?")).unwrap();
    assert!(outcome.tool_calls.iter().all(|call| call.is_error));
    telemetry.force_flush().unwrap();
    let spans = telemetry
        .trace_store()
        .unwrap()
        .spans(outcome.trace_id.as_deref().unwrap())
        .unwrap();
    drop(_subscriber);
    telemetry.shutdown().unwrap();
    spans
}

#[test]
fn without_content_capture_no_span_status_quotes_the_tool_arguments() {
    let spans = failing_tool_turn(false);
    let failed: Vec<&StoredSpan> = spans
        .iter()
        .filter(|span| span.name.starts_with("execute_tool"))
        .collect();
    assert_eq!(failed.len(), 2);
    for span in &failed {
        assert!(span.is_error(), "{}", span.name);
    }
    let recorded = serde_json::to_string(&spans).unwrap();
    for content in ["Private/Zone", "private-session"] {
        assert!(!recorded.contains(content), "{content} in {recorded}");
    }

    // With capture on, the same trace carries them: the switch, not the tool, keeps them out.
    let recorded = serde_json::to_string(&failing_tool_turn(true)).unwrap();
    assert!(recorded.contains("Private/Zone"), "{recorded}");
}
