//! Evaluation: LLM output is judged, not unit-tested. A [`dataset::Dataset`] of `{inputs,
//! expectations}` rows, [`scorer::Scorer`]s — plain Rust functions ([`scorers`], or your own with
//! [`scorer::code_scorer`]) and LLM judges ([`judges`]) — and [`run::evaluate`], which answers
//! every row with an agent and scores each answer with its trace; each score becomes an
//! assessment of that trace ([`run::EvalReport::assessments`]), and [`compare::compare`] sets two
//! evaluations side by side.

pub mod compare;
pub mod dataset;
pub mod dataset_store;
pub mod judges;
pub mod run;
pub mod scorer;
pub mod scorers;

use std::sync::Arc;

use sextant_tracker::prompts::PromptRegistry;

use crate::chat::ChatModel;

/// The scorer `spec` names, as `sextant eval --scorers` and the service's monitors take them: a
/// built-in code scorer (`is_concise:30`, `tool_called:calculator`, see
/// [`scorers::BUILTIN_NAMES`]) or an LLM judge (`correctness`, `guidelines`,
/// `relevance_to_query`, `retrieval_groundedness`) asking `judge` with its prompt from `prompts`.
/// An unknown name or a bad argument is an error that lists the scorers.
pub fn resolve_scorer(
    spec: &str,
    judge: &Arc<dyn ChatModel>,
    prompts: &Arc<dyn PromptRegistry>,
) -> Result<Arc<dyn scorer::Scorer>, String> {
    let spec = spec.trim();
    match (scorers::builtin(spec), judges::JudgeKind::from_name(spec)) {
        (Some(scorer), _) => scorer,
        (None, Some(kind)) => Ok(Arc::new(
            judges::LlmJudge::new(kind, judge.clone(), prompts.clone()).with_capture_content(true),
        )),
        (None, None) => Err(format!(
            "unknown scorer `{spec}`; the scorers are {}, correctness, guidelines, \
             relevance_to_query, retrieval_groundedness",
            scorers::BUILTIN_NAMES.join(", ")
        )),
    }
}
