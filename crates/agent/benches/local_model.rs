//! Throughput of the embedded SmolLM2 model: prompt processing and generation, per thread count.
//!
//! `cargo bench -p sextant-agent --bench local_model`. The GGUF comes from `SEXTANT_TEST_GGUF`, else the
//! default model cache (pulled on first use). The engine caches the previous prompt's prefix: the
//! prompt benchmark starts every request with a different system message so nothing is reused, and
//! the generation benchmark repeats one request, so after the first it measures generation alone.
//! `local_vs_llamacpp` puts the same figures next to llama.cpp's.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sextant_agent::providers::local::{LocalChatModel, LocalModelOptions};
use sextant_agent::{ChatModel, ChatOptions, ChatRequest, Message};

fn load(runtime: &tokio::runtime::Runtime, threads: usize) -> LocalChatModel {
    let options = LocalModelOptions {
        threads: Some(threads),
        ..Default::default()
    };
    match std::env::var("SEXTANT_TEST_GGUF") {
        Ok(path) => LocalChatModel::load(path, options).expect("load SEXTANT_TEST_GGUF"),
        Err(_) => runtime
            .block_on(LocalChatModel::load_default(options))
            .expect("pull and load the default model"),
    }
}

fn request(system: String, content: String, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::system(system), Message::user(content)],
        options: ChatOptions {
            max_tokens: Some(max_tokens),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut group = c.benchmark_group("local_model");
    group.sample_size(10);
    for threads in [1, 2] {
        let model = load(&runtime, threads);
        // Prompt processing: a long prompt, one generated token.
        let long = format!(
            "{}\nSummarise.",
            "The quick brown fox jumps over the lazy dog. ".repeat(20)
        );
        let mut run = 0;
        let mut fresh = move || {
            run += 1;
            request(format!("Run {run}."), long.clone(), 1)
        };
        let tokens = runtime
            .block_on(model.chat(&fresh()))
            .expect("prefill")
            .usage
            .input_tokens;
        group.throughput(Throughput::Elements(tokens));
        group.bench_function(BenchmarkId::new("prompt_tokens", threads), |b| {
            b.iter_batched(
                &mut fresh,
                |prefill| runtime.block_on(model.chat(&prefill)).expect("prefill"),
                BatchSize::SmallInput,
            )
        });
        // Generation: a short prompt, 64 tokens (greedy, so every sample generates the same text).
        let generate = request(
            "You are a helpful assistant.".into(),
            "Write a long story about a dragon who learns to cook.".into(),
            64,
        );
        let generated = runtime
            .block_on(model.chat(&generate))
            .expect("generate")
            .usage
            .output_tokens;
        group.throughput(Throughput::Elements(generated));
        group.bench_with_input(
            BenchmarkId::new("generation_tokens", threads),
            &generate,
            |b, generate| b.iter(|| runtime.block_on(model.chat(generate)).expect("generate")),
        );
    }
    group.finish();
}

criterion_group!(benches, throughput);
criterion_main!(benches);
