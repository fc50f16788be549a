//! `sextant datasets`: evaluation datasets built from traces, in versions.

use anyhow::Context;
use serde_json::{Value, json};
use sextant_agent::eval::dataset::{Dataset, EvalRow};
use sextant_agent::eval::dataset_store::{
    DatasetStore, DatasetStoreError, DatasetVersion, ExpectedFrom, SCHEME, rows_from_traces,
};
use sextant_runtime::{Runtime, SextantConfig};
use sextant_tracker::mlflow::MlflowDatasets;
use sextant_tracker::{TraceFilter, TraceQuery};

use crate::cli::DatasetsCommand;

pub async fn datasets(runtime: &Runtime, command: DatasetsCommand) -> anyhow::Result<()> {
    let store = DatasetStore::new(&runtime.config().data_dir());
    match command {
        DatasetsCommand::Create {
            name,
            from_traces,
            expected,
            limit,
        } => {
            let expected_from = ExpectedFrom::parse(&expected).map_err(anyhow::Error::msg)?;
            let traces = runtime.trace_store().context("opening the trace store")?;
            let query = TraceQuery {
                filter: TraceFilter::parse(&from_traces)?,
                limit: limit.clamp(1, 500),
                ..TraceQuery::default()
            };
            let turns = runtime.checkpoints().map(|c| c.store.clone());
            let (rows, skipped) =
                rows_from_traces(&traces, turns.as_deref(), &query, &expected_from, limit).await?;
            anyhow::ensure!(
                !rows.is_empty(),
                "no trace matching `{from_traces}` gave a row ({skipped} skipped: no question \
                 recorded, or no {expected} to expect); see `sextant traces search \"{from_traces}\"`"
            );
            let source = std::path::PathBuf::from(format!("{SCHEME}{name}"));
            let dataset = Dataset::from_rows(&source, rows)?;
            let version = store.save(&name, &dataset, &from_traces, expected.trim())?;
            if let Some(id) = push_to_mlflow(runtime.config(), &dataset, &version).await? {
                println!(
                    "on MLflow as evaluation dataset {id} (`mlflow.genai.datasets.get_dataset`)"
                );
            }
            println!(
                "dataset {SCHEME}{}/{}: {} rows, digest {}{}",
                version.name,
                version.version,
                version.rows,
                version.digest,
                if skipped > 0 {
                    format!(" ({skipped} traces skipped: no question or no expectation)")
                } else {
                    String::new()
                }
            );
        }
        DatasetsCommand::List { json } => {
            let all = store.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else if all.is_empty() {
                println!("no datasets yet (`sextant datasets create NAME --from-traces FILTER`)");
            }
            for version in all.iter().filter(|_| !json) {
                println!(
                    "{SCHEME}{}/{}  {:>5} rows  {}  from `{}`",
                    version.name, version.version, version.rows, version.digest, version.filter
                );
            }
        }
        DatasetsCommand::Show { name, json } => {
            if name.contains('/') {
                let (dataset, version) = store.load(&format!("{SCHEME}{name}"))?;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(
                            &serde_json::json!({"version": version, "rows": dataset.rows})
                        )?
                    );
                } else {
                    for row in &dataset.rows {
                        println!("{}", serde_json::to_string(row)?);
                    }
                }
            } else {
                let versions = store.versions(&name)?;
                anyhow::ensure!(!versions.is_empty(), "no dataset `{name}`");
                if json {
                    println!("{}", serde_json::to_string_pretty(&versions)?);
                } else {
                    for version in versions {
                        println!(
                            "{SCHEME}{}/{}  {:>5} rows  {}  expected from {}  from `{}`",
                            version.name,
                            version.version,
                            version.rows,
                            version.digest,
                            version.expected_from,
                            version.filter
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// The MLflow datasets API and the experiment's id, when tracking is on MLflow.
async fn mlflow_datasets(
    config: &SextantConfig,
) -> anyhow::Result<Option<(MlflowDatasets, String)>> {
    let Some(client) = config
        .tracking
        .mlflow_client()
        .map_err(anyhow::Error::msg)?
    else {
        return Ok(None);
    };
    let experiment = config
        .tracking
        .tracking_store(&config.data_dir())?
        .get_or_create_experiment(&config.tracking.experiment)
        .await?;
    Ok(Some((MlflowDatasets::new(client), experiment)))
}

/// With MLflow as the tracking backend, the version also goes to MLflow's evaluation datasets
/// (created in the experiment on first use; rows merged by their inputs): its id.
async fn push_to_mlflow(
    config: &SextantConfig,
    dataset: &Dataset,
    version: &DatasetVersion,
) -> anyhow::Result<Option<String>> {
    let Some((datasets, experiment)) = mlflow_datasets(config).await? else {
        return Ok(None);
    };
    let found = datasets.find(&version.name, &experiment).await?;
    let target = match found {
        Some(found) => found,
        None => {
            let tags = [
                ("sextant.source".to_owned(), json!("traces")),
                ("sextant.filter".to_owned(), json!(version.filter)),
            ]
            .into_iter()
            .collect();
            datasets.create(&version.name, &experiment, &tags).await?
        }
    };
    let records: Vec<Value> = dataset
        .rows
        .iter()
        .map(|row| {
            let mut record = json!({
                "inputs": row.inputs,
                "expectations": row.expectations,
                "tags": {
                    "sextant.dataset.version": version.version.to_string(),
                    "sextant.dataset.digest": version.digest,
                },
            });
            if let Some(trace) = &row.source_trace {
                record["source"] = json!({
                    "source_type": "TRACE",
                    "source_data": {"trace_id": format!("tr-{trace}")},
                });
            }
            record
        })
        .collect();
    datasets.upsert(&target.dataset_id, &records).await?;
    Ok(Some(target.dataset_id))
}

/// The dataset `datasets:/NAME[/VERSION]` names: the local version, else (no version asked for,
/// tracking on MLflow) MLflow's evaluation dataset NAME in the experiment.
pub async fn load(config: &SextantConfig, uri: &str) -> anyhow::Result<Dataset> {
    let store = DatasetStore::new(&config.data_dir());
    match store.load(uri) {
        Ok((dataset, _)) => Ok(dataset),
        Err(DatasetStoreError::NotFound(message)) => {
            let name = uri.trim_start_matches(SCHEME);
            if name.contains('/') {
                anyhow::bail!(message);
            }
            let Some((datasets, experiment)) = mlflow_datasets(config).await? else {
                anyhow::bail!(message);
            };
            let found = datasets
                .find(name, &experiment)
                .await?
                .with_context(|| format!("{message}; nor is there one on MLflow"))?;
            let rows: Vec<EvalRow> = datasets
                .records(&found.dataset_id)
                .await?
                .into_iter()
                .map(|record| {
                    let source_trace = record["source"]["source_data"]["trace_id"]
                        .as_str()
                        .map(|id| id.trim_start_matches("tr-").to_owned());
                    serde_json::from_value(json!({
                        "inputs": record["inputs"],
                        "expectations": record.get("expectations").cloned().unwrap_or(json!({})),
                    }))
                    .map(|row: EvalRow| EvalRow {
                        source_trace,
                        ..row
                    })
                })
                .collect::<Result<_, _>>()
                .with_context(|| format!("reading MLflow dataset {}", found.dataset_id))?;
            let mut dataset = Dataset::from_rows(std::path::Path::new(uri), rows)?;
            dataset.name = name.to_owned();
            Ok(dataset)
        }
        Err(other) => Err(other.into()),
    }
}
