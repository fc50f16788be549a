//! Adds the MLflow and OpenInference attributes to a finished span, derived from the GenAI
//! semantic-convention attributes its caller set.
//!
//! Callers only set `gen_ai.*` keys; before a span is exported, [`enrich_span`] adds
//! `mlflow.spanType` and `openinference.span.kind` (from [`GenAiSpanKind::classify`]),
//! `mlflow.spanInputs` / `mlflow.spanOutputs` (from the content attributes, only when the caller
//! recorded them) and `mlflow.chat.tokenUsage`. Keys a caller set itself are left alone.

use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_sdk::trace::SpanData;
use serde_json::json;

use crate::conventions::{self, GenAiSpanKind};

/// Attributes that are integers in the conventions. `tracing` records `u64` fields as strings
/// (tracing-opentelemetry has no unsigned mapping), so these are turned back into integers.
const INTEGER_KEYS: [&str; 7] = [
    conventions::GEN_AI_USAGE_INPUT_TOKENS,
    conventions::GEN_AI_USAGE_OUTPUT_TOKENS,
    conventions::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    conventions::GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    conventions::GEN_AI_REQUEST_MAX_TOKENS,
    conventions::GEN_AI_REQUEST_TOP_K,
    conventions::GEN_AI_REQUEST_SEED,
];

/// Adds the derived attributes to `span` in place. Idempotent.
pub fn enrich_span(span: &mut SpanData) {
    normalize_integers(&mut span.attributes);
    normalize_string_arrays(&mut span.attributes);

    let kind = GenAiSpanKind::classify(
        string_attribute(&span.attributes, conventions::GEN_AI_OPERATION_NAME).as_deref(),
        &span.name,
    );
    let mut added = Vec::with_capacity(5);
    added.push(mlflow_attribute(
        conventions::MLFLOW_SPAN_TYPE,
        json!(kind.mlflow_span_type()),
    ));
    added.push(KeyValue::new(
        conventions::OPENINFERENCE_SPAN_KIND,
        kind.openinference_kind(),
    ));

    let (input_key, output_key) = content_keys(kind);
    if let Some(inputs) = input_key.and_then(|key| json_attribute(&span.attributes, key)) {
        added.push(mlflow_attribute(conventions::MLFLOW_SPAN_INPUTS, inputs));
    }
    if let Some(outputs) = output_key.and_then(|key| json_attribute(&span.attributes, key)) {
        added.push(mlflow_attribute(conventions::MLFLOW_SPAN_OUTPUTS, outputs));
    }

    let input_tokens = int_attribute(&span.attributes, conventions::GEN_AI_USAGE_INPUT_TOKENS);
    let output_tokens = int_attribute(&span.attributes, conventions::GEN_AI_USAGE_OUTPUT_TOKENS);
    if input_tokens.is_some() || output_tokens.is_some() {
        let (input, output) = (input_tokens.unwrap_or(0), output_tokens.unwrap_or(0));
        let mut usage =
            json!({"input_tokens": input, "output_tokens": output, "total_tokens": input + output});
        // MLflow's key for prompt tokens read from the provider's cache.
        if let Some(cached) = int_attribute(
            &span.attributes,
            conventions::GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        ) {
            usage["cache_read_input_tokens"] = json!(cached);
        }
        added.push(mlflow_attribute(
            conventions::MLFLOW_CHAT_TOKEN_USAGE,
            usage,
        ));
    }

    for attribute in added {
        if !has_attribute(&span.attributes, attribute.key.as_str()) {
            span.attributes.push(attribute);
        }
    }
}

/// How each MLflow attribute value is encoded on the wire: the one place to change it.
///
/// Checked against a live MLflow 3.17.2 server: a string value (the span type) goes as the plain
/// string — MLflow JSON-decodes it once into its `spans.type` column, so a JSON-quoted
/// `"\"CHAT_MODEL\""` would be stored with its quotes and `span.type = 'CHAT_MODEL'` searches would
/// miss it; objects (inputs, outputs, token usage) go as JSON text, which MLflow parses back.
fn mlflow_attribute(key: &'static str, value: serde_json::Value) -> KeyValue {
    match value {
        serde_json::Value::String(text) => KeyValue::new(key, text),
        other => KeyValue::new(key, other.to_string()),
    }
}

