//! `sextant run` end to end on the embedded local model, as a user runs it: the answer, the span
//! tree, and `sextant traces show --json` returning the same spans from the local store.
//!
//! The model file is pulled into the default model cache on first use (shared by all tests); each
//! test has its own data dir.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

pub fn sextant(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(args)
        .env("SEXTANT_DATA_DIR", data_dir)
        .env(
            "SEXTANT_THREADS",
            std::env::var("SEXTANT_THREADS").unwrap_or_else(|_| "1".into()),
        )
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .output()
        .expect("the sextant binary runs")
}

fn stdout_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "sextant failed: {}\nstdout: {}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[test]
fn run_answers_offline_and_traces_show_returns_the_same_nested_spans() {
    let data = tempfile::tempdir().unwrap();
    let question = "What is 12 * 7 + 3? Use the calculator.";

    let run = stdout_json(&sextant(data.path(), &["run", "--json", question]));
    let answer = run["answer"].as_str().expect("an answer string");
    // README's first command: the weights are pinned and decoding is greedy, so the answer is
    // exactly what every newcomer sees; it must carry the calculator's 87 (issue #19).
    assert!(
        answer.contains("87") && !answer.contains('<'),
        "README's question answered {answer:?}: {run}"
    );
    let trace_id = run["trace_id"].as_str().expect("a trace id").to_owned();
    assert_eq!(trace_id.len(), 32);
    // The local model is made to call the calculator with a schema-valid argument.
    let calls = run["tool_calls"].as_array().expect("tool_calls");
    assert!(!calls.is_empty(), "no tool call: {run}");
    assert_eq!(calls[0]["name"], "calculator");
    let arguments: Value =
        serde_json::from_str(calls[0]["arguments"].as_str().unwrap()).expect("arguments are JSON");
    assert!(
        arguments["expression"]
            .as_str()
            .is_some_and(|e| !e.trim().is_empty()),
        "{arguments}"
    );
    assert!(run["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(run["usage"]["output_tokens"].as_u64().unwrap() > 0);

    // traces show <prefix> --json: the same trace, nested as the agent ran it.
    let shown = stdout_json(&sextant(
        data.path(),
        &["traces", "show", &trace_id[..10], "--json"],
    ));
    let spans = shown.as_array().expect("a JSON array of spans");
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    let steps = run["steps"].as_u64().unwrap() as usize;
    assert_eq!(spans.len(), 1 + steps + calls.len(), "{names:?}");
    let root = spans
        .iter()
        .find(|s| s["parent_span_id"].is_null())
        .expect("a root span");
    assert_eq!(root["name"], "invoke_agent assistant");
    let root_id = root["span_id"].as_str().unwrap();
    for span in spans {
        assert_eq!(span["trace_id"].as_str(), Some(trace_id.as_str()));
        for key in [
            "span_id",
            "start_time_unix_nano",
            "end_time_unix_nano",
            "attributes",
        ] {
            assert!(!span[key].is_null(), "{key} missing in {span}");
        }
        if span["span_id"] != root["span_id"] {
            assert_eq!(
                span["parent_span_id"].as_str(),
                Some(root_id),
                "{} is not under the agent",
                span["name"]
            );
            assert!(span["start_time_unix_nano"].as_u64() >= root["start_time_unix_nano"].as_u64());
            assert!(span["end_time_unix_nano"].as_u64() <= root["end_time_unix_nano"].as_u64());
        }
    }
    let chats: Vec<&Value> = spans
        .iter()
        .filter(|s| s["attributes"]["gen_ai.operation.name"] == "chat")
        .collect();
    assert_eq!(chats.len(), steps);
    let chat_tokens: i64 = chats
        .iter()
        .map(|s| {
            s["attributes"]["gen_ai.usage.input_tokens"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert_eq!(
        chat_tokens as u64,
        run["usage"]["input_tokens"].as_u64().unwrap()
    );
    for chat in &chats {
        assert_eq!(
            chat["attributes"]["mlflow.spanType"], "CHAT_MODEL",
            "{chat}"
        );
        assert_eq!(chat["attributes"]["gen_ai.provider.name"], "sextant.local");
    }
    let tool = spans
        .iter()
        .find(|s| s["name"] == "execute_tool calculator")
        .expect("the tool span");
    assert_eq!(tool["attributes"]["mlflow.spanType"], "TOOL");
    assert_eq!(tool["attributes"]["gen_ai.tool.name"], "calculator");
    assert_eq!(root["attributes"]["mlflow.spanType"], "AGENT");
    assert_eq!(root["attributes"]["openinference.span.kind"], "AGENT");

    // The text form prints the answer, then the tree with the tool nested under the agent.
    let text = sextant(data.path(), &["traces", "show", &trace_id]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("invoke_agent assistant")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("── execute_tool calculator")),
        "{text}"
    );
}

#[test]
fn bad_input_gets_a_clear_error() {
    let data = tempfile::tempdir().unwrap();
    let missing = sextant(
        data.path(),
        &["run", "--agent", "/nonexistent/agent.toml", "hi"],
    );
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("/nonexistent/agent.toml"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let agent = dir.path().join("typo.toml");
    std::fs::write(&agent, "name = \"a\"\nsystem_prompt = \"s\"\ntools = [\"calculatr\"]\n[model]\nprovider = \"local\"\nname = \"m\"\n").unwrap();
    let typo = sextant(
        data.path(),
        &["run", "--agent", agent.to_str().unwrap(), "hi"],
    );
    assert!(!typo.status.success());
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert!(
        stderr.contains("calculatr") && stderr.contains("calculator"),
        "{stderr}"
    );

    let empty = sextant(data.path(), &["traces", "show"]);
    assert!(!empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no traces yet"));
}
