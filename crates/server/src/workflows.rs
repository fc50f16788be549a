//! `POST /v1/workflows/{name}/invoke`: a workflow file's stem in `[serve] workflows_dir`, run on
//! the caller's input under a request slot and the request timeout, traced as one trace (the
//! server span, then `invoke_workflow {name}` and a span per node, continuing a trusted caller's
//! `traceparent`) and logged as one tracking run with per-node metrics. A request never names a
//! path; each workflow is built once, on first use.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sextant_agent::TurnContext;
use sextant_agent::workflow::{Workflow, WorkflowConfig, WorkflowError, log_workflow};
use sextant_tracker::conventions as sc;
use sextant_tracker::tracking::RunSpec;
use tracing::Instrument;
use tracing::field::Empty;

use crate::agents::{toml_stems, valid_stem};
use crate::auth::{Caller, valid_user_id};
use crate::error::ApiError;
use crate::server::ServiceState;
use crate::turn;

/// The workflows a service runs, built on first use.
#[derive(Default)]
pub struct WorkflowCatalog {
    built: Mutex<HashMap<String, Arc<Workflow>>>,
}

/// The body of `POST /v1/workflows/{name}/invoke`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRequest {
    /// The workflow's input.
    input: String,
    /// The conversation it belongs to (on the spans as `session.id`).
    #[serde(default)]
    session_id: Option<String>,
}

impl WorkflowCatalog {
    async fn get(&self, state: &ServiceState, name: &str) -> Result<Arc<Workflow>, ApiError> {
        if let Some(built) = self.lock().get(name) {
            return Ok(built.clone());
        }
        let dir = state.settings.workflows_dir.as_deref();
        let file = dir
            .filter(|_| valid_stem(name))
            .map(|dir| dir.join(format!("{name}.toml")))
            .filter(|file| file.is_file());
        let Some(file) = file else {
            let shown: String = name
                .chars()
                .take(64)
                .collect::<String>()
                .escape_debug()
                .to_string();
            return Err(ApiError::not_found(
                "workflow_not_found",
                None,
                format!(
                    "no workflow `{shown}`: name one of {}",
                    toml_stems(dir).join(", ")
                ),
            ));
        };
        let config = WorkflowConfig::load(&file).map_err(|error| {
            tracing::error!("the workflow file {} is invalid: {error}", file.display());
            ApiError::internal(format!(
                "the workflow `{name}` is misconfigured (see the service log)"
            ))
        })?;
        let built = Workflow::build(&config, state.runtime.build_context())
            .await
            .map_err(|error| {
                tracing::error!("the workflow `{name}` cannot be built: {error}");
                ApiError::unavailable(format!(
                    "the workflow `{name}` cannot be built (see the service log)"
                ))
            })?;
        let built = Arc::new(built);
        self.lock().insert(name.to_owned(), built.clone());
        Ok(built)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Workflow>>> {
        self.built.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `POST /v1/workflows/{name}/invoke`; see the [module docs](self).
pub async fn invoke(
    State(state): State<Arc<ServiceState>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Json<WorkflowRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    if request.input.trim().is_empty() {
        return Err(ApiError::invalid(Some("input"), "`input` is empty"));
    }
    if let Some(id) = &request.session_id
        && !valid_user_id(id)
    {
        return Err(ApiError::invalid(
            Some("session_id"),
            "`session_id` must be at most 128 characters of letters, digits and - _ . : @",
        ));
    }
    let _permit = state
        .slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::too_many_requests(state.settings.max_concurrent_requests))?;
    if state.draining.load(Ordering::SeqCst) {
        return Err(ApiError::unavailable("the service is shutting down"));
    }
    let workflow = state.workflows.get(&state, &name).await?;
    let owner = turn::key_owner(&caller);
    let user_id = caller.principal.as_ref().map(|p| p.user.clone());
    let session = request.session_id.as_ref().map(|id| {
        if owner.is_empty() {
            id.clone()
        } else {
            format!("{owner}/{id}")
        }
    });
    let span = tracing::info_span!(
        "http_request",
        otel.name = "POST /v1/workflows/{name}/invoke",
        otel.kind = "server",
        otel.status_code = Empty,
        otel.status_description = Empty,
        { sc::HTTP_REQUEST_METHOD } = "POST",
        { sc::HTTP_ROUTE } = "/v1/workflows/{name}/invoke",
        { sc::HTTP_RESPONSE_STATUS_CODE } = Empty,
        { sc::GEN_AI_WORKFLOW_NAME } = workflow.name(),
        { sc::SESSION_ID } = session.as_deref(),
        { sc::USER_ID } = user_id.as_deref(),
        { sc::SEXTANT_OWNER } = owner.as_str(),
        { sc::SEXTANT_CALLER_TRACEPARENT } = Empty,
        { sc::ERROR_TYPE } = Empty,
    );
    state.follow_caller_trace(
        &span,
        turn::header(&headers, "traceparent"),
        turn::header(&headers, "tracestate"),
        false,
        &caller,
    );
    let trace_id = sextant_tracker::current_trace_id(&span);
    let context = TurnContext {
        conversation_id: session,
        user_id,
        ..TurnContext::default()
    };
    let started = Instant::now();
    let timeout = state.request_timeout;
    // `None`: the request timed out.
    let result = tokio::time::timeout(
        timeout,
        workflow
            .run(&request.input, &context)
            .instrument(span.clone()),
    )
    .await
    .ok();
    let latency = started.elapsed();
    // One tracking run per invocation, delivered in the background (it spools while the backend
    // is away): the response does not wait for it.
    if let Some(result) = &result
        && state.config().tracking.log_runs
    {
        match state.runtime.tracker().and_then(|tracker| {
            tracker.start_run(RunSpec {
                experiment: state.config().tracking.experiment.clone(),
                run_name: Some(format!("workflow {}", workflow.name())),
                tags: [("sextant.workflow".to_owned(), workflow.name().to_owned())].into(),
                ..RunSpec::default()
            })
        }) {
            Ok(run) => {
                let status = log_workflow(&run, &workflow, result.as_ref(), latency);
                tokio::spawn(async move {
                    run.end(status).await;
                });
            }
            Err(error) => tracing::warn!("the workflow's tracking run cannot start: {error}"),
        }
    }
    let (status, response) = match result {
        None => {
            let error = ApiError::timeout(timeout.as_secs_f64());
            (error.status, error.into_response())
        }
        Some(Err(error)) => {
            let api = match &error {
                WorkflowError::Node { .. } => ApiError::unavailable(error.to_string()),
                _ => ApiError::internal(error.to_string()),
            };
            (api.status, api.into_response())
        }
        Some(Ok(outcome)) => {
            let body = json!({
                "output": outcome.output,
                "workflow": workflow.name(),
                "trace_id": outcome.trace_id,
                "usage": {
                    "input_tokens": outcome.usage.input_tokens,
                    "output_tokens": outcome.usage.output_tokens,
                    "total_tokens": outcome.usage.total(),
                },
                "nodes": outcome.nodes,
            });
            (axum::http::StatusCode::OK, Json(body).into_response())
        }
    };
    span.record(sc::HTTP_RESPONSE_STATUS_CODE, i64::from(status.as_u16()));
    if status.is_server_error() {
        sextant_tracker::mark_failed(&span, "workflow_failed", "the workflow failed");
    }
    let mut response = response;
    if let Some(id) = trace_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        response.headers_mut().insert("x-trace-id", id);
    }
    Ok(response)
}
