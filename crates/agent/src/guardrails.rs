//! Guardrails: checks on what goes into a turn and what comes out of it, each with an action for
//! when it fails.
//!
//! A guardrail checks text at one or more [`Stage`]s: the user's input (before any model call),
//! each tool call's arguments (before the tool runs), each tool result (before the model sees it),
//! and the final answer. When the check fails, its [`Action`] decides what happens:
//!
//! - `block`: a tripwire. The turn stops with [`StopReason::Blocked`](crate::StopReason::Blocked)
//!   and the guardrail's safe message, and the agent span names the guardrail
//!   (`sextant.guardrail.blocked`). A blocked input means no model call is made.
//! - `redact`: what the check found is replaced by placeholders, and the turn goes on with that.
//!   Only `regex` and `pii` know what to replace.
//! - `warn`: the turn goes on; the span and the metric record the failure.
//! - `retry` (answers only): the answer goes back to the model once with the reason, then a second
//!   failure blocks.
//!
//! Every check is a `guardrail {name}` span, with its stage, action, result and reason, and adds
//! one to the `sextant.guardrail.checks` metric.
//!
//! Built in ([`GuardrailConfig`], `[[guardrails]]` in an agent file): `max_length`, `regex`
//! (`deny` and `allow` lists), `pii` (the redaction crate's detectors: emails, phone numbers,
//! payment cards, IBANs, IP addresses, API-key-shaped secrets), `json_schema` and `groundedness`
//! (an answer's sentences supported by the turn's retrieved sources), and `llm_judge` (the
//! `guidelines` judge of evaluations, its prompt from the prompt registry, asking the agent's own
//! model whether the text meets your rules). Your own are
//! [`Guardrail`]s, async like tools: [`guardrail_fn`] makes one from a closure.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use regex::Regex;
use serde::{Deserialize, Serialize};
use sextant_tracker::GuardrailMetrics;
use sextant_tracker::conventions as sc;
use sextant_tracker::redaction::{Kind, Placeholders};
use tracing::Instrument;
use tracing::field::Empty;

use crate::output_schema::OutputSchema;

/// Where a guardrail looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The user's message, before anything else.
    Input,
    /// A tool call's arguments, before the tool runs.
    ToolArguments,
    /// A tool's result, before the model sees it.
    ToolResult,
    /// The final answer, before it is returned.
    Output,
}

impl Stage {
    /// `input`, `tool_arguments`, `tool_result`, `output`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::ToolArguments => "tool_arguments",
            Self::ToolResult => "tool_result",
            Self::Output => "output",
        }
    }
}

/// What a failed check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Stop the turn with the guardrail's safe message.
    Block,
    /// Replace what was found and go on.
    Redact,
    /// Record the failure and go on.
    Warn,
    /// Send the answer back to the model once with the reason (answers only).
    Retry,
}

impl Action {
    /// `block`, `redact`, `warn`, `retry`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Redact => "redact",
            Self::Warn => "warn",
            Self::Retry => "retry",
        }
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing wrong.
    Pass,
    /// Something wrong: why (in words that quote no content: it goes on spans), and the text
    /// with what was found replaced, when the guardrail can say that.
    Fail {
        /// Why.
        reason: String,
        /// The text with the offending parts replaced (for `redact`).
        redacted: Option<String>,
    },
}

impl Verdict {
    /// A failure for `reason` that cannot be redacted.
    pub fn fail(reason: impl Into<String>) -> Self {
        Self::Fail {
            reason: reason.into(),
            redacted: None,
        }
    }
}

/// What a check may look at besides the text.
#[derive(Debug, Clone, Copy)]
pub struct CheckContext<'a> {
    /// Where in the turn.
    pub stage: Stage,
    /// The user's question (what an LLM judge weighs an answer against).
    pub question: &'a str,
    /// The tool, at the tool stages.
    pub tool: Option<&'a str>,
    /// The texts of the sources retrieved for the turn (what an answer should be grounded in).
    pub sources: &'a [String],
}

