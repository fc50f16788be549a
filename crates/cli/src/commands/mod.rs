//! One module per command.

mod chat;
mod datasets;
mod eval;
mod experiments;
mod ingest;
mod keys;
mod mcp;
mod memory;
mod models;
mod prompts;
mod replay;
mod run;
mod runs;
mod serve;
mod sessions;
mod telemetry;
mod traces;
mod turns;

use sextant_runtime::{Runtime, SextantConfig};

use crate::cli::{Cli, Command};

/// Runs the command `cli` names. Commands that run agents start the runtime themselves (they name
/// their tracking run); the others read and write the stores through a runtime without telemetry.
pub async fn dispatch(cli: Cli, config: SextantConfig) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run::run(config, args).await,
        Command::Chat(args) => chat::chat(config, args).await,
        Command::Eval(args) => eval::eval(config, args).await,
        Command::Serve(args) => serve::serve(config, args).await,
        Command::Mcp => mcp::mcp(config).await,
        Command::Keys(command) => keys::keys(command),
        Command::Telemetry(command) => telemetry::telemetry(config, command).await,
        Command::Turns(command) => turns::turns(config, command).await,
        Command::Replay(args) => replay::replay(config, args).await,
        command => {
            let runtime = Runtime::builder(config).without_telemetry().start().await?;
            match command {
                Command::Sessions(command) => sessions::sessions(&runtime, command).await,
                Command::Traces(command) => traces::traces(&runtime, command).await,
                Command::Datasets(command) => datasets::datasets(&runtime, command).await,
                Command::Models(command) => models::models(&runtime, command).await,
                Command::Ingest(args) => ingest::ingest_command(&runtime, args).await,
                Command::Memory(command) => memory::memory(&runtime, command).await,
                Command::Prompts(command) => prompts::prompts(&runtime, command).await,
                Command::Runs(command) => runs::runs(&runtime, command).await,
                Command::Experiments(command) => experiments::experiments(&runtime, command).await,
                Command::Run(_)
                | Command::Chat(_)
                | Command::Eval(_)
                | Command::Serve(_)
                | Command::Mcp
                | Command::Keys(_)
                | Command::Turns(_)
                | Command::Replay(_)
                | Command::Telemetry(_) => {
                    unreachable!("matched above")
                }
            }
        }
    }
}
