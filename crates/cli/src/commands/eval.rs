//! `sextant eval`: an agent over a dataset, every answer scored with its trace, the whole logged
//! as a tracking run (parameters, aggregate metrics, the per-row results as `eval_results.json`).

use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sextant_agent::SextantConfig;
use sextant_agent::eval::dataset::Dataset;
use sextant_agent::eval::judges::{JudgeKind, LlmJudge};
use sextant_agent::eval::run::{EvalOptions, EvalReport, evaluate};
use sextant_agent::eval::scorer::Scorer;
use sextant_agent::eval::scorers::{BUILTIN_NAMES, builtin};
use sextant_agent::registry::load_agent;
use sextant_tracker::StoredSpan;
use sextant_tracker::prompts::PromptRegistry;
use sextant_tracker::tracking::{RunSpec, RunStatus};

use crate::cli::EvalArgs;

/// The artifact holding the per-row results.
pub const RESULTS_ARTIFACT: &str = "eval_results.json";

pub async fn eval(config: &SextantConfig, args: EvalArgs) -> anyhow::Result<()> {
    let mut config = config.clone();
    // Scorers read the trace: answers, retrieved documents.
    config.telemetry.capture_content = true;
    if let Some(experiment) = &args.experiment {
        config.tracking.experiment = experiment.clone();
    }
    let config = &config;
    let dataset = Dataset::load(&args.dataset)?;
    let (agent_config, model_version) = load_agent(config, args.agent.as_deref()).await?;

    let tracker = if config.tracking.log_runs && !args.no_log {
        Some(config.tracking.tracker(&config.data_dir())?)
    } else {
        None
    };
    let run = match &tracker {
        Some(tracker) => Some(tracker.start_run(RunSpec {
            experiment: config.tracking.experiment.clone(),
            run_name: Some(format!("eval {} on {}", agent_config.name, dataset.name)),
            tags: [("sextant.kind".to_owned(), "evaluation".to_owned())].into(),
            ..RunSpec::default()
        })?),
        None => None,
    };
    let run_id = crate::telemetry::mlflow_run_id(config, run.as_ref()).await;
    let guard = crate::telemetry::init(config, run_id.as_deref()).await?;
    let mut agent = agent_config.build(config).await?;
    if let Some(version) = &model_version {
        agent = agent.with_model_version(version.uri().to_string());
    }
    let judge_model = match &args.judge {
        Some(name) => {
            let (judge, _) = load_agent(config, Some(name)).await?;
            judge.build(config).await?.model().clone()
        }
        None => agent.model().clone(),
    };
    let prompts: Arc<dyn PromptRegistry> = config.prompt_registry()?;
    let mut scorers: Vec<Arc<dyn Scorer>> = Vec::new();
    for spec in args
        .scorers
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        let scorer = match (builtin(spec), JudgeKind::from_name(spec)) {
            (Some(scorer), _) => scorer.map_err(anyhow::Error::msg)?,
            (None, Some(kind)) => {
                Arc::new(LlmJudge::new(kind, judge_model.clone(), prompts.clone()))
            }
            (None, None) => anyhow::bail!(
                "unknown scorer `{spec}`; the scorers are {}, correctness, guidelines, relevance_to_query, retrieval_groundedness",
                BUILTIN_NAMES.join(", ")
            ),
        };
        scorers.push(scorer);
    }
    anyhow::ensure!(!scorers.is_empty(), "--scorers names no scorer");

    let bar = ProgressBar::new(dataset.rows.len() as u64).with_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} rows  {elapsed_precise}  eta {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    let progress = |done: usize, _total: usize| bar.set_position(done as u64);
    let spans = |trace_id: &str| -> Vec<StoredSpan> {
        // The turn's spans reach the local store before its scorers read them.
        tokio::task::block_in_place(|| {
            if let Err(error) = guard.force_flush() {
                tracing::warn!("flushing the turn's spans failed: {error}");
            }
            guard
                .trace_store()
                .and_then(|store| store.spans(trace_id).ok())
                .unwrap_or_default()
        })
    };
    let report = evaluate(
        &agent,
        &dataset,
        &scorers,
        &EvalOptions {
            concurrency: args.concurrency.max(1),
            spans: Some(&spans),
            progress: Some(&progress),
        },
    )
    .await;
    bar.finish_and_clear();

    let run_report = match run {
        Some(run) => {
            run.log_params([
                ("agent", agent.name().to_owned()),
                (
                    "agent_version",
                    agent.model_version().unwrap_or("").to_owned(),
                ),
                ("model", agent.model().model().to_owned()),
                ("judge_model", judge_model.model().to_owned()),
                ("dataset", dataset.source.display().to_string()),
                ("dataset_digest", dataset.digest.clone()),
                ("rows", dataset.rows.len().to_string()),
                ("scorers", args.scorers.join(",")),
                ("concurrency", args.concurrency.to_string()),
            ]);
            run.log_metrics(report.metrics(), 0);
            run.log_artifact(RESULTS_ARTIFACT, serde_json::to_vec_pretty(&report)?);
            let status = if report.failed_turns == report.rows.len() {
                RunStatus::Failed
            } else {
                RunStatus::Finished
            };
            Some(run.end(status).await)
        }
        None => None,
    };
    let run_id = run_report.as_ref().and_then(|r| r.run_id.clone());
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["run_id"] = serde_json::json!(run_id);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_report(&report);
        if let Some(id) = &run_id {
            eprintln!("run {id}  (sextant runs show {id})");
        }
    }
    guard.shutdown().context("flushing telemetry")?;
    Ok(())
}

fn print_report(report: &EvalReport) {
    let names: Vec<&String> = report.scorers.keys().collect();
    println!(
        "{} over {} ({} rows, digest {})",
        report.agent,
        report.dataset,
        report.rows.len(),
        report.dataset_digest
    );
    println!();
    let header: Vec<String> = names.iter().map(|n| format!("{n:>14}")).collect();
    println!("{:>4}  {:<40} {}", "row", "question", header.join(" "));
    for row in &report.rows {
        let cells: Vec<String> = names
            .iter()
            .map(|name| {
                let cell = match row.scores.get(*name) {
                    Some(score) => match &score.value {
                        Some(value) if value.passed() => "pass",
                        Some(_) => "FAIL",
                        None => "error",
                    },
                    None => "-",
                };
                format!("{cell:>14}")
            })
            .collect();
        let question: String = row.question.chars().take(40).collect();
        println!("{:>4}  {:<40} {}", row.row, question, cells.join(" "));
    }
    println!();
    for (name, summary) in &report.scorers {
        println!(
            "{name:<24} pass rate {:>6}  judged {}  errors {}",
            summary
                .pass_rate
                .map_or("-".to_owned(), |r| format!("{:.0}%", r * 100.0)),
            summary.judged,
            summary.errors
        );
    }
    println!(
        "latency p50 {:.0} ms, p95 {:.0} ms; tokens in {} out {}; failed turns {}",
        report.latency_p50_ms,
        report.latency_p95_ms,
        report.input_tokens,
        report.output_tokens,
        report.failed_turns
    );
    // The first error of each scorer, so a misconfigured judge is visible without --json.
    for name in &names {
        if let Some((row, error)) = report.rows.iter().find_map(|r| {
            r.scores
                .get(*name)
                .and_then(|s| s.error.as_ref())
                .map(|e| (r.row, e))
        }) {
            eprintln!("{name}: row {row}: {error}");
        }
    }
}
