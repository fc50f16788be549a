//! Throughput of the local embedder (all-MiniLM-L6-v2 in-process): texts per second for batches of
//! chunk length (~250 tokens, about what ingestion produces) and of query length (~12 tokens).
//!
//! `cargo bench -p sextant-agent --bench embedder` (or `cargo xtask bench`, on one thread).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sextant_agent::BuildContext;
use sextant_agent::memory::build_embedder;
use sextant_memory::embed;

fn throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let data = tempfile::tempdir().expect("a data dir");
    let mut config = BuildContext::new(data.path());
    config.providers.local.threads = std::env::var("SEXTANT_THREADS")
        .ok()
        .and_then(|t| t.parse().ok());
    let embedder = runtime
        .block_on(build_embedder(&config))
        .expect("pull and load the embedder");
    let chunk =
        "Spans nest under the agent span: retrieval, then embeddings, vector search and rerank. "
            .repeat(12);
    let query = "Which vector store does Sextant use offline?".to_owned();
    let mut group = c.benchmark_group("local_embedder");
    group.sample_size(10);
    for (name, text, batch) in [
        ("chunk_252_tokens", &chunk, 32usize),
        ("query_12_tokens", &query, 1),
        ("query_12_tokens", &query, 32),
    ] {
        let texts = vec![text.clone(); batch];
        eprintln!("{name}: {} tokens per text", embedder.count_tokens(text));
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new(name, batch), &texts, |b, texts| {
            b.iter(|| {
                runtime
                    .block_on(embed(embedder.as_ref(), texts))
                    .expect("embed")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
