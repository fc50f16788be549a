//! A real `sextant serve` process for tests: started on a free loopback port with its own data
//! dir and agents, waited for until ready, stopped with SIGTERM (or killed when dropped).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::repo;

/// A running service.
pub struct Service {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Everything it wrote to stderr so far.
    pub stderr: Arc<Mutex<String>>,
    /// Its data dir.
    pub data: PathBuf,
}

impl Service {
    /// Starts `sextant serve` with agents `tiny` (16 tokens) and `slow` (400 tokens) in
    /// `data/agents`, `tiny` the default, and `envs` on top; returns once `/readyz` says ready.
    pub fn start(data: &Path, envs: &[(&str, &str)]) -> Self {
        let agents = data.join("agents");
        std::fs::create_dir_all(&agents).unwrap();
        sextant_testkit::local_agent_file(&agents, "tiny", 16);
        sextant_testkit::local_agent_file(&agents, "slow", 400);
        let mut command = Command::new(env!("CARGO_BIN_EXE_sextant"));
        command
            .args(["serve", "--addr", "127.0.0.1:0"])
            .current_dir(repo())
            .env("SEXTANT_DATA_DIR", data)
            .env("SEXTANT_THREADS", "1")
            .env("SEXTANT_SERVE__AGENTS_DIR", &agents)
            .env("SEXTANT_SERVE__DEFAULT_AGENT", "tiny")
            .env("SEXTANT_TELEMETRY__CAPTURE_CONTENT", "true")
            .env_remove("SEXTANT_TRACKING_URI")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("sextant serve starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (sender, receiver) = std::sync::mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap());
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let url = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = sender.send(url);
                }
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        let url = match receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("the service did not start: {}", stderr.lock().unwrap());
            }
        };
        let service = Self {
            child: Some(child),
            url,
            stderr,
            data: data.to_owned(),
        };
        service.wait_ready();
        service
    }

    fn wait_ready(&self) {
        let client = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            if let Ok(response) = client.get(format!("{}/readyz", self.url)).send()
                && response.status().is_success()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "the service never became ready: {}",
            self.stderr.lock().unwrap()
        );
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return (status, self.stderr.lock().unwrap().clone());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "the service did not stop after SIGTERM: {}",
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