/// A check: built in, or your own.
#[async_trait::async_trait]
pub trait Guardrail: Send + Sync {
    /// Its name, on spans and metrics.
    fn name(&self) -> &str;
    /// Checks `text`; an `Err` is a check that could not be made (a judge that did not answer).
    async fn check(&self, text: &str, context: &CheckContext<'_>) -> Result<Verdict, String>;
}

type CheckFn = dyn for<'a> Fn(
        &'a str,
        CheckContext<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Verdict, String>> + Send + 'a>>
    + Send
    + Sync;

/// A [`Guardrail`] from an async closure; see [`guardrail_fn`].
pub struct GuardrailFn {
    name: String,
    check: Box<CheckFn>,
}

/// A guardrail named `name` that runs `check`.
///
/// ```
/// use sextant_agent::guardrails::{Verdict, guardrail_fn};
/// let no_refunds = guardrail_fn("no_refunds", |text, _context| {
///     let promised = text.to_lowercase().contains("refund");
///     async move {
///         Ok(if promised { Verdict::fail("the answer promises a refund") } else { Verdict::Pass })
///     }
/// });
/// ```
pub fn guardrail_fn<F, Fut>(name: impl Into<String>, check: F) -> GuardrailFn
where
    F: for<'a> Fn(&'a str, CheckContext<'a>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Verdict, String>> + Send + 'static,
{
    GuardrailFn {
        name: name.into(),
        check: Box::new(move |text, context| Box::pin(check(text, context))),
    }
}

#[async_trait::async_trait]
impl Guardrail for GuardrailFn {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self, text: &str, context: &CheckContext<'_>) -> Result<Verdict, String> {
        (self.check)(text, *context).await
    }
}

/// A guardrail where it applies, with what its failure does.
#[derive(Clone)]
pub struct Guarded {
    /// The check.
    pub guardrail: Arc<dyn Guardrail>,
    /// Where it looks.
    pub stages: Vec<Stage>,
    /// What a failure does.
    pub action: Action,
    /// At the tool stages, only these tools (empty: every tool).
    pub tools: Vec<String>,
    /// What a blocked turn answers.
    pub message: String,
}

impl fmt::Debug for Guarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("guardrail", &self.guardrail.name())
            .field("stages", &self.stages)
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

/// `text` as JSON writes it plainly when it is a JSON object or array (escapes such as `\u0040`
/// written out, as whoever parses it will read it), else `text`: what guardrails check, so an
/// escape cannot hide what a pattern or a detector looks for.
pub fn canonical_json(text: &str) -> String {
    let trimmed = text.trim_start();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
    {
        return value.to_string();
    }
    text.to_owned()
}

/// The safe message of a blocked turn unless the guardrail sets its own.
pub const DEFAULT_BLOCK_MESSAGE: &str =
    "I can't help with that request: it was stopped by a safety check.";

impl Guarded {
    /// `guardrail` at `stages`, doing `action` when it fails.
    pub fn new(guardrail: Arc<dyn Guardrail>, stages: &[Stage], action: Action) -> Self {
        Self {
            guardrail,
            stages: stages.to_vec(),
            action,
            tools: Vec::new(),
            message: DEFAULT_BLOCK_MESSAGE.into(),
        }
    }

    fn applies(&self, stage: Stage, tool: Option<&str>) -> bool {
        self.stages.contains(&stage)
            && (self.tools.is_empty() || tool.is_some_and(|t| self.tools.iter().any(|n| n == t)))
    }
}

/// Why a turn was stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    /// The guardrail.
    pub guardrail: String,
    /// Where.
    pub stage: Stage,
    /// Why, as the guardrail said. It may describe what was withheld, so it goes on the
    /// guardrail's span and stays out of what is serialised for clients.
    #[serde(skip_serializing, default)]
    pub reason: String,
    /// What the turn answers.
    pub message: String,
}

/// What the guardrails of one stage made of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Go on with this text (redacted where a `redact` guardrail failed).
    Pass(String),
    /// Stop the turn.
    Block(Blocked),
    /// Ask the model again (answers only). What blocking would say if it fails again: the
    /// first `retry` guardrail that failed, and every failed one's `name: reason`.
    Retry(Blocked),
}

