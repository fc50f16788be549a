//! Where things live: the workspace, the target dir, xtask's logs, the CI cache.

use std::path::PathBuf;

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .unwrap_or(manifest_dir)
}

/// The cargo target directory: `$CARGO_TARGET_DIR` or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// `target/xtask/logs/`: one log file per server.
pub fn logs_dir() -> PathBuf {
    target_dir().join("xtask").join("logs")
}

/// The scripts run by the servers (`xtask/servers/`).
pub fn servers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("servers")
}

/// The CI cache: `$SEXTANT_CI_CACHE`, else `$HOME/.cache/sextant-ci`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SEXTANT_CI_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache").join("sextant-ci")
}

/// The cargo that runs xtask (`$CARGO`), so `cargo +toolchain xtask` keeps its toolchain.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}
