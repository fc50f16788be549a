//! [`Runtime`]: the configuration, the telemetry guard, the tracker and the current run of one
//! process, and the agents it resolves; see the [crate docs](crate).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sextant_agent::memory::{MemoryBuildError, build_embedder, build_store};
use sextant_agent::model_files::{ModelCache, ModelFilesError};
use sextant_agent::registry::{AgentRegistry, AgentRegistryError, ServedAgent, load_agent};
use sextant_agent::session::SessionStore;
use sextant_agent::turn_store::Checkpoints;
use sextant_agent::{Agent, AgentConfig, BuildContext};
use sextant_memory::{Embedder, VectorStore};
use sextant_tracker::model_registry::{ModelRegistry, ModelUri, ModelVersion};
use sextant_tracker::prompts::{CachedPromptRegistry, RegistryError};
use sextant_tracker::tracking::{
    ActiveRun, Assessment, RunReport, RunSpec, RunStatus, Tracker, TrackingError, TrackingStore,
};
use sextant_tracker::{
    LocalTraceStore, ShutdownReport, StoredSpan, Telemetry, TelemetryError, TelemetryGuard,
    TrackingBackend,
};

use crate::config::SextantConfig;
use crate::error::RuntimeError;
use crate::trace_export::telemetry_config;

/// How long start-up waits for an MLflow server to create the run, so that the process's traces
/// can name it. Past it the run spools and the traces go unlinked.
const MLFLOW_RUN_ID_WAIT: Duration = Duration::from_secs(3);

/// How a [`Runtime`] starts; made by [`Runtime::builder`].
#[must_use = "a builder does nothing until `start` is called"]
pub struct RuntimeBuilder {
    config: SextantConfig,
    run: Option<RunSpec>,
    run_best_effort: bool,
    telemetry: bool,
    install_globally: bool,
}

impl RuntimeBuilder {
    /// Logs the process's life as a tracking run (when `[tracking] log_runs` is on). The run is
    /// started before telemetry so that, on MLflow, traces link to it. A tracking store that cannot
    /// be opened fails [`RuntimeBuilder::start`].
    pub fn run(mut self, spec: RunSpec) -> Self {
        self.run = Some(spec);
        self.run_best_effort = false;
        self
    }

    /// [`RuntimeBuilder::run`], except that a tracking store that cannot be opened costs the run
    /// (with a warning), not the start: what a long-lived service wants.
    pub fn run_best_effort(mut self, spec: RunSpec) -> Self {
        self.run = Some(spec);
        self.run_best_effort = true;
        self
    }

    /// Without telemetry: no trace pipeline, no log subscriber. For commands that only read or
    /// write the stores (registries, sessions, traces) and run no agent.
    pub fn without_telemetry(mut self) -> Self {
        self.telemetry = false;
        self
    }

    /// Builds the telemetry pipeline without installing it as the process's global subscriber and
    /// providers: for tests and for hosts that install their own subscriber around
    /// [`TelemetryGuard::layer`].
    pub fn local_telemetry(mut self) -> Self {
        self.install_globally = false;
        self
    }

    /// The configuration of the agent `name` names, resolved before start so that the run can be
    /// named after it; see [`Runtime::agent_config`].
    pub async fn resolve_agent(
        &self,
        name: Option<&str>,
    ) -> Result<(AgentConfig, Option<ModelVersion>), RuntimeError> {
        resolve_agent(&self.config, &self.config.build_context(), name).await
    }

    /// The configuration the runtime will start from.
    pub fn config(&self) -> &SextantConfig {
        &self.config
    }

