//! Test support shared by this crate's integration tests: the real servers `cargo xtask test`
//! starts, found through its `SEXTANT_TEST_*` variables.
#![allow(dead_code)]

use std::process::Command;

use serde_json::Value;

/// The MLflow server's URL, or `None` with a note that the test skipped that backend.
pub fn mlflow_url() -> Option<String> {
    let url = std::env::var("SEXTANT_TEST_MLFLOW_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        eprintln!(
            "skipped the MLflow backend: SEXTANT_TEST_MLFLOW_URL is not set; `cargo xtask test` starts a real MLflow server"
        );
    }
    url
}

/// A name no earlier run on the same server used.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{}", std::process::id(), nanos % 1_000_000_000)
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
