//! Test support shared by this crate's integration tests: running the `sextant` binary from the
//! repository root, and the real servers `cargo xtask test` starts.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod service;

/// The repository root (where `configs/` is).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `sextant ARGS` from the repository root with its own data dir, one inference thread, no
/// tracking server and no OTLP endpoint unless `envs` sets them.
pub fn sextant(data_dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sextant"));
    command
        .args(args)
        .current_dir(repo())
        .env("SEXTANT_DATA_DIR", data_dir)
        .env("SEXTANT_THREADS", "1")
        .env_remove("SEXTANT_TRACKING_URI")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().expect("the sextant binary runs")
}

/// The stdout of a command that must have succeeded.
pub fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "sextant failed: {}\nstdout: {}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The JSON stdout of a command that must have succeeded.
pub fn json_of(output: Output) -> Value {
    let stdout = ok(output);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// The MLflow server's URL, or `None` with a note that the test was skipped.
pub fn mlflow_url() -> Option<String> {
    let url = std::env::var("SEXTANT_TEST_MLFLOW_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!(
            "skipped: SEXTANT_TEST_MLFLOW_URL is not set; `cargo xtask test` starts a real MLflow server"
        );
    }
    url
}

/// Runs `script` with the Python `mlflow` client against `url`; the script's last line of output
/// is one JSON value. `None` (with a note) when the xtask's Python is not available.
pub fn python(url: &str, script: &str, args: &[&str]) -> Option<Value> {
    let Some(python) = std::env::var("SEXTANT_TEST_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
    else {
        eprintln!(
            "skipped the Python check: SEXTANT_TEST_PYTHON is not set (`cargo xtask test` sets it)"
        );
        return None;
    };
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
    Some(serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}")))
}
