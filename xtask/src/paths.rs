//! Where things live: the workspace, the target dir, xtask's logs, the CI cache.

use std::path::PathBuf;
use std::process::Command;

/// This crate's directory: where `cargo run` says it is, else where it was built. Cargo does not
/// rebuild a path package moved to another checkout that shares the target dir, so the
/// compile-time path can name the old checkout.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.join("servers").is_dir())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = manifest_dir();
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
    manifest_dir().join("servers")
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

/// A command running the cargo that runs xtask (`$CARGO`, so `cargo +toolchain xtask` keeps its
/// toolchain), without the variables `cargo run` set for xtask itself (`CARGO_PKG_NAME=xtask`,
/// `CARGO_MANIFEST_DIR`, …). Build scripts such as ring's watch those with `rerun-if-env-changed`,
/// so passing them on made `cargo xtask test` and a plain `cargo test` rebuild the TLS stack and
/// every crate above it each time one followed the other.
pub fn cargo_command() -> Command {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(is_cargo_run_variable) {
            command.env_remove(&key);
        }
    }
    command
}

/// A variable `cargo run` sets for the binary it runs (not one a user sets to steer cargo).
fn is_cargo_run_variable(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || key.starts_with("CARGO_MANIFEST_")
        || matches!(
            key,
            "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
        )
}

#[cfg(test)]
mod tests {
    use super::is_cargo_run_variable;

    #[test]
    fn only_the_variables_cargo_run_sets_are_dropped() {
        for key in [
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION_MAJOR",
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_LINKS",
            "CARGO_CRATE_NAME",
        ] {
            assert!(is_cargo_run_variable(key), "{key}");
        }
        for key in [
            "CARGO",
            "CARGO_TARGET_DIR",
            "CARGO_HOME",
            "CARGO_INCREMENTAL",
            "CARGO_BUILD_JOBS",
            "RUSTFLAGS",
        ] {
            assert!(!is_cargo_run_variable(key), "{key}");
        }
    }
}
