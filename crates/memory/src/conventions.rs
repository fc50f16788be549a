//! The span names and attribute keys that memory records: the one place in this crate where they
//! are spelled. Standard keys alias `opentelemetry-semantic-conventions`; the span names and
//! operation names are the same strings as `sextant_tracker::conventions` (this crate does not
//! depend on the tracker; a test in `sextant-agent` checks that the two agree).

#![allow(deprecated)] // The GenAI constants moved to a separate semconv repository upstream; the names are unchanged.

use opentelemetry_semantic_conventions::attribute as semconv;

/// The tracing field that sets the OpenTelemetry span name.
pub const OTEL_NAME: &str = "otel.name";
/// The tracing field that sets the OpenTelemetry span kind.
pub const OTEL_KIND: &str = "otel.kind";
/// The tracing field that sets the span status code.
pub const OTEL_STATUS_CODE: &str = "otel.status_code";
/// The tracing field that sets the span status description.
pub const OTEL_STATUS_DESCRIPTION: &str = "otel.status_description";

/// Span name (and `gen_ai.operation.name`) of computing embeddings: `embeddings {model}`.
pub const EMBEDDINGS: &str = "embeddings";
/// Span name (and `gen_ai.operation.name`) of a retrieval: `retrieval {collection}`.
pub const RETRIEVAL: &str = "retrieval";
/// Span name of the nearest-neighbour search inside a retrieval: `vector_search {collection}`.
pub const VECTOR_SEARCH: &str = "vector_search";
/// Span name of ranking the candidates a vector search found.
pub const RERANK: &str = "rerank";

/// `gen_ai.operation.name`.
pub const GEN_AI_OPERATION_NAME: &str = semconv::GEN_AI_OPERATION_NAME;
/// `gen_ai.provider.name`: who computes embeddings (`sextant.local`, `ollama`, `openai`).
pub const GEN_AI_PROVIDER_NAME: &str = semconv::GEN_AI_PROVIDER_NAME;
/// `gen_ai.request.model`: the embedding model.
pub const GEN_AI_REQUEST_MODEL: &str = semconv::GEN_AI_REQUEST_MODEL;
/// `gen_ai.usage.input_tokens`: tokens the embedder read.
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = semconv::GEN_AI_USAGE_INPUT_TOKENS;
/// `gen_ai.embeddings.dimension.count`.
pub const GEN_AI_EMBEDDINGS_DIMENSION_COUNT: &str = semconv::GEN_AI_EMBEDDINGS_DIMENSION_COUNT;
/// `gen_ai.data_source.id`: the collection searched.
pub const GEN_AI_DATA_SOURCE_ID: &str = semconv::GEN_AI_DATA_SOURCE_ID;
/// `gen_ai.request.top_k`: how many documents were asked for.
pub const GEN_AI_REQUEST_TOP_K: &str = semconv::GEN_AI_REQUEST_TOP_K;
/// `gen_ai.retrieval.query.text`: the query. Content.
pub const GEN_AI_RETRIEVAL_QUERY_TEXT: &str = semconv::GEN_AI_RETRIEVAL_QUERY_TEXT;
/// `gen_ai.retrieval.documents`: the documents returned, as the semconv JSON array of
/// `{id, score}` objects (ids and scores only; the text is content and is not recorded).
pub const GEN_AI_RETRIEVAL_DOCUMENTS: &str = semconv::GEN_AI_RETRIEVAL_DOCUMENTS;
/// `error.type`.
pub const ERROR_TYPE: &str = semconv::ERROR_TYPE;

/// `sextant.embeddings.inputs`: how many texts one embeddings call embedded.
pub const EMBEDDINGS_INPUTS: &str = "sextant.embeddings.inputs";
/// `sextant.retrieval.candidates`: how many candidates the vector search returned.
pub const RETRIEVAL_CANDIDATES: &str = "sextant.retrieval.candidates";
/// `sextant.retrieval.score_threshold`: the lowest similarity a candidate may have.
pub const RETRIEVAL_SCORE_THRESHOLD: &str = "sextant.retrieval.score_threshold";
/// `sextant.retrieval.filter`: the payload filter, as JSON.
pub const RETRIEVAL_FILTER: &str = "sextant.retrieval.filter";
/// `sextant.rerank.method`: how candidates were ranked (`mmr`, `none`).
pub const RERANK_METHOD: &str = "sextant.rerank.method";
/// `sextant.rerank.mmr_lambda`: MMR's relevance/diversity trade-off (1 = relevance only).
pub const RERANK_MMR_LAMBDA: &str = "sextant.rerank.mmr_lambda";
/// `sextant.vector_store.backend`: which store answered (`embedded`, `qdrant`).
pub const VECTOR_STORE_BACKEND: &str = "sextant.vector_store.backend";
