//! The MLflow tracking server's REST API as the Python client calls it: JSON over HTTP, errors as
//! `{"error_code": …, "message": …}`, credentials from `MLFLOW_TRACKING_TOKEN` (bearer) or the
//! URI's user info (basic). Nothing outside this module sees a request or a credential.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::retry::Backoff;

/// Reads are idempotent: one quick retry rides out a dropped connection.
const READ_RETRY: Backoff =
    Backoff::new(Duration::from_millis(200), Duration::from_millis(200)).with_max_retries(1);

/// How long a call about a trace waits for the trace to arrive: 100 ms doubling, 6.3 s in all.
const TRACE_ARRIVAL_RETRY: Backoff =
    Backoff::new(Duration::from_millis(100), Duration::from_millis(3200)).with_max_retries(6);

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
        let mut base = url::Url::parse(uri.trim()).map_err(|error| {
            format!(
                "`{}` is not a URL: {error}",
                crate::conventions::shown_url(uri, crate::conventions::UrlParts::Location)
            )
        })?;
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
        READ_RETRY
            .retry(
                move || self.call(Method::GET, path, query, None::<&()>),
                |error| matches!(error, MlflowError::Unavailable { .. }),
                |error, wait| tracing::debug!("retrying an MLflow read in {wait:?}: {error}"),
            )
            .await
    }

    /// Every item of a paged search: asks page after page, following `next_page_token`, until
    /// the last page or the search's limit.
    pub(crate) async fn search_all<T: DeserializeOwned>(
        &self,
        search: PagedSearch<'_>,
    ) -> Result<Vec<T>, MlflowError> {
        let mut found = Vec::new();
        let mut page_token: Option<String> = None;
        while found.len() < search.limit {
            let max_results = search.page_size.min(search.limit - found.len());
            let mut page: serde_json::Value = match &search.params {
                SearchParams::Query(query) => {
                    let mut query = query.clone();
                    query.push(("max_results", max_results.to_string()));
                    query.extend(page_token.take().map(|token| ("page_token", token)));
                    self.get(search.path, &query).await?
                }
                SearchParams::Body(body) => {
                    let mut body = body.clone();
                    body["max_results"] = max_results.into();
                    if let Some(token) = page_token.take() {
                        body["page_token"] = token.into();
                    }
                    self.post(search.path, &body).await?
                }
            };
            // MLflow leaves an empty list out of its answer.
            let items = match page.get_mut(search.items).map(serde_json::Value::take) {
                Some(items) if !items.is_null() => items,
                _ => serde_json::Value::Array(Vec::new()),
            };
            let items: Vec<T> =
                serde_json::from_value(items).map_err(|error| MlflowError::Decode {
                    endpoint: search.path.to_owned(),
                    message: format!("`{}`: {error}", search.items),
                })?;
            found.extend(items);
            match page["next_page_token"].as_str().filter(|t| !t.is_empty()) {
                Some(token) => page_token = Some(token.to_owned()),
                None => break,
            }
        }
        found.truncate(search.limit);
        Ok(found)
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
        TRACE_ARRIVAL_RETRY
            .retry(
                move || self.post(path, body),
                MlflowError::is_not_found,
                |_, wait| {
                    tracing::debug!("MLflow does not know the trace yet; asking again in {wait:?}")
                },
            )
            .await
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
        let mut request = self
            .http
            .request(method, url.clone())
            .query(query)
            .headers(sextant_trace_context::outgoing_headers(url.as_str()));
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

/// A paged MLflow search for [`MlflowClient::search_all`]: the endpoint, its parameters, the
/// answer's list (`runs`, `model_versions` …) and how many items to ask for.
pub(crate) struct PagedSearch<'a> {
    path: &'a str,
    items: &'a str,
    params: SearchParams<'a>,
    page_size: usize,
    limit: usize,
}

