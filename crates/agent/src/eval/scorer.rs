//! Scorers: what judges one answer. A scorer sees the row (inputs, expectations), the agent's
//! output and the turn's trace, and returns a [`Feedback`]: a value (pass/fail, a number or a
//! label) and a rationale. Code scorers are plain Rust functions ([`code_scorer`]); LLM judges
//! ([`crate::eval::judges`]) ask a model.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sextant_tracker::StoredSpan;

use crate::agent::ToolCallRecord;
use crate::eval::dataset::Expectations;

/// A scorer's verdict value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Verdict {
    /// Pass or fail.
    Bool(bool),
    /// A score.
    Number(f64),
    /// A category (`yes`, `partially`, …).
    Label(String),
}

impl Verdict {
    /// Whether the verdict counts as a pass: `true`, a number ≥ 0.5 (scores are in 0..1 by
    /// convention), or the labels `yes` / `pass`.
    pub fn passed(&self) -> bool {
        match self {
            Self::Bool(b) => *b,
            Self::Number(n) => *n >= 0.5,
            Self::Label(l) => matches!(l.to_ascii_lowercase().as_str(), "yes" | "pass" | "true"),
        }
    }

    /// The value as a number for aggregation (`true` = 1).
    pub fn as_f64(&self) -> f64 {
        match self {
            Self::Bool(b) => f64::from(u8::from(*b)),
            Self::Number(n) => *n,
            Self::Label(_) => f64::from(u8::from(self.passed())),
        }
    }
}

/// One scorer's judgement of one answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Feedback {
    /// The value.
    pub value: Verdict,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    /// More about the judgement, carried onto its assessment (a judge's tokens and trace).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl Feedback {
    /// A pass/fail verdict with its reason.
    pub fn pass_fail(passed: bool, rationale: impl Into<String>) -> Self {
        Self {
            value: Verdict::Bool(passed),
            rationale: Some(rationale.into()),
            metadata: BTreeMap::new(),
        }
    }
}

impl From<bool> for Feedback {
    fn from(value: bool) -> Self {
        Self {
            value: Verdict::Bool(value),
            rationale: None,
            metadata: BTreeMap::new(),
        }
    }
}

impl From<f64> for Feedback {
    fn from(value: f64) -> Self {
        Self {
            value: Verdict::Number(value),
            rationale: None,
            metadata: BTreeMap::new(),
        }
    }
}

/// Who judges: code or a model (MLflow's assessment source types `CODE` and `LLM_JUDGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScorerKind {
    /// A function.
    Code,
    /// A model.
    LlmJudge,
}

/// Why a scorer could not judge (recorded on the row as an error, never as a pass).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ScoreError(pub String);

/// Everything a scorer may look at for one row.
#[derive(Debug, Clone, Copy)]
pub struct ScorerInput<'a> {
    /// The row's inputs.
    pub inputs: &'a Map<String, Value>,
    /// The question asked.
    pub question: &'a str,
    /// The agent's answer.
    pub output: &'a str,
    /// The row's expectations.
    pub expectations: &'a Expectations,
    /// The turn's spans (empty when the trace store is off).
    pub spans: &'a [StoredSpan],
    /// How long the turn took.
    pub latency: Duration,
    /// The tools it called.
    pub tool_calls: &'a [ToolCallRecord],
}

impl ScorerInput<'_> {
    /// The text of the documents the turn's retrieval spans returned (recorded with content
    /// capture on, which `sextant eval` turns on).
    pub fn retrieved_text(&self) -> Vec<String> {
        self.spans
            .iter()
            .filter(|s| {
                s.attribute_str(sextant_tracker::conventions::GEN_AI_OPERATION_NAME)
                    == Some("retrieval")
            })
            .filter_map(|s| {
                s.attribute_str(sextant_tracker::conventions::GEN_AI_RETRIEVAL_DOCUMENTS)
            })
            .filter_map(|json| serde_json::from_str::<Vec<Value>>(json).ok())
            .flatten()
            .filter_map(|doc| {
                doc.get("content")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect()
    }
}

/// Judges answers.
#[async_trait]
pub trait Scorer: Send + Sync {
    /// The name results and assessments carry (`is_concise`).
    fn name(&self) -> &str;
    /// Code or a model.
    fn kind(&self) -> ScorerKind;
    /// Who judges, as an assessment's source id: the scorer's name for code (the default), the
    /// model for a judge.
    fn source_id(&self) -> String {
        self.name().to_owned()
    }
    /// Judges one answer.
    async fn score(&self, input: &ScorerInput<'_>) -> Result<Feedback, ScoreError>;
}

struct FnScorer<F> {
    name: String,
    f: F,
}

#[async_trait]
impl<F> Scorer for FnScorer<F>
where
    F: Fn(&ScorerInput<'_>) -> Result<Feedback, ScoreError> + Send + Sync,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ScorerKind {
        ScorerKind::Code
    }

    async fn score(&self, input: &ScorerInput<'_>) -> Result<Feedback, ScoreError> {
        (self.f)(input)
    }
}

/// A scorer from a plain function — the one-line way to declare one:
///
/// ```
/// use sextant_agent::eval::scorer::{code_scorer, Feedback};
/// let short = code_scorer("under_20_words", |row| Ok(Feedback::from(row.output.split_whitespace().count() < 20)));
/// assert_eq!(short.name(), "under_20_words");
/// ```
pub fn code_scorer<F, T>(name: impl Into<String>, f: F) -> Arc<dyn Scorer>
where
    F: Fn(&ScorerInput<'_>) -> Result<T, ScoreError> + Send + Sync + 'static,
    T: Into<Feedback>,
{
    Arc::new(FnScorer {
        name: name.into(),
        f: move |input: &ScorerInput<'_>| f(input).map(Into::into),
    })
}

impl std::fmt::Debug for dyn Scorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scorer")
            .field("name", &self.name())
            .field("kind", &self.kind())
            .finish()
    }
}
