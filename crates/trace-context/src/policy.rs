//! Which hosts may receive Sextant's trace context: `[telemetry] propagate_to`.

use std::net::IpAddr;
use std::sync::{PoisonError, RwLock};

/// A `propagate_to` entry that is not a host, a `*.suffix`, `private` or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(String);

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// Every host.
    Any,
    /// Loopback and private addresses, `localhost`, single-label names (a compose service) and
    /// the private suffixes (`.local`, `.internal`, `.svc`, `.cluster.local`, `.localhost`).
    Private,
    /// This host exactly (a name or an IP literal).
    Host(String),
    /// Hosts ending in `.suffix` (not the bare suffix).
    Suffix(String),
}

/// The hosts trace context may go to; see the [crate docs](crate).
///
/// ```
/// use sextant_trace_context::PropagationPolicy;
/// let policy = PropagationPolicy::default();
/// assert!(policy.allows("http://127.0.0.1:8080/v1"));
/// assert!(policy.allows("http://mlflow:5000"));
/// assert!(!policy.allows("https://example.com/page"));
/// let policy = PropagationPolicy::parse(&["private", "*.corp.example"]).unwrap();
/// assert!(policy.allows("https://a2a.corp.example/a2a/billing/"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropagationPolicy {
    targets: Vec<Target>,
}

impl Default for PropagationPolicy {
    /// Loopback and private hosts only.
    fn default() -> Self {
        Self {
            targets: vec![Target::Private],
        }
    }
}

const PRIVATE_SUFFIXES: [&str; 5] = [
    ".local",
    ".internal",
    ".svc",
    ".cluster.local",
    ".localhost",
];

impl PropagationPolicy {
    /// A policy that sends trace context nowhere.
    pub fn none() -> Self {
        Self {
            targets: Vec::new(),
        }
    }

    /// The policy of a `propagate_to` list: `private`, `*`, host names, IP literals and
    /// `*.suffix` patterns. An empty list sends trace context nowhere.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, PolicyError> {
        let mut targets = Vec::with_capacity(entries.len());
        for entry in entries {
            let entry = entry.as_ref().trim().to_ascii_lowercase();
            let target = match entry.as_str() {
                "*" => Target::Any,
                "private" => Target::Private,
                suffix if suffix.starts_with("*.") && valid_host(&suffix[2..]) => {
                    Target::Suffix(suffix[1..].to_owned())
                }
                host if valid_host(host.trim_start_matches('[').trim_end_matches(']')) => {
                    Target::Host(
                        host.trim_start_matches('[')
                            .trim_end_matches(']')
                            .to_owned(),
                    )
                }
                _ => {
                    return Err(PolicyError(format!(
                        "`{}` is not a host: write a host name or IP (`mlflow.internal`), `*.suffix`, `private` (loopback and private hosts) or `*`",
                        entry.escape_debug()
                    )));
                }
            };
            targets.push(target);
        }
        Ok(Self { targets })
    }

    /// Whether a request to `url` may carry trace context.
    pub fn allows(&self, url: &str) -> bool {
        let Ok(parsed) = url::Url::parse(url) else {
            return false;
        };
        let host = match parsed.host() {
            Some(url::Host::Domain(name)) => name.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return false,
        };
        self.targets.iter().any(|target| match target {
            Target::Any => true,
            Target::Private => is_private_host(&host),
            Target::Host(allowed) => *allowed == host,
            Target::Suffix(suffix) => host.ends_with(suffix.as_str()),
        })
    }
}

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && (host.parse::<IpAddr>().is_ok()
            || host.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }))
}

fn is_private_host(host: &str) -> bool {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return match ip {
            IpAddr::V4(v4) => {
                v4.is_loopback()
                    || v4.is_private()
                    || v4.is_link_local()
                    // 100.64.0.0/10, carrier-grade NAT: cluster networks use it.
                    || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
            }
            IpAddr::V6(v6) => {
                v6.is_loopback()
                    || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
                    || v6
                        .to_ipv4_mapped()
                        .is_some_and(|v4| is_private_host(&v4.to_string()))
            }
        };
    }
    host == "localhost"
        || !host.contains('.')
        || PRIVATE_SUFFIXES.iter().any(|suffix| host.ends_with(suffix))
}

static POLICY: RwLock<Option<PropagationPolicy>> = RwLock::new(None);

/// Installs the process's policy (the composition root does, from `[telemetry] propagate_to`).
pub fn set_policy(policy: PropagationPolicy) {
    *POLICY.write().unwrap_or_else(PoisonError::into_inner) = Some(policy);
}

/// The process's policy: the one [`set_policy`] installed, else the default (private hosts).
pub fn policy() -> PropagationPolicy {
    POLICY
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_allows_loopback_private_and_cluster_hosts_only() {
        let policy = PropagationPolicy::default();
        for url in [
            "http://127.0.0.1:5000",
            "http://localhost:11434/api/chat",
            "http://[::1]:8080/v1",
            "http://10.1.2.3/",
            "http://192.168.0.7:4318",
            "http://172.20.0.2:6333",
            "http://ollama:11434",
            "http://mlflow.mlops.svc.cluster.local:5000",
            "http://peer.internal/a2a/b/",
        ] {
            assert!(policy.allows(url), "{url}");
        }
        for url in [
            "https://api.openai.com/v1",
            "https://example.com/page",
            "http://8.8.8.8/",
            "http://172.32.0.1/",
            "not a url",
            "file:///etc/passwd",
        ] {
            assert!(!policy.allows(url), "{url}");
        }
    }

    #[test]
    fn explicit_entries_add_hosts_and_suffixes() {
        let policy = PropagationPolicy::parse(&["api.example.com", "*.corp.example"]).unwrap();
        assert!(policy.allows("https://api.example.com/v1"));
        assert!(!policy.allows("https://other.example.com/v1"));
        assert!(policy.allows("https://a.corp.example/"));
        assert!(!policy.allows("https://corp.example/"));
        // Without `private`, loopback is not implied.
        assert!(!policy.allows("http://127.0.0.1/"));
        assert!(
            PropagationPolicy::parse(&["*"])
                .unwrap()
                .allows("https://x.y/")
        );
        assert!(
            !PropagationPolicy::parse::<&str>(&[])
                .unwrap()
                .allows("http://127.0.0.1/")
        );
    }

    #[test]
    fn a_bad_entry_is_named() {
        let error = PropagationPolicy::parse(&["private", "http://x/"]).unwrap_err();
        assert!(error.to_string().contains("`http://x/`"), "{error}");
    }
}
