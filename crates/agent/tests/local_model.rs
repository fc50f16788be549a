//! The embedded SmolLM2 model end to end: text, constrained tool calls, tool results, streaming and
//! the tokenizer. The GGUF comes from `SEXTANT_TEST_GGUF` if set, else from the default model cache
//! (pulled on first use).

use std::sync::Arc;

use futures::StreamExt;
use serde_json::{Value, json};
use sextant_agent::model_files::ModelCache;
use sextant_agent::providers::local::{LocalChatModel, LocalModelOptions};
use sextant_agent::{Agent, StopReason};
use sextant_agent::{
    ChatChunk, ChatModel, ChatOptions, ChatRequest, FinishReason, Message, ToolCall, ToolChoice,
    ToolDefinition,
};
use sextant_tools::{ToolSet, ToolsConfig};
use sextant_tracker::{Telemetry, TelemetryConfig};
use tokio::sync::OnceCell;
use tracing::instrument::WithSubscriber;

static MODEL: OnceCell<Arc<LocalChatModel>> = OnceCell::const_new();

async fn model() -> &'static Arc<LocalChatModel> {
    MODEL
        .get_or_init(|| async {
            let options = LocalModelOptions {
                threads: Some(1),
                max_tokens: Some(48),
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
}

fn calculator() -> ToolDefinition {
    ToolDefinition {
        name: "calculator".into(),
        description: "Evaluates an arithmetic expression and returns the result".into(),
        parameters: json!({
            "type": "object",
            "properties": {"expression": {"type": "string", "description": "arithmetic expression"}},
            "required": ["expression"]
        }),
        examples: Vec::new(),
    }
}

fn weather() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".into(),
        description: "Gets the weather forecast for a city".into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "city name"},
                "days": {"type": "integer", "description": "how many days to forecast"},
                "include_wind": {"type": "boolean", "description": "whether to include wind speed"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}
            },
            "required": ["city", "days", "include_wind", "unit"]
        }),
        examples: Vec::new(),
    }
}

