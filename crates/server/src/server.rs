//! [`Server`]: the service's shared state, its router, and its life from listening to drained.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use sextant_agent::session::SessionStore;
use sextant_runtime::{RunSpec, RunStatus, Runtime, RuntimeReport, SextantConfig};
use sextant_tracker::{HttpServerMetrics, TelemetryGuard};
use tokio::sync::Semaphore;

use crate::agents::AgentCatalog;
use crate::auth::{self, AuthConfigError, Keys};
use crate::config::ServeConfig;
use crate::mcp::{self, McpHandler, McpTransport};
use crate::routes::{self, Readiness};
use crate::transport::{self, Limits};

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The `[serve]` section does not parse (the message names the key and the source).
    #[error(transparent)]
    Settings(#[from] sextant_agent::ConfigError),
    /// A `[serve]` setting is not acceptable.
    #[error("[serve] {key}: {message}")]
    Config {
        /// The key under `[serve]`.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// `[serve.auth]` cannot be used (the message names the entry; never a key).
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    /// No API key is configured and the address is not a loopback one.
    #[error(
        "refusing to serve {addr} without authentication: anyone who can reach it could use the \
         agents and read their traces. Configure [serve.auth] keys (`sextant keys new`), bind a \
         loopback address (127.0.0.1), or set [serve.auth] allow_unauthenticated = true"
    )]
    Unauthenticated {
        /// The address it would have listened on.
        addr: String,
    },
    /// The session store could not be opened.
    #[error("opening the session store: {0}")]
    Sessions(#[from] sextant_agent::session::SessionError),
    /// A `[[serve.monitors]]` entry cannot be run.
    #[error(transparent)]
    Monitor(#[from] crate::monitors::MonitorError),
    /// The runtime was started without telemetry, which the service reports through.
    #[error("the service needs a runtime with telemetry (it was started without)")]
    NoTelemetry,
    /// Serving failed (the listener, or the server task).
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
    /// The final flush of telemetry failed.
    #[error("shutting telemetry down: {0}")]
    Telemetry(#[from] sextant_tracker::TelemetryError),
}

/// What every request handler shares.
pub struct ServiceState {
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) settings: ServeConfig,
    pub(crate) agents: AgentCatalog,
    pub(crate) sessions: SessionStore,
    pub(crate) telemetry: Arc<TelemetryGuard>,
    http_metrics: HttpServerMetrics,
    /// One permit per turn in flight; shutdown waits for all of them.
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) draining: AtomicBool,
    /// Whether the default agent has started loading.
    warming: AtomicBool,
    pub(crate) readiness: Mutex<Readiness>,
    pub(crate) counters: Counters,
    pub(crate) monitors: crate::monitors::Monitors,
    pub(crate) request_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    /// The accepted API keys; empty: no authentication (loopback, `Host` checked).
    pub(crate) keys: Keys,
    /// The A2A tasks, by id.
    pub(crate) a2a_tasks: crate::a2a::TaskStore,
    /// The workflows, built on first use.
    pub(crate) workflows: crate::workflows::WorkflowCatalog,
    started: Instant,
}

impl ServiceState {
    /// The configuration the runtime started from.
    pub(crate) fn config(&self) -> &SextantConfig {
        self.runtime.config()
    }

    /// Seconds since start: the step of the service run's metrics.
    fn uptime_step(&self) -> i64 {
        self.started.elapsed().as_secs() as i64
    }

    /// What the service's tracking run gets: the counters and the monitors' pass rates.
    fn snapshot(&self) -> Vec<(String, f64)> {
        let mut values: Vec<(String, f64)> = self
            .counters
            .snapshot()
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect();
        values.extend(self.monitors.snapshot());
        values
    }
}

/// How long shutting down waits for the monitors to judge the turns already queued.
const MONITORS_GRACE: Duration = Duration::from_secs(10);

