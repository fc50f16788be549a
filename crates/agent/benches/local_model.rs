//! Throughput of the embedded SmolLM2 model: prompt processing and generation, per thread count.
//!
//! `cargo bench -p sextant-agent --bench local_model`. The GGUF comes from `SEXTANT_TEST_GGUF`, else the
//! default model cache (pulled on first use). candle's quantized products use a process-wide worker
//! pool sized by `CANDLE_NUM_THREADS`: run the bench once per value to compare matmul thread counts;
//! the rayon pool of each model follows the benchmark's `threads` parameter.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
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

fn request(content: String, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user(content)],
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
        let prefill = request(
            format!(
                "{}\nSummarise.",
                "The quick brown fox jumps over the lazy dog. ".repeat(20)
            ),
            1,
        );
        let tokens = runtime
            .block_on(model.chat(&prefill))
            .expect("prefill")
            .usage
            .input_tokens;
        group.throughput(Throughput::Elements(tokens));
        group.bench_with_input(
            BenchmarkId::new("prompt_tokens", threads),
            &prefill,
            |b, prefill| b.iter(|| runtime.block_on(model.chat(prefill)).expect("prefill")),
        );
        // Generation: a short prompt, 64 tokens (greedy, so every sample generates the same text).
        let generate = request(
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
