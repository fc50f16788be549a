//! `sextant serve` killed with SIGKILL while its OTLP collector is down loses no span: the local
//! store has every span of the turns, `sextant telemetry status` shows them spooled, and the
//! restarted service sends each span id to the collector exactly once when it is back.
//!
//! The collector is `sextant_testkit`'s OTLP/HTTP collector double (a real receiver that counts
//! span ids); the model is the embedded local one.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use sextant_testkit::otlp_collector::{Mode, OtlpCollectorDouble};
use sextant_tracker::LocalTraceStore;
use support::service::Service;
use support::{json_of, sextant};

fn stored_span_ids(data: &Path) -> HashSet<String> {
    let store = LocalTraceStore::open(data.join("traces.db")).unwrap();
    store
        .list_traces(usize::MAX)
        .unwrap()
        .iter()
        .flat_map(|trace| store.spans(&trace.trace_id).unwrap())
        .map(|span| span.span_id)
        .collect()
}

fn spooled_spans(status: &Value) -> u64 {
    status
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|sink| sink["lanes"].as_array().unwrap())
        .map(|lane| lane["spans"].as_u64().unwrap())
        .sum()
}

#[test]
fn a_killed_service_loses_no_span_to_a_collector_that_was_down() {
    let data = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}/v1/traces");
    let envs = [
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.as_str()),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "authorization=Bearer s3cret",
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
    ];
    let service = Service::start(data.path(), &envs);
    let client = reqwest::blocking::Client::new();
    for turn in 0..3 {
        let answer: Value = client
            .post(format!("{}/v1/agents/tiny/invoke", service.url))
            .json(&serde_json::json!({"input": format!("Say hello {turn}")}))
            .send()
            .and_then(|r| r.error_for_status())
            .expect("the turn is answered")
            .json()
            .unwrap();
        assert!(answer["trace_id"].is_string(), "{answer}");
    }
    // Wait until every stored span is spooled too and an export has failed, then kill: no
    // shutdown, no flush.
    let deadline = Instant::now() + Duration::from_secs(30);
    let produced = loop {
        let stored = stored_span_ids(data.path());
        let status = json_of(sextant(
            data.path(),
            &envs,
            &["telemetry", "status", "--json"],
        ));
        // The sink spools before it tries the collector: wait for a failed attempt as well, or
        // the kill may come before there was a failure to record.
        if stored.len() >= 9
            && spooled_spans(&status) == stored.len() as u64
            && status[0]["last_error"].is_string()
        {
            break stored;
        }
        assert!(Instant::now() < deadline, "never spooled: {status}");
        std::thread::sleep(Duration::from_millis(200));
    };
    drop(service);

    let status = json_of(sextant(
        data.path(),
        &envs,
        &["telemetry", "status", "--json"],
    ));
    assert_eq!(spooled_spans(&status), produced.len() as u64, "{status}");
    let sink = &status[0];
    assert!(
        sink["sink"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{status}"
    );
    assert!(
        sink["last_error"].is_string(),
        "the failure is recorded: {status}"
    );
    assert!(
        sink["lanes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["live"] == false),
        "the killed process holds nothing: {status}"
    );
    assert!(!status.to_string().contains("s3cret"));

    let collector = OtlpCollectorDouble::start(port, Mode::Accept);
    let restarted = Service::start(data.path(), &envs);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !collector.span_ids().is_superset(&produced) {
        assert!(Instant::now() < deadline, "the spooled spans never arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (exit, stderr) = restarted.terminate();
    assert!(exit.success(), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    // The restarted service's own spans (if any) went the same way: every stored span arrived,
    // each once.
    assert_eq!(collector.span_ids(), stored_span_ids(data.path()));
    assert_eq!(collector.duplicates(), 0);
    let status = json_of(sextant(
        data.path(),
        &envs,
        &["telemetry", "status", "--json"],
    ));
    assert_eq!(spooled_spans(&status), 0, "{status}");
    assert!(
        status[0]["last_error"].is_null(),
        "the restarted process cleared the failure: {status}"
    );
}
