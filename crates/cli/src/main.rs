//! `sextant`: run agents, inspect their traces, manage model files.
//!
//! A thin binary: argument parsing and printing here, behaviour in the library crates.

mod cli;
mod commands;
mod serve;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let config = match sextant_agent::SextantConfig::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    // candle sizes its matmul thread pool once, from CANDLE_NUM_THREADS, on first use; the
    // configured inference threads must be in place before any thread (the runtime's) exists.
    if let Some(threads) = config.providers.local.threads
        && std::env::var_os("CANDLE_NUM_THREADS").is_none()
    {
        // SAFETY: no other thread exists yet, so nothing reads the environment concurrently.
        unsafe { std::env::set_var("CANDLE_NUM_THREADS", threads.to_string()) };
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // The service handles Ctrl-C and SIGTERM itself: it drains instead of stopping.
        if matches!(cli.command, cli::Command::Serve(_)) {
            return commands::dispatch(cli, config).await;
        }
        // Ctrl-C ends the command like an error would, so every guard (and the telemetry flush
        // behind it) runs on the way out.
        tokio::select! {
            result = commands::dispatch(cli, config) => result,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
