//! Feedback from a person on a trace (a thumbs-down, a rating, a label), as
//! `POST /v1/traces/{id}/feedback` and `sextant traces feedback` take it; it becomes an
//! [`Assessment`] with source `HUMAN`, which is what MLflow's `log_feedback` writes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Assessment, AssessmentSource, AssessmentSourceType, TrackingError};

/// The metadata key naming the end user who gave feedback through a service key.
pub const FEEDBACK_END_USER_KEY: &str = "sextant.feedback.end_user";

/// The longest name, label and end-user id accepted, in characters.
const MAX_NAME_CHARS: usize = 100;
/// The longest label value, in characters.
const MAX_LABEL_CHARS: usize = 1_000;
/// The longest rationale, in characters.
const MAX_RATIONALE_CHARS: usize = 10_000;

/// Feedback as a client sends it: `{"name": "thumbs", "value": false, "rationale": "wrong
/// unit"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feedback {
    /// What is judged (`thumbs`, `correct`, `rating`); searchable as `feedback.NAME`.
    pub name: String,
    /// The verdict: a bool, a number or a label.
    pub value: Value,
    /// Why.
    #[serde(default)]
    pub rationale: Option<String>,
    /// The end user who gave it, when a service relays its users' feedback.
    #[serde(default)]
    pub user_id: Option<String>,
}

