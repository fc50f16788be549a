//! The built-in code scorers, by name: `is_concise[:WORDS]`, `is_definitive`, `uses_citations`,
//! `is_grounded`, `exact_match`, `latency_under:MS`, `tool_called:NAME`.

use std::sync::Arc;
use std::time::Duration;

use super::scorer::{Feedback, ScoreError, Scorer, ScorerInput, code_scorer};

/// The answer without the list of sources a RAG agent appends (`\n\nSources:\n[1] …`).
pub fn answer_body(output: &str) -> &str {
    output
        .find("\n\nSources:\n")
        .map_or(output, |at| &output[..at])
}

/// At most `max_words` words.
pub fn is_concise(max_words: usize) -> Arc<dyn Scorer> {
    code_scorer("is_concise", move |row: &ScorerInput<'_>| {
        let words = answer_body(row.output).split_whitespace().count();
        Ok(Feedback::pass_fail(
            words <= max_words,
            format!("{words} words (limit {max_words})"),
        ))
    })
}

/// Phrases that hedge instead of answering.
pub const HEDGING_PHRASES: [&str; 12] = [
    "i don't know",
    "i do not know",
    "i'm not sure",
    "i am not sure",
    "it depends",
    "i cannot",
    "i can't",
    "not certain",
    "hard to say",
    "i'm unable",
    "i am unable",
    "no way to know",
];

/// Answers without hedging.
pub fn is_definitive() -> Arc<dyn Scorer> {
    code_scorer("is_definitive", |row: &ScorerInput<'_>| {
        let text = answer_body(row.output).to_lowercase().replace('’', "'");
        Ok(match HEDGING_PHRASES.iter().find(|p| text.contains(*p)) {
            Some(phrase) => Feedback::pass_fail(false, format!("hedges: \"{phrase}\"")),
            None => Feedback::pass_fail(true, "no hedging phrase"),
        })
    })
}

/// The citation markers (`[1]`, `[12]`) in `text`.
fn citation_markers(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'[' {
            let digits = bytes[i + 1..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if digits > 0 && bytes.get(i + 1 + digits) == Some(&b']') {
                found.push(&text[i..i + digits + 2]);
                i += digits + 2;
                continue;
            }
        }
        i += 1;
    }
    found
}

/// Cites sources by number (`[1]`) in the answer itself (the appended sources list does not count).
pub fn uses_citations() -> Arc<dyn Scorer> {
    code_scorer("uses_citations", |row: &ScorerInput<'_>| {
        let markers = citation_markers(answer_body(row.output));
        Ok(if markers.is_empty() {
            Feedback::pass_fail(false, "no [n] citation in the answer")
        } else {
            Feedback::pass_fail(true, format!("cites {}", markers.join(" ")))
        })
    })
}

/// Every sentence of the answer is supported by the documents the turn's retrieval spans
/// returned: most of its content words occur in them. Needs retrieval spans with content.
pub fn is_grounded() -> Arc<dyn Scorer> {
    code_scorer("is_grounded", |row: &ScorerInput<'_>| {
        let documents = row.retrieved_text();
        if documents.is_empty() {
            return Err(ScoreError(
                "the trace has no retrieval spans with document content (is_grounded needs an agent with memory, traced with content capture)".into(),
            ));
        }
        let grounding = crate::grounding::check(answer_body(row.output), &documents);
        if grounding.sentences == 0 {
            return Ok(Feedback::pass_fail(false, "the answer makes no claim"));
        }
        let (sentences, unsupported) = (grounding.sentences, grounding.unsupported);
        let supported = sentences - unsupported.len();
        let mut rationale = format!(
            "{supported}/{sentences} sentences supported by {} retrieved documents",
            documents.len()
        );
        if !unsupported.is_empty() {
            rationale.push_str(&format!(
                "; unsupported: \"{}\"",
                unsupported.join("\"; \"")
            ));
        }
        Ok(Feedback::pass_fail(unsupported.is_empty(), rationale))
    })
}

fn normalize(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_end_matches(['.', '!', '?'])
        .to_lowercase()
}

/// The answer is the expected response (ignoring case, spacing and final punctuation).
pub fn exact_match() -> Arc<dyn Scorer> {
    code_scorer("exact_match", |row: &ScorerInput<'_>| {
        let Some(expected) = &row.expectations.expected_response else {
            return Err(ScoreError(
                "the row has no expectations.expected_response".into(),
            ));
        };
        let matched = normalize(answer_body(row.output)) == normalize(expected);
        Ok(Feedback::pass_fail(
            matched,
            if matched {
                "matches the expected response".to_owned()
            } else {
                format!("expected \"{expected}\"")
            },
        ))
    })
}

