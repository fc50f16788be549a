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

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sextant_tracker::now_ms;

use crate::agent::{Agent, AgentError, AgentOutcome, TurnContext};
use crate::chat::{ChatOptions, ChatRequest, Message};

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No session has this id.
    #[error("session `{0}` does not exist (see `sextant sessions list`)")]
    NotFound(String),
    /// The session store could not be read or written.
    #[error("the session store {path} failed: {message}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
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

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT,
    agent TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS session_turns (
    session_id TEXT NOT NULL REFERENCES sessions (id),
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    trace_id TEXT,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS session_turns_by_session ON session_turns (session_id, created_at_ms);
";

/// A session (without its turns) from the columns `id, user_id, agent, created_at_ms,
/// updated_at_ms, summary, summarized_turns`.
fn read_session(row: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        id: row.get(0)?,
        user_id: row.get(1)?,
        agent: row.get(2)?,
        created_at_ms: row.get(3)?,
        updated_at_ms: row.get(4)?,
        turns: Vec::new(),
        summary: row.get(5)?,
        summarized_turns: row.get::<_, i64>(6)? as usize,
    })
}

/// The columns [`read_session`] reads.
const SESSION_COLUMNS: &str =
    "id, user_id, agent, created_at_ms, updated_at_ms, summary, summarized_turns";

/// Sessions in a SQLite file (WAL, busy timeout: several processes may share it).
#[derive(Clone)]
pub struct SessionStore {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
}

