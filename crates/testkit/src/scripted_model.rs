//! [`ScriptedModelServer`]: an OpenAI-compatible chat-completions server whose "model" answers
//! from a script — tool calls, a text, or no answer at all — one reply per request, and which
//! records every request and whether it was answered. It is for tests that must make a model do
//! one exact thing across processes (a turn stopped mid-way and resumed in another process, a
//! call that needs approval served by two replicas), which no real model does on demand; real
//! models are tested against the llama.cpp server and Ollama elsewhere. A request with
//! `stream: true` gets the same reply as server-sent chunks, as OpenAI streams them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// One scripted reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Answer with this text.
    Text(String),
    /// Ask for these tool calls: `(name, arguments JSON text)`; ids are `call_{reply}_{i}`.
    ToolCalls(Vec<(String, String)>),
    /// Never answer (the request stays open until the client goes away).
    Hang,
    /// Answer as the inner reply after waiting this long (a slow model).
    Delayed(std::time::Duration, Box<Reply>),
}

impl Reply {
    /// A text reply.
    pub fn text(text: &str) -> Self {
        Self::Text(text.to_owned())
    }

    /// This reply, given after `ms` milliseconds.
    pub fn after_ms(self, ms: u64) -> Self {
        Self::Delayed(std::time::Duration::from_millis(ms), Box::new(self))
    }

    /// A reply asking for one call of `tool` with `arguments`.
    pub fn call(tool: &str, arguments: Value) -> Self {
        Self::ToolCalls(vec![(tool.to_owned(), arguments.to_string())])
    }
}

/// A request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request body.
    pub body: Value,
    /// Whether it was answered (a `Hang` reply was not).
    pub answered: bool,
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    /// Given once the script ran out, for ever (a benchmark's model).
    forever: Option<Reply>,
    served: usize,
    received: Vec<Received>,
}

/// See the [module docs](self).
pub struct ScriptedModelServer {
    /// The base URL an OpenAI client takes: `http://127.0.0.1:PORT/v1`.
    pub url: String,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedModelServer {
    /// Serves `replies`, in order, on a free loopback port; past the end every request gets a 500
    /// saying the script ran out.
    pub async fn start(replies: Vec<Reply>) -> Self {
        let script = Arc::new(Mutex::new(Script {
            replies: replies.into(),
            ..Script::default()
        }));
        let app = axum::Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free loopback port");
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, script, task }
    }

    /// Answers every request with `reply`, for ever, without keeping what it received (a
    /// benchmark's instant model).
    pub async fn always(reply: Reply) -> Self {
        let server = Self::start(Vec::new()).await;
        server.script.lock().unwrap().forever = Some(reply);
        server
    }

    /// Adds `reply` to the end of the script.
    pub fn push(&self, reply: Reply) {
        self.script.lock().unwrap().replies.push_back(reply);
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }
}

impl Drop for ScriptedModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn complete(State(script): State<Arc<Mutex<Script>>>, Json(body): Json<Value>) -> Response {
    let stream = body["stream"] == json!(true);
    let (index, reply) = {
        let mut script = script.lock().unwrap();
        let index = script.served;
        script.served += 1;
        let reply = script.replies.pop_front();
        let reply = if reply.is_none() && script.forever.is_some() {
            script.forever.clone()
        } else {
            script.received.push(Received {
                body: body.clone(),
                answered: !matches!(reply, Some(Reply::Hang)),
            });
            reply
        };
        (index, reply)
    };
    let reply = match reply {
        Some(Reply::Delayed(wait, inner)) => {
            tokio::time::sleep(wait).await;
            Some(*inner)
        }
        other => other,
    };
    let message = match reply {
        Some(Reply::Delayed(..)) => unreachable!("unwrapped above"),
        None => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": {"message": "the scripted model's script ran out"}})),
            )
                .into_response();
        }
        Some(Reply::Hang) => std::future::pending().await,
        Some(Reply::Text(text)) => json!({"role": "assistant", "content": text}),
        Some(Reply::ToolCalls(calls)) => json!({
            "role": "assistant",
            "content": null,
            "tool_calls": calls.iter().enumerate().map(|(i, (name, arguments))| json!({
                "id": format!("call_{index}_{i}"),
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            })).collect::<Vec<_>>(),
        }),
    };
    let finish = if message.get("tool_calls").is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    if stream {
        return streamed(index, &body, message, finish);
    }
    Json(json!({
        "id": format!("chatcmpl-scripted-{index}"),
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage(),
    }))
    .into_response()
}

/// The reply as OpenAI streams one: a chunk with the whole delta (text, or tool calls with their
/// index), a chunk with the finish reason and the usage, then `[DONE]`.
fn streamed(index: usize, body: &Value, message: Value, finish: &str) -> Response {
    let mut delta = json!({"role": "assistant"});
    if let Some(text) = message["content"].as_str() {
        delta["content"] = json!(text);
    }
    if let Some(calls) = message["tool_calls"].as_array() {
        delta["tool_calls"] = json!(
            calls
                .iter()
                .enumerate()
                .map(|(i, call)| {
                    let mut call = call.clone();
                    call["index"] = json!(i);
                    call
                })
                .collect::<Vec<_>>()
        );
    }
    let chunk = |choice: Value, usage: Value| {
        json!({
            "id": format!("chatcmpl-scripted-{index}"),
            "object": "chat.completion.chunk",
            "created": 0,
            "model": body["model"],
            "choices": [choice],
            "usage": usage,
        })
    };
    let events = [
        chunk(
            json!({"index": 0, "delta": delta, "finish_reason": null}),
            Value::Null,
        ),
        chunk(
            json!({"index": 0, "delta": {}, "finish_reason": finish}),
            usage(),
        ),
    ];
    let mut text: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    text.push_str("data: [DONE]\n\n");
    ([("content-type", "text/event-stream")], text).into_response()
}

/// Every reply's usage: 20 prompt tokens (8 of them from the cache), 10 completion tokens (4 of
/// them reasoning), in OpenAI's shape.
fn usage() -> Value {
    json!({
        "prompt_tokens": 20,
        "completion_tokens": 10,
        "total_tokens": 30,
        "prompt_tokens_details": {"cached_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 4},
    })
}
