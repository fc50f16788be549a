//! The service's agents over the Agent2Agent protocol (A2A 1.0, JSON-RPC binding): each agent at
//! `POST /a2a/{agent}/` with its card at `GET /a2a/{agent}/.well-known/agent-card.json`, both
//! behind the service's keys.
//!
//! `SendMessage` runs a turn and answers with the finished task (or, with
//! `configuration.returnImmediately`, the working one); `SendStreamingMessage` streams the task,
//! a working status, the answer as artifact pieces and the final status over SSE; `GetTask`,
//! `ListTasks` and `CancelTask` see only the caller's tasks. A message's `contextId` is the turn's
//! session (kept per owner, as every session is), so a client continues a conversation by sending
//! it back. The turn's server span continues the caller's `traceparent` under the same trust rule
//! as the other endpoints. Errors are JSON-RPC errors with A2A's codes, sent with HTTP 200.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};
use sextant_agent::a2a::wire::{
    self, AgentCapabilities, AgentCard, AgentInterface, AgentSkill, Artifact, Message, Part, Role,
    SendMessageParams, StreamResponse, Task, TaskArtifactUpdateEvent, TaskIdParams, TaskState,
    TaskStatus, TaskStatusUpdateEvent, code,
};
use sextant_agent::a2a::{PROTOCOL_VERSION, VERSION_HEADER};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::server::ServiceState;
use crate::turn::{self, TurnEntry, TurnInput};

type AppState = State<Arc<ServiceState>>;

/// A JSON-RPC error: code and message.
struct RpcError {
    code: i64,
    message: String,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn from_api(error: &ApiError) -> Self {
        let code = match error.status.as_u16() {
            400 | 422 => code::INVALID_PARAMS,
            404 => code::INVALID_PARAMS,
            _ => code::INTERNAL_ERROR,
        };
        Self::new(code, error.message.clone())
    }

    fn response(&self, id: &Value) -> Response {
        Json(json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": self.code, "message": self.message},
        }))
        .into_response()
    }
}

fn result(id: &Value, result: impl serde::Serialize) -> Response {
    Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
}

/// One task: whose it is, where it is, and how to stop it.
struct TaskEntry {
    owner: String,
    task: Task,
    abort: Option<tokio::task::AbortHandle>,
    created: Instant,
}

/// The tasks of the service, by id; bounded (the oldest finished ones go first).
#[derive(Default)]
pub struct TaskStore {
    tasks: Mutex<HashMap<String, TaskEntry>>,
}

impl TaskStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TaskEntry>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, owner: &str, task: Task, max: usize) {
        let mut tasks = self.lock();
        if tasks.len() >= max.max(1) {
            let oldest = tasks
                .iter()
                .filter(|(_, e)| e.task.status.state.is_terminal())
                .min_by_key(|(_, e)| e.created)
                .or_else(|| tasks.iter().min_by_key(|(_, e)| e.created))
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                tasks.remove(&oldest);
            }
        }
        tasks.insert(
            task.id.clone(),
            TaskEntry {
                owner: owner.to_owned(),
                task,
                abort: None,
                created: Instant::now(),
            },
        );
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut TaskEntry)) {
        if let Some(entry) = self.lock().get_mut(id) {
            change(entry);
        }
    }

    fn get(&self, id: &str, readable: Option<&str>) -> Option<Task> {
        self.lock()
            .get(id)
            .filter(|e| turn::may_read(readable, &e.owner))
            .map(|e| e.task.clone())
    }
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

fn status(state: TaskState, message: Option<Message>) -> TaskStatus {
    TaskStatus {
        state,
        message,
        timestamp: Some(now()),
    }
}

/// Where clients reach the service, for the card.
fn base_url(state: &ServiceState, headers: &HeaderMap) -> String {
    if let Some(url) = &state.settings.a2a.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = turn::header(headers, "host").unwrap_or_else(|| state.settings.addr.clone());
    format!("http://{host}")
}

