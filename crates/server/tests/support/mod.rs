//! The service in-process for tests: one [`Runtime`] per test binary (telemetry is process-wide),
//! and per test a [`Server`] with its own settings on a free loopback port, stopped when dropped.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;
use sextant_runtime::{Runtime, RuntimeBuilder, RuntimeReport, SextantConfig};
use sextant_server::{KeyConfig, Role, ServeConfig, Server, ServerError};

/// The process's runtime: its own data dir, one inference thread, content captured, and agents
/// `tiny` (16 tokens) and `slow` (400 tokens) in `data/agents`.
pub struct Shared {
    /// The runtime every test's server shares.
    pub runtime: Arc<Runtime>,
    /// Its data dir.
    pub data: PathBuf,
    /// The agents directory.
    pub agents: PathBuf,
    _dir: tempfile::TempDir,
    // The runtime was started on it; it lives as long as the process.
    _tokio: tokio::runtime::Runtime,
}

/// The shared runtime, started on first use with `vars` as `SEXTANT_*` configuration and `customise`
/// applied to its builder (the first caller's arguments win: one runtime per test binary).
pub fn shared_with(
    vars: &[(&str, &str)],
    customise: impl FnOnce(RuntimeBuilder) -> RuntimeBuilder + Send,
) -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    // Started on a thread of its own: the caller may already be inside a tokio runtime.
    SHARED.get_or_init(|| {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let dir = tempfile::tempdir().unwrap();
                    let data = dir.path().join("data");
                    let agents = data.join("agents");
                    std::fs::create_dir_all(&agents).unwrap();
                    sextant_testkit::local_agent_file(&agents, "tiny", 16);
                    sextant_testkit::local_agent_file(&agents, "slow", 400);
                    let mut all = vec![
                        ("SEXTANT_DATA_DIR".to_owned(), data.display().to_string()),
                        ("SEXTANT_THREADS".to_owned(), "1".to_owned()),
                        (
                            "SEXTANT_TELEMETRY__CAPTURE_CONTENT".to_owned(),
                            "true".to_owned(),
                        ),
                    ];
                    all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
                    let config =
                        SextantConfig::load_with_vars(None, all).expect("the test configuration");
                    let tokio = tokio::runtime::Runtime::new().unwrap();
                    let runtime = tokio
                        .block_on(customise(Runtime::builder(config)).start())
                        .expect("the runtime starts");
                    Shared {
                        runtime: Arc::new(runtime),
                        data,
                        agents,
                        _dir: dir,
                        _tokio: tokio,
                    }
                })
                .join()
                .expect("the shared runtime starts")
        })
    })
}

/// [`shared_with`] the defaults.
pub fn shared() -> &'static Shared {
    shared_with(&[], |builder| builder)
}

/// Settings for a test's server: the shared agents, `tiny` the default.
pub fn settings() -> ServeConfig {
    let shared = shared();
    ServeConfig {
        agents_dir: Some(shared.agents.clone()),
        default_agent: Some("tiny".into()),
        ..shared.runtime.config().section("serve").unwrap()
    }
}

/// Adds a new random key of `user` with `roles` to `settings`; returns the key.
pub fn add_key(settings: &mut ServeConfig, user: &str, roles: &[Role]) -> String {
    let (key, digest) = sextant_server::new_key();
    settings.auth.keys.push(KeyConfig {
        user: user.into(),
        roles: roles.to_vec(),
        sha256: Some(digest),
        key_env: None,
    });
    key
}

/// A JSON request to the in-process service with `key` as its bearer token.
pub fn authorized(
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("host", "127.0.0.1")
        .header("authorization", format!("Bearer {key}"))
        .body(body.map_or_else(axum::body::Body::empty, |b| {
            axum::body::Body::from(b.to_string())
        }))
        .unwrap()
}

/// A price table pricing the scripted model (`scripted`) at 1.0 input, 0.5 cached input and 2.0
/// output per million tokens, as the file `SEXTANT_PRICES__FILE` names: its path.
pub fn prices_file() -> String {
    let path = std::env::temp_dir().join(format!("sextant-prices-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "currency = \"USD\"\nas_of = \"2026-12-03\"\n[[models]]\nmodel = \"scripted\"\n\
         input = 1.0\ncached_input = 0.5\noutput = 2.0\n",
    )
    .unwrap();
    path.display().to_string()
}

/// A server listening on a free loopback port until dropped.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<RuntimeReport, ServerError>>>,
}

impl TestServer {
    /// Serves `server` on a free port, once `/readyz` says ready.
    pub async fn start(server: Server) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::new();
        for _ in 0..1500 {
            if let Ok(response) = client.get(format!("{url}/readyz")).send().await
                && response.status().is_success()
            {
                return Self {
                    url,
                    stop: Some(stop),
                    task: Some(task),
                };
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the service never became ready");
    }
}

impl TestServer {
    /// Stops the server as SIGTERM would and waits until it has drained and flushed.
    pub async fn stop(mut self) -> RuntimeReport {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().unwrap();
        task.await.unwrap().expect("the server stops cleanly")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The span whose name starts with `prefix`.
pub fn span<'a>(spans: &'a [Value], prefix: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` span in {spans:#?}"))
}

/// Calls the router of `server` in-process (no listener); the status and the JSON body (`null`
/// when the body is not JSON).
pub async fn oneshot(
    server: &Server,
    request: axum::http::Request<axum::body::Body>,
) -> (axum::http::StatusCode, Value) {
    use tower::ServiceExt;
    let response = server.router().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
