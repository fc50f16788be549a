//! Experiments and runs on an MLflow tracking server through its 2.0 REST API — the calls the
//! Python client makes, so `mlflow.get_run`, `MlflowClient().get_metric_history` and
//! `mlflow.artifacts.download_artifacts` read what Sextant logged. Artifacts go through the
//! server's artifact proxy (`mlflow-artifacts:/…`, a server started with `--artifacts-destination`
//! or the default `--serve-artifacts`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::PagedSearch;
use super::wire::{WireTag, tag_list, tag_map};
use super::{MlflowClient, MlflowError};
use crate::tracking::{
    ArtifactFile, Assessment, DatasetInput, Experiment, LogBatch, Metric, NewRun,
    PARENT_RUN_ID_TAG, Run, RunInfo, RunStatus, TrackingError, TrackingStore,
    validate_artifact_path,
};

const ARTIFACT_PROXY_SCHEME: &str = "mlflow-artifacts:/";

/// Experiments and runs on an MLflow server; see the [module docs](self).
#[derive(Debug)]
pub struct MlflowTrackingStore {
    client: MlflowClient,
}

impl MlflowTrackingStore {
    /// The tracking store of the server `client` talks to.
    pub fn new(client: MlflowClient) -> Self {
        Self { client }
    }

    fn error(&self, error: MlflowError, what: impl FnOnce() -> String) -> TrackingError {
        match error {
            MlflowError::Unavailable { url, message } => TrackingError::Unavailable {
                backend: "mlflow",
                location: url,
                message,
            },
            error if error.is_not_found() => TrackingError::NotFound { what: what() },
            MlflowError::Api {
                error_code,
                message,
                ..
            } if error_code == "INVALID_PARAMETER_VALUE"
                || error_code == "RESOURCE_ALREADY_EXISTS"
                || error_code == "BAD_REQUEST" =>
            {
                TrackingError::Invalid {
                    what: what(),
                    message,
                }
            }
            error => TrackingError::Backend {
                backend: "mlflow",
                message: error.to_string(),
            },
        }
    }

    /// The artifact proxy path of a run's artifact root.
    fn artifact_root(&self, info: &RunInfo) -> Result<String, TrackingError> {
        info.artifact_uri
            .strip_prefix(ARTIFACT_PROXY_SCHEME)
            .map(|rest| rest.trim_matches('/').to_owned())
            .ok_or_else(|| TrackingError::Invalid {
                what: format!("artifacts of run {}", info.run_id),
                message: format!(
                    "they live at {}, which only the server can reach; start MLflow with artifact proxying (--artifacts-destination) so clients upload through it",
                    info.artifact_uri
                ),
            })
    }
}

#[derive(Deserialize)]
struct WireExperiment {
    experiment_id: String,
    name: String,
    #[serde(default)]
    artifact_location: String,
    #[serde(default)]
    lifecycle_stage: String,
    #[serde(default)]
    tags: Vec<WireTag>,
}

impl From<WireExperiment> for Experiment {
    fn from(wire: WireExperiment) -> Self {
        Self {
            experiment_id: wire.experiment_id,
            name: wire.name,
            artifact_location: wire.artifact_location,
            lifecycle_stage: wire.lifecycle_stage,
            tags: tag_map(wire.tags),
        }
    }
}

#[derive(Deserialize)]
struct WireRunInfo {
    run_id: String,
    experiment_id: String,
    #[serde(default)]
    run_name: String,
    status: String,
    #[serde(default)]
    start_time: Option<i64>,
    #[serde(default)]
    end_time: Option<i64>,
    #[serde(default)]
    artifact_uri: String,
}

#[derive(Deserialize)]
struct WireMetric {
    key: String,
    value: Value,
    #[serde(default)]
    timestamp: i64,
    #[serde(default)]
    step: i64,
}

#[derive(Deserialize, Default)]
struct WireRunData {
    #[serde(default)]
    metrics: Vec<WireMetric>,
    #[serde(default)]
    params: Vec<WireTag>,
    #[serde(default)]
    tags: Vec<WireTag>,
}

