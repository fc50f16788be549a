//! `[state]`: where turn state is kept, and how turns are checkpointed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{Checkpoints, SqliteTurnStore, TurnStore, TurnStoreError};
use crate::session::SessionStore;

/// `[state]` of the configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Where sessions and turn state live: unset = `sessions.db` in the data directory; a path
    /// (or `sqlite://PATH`) = that SQLite file; `postgres://USER:PASSWORD@HOST:PORT/DATABASE` = a
    /// PostgreSQL database shared by replicas.
    pub url: Option<String>,
    /// Checkpoint every turn after each step, so it can pause for approval and survive a crash.
    pub checkpoints: bool,
    /// How long a process's lease on a running turn lasts without renewal, in seconds: how soon
    /// another process may take over the turns of one that stopped.
    pub lease_secs: u64,
    /// `sextant serve` resumes, at start-up, the turns a stopped process left running (the ones
    /// whose lease ran out).
    pub resume_on_start: bool,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            url: None,
            checkpoints: true,
            lease_secs: 30,
            resume_on_start: true,
        }
    }
}

impl StateConfig {
    /// What is wrong with the section, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.lease_secs == 0 {
            return Some("`lease_secs` must be at least 1".into());
        }
        None
    }

    /// The stores this names, with data under `data_dir`: SQLite files, or one PostgreSQL
    /// database for both sessions and turns.
    pub async fn open(&self, data_dir: &Path) -> Result<StateStores, TurnStoreError> {
        let url = self.url.as_deref().map(str::trim).filter(|u| !u.is_empty());
        if let Some(url) = url
            && (url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            #[cfg(feature = "postgres")]
            {
                let state = Arc::new(crate::postgres_state::PostgresState::connect(url).await?);
                return Ok(StateStores {
                    sessions: SessionStore::with_backend(state.clone()),
                    turns: state,
                });
            }
            #[cfg(not(feature = "postgres"))]
            return Err(TurnStoreError::Store {
                location: shown(url),
                message: "this build leaves PostgreSQL out (cargo feature `postgres`)".into(),
            });
        }
        let path = match url {
            None => data_dir.join("sessions.db"),
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) => path.into(),
                None if url.contains("://") => {
                    return Err(TurnStoreError::Store {
                        location: shown(url),
                        message: "`[state] url` must be a SQLite file path, `sqlite://PATH` or \
                                  `postgres://USER@HOST:PORT/DATABASE`"
                            .into(),
                    });
                }
                None => url.into(),
            },
        };
        let sessions = SessionStore::open(&path).map_err(|error| TurnStoreError::Store {
            location: path.display().to_string(),
            message: error.to_string(),
        })?;
        Ok(StateStores {
            sessions,
            turns: Arc::new(SqliteTurnStore::open(path)?),
        })
    }

    /// The checkpoints of a process over `turns`, when `checkpoints` is on.
    pub fn checkpoints(&self, turns: &Arc<dyn TurnStore>) -> Option<Checkpoints> {
        self.checkpoints.then(|| {
            Checkpoints::new(turns.clone()).with_lease(Duration::from_secs(self.lease_secs))
        })
    }
}

/// The stores `[state]` names.
#[derive(Clone)]
pub struct StateStores {
    /// The sessions.
    pub sessions: SessionStore,
    /// The turn state.
    pub turns: Arc<dyn TurnStore>,
}

fn shown(url: &str) -> String {
    sextant_tracker::conventions::shown_url(url, sextant_tracker::conventions::UrlParts::Location)
}
