//! The embedders this crate implements. The Ollama and OpenAI embedders live with their chat
//! providers in `sextant-agent`, which share those clients.

#[cfg(feature = "local-embedder")]
mod local;

#[cfg(feature = "local-embedder")]
pub use local::{LocalEmbedder, LocalEmbedderFiles};
