//! Multi-agent — a router and two specialists. A question goes to the calculator-wielding
//! `assistant` when it has arithmetic in it, else to the `researcher`, which searches and cites;
//! the router is a workflow node with a rule (swap the rule for `router = { agent = "triage" }` to
//! let a model choose). The trace tree shows `invoke_workflow triage` → `node route` → the chosen
//! specialist's `invoke_agent` with its own `chat` and `execute_tool` spans.
//!
//! The same specialists can be tools of another agent (`agents = ["assistant", "researcher"]` in
//! its file: each is a tool taking an `input`) or handoff targets (`handoffs = [...]`), and a
//! specialist served by another Sextant (or any A2A agent) is named by its URL.
//!
//! ```sh
//! cargo run --release --example multi_agent -- "What is 12 * 7 + 3?"
//! cargo run --release --example multi_agent -- "What does the invoke_agent span record?"
//! ```

use sextant_agent::TurnContext;
use sextant_agent::workflow::{Workflow, WorkflowConfig};
use sextant_runtime::{Runtime, SextantConfig};
use sextant_tracker::SpanTree;

const TRIAGE: &str = r#"
name = "triage"
steps = ["route"]

[nodes.route]
router = { rules = [
    { when = { node = "input", contains = "*" }, route = "math" },
    { when = { node = "input", contains = "+" }, route = "math" },
], default = "research" }
routes = { math = "math", research = "research" }

[nodes.math]
agent = "assistant"

[nodes.research]
agent = "researcher"
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What is 12 * 7 + 3?".into());
    let mut config = SextantConfig::load(None)?;
    config.telemetry.capture_content = true; // a demo: inputs and outputs on the spans
    let runtime = Runtime::start(config).await?;
    let mut triage = WorkflowConfig::from_toml(TRIAGE, "examples/multi_agent.rs")?;
    // Agents by stem are looked for beside a workflow file; this one has none, so: configs/agents.
    triage.source_dir = Some("configs/agents".into());
    let workflow = Workflow::build(&triage, runtime.build_context()).await?;
    let outcome = workflow.run(&question, &TurnContext::default()).await?;
    let route = outcome.nodes.iter().find_map(|n| n.route.clone());
    println!(
        "routed to: {}\n\n{}\n",
        route.as_deref().unwrap_or("?"),
        outcome.output.trim()
    );
    if let Some(trace_id) = &outcome.trace_id {
        print!(
            "{}",
            SpanTree::build(&runtime.trace_spans(trace_id)?).render()
        );
    }
    runtime.shutdown().await?;
    Ok(())
}
