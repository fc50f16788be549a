//! Multi-turn sessions: a conversation's id, user, agent and turns, kept in SQLite in the data
//! directory (`sessions.db`) so a conversation resumes across processes, and the history window
//! that decides which earlier turns the model sees.
//!
//! Every turn of a session runs with the session id as `gen_ai.conversation.id` / `session.id` and
//! the user as `user.id`, so MLflow groups its traces by session and user.
//!
//! With `[sessions] summarize = true`, turns that leave the window are not forgotten: the agent's
//! model folds them into a running summary (stored with the session), which the model sees before
//! the window's turns.

mod sqlite;

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sextant_tracker::now_ms;
use sextant_tracker::redaction::{Placeholders, Redactor};

use crate::agent::{Agent, AgentError, AgentOutcome, TurnContext};
use crate::chat::{ChatOptions, ChatRequest, Message};

pub use sqlite::SqliteSessions;

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No session has this id.
    #[error("session `{0}` does not exist (see `sextant sessions list`)")]
    NotFound(String),
    /// The session store could not be read or written.
    #[error("the session store {location} failed: {message}")]
    Store {
        /// The database (a file path, or a URL without credentials).
        location: String,
        /// What the database said.
        message: String,
    },
    /// The turn itself failed (the session is unchanged).
    #[error(transparent)]
    Turn(#[from] AgentError),
}

/// One question and answer of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionTurn {
    /// The user's message.
    pub question: String,
    /// The agent's answer.
    pub answer: String,
    /// The turn's trace.
    pub trace_id: Option<String>,
    /// When it was answered, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// Its tokens and cost (what `[budget]`'s per-session limits count).
    #[serde(default)]
    pub usage: crate::chat::Usage,
}

impl Session {
    /// What its turns spent, together.
    pub fn usage(&self) -> crate::chat::Usage {
        self.turns
            .iter()
            .fold(crate::chat::Usage::default(), |mut sum, turn| {
                sum += turn.usage;
                sum
            })
    }
}

/// A conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The id (`gen_ai.conversation.id`, `session.id`).
    pub id: String,
    /// Who is talking (`user.id`).
    pub user_id: Option<String>,
    /// The agent answering.
    pub agent: String,
    /// When it started, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// When its last turn was added.
    pub updated_at_ms: i64,
    /// Its turns, oldest first.
    pub turns: Vec<SessionTurn>,
    /// A summary of its oldest turns (with `[sessions] summarize`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// How many of the oldest turns the summary covers.
    #[serde(default)]
    pub summarized_turns: usize,
}

/// `[sessions]`: what the model sees of a session's earlier turns.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Which earlier turns the model sees.
    pub window: HistoryWindow,
    /// Fold turns that leave the window into a running summary written by the agent's model.
    pub summarize: bool,
    /// The most tokens a summary may take.
    pub summary_max_tokens: u32,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            window: HistoryWindow::default(),
            summarize: false,
            summary_max_tokens: 160,
        }
    }
}

/// Which earlier turns the model sees (`[sessions]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum HistoryWindow {
    /// The last `max_turns` turns.
    Turns {
        /// How many.
        max_turns: usize,
    },
    /// As many of the latest turns as fit in `max_tokens` (estimated at 4 characters a token,
    /// the usual ratio for English with BPE tokenizers).
    Tokens {
        /// The budget.
        max_tokens: usize,
    },
}

impl Default for HistoryWindow {
    fn default() -> Self {
        Self::Turns { max_turns: 8 }
    }
}

impl HistoryWindow {
    /// The index of the oldest turn this window keeps.
    pub fn first_kept(&self, turns: &[SessionTurn]) -> usize {
        match *self {
            Self::Turns { max_turns } => turns.len().saturating_sub(max_turns),
            Self::Tokens { max_tokens } => {
                let mut used = 0;
                let mut first = turns.len();
                for (i, turn) in turns.iter().enumerate().rev() {
                    let cost = (turn.question.len() + turn.answer.len()).div_ceil(4);
                    if used + cost > max_tokens {
                        break;
                    }
                    used += cost;
                    first = i;
                }
                first
            }
        }
    }

    /// The messages of the turns this window keeps, oldest first: each turn as a user message and
    /// the assistant's answer.
    pub fn history(&self, turns: &[SessionTurn]) -> Vec<Message> {
        messages(&turns[self.first_kept(turns)..])
    }
}

