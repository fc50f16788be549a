//! The whole pipeline in-process: `tracing` spans → OpenTelemetry → export processor → the local
//! trace store, plus metrics through the SDK's in-memory exporter.

use std::time::Duration;

use opentelemetry_sdk::metrics::InMemoryMetricExporter;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use sextant_tracker::conventions::{self, operation};
use sextant_tracker::{
    GenAiMetricAttributes, LocalTraceStore, SpanTree, Telemetry, TelemetryConfig, current_trace_id,
    set_parent_from_traceparent,
};

fn config_with_store(dir: &tempfile::TempDir) -> TelemetryConfig {
    TelemetryConfig {
        local_store: Some(dir.path().join("traces.db")),
        // Nothing is exported on schedule during the test: only flushing can put spans in the store.
        schedule_delay: Duration::from_secs(600),
        ..TelemetryConfig::default()
    }
}

/// One agent turn as the agent crate writes it.
fn agent_turn() -> String {
    let agent = tracing::info_span!(
        "invoke_agent",
        otel.name = "invoke_agent assistant",
        { conventions::GEN_AI_OPERATION_NAME } = operation::INVOKE_AGENT,
        { conventions::GEN_AI_AGENT_NAME } = "assistant",
        { conventions::SESSION_ID } = "s-1",
    );
    let _agent = agent.enter();
    let trace_id = current_trace_id(&agent).expect("the agent span is recorded");
    {
        let model = "SmolLM2-135M-Instruct";
        let chat = tracing::info_span!(
            "chat",
            otel.name = %format!("chat {model}"),
            { conventions::GEN_AI_OPERATION_NAME } = operation::CHAT,
            { conventions::GEN_AI_PROVIDER_NAME } = "local",
            { conventions::GEN_AI_REQUEST_MODEL } = model,
            { conventions::GEN_AI_REQUEST_TEMPERATURE } = 0.2,
            { conventions::GEN_AI_INPUT_MESSAGES } = r#"[{"role":"user","parts":[{"type":"text","content":"2+2?"}]}]"#,
            { conventions::GEN_AI_USAGE_INPUT_TOKENS } = tracing::field::Empty,
            { conventions::GEN_AI_USAGE_OUTPUT_TOKENS } = tracing::field::Empty,
        );
        let _chat = chat.enter();
        // A u64 as callers naturally have it: stored as an integer all the same.
        chat.record(conventions::GEN_AI_USAGE_INPUT_TOKENS, 21_u64);
        chat.record(conventions::GEN_AI_USAGE_OUTPUT_TOKENS, 9_i64);
    }
    {
        let tool = tracing::info_span!(
            "execute_tool",
            otel.name = "execute_tool calculator",
            { conventions::GEN_AI_OPERATION_NAME } = operation::EXECUTE_TOOL,
            { conventions::GEN_AI_TOOL_NAME } = "calculator",
            { conventions::GEN_AI_TOOL_CALL_ARGUMENTS } = r#"{"expression":"2+2"}"#,
            { conventions::GEN_AI_TOOL_CALL_RESULT } = "four",
        );
        let _tool = tool.enter();
        tracing::info_span!("plan_query").in_scope(|| {});
    }
    trace_id
}

