//! Who is calling: `[serve.auth]` maps API keys to principals (a user id and roles), the
//! middleware that turns a request's `Authorization: Bearer <key>` into a [`Caller`], and the
//! `Host` check that keeps browsers on other sites out of an unauthenticated loopback service
//! (DNS rebinding).
//!
//! Keys are kept as SHA-256 digests only: a key is a long random string (`sextant keys new`
//! makes one), so a plain digest is as strong as the key, and a leaked keys file gives nobody a
//! key. A presented key is hashed and compared with every digest in constant time; neither the key
//! nor its digest is ever logged or put in an error.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::server::ServiceState;

/// What a principal may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Talks to agents as itself: its sessions and traces are its own.
    User,
    /// A backend acting for its end users: may name them (`user`, `x-user-id`), and its
    /// `traceparent` is continued (`[serve] trust_incoming_trace_context = "services"`).
    Service,
    /// Everything a service may, and reads every trace.
    Admin,
}

/// `[serve.auth]`: the API keys the service accepts.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A TOML file of `[[keys]]` entries (the shape of `keys` here), read at start-up; relative
    /// to the working directory.
    pub keys_file: Option<PathBuf>,
    /// Keys declared in the configuration itself.
    pub keys: Vec<KeyConfig>,
    /// Serve on a non-loopback address without any key. Off: such a service refuses to start.
    pub allow_unauthenticated: bool,
}

/// One API key: `[[serve.auth.keys]]` or `[[keys]]` in the keys file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The principal's user id: `user.id` on its spans, the owner of its sessions and traces.
    pub user: String,
    /// What it may do; `["user"]` when absent.
    #[serde(default = "default_roles")]
    pub roles: Vec<Role>,
    /// The key's SHA-256 digest as 64 hex digits (what `sextant keys new` prints).
    #[serde(default)]
    pub sha256: Option<String>,
    /// Or: the environment variable holding the key itself (hashed at start-up).
    #[serde(default)]
    pub key_env: Option<String>,
}

fn default_roles() -> Vec<Role> {
    vec![Role::User]
}

/// The keys file: `[[keys]]` entries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyConfig>,
}

/// Who a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user id.
    pub user: String,
    /// Its roles.
    pub roles: BTreeSet<Role>,
}

impl Principal {
    /// Whether it reads every trace.
    pub fn is_admin(&self) -> bool {
        self.roles.contains(&Role::Admin)
    }

    /// Whether it may act for end users it names.
    pub fn acts_for_others(&self) -> bool {
        self.roles.contains(&Role::Service) || self.is_admin()
    }
}

/// The caller of a request, as the authentication middleware found it; a request extension.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The key's principal; `None` when the service runs without keys.
    pub principal: Option<Arc<Principal>>,
}

/// Why `[serve.auth]` cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("[serve.auth] {place}: {message}")]
pub struct AuthConfigError {
    /// The entry at fault (`keys[2]`, `keys_file keys.toml`).
    pub place: String,
    /// What is wrong with it (never a key or a digest).
    pub message: String,
}

/// The accepted keys, as digests.
#[derive(Default)]
pub struct Keys {
    entries: Vec<([u8; 32], Arc<Principal>)>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("count", &self.entries.len())
            .finish()
    }
}

/// The SHA-256 digest of `key`.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.trim().as_bytes()).into()
}

