//! `sextant serve` as a process, end to end: the binary binds, serves with a bearer token, and on
//! SIGTERM finishes the turn in flight, loses none of its spans, ends its tracking run and never
//! logs the token. Everything else about the service is tested in-process in `crates/server`.

use std::time::Duration;

use serde_json::{Value, json};

mod support;
use support::service::Service;
use support::{json_of, sextant};

fn span<'a>(spans: &'a [Value], prefix: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` span in {spans:#?}"))
}

#[test]
fn sigterm_finishes_the_turn_in_flight_loses_none_of_its_spans_and_never_logs_the_token() {
    let token = "s3cr3t-key-for-the-tests";
    let data = tempfile::tempdir().unwrap();
    // The keys file names the variable that holds the key.
    let keys = data.path().join("keys.toml");
    std::fs::write(
        &keys,
        "[[keys]]\nuser = \"tester\"\nkey_env = \"SERVE_TEST_TOKEN\"\n",
    )
    .unwrap();
    let keys = keys.display().to_string();
    let service = Service::start(
        data.path(),
        &[
            ("SEXTANT_SERVE__METRICS_LOG_INTERVAL_SECS", "0.5"),
            ("SEXTANT_SERVE__AUTH__KEYS_FILE", keys.as_str()),
            ("SERVE_TEST_TOKEN", token),
            ("RUST_LOG", "debug"),
        ],
    );
    let url = format!("{}/v1/agents/slow/invoke", service.url);
    let in_flight = std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(300))
            .build()
            .unwrap()
            .post(url)
            .bearer_auth(token)
            .json(&json!({"input": "Tell me a long story about the sea."}))
            .send()
            .unwrap()
    });
    // The turn is generating (400 tokens take seconds on one thread) when SIGTERM arrives.
    std::thread::sleep(Duration::from_millis(1500));
    let (status, stderr) = service.terminate();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    // The token went through debug logging without appearing in it.
    assert!(
        !stderr.contains(token),
        "the token leaked into the log:\n{stderr}"
    );
    let response = in_flight.join().unwrap();
    assert_eq!(response.status(), 200, "the turn in flight was answered");
    let body: Value = response.json().unwrap();
    let trace_id = body["trace_id"].as_str().unwrap();
    assert!(body["usage"]["output_tokens"].as_u64().unwrap() > 16);

    // Every span of that turn reached the trace store before the process exited.
    let spans = json_of(sextant(
        data.path(),
        &[],
        &["traces", "show", trace_id, "--json"],
    ));
    let spans = spans.as_array().unwrap();
    for name in [
        "POST /v1/agents/{name}/invoke",
        "invoke_agent slow",
        "chat ",
    ] {
        let found = span(spans, name);
        assert_ne!(found["status"]["code"], "error", "{found}");
    }

    // The service's life is a finished tracking run with its counters.
    let runs = json_of(sextant(data.path(), &[], &["runs", "list", "--json"]));
    let run = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["info"]["run_name"]
                .as_str()
                .is_some_and(|n| n.starts_with("sextant serve"))
        })
        .unwrap_or_else(|| panic!("no service run in {runs}"));
    assert_eq!(run["info"]["status"], "FINISHED");
    assert!(
        run["metrics"]["turns"]["value"].as_f64().unwrap() >= 1.0,
        "{run}"
    );
    assert_eq!(
        run["metrics"]["failed_turns"]["value"].as_f64(),
        Some(0.0),
        "{run}"
    );
}
