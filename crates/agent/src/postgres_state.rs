//! [`PostgresState`]: sessions and turn state in PostgreSQL (`[state] url = "postgres://…"`), so
//! several `sextant serve` replicas behind a load balancer serve the same sessions and take over
//! each other's paused or crashed turns. One pool of connections serves both; the schema is
//! created on first connection, under an advisory lock so replicas starting together do not race.
//!
//! Connections are made without TLS: run it on a private network or through a local proxy; a URL
//! that asks for TLS (`sslmode=require`) is refused rather than silently downgraded.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use sextant_tracker::now_ms;
use tokio_postgres::NoTls;

use crate::session::{Session, SessionBackend, SessionError, SessionTurn};
use crate::turn_state::{TurnState, TurnStatus};
use crate::turn_store::{
    TurnChange, TurnFilter, TurnStore, TurnStoreError, TurnSummary, check_lease, lease_end,
};

/// Serialises schema creation across replicas (`pg_advisory_xact_lock`).
const SCHEMA_LOCK: i64 = 0x05e4_7a17_0001;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT,
    agent TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    summary TEXT,
    summarized_turns BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS session_turns (
    seq BIGSERIAL PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    trace_id TEXT,
    created_at_ms BIGINT NOT NULL
);
ALTER TABLE session_turns ADD COLUMN IF NOT EXISTS usage TEXT;
CREATE INDEX IF NOT EXISTS session_turns_by_session ON session_turns (session_id, created_at_ms, seq);
CREATE TABLE IF NOT EXISTS turns (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT,
    state TEXT NOT NULL,
    lease_holder TEXT,
    lease_until_ms BIGINT NOT NULL DEFAULT 0,
    updated_at_ms BIGINT NOT NULL,
    trace_id TEXT
);
CREATE INDEX IF NOT EXISTS turns_by_status ON turns (status, updated_at_ms);
CREATE INDEX IF NOT EXISTS turns_by_trace ON turns (trace_id);
";

/// Sessions and turns in PostgreSQL; see the [module docs](self).
#[derive(Clone)]
pub struct PostgresState {
    pool: Pool,
    /// The URL as errors show it (no credentials).
    location: String,
}

