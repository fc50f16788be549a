//! The model: loading a GGUF, and the forward pass.
//!
//! One caller at a time feeds tokens at a position and reads the logits after the last one. The
//! key/value cache is a buffer per layer that grows with the sequence and is written in place (no
//! copy per token), and the tokens it holds are remembered ([`Llama::reusable_prefix`]). Matrix
//! products are [`kernels`](crate::kernels); everything else is plain loops.
//!
//! Supported: GGUF files of the `llama` architecture with interleaved rotary embeddings,
//! grouped-query attention and SwiGLU feed-forward layers.

use std::io::{Read, Seek};

use candle_core::Device;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use rayon::prelude::*;

use crate::kernels::{BLOCK, BlockQ8_1, Format, QMatrix, quantize_q8_1};

/// The shape of the network, from the GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Hyper {
    /// Transformer blocks.
    pub layers: usize,
    /// Width of the hidden state.
    pub embedding: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (fewer than `heads` with grouped-query attention).
    pub kv_heads: usize,
    /// Dimensions per head.
    pub head_dim: usize,
    /// Width of the feed-forward layers.
    pub feed_forward: usize,
    /// Tokens in the vocabulary (rows of the embedding table).
    pub vocabulary: usize,
    /// The context the model was trained for (`llama.context_length`).
    pub context_length: usize,
    rms_epsilon: f32,
    rope_base: f32,
}

impl Hyper {
    fn kv_dim(&self) -> usize {
        self.kv_heads * self.head_dim
    }
}

struct Layer {
    attention_norm: Vec<f32>,
    q: QMatrix,
    k: QMatrix,
    v: QMatrix,
    output: QMatrix,
    ffn_norm: Vec<f32>,
    gate: QMatrix,
    up: QMatrix,
    down: QMatrix,
    /// Keys and values of the cached positions, `kv_dim` floats per position.
    keys: Vec<f32>,
    values: Vec<f32>,
}

/// A loaded model and the state of the sequence it is running.
pub struct Llama {
    hyper: Hyper,
    embeddings: QMatrix,
    /// `None` when the output projection is the embedding table (tied weights).
    output: Option<QMatrix>,
    norm: Vec<f32>,
    layers: Vec<Layer>,
    /// The tokens whose keys and values the cache holds, in order.
    cached: Vec<u32>,
}

impl Llama {
    /// Reads the weights of a `llama` GGUF whose header `content` was read from `reader`. Errors
    /// name what is missing or unsupported.
    pub fn from_gguf<R: Read + Seek>(
        content: &gguf_file::Content,
        reader: &mut R,
    ) -> Result<Self, String> {
        let metadata = |key: &str| {
            content
                .metadata
                .get(key)
                .ok_or_else(|| format!("the GGUF metadata has no {key}"))
        };
        let architecture = metadata("general.architecture")?
            .to_string()
            .map_err(|err| err.to_string())?
            .clone();
        if architecture != "llama" {
            return Err(format!(
                "the embedded engine runs the llama architecture; this file is {architecture}"
            ));
        }
        let count = |key: &str| -> Result<usize, String> {
            let value = metadata(key)?;
            value
                .to_u32()
                .map(|value| value as usize)
                .or_else(|_| value.to_u64().map(|value| value as usize))
                .map_err(|err| format!("{key}: {err}"))
        };
        if content
            .metadata
            .get("llama.expert_count")
            .and_then(|value| value.to_u32().ok())
            .is_some_and(|experts| experts > 1)
        {
            return Err("mixture-of-experts models do not run on the embedded engine".into());
        }
        let embedding = count("llama.embedding_length")?;
        let heads = count("llama.attention.head_count")?;
        let kv_heads = count("llama.attention.head_count_kv").unwrap_or(heads);
        if heads == 0
            || kv_heads == 0
            || !heads.is_multiple_of(kv_heads)
            || !embedding.is_multiple_of(heads)
        {
            return Err(format!(
                "{heads} heads over {kv_heads} key/value heads and {embedding} dimensions do not divide"
            ));
        }
        let head_dim = embedding / heads;
        if let Ok(rope) = count("llama.rope.dimension_count")
            && rope != head_dim
        {
            return Err(format!(
                "rotary embeddings over {rope} of {head_dim} head dimensions are not supported"
            ));
        }
        let float = |key: &str, default: f32| {
            content
                .metadata
                .get(key)
                .and_then(|value| value.to_f32().ok())
                .unwrap_or(default)
        };
        let layer_count = count("llama.block_count")?;
        let mut tensors = Tensors { content, reader };
        let embeddings = tensors.matrix("token_embd.weight")?;
        let hyper = Hyper {
            layers: layer_count,
            embedding,
            heads,
            kv_heads,
            head_dim,
            feed_forward: count("llama.feed_forward_length")?,
            vocabulary: embeddings.rows(),
            context_length: count("llama.context_length").unwrap_or(4096),
            rms_epsilon: float("llama.attention.layer_norm_rms_epsilon", 1e-5),
            rope_base: float("llama.rope.freq_base", 10_000.0),
        };
        let output = if content.tensor_infos.contains_key("output.weight") {
            Some(tensors.matrix("output.weight")?)
        } else {
            None
        };
        let norm = tensors.vector("output_norm.weight", embedding)?;
        let mut layers = Vec::with_capacity(layer_count);
        for index in 0..layer_count {
            let name = |part: &str| format!("blk.{index}.{part}.weight");
            let layer = Layer {
                attention_norm: tensors.vector(&name("attn_norm"), embedding)?,
                q: tensors.matrix(&name("attn_q"))?,
                k: tensors.matrix(&name("attn_k"))?,
                v: tensors.matrix(&name("attn_v"))?,
                output: tensors.matrix(&name("attn_output"))?,
                ffn_norm: tensors.vector(&name("ffn_norm"), embedding)?,
                gate: tensors.matrix(&name("ffn_gate"))?,
                up: tensors.matrix(&name("ffn_up"))?,
                down: tensors.matrix(&name("ffn_down"))?,
                keys: Vec::new(),
                values: Vec::new(),
            };
            let kv_dim = hyper.kv_dim();
            let shapes = [
                ("attn_q", &layer.q, embedding, embedding),
                ("attn_k", &layer.k, kv_dim, embedding),
                ("attn_v", &layer.v, kv_dim, embedding),
                ("attn_output", &layer.output, embedding, embedding),
                ("ffn_gate", &layer.gate, hyper.feed_forward, embedding),
                ("ffn_up", &layer.up, hyper.feed_forward, embedding),
                ("ffn_down", &layer.down, embedding, hyper.feed_forward),
            ];
            for (part, matrix, rows, cols) in shapes {
                if (matrix.rows(), matrix.cols()) != (rows, cols) {
                    return Err(format!(
                        "{} is {}x{}, expected {rows}x{cols}",
                        name(part),
                        matrix.rows(),
                        matrix.cols()
                    ));
                }
            }
            layers.push(layer);
        }
        Ok(Self {
            hyper,
            embeddings,
            output,
            norm,
            layers,
            cached: Vec::new(),
        })
    }

