//! [`Retriever`]: a query → the most relevant, diverse chunks of a collection, traced as
//! `retrieval {collection}` with `embeddings`, `vector_search` and `rerank` children.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::Instrument;
use tracing::field::Empty;

use crate::embedder::{EmbedError, Embedder, embed};
use crate::ranking::mmr;
use crate::vector_store::{Filter, ScoredPoint, SearchRequest, StoreError, VectorStore};
use sextant_conventions as sc;

/// How candidates are ranked after the vector search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rerank {
    /// Keep the similarity order.
    None,
    /// Maximal Marginal Relevance.
    Mmr,
}

/// What a retrieval asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrievalOptions {
    /// Chunks returned.
    pub top_k: usize,
    /// Candidates fetched by the vector search for ranking (at least `top_k`).
    pub candidates: usize,
    /// Candidates less similar than this (cosine) are dropped.
    pub score_threshold: Option<f32>,
    /// Only chunks whose payload matches.
    pub filter: Option<Filter>,
    /// How candidates are ranked.
    pub rerank: Rerank,
    /// MMR's trade-off: 1 = relevance only, 0 = diversity only.
    pub mmr_lambda: f32,
}

impl Default for RetrievalOptions {
    fn default() -> Self {
        Self {
            top_k: 4,
            candidates: 20,
            score_threshold: None,
            filter: None,
            rerank: Rerank::Mmr,
            mmr_lambda: 0.7,
        }
    }
}

impl RetrievalOptions {
    /// Checks the values, naming the keys under `prefix` (e.g. `memory.retrieval`).
    pub fn validate(&self, prefix: &str) -> Result<(), String> {
        if self.top_k == 0 {
            return Err(format!("{prefix}.top_k must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.mmr_lambda) {
            return Err(format!(
                "{prefix}.mmr_lambda must be between 0 and 1, not {}",
                self.mmr_lambda
            ));
        }
        if let Some(threshold) = self.score_threshold
            && !(-1.0..=1.0).contains(&threshold)
        {
            return Err(format!(
                "{prefix}.score_threshold is a cosine similarity between -1 and 1, not {threshold}"
            ));
        }
        Ok(())
    }
}

/// One retrieved chunk with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrievedChunk {
    /// The point's id in the collection.
    pub id: u64,
    /// Cosine similarity to the query.
    pub score: f32,
    /// The file it came from.
    pub source: String,
    /// The document's title, if known.
    pub title: Option<String>,
    /// The document's URL, if known.
    pub url: Option<String>,
    /// The headings the chunk sits under.
    pub heading: Option<String>,
    /// Its position in the document.
    pub chunk_index: u64,
    /// The chunk's text.
    pub text: String,
}

impl RetrievedChunk {
    fn from_point(point: ScoredPoint) -> Self {
        let text_of = |key: &str| {
            point
                .payload
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Self {
            id: point.id,
            score: point.score,
            source: text_of("source").unwrap_or_default(),
            title: text_of("title"),
            url: text_of("url"),
            heading: text_of("heading"),
            chunk_index: point
                .payload
                .get("chunk_index")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            text: text_of("text").unwrap_or_default(),
        }
    }

    /// How a citation names this chunk: title (or file), section.
    pub fn label(&self) -> String {
        let name = self.title.clone().unwrap_or_else(|| self.source.clone());
        match &self.heading {
            Some(heading) if !name.ends_with(heading.as_str()) => {
                format!(
                    "{name} — {}",
                    heading.rsplit(" > ").next().unwrap_or(heading)
                )
            }
            _ => name,
        }
    }
}

/// Formats chunks as numbered sources for a prompt: `[1] label (source)` then the text.
pub fn format_sources(chunks: &[RetrievedChunk]) -> String {
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            format!(
                "[{}] {} ({})\n{}",
                i + 1,
                chunk.label(),
                chunk.source,
                chunk.text.trim()
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Why a retrieval failed.
#[derive(Debug, thiserror::Error)]
pub enum RetrievalError {
    /// Embedding the query failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The vector store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RetrievalError {
    /// The `error.type` value of this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Embed(err) => err.error_type(),
            Self::Store(err) => err.error_type(),
        }
    }
}

/// Searches one collection: embeds the query, fetches candidates by vector search, ranks them.
#[derive(Clone)]
pub struct Retriever {
    embedder: Arc<dyn Embedder>,
    store: Arc<dyn VectorStore>,
    collection: String,
    options: RetrievalOptions,
    capture_content: bool,
}

impl std::fmt::Debug for Retriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retriever")
            .field("embedder", &self.embedder.model())
            .field("store", &self.store.backend())
            .field("collection", &self.collection)
            .field("options", &self.options)
            .finish()
    }
}