/// An agent's guardrails, run stage by stage.
#[derive(Clone, Default)]
pub struct Guardrails {
    list: Vec<Guarded>,
    metrics: Option<GuardrailMetrics>,
}

impl fmt::Debug for Guardrails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.list).finish()
    }
}

impl Guardrails {
    /// These guardrails, counted on the global meter.
    pub fn new(list: Vec<Guarded>) -> Self {
        Self {
            list,
            metrics: Some(GuardrailMetrics::global()),
        }
    }

    /// Adds one.
    pub fn push(&mut self, guarded: Guarded) {
        self.list.push(guarded);
        self.metrics.get_or_insert_with(GuardrailMetrics::global);
    }

    /// Whether any guardrail looks at `stage`.
    pub fn watches(&self, stage: Stage) -> bool {
        self.list.iter().any(|g| g.stages.contains(&stage))
    }

    /// Runs every guardrail of `context.stage` on `text`, in order, each as a `guardrail {name}`
    /// span: the first `block` (or a `retry`) ends the run; `redact` passes the redacted text on.
    pub async fn check(&self, text: &str, context: CheckContext<'_>) -> Checked {
        let mut text = text.to_owned();
        let mut retry: Option<Blocked> = None;
        for guarded in self
            .list
            .iter()
            .filter(|g| g.applies(context.stage, context.tool))
        {
            let name = guarded.guardrail.name();
            let span = tracing::info_span!(
                sc::GUARDRAIL_SPAN,
                { sc::OTEL_NAME } = %format!("{} {name}", sc::GUARDRAIL_SPAN),
                { sc::OTEL_KIND } = "internal",
                { sc::OTEL_STATUS_CODE } = Empty,
                { sc::OTEL_STATUS_DESCRIPTION } = Empty,
                { sc::SEXTANT_GUARDRAIL_NAME } = name,
                { sc::SEXTANT_GUARDRAIL_STAGE } = context.stage.as_str(),
                { sc::SEXTANT_GUARDRAIL_ACTION } = guarded.action.as_str(),
                { sc::SEXTANT_GUARDRAIL_RESULT } = Empty,
                { sc::SEXTANT_GUARDRAIL_REASON } = Empty,
                { sc::GEN_AI_TOOL_NAME } = context.tool,
                { sc::ERROR_TYPE } = Empty,
            );
            let verdict = guarded
                .guardrail
                .check(&text, &context)
                .instrument(span.clone())
                .await;
            let (result, reason, redacted) = match verdict {
                Ok(Verdict::Pass) => ("pass", None, None),
                Ok(Verdict::Fail { reason, redacted }) => ("fail", Some(reason), redacted),
                Err(error) => ("error", Some(format!("the check failed: {error}")), None),
            };
            span.record(sc::SEXTANT_GUARDRAIL_RESULT, result);
            if let Some(reason) = &reason {
                span.record(sc::SEXTANT_GUARDRAIL_REASON, reason.as_str());
            }
            if let Some(metrics) = &self.metrics {
                metrics.record_check(
                    name,
                    context.stage.as_str(),
                    result,
                    guarded.action.as_str(),
                );
            }
            let Some(reason) = reason else {
                continue;
            };
            // A check that could not be made blocks where a failure would, and warns otherwise.
            let action = match (result, guarded.action) {
                ("error", Action::Block) => Action::Block,
                ("error", _) => Action::Warn,
                (_, action) => action,
            };
            if action == Action::Block {
                sextant_tracker::mark_failed(&span, "guardrail_blocked", &reason);
            }
            match action {
                Action::Block => {
                    return Checked::Block(Blocked {
                        guardrail: name.to_owned(),
                        stage: context.stage,
                        reason,
                        message: guarded.message.clone(),
                    });
                }
                Action::Redact => match redacted {
                    Some(redacted) => text = redacted,
                    None => tracing::warn!(
                        guardrail = name,
                        "a `redact` guardrail failed without saying what to replace; nothing was"
                    ),
                },
                Action::Warn => {}
                Action::Retry => {
                    let reason = format!("{name}: {reason}");
                    match &mut retry {
                        Some(first) => first.reason = format!("{}; {reason}", first.reason),
                        None => {
                            retry = Some(Blocked {
                                guardrail: name.to_owned(),
                                stage: context.stage,
                                reason,
                                message: guarded.message.clone(),
                            })
                        }
                    }
                }
            }
        }
        match retry {
            Some(blocked) => Checked::Retry(blocked),
            None => Checked::Pass(text),
        }
    }
}

