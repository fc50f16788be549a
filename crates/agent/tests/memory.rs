//! Memory end to end with the real parts: the local all-MiniLM-L6-v2 embedder against the
//! reference implementation's vectors, ingestion into the embedded store (idempotent, bad files
//! skipped) and the `search_memory` tool. The RAG turn's span tree is in `rag_turn.rs`.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use sextant_agent::BuildContext;
use sextant_agent::memory::{build_embedder, build_store, search_memory_tool};
use sextant_memory::{
    Embedder, Filter, IngestOptions, NoProgress, RetrievalOptions, Retriever, embed, ingest,
};
use sextant_tools::ToolSet;
use tokio::sync::OnceCell;

static EMBEDDER: OnceCell<Arc<dyn Embedder>> = OnceCell::const_new();

fn config(data_dir: &Path) -> BuildContext {
    let mut config = BuildContext::new(data_dir);
    config.providers.local.threads = Some(1);
    config
}

async fn embedder() -> Arc<dyn Embedder> {
    EMBEDDER
        .get_or_init(|| async {
            let dir = tempfile::tempdir().unwrap();
            build_embedder(&config(dir.path()))
                .await
                .expect("pull and load all-minilm-l6-v2")
        })
        .await
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_embedder_reproduces_sentence_transformers() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../memory/tests/fixtures/minilm_reference.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let texts: Vec<String> = fixture["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    let reference: Vec<Vec<f64>> = serde_json::from_value(fixture["vectors"].clone()).unwrap();
    let embedder = embedder().await;
    assert_eq!(
        (embedder.dimension(), embedder.provider()),
        (384, "sextant.local")
    );

    // One batch (padded to its longest text, which is truncated at 256 tokens) and one text at a
    // time must both match the reference.
    let batched = embed(embedder.as_ref(), &texts).await.unwrap();
    let mut worst = 0.0f64;
    for (i, text) in texts.iter().enumerate() {
        let single = embed(embedder.as_ref(), std::slice::from_ref(text))
            .await
            .unwrap();
        for (got, want) in [(&batched[i], &reference[i]), (&single[0], &reference[i])] {
            assert_eq!(got.len(), 384);
            let diff = got
                .iter()
                .zip(want)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(0.0, f64::max);
            worst = worst.max(diff);
        }
        let norm: f32 = batched[i].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "text {i}: norm {norm}");
    }
    eprintln!("largest difference from sentence-transformers: {worst:e}");
    assert!(worst < 1e-5, "largest difference {worst}");
    // Truncation is real: the long text's tokens exceed the model's window.
    assert!(embedder.count_tokens(&texts[4]) > 256);
}

