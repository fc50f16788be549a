//! `sextant run`: one question, one answer, one trace — and, with tracking on, one run.

use std::io::Write;
use std::time::Instant;

use sextant_agent::run_logging::log_turn;
use sextant_agent::workflow::{Workflow, WorkflowConfig, log_workflow};
use sextant_agent::{Agent, AgentOutcome, TurnContext};
use sextant_runtime::{RunSpec, Runtime, SextantConfig};
use sextant_tracker::SpanTree;
use sextant_tracker::tracking::RunReport;

use crate::cli::RunArgs;

pub async fn run(mut config: SextantConfig, args: RunArgs) -> anyhow::Result<()> {
    // --experiment names where both the run and (on MLflow) the trace go.
    if let Some(experiment) = &args.experiment {
        config.tracking.experiment = experiment.clone();
    }
    if args.no_log {
        config.tracking.log_runs = false;
    }
    let question = args.question.join(" ");
    if let Some(path) = args.workflow.clone() {
        return run_workflow(config, &path, &question, &args).await;
    }
    let builder = Runtime::builder(config);
    let (agent_config, model_version) = builder.resolve_agent(args.agent.as_deref()).await?;
    let run = RunSpec {
        experiment: builder.config().tracking.experiment.clone(),
        run_name: Some(format!("{} {}", agent_config.name, short(&question))),
        ..RunSpec::default()
    };
    let runtime = builder.run(run).start().await?;
    let agent = runtime
        .build_agent(&agent_config, model_version.as_ref())
        .await?;

    let print_stream = |piece: &str| {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(piece.as_bytes());
        let _ = out.flush();
    };
    let streaming = args.stream && !args.json;
    let started = Instant::now();
    let result = agent
        .run_turn(
            &[],
            &question,
            &TurnContext::default(),
            streaming.then_some(&print_stream as _),
        )
        .await;
    let latency = started.elapsed();
    // Everything the turn produced reaches the trace store before it is read back. A backend that
    // refuses the export never fails the turn: the failure is logged and counted, the local store
    // still has the spans.
    if let Err(error) = runtime.flush() {
        tracing::warn!("exporting the turn's telemetry failed: {error}");
    }
    let status = runtime.with_run(|run| log_turn(run, &agent, &question, result.as_ref(), latency));
    let report = match status {
        Some(status) => runtime.end_run(status).await,
        None => None,
    };
    let outcome = result?;
    print_turn(
        &runtime,
        &agent,
        &outcome,
        report.as_ref(),
        Printing {
            json: args.json,
            streamed: streaming,
            tree: !args.no_tree,
        },
    )
    .await?;
    finish(runtime).await
}

/// How a turn's result is printed.
pub(crate) struct Printing {
    /// One JSON object instead of text.
    pub json: bool,
    /// The answer was streamed already (only the sources list is left to print).
    pub streamed: bool,
    /// Print the span tree under the answer.
    pub tree: bool,
}