impl PostgresState {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and creates the schema
    /// if it is not there. The error names the server (never the password) and what went wrong.
    pub async fn connect(url: &str) -> Result<Self, TurnStoreError> {
        let location = sextant_tracker::conventions::shown_url(
            url,
            sextant_tracker::conventions::UrlParts::Location,
        );
        let error = |message: String| TurnStoreError::Store {
            location: location.clone(),
            message,
        };
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| error(format!("not a PostgreSQL URL: {e}")))?;
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(error(
                "TLS connections are not supported; use `sslmode=disable` on a private network or \
                 a local TLS proxy"
                    .into(),
            ));
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(8)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| error(e.to_string()))?;
        let state = Self { pool, location };
        let mut client = state.client().await?;
        let migration = client.transaction().await.map_err(|e| state.error(e))?;
        migration
            .execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .await
            .map_err(|e| state.error(e))?;
        migration
            .batch_execute(SCHEMA)
            .await
            .map_err(|e| state.error(e))?;
        migration.commit().await.map_err(|e| state.error(e))?;
        Ok(state)
    }

    fn error(&self, e: impl std::fmt::Display) -> TurnStoreError {
        TurnStoreError::Store {
            location: self.location.clone(),
            message: e.to_string(),
        }
    }

    fn session_error(&self, e: impl std::fmt::Display) -> SessionError {
        SessionError::Store {
            location: self.location.clone(),
            message: e.to_string(),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, TurnStoreError> {
        self.pool.get().await.map_err(|e| self.error(e))
    }

    async fn session_client(&self) -> Result<deadpool_postgres::Object, SessionError> {
        self.pool.get().await.map_err(|e| self.session_error(e))
    }

    /// The stored state and lease of turn `id`, locked for the transaction.
    async fn read_locked(
        &self,
        transaction: &deadpool_postgres::Transaction<'_>,
        id: &str,
    ) -> Result<Option<(TurnState, Option<String>, i64)>, TurnStoreError> {
        let row = transaction
            .query_opt(
                "SELECT state, lease_holder, lease_until_ms FROM turns WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(|e| self.error(e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let text: String = row.get(0);
        let state = serde_json::from_str(&text)
            .map_err(|e| self.error(format!("turn `{id}` is unreadable: {e}")))?;
        Ok(Some((state, row.get(1), row.get(2))))
    }

    async fn write(
        &self,
        transaction: &deadpool_postgres::Transaction<'_>,
        state: &TurnState,
        holder: Option<&str>,
        lease_until_ms: i64,
    ) -> Result<(), TurnStoreError> {
        let text = serde_json::to_string(state).map_err(|e| self.error(e))?;
        transaction
            .execute(
                "INSERT INTO turns (id, agent, status, owner, state, lease_holder, lease_until_ms, updated_at_ms, trace_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (id) DO UPDATE SET status = $3, owner = $4, state = $5,
                     lease_holder = $6, lease_until_ms = $7, updated_at_ms = $8, trace_id = $9",
                &[
                    &state.id,
                    &state.agent,
                    &state.status.as_str(),
                    &state.owner,
                    &text,
                    &holder,
                    &lease_until_ms,
                    &state.updated_at_ms,
                    &state.trace_id,
                ],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }
}

#[async_trait]
impl TurnStore for PostgresState {
    async fn save(
        &self,
        state: &TurnState,
        holder: &str,
        lease: Duration,
    ) -> Result<(), TurnStoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(|e| self.error(e))?;
        if let Some((_, lease_holder, until)) = self.read_locked(&transaction, &state.id).await? {
            check_lease(&state.id, Some(holder), lease_holder, until)?;
        }
        let until = lease_end(lease);
        self.write(&transaction, state, (until > 0).then_some(holder), until)
            .await?;
        transaction.commit().await.map_err(|e| self.error(e))
    }

    async fn load(&self, id: &str) -> Result<TurnState, TurnStoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT state FROM turns WHERE id = $1", &[&id])
            .await
            .map_err(|e| self.error(e))?
            .ok_or_else(|| TurnStoreError::NotFound(id.to_owned()))?;
        let text: String = row.get(0);
        serde_json::from_str(&text)
            .map_err(|e| self.error(format!("turn `{id}` is unreadable: {e}")))
    }

    async fn update(&self, id: &str, change: TurnChange<'_>) -> Result<TurnState, TurnStoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(|e| self.error(e))?;
        let (mut state, lease_holder, until) = self
            .read_locked(&transaction, id)
            .await?
            .ok_or_else(|| TurnStoreError::NotFound(id.to_owned()))?;
        check_lease(id, None, lease_holder.clone(), until)?;
        change(&mut state).map_err(TurnStoreError::Rejected)?;
        state.updated_at_ms = now_ms();
        self.write(&transaction, &state, lease_holder.as_deref(), until)
            .await?;
        transaction.commit().await.map_err(|e| self.error(e))?;
        Ok(state)
    }

    async fn claim(
        &self,
        id: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<TurnState, TurnStoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(|e| self.error(e))?;
        let (state, lease_holder, until) = self
            .read_locked(&transaction, id)
            .await?
            .ok_or_else(|| TurnStoreError::NotFound(id.to_owned()))?;
        check_lease(id, Some(holder), lease_holder, until)?;
        self.write(&transaction, &state, Some(holder), lease_end(lease))
            .await?;
        transaction.commit().await.map_err(|e| self.error(e))?;
        Ok(state)
    }

    async fn renew(&self, id: &str, holder: &str, lease: Duration) -> Result<(), TurnStoreError> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE turns SET lease_until_ms = $3 WHERE id = $1 AND lease_holder = $2",
                &[&id, &holder, &lease_end(lease)],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn find_by_trace(&self, trace_id: &str) -> Result<TurnState, TurnStoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT id FROM turns WHERE trace_id = $1 ORDER BY updated_at_ms DESC LIMIT 1",
                &[&trace_id],
            )
            .await
            .map_err(|e| self.error(e))?
            .ok_or_else(|| TurnStoreError::NotFound(format!("traced as {trace_id}")))?;
        let id: String = row.get(0);
        drop(client);
        self.load(&id).await
    }

    async fn list(&self, filter: &TurnFilter) -> Result<Vec<TurnSummary>, TurnStoreError> {
        let client = self.client().await?;
        let limit = if filter.limit == 0 { 50 } else { filter.limit } as i64;
        let status = filter.status.map(TurnStatus::as_str);
        let rows = client
            .query(
                "SELECT state FROM turns
                 WHERE ($1::TEXT IS NULL OR status = $1) AND ($2::TEXT IS NULL OR owner = $2)
                 ORDER BY updated_at_ms DESC, id LIMIT $3",
                &[&status, &filter.owner, &limit],
            )
            .await
            .map_err(|e| self.error(e))?;
        let mut turns = Vec::new();
        for row in rows {
            let text: String = row.get(0);
            match serde_json::from_str::<TurnState>(&text) {
                Ok(state) => turns.push(TurnSummary::of(&state)),
                Err(error) => tracing::warn!("skipping an unreadable turn: {error}"),
            }
        }
        Ok(turns)
    }

    async fn orphaned(&self) -> Result<Vec<String>, TurnStoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT id FROM turns WHERE status = 'running' AND lease_until_ms < $1
                 ORDER BY updated_at_ms",
                &[&now_ms()],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }
}

