//! Search latency and recall@10 of the embedded store (Qdrant's engine in-process) at 100 000
//! vectors of 384 dimensions (all-MiniLM-L6-v2's size), HNSW-indexed, against an exact
//! brute-force scan of the same vectors in the same run.
//!
//! `cargo bench -p sextant-memory --bench embedded_store` (or `cargo xtask bench`). Set
//! `SEXTANT_BENCH_POINTS` to change the collection size.

use criterion::{Criterion, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sextant_memory::stores::EmbeddedStore;
use sextant_memory::{Point, SearchRequest, VectorStore};

const DIMENSION: usize = 384;

fn unit_vectors(count: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            let v: Vec<f32> = (0..DIMENSION)
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / norm).collect()
        })
        .collect()
}

fn brute_force(vectors: &[Vec<f32>], query: &[f32], k: usize) -> Vec<u64> {
    let mut scored: Vec<(u64, f32)> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.iter().zip(query).map(|(a, b)| a * b).sum()))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.into_iter().take(k).map(|(id, _)| id).collect()
}

fn search(c: &mut Criterion) {
    let points: usize = std::env::var("SEXTANT_BENCH_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path());
    let vectors = unit_vectors(points, 1);
    let started = std::time::Instant::now();
    runtime.block_on(async {
        store
            .create_collection("bench", DIMENSION)
            .await
            .expect("create");
        for (batch, chunk) in vectors.chunks(1000).enumerate() {
            let points = chunk
                .iter()
                .enumerate()
                .map(|(i, v)| Point {
                    id: (batch * 1000 + i) as u64,
                    vector: v.clone(),
                    payload: Default::default(),
                })
                .collect();
            store.upsert("bench", points).await.expect("upsert");
        }
        store.optimize("bench").await.expect("index");
    });
    let index = store.index_info("bench").expect("index info");
    eprintln!(
        "embedded store: {points} × {DIMENSION} written and indexed in {:.1} s ({} of {} vectors in HNSW, {} segments)",
        started.elapsed().as_secs_f64(),
        index.indexed_vectors,
        index.points,
        index.segments
    );

    let queries = unit_vectors(200, 2);
    let mut found = 0;
    for query in &queries {
        let truth = brute_force(&vectors, query, 10);
        let hits = runtime
            .block_on(store.search(
                "bench",
                &SearchRequest {
                    vector: query.clone(),
                    limit: 10,
                    score_threshold: None,
                    filter: None,
                    with_vectors: false,
                },
            ))
            .expect("search");
        found += hits.iter().filter(|h| truth.contains(&h.id)).count();
    }
    eprintln!(
        "embedded store: recall@10 = {:.4} over {} queries",
        found as f64 / (queries.len() * 10) as f64,
        queries.len()
    );

    let mut group = c.benchmark_group("embedded_store");
    group.sample_size(50);
    let mut next = 0usize;
    group.bench_function(format!("search_top10_{points}x{DIMENSION}"), |b| {
        b.iter(|| {
            let query = &queries[next % queries.len()];
            next += 1;
            runtime
                .block_on(store.search(
                    "bench",
                    &SearchRequest {
                        vector: query.clone(),
                        limit: 10,
                        score_threshold: None,
                        filter: None,
                        with_vectors: false,
                    },
                ))
                .expect("search")
        })
    });
    group.sample_size(10);
    group.bench_function(format!("brute_force_top10_{points}x{DIMENSION}"), |b| {
        b.iter(|| {
            let query = &queries[next % queries.len()];
            next += 1;
            brute_force(&vectors, query, 10)
        })
    });
    group.finish();
}

criterion_group!(benches, search);
criterion_main!(benches);
