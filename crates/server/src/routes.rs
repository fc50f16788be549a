//! The service's endpoints.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use sextant_agent::AgentOutcome;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::agents;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::openai::{self, ChatCompletionRequest};
use crate::server::ServiceState;
use crate::turn::{self, Turn, TurnEntry, TurnInput};

type AppState = State<Arc<ServiceState>>;

/// `x-trace-id` and `traceresponse` on a turn's response.
fn trace_headers(response: &mut Response, turn: &Turn) {
    let headers = response.headers_mut();
    if let Some(id) = turn
        .trace_id
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert("x-trace-id", id);
    }
    if let Some(value) = turn
        .traceresponse
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        headers.insert("traceresponse", value);
    }
    if let Some(id) = turn
        .session_id
        .as_deref()
        .and_then(|id| HeaderValue::from_str(id).ok())
    {
        headers.insert(turn::SESSION_HEADER, id);
    }
}

/// A failed turn's error response, naming its trace too.
fn failed(error: ApiError, turn: &Turn) -> Response {
    let mut response = error.into_response();
    trace_headers(&mut response, turn);
    response
}

/// Sextant's extras on a response: the trace, the session, the agent version, the citations.
fn extras(turn: &Turn, outcome: &AgentOutcome) -> Value {
    json!({
        "trace_id": outcome.trace_id.as_ref().or(turn.trace_id.as_ref()),
        "session_id": turn.session_id,
        "agent": outcome.agent,
        "agent_version": turn.agent_version,
        "citations": outcome.citations,
        "tool_calls": outcome.tool_calls.iter().map(|c| &c.name).collect::<Vec<_>>(),
        "steps": outcome.steps,
        "turn_id": outcome.turn_id,
        "pending_approvals": outcome.pending_approvals,
    })
}

/// `POST /v1/chat/completions`: OpenAI's chat completions, answered by an agent.
pub async fn chat_completions(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Json<ChatCompletionRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    let (history, question) = openai::split_conversation(&request.messages)?;
    let model = if request.model.trim().is_empty() {
        state.agents.default_name().to_owned()
    } else {
        request.model.clone()
    };
    let input = TurnInput {
        model: model.clone(),
        question,
        history: Some(history),
        session_id: None,
        user_id: request.user.clone().filter(|u| !u.trim().is_empty()),
        caller,
    };
    let mut turn = state
        .prepare_turn(
            TurnEntry::Http {
                route: "/v1/chat/completions",
            },
            &headers,
            input,
        )
        .await?;
    if let Some(format) = &request.response_format {
        turn.with_response_format(format)?;
    }
    let id = openai::completion_id(turn.trace_id.as_deref());
    if !request.stream {
        let outcome = match turn.run(&state, None).await {
            Ok(outcome) => outcome,
            Err(error) => return Ok(failed(error, &turn)),
        };
        let body = openai::completion(&id, &model, &outcome, extras(&turn, &outcome));
        let mut response = Json(body).into_response();
        trace_headers(&mut response, &turn);
        return Ok(response);
    }

    let include_usage = request
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let send = |sender: &tokio::sync::mpsc::UnboundedSender<Event>, value: &Value| {
        let _ = sender.send(Event::default().data(value.to_string()));
    };
    send(
        &sender,
        &openai::chunk(
            &id,
            &model,
            json!({"role": "assistant", "content": ""}),
            None,
        ),
    );
    let mut response = Sse::new(UnboundedReceiverStream::new(receiver).map(Ok::<_, Infallible>))
        .keep_alive(KeepAlive::default())
        .into_response();
    trace_headers(&mut response, &turn);
    // The turn runs on its own task: a client that goes away does not cut it (its spans and the
    // session stay whole), and shutdown waits for it through its request slot.
    let task_state = state.clone();
    tokio::spawn(async move {
        let pieces = sender.clone();
        let (chunk_id, chunk_model) = (id.clone(), model.clone());
        let on_content = move |piece: &str| {
            send(
                &pieces,
                &openai::chunk(&chunk_id, &chunk_model, json!({"content": piece}), None),
            );
        };
        match turn.run(&task_state, Some(&on_content)).await {
            Ok(outcome) => {
                // The list of cited sources is added after the model's streamed text.
                if let Some(at) = outcome.answer.rfind("\n\nSources:\n")
                    && !outcome.citations.is_empty()
                {
                    on_content(&outcome.answer[at..]);
                }
                if !outcome.pending_approvals.is_empty() {
                    // Nothing was streamed: the model asked for calls that wait for a person.
                    on_content(&outcome.answer);
                    let _ = sender.send(
                        Event::default().event("sextant.pending_approval").data(
                            json!({
                                "turn_id": outcome.turn_id,
                                "trace_id": outcome.trace_id,
                                "pending_approvals": outcome.pending_approvals,
                            })
                            .to_string(),
                        ),
                    );
                }
                send(&sender, &openai::final_chunk(&id, &model, &outcome));
                if include_usage {
                    let extras = extras(&turn, &outcome);
                    send(&sender, &openai::usage_chunk(&id, &model, &outcome, extras));
                }
            }
            Err(error) => send(&sender, &error.body()),
        }
        let _ = sender.send(Event::default().data("[DONE]"));
    });
    Ok(response)
}

