//! The MLflow tracking server's REST API as the Python client calls it: JSON over HTTP, errors as
//! `{"error_code": …, "message": …}`, credentials from `MLFLOW_TRACKING_TOKEN` (bearer) or the
//! URI's user info (basic). Nothing outside this module sees a request or a credential.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How a call to the server failed.
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    /// The server could not be reached, timed out, or answered with a 5xx: an outage.
    #[error("MLflow at {url} is unavailable: {message}")]
    Unavailable {
        /// The endpoint (without credentials).
        url: String,
        /// What happened.
        message: String,
    },
    /// The server refused the call (4xx), with MLflow's error code.
    #[error("MLflow refused {endpoint}: {error_code}: {message}")]
    Api {
        /// The endpoint path.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// MLflow's error code, e.g. `RESOURCE_DOES_NOT_EXIST`.
        error_code: String,
        /// MLflow's message.
        message: String,
    },
    /// The answer is not the JSON this client expects.
    #[error("MLflow answered {endpoint} with something this client cannot read: {message}")]
    Decode {
        /// The endpoint path.
        endpoint: String,
        /// What is wrong.
        message: String,
    },
}

impl MlflowError {
    /// MLflow's error code, for a refused call.
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Self::Api { error_code, .. } => Some(error_code),
            _ => None,
        }
    }

    /// Whether the server said the thing does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 404, .. })
            || self.error_code() == Some("RESOURCE_DOES_NOT_EXIST")
    }
}

/// How a registered-model call (prompts and models alike) failed, in the terms both registries
/// report: MLflow's codes and its alias endpoint's quirk are read here once.
pub(crate) enum RegistryFailure {
    /// The server is unreachable or failing.
    Unavailable { url: String, message: String },
    /// The thing does not exist.
    NotFound,
    /// The server refused the call as invalid or as a name already taken.
    Refused { message: String },
    /// Anything else.
    Other(MlflowError),
}

impl MlflowError {
    /// This failure as a registry reports it.
    pub(crate) fn into_registry_failure(self) -> RegistryFailure {
        match self {
            Self::Unavailable { url, message } => RegistryFailure::Unavailable { url, message },
            error if error.is_not_found() => RegistryFailure::NotFound,
            // The alias endpoint answers a missing alias with 400 "... alias X not found.".
            Self::Api {
                ref error_code,
                ref message,
                ..
            } if error_code == "INVALID_PARAMETER_VALUE" && message.contains("not found") => {
                RegistryFailure::NotFound
            }
            Self::Api {
                error_code,
                message,
                ..
            } if error_code == "INVALID_PARAMETER_VALUE"
                || error_code == "RESOURCE_ALREADY_EXISTS" =>
            {
                RegistryFailure::Refused { message }
            }
            error => RegistryFailure::Other(error),
        }
    }
}

enum Credentials {
    Bearer(String),
    Basic { user: String, password: String },
}

/// A client of one MLflow tracking server.
pub struct MlflowClient {
    base: url::Url,
    http: reqwest::Client,
    credentials: Option<Credentials>,
}

impl std::fmt::Debug for MlflowClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials stay out of logs.
        f.debug_struct("MlflowClient")
            .field("base", &self.base.as_str())
            .field("authenticated", &self.credentials.is_some())
            .finish()
    }
}