/// The turn took less than `limit`.
pub fn latency_under(limit: Duration) -> Arc<dyn Scorer> {
    code_scorer("latency_under", move |row: &ScorerInput<'_>| {
        Ok(Feedback::pass_fail(
            row.latency < limit,
            format!(
                "{:.0} ms (limit {:.0} ms)",
                row.latency.as_secs_f64() * 1e3,
                limit.as_secs_f64() * 1e3
            ),
        ))
    })
}

/// The agent called `tool` (successfully) during the turn.
pub fn tool_called(tool: impl Into<String>) -> Arc<dyn Scorer> {
    let tool = tool.into();
    code_scorer("tool_called", move |row: &ScorerInput<'_>| {
        let calls: Vec<&str> = row.tool_calls.iter().map(|c| c.name.as_str()).collect();
        let ok = row.tool_calls.iter().any(|c| c.name == tool && !c.is_error);
        Ok(Feedback::pass_fail(
            ok,
            if calls.is_empty() {
                "no tool was called".to_owned()
            } else {
                format!("called {}", calls.join(", "))
            },
        ))
    })
}

/// The built-in code scorer `spec` names (`is_concise:30`, `latency_under:5000`,
/// `tool_called:calculator`), `None` for a name that is not one; an invalid argument is an error.
pub fn builtin(spec: &str) -> Option<Result<Arc<dyn Scorer>, String>> {
    let (name, argument) = match spec.split_once(':') {
        Some((name, argument)) => (name.trim(), Some(argument.trim())),
        None => (spec.trim(), None),
    };
    let number = |default: Option<u64>| -> Result<u64, String> {
        match (argument, default) {
            (Some(text), _) => text
                .parse()
                .map_err(|_| format!("`{spec}`: `{text}` is not a whole number")),
            (None, Some(default)) => Ok(default),
            (None, None) => Err(format!("`{name}` needs an argument, e.g. `{name}:5000`")),
        }
    };
    let scorer = match name {
        "is_concise" => number(Some(50)).map(|n| is_concise(n as usize)),
        "is_definitive" => Ok(is_definitive()),
        "uses_citations" => Ok(uses_citations()),
        "is_grounded" => Ok(is_grounded()),
        "exact_match" => Ok(exact_match()),
        "latency_under" => number(None).map(|ms| latency_under(Duration::from_millis(ms))),
        "tool_called" => match argument {
            Some(tool) if !tool.is_empty() => Ok(tool_called(tool)),
            _ => {
                Err("`tool_called` needs the tool's name, e.g. `tool_called:calculator`".to_owned())
            }
        },
        _ => return None,
    };
    Some(scorer)
}

