//! A local HTTP/1.1 server for the tools' tests: real sockets on loopback, answers chosen per
//! request path. The fault-injecting replies (hanging, error statuses, malformed bodies) are what
//! make it a test double; it stands in for no real part a user meets.
// Each test binary that includes this module uses a different part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the server answers.
#[derive(Clone)]
pub enum Reply {
    /// A status, headers and a body.
    Full {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// Never answers (holds the connection open).
    Hang,
}

impl Reply {
    pub fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Reply::Full {
            status: 200,
            headers: vec![("Content-Type", content_type.to_owned())],
            body: body.into(),
        }
    }

    pub fn status(status: u16, body: &str) -> Self {
        Reply::Full {
            status,
            headers: vec![("Content-Type", "text/plain".to_owned())],
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn redirect(location: &str) -> Self {
        Reply::Full {
            status: 302,
            headers: vec![("Location", location.to_owned())],
            body: Vec::new(),
        }
    }
}

/// A server on 127.0.0.1 that counts the requests per path and keeps the last request's head.
pub struct LocalServer {
    pub addr: SocketAddr,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    last_request: Arc<Mutex<String>>,
}

impl LocalServer {
    pub async fn start(route: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let last_request = Arc::new(Mutex::new(String::new()));
        let route = Arc::new(route);
        let (hits_, last_) = (hits.clone(), last_request.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let (route, hits, last) = (route.clone(), hits_.clone(), last_.clone());
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
                    *last.lock().unwrap() = head;
                    match route(&path) {
                        Reply::Hang => {
                            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                        }
                        Reply::Full {
                            status,
                            headers,
                            body,
                        } => {
                            let mut response = format!(
                                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                                body.len()
                            );
                            for (name, value) in headers {
                                response.push_str(&format!("{name}: {value}\r\n"));
                            }
                            response.push_str("\r\n");
                            let _ = socket.write_all(response.as_bytes()).await;
                            let _ = socket.write_all(&body).await;
                            let _ = socket.shutdown().await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            hits,
            last_request,
        }
    }

    /// How many requests asked for `path` (with its query).
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Requests of any path.
    pub fn total_hits(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }

    /// The request line and headers of the last request.
    pub fn last_request(&self) -> String {
        self.last_request.lock().unwrap().clone()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}
