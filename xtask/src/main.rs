//! `cargo xtask …`: project automation.
//!
//! - `cargo xtask test [-- CARGO_TEST_ARGS…]`: set up the Python venvs (cached), start the real test
//!   servers (MLflow, a llama.cpp server, the Ollama API test double), run
//!   `cargo test --workspace -- --include-ignored` (the `#[ignore]`d tests are the ones that need
//!   those servers) with their addresses in `SEXTANT_TEST_*` variables, stop the servers, exit with
//!   cargo's code.
//! - `cargo xtask servers`: start the servers, print `export …` lines, wait for Ctrl-C, stop them.
//! - `cargo xtask bench [-- CARGO_BENCH_ARGS…]`: print the machine, run `cargo bench --workspace`.
//! - `cargo xtask bench accuracy [OUT_DIR]`: the offline accuracy benchmark (issue #19).
//!
//! Only std + anyhow: no async runtime, a tiny HTTP GET over `TcpStream` for health checks.

mod bench;
mod http;
mod npm;
mod paths;
mod postgres;
mod process;
mod servers;
mod signals;
mod venv;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command> [-- ARGS…]

commands:
  test [-- ARGS]    start the test servers, run `cargo test --workspace ARGS -- --include-ignored`
                    (the ignored tests need the servers), stop the servers
                    (e.g. `cargo xtask test -- -p sextant-agent some_filter`)
  servers           start the test servers, print their `export …` lines, wait for Ctrl-C
  bench [-- ARGS]   print the machine, run `cargo bench --workspace ARGS` (RAYON_NUM_THREADS=1)
  bench accuracy [OUT_DIR]
                    the offline accuracy benchmark of the default and RAG agents on the embedded
                    model (release build, 1 thread; scripts/accuracy/measure.sh)

environment:
  SEXTANT_CI_CACHE  cache directory for the Python venvs and npm prefixes
                    (default: $HOME/.cache/sextant-ci)
";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            // Stopped by a signal: exit as a process killed by it would (130 for Ctrl-C).
            match signals::received() {
                Some(sig) => ExitCode::from(u8::try_from(128 + sig).unwrap_or(1)),
                None => ExitCode::from(2),
            }
        }
    }
}

fn run() -> Result<ExitCode> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        eprint!("{USAGE}");
        return Ok(ExitCode::from(2));
    }
    let command = args.remove(0);
    // `cargo xtask test -- -p foo` arrives as ["test", "--", "-p", "foo"]; accept it with or without `--`.
    if args.first().map(String::as_str) == Some("--") {
        args.remove(0);
    }
    match command.as_str() {
        "test" => test(&args),
        "servers" => {
            if !args.is_empty() {
                bail!("`servers` takes no arguments");
            }
            serve()
        }
        "bench" => bench::bench(&args),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => {
            eprint!("xtask: unknown command `{other}`\n\n{USAGE}");
            Ok(ExitCode::from(2))
        }
    }
}

/// `cargo xtask test`: servers up, `cargo test --workspace … -- --include-ignored` with their env,
/// servers down.
fn test(passthrough: &[String]) -> Result<ExitCode> {
    signals::install();
    let servers = servers::TestServers::start()?;
    if std::env::var_os("XTASK_SELF_TEST_PANIC").is_some() {
        // Self-test hook: proves that a panic still stops the servers (TestServers::drop).
        panic!("XTASK_SELF_TEST_PANIC is set");
    }
    let env = servers.env();

    let mut cmd = paths::cargo_command();
    // Every failing test binary is reported, not just the first.
    cmd.args(["test", "--no-fail-fast"]);
    if !process::selects_packages(passthrough) {
        cmd.arg("--workspace");
    }
    cmd.args(process::with_ignored_tests(passthrough))
        .current_dir(paths::workspace_root());
    for (k, v) in &env {
        cmd.env(k, v);
    }
    println!("xtask: running {}", process::display_command(&cmd));
    let started = Instant::now();
    let status = process::run_interruptible(&mut cmd).context("running cargo test")?;
    println!(
        "xtask: cargo test finished in {:.1?} ({status})",
        started.elapsed()
    );

    let code = process::exit_code(status);
    if code != 0 {
        servers.print_log_tails(40);
    }
    servers.stop();
    if let Some(sig) = signals::received() {
        eprintln!("xtask: interrupted (signal {sig})");
        if code == 0 {
            return Ok(ExitCode::from(u8::try_from(128 + sig).unwrap_or(1)));
        }
    }
    Ok(ExitCode::from(code))
}

/// `cargo xtask servers`: servers up, print the env, wait for Ctrl-C.
fn serve() -> Result<ExitCode> {
    signals::install();
    let mut servers = servers::TestServers::start()?;
    println!();
    println!("# the test servers are up; paste these lines into another shell:");
    for (k, v) in servers.env() {
        println!("export {k}={}", shell_quote(&v));
    }
    println!();
    println!("# logs: {}", paths::logs_dir().display());
    println!("# press Ctrl-C to stop the servers");
    let code = loop {
        if signals::interrupted() {
            println!("\nxtask: stopping the servers");
            break 0;
        }
        if let Some(msg) = servers.check_alive() {
            eprintln!("xtask: {msg}");
            servers.print_log_tails(40);
            break 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    servers.stop();
    Ok(ExitCode::from(code))
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/:._-=+,@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
