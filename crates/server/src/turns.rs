//! Durable turns over HTTP: `GET /v1/turns` (the caller's turns), `GET /v1/turns/{id}` (one, with
//! the calls waiting for approval) and `POST /v1/turns/{id}/decisions` (approve, deny or edit
//! them; the turn then goes on, here or in the background). Only the turn's owner (or an admin)
//! sees a turn; for anyone else it does not exist. And, at start-up and every lease period, the
//! turns a stopped process (this replica or another) left running are taken over and finished.

use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sextant_agent::approval::{Decision, decision_assessment, record_decision};
use sextant_agent::turn_state::{TurnState, TurnStatus};
use sextant_agent::turn_store::{TurnFilter, TurnStore, TurnStoreError};
use sextant_agent::{Agent, AgentOutcome};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::server::ServiceState;
use crate::turn::{self, may_read, readable_owner};

type AppState = State<Arc<ServiceState>>;

fn not_found() -> ApiError {
    ApiError::not_found(
        "turn_not_found",
        None,
        "no such turn among this caller's turns".into(),
    )
}

fn store(state: &ServiceState) -> Result<Arc<dyn TurnStore>, ApiError> {
    state
        .runtime
        .checkpoints()
        .map(|c| c.store.clone())
        .ok_or_else(|| {
            ApiError::not_found(
                "turns_disabled",
                None,
                "turns are not checkpointed here ([state] checkpoints = false)".into(),
            )
        })
}

fn store_error(error: TurnStoreError) -> ApiError {
    match error {
        TurnStoreError::NotFound(_) => not_found(),
        TurnStoreError::Rejected(message) => ApiError::invalid(Some("decisions"), message),
        TurnStoreError::Leased { .. } => ApiError::conflict(error.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

/// Turn `id` when `caller` may see it; the same 404 otherwise.
async fn visible_turn(
    state: &ServiceState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
) -> Result<TurnState, ApiError> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid(
            None,
            "a turn id is 32 hex digits (the `turn_id` of a paused turn's response)",
        ));
    }
    let stored = store(state)?.load(id).await.map_err(store_error)?;
    let asserted = turn::header(headers, turn::USER_HEADER);
    let readable = readable_owner(caller, asserted.as_deref());
    // A turn started outside the service (`sextant run`) has no owner: only admins see it.
    match &stored.owner {
        Some(owner) if may_read(readable.as_deref(), owner) => Ok(stored),
        None if readable.is_none() => Ok(stored),
        _ => Err(not_found()),
    }
}

/// A turn as the API shows it.
fn turn_json(turn: &TurnState) -> Value {
    json!({
        "turn_id": turn.id,
        "status": turn.status,
        "agent": turn.agent,
        "trace_id": turn.trace_id,
        "steps": turn.step,
        "usage": {
            "input_tokens": turn.usage.input_tokens,
            "output_tokens": turn.usage.output_tokens,
            "total_tokens": turn.usage.total(),
        },
        "pending_approvals": turn.pending_approvals(),
        "tool_calls": turn.records,
        "answer": turn.answer,
        "stop_reason": turn.stop_reason,
        "error": turn.error,
        "updated_at_ms": turn.updated_at_ms,
    })
}

/// `GET /v1/turns?status=awaiting_approval&limit=N`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// `GET /v1/turns`: the caller's turns, most recently written first.
pub async fn list(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(None, e.body_text()))?;
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(TurnStatus::parse(text).ok_or_else(|| {
            ApiError::invalid(
                Some("status"),
                format!(
                    "`{text}` is not a turn status: running, awaiting_approval, completed or failed"
                ),
            )
        })?),
    };
    let limit = query.limit.unwrap_or(20).clamp(1, 200);
    let asserted = turn::header(&headers, turn::USER_HEADER);
    let readable = readable_owner(&caller, asserted.as_deref());
    // Owners of a service key's end users are `KEY/USER`: read widely, keep what may be read.
    let turns = store(&state)?
        .list(&TurnFilter {
            status,
            owner: None,
            limit: 1000,
        })
        .await
        .map_err(store_error)?;
    let data: Vec<_> = turns
        .into_iter()
        .filter(|t| match &t.owner {
            Some(owner) => may_read(readable.as_deref(), owner),
            None => readable.is_none(),
        })
        .take(limit)
        .map(|t| {
            json!({
                "turn_id": t.id,
                "status": t.status,
                "agent": t.agent,
                "trace_id": t.trace_id,
                "pending_approvals": t.pending_approvals,
                "updated_at_ms": t.updated_at_ms,
            })
        })
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

