//! [`SqliteTurnStore`]: turn state in a SQLite file (WAL, busy timeout), by default the data
//! directory's `sessions.db` beside the sessions, so processes on one machine share it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sextant_tracker::now_ms;

use super::{
    TurnChange, TurnFilter, TurnStore, TurnStoreError, TurnSummary, check_lease, lease_end,
};
use crate::turn_state::{TurnState, TurnStatus};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS turns (
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT,
    state TEXT NOT NULL,
    lease_holder TEXT,
    lease_until_ms INTEGER NOT NULL DEFAULT 0,
    updated_at_ms INTEGER NOT NULL,
    trace_id TEXT
);
CREATE INDEX IF NOT EXISTS turns_by_status ON turns (status, updated_at_ms);
CREATE INDEX IF NOT EXISTS turns_by_trace ON turns (trace_id);
";

/// Turn state in SQLite; see the [module docs](self).
#[derive(Clone)]
pub struct SqliteTurnStore {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
}

impl SqliteTurnStore {
    /// Opens (creating if needed) the store at `path` (`:memory:` for one that lives as long as
    /// this handle).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TurnStoreError> {
        let path = path.as_ref().to_path_buf();
        let error = |e: &dyn std::fmt::Display| TurnStoreError::Store {
            location: path.display().to_string(),
            message: e.to_string(),
        };
        let connection = crate::sqlite_file::open_shared(&path).map_err(|e| error(&e))?;
        connection.execute_batch(SCHEMA).map_err(|e| error(&e))?;
        Ok(Self {
            path,
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    fn error(&self, e: impl std::fmt::Display) -> TurnStoreError {
        TurnStoreError::Store {
            location: self.path.display().to_string(),
            message: e.to_string(),
        }
    }

    /// Runs `work` in an immediate transaction (one writer: a read-check-write cannot interleave
    /// with another process's).
    fn transaction<T>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, TurnStoreError>,
    ) -> Result<T, TurnStoreError> {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.error(e))?;
        let value = work(&transaction)?;
        transaction.commit().map_err(|e| self.error(e))?;
        Ok(value)
    }

    /// The stored state and lease of turn `id`.
    fn read(
        &self,
        c: &Connection,
        id: &str,
    ) -> Result<Option<(TurnState, Option<String>, i64)>, TurnStoreError> {
        let row = c
            .query_row(
                "SELECT state, lease_holder, lease_until_ms FROM turns WHERE id = ?1",
                params![id],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.error(e))?;
        let Some((text, holder, until)) = row else {
            return Ok(None);
        };
        let state = serde_json::from_str(&text)
            .map_err(|e| self.error(format!("turn `{id}` is unreadable: {e}")))?;
        Ok(Some((state, holder, until)))
    }

    fn write(
        &self,
        c: &Connection,
        state: &TurnState,
        holder: Option<&str>,
        lease_until_ms: i64,
    ) -> Result<(), TurnStoreError> {
        let text = serde_json::to_string(state).map_err(|e| self.error(e))?;
        c.execute(
            "INSERT INTO turns (id, agent, status, owner, state, lease_holder, lease_until_ms, updated_at_ms, trace_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (id) DO UPDATE SET status = ?3, owner = ?4, state = ?5, lease_holder = ?6,
                 lease_until_ms = ?7, updated_at_ms = ?8, trace_id = ?9",
            params![
                state.id,
                state.agent,
                state.status.as_str(),
                state.owner,
                text,
                holder,
                lease_until_ms,
                state.updated_at_ms,
                state.trace_id
            ],
        )
        .map_err(|e| self.error(e))?;
        Ok(())
    }
}

#[async_trait]
impl TurnStore for SqliteTurnStore {
    async fn save(
        &self,
        state: &TurnState,
        holder: &str,
        lease: Duration,
    ) -> Result<(), TurnStoreError> {
        self.transaction(|c| {
            if let Some((_, lease_holder, until)) = self.read(c, &state.id)? {
                check_lease(&state.id, Some(holder), lease_holder, until)?;
            }
            let until = lease_end(lease);
            self.write(c, state, (until > 0).then_some(holder), until)
        })
    }

    async fn load(&self, id: &str) -> Result<TurnState, TurnStoreError> {
        let connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        self.read(&connection, id)?
            .map(|(state, _, _)| state)
            .ok_or_else(|| TurnStoreError::NotFound(id.to_owned()))
    }

    async fn update(&self, id: &str, change: TurnChange<'_>) -> Result<TurnState, TurnStoreError> {
        self.transaction(|c| {
            let (mut state, lease_holder, until) = self
                .read(c, id)?
                .ok_or_else(|| TurnStoreError::NotFound(id.to_owned()))?;
            check_lease(id, None, lease_holder.clone(), until)?;
            change(&mut state).map_err(TurnStoreError::Rejected)?;
            state.updated_at_ms = now_ms();
            self.write(c, &state, lease_holder.as_deref(), until)?;
            Ok(state)
        })
    }

