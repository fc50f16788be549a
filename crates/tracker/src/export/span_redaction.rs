//! Redaction of finished spans before any sink sees them: the processor applies it once, so the
//! local store, the spool and every collector hold the same placeholders.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use opentelemetry::trace::{Status, TraceId};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::trace::SpanData;
use sextant_redaction::{Placeholders, Redactor};

use crate::conventions;

/// Traces whose numbering is kept at once. A trace's numbering is dropped when its local root
/// span ends; this bound only matters for traces whose root never ends in this process.
const TRACES_KEPT: usize = 1024;

/// Attributes that identify rather than carry content: who owns a trace and which conversation
/// it belongs to (the service scopes reads by them), and the address of the server a client span
/// called. Redacting them would hide traces from their owners, not protect anyone.
const IDENTITY_KEYS: [&str; 5] = [
    conventions::SEXTANT_OWNER,
    conventions::SESSION_ID,
    conventions::GEN_AI_CONVERSATION_ID,
    conventions::SERVER_ADDRESS,
    conventions::NETWORK_PEER_ADDRESS,
];

/// A [`Redactor`] with the placeholder numbering of the traces in flight.
#[derive(Debug)]
pub(crate) struct SpanRedaction {
    redactor: Redactor,
    traces: Mutex<TracePlaceholders>,
}

#[derive(Debug, Default)]
struct TracePlaceholders {
    by_trace: HashMap<TraceId, Placeholders>,
    order: VecDeque<TraceId>,
}

impl SpanRedaction {
    /// `None` when `redactor` redacts nothing, so the processor skips the work entirely.
    pub(crate) fn new(redactor: Redactor) -> Option<Self> {
        redactor.is_active().then(|| Self {
            redactor,
            traces: Mutex::default(),
        })
    }

    /// Replaces secrets and personal values in `span`'s string attributes, its events'
    /// attributes and its status message, numbering placeholders per trace, and records how
    /// many it replaced as [`conventions::SEXTANT_REDACTION_COUNT`].
    pub(crate) fn redact(&self, span: &mut SpanData) {
        let trace_id = span.span_context.trace_id();
        let ends_trace = span.parent_span_id == opentelemetry::trace::SpanId::INVALID
            || span.parent_span_is_remote;
        let mut traces = self.traces.lock().unwrap_or_else(|e| e.into_inner());
        let placeholders = traces.for_trace(trace_id);

        let mut count = 0;
        for attribute in &mut span.attributes {
            if IDENTITY_KEYS.contains(&attribute.key.as_str()) {
                continue;
            }
            count += self.redact_value(&mut attribute.value, placeholders);
        }
        for event in span.events.events.iter_mut() {
            for attribute in &mut event.attributes {
                count += self.redact_value(&mut attribute.value, placeholders);
            }
        }
        if let Status::Error { description } = &mut span.status {
            let redacted = self.redactor.redact(description, placeholders);
            if redacted.count > 0 {
                *description = redacted.text.into();
                count += redacted.count;
            }
        }
        if ends_trace {
            traces.forget(trace_id);
        }
        drop(traces);
        if count > 0 {
            span.attributes.push(KeyValue::new(
                conventions::SEXTANT_REDACTION_COUNT,
                count as i64,
            ));
        }
    }

    fn redact_value(&self, value: &mut Value, placeholders: &mut Placeholders) -> usize {
        match value {
            Value::String(text) => self.redact_string(text, placeholders),
            Value::Array(Array::String(items)) => items
                .iter_mut()
                .map(|item| self.redact_string(item, placeholders))
                .sum(),
            _ => 0,
        }
    }

    fn redact_string(&self, text: &mut StringValue, placeholders: &mut Placeholders) -> usize {
        let redacted = self
            .redactor
            .redact_json_or_text(text.as_str(), placeholders);
        if redacted.count > 0 {
            *text = redacted.text.into();
        }
        redacted.count
    }
}

impl TracePlaceholders {
    fn for_trace(&mut self, trace_id: TraceId) -> &mut Placeholders {
        if !self.by_trace.contains_key(&trace_id) {
            if self.order.len() >= TRACES_KEPT
                && let Some(oldest) = self.order.pop_front()
            {
                self.by_trace.remove(&oldest);
            }
            self.order.push_back(trace_id);
        }
        self.by_trace.entry(trace_id).or_default()
    }