    /// The network's shape.
    pub fn hyper(&self) -> &Hyper {
        &self.hyper
    }

    /// How many leading tokens of `prompt` the cache already holds, leaving at least the last token
    /// to feed (its logits are what the caller needs).
    pub fn reusable_prefix(&self, prompt: &[u32]) -> usize {
        self.cached
            .iter()
            .zip(prompt)
            .take_while(|(cached, token)| cached == token)
            .count()
            .min(prompt.len().saturating_sub(1))
    }

    /// Feeds `tokens` at position `pos` (the cache keeps positions before it and forgets the rest)
    /// and returns the logits after the last one.
    pub fn forward(&mut self, tokens: &[u32], pos: usize) -> Result<Vec<f32>, String> {
        let hyper = self.hyper.clone();
        let count = tokens.len();
        if count == 0 {
            return Err("no tokens to feed".into());
        }
        if pos > self.cached.len() {
            return Err(format!(
                "position {pos} is past the {} cached tokens",
                self.cached.len()
            ));
        }
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= hyper.vocabulary) {
            return Err(format!(
                "token {token} is outside the vocabulary of {}",
                hyper.vocabulary
            ));
        }
        let end = pos + count;
        self.cached.truncate(pos);
        self.cached.extend_from_slice(tokens);

        let (dim, kv_dim) = (hyper.embedding, hyper.kv_dim());
        let mut x = vec![0f32; count * dim];
        for (token, row) in tokens.iter().zip(x.chunks_exact_mut(dim)) {
            self.embeddings.row_into(*token as usize, row);
        }
        let rope = Rope::new(&hyper, pos, count);
        let mut normed = vec![0f32; count * dim];
        let mut quantized = vec![BlockQ8_1::default(); count * dim / BLOCK];
        let mut q = vec![0f32; count * dim];
        let mut k = vec![0f32; count * kv_dim];
        let mut v = vec![0f32; count * kv_dim];
        let mut attended = vec![0f32; count * dim];
        let mut projected = vec![0f32; count * dim];
        let mut gate = vec![0f32; count * hyper.feed_forward];
        let mut up = vec![0f32; count * hyper.feed_forward];
        let mut hidden_quantized = vec![BlockQ8_1::default(); count * hyper.feed_forward / BLOCK];

