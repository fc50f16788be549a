//! Which tool calls a person must approve, and whether a call may run twice: the
//! `[tool_policies.NAME]` tables of an agent file.
//!
//! ```toml
//! [tool_policies.http_fetch]
//! approval = "when"                      # "never" (default), "always" or "when"
//! when = { argument = "url", host_not_in = ["en.wikipedia.org", "docs.rs"] }
//! idempotent = true                      # may be re-run after a crash (default: the tool's own)
//! ```
//!
//! A call that needs approval pauses its turn (`awaiting_approval`, persisted in the turn store)
//! until someone approves it, denies it with a message the model sees, or edits its arguments
//! ([`Decision`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::turn_state::PendingApproval;

/// When a tool's calls need a person's approval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// Never: the call runs.
    #[default]
    Never,
    /// Every call.
    Always,
    /// The calls whose arguments meet the policy's `when` rule.
    When,
}

/// The condition on a call's arguments under which `approval = "when"` asks: any of the tests
/// given that holds on the argument `argument` (a top-level key) asks, and so does a call without
/// that argument or with one the tests cannot read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    /// The argument looked at.
    pub argument: String,
    /// Ask when the argument is a URL whose host is not one of these (or a subdomain of one).
    #[serde(default)]
    pub host_not_in: Option<Vec<String>>,
    /// Ask when the argument (as text) matches this regular expression.
    #[serde(default)]
    pub matches: Option<String>,
    /// Ask when the argument is a number above this.
    #[serde(default)]
    pub above: Option<f64>,
}

/// `[tool_policies.NAME]` of an agent file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolPolicy {
    /// When calls need approval.
    #[serde(default)]
    pub approval: Approval,
    /// The rule of `approval = "when"`.
    #[serde(default)]
    pub when: Option<ApprovalRule>,
    /// Whether a call that was running when the process stopped may simply be run again on
    /// resume; unset = what the tool declares.
    #[serde(default)]
    pub idempotent: Option<bool>,
}

impl ToolPolicy {
    /// What is wrong with the policy, if anything: `when` without `approval = "when"` or the
    /// reverse, a rule with no test, a bad regular expression.
    pub fn problem(&self) -> Option<String> {
        match (&self.approval, &self.when) {
            (Approval::When, None) => {
                return Some("`approval = \"when\"` needs a `when` rule".into());
            }
            (Approval::Never | Approval::Always, Some(_)) => {
                return Some("`when` is only read with `approval = \"when\"`".into());
            }
            _ => {}
        }
        let rule = self.when.as_ref()?;
        if rule.argument.trim().is_empty() {
            return Some("`when.argument` is empty".into());
        }
        if rule.host_not_in.is_none() && rule.matches.is_none() && rule.above.is_none() {
            return Some("`when` needs one of `host_not_in`, `matches` or `above`".into());
        }
        if let Some(pattern) = &rule.matches
            && let Err(error) = regex::Regex::new(pattern)
        {
            return Some(format!(
                "`when.matches` is not a regular expression: {error}"
            ));
        }
        None
    }

    /// Why a call with `arguments` (the model's JSON text) needs approval, or `None` when it does
    /// not.
    pub fn needs_approval(&self, arguments: &str) -> Option<String> {
        match self.approval {
            Approval::Never => None,
            Approval::Always => Some("every call of this tool needs approval".into()),
            Approval::When => {
                let rule = self.when.as_ref()?;
                rule.reason(arguments)
            }
        }
    }
}

