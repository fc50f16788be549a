//! Tracking and the model registry as a user meets them: `sextant run --experiment` logs a run
//! (params, metrics, the interaction artifact, the trace id), `sextant runs …` and
//! `sextant experiments list` read it back, and an agent registered with `sextant models register`
//! runs from `models:/qa-agent@production` with its version on the trace — on the embedded stores
//! always, and on a real MLflow server in the `#[ignore]`d test `cargo xtask test` runs, where the
//! Python client must see the run, its artifact and the linked trace.

use std::path::Path;

use serde_json::json;

use sextant_testkit::{mlflow_url, python};

mod support;
use support::{json_of, ok, sextant};

/// Everything a user does with runs and registered agents; returns (run id, trace id) of the run
/// served from the registry.
fn track_and_serve(
    data: &Path,
    envs: &[(&str, &str)],
    experiment: &str,
) -> (String, String, String) {
    // A name of its own, so a re-run against the same server starts at version 1.
    let model = format!("qa-agent-{}", std::process::id());
    ok(sextant(
        data,
        envs,
        &["prompts", "push", "configs/prompts/"],
    ));
    let first = json_of(sextant(
        data,
        envs,
        &[
            "run",
            "--json",
            "--experiment",
            experiment,
            "What is 2 + 2? Use the calculator.",
        ],
    ));
    let first_run = first["run_id"]
        .as_str()
        .expect("the run was logged")
        .to_owned();

    let runs = json_of(sextant(
        data,
        envs,
        &["runs", "list", "--experiment", experiment, "--json"],
    ));
    let run = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["info"]["run_id"] == first_run.as_str())
        .unwrap_or_else(|| panic!("the run is listed: {runs}"));
    assert_eq!(run["params"]["agent"], "assistant");
    assert_eq!(run["params"]["provider"], first["provider"]);
    assert_eq!(
        run["params"]["tools"],
        "calculator,current_time,get_weather"
    );
    assert_eq!(run["info"]["status"], "FINISHED");
    assert_eq!(run["tags"]["sextant.trace_id"], first["trace_id"]);
    let tokens = first["usage"]["input_tokens"].as_u64().unwrap() as f64;
    assert_eq!(run["metrics"]["input_tokens"]["value"], tokens);
    assert!(run["metrics"]["latency_ms"]["value"].as_f64().unwrap() > 0.0);
    assert_eq!(
        run["metrics"]["tool_calls"]["value"].as_f64().unwrap() as usize,
        first["tool_calls"].as_array().unwrap().len()
    );
    let shown = ok(sextant(
        data,
        envs,
        &["runs", "show", &first_run, "--metric", "latency_ms"],
    ));
    assert!(
        shown.contains("interaction.json") && shown.contains("latency_ms ("),
        "{shown}"
    );

    let filtered = json_of(sextant(
        data,
        envs,
        &[
            "runs",
            "list",
            "--experiment",
            experiment,
            "--filter",
            "params.agent = 'nobody'",
            "--json",
        ],
    ));
    assert_eq!(filtered, json!([]));
    let bad = sextant(
        data,
        envs,
        &[
            "runs",
            "list",
            "--experiment",
            experiment,
            "--filter",
            "params.agent = nobody",
        ],
    );
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("quoted"), "{err}");
    let experiments = ok(sextant(data, envs, &["experiments", "list"]));
    assert!(experiments.contains(experiment), "{experiments}");

    // Register the qa agent twice, promote, run from the alias.
    let registered = ok(sextant(
        data,
        envs,
        &[
            "models",
            "register",
            &model,
            "--from",
            "configs/agents/qa.toml",
            "-m",
            "first",
        ],
    ));
    assert!(
        registered.contains(&format!("models:/{model}/1")),
        "{registered}"
    );
    ok(sextant(
        data,
        envs,
        &[
            "models",
            "register",
            &model,
            "--from",
            "configs/agents/qa.toml",
        ],
    ));
    ok(sextant(
        data,
        envs,
        &[
            "models",
            "promote",
            &model,
            "1",
            "--alias",
            "production",
            "--stage",
            "Production",
        ],
    ));
    ok(sextant(
        data,
        envs,
        &[
            "models",
            "promote",
            &model,
            "2",
            "--stage",
            "Production",
            "--archive-existing",
        ],
    ));
    let shown = json_of(sextant(data, envs, &["models", "show", &model, "--json"]));
    let stages: Vec<&str> = shown["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["Archived", "Production"]);
    let listed = json_of(sextant(data, envs, &["models", "list", "--json"]));
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == model.as_str() && m["aliases"]["production"] == 1),
        "{listed}"
    );

    let served = json_of(sextant(
        data,
        envs,
        &[
            "run",
            "--json",
            "--experiment",
            experiment,
            "--agent",
            &format!("models:/{model}@production"),
            "What is Rust?",
        ],
    ));
    assert_eq!(
        served["agent_version"],
        format!("models:/{model}/1").as_str()
    );
    assert_eq!(
        served["prompt_versions"],
        json!([{ "name": "qa-prompt", "version": 2 }])
    );
    let trace = served["trace_id"].as_str().unwrap().to_owned();
    let spans = json_of(sextant(data, envs, &["traces", "show", &trace, "--json"]));
    let root = spans
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["parent_span_id"].is_null())
        .unwrap();
    assert_eq!(
        root["attributes"]["sextant.agent.version"],
        format!("models:/{model}/1").as_str()
    );
    let run_id = served["run_id"].as_str().unwrap().to_owned();
    let a = ok(sextant(
        data,
        envs,
        &["runs", "compare", &first_run, &run_id],
    ));
    assert!(
        a.lines()
            .any(|l| l.starts_with('*') && l.contains("agent ")),
        "{a}"
    );

    let archived = ok(sextant(data, envs, &["models", "archive", &model, "2"]));
    assert!(archived.contains("Archived"), "{archived}");
    (run_id, trace, model)
}