    async fn claim(
        &self,
        id: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<TurnState, TurnStoreError> {
        self.transaction(|c| {
            let (state, lease_holder, until) = self
                .read(c, id)?
                .ok_or_else(|| TurnStoreError::NotFound(id.to_owned()))?;
            check_lease(id, Some(holder), lease_holder, until)?;
            self.write(c, &state, Some(holder), lease_end(lease))?;
            Ok(state)
        })
    }

    async fn renew(&self, id: &str, holder: &str, lease: Duration) -> Result<(), TurnStoreError> {
        let connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        connection
            .execute(
                "UPDATE turns SET lease_until_ms = ?3 WHERE id = ?1 AND lease_holder = ?2",
                params![id, holder, lease_end(lease)],
            )
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn find_by_trace(&self, trace_id: &str) -> Result<TurnState, TurnStoreError> {
        let id: Option<String> = {
            let connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
            connection
                .query_row(
                    "SELECT id FROM turns WHERE trace_id = ?1 ORDER BY updated_at_ms DESC LIMIT 1",
                    params![trace_id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(|e| self.error(e))?
        };
        match id {
            Some(id) => self.load(&id).await,
            None => Err(TurnStoreError::NotFound(format!("traced as {trace_id}"))),
        }
    }

    async fn list(&self, filter: &TurnFilter) -> Result<Vec<TurnSummary>, TurnStoreError> {
        let connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let limit = if filter.limit == 0 { 50 } else { filter.limit };
        let mut statement = connection
            .prepare(
                "SELECT state FROM turns
                 WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR owner = ?2)
                 ORDER BY updated_at_ms DESC, id LIMIT ?3",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(
                params![
                    filter.status.map(TurnStatus::as_str),
                    filter.owner,
                    limit as i64
                ],
                |row| row.get::<_, String>(0),
            )
            .map_err(|e| self.error(e))?;
        let mut turns = Vec::new();
        for text in rows {
            let text = text.map_err(|e| self.error(e))?;
            // One unreadable row (a newer version's format) does not hide the others.
            match serde_json::from_str::<TurnState>(&text) {
                Ok(state) => turns.push(TurnSummary::of(&state)),
                Err(error) => tracing::warn!("skipping an unreadable turn: {error}"),
            }
        }
        Ok(turns)
    }

    async fn orphaned(&self) -> Result<Vec<String>, TurnStoreError> {
        let connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        let mut statement = connection
            .prepare(
                "SELECT id FROM turns WHERE status = 'running' AND lease_until_ms < ?1
                 ORDER BY updated_at_ms",
            )
            .map_err(|e| self.error(e))?;
        let ids = statement
            .query_map(params![now_ms()], |row| row.get::<_, String>(0))
            .map_err(|e| self.error(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))?;
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::approval::Decision;
    use crate::chat::Message;

    #[tokio::test]
    async fn a_lease_keeps_other_holders_out_until_it_runs_out() {
        let store = SqliteTurnStore::open(":memory:").unwrap();
        let state = TurnState::new("a", "q", vec![Message::user("q")]);
        store
            .save(&state, "one", Duration::from_secs(60))
            .await
            .unwrap();
        let taken = store
            .claim(&state.id, "two", Duration::from_secs(60))
            .await
            .unwrap_err();
        assert!(
            matches!(&taken, TurnStoreError::Leased { holder, .. } if holder == "one"),
            "{taken}"
        );
        assert!(matches!(
            store.save(&state, "two", Duration::ZERO).await,
            Err(TurnStoreError::Leased { .. })
        ));
        assert!(store.orphaned().await.unwrap().is_empty());
        // A released (or expired) lease lets anyone take it; a running turn without a lease is
        // what a crash leaves.
        store.save(&state, "one", Duration::ZERO).await.unwrap();
        assert_eq!(
            store.orphaned().await.unwrap(),
            std::slice::from_ref(&state.id)
        );
        store
            .claim(&state.id, "two", Duration::from_millis(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        store
            .claim(&state.id, "three", Duration::from_secs(60))
            .await
            .unwrap();
        assert!(matches!(
            store.load("nope").await,
            Err(TurnStoreError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn updates_are_atomic_and_a_rejected_change_leaves_the_turn() {
        let store = SqliteTurnStore::open(":memory:").unwrap();
        let mut state = TurnState::new("a", "q", vec![Message::user("q")]);
        state.owner = Some("ada".into());
        store.save(&state, "one", Duration::ZERO).await.unwrap();
        let rejected = store
            .update(&state.id, &mut |s| s.decide("c1", Decision::Approve, None))
            .await
            .unwrap_err();
        assert!(
            matches!(&rejected, TurnStoreError::Rejected(m) if m.contains("not awaiting")),
            "{rejected}"
        );
        assert_eq!(store.load(&state.id).await.unwrap(), state);
        let changed = store
            .update(&state.id, &mut |s| {
                s.status = TurnStatus::Failed;
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(changed.status, TurnStatus::Failed);
        let mine = store
            .list(&TurnFilter {
                owner: Some("ada".into()),
                status: Some(TurnStatus::Failed),
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(mine.len(), 1);
        let others = store
            .list(&TurnFilter {
                owner: Some("bob".into()),
                ..TurnFilter::default()
            })
            .await
            .unwrap();
        assert!(others.is_empty());
    }
}
