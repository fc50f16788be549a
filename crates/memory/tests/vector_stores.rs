//! The `VectorStore` contract, run against every store: the embedded engine, the `qdrant` client
//! against `QdrantGrpcDouble` (Qdrant's gRPC services over its own engine), and a real Qdrant
//! server when `QDRANT_URL` is set. Then what only the embedded store promises: ANN recall against
//! brute force, persistence across reopen and across a killed writer, one process per collection.

mod support;

use std::io::BufRead;
use std::process::{Command, Stdio};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sextant_memory::stores::{EmbeddedStore, QdrantStore};
use sextant_memory::{Filter, Point, SearchRequest, StoreError, VectorStore};
use support::qdrant_grpc_double::QdrantGrpcDouble;

fn unit(v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn random_vectors(count: usize, dimension: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            unit(
                (0..dimension)
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect(),
            )
        })
        .collect()
}

fn search(vector: Vec<f32>, limit: usize) -> SearchRequest {
    SearchRequest {
        vector,
        limit,
        score_threshold: None,
        filter: None,
        with_vectors: false,
    }
}

/// The behaviour every store must share, on a fresh collection name.
async fn contract(store: &dyn VectorStore, collection: &str) {
    assert!(store.collection_info(collection).await.unwrap().is_none());
    let missing = store
        .search(collection, &search(vec![1.0, 0.0, 0.0], 3))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NoCollection { .. })),
        "{}: {missing:?}",
        store.backend()
    );

    store.create_collection(collection, 3).await.unwrap();
    // Creating again with the same dimension is a no-op; another dimension is refused.
    store.create_collection(collection, 3).await.unwrap();
    let mismatch = store.create_collection(collection, 4).await.unwrap_err();
    assert!(
        matches!(
            mismatch,
            StoreError::DimensionMismatch {
                expected: 3,
                got: 4,
                ..
            }
        ),
        "{mismatch:?}"
    );

    let points = vec![
        Point {
            id: 1,
            vector: vec![1.0, 0.0, 0.0],
            payload: json!({"source": "a.md", "chunk_index": 0})
                .as_object()
                .unwrap()
                .clone(),
        },
        Point {
            id: 2,
            vector: vec![0.9, 0.1, 0.0],
            payload: json!({"source": "a.md", "chunk_index": 1})
                .as_object()
                .unwrap()
                .clone(),
        },
        Point {
            id: 3,
            vector: vec![0.0, 1.0, 0.0],
            payload: json!({"source": "b.md", "chunk_index": 0, "draft": true})
                .as_object()
                .unwrap()
                .clone(),
        },
        Point {
            id: 4,
            vector: vec![0.0, 0.0, 2.0],
            payload: json!({"source": "c.md", "chunk_index": 0})
                .as_object()
                .unwrap()
                .clone(),
        },
    ];
    store.upsert(collection, points).await.unwrap();
    assert_eq!(store.count(collection, None).await.unwrap(), 4);
    assert_eq!(
        store
            .count(collection, Some(&Filter::field("source", "a.md")))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .count(
                collection,
                Some(&Filter::field("source", "a.md").and("chunk_index", 1i64))
            )
            .await
            .unwrap(),
        1
    );
    let info = store.collection_info(collection).await.unwrap().unwrap();
    assert_eq!((info.dimension, info.points), (3, 4));

    // Cosine: the best hit is the same direction, scores descend, payload comes back.
    let hits = store
        .search(collection, &search(vec![1.0, 0.05, 0.0], 3))
        .await
        .unwrap();
    assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    assert!((hits[0].score - 0.99875).abs() < 1e-3, "{}", hits[0].score);
    assert_eq!(hits[0].payload["source"], "a.md");
    assert!(hits[0].vector.is_none());

    // Filters, thresholds and returned vectors (normalised by cosine).
    let filtered = store
        .search(
            collection,
            &SearchRequest {
                filter: Some(Filter::field("draft", true)),
                ..search(vec![1.0, 0.0, 0.0], 3)
            },
        )
        .await
        .unwrap();
    assert_eq!(filtered.iter().map(|h| h.id).collect::<Vec<_>>(), vec![3]);
    let thresholded = store
        .search(
            collection,
            &SearchRequest {
                score_threshold: Some(0.5),
                with_vectors: true,
                ..search(vec![0.0, 0.0, 1.0], 4)
            },
        )
        .await
        .unwrap();
    assert_eq!(
        thresholded.iter().map(|h| h.id).collect::<Vec<_>>(),
        vec![4]
    );
    let stored = thresholded[0].vector.as_ref().expect("vector returned");
    assert!((stored[2] - 1.0).abs() < 1e-6, "{stored:?}");

    // Upserting an existing id replaces it; vectors of the wrong length are refused.
    store
        .upsert(
            collection,
            vec![Point {
                id: 4,
                vector: vec![0.0, 1.0, 0.0],
                payload: json!({"source": "c.md", "chunk_index": 0})
                    .as_object()
                    .unwrap()
                    .clone(),
            }],
        )
        .await
        .unwrap();
    assert_eq!(store.count(collection, None).await.unwrap(), 4);
    let wrong = store
        .upsert(
            collection,
            vec![Point {
                id: 9,
                vector: vec![1.0, 0.0],
                payload: Default::default(),
            }],
        )
        .await;
    assert!(
        wrong.is_err(),
        "{}: a 2-dimension vector was accepted",
        store.backend()
    );

    store
        .delete(collection, &Filter::field("source", "a.md"))
        .await
        .unwrap();
    assert_eq!(store.count(collection, None).await.unwrap(), 2);
    assert!(
        store.delete(collection, &Filter::default()).await.is_err(),
        "an empty filter must not delete everything"
    );

    assert!(store.delete_collection(collection).await.unwrap());
    assert!(store.collection_info(collection).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&EmbeddedStore::open(dir.path()), "contract").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qdrant_client_keeps_the_contract_against_the_grpc_double() {
    let dir = tempfile::tempdir().unwrap();
    let double = QdrantGrpcDouble::start(dir.path(), None).await;
    let store = QdrantStore::connect(&double.url, None).unwrap();
    contract(&store, "contract").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qdrant_client_keeps_the_contract_against_a_real_server() {
    let Ok(url) = std::env::var("QDRANT_URL") else {
        eprintln!(
            "skipped: QDRANT_URL is not set (a Qdrant server's gRPC endpoint, e.g. http://127.0.0.1:6334)"
        );
        return;
    };
    let store = QdrantStore::connect(&url, std::env::var("QDRANT_API_KEY").ok()).unwrap();
    let collection = format!("sextant-contract-{}", std::process::id());
    contract(&store, &collection).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_goes_in_a_header_and_never_into_errors() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "qdrant-secret-key-7f3a";
    let double = QdrantGrpcDouble::start(dir.path(), Some(secret)).await;

    let right = QdrantStore::connect(&double.url, Some(secret.to_owned())).unwrap();
    right.create_collection("keyed", 2).await.unwrap();

    let wrong = QdrantStore::connect(&double.url, Some("wrong-key-0000".to_owned())).unwrap();
    let err = wrong.count("keyed", None).await.unwrap_err();
    let text = format!("{err} {err:?} {wrong:?}");
    assert!(text.contains("Unauthenticated"), "{text}");
    assert!(
        !text.contains("wrong-key-0000") && !text.contains(secret),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_reported_with_its_url() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let store = QdrantStore::connect(&url, Some("k-123".into())).unwrap();
    let err = store.collection_info("kb").await.unwrap_err();
    assert_eq!(err.error_type(), "store_unavailable", "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
    assert!(!format!("{err:?}").contains("k-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hnsw_recall_at_10_is_at_least_95_percent_of_brute_force() {
    const POINTS: usize = 10_000;
    const DIMENSION: usize = 384;
    const QUERIES: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path());
    store.create_collection("recall", DIMENSION).await.unwrap();
    let vectors = random_vectors(POINTS, DIMENSION, 7);
    for (batch_index, batch) in vectors.chunks(1000).enumerate() {
        let points = batch
            .iter()
            .enumerate()
            .map(|(i, v)| Point {
                id: (batch_index * 1000 + i) as u64,
                vector: v.clone(),
                payload: Default::default(),
            })
            .collect();
        store.upsert("recall", points).await.unwrap();
    }
    store.optimize("recall").await.unwrap();
    let index = store.index_info("recall").unwrap();
    assert_eq!(index.points, POINTS as u64);
    assert_eq!(
        index.indexed_vectors, POINTS as u64,
        "the HNSW index covers every vector: {index:?}"
    );

    let queries = random_vectors(QUERIES, DIMENSION, 8);
    let mut found = 0;
    for query in &queries {
        let mut exact: Vec<(usize, f32)> = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| (i, v.iter().zip(query).map(|(a, b)| a * b).sum()))
            .collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1));
        let truth: Vec<u64> = exact.iter().take(10).map(|(i, _)| *i as u64).collect();
        let hits = store
            .search("recall", &search(query.clone(), 10))
            .await
            .unwrap();
        found += hits.iter().filter(|h| truth.contains(&h.id)).count();
    }
    let recall = found as f64 / (QUERIES * 10) as f64;
    eprintln!("recall@10 over {QUERIES} queries, {POINTS} × {DIMENSION}: {recall:.4}");
    assert!(recall >= 0.95, "recall@10 = {recall}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_store_has_everything() {
    let dir = tempfile::tempdir().unwrap();
    let vectors = random_vectors(200, 16, 3);
    {
        let store = EmbeddedStore::open(dir.path());
        store.create_collection("kb", 16).await.unwrap();
        let points = vectors
            .iter()
            .enumerate()
            .map(|(i, v)| Point {
                id: i as u64,
                vector: v.clone(),
                payload: json!({"n": i}).as_object().unwrap().clone(),
            })
            .collect();
        store.upsert("kb", points).await.unwrap();
        // A second handle in the same process shares the open collection.
        let same_process = EmbeddedStore::open(dir.path());
        assert_eq!(same_process.count("kb", None).await.unwrap(), 200);
    }
    let reopened = EmbeddedStore::open(dir.path());
    assert_eq!(reopened.count("kb", None).await.unwrap(), 200);
    let hits = reopened
        .search("kb", &search(vectors[42].clone(), 1))
        .await
        .unwrap();
    assert_eq!(hits[0].id, 42);
    assert_eq!(hits[0].payload["n"], 42);
}

const KILLED_WRITER_DIR: &str = "SEXTANT_TEST_KILLED_WRITER_DIR";

/// Run by `a_killed_writer_loses_nothing_it_acknowledged` in a child process: writes batches until
/// killed, printing each batch number once `upsert` has returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_child() {
    let Ok(dir) = std::env::var(KILLED_WRITER_DIR) else {
        return; // only meaningful as the child of the test below
    };
    let store = EmbeddedStore::open(dir);
    store.create_collection("kb", 8).await.unwrap();
    for batch in 0u64.. {
        let points = (0..50)
            .map(|i| Point {
                id: batch * 50 + i,
                vector: unit(
                    (0..8)
                        .map(|d| ((batch * 50 + i + d) % 7) as f32 + 0.5)
                        .collect(),
                ),
                payload: json!({"batch": batch}).as_object().unwrap().clone(),
            })
            .collect();
        store.upsert("kb", points).await.unwrap();
        println!("acked {batch}");
    }
}

#[test]
fn a_killed_writer_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "killed_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(KILLED_WRITER_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(batch) = line.strip_prefix("acked ") {
            let batch: u64 = batch.parse().unwrap();
            acked = Some(batch);
            if batch >= 20 {
                break;
            }
        }
    }
    // While the child writes, another process cannot open the collection.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let locked = runtime
        .block_on(EmbeddedStore::open(dir.path()).count("kb", None))
        .unwrap_err();
    assert!(matches!(locked, StoreError::Locked { .. }), "{locked:?}");
    assert!(
        locked
            .to_string()
            .contains("in use by another Sextant process"),
        "{locked}"
    );
    child.kill().unwrap(); // SIGKILL: no destructor, no flush
    child.wait().unwrap();
    // Acknowledgements printed before the kill landed count too.
    for line in lines.map_while(Result::ok) {
        if let Some(batch) = line.strip_prefix("acked ") {
            acked = Some(batch.parse().unwrap());
        }
    }
    let acked = acked.expect("the child acknowledged batches");

    runtime.block_on(async {
        let store = EmbeddedStore::open(dir.path());
        let total = store
            .count("kb", None)
            .await
            .expect("the killed writer's collection opens");
        assert!(
            total >= (acked + 1) * 50,
            "{total} points, {} acknowledged",
            (acked + 1) * 50
        );
        for batch in 0..=acked {
            let batch_count = store
                .count("kb", Some(&Filter::field("batch", batch as i64)))
                .await
                .unwrap();
            assert_eq!(batch_count, 50, "batch {batch} of {acked} acknowledged");
        }
        // And the store still takes writes.
        store
            .upsert(
                "kb",
                vec![Point {
                    id: u64::MAX - 1,
                    vector: unit(vec![1.0; 8]),
                    payload: Default::default(),
                }],
            )
            .await
            .unwrap();
    });
}
