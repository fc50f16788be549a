//! Approvals over HTTP, in-process: a call that needs approval pauses the turn and the response
//! says what waits; only the turn's owner sees and decides it; a bad decision is refused with the
//! reason; an approval lets the turn finish without repeating the model's first call, and the
//! trace holds the pause, the decision and the rest of the turn. The model is the scripted
//! OpenAI-compatible server, so the calls it asks for are exact.

use axum::http::StatusCode;
use serde_json::json;
use sextant_server::{Role, Server};
use sextant_testkit::scripted_model::{Reply, ScriptedModelServer};

mod support;
use support::{add_key, authorized as request, oneshot, settings, shared};

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_turn_is_decided_by_its_owner_only_and_finishes_in_one_trace() {
    let shared = shared();
    let model = ScriptedModelServer::start(vec![
        Reply::call("calculator", json!({"expression": "6 * 7"})),
        Reply::text("It is 42."),
    ])
    .await;
    sextant_testkit::scripted_agent_file(
        &shared.agents,
        "payer",
        &model.url,
        &["calculator"],
        "[tool_policies.calculator]\napproval = \"always\"\n",
    );
    let mut settings = settings();
    let alice = add_key(&mut settings, "alice", &[Role::User]);
    let bob = add_key(&mut settings, "bob", &[Role::User]);
    let server = Server::with_settings(shared.runtime.clone(), settings).unwrap();

    let (status, paused) = oneshot(
        &server,
        request(
            "POST",
            "/v1/agents/payer/invoke",
            &alice,
            Some(json!({"input": "What is 6 * 7?"})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["stop_reason"], "awaiting_approval");
    let turn_id = paused["turn_id"].as_str().unwrap().to_owned();
    let trace_id = paused["trace_id"].as_str().unwrap().to_owned();
    assert_eq!(paused["pending_approvals"][0]["call_id"], "call_0_0");
    assert_eq!(paused["pending_approvals"][0]["tool"], "calculator");
    assert_eq!(model.received().len(), 1);

    // Another user's key finds nothing, neither the turn nor the way to decide it.
    let turn_path = format!("/v1/turns/{turn_id}");
    let decisions_path = format!("/v1/turns/{turn_id}/decisions");
    let approve = json!({"decisions": [{"call_id": "call_0_0", "decision": "approve"}]});
    let (status, _) = oneshot(&server, request("GET", &turn_path, &bob, None)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = oneshot(
        &server,
        request("POST", &decisions_path, &bob, Some(approve.clone())),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = oneshot(
        &server,
        request("GET", "/v1/turns?status=awaiting_approval", &bob, None),
    )
    .await;
    assert_eq!(listed["data"], json!([]));

    let (status, shown) = oneshot(&server, request("GET", &turn_path, &alice, None)).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["status"], "awaiting_approval");
    let (_, listed) = oneshot(
        &server,
        request("GET", "/v1/turns?status=awaiting_approval", &alice, None),
    )
    .await;
    assert_eq!(listed["data"][0]["turn_id"], turn_id.as_str());

    // Bad decisions are refused, naming what is wrong; the turn still waits.
    for (body, needle) in [
        (
            json!({"decisions": [{"call_id": "call_9_9", "decision": "approve"}]}),
            "no call `call_9_9`",
        ),
        (
            json!({"decisions": [{"call_id": "call_0_0", "decision": "maybe"}]}),
            "not a decision",
        ),
        (
            json!({"decisions": [{"call_id": "call_0_0", "decision": "edit",
                                   "arguments": {"expression": 7}}]}),
            "/expression",
        ),
        (json!({"decisions": []}), "empty"),
    ] {
        let (status, error) = oneshot(
            &server,
            request("POST", &decisions_path, &alice, Some(body.clone())),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
    }
    let (status, bad_id) =
        oneshot(&server, request("GET", "/v1/turns/..%2F..", &alice, None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad_id}");

    let (status, done) = oneshot(
        &server,
        request("POST", &decisions_path, &alice, Some(approve.clone())),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "completed");
    assert_eq!(done["answer"], "It is 42.");
    assert_eq!(done["tool_calls"][0]["result"], "42");
    assert_eq!(done["trace_id"], trace_id.as_str());
    let received = model.received();
    assert_eq!(received.len(), 2, "the model's first call is not repeated");
    let last_messages = received[1].body["messages"].as_array().unwrap();
    assert_eq!(last_messages.last().unwrap()["role"], "tool");
    assert_eq!(last_messages.last().unwrap()["content"], "42");

    // Decided once: a second decision is refused.
    let (status, _) = oneshot(
        &server,
        request("POST", &decisions_path, &alice, Some(approve)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The resumed agent span ends last, just before the answer: the local store may take a
    // moment to write it (spans are exported off the request's path).
    let mut names: Vec<String> = Vec::new();
    for _ in 0..100 {
        let (status, trace) = oneshot(
            &server,
            request("GET", &format!("/v1/traces/{trace_id}"), &alice, None),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{trace}");
        names = trace["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect();
        if names.iter().filter(|n| *n == "invoke_agent payer").count() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    for name in [
        "invoke_agent payer",
        "approval calculator",
        "execute_tool calculator",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(
        names.iter().filter(|n| **n == "invoke_agent payer").count(),
        2,
        "the paused part and the resumed part: {names:?}"
    );
}
