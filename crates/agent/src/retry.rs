//! Provider-independent resilience: a per-call timeout and retries on rate limits (429), server
//! errors (5xx), timeouts and connection failures. The waits between retries are the tracker's
//! shared [`Backoff`]; what is provider-specific stays here: which [`ChatError`]s are worth
//! another try ([`ChatError::is_retryable`]) and the timeout of each attempt.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use sextant_tracker::retry::Backoff;

use crate::chat::{ChatModel, ChatRequest, ChatResponse, ChatStream};
use crate::error::ChatError;

/// How often and how patiently a chat call is retried: the `[retry]` section as a value.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = no retry).
    pub max_retries: u32,
    /// Wait before the first retry; doubles each retry, with jitter.
    pub initial_backoff: Duration,
    /// Upper bound of one wait.
    pub max_backoff: Duration,
    /// Limit of one attempt: the whole call, or for a stream the wait for each next piece.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            timeout: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The waits between attempts: exponential, capped, with "equal jitter" (half fixed, half
    /// random) so that many clients do not retry in lock step.
    pub fn backoff(&self) -> Backoff {
        Backoff::new(self.initial_backoff, self.max_backoff)
            .with_max_retries(self.max_retries)
            .with_jitter()
    }
}

/// Wraps a [`ChatModel`] with a [`RetryPolicy`].
pub struct ResilientChatModel {
    inner: Arc<dyn ChatModel>,
    policy: RetryPolicy,
}

impl ResilientChatModel {
    /// `inner` with `policy` applied to every call.
    pub fn new(inner: Arc<dyn ChatModel>, policy: RetryPolicy) -> Self {
        Self { inner, policy }
    }

    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> Result<T, ChatError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ChatError>>,
    {
        let provider = self.inner.provider();
        let timeout = self.policy.timeout;
        let mut retry = 0;
        self.policy
            .backoff()
            .retry(
                || {
                    let call = attempt();
                    async move {
                        tokio::time::timeout(timeout, call)
                            .await
                            .unwrap_or_else(|_| {
                                Err(ChatError::Timeout {
                                    provider: provider.into(),
                                    timeout,
                                })
                            })
                    }
                },
                ChatError::is_retryable,
                |error, wait| {
                    retry += 1;
                    tracing::warn!(
                        provider,
                        retry,
                        max_retries = self.policy.max_retries,
                        wait_ms = wait.as_millis() as u64,
                        "chat call failed, retrying: {error}"
                    );
                },
            )
            .await
    }
}

#[async_trait]
impl ChatModel for ResilientChatModel {
    fn provider(&self) -> &str {
        self.inner.provider()
    }

    fn model(&self) -> &str {
        self.inner.model()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ChatError> {
        self.with_retries(|| self.inner.chat(request)).await
    }

    /// Retries only opening the stream: once pieces have been handed out, a retry would repeat them.
    /// After that, each next piece must arrive within the timeout.
    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream, ChatError> {
        let stream = self
            .with_retries(|| self.inner.chat_stream(request))
            .await?;
        let timeout = self.policy.timeout;
        let provider = self.inner.provider().to_owned();
        let guarded = futures::stream::unfold(Some(stream), move |state| {
            let provider = provider.clone();
            async move {
                let mut stream = state?;
                match tokio::time::timeout(timeout, stream.next()).await {
                    Ok(Some(item)) => Some((item, Some(stream))),
                    Ok(None) => None,
                    Err(_) => Some((Err(ChatError::Timeout { provider, timeout }), None)),
                }
            }
        });
        Ok(Box::pin(guarded))
    }
}

/// `[retry]`: how chat calls are retried, as the configuration spells it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff, in milliseconds.
    pub initial_backoff_ms: u64,
    /// Longest backoff, in milliseconds.
    pub max_backoff_ms: u64,
    /// Per-call timeout, in seconds.
    pub timeout_secs: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff_ms: 500,
            max_backoff_ms: 8000,
            timeout_secs: 120,
        }
    }
}

impl RetryConfig {
    /// As a [`RetryPolicy`].
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_retries: self.max_retries,
            initial_backoff: Duration::from_millis(self.initial_backoff_ms),
            max_backoff: Duration::from_millis(self.max_backoff_ms),
            timeout: Duration::from_secs(self.timeout_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ScriptedChatModel;

    fn fast_policy(max_retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            timeout: Duration::from_millis(200),
        }
    }

    fn http(status: u16) -> ChatError {
        ChatError::Http {
            provider: "scripted".into(),
            status,
            message: "injected".into(),
        }
    }

    #[tokio::test]
    async fn retries_429_and_5xx_until_success() {
        let model = ScriptedChatModel::new()
            .then_error(http(429))
            .then_error(http(503))
            .then_text("finally");
        let calls = model.call_counter();
        let resilient = ResilientChatModel::new(Arc::new(model), fast_policy(3));
        let response = resilient.chat(&ChatRequest::default()).await.unwrap();
        assert_eq!(response.content, "finally");
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn does_not_retry_client_errors_and_gives_up_after_max_retries() {
        let model = ScriptedChatModel::new()
            .then_error(http(400))
            .then_text("never");
        let resilient = ResilientChatModel::new(Arc::new(model), fast_policy(3));
        let err = resilient.chat(&ChatRequest::default()).await.unwrap_err();
        assert!(matches!(err, ChatError::Http { status: 400, .. }), "{err}");

        let model = ScriptedChatModel::new()
            .then_error(http(500))
            .then_error(http(500))
            .then_text("late");
        let resilient = ResilientChatModel::new(Arc::new(model), fast_policy(1));
        let err = resilient.chat(&ChatRequest::default()).await.unwrap_err();
        assert!(matches!(err, ChatError::Http { status: 500, .. }), "{err}");
    }

    #[tokio::test]
    async fn a_hanging_call_times_out_and_is_retried() {
        let model = ScriptedChatModel::new()
            .then_hang()
            .then_text("after the hang");
        let resilient = ResilientChatModel::new(Arc::new(model), fast_policy(1));
        let response = resilient.chat(&ChatRequest::default()).await.unwrap();
        assert_eq!(response.content, "after the hang");

        let model = ScriptedChatModel::new().then_hang();
        let resilient = ResilientChatModel::new(Arc::new(model), fast_policy(0));
        let err = resilient.chat(&ChatRequest::default()).await.unwrap_err();
        assert!(matches!(err, ChatError::Timeout { .. }), "{err}");
    }

    #[test]
    fn the_retry_settings_become_the_shared_jittered_backoff() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            max_retries: 6,
            ..RetryPolicy::default()
        };
        assert_eq!(
            policy.backoff(),
            Backoff {
                max_retries: Some(6),
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(1000),
                jitter: true,
            }
        );
    }
}