/// `GET /a2a/{agent}/.well-known/agent-card.json`: the agent's card; its skills are the agent
/// itself and its tools.
pub async fn card(
    State(state): AppState,
    Path(agent): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (built, version) = state.agents.get(&agent).await?;
    let config = state.agents.config_of(&agent);
    let description = config
        .as_ref()
        .map(|c| c.description.clone())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| format!("The Sextant agent `{}`", built.name()));
    let mut skills = vec![AgentSkill {
        id: built.name().to_owned(),
        name: built.name().to_owned(),
        description: description.clone(),
        tags: vec!["agent".into()],
        examples: Vec::new(),
    }];
    skills.extend(built.tools().iter().map(|tool| AgentSkill {
        id: tool.name().to_owned(),
        name: tool.name().to_owned(),
        description: tool.description().to_owned(),
        tags: vec!["tool".into()],
        examples: tool.examples().into_iter().map(|e| e.question).collect(),
    }));
    let url = format!("{}/a2a/{agent}/", base_url(&state, &headers));
    let secured = !state.keys.is_empty();
    let card = AgentCard {
        name: built.name().to_owned(),
        description,
        supported_interfaces: vec![AgentInterface {
            url,
            protocol_binding: "JSONRPC".into(),
            protocol_version: PROTOCOL_VERSION.into(),
        }],
        version: version.unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()),
        capabilities: AgentCapabilities {
            streaming: true,
            push_notifications: false,
        },
        default_input_modes: vec!["text/plain".into()],
        default_output_modes: vec!["text/plain".into()],
        skills,
        security_schemes: secured
            .then(|| json!({"bearer": {"httpAuthSecurityScheme": {"scheme": "Bearer"}}})),
        security_requirements: secured.then(|| json!([{"schemes": {"bearer": {}}}])),
    };
    Ok(Json(card).into_response())
}

/// `POST /a2a/{agent}/`: one JSON-RPC request.
pub async fn rpc(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Path(agent): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let request: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => {
            return RpcError::new(code::PARSE_ERROR, format!("the body is not JSON: {error}"))
                .response(&Value::Null);
        }
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    if request.get("jsonrpc").and_then(Value::as_str) != Some("2.0")
        || !matches!(id, Value::String(_) | Value::Number(_) | Value::Null)
    {
        return RpcError::new(
            code::INVALID_REQUEST,
            "not a JSON-RPC 2.0 request (jsonrpc \"2.0\", a method, an id)",
        )
        .response(&id);
    }
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        return RpcError::new(code::INVALID_REQUEST, "the request has no `method`").response(&id);
    };
    if let Some(version) = turn::header(&headers, VERSION_HEADER)
        && version.split('.').next() != Some("1")
    {
        return RpcError::new(
            code::VERSION_NOT_SUPPORTED,
            format!(
                "A2A version `{}` is not supported: this agent speaks {PROTOCOL_VERSION}",
                version.escape_debug()
            ),
        )
        .response(&id);
    }
    let params = request.get("params").cloned().unwrap_or(Value::Null);
    let readable = turn::readable_owner(&caller, None);
    match method {
        "SendMessage" | "SendStreamingMessage" => {
            let params: SendMessageParams = match serde_json::from_value(params) {
                Ok(params) => params,
                Err(error) => {
                    return RpcError::new(code::INVALID_PARAMS, format!("params: {error}"))
                        .response(&id);
                }
            };
            let streaming = method == "SendStreamingMessage";
            send(&state, caller, &agent, &headers, id, params, streaming).await
        }
        "GetTask" | "CancelTask" => {
            let params: TaskIdParams = match serde_json::from_value(params) {
                Ok(params) => params,
                Err(error) => {
                    return RpcError::new(code::INVALID_PARAMS, format!("params: {error}"))
                        .response(&id);
                }
            };
            let Some(mut task) = state.a2a_tasks.get(&params.id, readable.as_deref()) else {
                return RpcError::new(code::TASK_NOT_FOUND, "Task not found").response(&id);
            };
            if method == "GetTask" {
                if let Some(length) = params.history_length {
                    let keep = task.history.len().saturating_sub(length as usize);
                    task.history.drain(..keep);
                }
                return result(&id, task);
            }
            if task.status.state.is_terminal() {
                return RpcError::new(
                    code::TASK_NOT_CANCELABLE,
                    format!("the task ended ({:?}); it cannot be cancelled", task.status.state),
                )
                .response(&id);
            }
            let mut cancelled = None;
            state.a2a_tasks.update(&params.id, |entry| {
                if let Some(abort) = entry.abort.take() {
                    abort.abort();
                }
                entry.task.status = status(TaskState::Canceled, None);
                cancelled = Some(entry.task.clone());
            });
            match cancelled {
                Some(task) => result(&id, task),
                None => RpcError::new(code::TASK_NOT_FOUND, "Task not found").response(&id),
            }
        }
        "ListTasks" => {
            let context = params.get("contextId").and_then(Value::as_str);
            let mut tasks: Vec<(Instant, Task)> = state
                .a2a_tasks
                .lock()
                .values()
                .filter(|e| turn::may_read(readable.as_deref(), &e.owner))
                .filter(|e| context.is_none_or(|c| e.task.context_id == c))
                .map(|e| (e.created, e.task.clone()))
                .collect();
            tasks.sort_by_key(|(created, _)| std::cmp::Reverse(*created));
            let page_size = params
                .get("pageSize")
                .and_then(Value::as_u64)
                .unwrap_or(50)
                .clamp(1, 100) as usize;
            let total = tasks.len();
            let page: Vec<Task> = tasks.into_iter().take(page_size).map(|(_, t)| t).collect();
            result(
                &id,
                json!({"tasks": page, "nextPageToken": "", "pageSize": page_size, "totalSize": total}),
            )
        }
        "message/send" | "message/stream" | "tasks/get" | "tasks/cancel" => RpcError::new(
            code::METHOD_NOT_FOUND,
            format!(
                "`{method}` is A2A 0.3; this agent speaks A2A {PROTOCOL_VERSION} (SendMessage, SendStreamingMessage, GetTask, CancelTask, ListTasks) with the header A2A-Version: {PROTOCOL_VERSION}"
            ),
        )
        .response(&id),
        _ => RpcError::new(
            code::METHOD_NOT_FOUND,
            format!(
                "no method `{}`: this agent has SendMessage, SendStreamingMessage, GetTask, CancelTask, ListTasks",
                method.chars().take(64).collect::<String>().escape_debug()
            ),
        )
        .response(&id),
    }
}

