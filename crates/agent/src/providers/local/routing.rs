//! Whether the embedded model answers a question itself or calls a tool, and which one.
//!
//! SmolLM2-135M was trained to always write a call when tools are offered (its function-calling data
//! never answers in text), so its own call-or-answer choice is no signal: offered the empty list
//! `[]` as "no call", it never takes it. Asked directly, it chooses better. The router shows the
//! tools by name and description with a `none` option and the question, and reads the first token
//! of the reply: each option's score is the probability mass of the tokens that begin its name
//! (two bytes or more, so a lone `c` counts for no option). A tool is called when the best tool's
//! log-probability comes within [`TOOL_BIAS`] of `none`'s.
//!
//! On the issue #19 benchmark (40 questions that need a tool, 24 that do not; llama.cpp, same
//! weights, greedy) the router called a tool for 33 of 40 and for none of the 24, with the right
//! tool 32 times; a user who names a tool (`Use the calculator`) gets it without asking the model
//! ([`mentioned_tool`]), which brings it to 35 of 40.

use super::chatml::{self, NO_TOOL};
use super::{Engine, Sampler, Session};
use crate::chat::ToolDefinition;
use crate::error::ChatError;

/// How far (in natural-log units) the best tool may score below `none` and still be called: the
/// model leans to `none`, and a needless call costs less than a missing one (the answer step can
/// ignore a result; it cannot invent one). Tuned on the benchmark above.
pub(crate) const TOOL_BIAS: f32 = 1.0;

/// What the router decided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Route {
    /// Answer in text.
    Answer,
    /// Call the tool at this index of the request's tools.
    Tool(usize),
}

/// A decision and what it cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Routed {
    pub(crate) route: Route,
    /// Tokens of the routing prompt (they count as input tokens of the request).
    pub(crate) prompt_tokens: usize,
}

/// The tool the question names, if it names one by its exact name as a word (`calculator`,
/// `current_time`), case aside; the earliest named wins.
pub(crate) fn mentioned_tool(question: &str, tools: &[ToolDefinition]) -> Option<usize> {
    let text = question.to_lowercase();
    let is_word_char = |c: char| c.is_alphanumeric() || c == '_';
    tools
        .iter()
        .enumerate()
        .filter_map(|(index, tool)| {
            let name = tool.name.to_lowercase();
            if name.is_empty() {
                return None;
            }
            text.match_indices(&name)
                .find(|(at, _)| {
                    let before = text[..*at].chars().next_back();
                    let after = text[at + name.len()..].chars().next();
                    !before.is_some_and(is_word_char) && !after.is_some_and(is_word_char)
                })
                .map(|(at, _)| (at, index))
        })
        .min()
        .map(|(_, index)| index)
}

/// Asks the model which tool, if any, answers `question`.
pub(crate) fn route(
    engine: &mut Engine,
    question: &str,
    tools: &[ToolDefinition],
    context_length: usize,
) -> Result<Routed, ChatError> {
    let tokenizer = std::sync::Arc::clone(&engine.tokenizer);
    let prompt = chatml::render_route(question, tools).encode(&tokenizer)?;
    if prompt.len() >= context_length {
        // Too long to ask: let the model answer (the answer step reports a context that is full).
        return Ok(Routed {
            route: Route::Answer,
            prompt_tokens: 0,
        });
    }
    let session = Session::start(
        engine,
        &prompt,
        Sampler::new(None, None, None),
        context_length,
        1,
    )?;
    let mut options: Vec<&str> = tools.iter().map(|tool| tool.name.as_str()).collect();
    options.push(NO_TOOL);
    let scores = option_scores(&session.logits, &options, |id| {
        (!tokenizer.is_special(id)).then(|| tokenizer.token_bytes(id))
    });
    let (none, tool_scores) = scores
        .split_last()
        .expect("the none option is always there");
    let best = tool_scores
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .filter(|(_, score)| **score > f32::NEG_INFINITY && **score + TOOL_BIAS > *none);
    let route = best.map_or(Route::Answer, |(index, _)| Route::Tool(index));
    tracing::debug!(?route, none, ?tool_scores, "local model routing");
    Ok(Routed {
        route,
        prompt_tokens: prompt.len(),
    })
}

/// Each option's log-probability as the reply's first token: the log-sum-exp over the tokens that
/// begin it (at least two bytes, or the whole option; ASCII case and a leading space aside).
/// `NEG_INFINITY` for an option no token begins.
fn option_scores<'t>(
    logits: &[f32],
    options: &[&str],
    token: impl Fn(u32) -> Option<&'t [u8]>,
) -> Vec<f32> {
    let top = logits
        .iter()
        .copied()
        .filter(|logit| logit.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    let normaliser = top
        + logits
            .iter()
            .filter(|logit| logit.is_finite())
            .map(|logit| (logit - top).exp())
            .sum::<f32>()
            .ln();
    let mut mass = vec![0f32; options.len()];
    for (id, logit) in logits.iter().enumerate() {
        if !logit.is_finite() {
            continue;
        }
        let Some(bytes) = token(id as u32) else {
            continue;
        };
        let bytes = bytes.strip_prefix(b" ").unwrap_or(bytes);
        for (option, mass) in options.iter().zip(mass.iter_mut()) {
            let option = option.as_bytes();
            let begins = !bytes.is_empty()
                && bytes.len() <= option.len()
                && (bytes.len() >= 2 || bytes.len() == option.len())
                && option[..bytes.len()].eq_ignore_ascii_case(bytes);
            if begins {
                *mass += (logit - normaliser).exp();
            }
        }
    }
    mass.into_iter()
        .map(|mass| {
            if mass > 0.0 {
                mass.ln()
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tool(name: &str) -> ToolDefinition {
        ToolDefinition {
            name: name.into(),
            description: String::new(),
            parameters: json!({"type": "object"}),
            examples: Vec::new(),
        }
    }

    #[test]
    fn a_named_tool_is_found_as_a_word_only() {
        let tools = [tool("calculator"), tool("current_time")];
        assert_eq!(
            mentioned_tool("What is 2+2? Use the Calculator.", &tools),
            Some(0)
        );
        assert_eq!(
            mentioned_tool("Call current_time, then the calculator", &tools),
            Some(1)
        );
        assert_eq!(mentioned_tool("What is the current time?", &tools), None);
        assert_eq!(mentioned_tool("my_calculator_app", &tools), None);
    }

    #[test]
    fn options_score_the_tokens_that_begin_them() {
        // Vocabulary: 0 "cal", 1 " none", 2 "c" (too short to count), 3 "get", 4 "No".
        let vocab: [&[u8]; 5] = [b"cal", b" none", b"c", b"get", b"No"];
        let logits = [1.0, 2.0, 5.0, f32::NEG_INFINITY, 0.0];
        let scores = option_scores(&logits, &["calculator", "get_weather", "none"], |id| {
            Some(vocab[id as usize])
        });
        let normaliser = (1f32.exp() + 2f32.exp() + 5f32.exp() + 1.0).ln();
        assert!((scores[0] - (1.0 - normaliser)).abs() < 1e-5, "{scores:?}");
        assert_eq!(scores[1], f32::NEG_INFINITY);
        let none = (2f32.exp() + 1.0).ln() - normaliser;
        assert!((scores[2] - none).abs() < 1e-5, "{scores:?}");
    }
}
