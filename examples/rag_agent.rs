//! RAG — the seed's retrieval demo: ingest a small knowledge base (this project's own docs/),
//! then answer questions from it with numbered citations. The trace shows
//! `retrieval kb → embeddings, vector_search kb, rerank` under `invoke_agent`, before the model
//! call that answers from what was retrieved.
//!
//! Offline: the embedded embedder (all-MiniLM-L6-v2), Qdrant's engine in-process, and the
//! embedded chat model, all in a temporary data dir (the store and the traces go with it).
//!
//! ```sh
//! cargo run --release --example rag_agent -- "How does Sextant make re-ingesting a file a no-op?"
//! ```

use std::path::PathBuf;

use sextant_memory::{IngestOptions, NoProgress, ingest};
use sextant_runtime::{Runtime, SextantConfig};
use sextant_tracker::SpanTree;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "Which vector store does Sextant use offline?".into());
    // From the repository root, so sources read `docs/memory.md`.
    std::env::set_current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))?;

    // A fresh data dir, so the demo starts from an empty store every time.
    let data_dir = tempfile::tempdir()?;
    let mut config = SextantConfig::load(None)?;
    config.data_dir = Some(data_dir.path().to_owned());
    config.telemetry.capture_content = true; // a demo: message content on the spans
    let runtime = Runtime::start(config).await?;

    // 1. Ingest the knowledge base.
    let embedder = runtime.embedder().await?;
    let store = runtime.vector_store()?;
    let options = IngestOptions {
        collection: "kb".into(),
        chunking: runtime.config().memory.chunking,
    };
    let report = ingest(
        &[PathBuf::from("docs")],
        embedder.as_ref(),
        store.as_ref(),
        &options,
        &NoProgress,
    )
    .await?;
    println!(
        "ingested {} files into `kb`: {} chunks in {:.1} s",
        report.files,
        report.chunks_written,
        report.elapsed.as_secs_f64()
    );
    drop(store); // the agent opens the collection itself

    // 2. Ask the RAG agent.
    let agent = runtime.agent(Some("configs/agents/rag.toml")).await?;
    let outcome = agent.run(&question).await?;
    println!("\nQ: {question}\n\n{}\n", outcome.answer.trim());

    if let Some(trace_id) = &outcome.trace_id {
        print!(
            "{}",
            SpanTree::build(&runtime.trace_spans(trace_id)?).render()
        );
    }
    runtime.shutdown().await?;
    Ok(())
}
