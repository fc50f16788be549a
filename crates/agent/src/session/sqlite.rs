//! [`SqliteSessions`]: sessions in a SQLite file (WAL, busy timeout), by default the data
//! directory's `sessions.db`, so processes on one machine share it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use super::{Session, SessionBackend, SessionError, SessionTurn};

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

/// A session (without its turns) from the columns [`SESSION_COLUMNS`].
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

/// Sessions in a SQLite file; see the [module docs](self).
#[derive(Clone)]
pub struct SqliteSessions {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
}

impl SqliteSessions {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SessionError> {
        let path = path.as_ref().to_path_buf();
        let error = |e: &dyn std::fmt::Display| SessionError::Store {
            location: path.display().to_string(),
            message: e.to_string(),
        };
        let mut connection = crate::sqlite_file::open_shared(&path).map_err(|e| error(&e))?;
        // One writer at a time creates and migrates the schema: two processes (or two services in
        // one) opening a store at once would otherwise both add the same column.
        let migration = connection
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| error(&e))?;
        migration.execute_batch(SCHEMA).map_err(|e| error(&e))?;
        // Stores written before summaries (and turn usage) existed get the columns.
        for (table, column, definition) in [
            ("sessions", "summary", "summary TEXT"),
            (
                "sessions",
                "summarized_turns",
                "summarized_turns INTEGER NOT NULL DEFAULT 0",
            ),
            ("session_turns", "usage", "usage TEXT"),
        ] {
            let present: bool = migration
                .query_row(
                    "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
                    params![table, column],
                    |row| row.get(0),
                )
                .map_err(|e| error(&e))?;
            if !present {
                migration
                    .execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {definition}"))
                    .map_err(|e| error(&e))?;
            }
        }
        migration.commit().map_err(|e| error(&e))?;
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
            location: self.path.display().to_string(),
            message: e.to_string(),
        })
    }
}

#[async_trait::async_trait]
impl SessionBackend for SqliteSessions {
    async fn insert(
        &self,
        id: &str,
        agent: &str,
        user: Option<&str>,
        created: i64,
    ) -> Result<(), SessionError> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO sessions (id, user_id, agent, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![id, user, agent, created],
            )
        })?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Session>, SessionError> {
        self.with(|c| {
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
                    "SELECT question, answer, trace_id, created_at_ms, usage FROM session_turns
                     WHERE session_id = ?1 ORDER BY created_at_ms, rowid",
                )?
                .query_map(params![id], |row| {
                    Ok(SessionTurn {
                        question: row.get(0)?,
                        answer: row.get(1)?,
                        trace_id: row.get(2)?,
                        created_at_ms: row.get(3)?,
                        usage: super::read_usage(row.get::<_, Option<String>>(4)?.as_deref()),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Some(session))
        })
    }

    async fn list(&self, limit: usize) -> Result<Vec<(Session, usize)>, SessionError> {
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

    async fn append(&self, id: &str, turn: &SessionTurn) -> Result<bool, SessionError> {
        self.with(|c| {
            c.execute(
                "UPDATE sessions SET updated_at_ms = ?2 WHERE id = ?1",
                params![id, turn.created_at_ms],
            )?;
            if c.changes() == 0 {
                return Ok(false);
            }
            c.execute(
                "INSERT INTO session_turns (session_id, question, answer, trace_id, created_at_ms,
                 usage) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    turn.question,
                    turn.answer,
                    turn.trace_id,
                    turn.created_at_ms,
                    super::write_usage(&turn.usage),
                ],
            )?;
            Ok(true)
        })
    }

    async fn set_summary(
        &self,
        id: &str,
        summary: &str,
        turns: usize,
    ) -> Result<bool, SessionError> {
        let changed = self.with(|c| {
            c.execute(
                "UPDATE sessions SET summary = ?2, summarized_turns = ?3 WHERE id = ?1",
                params![id, summary, turns as i64],
            )
        })?;
        Ok(changed > 0)
    }
}
