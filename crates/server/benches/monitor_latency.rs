//! What a 100 % sampled monitor costs a response: the same invoke request against the service
//! without monitors and with an `is_concise` monitor judging every finished turn in the
//! background, interleaved in one run, in-process, on the scripted instant model (so the figure
//! is the service's own overhead, not inference). Prints p50 and p95 of each and their ratio;
//! criterion reports the means.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use sextant_runtime::{Runtime, SextantConfig};
use sextant_server::monitors::MonitorConfig;
use sextant_server::{ServeConfig, Server};
use sextant_testkit::scripted_model::{Reply, ScriptedModelServer};
use tower::ServiceExt;

fn invoke() -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri("/v1/agents/answers/invoke")
        .header("content-type", "application/json")
        .header("host", "127.0.0.1")
        .body(Body::from(r#"{"input": "What is 6 * 7?"}"#))
        .unwrap()
}

async fn time_one(router: &axum::Router) -> Duration {
    let started = Instant::now();
    let response = router.clone().oneshot(invoke()).await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let _ = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    started.elapsed()
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn bench_monitors(c: &mut Criterion) {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let agents = data.join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    let (runtime, model) = tokio.block_on(async {
        let model = ScriptedModelServer::always(Reply::text("It is 42.")).await;
        sextant_testkit::scripted_agent_file(&agents, "answers", &model.url, &[], "");
        let config = SextantConfig::load_with_vars(
            None,
            vec![("SEXTANT_DATA_DIR".to_owned(), data.display().to_string())],
        )
        .unwrap();
        (
            Arc::new(Runtime::builder(config).start().await.unwrap()),
            model,
        )
    });
    let settings = |monitors: Vec<MonitorConfig>| ServeConfig {
        agents_dir: Some(agents.clone()),
        default_agent: Some("answers".into()),
        max_concurrent_requests: 64,
        monitors,
        ..runtime.config().section("serve").unwrap()
    };
    let (plain, monitored) = tokio.block_on(async {
        let plain = Server::with_settings(runtime.clone(), settings(Vec::new())).unwrap();
        let monitored = Server::with_settings(
            runtime.clone(),
            settings(vec![MonitorConfig {
                scorer: "is_concise:20".into(),
                sample: 1.0,
                filter: String::new(),
                judge: None,
            }]),
        )
        .unwrap();
        (plain.router(), monitored.router())
    });

    // Interleaved, so both see the same machine.
    let (mut without, mut with) = (Vec::new(), Vec::new());
    tokio.block_on(async {
        for _ in 0..50 {
            time_one(&plain).await;
            time_one(&monitored).await;
        }
        for _ in 0..500 {
            without.push(time_one(&plain).await);
            with.push(time_one(&monitored).await);
        }
    });
    without.sort();
    with.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    eprintln!(
        "monitor_latency: p50 {:.2} ms without, {:.2} ms with a 100% monitor (x{:.2}); \
         p95 {:.2} ms without, {:.2} ms with (x{:.2}); 500 requests each, interleaved",
        ms(quantile(&without, 0.5)),
        ms(quantile(&with, 0.5)),
        ms(quantile(&with, 0.5)) / ms(quantile(&without, 0.5)),
        ms(quantile(&without, 0.95)),
        ms(quantile(&with, 0.95)),
        ms(quantile(&with, 0.95)) / ms(quantile(&without, 0.95)),
    );

    let mut group = c.benchmark_group("monitor_latency");
    group.bench_function("invoke_without_monitors", |b| {
        b.to_async(&tokio).iter(|| time_one(&plain))
    });
    group.bench_function("invoke_with_a_100pct_monitor", |b| {
        b.to_async(&tokio).iter(|| time_one(&monitored))
    });
    group.finish();
    drop(model);
}

criterion_group!(benches, bench_monitors);
criterion_main!(benches);
