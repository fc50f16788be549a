//! The embedded backends: SQLite files in the data directory, no server.

mod prompt_registry;

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

pub use prompt_registry::LocalPromptRegistry;

/// Opens (creating it and its directory if needed) a SQLite database the way every embedded store
/// uses it: WAL mode, so readers never block the writer, and a busy timeout, so several processes
/// can write at once by taking turns.
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
