//! MLflow's evaluation datasets (`/api/3.0/mlflow/datasets/…`, MLflow 3.x with a SQL backend):
//! what `mlflow.genai.datasets.create_dataset` / `get_dataset` and `merge_records` call, so a
//! dataset Sextant builds from traces is one the Python client reads, and the other way round.
//!
//! Records are `{"inputs": {…}, "expectations": {…}, "source": {"source_type": "TRACE",
//! "source_data": {"trace_id": "tr-…"}}}`; MLflow keys them by their inputs, so pushing the same
//! rows again updates instead of duplicating.

use serde_json::{Value, json};

use super::{MlflowClient, MlflowError};

/// How many records one upsert sends.
const RECORDS_PER_CALL: usize = 500;

/// An MLflow dataset, as the server describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct MlflowDataset {
    /// `d-…`.
    pub dataset_id: String,
    /// The name.
    pub name: String,
    /// Its digest, as MLflow computes it.
    pub digest: String,
}

/// The datasets API of one MLflow server.
#[derive(Debug)]
pub struct MlflowDatasets {
    client: MlflowClient,
}

fn dataset_of(value: &Value) -> Option<MlflowDataset> {
    Some(MlflowDataset {
        dataset_id: value["dataset_id"].as_str()?.to_owned(),
        name: value["name"].as_str().unwrap_or_default().to_owned(),
        digest: value["digest"].as_str().unwrap_or_default().to_owned(),
    })
}

impl MlflowDatasets {
    /// The datasets of the server `client` talks to.
    pub fn new(client: MlflowClient) -> Self {
        Self { client }
    }

    /// The newest dataset called `name` in experiment `experiment_id`, if any.
    pub async fn find(
        &self,
        name: &str,
        experiment_id: &str,
    ) -> Result<Option<MlflowDataset>, MlflowError> {
        let answer: Value = self
            .client
            .post(
                "api/3.0/mlflow/datasets/search",
                &json!({
                    "experiment_ids": [experiment_id],
                    "filter_string": format!("name = '{}'", name.replace('\'', "\\'")),
                    "max_results": 2,
                    "order_by": ["created_time DESC"],
                }),
            )
            .await?;
        Ok(answer["datasets"]
            .as_array()
            .and_then(|list| list.iter().find(|d| d["name"] == name))
            .and_then(dataset_of))
    }

    /// Creates dataset `name` in experiment `experiment_id` with `tags`.
    pub async fn create(
        &self,
        name: &str,
        experiment_id: &str,
        tags: &serde_json::Map<String, Value>,
    ) -> Result<MlflowDataset, MlflowError> {
        let answer: Value = self
            .client
            .post(
                "api/3.0/mlflow/datasets/create",
                &json!({
                    "name": name,
                    "experiment_ids": [experiment_id],
                    "tags": Value::Object(tags.clone()).to_string(),
                }),
            )
            .await?;
        dataset_of(&answer["dataset"]).ok_or_else(|| MlflowError::Decode {
            endpoint: "api/3.0/mlflow/datasets/create".into(),
            message: format!("the created dataset has no id: {answer}"),
        })
    }

    /// Adds or updates `records` (MLflow matches them by inputs): (inserted, updated).
    pub async fn upsert(
        &self,
        dataset_id: &str,
        records: &[Value],
    ) -> Result<(u64, u64), MlflowError> {
        let (mut inserted, mut updated) = (0, 0);
        for chunk in records.chunks(RECORDS_PER_CALL) {
            let answer: Value = self
                .client
                .post(
                    &format!("api/3.0/mlflow/datasets/{dataset_id}/records"),
                    &json!({ "records": Value::Array(chunk.to_vec()).to_string() }),
                )
                .await?;
            inserted += answer["inserted_count"].as_u64().unwrap_or(0);
            updated += answer["updated_count"].as_u64().unwrap_or(0);
        }
        Ok((inserted, updated))
    }

    /// Every record of dataset `dataset_id`, page by page.
    pub async fn records(&self, dataset_id: &str) -> Result<Vec<Value>, MlflowError> {
        let mut records = Vec::new();
        let mut page_token: Option<String> = None;
        loop {
            let mut query = vec![("max_results", "1000".to_owned())];
            if let Some(token) = &page_token {
                query.push(("page_token", token.clone()));
            }
            let answer: Value = self
                .client
                .get(
                    &format!("api/3.0/mlflow/datasets/{dataset_id}/records"),
                    &query,
                )
                .await?;
            // The records come as a JSON string (a list).
            let page: Vec<Value> = match &answer["records"] {
                Value::String(text) => serde_json::from_str(text).unwrap_or_default(),
                Value::Array(list) => list.clone(),
                _ => Vec::new(),
            };
            records.extend(page);
            match answer["next_page_token"].as_str().filter(|t| !t.is_empty()) {
                Some(token) => page_token = Some(token.to_owned()),
                None => break,
            }
        }
        Ok(records)
    }
}
