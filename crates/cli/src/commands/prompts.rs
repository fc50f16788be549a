//! `sextant prompts`: the prompt registry from the command line.

use std::collections::BTreeMap;

use anyhow::Context;
use sextant_runtime::Runtime;
use sextant_tracker::prompts::{
    self, ChatMessageTemplate, NewPromptVersion, PromptFilter, PromptRegistry, PromptTemplate,
    PromptUri, PromptVersion, RegistryError,
};

use crate::cli::PromptsCommand;

pub async fn prompts(runtime: &Runtime, command: PromptsCommand) -> anyhow::Result<()> {
    let registry = runtime.prompt_registry()?;
    let registry: &dyn PromptRegistry = registry.as_ref();
    match command {
        PromptsCommand::List { name, tags, json } => {
            let filter = PromptFilter {
                name_contains: name,
                tags: tags.into_iter().collect(),
            };
            let found = registry.search(&filter).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else if found.is_empty() {
                println!("no prompts in the {} registry", registry.backend());
            } else {
                println!("{:<32} {:>7}  aliases", "name", "latest");
                for info in found {
                    let aliases = info
                        .aliases
                        .iter()
                        .map(|(alias, v)| format!("{alias}→{v}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let latest = info.latest_version.map(|v| v.to_string());
                    println!(
                        "{:<32} {:>7}  {aliases}",
                        info.name,
                        latest.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        PromptsCommand::Show { prompt, json } => {
            let uri: PromptUri = prompt.parse()?;
            let names_a_version =
                prompt.contains('@') || prompt.trim_start_matches("prompts:/").contains('/');
            if names_a_version {
                let version = registry.load(&uri).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&version)?);
                } else {
                    print_version(&version);
                }
            } else {
                let info = registry.get_prompt(&uri.name).await?;
                let versions = registry.list_versions(&uri.name).await?;
                if json {
                    let value = serde_json::json!({ "prompt": info, "versions": versions });
                    println!("{}", serde_json::to_string_pretty(&value)?);
                } else {
                    println!("prompt {}  ({} registry)", info.name, registry.backend());
                    print_tags("tags", &info.tags);
                    println!("versions:");
                    for version in &versions {
                        let aliases = if version.aliases.is_empty() {
                            String::new()
                        } else {
                            format!("  [{}]", version.aliases.join(", "))
                        };
                        println!(
                            "  {:>3}  {:<5} {}{aliases}",
                            version.version,
                            version.template.kind(),
                            version.commit_message.as_deref().unwrap_or("")
                        );
                    }
                    if let Some(latest) = versions.last() {
                        println!();
                        print_version(latest);
                    }
                }
            }
        }
        PromptsCommand::Push {
            path,
            dry_run,
            json,
        } => {
            let files = prompts::load_prompt_files(&path)?;
            let report = prompts::push(registry, &files, dry_run).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                let verb = if dry_run {
                    "would register"
                } else {
                    "registered"
                };
                for pushed in &report.versions {
                    let what = if pushed.registered { verb } else { "unchanged" };
                    println!(
                        "{:<10} {}  (file version {})",
                        what,
                        PromptUri::version(&pushed.name, pushed.version),
                        pushed.file_version
                    );
                }
                for (name, alias, version) in &report.aliases_set {
                    let verb = if dry_run { "would set" } else { "set" };
                    println!("{verb:<10} {name}@{alias} → {version}");
                }
                println!(
                    "{} prompt file(s): {} version(s) {verb}, {} unchanged, {} alias(es) {}",
                    files.len(),
                    report.registered(),
                    report.versions.len() - report.registered(),
                    report.aliases_set.len(),
                    if dry_run { "to set" } else { "set" }
                );
            }
        }
        PromptsCommand::Register {
            name,
            file,
            message,
            tags,
            alias,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let template = template_from_file(&file, &text)?;
            let version = registry
                .register(
                    &name,
                    NewPromptVersion {
                        template,
                        commit_message: message,
                        tags: tags.into_iter().collect(),
                        ..NewPromptVersion::default()
                    },
                )
                .await?;
            println!("registered {}", version.uri());
            if let Some(alias) = alias {
                registry.set_alias(&name, &alias, version.version).await?;
                println!("set {name}@{alias} → {}", version.version);
            }
        }
        PromptsCommand::Alias {
            name,
            alias,
            version,
            delete,
        } => match version {
            Some(version) if !delete => {
                registry.set_alias(&name, &alias, version).await?;
                println!("set {name}@{alias} → {version}");
            }
            _ => {
                registry.delete_alias(&name, &alias).await?;
                println!("deleted {name}@{alias}");
            }
        },
        PromptsCommand::Diff { name, from, to } => {
            let old = registry.get_version(&name, from).await?;
            let new = registry.get_version(&name, to).await?;
            let diff = prompts::unified_diff(&old, &new);
            if diff.is_empty() {
                println!("{} and {} have the same template", old.uri(), new.uri());
            } else {
                print!("{diff}");
            }
        }
    }
    Ok(())
}

/// A `.json` file holding a list of `{role, content}` is a chat template; anything else is text.
fn template_from_file(path: &std::path::Path, text: &str) -> Result<PromptTemplate, RegistryError> {
    if path.extension().is_some_and(|e| e == "json") {
        let messages: Vec<ChatMessageTemplate> =
            serde_json::from_str(text).map_err(|error| RegistryError::Invalid {
                what: format!("template file {}", path.display()),
                message: format!(
                    "a .json template is a list of {{\"role\", \"content\"}} messages: {error}"
                ),
            })?;
        return Ok(PromptTemplate::Chat(messages));
    }
    Ok(PromptTemplate::Text(text.to_owned()))
}

fn print_version(version: &PromptVersion) {
    println!("{}  ({})", version.uri(), version.template.kind());
    if let Some(message) = &version.commit_message {
        println!("commit message: {message}");
    }
    if !version.aliases.is_empty() {
        println!("aliases: {}", version.aliases.join(", "));
    }
    print_tags("tags", &version.tags);
    let variables = version.template.variables();
    if !variables.is_empty() {
        println!(
            "variables: {}",
            variables.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    println!("---");
    match &version.template {
        PromptTemplate::Text(text) => println!("{}", text.trim_end()),
        PromptTemplate::Chat(messages) => {
            for message in messages {
                println!("[{}]\n{}", message.role, message.content.trim_end());
            }
        }
    }
    for (label, value) in [
        ("response format", &version.response_format),
        ("model config", &version.model_config),
    ] {
        if let Some(value) = value {
            println!(
                "--- {label}\n{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        }
    }
}

fn print_tags(label: &str, tags: &BTreeMap<String, String>) {
    if !tags.is_empty() {
        let tags: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("{label}: {}", tags.join(", "));
    }
}
