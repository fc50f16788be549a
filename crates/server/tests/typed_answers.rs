//! Typed answers through the service, in-process: the invoke API returns the checked value of an
//! agent with an output schema; the OpenAI-compatible endpoint takes a request's
//! `response_format: json_schema` (passing it to the model and checking the answer against it),
//! refuses a malformed one with 400 naming the parameter, refuses any where the agent keeps its own
//! format, and answers 502 `invalid_output` when the model breaks the schema twice. The model is
//! the scripted OpenAI-compatible server.

use axum::http::StatusCode;
use serde_json::{Value, json};
use sextant_server::{Role, Server};
use sextant_testkit::scripted_model::{Reply, ScriptedModelServer};

mod support;
use support::{add_key, authorized as request, oneshot, settings, shared};

fn city_schema() -> Value {
    json!({"type": "object",
           "properties": {"city": {"type": "string"}, "country": {"type": "string", "enum": ["FR", "JP"]}},
           "required": ["city", "country"], "additionalProperties": false})
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_answers_through_invoke_and_the_openai_endpoint() {
    let shared = shared();
    let model = ScriptedModelServer::start(vec![
        // invoke, on the agent's own schema
        Reply::text(r#"{"city": "Paris", "country": "FR"}"#),
        // chat completions with a request's response_format
        Reply::text(r#"{"city": "Tokyo", "country": "JP"}"#),
        // … and one the model breaks twice
        Reply::text(r#"{"city": "Lyon"}"#),
        Reply::text(r#"{"city": "Lyon", "country": "France"}"#),
    ])
    .await;
    let inline = format!("[output]\nschema = {}\n", toml_inline(&city_schema()));
    sextant_testkit::scripted_agent_file(&shared.agents, "places", &model.url, &[], &inline);
    sextant_testkit::scripted_agent_file(
        &shared.agents,
        "fixed",
        &model.url,
        &[],
        &format!("{inline}allow_request_schema = false\n"),
    );
    let mut settings = settings();
    let key = add_key(&mut settings, "ada", &[Role::User]);
    let server = Server::with_settings(shared.runtime.clone(), settings).unwrap();

    let (status, body) = oneshot(
        &server,
        request(
            "POST",
            "/v1/agents/places/invoke",
            &key,
            Some(json!({"input": "Where is the Louvre?"})),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["output"], json!({"city": "Paris", "country": "FR"}));
    assert_eq!(
        model.received()[0].body["response_format"]["json_schema"]["schema"],
        city_schema()
    );

    let format = json!({"type": "json_schema",
                        "json_schema": {"name": "place", "schema": city_schema(), "strict": true}});
    let completion = |agent: &str, format: Value| {
        request(
            "POST",
            "/v1/chat/completions",
            &key,
            Some(json!({"model": agent, "response_format": format,
                        "messages": [{"role": "user", "content": "Where is Shibuya?"}]})),
        )
    };
    let (status, body) = oneshot(&server, completion("places", format.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(content).unwrap(),
        json!({"city": "Tokyo", "country": "JP"})
    );
    assert_eq!(
        model.received()[1].body["response_format"]["json_schema"]["name"],
        "place"
    );

    // Not a schema a provider can honour: refused before any model call.
    let bad = json!({"type": "json_schema",
                     "json_schema": {"name": "place", "schema": {"type": "object",
                        "properties": {"city": {"type": "string", "pattern": "^[A-Z]"}}}}});
    let (status, body) = oneshot(&server, completion("places", bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["param"], "response_format");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/properties/city/pattern"),
        "{body}"
    );
    // Too big to decode fairly: a client's schema is held to limits.
    let values: Vec<String> = (0..5000).map(|i| format!("v{i}")).collect();
    let huge = json!({"type": "json_schema",
                      "json_schema": {"name": "place", "schema": {"type": "object",
                         "properties": {"city": {"type": "string", "enum": values}}}}});
    let (status, body) = oneshot(&server, completion("places", huge)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most"),
        "{body}"
    );
    // An agent that keeps its own format.
    let (status, body) = oneshot(&server, completion("fixed", format.clone())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allow_request_schema = false"),
        "{body}"
    );
    assert_eq!(model.received().len(), 2, "refused requests reach no model");

    // Broken twice: 502 with the reason.
    let (status, body) = oneshot(&server, completion("places", format)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_output");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/country: must be one of"),
        "{body}"
    );
}

/// `value` as a TOML inline table.
fn toml_inline(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("\"{k}\" = {}", toml_inline(v)))
                .collect();
            format!("{{ {} }}", fields.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_inline).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}
