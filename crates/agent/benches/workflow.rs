//! Framework overhead of a workflow against the scripted instant model, so nothing but Sextant's
//! own work is measured: one agent turn called directly, the same turn as a one-node workflow,
//! and a five-node pipeline (a sequence, a parallel fan-out of two, a tool node) — untraced and
//! with the full telemetry pipeline (OTel layer, enrichment, the local store's queue and thread).
//! Report the workflow figures as ratios of the direct turn measured in the same run.

use std::collections::HashMap;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use sextant_agent::sub_agent::{AgentTool, SubAgent};
use sextant_agent::testing::ScriptedChatModel;
use sextant_agent::workflow::{Workflow, WorkflowConfig};
use sextant_agent::{Agent, BuildContext, TurnContext};
use sextant_tracker::{Telemetry, TelemetryConfig};

const ONE_NODE: &str = "name = \"one\"\nsteps = [\"a\"]\n[nodes.a]\nagent = \"a\"\n";

const PIPELINE: &str = r#"
name = "pipeline"
steps = ["a", "fan", "calc"]
[nodes.a]
agent = "a"
[nodes.fan]
parallel = ["b", "c"]
[nodes.b]
agent = "b"
input = "{{ a }}"
[nodes.c]
agent = "c"
input = "{{ a }}"
[nodes.calc]
tool = "calculator"
arguments = { expression = "12 * 7 + 3" }
"#;

fn agent(name: &str) -> Arc<Agent> {
    Arc::new(
        Agent::builder(name, Arc::new(ScriptedChatModel::new().then_text("done")))
            .max_steps(1)
            .build(),
    )
}

fn agents() -> HashMap<String, Arc<dyn SubAgent>> {
    ["a", "b", "c"]
        .into_iter()
        .map(|name| {
            let tool: Arc<dyn SubAgent> = Arc::new(AgentTool::new(agent(name), name));
            (name.to_owned(), tool)
        })
        .collect()
}

fn bench_workflow(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let context = BuildContext::new(dir.path());
    let build = |toml: &str| {
        let config = WorkflowConfig::from_toml(toml, "bench.toml").unwrap();
        runtime
            .block_on(Workflow::build_with_agents(&config, &context, agents()))
            .unwrap()
    };
    let one = build(ONE_NODE);
    let pipeline = build(PIPELINE);
    let direct = agent("a");
    let turn = TurnContext::default();

    let mut group = c.benchmark_group("workflow_overhead");
    let run_all = |group: &mut criterion::BenchmarkGroup<'_, _>, suffix: &str| {
        group.bench_function(format!("direct_turn{suffix}"), |b| {
            b.iter(|| runtime.block_on(direct.run("go")).unwrap())
        });
        group.bench_function(format!("one_node_workflow{suffix}"), |b| {
            b.iter(|| runtime.block_on(one.run("go", &turn)).unwrap())
        });
        group.bench_function(format!("five_node_pipeline{suffix}"), |b| {
            b.iter(|| runtime.block_on(pipeline.run("go", &turn)).unwrap())
        });
    };
    run_all(&mut group, "_untraced");
    let telemetry = Telemetry::builder(&TelemetryConfig {
        local_store: Some(dir.path().join("traces.db")),
        queue_size: 65_536,
        ..TelemetryConfig::default()
    })
    .build()
    .unwrap();
    {
        let _subscriber = telemetry.set_thread_default();
        run_all(&mut group, "_traced");
    }
    group.finish();
    telemetry.shutdown().unwrap();
}

criterion_group!(benches, bench_workflow);
criterion_main!(benches);
