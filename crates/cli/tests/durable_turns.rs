//! Durable turns through the `sextant` binary: a `sextant run` killed with SIGKILL after its
//! first tool call is finished by `sextant turns resume` in a new process without repeating the
//! model call or the tool call that had finished; a call that needs approval pauses `sextant run`
//! and `sextant turns approve` (another process) lets it finish. The model is the scripted
//! OpenAI-compatible server (it must ask for an exact call, and hold one request open so the
//! process can be killed at a known point).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sextant_testkit::scripted_model::{Reply, ScriptedModelServer};

mod support;
use support::{json_of, repo, sextant};

const LEASE: &[(&str, &str)] = &[("SEXTANT_STATE__LEASE_SECS", "1")];

#[tokio::test(flavor = "multi_thread")]
async fn a_turn_killed_after_its_first_tool_call_resumes_in_a_new_process() {
    let data = tempfile::tempdir().unwrap();
    let model = ScriptedModelServer::start(vec![
        Reply::call("calculator", json!({"expression": "2 + 40"})),
        // The process is killed while it waits for this answer.
        Reply::Hang,
        Reply::text("It is 42."),
    ])
    .await;
    let agent = sextant_testkit::scripted_agent_file(
        data.path(),
        "durable",
        &model.url,
        &["calculator"],
        "",
    );
    let agent = agent.display().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["run", "--agent", &agent, "--json", "What is 2 + 40?"])
        .current_dir(repo())
        .env("SEXTANT_DATA_DIR", data.path())
        .env("SEXTANT_STATE__LEASE_SECS", "1")
        .env_remove("SEXTANT_TRACKING_URI")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sextant runs");
    // The second model request carries the tool's result: it was checkpointed before it was sent.
    let started = Instant::now();
    while model.received().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the turn never reached its second model call"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().expect("SIGKILL");
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished: {status}");
    // Past the dead process's lease.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let data_dir = data.path().to_owned();
    let listed = tokio::task::spawn_blocking(move || {
        json_of(sextant(&data_dir, LEASE, &["turns", "list", "--json"]))
    })
    .await
    .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(
        listed[0]["status"], "running",
        "what a crash leaves: {listed}"
    );
    let turn_id = listed[0]["id"].as_str().unwrap().to_owned();

    let (data_dir, id) = (data.path().to_owned(), turn_id.clone());
    let resumed = tokio::task::spawn_blocking(move || {
        json_of(sextant(
            &data_dir,
            LEASE,
            &["turns", "resume", &id, "--json"],
        ))
    })
    .await
    .unwrap();
    assert_eq!(resumed["answer"], "It is 42.", "{resumed}");
    assert_eq!(resumed["stop_reason"], "answered");
    assert_eq!(resumed["steps"], 2);
    assert_eq!(resumed["tool_calls"][0]["result"], "42");

    // The model: the question was answered once; the request with the tool result was sent
    // again only because its first sending was never answered.
    let received = model.received();
    assert_eq!(received.len(), 3);
    assert!(received[0].answered && !received[1].answered && received[2].answered);
    assert_eq!(received[1].body["messages"], received[2].body["messages"]);
    let answered: Vec<&Value> = received
        .iter()
        .filter(|r| r.answered)
        .map(|r| &r.body["messages"])
        .collect();
    assert_ne!(answered[0], answered[1]);

    // The tool: the resumed part of the trace ran no tool (the calculator's result came from the
    // checkpoint).
    let trace_id = resumed["trace_id"].as_str().unwrap().to_owned();
    let data_dir = data.path().to_owned();
    let spans = tokio::task::spawn_blocking(move || {
        json_of(sextant(
            &data_dir,
            &[],
            &["traces", "show", &trace_id, "--json"],
        ))
    })
    .await
    .unwrap();
    let spans = spans.as_array().unwrap();
    let resumed_span = spans
        .iter()
        .find(|s| s["attributes"]["sextant.turn.resumed"] == json!(true))
        .unwrap_or_else(|| panic!("no resumed agent span in {spans:#?}"));
    let children: Vec<&str> = spans
        .iter()
        .filter(|s| s["parent_span_id"] == resumed_span["span_id"])
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(children, ["chat scripted"], "{children:?}");

    // Completed: resuming again says so.
    let data_dir = data.path().to_owned();
    let again = tokio::task::spawn_blocking(move || {
        sextant(&data_dir, LEASE, &["turns", "resume", &turn_id])
    })
    .await
    .unwrap();
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already completed"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_that_needs_approval_pauses_run_and_turns_approve_finishes_it() {
    let data = tempfile::tempdir().unwrap();
    let model = ScriptedModelServer::start(vec![
        Reply::call("calculator", json!({"expression": "6 * 7"})),
        Reply::text("It is 42."),
    ])
    .await;
    let agent = sextant_testkit::scripted_agent_file(
        data.path(),
        "careful",
        &model.url,
        &["calculator"],
        "[tool_policies.calculator]\napproval = \"always\"\n",
    )
    .display()
    .to_string();
    let data_dir = data.path().to_owned();
    let paused = tokio::task::spawn_blocking(move || {
        json_of(sextant(
            &data_dir,
            &[],
            &["run", "--agent", &agent, "--json", "What is 6 * 7?"],
        ))
    })
    .await
    .unwrap();
    assert_eq!(paused["stop_reason"], "awaiting_approval", "{paused}");
    assert_eq!(paused["pending_approvals"][0]["call_id"], "call_0_0");
    let turn_id = paused["turn_id"].as_str().unwrap().to_owned();

    let data_dir = data.path().to_owned();
    let id = turn_id.clone();
    let (pending, bad_edit, approved) = tokio::task::spawn_blocking(move || {
        let pending = json_of(sextant(
            &data_dir,
            &[],
            &["turns", "list", "--pending", "--json"],
        ));
        let bad_edit = sextant(
            &data_dir,
            &[],
            &[
                "turns",
                "approve",
                &id,
                "call_0_0",
                "--edit",
                r#"{"expression": 5}"#,
            ],
        );
        let approved = json_of(sextant(
            &data_dir,
            &[],
            &["turns", "approve", &id, "call_0_0", "--by", "ops", "--json"],
        ));
        (pending, bad_edit, approved)
    })
    .await
    .unwrap();
    assert_eq!(pending[0]["id"], turn_id.as_str());
    assert_eq!(pending[0]["pending_approvals"], 1);
    assert!(!bad_edit.status.success());
    let stderr = String::from_utf8_lossy(&bad_edit.stderr);
    assert!(stderr.contains("/expression"), "{stderr}");
    assert_eq!(approved["answer"], "It is 42.", "{approved}");
    assert_eq!(approved["trace_id"], paused["trace_id"]);
    assert_eq!(model.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_matches_an_unchanged_agent_without_the_model_and_diffs_a_changed_prompt() {
    let data = tempfile::tempdir().unwrap();
    let model = ScriptedModelServer::start(vec![
        Reply::call("calculator", json!({"expression": "12 * 7 + 3"})),
        Reply::text("It is 87."),
    ])
    .await;
    let file = sextant_testkit::scripted_agent_file(
        data.path(),
        "recorded",
        &model.url,
        &["calculator"],
        "",
    );
    let agent = file.display().to_string();
    let data_dir = data.path().to_owned();
    let (run, same, changed) = tokio::task::spawn_blocking(move || {
        let run = json_of(sextant(
            &data_dir,
            &[],
            &["run", "--agent", &agent, "--json", "What is 12 * 7 + 3?"],
        ));
        let trace = run["trace_id"].as_str().unwrap().to_owned();
        let same = json_of(sextant(&data_dir, &[], &["replay", &trace, "--json"]));
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(
            &file,
            text.replace("You are a helpful assistant.", "You are a terse assistant."),
        )
        .unwrap();
        let changed = sextant(&data_dir, &[], &["replay", &trace, "--json"]);
        (run, same, changed)
    })
    .await
    .unwrap();
    assert_eq!(run["answer"], "It is 87.", "{run}");
    assert_eq!(same[0]["divergence"], Value::Null, "{same}");
    assert_eq!(same[0]["model_calls"], 2);
    assert_eq!(same[0]["tool_calls"], 1);
    assert_eq!(same[0]["recorded_trace_id"], run["trace_id"]);
    assert_ne!(
        same[0]["trace_id"], run["trace_id"],
        "a replay has a trace of its own"
    );
    assert_eq!(model.received().len(), 2, "replays call no model");

    assert_eq!(
        changed.status.code(),
        Some(1),
        "a divergence fails the replay"
    );
    let report: Value = serde_json::from_slice(&changed.stdout).unwrap();
    let divergence = &report[0]["divergence"];
    assert_eq!(divergence["kind"], "request", "{report}");
    assert_eq!(divergence["step"], 1);
    let diff = divergence["diff"].as_str().unwrap();
    assert!(diff.contains("+You are a terse assistant."), "{diff}");
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_asks_inline_and_runs_the_call_once_approved() {
    let data = tempfile::tempdir().unwrap();
    let model = ScriptedModelServer::start(vec![
        Reply::call("calculator", json!({"expression": "6 * 7"})),
        Reply::text("It is 42."),
    ])
    .await;
    let agent = sextant_testkit::scripted_agent_file(
        data.path(),
        "asking",
        &model.url,
        &["calculator"],
        "[tool_policies.calculator]\napproval = \"always\"\n",
    )
    .display()
    .to_string();
    let data_dir = data.path().to_owned();
    let (output, pending) = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args(["chat", "--agent", &agent, "--user", "ada"])
            .current_dir(repo())
            .env("SEXTANT_DATA_DIR", &data_dir)
            .env_remove("SEXTANT_TRACKING_URI")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"What is 6 * 7?\ny\n/exit\n")
            .unwrap();
        let output = child.wait_with_output().unwrap();
        let pending = json_of(sextant(
            &data_dir,
            &[],
            &["turns", "list", "--pending", "--json"],
        ));
        (output, pending)
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("asking wants to call calculator"),
        "{stderr}"
    );
    assert!(stdout.contains("It is 42."), "{stdout}\n{stderr}");
    assert_eq!(model.received().len(), 2);
    assert_eq!(pending, json!([]), "decided inline, nothing waits");
}
