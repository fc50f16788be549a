//! Test support shared by this crate's integration tests: running the `sextant` binary from the
//! repository root. The servers `cargo xtask test` starts are found through `sextant_testkit`.
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
