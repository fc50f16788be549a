//! A full agent turn on the local model, exported over OTLP/HTTP to a real MLflow tracking server
//! and read back through MLflow's REST API: nesting, span types, token usage — with the process
//! exiting right after the turn, so a span lost on exit would show here.
//!
//! Needs a real MLflow server, so every test here is `#[ignore]`d: `cargo xtask test` starts
//! MLflow 3.17.2 and runs them.

use std::collections::HashMap;
use std::process::Command;

use base64::Engine;
use serde_json::{Value, json};
use sextant_testkit::mlflow_url;

fn create_experiment(client: &reqwest::blocking::Client, mlflow: &str, name: &str) -> String {
    let response: Value = client
        .post(format!("{mlflow}/api/2.0/mlflow/experiments/create"))
        .json(&json!({"name": name}))
        .send()
        .and_then(|r| r.error_for_status())
        .expect("MLflow creates the experiment")
        .json()
        .unwrap();
    response["experiment_id"]
        .as_str()
        .expect("an experiment id")
        .to_owned()
}

/// OTLP JSON ids in MLflow's span JSON are base64; ours are hex.
fn hex_id(value: &Value) -> Option<String> {
    let text = value.as_str().filter(|s| !s.is_empty())?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("a base64 id");
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
}

#[test]
#[ignore = "needs a real MLflow server: cargo xtask test"]
fn a_turn_exported_to_mlflow_reads_back_nested_typed_and_counted() {
    let mlflow = mlflow_url();
    let client = reqwest::blocking::Client::new();
    let experiment = create_experiment(
        &client,
        &mlflow,
        &format!("sextant-e2e-{}", std::process::id()),
    );
    let data = tempfile::tempdir().unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["run", "--json", "What is 12 * 7 + 3? Use the calculator."])
        .env("SEXTANT_DATA_DIR", data.path())
        .env("SEXTANT_THREADS", "1")
        .env("SEXTANT_TELEMETRY__CAPTURE_CONTENT", "true")
        .env(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("{mlflow}/v1/traces"),
        )
        .env(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            format!("x-mlflow-experiment-id={experiment}"),
        )
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .expect("sextant runs");
    assert!(
        output.status.success(),
        "sextant failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run: Value = serde_json::from_slice(&output.stdout).expect("JSON output");
    let trace_hex = run["trace_id"].as_str().expect("a trace id");
    let steps = run["steps"].as_u64().unwrap() as usize;
    let tool_calls = run["tool_calls"].as_array().unwrap().len();

    // The process has exited: everything it exported must already be in MLflow.
    let trace: Value = client
        .get(format!("{mlflow}/api/3.0/mlflow/traces/get"))
        .query(&[("trace_id", format!("tr-{trace_hex}"))])
        .send()
        .and_then(|r| r.error_for_status())
        .expect("MLflow has the trace")
        .json()
        .unwrap();
    let trace = &trace["trace"];
    assert_eq!(
        trace["trace_info"]["state"], "OK",
        "{}",
        trace["trace_info"]
    );
    assert_eq!(
        trace["trace_info"]["trace_location"]["mlflow_experiment"]["experiment_id"].as_str(),
        Some(experiment.as_str())
    );
    let spans = trace["spans"].as_array().expect("spans");
    assert_eq!(
        spans.len(),
        1 + steps + tool_calls,
        "spans lost on exit? {spans:#?}"
    );

    let by_id: HashMap<String, &Value> = spans
        .iter()
        .map(|s| (hex_id(&s["span_id"]).unwrap(), s))
        .collect();
    let root = spans
        .iter()
        .find(|s| hex_id(&s["parent_span_id"]).is_none())
        .expect("a root span");
    let root_id = hex_id(&root["span_id"]).unwrap();
    assert_eq!(hex_id(&root["trace_id"]).as_deref(), Some(trace_hex));
    let type_of = |span: &Value| {
        attribute(span, "mlflow.spanType")
            .and_then(|v| v["string_value"].as_str())
            .map(str::to_owned)
    };
    assert_eq!(type_of(root).as_deref(), Some("AGENT"));
    let mut types: Vec<String> = Vec::new();
    for span in spans
        .iter()
        .filter(|s| hex_id(&s["span_id"]).as_deref() != Some(root_id.as_str()))
    {
        let parent = hex_id(&span["parent_span_id"]).expect("a parent");
        assert_eq!(
            parent, root_id,
            "{} is not under the agent span",
            span["name"]
        );
        assert!(by_id.contains_key(&parent));
        types.push(type_of(span).expect("every span is typed"));
    }
    assert_eq!(
        types.iter().filter(|t| *t == "CHAT_MODEL").count(),
        steps,
        "{types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| *t == "TOOL").count(),
        tool_calls,
        "{types:?}"
    );

    // Token usage: per chat span, and the trace total MLflow computed equals the turn's usage.
    let usage: Value = serde_json::from_str(
        trace["trace_info"]["trace_metadata"]["mlflow.trace.tokenUsage"]
            .as_str()
            .expect("trace token usage"),
    )
    .unwrap();
    assert_eq!(usage["input_tokens"], run["usage"]["input_tokens"]);
    assert_eq!(usage["output_tokens"], run["usage"]["output_tokens"]);
    for chat in spans
        .iter()
        .filter(|s| type_of(s).as_deref() == Some("CHAT_MODEL"))
    {
        let input =
            attribute(chat, "gen_ai.usage.input_tokens").and_then(|v| v["int_value"].as_i64());
        assert!(input.is_some_and(|n| n > 0), "{chat}");
    }
    // Content capture was on: the root's inputs and outputs became the trace previews.
    assert!(
        trace["trace_info"]["request_preview"]
            .as_str()
            .is_some_and(|p| p.contains("12 * 7")),
        "{}",
        trace["trace_info"]
    );
}

#[test]
#[ignore = "needs a real MLflow server: cargo xtask test"]
fn an_unreachable_or_refusing_backend_never_fails_the_turn() {
    let mlflow = mlflow_url();
    let data = tempfile::tempdir().unwrap();
    // Experiment 999999 does not exist: MLflow answers 404 to every export.
    let output = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["run", "--json", "What is 2 + 2? Use the calculator."])
        .env("SEXTANT_DATA_DIR", data.path())
        .env("SEXTANT_THREADS", "1")
        .env(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("{mlflow}/v1/traces"),
        )
        .env(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "x-mlflow-experiment-id=999999,authorization=Bearer%20sk-do-not-print",
        )
        .output()
        .expect("sextant runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(run["trace_id"].is_string());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("sk-do-not-print"),
        "a header value leaked: {stderr}"
    );
    // The local store still has the whole trace.
    let shown = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args([
            "traces",
            "show",
            run["trace_id"].as_str().unwrap(),
            "--json",
        ])
        .env("SEXTANT_DATA_DIR", data.path())
        .output()
        .unwrap();
    let spans: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert!(spans.as_array().is_some_and(|s| s.len() >= 3), "{spans}");
}
