//! The embedded tracking store: experiments, runs, params, metrics and tags in SQLite
//! (`data_dir/tracking.db`), artifacts as files under `data_dir/artifacts/<experiment>/<run>/artifacts`
//! — the layout MLflow's file artifact store uses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::database::{Database, WorkError};
use crate::now_ms;
use crate::tracking::{
    ArtifactFile, Assessment, AssessmentSource, AssessmentSourceType, DatasetInput, Experiment,
    LogBatch, Metric, NewRun, OrderBy, PARENT_RUN_ID_TAG, RUN_NAME_TAG, Run, RunFilter, RunInfo,
    RunStatus, TrackingError, TrackingStore, validate_artifact_path,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS experiments (
    experiment_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    artifact_location TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL DEFAULT 'active',
    creation_time_ms INTEGER NOT NULL,
    tags TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments (experiment_id),
    run_name TEXT NOT NULL,
    status TEXT NOT NULL,
    start_time_ms INTEGER NOT NULL,
    end_time_ms INTEGER,
    artifact_uri TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (experiment_id, start_time_ms);
CREATE TABLE IF NOT EXISTS run_params (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS run_tags (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS run_metrics (
    run_id TEXT NOT NULL, key TEXT NOT NULL, value REAL NOT NULL,
    timestamp_ms INTEGER NOT NULL, step INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS run_metrics_by_key ON run_metrics (run_id, key);
CREATE TABLE IF NOT EXISTS run_inputs (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    digest TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source TEXT NOT NULL,
    schema TEXT,
    profile TEXT,
    context TEXT,
    PRIMARY KEY (run_id, name, digest)
);
CREATE TABLE IF NOT EXISTS assessments (
    assessment_id TEXT PRIMARY KEY,
    trace_id TEXT NOT NULL,
    span_id TEXT,
    name TEXT NOT NULL,
    source_type TEXT NOT NULL,
    source_id TEXT NOT NULL,
    create_time_ms INTEGER NOT NULL,
    value TEXT,
    error TEXT,
    rationale TEXT,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS assessments_by_trace ON assessments (trace_id, create_time_ms);
";

/// Experiments and runs in the data directory; see the [module docs](self).
#[derive(Clone)]
pub struct LocalTrackingStore {
    database: Database,
    artifact_root: PathBuf,
}

impl std::fmt::Debug for LocalTrackingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTrackingStore")
            .field("path", &self.database.path())
            .finish()
    }
}

impl From<TrackingError> for WorkError<TrackingError> {
    fn from(error: TrackingError) -> Self {
        Self::Domain(error)
    }
}

/// 32 random hex digits: a run's id, as MLflow makes them, and the body of an assessment's.
fn random_hex_id() -> String {
    (0..16)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn run_not_found(run_id: &str) -> TrackingError {
    TrackingError::NotFound {
        what: format!("run {run_id}"),
    }
}

impl LocalTrackingStore {
    /// Opens (creating if needed) the store in `data_dir`, with the `Default` experiment (id 0).
    pub fn open(data_dir: &Path) -> Result<Self, TrackingError> {
        let path = data_dir.join("tracking.db");
        let artifact_root = data_dir.join("artifacts");
        let unavailable = |error: rusqlite::Error| TrackingError::Unavailable {
            backend: "local",
            location: path.display().to_string(),
            message: error.to_string(),
        };
        let database = Database::open(&path, SCHEMA).map_err(unavailable)?;
        let store = Self {
            database,
            artifact_root,
        };
        let default_location = store.artifact_root.join("0").display().to_string();
        store
            .database
            .call_now(|connection| {
                connection.execute(
                    "INSERT OR IGNORE INTO experiments (experiment_id, name, artifact_location, creation_time_ms)
                     VALUES (0, 'Default', ?1, ?2)",
                    params![default_location, now_ms()],
                )
            })
            .map_err(unavailable)?;
        Ok(store)
    }

    async fn call<T: Send + 'static>(
        &self,
        action: &'static str,
        work: impl FnOnce(&mut Connection) -> Result<T, WorkError<TrackingError>> + Send + 'static,
    ) -> Result<T, TrackingError> {
        let path = self.database.path().display().to_string();
        self.database.call(work).await.map_err(|error| match error {
            WorkError::Domain(error) => error,
            WorkError::Sqlite(error) => TrackingError::Backend {
                backend: "local",
                message: format!("could not {action} in {path}: {error}"),
            },
            WorkError::Panicked(message) => TrackingError::Backend {
                backend: "local",
                message: format!("{action}: {message}"),
            },
        })
    }

    fn run_artifact_dir(&self, info: &RunInfo) -> PathBuf {
        PathBuf::from(&info.artifact_uri)
    }
}

fn read_assessment(row: &rusqlite::Row<'_>) -> rusqlite::Result<Assessment> {
    fn json<T: serde::de::DeserializeOwned>(text: Option<String>) -> Option<T> {
        text.and_then(|t| serde_json::from_str(&t).ok())
    }
    let source_type: String = row.get(4)?;
    Ok(Assessment {
        assessment_id: Some(row.get(0)?),
        trace_id: row.get(1)?,
        span_id: row.get(2)?,
        name: row.get(3)?,
        source: AssessmentSource {
            source_type: AssessmentSourceType::parse(&source_type)
                .unwrap_or(AssessmentSourceType::Code),
            source_id: row.get(5)?,
        },
        create_time_ms: row.get(6)?,
        value: json(row.get(7)?),
        error: json(row.get(8)?),
        rationale: row.get(9)?,
        metadata: json(row.get(10)?).unwrap_or_default(),
    })
}

fn read_experiment(row: &rusqlite::Row<'_>) -> rusqlite::Result<Experiment> {
    let tags: String = row.get(4)?;
    Ok(Experiment {
        experiment_id: row.get::<_, i64>(0)?.to_string(),
        name: row.get(1)?,
        artifact_location: row.get(2)?,
        lifecycle_stage: row.get(3)?,
        tags: serde_json::from_str(&tags).unwrap_or_default(),
    })
}

fn read_info(connection: &Connection, run_id: &str) -> Result<RunInfo, WorkError<TrackingError>> {
    let info = connection
        .query_row(
            "SELECT run_id, experiment_id, run_name, status, start_time_ms, end_time_ms, artifact_uri
             FROM runs WHERE run_id = ?1",
            params![run_id],
            |row| {
                let status: String = row.get(3)?;
                Ok(RunInfo {
                    run_id: row.get(0)?,
                    experiment_id: row.get::<_, i64>(1)?.to_string(),
                    run_name: row.get(2)?,
                    status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
                    start_time_ms: row.get(4)?,
                    end_time_ms: row.get(5)?,
                    artifact_uri: row.get(6)?,
                })
            },
        )
        .optional()?;
    info.ok_or_else(|| run_not_found(run_id).into())
}

fn read_run(connection: &Connection, run_id: &str) -> Result<Run, WorkError<TrackingError>> {
    let info = read_info(connection, run_id)?;
    let pairs = |table: &str| -> rusqlite::Result<BTreeMap<String, String>> {
        connection
            .prepare_cached(&format!("SELECT key, value FROM {table} WHERE run_id = ?1"))?
            .query_map(params![run_id], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect()
    };
    let params = pairs("run_params")?;
    let tags = pairs("run_tags")?;
    let mut metrics: BTreeMap<String, Metric> = BTreeMap::new();
    let all: Vec<Metric> = connection
        .prepare_cached("SELECT key, value, timestamp_ms, step FROM run_metrics WHERE run_id = ?1")?
        .query_map(params![run_id], |row| {
            Ok(Metric {
                key: row.get(0)?,
                value: row.get(1)?,
                timestamp_ms: row.get(2)?,
                step: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    // The latest value is the one at the highest step, then the latest time (as MLflow picks).
    for metric in all {
        let newer = metrics.get(&metric.key).is_none_or(|current| {
            (metric.step, metric.timestamp_ms) >= (current.step, current.timestamp_ms)
        });
        if newer {
            metrics.insert(metric.key.clone(), metric);
        }
    }
    let inputs = connection
        .prepare_cached(
            "SELECT name, digest, source_type, source, schema, profile, context
             FROM run_inputs WHERE run_id = ?1 ORDER BY rowid",
        )?
        .query_map(params![run_id], |row| {
            Ok(DatasetInput {
                name: row.get(0)?,
                digest: row.get(1)?,
                source_type: row.get(2)?,
                source: row.get(3)?,
                schema: row.get(4)?,
                profile: row.get(5)?,
                context: row.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Run {
        info,
        params,
        metrics,
        tags,
        inputs,
    })
}

#[async_trait]
impl TrackingStore for LocalTrackingStore {
    fn backend(&self) -> &'static str {
        "local"
    }

    fn location(&self) -> String {
        self.database.path().display().to_string()
    }

    async fn experiment_by_name(&self, name: &str) -> Result<Option<Experiment>, TrackingError> {
        let name = name.to_owned();
        self.call("read an experiment", move |connection| {
            Ok(connection
                .query_row(
                    "SELECT experiment_id, name, artifact_location, lifecycle_stage, tags
                     FROM experiments WHERE name = ?1 AND lifecycle_stage = 'active'",
                    params![name],
                    read_experiment,
                )
                .optional()?)
        })
        .await
    }

    async fn create_experiment(
        &self,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, TrackingError> {
        if name.trim().is_empty() {
            return Err(TrackingError::Invalid {
                what: "experiment name".into(),
                message: "is empty".into(),
            });
        }
        let (name, tags) = (
            name.to_owned(),
            serde_json::to_string(tags).unwrap_or_default(),
        );
        let root = self.artifact_root.clone();
        self.call("create an experiment", move |connection| {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let exists: bool = transaction.query_row(
                "SELECT EXISTS (SELECT 1 FROM experiments WHERE name = ?1)",
                params![name],
                |row| row.get(0),
            )?;
            if exists {
                return Err(TrackingError::Invalid {
                    what: format!("experiment `{name}`"),
                    message: "already exists".into(),
                }
                .into());
            }
            let id: i64 = transaction.query_row(
                "SELECT COALESCE(MAX(experiment_id), 0) + 1 FROM experiments",
                [],
                |row| row.get(0),
            )?;
            transaction.execute(
                "INSERT INTO experiments (experiment_id, name, artifact_location, creation_time_ms, tags)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, name, root.join(id.to_string()).display().to_string(), now_ms(), tags],
            )?;
            transaction.commit()?;
            Ok(id.to_string())
        })
        .await
    }

    async fn list_experiments(&self) -> Result<Vec<Experiment>, TrackingError> {
        self.call("list experiments", |connection| {
            Ok(connection
                .prepare(
                    "SELECT experiment_id, name, artifact_location, lifecycle_stage, tags
                     FROM experiments WHERE lifecycle_stage = 'active' ORDER BY name",
                )?
                .query_map([], read_experiment)?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn create_run(&self, run: NewRun) -> Result<RunInfo, TrackingError> {
        let run_id = random_hex_id();
        let root = self.artifact_root.clone();
        self.call("create a run", move |connection| {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let experiment: Option<i64> = run
                .experiment_id
                .parse::<i64>()
                .ok()
                .map(|id| {
                    transaction
                        .query_row(
                            "SELECT experiment_id FROM experiments WHERE experiment_id = ?1",
                            params![id],
                            |row| row.get(0),
                        )
                        .optional()
                })
                .transpose()?
                .flatten();
            let Some(experiment) = experiment else {
                return Err(TrackingError::NotFound {
                    what: format!("experiment {}", run.experiment_id),
                }
                .into());
            };
            if let Some(parent) = &run.parent_run_id {
                read_info(&transaction, parent)?;
            }
            let run_name = run
                .run_name
                .clone()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or_else(|| format!("run-{}", &run_id[..8]));
            let info = RunInfo {
                run_id: run_id.clone(),
                experiment_id: experiment.to_string(),
                run_name: run_name.clone(),
                status: RunStatus::Running,
                start_time_ms: run.start_time_ms.unwrap_or_else(now_ms),
                end_time_ms: None,
                artifact_uri: root
                    .join(experiment.to_string())
                    .join(&run_id)
                    .join("artifacts")
                    .display()
                    .to_string(),
            };
            transaction.execute(
                "INSERT INTO runs (run_id, experiment_id, run_name, status, start_time_ms, artifact_uri)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![info.run_id, experiment, info.run_name, info.status.as_str(), info.start_time_ms, info.artifact_uri],
            )?;
            let mut tags = run.tags.clone();
            tags.insert(RUN_NAME_TAG.into(), run_name);
            if let Some(parent) = &run.parent_run_id {
                tags.insert(PARENT_RUN_ID_TAG.into(), parent.clone());
            }
            for (key, value) in &tags {
                transaction.execute(
                    "INSERT OR REPLACE INTO run_tags (run_id, key, value) VALUES (?1, ?2, ?3)",
                    params![run_id, key, value],
                )?;
            }
            transaction.commit()?;
            Ok(info)
        })
        .await
    }

    async fn update_run(
        &self,
        run_id: &str,
        status: RunStatus,
        end_time_ms: Option<i64>,
    ) -> Result<(), TrackingError> {
        let run_id = run_id.to_owned();
        self.call("update a run", move |connection| {
            let changed = connection.execute(
                "UPDATE runs SET status = ?2, end_time_ms = COALESCE(?3, end_time_ms) WHERE run_id = ?1",
                params![run_id, status.as_str(), end_time_ms],
            )?;
            if changed == 0 {
                return Err(run_not_found(&run_id).into());
            }
            Ok(())
        })
        .await
    }

    async fn log_batch(&self, run_id: &str, batch: &LogBatch) -> Result<(), TrackingError> {
        if batch.metrics.len() > LogBatch::MAX_METRICS
            || batch.params.len() > LogBatch::MAX_PARAMS
            || batch.tags.len() > LogBatch::MAX_TAGS
        {
            return Err(TrackingError::Invalid {
                what: format!("a batch for run {run_id}"),
                message: "exceeds 1000 metrics, 100 params or 100 tags (use LogBatch::split)"
                    .into(),
            });
        }
        let (run_id, batch) = (run_id.to_owned(), batch.clone());
        self.call("log to a run", move |connection| {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            read_info(&transaction, &run_id)?;
            for (key, value) in &batch.params {
                let existing: Option<String> = transaction
                    .query_row(
                        "SELECT value FROM run_params WHERE run_id = ?1 AND key = ?2",
                        params![run_id, key],
                        |row| row.get(0),
                    )
                    .optional()?;
                match existing {
                    Some(existing) if &existing != value => {
                        return Err(TrackingError::Invalid {
                            what: format!("param `{key}` of run {run_id}"),
                            message: format!(
                                "was logged as `{existing}`; params cannot change (log `{value}` as a tag or a metric, or start a new run)"
                            ),
                        }
                        .into());
                    }
                    Some(_) => {}
                    None => {
                        transaction.execute(
                            "INSERT INTO run_params (run_id, key, value) VALUES (?1, ?2, ?3)",
                            params![run_id, key, value],
                        )?;
                    }
                }
            }
            for (key, value) in &batch.tags {
                transaction.execute(
                    "INSERT OR REPLACE INTO run_tags (run_id, key, value) VALUES (?1, ?2, ?3)",
                    params![run_id, key, value],
                )?;
            }
            for metric in &batch.metrics {
                transaction.execute(
                    "INSERT INTO run_metrics (run_id, key, value, timestamp_ms, step) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![run_id, metric.key, metric.value, metric.timestamp_ms, metric.step],
                )?;
            }
            transaction.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_run(&self, run_id: &str) -> Result<Run, TrackingError> {
        let run_id = run_id.to_owned();
        self.call("read a run", move |connection| {
            read_run(connection, &run_id)
        })
        .await
    }

    async fn metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>, TrackingError> {
        let (run_id, key) = (run_id.to_owned(), key.to_owned());
        self.call("read a metric's history", move |connection| {
            read_info(connection, &run_id)?;
            Ok(connection
                .prepare_cached(
                    "SELECT key, value, timestamp_ms, step FROM run_metrics WHERE run_id = ?1 AND key = ?2
                     ORDER BY step, timestamp_ms, rowid",
                )?
                .query_map(params![run_id, key], |row| {
                    Ok(Metric {
                        key: row.get(0)?,
                        value: row.get(1)?,
                        timestamp_ms: row.get(2)?,
                        step: row.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn search_runs(
        &self,
        experiment_ids: &[String],
        filter: &str,
        order_by: &[String],
        max_results: usize,
    ) -> Result<Vec<Run>, TrackingError> {
        let filter = RunFilter::parse(filter)?;
        let order: Vec<OrderBy> = order_by
            .iter()
            .map(|term| OrderBy::parse(term))
            .collect::<Result<_, _>>()?;
        let experiments: Vec<i64> = experiment_ids
            .iter()
            .map(|id| {
                id.parse().map_err(|_| TrackingError::Invalid {
                    what: format!("experiment id `{id}`"),
                    message: "is not a number".into(),
                })
            })
            .collect::<Result<_, _>>()?;
        let mut runs = self
            .call("search runs", move |connection| {
                let mut runs = Vec::new();
                for experiment in experiments {
                    let ids: Vec<String> = connection
                        .prepare_cached("SELECT run_id FROM runs WHERE experiment_id = ?1")?
                        .query_map(params![experiment], |row| row.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    for id in ids {
                        let run = read_run(connection, &id)?;
                        if filter.matches(&run) {
                            runs.push(run);
                        }
                    }
                }
                Ok(runs)
            })
            .await?;
        OrderBy::sort(&mut runs, &order);
        runs.truncate(max_results);
        Ok(runs)
    }

    async fn log_artifact(
        &self,
        run_id: &str,
        path: &str,
        contents: Vec<u8>,
    ) -> Result<(), TrackingError> {
        validate_artifact_path(path)?;
        let info = self.get_run(run_id).await?.info;
        let target = self.run_artifact_dir(&info).join(path);
        let io = |error: std::io::Error| TrackingError::Backend {
            backend: "local",
            message: format!("could not write artifact {}: {error}", target.display()),
        };
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        // Written aside, synced and renamed: a reader never sees half a file, and a logged
        // artefact survives a crash of the machine.
        let written = target.clone();
        tokio::task::spawn_blocking(move || {
            crate::durable_file::write_durably(&written, &contents)
        })
        .await
        .map_err(|error| io(std::io::Error::other(error)))?
        .map_err(io)?;
        Ok(())
    }

    async fn list_artifacts(
        &self,
        run_id: &str,
        path: &str,
    ) -> Result<Vec<ArtifactFile>, TrackingError> {
        if !path.is_empty() {
            validate_artifact_path(path)?;
        }
        let info = self.get_run(run_id).await?.info;
        let dir = self.run_artifact_dir(&info).join(path);
        let mut files = Vec::new();
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
            return Ok(files);
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let Ok(metadata) = entry.metadata().await else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".partial") {
                continue;
            }
            files.push(ArtifactFile {
                path: if path.is_empty() {
                    name
                } else {
                    format!("{path}/{name}")
                },
                is_dir: metadata.is_dir(),
                size: metadata.is_file().then_some(metadata.len()),
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    async fn read_artifact(&self, run_id: &str, path: &str) -> Result<Vec<u8>, TrackingError> {
        validate_artifact_path(path)?;
        let info = self.get_run(run_id).await?.info;
        let file = self.run_artifact_dir(&info).join(path);
        tokio::fs::read(&file)
            .await
            .map_err(|error| match error.kind() {
                std::io::ErrorKind::NotFound => TrackingError::NotFound {
                    what: format!("artifact `{path}` of run {run_id}"),
                },
                _ => TrackingError::Backend {
                    backend: "local",
                    message: format!("could not read {}: {error}", file.display()),
                },
            })
    }

    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[DatasetInput],
    ) -> Result<(), TrackingError> {
        let (run_id, datasets) = (run_id.to_owned(), datasets.to_vec());
        self.call("log a run's datasets", move |connection| {
            let transaction = connection.transaction()?;
            read_info(&transaction, &run_id)?;
            for d in &datasets {
                // Logged again (same name and digest): kept once, with what it was used for.
                transaction.execute(
                    "INSERT INTO run_inputs (run_id, name, digest, source_type, source, schema,
                     profile, context) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (run_id, name, digest) DO UPDATE SET
                     context = COALESCE(excluded.context, context)",
                    params![
                        run_id,
                        d.name,
                        d.digest,
                        d.source_type,
                        d.source,
                        d.schema,
                        d.profile,
                        d.context
                    ],
                )?;
            }
            transaction.commit()?;
            Ok(())
        })
        .await
    }

    async fn log_assessment(&self, assessment: &Assessment) -> Result<String, TrackingError> {
        assessment.validate()?;
        let id = format!("a-{}", random_hex_id());
        let mut stored = assessment.clone();
        stored.assessment_id = Some(id.clone());
        self.call("store an assessment", move |connection| {
            connection.execute(
                "INSERT INTO assessments (assessment_id, trace_id, span_id, name, source_type,
                 source_id, create_time_ms, value, error, rationale, metadata)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    id,
                    stored.otel_trace_id(),
                    stored.span_id,
                    stored.name,
                    stored.source.source_type.as_str(),
                    stored.source.source_id,
                    stored.create_time_ms,
                    stored.value.as_ref().map(|v| v.to_string()),
                    stored
                        .error
                        .as_ref()
                        .map(|e| serde_json::to_string(e).unwrap_or_default()),
                    stored.rationale,
                    serde_json::to_string(&stored.metadata).unwrap_or_default(),
                ],
            )?;
            Ok(id)
        })
        .await
    }

    async fn trace_assessments(&self, trace_id: &str) -> Result<Vec<Assessment>, TrackingError> {
        let trace_id = trace_id
            .strip_prefix("tr-")
            .unwrap_or(trace_id)
            .to_ascii_lowercase();
        self.call("read assessments", move |connection| {
            Ok(connection
                .prepare(
                    "SELECT assessment_id, trace_id, span_id, name, source_type, source_id,
                     create_time_ms, value, error, rationale, metadata
                     FROM assessments WHERE trace_id = ?1 ORDER BY create_time_ms, rowid",
                )?
                .query_map(params![trace_id], read_assessment)?
                .collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}