#[derive(Deserialize)]
struct WireRun {
    info: WireRunInfo,
    #[serde(default)]
    data: WireRunData,
    #[serde(default)]
    inputs: Value,
}

#[derive(Deserialize)]
struct RunAnswer {
    run: WireRun,
}

impl From<WireRunInfo> for RunInfo {
    fn from(wire: WireRunInfo) -> Self {
        Self {
            run_id: wire.run_id,
            experiment_id: wire.experiment_id,
            run_name: wire.run_name,
            status: RunStatus::parse(&wire.status).unwrap_or(RunStatus::Failed),
            start_time_ms: wire.start_time.unwrap_or_default(),
            end_time_ms: wire.end_time,
            artifact_uri: wire.artifact_uri,
        }
    }
}

impl From<WireMetric> for Metric {
    fn from(wire: WireMetric) -> Self {
        // MLflow writes NaN and infinities as strings.
        let value = match &wire.value {
            Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
            Value::String(s) => s.parse().unwrap_or(f64::NAN),
            _ => f64::NAN,
        };
        Self {
            key: wire.key,
            value,
            timestamp_ms: wire.timestamp,
            step: wire.step,
        }
    }
}

impl From<WireRun> for Run {
    fn from(wire: WireRun) -> Self {
        Self {
            info: wire.info.into(),
            params: tag_map(wire.data.params),
            metrics: wire
                .data
                .metrics
                .into_iter()
                .map(|m| (m.key.clone(), Metric::from(m)))
                .collect(),
            tags: tag_map(wire.data.tags),
            inputs: wire.inputs["dataset_inputs"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(DatasetInput::from_mlflow_json)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

/// A metric value as MLflow's JSON takes it (NaN and infinities as strings).
fn metric_value(value: f64) -> Value {
    if value.is_finite() {
        json!(value)
    } else if value.is_nan() {
        json!("NaN")
    } else if value > 0.0 {
        json!("Infinity")
    } else {
        json!("-Infinity")
    }
}

#[async_trait]
impl TrackingStore for MlflowTrackingStore {
    fn backend(&self) -> &'static str {
        "mlflow"
    }

    fn location(&self) -> String {
        self.client.base_url().to_owned()
    }

    async fn experiment_by_name(&self, name: &str) -> Result<Option<Experiment>, TrackingError> {
        #[derive(Deserialize)]
        struct Answer {
            experiment: WireExperiment,
        }
        let answer: Result<Answer, _> = self
            .client
            .get(
                "api/2.0/mlflow/experiments/get-by-name",
                &[("experiment_name", name.to_owned())],
            )
            .await;
        match answer {
            Ok(answer) if answer.experiment.lifecycle_stage == "deleted" => Ok(None),
            Ok(answer) => Ok(Some(answer.experiment.into())),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(self.error(error, || format!("experiment `{name}`"))),
        }
    }

    async fn create_experiment(
        &self,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, TrackingError> {
        #[derive(Deserialize)]
        struct Answer {
            experiment_id: String,
        }
        let answer: Answer = self
            .client
            .post(
                "api/2.0/mlflow/experiments/create",
                &json!({ "name": name, "tags": tag_list(tags) }),
            )
            .await
            .map_err(|e| self.error(e, || format!("experiment `{name}`")))?;
        Ok(answer.experiment_id)
    }

    async fn list_experiments(&self) -> Result<Vec<Experiment>, TrackingError> {
        let search = PagedSearch::post(
            "api/2.0/mlflow/experiments/search",
            "experiments",
            json!({ "view_type": "ACTIVE_ONLY" }),
            1000,
        );
        let found: Vec<WireExperiment> = self
            .client
            .search_all(search)
            .await
            .map_err(|e| self.error(e, || "experiments".into()))?;
        let mut experiments: Vec<Experiment> = found.into_iter().map(Experiment::from).collect();
        experiments.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(experiments)
    }

    async fn create_run(&self, run: NewRun) -> Result<RunInfo, TrackingError> {
        let mut tags = run.tags.clone();
        if let Some(parent) = &run.parent_run_id {
            tags.insert(PARENT_RUN_ID_TAG.into(), parent.clone());
        }
        let mut body = json!({
            "experiment_id": run.experiment_id,
            "start_time": run.start_time_ms.unwrap_or_else(crate::now_ms),
            "tags": tag_list(&tags),
        });
        if let Some(name) = run.run_name.as_deref().filter(|n| !n.trim().is_empty()) {
            body["run_name"] = json!(name);
        }
        let answer: RunAnswer = self
            .client
            .post("api/2.0/mlflow/runs/create", &body)
            .await
            .map_err(|e| self.error(e, || format!("experiment {}", run.experiment_id)))?;
        Ok(answer.run.info.into())
    }

    async fn update_run(
        &self,
        run_id: &str,
        status: RunStatus,
        end_time_ms: Option<i64>,
    ) -> Result<(), TrackingError> {
        let mut body = json!({ "run_id": run_id, "status": status.as_str() });
        if let Some(end) = end_time_ms {
            body["end_time"] = json!(end);
        }
        let _: Value = self
            .client
            .post("api/2.0/mlflow/runs/update", &body)
            .await
            .map_err(|e| self.error(e, || format!("run {run_id}")))?;
        Ok(())
    }

    async fn log_batch(&self, run_id: &str, batch: &LogBatch) -> Result<(), TrackingError> {
        if batch.is_empty() {
            return Ok(());
        }
        let metrics: Vec<Value> = batch
            .metrics
            .iter()
            .map(|m| {
                json!({ "key": m.key, "value": metric_value(m.value), "timestamp": m.timestamp_ms, "step": m.step })
            })
            .collect();
        let params = tag_list(batch.params.iter().map(|(k, v)| (k, v)));
        let tags = tag_list(batch.tags.iter().map(|(k, v)| (k, v)));
        let _: Value = self
            .client
            .post(
                "api/2.0/mlflow/runs/log-batch",
                &json!({ "run_id": run_id, "metrics": metrics, "params": params, "tags": tags }),
            )
            .await
            .map_err(|e| self.error(e, || format!("run {run_id}")))?;
        Ok(())
    }

    async fn get_run(&self, run_id: &str) -> Result<Run, TrackingError> {
        let answer: RunAnswer = self
            .client
            .get("api/2.0/mlflow/runs/get", &[("run_id", run_id.to_owned())])
            .await
            .map_err(|e| self.error(e, || format!("run {run_id}")))?;
        Ok(answer.run.into())
    }

    async fn metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>, TrackingError> {
        let search = PagedSearch::get(
            "api/2.0/mlflow/metrics/get-history",
            "metrics",
            vec![
                ("run_id", run_id.to_owned()),
                ("metric_key", key.to_owned()),
            ],
            25_000,
        );
        let found: Vec<WireMetric> = self
            .client
            .search_all(search)
            .await
            .map_err(|e| self.error(e, || format!("run {run_id}")))?;
        let mut history: Vec<Metric> = found.into_iter().map(Metric::from).collect();
        history.sort_by_key(|m| (m.step, m.timestamp_ms));
        Ok(history)
    }

    async fn search_runs(
        &self,
        experiment_ids: &[String],
        filter: &str,
        order_by: &[String],
        max_results: usize,
    ) -> Result<Vec<Run>, TrackingError> {
        // The same syntax errors as the embedded store, before the server sees the filter.
        crate::tracking::RunFilter::parse(filter)?;
        let search = PagedSearch::post(
            "api/2.0/mlflow/runs/search",
            "runs",
            json!({
                "experiment_ids": experiment_ids,
                "filter": filter,
                "order_by": order_by,
            }),
            1000,
        )
        .limit(max_results);
        let found: Vec<WireRun> = self
            .client
            .search_all(search)
            .await
            .map_err(|e| self.error(e, || format!("run filter `{filter}`")))?;
        Ok(found.into_iter().map(Run::from).collect())
    }

    async fn log_artifact(
        &self,
        run_id: &str,
        path: &str,
        contents: Vec<u8>,
    ) -> Result<(), TrackingError> {
        validate_artifact_path(path)?;
        let info = self.get_run(run_id).await?.info;
        let root = self.artifact_root(&info)?;
        self.client
            .put_bytes(
                &format!("api/2.0/mlflow-artifacts/artifacts/{root}/{path}"),
                contents,
            )
            .await
            .map_err(|e| self.error(e, || format!("artifact `{path}` of run {run_id}")))
    }

    async fn list_artifacts(
        &self,
        run_id: &str,
        path: &str,
    ) -> Result<Vec<ArtifactFile>, TrackingError> {
        #[derive(Deserialize)]
        struct File {
            path: String,
            #[serde(default)]
            is_dir: bool,
            #[serde(default)]
            file_size: Option<Value>,
        }
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            files: Vec<File>,
        }
        if !path.is_empty() {
            validate_artifact_path(path)?;
        }
        let info = self.get_run(run_id).await?.info;
        let root = self.artifact_root(&info)?;
        let listed = if path.is_empty() {
            root
        } else {
            format!("{root}/{path}")
        };
        let answer: Answer = self
            .client
            .get("api/2.0/mlflow-artifacts/artifacts", &[("path", listed)])
            .await
            .map_err(|e| self.error(e, || format!("artifacts of run {run_id}")))?;
        let mut files: Vec<ArtifactFile> = answer
            .files
            .into_iter()
            .map(|file| {
                let name = file
                    .path
                    .rsplit('/')
                    .next()
                    .unwrap_or(&file.path)
                    .to_owned();
                ArtifactFile {
                    path: if path.is_empty() {
                        name
                    } else {
                        format!("{path}/{name}")
                    },
                    is_dir: file.is_dir,
                    size: file.file_size.and_then(|s| match s {
                        Value::Number(n) => n.as_u64(),
                        Value::String(s) => s.parse().ok(),
                        _ => None,
                    }),
                }
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    async fn read_artifact(&self, run_id: &str, path: &str) -> Result<Vec<u8>, TrackingError> {
        validate_artifact_path(path)?;
        let info = self.get_run(run_id).await?.info;
        let root = self.artifact_root(&info)?;
        self.client
            .get_bytes(
                &format!("api/2.0/mlflow-artifacts/artifacts/{root}/{path}"),
                &[],
            )
            .await
            .map_err(|e| self.error(e, || format!("artifact `{path}` of run {run_id}")))
    }

    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[DatasetInput],
    ) -> Result<(), TrackingError> {
        let datasets: Vec<Value> = datasets.iter().map(DatasetInput::to_mlflow_json).collect();
        let _: Value = self
            .client
            .post(
                "api/2.0/mlflow/runs/log-inputs",
                &json!({ "run_id": run_id, "datasets": datasets }),
            )
            .await
            .map_err(|e| self.error(e, || format!("run {run_id}")))?;
        Ok(())
    }

    async fn log_assessment(&self, assessment: &Assessment) -> Result<String, TrackingError> {
        assessment.validate()?;
        let trace = format!("tr-{}", assessment.otel_trace_id());
        let body = assessment.to_mlflow_json();
        // The trace arrives over OTLP, possibly a moment after the turn ended: wait for it briefly.
        let answer: Value = self
            .client
            .post_once_found(&format!("api/3.0/mlflow/traces/{trace}/assessments"), &body)
            .await
            .map_err(|error| {
                self.error(error, || {
                    format!("trace {trace} (for assessment `{}`)", assessment.name)
                })
            })?;
        Ok(answer["assessment"]["assessment_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    async fn trace_assessments(&self, trace_id: &str) -> Result<Vec<Assessment>, TrackingError> {
        let hex = trace_id.strip_prefix("tr-").unwrap_or(trace_id);
        let trace = format!("tr-{}", hex.to_ascii_lowercase());
        let answer: Value = self
            .client
            .get(
                &format!("api/3.0/mlflow/traces/{trace}"),
                &[("trace_id", trace.clone())],
            )
            .await
            .map_err(|e| self.error(e, || format!("trace {trace}")))?;
        let mut assessments: Vec<Assessment> = answer["trace"]["trace_info"]["assessments"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(Assessment::from_mlflow_json)
                    .collect()
            })
            .unwrap_or_default();
        assessments.sort_by_key(|a| a.create_time_ms);
        Ok(assessments)
    }
}