#[test]
fn runs_and_registered_agents_on_the_embedded_stores() {
    let data = tempfile::tempdir().unwrap();
    track_and_serve(data.path(), &[], "demo");
    // --no-log runs leave no run behind.
    let quiet = json_of(sextant(
        data.path(),
        &[],
        &["run", "--json", "--no-log", "--experiment", "quiet", "hi"],
    ));
    assert!(quiet["run_id"].is_null());
    let missing = sextant(data.path(), &[], &["runs", "list", "--experiment", "quiet"]);
    assert!(!missing.status.success());
}

const PY_SEE: &str = r#"
import json, sys, mlflow
from mlflow import MlflowClient
run_id, trace_id = sys.argv[1], sys.argv[2]
c = MlflowClient()
run = c.get_run(run_id)
path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="interaction.json")
traces = mlflow.search_traces(locations=[run.info.experiment_id], run_id=run_id, return_type="list")
prod = c.get_model_version_by_alias(sys.argv[3], "production")
print(json.dumps({
    "params": run.data.params, "metrics": run.data.metrics, "status": run.info.status,
    "experiment": c.get_experiment(run.info.experiment_id).name,
    "interaction": json.load(open(path)),
    "traces": [t.info.trace_id for t in traces],
    "production": prod.version,
}))
"#;

#[test]
#[ignore = "needs a real MLflow server and its Python client: cargo xtask test"]
fn on_mlflow_python_sees_the_run_its_artifact_and_its_linked_trace() {
    let url = mlflow_url();
    let data = tempfile::tempdir().unwrap();
    let experiment = format!("sextant-tracking-{}", std::process::id());
    let envs = [("SEXTANT_TRACKING_URI", url.as_str())];
    let (run_id, trace, model) = track_and_serve(data.path(), &envs, &experiment);

    let seen = python(&url, PY_SEE, &[&run_id, &format!("tr-{trace}"), &model]);
    assert_eq!(seen["status"], "FINISHED");
    assert_eq!(seen["experiment"], experiment.as_str());
    assert_eq!(
        seen["params"]["agent_version"],
        format!("models:/{model}/1").as_str()
    );
    assert_eq!(seen["params"]["prompt.qa-prompt"], "2");
    assert!(seen["metrics"]["output_tokens"].as_f64().unwrap() > 0.0);
    assert_eq!(seen["interaction"]["input"], "What is Rust?");
    assert_eq!(seen["interaction"]["trace_id"], trace.as_str());
    assert!(
        seen["traces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == format!("tr-{trace}").as_str()),
        "the trace is linked to the run: {seen}"
    );
    assert_eq!(seen["production"], "1");
}
