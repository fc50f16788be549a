//! The embedded engine against llama.cpp on the same GGUF, one thread each, in one run: prompt
//! processing and generation in tokens per second, and their ratio (issue #19 asks for ≥ 80 %).
//!
//! `cargo xtask bench` starts the llama.cpp server of the test venv and sets `SEXTANT_LLAMACPP_URL`
//! and `SEXTANT_TEST_GGUF`; without them this bench says it skipped. llama.cpp's rates are its own
//! timings (engine only); the embedded engine's are wall-clock times of `chat` requests, which also
//! count tokenization, sampling and detokenization. Prompts are ChatML with a system message that
//! differs per run, so neither engine reuses a cached prefix for the prompt measurement;
//! generation is measured after the prompt is cached on both sides (llama.cpp reports it apart).

use std::time::Instant;

use serde_json::{Value, json};
use sextant_agent::providers::local::{LocalChatModel, LocalModelOptions};
use sextant_agent::{ChatModel, ChatOptions, ChatRequest, Message};

const RUNS: usize = 5;
const GENERATED: u32 = 64;

fn main() {
    // `cargo bench NAME` passes the filter on: run only when it selects this bench.
    let filter = std::env::args().skip(1).find(|arg| !arg.starts_with('-'));
    if filter.is_some_and(|filter| !"local_vs_llamacpp".contains(filter.as_str())) {
        return;
    }
    let (Ok(url), Ok(gguf)) = (
        std::env::var("SEXTANT_LLAMACPP_URL"),
        std::env::var("SEXTANT_TEST_GGUF"),
    ) else {
        println!(
            "local_vs_llamacpp: skipped (SEXTANT_LLAMACPP_URL and SEXTANT_TEST_GGUF are not set; \
             `cargo xtask bench` starts llama.cpp and sets them)"
        );
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let model = LocalChatModel::load(
        &gguf,
        LocalModelOptions {
            threads: Some(1),
            ..Default::default()
        },
    )
    .expect("load SEXTANT_TEST_GGUF");
    let client = reqwest::Client::new();
    let long = format!(
        "{}\nSummarise.",
        "The quick brown fox jumps over the lazy dog. ".repeat(20)
    );
    let story = "Write a long story about a dragon who learns to cook.";

    let mut rates: [Vec<f64>; 4] = Default::default();
    for run in 0..RUNS {
        let system = format!("Run {run}. You are a helpful assistant.");
        // Prompt processing: one token generated after the whole prompt.
        let started = Instant::now();
        let response = runtime
            .block_on(model.chat(&request(&system, &long, 1)))
            .expect("embedded prompt");
        rates[0].push(response.usage.input_tokens as f64 / started.elapsed().as_secs_f64());
        let timings = runtime.block_on(completion(&client, &url, &system, &long, 1));
        rates[1].push(
            timings["prompt_per_second"]
                .as_f64()
                .expect("prompt_per_second"),
        );

        // Generation: the prompt is cached by the first request, the second one only generates.
        let system = format!("Story {run}. You are a helpful assistant.");
        runtime
            .block_on(model.chat(&request(&system, story, 1)))
            .expect("embedded prompt");
        let started = Instant::now();
        let response = runtime
            .block_on(model.chat(&request(&system, story, GENERATED)))
            .expect("embedded generation");
        rates[2].push(response.usage.output_tokens as f64 / started.elapsed().as_secs_f64());
        let timings = runtime.block_on(completion(&client, &url, &system, story, GENERATED));
        rates[3].push(
            timings["predicted_per_second"]
                .as_f64()
                .expect("predicted_per_second"),
        );
    }
    let [ours_prompt, theirs_prompt, ours_gen, theirs_gen] = rates.map(median);
    println!("local_vs_llamacpp: {gguf}, 1 thread, greedy, median of {RUNS} runs");
    println!("                      embedded   llama.cpp   ratio");
    for (what, ours, theirs) in [
        ("prompt tokens/s", ours_prompt, theirs_prompt),
        ("generation tokens/s", ours_gen, theirs_gen),
    ] {
        println!(
            "  {what:<20} {ours:>9.1} {theirs:>11.1} {:>7.0}%",
            100.0 * ours / theirs
        );
    }
}

fn request(system: &str, user: &str, max_tokens: u32) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::system(system), Message::user(user)],
        options: ChatOptions {
            max_tokens: Some(max_tokens),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// llama.cpp's `/completion` on the same ChatML text, greedy; returns its `timings`.
async fn completion(
    client: &reqwest::Client,
    url: &str,
    system: &str,
    user: &str,
    n_predict: u32,
) -> Value {
    let prompt = format!(
        "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    );
    let body: Value = client
        .post(format!("{url}/completion"))
        .json(&json!({
            "prompt": prompt,
            "n_predict": n_predict,
            "temperature": 0,
            "ignore_eos": true,
            "cache_prompt": false,
        }))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .expect("llama.cpp /completion")
        .json()
        .await
        .expect("llama.cpp JSON");
    body["timings"].clone()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
