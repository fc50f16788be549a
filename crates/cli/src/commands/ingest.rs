//! `sextant ingest`: files into a memory collection, with a progress bar.

use indicatif::{ProgressBar, ProgressStyle};
use sextant_memory::{DocumentError, IngestOptions, IngestProgress, ingest};
use sextant_runtime::Runtime;

use crate::cli::IngestArgs;

/// Draws the embedding progress: chunks written of chunks to embed, with the rate.
struct Bar {
    bar: ProgressBar,
}

impl IngestProgress for Bar {
    fn planned(&self, files: usize, chunks_to_embed: usize) {
        self.bar.set_length(chunks_to_embed as u64);
        self.bar.set_message(format!("{files} files"));
    }

    fn chunks_written(&self, chunks: usize) {
        self.bar.inc(chunks as u64);
    }

    fn file_skipped(&self, error: &DocumentError) {
        self.bar.println(format!("skipped {error}"));
    }
}

pub async fn ingest_command(runtime: &Runtime, args: IngestArgs) -> anyhow::Result<()> {
    let embedder = runtime.embedder().await?;
    let store = runtime.vector_store()?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} chunks  {per_sec}  {elapsed_precise}  {msg}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let options = IngestOptions {
        collection: args.collection.clone(),
        chunking: runtime.config().memory.chunking,
    };
    let report = ingest(
        &args.paths,
        embedder.as_ref(),
        store.as_ref(),
        &options,
        &Bar { bar: bar.clone() },
    )
    .await;
    bar.finish_and_clear();
    let report = report?;
    let rate = report.chunks_written as f64 / report.elapsed.as_secs_f64().max(1e-9);
    if args.json {
        let failed: Vec<_> = report
            .files_failed
            .iter()
            .map(|e| serde_json::json!({"source": e.source_path, "error": e.message}))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "collection": args.collection,
                "store": store.backend(),
                "embedder": embedder.model(),
                "files": report.files,
                "files_written": report.files_written,
                "files_unchanged": report.files_unchanged,
                "files_failed": failed,
                "chunks_written": report.chunks_written,
                "points_total": report.points_total,
                "seconds": report.elapsed.as_secs_f64(),
            })
        );
        return Ok(());
    }
    println!(
        "{}: {} files ({} written, {} unchanged, {} skipped), {} chunks embedded in {:.1} s ({rate:.1} chunks/s); {} points in the {} store",
        args.collection,
        report.files,
        report.files_written,
        report.files_unchanged,
        report.files_failed.len(),
        report.chunks_written,
        report.elapsed.as_secs_f64(),
        report.points_total,
        store.backend(),
    );
    for failed in &report.files_failed {
        println!("  skipped {failed}");
    }
    Ok(())
}
