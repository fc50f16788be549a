//! What a tool call costs through MCP: the same `ToolSet::invoke` of an `ok` tool answered
//! in-process (a `tool_fn`) and by an MCP server over stdio (the fault double of
//! `xtask/servers/mcp_fault_double.py`, CPython, one process kept for all calls), measured in the
//! same run. The difference is the protocol round trip: JSON-RPC encoding, the pipe, the server's
//! own handling, and the client span with its trace context.
//!
//! `cargo bench -p sextant-tools --features mcp --bench mcp_call` (or `cargo xtask bench`).

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use schemars::JsonSchema;
use serde::Deserialize;
use sextant_tools::mcp::{McpConfig, McpSelector, McpServerConfig, McpServers, mcp_tools};
use sextant_tools::{ToolError, ToolSet, tool_fn};

#[derive(Deserialize, JsonSchema)]
struct Text {
    /// Echoed back.
    text: String,
}

fn calls(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let local = ToolSet::new().with(tool_fn("ok", "Answers ok.", |args: Text| async move {
        Ok::<_, ToolError>(format!("ok: {}", args.text))
    }));
    let mut config = McpConfig::default();
    config.servers.insert(
        "double".into(),
        McpServerConfig {
            command: Some("python3".into()),
            args: vec![
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../../xtask/servers/mcp_fault_double.py")
                    .display()
                    .to_string(),
            ],
            ..McpServerConfig::default()
        },
    );
    let servers = McpServers::new(config);
    let remote = runtime.block_on(async {
        let selector = McpSelector::parse("mcp:double/ok").unwrap().unwrap();
        let mut set = ToolSet::new();
        for tool in mcp_tools(&servers, &[selector])
            .await
            .expect("python3 runs the double")
        {
            set.insert(tool);
        }
        set
    });
    let arguments = r#"{"text": "bench"}"#;
    let mut group = c.benchmark_group("tool_call");
    group.bench_function("in_process", |b| {
        b.to_async(&runtime)
            .iter(|| async { local.invoke("ok", arguments).await.unwrap() })
    });
    group.bench_function("mcp_stdio", |b| {
        b.to_async(&runtime)
            .iter(|| async { remote.invoke("ok", arguments).await.unwrap() })
    });
    group.finish();
    runtime.block_on(servers.shutdown());
}

criterion_group!(benches, calls);
criterion_main!(benches);