    fn forget(&mut self, trace_id: TraceId) {
        if self.by_trace.remove(&trace_id).is_some() {
            self.order.retain(|id| *id != trace_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceFlags, TraceState};
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use sextant_redaction::RedactionConfig;
    use std::borrow::Cow;
    use std::time::SystemTime;

    fn span(trace: u128, parent: u64, attributes: Vec<KeyValue>) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(trace),
                SpanId::from(7),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::from(parent),
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed("chat m"),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    fn pii() -> SpanRedaction {
        SpanRedaction::new(
            Redactor::new(&RedactionConfig {
                pii: true,
                ..RedactionConfig::default()
            })
            .unwrap(),
        )
        .unwrap()
    }

    fn attribute(span: &SpanData, key: &str) -> Option<Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.clone())
    }

    #[test]
    fn placeholders_are_consistent_within_a_trace_and_restart_in_the_next() {
        let redaction = pii();
        let mut child = span(
            1,
            9,
            vec![KeyValue::new(
                "gen_ai.input.messages",
                "write to bob@example.com",
            )],
        );
        redaction.redact(&mut child);
        let mut root = span(
            1,
            0,
            vec![KeyValue::new(
                "gen_ai.output.messages",
                "ada@example.com and bob@example.com",
            )],
        );
        redaction.redact(&mut root);
        assert_eq!(
            attribute(&child, "gen_ai.input.messages").unwrap().as_str(),
            "write to <EMAIL_1>"
        );
        assert_eq!(
            attribute(&root, "gen_ai.output.messages").unwrap().as_str(),
            "<EMAIL_2> and <EMAIL_1>"
        );
        assert_eq!(
            attribute(&root, conventions::SEXTANT_REDACTION_COUNT),
            Some(Value::I64(2))
        );
        // The root ended the trace; its numbering is gone, so a new trace starts again at 1.
        let mut next = span(2, 0, vec![KeyValue::new("x", "carl@example.com")]);
        redaction.redact(&mut next);
        assert_eq!(attribute(&next, "x").unwrap().as_str(), "<EMAIL_1>");
        assert!(redaction.traces.lock().unwrap().by_trace.is_empty());
    }

    #[test]
    fn identity_keys_numbers_and_clean_spans_are_left_alone() {
        let redaction = pii();
        let mut clean = span(
            3,
            0,
            vec![
                KeyValue::new(conventions::SEXTANT_OWNER, "ada@example.com"),
                KeyValue::new(conventions::SERVER_ADDRESS, "10.0.0.8"),
                KeyValue::new("gen_ai.usage.input_tokens", 4111_1111_1111_1111_i64),
                KeyValue::new("gen_ai.output.messages", "nothing personal"),
            ],
        );
        let before = clean.attributes.clone();
        redaction.redact(&mut clean);
        assert_eq!(clean.attributes, before, "no count attribute either");
    }

    #[test]
    fn events_arrays_status_and_json_are_redacted() {
        let redaction = pii();
        let mut failed = span(
            4,
            0,
            vec![
                KeyValue::new(
                    "gen_ai.tool.call.arguments",
                    r#"{"to":"x\nada@example.com","cc":["ada@example.com"]}"#,
                ),
                KeyValue::new(
                    "tags",
                    Value::Array(Array::String(vec!["ada@example.com".into()])),
                ),
            ],
        );
        failed.status = Status::error("could not mail ada@example.com");
        failed.events.events.push(opentelemetry::trace::Event::new(
            "exception",
            SystemTime::now(),
            vec![KeyValue::new(
                "exception.message",
                "card 4111 1111 1111 1111 declined",
            )],
            0,
        ));
        redaction.redact(&mut failed);
        let arguments = attribute(&failed, "gen_ai.tool.call.arguments").unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&arguments.as_str()).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"to": "x\n<EMAIL_1>", "cc": ["<EMAIL_1>"]})
        );
        assert_eq!(
            attribute(&failed, "tags"),
            Some(Value::Array(Array::String(vec!["<EMAIL_1>".into()])))
        );
        assert_eq!(failed.status, Status::error("could not mail <EMAIL_1>"));
        assert_eq!(
            failed.events.events[0].attributes[0].value.as_str(),
            "card <CARD_1> declined"
        );
        assert_eq!(
            attribute(&failed, conventions::SEXTANT_REDACTION_COUNT),
            Some(Value::I64(5))
        );
    }
}
