//! Budgets: how many tokens, and how much money by the price table, one turn and one session may
//! spend (`[budget]` in the agent file). The turn checks before each model call; once spent, it stops
//! cleanly with [`StopReason::Budget`](crate::agent::StopReason::Budget) and an answer that says
//! so, instead of calling the model again.

use serde::Deserialize;

use crate::chat::Usage;

/// `[budget]`: limits per turn; unset = no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Input plus output tokens one turn may use (sub-agents' included).
    #[serde(default)]
    pub max_tokens_per_turn: Option<u64>,
    /// What one turn may cost, in the price table's currency. A turn whose model has no price
    /// cannot be held to it: it stops before its first model call, saying so.
    #[serde(default)]
    pub max_cost_per_turn: Option<f64>,
    /// Tokens a whole session may use: its earlier turns and this one.
    #[serde(default)]
    pub max_tokens_per_session: Option<u64>,
    /// What a whole session may cost.
    #[serde(default)]
    pub max_cost_per_session: Option<f64>,
}

impl Budget {
    /// What is wrong with the limits, if anything.
    pub fn problem(&self) -> Option<String> {
        for (key, limit) in [
            ("max_tokens_per_turn", self.max_tokens_per_turn),
            ("max_tokens_per_session", self.max_tokens_per_session),
        ] {
            if limit == Some(0) {
                return Some(format!("{key} must be at least 1"));
            }
        }
        for (key, limit) in [
            ("max_cost_per_turn", self.max_cost_per_turn),
            ("max_cost_per_session", self.max_cost_per_session),
        ] {
            if let Some(cost) = limit
                && (!cost.is_finite() || cost <= 0.0)
            {
                return Some(format!("{key} must be a positive amount, not {cost}"));
            }
        }
        None
    }

    /// Why the turn may not call the model again after spending `used`, in a session whose
    /// earlier turns spent `session`, if it may not.
    pub fn exceeded(&self, used: &Usage, session: &Usage, priced: bool) -> Option<String> {
        let mut whole = *session;
        whole += *used;
        for (spent, tokens, cost, per) in [
            (
                used,
                self.max_tokens_per_turn,
                self.max_cost_per_turn,
                "turn",
            ),
            (
                &whole,
                self.max_tokens_per_session,
                self.max_cost_per_session,
                "session",
            ),
        ] {
            if let Some(reason) = over(spent, tokens, cost, per, priced) {
                return Some(reason);
            }
        }
        None
    }
}

fn over(
    spent: &Usage,
    tokens: Option<u64>,
    cost: Option<f64>,
    per: &str,
    priced: bool,
) -> Option<String> {
    if let Some(limit) = tokens
        && spent.total() >= limit
    {
        return Some(format!(
            "it used {} tokens of its budget of {limit} per {per}",
            spent.total()
        ));
    }
    let limit = cost?;
    if !priced {
        return Some(format!(
            "its model has no price, so its cost budget of {limit} per {per} cannot be kept"
        ));
    }
    match spent.cost() {
        Some(cost) if cost >= limit => Some(format!(
            "it cost {cost:.6} of its budget of {limit} per {per}"
        )),
        // A call without a price (a sub-agent's, an earlier turn's) made the sum unknown.
        None if !spent.is_empty() => Some(format!(
            "a call without a price made its cost unknown, so its budget of {limit} per {per} \
             cannot be kept"
        )),
        _ => None,
    }
}

/// The answer of a turn its budget stopped.
pub(crate) fn over_budget_answer(reason: &str) -> String {
    format!(
        "I could not finish this answer: I stopped because {reason}. Ask a narrower question, or \
         raise the agent's [budget]."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(tokens: u64, cost_nanos: Option<u64>) -> Usage {
        Usage {
            input_tokens: tokens,
            cost_nanos,
            ..Usage::default()
        }
    }

    #[test]
    fn token_and_cost_limits_stop_at_the_limit_and_say_why() {
        let budget = Budget {
            max_tokens_per_turn: Some(100),
            max_cost_per_turn: Some(0.001),
            ..Budget::default()
        };
        let fresh = Usage::default();
        assert_eq!(
            budget.exceeded(&used(99, Some(999_999)), &fresh, true),
            None
        );
        assert!(
            budget
                .exceeded(&used(100, Some(0)), &fresh, true)
                .unwrap()
                .contains("100 tokens of its budget of 100 per turn")
        );
        assert!(
            budget
                .exceeded(&used(10, Some(1_000_000)), &fresh, true)
                .unwrap()
                .contains("cost 0.001000")
        );
        assert!(
            budget
                .exceeded(&used(0, None), &fresh, false)
                .unwrap()
                .contains("no price")
        );
        assert!(
            budget
                .exceeded(&used(5, None), &fresh, true)
                .unwrap()
                .contains("unknown")
        );
        assert_eq!(
            Budget::default().exceeded(&used(u64::MAX / 4, None), &fresh, false),
            None
        );
    }

    #[test]
    fn a_session_limit_counts_the_earlier_turns() {
        let budget = Budget {
            max_tokens_per_session: Some(1_000),
            ..Budget::default()
        };
        assert_eq!(
            budget.exceeded(&used(100, None), &used(800, None), false),
            None
        );
        assert!(
            budget
                .exceeded(&used(200, None), &used(800, None), false)
                .unwrap()
                .contains("1000 tokens of its budget of 1000 per session")
        );
    }

    #[test]
    fn bad_limits_are_named() {
        let zero = Budget {
            max_tokens_per_turn: Some(0),
            ..Budget::default()
        };
        assert!(zero.problem().unwrap().contains("at least 1"));
        let negative = Budget {
            max_cost_per_turn: Some(-1.0),
            ..Budget::default()
        };
        assert!(negative.problem().unwrap().contains("positive"));
    }
}
