//! [`ToolSet`]: the tools an agent may call, by name, with the limits each call runs under.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{ToolConfigError, ToolsConfig};
use crate::{Tool, ToolError, ToolLimits, ToolOutput, builtin};

/// A set of tools, keyed by name, and the limits their calls run under.
#[derive(Clone)]
pub struct ToolSet {
    tools: BTreeMap<String, Arc<dyn Tool>>,
    default_limits: ToolLimits,
    limits: BTreeMap<String, ToolLimits>,
    max_parallel: usize,
}

impl Default for ToolSet {
    fn default() -> Self {
        Self {
            tools: BTreeMap::new(),
            default_limits: ToolLimits::default(),
            limits: BTreeMap::new(),
            max_parallel: ToolsConfig::default().max_parallel,
        }
    }
}

/// A tool name that is not in the set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tool `{name}`; available tools: {}", available.join(", "))]
pub struct UnknownTool {
    /// The name asked for.
    pub name: String,
    /// The names that exist.
    pub available: Vec<String>,
}

/// Why [`ToolSet::from_config`] could not build a set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolSetError {
    /// A name that is not a built-in tool.
    #[error(transparent)]
    Unknown(#[from] UnknownTool),
    /// A tool's configuration is unusable.
    #[error("tool `{tool}`: {error}")]
    Config {
        /// The tool.
        tool: String,
        /// What is wrong.
        error: ToolConfigError,
    },
}

impl ToolSet {
    /// An empty set with default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every built-in tool, with the default configuration (offline corpus search, simulated
    /// weather, guarded fetch).
    pub fn builtin() -> Self {
        Self::from_config(builtin::NAMES, &ToolsConfig::default())
            .expect("the default tool configuration is valid")
    }

    /// The built-in tools named by `names`, configured by `config`, with its limits. Only the named
    /// tools are built, so a backend that is not used needs no key.
    pub fn from_config<S: AsRef<str>>(
        names: &[S],
        config: &ToolsConfig,
    ) -> Result<Self, ToolSetError> {
        config.validate().map_err(|error| ToolSetError::Config {
            tool: "*".into(),
            error,
        })?;
        let mut set = ToolSet::new()
            .with_default_limits(config.default_limits())
            .with_max_parallel(config.max_parallel);
        for name in names {
            let name = name.as_ref();
            let tool = builtin::build(name, config)
                .map_err(|error| ToolSetError::Config {
                    tool: name.to_owned(),
                    error,
                })?
                .ok_or_else(|| UnknownTool {
                    name: name.to_owned(),
                    available: builtin::NAMES.iter().map(|n| (*n).to_owned()).collect(),
                })?;
            set.insert(tool);
        }
        for name in config.limits.keys() {
            set.limits.insert(name.clone(), config.limits_for(name));
        }
        Ok(set)
    }

    /// This set with `tool` added (replacing a tool of the same name).
    pub fn with(mut self, tool: impl Tool + 'static) -> Self {
        self.insert(Arc::new(tool));
        self
    }

    /// Adds `tool`, replacing a tool of the same name.
    pub fn insert(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.name().to_owned(), tool);
    }

    /// This set with `limits` for every tool that has no limits of its own.
    pub fn with_default_limits(mut self, limits: ToolLimits) -> Self {
        self.default_limits = limits;
        self
    }

    /// This set with `limits` for the tool called `name`.
    pub fn with_limits(mut self, name: &str, limits: ToolLimits) -> Self {
        self.limits.insert(name.to_owned(), limits);
        self
    }

    /// This set allowing at most `max` calls at once (at least 1).
    pub fn with_max_parallel(mut self, max: usize) -> Self {
        self.max_parallel = max.max(1);
        self
    }

    /// The limits a call of `name` runs under.
    pub fn limits(&self, name: &str) -> ToolLimits {
        self.limits
            .get(name)
            .copied()
            .unwrap_or(self.default_limits)
    }

    /// Most calls run at once in one step.
    pub fn max_parallel(&self) -> usize {
        self.max_parallel
    }

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    /// The subset named by `names`, in the order given, with this set's limits; an unknown name is
    /// an error listing the available ones.
    pub fn select<S: AsRef<str>>(&self, names: &[S]) -> Result<ToolSet, UnknownTool> {
        let mut selected = ToolSet {
            tools: BTreeMap::new(),
            ..self.clone()
        };
        for name in names {
            let name = name.as_ref();
            let tool = self.get(name).ok_or_else(|| UnknownTool {
                name: name.to_owned(),
                available: self.names().map(str::to_owned).collect(),
            })?;
            selected.insert(tool.clone());
        }
        Ok(selected)
    }

    /// Calls the tool `name` with `arguments` as the model wrote them (JSON text): the tool is
    /// looked up, the arguments parsed and checked against its schema, the call bounded by its
    /// timeout and the result cut to its size limit. Every failure is a [`ToolError`] whose message
    /// tells the model what to do differently.
    pub async fn invoke(&self, name: &str, arguments: &str) -> Result<ToolOutput, ToolError> {
        let tool = self.get(name).ok_or_else(|| ToolError::UnknownTool {
            name: name.to_owned(),
            available: self.names().map(str::to_owned).collect(),
        })?;
        let arguments: serde_json::Value = if arguments.trim().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_json::from_str(arguments).map_err(|e| {
                ToolError::InvalidArguments(format!(
                    "the arguments are not valid JSON ({e}); send a JSON object that matches the tool's schema"
                ))
            })?
        };
        // Checked here for every tool, so the model learns what was wrong and where before the
        // tool sees the call.
        crate::validate_arguments(&tool.parameters(), &arguments)
            .map_err(|violation| ToolError::InvalidArguments(violation.to_string()))?;
        let limits = self.limits(name);
        let text = tokio::time::timeout(limits.timeout, tool.call(arguments))
            .await
            .map_err(|_| ToolError::Timeout(limits.timeout))??;
        Ok(ToolOutput::limited(text, limits.max_result_chars))
    }

    /// The names of the tools, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tools.keys().map(String::as_str)
    }

    /// The tools, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Tool>> {
        self.tools.values()
    }

    /// Whether the set has no tools.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// How many tools the set has.
    pub fn len(&self) -> usize {
        self.tools.len()
    }
}

