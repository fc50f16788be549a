//! `POST /v1/workflows/{name}/invoke` in-process: behind the keys, names only files of
//! `workflows_dir`, answers with the output, the nodes and the trace, whose owner may read it.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sextant_server::{Role, Server};

mod support;
use support::{add_key, oneshot, settings, shared};

fn invoke(name: &str, key: Option<&str>, body: Value) -> Request<Body> {
    let mut request = Request::post(format!("/v1/workflows/{name}/invoke"))
        .header("content-type", "application/json")
        .header("host", "127.0.0.1");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    request.body(Body::from(body.to_string())).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_workflow_runs_behind_the_keys_and_its_caller_reads_its_trace() {
    let shared = shared();
    // Beside the agent files, so `agent = "tiny"` finds tiny.toml.
    std::fs::write(
        shared.agents.join("relay.toml"),
        "name = \"relay\"\nsteps = [\"greet\", \"shout\"]\n\
         [nodes.greet]\nagent = \"tiny\"\ninput = \"Say hello to {{ input }}.\"\n\
         [nodes.shout]\ntool = \"calculator\"\narguments = { expression = \"6 * 7\" }\n",
    )
    .unwrap();
    let mut settings = settings();
    settings.workflows_dir = Some(shared.agents.clone());
    let alice = add_key(&mut settings, "alice", &[Role::User]);
    let bob = add_key(&mut settings, "bob", &[Role::User]);
    let server = Server::with_settings(shared.runtime.clone(), settings).unwrap();

    let (status, _) = oneshot(&server, invoke("relay", None, json!({"input": "Ada"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for name in ["nobody", "..%2Fetc%2Fpasswd", ".hidden"] {
        let (status, body) =
            oneshot(&server, invoke(name, Some(&alice), json!({"input": "x"}))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{name}: {body}");
    }
    let (status, body) =
        oneshot(&server, invoke("relay", Some(&alice), json!({"input": ""}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, body) = oneshot(
        &server,
        invoke("relay", Some(&alice), json!({"input": "Ada"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["workflow"], "relay");
    assert_eq!(body["output"], "42");
    let nodes: Vec<&str> = body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["greet", "shout"]);
    assert!(
        body["usage"]["input_tokens"].as_u64().unwrap() > 0,
        "{body}"
    );
    let trace_id = body["trace_id"].as_str().unwrap().to_owned();

    let read = |key: &str| {
        Request::get(format!("/v1/traces/{trace_id}"))
            .header("host", "127.0.0.1")
            .header("authorization", format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, trace) = oneshot(&server, read(&alice)).await;
    assert_eq!(status, StatusCode::OK, "{trace}");
    let names: Vec<&str> = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for expected in [
        "POST /v1/workflows/{name}/invoke",
        "invoke_workflow relay",
        "node greet",
        "invoke_agent tiny",
        "node shout",
        "execute_tool calculator",
    ] {
        assert!(names.contains(&expected), "{expected} not in {names:?}");
    }
    // Bob does not see Alice's workflow run.
    let (status, _) = oneshot(&server, read(&bob)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
