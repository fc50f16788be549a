//! `sextant ingest` and `sextant memory` as a user runs them: a folder into a collection, a re-run
//! that embeds nothing, a bad file reported without failing, and a search that finds the chunk.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn sextant(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(args)
        .env("SEXTANT_DATA_DIR", data_dir)
        .env("SEXTANT_THREADS", "1")
        .env_remove("SEXTANT_QDRANT_URL")
        .output()
        .expect("the sextant binary runs")
}

fn json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "sextant failed: {}\nstdout: {}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    serde_json::from_slice(&output.stdout).expect("stdout is JSON")
}

#[test]
fn ingest_twice_embeds_once_reports_bad_files_and_search_finds_the_chunk() {
    let data = tempfile::tempdir().unwrap();
    let docs = tempfile::tempdir().unwrap();
    std::fs::write(docs.path().join("lighthouse.md"), "# Lighthouses\n\nA lighthouse's light is identified by its flash pattern, its character.\n").unwrap();
    std::fs::write(
        docs.path().join("knots.txt"),
        "A bowline makes a fixed loop that does not slip.",
    )
    .unwrap();
    std::fs::write(docs.path().join("scan.pdf"), b"%PDF-1.7\nnot really a pdf").unwrap();
    let folder = docs.path().to_str().unwrap();

    let first = json(&sextant(
        data.path(),
        &["ingest", folder, "--collection", "sea", "--json"],
    ));
    assert_eq!(first["files"], 3, "{first}");
    assert_eq!(first["files_written"], 2, "{first}");
    assert_eq!(first["store"], "embedded");
    let failed = first["files_failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{first}");
    assert!(failed[0]["source"].as_str().unwrap().ends_with("scan.pdf"));
    let chunks = first["chunks_written"].as_u64().unwrap();
    assert!(chunks >= 2);

    let second = json(&sextant(
        data.path(),
        &["ingest", folder, "--collection", "sea", "--json"],
    ));
    assert_eq!(
        (
            second["files_unchanged"].as_u64(),
            second["chunks_written"].as_u64()
        ),
        (Some(2), Some(0)),
        "{second}"
    );
    assert_eq!(second["points_total"].as_u64(), Some(chunks));

    let hits = json(&sextant(
        data.path(),
        &[
            "memory",
            "search",
            "sea",
            "which knot keeps a loop",
            "-k",
            "1",
            "--json",
        ],
    ));
    let hits = hits.as_array().unwrap();
    assert_eq!(hits.len(), 1);
    assert!(
        hits[0]["source"].as_str().unwrap().ends_with("knots.txt"),
        "{hits:?}"
    );

    let missing = sextant(data.path(), &["memory", "search", "nowhere", "x"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("collection `nowhere` does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sextant ingest"),
        "the error says how to fix it: {stderr}"
    );
}