/// A new random API key (`sk-sextant-` and 43 URL-safe characters, 256 bits) and its digest as
/// hex, for `sextant keys new`.
pub fn new_key() -> (String, String) {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!(
        "sk-sextant-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let digest = hex::encode(digest(&key));
    (key, digest)
}

/// A user id as principals, sessions and spans carry it: 1–128 of letters, digits and `- _ . : @`.
pub fn valid_user_id(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= 128
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'))
}

impl Keys {
    /// The keys `config` declares (inline, then the keys file), each checked; `read_env` reads
    /// the variables `key_env` names.
    pub fn load(
        config: &AuthConfig,
        read_env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, AuthConfigError> {
        let mut declared: Vec<(String, KeyConfig)> = config
            .keys
            .iter()
            .enumerate()
            .map(|(i, key)| (format!("keys[{i}]"), key.clone()))
            .collect();
        if let Some(file) = &config.keys_file {
            let from_file = read_keys_file(file)?;
            if from_file.is_empty() {
                return Err(AuthConfigError {
                    place: format!("keys_file {}", file.display()),
                    message: "declares no [[keys]]; add one with `sextant keys new --file`".into(),
                });
            }
            declared.extend(from_file);
        }
        let mut keys = Keys::default();
        for (place, key) in declared {
            let error = |message: String| AuthConfigError {
                place: place.clone(),
                message,
            };
            if !valid_user_id(&key.user) {
                return Err(error(format!(
                    "user `{}` must be 1-128 letters, digits or - _ . : @",
                    key.user.escape_debug()
                )));
            }
            let digest = match (&key.sha256, &key.key_env) {
                (Some(hex_digest), None) => hex::decode(hex_digest.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        error("sha256 must be 64 hex digits (a SHA-256 digest)".into())
                    })?,
                (None, Some(name)) => {
                    let key = read_env(name)
                        .filter(|k| !k.trim().is_empty())
                        .ok_or_else(|| {
                            error(format!(
                                "key_env names {name}, which is not set; set it to the key"
                            ))
                        })?;
                    if key.trim().len() < 16 {
                        return Err(error(format!(
                            "the key in {name} is shorter than 16 characters; use `sextant keys new`"
                        )));
                    }
                    digest(&key)
                }
                _ => return Err(error("give exactly one of sha256 and key_env".into())),
            };
            if keys.entries.iter().any(|(d, _)| *d == digest) {
                return Err(error("the same key is declared twice".into()));
            }
            let roles: BTreeSet<Role> = key.roles.iter().copied().collect();
            if roles.is_empty() {
                return Err(error("roles is empty; give at least \"user\"".into()));
            }
            keys.entries.push((
                digest,
                Arc::new(Principal {
                    user: key.user,
                    roles,
                }),
            ));
        }
        Ok(keys)
    }

    /// Whether any key is configured (the service then requires one on `/v1`).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The principal of `presented`: compared with every digest, in constant time.
    pub fn authenticate(&self, presented: &str) -> Option<Arc<Principal>> {
        let presented = digest(presented);
        let mut found = None;
        for (digest, principal) in &self.entries {
            if bool::from(digest.ct_eq(&presented)) {
                found = Some(principal.clone());
            }
        }
        found
    }
}

fn read_keys_file(file: &Path) -> Result<Vec<(String, KeyConfig)>, AuthConfigError> {
    let place = format!("keys_file {}", file.display());
    let text = std::fs::read_to_string(file).map_err(|error| AuthConfigError {
        place: place.clone(),
        message: format!("cannot be read: {error}"),
    })?;
    let parsed: KeysFile = toml::from_str(&text).map_err(|error| AuthConfigError {
        place: place.clone(),
        message: error.message().to_owned(),
    })?;
    Ok(parsed
        .keys
        .into_iter()
        .enumerate()
        .map(|(i, key)| (format!("{place} keys[{i}]"), key))
        .collect())
}

/// `/v1` requests: with keys configured, `Authorization: Bearer <key>` must name one (401
/// otherwise); without, the `Host` must be an allowed one (403 otherwise: a page on another site
/// that rebinds its name to 127.0.0.1 sends its own host). The caller goes on as a [`Caller`]
/// extension.
pub(crate) async fn authenticate(
    State(state): State<Arc<ServiceState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = if state.keys.is_empty() {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| request.uri().authority().map(|a| a.as_str()))
            .unwrap_or_default();
        if !host_matches(host, &state.settings.allowed_hosts) {
            return ApiError::host_not_allowed().into_response();
        }
        Caller::default()
    } else {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .unwrap_or_default();
        match state.keys.authenticate(presented) {
            Some(principal) if !presented.is_empty() => Caller {
                principal: Some(principal),
            },
            _ => return ApiError::unauthorized().into_response(),
        }
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// Whether `host` (a `Host` header: name or address, optionally with a port) is one of
/// `allowed` (names without ports; `*` allows any).
pub(crate) fn host_matches(host: &str, allowed: &[String]) -> bool {
    let name = match host.strip_prefix('[') {
        // [::1]:8080
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    allowed
        .iter()
        .any(|a| a == "*" || a.trim_matches(['[', ']']).eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(user: &str, roles: &[Role], sha256: Option<String>, key_env: Option<&str>) -> KeyConfig {
        KeyConfig {
            user: user.into(),
            roles: roles.to_vec(),
            sha256,
            key_env: key_env.map(str::to_owned),
        }
    }

    #[test]
    fn keys_authenticate_by_digest_and_bad_entries_are_named() {
        let (ada_key, ada_digest) = new_key();
        assert!(ada_key.starts_with("sk-sextant-") && ada_key.len() == 11 + 43);
        let config = AuthConfig {
            keys: vec![
                key("ada", &[Role::User], Some(ada_digest), None),
                key("ops", &[Role::Admin], None, Some("OPS_KEY")),
            ],
            ..AuthConfig::default()
        };
        let keys = Keys::load(&config, |name| {
            (name == "OPS_KEY").then(|| "ops-key-0123456789abcdef".to_owned())
        })
        .unwrap();
        assert_eq!(keys.authenticate(&ada_key).unwrap().user, "ada");
        let ops = keys.authenticate("ops-key-0123456789abcdef").unwrap();
        assert!(ops.is_admin() && ops.acts_for_others());
        assert!(keys.authenticate("ops-key-0123456789abcdeX").is_none());
        assert!(keys.authenticate("").is_none());
        assert!(!format!("{keys:?}").contains(&ada_key));

        let unset = AuthConfig {
            keys: vec![key("ops", &[Role::Admin], None, Some("UNSET"))],
            ..AuthConfig::default()
        };
        let error = Keys::load(&unset, |_| None).unwrap_err();
        assert_eq!(error.place, "keys[0]");
        assert!(error.message.contains("UNSET"), "{error}");

        let bad_digest = AuthConfig {
            keys: vec![key("ada", &[], Some("abc".into()), None)],
            ..AuthConfig::default()
        };
        assert!(
            Keys::load(&bad_digest, |_| None)
                .unwrap_err()
                .message
                .contains("64 hex digits")
        );
        let bad_user = AuthConfig {
            keys: vec![key("a/b", &[Role::User], Some("00".repeat(32)), None)],
            ..AuthConfig::default()
        };
        assert!(Keys::load(&bad_user, |_| None).is_err());
    }

    #[test]
    fn a_keys_file_is_read_and_its_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys.toml");
        let (key, digest) = new_key();
        std::fs::write(
            &file,
            format!("[[keys]]\nuser = \"svc\"\nroles = [\"service\"]\nsha256 = \"{digest}\"\n"),
        )
        .unwrap();
        let config = AuthConfig {
            keys_file: Some(file.clone()),
            ..AuthConfig::default()
        };
        let keys = Keys::load(&config, |_| None).unwrap();
        let svc = keys.authenticate(&key).unwrap();
        assert!(svc.acts_for_others() && !svc.is_admin());

        std::fs::write(&file, "[[keys]]\nuser = \"svc\"\nrole = \"x\"\n").unwrap();
        let error = Keys::load(&config, |_| None).unwrap_err();
        assert!(error.place.contains("keys.toml"), "{error}");
    }

    #[test]
    fn hosts_match_by_name_with_or_without_a_port() {
        let allowed = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        assert!(host_matches("localhost:8080", &allowed));
        assert!(host_matches("127.0.0.1", &allowed));
        assert!(host_matches("[::1]:8080", &allowed));
        assert!(!host_matches("evil.example:8080", &allowed));
        assert!(!host_matches("localhost.evil.example", &allowed));
        assert!(!host_matches("", &allowed));
    }
}
