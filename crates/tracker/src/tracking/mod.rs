//! Experiment tracking: experiments, runs (params, metrics with steps, tags, artifacts, nesting)
//! and run search, in MLflow's model.
//!
//! [`TrackingStore`] is the API; [`crate::local::LocalTrackingStore`] (SQLite and files in the data
//! dir) and [`crate::mlflow::MlflowTrackingStore`] (an MLflow server's REST API, readable by the
//! Python client) implement it. Run search takes MLflow's filter syntax
//! (`params.model = 'x' and metrics.latency_ms < 900`), parsed by [`RunFilter`]. A [`Tracker`]
//! logs to runs in the background, spooling to disk so an outage or a crash loses nothing.

mod assessment;
mod dataset_input;
mod feedback;
mod filter;
mod run;
mod spool;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use assessment::{
    Assessment, AssessmentSource, AssessmentSourceType, FeedbackError, JUDGE_INPUT_TOKENS_KEY,
    JUDGE_OUTPUT_TOKENS_KEY, SCORER_TRACE_ID_KEY, SOURCE_RUN_ID_KEY, parse_rfc3339_ms, rfc3339_ms,
};
pub use dataset_input::{DATASET_CONTEXT_TAG, DatasetInput};
pub use feedback::{FEEDBACK_END_USER_KEY, Feedback};
pub(crate) use filter::tokenize;
pub use filter::{OrderBy, RunFilter};
pub use run::{ActiveRun, ReplayReport, RunReport, RunSpec, Tracker, TrackerOptions};

/// The tag MLflow uses to nest a run under another.
pub const PARENT_RUN_ID_TAG: &str = "mlflow.parentRunId";
/// The tag holding a run's name.
pub const RUN_NAME_TAG: &str = "mlflow.runName";

/// An experiment: a named group of runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    /// The id (`0` is the default experiment).
    pub experiment_id: String,
    /// The unique name.
    pub name: String,
    /// Where its runs' artifacts go.
    pub artifact_location: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
    /// Experiment tags.
    pub tags: BTreeMap<String, String>,
}

/// A run's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    /// Still logging.
    Running,
    /// Waiting to start.
    Scheduled,
    /// Ended normally.
    Finished,
    /// Ended with an error.
    Failed,
    /// Stopped from outside.
    Killed,
}

impl RunStatus {
    /// MLflow's name: `RUNNING`, `FINISHED` …
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Scheduled => "SCHEDULED",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        }
    }

    /// Parses MLflow's name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text.to_ascii_uppercase().as_str() {
            "RUNNING" => Self::Running,
            "SCHEDULED" => Self::Scheduled,
            "FINISHED" => Self::Finished,
            "FAILED" => Self::Failed,
            "KILLED" => Self::Killed,
            _ => return None,
        })
    }
}

/// One metric value at a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The metric's name.
    pub key: String,
    /// The value.
    pub value: f64,
    /// When it was measured, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The step (0 when there is no sequence).
    pub step: i64,
}

/// What a run is and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The id (32 hex digits).
    pub run_id: String,
    /// Its experiment.
    pub experiment_id: String,
    /// Its display name.
    pub run_name: String,
    /// Its state.
    pub status: RunStatus,
    /// Start, milliseconds since the Unix epoch.
    pub start_time_ms: i64,
    /// End, if it ended.
    pub end_time_ms: Option<i64>,
    /// Where its artifacts live.
    pub artifact_uri: String,
}

/// A run with everything logged to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// What it is.
    pub info: RunInfo,
    /// Parameters (immutable once logged).
    pub params: BTreeMap<String, String>,
    /// The latest value of each metric.
    pub metrics: BTreeMap<String, Metric>,
    /// Tags (`mlflow.parentRunId` for nested runs).
    pub tags: BTreeMap<String, String>,
    /// The datasets it used.
    #[serde(default)]
    pub inputs: Vec<DatasetInput>,
}

impl Run {
    /// The run this one is nested under, if any.
    pub fn parent_run_id(&self) -> Option<&str> {
        self.tags.get(PARENT_RUN_ID_TAG).map(String::as_str)
    }
}

