//! One module per command.

mod chat;
mod eval;
mod experiments;
mod ingest;
mod memory;
mod models;
mod prompts;
mod run;
mod runs;
mod sessions;
mod traces;

use sextant_agent::SextantConfig;

use crate::cli::{Cli, Command};

/// Runs the command `cli` names.
pub async fn dispatch(cli: Cli, config: SextantConfig) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run::run(&config, args).await,
        Command::Chat(args) => chat::chat(&config, args).await,
        Command::Eval(args) => eval::eval(&config, args).await,
        Command::Serve(args) => crate::serve::serve(&config, args).await,
        Command::Sessions(command) => sessions::sessions(&config, command),
        Command::Traces(command) => traces::traces(&config, command).await,
        Command::Models(command) => models::models(&config, command).await,
        Command::Ingest(args) => ingest::ingest_command(&config, args).await,
        Command::Memory(command) => memory::memory(&config, command).await,
        Command::Prompts(command) => prompts::prompts(&config, command).await,
        Command::Runs(command) => runs::runs(&config, command).await,
        Command::Experiments(command) => experiments::experiments(&config, command).await,
    }
}
