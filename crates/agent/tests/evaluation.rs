//! Evaluation through the agent loop with scripted models: every row answered and scored by code
//! scorers and an LLM judge whose prompt comes from the (embedded) prompt registry; a failed turn
//! and an unreadable verdict are errors on their rows, never passes; aggregates count them.

use std::sync::Arc;

use sextant_agent::eval::dataset::{Dataset, EvalRow, Expectations};
use sextant_agent::eval::judges::{JudgeKind, LlmJudge};
use sextant_agent::eval::run::{EvalOptions, evaluate};
use sextant_agent::eval::scorers::{exact_match, is_concise, is_definitive};
use sextant_agent::testing::ScriptedChatModel;
use sextant_agent::{Agent, ChatError};
use sextant_tracker::local::LocalPromptRegistry;
use sextant_tracker::prompts::PromptRegistry;

fn row(question: &str, expected: &str) -> EvalRow {
    EvalRow {
        inputs: serde_json::json!({"question": question})
            .as_object()
            .unwrap()
            .clone(),
        expectations: Expectations {
            expected_response: Some(expected.into()),
            ..Expectations::default()
        },
        source_trace: None,
    }
}

#[tokio::test]
async fn every_row_is_answered_scored_and_aggregated() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = Dataset::from_rows(
        &dir.path().join("qa.jsonl"),
        vec![
            row("Capital of France?", "Paris."),
            row("Capital of Spain?", "Madrid."),
            row("Capital of Peru?", "Lima."),
        ],
    )
    .unwrap();
    // Rows run one at a time, so the script is consumed in row order.
    let agent_model = ScriptedChatModel::new()
        .then_text("Paris.")
        .then_error(ChatError::Http {
            provider: "scripted".into(),
            status: 400,
            message: "bad request".into(),
        })
        .then_text("I'm not sure, maybe Cusco or Lima or somewhere else in Peru.");
    // Evaluations capture content, as `sextant eval` does: the report holds answers and
    // rationales only then.
    let agent = Agent::builder("qa", Arc::new(agent_model))
        .capture_content(true)
        .build();
    let judge_model = ScriptedChatModel::new()
        .then_tool_calls(&[(
            "verdict",
            r#"{"result": "yes", "rationale": "Both say Paris."}"#,
        )])
        .then_text("Looks fine to me!");
    let judge_requests = judge_model.requests();
    let registry: Arc<dyn PromptRegistry> =
        Arc::new(LocalPromptRegistry::open(dir.path().join("registry.db")).unwrap());
    let scorers = vec![
        is_concise(8),
        is_definitive(),
        exact_match(),
        Arc::new(LlmJudge::new(
            JudgeKind::Correctness,
            Arc::new(judge_model),
            registry.clone(),
        )) as Arc<dyn sextant_agent::eval::scorer::Scorer>,
    ];
    let progress = std::sync::Mutex::new(Vec::new());
    let record = |done: usize, total: usize| progress.lock().unwrap().push((done, total));
    let report = evaluate(
        &agent,
        &dataset,
        &scorers,
        &EvalOptions {
            concurrency: 1,
            spans: None,
            progress: Some(&record),
        },
    )
    .await;

    assert_eq!(report.rows.len(), 3);
    assert_eq!(*progress.lock().unwrap(), [(1, 3), (2, 3), (3, 3)]);
    let first = &report.rows[0];
    assert_eq!(first.answer.as_deref(), Some("Paris."));
    for name in ["is_concise", "is_definitive", "exact_match", "correctness"] {
        assert!(
            first.scores[name].value.as_ref().unwrap().passed(),
            "{name}: {:?}",
            first.scores[name]
        );
    }
    assert_eq!(
        first.scores["correctness"].rationale.as_deref(),
        Some("Both say Paris.")
    );
    // The failed turn is an error for every scorer.
    let failed = &report.rows[1];
    assert!(failed.answer.is_none() && failed.error.as_ref().unwrap().contains("bad request"));
    assert!(
        failed
            .scores
            .values()
            .all(|s| s.value.is_none() && s.error.is_some())
    );
    // The hedging, long answer fails the code scorers; the judge's prose verdict is an error.
    let third = &report.rows[2];
    assert!(!third.scores["is_concise"].value.as_ref().unwrap().passed());
    assert!(
        !third.scores["is_definitive"]
            .value
            .as_ref()
            .unwrap()
            .passed()
    );
    let unreadable = &third.scores["correctness"];
    assert!(unreadable.value.is_none());
    assert!(
        unreadable
            .error
            .as_ref()
            .unwrap()
            .contains("could not be read"),
        "{unreadable:?}"
    );

    let correctness = &report.scorers["correctness"];
    assert_eq!((correctness.judged, correctness.errors), (1, 2));
    assert_eq!(correctness.pass_rate, Some(1.0));
    let concise = &report.scorers["is_concise"];
    assert_eq!(
        (concise.judged, concise.errors, concise.pass_rate),
        (2, 1, Some(0.5))
    );
    assert_eq!(report.failed_turns, 1);
    assert!(report.latency_p95_ms >= report.latency_p50_ms);
    let metrics: std::collections::BTreeMap<String, f64> = report.metrics().into_iter().collect();
    assert_eq!(metrics["is_concise/pass_rate"], 0.5);
    assert_eq!(metrics["failed_turns"], 1.0);

    // The judge's prompt is in the registry, and it was rendered with the row.
    let version = registry.get_version("judge-correctness", 1).await.unwrap();
    assert_eq!(version.version, 1);
    let asked = &judge_requests.lock().unwrap()[0];
    let user = asked
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        user.contains("Capital of France?") && user.contains("Expected answer: Paris."),
        "{user}"
    );
    assert_eq!(asked.tools[0].name, "verdict");
}

#[tokio::test]
async fn without_content_capture_the_report_keeps_verdicts_but_no_answers_or_rationales() {
    let dir = tempfile::tempdir().unwrap();
    let dataset = Dataset::from_rows(
        &dir.path().join("qa.jsonl"),
        vec![row("Capital of France?", "Paris.")],
    )
    .unwrap();
    let agent =
        Agent::builder("qa", Arc::new(ScriptedChatModel::new().then_text("Paris."))).build();
    let judge_model = ScriptedChatModel::new().then_tool_calls(&[(
        "verdict",
        r#"{"result": "yes", "rationale": "Both say Paris."}"#,
    )]);
    let registry: Arc<dyn PromptRegistry> =
        Arc::new(LocalPromptRegistry::open(dir.path().join("registry.db")).unwrap());
    let scorers = vec![
        exact_match(),
        Arc::new(LlmJudge::new(
            JudgeKind::Correctness,
            Arc::new(judge_model),
            registry,
        )) as Arc<dyn sextant_agent::eval::scorer::Scorer>,
    ];
    let report = evaluate(
        &agent,
        &dataset,
        &scorers,
        &EvalOptions {
            concurrency: 1,
            spans: None,
            progress: None,
        },
    )
    .await;
    let row = &report.rows[0];
    assert_eq!(row.answer, None);
    assert!(
        row.scores.values().all(|s| s.rationale.is_none()),
        "{row:?}"
    );
    assert!(
        row.scores
            .values()
            .all(|s| s.value.as_ref().unwrap().passed())
    );
    let logged = serde_json::to_string(&report).unwrap();
    assert!(!logged.contains("Both say Paris"), "{logged}");
}
