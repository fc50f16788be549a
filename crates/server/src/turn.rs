//! One agent turn as the service runs it, for either API: a request slot (or 429), who it is for
//! (the caller's key, or the end user a service key names), the agent (or 404), the session (kept
//! per owner, so nobody else's is ever found), a server span (continuing the caller's
//! `traceparent` only when the caller is trusted to), the turn under a timeout, and the session
//! and counters updated after it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::http::HeaderMap;
use sextant_agent::session::{Session, record_turn};
use sextant_agent::{Agent, AgentOutcome, Message, OutputSchema, TurnContext};
use sextant_tracker::conventions as sc;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;
use tracing::field::Empty;

use crate::auth::{Caller, valid_user_id};
use crate::config::TraceTrust;
use crate::error::ApiError;
use crate::server::ServiceState;

/// The headers that name a session and an end user (a body field wins over a header). With API
/// keys, only a `service` or `admin` key may name an end user other than its own.
pub const SESSION_HEADER: &str = "x-session-id";
/// See [`SESSION_HEADER`].
pub const USER_HEADER: &str = "x-user-id";

/// What a request asks for.
pub struct TurnInput {
    /// The agent's name (`model`).
    pub model: String,
    /// The user's message.
    pub question: String,
    /// The conversation before it as the client sent it; `None`: the session's stored window.
    pub history: Option<Vec<Message>>,
    /// The session to continue (created under this id if new).
    pub session_id: Option<String>,
    /// The end user the client names.
    pub user_id: Option<String>,
    /// Who is calling (the authentication middleware's finding).
    pub caller: Caller,
}

/// Who a turn is for.
struct Identity {
    /// `user.id` on the spans and the session: the end user, or the key's own user.
    user_id: Option<String>,
    /// Who owns the turn's session and trace: the key's user, `KEYUSER/ENDUSER` for an end user
    /// a service key names, or (without keys) the asserted user id; empty for nobody.
    owner: String,
}

impl Identity {
    fn of(caller: &Caller, asserted: Option<String>) -> Result<Self, ApiError> {
        let Some(principal) = &caller.principal else {
            return Ok(Self {
                owner: asserted.clone().unwrap_or_default(),
                user_id: asserted,
            });
        };
        match asserted {
            Some(user) if user != principal.user => {
                if !principal.acts_for_others() {
                    return Err(ApiError::not_permitted(format!(
                        "the key of `{}` may act only for itself, not name another user; keys with \
                         the service or admin role may",
                        principal.user
                    )));
                }
                Ok(Self {
                    owner: format!("{}/{user}", principal.user),
                    user_id: Some(user),
                })
            }
            _ => Ok(Self {
                owner: principal.user.clone(),
                user_id: Some(principal.user.clone()),
            }),
        }
    }

    /// The id a client's session is stored under: its own id within the owner's namespace (ids
    /// never hold `/`), so another owner's same id is another session.
    fn session_key(&self, id: &str) -> String {
        if self.owner.is_empty() {
            id.to_owned()
        } else {
            format!("{}/{id}", self.owner)
        }
    }
}

/// Who owns what `caller` starts outside a session (an A2A task, a workflow run): the key's user;
/// empty without keys.
pub(crate) fn key_owner(caller: &Caller) -> String {
    caller
        .principal
        .as_ref()
        .map(|p| p.user.clone())
        .unwrap_or_default()
}

/// The owner part of a trace a caller may read: theirs, and (for a service key) the end users'
/// it named. `None`: every trace (admins).
pub(crate) fn readable_owner(caller: &Caller, asserted: Option<&str>) -> Option<String> {
    match &caller.principal {
        Some(principal) if principal.is_admin() => None,
        Some(principal) => Some(principal.user.clone()),
        None => Some(asserted.unwrap_or_default().to_owned()),
    }
}

/// Whether a trace owned by `owner` is one `readable` (from [`readable_owner`]) may read.
pub(crate) fn may_read(readable: Option<&str>, owner: &str) -> bool {
    match readable {
        None => true,
        Some(mine) => {
            owner == mine
                || (!mine.is_empty()
                    && owner
                        .strip_prefix(mine)
                        .is_some_and(|rest| rest.starts_with('/')))
        }
    }
}

