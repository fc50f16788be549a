//! Redaction through the `sextant` binary: a question holding an email address and a card number,
//! with content capture and PII redaction on, reaches the model and the user whole, and leaves
//! only placeholders in the local trace store, the session store, the turn store and the run's
//! artifacts — and, on a real MLflow server, in the spans MLflow received over OTLP and the run's
//! `interaction.json` there.
//!
//! The model is the scripted OpenAI-compatible server, so the answer is known to repeat both
//! values (a real model may or may not).

use std::path::Path;

use serde_json::{Value, json};
use sextant_testkit::scripted_model::{Reply, ScriptedModelServer};
use sextant_testkit::{mlflow_url, python, scripted_agent_file};

mod support;
use support::{json_of, ok, sextant};

const EMAIL: &str = "ada.lovelace@example.com";
const CARD: &str = "4111 1111 1111 1111";
const QUESTION: &str =
    "I am ada.lovelace@example.com, card 4111 1111 1111 1111. What is 12 * 7? Use the calculator.";

/// Capture on, PII redaction on: what the issue's "done when" names.
const REDACTING: [(&str, &str); 2] = [
    ("SEXTANT_TELEMETRY__CAPTURE_CONTENT", "true"),
    ("SEXTANT_TELEMETRY__REDACTION__PII", "true"),
];

/// A calculator call, then an answer that repeats both values.
fn script() -> Vec<Reply> {
    vec![
        Reply::call("calculator", json!({"expression": "12 * 7"})),
        Reply::text(&format!(
            "12 * 7 = 84. I noted {EMAIL} and the card {CARD}."
        )),
    ]
}

/// Every file under `dir` whose bytes hold `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