fn messages(turns: &[SessionTurn]) -> Vec<Message> {
    turns
        .iter()
        .flat_map(|turn| {
            [
                Message::user(turn.question.clone()),
                Message::assistant(turn.answer.clone(), Vec::new()),
            ]
        })
        .collect()
}

/// Where sessions are kept: the embedded SQLite file ([`SqliteSessions`]) or PostgreSQL, shared
/// by replicas. Callers use a [`SessionStore`].
#[async_trait::async_trait]
pub trait SessionBackend: Send + Sync {
    /// Starts session `id` for `agent` and `user` unless it exists; `created` is its start time.
    async fn insert(
        &self,
        id: &str,
        agent: &str,
        user: Option<&str>,
        created: i64,
    ) -> Result<(), SessionError>;
    /// Session `id` with its turns, if it exists.
    async fn get(&self, id: &str) -> Result<Option<Session>, SessionError>;
    /// The most recently active sessions (without turns), newest first, with turn counts.
    async fn list(&self, limit: usize) -> Result<Vec<(Session, usize)>, SessionError>;
    /// Adds `turn` to session `id`; `false` when it does not exist.
    async fn append(&self, id: &str, turn: &SessionTurn) -> Result<bool, SessionError>;
    /// Stores `summary` as covering the oldest `turns` turns; `false` when it does not exist.
    async fn set_summary(
        &self,
        id: &str,
        summary: &str,
        turns: usize,
    ) -> Result<bool, SessionError>;
}

/// The stored conversations, in whichever backend `[state]` names (a cheap handle: clones share
/// it).
#[derive(Clone)]
pub struct SessionStore {
    backend: Arc<dyn SessionBackend>,
    redactor: Option<Arc<Redactor>>,
}

impl SessionStore {
    /// Opens (creating if needed) the SQLite store at `path`, e.g. `data_dir/sessions.db`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SessionError> {
        Ok(Self::with_backend(Arc::new(SqliteSessions::open(path)?)))
    }

    /// The sessions in `backend`.
    pub fn with_backend(backend: Arc<dyn SessionBackend>) -> Self {
        Self {
            backend,
            redactor: None,
        }
    }

    /// Stores turns and summaries with secrets and personal values replaced by `redactor`'s
    /// placeholders (`[telemetry.redaction]`), so the store keeps no more than the traces do.
    /// The turn in memory is left whole for the rest of the process.
    pub fn with_redactor(mut self, redactor: Arc<Redactor>) -> Self {
        self.redactor = redactor.is_active().then_some(redactor);
        self
    }

    /// `text` as the store keeps it, numbered through `placeholders`.
    fn redacted(&self, text: &str, placeholders: &mut Placeholders) -> String {
        match &self.redactor {
            Some(redactor) => redactor.redact(text, placeholders).text,
            None => text.to_owned(),
        }
    }

    /// Starts a session for `agent` (and `user`), with a new random id.
    pub async fn create(&self, agent: &str, user: Option<&str>) -> Result<Session, SessionError> {
        let id: String = (0..16)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let now = now_ms();
        self.backend.insert(&id, agent, user, now).await?;
        Ok(Session {
            id,
            user_id: user.map(str::to_owned),
            agent: agent.to_owned(),
            created_at_ms: now,
            updated_at_ms: now,
            turns: Vec::new(),
            summary: None,
            summarized_turns: 0,
        })
    }

    /// Stores `summary` as covering the oldest `turns` turns of session `id`.
    pub async fn set_summary(
        &self,
        id: &str,
        summary: &str,
        turns: usize,
    ) -> Result<(), SessionError> {
        let summary = self.redacted(summary, &mut Placeholders::default());
        if !self.backend.set_summary(id, &summary, turns).await? {
            return Err(SessionError::NotFound(id.to_owned()));
        }
        Ok(())
    }

    /// Session `id` with its turns, started for `agent` and `user` if no session has that id
    /// yet: for a service whose clients choose their session ids.
    pub async fn get_or_create(
        &self,
        id: &str,
        agent: &str,
        user: Option<&str>,
    ) -> Result<Session, SessionError> {
        self.backend.insert(id, agent, user, now_ms()).await?;
        self.get(id).await
    }

    /// A session with its turns.
    pub async fn get(&self, id: &str) -> Result<Session, SessionError> {
        self.backend
            .get(id)
            .await?
            .ok_or_else(|| SessionError::NotFound(id.to_owned()))
    }

    /// The most recently active sessions (without their turns), newest first, with turn counts.
    pub async fn list(&self, limit: usize) -> Result<Vec<(Session, usize)>, SessionError> {
        self.backend.list(limit).await
    }

    /// Adds a turn to session `id`.
    pub async fn append(&self, id: &str, turn: &SessionTurn) -> Result<(), SessionError> {
        let mut placeholders = Placeholders::default();
        let stored = SessionTurn {
            question: self.redacted(&turn.question, &mut placeholders),
            answer: self.redacted(&turn.answer, &mut placeholders),
            ..turn.clone()
        };
        if !self.backend.append(id, &stored).await? {
            return Err(SessionError::NotFound(id.to_owned()));
        }
        Ok(())
    }
}