/// How a turn's request arrived: it names the turn's server span.
pub enum TurnEntry {
    /// An HTTP endpoint: `POST {route}`, continuing a `traceparent` header.
    Http {
        /// The route template.
        route: &'static str,
    },
    /// An MCP `tools/call` of an agent: `tools/call {agent}`, continuing `params._meta`.
    Mcp(McpEntry),
    /// An A2A JSON-RPC request: `POST /a2a/{agent}/`, continuing a `traceparent` header.
    A2a {
        /// `rpc.method`: `SendMessage` or `SendStreamingMessage`.
        method: &'static str,
        /// `jsonrpc.request.id`.
        request_id: String,
    },
}

/// What an MCP request says about itself.
pub struct McpEntry {
    /// The tool called (the agent's name).
    pub tool: String,
    /// `jsonrpc.request.id`.
    pub request_id: String,
    /// `mcp.protocol.version`.
    pub protocol_version: Option<String>,
    /// `network.transport`: `pipe` or `tcp`.
    pub transport: &'static str,
    /// `params._meta.traceparent`.
    pub traceparent: Option<String>,
    /// `params._meta.tracestate`.
    pub tracestate: Option<String>,
    /// Whether the transport itself vouches for the caller (stdio: it started this process), so
    /// its trace context is continued whatever `trust_incoming_trace_context` says.
    pub trusted: bool,
}

impl TurnEntry {
    /// The turn's server span.
    fn span(
        &self,
        agent: &str,
        session: Option<&str>,
        user_id: Option<&str>,
        owner: &str,
    ) -> tracing::Span {
        match self {
            TurnEntry::Http { route } => tracing::info_span!(
                "http_request",
                otel.name = %format!("POST {route}"),
                otel.kind = "server",
                otel.status_code = Empty,
                otel.status_description = Empty,
                { sc::HTTP_REQUEST_METHOD } = "POST",
                { sc::HTTP_ROUTE } = *route,
                { sc::HTTP_RESPONSE_STATUS_CODE } = Empty,
                { sc::GEN_AI_AGENT_NAME } = %agent,
                { sc::GEN_AI_CONVERSATION_ID } = session,
                { sc::SESSION_ID } = session,
                { sc::USER_ID } = user_id,
                { sc::SEXTANT_OWNER } = owner,
                { sc::SEXTANT_CALLER_TRACEPARENT } = Empty,
                { sc::ERROR_TYPE } = Empty,
            ),
            TurnEntry::A2a { method, request_id } => tracing::info_span!(
                "a2a_request",
                otel.name = "POST /a2a/{agent}/",
                otel.kind = "server",
                otel.status_code = Empty,
                otel.status_description = Empty,
                { sc::HTTP_REQUEST_METHOD } = "POST",
                { sc::HTTP_ROUTE } = "/a2a/{agent}/",
                { sc::HTTP_RESPONSE_STATUS_CODE } = Empty,
                { sc::RPC_SYSTEM_NAME } = "jsonrpc",
                { sc::RPC_METHOD } = *method,
                { sc::JSONRPC_REQUEST_ID } = %request_id,
                { sc::GEN_AI_AGENT_NAME } = %agent,
                { sc::GEN_AI_CONVERSATION_ID } = session,
                { sc::SESSION_ID } = session,
                { sc::USER_ID } = user_id,
                { sc::SEXTANT_OWNER } = owner,
                { sc::SEXTANT_CALLER_TRACEPARENT } = Empty,
                { sc::ERROR_TYPE } = Empty,
            ),
            TurnEntry::Mcp(mcp) => tracing::info_span!(
                "mcp_request",
                otel.name = %format!("{} {}", sc::mcp::TOOLS_CALL, mcp.tool),
                otel.kind = "server",
                otel.status_code = Empty,
                otel.status_description = Empty,
                { sc::MCP_METHOD_NAME } = sc::mcp::TOOLS_CALL,
                { sc::MCP_PROTOCOL_VERSION } = mcp.protocol_version.as_deref(),
                { sc::JSONRPC_REQUEST_ID } = %mcp.request_id,
                { sc::NETWORK_TRANSPORT } = mcp.transport,
                { sc::GEN_AI_OPERATION_NAME } = sc::operation::EXECUTE_TOOL,
                { sc::GEN_AI_TOOL_NAME } = %mcp.tool,
                { sc::GEN_AI_AGENT_NAME } = %agent,
                { sc::GEN_AI_CONVERSATION_ID } = session,
                { sc::SESSION_ID } = session,
                { sc::USER_ID } = user_id,
                { sc::SEXTANT_OWNER } = owner,
                { sc::SEXTANT_CALLER_TRACEPARENT } = Empty,
                { sc::ERROR_TYPE } = Empty,
            ),
        }
    }
}