        for layer in &mut self.layers {
            // Attention.
            rms_norm(&x, &layer.attention_norm, hyper.rms_epsilon, &mut normed);
            quantize_q8_1(&normed, &mut quantized);
            layer.q.matmul(&quantized, count, &mut q);
            layer.k.matmul(&quantized, count, &mut k);
            layer.v.matmul(&quantized, count, &mut v);
            rope.apply(&mut q, hyper.heads);
            rope.apply(&mut k, hyper.kv_heads);
            layer.keys.resize(end * kv_dim, 0.0);
            layer.values.resize(end * kv_dim, 0.0);
            layer.keys[pos * kv_dim..end * kv_dim].copy_from_slice(&k);
            layer.values[pos * kv_dim..end * kv_dim].copy_from_slice(&v);
            attend(&hyper, &q, &layer.keys, &layer.values, pos, &mut attended);
            quantize_q8_1(&attended, &mut quantized);
            layer.output.matmul(&quantized, count, &mut projected);
            add(&mut x, &projected);

            // Feed-forward (SwiGLU).
            rms_norm(&x, &layer.ffn_norm, hyper.rms_epsilon, &mut normed);
            quantize_q8_1(&normed, &mut quantized);
            layer.gate.matmul(&quantized, count, &mut gate);
            layer.up.matmul(&quantized, count, &mut up);
            for (gate, up) in gate.iter_mut().zip(&up) {
                *gate = *gate / (1.0 + (-*gate).exp()) * up;
            }
            quantize_q8_1(&gate, &mut hidden_quantized);
            layer.down.matmul(&hidden_quantized, count, &mut projected);
            add(&mut x, &projected);
        }

        let last = &x[(count - 1) * dim..];
        let mut normed_last = vec![0f32; dim];
        rms_norm(last, &self.norm, hyper.rms_epsilon, &mut normed_last);
        let mut last_quantized = vec![BlockQ8_1::default(); dim / BLOCK];
        quantize_q8_1(&normed_last, &mut last_quantized);
        let output = self.output.as_ref().unwrap_or(&self.embeddings);
        let mut logits = vec![0f32; output.rows()];
        output.matmul(&last_quantized, 1, &mut logits);
        Ok(logits)
    }
}

/// Reads tensors out of the GGUF into the engine's formats.
struct Tensors<'a, R> {
    content: &'a gguf_file::Content,
    reader: &'a mut R,
}

impl<R: Read + Seek> Tensors<'_, R> {
    fn read(&mut self, name: &str) -> Result<QTensor, String> {
        self.content
            .tensor(self.reader, name, &Device::Cpu)
            .map_err(|err| format!("tensor {name}: {err}"))
    }

    /// A weight matrix: Q4_1 and Q8_0 blocks as they are, anything else converted to Q8_0.
    fn matrix(&mut self, name: &str) -> Result<QMatrix, String> {
        let tensor = self.read(name)?;
        let fail = |err: String| format!("tensor {name}: {err}");
        let (rows, cols) = tensor
            .shape()
            .dims2()
            .map_err(|err| fail(err.to_string()))?;
        let format = match tensor.dtype() {
            GgmlDType::Q4_1 => Some(Format::Q4_1),
            GgmlDType::Q8_0 => Some(Format::Q8_0),
            _ => None,
        };
        match format {
            Some(format) => {
                let bytes = tensor.data().map_err(|err| fail(err.to_string()))?;
                QMatrix::from_gguf_bytes(format, rows, cols, &bytes).map_err(fail)
            }
            None => {
                let values = tensor
                    .dequantize(&Device::Cpu)
                    .and_then(|values| values.flatten_all()?.to_vec1::<f32>())
                    .map_err(|err| fail(err.to_string()))?;
                QMatrix::quantize_q8_0(rows, cols, &values).map_err(fail)
            }
        }
    }

    /// A vector of `len` floats (a norm's weights).
    fn vector(&mut self, name: &str, len: usize) -> Result<Vec<f32>, String> {
        let values = self
            .read(name)?
            .dequantize(&Device::Cpu)
            .and_then(|values| values.flatten_all()?.to_vec1::<f32>())
            .map_err(|err| format!("tensor {name}: {err}"))?;
        if values.len() != len {
            return Err(format!(
                "tensor {name} has {} values, expected {len}",
                values.len()
            ));
        }
        Ok(values)
    }
}

/// `out = x / rms(x) * weight`, per token. The squares are summed in double precision, as ggml
/// does: the 4-bit model is sensitive to it (summed in floats, SmolLM2's first-token probabilities
/// move by up to 0.035).
fn rms_norm(x: &[f32], weight: &[f32], epsilon: f32, out: &mut [f32]) {
    let dim = weight.len();
    for (x, out) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let sum: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let scale = (1.0 / (sum / dim as f64 + f64::from(epsilon)).sqrt()) as f32;
        for ((out, x), w) in out.iter_mut().zip(x).zip(weight) {
            *out = x * scale * w;
        }
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (x, y) in x.iter_mut().zip(y) {
        *x += y;
    }
}