impl SessionStore {
    /// Opens (creating if needed) the store at `path`, e.g. `data_dir/sessions.db`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SessionError> {
        let path = path.as_ref().to_path_buf();
        let error = |e: rusqlite::Error| SessionError::Store {
            path: path.clone(),
            message: e.to_string(),
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| SessionError::Store {
                path: path.clone(),
                message: e.to_string(),
            })?;
        }
        let mut connection = Connection::open(&path).map_err(error)?;
        connection
            .busy_timeout(Duration::from_secs(10))
            .map_err(error)?;
        // Switching to WAL needs the file to itself and does not wait on the busy handler: try
        // again while another connection (process) is opening the store too.
        let mut attempts = 0;
        while let Err(e) = connection.pragma_update(None, "journal_mode", "WAL") {
            attempts += 1;
            let busy = e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy);
            if !busy || attempts >= 200 {
                return Err(error(e));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // One writer at a time creates and migrates the schema: two processes (or two services in
        // one) opening a store at once would otherwise both add the same column.
        let migration = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(error)?;
        migration.execute_batch(SCHEMA).map_err(error)?;
        // Stores written before summaries existed get the columns.
        for (column, definition) in [
            ("summary", "summary TEXT"),
            (
                "summarized_turns",
                "summarized_turns INTEGER NOT NULL DEFAULT 0",
            ),
        ] {
            let present: bool = migration
                .query_row(
                    "SELECT COUNT(*) > 0 FROM pragma_table_info('sessions') WHERE name = ?1",
                    params![column],
                    |row| row.get(0),
                )
                .map_err(error)?;
            if !present {
                migration
                    .execute_batch(&format!("ALTER TABLE sessions ADD COLUMN {definition}"))
                    .map_err(error)?;
            }
        }
        migration.commit().map_err(error)?;
        Ok(Self {
            path,
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    fn with<T>(
        &self,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, SessionError> {
        // Short statements: holding the lock on the caller's thread is cheaper than a hop to the
        // blocking pool.
        let connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        work(&connection).map_err(|e| SessionError::Store {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// Starts a session for `agent` (and `user`), with a new random id.
    pub fn create(&self, agent: &str, user: Option<&str>) -> Result<Session, SessionError> {
        let id: String = (0..16)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let now = now_ms();
        self.with(|c| {
            c.execute(
                "INSERT INTO sessions (id, user_id, agent, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![id, user, agent, now],
            )
        })?;
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
    pub fn set_summary(&self, id: &str, summary: &str, turns: usize) -> Result<(), SessionError> {
        let changed = self.with(|c| {
            c.execute(
                "UPDATE sessions SET summary = ?2, summarized_turns = ?3 WHERE id = ?1",
                params![id, summary, turns as i64],
            )
        })?;
        if changed == 0 {
            return Err(SessionError::NotFound(id.to_owned()));
        }
        Ok(())
    }

    /// Session `id` with its turns, started for `agent` and `user` if no session has that id
    /// yet: for a service whose clients choose their session ids.
    pub fn get_or_create(
        &self,
        id: &str,
        agent: &str,
        user: Option<&str>,
    ) -> Result<Session, SessionError> {
        let now = now_ms();
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO sessions (id, user_id, agent, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![id, user, agent, now],
            )
        })?;
        self.get(id)
    }

    /// A session with its turns.
    pub fn get(&self, id: &str) -> Result<Session, SessionError> {
        let found = self.with(|c| {
            let head = c
                .query_row(
                    &format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1"),
                    params![id],
                    read_session,
                )
                .optional()?;
            let Some(mut session) = head else {
                return Ok(None);
            };
            session.turns = c
                .prepare_cached(
                    "SELECT question, answer, trace_id, created_at_ms FROM session_turns
                     WHERE session_id = ?1 ORDER BY created_at_ms, rowid",
                )?
                .query_map(params![id], |row| {
                    Ok(SessionTurn {
                        question: row.get(0)?,
                        answer: row.get(1)?,
                        trace_id: row.get(2)?,
                        created_at_ms: row.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Some(session))
        })?;
        found.ok_or_else(|| SessionError::NotFound(id.to_owned()))
    }

    /// The most recently active sessions (without their turns), newest first, with turn counts.
    pub fn list(&self, limit: usize) -> Result<Vec<(Session, usize)>, SessionError> {
        self.with(|c| {
            c.prepare(
                "SELECT s.id, s.user_id, s.agent, s.created_at_ms, s.updated_at_ms, s.summary,
                        s.summarized_turns,
                        (SELECT COUNT(*) FROM session_turns t WHERE t.session_id = s.id)
                 FROM sessions s ORDER BY s.updated_at_ms DESC, s.id LIMIT ?1",
            )?
            .query_map(params![limit as i64], |row| {
                Ok((read_session(row)?, row.get::<_, i64>(7)? as usize))
            })?
            .collect()
        })
    }

    /// Adds a turn to session `id`.
    pub fn append(&self, id: &str, turn: &SessionTurn) -> Result<(), SessionError> {
        let changed =
            self.with(|c| {
                c.execute(
                    "UPDATE sessions SET updated_at_ms = ?2 WHERE id = ?1",
                    params![id, turn.created_at_ms],
                )?;
                if c.changes() == 0 {
                    return Ok(0);
                }
                c.execute(
                "INSERT INTO session_turns (session_id, question, answer, trace_id, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, turn.question, turn.answer, turn.trace_id, turn.created_at_ms],
            )
            })?;
        if changed == 0 {
            return Err(SessionError::NotFound(id.to_owned()));
        }
        Ok(())
    }
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
        ..TurnContext::default()
    };
    let outcome = agent
        .run_turn(&history, question, &context, on_content)
        .await?;
    if let Some(turn) = record_turn(store, &session.id, question, &outcome)? {
        session.updated_at_ms = turn.created_at_ms;
        session.turns.push(turn);
    }
    Ok(outcome)
}

/// Adds the finished turn `outcome` (the answer to `question`) to session `session_id` and returns
/// it; a paused turn is not added (`None`) until it completes.
pub fn record_turn(
    store: &SessionStore,
    session_id: &str,
    question: &str,
    outcome: &AgentOutcome,
) -> Result<Option<SessionTurn>, SessionError> {
    if outcome.stop_reason == crate::agent::StopReason::AwaitingApproval {
        return Ok(None);
    }
    let turn = SessionTurn {
        question: question.to_owned(),
        answer: outcome.answer.clone(),
        trace_id: outcome.trace_id.clone(),
        created_at_ms: now_ms(),
    };
    store.append(session_id, &turn)?;
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
                    store.set_summary(&session.id, &summary, first)?;
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

    #[test]
    fn sessions_persist_and_resume_from_another_handle() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.db");
        let store = SessionStore::open(&path).unwrap();
        let session = store.create("assistant", Some("ada")).unwrap();
        store.append(&session.id, &turn("hi", "hello")).unwrap();
        store.append(&session.id, &turn("and?", "more")).unwrap();
        let reopened = SessionStore::open(&path).unwrap();
        let resumed = reopened.get(&session.id).unwrap();
        assert_eq!(resumed.user_id.as_deref(), Some("ada"));
        assert_eq!(
            resumed
                .turns
                .iter()
                .map(|t| t.question.as_str())
                .collect::<Vec<_>>(),
            ["hi", "and?"]
        );
        let listed = reopened.list(10).unwrap();
        assert_eq!(
            (listed[0].0.id.as_str(), listed[0].1),
            (session.id.as_str(), 2)
        );
        assert!(matches!(
            reopened.get("nope"),
            Err(SessionError::NotFound(_))
        ));
        assert!(matches!(
            reopened.append("nope", &turn("q", "a")),
            Err(SessionError::NotFound(_))
        ));
    }
}
