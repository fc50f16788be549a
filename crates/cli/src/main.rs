//! `sextant`: run agents, inspect their traces, manage model files.
//!
//! A thin binary: argument parsing and printing here, behaviour in the library crates.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let config = match sextant_runtime::SextantConfig::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Before any thread (the async runtime's) exists.
    sextant_runtime::configure_process(&config);
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
