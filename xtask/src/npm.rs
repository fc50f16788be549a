//! npm packages in the CI cache, reused while their pinned versions are unchanged: `<cache>/npm/<name>/`
//! is an `npm install --prefix` of the pinned packages, with a marker file recording what was
//! installed (a prefix whose marker differs, or that is half-built, is rebuilt).

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{paths, process};

const MARKER: &str = ".sextant-packages";

pub struct NpmSpec {
    pub name: &'static str,
    pub packages: &'static [&'static str],
}

/// The reference MCP test server (`@modelcontextprotocol/server-everything`: tools, prompts,
/// resources and notifications, over stdio and Streamable HTTP).
pub const MCP_EVERYTHING: NpmSpec = NpmSpec {
    name: "mcp-everything",
    packages: &["@modelcontextprotocol/server-everything@2026.8.31"],
};

pub struct NpmPrefix {
    pub dir: PathBuf,
}

impl NpmPrefix {
    /// `node_modules/.bin/<name>` of this prefix.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("node_modules").join(".bin").join(name)
    }
}

impl NpmSpec {
    /// The prefix, installed or rebuilt if its marker does not match.
    pub fn ensure(&self) -> Result<NpmPrefix> {
        let dir = paths::cache_dir().join("npm").join(self.name);
        let prefix = NpmPrefix { dir: dir.clone() };
        let wanted = format!("npm install {}\n", self.packages.join(" "));
        let marker = dir.join(MARKER);
        if fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
            println!(
                "xtask: npm prefix `{}` is up to date ({})",
                self.name,
                dir.display()
            );
            return Ok(prefix);
        }
        let started = Instant::now();
        println!(
            "xtask: installing {} into {}",
            self.packages.join(" "),
            dir.display()
        );
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .with_context(|| format!("removing the stale npm prefix {}", dir.display()))?;
        }
        fs::create_dir_all(&dir)?;
        let mut cmd = Command::new("npm");
        cmd.args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel",
            "error",
            "--prefix",
        ])
        .arg(&dir)
        .args(self.packages);
        let shown = process::display_command(&cmd);
        let status = process::run_interruptible(&mut cmd)
            .with_context(|| format!("running `{shown}`: is Node.js with npm installed?"))?;
        if !status.success() {
            bail!("`{shown}` failed ({status})");
        }
        fs::write(&marker, &wanted)?;
        println!(
            "xtask: npm prefix `{}` ready in {:.1?}",
            self.name,
            started.elapsed()
        );
        Ok(prefix)
    }
}
