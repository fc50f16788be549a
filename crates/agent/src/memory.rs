//! Agents with memory: building the embedder, vector store and retriever from configuration, the
//! `search_memory` tool, and the numbered sources a RAG turn answers from.

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
#[cfg(feature = "local")]
use sextant_memory::embedders::{LocalEmbedder, LocalEmbedderFiles};
#[cfg(feature = "embedded-store")]
use sextant_memory::stores::EmbeddedStore;
#[cfg(feature = "qdrant")]
use sextant_memory::stores::QdrantStore;
use sextant_memory::{
    EmbedError, Embedder, EmbedderProvider, Filter, MatchValue, RetrievalOptions, RetrievedChunk,
    Retriever, StoreError, StoreKind, VectorStore,
};
use sextant_tools::{Tool, ToolError, tool_fn};

use crate::build_context::BuildContext;
#[cfg(feature = "local")]
use crate::model_files::ModelSpec;
#[cfg(feature = "ollama")]
use crate::providers::ollama::OllamaEmbedder;
#[cfg(feature = "openai")]
use crate::providers::openai::OpenAiEmbedder;

/// The name of the memory search tool.
pub const SEARCH_MEMORY: &str = "search_memory";

/// `[memory]` of an agent file: which collection it answers from, and how.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentMemoryConfig {
    /// The collection (filled by `sextant ingest PATH --collection NAME`).
    pub collection: String,
    /// How the agent uses it.
    #[serde(default)]
    pub mode: MemoryMode,
    /// Chunks per retrieval; default `memory.retrieval.top_k`.
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Lowest cosine similarity kept; default `memory.retrieval.score_threshold`.
    #[serde(default)]
    pub score_threshold: Option<f32>,
    /// Drop chunks scored more than this below the best one; default
    /// [`crate::rag_context::DEFAULT_RELATIVE_SCORE_CUT`]; `1.0` keeps all.
    #[serde(default)]
    pub relative_score_cut: Option<f32>,
    /// The retrieved context's budget in estimated tokens: only the sentences most related to the
    /// question are kept within it. Default: [`crate::rag_context::LOCAL_CONTEXT_TOKENS`] on the
    /// embedded local model, whole chunks on other providers.
    #[serde(default)]
    pub context_tokens: Option<usize>,
    /// Payload fields every retrieved chunk must match, e.g. `{ source = "docs/memory.md" }`.
    #[serde(default)]
    pub filter: BTreeMap<String, toml::Value>,
}

/// How an agent uses its memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemoryMode {
    /// Retrieve for every question and answer from the numbered sources (RAG).
    #[default]
    Context,
    /// Give the model a `search_memory` tool.
    Tool,
    /// Both.
    Both,
}

impl MemoryMode {
    /// Whether each turn retrieves before the first model call.
    pub fn injects_context(self) -> bool {
        matches!(self, Self::Context | Self::Both)
    }

    /// Whether the model gets the `search_memory` tool.
    pub fn offers_tool(self) -> bool {
        matches!(self, Self::Tool | Self::Both)
    }
}

impl AgentMemoryConfig {
    /// The retrieval options: the global `[memory.retrieval]` with this agent's overrides.
    pub fn retrieval_options(
        &self,
        defaults: &RetrievalOptions,
    ) -> Result<RetrievalOptions, String> {
        let mut options = defaults.clone();
        if let Some(cut) = self.relative_score_cut
            && !(cut >= 0.0 && cut.is_finite())
        {
            return Err(format!(
                "memory.relative_score_cut must be a number of 0 or more, not {cut}"
            ));
        }
        if self.context_tokens == Some(0) {
            return Err("memory.context_tokens must be at least 1".into());
        }
        if let Some(top_k) = self.top_k {
            options.top_k = top_k;
            options.candidates = options.candidates.max(top_k);
        }
        if self.score_threshold.is_some() {
            options.score_threshold = self.score_threshold;
        }
        if !self.filter.is_empty() {
            let mut filter = Filter::default();
            for (key, value) in &self.filter {
                let value = match value {
                    toml::Value::String(s) => MatchValue::Keyword(s.clone()),
                    toml::Value::Integer(i) => MatchValue::Integer(*i),
                    toml::Value::Boolean(b) => MatchValue::Bool(*b),
                    other => {
                        return Err(format!(
                            "memory.filter.{key} must be a string, integer or boolean, not {}",
                            other.type_str()
                        ));
                    }
                };
                filter = filter.and(key.clone(), value);
            }
            options.filter = Some(filter);
        }
        options.validate("memory")?;
        Ok(options)
    }
}

