//! The embedders this crate implements. The Ollama and OpenAI embedders live with their chat
//! providers in `sextant-agent`, which share those clients.

mod local;

pub use local::{LocalEmbedder, LocalEmbedderFiles};
