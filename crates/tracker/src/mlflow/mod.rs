//! The MLflow tracking server backends, wire-compatible with the Python `mlflow` client.

mod client;
pub mod experiments;
mod prompt_registry;

pub use client::{MlflowClient, MlflowError};
pub use prompt_registry::{MlflowPromptRegistry, mlflow_trace_id, python_json};