impl Retriever {
    /// A retriever of `collection` in `store`, whose vectors `embedder` made.
    pub fn new(
        embedder: Arc<dyn Embedder>,
        store: Arc<dyn VectorStore>,
        collection: impl Into<String>,
        options: RetrievalOptions,
    ) -> Self {
        Self {
            embedder,
            store,
            collection: collection.into(),
            options,
            capture_content: false,
        }
    }

    /// Record the query text on the span (default off: it is the user's words).
    pub fn capture_content(mut self, capture: bool) -> Self {
        self.capture_content = capture;
        self
    }

    /// The collection searched.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// The options every retrieval uses unless overridden.
    pub fn options(&self) -> &RetrievalOptions {
        &self.options
    }

    /// The embedder.
    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn VectorStore> {
        &self.store
    }

    /// The best `top_k` chunks for `query`.
    pub async fn retrieve(&self, query: &str) -> Result<Vec<RetrievedChunk>, RetrievalError> {
        self.retrieve_with(query, &self.options).await
    }

    /// The best chunks for `query` under `options` instead of the retriever's own.
    pub async fn retrieve_with(
        &self,
        query: &str,
        options: &RetrievalOptions,
    ) -> Result<Vec<RetrievedChunk>, RetrievalError> {
        let span = tracing::info_span!(
            sc::operation::RETRIEVAL,
            { sc::OTEL_NAME } = %format!("{} {}", sc::operation::RETRIEVAL, self.collection),
            { sc::OTEL_KIND } = "client",
            { sc::OTEL_STATUS_CODE } = Empty,
            { sc::OTEL_STATUS_DESCRIPTION } = Empty,
            { sc::GEN_AI_OPERATION_NAME } = sc::operation::RETRIEVAL,
            { sc::GEN_AI_DATA_SOURCE_ID } = %self.collection,
            { sc::GEN_AI_REQUEST_TOP_K } = options.top_k as i64,
            { sc::GEN_AI_REQUEST_MODEL } = %self.embedder.model(),
            { sc::GEN_AI_RETRIEVAL_QUERY_TEXT } = Empty,
            { sc::GEN_AI_RETRIEVAL_DOCUMENTS } = Empty,
            { sc::SEXTANT_VECTOR_STORE_BACKEND } = self.store.backend(),
            { sc::ERROR_TYPE } = Empty,
        );
        if self.capture_content {
            span.record(sc::GEN_AI_RETRIEVAL_QUERY_TEXT, query);
        }
        let result = self.run(query, options).instrument(span.clone()).await;
        match &result {
            Ok(chunks) => {
                span.record(
                    sc::GEN_AI_RETRIEVAL_DOCUMENTS,
                    documents_json(chunks, self.capture_content),
                );
            }
            Err(error) => {
                span.record(sc::OTEL_STATUS_CODE, "ERROR");
                span.record(sc::OTEL_STATUS_DESCRIPTION, error.to_string());
                span.record(sc::ERROR_TYPE, error.error_type());
            }
        }
        result
    }

    async fn run(
        &self,
        query: &str,
        options: &RetrievalOptions,
    ) -> Result<Vec<RetrievedChunk>, RetrievalError> {
        let vector = embed(self.embedder.as_ref(), &[query.to_owned()])
            .await?
            .pop()
            .unwrap_or_default();
        let candidates = self.vector_search(vector, options).await?;
        Ok(rerank(candidates, options)
            .into_iter()
            .map(RetrievedChunk::from_point)
            .collect())
    }

