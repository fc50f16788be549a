//! Errors of chat models and agents.

use std::time::Duration;

use sextant_tracker::conventions::{UrlParts, shown_url};

/// Why a chat-model call failed.
///
/// Messages never contain an API key, a bearer token, a URL's credentials or query, or a response
/// body verbatim: providers build them from status codes and [`upstream_reason`]s, and name
/// servers by [`shown_url`](sextant_tracker::conventions::shown_url).
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The server answered with an HTTP error status.
    #[error("{provider} answered HTTP {status}: {message}")]
    Http {
        /// The provider (`openai`, `ollama`, …).
        provider: String,
        /// The HTTP status code.
        status: u16,
        /// The server's reason, summarised ([`upstream_reason`]).
        message: String,
    },
    /// The call did not finish within its timeout.
    #[error("{provider} did not answer within {timeout:?}")]
    Timeout {
        /// The provider.
        provider: String,
        /// The per-call timeout that expired.
        timeout: Duration,
    },
    /// The server could not be reached (connection refused, DNS, TLS, reset …).
    #[error("could not reach {provider} at {endpoint}: {message}")]
    Connect {
        /// The provider.
        provider: String,
        /// The address tried, without credentials or query.
        endpoint: String,
        /// What went wrong.
        message: String,
    },
    /// The server answered, but not with something this provider understands.
    #[error("{provider} sent a response that could not be read: {message}")]
    InvalidResponse {
        /// The provider.
        provider: String,
        /// What was wrong with it.
        message: String,
    },
    /// The request cannot be served as asked (bad option, unsupported feature, model not found …).
    #[error("{provider}: {message}")]
    Request {
        /// The provider.
        provider: String,
        /// What was wrong.
        message: String,
    },
    /// The embedded model failed to load or to run.
    #[error("local model: {0}")]
    Local(String),
    /// The provider's support was left out of this build (a cargo feature).
    #[error("this build of Sextant has no `{0}` provider; rebuild with the cargo feature `{0}`")]
    Unsupported(&'static str),
}

impl ChatError {
    /// The HTTP error `status` from `provider`, whose response `body` is summarised by
    /// [`upstream_reason`].
    #[cfg(any(feature = "ollama", feature = "openai"))]
    pub(crate) fn http(provider: &str, status: u16, body: &str) -> Self {
        ChatError::Http {
            provider: provider.into(),
            status,
            message: upstream_reason(status, body),
        }
    }

    /// Whether retrying the same call may succeed: rate limits, server errors, timeouts and
    /// connection failures.
    pub fn is_retryable(&self) -> bool {
        match self {
            ChatError::Http { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            ChatError::Timeout { .. } | ChatError::Connect { .. } => true,
            ChatError::InvalidResponse { .. }
            | ChatError::Request { .. }
            | ChatError::Local(_)
            | ChatError::Unsupported(_) => false,
        }
    }

    /// A short, low-cardinality class of the error for the `error.type` span attribute.
    pub fn error_type(&self) -> String {
        match self {
            ChatError::Http { status, .. } => status.to_string(),
            ChatError::Timeout { .. } => "timeout".into(),
            ChatError::Connect { .. } => "connect".into(),
            ChatError::InvalidResponse { .. } => "invalid_response".into(),
            ChatError::Request { .. } => "request".into(),
            ChatError::Local(_) => "local_model".into(),
            ChatError::Unsupported(_) => "unsupported_provider".into(),
        }
    }
}

/// Most characters of an upstream reason an error keeps.
pub(crate) const MAX_REASON_CHARS: usize = 200;

/// What an error says about an upstream error response: the message of a JSON error object
/// (`{"error": {"message": …}}`, `{"error": "…"}`, `{"message": …}`, `{"detail": …}`) as
/// [`error_summary`] gives it. Any other body — an HTML error page, a proxy's text, a stack trace —
/// is not quoted at all: the status's reason phrase stands in for it. Errors end up in span status
/// and in the service's 502 answers, so they carry a summary, never the body.
pub fn upstream_reason(status: u16, body: &str) -> String {
    let message = serde_json::from_str::<serde_json::Value>(body.trim())
        .ok()
        .and_then(|value| {
            [
                value.pointer("/error/message"),
                value.get("error"),
                value.get("message"),
                value.get("detail"),
            ]
            .into_iter()
            .flatten()
            .find_map(|field| field.as_str().map(str::to_owned))
        });
    match message {
        Some(message) if !message.trim().is_empty() => error_summary(&message, MAX_REASON_CHARS),
        _ => reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|status| status.canonical_reason())
            .unwrap_or("no reason given")
            .to_lowercase(),
    }
}

/// A transport failure (refused, DNS, TLS, reset, a body cut off) with its causes on one line.
/// Callers pass reqwest's error `without_url()`: its URL holds the base URL's credentials and
/// query (and any URL left in the text is shown without them).
#[cfg(any(feature = "ollama", feature = "openai"))]
pub(crate) fn transport_reason(error: &dyn std::error::Error) -> String {
    error_summary(&crate::providers::error_chain(error), MAX_REASON_CHARS)
}

/// `text` as an error may carry it: on one line, every URL in it shown without credentials or
/// query, cut to `max_chars` characters.
pub fn error_summary(text: &str, max_chars: usize) -> String {
    let line = text
        .split_whitespace()
        .map(|word| {
            if !word.contains("://") {
                return word.to_owned();
            }
            // Keep the brackets and punctuation around a URL (`(http://…)`, `http://….`).
            let edge = |c: char| "()[]<>{}\"',;.".contains(c);
            let start = word.len() - word.trim_start_matches(edge).len();
            let end = word.trim_end_matches(edge).len().max(start);
            format!(
                "{}{}{}",
                &word[..start],
                shown_url(&word[start..end], UrlParts::Location),
                &word[end..]
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    match line.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_error_message_is_kept_short_and_any_other_body_is_not_quoted() {
        assert_eq!(
            upstream_reason(400, r#"{"error":{"message":"bad key","type":"auth"}}"#),
            "bad key"
        );
        assert_eq!(
            upstream_reason(404, r#"{"error":"model 'x' not found"}"#),
            "model 'x' not found"
        );
        assert_eq!(
            upstream_reason(
                502,
                "<html><body>upstream at 10.0.0.7 said: token=abc</body></html>"
            ),
            "bad gateway"
        );
        let long = format!(r#"{{"detail": "{}"}}"#, "word ".repeat(100));
        assert_eq!(
            upstream_reason(422, &long).chars().count(),
            MAX_REASON_CHARS + 1
        );
    }

    #[test]
    fn urls_in_a_reason_lose_credentials_and_query() {
        assert_eq!(
            error_summary(
                "error sending request for url (http://u:pw@host:8080/v1/chat?key=k1)\n  retry",
                200
            ),
            "error sending request for url (http://host:8080/v1/chat) retry"
        );
    }
}
