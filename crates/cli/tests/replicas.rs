//! Two `sextant serve` replicas on one PostgreSQL state store: a turn paused for approval in
//! one is approved through the other's HTTP API and completes there; both export to one real
//! MLflow, whose Python client finds one trace holding the pause (replica A), the decision and the
//! rest of the turn (replica B). The model is the scripted OpenAI-compatible server.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use sextant_testkit::scripted_model::{Reply, ScriptedModelServer};
use sextant_testkit::{mlflow_url, python};
use support::service::Service;

const PY_TRACE: &str = r#"
import json, sys, time, mlflow
want = "tr-" + sys.argv[1]
needed = {"approval calculator", "execute_tool calculator"}
found = None
for _ in range(60):
    try:
        trace = mlflow.get_trace(want)
    except Exception:
        trace = None
    if trace is not None:
        names = [s.name for s in trace.data.spans]
        if needed <= set(names) and names.count("invoke_agent payer") == 2:
            found = trace
            break
    time.sleep(1)
if found is None:
    print(json.dumps(None))
else:
    print(json.dumps({
        "spans": [{"name": s.name, "span_id": s.span_id, "parent_id": s.parent_id,
                   "service": (s.attributes or {}).get("sextant.turn.resumed")}
                  for s in found.data.spans],
    }))
"#;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs PostgreSQL, a real MLflow server and its Python client: cargo xtask test"]
async fn a_turn_paused_in_one_replica_is_approved_and_finished_through_the_other() {
    let state_url = sextant_testkit::fresh_postgres_database().await;
    let model = ScriptedModelServer::start(vec![
        Reply::call("calculator", json!({"expression": "6 * 7"})),
        Reply::text("It is 42."),
    ])
    .await;
    let mlflow = mlflow_url();
    let experiment = format!("sextant-replicas-{}", std::process::id());
    let (data_a, data_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for data in [&data_a, &data_b] {
        let agents = data.path().join("agents");
        std::fs::create_dir_all(&agents).unwrap();
        sextant_testkit::scripted_agent_file(
            &agents,
            "payer",
            &model.url,
            &["calculator"],
            "[tool_policies.calculator]\napproval = \"always\"\n",
        );
    }
    let started = {
        let (a, b) = (data_a.path().to_owned(), data_b.path().to_owned());
        let (state_url, mlflow, experiment) =
            (state_url.clone(), mlflow.clone(), experiment.clone());
        tokio::task::spawn_blocking(move || {
            let envs = |name: &'static str| {
                vec![
                    ("SEXTANT_STATE__URL", state_url.clone()),
                    ("SEXTANT_TRACKING_URI", mlflow.clone()),
                    ("SEXTANT_TRACKING__EXPERIMENT", experiment.clone()),
                    ("OTEL_SERVICE_NAME", name.to_owned()),
                ]
            };
            let start = |data: &std::path::Path, envs: Vec<(&str, String)>| {
                let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
                Service::start(data, &envs)
            };
            (start(&a, envs("replica-a")), start(&b, envs("replica-b")))
        })
        .await
        .unwrap()
    };
    let (a, b) = started;
    let client = reqwest::Client::new();
    let call = |url: String, body: Option<Value>| {
        let client = client.clone();
        async move {
            let request = match body {
                Some(body) => client.post(url).json(&body),
                None => client.get(url),
            };
            let response = request
                .header("x-user-id", "ada")
                .timeout(Duration::from_secs(300))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };

    let (status, paused) = call(
        format!("{}/v1/agents/payer/invoke", a.url),
        Some(json!({"input": "What is 6 * 7?"})),
    )
    .await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["stop_reason"], "awaiting_approval");
    let turn_id = paused["turn_id"].as_str().unwrap().to_owned();
    let trace_id = paused["trace_id"].as_str().unwrap().to_owned();

    // The other replica sees the paused turn and decides it.
    let (status, shown) = call(format!("{}/v1/turns/{turn_id}", b.url), None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["status"], "awaiting_approval");
    let (status, done) = call(
        format!("{}/v1/turns/{turn_id}/decisions", b.url),
        Some(json!({"decisions": [{"call_id": "call_0_0", "decision": "approve"}]})),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["answer"], "It is 42.");
    assert_eq!(done["trace_id"], trace_id.as_str());
    assert_eq!(model.received().len(), 2, "no model call repeated");

    // Both replicas flush to MLflow when they stop.
    tokio::task::spawn_blocking(move || {
        a.terminate();
        b.terminate();
    })
    .await
    .unwrap();
    let found = tokio::task::spawn_blocking(move || python(&mlflow, PY_TRACE, &[&trace_id]))
        .await
        .unwrap();
    assert!(
        !found.is_null(),
        "MLflow never showed one trace with the pause, the decision and the rest"
    );
    let spans = found["spans"].as_array().unwrap();
    let agents: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "invoke_agent payer")
        .collect();
    let first = agents
        .iter()
        .find(|s| s["service"].is_null())
        .expect("the paused part");
    let resumed = agents
        .iter()
        .find(|s| s["service"] == json!(true))
        .expect("the resumed part");
    assert_eq!(resumed["parent_id"], first["span_id"]);
    let decision = spans
        .iter()
        .find(|s| s["name"] == "approval calculator")
        .unwrap();
    assert_eq!(decision["parent_id"], first["span_id"]);
}