/// Why memory could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MemoryBuildError {
    /// A setting is unusable.
    #[error("{0}")]
    Config(String),
    /// The embedder could not be made.
    #[error(transparent)]
    Embedder(#[from] EmbedError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The embedder `[memory.embedder]` describes; the local model is pulled on first use.
// Built without any embedder, every arm is the error: the rest is unreachable there.
#[cfg_attr(
    not(any(feature = "local", feature = "ollama", feature = "openai")),
    allow(unreachable_code, unused_variables)
)]
pub async fn build_embedder(context: &BuildContext) -> Result<Arc<dyn Embedder>, MemoryBuildError> {
    let settings = &context.memory.embedder;
    context
        .memory
        .validate()
        .map_err(MemoryBuildError::Config)?;
    let embedder: Arc<dyn Embedder> = match settings.provider {
        #[cfg(feature = "local")]
        EmbedderProvider::Local => {
            let spec = ModelSpec::by_name(&settings.model)
                .map_err(|err| MemoryBuildError::Config(format!("memory.embedder.model: {err}")))?;
            let cache = context
                .model_cache()
                .map_err(|err| MemoryBuildError::Config(err.to_string()))?;
            let dir = cache.ensure(spec).await.map_err(|err| EmbedError::Load {
                model: settings.model.clone(),
                message: err.to_string(),
            })?;
            let files = LocalEmbedderFiles {
                config: dir.join("config.json"),
                tokenizer: dir.join("tokenizer.json"),
                weights: dir.join("model.safetensors"),
            };
            // The same thread count as the local chat model.
            let threads = crate::providers::local::LocalModelOptions {
                threads: context.providers.local.threads,
                ..Default::default()
            }
            .resolved_threads();
            let name = settings.model.clone();
            let embedder =
                tokio::task::spawn_blocking(move || LocalEmbedder::load(&name, &files, threads))
                    .await
                    .map_err(|err| {
                        MemoryBuildError::Config(format!("loading the embedder failed: {err}"))
                    })??;
            Arc::new(embedder.with_max_batch(settings.batch_size))
        }
        #[cfg(feature = "ollama")]
        EmbedderProvider::Ollama => Arc::new(
            OllamaEmbedder::new(
                &context.providers.ollama.host,
                &settings.model,
                settings.dimension.unwrap_or_default(),
            )?
            .with_max_batch(settings.batch_size),
        ),
        #[cfg(feature = "openai")]
        EmbedderProvider::Openai => {
            let openai = &context.providers.openai;
            let api_key = std::env::var(&openai.api_key_env)
                .ok()
                .filter(|k| !k.is_empty());
            Arc::new(
                OpenAiEmbedder::new(
                    &openai.base_url,
                    api_key,
                    &settings.model,
                    settings.dimension.unwrap_or_default(),
                )
                .with_max_batch(settings.batch_size),
            )
        }
        #[allow(unreachable_patterns)]
        provider => {
            return Err(MemoryBuildError::Config(format!(
                "memory.embedder.provider: this build of Sextant has no `{provider:?}` embedder; rebuild with the cargo feature `{}`",
                match provider {
                    EmbedderProvider::Local => "local",
                    EmbedderProvider::Ollama => "ollama",
                    EmbedderProvider::Openai => "openai",
                }
            )));
        }
    };
    Ok(embedder)
}

