//! Workflows on the scripted test model (exact structure, instant): every node kind, a failing
//! node, cancellation, and the tracking run's per-node metrics and artefacts — through the real
//! telemetry pipeline into the real local trace store and the real local tracking store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sextant_agent::error::ChatError;
use sextant_agent::sub_agent::{AgentTool, SubAgent};
use sextant_agent::testing::ScriptedChatModel;
use sextant_agent::workflow::{Workflow, WorkflowConfig, WorkflowError, log_workflow};
use sextant_agent::{Agent, BuildContext, TurnContext};
use sextant_tracker::tracking::{RunSpec, RunStatus};
use sextant_tracker::{StoredSpan, Telemetry, TelemetryConfig};

fn agent(name: &str, model: ScriptedChatModel) -> Arc<dyn SubAgent> {
    let agent = Agent::builder(name, Arc::new(model))
        .capture_content(true)
        .build();
    Arc::new(AgentTool::new(Arc::new(agent), format!("the {name}")))
}

fn telemetry(dir: &std::path::Path) -> sextant_tracker::TelemetryGuard {
    Telemetry::builder(&TelemetryConfig {
        local_store: Some(dir.join("traces.db")),
        ..TelemetryConfig::default()
    })
    .build()
    .unwrap()
}

fn spans(telemetry: &sextant_tracker::TelemetryGuard, trace_id: &str) -> Vec<StoredSpan> {
    telemetry.force_flush().unwrap();
    telemetry.trace_store().unwrap().spans(trace_id).unwrap()
}

fn span<'a>(spans: &'a [StoredSpan], name: &str) -> &'a StoredSpan {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span `{name}` in {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

const PIPELINE: &str = r#"
name = "pipeline"
steps = ["research", "fan", "review", "route", "compute", "inner"]
output = "{{ review }} | {{ route }} | {{ compute }} | {{ inner }}"

[nodes.research]
agent = "researcher"
input = "Find facts: {{ input }}"

[nodes.fan]
parallel = ["left", "right"]

[nodes.left]
agent = "left"
input = "{{ research }}"

[nodes.right]
agent = "right"
input = "{{ research }}"

[nodes.review]
loop = ["critique"]
max_iterations = 3
until = { node = "critique", contains = "APPROVED" }

[nodes.critique]
agent = "critic"
input = "Round {{ iteration }}: {{ fan }}"

[nodes.route]
router = { rules = [{ when = { node = "input", contains = "invoice" }, route = "billing" }], default = "other" }
routes = { billing = "billing", other = "triaged" }

[nodes.billing]
agent = "billing"

[nodes.triaged]
router = { agent = "triage", default = "other" }
routes = { tech = "tech", other = "billing" }

[nodes.tech]
agent = "tech"

[nodes.compute]
tool = "calculator"
arguments = { expression = "6 * 7" }

[nodes.inner]
workflow = "inner"
input = "{{ compute }}"
"#;

const INNER: &str = r#"
name = "inner"
steps = ["echo"]

[nodes.echo]
agent = "echo"
input = "inner got {{ input }}"
"#;

fn pipeline_agents() -> HashMap<String, Arc<dyn SubAgent>> {
    HashMap::from([
        (
            "researcher".to_owned(),
            agent("researcher", ScriptedChatModel::new().then_text("facts")),
        ),
        (
            "left".to_owned(),
            agent("left", ScriptedChatModel::new().then_text("left view")),
        ),
        (
            "right".to_owned(),
            agent("right", ScriptedChatModel::new().then_text("right view")),
        ),
        (
            "critic".to_owned(),
            agent(
                "critic",
                ScriptedChatModel::new()
                    .then_text("needs work")
                    .then_text("APPROVED"),
            ),
        ),
        (
            "billing".to_owned(),
            agent(
                "billing",
                ScriptedChatModel::new().then_text("billing answer"),
            ),
        ),
        (
            "triage".to_owned(),
            agent(
                "triage",
                ScriptedChatModel::new().then_text("It is a tech question."),
            ),
        ),
        (
            "tech".to_owned(),
            agent("tech", ScriptedChatModel::new().then_text("tech answer")),
        ),
        (
            "echo".to_owned(),
            agent("echo", ScriptedChatModel::new().then_text("echoed")),
        ),
    ])
}

