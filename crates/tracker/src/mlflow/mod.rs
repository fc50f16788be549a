//! The MLflow tracking server backends, wire-compatible with the Python `mlflow` client.

mod client;
mod datasets;
mod model_registry;
mod prompt_registry;
mod tracking_store;
mod wire;

pub use client::{MlflowClient, MlflowError};
pub use datasets::{MlflowDataset, MlflowDatasets};
pub use model_registry::MlflowModelRegistry;
pub use prompt_registry::{MlflowPromptRegistry, mlflow_trace_id};
pub use tracking_store::MlflowTrackingStore;