/// The body of `POST /v1/agents/{name}/invoke`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvokeRequest {
    /// The user's message.
    input: String,
    /// Continue this session (its stored turns are the history); created if new.
    #[serde(default)]
    session_id: Option<String>,
    /// Who asks.
    #[serde(default)]
    user_id: Option<String>,
}

/// `POST /v1/agents/{name}/invoke`: Sextant's own API: the answer with its trace id, usage,
/// citations and tool calls.
pub async fn invoke(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Json<InvokeRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    if request.input.trim().is_empty() {
        return Err(ApiError::invalid(Some("input"), "`input` is empty"));
    }
    let input = TurnInput {
        model: name,
        question: request.input,
        history: None,
        session_id: request.session_id,
        user_id: request.user_id,
        caller,
    };
    let mut turn = state
        .prepare_turn(
            TurnEntry::Http {
                route: "/v1/agents/{name}/invoke",
            },
            &headers,
            input,
        )
        .await?;
    let outcome = match turn.run(&state, None).await {
        Ok(outcome) => outcome,
        Err(error) => return Ok(failed(error, &turn)),
    };
    let mut body = outcome_body(&outcome);
    body["session_id"] = json!(turn.session_id);
    body["user_id"] = json!(turn.session.as_ref().and_then(|s| s.user_id.as_ref()));
    body["agent_version"] = json!(turn.agent_version);
    let mut response = Json(body).into_response();
    trace_headers(&mut response, &turn);
    Ok(response)
}

/// A turn's result as Sextant's own API gives it (`invoke`, a resumed turn's decisions).
pub(crate) fn outcome_body(outcome: &AgentOutcome) -> Value {
    json!({
        "answer": outcome.answer,
        "output": outcome.output,
        "blocked": outcome.blocked,
        "trace_id": outcome.trace_id,
        "agent": outcome.agent,
        "usage": {
            "input_tokens": outcome.usage.input_tokens,
            "output_tokens": outcome.usage.output_tokens,
            "total_tokens": outcome.usage.total(),
        },
        "citations": outcome.citations,
        "tool_calls": outcome.tool_calls,
        "steps": outcome.steps,
        "stop_reason": outcome.stop_reason,
        "prompt_versions": outcome.prompt_versions,
        "turn_id": outcome.turn_id,
        "pending_approvals": outcome.pending_approvals,
    })
}

/// `GET /v1/models`: the agents, as OpenAI lists models.
pub async fn models(State(state): AppState) -> Json<Value> {
    let data: Vec<Value> = state
        .agents
        .names()
        .into_iter()
        .map(|name| json!({"id": name, "object": "model", "created": 0, "owned_by": "sextant"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the default agent is loaded and the service is not shutting down.
pub async fn readyz(State(state): AppState) -> Response {
    if state.draining.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        )
            .into_response();
    }
    let readiness = state
        .readiness
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match readiness {
        Readiness::Ready => Json(json!({
            "status": "ready",
            "default_agent": state.agents.default_name(),
            "agents": state.agents.names(),
        }))
        .into_response(),
        Readiness::Loading => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "loading", "default_agent": state.agents.default_name()})),
        )
            .into_response(),
        // The reason is in the service log: this endpoint answers unauthenticated probes.
        Readiness::Failed => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "failed",
                "reason": "loading the default agent failed; the service log says why",
            })),
        )
            .into_response(),
    }
}

/// Whether the default agent is loaded.
#[derive(Clone, Debug)]
pub enum Readiness {
    /// Still loading (pulling or reading model weights).
    Loading,
    /// Loaded.
    Ready,
    /// Loading failed; requests will try again.
    Failed,
}

/// `GET /metrics`: every metric of the process in the Prometheus text format.
pub async fn metrics(State(state): AppState) -> Response {
    match state.telemetry.prometheus_text() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            text,
        )
            .into_response(),
        Err(error) => ApiError::internal(error.to_string()).into_response(),
    }
}

/// Fallback: an unknown path, as JSON.
pub async fn not_found() -> ApiError {
    ApiError::not_found(
        "unknown_url",
        None,
        format!(
            "no such endpoint; the service has POST /v1/chat/completions, POST /v1/agents/{{name}}/invoke, POST /v1/workflows/{{name}}/invoke, POST /mcp (MCP), POST /a2a/{{agent}}/ (A2A, card at /a2a/{{agent}}/.well-known/agent-card.json), GET /v1/models, GET /v1/traces?filter=…, GET /v1/traces/{{id}}, POST /v1/traces/{{id}}/feedback, GET /v1/turns, GET /healthz, GET /readyz, GET /metrics (agents: {})",
            agents::BUILTIN
        ),
    )
}
