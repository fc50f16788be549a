//! [`Embedder`]: turns texts into vectors, and [`embed`], the traced way to call one.

use async_trait::async_trait;
use tracing::field::Empty;

use sextant_conventions as sc;

/// Turns texts into vectors of one fixed dimension.
///
/// Implementations: [`LocalEmbedder`](crate::embedders::LocalEmbedder) (all-MiniLM-L6-v2 in-process,
/// the offline default) here, and the Ollama and OpenAI embedders in `sextant-agent`, which share
/// the chat providers' clients. Call one through [`embed`], which batches and traces.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// Who computes the vectors: `sextant.local`, `ollama`, `openai` (`gen_ai.provider.name`).
    fn provider(&self) -> &str;

    /// The embedding model's name (`gen_ai.request.model`).
    fn model(&self) -> &str;

    /// The length of every vector this embedder returns.
    fn dimension(&self) -> usize;

    /// Most texts sent in one [`embed_batch`](Self::embed_batch) call.
    fn max_batch(&self) -> usize {
        32
    }

    /// Tokens `text` takes in this model's vocabulary, for chunking. The default estimates four
    /// characters a token; embedders that hold their tokenizer count exactly.
    fn count_tokens(&self, text: &str) -> usize {
        text.chars().count().div_ceil(4)
    }

    /// Embeds at most [`max_batch`](Self::max_batch) texts, one vector per text, in order.
    async fn embed_batch(&self, texts: &[String]) -> Result<Embeddings, EmbedError>;
}

/// What one [`Embedder::embed_batch`] call returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Embeddings {
    /// One vector per input text, in input order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens read, when the embedder reports them.
    pub input_tokens: Option<u64>,
}

/// Why embedding failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model could not be loaded.
    #[error("cannot load the embedding model `{model}`: {message}")]
    Load {
        /// The model.
        model: String,
        /// What went wrong, for a person.
        message: String,
    },
    /// The model failed on the inputs.
    #[error("the embedding model `{model}` failed: {message}")]
    Inference {
        /// The model.
        model: String,
        /// What went wrong.
        message: String,
    },
    /// The embedding server could not be reached or answered with an error.
    #[error("the embedding server for `{model}` failed: {message}")]
    Upstream {
        /// The model.
        model: String,
        /// What went wrong (never holds a key).
        message: String,
    },
    /// The embedder returned the wrong number or length of vectors.
    #[error("the embedding model `{model}` returned {message}")]
    Shape {
        /// The model.
        model: String,
        /// What was wrong with the shape.
        message: String,
    },
}

impl EmbedError {
    /// The `error.type` value of this error.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Load { .. } => "model_load_error",
            Self::Inference { .. } => "inference_error",
            Self::Upstream { .. } => "upstream_error",
            Self::Shape { .. } => "invalid_response",
        }
    }
}

// Counts are recorded as i64: tracing-opentelemetry turns u64 fields into strings.

/// Embeds `texts` in batches of the embedder's [`max_batch`](Embedder::max_batch), as one
/// `embeddings {model}` span, and checks that every text got a vector of the embedder's dimension.
pub async fn embed(embedder: &dyn Embedder, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
    let span = tracing::info_span!(
        sc::operation::EMBEDDINGS,
        { sc::OTEL_NAME } = %format!("{} {}", sc::operation::EMBEDDINGS, embedder.model()),
        { sc::OTEL_KIND } = "client",
        { sc::OTEL_STATUS_CODE } = Empty,
        { sc::OTEL_STATUS_DESCRIPTION } = Empty,
        { sc::GEN_AI_OPERATION_NAME } = sc::operation::EMBEDDINGS,
        { sc::GEN_AI_PROVIDER_NAME } = %embedder.provider(),
        { sc::GEN_AI_REQUEST_MODEL } = %embedder.model(),
        { sc::GEN_AI_EMBEDDINGS_DIMENSION_COUNT } = embedder.dimension() as i64,
        { sc::SEXTANT_EMBEDDINGS_INPUTS } = texts.len() as i64,
        { sc::GEN_AI_USAGE_INPUT_TOKENS } = Empty,
        { sc::ERROR_TYPE } = Empty,
    );
    let result = embed_batches(embedder, texts, &span).await;
    if let Err(error) = &result {
        span.record(sc::OTEL_STATUS_CODE, "ERROR");
        span.record(sc::OTEL_STATUS_DESCRIPTION, error.to_string());
        span.record(sc::ERROR_TYPE, error.error_type());
    }
    result
}

async fn embed_batches(
    embedder: &dyn Embedder,
    texts: &[String],
    span: &tracing::Span,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    use tracing::Instrument;
    let mut vectors = Vec::with_capacity(texts.len());
    let mut tokens = Some(0u64);
    for batch in texts.chunks(embedder.max_batch().max(1)) {
        let embeddings = embedder.embed_batch(batch).instrument(span.clone()).await?;
        if embeddings.vectors.len() != batch.len() {
            return Err(EmbedError::Shape {
                model: embedder.model().to_owned(),
                message: format!(
                    "{} vectors for {} texts",
                    embeddings.vectors.len(),
                    batch.len()
                ),
            });
        }
        if let Some(bad) = embeddings
            .vectors
            .iter()
            .find(|vector| vector.len() != embedder.dimension())
        {
            return Err(EmbedError::Shape {
                model: embedder.model().to_owned(),
                message: format!(
                    "a vector of {} dimensions; it declares {}",
                    bad.len(),
                    embedder.dimension()
                ),
            });
        }
        tokens = tokens.zip(embeddings.input_tokens).map(|(a, b)| a + b);
        vectors.extend(embeddings.vectors);
    }
    if let Some(tokens) = tokens.filter(|_| !texts.is_empty()) {
        span.record(sc::GEN_AI_USAGE_INPUT_TOKENS, tokens as i64);
    }
    Ok(vectors)
}