impl ApprovalRule {
    fn reason(&self, arguments: &str) -> Option<String> {
        let name = &self.argument;
        let value = serde_json::from_str::<Value>(arguments)
            .ok()
            .and_then(|v| v.get(name).cloned());
        let Some(value) = value else {
            return Some(format!("the call has no readable `{name}` argument"));
        };
        if let Some(hosts) = &self.host_not_in {
            let host = value
                .as_str()
                .and_then(|text| url::Url::parse(text).ok())
                .and_then(|url| url.host_str().map(str::to_ascii_lowercase));
            match host {
                None => return Some(format!("`{name}` is not a URL with a host")),
                Some(host) if !hosts.iter().any(|allowed| host_matches(&host, allowed)) => {
                    return Some(format!("`{name}` points to {host}, not an approved host"));
                }
                Some(_) => {}
            }
        }
        if let Some(pattern) = &self.matches {
            let text = match &value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            // Checked when the agent is loaded; a pattern that fails here asks, to be safe.
            let matched = regex::Regex::new(pattern).map_or(true, |re| re.is_match(&text));
            if matched {
                return Some(format!("`{name}` matches `{pattern}`"));
            }
        }
        if let Some(limit) = self.above {
            match value.as_f64() {
                None => return Some(format!("`{name}` is not a number")),
                Some(number) if number > limit => {
                    return Some(format!("`{name}` is {number}, above {limit}"));
                }
                Some(_) => {}
            }
        }
        None
    }
}

fn host_matches(host: &str, allowed: &str) -> bool {
    let allowed = allowed.trim().trim_end_matches('.').to_ascii_lowercase();
    host == allowed || host.ends_with(&format!(".{allowed}"))
}

/// The policies of an agent's tools, by tool name.
pub type ToolPolicies = BTreeMap<String, ToolPolicy>;

/// What a person decided about a call that waited for approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Run it as the model wrote it.
    Approve,
    /// Do not run it; the model is told `message`.
    Deny {
        /// Why, for the model (and the trace).
        #[serde(default)]
        message: Option<String>,
    },
    /// Run it with these arguments instead (checked against the tool's schema).
    Edit {
        /// The arguments, a JSON object.
        arguments: Value,
    },
}

impl Decision {
    /// `approve`, `deny` or `edit`: the span attribute and the assessment's value.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Deny { .. } => "deny",
            Self::Edit { .. } => "edit",
        }
    }
}

/// Decides calls that need approval while the turn runs (`sextant chat` asks inline). A turn
/// with an approver does not pause; one without pauses in its turn store.
#[async_trait::async_trait]
pub trait Approver: Send + Sync {
    /// The decision on `call` of agent `agent`; `None` leaves it waiting (the turn pauses).
    async fn decide(&self, agent: &str, call: &PendingApproval) -> Option<Decision>;

    /// Who decides (recorded on the decision's span).
    fn who(&self) -> Option<String> {
        None
    }
}

impl std::fmt::Debug for dyn Approver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Approver")
    }
}

/// Records `decision` on `call` as an `approval {tool}` span: under the current span (a decision
/// made inline), or under `traceparent` (the paused turn's agent span) when one is given, so a
/// decision made later, in another process, joins the turn's trace. Returns the span's trace id.
pub fn record_decision(
    traceparent: Option<&str>,
    turn_id: &str,
    call: &PendingApproval,
    decision: &Decision,
    by: Option<&str>,
) -> Option<String> {
    use sextant_tracker::conventions as sc;
    let span = tracing::info_span!(
        parent: if traceparent.is_some() { None } else { tracing::Span::current().id() },
        sc::span_name::APPROVAL,
        { sc::OTEL_NAME } = %format!("{} {}", sc::span_name::APPROVAL, call.tool),
        { sc::OTEL_KIND } = "internal",
        { sc::GEN_AI_TOOL_NAME } = %call.tool,
        { sc::GEN_AI_TOOL_CALL_ID } = %call.call_id,
        { sc::SEXTANT_TURN_ID } = turn_id,
        { sc::SEXTANT_APPROVAL_DECISION } = decision.kind(),
        { sc::SEXTANT_APPROVAL_REASON } = %call.reason,
        { sc::SEXTANT_APPROVAL_BY } = by,
    );
    if let Some(traceparent) = traceparent
        && let Err(error) = sextant_tracker::set_parent_from_traceparent(&span, traceparent)
    {
        tracing::warn!(
            turn = turn_id,
            "the decision's span starts a trace of its own: {error}"
        );
    }
    sextant_tracker::current_trace_id(&span)
}

