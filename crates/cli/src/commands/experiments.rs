//! `sextant experiments`: the tracking store's experiments.

use sextant_runtime::Runtime;

use crate::cli::ExperimentsCommand;

pub async fn experiments(runtime: &Runtime, command: ExperimentsCommand) -> anyhow::Result<()> {
    let store = runtime.tracking_store()?;
    match command {
        ExperimentsCommand::List { json } => {
            let experiments = store.list_experiments().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&experiments)?);
            } else {
                println!("{:>6}  name", "id");
                for experiment in experiments {
                    println!("{:>6}  {}", experiment.experiment_id, experiment.name);
                }
            }
        }
    }
    Ok(())
}
