//! `sextant serve`: agents behind HTTP, observing themselves.
//!
//! - `POST /v1/chat/completions`: OpenAI's chat completions (also streamed as SSE); `model` names
//!   the agent (a file stem in `[serve] agents_dir`, or `models:/name@alias`);
//! - `POST /v1/agents/{name}/invoke`: Sextant's JSON API (answer, trace id, usage, citations);
//! - `GET /v1/models`, `GET /v1/traces/{id}`, `GET /healthz`, `GET /readyz`, `GET /metrics`.
//!
//! Every turn is a trace whose root is the request's server span — or that continues the caller's
//! trace when the request carries `traceparent`; the response names it (`x-trace-id`,
//! `traceresponse`). Requests are counted and timed (`http.server.*` next to the
//! `gen_ai.client.*` histograms) for OTLP and Prometheus, and the service's life is one tracking
//! run whose counters are logged as metrics. SIGTERM or Ctrl-C drains: new turns get 503, turns
//! in flight finish within `[serve] shutdown_grace_secs`, then spans and the run are flushed.

mod agents;
mod error;
mod openai;
mod routes;
mod turn;

use std::future::IntoFuture;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sextant_agent::SextantConfig;
use sextant_agent::session::SessionStore;
use sextant_tracker::tracking::{ActiveRun, RunSpec, RunStatus};
use sextant_tracker::{HttpServerMetrics, TelemetryGuard};
use tokio::sync::Semaphore;

use crate::cli::ServeArgs;
use agents::AgentCatalog;
use error::ApiError;
use routes::Readiness;

/// What every request handler shares.
pub struct ServiceState {
    config: SextantConfig,
    agents: AgentCatalog,
    sessions: SessionStore,
    telemetry: Arc<TelemetryGuard>,
    http_metrics: HttpServerMetrics,
    /// One permit per turn in flight; shutdown waits for all of them.
    slots: Arc<Semaphore>,
    draining: AtomicBool,
    readiness: Mutex<Readiness>,
    counters: Counters,
    request_timeout: Duration,
    token: Option<String>,
    started: Instant,
}

impl ServiceState {
    /// Seconds since start: the step of the service run's metrics.
    fn uptime_step(&self) -> i64 {
        self.started.elapsed().as_secs() as i64
    }
}

/// Totals since start, logged to the service's tracking run.
#[derive(Default)]
pub struct Counters {
    requests: AtomicU64,
    turns: AtomicU64,
    failed_turns: AtomicU64,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
    latency_ms: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Vec<(&'static str, f64)> {
        let turns = self.turns.load(Ordering::Relaxed);
        let mut values = vec![
            ("requests", self.requests.load(Ordering::Relaxed) as f64),
            ("turns", turns as f64),
            (
                "failed_turns",
                self.failed_turns.load(Ordering::Relaxed) as f64,
            ),
            (
                "input_tokens",
                self.input_tokens.load(Ordering::Relaxed) as f64,
            ),
            (
                "output_tokens",
                self.output_tokens.load(Ordering::Relaxed) as f64,
            ),
        ];
        if turns > 0 {
            let total = self.latency_ms.load(Ordering::Relaxed) as f64;
            values.push(("mean_turn_latency_ms", total / turns as f64));
        }
        values
    }
}

fn positive(value: f64, key: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("[serve] {key} must be a positive number of seconds, not {value}"))
}