/// Totals since start, logged to the service's tracking run.
#[derive(Default)]
pub struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) turns: AtomicU64,
    pub(crate) failed_turns: AtomicU64,
    pub(crate) input_tokens: AtomicU64,
    pub(crate) output_tokens: AtomicU64,
    pub(crate) latency_ms: AtomicU64,
    pub(crate) feedback: AtomicU64,
    pub(crate) cost_nanos: AtomicU64,
    pub(crate) priced_turns: AtomicU64,
}
impl Counters {
    /// Counts feedback a client gave on a trace.
    pub(crate) fn record_feedback(&self) {
        self.feedback.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a turn that took `latency`, with its tokens when it did not fail.
    pub(crate) fn record_turn(
        &self,
        latency: Duration,
        outcome: Option<&sextant_agent::AgentOutcome>,
    ) {
        self.turns.fetch_add(1, Ordering::Relaxed);
        self.latency_ms
            .fetch_add(latency.as_millis() as u64, Ordering::Relaxed);
        match outcome {
            Some(outcome) => {
                self.input_tokens
                    .fetch_add(outcome.usage.input_tokens, Ordering::Relaxed);
                self.output_tokens
                    .fetch_add(outcome.usage.output_tokens, Ordering::Relaxed);
                if let Some(nanos) = outcome.usage.cost_nanos {
                    self.cost_nanos.fetch_add(nanos, Ordering::Relaxed);
                    self.priced_turns.fetch_add(1, Ordering::Relaxed);
                }
            }
            None => {
                self.failed_turns.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

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
            ("feedback", self.feedback.load(Ordering::Relaxed) as f64),
        ];
        // The cost of the turns that had a price; how many did is beside it.
        let priced = self.priced_turns.load(Ordering::Relaxed);
        if priced > 0 {
            values.push(("cost", self.cost_nanos.load(Ordering::Relaxed) as f64 / 1e9));
            values.push(("priced_turns", priced as f64));
        }
        if turns > 0 {
            let total = self.latency_ms.load(Ordering::Relaxed) as f64;
            values.push(("mean_turn_latency_ms", total / turns as f64));
        }
        values
    }
}

fn positive(value: f64, key: &'static str) -> Result<Duration, ServerError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| ServerError::Config {
            key,
            message: format!("must be a positive number of seconds, not {value}"),
        })
}

fn at_least_one(value: usize, key: &'static str) -> Result<usize, ServerError> {
    if value == 0 {
        return Err(ServerError::Config {
            key,
            message: "must be at least 1".into(),
        });
    }
    Ok(value)
}

/// The service's tracking run: named after the address it listens on, tagged
/// `sextant.kind=service`. Pass it to [`RuntimeBuilder::run_best_effort`](sextant_runtime::RuntimeBuilder::run_best_effort).
pub fn run_spec(config: &SextantConfig, addr: &str) -> RunSpec {
    RunSpec {
        experiment: config.tracking.experiment.clone(),
        run_name: Some(format!("sextant serve {addr}")),
        tags: [("sextant.kind".to_owned(), "service".to_owned())].into(),
        ..RunSpec::default()
    }
}

/// Whether `settings` allow serving on `addr`: without API keys (`[serve.auth]`), only a loopback
/// address, unless `allow_unauthenticated`. [`Server::serve`] checks it too; call it before
/// starting the runtime to fail fast.
pub fn check_bind(settings: &ServeConfig, addr: std::net::SocketAddr) -> Result<(), ServerError> {
    let has_keys = settings.auth.keys_file.is_some() || !settings.auth.keys.is_empty();
    if has_keys || addr.ip().is_loopback() || settings.auth.allow_unauthenticated {
        Ok(())
    } else {
        Err(ServerError::Unauthenticated {
            addr: addr.to_string(),
        })
    }
}

/// The service over one [`Runtime`]; see the [crate docs](crate).
pub struct Server {
    state: Arc<ServiceState>,
    grace: Duration,
    log_interval: Duration,
    limits: Limits,
}

impl Server {
    /// The service for `runtime`, configured by its `[serve]` section. The default agent starts
    /// loading in the background (`/readyz` says when it is there), so this must be called inside
    /// a tokio runtime.
    pub fn new(runtime: Runtime) -> Result<Self, ServerError> {
        let settings = runtime.config().section::<ServeConfig>("serve")?;
        Self::with_settings(Arc::new(runtime), settings)
    }

