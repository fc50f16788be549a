//! [`MemoryConfig`]: the `[memory]` section of `sextant.toml` — which embedder and vector store,
//! how documents are chunked and how retrieval ranks.

use serde::{Deserialize, Serialize};

use crate::chunker::ChunkingConfig;
use crate::retriever::RetrievalOptions;

/// The `[memory]` section.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    /// Which store holds collections.
    pub store: StoreKind,
    /// The embedder that fills and queries them.
    pub embedder: EmbedderConfig,
    /// The Qdrant server, when `store = "qdrant"`.
    pub qdrant: QdrantConfig,
    /// How documents are cut into chunks.
    pub chunking: ChunkingConfig,
    /// Default retrieval settings (an agent may override `top_k` and the filter).
    pub retrieval: RetrievalOptions,
}

/// Which vector store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// Qdrant's engine in-process under the data dir (offline).
    #[default]
    Embedded,
    /// A Qdrant server.
    Qdrant,
}

/// Which embedder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedderConfig {
    /// `local` (in-process), `ollama` or `openai` (any OpenAI-compatible server), using the
    /// `[providers.*]` settings.
    pub provider: EmbedderProvider,
    /// The model: a local model name (`all-minilm-l6-v2`) or the server's model name.
    pub model: String,
    /// The vectors' length; needed for remote models (the local model knows its own).
    pub dimension: Option<usize>,
    /// Texts per embedding call.
    pub batch_size: usize,
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        Self {
            provider: EmbedderProvider::Local,
            model: "all-minilm-l6-v2".to_owned(),
            dimension: None,
            batch_size: 32,
        }
    }
}

/// Who computes embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbedderProvider {
    /// In-process.
    #[default]
    Local,
    /// An Ollama server (`/api/embed`).
    Ollama,
    /// An OpenAI-compatible server (`/v1/embeddings`).
    Openai,
}

/// Where the Qdrant server is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QdrantConfig {
    /// Its gRPC endpoint (`QDRANT_URL` overrides it and selects `store = "qdrant"`).
    pub url: String,
    /// The environment variable holding its API key, if it needs one.
    pub api_key_env: String,
}

impl Default for QdrantConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:6334".to_owned(),
            api_key_env: "QDRANT_API_KEY".to_owned(),
        }
    }
}

impl MemoryConfig {
    /// Checks values that serde cannot, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        self.chunking.validate()?;
        self.retrieval.validate("memory.retrieval")?;
        if self.embedder.batch_size == 0 {
            return Err("memory.embedder.batch_size must be at least 1".to_owned());
        }
        if self.embedder.model.trim().is_empty() {
            return Err("memory.embedder.model is empty".to_owned());
        }
        if self.embedder.provider != EmbedderProvider::Local && self.embedder.dimension.is_none() {
            return Err(format!(
                "memory.embedder.dimension is required for the {:?} embedder `{}` (e.g. 768 for nomic-embed-text)",
                self.embedder.provider, self.embedder.model
            ));
        }
        Ok(())
    }
}