/// Runs the service until SIGTERM or Ctrl-C.
pub async fn serve(config: &SextantConfig, args: ServeArgs) -> anyhow::Result<()> {
    let settings = &config.serve;
    let addr = args.addr.clone().unwrap_or_else(|| settings.addr.clone());
    let request_timeout = positive(settings.request_timeout_secs, "request_timeout_secs")?;
    let grace = positive(settings.shutdown_grace_secs, "shutdown_grace_secs")?;
    let log_interval = positive(
        settings.metrics_log_interval_secs,
        "metrics_log_interval_secs",
    )?;
    anyhow::ensure!(
        settings.max_concurrent_requests > 0,
        "[serve] max_concurrent_requests must be at least 1"
    );
    let token = match &settings.auth_token_env {
        Some(name) => {
            let token = std::env::var(name).ok().filter(|t| !t.trim().is_empty());
            anyhow::ensure!(
                token.is_some(),
                "[serve] auth_token_env names {name}, which is not set; set it to the bearer token clients must send, or remove the key to serve without authentication"
            );
            token
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ([serve] addr / --addr)"))?;
    let local_addr = listener.local_addr()?;

    // The service's life is one tracking run; its traces link to it on MLflow.
    let run = start_run(config, &local_addr.to_string()).await;
    let run_id = crate::telemetry::mlflow_run_id(config, run.as_ref()).await;
    let telemetry = Arc::new(crate::telemetry::init(config, run_id.as_deref()).await?);
    let state = Arc::new(ServiceState {
        config: config.clone(),
        agents: AgentCatalog::new(config),
        sessions: SessionStore::open(config.session_store_path())?,
        http_metrics: telemetry.http_server_metrics(),
        telemetry,
        slots: Arc::new(Semaphore::new(settings.max_concurrent_requests)),
        draining: AtomicBool::new(false),
        readiness: Mutex::new(Readiness::Loading),
        counters: Counters::default(),
        request_timeout,
        token,
        started: Instant::now(),
    });
    let app = router(state.clone());

    // The default agent loads in the background; /readyz says when it is there.
    let warm = state.clone();
    tokio::spawn(async move {
        let readiness = match warm.agents.get("").await {
            Ok(_) => Readiness::Ready,
            Err(error) => {
                tracing::error!("loading the default agent failed: {}", error.message);
                Readiness::Failed(error.message)
            }
        };
        *warm.readiness.lock().unwrap_or_else(|e| e.into_inner()) = readiness;
    });
    let run = run.map(Arc::new);
    let logger = run.as_ref().map(|run| {
        let (run, counters) = (run.clone(), state.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(log_interval);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                run.log_metrics(counters.counters.snapshot(), counters.uptime_step());
            }
        })
    });

    eprintln!(
        "sextant serve: listening on http://{local_addr}  (agents: {}; default {}; auth {})",
        state.agents.names().join(", "),
        state.agents.default_name(),
        if state.token.is_some() {
            "bearer token"
        } else {
            "off"
        },
    );
    let (signalled, mut on_signal) = tokio::sync::watch::channel(false);
    let draining = state.clone();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            draining.draining.store(true, Ordering::SeqCst);
            let _ = signalled.send(true);
        })
        .into_future();
    let mut server = tokio::spawn(server);
    let finished = tokio::select! {
        result = &mut server => Some(result),
        _ = on_signal.changed() => None,
    };
    let served = match finished {
        Some(result) => result
            .context("the server task failed")?
            .context("serving failed"),
        None => {
            eprintln!(
                "sextant serve: shutting down: finishing turns in flight (up to {} s)",
                grace.as_secs_f64()
            );
            let deadline = tokio::time::Instant::now() + grace;
            let result = match tokio::time::timeout_at(deadline, &mut server).await {
                Ok(result) => result
                    .context("the server task failed")?
                    .context("serving failed"),
                Err(_) => {
                    server.abort();
                    Ok(())
                }
            };
            // Streams whose client left still run their turn; they hold a slot until done.
            let all = settings.max_concurrent_requests as u32;
            if tokio::time::timeout_at(deadline, state.slots.acquire_many(all))
                .await
                .is_err()
            {
                let left = settings.max_concurrent_requests - state.slots.available_permits();
                eprintln!(
                    "sextant serve: {left} turn(s) still running after the grace period; their spans are cut"
                );
            }
            result
        }
    };

    if let Some(logger) = logger {
        logger.abort();
        let _ = logger.await;
    }
    if let Some(run) = run.and_then(Arc::into_inner) {
        run.log_metrics(state.counters.snapshot(), state.uptime_step());
        let report = run.end(RunStatus::Finished).await;
        if !report.delivered {
            eprintln!("sextant serve: the tracking run is spooled; the next command delivers it");
        }
    }
    let telemetry = state.telemetry.clone();
    drop(state);
    tokio::task::spawn_blocking(move || {
        if let Err(error) = telemetry.force_flush() {
            tracing::warn!("exporting the service's telemetry failed: {error}");
        }
        if let Ok(guard) = Arc::try_unwrap(telemetry)
            && let Err(error) = guard.shutdown()
        {
            tracing::warn!("shutting telemetry down failed: {error}");
        }
    })
    .await?;
    eprintln!("sextant serve: stopped");
    served
}

