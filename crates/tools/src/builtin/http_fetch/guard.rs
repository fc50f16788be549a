//! The address guard of `http_fetch`: refuses URLs that lead to loopback, private, link-local,
//! shared, multicast and cloud metadata addresses, so a model — or a page it read — cannot make the
//! agent reach services on its own machine or network (server-side request forgery).
//!
//! Checked for every hop: IP literals in the URL before connecting, and host names as they are
//! resolved, by the resolver the client connects with, so a name that resolves to a private
//! address (or changes its answer between a check and the connection) is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::ToolError;

/// Host names refused before any lookup: cloud metadata services by name.
const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata.goog", "metadata"];

/// What `http_fetch` may reach.
#[derive(Debug, Clone, Default)]
pub(crate) struct AddressPolicy {
    /// Everything is allowed (`allow_private_networks = true`).
    pub allow_private: bool,
    /// Hosts exempt from the guard; `*.example.org` covers its subdomains.
    pub allowed_hosts: Vec<String>,
}

/// A host whose address the guard refused; found in a connection error's causes.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {ip}, a {class} address, which http_fetch does not reach")]
pub(crate) struct AddressRefused {
    host: String,
    ip: IpAddr,
    class: &'static str,
}

impl AddressPolicy {
    fn exempt(&self, host: &str) -> bool {
        self.allow_private
            || self.allowed_hosts.iter().any(|allowed| {
                let allowed = allowed.trim().to_ascii_lowercase();
                let allowed = allowed
                    .rsplit_once(':')
                    .filter(|(_, port)| {
                        port.chars().all(|c| c.is_ascii_digit()) && !allowed.ends_with(']')
                    })
                    .map_or(allowed.as_str(), |(name, _)| name);
                let allowed = allowed.trim_start_matches('[').trim_end_matches(']');
                match allowed.strip_prefix("*.") {
                    Some(domain) => host.ends_with(&format!(".{domain}")),
                    None => host == allowed,
                }
            })
    }

    /// Checks what can be checked before connecting: scheme, credentials, IP literals, names of
    /// metadata services and `localhost`.
    pub(crate) fn check_url(&self, url: &url::Url) -> Result<(), ToolError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ToolError::InvalidArguments(format!(
                "`{}` is not an http or https URL",
                url.scheme()
            )));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ToolError::InvalidArguments(
                "URLs with a user name or password are not fetched".into(),
            ));
        }
        let host = match url.host() {
            None => return Err(ToolError::InvalidArguments("the URL has no host".into())),
            Some(host) => host,
        };
        let name = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let name = name.trim_start_matches('[').trim_end_matches(']');
        if self.exempt(name) {
            return Ok(());
        }
        let ip = match host {
            url::Host::Ipv4(ip) => IpAddr::V4(ip),
            url::Host::Ipv6(ip) => IpAddr::V6(ip),
            url::Host::Domain(domain) => {
                let domain = domain.trim_end_matches('.').to_ascii_lowercase();
                if METADATA_HOSTS.contains(&domain.as_str()) {
                    return Err(ToolError::Refused(format!(
                        "{domain} is a cloud metadata service, which http_fetch does not reach"
                    )));
                }
                if domain == "localhost" || domain.ends_with(".localhost") {
                    return Err(ToolError::Refused(format!(
                        "{domain} is this machine (loopback), which http_fetch does not reach"
                    )));
                }
                return Ok(());
            }
        };
        match forbidden_class(ip) {
            Some(class) => Err(ToolError::Refused(format!(
                "{ip} is a {class} address, which http_fetch does not reach"
            ))),
            None => Ok(()),
        }
    }
}