/// Which content attributes feed a kind's MLflow inputs and outputs.
fn content_keys(kind: GenAiSpanKind) -> (Option<&'static str>, Option<&'static str>) {
    match kind {
        GenAiSpanKind::Agent | GenAiSpanKind::ChatModel => (
            Some(conventions::GEN_AI_INPUT_MESSAGES),
            Some(conventions::GEN_AI_OUTPUT_MESSAGES),
        ),
        GenAiSpanKind::Tool => (
            Some(conventions::GEN_AI_TOOL_CALL_ARGUMENTS),
            Some(conventions::GEN_AI_TOOL_CALL_RESULT),
        ),
        GenAiSpanKind::Retriever => (
            Some(conventions::GEN_AI_RETRIEVAL_QUERY_TEXT),
            Some(conventions::GEN_AI_RETRIEVAL_DOCUMENTS),
        ),
        _ => (None, None),
    }
}

fn find<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    // The last write wins, as in every backend.
    attributes
        .iter()
        .rev()
        .find(|attribute| attribute.key.as_str() == key)
        .map(|attribute| &attribute.value)
}

fn has_attribute(attributes: &[KeyValue], key: &str) -> bool {
    find(attributes, key).is_some()
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    match find(attributes, key)? {
        Value::String(value) => Some(value.as_str().to_owned()),
        _ => None,
    }
}

fn int_attribute(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match find(attributes, key)? {
        Value::I64(value) => Some(*value),
        Value::String(value) => value.as_str().parse().ok(),
        _ => None,
    }
}

/// A content attribute as JSON: a string holding JSON is parsed (messages are recorded as JSON
/// text), any other string is a JSON string.
fn json_attribute(attributes: &[KeyValue], key: &str) -> Option<serde_json::Value> {
    let value = find(attributes, key)?;
    Some(match value {
        Value::String(text) => serde_json::from_str(text.as_str())
            .unwrap_or_else(|_| serde_json::Value::String(text.as_str().to_owned())),
        other => value_to_json(other),
    })
}

/// Attributes that are string arrays in the conventions. `tracing` fields are scalars, so callers
/// record them as JSON text (`["stop"]`); they are turned back into arrays here.
const STRING_ARRAY_KEYS: [&str; 1] = [conventions::GEN_AI_RESPONSE_FINISH_REASONS];

fn normalize_string_arrays(attributes: &mut [KeyValue]) {
    for attribute in attributes.iter_mut() {
        if !STRING_ARRAY_KEYS.contains(&attribute.key.as_str()) {
            continue;
        }
        if let Value::String(text) = &attribute.value
            && let Ok(items) = serde_json::from_str::<Vec<String>>(text.as_str())
        {
            let items = items.into_iter().map(Into::into).collect();
            attribute.value = Value::Array(Array::String(items));
        }
    }
}

fn normalize_integers(attributes: &mut [KeyValue]) {
    for attribute in attributes.iter_mut() {
        if !INTEGER_KEYS.contains(&attribute.key.as_str()) {
            continue;
        }
        if let Value::String(text) = &attribute.value
            && let Ok(number) = text.as_str().parse::<i64>()
        {
            attribute.value = Value::I64(number);
        }
    }
}

