//! Assessments: a judgement attached to a trace — a scorer's feedback (a value and its rationale,
//! or the error that kept it from judging) with who made it — in MLflow 3's model, so
//! `mlflow.get_trace(…).info.assessments` reads what `sextant eval` wrote.
//!
//! Both tracking stores keep them: the embedded one in `tracking.db`, MLflow through
//! `POST /api/3.0/mlflow/traces/{trace_id}/assessments`. They travel with a run
//! ([`super::ActiveRun::log_assessment`]), so an outage spools them like the run's metrics.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The metadata key MLflow uses for the run that produced an assessment.
pub const SOURCE_RUN_ID_KEY: &str = "mlflow.assessment.sourceRunId";
/// The metadata key of the judge model's input tokens.
pub const JUDGE_INPUT_TOKENS_KEY: &str = "mlflow.assessment.judgeInputTokens";
/// The metadata key of the judge model's output tokens.
pub const JUDGE_OUTPUT_TOKENS_KEY: &str = "mlflow.assessment.judgeOutputTokens";
/// The metadata key of the trace the judge's own call produced.
pub const SCORER_TRACE_ID_KEY: &str = "mlflow.assessment.scorerTraceId";

/// Who made an assessment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AssessmentSourceType {
    /// A person.
    Human,
    /// A language model acting as a judge.
    LlmJudge,
    /// Code: a deterministic scorer.
    Code,
}

impl AssessmentSourceType {
    /// MLflow's name: `HUMAN`, `LLM_JUDGE`, `CODE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Human => "HUMAN",
            Self::LlmJudge => "LLM_JUDGE",
            Self::Code => "CODE",
        }
    }

    /// Parses MLflow's name.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "HUMAN" => Self::Human,
            "LLM_JUDGE" => Self::LlmJudge,
            "CODE" => Self::Code,
            _ => return None,
        })
    }
}

/// Who made an assessment: the kind and an id (a scorer's name, a judge model, a user).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssessmentSource {
    /// The kind of source.
    pub source_type: AssessmentSourceType,
    /// Which one.
    pub source_id: String,
}

/// Why a scorer could not judge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackError {
    /// A short code (`SCORER_ERROR`, `TURN_FAILED` …).
    pub code: String,
    /// What went wrong.
    pub message: String,
}

/// A judgement of one trace; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// The backend's id (`a-…`), once stored.
    pub assessment_id: Option<String>,
    /// What is judged: the scorer's name (`correctness`, `is_concise`).
    pub name: String,
    /// The trace judged: its OpenTelemetry id (32 hex digits).
    pub trace_id: String,
    /// The span judged, if not the whole trace.
    pub span_id: Option<String>,
    /// Who judged.
    pub source: AssessmentSource,
    /// When, milliseconds since the Unix epoch.
    pub create_time_ms: i64,
    /// The verdict: a bool, number or string; `None` when `error` says why there is none.
    pub value: Option<Value>,
    /// Why there is no verdict.
    pub error: Option<FeedbackError>,
    /// Why the verdict is what it is.
    pub rationale: Option<String>,
    /// More about it ([`SOURCE_RUN_ID_KEY`] …).
    pub metadata: BTreeMap<String, String>,
}

impl Assessment {
    /// Replaces secrets and personal values in what the assessment says (its rationale, a text
    /// verdict, an error's message and the metadata) with `redactor`'s placeholders; how many it replaced.
    pub fn redact(
        &mut self,
        redactor: &sextant_redaction::Redactor,
        placeholders: &mut sextant_redaction::Placeholders,
    ) -> usize {
        let mut count = 0;
        if let Some(rationale) = &mut self.rationale {
            let redacted = redactor.redact(rationale, placeholders);
            if redacted.count > 0 {
                *rationale = redacted.text;
                count += redacted.count;
            }
        }
        if let Some(value) = &mut self.value {
            count += redactor.redact_value(value, placeholders);
        }
        // A judge's error can quote what it judged, and metadata is free text.
        let texts = self
            .error
            .iter_mut()
            .map(|error| &mut error.message)
            .chain(self.metadata.values_mut());
        for text in texts {
            let redacted = redactor.redact(text, placeholders);
            if redacted.count > 0 {
                *text = redacted.text;
                count += redacted.count;
            }
        }
        count
    }

