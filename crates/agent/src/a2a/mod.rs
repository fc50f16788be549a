//! The Agent2Agent protocol (A2A 1.0, JSON-RPC binding): its wire types, shared with the service
//! that serves Sextant's agents over A2A, and a client that calls a remote agent as a sub-agent or
//! a workflow node. Enums are spelled as the protocol's JSON mapping spells them
//! (`TASK_STATE_COMPLETED`, `ROLE_USER`), fields in lowerCamelCase.

mod client;
pub mod wire;

pub use client::{A2aClient, A2aError, RemoteAnswer};

/// The protocol version Sextant speaks, sent as the `A2A-Version` header.
pub const PROTOCOL_VERSION: &str = "1.0";
/// The header that names the protocol version of a request.
pub const VERSION_HEADER: &str = "a2a-version";
/// Where an agent's card is, under its base URL.
pub const CARD_PATH: &str = ".well-known/agent-card.json";