/// A turn's usage as a store keeps it (JSON text).
pub(crate) fn write_usage(usage: &crate::chat::Usage) -> String {
    serde_json::to_string(usage).unwrap_or_default()
}

/// A stored turn's usage; a turn stored before usage was kept spent nothing known.
pub(crate) fn read_usage(text: Option<&str>) -> crate::chat::Usage {
    text.and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// Answers `question` as the next turn of `session` with `agent`: the window's history goes to the
/// model, the trace carries the session and user ids, and the turn is stored (and added to
/// `session`) once answered. A failed turn leaves the session unchanged; a turn paused for approval
/// joins the session when it completes ([`record_turn`] after [`Agent::resume`]). `approver`
/// decides calls that need approval inline instead of pausing.
pub async fn run_session_turn(
    store: &SessionStore,
    session: &mut Session,
    agent: &Agent,
    settings: &SessionsConfig,
    question: &str,
    approver: Option<Arc<dyn crate::approval::Approver>>,
    on_content: Option<&(dyn Fn(&str) + Send + Sync)>,
) -> Result<AgentOutcome, SessionError> {
    let history = session_history(store, session, agent, settings).await?;
    let context = TurnContext {
        conversation_id: Some(session.id.clone()),
        user_id: session.user_id.clone(),
        approver,
        session_usage: session.usage(),
        ..TurnContext::default()
    };
    let outcome = agent
        .run_turn(&history, question, &context, on_content)
        .await?;
    if let Some(turn) = record_turn(store, &session.id, question, &outcome).await? {
        session.updated_at_ms = turn.created_at_ms;
        session.turns.push(turn);
    }
    Ok(outcome)
}

/// Adds the finished turn `outcome` (the answer to `question`) to session `session_id` and returns
/// it; a paused turn is not added (`None`) until it completes.
pub async fn record_turn(
    store: &SessionStore,
    session_id: &str,
    question: &str,
    outcome: &AgentOutcome,
) -> Result<Option<SessionTurn>, SessionError> {
    if outcome.stop_reason == crate::agent::StopReason::AwaitingApproval {
        return Ok(None);
    }
    // A question an input guardrail stopped is not kept: as history it would reach the model on
    // the next turn.
    if outcome
        .blocked
        .as_ref()
        .is_some_and(|b| b.stage == crate::guardrails::Stage::Input)
    {
        return Ok(None);
    }
    let turn = SessionTurn {
        question: question.to_owned(),
        answer: outcome.answer.clone(),
        trace_id: outcome.trace_id.clone(),
        created_at_ms: now_ms(),
        usage: outcome.usage,
    };
    store.append(session_id, &turn).await?;
    Ok(Some(turn))
}

/// What the model sees of `session` before the next question: the window's turns, after a
/// summary of the older ones when `settings.summarize` is on. Turns that left the window since the
/// last summary are folded into it first, by `agent`'s model (a `chat` span of its own); if that
/// fails, the turn goes on with the summary it had, and a warning says why.
pub async fn session_history(
    store: &SessionStore,
    session: &mut Session,
    agent: &Agent,
    settings: &SessionsConfig,
) -> Result<Vec<Message>, SessionError> {
    let first = settings.window.first_kept(&session.turns);
    let mut history = Vec::new();
    if settings.summarize && first > 0 {
        if session.summarized_turns < first {
            let left = &session.turns[session.summarized_turns.min(first)..first];
            match summarize(agent, session, left, settings.summary_max_tokens).await {
                Ok(summary) => {
                    store.set_summary(&session.id, &summary, first).await?;
                    session.summary = Some(summary);
                    session.summarized_turns = first;
                }
                Err(error) => tracing::warn!(
                    session = %session.id,
                    "summarising earlier turns failed; going on with the previous summary: {error}"
                ),
            }
        }
        if let Some(summary) = &session.summary {
            history.push(Message::system(format!(
                "Summary of the earlier conversation:\n{summary}"
            )));
        }
    }
    history.extend(messages(&session.turns[first..]));
    Ok(history)
}

/// The session's summary extended with `turns`, in the model's words.
async fn summarize(
    agent: &Agent,
    session: &Session,
    turns: &[SessionTurn],
    max_tokens: u32,
) -> Result<String, crate::error::ChatError> {
    use sextant_tracker::conventions as sc;
    let mut transcript = String::new();
    if let Some(summary) = &session.summary {
        transcript.push_str(&format!("Summary so far:\n{summary}\n\nThen:\n"));
    }
    for turn in turns {
        transcript.push_str(&format!(
            "User: {}\nAssistant: {}\n",
            turn.question, turn.answer
        ));
    }
    let request = ChatRequest {
        messages: vec![
            Message::system(
                "Summarise this conversation in a few short sentences for the assistant to \
                 remember: who the user is, what they asked, what was answered or decided. \
                 Write only the summary.",
            ),
            Message::user(transcript),
        ],
        tools: Vec::new(),
        options: ChatOptions {
            temperature: Some(0.0),
            max_tokens: Some(max_tokens),
            ..ChatOptions::default()
        },
    };
    // The summary's `chat {model}` span sits under a span saying what it was for.
    let span = tracing::info_span!(
        "summarize_session",
        { sc::OTEL_KIND } = "internal",
        { sc::GEN_AI_CONVERSATION_ID } = %session.id,
        { sc::SESSION_ID } = %session.id,
        { sc::USER_ID } = session.user_id.as_deref(),
    );
    let response = tracing::Instrument::instrument(agent.chat_step(&request, None), span).await?;
    Ok(response.content.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Role;

    #[test]
    fn stores_opened_at_once_migrate_the_schema_once() {
        // Found when two services opened one data dir together: "duplicate column name".
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("sessions.db");
            let opened: Vec<_> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..4)
                    .map(|_| scope.spawn(|| SessionStore::open(&path)))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            for store in opened {
                store.expect("every concurrent open succeeds");
            }
        }
    }

    fn turn(q: &str, a: &str) -> SessionTurn {
        SessionTurn {
            question: q.into(),
            answer: a.into(),
            trace_id: None,
            created_at_ms: 0,
            usage: Default::default(),
        }
    }

    #[test]
    fn the_window_keeps_the_latest_turns_by_count_or_budget() {
        let turns = vec![
            turn("first question", &"x".repeat(400)),
            turn("second", "short"),
            turn("third", "also short"),
        ];
        let by_count = HistoryWindow::Turns { max_turns: 2 }.history(&turns);
        assert_eq!(by_count.len(), 4);
        assert_eq!(by_count[0].role, Role::User);
        assert_eq!(by_count[0].content, "second");
        assert_eq!(by_count[3].role, Role::Assistant);
        assert_eq!(by_count[3].content, "also short");
        // ~104 tokens for the first turn: a budget of 50 keeps the last two only.
        let by_budget = HistoryWindow::Tokens { max_tokens: 50 }.history(&turns);
        assert_eq!(by_budget.len(), 4);
        let all = HistoryWindow::Tokens { max_tokens: 500 }.history(&turns);
        assert_eq!(all.len(), 6);
        assert!(
            HistoryWindow::Turns { max_turns: 0 }
                .history(&turns)
                .is_empty()
        );
    }

    #[tokio::test]
    async fn sessions_persist_and_resume_from_another_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.db");
        let store = SessionStore::open(&path).unwrap();
        let session = store.create("assistant", Some("ada")).await.unwrap();
        store
            .append(&session.id, &turn("hi", "hello"))
            .await
            .unwrap();
        store
            .append(&session.id, &turn("and?", "more"))
            .await
            .unwrap();
        let reopened = SessionStore::open(&path).unwrap();
        let resumed = reopened.get(&session.id).await.unwrap();
        assert_eq!(resumed.user_id.as_deref(), Some("ada"));
        assert_eq!(
            resumed
                .turns
                .iter()
                .map(|t| t.question.as_str())
                .collect::<Vec<_>>(),
            ["hi", "and?"]
        );
        let listed = reopened.list(10).await.unwrap();
        assert_eq!(
            (listed[0].0.id.as_str(), listed[0].1),
            (session.id.as_str(), 2)
        );
        assert!(matches!(
            reopened.get("nope").await,
            Err(SessionError::NotFound(_))
        ));
        assert!(matches!(
            reopened.append("nope", &turn("q", "a")).await,
            Err(SessionError::NotFound(_))
        ));
    }
}