impl std::fmt::Debug for ToolSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolSet")
            .field("tools", &self.tools.keys().collect::<Vec<_>>())
            .field("default_limits", &self.default_limits)
            .field("limits", &self.limits)
            .field("max_parallel", &self.max_parallel)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde::Deserialize;

    use super::*;
    use crate::tool_fn;

    #[test]
    fn select_keeps_known_tools_and_names_the_unknown_one() {
        let tools = ToolSet::builtin();
        let selected = tools.select(&["calculator"]).unwrap();
        assert_eq!(selected.names().collect::<Vec<_>>(), ["calculator"]);

        let err = tools.select(&["calculator", "teleport"]).unwrap_err();
        assert_eq!(err.name, "teleport");
        assert!(
            err.to_string()
                .contains("available tools: calculator, current_time"),
            "{err}"
        );
    }

    #[test]
    fn from_config_builds_the_named_tools_with_their_limits() {
        let mut config = ToolsConfig::default();
        config.limits.insert(
            "web_search".into(),
            crate::config::LimitsOverride {
                timeout_secs: Some(2.5),
                max_result_chars: None,
            },
        );
        let set = ToolSet::from_config(&["web_search", "current_time"], &config).unwrap();
        assert_eq!(
            set.names().collect::<Vec<_>>(),
            ["current_time", "web_search"]
        );
        assert_eq!(
            set.limits("web_search").timeout,
            Duration::from_millis(2500)
        );
        assert_eq!(set.limits("web_search").max_result_chars, 16_000);
        assert_eq!(set.limits("current_time").timeout, Duration::from_secs(30));

        let err = ToolSet::from_config(&["teleport"], &config).unwrap_err();
        assert!(err.to_string().contains("unknown tool `teleport`"), "{err}");
    }

    #[test]
    fn a_zero_limit_is_refused_with_its_key() {
        let config = ToolsConfig {
            max_parallel: 0,
            ..ToolsConfig::default()
        };
        let err = ToolSet::from_config(&["calculator"], &config).unwrap_err();
        assert!(
            err.to_string()
                .contains("tools.max_parallel: must be at least 1"),
            "{err}"
        );
    }

    #[derive(Deserialize, schemars::JsonSchema)]
    struct Sleep {
        /// Milliseconds.
        ms: u64,
    }

    fn test_set() -> ToolSet {
        ToolSet::new()
            .with(tool_fn("sleep", "Sleeps.", |args: Sleep| async move {
                tokio::time::sleep(Duration::from_millis(args.ms)).await;
                Ok("awake".to_owned())
            }))
            .with(tool_fn("shout", "Repeats.", |args: Sleep| async move {
                Ok("A".repeat(args.ms as usize))
            }))
            .with_limits(
                "sleep",
                ToolLimits {
                    timeout: Duration::from_millis(50),
                    max_result_chars: 100,
                },
            )
            .with_default_limits(ToolLimits {
                timeout: Duration::from_secs(5),
                max_result_chars: 10,
            })
    }

    #[tokio::test]
    async fn invoke_enforces_the_timeout_of_that_tool() {
        let set = test_set();
        assert_eq!(
            set.invoke("sleep", r#"{"ms": 1}"#).await.unwrap().text,
            "awake"
        );
        let err = set.invoke("sleep", r#"{"ms": 5000}"#).await.unwrap_err();
        assert_eq!(err, ToolError::Timeout(Duration::from_millis(50)));
        assert_eq!(err.error_type(), "timeout");
    }

    #[tokio::test]
    async fn invoke_cuts_oversized_results_and_says_so() {
        let output = test_set().invoke("shout", r#"{"ms": 25}"#).await.unwrap();
        assert_eq!(output.truncated_from, Some(25));
        assert!(
            output.text.starts_with("AAAAAAAAAA\n\n[result truncated"),
            "{}",
            output.text
        );
    }

    #[tokio::test]
    async fn invoke_reports_unknown_tools_and_bad_arguments() {
        let set = test_set();
        let err = set.invoke("teleport", "{}").await.unwrap_err();
        assert_eq!(err.error_type(), "unknown_tool");
        assert!(
            err.to_string().contains("the tools are: shout, sleep"),
            "{err}"
        );

        let err = set.invoke("sleep", "{ms: 1}").await.unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");

        let err = set.invoke("sleep", r#"{"ms": "soon"}"#).await.unwrap_err();
        assert_eq!(err.error_type(), "invalid_arguments");
        assert!(err.to_string().contains("/ms"), "{err}");
    }
}
