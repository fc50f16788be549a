//! The agent loop's behaviour, driven by the scripted test model (instant, deterministic answers and
//! injected malformed tool calls that a real model cannot be made to produce on demand).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sextant_agent::testing::ScriptedChatModel;
use sextant_agent::{Agent, ChatError, Role, StopReason, ToolChoice};
use sextant_tools::{Tool, ToolError, ToolLimits, ToolSet, builtin::Calculator, tool_fn};

/// A tool whose calls wait until `parties` calls are in flight at once: it only completes if the
/// agent runs the calls of one step concurrently.
struct RendezvousTool {
    barrier: Arc<tokio::sync::Barrier>,
}

#[async_trait]
impl Tool for RendezvousTool {
    fn name(&self) -> &str {
        "rendezvous"
    }
    fn description(&self) -> &str {
        "waits for its sibling calls"
    }
    fn parameters(&self) -> serde_json::Value {
        serde_json::json!({"type": "object", "properties": {}})
    }
    async fn call(&self, _: serde_json::Value) -> Result<String, ToolError> {
        match tokio::time::timeout(Duration::from_secs(10), self.barrier.wait()).await {
            Ok(_) => Ok("met".into()),
            Err(_) => Err(ToolError::Failed(
                "the sibling calls never arrived: calls ran one after another".into(),
            )),
        }
    }
}

/// Arguments of a tool that takes none.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Empty {}

fn agent(model: ScriptedChatModel, tools: ToolSet, max_steps: u32) -> Agent {
    Agent::builder("test-agent", Arc::new(model))
        .system_prompt("be brief")
        .tools(tools)
        .max_steps(max_steps)
        .build()
}

