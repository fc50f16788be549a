//! No span is lost to a collector that is down, hung, failing or dying: every test counts span
//! ids end to end (the ids the collector received = the ids the local store holds = the ids
//! produced), exactly once.
//!
//! The collector is `CollectorDouble`: a real OTLP/HTTP receiver (it decodes every
//! `ExportTraceServiceRequest`) that can be switched into fault-injection modes: hang, answer
//! 503 with `Retry-After`, or die in the middle of reading a batch. A refusing collector is a
//! port nobody listens on. `kill -9` is real: the test binary runs itself as a child process and
//! kills it. The MLflow test stops and restarts a real MLflow server (`cargo xtask test`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use sextant_tracker::conventions::{self, operation};
use sextant_tracker::{
    LocalTraceStore, OtlpConfig, OtlpProtocol, Telemetry, TelemetryConfig, TelemetryGuard,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the collector double answers a trace export.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Accept,
    /// Fault injection: reads the request and never answers.
    Hang,
    /// Fault injection: `503 Service Unavailable` with `Retry-After: N`.
    Unavailable {
        retry_after_secs: u64,
    },
    /// Fault injection: reads part of the body, then closes the connection.
    DieMidBatch,
}

#[derive(Default)]
struct Seen {
    /// Span id → how many times it arrived in an accepted request.
    spans: HashMap<Vec<u8>, u32>,
    /// Requests per mode they met.
    requests: Vec<Mode>,
}

/// An OTLP/HTTP receiver with fault-injection modes (see the module documentation).
struct CollectorDouble {
    address: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Seen>>,
    _runtime: tokio::runtime::Runtime,
}

