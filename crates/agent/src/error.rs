//! Errors of chat models and agents.

use std::time::Duration;

/// Why a chat-model call failed.
///
/// Messages never contain an API key or bearer token: providers build them from status codes and
/// response bodies only.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The server answered with an HTTP error status.
    #[error("{provider} answered HTTP {status}: {message}")]
    Http {
        /// The provider (`openai`, `ollama`, …).
        provider: String,
        /// The HTTP status code.
        status: u16,
        /// The error the server gave, trimmed.
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
        /// The address tried (never with credentials).
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
