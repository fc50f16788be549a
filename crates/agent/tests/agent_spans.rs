//! One agent turn is one trace: `invoke_agent` with `chat` and `execute_tool` children, typed for
//! MLflow and OpenInference, with token counts on the spans and in the GenAI client metrics — driven
//! by the scripted test model so the structure is exact, through the real telemetry pipeline into
//! the real local trace store.

use std::sync::Arc;

use opentelemetry_sdk::metrics::InMemoryMetricExporter;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use serde_json::Value;
use sextant_agent::Agent;
use sextant_agent::testing::ScriptedChatModel;
use sextant_tools::builtin::Calculator;
use sextant_tools::{ToolSet, ToolsConfig};
use sextant_tracker::{StoredSpan, Telemetry, TelemetryConfig};

fn attribute<'a>(span: &'a StoredSpan, key: &str) -> &'a Value {
    span.attributes.get(key).unwrap_or(&Value::Null)
}

#[test]
fn a_turn_is_one_trace_of_nested_typed_counted_spans() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = InMemoryMetricExporter::default();
    let telemetry = Telemetry::builder(&TelemetryConfig {
        local_store: Some(dir.path().join("traces.db")),
        ..TelemetryConfig::default()
    })
    .with_metric_exporter(metrics.clone())
    .build()
    .unwrap();
    let _subscriber = telemetry.set_thread_default();

    let model = ScriptedChatModel::new()
        .then_tool_calls(&[
            ("calculator", r#"{"expression": "12 * 7 + 3"}"#),
            ("teleport", "{}"),
        ])
        .then_text("It is 87.");
    let agent = Agent::builder("span-test", Arc::new(model))
        .tools(ToolSet::new().with(Calculator))
        .capture_content(true)
        .metrics(telemetry.metrics())
        .build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(agent.run("What is 12 * 7 + 3?")).unwrap();
    telemetry.force_flush().unwrap();

    let trace_id = outcome
        .trace_id
        .clone()
        .expect("a traced turn has a trace id");
    let spans = telemetry.trace_store().unwrap().spans(&trace_id).unwrap();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(spans.len(), 5, "{names:?}");

    let root = spans
        .iter()
        .find(|s| s.parent_span_id.is_none())
        .expect("one root");
    assert_eq!(root.name, "invoke_agent span-test");
    assert_eq!(attribute(root, "mlflow.spanType"), "AGENT");
    assert_eq!(attribute(root, "gen_ai.agent.name"), "span-test");
    assert_eq!(attribute(root, "gen_ai.usage.input_tokens"), 40);
    assert_eq!(attribute(root, "gen_ai.usage.output_tokens"), 13);
    // Content capture: the question is the root's input, which MLflow shows as the request.
    assert!(
        attribute(root, "mlflow.spanInputs")
            .as_str()
            .is_some_and(|i| i.contains("12 * 7 + 3"))
    );

    for span in spans.iter().filter(|s| s.span_id != root.span_id) {
        assert_eq!(
            span.parent_span_id.as_deref(),
            Some(root.span_id.as_str()),
            "{} not under the agent",
            span.name
        );
        assert!(
            span.start_time_unix_nano >= root.start_time_unix_nano
                && span.end_time_unix_nano <= root.end_time_unix_nano
        );
    }
    let chats: Vec<&StoredSpan> = spans.iter().filter(|s| s.name == "chat scripted").collect();
    assert_eq!(chats.len(), 2);
    for chat in &chats {
        assert_eq!(attribute(chat, "mlflow.spanType"), "CHAT_MODEL");
        assert_eq!(attribute(chat, "openinference.span.kind"), "LLM");
        assert_eq!(attribute(chat, "gen_ai.provider.name"), "scripted");
        assert_eq!(attribute(chat, "gen_ai.usage.input_tokens"), 20);
    }
    assert_eq!(
        attribute(chats[0], "gen_ai.response.finish_reasons"),
        &serde_json::json!(["tool_calls"])
    );
    assert_eq!(
        attribute(chats[1], "gen_ai.response.finish_reasons"),
        &serde_json::json!(["stop"])
    );

    let tools: Vec<&StoredSpan> = spans
        .iter()
        .filter(|s| s.name.starts_with("execute_tool"))
        .collect();
    assert_eq!(tools.len(), 2);
    for tool in &tools {
        assert_eq!(attribute(tool, "mlflow.spanType"), "TOOL");
        assert_eq!(attribute(tool, "gen_ai.tool.type"), "function");
        // The tools ran between the two model calls.
        assert!(tool.start_time_unix_nano >= chats[0].end_time_unix_nano);
        assert!(tool.end_time_unix_nano <= chats[1].start_time_unix_nano);
    }
    let calculator = tools
        .iter()
        .find(|t| t.name == "execute_tool calculator")
        .unwrap();
    assert_eq!(attribute(calculator, "gen_ai.tool.call.result"), "87");
    assert!(!calculator.is_error());
    let unknown = tools
        .iter()
        .find(|t| t.name == "execute_tool teleport")
        .unwrap();
    assert!(
        unknown.is_error(),
        "a failed tool call sets the span status"
    );
    assert_eq!(attribute(unknown, "error.type"), "unknown_tool");
    assert!(
        !root.is_error(),
        "a failed tool call does not fail the turn"
    );

    // Metrics: one token-usage measurement per chat call and token type, one duration per call.
    let exported = metrics.get_finished_metrics().unwrap();
    let all: Vec<_> = exported
        .iter()
        .flat_map(|r| r.scope_metrics())
        .flat_map(|s| s.metrics())
        .collect();
    let usage = all
        .iter()
        .rev()
        .find(|m| m.name() == "gen_ai.client.token.usage")
        .expect("token usage");
    let AggregatedMetrics::U64(MetricData::Histogram(usage)) = usage.data() else {
        panic!("a u64 histogram")
    };
    let total: u64 = usage.data_points().map(|p| p.sum()).sum();
    let calls: u64 = usage.data_points().map(|p| p.count()).sum();
    assert_eq!(total, outcome.usage.total());
    assert_eq!(calls, 4, "two calls × input and output");
    let duration = all
        .iter()
        .rev()
        .find(|m| m.name() == "gen_ai.client.operation.duration")
        .expect("duration");
    let AggregatedMetrics::F64(MetricData::Histogram(duration)) = duration.data() else {
        panic!("an f64 histogram")
    };
    assert_eq!(duration.data_points().map(|p| p.count()).sum::<u64>(), 2);

    drop(_subscriber);
    telemetry.shutdown().unwrap();
}

