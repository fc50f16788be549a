//! LLM judges: `correctness`, `guidelines`, `relevance_to_query`, `retrieval_groundedness`. Each
//! renders its prompt from the prompt registry (`judge-correctness@production`, …; the built-in
//! version is registered on first use, so the registry always holds the exact prompt that judged),
//! asks the judge model to answer through a `verdict` tool (`{"result": "yes"|"no",
//! "rationale": …}` — schema-constrained on the local model), and parses that into a
//! [`Feedback`]. A verdict that cannot be parsed is an error on the row, never a pass.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};
use sextant_tracker::prompts::{PromptFile, push};
use sextant_tracker::prompts::{PromptRegistry, PromptUri, PromptVersion, RegistryError};
use tokio::sync::OnceCell;
use tracing::Instrument;

use super::scorer::{Feedback, ScoreError, Scorer, ScorerInput, ScorerKind};
use super::scorers::answer_body;
use crate::chat::{
    ChatModel, ChatOptions, ChatRequest, ChatResponse, Message, ToolChoice, ToolDefinition,
};

/// Which question a judge answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JudgeKind {
    /// Agrees with `expected_response` (or states `expected_facts`).
    Correctness,
    /// Follows the row's (or the judge's own) guidelines.
    Guidelines,
    /// Addresses the question.
    RelevanceToQuery,
    /// Is supported by the documents the turn retrieved.
    RetrievalGroundedness,
}

impl JudgeKind {
    /// The scorer name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Correctness => "correctness",
            Self::Guidelines => "guidelines",
            Self::RelevanceToQuery => "relevance_to_query",
            Self::RetrievalGroundedness => "retrieval_groundedness",
        }
    }

    /// The kind a scorer name means.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Correctness,
            Self::Guidelines,
            Self::RelevanceToQuery,
            Self::RetrievalGroundedness,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }

    /// The built-in prompt file (also in `configs/prompts/`).
    fn prompt_file(self) -> &'static str {
        match self {
            Self::Correctness => include_str!("../../../../configs/prompts/judge-correctness.toml"),
            Self::Guidelines => include_str!("../../../../configs/prompts/judge-guidelines.toml"),
            Self::RelevanceToQuery => {
                include_str!("../../../../configs/prompts/judge-relevance.toml")
            }
            Self::RetrievalGroundedness => {
                include_str!("../../../../configs/prompts/judge-groundedness.toml")
            }
        }
    }
}

/// The tool the judge answers through.
fn verdict_tool() -> ToolDefinition {
    ToolDefinition {
        name: "verdict".into(),
        description: "Record the verdict on the response.".into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "result": {"type": "string", "enum": ["yes", "no"]},
                "rationale": {"type": "string"},
            },
            "required": ["result", "rationale"],
        }),
        examples: Vec::new(),
    }
}

/// An LLM judge; see the [module docs](self).
pub struct LlmJudge {
    kind: JudgeKind,
    name: String,
    model: Arc<dyn ChatModel>,
    prompts: Arc<dyn PromptRegistry>,
    guidelines: Vec<String>,
    prompt: OnceCell<PromptVersion>,
    capture_content: bool,
}

impl LlmJudge {
    /// A judge of `kind` asking `model`, its prompt from `prompts`.
    pub fn new(
        kind: JudgeKind,
        model: Arc<dyn ChatModel>,
        prompts: Arc<dyn PromptRegistry>,
    ) -> Self {
        Self {
            kind,
            name: kind.name().to_owned(),
            model,
            prompts,
            guidelines: Vec::new(),
            prompt: OnceCell::new(),
            capture_content: false,
        }
    }

    /// Records the judge's prompt and answer on its `chat` span (off by default).
    pub fn with_capture_content(mut self, capture: bool) -> Self {
        self.capture_content = capture;
        self
    }

    /// A `guidelines` judge named `name` with its own rules (used with the row's, if any).
    pub fn guidelines(
        name: impl Into<String>,
        rules: Vec<String>,
        model: Arc<dyn ChatModel>,
        prompts: Arc<dyn PromptRegistry>,
    ) -> Self {
        Self {
            name: name.into(),
            guidelines: rules,
            ..Self::new(JudgeKind::Guidelines, model, prompts)
        }
    }

