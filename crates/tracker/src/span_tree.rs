//! A trace as a tree of spans, rendered for a terminal:
//!
//! ```text
//! invoke_agent assistant  1520.3 ms  [AGENT]  tokens 120/48
//! ├── prompt rag-system  0.4 ms  [PARSER]
//! ├── chat SmolLM2-135M-Instruct  800.1 ms  [CHAT_MODEL]  model SmolLM2-135M-Instruct  tokens 80/20  finish tool_calls
//! ├── execute_tool calculator  3.2 ms  [TOOL]  tool calculator
//! └── chat SmolLM2-135M-Instruct  700.0 ms  [CHAT_MODEL]  model SmolLM2-135M-Instruct  tokens 40/28  finish stop
//! ```

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use crate::conventions::{self, GenAiSpanKind};
use crate::trace_store::StoredSpan;

/// One span and the spans it parents, ordered by start time.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanNode {
    /// The span.
    pub span: StoredSpan,
    /// Its children, earliest first.
    pub children: Vec<SpanNode>,
}

/// The spans of a trace arranged by parent. Spans whose parent is not among them (a remote
/// parent, or a parent that was dropped) become roots.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanTree {
    /// Root spans, earliest first.
    pub roots: Vec<SpanNode>,
}

impl SpanTree {
    /// Arranges `spans` by parent.
    pub fn build(spans: &[StoredSpan]) -> Self {
        let mut sorted: Vec<&StoredSpan> = spans.iter().collect();
        sorted.sort_by(|a, b| {
            a.start_time_unix_nano
                .cmp(&b.start_time_unix_nano)
                .then_with(|| a.span_id.cmp(&b.span_id))
        });
        let known: HashMap<&str, usize> = sorted
            .iter()
            .enumerate()
            .map(|(index, span)| (span.span_id.as_str(), index))
            .collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); sorted.len()];
        let mut roots = Vec::new();
        for (index, span) in sorted.iter().enumerate() {
            match span
                .parent_span_id
                .as_deref()
                .and_then(|parent| known.get(parent))
            {
                Some(&parent) if parent != index => children[parent].push(index),
                _ => roots.push(index),
            }
        }
        fn node(
            index: usize,
            sorted: &[&StoredSpan],
            children: &[Vec<usize>],
            depth: usize,
        ) -> SpanNode {
            // A parent cycle in corrupt data cannot recurse forever: depth is bounded by the span count.
            let kids = if depth > sorted.len() {
                Vec::new()
            } else {
                children[index]
                    .iter()
                    .map(|&child| node(child, sorted, children, depth + 1))
                    .collect()
            };
            SpanNode {
                span: sorted[index].clone(),
                children: kids,
            }
        }
        Self {
            roots: roots
                .into_iter()
                .map(|root| node(root, &sorted, &children, 0))
                .collect(),
        }
    }

    /// The tree as text, one line per span.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for root in &self.roots {
            render_node(&mut out, root, "", None);
        }
        out
    }
}

impl fmt::Display for SpanTree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// `is_last` is `None` for a root, which gets no branch.
fn render_node(out: &mut String, node: &SpanNode, prefix: &str, is_last: Option<bool>) {
    let (branch, continuation) = match is_last {
        None => ("", ""),
        Some(true) => ("└── ", "    "),
        Some(false) => ("├── ", "│   "),
    };
    let _ = writeln!(out, "{prefix}{branch}{}", summary_line(&node.span));
    let child_prefix = format!("{prefix}{continuation}");
    for (index, child) in node.children.iter().enumerate() {
        render_node(
            out,
            child,
            &child_prefix,
            Some(index + 1 == node.children.len()),
        );
    }
}

/// The span's name, duration and the attributes worth a glance.
pub fn summary_line(span: &StoredSpan) -> String {
    let kind = GenAiSpanKind::classify(
        span.attribute_str(conventions::GEN_AI_OPERATION_NAME),
        &span.name,
    );
    let mut line = format!(
        "{}  {:.1} ms  [{}]",
        span.name,
        span.duration().as_secs_f64() * 1e3,
        kind.mlflow_span_type()
    );
    let model = span
        .attribute_str(conventions::GEN_AI_RESPONSE_MODEL)
        .or_else(|| span.attribute_str(conventions::GEN_AI_REQUEST_MODEL));
    if let Some(model) = model {
        let _ = write!(line, "  model {model}");
    }
    let input = span.attribute_i64(conventions::GEN_AI_USAGE_INPUT_TOKENS);
    let output = span.attribute_i64(conventions::GEN_AI_USAGE_OUTPUT_TOKENS);
    if input.is_some() || output.is_some() {
        let show = |n: Option<i64>| n.map_or("-".to_string(), |n| n.to_string());
        let _ = write!(line, "  tokens {}/{}", show(input), show(output));
    }
    if let Some(tool) = span.attribute_str(conventions::GEN_AI_TOOL_NAME) {
        let _ = write!(line, "  tool {tool}");
    }
    if let Some(reasons) = finish_reasons(span) {
        let _ = write!(line, "  finish {reasons}");
    }
    if let Some(uri) = span.attribute_str(conventions::SEXTANT_PROMPT_URI) {
        let _ = write!(line, "  {uri}");
        if let Some(alias) = span.attribute_str(conventions::SEXTANT_PROMPT_ALIAS) {
            let _ = write!(line, " (@{alias})");
        }
    }
    if span.is_error() {
        let message = span.status.message.as_str();
        let error_type = span.attribute_str(conventions::ERROR_TYPE).unwrap_or("");
        let detail = [error_type, message]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        let _ = write!(line, "  ERROR {detail}");
    }
    line.trim_end().to_string()
}

