//! `cargo xtask bench`: print the machine, then run `cargo bench --workspace` on one thread, with a
//! llama.cpp server over the same GGUF running for `local_vs_llamacpp` to compare the embedded engine
//! with (`SEXTANT_LLAMACPP_URL`; left out, and that bench skipped, if its venv cannot be set up).
//! `cargo xtask bench accuracy [OUT_DIR]`: the offline accuracy benchmark of the default agent and
//! the RAG agent on the embedded model (`scripts/accuracy/measure.sh`, release build, one thread).

use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

use crate::servers::ReferenceLlama;
use crate::{paths, process, signals};

pub fn bench(passthrough: &[String]) -> Result<ExitCode> {
    signals::install();
    print_machine();
    if passthrough.first().map(String::as_str) == Some("accuracy") {
        return accuracy(&passthrough[1..]);
    }
    let mut cmd = paths::cargo_command();
    cmd.arg("bench");
    if !process::selects_packages(passthrough) {
        cmd.arg("--workspace");
    }
    cmd.args(passthrough)
        .current_dir(paths::workspace_root())
        .env("RAYON_NUM_THREADS", "1")
        .env("SEXTANT_THREADS", "1");
    let reference = match ReferenceLlama::start() {
        Ok(reference) => {
            cmd.env(
                "SEXTANT_LLAMACPP_URL",
                format!("http://127.0.0.1:{}", reference.port),
            )
            .env("SEXTANT_TEST_GGUF", &reference.gguf);
            Some(reference)
        }
        Err(err) => {
            println!("xtask: no llama.cpp reference, local_vs_llamacpp skips: {err:#}");
            None
        }
    };
    println!(
        "xtask: running RAYON_NUM_THREADS=1 {}",
        process::display_command(&cmd)
    );
    let status = process::run_interruptible(&mut cmd).context("running cargo bench")?;
    drop(reference);
    Ok(ExitCode::from(process::exit_code(status)))
}

/// Builds the release binary, then runs `scripts/accuracy/measure.sh` with it.
fn accuracy(args: &[String]) -> Result<ExitCode> {
    let root = paths::workspace_root();
    let mut build = paths::cargo_command();
    build
        .args(["build", "--release", "-p", "sextant"])
        .current_dir(&root);
    println!("xtask: {}", process::display_command(&build));
    let status = process::run_interruptible(&mut build).context("building sextant")?;
    if !status.success() {
        return Ok(ExitCode::from(process::exit_code(status)));
    }
    let mut measure = Command::new("sh");
    measure
        .arg(root.join("scripts/accuracy/measure.sh"))
        .args(args)
        .current_dir(&root)
        .env(
            "SEXTANT",
            paths::target_dir().join("release").join("sextant"),
        )
        .env("SEXTANT_THREADS", "1");
    println!("xtask: {}", process::display_command(&measure));
    let status = process::run_interruptible(&mut measure).context("running measure.sh")?;
    Ok(ExitCode::from(process::exit_code(status)))
}

fn print_machine() {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim())
        })
        .unwrap_or("unknown");
    let mem_total = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
        .unwrap_or_else(|| "unknown".to_string());
    println!("machine: nproc={nproc}  cpu=\"{model}\"  memory={mem_total}");
    println!("bench threads: RAYON_NUM_THREADS=1 SEXTANT_THREADS=1");
}