/// Runs a message's turn as a task: answered when done, streamed as it goes, or returned at once
/// (`returnImmediately`).
async fn send(
    state: &Arc<ServiceState>,
    caller: Caller,
    agent: &str,
    headers: &HeaderMap,
    id: Value,
    params: SendMessageParams,
    streaming: bool,
) -> Response {
    let message = params.message;
    if message.role != Role::User {
        return RpcError::new(
            code::INVALID_PARAMS,
            "message.role: the client's message is ROLE_USER",
        )
        .response(&id);
    }
    let question = message.joined_text();
    if question.trim().is_empty() {
        return RpcError::new(
            code::INVALID_PARAMS,
            "message.parts: no text (this agent reads text parts)",
        )
        .response(&id);
    }
    if message.task_id.is_some() {
        return RpcError::new(
            code::UNSUPPORTED_OPERATION,
            "message.taskId: this agent's tasks end with their answer; continue the conversation with contextId instead",
        )
        .response(&id);
    }
    let context_id = message.context_id.clone().unwrap_or_else(wire::new_id);
    let owner = turn::key_owner(&caller);
    let input = TurnInput {
        model: agent.to_owned(),
        question,
        history: None,
        session_id: Some(context_id.clone()),
        user_id: None,
        caller,
    };
    let entry = TurnEntry::A2a {
        method: if streaming {
            "SendStreamingMessage"
        } else {
            "SendMessage"
        },
        request_id: match &id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
    };
    let mut turn = match state.prepare_turn(entry, headers, input).await {
        Ok(turn) => turn,
        Err(error) => return RpcError::from_api(&error).response(&id),
    };
    let task_id = wire::new_id();
    let mut user_message = message;
    user_message.context_id = Some(context_id.clone());
    user_message.task_id = Some(task_id.clone());
    let submitted = Task {
        id: task_id.clone(),
        context_id: context_id.clone(),
        status: status(TaskState::Submitted, None),
        artifacts: Vec::new(),
        history: vec![user_message],
        metadata: turn
            .trace_id
            .as_ref()
            .map(|trace| json!({"sextant": {"trace_id": trace}})),
    };
    state
        .a2a_tasks
        .insert(&owner, submitted.clone(), state.settings.a2a.max_tasks);

    let (events, receiver) = mpsc::unbounded_channel::<StreamResponse>();
    let _ = events.send(StreamResponse::Task(submitted.clone()));
    let (done, finished) = tokio::sync::oneshot::channel::<Task>();
    let task_state = state.clone();
    let artifact_id = wire::new_id();
    let run = {
        let (task_id, context_id) = (task_id.clone(), context_id.clone());
        async move {
            let working = status(TaskState::Working, None);
            task_state
                .a2a_tasks
                .update(&task_id, |e| e.task.status = working.clone());
            let _ = events.send(StreamResponse::StatusUpdate(TaskStatusUpdateEvent {
                task_id: task_id.clone(),
                context_id: context_id.clone(),
                status: working,
            }));
            let first = std::sync::atomic::AtomicBool::new(true);
            let pieces = events.clone();
            let (piece_task, piece_context, piece_artifact) =
                (task_id.clone(), context_id.clone(), artifact_id.clone());
            let on_content = move |piece: &str| {
                let append = !first.swap(false, std::sync::atomic::Ordering::Relaxed);
                let _ = pieces.send(StreamResponse::ArtifactUpdate(TaskArtifactUpdateEvent {
                    task_id: piece_task.clone(),
                    context_id: piece_context.clone(),
                    artifact: Artifact {
                        artifact_id: piece_artifact.clone(),
                        name: Some("answer".into()),
                        parts: vec![Part::text(piece)],
                        metadata: None,
                    },
                    append,
                    last_chunk: false,
                }));
            };
            let outcome = turn
                .run(&task_state, streaming.then_some(&on_content as _))
                .await;
            let agent_message = |text: String| {
                let mut message = Message::text(Role::Agent, text);
                message.context_id = Some(context_id.clone());
                message.task_id = Some(task_id.clone());
                message
            };
            let (final_status, artifacts) = match outcome {
                Ok(outcome) => {
                    if streaming && let Some(at) = outcome.answer.rfind("\n\nSources:\n") {
                        on_content(&outcome.answer[at..]);
                    }
                    (
                        status(
                            TaskState::Completed,
                            Some(agent_message(outcome.answer.clone())),
                        ),
                        vec![Artifact {
                            artifact_id: artifact_id.clone(),
                            name: Some("answer".into()),
                            parts: vec![Part::text(outcome.answer)],
                            metadata: None,
                        }],
                    )
                }
                Err(error) => (
                    status(
                        TaskState::Failed,
                        Some(agent_message(error.message.clone())),
                    ),
                    Vec::new(),
                ),
            };
            let mut finished = None;
            task_state.a2a_tasks.update(&task_id, |entry| {
                entry.abort = None;
                entry.task.status = final_status.clone();
                entry.task.artifacts = artifacts;
                if let Some(answer) = &final_status.message {
                    entry.task.history.push(answer.clone());
                }
                finished = Some(entry.task.clone());
            });
            let _ = events.send(StreamResponse::StatusUpdate(TaskStatusUpdateEvent {
                task_id: task_id.clone(),
                context_id: context_id.clone(),
                status: final_status,
            }));
            if let Some(task) = finished {
                let _ = done.send(task);
            }
        }
    };
    // The turn runs on its own task: a client that goes away does not cut it, CancelTask can
    // stop it, and shutdown waits for it through its request slot.
    let handle = tokio::spawn(run);
    state
        .a2a_tasks
        .update(&task_id, |e| e.abort = Some(handle.abort_handle()));

    if streaming {
        let stream_id = id.clone();
        let events = UnboundedReceiverStream::new(receiver).map(move |event| {
            Ok::<_, Infallible>(
                Event::default()
                    .data(json!({"jsonrpc": "2.0", "id": stream_id, "result": event}).to_string()),
            )
        });
        return Sse::new(events)
            .keep_alive(KeepAlive::default())
            .into_response();
    }
    let return_immediately = params
        .configuration
        .as_ref()
        .and_then(|c| c.get("returnImmediately"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if return_immediately {
        let current = state.a2a_tasks.get(&task_id, None).unwrap_or(submitted);
        return result(&id, StreamResponse::Task(current));
    }
    match finished.await {
        Ok(task) => result(&id, StreamResponse::Task(task)),
        // Cancelled while running: the store has the cancelled task.
        Err(_) => match state.a2a_tasks.get(&task_id, None) {
            Some(task) => result(&id, StreamResponse::Task(task)),
            None => RpcError::new(code::INTERNAL_ERROR, "the task was lost").response(&id),
        },
    }
}