/// The vector store `[memory]` describes: the embedded engine under the data dir's `vectors/`,
/// or a Qdrant server.
// Built without any store, every arm is the error: the rest is unreachable there.
#[cfg_attr(
    not(any(feature = "embedded-store", feature = "qdrant")),
    allow(unreachable_code)
)]
pub fn build_store(context: &BuildContext) -> Result<Arc<dyn VectorStore>, MemoryBuildError> {
    Ok(match context.memory.store {
        #[cfg(feature = "embedded-store")]
        StoreKind::Embedded => Arc::new(EmbeddedStore::open(context.data_dir.join("vectors"))),
        #[cfg(feature = "qdrant")]
        StoreKind::Qdrant => {
            let qdrant = &context.memory.qdrant;
            let api_key = std::env::var(&qdrant.api_key_env)
                .ok()
                .filter(|k| !k.is_empty());
            Arc::new(QdrantStore::connect(&qdrant.url, api_key)?)
        }
        #[allow(unreachable_patterns)]
        store => {
            return Err(MemoryBuildError::Config(format!(
                "memory.store: this build of Sextant has no `{store:?}` store; rebuild with the cargo feature `{}`",
                match store {
                    StoreKind::Embedded => "embedded-store",
                    StoreKind::Qdrant => "qdrant",
                }
            )));
        }
    })
}

/// The `search_memory` tool: the model searches `retriever`'s collection with its own query.
pub fn search_memory_tool(retriever: Arc<Retriever>) -> impl Tool {
    let description = format!(
        "Searches the `{}` knowledge base and returns the most relevant passages, numbered, with \
         their sources. Use it to answer questions about facts that may be in the knowledge base; \
         cite passages by their number, e.g. [1].",
        retriever.collection()
    );
    tool_fn(
        SEARCH_MEMORY,
        &description,
        move |args: SearchMemoryArgs| {
            let retriever = retriever.clone();
            async move {
                let query = args.query.trim();
                if query.is_empty() {
                    return Err(ToolError::InvalidArguments("`query` is empty".into()));
                }
                let mut options = retriever.options().clone();
                if let Some(top_k) = args.top_k {
                    options.top_k = top_k.clamp(1, 20) as usize;
                    options.candidates = options.candidates.max(options.top_k);
                }
                let chunks = retriever
                    .retrieve_with(query, &options)
                    .await
                    .map_err(|err| ToolError::Upstream(err.to_string()))?;
                if chunks.is_empty() {
                    return Ok(format!(
                        "No passages in `{}` match that query.",
                        retriever.collection()
                    ));
                }
                // Delimited like the sources of a RAG turn: a passage cannot forge another one.
                Ok(crate::prompt::delimited_sources(&chunks))
            }
        },
    )
}

/// The `top_k` passages of `collection` closest to `query`, with the retrieval settings of
/// `[memory]`: what `search_memory` returns, for callers without an agent (the MCP server).
/// Traced as a `retrieval {collection}` span like an agent's retrieval.
pub async fn search_collection(
    context: &BuildContext,
    collection: &str,
    query: &str,
    top_k: usize,
) -> Result<Vec<RetrievedChunk>, MemoryBuildError> {
    let embedder = build_embedder(context).await?;
    let store = build_store(context)?;
    let mut options = context.memory.retrieval.clone();
    options.top_k = top_k.max(1);
    options.candidates = options.candidates.max(options.top_k);
    let retriever = Retriever::new(embedder, store, collection, options)
        .capture_content(context.capture_content);
    retriever
        .retrieve(query)
        .await
        .map_err(|error| MemoryBuildError::Config(error.to_string()))
}

/// The arguments of `search_memory`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchMemoryArgs {
    /// What to look for, in natural language.
    pub query: String,
    /// How many passages to return (1-20).
    #[serde(default)]
    pub top_k: Option<u32>,
}

