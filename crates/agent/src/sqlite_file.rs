//! Opening a SQLite file that several processes share (the sessions and the turn state in
//! `sessions.db`): its directory created, a busy timeout so writers queue instead of failing, and
//! WAL so readers never wait on a writer.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

/// The connection to the SQLite file at `path` (`:memory:` for one of its own); the error says
/// what failed.
pub(crate) fn open_shared(path: &Path) -> Result<Connection, String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let connection = Connection::open(path).map_err(|e| e.to_string())?;
    connection
        .busy_timeout(Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    // Switching to WAL needs the file to itself and does not wait on the busy handler: try again
    // while another connection (process) is opening the file too.
    let mut attempts = 0;
    while let Err(e) = connection.pragma_update(None, "journal_mode", "WAL") {
        attempts += 1;
        let busy = e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy);
        if !busy || attempts >= 200 {
            return Err(e.to_string());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(connection)
}