/// A run to create.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewRun {
    /// The experiment.
    pub experiment_id: String,
    /// A display name (the backend makes one up when empty).
    pub run_name: Option<String>,
    /// Start time, milliseconds since the Unix epoch (now when unset).
    pub start_time_ms: Option<i64>,
    /// Tags to start with.
    pub tags: BTreeMap<String, String>,
    /// Nest it under this run.
    pub parent_run_id: Option<String>,
}

/// One batch of writes to a run, within MLflow's log-batch limits ([`LogBatch::MAX_METRICS`] …).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogBatch {
    /// Metric values.
    pub metrics: Vec<Metric>,
    /// Parameters.
    pub params: Vec<(String, String)>,
    /// Tags.
    pub tags: Vec<(String, String)>,
}

impl LogBatch {
    /// Most metrics in one call.
    pub const MAX_METRICS: usize = 1000;
    /// Most params in one call.
    pub const MAX_PARAMS: usize = 100;
    /// Most tags in one call.
    pub const MAX_TAGS: usize = 100;

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty() && self.params.is_empty() && self.tags.is_empty()
    }

    /// This batch cut into batches that each respect the limits, in order.
    pub fn split(self) -> Vec<LogBatch> {
        let mut batches = Vec::new();
        let (mut metrics, mut params, mut tags) = (
            self.metrics.into_iter().peekable(),
            self.params.into_iter().peekable(),
            self.tags.into_iter().peekable(),
        );
        while metrics.peek().is_some() || params.peek().is_some() || tags.peek().is_some() {
            batches.push(LogBatch {
                metrics: metrics.by_ref().take(Self::MAX_METRICS).collect(),
                params: params.by_ref().take(Self::MAX_PARAMS).collect(),
                tags: tags.by_ref().take(Self::MAX_TAGS).collect(),
            });
        }
        batches
    }
}

/// A file or directory among a run's artifacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactFile {
    /// Path relative to the run's artifact root.
    pub path: String,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Size in bytes (files).
    pub size: Option<u64>,
}

/// Why a tracking operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TrackingError {
    /// The experiment, run or artifact does not exist.
    #[error("{what} does not exist")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// An argument is not acceptable (bad filter, changed param, name taken …).
    #[error("{what}: {message}")]
    Invalid {
        /// What was wrong.
        what: String,
        /// Why.
        message: String,
    },
    /// The backend cannot be reached or failed on its side (an outage: retry later).
    #[error("the {backend} tracking store at {location} is unavailable: {message}")]
    Unavailable {
        /// `local` or `mlflow`.
        backend: &'static str,
        /// The file or URL.
        location: String,
        /// What happened.
        message: String,
    },
    /// Another failure.
    #[error("the {backend} tracking store failed: {message}")]
    Backend {
        /// `local` or `mlflow`.
        backend: &'static str,
        /// What happened.
        message: String,
    },
}

impl TrackingError {
    /// Whether retrying later may succeed (the backend was unreachable or failing).
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

/// Experiments and runs.
#[async_trait]
pub trait TrackingStore: Send + Sync {
    /// `local` or `mlflow`.
    fn backend(&self) -> &'static str;

    /// Where it keeps its data: the database file or the server's URL.
    fn location(&self) -> String;

    /// The experiment called `name`, if it exists (and is not deleted).
    async fn experiment_by_name(&self, name: &str) -> Result<Option<Experiment>, TrackingError>;