/// An attribute value as JSON, keeping its type: integers stay integers, arrays stay arrays.
pub fn value_to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Bool(b) => json!(b),
        Value::I64(i) => json!(i),
        Value::F64(f) => json!(f),
        Value::String(s) => json!(s.as_str()),
        Value::Array(Array::Bool(values)) => json!(values),
        Value::Array(Array::I64(values)) => json!(values),
        Value::Array(Array::F64(values)) => json!(values),
        Value::Array(Array::String(values)) => {
            json!(values.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        }
        other => json!(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status};
    use std::time::SystemTime;

    fn span(name: &'static str, attributes: Vec<KeyValue>) -> SpanData {
        SpanData {
            span_context: SpanContext::empty_context(),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: name.into(),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes,
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    fn get<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
        find(&span.attributes, key)
    }

    fn get_json(span: &SpanData, key: &str) -> serde_json::Value {
        match get(span, key) {
            Some(Value::String(text)) => serde_json::from_str(text.as_str()).unwrap(),
            other => panic!("{key} is not a JSON string: {other:?}"),
        }
    }

    #[test]
    fn chat_span_gets_type_messages_and_token_usage() {
        let mut chat = span(
            "chat SmolLM2",
            vec![
                KeyValue::new(conventions::GEN_AI_OPERATION_NAME, "chat"),
                KeyValue::new(
                    conventions::GEN_AI_INPUT_MESSAGES,
                    r#"[{"role":"user","parts":[{"type":"text","content":"hi"}]}]"#,
                ),
                KeyValue::new(
                    conventions::GEN_AI_OUTPUT_MESSAGES,
                    r#"[{"role":"assistant","parts":[]}]"#,
                ),
                // u64 fields arrive from tracing as strings.
                KeyValue::new(conventions::GEN_AI_USAGE_INPUT_TOKENS, "12"),
                KeyValue::new(conventions::GEN_AI_USAGE_OUTPUT_TOKENS, 30_i64),
            ],
        );
        enrich_span(&mut chat);

        // A plain string, not JSON-quoted: MLflow's `spans.type` column must read CHAT_MODEL.
        assert_eq!(
            get(&chat, conventions::MLFLOW_SPAN_TYPE),
            Some(&Value::from("CHAT_MODEL"))
        );
        assert_eq!(
            get(&chat, conventions::OPENINFERENCE_SPAN_KIND),
            Some(&Value::from("LLM"))
        );
        assert_eq!(
            get_json(&chat, conventions::MLFLOW_SPAN_INPUTS)[0]["role"],
            json!("user")
        );
        assert_eq!(
            get_json(&chat, conventions::MLFLOW_SPAN_OUTPUTS)[0]["role"],
            json!("assistant")
        );
        assert_eq!(
            get_json(&chat, conventions::MLFLOW_CHAT_TOKEN_USAGE),
            json!({"input_tokens": 12, "output_tokens": 30, "total_tokens": 42})
        );
        assert_eq!(
            get(&chat, conventions::GEN_AI_USAGE_INPUT_TOKENS),
            Some(&Value::I64(12))
        );
    }

    #[test]
    fn tool_span_uses_arguments_and_plain_text_result() {
        let mut tool = span(
            "execute_tool calculator",
            vec![
                KeyValue::new(conventions::GEN_AI_OPERATION_NAME, "execute_tool"),
                KeyValue::new(conventions::GEN_AI_TOOL_CALL_ARGUMENTS, r#"{"expr":"2+2"}"#),
                KeyValue::new(conventions::GEN_AI_TOOL_CALL_RESULT, "4 apples"),
            ],
        );
        enrich_span(&mut tool);
        assert_eq!(
            get(&tool, conventions::MLFLOW_SPAN_TYPE),
            Some(&Value::from("TOOL"))
        );
        assert_eq!(
            get_json(&tool, conventions::MLFLOW_SPAN_INPUTS),
            json!({"expr": "2+2"})
        );
        assert_eq!(
            get(&tool, conventions::MLFLOW_SPAN_OUTPUTS),
            Some(&Value::from("4 apples"))
        );
        assert!(get(&tool, conventions::MLFLOW_CHAT_TOKEN_USAGE).is_none());
    }

    #[test]
    fn finish_reasons_recorded_as_json_text_become_a_string_array() {
        let mut chat = span(
            "chat m",
            vec![
                KeyValue::new(conventions::GEN_AI_OPERATION_NAME, "chat"),
                KeyValue::new(
                    conventions::GEN_AI_RESPONSE_FINISH_REASONS,
                    r#"["tool_calls"]"#,
                ),
            ],
        );
        enrich_span(&mut chat);
        assert_eq!(
            get(&chat, conventions::GEN_AI_RESPONSE_FINISH_REASONS),
            Some(&Value::Array(Array::String(vec!["tool_calls".into()])))
        );
    }

    #[test]
    fn content_is_absent_when_the_caller_did_not_capture_it() {
        let mut chat = span(
            "chat m",
            vec![KeyValue::new(conventions::GEN_AI_OPERATION_NAME, "chat")],
        );
        enrich_span(&mut chat);
        assert!(get(&chat, conventions::MLFLOW_SPAN_INPUTS).is_none());
        assert!(get(&chat, conventions::MLFLOW_SPAN_OUTPUTS).is_none());
    }

    #[test]
    fn span_name_fallback_and_caller_values_win() {
        let mut prompt = span(
            "prompt rag-system",
            vec![KeyValue::new(
                conventions::OPENINFERENCE_SPAN_KIND,
                "CUSTOM",
            )],
        );
        enrich_span(&mut prompt);
        enrich_span(&mut prompt);
        assert_eq!(
            get(&prompt, conventions::MLFLOW_SPAN_TYPE),
            Some(&Value::from("PARSER"))
        );
        assert_eq!(
            get(&prompt, conventions::OPENINFERENCE_SPAN_KIND),
            Some(&Value::from("CUSTOM"))
        );
        let type_count = prompt
            .attributes
            .iter()
            .filter(|a| a.key.as_str() == conventions::MLFLOW_SPAN_TYPE)
            .count();
        assert_eq!(type_count, 1, "enrichment is idempotent");
    }
}
