//! The tracking store's contract on both backends — the embedded store always, a real MLflow server
//! in the `#[ignore]`d test `cargo xtask test` runs — and the Python client reading what Sextant
//! logged there: the run, its params and tags, a metric's history and an artifact.

use std::collections::BTreeMap;
use std::time::Duration;

use sextant_tracker::local::LocalTrackingStore;
use sextant_tracker::mlflow::{MlflowClient, MlflowTrackingStore};
use sextant_tracker::tracking::{
    LogBatch, Metric, NewRun, RunStatus, TrackingError, TrackingStore,
};

use sextant_testkit::{mlflow_url, python};

mod support;
use support::unique;

fn metric(key: &str, value: f64, step: i64) -> Metric {
    Metric {
        key: key.into(),
        value,
        timestamp_ms: 1_795_000_000_000 + step,
        step,
    }
}

/// Every operation, with the errors a user meets; returns (experiment id, a finished run's id).
async fn contract(store: &dyn TrackingStore) -> (String, String) {
    let name = unique("contract");
    assert!(store.experiment_by_name(&name).await.unwrap().is_none());
    let experiment = store.get_or_create_experiment(&name).await.unwrap();
    assert_eq!(
        store.get_or_create_experiment(&name).await.unwrap(),
        experiment
    );
    let err = store
        .create_experiment(&name, &BTreeMap::new())
        .await
        .unwrap_err();
    assert!(matches!(err, TrackingError::Invalid { .. }), "{err}");
    assert!(
        store
            .list_experiments()
            .await
            .unwrap()
            .iter()
            .any(|e| e.name == name)
    );

    let parent = store
        .create_run(NewRun {
            experiment_id: experiment.clone(),
            run_name: Some("sweep".into()),
            ..NewRun::default()
        })
        .await
        .unwrap();
    assert_eq!(parent.status, RunStatus::Running);
    assert_eq!(parent.run_name, "sweep");
    let mut runs = Vec::new();
    for (i, (model, latency)) in [("smollm2", 500.0), ("smollm2", 1500.0), ("llama3", 900.0)]
        .into_iter()
        .enumerate()
    {
        let run = store
            .create_run(NewRun {
                experiment_id: experiment.clone(),
                run_name: Some(format!("child-{i}")),
                tags: BTreeMap::from([("team".into(), "search".into())]),
                parent_run_id: Some(parent.run_id.clone()),
                start_time_ms: Some(1_795_000_000_000 + i as i64),
            })
            .await
            .unwrap();
        let batch = LogBatch {
            metrics: vec![
                metric("latency_ms", latency + 100.0, 0),
                metric("latency_ms", latency, 1),
                metric("tokens", 40.0 + i as f64, 0),
            ],
            params: vec![("model".into(), model.into()), ("top_k".into(), "3".into())],
            tags: vec![("stage".into(), "sweep".into())],
        };
        store.log_batch(&run.run_id, &batch).await.unwrap();
        store
            .update_run(&run.run_id, RunStatus::Finished, Some(1_795_000_001_000))
            .await
            .unwrap();
        runs.push(run.run_id);
    }

    let run = store.get_run(&runs[0]).await.unwrap();
    assert_eq!(run.info.status, RunStatus::Finished);
    assert_eq!(run.info.end_time_ms, Some(1_795_000_001_000));
    assert_eq!(run.params.get("model").map(String::as_str), Some("smollm2"));
    assert_eq!(
        run.metrics["latency_ms"].value, 500.0,
        "the latest step's value"
    );
    assert_eq!(run.parent_run_id(), Some(parent.run_id.as_str()));
    assert_eq!(run.tags.get("stage").map(String::as_str), Some("sweep"));
    let history = store.metric_history(&runs[0], "latency_ms").await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|m| (m.step, m.value))
            .collect::<Vec<_>>(),
        [(0, 600.0), (1, 500.0)]
    );

    // A param cannot change; the same value again is fine.
    let same = LogBatch {
        params: vec![("model".into(), "smollm2".into())],
        ..LogBatch::default()
    };
    store.log_batch(&runs[0], &same).await.unwrap();
    let changed = LogBatch {
        params: vec![("model".into(), "other".into())],
        ..LogBatch::default()
    };
    let err = store.log_batch(&runs[0], &changed).await.unwrap_err();
    assert!(matches!(err, TrackingError::Invalid { .. }), "{err}");

    // Search: the MLflow filter subset and ordering.
    let ids = |found: Vec<sextant_tracker::tracking::Run>| -> Vec<String> {
        found.into_iter().map(|r| r.info.run_id).collect()
    };
    let found = store
        .search_runs(
            std::slice::from_ref(&experiment),
            "params.model = 'smollm2' and metrics.latency_ms < 1000",
            &[],
            100,
        )
        .await
        .unwrap();
    assert_eq!(ids(found), [runs[0].clone()]);
    let found = store
        .search_runs(
            std::slice::from_ref(&experiment),
            "tags.team = 'search'",
            &["metrics.latency_ms DESC".into()],
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        ids(found),
        [runs[1].clone(), runs[2].clone(), runs[0].clone()]
    );
    let found = store
        .search_runs(std::slice::from_ref(&experiment), "", &[], 2)
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    let err = store
        .search_runs(
            std::slice::from_ref(&experiment),
            "params.model = smollm2",
            &[],
            10,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, TrackingError::Invalid { .. }), "{err}");

    // Artifacts.
    let interaction = br#"{"input": "What is Rust?", "output": "A language."}"#.to_vec();
    store
        .log_artifact(&runs[0], "interactions/turn-1.json", interaction.clone())
        .await
        .unwrap();
    let root = store.list_artifacts(&runs[0], "").await.unwrap();
    assert!(
        root.iter().any(|f| f.path == "interactions" && f.is_dir),
        "{root:?}"
    );
    let files = store
        .list_artifacts(&runs[0], "interactions")
        .await
        .unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].path, "interactions/turn-1.json");
    assert_eq!(
        store
            .read_artifact(&runs[0], "interactions/turn-1.json")
            .await
            .unwrap(),
        interaction
    );
    let err = store
        .log_artifact(&runs[0], "../escape", vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, TrackingError::Invalid { .. }), "{err}");

    // Missing things are named.
    let err = store
        .get_run("0123456789abcdef0123456789abcdef")
        .await
        .unwrap_err();
    assert!(matches!(err, TrackingError::NotFound { .. }), "{err}");
    store
        .update_run(&parent.run_id, RunStatus::Finished, None)
        .await
        .unwrap();
    (experiment, runs[0].clone())
}

