//! [`ToolSet`]: the tools an agent may call, by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::Tool;
use crate::builtin;

/// A set of tools, keyed by name.
#[derive(Clone, Default)]
pub struct ToolSet {
    tools: BTreeMap<String, Arc<dyn Tool>>,
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

impl ToolSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every built-in tool.
    pub fn builtin() -> Self {
        Self::new().with(builtin::Calculator)
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

    /// The tool called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name)
    }

    /// The subset named by `names`, in the order given; an unknown name is an error listing the
    /// available ones.
    pub fn select<S: AsRef<str>>(&self, names: &[S]) -> Result<ToolSet, UnknownTool> {
        let mut selected = ToolSet::new();
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
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_keeps_known_tools_and_names_the_unknown_one() {
        let tools = ToolSet::builtin();
        let selected = tools.select(&["calculator"]).unwrap();
        assert_eq!(selected.names().collect::<Vec<_>>(), ["calculator"]);

        let err = tools.select(&["calculator", "teleport"]).unwrap_err();
        assert_eq!(err.name, "teleport");
        assert!(
            err.to_string().contains("available tools: calculator"),
            "{err}"
        );
    }
}