/// `[[guardrails]]` in an agent file.
///
/// ```toml
/// [[guardrails]]
/// kind = "pii"                   # max_length | regex | pii | json_schema | groundedness
/// on = ["input", "output"]       # input | tool_arguments | tool_result | output
/// action = "block"               # block | redact | warn | retry (output only)
/// message = "Please don't share personal data here."
///
/// [[guardrails]]
/// name = "no_jailbreak"
/// kind = "regex"
/// on = ["input"]
/// deny = ['(?i)ignore (all )?previous instructions']
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailConfig {
    /// Its name on spans and metrics (default: the kind).
    #[serde(default)]
    pub name: Option<String>,
    /// Which built-in check.
    pub kind: GuardrailKind,
    /// Where it looks.
    pub on: Vec<Stage>,
    /// What a failure does (default `block`).
    #[serde(default = "default_action")]
    pub action: Action,
    /// What a blocked turn answers.
    #[serde(default)]
    pub message: Option<String>,
    /// At the tool stages, only these tools.
    #[serde(default)]
    pub tools: Vec<String>,
    /// `max_length`: most characters.
    #[serde(default)]
    pub max_chars: Option<usize>,
    /// `regex`: patterns the text must not match.
    #[serde(default)]
    pub deny: Vec<String>,
    /// `regex`: patterns of which the text must match one.
    #[serde(default)]
    pub allow: Vec<String>,
    /// `pii`: which kinds (`email`, `phone`, `card`, `iban`, `ip`, `secret`, `token`,
    /// `credentials`; default all).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// `json_schema`: the schema, inline.
    #[serde(default)]
    pub schema: Option<serde_json::Value>,
    /// `llm_judge`: the rules the text must meet, in plain words.
    #[serde(default)]
    pub guidelines: Vec<String>,
}

/// What an `llm_judge` guardrail asks: a model, and the registry its prompt is versioned in.
#[derive(Clone)]
pub struct JudgeParts {
    /// The model judging (the agent's own).
    pub model: Arc<dyn crate::ChatModel>,
    /// Where the judge prompt lives (`prompts:/judge-guidelines@production`).
    pub prompts: Arc<dyn sextant_tracker::prompts::PromptRegistry>,
}

fn default_action() -> Action {
    Action::Block
}

/// The built-in checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailKind {
    /// At most `max_chars` characters.
    MaxLength,
    /// No `deny` pattern matches, and one `allow` pattern does when any is given.
    Regex,
    /// No personal data or secret of `kinds`.
    Pii,
    /// JSON of `schema`.
    JsonSchema,
    /// Every sentence supported by the turn's retrieved sources (answers of agents with memory).
    Groundedness,
    /// An LLM judge's verdict on `guidelines` (needs the `eval` feature).
    LlmJudge,
}

impl GuardrailConfig {
    /// Whether it can be built (with a judge, where it needs one): what loading an agent file
    /// checks.
    pub fn check(&self) -> Result<(), String> {
        if self.kind == GuardrailKind::LlmJudge {
            if self.guidelines.is_empty() {
                return Err(format!(
                    "guardrail `{}`: `llm_judge` needs `guidelines`",
                    self.name.as_deref().unwrap_or("llm_judge")
                ));
            }
            if !cfg!(feature = "eval") {
                return Err("`llm_judge` guardrails need the cargo feature `eval`".into());
            }
            return self.common().map(drop);
        }
        self.build(None).map(drop)
    }

