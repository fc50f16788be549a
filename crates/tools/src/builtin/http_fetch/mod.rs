//! `http_fetch`: GETs a web page and returns it as readable text.
//!
//! Bounded in time (`timeout_secs`, redirects included) and size (`max_bytes` of body read), and
//! guarded against server-side request forgery: loopback, private, link-local, shared and cloud
//! metadata addresses are refused, whether the URL names them, a redirect leads to them, or a host
//! name resolves to them — unless `allow_private_networks` or `allowed_hosts` says otherwise.

mod guard;
mod html_text;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::config::{HttpFetchConfig, ToolConfigError, seconds};
use crate::{Tool, ToolError, http};
pub(crate) use guard::AddressRefused;
use guard::{AddressPolicy, GuardedResolver};
use sextant_conventions as sc;

/// The `http_fetch` tool.
#[derive(Debug, Clone)]
pub struct HttpFetch {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
    timeout: Duration,
    max_bytes: usize,
    max_redirects: usize,
}

#[derive(Deserialize, JsonSchema)]
struct HttpFetchArguments {
    /// The http or https URL of the page.
    #[schemars(length(min = 1, max = 2048))]
    url: String,
}

impl HttpFetch {
    /// From `[tools.http_fetch]`.
    pub fn from_config(config: &HttpFetchConfig) -> Result<Self, ToolConfigError> {
        let policy = Arc::new(AddressPolicy {
            allow_private: config.allow_private_networks,
            allowed_hosts: config.allowed_hosts.clone(),
        });
        let timeout = seconds(config.timeout_secs);
        let client = reqwest::Client::builder()
            .user_agent(http::USER_AGENT)
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            // A proxy would resolve names itself, past the guard.
            .no_proxy()
            // Each hop is checked before it is followed.
            .redirect(reqwest::redirect::Policy::none())
            // No client timeout: `call` bounds the whole fetch, redirects included.
            .build()
            .map_err(|e| {
                ToolConfigError::new(
                    "tools.http_fetch",
                    format!("cannot set up the HTTP client: {e}"),
                )
            })?;
        Ok(Self {
            client,
            policy,
            timeout,
            max_bytes: config.max_bytes,
            max_redirects: config.max_redirects,
        })
    }

    async fn fetch(&self, start: url::Url) -> Result<String, ToolError> {
        let mut url = start;
        for _ in 0..=self.max_redirects {
            self.policy.check_url(&url)?;
            let request = self
                .client
                .get(url.clone())
                .header(
                    reqwest::header::ACCEPT,
                    "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.8,*/*;q=0.1",
                )
                .build()
                .map_err(|e| {
                    ToolError::InvalidArguments(format!(
                        "cannot request {}: {}",
                        location(&url),
                        e.without_url()
                    ))
                })?;
            let response = http::send(&self.client, request, &host_of(&url), false).await?;
            if response.status().is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| {
                        ToolError::Upstream(format!(
                            "{} answered {} without a Location to follow",
                            host_of(&url),
                            response.status()
                        ))
                    })?;
                url = url.join(location).map_err(|e| {
                    ToolError::Upstream(format!(
                        "{} redirected to an invalid URL ({e})",
                        host_of(&url)
                    ))
                })?;
                continue;
            }
            return self.read(url, response).await;
        }
        Err(ToolError::Failed(format!(
            "stopped after {} redirects; the page keeps redirecting",
            self.max_redirects
        )))
    }

    async fn read(&self, url: url::Url, response: reqwest::Response) -> Result<String, ToolError> {
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("text/html")
            .to_ascii_lowercase();
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let is_html = mime == "text/html" || mime == "application/xhtml+xml";
        let is_text = is_html
            || mime.starts_with("text/")
            || mime == "application/json"
            || mime.ends_with("+json")
            || mime == "application/xml"
            || mime.ends_with("+xml");
        if !is_text {
            return Err(ToolError::Failed(format!(
                "{} is {mime}, not a page; http_fetch reads HTML and text",
                location(&url)
            )));
        }
        let (body, truncated) =
            http::read_limited(response, self.max_bytes, &host_of(&url)).await?;
        let mut text = format!("URL: {url}\n");
        if is_html {
            let page = html_text::html_to_text(&body);
            if let Some(title) = page.title {
                text = format!("Title: {title}\n{text}");
            }
            text.push('\n');
            text.push_str(&page.text);
        } else {
            text.push('\n');
            text.push_str(body.trim());
        }
        if truncated {
            text.push_str(&format!(
                "\n\n[page cut: only the first {} bytes were read]",
                self.max_bytes
            ));
        }
        Ok(text)
    }
}

fn host_of(url: &url::Url) -> String {
    url.host_str().unwrap_or("the server").to_owned()
}

/// How errors name a fetched URL: they become span status whatever the content switch says, and a
/// query can hold the user's words or a key.
fn location(url: &url::Url) -> String {
    sc::shown_url(url.as_str(), sc::UrlParts::Location)
}

#[async_trait]
impl Tool for HttpFetch {
    fn name(&self) -> &str {
        "http_fetch"
    }

    fn description(&self) -> &str {
        "Fetches a web page by URL and returns its readable text. Use it to read a page found by \
         web_search. Only public http(s) addresses can be fetched."
    }

    // A GET of a page.
    fn idempotent(&self) -> bool {
        true
    }

    fn parameters(&self) -> serde_json::Value {
        crate::fn_tool::schema_of::<HttpFetchArguments>()
    }

    async fn call(&self, arguments: serde_json::Value) -> Result<String, ToolError> {
        let arguments: HttpFetchArguments = serde_json::from_value(arguments)
            .map_err(|e| ToolError::InvalidArguments(e.to_string()))?;
        let url = url::Url::parse(arguments.url.trim()).map_err(|e| {
            ToolError::InvalidArguments(format!(
                "`{}` is not a URL ({e}); give a full http(s) URL",
                sc::shown_url(&arguments.url, sc::UrlParts::Location)
            ))
        })?;
        tokio::time::timeout(self.timeout, self.fetch(url))
            .await
            .map_err(|_| ToolError::Timeout(self.timeout))?
    }
}