#[test]
fn every_node_kind_runs_in_one_trace_and_logs_one_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pipeline.toml"), PIPELINE).unwrap();
    std::fs::write(dir.path().join("inner.toml"), INNER).unwrap();
    let telemetry = telemetry(dir.path());
    let _subscriber = telemetry.set_thread_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut context = BuildContext::new(dir.path().join("data"));
    context.capture_content = true;
    let config = WorkflowConfig::load(&dir.path().join("pipeline.toml")).unwrap();
    let workflow = runtime
        .block_on(Workflow::build_with_agents(
            &config,
            &context,
            pipeline_agents(),
        ))
        .unwrap();
    let outcome = runtime
        .block_on(workflow.run("How do I fix my laptop?", &TurnContext::default()))
        .unwrap();

    // The router's rule did not hold (no "invoice"), so the agent router chose `tech`.
    assert_eq!(outcome.output, "APPROVED | tech answer | 42 | echoed");
    let order: Vec<(&str, Option<u32>)> = outcome
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.iteration))
        .collect();
    assert_eq!(
        order,
        [
            ("research", None),
            ("left", None),
            ("right", None),
            ("fan", None),
            ("critique", Some(1)),
            ("critique", Some(2)),
            ("review", None),
            ("tech", None),
            ("triaged", None),
            ("route", None),
            ("compute", None),
            ("inner", None),
        ]
    );
    assert_eq!(
        outcome.variables["fan"],
        "## left\n\nleft view\n\n## right\n\nright view"
    );
    let route = outcome.nodes.iter().find(|n| n.id == "triaged").unwrap();
    assert_eq!(route.route.as_deref(), Some("tech"));
    // Tokens: every agent call's usage, summed (the scripted model reports 20 in per call).
    let agent_calls = 9; // researcher, left, right, critic ×2, triage, tech, echo … and billing never
    assert_eq!(outcome.usage.input_tokens, 20 * (agent_calls - 1));

    let trace_id = outcome.trace_id.clone().expect("a trace");
    let spans = spans(&telemetry, &trace_id);
    let root = span(&spans, "invoke_workflow pipeline");
    assert!(root.parent_span_id.is_none());
    assert_eq!(root.attributes["gen_ai.operation.name"], "invoke_workflow");
    assert_eq!(root.attributes["gen_ai.workflow.name"], "pipeline");
    let fan = span(&spans, "node fan");
    assert_eq!(fan.parent_span_id.as_deref(), Some(root.span_id.as_str()));
    assert_eq!(fan.attributes["sextant.workflow.node.kind"], "parallel");
    let left = span(&spans, "node left");
    assert_eq!(left.parent_span_id.as_deref(), Some(fan.span_id.as_str()));
    let left_agent = span(&spans, "invoke_agent left");
    assert_eq!(
        left_agent.parent_span_id.as_deref(),
        Some(left.span_id.as_str())
    );
    let critiques: Vec<&StoredSpan> = spans.iter().filter(|s| s.name == "node critique").collect();
    assert_eq!(critiques.len(), 2);
    let iterations: Vec<&Value> = critiques
        .iter()
        .map(|s| &s.attributes["sextant.workflow.iteration"])
        .collect();
    assert!(iterations.contains(&&Value::from(1)) && iterations.contains(&&Value::from(2)));
    assert_eq!(
        span(&spans, "node triaged").attributes["sextant.workflow.route"],
        "tech"
    );
    let compute = span(&spans, "node compute");
    let tool = span(&spans, "execute_tool calculator");
    assert_eq!(
        tool.parent_span_id.as_deref(),
        Some(compute.span_id.as_str())
    );
    let inner_node = span(&spans, "node inner");
    let inner = span(&spans, "invoke_workflow inner");
    assert_eq!(
        inner.parent_span_id.as_deref(),
        Some(inner_node.span_id.as_str())
    );

    // One tracking run, with per-node metrics and each node's output as an artefact.
    let _entered = runtime.enter();
    let tracker = context.tracking.tracker(&context.data_dir).unwrap();
    let run = tracker
        .start_run(RunSpec {
            experiment: "workflows".into(),
            run_name: Some("pipeline".into()),
            ..RunSpec::default()
        })
        .unwrap();
    let status = log_workflow(&run, &workflow, Ok(&outcome), Duration::from_millis(5));
    assert_eq!(status, RunStatus::Finished);
    let report = runtime.block_on(run.end(status));
    assert!(report.delivered, "{report:?}");
    let run_id = report.run_id.unwrap();
    let store = tracker.store().clone();
    let stored = runtime.block_on(store.get_run(&run_id)).unwrap();
    assert_eq!(stored.params["workflow"], "pipeline");
    assert!(
        stored.metrics.contains_key("node.research.duration_ms"),
        "{:?}",
        stored.metrics.keys()
    );
    assert_eq!(stored.metrics["node.research.input_tokens"].value, 20.0);
    assert_eq!(stored.tags["sextant.trace_id"], trace_id);
    let history = runtime
        .block_on(store.metric_history(&run_id, "node.critique.duration_ms"))
        .unwrap();
    let steps: Vec<i64> = history.iter().map(|m| m.step).collect();
    assert_eq!(steps, [1, 2]);
    let research = runtime
        .block_on(store.read_artifact(&run_id, "nodes/research.txt"))
        .unwrap();
    assert_eq!(research, b"facts");
    let second = runtime
        .block_on(store.read_artifact(&run_id, "nodes/critique-2.txt"))
        .unwrap();
    assert_eq!(second, b"APPROVED");
    let summary: Value = serde_json::from_slice(
        &runtime
            .block_on(store.read_artifact(&run_id, "nodes.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary.as_array().unwrap().len(), outcome.nodes.len());
}

#[test]
fn a_failing_node_fails_the_workflow_naming_it_and_keeps_what_ran() {
    let dir = tempfile::tempdir().unwrap();
    let telemetry = telemetry(dir.path());
    let _subscriber = telemetry.set_thread_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = WorkflowConfig::from_toml(
        "name = \"w\"\nsteps = [\"a\", \"b\", \"c\"]\n[nodes.a]\nagent = \"a\"\n[nodes.b]\nagent = \"b\"\n[nodes.c]\nagent = \"c\"\n",
        "w.toml",
    )
    .unwrap();
    let agents = HashMap::from([
        (
            "a".to_owned(),
            agent("a", ScriptedChatModel::new().then_text("fine")),
        ),
        (
            "b".to_owned(),
            agent(
                "b",
                ScriptedChatModel::new().then_error(ChatError::Connect {
                    provider: "scripted".into(),
                    endpoint: "http://127.0.0.1:9".into(),
                    message: "the model server is down".into(),
                }),
            ),
        ),
        (
            "c".to_owned(),
            agent("c", ScriptedChatModel::new().then_text("never")),
        ),
    ]);
    let workflow = runtime
        .block_on(Workflow::build_with_agents(
            &config,
            &BuildContext::new(dir.path()),
            agents,
        ))
        .unwrap();
    let error = runtime
        .block_on(workflow.run("go", &TurnContext::default()))
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("workflow `w`, node `b`") && message.contains("down"),
        "{message}"
    );
    let WorkflowError::Node {
        nodes, trace_id, ..
    } = &error
    else {
        panic!("{error:?}")
    };
    let ran: Vec<(&str, bool)> = nodes
        .iter()
        .map(|n| (n.id.as_str(), n.error.is_some()))
        .collect();
    assert_eq!(ran, [("a", false), ("b", true)]);
    let spans = spans(&telemetry, trace_id.as_deref().unwrap());
    assert_eq!(span(&spans, "invoke_workflow w").status.code, "error");
    assert_eq!(span(&spans, "node b").status.code, "error");
    assert!(spans.iter().all(|s| s.name != "node c"));
}

#[test]
fn a_dropped_workflow_marks_its_span_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let telemetry = telemetry(dir.path());
    let _subscriber = telemetry.set_thread_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = WorkflowConfig::from_toml(
        "name = \"hang\"\nsteps = [\"a\"]\n[nodes.a]\nagent = \"a\"\n",
        "hang.toml",
    )
    .unwrap();
    let agents = HashMap::from([(
        "a".to_owned(),
        agent("a", ScriptedChatModel::new().then_hang()),
    )]);
    let workflow = runtime
        .block_on(Workflow::build_with_agents(
            &config,
            &BuildContext::new(dir.path()),
            agents,
        ))
        .unwrap();
    let timed_out = runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_millis(200),
            workflow.run("go", &TurnContext::default()),
        )
        .await
    });
    assert!(timed_out.is_err());
    telemetry.force_flush().unwrap();
    let store = telemetry.trace_store().unwrap();
    let root = store
        .list_traces(10)
        .unwrap()
        .into_iter()
        .find(|t| t.root_span_name == "invoke_workflow hang")
        .expect("the cancelled workflow's trace");
    let spans = store.spans(&root.trace_id).unwrap();
    let workflow_span = span(&spans, "invoke_workflow hang");
    assert_eq!(workflow_span.status.code, "error");
    assert_eq!(workflow_span.attributes["error.type"], "cancelled");
}
