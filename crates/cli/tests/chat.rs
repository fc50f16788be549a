//! `sextant chat` as a user drives it, on the embedded local model: a conversation piped in,
//! resumed by a second process with `--session`, replayed by `sextant sessions show`, and every
//! turn's trace carrying the session and user ids that MLflow groups traces by.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use sextant_testkit::{mlflow_url, python};

mod support;
use support::{json_of, repo, sextant};

/// Runs `sextant chat ARGS` with `input` on stdin; (stdout, stderr).
fn chat(data: &Path, args: &[&str], input: &str) -> (String, String) {
    chat_with(data, &[], args, input)
}

/// The session id `sextant chat` announces on stderr.
fn announced_session(stderr: &str) -> String {
    stderr
        .split_whitespace()
        .skip_while(|w| *w != "session")
        .nth(1)
        .expect("the session id is announced")
        .to_owned()
}

/// [`chat`] with extra environment variables.
fn chat_with(data: &Path, envs: &[(&str, &str)], args: &[&str], input: &str) -> (String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sextant"));
    command
        .arg("chat")
        .args(args)
        .current_dir(repo())
        .env("SEXTANT_DATA_DIR", data)
        .env("SEXTANT_THREADS", "1")
        .env_remove("SEXTANT_TRACKING_URI")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("sextant chat starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(output.status.success(), "chat failed: {stderr}\n{stdout}");
    (stdout, stderr)
}

#[test]
fn a_chat_resumes_across_processes_and_its_turns_group_by_session_and_user() {
    let data = tempfile::tempdir().unwrap();
    let (stdout, stderr) = chat(
        data.path(),
        &["--user", "ada"],
        "Hello, my name is Ada.\n\nWhat is 2 + 2?\n/exit\nnot asked\n",
    );
    assert!(!stdout.trim().is_empty(), "the answers stream to stdout");
    let id = announced_session(&stderr);
    assert!(
        stderr.contains(&format!("session {id} has 2 turns")),
        "{stderr}"
    );

    let (_, stderr) = chat(data.path(), &["--session", &id], "Thanks!\n");
    assert!(
        stderr.contains("2 earlier turns") && stderr.contains("has 3 turns"),
        "{stderr}"
    );

    let session = json_of(sextant(
        data.path(),
        &[],
        &["sessions", "show", &id, "--json"],
    ));
    let turns = session["turns"].as_array().unwrap();
    let questions: Vec<&str> = turns
        .iter()
        .map(|t| t["question"].as_str().unwrap())
        .collect();
    assert_eq!(
        questions,
        ["Hello, my name is Ada.", "What is 2 + 2?", "Thanks!"]
    );
    assert_eq!(session["user_id"], "ada");
    for turn in turns {
        let trace = turn["trace_id"].as_str().expect("each turn has its trace");
        let spans = json_of(sextant(
            data.path(),
            &[],
            &["traces", "show", trace, "--json"],
        ));
        let root = spans
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["parent_span_id"].is_null())
            .unwrap();
        assert_eq!(root["attributes"]["session.id"], id.as_str());
        assert_eq!(root["attributes"]["gen_ai.conversation.id"], id.as_str());
        assert_eq!(root["attributes"]["user.id"], "ada");
    }
    let listed = json_of(sextant(data.path(), &[], &["sessions", "list", "--json"]));
    assert_eq!(listed[0]["session"]["id"], id.as_str());
    assert_eq!(listed[0]["turns"], 3);

    // Someone else cannot resume Ada's session; an unknown id is named.
    let other = sextant(
        data.path(),
        &[],
        &["chat", "--session", &id, "--user", "bob"],
    );
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        !other.status.success() && err.contains("belongs to user"),
        "{err}"
    );
    let unknown = sextant(data.path(), &[], &["sessions", "show", "nope"]);
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        !unknown.status.success() && err.contains("session `nope` does not exist"),
        "{err}"
    );
}

const PY_SESSION_TRACES: &str = r#"
import json, sys, mlflow
exp = mlflow.get_experiment_by_name(sys.argv[1])
session = sys.argv[2]
found = []
for _ in range(30):
    found = mlflow.search_traces(
        locations=[exp.experiment_id],
        filter_string=f"metadata.`mlflow.trace.session` = '{session}'",
        return_type="list",
    )
    if len(found) >= 3:
        break
    import time; time.sleep(1)
print(json.dumps([
    {"session": t.info.trace_metadata.get("mlflow.trace.session"),
     "user": t.info.trace_metadata.get("mlflow.trace.user")}
    for t in found
]))
"#;

#[test]
#[ignore = "needs a real MLflow server and its Python client: cargo xtask test"]
fn on_mlflow_a_resumed_chats_turns_group_by_session_and_user() {
    let url = mlflow_url();
    let data = tempfile::tempdir().unwrap();
    let experiment = format!("sextant-chat-{}", std::process::id());
    let envs = [
        ("SEXTANT_TRACKING_URI", url.as_str()),
        ("SEXTANT_TRACKING__EXPERIMENT", experiment.as_str()),
    ];
    let (_, stderr) = chat_with(
        data.path(),
        &envs,
        &["--user", "grace"],
        "Hi, I am Grace.\nWhat is 3 + 4?\n",
    );
    let id = announced_session(&stderr);
    // Resumed by another process: the third turn joins the same session in MLflow.
    chat_with(data.path(), &envs, &["--session", &id], "Thanks!\n");
    let seen = python(&url, PY_SESSION_TRACES, &[&experiment, &id]);
    let traces = seen.as_array().unwrap();
    assert_eq!(traces.len(), 3, "{seen}");
    for trace in traces {
        assert_eq!(trace["session"], id.as_str());
        assert_eq!(trace["user"], "grace");
    }
}