fn read_session(row: &tokio_postgres::Row) -> Session {
    Session {
        id: row.get(0),
        user_id: row.get(1),
        agent: row.get(2),
        created_at_ms: row.get(3),
        updated_at_ms: row.get(4),
        turns: Vec::new(),
        summary: row.get(5),
        summarized_turns: row.get::<_, i64>(6) as usize,
    }
}

#[async_trait]
impl SessionBackend for PostgresState {
    async fn insert(
        &self,
        id: &str,
        agent: &str,
        user: Option<&str>,
        created: i64,
    ) -> Result<(), SessionError> {
        let client = self.session_client().await?;
        client
            .execute(
                "INSERT INTO sessions (id, user_id, agent, created_at_ms, updated_at_ms)
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT (id) DO NOTHING",
                &[&id, &user, &agent, &created],
            )
            .await
            .map_err(|e| self.session_error(e))?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Session>, SessionError> {
        let client = self.session_client().await?;
        let Some(head) = client
            .query_opt(
                "SELECT id, user_id, agent, created_at_ms, updated_at_ms, summary, summarized_turns
                 FROM sessions WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(|e| self.session_error(e))?
        else {
            return Ok(None);
        };
        let mut session = read_session(&head);
        session.turns = client
            .query(
                "SELECT question, answer, trace_id, created_at_ms, usage FROM session_turns
                 WHERE session_id = $1 ORDER BY created_at_ms, seq",
                &[&id],
            )
            .await
            .map_err(|e| self.session_error(e))?
            .iter()
            .map(|row| SessionTurn {
                question: row.get(0),
                answer: row.get(1),
                trace_id: row.get(2),
                created_at_ms: row.get(3),
                usage: crate::session::read_usage(row.get::<_, Option<&str>>(4)),
            })
            .collect();
        Ok(Some(session))
    }

    async fn list(&self, limit: usize) -> Result<Vec<(Session, usize)>, SessionError> {
        let client = self.session_client().await?;
        let rows = client
            .query(
                "SELECT s.id, s.user_id, s.agent, s.created_at_ms, s.updated_at_ms, s.summary,
                        s.summarized_turns,
                        (SELECT COUNT(*) FROM session_turns t WHERE t.session_id = s.id)
                 FROM sessions s ORDER BY s.updated_at_ms DESC, s.id LIMIT $1",
                &[&(limit as i64)],
            )
            .await
            .map_err(|e| self.session_error(e))?;
        Ok(rows
            .iter()
            .map(|row| (read_session(row), row.get::<_, i64>(7) as usize))
            .collect())
    }

    async fn append(&self, id: &str, turn: &SessionTurn) -> Result<bool, SessionError> {
        let mut client = self.session_client().await?;
        let transaction = client
            .transaction()
            .await
            .map_err(|e| self.session_error(e))?;
        let changed = transaction
            .execute(
                "UPDATE sessions SET updated_at_ms = $2 WHERE id = $1",
                &[&id, &turn.created_at_ms],
            )
            .await
            .map_err(|e| self.session_error(e))?;
        if changed == 0 {
            return Ok(false);
        }
        transaction
            .execute(
                "INSERT INTO session_turns (session_id, question, answer, trace_id, created_at_ms,
                 usage) VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &id,
                    &turn.question,
                    &turn.answer,
                    &turn.trace_id,
                    &turn.created_at_ms,
                    &crate::session::write_usage(&turn.usage),
                ],
            )
            .await
            .map_err(|e| self.session_error(e))?;
        transaction
            .commit()
            .await
            .map_err(|e| self.session_error(e))?;
        Ok(true)
    }

    async fn set_summary(
        &self,
        id: &str,
        summary: &str,
        turns: usize,
    ) -> Result<bool, SessionError> {
        let client = self.session_client().await?;
        let changed = client
            .execute(
                "UPDATE sessions SET summary = $2, summarized_turns = $3 WHERE id = $1",
                &[&id, &summary, &(turns as i64)],
            )
            .await
            .map_err(|e| self.session_error(e))?;
        Ok(changed > 0)
    }
}
