//! One retry policy for every call that may succeed when tried again: chat-model calls
//! (`sextant-agent` adds its per-call timeout and which provider errors retry), MLflow reads and
//! waits for a trace, and the run spool's deliveries while the backend is down.
//!
//! The waits are [`backon`]'s exponential backoff; this module only fixes how Sextant configures
//! it (doubling, capped, optional "equal jitter") so the three agree.
//!
//! ```
//! # async fn demo() -> Result<(), std::io::Error> {
//! use std::time::Duration;
//! use sextant_tracker::retry::Backoff;
//!
//! let policy = Backoff::new(Duration::from_millis(100), Duration::from_secs(2)).with_max_retries(3);
//! let answer = policy
//!     .retry(
//!         || async { Ok::<_, std::io::Error>(42) },
//!         |error| error.kind() == std::io::ErrorKind::ConnectionRefused,
//!         |error, wait| tracing::warn!(?wait, "retrying: {error}"),
//!     )
//!     .await?;
//! assert_eq!(answer, 42);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};

/// A retry policy: how many retries follow a failed attempt and how long to wait before each.
/// The wait starts at `initial_backoff` and doubles with each retry up to `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Retries after the first attempt; `None`: as long as the caller keeps asking.
    pub max_retries: Option<u32>,
    /// The wait before the first retry.
    pub initial_backoff: Duration,
    /// The longest wait.
    pub max_backoff: Duration,
    /// "Equal jitter": each wait is drawn from the upper half of its un-jittered value, so that
    /// many clients that failed together do not retry in lock step.
    pub jitter: bool,
}

impl Backoff {
    /// Unbounded retries, without jitter, waiting `initial_backoff`, doubling up to `max_backoff`.
    pub const fn new(initial_backoff: Duration, max_backoff: Duration) -> Self {
        Self {
            max_retries: None,
            initial_backoff,
            max_backoff,
            jitter: false,
        }
    }

    /// At most `retries` retries after the first attempt.
    pub const fn with_max_retries(self, retries: u32) -> Self {
        Self {
            max_retries: Some(retries),
            ..self
        }
    }

    /// With "equal jitter" (see [`Backoff::jitter`](Self#structfield.jitter)).
    pub const fn with_jitter(self) -> Self {
        Self {
            jitter: true,
            ..self
        }
    }

    /// The waits before each retry, in order; it ends once `max_retries` are used up.
    pub fn delays(&self) -> Delays {
        let max = self.max_backoff;
        let initial = self.initial_backoff.min(max);
        // backon's jitter adds a random part of up to the wait itself: halving both bounds puts
        // each wait in the upper half of its exponential value.
        let (initial, max) = if self.jitter {
            (initial / 2, max / 2)
        } else {
            (initial, max)
        };
        let builder = ExponentialBuilder::new()
            .with_factor(2.0)
            .with_min_delay(initial)
            .with_max_delay(max);
        let builder = match self.max_retries {
            Some(retries) => builder.with_max_times(retries as usize),
            None => builder.without_max_times(),
        };
        let builder = if self.jitter {
            builder.with_jitter()
        } else {
            builder
        };
        Delays {
            inner: builder.build(),
            cap: self.max_backoff,
        }
    }

    /// Runs `attempt` until it succeeds, fails with an error `retryable` turns down, or the
    /// retries are used up; the last result either way. `on_retry` sees each error that is
    /// retried and the wait before the next attempt (for a log line).
    pub async fn retry<T, E, Fut>(
        &self,
        attempt: impl FnMut() -> Fut,
        retryable: impl FnMut(&E) -> bool,
        on_retry: impl FnMut(&E, Duration),
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        attempt
            .retry(self.delays())
            .when(retryable)
            .notify(on_retry)
            .await
    }
}

/// The waits of a [`Backoff`], one per retry: an iterator that ends when the retries are used up.
#[derive(Debug)]
pub struct Delays {
    inner: ExponentialBackoff,
    cap: Duration,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        // backon computes in f32 seconds: a jittered wait can land a few nanoseconds past the cap.
        self.inner.next().map(|wait| wait.min(self.cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_stop_after_max_retries() {
        let policy = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000))
            .with_max_retries(6);
        let waits: Vec<u128> = policy.delays().map(|wait| wait.as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jittered_waits_lie_in_the_upper_half_of_the_exponential_wait() {
        let policy = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000))
            .with_max_retries(6)
            .with_jitter();
        for _ in 0..50 {
            for (retry, wait) in (1..).zip(policy.delays()) {
                let cap = Duration::from_millis((100u64 << (retry - 1)).min(1000));
                assert!(
                    wait >= cap / 2 && wait <= cap,
                    "retry {retry}: {wait:?} not in [{:?}, {cap:?}]",
                    cap / 2
                );
            }
        }
    }

    #[test]
    fn unbounded_policies_keep_waiting_at_the_cap_and_a_large_start_is_capped() {
        let policy = Backoff::new(Duration::from_millis(500), Duration::from_secs(2));
        assert_eq!(policy.delays().nth(1000), Some(Duration::from_secs(2)));
        let policy = Backoff::new(Duration::from_secs(5), Duration::from_secs(1));
        assert_eq!(policy.delays().next(), Some(Duration::from_secs(1)));
        let none = Backoff::new(Duration::from_secs(1), Duration::from_secs(1)).with_max_retries(0);
        assert_eq!(none.delays().next(), None);
    }

    #[tokio::test]
    async fn retries_only_what_the_caller_calls_retryable() {
        let policy =
            Backoff::new(Duration::from_millis(10), Duration::from_millis(10)).with_max_retries(3);
        let mut calls = 0;
        let mut seen = Vec::new();
        let result: Result<(), u16> = policy
            .retry(
                || {
                    calls += 1;
                    let status = if calls < 3 { 503 } else { 400 };
                    async move { Err(status) }
                },
                |status| *status >= 500,
                |status, wait| seen.push((*status, wait)),
            )
            .await;
        assert_eq!(result, Err(400));
        assert_eq!(calls, 3);
        assert_eq!(seen, [(503, Duration::from_millis(10)); 2]);

        let mut calls = 0;
        let result: Result<(), u16> = policy
            .retry(
                || {
                    calls += 1;
                    async { Err(503) }
                },
                |_| true,
                |_, _| {},
            )
            .await;
        assert_eq!(result, Err(503));
        assert_eq!(calls, 4, "the first attempt and three retries");
    }
}