    /// The name, after checking what every kind shares (stages, action).
    fn common(&self) -> Result<String, String> {
        let kind_name = format!("{:?}", self.kind);
        let name = self.name.clone().unwrap_or_else(|| snake(&kind_name));
        if self.on.is_empty() {
            return Err(format!("guardrail `{name}`: `on` names no stage"));
        }
        if self.action == Action::Retry && self.on.iter().any(|s| *s != Stage::Output) {
            return Err(format!(
                "guardrail `{name}`: `retry` asks the model again, so it applies to `output` only"
            ));
        }
        if !self.tools.is_empty()
            && !self
                .on
                .iter()
                .any(|s| matches!(s, Stage::ToolArguments | Stage::ToolResult))
        {
            return Err(format!(
                "guardrail `{name}`: `tools` narrows the tool stages, and `on` names none \
                 (add tool_arguments or tool_result)"
            ));
        }
        if self.action == Action::Redact
            && !matches!(self.kind, GuardrailKind::Regex | GuardrailKind::Pii)
        {
            return Err(format!(
                "guardrail `{name}`: only `regex` and `pii` know what to redact; use block, warn or retry"
            ));
        }
        Ok(name)
    }

    /// The guardrail this describes, or what is wrong with it; an `llm_judge` asks `judge`.
    pub fn build(&self, judge: Option<&JudgeParts>) -> Result<Guarded, String> {
        let name = self.common()?;
        let guardrail: Arc<dyn Guardrail> = match self.kind {
            GuardrailKind::MaxLength => Arc::new(MaxLength {
                name: name.clone(),
                max_chars: self
                    .max_chars
                    .ok_or_else(|| format!("guardrail `{name}`: `max_length` needs `max_chars`"))?,
            }),
            GuardrailKind::Regex => {
                let compile = |list: &[String], key: &str| {
                    list.iter()
                        .enumerate()
                        .map(|(i, p)| {
                            Regex::new(p).map_err(|e| {
                                format!("guardrail `{name}`: `{key}[{i}]` does not compile: {e}")
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                };
                let (deny, allow) = (compile(&self.deny, "deny")?, compile(&self.allow, "allow")?);
                if deny.is_empty() && allow.is_empty() {
                    return Err(format!(
                        "guardrail `{name}`: `regex` needs `deny` or `allow`"
                    ));
                }
                Arc::new(RegexGuard {
                    name: name.clone(),
                    deny,
                    allow,
                })
            }
            GuardrailKind::Pii => Arc::new(PiiGuard::new(&name, &self.kinds)?),
            GuardrailKind::JsonSchema => {
                let schema = self
                    .schema
                    .clone()
                    .ok_or_else(|| format!("guardrail `{name}`: `json_schema` needs `schema`"))?;
                Arc::new(SchemaGuard {
                    name: name.clone(),
                    schema: OutputSchema::new(crate::output_schema::sanitize_name(&name), schema)
                        .map_err(|e| format!("guardrail `{name}`: {e}"))?,
                })
            }
            GuardrailKind::Groundedness => Arc::new(Groundedness { name: name.clone() }),
            GuardrailKind::LlmJudge => judge_guardrail(&name, &self.guidelines, judge)?,
        };
        let mut guarded = Guarded::new(guardrail, &self.on, self.action);
        guarded.tools = self.tools.clone();
        if let Some(message) = &self.message {
            guarded.message = message.clone();
        }
        Ok(guarded)
    }
}

fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(feature = "eval")]
fn judge_guardrail(
    name: &str,
    guidelines: &[String],
    judge: Option<&JudgeParts>,
) -> Result<Arc<dyn Guardrail>, String> {
    if guidelines.is_empty() {
        return Err(format!(
            "guardrail `{name}`: `llm_judge` needs `guidelines`"
        ));
    }
    let judge = judge.ok_or_else(|| {
        format!("guardrail `{name}`: an `llm_judge` needs a model and a prompt registry")
    })?;
    Ok(Arc::new(JudgeGuard {
        name: name.to_owned(),
        judge: crate::eval::judges::LlmJudge::guidelines(
            name,
            guidelines.to_vec(),
            judge.model.clone(),
            judge.prompts.clone(),
        ),
    }))
}

#[cfg(not(feature = "eval"))]
fn judge_guardrail(
    _: &str,
    _: &[String],
    _: Option<&JudgeParts>,
) -> Result<Arc<dyn Guardrail>, String> {
    Err("`llm_judge` guardrails need the cargo feature `eval`".into())
}

/// The evaluations' `guidelines` judge, asked about one text.
#[cfg(feature = "eval")]
struct JudgeGuard {
    name: String,
    judge: crate::eval::judges::LlmJudge,
}

#[cfg(feature = "eval")]
#[async_trait::async_trait]
impl Guardrail for JudgeGuard {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self, text: &str, context: &CheckContext<'_>) -> Result<Verdict, String> {
        use crate::eval::scorer::{Scorer, ScorerInput};
        let inputs = serde_json::Map::new();
        let expectations = crate::eval::dataset::Expectations::default();
        let input = ScorerInput {
            inputs: &inputs,
            question: context.question,
            output: text,
            expectations: &expectations,
            spans: &[],
            latency: std::time::Duration::ZERO,
            tool_calls: &[],
        };
        let feedback = self.judge.score(&input).await.map_err(|e| e.to_string())?;
        // The judge's rationale quotes the text, so the span gets only the verdict.
        Ok(if feedback.value.passed() {
            Verdict::Pass
        } else {
            Verdict::fail("the judge found the guidelines not met")
        })
    }
}

struct MaxLength {
    name: String,
    max_chars: usize,
}

#[async_trait::async_trait]
impl Guardrail for MaxLength {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self, text: &str, _: &CheckContext<'_>) -> Result<Verdict, String> {
        let chars = text.chars().count();
        Ok(if chars > self.max_chars {
            Verdict::fail(format!("{chars} characters, more than {}", self.max_chars))
        } else {
            Verdict::Pass
        })
    }
}

struct RegexGuard {
    name: String,
    deny: Vec<Regex>,
    allow: Vec<Regex>,
}

#[async_trait::async_trait]
impl Guardrail for RegexGuard {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self, text: &str, _: &CheckContext<'_>) -> Result<Verdict, String> {
        let denied: Vec<usize> = (0..self.deny.len())
            .filter(|i| self.deny[*i].is_match(text))
            .collect();
        if !denied.is_empty() {
            let mut redacted = text.to_owned();
            for index in &denied {
                redacted = self.deny[*index]
                    .replace_all(&redacted, "<REDACTED>")
                    .into_owned();
            }
            let which: Vec<String> = denied.iter().map(|i| format!("deny[{i}]")).collect();
            return Ok(Verdict::Fail {
                reason: format!("matches {}", which.join(", ")),
                redacted: Some(redacted),
            });
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|r| r.is_match(text)) {
            return Ok(Verdict::fail("matches no `allow` pattern"));
        }
        Ok(Verdict::Pass)
    }
}

