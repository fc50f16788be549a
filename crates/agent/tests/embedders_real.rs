//! The remote embedders against real servers from `cargo xtask test`: `OpenAiEmbedder` against
//! llama.cpp's `/v1/embeddings` (SmolLM2's mean-pooled states, 576 dimensions), and
//! `OllamaEmbedder` through the Ollama API test double, which forwards `/api/embed` to that same
//! server — so both must return the same vectors. `#[ignore]`d: `cargo xtask test` runs them.

use std::sync::Arc;

use sextant_agent::providers::ollama::OllamaEmbedder;
use sextant_agent::providers::openai::OpenAiEmbedder;
use sextant_memory::stores::EmbeddedStore;
use sextant_memory::{
    Embedder, IngestOptions, NoProgress, RetrievalOptions, Retriever, embed, ingest,
};
use sextant_testkit::{ollama_host, openai_embed_model, openai_embed_url};

const DIMENSION: usize = 576;

/// The llama.cpp embeddings server's model through its OpenAI-compatible API.
fn openai_embedder() -> OpenAiEmbedder {
    OpenAiEmbedder::new(&openai_embed_url(), None, &openai_embed_model(), DIMENSION)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the llama.cpp embeddings server and the Ollama API test double: cargo xtask test"]
async fn openai_and_ollama_embeddings_from_a_real_llama_cpp_server_agree() {
    let openai = openai_embedder().with_max_batch(2);
    let texts: Vec<String> = [
        "a sextant measures angles",
        "tides follow the moon",
        "a bowline knot",
    ]
    .map(String::from)
    .to_vec();
    // Three texts in batches of two: two requests, vectors back in input order.
    let vectors = embed(&openai, &texts)
        .await
        .expect("embeddings from llama.cpp");
    assert_eq!(vectors.len(), 3);
    for vector in &vectors {
        assert_eq!(vector.len(), DIMENSION);
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "llama.cpp normalises: {norm}");
    }
    assert_ne!(vectors[0], vectors[1]);
    let alone = embed(&openai, &texts[2..]).await.unwrap();
    let drift = alone[0]
        .iter()
        .zip(&vectors[2])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        drift < 1e-3,
        "the same text embeds the same alone or batched: {drift}"
    );

    let through_ollama = OllamaEmbedder::new(&ollama_host(), "smollm2-embed", DIMENSION).unwrap();
    let same = embed(&through_ollama, &texts)
        .await
        .expect("embeddings through the Ollama API");
    for (a, b) in same.iter().zip(&vectors) {
        let diff = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-3, "Ollama and OpenAI paths differ by {diff}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the llama.cpp embeddings server: cargo xtask test"]
async fn a_collection_made_with_a_remote_embedder_has_its_dimension_and_is_searchable() {
    let embedder: Arc<dyn Embedder> = Arc::new(openai_embedder());
    let docs = tempfile::tempdir().unwrap();
    std::fs::write(
        docs.path().join("a.md"),
        "# Knots\n\nA bowline makes a fixed loop.\n",
    )
    .unwrap();
    std::fs::write(
        docs.path().join("b.md"),
        "# Tides\n\nTides follow the moon.\n",
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(data.path()));
    let options = IngestOptions {
        collection: "remote".into(),
        chunking: Default::default(),
    };
    let report = ingest(
        &[docs.path().to_owned()],
        embedder.as_ref(),
        store.as_ref(),
        &options,
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(
        (report.files_written, report.points_total),
        (2, 2),
        "{report:?}"
    );
    let info = sextant_memory::VectorStore::collection_info(store.as_ref(), "remote")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.dimension, DIMENSION);
    let retriever = Retriever::new(
        embedder,
        store,
        "remote",
        RetrievalOptions {
            top_k: 2,
            ..Default::default()
        },
    );
    let hits = retriever
        .retrieve("A bowline makes a fixed loop.")
        .await
        .unwrap();
    assert_eq!(hits.len(), 2);
    // The exact text of a chunk is its own nearest neighbour, whatever the model's quality.
    assert!(hits[0].source.ends_with("a.md"), "{hits:#?}");
}
