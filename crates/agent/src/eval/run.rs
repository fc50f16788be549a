//! Running an agent over a dataset and scoring every answer: [`evaluate`] answers the rows
//! (`concurrency` at a time), hands each answer with its trace to every scorer, and aggregates
//! per scorer (mean, pass rate, errors) and over the run (p50/p95 latency, tokens).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sextant_tracker::StoredSpan;
use sextant_tracker::tracking::{
    Assessment, AssessmentSource, AssessmentSourceType, FeedbackError,
};

use super::dataset::Dataset;
use super::scorer::{Feedback, Scorer, ScorerInput, ScorerKind, Verdict};
use crate::agent::{Agent, TurnContext};
use crate::chat::Usage;

/// One scorer's result on one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreOutcome {
    /// Code or a model.
    pub source: ScorerKind,
    /// Which code or model: the scorer's name, or the judge model.
    #[serde(default)]
    pub source_id: String,
    /// The verdict, when the scorer could judge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Verdict>,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    /// Why the scorer could not judge (a failed turn, a missing expectation, an unreadable
    /// judge verdict).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The scorer's metadata (a judge's tokens and trace), carried onto the assessment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// One row's answer and scores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowResult {
    /// The row, from 1.
    pub row: usize,
    /// What was asked.
    pub question: String,
    /// The answer (`None` when the turn failed, or when the agent does not capture content).
    pub answer: Option<String>,
    /// Why the turn failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The turn's trace.
    pub trace_id: Option<String>,
    /// How long the turn took.
    pub latency_ms: f64,
    /// Its tokens.
    pub usage: Usage,
    /// By scorer name.
    pub scores: BTreeMap<String, ScoreOutcome>,
}

impl RowResult {
    /// Each score as an assessment of the row's trace, made at `time_ms` (none when the turn left
    /// no trace). A score without a verdict becomes an assessment carrying the error.
    pub fn assessments(&self, time_ms: i64) -> Vec<Assessment> {
        let Some(trace_id) = &self.trace_id else {
            return Vec::new();
        };
        self.scores
            .iter()
            .map(|(name, score)| Assessment {
                assessment_id: None,
                name: name.clone(),
                trace_id: trace_id.clone(),
                span_id: None,
                source: AssessmentSource {
                    source_type: match score.source {
                        ScorerKind::Code => AssessmentSourceType::Code,
                        ScorerKind::LlmJudge => AssessmentSourceType::LlmJudge,
                    },
                    source_id: if score.source_id.is_empty() {
                        name.clone()
                    } else {
                        score.source_id.clone()
                    },
                },
                create_time_ms: time_ms,
                value: score.value.as_ref().map(|v| json!(v)),
                error: match (&score.value, &score.error) {
                    (None, Some(message)) => Some(FeedbackError {
                        code: "SCORER_ERROR".into(),
                        message: message.clone(),
                    }),
                    (None, None) => Some(FeedbackError {
                        code: "SCORER_ERROR".into(),
                        message: "the scorer returned no verdict".into(),
                    }),
                    _ => None,
                },
                rationale: score.rationale.clone(),
                metadata: score.metadata.clone(),
            })
            .collect()
    }
}

/// One scorer over the whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorerSummary {
    /// Code or a model.
    pub source: ScorerKind,
    /// Rows it judged.
    pub judged: usize,
    /// Rows it could not judge.
    pub errors: usize,
    /// Share of judged rows that passed.
    pub pass_rate: Option<f64>,
    /// Mean value (pass = 1) over judged rows.
    pub mean: Option<f64>,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalReport {
    /// The dataset's name.
    pub dataset: String,
    /// Its digest.
    pub dataset_digest: String,
    /// The agent.
    pub agent: String,
    /// Per row, in dataset order.
    pub rows: Vec<RowResult>,
    /// Per scorer.
    pub scorers: BTreeMap<String, ScorerSummary>,
    /// Turns that failed.
    pub failed_turns: usize,
    /// Median turn latency.
    pub latency_p50_ms: f64,
    /// 95th percentile turn latency.
    pub latency_p95_ms: f64,
    /// Input tokens over all turns.
    pub input_tokens: u64,
    /// Output tokens over all turns.
    pub output_tokens: u64,
    /// What the turns' model calls cost, in the price table's currency; `None` when a model had
    /// no price.
    #[serde(default)]
    pub cost: Option<f64>,
}