/// `GET /v1/turns/{id}`.
pub async fn get(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let turn = visible_turn(&state, &caller, &headers, &id).await?;
    Ok(Json(turn_json(&turn)))
}

/// One decision of `POST /v1/turns/{id}/decisions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// The call decided (`pending_approvals[].call_id`).
    call_id: String,
    /// `approve`, `deny` or `edit`.
    decision: String,
    /// For `deny`: what the model is told.
    #[serde(default)]
    message: Option<String>,
    /// For `edit`: the arguments to run the call with.
    #[serde(default)]
    arguments: Option<Value>,
}

/// The body of `POST /v1/turns/{id}/decisions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionsRequest {
    decisions: Vec<DecisionRequest>,
    /// Wait for the turn to go on and answer with its result (default); `false`: answer at once
    /// (202) and let it go on in the background.
    #[serde(default = "yes")]
    wait: bool,
}

fn yes() -> bool {
    true
}

impl DecisionRequest {
    fn decision(&self) -> Result<Decision, ApiError> {
        match (self.decision.as_str(), &self.arguments) {
            ("approve", None) => Ok(Decision::Approve),
            ("deny", None) => Ok(Decision::Deny {
                message: self.message.clone(),
            }),
            ("edit", Some(arguments)) => Ok(Decision::Edit {
                arguments: arguments.clone(),
            }),
            ("edit", None) => Err(ApiError::invalid(
                Some("arguments"),
                "an `edit` decision needs `arguments`",
            )),
            ("approve" | "deny", Some(_)) => Err(ApiError::invalid(
                Some("arguments"),
                "`arguments` go only with an `edit` decision",
            )),
            (other, _) => Err(ApiError::invalid(
                Some("decision"),
                format!("`{other}` is not a decision: approve, deny or edit"),
            )),
        }
    }
}

