//! HTTP for tools: one client setup, and requests traced as OpenTelemetry HTTP client spans
//! (`GET`, with `url.full`, `server.address`, `http.response.status_code`).

use std::error::Error as _;
use std::time::Duration;

use tracing::Instrument;
use tracing::field::Empty;

use crate::ToolError;
use crate::builtin::http_fetch::AddressRefused;
use crate::capture::content_capture_enabled;
use sextant_conventions as sc;

/// The `User-Agent` tools send.
pub(crate) const USER_AGENT: &str = concat!(
    "sextant/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/sextant-rs/sextant)"
);

/// A client for calling APIs (search backends, weather): system proxy settings apply.
pub(crate) fn api_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(timeout)
        .build()
        .expect("a client without custom TLS settings builds")
}

/// Sends `request` inside an HTTP client span and turns transport failures and error statuses into
/// [`ToolError::Upstream`] messages that name the service. `service` names it for the model
/// ("SearXNG", "Brave Search"). `propagate`: the request is to a configured API, which gets the
/// trace context when `[telemetry] propagate_to` allows its host; a fetched page never does.
pub(crate) async fn send(
    client: &reqwest::Client,
    mut request: reqwest::Request,
    service: &str,
    propagate: bool,
) -> Result<reqwest::Response, ToolError> {
    let url = request.url().clone();
    let method = request.method().as_str().to_owned();
    let shown_url = sc::shown_url(
        url.as_str(),
        if content_capture_enabled() {
            sc::UrlParts::WithQuery
        } else {
            sc::UrlParts::Location
        },
    );
    let span = tracing::info_span!(
        sc::span_name::HTTP_REQUEST,
        { sc::OTEL_NAME } = %method,
        { sc::OTEL_KIND } = "client",
        { sc::OTEL_STATUS_CODE } = Empty,
        { sc::OTEL_STATUS_DESCRIPTION } = Empty,
        { sc::HTTP_REQUEST_METHOD } = %method,
        { sc::SERVER_ADDRESS } = url.host_str().unwrap_or_default(),
        { sc::SERVER_PORT } = url.port_or_known_default().map(i64::from).unwrap_or_default(),
        { sc::URL_FULL } = %shown_url,
        { sc::HTTP_RESPONSE_STATUS_CODE } = Empty,
        { sc::ERROR_TYPE } = Empty,
    );
    if propagate {
        let _entered = span.enter();
        sextant_trace_context::inject(url.as_str(), request.headers_mut());
    }
    let result = client.execute(request).instrument(span.clone()).await;
    let failed = |error_type: &str, description: String| {
        span.record(sc::ERROR_TYPE, error_type);
        span.record(sc::OTEL_STATUS_CODE, "ERROR");
        span.record(sc::OTEL_STATUS_DESCRIPTION, description.as_str());
        ToolError::Upstream(description)
    };
    match result {
        Err(error) => {
            if let Some(refused) = refusal(&error) {
                let description = refused.to_string();
                span.record(sc::ERROR_TYPE, "refused");
                span.record(sc::OTEL_STATUS_CODE, "ERROR");
                span.record(sc::OTEL_STATUS_DESCRIPTION, description.as_str());
                return Err(ToolError::Refused(description));
            }
            let (error_type, what) = describe_transport_error(&error);
            Err(failed(
                error_type,
                format!(
                    "{service} could not be reached at {}: {what}",
                    sc::shown_url(url.as_str(), sc::UrlParts::Location)
                ),
            ))
        }
        Ok(response) => {
            let status = response.status();
            span.record(sc::HTTP_RESPONSE_STATUS_CODE, i64::from(status.as_u16()));
            if status.is_client_error() || status.is_server_error() {
                let hint = match status.as_u16() {
                    401 | 403 => {
                        " (check the API key, or whether this instance allows the request)"
                    }
                    429 => " (rate limited: try again later)",
                    _ => "",
                };
                return Err(failed(
                    status.as_str(),
                    format!("{service} answered {status}{hint}"),
                ));
            }
            Ok(response)
        }
    }
}

/// The fetch guard's refusal, when that is why the connection failed.
fn refusal(error: &reqwest::Error) -> Option<&AddressRefused> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<AddressRefused>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

/// A short class and a sentence for a transport failure, without the URL (callers add a redacted
/// one).
pub(crate) fn describe_transport_error(error: &reqwest::Error) -> (&'static str, String) {
    let error_type = if error.is_timeout() {
        "timeout"
    } else if error.is_connect() {
        "connect"
    } else {
        "transport"
    };
    let mut what = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = error.source();
    while let Some(cause) = source {
        what.push_str(": ");
        what.push_str(&cause.to_string());
        source = cause.source();
    }
    (error_type, what)
}

/// The body as text, read up to `max_bytes`; the flag says whether more was left unread.
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    max_bytes: usize,
    service: &str,
) -> Result<(String, bool), ToolError> {
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        ToolError::Upstream(format!(
            "{service}: the response broke off: {}",
            describe_transport_error(&e).1
        ))
    })? {
        let room = max_bytes - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok((String::from_utf8_lossy(&body).into_owned(), truncated))
}

/// Most bytes of an API response read (search results, weather): far above any real answer.
const MAX_API_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Sends an API request (traced, errors named after `service`) and reads its body as text.
pub(crate) async fn request_text(
    client: &reqwest::Client,
    request: reqwest::Request,
    service: &str,
) -> Result<String, ToolError> {
    let response = send(client, request, service, true).await?;
    let (body, _) = read_limited(response, MAX_API_RESPONSE_BYTES, service).await?;
    Ok(body)
}

/// Parses a JSON API response, saying which service sent something unexpected.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    body: &str,
    service: &str,
) -> Result<T, ToolError> {
    serde_json::from_str(body).map_err(|e| {
        ToolError::Upstream(format!(
            "{service} sent a response that is not the expected JSON ({e})"
        ))
    })
}
