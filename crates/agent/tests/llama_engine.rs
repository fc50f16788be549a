//! The embedded engine (`sextant-llama`) against candle's llama on the default GGUF (pulled on first
//! use, or `SEXTANT_TEST_GGUF`), with the same arithmetic: Q4_1 weights times activations rounded to
//! 8 bits per block. The two round the block sums differently (candle keeps them in half precision
//! after a half-precision product), so logits differ by quantization noise: the next-token
//! distributions must agree and rank the same candidates, over a prompt, greedy steps on the KV
//! cache, and a prompt fed again after its cached prefix.
//!
//! How close is close: summing the RMS norm's squares in floats instead of doubles moves the first
//! token's probability by 0.035 on this model, and candle and llama.cpp differ by up to 0.02;
//! a structural error (key/value heads grouped wrongly) moves it by 0.7.

use candle_core::Device;
use candle_core::quantized::gguf_file;
use candle_transformers::models::quantized_llama::ModelWeights;
use sextant_agent::model_files::{ModelCache, SMOLLM2_135M_INSTRUCT};
use sextant_agent::providers::local::{LocalTokenizer, default_gguf_path};
use sextant_llama::Llama;

async fn gguf() -> std::path::PathBuf {
    match std::env::var("SEXTANT_TEST_GGUF") {
        Ok(path) => path.into(),
        Err(_) => {
            let cache = ModelCache::from_env().expect("model cache");
            cache
                .ensure(&SMOLLM2_135M_INSTRUCT)
                .await
                .expect("pull the default model");
            default_gguf_path(&cache)
        }
    }
}

/// `<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n` as token ids (the tokenizer
/// keeps control tokens written in text as text, so they are looked up).
fn chatml(tokenizer: &LocalTokenizer, question: &str) -> Vec<u32> {
    let control = |name: &str| tokenizer.token_id(name).expect("a ChatML control token");
    let mut tokens = vec![control("<|im_start|>")];
    tokens.extend(tokenizer.encode(&format!("user\n{question}")).unwrap());
    tokens.push(control("<|im_end|>"));
    tokens.extend(tokenizer.encode("\n").unwrap());
    tokens.push(control("<|im_start|>"));
    tokens.extend(tokenizer.encode("assistant\n").unwrap());
    tokens
}

fn probabilities(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|logit| (logit - max).exp()).collect();
    let total: f32 = exp.iter().sum();
    exp.into_iter().map(|value| value / total).collect()
}

fn top(values: &[f32], count: usize) -> Vec<usize> {
    let mut ranked: Vec<usize> = (0..values.len()).collect();
    ranked.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    ranked.truncate(count);
    ranked
}

fn assert_close(ours: &[f32], reference: &[f32], what: &str) {
    let (ours, reference) = (probabilities(ours), probabilities(reference));
    let worst = ours
        .iter()
        .zip(&reference)
        .fold(0f32, |max, (a, b)| max.max((a - b).abs()));
    assert!(
        worst <= 0.06,
        "{what}: next-token probabilities differ by up to {worst}"
    );
    let (our_top, reference_top) = (top(&ours, 5), top(&reference, 5));
    let shared = our_top
        .iter()
        .filter(|token| reference_top.contains(token))
        .count();
    assert!(
        shared >= 4,
        "{what}: top tokens {our_top:?} vs {reference_top:?}"
    );
}

#[tokio::test]
async fn logits_match_candles_llama_on_the_default_model() {
    let path = gguf().await;
    let mut file = std::fs::File::open(&path).unwrap();
    let content = gguf_file::Content::read(&mut file).unwrap();
    let tokenizer = LocalTokenizer::from_gguf(&content).unwrap();
    let mut ours = Llama::from_gguf(&content, &mut file).unwrap();
    assert_eq!(ours.hyper().layers, 30);
    let mut reference = ModelWeights::from_gguf(content, &mut file, &Device::Cpu).unwrap();
    let mut reference_forward = |tokens: &[u32], pos: usize| -> Vec<f32> {
        let input = candle_core::Tensor::new(tokens, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let logits = reference.forward(&input, pos).unwrap();
        logits.squeeze(0).unwrap().to_vec1::<f32>().unwrap()
    };

    let prompt = chatml(&tokenizer, "What is the capital of France?");
    let mut logits = ours.forward(&prompt, 0).unwrap();
    assert_close(&logits, &reference_forward(&prompt, 0), "prompt");
    for (step, pos) in (prompt.len()..prompt.len() + 6).enumerate() {
        let token = top(&logits, 1)[0] as u32;
        logits = ours.forward(&[token], pos).unwrap();
        assert_close(
            &logits,
            &reference_forward(&[token], pos),
            &format!("step {step}"),
        );
    }
    // The same prompt again: only its last token is computed, over the cached prefix.
    let last = prompt.len() - 1;
    assert_eq!(ours.reusable_prefix(&prompt), last);
    let again = ours.forward(&prompt[last..], last).unwrap();
    assert_close(
        &again,
        &reference_forward(&prompt, 0),
        "prompt after its cached prefix",
    );
    // Feeding past the cached tokens is refused, not computed on a hole in the cache.
    let err = ours.forward(&prompt[..1], prompt.len() + 5).unwrap_err();
    assert!(err.contains("past the"), "{err}");
}

#[test]
fn a_file_that_is_not_llama_is_refused_with_its_architecture() {
    let mut buffer = std::io::Cursor::new(Vec::new());
    let architecture = gguf_file::Value::String("gemma3".into());
    gguf_file::write(&mut buffer, &[("general.architecture", &architecture)], &[]).unwrap();
    buffer.set_position(0);
    let content = gguf_file::Content::read(&mut buffer).unwrap();
    let err = Llama::from_gguf(&content, &mut buffer)
        .err()
        .expect("a gemma3 file is refused");
    assert!(err.contains("this file is gemma3"), "{err}");
}