    /// The service for a shared `runtime` with `settings` in place of its `[serve]` section: several
    /// services (in tests, or on several listeners) over one runtime.
    pub fn with_settings(
        runtime: Arc<Runtime>,
        settings: ServeConfig,
    ) -> Result<Self, ServerError> {
        let request_timeout = positive(settings.request_timeout_secs, "request_timeout_secs")?;
        let grace = positive(settings.shutdown_grace_secs, "shutdown_grace_secs")?;
        let log_interval = positive(
            settings.metrics_log_interval_secs,
            "metrics_log_interval_secs",
        )?;
        at_least_one(settings.max_concurrent_requests, "max_concurrent_requests")?;
        at_least_one(settings.max_registry_agents, "max_registry_agents")?;
        let body_read_timeout =
            positive(settings.body_read_timeout_secs, "body_read_timeout_secs")?;
        let limits = Limits {
            header_read_timeout: positive(
                settings.header_read_timeout_secs,
                "header_read_timeout_secs",
            )?,
            max_connections: at_least_one(settings.max_connections, "max_connections")?,
        };
        let keys = Keys::load(&settings.auth, |name| std::env::var(name).ok())?;
        let telemetry = runtime
            .telemetry()
            .cloned()
            .ok_or(ServerError::NoTelemetry)?;
        let sessions = runtime.session_store()?;
        let monitors = crate::monitors::Monitors::new(
            &settings.monitors,
            &settings.monitoring,
            telemetry.monitor_metrics(),
        )?;
        runtime.with_run(|run| {
            run.log_params([
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
            ])
        });
        let state = Arc::new(ServiceState {
            agents: AgentCatalog::new(runtime.clone(), &settings),
            sessions,
            http_metrics: telemetry.http_server_metrics(),
            telemetry,
            slots: Arc::new(Semaphore::new(settings.max_concurrent_requests)),
            draining: AtomicBool::new(false),
            warming: AtomicBool::new(false),
            readiness: Mutex::new(Readiness::Loading),
            counters: Counters::default(),
            monitors,
            request_timeout,
            body_read_timeout,
            keys,
            a2a_tasks: crate::a2a::TaskStore::default(),
            workflows: crate::workflows::WorkflowCatalog::default(),
            started: Instant::now(),
            settings,
            runtime,
        });
        Ok(Self {
            state,
            grace,
            log_interval,
            limits,
        })
    }

    /// The service's routes and layers, for `axum::serve` or an in-process `oneshot`. The first
    /// call starts loading the default agent in the background (`/readyz` says when it is there),
    /// so it must be made inside a tokio runtime.
    pub fn router(&self) -> Router {
        self.warm_up();
        router(self.state.clone())
    }

    fn warm_up(&self) {
        if self.state.warming.swap(true, Ordering::SeqCst) {
            return;
        }
        let warm = self.state.clone();
        tokio::spawn(async move {
            let readiness = match warm.agents.get("").await {
                Ok(_) => Readiness::Ready,
                Err(error) => {
                    tracing::error!("loading the default agent failed: {}", error.message);
                    Readiness::Failed
                }
            };
            *warm.readiness.lock().unwrap_or_else(|e| e.into_inner()) = readiness;
        });
        if self.state.config().state.resume_on_start {
            tokio::spawn(crate::turns::resume_orphans(self.state.clone()));
        }
        self.state.monitors.start(Arc::downgrade(&self.state));
    }

    /// The agent names a request's `model` may give, the built-in assistant included.
    pub fn agent_names(&self) -> Vec<String> {
        self.state.agents.names()
    }

    /// What an empty `model` means.
    pub fn default_agent(&self) -> &str {
        self.state.agents.default_name()
    }

    /// Whether `/v1` requests must carry an API key (`[serve.auth]` declares some).
    pub fn requires_key(&self) -> bool {
        !self.state.keys.is_empty()
    }

