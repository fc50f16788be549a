//! Errors as the service answers them: an HTTP status and OpenAI's error body
//! (`{"error": {"message", "type", "param", "code"}}`), which OpenAI clients parse and show.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Most characters of a failed turn's message in a 502.
const MAX_TURN_FAILURE_CHARS: usize = 400;

/// A request that could not be answered.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// OpenAI's error `type` (`invalid_request_error`, `authentication_error`, …).
    pub kind: &'static str,
    /// A machine-readable `code` (`model_not_found`, `rate_limit_exceeded`, …).
    pub code: &'static str,
    /// The request field at fault, if one is.
    pub param: Option<&'static str>,
    /// What went wrong, for a person; never holds a credential.
    pub message: String,
}

impl ApiError {
    /// 400: the request itself is wrong.
    pub fn invalid(param: Option<&'static str>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: "invalid_request",
            param,
            message: message.into(),
        }
    }

    /// 404 for a resource that does not exist.
    pub fn not_found(code: &'static str, param: Option<&'static str>, message: String) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            kind: "invalid_request_error",
            code,
            param,
            message,
        }
    }

    /// 401: no or a wrong bearer token.
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            kind: "authentication_error",
            code: "invalid_api_key",
            param: None,
            message: "this service needs `Authorization: Bearer <token>` with the configured token"
                .into(),
        }
    }

    /// 403: the session belongs to another user.
    pub fn forbidden(message: String) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            kind: "permission_error",
            code: "session_of_another_user",
            param: None,
            message,
        }
    }

    /// 409: another process is running the turn right now.
    pub fn conflict(message: String) -> Self {
        Self {
            status: StatusCode::CONFLICT,
            kind: "invalid_request_error",
            code: "turn_in_progress",
            param: None,
            message,
        }
    }

    /// 429: every request slot is taken.
    pub fn too_many_requests(limit: usize) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "rate_limit_error",
            code: "rate_limit_exceeded",
            param: None,
            message: format!(
                "the service is answering its maximum of {limit} requests at once ([serve] max_concurrent_requests); retry shortly"
            ),
        }
    }

    /// 503: the service is starting or stopping, or a backend it needs is down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "server_error",
            code: "service_unavailable",
            param: None,
            message: message.into(),
        }
    }

    /// 504: the turn took longer than `[serve] request_timeout_secs`.
    pub fn timeout(seconds: f64) -> Self {
        Self {
            status: StatusCode::GATEWAY_TIMEOUT,
            kind: "server_error",
            code: "timeout",
            param: None,
            message: format!(
                "the agent did not answer within {seconds} s ([serve] request_timeout_secs)"
            ),
        }
    }

    /// 502 for a failed turn (the model or a backend behind it failed). The message summarises
    /// the upstream failure — its status and a short reason, on one line, URLs without credentials
    /// or query — and never relays an upstream body: the providers' errors carry only a summary,
    /// and this cuts whatever reaches it to 400 characters.
    pub fn turn_failed(error: &sextant_agent::AgentError) -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            kind: "server_error",
            code: match error {
                sextant_agent::AgentError::InvalidOutput { .. } => "invalid_output",
                _ => "agent_failed",
            },
            param: None,
            message: sextant_agent::error::error_summary(
                &error.to_string(),
                MAX_TURN_FAILURE_CHARS,
            ),
        }
    }

    /// 500: something in the service itself failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "server_error",
            code: "internal_error",
            param: None,
            message: message.into(),
        }
    }

    /// The JSON body, also sent as the last event of a stream that failed.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        match self.status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

/// A JSON body that failed to parse or was too large: 400 / 413 / 415 with the reason, in the
/// same error shape as every other failure.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        let status = rejection.status();
        Self {
            status,
            kind: "invalid_request_error",
            code: if status == StatusCode::PAYLOAD_TOO_LARGE {
                "request_too_large"
            } else {
                "invalid_json"
            },
            param: None,
            message: rejection.body_text(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_agent::{AgentError, ChatError};

    #[test]
    fn a_failed_turn_is_summarised_never_relayed() {
        let upstream_body = format!(
            "<html>proxy at http://admin:hunter2@10.0.0.5:8080/v1?key=sk-live-1 failed\n{}</html>",
            "stack frame\n".repeat(500)
        );
        let error = AgentError::Chat {
            agent: "qa".into(),
            error: ChatError::Http {
                provider: "openai".into(),
                status: 500,
                message: upstream_body,
            },
        };
        let answer = ApiError::turn_failed(&error);
        assert_eq!(answer.status, StatusCode::BAD_GATEWAY);
        let message = answer.message;
        assert!(message.contains("HTTP 500"), "{message}");
        for secret in ["hunter2", "admin", "sk-live-1", "\n"] {
            assert!(!message.contains(secret), "{secret:?} in {message}");
        }
        assert!(
            message.chars().count() <= MAX_TURN_FAILURE_CHARS + 1,
            "{} characters",
            message.chars().count()
        );
    }
}
