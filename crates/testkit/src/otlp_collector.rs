//! An OTLP/HTTP collector double: a real receiver (it decodes every `ExportTraceServiceRequest`
//! and counts the span ids it got) that can be switched into fault-injection modes — hang,
//! answer 503 with `Retry-After`, or die in the middle of reading a batch. Tests count span ids
//! end to end with it.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the collector double answers a trace export.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Takes every request (200).
    Accept,
    /// Fault injection: reads the request and never answers.
    Hang,
    /// Fault injection: `503 Service Unavailable` with `Retry-After: N`.
    Unavailable {
        /// The `Retry-After` value, in seconds.
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

/// An OTLP/HTTP receiver with fault-injection modes (see the module documentation), on its own
/// runtime on 127.0.0.1.
pub struct OtlpCollectorDouble {
    /// Where it listens.
    pub address: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Seen>>,
    _runtime: tokio::runtime::Runtime,
}

impl OtlpCollectorDouble {
    /// Listens on 127.0.0.1:`port` (0: any free port) and answers in `mode`.
    pub fn start(port: u16, mode: Mode) -> Self {
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

    /// Switches how it answers from the next request on.
    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Distinct span ids received in accepted requests.
    pub fn distinct_spans(&self) -> usize {
        self.seen.lock().unwrap().spans.len()
    }

    /// Span ids received more than once, counted once per extra copy.
    pub fn duplicates(&self) -> u32 {
        self.seen
            .lock()
            .unwrap()
            .spans
            .values()
            .map(|n| n - 1)
            .sum()
    }

    /// The span ids received, as 16 hex digits.
    pub fn span_ids(&self) -> HashSet<String> {
        self.seen
            .lock()
            .unwrap()
            .spans
            .keys()
            .map(|id| hex(id))
            .collect()
    }

    /// Requests that met `mode`.
    pub fn requests_in(&self, mode: Mode) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.requests.iter().filter(|m| **m == mode).count()
    }

    /// Waits until `expected` distinct spans arrived (or a minute passed).
    pub fn wait_for(&self, expected: usize) {
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