    /// Serves the agents, `search_memory` and the registry's prompts as an MCP server over this
    /// process's stdin and stdout (`sextant mcp`) until the client closes stdin, then flushes the
    /// tracking run and telemetry. The client started this process, so the trace context in its
    /// requests is always continued. Nothing else may write to stdout meanwhile.
    pub async fn serve_mcp_stdio(self) -> Result<RuntimeReport, ServerError> {
        use rmcp::ServiceExt;
        self.warm_up();
        let handler = McpHandler::new(self.state.clone(), McpTransport::Stdio);
        let service = handler
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|error| std::io::Error::other(error.to_string()))?;
        let ended = service.waiting().await;
        let report = wind_down(self.state).await?;
        ended.map_err(std::io::Error::other)?;
        Ok(report)
    }

    /// Serves on `listener` until `shutdown` completes, then drains: new turns get 503, turns in
    /// flight finish within `[serve] shutdown_grace_secs`, and the tracking run and the telemetry
    /// are flushed and shut down. Without API keys, a listener on a non-loopback address is
    /// refused unless `[serve.auth] allow_unauthenticated`. Connections are capped at
    /// `[serve] max_connections`, and one that sends no complete headers within
    /// `header_read_timeout_secs` (or sits idle that long) is closed.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<RuntimeReport, ServerError> {
        let addr = listener.local_addr()?;
        check_bind(&self.state.settings, addr)?;
        if !self.requires_key() {
            eprintln!(
                "sextant serve: no API keys configured ([serve.auth]): every client that can reach {addr} may call the agents"
            );
        }
        let app = self.router();
        let Self {
            state,
            grace,
            log_interval,
            limits,
        } = self;
        state
            .runtime
            .with_run(|run| run.log_params([("addr", addr.to_string())]));
        let (signalled, mut on_signal) = tokio::sync::watch::channel(false);
        let draining = state.clone();
        let server = transport::serve(listener, app, limits, async move {
            shutdown.await;
            draining.draining.store(true, Ordering::SeqCst);
            let _ = signalled.send(true);
        });
        let mut server = tokio::spawn(server);
        // The service's counters go to its run while it serves.
        let log_counters = async {
            let mut ticks = tokio::time::interval(log_interval);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let snapshot = state.snapshot();
                state
                    .runtime
                    .with_run(|run| run.log_metrics(snapshot, state.uptime_step()));
            }
        };
        let finished = tokio::select! {
            result = &mut server => Some(result),
            _ = on_signal.changed() => None,
            () = log_counters => None,
        };
        let served = match finished {
            Some(result) => result.map_err(std::io::Error::other)?,
            None => {
                eprintln!(
                    "sextant serve: shutting down: finishing turns in flight (up to {} s)",
                    grace.as_secs_f64()
                );
                let deadline = tokio::time::Instant::now() + grace;
                let result = match tokio::time::timeout_at(deadline, &mut server).await {
                    Ok(result) => result.map_err(std::io::Error::other)?,
                    Err(_) => {
                        server.abort();
                        Ok(())
                    }
                };
                // Streams whose client left still run their turn; they hold a slot until done.
                let all = state.settings.max_concurrent_requests as u32;
                if tokio::time::timeout_at(deadline, state.slots.acquire_many(all))
                    .await
                    .is_err()
                {
                    let left =
                        state.settings.max_concurrent_requests - state.slots.available_permits();
                    eprintln!(
                        "sextant serve: {left} turn(s) still running after the grace period; their spans are cut"
                    );
                }
                result
            }
        };

        let report = wind_down(state).await?;
        if report.run.as_ref().is_some_and(|run| !run.delivered) {
            eprintln!("sextant serve: the tracking run is spooled; the next command delivers it");
        }
        eprintln!("sextant serve: stopped");
        served?;
        Ok(report)
    }
}

/// The end of serving, over HTTP or stdio: the counters go to the tracking run, the run ends
/// (delivered or spooled), and telemetry is flushed and shut down.
async fn wind_down(state: Arc<ServiceState>) -> Result<RuntimeReport, ServerError> {
    let runtime = state.runtime.clone();
    state.monitors.shut_down(MONITORS_GRACE).await;
    runtime.with_run(|run| run.log_metrics(state.snapshot(), state.uptime_step()));
    drop(state);
    let run = runtime.end_run(RunStatus::Finished).await;
    let mut report = match Arc::try_unwrap(runtime) {
        Ok(runtime) => runtime.shutdown().await?,
        // A turn past the grace period still holds the runtime: flush what there is.
        Err(runtime) => {
            tokio::task::spawn_blocking(move || runtime.flush())
                .await
                .map_err(std::io::Error::other)??;
            RuntimeReport::default()
        }
    };
    report.run = run;
    Ok(report)
}

/// The service's routes and layers.
fn router(state: Arc<ServiceState>) -> Router {
    let mut api = Router::new()
        .route("/v1/chat/completions", post(routes::chat_completions))
        .route("/v1/agents/{name}/invoke", post(routes::invoke))
        .route(
            "/v1/workflows/{name}/invoke",
            post(crate::workflows::invoke),
        )
        .route("/v1/models", get(routes::models))
        .route("/v1/traces", get(crate::traces::search))
        .route("/v1/traces/{id}", get(crate::traces::trace))
        .route("/v1/traces/{id}/feedback", post(crate::traces::feedback))
        .route("/v1/turns", get(crate::turns::list))
        .route("/v1/turns/{id}", get(crate::turns::get))
        .route("/v1/turns/{id}/decisions", post(crate::turns::decide));
    if state.settings.mcp.enabled {
        api = api.route_service("/mcp", mcp::http_service(state.clone()));
    }
    if state.settings.a2a.enabled {
        api = api
            .route("/a2a/{agent}/", post(crate::a2a::rpc))
            .route("/a2a/{agent}", post(crate::a2a::rpc))
            .route(
                "/a2a/{agent}/.well-known/agent-card.json",
                get(crate::a2a::card),
            );
    }
    let api = api
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            transport::read_body_within,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    Router::new()
        .merge(api)
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/metrics", get(routes::metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), observe))
        .fallback(routes::not_found)
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
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

/// SIGTERM (a container stop) or Ctrl-C.
pub async fn shutdown_signal() {
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
