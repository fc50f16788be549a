//! `sextant models`: the default model files.

use sextant_agent::SextantConfig;
use sextant_agent::model_files::{self, ModelSpec};

use crate::cli::ModelsCommand;

pub async fn models(config: &SextantConfig, command: ModelsCommand) -> anyhow::Result<()> {
    let cache = config.model_cache()?;
    match command {
        ModelsCommand::Pull { names } => {
            let specs: Vec<&ModelSpec> = if names.is_empty() {
                model_files::CATALOG.iter().collect()
            } else {
                names
                    .iter()
                    .map(|name| ModelSpec::by_name(name))
                    .collect::<Result<_, _>>()?
            };
            for spec in specs {
                let dir = cache.ensure(spec).await?;
                println!("{}  {}", spec.name, dir.display());
            }
        }
        ModelsCommand::List => {
            for spec in model_files::CATALOG {
                let state = if cache.status(spec).is_complete() {
                    "present"
                } else {
                    "not pulled"
                };
                let size = spec.total_size();
                println!(
                    "{:<24} {:>7.1} MB  {:<10}  {}",
                    spec.name,
                    size as f64 / 1e6,
                    state,
                    cache.model_dir(spec).display()
                );
            }
        }
    }
    Ok(())
}