/// A turn ready to run: its slot, agent, session and span.
pub struct Turn {
    /// The agent answering.
    pub agent: Arc<Agent>,
    /// The registry version of the agent, when it came from `models:/`.
    pub agent_version: Option<String>,
    /// The request's server span (the caller's trace continues through it).
    pub span: tracing::Span,
    /// The trace id of the turn.
    pub trace_id: Option<String>,
    /// This span's `traceparent`, sent back as `traceresponse`.
    pub traceresponse: Option<String>,
    /// The session, when one is named (stored under the owner's namespace).
    pub session: Option<Session>,
    /// The session id as the client named it.
    pub session_id: Option<String>,
    history: Vec<Message>,
    question: String,
    context: TurnContext,
    _permit: OwnedSemaphorePermit,
}

/// A header's value, trimmed; `None` when absent, empty or not text.
pub(crate) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn check_id(value: &str, what: &'static str) -> Result<(), ApiError> {
    if valid_user_id(value) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            Some(what),
            format!("`{what}` must be at most 128 characters of letters, digits and - _ . : @"),
        ))
    }
}

impl ServiceState {
    /// Takes a request slot and prepares the turn `input` asks for.
    pub async fn prepare_turn(
        &self,
        entry: TurnEntry,
        headers: &HeaderMap,
        mut input: TurnInput,
    ) -> Result<Turn, ApiError> {
        let permit = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::too_many_requests(self.settings.max_concurrent_requests))?;
        if self.draining.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable("the service is shutting down"));
        }
        input.session_id = input.session_id.or_else(|| header(headers, SESSION_HEADER));
        input.user_id = input.user_id.or_else(|| header(headers, USER_HEADER));
        if let Some(id) = &input.session_id {
            check_id(id, "session_id")?;
        }
        if let Some(id) = &input.user_id {
            check_id(id, "user")?;
        }
        let identity = Identity::of(&input.caller, input.user_id.take())?;
        let (agent, agent_version) = self.agents.get(&input.model).await?;

        let session = match &input.session_id {
            Some(id) => {
                let key = identity.session_key(id);
                let session = self
                    .sessions
                    .get_or_create(&key, agent.name(), identity.user_id.as_deref())
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                Some(session)
            }
            None => None,
        };
        let user_id = identity.user_id.clone();
        let mut session = session;
        let history = match (input.history, &mut session) {
            // A client that sends the conversation is followed; a thin one gets the stored window.
            (Some(history), _) if !history.is_empty() => history,
            (_, Some(session)) => sextant_agent::session::session_history(
                &self.sessions,
                session,
                &agent,
                &self.config().sessions,
            )
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?,
            (history, None) => history.unwrap_or_default(),
        };

        let span = entry.span(
            agent.name(),
            session.as_ref().map(|s| s.id.as_str()),
            user_id.as_deref(),
            &identity.owner,
        );
        let (traceparent, tracestate, transport_trusted) = match &entry {
            TurnEntry::Http { .. } | TurnEntry::A2a { .. } => (
                header(headers, "traceparent"),
                header(headers, "tracestate"),
                false,
            ),
            TurnEntry::Mcp(mcp) => (mcp.traceparent.clone(), mcp.tracestate.clone(), mcp.trusted),
        };
        self.follow_caller_trace(
            &span,
            traceparent,
            tracestate,
            transport_trusted,
            &input.caller,
        );
        let trace_id = sextant_tracker::current_trace_id(&span);
        let traceresponse = sextant_tracker::traceparent_of(&span);
        Ok(Turn {
            agent,
            agent_version,
            span,
            trace_id,
            traceresponse,
            context: TurnContext {
                conversation_id: session.as_ref().map(|s| s.id.clone()),
                user_id,
                owner: Some(identity.owner),
                session_usage: session.as_ref().map(|s| s.usage()).unwrap_or_default(),
                ..TurnContext::default()
            },
            session,
            session_id: input.session_id,
            history,
            question: input.question,
            _permit: permit,
        })
    }
}