    /// The prompt version judging (registered from the built-in file if the registry lacks it).
    pub async fn prompt(&self) -> Result<&PromptVersion, RegistryError> {
        self.prompt
            .get_or_try_init(|| async {
                let file = PromptFile::parse(self.kind.prompt_file(), "the built-in judge prompt")?;
                let uri: PromptUri = format!("prompts:/{}@production", file.name).parse()?;
                match self.prompts.load(&uri).await {
                    Ok(version) => Ok(version),
                    Err(RegistryError::NotFound { .. }) => {
                        push(&*self.prompts, &[(file.name.clone().into(), file)], false).await?;
                        self.prompts.load(&uri).await
                    }
                    Err(error) => Err(error),
                }
            })
            .await
    }

    fn variables(&self, input: &ScorerInput<'_>) -> Result<Value, ScoreError> {
        let expectations = input.expectations;
        let mut variables = json!({
            "question": input.question,
            "answer": answer_body(input.output).trim(),
        });
        match self.kind {
            JudgeKind::Correctness => {
                let expected = match (
                    &expectations.expected_response,
                    expectations.expected_facts.is_empty(),
                ) {
                    (Some(response), _) => response.clone(),
                    (None, false) => expectations.expected_facts.join("; "),
                    (None, true) => {
                        return Err(ScoreError(
                            "correctness needs expectations.expected_response or expected_facts"
                                .into(),
                        ));
                    }
                };
                variables["expected"] = json!(expected);
            }
            JudgeKind::Guidelines => {
                let rules: Vec<&String> = self
                    .guidelines
                    .iter()
                    .chain(&expectations.guidelines)
                    .collect();
                if rules.is_empty() {
                    return Err(ScoreError(format!(
                        "{} needs guidelines: in the row's expectations or the scorer's own",
                        self.name
                    )));
                }
                let list: Vec<String> = rules.iter().map(|r| format!("- {r}")).collect();
                variables["guidelines"] = json!(list.join("\n"));
            }
            JudgeKind::RelevanceToQuery => {}
            JudgeKind::RetrievalGroundedness => {
                let documents = input.retrieved_text();
                if documents.is_empty() {
                    return Err(ScoreError(
                        "retrieval_groundedness needs retrieval spans with document content".into(),
                    ));
                }
                variables["context"] = json!(documents.join("\n---\n"));
            }
        }
        Ok(variables)
    }
}

#[async_trait]
impl Scorer for LlmJudge {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ScorerKind {
        ScorerKind::LlmJudge
    }

    fn source_id(&self) -> String {
        self.model.model().to_owned()
    }

    async fn score(&self, input: &ScorerInput<'_>) -> Result<Feedback, ScoreError> {
        let variables = self.variables(input)?;
        let prompt = self
            .prompt()
            .await
            .map_err(|e| ScoreError(format!("the judge prompt: {e}")))?;
        let rendered = prompt
            .render(&variables)
            .map_err(|e| ScoreError(format!("rendering the judge prompt: {e}")))?;
        let messages = match rendered.content {
            sextant_tracker::prompts::RenderedContent::Text(text) => vec![Message::user(text)],
            sextant_tracker::prompts::RenderedContent::Chat(messages) => messages
                .into_iter()
                .map(|m| match m.role.as_str() {
                    "system" => Message::system(m.content),
                    "assistant" => Message::assistant(m.content, Vec::new()),
                    _ => Message::user(m.content),
                })
                .collect(),
        };
        let request = ChatRequest {
            messages,
            tools: vec![verdict_tool()],
            options: ChatOptions {
                temperature: Some(0.0),
                max_tokens: Some(200),
                tool_choice: ToolChoice::Required,
                ..ChatOptions::default()
            },
        };
        // `score {name}` (what was judged, with which prompt) over the judge's `chat {model}`.
        let span = tracing::info_span!(
            "score",
            otel.name = %format!("score {}", self.name),
            otel.kind = "internal",
            sextant.scorer = %self.name,
            sextant.prompt.name = %prompt.name,
            sextant.prompt.version = prompt.version,
        );
        let response = crate::traced_chat::traced_chat(
            self.model.as_ref(),
            &sextant_tracker::GenAiMetrics::global(),
            &crate::prices::PriceTable::built_in(),
            self.capture_content,
            &request,
            None,
        )
        .instrument(span.clone())
        .await
        .map_err(|e| ScoreError(format!("the judge model failed: {e}")))?;
        let mut feedback = parse_verdict(&response)?;
        // What MLflow shows of a judge's cost, and where its own trace is.
        use sextant_tracker::tracking::{
            JUDGE_INPUT_TOKENS_KEY, JUDGE_OUTPUT_TOKENS_KEY, SCORER_TRACE_ID_KEY,
        };
        feedback.metadata.extend([
            (
                JUDGE_INPUT_TOKENS_KEY.to_owned(),
                response.usage.input_tokens.to_string(),
            ),
            (
                JUDGE_OUTPUT_TOKENS_KEY.to_owned(),
                response.usage.output_tokens.to_string(),
            ),
        ]);
        if let Some(trace_id) = sextant_tracker::current_trace_id(&span) {
            feedback
                .metadata
                .insert(SCORER_TRACE_ID_KEY.to_owned(), format!("tr-{trace_id}"));
        }
        Ok(feedback)
    }
}