fn finish_reasons(span: &StoredSpan) -> Option<String> {
    match span
        .attributes
        .get(conventions::GEN_AI_RESPONSE_FINISH_REASONS)?
    {
        serde_json::Value::Array(values) => Some(
            values
                .iter()
                .map(|value| {
                    value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_string)
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        serde_json::Value::String(text) => match serde_json::from_str::<Vec<String>>(text) {
            Ok(reasons) => Some(reasons.join(",")),
            Err(_) => Some(text.clone()),
        },
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace_store::StoredStatus;
    use serde_json::{Map, json};

    fn span(
        id: &str,
        parent: Option<&str>,
        name: &str,
        start_ms: u64,
        attributes: serde_json::Value,
    ) -> StoredSpan {
        let attributes: Map<String, serde_json::Value> =
            attributes.as_object().cloned().unwrap_or_default();
        StoredSpan {
            name: name.into(),
            trace_id: "0".repeat(32),
            span_id: id.into(),
            parent_span_id: parent.map(str::to_string),
            start_time_unix_nano: start_ms * 1_000_000,
            end_time_unix_nano: (start_ms + 5) * 1_000_000,
            kind: "internal".into(),
            status: StoredStatus {
                code: "unset".into(),
                message: String::new(),
            },
            attributes,
            events: vec![],
        }
    }

    /// Depth of a rendered line: the number of 4-column tree segments before the span name.
    fn depth(line: &str) -> usize {
        let chars: Vec<char> = line.chars().collect();
        let mut depth = 0;
        while chars.len() >= (depth + 1) * 4
            && matches!(chars[depth * 4], '│' | '├' | '└' | ' ')
            && chars[depth * 4 + 1..depth * 4 + 4]
                .iter()
                .all(|c| matches!(c, '─' | ' '))
        {
            depth += 1;
        }
        depth
    }

    #[test]
    fn a_prompt_span_shows_the_version_it_resolved_and_the_alias() {
        let spans = vec![span(
            "p",
            None,
            "prompt qa",
            0,
            json!({"sextant.prompt.uri": "prompts:/qa/2", "sextant.prompt.alias": "production"}),
        )];
        let text = SpanTree::build(&spans).render();
        assert!(
            text.contains("[PARSER]  prompts:/qa/2 (@production)"),
            "{text}"
        );
    }

    #[test]
    fn renders_one_line_per_span_in_start_order_with_depth() {
        // Given out of order, with an orphan whose parent was never stored.
        let spans = vec![
            span(
                "c2",
                Some("a"),
                "chat m",
                30,
                json!({
                    "gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                    "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 8,
                    "gen_ai.response.finish_reasons": ["stop"],
                }),
            ),
            span(
                "t",
                Some("a"),
                "execute_tool calculator",
                20,
                json!({
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "calculator",
                }),
            ),
            span(
                "a",
                None,
                "invoke_agent assistant",
                0,
                json!({"gen_ai.operation.name": "invoke_agent"}),
            ),
            span("p", Some("t"), "plan_query", 21, json!({})),
            span(
                "c1",
                Some("a"),
                "chat m",
                10,
                json!({"gen_ai.usage.input_tokens": 12}),
            ),
            span("o", Some("missing"), "rerank", 50, json!({})),
        ];
        let text = SpanTree::build(&spans).render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), spans.len());

        let order: Vec<&str> = lines
            .iter()
            .map(|line| line.trim_start_matches(['│', '├', '└', '─', ' ']))
            .map(|line| line.split("  ").next().unwrap())
            .collect();
        assert_eq!(
            order,
            [
                "invoke_agent assistant",
                "chat m",
                "execute_tool calculator",
                "plan_query",
                "chat m",
                "rerank"
            ]
        );
        let depths: Vec<usize> = lines.iter().map(|line| depth(line)).collect();
        assert_eq!(depths, [0, 1, 1, 2, 1, 0]);

        assert!(lines[1].starts_with("├── "));
        assert!(lines[3].starts_with("│   └── "), "{}", lines[3]);
        assert!(
            lines[4].starts_with("└── "),
            "the last child closes the branch"
        );
        assert!(lines[0].contains("[AGENT]") && lines[0].contains("5.0 ms"));
        assert!(lines[1].contains("tokens 12/-"));
        assert!(lines[2].contains("tool calculator") && lines[2].contains("[TOOL]"));
        assert!(
            lines[4].contains("model m")
                && lines[4].contains("tokens 40/8")
                && lines[4].contains("finish stop")
        );
        assert!(lines[5].contains("[RERANKER]"));
    }

    #[test]
    fn error_status_is_shown() {
        let mut failed = span("x", None, "chat m", 0, json!({"error.type": "timeout"}));
        failed.status = StoredStatus {
            code: "error".into(),
            message: "no answer in 30 s".into(),
        };
        let text = SpanTree::build(&[failed]).render();
        assert!(text.contains("ERROR timeout: no answer in 30 s"), "{text}");
    }
}