impl EvalReport {
    /// Logs the evaluation to `run`: the aggregate [`metrics`](Self::metrics), the per-row results
    /// as [`RESULTS_ARTIFACT`], and every score as an assessment of its row's trace.
    pub fn log_to(&self, run: &sextant_tracker::tracking::ActiveRun) {
        run.log_metrics(self.metrics(), 0);
        match serde_json::to_vec_pretty(self) {
            Ok(bytes) => run.log_artifact(RESULTS_ARTIFACT, bytes),
            Err(error) => tracing::warn!("the evaluation results could not be encoded: {error}"),
        }
        for assessment in self.assessments(sextant_tracker::now_ms()) {
            run.log_assessment(assessment);
        }
    }

    /// Every row's scores as assessments of its trace ([`RowResult::assessments`]).
    pub fn assessments(&self, time_ms: i64) -> Vec<Assessment> {
        self.rows
            .iter()
            .flat_map(|row| row.assessments(time_ms))
            .collect()
    }

    /// The run's metrics, MLflow style: `{scorer}/pass_rate`, `{scorer}/mean`, `latency_p50_ms`, …
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let mut metrics = Vec::new();
        for (name, summary) in &self.scorers {
            if let Some(rate) = summary.pass_rate {
                metrics.push((format!("{name}/pass_rate"), rate));
            }
            if let Some(mean) = summary.mean {
                metrics.push((format!("{name}/mean"), mean));
            }
            metrics.push((format!("{name}/errors"), summary.errors as f64));
        }
        let turns = self.rows.len().max(1) as f64;
        metrics.extend([
            ("rows".to_owned(), self.rows.len() as f64),
            ("failed_turns".to_owned(), self.failed_turns as f64),
            ("latency_p50_ms".to_owned(), self.latency_p50_ms),
            ("latency_p95_ms".to_owned(), self.latency_p95_ms),
            ("input_tokens".to_owned(), self.input_tokens as f64),
            ("output_tokens".to_owned(), self.output_tokens as f64),
            (
                "mean_output_tokens".to_owned(),
                self.output_tokens as f64 / turns,
            ),
        ]);
        if let Some(cost) = self.cost {
            metrics.extend([
                ("cost".to_owned(), cost),
                ("mean_cost".to_owned(), cost / turns),
            ]);
        }
        metrics
    }
}

/// Reads a finished turn's spans by trace id.
pub type SpansOf<'a> = dyn Fn(&str) -> Vec<StoredSpan> + Send + Sync + 'a;

/// The artifact holding an evaluation's per-row results (what `sextant eval compare` reads).
pub const RESULTS_ARTIFACT: &str = "eval_results.json";

/// How [`evaluate`] runs.
pub struct EvalOptions<'a> {
    /// Rows answered at once.
    pub concurrency: usize,
    /// The spans of a finished turn's trace (flushing the pipeline first), for scorers that read
    /// the trace; `None`: scorers see no spans.
    pub spans: Option<&'a SpansOf<'a>>,
    /// Called after each row with (rows done, rows in all).
    pub progress: Option<&'a (dyn Fn(usize, usize) + Send + Sync)>,
}