impl Feedback {
    /// Reads a verdict typed on a command line: `true`/`false`, a number, else a label.
    pub fn parse_value(text: &str) -> Value {
        match text.trim() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => other
                .parse::<i64>()
                .map(Value::from)
                .ok()
                .or_else(|| {
                    other
                        .parse::<f64>()
                        .ok()
                        .filter(|n| n.is_finite())
                        .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
                })
                .unwrap_or_else(|| Value::String(text.to_owned())),
        }
    }

    /// What is wrong with it, if anything.
    fn problem(&self) -> Option<String> {
        let bad_text = |what: &str, text: &str, max: usize| {
            if text.chars().any(char::is_control) {
                Some(format!("{what} contains control characters"))
            } else if text.chars().count() > max {
                Some(format!("{what} is longer than {max} characters"))
            } else {
                None
            }
        };
        if self.name.trim().is_empty() {
            return Some("`name` is empty".into());
        }
        if let Some(problem) = bad_text("`name`", &self.name, MAX_NAME_CHARS) {
            return Some(problem);
        }
        match &self.value {
            Value::Bool(_) | Value::Number(_) => {}
            Value::String(label) if label.trim().is_empty() => {
                return Some("`value` is an empty label".into());
            }
            Value::String(label) => {
                if let Some(problem) = bad_text("`value`", label, MAX_LABEL_CHARS) {
                    return Some(problem);
                }
            }
            other => {
                return Some(format!(
                    "`value` must be a bool, a number or a label, not {}",
                    match other {
                        Value::Null => "null",
                        Value::Array(_) => "an array",
                        _ => "an object",
                    }
                ));
            }
        }
        if let Some(rationale) = &self.rationale
            && rationale.chars().count() > MAX_RATIONALE_CHARS
        {
            return Some(format!(
                "`rationale` is longer than {MAX_RATIONALE_CHARS} characters"
            ));
        }
        if let Some(user) = &self.user_id {
            if user.trim().is_empty() {
                return Some("`user_id` is empty".into());
            }
            if let Some(problem) = bad_text("`user_id`", user, MAX_NAME_CHARS) {
                return Some(problem);
            }
        }
        None
    }

    /// The assessment of trace `trace_id` this feedback makes, given by `by` (the caller: an API
    /// key's user, an operator) at `now_ms`. An end user named in the feedback is its source, with
    /// `by` kept in the metadata.
    pub fn into_assessment(
        self,
        trace_id: &str,
        by: &str,
        now_ms: i64,
    ) -> Result<Assessment, TrackingError> {
        if let Some(message) = self.problem() {
            return Err(TrackingError::Invalid {
                what: format!("feedback on trace {trace_id}"),
                message,
            });
        }
        let mut metadata = BTreeMap::new();
        let source_id = match self.user_id {
            Some(user) => {
                metadata.insert(FEEDBACK_END_USER_KEY.to_owned(), user.clone());
                if by.is_empty() {
                    user
                } else {
                    format!("{by}/{user}")
                }
            }
            None if by.is_empty() => "anonymous".to_owned(),
            None => by.to_owned(),
        };
        let assessment = Assessment {
            assessment_id: None,
            name: self.name.trim().to_owned(),
            trace_id: trace_id.to_owned(),
            span_id: None,
            source: AssessmentSource {
                source_type: AssessmentSourceType::Human,
                source_id,
            },
            create_time_ms: now_ms,
            value: Some(self.value),
            error: None,
            rationale: self.rationale.filter(|r| !r.trim().is_empty()),
            metadata,
        };
        assessment.validate()?;
        Ok(assessment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TRACE: &str = "0123456789abcdef0123456789abcdef";

    fn feedback(body: Value) -> Result<Feedback, serde_json::Error> {
        serde_json::from_value(body)
    }

    #[test]
    fn a_thumbs_down_becomes_a_human_assessment() {
        let assessment =
            feedback(json!({"name": "thumbs", "value": false, "rationale": "wrong unit"}))
                .unwrap()
                .into_assessment(TRACE, "alice", 1_000)
                .unwrap();
        assert_eq!(assessment.source.source_type, AssessmentSourceType::Human);
        assert_eq!(assessment.source.source_id, "alice");
        assert_eq!(assessment.value, Some(json!(false)));
        assert_eq!(assessment.rationale.as_deref(), Some("wrong unit"));
        let relayed = feedback(json!({"name": "rating", "value": 4, "user_id": "carol"}))
            .unwrap()
            .into_assessment(TRACE, "shop", 1_000)
            .unwrap();
        assert_eq!(relayed.source.source_id, "shop/carol");
        assert_eq!(relayed.metadata[FEEDBACK_END_USER_KEY], "carol");
    }

    #[test]
    fn bad_feedback_is_refused_with_the_reason() {
        let refused = |body: Value| {
            feedback(body)
                .unwrap()
                .into_assessment(TRACE, "alice", 0)
                .unwrap_err()
                .to_string()
        };
        assert!(refused(json!({"name": " ", "value": true})).contains("`name` is empty"));
        assert!(refused(json!({"name": "t", "value": null})).contains("not null"));
        assert!(refused(json!({"name": "t", "value": {"a": 1}})).contains("not an object"));
        assert!(refused(json!({"name": "t", "value": [1]})).contains("not an array"));
        assert!(refused(json!({"name": "t", "value": ""})).contains("empty label"));
        assert!(refused(json!({"name": "x".repeat(101), "value": 1})).contains("longer than 100"));
        assert!(refused(json!({"name": "a\nb", "value": 1})).contains("control characters"));
        assert!(
            refused(json!({"name": "t", "value": 1, "rationale": "r".repeat(10_001)}))
                .contains("`rationale` is longer")
        );
        let bad_trace = feedback(json!({"name": "t", "value": 1}))
            .unwrap()
            .into_assessment("nope", "alice", 0)
            .unwrap_err()
            .to_string();
        assert!(bad_trace.contains("`nope`"), "{bad_trace}");
        let unknown = feedback(json!({"name": "t", "value": 1, "source": "HUMAN"})).unwrap_err();
        assert!(
            unknown.to_string().contains("unknown field `source`"),
            "{unknown}"
        );
    }

    #[test]
    fn command_line_values_read_as_bool_number_or_label() {
        assert_eq!(Feedback::parse_value("false"), json!(false));
        assert_eq!(Feedback::parse_value("4"), json!(4));
        assert_eq!(Feedback::parse_value("0.5"), json!(0.5));
        assert_eq!(Feedback::parse_value("wrong unit"), json!("wrong unit"));
        assert_eq!(Feedback::parse_value("NaN"), json!("NaN"));
    }
}