/// The verdict in a judge's response: the `verdict` tool's arguments, or a JSON object in its
/// text. `result` (or `verdict`) must be yes/no (true/false, pass/fail also read).
pub fn parse_verdict(response: &ChatResponse) -> Result<Feedback, ScoreError> {
    let candidates = response
        .tool_calls
        .iter()
        .map(|call| call.arguments.as_str())
        .chain(std::iter::once(response.content.as_str()));
    for text in candidates {
        if let Some(object) = first_json_object(text)
            && let Some(feedback) = verdict_of(&object)
        {
            return Ok(feedback);
        }
    }
    let shown: String = response
        .tool_calls
        .first()
        .map_or(response.content.as_str(), |c| c.arguments.as_str())
        .chars()
        .take(200)
        .collect();
    Err(ScoreError(format!(
        "the judge's verdict could not be read (expected {{\"result\": \"yes\"|\"no\", \"rationale\": …}}): {shown:?}"
    )))
}

fn verdict_of(object: &Value) -> Option<Feedback> {
    let result = object.get("result").or_else(|| object.get("verdict"))?;
    let passed = match result {
        Value::Bool(b) => *b,
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" | "pass" | "correct" => true,
            "no" | "false" | "fail" | "incorrect" => false,
            _ => return None,
        },
        _ => return None,
    };
    let rationale = object
        .get("rationale")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    Some(Feedback {
        rationale,
        ..Feedback::from(passed)
    })
}

/// The first parseable `{…}` in `text`.
fn first_json_object(text: &str) -> Option<Value> {
    let mut start = text.find('{')?;
    loop {
        let mut depth = 0;
        let mut in_string = false;
        let mut escaped = false;
        for (offset, c) in text[start..].char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_string => escaped = true,
                '"' => in_string = !in_string,
                '{' if !in_string => depth += 1,
                '}' if !in_string => {
                    depth -= 1;
                    if depth == 0 {
                        if let Ok(value) = serde_json::from_str(&text[start..=start + offset]) {
                            return Some(value);
                        }
                        break;
                    }
                }
                _ => {}
            }
        }
        start += 1 + text[start + 1..].find('{')?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{FinishReason, ToolCall, Usage};

    fn response(content: &str, arguments: Option<&str>) -> ChatResponse {
        ChatResponse {
            content: content.into(),
            tool_calls: arguments
                .map(|a| {
                    vec![ToolCall {
                        id: "c".into(),
                        name: "verdict".into(),
                        arguments: a.into(),
                    }]
                })
                .unwrap_or_default(),
            usage: Usage::default(),
            finish_reason: FinishReason::Stop,
            model: "judge".into(),
            id: None,
        }
    }

    #[test]
    fn verdicts_are_read_from_the_tool_call_or_the_text() {
        let from_tool = parse_verdict(&response(
            "",
            Some(r#"{"result": "yes", "rationale": "Same facts."}"#),
        ))
        .unwrap();
        assert!(from_tool.value.passed());
        assert_eq!(from_tool.rationale.as_deref(), Some("Same facts."));
        let from_text = parse_verdict(&response(
            "Sure! Here is my verdict: {\"verdict\": \"No\", \"rationale\": \"Says 43, not {42}.\"} Hope it helps.",
            None,
        ))
        .unwrap();
        assert!(!from_text.value.passed());
        assert_eq!(from_text.rationale.as_deref(), Some("Says 43, not {42}."));
        let boolean = parse_verdict(&response(r#"{"result": true}"#, None)).unwrap();
        assert!(boolean.value.passed() && boolean.rationale.is_none());
    }

    #[test]
    fn malformed_verdicts_are_errors_not_passes() {
        for (content, arguments) in [
            ("The answer looks right to me.", None),
            ("{\"result\": \"maybe\"}", None),
            ("{\"rationale\": \"no result key\"}", None),
            ("", Some("{\"result\": ")),
            ("{not json at all}", None),
        ] {
            let error = parse_verdict(&response(content, arguments)).unwrap_err();
            assert!(error.0.contains("could not be read"), "{content}: {error}");
        }
    }
}
