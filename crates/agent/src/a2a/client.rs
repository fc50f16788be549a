//! [`A2aClient`]: calls a remote agent over A2A 1.0 (JSON-RPC `SendMessage`), traced as a CLIENT
//! span whose context the request carries, so the remote agent's spans join the caller's trace
//! where `[telemetry] propagate_to` allows its host.

use std::time::Duration;

use serde_json::{Value, json};
use sextant_tracker::conventions::{self as sc, UrlParts, shown_url};
use tracing::Instrument;
use tracing::field::Empty;

use super::wire::{AgentCard, Message, Role, StreamResponse, TaskState};
use super::{CARD_PATH, PROTOCOL_VERSION, VERSION_HEADER};

/// Why a call to a remote agent failed; the message names the agent's URL (never its token).
#[derive(Debug, Clone, thiserror::Error)]
pub enum A2aError {
    /// The agent could not be reached, or answered with an HTTP error.
    #[error("the A2A agent at {url}: {message}")]
    Unavailable {
        /// The agent's base URL, without credentials or query.
        url: String,
        /// What happened.
        message: String,
    },
    /// The agent answered with a JSON-RPC error or something that is not A2A.
    #[error("the A2A agent at {url} answered: {message}")]
    Protocol {
        /// The agent's base URL.
        url: String,
        /// The error (code and message) or what was wrong with the answer.
        message: String,
    },
    /// The task ended without an answer (failed, rejected, cancelled, or waiting for input).
    #[error("the A2A agent at {url} ended the task as {state:?}: {message}")]
    TaskEnded {
        /// The agent's base URL.
        url: String,
        /// The state the task ended in.
        state: TaskState,
        /// The agent's message about it.
        message: String,
    },
}

impl A2aError {
    /// The `error.type` of this failure.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "unavailable",
            Self::Protocol { .. } => "protocol_error",
            Self::TaskEnded { .. } => "task_failed",
        }
    }
}

/// What a remote agent answered.
#[derive(Debug, Clone)]
pub struct RemoteAnswer {
    /// The answer's text.
    pub text: String,
    /// The conversation (A2A context) the answer belongs to: pass it back to continue it.
    pub context_id: Option<String>,
    /// The task, when the agent made one.
    pub task_id: Option<String>,
}

/// A remote A2A agent; see the [module docs](self).
#[derive(Clone)]
pub struct A2aClient {
    http: reqwest::Client,
    base: url::Url,
    shown: String,
    bearer: Option<String>,
}

