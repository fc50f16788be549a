//! Typed answers: an answer that must be JSON of a schema with nested objects, enums and arrays.
//!
//! - On the embedded local model the answer is decoded under the schema: 20 sampled runs (a seed
//!   each) all come back valid. The model is real; what it writes inside the strings varies.
//! - An agent turn with `run_typed::<T>()` returns a `T`, and its span names the schema.
//! - A model that breaks the schema is told why once and then the turn fails with a clear error
//!   (the scripted OpenAI-compatible server plays that model: no real model breaks a schema on
//!   demand), and the request carries OpenAI's `response_format: json_schema`.
//! - The real llama.cpp server (`response_format`) and the Ollama API (`format`, through the test
//!   double in front of llama.cpp) answer valid JSON: `#[ignore]`d, `cargo xtask test` runs them.
//!
//! Validity is checked by [`check`] below, written for these tests, as well as by the library.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use sextant_agent::model_files::ModelCache;
use sextant_agent::providers::local::{LocalChatModel, LocalModelOptions};
use sextant_agent::providers::ollama::OllamaChatModel;
use sextant_agent::providers::openai::OpenAiChatModel;
use sextant_agent::{
    Agent, AgentError, ChatModel, ChatOptions, ChatRequest, Message, OutputSchema,
};
use sextant_testkit::scripted_model::{Reply, ScriptedModelServer};
use sextant_testkit::{ollama_host, ollama_model, openai_base_url, openai_model};
use tokio::sync::OnceCell;

static MODEL: OnceCell<Arc<LocalChatModel>> = OnceCell::const_new();

async fn local() -> Arc<LocalChatModel> {
    MODEL
        .get_or_init(|| async {
            let options = LocalModelOptions {
                threads: Some(1),
                ..Default::default()
            };
            Arc::new(match std::env::var("SEXTANT_TEST_GGUF") {
                Ok(path) => LocalChatModel::load(path, options).expect("load SEXTANT_TEST_GGUF"),
                Err(_) => {
                    let cache = ModelCache::from_env().expect("model cache");
                    LocalChatModel::load_from_cache(&cache, options)
                        .await
                        .expect("pull and load the default model")
                }
            })
        })
        .await
        .clone()
}

/// Nested objects, enums and arrays.
fn ticket_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 60},
            "priority": {"type": "string", "enum": ["low", "medium", "high"]},
            "reporter": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "maxLength": 40},
                    "team": {"type": "string", "enum": ["billing", "platform", "support"]}
                },
                "required": ["name", "team"],
                "additionalProperties": false
            },
            "labels": {"type": "array", "items": {"type": "string", "maxLength": 20},
                       "minItems": 1, "maxItems": 3},
            "estimate_days": {"type": "integer", "minimum": 0},
            "blocking": {"type": "boolean"}
        },
        "required": ["title", "priority", "reporter", "labels", "estimate_days", "blocking"],
        "additionalProperties": false
    })
}

/// The ticket schema's rules, spelled out by hand.
fn check(ticket: &Value) -> Result<(), String> {
    let object = ticket.as_object().ok_or("not an object")?;
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut expected = vec![
        "blocking",
        "estimate_days",
        "labels",
        "priority",
        "reporter",
        "title",
    ];
    expected.sort();
    let mut sorted = keys.clone();
    sorted.sort();
    if sorted != expected {
        return Err(format!("keys {keys:?}"));
    }
    let title = ticket["title"].as_str().ok_or("title")?;
    if title.chars().count() > 60 {
        return Err("title too long".into());
    }
    if !["low", "medium", "high"].contains(&ticket["priority"].as_str().ok_or("priority")?) {
        return Err(format!("priority {}", ticket["priority"]));
    }
    let reporter = ticket["reporter"].as_object().ok_or("reporter")?;
    if reporter.len() != 2 || !reporter["name"].is_string() {
        return Err(format!("reporter {}", ticket["reporter"]));
    }
    if !["billing", "platform", "support"].contains(&reporter["team"].as_str().ok_or("team")?) {
        return Err(format!("team {}", reporter["team"]));
    }
    let labels = ticket["labels"].as_array().ok_or("labels")?;
    if labels.is_empty() || labels.len() > 3 || !labels.iter().all(Value::is_string) {
        return Err(format!("labels {}", ticket["labels"]));
    }
    if ticket["estimate_days"].as_u64().is_none() {
        return Err(format!("estimate_days {}", ticket["estimate_days"]));
    }
    if !ticket["blocking"].is_boolean() {
        return Err("blocking".into());
    }
    Ok(())
}