struct PiiGuard {
    name: String,
    kinds: Vec<Kind>,
}

impl PiiGuard {
    fn new(name: &str, kinds: &[String]) -> Result<Self, String> {
        let all: Vec<Kind> = Kind::PII
            .iter()
            .chain(Kind::SECRETS.iter())
            .copied()
            .collect();
        let kinds = if kinds.is_empty() {
            all
        } else {
            kinds
                .iter()
                .map(|wanted| {
                    all.iter()
                        .copied()
                        .find(|k| k.label().eq_ignore_ascii_case(wanted))
                        .ok_or_else(|| {
                            let labels: Vec<String> =
                                all.iter().map(|k| k.label().to_lowercase()).collect();
                            format!(
                                "guardrail `{name}`: `{wanted}` is not a kind; use {}",
                                labels.join(", ")
                            )
                        })
                })
                .collect::<Result<_, _>>()?
        };
        Ok(Self {
            name: name.to_owned(),
            kinds,
        })
    }
}

#[async_trait::async_trait]
impl Guardrail for PiiGuard {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self, text: &str, _: &CheckContext<'_>) -> Result<Verdict, String> {
        let found = sextant_tracker::redaction::detect(text, &self.kinds);
        if found.is_empty() {
            return Ok(Verdict::Pass);
        }
        let mut labels: Vec<&str> = found.iter().map(|f| f.kind.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        // Replace only the kinds this guardrail looks for.
        let mut redacted = String::with_capacity(text.len());
        let mut placeholders = Placeholders::default();
        let mut at = 0;
        for finding in &found {
            redacted.push_str(&text[at..finding.range.start]);
            let value = &text[finding.range.clone()];
            redacted.push_str(&placeholders.placeholder_for(finding.kind, value));
            at = finding.range.end;
        }
        redacted.push_str(&text[at..]);
        Ok(Verdict::Fail {
            reason: format!(
                "found {} value(s) of kind {}",
                found.len(),
                labels.join(", ").to_lowercase()
            ),
            redacted: Some(redacted),
        })
    }
}