/// A PDF with one page of text, laid out by hand (the format is simple enough to write).
fn tiny_pdf(text: &str) -> Vec<u8> {
    let stream = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{stream}\nendstream", stream.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_is_idempotent_replaces_changed_files_and_skips_bad_ones() {
    let data = tempfile::tempdir().unwrap();
    let docs = tempfile::tempdir().unwrap();
    let d = docs.path();
    std::fs::write(d.join("sextant.md"), "# Sextant\n\nA sextant measures angles between stars and the horizon.\n\n## Use\n\nNavigators take noon sights with it.\n").unwrap();
    std::fs::write(
        d.join("tides.txt"),
        "Tides rise and fall twice a day, driven by the moon.",
    )
    .unwrap();
    std::fs::write(d.join("compass.html"), "<html><head><title>x</title></head><body><h1>Compass</h1><p>A compass points to magnetic north.</p></body></html>").unwrap();
    std::fs::write(
        d.join("chart.pdf"),
        tiny_pdf("Nautical charts show depths in fathoms."),
    )
    .unwrap();
    std::fs::write(d.join("broken.pdf"), b"%PDF-1.4\nthis is not really a pdf").unwrap();
    std::fs::write(d.join("notes.txt"), [0xff, 0xfe, 0x00]).unwrap();
    std::fs::write(d.join("image.png"), [0x89, b'P', b'N', b'G']).unwrap();

    let config = config(data.path());
    let embedder = embedder().await;
    let store = build_store(&config).unwrap();
    let options = IngestOptions {
        collection: "kb".into(),
        chunking: config.memory.chunking,
    };
    let paths = [d.to_owned()];
    let first = ingest(
        &paths,
        embedder.as_ref(),
        store.as_ref(),
        &options,
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(first.files, 6, "{first:?}"); // the .png is not a document
    assert_eq!(first.files_written, 4, "{first:?}");
    let failed: Vec<&str> = first
        .files_failed
        .iter()
        .map(|e| e.source_path.as_str())
        .collect();
    assert!(
        failed.iter().any(|f| f.ends_with("broken.pdf"))
            && failed.iter().any(|f| f.ends_with("notes.txt")),
        "{failed:?}"
    );
    assert!(first.chunks_written >= 4);
    assert_eq!(first.points_total, first.chunks_written as u64);

    // The PDF's text was extracted, embedded and can be found.
    let retriever = Retriever::new(
        embedder.clone(),
        store.clone(),
        "kb",
        RetrievalOptions::default(),
    );
    let hits = retriever
        .retrieve("how deep is the water on a chart")
        .await
        .unwrap();
    assert!(hits[0].source.ends_with("chart.pdf"), "{hits:#?}");
    assert!(hits[0].text.contains("fathoms"));

    // Again: nothing changed, nothing embedded.
    let second = ingest(
        &paths,
        embedder.as_ref(),
        store.as_ref(),
        &options,
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(
        (
            second.files_unchanged,
            second.files_written,
            second.chunks_written
        ),
        (4, 0, 0),
        "{second:?}"
    );
    assert_eq!(second.points_total, first.points_total);

    // A changed file is re-embedded alone, and its old chunks are gone.
    let sextant = d.join("sextant.md").display().to_string();
    std::fs::write(
        d.join("sextant.md"),
        "# Sextant\n\nAn octant is its older, smaller cousin.\n",
    )
    .unwrap();
    let third = ingest(
        &paths,
        embedder.as_ref(),
        store.as_ref(),
        &options,
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(
        (third.files_written, third.files_unchanged),
        (1, 3),
        "{third:?}"
    );
    let now = store
        .count("kb", Some(&Filter::field("source", sextant.as_str())))
        .await
        .unwrap();
    assert_eq!(now, third.chunks_written as u64);
    let hits = retriever.retrieve("octant").await.unwrap();
    assert!(
        hits.iter().all(|h| !h.text.contains("noon sights")),
        "{hits:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_memory_returns_numbered_sources_and_names_a_missing_collection() {
    let data = tempfile::tempdir().unwrap();
    let docs = tempfile::tempdir().unwrap();
    std::fs::write(
        docs.path().join("a.md"),
        "# Qdrant\n\nQdrant stores vectors with payloads.\n",
    )
    .unwrap();
    std::fs::write(
        docs.path().join("b.md"),
        "# Jaeger\n\nJaeger shows distributed traces.\n",
    )
    .unwrap();
    let config = config(data.path());
    let embedder = embedder().await;
    let store = build_store(&config).unwrap();
    let options = IngestOptions {
        collection: "kb".into(),
        chunking: config.memory.chunking,
    };
    ingest(
        &[docs.path().to_owned()],
        embedder.as_ref(),
        store.as_ref(),
        &options,
        &NoProgress,
    )
    .await
    .unwrap();

    let retriever = Arc::new(Retriever::new(
        embedder.clone(),
        store.clone(),
        "kb",
        RetrievalOptions::default(),
    ));
    let tools = ToolSet::new().with(search_memory_tool(retriever));
    let result = tools
        .invoke(
            "search_memory",
            r#"{"query": "where are vectors stored", "top_k": 1}"#,
        )
        .await
        .unwrap();
    // Delimited like a RAG turn's sources, numbered for citing.
    assert!(
        result.text.starts_with("<source id=\"1\" title=\"Qdrant"),
        "{}",
        result.text
    );
    assert!(
        result.text.trim_end().ends_with("</source>"),
        "{}",
        result.text
    );
    assert!(
        !result.text.contains("id=\"2\""),
        "top_k 1: {}",
        result.text
    );
    let invalid = tools
        .invoke("search_memory", r#"{"top_k": 1}"#)
        .await
        .unwrap_err();
    assert_eq!(invalid.error_type(), "invalid_arguments");

    let missing = Arc::new(Retriever::new(
        embedder,
        store,
        "nowhere",
        RetrievalOptions::default(),
    ));
    let err = ToolSet::new()
        .with(search_memory_tool(missing))
        .invoke("search_memory", r#"{"query": "x"}"#)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("`nowhere` does not exist"),
        "{err}"
    );
}