/// The `q`-quantile of sorted `values` (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `agent` over `dataset` and scores each answer with every scorer. The report holds the
/// answers and the scorers' rationales only when the agent captures content (`sextant eval` turns
/// capture on: scorers read the trace).
pub async fn evaluate(
    agent: &Agent,
    dataset: &Dataset,
    scorers: &[Arc<dyn Scorer>],
    options: &EvalOptions<'_>,
) -> EvalReport {
    let total = dataset.rows.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let mut rows: Vec<RowResult> = futures::stream::iter(dataset.rows.iter().enumerate())
        .map(|(index, row)| {
            let done = &done;
            async move {
                let question = row.question().unwrap_or_default().to_owned();
                let started = Instant::now();
                let turn = agent
                    .run_turn(&[], &question, &TurnContext::default(), None)
                    .await;
                let latency = started.elapsed();
                let mut result = RowResult {
                    row: index + 1,
                    question: question.clone(),
                    answer: None,
                    error: None,
                    trace_id: None,
                    latency_ms: latency.as_secs_f64() * 1e3,
                    usage: Usage::default(),
                    scores: BTreeMap::new(),
                };
                match turn {
                    Ok(outcome) => {
                        let spans = match (&outcome.trace_id, options.spans) {
                            (Some(id), Some(spans)) => spans(id),
                            _ => Vec::new(),
                        };
                        let input = ScorerInput {
                            inputs: &row.inputs,
                            question: &question,
                            output: &outcome.answer,
                            expectations: &row.expectations,
                            spans: &spans,
                            latency,
                            tool_calls: &outcome.tool_calls,
                        };
                        for scorer in scorers {
                            let scored = scorer.score(&input).await;
                            result
                                .scores
                                .insert(scorer.name().to_owned(), outcome_of(&**scorer, scored));
                        }
                        // The results are an artifact like `interaction.json`: the answer and the
                        // judges' rationales (which quote it) follow the agent's content switch.
                        if agent.captures_content() {
                            result.answer = Some(outcome.answer);
                        } else {
                            for score in result.scores.values_mut() {
                                score.rationale = None;
                            }
                        }
                        result.trace_id = outcome.trace_id;
                        result.usage = outcome.usage;
                    }
                    Err(error) => {
                        let message = format!("the turn failed: {error}");
                        for scorer in scorers {
                            result.scores.insert(
                                scorer.name().to_owned(),
                                outcome_of(
                                    &**scorer,
                                    Err(super::scorer::ScoreError(message.clone())),
                                ),
                            );
                        }
                        result.error = Some(message);
                    }
                }
                let finished = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                if let Some(progress) = options.progress {
                    progress(finished, total);
                }
                result
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    rows.sort_by_key(|r| r.row);
    summarize(agent.name(), dataset, scorers, rows)
}

fn outcome_of(
    scorer: &dyn Scorer,
    scored: Result<Feedback, super::scorer::ScoreError>,
) -> ScoreOutcome {
    let (source, source_id) = (scorer.kind(), scorer.source_id());
    match scored {
        Ok(feedback) => ScoreOutcome {
            source,
            source_id,
            value: Some(feedback.value),
            rationale: feedback.rationale,
            error: None,
            metadata: feedback.metadata,
        },
        Err(error) => ScoreOutcome {
            source,
            source_id,
            value: None,
            rationale: None,
            error: Some(error.0),
            metadata: BTreeMap::new(),
        },
    }
}

fn summarize(
    agent: &str,
    dataset: &Dataset,
    scorers: &[Arc<dyn Scorer>],
    rows: Vec<RowResult>,
) -> EvalReport {
    let mut summaries = BTreeMap::new();
    for scorer in scorers {
        let name = scorer.name();
        let values: Vec<&Verdict> = rows
            .iter()
            .filter_map(|r| r.scores.get(name)?.value.as_ref())
            .collect();
        let judged = values.len();
        let share = |count: f64| (judged > 0).then(|| count / judged as f64);
        summaries.insert(
            name.to_owned(),
            ScorerSummary {
                source: scorer.kind(),
                judged,
                errors: rows.len() - judged,
                pass_rate: share(values.iter().filter(|v| v.passed()).count() as f64),
                mean: share(values.iter().map(|v| v.as_f64()).sum()),
            },
        );
    }
    let mut latencies: Vec<f64> = rows.iter().map(|r| r.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    EvalReport {
        dataset: dataset.name.clone(),
        dataset_digest: dataset.digest.clone(),
        agent: agent.to_owned(),
        failed_turns: rows.iter().filter(|r| r.error.is_some()).count(),
        latency_p50_ms: quantile(&latencies, 0.5),
        latency_p95_ms: quantile(&latencies, 0.95),
        input_tokens: rows.iter().map(|r| r.usage.input_tokens).sum(),
        output_tokens: rows.iter().map(|r| r.usage.output_tokens).sum(),
        cost: rows
            .iter()
            .fold(crate::chat::Usage::default(), |mut sum, row| {
                sum += row.usage;
                sum
            })
            .cost(),
        rows,
        scorers: summaries,
    }
}
