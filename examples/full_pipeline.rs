//! The full pipeline — the seed's demo 6: a prompt from the registry → retrieval from a knowledge
//! base → generation → evaluation with Correctness, `uses_citations` and `is_grounded`, run once
//! with version 1 of the prompt and once with version 2, then the two compared: per-scorer pass
//! rates, the questions whose verdict changed, and an HTML chart.
//!
//! Each evaluation is a tracking run whose traces carry the scores as assessments; the trace of
//! every answer shows `invoke_agent rag → retrieval kb → embeddings, vector_search, rerank →
//! chat`, with the prompt version linked. Offline on the embedded defaults; with
//! `SEXTANT_TRACKING_URI` the prompt, runs, traces and assessments are in MLflow.
//!
//! ```sh
//! cargo run --release --example full_pipeline
//! sextant eval compare <run of v1> <run of v2>    # the same comparison from the runs
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use sextant_agent::eval::compare::compare;
use sextant_agent::eval::dataset::Dataset;
use sextant_agent::eval::judges::{JudgeKind, LlmJudge};
use sextant_agent::eval::run::{EvalOptions, EvalReport, evaluate};
use sextant_agent::eval::scorer::Scorer;
use sextant_agent::eval::scorers::builtin;
use sextant_memory::{IngestOptions, NoProgress, ingest};
use sextant_runtime::{RunSpec, RunStatus, Runtime, SextantConfig};
use sextant_tracker::prompts::{PromptFile, push};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // From the repository root: the agent file, the prompt file, the docs and the dataset.
    std::env::set_current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))?;
    let mut config = SextantConfig::load(None)?;
    config.telemetry.capture_content = true; // scorers read the answers and sources on the trace
    config.tracking.experiment = "demo-6-full-pipeline".into(); // the traces next to the runs
    let runtime = Runtime::start(config).await?;

    // 1. The knowledge base: this project's docs in `kb` (unchanged files are skipped).
    let embedder = runtime.embedder().await?;
    let store = runtime.vector_store()?;
    let options = IngestOptions {
        collection: "kb".into(),
        chunking: runtime.config().memory.chunking,
    };
    let ingested = ingest(
        &[PathBuf::from("docs")],
        embedder.as_ref(),
        store.as_ref(),
        &options,
        &NoProgress,
    )
    .await?;
    println!(
        "kb: {} files, {} chunks written",
        ingested.files, ingested.chunks_written
    );
    drop(store); // the agent opens the collection itself

    // 2. The prompt's two versions in the registry (registered only where they changed).
    let registry = runtime.prompt_registry()?;
    let file = PromptFile::load("configs/prompts/rag-qa-prompt.toml".as_ref())?;
    push(
        registry.as_ref(),
        &[("configs/prompts/rag-qa-prompt.toml".into(), file)],
        false,
    )
    .await?;

    let spans = runtime.spans_reader();
    let dataset = Dataset::load("examples/data/qa.jsonl")?;
    // One run per evaluation, not one for the process: they go through a tracker of their own.
    let tracker = runtime.tracker()?;
    let (rag, _) = runtime
        .agent_config(Some("configs/agents/rag.toml"))
        .await?;

    // 3. Evaluate the RAG agent with each prompt version.
    let mut results: Vec<(String, EvalReport)> = Vec::new();
    for version in [1, 2] {
        let uri = format!("prompts:/rag-qa-prompt/{version}");
        let mut agent_config = rag.clone();
        agent_config.prompt = Some(uri.clone());
        let agent = runtime.build_agent(&agent_config, None).await?;
        let scorers: Vec<Arc<dyn Scorer>> = vec![
            Arc::new(
                LlmJudge::new(
                    JudgeKind::Correctness,
                    agent.model().clone(),
                    registry.clone(),
                )
                .with_capture_content(true),
            ),
            builtin("uses_citations")
                .expect("a built-in")
                .map_err(anyhow::Error::msg)?,
            builtin("is_grounded")
                .expect("a built-in")
                .map_err(anyhow::Error::msg)?,
        ];
        let run = tracker.start_run(RunSpec {
            experiment: runtime.config().tracking.experiment.clone(),
            run_name: Some(format!("rag ({uri}) on qa")),
            tags: [("sextant.kind".to_owned(), "evaluation".to_owned())].into(),
            ..RunSpec::default()
        })?;
        println!(
            "\nevaluating with {uri} over {} questions…",
            dataset.rows.len()
        );
        let progress = |done: usize, total: usize| eprintln!("  {done}/{total}");
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
        run.log_params([
            ("prompt", uri.clone()),
            ("dataset_digest", dataset.digest.clone()),
        ]);
        run.log_dataset(dataset.tracking_input());
        report.log_to(&run);
        let logged = run.end(RunStatus::Finished).await;
        let label = logged
            .run_id
            .map_or(uri.clone(), |id| format!("{uri} ({id})"));
        results.push((label, report));
    }

    // 4. Version 2 against version 1.
    let [(label_a, a), (label_b, b)] = <[_; 2]>::try_from(results).expect("two evaluations");
    let comparison = compare(&label_a, &a, &label_b, &b);
    println!("\nA = {label_a}\nB = {label_b}\n");
    print!("{}", comparison.render_text());
    let chart = std::env::temp_dir().join("sextant-full-pipeline-compare.html");
    std::fs::write(&chart, comparison.render_html())?;
    println!("\nchart: {}", chart.display());
    drop(spans);
    runtime.shutdown().await?;
    Ok(())
}