impl CollectorDouble {
    fn start(port: u16, mode: Mode) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        let address = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(mode));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (shared_mode, shared_seen) = (mode.clone(), seen.clone());
        runtime.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared_mode.clone(), shared_seen.clone()));
            }
        });
        Self {
            address,
            mode,
            seen,
            _runtime: runtime,
        }
    }

    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn distinct_spans(&self) -> usize {
        self.seen.lock().unwrap().spans.len()
    }

    fn duplicates(&self) -> u32 {
        self.seen
            .lock()
            .unwrap()
            .spans
            .values()
            .map(|n| n - 1)
            .sum()
    }

    fn span_ids(&self) -> HashSet<String> {
        self.seen
            .lock()
            .unwrap()
            .spans
            .keys()
            .map(|id| hex(id))
            .collect()
    }

    fn requests_in(&self, mode: Mode) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.requests.iter().filter(|m| **m == mode).count()
    }

    /// Waits until `expected` distinct spans arrived (or a minute passed).
    fn wait_for(&self, expected: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.distinct_spans() < expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Serves HTTP/1.1 requests on one connection (keep-alive) in the current mode.
async fn serve(mut stream: TcpStream, mode: Arc<Mutex<Mode>>, seen: Arc<Mutex<Seen>>) {
    let mut buffer = Vec::new();
    loop {
        let header_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..header_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        let current = *mode.lock().unwrap();
        seen.lock().unwrap().requests.push(current);
        if current == Mode::DieMidBatch {
            // Read a little of the body, then drop the connection mid-request.
            let mut chunk = [0u8; 64];
            let _ = stream.read(&mut chunk).await;
            return;
        }
        while buffer.len() < header_end + length {
            let mut chunk = [0u8; 65536];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buffer
            .drain(..header_end + length)
            .skip(header_end)
            .collect();
        let response = match current {
            Mode::Accept => {
                if head.starts_with("post /v1/traces") {
                    let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
                    let mut seen = seen.lock().unwrap();
                    for span in request
                        .resource_spans
                        .iter()
                        .flat_map(|r| &r.scope_spans)
                        .flat_map(|s| &s.spans)
                    {
                        *seen.spans.entry(span.span_id.clone()).or_default() += 1;
                    }
                }
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
                    .to_string()
            }
            Mode::Hang => std::future::pending().await,
            Mode::Unavailable { retry_after_secs } => format!(
                "HTTP/1.1 503 Service Unavailable\r\nretry-after: {retry_after_secs}\r\n\
                 content-length: 0\r\n\r\n"
            ),
            Mode::DieMidBatch => unreachable!("returned above"),
        };
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A port nobody listens on (yet).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(data: &Path, port: u16) -> TelemetryConfig {
    TelemetryConfig {
        service_name: "spool-test".into(),
        local_store: Some(data.join("traces.db")),
        spool_dir: Some(data.join("spool")),
        otlp: Some(OtlpConfig {
            endpoint: format!("http://127.0.0.1:{port}"),
            traces_endpoint: Some(format!("http://127.0.0.1:{port}/v1/traces")),
            protocol: OtlpProtocol::HttpProtobuf,
            headers: [("authorization".to_string(), "Bearer s3cret".to_string())].into(),
            timeout: Duration::from_millis(500),
            ..OtlpConfig::default()
        }),
        batch_size: 64,
        schedule_delay: Duration::from_millis(50),
        shutdown_timeout: Duration::from_secs(3),
        ..TelemetryConfig::default()
    }
}

/// `turns` agent turns of two spans each.
fn emit_turns(telemetry: &TelemetryGuard, turns: usize) {
    let _default = telemetry.set_thread_default();
    for _ in 0..turns {
        let agent = tracing::info_span!(
            "invoke_agent",
            otel.name = "invoke_agent assistant",
            { conventions::GEN_AI_OPERATION_NAME } = operation::INVOKE_AGENT,
        );
        let _agent = agent.enter();
        tracing::info_span!(
            "chat",
            otel.name = "chat m",
            { conventions::GEN_AI_OPERATION_NAME } = operation::CHAT,
        )
        .in_scope(|| {});
    }
}

/// Every span id in the local trace store.
fn stored_span_ids(path: &Path) -> HashSet<String> {
    let store = LocalTraceStore::open(path).unwrap();
    store
        .list_traces(usize::MAX)
        .unwrap()
        .iter()
        .flat_map(|trace| store.spans(&trace.trace_id).unwrap())
        .map(|span| span.span_id)
        .collect()
}

/// Waits until the OTLP sink spooled `spans` (everything handed to it is on disk).
fn wait_until_spooled(telemetry: &TelemetryGuard, spans: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let otlp = || {
        telemetry
            .sink_reports()
            .into_iter()
            .find(|s| s.sink.starts_with("OTLP"))
            .unwrap()
    };
    while otlp().spooled < spans && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(otlp().spooled, spans, "{:?}", otlp());
}

/// The outage scenario: `turns` turns while the collector misbehaves, then it accepts; every id
/// arrives exactly once and the local store has them all.
fn outage(port: u16, collector: impl FnOnce() -> Option<CollectorDouble>, turns: usize) {
    let data = tempfile::tempdir().unwrap();
    let telemetry = Telemetry::builder(&config(data.path(), port))
        .build()
        .unwrap();
    let mut collector = collector();
    let started = Instant::now();
    emit_turns(&telemetry, turns);
    // Not a performance target: waiting on the collector would cost its 500 ms timeout per
    // batch; 10 s tells "never waits" from "waits" on a loaded machine.
    assert!(started.elapsed() < Duration::from_secs(10));
    let spans = 2 * turns;
    wait_until_spooled(&telemetry, spans as u64);
    telemetry.force_flush().unwrap();
    let stored = stored_span_ids(&data.path().join("traces.db"));
    assert_eq!(stored.len(), spans, "the local store never waits for OTLP");
    std::thread::sleep(Duration::from_millis(700));
    let failing = telemetry
        .sink_reports()
        .into_iter()
        .find(|s| s.sink.starts_with("OTLP"))
        .unwrap();
    assert!(failing.failing, "{failing:?}");
    assert!(failing.export_errors >= 1, "{failing:?}");
    assert!(
        failing
            .last_error
            .as_deref()
            .is_some_and(|e| !e.contains("s3cret")),
        "{failing:?}"
    );

    match &collector {
        Some(collector) => collector.set_mode(Mode::Accept),
        None => collector = Some(CollectorDouble::start(port, Mode::Accept)),
    }
    let collector = collector.unwrap();
    collector.wait_for(spans);
    assert_eq!(collector.span_ids(), stored, "ids received = ids produced");
    assert_eq!(collector.duplicates(), 0);
    let report = telemetry.shutdown().unwrap();
    let otlp = report
        .sinks
        .iter()
        .find(|s| s.sink.starts_with("OTLP"))
        .unwrap();
    assert_eq!(otlp.exported, spans as u64, "{otlp:?}");
    assert_eq!(otlp.dropped(), 0, "{otlp:?}");
    assert!(otlp.resent > 0, "spans waited out the outage: {otlp:?}");
    assert_eq!((report.spooled, report.dropped), (0, 0), "{report:?}");
    assert_eq!(collector.duplicates(), 0);
}

#[test]
fn a_refusing_collector_gets_every_span_once_when_it_comes_up() {
    outage(closed_port(), || None, 300);
}

#[test]
fn a_hung_collector_gets_every_span_once_when_it_answers() {
    let collector = CollectorDouble::start(0, Mode::Hang);
    let port = collector.address.port();
    outage(port, move || Some(collector), 300);
}

#[test]
fn a_collector_dying_mid_batch_gets_every_span_once_when_it_recovers() {
    let collector = CollectorDouble::start(0, Mode::DieMidBatch);
    let port = collector.address.port();
    outage(port, move || Some(collector), 300);
}

#[test]
fn retry_after_is_honoured_and_nothing_is_lost() {
    let collector = CollectorDouble::start(
        0,
        Mode::Unavailable {
            retry_after_secs: 2,
        },
    );
    let port = collector.address.port();
    let data = tempfile::tempdir().unwrap();
    let telemetry = Telemetry::builder(&config(data.path(), port))
        .build()
        .unwrap();
    emit_turns(&telemetry, 50);
    std::thread::sleep(Duration::from_secs(3));
    let unavailable = collector.requests_in(Mode::Unavailable {
        retry_after_secs: 2,
    });
    // Without Retry-After the backoff (0.5 s, doubling) would have tried 3–4 times in 3 s.
    assert!(
        (1..=2).contains(&unavailable),
        "{unavailable} attempts in 3 s against Retry-After: 2"
    );
    collector.set_mode(Mode::Accept);
    collector.wait_for(100);
    assert_eq!(
        collector.span_ids(),
        stored_span_ids(&data.path().join("traces.db"))
    );
    assert_eq!(collector.duplicates(), 0);
    telemetry.shutdown().unwrap();
}

#[test]
fn spans_spooled_at_shutdown_are_sent_by_the_next_process() {
    let port = closed_port();
    let data = tempfile::tempdir().unwrap();
    let first = Telemetry::builder(&config(data.path(), port))
        .build()
        .unwrap();
    emit_turns(&first, 100);
    let report = first.shutdown().unwrap();
    assert_eq!(report.spooled, 200, "{report:?}");
    assert_eq!(report.dropped, 0, "{report:?}");
    let status = sextant_tracker::export::spool_status(&data.path().join("spool")).unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].spans(), 200);
    assert!(status[0].last_error.is_some(), "{status:?}");
    assert!(!status[0].sink.contains("s3cret"));

    let collector = CollectorDouble::start(port, Mode::Accept);
    let second = Telemetry::builder(&config(data.path(), port))
        .build()
        .unwrap();
    collector.wait_for(200);
    let report = second.shutdown().unwrap();
    assert_eq!(
        collector.span_ids(),
        stored_span_ids(&data.path().join("traces.db"))
    );
    assert_eq!(collector.duplicates(), 0);
    let otlp = report
        .sinks
        .iter()
        .find(|s| s.sink.starts_with("OTLP"))
        .unwrap();
    assert_eq!((otlp.resent, otlp.exported), (200, 200), "{otlp:?}");
    assert_eq!(otlp.possible_duplicates, 0);
    let status = sextant_tracker::export::spool_status(&data.path().join("spool")).unwrap();
    assert_eq!(status[0].spans(), 0, "{status:?}");
}

/// The child side of the `kill -9` test, in the same test function: spools spans for a dead
/// collector, says so, and waits to be killed.
fn spool_and_wait_to_be_killed(dir: &str, port: &str) {
    let telemetry = Telemetry::builder(&config(Path::new(dir), port.parse().unwrap()))
        .build()
        .unwrap();
    emit_turns(&telemetry, 150);
    wait_until_spooled(&telemetry, 300);
    telemetry.force_flush().unwrap();
    println!("SPOOLED");
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn spans_spooled_by_a_killed_process_reach_the_collector_exactly_once() {
    if let (Ok(dir), Ok(port)) = (
        std::env::var("SEXTANT_SPOOL_CHILD_DIR"),
        std::env::var("SEXTANT_SPOOL_CHILD_PORT"),
    ) {
        return spool_and_wait_to_be_killed(&dir, &port);
    }
    let port = closed_port();
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "spans_spooled_by_a_killed_process_reach_the_collector_exactly_once",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SEXTANT_SPOOL_CHILD_DIR", data.path())
        .env("SEXTANT_SPOOL_CHILD_PORT", port.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let spooled = stdout
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("SPOOLED"));
    assert!(spooled, "the child never spooled");
    // SIGKILL: no destructor, no flush.
    child.kill().unwrap();
    child.wait().unwrap();

    let produced = stored_span_ids(&data.path().join("traces.db"));
    assert_eq!(produced.len(), 300);
    let collector = CollectorDouble::start(port, Mode::Accept);
    let next = Telemetry::builder(&config(data.path(), port))
        .build()
        .unwrap();
    collector.wait_for(300);
    let report = next.shutdown().unwrap();
    assert_eq!(collector.span_ids(), produced);
    let otlp = report
        .sinks
        .iter()
        .find(|s| s.sink.starts_with("OTLP"))
        .unwrap();
    // The collector was down for the child's whole life: nothing it sent could have arrived.
    assert_eq!(collector.duplicates(), 0);
    assert_eq!(otlp.resent, 300, "{otlp:?}");
}

/// Where the xtask venv's `mlflow` command is (beside `SEXTANT_TEST_PYTHON`).
fn mlflow_command() -> PathBuf {
    let python = PathBuf::from(sextant_testkit::server_env(
        "SEXTANT_TEST_PYTHON",
        "the MLflow virtual environment",
    ));
    python.with_file_name("mlflow")
}

/// A real MLflow server this test can stop and start again on the same port and database.
struct OwnMlflow {
    port: u16,
    dir: tempfile::TempDir,
    process: Option<std::process::Child>,
}

impl OwnMlflow {
    fn start(port: u16, dir: tempfile::TempDir) -> Self {
        let process = std::process::Command::new(mlflow_command())
            .args(["server", "--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--workers", "1", "--backend-store-uri"])
            .arg(format!(
                "sqlite:///{}",
                dir.path().join("mlflow.db").display()
            ))
            .arg("--artifacts-destination")
            .arg(dir.path().join("artifacts"))
            .current_dir(dir.path())
            .env("MLFLOW_DISABLE_TELEMETRY", "true")
            .env("DO_NOT_TRACK", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("mlflow starts");
        let server = Self {
            port,
            dir,
            process: Some(process),
        };
        let client = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while client
            .get(format!("{}/health", server.url()))
            .send()
            .is_err()
        {
            assert!(Instant::now() < deadline, "MLflow did not come up");
            std::thread::sleep(Duration::from_millis(250));
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server, keeping its database for the restart.
    fn stop(mut self) -> (u16, tempfile::TempDir) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
        (
            self.port,
            std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()),
        )
    }
}

impl Drop for OwnMlflow {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

/// Every span id MLflow holds for the traces of `experiment`.
fn mlflow_span_ids(url: &str, experiment: &str) -> HashSet<String> {
    let script = r#"
import json, sys
import mlflow
mlflow.set_tracking_uri(sys.argv[1])
traces = mlflow.search_traces(locations=[sys.argv[2]], return_type="list", max_results=100000)
print(json.dumps([span.span_id for trace in traces for span in trace.data.spans]))
"#;
    let ids = sextant_testkit::python(url, script, &[url, experiment]);
    ids.as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().trim_start_matches("0x").to_owned())
        .collect()
}

#[test]
#[ignore = "needs the MLflow installation `cargo xtask test` provides"]
fn mlflow_stopped_and_restarted_during_a_run_gets_every_span_once() {
    let port = closed_port();
    let mlflow = OwnMlflow::start(port, tempfile::tempdir().unwrap());
    let client = reqwest::blocking::Client::new();
    let experiment: serde_json::Value = client
        .post(format!(
            "{}/api/2.0/mlflow/experiments/create",
            mlflow.url()
        ))
        .json(&serde_json::json!({"name": "spool"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let experiment = experiment["experiment_id"].as_str().unwrap().to_owned();
    let data = tempfile::tempdir().unwrap();
    let mut telemetry_config = config(data.path(), port);
    let otlp = telemetry_config.otlp.as_mut().unwrap();
    otlp.headers = BTreeMap::new();
    otlp.traces_headers = [("x-mlflow-experiment-id".to_string(), experiment.clone())].into();
    otlp.timeout = Duration::from_secs(5);
    let telemetry = Telemetry::builder(&telemetry_config).build().unwrap();

    emit_turns(&telemetry, 20);
    telemetry.force_flush().unwrap();
    let (port, dir) = mlflow.stop();
    emit_turns(&telemetry, 20);
    telemetry.force_flush().unwrap();
    let mlflow = OwnMlflow::start(port, dir);
    emit_turns(&telemetry, 20);
    telemetry.force_flush().unwrap();

    let produced = stored_span_ids(&data.path().join("traces.db"));
    assert_eq!(produced.len(), 120);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut received = HashSet::new();
    while Instant::now() < deadline {
        telemetry.force_flush().unwrap();
        received = mlflow_span_ids(&mlflow.url(), &experiment);
        if received.len() >= produced.len() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(received, produced, "ids MLflow holds = ids produced");
    let report = telemetry.shutdown().unwrap();
    let otlp = report
        .sinks
        .iter()
        .find(|s| s.sink.starts_with("OTLP"))
        .unwrap();
    assert_eq!(otlp.exported, 120, "{otlp:?}");
    assert_eq!(otlp.dropped(), 0, "{otlp:?}");
}