    /// Creates experiment `name` with `tags`; its id.
    async fn create_experiment(
        &self,
        name: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<String, TrackingError>;

    /// The active experiments, by name.
    async fn list_experiments(&self) -> Result<Vec<Experiment>, TrackingError>;

    /// Starts a run.
    async fn create_run(&self, run: NewRun) -> Result<RunInfo, TrackingError>;

    /// Sets a run's status and end time.
    async fn update_run(
        &self,
        run_id: &str,
        status: RunStatus,
        end_time_ms: Option<i64>,
    ) -> Result<(), TrackingError>;

    /// Writes one batch (at most the [`LogBatch`] limits). A param logged again with another value
    /// is an error, as in MLflow.
    async fn log_batch(&self, run_id: &str, batch: &LogBatch) -> Result<(), TrackingError>;

    /// A run with its params, latest metrics and tags.
    async fn get_run(&self, run_id: &str) -> Result<Run, TrackingError>;

    /// Every value of one metric, by step then time.
    async fn metric_history(&self, run_id: &str, key: &str) -> Result<Vec<Metric>, TrackingError>;

    /// The runs of `experiment_ids` matching `filter` (MLflow syntax; empty = all), ordered by
    /// `order_by` (default: newest first), at most `max_results`.
    async fn search_runs(
        &self,
        experiment_ids: &[String],
        filter: &str,
        order_by: &[String],
        max_results: usize,
    ) -> Result<Vec<Run>, TrackingError>;

    /// Stores `contents` as the artifact at `path` (relative, `/`-separated) of the run.
    async fn log_artifact(
        &self,
        run_id: &str,
        path: &str,
        contents: Vec<u8>,
    ) -> Result<(), TrackingError>;

    /// The artifacts directly under `path` ("" = the root) of the run.
    async fn list_artifacts(
        &self,
        run_id: &str,
        path: &str,
    ) -> Result<Vec<ArtifactFile>, TrackingError>;

    /// One artifact's contents.
    async fn read_artifact(&self, run_id: &str, path: &str) -> Result<Vec<u8>, TrackingError>;

    /// Records that the run used `datasets` (a dataset logged again with the same name and digest
    /// is kept once, as in MLflow).
    async fn log_inputs(
        &self,
        run_id: &str,
        datasets: &[DatasetInput],
    ) -> Result<(), TrackingError>;

    /// Attaches `assessment` to its trace; the id the backend gave it.
    async fn log_assessment(&self, assessment: &Assessment) -> Result<String, TrackingError>;

    /// The feedback assessments of a trace (its OpenTelemetry id, or MLflow's `tr-…`), oldest
    /// first.
    async fn trace_assessments(&self, trace_id: &str) -> Result<Vec<Assessment>, TrackingError>;

    /// Experiment `name`, created if missing.
    async fn get_or_create_experiment(&self, name: &str) -> Result<String, TrackingError> {
        if let Some(experiment) = self.experiment_by_name(name).await? {
            return Ok(experiment.experiment_id);
        }
        match self.create_experiment(name, &BTreeMap::new()).await {
            Ok(id) => Ok(id),
            // Created by someone else in between.
            Err(TrackingError::Invalid { .. }) => self
                .experiment_by_name(name)
                .await?
                .map(|e| e.experiment_id)
                .ok_or_else(|| TrackingError::NotFound {
                    what: format!("experiment `{name}`"),
                }),
            Err(error) => Err(error),
        }
    }
}

/// Checks an artifact path: relative, `/`-separated, no `..`, no empty parts.
pub fn validate_artifact_path(path: &str) -> Result<(), TrackingError> {
    let invalid = |message: &str| TrackingError::Invalid {
        what: format!("artifact path `{path}`"),
        message: message.into(),
    };
    if path.is_empty() {
        return Err(invalid("is empty"));
    }
    if path.starts_with('/') || path.contains('\\') {
        return Err(invalid("must be relative and use `/`"));
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(invalid("may not contain empty, `.` or `..` parts"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_to_mlflows_limits_in_order() {
        let batch = LogBatch {
            metrics: (0..2500)
                .map(|i| Metric {
                    key: "m".into(),
                    value: i as f64,
                    timestamp_ms: 0,
                    step: i,
                })
                .collect(),
            params: (0..150).map(|i| (format!("p{i}"), "v".into())).collect(),
            tags: (0..20).map(|i| (format!("t{i}"), "v".into())).collect(),
        };
        let parts = batch.clone().split();
        assert_eq!(parts.len(), 3);
        assert!(
            parts
                .iter()
                .all(|b| b.metrics.len() <= LogBatch::MAX_METRICS
                    && b.params.len() <= LogBatch::MAX_PARAMS
                    && b.tags.len() <= LogBatch::MAX_TAGS)
        );
        let metrics: Vec<Metric> = parts.iter().flat_map(|b| b.metrics.clone()).collect();
        assert_eq!(metrics, batch.metrics);
        assert_eq!(parts.iter().map(|b| b.params.len()).sum::<usize>(), 150);
        assert!(LogBatch::default().split().is_empty());
    }

    #[test]
    fn artifact_paths_stay_inside_the_run() {
        assert!(validate_artifact_path("interactions/turn.json").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a//b", "a/./b", "a\\b"] {
            assert!(validate_artifact_path(bad).is_err(), "{bad}");
        }
    }
}