/// `POST /v1/turns/{id}/decisions`: decides calls of a paused turn (all or some); once none
/// waits, the turn goes on — awaited (the answer as `invoke` gives it) or in the background (202).
pub async fn decide(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<DecisionsRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    let stored = visible_turn(&state, &caller, &headers, &id).await?;
    if request.decisions.is_empty() {
        return Err(ApiError::invalid(Some("decisions"), "`decisions` is empty"));
    }
    let agent = agent_for(&state, &stored).await?;
    let waiting = stored.pending_approvals();
    let mut decided = Vec::new();
    for item in &request.decisions {
        let decision = item.decision()?;
        let call = waiting
            .iter()
            .find(|w| w.call_id == item.call_id)
            .ok_or_else(|| {
                ApiError::invalid(
                    Some("call_id"),
                    format!(
                        "turn {id} has no call `{}` waiting for a decision",
                        item.call_id
                    ),
                )
            })?;
        agent
            .check_decision(call, &decision)
            .map_err(|message| ApiError::invalid(Some("arguments"), message))?;
        decided.push((call.clone(), decision));
    }
    let by = caller.principal.as_ref().map(|p| p.user.clone());
    let turns = store(&state)?;
    let updated = turns
        .update(&id, &mut |turn| {
            for (call, decision) in &decided {
                turn.decide(&call.call_id, decision.clone(), by.clone())?;
            }
            Ok(())
        })
        .await
        .map_err(store_error)?;
    for (call, decision) in &decided {
        let trace_id = record_decision(
            updated.traceparent.as_deref(),
            &id,
            call,
            decision,
            by.as_deref(),
        )
        .or(updated.trace_id.clone());
        if let Some(trace_id) = trace_id {
            state.runtime.with_run(|run| {
                run.log_assessment(decision_assessment(
                    &trace_id,
                    call,
                    decision,
                    by.as_deref(),
                ))
            });
        }
    }
    if updated.status != TurnStatus::Running {
        return Ok((StatusCode::OK, Json(turn_json(&updated))).into_response());
    }
    if !request.wait {
        let body = turn_json(&updated);
        let background = state.clone();
        tokio::spawn(async move {
            if let Err(error) = resume(&background, &agent, &updated).await {
                tracing::error!(turn = %updated.id, "resuming the turn failed: {}", error.message);
            }
        });
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    let timeout = state.request_timeout;
    let outcome = tokio::time::timeout(timeout, resume(&state, &agent, &updated))
        .await
        .map_err(|_| ApiError::timeout(timeout.as_secs_f64()))??;
    let mut body = crate::routes::outcome_body(&outcome);
    body["status"] = json!(if outcome.pending_approvals.is_empty() {
        "completed"
    } else {
        "awaiting_approval"
    });
    Ok(Json(body).into_response())
}

/// The agent that ran `turn`: by its registry URI, else the `agents_dir` file (or the built-in
/// assistant) whose agent has its name.
async fn agent_for(state: &ServiceState, turn: &TurnState) -> Result<Arc<Agent>, ApiError> {
    if let Some(source) = turn.agent_source.as_deref()
        && sextant_tracker::model_registry::ModelUri::is_uri(source)
    {
        return Ok(state.agents.get(source).await?.0);
    }
    let stem = state
        .agents
        .names()
        .into_iter()
        .find(|stem| {
            state
                .agents
                .config_of(stem)
                .is_some_and(|config| config.name == turn.agent)
        })
        .ok_or_else(|| {
            ApiError::unavailable(format!(
                "turn {} was run by agent `{}`, which this service does not serve",
                turn.id, turn.agent
            ))
        })?;
    Ok(state.agents.get(&stem).await?.0)
}

/// Goes on with `turn` under a request slot, then adds it to its session once completed and
/// counts it.
async fn resume(
    state: &ServiceState,
    agent: &Agent,
    turn: &TurnState,
) -> Result<AgentOutcome, ApiError> {
    let _permit = state
        .slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::too_many_requests(state.settings.max_concurrent_requests))?;
    let started = Instant::now();
    let result = agent.resume(&turn.id, None, None).await;
    let latency = started.elapsed();
    state.counters.record_turn(latency, result.as_ref().ok());
    if let Ok(outcome) = &result
        && let Some(finished) =
            crate::monitors::FinishedTurn::of(agent.name(), &turn.question, outcome, latency)
    {
        state.monitors.submit(finished);
    }
    let outcome = result.map_err(|error| match &error {
        sextant_agent::AgentError::State { message, .. } if message.contains("is being run by") => {
            ApiError::conflict(message.clone())
        }
        _ => ApiError::turn_failed(&error),
    })?;
    if let Some(session_id) = &turn.session_id
        && let Err(error) = sextant_agent::session::record_turn(
            &state.sessions,
            session_id,
            &turn.question,
            &outcome,
        )
        .await
    {
        tracing::error!("storing a turn of session {session_id} failed: {error}");
    }
    Ok(outcome)
}

/// Takes over and finishes the turns a stopped process left running, once now and then every
/// lease period (another replica may stop at any time); a turn another process holds, or whose
/// agent this service does not serve, is left alone.
pub(crate) async fn resume_orphans(state: Arc<ServiceState>) {
    let Some(checkpoints) = state.runtime.checkpoints().cloned() else {
        return;
    };
    let mut every = tokio::time::interval(checkpoints.lease);
    loop {
        every.tick().await;
        if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let orphans = match checkpoints.store.orphaned().await {
            Ok(orphans) => orphans,
            Err(error) => {
                tracing::warn!("looking for turns left running: {error}");
                continue;
            }
        };
        for id in orphans {
            let Ok(turn) = checkpoints.store.load(&id).await else {
                continue;
            };
            let agent = match agent_for(&state, &turn).await {
                Ok(agent) => agent,
                Err(error) => {
                    tracing::debug!(turn = %id, "not resuming: {}", error.message);
                    continue;
                }
            };
            tracing::info!(turn = %id, agent = %turn.agent, "resuming a turn left running");
            if let Err(error) = resume(&state, &agent, &turn).await {
                tracing::warn!(turn = %id, "resuming the turn failed: {}", error.message);
            }
        }
    }
}