#[test]
fn a_turn_cut_off_mid_call_is_recorded_as_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let telemetry = Telemetry::builder(&TelemetryConfig {
        local_store: Some(dir.path().join("traces.db")),
        ..TelemetryConfig::default()
    })
    .build()
    .unwrap();
    let _subscriber = telemetry.set_thread_default();
    let agent = Agent::builder("cut-off", Arc::new(ScriptedChatModel::new().then_hang())).build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The caller gives up (as Ctrl-C or a disconnected client does): the turn's future is dropped.
    let result = runtime.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_millis(50),
            agent.run("never answered"),
        )
        .await
    });
    assert!(
        result.is_err(),
        "the scripted model hangs, so the turn cannot finish"
    );
    telemetry.force_flush().unwrap();

    let store = telemetry.trace_store().unwrap();
    let trace = store
        .latest_trace()
        .unwrap()
        .expect("the cut-off turn was still exported");
    let spans = store.spans(&trace.trace_id).unwrap();
    let root = spans.iter().find(|s| s.parent_span_id.is_none()).unwrap();
    assert_eq!(root.name, "invoke_agent cut-off");
    assert!(root.is_error());
    assert_eq!(attribute(root, "error.type"), "cancelled");
    assert!(
        spans.iter().any(|s| s.name == "chat scripted"),
        "the call in flight is in the trace too"
    );
    drop(_subscriber);
    telemetry.shutdown().unwrap();
}

/// Runs one scripted turn that calls `web_search` (the offline corpus) and returns its spans.
fn web_search_turn(capture_content: bool) -> Vec<StoredSpan> {
    let dir = tempfile::tempdir().unwrap();
    let telemetry = Telemetry::builder(&TelemetryConfig {
        local_store: Some(dir.path().join("traces.db")),
        ..TelemetryConfig::default()
    })
    .build()
    .unwrap();
    let _subscriber = telemetry.set_thread_default();
    let model = ScriptedChatModel::new()
        .then_tool_calls(&[("web_search", r#"{"query": "Qdrant HNSW index"}"#)])
        .then_text("Qdrant indexes vectors with HNSW [1].");
    let agent = Agent::builder("researcher", Arc::new(model))
        .tools(ToolSet::from_config(&["web_search"], &ToolsConfig::default()).unwrap())
        .capture_content(capture_content)
        .build();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime
        .block_on(agent.run("How does Qdrant index?"))
        .unwrap();
    assert!(!outcome.tool_calls[0].is_error, "{:?}", outcome.tool_calls);
    telemetry.force_flush().unwrap();
    let spans = telemetry
        .trace_store()
        .unwrap()
        .spans(outcome.trace_id.as_deref().unwrap())
        .unwrap();
    drop(_subscriber);
    telemetry.shutdown().unwrap();
    spans
}

#[test]
fn a_search_call_nests_its_planning_and_processing_under_the_tool_span() {
    let spans = web_search_turn(true);
    let find = |name: &str| {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "no {name} span in {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
    };
    let root = find("invoke_agent researcher");
    let tool = find("execute_tool web_search");
    let plan = find("plan_query");
    let process = find("process_results");
    assert_eq!(tool.parent_span_id.as_deref(), Some(root.span_id.as_str()));
    for child in [plan, process] {
        assert_eq!(
            child.parent_span_id.as_deref(),
            Some(tool.span_id.as_str()),
            "{} is not under the tool span",
            child.name
        );
        assert_eq!(attribute(child, "sextant.search.backend"), "corpus");
        assert_eq!(attribute(child, "mlflow.spanType"), "CHAIN");
    }
    assert!(plan.end_time_unix_nano <= process.start_time_unix_nano);
    assert_eq!(attribute(plan, "sextant.search.query.terms"), 3);
    assert_eq!(attribute(plan, "sextant.search.query"), "Qdrant HNSW index");
    let returned = attribute(process, "sextant.search.results.returned")
        .as_i64()
        .unwrap();
    assert!(returned >= 1);
    let urls: Vec<String> = serde_json::from_str(
        attribute(process, "sextant.search.results.urls")
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(urls.len() as i64, returned);
    assert!(
        attribute(tool, "gen_ai.tool.call.result")
            .as_str()
            .is_some_and(|r| r.contains("[1] ")),
        "the cited results are the tool span's result"
    );
}

#[test]
fn without_content_capture_tool_sub_spans_carry_no_query_or_urls() {
    let spans = web_search_turn(false);
    for span in &spans {
        for key in [
            "sextant.search.query",
            "sextant.search.query.rewritten",
            "sextant.search.results.urls",
            "gen_ai.tool.call.arguments",
            "gen_ai.tool.call.result",
        ] {
            assert!(
                !span.attributes.contains_key(key),
                "{} carries {key} with content capture off",
                span.name
            );
        }
    }
    let plan = spans.iter().find(|s| s.name == "plan_query").unwrap();
    assert_eq!(attribute(plan, "sextant.search.query.terms"), 3);
}
