//! [`LocalEmbedder`]: sentence-transformers/all-MiniLM-L6-v2 run in-process with candle's BERT.
//!
//! What sentence-transformers does, step for step: WordPiece tokens with `[CLS]`/`[SEP]`,
//! truncated at 256 (the model's `max_seq_length`), a batch padded to its longest text (the
//! shipped tokenizer.json pads every text to 128, which would change nothing but cost time),
//! BERT's last hidden state, mean pooling over the real tokens only (the attention mask), then L2
//! normalisation, so a dot product is the cosine similarity.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::embedder::{EmbedError, Embedder, Embeddings};

/// The longest input in tokens, from the model's `sentence_bert_config.json`.
const MAX_SEQ_LENGTH: usize = 256;

/// The three files of a BERT sentence-embedding model.
#[derive(Debug, Clone)]
pub struct LocalEmbedderFiles {
    /// `config.json`.
    pub config: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// `model.safetensors`.
    pub weights: PathBuf,
}

/// all-MiniLM-L6-v2 (or another BERT sentence-embedding model) run in-process, on a dedicated
/// thread pool so embedding never blocks the async runtime.
///
/// ```no_run
/// # fn demo(files: sextant_memory::embedders::LocalEmbedderFiles) -> Result<(), sextant_memory::EmbedError> {
/// use sextant_memory::embedders::LocalEmbedder;
/// let embedder = LocalEmbedder::load("all-minilm-l6-v2", &files, 1)?;
/// let vectors = embedder.embed_blocking(&["a sextant measures angles"])?;
/// assert_eq!(vectors[0].len(), 384);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LocalEmbedder {
    name: String,
    dimension: usize,
    max_batch: usize,
    inner: Arc<Inner>,
    pool: Arc<rayon::ThreadPool>,
}

struct Inner {
    model: BertModel,
    /// Pads to the batch's longest text and truncates at [`MAX_SEQ_LENGTH`].
    tokenizer: Tokenizer,
    /// Neither pads nor truncates: counts a text's real length for chunking.
    counter: Tokenizer,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("name", &self.name)
            .field("dimension", &self.dimension)
            .field("threads", &self.pool.current_num_threads())
            .finish()
    }
}

impl LocalEmbedder {
    /// Loads the model called `name` from `files`, to run on `threads` threads.
    pub fn load(
        name: &str,
        files: &LocalEmbedderFiles,
        threads: usize,
    ) -> Result<Self, EmbedError> {
        let load_error = |message: String| EmbedError::Load {
            model: name.to_owned(),
            message,
        };
        let config_text = std::fs::read_to_string(&files.config)
            .map_err(|err| load_error(format!("cannot read {}: {err}", files.config.display())))?;
        let config: Config = serde_json::from_str(&config_text).map_err(|err| {
            load_error(format!(
                "{} is not a BERT config: {err}",
                files.config.display()
            ))
        })?;
        let mut tokenizer = Tokenizer::from_file(&files.tokenizer).map_err(|err| {
            load_error(format!("cannot read {}: {err}", files.tokenizer.display()))
        })?;
        let mut counter = tokenizer.clone();
        counter.with_padding(None);
        counter
            .with_truncation(None)
            .map_err(|err| load_error(format!("cannot turn truncation off: {err}")))?;
        let padding = PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..tokenizer.get_padding().cloned().unwrap_or_default()
        };
        tokenizer.with_padding(Some(padding));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_SEQ_LENGTH,
                ..TruncationParams::default()
            }))
            .map_err(|err| load_error(format!("cannot set truncation: {err}")))?;
        // SAFETY: the weights file is memory-mapped read-only; Sextant never writes model files
        // while a model is loaded (pulls write a temporary file and rename it into place).
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(&[&files.weights], DType::F32, &Device::Cpu)
        }
        .map_err(|err| load_error(format!("cannot read {}: {err}", files.weights.display())))?;
        let model = BertModel::load(vb, &config)
            .map_err(|err| load_error(format!("{}: {err}", files.weights.display())))?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|index| format!("sextant-embed-{index}"))
            .build()
            .map_err(|err| load_error(format!("cannot start {threads} threads: {err}")))?;
        Ok(Self {
            name: name.to_owned(),
            dimension: config.hidden_size,
            max_batch: 32,
            inner: Arc::new(Inner {
                model,
                tokenizer,
                counter,
            }),
            pool: Arc::new(pool),
        })
    }

    /// Embeds at most `max_batch` texts per forward pass (default 32).
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch.max(1);
        self
    }

    /// Embeds `texts` on the calling thread (inside the embedder's pool); for async code use
    /// [`embed`](crate::embed).
    pub fn embed_blocking(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_counted(texts).map(|(vectors, _)| vectors)
    }

    fn embed_counted(&self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, u64), EmbedError> {
        if texts.is_empty() {
            return Ok((Vec::new(), 0));
        }
        self.pool
            .install(|| self.inner.forward(texts))
            .map_err(|err| EmbedError::Inference {
                model: self.name.clone(),
                message: err,
            })
    }
}

impl Inner {
    fn forward(&self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, u64), String> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|err| format!("cannot tokenize: {err}"))?;
        let rows = encodings.len();
        let columns = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(rows * columns);
        let mut mask = Vec::with_capacity(rows * columns);
        for encoding in &encodings {
            ids.extend_from_slice(encoding.get_ids());
            mask.extend_from_slice(encoding.get_attention_mask());
        }
        let tokens: u64 = mask.iter().map(|&m| u64::from(m)).sum();
        let tensor_error = |err: candle_core::Error| err.to_string();
        let device = &self.model.device;
        let input_ids = Tensor::from_vec(ids, (rows, columns), device).map_err(tensor_error)?;
        let attention = Tensor::from_vec(mask, (rows, columns), device).map_err(tensor_error)?;
        let token_types = input_ids.zeros_like().map_err(tensor_error)?;
        let hidden = self
            .model
            .forward(&input_ids, &token_types, Some(&attention))
            .map_err(tensor_error)?;
        let pooled = mean_pool(&hidden, &attention).map_err(tensor_error)?;
        let vectors = pooled.to_vec2::<f32>().map_err(tensor_error)?;
        Ok((vectors, tokens))
    }
}

/// Mean of the hidden states of the real tokens, L2-normalised.
fn mean_pool(hidden: &Tensor, attention: &Tensor) -> candle_core::Result<Tensor> {
    let mask = attention.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9, f32::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f32::MAX)?;
    mean.broadcast_div(&norms)
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn provider(&self) -> &str {
        // As the local chat model reports itself: a custom provider is namespaced (semconv).
        "sextant.local"
    }

    fn model(&self) -> &str {
        &self.name
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn max_batch(&self) -> usize {
        self.max_batch
    }

    fn count_tokens(&self, text: &str) -> usize {
        self.inner
            .counter
            .encode_fast(text, false)
            .map_or_else(|_| text.chars().count().div_ceil(4), |e| e.len())
    }

    async fn embed_batch(&self, texts: &[String]) -> Result<Embeddings, EmbedError> {
        let this = self.clone();
        let texts = texts.to_vec();
        let (vectors, tokens) = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            this.embed_counted(&refs)
        })
        .await
        .map_err(|err| EmbedError::Inference {
            model: self.name.clone(),
            message: format!("the embedding thread failed: {err}"),
        })??;
        Ok(Embeddings {
            vectors,
            input_tokens: Some(tokens),
        })
    }
}