#[test]
fn spans_of_a_pipeline_dropped_right_away_are_all_in_the_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_store(&dir);
    let trace_id = {
        let telemetry = Telemetry::builder(&config).build().unwrap();
        let _default = telemetry.set_thread_default();
        agent_turn()
        // `telemetry` drops here, with every span still queued.
    };

    let store = LocalTraceStore::open(dir.path().join("traces.db")).unwrap();
    let spans = store.spans(&trace_id).unwrap();
    let names: Vec<&str> = spans.iter().map(|span| span.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "invoke_agent assistant",
            "chat SmolLM2-135M-Instruct",
            "execute_tool calculator",
            "plan_query"
        ]
    );
    let agent = &spans[0];
    assert_eq!(agent.parent_span_id, None);
    assert!(
        spans[1..3]
            .iter()
            .all(|span| span.parent_span_id.as_deref() == Some(agent.span_id.as_str()))
    );
    assert_eq!(
        spans[3].parent_span_id.as_deref(),
        Some(spans[2].span_id.as_str())
    );

    let chat = &spans[1];
    assert_eq!(chat.attributes[conventions::GEN_AI_USAGE_INPUT_TOKENS], 21);
    assert_eq!(
        chat.attributes[conventions::GEN_AI_REQUEST_TEMPERATURE],
        0.2
    );
    assert_eq!(chat.attributes[conventions::MLFLOW_SPAN_TYPE], "CHAT_MODEL");
    assert_eq!(chat.attributes[conventions::OPENINFERENCE_SPAN_KIND], "LLM");
    let usage: serde_json::Value = serde_json::from_str(
        chat.attributes[conventions::MLFLOW_CHAT_TOKEN_USAGE]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(usage["total_tokens"], 30);
    assert!(
        chat.attributes
            .contains_key(conventions::MLFLOW_SPAN_INPUTS)
    );
    assert!(
        !chat
            .attributes
            .contains_key(conventions::MLFLOW_SPAN_OUTPUTS)
    );
    assert_eq!(
        spans[2].attributes[conventions::MLFLOW_SPAN_OUTPUTS],
        "four"
    );

    let summary = store.latest_trace().unwrap().unwrap();
    assert_eq!(summary.trace_id, trace_id);
    assert_eq!(summary.total_tokens, Some(30));
    assert_eq!(store.resolve_trace_id(&trace_id[..8]).unwrap(), trace_id);

    let tree = SpanTree::build(&spans).render();
    assert_eq!(tree.lines().count(), 4, "{tree}");
    assert!(
        tree.lines()
            .nth(3)
            .unwrap()
            .starts_with("    └── plan_query"),
        "{tree}"
    );
}

#[test]
fn shutdown_reports_what_was_exported() {
    let dir = tempfile::tempdir().unwrap();
    let telemetry = Telemetry::builder(&config_with_store(&dir))
        .build()
        .unwrap();
    {
        let _default = telemetry.set_thread_default();
        agent_turn();
    }
    telemetry.force_flush().unwrap();
    assert_eq!(telemetry.exported_spans(), 4);
    assert_eq!(
        telemetry
            .trace_store()
            .unwrap()
            .list_traces(10)
            .unwrap()
            .len(),
        1
    );
    let report = telemetry.shutdown().unwrap();
    assert_eq!(
        (report.exported, report.dropped, report.export_errors),
        (4, 0, 0)
    );
}