#[tokio::test]
async fn the_embedded_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalTrackingStore::open(dir.path()).unwrap();
    assert_eq!(
        store
            .experiment_by_name("Default")
            .await
            .unwrap()
            .unwrap()
            .experiment_id,
        "0"
    );
    contract(&store).await;
    // Reopening finds everything.
    let reopened = LocalTrackingStore::open(dir.path()).unwrap();
    assert!(reopened.list_experiments().await.unwrap().len() >= 2);
}

const PY_READ: &str = r#"
import json, sys, mlflow
from mlflow import MlflowClient
run_id = sys.argv[1]
client = MlflowClient()
run = client.get_run(run_id)
history = client.get_metric_history(run_id, "latency_ms")
path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="interactions/turn-1.json")
print(json.dumps({
    "status": run.info.status, "params": run.data.params, "metrics": run.data.metrics,
    "parent": run.data.tags.get("mlflow.parentRunId"),
    "history": [[m.step, m.value] for m in sorted(history, key=lambda m: m.step)],
    "artifact": json.load(open(path)),
}))
"#;

#[tokio::test]
#[ignore = "needs a real MLflow server and its Python client: cargo xtask test"]
async fn the_mlflow_store_keeps_the_contract_and_python_reads_it() {
    let url = mlflow_url();
    let store =
        MlflowTrackingStore::new(MlflowClient::new(&url, None, Duration::from_secs(30)).unwrap());
    let (_, run_id) = contract(&store).await;

    let seen = python(&url, PY_READ, &[&run_id]);
    assert_eq!(seen["status"], "FINISHED");
    assert_eq!(seen["params"]["model"], "smollm2");
    assert_eq!(seen["metrics"]["latency_ms"], 500.0);
    assert!(seen["parent"].is_string());
    assert_eq!(seen["history"], serde_json::json!([[0, 600.0], [1, 500.0]]));
    assert_eq!(seen["artifact"]["output"], "A language.");
}

#[tokio::test]
async fn an_unreachable_mlflow_is_an_outage() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let store = MlflowTrackingStore::new(
        MlflowClient::new(
            &format!("http://127.0.0.1:{port}"),
            None,
            Duration::from_secs(5),
        )
        .unwrap(),
    );
    let err = store
        .get_run("0123456789abcdef0123456789abcdef")
        .await
        .unwrap_err();
    assert!(err.is_outage(), "{err}");
}