/// Why `ip` must not be fetched, or `None` for a public address.
pub(crate) fn forbidden_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => forbidden_v4(ip),
        IpAddr::V6(ip) => forbidden_v6(ip),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip == Ipv4Addr::new(169, 254, 169, 254) => "cloud metadata",
        _ if ip == Ipv4Addr::new(100, 100, 100, 200) => "cloud metadata",
        (0, _, _) => "unspecified (\"this network\")",
        (127, _, _) => "loopback",
        (10, _, _) | (192, 168, _) => "private",
        (172, 16..=31, _) => "private",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "shared (carrier-grade NAT)",
        (192, 0, 0) => "IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, _, _) => "multicast",
        (240..=255, _, _) => "reserved or broadcast",
        _ => return None,
    })
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    let segments = ip.segments();
    let embedded_v4 = |high: u16, low: u16| {
        Ipv4Addr::new((high >> 8) as u8, high as u8, (low >> 8) as u8, low as u8)
    };
    Some(match segments {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address that is what is reached.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => return forbidden_v4(embedded_v4(high, low)),
        [0x2002, high, low, ..] => return forbidden_v4(embedded_v4(high, low)),
        // Deprecated IPv4-compatible addresses (::a.b.c.d).
        [0, 0, 0, 0, 0, 0, high, low] => return forbidden_v4(embedded_v4(high, low)),
        [s, ..] if s & 0xfe00 == 0xfc00 => "unique local (private)",
        [s, ..] if s & 0xffc0 == 0xfe80 => "link-local",
        [s, ..] if s & 0xffc0 == 0xfec0 => "site-local",
        [s, ..] if s & 0xff00 == 0xff00 => "multicast",
        [0x2001, 0x0db8, ..] => "documentation",
        _ => return None,
    })
}

/// The resolver `http_fetch` connects with: the system's answers, refused when one of them is an
/// address the policy does not allow.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    pub policy: Arc<AddressPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_ascii_lowercase();
            let addresses: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !policy.exempt(&host) {
                // One bad answer refuses the host: the connection could use any of them.
                if let Some((ip, class)) = addresses
                    .iter()
                    .find_map(|a| forbidden_class(a.ip()).map(|class| (a.ip(), class)))
                {
                    return Err(Box::new(AddressRefused { host, ip, class })
                        as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        matches!(
            AddressPolicy::default().check_url(&url::Url::parse(url).unwrap()),
            Err(ToolError::Refused(_))
        )
    }

    #[test]
    fn private_loopback_link_local_and_metadata_literals_are_refused() {
        for url in [
            "http://127.0.0.1/",
            "http://127.1.2.3:8080/admin",
            "http://2130706433/",
            "http://0x7f.0.0.1/",
            "http://0.0.0.0/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.1.1/",
            "http://100.100.100.200/",
            "http://100.64.0.1/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://[::1]/",
            "http://[::]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:7f00:1::]/",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://localhost:5000/",
            "http://api.localhost/",
        ] {
            assert!(refused(url), "{url} was not refused");
        }
    }

    #[test]
    fn public_addresses_and_names_pass_the_url_check() {
        for url in [
            "https://93.184.215.14/",
            "http://172.32.0.1/",
            "http://100.128.0.1/",
            "https://[2606:4700::1111]/",
            "https://example.org/page",
        ] {
            assert!(
                AddressPolicy::default()
                    .check_url(&url::Url::parse(url).unwrap())
                    .is_ok(),
                "{url} was refused"
            );
        }
    }

    #[test]
    fn other_schemes_and_credentials_are_invalid_arguments() {
        let policy = AddressPolicy::default();
        for url in [
            "file:///etc/passwd",
            "ftp://example.org/",
            "https://user:pw@example.org/",
        ] {
            let err = policy
                .check_url(&url::Url::parse(url).unwrap())
                .unwrap_err();
            assert_eq!(err.error_type(), "invalid_arguments", "{url}: {err}");
        }
    }

    #[test]
    fn allowed_hosts_and_the_switch_exempt_from_the_guard() {
        let policy = AddressPolicy {
            allow_private: false,
            allowed_hosts: vec![
                "127.0.0.1:8080".into(),
                "*.corp.example".into(),
                "[::1]".into(),
            ],
        };
        let ok = |url: &str| policy.check_url(&url::Url::parse(url).unwrap()).is_ok();
        assert!(ok("http://127.0.0.1:9999/"));
        assert!(ok("http://wiki.corp.example/"));
        assert!(ok("http://[::1]/"));
        assert!(!ok("http://10.0.0.1/"));
        let open = AddressPolicy {
            allow_private: true,
            allowed_hosts: vec![],
        };
        assert!(
            open.check_url(&url::Url::parse("http://10.0.0.1/").unwrap())
                .is_ok()
        );
    }

    #[tokio::test]
    async fn names_that_resolve_to_loopback_are_refused_by_the_resolver() {
        let resolver = GuardedResolver {
            policy: Arc::new(AddressPolicy::default()),
        };
        let name: Name = "localhost".parse().unwrap();
        let err = match resolver.resolve(name).await {
            Ok(_) => panic!("localhost was resolved"),
            Err(err) => err,
        };
        assert!(err.is::<AddressRefused>(), "{err}");
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}
