//! Online evaluation: `[[serve.monitors]]` scorers (the code scorers and LLM judges of
//! `sextant eval`) judge finished turns in the background, a sampled share of those a filter
//! picks. A turn's response never waits for them: finished turns go into a bounded queue, and
//! when it is full the turn is not judged and the drop is counted. Each score becomes an
//! assessment of the turn's trace (kept locally, and on MLflow when it is the tracking backend),
//! a `gen_ai.evaluation.result` event in that trace, and metrics: `sextant.monitor.*` on
//! `/metrics` and `monitor/{scorer}/pass_rate` over the window on the service's tracking run.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Map, Value, json};
use sextant_agent::eval::dataset::Expectations;
use sextant_agent::eval::scorer::{Feedback as Score, ScoreError, Scorer, ScorerInput, ScorerKind};
use sextant_agent::eval::{judges::JudgeKind, resolve_scorer, scorers};
use sextant_agent::{AgentOutcome, StopReason, ToolCallRecord};
use sextant_tracker::conventions as sc;
use sextant_tracker::tracking::{
    Assessment, AssessmentSource, AssessmentSourceType, FeedbackError,
};
use sextant_tracker::{MonitorMetrics, StoredSpan, TraceFilter};
use tokio::sync::mpsc;

use crate::server::ServiceState;

/// `[[serve.monitors]]`: one scorer judging finished turns.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// The scorer, as `sextant eval --scorers` names it: `is_concise:30`, `tool_called:calculator`,
    /// `relevance_to_query` (an LLM judge) …
    pub scorer: String,
    /// The share of finished turns it judges, 0 to 1.
    #[serde(default = "everything")]
    pub sample: f64,
    /// Which turns: a trace filter (`sextant traces search`'s language), e.g.
    /// `agent = 'assistant' and duration_ms > 1000`; empty: every turn.
    #[serde(default)]
    pub filter: String,
    /// For an LLM judge: the agent whose model judges (a stem the service serves); default: the
    /// judged turn's own agent.
    #[serde(default)]
    pub judge: Option<String>,
}

fn everything() -> f64 {
    1.0
}

/// `[serve.monitoring]`: the monitors' queue and window.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringConfig {
    /// Finished turns waiting to be judged at most; more are dropped (and counted).
    pub queue: usize,
    /// The window pass rates are computed over, in seconds.
    pub window_secs: f64,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            queue: 256,
            window_secs: 3600.0,
        }
    }
}

/// A finished turn, as the monitors judge it.
#[derive(Debug, Clone)]
pub(crate) struct FinishedTurn {
    pub trace_id: String,
    pub agent: String,
    pub question: String,
    pub answer: String,
    pub latency: Duration,
    pub tool_calls: Vec<ToolCallRecord>,
}

impl FinishedTurn {
    /// The turn `outcome` of `agent` answered, if it is one to judge: finished (not paused) and
    /// traced.
    pub fn of(
        agent: &str,
        question: &str,
        outcome: &AgentOutcome,
        latency: Duration,
    ) -> Option<Self> {
        if outcome.stop_reason == StopReason::AwaitingApproval {
            return None;
        }
        Some(Self {
            trace_id: outcome.trace_id.clone()?,
            agent: agent.to_owned(),
            question: question.to_owned(),
            answer: outcome.answer.clone(),
            latency,
            tool_calls: outcome.tool_calls.clone(),
        })
    }
}

/// One configured monitor, checked.
struct Monitor {
    config: MonitorConfig,
    name: String,
    filter: TraceFilter,
    /// Code scorers are built at start-up; a judge on first use (its model is an agent's).
    scorers: Mutex<BTreeMap<String, Arc<dyn Scorer>>>,
}

/// The pass/fail results of one scorer within the window.
#[derive(Default)]
struct Window {
    results: VecDeque<(Instant, bool)>,
}

impl Window {
    fn push(&mut self, passed: bool, window: Duration) -> f64 {
        let now = Instant::now();
        self.results.push_back((now, passed));
        while let Some((at, _)) = self.results.front() {
            if now.duration_since(*at) > window {
                self.results.pop_front();
            } else {
                break;
            }
        }
        self.rate()
    }

    fn rate(&self) -> f64 {
        let passed = self.results.iter().filter(|(_, p)| *p).count();
        passed as f64 / self.results.len().max(1) as f64
    }
}

