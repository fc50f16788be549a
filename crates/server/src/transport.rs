//! The service on the wire: an accept loop with a connection cap and hyper's header-read timeout
//! (which also closes idle kept-alive connections), graceful shutdown, and a deadline for reading a
//! request's body, so a slow client (slowloris) cannot hold connections or descriptors forever.
//!
//! `axum::serve` has no timer and no cap, hence this loop, modelled on it with hyper's HTTP/1
//! connection builder.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::error::ApiError;
use crate::server::ServiceState;

/// How the listener treats connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Headers must arrive within this, and an idle kept-alive connection closes after it.
    pub header_read_timeout: Duration,
    /// Connections served at once; the next waits in the listen backlog.
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections finish
/// their requests and waits for them.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // Every connection task holds a receiver; when all are dropped, the connections are done.
    let (open, all_closed) = watch::channel(());
    let mut stopping = stopped.clone();
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = signalled(&mut stopping) => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!("accepting a connection failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = signalled(&mut stopping) => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let mut stopped = stopped.clone();
        let closed = all_closed.clone();
        tokio::spawn(async move {
            // HTTP/1 only: hyper-util's auto builder would first wait, without a timer, for
            // bytes that tell HTTP/1 from HTTP/2, so a silent client would never be cut off.
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let mut draining = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(error) = result {
                            tracing::debug!("a connection ended with an error: {error}");
                        }
                        break;
                    }
                    () = signalled(&mut stopped), if !draining => {
                        draining = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(permit);
            drop(closed);
        });
    }
    drop(listener);
    drop(all_closed);
    open.closed().await;
    Ok(())
}

/// Resolves once `stop` says true (or its sender is gone).
async fn signalled(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Reads a request's whole body within `[serve] body_read_timeout_secs` (408 otherwise) and at
/// most `max_body_bytes` of it (413), before the handler sees it.
pub(crate) async fn read_body_within(
    State(state): State<Arc<ServiceState>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let limit = state.settings.max_body_bytes;
    let read = tokio::time::timeout(state.body_read_timeout, axum::body::to_bytes(body, limit));
    let bytes = match read.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(error)) => {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            return if too_large {
                ApiError::body_too_large(limit).into_response()
            } else {
                ApiError::invalid(None, "the request body could not be read").into_response()
            };
        }
        Err(_) => return ApiError::body_timeout(state.body_read_timeout).into_response(),
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

impl ApiError {
    /// 408: the body did not arrive in time.
    pub(crate) fn body_timeout(limit: Duration) -> Self {
        Self {
            status: StatusCode::REQUEST_TIMEOUT,
            kind: "invalid_request_error",
            code: "body_timeout",
            param: None,
            message: format!(
                "the request body did not arrive within {} s ([serve] body_read_timeout_secs)",
                limit.as_secs_f64()
            ),
        }
    }

    /// 413: the body is larger than `[serve] max_body_bytes`.
    pub(crate) fn body_too_large(limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            kind: "invalid_request_error",
            code: "request_too_large",
            param: None,
            message: format!(
                "the request body is larger than {limit} bytes ([serve] max_body_bytes)"
            ),
        }
    }

    /// 403: the `Host` of a request to an unauthenticated service is not an allowed one.
    pub(crate) fn host_not_allowed() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            kind: "permission_error",
            code: "host_not_allowed",
            param: None,
            message: "this service has no API keys, so it answers only requests addressed to an \
                      allowed host ([serve] allowed_hosts)"
                .into(),
        }
    }

    /// 403: the key may not do this.
    pub(crate) fn not_permitted(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            kind: "permission_error",
            code: "not_permitted",
            param: None,
            message: message.into(),
        }
    }
}
