//! A RAG turn on the local chat model and the local embedder, with the span tree asserted:
//! `invoke_agent rag → retrieval kb → embeddings, vector_search kb, rerank`, then `chat`.
//!
//! Alone in its test binary: tracing caches per-callsite interest process-wide, and a test that
//! ran the same memory callsites on another thread without a subscriber while this one holds a
//! thread-default subscriber could leave them disabled here. A process with one global subscriber
//! (the binary, a service) is not affected.

use std::path::Path;

use serde_json::Value;
use sextant_agent::memory::{build_embedder, build_store};
use sextant_agent::{AgentConfig, BuildContext};
use sextant_memory::{IngestOptions, NoProgress, ingest};
use sextant_tracker::{Telemetry, TelemetryConfig};
use tracing::instrument::WithSubscriber;

fn config(data_dir: &Path) -> BuildContext {
    let mut config = BuildContext::new(data_dir);
    config.providers.local.threads = Some(1);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rag_turn_retrieves_under_the_agent_span_and_cites_its_sources() {
    let data = tempfile::tempdir().unwrap();
    let mut config = config(data.path());
    config.capture_content = true;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    {
        let embedder = build_embedder(&config)
            .await
            .expect("pull and load all-minilm-l6-v2");
        let store = build_store(&config).unwrap();
        let options = IngestOptions {
            collection: "kb".into(),
            chunking: config.memory.chunking,
        };
        let report = ingest(
            &[root.join("docs")],
            embedder.as_ref(),
            store.as_ref(),
            &options,
            &NoProgress,
        )
        .await
        .unwrap();
        assert!(report.chunks_written > 10, "{report:?}");
    }
    let mut agent_config = AgentConfig::load(&root.join("configs/agents/rag.toml")).unwrap();
    agent_config.model.max_tokens = Some(48);

    let telemetry = Telemetry::builder(&TelemetryConfig {
        local_store: Some(data.path().join("traces.db")),
        ..TelemetryConfig::default()
    })
    .build()
    .unwrap();
    let outcome = {
        let _subscriber = telemetry.set_thread_default();
        let agent = agent_config.build(&config).await.unwrap();
        agent
            .run("Which vector store does Sextant use offline?")
            .with_current_subscriber()
            .await
            .expect("the turn")
    };
    eprintln!("answer: {}", outcome.answer);
    assert_eq!(outcome.citations.len(), 3, "top_k = 3 in rag.toml");
    assert!(
        outcome.answer.contains("\n\nSources:\n["),
        "{}",
        outcome.answer
    );
    assert!(outcome.citations.iter().all(|c| c.source.contains("docs")));

    telemetry.force_flush().unwrap();
    let spans = telemetry
        .trace_store()
        .unwrap()
        .spans(outcome.trace_id.as_deref().unwrap())
        .unwrap();
    let named = |name: &str| {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "no span {name}: {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
    };
    let root_span = named("invoke_agent rag");
    let retrieval = named("retrieval kb");
    let embeddings = named("embeddings all-minilm-l6-v2");
    let search = named("vector_search kb");
    let rerank = named("rerank");
    let chat = spans.iter().find(|s| s.name.starts_with("chat ")).unwrap();
    assert_eq!(
        retrieval.parent_span_id.as_deref(),
        Some(root_span.span_id.as_str())
    );
    for child in [embeddings, search, rerank] {
        assert_eq!(
            child.parent_span_id.as_deref(),
            Some(retrieval.span_id.as_str()),
            "{}",
            child.name
        );
    }
    assert!(embeddings.end_time_unix_nano <= search.start_time_unix_nano);
    assert!(search.end_time_unix_nano <= rerank.start_time_unix_nano);
    assert!(
        retrieval.end_time_unix_nano <= chat.start_time_unix_nano,
        "retrieval precedes the answer"
    );

    assert_eq!(retrieval.attributes["mlflow.spanType"], "RETRIEVER");
    assert_eq!(search.attributes["mlflow.spanType"], "RETRIEVER");
    assert_eq!(embeddings.attributes["mlflow.spanType"], "EMBEDDING");
    assert_eq!(rerank.attributes["mlflow.spanType"], "RERANKER");
    assert_eq!(retrieval.attributes["gen_ai.data_source.id"], "kb");
    assert_eq!(retrieval.attributes["gen_ai.request.top_k"], 3);
    assert_eq!(search.attributes["gen_ai.request.top_k"], 20);
    assert_eq!(
        embeddings.attributes["gen_ai.embeddings.dimension.count"],
        384
    );
    assert!(
        embeddings.attributes["gen_ai.usage.input_tokens"]
            .as_i64()
            .unwrap()
            > 0
    );
    let documents: Vec<Value> = serde_json::from_str(
        retrieval.attributes["gen_ai.retrieval.documents"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(documents.len(), 3);
    assert!(
        documents
            .iter()
            .all(|d| d["id"].is_string() && d["score"].is_number())
    );
    // With content capture the documents' text is on the span (what groundedness scorers read).
    assert!(
        documents
            .iter()
            .all(|d| d["content"].as_str().is_some_and(|c| !c.trim().is_empty())),
        "{documents:?}"
    );
    let candidates = search.attributes["sextant.retrieval.candidates"]
        .as_i64()
        .unwrap();
    assert!(candidates >= 3, "{candidates}");
    assert_eq!(rerank.attributes["sextant.rerank.method"], "mmr");
    assert_eq!(
        retrieval.attributes["gen_ai.retrieval.query.text"],
        "Which vector store does Sextant use offline?"
    );
    telemetry.shutdown().unwrap();
}
