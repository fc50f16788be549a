//! Sextant's HTTP service as a library: agents behind HTTP, observing themselves.
//!
//! - `POST /v1/chat/completions`: OpenAI's chat completions (also streamed as SSE); `model` names
//!   the agent (a file stem in `[serve] agents_dir`, or `models:/name@alias`);
//! - `POST /v1/agents/{name}/invoke`: Sextant's JSON API (answer, trace id, usage, citations);
//! - `POST /mcp`: the agents as MCP tools, `search_memory` and the registry's prompts, over
//!   Streamable HTTP ([`Server::serve_mcp_stdio`] serves the same over stdio: `sextant mcp`);
//! - `GET /v1/turns`, `GET /v1/turns/{id}`, `POST /v1/turns/{id}/decisions`: durable turns that
//!   paused for a person's approval, and the decisions that let them go on;
//! - `GET /v1/models`, `GET /v1/traces/{id}`, `GET /healthz`, `GET /readyz`, `GET /metrics`.
//!
//! A [`Server`] is made from a started [`Runtime`](sextant_runtime::Runtime): its
//! [`router`](Server::router) is a plain axum `Router` that tests call in-process, and
//! [`serve`](Server::serve) runs it on a listener until a shutdown signal, then drains. The
//! `sextant serve` command only parses its arguments, binds and calls these.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use sextant_runtime::{Runtime, SextantConfig};
//! use sextant_server::{Server, shutdown_signal};
//!
//! let config = SextantConfig::load(None)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let runtime = Runtime::builder(config.clone())
//!     .run_best_effort(sextant_server::run_spec(&config, "127.0.0.1:8080"))
//!     .start()
//!     .await?;
//! Server::new(runtime)?.serve(listener, shutdown_signal()).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod a2a;
mod agents;
mod auth;
mod config;
mod error;
mod mcp;
pub mod monitors;
mod openai;
mod routes;
mod server;
mod traces;
mod transport;
mod turn;
mod turns;
mod workflows;

pub use agents::BUILTIN;
pub use auth::{AuthConfig, Caller, KeyConfig, Principal, Role, new_key, valid_user_id};
pub use config::{McpServeConfig, ServeConfig, TraceTrust};
pub use error::ApiError;
pub use server::{Server, ServerError, check_bind, run_spec, shutdown_signal};
pub use turn::{SESSION_HEADER, USER_HEADER};
