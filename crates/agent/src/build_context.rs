//! [`BuildContext`]: what building agents, their models, memory and prompts reads from the
//! configuration — the agent crate's own sections and those of the crates it builds from — and
//! nothing else. The composition root makes one from the whole configuration.

use std::path::PathBuf;
use std::sync::Arc;

use sextant_memory::MemoryConfig;
use sextant_tools::ToolsConfig;
use sextant_tools::mcp::McpServers;
use sextant_tracker::TrackingConfig;
use sextant_tracker::prompts::{CachedPromptRegistry, RegistryError};

use crate::model_files::{ModelCache, ModelFilesError};
use crate::providers::ProvidersConfig;
use crate::retry::RetryConfig;

/// The settings agents are built with; see the [module docs](self).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// let mut context = sextant_agent::BuildContext::new(dir.path());
/// context.providers.local.threads = Some(1);
/// context.capture_content = true;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BuildContext {
    /// Provider endpoints and credentials (`[providers]`).
    pub providers: ProvidersConfig,
    /// Retries and timeouts of chat calls (`[retry]`).
    pub retry: RetryConfig,
    /// Tool limits and the built-in tools' settings (`[tools]`).
    pub tools: ToolsConfig,
    /// The MCP servers agents may take tools, prompts and resources from (`[mcp]`), with the
    /// process's connections to them (clones of a context share them).
    pub mcp: McpServers,
    /// Embedder, vector store, chunking and retrieval (`[memory]`).
    pub memory: MemoryConfig,
    /// Where the prompt and model registries live (`[tracking]`).
    pub tracking: TrackingConfig,
    /// Whether agents record message content on spans unless their file says otherwise
    /// (`[telemetry] capture_content`).
    pub capture_content: bool,
    /// The data directory: registries, vector collections.
    pub data_dir: PathBuf,
    /// Where model files are cached; `None`: `SEXTANT_HOME`/the platform's cache directory.
    pub models_dir: Option<PathBuf>,
    /// Where agents named by a stem (`agents = ["researcher"]`, a workflow's `agent` node) are
    /// looked for after the naming file's own directory (`[agent] dir`).
    pub agents_dir: Option<PathBuf>,
    /// Where the agents' turns are checkpointed (`[state]`); `None`: turns are not persisted.
    pub checkpoints: Option<crate::turn_store::Checkpoints>,
    /// What model calls cost (`[prices]`).
    pub prices: std::sync::Arc<crate::prices::PriceTable>,
    /// What sessions and run artifacts have replaced by placeholders before they are stored
    /// (`[telemetry.redaction]`; spans are redacted by the telemetry pipeline itself).
    pub redactor: Arc<sextant_tracker::redaction::Redactor>,
}

impl BuildContext {
    /// Every section at its default, with data under `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            providers: ProvidersConfig::default(),
            retry: RetryConfig::default(),
            tools: ToolsConfig::default(),
            mcp: McpServers::default(),
            memory: MemoryConfig::default(),
            tracking: TrackingConfig::default(),
            capture_content: false,
            data_dir: data_dir.into(),
            models_dir: None,
            agents_dir: None,
            checkpoints: None,
            prices: crate::prices::PriceTable::built_in(),
            redactor: Arc::new(sextant_tracker::redaction::Redactor::default()),
        }
    }

    /// Where the default model files live.
    pub fn model_cache(&self) -> Result<ModelCache, ModelFilesError> {
        match &self.models_dir {
            Some(dir) => ModelCache::builder().root(dir.clone()).build(),
            None => ModelCache::from_env(),
        }
    }

    /// The prompt registry `[tracking]` names (embedded: `registry.db` in the data directory),
    /// behind its alias cache.
    pub fn prompt_registry(&self) -> Result<Arc<CachedPromptRegistry>, RegistryError> {
        self.tracking.prompt_registry(&self.data_dir)
    }
}
