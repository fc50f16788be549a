//! On MLflow, the service's life is a tracking run, and its turns are traces linked to that run and
//! grouped by session and user, as the Python client reads them.

use serde_json::{Value, json};
use sextant_server::Server;

mod support;
use support::{TestServer, settings, shared_with};

const PY_SERVICE_RUN: &str = r#"
import json, sys, time, mlflow
from mlflow import MlflowClient
exp = mlflow.get_experiment_by_name(sys.argv[1])
c = MlflowClient()
runs = c.search_runs([exp.experiment_id], filter_string="tags.`sextant.kind` = 'service'")
run = runs[0]
traces = []
for _ in range(30):
    traces = mlflow.search_traces(locations=[exp.experiment_id], run_id=run.info.run_id, return_type="list")
    if traces:
        break
    time.sleep(1)
print(json.dumps({
    "status": run.info.status,
    "turns": run.data.metrics.get("turns"),
    "name": run.info.run_name,
    "traces": [
        {"id": t.info.trace_id, "session": t.info.trace_metadata.get("mlflow.trace.session"),
         "user": t.info.trace_metadata.get("mlflow.trace.user")}
        for t in traces
    ],
}))
"#;

#[test]
#[ignore = "needs a real MLflow server and its Python client: cargo xtask test"]
fn on_mlflow_the_service_is_a_run_and_its_turns_are_linked_traces_grouped_by_session() {
    let url = sextant_testkit::mlflow_url();
    let experiment = format!("sextant-serve-{}", std::process::id());
    let shared = shared_with(
        &[
            ("SEXTANT_TRACKING_URI", url.as_str()),
            ("SEXTANT_TRACKING__EXPERIMENT", experiment.as_str()),
        ],
        |builder| {
            let run = sextant_server::run_spec(builder.config(), "in-process");
            builder.run_best_effort(run)
        },
    );
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let trace_id = tokio.block_on(async {
        let server = Server::with_settings(shared.runtime.clone(), settings()).unwrap();
        let service = TestServer::start(server).await;
        let response: Value = reqwest::Client::new()
            .post(format!("{}/v1/agents/tiny/invoke", service.url))
            .header("x-session-id", "mlflow-session")
            .header("x-user-id", "lin")
            .json(&json!({"input": "Hello!"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let report = service.stop().await;
        let run = report.run.expect("the service had a run");
        assert!(run.delivered, "{run:?}");
        response["trace_id"].as_str().unwrap().to_owned()
    });

    let seen = sextant_testkit::python(&url, PY_SERVICE_RUN, &[&experiment]);
    assert_eq!(seen["status"], "FINISHED", "{seen}");
    assert!(seen["name"].as_str().unwrap().starts_with("sextant serve"));
    assert!(seen["turns"].as_f64().unwrap() >= 1.0, "{seen}");
    let traces = seen["traces"].as_array().unwrap();
    let trace = traces
        .iter()
        .find(|t| t["id"] == format!("tr-{trace_id}"))
        .unwrap_or_else(|| panic!("trace {trace_id} is not linked to the service run: {seen}"));
    // Sessions are kept per owner: Lin's `mlflow-session` is stored (and grouped) as hers.
    assert_eq!(trace["session"], "lin/mlflow-session");
    assert_eq!(trace["user"], "lin");
}