    /// Starts the tracker (delivering what earlier processes spooled), the run, and telemetry.
    pub async fn start(self) -> Result<Runtime, RuntimeError> {
        let config = self.config;
        // `validate` has checked the list when the configuration was loaded.
        if let Ok(policy) = config.telemetry.propagation_policy() {
            sextant_trace_context::set_policy(policy);
        }
        let run = match self.run {
            Some(spec) if config.tracking.log_runs => {
                match start_run(&config, spec).await {
                    Ok(run) => Some(run),
                    Err(error) if self.run_best_effort => {
                        // No subscriber yet: this goes to stderr directly.
                        eprintln!("warning: running without a tracking run: {error}");
                        None
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            _ => None,
        };
        let mlflow_run_id = match (&run, config.tracking.backend()) {
            (Some(run), Ok(TrackingBackend::Mlflow(_))) => run.run_id(MLFLOW_RUN_ID_WAIT).await,
            _ => None,
        };
        let telemetry = if self.telemetry {
            let (telemetry, warning) = telemetry_config(&config, mlflow_run_id.as_deref()).await?;
            let guard = if self.install_globally {
                sextant_tracker::init(&telemetry)?
            } else {
                Telemetry::builder(&telemetry).build()?
            };
            if let Some(warning) = warning {
                tracing::warn!("{warning}");
            }
            Some(Arc::new(guard))
        } else {
            None
        };
        let mut context = config.build_context();
        let stores = config
            .state
            .open(&config.data_dir())
            .await
            .map_err(RuntimeError::State)?;
        context.checkpoints = config.state.checkpoints(&stores.turns);
        Ok(Runtime {
            sessions: stores.sessions.with_redactor(context.redactor.clone()),
            context,
            config,
            telemetry,
            run: Mutex::new(run),
            mlflow_run_id,
        })
    }
}

/// The tracker, after a replay of what earlier processes could not deliver, and a run on it.
async fn start_run(config: &SextantConfig, spec: RunSpec) -> Result<ActiveRun, TrackingError> {
    let redactor = Arc::new(config.telemetry.redactor().unwrap_or_default());
    let tracker = config
        .tracking
        .tracker(&config.data_dir())?
        .with_redactor(redactor);
    match tracker.replay().await {
        Ok(report) if !report.delivered.is_empty() => tracing::info!(
            "delivered {} spooled run(s) to the tracking store",
            report.delivered.len()
        ),
        Ok(_) => {}
        Err(error) => tracing::warn!("replaying spooled tracking writes failed: {error}"),
    }
    tracker.start_run(spec)
}

/// What [`Runtime::shutdown`] delivered.
#[derive(Debug, Default)]
pub struct RuntimeReport {
    /// How the run's writes ended up, if the process had a run.
    pub run: Option<RunReport>,
    /// What telemetry exported and dropped, if it was on.
    pub telemetry: Option<ShutdownReport>,
}

/// One process's configuration, telemetry, tracking run and agents; see the [crate docs](crate).
pub struct Runtime {
    config: SextantConfig,
    context: BuildContext,
    sessions: SessionStore,
    telemetry: Option<Arc<TelemetryGuard>>,
    run: Mutex<Option<ActiveRun>>,
    mlflow_run_id: Option<String>,
}

impl Runtime {
    /// How a runtime for `config` starts: with telemetry, without a tracking run.
    pub fn builder(config: SextantConfig) -> RuntimeBuilder {
        RuntimeBuilder {
            config,
            run: None,
            run_best_effort: false,
            telemetry: true,
            install_globally: true,
        }
    }

    /// Starts a runtime for `config` with telemetry and no tracking run.
    pub async fn start(config: SextantConfig) -> Result<Self, RuntimeError> {
        Self::builder(config).start().await
    }

    /// The configuration it started from.
    pub fn config(&self) -> &SextantConfig {
        &self.config
    }

    /// What building agents reads from the configuration.
    pub fn build_context(&self) -> &BuildContext {
        &self.context
    }

    /// The telemetry pipeline (`None` when started [without](RuntimeBuilder::without_telemetry)).
    pub fn telemetry(&self) -> Option<&Arc<TelemetryGuard>> {
        self.telemetry.as_ref()
    }

    /// Whether the process has a tracking run that has not ended.
    pub fn has_run(&self) -> bool {
        self.lock_run().is_some()
    }

    /// Calls `log` with the process's tracking run, if it has one that has not ended (logging
    /// never waits for the backend: writes are spooled).
    pub fn with_run<R>(&self, log: impl FnOnce(&ActiveRun) -> R) -> Option<R> {
        self.lock_run().as_ref().map(log)
    }

    fn lock_run(&self) -> std::sync::MutexGuard<'_, Option<ActiveRun>> {
        self.run
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The MLflow id of the run, when the run is on an MLflow server and was created in time.
    pub fn mlflow_run_id(&self) -> Option<&str> {
        self.mlflow_run_id.as_deref()
    }

    /// Exports every span ended so far and waits for it. A backend that refuses costs the export
    /// (the local store keeps the spans), so callers usually log the error and go on.
    pub fn flush(&self) -> Result<(), TelemetryError> {
        match &self.telemetry {
            Some(telemetry) => telemetry.force_flush(),
            None => Ok(()),
        }
    }

    /// The local trace store: the pipeline's, or the file in the data dir for a runtime without
    /// telemetry.
    pub fn trace_store(&self) -> Result<LocalTraceStore, RuntimeError> {
        if let Some(store) = self.telemetry.as_ref().and_then(|t| t.trace_store()) {
            return Ok(store.clone());
        }
        LocalTraceStore::open(self.config.trace_store_path())
            .map_err(|error| RuntimeError::Telemetry(error.into()))
    }

    /// The spans of trace `trace_id` from the local trace store, after exporting every span ended
    /// so far (an export that fails costs a warning: the local store is written first). Empty
    /// without a local store.
    pub fn trace_spans(&self, trace_id: &str) -> Result<Vec<StoredSpan>, RuntimeError> {
        let Some(telemetry) = &self.telemetry else {
            return Ok(self
                .trace_store()?
                .spans(trace_id)
                .map_err(TelemetryError::from)?);
        };
        if let Err(error) = telemetry.force_flush() {
            tracing::warn!("exporting the trace's spans failed: {error}");
        }
        match telemetry.trace_store() {
            Some(store) => Ok(store.spans(trace_id).map_err(TelemetryError::from)?),
            None => Ok(Vec::new()),
        }
    }

    /// [`Runtime::trace_spans`] as the function scorers read a finished turn's trace with
    /// (`EvalOptions::spans`): a failed read is logged and reads as no spans. It flushes the
    /// pipeline in place, so it needs a multi-threaded Tokio runtime.
    pub fn spans_reader(&self) -> impl Fn(&str) -> Vec<StoredSpan> + Send + Sync + '_ {
        move |trace_id: &str| {
            tokio::task::block_in_place(|| {
                self.trace_spans(trace_id).unwrap_or_else(|error| {
                    tracing::warn!("reading the spans of trace {trace_id} failed: {error}");
                    Vec::new()
                })
            })
        }
    }

    /// A tracker on the tracking store `[tracking]` names, for processes that log more runs than
    /// their own (a sweep's child runs, one run per evaluated version). Writes spool under the
    /// data dir like the process's run.
    pub fn tracker(&self) -> Result<Tracker, TrackingError> {
        Ok(self
            .context
            .tracking
            .tracker(&self.context.data_dir)?
            .with_redactor(self.context.redactor.clone()))
    }

    /// Attaches `assessment` (feedback, a monitor's score, a decision) to its trace: a copy is
    /// kept beside the trace in the local store, so `sextant traces search` finds it
    /// (`feedback.thumbs = false`), and the record goes to the tracking store — through the
    /// process's run when it has one (spooled, so an outage loses nothing), else directly.
    pub async fn log_assessment(&self, mut assessment: Assessment) -> Result<(), TrackingError> {
        assessment.validate()?;
        assessment.redact(&self.context.redactor, &mut Default::default());
        match self.trace_store() {
            Ok(store) => {
                let copy = assessment.clone();
                let mirrored =
                    tokio::task::spawn_blocking(move || store.record_assessment(&copy)).await;
                match mirrored {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::warn!(
                        "the assessment {} of trace {} is not searchable locally: {error}",
                        assessment.name,
                        assessment.trace_id
                    ),
                    Err(error) => tracing::warn!("storing an assessment locally panicked: {error}"),
                }
            }
            Err(error) => tracing::warn!("no local trace store for assessments: {error}"),
        }
        let mut unsent = Some(assessment);
        self.with_run(|run| {
            if let Some(assessment) = unsent.take() {
                run.log_assessment(assessment);
            }
        });
        match unsent {
            Some(assessment) => self
                .tracking_store()?
                .log_assessment(&assessment)
                .await
                .map(drop),
            None => Ok(()),
        }
    }

    /// The tracking store `[tracking]` names.
    pub fn tracking_store(&self) -> Result<Arc<dyn TrackingStore>, TrackingError> {
        self.context.tracking.tracking_store(&self.context.data_dir)
    }

    /// The model registry `[tracking]` names.
    pub fn model_registry(
        &self,
    ) -> Result<Arc<dyn ModelRegistry>, sextant_tracker::model_registry::ModelRegistryError> {
        self.context.tracking.model_registry(&self.context.data_dir)
    }

    /// The prompt registry `[tracking]` names, behind its alias cache.
    pub fn prompt_registry(&self) -> Result<Arc<CachedPromptRegistry>, RegistryError> {
        self.context.prompt_registry()
    }

    /// Agent configurations as registered models.
    pub fn agent_registry(&self) -> Result<AgentRegistry, AgentRegistryError> {
        AgentRegistry::from_context(&self.context)
    }

    /// The embedder `[memory.embedder]` names (the local one is pulled on first use).
    pub async fn embedder(&self) -> Result<Arc<dyn Embedder>, MemoryBuildError> {
        build_embedder(&self.context).await
    }

    /// The vector store `[memory] store` names.
    pub fn vector_store(&self) -> Result<Arc<dyn VectorStore>, MemoryBuildError> {
        build_store(&self.context)
    }

    /// Where the default model files live.
    pub fn model_cache(&self) -> Result<ModelCache, ModelFilesError> {
        self.context.model_cache()
    }

    /// Where this process checkpoints turns (`[state]`), unless checkpoints are off.
    pub fn checkpoints(&self) -> Option<&Checkpoints> {
        self.context.checkpoints.as_ref()
    }

    /// The stored conversations.
    pub fn session_store(&self) -> Result<SessionStore, sextant_agent::session::SessionError> {
        Ok(self.sessions.clone())
    }

    /// The configuration of the agent `name` names — a `models:/…` URI (with the registry version
    /// it resolved to), an agent file, or with `None` `[agent] default` or the built-in assistant —
    /// for callers that change it before [`Runtime::build_agent`].
    pub async fn agent_config(
        &self,
        name: Option<&str>,
    ) -> Result<(AgentConfig, Option<ModelVersion>), RuntimeError> {
        resolve_agent(&self.config, &self.context, name).await
    }

    /// The agent `agent` describes, stamped with `version` (it records `models:/name/N` on its
    /// traces and runs).
    pub async fn build_agent(
        &self,
        agent: &AgentConfig,
        version: Option<&ModelVersion>,
    ) -> Result<Agent, RuntimeError> {
        let built = agent.build(&self.context).await?;
        Ok(match version {
            Some(version) => built.with_model_version(version.uri().to_string()),
            None => built,
        })
    }

    /// The agent `name` names (see [`Runtime::agent_config`]), built and stamped with its version.
    pub async fn agent(&self, name: Option<&str>) -> Result<Agent, RuntimeError> {
        let (agent, version) = self.agent_config(name).await?;
        self.build_agent(&agent, version.as_ref()).await
    }

    /// The agent file at `path`, built.
    pub async fn agent_from_file(&self, path: &Path) -> Result<Agent, RuntimeError> {
        let agent = AgentConfig::load(path).map_err(AgentRegistryError::from)?;
        self.build_agent(&agent, None).await
    }

    /// An agent served from `uri` for a long-lived process: re-resolved after `[tracking]
    /// model_alias_ttl_secs`, so promoting a version changes what is served without a restart.
    pub fn served_agent(&self, uri: ModelUri) -> Result<ServedAgent, AgentRegistryError> {
        let ttl = self.config.tracking.model_alias_ttl();
        Ok(ServedAgent::new(
            self.agent_registry()?,
            self.context.clone(),
            uri,
            ttl,
        ))
    }

    /// Ends the run with `status` (delivering what it can, spooling the rest); `None` when the
    /// process has no run or it has ended.
    pub async fn end_run(&self, status: RunStatus) -> Option<RunReport> {
        let run = self.lock_run().take();
        match run {
            Some(run) => Some(run.end(status).await),
            None => None,
        }
    }

    /// Ends the run (as finished, unless [`Runtime::end_run`] ended it already), then flushes and
    /// shuts telemetry down. Dropping a runtime instead flushes too, but loses the reports.
    pub async fn shutdown(mut self) -> Result<RuntimeReport, TelemetryError> {
        // MCP servers over stdio get to exit on their own (and flush) before this process does.
        self.context.mcp.shutdown().await;
        let run = self.end_run(RunStatus::Finished).await;
        let telemetry = match self.telemetry.take() {
            // The guard flushes and shuts down synchronously: off the async workers.
            Some(guard) => tokio::task::spawn_blocking(move || match Arc::try_unwrap(guard) {
                Ok(guard) => guard.shutdown().map(Some),
                // Someone still holds the pipeline: flush now; it shuts down with the last holder.
                Err(shared) => shared.force_flush().map(|()| None),
            })
            .await
            .map_err(|error| TelemetryError::Shutdown(error.to_string()))??,
            None => None,
        };
        Ok(RuntimeReport { run, telemetry })
    }
}

/// The agent `name` names (a file, a registry URI, or `[agent] default` when `None`), with the
/// registry version it resolved to: what the builder and the runtime resolve alike.
async fn resolve_agent(
    config: &SextantConfig,
    context: &BuildContext,
    name: Option<&str>,
) -> Result<(AgentConfig, Option<ModelVersion>), RuntimeError> {
    Ok(load_agent(context, name, config.agent.default.as_deref()).await?)
}
