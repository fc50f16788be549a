//! `sextant eval`: an agent over a dataset, every answer scored with its trace, the whole logged
//! as a tracking run (parameters, aggregate metrics, the per-row results as `eval_results.json`).

use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use sextant_agent::eval::compare::compare;
use sextant_agent::eval::dataset::Dataset;
use sextant_agent::eval::dataset_store::SCHEME as DATASET_SCHEME;
use sextant_agent::eval::resolve_scorer;
use sextant_agent::eval::run::{EvalOptions, EvalReport, evaluate};
use sextant_agent::eval::scorer::Scorer;
use sextant_runtime::{RunSpec, RunStatus, Runtime, SextantConfig};
use sextant_tracker::prompts::PromptRegistry;

use crate::cli::{EvalArgs, EvalCommand};

use sextant_agent::eval::run::RESULTS_ARTIFACT;

pub async fn eval(mut config: SextantConfig, args: EvalArgs) -> anyhow::Result<()> {
    if let Some(EvalCommand::Compare {
        run_a,
        run_b,
        html,
        no_html,
        json,
    }) = args.command
    {
        let runtime = Runtime::builder(config).without_telemetry().start().await?;
        return compare_runs(&runtime, &run_a, &run_b, html, no_html, json).await;
    }
    if let Some(filter) = &args.replay {
        let replay = crate::cli::ReplayArgs::from_filter(filter, args.agent.clone(), args.json)
            .map_err(anyhow::Error::msg)?;
        return super::replay::replay(config, replay).await;
    }
    let dataset_path = args
        .dataset
        .clone()
        .context("--dataset is required to run an evaluation")?;
    // Scorers read the trace: answers, retrieved documents.
    config.telemetry.capture_content = true;
    if let Some(experiment) = &args.experiment {
        config.tracking.experiment = experiment.clone();
    }
    if args.no_log {
        config.tracking.log_runs = false;
    }
    let dataset = match dataset_path.to_str() {
        Some(uri) if uri.starts_with(DATASET_SCHEME) => super::datasets::load(&config, uri).await?,
        _ => Dataset::load(&dataset_path)?,
    };
    let builder = Runtime::builder(config);
    let (mut agent_config, model_version) = builder.resolve_agent(args.agent.as_deref()).await?;
    if let Some(system_prompt) = &args.system_prompt {
        agent_config.system_prompt = system_prompt.clone();
    }
    if let Some(prompt) = &args.prompt {
        agent_config.prompt = Some(prompt.clone());
    }
    let run = RunSpec {
        experiment: builder.config().tracking.experiment.clone(),
        run_name: Some(match args.system_prompt.as_ref().or(args.prompt.as_ref()) {
            Some(prompt) if prompt.starts_with("prompts:/") => {
                format!("eval {} ({prompt}) on {}", agent_config.name, dataset.name)
            }
            _ => format!("eval {} on {}", agent_config.name, dataset.name),
        }),
        tags: [("sextant.kind".to_owned(), "evaluation".to_owned())].into(),
        ..RunSpec::default()
    };
    let runtime = builder.run(run).start().await?;
    let agent = runtime
        .build_agent(&agent_config, model_version.as_ref())
        .await?;
    let judge_model = match &args.judge {
        Some(name) => runtime.agent(Some(name)).await?.model().clone(),
        None => agent.model().clone(),
    };
    let prompts: Arc<dyn PromptRegistry> = runtime.prompt_registry()?;
    let mut scorers: Vec<Arc<dyn Scorer>> = Vec::new();
    for spec in args
        .scorers
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        scorers.push(resolve_scorer(spec, &judge_model, &prompts).map_err(anyhow::Error::msg)?);
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
    runtime
        .telemetry()
        .context("evaluation reads the traces, so it needs telemetry")?;
    let spans = runtime.spans_reader();
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
    drop(spans);
    bar.finish_and_clear();

    let status = runtime.with_run(|run| {
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
        let overrides = [
            ("system_prompt", &args.system_prompt),
            ("prompt", &args.prompt),
        ];
        run.log_params(
            overrides
                .into_iter()
                .filter_map(|(key, value)| Some((key, value.clone()?))),
        );
        // Exactly which data: name, digest and file, as a dataset input of the run.
        run.log_dataset(dataset.tracking_input());
        // Metrics, the results artifact, and every score on its row's trace.
        report.log_to(run);
        if report.failed_turns == report.rows.len() {
            RunStatus::Failed
        } else {
            RunStatus::Finished
        }
    });
    let run_report = match status {
        Some(status) => runtime.end_run(status).await,
        None => None,
    };
    let run_id = run_report.as_ref().and_then(|r| r.run_id.clone());
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["run_id"] = serde_json::json!(run_id);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print_report(&report);
    }
    if let Some(logged) = &run_report {
        let traces = report.rows.iter().filter(|r| r.trace_id.is_some()).count();
        match (&logged.run_id, logged.delivered) {
            (Some(id), true) if !args.json => eprintln!(
                "run {id}  (sextant runs show {id}); {} assessments on {traces} traces",
                report.assessments(0).len()
            ),
            (_, true) => {}
            _ => eprintln!(
                "run spooled: the tracking store is unavailable; the next command delivers it with its assessments"
            ),
        }
        // Writes the backend refused (an assessment whose trace never reached it …) are named.
        for refused in &logged.refused {
            eprintln!("warning: the tracking store refused a write: {refused}");
        }
    }
    runtime.shutdown().await.context("flushing telemetry")?;
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
        "latency p50 {:.0} ms, p95 {:.0} ms; tokens in {} out {}; cost {}; failed turns {}",
        report.latency_p50_ms,
        report.latency_p95_ms,
        report.input_tokens,
        report.output_tokens,
        report
            .cost
            .map_or_else(|| "no price".to_owned(), |cost| format!("{cost:.6}")),
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