/// Rotary position embeddings for the tokens being fed, in the GGUF llama convention: each head's
/// dimensions rotate in adjacent pairs `(2i, 2i + 1)` by `position / base^(2i / head_dim)`.
struct Rope {
    head_dim: usize,
    /// `cos` and `sin` per token and pair.
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope {
    fn new(hyper: &Hyper, pos: usize, count: usize) -> Self {
        let pairs = hyper.head_dim / 2;
        let mut cos = Vec::with_capacity(count * pairs);
        let mut sin = Vec::with_capacity(count * pairs);
        for position in pos..pos + count {
            for pair in 0..pairs {
                let frequency = 1.0
                    / hyper
                        .rope_base
                        .powf((2 * pair) as f32 / hyper.head_dim as f32);
                let angle = position as f32 * frequency;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Self {
            head_dim: hyper.head_dim,
            cos,
            sin,
        }
    }

    /// Rotates `heads` heads per token of `x`.
    fn apply(&self, x: &mut [f32], heads: usize) {
        let pairs = self.head_dim / 2;
        for (token, x) in x.chunks_exact_mut(heads * self.head_dim).enumerate() {
            let cos = &self.cos[token * pairs..(token + 1) * pairs];
            let sin = &self.sin[token * pairs..(token + 1) * pairs];
            for head in x.chunks_exact_mut(self.head_dim) {
                for ((pair, cos), sin) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
                    let (a, b) = (pair[0], pair[1]);
                    pair[0] = a * cos - b * sin;
                    pair[1] = a * sin + b * cos;
                }
            }
        }
    }
}

/// Causal attention of the tokens fed at `pos` over every cached position up to their own, with
/// `heads / kv_heads` query heads sharing each key/value head. One task per token.
fn attend(hyper: &Hyper, q: &[f32], keys: &[f32], values: &[f32], pos: usize, out: &mut [f32]) {
    let (dim, kv_dim, head_dim) = (hyper.embedding, hyper.kv_dim(), hyper.head_dim);
    let group = hyper.heads / hyper.kv_heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    out.par_chunks_mut(dim)
        .zip(q.par_chunks(dim))
        .enumerate()
        .for_each(|(token, (out, q))| {
            let visible = pos + token + 1;
            let mut scores = vec![0f32; visible];
            for head in 0..hyper.heads {
                let kv_offset = (head / group) * head_dim;
                let q = &q[head * head_dim..(head + 1) * head_dim];
                for (position, score) in scores.iter_mut().enumerate() {
                    let key = &keys[position * kv_dim + kv_offset..][..head_dim];
                    *score = dot(q, key) * scale;
                }
                softmax(&mut scores);
                let out = &mut out[head * head_dim..(head + 1) * head_dim];
                out.fill(0.0);
                for (position, weight) in scores.iter().enumerate() {
                    let value = &values[position * kv_dim + kv_offset..][..head_dim];
                    for (out, value) in out.iter_mut().zip(value) {
                        *out += weight * value;
                    }
                }
            }
        });
}

/// A dot product in eight independent sums, which the compiler turns into vector code.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sums = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in a_chunks.zip(b_chunks) {
        for i in 0..8 {
            sums[i] += a[i] * b[i];
        }
    }
    sums.iter().sum::<f32>() + tail
}

fn softmax(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for score in scores.iter_mut() {
        *score = (*score - max).exp();
        total += *score;
    }
    for score in scores.iter_mut() {
        *score /= total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_rotates_adjacent_pairs_by_position() {
        let hyper = Hyper {
            layers: 1,
            embedding: 4,
            heads: 1,
            kv_heads: 1,
            head_dim: 4,
            feed_forward: 4,
            vocabulary: 1,
            context_length: 8,
            rms_epsilon: 1e-5,
            rope_base: 10_000.0,
        };
        // Position 3: pair 0 turns by 3 radians, pair 1 by 3 / 100.
        let rope = Rope::new(&hyper, 3, 1);
        let mut x = vec![1.0, 0.0, 0.0, 1.0];
        rope.apply(&mut x, 1);
        let expected = [3f32.cos(), 3f32.sin(), -(0.03f32.sin()), 0.03f32.cos()];
        for (got, want) in x.iter().zip(expected) {
            assert!((got - want).abs() < 1e-5, "{x:?} vs {expected:?}");
        }
    }

    #[test]
    fn softmax_and_dot_are_exact_on_small_inputs() {
        let mut scores = vec![0.0, f32::ln(3.0)];
        softmax(&mut scores);
        assert!((scores[0] - 0.25).abs() < 1e-6 && (scores[1] - 0.75).abs() < 1e-6);
        let a: Vec<f32> = (0..11).map(|i| i as f32).collect();
        assert_eq!(dot(&a, &a), (0..11).map(|i| (i * i) as f32).sum::<f32>());
    }
}