fn assert_redacted(what: &str, text: &str) {
    for value in [EMAIL, CARD, "4111111111111111"] {
        assert!(!text.contains(value), "{what} holds {value}: {text}");
    }
    assert!(
        text.contains("<EMAIL_1>"),
        "{what} has no <EMAIL_1>: {text}"
    );
    assert!(text.contains("<CARD_1>"), "{what} has no <CARD_1>: {text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_capture_on_turn_keeps_placeholders_everywhere_it_is_stored() {
    let model = ScriptedModelServer::start(script()).await;
    let data = tempfile::tempdir().unwrap();
    let agent = scripted_agent_file(data.path(), "clerk", &model.url, &["calculator"], "");
    let agent = agent.display().to_string();

    let outcome = json_of(sextant(
        data.path(),
        &REDACTING,
        &["run", "--agent", &agent, "--json", QUESTION],
    ));
    // Redaction is for what is kept: the user and the model see the values.
    let answer = outcome["answer"].as_str().unwrap();
    assert!(answer.contains(EMAIL) && answer.contains(CARD), "{outcome}");
    assert!(
        model.received()[0].body.to_string().contains(EMAIL),
        "the model was asked the question as written"
    );
    let trace_id = outcome["trace_id"].as_str().unwrap();

    // A chat turn, so the session store has it too.
    model.push(Reply::text(&format!("Noted: {EMAIL}, {CARD}.")));
    let chat = std::process::Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["chat", "--agent", &agent])
        .current_dir(support::repo())
        .env("SEXTANT_DATA_DIR", data.path())
        .env("SEXTANT_THREADS", "1")
        .envs(REDACTING)
        .env_remove("SEXTANT_TRACKING_URI")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = chat.stdin.as_ref().unwrap();
        writeln!(stdin, "{QUESTION}").unwrap();
    }
    let chat = chat.wait_with_output().unwrap();
    assert!(
        chat.status.success(),
        "{}",
        String::from_utf8_lossy(&chat.stderr)
    );
    let sessions = json_of(sextant(data.path(), &[], &["sessions", "list", "--json"]));
    let session = sessions
        .as_array()
        .and_then(|s| s.first())
        .and_then(|s| s["session"]["id"].as_str())
        .unwrap_or_else(|| panic!("a session: {sessions}"))
        .to_owned();

    // The local trace store, as `sextant traces show` reads it.
    let spans = ok(sextant(
        data.path(),
        &[],
        &["traces", "show", trace_id, "--json"],
    ));
    assert_redacted("the local trace", &spans);
    let spans: Value = serde_json::from_str(&spans).unwrap();
    let counted: i64 = spans
        .as_array()
        .or(spans["spans"].as_array())
        .unwrap()
        .iter()
        .filter_map(|s| s["attributes"]["sextant.redaction.count"].as_i64())
        .sum();
    assert!(counted >= 4, "each span counts its redactions: {spans}");

    // The session store, as `sextant sessions show` reads it.
    let shown = ok(sextant(
        data.path(),
        &[],
        &["sessions", "show", &session, "--json"],
    ));
    assert_redacted("the session", &shown);

    // The completed turn in the turn store.
    let turn_id = outcome["turn_id"].as_str().expect("checkpointed turns");
    let turn = ok(sextant(
        data.path(),
        &[],
        &["turns", "show", turn_id, "--json"],
    ));
    assert_redacted("the stored turn", &turn);

    // Files no one rewrites in place: the trace store and the run's artifacts hold no trace of
    // either value, byte for byte. (sessions.db is checked through its reader above: a running
    // turn's earlier checkpoints, which resuming needs whole, may linger in SQLite's free pages.)
    for file in [
        "traces.db",
        "traces.db-wal",
        "tracking.db",
        "tracking.db-wal",
    ] {
        let path = data.path().join(file);
        for value in [EMAIL, CARD] {
            assert!(
                files_holding(&path, value).is_empty(),
                "{file} holds {value}"
            );
        }
    }
    let artifacts = data.path().join("artifacts");
    assert!(artifacts.is_dir(), "the run logged its artifacts");
    for value in [EMAIL, CARD] {
        assert_eq!(files_holding(&artifacts, value), Vec::<String>::new());
    }
    let interaction = files_holding(&artifacts, "<EMAIL_1>");
    assert!(
        interaction.iter().any(|f| f.ends_with("interaction.json")),
        "interaction.json keeps the placeholders: {interaction:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_pii_redaction_off_only_secrets_are_replaced() {
    let model = ScriptedModelServer::start(vec![Reply::text(
        "Use the key sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z with ada@example.com.",
    )])
    .await;
    let data = tempfile::tempdir().unwrap();
    let agent = scripted_agent_file(data.path(), "clerk", &model.url, &[], "");
    let outcome = json_of(sextant(
        data.path(),
        &[("SEXTANT_TELEMETRY__CAPTURE_CONTENT", "true")],
        &[
            "run",
            "--agent",
            &agent.display().to_string(),
            "--json",
            "Which key?",
        ],
    ));
    let spans = ok(sextant(
        data.path(),
        &[],
        &[
            "traces",
            "show",
            outcome["trace_id"].as_str().unwrap(),
            "--json",
        ],
    ));
    assert!(
        !spans.contains("sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"),
        "{spans}"
    );
    assert!(spans.contains("<SECRET_1>"), "{spans}");
    assert!(
        spans.contains("ada@example.com"),
        "PII stays without the switch: {spans}"
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a real MLflow server: cargo xtask test"]
async fn on_mlflow_the_exported_spans_and_artifacts_hold_placeholders() {
    let mlflow = mlflow_url();
    let model = ScriptedModelServer::start(script()).await;
    let data = tempfile::tempdir().unwrap();
    let agent = scripted_agent_file(data.path(), "clerk", &model.url, &["calculator"], "");
    let experiment = format!("sextant-redaction-{}", std::process::id());
    let mut envs = REDACTING.to_vec();
    envs.extend([
        ("SEXTANT_TRACKING_URI", mlflow.as_str()),
        ("SEXTANT_TRACKING__EXPERIMENT", experiment.as_str()),
    ]);
    let outcome = json_of(sextant(
        data.path(),
        &envs,
        &[
            "run",
            "--agent",
            &agent.display().to_string(),
            "--json",
            QUESTION,
        ],
    ));
    let trace_id = outcome["trace_id"].as_str().unwrap();
    let run_id = outcome["run_id"].as_str().expect("an MLflow run");

    // What MLflow received over OTLP, and the run's artifact, read by MLflow's own client.
    let seen = python(&mlflow, PY_TRACE_AND_ARTIFACT, &[trace_id, run_id]);
    let spans = seen["spans"].to_string();
    assert!(seen["span_count"].as_u64().unwrap() >= 3, "{seen}");
    assert_redacted("the MLflow trace", &spans);
    assert_redacted(
        "MLflow's interaction.json",
        seen["interaction"].as_str().unwrap(),
    );
}

/// Prints the trace's spans (as MLflow stores them) and the run's `interaction.json`.
const PY_TRACE_AND_ARTIFACT: &str = r#"
import json, sys, time, mlflow
trace_id, run_id = sys.argv[1], sys.argv[2]
trace = None
for _ in range(50):
    trace = mlflow.get_trace("tr-" + trace_id)
    if trace is not None and len(trace.data.spans) >= 3:
        break
    time.sleep(0.2)
spans = [s.to_dict() for s in trace.data.spans]
interaction = mlflow.artifacts.load_text(f"runs:/{run_id}/interaction.json")
print(json.dumps({"span_count": len(spans), "spans": spans, "interaction": interaction}))
"#;