impl A2aClient {
    /// The agent whose card is at `base_url` + `/.well-known/agent-card.json`, called with
    /// `bearer` as its token (sent only to that agent), each call limited to `timeout`.
    pub fn new(base_url: &str, bearer: Option<String>, timeout: Duration) -> Result<Self, String> {
        let mut base = url::Url::parse(base_url.trim())
            .map_err(|error| format!("`{}` is not a URL: {error}", base_url.escape_debug()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(format!(
                "`{}` is not an http(s) URL",
                shown_url(base_url, UrlParts::Location)
            ));
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("sextant/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| error.to_string())?;
        Ok(Self {
            http,
            shown: shown_url(base.as_str(), UrlParts::Location),
            base,
            bearer,
        })
    }

    /// The agent's base URL as errors show it.
    pub fn url(&self) -> &str {
        &self.shown
    }

    fn unavailable(&self, message: impl Into<String>) -> A2aError {
        A2aError::Unavailable {
            url: self.shown.clone(),
            message: message.into(),
        }
    }

    fn protocol(&self, message: impl Into<String>) -> A2aError {
        A2aError::Protocol {
            url: self.shown.clone(),
            message: message.into(),
        }
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, url)
            .header(VERSION_HEADER, PROTOCOL_VERSION)
            .headers(sextant_trace_context::outgoing_headers(url));
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        request
    }

    async fn read_json(&self, response: reqwest::Response) -> Result<Value, A2aError> {
        let status = response.status();
        if !status.is_success() {
            let hint = match status.as_u16() {
                401 | 403 => " (check the agent's token: bearer_token_env)",
                404 => " (check the URL: it is the agent's base, where its card is)",
                _ => "",
            };
            return Err(self.unavailable(format!("HTTP {status}{hint}")));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.unavailable(format!("reading the answer failed: {error}")))?;
        serde_json::from_slice(&bytes).map_err(|error| self.protocol(format!("not JSON: {error}")))
    }

    fn transport(&self, error: reqwest::Error) -> A2aError {
        self.unavailable(if error.is_timeout() {
            "the request timed out".to_owned()
        } else if error.is_connect() {
            "cannot connect".to_owned()
        } else {
            error.without_url().to_string()
        })
    }

    /// The agent's card.
    pub async fn card(&self) -> Result<AgentCard, A2aError> {
        let url = self
            .base
            .join(CARD_PATH)
            .map_err(|error| self.protocol(error.to_string()))?;
        let response = self
            .request(reqwest::Method::GET, url.as_str())
            .send()
            .await
            .map_err(|error| self.transport(error))?;
        let value = self.read_json(response).await?;
        serde_json::from_value(value)
            .map_err(|error| self.protocol(format!("the agent card is malformed: {error}")))
    }

    /// Sends `text` (in the conversation `context_id`, when continuing one) and waits for the
    /// answer, traced as a CLIENT span `SendMessage {agent}`.
    pub async fn send(
        &self,
        agent: &str,
        text: &str,
        context_id: Option<&str>,
    ) -> Result<RemoteAnswer, A2aError> {
        let span = tracing::info_span!(
            "a2a_request",
            { sc::OTEL_NAME } = %format!("SendMessage {agent}"),
            { sc::OTEL_KIND } = "client",
            { sc::OTEL_STATUS_CODE } = Empty,
            { sc::OTEL_STATUS_DESCRIPTION } = Empty,
            { sc::RPC_SYSTEM_NAME } = "jsonrpc",
            { sc::RPC_METHOD } = "SendMessage",
            { sc::JSONRPC_REQUEST_ID } = Empty,
            { sc::GEN_AI_AGENT_NAME } = agent,
            { sc::SERVER_ADDRESS } = self.base.host_str().unwrap_or_default(),
            { sc::SERVER_PORT } = self.base.port_or_known_default().map(i64::from).unwrap_or_default(),
            { sc::URL_FULL } = %self.shown,
            { sc::ERROR_TYPE } = Empty,
        );
        let result = self
            .send_in_span(text, context_id)
            .instrument(span.clone())
            .await;
        if let Err(error) = &result {
            sextant_tracker::mark_failed(&span, error.error_type(), &error.to_string());
        }
        result
    }

    async fn send_in_span(
        &self,
        text: &str,
        context_id: Option<&str>,
    ) -> Result<RemoteAnswer, A2aError> {
        let card = self.card().await?;
        let rpc_url = card.jsonrpc_url().map(str::to_owned).ok_or_else(|| {
            self.protocol("its card offers no JSON-RPC interface of A2A 1.0 (supportedInterfaces)")
        })?;
        let mut message = Message::text(Role::User, text);
        message.context_id = context_id.map(str::to_owned);
        let id = super::wire::new_id();
        tracing::Span::current().record(sc::JSONRPC_REQUEST_ID, id.as_str());
        let body = json!({
            "jsonrpc": "2.0",
            "id": id,
            "method": "SendMessage",
            "params": {"message": message, "configuration": {}},
        });
        let response = self
            .request(reqwest::Method::POST, &rpc_url)
            .json(&body)
            .send()
            .await
            .map_err(|error| self.transport(error))?;
        let value = self.read_json(response).await?;
        if let Some(error) = value.get("error") {
            return Err(self.protocol(format!(
                "error {}: {}",
                error
                    .get("code")
                    .and_then(Value::as_i64)
                    .unwrap_or_default(),
                error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)")
            )));
        }
        let result = value
            .get("result")
            .cloned()
            .ok_or_else(|| self.protocol("a JSON-RPC response without `result`"))?;
        match serde_json::from_value::<StreamResponse>(result) {
            Ok(StreamResponse::Message(message)) => Ok(RemoteAnswer {
                text: message.joined_text(),
                context_id: message.context_id,
                task_id: message.task_id,
            }),
            Ok(StreamResponse::Task(task)) => {
                if task.status.state != TaskState::Completed {
                    return Err(A2aError::TaskEnded {
                        url: self.shown.clone(),
                        state: task.status.state,
                        message: task
                            .status
                            .message
                            .as_ref()
                            .map(Message::joined_text)
                            .unwrap_or_default(),
                    });
                }
                Ok(RemoteAnswer {
                    text: task.answer(),
                    context_id: Some(task.context_id.clone()).filter(|c| !c.is_empty()),
                    task_id: Some(task.id),
                })
            }
            Ok(_) => Err(self.protocol("SendMessage returned an event, not a task or a message")),
            Err(error) => Err(self.protocol(format!("the result is malformed: {error}"))),
        }
    }
}