#[test]
fn traceparent_continues_a_remote_trace() {
    let dir = tempfile::tempdir().unwrap();
    let telemetry = Telemetry::builder(&config_with_store(&dir))
        .build()
        .unwrap();
    let _default = telemetry.set_thread_default();

    let span = tracing::info_span!("invoke_agent");
    set_parent_from_traceparent(
        &span,
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    .unwrap();
    assert_eq!(
        current_trace_id(&span).as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    let error = set_parent_from_traceparent(&tracing::info_span!("x"), "garbage").unwrap_err();
    assert!(error.to_string().contains("traceparent"), "{error}");
    drop(span);
    telemetry.force_flush().unwrap();
    let spans = telemetry
        .trace_store()
        .unwrap()
        .spans("4bf92f3577b34da6a3ce929d0e0e4736")
        .unwrap();
    assert_eq!(spans[0].parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    let tree = SpanTree::build(&spans);
    assert_eq!(tree.roots.len(), 1, "a remote parent makes the span a root");
}

#[test]
fn without_a_pipeline_there_is_no_trace_id() {
    let span = tracing::info_span!("invoke_agent");
    assert_eq!(current_trace_id(&span), None);
}

#[test]
fn disabled_sdk_builds_a_guard_that_records_nothing() {
    let config = TelemetryConfig {
        disabled: true,
        ..TelemetryConfig::default()
    };
    let telemetry = Telemetry::builder(&config).build().unwrap();
    let _default = telemetry.set_thread_default();
    let span = tracing::info_span!("invoke_agent");
    assert_eq!(current_trace_id(&span), None);
    assert!(telemetry.trace_store().is_none());
}

#[test]
fn metrics_have_semconv_names_units_and_attributes() {
    let exporter = InMemoryMetricExporter::default();
    let telemetry = Telemetry::builder(&TelemetryConfig::default())
        .with_metric_exporter(exporter.clone())
        .build()
        .unwrap();
    let metrics = telemetry.metrics();
    let attributes = GenAiMetricAttributes {
        operation_name: "chat",
        provider_name: "ollama",
        request_model: Some("llama3.2"),
        response_model: Some("llama3.2:3b"),
    };
    metrics.record_token_usage(&attributes, Some(100), Some(20));
    metrics.record_operation_duration(&attributes, Duration::from_millis(1500), None);
    metrics.record_operation_duration(&attributes, Duration::from_millis(30), Some("timeout"));
    telemetry.force_flush().unwrap();

    let exported = exporter.get_finished_metrics().unwrap();
    let all: Vec<_> = exported
        .iter()
        .flat_map(|resource| resource.scope_metrics())
        .flat_map(|scope| scope.metrics())
        .collect();
    let token_usage = all
        .iter()
        .rev()
        .find(|metric| metric.name() == "gen_ai.client.token.usage")
        .expect("token usage exported");
    assert_eq!(token_usage.unit(), "{token}");
    let AggregatedMetrics::U64(MetricData::Histogram(histogram)) = token_usage.data() else {
        panic!("token usage is a u64 histogram");
    };
    let mut by_type: Vec<(String, u64, Vec<f64>)> = histogram
        .data_points()
        .map(|point| {
            let attributes: Vec<(String, String)> = point
                .attributes()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect();
            assert!(attributes.contains(&("gen_ai.operation.name".into(), "chat".into())));
            assert!(attributes.contains(&("gen_ai.provider.name".into(), "ollama".into())));
            assert!(attributes.contains(&("gen_ai.request.model".into(), "llama3.2".into())));
            assert!(attributes.contains(&("gen_ai.response.model".into(), "llama3.2:3b".into())));
            let token_type = attributes
                .iter()
                .find(|(key, _)| key == "gen_ai.token.type")
                .map(|(_, value)| value.clone())
                .unwrap();
            (token_type, point.sum(), point.bounds().collect())
        })
        .collect();
    by_type.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(by_type[0].0, "input");
    assert_eq!(by_type[0].1, 100);
    assert_eq!(by_type[1].0, "output");
    assert_eq!(by_type[1].1, 20);
    assert_eq!(
        by_type[0].2,
        conventions::metric::TOKEN_USAGE_BOUNDARIES.to_vec()
    );

    let duration = all
        .iter()
        .rev()
        .find(|metric| metric.name() == "gen_ai.client.operation.duration")
        .expect("duration exported");
    assert_eq!(duration.unit(), "s");
    let AggregatedMetrics::F64(MetricData::Histogram(histogram)) = duration.data() else {
        panic!("duration is an f64 histogram");
    };
    let points: Vec<_> = histogram.data_points().collect();
    assert_eq!(points.len(), 2, "with and without error.type");
    let failed = points
        .iter()
        .find(|point| point.attributes().any(|kv| kv.key.as_str() == "error.type"))
        .unwrap();
    assert!((failed.sum() - 0.03).abs() < 1e-9);
    assert_eq!(
        failed.bounds().collect::<Vec<_>>(),
        conventions::metric::OPERATION_DURATION_BOUNDARIES.to_vec()
    );
    telemetry.shutdown().unwrap();
}

#[test]
fn a_pipeline_without_sinks_still_gives_trace_ids() {
    let telemetry = Telemetry::builder(&TelemetryConfig::default())
        .build()
        .unwrap();
    {
        let _default = telemetry.set_thread_default();
        let span = tracing::info_span!("invoke_agent");
        let trace_id = current_trace_id(&span).unwrap();
        assert_eq!(trace_id.len(), 32);
        assert!(
            trace_id
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
    assert_eq!(telemetry.shutdown().unwrap().exported, 0);
}