struct SchemaGuard {
    name: String,
    schema: OutputSchema,
}

#[async_trait::async_trait]
impl Guardrail for SchemaGuard {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self, text: &str, _: &CheckContext<'_>) -> Result<Verdict, String> {
        Ok(match self.schema.parse(text) {
            Ok(_) => Verdict::Pass,
            Err(violation) => Verdict::fail(violation.message),
        })
    }
}

struct Groundedness {
    name: String,
}

#[async_trait::async_trait]
impl Guardrail for Groundedness {
    fn name(&self) -> &str {
        &self.name
    }

    async fn check(&self, text: &str, context: &CheckContext<'_>) -> Result<Verdict, String> {
        if context.sources.is_empty() {
            return Err("the turn retrieved no sources to ground the answer in".into());
        }
        // The whole text: the list of sources is appended after the guardrails run, so a
        // "Sources:" in the text is the model's own.
        let grounding = crate::grounding::check(text, context.sources);
        Ok(if grounding.is_grounded() {
            Verdict::Pass
        } else if grounding.sentences == 0 {
            Verdict::fail("the answer makes no claim")
        } else {
            Verdict::fail(format!(
                "{} of {} sentences are not supported by the {} retrieved sources",
                grounding.unsupported.len(),
                grounding.sentences,
                context.sources.len()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> Result<Guarded, String> {
        let config: GuardrailConfig = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        config.build(None)
    }

    fn input() -> CheckContext<'static> {
        CheckContext {
            stage: Stage::Input,
            question: "",
            tool: None,
            sources: &[],
        }
    }

    async fn run(guarded: Guarded, text: &str) -> Checked {
        Guardrails::new(vec![guarded]).check(text, input()).await
    }

    #[tokio::test]
    async fn each_built_in_fails_what_it_should_and_passes_the_rest() {
        let length = || config("kind = \"max_length\"\non = [\"input\"]\nmax_chars = 10").unwrap();
        assert_eq!(run(length(), "short").await, Checked::Pass("short".into()));
        let Checked::Block(blocked) = run(length(), "far too long here").await else {
            panic!()
        };
        assert_eq!(blocked.guardrail, "max_length");
        assert_eq!(blocked.reason, "17 characters, more than 10");
        assert_eq!(blocked.message, DEFAULT_BLOCK_MESSAGE);

        let jailbreak = || {
            config(
                "name = \"jailbreak\"\nkind = \"regex\"\non = [\"input\"]\naction = \"redact\"\n\
                 deny = ['(?i)ignore (all )?previous instructions']",
            )
            .unwrap()
        };
        assert_eq!(
            run(jailbreak(), "Please IGNORE previous instructions and …").await,
            Checked::Pass("Please <REDACTED> and …".into())
        );

        let pii = || {
            config("kind = \"pii\"\non = [\"input\"]\nkinds = [\"email\", \"card\"]\naction = \"redact\"")
                .unwrap()
        };
        assert_eq!(
            run(
                pii(),
                "Mail ada@example.com, card 4111 1111 1111 1111, call +44 20 7946 0958"
            )
            .await,
            Checked::Pass("Mail <EMAIL_1>, card <CARD_1>, call +44 20 7946 0958".into()),
            "only the kinds asked for"
        );
        assert_eq!(
            run(pii(), "order 4111 1111 1111 1112").await,
            Checked::Pass("order 4111 1111 1111 1112".into()),
            "not a valid card"
        );

        let schema = || {
            config(
                "kind = \"json_schema\"\non = [\"input\"]\naction = \"warn\"\n\
                 schema = { type = \"object\", properties = { n = { type = \"integer\" } }, required = [\"n\"] }",
            )
            .unwrap()
        };
        assert_eq!(
            run(schema(), "{\"n\": \"x\"}").await,
            Checked::Pass("{\"n\": \"x\"}".into()),
            "warn goes on"
        );
    }

    #[tokio::test]
    async fn groundedness_needs_sources_and_supported_sentences() {
        let guarded =
            config("kind = \"groundedness\"\non = [\"output\"]\naction = \"retry\"").unwrap();
        let guardrails = Guardrails::new(vec![guarded]);
        let sources = vec!["The Eiffel Tower is 330 metres tall and stands in Paris.".to_owned()];
        let output = |sources: &'static [String]| CheckContext {
            stage: Stage::Output,
            question: "Where is it?",
            tool: None,
            sources,
        };
        let sources: &'static [String] = Box::leak(sources.into_boxed_slice());
        assert!(matches!(
            guardrails
                .check("The Eiffel Tower stands in Paris.", output(sources))
                .await,
            Checked::Pass(_)
        ));
        assert_eq!(
            guardrails
                .check("The Colosseum was built by Vespasian.", output(sources))
                .await,
            Checked::Retry(Blocked {
                guardrail: "groundedness".into(),
                stage: Stage::Output,
                reason:
                    "groundedness: 1 of 1 sentences are not supported by the 1 retrieved sources"
                        .into(),
                message: DEFAULT_BLOCK_MESSAGE.into(),
            })
        );
        // No sources: the check cannot be made, which warns (the action is not `block`).
        assert!(matches!(
            guardrails.check("Anything.", output(&[])).await,
            Checked::Pass(_)
        ));
    }

    #[test]
    fn configurations_that_cannot_work_are_refused_with_the_reason() {
        let cases = [
            (
                "kind = \"max_length\"\non = [\"input\"]",
                "needs `max_chars`",
            ),
            (
                "kind = \"regex\"\non = [\"input\"]\ndeny = ['(']",
                "`deny[0]` does not compile",
            ),
            (
                "kind = \"regex\"\non = [\"input\"]",
                "needs `deny` or `allow`",
            ),
            (
                "kind = \"pii\"\non = [\"input\"]\nkinds = [\"ssn\"]",
                "`ssn` is not a kind",
            ),
            (
                "kind = \"pii\"\non = [\"input\"]\naction = \"retry\"",
                "applies to `output` only",
            ),
            (
                "kind = \"max_length\"\non = [\"output\"]\nmax_chars = 5\naction = \"redact\"",
                "only `regex` and `pii`",
            ),
            ("kind = \"pii\"\non = []", "names no stage"),
            (
                "kind = \"pii\"\non = [\"input\"]\ntools = [\"http_fetch\"]",
                "`on` names none",
            ),
            (
                "kind = \"llm_judge\"\non = [\"output\"]",
                "needs `guidelines`",
            ),
            (
                "kind = \"llm_judge\"\non = [\"output\"]\nguidelines = [\"be kind\"]",
                "needs a model",
            ),
        ];
        for (text, expected) in cases {
            let error = config(text).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
        assert!(
            config("kind = \"pii\"\non = [\"input\"]\nactoin = \"block\"")
                .unwrap_err()
                .contains("unknown field")
        );
    }

    #[tokio::test]
    async fn custom_guardrails_are_async_functions_and_a_failed_check_blocks_only_where_failure_would()
     {
        let flaky = || {
            Arc::new(guardrail_fn("judge", |_text, _context| async {
                Err::<Verdict, _>("the judge did not answer".to_owned())
            }))
        };
        let block = Guarded::new(flaky(), &[Stage::Input], Action::Block);
        let Checked::Block(blocked) = run(block, "hello").await else {
            panic!()
        };
        assert_eq!(blocked.reason, "the check failed: the judge did not answer");
        let warn = Guarded::new(flaky(), &[Stage::Input], Action::Warn);
        assert_eq!(run(warn, "hello").await, Checked::Pass("hello".into()));
    }
}
