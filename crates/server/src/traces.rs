//! The service's trace endpoints: read one trace, search traces, give feedback on one. Each sees
//! only the traces of the caller's turns (admins: every trace); any other trace, one that exists
//! included, is the same 404.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sextant_tracker::tracking::{Feedback, TrackingError};
use sextant_tracker::{LocalTraceStore, TraceFilter, TraceOrder, TracePage, TraceQuery};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::server::ServiceState;
use crate::turn::{self, may_read, readable_owner};

type AppState = State<Arc<ServiceState>>;

/// The most traces one search answers.
const MAX_PAGE: usize = 500;
/// The longest filter accepted, in bytes.
const MAX_FILTER_BYTES: usize = 4_096;

fn not_found() -> ApiError {
    ApiError::not_found(
        "trace_not_found",
        None,
        "no such trace among this caller's turns".into(),
    )
}

fn store(state: &ServiceState) -> Result<LocalTraceStore, ApiError> {
    state.telemetry.trace_store().cloned().ok_or_else(|| {
        ApiError::not_found(
            "trace_store_disabled",
            None,
            "the local trace store is off ([telemetry] local_store = false)".into(),
        )
    })
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, sextant_tracker::TraceStoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| match e {
            sextant_tracker::TraceStoreError::Filter(error) => {
                ApiError::invalid(Some("filter"), error.to_string())
            }
            other => ApiError::internal(other.to_string()),
        })
}

/// The trace `id` (32 hex digits) when the caller may read it: its owner, an end user of it, or
/// an admin (who also reads traces no service turn owns, like a `sextant run`'s).
async fn readable_trace(
    state: &ServiceState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &str,
) -> Result<(LocalTraceStore, String), ApiError> {
    let id = id.to_ascii_lowercase();
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::invalid(
            None,
            "a trace id is 32 hex digits (the `x-trace-id` of a turn's response)",
        ));
    }
    let store = store(state)?;
    let lookup = {
        let (store, id) = (store.clone(), id.clone());
        move || store.owner(&id)
    };
    let mut owner = blocking(lookup.clone()).await?;
    if owner.is_none() {
        // A turn that just ended may still be queued for export: flush once and look again.
        let telemetry = state.telemetry.clone();
        let _ = tokio::task::spawn_blocking(move || telemetry.force_flush()).await;
        owner = blocking(lookup).await?;
    }
    let asserted = turn::header(headers, turn::USER_HEADER);
    let readable = readable_owner(caller, asserted.as_deref());
    match owner {
        Some(Some(owner)) if may_read(readable.as_deref(), &owner) => Ok((store, id)),
        Some(None) if readable.is_none() => Ok((store, id)),
        _ => Err(not_found()),
    }
}

/// `GET /v1/traces/{id}`: a trace's spans from the local store.
pub async fn trace(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (store, id) = readable_trace(&state, &caller, &headers, &id).await?;
    let spans = {
        let id = id.clone();
        blocking(move || store.spans(&id)).await?
    };
    Ok(Json(json!({"trace_id": id, "spans": spans})).into_response())
}

/// `GET /v1/traces?filter=…&order_by=…&limit=…&page_token=…`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    #[serde(default)]
    filter: String,
    #[serde(default)]
    order_by: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    page_token: Option<String>,
}

/// `GET /v1/traces`: the caller's traces matching a filter (the language of
/// `sextant traces search`), newest first unless `order_by` says otherwise, a page at a time.
pub async fn search(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<TracePage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(None, e.body_text()))?;
    if query.filter.len() > MAX_FILTER_BYTES {
        return Err(ApiError::invalid(
            Some("filter"),
            format!("the filter is longer than {MAX_FILTER_BYTES} bytes"),
        ));
    }
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid(
            Some("limit"),
            format!("`limit` is between 1 and {MAX_PAGE}"),
        ));
    }
    let filter = TraceFilter::parse(&query.filter)
        .map_err(|e| ApiError::invalid(Some("filter"), e.to_string()))?;
    let order = match query.order_by.as_deref() {
        Some(text) => TraceOrder::parse(text)
            .map_err(|e| ApiError::invalid(Some("order_by"), e.to_string()))?,
        None => TraceOrder::default(),
    };
    let asserted = turn::header(&headers, turn::USER_HEADER);
    let search = TraceQuery {
        filter,
        order,
        limit,
        page_token: query.page_token,
        owner: readable_owner(&caller, asserted.as_deref()),
    };
    let store = store(&state)?;
    let page = blocking(move || store.search(&search)).await?;
    Ok(Json(page))
}

/// `POST /v1/traces/{id}/feedback`: `{"name": "thumbs", "value": false, "rationale": "…",
/// "user_id": "…"}` from the trace's owner, stored as a HUMAN assessment (on MLflow when it is
/// the tracking backend) and searchable as `feedback.NAME`.
pub async fn feedback(
    State(state): AppState,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Feedback>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(feedback) = body?;
    let (_, trace_id) = readable_trace(&state, &caller, &headers, &id).await?;
    let by = match &caller.principal {
        Some(principal) => principal.user.clone(),
        None => turn::header(&headers, turn::USER_HEADER).unwrap_or_default(),
    };
    let assessment = feedback
        .into_assessment(&trace_id, &by, jiff::Timestamp::now().as_millisecond())
        .map_err(|error| ApiError::invalid(None, error.to_string()))?;
    let body = json!({
        "trace_id": trace_id,
        "name": assessment.name,
        "value": assessment.value,
        "rationale": assessment.rationale,
        "source": {
            "source_type": assessment.source.source_type.as_str(),
            "source_id": assessment.source.source_id,
        },
    });
    state
        .runtime
        .log_assessment(assessment)
        .await
        .map_err(|error| match error {
            TrackingError::Invalid { .. } => ApiError::invalid(None, error.to_string()),
            other => ApiError::unavailable(format!("the feedback was not recorded: {other}")),
        })?;
    state.counters.record_feedback();
    Ok((StatusCode::CREATED, Json(body)).into_response())
}
