//! Vector memory for Sextant agents: embedders, vector stores, ingestion and retrieval.
//!
//! - An [`Embedder`] turns texts into vectors: [`embedders::LocalEmbedder`] runs all-MiniLM-L6-v2
//!   in-process (the offline default); Ollama and OpenAI-compatible embedders live with their chat
//!   providers in `sextant-agent`.
//! - A [`VectorStore`] keeps points (vector + JSON payload) in collections:
//!   [`stores::EmbeddedStore`] runs Qdrant's engine in-process under the data dir,
//!   [`stores::QdrantStore`] talks to a Qdrant server — same payloads, filters and scores.
//! - [`ingest()`] reads text, Markdown, HTML and PDF files, [chunks](chunker) them by tokens with
//!   overlap along headings and paragraphs, embeds and upserts them, skipping unchanged files.
//! - A [`Retriever`] embeds a query, searches, and ranks by MMR, traced as
//!   `retrieval {collection}` → `embeddings {model}`, `vector_search {collection}`, `rerank`.
#![deny(missing_docs)]

pub mod chunker;
pub mod config;
pub mod documents;
mod embedder;
pub mod embedders;
mod ingest;
mod ranking;
mod retriever;
pub mod stores;
mod vector_store;

pub use chunker::{Chunk, ChunkingConfig};
pub use config::{EmbedderConfig, EmbedderProvider, MemoryConfig, QdrantConfig, StoreKind};
pub use documents::{Document, DocumentError, DocumentKind};
pub use embedder::{EmbedError, Embedder, Embeddings, embed};
pub use ingest::{
    IngestError, IngestOptions, IngestProgress, IngestReport, NoProgress, ingest, point_id,
};
pub use ranking::mmr;
pub use retriever::{
    Rerank, RetrievalError, RetrievalOptions, RetrievedChunk, Retriever, format_sources,
};
pub use vector_store::{
    CollectionInfo, FieldMatch, Filter, MatchValue, Point, PointId, ScoredPoint, SearchRequest,
    StoreError, VectorStore, validate_collection_name,
};