impl ServiceState {
    /// Makes `span` continue the caller's trace when the caller is trusted to
    /// (`trust_incoming_trace_context`, or a transport that vouches for it), else links to it and
    /// records its `traceparent`. Call it before the span is entered.
    pub(crate) fn follow_caller_trace(
        &self,
        span: &tracing::Span,
        traceparent: Option<String>,
        tracestate: Option<String>,
        transport_trusted: bool,
        caller: &Caller,
    ) {
        if let Some(traceparent) = traceparent {
            let trusted = transport_trusted
                || match self.settings.trust_incoming_trace_context {
                    TraceTrust::Never => false,
                    TraceTrust::All => true,
                    TraceTrust::Services => caller
                        .principal
                        .as_ref()
                        .is_some_and(|p| p.acts_for_others()),
                };
            // An invalid header starts a new trace, as W3C Trace Context asks.
            let followed = if trusted {
                sextant_tracker::continue_trace(span, &traceparent, tracestate.as_deref())
            } else {
                sextant_tracker::link_trace(span, &traceparent, tracestate.as_deref()).map(|()| {
                    span.record(sc::SEXTANT_CALLER_TRACEPARENT, traceparent.as_str());
                })
            };
            if let Err(error) = followed {
                tracing::debug!("ignoring the request's traceparent: {error}");
            }
        }
    }
}

impl Turn {
    /// Asks for the answer as a value of `format` (a request's OpenAI `response_format`), when it
    /// names a schema and the agent takes one from requests (`[output] allow_request_schema`).
    pub fn with_response_format(&mut self, format: &serde_json::Value) -> Result<(), ApiError> {
        let schema = OutputSchema::from_response_format(format)
            .map_err(|error| ApiError::invalid(Some("response_format"), error.to_string()))?;
        let Some(schema) = schema else {
            return Ok(());
        };
        schema
            .check_request_limits()
            .map_err(|message| ApiError::invalid(Some("response_format"), message))?;
        if !self.agent.allows_request_schema() {
            return Err(ApiError::invalid(
                Some("response_format"),
                format!(
                    "agent `{}` answers in its own format and takes no `response_format` \
                     (`[output] allow_request_schema = false`)",
                    self.agent.name()
                ),
            ));
        }
        self.context.output_schema = Some(schema);
        Ok(())
    }

    /// Runs the turn (streaming pieces of the answer to `on_content`), then stores it in the
    /// session and counts it. The slot is held until the turn is dropped.
    pub async fn run(
        &mut self,
        state: &ServiceState,
        on_content: Option<&(dyn Fn(&str) + Send + Sync)>,
    ) -> Result<AgentOutcome, ApiError> {
        let started = Instant::now();
        let timeout = state.request_timeout;
        let turn = self
            .agent
            .run_turn(&self.history, &self.question, &self.context, on_content)
            .instrument(self.span.clone());
        let result = match tokio::time::timeout(timeout, turn).await {
            Err(_) => Err(ApiError::timeout(timeout.as_secs_f64())),
            Ok(Err(error)) => Err(ApiError::turn_failed(&error)),
            Ok(Ok(outcome)) => Ok(outcome),
        };
        let latency = started.elapsed();
        state.counters.record_turn(latency, result.as_ref().ok());
        match &result {
            Ok(outcome) => {
                self.finish(200, None);
                if let Some(finished) = crate::monitors::FinishedTurn::of(
                    self.agent.name(),
                    &self.question,
                    outcome,
                    latency,
                ) {
                    state.monitors.submit(finished);
                }
                if let Some(session) = &mut self.session {
                    // The answer is given either way; a store failure is the service's problem.
                    match record_turn(&state.sessions, &session.id, &self.question, outcome).await {
                        Ok(Some(turn)) => session.turns.push(turn),
                        Ok(None) => {}
                        Err(error) => tracing::error!(
                            "storing a turn of session {} failed: {error}",
                            session.id
                        ),
                    }
                }
            }
            Err(error) => self.finish(error.status.as_u16(), Some(error)),
        }
        result
    }

    /// Records the response status on the server span.
    pub fn finish(&self, status: u16, error: Option<&ApiError>) {
        self.span
            .record(sc::HTTP_RESPONSE_STATUS_CODE, i64::from(status));
        if let Some(error) = error
            && status >= 500
        {
            sextant_tracker::mark_failed(&self.span, error.code, &error.message);
        }
    }
}
