//! Sextant's composition root: the one start-up path that every command, the service and every
//! example go through.
//!
//! [`Runtime::start`] takes a loaded [`SextantConfig`] and brings up, in this order, what a
//! process needs to run agents that observe themselves:
//! 1. the tracker, after delivering what earlier processes left in the spool (only when a tracking
//!    run is asked for);
//! 2. the process's tracking run, if any, and its MLflow run id (so traces link to it);
//! 3. telemetry: the global tracing subscriber and OpenTelemetry pipeline, exporting to the local
//!    trace store and to OTLP or the MLflow server `[tracking]` names;
//!
//! and then resolves agents by file, stem or `models:/…` URI, returning them already stamped with
//! their registry version ([`Runtime::agent`]). [`Runtime::shutdown`] ends the run and flushes
//! everything, on every exit path.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sextant_runtime::{Runtime, SextantConfig};
//!
//! let runtime = Runtime::start(SextantConfig::load(None)?).await?;
//! let agent = runtime.agent(None).await?; // the default agent
//! let outcome = agent.run("What is 12 * 7 + 3?").await?;
//! println!("{}", outcome.answer);
//! runtime.shutdown().await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod config;
mod error;
mod process;
mod runtime;
mod trace_export;

pub use config::{DEFAULT_CONFIG, SextantConfig};
pub use error::RuntimeError;
pub use process::configure_process;
pub use runtime::{Runtime, RuntimeBuilder, RuntimeReport};
pub use sextant_tracker::tracking::{RunSpec, RunStatus};