/// The service's routes and layers.
fn router(state: Arc<ServiceState>) -> Router {
    let api = Router::new()
        .route("/v1/chat/completions", post(routes::chat_completions))
        .route("/v1/agents/{name}/invoke", post(routes::invoke))
        .route("/v1/models", get(routes::models))
        .route("/v1/traces/{id}", get(routes::trace))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .merge(api)
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), observe))
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(state.config.serve.max_body_bytes))
        .with_state(state)
}

/// Counts and times every request by its route template.
async fn observe(
    State(state): State<Arc<ServiceState>>,
    route: Option<MatchedPath>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().as_str().to_owned();
    let route = route.map_or_else(|| "unmatched".to_owned(), |r| r.as_str().to_owned());
    state.counters.requests.fetch_add(1, Ordering::Relaxed);
    state.http_metrics.request_started(&method);
    let started = Instant::now();
    let response = next.run(request).await;
    state.http_metrics.request_finished(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// With a configured token, `/v1` requests must send `Authorization: Bearer <token>`. The header
/// is compared in constant time and never logged.
async fn authenticate(
    State(state): State<Arc<ServiceState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(expected) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        if !same(given.as_bytes(), expected.as_bytes()) {
            return ApiError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

/// Equal bytes, in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SIGTERM (a container stop) or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::warn!(
                        "cannot listen for SIGTERM ({error}); Ctrl-C still stops the service"
                    );
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// The service's tracking run (with `[tracking] log_runs`), after delivering what earlier
/// processes spooled. A tracking store that cannot be opened costs the run, not the service.
async fn start_run(config: &SextantConfig, addr: &str) -> Option<ActiveRun> {
    if !config.tracking.log_runs {
        return None;
    }
    let tracker = match config.tracking.tracker(&config.data_dir()) {
        Ok(tracker) => tracker,
        Err(error) => {
            tracing::warn!("the service runs without a tracking run: {error}");
            return None;
        }
    };
    if let Err(error) = tracker.replay().await {
        tracing::warn!("replaying spooled tracking writes failed: {error}");
    }
    let run = match tracker.start_run(RunSpec {
        experiment: config.tracking.experiment.clone(),
        run_name: Some(format!("sextant serve {addr}")),
        tags: [("sextant.kind".to_owned(), "service".to_owned())].into(),
        ..RunSpec::default()
    }) {
        Ok(run) => run,
        Err(error) => {
            tracing::warn!("the service runs without a tracking run: {error}");
            return None;
        }
    };
    let settings = &config.serve;
    run.log_params([
        ("addr", addr.to_owned()),
        (
            "max_concurrent_requests",
            settings.max_concurrent_requests.to_string(),
        ),
        (
            "request_timeout_secs",
            settings.request_timeout_secs.to_string(),
        ),
        (
            "agents_dir",
            settings
                .agents_dir
                .as_ref()
                .map_or(String::new(), |d| d.display().to_string()),
        ),
    ]);
    Some(run)
}
