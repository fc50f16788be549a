//! Evaluation — the seed's demo 4: an agent answers a small QA dataset, and every answer is
//! judged by two LLM judges (Correctness against the expected response, and a Guidelines judge
//! "The answer must be in English.") and two code scorers (`is_concise`, `is_definitive`), plus a
//! scorer of your own declared in one line. The results are logged as the process's tracking run
//! (with `[tracking] log_runs` on, the default), and each score is attached to its answer's trace
//! as an assessment.
//!
//! Offline on the embedded model (the judge is the same small model: expect harsh or odd verdicts
//! — `sextant eval --judge <agent>` judges with a bigger one in earnest). With
//! `SEXTANT_TRACKING_URI=http://127.0.0.1:5000` the run, the traces and their assessments are in
//! MLflow.
//!
//! ```sh
//! cargo run --release --example evaluation
//! sextant traces show <trace id>     # the turn's spans and, beneath them, its assessments
//! ```

use std::path::Path;
use std::sync::Arc;

use serde_json::json;
use sextant_agent::eval::dataset::{Dataset, EvalRow, Expectations};
use sextant_agent::eval::judges::{JudgeKind, LlmJudge};
use sextant_agent::eval::run::{EvalOptions, evaluate};
use sextant_agent::eval::scorer::{Scorer, code_scorer};
use sextant_agent::eval::scorers::builtin;
use sextant_agent::providers::local::{LocalChatModel, LocalModelOptions};
use sextant_agent::{Agent, ChatOptions};
use sextant_runtime::{RunSpec, RunStatus, Runtime, SextantConfig};

/// (question, expected response) — the seed's kind of general-knowledge QA.
const QA: [(&str, &str); 4] = [
    (
        "What is the capital of France?",
        "Paris is the capital of France.",
    ),
    (
        "How many legs does a spider have?",
        "A spider has eight legs.",
    ),
    (
        "What gas do plants absorb from the air?",
        "Plants absorb carbon dioxide.",
    ),
    (
        "Which planet is known as the Red Planet?",
        "Mars is the Red Planet.",
    ),
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = SextantConfig::load(None)?;
    // Scorers read the trace: the answer, retrieved documents.
    config.telemetry.capture_content = true;
    // The run and its traces in one experiment.
    config.tracking.experiment = "demo-4-evaluation".into();
    let run = RunSpec {
        experiment: config.tracking.experiment.clone(),
        run_name: Some("qa on demo-4-qa".into()),
        tags: [("sextant.kind".to_owned(), "evaluation".to_owned())].into(),
        ..RunSpec::default()
    };
    let runtime = Runtime::builder(config).run(run).start().await?;

    let rows = QA
        .iter()
        .map(|(question, expected)| EvalRow {
            inputs: json!({ "question": question })
                .as_object()
                .cloned()
                .unwrap(),
            expectations: Expectations {
                expected_response: Some((*expected).into()),
                ..Expectations::default()
            },
            source_trace: None,
        })
        .collect();
    let dataset = Dataset::from_rows(Path::new("demo-4-qa"), rows)?;

    let model = Arc::new(
        LocalChatModel::load_from_cache(&runtime.model_cache()?, LocalModelOptions::default())
            .await?,
    );
    let agent = Agent::builder("qa", model.clone())
        .system_prompt("You are a helpful assistant. Answer in one short sentence.")
        .options(ChatOptions {
            temperature: Some(0.0),
            max_tokens: Some(64),
            ..ChatOptions::default()
        })
        .capture_content(runtime.config().telemetry.capture_content)
        .build();

    // The judges' prompts come from the prompt registry (registered on first use).
    let prompts = runtime.prompt_registry()?;
    let unknown = |name: &str| anyhow::anyhow!("no built-in scorer {name}");
    let scorers: Vec<Arc<dyn Scorer>> = vec![
        Arc::new(LlmJudge::new(
            JudgeKind::Correctness,
            model.clone(),
            prompts.clone(),
        )),
        Arc::new(LlmJudge::guidelines(
            "is_english",
            vec!["The answer must be in English.".into()],
            model.clone(),
            prompts.clone(),
        )),
        builtin("is_concise")
            .ok_or_else(|| unknown("is_concise"))?
            .map_err(anyhow::Error::msg)?,
        builtin("is_definitive")
            .ok_or_else(|| unknown("is_definitive"))?
            .map_err(anyhow::Error::msg)?,
        // A scorer of your own: a plain function of the row.
        code_scorer("one_sentence", |row| {
            Ok(row.output.trim_end_matches('.').matches(". ").count() == 0)
        }),
    ];

    let spans = runtime.spans_reader();
    let progress = |done: usize, total: usize| eprintln!("  answered and scored {done}/{total}");
    let report = evaluate(
        &agent,
        &dataset,
        &scorers,
        &EvalOptions {
            concurrency: 1,
            spans: Some(&spans),
            progress: Some(&progress),
        },
    )
    .await;

    for row in &report.rows {
        println!(
            "\nQ{}: {}\nA: {}",
            row.row,
            row.question,
            row.answer.as_deref().unwrap_or("-")
        );
        for (name, score) in &row.scores {
            let verdict = match (&score.value, &score.error) {
                (Some(value), _) => format!("{}", json!(value)),
                (None, Some(error)) => format!("error: {error}"),
                (None, None) => "-".into(),
            };
            println!(
                "   {name:<14} {verdict:<6} {}",
                score.rationale.as_deref().unwrap_or("")
            );
        }
    }
    println!();
    for (name, summary) in &report.scorers {
        println!(
            "{name:<14} pass rate {:>5}  ({} judged, {} errors)",
            summary
                .pass_rate
                .map_or("-".into(), |r| format!("{:.0}%", r * 100.0)),
            summary.judged,
            summary.errors
        );
    }

    runtime.with_run(|run| {
        run.log_params([
            ("dataset_digest", dataset.digest.clone()),
            ("model", "SmolLM2-135M-Instruct".to_owned()),
        ]);
        run.log_dataset(dataset.tracking_input());
        report.log_to(run);
    });
    let logged = runtime.end_run(RunStatus::Finished).await;
    if let Some(id) = logged.and_then(|logged| logged.run_id) {
        println!(
            "\nrun {id}: {} assessments on {} traces (sextant traces show {})",
            report.assessments(0).len(),
            report.rows.iter().filter(|r| r.trace_id.is_some()).count(),
            report.rows[0].trace_id.as_deref().unwrap_or("…")
        );
    }
    drop(spans);
    runtime.shutdown().await?;
    Ok(())
}
