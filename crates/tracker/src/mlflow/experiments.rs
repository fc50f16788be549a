//! Experiments: the name → id lookup that the `x-mlflow-experiment-id` header of trace exports
//! needs, creating the experiment the way `mlflow.set_experiment` does when it is missing.

use serde::Deserialize;
use serde_json::json;

use super::{MlflowClient, MlflowError};

#[derive(Deserialize)]
struct ExperimentAnswer {
    experiment: Experiment,
}

#[derive(Deserialize)]
struct Experiment {
    experiment_id: String,
    #[serde(default)]
    lifecycle_stage: String,
}

#[derive(Deserialize)]
struct CreatedExperiment {
    experiment_id: String,
}

/// The id of experiment `name`, created if it does not exist. A deleted experiment is an error
/// (restore it in MLflow or pick another name).
pub async fn experiment_id(client: &MlflowClient, name: &str) -> Result<String, MlflowError> {
    match get_by_name(client, name).await {
        Ok(id) => return Ok(id),
        Err(error) if error.is_not_found() => {}
        Err(error) => return Err(error),
    }
    let created: Result<CreatedExperiment, _> = client
        .post(
            "api/2.0/mlflow/experiments/create",
            &json!({ "name": name }),
        )
        .await;
    match created {
        Ok(created) => Ok(created.experiment_id),
        // Another process created it in between.
        Err(error) if error.error_code() == Some("RESOURCE_ALREADY_EXISTS") => {
            get_by_name(client, name).await
        }
        Err(error) => Err(error),
    }
}

async fn get_by_name(client: &MlflowClient, name: &str) -> Result<String, MlflowError> {
    let answer: ExperimentAnswer = client
        .get(
            "api/2.0/mlflow/experiments/get-by-name",
            &[("experiment_name", name.to_owned())],
        )
        .await?;
    if answer.experiment.lifecycle_stage == "deleted" {
        return Err(MlflowError::Api {
            endpoint: "api/2.0/mlflow/experiments/get-by-name".into(),
            status: 400,
            error_code: "INVALID_STATE".into(),
            message: format!(
                "experiment `{name}` is deleted; restore it in MLflow or choose another experiment"
            ),
        });
    }
    Ok(answer.experiment.experiment_id)
}
