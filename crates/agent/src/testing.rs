//! Test and bench support only: [`ScriptedChatModel`], a chat model that answers from a script,
//! instantly. It exists to measure the framework's own overhead and to inject faults (errors,
//! hangs, malformed tool calls) that a real model cannot be made to produce on demand. It is never
//! used by the CLI or an agent configuration.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::chat::{ChatModel, ChatRequest, ChatResponse, FinishReason, ToolCall, Usage};
use crate::error::ChatError;

enum Step {
    Respond(ChatResponse),
    Fail(ChatError),
    Hang,
}

/// A chat model that plays back a script of responses, errors and hangs, one per call, and repeats
/// the last response when the script runs out. For tests and benches only.
pub struct ScriptedChatModel {
    script: Mutex<VecDeque<Step>>,
    last: Mutex<Option<ChatResponse>>,
    calls: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<ChatRequest>>>,
}

impl Default for ScriptedChatModel {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptedChatModel {
    /// An empty script.
    pub fn new() -> Self {
        Self {
            script: Mutex::new(VecDeque::new()),
            last: Mutex::new(None),
            calls: Arc::new(AtomicUsize::new(0)),
            requests: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn push(self, step: Step) -> Self {
        self.script.lock().expect("script lock").push_back(step);
        self
    }

    /// Next, answer `text`.
    pub fn then_text(self, text: &str) -> Self {
        self.push(Step::Respond(ChatResponse {
            content: text.to_owned(),
            tool_calls: Vec::new(),
            usage: Usage {
                input_tokens: 20,
                output_tokens: text.split_whitespace().count() as u64,
                ..Usage::default()
            },
            finish_reason: FinishReason::Stop,
            model: "scripted".into(),
            id: None,
        }))
    }

    /// Next, call tools: each `(name, arguments JSON text)`; ids are `call_<step>_<i>`.
    pub fn then_tool_calls(self, calls: &[(&str, &str)]) -> Self {
        let step = self.script.lock().expect("script lock").len();
        let tool_calls = calls
            .iter()
            .enumerate()
            .map(|(i, (name, arguments))| ToolCall {
                id: format!("call_{step}_{i}"),
                name: (*name).to_owned(),
                arguments: (*arguments).to_owned(),
            })
            .collect();
        self.push(Step::Respond(ChatResponse {
            content: String::new(),
            tool_calls,
            usage: Usage {
                input_tokens: 20,
                output_tokens: 10,
                ..Usage::default()
            },
            finish_reason: FinishReason::ToolCalls,
            model: "scripted".into(),
            id: None,
        }))
    }

    /// Next, fail with `error`.
    pub fn then_error(self, error: ChatError) -> Self {
        self.push(Step::Fail(error))
    }

    /// Next, never answer (a hung server).
    pub fn then_hang(self) -> Self {
        self.push(Step::Hang)
    }

    /// A counter of the calls made so far.
    pub fn call_counter(&self) -> Arc<AtomicUsize> {
        self.calls.clone()
    }

    /// The requests received so far.
    pub fn requests(&self) -> Arc<Mutex<Vec<ChatRequest>>> {
        self.requests.clone()
    }
}

#[async_trait]
impl ChatModel for ScriptedChatModel {
    fn provider(&self) -> &str {
        "scripted"
    }

    fn model(&self) -> &str {
        "scripted"
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ChatError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.requests
            .lock()
            .expect("requests lock")
            .push(request.clone());
        let step = self.script.lock().expect("script lock").pop_front();
        match step {
            Some(Step::Respond(response)) => {
                *self.last.lock().expect("last lock") = Some(response.clone());
                Ok(response)
            }
            Some(Step::Fail(error)) => Err(error),
            Some(Step::Hang) => std::future::pending().await,
            None => {
                self.last
                    .lock()
                    .expect("last lock")
                    .clone()
                    .ok_or_else(|| ChatError::Request {
                        provider: "scripted".into(),
                        message: "the script is empty".into(),
                    })
            }
        }
    }
}