/// The service's monitors: their queue, worker and counts.
pub(crate) struct Monitors {
    monitors: Arc<Vec<Monitor>>,
    sender: Mutex<Option<mpsc::Sender<FinishedTurn>>>,
    receiver: Mutex<Option<mpsc::Receiver<FinishedTurn>>>,
    worker: Mutex<Option<tokio::task::JoinHandle<()>>>,
    windows: Arc<Mutex<BTreeMap<String, Window>>>,
    window: Duration,
    metrics: MonitorMetrics,
    pub(crate) dropped: AtomicU64,
    pub(crate) judged: Arc<AtomicU64>,
}

/// Why a monitor cannot be run.
#[derive(Debug, thiserror::Error)]
#[error("serve.monitors[{index}] ({scorer}): {message}")]
pub struct MonitorError {
    index: usize,
    scorer: String,
    message: String,
}

impl Monitors {
    /// Checks `configs` (scorers exist, samples are shares, filters parse).
    pub fn new(
        configs: &[MonitorConfig],
        settings: &MonitoringConfig,
        metrics: MonitorMetrics,
    ) -> Result<Self, MonitorError> {
        let mut monitors = Vec::new();
        for (index, config) in configs.iter().enumerate() {
            let error = |message: String| MonitorError {
                index,
                scorer: config.scorer.clone(),
                message,
            };
            let spec = config.scorer.trim();
            let name = match (scorers::builtin(spec), JudgeKind::from_name(spec)) {
                (Some(Ok(scorer)), _) => scorer.name().to_owned(),
                (Some(Err(message)), _) => return Err(error(message)),
                (None, Some(kind)) => kind.name().to_owned(),
                (None, None) => {
                    return Err(error(format!(
                        "unknown scorer; the scorers are {}, correctness, guidelines, \
                         relevance_to_query, retrieval_groundedness",
                        scorers::BUILTIN_NAMES.join(", ")
                    )));
                }
            };
            if !(0.0..=1.0).contains(&config.sample) {
                return Err(error(format!(
                    "sample {} is not a share between 0 and 1",
                    config.sample
                )));
            }
            let filter = TraceFilter::parse(&config.filter).map_err(|e| error(e.to_string()))?;
            monitors.push(Monitor {
                config: config.clone(),
                name,
                filter,
                scorers: Mutex::new(BTreeMap::new()),
            });
        }
        if settings.queue == 0 {
            return Err(MonitorError {
                index: 0,
                scorer: "serve.monitoring.queue".into(),
                message: "must be at least 1".into(),
            });
        }
        let window = Duration::try_from_secs_f64(settings.window_secs)
            .ok()
            .filter(|w| !w.is_zero())
            .ok_or_else(|| MonitorError {
                index: 0,
                scorer: "serve.monitoring.window_secs".into(),
                message: format!("{} is not a positive duration", settings.window_secs),
            })?;
        let (sender, receiver) = mpsc::channel(settings.queue);
        Ok(Self {
            monitors: Arc::new(monitors),
            sender: Mutex::new(Some(sender)),
            receiver: Mutex::new(Some(receiver)),
            worker: Mutex::new(None),
            windows: Arc::new(Mutex::new(BTreeMap::new())),
            window,
            metrics,
            dropped: AtomicU64::new(0),
            judged: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Whether any monitor is configured.
    pub fn is_empty(&self) -> bool {
        self.monitors.is_empty()
    }

    /// Starts the background worker (once); it holds the service only while judging a turn.
    pub fn start(&self, state: Weak<ServiceState>) {
        let Some(mut receiver) = lock(&self.receiver).take() else {
            return;
        };
        if self.is_empty() {
            return;
        }
        let monitors = self.monitors.clone();
        let windows = self.windows.clone();
        let window = self.window;
        let metrics = self.metrics.clone();
        let judged = self.judged.clone();
        let worker = tokio::spawn(async move {
            while let Some(turn) = receiver.recv().await {
                let Some(state) = state.upgrade() else {
                    break;
                };
                for monitor in monitors.iter() {
                    let result = judge(&state, monitor, &turn).await;
                    let label = match &result {
                        Judged::Skipped => continue,
                        Judged::Scored(score) if score.value.passed() => "pass",
                        Judged::Scored(_) => "fail",
                        Judged::Failed(reason) => {
                            tracing::warn!(
                                "monitor {} could not judge trace {}: {reason}",
                                monitor.name,
                                turn.trace_id
                            );
                            "error"
                        }
                    };
                    judged.fetch_add(1, Ordering::Relaxed);
                    metrics.record_result(&monitor.name, label);
                    if let Judged::Scored(score) = &result {
                        let rate = lock(&windows)
                            .entry(monitor.name.clone())
                            .or_default()
                            .push(score.value.passed(), window);
                        metrics.record_pass_rate(&monitor.name, rate);
                    }
                }
            }
        });
        *lock(&self.worker) = Some(worker);
    }

    /// Queues `turn` for judging; never waits. A full queue drops it (counted).
    pub fn submit(&self, turn: FinishedTurn) {
        if self.is_empty() {
            return;
        }
        let sender = lock(&self.sender).clone();
        let Some(sender) = sender else {
            return;
        };
        if sender.try_send(turn).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.metrics.record_dropped();
        }
    }

    /// Stops taking turns and waits up to `grace` for the queued ones to be judged; what is left
    /// is counted as dropped.
    pub async fn shut_down(&self, grace: Duration) {
        lock(&self.sender).take();
        let worker = lock(&self.worker).take();
        if let Some(mut worker) = worker
            && tokio::time::timeout(grace, &mut worker).await.is_err()
        {
            worker.abort();
            tracing::warn!("the monitors did not finish judging queued turns in time");
        }
    }

    /// The metrics the service's tracking run gets: each scorer's pass rate over the window, and
    /// the turns dropped.
    pub fn snapshot(&self) -> Vec<(String, f64)> {
        if self.is_empty() {
            return Vec::new();
        }
        let mut values: Vec<(String, f64)> = lock(&self.windows)
            .iter()
            .filter(|(_, window)| !window.results.is_empty())
            .map(|(name, window)| (format!("monitor/{name}/pass_rate"), window.rate()))
            .collect();
        values.push((
            "monitor/judged".into(),
            self.judged.load(Ordering::Relaxed) as f64,
        ));
        values.push((
            "monitor/dropped".into(),
            self.dropped.load(Ordering::Relaxed) as f64,
        ));
        values
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

enum Judged {
    /// Not sampled, or the filter does not pick the turn.
    Skipped,
    Scored(Score),
    Failed(String),
}

/// How long a monitor waits for a finished turn's spans to reach the local store.
const SPANS_WAIT: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
];

/// The turn's spans, once its agent span is in the local store (a turn's spans are exported in
/// batches, and the server span ends after the response).
async fn spans_of(state: &ServiceState, trace_id: &str) -> Vec<StoredSpan> {
    let Some(store) = state.telemetry.trace_store().cloned() else {
        return Vec::new();
    };
    for wait in SPANS_WAIT {
        tokio::time::sleep(wait).await;
        if !wait.is_zero() {
            let telemetry = state.telemetry.clone();
            let _ = tokio::task::spawn_blocking(move || telemetry.force_flush()).await;
        }
        let (store, id) = (store.clone(), trace_id.to_owned());
        let spans = tokio::task::spawn_blocking(move || store.spans(&id))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let has_agent = spans.iter().any(|span| {
            span.attribute_str(sc::GEN_AI_OPERATION_NAME) == Some(sc::operation::INVOKE_AGENT)
        });
        if has_agent {
            return spans;
        }
    }
    Vec::new()
}

async fn judge(state: &ServiceState, monitor: &Monitor, turn: &FinishedTurn) -> Judged {
    if monitor.config.sample < 1.0 && rand::random::<f64>() >= monitor.config.sample {
        return Judged::Skipped;
    }
    let spans = spans_of(state, &turn.trace_id).await;
    if !monitor.filter.is_empty() {
        let Some(store) = state.telemetry.trace_store().cloned() else {
            return Judged::Skipped;
        };
        let (filter, id) = (monitor.filter.clone(), turn.trace_id.clone());
        let picked = tokio::task::spawn_blocking(move || store.matches(&filter, &id)).await;
        match picked {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => return Judged::Skipped,
            Ok(Err(error)) => return Judged::Failed(format!("the filter failed: {error}")),
            Err(error) => return Judged::Failed(error.to_string()),
        }
    }
    let scorer = match scorer_for(state, monitor, turn).await {
        Ok(scorer) => scorer,
        Err(message) => {
            record(state, monitor, None, turn, &spans, Err(message.as_str())).await;
            return Judged::Failed(message);
        }
    };
    let inputs: Map<String, Value> = [("question".to_owned(), json!(turn.question))]
        .into_iter()
        .collect();
    let expectations = Expectations::default();
    let input = ScorerInput {
        inputs: &inputs,
        question: &turn.question,
        output: &turn.answer,
        expectations: &expectations,
        spans: &spans,
        latency: turn.latency,
        tool_calls: &turn.tool_calls,
    };
    match scorer.score(&input).await {
        Ok(score) => {
            record(state, monitor, Some(&*scorer), turn, &spans, Ok(&score)).await;
            Judged::Scored(score)
        }
        Err(ScoreError(message)) => {
            record(
                state,
                monitor,
                Some(&*scorer),
                turn,
                &spans,
                Err(message.as_str()),
            )
            .await;
            Judged::Failed(message)
        }
    }
}

/// The scorer of `monitor` for `turn`: a code scorer, or a judge asking the model of the
/// configured (else the turn's) agent; built once per judging agent.
async fn scorer_for(
    state: &ServiceState,
    monitor: &Monitor,
    turn: &FinishedTurn,
) -> Result<Arc<dyn Scorer>, String> {
    if let Some(Ok(scorer)) = scorers::builtin(&monitor.config.scorer) {
        return Ok(scorer);
    }
    let judge_agent = monitor.config.judge.clone().unwrap_or(turn.agent.clone());
    if let Some(scorer) = lock(&monitor.scorers).get(&judge_agent) {
        return Ok(scorer.clone());
    }
    let (agent, _) = state
        .agents
        .get(&judge_agent)
        .await
        .map_err(|error| format!("the judge agent `{judge_agent}`: {}", error.message))?;
    let prompts: Arc<dyn sextant_tracker::prompts::PromptRegistry> = state
        .runtime
        .prompt_registry()
        .map_err(|error| format!("the judge's prompts: {error}"))?;
    let scorer = resolve_scorer(&monitor.config.scorer, agent.model(), &prompts)?;
    lock(&monitor.scorers).insert(judge_agent, scorer.clone());
    Ok(scorer)
}

/// The score as an assessment of the turn's trace and as a `gen_ai.evaluation.result` event in
/// it (on an `evaluation {scorer}` span under the turn's agent span).
async fn record(
    state: &ServiceState,
    monitor: &Monitor,
    scorer: Option<&dyn Scorer>,
    turn: &FinishedTurn,
    spans: &[StoredSpan],
    score: Result<&Score, &str>,
) {
    let judge = scorer.is_some_and(|s| s.kind() == ScorerKind::LlmJudge);
    let source_id = scorer.map_or_else(|| monitor.name.clone(), |s| s.source_id());
    let (value, error, rationale, metadata) = match score {
        Ok(score) => (
            Some(json!(score.value)),
            None,
            score.rationale.clone(),
            score.metadata.clone(),
        ),
        Err(message) => (
            None,
            Some(FeedbackError {
                code: "SCORER_ERROR".into(),
                message: message.to_owned(),
            }),
            None,
            BTreeMap::new(),
        ),
    };
    evaluation_event(monitor, turn, spans, score);
    let assessment = Assessment {
        assessment_id: None,
        name: monitor.name.clone(),
        trace_id: turn.trace_id.clone(),
        span_id: None,
        source: AssessmentSource {
            source_type: if judge {
                AssessmentSourceType::LlmJudge
            } else {
                AssessmentSourceType::Code
            },
            source_id,
        },
        create_time_ms: jiff::Timestamp::now().as_millisecond(),
        value,
        error,
        rationale,
        metadata,
    };
    if let Err(error) = state.runtime.log_assessment(assessment).await {
        tracing::warn!(
            "monitor {}: the assessment of trace {} was not recorded: {error}",
            monitor.name,
            turn.trace_id
        );
    }
}

/// `gen_ai.evaluation.result`, as the GenAI conventions define it, parented to the evaluated
/// agent span: an `evaluation {scorer}` span in the turn's trace carrying the event.
fn evaluation_event(
    monitor: &Monitor,
    turn: &FinishedTurn,
    spans: &[StoredSpan],
    score: Result<&Score, &str>,
) {
    let agent_span = spans.iter().find(|span| {
        span.attribute_str(sc::GEN_AI_OPERATION_NAME) == Some(sc::operation::INVOKE_AGENT)
    });
    let span = tracing::info_span!(
        parent: None,
        "evaluation",
        { sc::OTEL_NAME } = %format!("evaluation {}", monitor.name),
        { sc::OTEL_KIND } = "internal",
        { sc::SEXTANT_SCORER } = %monitor.name,
    );
    if let Some(agent_span) = agent_span {
        let traceparent = format!("00-{}-{}-01", turn.trace_id, agent_span.span_id);
        if let Err(error) = sextant_tracker::set_parent_from_traceparent(&span, &traceparent) {
            tracing::debug!("the evaluation span starts a trace of its own: {error}");
        }
    }
    let _entered = span.enter();
    match score {
        Ok(score) => {
            let label = if score.value.passed() { "pass" } else { "fail" };
            tracing::info!(
                { sc::GEN_AI_EVALUATION_NAME } = %monitor.name,
                { sc::GEN_AI_EVALUATION_SCORE_VALUE } = score.value.as_f64(),
                { sc::GEN_AI_EVALUATION_SCORE_LABEL } = label,
                { sc::GEN_AI_EVALUATION_EXPLANATION } = score.rationale.as_deref(),
                "gen_ai.evaluation.result"
            );
        }
        Err(message) => {
            tracing::info!(
                { sc::GEN_AI_EVALUATION_NAME } = %monitor.name,
                { sc::ERROR_TYPE } = "scorer_error",
                { sc::GEN_AI_EVALUATION_EXPLANATION } = message,
                "gen_ai.evaluation.result"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(scorer: &str) -> MonitorConfig {
        MonitorConfig {
            scorer: scorer.into(),
            sample: 1.0,
            filter: String::new(),
            judge: None,
        }
    }

    fn error_of(configs: &[MonitorConfig]) -> String {
        match Monitors::new(
            configs,
            &MonitoringConfig::default(),
            MonitorMetrics::global(),
        ) {
            Ok(_) => panic!("accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn bad_monitors_are_refused_naming_the_entry() {
        assert!(
            error_of(&[config("is_concise:20"), config("nonsense")])
                .contains("serve.monitors[1] (nonsense): unknown scorer")
        );
        assert!(error_of(&[config("latency_under")]).contains("needs an argument"));
        let half = MonitorConfig {
            sample: 1.5,
            ..config("is_concise")
        };
        assert!(error_of(&[half]).contains("between 0 and 1"));
        let filtered = MonitorConfig {
            filter: "agentt = 'a'".into(),
            ..config("is_concise")
        };
        assert!(error_of(&[filtered]).contains("not a trace field"));
        let judge = Monitors::new(
            &[config("relevance_to_query")],
            &MonitoringConfig::default(),
            MonitorMetrics::global(),
        )
        .unwrap();
        assert_eq!(judge.monitors[0].name, "relevance_to_query");
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let monitors = Monitors::new(
            &[config("is_concise")],
            &MonitoringConfig {
                queue: 2,
                window_secs: 60.0,
            },
            MonitorMetrics::global(),
        )
        .unwrap();
        let turn = FinishedTurn {
            trace_id: "0".repeat(32),
            agent: "assistant".into(),
            question: "q".into(),
            answer: "a".into(),
            latency: Duration::ZERO,
            tool_calls: Vec::new(),
        };
        // No worker is running: the queue fills, then drops.
        for _ in 0..5 {
            monitors.submit(turn.clone());
        }
        assert_eq!(monitors.dropped.load(Ordering::Relaxed), 3);
        assert!(
            monitors
                .snapshot()
                .contains(&("monitor/dropped".to_owned(), 3.0))
        );
    }

    #[test]
    fn the_window_forgets_old_results() {
        let mut window = Window::default();
        assert_eq!(window.push(true, Duration::from_secs(60)), 1.0);
        assert_eq!(window.push(false, Duration::from_secs(60)), 0.5);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(window.push(false, Duration::from_millis(10)), 0.0);
    }
}
