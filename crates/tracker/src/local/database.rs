//! One SQLite file shared by an embedded store's handles, used from async code.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

/// A SQLite database opened the way every embedded store uses it: WAL mode, so readers never
/// block the writer, and a busy timeout, so several processes can write at once by taking turns.
/// Work runs on tokio's blocking pool.
#[derive(Clone)]
pub(crate) struct Database {
    path: PathBuf,
    connection: Arc<Mutex<Connection>>,
}

/// Why work on the database failed: the store's own error `E`, SQLite's, or a panic.
pub(crate) enum WorkError<E> {
    Domain(E),
    Sqlite(rusqlite::Error),
    Panicked(String),
}

impl<E> From<rusqlite::Error> for WorkError<E> {
    fn from(error: rusqlite::Error) -> Self {
        Self::Sqlite(error)
    }
}

impl Database {
    /// Opens (creating it and its directory if needed) the database at `path` and runs `schema`.
    pub(crate) fn open(path: &Path, schema: &str) -> Result<Self, rusqlite::Error> {
        let connection = open_sqlite(path)?;
        connection.execute_batch(schema)?;
        Ok(Self {
            path: path.to_owned(),
            connection: Arc::new(Mutex::new(connection)),
        })
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` with the connection on this thread (for setup, before any async use).
    pub(crate) fn call_now<T>(&self, work: impl FnOnce(&mut Connection) -> T) -> T {
        let mut connection = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        work(&mut connection)
    }

    /// Runs `work` with the connection on the blocking pool.
    pub(crate) async fn call<T: Send + 'static, E: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, WorkError<E>> + Send + 'static,
    ) -> Result<T, WorkError<E>> {
        let connection = self.connection.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves no half-done transaction (it rolls back).
            let mut connection = connection.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut connection)
        })
        .await
        .map_err(|error| WorkError::Panicked(error.to_string()))?
    }
}

/// Opens (creating it and its directory if needed) a SQLite database with WAL and a busy timeout.
pub(crate) fn open_sqlite(path: &Path) -> Result<Connection, rusqlite::Error> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))?;
    }
    let connection = Connection::open(path)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(connection)
}
