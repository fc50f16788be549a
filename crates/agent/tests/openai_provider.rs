//! The `openai` provider against a real OpenAI-compatible server: the llama.cpp server serving
//! SmolLM2 that `cargo xtask test` starts. The `ollama` provider runs the same checks against the
//! Ollama-API test double in front of that server (no Ollama server can be installed on the CI
//! machines). Every test here needs one of them, so all are `#[ignore]`d: `cargo xtask test` runs them.
//!
//! Model output is not deterministic: these tests assert structure (a tool call with schema-valid
//! arguments, counted tokens, streamed pieces that add up), not wording.

use std::sync::Arc;

use futures::StreamExt;
use sextant_agent::providers::ollama::OllamaChatModel;
use sextant_agent::providers::openai::OpenAiChatModel;
use sextant_agent::{
    Agent, ChatChunk, ChatModel, ChatOptions, ChatRequest, FinishReason, Message, ToolChoice,
    ToolDefinition,
};
use sextant_testkit::{ollama_host, ollama_model, openai_base_url, openai_model};
use sextant_tools::ToolSet;
use sextant_tools::builtin::Calculator;

/// The llama.cpp server. With `force_tool_calls`, the llama.cpp-specific request fields that make
/// the 135M model start its answer with the tool call when one is required (its grammar alone lets
/// it write text first): `chat_template_kwargs.force_tool_call` is read by the tool-capable
/// template that xtask serves.
fn openai(force_tool_calls: bool) -> Arc<dyn ChatModel> {
    let mut model = OpenAiChatModel::new(&openai_base_url(), None, &openai_model());
    if force_tool_calls {
        let extra = serde_json::json!({"parallel_tool_calls": false, "chat_template_kwargs": {"force_tool_call": true}});
        model = model.with_extra_body(extra.as_object().unwrap().clone());
    }
    Arc::new(model)
}

fn ollama() -> Arc<dyn ChatModel> {
    Arc::new(OllamaChatModel::new(&ollama_host(), &ollama_model()).unwrap())
}

fn calculator() -> ToolDefinition {
    use sextant_tools::Tool;
    ToolDefinition {
        name: Calculator.name().into(),
        description: Calculator.description().into(),
        parameters: Calculator.parameters(),
        examples: Vec::new(),
    }
}

fn greedy(max_tokens: u32) -> ChatOptions {
    ChatOptions {
        temperature: Some(0.0),
        max_tokens: Some(max_tokens),
        ..Default::default()
    }
}

async fn plain_chat_counts_tokens(model: Arc<dyn ChatModel>) {
    let request = ChatRequest {
        messages: vec![
            Message::system("You are brief."),
            Message::user("Name one colour."),
        ],
        options: greedy(24),
        ..Default::default()
    };
    let response = model.chat(&request).await.unwrap();
    assert!(!response.content.trim().is_empty(), "{response:?}");
    assert!(response.tool_calls.is_empty());
    assert!(response.usage.input_tokens > 5, "{:?}", response.usage);
    assert!(
        response.usage.output_tokens > 0 && response.usage.output_tokens <= 24,
        "{:?}",
        response.usage
    );
    assert!(
        matches!(
            response.finish_reason,
            FinishReason::Stop | FinishReason::Length
        ),
        "{:?}",
        response.finish_reason
    );
    assert!(!response.model.is_empty());
}

async fn streaming_adds_up(model: Arc<dyn ChatModel>) {
    let request = ChatRequest {
        messages: vec![Message::user("Count from one to five in words.")],
        options: greedy(32),
        ..Default::default()
    };
    let mut stream = model.chat_stream(&request).await.unwrap();
    let mut pieces = Vec::new();
    let mut done = None;
    while let Some(item) = stream.next().await {
        match item.unwrap() {
            ChatChunk::Content(piece) => pieces.push(piece),
            ChatChunk::Done(response) => done = Some(response),
        }
    }
    let done = done.expect("the stream ends with the whole response");
    assert!(pieces.len() > 1, "expected several pieces, got {pieces:?}");
    assert_eq!(pieces.concat(), done.content);
    assert!(done.usage.output_tokens > 0, "{:?}", done.usage);
}

async fn required_tool_call_is_schema_valid(model: Arc<dyn ChatModel>) {
    let request = ChatRequest {
        messages: vec![Message::user("What is 12 * 7 + 3? Use the calculator.")],
        tools: vec![calculator()],
        options: ChatOptions {
            tool_choice: ToolChoice::Required,
            ..greedy(64)
        },
    };
    let response = model.chat(&request).await.unwrap();
    assert_eq!(response.tool_calls.len(), 1, "{response:?}");
    let call = &response.tool_calls[0];
    assert_eq!(call.name, "calculator");
    assert!(!call.id.is_empty());
    let arguments: serde_json::Value =
        serde_json::from_str(&call.arguments).expect("arguments are JSON");
    assert!(
        arguments["expression"]
            .as_str()
            .is_some_and(|e| !e.trim().is_empty()),
        "{arguments}"
    );
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
}

async fn agent_round_trip(model: Arc<dyn ChatModel>) {
    // The first step must call the tool (the small model would not volunteer it); the result goes
    // back to the server as a tool message and the second step answers.
    let agent = Agent::builder("round-trip", model.clone())
        .system_prompt("Use the calculator for arithmetic, then state the result.")
        .tools(ToolSet::new().with(Calculator))
        .options(ChatOptions {
            tool_choice: ToolChoice::Required,
            ..greedy(64)
        })
        .max_steps(2)
        .build();
    let outcome = agent.run("What is 12 * 7 + 3?").await.unwrap();
    assert_eq!(outcome.steps, 2, "{outcome:?}");
    assert_eq!(outcome.tool_calls.len(), 1, "{outcome:?}");
    assert_eq!(outcome.tool_calls[0].name, "calculator");
    assert!(!outcome.answer.trim().is_empty());
    assert!(outcome.usage.input_tokens > 0 && outcome.usage.output_tokens > 0);
}

/// One `#[ignore]`d `#[tokio::test]` per (server, check) pair, ignored for `$needs`.
macro_rules! provider_tests {
    ($needs:literal; $($name:ident: $model:expr => $check:ident;)*) => {$(
        #[tokio::test]
        #[ignore = $needs]
        async fn $name() {
            $check($model).await;
        }
    )*};
}

provider_tests! {
    "needs the llama.cpp server: cargo xtask test";
    openai_plain_chat_counts_tokens: openai(false) => plain_chat_counts_tokens;
    openai_streaming_adds_up: openai(false) => streaming_adds_up;
    openai_required_tool_call_is_schema_valid: openai(true) => required_tool_call_is_schema_valid;
    openai_agent_round_trip: openai(true) => agent_round_trip;
}

provider_tests! {
    "needs the Ollama API test double: cargo xtask test";
    ollama_plain_chat_counts_tokens: ollama() => plain_chat_counts_tokens;
    ollama_streaming_adds_up: ollama() => streaming_adds_up;
    ollama_required_tool_call_is_schema_valid: ollama() => required_tool_call_is_schema_valid;
    ollama_agent_round_trip: ollama() => agent_round_trip;
}
