//! A workflow — research → write → review, with a bounded revision loop
//! (`configs/workflows/research.toml`), on the embedded model: each node's output feeds the next
//! node's prompt, the trace is rooted at `invoke_workflow research` with a `node {id}` span per
//! node run (a loop's nodes once per iteration), and the tracking run holds per-node durations and
//! tokens as metrics and each node's output as an artefact — what `sextant run --workflow` does.
//!
//! ```sh
//! cargo run --release --example workflow -- "What does the invoke_agent span record?"
//! sextant runs show RUN_ID    # node.research.duration_ms, node.critique.output_tokens, …
//! ```

use std::time::Instant;

use sextant_agent::TurnContext;
use sextant_agent::workflow::{Workflow, log_workflow};
use sextant_runtime::{RunSpec, Runtime, SextantConfig};
use sextant_tracker::SpanTree;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What does the invoke_agent span record?".into());
    let mut config = SextantConfig::load(None)?;
    config.telemetry.capture_content = true; // a demo: node outputs as artefacts and on spans
    let runtime = Runtime::builder(config)
        .run(RunSpec {
            experiment: "examples".into(),
            run_name: Some("workflow research".into()),
            ..RunSpec::default()
        })
        .start()
        .await?;
    let workflow = Workflow::load(
        std::path::Path::new("configs/workflows/research.toml"),
        runtime.build_context(),
    )
    .await?;
    let started = Instant::now();
    let result = workflow.run(&question, &TurnContext::default()).await;
    runtime.flush()?;
    let status =
        runtime.with_run(|run| log_workflow(run, &workflow, result.as_ref(), started.elapsed()));
    let report = match status {
        Some(status) => runtime.end_run(status).await,
        None => None,
    };
    let outcome = result?;
    for node in &outcome.nodes {
        println!(
            "{:<10} {:<9} {:>8.0} ms {:>5} tokens{}",
            node.id,
            node.kind,
            node.duration_ms,
            node.usage.total(),
            node.iteration
                .map(|i| format!("  (iteration {i})"))
                .unwrap_or_default()
        );
    }
    println!("\n{}\n", outcome.output.trim());
    if let Some(trace_id) = &outcome.trace_id {
        print!(
            "{}",
            SpanTree::build(&runtime.trace_spans(trace_id)?).render()
        );
    }
    if let Some(id) = report.and_then(|r| r.run_id) {
        println!("\nrun {id}  (sextant runs show {id})");
    }
    runtime.shutdown().await?;
    Ok(())
}
