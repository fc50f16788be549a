//! W3C baggage of a turn: the session and user ids travel to peers the policy allows, so a
//! remote agent's spans can carry them too.

use std::future::Future;

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

tokio::task_local! {
    static BAGGAGE: Baggage;
}

/// What a value escapes in a baggage header: controls, space and the list's own delimiters.
const VALUE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b',')
    .add(b';')
    .add(b'\\')
    .add(b'%')
    .add(b'=');

/// `key=value` entries sent as the `baggage` header (W3C Baggage).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baggage {
    entries: Vec<(String, String)>,
}

impl Baggage {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same baggage with `key` set to `value` (an earlier value of `key` goes).
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.entries.retain(|(k, _)| k != key);
        self.entries.push((key.to_owned(), value.into()));
        self
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether it has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `baggage` header value: `key=value` pairs, values percent-encoded.
    pub fn header(&self) -> String {
        self.entries
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, VALUE)))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Runs `future` with `baggage` as the current baggage (merged over the baggage around it), so
/// the calls it makes carry it.
pub async fn with_baggage<F: Future>(baggage: Baggage, future: F) -> F::Output {
    let merged = match current_baggage() {
        Some(outer) => baggage
            .entries
            .into_iter()
            .fold(outer, |merged, (k, v)| merged.with(&k, v)),
        None => baggage,
    };
    BAGGAGE.scope(merged, future).await
}

/// The baggage of the running task, if a caller set one with [`with_baggage`].
pub fn current_baggage() -> Option<Baggage> {
    BAGGAGE
        .try_with(Clone::clone)
        .ok()
        .filter(|b| !b.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_percent_encoded_and_keys_replace() {
        let baggage = Baggage::new()
            .with("session.id", "a b,c")
            .with("user.id", "u1")
            .with("session.id", "s=1");
        assert_eq!(baggage.header(), "user.id=u1,session.id=s%3D1");
    }

    #[tokio::test]
    async fn inner_baggage_merges_over_outer() {
        let outer = Baggage::new().with("session.id", "s").with("user.id", "u");
        let inner = Baggage::new().with("user.id", "v");
        let seen = with_baggage(outer, with_baggage(inner, async { current_baggage() })).await;
        let seen = seen.unwrap();
        assert_eq!(seen.get("session.id"), Some("s"));
        assert_eq!(seen.get("user.id"), Some("v"));
        assert!(current_baggage().is_none());
    }
}