/// Prints a turn's result (answer, span tree, trace and run ids; or JSON), after linking its
/// trace to the prompt versions it used: what `sextant run` and `sextant turns` show.
pub(crate) async fn print_turn(
    runtime: &Runtime,
    agent: &Agent,
    outcome: &AgentOutcome,
    report: Option<&RunReport>,
    printing: Printing,
) -> anyhow::Result<()> {
    // The registry records which prompt versions made this trace (on MLflow: the trace's linked
    // prompts). A failure costs the link, not the answer.
    if let (Some(prompts), Some(trace_id)) = (agent.prompts(), &outcome.trace_id)
        && !outcome.prompt_versions.is_empty()
        && let Err(error) = prompts
            .registry
            .link_trace(trace_id, &outcome.prompt_versions)
            .await
    {
        tracing::warn!("linking trace {trace_id} to its prompt versions failed: {error}");
    }
    let run_id = report.and_then(|r| r.run_id.clone());

    let spans = match (
        &outcome.trace_id,
        runtime.telemetry().and_then(|t| t.trace_store()),
    ) {
        (Some(id), Some(store)) => store.spans(id).unwrap_or_default(),
        _ => Vec::new(),
    };
    if printing.json {
        let value = serde_json::json!({
            "answer": outcome.answer,
            "output": outcome.output,
            "blocked": outcome.blocked,
            "trace_id": outcome.trace_id,
            "run_id": run_id,
            "agent": outcome.agent,
            "agent_version": agent.model_version(),
            "provider": agent.model().provider(),
            "model": agent.model().model(),
            "steps": outcome.steps,
            "stop_reason": outcome.stop_reason,
            "usage": outcome.usage,
            "tool_calls": outcome.tool_calls,
            "citations": outcome.citations,
            "prompt_versions": outcome.prompt_versions,
            "turn_id": outcome.turn_id,
            "pending_approvals": outcome.pending_approvals,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    if printing.streamed {
        // The streamed text is the model's; the list of cited sources is added after it.
        if let Some(at) = outcome.answer.rfind("\n\nSources:\n")
            && !outcome.citations.is_empty()
        {
            print!("{}", &outcome.answer[at..]);
        }
        println!();
    } else if let Some(output) = &outcome.output {
        // A typed answer reads better indented.
        println!("{}", serde_json::to_string_pretty(output)?);
    } else {
        println!("{}", outcome.answer.trim());
    }
    for waiting in &outcome.pending_approvals {
        println!(
            "  waiting: call {}  {} {}  ({})",
            waiting.call_id, waiting.tool, waiting.arguments, waiting.reason
        );
    }
    if printing.tree && !spans.is_empty() {
        println!();
        println!("{}", SpanTree::build(&spans).render().trim_end());
    }
    if let Some(id) = &outcome.trace_id {
        eprintln!(
            "trace {id}  (sextant traces show {})",
            &id[..12.min(id.len())]
        );
    }
    if let Some(report) = report {
        match (&report.run_id, report.delivered) {
            (Some(id), true) => eprintln!("run {id}  (sextant runs show {id})"),
            _ => eprintln!(
                "run spooled: the tracking store is unavailable; the next command delivers it"
            ),
        }
        for error in &report.spool_errors {
            eprintln!("error: {error}");
        }
    }
    Ok(())
}

/// Shuts the runtime down, saying what telemetry could not deliver.
pub(crate) async fn finish(runtime: Runtime) -> anyhow::Result<()> {
    let report = runtime.shutdown().await?;
    if let Some(telemetry) = report.telemetry {
        if telemetry.dropped > 0 {
            eprintln!(
                "warning: {} spans were dropped (the log above says by which sink and why)",
                telemetry.dropped
            );
        }
        if telemetry.spooled > 0 {
            eprintln!(
                "note: {} spans wait in the spool for the trace backend; the next command sends                  them (`sextant telemetry status` shows the spool)",
                telemetry.spooled
            );
        }
    }
    Ok(())
}

/// `sextant run --workflow FILE`: the workflow's output, its tree, and one run with per-node
/// metrics.
async fn run_workflow(
    config: SextantConfig,
    path: &std::path::Path,
    input: &str,
    args: &RunArgs,
) -> anyhow::Result<()> {
    let workflow_config = WorkflowConfig::load(path)?;
    let builder = Runtime::builder(config);
    let run = RunSpec {
        experiment: builder.config().tracking.experiment.clone(),
        run_name: Some(format!("{} {}", workflow_config.name, short(input))),
        tags: [("sextant.workflow".to_owned(), workflow_config.name.clone())].into(),
        ..RunSpec::default()
    };
    let runtime = builder.run(run).start().await?;
    let workflow = Workflow::build(&workflow_config, runtime.build_context()).await?;
    let started = Instant::now();
    let result = workflow.run(input, &TurnContext::default()).await;
    let latency = started.elapsed();
    if let Err(error) = runtime.flush() {
        tracing::warn!("exporting the workflow's telemetry failed: {error}");
    }
    let status = runtime.with_run(|run| log_workflow(run, &workflow, result.as_ref(), latency));
    let report = match status {
        Some(status) => runtime.end_run(status).await,
        None => None,
    };
    let trace_id = match &result {
        Ok(outcome) => outcome.trace_id.clone(),
        Err(error) => error.trace_id().map(str::to_owned),
    };
    let spans = match (&trace_id, runtime.telemetry().and_then(|t| t.trace_store())) {
        (Some(id), Some(store)) => store.spans(id).unwrap_or_default(),
        _ => Vec::new(),
    };
    let run_id = report.as_ref().and_then(|r| r.run_id.clone());
    match &result {
        Ok(outcome) if args.json => {
            let value = serde_json::json!({
                "output": outcome.output,
                "workflow": workflow.name(),
                "trace_id": outcome.trace_id,
                "run_id": run_id,
                "usage": outcome.usage,
                "nodes": outcome.nodes,
            });
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        Ok(outcome) => println!("{}", outcome.output.trim()),
        Err(_) => {}
    }
    if !args.json {
        if !args.no_tree && !spans.is_empty() {
            println!();
            println!("{}", SpanTree::build(&spans).render().trim_end());
        }
        if let Some(id) = &trace_id {
            eprintln!(
                "trace {id}  (sextant traces show {})",
                &id[..12.min(id.len())]
            );
        }
        if let Some(report) = &report {
            match (&report.run_id, report.delivered) {
                (Some(id), true) => eprintln!("run {id}  (sextant runs show {id})"),
                _ => eprintln!(
                    "run spooled: the tracking store is unavailable; the next command delivers it"
                ),
            }
        }
    }
    finish(runtime).await?;
    result.map(|_| ()).map_err(Into::into)
}

/// The first words of the question, for the run's name.
fn short(question: &str) -> String {
    let words: Vec<&str> = question.split_whitespace().take(6).collect();
    let mut text = words.join(" ");
    if text.len() > 48 {
        text = text.chars().take(48).collect();
    }
    text
}