/// The assessment a decision leaves on the turn's trace: `approval` with the decision as its
/// value and the person as a `HUMAN` source.
pub fn decision_assessment(
    trace_id: &str,
    call: &PendingApproval,
    decision: &Decision,
    by: Option<&str>,
) -> sextant_tracker::tracking::Assessment {
    use sextant_tracker::tracking::{Assessment, AssessmentSource, AssessmentSourceType};
    let rationale = match decision {
        Decision::Deny { message } => message.clone(),
        Decision::Edit { arguments } => Some(format!("arguments changed to {arguments}")),
        Decision::Approve => None,
    };
    Assessment {
        assessment_id: None,
        name: "approval".into(),
        trace_id: trace_id.to_owned(),
        span_id: None,
        source: AssessmentSource {
            source_type: AssessmentSourceType::Human,
            source_id: by.unwrap_or("operator").to_owned(),
        },
        create_time_ms: sextant_tracker::now_ms(),
        value: Some(Value::String(decision.kind().to_owned())),
        error: None,
        rationale,
        metadata: [
            ("tool".to_owned(), call.tool.clone()),
            ("tool_call_id".to_owned(), call.call_id.clone()),
        ]
        .into_iter()
        .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn when(rule: ApprovalRule) -> ToolPolicy {
        ToolPolicy {
            approval: Approval::When,
            when: Some(rule),
            idempotent: None,
        }
    }

    #[test]
    fn a_host_rule_asks_for_other_hosts_and_unreadable_arguments() {
        let policy = when(ApprovalRule {
            argument: "url".into(),
            host_not_in: Some(vec!["wikipedia.org".into()]),
            ..ApprovalRule::default()
        });
        assert_eq!(policy.problem(), None);
        assert_eq!(
            policy.needs_approval(r#"{"url": "https://en.wikipedia.org/wiki/Rust"}"#),
            None
        );
        assert_eq!(
            policy.needs_approval(r#"{"url": "https://WIKIPEDIA.org/"}"#),
            None
        );
        let reason = policy
            .needs_approval(r#"{"url": "https://evil-wikipedia.org/x"}"#)
            .unwrap();
        assert!(reason.contains("evil-wikipedia.org"), "{reason}");
        assert!(policy.needs_approval(r#"{"url": "not a url"}"#).is_some());
        assert!(policy.needs_approval(r#"{"other": 1}"#).is_some());
        assert!(policy.needs_approval("{broken").is_some());
    }

    #[test]
    fn number_and_pattern_rules_ask_past_the_limit() {
        let policy = when(ApprovalRule {
            argument: "amount".into(),
            above: Some(100.0),
            ..ApprovalRule::default()
        });
        assert_eq!(policy.needs_approval(r#"{"amount": 99.5}"#), None);
        assert!(policy.needs_approval(r#"{"amount": 100.5}"#).is_some());
        assert!(policy.needs_approval(r#"{"amount": "lots"}"#).is_some());
        let policy = when(ApprovalRule {
            argument: "expression".into(),
            matches: Some(r"\*\*|\^".into()),
            ..ApprovalRule::default()
        });
        assert_eq!(policy.needs_approval(r#"{"expression": "2 * 3"}"#), None);
        assert!(
            policy
                .needs_approval(r#"{"expression": "2 ^ 64"}"#)
                .is_some()
        );
    }

    #[test]
    fn inconsistent_policies_are_named() {
        let mut policy = ToolPolicy {
            approval: Approval::When,
            ..ToolPolicy::default()
        };
        assert!(policy.problem().unwrap().contains("needs a `when`"));
        policy.when = Some(ApprovalRule {
            argument: "x".into(),
            ..ApprovalRule::default()
        });
        assert!(policy.problem().unwrap().contains("needs one of"));
        policy.when.as_mut().unwrap().matches = Some("(".into());
        assert!(
            policy
                .problem()
                .unwrap()
                .contains("not a regular expression")
        );
        policy.approval = Approval::Always;
        assert!(policy.problem().unwrap().contains("only read with"));
        assert_eq!(
            ToolPolicy {
                approval: Approval::Always,
                ..ToolPolicy::default()
            }
            .needs_approval("{}")
            .as_deref(),
            Some("every call of this tool needs approval")
        );
    }
}
