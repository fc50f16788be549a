//! MCP tools — an agent whose tools come from an MCP server: the reference time server
//! (`mcp-server-time` from PyPI) over stdio. Its trace shows each call as `execute_tool
//! get_current_time` with the MCP client span `tools/call get_current_time` beneath it
//! (`mcp.method.name`, `mcp.protocol.version`, `jsonrpc.request.id`, `network.transport = pipe`);
//! the request carried that span's `traceparent` in `params._meta`.
//!
//! The server is configured as any MCP server is, in `[mcp.servers]` of sextant.toml or here, from
//! the environment:
//!
//! ```sh
//! pip install mcp-server-time   # or: uvx mcp-server-time
//! SEXTANT_MCP__SERVERS__TIME__COMMAND=mcp-server-time \
//!   cargo run --release --example mcp_tools -- "What time is it now in the Asia/Tokyo timezone?"
//! ```

use sextant_runtime::{Runtime, SextantConfig};
use sextant_tracker::SpanTree;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let question = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What time is it now in the Asia/Tokyo timezone?".into());

    let mut config = SextantConfig::load(None)?;
    config.telemetry.capture_content = true; // a demo: arguments and results on the spans
    if !config.mcp.servers.contains_key("time") {
        anyhow::bail!(
            "configure the time server: SEXTANT_MCP__SERVERS__TIME__COMMAND=mcp-server-time \
             (pip install mcp-server-time), or [mcp.servers.time] in sextant.toml"
        );
    }
    let runtime = Runtime::start(config).await?;
    // `tools = ["mcp:time/*"]`: every tool the server lists, schema and all.
    let agent = runtime
        .agent_from_file(std::path::Path::new("configs/agents/mcp-time.toml"))
        .await?;

    let outcome = agent.run(&question).await?;
    for call in &outcome.tool_calls {
        println!("{}({}) -> {}", call.name, call.arguments, call.result);
    }
    println!("\n{}\n", outcome.answer.trim());
    if let Some(trace_id) = &outcome.trace_id {
        print!(
            "{}",
            SpanTree::build(&runtime.trace_spans(trace_id)?).render()
        );
    }
    runtime.shutdown().await?;
    Ok(())
}
