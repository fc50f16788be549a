//! Why the runtime could not start or an agent could not be had.

use sextant_agent::BuildError;
use sextant_agent::registry::AgentRegistryError;
use sextant_agent::turn_store::TurnStoreError;
use sextant_tracker::TelemetryError;
use sextant_tracker::tracking::TrackingError;

/// A start-up step that failed, or an agent that could not be resolved or built. The message
/// says which step and why.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The `OTEL_*` variables or the telemetry pipeline.
    #[error("starting telemetry: {0}")]
    Telemetry(#[from] TelemetryError),
    /// The tracking store or the run's spool.
    #[error("starting the tracking run: {0}")]
    Tracking(#[from] TrackingError),
    /// The agent's name, file or registry version.
    #[error(transparent)]
    Agent(#[from] AgentRegistryError),
    /// The agent's model, tools, memory or prompts.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The session and turn stores `[state]` names.
    #[error("opening the state store ([state]): {0}")]
    State(TurnStoreError),
}