/// The names [`builtin`] knows.
pub const BUILTIN_NAMES: [&str; 7] = [
    "is_concise[:WORDS]",
    "is_definitive",
    "uses_citations",
    "is_grounded",
    "exact_match",
    "latency_under:MS",
    "tool_called:NAME",
];

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};
    use sextant_tracker::StoredSpan;
    use sextant_tracker::conventions;
    use sextant_tracker::trace_store::StoredStatus;

    use super::*;
    use crate::agent::ToolCallRecord;
    use crate::eval::dataset::Expectations;
    use crate::eval::scorer::Verdict;

    struct Row {
        inputs: Map<String, serde_json::Value>,
        output: String,
        expectations: Expectations,
        spans: Vec<StoredSpan>,
        latency: Duration,
        tool_calls: Vec<ToolCallRecord>,
    }

    fn row(output: &str) -> Row {
        Row {
            inputs: Map::new(),
            output: output.to_owned(),
            expectations: Expectations::default(),
            spans: Vec::new(),
            latency: Duration::from_millis(100),
            tool_calls: Vec::new(),
        }
    }

    fn retrieval(documents: &[&str]) -> StoredSpan {
        let docs: Vec<_> = documents
            .iter()
            .enumerate()
            .map(|(i, d)| json!({"id": i.to_string(), "score": 0.9, "content": d}))
            .collect();
        let mut attributes = Map::new();
        attributes.insert(
            conventions::GEN_AI_OPERATION_NAME.into(),
            json!(conventions::operation::RETRIEVAL),
        );
        attributes.insert(
            conventions::GEN_AI_RETRIEVAL_DOCUMENTS.into(),
            json!(serde_json::to_string(&docs).unwrap()),
        );
        StoredSpan {
            name: "retrieval kb".into(),
            trace_id: "0".repeat(32),
            span_id: "1".repeat(16),
            parent_span_id: None,
            start_time_unix_nano: 0,
            end_time_unix_nano: 1,
            kind: "internal".into(),
            status: StoredStatus {
                code: "ok".into(),
                message: String::new(),
            },
            attributes,
            events: Vec::new(),
        }
    }

    async fn judge(scorer: &Arc<dyn Scorer>, row: &Row) -> Result<Feedback, ScoreError> {
        scorer
            .score(&ScorerInput {
                inputs: &row.inputs,
                question: "q",
                output: &row.output,
                expectations: &row.expectations,
                spans: &row.spans,
                latency: row.latency,
                tool_calls: &row.tool_calls,
            })
            .await
    }

    async fn passes(scorer: &Arc<dyn Scorer>, row: &Row) -> bool {
        judge(scorer, row).await.unwrap().value.passed()
    }

    #[tokio::test]
    async fn concise_and_definitive_answers_pass_long_and_hedging_ones_fail() {
        let concise = is_concise(5);
        assert!(passes(&concise, &row("Paris is the capital.")).await);
        assert!(!passes(&concise, &row("Paris is the capital of France, of course.")).await);
        // The appended sources list is not part of the answer's length.
        assert!(
            passes(
                &concise,
                &row("Paris [1].\n\nSources:\n[1] a very long source title here")
            )
            .await
        );
        let feedback = judge(&concise, &row("one two three four five six"))
            .await
            .unwrap();
        assert_eq!(feedback.rationale.as_deref(), Some("6 words (limit 5)"));

        let definitive = is_definitive();
        assert!(passes(&definitive, &row("It is 42.")).await);
        let hedge = judge(&definitive, &row("Honestly, I’m not sure; it could be 42."))
            .await
            .unwrap();
        assert!(!hedge.value.passed());
        assert!(hedge.rationale.unwrap().contains("i'm not sure"));
    }

    #[tokio::test]
    async fn citations_count_only_in_the_answer_body() {
        let cites = uses_citations();
        assert!(
            passes(
                &cites,
                &row("Qdrant stores vectors [2].\n\nSources:\n[2] docs/memory.md")
            )
            .await
        );
        assert!(
            !passes(
                &cites,
                &row("Qdrant stores vectors.\n\nSources:\n[1] docs/memory.md")
            )
            .await
        );
        assert!(!passes(&cites, &row("See [a] or [] or [12")).await);
        assert_eq!(citation_markers("x [1] y [23] z [a]"), ["[1]", "[23]"]);
    }

    #[tokio::test]
    async fn grounded_answers_are_supported_by_the_retrieved_documents() {
        let grounded = is_grounded();
        let mut answer =
            row("Qdrant stores embedding vectors in collections. It answers similarity searches.");
        answer.spans = vec![retrieval(&[
            "Qdrant is a vector database: it stores embedding vectors in collections",
            "Collections answer similarity searches over their vectors.",
        ])];
        let feedback = judge(&grounded, &answer).await.unwrap();
        assert_eq!(feedback.value, Verdict::Bool(true), "{feedback:?}");

        let mut invented =
            row("Qdrant stores embedding vectors. It was founded on Jupiter by penguins.");
        invented.spans = answer.spans.clone();
        let feedback = judge(&grounded, &invented).await.unwrap();
        assert!(!feedback.value.passed());
        assert!(feedback.rationale.unwrap().contains("Jupiter by penguins"));

        // Without retrieval content there is nothing to be grounded in: an error, not a pass.
        let error = judge(&grounded, &row("Anything.")).await.unwrap_err();
        assert!(error.0.contains("no retrieval spans"), "{error}");
    }

    #[tokio::test]
    async fn exact_match_latency_and_tool_calls() {
        let exact = exact_match();
        let mut answer = row("  The answer is   42. ");
        answer.expectations.expected_response = Some("the answer is 42".into());
        assert!(passes(&exact, &answer).await);
        answer.output = "The answer is 43.".into();
        assert!(!passes(&exact, &answer).await);
        assert!(
            judge(&exact, &row("x"))
                .await
                .unwrap_err()
                .0
                .contains("expected_response")
        );

        let fast = latency_under(Duration::from_millis(500));
        assert!(passes(&fast, &row("x")).await);
        let mut slow = row("x");
        slow.latency = Duration::from_millis(900);
        assert!(!passes(&fast, &slow).await);

        let calculator = tool_called("calculator");
        let mut called = row("87");
        assert!(!passes(&calculator, &called).await);
        called.tool_calls.push(ToolCallRecord {
            id: "c0".into(),
            name: "calculator".into(),
            arguments: r#"{"expression": "12*7+3"}"#.into(),
            result: "87".into(),
            is_error: false,
            error_type: None,
            duration_ms: 0.1,
            usage: None,
            blocked: None,
        });
        assert!(passes(&calculator, &called).await);
        called.tool_calls[0].is_error = true;
        assert!(!passes(&calculator, &called).await);
    }

    #[test]
    fn builtins_are_found_by_name_with_their_arguments() {
        assert_eq!(
            builtin("is_concise:30").unwrap().unwrap().name(),
            "is_concise"
        );
        assert_eq!(
            builtin("tool_called:calculator").unwrap().unwrap().name(),
            "tool_called"
        );
        assert!(
            builtin("latency_under")
                .unwrap()
                .unwrap_err()
                .contains("needs an argument")
        );
        assert!(
            builtin("is_concise:many")
                .unwrap()
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(builtin("correctness").is_none());
    }
}