fn request(seed: Option<u64>) -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::system("Turn the user's bug report into a ticket, as JSON."),
            Message::user(
                "Grace from the billing team says invoices show the wrong VAT since Monday; \
                 customers are complaining and it blocks the month-end close.",
            ),
        ],
        tools: Vec::new(),
        options: ChatOptions {
            temperature: seed.map(|_| 0.9),
            seed,
            max_tokens: Some(160),
            output_schema: Some(OutputSchema::new("ticket", ticket_schema()).unwrap()),
            ..ChatOptions::default()
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_model_answers_valid_json_on_every_one_of_20_sampled_runs() {
    let model = local().await;
    let schema = OutputSchema::new("ticket", ticket_schema()).unwrap();
    let mut distinct = std::collections::HashSet::new();
    for seed in 0..20 {
        let response = model.chat(&request(Some(seed))).await.expect("chat");
        assert!(response.tool_calls.is_empty());
        let value: Value = serde_json::from_str(&response.content)
            .unwrap_or_else(|e| panic!("seed {seed}: not JSON ({e}): {}", response.content));
        check(&value).unwrap_or_else(|e| panic!("seed {seed}: {e}: {value}"));
        schema
            .parse(&response.content)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        distinct.insert(response.content);
    }
    // Sampling does vary the answers: the schema, not one memorised string, makes them valid.
    assert!(distinct.len() > 1, "20 seeds gave one answer");
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Team {
    Billing,
    Platform,
    Support,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Reporter {
    name: String,
    team: Team,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Ticket {
    title: String,
    reporter: Reporter,
    labels: Vec<String>,
    blocking: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_typed_returns_the_rust_value_from_the_local_model() {
    let agent = Agent::builder("triage", local().await)
        .system_prompt("Turn the user's bug report into a ticket, as JSON.")
        .options(ChatOptions {
            temperature: Some(0.0),
            max_tokens: Some(160),
            ..ChatOptions::default()
        })
        .build();
    let (ticket, outcome) = agent
        .run_typed::<Ticket>("Grace (billing) reports that the VAT on invoices is wrong.")
        .await
        .expect("a typed answer");
    assert!(!ticket.title.is_empty(), "{ticket:?}");
    assert!(!ticket.labels.is_empty(), "{ticket:?}");
    let _ = (
        &ticket.reporter.name,
        &ticket.reporter.team,
        ticket.blocking,
    );
    assert_eq!(outcome.steps, 1, "valid the first time: no retry");
    let output = outcome.output.expect("the value");
    assert_eq!(
        serde_json::from_str::<Value>(&outcome.answer).unwrap(),
        output,
        "the answer is the value's JSON"
    );
}

fn scripted_agent(url: &str, schema: &OutputSchema) -> Agent {
    let model = Arc::new(OpenAiChatModel::new(url, None, "scripted"));
    Agent::builder("triage", model)
        .system_prompt("Answer with a ticket.")
        .output_schema(schema.clone())
        .build()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_that_breaks_the_schema_is_sent_back_once_with_the_reason() {
    let schema = OutputSchema::new("ticket", ticket_schema()).unwrap();
    let valid = json!({"title": "VAT wrong", "priority": "high",
                       "reporter": {"name": "Grace", "team": "billing"},
                       "labels": ["vat"], "estimate_days": 2, "blocking": true});
    let mut wrong = valid.clone();
    wrong["priority"] = json!("urgent");
    let server = ScriptedModelServer::start(vec![
        Reply::text(&wrong.to_string()),
        Reply::text(&valid.to_string()),
    ])
    .await;
    let outcome = scripted_agent(&server.url, &schema)
        .run("VAT is wrong on invoices")
        .await
        .expect("the second answer is valid");
    assert_eq!(outcome.output, Some(valid));
    assert_eq!(outcome.steps, 2);

    let received = server.received();
    // OpenAI's structured outputs, strict because every object closes its properties.
    let format = &received[0].body["response_format"];
    assert_eq!(format["type"], "json_schema", "{format}");
    assert_eq!(format["json_schema"]["name"], "ticket");
    assert_eq!(format["json_schema"]["strict"], true);
    assert_eq!(format["json_schema"]["schema"], ticket_schema());
    // The retry tells the model what was wrong, and where.
    let retry = received[1].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["content"]
        .to_string();
    assert!(
        retry.contains("/priority") && retry.contains("\\\"urgent\\\""),
        "{retry}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_broken_answer_fails_the_turn_saying_where() {
    let schema = OutputSchema::new("ticket", ticket_schema()).unwrap();
    let server = ScriptedModelServer::start(vec![
        Reply::text("Sure! The ticket is about VAT."),
        Reply::text(r#"{"title": "VAT"}"#),
    ])
    .await;
    let error = scripted_agent(&server.url, &schema)
        .run("VAT is wrong on invoices")
        .await
        .expect_err("two broken answers");
    assert!(
        matches!(error, AgentError::InvalidOutput { .. }),
        "{error:?}"
    );
    assert_eq!(error.error_type(), "invalid_output");
    assert_eq!(
        error.to_string(),
        "agent `triage`: the answer does not follow the output schema `ticket` after a retry: \
         the answer: the required property `priority` is missing"
    );
    assert_eq!(server.received().len(), 2, "one retry, no more");
}

async fn assert_valid_from(model: Arc<dyn ChatModel>, runs: u64) {
    let schema = OutputSchema::new("ticket", ticket_schema()).unwrap();
    for seed in 0..runs {
        let response = model.chat(&request(Some(seed))).await.expect("chat");
        let value = schema
            .parse(&response.content)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}: {}", response.content));
        check(&value).unwrap_or_else(|e| panic!("seed {seed}: {e}: {value}"));
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the llama.cpp server: cargo xtask test"]
async fn the_llama_cpp_server_answers_valid_json_through_response_format() {
    let model = Arc::new(OpenAiChatModel::new(
        &openai_base_url(),
        None,
        &openai_model(),
    ));
    assert_valid_from(model, 5).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the Ollama API: cargo xtask test"]
async fn the_ollama_api_answers_valid_json_through_format() {
    let model = Arc::new(OllamaChatModel::new(&ollama_host(), &ollama_model()).unwrap());
    assert_valid_from(model, 5).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_valid_typed_answer_is_streamed() {
    let schema = OutputSchema::new("ticket", ticket_schema()).unwrap();
    let valid = json!({"title": "VAT wrong", "priority": "high",
                       "reporter": {"name": "Grace", "team": "billing"},
                       "labels": ["vat"], "estimate_days": 2, "blocking": true});
    let server = ScriptedModelServer::start(vec![
        Reply::text("Sure! Here is the ticket you asked for."),
        Reply::text(&valid.to_string()),
    ])
    .await;
    let streamed = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = streamed.clone();
    let on_content = move |piece: &str| sink.lock().unwrap().push_str(piece);
    let outcome = scripted_agent(&server.url, &schema)
        .run_turn(
            &[],
            "VAT is wrong on invoices",
            &Default::default(),
            Some(&on_content),
        )
        .await
        .expect("the second answer is valid");
    let streamed = streamed.lock().unwrap().clone();
    assert_eq!(
        serde_json::from_str::<Value>(&streamed).unwrap(),
        valid,
        "{streamed}"
    );
    assert_eq!(outcome.answer, streamed);
}
