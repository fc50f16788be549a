//! Workflow files (`configs/workflows/*.toml`): a pipeline of nodes, checked when loaded so that a
//! bad file (an unknown node, a node that contains itself, a variable no earlier node sets) is an
//! error naming the file and the node.
//!
//! ```toml
//! name = "research"
//! description = "Research a question, write an answer, review it until it passes"
//! steps = ["research", "write", "review"]   # run in order
//! output = "{{ write }}"                     # default: the last step's output
//!
//! [nodes.research]
//! agent = "researcher"                       # as in an agent file's `agents`
//! input = "{{ input }}"                      # Handlebars; default "{{ last }}"
//!
//! [nodes.review]
//! loop = ["critique", "revise"]              # or sequence / parallel = [...]
//! max_iterations = 3
//! until = { node = "critique", contains = "APPROVED" }
//!
//! [nodes.triage]
//! router = { rules = [{ when = { node = "input", contains = "invoice" }, route = "billing" }], default = "support" }
//! routes = { billing = "billing_agent", support = "support_agent" }
//! ```
//!
//! Node kinds (one per node): `agent`, `tool` (with `arguments`, each a template), `workflow` (a
//! file beside this one, by stem), `sequence`, `parallel` (children run at once; the output joins
//! theirs), `loop` (children in order until `until` holds or `max_iterations`), `router` (`routes`
//! by a rule on a variable or chosen by an agent). Every node's output is the variable named
//! after it; `input` is the workflow's input, `last` the previous node's output, `iteration` a
//! loop's count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};
use serde::Deserialize;
use sextant_tracker::prompts::PromptTemplate;

use crate::config::ConfigError;
use crate::sub_agent::AgentEntry;

/// A workflow file; see the [module docs](self).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowConfig {
    /// Its name (`gen_ai.workflow.name`).
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// The nodes run in order.
    pub steps: Vec<String>,
    /// The workflow's answer, a template over the variables (default: the last step's output).
    #[serde(default)]
    pub output: Option<String>,
    /// Record inputs and outputs on the spans (default: `[telemetry] capture_content`).
    #[serde(default)]
    pub capture_content: Option<bool>,
    /// The nodes by id.
    pub nodes: BTreeMap<String, NodeConfig>,
    /// The directory of the file (agents and workflows are looked for there first).
    #[serde(skip)]
    pub source_dir: Option<PathBuf>,
    /// The file, as errors name it.
    #[serde(skip)]
    pub source_name: String,
}

/// One node of a workflow.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Runs an agent (local, registered or over A2A).
    #[serde(default)]
    pub agent: Option<AgentEntry>,
    /// Runs a tool (built-in or `mcp:SERVER/TOOL`).
    #[serde(default)]
    pub tool: Option<String>,
    /// Runs another workflow (a stem beside this file, or a path).
    #[serde(default)]
    pub workflow: Option<String>,
    /// Runs these nodes in order.
    #[serde(default)]
    pub sequence: Option<Vec<String>>,
    /// Runs these nodes at once; the output joins theirs.
    #[serde(default)]
    pub parallel: Option<Vec<String>>,
    /// Runs these nodes in order, again, until `until` holds or `max_iterations`.
    #[serde(rename = "loop", default)]
    pub loop_nodes: Option<Vec<String>>,
    /// Picks one of `routes` by a rule or an agent.
    #[serde(default)]
    pub router: Option<RouterConfig>,
    /// The agent's or workflow's input (a template; default `{{ last }}`).
    #[serde(default)]
    pub input: Option<String>,
    /// The tool's arguments (string values are templates).
    #[serde(default)]
    pub arguments: serde_json::Map<String, serde_json::Value>,
    /// A loop's most iterations.
    #[serde(default)]
    pub max_iterations: Option<u32>,
    /// A loop's stop condition, checked after each iteration.
    #[serde(default)]
    pub until: Option<Condition>,
    /// A router's routes: route name → node id.
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
}