/// A source a RAG answer drew on, as returned with the answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Citation {
    /// Its number in the prompt and the answer (`[1]`).
    pub index: usize,
    /// The file.
    pub source: String,
    /// The document's title.
    pub title: Option<String>,
    /// The section.
    pub heading: Option<String>,
    /// The document's URL.
    pub url: Option<String>,
    /// The chunk's position in the file.
    pub chunk_index: u64,
    /// Similarity to the question.
    pub score: f32,
    /// Whether the answer cites it by number.
    pub cited: bool,
}

/// The citations of `chunks` as used in `answer`, and the answer with a "Sources" list appended:
/// the sources it cites by number, or, when it cites none, every source it was given.
pub fn cite(answer: &str, chunks: &[RetrievedChunk]) -> (String, Vec<Citation>) {
    let citations: Vec<Citation> = chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| Citation {
            index: i + 1,
            source: chunk.source.clone(),
            title: chunk.title.clone(),
            heading: chunk.heading.clone(),
            url: chunk.url.clone(),
            chunk_index: chunk.chunk_index,
            score: chunk.score,
            cited: answer.contains(&format!("[{}]", i + 1)),
        })
        .collect();
    if citations.is_empty() {
        return (answer.to_owned(), citations);
    }
    let any_cited = citations.iter().any(|c| c.cited);
    let listed: Vec<String> = citations
        .iter()
        .zip(chunks)
        .filter(|(c, _)| c.cited || !any_cited)
        .map(|(c, chunk)| format!("[{}] {} ({})", c.index, chunk.label(), chunk.source))
        .collect();
    (
        format!("{}\n\nSources:\n{}", answer.trim_end(), listed.join("\n")),
        citations,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(source: &str, title: &str) -> RetrievedChunk {
        RetrievedChunk {
            id: 1,
            score: 0.5,
            source: source.into(),
            title: Some(title.into()),
            url: None,
            heading: None,
            chunk_index: 0,
            text: "text".into(),
        }
    }

    #[test]
    fn an_answer_lists_the_sources_it_cites_or_all_when_it_cites_none() {
        let chunks = [chunk("docs/a.md", "A"), chunk("docs/b.md", "B")];
        let (answer, citations) = cite("It is so [2].", &chunks);
        assert!(answer.ends_with("Sources:\n[2] B (docs/b.md)"), "{answer}");
        assert_eq!(
            citations.iter().map(|c| c.cited).collect::<Vec<_>>(),
            vec![false, true]
        );
        let (answer, _) = cite("It is so.", &chunks);
        assert!(
            answer.ends_with("[1] A (docs/a.md)\n[2] B (docs/b.md)"),
            "{answer}"
        );
        let (answer, citations) = cite("Nothing found.", &[]);
        assert_eq!((answer.as_str(), citations.len()), ("Nothing found.", 0));
    }

    #[test]
    fn agent_overrides_and_filters_reach_the_options() {
        let config: AgentMemoryConfig = toml::from_str(
            "collection = \"kb\"\nmode = \"both\"\ntop_k = 30\nfilter = { source = \"docs/a.md\", chunk_index = 2 }\n",
        )
        .unwrap();
        let options = config
            .retrieval_options(&RetrievalOptions::default())
            .unwrap();
        assert_eq!((options.top_k, options.candidates), (30, 30));
        assert_eq!(
            options.filter.unwrap().to_string(),
            "chunk_index = 2 AND source = \"docs/a.md\""
        );
        assert!(config.mode.injects_context() && config.mode.offers_tool());

        let bad: AgentMemoryConfig =
            toml::from_str("collection = \"kb\"\nfilter = { score = 0.5 }\n").unwrap();
        let err = bad
            .retrieval_options(&RetrievalOptions::default())
            .unwrap_err();
        assert!(
            err.contains("memory.filter.score") && err.contains("float"),
            "{err}"
        );
    }
}
