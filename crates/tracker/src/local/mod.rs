//! The embedded backends: SQLite files (and artifact files) in the data directory, no server.

mod database;
mod model_registry;
mod prompt_registry;
mod tracking_store;

pub(crate) use database::open_sqlite;
pub use model_registry::LocalModelRegistry;
pub use prompt_registry::LocalPromptRegistry;
pub use tracking_store::LocalTrackingStore;
