//! `[state]`: where turn state is kept, and how turns are checkpointed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{Checkpoints, SqliteTurnStore, TurnStore, TurnStoreError};

/// `[state]` of the configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// Where turn state lives: unset = `sessions.db` in the data directory; a path (or
    /// `sqlite://PATH`) = that SQLite file.
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

    /// The turn store this names, with data under `data_dir`.
    pub fn open(&self, data_dir: &Path) -> Result<Arc<dyn TurnStore>, TurnStoreError> {
        let path = match self.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
            None => data_dir.join("sessions.db"),
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) => path.into(),
                None if url.contains("://") => {
                    return Err(TurnStoreError::Store {
                        location: sextant_tracker::conventions::shown_url(
                            url,
                            sextant_tracker::conventions::UrlParts::Location,
                        ),
                        message: "`[state] url` must be a SQLite file path or `sqlite://PATH`"
                            .into(),
                    });
                }
                None => url.into(),
            },
        };
        Ok(Arc::new(SqliteTurnStore::open(path)?))
    }

    /// The checkpoints of a process, when `checkpoints` is on.
    pub fn checkpoints(&self, data_dir: &Path) -> Result<Option<Checkpoints>, TurnStoreError> {
        if !self.checkpoints {
            return Ok(None);
        }
        Ok(Some(
            Checkpoints::new(self.open(data_dir)?).with_lease(Duration::from_secs(self.lease_secs)),
        ))
    }
}