/// Where a search's parameters go: MLflow's GET searches take them in the query string, its POST
/// searches in the JSON body.
enum SearchParams<'a> {
    Query(Vec<(&'a str, String)>),
    Body(serde_json::Value),
}

impl<'a> PagedSearch<'a> {
    /// `GET path?query`, pages of `page_size`, the items under `items`.
    pub(crate) fn get(
        path: &'a str,
        items: &'a str,
        query: Vec<(&'a str, String)>,
        page_size: usize,
    ) -> Self {
        Self::new(path, items, SearchParams::Query(query), page_size)
    }

    /// `POST path` with `body`, pages of `page_size`, the items under `items`.
    pub(crate) fn post(
        path: &'a str,
        items: &'a str,
        body: serde_json::Value,
        page_size: usize,
    ) -> Self {
        Self::new(path, items, SearchParams::Body(body), page_size)
    }

    fn new(path: &'a str, items: &'a str, params: SearchParams<'a>, page_size: usize) -> Self {
        Self {
            path,
            items,
            params,
            page_size,
            limit: usize::MAX,
        }
    }

    /// At most `limit` items in all.
    pub(crate) fn limit(self, limit: usize) -> Self {
        Self { limit, ..self }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A stand-in for MLflow on 127.0.0.1 that answers each request with the next of `pages` and
    /// returns the requests it saw (request line and body) once all were answered.
    async fn serve_pages(pages: Vec<Value>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            for page in pages {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let read = socket.read(&mut buffer).await.unwrap();
                    request.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&request).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0usize);
                        if body.len() >= length || read == 0 {
                            seen.push(format!("{} {body}", head.lines().next().unwrap()));
                            break;
                        }
                    }
                }
                let body = page.to_string();
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(answer.as_bytes()).await.unwrap();
            }
            seen
        });
        (url, server)
    }

    #[tokio::test]
    async fn a_get_search_follows_page_tokens_to_the_last_page() {
        let (url, server) = serve_pages(vec![
            json!({ "model_versions": [{ "v": 1 }, { "v": 2 }], "next_page_token": "p2" }),
            json!({ "model_versions": [{ "v": 3 }], "next_page_token": "" }),
        ])
        .await;
        let client = MlflowClient::new(&url, None, Duration::from_secs(5)).unwrap();
        let search = PagedSearch::get(
            "api/2.0/mlflow/model-versions/search",
            "model_versions",
            vec![("filter", "name = 'a'".to_owned())],
            2,
        );
        let found: Vec<Value> = client.search_all(search).await.unwrap();
        assert_eq!(
            found,
            [json!({ "v": 1 }), json!({ "v": 2 }), json!({ "v": 3 })]
        );
        let seen = server.await.unwrap();
        assert!(
            seen[0].starts_with(
                "GET /api/2.0/mlflow/model-versions/search?filter=name+%3D+%27a%27&max_results=2 "
            ),
            "{}",
            seen[0]
        );
        assert!(
            seen[1].contains("&max_results=2&page_token=p2 "),
            "{}",
            seen[1]
        );
    }

    #[tokio::test]
    async fn a_post_search_stops_at_its_limit_and_reads_a_missing_list_as_empty() {
        let (url, server) = serve_pages(vec![
            json!({ "runs": [1, 2, 3], "next_page_token": "p2" }),
            json!({ "next_page_token": "p3" }),
            json!({ "runs": [4, 5, 6], "next_page_token": "p4" }),
        ])
        .await;
        let client = MlflowClient::new(&url, None, Duration::from_secs(5)).unwrap();
        let search = PagedSearch::post(
            "api/2.0/mlflow/runs/search",
            "runs",
            json!({ "filter": "" }),
            3,
        )
        .limit(5);
        let found: Vec<u32> = client.search_all(search).await.unwrap();
        assert_eq!(found, [1, 2, 3, 4, 5]);
        let bodies: Vec<Value> = server
            .await
            .unwrap()
            .iter()
            .map(|request| {
                serde_json::from_str(request.split_once(" HTTP/1.1 ").unwrap().1).unwrap()
            })
            .collect();
        assert_eq!(bodies[0], json!({ "filter": "", "max_results": 3 }));
        assert_eq!(
            bodies[1],
            json!({ "filter": "", "max_results": 2, "page_token": "p2" })
        );
        assert_eq!(
            bodies[2],
            json!({ "filter": "", "max_results": 2, "page_token": "p3" })
        );
    }
}