#[tokio::test]
async fn tool_results_go_back_to_the_model_and_the_answer_comes_out() {
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[("calculator", r#"{"expression": "12 * 7 + 3"}"#)])
        .then_text("It is 87.");
    let requests = model.requests();
    let outcome = agent(model, ToolSet::new().with(Calculator), 4)
        .run("What is 12 * 7 + 3?")
        .await
        .unwrap();

    assert_eq!(outcome.answer, "It is 87.");
    assert_eq!(outcome.stop_reason, StopReason::Answered);
    assert_eq!(outcome.steps, 2);
    assert_eq!(outcome.tool_calls.len(), 1);
    assert_eq!(outcome.tool_calls[0].result, "87");
    assert!(!outcome.tool_calls[0].is_error);
    // Scripted usage is 20 in / 10 out for the tool call, 20 in / 3 words out for the answer.
    assert_eq!(
        (outcome.usage.input_tokens, outcome.usage.output_tokens),
        (40, 13)
    );

    let requests = requests.lock().unwrap();
    let second = &requests[1].messages;
    let tool_message = second
        .iter()
        .find(|m| m.role == Role::Tool)
        .expect("the tool result is sent back");
    assert_eq!(tool_message.content, "87");
    assert_eq!(
        tool_message.tool_call_id.as_deref(),
        Some(outcome.tool_calls[0].id.as_str())
    );
    assert_eq!(requests[0].tools.len(), 1);
    assert_eq!(requests[0].messages[0].role, Role::System);
}

#[tokio::test]
async fn bad_tool_calls_become_error_results_not_failures() {
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[
            ("teleport", r#"{"to": "mars"}"#),
            ("calculator", r#"{"expression": "1 +"#),
            ("calculator", r#"{"expression": "1 / 0"}"#),
            ("calculator", r#"{"formula": "1"}"#),
            ("calculator", r#"{"expression": 12}"#),
        ])
        .then_text("I could not compute it.");
    let requests = model.requests();
    let tools = ToolSet::new().with(Calculator).with_max_parallel(5);
    let outcome = agent(model, tools, 3).run("?").await.unwrap();

    assert_eq!(outcome.stop_reason, StopReason::Answered);
    let results: Vec<(&str, bool)> = outcome
        .tool_calls
        .iter()
        .map(|r| (r.result.as_str(), r.is_error))
        .collect();
    assert!(results.iter().all(|(_, is_error)| *is_error), "{results:?}");
    assert!(
        results[0].0.contains("no tool `teleport`") && results[0].0.contains("calculator"),
        "{results:?}"
    );
    assert!(results[1].0.contains("not valid JSON"), "{results:?}");
    assert!(results[2].0.contains("division by zero"), "{results:?}");
    assert!(
        results[3].0.contains("invalid arguments")
            && results[3].0.contains("`expression` is missing"),
        "{results:?}"
    );
    // Checked against the schema the model was shown, with the place and the problem named.
    assert_eq!(
        results[4].0,
        "error: invalid arguments: /expression: expected a string, got the number 12"
    );
    // Every call got its own result message, in order.
    let requests = requests.lock().unwrap();
    let tool_messages: Vec<_> = requests[1]
        .messages
        .iter()
        .filter(|m| m.role == Role::Tool)
        .collect();
    assert_eq!(tool_messages.len(), 5);
}

#[tokio::test]
async fn every_limit_hit_reaches_the_model_and_the_record() {
    // A tool that sleeps past its timeout, and one whose result is too long.
    let slow = tool_fn("slow", "Sleeps.", |_: Empty| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok::<_, ToolError>("late".into())
    });
    let verbose = tool_fn("verbose", "Talks.", |_: Empty| async {
        Ok::<_, ToolError>("word ".repeat(1000))
    });
    let tools = ToolSet::new()
        .with(slow)
        .with(verbose)
        .with_limits(
            "slow",
            ToolLimits {
                timeout: Duration::from_millis(50),
                max_result_chars: 1000,
            },
        )
        .with_default_limits(ToolLimits {
            timeout: Duration::from_secs(5),
            max_result_chars: 100,
        })
        .with_max_parallel(2);
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[("slow", "{}"), ("verbose", "{}"), ("verbose", "{}")])
        .then_text("Done.");
    let outcome = agent(model, tools, 3).run("?").await.unwrap();

    let calls = &outcome.tool_calls;
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].error_type.as_deref(), Some("timeout"));
    assert!(
        calls[0].is_error && calls[0].result.contains("did not finish within 0.05 s"),
        "{calls:?}"
    );
    assert_eq!(calls[1].error_type.as_deref(), Some("result_truncated"));
    assert!(!calls[1].is_error);
    assert!(
        calls[1].result.contains("[result truncated: showing"),
        "{calls:?}"
    );
    assert!(calls[1].result.chars().count() < 200, "{calls:?}");
    assert_eq!(
        calls[2].error_type.as_deref(),
        Some("max_parallel_exceeded")
    );
    assert!(
        calls[2]
            .result
            .contains("at most 2 tool calls run per step"),
        "{calls:?}"
    );
}

#[tokio::test]
async fn calls_of_one_step_run_concurrently() {
    let tool = RendezvousTool {
        barrier: Arc::new(tokio::sync::Barrier::new(3)),
    };
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[
            ("rendezvous", "{}"),
            ("rendezvous", "{}"),
            ("rendezvous", "{}"),
        ])
        .then_text("done");
    let outcome = agent(model, ToolSet::new().with(tool), 3)
        .run("go")
        .await
        .unwrap();
    let results: Vec<&str> = outcome
        .tool_calls
        .iter()
        .map(|r| r.result.as_str())
        .collect();
    assert_eq!(results, ["met", "met", "met"]);
}

#[tokio::test]
async fn the_last_step_forbids_tools_and_a_stubborn_model_stops_at_max_steps() {
    let model =
        ScriptedChatModel::new().then_tool_calls(&[("calculator", r#"{"expression": "1+1"}"#)]);
    let requests = model.requests();
    let outcome = agent(model, ToolSet::new().with(Calculator), 3)
        .run("loop forever")
        .await
        .unwrap();
    assert_eq!(outcome.stop_reason, StopReason::MaxSteps);
    assert_eq!(outcome.steps, 3);
    let requests = requests.lock().unwrap();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].options.tool_choice, ToolChoice::Auto);
    assert_eq!(requests[2].options.tool_choice, ToolChoice::None);
    // The calls of the last step, which was told to answer, are not run; the answer says why
    // instead of being the last tool result ("2").
    assert_eq!(outcome.tool_calls.len(), 2);
    assert_ne!(outcome.answer, "2");
    assert!(
        outcome.answer.contains("ran out of steps")
            && outcome.answer.contains("allows 3 model calls"),
        "{}",
        outcome.answer
    );
    // The conversation ends with that answer and no tool call left without its result.
    let last = outcome.messages.last().unwrap();
    assert_eq!(last.role, Role::Assistant);
    assert_eq!(last.content, outcome.answer);
    assert!(last.tool_calls.is_empty());
}

#[tokio::test]
async fn a_turn_out_of_steps_never_answers_with_a_tool_error() {
    // Every step asks for a tool that fails: the old loop answered with its `error:` text.
    let model = ScriptedChatModel::new().then_tool_calls(&[("teleport", "{}")]);
    let streamed = std::sync::Mutex::new(String::new());
    let on_content = |piece: &str| streamed.lock().unwrap().push_str(piece);
    let outcome = agent(model, ToolSet::new().with(Calculator), 2)
        .run_turn(&[], "go", &Default::default(), Some(&on_content as _))
        .await
        .unwrap();
    assert_eq!(outcome.stop_reason, StopReason::MaxSteps);
    assert!(outcome.tool_calls[0].is_error);
    assert!(!outcome.answer.starts_with("error:"), "{}", outcome.answer);
    assert!(
        outcome.answer.contains("ran out of steps"),
        "{}",
        outcome.answer
    );
    // A streaming caller is told the same answer.
    assert_eq!(*streamed.lock().unwrap(), outcome.answer);
}

#[tokio::test]
async fn a_model_failure_fails_the_turn_with_the_agent_named() {
    let model = ScriptedChatModel::new().then_error(ChatError::Http {
        provider: "scripted".into(),
        status: 400,
        message: "context length exceeded".into(),
    });
    let error = agent(model, ToolSet::new(), 2).run("?").await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("test-agent") && text.contains("context length exceeded"),
        "{text}"
    );
}

/// A turn past its `[budget]` stops before the next model call, with the budget stop reason and
/// an answer that says which limit; a priced turn's cost is summed over its calls.
#[tokio::test]
async fn a_turn_over_its_budget_stops_before_the_next_model_call() {
    use sextant_agent::budget::Budget;
    use sextant_agent::prices::{PriceTable, PricesConfig};
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[("calculator", r#"{"expression": "1+1"}"#)])
        .then_tool_calls(&[("calculator", r#"{"expression": "2+2"}"#)])
        .then_text("done");
    let calls = model.call_counter();
    let prices = PriceTable::load(&PricesConfig {
        file: None,
        models: vec![sextant_agent::prices::ModelPrice {
            provider: "*".into(),
            model: "scripted".into(),
            input: 1.0,
            cached_input: None,
            output: 2.0,
        }],
    })
    .unwrap();
    let agent = Agent::builder("thrifty", Arc::new(model))
        .tools(ToolSet::new().with(Calculator))
        .prices(Arc::new(prices))
        .budget(Budget {
            max_tokens_per_turn: Some(50),
            ..Budget::default()
        })
        .build();
    let outcome = agent.run("What is 1 + 1?").await.unwrap();
    assert_eq!(outcome.stop_reason, StopReason::Budget);
    // Two calls of 30 tokens: the second crossed 50, so no third call was made.
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(outcome.usage.total(), 60);
    assert!(
        outcome
            .answer
            .contains("60 tokens of its budget of 50 per turn"),
        "{}",
        outcome.answer
    );
    // 20 input at 1.0 and 10 output at 2.0 per million, twice.
    assert_eq!(outcome.usage.cost_nanos, Some(2 * (20_000 + 20_000)));
}