/// A condition on a variable.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The variable (a node id, `input` or `last`).
    pub node: String,
    /// Holds when the value contains this text (case-insensitive).
    #[serde(default)]
    pub contains: Option<String>,
    /// Holds when the value, trimmed, equals this text (case-insensitive).
    #[serde(default)]
    pub equals: Option<String>,
    /// Holds when it does not (negates the test).
    #[serde(default)]
    pub not: bool,
}

impl Condition {
    /// Whether it holds for `value`.
    pub fn holds(&self, value: &str) -> bool {
        let value = value.to_lowercase();
        let holds = match (&self.contains, &self.equals) {
            (Some(text), _) => value.contains(&text.to_lowercase()),
            (None, Some(text)) => value.trim() == text.to_lowercase().trim(),
            (None, None) => !value.trim().is_empty(),
        };
        holds != self.not
    }
}

/// How a router picks its route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// Rules, tried in order: the first whose condition holds picks its route.
    #[serde(default)]
    pub rules: Vec<RouteRule>,
    /// An agent asked which route fits (it answers with a route's name).
    #[serde(default)]
    pub agent: Option<AgentEntry>,
    /// What the agent is asked about (a template; default `{{ last }}`).
    #[serde(default)]
    pub input: Option<String>,
    /// The route when no rule holds or the agent names none.
    #[serde(default)]
    pub default: Option<String>,
}

/// One rule of a router.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// The condition.
    pub when: Condition,
    /// The route it picks.
    pub route: String,
}

/// What kind a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// An agent.
    Agent,
    /// A tool.
    Tool,
    /// Another workflow.
    Workflow,
    /// Children in order.
    Sequence,
    /// Children at once.
    Parallel,
    /// Children in order, repeated.
    Loop,
    /// One route of several.
    Router,
}

impl NodeKind {
    /// Its name in spans and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Tool => "tool",
            Self::Workflow => "workflow",
            Self::Sequence => "sequence",
            Self::Parallel => "parallel",
            Self::Loop => "loop",
            Self::Router => "router",
        }
    }
}