impl MlflowClient {
    /// A client of the server at `uri` (`http://host:5000`, optionally with `user:password@`).
    /// `token`, when given, is sent as a bearer token.
    pub fn new(uri: &str, token: Option<String>, timeout: Duration) -> Result<Self, String> {
        let mut base = url::Url::parse(uri.trim())
            .map_err(|error| format!("`{uri}` is not a URL: {error}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(format!(
                "`{}` is not an http(s) URL of an MLflow tracking server",
                base.scheme()
            ));
        }
        let basic = (!base.username().is_empty()).then(|| Credentials::Basic {
            user: base.username().to_owned(),
            password: base.password().unwrap_or_default().to_owned(),
        });
        let _ = base.set_username("");
        let _ = base.set_password(None);
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|error| format!("cannot build an HTTP client: {error}"))?;
        Ok(Self {
            base,
            http,
            credentials: token
                .filter(|t| !t.is_empty())
                .map(Credentials::Bearer)
                .or(basic),
        })
    }

    /// The server's URL, without credentials.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `GET path?query`.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, MlflowError> {
        // Reads are idempotent: one quick retry rides out a dropped connection.
        match self.call(Method::GET, path, query, None::<&()>).await {
            Err(MlflowError::Unavailable { .. }) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.call(Method::GET, path, query, None::<&()>).await
            }
            other => other,
        }
    }

    /// `POST path` with a JSON body.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, MlflowError> {
        self.call(Method::POST, path, &[], Some(body)).await
    }

    /// `POST path` with a JSON body, retried for about 6 s (100 ms, doubling) while MLflow answers
    /// not-found: for calls about a trace that arrives over OTLP, possibly a moment after its turn
    /// ended. The last error otherwise.
    pub async fn post_once_found<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, MlflowError> {
        let mut delay = std::time::Duration::from_millis(100);
        let mut attempts = 0;
        loop {
            match self.post(path, body).await {
                Err(error) if error.is_not_found() && attempts < 6 => {
                    attempts += 1;
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                result => return result,
            }
        }
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, MlflowError> {
        self.call(Method::PATCH, path, &[], Some(body)).await
    }

    /// `DELETE path` with a JSON body (MLflow's deletes take one).
    pub async fn delete<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, MlflowError> {
        self.call(Method::DELETE, path, &[], Some(body)).await
    }

    /// `PUT path` with raw bytes (artifact uploads).
    pub async fn put_bytes(&self, path: &str, contents: Vec<u8>) -> Result<(), MlflowError> {
        self.send(Method::PUT, path, &[], Payload::Bytes(contents))
            .await
            .map(|_| ())
    }

    /// `GET path?query`, the answer as raw bytes (artifact downloads).
    pub async fn get_bytes(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Vec<u8>, MlflowError> {
        self.send(Method::GET, path, query, Payload::None).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&impl Serialize>,
    ) -> Result<T, MlflowError> {
        let payload =
            match body {
                Some(body) => Payload::Json(serde_json::to_value(body).map_err(|error| {
                    MlflowError::Decode {
                        endpoint: path.to_owned(),
                        message: format!("the request does not serialize: {error}"),
                    }
                })?),
                None => Payload::None,
            };
        let bytes = self.send(method, path, query, payload).await?;
        let text = String::from_utf8_lossy(&bytes);
        let text = if text.trim().is_empty() { "{}" } else { &text };
        serde_json::from_str(text).map_err(|error| MlflowError::Decode {
            endpoint: path.to_owned(),
            message: format!("{error} in {}", truncate(text, 300)),
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        payload: Payload,
    ) -> Result<Vec<u8>, MlflowError> {
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|error| MlflowError::Decode {
                endpoint: path.to_owned(),
                message: format!("bad endpoint path: {error}"),
            })?;
        let mut request = self.http.request(method, url.clone()).query(query);
        request = match payload {
            Payload::Json(body) => request.json(&body),
            Payload::Bytes(bytes) => request
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(bytes),
            Payload::None => request,
        };
        request = match &self.credentials {
            Some(Credentials::Bearer(token)) => request.bearer_auth(token),
            Some(Credentials::Basic { user, password }) => request.basic_auth(user, Some(password)),
            None => request,
        };
        let unavailable = |message: String| MlflowError::Unavailable {
            url: url
                .as_str()
                .split('?')
                .next()
                .unwrap_or_default()
                .to_owned(),
            message,
        };
        let response = request.send().await.map_err(|error| {
            // reqwest's message can hold the URL with the query; the URL is ours, no secrets.
            unavailable(if error.is_timeout() {
                "the request timed out".into()
            } else if error.is_connect() {
                "cannot connect".into()
            } else {
                error.to_string()
            })
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| unavailable(format!("reading the answer failed: {error}")))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let text = String::from_utf8_lossy(&bytes);
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(unavailable(format!(
                "HTTP {status}: {}",
                truncate(&text, 300)
            )));
        }
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        Err(MlflowError::Api {
            endpoint: path.to_owned(),
            status: status.as_u16(),
            error_code: parsed["error_code"]
                .as_str()
                .unwrap_or("UNKNOWN")
                .to_owned(),
            message: parsed["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("HTTP {status}: {}", truncate(&text, 300))),
        })
    }
}

/// What a request carries.
enum Payload {
    None,
    Json(serde_json::Value),
    Bytes(Vec<u8>),
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}
