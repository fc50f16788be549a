//! Agents calling agents on the scripted test model: as tools (nested spans, tokens rolled up,
//! the depth limit ending recursion), by handoff (the target answers, a span names both), and
//! from agent files (`agents = [...]`, `handoffs = [...]`) with their errors.

use std::sync::Arc;

use sextant_agent::sub_agent::AgentTool;
use sextant_agent::testing::ScriptedChatModel;
use sextant_agent::{Agent, AgentConfig, BuildContext, TurnContext};
use sextant_tracker::{StoredSpan, Telemetry, TelemetryConfig};

fn span<'a>(spans: &'a [StoredSpan], name: &str) -> &'a StoredSpan {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span `{name}` in {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

#[test]
fn an_agent_as_a_tool_runs_nested_and_its_tokens_count() {
    let dir = tempfile::tempdir().unwrap();
    let telemetry = Telemetry::builder(&TelemetryConfig {
        local_store: Some(dir.path().join("traces.db")),
        ..TelemetryConfig::default()
    })
    .build()
    .unwrap();
    let _subscriber = telemetry.set_thread_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let researcher = Agent::builder(
        "researcher",
        Arc::new(ScriptedChatModel::new().then_text("Paris is the capital.")),
    )
    .build();
    let lead_model = ScriptedChatModel::new()
        .then_tool_calls(&[("researcher", r#"{"input": "capital of France?"}"#)])
        .then_text("The capital is Paris.");
    let requests = lead_model.requests();
    let lead = Agent::builder("lead", Arc::new(lead_model))
        .sub_agent(Arc::new(AgentTool::new(
            Arc::new(researcher),
            "Finds facts",
        )))
        .build();
    let outcome = runtime
        .block_on(lead.run("What is the capital of France?"))
        .unwrap();
    assert_eq!(outcome.answer, "The capital is Paris.");
    assert_eq!(outcome.tool_calls[0].result, "Paris is the capital.");
    // The model saw the agent as a tool with an `input`.
    let offered = &requests.lock().unwrap()[0].tools;
    let tool = offered.iter().find(|t| t.name == "researcher").unwrap();
    assert!(tool.description.contains("Finds facts"));
    assert_eq!(tool.parameters["required"][0], "input");
    // Three model calls of 20 input tokens: the researcher's one counts in the lead's usage.
    assert_eq!(outcome.usage.input_tokens, 60);
    assert_eq!(outcome.tool_calls[0].usage.unwrap().input_tokens, 20);

    telemetry.force_flush().unwrap();
    let spans = telemetry
        .trace_store()
        .unwrap()
        .spans(outcome.trace_id.as_deref().unwrap())
        .unwrap();
    let root = span(&spans, "invoke_agent lead");
    assert_eq!(root.attributes["gen_ai.usage.input_tokens"], 60);
    let tool = span(&spans, "execute_tool researcher");
    assert_eq!(tool.parent_span_id.as_deref(), Some(root.span_id.as_str()));
    let nested = span(&spans, "invoke_agent researcher");
    assert_eq!(
        nested.parent_span_id.as_deref(),
        Some(tool.span_id.as_str())
    );
    assert_eq!(nested.attributes["sextant.agent.depth"], 1);
}

#[test]
fn recursion_stops_at_the_depth_limit_and_handoffs_answer_for_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let telemetry = Telemetry::builder(&TelemetryConfig {
        local_store: Some(dir.path().join("traces.db")),
        ..TelemetryConfig::default()
    })
    .build()
    .unwrap();
    let _subscriber = telemetry.set_thread_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // An agent file that names itself: the model always asks it again.
    let agents = dir.path().join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::write(
        agents.join("echo.toml"),
        "name = \"echo\"\nagents = [\"echo\"]\nmax_depth = 2\n[model]\nprovider = \"local\"\nname = \"m\"\n",
    )
    .unwrap();
    let config = AgentConfig::load(&agents.join("echo.toml")).unwrap();
    assert_eq!(config.agents.len(), 1);
    // A file naming an agent that does not exist fails to build, naming the entry.
    std::fs::write(
        agents.join("lost.toml"),
        "name = \"lost\"\nagents = [\"ghost\"]\n[model]\nprovider = \"local\"\nname = \"m\"\n",
    )
    .unwrap();
    let lost = AgentConfig::load(&agents.join("lost.toml")).unwrap();
    let error = runtime
        .block_on(lost.build(&BuildContext::new(dir.path())))
        .err()
        .expect("a build error")
        .to_string();
    assert!(
        error.contains("agents `ghost`") && error.contains("ghost.toml"),
        "{error}"
    );
    // A remote agent cannot be handed a conversation.
    std::fs::write(
        agents.join("bad.toml"),
        "name = \"bad\"\nhandoffs = [\"http://127.0.0.1:9/a2a/x/\"]\n[model]\nprovider = \"local\"\nname = \"m\"\n",
    )
    .unwrap();
    let error = AgentConfig::load(&agents.join("bad.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("handoffs") && error.contains("remote"),
        "{error}"
    );

    // Depth: the deepest call is refused and the model is told so.
    let deepest = Agent::builder(
        "inner",
        Arc::new(
            ScriptedChatModel::new()
                .then_tool_calls(&[("inner", r#"{"input": "again"}"#)])
                .then_text("done"),
        ),
    )
    .max_depth(1)
    .build();
    let inner = Arc::new(deepest);
    let outer = Agent::builder(
        "outer",
        Arc::new(
            ScriptedChatModel::new()
                .then_tool_calls(&[("inner", r#"{"input": "go"}"#)])
                .then_text("finished"),
        ),
    )
    .sub_agent(Arc::new(AgentTool::new(inner.clone(), "itself")))
    .max_depth(1)
    .build();
    // `inner` (depth 1) may not call further: it asks for `inner`, which is not its tool…
    let outcome = runtime.block_on(outer.run("start")).unwrap();
    assert_eq!(outcome.answer, "finished");
    // …and an agent at its limit that does name a sub-agent is refused with a reason.
    let at_limit = Agent::builder(
        "at_limit",
        Arc::new(
            ScriptedChatModel::new()
                .then_tool_calls(&[("inner", r#"{"input": "go"}"#)])
                .then_text("stopped"),
        ),
    )
    .sub_agent(Arc::new(AgentTool::new(inner, "itself")))
    .max_depth(1)
    .build();
    let deep = TurnContext {
        depth: 1,
        ..TurnContext::default()
    };
    let outcome = runtime
        .block_on(at_limit.run_turn(&[], "start", &deep, None))
        .unwrap();
    assert_eq!(outcome.tool_calls[0].error_type.as_deref(), Some("refused"));
    assert!(
        outcome.tool_calls[0].result.contains("levels deep"),
        "{}",
        outcome.tool_calls[0].result
    );

    // Handoff: the triage agent hands over; billing answers with the earlier turns.
    let billing_model = ScriptedChatModel::new().then_text("Your invoice is paid.");
    let billing_requests = billing_model.requests();
    let billing = Agent::builder("billing", Arc::new(billing_model))
        .system_prompt("You handle billing.")
        .build();
    let triage = Agent::builder(
        "triage",
        Arc::new(ScriptedChatModel::new().then_tool_calls(&[("transfer_to_billing", "{}")])),
    )
    .handoff(Arc::new(AgentTool::new(
        Arc::new(billing),
        "Billing questions",
    )))
    .build();
    let history = vec![
        sextant_agent::Message::user("Hi"),
        sextant_agent::Message::assistant("Hello!", Vec::new()),
    ];
    let outcome = runtime
        .block_on(triage.run_turn(
            &history,
            "Is my invoice paid?",
            &TurnContext::default(),
            None,
        ))
        .unwrap();
    assert_eq!(outcome.agent, "billing");
    assert_eq!(outcome.answer, "Your invoice is paid.");
    assert_eq!(outcome.steps, 2);
    assert_eq!(outcome.usage.input_tokens, 40);
    let seen = &billing_requests.lock().unwrap()[0].messages;
    assert_eq!(
        seen.len(),
        4,
        "system, the two earlier messages, the question"
    );
    telemetry.force_flush().unwrap();
    let spans = telemetry
        .trace_store()
        .unwrap()
        .spans(outcome.trace_id.as_deref().unwrap())
        .unwrap();
    let handoff = span(&spans, "handoff billing");
    assert_eq!(handoff.attributes["sextant.handoff.from"], "triage");
    assert_eq!(handoff.attributes["sextant.handoff.to"], "billing");
    let target = span(&spans, "invoke_agent billing");
    assert_eq!(
        target.parent_span_id.as_deref(),
        Some(handoff.span_id.as_str())
    );
}