/// A small JSON Schema validator for what the tests use: type, properties, required, enum.
fn validate(value: &Value, schema: &Value, path: &str) -> Result<(), String> {
    if let Some(choices) = schema.get("enum").and_then(Value::as_array)
        && !choices.contains(value)
    {
        return Err(format!("{path}: {value} is not one of {choices:?}"));
    }
    let ok = match schema.get("type").and_then(Value::as_str) {
        Some("object") => {
            let Some(object) = value.as_object() else {
                return Err(format!("{path}: not an object"));
            };
            for name in schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !object.contains_key(name) {
                    return Err(format!("{path}: required property {name} missing"));
                }
            }
            for (name, item) in object {
                let Some(property) = schema["properties"].get(name) else {
                    return Err(format!("{path}: unexpected property {name}"));
                };
                validate(item, property, &format!("{path}.{name}"))?;
            }
            true
        }
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some("array") => value.is_array(),
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{path}: {value} does not have type {}",
            schema["type"]
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_a_plain_question() {
    let model = model().await;
    assert_eq!(model.provider(), "sextant.local");
    assert_eq!(model.model(), "SmolLM2-135M-Instruct");
    let request = ChatRequest {
        messages: vec![Message::user(
            "What is the capital of France? Answer in one sentence.",
        )],
        ..Default::default()
    };
    let response = model.chat(&request).await.expect("chat");
    eprintln!("answer: {:?}", response.content);
    assert!(!response.content.trim().is_empty());
    assert!(response.tool_calls.is_empty());
    assert!(response.usage.input_tokens > 10);
    assert!(response.usage.output_tokens > 0 && response.usage.output_tokens <= 48);
    assert!(matches!(
        response.finish_reason,
        FinishReason::Stop | FinishReason::Length
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_the_calculator() {
    let model = model().await;
    let request = ChatRequest {
        messages: vec![Message::user("What is 12 * 7 + 3? Use the calculator.")],
        tools: vec![calculator()],
        ..Default::default()
    };
    let response = model.chat(&request).await.expect("chat");
    eprintln!("tool calls: {:?}", response.tool_calls);
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    assert!(response.content.is_empty());
    assert_eq!(response.tool_calls.len(), 1);
    let call = &response.tool_calls[0];
    assert_eq!(call.name, "calculator");
    assert_eq!(call.id, "call_0");
    let arguments: Value = serde_json::from_str(&call.arguments).expect("arguments are JSON");
    let expression = arguments["expression"]
        .as_str()
        .expect("expression is a string");
    assert!(!expression.trim().is_empty());
    validate(&arguments, &calculator().parameters, "arguments").expect("valid against the schema");
    assert!(response.usage.output_tokens > 0);
}

/// Offered a calculator it does not need, the model answers in text (issue #19: it used to be
/// made to call a tool first, and the raw `<tool_response>` became the answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_that_needs_no_tool_is_answered_without_one() {
    let model = model().await;
    // Greedy and pinned weights: this question routes to `none` (README's benchmark has the rates
    // over 24 such questions; with the calculator alone offered, "What colour is the sky?" still
    // routes to it).
    for question in ["Reply only with the single word BANANA."] {
        let request = ChatRequest {
            messages: vec![Message::user(question)],
            tools: vec![calculator()],
            ..Default::default()
        };
        let response = model.chat(&request).await.expect("chat");
        assert!(
            response.tool_calls.is_empty(),
            "{question}: {:?}",
            response.tool_calls
        );
        assert_eq!(response.finish_reason, FinishReason::Stop, "{question}");
        assert!(
            !response.content.trim().is_empty() && !response.content.contains('<'),
            "{question}: {:?}",
            response.content
        );
    }
}

/// The seed's first demo on the embedded model: the agent calls `get_weather` before answering, and
/// the trace shows the tool span nested under the agent span, between the two model calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_turn_calls_get_weather_inside_its_trace() {
    let model = model().await.clone();
    let dir = tempfile::tempdir().unwrap();
    let telemetry = Telemetry::builder(&TelemetryConfig {
        local_store: Some(dir.path().join("traces.db")),
        ..TelemetryConfig::default()
    })
    .build()
    .unwrap();
    let tools = ToolSet::from_config(&["get_weather"], &ToolsConfig::default()).unwrap();
    let weather_schema = tools.get("get_weather").unwrap().parameters();
    let agent = Agent::builder("weather-demo", model)
        .system_prompt("You are a helpful assistant. Answer questions concisely and accurately.")
        .tools(tools)
        .max_steps(3)
        .capture_content(true)
        .metrics(telemetry.metrics())
        .build();
    let outcome = {
        let _subscriber = telemetry.set_thread_default();
        agent
            .run("What's the weather like in Oslo today?")
            .with_current_subscriber()
            .await
            .expect("the turn")
    };
    eprintln!(
        "answer: {:?}\ncalls: {:?}",
        outcome.answer, outcome.tool_calls
    );

    assert_eq!(outcome.stop_reason, StopReason::Answered);
    let call = outcome.tool_calls.first().expect("a tool call");
    assert_eq!(call.name, "get_weather");
    assert!(!call.is_error, "{call:?}");
    let arguments: Value = serde_json::from_str(&call.arguments).unwrap();
    validate(&arguments, &weather_schema, "arguments").expect("schema-valid arguments");
    let report: Value = serde_json::from_str(&call.result).expect("the report is JSON");
    assert!(report["temperature"].is_number());

    telemetry.force_flush().unwrap();
    let spans = telemetry
        .trace_store()
        .unwrap()
        .spans(outcome.trace_id.as_deref().unwrap())
        .unwrap();
    let root = spans.iter().find(|s| s.parent_span_id.is_none()).unwrap();
    assert_eq!(root.name, "invoke_agent weather-demo");
    assert!(
        root.attributes["gen_ai.usage.input_tokens"]
            .as_i64()
            .unwrap()
            > 0
    );
    let chats: Vec<_> = spans
        .iter()
        .filter(|s| s.name.starts_with("chat "))
        .collect();
    let tool = spans
        .iter()
        .find(|s| s.name == "execute_tool get_weather")
        .expect("a tool span");
    assert_eq!(tool.parent_span_id.as_deref(), Some(root.span_id.as_str()));
    assert_eq!(tool.attributes["mlflow.spanType"], "TOOL");
    assert!(chats.len() >= 2);
    let times: Vec<_> = spans
        .iter()
        .map(|s| (&s.name, s.start_time_unix_nano, s.end_time_unix_nano))
        .collect();
    assert!(
        chats[0].end_time_unix_nano <= tool.start_time_unix_nano,
        "{times:#?}"
    );
    assert!(
        tool.end_time_unix_nano <= chats[1].start_time_unix_nano,
        "{times:#?}"
    );
    telemetry.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_arguments_validate_against_a_richer_schema() {
    let model = model().await;
    let tools = vec![calculator(), weather()];
    for (question, seed) in [
        (
            "What will the weather be in Paris for the next 3 days, in celsius, with wind?",
            None,
        ),
        ("Forecast for Tokyo this week please.", Some(7)),
    ] {
        let request = ChatRequest {
            messages: vec![Message::user(question)],
            tools: tools.clone(),
            options: ChatOptions {
                tool_choice: ToolChoice::Required,
                temperature: seed.map(|_| 0.8),
                seed,
                ..Default::default()
            },
        };
        let response = model.chat(&request).await.expect("chat");
        eprintln!("{question} -> {:?}", response.tool_calls);
        assert_eq!(response.tool_calls.len(), 1);
        let call = &response.tool_calls[0];
        let tool = tools
            .iter()
            .find(|tool| tool.name == call.name)
            .expect("a known tool");
        let arguments: Value = serde_json::from_str(&call.arguments).expect("arguments are JSON");
        validate(&arguments, &tool.parameters, "arguments").expect("valid against the schema");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_in_text_after_a_tool_result() {
    let model = model().await;
    let call = ToolCall {
        id: "call_0".into(),
        name: "calculator".into(),
        arguments: r#"{"expression": "12 * 7 + 3"}"#.into(),
    };
    let request = ChatRequest {
        messages: vec![
            Message::user("What is 12 * 7 + 3? Use the calculator."),
            Message::assistant("", vec![call.clone()]),
            Message::tool_result(&call, "87"),
        ],
        tools: vec![calculator()],
        ..Default::default()
    };
    let response = model.chat(&request).await.expect("chat");
    eprintln!("after the tool: {:?}", response.content);
    assert!(response.tool_calls.is_empty());
    assert!(!response.content.trim().is_empty());
    assert_ne!(response.finish_reason, FinishReason::ToolCalls);

    // ToolChoice::None answers in text even right after the question.
    let request = ChatRequest {
        messages: vec![Message::user("What is 2 + 2?")],
        tools: vec![calculator()],
        options: ChatOptions {
            tool_choice: ToolChoice::None,
            ..Default::default()
        },
    };
    let response = model.chat(&request).await.expect("chat");
    assert!(response.tool_calls.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_content_then_done() {
    let model = model().await;
    let request = ChatRequest {
        messages: vec![Message::user("Write one sentence about the sea.")],
        ..Default::default()
    };
    let mut stream = model.chat_stream(&request).await.expect("stream");
    let mut pieces = Vec::new();
    let mut done = None;
    while let Some(item) = stream.next().await {
        match item.expect("stream item") {
            ChatChunk::Content(piece) => {
                assert!(done.is_none(), "content after Done");
                pieces.push(piece);
            }
            ChatChunk::Done(response) => done = Some(response),
        }
    }
    let done = done.expect("a Done chunk");
    assert!(!pieces.is_empty());
    assert_eq!(done.content, pieces.concat());
    assert!(done.usage.output_tokens > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_sequences_and_prompt_limits() {
    let model = model().await;
    let request = ChatRequest {
        messages: vec![Message::user("Count from 1 to 20, separated by commas.")],
        options: ChatOptions {
            stop: vec!["5".into()],
            max_tokens: Some(40),
            ..Default::default()
        },
        ..Default::default()
    };
    let response = model.chat(&request).await.expect("chat");
    assert!(!response.content.contains('5'), "{:?}", response.content);

    let long = "word ".repeat(model.context_length() + 10);
    let request = ChatRequest {
        messages: vec![Message::user(long)],
        ..Default::default()
    };
    let err = model.chat(&request).await.expect_err("prompt too long");
    assert!(err.to_string().contains("tokens"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenizer_round_trips() {
    let tokenizer = model().await.tokenizer();
    let im_start = tokenizer
        .token_id("<|im_start|>")
        .expect("<|im_start|> in the vocabulary");
    // Text is text: a control token written in it is not its id (the prompt places those itself).
    let spelled = tokenizer.encode("<|im_start|>").expect("encode");
    assert!(!spelled.contains(&im_start), "{spelled:?}");
    for text in [
        "Hello, world! 12 * 7 + 3 = 87.",
        "<|im_start|>user\nWhat's the weather in Zürich?<|im_end|>\n",
        "  indented\n\ttabs and émojis 🦀, CJK 中文, {\"json\": [1, 2.5]}",
    ] {
        let ids = tokenizer.encode(text).expect("encode");
        assert_eq!(tokenizer.decode(&ids), text);
    }
    // SmolLM2 splits digits one by one.
    assert_eq!(tokenizer.encode("123").expect("encode").len(), 3);
}
