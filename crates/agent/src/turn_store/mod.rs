//! Where turn state lives: the [`TurnStore`] trait and its backends — the embedded SQLite file in
//! the data directory ([`SqliteTurnStore`], the default) and, for several replicas, PostgreSQL.
//!
//! A turn being run is held under a lease (a holder id and an expiry renewed while it runs):
//! another process may take a turn over only when its lease has run out, so a crashed process's
//! turns are resumed once, by one replica.

mod config;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

pub use config::{StateConfig, StateStores};
pub use sqlite::SqliteTurnStore;

use crate::turn_state::{TurnState, TurnStatus};

/// Why a turn-store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TurnStoreError {
    /// No turn has this id or trace (or the caller may not see it).
    #[error("no turn `{0}` in the turn store (see `sextant turns list`)")]
    NotFound(String),
    /// Another process holds the turn.
    #[error(
        "turn `{id}` is being run by {holder} (lease until {until}); wait for it to finish, or for the lease to run out if that process stopped"
    )]
    Leased {
        /// The turn.
        id: String,
        /// Who holds it.
        holder: String,
        /// When the lease runs out (RFC 3339).
        until: String,
    },
    /// The change asked for does not apply (a decision on a turn that is not waiting …).
    #[error("{0}")]
    Rejected(String),
    /// The store could not be read or written.
    #[error("the turn store {location} failed: {message}")]
    Store {
        /// The database (a file path or a URL without credentials).
        location: String,
        /// What the database said.
        message: String,
    },
}

/// Which turns [`TurnStore::list`] returns.
#[derive(Debug, Clone, Default)]
pub struct TurnFilter {
    /// Only turns in this status.
    pub status: Option<TurnStatus>,
    /// Only this owner's turns (`None` = everyone's).
    pub owner: Option<String>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// A turn as lists show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnSummary {
    /// The turn.
    pub id: String,
    /// Its agent.
    pub agent: String,
    /// Where it is.
    pub status: TurnStatus,
    /// Its session.
    pub session_id: Option<String>,
    /// Who may see it.
    pub owner: Option<String>,
    /// Its trace.
    pub trace_id: Option<String>,
    /// The question.
    pub question: String,
    /// How many calls wait for a decision.
    pub pending_approvals: usize,
    /// When it was last written, milliseconds since the Unix epoch.
    pub updated_at_ms: i64,
}

impl TurnSummary {
    /// The summary of `state`.
    pub fn of(state: &TurnState) -> Self {
        Self {
            id: state.id.clone(),
            agent: state.agent.clone(),
            status: state.status,
            session_id: state.session_id.clone(),
            owner: state.owner.clone(),
            trace_id: state.trace_id.clone(),
            question: state.question.clone(),
            pending_approvals: state.pending_approvals().len(),
            updated_at_ms: state.updated_at_ms,
        }
    }
}

/// A change to a stored turn, made atomically by [`TurnStore::update`]: an error leaves the turn
/// as it was and is returned as [`TurnStoreError::Rejected`].
pub type TurnChange<'a> = &'a mut (dyn FnMut(&mut TurnState) -> Result<(), String> + Send);

/// Where turn state is kept; see the [module docs](self).
#[async_trait]
pub trait TurnStore: Send + Sync {
    /// Writes `state` (inserting or replacing it) as held by `holder` for `lease` from now; a zero
    /// `lease` releases it. Fails with [`TurnStoreError::Leased`] when another holder's lease on
    /// it has not run out.
    async fn save(
        &self,
        state: &TurnState,
        holder: &str,
        lease: Duration,
    ) -> Result<(), TurnStoreError>;

    /// The turn `id`.
    async fn load(&self, id: &str) -> Result<TurnState, TurnStoreError>;

    /// Applies `change` to turn `id` in one transaction (not while another holder's lease runs)
    /// and returns the changed state.
    async fn update(&self, id: &str, change: TurnChange<'_>) -> Result<TurnState, TurnStoreError>;

    /// Takes turn `id` for `holder` for `lease` if no other holder's lease runs, and returns it.
    async fn claim(
        &self,
        id: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<TurnState, TurnStoreError>;

    /// Extends `holder`'s lease on turn `id` by `lease` from now (while a long step runs).
    async fn renew(&self, id: &str, holder: &str, lease: Duration) -> Result<(), TurnStoreError>;

    /// The turn whose first part was traced as `trace_id` (32 hex digits).
    async fn find_by_trace(&self, trace_id: &str) -> Result<TurnState, TurnStoreError>;

    /// Turns matching `filter`, newest first.
    async fn list(&self, filter: &TurnFilter) -> Result<Vec<TurnSummary>, TurnStoreError>;

    /// Ids of `running` turns whose lease has run out: what a crashed process left.
    async fn orphaned(&self) -> Result<Vec<String>, TurnStoreError>;
}

/// A process's handle on a turn store: the store, the holder id its leases are taken under, and
/// how long a lease lasts without renewal (a turn's heartbeat renews it at a third of that).
#[derive(Clone)]
pub struct Checkpoints {
    /// The store.
    pub store: Arc<dyn TurnStore>,
    /// This process's holder id.
    pub holder: String,
    /// How long a lease lasts: how soon another process may take over a turn whose process
    /// stopped.
    pub lease: Duration,
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoints")
            .field("holder", &self.holder)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// Two handles are equal when they share one store under one holder.
impl PartialEq for Checkpoints {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.store, &other.store)
            && self.holder == other.holder
            && self.lease == other.lease
    }
}

impl Checkpoints {
    /// Checkpoints in `store` under a holder id for this process, with 30-second leases.
    pub fn new(store: Arc<dyn TurnStore>) -> Self {
        Self {
            store,
            holder: format!(
                "pid {} ({})",
                std::process::id(),
                &crate::turn_state::new_turn_id()[..8]
            ),
            lease: Duration::from_secs(30),
        }
    }

    /// The same with leases of `lease`.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// Renews the lease on turn `id` every third of the lease until the returned guard drops,
    /// so a long model or tool call does not let another process take the turn over.
    pub(crate) fn heartbeat(&self, id: &str) -> Heartbeat {
        let checkpoints = self.clone();
        let id = id.to_owned();
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(checkpoints.lease / 3);
            every.tick().await;
            loop {
                every.tick().await;
                if let Err(error) = checkpoints
                    .store
                    .renew(&id, &checkpoints.holder, checkpoints.lease)
                    .await
                {
                    tracing::warn!(turn = %id, "renewing the turn's lease: {error}");
                }
            }
        });
        Heartbeat(task)
    }
}

/// Stops a turn's lease renewal when dropped (the turn ended, or its future was dropped).
pub(crate) struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Fails when `holder` may not write a turn that `lease_holder` holds until `until` (ms): the
/// one lease rule both backends apply.
pub(crate) fn check_lease(
    id: &str,
    holder: Option<&str>,
    lease_holder: Option<String>,
    until: i64,
) -> Result<(), TurnStoreError> {
    match lease_holder {
        Some(other) if until > sextant_tracker::now_ms() && Some(other.as_str()) != holder => {
            Err(TurnStoreError::Leased {
                id: id.to_owned(),
                holder: other,
                until: shown_time(until),
            })
        }
        _ => Ok(()),
    }
}

/// When a lease of `lease` taken now runs out (ms); 0 for none.
pub(crate) fn lease_end(lease: Duration) -> i64 {
    if lease.is_zero() {
        0
    } else {
        sextant_tracker::now_ms() + lease.as_millis() as i64
    }
}

/// A lease expiry as RFC 3339, for errors.
pub(crate) fn shown_time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}