    /// Checks what both backends require: a name, a 32-hex trace id, a value or an error.
    pub fn validate(&self) -> Result<(), super::TrackingError> {
        self.problem().map_or(Ok(()), |message| {
            Err(super::TrackingError::Invalid {
                what: format!("assessment `{}`", self.name),
                message,
            })
        })
    }

    fn problem(&self) -> Option<String> {
        if self.name.trim().is_empty() {
            return Some("has no name".into());
        }
        let hex = self.trace_id.strip_prefix("tr-").unwrap_or(&self.trace_id);
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(format!(
                "trace id `{}` is not 32 hexadecimal digits",
                self.trace_id
            ));
        }
        if self.value.is_none() && self.error.is_none() {
            return Some(format!(
                "has neither a value nor an error (trace {})",
                self.trace_id
            ));
        }
        None
    }

    /// The trace id without MLflow's `tr-` prefix, lower-case.
    pub fn otel_trace_id(&self) -> String {
        self.trace_id
            .strip_prefix("tr-")
            .unwrap_or(&self.trace_id)
            .to_ascii_lowercase()
    }

    /// The body of MLflow's `CreateAssessment` (`{"assessment": {…}}`), as the Python client
    /// sends it.
    pub fn to_mlflow_json(&self) -> Value {
        let time = rfc3339_ms(self.create_time_ms);
        let mut feedback = json!({ "value": self.value.clone().unwrap_or(Value::Null) });
        if let Some(error) = &self.error {
            feedback["error"] = json!({
                "error_code": error.code,
                "error_message": error.message,
            });
        }
        let mut assessment = json!({
            "assessment_name": self.name,
            "trace_id": format!("tr-{}", self.otel_trace_id()),
            "source": {
                "source_type": self.source.source_type.as_str(),
                "source_id": self.source.source_id,
            },
            "create_time": time,
            "last_update_time": time,
            "feedback": feedback,
            "metadata": self.metadata,
            "valid": true,
        });
        if let Some(span_id) = &self.span_id {
            assessment["span_id"] = json!(span_id);
        }
        if let Some(rationale) = &self.rationale {
            assessment["rationale"] = json!(rationale);
        }
        json!({ "assessment": assessment })
    }

    /// Reads one assessment as MLflow returns it (in a trace's `trace_info.assessments`).
    /// Expectations (ground truth, not feedback) are `None`.
    pub fn from_mlflow_json(value: &Value) -> Option<Self> {
        let feedback = value.get("feedback")?;
        let error = feedback
            .get("error")
            .or_else(|| value.get("error"))
            .filter(|e| e.is_object())
            .map(|e| FeedbackError {
                code: e["error_code"].as_str().unwrap_or_default().to_owned(),
                message: e["error_message"].as_str().unwrap_or_default().to_owned(),
            });
        let source = &value["source"];
        Some(Self {
            assessment_id: value["assessment_id"].as_str().map(str::to_owned),
            name: value["assessment_name"].as_str()?.to_owned(),
            trace_id: value["trace_id"]
                .as_str()?
                .trim_start_matches("tr-")
                .to_owned(),
            span_id: value["span_id"]
                .as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            source: AssessmentSource {
                source_type: source["source_type"]
                    .as_str()
                    .and_then(AssessmentSourceType::parse)
                    .unwrap_or(AssessmentSourceType::Code),
                source_id: source["source_id"].as_str().unwrap_or_default().to_owned(),
            },
            create_time_ms: value["create_time"]
                .as_str()
                .and_then(parse_rfc3339_ms)
                .unwrap_or_default(),
            value: feedback.get("value").filter(|v| !v.is_null()).cloned(),
            error,
            rationale: value["rationale"].as_str().map(str::to_owned),
            metadata: value["metadata"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// `ms` since the Unix epoch as RFC 3339 in UTC with milliseconds (`2026-11-29T19:12:00.123Z`),
/// the JSON form of a protobuf `Timestamp`. Times outside years -9999..=9999 are clamped to them.
pub fn rfc3339_ms(ms: i64) -> String {
    let time = Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    format!("{time:.3}")
}

/// Parses an RFC 3339 timestamp (MLflow sends UTC with `Z` and any number of fraction digits) to
/// milliseconds since the epoch, dropping what is finer than a millisecond.
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    text.parse::<Timestamp>()
        .ok()
        .map(Timestamp::as_millisecond)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assessment() -> Assessment {
        Assessment {
            assessment_id: None,
            name: "correctness".into(),
            trace_id: "0123456789ABCDEF0123456789abcdef".into(),
            span_id: None,
            source: AssessmentSource {
                source_type: AssessmentSourceType::LlmJudge,
                source_id: "SmolLM2-135M-Instruct".into(),
            },
            create_time_ms: 1_796_065_920_123,
            value: Some(json!(true)),
            error: None,
            rationale: Some("matches the expected response".into()),
            metadata: [(SOURCE_RUN_ID_KEY.to_owned(), "abc".to_owned())].into(),
        }
    }

    #[test]
    fn timestamps_round_trip_through_rfc3339() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day of a century leap year) 23:59:59.999.
        assert_eq!(rfc3339_ms(951_868_799_999), "2000-02-29T23:59:59.999Z");
        for ms in [0, 951_868_799_999, 1_796_065_920_123, 4_102_444_800_000] {
            assert_eq!(parse_rfc3339_ms(&rfc3339_ms(ms)), Some(ms), "{ms}");
        }
        // MLflow answers with nanoseconds or none.
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T23:59:59.999123456Z"),
            Some(951_868_799_999)
        );
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T23:59:59Z"),
            Some(951_868_799_000)
        );
        for bad in [
            "2000-02-29",
            "2000-13-01T00:00:00Z",
            "2000-02-29T00:00:00.x1Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_mlflow_body_has_the_python_clients_shape_and_reads_back() {
        let body = assessment().to_mlflow_json();
        let a = &body["assessment"];
        assert_eq!(a["trace_id"], "tr-0123456789abcdef0123456789abcdef");
        assert_eq!(a["source"]["source_type"], "LLM_JUDGE");
        assert_eq!(a["feedback"]["value"], true);
        assert_eq!(a["create_time"], rfc3339_ms(1_796_065_920_123));
        assert_eq!(a["metadata"][SOURCE_RUN_ID_KEY], "abc");
        let back = Assessment::from_mlflow_json(a).unwrap();
        assert_eq!(back.trace_id, "0123456789abcdef0123456789abcdef");
        assert_eq!(back.value, Some(json!(true)));
        assert_eq!(
            back.rationale.as_deref(),
            Some("matches the expected response")
        );
        assert_eq!(back.create_time_ms, 1_796_065_920_123);
        assert_eq!(back.source, assessment().source);
    }

    #[test]
    fn an_error_goes_out_as_feedback_error_with_a_null_value() {
        let failed = Assessment {
            value: None,
            error: Some(FeedbackError {
                code: "SCORER_ERROR".into(),
                message: "the judge answered prose".into(),
            }),
            ..assessment()
        };
        failed.validate().unwrap();
        let body = failed.to_mlflow_json();
        assert_eq!(body["assessment"]["feedback"]["value"], Value::Null);
        assert_eq!(
            body["assessment"]["feedback"]["error"]["error_code"],
            "SCORER_ERROR"
        );
        let back = Assessment::from_mlflow_json(&body["assessment"]).unwrap();
        assert_eq!(back.value, None);
        assert_eq!(back.error, failed.error);
    }

    #[test]
    fn validation_names_what_is_missing() {
        let no_verdict = Assessment {
            value: None,
            ..assessment()
        };
        assert!(
            no_verdict
                .validate()
                .unwrap_err()
                .to_string()
                .contains("neither")
        );
        let bad_trace = Assessment {
            trace_id: "xyz".into(),
            ..assessment()
        };
        assert!(
            bad_trace
                .validate()
                .unwrap_err()
                .to_string()
                .contains("`xyz`")
        );
        let unnamed = Assessment {
            name: " ".into(),
            ..assessment()
        };
        assert!(
            unnamed
                .validate()
                .unwrap_err()
                .to_string()
                .contains("no name")
        );
    }
}