impl NodeConfig {
    /// The node's kind, or why it has none or several.
    pub fn kind(&self) -> Result<NodeKind, String> {
        let kinds: Vec<NodeKind> = [
            (self.agent.is_some(), NodeKind::Agent),
            (self.tool.is_some(), NodeKind::Tool),
            (self.workflow.is_some(), NodeKind::Workflow),
            (self.sequence.is_some(), NodeKind::Sequence),
            (self.parallel.is_some(), NodeKind::Parallel),
            (self.loop_nodes.is_some(), NodeKind::Loop),
            (self.router.is_some(), NodeKind::Router),
        ]
        .into_iter()
        .filter_map(|(set, kind)| set.then_some(kind))
        .collect();
        match kinds.as_slice() {
            [kind] => Ok(*kind),
            [] => Err(
                "has no kind: give one of agent, tool, workflow, sequence, parallel, loop, router"
                    .into(),
            ),
            several => Err(format!(
                "has several kinds ({}): give one",
                several
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// The nodes it contains (its children, or its routes' targets).
    pub fn children(&self) -> Vec<&str> {
        let list = self
            .sequence
            .as_ref()
            .or(self.parallel.as_ref())
            .or(self.loop_nodes.as_ref());
        match list {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => self.routes.values().map(String::as_str).collect(),
        }
    }
}

/// The variables every template may use.
const BUILTIN_VARIABLES: [&str; 3] = ["input", "last", "iteration"];

impl WorkflowConfig {
    /// Reads and checks a workflow file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        if !path.exists() {
            return Err(ConfigError::Missing(path.to_owned()));
        }
        let mut config: WorkflowConfig = Figment::from(Toml::file_exact(path)).extract()?;
        config.source_dir = path.parent().map(Path::to_path_buf);
        config.source_name = path.display().to_string();
        config.validate()?;
        Ok(config)
    }

    /// Reads and checks a workflow from TOML text; `source_name` names it in errors.
    pub fn from_toml(text: &str, source_name: &str) -> Result<Self, ConfigError> {
        let mut config: WorkflowConfig =
            Figment::from(Toml::string(text))
                .extract()
                .map_err(|error| ConfigError::Value {
                    key: error.path.join("."),
                    source_name: source_name.into(),
                    message: error.to_string(),
                })?;
        config.source_name = source_name.into();
        config.validate()?;
        Ok(config)
    }

    fn error(&self, key: String, message: String) -> ConfigError {
        ConfigError::Value {
            key,
            source_name: self.source_name.clone(),
            message,
        }
    }

    /// Checks the nodes: each has one kind and valid settings, every id named exists and is used,
    /// no node contains itself, and every template uses only variables set before it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.steps.is_empty() {
            return Err(self.error("steps".into(), "names no node".into()));
        }
        for (id, node) in &self.nodes {
            let key = format!("nodes.{id}");
            if BUILTIN_VARIABLES.contains(&id.as_str()) {
                return Err(self.error(
                    key,
                    format!("`{id}` is a built-in variable; call the node something else"),
                ));
            }
            let kind = node.kind().map_err(|m| self.error(key.clone(), m))?;
            for child in node.children() {
                if !self.nodes.contains_key(child) {
                    return Err(self.error(key, format!("names an unknown node `{child}`")));
                }
            }
            match kind {
                NodeKind::Loop if node.max_iterations.unwrap_or(0) == 0 => {
                    return Err(self.error(
                        format!("{key}.max_iterations"),
                        "a loop needs max_iterations of at least 1".into(),
                    ));
                }
                NodeKind::Router => {
                    let router = node.router.as_ref().expect("a router");
                    if node.routes.is_empty() {
                        return Err(self.error(
                            format!("{key}.routes"),
                            "a router needs routes = { NAME = \"node\" }".into(),
                        ));
                    }
                    if router.rules.is_empty() && router.agent.is_none() {
                        return Err(self.error(
                            format!("{key}.router"),
                            "give rules or an agent that picks the route".into(),
                        ));
                    }
                    for route in router
                        .rules
                        .iter()
                        .map(|r| &r.route)
                        .chain(router.default.iter())
                    {
                        if !node.routes.contains_key(route) {
                            return Err(self.error(
                                format!("{key}.router"),
                                format!(
                                    "names the route `{route}`, which is not in routes ({})",
                                    node.routes.keys().cloned().collect::<Vec<_>>().join(", ")
                                ),
                            ));
                        }
                    }
                    if let Some(agent) = &router.agent {
                        agent
                            .validate()
                            .map_err(|m| self.error(format!("{key}.router.agent"), m))?;
                    }
                }
                NodeKind::Agent => node
                    .agent
                    .as_ref()
                    .expect("an agent")
                    .validate()
                    .map_err(|m| self.error(format!("{key}.agent"), m))?,
                _ => {}
            }
            for template in node
                .input
                .iter()
                .chain(node.router.as_ref().and_then(|r| r.input.as_ref()))
            {
                PromptTemplate::text(template.clone())
                    .validate()
                    .map_err(|e| self.error(format!("{key}.input"), e.to_string()))?;
            }
        }
        for step in &self.steps {
            if !self.nodes.contains_key(step) {
                return Err(self.error("steps".into(), format!("names an unknown node `{step}`")));
            }
        }
        // No node may contain itself (directly or through its children).
        for id in self.nodes.keys() {
            let mut path = Vec::new();
            self.check_cycle(id, &mut path)?;
        }
        // Every node is reachable from the steps.
        let mut reached = BTreeSet::new();
        let mut todo: Vec<&str> = self.steps.iter().map(String::as_str).collect();
        while let Some(id) = todo.pop() {
            if reached.insert(id) {
                todo.extend(self.nodes[id].children());
            }
        }
        if let Some(unused) = self.nodes.keys().find(|id| !reached.contains(id.as_str())) {
            return Err(self.error(
                format!("nodes.{unused}"),
                "is not reached from steps (list it in steps or in another node)".into(),
            ));
        }
        // Variables: each template uses only what is set before it runs.
        let mut defined: BTreeSet<String> =
            BUILTIN_VARIABLES.iter().map(|v| (*v).to_owned()).collect();
        self.check_variables_in_order(&self.steps, &mut defined)?;
        if let Some(output) = &self.output {
            self.check_template("output".into(), output, &defined)?;
        }
        Ok(())
    }