/// `sextant eval compare`: reads both runs' results artifacts and sets them side by side.
async fn compare_runs(
    runtime: &Runtime,
    run_a: &str,
    run_b: &str,
    html: Option<std::path::PathBuf>,
    no_html: bool,
    json: bool,
) -> anyhow::Result<()> {
    let store = runtime.tracking_store()?;
    let mut reports = Vec::new();
    for run_id in [run_a, run_b] {
        let run = store.get_run(run_id).await.with_context(|| {
            format!(
                "reading evaluation run {run_id} from the {} tracking store at {}",
                store.backend(),
                store.location()
            )
        })?;
        let bytes = store
            .read_artifact(run_id, RESULTS_ARTIFACT)
            .await
            .with_context(|| {
                format!(
                    "run {run_id} ({}) has no {RESULTS_ARTIFACT}: is it a `sextant eval` run?",
                    run.info.run_name
                )
            })?;
        let report: EvalReport = serde_json::from_slice(&bytes).with_context(|| {
            format!("run {run_id}: {RESULTS_ARTIFACT} is not an evaluation report")
        })?;
        reports.push((run, report));
    }
    let [(run_a, report_a), (run_b, report_b)] =
        <[_; 2]>::try_from(reports).expect("two runs were read");
    let comparison = compare(&run_a.info.run_id, &report_a, &run_b.info.run_id, &report_b);
    let html_path = (!no_html).then(|| {
        html.unwrap_or_else(|| {
            let short = |id: &str| id.chars().take(8).collect::<String>();
            format!(
                "eval-compare-{}-{}.html",
                short(&run_a.info.run_id),
                short(&run_b.info.run_id)
            )
            .into()
        })
    });
    if let Some(path) = &html_path {
        std::fs::write(path, comparison.render_html())
            .with_context(|| format!("writing the chart to {}", path.display()))?;
    }
    if json {
        let mut value = serde_json::to_value(&comparison)?;
        value["html"] = serde_json::json!(html_path);
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "A {}  {}\nB {}  {}",
        run_a.info.run_id, run_a.info.run_name, run_b.info.run_id, run_b.info.run_name
    );
    // What differs between the two runs' settings: the prompt, the agent, the model …
    let keys: std::collections::BTreeSet<&String> =
        run_a.params.keys().chain(run_b.params.keys()).collect();
    for key in keys {
        let (a, b) = (run_a.params.get(key), run_b.params.get(key));
        if a != b {
            println!(
                "  {key}: {} -> {}",
                a.map_or("-", String::as_str),
                b.map_or("-", String::as_str)
            );
        }
    }
    println!();
    print!("{}", comparison.render_text());
    if let Some(path) = html_path {
        eprintln!("chart: {}", path.display());
    }
    Ok(())
}
