//! The production loop on MLflow, read back with its Python client: a code monitor and an LLM
//! judge monitor score a turn in the background, its owner gives it a thumbs-down, and
//! `mlflow.get_trace(…).info.assessments` holds all three with the sources `CODE`, `LLM_JUDGE`
//! and `HUMAN`; the chat span's cost is what MLflow reads as `span.llm_cost`.

use std::time::Duration;

use serde_json::{Value, json};
use sextant_server::Server;
use sextant_server::monitors::MonitorConfig;
use sextant_testkit::scripted_model::{Reply, ScriptedModelServer};

mod support;
use support::{TestServer, prices_file, settings, shared_with};

const PY_TRACE: &str = r#"
import json, sys, time, mlflow
trace_id = "tr-" + sys.argv[1]
wanted = {"thumbs", "is_concise", "relevance_to_query"}
trace = None
for _ in range(60):
    try:
        trace = mlflow.get_trace(trace_id)
    except Exception:
        trace = None
    if trace is not None and wanted <= {a.name for a in trace.info.assessments}:
        break
    time.sleep(1)
chats = [s for s in trace.data.spans if s.name.startswith("chat ")]
print(json.dumps({
    "assessments": [
        {"name": a.name, "source": a.source.source_type, "value": a.value,
         "rationale": a.rationale}
        for a in trace.info.assessments
    ],
    "chat_costs": [s.llm_cost for s in chats],
    "trace_cost": trace.info.cost if hasattr(trace.info, "cost") else None,
}))
"#;

#[test]
#[ignore = "needs a real MLflow server and its Python client: cargo xtask test"]
fn monitors_and_feedback_reach_mlflow_as_code_judge_and_human_assessments() {
    let url = sextant_testkit::mlflow_url();
    let experiment = format!("sextant-loop-{}", std::process::id());
    let prices = prices_file();
    let shared = shared_with(
        &[
            ("SEXTANT_TRACKING_URI", url.as_str()),
            ("SEXTANT_TRACKING__EXPERIMENT", experiment.as_str()),
            ("SEXTANT_PRICES__FILE", prices.as_str()),
        ],
        |builder| {
            let run = sextant_server::run_spec(builder.config(), "in-process");
            builder.run_best_effort(run)
        },
    );
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let trace_id = tokio.block_on(async {
        let model = ScriptedModelServer::start(vec![Reply::text("It is 42.")]).await;
        let judge = ScriptedModelServer::start(vec![Reply::call(
            "verdict",
            json!({"result": "yes", "rationale": "It answers the question asked."}),
        )])
        .await;
        sextant_testkit::scripted_agent_file(&shared.agents, "answers", &model.url, &[], "");
        sextant_testkit::scripted_agent_file(&shared.agents, "judge", &judge.url, &[], "");
        let mut settings = settings();
        settings.monitors = vec![
            MonitorConfig {
                scorer: "is_concise:5".into(),
                sample: 1.0,
                filter: String::new(),
                judge: None,
            },
            MonitorConfig {
                scorer: "relevance_to_query".into(),
                sample: 1.0,
                filter: "agent = 'answers'".into(),
                judge: Some("judge".into()),
            },
        ];
        let server = Server::with_settings(shared.runtime.clone(), settings).unwrap();
        let service = TestServer::start(server).await;
        let client = reqwest::Client::new();
        let response: Value = client
            .post(format!("{}/v1/agents/answers/invoke", service.url))
            .header("x-user-id", "lin")
            .json(&json!({"input": "What is 6 * 7?"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let trace_id = response["trace_id"].as_str().unwrap().to_owned();
        let feedback = client
            .post(format!("{}/v1/traces/{trace_id}/feedback", service.url))
            .header("x-user-id", "lin")
            .json(&json!({"name": "thumbs", "value": false, "rationale": "wrong unit"}))
            .send()
            .await
            .unwrap();
        assert_eq!(feedback.status().as_u16(), 201);
        // Let the monitors judge before the service stops (it waits for queued turns too).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let report = service.stop().await;
        let run = report.run.expect("the service had a run");
        assert!(run.delivered, "{run:?}");
        trace_id
    });

    let seen = sextant_testkit::python(&url, PY_TRACE, &[&trace_id]);
    let assessments = seen["assessments"].as_array().unwrap();
    let find = |name: &str| {
        assessments
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("no `{name}` assessment: {seen}"))
    };
    assert_eq!(find("thumbs")["source"], "HUMAN", "{seen}");
    assert_eq!(find("thumbs")["value"], false);
    assert_eq!(find("thumbs")["rationale"], "wrong unit");
    assert_eq!(find("is_concise")["source"], "CODE");
    assert_eq!(find("is_concise")["value"], true);
    assert_eq!(find("relevance_to_query")["source"], "LLM_JUDGE");
    assert_eq!(find("relevance_to_query")["value"], true);
    let costs = seen["chat_costs"].as_array().unwrap();
    assert_eq!(costs.len(), 1, "{seen}");
    let total = costs[0]["total_cost"].as_f64().unwrap();
    assert!((total - 36e-6).abs() < 1e-12, "{seen}");
}