    fn check_cycle<'a>(&'a self, id: &'a str, path: &mut Vec<&'a str>) -> Result<(), ConfigError> {
        if let Some(at) = path.iter().position(|p| *p == id) {
            let mut cycle: Vec<&str> = path[at..].to_vec();
            cycle.push(id);
            return Err(self.error(
                format!("nodes.{id}"),
                format!(
                    "contains itself ({}): repeat work with a loop node instead",
                    cycle.join(" → ")
                ),
            ));
        }
        path.push(id);
        for child in self.nodes[id].children() {
            self.check_cycle(child, path)?;
        }
        path.pop();
        Ok(())
    }

    fn check_template(
        &self,
        key: String,
        template: &str,
        defined: &BTreeSet<String>,
    ) -> Result<(), ConfigError> {
        for variable in PromptTemplate::text(template.to_owned()).variables() {
            let root = variable.split('.').next().unwrap_or_default();
            if !defined.contains(root) {
                return Err(self.error(
                    key,
                    format!(
                        "uses `{{{{ {variable} }}}}`, which no node sets before it runs (set so far: {})",
                        defined.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks `ids` run in order; `defined` grows with each node's output.
    fn check_variables_in_order(
        &self,
        ids: &[String],
        defined: &mut BTreeSet<String>,
    ) -> Result<(), ConfigError> {
        for id in ids {
            self.check_node_variables(id, defined)?;
        }
        Ok(())
    }

    fn check_node_variables(
        &self,
        id: &str,
        defined: &mut BTreeSet<String>,
    ) -> Result<(), ConfigError> {
        let node = &self.nodes[id];
        let key = format!("nodes.{id}");
        if let Some(input) = &node.input {
            self.check_template(format!("{key}.input"), input, defined)?;
        }
        for (name, value) in &node.arguments {
            if let Some(template) = value.as_str() {
                self.check_template(format!("{key}.arguments.{name}"), template, defined)?;
            }
        }
        let check_var = |condition: &Condition, what: String, defined: &BTreeSet<String>| {
            if defined.contains(&condition.node) {
                Ok(())
            } else {
                Err(self.error(
                    what,
                    format!(
                        "tests `{}`, which no node sets before it is checked",
                        condition.node
                    ),
                ))
            }
        };
        match node.kind().expect("validated") {
            NodeKind::Sequence | NodeKind::Loop => {
                let children: Vec<String> =
                    node.children().iter().map(|c| (*c).to_owned()).collect();
                self.check_variables_in_order(&children, defined)?;
                if let Some(until) = &node.until {
                    check_var(until, format!("{key}.until"), defined)?;
                }
            }
            NodeKind::Parallel => {
                // Siblings run at once: none sees another's output.
                let before = defined.clone();
                let mut after = defined.clone();
                for child in node.children() {
                    let mut own = before.clone();
                    self.check_node_variables(child, &mut own)?;
                    after.extend(own);
                }
                *defined = after;
            }
            NodeKind::Router => {
                let router = node.router.as_ref().expect("a router");
                for rule in &router.rules {
                    check_var(&rule.when, format!("{key}.router"), defined)?;
                }
                if let Some(input) = &router.input {
                    self.check_template(format!("{key}.router.input"), input, defined)?;
                }
                // Only one branch runs: after the router, only its own output is sure to be set.
                for child in node.children() {
                    let mut own = defined.clone();
                    self.check_node_variables(child, &mut own)?;
                }
            }
            _ => {}
        }
        defined.insert(id.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(toml: &str) -> String {
        WorkflowConfig::from_toml(toml, "wf.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn bad_workflows_are_errors_that_name_the_file_and_the_node() {
        let unknown = error("name = \"w\"\nsteps = [\"a\"]\n[nodes.a]\nsequence = [\"ghost\"]\n");
        assert!(
            unknown.contains("nodes.a") && unknown.contains("ghost") && unknown.contains("wf.toml"),
            "{unknown}"
        );
        let cycle = error(
            "name = \"w\"\nsteps = [\"a\"]\n[nodes.a]\nsequence = [\"b\"]\n[nodes.b]\nparallel = [\"a\"]\n",
        );
        assert!(
            cycle.contains("contains itself") && cycle.contains("a → b → a"),
            "{cycle}"
        );
        let missing = error(
            "name = \"w\"\nsteps = [\"a\", \"b\"]\n[nodes.a]\nagent = \"x\"\ninput = \"{{ b }}\"\n[nodes.b]\nagent = \"y\"\n",
        );
        assert!(
            missing.contains("nodes.a.input") && missing.contains("{{ b }}"),
            "{missing}"
        );
        let parallel_peek = error(
            "name = \"w\"\nsteps = [\"p\"]\n[nodes.p]\nparallel = [\"a\", \"b\"]\n[nodes.a]\nagent = \"x\"\n[nodes.b]\nagent = \"y\"\ninput = \"{{ a }}\"\n",
        );
        assert!(parallel_peek.contains("nodes.b.input"), "{parallel_peek}");
        let no_kind = error("name = \"w\"\nsteps = [\"a\"]\n[nodes.a]\ninput = \"x\"\n");
        assert!(
            no_kind.contains("nodes.a") && no_kind.contains("no kind"),
            "{no_kind}"
        );
        let loop_without_bound = error(
            "name = \"w\"\nsteps = [\"l\"]\n[nodes.l]\nloop = [\"a\"]\n[nodes.a]\nagent = \"x\"\n",
        );
        assert!(
            loop_without_bound.contains("max_iterations"),
            "{loop_without_bound}"
        );
        let unused = error(
            "name = \"w\"\nsteps = [\"a\"]\n[nodes.a]\nagent = \"x\"\n[nodes.b]\nagent = \"y\"\n",
        );
        assert!(
            unused.contains("nodes.b") && unused.contains("not reached"),
            "{unused}"
        );
        let bad_route = error(
            "name = \"w\"\nsteps = [\"r\"]\n[nodes.r]\nrouter = { rules = [{ when = { node = \"input\", contains = \"x\" }, route = \"nowhere\" }] }\nroutes = { a = \"a\" }\n[nodes.a]\nagent = \"x\"\n",
        );
        assert!(bad_route.contains("nowhere"), "{bad_route}");
    }

    #[test]
    fn a_valid_workflow_loads_with_its_variables_in_order() {
        let config = WorkflowConfig::from_toml(
            "name = \"w\"\nsteps = [\"a\", \"l\"]\noutput = \"{{ a }} / {{ l }}\"\n\
             [nodes.a]\nagent = \"x\"\n\
             [nodes.l]\nloop = [\"c\", \"d\"]\nmax_iterations = 2\nuntil = { node = \"c\", contains = \"ok\" }\n\
             [nodes.c]\nagent = \"y\"\ninput = \"{{ a }} {{ last }} {{ iteration }}\"\n\
             [nodes.d]\ntool = \"calculator\"\narguments = { expression = \"{{ c }}\" }\n",
            "wf.toml",
        )
        .unwrap();
        assert_eq!(config.nodes["l"].kind().unwrap(), NodeKind::Loop);
        assert!(
            Condition {
                node: "c".into(),
                contains: Some("OK".into()),
                equals: None,
                not: false
            }
            .holds("looks ok to me")
        );
    }
}