    async fn vector_search(
        &self,
        vector: Vec<f32>,
        options: &RetrievalOptions,
    ) -> Result<Vec<ScoredPoint>, StoreError> {
        let limit = options.candidates.max(options.top_k);
        let span = tracing::info_span!(
            sc::span_name::VECTOR_SEARCH,
            { sc::OTEL_NAME } = %format!("{} {}", sc::span_name::VECTOR_SEARCH, self.collection),
            { sc::OTEL_KIND } = "client",
            { sc::OTEL_STATUS_CODE } = Empty,
            { sc::OTEL_STATUS_DESCRIPTION } = Empty,
            { sc::GEN_AI_DATA_SOURCE_ID } = %self.collection,
            { sc::GEN_AI_REQUEST_TOP_K } = limit as i64,
            { sc::SEXTANT_VECTOR_STORE_BACKEND } = self.store.backend(),
            { sc::SEXTANT_RETRIEVAL_SCORE_THRESHOLD } = Empty,
            { sc::SEXTANT_RETRIEVAL_FILTER } = Empty,
            { sc::SEXTANT_RETRIEVAL_CANDIDATES } = Empty,
            { sc::GEN_AI_RETRIEVAL_DOCUMENTS } = Empty,
            { sc::ERROR_TYPE } = Empty,
        );
        if let Some(threshold) = options.score_threshold {
            span.record(sc::SEXTANT_RETRIEVAL_SCORE_THRESHOLD, f64::from(threshold));
        }
        if let Some(filter) = &options.filter {
            span.record(sc::SEXTANT_RETRIEVAL_FILTER, filter.to_string());
        }
        let request = SearchRequest {
            vector,
            limit,
            score_threshold: options.score_threshold,
            filter: options.filter.clone(),
            with_vectors: options.rerank == Rerank::Mmr,
        };
        let result = self
            .store
            .search(&self.collection, &request)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(hits) => {
                span.record(sc::SEXTANT_RETRIEVAL_CANDIDATES, hits.len() as i64);
                span.record(
                    sc::GEN_AI_RETRIEVAL_DOCUMENTS,
                    points_json(hits.iter().map(|hit| (hit.id, hit.score))),
                );
            }
            Err(error) => {
                span.record(sc::OTEL_STATUS_CODE, "ERROR");
                span.record(sc::OTEL_STATUS_DESCRIPTION, error.to_string());
                span.record(sc::ERROR_TYPE, error.error_type());
            }
        }
        result
    }
}

/// Ranks candidates into the final `top_k`, traced as `rerank`.
fn rerank(candidates: Vec<ScoredPoint>, options: &RetrievalOptions) -> Vec<ScoredPoint> {
    let method = match options.rerank {
        Rerank::None => "none",
        Rerank::Mmr => "mmr",
    };
    let span = tracing::info_span!(
        sc::span_name::RERANK,
        { sc::OTEL_NAME } = sc::span_name::RERANK,
        { sc::OTEL_KIND } = "internal",
        { sc::GEN_AI_REQUEST_TOP_K } = options.top_k as i64,
        { sc::SEXTANT_RERANK_METHOD } = method,
        { sc::SEXTANT_RERANK_MMR_LAMBDA } = Empty,
        { sc::SEXTANT_RETRIEVAL_CANDIDATES } = candidates.len() as i64,
        { sc::GEN_AI_RETRIEVAL_DOCUMENTS } = Empty,
    );
    let _entered = span.enter();
    let ranked: Vec<ScoredPoint> = match options.rerank {
        Rerank::None => candidates.into_iter().take(options.top_k).collect(),
        Rerank::Mmr => {
            span.record(sc::SEXTANT_RERANK_MMR_LAMBDA, f64::from(options.mmr_lambda));
            mmr(candidates, options.top_k, options.mmr_lambda)
                .into_iter()
                .map(|(point, _)| point)
                .collect()
        }
    };
    span.record(
        sc::GEN_AI_RETRIEVAL_DOCUMENTS,
        points_json(ranked.iter().map(|p| (p.id, p.score))),
    );
    ranked
}

/// The retrieved documents: ids and scores, and with content capture their text (what groundedness
/// scorers read from the trace).
fn documents_json(chunks: &[RetrievedChunk], capture_content: bool) -> String {
    if !capture_content {
        return points_json(chunks.iter().map(|c| (c.id, c.score)));
    }
    Value::Array(
        chunks
            .iter()
            .map(|c| {
                json!({
                    "id": c.id.to_string(),
                    "score": (f64::from(c.score) * 1e4).round() / 1e4,
                    "content": c.text,
                })
            })
            .collect(),
    )
    .to_string()
}

/// `[{"id": "…", "score": …}]`, the semconv shape of `gen_ai.retrieval.documents` without content.
fn points_json(points: impl Iterator<Item = (u64, f32)>) -> String {
    Value::Array(
        points
            .map(|(id, score)| json!({"id": id.to_string(), "score": (f64::from(score) * 1e4).round() / 1e4}))
            .collect(),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_text_is_recorded_only_with_content_capture() {
        let chunk = RetrievedChunk {
            id: 7,
            score: 0.812345,
            source: "docs/a.md".into(),
            title: None,
            url: None,
            heading: None,
            chunk_index: 0,
            text: "Qdrant stores vectors.".into(),
        };
        let plain: Value =
            serde_json::from_str(&documents_json(std::slice::from_ref(&chunk), false)).unwrap();
        assert_eq!(plain, json!([{"id": "7", "score": 0.8123}]));
        let captured: Value = serde_json::from_str(&documents_json(&[chunk], true)).unwrap();
        assert_eq!(captured[0]["content"], "Qdrant stores vectors.");
    }
}
