//! The model registry's contract on both backends — the embedded registry always, a real MLflow
//! server in the `#[ignore]`d test `cargo xtask test` runs — and the Python client reading the
//! versions, aliases and stages Sextant wrote.

use std::collections::BTreeMap;
use std::time::Duration;

use sextant_tracker::local::LocalModelRegistry;
use sextant_tracker::mlflow::{MlflowClient, MlflowModelRegistry};
use sextant_tracker::model_registry::{
    ModelRegistry, ModelRegistryError, ModelUri, NewModelVersion, Stage,
};

use sextant_testkit::{mlflow_url, python};

mod support;
use support::unique;

fn version(source: &str, note: &str) -> NewModelVersion {
    NewModelVersion {
        source: source.into(),
        run_id: None,
        description: Some(note.into()),
        tags: BTreeMap::from([("note".into(), note.into())]),
    }
}

async fn contract(registry: &dyn ModelRegistry) -> String {
    let name = unique("rag-agent");
    for i in 1..=3 {
        let created = registry
            .create_version(
                &name,
                version(&format!("s3://models/rag-agent/r{i}"), &format!("v{i}")),
            )
            .await
            .unwrap();
        assert_eq!(created.version, i);
        assert_eq!(created.stage, Stage::None);
    }
    let got = registry.get_version(&name, 2).await.unwrap();
    assert_eq!(got.source, "s3://models/rag-agent/r2");
    assert_eq!(got.description.as_deref(), Some("v2"));
    assert_eq!(got.tags.get("note").map(String::as_str), Some("v2"));

    registry.set_alias(&name, "production", 1).await.unwrap();
    registry.set_alias(&name, "challenger", 3).await.unwrap();
    assert_eq!(
        registry.resolve_alias(&name, "production").await.unwrap(),
        1
    );
    registry.set_alias(&name, "production", 2).await.unwrap();
    let uri: ModelUri = format!("models:/{name}@production").parse().unwrap();
    let served = registry.resolve(&uri).await.unwrap();
    assert_eq!(
        (served.version, served.aliases.clone()),
        (2, vec!["production".to_owned()])
    );

    // Stages: promoting with archive_existing archives the previous Production version.
    registry
        .transition_stage(&name, 1, Stage::Production, false)
        .await
        .unwrap();
    let moved = registry
        .transition_stage(&name, 2, Stage::Production, true)
        .await
        .unwrap();
    assert_eq!(moved.stage, Stage::Production);
    assert_eq!(
        registry.get_version(&name, 1).await.unwrap().stage,
        Stage::Archived
    );
    registry
        .transition_stage(&name, 3, Stage::Staging, false)
        .await
        .unwrap();
    let stage_uri: ModelUri = format!("models:/{name}/Production").parse().unwrap();
    assert_eq!(registry.resolve(&stage_uri).await.unwrap().version, 2);
    let latest: ModelUri = format!("models:/{name}/latest").parse().unwrap();
    assert_eq!(registry.resolve(&latest).await.unwrap().version, 3);
    let exact: ModelUri = format!("models:/{name}/1").parse().unwrap();
    assert_eq!(
        registry.resolve(&exact).await.unwrap().stage,
        Stage::Archived
    );

    let model = registry.get_model(&name).await.unwrap();
    assert_eq!(model.latest_version, Some(3));
    assert_eq!(model.aliases.get("challenger"), Some(&3));
    assert!(
        registry
            .list_models()
            .await
            .unwrap()
            .iter()
            .any(|m| m.name == name)
    );
    let versions = registry.list_versions(&name).await.unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|v| (v.version, v.stage))
            .collect::<Vec<_>>(),
        [
            (1, Stage::Archived),
            (2, Stage::Production),
            (3, Stage::Staging)
        ]
    );

    // Errors name what is missing.
    let err = registry.get_version(&name, 9).await.unwrap_err();
    assert!(matches!(err, ModelRegistryError::NotFound { .. }), "{err}");
    let err = registry
        .set_alias(&name, "production", 9)
        .await
        .unwrap_err();
    assert!(matches!(err, ModelRegistryError::NotFound { .. }), "{err}");
    let err = registry.resolve_alias(&name, "nope").await.unwrap_err();
    assert!(
        matches!(err, ModelRegistryError::NotFound { .. }) && err.to_string().contains("nope"),
        "{err}"
    );
    let err = registry.get_model(&unique("absent")).await.unwrap_err();
    assert!(matches!(err, ModelRegistryError::NotFound { .. }), "{err}");
    let err = registry.set_alias(&name, "latest", 1).await.unwrap_err();
    assert!(matches!(err, ModelRegistryError::Invalid { .. }), "{err}");
    let nothing_staged: ModelUri = format!("models:/{name}/None").parse().unwrap();
    assert!(registry.resolve(&nothing_staged).await.is_err());

    registry.delete_alias(&name, "challenger").await.unwrap();
    assert!(registry.resolve_alias(&name, "challenger").await.is_err());
    name
}

#[tokio::test]
async fn the_embedded_registry_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let registry = LocalModelRegistry::open(dir.path().join("registry.db")).unwrap();
    contract(&registry).await;
}

const PY_READ: &str = r#"
import json, sys
from mlflow import MlflowClient
c = MlflowClient()
name = sys.argv[1]
prod = c.get_model_version_by_alias(name, "production")
versions = sorted(c.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
print(json.dumps({"production": prod.version, "source": prod.source,
                  "stages": [v.current_stage for v in versions],
                  "models": [m.name for m in c.search_registered_models()]}))
"#;

#[tokio::test]
#[ignore = "needs a real MLflow server and its Python client: cargo xtask test"]
async fn the_mlflow_registry_keeps_the_contract_and_python_reads_it() {
    let url = mlflow_url();
    let registry =
        MlflowModelRegistry::new(MlflowClient::new(&url, None, Duration::from_secs(30)).unwrap());
    let name = contract(&registry).await;

    // Prompts share MLflow's registry but are not models.
    let listed = registry.list_models().await.unwrap();
    assert!(
        listed
            .iter()
            .all(|m| !m.tags.contains_key("mlflow.prompt.is_prompt"))
    );

    let seen = python(&url, PY_READ, &[&name]);
    assert_eq!(seen["production"], "2");
    assert_eq!(seen["source"], "s3://models/rag-agent/r2");
    assert_eq!(
        seen["stages"],
        serde_json::json!(["Archived", "Production", "Staging"])
    );
    assert!(
        seen["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == name.as_str())
    );
}
