//! `sextant models`: the model registry (agent configurations) and the default model files.

use anyhow::Context;
use sextant_agent::model_files::{self, ModelSpec};
use sextant_runtime::Runtime;
use sextant_tracker::model_registry::{ModelUri, ModelVersion, Stage};

use crate::cli::ModelsCommand;

pub async fn models(runtime: &Runtime, command: ModelsCommand) -> anyhow::Result<()> {
    match command {
        ModelsCommand::Pull { names } => {
            let cache = runtime.model_cache()?;
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
        ModelsCommand::Files => {
            let cache = runtime.model_cache()?;
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
        ModelsCommand::List { json } => {
            let registry = runtime.model_registry()?;
            let models = registry.list_models().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&models)?);
            } else if models.is_empty() {
                println!(
                    "no registered models in the {} registry",
                    registry.backend()
                );
            } else {
                println!("{:<32} {:>7}  aliases", "name", "latest");
                for model in models {
                    let aliases: Vec<String> = model
                        .aliases
                        .iter()
                        .map(|(a, v)| format!("{a}→{v}"))
                        .collect();
                    let latest = model.latest_version.map(|v| v.to_string());
                    println!(
                        "{:<32} {:>7}  {}",
                        model.name,
                        latest.as_deref().unwrap_or("-"),
                        aliases.join(", ")
                    );
                }
            }
        }
        ModelsCommand::Show { model, json } => {
            let registry = runtime.model_registry()?;
            let text = if ModelUri::is_uri(&model) {
                model.clone()
            } else {
                format!("{}{model}", ModelUri::SCHEME)
            };
            let names_a_version =
                model.contains('@') || text[ModelUri::SCHEME.len()..].contains('/');
            let uri: ModelUri = text.parse()?;
            if names_a_version {
                let version = registry.resolve(&uri).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&version)?);
                } else {
                    print_version(&version);
                    if let Ok(agents) = runtime.agent_registry()
                        && let Ok(agent) = agents.load(&version).await
                    {
                        println!(
                            "agent: {}  ({:?} {})",
                            agent.name, agent.model.provider, agent.model.name
                        );
                    }
                }
            } else {
                let info = registry.get_model(&uri.name).await?;
                let versions = registry.list_versions(&uri.name).await?;
                if json {
                    let value = serde_json::json!({ "model": info, "versions": versions });
                    println!("{}", serde_json::to_string_pretty(&value)?);
                } else {
                    println!("model {}  ({} registry)", info.name, registry.backend());
                    if let Some(description) = &info.description {
                        println!("{description}");
                    }
                    for version in &versions {
                        print_version(version);
                    }
                }
            }
        }
        ModelsCommand::Register {
            name,
            from,
            message,
        } => {
            let agents = runtime.agent_registry()?;
            let version = agents
                .register(&name, &from, message)
                .await
                .with_context(|| format!("registering {} as `{name}`", from.display()))?;
            println!(
                "registered {} from {} (run {})",
                version.uri(),
                from.display(),
                version.run_id.as_deref().unwrap_or("-")
            );
        }
        ModelsCommand::Promote {
            name,
            version,
            alias,
            stage,
            archive_existing,
        } => {
            let registry = runtime.model_registry()?;
            if alias.is_none() && stage.is_none() {
                anyhow::bail!("give --alias NAME and/or --stage STAGE");
            }
            if let Some(alias) = alias {
                registry.set_alias(&name, &alias, version).await?;
                println!("{name}@{alias} → {version}");
            }
            if let Some(stage) = stage {
                let stage = Stage::parse(&stage).with_context(|| {
                    format!("`{stage}` is not a stage: None, Staging, Production or Archived")
                })?;
                let moved = registry
                    .transition_stage(&name, version, stage, archive_existing)
                    .await?;
                println!("{} is now {}", moved.uri(), moved.stage);
            }
        }
        ModelsCommand::Archive { name, version } => {
            let registry = runtime.model_registry()?;
            let moved = registry
                .transition_stage(&name, version, Stage::Archived, false)
                .await?;
            println!("{} is now {}", moved.uri(), moved.stage);
        }
    }
    Ok(())
}

fn print_version(version: &ModelVersion) {
    let aliases = if version.aliases.is_empty() {
        String::new()
    } else {
        format!("  [{}]", version.aliases.join(", "))
    };
    println!(
        "  {:>3}  {:<10} {}{aliases}",
        version.version,
        version.stage.as_str(),
        version.description.as_deref().unwrap_or("")
    );
    println!("       source {}", version.source);
    if let Some(run) = &version.run_id {
        println!("       run    {run}");
    }
}
