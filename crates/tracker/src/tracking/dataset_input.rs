//! Dataset inputs: which dataset a run used, recorded on the run in MLflow's model (name, digest,
//! source), so `mlflow.get_run(…).inputs.dataset_inputs` and `sextant runs show` name exactly the
//! data an evaluation read.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The input tag MLflow uses for what a dataset was for (`training`, `evaluation`).
pub const DATASET_CONTEXT_TAG: &str = "mlflow.data.context";

/// A dataset a run used; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInput {
    /// The dataset's name.
    pub name: String,
    /// A digest of its contents: a changed row changes it.
    pub digest: String,
    /// Where it lives: `local`, `http`, `s3` …
    pub source_type: String,
    /// The source, as MLflow keeps it: JSON such as `{"uri": "/data/qa.jsonl"}`.
    pub source: String,
    /// Its schema (JSON), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Its profile (JSON such as `{"num_rows": 6}`), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// What the run used it for ([`DATASET_CONTEXT_TAG`]): `evaluation`, `training` …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

impl DatasetInput {
    /// A local file's dataset: source type `local`, source `{"uri": PATH}`.
    pub fn local_file(name: &str, digest: &str, path: &std::path::Path) -> Self {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
        Self {
            name: name.to_owned(),
            digest: digest.to_owned(),
            source_type: "local".into(),
            source: json!({ "uri": path.display().to_string() }).to_string(),
            schema: None,
            profile: None,
            context: None,
        }
    }

    /// The URI in the source, when it has one.
    pub fn uri(&self) -> Option<String> {
        serde_json::from_str::<Value>(&self.source)
            .ok()?
            .get("uri")?
            .as_str()
            .map(str::to_owned)
    }

    /// One entry of MLflow's `log-inputs` `datasets` (and of a run's `inputs.dataset_inputs`).
    pub fn to_mlflow_json(&self) -> Value {
        let mut dataset = json!({
            "name": self.name,
            "digest": self.digest,
            "source_type": self.source_type,
            "source": self.source,
        });
        if let Some(schema) = &self.schema {
            dataset["schema"] = json!(schema);
        }
        if let Some(profile) = &self.profile {
            dataset["profile"] = json!(profile);
        }
        let tags: Vec<Value> = self
            .context
            .iter()
            .map(|c| json!({ "key": DATASET_CONTEXT_TAG, "value": c }))
            .collect();
        json!({ "tags": tags, "dataset": dataset })
    }

    /// Reads one entry of a run's `inputs.dataset_inputs` as MLflow returns it.
    pub fn from_mlflow_json(value: &Value) -> Option<Self> {
        let dataset = value.get("dataset")?;
        let text = |key: &str| dataset[key].as_str().map(str::to_owned);
        Some(Self {
            name: text("name")?,
            digest: text("digest")?,
            source_type: text("source_type").unwrap_or_default(),
            source: text("source").unwrap_or_default(),
            schema: text("schema").filter(|s| !s.is_empty()),
            profile: text("profile").filter(|s| !s.is_empty()),
            context: value["tags"].as_array().and_then(|tags| {
                tags.iter()
                    .find(|t| t["key"] == DATASET_CONTEXT_TAG)
                    .and_then(|t| t["value"].as_str())
                    .map(str::to_owned)
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mlflow_form_round_trips_with_its_context_tag() {
        let input = DatasetInput {
            profile: Some(r#"{"num_rows": 6}"#.into()),
            context: Some("evaluation".into()),
            ..DatasetInput::local_file("qa", "936fdd8dd61a0614", "/data/qa.jsonl".as_ref())
        };
        let wire = input.to_mlflow_json();
        assert_eq!(wire["tags"][0]["key"], DATASET_CONTEXT_TAG);
        assert_eq!(wire["dataset"]["source_type"], "local");
        assert!(wire["dataset"].get("schema").is_none());
        assert_eq!(DatasetInput::from_mlflow_json(&wire), Some(input.clone()));
        assert_eq!(input.uri().as_deref(), Some("/data/qa.jsonl"));
    }

    #[test]
    fn a_relative_path_is_recorded_absolute() {
        let input = DatasetInput::local_file("qa", "d", "qa.jsonl".as_ref());
        let uri = input.uri().unwrap();
        assert!(std::path::Path::new(&uri).is_absolute(), "{uri}");
        assert!(uri.ends_with("qa.jsonl"));
    }
}
